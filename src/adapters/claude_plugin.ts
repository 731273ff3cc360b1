/**
 * Writes the Claude Code hook plugin (the repository's `hooks/` folder) into the agent's state
 * dir at start, so `claude --plugin-dir <state>/claude-plugin` loads it.
 *
 * Two transports (docs/hooks.md): `bash` keeps the repository's hooks.json, one bash + curl
 * script per event; `http` writes a hooks.json in which every event but SessionStart (which
 * Claude Code runs only as a command) is a native HTTP hook: a POST to
 * `http://127.0.0.1:<port>/hooks/<event>` whose `Authorization` header Claude Code fills from
 * `$AGENT_RELAY_RUNNER_SECRET` (listed in `allowedEnvVars`), so the secret is never written.
 *
 * The files are read relative to this module (`../hooks/`), which also works inside a binary
 * built with `deno compile --include hooks`. They are listed in {@linkcode PLUGIN_FILES} rather
 * than discovered, so a missing file is a clear error, not a plugin that silently lacks a hook.
 *
 * @module
 */
import { HOOK_EVENTS, type HookEvent } from "../control/mod.ts";
import { APP_URL, dirname, errorText, join, SymlinkError } from "../util/mod.ts";

/** Every file of the plugin, relative to its root. */
export const PLUGIN_FILES: readonly string[] = [
  ".claude-plugin/plugin.json",
  "hooks/hooks.json",
  "hooks/lib.sh",
  ...Object.keys(HOOK_EVENTS).map((event) => `hooks/${event}.sh`),
];

/** The plugin's folder name inside the state dir. */
export const PLUGIN_DIR_NAME = "claude-plugin";

const SOURCE = new URL("hooks/", APP_URL);

/** How Claude Code's hooks reach the control server. */
export type HookTransport = "http" | "bash";

/** Options of {@linkcode writePlugin}. */
export interface WritePluginOptions {
  /** Default `bash`. */
  transport?: HookTransport;
  /** The control server's port: required for `http` (1 to 65535). */
  port?: number;
}

/** The events Claude Code runs only as command hooks (no HTTP hook there). */
const COMMAND_ONLY: ReadonlySet<HookEvent> = new Set(["session-start"]);
/** Each hook's timeout in hooks.json, in seconds (the runner answers within 1.5 s). */
const HOOK_TIMEOUT_S = 5;
/** The variable Claude Code interpolates into the HTTP hooks' `Authorization` header. */
export const SECRET_VARIABLE = "AGENT_RELAY_RUNNER_SECRET";

/** One event's hook entry in hooks.json. */
function hookEntry(event: HookEvent, transport: HookTransport, port: number | undefined) {
  if (transport === "http" && !COMMAND_ONLY.has(event)) {
    return {
      type: "http",
      url: `http://127.0.0.1:${port}/hooks/${event}`,
      headers: { Authorization: `Bearer $${SECRET_VARIABLE}` },
      allowedEnvVars: [SECRET_VARIABLE],
      timeout: HOOK_TIMEOUT_S,
    };
  }
  return {
    type: "command",
    command: `\${CLAUDE_PLUGIN_ROOT}/hooks/${event}.sh`,
    timeout: HOOK_TIMEOUT_S,
  };
}

/** The hooks.json for `transport` (the `bash` one is the repository's file, byte for byte). */
export function hooksConfig(transport: HookTransport, port?: number): Record<string, unknown> {
  const hooks: Record<string, unknown> = {};
  for (const [event, name] of Object.entries(HOOK_EVENTS) as Array<[HookEvent, string]>) {
    hooks[name] = [{ hooks: [hookEntry(event, transport, port)] }];
  }
  return {
    description: transport === "http"
      ? "agent-relay-runner: every hook event to the runner's control server (127.0.0.1), " +
        "over HTTP; SessionStart through bash + curl."
      : "agent-relay-runner: forward every hook event to the runner's control server (127.0.0.1).",
    hooks,
  };
}

/**
 * Copies the plugin into `<stateDir>/claude-plugin/` (replacing an older copy whole) and
 * returns that path. Scripts get mode 0700, other files 0600, folders 0700. With
 * `transport: "http"` its hooks.json is {@linkcode hooksConfig}'s HTTP one for `port`.
 */
export async function writePlugin(
  stateDir: string,
  options: WritePluginOptions = {},
): Promise<string> {
  const transport = options.transport ?? "bash";
  const port = options.port;
  if (transport === "http" && !(Number.isInteger(port) && port! >= 1 && port! <= 65535)) {
    throw new Error(
      `The HTTP hook plugin needs the control port (1 to 65535); got ${String(port)}`,
    );
  }
  const target = join(stateDir, PLUGIN_DIR_NAME);
  const staging = join(stateDir, `.${PLUGIN_DIR_NAME}.${crypto.randomUUID()}`);
  await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
  try {
    for (const file of PLUGIN_FILES) {
      let bytes: Uint8Array;
      try {
        bytes = transport === "http" && file === "hooks/hooks.json"
          ? new TextEncoder().encode(JSON.stringify(hooksConfig("http", port), null, 2) + "\n")
          : await Deno.readFile(new URL(file, SOURCE));
      } catch (error) {
        throw new Error(
          `Cannot read the hook plugin file ${file} from ${SOURCE.href}: ${errorText(error)}`,
        );
      }
      const path = join(staging, file);
      await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const mode = file.endsWith(".sh") ? 0o700 : 0o600;
      await Deno.writeFile(path, bytes, { mode });
      await Deno.chmod(path, mode);
    }
    // A symlink planted at the plugin dir is refused: removing "it" must never reach its target.
    const existing = await Deno.lstat(target).catch(() => undefined);
    if (existing?.isSymlink) {
      throw new SymlinkError(`${target} is a symlink: refusing to replace the plugin through it`);
    }
    await Deno.remove(target, { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    await Deno.rename(staging, target);
  } catch (error) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw error;
  }
  return target;
}
