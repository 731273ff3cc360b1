/**
 * Tests of the Claude Code adapter: its arguments and environment, the adapter on a scripted CLI
 * (tests/fixtures/claude/fake_claude.ts) for the session-end insight, and on the real CLI inside
 * a loopback-only network namespace against the mock Anthropic API
 * (tests/support/claude_netns.ts explains the arrangement). The hook plugin's tests are in
 * claude_plugin_test.ts, the contract every adapter keeps in conformance_test.ts.
 *
 * The real-CLI tests are skipped, with a printed reason, only when the CLI is not installed
 * (`bash scripts/install_providers.sh claude`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  buildClaudeArgs,
  CLAUDE_BIN_ENV,
  claudeEnv,
  claudeExecutable,
  formatDelivery,
} from "../../src/adapters/claude_args.ts";
import { createClaudeAdapter, ResumeFailedError } from "../../src/adapters/claude.ts";
import { defaultSpawner } from "../../src/adapters/adapter.ts";
import type { PermissionRequest } from "../../src/types.ts";
import { getLogger } from "../../src/logger.ts";
import {
  createClaudeSession,
  message,
  MOCK_PORT_INSIDE,
  MOCK_SOCKET,
  Recorder,
} from "../support/claude_session.ts";
import { createClaudeSandbox } from "../support/claude_netns.ts";
import { type MockRule, type MockScript, startMockAnthropic } from "../support/mock_anthropic.ts";
import {
  alive,
  CLAUDE,
  descendants,
  exists,
  realTest,
  responses,
  SCRIPT,
  touchScript,
} from "./claude_real.ts";

Deno.test("claude: formatDelivery marks each message with id and sender, notes first", () => {
  const text = formatDelivery([message(1, "hello"), message(2, "second", "bob")], "NOTES");
  assert.equal(
    text,
    "NOTES\n\n[relay message #1 from alice]\nhello\n\n[relay message #2 from bob]\nsecond",
  );
  assert.equal(formatDelivery([message(3, "x")], "  "), "[relay message #3 from alice]\nx");
});

Deno.test("claude: arguments, environment and executable", () => {
  assert.deepEqual(
    buildClaudeArgs({ pluginDir: "/s/plugin", resumeId: "abc", args: ["--model", "m"] }, {
      permissionVia: "hook",
    }),
    [
      "-p",
      "--input-format",
      "stream-json",
      "--output-format",
      "stream-json",
      "--verbose",
      "--replay-user-messages",
      "--plugin-dir",
      "/s/plugin",
      "--resume",
      "abc",
      "--model",
      "m",
    ],
  );
  const stdio = buildClaudeArgs({ args: [] }, { permissionVia: "stdio" });
  assert.deepEqual(stdio.slice(-2), ["--permission-prompt-tool", "stdio"]);
  assert.ok(!stdio.includes("--resume"));
  assert.deepEqual(
    claudeEnv({ PATH: "/bin", AGENT_RELAY_TOKEN: "secret", CLAUDECODE: "1", X: undefined }, {
      AGENT_RELAY_RUNNER_PORT: "5",
    }),
    { PATH: "/bin", AGENT_RELAY_RUNNER_PORT: "5", CLAUDE_CODE_MAX_RETRIES: "6" },
  );
  // The user's own retry bound wins, from the runner's environment or the adapter's extras.
  assert.equal(claudeEnv({ CLAUDE_CODE_MAX_RETRIES: "10" }, {}).CLAUDE_CODE_MAX_RETRIES, "10");
  assert.equal(claudeEnv({}, { CLAUDE_CODE_MAX_RETRIES: "0" }).CLAUDE_CODE_MAX_RETRIES, "0");
  assert.equal(claudeExecutable(() => undefined), "claude");
  assert.equal(
    claudeExecutable((n) => n === CLAUDE_BIN_ENV ? " /opt/claude " : undefined),
    "/opt/claude",
  );
});

// =============================================================================================
// The session-end insight, on the scripted CLI

const FAKE_CLAUDE = fileURLToPath(new URL("../fixtures/claude/fake_claude.ts", import.meta.url));
const TRANSCRIPT = fileURLToPath(
  new URL("../fixtures/claude/transcript_tool_turn.jsonl", import.meta.url),
);

/** A Claude adapter on the scripted CLI, in a temp dir whose `project/` holds transcripts. */
async function withFakeClaude(
  fn: (
    s: { adapter: ReturnType<typeof createClaudeAdapter>; rec: Recorder; dir: string },
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "claude-fake-" });
  const rec = new Recorder();
  const adapter = createClaudeAdapter(
    {
      agentId: "agent-1",
      provider: "claude",
      cwd: dir,
      stateDir: dir,
      args: [],
      env: { FAKE_CLAUDE_PROJECT_DIR: join(dir, "project") },
      permissionPolicy: "deny",
      decidePermission: () => Promise.resolve({ decision: "deny" }),
      spawn: (_command, options) =>
        defaultSpawner(Deno.execPath(), {
          ...options,
          args: ["run", "-A", "--no-config", FAKE_CLAUDE, ...(options.args ?? [])],
        }),
      log: getLogger("claude-test"),
    },
    rec,
    { bin: "claude-fake", plugin: false },
  );
  try {
    await fn({ adapter, rec, dir });
  } finally {
    await adapter.stop({ timeoutMs: 3000 });
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("claude: a blocked Stop's feedback is no prompt; the turn ends once with the last answer", async () => {
  await withFakeClaude(async ({ adapter, rec }) => {
    await adapter.start();
    await adapter.deliver([message(1, "STOP_BLOCK please")]);
    await rec.turnEnds(1);
    // The runner mirrors the messages folded into the block itself: no prompt from the adapter.
    assert.deepEqual(rec.of("prompt"), []);
    assert.deepEqual(
      rec.events.map((e) => e.event).filter((e) => e.type !== "session-id"),
      [
        { type: "consumed", messageIds: [1] },
        { type: "step", kind: "text", text: "first answer" },
        { type: "response", text: "answer to the owed message" },
        {
          type: "turn-end",
          ok: true,
          usage: { inputTokens: 3, outputTokens: 2, costUsd: 0.0001 },
        },
      ],
    );
    assert.equal(rec.statuses.at(-1), "idle");
  });
});

Deno.test("claude: the SessionEnd hook's transcript becomes a context_ratio insight before stop resolves", async () => {
  await withFakeClaude(async ({ adapter, rec }) => {
    await adapter.start();
    adapter.onHook?.("session-end", { transcript_path: TRANSCRIPT, reason: "prompt_input_exit" });
    await adapter.stop({ timeoutMs: 3000 });
    const insights = rec.of("insight");
    assert.equal(insights.length, 1);
    assert.equal(insights[0]?.signal, "context_ratio");
    assert.deepEqual(insights[0]?.value, {
      ratio: 1,
      gatheringCalls: 1,
      totalToolCalls: 1,
      byTool: { Bash: 1 },
      endReason: "prompt_input_exit",
    });
    assert.equal((insights[0]?.outcome as { userPrompts: number }).userPrompts, 1);
  });
});

Deno.test("claude: without a path in the hook, the transcript is the one the stream or SessionStart named", async () => {
  await withFakeClaude(async ({ adapter, rec, dir }) => {
    await adapter.start();
    await adapter.deliver([message(1, "PING")]);
    await rec.turnEnds(1);
    // The stream named <project>/fake-session-1.jsonl.
    await Deno.mkdir(join(dir, "project"));
    await Deno.copyFile(TRANSCRIPT, join(dir, "project", "fake-session-1.jsonl"));
    adapter.onHook?.("session-end", {});
    await adapter.stop({ timeoutMs: 3000 });
    assert.equal(rec.of("insight").length, 1);
    assert.equal((rec.of("insight")[0]?.value as { endReason?: string }).endReason, undefined);
  });
  await withFakeClaude(async ({ adapter, rec }) => {
    await adapter.start();
    adapter.onHook?.("session-start", { transcript_path: TRANSCRIPT });
    adapter.onHook?.("session-end", { reason: "clear" });
    await adapter.stop({ timeoutMs: 3000 });
    assert.equal((rec.of("insight")[0]?.value as { endReason?: string }).endReason, "clear");
  });
});

Deno.test("claude: a FIFO as the transcript neither hangs the hook nor stop(), and makes no insight", async () => {
  await withFakeClaude(async ({ adapter, rec, dir }) => {
    const fifo = join(dir, "transcript.fifo");
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.equal(made.code, 0, "mkfifo");
    await adapter.start();
    const began = Date.now();
    adapter.onHook?.("session-end", { transcript_path: fifo });
    // Well under the stop's own grace, with room for a loaded machine: not waited out.
    await adapter.stop({ timeoutMs: 10_000 });
    assert.ok(Date.now() - began < 8_000, `stop took ${Date.now() - began} ms`);
    assert.deepEqual(rec.of("insight"), []);
    assert.deepEqual(rec.exits.map((e) => e.expected), [true]);
  });
});

// =============================================================================================
// The real CLI

/** The transcript of `sessionId` below `projects` (Claude names its folder after the cwd). */
async function findTranscript(projects: string, sessionId: string): Promise<string | undefined> {
  for await (const entry of Deno.readDir(projects)) {
    const path = join(projects, entry.name, `${sessionId}.jsonl`);
    if (entry.isDirectory && await exists(path)) return path;
  }
  return undefined;
}

realTest("a delivered message reaches the mock and its reply is the response", async () => {
  const s = await createClaudeSession({
    script: SCRIPT,
    adapter: { bin: CLAUDE!, plugin: false },
    context: { firstPromptNotes: "NOTES-FOR-FIRST-TURN" },
  });
  try {
    await s.adapter.start();
    assert.deepEqual(s.rec.statuses, ["starting", "idle"]);
    assert.ok(s.adapter.pid !== undefined);
    await s.adapter.deliver([message(1, "PING one"), message(2, "and two", "bob")]);
    await s.rec.turnEnds(1);

    const seen = s.mock.messageRequests();
    assert.equal(seen.length, 1);
    const prompt = seen[0]?.lastText ?? "";
    assert.ok(prompt.includes("NOTES-FOR-FIRST-TURN"), prompt);
    assert.ok(prompt.includes("[relay message #1 from alice]\nPING one"), prompt);
    assert.ok(prompt.includes("[relay message #2 from bob]\nand two"), prompt);
    assert.ok(prompt.indexOf("PING one") < prompt.indexOf("and two"));

    assert.deepEqual(s.rec.of("consumed"), [{ type: "consumed", messageIds: [1, 2] }]);
    assert.deepEqual(responses(s.rec), ["PONG from mock"]);
    const end = s.rec.of("turn-end")[0];
    assert.equal(end?.ok, true);
    assert.equal(end?.usage?.inputTokens, 12);
    assert.ok((end?.usage?.costUsd ?? 0) > 0);
    const sessionIds = s.rec.of("session-id");
    assert.equal(sessionIds.length, 1);
    // Claude keeps the transcript in its projects dir, named by the session id.
    const projects = join(s.sandbox.home, ".claude", "projects");
    const transcript = await findTranscript(projects, sessionIds[0]?.id ?? "?");
    assert.ok(transcript?.startsWith(projects), transcript);
    assert.ok(transcript?.endsWith(`${sessionIds[0]?.id}.jsonl`));
    assert.ok(await exists(transcript ?? ""), `transcript ${transcript} exists`);
    assert.deepEqual(s.rec.statuses, ["starting", "idle", "busy", "idle"]);
    // The response comes before the turn end; events come in order.
    const types = s.rec.events.map((e) => e.event.type);
    assert.ok(types.indexOf("response") < types.indexOf("turn-end"));

    // A second delivery: no notes again, same session.
    await s.adapter.deliver([message(3, "PING three")]);
    await s.rec.turnEnds(2);
    const second = s.mock.messageRequests()[1]?.lastText ?? "";
    assert.ok(second.includes("[relay message #3 from alice]\nPING three"), second);
    assert.ok(!second.includes("NOTES-FOR-FIRST-TURN"));
    assert.deepEqual(responses(s.rec), ["PONG from mock", "PONG from mock"]);
    assert.equal(s.rec.of("session-id").length, 1);

    await s.adapter.stop({ timeoutMs: 5000 });
    assert.deepEqual(s.rec.exits, [{ code: 0, signal: null, expected: true }]);
    assert.equal(s.adapter.pid, undefined);
    await assert.rejects(() => s.adapter.deliver([message(4, "late")]), /not running/);
  } finally {
    await s.close();
  }
});

realTest(
  "a Bash echo tool call produces tool steps; at session end the transcript measures it",
  async () => {
    const s = await createClaudeSession({
      script: SCRIPT,
      adapter: { bin: CLAUDE!, plugin: false },
    });
    try {
      await s.adapter.start();
      await s.adapter.deliver([message(10, "RUN-ECHO please")]);
      await s.rec.turnEnds(1);
      const events = s.rec.events.map((e) => e.event).filter((e) =>
        e.type === "step" || e.type === "reasoning" || e.type === "response"
      );
      assert.deepEqual(events, [
        { type: "reasoning", text: "I should run echo" },
        { type: "step", kind: "text", text: "Running it." },
        { type: "step", kind: "tool_use", tool: "Bash", text: "Bash: echo hello-from-tool" },
        { type: "step", kind: "tool_result", text: "hello-from-tool", tool: "Bash" },
        { type: "response", text: "The tool said hello." },
      ]);
      // The mock got the tool's real output back.
      assert.ok(s.mock.messageRequests().some((r) => r.lastText === "hello-from-tool"));
      // The SessionEnd hook without a path: the adapter reads the transcript the stream named.
      s.adapter.onHook?.("session-end", { reason: "other" });
      await s.adapter.stop({ timeoutMs: 5000 });
      const insight = s.rec.of("insight")[0];
      assert.ok(insight, "a context_ratio insight before stop() resolved");
      assert.equal(insight.signal, "context_ratio");
      assert.deepEqual(insight.value, {
        ratio: 1,
        gatheringCalls: 1,
        totalToolCalls: 1,
        byTool: { Bash: 1 },
        endReason: "other",
      });
      assert.equal((insight.outcome as { userPrompts: number }).userPrompts, 1);
    } finally {
      await s.close();
    }
  },
);

realTest("after a crash the saved session resumes with its history", async () => {
  const first = await createClaudeSession({
    script: SCRIPT,
    adapter: { bin: CLAUDE!, plugin: false },
  });
  let second: Awaited<ReturnType<typeof createClaudeSession>> | undefined;
  try {
    await first.adapter.start();
    await first.adapter.deliver([message(1, "PING remember-alpha")]);
    await first.rec.turnEnds(1);
    const sessionId = first.rec.of("session-id")[0]?.id;
    assert.ok(sessionId);
    Deno.kill(first.adapter.pid!, "SIGKILL"); // a crash
    await first.rec.waitFor("the exit", () => first.rec.exits.length === 1);
    assert.equal(first.rec.exits[0]?.expected, false);
    assert.equal(first.rec.exits[0]?.signal, "SIGKILL");

    second = await createClaudeSession({
      script: SCRIPT,
      adapter: { bin: CLAUDE!, plugin: false },
      sandbox: first.sandbox,
      mock: first.mock,
      context: { resumeId: sessionId },
    });
    await second.adapter.start();
    await second.adapter.deliver([message(2, "PING beta")]);
    await second.rec.turnEnds(1);
    assert.deepEqual(second.rec.of("session-id"), [{ type: "session-id", id: sessionId }]);
    assert.deepEqual(responses(second.rec), ["PONG from mock"]);
    // The resumed request carries the earlier conversation.
    const request = first.mock.messageRequests().at(-1)?.body as { messages: unknown[] };
    const history = JSON.stringify(request.messages);
    assert.ok(history.includes("remember-alpha"), "history holds the first message");
    assert.ok(history.indexOf("remember-alpha") < history.indexOf("PING beta"));
  } finally {
    await second?.adapter.stop({ timeoutMs: 3000 });
    await first.close();
  }
});

realTest("a dead resume id: a new session starts instead (default)", async () => {
  const dead = "0b6c3f0e-1111-4222-8333-444444444444";
  const s = await createClaudeSession({
    script: SCRIPT,
    adapter: { bin: CLAUDE!, plugin: false },
    context: { resumeId: dead },
  });
  try {
    await s.adapter.start();
    assert.ok(
      s.rec.diagnostics.some((d) =>
        d.includes(`could not resume session ${dead}`) && d.includes("No conversation found") &&
        d.endsWith("starting a new session")
      ),
      s.rec.diagnostics.join(" | "),
    );
    assert.deepEqual(s.rec.exits, []); // the failed attempt is not an exit of a running provider
    assert.deepEqual(s.rec.statuses, ["starting", "idle"]);
    await s.adapter.deliver([message(1, "PING fresh")]);
    await s.rec.turnEnds(1);
    const ids = s.rec.of("session-id").map((e) => e.id);
    assert.equal(ids.length, 1);
    assert.notEqual(ids[0], dead);
    assert.deepEqual(responses(s.rec), ["PONG from mock"]);
  } finally {
    await s.close();
  }
});

realTest("a dead resume id rejects start fast with ResumeFailedError when asked", async () => {
  const dead = "0b6c3f0e-1111-4222-8333-444444444444";
  const s = await createClaudeSession({
    script: SCRIPT,
    adapter: { bin: CLAUDE!, plugin: false, onResumeFailure: "reject" },
    context: { resumeId: dead },
  });
  try {
    const error = await s.adapter.start().then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof ResumeFailedError, String(error));
    assert.equal(error.resumeId, dead);
    assert.match(error.message, /No conversation found/);
    assert.equal(s.adapter.pid, undefined);
    assert.deepEqual(s.rec.exits, []); // start() reported it; no exit event on top
    assert.equal(s.mock.messageRequests().length, 0);
  } finally {
    await s.close();
  }
});

