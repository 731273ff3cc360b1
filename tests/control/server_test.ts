import assert from "node:assert/strict";
import {
  constantTimeEqual,
  type ControlCallbacks,
  createControlHandler,
  generateSecret,
  HOOK_EVENTS,
  type HookContext,
  type HookEvent,
  type HookFatalReport,
  type HookPayload,
  MAX_BODY_BYTES,
  type MetricsSnapshot,
  startControlServer,
} from "../../src/control/mod.ts";
import {
  configureLogging,
  getLogLevel,
  type LogEntry,
  type LoggingHandle,
  onLogEntry,
  setLogLevel,
} from "../../src/logger.ts";
import { createPermissionDecider } from "../../src/control/permission_policy.ts";
import type { AgentStatus, PermissionDecision, ReplyObligation } from "../../src/types.ts";

const SECRET = "0123456789abcdef0123456789abcdef";
const AUTH = { authorization: `Bearer ${SECRET}` };

interface Fake {
  callbacks: ControlCallbacks;
  obligations: ReplyObligation[];
  delivered: number[];
  statuses: Array<[AgentStatus, string]>;
  hooks: Array<{ event: HookEvent; payload: HookPayload; context: HookContext }>;
  fatals: HookFatalReport[];
  hookAnswer: (event: HookEvent) => unknown;
  refreshedAt: number | undefined;
}

function fake(overrides: Partial<ControlCallbacks> = {}): Fake {
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

function handlerFor(f: Fake, options: { hookBudgetMs?: number; maxBodyBytes?: number } = {}) {
  return createControlHandler({
    secret: SECRET,
    callbacks: f.callbacks,
    now: () => 5_000,
    ...options,
  });
}

function post(path: string, body: unknown, headers: Record<string, string> = AUTH): Request {
  return new Request(`http://127.0.0.1/${path.replace(/^\//, "")}`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: typeof body === "string" || body instanceof Uint8Array || body instanceof ReadableStream
      ? body as BodyInit
      : JSON.stringify(body),
  });
}

function get(path: string, headers: Record<string, string> = AUTH): Request {
  return new Request(`http://127.0.0.1/${path.replace(/^\//, "")}`, { headers });
}

async function withLogs<T>(fn: (entries: LogEntry[]) => Promise<T>): Promise<T> {
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

const owed = (messageId: number, from: string, body?: string): ReplyObligation => ({
  messageId,
  from,
  createdAt: "2026-11-27T10:00:00.000Z",
  ...(body === undefined ? {} : { body }),
});

// ---------------------------------------------------------------------------------------------
// The secret and the rules every request follows

Deno.test("generateSecret() gives 256 random bits; constantTimeEqual() compares exactly", () => {
  const a = generateSecret();
  const b = generateSecret();
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.notEqual(a, b);
  assert.ok(constantTimeEqual(a, a));
  assert.ok(!constantTimeEqual(a, b));
  assert.ok(!constantTimeEqual(a.slice(0, 63), a));
  assert.ok(!constantTimeEqual(a + "0", a));
  assert.ok(!constantTimeEqual("", a));
  assert.throws(
    () => createControlHandler({ secret: "short", callbacks: fake().callbacks }),
    /at least 16 characters/,
  );
});

Deno.test("GET /health needs no secret and says only {ok}", async () => {
  const h = handlerFor(fake());
  const res = await h(get("/health", {}));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true });
  const bad = await h(post("/health", {}, {}));
  assert.equal(bad.status, 405);
  assert.equal(bad.headers.get("allow"), "GET");
  await bad.body?.cancel();
});

Deno.test("without the right secret every other endpoint answers 401 and does nothing", async () => {
  const f = fake();
  const h = handlerFor(f);
  const before = getLogLevel();
  const wrong = [{}, { authorization: "Bearer nope" }, { authorization: SECRET }, {
    authorization: `Basic ${SECRET}`,
  }, { authorization: `Bearer ${SECRET}x` }];
  for (const headers of wrong) {
    const requests = [
      post("/hooks/stop", { stop_hook_active: false }, headers),
      post("/hooks/session-start", {}, headers),
      post("/status", { status: "idle" }, headers),
      get("/status", headers),
      post("/hook-fatal", { hook: "x", error: "y" }, headers),
      post("/log-level", { level: "debug" }, headers),
      get("/log-level", headers),
      get("/reply-obligations", headers),
      get("/metrics", headers),
      get("/monitor", headers),
      get("/nowhere", headers),
    ];
    for (const req of requests) {
      const res = await h(req);
      assert.equal(res.status, 401, `${req.method} ${req.url} with ${JSON.stringify(headers)}`);
      assert.match((await res.json()).error, /secret/);
    }
  }
  assert.deepEqual(f.hooks, []);
  assert.deepEqual(f.statuses, []);
  assert.deepEqual(f.fatals, []);
  assert.equal(getLogLevel(), before);
  const ok = await h(get("/status", { authorization: `bearer ${SECRET}` }));
  assert.equal(ok.status, 200, "the scheme is case-insensitive");
  await ok.body?.cancel();
});

