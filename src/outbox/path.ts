/**
 * Where an outbox lives on disk: the SQLite file inside the outbox dir. The runner and the
 * `outbox` command both open it through {@linkcode outboxPath}.
 *
 * @module
 */
import { join } from "node:path";

/** The outbox file's name inside the outbox dir. */
export const OUTBOX_FILE = "outbox.sqlite";

/** The outbox file inside `outboxDir`. */
export function outboxPath(outboxDir: string): string {
  return join(outboxDir, OUTBOX_FILE);
}