realTest("the watchdog interrupts a silent turn; the session goes on", async () => {
  const s = await createClaudeSession({
    script: SCRIPT,
    // The watchdog also guards the second turn: on a loaded machine the CLI and the model can be
    // silent for more than a second there (1.5 s was too short for a 1.8 s pause).
    adapter: { bin: CLAUDE!, plugin: false, watchdogMs: 5000, interruptTimeoutMs: 5000 },
  });
  try {
    await s.adapter.start();
    await s.adapter.deliver([message(1, "HANG-NOW please")]);
    await s.rec.turnEnds(1);
    const end = s.rec.of("turn-end")[0];
    assert.equal(end?.ok, false);
    assert.match(end?.error ?? "", /error_during_execution/);
    assert.ok(s.rec.diagnostics.some((d) => /while busy; interrupting/.test(d)));
    assert.deepEqual(responses(s.rec), []);
    assert.equal(s.rec.statuses.at(-1), "idle");
    assert.deepEqual(s.rec.exits, []);
    await s.adapter.deliver([message(2, "PING after")]);
    await s.rec.turnEnds(2);
    assert.deepEqual(responses(s.rec), ["PONG from mock"]);
  } finally {
    await s.close();
  }
});

realTest("the watchdog kills a frozen CLI whose interrupt goes unanswered", async () => {
  const s = await createClaudeSession({
    script: SCRIPT,
    // The watchdog must not fire before the test has frozen the CLI (it would interrupt a live
    // one, which answers): 3 s from the last output is room for a loaded machine.
    adapter: { bin: CLAUDE!, plugin: false, watchdogMs: 3000, interruptTimeoutMs: 800 },
  });
  try {
    await s.adapter.start();
    await s.adapter.deliver([message(1, "HANG-NOW please")]);
    await s.rec.waitFor("the partial text's turn", () => s.rec.of("consumed").length === 1);
    const real = Deno.realPathSync(CLAUDE!);
    const frozen = descendants(s.adapter.pid!).filter((pid) => {
      try {
        return Deno.realPathSync(`/proc/${pid}/exe`) === real;
      } catch {
        return false;
      }
    });
    assert.equal(frozen.length, 1, "found the CLI's process");
    Deno.kill(frozen[0]!, "SIGSTOP");
    await s.rec.waitFor("the exit", () => s.rec.exits.length === 1);
    assert.equal(s.rec.exits[0]?.expected, false);
    assert.ok(s.rec.diagnostics.some((d) => /killing it/.test(d)), s.rec.diagnostics.join("|"));
    assert.equal(s.adapter.pid, undefined);
    // The namespace went down with it: the frozen process is dead (gone, or a zombie until
    // the host's init reaps it).
    await s.rec.waitFor("the frozen process to die", () => !alive(frozen[0]!), 20_000);
  } finally {
    await s.close();
  }
});