Deno.test("unknown paths answer 404, wrong methods 405 with Allow", async () => {
  const h = handlerFor(fake());
  const cases: Array<[Request, number, string | null]> = [
    [get("/nowhere"), 404, null],
    [post("/hooks/not-an-event", {}), 404, null],
    [post("/hooks/", {}), 404, null],
    [get("/hooks/stop"), 405, "POST"],
    [post("/metrics", {}), 405, "GET"],
    [post("/reply-obligations", {}), 405, "GET"],
    [get("/hook-fatal"), 405, "POST"],
    [new Request("http://127.0.0.1/status", { method: "DELETE", headers: AUTH }), 405, "GET, POST"],
    [new Request("http://127.0.0.1/log-level", { method: "PUT", headers: AUTH }), 405, "GET, POST"],
  ];
  const query = await h(get("/status?verbose=1#top"));
  assert.equal(query.status, 200, "a query string does not change the path");
  await query.body?.cancel();
  const dotted = await h(get("/hooks/../status"));
  assert.equal(dotted.status, 200, "dot segments resolve as a URL parser would");
  await dotted.body?.cancel();
  for (const [req, status, allow] of cases) {
    const res = await h(req);
    assert.equal(res.status, status, `${req.method} ${req.url}`);
    assert.equal(res.headers.get("allow"), allow, `${req.method} ${req.url}`);
    assert.equal(typeof (await res.json()).error, "string");
  }
});

Deno.test("bad bodies answer 400 {error}, and nothing is done", async () => {
  const f = fake();
  const h = handlerFor(f);
  const cases: Array<[Request, RegExp]> = [
    [post("/hooks/stop", "{not json"), /not valid JSON/],
    [post("/hooks/stop", ""), /empty/],
    [post("/hooks/stop", "[1,2]"), /an array, not a JSON object/],
    [post("/hooks/stop", "42"), /number, not a JSON object/],
    [post("/hooks/stop", new Uint8Array([0x7b, 0xff, 0x7d])), /UTF-8/],
    [
      post("/hooks/stop", { stop_hook_active: "false" }),
      /"stop_hook_active" is string, not a boolean/,
    ],
    [post("/hooks/pre-tool-use", { session_id: 12 }), /"session_id" is number, not a string/],
    [post("/hooks/permission-request", { tool_name: ["Bash"] }), /"tool_name" is an array/],
    [post("/status", { status: "sleepy" }), /"status" must be one of: starting, idle/],
    [post("/status", { status: "idle", source: 3 }), /"source"/],
    [post("/log-level", { level: 5 }), /"level" must be one of: debug/],
    [post("/log-level", { level: "verbose" }), /"level" must be one of/],
    [post("/hook-fatal", { hook: 1, error: "x" }), /"hook" is number/],
    [post("/hook-fatal", { hook: "stop", error: { a: 1 } }), /"error" is object/],
  ];
  for (const [req, pattern] of cases) {
    const res = await h(req);
    assert.equal(res.status, 400, req.url);
    assert.match((await res.json()).error, pattern);
  }
  assert.deepEqual(f.hooks, []);
  assert.deepEqual(f.statuses, []);
  assert.deepEqual(f.fatals, []);
});

Deno.test("bodies over 1 MiB answer 413, declared or streamed, without reading it all", async () => {
  const f = fake();
  const h = handlerFor(f);
  const declared = new Request("http://127.0.0.1/hooks/stop", {
    method: "POST",
    headers: { ...AUTH, "content-length": String(MAX_BODY_BYTES + 1) },
    body: "{}",
  });
  const r1 = await h(declared);
  assert.equal(r1.status, 413);
  assert.match((await r1.json()).error, /limit/);

  let pulled = 0;
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled += chunk.byteLength;
      if (pulled > 64 * MAX_BODY_BYTES) controller.close();
      else controller.enqueue(chunk);
    },
  });
  const r2 = await h(post("/hooks/session-start", stream));
  assert.equal(r2.status, 413);
  await r2.body?.cancel();
  assert.ok(pulled < 2 * MAX_BODY_BYTES, `read ${pulled} bytes of a 64 MiB body`);

  const exact = "{" + " ".repeat(MAX_BODY_BYTES - 2) + "}";
  const r3 = await h(post("/hooks/session-start", exact));
  assert.equal(r3.status, 200, "exactly 1 MiB is accepted");
  await r3.body?.cancel();
  assert.equal(f.hooks.length, 1);
});

