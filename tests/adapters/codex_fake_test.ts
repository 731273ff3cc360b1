/**
 * The Codex adapter against a scripted app-server process (tests/fixtures/fake_codex_app_server.ts):
 * the behaviour the real CLI cannot be made to show on demand, plus the adapter's pure helpers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createCodexAdapter } from "../../src/adapters/codex.ts";
import {
  argsSetConfig,
  type CodexAdapterOptions,
  codexExecutable,
  codexTurnText,
} from "../../src/adapters/codex_config.ts";
import type { ProviderAdapter, SessionEvent, Spawner } from "../../src/adapters/adapter.ts";
import { chat, codexContext, recorder } from "../support/codex_harness.ts";
import type { PermissionDecision, PermissionRequest } from "../../src/types.ts";

const FAKE = fileURLToPath(new URL("../fixtures/fake_codex_app_server.ts", import.meta.url));

/** Runs the fake app-server whatever executable the adapter asks for; records what it asked. */
function fakeSpawner(spawned: { command: string; args: string[] }[]): Spawner {
  return (command, options) => {
    spawned.push({ command, args: [...(options.args ?? [])] });
    return new Deno.Command(Deno.execPath(), {
      ...options,
      args: ["run", "-A", "--no-config", FAKE, ...(options.args ?? [])],
    }).spawn();
  };
}

interface FakeRun {
  adapter: ProviderAdapter;
  rec: ReturnType<typeof recorder>;
  ctx: ReturnType<typeof codexContext>;
  spawned: { command: string; args: string[] }[];
  /** The JSON-RPC messages the fake received. */
  received(): Promise<Record<string, unknown>[]>;
}

async function withFake(
  options: {
    adapter?: CodexAdapterOptions;
    decide?: (r: PermissionRequest) => PermissionDecision | Promise<PermissionDecision>;
    resumeId?: string;
    args?: string[];
    firstPromptNotes?: string;
  },
  body: (run: FakeRun) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "codex-fake-" });
  const log = join(dir, "received.jsonl");
  const rec = recorder();
  const spawned: { command: string; args: string[] }[] = [];
  const ctx = {
    ...codexContext({ cwd: dir, stateDir: dir, env: { FAKE_CODEX_LOG: log } }, options),
    spawn: fakeSpawner(spawned),
  };
  const adapter = createCodexAdapter(ctx, rec.sink, { bin: "codex-fake", ...options.adapter });
  const received = async () =>
    (await Deno.readTextFile(log).catch(() => "")).split("\n").filter(Boolean).map((l) =>
      JSON.parse(l)
    );
  try {
    await adapter.start();
    await body({ adapter, rec, ctx, spawned, received });
  } finally {
    await adapter.stop({ timeoutMs: 3_000 });
    await Deno.remove(dir, { recursive: true });
  }
}

const turnEnd = (e: SessionEvent) => e.type === "turn-end";

Deno.test("codex fake: start spawns `app-server` with the provider args and opens a thread", async () => {
  await withFake({ args: ["--flag"] }, async (r) => {
    assert.deepEqual(r.spawned, [{ command: "codex-fake", args: ["app-server", "--flag"] }]);
    assert.deepEqual(r.rec.events, [{ type: "session-id", id: "thread-1" }]);
    assert.deepEqual(r.rec.statuses, ["idle"]);
    const got = await r.received();
    assert.deepEqual(got.map((m) => m.method), ["initialize", "initialized", "thread/start"]);
    assert.equal(
      (got[0]?.params as { clientInfo: { name: string } }).clientInfo.name,
      "agent-relay-runner",
    );
    assert.deepEqual(got[2]?.params, {
      cwd: r.ctx.cwd,
      approvalPolicy: "on-request",
      sandbox: "workspace-write",
    });
    assert.ok(!got.some((m) => "jsonrpc" in m));
  });
});

Deno.test("codex fake: approval policy and sandbox from the provider args are not overridden", async () => {
  await withFake({
    args: ["-c", "approval_policy=never", "--config=sandbox_mode=danger-full-access"],
    adapter: { approvalPolicy: "untrusted", sandbox: "read-only" },
  }, async (r) => {
    const start = (await r.received()).find((m) => m.method === "thread/start");
    assert.deepEqual(start?.params, { cwd: r.ctx.cwd });
  });
  await withFake({ adapter: { approvalPolicy: "untrusted", sandbox: "read-only" } }, async (r) => {
    const start = (await r.received()).find((m) => m.method === "thread/start");
    assert.deepEqual(start?.params, {
      cwd: r.ctx.cwd,
      approvalPolicy: "untrusted",
      sandbox: "read-only",
    });
  });
});

