/**
 * The one fake clock for tests: a {@linkcode Clock} whose time moves only when the test says.
 *
 * @module
 */
import type { Clock, TimerId } from "../../src/util/clock.ts";

interface Pending {
  id: number;
  at: number;
  callback: () => void;
}

/** A manual clock: `tick(ms)` runs, in time order, every timer that falls due. */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  #timers: Pending[] = [];

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, delayMs: number): number {
    const id = this.#nextId++;
    this.#timers.push({ id, at: this.#now + Math.max(0, delayMs), callback });
    return id;
  }

  clearTimeout(id: TimerId | undefined): void {
    this.#timers = this.#timers.filter((t) => t.id !== id);
  }

  /** How many timers are armed. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, running each timer due on the way (timers they arm included). */
  tick(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= end).sort((a, b) =>
        a.at - b.at || a.id - b.id
      );
      const next = due[0];
      if (!next) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#now = next.at;
      next.callback();
    }
    this.#now = end;
  }
}