// ---------------------------------------------------------------------------------------------
// Hooks

Deno.test("stop blocks on an obligation the turn does not answer, quoting it", async () => {
  const f = fake();
  f.obligations = [owed(7, "user", "delivered this turn"), owed(12, "planner", "status please?")];
  f.delivered = [7];
  const h = handlerFor(f);
  const payload = { session_id: "s", stop_hook_active: false, last_assistant_message: "done" };
  const res = await h(post("/hooks/stop", payload));
  assert.equal(res.status, 200);
  const answer = await res.json();
  assert.equal(answer.decision, "block");
  assert.match(answer.reason, /message 12 from planner: "status please\?"/);
  assert.doesNotMatch(answer.reason, /message 7 /);
  assert.equal(f.hooks.length, 1);
  assert.equal(f.hooks[0]!.event, "stop");
  assert.equal(f.hooks[0]!.context.stop?.blocked, true);
  assert.deepEqual(f.hooks[0]!.context.stop?.outstanding.map((o) => o.messageId), [12]);
  assert.deepEqual(f.hooks[0]!.payload, payload);
});

Deno.test("stop answers {} when stop_hook_active is true, or nothing is owed", async () => {
  const f = fake();
  f.obligations = [owed(12, "planner", "x")];
  const h = handlerFor(f);
  const r1 = await h(post("/hooks/stop", { stop_hook_active: true }));
  assert.deepEqual(await r1.json(), {});
  assert.equal(f.hooks[0]!.context.stop?.blocked, false);
  f.obligations = [];
  const r2 = await h(post("/hooks/stop", { stop_hook_active: false }));
  assert.deepEqual(await r2.json(), {});
  const r3 = await h(post("/hooks/stop", {}));
  assert.deepEqual(await r3.json(), {}, "a missing stop_hook_active reads as false");
});

Deno.test("stop still answers from the snapshot when the runner's onHook fails or hangs", async () => {
  const f = fake({
    onHook: () => new Promise(() => {}),
  });
  f.obligations = [owed(3, "user", "hello")];
  const h = handlerFor(f, { hookBudgetMs: 20 });
  const answer = await (await h(post("/hooks/stop", { stop_hook_active: false }))).json();
  assert.equal(answer.decision, "block");
  const g = fake({
    onHook: () => {
      throw new Error("bookkeeping broke");
    },
  });
  const h2 = handlerFor(g);
  const r = await h2(post("/hooks/stop", { stop_hook_active: true }));
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), {});
});

Deno.test("permission-request answers by policy, in Claude's format", async () => {
  const payload = {
    tool_name: "Bash",
    tool_input: { command: "rm -rf /tmp/x" },
    tool_use_id: "toolu_1",
    permission_suggestions: [],
  };
  for (const policy of ["allow", "deny"] as const) {
    const f = fake({ decidePermission: createPermissionDecider({ policy }) });
    const answer = await (await handlerFor(f)(post("/hooks/permission-request", payload))).json();
    assert.equal(answer.hookSpecificOutput.hookEventName, "PermissionRequest");
    assert.equal(answer.hookSpecificOutput.decision.behavior, policy);
    if (policy === "deny") {
      assert.match(answer.hookSpecificOutput.decision.message, /policy is deny/);
    }
    assert.deepEqual(f.hooks[0]!.context.permission?.request, {
      requestId: "toolu_1",
      provider: "claude",
      tool: "Bash",
      input: { command: "rm -rf /tmp/x" },
    });
  }
});

Deno.test("permission-request never waits past the budget, even on a decider that hangs", async () => {
  const f = fake({ decidePermission: () => new Promise<PermissionDecision>(() => {}) });
  const answer = await (await handlerFor(f, { hookBudgetMs: 20 })(
    post("/hooks/permission-request", { tool_name: "Edit" }),
  )).json();
  assert.equal(answer.hookSpecificOutput.decision.behavior, "deny");
  assert.match(answer.hookSpecificOutput.decision.message, /no decision within 20 ms/);
});