Deno.test("codex fake: a saved thread is resumed; a dead one is dropped for a new thread", async () => {
  await withFake({ resumeId: "thread-77" }, async (r) => {
    assert.deepEqual(r.rec.events, [{ type: "session-id", id: "thread-77" }]);
    const resume = (await r.received()).find((m) => m.method === "thread/resume");
    assert.equal((resume?.params as { threadId: string }).threadId, "thread-77");
  });
  await withFake({ resumeId: "dead-1" }, async (r) => {
    assert.deepEqual(r.rec.events, [{ type: "session-id", id: "thread-1" }]);
    assert.deepEqual((await r.received()).map((m) => m.method), [
      "initialize",
      "initialized",
      "thread/resume",
      "thread/start",
    ]);
    await r.adapter.deliver([chat(1, "hi")]);
    assert.deepEqual(await r.rec.next(turnEnd), { type: "turn-end", ok: true });
  });
});

Deno.test("codex fake: turn events in order: reasoning, steps, usage summed, last message answers", async () => {
  await withFake({}, async (r) => {
    await r.adapter.deliver([chat(4, "CHATTY")]);
    await r.rec.next(turnEnd);
    assert.deepEqual(r.rec.events.slice(1), [
      { type: "consumed", messageIds: [4] },
      { type: "reasoning", text: "thinking about it" },
      { type: "step", kind: "command", text: "ls", tool: "shell" },
      { type: "step", kind: "tool_result", text: "completed (exit 0): ls\na\nb\n", tool: "shell" },
      { type: "step", kind: "message", text: "let me look" },
      { type: "response", text: "two files" },
      {
        type: "turn-end",
        ok: true,
        usage: { inputTokens: 12, outputTokens: 7, cacheReadTokens: 1, cacheWriteTokens: 2 },
      },
    ]);
  });
});

Deno.test("codex fake: a file-change approval is asked of the policy and answered", async () => {
  for (const decision of ["allow", "deny"] as const) {
    await withFake({ decide: () => ({ decision }) }, async (r) => {
      await r.adapter.deliver([chat(1, "FILE_CHANGE")]);
      await r.rec.next(turnEnd);
      assert.deepEqual(r.ctx.permissionRequests.map((p) => ({ ...p, requestId: "x" })), [{
        requestId: "x",
        provider: "codex",
        tool: "apply_patch",
        input: {
          changes: [{ path: "notes.txt", kind: { type: "add" }, diff: "+hello\n" }],
          reason: "write notes",
          grantRoot: null,
        },
      }]);
      const answer = decision === "allow" ? "accept" : "decline";
      assert.deepEqual(r.rec.events.find((e) => e.type === "response"), {
        type: "response",
        text: `decision=${answer}`,
      });
      assert.deepEqual(r.rec.events.find((e) => e.type === "step" && e.kind === "file_change"), {
        type: "step",
        kind: "file_change",
        text: `${decision === "allow" ? "completed" : "declined"}: add notes.txt`,
        tool: "apply_patch",
      });
    });
  }
});

Deno.test("codex fake: a failing or silent permission policy declines, never hangs", async () => {
  await withFake({ decide: () => Promise.reject(new Error("policy exploded")) }, async (r) => {
    await r.adapter.deliver([chat(1, "FILE_CHANGE")]);
    await r.rec.next(turnEnd);
    assert.ok(r.rec.events.some((e) => e.type === "response" && e.text === "decision=decline"));
    const step = r.rec.events.find((e) => e.type === "step" && e.kind === "permission");
    assert.match(step?.type === "step" ? step.text : "", /deny apply_patch.*policy exploded/);
  });
  await withFake({
    decide: () => new Promise<PermissionDecision>(() => {}),
    adapter: { permissionTimeoutMs: 100 },
  }, async (r) => {
    await r.adapter.deliver([chat(1, "FILE_CHANGE")]);
    await r.rec.next(turnEnd);
    assert.ok(r.rec.events.some((e) => e.type === "response" && e.text === "decision=decline"));
  });
});

