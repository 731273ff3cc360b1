/**
 * The runner's localhost control server (docs/control-server.md): the endpoint the provider's
 * hooks call, plus status, metrics, log level and a live monitor for operators.
 *
 * {@linkcode createControlHandler} builds the whole server as a pure `(Request) =>
 * Promise<Response>`, so it is tested without a port; {@linkcode startControlServer} serves it
 * on 127.0.0.1 only. The runner's state reaches the handler through a small
 * {@linkcode ControlCallbacks} object. The server itself owns the two hook answers the contract
 * fixes, so they are decided here and tested here:
 *
 * - `POST /hooks/stop` decides from the local reply-obligation snapshot with
 *   {@linkcode decideStop}, never from the relay;
 * - `POST /hooks/permission-request` answers through the permission decider, within the budget.
 *
 * Every hook is then handed to `onHook` for the runner's bookkeeping (busy/idle, subagents,
 * turn end, session-end insight); for the other events `onHook`'s return value is the answer.
 * The server measures hook counts and latency itself for `GET /metrics`.
 *
 * Rules for every request: the bearer secret on all paths but `GET /health` (401, nothing done),
 * compared in constant time; bodies at most 1 MiB, enforced while reading (413); bad JSON or a
 * wrong field type -> 400 `{error}`; unknown path -> 404; wrong method -> 405 with `Allow`.
 *
 * @module
 */
import {
  addSecret,
  getLogger,
  getLogLevel,
  LOG_LEVELS,
  type LogEntry,
  onLogEntry,
  parseLogLevel,
  redact,
  setLogLevel,
} from "../logger.ts";
import { decideStop, type StopDecision } from "./stop_decision.ts";
import {
  DEFAULT_HOOK_BUDGET_MS,
  type HookAnswer,
  type HookEvent,
  type HookPayload,
  isHookEvent,
  MAX_BODY_BYTES,
} from "./contract.ts";
import type { PermissionDecider } from "./permission_policy.ts";
import {
  AGENT_STATUSES,
  type AgentStatus,
  type PermissionDecision,
  type PermissionRequest,
  type ProviderName,
  type ReplyObligation,
} from "../types.ts";

const log = getLogger("control");

/** What the server worked out for a hook, handed to `onHook`. */
export interface HookContext {
  /** The request body exactly as received (the provider's payload, unchanged). */
  raw: string;
  /** `stop`: the decision, already made and already the answer. */
  stop?: StopDecision;
  /** `permission-request`: the question asked and the decision, already the answer. */
  permission?: { request: PermissionRequest; decision: PermissionDecision };
}

/** `POST /hook-fatal`'s body: a hook that failed in a way it could not handle itself. */
export interface HookFatalReport {
  hook: string;
  error: string;
}

// ---------------------------------------------------------------------------------------------
// The runner's side

/** What `GET /status` shows; the runner provides it. Extra fields are passed through. */
export interface StatusSnapshot {
  agentId: string;
  provider: ProviderName;
  status: AgentStatus;
  /** The provider's pid while it runs, else the runner's. */
  pid: number;
  /** Epoch milliseconds the runner started (the server adds `uptimeMs`). */
  startedAt: number;
  outbox: { pending: number; poisoned: number };
  [extra: string]: unknown;
}

