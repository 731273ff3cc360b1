/**
 * The bodies the runner sends that are not shared types: a task status, a receipt, and the
 * items and results of `POST /api/batch`, with the batch limits (docs/protocol.md).
 *
 * @module
 */
import type { InsightInput, SendMessageInput, TaskStatus } from "../types.ts";
import { isRecord, type ReceiptState } from "./wire.ts";

/** The body of `POST /api/tasks/:taskId/status`. */
export interface TaskStatusInput {
  status: TaskStatus;
  agentId: string;
  metadata?: unknown;
}

/** The body of `POST /api/messages/:id/receipts`. */
export interface ReceiptInput {
  agentId: string;
  state: ReceiptState;
  /** Epoch milliseconds of the step. */
  at: number;
  /** One sentence: why a message failed, say (at most 1000 characters). */
  detail?: string;
}

/** The most items one `POST /api/batch` may carry. */
export const MAX_BATCH_ITEMS = 1000;

/** The largest `POST /api/batch` body, in bytes (JSON, UTF-8). */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024;

/** One call inside `POST /api/batch`, applied exactly as the single call would be. */
export type BatchItem =
  | { type: "message"; body: SendMessageInput }
  | { type: "insight"; body: InsightInput }
  | { type: "mark-read"; messageId: number; agentId: string }
  | { type: "task-status"; taskId: string; body: TaskStatusInput }
  | { type: "receipt"; messageId: number; body: ReceiptInput };

/** What one batch item got: the HTTP status the single call would have got. */
export interface BatchResult {
  status: number;
  /** The single call's error sentence, for a status that is not 2xx. */
  error?: string;
}

/** The results of a batch answer, one per item; `undefined` when the answer is not that. */
export function parseBatchResults(data: unknown, count: number): BatchResult[] | undefined {
  const list = isRecord(data) ? data["results"] : undefined;
  if (!Array.isArray(list) || list.length !== count) return undefined;
  const results: BatchResult[] = [];
  for (const item of list) {
    if (!isRecord(item)) return undefined;
    const status = item["status"];
    if (typeof status !== "number" || !Number.isInteger(status) || status < 100 || status > 599) {
      return undefined;
    }
    const result: BatchResult = { status };
    if (typeof item["error"] === "string") result.error = item["error"];
    results.push(result);
  }
  return results;
}
