/**
 * The Codex adapter on the real `codex app-server` (pinned, installed by
 * `scripts/install_providers.sh codex`), inside a loopback-only network namespace, against the
 * mock Responses API (tests/support/codex_sandbox.ts). Skipped, saying why, when the CLI is not
 * installed.
 */
import assert from "node:assert/strict";
import { userTexts } from "../support/mock_openai.ts";
import { join } from "node:path";
import { createCodexAdapter } from "../../src/adapters/codex.ts";
import type { ProviderAdapter, SessionEvent } from "../../src/adapters/adapter.ts";
import {
  type CodexSandbox,
  codexUnavailableReason,
  createCodexSandbox,
} from "../support/codex_sandbox.ts";
import { chat, codexContext, recorder } from "../support/codex_harness.ts";
import type { PermissionDecision, PermissionRequest } from "../../src/types.ts";

const unavailable = codexUnavailableReason();
if (unavailable) {
  // deno-lint-ignore no-console
  console.log(`codex adapter tests on the real CLI skipped: ${unavailable}`);
}

interface Run {
  sandbox: CodexSandbox;
  adapter: ProviderAdapter;
  rec: ReturnType<typeof recorder>;
  ctx: ReturnType<typeof codexContext>;
}

async function withCodex(
  options: {
    decide?: (r: PermissionRequest) => PermissionDecision;
    resumeId?: string;
    firstPromptNotes?: string;
    approvalPolicy?: "untrusted" | "on-request" | "never";
    sandbox?: CodexSandbox;
  },
  body: (run: Run) => Promise<void>,
): Promise<void> {
  const sandbox = options.sandbox ?? await createCodexSandbox();
  const rec = recorder();
  const ctx = codexContext({ cwd: sandbox.cwd, stateDir: sandbox.dir, env: sandbox.env }, options);
  const adapter = createCodexAdapter(ctx, rec.sink, {
    bin: sandbox.bin,
    approvalPolicy: options.approvalPolicy ?? "on-request",
    sandbox: "workspace-write",
  });
  try {
    await adapter.start();
    await body({ sandbox, adapter, rec, ctx });
  } finally {
    await adapter.stop({ timeoutMs: 5_000 });
    if (!options.sandbox) await sandbox.close();
  }
}

const turnEnd = (e: SessionEvent) => e.type === "turn-end";

Deno.test({
  name: "codex (real CLI): a delivered message gets a response, usage and consumed report",
  ignore: unavailable !== undefined,
  async fn() {
    await withCodex({ firstPromptNotes: "[agent-relay] NOTES FOR THE FIRST TURN" }, async (r) => {
      const sessionId = r.rec.events.find((e) => e.type === "session-id");
      assert.ok(sessionId && sessionId.type === "session-id" && sessionId.id.length > 10);
      assert.deepEqual(r.rec.statuses, ["idle"]);
      assert.ok(r.adapter.pid);

      r.sandbox.mock.enqueue({
        type: "text",
        text: "hello alice",
        usage: { inputTokens: 40, outputTokens: 5, cachedTokens: 8 },
      });
      await r.adapter.deliver([chat(7, "hi codex")]);
      const end = await r.rec.next(turnEnd);
      assert.deepEqual(end, {
        type: "turn-end",
        ok: true,
        usage: { inputTokens: 40, outputTokens: 5, cacheReadTokens: 8, cacheWriteTokens: 0 },
      });
      const types = r.rec.events.map((e) => e.type);
      assert.deepEqual(types, ["session-id", "consumed", "response", "turn-end"]);
      assert.deepEqual(r.rec.events[1], { type: "consumed", messageIds: [7] });
      assert.deepEqual(r.rec.events[2], { type: "response", text: "hello alice" });
      assert.deepEqual(r.rec.statuses, ["idle", "busy", "idle"]);

      const request = await r.sandbox.mock.responsesRequest(0);
      const texts = userTexts(request.body);
      assert.equal(
        texts.at(-1),
        "[agent-relay] NOTES FOR THE FIRST TURN\n\n[relay message #7 from alice]\nhi codex",
      );
    });
  },
});

