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
import { chmodNoFollow, dirname, errorText, openNoFollow } from "../util/mod.ts";
import { acquireOutboxLock, type OutboxLock } from "./lock.ts";
import { buildPathFor, outboxFiles } from "./path.ts";
import { SCHEMA_SQL, SCHEMA_VERSION } from "./store.ts";

/** Whether there is no outbox at `path` yet: neither the file nor a WAL that belongs to it. */
export function isNewOutbox(path: string): boolean {
  return !exists(path) && !exists(`${path}-wal`);
}

/**
 * Builds the outbox at `path` when its dir holds none of its files yet (the first run of an
 * agent), under its lock, so that the run's open finds it ready. The launcher does this while
 * the sandbox's Worker starts; because it holds every permission, it opens only SQLite files it
 * creates itself at that moment, never one a sandboxed run could have left. Never throws:
 * whatever stands in the way (another runner, a planted link, a full disk) is left for the
 * run's open to meet and report.
 */
export function prepareOutboxFile(path: string): void {
  let lock: OutboxLock | undefined;
  try {
    if (outboxFiles(path).some(exists)) return;
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
 * lock and has checked). What an earlier crash left is cleared first: a build, its side files,
 * and a journal or WAL index of the outbox itself, which SQLite would otherwise apply to the new
 * file. The file's mode is 0600; it is in WAL mode with incremental vacuum, and holds the
 * current schema. Throws an `Error` naming the file when it cannot be built.
 */
export function createOutboxFile(path: string): void {
  const build = buildPathFor(path);
  try {
    buildAt(path, build);
  } catch (error) {
    for (const file of buildFiles(build)) removeQuietly(file);
    throw new Error(`Cannot create outbox ${path}: ${errorText(error)}`, { cause: error });
  }
}

/** The build and the files SQLite may make next to it. */
function buildFiles(build: string): string[] {
  return [build, `${build}-journal`, `${build}-wal`, `${build}-shm`];
}

function buildAt(path: string, build: string): void {
  for (const file of [...buildFiles(build), `${path}-journal`, `${path}-shm`]) {
    removeIfPresent(file);
  }
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
  } finally {
    db.close();
  }
  for (const side of buildFiles(build).slice(1)) removeIfPresent(side);
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

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (error) {
    return !(error instanceof Deno.errors.NotFound);
  }
}

function removeIfPresent(path: string): void {
  try {
    Deno.removeSync(path); // a symlink is removed itself, never followed
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // Gone already, or left for the next build to replace.
  }
}

/** Syncs the directory holding `path`, so that the rename survives a crash of the machine. */
function syncDir(path: string): void {
  let handle: Deno.FsFile | undefined;
  try {
    handle = Deno.openSync(dirname(path), { read: true });
    handle.syncSync();
  } catch {
    // Some file systems cannot sync a directory; the rename is still atomic.
  } finally {
    handle?.close();
  }
}
