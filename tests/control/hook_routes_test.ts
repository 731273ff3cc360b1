/**
 * The hook endpoints (src/control/hook_routes.ts): the stop decision from the snapshot, the
 * permission answer within the budget, every event handed to the runner, and `/hook-fatal`.
 */
import assert from "node:assert/strict";
import { createControlHandler, HOOK_EVENTS, type HookEvent } from "../../src/control/mod.ts";
import { createPermissionDecider } from "../../src/control/permission_policy.ts";
import type { PermissionDecision } from "../../src/types.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { waitFor } from "../support/wait.ts";
import { fake, get, handlerFor, owed, post, SECRET, withLogs } from "./control_fake.ts";

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
    assert.equal(r3.status, 503, "a report that could not be stored is never acknowledged");
    assert.match((await r3.json()).error, /could not be stored durably/);
    for (const [stored, status] of [[true, 200], [false, 503]] as const) {
      const later = fake({ onHookFatal: () => Promise.resolve(stored) });
      const r = await handlerFor(later)(post("/hook-fatal", { hook: "x", error: "y" }));
      assert.equal(r.status, status, `stored ${stored}`);
      await r.body?.cancel();
    }
  });
});

Deno.test("the hook budget runs on the injected clock: the fallback comes when it is spent", async () => {
  const clock = new FakeClock();
  let asked = false;
  const f = fake({
    decidePermission: () => {
      asked = true;
      return new Promise<PermissionDecision>(() => {});
    },
  });
  const h = createControlHandler({ secret: SECRET, callbacks: f.callbacks, clock });
  const answering = h(post("/hooks/permission-request", { tool_name: "Edit" }));
  // The body's read deadline (also on the clock) is cleared once the body is read.
  await waitFor("the budget's timer to be armed", () => asked && clock.pending === 1);
  clock.tick(1_499);
  assert.equal(clock.pending, 1, "1,499 ms into a 1,500 ms budget the hook still waits");
  clock.tick(1);
  const answer = await (await answering).json();
  assert.equal(answer.hookSpecificOutput.decision.behavior, "deny");
  assert.match(answer.hookSpecificOutput.decision.message, /no decision within 1500 ms/);
  assert.equal(clock.pending, 0);
  const status = await (await h(get("/status"))).json();
  assert.equal(status.uptimeMs, clock.now() - 1_000, "the time comes from the clock too");
});
