/**
 * Tests of the Claude Code adapter: the stream-json parser and the transcript analysis on
 * recorded samples (tests/fixtures/claude/, captured from claude 2.1.331), and the adapter on
 * the real CLI inside a loopback-only network namespace against the mock Anthropic API
 * (tests/support/claude_netns.ts explains the arrangement).
 *
 * The real-CLI tests are skipped, with a printed reason, only when the CLI is not installed
 * (`bash scripts/install_providers.sh claude`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  buildClaudeArgs,
  CLAUDE_BIN_ENV,
  claudeEnv,
  claudeExecutable,
  formatDelivery,
  ResumeFailedError,
} from "../../src/adapters/claude.ts";
import {
  type ClaudeOutput,
  decodeLine,
  encodeUserMessage,
  LineSplitter,
  StreamTranslator,
  summarizeToolInput,
} from "../../src/adapters/claude_stream.ts";
import {
  analyzeSession,
  isGatheringCall,
  isReadOnlyCommand,
  transcriptPathFor,
} from "../../src/adapters/claude_transcript.ts";
import type { SessionEvent } from "../../src/adapters/adapter.ts";
import type { PermissionRequest } from "../../src/types.ts";
import { startControlServer } from "../../src/control/mod.ts";
import { createPermissionDecider } from "../../src/control/permission_policy.ts";
import { writePlugin } from "../../src/adapters/claude_plugin.ts";
import { INSTALLED_CLAUDE, installedClaude } from "../support/claude_netns.ts";
import { createClaudeSession, message, type Recorder } from "../support/claude_session.ts";
import type { MockScript } from "../support/mock_anthropic.ts";

const FIXTURES = new URL("../fixtures/claude/", import.meta.url);

function fixture(name: string): string {
  return Deno.readTextFileSync(new URL(name, FIXTURES));
}

function decodeAll(jsonl: string): ClaudeOutput[] {
  return jsonl.split("\n").flatMap((line) => decodeLine(line));
}

function translateAll(outputs: ClaudeOutput[]): SessionEvent[] {
  const translator = new StreamTranslator();
  return outputs.flatMap((o) => translator.translate(o));
}

// =============================================================================================
// Stream parser (recorded samples)

Deno.test("claude_stream: LineSplitter joins chunks, strips CR and drops overlong lines", () => {
  const splitter = new LineSplitter({ maxChars: 10 });
  assert.deepEqual(splitter.push('{"a":'), { lines: [], dropped: 0 });
  assert.deepEqual(splitter.push('1}\r\n{"b":2}\n{"c"'), {
    lines: ['{"a":1}', '{"b":2}'],
    dropped: 0,
  });
  // 12 characters without a newline: too long, skipped up to its end.
  assert.deepEqual(splitter.push(":3333333333"), { lines: [], dropped: 1 });
  assert.deepEqual(splitter.push('33}\n{"d":4}\n'), { lines: ['{"d":4}'], dropped: 0 });
  assert.equal(splitter.push("tail").lines.length, 0);
  assert.equal(splitter.flush(), "tail");
  assert.equal(splitter.flush(), undefined);
});

Deno.test("claude_stream: decodes a recorded tool turn", () => {
  const outputs = decodeAll(fixture("stream_tool_turn.jsonl"));
  assert.deepEqual(outputs.map((o) => o.kind), [
    "lifecycle",
    "lifecycle",
    "init",
    "system",
    "replay",
    "assistant",
    "assistant",
    "assistant",
    "tool-result",
    "assistant",
    "result",
    "lifecycle",
  ]);
  const init = outputs[2] as ClaudeOutput & { kind: "init" };
  assert.equal(init.sessionId, "6e4ff866-b4dd-4a7a-85b4-29d2617547f4");
  assert.equal(init.projectDir, "/tmp/cx/home/.claude/projects/-tmp-cx-work");
  assert.equal(init.cwd, "/tmp/cx/work");
  assert.deepEqual(outputs[0], {
    kind: "lifecycle",
    commandUuid: "11111111-1111-4111-8111-111111111111",
    state: "queued",
  });
  assert.deepEqual(outputs[4], {
    kind: "replay",
    uuid: "11111111-1111-4111-8111-111111111111",
    text: "RUN-ECHO please",
  });
  const blocks = outputs.slice(5, 8).flatMap((o) => o.kind === "assistant" ? o.blocks : []);
  assert.deepEqual(blocks.map((b) => b.type), ["thinking", "text", "tool_use"]);
  const tool = blocks[2] as { type: "tool_use"; id: string; name: string; input: unknown };
  assert.equal(tool.name, "Bash");
  assert.deepEqual(tool.input, { command: "echo hello-from-tool", description: "echo" });
  const result = outputs[8] as ClaudeOutput & { kind: "tool-result" };
  assert.equal(result.toolUseId, tool.id);
  assert.equal(result.text, "hello-from-tool");
  assert.equal(result.isError, false);
  const end = outputs[10] as ClaudeOutput & { kind: "result" };
  assert.equal(end.ok, true);
  assert.equal(end.text, "The tool said hello.");
  assert.deepEqual(end.usage, {
    inputTokens: 24,
    outputTokens: 14,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    costUsd: 0.000376,
  });
});

Deno.test("claude_stream: a recorded tool turn yields each event once, in order", () => {
  const events = translateAll(decodeAll(fixture("stream_tool_turn.jsonl")));
  assert.deepEqual(events, [
    { type: "reasoning", text: "I should run echo" },
    { type: "step", kind: "text", text: "Running it." },
    { type: "step", kind: "tool_use", tool: "Bash", text: "Bash: echo hello-from-tool" },
    { type: "step", kind: "tool_result", text: "hello-from-tool", tool: "Bash" },
    { type: "response", text: "The tool said hello." },
    {
      type: "turn-end",
      ok: true,
      usage: {
        inputTokens: 24,
        outputTokens: 14,
        cacheReadTokens: 0,
        cacheWriteTokens: 0,
        costUsd: 0.000376,
      },
    },
  ]);
});

Deno.test("claude_stream: a Stop block's feedback is a prompt and only the last text responds", () => {
  const outputs = decodeAll(fixture("stream_stop_block.jsonl"));
  const feedback = outputs.find((o) => o.kind === "user-text");
  assert.deepEqual(feedback, {
    kind: "user-text",
    text: "Stop hook feedback:\nSTOP-BLOCKED: you still owe message #7 from bob",
    synthetic: true,
    parentToolUseId: null,
  });
  const events = translateAll(outputs).filter((e) => e.type !== "turn-end");
  assert.deepEqual(events, [
    { type: "step", kind: "text", text: "PONG from mock" },
    {
      type: "prompt",
      text: "Stop hook feedback:\nSTOP-BLOCKED: you still owe message #7 from bob",
    },
    { type: "response", text: "Answering bob now." },
  ]);
});

Deno.test("claude_stream: an interrupted turn ends not ok and a queued message gets its own turn", () => {
  const outputs = decodeAll(fixture("stream_interrupt_queued.jsonl"));
  const lifecycle = outputs.flatMap((o) =>
    o.kind === "lifecycle" ? [`${o.commandUuid.slice(0, 4)}:${o.state}`] : []
  );
  assert.deepEqual(lifecycle, [
    "3333:queued",
    "3333:started",
    "4444:queued",
    "3333:cancelled",
    "4444:started",
    "4444:completed",
  ]);
  const replays = outputs.flatMap((o) => o.kind === "replay" ? [o.uuid] : []);
  assert.deepEqual(replays, [
    "33333333-3333-4333-8333-333333333333",
    "44444444-4444-4444-8444-444444444444",
  ]);
  const response = outputs.find((o) => o.kind === "control-response");
  assert.deepEqual(response, {
    kind: "control-response",
    requestId: "int1",
    ok: true,
    response: { still_queued: ["44444444-4444-4444-8444-444444444444"] },
  });
  const events = translateAll(outputs);
  const ends = events.filter((e) => e.type === "turn-end");
  assert.equal(ends.length, 2);
  assert.equal(ends[0]?.ok, false);
  assert.match(ends[0]?.error ?? "", /^error_during_execution: aborted_streaming/);
  assert.equal(ends[1]?.ok, true);
  // The partial text is flushed, as a step, by the interrupt marker that follows it.
  assert.deepEqual(events.filter((e) => e.type !== "turn-end"), [
    { type: "step", kind: "text", text: "partial" },
    { type: "step", kind: "interrupted", text: "[Request interrupted by user]" },
    { type: "response", text: "PONG from mock" },
  ]);
});

Deno.test("claude_stream: a recorded permission question decodes as can_use_tool", () => {
  const outputs = decodeAll(fixture("stream_permission_stdio.jsonl"));
  const request = outputs.find((o) => o.kind === "control-request");
  assert.ok(request?.kind === "control-request");
  assert.equal(request.subtype, "can_use_tool");
  assert.equal(request.request.tool_name, "Bash");
  assert.deepEqual(request.request.input, {
    command: "touch /tmp/cx/work/touched",
    description: "touch",
  });
  const bad = decodeAll(fixture("stream_bad_resume.jsonl"));
  assert.equal(bad.length, 1);
  assert.ok(bad[0]?.kind === "result");
  assert.equal(bad[0].ok, false);
  assert.equal(bad[0].subtype, "error_during_execution");
});

Deno.test("claude_stream: bad lines are reported, never thrown", () => {
  assert.deepEqual(decodeLine(""), []);
  const notJson = decodeLine("Warning: something odd");
  assert.equal(notJson[0]?.kind, "invalid");
  assert.match((notJson[0] as { error: string }).error, /^Line is not JSON/);
  assert.equal(decodeLine("[1,2]")[0]?.kind, "invalid");
  assert.deepEqual(decodeLine('{"type":"brand_new"}'), [{ kind: "other", type: "brand_new" }]);
  // Wrong field types degrade to defaults instead of throwing.
  const odd = decodeLine('{"type":"assistant","message":{"content":"not-an-array"}}');
  assert.deepEqual(odd, [{ kind: "assistant", messageId: "", blocks: [], parentToolUseId: null }]);
  const result = decodeLine('{"type":"result","subtype":"success","is_error":false,"usage":7}');
  assert.deepEqual(result, [{ kind: "result", ok: true, subtype: "success", usage: {} }]);
  // An API error: subtype success but is_error, the error text in `result`.
  const apiError = decodeLine(JSON.stringify({
    type: "result",
    subtype: "success",
    is_error: true,
    terminal_reason: "api_error",
    result: "API Error: 400 bad",
  }));
  assert.deepEqual(apiError, [{
    kind: "result",
    ok: false,
    subtype: "success",
    usage: {},
    error: "api_error: API Error: 400 bad",
    terminalReason: "api_error",
  }]);
  const bare = decodeLine('{"type":"result","subtype":"success","is_error":true}');
  assert.equal((bare[0] as { error?: string }).error, "the turn failed");
});

Deno.test("claude_stream: user messages carry the uuid Claude echoes; tool inputs summarized", () => {
  const line = encodeUserMessage("hi", "u-1");
  assert.ok(line.endsWith("\n"));
  assert.deepEqual(JSON.parse(line), {
    type: "user",
    uuid: "u-1",
    session_id: "",
    parent_tool_use_id: null,
    message: { role: "user", content: [{ type: "text", text: "hi" }] },
  });
  assert.equal(summarizeToolInput("Read", { file_path: "/a/b.ts" }), "Read: /a/b.ts");
  assert.equal(summarizeToolInput("Odd", { n: 1 }), 'Odd: {"n":1}');
  assert.ok(summarizeToolInput("Bash", { command: "x".repeat(5000) }).includes("more characters"));
});

// =============================================================================================
// Adapter pieces

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
    { PATH: "/bin", AGENT_RELAY_RUNNER_PORT: "5" },
  );
  assert.equal(claudeExecutable(() => undefined), "claude");
  assert.equal(
    claudeExecutable((n) => n === CLAUDE_BIN_ENV ? " /opt/claude " : undefined),
    "/opt/claude",
  );
});

// =============================================================================================
// Transcript analysis

Deno.test("claude_transcript: a recorded transcript has one gathering call (echo)", () => {
  const analysis = analyzeSession(fixture("transcript_tool_turn.jsonl"));
  assert.ok(analysis);
  assert.deepEqual(analysis.metric, {
    ratio: 1,
    gatheringCalls: 1,
    totalToolCalls: 1,
    byTool: { Bash: 1 },
  });
  assert.equal(analysis.outcome.userPrompts, 1);
  assert.equal(analysis.outcome.assistantMessages, 2);
  assert.equal(analysis.outcome.toolErrors, 0);
  assert.equal(analysis.outcome.interrupted, false);
  assert.ok((analysis.outcome.durationMs ?? -1) >= 0);
});

Deno.test("claude_transcript: gathering vs acting, each call once, bad lines survived", () => {
  const line = (o: unknown) => JSON.stringify(o);
  const assistant = (id: string, name: string, input: unknown, extra: object = {}) =>
    line({
      type: "assistant",
      message: { id: `m-${id}`, content: [{ type: "tool_use", id, name, input }] },
      ...extra,
    });
  const jsonl = [
    line({ type: "user", message: { content: "do the thing" }, timestamp: "2026-01-01T00:00:00Z" }),
    assistant("t1", "Read", { file_path: "/a" }),
    assistant("t2", "Grep", { pattern: "x" }),
    assistant("t3", "Bash", { command: "git log -3 | head -n 2" }),
    assistant("t4", "Edit", { file_path: "/a" }),
    assistant("t5", "Bash", { command: "deno test" }),
    assistant("t1", "Read", { file_path: "/a" }), // the same call again (resumed session)
    assistant("t6", "Task", { subagent_type: "Explore", prompt: "look" }, { isSidechain: false }),
    assistant("t7", "Glob", { pattern: "*" }, { isSidechain: true }),
    // Claude's copy of a request holds tool_use blocks too; it must not count.
    line({ type: "api-request-blob", message: { content: [{ type: "tool_use", id: "z" }] } }),
    line({
      type: "user",
      message: { content: [{ type: "tool_result", tool_use_id: "t5", is_error: true }] },
    }),
    line({ type: "user", message: { content: "[Request interrupted by user]" } }),
    line({ type: "user", message: { content: "and now?" }, timestamp: "2026-01-01T00:00:09Z" }),
    "{torn line",
  ].join("\n");
  const analysis = analyzeSession(jsonl);
  assert.ok(analysis);
  assert.deepEqual(analysis.toolCalls.map((c) => `${c.id}:${c.gathering}`), [
    "t1:true",
    "t2:true",
    "t3:true",
    "t4:false",
    "t5:false",
    "t6:true",
    "t7:true",
  ]);
  assert.equal(analysis.metric.gatheringCalls, 5);
  assert.equal(analysis.metric.totalToolCalls, 7);
  assert.equal(analysis.metric.ratio, 5 / 7);
  assert.deepEqual(analysis.outcome, {
    userPrompts: 2,
    assistantMessages: 7,
    toolErrors: 1,
    interrupted: true,
    durationMs: 9000,
  });
  assert.equal(analyzeSession(line({ type: "user", message: { content: "hi" } })), undefined);
  assert.equal(analyzeSession(""), undefined);
});

Deno.test("claude_transcript: read-only shell commands", () => {
  for (
    const command of [
      "ls -la",
      "cat a | grep b | wc -l",
      "git status && git diff HEAD~1",
      "rg foo src/ 2>/dev/null",
      "sed -n 1,20p file",
      "FOO=1 head -n 3 x",
      "find . -name '*.ts'",
    ]
  ) assert.equal(isReadOnlyCommand(command), true, command);
  for (
    const command of [
      "echo x > file",
      "git commit -m x",
      "rm -rf build",
      "sed -i s/a/b/ f",
      "npm install",
      "cat a; make",
      "find . -delete",
      "",
    ]
  ) assert.equal(isReadOnlyCommand(command), false, command);
  assert.equal(isGatheringCall("WebFetch", {}), true);
  assert.equal(isGatheringCall("Write", { file_path: "/x" }), false);
  assert.equal(isGatheringCall("mcp__docs__search_pages", {}), true);
  assert.equal(
    transcriptPathFor("/work/my_app.v2", "s-1", { HOME: "/home/u" }),
    "/home/u/.claude/projects/-work-my-app-v2/s-1.jsonl",
  );
  assert.equal(
    transcriptPathFor("/w", "s", { HOME: "/h", CLAUDE_CONFIG_DIR: "/c/" }),
    "/c/projects/-w/s.jsonl",
  );
  assert.equal(transcriptPathFor("/w", "s", {}), undefined);
});

// =============================================================================================
// The real CLI

const CLAUDE = installedClaude();
if (CLAUDE === undefined) {
  // deno-lint-ignore no-console
  console.log(
    `claude_test: skipping the real-CLI tests: Claude Code is not installed at ${INSTALLED_CLAUDE}` +
      " (run: bash scripts/install_providers.sh claude)",
  );
}

function realTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name: `claude (real CLI): ${name}`, ignore: CLAUDE === undefined, fn });
}

const SCRIPT: MockScript = {
  rules: [
    { match: "STOP-ME", reply: [{ text: "Answering bob now." }] },
    {
      match: "RUN-ECHO",
      reply: [
        { thinking: "I should run echo" },
        { text: "Running it." },
        {
          tool_use: {
            name: "Bash",
            input: { command: "echo hello-from-tool", description: "echo" },
          },
        },
      ],
    },
    { match: "hello-from-tool", reply: [{ text: "The tool said hello." }] },
    { match: "HANG-NOW", reply: [{ text: "partial" }, { hang: true }] },
    { match: "PING", reply: [{ text: "PONG from mock" }] },
  ],
  fallback: [{ text: "fallback reply" }],
};

function touchScript(files: string[]): MockScript {
  return {
    rules: [
      ...files.map((file) => ({
        match: `TOUCH-${file}`,
        reply: [{
          tool_use: { name: "Bash", input: { command: `touch ${file}`, description: "touch" } },
        }],
      })),
      { match: "(Bash completed", reply: [{ text: "touched it" }] },
    ],
    fallback: [{ text: "could not touch it" }],
  };
}

function responses(rec: Recorder): string[] {
  return rec.of("response").map((e) => e.text);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether a process exists and is neither a zombie nor dead. */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** The host pids of every process below `pid` (children first-level included). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let children: string;
    try {
      children = Deno.readTextFileSync(`/proc/${p}/task/${p}/children`);
    } catch {
      return;
    }
    for (const c of children.trim().split(/\s+/).filter(Boolean).map(Number)) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

