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
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { dirname } from "node:path";
import { getLogger } from "../logger.ts";
import { backoffDelay, type BackoffOptions, checkBackoff, DEFAULT_BACKOFF } from "../util/mod.ts";
import { acquireOutboxLock, type OutboxLock } from "./lock.ts";
import {
  checkSchema,
  CorruptRowError,
  metaNumber,
  metaString,
  type OutboxMode,
  type OutboxRecord,
  type PoisonedRecord,
  type Row,
  rowToPoisoned,
  rowToRecord,
  rowToRecordLenient,
  SCHEMA_SQL,
  SCHEMA_VERSION,
  SQL,
} from "./store.ts";

export { OutboxLockedError } from "./lock.ts";
export type { OutboxMode, OutboxRecord, PoisonedRecord } from "./store.ts";
export type { BackoffOptions } from "../util/mod.ts";

const log = getLogger("outbox");

/** What one record's delivery came to, as the send reports it. */
export type SendResult =
  | { ok: true }
  | {
    ok: false;
    /** The failure (an Error, a message...). */
    error: unknown;
    /** Whether retrying can never help. When absent, the outbox's `classify` decides. */
    permanent?: boolean;
  };

/**
 * The transport: deliver `records` (1 to `batchSize`, in sequence order) and report one result
 * per record, in the same order. A send should deliver in order and stop at its first failure,
 * reporting the rest as transient failures. A rejected promise counts as a failure of the whole
 * batch, classified by `classify`. The signal aborts when the outbox stops or closes.
 */
export type OutboxSend = (
  records: OutboxRecord[],
  options: { signal: AbortSignal },
) => Promise<SendResult[]>;

/** Whether a failure can be retried. */
export type FailureClass = "transient" | "permanent";

/** Timer functions (injected in tests). */
export interface OutboxTimers {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(id: unknown): void;
}

/** Options of {@linkcode Outbox}. */
export interface OutboxOptions {
  /** The SQLite file (see `outboxPath()` in outbox_cli.ts); its directory is created. */
  path: string;
  /** The agent, used in idempotency keys. */
  agentId: string;
  /** The transport. Optional for inspection and maintenance; required by `start()`. */
  send?: OutboxSend;
  /** Most records per send. Default 500. */
  batchSize?: number;
  /**
   * Most payload bytes per send (JSON text; a larger single event still goes alone). Default
   * 1 MiB.
   */
  batchBytes?: number;
  /** Most events kept (pending not in flight, plus poisoned). Default 50,000. */
  maxRows?: number;
  /** Retry backoff. Default 1 s doubling to 60 s, jittered in [step/2, step]. */
  backoff?: Partial<BackoffOptions>;
  /** The backstop poll while started, in ms. Default 5,000. */
  pollMs?: number;
  /**
   * `normal` (default): SQLite `synchronous=NORMAL`; a committed event survives a process
   * crash. `full`: `synchronous=FULL`; it also survives power loss, at an fsync per enqueue.
   */
  durability?: "normal" | "full";
  /** Classifies a thrown send error, or a failed result without `permanent`. */
  classify?: (error: unknown) => FailureClass;
  /** The clock (epoch ms). */
  now?: () => number;
  timers?: OutboxTimers;
  /** Jitter source, in [0, 1). */
  random?: () => number;
}

/** An event to queue. */
export interface OutboxEventInput {
  kind: string;
  /** Any JSON-serializable value (`undefined` is stored as `null`). */
  payload?: unknown;
  /** Required for `coalesce`; a label for `append`. */
  dedupeKey?: string;
  /** Default `append`. `coalesce` replaces pending, not-in-flight coalesce events with this key. */
  mode?: OutboxMode;
  /** Epoch ms; default now. Stamped once, kept through retries. */
  occurredAt?: number;
}

/** What {@linkcode Outbox.enqueue} assigned. */
export interface EnqueueResult {
  seq: number;
  idempotencyKey: string;
}

/** Counters for metrics. `delivered` and `dropped` are totals kept in the file. */
export interface OutboxStats {
  /** Events not yet delivered, in flight included. */
  pending: number;
  poisoned: number;
  /** Events handed to the send and not yet settled. */
  inFlight: number;
  delivered: number;
  /** Events removed by the bound. */
  dropped: number;
  /** Failures since the last delivery. */
  consecutiveFailures: number;
  /** When the head is next tried, while backing off. */
  nextAttemptAt?: number;
  lastError?: string;
  lastErrorAt?: number;
}

/** Why listeners were called. */
export type OutboxChangeReason =
  | "enqueued"
  | "delivered"
  | "failed"
  | "poisoned"
  | "dropped"
  | "requeued"
  | "purged";

/** A change, as {@linkcode Outbox.onChange} listeners receive it. */
export interface OutboxChange {
  reason: OutboxChangeReason;
  stats: OutboxStats;
}

/** What {@linkcode Outbox.purge} deletes. */
export type PurgeTarget = { seq: number } | { poisoned: true } | { all: true };

