/**
 * The control server as a pure `(Request) => Promise<Response>` ({@linkcode createControlHandler}),
 * tested without a port: the bearer check, routing, and turning errors into answers. The
 * endpoints themselves live in hook_routes.ts, operator_routes.ts, metrics.ts and monitor.ts.
 *
 * Rules for every request (docs/control-server.md): more than `maxInFlight` requests being
 * answered at once -> 503 (nothing done); the bearer secret on all paths but `GET /health` and
 * `GET /ready` (401, nothing done), compared in constant time; unknown path -> 404; wrong
 * method -> 405 with `Allow`; an endpoint's `HttpError` -> its status with `{error}` (a body
 * that does not arrive within `bodyTimeoutMs` -> 408); anything else thrown -> 500 `{error}`,
 * logged.
 *
 * @module
 */
import { addSecret, getLogger } from "../logger.ts";
import type { ProviderName } from "../types.ts";
import { type Clock, errorText, systemClock } from "../util/mod.ts";
import type { ControlCallbacks } from "./callbacks.ts";
import {
  BODY_TIMEOUT_MS,
  DEFAULT_HOOK_BUDGET_MS,
  MAX_BODY_BYTES,
  MAX_IN_FLIGHT,
} from "./contract.ts";
import { healthRoutes } from "./health_routes.ts";
import { hookRoutes } from "./hook_routes.ts";
import { errorResponse, HttpError, json } from "./http.ts";
import { ControlStats, PROMETHEUS_CONTENT_TYPE, renderMetrics } from "./metrics.ts";
import { Monitor, type MonitorEvent } from "./monitor.ts";
import { operatorRoutes, statusBody } from "./operator_routes.ts";
import { type RouteMatch, RouteTable } from "./routes.ts";
import { bearerMatches } from "./secret.ts";

const log = getLogger("control");

/** Options of {@linkcode createControlHandler}. */
export interface ControlOptions {
  /** The per-run bearer secret (see `generateSecret`); at least 16 characters. */
  secret: string;
  callbacks: ControlCallbacks;
  /** The provider named in permission requests. Default `claude`. */
  provider?: ProviderName;
  /** Default 1 MiB. */
  maxBodyBytes?: number;
  /** How long a request body may take to arrive in full (408 after). Default 2,000 ms. */
  bodyTimeoutMs?: number;
  /** Requests answered at once before the next gets 503. Default 64. */
  maxInFlight?: number;
  /** How long a hook may wait on the runner's callbacks. Default 1,500 ms. */
  hookBudgetMs?: number;
  /** Epoch milliseconds now. Default `clock.now`. */
  now?: () => number;
  /** The timers for the hook budget (and the time, unless `now` is given). Default the system's. */
  clock?: Clock;
}

/** The control server as a function, plus the monitor feed. */
export interface ControlHandler {
  (request: Request): Promise<Response>;
  /** Sends an event (status, outbox...) to every `/monitor` client. */
  publish(event: MonitorEvent): void;
  /** How many `/monitor` clients are connected. */
  readonly monitorClients: number;
  /** How many requests are being answered right now. */
  readonly inFlight: number;
  /** Closes the monitor sockets and the log subscription. */
  close(): void;
}

/** The paths served without the secret. */
const OPEN_PATHS: ReadonlySet<string> = new Set(["/health", "/ready"]);
const HOOKS_PREFIX = "/hooks/";

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

function unauthorized(): Response {
  return json({ error: "Missing or wrong bearer secret" }, 401, {
    "www-authenticate": 'Bearer realm="agent-relay-runner"',
  });
}

/** The 404 or 405 for a path and method the table has no route for. */
function notRouted(match: RouteMatch, path: string, method: string): HttpError {
  if (match.kind === "wrong-method") {
    return new HttpError(405, `${method} is not allowed on ${path}`, { allow: match.allow });
  }
  return new HttpError(
    404,
    path.startsWith(HOOKS_PREFIX)
      ? `No hook event named "${path.slice(HOOKS_PREFIX.length)}"`
      : `Nothing at ${path}`,
  );
}

/** Builds the control server as a pure request handler. */
export function createControlHandler(options: ControlOptions): ControlHandler {
  const { secret, callbacks } = options;
  if (typeof secret !== "string" || secret.length < 16) {
    throw new TypeError("The control secret must be a string of at least 16 characters");
  }
  addSecret(secret);
  const clock = options.clock ?? systemClock;
  const now = options.now ?? (() => clock.now());
  const body = {
    maxBytes: options.maxBodyBytes ?? MAX_BODY_BYTES,
    timeoutMs: options.bodyTimeoutMs ?? BODY_TIMEOUT_MS,
    clock,
  };
  const maxInFlight = options.maxInFlight ?? MAX_IN_FLIGHT;
  let inFlight = 0;
  const stats = new ControlStats();
  const monitor = new Monitor({ now, status: () => statusBody(callbacks, now()) });
  const table = new RouteTable([
    ...healthRoutes(callbacks),
    ...hookRoutes(callbacks, {
      stats,
      monitor,
      clock,
      budgetMs: options.hookBudgetMs ?? DEFAULT_HOOK_BUDGET_MS,
      body,
      provider: options.provider ?? "claude",
    }),
    ...operatorRoutes(callbacks, { now, body }),
    ["/metrics", {
      GET: () =>
        new Response(renderMetrics(callbacks, stats, { now: now() }), {
          headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
        }),
    }],
    ["/monitor", { GET: (req) => monitor.accept(req) }],
  ]);

  const handle = async (req: Request): Promise<Response> => {
    if (inFlight >= maxInFlight) {
      stats.busy++;
      return json(
        { error: `The control server is answering ${inFlight} requests already; retry shortly` },
        503,
        { "retry-after": "1" },
      );
    }
    inFlight++;
    try {
      const res = await route(req);
      if (res.status === 408) stats.bodyTimeouts++;
      return res;
    } finally {
      inFlight--;
    }
  };

  const route = async (req: Request): Promise<Response> => {
    const path = pathOf(req.url);
    if (!OPEN_PATHS.has(path) && !bearerMatches(req.headers.get("authorization"), secret)) {
      stats.unauthorized++;
      return unauthorized();
    }
    try {
      const match = table.match(path, req.method);
      if (match.kind === "found") return await match.route(req);
      throw notRouted(match, path, req.method);
    } catch (error) {
      if (error instanceof HttpError) return errorResponse(error);
      const what = `${req.method} ${path}`;
      log.error(`${what} failed: ${errorText(error)}`);
      return json({ error: `${what} failed: ${errorText(error)}` }, 500);
    }
  };

  return Object.defineProperties(handle, {
    publish: { value: (event: MonitorEvent) => monitor.publish(event) },
    monitorClients: { get: () => monitor.clients },
    inFlight: { get: () => inFlight },
    close: { value: () => monitor.close() },
  }) as ControlHandler;
}
