/**
 * The control server's contract constants: the hook events the plugin forwards, the shapes of a
 * hook's payload and answer, and the limits a hook request lives within (docs/control-server.md).
 *
 * A leaf module: the server, the Claude plugin writer and the runner all read it.
 *
 * @module
 */

/** Every Claude Code hook event the plugin forwards: kebab-case path name -> Claude's name. */
export const HOOK_EVENTS = {
  "session-start": "SessionStart",
  "user-prompt-submit": "UserPromptSubmit",
  "pre-tool-use": "PreToolUse",
  "permission-request": "PermissionRequest",
  "post-tool-use": "PostToolUse",
  "stop": "Stop",
  "stop-failure": "StopFailure",
  "subagent-start": "SubagentStart",
  "subagent-stop": "SubagentStop",
  "pre-compact": "PreCompact",
  "post-compact": "PostCompact",
  "notification": "Notification",
  "session-end": "SessionEnd",
} as const;

/** A hook event's path name, such as `stop` or `pre-tool-use`. */
export type HookEvent = keyof typeof HOOK_EVENTS;

/** Whether `name` is one of {@linkcode HOOK_EVENTS}. */
export function isHookEvent(name: string): name is HookEvent {
  return Object.hasOwn(HOOK_EVENTS, name);
}

/** A hook's payload as the provider sent it: a JSON object. */
export type HookPayload = Record<string, unknown>;
/** What a hook prints on stdout: a JSON object (`{}` = nothing to say). */
export type HookAnswer = Record<string, unknown>;

/** The default body limit. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** The default wait on the runner's callbacks while a hook waits. */
export const DEFAULT_HOOK_BUDGET_MS = 1_500;
/** The default time a request body may take to arrive in full (408 after). */
export const BODY_TIMEOUT_MS = 2_000;
/** The default cap on requests being answered at once (503 above). */
export const MAX_IN_FLIGHT = 64;
