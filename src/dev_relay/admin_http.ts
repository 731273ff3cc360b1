/**
 * The reference relay's `/admin/*` routes (root token only, never faulted): the state, the
 * fault switches and actions, commands and `error` frames sent to an agent, and the
 * permission answer.
 *
 * @module
 */
import type { BusCommand } from "../types.ts";
import { errorText } from "../util/mod.ts";
import { authorizeAdmin } from "./auth.ts";
import type { RelayContext, RouteCall } from "./context.ts";
import { parseFaultPatch } from "./faults.ts";
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

/** The actions `POST /admin/faults` takes besides the switches. */
const FAULT_ACTIONS = ["expireTokens", "dropBus", "downMs", "clear"] as const;

/** Answers a request whose path starts with `/admin/`. */
export async function adminHttp(ctx: RelayContext, call: RouteCall): Promise<Response> {
  authorizeAdmin(ctx.rootToken, call.request);
  const { path } = call;
  const method = call.request.method;
  if (path === "/admin/state") {
    if (method !== "GET") return notAllowed("GET");
    return json(200, {
      ...ctx.store.state(),
      faults: ctx.switches.faults,
      connections: ctx.hub.connections(),
      commands: ctx.hub.commands(),
    });
  }
  if (path === "/admin/faults") {
    if (method === "GET") return json(200, { faults: ctx.switches.faults });
    if (method !== "POST") return notAllowed("GET, POST");
    return await faults(ctx, call);
  }
  let m = /^\/admin\/agents\/([^/]+)\/commands$/.exec(path);
  if (m) {
    if (method !== "POST") return notAllowed("POST");
    return await command(ctx, call, decode(m[1] ?? ""));
  }
  m = /^\/admin\/agents\/([^/]+)\/errors$/.exec(path);
  if (m) {
    if (method !== "POST") return notAllowed("POST");
    const agentId = decode(m[1] ?? "");
    const body = record(await readJson(call.request), "the error frame");
    const sent = ctx.admin.sendError(
      agentId,
      requiredText(body, "code"),
      (text(body, "message", { optional: true, empty: true }) ?? "") as string,
      { close: body["close"] === true },
    );
    return json(200, { sent });
  }
  if (path === "/admin/permission") {
    if (method !== "POST") return notAllowed("POST");
    const body = record(await readJson(call.request), "the permission decision");
    const decision = body["decision"];
    if (decision !== "allow" && decision !== "deny") {
      throw new HttpError(400, `field "decision" must be allow or deny`);
    }
    const reason = text(body, "reason", { optional: true, empty: true, max: 1000 });
    ctx.admin.setPermission({ decision, ...(reason !== undefined ? { reason } : {}) });
    return json(200, { permission: ctx.switches.permission });
  }
  throw new HttpError(404, `no such endpoint: ${method} ${path}`);
}

/** `POST /admin/faults`: switches, `clear`, `expireTokens`, `dropBus`, and `down` for `downMs`. */
async function faults(ctx: RelayContext, call: RouteCall): Promise<Response> {
  const body = record(await readJson(call.request), "the faults");
  const patch = parseFaultPatch(body, FAULT_ACTIONS);
  if (typeof patch === "string") throw new HttpError(400, patch);
  const downMs = body["downMs"];
  if (patch.down === true) {
    if (typeof downMs !== "number" || !Number.isInteger(downMs) || downMs <= 0) {
      throw new HttpError(
        400,
        `"down" over HTTP needs "downMs" (a positive integer): nothing else could bring it back`,
      );
    }
  }
  const { admin } = ctx;
  if (body["clear"] === true) await admin.clearFaults();
  const { down, ...rest } = patch;
  const next = await admin.setFaults(rest);
  if (body["expireTokens"] === true) admin.expireTokens();
  if (body["dropBus"] === true) admin.dropWebSockets();
  if (down === true) {
    // Answer first, then go down; come back after downMs.
    ctx.switches.downFor(downMs as number);
    return json(200, { faults: { ...next, down: true } });
  }
  return json(200, { faults: next });
}

/** `POST /admin/agents/:id/commands`: sends a command and answers with its result. */
async function command(ctx: RelayContext, call: RouteCall, agentId: string): Promise<Response> {
  const body = record(await readJson(call.request), "the command request");
  const command = record(body["command"], `field "command"`);
  if (typeof command["type"] !== "string") throw new HttpError(400, `command needs a "type"`);
  const timeoutMs = typeof body["timeoutMs"] === "number" ? body["timeoutMs"] : 10_000;
  try {
    const result = await ctx.hub.sendCommand(agentId, command as BusCommand, {
      timeoutMs,
      signal: ctx.signal,
    });
    return json(200, result);
  } catch (error) {
    const message = errorText(error);
    throw new HttpError(/no provider connection/.test(message) ? 404 : 504, message);
  }
}
