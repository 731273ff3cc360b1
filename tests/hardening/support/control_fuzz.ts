/**
 * The control server fuzzer, shared by tests/hardening/control_fuzz_test.ts (a fixed seed,
 * 10,000 requests) and `deno task fuzz` (any seed, any count).
 *
 * Each generated case is a request plus what the contract says must come of it (contracts §3):
 * the exact status (an oracle computed from what was generated, not from the server's code),
 * and which of the runner's callbacks may run. Every callback is a spy: a request without the
 * secret (every path but `GET /health`) must not reach a single one, not even a read, and must
 * not change the log level. Any 5xx, any thrown error, any secret in a response body, any
 * status other than the oracle's is a failure, reported with the seed and the case's index so
 * it replays exactly.
 *
 * @module
 */
import {
  type ControlCallbacks,
  type ControlServer,
  createControlHandler,
  HOOK_EVENTS,
  type HookEvent,
  isHookEvent,
  MAX_BODY_BYTES,
  startControlServer,
} from "../../../src/control/mod.ts";
import { getLogLevel, LOG_LEVELS, parseLogLevel, setLogLevel } from "../../../src/logger.ts";
import { AGENT_STATUSES, type AgentStatus, type PermissionDecision } from "../../../src/types.ts";
import { mulberry32, type Rng } from "./prng.ts";

/** The secret every fuzz handler uses: hex with letters, so a case change breaks it. */
export const FUZZ_SECRET = "c0ffee5ecae7b00c4a11ab1e5eedfacec0ffee5ecae7b00c4a11ab1e5eedface";

// ---------------------------------------------------------------------------------------------
// Spies

/** The name of every callback the control server can call. */
export type CallbackName =
  | "status"
  | "setStatus"
  | "obligations.get"
  | "obligations.refreshedAt"
  | "obligations.lastError"
  | "deliveredThisTurn"
  | "decidePermission"
  | "onHook"
  | "onHookFatal"
  | "metrics";

/** The callbacks that change something (the rest only read). */
export const ACTIONS: readonly CallbackName[] = [
  "setStatus",
  "decidePermission",
  "onHook",
  "onHookFatal",
];

/** One recorded callback call. */
export interface SpyCall {
  name: CallbackName;
  args: unknown[];
}

/** Callbacks that record every call. */
export interface Spy {
  callbacks: ControlCallbacks;
  calls: SpyCall[];
}

/** Builds {@linkcode ControlCallbacks} whose every member records its calls in `calls`. */
export function createSpy(): Spy {
  const calls: SpyCall[] = [];
  const rec = (name: CallbackName, ...args: unknown[]) => void calls.push({ name, args });
  const callbacks: ControlCallbacks = {
    status() {
      rec("status");
      return {
        agentId: "fuzz",
        provider: "claude",
        status: "busy",
        pid: 4242,
        startedAt: 1_000,
        outbox: { pending: 1, poisoned: 0 },
      };
    },
    setStatus(status, source) {
      rec("setStatus", status, source);
    },
    obligations: {
      get() {
        rec("obligations.get");
        return [{ messageId: 7, from: "boss", createdAt: "2026-01-01T00:00:00.000Z", body: "hi" }];
      },
      get refreshedAt() {
        rec("obligations.refreshedAt");
        return 2_000;
      },
      get lastError() {
        rec("obligations.lastError");
        return undefined;
      },
    },
    deliveredThisTurn() {
      rec("deliveredThisTurn");
      return [];
    },
    decidePermission(request) {
      rec("decidePermission", request);
      return Promise.resolve<PermissionDecision>({ decision: "deny", reason: "fuzz" });
    },
    onHook(event, payload) {
      rec("onHook", event, payload);
      return { fuzzed: true };
    },
    onHookFatal(report) {
      rec("onHookFatal", report);
    },
    metrics() {
      rec("metrics");
      return { outbox: { pending: 1, poisoned: 0, delivered: 3 } };
    },
  };
  return { callbacks, calls };
}

// ---------------------------------------------------------------------------------------------
// Generation