Deno.test({
  name: "codex (real CLI): two turns run on one thread, the notes only on the first",
  ignore: unavailable !== undefined,
  async fn() {
    await withCodex({ firstPromptNotes: "NOTES" }, async (r) => {
      r.sandbox.mock.enqueue({ type: "text", text: "first answer" });
      r.sandbox.mock.enqueue({ type: "text", text: "second answer" });
      await r.adapter.deliver([chat(1, "one")]);
      await r.rec.next(turnEnd);
      const mark = r.rec.events.length;
      await r.adapter.deliver([chat(2, "two", "bob"), chat(3, "three", "carol")]);
      await r.rec.next(turnEnd, { from: mark });
      assert.deepEqual(r.rec.events.slice(mark), [
        { type: "consumed", messageIds: [2, 3] },
        { type: "response", text: "second answer" },
        {
          type: "turn-end",
          ok: true,
          usage: { inputTokens: 11, outputTokens: 7, cacheReadTokens: 3, cacheWriteTokens: 0 },
        },
      ]);
      assert.equal(r.rec.events.filter((e) => e.type === "session-id").length, 1);
      const second = userTexts((await r.sandbox.mock.responsesRequest(1)).body);
      // The thread's history carries the first turn; the new message has no notes.
      assert.ok(second.includes("NOTES\n\n[relay message #1 from alice]\none"));
      assert.equal(
        second.at(-1),
        "[relay message #2 from bob]\ntwo\n\n[relay message #3 from carol]\nthree",
      );
      assert.deepEqual(r.rec.statuses, ["idle", "busy", "idle", "busy", "idle"]);
    });
  },
});

Deno.test({
  name: "codex (real CLI): interrupt ends a hanging turn, and the thread goes on",
  ignore: unavailable !== undefined,
  async fn() {
    await withCodex({}, async (r) => {
      r.sandbox.mock.enqueue({ type: "hang" }, { type: "text", text: "after the interrupt" });
      await r.adapter.deliver([chat(1, "take your time")]);
      await r.sandbox.mock.responsesRequest(0);
      await r.rec.status("busy");
      await r.adapter.interrupt();
      const end = await r.rec.next(turnEnd);
      assert.deepEqual(end, { type: "turn-end", ok: false, error: "Turn interrupted" });
      assert.equal(r.rec.statuses.at(-1), "idle");
      const mark = r.rec.events.length;
      await r.adapter.deliver([chat(2, "again")]);
      assert.deepEqual(await r.rec.next(turnEnd, { from: mark }), {
        type: "turn-end",
        ok: true,
        usage: { inputTokens: 11, outputTokens: 7, cacheReadTokens: 3, cacheWriteTokens: 0 },
      });
      assert.ok(
        r.rec.events.slice(mark).some((e) =>
          e.type === "response" && e.text === "after the interrupt"
        ),
      );
    });
  },
});

Deno.test({
  name: "codex (real CLI): a delivery during a turn goes into that turn",
  ignore: unavailable !== undefined,
  async fn() {
    await withCodex({}, async (r) => {
      r.sandbox.mock.enqueue({ type: "hang" }, { type: "text", text: "both answered" });
      await r.adapter.deliver([chat(1, "first")]);
      await r.sandbox.mock.responsesRequest(0);
      await r.adapter.deliver([chat(2, "second")]);
      await r.rec.next(turnEnd);
      assert.deepEqual(r.rec.events.slice(1).map((e) => e.type === "turn-end" ? "turn-end" : e), [
        { type: "consumed", messageIds: [1] },
        { type: "consumed", messageIds: [2] },
        { type: "response", text: "both answered" },
        "turn-end",
      ]);
      assert.deepEqual(r.rec.statuses, ["idle", "busy", "idle"]);
      const texts = userTexts((await r.sandbox.mock.responsesRequest(1)).body);
      assert.deepEqual(texts.slice(-2), [
        "[relay message #1 from alice]\nfirst",
        "[relay message #2 from alice]\nsecond",
      ]);
    });
  },
});

