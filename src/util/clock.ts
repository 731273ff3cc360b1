/**
 * The one clock and timer seam: every module that reads the time or arms a timer takes a
 * {@linkcode Clock}, so tests drive time with the fake clock in tests/support/fake_clock.ts.
 *
 * @module
 */

/** An armed timer, as {@linkcode Clock.setTimeout} returns it. */
export type TimerId = unknown;

/** Time and timers. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Runs `callback` once after `delayMs`. */
  setTimeout(callback: () => void, delayMs: number): TimerId;
  /** Cancels a timer; `undefined` and spent timers are ignored. */
  clearTimeout(id: TimerId | undefined): void;
}

/** The real clock: `Date.now` and the global timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (id) => clearTimeout(id as number | undefined),
};
