/**
 * When another connection holds the outbox file's write lock (an operator's `sqlite3`, a
 * backup, any same-user process in `BEGIN EXCLUSIVE`): how long a statement may wait for it,
 * and how a "database is locked" failure is recognised, so that the outbox can hold events in
 * memory and try again later instead of blocking the event loop (docs/outbox.md, "A locked
 * database").
 *
 * @module
 */
import { errorText } from "../util/mod.ts";

/**
 * How long one statement waits for a lock held by another connection, in ms. Short on purpose:
 * the outbox runs on the runner's event loop, and hooks wait on it.
 */
export const BUSY_TIMEOUT_MS = 5;

/** How long the last attempt at `close()` waits for the lock, in ms. */
export const CLOSE_BUSY_TIMEOUT_MS = 500;

/** SQLITE_BUSY and SQLITE_LOCKED (primary result codes). */
const BUSY_CODES = new Set([5, 6]);

/** Whether `error` is SQLite saying another connection holds the lock. */
export function isBusy(error: unknown): boolean {
  if (typeof error === "object" && error !== null) {
    const code = (error as { errcode?: unknown }).errcode;
    if (typeof code === "number") return BUSY_CODES.has(code & 0xff);
  }
  return /database is locked|database table is locked|\bbusy\b/i.test(errorText(error));
}
