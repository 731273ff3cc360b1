/**
 * Where an outbox lives on disk: the SQLite file inside the outbox dir, and the files next to it
 * (its WAL, its lock, a new outbox being built). The runner and the `outbox` command both open
 * it through {@linkcode outboxPath}.
 *
 * @module
 */
import { join } from "../util/mod.ts";

/** The outbox file's name inside the outbox dir. */
export const OUTBOX_FILE = "outbox.sqlite";

/** The outbox file inside `outboxDir`. */
export function outboxPath(outboxDir: string): string {
  return join(outboxDir, OUTBOX_FILE);
}

/** The lock file of the outbox at `outboxPath`. */
export function lockPathFor(outboxPath: string): string {
  return `${outboxPath}.lock`;
}

/** The name a new outbox at `outboxPath` is built under before it is renamed into place. */
export function buildPathFor(outboxPath: string): string {
  return `${outboxPath}.new`;
}

/** Every file SQLite, the lock and a new build may open for the outbox at `outboxPath`. */
export function outboxFiles(outboxPath: string): string[] {
  return [
    outboxPath,
    `${outboxPath}-wal`,
    `${outboxPath}-shm`,
    `${outboxPath}-journal`,
    lockPathFor(outboxPath),
    buildPathFor(outboxPath),
  ];
}