const HOOKS = Object.keys(HOOK_EVENTS) as HookEvent[];
const ENDPOINTS = [
  "/status",
  "/reply-obligations",
  "/log-level",
  "/hook-fatal",
  "/metrics",
  "/monitor",
  "/health",
];
const ROUTES: Record<string, readonly string[]> = {
  "/status": ["GET", "POST"],
  "/reply-obligations": ["GET"],
  "/log-level": ["GET", "POST"],
  "/hook-fatal": ["POST"],
  "/metrics": ["GET"],
  "/monitor": ["GET"],
};
const OTHER_METHODS = ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "FOO", "post", "get", "Post"];

/** How a case presents the secret, and whether that is the secret. */
interface AuthVariant {
  label: string;
  valid: boolean;
  apply(headers: Headers, url: URL, rng: Rng): void;
}

function flipOne(secret: string, rng: Rng): string {
  const i = rng.int(0, secret.length - 1);
  const c = secret[i] === "0" ? "1" : "0";
  return secret.slice(0, i) + c + secret.slice(i + 1);
}

const AUTH: AuthVariant[] = [
  { label: "valid", valid: true, apply: (h) => h.set("authorization", `Bearer ${FUZZ_SECRET}`) },
  {
    label: "valid-lower",
    valid: true,
    apply: (h) => h.set("authorization", `bearer ${FUZZ_SECRET}`),
  },
  {
    label: "valid-upper",
    valid: true,
    apply: (h) => h.set("authorization", `BEARER ${FUZZ_SECRET}`),
  },
  {
    label: "valid-padded",
    valid: true,
    apply: (h) => h.set("authorization", `Bearer   ${FUZZ_SECRET}  `),
  },
  { label: "missing", valid: false, apply: () => {} },
  { label: "empty", valid: false, apply: (h) => h.set("authorization", "") },
  { label: "scheme-only", valid: false, apply: (h) => h.set("authorization", "Bearer") },
  { label: "scheme-space", valid: false, apply: (h) => h.set("authorization", "Bearer ") },
  { label: "no-scheme", valid: false, apply: (h) => h.set("authorization", FUZZ_SECRET) },
  {
    label: "basic",
    valid: false,
    apply: (h) => h.set("authorization", `Basic ${btoa(`user:${FUZZ_SECRET}`)}`),
  },
  {
    label: "tab-separated",
    valid: false,
    apply: (h) => h.set("authorization", `Bearer\t${FUZZ_SECRET}`),
  },
  {
    label: "prefix",
    valid: false,
    apply: (h, _u, rng) =>
      h.set("authorization", `Bearer ${FUZZ_SECRET.slice(0, rng.int(0, FUZZ_SECRET.length - 1))}`),
  },
  {
    label: "longer",
    valid: false,
    apply: (h, _u, rng) => h.set("authorization", `Bearer ${FUZZ_SECRET}${rng.string(1)}`),
  },
  {
    label: "flipped",
    valid: false,
    apply: (h, _u, rng) => h.set("authorization", `Bearer ${flipOne(FUZZ_SECRET, rng)}`),
  },
  {
    label: "uppercased",
    valid: false,
    apply: (h) => h.set("authorization", `Bearer ${FUZZ_SECRET.toUpperCase()}`),
  },
  {
    label: "random",
    valid: false,
    apply: (h, _u, rng) => h.set("authorization", `Bearer ${rng.string(rng.int(1, 200))}`),
  },
  {
    label: "twice",
    valid: false,
    apply: (h) => {
      h.append("authorization", `Bearer ${FUZZ_SECRET}`);
      h.append("authorization", `Bearer ${FUZZ_SECRET}`);
    },
  },
  {
    label: "in-query",
    valid: false,
    apply: (_h, u) => u.searchParams.set("secret", FUZZ_SECRET),
  },
  {
    label: "other-header",
    valid: false,
    apply: (h) => {
      h.set("x-agent-relay-secret", FUZZ_SECRET);
      h.set("cookie", `secret=${FUZZ_SECRET}`);
    },
  },
];
const VALID_AUTH = AUTH.filter((a) => a.valid);
const INVALID_AUTH = AUTH.filter((a) => !a.valid);

