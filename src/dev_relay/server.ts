/**
 * The reference relay (`agent-relay-runner dev-relay`): a real HTTP + WebSocket server on
 * 127.0.0.1 that implements the whole runner ↔ relay contract (docs/protocol.md,
 * docs/protocol.md) on `node:sqlite`, with fault switches and an admin API for tests.
 *
 * - `/api/*` needs `Authorization: Bearer <token>`: the root token (`--token`, default
 *   `dev`, never expires) or one issued by `POST /api/tokens/renew` (valid until its
 *   `expiresAt`; renewing does not revoke the old one). A token expired less than
 *   `renewGraceMs` ago may still renew itself, and nothing else.
 * - `/admin/*` needs the root token, whatever its expiry, and is never faulted.
 * - `GET /health` needs nothing.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import {
  AGENT_STATUSES,
  type AgentStatus,
  type BusCommand,
  type PermissionDecision,
} from "../types.ts";
import { type BusConnection, BusHub, type CommandRecord, type CommandResult } from "./bus_hub.ts";
import { type DevRelayFaults, type FaultPatch, noFaults, parseFaultPatch } from "./faults.ts";
import { type DevRelayState, type NewMessage, RelayStore } from "./store.ts";

type Timer = ReturnType<typeof setTimeout>;

const log = getLogger("dev-relay");
const MAX_BODY = 1024 * 1024;
/** A root token: 1 to 512 printable ASCII characters, no spaces. */
const TOKEN_SHAPE = /^[\x21-\x7e]{1,512}$/;

/** Options of {@linkcode startDevRelay}. */
export interface DevRelayOptions {
  /** The port on 127.0.0.1; 0 (the default) picks a free one. */
  port?: number;
  /** The SQLite file; default `:memory:` (nothing kept). */
  dbPath?: string;
  /** The root bearer token. Default `dev`. */
  token?: string;
  /** Aborting closes the relay. */
  signal?: AbortSignal;
  /** Lifetime of renewed tokens, milliseconds. Default one hour. */
  tokenTtlMs?: number;
  /** How long after expiry a token may still renew itself, milliseconds. Default one day. */
  renewGraceMs?: number;
  /** How permission requests are answered. Default deny. */
  permission?: PermissionDecision;
  /** Fault switches to start with. */
  faults?: FaultPatch;
  /** The clock, epoch ms. Default `Date.now`. */
  now?: () => number;
  /** One readable line per request and bus event (the CLI passes stderr). */
  trace?: (line: string) => void;
}

