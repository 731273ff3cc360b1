/**
 * The outbox's retry delay: capped exponential backoff with jitter that never goes below half
 * the step.
 *
 * After the `n`-th consecutive failure the step is `min(maxMs, baseMs * 2^(n-1))` and the delay
 * is drawn uniformly from `[step / 2, step]`: the jitter spreads a fleet of runners that lost
 * the same relay, and the floor keeps any one of them from hammering it.
 *
 * @module
 */

/** The backoff's shape, in milliseconds. */
export interface BackoffOptions {
  /** The first step. */
  baseMs: number;
  /** The cap on the step. */
  maxMs: number;
}

/** The backoff the outbox uses unless told otherwise: 1 s doubling up to 60 s. */
export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = { baseMs: 1_000, maxMs: 60_000 };

/** The step after `failures` consecutive failures (1 = the first failure). */
export function backoffStep(failures: number, options: BackoffOptions): number {
  const exponent = Math.min(Math.max(failures, 1) - 1, 52);
  return Math.min(options.maxMs, options.baseMs * 2 ** exponent);
}

/**
 * The delay before the next attempt after `failures` consecutive failures: uniform in
 * `[step / 2, step]`, rounded up to a whole millisecond. `random` returns a number in [0, 1).
 */
export function backoffDelay(
  failures: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const step = backoffStep(failures, options);
  let r = random();
  if (!Number.isFinite(r) || r < 0) r = 0;
  if (r >= 1) r = 1 - Number.EPSILON;
  return Math.min(step, Math.ceil(step / 2 + r * (step / 2)));
}

/** Validates backoff options, throwing a `RangeError` that names the bad value. */
export function checkBackoff(options: BackoffOptions): BackoffOptions {
  const { baseMs, maxMs } = options;
  if (!Number.isFinite(baseMs) || baseMs < 1) {
    throw new RangeError(`backoff.baseMs ${baseMs} must be a number of milliseconds >= 1`);
  }
  if (!Number.isFinite(maxMs) || maxMs < baseMs) {
    throw new RangeError(`backoff.maxMs ${maxMs} must be a number >= backoff.baseMs (${baseMs})`);
  }
  return { baseMs, maxMs };
}
