/**
 * The environment variables the runner reads, and a reader that asks for nothing else.
 *
 * The sandbox's Worker (src/sandbox) is granted exactly this list. Reading the environment
 * through {@linkcode readEnv} instead of `Deno.env.toObject()`
 * keeps the runner working under that narrow grant.
 *
 * @module
 */

/** Every variable the runner reads. */
export const ENV_VARS = [
  "HOME",
  "AGENT_RELAY_HOME",
  "AGENT_RELAY_URL",
  "AGENT_RELAY_TOKEN",
  "AGENT_RELAY_TOKEN_FILE",
  "AGENT_RELAY_LOG_LEVEL",
  "AGENT_RELAY_SESSION_DEBUG",
  "AGENT_RELAY_RUNNER_OUTBOX_DIR",
  "AGENT_RELAY_RUNNER_INFO_FILE",
  "AGENT_RELAY_WORKSPACE_JSON",
  "AGENT_RELAY_PERMISSION_POLICY",
  "AGENT_RELAY_CLAUDE_BIN",
  "AGENT_RELAY_CODEX_BIN",
  // The providers' own config dirs (Claude's transcripts; the Codex home), for the read grant.
  "CLAUDE_CONFIG_DIR",
  "CODEX_HOME",
  // Read only to refuse it: it could move the control server off 127.0.0.1.
  "DENO_SERVE_ADDRESS",
] as const;

/** The environment as the runner sees it: the variables of {@linkcode ENV_VARS} that are set. */
export function readEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const name of ENV_VARS) {
    try {
      const value = Deno.env.get(name);
      if (value !== undefined) env[name] = value;
    } catch {
      // Not granted: treated as unset.
    }
  }
  return env;
}