/** What the body of a case is. */
type BodyKind =
  | "none"
  | "object"
  | "broken-json"
  | "non-object"
  | "empty"
  | "invalid-utf8"
  | "huge"
  | "huge-declared"
  | "exact-limit";

/** A generated case: how to build its request, and what must come of it. */
export interface FuzzCase {
  index: number;
  method: string;
  /** The path as sent (before the URL parser normalizes it). */
  rawPath: string;
  auth: string;
  authValid: boolean;
  body: BodyKind;
  streamed: boolean;
  /** The stream fails part-way (a client that went away). */
  streamError: boolean;
  /** The payload object, for `object` bodies. */
  payload?: Record<string, unknown>;
  /** Builds a fresh request against `base` (`http://127.0.0.1:PORT`). */
  build(base: string): Request;
}

const HUGE = (() => {
  const text = `{"pad":"${"x".repeat(MAX_BODY_BYTES)}"}`;
  return new TextEncoder().encode(text);
})();
const EXACT = (() => {
  const bytes = new Uint8Array(MAX_BODY_BYTES).fill(0x20);
  bytes[0] = 0x7b;
  bytes[MAX_BODY_BYTES - 1] = 0x7d;
  return bytes;
})();

function junkSegment(rng: Rng): string {
  return rng.pick([
    () => rng.string(rng.int(1, 12)),
    () => rng.string(rng.int(1, 8), "abc%2e./-_~!$&'()*+,;=:@"),
    () => "..",
    () => ".",
    () => "%2e%2e",
    () => "%00",
    () => "%ff",
    () => "\u00e9t\u00e9",
    () => "x".repeat(rng.int(100, 3000)),
  ])();
}

function genPath(rng: Rng): string {
  const r = rng.next();
  let path: string;
  if (r < 0.45) path = `/hooks/${rng.pick(HOOKS)}`;
  else if (r < 0.5) {
    path = rng.pick([
      () => `/hooks/${rng.string(rng.int(0, 20))}`,
      () => `/hooks/${rng.pick(HOOKS).toUpperCase()}`,
      () => `/hooks/${HOOK_EVENTS[rng.pick(HOOKS)]}`,
      () => `/hooks/${rng.pick(HOOKS)}/`,
      () => `/hooks/${rng.pick(HOOKS)}/${junkSegment(rng)}`,
      () => `/hooks/%73top`,
      () => `/hooks//${rng.pick(HOOKS)}`,
      () => `/hooks/`,
      () => `/hooks`,
      () => `/hooks/constructor`,
      () => `/hooks/__proto__`,
      () => `/hooks/hasOwnProperty`,
    ])();
  } else if (r < 0.85) path = rng.pick(ENDPOINTS);
  else {
    const segments = Array.from({ length: rng.int(0, 4) }, () => junkSegment(rng));
    path = rng.pick([
      () => `/${segments.join("/")}`,
      () => `/hooks/../${rng.pick(ENDPOINTS).slice(1)}`,
      () => `/${junkSegment(rng)}/..${rng.pick(ENDPOINTS)}`,
      () => `/%2e%2e${rng.pick(ENDPOINTS)}`,
      () => rng.pick(ENDPOINTS).toUpperCase(),
      () => `${rng.pick(ENDPOINTS)}/`,
      () => `/${rng.pick(ENDPOINTS)}`,
      () => `${rng.pick(ENDPOINTS)}%20`,
      () => `/health/..`,
      () => `/health/../status`,
      () => `/./health`,
      () => `\\hooks\\stop`,
    ])();
  }
  if (rng.chance(0.1)) path += `?${rng.string(rng.int(0, 10))}=${rng.string(rng.int(0, 10))}`;
  if (rng.chance(0.03)) path += `#${rng.string(5)}`;
  return path;
}

function randomScalar(rng: Rng): unknown {
  return rng.pick([
    () => rng.int(-1e6, 1e6),
    () => rng.next() * 1e300,
    () => rng.chance(0.5),
    () => null,
    () => rng.string(rng.int(0, 30)),
    () => rng.string(rng.int(0, 5), '\u0000\u001f"\\\u2028\ud83d\ude00'),
  ])();
}

