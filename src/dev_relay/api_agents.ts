/**
 * The reference relay's agent routes: `POST /api/tokens/renew`, and under
 * `/api/agents/:id`: `DELETE` (the agent left), `GET reply-obligations`, `POST heartbeat` and
 * `POST permission-requests`.
 *
 * @module
 */
import { AGENT_STATUSES, type AgentStatus } from "../types.ts";
import { bearer } from "./auth.ts";
import type { RelayContext, RouteCall } from "./context.ts";
import {
  decode,
  HttpError,
  json,
  notAllowed,
  readJson,
  record,
  requiredText,
  text,
} from "./http.ts";

/**
 * `POST /api/tokens/renew`: a new token for any known one, even one expired less than the
 * renewal grace ago (the only thing an expired token may do).
 */
export function renewRoute(ctx: RelayContext, call: RouteCall): Response | undefined {
  if (call.path !== "/api/tokens/renew") return undefined;
  if (call.request.method !== "POST") return notAllowed("POST");
  const token = bearer(call.request);
  if (!token) throw new HttpError(401, "missing bearer token");
  const found = ctx.store.checkToken(token);
  if (found.check === "unknown") throw new HttpError(401, "unknown bearer token");
  if (found.check === "expired" && (found.expiresAt ?? 0) + ctx.renewGraceMs < ctx.now()) {
    throw new HttpError(401, "the bearer token expired too long ago to renew");
  }
  const issued = ctx.store.issueToken(ctx.tokenTtlMs);
  const expiresAt = new Date(issued.expiresAt).toISOString();
  call.note(`new token expires ${expiresAt}`);
  return json(200, { token: issued.token, expiresAt });
}

/** The `/api/agents/:id` routes. */
export async function agentRoutes(
  ctx: RelayContext,
  call: RouteCall,
): Promise<Response | undefined> {
  const m = /^\/api\/agents\/([^/]+)(\/[a-z-]+)?$/.exec(call.path);
  if (!m) return undefined;
  const agentId = decode(m[1] ?? "");
  const { method } = call.request;
  const { store } = ctx;
  switch (m[2] ?? "") {
    case "": {
      if (method !== "DELETE") return notAllowed("DELETE");
      store.addDeparture(agentId);
      call.note(`${agentId} left`);
      return json(200, { ok: true });
    }
    case "/reply-obligations": {
      if (method !== "GET") return notAllowed("GET");
      const obligations = store.openObligations(agentId).map((o) => ({
        messageId: o.messageId,
        from: o.from,
        createdAt: o.createdAt,
        body: o.body,
      }));
      call.note(`${obligations.length} open for ${agentId}`);
      return json(200, { obligations });
    }
    case "/heartbeat": {
      if (method !== "POST") return notAllowed("POST");
      return await heartbeat(ctx, call, agentId);
    }
    case "/permission-requests": {
      if (method !== "POST") return notAllowed("POST");
      const body = record(await readJson(call.request), "the permission request");
      const decision = { ...ctx.switches.permission };
      store.addPermissionRequest({
        agentId,
        requestId: requiredText(body, "requestId"),
        provider: requiredText(body, "provider"),
        tool: requiredText(body, "tool"),
        input: body["input"] ?? null,
        ...decision,
      });
      call.note(`${agentId} ${String(body["tool"])}: ${decision.decision}`);
      return json(200, decision);
    }
  }
  return undefined;
}

async function heartbeat(ctx: RelayContext, call: RouteCall, agentId: string): Promise<Response> {
  const body = record(await readJson(call.request), "the heartbeat");
  const status = requiredText(body, "status");
  if (!AGENT_STATUSES.includes(status as AgentStatus)) {
    throw new HttpError(400, `field "status" must be one of ${AGENT_STATUSES.join(", ")}`);
  }
  const pid = body["pid"];
  if (typeof pid !== "number" || !Number.isInteger(pid) || pid < 0) {
    throw new HttpError(400, `field "pid" must be a process id`);
  }
  ctx.store.addHeartbeat({
    agentId,
    status,
    provider: requiredText(body, "provider"),
    version: requiredText(body, "version"),
    pid,
    host: text(body, "host", { empty: true, max: 255 }) as string,
  });
  call.note(`${agentId} ${status}`);
  return json(200, { ok: true });
}
