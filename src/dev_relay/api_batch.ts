/**
 * The reference relay's `POST /api/batch`: up to {@linkcode MAX_BATCH_ITEMS} calls (messages,
 * insights, read marks, task statuses, receipts) in one request of at most 4 MiB, applied in
 * order in one SQLite transaction, each exactly as its single call (same checks, same dedup by
 * idempotency key, same 404s). The answer is 200 `{results: [{status, error?}]}`, one per item,
 * each with the status the single call would have got. New messages go out on the bus once
 * the transaction is committed.
 *
 * @module
 */
import type { Message } from "../types.ts";
import { errorText } from "../util/mod.ts";
import { applyMarkRead, applySend } from "./api_messages.ts";
import { applyReceipt } from "./api_receipts.ts";
import { applyInsight, applyTaskStatus } from "./api_reports.ts";
import type { Applied, RelayContext, RouteCall } from "./context.ts";
import {
  HttpError,
  json,
  MAX_BATCH_BODY,
  MAX_BODY,
  notAllowed,
  parseJson,
  readBody,
  record,
  requiredText,
} from "./http.ts";

/** The most items one batch may carry. */
export const MAX_BATCH_ITEMS = 1000;

const TYPES = ["message", "insight", "mark-read", "task-status", "receipt"] as const;

/** One item's outcome. */
interface ItemResult {
  status: number;
  error?: string;
}

/** The batch route. */
export async function batchRoute(
  ctx: RelayContext,
  call: RouteCall,
): Promise<Response | undefined> {
  if (call.path !== "/api/batch") return undefined;
  if (call.request.method !== "POST") return notAllowed("POST");
  const bytes = await readBody(call.request, MAX_BATCH_BODY);
  const body = record(parseJson(bytes), "the batch");
  const items = body["items"];
  if (!Array.isArray(items)) throw new HttpError(400, `field "items" must be an array`);
  if (items.length > MAX_BATCH_ITEMS) {
    throw new HttpError(400, `a batch holds at most ${MAX_BATCH_ITEMS} items, not ${items.length}`);
  }
  // Re-encoding JSON grows it by a quarter at most (`1e21` is `1e+21`): no item of a batch
  // this small can pass MAX_BODY, so none needs measuring.
  const small = bytes.length * 1.25 < MAX_BODY;
  const pushed: Message[] = [];
  const results = ctx.store.transaction(() =>
    items.map((item, index): ItemResult => {
      try {
        const applied = applyItem(ctx, item, { index, small });
        if (applied.fanOut) pushed.push(applied.fanOut);
        return { status: applied.status };
      } catch (error) {
        if (error instanceof HttpError) return { status: error.status, error: error.message };
        return { status: 500, error: `internal error: ${errorText(error)}` };
      }
    })
  );
  for (const message of pushed) ctx.hub.fanOut(message);
  const counts = new Map<number, number>();
  for (const r of results) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  call.note(
    `${items.length} items: ${[...counts].map(([status, n]) => `${n}x${status}`).join(" ")}`,
  );
  return json(200, { results });
}

/** A whole number id field of an item, or a 400 naming it. */
function idField(item: Record<string, unknown>, key: string): number {
  const v = item[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
    throw new HttpError(400, `field "${key}" must be a message id (a positive integer)`);
  }
  return v;
}

function applyItem(
  ctx: RelayContext,
  value: unknown,
  { index, small }: { index: number; small: boolean },
): Applied {
  const item = record(value, `item ${index}`);
  const type = item["type"];
  if (typeof type !== "string" || !(TYPES as readonly string[]).includes(type)) {
    throw new HttpError(400, `item ${index}: field "type" must be one of ${TYPES.join(", ")}`);
  }
  // The single call would have refused a body this large before reading it.
  if (!small) {
    const text = JSON.stringify(item["body"] ?? {});
    if (text.length * 3 > MAX_BODY && new TextEncoder().encode(text).length > MAX_BODY) {
      throw new HttpError(413, `the body is larger than ${MAX_BODY} bytes`);
    }
  }
  switch (type as typeof TYPES[number]) {
    case "message":
      return applySend(ctx, item["body"]);
    case "insight":
      return applyInsight(ctx, item["body"]);
    case "mark-read":
      return applyMarkRead(ctx, idField(item, "messageId"), { agentId: item["agentId"] });
    case "task-status":
      return applyTaskStatus(ctx, requiredText(item, "taskId"), item["body"]);
    case "receipt":
      return applyReceipt(ctx, idField(item, "messageId"), item["body"]);
  }
}
