/**
 * What observers of an outbox see: its counters ({@linkcode OutboxStats}) and a feed of changes
 * for `onChange` listeners (the runner's /metrics and /monitor) and for `flush()` callers
 * waiting for the queue to move.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import { errorText } from "../util/mod.ts";

const log = getLogger("outbox");

/** Counters for metrics. `delivered` and `dropped` are totals kept in the file. */
export interface OutboxStats {
  /** Events not yet delivered, in flight and held included. */
  pending: number;
  /** Events held in memory, not yet stored: another connection holds the file's lock. */
  held: number;
  poisoned: number;
  /** Events handed to the send and not yet settled. */
  inFlight: number;
  delivered: number;
  /** Events removed by the bound. */
  dropped: number;
  /** Failures since the last delivery. */
  consecutiveFailures: number;
  /** When the head is next tried, while backing off (absent when it is due now). */
  nextAttemptAt?: number;
  lastError?: string;
  lastErrorAt?: number;
}

/** Why listeners were called. */
export type OutboxChangeReason =
  | "enqueued"
  | "stored"
  | "delivered"
  | "failed"
  | "poisoned"
  | "dropped"
  | "requeued"
  | "purged";

/** A change, as `Outbox.onChange` listeners receive it. */
export interface OutboxChange {
  reason: OutboxChangeReason;
  stats: OutboxStats;
}

/** Listeners, and waiters for the next change. */
export class ChangeFeed {
  readonly #stats: () => OutboxStats;
  readonly #listeners = new Set<(change: OutboxChange) => void>();
  readonly #waiters = new Set<() => void>();
  #enqueuedQueued = false;
  #closed = false;

  /** `stats` gives the counters each change carries. */
  constructor(stats: () => OutboxStats) {
    this.#stats = stats;
  }

  /** Adds a listener. Returns the unsubscribe function. */
  subscribe(listener: (change: OutboxChange) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Resolves at the next change or {@linkcode wakeWaiters} call, or when `signal` aborts. */
  nextChange(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      this.#waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /** Lets those waiting in {@linkcode nextChange} look again. */
  wakeWaiters(): void {
    if (this.#waiters.size === 0) return;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) waiter();
  }

  /** Tells waiters and listeners; a throwing listener is logged and skipped. */
  notify(reason: OutboxChangeReason): void {
    this.wakeWaiters();
    if (this.#listeners.size === 0) return;
    const change = { reason, stats: this.#stats() };
    for (const listener of [...this.#listeners]) {
      try {
        listener(change);
      } catch (error) {
        log.debug(`Outbox change listener threw: ${errorText(error)}`);
      }
    }
  }

  /** Tells listeners of enqueues once per burst: in a microtask, unless closed by then. */
  notifyEnqueued(): void {
    if (this.#enqueuedQueued || this.#listeners.size === 0) return;
    this.#enqueuedQueued = true;
    queueMicrotask(() => {
      this.#enqueuedQueued = false;
      if (!this.#closed) this.notify("enqueued");
    });
  }

  /** Drops the listeners and lets every waiter go. */
  close(): void {
    this.#closed = true;
    this.#listeners.clear();
    this.wakeWaiters();
  }
}
