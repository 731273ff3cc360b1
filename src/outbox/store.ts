/**
 * The outbox's on-disk form: the SQLite schema, the SQL the outbox runs, the record types, and
 * a read-only view of an outbox file for operators.
 *
 * Tables (schema version 1, `PRAGMA user_version`):
 *
 * - `outbox`: pending events, the primary key `seq` is the delivery order. Coalesce-mode rows
 *   are indexed by `dedupe_key` through a partial index, so append-mode inserts touch only the
 *   table's own B-tree.
 * - `poisoned`: events the relay refused permanently, kept for inspection and requeue.
 * - `meta`: counters (`delivered`, `dropped`), the highest sequence ever removed (`seq_floor`,
 *   so sequences never repeat), the last error, and the lock holder's pid.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { checkNotSymlink, errorText } from "../util/mod.ts";

/** The schema version this code reads and writes. */
export const SCHEMA_VERSION = 1;

/** How an event is queued: `append` keeps every event; `coalesce` keeps only the latest per key. */
export type OutboxMode = "append" | "coalesce";

/** A queued event as the transport and the inspection calls see it. */
export interface OutboxRecord {
  /** The delivery order: strictly increasing, never reused. */
  seq: number;
  kind: string;
  payload: unknown;
  /** The coalescing key (coalesce mode), or a caller's label (append mode). */
  dedupeKey?: string;
  mode: OutboxMode;
  /** Unique per event, stable across retries and restarts: send it for server-side dedup. */
  idempotencyKey: string;
  /** Epoch ms, stamped once at enqueue. */
  occurredAt: number;
  /** Delivery attempts that failed so far. */
  attempts: number;
  /** The last failure's message. */
  lastError?: string;
}

/** A poisoned event: the relay refused it permanently. */
export interface PoisonedRecord extends OutboxRecord {
  lastError: string;
  /** Epoch ms when it was poisoned. */
  poisonedAt: number;
}

const COLUMNS = "seq, kind, mode, dedupe_key, occurred_at, idempotency_key, payload, attempts, " +
  "last_error";

/** The schema, created on first open. */
export const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  mode TEXT NOT NULL,
  dedupe_key TEXT,
  occurred_at INTEGER NOT NULL,
  idempotency_key TEXT NOT NULL,
  payload TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_coalesce ON outbox (dedupe_key) WHERE mode = 'coalesce';
