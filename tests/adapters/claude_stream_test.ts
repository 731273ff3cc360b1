/**
 * Tests of Claude Code's stream-json protocol (src/adapters/claude_stream.ts) on recorded samples
 * (tests/fixtures/claude/, captured from claude 2.1.331).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type ClaudeOutput,
  decodeLine,
  encodeUserMessage,
  LineSplitter,
  StreamTranslator,
  summarizeToolInput,
} from "../../src/adapters/claude_stream.ts";
import type { SessionEvent } from "../../src/adapters/adapter.ts";

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

Deno.test("claude_stream: a Stop block's feedback is no prompt and only the last text responds", () => {
  const outputs = decodeAll(fixture("stream_stop_block.jsonl"));
  const feedback = outputs.find((o) => o.kind === "user-text");
  assert.deepEqual(feedback, {
    kind: "user-text",
    text: "Stop hook feedback:\nSTOP-BLOCKED: you still owe message #7 from bob",
    synthetic: true,
    parentToolUseId: null,
  });
  const events = translateAll(outputs).filter((e) => e.type !== "turn-end");
  // The runner mirrors the folded messages itself: the block's feedback is not a prompt.
  assert.deepEqual(events, [
    { type: "step", kind: "text", text: "PONG from mock" },
    { type: "response", text: "Answering bob now." },
  ]);
  // Only Claude's own (synthetic) feedback is left out: the same text typed by someone is a prompt.
  const typed = new StreamTranslator().translate({
    kind: "user-text",
    text: "Stop hook feedback:\nsomething",
    synthetic: false,
    parentToolUseId: null,
  });
  assert.deepEqual(typed, [{ type: "prompt", text: "Stop hook feedback:\nsomething" }]);
});

Deno.test("claude_stream: a 500 after Claude's retries ends the turn not ok, in one sentence", () => {
  // Recorded from 2.1.331 with CLAUDE_CODE_MAX_RETRIES=1 and the mock answering 500.
  const outputs = decodeAll(fixture("stream_api_error_500.jsonl"));
  const retries = outputs.filter((o) => o.kind === "system" && o.subtype === "api_retry");
  assert.equal(retries.length, 1);
  const events = translateAll(outputs);
  const ends = events.filter((e) => e.type === "turn-end");
  assert.equal(ends.length, 1);
  assert.equal(ends[0]?.type === "turn-end" && ends[0].ok, false);
  assert.equal(
    ends[0]?.type === "turn-end" ? ends[0].error : undefined,
    "api_error: API Error: 500 mock 500.",
  );
  assert.deepEqual(events.filter((e) => e.type === "response"), []);
  // The message's lifecycle: started before the retries, cancelled after the result.
  const lifecycle = outputs.flatMap((o) => o.kind === "lifecycle" ? [o.state] : []);
  assert.deepEqual(lifecycle, ["queued", "started", "cancelled"]);
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
  assert.equal((bare[0] as { error?: string }).error, "The turn failed");
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
