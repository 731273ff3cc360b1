/**
 * Small helpers the provider adapters share for their child processes: a signal that never
 * throws, and a bounded wait.
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