function randomJson(rng: Rng, depth = 0): unknown {
  if (depth > 3 || rng.chance(0.5)) return randomScalar(rng);
  if (rng.chance(0.5)) {
    return Array.from({ length: rng.int(0, 4) }, () => randomJson(rng, depth + 1));
  }
  const out: Record<string, unknown> = {};
  for (let i = rng.int(0, 4); i > 0; i--) {
    out[rng.string(rng.int(1, 8))] = randomJson(rng, depth + 1);
  }
  return out;
}

function wrongType(rng: Rng): unknown {
  return rng.pick([
    () => rng.int(-5, 5),
    () => rng.chance(0.5),
    () => [rng.string(3)],
    () => ({ nested: rng.string(3) }),
    () => 0,
  ])();
}

function genPayload(rng: Rng): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  const str = (right: () => unknown) =>
    rng.chance(0.75) ? right() : rng.chance(0.3) ? null : wrongType(rng);
  const maybe = (key: string, right: () => unknown, probability = 0.4) => {
    if (rng.chance(probability)) p[key] = str(right);
  };
  const text = () => rng.string(rng.int(0, 40));
  maybe("session_id", text);
  maybe("transcript_path", () => `/tmp/${rng.string(8)}.jsonl`);
  maybe("cwd", text);
  maybe("hook_event_name", () => HOOK_EVENTS[rng.pick(HOOKS)]);
  maybe("stop_hook_active", () => rng.chance(0.5));
  maybe("tool_name", () => rng.pick(["Bash", "Read", "Write", ""]));
  maybe("tool_use_id", text);
  maybe("tool_input", () => randomJson(rng));
  maybe("status", () => rng.chance(0.8) ? rng.pick(AGENT_STATUSES) : rng.string(5), 0.6);
  maybe("source", () => rng.string(rng.int(0, 150)));
  maybe(
    "level",
    () =>
      rng.chance(0.8)
        ? rng.pick([...LOG_LEVELS, " WARN ", "Debug", "verbose", "trace", ""])
        : rng.string(4),
    0.6,
  );
  maybe("hook", () => rng.pick(["stop", "pre-tool-use", "", "  ", rng.string(150)]));
  maybe("error", () => rng.chance(0.05) ? "e".repeat(10_000) : rng.string(rng.int(0, 50)));
  if (rng.chance(0.1)) p["__proto__"] = { polluted: true };
  if (rng.chance(0.05)) p["constructor"] = randomJson(rng);
  for (let i = rng.chance(0.3) ? rng.int(1, 3) : 0; i > 0; i--) {
    p[rng.string(rng.int(1, 10))] = randomJson(rng);
  }
  return p;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function encodeBody(rng: Rng, kind: BodyKind, payload: Record<string, unknown> | undefined) {
  switch (kind) {
    case "object":
      return new TextEncoder().encode(JSON.stringify(payload));
    case "broken-json": {
      const good = JSON.stringify(genPayload(rng));
      const broken = rng.pick([
        () => good.slice(0, Math.max(1, good.length - rng.int(1, 3))),
        () => `${good}}`,
        () => `{"a":}`,
        () => `{'single':'quotes'}`,
        () => `{"a":1,}`,
        () => `NaN`,
        () => `{"a":undefined}`,
        () => `\u0000${good}`,
        () => `{"a":"\u0001"}`,
        () => rng.string(rng.int(1, 50), '{}[]":,abc01 \n\t'),
      ])();
      // A random string may happen to be JSON ("{}", "1"): a valid text plus "}" never is.
      return new TextEncoder().encode(isJson(broken) ? `${broken}}` : broken);
    }
    case "non-object":
      return new TextEncoder().encode(
        rng.pick(["[]", "[{}]", "42", "-0", '"str"', "null", "true", "false", "1e999"]),
      );
    case "empty":
      return new TextEncoder().encode(rng.pick(["", " ", "\n\t  \r\n"]));
    case "invalid-utf8":
      return rng.pick([
        () => new Uint8Array([0x7b, 0xff, 0x7d]),
        () => new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x22, 0x7d]),
        () => new Uint8Array([0xed, 0xa0, 0x80]),
        () => rng.bytes(rng.int(1, 64)).map((b) => b | 0x80),
      ])();
    case "huge":
    case "huge-declared":
      return HUGE;
    case "exact-limit":
      return EXACT;
    case "none":
      return undefined;
  }
}

