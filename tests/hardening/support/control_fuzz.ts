/**
 * The control server fuzzer, shared by tests/hardening/control_fuzz_test.ts (a fixed seed,
 * 10,000 requests) and `deno task fuzz` (any seed, any count).
 *
 * Each generated case (control_fuzz_cases.ts) is a request plus what the contract says must
 * come of it (contracts §3, control_fuzz_oracle.ts): the exact status (an oracle computed from
 * what was generated, not from the server's code), and which of the runner's callbacks may run.
 * Every callback is a spy (control_fuzz_spy.ts): a request without the secret (every path but
 * `GET /health`) must not reach a single one, not even a read, and must not change the log
 * level. Any 5xx, any thrown error, any secret in a response body, any status other than the
 * oracle's is a failure, reported with the seed and the case's index so it replays exactly.
 *
 * This module runs the cases and re-exports the other three's names.
 *
 * @module
 */
import {
  type ControlServer,
  createControlHandler,
  startControlServer,
} from "../../../src/control/mod.ts";
import { getLogLevel, setLogLevel } from "../../../src/logger.ts";
import { type FuzzCase, generateCase } from "./control_fuzz_cases.ts";
import { checkAction, expectedStatuses } from "./control_fuzz_oracle.ts";
import { ACTIONS, createSpy, FUZZ_SECRET, OPEN_READS, type Spy } from "./control_fuzz_spy.ts";
import { mulberry32 } from "./prng.ts";

/** What `/ready` answers while the spy's readiness says yes. */
const READY_BODY = '{"ready":true}';

export { type FuzzCase, generateCase } from "./control_fuzz_cases.ts";
export { expectedStatuses } from "./control_fuzz_oracle.ts";
export {
  ACTIONS,
  type CallbackName,
  createSpy,
  FUZZ_SECRET,
  type Spy,
  type SpyCall,
} from "./control_fuzz_spy.ts";

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
      const open = path === "/health" || path === "/ready";
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
      const reached = open ? calls.filter((k) => !OPEN_READS.includes(k.name)) : calls;
      if ((!c.authValid || open) && reached.length > 0) {
        fail(c, `reached the runner without the secret: ${reached.map((k) => k.name).join(", ")}`);
      }
      if ((!c.authValid || open) && getLogLevel() !== level) {
        fail(c, "changed the log level without the secret");
      }
      if (path === "/health" && status === 200 && text !== '{"ok":true,"relay":{"auth":"ok"}}') {
        fail(c, `/health said ${text}`);
      }
      if (path === "/ready" && status === 200 && text !== READY_BODY) {
        fail(c, `/ready said ${text}`);
      }
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
