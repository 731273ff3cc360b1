/**
 * The inbox state machine on its own: ordering, dedup, paging, hand-over outcomes, Stop folding
 * and redelivery after a failed turn. No process, no port, no file.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Inbox, MAX_BATCH } from "../../src/runner/inbox.ts";
import type { Message } from "../../src/types.ts";

const AGENT = "alice";

function msg(id: number, extra: Partial<Message> = {}): Message {
  return {
    id,
    from: "bob",
    to: AGENT,
    kind: "chat",
    body: `m${id}`,
    createdAt: new Date(0).toISOString(),
    ...extra,
  };
}

const ids = (messages: readonly Message[]) => messages.map((m) => m.id);

Deno.test("inbox: messages wait in relay id order, whatever order they arrive in", () => {
  const inbox = new Inbox(AGENT);
  for (const id of [5, 2, 9, 3]) assert.equal(inbox.receive(msg(id)), true);
  assert.deepEqual(inbox.pendingIds, [2, 3, 5, 9]);
});

Deno.test("inbox: a message is queued once, and never again once delivered", () => {
  const inbox = new Inbox(AGENT);
  assert.equal(inbox.receive(msg(1)), true);
  assert.equal(inbox.receive(msg(1)), false);
  inbox.beginHandOver();
  assert.equal(inbox.handOverDone(), true);
  assert.equal(inbox.receive(msg(1)), false, "delivered: not queued again");
  assert.equal(inbox.pendingCount, 0);
});

Deno.test("inbox: only chat messages to this agent are queued", () => {
  const inbox = new Inbox(AGENT);
  assert.equal(inbox.receive(msg(1, { kind: "session" })), false);
  assert.equal(inbox.receive(msg(2, { to: "someone-else" })), false);
  assert.equal(inbox.pendingCount, 0);
});

Deno.test("inbox: nothing is handed over while a poll runs; a second poll request runs after", () => {
  const inbox = new Inbox(AGENT);
  assert.equal(inbox.beginPoll(), true);
  inbox.receive(msg(7)); // Pushed on the bus meanwhile.
  assert.equal(inbox.beginHandOver(), undefined, "the poll may return older messages");
  assert.equal(inbox.beginPoll(), false, "one poll at a time");
  const page = inbox.acceptPage([msg(3), msg(4)], { limit: 100 });
  assert.deepEqual(ids(page.fresh), [3, 4]);
  assert.equal(inbox.endPoll(), true, "the second request runs next");
  assert.equal(inbox.endPoll(), false);
  assert.deepEqual(ids(inbox.beginHandOver()!.batch), [3, 4, 7]);
});

Deno.test("inbox: a page's non-chat messages are reported for mark-read, and a full page asks for more", () => {
  const inbox = new Inbox(AGENT);
  inbox.beginPoll();
  const page = [msg(1), msg(2, { kind: "session" }), msg(3)];
  const outcome = inbox.acceptPage(page, { limit: 3 });
  inbox.endPoll();
  assert.deepEqual(outcome.notChat, [2]);
  assert.deepEqual(ids(outcome.fresh), [1, 3]);
  assert.equal(inbox.wantsMore, false, "messages still wait: answer them first");
  inbox.beginHandOver();
  inbox.handOverDone();
  inbox.endTurn();
  assert.equal(inbox.wantsMore, true, "the page was full and the queue is dry");
  inbox.beginPoll();
  inbox.acceptPage([msg(4)], { limit: 3 });
  inbox.endPoll();
  inbox.beginHandOver();
  inbox.handOverDone();
  inbox.endTurn();
  assert.equal(inbox.wantsMore, false, "a short page: nothing more waits");
});

Deno.test("inbox: a hand-over takes at most MAX_BATCH messages and announces each once", () => {
  const inbox = new Inbox(AGENT);
  for (let id = 1; id <= MAX_BATCH + 5; id++) inbox.receive(msg(id));
  const first = inbox.beginHandOver()!;
  assert.equal(first.batch.length, MAX_BATCH);
  assert.equal(first.announce.length, MAX_BATCH);
  inbox.handOverFailed(); // Write failed: retried later, not announced again.
  assert.equal(inbox.turn.phase, "idle");
  assert.equal(inbox.pendingCount, MAX_BATCH + 5);
  const retry = inbox.beginHandOver()!;
  assert.deepEqual(ids(retry.batch), ids(first.batch));
  assert.equal(retry.announce.length, 0);
});

Deno.test("inbox: nothing is handed over while a turn is open", () => {
  const inbox = new Inbox(AGENT);
  inbox.receive(msg(1));
  inbox.beginHandOver();
  inbox.handOverDone();
  inbox.receive(msg(2));
  assert.equal(inbox.turn.phase, "open");
  assert.equal(inbox.beginHandOver(), undefined);
  assert.deepEqual(ids(inbox.endTurn()), [1]);
  assert.deepEqual(ids(inbox.beginHandOver()!.batch), [2]);
});

Deno.test("inbox: a turn that ends during its hand-over closes when the hand-over does", () => {
  const inbox = new Inbox(AGENT);
  inbox.receive(msg(1));
  inbox.beginHandOver();
  assert.deepEqual(ids(inbox.endTurn()), [1]);
  assert.equal(inbox.turn.phase, "handing");
  assert.equal(inbox.handOverDone(), true);
  assert.equal(inbox.turn.phase, "idle");
});

Deno.test("inbox: a response answers each turn message once; replyTo picks one", () => {
  const inbox = new Inbox(AGENT);
  inbox.receive(msg(1));
  inbox.receive(msg(2));
  inbox.beginHandOver();
  inbox.handOverDone();
  assert.deepEqual(ids(inbox.answer(2)), [2]);
  assert.deepEqual(ids(inbox.answer()), [1]);
  assert.deepEqual(ids(inbox.answer()), [], "a second response answers nothing (mirror only)");
  assert.equal(inbox.answered(1), true);
});

Deno.test("inbox: a crashed turn's unanswered messages go back to the front of the queue", () => {
  const inbox = new Inbox(AGENT);
  for (const id of [1, 2, 3]) inbox.receive(msg(id));
  inbox.beginHandOver();
  inbox.handOverDone();
  inbox.answer(2);
  inbox.receive(msg(4));
  assert.equal(inbox.failTurn(), 2);
  assert.equal(inbox.turn.phase, "idle");
  assert.deepEqual(inbox.pendingIds, [1, 3, 4]);
  assert.deepEqual(ids(inbox.beginHandOver()!.batch), [1, 3, 4], "redelivered, in order");
});

Deno.test("inbox: a hand-over voided by a crash meanwhile delivers nothing", () => {
  const inbox = new Inbox(AGENT);
  inbox.receive(msg(1));
  inbox.beginHandOver();
  inbox.failTurn(); // The provider died while its stdin was being written.
  assert.equal(inbox.handOverDone(), false);
  assert.equal(inbox.turn.phase, "idle");
  assert.deepEqual(inbox.pendingIds, [1]);
  assert.equal(inbox.receive(msg(1)), false, "still queued, not duplicated");
});

Deno.test("inbox: a blocked Stop folds the owed messages into the turn, from the queue or the obligation", () => {
  const inbox = new Inbox(AGENT);
  inbox.receive(msg(1));
  inbox.beginHandOver();
  inbox.handOverDone();
  inbox.receive(msg(2)); // Queued: its text is known.
  const folded = inbox.foldIntoTurn([
    { messageId: 1, from: "bob", createdAt: 0 }, // Already in the turn.
    { messageId: 2, from: "bob", createdAt: 0 },
    { messageId: 9, from: "carol", createdAt: 0, body: "from the relay" },
  ]);
  assert.deepEqual(ids(folded), [2, 9]);
  assert.equal(folded[0]!.body, "m2");
  assert.equal(folded[1]!.body, "from the relay");
  assert.deepEqual(ids(inbox.turnMessages), [1, 2, 9]);
  assert.equal(inbox.pendingCount, 0);
  assert.equal(inbox.receive(msg(9)), false, "folded counts as delivered");
});

Deno.test("inbox: after a crash, queued mark-reads and replies are neither delivered nor answered again", () => {
  const inbox = new Inbox(AGENT);
  inbox.recall({ markedRead: [1], answered: [2] });
  assert.equal(inbox.receive(msg(1)), false);
  assert.equal(inbox.receive(msg(2)), false);
  assert.equal(inbox.claimMarkRead(1), false, "its mark-read is already queued");
  assert.equal(inbox.claimMarkRead(2), true);
  assert.equal(inbox.claimMarkRead(2), false, "once");
});
