/**
 * Reading what the relay sends: its times (ISO-8601 or epoch ms), messages and reply
 * obligations, checked field by field (docs/protocol.md).
 *
 * @module
 */
import type { Message, ReplyObligation } from "../types.ts";

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

/** Reads a {@linkcode Message} from a relay answer; `undefined` when it is not one. */
export function parseMessage(value: unknown): Message | undefined {
  if (!isRecord(value)) return undefined;
  const { id, from, to, kind, body, replyTo, payload, taskId } = value;
  if (typeof id !== "number" || !Number.isFinite(id)) return undefined;
  if (typeof from !== "string" || typeof to !== "string") return undefined;
  if (typeof kind !== "string" || typeof body !== "string") return undefined;
  const createdAt = toIso(value["createdAt"]);
  if (createdAt === undefined) return undefined;
  const message: Message = { id, from, to, kind, body, createdAt };
  if (typeof replyTo === "number" && Number.isFinite(replyTo)) message.replyTo = replyTo;
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