Deno.test("every hook event reaches onHook with its raw payload; its answer is printed", async () => {
  const f = fake();
  f.hookAnswer = (event) =>
    event === "session-start"
      ? { hookSpecificOutput: { hookEventName: "SessionStart", additionalContext: "relay notes" } }
      : event === "notification"
      ? ["not", "an", "object"]
      : undefined;
  const h = handlerFor(f);
  for (const event of Object.keys(HOOK_EVENTS) as HookEvent[]) {
    if (event === "stop" || event === "permission-request") continue;
    const raw = `{"hook_event_name":"${HOOK_EVENTS[event]}", "n": 1.50, "\u00e9": "\\u00e9"}\n`;
    const res = await h(post(`/hooks/${event}`, raw));
    assert.equal(res.status, 200, event);
    const answer = await res.json();
    if (event === "session-start") {
      assert.equal(answer.hookSpecificOutput.additionalContext, "relay notes");
    } else assert.deepEqual(answer, {}, event);
    const seen = f.hooks.at(-1)!;
    assert.equal(seen.event, event);
    assert.equal(seen.context.raw, raw, "the raw body is handed over unchanged");
    assert.equal(seen.payload["hook_event_name"], HOOK_EVENTS[event]);
  }
});

Deno.test("a hook the runner fails to handle answers 500; a slow one answers {} in budget", async () => {
  const broken = fake({
    onHook: () => Promise.reject(new Error("disk full")),
  });
  const r1 = await handlerFor(broken)(post("/hooks/session-end", { reason: "exit" }));
  assert.equal(r1.status, 500);
  assert.match((await r1.json()).error, /session-end hook: disk full/);
  const slow = fake({ onHook: () => new Promise(() => {}) });
  const r2 = await handlerFor(slow, { hookBudgetMs: 20 })(post("/hooks/subagent-stop", {}));
  assert.equal(r2.status, 200);
  assert.deepEqual(await r2.json(), {});
});

Deno.test("POST /hook-fatal logs FATAL and hands the report to the runner", async () => {
  await withLogs(async (entries) => {
    const f = fake();
    const h = handlerFor(f);
    const res = await h(
      post("/hook-fatal", { hook: " stop ", error: "curl exit 22\nsecond line" }),
    );
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true });
    assert.deepEqual(f.fatals, [{ hook: "stop", error: "curl exit 22\nsecond line" }]);
    const fatal = entries.filter((e) => e.level === "fatal");
    assert.equal(fatal.length, 1);
    assert.match(fatal[0]!.message, /hook stop failed: curl exit 22 \u23ce second line/);
    const r2 = await h(post("/hook-fatal", {}));
    assert.equal(r2.status, 200);
    await r2.body?.cancel();
    assert.deepEqual(f.fatals[1], { hook: "unknown", error: "(no detail)" });
    const throwing = fake({
      onHookFatal: () => {
        throw new Error("outbox closed");
      },
    });
    const r3 = await handlerFor(throwing)(post("/hook-fatal", { hook: "x", error: "y" }));
    assert.equal(r3.status, 200, "a failing onHookFatal never bounces back at the hook");
    await r3.body?.cancel();
  });
});

// ---------------------------------------------------------------------------------------------
// Status, obligations, log level, metrics

Deno.test("GET /status adds uptime and the obligation snapshot's age", async () => {
  const f = fake();
  f.obligations = [owed(1, "user")];
  f.refreshedAt = 4_000;
  const body = await (await handlerFor(f)(get("/status"))).json();
  assert.equal(body.agentId, "a1");
  assert.equal(body.status, "busy");
  assert.equal(body.pid, 4242);
  assert.equal(body.uptimeMs, 4_000);
  assert.deepEqual(body.outbox, { pending: 2, poisoned: 1 });
  assert.equal(body.lastDeliveryAt, 1_500, "extra runner fields pass through");
  assert.deepEqual(body.obligations, { count: 1, refreshedAt: 4_000, ageMs: 1_000 });
});

Deno.test("POST /status hands the status and its source to the runner", async () => {
  const f = fake();
  const h = handlerFor(f);
  assert.deepEqual(await (await h(post("/status", { status: "idle" }))).json(), {
    ok: true,
    status: "idle",
  });
  await (await h(post("/status", { status: "busy", source: "script" }))).body?.cancel();
  assert.deepEqual(f.statuses, [["idle", "control"], ["busy", "script"]]);
});

