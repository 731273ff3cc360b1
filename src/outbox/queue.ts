/**
 * The durable queue: the rows of an open outbox file and the counters mirrored from them in
 * memory (so that enqueue never counts rows). Every change to the rows goes through here:
 * enqueue with coalescing and the bound, and the moves the pump and the operator make:
 * delivered, failed, poisoned, requeued, purged.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import { type Clock, errorText } from "../util/mod.ts";
import { BatchReader } from "./batch.ts";
import { dropOldest, DropReport, type Victim } from "./bound.ts";
import { CLOSE_BUSY_TIMEOUT_MS, isBusy } from "./busy.ts";
import type { ChangeFeed } from "./changes.ts";
import type { OutboxDatabase, Statements } from "./database.ts";
import { checkEvent, type EnqueueResult, type OutboxEventInput } from "./event.ts";
import { type HeldEvent, HeldEvents } from "./held.ts";
import type { Refusal } from "./send.ts";
import {
  type OutboxRecord,
  type PoisonedRecord,
  type Row,
  rowToPoisoned,
  rowToRecordLenient,
} from "./store.ts";

const log = getLogger("outbox");

/** Options of {@linkcode OutboxQueue}. */
export interface QueueOptions {
  /** The agent, used in idempotency keys. */
  agentId: string;
  /** Most events kept (pending not in flight, plus poisoned). */
  maxRows: number;
  batchSize: number;
  batchBytes: number;
  clock: Clock;
  /** Jitter source, in [0, 1), for the retries while the file is locked. */
  random: () => number;
  /** Most events and bytes held in memory while the file is locked. */
  hold: { maxEvents: number; maxBytes: number };
  /** Where changes are announced. */
  changes: ChangeFeed;
  /** Called when held events were stored (the pump may send them). */
  onStored: () => void;
}

/** The queue's counters. `delivered` and `dropped` are totals kept in the file. */
export interface QueueTally {
  /** Events not yet delivered, in flight and held included. */
  pending: number;
  /** Events held in memory while the file is locked. */
  held: number;
  poisoned: number;
  delivered: number;
  dropped: number;
  lastError?: string;
  lastErrorAt?: number;
}

/** The rows of an open outbox and their counters. */
export class OutboxQueue {
  /** The seqs handed to the send and not yet settled: never replaced, dropped nor purged. */
  readonly inFlight = new Set<number>();
  /** Reads the batches to send. */
  readonly batches: BatchReader;

  readonly #db: OutboxDatabase;
  readonly #q: Statements;
  readonly #agentId: string;
  readonly #maxRows: number;
  readonly #clock: Clock;
  readonly #changes: ChangeFeed;
  readonly #drops: DropReport;
  readonly #held: HeldEvents;
  readonly #onStored: () => void;
  #pending: number;
  #poisoned: number;
  #delivered: number;
  #dropped: number;
  #nextSeq: number;
  #lastError: string | undefined;
  #lastErrorAt: number | undefined;
  #epoch = 0;
  /** After close: the first seq of the held events that could not be stored. */
  #lostFrom: number | undefined;

