/**
 * The operator's operations on an open outbox: list the pending and the poisoned events,
 * requeue poisoned events, purge events for good. Each checks its input, logs what it changed
 * and tells the change listeners.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import type { ChangeFeed } from "./changes.ts";
import { positiveInt } from "./options.ts";
import type { OutboxQueue } from "./queue.ts";
import type { OutboxRecord, PoisonedRecord } from "./store.ts";

const log = getLogger("outbox");

/** What `purge` deletes. */
export type PurgeTarget = { seq: number } | { poisoned: true } | { all: true };

/** Options of {@linkcode OutboxAdmin}. */
export interface AdminOptions {
  /** Where changes are announced. */
  changes: ChangeFeed;
  /** Lets the pump look at the queue again (after a requeue). */
  kick: () => void;
}

/** Inspection and maintenance of a queue. */
export class OutboxAdmin {
  readonly #queue: OutboxQueue;
  readonly #changes: ChangeFeed;
  readonly #kick: () => void;

  constructor(queue: OutboxQueue, options: AdminOptions) {
    this.#queue = queue;
    this.#changes = options.changes;
    this.#kick = options.kick;
  }

  /** Pending events in delivery order (default the first 100). */
  list(options: { limit?: number; afterSeq?: number } = {}): OutboxRecord[] {
    return this.#queue.list(positiveInt(options.limit, 100, "limit"), options.afterSeq);
  }

  /** Poisoned events, oldest first (default the first 100). */
  poisoned(options: { limit?: number } = {}): PoisonedRecord[] {
    return this.#queue.poisoned(positiveInt(options.limit, 100, "limit"));
  }

  /**
   * Moves poisoned events back into the queue, keeping their seq (so they go before newer
   * events) and idempotency key. One event by seq, or all. Returns how many moved.
   */
  requeue(seq?: number): number {
    if (seq !== undefined && !Number.isInteger(seq)) {
      throw new TypeError(`seq ${seq} must be a whole number`);
    }
    const moved = this.#queue.requeue(seq);
    if (moved > 0) {
      log.info(
        `Outbox requeued ${moved} poisoned event(s)${seq === undefined ? "" : ` (seq ${seq})`}`,
      );
      this.#changes.notify("requeued");
      this.#kick();
    }
    return moved;
  }

  /**
   * Deletes events for good: one by seq (pending or poisoned), all poisoned, or everything.
   * Events in flight are never purged (purging one by seq throws). Returns how many went.
   */
  purge(target: PurgeTarget): number {
    let removed: number;
    if ("seq" in target) {
      if (!Number.isInteger(target.seq)) {
        throw new TypeError(`seq ${target.seq} must be a whole number`);
      }
      if (this.#queue.inFlight.has(target.seq)) {
        throw new Error(`Outbox event seq=${target.seq} is being sent; try again`);
      }
      removed = this.#queue.purgeOne(target.seq);
    } else if ("poisoned" in target && target.poisoned === true) {
      removed = this.#queue.purgePoisoned();
    } else if ("all" in target && target.all === true) {
      removed = this.#queue.purgeAll();
    } else {
      throw new TypeError("purge needs { seq }, { poisoned: true } or { all: true }");
    }
    if (removed > 0) {
      this.#queue.reclaimIfWorthIt();
      this.#changes.notify("purged");
    }
    return removed;
  }
}
