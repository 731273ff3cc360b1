/**
 * The durable outbox: the runner's "nothing is ever lost" half (docs/outbox.md).
 *
 * Runner-to-relay events (session turns, traces, insights, hook reports) are written to an
 * SQLite file (`node:sqlite`, WAL) before anything is sent; {@linkcode Outbox.enqueue} returns
 * only once the event is committed, so it survives `kill -9`. A pump hands the oldest events,
 * in sequence order and in batches, to an injected `send`, and removes each one the send
 * reports delivered. Failures the send calls transient (relay down, 5xx, 401/403/408/429,
 * timeouts) are retried forever with capped, jittered backoff; only a permanent failure (the
 * relay rejected the request itself) poisons an event, which is then kept aside, logged FATAL
 * and requeueable. {@linkcode Outbox.wake} retries at once (the relay client calls it when the
 * relay is reachable again). The queue is bounded with a logged drop policy; one process at a
 * time may open a file (a second opener gets {@linkcode OutboxLockedError} naming the holder).
 *
 * This class composes the parts: the file (database.ts), the queue and its bound (queue.ts,
 * bound.ts), the delivery pump (pump.ts, retry.ts, batch.ts), the operator's operations
 * (admin.ts) and the change feed (changes.ts).
 *
 * @module
 */
import { OutboxAdmin, type PurgeTarget } from "./admin.ts";
import { ChangeFeed, type OutboxChange, type OutboxStats } from "./changes.ts";
import { OutboxDatabase } from "./database.ts";
import type { EnqueueResult, OutboxEventInput } from "./event.ts";
import { type OutboxOptions, resolveOptions } from "./options.ts";
import { Pump } from "./pump.ts";
import { OutboxQueue } from "./queue.ts";
import type { OutboxRecord, PoisonedRecord } from "./store.ts";
import type { Clock } from "../util/mod.ts";

/** A durable, ordered, bounded outbox over one SQLite file. See the module docs. */
export class Outbox implements Disposable {
  /** The SQLite file. */
  readonly path: string;
  readonly agentId: string;

  readonly #database: OutboxDatabase;
  readonly #changes: ChangeFeed;
  readonly #queue: OutboxQueue;
  readonly #pump: Pump;
  readonly #admin: OutboxAdmin;
  readonly #clock: Clock;
  #closed = false;

