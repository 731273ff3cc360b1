/**
 * Reading the two SQLite files of a run directly, read-only: the runner's outbox (what it has
 * acknowledged and not yet delivered) and the reference relay's database (what it stored).
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";

/** One outbox event as a test checks it. */
export interface OutboxRecord {
  seq: number;
  kind: string;
  key: string;
  payload: unknown;
  poisoned: boolean;
}

/** The outbox's pending and poisoned events, read without taking its lock (none when absent). */
export function outboxRecords(outboxFile: string): OutboxRecord[] {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(outboxFile, { readOnly: true, timeout: 2_000 });
  } catch {
    return [];
  }
  try {
    const read = (table: string, poisoned: boolean) =>
      (db.prepare(`SELECT seq, kind, idempotency_key AS key, payload FROM ${table}`).all() as Array<
        { seq: number; kind: string; key: string; payload: string }
      >).map((r) => ({ ...r, payload: JSON.parse(r.payload), poisoned }));
    return [...read("outbox", false), ...read("poisoned", true)];
  } finally {
    db.close();
  }
}

/** Every `[sender, idempotency key]` the relay stored for messages, and every insight's key. */
export function storedKeys(
  relayDb: string,
): { messages: Array<{ sender: string; key: string | null }>; insights: Array<string | null> } {
  const db = new DatabaseSync(relayDb, { readOnly: true });
  try {
    const messages = db.prepare("SELECT sender, idempotency_key AS key FROM messages")
      .all() as Array<{ sender: string; key: string | null }>;
    const insights = (db.prepare("SELECT idempotency_key AS key FROM insights").all() as Array<
      { key: string | null }
    >).map((r) => r.key);
    return { messages, insights };
  } finally {
    db.close();
  }
}

/** How many tokens the relay issued by renewal (not the root token). */
export function renewedTokens(relayDb: string): number {
  const db = new DatabaseSync(relayDb, { readOnly: true });
  try {
    return (db.prepare("SELECT count(*) AS n FROM tokens WHERE root = 0").get() as { n: number }).n;
  } finally {
    db.close();
  }
}
