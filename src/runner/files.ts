/**
 * The runner's own files: opening the outbox with an error that names the file and a likely
 * cause, and the control secret written for local operators.
 *
 * @module
 */
import type { RunConfig } from "../config/mod.ts";
import { Outbox, OutboxLockedError, outboxPath, type OutboxSend } from "../outbox/mod.ts";
import { errorText, writeFileNoFollow } from "../util/mod.ts";

/** Opens the outbox, with an error that names the file and a likely cause. */
export function openOutbox(config: RunConfig, send: OutboxSend): Outbox {
  const path = outboxPath(config.outboxDir);
  try {
    return new Outbox({ path, agentId: config.agentId, send });
  } catch (error) {
    const text = errorText(error);
    if (error instanceof OutboxLockedError || text.includes(path)) throw error;
    const hint = /disk I\/O error|disk is full|SQLITE_FULL|SQLITE_IOERR/i.test(text)
      ? " (is the disk full, or the filesystem read-only?)"
      : "";
    throw new Error(`Opening the outbox ${path} failed: ${text}${hint}`, { cause: error });
  }
}

/** Writes the control secret, readable by its owner only, for operators' `/status` calls. */
export function writeSecretFile(path: string, secret: string): void {
  // A new file renamed into place: a symlink planted at `path` is refused, never followed.
  writeFileNoFollow(path, secret + "\n", 0o600);
}