function streamOf(
  rng: Rng,
  bytes: Uint8Array,
  options: { slow: boolean; error: boolean },
): ReadableStream<Uint8Array> {
  const parts: Uint8Array[] = [];
  // Big bodies in 64 KiB chunks; small ones in 1 to 6 pieces (a slow one waits before each).
  const size = bytes.byteLength > 64 * 1024
    ? 64 * 1024
    : Math.max(1, Math.ceil(bytes.byteLength / rng.int(1, 6)));
  for (let at = 0; at < bytes.byteLength; at += size) parts.push(bytes.subarray(at, at + size));
  const failAt = options.error ? rng.int(0, parts.length) : -1;
  const delays = parts.map(() => (options.slow && parts.length < 20 ? rng.int(0, 3) : -1));
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (i === failAt) {
        controller.error(new Error("the client went away mid-body"));
        return;
      }
      if (i >= parts.length) {
        controller.close();
        return;
      }
      const delay = delays[i]!;
      if (delay >= 0) await new Promise((r) => setTimeout(r, delay));
      controller.enqueue(parts[i++]!);
    },
  });
}

/** Generates case number `index` from `rng`. */
export function generateCase(rng: Rng, index: number): FuzzCase {
  const rawPath = genPath(rng);
  const r = rng.next();
  const method = r < 0.55 ? "POST" : r < 0.8 ? "GET" : rng.pick(OTHER_METHODS);
  const canHaveBody = !["GET", "HEAD", "get"].includes(method);
  const auth = rng.chance(0.55) ? rng.pick(VALID_AUTH) : rng.pick(INVALID_AUTH);
  let body: BodyKind = "none";
  if (canHaveBody) {
    const b = rng.next();
    body = b < 0.6
      ? "object"
      : b < 0.7
      ? "broken-json"
      : b < 0.78
      ? "non-object"
      : b < 0.84
      ? "empty"
      : b < 0.9
      ? "invalid-utf8"
      : b < 0.93
      ? "none"
      : b < 0.96
      ? "huge"
      : b < 0.98
      ? "huge-declared"
      : "exact-limit";
  }
  const payload = body === "object" ? genPayload(rng) : undefined;
  const bytes = encodeBody(rng, body, payload);
  const streamed = bytes !== undefined && body !== "huge-declared" && rng.chance(0.15);
  const slow = streamed && rng.chance(0.3);
  const streamError = streamed && rng.chance(0.2);
  const extraHeaders: Array<[string, string]> = [];
  if (rng.chance(0.5)) {
    extraHeaders.push([
      "content-type",
      rng.pick(["application/json", "text/plain", "application/x-www-form-urlencoded", "x/y"]),
    ]);
  }
  if (rng.chance(0.05)) extraHeaders.push(["upgrade", "websocket"]);
  if (rng.chance(0.05)) extraHeaders.push(["x-forwarded-for", "203.0.113.9"]);
  if (rng.chance(0.03)) extraHeaders.push(["x-junk", "j".repeat(rng.int(1, 8000))]);
  const seedForBuild = rng.int(0, 2 ** 31);
  return {
    index,
    method,
    rawPath,
    auth: auth.label,
    authValid: auth.valid,
    body,
    streamed,
    streamError,
    ...(payload ? { payload } : {}),
    build(base: string): Request {
      const buildRng = mulberry32(seedForBuild);
      // The path as written, through the URL parser's path setter (dot segments and
      // backslashes resolved as any client would), never moving off the base's host.
      const parsed = new URL(base);
      const hash = rawPath.indexOf("#");
      const beforeHash = hash === -1 ? rawPath : rawPath.slice(0, hash);
      const query = beforeHash.indexOf("?");
      parsed.pathname = query === -1 ? beforeHash : beforeHash.slice(0, query);
      if (query !== -1) parsed.search = beforeHash.slice(query);
      if (hash !== -1) parsed.hash = rawPath.slice(hash);
      if (parsed.origin !== new URL(base).origin) throw new Error(`case ${index} left ${base}`);
      const headers = new Headers(extraHeaders);
      auth.apply(headers, parsed, buildRng);
      if (body === "huge-declared") headers.set("content-length", String(HUGE.byteLength));
      const init: RequestInit = { method, headers };
      if (bytes !== undefined) {
        init.body = streamed
          ? streamOf(buildRng, bytes, { slow, error: streamError })
          : (bytes as Uint8Array<ArrayBuffer>);
      }
      return new Request(parsed, init);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The oracle

const isStr = (v: unknown) => v === undefined || v === null || typeof v === "string";
const isBool = (v: unknown) => v === undefined || v === null || typeof v === "boolean";

/**
 * The statuses contracts §3 allows for `c`, once its request's URL is normalized to `path`:
 * one, except for an over-limit body whose stream also fails (413 or 400, whichever the
 * server meets first).
 */
export function expectedStatuses(c: FuzzCase, path: string, method: string): number[] {
  const status = expectedStatus(c, path, method);
  return status === 413 && c.streamError ? [413, 400] : [status];
}

function expectedStatus(c: FuzzCase, path: string, method: string): number {
  if (path === "/health") return method === "GET" ? 200 : 405;
  if (!c.authValid) return 401;
  let isPost = false;
  let check: (p: Record<string, unknown>) => boolean = () => true;
  if (path.startsWith("/hooks/")) {
    const event = path.slice("/hooks/".length);
    if (!isHookEvent(event)) return 404;
    if (method !== "POST") return 405;
    isPost = true;
    check = (p) =>
      ["session_id", "transcript_path", "cwd", "hook_event_name"].every((f) => isStr(p[f])) &&
      (event !== "stop" || isBool(p["stop_hook_active"])) &&
      (event !== "permission-request" || (isStr(p["tool_name"]) && isStr(p["tool_use_id"])));
  } else {
    const methods = ROUTES[path];
    if (!methods) return 404;
    if (!methods.includes(method)) return 405;
    if (method === "GET") return path === "/monitor" ? 400 : 200;
    isPost = true;
    if (path === "/status") {
      check = (p) =>
        isStr(p["source"]) && typeof p["status"] === "string" &&
        (AGENT_STATUSES as readonly string[]).includes(p["status"]);
    } else if (path === "/log-level") {
      check = (p) => typeof p["level"] === "string" && parseLogLevel(p["level"]) !== undefined;
    } else if (path === "/hook-fatal") {
      check = (p) => isStr(p["hook"]) && isStr(p["error"]);
    }
  }
  if (!isPost) return 200;
  switch (c.body) {
    case "huge":
    case "huge-declared":
      return 413;
    case "broken-json":
    case "non-object":
    case "empty":
    case "invalid-utf8":
    case "none":
      return 400;
    case "exact-limit":
      return c.streamError ? 400 : check({}) ? 200 : 400;
    case "object":
      return c.streamError ? 400 : check(c.payload!) ? 200 : 400;
  }
}

// ---------------------------------------------------------------------------------------------
// Running

/** What a fuzz run came to. */
export interface FuzzSummary {
  seed: number;
  count: number;
  elapsedMs: number;
  /** Responses by status (`client-aborted`: the client's own body stream failed, over a port). */
  statuses: Record<string, number>;
  /** Requests that carried a valid secret / not. */
  authorized: number;
  unauthorized: number;
  /** Requests with a body over 1 MiB; with a streamed body; whose stream failed. */
  huge: number;
  streamed: number;
  streamErrors: number;
  /** Callback calls that change something, in all. */
  actions: number;
  /** One line per failure (at most `maxFailures`), each naming the seed and case index. */
  failures: string[];
}

/** Where the cases go: in process, or over a real port. */
export interface FuzzTarget {
  base: string;
  spy: Spy;
  /**
   * Sends one request. `undefined` means the client itself failed as the case meant it to
   * (its body stream broke, over a real port): there is no answer to check, only the spy.
   */
  send(request: Request, c: FuzzCase): Promise<Response | undefined>;
  close(): Promise<void>;
}

/** A fresh in-process handler over a spy. */
export function inProcessTarget(): FuzzTarget {
  const spy = createSpy();
  const handler = createControlHandler({ secret: FUZZ_SECRET, callbacks: spy.callbacks });
  return {
    base: "http://127.0.0.1:1",
    spy,
    send: (request) => handler(request),
    close: () => Promise.resolve(handler.close()),
  };
}

/** A real control server on 127.0.0.1 over a spy; cases go through `fetch`. */
export function portTarget(): FuzzTarget & { server: ControlServer } {
  const spy = createSpy();
  const server = startControlServer({ port: 0, secret: FUZZ_SECRET, callbacks: spy.callbacks });
  return {
    base: `http://127.0.0.1:${server.port}`,
    spy,
    server,
    async send(request, c) {
      try {
        return await fetch(request);
      } catch (error) {
        if (c.streamError) return undefined;
        throw error;
      }
    },
    close: () => server.close(),
  };
}

/** Options of {@linkcode runControlFuzz}. */
export interface FuzzOptions {
  seed: number;
  count: number;
  /** Default: {@linkcode inProcessTarget}. The run closes it. */
  target?: FuzzTarget;
  /** Stop recording failures after this many. Default 20. */
  maxFailures?: number;
  /** Called every `progressEvery` cases (default 10,000). */
  onProgress?: (done: number, summary: FuzzSummary) => void;
  progressEvery?: number;
}

/** Generates `count` cases from `seed`, sends each in turn and checks it against the contract. */
export async function runControlFuzz(options: FuzzOptions): Promise<FuzzSummary> {
  const rng = mulberry32(options.seed);
  const target = options.target ?? inProcessTarget();
  const maxFailures = options.maxFailures ?? 20;
  const progressEvery = options.progressEvery ?? 10_000;
  const summary: FuzzSummary = {
    seed: options.seed,
    count: 0,
    elapsedMs: 0,
    statuses: {},
    authorized: 0,
    unauthorized: 0,
    huge: 0,
    streamed: 0,
    streamErrors: 0,
    actions: 0,
    failures: [],
  };
  const levelBefore = getLogLevel();
  const started = performance.now();
  let expectedActions = 0;
  const fail = (c: FuzzCase, what: string) => {
    if (summary.failures.length < maxFailures) {
      summary.failures.push(
        `seed ${options.seed} case ${c.index} (${c.method} ${
          JSON.stringify(c.rawPath.slice(0, 80))
        } auth=${c.auth} body=${c.body}${c.streamed ? " streamed" : ""}${
          c.streamError ? " stream-error" : ""
        }): ${what}`,
      );
    }
  };
  try {
    for (let i = 0; i < options.count; i++) {
      const c = generateCase(rng, i);
      const request = c.build(target.base);
      const path = new URL(request.url).pathname;
      const method = request.method;
      const expected = expectedStatuses(c, path, method);
      const callsBefore = target.spy.calls.length;
      const level = getLogLevel();
      summary.count++;
      if (c.authValid) summary.authorized++;
      else summary.unauthorized++;
      if (c.body === "huge" || c.body === "huge-declared") summary.huge++;
      if (c.streamed) summary.streamed++;
      if (c.streamError) summary.streamErrors++;
      let response: Response | undefined;
      try {
        response = await target.send(request, c);
      } catch (error) {
        fail(c, `threw ${error instanceof Error ? `${error.name}: ${error.message}` : error}`);
        continue;
      }
      const open = path === "/health";
      if (response === undefined) {
        summary.statuses["client-aborted"] = (summary.statuses["client-aborted"] ?? 0) + 1;
        continue; // The global action count below still catches a late action.
      }
      const status = response.status;
      summary.statuses[status] = (summary.statuses[status] ?? 0) + 1;
      let text = "";
      try {
        text = await response.text();
      } catch (error) {
        fail(c, `the response body failed: ${error}`);
      }
      const calls = target.spy.calls.slice(callsBefore);
      if (status >= 500) fail(c, `answered ${status}: ${text.slice(0, 200)}`);
      if (!expected.includes(status)) {
        fail(
          c,
          `answered ${status}, the contract says ${expected.join(" or ")}: ${text.slice(0, 200)}`,
        );
      }
      if (text.includes(FUZZ_SECRET)) fail(c, "the response body holds the secret");
      if (status >= 400 && method !== "HEAD") { // A HEAD answer has no body on the wire.
        try {
          const body = JSON.parse(text) as { error?: unknown };
          if (typeof body.error !== "string" || body.error === "") {
            fail(c, `error body ${text.slice(0, 100)}`);
          }
        } catch {
          fail(c, `a ${status} answer that is not JSON: ${text.slice(0, 100)}`);
        }
      }
      if (status === 405 && !response.headers.get("allow")) fail(c, "a 405 without Allow");
      if (status === 401 && !response.headers.get("www-authenticate")) {
        fail(c, "a 401 without WWW-Authenticate");
      }
      if ((!c.authValid || open) && calls.length > 0) {
        fail(c, `reached the runner without the secret: ${calls.map((k) => k.name).join(", ")}`);
      }
      if ((!c.authValid || open) && getLogLevel() !== level) {
        fail(c, "changed the log level without the secret");
      }
      if (open && status === 200 && text !== '{"ok":true}') fail(c, `/health said ${text}`);
      const actions = calls.filter((k) => ACTIONS.includes(k.name));
      if (status !== 200 && actions.length > 0) {
        fail(c, `answered ${status} but acted: ${actions.map((k) => k.name).join(", ")}`);
      }
      if (status === 200 && c.authValid && method === "POST") {
        expectedActions += checkAction(c, path, actions, fail);
      }
      if (options.onProgress && (i + 1) % progressEvery === 0) {
        summary.elapsedMs = performance.now() - started;
        options.onProgress(i + 1, summary);
      }
    }
  } finally {
    setLogLevel(levelBefore);
    await target.close();
  }
  summary.elapsedMs = performance.now() - started;
  summary.actions = target.spy.calls.filter((k) => ACTIONS.includes(k.name)).length;
  if (summary.actions !== expectedActions && summary.failures.length < maxFailures) {
    summary.failures.push(
      `seed ${options.seed}: ${summary.actions} actions in all, but the answered requests ` +
        `account for ${expectedActions}`,
    );
  }
  return summary;
}

/** Checks the actions of a 200 POST; returns how many actions it should have made. */
function checkAction(
  c: FuzzCase,
  path: string,
  actions: SpyCall[],
  fail: (c: FuzzCase, what: string) => void,
): number {
  const names = actions.map((a) => a.name).join(",");
  const payload = c.body === "object" ? c.payload! : {};
  if (path.startsWith("/hooks/")) {
    const event = path.slice("/hooks/".length);
    const want = event === "permission-request" ? "decidePermission,onHook" : "onHook";
    if (names !== want) fail(c, `a ${event} hook called ${names || "nothing"}, not ${want}`);
    const hook = actions.find((a) => a.name === "onHook");
    if (hook && hook.args[0] !== event) fail(c, `onHook got event ${hook.args[0]}`);
    return want.split(",").length;
  }
  if (path === "/status") {
    const source = typeof payload["source"] === "string" && payload["source"]
      ? payload["source"].slice(0, 100)
      : "control";
    const call = actions[0];
    if (
      actions.length !== 1 || call?.name !== "setStatus" ||
      call.args[0] !== payload["status"] as AgentStatus || call.args[1] !== source
    ) fail(c, `POST /status called ${JSON.stringify(actions).slice(0, 200)}`);
    return 1;
  }
  if (path === "/log-level") {
    if (getLogLevel() !== parseLogLevel(payload["level"] as string)) {
      fail(c, `POST /log-level left the level at ${getLogLevel()}`);
    }
    if (actions.length > 0) fail(c, `POST /log-level called ${names}`);
    return 0;
  }
  if (path === "/hook-fatal") {
    if (names !== "onHookFatal") fail(c, `POST /hook-fatal called ${names || "nothing"}`);
    return 1;
  }
  return 0;
}
