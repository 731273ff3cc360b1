/**
 * The control fuzzer's generator: seeded requests of every shape the contract speaks of (paths
 * real and junk, methods, secrets right and wrong, bodies fine, broken, huge or cut off), each
 * built afresh from its own seed so a failing case replays exactly.
 *
 * @module
 */
import { HOOK_EVENTS, type HookEvent, MAX_BODY_BYTES } from "../../../src/control/mod.ts";
import { LOG_LEVELS } from "../../../src/logger.ts";
import { AGENT_STATUSES } from "../../../src/types.ts";
import { FUZZ_SECRET } from "./control_fuzz_spy.ts";
import { mulberry32, type Rng } from "./prng.ts";

const HOOKS = Object.keys(HOOK_EVENTS) as HookEvent[];
const ENDPOINTS = [
  "/status",
  "/reply-obligations",
  "/log-level",
  "/hook-fatal",
  "/metrics",
  "/monitor",
  "/health",
  "/ready",
];
/** Methods no route has, among them names of `Object` members (never a prototype's function). */
const OTHER_METHODS = [
  "PUT",
  "DELETE",
  "PATCH",
  "HEAD",
  "OPTIONS",
  "FOO",
  "post",
  "get",
  "Post",
  "constructor",
  "toString",
  "__proto__",
  "hasOwnProperty",
];

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
