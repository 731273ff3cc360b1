/**
 * The reference relay's `/api/*` side: the bus upgrade (`GET /api/bus`), the HTTP fault gate
 * (`slowMs`, then `failStatus`, then `garbage`), token renewal, the bearer check, and the
 * routes behind it.
 *
 * @module
 */
import { agentRoutes, renewRoute } from "./api_agents.ts";
import { batchRoute } from "./api_batch.ts";
import { messageRoutes } from "./api_messages.ts";
import { receiptRoutes } from "./api_receipts.ts";
import { reportRoutes } from "./api_reports.ts";
import { authorize } from "./auth.ts";
import type { RelayContext, Route, RouteCall } from "./context.ts";
import { HttpError, json, notAllowed } from "./http.ts";

/** The routes that need a valid bearer token, tried in order. */
const AUTHORIZED: readonly Route[] = [
  messageRoutes,
  receiptRoutes,
  batchRoute,
  reportRoutes,
  agentRoutes,
];

/** Answers a request whose path starts with `/api/`. */
export async function api(ctx: RelayContext, call: RouteCall): Promise<Response> {
  if (call.path === "/api/bus") return bus(ctx, call);
  const faulted = await faultAnswer(ctx, call);
  if (faulted) return faulted;
  const renewed = renewRoute(ctx, call);
  if (renewed) return renewed;
  authorize(ctx.store, call.request);
  for (const route of AUTHORIZED) {
    const response = await route(ctx, call);
    if (response) return response;
  }
  throw new HttpError(404, `no such endpoint: ${call.request.method} ${call.path}`);
}

/** `GET /api/bus`: upgrades an authorized request to a bus connection. */
function bus(ctx: RelayContext, call: RouteCall): Response {
  const { request } = call;
  if (request.method !== "GET") return notAllowed("GET");
  if (ctx.switches.faults.dropWebSockets) {
    throw new HttpError(503, "the bus is refusing connections (fault)");
  }
  const token = authorize(ctx.store, request);
  if ((request.headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
    throw new HttpError(426, "the bus needs a WebSocket upgrade");
  }
  const agentId = call.url.searchParams.get("agentId");
  if (!agentId) throw new HttpError(400, `query parameter "agentId" is required`);
  const role = call.url.searchParams.get("role") || "provider";
  call.note(`${agentId} (${role})`);
  return ctx.hub.accept(request, agentId, role, token);
}

/** The answer the HTTP faults give instead of the real one, after the `slowMs` delay. */
async function faultAnswer(ctx: RelayContext, call: RouteCall): Promise<Response | undefined> {
  const faults = ctx.switches.faults;
  if (faults.slowMs > 0) await sleep(ctx, faults.slowMs);
  // The switches may have changed during the delay.
  const now = ctx.switches.faults;
  if (now.failStatus > 0) {
    const status = now.failStatus;
    if (now.failCount > 0 && --now.failCount === 0) now.failStatus = 0;
    call.note("(fault)");
    return json(
      status,
      { error: `injected fault: ${status}` },
      status === 429 || status === 503 ? { "retry-after": "1" } : {},
    );
  }
  if (now.garbage) {
    call.note("(fault: garbage)");
    return new Response("<html>this is not JSON", {
      status: 200,
      headers: { "content-type": "text/html" },
    });
  }
  return undefined;
}

/** Waits `ms` on the relay's clock, or until the relay closes. */
function sleep(ctx: RelayContext, ms: number): Promise<void> {
  const { clock, signal } = ctx;
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = clock.setTimeout(done, ms);
    function done() {
      clock.clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
