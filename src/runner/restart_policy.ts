/**
 * When an unexpected provider exit is restarted, and when the runner gives up (docs/runner.md).
 *
 * The delay grows with the exits in the window, through the shared backoff step
 * (src/util/backoff.ts): 500 ms, doubling with each recent exit, at most 10 s. When more
 * than `maxRapidExits` exits fall in the window and the latest ran for less than `rapidMs`, the
 * provider is crash-looping: give up (status error, a timeline event, exit 1).
 *
 * @module
 */
import { backoffStep } from "../util/mod.ts";

/** Options of {@linkcode RestartPolicy}. */
export interface RestartPolicyOptions {
  /** The window that recent exits are counted in. Default 60 s. */
  windowMs?: number;
  /** A run shorter than this counts as rapid. Default 30 s. */
  rapidMs?: number;
  /** Give up when more rapid exits than this fall in the window. Default 5. */
  maxRapidExits?: number;
  /** The first delay, doubled per recent exit. Default 500 ms. */
  stepMs?: number;
  /** Longest delay. Default 10 s. */
  maxDelayMs?: number;
}

/** The verdict on one exit. */
export type RestartDecision =
  | { action: "restart"; delayMs: number; recentExits: number }
  | { action: "give-up"; recentExits: number; reason: string };

/** Tracks recent unexpected exits and decides each restart. */
export class RestartPolicy {
  readonly #exits: number[] = [];
  readonly #o: Required<RestartPolicyOptions>;

  constructor(options: RestartPolicyOptions = {}) {
    this.#o = {
      windowMs: options.windowMs ?? 60_000,
      rapidMs: options.rapidMs ?? 30_000,
      maxRapidExits: options.maxRapidExits ?? 5,
      stepMs: options.stepMs ?? 500,
      maxDelayMs: options.maxDelayMs ?? 10_000,
    };
  }

  /** Records an unexpected exit at `now` after `runtimeMs` of running; returns what to do. */
  onExit(now: number, runtimeMs: number): RestartDecision {
    this.#exits.push(now);
    while (this.#exits.length > 0 && this.#exits[0]! <= now - this.#o.windowMs) this.#exits.shift();
    const recentExits = this.#exits.length;
    if (runtimeMs < this.#o.rapidMs && recentExits > this.#o.maxRapidExits) {
      return {
        action: "give-up",
        recentExits,
        reason: `the provider exited ${recentExits} times within ${
          Math.round(this.#o.windowMs / 1000)
        } s, each after a short run`,
      };
    }
    const delayMs = backoffStep(recentExits, {
      baseMs: this.#o.stepMs,
      maxMs: Math.max(this.#o.stepMs, this.#o.maxDelayMs),
    });
    return { action: "restart", delayMs, recentExits };
  }
}