Deno.test("GET /reply-obligations serves the local snapshot with refreshedAt", async () => {
  const f = fake();
  const h = handlerFor(f);
  assert.deepEqual(await (await h(get("/reply-obligations"))).json(), {
    obligations: [],
    count: 0,
    refreshedAt: null,
    ageMs: null,
  });
  f.obligations = [owed(9, "user", "hi")];
  f.refreshedAt = 4_500;
  const body = await (await h(get("/reply-obligations"))).json();
  assert.deepEqual(body.obligations, [owed(9, "user", "hi")]);
  assert.equal(body.refreshedAt, 4_500);
  assert.equal(body.ageMs, 500);
});

Deno.test("GET and POST /log-level read and change the logger's level at run time", async () => {
  await withLogs(async (entries) => {
    const h = handlerFor(fake());
    assert.deepEqual(await (await h(get("/log-level"))).json(), {
      level: "info",
      levels: ["debug", "info", "warn", "error", "fatal"],
    });
    const res = await h(post("/log-level", { level: " DEBUG " }));
    assert.deepEqual(await res.json(), { ok: true, level: "debug", previous: "info" });
    assert.equal(getLogLevel(), "debug");
    assert.ok(entries.some((e) => /log level set to debug \(was info\)/.test(e.message)));
  });
});