/** One extra Prometheus sample the runner wants in `/metrics`. */
export interface MetricSample {
  /** Full metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
  name: string;
  help: string;
  type: "gauge" | "counter";
  value: number;
  labels?: Record<string, string>;
}

/** The runner's figures for `GET /metrics`. */
export interface MetricsSnapshot {
  outbox: { pending: number; poisoned: number; delivered: number };
  /** Anything else (usage, token figures, deliveries...). */
  samples?: MetricSample[];
}

/** The local reply-obligation snapshot, as the server reads it (a `ReplyObligationCache`). */
export interface ObligationSource {
  /** Synchronous, never throws, never reaches the relay. */
  get(): ReplyObligation[];
  /** Epoch milliseconds of the last successful refresh. */
  readonly refreshedAt: number | undefined;
  /** Why the last refresh failed, while failures last. */
  readonly lastError?: string | undefined;
}

/**
 * How the runner's state reaches the control server. Every callback must be quick; the server
 * waits at most `hookBudgetMs` for `onHook` and `decidePermission`.
 */
export interface ControlCallbacks {
  /** `GET /status`, the monitor's hello. */
  status(): StatusSnapshot;
  /** `POST /status {status}`: `source` is the body's `source` string, else `"control"`. */
  setStatus(status: AgentStatus, source: string): void;
  /** The snapshot the stop decision and `GET /reply-obligations` read. */
  obligations: ObligationSource;
  /** Ids of the relay messages delivered to the provider in the current turn. */
  deliveredThisTurn(): Iterable<number>;
  /** Answers `permission-request` hooks (see `createPermissionDecider`). */
  decidePermission: PermissionDecider;
  /**
   * Every hook, after the server worked out what it needs (`context.stop` and
   * `context.permission`). For events other than `stop` and `permission-request`, a returned
   * object is the hook's answer (default `{}`); a throw answers 500, which the hook reports FATAL.
   */
  onHook?(
    event: HookEvent,
    payload: HookPayload,
    context: HookContext,
  ): HookAnswer | void | Promise<HookAnswer | void>;
  /** `POST /hook-fatal`, after the server logged it FATAL: queue the `hook_fatal` insight. */
  onHookFatal?(report: HookFatalReport): void;
  /** `GET /metrics`'s runner figures. */
  metrics?(): MetricsSnapshot;
}

/** Options of {@linkcode createControlHandler}. */
export interface ControlOptions {
  /** The per-run bearer secret (see {@linkcode generateSecret}); at least 16 characters. */
  secret: string;
  callbacks: ControlCallbacks;
  /** The provider named in permission requests. Default `claude`. */
  provider?: ProviderName;
  /** Default 1 MiB. */
  maxBodyBytes?: number;
  /** How long a hook may wait on the runner's callbacks. Default 1,500 ms. */
  hookBudgetMs?: number;
  /** Epoch milliseconds now. Default `Date.now`. */
  now?: () => number;
}

/** An event for `/monitor` clients: `type` plus any fields. `at` is added when missing. */
export interface MonitorEvent {
  type: string;
  [field: string]: unknown;
}

/** The control server as a function, plus the monitor feed. */
export interface ControlHandler {
  (request: Request): Promise<Response>;
  /** Sends an event (status, outbox...) to every `/monitor` client. */
  publish(event: MonitorEvent): void;
  /** How many `/monitor` clients are connected. */
  readonly monitorClients: number;
  /** Closes the monitor sockets and the log subscription. */
  close(): void;
}

/** A monitor client further behind than this is disconnected. */
const MAX_MONITOR_BUFFER = 4 * 1024 * 1024;
const HISTOGRAM_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

// ---------------------------------------------------------------------------------------------
// The secret

/** A fresh control secret: 32 random bytes (256 bits), hex. */
export function generateSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Compares `given` with `expected` in time that depends only on `expected`'s length. */
export function constantTimeEqual(given: string, expected: string): boolean {
  let diff = given.length ^ expected.length;
  for (let i = 0; i < expected.length; i++) {
    diff |= expected.charCodeAt(i) ^ (given.charCodeAt(i) | 0);
  }
  return diff === 0;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers?: HeadersInit) {
    super(message);
  }
}

const JSON_HEADERS = { "content-type": "application/json" };