const DEFAULT_BATCH = 500;
const DEFAULT_BATCH_BYTES = 1024 * 1024;
const DEFAULT_MAX_ROWS = 50_000;
const DEFAULT_POLL_MS = 5_000;
/** Free pages that make a drained outbox reclaim space (1 MiB of 4 KiB pages). */
const RECLAIM_PAGES = 256;
/** Keep the WAL file at most this large after a checkpoint. */
const WAL_LIMIT_BYTES = 4 * 1024 * 1024;
/** At most one drop report per this many ms; the rest are counted into the next. */
const DROP_LOG_EVERY_MS = 1_000;
const MAX_ERROR_CHARS = 1_000;

/** The default classifier: an error with `permanent === true` is permanent. */
export function defaultClassify(error: unknown): FailureClass {
  if (typeof error === "object" && error !== null) {
    try {
      if ((error as { permanent?: unknown }).permanent === true) return "permanent";
    } catch {
      // A throwing getter: treat as transient.
    }
  }
  return "transient";
}

function errorText(error: unknown): string {
  let text: string;
  if (error instanceof Error) text = error.message || error.name;
  else if (typeof error === "string") text = error;
  else {
    try {
      text = JSON.stringify(error) ?? String(error);
    } catch {
      text = String(error);
    }
  }
  text = text.replace(/\s+/g, " ").trim() || "unknown error";
  return text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS)}...` : text;
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} ${value} must be a whole number >= 1`);
  }
  return value;
}

const realTimers: OutboxTimers = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
};

interface Statements {
  insert: StatementSync;
  coalesceMatches: StatementSync;
  deletePending: StatementSync;
  deleteRange: StatementSync;
  oldestPending: StatementSync;
  oldestPoisoned: StatementSync;
  deletePoisoned: StatementSync;
  head: StatementSync;
  pendingAfter: StatementSync;
  poisonedList: StatementSync;
  poison: StatementSync;
  requeueOne: StatementSync;
  requeueAll: StatementSync;
  deleteAllPoisoned: StatementSync;
  failed: StatementSync;
  attempted: StatementSync;
  metaSet: StatementSync;
  metaAdd: StatementSync;
  metaMax: StatementSync;
}

/** A durable, ordered, bounded outbox over one SQLite file. See the module docs. */
export class Outbox implements Disposable {
  /** The SQLite file. */
  readonly path: string;
  readonly agentId: string;

  readonly #db: DatabaseSync;
  readonly #lock: OutboxLock;
  readonly #q: Statements;
  readonly #send: OutboxSend | undefined;
  readonly #batchSize: number;
  readonly #batchBytes: number;
  /** Average payload size of the rows read lately: sizes reads so that batchBytes is kept. */
  #avgRowBytes = 1024;
  readonly #maxRows: number;
  readonly #backoff: BackoffOptions;
  readonly #pollMs: number;
  readonly #classify: (error: unknown) => FailureClass;
  readonly #now: () => number;
  readonly #timers: OutboxTimers;
  readonly #random: () => number;

  // Counters mirrored in memory, so enqueue never counts rows.
  #pendingRows = 0;
  #poisonedRows = 0;
  #delivered = 0;
  #dropped = 0;
  #nextSeq = 1;
  #lastError: string | undefined;
  #lastErrorAt: number | undefined;

  #running = false;
  #closed = false;
  #pumping: Promise<void> | undefined;
  #kickQueued = false;
  #inFlight = new Set<number>();
  /** Bumped by every change other than an append, so a batch read ahead can be trusted. */
  #epoch = 0;
  #abort: AbortController | undefined;
  #wokenDuringSend = false;
  #failures = 0;
  #failingSince: number | undefined;
  #nextAttemptAt = 0;
  #retryTimer: unknown;
  #pollTimer: unknown;
  /** After a thrown permanent error on a batch: send one at a time through this seq. */
  #isolateThrough: number | undefined;
  #removedSinceReclaim = 0;
  #listeners = new Set<(change: OutboxChange) => void>();
  #waiters = new Set<() => void>();
  #enqueueNotifyQueued = false;
  #dropLogAt = -Infinity;
  #dropsUnreported = 0;

