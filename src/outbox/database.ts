/**
 * An open outbox file: its lock, the SQLite connection with its pragmas and schema, the
 * prepared statements, transactions, giving space back after a drain, and closing.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { getLogger } from "../logger.ts";
import { checkNotSymlink, chmodNoFollow, dirname, errorText } from "../util/mod.ts";
import { BUSY_TIMEOUT_MS } from "./busy.ts";
import { acquireOutboxLock, type OutboxLock } from "./lock.ts";
import { createOutboxFile, isNewOutbox } from "./create.ts";
import { outboxFiles } from "./path.ts";
import { checkSchema, metaNumber, metaString, SCHEMA_SQL, SCHEMA_VERSION, SQL } from "./store.ts";

const log = getLogger("outbox");

/** SQLite `synchronous=NORMAL` (survives a process crash) or `FULL` (survives power loss). */
export type Durability = "normal" | "full";

/** The statements prepared once per open. */
const PREPARED = [
  "insert",
  "coalesceMatches",
  "deletePending",
  "deleteRange",
  "oldestPending",
  "oldestPoisoned",
  "deletePoisoned",
  "head",
  "pendingAfter",
  "poisonedList",
  "poison",
  "requeueOne",
  "requeueAll",
  "deleteAllPoisoned",
  "failed",
  "attempted",
  "metaSet",
  "metaAdd",
  "metaMax",
] as const satisfies readonly (keyof typeof SQL)[];

/** The prepared statements, by their name in `SQL`. */
export type Statements = Record<(typeof PREPARED)[number], StatementSync>;

/** What the file holds when it is opened: counts, totals and the last error. */
export interface StoredTally {
  pending: number;
  poisoned: number;
  /** The next sequence number: above every row and every removed row. */
  nextSeq: number;
  delivered: number;
  dropped: number;
  lastError?: string;
  lastErrorAt?: number;
}

/** Free pages that make a drained outbox reclaim space (1 MiB of 4 KiB pages). */
const RECLAIM_PAGES = 256;
/** Keep the WAL file at most this large after a checkpoint. */
const WAL_LIMIT_BYTES = 4 * 1024 * 1024;

/** An outbox file, open and locked. */
export class OutboxDatabase {
  /** The SQLite file. */
  readonly path: string;
  /** The prepared statements. */
  readonly q: Statements;
  /** What the file held when it was opened. */
  readonly opened: StoredTally;

  readonly #db: DatabaseSync;
  readonly #lock: OutboxLock;
  #removedSinceReclaim = 0;

  /**
   * Opens (creating if needed) the outbox at `path` and takes its lock. Throws
   * `OutboxLockedError` when another opener holds it, and a descriptive error when the file is
   * not an outbox (the file is left untouched).
   */
  static open(path: string, durability: Durability): OutboxDatabase {
    Deno.mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // SQLite follows a planted symlink, and a chmod would change its target: refuse them.
    for (const file of outboxFiles(path)) checkNotSymlink(file);
    const lock = acquireOutboxLock(path, () => readHolderPid(path));
    let db: DatabaseSync | undefined;
    try {
      if (isNewOutbox(path)) createOutboxFile(path);
      try {
        db = new DatabaseSync(path, { timeout: 1_000 });
      } catch (error) {
        throw new Error(`Cannot open outbox ${path}: ${errorText(error)}`, { cause: error });
      }
      try {
        chmodNoFollow(path, 0o600);
      } catch {
        // Best effort (a file system without modes).
      }
      const opened = setUp(db, path, durability);
      // From now on, a statement waits only briefly for another connection's lock.
      db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      return new OutboxDatabase(path, db, lock, opened);
    } catch (error) {
      try {
        db?.close();
      } catch {
        // Already closed.
      }
      lock.release();
      if (error instanceof Error && /file is not a database|malformed/i.test(error.message)) {
        throw new Error(
          `Outbox ${path} is not a readable SQLite database (${error.message}); ` +
            `it was left untouched`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  private constructor(path: string, db: DatabaseSync, lock: OutboxLock, opened: StoredTally) {
    this.path = path;
    this.#db = db;
    this.#lock = lock;
    this.opened = opened;
    this.q = Object.fromEntries(
      PREPARED.map((name) => [name, db.prepare(SQL[name])]),
    ) as Statements;
  }

  /**
   * Runs `body` in one `BEGIN IMMEDIATE` transaction, rolled back if it or the commit throws.
   * While another connection holds the write lock, this throws a busy error after
   * {@linkcode BUSY_TIMEOUT_MS} (see `isBusy`).
   */
  transaction<T>(body: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = body();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      try {
        if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      } catch {
        // The failed statement may have rolled back already.
      }
      throw error;
    }
  }

  /** Sets how long a statement waits for another connection's lock, in ms. */
  setBusyTimeout(ms: number): void {
    this.#db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.round(ms))}`);
  }

  /** Counts rows removed (delivered, dropped, purged) towards the next reclaim. */
  removed(count: number): void {
    this.#removedSinceReclaim += count;
  }

  /** After a drain: gives free pages back to the file system and truncates the WAL. */
  reclaimIfWorthIt(): void {
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

  /** Forgets the holder's pid, closes the file and releases the lock. Idempotent. */
  close(): void {
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
  }
}

/** The pid the holder of `path` recorded, read without waiting on it. */
function readHolderPid(path: string): number | undefined {
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { readOnly: true, timeout: 200 });
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

/** Checks the schema, sets the pragmas, creates the tables, records this pid, reads the tally. */
function setUp(db: DatabaseSync, path: string, durability: Durability): StoredTally {
  const fresh = checkSchema(db, path);
  if (fresh) db.exec("PRAGMA auto_vacuum = INCREMENTAL");
  const mode = (db.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode: string })
    .journal_mode;
  if (mode !== "wal") {
    throw new Error(`Outbox ${path} cannot use WAL mode (got "${mode}")`);
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
  const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
  const tally: StoredTally = {
    pending: count(SQL.countPending),
    poisoned: count(SQL.countPoisoned),
    nextSeq: count(SQL.maxSeq) + 1,
    delivered: metaNumber(db, "delivered") ?? 0,
    dropped: metaNumber(db, "dropped") ?? 0,
  };
  const lastError = metaString(db, "last_error");
  if (lastError !== undefined) {
    tally.lastError = lastError;
    const at = metaNumber(db, "last_error_at");
    if (at !== undefined) tally.lastErrorAt = at;
  }
  return tally;
}
