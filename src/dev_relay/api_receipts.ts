/**
 * The reference relay's receipt routes: `POST /api/messages/:id/receipts` (how far an agent
 * got with a message; idempotent per message, agent and state) and
 * `GET /api/messages/:id/receipts` (them all, in the order stored); the write also as
 * {@linkcode applyReceipt} for the batch.
 *
 * @module
 */
import { answer, type Applied, type RelayContext, type RouteCall } from "./context.ts";
import {
  HttpError,
  json,
  messageIdParam,
  notAllowed,
  readJson,
  record,
  requiredText,
  text,
} from "./http.ts";
import type { StoredReceipt } from "./store_types.ts";

const STATES = ["received", "handed", "answered", "failed"] as const;

/** The receipt routes. */
export async function receiptRoutes(
  ctx: RelayContext,
  call: RouteCall,
): Promise<Response | undefined> {
  const m = /^\/api\/messages\/([^/]+)\/receipts$/.exec(call.path);
  if (!m) return undefined;
  const { method } = call.request;
  if (method !== "GET" && method !== "POST") return notAllowed("GET, POST");
  const id = messageIdParam(m[1] ?? "");
  if (method === "POST") {
    return answer(ctx, call, applyReceipt(ctx, id, await readJson(call.request)));
  }
  if (!ctx.store.getMessage(id)) throw new HttpError(404, `message ${id} does not exist`);
  const receipts = ctx.store.receiptsFor(id).map(wire);
  call.note(`${receipts.length} for #${id}`);
  return json(200, { receipts });
}

/** A stored receipt as the contract lists it: `{state, at, agentId, detail?}`. */
function wire(receipt: StoredReceipt): Record<string, unknown> {
  const { state, at, agentId, detail } = receipt;
  return { state, at, agentId, ...(detail !== undefined ? { detail } : {}) };
}

/**
 * `POST /api/messages/:id/receipts` with its body: 201 stored, 200 when this agent already
 * reported this state for this message (the first stays), 404 for an unknown message.
 */
export function applyReceipt(ctx: RelayContext, messageId: number, value: unknown): Applied {
  const body = record(value, "the receipt");
  const agentId = requiredText(body, "agentId");
  const state = body["state"];
  if (typeof state !== "string" || !(STATES as readonly string[]).includes(state)) {
    throw new HttpError(400, `field "state" must be one of ${STATES.join(", ")}`);
  }
  const at = body["at"];
  if (typeof at !== "number" || !Number.isFinite(at) || at < 0) {
    throw new HttpError(400, `field "at" must be epoch milliseconds`);
  }
  const detail = text(body, "detail", { optional: true, empty: true, max: 1000 });
  if (!ctx.store.getMessage(messageId)) {
    throw new HttpError(404, `message ${messageId} does not exist`);
  }
  const { receipt, created } = ctx.store.addReceipt({
    messageId,
    agentId,
    state: state as StoredReceipt["state"],
    at,
    ...(detail !== undefined ? { detail } : {}),
  });
  return {
    status: created ? 201 : 200,
    body: { receipt: wire(receipt) },
    note: () => `#${messageId} ${state} (${agentId})${created ? "" : " (already stored)"}`,
  };
}
