/**
 * The reference relay's rows read back: JSON columns, and the row -> record mappers.
 *
 * @module
 */
import type { Message } from "../types.ts";
import type {
  NewInsight,
  NewMessage,
  StoredInsight,
  StoredObligation,
  StoredReceipt,
} from "./store_types.ts";

/** A row as `node:sqlite` returns it. */
export type Row = Record<string, unknown>;

/** A value as JSON text for a column; `undefined` is NULL. */
export function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

/** A JSON column back to its value; text that is not JSON stays text. */
export function unjson(text: unknown): unknown {
  if (typeof text !== "string") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A column as a string (NULL is empty). */
export function str(row: Row, key: string): string {
  return String(row[key] ?? "");
}

/** A column as a number. */
export function num(row: Row, key: string): number {
  return Number(row[key]);
}

/** A `messages` row as a {@linkcode Message}. */
export function messageOf(row: Row): Message {
  const message: Message = {
    id: num(row, "id"),
    from: str(row, "sender"),
    to: str(row, "recipient"),
    kind: str(row, "kind"),
    body: str(row, "body"),
    createdAt: str(row, "created_at"),
  };
  if (row["reply_to"] !== null && row["reply_to"] !== undefined) {
    message.replyTo = num(row, "reply_to");
  }
  const payload = unjson(row["payload"]);
  if (payload !== undefined && payload !== null) message.payload = payload;
  if (typeof row["task_id"] === "string") message.taskId = row["task_id"];
  return message;
}

/** An `obligations` row (joined with its message body) as a stored obligation. */
export function obligationOf(row: Row): StoredObligation {
  const out: StoredObligation = {
    messageId: num(row, "message_id"),
    agentId: str(row, "agent_id"),
    from: str(row, "sender"),
    body: str(row, "body"),
    createdAt: str(row, "created_at"),
  };
  if (row["cleared_by"] !== null && row["cleared_by"] !== undefined) {
    out.clearedBy = num(row, "cleared_by");
    out.clearedAt = str(row, "cleared_at");
  }
  return out;
}

/** An `insights` row as a stored insight. */
export function insightOf(row: Row): StoredInsight {
  const out: StoredInsight = {
    id: num(row, "id"),
    sessionId: str(row, "session_id"),
    project: str(row, "project"),
    agentId: str(row, "agent_id"),
    signal: str(row, "signal"),
    value: unjson(row["value"]),
    source: str(row, "source"),
    occurredAt: num(row, "occurred_at"),
    createdAt: str(row, "created_at"),
  };
  if (typeof row["idempotency_key"] === "string") out.idempotencyKey = row["idempotency_key"];
  const outcome = unjson(row["outcome"]);
  if (outcome !== undefined && outcome !== null) out.outcome = outcome;
  return out;
}

/** A `receipts` row as a stored receipt. */
export function receiptOf(row: Row): StoredReceipt {
  const out: StoredReceipt = {
    messageId: num(row, "message_id"),
    agentId: str(row, "agent_id"),
    state: str(row, "state") as StoredReceipt["state"],
    at: num(row, "at"),
    createdAt: str(row, "created_at"),
  };
  if (typeof row["detail"] === "string") out.detail = row["detail"];
  return out;
}

/** A text column as SQLite gives it back: a lone surrogate becomes U+FFFD on the way in. */
function stored(text: string): string;
function stored(text: string | undefined): string | null;
function stored(text: string | undefined): string | null {
  return text === undefined ? null : text.toWellFormed();
}

/**
 * The message a new `messages` row reads back as, from what was inserted (`payloadJson` is the
 * payload column's text): the same record as {@linkcode messageOf} of the row, without the
 * read.
 */
export function storedMessage(
  id: number,
  input: NewMessage,
  stamp: { createdAt: string; payloadJson: string | null },
): Message {
  return messageOf({
    id,
    sender: stored(input.from),
    recipient: stored(input.to),
    kind: stored(input.kind),
    body: stored(input.body),
    reply_to: input.replyTo ?? null,
    payload: stamp.payloadJson,
    task_id: stored(input.taskId),
    created_at: stamp.createdAt,
  });
}

/** The insight a new `insights` row reads back as (see {@linkcode storedMessage}). */
export function storedInsight(id: number, input: NewInsight, createdAt: string): StoredInsight {
  return insightOf({
    id,
    idempotency_key: stored(input.idempotencyKey),
    session_id: stored(input.sessionId),
    project: stored(input.project),
    agent_id: stored(input.agentId),
    signal: stored(input.signal),
    value: json(input.value),
    outcome: json(input.outcome),
    source: stored(input.source),
    occurred_at: input.occurredAt,
    created_at: createdAt,
  });
}

/** The receipt a new `receipts` row reads back as (see {@linkcode storedMessage}). */
export function storedReceipt(input: Omit<StoredReceipt, "createdAt">, createdAt: string) {
  return receiptOf({
    message_id: input.messageId,
    agent_id: stored(input.agentId),
    state: input.state,
    at: input.at,
    detail: stored(input.detail),
    created_at: createdAt,
  });
}
