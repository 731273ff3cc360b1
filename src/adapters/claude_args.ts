/**
 * What the Claude Code CLI is started with: the executable, its command-line arguments, its
 * environment (the runner's minus the relay token), and the text of one delivery.
 *
 * @module
 */
import type { Message } from "../types.ts";
import { readEnv } from "../config/mod.ts";
import { formatRelayMessage } from "./relay_instructions.ts";

/** The environment variable naming the Claude Code executable. */
export const CLAUDE_BIN_ENV = "AGENT_RELAY_CLAUDE_BIN";

/** Claude Code's own bound on retries of a failing model API request (its default: 10). */
export const CLAUDE_RETRIES_ENV = "CLAUDE_CODE_MAX_RETRIES";

/**
 * The bound the adapter sets unless the user set one: 6 retries are about 35 s of Claude's backoff
 * (0.5, 1, 2.5, 5, 8, 17 s) instead of about 3 minutes, because the runner retries a failed turn
 * itself (`--turn-retries`, docs/providers/claude.md).
 */
export const DEFAULT_CLAUDE_MAX_RETRIES = "6";

/** Variables of the runner's environment never passed to Claude. */
export const STRIPPED_ENV: ReadonlySet<string> = new Set(["AGENT_RELAY_TOKEN", "CLAUDECODE"]);

/** The Claude Code executable: `$AGENT_RELAY_CLAUDE_BIN` when set, else `claude` (on PATH). */
export function claudeExecutable(
  getEnv: (name: string) => string | undefined = (name) => Deno.env.get(name),
): string {
  const bin = getEnv(CLAUDE_BIN_ENV)?.trim();
  return bin ? bin : "claude";
}

/** What {@linkcode buildClaudeArgs} needs to know about a run. */
export interface ClaudeArgsInput {
  /** The hook plugin's folder (`--plugin-dir`), when it is loaded. */
  pluginDir?: string;
  /** The session to resume. */
  resumeId?: string;
  /** Extra provider arguments, last. */
  args: string[];
}

/** The command-line arguments for a run (the executable not included). */
export function buildClaudeArgs(
  input: ClaudeArgsInput,
  options: { permissionVia: "hook" | "stdio" },
): string[] {
  const args = [
    "-p",
    "--input-format",
    "stream-json",
    "--output-format",
    "stream-json",
    "--verbose",
    "--replay-user-messages",
  ];
  if (input.pluginDir) args.push("--plugin-dir", input.pluginDir);
  if (options.permissionVia === "stdio") args.push("--permission-prompt-tool", "stdio");
  if (input.resumeId) args.push("--resume", input.resumeId);
  args.push(...input.args);
  return args;
}

/**
 * The provider's environment: the base minus {@linkcode STRIPPED_ENV}, plus `extra`, plus
 * {@linkcode CLAUDE_RETRIES_ENV} = {@linkcode DEFAULT_CLAUDE_MAX_RETRIES} when neither sets it.
 */
export function claudeEnv(
  base: Record<string, string | undefined>,
  extra: Record<string, string>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(base)) {
    if (value !== undefined && !STRIPPED_ENV.has(key)) env[key] = value;
  }
  Object.assign(env, extra);
  env[CLAUDE_RETRIES_ENV] ??= DEFAULT_CLAUDE_MAX_RETRIES;
  return env;
}

/**
 * The text of one delivery: `notes` (if any), then each message as
 * {@linkcode formatRelayMessage} shows it (`[relay message #12 from alice]` and the body, the
 * form the first-prompt notes announce), separated by blank lines.
 */
export function formatDelivery(messages: Message[], notes?: string): string {
  const parts: string[] = [];
  if (notes !== undefined && notes.trim() !== "") parts.push(notes.trim());
  for (const m of messages) parts.push(formatRelayMessage(m));
  return parts.join("\n\n");
}

/** The environment Claude starts from (see {@linkcode resolveBaseEnv}). */
export interface BaseEnv {
  vars: Record<string, string | undefined>;
  /** Claude inherits the runner's environment as it is, instead of getting `vars` only. */
  inherit: boolean;
}

/**
 * The environment Claude starts from: `given`, else the runner's. Under the runner's sandbox
 * only some variables may be read: then Claude inherits the environment as it is (no
 * permission needed), with the stripped ones blanked.
 */
export function resolveBaseEnv(given?: Record<string, string | undefined>): BaseEnv {
  if (given !== undefined) return { vars: given, inherit: false };
  try {
    return { vars: Deno.env.toObject(), inherit: false };
  } catch {
    return { vars: readEnv(), inherit: true };
  }
}

/** The `env` and `clearEnv` spawn options for Claude: `base` plus `extra`, stripped. */
export function claudeSpawnEnv(
  base: BaseEnv,
  extra: Record<string, string>,
): { env: Record<string, string>; clearEnv: boolean } {
  if (!base.inherit) return { env: claudeEnv(base.vars, extra), clearEnv: true };
  const blanked = Object.fromEntries([...STRIPPED_ENV].map((key) => [key, ""]));
  // The inherited environment may set the retry bound where the runner cannot read it: then
  // the adapter sets none, so the user's setting always wins.
  const unset = !(CLAUDE_RETRIES_ENV in extra) && base.vars[CLAUDE_RETRIES_ENV] === undefined &&
    knownUnset(CLAUDE_RETRIES_ENV);
  const retries = unset ? { [CLAUDE_RETRIES_ENV]: DEFAULT_CLAUDE_MAX_RETRIES } : {};
  return { env: { ...blanked, ...retries, ...extra }, clearEnv: false };
}

/** Whether the runner's environment lacks `name` for sure (it may read it, and it is unset). */
function knownUnset(name: string): boolean {
  try {
    return Deno.env.get(name) === undefined;
  } catch {
    return false;
  }
}