  /**
   * Opens (creating if needed) the outbox at `options.path` and takes its lock. Throws
   * {@linkcode OutboxLockedError} when another opener holds it, and a descriptive error when
   * the file is not an outbox (the file is left untouched).
   */
  constructor(options: OutboxOptions) {
    if (typeof options.path !== "string" || options.path === "" || options.path === ":memory:") {
      throw new TypeError(`Outbox path "${options.path}" must be a file path`);
    }
    if (typeof options.agentId !== "string" || options.agentId.trim() === "") {
      throw new TypeError(`Outbox agentId "${options.agentId}" must be a non-empty string`);
    }
    this.path = options.path;
    this.agentId = options.agentId;
    this.#send = options.send;
    this.#batchSize = positiveInt(options.batchSize, DEFAULT_BATCH, "batchSize");
    this.#batchBytes = positiveInt(options.batchBytes, DEFAULT_BATCH_BYTES, "batchBytes");
    this.#maxRows = positiveInt(options.maxRows, DEFAULT_MAX_ROWS, "maxRows");
    this.#pollMs = positiveInt(options.pollMs, DEFAULT_POLL_MS, "pollMs");
    this.#backoff = checkBackoff({ ...DEFAULT_BACKOFF, ...options.backoff });
    const durability = options.durability ?? "normal";
    if (durability !== "normal" && durability !== "full") {
      throw new TypeError(`durability "${durability}" must be "normal" or "full"`);
    }
    this.#classify = options.classify ?? defaultClassify;
    this.#now = options.now ?? Date.now;
    this.#timers = options.timers ?? realTimers;
    this.#random = options.random ?? Math.random;

    Deno.mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    this.#lock = acquireOutboxLock(this.path, () => this.#readHolderPid());
    let db: DatabaseSync | undefined;
    try {
      try {
        db = new DatabaseSync(this.path, { timeout: 1_000 });
      } catch (error) {
        throw new Error(`Cannot open outbox ${this.path}: ${errorText(error)}`, { cause: error });
      }
      try {
        Deno.chmodSync(this.path, 0o600);
      } catch {
        // Best effort (a file system without modes).
      }
      this.#db = db;
      this.#setUp(durability);
      this.#q = this.#prepare();
    } catch (error) {
      try {
        db?.close();
      } catch {
        // Already closed.
      }
      this.#lock.release();
      if (error instanceof Error && /file is not a database|malformed/i.test(error.message)) {
        throw new Error(
          `Outbox ${this.path} is not a readable SQLite database (${error.message}); ` +
            `it was left untouched`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  #readHolderPid(): number | undefined {
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(this.path, { readOnly: true, timeout: 200 });
      return metaNumber(db, "holder_pid");
    } catch {
      return undefined;
    } finally {
      try {
        db?.close();
      } catch {
        // Already closed.
      }
    }
  }

  #setUp(durability: "normal" | "full"): void {
    const db = this.#db;
    const fresh = checkSchema(db, this.path);
    if (fresh) db.exec("PRAGMA auto_vacuum = INCREMENTAL");
    const mode = (db.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode: string })
      .journal_mode;
    if (mode !== "wal") {
      throw new Error(`Outbox ${this.path} cannot use WAL mode (got "${mode}")`);
    }
    db.exec(`PRAGMA synchronous = ${durability === "full" ? "FULL" : "NORMAL"}`);
    db.exec(`PRAGMA journal_size_limit = ${WAL_LIMIT_BYTES}`);
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(SCHEMA_SQL);
      if (fresh) db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
      db.prepare(SQL.metaSet).run("holder_pid", Deno.pid);
      db.exec("COMMIT");
    } catch (error) {
      try {
        db.exec("ROLLBACK");
      } catch {
        // Already rolled back.
      }
      throw error;
    }
    this.#pendingRows = (db.prepare(SQL.countPending).get() as { n: number }).n;
    this.#poisonedRows = (db.prepare(SQL.countPoisoned).get() as { n: number }).n;
    this.#nextSeq = (db.prepare(SQL.maxSeq).get() as { n: number }).n + 1;
    this.#delivered = metaNumber(db, "delivered") ?? 0;
    this.#dropped = metaNumber(db, "dropped") ?? 0;
    const lastError = metaString(db, "last_error");
    if (lastError !== undefined) {
      this.#lastError = lastError;
      const at = metaNumber(db, "last_error_at");
      if (at !== undefined) this.#lastErrorAt = at;
    }
  }

  #prepare(): Statements {
    const p = (sql: string) => this.#db.prepare(sql);
    return {
      insert: p(SQL.insert),
      coalesceMatches: p(SQL.coalesceMatches),
      deletePending: p(SQL.deletePending),
      deleteRange: p(SQL.deleteRange),
      oldestPending: p(SQL.oldestPending),
      oldestPoisoned: p(SQL.oldestPoisoned),
      deletePoisoned: p(SQL.deletePoisoned),
      head: p(SQL.head),
      pendingAfter: p(SQL.pendingAfter),
      poisonedList: p(SQL.poisonedList),
      poison: p(SQL.poison),
      requeueOne: p(SQL.requeueOne),
      requeueAll: p(SQL.requeueAll),
      deleteAllPoisoned: p(SQL.deleteAllPoisoned),
      failed: p(SQL.failed),
      attempted: p(SQL.attempted),
      metaSet: p(SQL.metaSet),
      metaAdd: p(SQL.metaAdd),
      metaMax: p(SQL.metaMax),
    };
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error(`Outbox ${this.path} is closed`);
  }

  #transaction<T>(body: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    let result: T;
    try {
      result = body();
    } catch (error) {
      try {
        this.#db.exec("ROLLBACK");
      } catch {
        // The failed statement may have rolled back already.
      }
      throw error;
    }
    this.#db.exec("COMMIT");
    return result;
  }

  // ------------------------------------------------------------------------------------------
  // Enqueue

  /**
   * Queues an event. Synchronous: when it returns, the event is committed to the file and
   * survives a crash of this process. Throws a `TypeError` on bad input (nothing is stored)
   * and an `Error` naming the file when storage fails (disk full, closed outbox).
   */
  enqueue(input: OutboxEventInput): EnqueueResult {
    this.#assertOpen();
    if (typeof input !== "object" || input === null) {
      throw new TypeError("Outbox event must be an object with a kind");
    }
    const { kind } = input;
    if (typeof kind !== "string" || kind.trim() === "") {
      throw new TypeError(`Outbox event kind ${JSON.stringify(kind)} must be a non-empty string`);
    }
    const mode = input.mode ?? "append";
    if (mode !== "append" && mode !== "coalesce") {
      throw new TypeError(`Outbox event mode "${mode}" must be "append" or "coalesce"`);
    }
    const dedupeKey = input.dedupeKey;
    if (dedupeKey !== undefined && typeof dedupeKey !== "string") {
      throw new TypeError(`Outbox event dedupeKey ${String(dedupeKey)} must be a string`);
    }
    if (mode === "coalesce" && !dedupeKey) {
      throw new TypeError(`Outbox event "${kind}" in coalesce mode needs a dedupeKey`);
    }
    const occurredAt = input.occurredAt ?? Math.round(this.#now());
    if (typeof occurredAt !== "number" || !Number.isFinite(occurredAt)) {
      throw new TypeError(`Outbox event occurredAt ${String(occurredAt)} must be epoch ms`);
    }
    let payload: string;
    try {
      payload = JSON.stringify(input.payload ?? null) ?? "null";
    } catch (error) {
      throw new TypeError(
        `Outbox event "${kind}" payload is not JSON-serializable: ${errorText(error)}`,
        { cause: error },
      );
    }

    const seq = this.#nextSeq;
    const idempotencyKey = `${this.agentId}:${crypto.randomUUID()}`;
    const row = [seq, kind, mode, dedupeKey ?? null, occurredAt, idempotencyKey, payload] as const;
    const overflow = this.#countedRows() + 1 - this.#maxRows;
    let replaced = 0;
    let dropped: { seq: number; kind: string; poisoned: boolean }[] = [];
    try {
      if (mode === "append" && overflow <= 0) {
        this.#q.insert.run(...row);
      } else {
        this.#epoch++;
        [replaced, dropped] = this.#transaction(() => {
          let removed = 0;
          if (mode === "coalesce") {
            const matches = this.#q.coalesceMatches.all(dedupeKey ?? "") as { seq: number }[];
            for (const match of matches) {
              if (this.#inFlight.has(match.seq)) continue;
              removed += Number(this.#q.deletePending.run(match.seq).changes);
            }
          }
          this.#q.insert.run(...row);
          const excess = this.#countedRows() - removed + 1 - this.#maxRows;
          return [removed, excess > 0 ? this.#dropOldest(excess, seq) : []] as const;
        }) as [number, { seq: number; kind: string; poisoned: boolean }[]];
      }
    } catch (error) {
      throw new Error(
        `Outbox ${this.path} could not store a "${kind}" event: ${errorText(error)}`,
        { cause: error },
      );
    }
    this.#nextSeq = seq + 1;
    this.#pendingRows += 1 - replaced;
    if (dropped.length > 0) this.#afterDrops(dropped);
    this.#kick();
    this.#notifyEnqueued();
    return { seq, idempotencyKey };
  }

  /** Rows the bound counts: pending not in flight, plus poisoned. */
  #countedRows(): number {
    return this.#pendingRows - this.#inFlight.size + this.#poisonedRows;
  }

  /** Inside a transaction: deletes `count` victims, poisoned first, never in flight. */
  #dropOldest(count: number, newest: number): { seq: number; kind: string; poisoned: boolean }[] {
    const victims: { seq: number; kind: string; poisoned: boolean }[] = [];
    if (this.#poisonedRows > 0) {
      const rows = this.#q.oldestPoisoned.all(count) as { seq: number; kind: string }[];
      for (const row of rows) {
        this.#q.deletePoisoned.run(row.seq);
        victims.push({ ...row, poisoned: true });
      }
    }
    let need = count - victims.length;
    if (need > 0) {
      const rows = this.#q.oldestPending.all(need + this.#inFlight.size) as {
        seq: number;
        kind: string;
      }[];
      for (const row of rows) {
        if (need === 0) break;
        if (this.#inFlight.has(row.seq) || row.seq === newest) continue;
        this.#q.deletePending.run(row.seq);
        victims.push({ ...row, poisoned: false });
        need--;
      }
    }
    if (victims.length > 0) this.#q.metaAdd.run(victims.length, "dropped");
    return victims;
  }

  #afterDrops(victims: { seq: number; kind: string; poisoned: boolean }[]): void {
    for (const victim of victims) {
      if (victim.poisoned) this.#poisonedRows--;
      else this.#pendingRows--;
    }
    this.#dropped += victims.length;
    const now = this.#now();
    if (now - this.#dropLogAt >= DROP_LOG_EVERY_MS) {
      const first = victims[0];
      const described = victims.length === 1 && first
        ? `${first.poisoned ? "poisoned" : "pending"} event seq=${first.seq} kind=${first.kind}`
        : `${victims.length} events (seq ${victims.map((v) => v.seq).join(", ")})`;
      const earlier = this.#dropsUnreported > 0
        ? `; ${this.#dropsUnreported} more dropped since the last report`
        : "";
      log.warn(
        `Outbox full (maxRows ${this.#maxRows}): dropped ${described}${earlier}; ` +
          `${this.#dropped} dropped in total`,
      );
      this.#dropLogAt = now;
      this.#dropsUnreported = 0;
    } else {
      this.#dropsUnreported += victims.length;
    }
    this.#removedSinceReclaim += victims.length;
    this.#notify("dropped");
  }

  // ------------------------------------------------------------------------------------------
  // Delivery

  /** Starts delivering: drains now, then keeps a backstop poll. Requires a `send`. */
  start(): void {
    this.#assertOpen();
    if (!this.#send) {
      throw new Error(`Outbox ${this.path} has no send function; pass options.send to deliver`);
    }
    if (this.#running) return;
    this.#running = true;
    this.#armPoll();
    this.#kick();
  }

  /**
   * Retries the head now, cancelling the current backoff (call it when the relay is reachable
   * again). If a send is in flight and then fails, the retry follows at once.
   */
  wake(): void {
    if (this.#closed) return;
    this.#nextAttemptAt = 0;
    if (this.#retryTimer !== undefined) {
      this.#timers.clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
    if (this.#inFlight.size > 0) this.#wokenDuringSend = true;
    this.#kick();
  }

  /**
   * Stops delivering: cancels the timers, aborts the send in flight, and resolves once the pump
   * has let go. Never rejects. Events stay queued; `start()` resumes.
   */
  async stop(): Promise<void> {
    this.#running = false;
    this.#clearTimers();
    this.#abort?.abort(new Error("Outbox stopped"));
    this.#resolveWaiters();
    await this.#pumping;
  }

  /**
   * Delivers what can be delivered now: resolves with the pending count once the queue is
   * empty, a send has failed (the head is backing off), the outbox stops, or `signal` aborts.
   * For graceful shutdown: `await outbox.flush({ signal }); outbox.close()`.
   */
  async flush(options: { signal?: AbortSignal } = {}): Promise<number> {
    const { signal } = options;
    this.#kick();
    for (;;) {
      if (
        this.#closed || !this.#running || this.#pendingRows === 0 || signal?.aborted ||
        (this.#nextAttemptAt > this.#now() && this.#inFlight.size === 0)
      ) {
        return this.#pendingRows;
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          this.#waiters.delete(done);
          signal?.removeEventListener("abort", done);
          resolve();
        };
        this.#waiters.add(done);
        signal?.addEventListener("abort", done, { once: true });
      });
    }
  }

  #clearTimers(): void {
    if (this.#retryTimer !== undefined) this.#timers.clearTimeout(this.#retryTimer);
    if (this.#pollTimer !== undefined) this.#timers.clearTimeout(this.#pollTimer);
    this.#retryTimer = undefined;
    this.#pollTimer = undefined;
  }

  #armPoll(): void {
    if (!this.#running || this.#closed) return;
    this.#pollTimer = this.#timers.setTimeout(() => {
      this.#pollTimer = undefined;
      this.#kick();
      this.#armPoll();
    }, this.#pollMs);
  }

  #armRetry(delayMs: number): void {
    if (!this.#running || this.#closed) return;
    if (this.#retryTimer !== undefined) this.#timers.clearTimeout(this.#retryTimer);
    this.#retryTimer = this.#timers.setTimeout(() => {
      this.#retryTimer = undefined;
      this.#kick();
    }, Math.max(0, delayMs));
  }

  /** Runs the pump soon (once per burst of calls). */
  #kick(): void {
    if (!this.#running || this.#closed || this.#kickQueued) return;
    this.#kickQueued = true;
    queueMicrotask(() => {
      this.#kickQueued = false;
      if (!this.#running || this.#closed || this.#pumping) return;
      this.#pumping = this.#pump().finally(() => {
        this.#pumping = undefined;
      });
    });
  }

  async #pump(): Promise<void> {
    try {
      let next: { records: OutboxRecord[]; epoch: number } | undefined;
      while (this.#running && !this.#closed) {
        const now = this.#now();
        if (this.#nextAttemptAt > now) {
          this.#armRetry(this.#nextAttemptAt - now);
          return;
        }
        // A batch read ahead during the last send is good while nothing but appends happened.
        const records = next !== undefined && next.epoch === this.#epoch &&
            next.records.length > 0 && this.#isolateThrough === undefined
          ? next.records
          : this.#readBatch();
        next = undefined;
        if (records.length === 0) {
          this.#reclaimIfWorthIt();
          return;
        }
        const resolved = await this.#deliver(records, () => {
          // While the send is on the wire: read and parse the batch after this one.
          const last = records[records.length - 1];
          if (last === undefined || this.#isolateThrough !== undefined) return;
          const ahead = this.#readAhead(last.seq);
          if (ahead) next = { records: ahead, epoch: this.#epoch };
        });
        if (!resolved) next = undefined;
      }
    } catch (error) {
      if (this.#closed) return;
      // A storage error (disk full, I/O): back off and try again; nothing is lost.
      log.error(`Outbox ${this.path} delivery loop failed: ${errorText(error)}`);
      this.#failed(`storage error: ${errorText(error)}`);
      this.#armRetry(Math.max(0, this.#nextAttemptAt - this.#now()));
    }
  }

  /** The batch after `seq`, or `undefined` if a row in it does not parse (read it normally). */
  #readAhead(seq: number): OutboxRecord[] | undefined {
    try {
      const rows = this.#q.pendingAfter.all(seq, this.#batchLimit()) as unknown as Row[];
      return this.#cutToBytes(rows).map(rowToRecord);
    } catch {
      return undefined;
    }
  }

  /** How many rows to read for a batch: batchSize, or fewer when payloads run large. */
  #batchLimit(): number {
    // Twice the estimate: rarely short of the byte cap, never far over it.
    const fit = 2 * Math.floor(this.#batchBytes / Math.max(1, this.#avgRowBytes)) + 1;
    return Math.max(1, Math.min(this.#batchSize, fit));
  }

  /** Keeps the leading rows within batchBytes (at least one), and learns the row size. */
  #cutToBytes(rows: Row[]): Row[] {
    let bytes = 0;
    for (let i = 0; i < rows.length; i++) {
      bytes += (rows[i] as Row).payload.length;
      if (i > 0 && bytes > this.#batchBytes) {
        this.#avgRowBytes = bytes / (i + 1);
        return rows.slice(0, i);
      }
    }
    if (rows.length > 0) this.#avgRowBytes = bytes / rows.length;
    return rows;
  }

  /** The next batch, in seq order. A corrupt row at the head is poisoned on the spot. */
  #readBatch(): OutboxRecord[] {
    let limit = this.#batchLimit();
    if (this.#isolateThrough !== undefined) {
      const head = this.#q.head.get(1) as Row | undefined;
      if (head === undefined || head.seq > this.#isolateThrough) this.#isolateThrough = undefined;
      else limit = 1;
    }
    for (;;) {
      const rows = this.#cutToBytes(this.#q.head.all(limit) as unknown as Row[]);
      const records: OutboxRecord[] = [];
      for (const row of rows) {
        try {
          records.push(rowToRecord(row));
        } catch (error) {
          if (!(error instanceof CorruptRowError) || records.length > 0) break;
          this.#poisonRows([{ record: rowToRecordLenient(row), error: error.message }]);
          records.length = 0;
          break;
        }
      }
      if (records.length > 0 || rows.length === 0) return records;
      // The head was corrupt and is now poisoned: read again.
    }
  }

  /**
   * Sends one batch and applies the outcome. `whileSending` runs once the send has started.
   * Returns whether every record was resolved (delivered or poisoned).
   */
  async #deliver(records: OutboxRecord[], whileSending: () => void): Promise<boolean> {
    const send = this.#send;
    if (!send) return false;
    const controller = new AbortController();
    this.#abort = controller;
    for (const record of records) this.#inFlight.add(record.seq);
    this.#wokenDuringSend = false;
    let results: unknown;
    let thrown: { error: unknown } | undefined;
    try {
      const sending = send(records, { signal: controller.signal });
      whileSending();
      results = await sending;
    } catch (error) {
      thrown = { error };
    } finally {
      this.#inFlight.clear();
      this.#abort = undefined;
    }
    // Closed meanwhile: the database is gone; the records stay queued in the file.
    if (this.#closed) return false;
    if (thrown) {
      // Aborted by stop(): not an attempt.
      if (controller.signal.aborted) return false;
      this.#applyThrown(records, thrown.error);
      return false;
    }
    return this.#applyResults(records, results);
  }

  #isPermanent(error: unknown): boolean {
    try {
      return this.#classify(error) === "permanent";
    } catch {
      return false;
    }
  }

  #applyThrown(records: OutboxRecord[], error: unknown): void {
    const text = errorText(error);
    const first = records[0];
    if (!first) return;
    if (this.#isPermanent(error)) {
      if (records.length === 1) {
        this.#poisonRows([{ record: first, error: text }]);
        this.#progressed();
        return;
      }
      // Which record was refused is unknown: resend one at a time through this batch.
      this.#isolateThrough = records[records.length - 1]?.seq;
      log.warn(
        `Outbox send of ${records.length} events (seq ${first.seq}..${this.#isolateThrough}) ` +
          `failed permanently: ${text}; retrying them one at a time`,
      );
      return;
    }
    this.#transaction(() => {
      this.#q.failed.run(text, first.seq);
      for (const record of records.slice(1)) this.#q.attempted.run(record.seq);
    });
    this.#failed(text);
  }

  #applyResults(records: OutboxRecord[], results: unknown): boolean {
    const list = Array.isArray(results) ? results : [];
    const acked: OutboxRecord[] = [];
    const poison: { record: OutboxRecord; error: string }[] = [];
    let failedAt = -1;
    let failure = "";
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as OutboxRecord;
      const result: unknown = list[i];
      if (typeof result !== "object" || result === null || !("ok" in result)) {
        failedAt = i;
        failure = Array.isArray(results)
          ? `send returned no valid result for event seq=${record.seq}`
          : "send resolved without a result array";
        break;
      }
      if ((result as { ok: unknown }).ok === true) {
        acked.push(record);
        continue;
      }
      const r = result as { error?: unknown; permanent?: unknown };
      const permanent = typeof r.permanent === "boolean" ? r.permanent : this.#isPermanent(r.error);
      if (permanent) {
        poison.push({ record, error: errorText(r.error) });
        continue;
      }
      failedAt = i;
      failure = errorText(r.error);
      break;
    }
    if (acked.length > 0 || poison.length > 0) {
      const removed = this.#removeDelivered(acked, acked.every((r, i) => records[i] === r));
      this.#pendingRows -= removed;
      this.#delivered += removed;
      this.#removedSinceReclaim += removed;
      if (poison.length > 0) this.#poisonRows(poison);
      this.#progressed();
      if (acked.length > 0) this.#notify("delivered");
    }
    if (failedAt >= 0) {
      const head = records[failedAt] as OutboxRecord;
      this.#transaction(() => {
        this.#q.failed.run(failure, head.seq);
        for (const record of records.slice(failedAt + 1)) this.#q.attempted.run(record.seq);
      });
      this.#failed(failure);
      return false;
    }
    return true;
  }

  /**
   * Deletes delivered rows and counts them, in one transaction. A run of rows at the head of
   * the batch goes in one range delete, checked by its count: should any other row sit inside
   * the range, the transaction is undone and the rows go one by one instead.
   */
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
        return this.#transaction(() => {
          const removed = Number(this.#q.deleteRange.run(first.seq, last.seq).changes);
          if (removed !== acked.length) throw mismatch;
          return account(removed);
        });
      } catch (error) {
        if (error !== mismatch) throw error;
      }
    }
    return this.#transaction(() => {
      let removed = 0;
      for (const record of acked) {
        removed += Number(this.#q.deletePending.run(record.seq).changes);
      }
      return account(removed);
    });
  }

  /** Moves rows to `poisoned` and logs each FATAL. */
  #poisonRows(items: { record: OutboxRecord; error: string }[]): void {
    const at = Math.round(this.#now());
    this.#epoch++;
    let moved = 0;
    this.#transaction(() => {
      for (const { record, error } of items) {
        if (Number(this.#q.poison.run(error, at, record.seq).changes) === 0) continue;
        this.#q.deletePending.run(record.seq);
        moved++;
      }
      this.#setLastError(items[items.length - 1]?.error ?? "", at);
    });
    this.#pendingRows -= moved;
    this.#poisonedRows += moved;
    for (const { record, error } of items) {
      log.fatal(
        `Outbox event seq=${record.seq} kind=${record.kind} poisoned after ` +
          `${record.attempts + 1} attempt(s), the relay refused it permanently: ${error}. ` +
          `It is kept: list it with "agent-relay-runner outbox poisoned", retry it with ` +
          `"agent-relay-runner outbox requeue --seq ${record.seq}"`,
      );
    }
    this.#notify("poisoned");
  }

  #setLastError(text: string, at: number): void {
    this.#lastError = text;
    this.#lastErrorAt = at;
    this.#q.metaSet.run("last_error", text);
    this.#q.metaSet.run("last_error_at", at);
  }

  /** A delivery made progress: the backoff resets. */
  #progressed(): void {
    if (this.#failures > 0) {
      const since = this.#failingSince === undefined ? 0 : this.#now() - this.#failingSince;
      log.info(
        `Outbox delivering again after ${this.#failures} failed attempt(s) over ` +
          `${Math.round(since)} ms; ${this.#pendingRows} pending`,
      );
    }
    this.#failures = 0;
    this.#failingSince = undefined;
    this.#nextAttemptAt = 0;
  }

  /** A transient failure: back off (or retry at once if woken during the send). */
  #failed(text: string): void {
    const now = this.#now();
    this.#failures++;
    this.#failingSince ??= now;
    try {
      this.#setLastError(text, Math.round(now));
    } catch {
      // Storage trouble; the in-memory copy is enough for metrics.
      this.#lastError = text;
      this.#lastErrorAt = Math.round(now);
    }
    if (this.#wokenDuringSend) {
      this.#wokenDuringSend = false;
      this.#nextAttemptAt = 0;
      log.debug(`Outbox send failed (${text}); woken meanwhile, retrying now`);
    } else {
      const delay = backoffDelay(this.#failures, this.#backoff, this.#random);
      this.#nextAttemptAt = now + delay;
      const message = `Outbox send failed (attempt ${this.#failures} since the last ` +
        `delivery), retrying in ${delay} ms: ${text}`;
      if (this.#failures === 1) log.warn(message);
      else log.debug(message);
      // The pump arms the retry timer when it sees the head is not due.
    }
    this.#notify("failed");
  }

  /** After a drain: give free pages back to the file system and truncate the WAL. */
  #reclaimIfWorthIt(): void {
    if (this.#removedSinceReclaim === 0) return;
    try {
      const free = (this.#db.prepare("PRAGMA freelist_count").get() as { freelist_count: number })
        .freelist_count;
      if (free < RECLAIM_PAGES) return;
      this.#removedSinceReclaim = 0;
      // Each step of this pragma frees one page: run it to completion (exec would step once).
      this.#db.prepare("PRAGMA incremental_vacuum").all();
      this.#db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get();
      log.debug(`Outbox ${this.path} drained: reclaimed ${free} free pages`);
    } catch (error) {
      log.debug(`Outbox ${this.path} could not reclaim space: ${errorText(error)}`);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Inspection and maintenance

  /** The counters. Cheap: no query. */
  stats(): OutboxStats {
    return {
      pending: this.#pendingRows,
      poisoned: this.#poisonedRows,
      inFlight: this.#inFlight.size,
      delivered: this.#delivered,
      dropped: this.#dropped,
      consecutiveFailures: this.#failures,
      ...(this.#nextAttemptAt > 0 ? { nextAttemptAt: this.#nextAttemptAt } : {}),
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }),
      ...(this.#lastErrorAt === undefined ? {} : { lastErrorAt: this.#lastErrorAt }),
    };
  }

  /** Pending events in delivery order (default the first 100). */
  list(options: { limit?: number; afterSeq?: number } = {}): OutboxRecord[] {
    this.#assertOpen();
    const limit = positiveInt(options.limit, 100, "limit");
    const rows =
      (options.afterSeq === undefined
        ? this.#q.head.all(limit)
        : this.#q.pendingAfter.all(options.afterSeq, limit)) as unknown as Row[];
    return rows.map(rowToRecordLenient);
  }

  /** Poisoned events, oldest first (default the first 100). */
  poisoned(options: { limit?: number } = {}): PoisonedRecord[] {
    this.#assertOpen();
    const limit = positiveInt(options.limit, 100, "limit");
    return (this.#q.poisonedList.all(limit) as unknown as Row[]).map(rowToPoisoned);
  }

  /**
   * Moves poisoned events back into the queue, keeping their seq (so they go before newer
   * events) and idempotency key. One event by seq, or all. Returns how many moved.
   */
  requeue(seq?: number): number {
    this.#assertOpen();
    if (seq !== undefined && !Number.isInteger(seq)) {
      throw new TypeError(`seq ${seq} must be a whole number`);
    }
    this.#epoch++;
    const moved = this.#transaction(() => {
      if (seq === undefined) {
        const n = Number(this.#q.requeueAll.run().changes);
        this.#q.deleteAllPoisoned.run();
        return n;
      }
      const n = Number(this.#q.requeueOne.run(seq).changes);
      if (n > 0) this.#q.deletePoisoned.run(seq);
      return n;
    });
    if (moved > 0) {
      this.#poisonedRows -= moved;
      this.#pendingRows += moved;
      log.info(
        `Outbox requeued ${moved} poisoned event(s)${seq === undefined ? "" : ` (seq ${seq})`}`,
      );
      this.#notify("requeued");
      this.#kick();
    }
    return moved;
  }

  /**
   * Deletes events for good: one by seq (pending or poisoned), all poisoned, or everything.
   * Events in flight are never purged (purging one by seq throws). Returns how many went.
   */
  purge(target: PurgeTarget): number {
    this.#assertOpen();
    this.#epoch++;
    let pending = 0;
    let poisoned = 0;
    if ("seq" in target) {
      if (!Number.isInteger(target.seq)) {
        throw new TypeError(`seq ${target.seq} must be a whole number`);
      }
      if (this.#inFlight.has(target.seq)) {
        throw new Error(`Outbox event seq=${target.seq} is being sent; try again`);
      }
      this.#transaction(() => {
        poisoned = Number(this.#q.deletePoisoned.run(target.seq).changes);
        pending = Number(this.#q.deletePending.run(target.seq).changes);
        this.#q.metaMax.run(target.seq, "seq_floor");
      });
    } else if ("poisoned" in target && target.poisoned === true) {
      poisoned = this.#transaction(() => Number(this.#q.deleteAllPoisoned.run().changes));
    } else if ("all" in target && target.all === true) {
      this.#transaction(() => {
        poisoned = Number(this.#q.deleteAllPoisoned.run().changes);
        const rows = this.#q.head.all(this.#pendingRows + 1) as unknown as Row[];
        for (const row of rows) {
          if (this.#inFlight.has(row.seq)) continue;
          pending += Number(this.#q.deletePending.run(row.seq).changes);
          this.#q.metaMax.run(row.seq, "seq_floor");
        }
      });
    } else {
      throw new TypeError("purge needs { seq }, { poisoned: true } or { all: true }");
    }
    this.#pendingRows -= pending;
    this.#poisonedRows -= poisoned;
    this.#removedSinceReclaim += pending + poisoned;
    if (pending + poisoned > 0) {
      log.warn(`Outbox purged ${pending} pending and ${poisoned} poisoned event(s)`);
      this.#reclaimIfWorthIt();
      this.#notify("purged");
    }
    return pending + poisoned;
  }

  /** Subscribes to changes (for /metrics and /monitor). Returns the unsubscribe function. */
  onChange(listener: (change: OutboxChange) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Lets `flush()` callers look again. */
  #resolveWaiters(): void {
    if (this.#waiters.size === 0) return;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) waiter();
  }

  #notify(reason: OutboxChangeReason): void {
    this.#resolveWaiters();
    if (this.#listeners.size === 0) return;
    const change = { reason, stats: this.stats() };
    for (const listener of [...this.#listeners]) {
      try {
        listener(change);
      } catch (error) {
        log.debug(`Outbox change listener threw: ${errorText(error)}`);
      }
    }
  }

  #notifyEnqueued(): void {
    if (this.#enqueueNotifyQueued || this.#listeners.size === 0) return;
    this.#enqueueNotifyQueued = true;
    queueMicrotask(() => {
      this.#enqueueNotifyQueued = false;
      if (!this.#closed) this.#notify("enqueued");
    });
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
    this.#running = false;
    this.#closed = true;
    this.#clearTimers();
    this.#abort?.abort(new Error("Outbox closed"));
    if (this.#dropsUnreported > 0) {
      log.warn(`Outbox dropped ${this.#dropsUnreported} more event(s) since the last report`);
      this.#dropsUnreported = 0;
    }
    try {
      this.#db.prepare("DELETE FROM meta WHERE key = 'holder_pid'").run();
    } catch {
      // Best effort.
    }
    try {
      this.#db.close();
    } catch {
      // Already closed.
    }
    this.#lock.release();
    this.#listeners.clear();
    this.#resolveWaiters();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
