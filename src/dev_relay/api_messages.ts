/**
 * The reference relay's message routes: `POST /api/messages` (send, idempotent by key),
 * `GET /api/messages?for=ID` (the inbox) and `POST /api/messages/:id/read`; the send and the
 * read mark also as {@linkcode applySend} and {@linkcode applyMarkRead} for the batch.
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
  snippet,
  text,
  time,
} from "./http.ts";
import type { NewMessage } from "./store_types.ts";

/** The message routes. */
export async function messageRoutes(
  ctx: RelayContext,
  call: RouteCall,
): Promise<Response | undefined> {
  const { path, request } = call;
  if (path === "/api/messages") {
    if (request.method === "POST") {
      return answer(ctx, call, applySend(ctx, await readJson(request)));
    }
    if (request.method === "GET") return inbox(ctx, call);
    return notAllowed("GET, POST");
  }
  const m = /^\/api\/messages\/([^/]+)\/read$/.exec(path);
  if (m) {
    if (request.method !== "POST") return notAllowed("POST");
    const id = messageIdParam(m[1] ?? "");
    return answer(ctx, call, applyMarkRead(ctx, id, await readJson(request)));
  }
  return undefined;
}

/** `POST /api/messages/:id/read` with its body: 404 for a message the relay does not have. */
export function applyMarkRead(ctx: RelayContext, id: number, value: unknown): Applied {
  const body = record(value, "the body");
  const agentId = requiredText(body, "agentId");
  if (!ctx.store.getMessage(id)) throw new HttpError(404, `message ${id} does not exist`);
  ctx.store.markRead(id, agentId);
  return { status: 200, body: { ok: true }, note: () => `#${id} read by ${agentId}` };
}

/** `POST /api/messages` with its body: 201 stored, 200 the original of a repeated key. */
export function applySend(ctx: RelayContext, value: unknown): Applied {
  const body = record(value, "the message");
  const input: NewMessage = {
    from: requiredText(body, "from"),
    to: requiredText(body, "to"),
    kind: requiredText(body, "kind", 50),
    body: text(body, "body", { empty: true }) as string,
  };
  const replyTo = body["replyTo"];
  if (replyTo !== undefined && replyTo !== null) {
    if (typeof replyTo !== "number" || !Number.isInteger(replyTo) || replyTo <= 0) {
      throw new HttpError(400, `field "replyTo" must be a message id (a positive integer)`);
    }
    input.replyTo = replyTo;
  }
  if (body["payload"] !== undefined && body["payload"] !== null) {
    input.payload = body["payload"];
  }
  const taskId = text(body, "taskId", { optional: true, max: 200 });
  if (taskId !== undefined) input.taskId = taskId;
  const occurredAt = time(body, "occurredAt");
  if (occurredAt !== undefined) input.occurredAt = occurredAt;
  const key = text(body, "idempotencyKey", { optional: true, max: 256 });
  if (key !== undefined) input.idempotencyKey = key;
  const { message, created } = ctx.store.addMessage(input);
  const note = () =>
    `#${message.id} ${message.from} -> ${message.to} ${message.kind}` +
    `${message.replyTo ? ` reply to #${message.replyTo}` : ""} ${snippet(message.body)}` +
    (created ? "" : " (duplicate key: original returned)");
  return {
    status: created ? 201 : 200,
    body: { message },
    note,
    ...(created ? { fanOut: message } : {}),
  };
}

function inbox(ctx: RelayContext, call: RouteCall): Response {
  const params = call.url.searchParams;
  const agent = params.get("for");
  if (!agent) throw new HttpError(400, `query parameter "for" is required`);
  const unreadRaw = params.get("unread") ?? "false";
  if (!["true", "false", "1", "0"].includes(unreadRaw)) {
    throw new HttpError(400, `query parameter "unread" must be true or false`);
  }
  const limitRaw = params.get("limit") ?? "100";
  const limit = Number(limitRaw);
  if (!/^\d+$/.test(limitRaw) || limit < 1 || limit > 1000) {
    throw new HttpError(400, `query parameter "limit" must be 1 to 1000, not "${limitRaw}"`);
  }
  const afterRaw = params.get("after") ?? "0";
  const after = Number(afterRaw);
  if (!/^\d{1,15}$/.test(afterRaw)) {
    throw new HttpError(400, `query parameter "after" must be a message id, not "${afterRaw}"`);
  }
  const messages = ctx.store.messagesFor(agent, {
    unread: unreadRaw === "true" || unreadRaw === "1",
    limit,
    after,
    withSession: ctx.switches.faults.sessionUnread,
  });
  call.note(`${messages.length} for ${agent}`);
  return json(200, { messages });
}