function json(body: unknown, status = 200, headers?: HeadersInit): Response {
  const h = headers
    ? { ...JSON_HEADERS, ...Object.fromEntries(new Headers(headers)) }
    : JSON_HEADERS;
  return new Response(JSON.stringify(body), { status, headers: h });
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Reads a body of at most `limit` bytes, stopping (and answering 413) as soon as it is past. */
async function readText(req: Request, limit: number): Promise<string> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) {
    throw new HttpError(413, `The body is ${declared} bytes; the limit is ${limit} bytes`);
  }
  if (req.body === null) return "";
  if (declared !== null && /^\d+$/.test(declared)) {
    // The HTTP layer delivers exactly the declared length, already checked against the limit:
    // read it in one go (the fast path every hook takes: curl always declares its length).
    let bytes: Uint8Array;
    try {
      bytes = await req.bytes();
    } catch (error) {
      throw new HttpError(400, `The body could not be read: ${errorMessage(error)}`);
    }
    if (bytes.byteLength > limit) {
      throw new HttpError(413, `The body is over the limit of ${limit} bytes`);
    }
    return decodeUtf8(bytes);
  }
  // No declared length (chunked): count while reading and stop as soon as it is past the limit.
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (error) {
      // The client went away mid-body, or sent a body the HTTP layer could not decode: the
      // request is what failed, not the runner (400, never 500).
      throw new HttpError(400, `The body could not be read: ${errorMessage(error)}`);
    }
    const { done, value } = chunk;
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw new HttpError(413, `The body is over the limit of ${limit} bytes`);
    }
    chunks.push(value);
  }
  let bytes: Uint8Array;
  if (chunks.length === 1) bytes = chunks[0]!;
  else {
    bytes = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.byteLength;
    }
  }
  return decodeUtf8(bytes);
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new HttpError(400, "The body is not valid UTF-8");
  }
}

/** Reads a JSON object body. */
async function readObject(
  req: Request,
  limit: number,
): Promise<{ raw: string; value: HookPayload }> {
  const raw = await readText(req, limit);
  if (raw.trim() === "") throw new HttpError(400, "The body is empty; expected a JSON object");
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    throw new HttpError(400, `The body is not valid JSON: ${errorMessage(error)}`);
  }
  if (!isObject(value)) {
    throw new HttpError(
      400,
      `The body is ${Array.isArray(value) ? "an array" : typeof value}, not a JSON object`,
    );
  }
  return { raw, value };
}

function optionalType(
  body: Record<string, unknown>,
  field: string,
  type: "string" | "boolean",
): void {
  const v = body[field];
  if (v !== undefined && v !== null && typeof v !== type) {
    throw new HttpError(
      400,
      `Field "${field}" is ${Array.isArray(v) ? "an array" : typeof v}, not a ${type}`,
    );
  }
}

