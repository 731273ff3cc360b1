/**
 * The Claude adapter's options and their defaults, and the errors its `start()` rejects with.
 *
 * @module
 */

/** Default: no output for this long while busy -> interrupt. */
export const DEFAULT_WATCHDOG_MS = 10 * 60_000;
/** Default: an interrupt unanswered for this long -> kill. */
export const DEFAULT_INTERRUPT_TIMEOUT_MS = 15_000;
/** Default: `start()` gives up after this long without an answer to `initialize`. */
export const DEFAULT_START_TIMEOUT_MS = 60_000;
/** Default: `stop()` waits this long after closing stdin before signalling. */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;
/** Default: a stdio permission question is denied after this long. */
export const DEFAULT_PERMISSION_TIMEOUT_MS = 120_000;

/** Options of {@linkcode createClaudeAdapter}. */
export interface ClaudeAdapterOptions {
  /** The executable (default {@linkcode claudeExecutable}). */
  bin?: string;
  /**
   * Write the runner's hook plugin into `<stateDir>/claude-plugin` at start and load it
   * (`--plugin-dir`). Default true.
   */
  plugin?: boolean;
  /** No output for this long while busy -> interrupt (0 = never). */
  watchdogMs?: number;
  interruptTimeoutMs?: number;
  startTimeoutMs?: number;
  /** Default for `stop()` without a timeout. */
  stopTimeoutMs?: number;
  /**
   * Who answers tool-permission questions: the plugin's hook (`hook`, the default with the
   * plugin) or this adapter over stdio (`stdio`, the default without it).
   */
  permissionVia?: "hook" | "stdio";
  permissionTimeoutMs?: number;
  /**
   * When the saved session cannot be resumed: start a new session (`fresh`, the default; the
   * new session's id follows as a `session-id` event), or reject `start()` with
   * {@linkcode ResumeFailedError} (`reject`).
   */
  onResumeFailure?: "fresh" | "reject";
  /** The environment the provider inherits (default: the runner's). */
  baseEnv?: Record<string, string | undefined>;
  /** The clock for event times. */
  now?: () => number;
}

/** Claude could not be started, or died before it was ready. */
export class ClaudeStartError extends Error {
  override name = "ClaudeStartError";
}

/** Claude could not resume the saved session (`onResumeFailure: "reject"`): drop the id. */
export class ResumeFailedError extends ClaudeStartError {
  override name = "ResumeFailedError";
  constructor(readonly resumeId: string, message: string) {
    super(message);
  }
}