CREATE TABLE IF NOT EXISTS poisoned (
  seq INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  mode TEXT NOT NULL,
  dedupe_key TEXT,
  occurred_at INTEGER NOT NULL,
  idempotency_key TEXT NOT NULL,
  payload TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  poisoned_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES
  ('delivered', 0), ('dropped', 0), ('seq_floor', 0);
`;

/** Every statement the outbox prepares, by name. */
export const SQL = {
  insert: "INSERT INTO outbox (seq, kind, mode, dedupe_key, occurred_at, idempotency_key, " +
    "payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
  coalesceMatches: "SELECT seq FROM outbox WHERE mode = 'coalesce' AND dedupe_key = ?",
  deletePending: "DELETE FROM outbox WHERE seq = ?",
  deleteRange: "DELETE FROM outbox WHERE seq BETWEEN ? AND ?",
  oldestPending: "SELECT seq, kind FROM outbox ORDER BY seq LIMIT ?",
  oldestPoisoned: "SELECT seq, kind FROM poisoned ORDER BY seq LIMIT ?",
  deletePoisoned: "DELETE FROM poisoned WHERE seq = ?",
  head: `SELECT ${COLUMNS} FROM outbox ORDER BY seq LIMIT ?`,
  pendingAfter: `SELECT ${COLUMNS} FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?`,
  poisonedList: `SELECT ${COLUMNS}, poisoned_at FROM poisoned ORDER BY seq LIMIT ?`,
  poison: "INSERT INTO poisoned (seq, kind, mode, dedupe_key, occurred_at, idempotency_key, " +
    "payload, attempts, last_error, poisoned_at) SELECT seq, kind, mode, dedupe_key, " +
    "occurred_at, idempotency_key, payload, attempts + 1, ?, ? FROM outbox WHERE seq = ?",
  requeueOne: `INSERT INTO outbox (${COLUMNS}) SELECT ${COLUMNS} FROM poisoned WHERE seq = ?`,
  requeueAll: `INSERT INTO outbox (${COLUMNS}) SELECT ${COLUMNS} FROM poisoned`,
  deleteAllPoisoned: "DELETE FROM poisoned",
  failed: "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
  attempted: "UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?",
  metaGet: "SELECT value FROM meta WHERE key = ?",
  metaSet: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
  metaAdd: "UPDATE meta SET value = value + ? WHERE key = ?",
  metaMax: "UPDATE meta SET value = max(value, ?) WHERE key = ?",
  countPending: "SELECT count(*) AS n FROM outbox",
  countPoisoned: "SELECT count(*) AS n FROM poisoned",
  maxSeq: "SELECT max((SELECT coalesce(max(seq), 0) FROM outbox), " +
    "(SELECT coalesce(max(seq), 0) FROM poisoned), " +
    "(SELECT coalesce(value, 0) FROM meta WHERE key = 'seq_floor')) AS n",
  oldestOccurredAt: "SELECT occurred_at AS t FROM outbox ORDER BY seq LIMIT 1",
} as const;

/**
 * The statements `enqueue` may run, whatever the queue's depth. Each must be a keyed lookup
 * (no full scan): enqueue costs the same at any depth. Checked by tests with EXPLAIN QUERY PLAN.
 */
export const ENQUEUE_SQL: readonly string[] = [
  SQL.insert,
  SQL.coalesceMatches,
  SQL.deletePending,
  SQL.oldestPending,
  SQL.oldestPoisoned,
  SQL.deletePoisoned,
  SQL.metaAdd,
];

/** A row of `outbox` or `poisoned`. */
export interface Row {
  seq: number;
  kind: string;
  mode: string;
  dedupe_key: string | null;
  occurred_at: number;
  idempotency_key: string;
  payload: string;
  attempts: number;
  last_error: string | null;
  poisoned_at?: number;
}

/** Thrown by {@linkcode rowToRecord} when a stored payload is not JSON (the file was edited). */
export class CorruptRowError extends Error {
  override name = "CorruptRowError";
}

/** Converts a row to a record, parsing its payload. */
export function rowToRecord(row: Row): OutboxRecord {
  let payload: unknown;
  try {
    payload = JSON.parse(row.payload);
  } catch (error) {
    throw new CorruptRowError(
      `Stored payload of event seq=${row.seq} is not valid JSON: ${errorText(error)}`,
    );
  }
  const record: OutboxRecord = {
    seq: row.seq,
    kind: row.kind,
    payload,
    mode: row.mode === "coalesce" ? "coalesce" : "append",
    idempotencyKey: row.idempotency_key,
    occurredAt: row.occurred_at,
    attempts: row.attempts,
  };
  if (row.dedupe_key !== null) record.dedupeKey = row.dedupe_key;
  if (row.last_error !== null) record.lastError = row.last_error;
  return record;
}

/** Converts a row to a record for display: an unparseable payload is shown as its text. */
export function rowToRecordLenient(row: Row): OutboxRecord {
  try {
    return rowToRecord(row);
  } catch {
    return { ...rowToRecord({ ...row, payload: "null" }), payload: row.payload };
  }
}

/** Converts a `poisoned` row to a record. */
export function rowToPoisoned(row: Row): PoisonedRecord {
  return {
    ...rowToRecordLenient(row),
    lastError: row.last_error ?? "",
    poisonedAt: row.poisoned_at ?? 0,
  };
}

/** Reads one `meta` value as a number (`undefined` if absent or not a number). */
export function metaNumber(db: DatabaseSync, key: string): number | undefined {
  const row = db.prepare(SQL.metaGet).get(key) as { value: SQLInputValue } | undefined;
  const value = row?.value;
  return typeof value === "number" ? value : undefined;
}

/** Reads one `meta` value as a string. */
export function metaString(db: DatabaseSync, key: string): string | undefined {
  const row = db.prepare(SQL.metaGet).get(key) as { value: SQLInputValue } | undefined;
  const value = row?.value;
  return typeof value === "string" ? value : undefined;
}

/**
 * Checks that the open database is an outbox this code understands (or empty), throwing an
 * error that names the file otherwise. Returns `true` when the schema must still be created.
 */
export function checkSchema(db: DatabaseSync, path: string): boolean {
  const version = (db.prepare("PRAGMA user_version").get() as { user_version: number })
    .user_version;
  if (version > SCHEMA_VERSION) {
    throw new Error(
      `Outbox ${path} has schema version ${version}, newer than this runner's ` +
        `(${SCHEMA_VERSION}); use a newer agent-relay-runner`,
    );
  }
  const tables = (db.prepare(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
  ).all() as { name: string }[]).map((t) => t.name);
  if (version === 0 && tables.length > 0) {
    throw new Error(
      `${path} is an SQLite database but not an outbox (tables: ${tables.join(", ")}); ` +
        `it was left untouched`,
    );
  }
  return version === 0;
}