Deno.test("codex fake: a request the runner does not serve gets an error answer", async () => {
  await withFake({}, async (r) => {
    await r.adapter.deliver([chat(1, "UNSERVED")]);
    await r.rec.next(turnEnd);
    const response = r.rec.events.find((e) => e.type === "response");
    assert.match(response?.type === "response" ? response.text : "", /-32601/);
  });
});

Deno.test("codex fake: a line that is not JSON is skipped and the turn completes", async () => {
  await withFake({}, async (r) => {
    await r.adapter.deliver([chat(1, "GARBAGE")]);
    assert.deepEqual(await r.rec.next(turnEnd), { type: "turn-end", ok: true });
    assert.ok(r.rec.events.some((e) => e.type === "response" && e.text === "still fine"));
    assert.ok(r.adapter.pid);
  });
});

Deno.test("codex fake: a delivery during a turn steers it, one turn end for both", async () => {
  await withFake({}, async (r) => {
    await r.adapter.deliver([chat(1, "SILENT")]);
    await r.rec.status("busy");
    await r.adapter.deliver([chat(2, "also this")]);
    await r.rec.next(turnEnd);
    assert.deepEqual(r.rec.events.slice(1), [
      { type: "consumed", messageIds: [1] },
      { type: "consumed", messageIds: [2] },
      { type: "response", text: "steered: also this" },
      { type: "turn-end", ok: true },
    ]);
    assert.deepEqual(r.rec.statuses, ["idle", "busy", "idle"]);
  });
});

Deno.test("codex fake: a silent turn is interrupted by the stall watchdog", async () => {
  // Long enough that the second turn's ordinary gaps between events on a loaded machine are not
  // a stall too: with 150 ms, a 300 ms pause of the app-server interrupted the second turn.
  await withFake({ adapter: { stallTimeoutMs: 2_000 } }, async (r) => {
    await r.adapter.deliver([chat(1, "SILENT")]);
    assert.deepEqual(await r.rec.next(turnEnd), {
      type: "turn-end",
      ok: false,
      error: "Turn interrupted",
    });
    assert.deepEqual(r.rec.statuses, ["idle", "busy", "idle"]);
    assert.ok((await r.received()).some((m) => m.method === "turn/interrupt"));
    // The thread goes on. Count from before the delivery: the turn may end before it returns.
    const mark = r.rec.events.length;
    await r.adapter.deliver([chat(2, "next")]);
    assert.deepEqual(await r.rec.next(turnEnd, { from: mark }), {
      type: "turn-end",
      ok: true,
    });
  });
});

Deno.test("codex fake: an interrupt that is ignored kills codex, reported as an unexpected exit", async () => {
  await withFake({ adapter: { interruptTimeoutMs: 150 } }, async (r) => {
    await r.adapter.deliver([chat(1, "DEAF")]);
    await r.rec.status("busy");
    await r.adapter.interrupt();
    const end = await r.rec.next(turnEnd);
    assert.equal(end.type === "turn-end" && end.ok, false);
    assert.match(end.type === "turn-end" ? end.error ?? "" : "", /Codex exited/);
    const exit = await r.rec.exit;
    assert.deepEqual(exit, { code: 137, signal: "SIGKILL", expected: false });
    assert.equal(r.adapter.pid, undefined);
    await assert.rejects(() => r.adapter.deliver([chat(2, "late")]), /not running/);
  });
});

Deno.test("codex fake: interrupt without a turn does nothing", async () => {
  await withFake({}, async (r) => {
    await r.adapter.interrupt();
    assert.ok(!(await r.received()).some((m) => m.method === "turn/interrupt"));
  });
});

Deno.test("codex fake: the first-prompt notes go on the first turn of a process only", async () => {
  await withFake({ firstPromptNotes: "NOTES" }, async (r) => {
    await r.adapter.deliver([chat(1, "a")]);
    await r.rec.next(turnEnd);
    const mark = r.rec.events.length;
    await r.adapter.deliver([chat(2, "b")]);
    await r.rec.next(turnEnd, { from: mark });
    const turns = (await r.received()).filter((m) => m.method === "turn/start");
    const texts = turns.map((t) => (t.params as { input: { text: string }[] }).input[0]?.text);
    assert.deepEqual(texts, [
      "NOTES\n\n[relay message #1 from alice]\na",
      "[relay message #2 from alice]\nb",
    ]);
  });
});

