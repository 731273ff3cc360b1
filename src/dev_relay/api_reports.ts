/**
 * The reference relay's report routes: `POST /api/insights` (idempotent by key; 409 under the
 * `insights409` fault) and `POST /api/tasks/:id/status`; both also as
 * {@linkcode applyInsight} and {@linkcode applyTaskStatus} for the batch.
 *
 * @module
 */
import { answer, type Applied, type RelayContext, type RouteCall } from "./context.ts";
import {
  decode,
  HttpError,
  notAllowed,
  readJson,
  record,
  requiredText,
  text,
  time,
} from "./http.ts";

const TASK_STATUSES = ["in_progress", "done", "failed"];

/** The insight and task-status routes. */
export async function reportRoutes(
  ctx: RelayContext,
  call: RouteCall,
): Promise<Response | undefined> {
  if (call.path === "/api/insights") {
    if (call.request.method !== "POST") return notAllowed("POST");
    return answer(ctx, call, applyInsight(ctx, await readJson(call.request)));
  }
  const m = /^\/api\/tasks\/([^/]+)\/status$/.exec(call.path);
  if (!m) return undefined;
  if (call.request.method !== "POST") return notAllowed("POST");
  const taskId = decode(m[1] ?? "");
  return answer(ctx, call, applyTaskStatus(ctx, taskId, await readJson(call.request)));
}

/** `POST /api/tasks/:taskId/status` with its body. */
export function applyTaskStatus(ctx: RelayContext, taskId: string, value: unknown): Applied {
  const body = record(value, "the task status");
  const status = requiredText(body, "status");
  if (!TASK_STATUSES.includes(status)) {
    throw new HttpError(400, `field "status" must be in_progress, done or failed, not "${status}"`);
  }
  const agentId = requiredText(body, "agentId");
  ctx.store.addTaskStatus({
    taskId,
    status,
    agentId,
    ...(body["metadata"] !== undefined ? { metadata: body["metadata"] } : {}),
  });
  return { status: 200, body: { ok: true }, note: () => `task ${taskId} ${status} by ${agentId}` };
}

/** `POST /api/insights` with its body: 201 stored, 200 the original of a repeated key. */
export function applyInsight(ctx: RelayContext, value: unknown): Applied {
  if (ctx.switches.faults.insights409) {
    throw new HttpError(409, "insights are turned off on this relay");
  }
  const body = record(value, "the insight");
  if (body["value"] === undefined) throw new HttpError(400, `field "value" is required`);
  const occurredAt = time(body, "occurredAt");
  if (occurredAt === undefined) throw new HttpError(400, `field "occurredAt" is required`);
  const key = text(body, "idempotencyKey", { optional: true, max: 256 });
  const { insight, created } = ctx.store.addInsight({
    sessionId: text(body, "sessionId", { empty: true, max: 500 }) as string,
    project: text(body, "project", { empty: true, max: 4096 }) as string,
    agentId: requiredText(body, "agentId"),
    signal: requiredText(body, "signal"),
    value: body["value"],
    ...(body["outcome"] !== undefined ? { outcome: body["outcome"] } : {}),
    source: requiredText(body, "source"),
    occurredAt,
    ...(key !== undefined ? { idempotencyKey: key } : {}),
  });
  return {
    status: created ? 201 : 200,
    body: { insight },
    note: () => `${insight.signal} from ${insight.agentId}${created ? "" : " (duplicate key)"}`,
  };
}