  constructor(db: OutboxDatabase, options: QueueOptions) {
    this.#db = db;
    this.#q = db.q;
    this.#agentId = options.agentId;
    this.#maxRows = options.maxRows;
    this.#clock = options.clock;
    this.#changes = options.changes;
    this.#drops = new DropReport(options.clock, options.maxRows);
    this.#onStored = options.onStored;
    this.#held = new HeldEvents({
      path: db.path,
      clock: options.clock,
      random: options.random,
      ...options.hold,
      write: (entries) => this.#store(entries),
      onStored: () => this.#heldStored(),
    });
    const opened = db.opened;
    this.#pending = opened.pending;
    this.#poisoned = opened.poisoned;
    this.#delivered = opened.delivered;
    this.#dropped = opened.dropped;
    this.#nextSeq = opened.nextSeq;
    this.#lastError = opened.lastError;
    this.#lastErrorAt = opened.lastErrorAt;
    this.batches = new BatchReader(db.q, {
      batchSize: options.batchSize,
      batchBytes: options.batchBytes,
      poison: (refusals) => this.poison(refusals),
    });
  }

  /** The SQLite file. */
  get path(): string {
    return this.#db.path;
  }

  /** Bumped by every change other than an append, so a batch read ahead can be trusted. */
  get epoch(): number {
    return this.#epoch;
  }

  /** Stored events not yet delivered, in flight included (held events not included). */
  get pending(): number {
    return this.#pending;
  }

  /** The counters. */
  tally(): QueueTally {
    return {
      pending: this.#pending + this.#held.size,
      held: this.#held.size,
      poisoned: this.#poisoned,
      delivered: this.#delivered,
      dropped: this.#dropped,
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }),
      ...(this.#lastErrorAt === undefined ? {} : { lastErrorAt: this.#lastErrorAt }),
    };
  }

  /**
   * Takes an event: stores it now (an append is one insert; a coalesce also deletes the
   * pending, not in flight, coalesce rows with its key; at the bound the oldest rows go, all in
   * one transaction), or, while another connection holds the file's lock, holds it in memory
   * behind the events already held, to be stored by a timer (`durable: false`). Throws a
   * `TypeError` on bad input, `OutboxHoldFullError` when the memory queue is full, and an
   * `Error` naming the file when storage fails otherwise.
   */
  enqueue(input: OutboxEventInput): EnqueueResult {
    const event = checkEvent(input, () => this.#clock.now());
    const seq = this.#nextSeq;
    const idempotencyKey = event.idempotencyKey ?? `${this.#agentId}:${crypto.randomUUID()}`;
    const entry: HeldEvent = { seq, idempotencyKey, event };
    if (this.#held.size === 0) {
      try {
        this.#store([entry]);
        this.#nextSeq = seq + 1;
        return { seq, idempotencyKey, durable: true };
      } catch (error) {
        if (!isBusy(error)) {
          throw new Error(
            `Outbox ${this.path} could not store a "${event.kind}" event: ${errorText(error)}`,
            { cause: error },
          );
        }
      }
    }
    this.#held.hold(entry);
    this.#nextSeq = seq + 1;
    return { seq, idempotencyKey, durable: false };
  }

  /** Events held in memory, waiting for the lock. */
  get held(): number {
    return this.#held.size;
  }

  /**
   * Resolves `true` once the event `seq` is stored (at once if it is), `false` if the outbox
   * closes first or `signal` aborts. Rejects with a `RangeError` for a seq never assigned.
   */
  whenDurable(seq: number, signal?: AbortSignal): Promise<boolean> {
    if (!Number.isSafeInteger(seq) || seq < 1 || seq >= this.#nextSeq) {
      return Promise.reject(new RangeError(`Outbox event seq ${seq} was never assigned`));
    }
    if (this.#lostFrom !== undefined && seq >= this.#lostFrom) return Promise.resolve(false);
    return this.#held.whenStored(seq, signal);
  }

  /**
   * Writes `entries` (in seq order): a lone append under the bound is one autocommit insert;
   * anything else is one transaction. The counters change only once it committed.
   */
  #store(entries: readonly HeldEvent[]): void {
    const only = entries.length === 1 ? entries[0] : undefined;
    if (only && only.event.mode === "append" && this.#countedRows() + 1 <= this.#maxRows) {
      const e = only.event;
      this.#q.insert.run(
        only.seq,
        e.kind,
        e.mode,
        e.dedupeKey,
        e.occurredAt,
        only.idempotencyKey,
        e.payload,
      );
      this.#pending += 1;
      return;
    }
    let added = 0;
    let poisonedGone = 0;
    const victims: Victim[] = [];
    this.#db.transaction(() => {
      for (const { seq, idempotencyKey, event: e } of entries) {
        let replaced = 0;
        if (e.mode === "coalesce") {
          const matches = this.#q.coalesceMatches.all(e.dedupeKey ?? "") as { seq: number }[];
          for (const match of matches) {
            if (this.inFlight.has(match.seq)) continue;
            replaced += Number(this.#q.deletePending.run(match.seq).changes);
          }
        }
        this.#q.insert.run(
          seq,
          e.kind,
          e.mode,
          e.dedupeKey,
          e.occurredAt,
          idempotencyKey,
          e.payload,
        );
        added += 1 - replaced;
        const poisoned = this.#poisoned - poisonedGone;
        const counted = this.#pending + added - this.inFlight.size + poisoned;
        const excess = counted - this.#maxRows;
        if (excess <= 0) continue;
        const dropped = dropOldest(this.#q, excess, {
          newest: seq,
          inFlight: this.inFlight,
          anyPoisoned: poisoned > 0,
        });
        for (const victim of dropped) {
          if (victim.poisoned) poisonedGone++;
          else added--;
        }
        victims.push(...dropped);
      }
    });
    this.#epoch++;
    this.#pending += added;
    this.#poisoned -= poisonedGone;
    if (victims.length > 0) this.#afterDrops(victims);
  }

  /** Held events were stored: the pump may send them, and listeners hear of it. */
  #heldStored(): void {
    this.#changes.notify("stored");
    this.#onStored();
  }

  /** Rows the bound counts: pending not in flight, plus poisoned. */
  #countedRows(): number {
    return this.#pending - this.inFlight.size + this.#poisoned;
  }

  #afterDrops(victims: Victim[]): void {
    this.#dropped += victims.length;
    this.#drops.report(victims, this.#dropped);
    this.#db.removed(victims.length);
    this.#changes.notify("dropped");
  }

  /**
   * Deletes delivered rows and counts them, in one transaction. A run of rows at the head of
   * the batch (`contiguous`) goes in one range delete, checked by its count: should any other
   * row sit inside the range, the transaction is undone and the rows go one by one instead.
   * Returns how many were removed.
   */
  delivered(acked: OutboxRecord[], contiguous: boolean): number {
    const removed = this.#removeDelivered(acked, contiguous);
    this.#pending -= removed;
    this.#delivered += removed;
    this.#db.removed(removed);
    return removed;
  }

  #removeDelivered(acked: OutboxRecord[], contiguous: boolean): number {
    const first = acked[0];
    const last = acked[acked.length - 1];
    if (!first || !last) return 0;
    const account = (removed: number) => {
      if (removed > 0) this.#q.metaAdd.run(removed, "delivered");
      this.#q.metaMax.run(last.seq, "seq_floor");
      return removed;
    };
    if (contiguous && acked.length > 1) {
      const mismatch = new Error("range mismatch");
      try {
        return this.#db.transaction(() => {
          const removed = Number(this.#q.deleteRange.run(first.seq, last.seq).changes);
          if (removed !== acked.length) throw mismatch;
          return account(removed);
        });
      } catch (error) {
        if (error !== mismatch) throw error;
      }
    }
    return this.#db.transaction(() => {
      let removed = 0;
      for (const record of acked) {
        removed += Number(this.#q.deletePending.run(record.seq).changes);
      }
      return account(removed);
    });
  }

  /** Moves refused rows to `poisoned` and logs each FATAL. */
  poison(refusals: Refusal[]): void {
    const at = Math.round(this.#clock.now());
    this.#epoch++;
    let moved = 0;
    this.#db.transaction(() => {
      for (const { record, error } of refusals) {
        if (Number(this.#q.poison.run(error, at, record.seq).changes) === 0) continue;
        this.#q.deletePending.run(record.seq);
        moved++;
      }
      this.#setLastError(refusals[refusals.length - 1]?.error ?? "", at);
    });
    this.#pending -= moved;
    this.#poisoned += moved;
    const where = operatorFlags(this.#agentId, this.#db.path);
    for (const { record, error } of refusals) {
      log.error(
        `Outbox event seq=${record.seq} kind=${record.kind} poisoned after ` +
          `${record.attempts + 1} attempt(s), the relay refused it permanently: ${error}. ` +
          `It is kept: list it with "agent-relay-runner outbox poisoned ${where}", retry it with ` +
          `"agent-relay-runner outbox requeue ${where} --seq ${record.seq}"`,
      );
    }
    this.#changes.notify("poisoned");
  }

  /**
   * Counts an attempt against each of `records`, whose first failed with `text` (the rest
   * came after it and were not acked).
   */
  failed(records: readonly OutboxRecord[], text: string): void {
    const [head, ...rest] = records;
    if (!head) return;
    this.#db.transaction(() => {
      this.#q.failed.run(text, head.seq);
      for (const record of rest) this.#q.attempted.run(record.seq);
    });
  }

  /** Records the last error, in the file if it can (in memory only on storage trouble). */
  noteError(text: string, at: number): void {
    try {
      this.#setLastError(text, at);
    } catch {
      // Storage trouble; the in-memory copy is enough for metrics.
      this.#lastError = text;
      this.#lastErrorAt = at;
    }
  }

  #setLastError(text: string, at: number): void {
    this.#lastError = text;
    this.#lastErrorAt = at;
    this.#q.metaSet.run("last_error", text);
    this.#q.metaSet.run("last_error_at", at);
  }

  /** Pending events in delivery order, after `afterSeq` if given. */
  list(limit: number, afterSeq?: number): OutboxRecord[] {
    const rows =
      (afterSeq === undefined
        ? this.#q.head.all(limit)
        : this.#q.pendingAfter.all(afterSeq, limit)) as unknown as Row[];
    return rows.map(rowToRecordLenient);
  }

  /** Poisoned events, oldest first. */
  poisoned(limit: number): PoisonedRecord[] {
    return (this.#q.poisonedList.all(limit) as unknown as Row[]).map(rowToPoisoned);
  }

  /** Moves one poisoned event (by seq) or all back into the queue. Returns how many moved. */
  requeue(seq?: number): number {
    this.#epoch++;
    const moved = this.#db.transaction(() => {
      if (seq === undefined) {
        const n = Number(this.#q.requeueAll.run().changes);
        this.#q.deleteAllPoisoned.run();
        return n;
      }
      const n = Number(this.#q.requeueOne.run(seq).changes);
      if (n > 0) this.#q.deletePoisoned.run(seq);
      return n;
    });
    this.#poisoned -= moved;
    this.#pending += moved;
    return moved;
  }

  /** Deletes the event `seq`, pending or poisoned (the caller checks it is not in flight). */
  purgeOne(seq: number): number {
    let pending = 0;
    let poisoned = 0;
    this.#epoch++;
    this.#db.transaction(() => {
      poisoned = Number(this.#q.deletePoisoned.run(seq).changes);
      pending = Number(this.#q.deletePending.run(seq).changes);
      this.#q.metaMax.run(seq, "seq_floor");
    });
    return this.#purged(pending, poisoned);
  }

  /** Deletes every poisoned event. */
  purgePoisoned(): number {
    this.#epoch++;
    const poisoned = this.#db.transaction(() => Number(this.#q.deleteAllPoisoned.run().changes));
    return this.#purged(0, poisoned);
  }

  /** Deletes every event but those in flight. */
  purgeAll(): number {
    let pending = 0;
    let poisoned = 0;
    this.#epoch++;
    this.#db.transaction(() => {
      poisoned = Number(this.#q.deleteAllPoisoned.run().changes);
      const rows = this.#q.head.all(this.#pending + 1) as unknown as Row[];
      for (const row of rows) {
        if (this.inFlight.has(row.seq)) continue;
        pending += Number(this.#q.deletePending.run(row.seq).changes);
        this.#q.metaMax.run(row.seq, "seq_floor");
      }
    });
    return this.#purged(pending, poisoned);
  }

  #purged(pending: number, poisoned: number): number {
    this.#pending -= pending;
    this.#poisoned -= poisoned;
    this.#db.removed(pending + poisoned);
    if (pending + poisoned > 0) {
      log.warn(`Outbox purged ${pending} pending and ${poisoned} poisoned event(s)`);
    }
    return pending + poisoned;
  }

  /** After a drain or a purge: gives space back to the file system when it is worth it. */
  reclaimIfWorthIt(): void {
    this.#db.reclaimIfWorthIt();
  }

  /**
   * Stores what is held (waiting up to `CLOSE_BUSY_TIMEOUT_MS` for the lock) or logs what is
   * lost, and reports the drops not reported yet. The database is closed by its owner.
   */
  close(): void {
    if (this.#held.size > 0) {
      try {
        this.#db.setBusyTimeout(CLOSE_BUSY_TIMEOUT_MS);
      } catch {
        // The last attempt waits as briefly as the others.
      }
    }
    this.#lostFrom = this.#held.close();
    this.#drops.flush();
  }
}

/**
 * The flags that point the `outbox` command at this file: `--agent-id` when the file is where
 * that id's default state dir keeps it, else `--state-dir` (quoted when it holds a space).
 */
export function operatorFlags(agentId: string, path: string): string {
  const parts = path.split("/");
  const [file, outbox, agent, state] = parts.slice(-4).reverse();
  if (file === "outbox.sqlite" && outbox === "outbox" && agent === agentId && state === "state") {
    return `--agent-id ${agentId}`;
  }
  const stateDir = parts.slice(0, -2).join("/") || "/";
  return `--state-dir ${/[\s"'$`\\]/.test(stateDir) ? JSON.stringify(stateDir) : stateDir}`;
}
