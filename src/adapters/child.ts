/**
 * What the provider adapters share for their child processes: a signal that never throws, a
 * bounded wait, and {@linkcode stopChild}, the one way a provider is stopped (close its stdin,
 * then SIGTERM, then SIGKILL).
 *
 * @module
 */

/** Sends `sig` to `child`; a child that already exited is not an error. */
export function signalChild(child: Deno.ChildProcess, sig: Deno.Signal): void {
  try {
    child.kill(sig);
  } catch {
    // Already gone.
  }
}

/** Whether `promise` settles (either way) within `ms`; the timer is always cleared. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@linkcode stopChild}. */
export interface StopChildOptions {
  /**
   * Closes the child's stdin (most providers exit at the end of their input). Not awaited: a
   * close waits for pending writes, which never finish when the child stopped reading.
   */
  closeStdin(): unknown;
  /** How long to wait after closing stdin before SIGTERM, ms. */
  graceMs: number;
  /** How long to wait after SIGTERM before SIGKILL, ms. */
  termGraceMs: number;
  /** Told before each signal is sent, with how long the child was given (for the log). */
  onSignal?(signal: "SIGTERM" | "SIGKILL", waitedMs: number): void;
}

/**
 * Stops `child`: closes its stdin, sends SIGTERM when it has not exited after `graceMs`, and
 * SIGKILL after `termGraceMs` more. Resolves once `exited` (the adapter's own "exit handled"
 * promise, which settles after the child's status) has settled.
 */
export async function stopChild(
  child: Deno.ChildProcess,
  exited: Promise<unknown>,
  options: StopChildOptions,
): Promise<void> {
  try {
    void Promise.resolve(options.closeStdin()).catch(() => {/* stdin already closed */});
  } catch {
    // stdin already closed.
  }
  if (!(await settlesWithin(exited, options.graceMs))) {
    options.onSignal?.("SIGTERM", options.graceMs);
    signalChild(child, "SIGTERM");
    if (!(await settlesWithin(exited, options.termGraceMs))) {
      options.onSignal?.("SIGKILL", options.termGraceMs);
      signalChild(child, "SIGKILL");
    }
  }
  await exited.catch(() => {});
}
