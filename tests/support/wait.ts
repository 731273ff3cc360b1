/**
 * Waiting in tests that drive real processes: {@linkcode waitFor} polls for a positive signal,
 * {@linkcode sleep} paces a scenario. Neither is for checking that "nothing more happened": wait
 * for the signal that says it is over instead (the turn ended, the mark-read was recorded).
 *
 * @module
 */

/** Options of {@linkcode waitFor}. */
export interface WaitOptions {
  /** Give up after this long (default 20 s). */
  timeoutMs?: number;
  /**
   * Give up as soon as this aborts (say, the runner under test exited): the error names the
   * abort's reason and what was awaited.
   */
  signal?: AbortSignal;
}

/**
 * Polls `probe` every 25 ms until it returns something other than `undefined` or `false`, and
 * returns that; throws naming `what` after the timeout, or once `signal` aborts.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (options.signal?.aborted) {
      throw new Error(`${reasonText(options.signal.reason)} while waiting for ${what}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(25, options.signal);
  }
}

/** Resolves after `ms`, or early once `signal` aborts. For pacing, never for "nothing more". */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

function reasonText(reason: unknown): string {
  const text = reason instanceof Error ? reason.message : String(reason);
  return text.charAt(0).toUpperCase() + text.slice(1);
}
