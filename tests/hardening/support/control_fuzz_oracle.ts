/**
 * The control fuzzer's oracle: the status contracts §3 fixes for a generated case, worked out
 * from what was generated (never from the server's code), and the actions a 200 may take.
 *
 * @module
 */
import { isHookEvent } from "../../../src/control/mod.ts";
import { getLogLevel, parseLogLevel } from "../../../src/logger.ts";
import { AGENT_STATUSES, type AgentStatus } from "../../../src/types.ts";
import type { FuzzCase } from "./control_fuzz_cases.ts";
import type { SpyCall } from "./control_fuzz_spy.ts";

/** The methods of every path but the hooks, `/health` and `/ready`. */
const ROUTES: ReadonlyMap<string, readonly string[]> = new Map([
  ["/status", ["GET", "POST"]],
  ["/reply-obligations", ["GET"]],
  ["/log-level", ["GET", "POST"]],
  ["/hook-fatal", ["POST"]],
  ["/metrics", ["GET"]],
  ["/monitor", ["GET"]],
]);

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
  if (path === "/ready") return method === "GET" ? 200 : 405;
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
    const methods = ROUTES.get(path);
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

/** Checks the actions of a 200 POST; returns how many actions it should have made. */
export function checkAction(
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