/** Resolves `value`, or `fallback()` after `ms`; never waits longer. */
function within<T>(value: T | Promise<T>, ms: number, fallback: () => T): T | Promise<T> {
  if (!(value instanceof Promise)) return value;
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    value,
    new Promise<T>((resolve) => {
      timer = setTimeout(() => resolve(fallback()), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Claude Code's answer to a PermissionRequest hook. */
export function claudePermissionAnswer(decision: PermissionDecision): HookAnswer {
  return {
    hookSpecificOutput: {
      hookEventName: "PermissionRequest",
      decision: decision.decision === "allow"
        ? { behavior: "allow" }
        : { behavior: "deny", message: decision.reason ?? "denied by the runner" },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Metrics kept by the server

class HookStats {
  readonly counts = new Map<string, number>();
  readonly histograms = new Map<string, { buckets: number[]; sum: number; count: number }>();
  stopBlocks = 0;
  hookFatals = 0;
  unauthorized = 0;

  record(event: string, status: number, seconds: number): void {
    const key = `${event}\u0000${status}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    let h = this.histograms.get(event);
    if (!h) {
      h = { buckets: HISTOGRAM_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.histograms.set(event, h);
    }
    for (let i = 0; i < HISTOGRAM_BUCKETS.length; i++) {
      if (seconds <= HISTOGRAM_BUCKETS[i]!) h.buckets[i]!++;
    }
    h.sum += seconds;
    h.count++;
  }
}

function labelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(pairs: Record<string, string> | undefined): string {
  if (!pairs) return "";
  const parts = Object.entries(pairs).map(([k, v]) => `${k}="${labelValue(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function num(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

// ---------------------------------------------------------------------------------------------
// The handler

type Route = (req: Request) => Promise<Response> | Response;

/** The path of an absolute URL, without parsing all of it (the hot path). */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start === -1) return "/";
  let end = url.length;
  const q = url.indexOf("?", start);
  if (q !== -1) end = q;
  const h = url.indexOf("#", start);
  if (h !== -1 && h < end) end = h;
  const path = url.slice(start, end);
  return path.includes("%") || path.includes("/.") ? new URL(url).pathname : path;
}

/** Builds the control server as a pure request handler. */
export function createControlHandler(options: ControlOptions): ControlHandler {
  const { secret, callbacks } = options;
  if (typeof secret !== "string" || secret.length < 16) {
    throw new TypeError("The control secret must be a string of at least 16 characters");
  }
  addSecret(secret);
  const maxBody = options.maxBodyBytes ?? MAX_BODY_BYTES;
  const budget = options.hookBudgetMs ?? DEFAULT_HOOK_BUDGET_MS;
  const now = options.now ?? Date.now;
  const provider = options.provider ?? "claude";
  const stats = new HookStats();
  const sockets = new Set<WebSocket>();
  let unsubscribeLog: (() => void) | undefined;

  // --- monitor -------------------------------------------------------------------------------

  const sendTo = (socket: WebSocket, text: string) => {
    if (socket.readyState !== WebSocket.OPEN) return;
    if (socket.bufferedAmount > MAX_MONITOR_BUFFER) {
      socket.close(1013, "monitor client too slow");
      return;
    }
    try {
      socket.send(text);
    } catch {
      // The socket closed meanwhile.
    }
  };
  const publish = (event: MonitorEvent) => {
    if (sockets.size === 0) return;
    const text = JSON.stringify(event.at === undefined ? { ...event, at: now() } : event);
    for (const socket of sockets) sendTo(socket, text);
  };
  const onLog = (entry: LogEntry) => publish({ type: "log", ...entry });

  // --- shared pieces -------------------------------------------------------------------------

  const obligationInfo = () => {
    const refreshedAt = callbacks.obligations.refreshedAt;
    const info: Record<string, unknown> = {
      count: callbacks.obligations.get().length,
      refreshedAt: refreshedAt ?? null,
      ageMs: refreshedAt === undefined ? null : Math.max(0, now() - refreshedAt),
    };
    const lastError = callbacks.obligations.lastError;
    if (lastError !== undefined) info["lastError"] = lastError;
    return info;
  };

  const statusBody = () => {
    const s = callbacks.status();
    return {
      ...s,
      uptimeMs: Math.max(0, now() - s.startedAt),
      obligations: obligationInfo(),
    };
  };

  // --- hooks ---------------------------------------------------------------------------------

  const runOnHook = (
    event: HookEvent,
    payload: HookPayload,
    context: HookContext,
  ): HookAnswer | void | Promise<HookAnswer | void> => {
    if (!callbacks.onHook) return undefined;
    const result = callbacks.onHook(event, payload, context);
    return within(result, budget, () => {
      log.warn(
        `the runner took over ${budget} ms to handle the ${event} hook; answered without it`,
      );
      return undefined;
    });
  };

  const hookStop = async (payload: HookPayload, raw: string): Promise<HookAnswer> => {
    optionalType(payload, "stop_hook_active", "boolean");
    const decision = decideStop(callbacks.obligations.get(), {
      deliveredThisTurn: callbacks.deliveredThisTurn(),
      stopHookActive: payload["stop_hook_active"] === true,
    });
    if (decision.blocked) {
      stats.stopBlocks++;
      log.info(
        `stop blocked: ${decision.outstanding.length} relay message(s) still owed ` +
          `(${decision.outstanding.map((o) => o.messageId).join(", ")})`,
      );
    }
    try {
      await runOnHook("stop", payload, { raw, stop: decision });
    } catch (error) {
      log.error(`the runner failed to handle the stop hook: ${errorMessage(error)}`);
    }
    return decision.answer;
  };

  const hookPermission = async (payload: HookPayload, raw: string): Promise<HookAnswer> => {
    optionalType(payload, "tool_name", "string");
    optionalType(payload, "tool_use_id", "string");
    const toolUseId = payload["tool_use_id"];
    const toolName = payload["tool_name"];
    const request: PermissionRequest = {
      requestId: typeof toolUseId === "string" && toolUseId ? toolUseId : crypto.randomUUID(),
      provider,
      tool: typeof toolName === "string" && toolName ? toolName : "unknown",
      input: payload["tool_input"] ?? null,
    };
    let decision: PermissionDecision;
    try {
      decision = await within(
        // Not req.signal: Deno.serve aborts it on every finished response (and warns about it);
        // the decider's own budget bounds the wait.
        callbacks.decidePermission(request),
        budget,
        () => ({ decision: "deny", reason: `no decision within ${budget} ms` }),
      );
    } catch (error) {
      decision = {
        decision: "deny",
        reason: `the permission decider failed: ${errorMessage(error)}`,
      };
    }
    log.info(`permission for ${request.tool} (${request.requestId}): ${decision.decision}`);
    try {
      await runOnHook("permission-request", payload, { raw, permission: { request, decision } });
    } catch (error) {
      log.error(`the runner failed to handle the permission-request hook: ${errorMessage(error)}`);
    }
    return claudePermissionAnswer(decision);
  };

  const hook = async (event: HookEvent, req: Request): Promise<Response> => {
    const started = performance.now();
    let status = 200;
    try {
      const { raw, value } = await readObject(req, maxBody);
      for (const field of ["session_id", "transcript_path", "cwd", "hook_event_name"]) {
        optionalType(value, field, "string");
      }
      let answer: HookAnswer;
      if (event === "stop") answer = await hookStop(value, raw);
      else if (event === "permission-request") {
        answer = await hookPermission(value, raw);
      } else {
        const result = await runOnHook(event, value, { raw });
        answer = isObject(result) ? result : {};
      }
      return json(answer);
    } catch (error) {
      if (error instanceof HttpError) {
        status = error.status;
        return json({ error: error.message }, error.status);
      }
      status = 500;
      log.error(`the ${event} hook failed in the runner: ${errorMessage(error)}`);
      return json({
        error: `The runner failed to handle the ${event} hook: ${errorMessage(error)}`,
      }, 500);
    } finally {
      const seconds = (performance.now() - started) / 1000;
      stats.record(event, status, seconds);
      if (log.enabled("debug")) {
        log.debug(`hook ${event} answered ${status} in ${(seconds * 1000).toFixed(2)} ms`);
      }
      if (sockets.size > 0) publish({ type: "hook", event, status, ms: seconds * 1000 });
    }
  };

  // --- other endpoints -----------------------------------------------------------------------

  const hookFatal = async (req: Request): Promise<Response> => {
    const { value } = await readObject(req, maxBody);
    optionalType(value, "hook", "string");
    optionalType(value, "error", "string");
    // A failing hook may echo its own command line, secret included: the report is redacted
    // before it is logged, queued for the relay or published (the secret never leaves).
    const rawHook = typeof value["hook"] === "string" ? redact(value["hook"]).trim() : "";
    const hookName = (rawHook || "unknown").slice(0, 100);
    const rawError = typeof value["error"] === "string" ? redact(value["error"]) : "";
    const detail = (rawError || "(no detail)").slice(0, 4000);
    stats.hookFatals++;
    log.fatal(`hook ${hookName} failed: ${detail}`);
    try {
      callbacks.onHookFatal?.({ hook: hookName, error: detail });
    } catch (error) {
      log.error(`queueing the hook_fatal report failed: ${errorMessage(error)}`);
    }
    publish({ type: "hook-fatal", hook: hookName, error: detail });
    return json({ ok: true });
  };

  const postStatus = async (req: Request): Promise<Response> => {
    const { value } = await readObject(req, maxBody);
    optionalType(value, "source", "string");
    const status = value["status"];
    if (typeof status !== "string" || !(AGENT_STATUSES as readonly string[]).includes(status)) {
      throw new HttpError(
        400,
        `Field "status" must be one of: ${AGENT_STATUSES.join(", ")}`,
      );
    }
    const source = typeof value["source"] === "string" && value["source"]
      ? value["source"]
      : "control";
    callbacks.setStatus(status as AgentStatus, source.slice(0, 100));
    return json({ ok: true, status });
  };

  const postLogLevel = async (req: Request): Promise<Response> => {
    const { value } = await readObject(req, maxBody);
    const raw = value["level"];
    const level = typeof raw === "string" ? parseLogLevel(raw) : undefined;
    if (!level) {
      throw new HttpError(400, `Field "level" must be one of: ${LOG_LEVELS.join(", ")}`);
    }
    const previous = setLogLevel(level);
    log.info(`log level set to ${level} (was ${previous}) through the control server`);
    return json({ ok: true, level, previous });
  };

  const metrics = (): Response => {
    const lines: string[] = [];
    const metric = (
      name: string,
      type: string,
      help: string,
      samples: Array<[Record<string, string> | undefined, number]>,
    ) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [l, v] of samples) lines.push(`${name}${labels(l)} ${num(v)}`);
    };
    const m = callbacks.metrics?.();
    if (m) {
      metric("agent_relay_runner_outbox_pending", "gauge", "Outbox events waiting to be sent.", [[
        undefined,
        m.outbox.pending,
      ]]);
      metric(
        "agent_relay_runner_outbox_poisoned",
        "gauge",
        "Outbox events the relay refused for good.",
        [[
          undefined,
          m.outbox.poisoned,
        ]],
      );
      metric(
        "agent_relay_runner_outbox_delivered_total",
        "counter",
        "Outbox events delivered to the relay.",
        [[undefined, m.outbox.delivered]],
      );
    }
    const refreshedAt = callbacks.obligations.refreshedAt;
    metric(
      "agent_relay_runner_reply_obligations",
      "gauge",
      "Reply obligations in the local snapshot.",
      [[
        undefined,
        callbacks.obligations.get().length,
      ]],
    );
    metric(
      "agent_relay_runner_reply_obligations_age_seconds",
      "gauge",
      "Age of the local reply-obligation snapshot (NaN before the first refresh).",
      [[undefined, refreshedAt === undefined ? NaN : Math.max(0, now() - refreshedAt) / 1000]],
    );
    const counts: Array<[Record<string, string>, number]> = [];
    for (const [key, value] of stats.counts) {
      const [event = "", code = ""] = key.split("\u0000");
      counts.push([{ event, code }, value]);
    }
    metric(
      "agent_relay_runner_hook_requests_total",
      "counter",
      "Hook requests by event and HTTP status.",
      counts,
    );
    lines.push(
      "# HELP agent_relay_runner_hook_duration_seconds Time the control server took to answer a hook.",
      "# TYPE agent_relay_runner_hook_duration_seconds histogram",
    );
    for (const [event, h] of stats.histograms) {
      const e = labelValue(event);
      HISTOGRAM_BUCKETS.forEach((le, i) => {
        lines.push(
          `agent_relay_runner_hook_duration_seconds_bucket{event="${e}",le="${le}"} ${
            h.buckets[i]
          }`,
        );
      });
      lines.push(
        `agent_relay_runner_hook_duration_seconds_bucket{event="${e}",le="+Inf"} ${h.count}`,
      );
      lines.push(`agent_relay_runner_hook_duration_seconds_sum{event="${e}"} ${num(h.sum)}`);
      lines.push(`agent_relay_runner_hook_duration_seconds_count{event="${e}"} ${h.count}`);
    }
    metric("agent_relay_runner_stop_blocks_total", "counter", "Stops blocked for owed replies.", [[
      undefined,
      stats.stopBlocks,
    ]]);
    metric(
      "agent_relay_runner_hook_fatal_total",
      "counter",
      "Hooks that reported their own failure.",
      [[
        undefined,
        stats.hookFatals,
      ]],
    );
    metric(
      "agent_relay_runner_control_unauthorized_total",
      "counter",
      "Control requests refused for a missing or wrong secret.",
      [[undefined, stats.unauthorized]],
    );
    const byName = new Map<string, MetricSample[]>();
    for (const s of m?.samples ?? []) {
      if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(s.name)) continue;
      const list = byName.get(s.name) ?? [];
      list.push(s);
      byName.set(s.name, list);
    }
    for (const [name, list] of byName) {
      const first = list[0]!;
      metric(
        name,
        first.type,
        first.help.replace(/\n/g, " "),
        list.map((s) => [s.labels, s.value]),
      );
    }
    return new Response(lines.join("\n") + "\n", {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  };

  const monitor = (req: Request): Response => {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      throw new HttpError(400, "GET /monitor needs a WebSocket upgrade");
    }
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(req);
    } catch (error) {
      throw new HttpError(400, `The WebSocket upgrade failed: ${errorMessage(error)}`);
    }
    const { socket, response } = upgraded;
    socket.addEventListener("open", () => {
      sockets.add(socket);
      if (!unsubscribeLog) unsubscribeLog = onLogEntry(onLog);
      let hello: unknown;
      try {
        hello = { type: "hello", at: now(), status: statusBody() };
      } catch (error) {
        hello = { type: "hello", at: now(), error: errorMessage(error) };
      }
      sendTo(socket, JSON.stringify(hello));
    });
    const drop = () => {
      sockets.delete(socket);
      if (sockets.size === 0 && unsubscribeLog) {
        unsubscribeLog();
        unsubscribeLog = undefined;
      }
    };
    socket.addEventListener("close", drop);
    socket.addEventListener("error", drop);
    return response;
  };

  // --- routing -------------------------------------------------------------------------------

  const routes = new Map<string, Partial<Record<"GET" | "POST", Route>>>([
    ["/status", { GET: () => json(statusBody()), POST: postStatus }],
    ["/reply-obligations", {
      GET: () => json({ obligations: callbacks.obligations.get(), ...obligationInfo() }),
    }],
    ["/log-level", {
      GET: () => json({ level: getLogLevel(), levels: LOG_LEVELS }),
      POST: postLogLevel,
    }],
    ["/hook-fatal", { POST: hookFatal }],
    ["/metrics", { GET: metrics }],
    ["/monitor", { GET: monitor }],
  ]);
  const authPrefix = "bearer ";

  const handle = async (req: Request): Promise<Response> => {
    const path = pathOf(req.url);
    const method = req.method;
    if (path === "/health") {
      if (method !== "GET") {
        return json({ error: `${method} is not allowed on /health` }, 405, { allow: "GET" });
      }
      return json({ ok: true });
    }
    const header = req.headers.get("authorization") ?? "";
    const authorized = header.length > authPrefix.length &&
      header.slice(0, authPrefix.length).toLowerCase() === authPrefix &&
      constantTimeEqual(header.slice(authPrefix.length).trim(), secret);
    if (!authorized) {
      stats.unauthorized++;
      return json({ error: "Missing or wrong bearer secret" }, 401, {
        "www-authenticate": 'Bearer realm="agent-relay-runner"',
      });
    }
    try {
      if (path.startsWith("/hooks/")) {
        const event = path.slice("/hooks/".length);
        if (!isHookEvent(event)) throw new HttpError(404, `No hook event named "${event}"`);
        if (method !== "POST") {
          throw new HttpError(405, `${method} is not allowed on ${path}`, { allow: "POST" });
        }
        return await hook(event, req);
      }
      const route = routes.get(path);
      if (!route) throw new HttpError(404, `Nothing at ${path}`);
      const fn = route[method as "GET" | "POST"];
      if (!fn) {
        throw new HttpError(405, `${method} is not allowed on ${path}`, {
          allow: Object.keys(route).join(", "),
        });
      }
      return await fn(req);
    } catch (error) {
      if (error instanceof HttpError) {
        return json({ error: error.message }, error.status, error.headers);
      }
      log.error(`${method} ${path} failed: ${errorMessage(error)}`);
      return json({ error: `${method} ${path} failed: ${errorMessage(error)}` }, 500);
    }
  };

  return Object.defineProperties(handle, {
    publish: { value: publish },
    monitorClients: { get: () => sockets.size },
    close: {
      value: () => {
        for (const socket of sockets) {
          try {
            socket.close(1001, "control server closing");
          } catch {
            // Already closed.
          }
        }
        sockets.clear();
        unsubscribeLog?.();
        unsubscribeLog = undefined;
      },
    },
  }) as ControlHandler;
}

// ---------------------------------------------------------------------------------------------
// Serving

/** Options of {@linkcode startControlServer}: the handler's, plus the port and an optional secret. */
export interface ControlServerOptions extends Omit<ControlOptions, "secret"> {
  /** 0 = any free port. */
  port: number;
  /** Default: a fresh {@linkcode generateSecret}. */
  secret?: string;
}

/** A running control server. */
export interface ControlServer {
  /** The port it listens on (on 127.0.0.1). */
  readonly port: number;
  /** The bearer secret (give it to the provider as `AGENT_RELAY_RUNNER_SECRET`; never log it). */
  readonly secret: string;
  readonly handler: ControlHandler;
  /** Sends an event to every `/monitor` client. */
  publish(event: MonitorEvent): void;
  /** Closes monitor sockets and stops listening. */
  close(): Promise<void>;
}

const SERVE_OVERRIDE = "DENO_SERVE_ADDRESS";

/**
 * Removes `DENO_SERVE_ADDRESS` from the environment: Deno lets it override the address of the
 * next `Deno.serve` even when a hostname is given, or add a second listener (`duplicate,...`).
 * Throws when the variable cannot be checked (no env permission).
 */
function refuseServeAddressOverride(): void {
  const state = Deno.permissions.querySync({ name: "env", variable: SERVE_OVERRIDE }).state;
  if (state !== "granted") {
    throw new Error(
      `Cannot start the control server: checking ${SERVE_OVERRIDE} (which could move it off ` +
        `127.0.0.1) needs env permission`,
    );
  }
  const value = Deno.env.get(SERVE_OVERRIDE);
  if (value === undefined) return;
  Deno.env.delete(SERVE_OVERRIDE);
  log.warn(`ignoring ${SERVE_OVERRIDE}=${value}: the control server listens on 127.0.0.1 only`);
}

/** Starts the control server on 127.0.0.1 (never another address, whatever the environment). */
export function startControlServer(options: ControlServerOptions): ControlServer {
  const secret = options.secret ?? generateSecret();
  const handler = createControlHandler({ ...options, secret });
  refuseServeAddressOverride();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: "127.0.0.1",
      port: options.port,
      onListen: () => {},
      onError: (error) => {
        log.error(`control server error: ${errorMessage(error)}`);
        return json({ error: "Internal error" }, 500);
      },
    }, (req) => handler(req));
  } catch (error) {
    handler.close();
    throw new Error(`Cannot listen on 127.0.0.1:${options.port}: ${errorMessage(error)}`);
  }
  if (server.addr.hostname !== "127.0.0.1") {
    handler.close();
    void server.shutdown();
    throw new Error(
      `The control server bound ${server.addr.hostname}, not 127.0.0.1; refusing to run`,
    );
  }
  log.info(`control server listening on 127.0.0.1:${server.addr.port}`);
  let closing: Promise<void> | undefined;
  return {
    port: server.addr.port,
    secret,
    handler,
    publish: handler.publish,
    close() {
      closing ??= (async () => {
        handler.close();
        await server.shutdown();
      })();
      return closing;
    },
  };
}