/** The admin side of a running relay, for tests and operators. */
export interface DevRelayAdmin {
  /** Everything stored. */
  state(): DevRelayState;
  /** The current fault switches. */
  faults(): DevRelayFaults;
  /** Changes fault switches; `down` closes or reopens the listener (same port). */
  setFaults(patch: FaultPatch): Promise<DevRelayFaults>;
  /** Every switch off (and the listener up). */
  clearFaults(): Promise<DevRelayFaults>;
  /** Expires every token now, the root one included (renewal stays possible within the grace). */
  expireTokens(): void;
  /** Closes every bus socket once (the runners reconnect). */
  dropWebSockets(): void;
  /** Issues a token as `POST /api/tokens/renew` would. */
  issueToken(ttlMs?: number): { token: string; expiresAt: string };
  /** The open bus connections. */
  connections(): BusConnection[];
  /** How many bus connections were accepted since start. */
  busConnectionsOpened(): number;
  /** Sends a command to an agent's provider connection and waits for its result. */
  sendCommand(
    agentId: string,
    command: BusCommand,
    options?: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<CommandResult>;
  /** Commands sent so far, with their results. */
  commands(): CommandRecord[];
  /** Sends an `error` frame to an agent's bus connections (and closes them with `close`). */
  sendError(agentId: string, code: string, message: string, options?: { close?: boolean }): number;
  /** Changes how permission requests are answered. */
  setPermission(decision: PermissionDecision): void;
}

/** A running reference relay. */
export interface DevRelay {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  port: number;
  /** The root token. */
  token: string;
  admin: DevRelayAdmin;
  /** Stops listening, closes every socket and the database. Idempotent. */
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(400, `${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

function text(
  body: Record<string, unknown>,
  key: string,
  options: { optional?: boolean; empty?: boolean; max?: number } = {},
): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) {
    if (options.optional) return undefined;
    throw new HttpError(400, `field "${key}" is required`);
  }
  if (typeof v !== "string") throw new HttpError(400, `field "${key}" must be a string`);
  if (!options.empty && v.trim() === "") {
    throw new HttpError(400, `field "${key}" must not be empty`);
  }
  if (options.max !== undefined && v.length > options.max) {
    throw new HttpError(400, `field "${key}" is longer than ${options.max} characters`);
  }
  return v;
}

function requiredText(body: Record<string, unknown>, key: string, max = 200): string {
  return text(body, key, { max }) as string;
}

function time(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && !Number.isNaN(Date.parse(v))) return Date.parse(v);
  throw new HttpError(400, `field "${key}" must be epoch milliseconds or an ISO-8601 time`);
}

function bearer(request: Request): string | undefined {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

function constantTimeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

async function readJson(request: Request): Promise<unknown> {
  const length = Number(request.headers.get("content-length") ?? "0");
  if (length > MAX_BODY) throw new HttpError(413, `the body is larger than ${MAX_BODY} bytes`);
  const bytes = new Uint8Array(await request.arrayBuffer());
  if (bytes.length > MAX_BODY) {
    throw new HttpError(413, `the body is larger than ${MAX_BODY} bytes`);
  }
  const raw = new TextDecoder().decode(bytes);
  if (raw.trim() === "") return {};
  try {
    return JSON.parse(raw);
  } catch {
    throw new HttpError(400, "the body is not valid JSON");
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, `path segment "${segment}" is not valid percent-encoding`);
  }
}

function snippet(body: string, max = 60): string {
  const flat = body.replace(/\s+/g, " ").trim();
  return JSON.stringify(flat.length > max ? `${flat.slice(0, max)}...` : flat);
}

/** Starts the reference relay on 127.0.0.1. */
export async function startDevRelay(options: DevRelayOptions = {}): Promise<DevRelay> {
  const rootToken = options.token ?? "dev";
  if (!TOKEN_SHAPE.test(rootToken)) {
    throw new TypeError("The relay token must be 1 to 512 printable characters without spaces");
  }
  const now = options.now ?? Date.now;
  const tokenTtlMs = options.tokenTtlMs ?? 60 * 60 * 1000;
  const renewGraceMs = options.renewGraceMs ?? 24 * 60 * 60 * 1000;
  const trace = (line: string) => {
    log.info(line);
    options.trace?.(line);
  };
  const store = new RelayStore(options.dbPath ?? ":memory:", { now });
  store.setRootToken(rootToken);
  let faults: DevRelayFaults = { ...noFaults(), ...options.faults, down: false };
  let permission: PermissionDecision = options.permission ??
    { decision: "deny", reason: "the dev relay denies tools unless told otherwise" };
  const lifetime = new AbortController();
  const hub = new BusHub({
    store,
    silent: () => faults.busSilent,
    now,
    trace: (line) => options.trace?.(line),
  });
  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  let port = options.port ?? 0;
  let closed = false;
  let downTimer: Timer | undefined;

  const isValid = (token: string) => store.checkToken(token).check === "valid";

  function authorize(request: Request): string {
    const token = bearer(request);
    if (!token) throw new HttpError(401, "missing bearer token");
    const { check } = store.checkToken(token);
    if (check === "unknown") throw new HttpError(401, "unknown bearer token");
    if (check === "expired") throw new HttpError(401, "the bearer token expired");
    return token;
  }

  function authorizeAdmin(request: Request): void {
    const token = bearer(request);
    if (!token || !constantTimeEqual(token, rootToken)) {
      throw new HttpError(401, "admin requests need the relay's root token");
    }
  }

  // -- /api ------------------------------------------------------------------------------------

  async function api(request: Request, path: string, note: (s: string) => void): Promise<Response> {
    const method = request.method;
    const url = new URL(request.url);
    if (path === "/api/tokens/renew") {
      if (method !== "POST") return notAllowed("POST");
      const token = bearer(request);
      if (!token) throw new HttpError(401, "missing bearer token");
      const found = store.checkToken(token);
      if (found.check === "unknown") throw new HttpError(401, "unknown bearer token");
      if (found.check === "expired" && (found.expiresAt ?? 0) + renewGraceMs < now()) {
        throw new HttpError(401, "the bearer token expired too long ago to renew");
      }
      const issued = store.issueToken(tokenTtlMs);
      note(`new token expires ${new Date(issued.expiresAt).toISOString()}`);
      return json(200, {
        token: issued.token,
        expiresAt: new Date(issued.expiresAt).toISOString(),
      });
    }
    authorize(request);

    if (path === "/api/messages") {
      if (method === "POST") {
        const body = record(await readJson(request), "the message");
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
        const { message, created } = store.addMessage(input);
        note(
          `#${message.id} ${message.from} -> ${message.to} ${message.kind}` +
            `${message.replyTo ? ` reply to #${message.replyTo}` : ""} ${snippet(message.body)}` +
            (created ? "" : " (duplicate key: original returned)"),
        );
        if (created) hub.fanOut(message);
        return json(created ? 201 : 200, { message });
      }
      if (method === "GET") {
        const agent = url.searchParams.get("for");
        if (!agent) throw new HttpError(400, `query parameter "for" is required`);
        const unreadRaw = url.searchParams.get("unread") ?? "false";
        if (!["true", "false", "1", "0"].includes(unreadRaw)) {
          throw new HttpError(400, `query parameter "unread" must be true or false`);
        }
        const limitRaw = url.searchParams.get("limit") ?? "100";
        const limit = Number(limitRaw);
        if (!/^\d+$/.test(limitRaw) || limit < 1 || limit > 1000) {
          throw new HttpError(400, `query parameter "limit" must be 1 to 1000, not "${limitRaw}"`);
        }
        const messages = store.messagesFor(agent, {
          unread: unreadRaw === "true" || unreadRaw === "1",
          limit,
        });
        note(`${messages.length} for ${agent}`);
        return json(200, { messages });
      }
      return notAllowed("GET, POST");
    }

    let m = /^\/api\/messages\/([^/]+)\/read$/.exec(path);
    if (m) {
      if (method !== "POST") return notAllowed("POST");
      const idText = decode(m[1] ?? "");
      const id = Number(idText);
      if (!/^\d+$/.test(idText)) throw new HttpError(400, `message id "${idText}" is not a number`);
      const body = record(await readJson(request), "the body");
      const agentId = requiredText(body, "agentId");
      if (!store.getMessage(id)) throw new HttpError(404, `message ${id} does not exist`);
      store.markRead(id, agentId);
      note(`#${id} read by ${agentId}`);
      return json(200, { ok: true });
    }

    if (path === "/api/insights") {
      if (method !== "POST") return notAllowed("POST");
      if (faults.insights409) throw new HttpError(409, "insights are turned off on this relay");
      const body = record(await readJson(request), "the insight");
      if (body["value"] === undefined) throw new HttpError(400, `field "value" is required`);
      const occurredAt = time(body, "occurredAt");
      if (occurredAt === undefined) throw new HttpError(400, `field "occurredAt" is required`);
      const key = text(body, "idempotencyKey", { optional: true, max: 256 });
      const { insight, created } = store.addInsight({
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
      note(`${insight.signal} from ${insight.agentId}${created ? "" : " (duplicate key)"}`);
      return json(created ? 201 : 200, { insight });
    }

    m = /^\/api\/tasks\/([^/]+)\/status$/.exec(path);
    if (m) {
      if (method !== "POST") return notAllowed("POST");
      const taskId = decode(m[1] ?? "");
      const body = record(await readJson(request), "the task status");
      const status = requiredText(body, "status");
      if (!["in_progress", "done", "failed"].includes(status)) {
        throw new HttpError(
          400,
          `field "status" must be in_progress, done or failed, not "${status}"`,
        );
      }
      const agentId = requiredText(body, "agentId");
      store.addTaskStatus({
        taskId,
        status,
        agentId,
        ...(body["metadata"] !== undefined ? { metadata: body["metadata"] } : {}),
      });
      note(`task ${taskId} ${status} by ${agentId}`);
      return json(200, { ok: true });
    }

    m = /^\/api\/agents\/([^/]+)(\/[a-z-]+)?$/.exec(path);
    if (m) {
      const agentId = decode(m[1] ?? "");
      const sub = m[2] ?? "";
      if (sub === "") {
        if (method !== "DELETE") return notAllowed("DELETE");
        store.addDeparture(agentId);
        note(`${agentId} left`);
        return json(200, { ok: true });
      }
      if (sub === "/reply-obligations") {
        if (method !== "GET") return notAllowed("GET");
        const obligations = store.openObligations(agentId).map((o) => ({
          messageId: o.messageId,
          from: o.from,
          createdAt: o.createdAt,
          body: o.body,
        }));
        note(`${obligations.length} open for ${agentId}`);
        return json(200, { obligations });
      }
      if (sub === "/heartbeat") {
        if (method !== "POST") return notAllowed("POST");
        const body = record(await readJson(request), "the heartbeat");
        const status = requiredText(body, "status");
        if (!AGENT_STATUSES.includes(status as AgentStatus)) {
          throw new HttpError(400, `field "status" must be one of ${AGENT_STATUSES.join(", ")}`);
        }
        const pid = body["pid"];
        if (typeof pid !== "number" || !Number.isInteger(pid) || pid < 0) {
          throw new HttpError(400, `field "pid" must be a process id`);
        }
        store.addHeartbeat({
          agentId,
          status,
          provider: requiredText(body, "provider"),
          version: requiredText(body, "version"),
          pid,
          host: text(body, "host", { empty: true, max: 255 }) as string,
        });
        note(`${agentId} ${status}`);
        return json(200, { ok: true });
      }
      if (sub === "/permission-requests") {
        if (method !== "POST") return notAllowed("POST");
        const body = record(await readJson(request), "the permission request");
        const decision = { ...permission };
        store.addPermissionRequest({
          agentId,
          requestId: requiredText(body, "requestId"),
          provider: requiredText(body, "provider"),
          tool: requiredText(body, "tool"),
          input: body["input"] ?? null,
          ...decision,
        });
        note(`${agentId} ${String(body["tool"])}: ${decision.decision}`);
        return json(200, decision);
      }
    }
    throw new HttpError(404, `no such endpoint: ${method} ${path}`);
  }

  function notAllowed(allow: string): Response {
    return json(405, { error: `method not allowed (allowed: ${allow})` }, { allow });
  }

  function bus(request: Request, note: (s: string) => void): Response {
    if (request.method !== "GET") return notAllowed("GET");
    if (faults.dropWebSockets) throw new HttpError(503, "the bus is refusing connections (fault)");
    const token = authorize(request);
    if ((request.headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
      throw new HttpError(426, "the bus needs a WebSocket upgrade");
    }
    const url = new URL(request.url);
    const agentId = url.searchParams.get("agentId");
    if (!agentId) throw new HttpError(400, `query parameter "agentId" is required`);
    const role = url.searchParams.get("role") || "provider";
    note(`${agentId} (${role})`);
    return hub.accept(request, agentId, role, token);
  }

  // -- /admin ----------------------------------------------------------------------------------

  async function adminHttp(request: Request, path: string): Promise<Response> {
    authorizeAdmin(request);
    const method = request.method;
    if (path === "/admin/state") {
      if (method !== "GET") return notAllowed("GET");
      return json(200, {
        ...store.state(),
        faults,
        connections: hub.connections(),
        commands: hub.commands(),
      });
    }
    if (path === "/admin/faults") {
      if (method === "GET") return json(200, { faults });
      if (method !== "POST") return notAllowed("GET, POST");
      const body = record(await readJson(request), "the faults");
      const actions = ["expireTokens", "dropBus", "downMs", "clear"] as const;
      const patch = parseFaultPatch(body, actions);
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
      if (body["clear"] === true) await admin.clearFaults();
      const { down, ...rest } = patch;
      const next = await admin.setFaults(rest);
      if (body["expireTokens"] === true) admin.expireTokens();
      if (body["dropBus"] === true) admin.dropWebSockets();
      if (down === true) {
        // Answer first, then go down; come back after downMs.
        setTimeout(() => {
          void admin.setFaults({ down: true }).then(() => {
            if (closed) return;
            downTimer = setTimeout(() => {
              downTimer = undefined;
              void admin.setFaults({ down: false }).catch((error) =>
                log.error(`the relay could not come back up: ${error}`)
              );
            }, downMs as number);
          });
        }, 0);
        return json(200, { faults: { ...next, down: true } });
      }
      return json(200, { faults: next });
    }
    let m = /^\/admin\/agents\/([^/]+)\/commands$/.exec(path);
    if (m) {
      if (method !== "POST") return notAllowed("POST");
      const agentId = decode(m[1] ?? "");
      const body = record(await readJson(request), "the command request");
      const command = record(body["command"], `field "command"`);
      if (typeof command["type"] !== "string") throw new HttpError(400, `command needs a "type"`);
      const timeoutMs = typeof body["timeoutMs"] === "number" ? body["timeoutMs"] : 10_000;
      try {
        const result = await hub.sendCommand(agentId, command as BusCommand, {
          timeoutMs,
          signal: lifetime.signal,
        });
        return json(200, result);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new HttpError(/no provider connection/.test(message) ? 404 : 504, message);
      }
    }
    m = /^\/admin\/agents\/([^/]+)\/errors$/.exec(path);
    if (m) {
      if (method !== "POST") return notAllowed("POST");
      const agentId = decode(m[1] ?? "");
      const body = record(await readJson(request), "the error frame");
      const sent = admin.sendError(
        agentId,
        requiredText(body, "code"),
        (text(body, "message", { optional: true, empty: true }) ?? "") as string,
        { close: body["close"] === true },
      );
      return json(200, { sent });
    }
    if (path === "/admin/permission") {
      if (method !== "POST") return notAllowed("POST");
      const body = record(await readJson(request), "the permission decision");
      const decision = body["decision"];
      if (decision !== "allow" && decision !== "deny") {
        throw new HttpError(400, `field "decision" must be allow or deny`);
      }
      const reason = text(body, "reason", { optional: true, empty: true, max: 1000 });
      admin.setPermission({ decision, ...(reason !== undefined ? { reason } : {}) });
      return json(200, { permission });
    }
    throw new HttpError(404, `no such endpoint: ${method} ${path}`);
  }

  // -- the handler -----------------------------------------------------------------------------

  async function handle(request: Request): Promise<Response> {
    const started = now();
    const url = new URL(request.url);
    const path = url.pathname;
    let detail = "";
    const note = (s: string) => {
      detail = s;
    };
    let response: Response;
    try {
      if (path === "/health") {
        response = json(200, { ok: true });
      } else if (path.startsWith("/admin/")) {
        response = await adminHttp(request, path);
      } else if (path === "/api/bus") {
        response = bus(request, note);
      } else if (path.startsWith("/api/")) {
        if (faults.slowMs > 0) {
          await sleep(faults.slowMs, lifetime.signal);
        }
        if (faults.failStatus > 0) {
          const status = faults.failStatus;
          if (faults.failCount > 0 && --faults.failCount === 0) faults.failStatus = 0;
          note("(fault)");
          response = json(
            status,
            { error: `injected fault: ${status}` },
            status === 429 || status === 503 ? { "retry-after": "1" } : {},
          );
        } else if (faults.garbage) {
          note("(fault: garbage)");
          response = new Response("<html>this is not JSON", {
            status: 200,
            headers: { "content-type": "text/html" },
          });
        } else {
          response = await api(request, path, note);
        }
      } else {
        throw new HttpError(404, `no such endpoint: ${request.method} ${path}`);
      }
    } catch (error) {
      if (error instanceof HttpError) {
        detail = detail ? `${detail}: ${error.message}` : error.message;
        response = json(error.status, { error: error.message });
      } else {
        const message = error instanceof Error ? error.message : String(error);
        log.error(`${request.method} ${path} failed: ${message}`);
        detail = `internal error: ${message}`;
        response = json(500, { error: "internal error" });
      }
    }
    trace(
      `${request.method} ${path} ${response.status} ${now() - started}ms${
        detail ? ` ${detail}` : ""
      }`,
    );
    return response;
  }

  function listen(): void {
    server = Deno.serve({
      hostname: "127.0.0.1",
      port,
      onListen() {},
      onError(error) {
        log.error(`request failed: ${error instanceof Error ? error.message : error}`);
        return json(500, { error: "internal error" });
      },
    }, handle);
    port = server.addr.port;
  }

  async function goDown(): Promise<void> {
    const current = server;
    server = undefined;
    await hub.close();
    if (current) await current.shutdown();
  }

  const admin: DevRelayAdmin = {
    state: () => store.state(),
    faults: () => ({ ...faults }),
    async setFaults(patch) {
      const wasDown = faults.down;
      faults = { ...faults, ...patch };
      if (patch.failStatus === 0) faults.failCount = 0;
      if (patch.dropWebSockets === true) hub.dropAll(1013, "relay refusing bus connections");
      if (!closed) {
        if (faults.down && !wasDown) {
          trace("going down: the listener is closed");
          await goDown();
        } else if (!faults.down && wasDown) {
          listen();
          trace(`back up on ${`http://127.0.0.1:${port}`}`);
        }
      }
      return { ...faults };
    },
    async clearFaults() {
      if (downTimer !== undefined) clearTimeout(downTimer);
      downTimer = undefined;
      return await admin.setFaults(noFaults());
    },
    expireTokens() {
      store.expireAllTokens();
      hub.expireConnections(isValid);
      trace("every token expired (fault)");
    },
    dropWebSockets() {
      hub.dropAll();
      trace("every bus connection dropped (fault)");
    },
    issueToken(ttlMs) {
      const issued = store.issueToken(ttlMs ?? tokenTtlMs);
      return { token: issued.token, expiresAt: new Date(issued.expiresAt).toISOString() };
    },
    connections: () => hub.connections(),
    busConnectionsOpened: () => hub.openedCount,
    sendCommand: (agentId, command, opts) => hub.sendCommand(agentId, command, opts ?? {}),
    commands: () => hub.commands(),
    sendError: (agentId, code, message, opts) =>
      hub.sendError(agentId, code, message, opts?.close ?? false),
    setPermission(decision) {
      permission = { ...decision };
    },
  };

  listen();
  if (options.faults?.down) await admin.setFaults({ down: true });

  let closing: Promise<void> | undefined;
  const relay: DevRelay = {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    token: rootToken,
    admin,
    close() {
      closing ??= (async () => {
        closed = true;
        options.signal?.removeEventListener("abort", onAbort);
        if (downTimer !== undefined) clearTimeout(downTimer);
        downTimer = undefined;
        lifetime.abort();
        await goDown();
        store.close();
      })();
      return closing;
    },
  };
  const onAbort = () => void relay.close();
  if (options.signal?.aborted) await relay.close();
  else options.signal?.addEventListener("abort", onAbort, { once: true });
  return relay;
}