Deno.test({
  name: "codex (real CLI): a 500 from the model fails the turn, the next turn works",
  ignore: unavailable !== undefined,
  async fn() {
    await withCodex({}, async (r) => {
      r.sandbox.mock.enqueue({ type: "error", status: 500, message: "boom" });
      r.sandbox.mock.enqueue({ type: "text", text: "recovered" });
      await r.adapter.deliver([chat(1, "fail please")]);
      const end = await r.rec.next(turnEnd);
      assert.equal(end.type === "turn-end" && end.ok, false);
      assert.ok(end.type === "turn-end" && end.error && end.error.length > 0, JSON.stringify(end));
      assert.deepEqual(r.rec.statuses, ["idle", "busy", "error"]);
      // The message was taken in even though the model failed.
      assert.deepEqual(r.rec.events.find((e) => e.type === "consumed"), {
        type: "consumed",
        messageIds: [1],
      });
      const mark = r.rec.events.length;
      await r.adapter.deliver([chat(2, "try again")]);
      const next = await r.rec.next(turnEnd, { from: mark });
      assert.equal(next.type === "turn-end" && next.ok, true);
      assert.ok(
        r.rec.events.slice(mark).some((e) => e.type === "response" && e.text === "recovered"),
      );
      assert.deepEqual(r.rec.statuses, ["idle", "busy", "error", "busy", "idle"]);
    });
  },
});

Deno.test({
  name:
    "codex (real CLI): a 500 until Codex's retries are spent fails the turn once; then it recovers",
  ignore: unavailable !== undefined,
  async fn() {
    // Codex retries a failed model stream itself: 2 retries here, so the turn fails after 3
    // requests. Then the mock recovers.
    const sandbox = await createCodexSandbox();
    const config = join(sandbox.codexHome, "config.toml");
    const toml = await Deno.readTextFile(config);
    await Deno.writeTextFile(
      config,
      toml.replace("stream_max_retries = 0", "stream_max_retries = 2"),
    );
    try {
      await withCodex({ sandbox }, async (r) => {
        for (let i = 0; i < 3; i++) {
          r.sandbox.mock.enqueue({ type: "error", status: 500, message: "outage" });
        }
        r.sandbox.mock.enqueue({ type: "text", text: "recovered" });
        await r.adapter.deliver([chat(1, "are you there?")]);
        const end = await r.rec.next(turnEnd, { ms: 60_000 });
        assert.deepEqual(end, {
          type: "turn-end",
          ok: false,
          error: "We’re currently experiencing high demand, which may cause temporary errors.",
        });
        const responses = () => r.sandbox.mock.requests.filter((q) => q.path === "/v1/responses");
        assert.equal(responses().length, 3);
        assert.equal(r.rec.statuses.at(-1), "error");
        // The same message again (as the runner's turn retry sends it): answered this time.
        const mark = r.rec.events.length;
        await r.adapter.deliver([chat(1, "are you there?")]);
        assert.deepEqual(await r.rec.next(turnEnd, { from: mark }), {
          type: "turn-end",
          ok: true,
          usage: { inputTokens: 11, outputTokens: 7, cacheReadTokens: 3, cacheWriteTokens: 0 },
        });
        assert.ok(
          r.rec.events.slice(mark).some((e) => e.type === "response" && e.text === "recovered"),
        );
        assert.equal(r.rec.events.filter(turnEnd).length, 2);
        assert.equal(r.rec.statuses.at(-1), "idle");
      });
    } finally {
      await sandbox.close();
    }
  },
});