Deno.test("codex fake: an executable that cannot start, or exits at once, fails start clearly", async () => {
  const rec = recorder();
  const ctx = codexContext({ cwd: Deno.cwd(), stateDir: Deno.cwd(), env: {} });
  const missing = createCodexAdapter(ctx, rec.sink, { bin: "/nonexistent/codex-binary" });
  await assert.rejects(() => missing.start(), /"\/nonexistent\/codex-binary" could not be started/);

  const rec2 = recorder();
  const quitter: Spawner = (_command, options) =>
    new Deno.Command(Deno.execPath(), { ...options, args: ["eval", "Deno.exit(3)"] }).spawn();
  const quits = createCodexAdapter({ ...ctx, spawn: quitter }, rec2.sink, { bin: "codex" });
  await assert.rejects(() => quits.start(), /Codex app-server did not start: .*closed/);
  assert.equal((await rec2.exit).code, 3);
  await quits.stop();
});

Deno.test("codex helpers: executable lookup, config detection, turn text", () => {
  assert.equal(codexExecutable({}), "codex");
  assert.equal(codexExecutable({ AGENT_RELAY_CODEX_BIN: "  " }), "codex");
  assert.equal(codexExecutable({ AGENT_RELAY_CODEX_BIN: "/opt/codex" }), "/opt/codex");

  assert.equal(argsSetConfig(["-c", "approval_policy=never"], "approval_policy"), true);
  assert.equal(argsSetConfig(["-capproval_policy=never"], "approval_policy"), true);
  assert.equal(argsSetConfig(["--config", "sandbox_mode = 'read-only'"], "sandbox_mode"), true);
  assert.equal(argsSetConfig(["--config=sandbox_mode=x"], "sandbox_mode"), true);
  assert.equal(argsSetConfig(["-c", "model=x", "approval_policy=never"], "approval_policy"), false);
  assert.equal(argsSetConfig(["-c"], "approval_policy"), false);

  assert.equal(codexTurnText([chat(1, "hi")]), "[relay message #1 from alice]\nhi");
  assert.equal(
    codexTurnText([chat(1, "hi"), chat(2, "yo", "bob")], "N"),
    "N\n\n[relay message #1 from alice]\nhi\n\n[relay message #2 from bob]\nyo",
  );
});

Deno.test("codex fake: a failed turn ends once with Codex's error, in one sentence", async () => {
  await withFake({}, async (r) => {
    await r.adapter.deliver([chat(1, "FAIL")]);
    const end = await r.rec.next(turnEnd);
    assert.deepEqual(end, {
      type: "turn-end",
      ok: false,
      error: "We’re currently experiencing high demand, which may cause temporary errors.",
    });
    assert.deepEqual(r.rec.statuses, ["idle", "busy", "error"]);
    const mark = r.rec.events.length;
    await r.adapter.deliver([chat(2, "after")]);
    assert.deepEqual(await r.rec.next(turnEnd, { from: mark }), { type: "turn-end", ok: true });
    assert.equal(r.rec.events.filter(turnEnd).length, 2);
  });
});

Deno.test("codex fake: an error Codex will not retry ends a turn Codex leaves open", async () => {
  await withFake({ adapter: { failGraceMs: 300 } }, async (r) => {
    await r.adapter.deliver([chat(1, "FAIL_OPEN")]);
    const end = await r.rec.next(turnEnd);
    assert.deepEqual(end, {
      type: "turn-end",
      ok: false,
      error: "We’re currently experiencing high demand, which may cause temporary errors.",
    });
    assert.equal(r.rec.statuses.at(-1), "error");
    // The next delivery starts a turn of its own (the fake's open turn is steered) and ends once.
    const mark = r.rec.events.length;
    await r.adapter.deliver([chat(2, "after")]);
    const next = await r.rec.next(turnEnd, { from: mark });
    assert.equal(next.type === "turn-end" && next.ok, true);
    assert.equal(r.rec.events.filter(turnEnd).length, 2);
    assert.equal(r.rec.statuses.at(-1), "idle");
  });
});
