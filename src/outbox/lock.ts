/**
 * One process per outbox file: the exclusive lock that makes a second opener fail fast.
 *
 * The lock is an SQLite file next to the outbox (`outbox.sqlite.lock`) held in SQLite's
 * EXCLUSIVE locking mode for as long as the outbox is open. The operating system releases the
 * lock when the holder exits, however it exits (`kill -9` included), so a stale lock cannot
 * outlive its process, and the lock file is never written after its creation, so a crash
 * cannot corrupt it. The outbox database itself stays in ordinary WAL mode so that operators
 * can read it while a runner holds the lock. The holder's pid is recorded in the outbox's own
 * `meta` table (readable while locked) so a refused opener can name it.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { chmodNoFollow, errorText } from "../util/mod.ts";
import { isBusy } from "./busy.ts";
import { lockPathFor } from "./path.ts";

/** How long an opener waits for the lock before giving up, in ms (a probe holds it briefly). */
export const LOCK_WAIT_MS = 250;

/** Thrown when another process (or another `Outbox` in this one) holds the outbox file. */
export class OutboxLockedError extends Error {
  override name = "OutboxLockedError";
  /** The outbox file. */
  readonly path: string;
  /** The holder's pid, when the holder recorded it. */
  readonly pid: number | undefined;

  constructor(path: string, pid: number | undefined) {
    super(
      pid === undefined
        ? `Outbox ${path} is in use by another process (its pid is not recorded yet)`
        : `Outbox ${path} is in use by process ${pid}${
          pid === Deno.pid ? " (this process)" : ""
        }; only one runner may open it`,
    );
    this.path = path;
    this.pid = pid;
  }
}

/** A held outbox lock. */
export interface OutboxLock {
  /** The lock file. */
  readonly path: string;
  /** Releases the lock. Idempotent. */
  release(): void;
}

/**
 * Takes the lock of the outbox at `outboxPath`, or throws {@linkcode OutboxLockedError} with
 * the holder's pid (read by `holderPid`) after at most {@linkcode LOCK_WAIT_MS}.
 */
export function acquireOutboxLock(
  outboxPath: string,
  holderPid: () => number | undefined,
): OutboxLock {
  const path = lockPathFor(outboxPath);
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { timeout: LOCK_WAIT_MS });
  } catch (error) {
    throw new Error(`Cannot open the outbox lock file ${path}: ${errorText(error)}`, {
      cause: error,
    });
  }
  try {
    chmodNoFollow(path, 0o600); // SQLite creates it with the process umask.
  } catch {
    // Best effort: a filesystem without modes.
  }
  try {
    // MEMORY journal: no -journal file; the empty transaction below writes nothing after the
    // file's first creation. In EXCLUSIVE locking mode the lock is kept after COMMIT.
    db.exec("PRAGMA journal_mode = MEMORY");
    db.exec("PRAGMA locking_mode = EXCLUSIVE");
    db.exec("BEGIN EXCLUSIVE");
    db.exec("COMMIT");
  } catch (error) {
    try {
      db.close();
    } catch {
      // Already closed.
    }
    if (isBusy(error)) throw new OutboxLockedError(outboxPath, holderPid());
    throw new Error(
      `Cannot lock the outbox lock file ${path}: ${errorText(error)} (is the disk full? ` +
        `if no runner uses this outbox and the disk has room, the lock file may be deleted)`,
      { cause: error },
    );
  }
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      try {
        db.close();
      } catch {
        // Already closed.
      }
    },
  };
}

/**
 * Whether some process holds the lock of the outbox at `outboxPath`, without taking it (a
 * read-only probe that holds a shared lock for microseconds; openers wait out such probes).
 */
export function outboxLockHeld(outboxPath: string): boolean {
  const path = lockPathFor(outboxPath);
  try {
    Deno.statSync(path);
  } catch {
    return false;
  }
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { readOnly: true });
    db.exec("PRAGMA busy_timeout = 0"); // the constructor's timeout: 0 means its default
    db.prepare("PRAGMA schema_version").get();
    return false;
  } catch (error) {
    return isBusy(error);
  } finally {
    try {
      db?.close();
    } catch {
      // Already closed.
    }
  }
}
