/**
 * What the control server's tests share: fake runner callbacks that record every call, a
 * handler over them, request builders, and logging captured for a test.
 *
 * @module
 */
import {
  type ControlCallbacks,
  createControlHandler,
  type HookContext,
  type HookEvent,
  type HookFatalReport,
  type HookPayload,
  type MetricsSnapshot,
} from "../../src/control/mod.ts";
import {
  configureLogging,
  type LogEntry,
  type LoggingHandle,
  onLogEntry,
  setLogLevel,
} from "../../src/logger.ts";
import { createPermissionDecider } from "../../src/control/permission_policy.ts";
import type { AgentStatus, ReplyObligation } from "../../src/types.ts";

/** The secret every handler here uses. */
export const SECRET = "0123456789abcdef0123456789abcdef";
/** Headers carrying {@linkcode SECRET}. */
export const AUTH = { authorization: `Bearer ${SECRET}` };

/** Fake runner callbacks and what reached them. */
export interface Fake {
  callbacks: ControlCallbacks;
  obligations: ReplyObligation[];
  delivered: number[];
  statuses: Array<[AgentStatus, string]>;
  hooks: Array<{ event: HookEvent; payload: HookPayload; context: HookContext }>;
  fatals: HookFatalReport[];
  hookAnswer: (event: HookEvent) => unknown;
  refreshedAt: number | undefined;
}

/** Callbacks recording every call, with `overrides` in place of the defaults. */
export function fake(overrides: Partial<ControlCallbacks> = {}): Fake {
  const f: Fake = {
    obligations: [],
    delivered: [],
    statuses: [],
    hooks: [],
    fatals: [],
    hookAnswer: () => undefined,
    refreshedAt: undefined,
    callbacks: undefined as unknown as ControlCallbacks,
  };
  f.callbacks = {
    status: () => ({
      agentId: "a1",
      provider: "claude",
      status: "busy",
      pid: 4242,
      startedAt: 1_000,
      outbox: { pending: 2, poisoned: 1 },
      lastDeliveryAt: 1_500,
    }),
    setStatus: (status, source) => void f.statuses.push([status, source]),
    obligations: {
      get: () => f.obligations.map((o) => ({ ...o })),
      get refreshedAt() {
        return f.refreshedAt;
      },
    },
    deliveredThisTurn: () => f.delivered,
    decidePermission: createPermissionDecider({ policy: "deny" }),
    onHook: (event, payload, context) => {
      f.hooks.push({ event, payload, context });
      return f.hookAnswer(event) as Record<string, unknown> | undefined;
    },
    onHookFatal: (report) => void f.fatals.push(report),
    metrics: (): MetricsSnapshot => ({
      outbox: { pending: 2, poisoned: 1, delivered: 40 },
      samples: [
        { name: "agent_relay_runner_cost_usd_total", help: "Cost.", type: "counter", value: 0.25 },
        { name: "bad name!", help: "x", type: "gauge", value: 1 },
      ],
    }),
    ...overrides,
  };
  return f;
}

/** A handler over `f`'s callbacks, its clock stopped at 5,000. */
export function handlerFor(
  f: Fake,
  options: { hookBudgetMs?: number; maxBodyBytes?: number } = {},
) {
  return createControlHandler({
    secret: SECRET,
    callbacks: f.callbacks,
    now: () => 5_000,
    ...options,
  });
}

/** A `POST` to `path` with a JSON (or raw) body, with the secret by default. */
export function post(path: string, body: unknown, headers: Record<string, string> = AUTH): Request {
  return new Request(`http://127.0.0.1/${path.replace(/^\//, "")}`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: typeof body === "string" || body instanceof Uint8Array || body instanceof ReadableStream
      ? body as BodyInit
      : JSON.stringify(body),
  });
}

/** A `GET` of `path`, with the secret by default. */
export function get(path: string, headers: Record<string, string> = AUTH): Request {
  return new Request(`http://127.0.0.1/${path.replace(/^\//, "")}`, { headers });
}

/** Runs `fn` with logging configured into a temp dir, collecting the entries. */
export async function withLogs<T>(fn: (entries: LogEntry[]) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir();
  const logging: LoggingHandle = configureLogging({ logDir: dir, agentId: "t", level: "info" });
  const entries: LogEntry[] = [];
  const off = onLogEntry((e) => void entries.push(e));
  try {
    return await fn(entries);
  } finally {
    off();
    logging.close();
    setLogLevel("info");
    await Deno.remove(dir, { recursive: true });
  }
}

/** A reply obligation. */
export const owed = (messageId: number, from: string, body?: string): ReplyObligation => ({
  messageId,
  from,
  createdAt: "2026-11-27T10:00:00.000Z",
  ...(body === undefined ? {} : { body }),
});
