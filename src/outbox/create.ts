/**
 * Creating a new outbox file in one step: built complete under a temporary name, synced, then
 * renamed into place.
 *
 * Set up in place, a new file costs three commits, each with its journal and its syncs
 * (`auto_vacuum` and the switch to WAL each rewrite the header, then the schema), 20 to 45 ms
 * of a start on an ordinary disk. Built aside with no journal and no syncs, then synced once
 * and renamed, it costs one file sync and one directory sync, and a crash at any point leaves
 * either no outbox (the next start builds it again) or a complete one, never half of one.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { checkNotSymlink, chmodNoFollow, openNoFollow } from "../util/mod.ts";
import { acquireOutboxLock, type OutboxLock } from "./lock.ts";
import { buildPathFor, outboxFiles } from "./path.ts";
import { SCHEMA_SQL, SCHEMA_VERSION } from "./store.ts";

/** Whether there is no outbox at `path` yet: neither the file nor a WAL that belongs to it. */
export function isNewOutbox(path: string): boolean {
  for (const file of [path, `${path}-wal`]) {
    try {
      Deno.lstatSync(file);
      return false;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) return false;
    }
  }
  return true;
}

/**
 * Builds the outbox at `path` if there is none yet, under its lock, so that a later open finds
 * it ready (the launcher does this while the sandbox's Worker starts). Never throws: whatever
 * stands in the way (another runner holds the lock, a planted link, a full disk) is left for
 * the open to meet and report.
 */
export function prepareOutboxFile(path: string): void {
  let lock: OutboxLock | undefined;
  try {
    if (!isNewOutbox(path)) return;
    for (const file of outboxFiles(path)) checkNotSymlink(file);
    lock = acquireOutboxLock(path, () => undefined);
    if (isNewOutbox(path)) createOutboxFile(path);
  } catch {
    // The open meets it again and reports it.
  } finally {
    lock?.release();
  }
}

/**
 * Builds a new, empty outbox at `path` (which must not exist: the caller holds the outbox's
 * lock and has checked). A leftover build of an earlier crash is replaced. The file's mode is
 * 0600; it is in WAL mode with incremental vacuum, and holds the current schema.
 */
export function createOutboxFile(path: string): void {
  const build = buildPathFor(path);
  removeIfPresent(build);
  const db = new DatabaseSync(build);
  try {
    // Nothing to protect yet: a crash leaves only the build, which the next start replaces.
    db.exec("PRAGMA journal_mode = OFF");
    db.exec("PRAGMA synchronous = OFF");
    db.exec("PRAGMA auto_vacuum = INCREMENTAL");
    db.exec("BEGIN");
    db.exec(SCHEMA_SQL);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    db.exec("COMMIT");
    db.exec("PRAGMA journal_mode = WAL");
  } catch (error) {
    db.close();
    removeIfPresent(build);
    throw error;
  }
  db.close();
  for (const side of ["-wal", "-shm"]) removeIfPresent(build + side);
  try {
    chmodNoFollow(build, 0o600);
  } catch {
    // Best effort (a file system without modes).
  }
  const file = openNoFollow(build, { read: true, write: true });
  try {
    file.syncSync();
  } finally {
    file.close();
  }
  Deno.renameSync(build, path);
  syncDir(path);
}

function removeIfPresent(path: string): void {
  try {
    Deno.removeSync(path); // a symlink is removed itself, never followed
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Syncs the directory holding `path`, so that the rename survives a crash of the machine. */
function syncDir(path: string): void {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  let handle: Deno.FsFile | undefined;
  try {
    handle = Deno.openSync(dir, { read: true });
    handle.syncSync();
  } catch {
    // Some file systems cannot sync a directory; the rename is still atomic.
  } finally {
    handle?.close();
  }
}