for (const decision of ["allow", "deny"] as const) {
  Deno.test({
    name: `codex (real CLI): a command approval is answered by the policy (${decision})`,
    ignore: unavailable !== undefined,
    async fn() {
      await withCodex({
        approvalPolicy: "untrusted",
        decide: () => ({ decision }),
      }, async (r) => {
        const file = `made-by-${decision}.txt`;
        r.sandbox.mock.enqueue(
          { type: "function_call", name: "exec_command", arguments: { cmd: `touch ${file}` } },
          { type: "text", text: "finished" },
        );
        await r.adapter.deliver([chat(1, "make a file")]);
        const end = await r.rec.next(turnEnd);
        assert.equal(end.type === "turn-end" && end.ok, true, JSON.stringify(end));

        assert.equal(r.ctx.permissionRequests.length, 1);
        const asked = r.ctx.permissionRequests[0];
        assert.equal(asked?.provider, "codex");
        assert.equal(asked?.tool, "exec_command");
        assert.match(String((asked?.input as { command?: string }).command), /touch made-by-/);

        const exists = await Deno.stat(join(r.sandbox.cwd, file)).then(() => true, () => false);
        assert.equal(exists, decision === "allow");

        const steps = r.rec.events.filter((e) => e.type === "step");
        assert.deepEqual(steps.map((s) => s.type === "step" && s.kind), [
          "command",
          "permission",
          "tool_result",
        ]);
        const result = steps[2];
        assert.ok(result?.type === "step");
        if (decision === "allow") assert.match(result.text, /^completed \(exit 0\): /);
        else assert.match(result.text, /^declined: /);
        assert.deepEqual(r.rec.events.find((e) => e.type === "response"), {
          type: "response",
          text: "finished",
        });
        // The model saw the command's outcome.
        const followUp = (await r.sandbox.mock.responsesRequest(1)).body as { input: unknown[] };
        const output = followUp.input.find((i) =>
          (i as { type?: string }).type === "function_call_output"
        );
        assert.ok(output, "the second request carries the function_call_output");
      });
    },
  });
}

Deno.test({
  name: "codex (real CLI): a restart resumes the saved thread; a dead id starts a new one",
  ignore: unavailable !== undefined,
  async fn() {
    const sandbox = await createCodexSandbox();
    try {
      let threadId = "";
      await withCodex({ sandbox }, async (r) => {
        const e = r.rec.events.find((e) => e.type === "session-id");
        threadId = e?.type === "session-id" ? e.id : "";
        sandbox.mock.enqueue({ type: "text", text: "remembered" });
        await r.adapter.deliver([chat(1, "remember the word PELICAN")]);
        await r.rec.next(turnEnd);
      });
      assert.ok(threadId);

      await withCodex({ sandbox, resumeId: threadId }, async (r) => {
        assert.deepEqual(r.rec.events.filter((e) => e.type === "session-id"), [
          { type: "session-id", id: threadId },
        ]);
        sandbox.mock.enqueue({ type: "text", text: "PELICAN" });
        await r.adapter.deliver([chat(2, "which word?")]);
        await r.rec.next(turnEnd);
        const texts = userTexts((await sandbox.mock.responsesRequest(1)).body);
        assert.ok(texts.includes("[relay message #1 from alice]\nremember the word PELICAN"));
        assert.equal(texts.at(-1), "[relay message #2 from alice]\nwhich word?");
      });

      const dead = "01a21d7b-0000-7000-8000-000000000000";
      await withCodex({ sandbox, resumeId: dead }, async (r) => {
        const ids = r.rec.events.filter((e) => e.type === "session-id");
        assert.equal(ids.length, 1);
        const fresh = ids[0]?.type === "session-id" ? ids[0].id : "";
        assert.ok(fresh && fresh !== dead && fresh !== threadId);
        sandbox.mock.enqueue({ type: "text", text: "new thread" });
        await r.adapter.deliver([chat(3, "hello")]);
        assert.equal((await r.rec.next(turnEnd)).type, "turn-end");
        const texts = userTexts((await sandbox.mock.responsesRequest(2)).body);
        assert.ok(!texts.some((t) => t.includes("PELICAN")));
      });
    } finally {
      await sandbox.close();
    }
  },
});

Deno.test({
  name: "codex (real CLI): stop ends the process and reports an expected exit",
  ignore: unavailable !== undefined,
  async fn() {
    const sandbox = await createCodexSandbox();
    const rec = recorder();
    const ctx = codexContext({ cwd: sandbox.cwd, stateDir: sandbox.dir, env: sandbox.env });
    const adapter = createCodexAdapter(ctx, rec.sink, { bin: sandbox.bin });
    try {
      await adapter.start();
      const pid = adapter.pid;
      assert.ok(pid);
      // Room for a loaded machine: Codex exits by itself once its stdin closes.
      await adapter.stop({ timeoutMs: 15_000 });
      assert.deepEqual(await rec.exit, { code: 0, signal: null, expected: true });
      assert.equal(adapter.pid, undefined);
      await assert.rejects(() => adapter.deliver([chat(1, "late")]), /not running/);
    } finally {
      await adapter.stop();
      await sandbox.close();
    }
  },
});
