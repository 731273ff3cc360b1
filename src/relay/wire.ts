/**
 * Reading what the relay sends: its times (ISO-8601 or epoch ms), messages and reply
 * obligations, checked field by field (docs/protocol.md).
 *
 * @module
 */
import type { Message, ReplyObligation } from "../types.ts";

/** A message's progress on its way through an agent, in order. */
export type ReceiptState = "received" | "handed" | "answered" | "failed";

/** Every receipt state, in order. */
export const RECEIPT_STATES: readonly ReceiptState[] = ["received", "handed", "answered", "failed"];

/** A receipt as the relay lists it (`GET /api/messages/:id/receipts`). */
export interface Receipt {
  state: ReceiptState;
  /** Epoch milliseconds of the step. */
  at: number;
  agentId: string;
  /** One sentence: why a message failed, say. */
  detail?: string;
}

/**
 * Converts a relay time (ISO-8601 string, epoch-ms number or numeric string) to epoch
 * milliseconds; `undefined` when it is none of those.
 */
export function toEpochMs(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value !== "string" || value.trim() === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Number(value);
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/** A relay time as ISO-8601 UTC; `undefined` when it is not a time. */
export function toIso(value: unknown): string | undefined {
  const ms = toEpochMs(value);
  if (ms === undefined) return undefined;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** Whether `value` is a JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Whether `value` is a relay id: a positive safe integer (not `-5`, `1e308`, `1.5` or `"7"`). */
export function isMessageId(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

/**
 * Reads a {@linkcode Message} from a relay answer; `undefined` when it is not one: its `id`
 * (and `replyTo`, when set) must be a positive safe integer.
 */
export function parseMessage(value: unknown): Message | undefined {
  if (!isRecord(value)) return undefined;
  const { id, from, to, kind, body, replyTo, payload, taskId } = value;
  if (!isMessageId(id)) return undefined;
  if (replyTo !== undefined && replyTo !== null && !isMessageId(replyTo)) return undefined;
  if (typeof from !== "string" || typeof to !== "string") return undefined;
  if (typeof kind !== "string" || typeof body !== "string") return undefined;
  const createdAt = toIso(value["createdAt"]);
  if (createdAt === undefined) return undefined;
  const message: Message = { id, from, to, kind, body, createdAt };
  if (isMessageId(replyTo)) message.replyTo = replyTo;
  if (payload !== undefined && payload !== null) message.payload = payload;
  if (typeof taskId === "string") message.taskId = taskId;
  return message;
}

/** Reads a {@linkcode ReplyObligation} from a relay answer; `undefined` when it is not one. */
export function parseObligation(value: unknown): ReplyObligation | undefined {
  if (!isRecord(value)) return undefined;
  const { messageId, from } = value;
  if (typeof messageId !== "number" || typeof from !== "string") return undefined;
  const createdAt = toIso(value["createdAt"]);
  if (createdAt === undefined) return undefined;
  const obligation: ReplyObligation = { messageId, from, createdAt };
  if (typeof value["body"] === "string") obligation.body = value["body"];
  return obligation;
}

/** Reads a {@linkcode Receipt} from a relay answer; `undefined` when it is not one. */
export function parseReceipt(value: unknown): Receipt | undefined {
  if (!isRecord(value)) return undefined;
  const { state, agentId, detail } = value;
  if (!RECEIPT_STATES.includes(state as ReceiptState)) return undefined;
  if (typeof agentId !== "string") return undefined;
  const at = toEpochMs(value["at"]);
  if (at === undefined) return undefined;
  const receipt: Receipt = { state: state as ReceiptState, at, agentId };
  if (typeof detail === "string") receipt.detail = detail;
  return receipt;
}