/** What {@linkcode inspectOutbox} reads. */
export interface OutboxSnapshot {
  path: string;
  pending: number;
  poisoned: number;
  delivered: number;
  dropped: number;
  lastError?: string;
  lastErrorAt?: number;
  /** The pid recorded by the last process that opened it (it may have exited). */
  holderPid?: number;
  /** `occurredAt` of the oldest pending event. */
  oldestPendingAt?: number;
  pendingRecords: OutboxRecord[];
  poisonedRecords: PoisonedRecord[];
}

/**
 * Reads an outbox file through a read-only connection, without taking its lock (so it works
 * while a runner delivers from it). `limit` caps both record lists (default 100). Throws when
 * the file does not exist or is not an outbox.
 */
export function inspectOutbox(path: string, options: { limit?: number } = {}): OutboxSnapshot {
  const limit = options.limit ?? 100;
  checkNotSymlink(path);
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { readOnly: true, timeout: 2_000 });
  } catch (error) {
    throw new Error(`Cannot open outbox ${path}: ${errorText(error)}`, { cause: error });
  }
  try {
    if (checkSchema(db, path)) {
      return {
        path,
        pending: 0,
        poisoned: 0,
        delivered: 0,
        dropped: 0,
        pendingRecords: [],
        poisonedRecords: [],
      };
    }
    db.exec("BEGIN");
    try {
      const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
      const lastError = metaString(db, "last_error");
      const lastErrorAt = metaNumber(db, "last_error_at");
      const holderPid = metaNumber(db, "holder_pid");
      const oldest = db.prepare(SQL.oldestOccurredAt).get() as { t: number } | undefined;
      return {
        path,
        pending: count(SQL.countPending),
        poisoned: count(SQL.countPoisoned),
        delivered: metaNumber(db, "delivered") ?? 0,
        dropped: metaNumber(db, "dropped") ?? 0,
        ...(lastError === undefined ? {} : { lastError }),
        ...(lastErrorAt === undefined ? {} : { lastErrorAt }),
        ...(holderPid === undefined ? {} : { holderPid }),
        ...(oldest === undefined ? {} : { oldestPendingAt: oldest.t }),
        pendingRecords: (db.prepare(SQL.head).all(limit) as unknown as Row[]).map(
          rowToRecordLenient,
        ),
        poisonedRecords: (db.prepare(SQL.poisonedList).all(limit) as unknown as Row[]).map(
          rowToPoisoned,
        ),
      };
    } finally {
      db.exec("COMMIT");
    }
  } finally {
    db.close();
  }
}