realTest("an API error ends the turn not ok, and the session goes on", async () => {
  const s = await createClaudeSession({
    script: {
      rules: [
        {
          match: "BAD-REQUEST",
          reply: [{
            error: { status: 400, type: "invalid_request_error", message: "mock rejects it" },
          }],
        },
        { match: "PING", reply: [{ text: "PONG from mock" }] },
      ],
    },
    adapter: { bin: CLAUDE!, plugin: false },
  });
  try {
    await s.adapter.start();
    await s.adapter.deliver([message(1, "BAD-REQUEST please")]);
    await s.rec.turnEnds(1);
    const end = s.rec.of("turn-end")[0];
    assert.equal(end?.ok, false);
    assert.match(end?.error ?? "", /API Error: 400 mock rejects it/);
    assert.deepEqual(responses(s.rec), []);
    assert.equal(s.rec.statuses.at(-1), "idle");
  } finally {
    await s.close();
  }
});

realTest(
  "a 500 until Claude's retries are spent fails the turn once; then it recovers",
  async () => {
    // Claude retries a 500 itself: 2 retries here (the sandbox's setting; the adapter's default
    // is 6), so the turn fails after 3 requests. Then the mock recovers.
    const sandbox = await createClaudeSandbox({
      forwards: [{ port: MOCK_PORT_INSIDE, socket: MOCK_SOCKET }],
      env: { CLAUDE_CODE_MAX_RETRIES: "2" },
    });
    const failing: MockRule = {
      match: "OUTAGE",
      reply: [{ error: { status: 500, type: "api_error", message: "mock outage" } }],
    };
    const script: MockScript = { rules: [failing], fallback: [{ text: "recovered" }] };
    let failed = 0;
    const mock = await startMockAnthropic(script, {
      path: join(sandbox.sockets, MOCK_SOCKET),
      onRequest: (request) => {
        if (!request.lastText?.includes("OUTAGE") || script.rules.length === 0) return;
        if (++failed === 3) queueMicrotask(() => script.rules.splice(0)); // this one still fails
      },
    });
    const spawnedEnv: Record<string, string>[] = [];
    const s = await createClaudeSession({
      script,
      sandbox,
      mock,
      adapter: { bin: CLAUDE!, plugin: false },
      context: {
        spawn: (command, options) => {
          spawnedEnv.push(options.env ?? {});
          return sandbox.spawn(command, options);
        },
      },
    });
    try {
      await s.adapter.start();
      assert.equal(spawnedEnv[0]?.CLAUDE_CODE_MAX_RETRIES, "6", "the adapter bounds the retries");
      await s.adapter.deliver([message(1, "OUTAGE please")]);
      await s.rec.turnEnds(1, 60_000);
      const end = s.rec.of("turn-end")[0];
      assert.equal(end?.ok, false);
      // One sentence: Claude's paragraph cut after its first sentence.
      assert.equal(end?.error, "api_error: API Error: 500 mock outage.");
      assert.equal(s.mock.messageRequests().length, 3);
      assert.deepEqual(responses(s.rec), []);
      assert.equal(s.rec.statuses.at(-1), "idle");
      // The same message again (as the runner's turn retry sends it): answered this time.
      await s.adapter.deliver([message(1, "OUTAGE please")]);
      await s.rec.turnEnds(2);
      assert.deepEqual(s.rec.of("turn-end").map((e) => e.ok), [false, true]);
      assert.deepEqual(responses(s.rec), ["recovered"]);
      assert.deepEqual(s.rec.of("consumed"), [
        { type: "consumed", messageIds: [1] },
        { type: "consumed", messageIds: [1] },
      ]);
      assert.equal(s.rec.statuses.at(-1), "idle");
      assert.deepEqual(s.rec.exits, []);
    } finally {
      await s.close();
      await mock.close();
      await sandbox.cleanup();
    }
  },
);