  /**
   * Opens (creating if needed) the outbox at `options.path` and takes its lock. Throws
   * {@linkcode OutboxLockedError} when another opener holds it, and a descriptive error when
   * the file is not an outbox (the file is left untouched).
   */
  constructor(options: OutboxOptions) {
    const settings = resolveOptions(options);
    this.path = settings.path;
    this.agentId = settings.agentId;
    this.#clock = settings.clock;
    this.#database = OutboxDatabase.open(settings.path, settings.durability);
    this.#changes = new ChangeFeed(() => this.stats());
    this.#queue = new OutboxQueue(this.#database, {
      ...settings,
      changes: this.#changes,
      onStored: () => this.#pump.kick(),
    });
    this.#pump = new Pump(this.#queue, this.#changes, settings);
    this.#admin = new OutboxAdmin(this.#queue, {
      changes: this.#changes,
      kick: () => this.#pump.kick(),
    });
  }

  /**
   * Queues an event. Synchronous, and never waits on the file's lock for more than a few
   * milliseconds. `durable: true`: the event is committed to the file and survives a crash of
   * this process. `durable: false`: another connection holds the file's lock, so the event
   * waits in memory, in order, and is stored once the lock is free ({@linkcode whenDurable}).
   * Throws a `TypeError` on bad input (nothing is stored), `OutboxHoldFullError` when too many
   * events already wait in memory, and an `Error` naming the file when storage fails (disk
   * full, closed outbox).
   */
  enqueue(input: OutboxEventInput): EnqueueResult {
    this.#assertOpen();
    const result = this.#queue.enqueue(input);
    this.#pump.kick();
    this.#changes.notifyEnqueued();
    return result;
  }

  /**
   * Resolves `true` once the event `seq` is stored in the file (at once if it is already),
   * `false` if the outbox closes first or `signal` aborts. Never rejects, but for a seq that
   * `enqueue` never returned (a `RangeError`).
   */
  whenDurable(seq: number, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    return this.#queue.whenDurable(seq, options.signal);
  }

  /** Starts delivering: drains now, then keeps a backstop poll. Requires a `send`. */
  start(): void {
    this.#assertOpen();
    this.#pump.start();
  }

  /**
   * Retries the head now, cancelling the current backoff (call it when the relay is reachable
   * again). If a send is in flight and then fails, the retry follows at once.
   */
  wake(): void {
    this.#pump.wake();
  }

  /**
   * Stops delivering: cancels the timers, aborts the send in flight, and resolves once the pump
   * has let go. Never rejects. Events stay queued; `start()` resumes.
   */
  stop(): Promise<void> {
    return this.#pump.stop();
  }

  /**
   * Delivers what can be delivered now: resolves with the pending count once the queue is
   * empty, a send has failed (the head is backing off), the outbox stops, or `signal` aborts.
   * For graceful shutdown: `await outbox.flush({ signal }); outbox.close()`.
   */
  flush(options: { signal?: AbortSignal } = {}): Promise<number> {
    return this.#pump.flush(options);
  }

  /**
   * The counters. Cheap: no query. `nextAttemptAt` is present while the pump backs off after a
   * failed send (a probe that sees the relay back calls {@linkcode wake}); `held` counts events
   * waiting in memory for another connection's lock on the file.
   */
  stats(): OutboxStats {
    const { pending, held, poisoned, delivered, dropped, lastError, lastErrorAt } = this.#queue
      .tally();
    const nextAttemptAt = this.#pump.nextAttemptAt;
    return {
      pending,
      held,
      poisoned,
      inFlight: this.#queue.inFlight.size,
      delivered,
      dropped,
      consecutiveFailures: this.#pump.consecutiveFailures,
      ...(nextAttemptAt > this.#clock.now() ? { nextAttemptAt } : {}),
      ...(lastError === undefined ? {} : { lastError }),
      ...(lastErrorAt === undefined ? {} : { lastErrorAt }),
    };
  }

  /** Pending events in delivery order (default the first 100). */
  list(options: { limit?: number; afterSeq?: number } = {}): OutboxRecord[] {
    this.#assertOpen();
    return this.#admin.list(options);
  }

  /** Poisoned events, oldest first (default the first 100). */
  poisoned(options: { limit?: number } = {}): PoisonedRecord[] {
    this.#assertOpen();
    return this.#admin.poisoned(options);
  }

  /**
   * Moves poisoned events back into the queue, keeping their seq (so they go before newer
   * events) and idempotency key. One event by seq, or all. Returns how many moved.
   */
  requeue(seq?: number): number {
    this.#assertOpen();
    return this.#admin.requeue(seq);
  }

  /**
   * Deletes events for good: one by seq (pending or poisoned), all poisoned, or everything.
   * Events in flight are never purged (purging one by seq throws). Returns how many went.
   */
  purge(target: PurgeTarget): number {
    this.#assertOpen();
    return this.#admin.purge(target);
  }

  /** Subscribes to changes (for /metrics and /monitor). Returns the unsubscribe function. */
  onChange(listener: (change: OutboxChange) => void): () => void {
    return this.#changes.subscribe(listener);
  }

  /** Whether `close()` has run. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Closes the file and releases the lock. Safe at any moment, mid-send included: the send is
   * aborted, its outcome ignored, and its records stay queued for the next opener (the relay
   * deduplicates them by idempotency key). Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pump.close();
    this.#queue.close();
    this.#database.close();
    this.#changes.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error(`Outbox ${this.path} is closed`);
  }
}