realTest("a delivered message reaches the mock and its reply is the response", async () => {
  const s = await createClaudeSession({
    script: SCRIPT,
    adapter: { bin: CLAUDE! },
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
    const transcript = s.rec.of("transcript")[0]?.path ?? "";
    assert.ok(transcript.startsWith(join(s.sandbox.home, ".claude", "projects")), transcript);
    assert.ok(transcript.endsWith(`${sessionIds[0]?.id}.jsonl`));
    assert.ok(await exists(transcript), `transcript ${transcript} exists`);
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

realTest("a Bash echo tool call produces tool steps, and the transcript measures it", async () => {
  const s = await createClaudeSession({ script: SCRIPT, adapter: { bin: CLAUDE! } });
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
    const path = s.rec.of("transcript")[0]?.path;
    assert.ok(path);
    const analysis = analyzeSession(await Deno.readTextFile(path));
    assert.ok(analysis);
    assert.deepEqual(analysis.metric, {
      ratio: 1,
      gatheringCalls: 1,
      totalToolCalls: 1,
      byTool: { Bash: 1 },
    });
  } finally {
    await s.close();
  }
});

realTest("after a crash the saved session resumes with its history", async () => {
  const first = await createClaudeSession({ script: SCRIPT, adapter: { bin: CLAUDE! } });
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
      adapter: { bin: CLAUDE! },
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
    adapter: { bin: CLAUDE! },
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
    adapter: { bin: CLAUDE!, onResumeFailure: "reject" },
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
    adapter: { bin: CLAUDE!, watchdogMs: 1500, interruptTimeoutMs: 5000 },
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
    adapter: { bin: CLAUDE!, watchdogMs: 800, interruptTimeoutMs: 800 },
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
    await s.rec.waitFor("the frozen process to die", () => !alive(frozen[0]!), 5000);
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
    adapter: { bin: CLAUDE! },
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

realTest("without the plugin, stdio permission questions are answered by the policy", async () => {
  const asked: PermissionRequest[] = [];
  let answer: "allow" | "deny" = "allow";
  const s = await createClaudeSession({
    script: touchScript(["allowed.txt", "denied.txt"]),
    adapter: { bin: CLAUDE! },
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

/**
 * A control server of the test, with a fixed obligation snapshot, recording every hook. The
 * sandbox offers its port inside the namespace (it bridges `AGENT_RELAY_RUNNER_PORT`).
 */
async function withControlServer(
  options: {
    owed: { messageId: number; from: string; body: string }[];
    delivered: () => number[];
    policy: "allow" | "deny";
  },
  fn: (control: {
    env: Record<string, string>;
    hooks: { event: string; payload: Record<string, unknown> }[];
  }) => Promise<void>,
): Promise<void> {
  const hooks: { event: string; payload: Record<string, unknown> }[] = [];
  const server = startControlServer({
    port: 0,
    callbacks: {
      status: () => ({
        agentId: "agent-1",
        provider: "claude",
        status: "busy",
        pid: Deno.pid,
        startedAt: Date.now(),
        outbox: { pending: 0, poisoned: 0 },
      }),
      setStatus: () => {},
      obligations: {
        get: () => options.owed.map((o) => ({ ...o, createdAt: "2026-11-27T12:00:00.000Z" })),
        refreshedAt: Date.now(),
      },
      deliveredThisTurn: options.delivered,
      decidePermission: createPermissionDecider({ policy: options.policy }),
      onHook: (event, payload) => {
        hooks.push({ event, payload });
      },
    },
  });
  try {
    await fn({
      env: {
        AGENT_RELAY_RUNNER_PORT: String(server.port),
        AGENT_RELAY_RUNNER_SECRET: server.secret,
      },
      hooks,
    });
  } finally {
    await server.close();
  }
}

realTest(
  "with the plugin, a Stop block for an owed reply makes Claude take another turn",
  async () => {
    let delivered: number[] = [];
    await withControlServer({
      owed: [{ messageId: 7, from: "bob", body: "STOP-ME where is my answer?" }],
      delivered: () => delivered,
      policy: "deny",
    }, async (control) => {
      const stateDir = await Deno.makeTempDir({ prefix: "arr-state-" });
      const s = await createClaudeSession({
        script: SCRIPT,
        adapter: { bin: CLAUDE! },
        context: {
          pluginDir: await writePlugin(stateDir),
          env: control.env,
        },
      });
      try {
        await s.adapter.start();
        delivered = [1];
        await s.adapter.deliver([message(1, "PING first")]);
        await s.rec.turnEnds(1);
        const stops = control.hooks.filter((h) => h.event === "stop");
        assert.deepEqual(stops.map((h) => h.payload.stop_hook_active), [false, true]);
        const prompts = s.rec.of("prompt").map((e) => e.text);
        assert.equal(prompts.length, 1);
        assert.match(prompts[0] ?? "", /^Stop hook feedback:/);
        assert.match(prompts[0] ?? "", /STOP-ME where is my answer\?/);
        assert.match(prompts[0] ?? "", /bob/);
        // The first answer became a step; the answer to the owed message is the response.
        assert.deepEqual(
          s.rec.of("step").filter((e) => e.kind === "text").map((e) => e.text),
          ["PONG from mock"],
        );
        assert.deepEqual(responses(s.rec), ["Answering bob now."]);
        assert.equal(s.rec.of("turn-end").length, 1);
        assert.ok(control.hooks.some((h) => h.event === "session-start"));
        assert.ok(control.hooks.some((h) => h.event === "user-prompt-submit"));
      } finally {
        await s.close();
        await Deno.remove(stateDir, { recursive: true });
      }
    });
  },
);

realTest("with the plugin, permission questions go to the control server's policy", async () => {
  await withControlServer({ owed: [], delivered: () => [1], policy: "allow" }, async (control) => {
    const stateDir = await Deno.makeTempDir({ prefix: "arr-state-" });
    let stdioAsked = 0;
    const s = await createClaudeSession({
      script: touchScript(["by-hook.txt"]),
      adapter: { bin: CLAUDE! },
      context: {
        pluginDir: await writePlugin(stateDir),
        env: control.env,
        decidePermission: () => {
          stdioAsked++;
          return Promise.resolve({ decision: "deny" });
        },
      },
    });
    try {
      await s.adapter.start();
      await s.adapter.deliver([message(1, "TOUCH-by-hook.txt")]);
      await s.rec.turnEnds(1);
      assert.ok(await exists(join(s.sandbox.cwd, "by-hook.txt")));
      const asked = control.hooks.filter((h) => h.event === "permission-request");
      assert.equal(asked.length, 1);
      assert.equal(asked[0]?.payload.tool_name, "Bash");
      assert.equal(stdioAsked, 0, "the adapter itself was not asked");
      assert.deepEqual(responses(s.rec), ["touched it"]);
    } finally {
      await s.close();
      await Deno.remove(stateDir, { recursive: true });
    }
  });
});
