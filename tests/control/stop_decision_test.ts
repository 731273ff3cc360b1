import assert from "node:assert/strict";
import {
  decideStop,
  MAX_QUOTED_CHARS,
  MAX_QUOTED_MESSAGES,
  stopReason,
} from "../../src/control/stop_decision.ts";
import type { ReplyObligation } from "../../src/types.ts";

const owed = (messageId: number, from: string, body?: string): ReplyObligation => ({
  messageId,
  from,
  createdAt: "2026-11-27T10:00:00.000Z",
  ...(body === undefined ? {} : { body }),
});

Deno.test("no obligations: the stop passes with {}", () => {
  const d = decideStop([], { deliveredThisTurn: [], stopHookActive: false });
  assert.deepEqual(d, { blocked: false, answer: {}, outstanding: [] });
});

Deno.test("messages delivered in this turn never block", () => {
  const d = decideStop([owed(7, "user", "hi"), owed(9, "bob", "yo")], {
    deliveredThisTurn: new Set([7, 9]),
    stopHookActive: false,
  });
  assert.deepEqual(d.blocked, false);
  assert.deepEqual(d.answer, {});
  assert.deepEqual(d.outstanding, []);
});

Deno.test("an obligation the turn does not answer blocks, quoting sender, id and text", () => {
  const d = decideStop([owed(7, "user", "first"), owed(12, "planner", 'say "hello"\nplease')], {
    deliveredThisTurn: [7],
    stopHookActive: false,
  });
  assert.ok(d.blocked);
  assert.ok("decision" in d.answer);
  assert.deepEqual(d.answer.decision, "block");
  assert.match(d.answer.reason, /message 12 from planner: "say \\"hello\\"\\nplease"/);
  assert.ok(!d.answer.reason.includes("message 7 "));
  assert.deepEqual(d.outstanding.map((o) => o.messageId), [12]);
});

Deno.test("stop_hook_active true never blocks, but still reports what is outstanding", () => {
  const d = decideStop([owed(3, "user", "x")], { deliveredThisTurn: [], stopHookActive: true });
  assert.deepEqual(d.blocked, false);
  assert.deepEqual(d.answer, {});
  assert.deepEqual(d.outstanding.map((o) => o.messageId), [3]);
});

Deno.test("several owed messages are listed oldest first, once each", () => {
  const d = decideStop([
    owed(30, "b", "c"),
    owed(10, "a", "a"),
    owed(20, "a", "b"),
    owed(10, "a", "a"),
  ], {
    deliveredThisTurn: [],
    stopHookActive: false,
  });
  assert.deepEqual(d.outstanding.map((o) => o.messageId), [10, 20, 30]);
  assert.ok("reason" in d.answer);
  const lines = d.answer.reason.split("\n");
  assert.match(lines[0]!, /these 3 relay messages/);
  assert.deepEqual(lines.slice(1).map((l) => l.split(":")[0]), [
    "- message 10 from a",
    "- message 20 from a",
    "- message 30 from b",
  ]);
});

Deno.test("a message whose text is unknown is still named; long texts are clipped", () => {
  const long = "x".repeat(MAX_QUOTED_CHARS + 50);
  const reason = stopReason([owed(1, "user"), owed(2, "user", long)]);
  assert.match(reason, /message 1 from user: \(text not available locally\)/);
  assert.match(reason, /\.\.\. \(50 more characters\)/);
  assert.ok(reason.length < MAX_QUOTED_CHARS + 500);
});

Deno.test("a flood of owed messages quotes a bounded number", () => {
  const many = Array.from({ length: MAX_QUOTED_MESSAGES + 5 }, (_, i) => owed(i + 1, "u", `m${i}`));
  const reason = stopReason(many);
  assert.deepEqual(
    reason.split("\n").filter((l) => l.startsWith("- message")).length,
    MAX_QUOTED_MESSAGES,
  );
  assert.match(reason, /and 5 more messages/);
});