realTest("without the plugin, stdio permission questions are answered by the policy", async () => {
  const asked: PermissionRequest[] = [];
  let answer: "allow" | "deny" = "allow";
  const s = await createClaudeSession({
    script: touchScript(["allowed.txt", "denied.txt"]),
    adapter: { bin: CLAUDE!, plugin: false },
    context: {
      decidePermission: (request) => {
        asked.push(request);
        return Promise.resolve({ decision: answer, reason: `policy says ${answer}` });
      },
    },
  });
  try {
    await s.adapter.start();
    await s.adapter.deliver([message(1, "TOUCH-allowed.txt")]);
    await s.rec.turnEnds(1);
    assert.ok(await exists(join(s.sandbox.cwd, "allowed.txt")));
    answer = "deny";
    await s.adapter.deliver([message(2, "TOUCH-denied.txt")]);
    await s.rec.turnEnds(2);
    assert.equal(await exists(join(s.sandbox.cwd, "denied.txt")), false);
    assert.deepEqual(
      asked.map((r) => [r.provider, r.tool, (r.input as { command: string }).command]),
      [
        ["claude", "Bash", "touch allowed.txt"],
        ["claude", "Bash", "touch denied.txt"],
      ],
    );
    const results = s.rec.of("step").filter((e) => e.kind === "tool_result").map((e) => e.text);
    assert.equal(results.length, 2);
    assert.equal(results[1], "error: policy says deny");
    assert.deepEqual(responses(s.rec), ["touched it", "could not touch it"]);
  } finally {
    await s.close();
  }
});
