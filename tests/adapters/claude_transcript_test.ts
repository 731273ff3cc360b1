/**
 * Tests of the Claude transcript analysis (src/adapters/claude_transcript.ts) on a recorded
 * transcript and made-up ones, and of the guarded transcript read and the `context_ratio`
 * insight (src/adapters/claude_insight.ts): a FIFO, a symlink or an oversized file never hangs
 * or floods anything.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  analyzeSession,
  isGatheringCall,
  isReadOnlyCommand,
  transcriptPathFor,
} from "../../src/adapters/claude_transcript.ts";
import {
  contextRatioInsight,
  ContextRatioReporter,
  readTranscript,
} from "../../src/adapters/claude_insight.ts";
import type { SessionEvent } from "../../src/adapters/adapter.ts";
import { getLogger } from "../../src/logger.ts";

const FIXTURES = new URL("../fixtures/claude/", import.meta.url);

function fixture(name: string): string {
  return Deno.readTextFileSync(new URL(name, FIXTURES));
}

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
// The guarded read and the insight

Deno.test("claude_insight: a regular transcript becomes the context_ratio insight", async () => {
  const path = new URL("transcript_tool_turn.jsonl", FIXTURES).pathname;
  assert.equal(await readTranscript(path), fixture("transcript_tool_turn.jsonl"));
  const insight = await contextRatioInsight(path, { endReason: "logout" });
  assert.ok(insight);
  assert.equal(insight.signal, "context_ratio");
  assert.deepEqual(insight.value, {
    ratio: 1,
    gatheringCalls: 1,
    totalToolCalls: 1,
    byTool: { Bash: 1 },
    endReason: "logout",
  });
  assert.equal((insight.outcome as { userPrompts: number }).userPrompts, 1);
});

Deno.test("claude_insight: a session without tool calls makes no insight", async () => {
  const dir = await Deno.makeTempDir({ prefix: "transcript-" });
  try {
    const path = join(dir, "s.jsonl");
    await Deno.writeTextFile(path, JSON.stringify({ type: "user", message: { content: "hi" } }));
    assert.equal(await contextRatioInsight(path), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("claude_insight: a FIFO, a symlink, a folder or an oversized file is refused at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "transcript-" });
  try {
    const fifo = join(dir, "t.fifo");
    assert.equal((await new Deno.Command("mkfifo", { args: [fifo] }).output()).code, 0);
    // Nobody ever writes to the FIFO: opening it would block forever.
    await assert.rejects(() => readTranscript(fifo), /t\.fifo is not a regular file/);
    const real = join(dir, "real.jsonl");
    await Deno.writeTextFile(real, fixture("transcript_tool_turn.jsonl"));
    const link = join(dir, "link.jsonl");
    await Deno.symlink(real, link);
    await assert.rejects(() => readTranscript(link), /link\.jsonl is not a regular file/);
    await assert.rejects(() => readTranscript(dir), /is not a regular file/);
    await assert.rejects(
      () => readTranscript(real, { maxBytes: 100 }),
      /real\.jsonl is larger than 100 bytes/,
    );
    await assert.rejects(() => readTranscript(join(dir, "missing.jsonl")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("claude_insight: the reporter waits for a read in progress and gives up on a FIFO", async () => {
  const dir = await Deno.makeTempDir({ prefix: "transcript-" });
  try {
    const fifo = join(dir, "t.fifo");
    assert.equal((await new Deno.Command("mkfifo", { args: [fifo] }).output()).code, 0);
    const events: SessionEvent[] = [];
    const reporter = new ContextRatioReporter({
      emit: (e) => events.push(e),
      log: getLogger("claude-insight-test"),
    });
    reporter.onHook("session-end", { transcript_path: fifo });
    await reporter.settled();
    assert.equal(events.length, 0, "no insight from a FIFO");
    reporter.onHook("session-start", {
      transcript_path: new URL("transcript_tool_turn.jsonl", FIXTURES).pathname,
    });
    reporter.onHook("session-end", { reason: "other" });
    await reporter.settled();
    assert.equal(events.length, 1);
    assert.equal(events[0]?.type, "insight");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