Deno.test("GET /metrics is Prometheus text with outbox, obligations and hook figures", async () => {
  const f = fake();
  f.obligations = [owed(1, "u"), owed(2, "u")];
  f.refreshedAt = 3_000;
  const h = handlerFor(f);
  await (await h(post("/hooks/stop", { stop_hook_active: false }))).body?.cancel();
  await (await h(post("/hooks/stop", { stop_hook_active: true }))).body?.cancel();
  await (await h(post("/hooks/stop", "nope"))).body?.cancel();
  await (await h(post("/hooks/pre-tool-use", {}))).body?.cancel();
  await (await h(post("/hook-fatal", { hook: "stop", error: "x" }))).body?.cancel();
  await (await h(get("/metrics", {}))).body?.cancel();
  const res = await h(get("/metrics"));
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const value = (line: string) => {
    const found = text.split("\n").find((l) => l.startsWith(line + " "));
    assert.ok(found, `missing ${line} in\n${text}`);
    return Number(found.slice(line.length + 1));
  };
  assert.equal(value("agent_relay_runner_outbox_pending"), 2);
  assert.equal(value("agent_relay_runner_outbox_poisoned"), 1);
  assert.equal(value("agent_relay_runner_outbox_delivered_total"), 40);
  assert.equal(value("agent_relay_runner_reply_obligations"), 2);
  assert.equal(value("agent_relay_runner_reply_obligations_age_seconds"), 2);
  assert.equal(value('agent_relay_runner_hook_requests_total{event="stop",code="200"}'), 2);
  assert.equal(value('agent_relay_runner_hook_requests_total{event="stop",code="400"}'), 1);
  assert.equal(value('agent_relay_runner_hook_requests_total{event="pre-tool-use",code="200"}'), 1);
  assert.equal(value('agent_relay_runner_hook_duration_seconds_count{event="stop"}'), 3);
  assert.equal(value('agent_relay_runner_hook_duration_seconds_bucket{event="stop",le="+Inf"}'), 3);
  assert.equal(value("agent_relay_runner_stop_blocks_total"), 1);
  assert.equal(value("agent_relay_runner_hook_fatal_total"), 1);
  assert.equal(value("agent_relay_runner_control_unauthorized_total"), 1);
  assert.equal(value("agent_relay_runner_cost_usd_total"), 0.25);
  assert.match(text, /# TYPE agent_relay_runner_hook_duration_seconds histogram/);
  assert.doesNotMatch(text, /bad name/);
  for (const line of text.trim().split("\n")) {
    assert.match(line, /^(# (HELP|TYPE) \w+ .+|[a-zA-Z_:][\w:]*(\{[^}]*\})? [-+\w.]+)$/, line);
  }
});

Deno.test("GET /monitor without a WebSocket upgrade answers 400", async () => {
  const res = await handlerFor(fake())(get("/monitor"));
  assert.equal(res.status, 400);
  assert.match((await res.json()).error, /WebSocket upgrade/);
});

// ---------------------------------------------------------------------------------------------
// Over a real port

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("over a real port: 127.0.0.1 only, secret required, hooks answered", async () => {
  const f = fake();
  f.obligations = [owed(5, "user", "ping")];
  const server = startControlServer({ port: 0, callbacks: f.callbacks });
  try {
    assert.match(server.secret, /^[0-9a-f]{64}$/);
    const base = `http://127.0.0.1:${server.port}`;
    const health = await fetch(`${base}/health`);
    assert.deepEqual(await health.json(), { ok: true });
    const denied = await fetch(`${base}/hooks/stop`, { method: "POST", body: "{}" });
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
    const res = await fetch(`${base}/hooks/stop`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.secret}` },
      body: JSON.stringify({ stop_hook_active: false }),
    });
    assert.equal((await res.json()).decision, "block");
    const big = await fetch(`${base}/hooks/stop`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.secret}` },
      body: new Uint8Array(MAX_BODY_BYTES + 10).fill(0x20),
    });
    assert.equal(big.status, 413);
    await big.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("over a real port: DENO_SERVE_ADDRESS cannot move or duplicate the listener", async () => {
  for (const override of ["tcp:127.0.0.2:{port}", "duplicate,tcp:127.0.0.1:{port}"]) {
    const port = freePort();
    Deno.env.set("DENO_SERVE_ADDRESS", override.replace("{port}", String(port)));
    const server = startControlServer({ port: 0, callbacks: fake().callbacks });
    try {
      assert.equal(Deno.env.get("DENO_SERVE_ADDRESS"), undefined);
      assert.notEqual(server.port, port);
      const health = await fetch(`http://127.0.0.1:${server.port}/health`);
      assert.deepEqual(await health.json(), { ok: true });
      await assert.rejects(
        fetch(`http://127.0.0.1:${port}/health`),
        "nothing listens on the override",
      );
    } finally {
      Deno.env.delete("DENO_SERVE_ADDRESS");
      await server.close();
    }
  }
});

Deno.test("over a real port: /monitor streams hello, published events and log entries", async () => {
  await withLogs(async () => {
    const f = fake();
    const server = startControlServer({ port: 0, callbacks: f.callbacks });
    const url = `ws://127.0.0.1:${server.port}/monitor`;
    try {
      const refused = await fetch(url.replace("ws:", "http:"), {
        headers: { upgrade: "websocket", connection: "upgrade" },
      });
      assert.equal(refused.status, 401);
      await refused.body?.cancel();

      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${server.secret}` } });
      const frames: Array<Record<string, unknown>> = [];
      const waiters: Array<() => void> = [];
      ws.onmessage = (e) => {
        frames.push(JSON.parse(e.data));
        waiters.splice(0).forEach((w) => w());
      };
      const until = async (test: () => boolean) => {
        while (!test()) await new Promise<void>((r) => waiters.push(r));
      };
      await until(() => frames.length >= 1);
      assert.equal(frames[0]!["type"], "hello");
      assert.equal((frames[0]!["status"] as Record<string, unknown>)["agentId"], "a1");
      assert.equal(server.handler.monitorClients, 1);

      server.publish({ type: "outbox", pending: 3, poisoned: 0 });
      await until(() => frames.some((fr) => fr["type"] === "outbox"));
      const outbox = frames.find((fr) => fr["type"] === "outbox")!;
      assert.equal(outbox["pending"], 3);
      assert.equal(typeof outbox["at"], "number");

      const fatal = await fetch(`http://127.0.0.1:${server.port}/hook-fatal`, {
        method: "POST",
        headers: { authorization: `Bearer ${server.secret}` },
        body: JSON.stringify({ hook: "pre-compact", error: "boom" }),
      });
      await fatal.body?.cancel();
      await until(() => frames.some((fr) => fr["type"] === "log" && fr["level"] === "fatal"));
      await until(() => frames.some((fr) => fr["type"] === "hook-fatal"));
      const log = frames.find((fr) => fr["type"] === "log" && fr["level"] === "fatal")!;
      assert.match(String(log["message"]), /hook pre-compact failed: boom/);
      const closed = new Promise((r) => (ws.onclose = r));
      ws.close();
      await closed;
    } finally {
      await server.close();
    }
  });
});

Deno.test("over a real port: a port in use is a clear error, and nothing is left open", () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (listener.addr as Deno.NetAddr).port;
    assert.throws(
      () => startControlServer({ port, callbacks: fake().callbacks }),
      new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${port}`),
    );
  } finally {
    listener.close();
  }
});
