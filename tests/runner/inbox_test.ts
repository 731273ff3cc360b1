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

/** An inbox whose first catch-up poll found nothing. */
function caughtUp(options: { turnRetries?: number } = {}): Inbox {
  const inbox = new Inbox(AGENT, options);
  inbox.beginPoll();
  inbox.acceptPage([], { limit: 100 });
  inbox.endPoll({ caughtUp: true });
  return inbox;
}

Deno.test("inbox: messages wait in relay id order, whatever order they arrive in", () => {
  const inbox = caughtUp();
  for (const id of [5, 2, 9, 3]) assert.equal(inbox.receive(msg(id)), true);
  assert.deepEqual(inbox.pendingIds, [2, 3, 5, 9]);
});

Deno.test("inbox: a message is queued once, and never again once delivered", () => {
  const inbox = caughtUp();
  assert.equal(inbox.receive(msg(1)), true);
  assert.equal(inbox.receive(msg(1)), false);
  inbox.beginHandOver();
  assert.equal(inbox.handOverDone(), true);
  assert.equal(inbox.receive(msg(1)), false, "delivered: not queued again");
  assert.equal(inbox.pendingCount, 0);
});

Deno.test("inbox: only chat messages to this agent are queued", () => {
  const inbox = caughtUp();
  assert.equal(inbox.receive(msg(1, { kind: "session" })), false);
  assert.equal(inbox.receive(msg(2, { to: "someone-else" })), false);
  assert.equal(inbox.pendingCount, 0);
});

Deno.test("inbox: nothing is handed over while a poll runs; a second poll request runs after", () => {
  const inbox = caughtUp();
  assert.equal(inbox.beginPoll(), true);
  inbox.receive(msg(7)); // Pushed on the bus meanwhile.
  assert.equal(inbox.beginHandOver(), undefined, "the poll may return older messages");
  assert.equal(inbox.beginPoll(), false, "one poll at a time");
  const page = inbox.acceptPage([msg(3), msg(4)], { limit: 100 });
  assert.deepEqual(ids(page.fresh), [3, 4]);
  assert.equal(inbox.endPoll({ caughtUp: true }), true, "the second request runs next");
  assert.equal(inbox.endPoll({ caughtUp: true }), false);
  assert.deepEqual(ids(inbox.beginHandOver()!.batch), [3, 4, 7]);
});

Deno.test("inbox: a page's non-chat messages are reported for mark-read, and a full page asks for more", () => {
  const inbox = caughtUp();
  inbox.beginPoll();
  const page = [msg(1), msg(2, { kind: "session" }), msg(3)];
  const outcome = inbox.acceptPage(page, { limit: 3 });
  inbox.endPoll({ caughtUp: true });
  assert.deepEqual(outcome.notChat, [2]);
  assert.deepEqual(ids(outcome.fresh), [1, 3]);
  assert.equal(inbox.wantsMore, false, "messages still wait: answer them first");
  inbox.beginHandOver();
  inbox.handOverDone();
  inbox.endTurn();
  assert.equal(inbox.wantsMore, true, "the page was full and the queue is dry");
  inbox.beginPoll();
  inbox.acceptPage([msg(4)], { limit: 3 });
  inbox.endPoll({ caughtUp: true });
  inbox.beginHandOver();
  inbox.handOverDone();
  inbox.endTurn();
  assert.equal(inbox.wantsMore, false, "a short page: nothing more waits");
});

Deno.test("inbox: a hand-over takes at most MAX_BATCH messages and announces each once", () => {
  const inbox = caughtUp();
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
  const inbox = caughtUp();
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
  const inbox = caughtUp();
  inbox.receive(msg(1));
  inbox.beginHandOver();
  assert.deepEqual(ids(inbox.endTurn()), [1]);
  assert.equal(inbox.turn.phase, "handing");
  assert.equal(inbox.handOverDone(), true);
  assert.equal(inbox.turn.phase, "idle");
});

Deno.test("inbox: a response answers each turn message once; replyTo picks one", () => {
  const inbox = caughtUp();
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
  const inbox = caughtUp();
  for (const id of [1, 2, 3]) inbox.receive(msg(id));
  inbox.beginHandOver();
  inbox.handOverDone();
  inbox.answer(2);
  inbox.receive(msg(4));
  assert.deepEqual(inbox.failTurn({ retry: true }), {
    retry: [msg(1), msg(3)],
    failed: [],
    answered: [msg(2)],
  });
  assert.equal(inbox.turn.phase, "idle");
  assert.deepEqual(inbox.pendingIds, [1, 3, 4]);
  assert.deepEqual(ids(inbox.beginHandOver()!.batch), [1, 3, 4], "redelivered, in order");
});

Deno.test("inbox: a hand-over voided by a crash meanwhile delivers nothing", () => {
  const inbox = caughtUp();
  inbox.receive(msg(1));
  inbox.beginHandOver();
  inbox.failTurn({ retry: true }); // The provider died while its stdin was being written.
  assert.equal(inbox.handOverDone(), false);
  assert.equal(inbox.turn.phase, "idle");
  assert.deepEqual(inbox.pendingIds, [1]);
  assert.equal(inbox.receive(msg(1)), false, "still queued, not duplicated");
});

Deno.test("inbox: a blocked Stop folds only the owed messages whose text it quoted", () => {
  const inbox = caughtUp();
  inbox.receive(msg(1));
  inbox.beginHandOver();
  inbox.handOverDone();
  inbox.receive(msg(2)); // Queued: its text is known.
  const { folded, announce } = inbox.foldIntoTurn([
    { messageId: 1, from: "bob", createdAt: 0, body: "m1" }, // Already in the turn.
    { messageId: 2, from: "bob", createdAt: 0, body: "m2" },
    { messageId: 9, from: "carol", createdAt: 0, body: "from the relay" },
    { messageId: 11, from: "dave", createdAt: 0 }, // Its text is not known here.
  ]);
  assert.deepEqual(ids(folded), [2, 9]);
  assert.deepEqual(ids(announce), [2, 9], "each folded message still needs its prompt mirrored");
  assert.equal(folded[0]!.body, "m2");
  assert.equal(folded[1]!.body, "from the relay");
  assert.deepEqual(ids(inbox.turnMessages), [1, 2, 9]);
  assert.equal(inbox.pendingCount, 0);
  assert.equal(inbox.receive(msg(9)), false, "folded counts as delivered");
  assert.equal(inbox.receive(msg(11)), true, "a message without its text is left for delivery");
});

Deno.test("inbox: after a crash, queued mark-reads and replies are neither delivered nor answered again", () => {
  const inbox = caughtUp();
  inbox.recall({ markedRead: [1], answered: [2] });
  assert.equal(inbox.receive(msg(1)), false);
  assert.equal(inbox.receive(msg(2)), false);
  assert.equal(inbox.claimMarkRead(1), false, "its mark-read is already queued");
  assert.equal(inbox.claimMarkRead(2), true);
  assert.equal(inbox.claimMarkRead(2), false, "once");
});

Deno.test("inbox: pushed messages wait until a catch-up poll has succeeded, at start and after a reconnect", () => {
  const inbox = new Inbox(AGENT);
  assert.equal(inbox.sync, "behind");
  inbox.receive(msg(10)); // Pushed before the first poll.
  assert.equal(inbox.beginHandOver(), undefined);
  inbox.beginPoll();
  inbox.endPoll({ caughtUp: false }); // The poll failed (a 500).
  assert.equal(inbox.beginHandOver(), undefined, "still behind: an older message may wait");
  inbox.beginPoll();
  inbox.acceptPage([msg(4)], { limit: 100 });
  inbox.endPoll({ caughtUp: true });
  assert.deepEqual(ids(inbox.beginHandOver()!.batch), [4, 10]);
  inbox.handOverDone();
  inbox.endTurn();
  inbox.fallBehind(); // The bus reconnected.
  inbox.receive(msg(12));
  assert.equal(inbox.beginHandOver(), undefined);
});

Deno.test("inbox: a failed turn is retried turnRetries times, then fails for good, once", () => {
  const inbox = caughtUp({ turnRetries: 1 });
  inbox.receive(msg(1));
  inbox.beginHandOver();
  inbox.handOverDone();
  assert.deepEqual(ids(inbox.failTurn({ retry: true }).retry), [1], "first failure: retried");
  inbox.beginHandOver();
  inbox.handOverDone();
  const second = inbox.failTurn({ retry: true });
  assert.deepEqual(ids(second.failed), [1], "second failure: failed for good");
  assert.equal(inbox.pendingCount, 0);
  assert.equal(inbox.receive(msg(1)), false, "never delivered again");
  assert.equal(inbox.answered(1), true, "the failure reply is its answer");
});

Deno.test("inbox: an interrupted turn fails for good at once; a runner restart costs no try", () => {
  const inbox = caughtUp({ turnRetries: 1 });
  inbox.receive(msg(1));
  inbox.receive(msg(2));
  inbox.beginHandOver();
  inbox.handOverDone();
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(ids(inbox.failTurn({ retry: true, free: true }).retry), [1, 2]);
    inbox.beginHandOver();
    inbox.handOverDone();
  }
  inbox.answer(1);
  assert.deepEqual(inbox.failTurn({ retry: false }), {
    retry: [],
    failed: [msg(2)],
    answered: [msg(1)],
  });
});

Deno.test("inbox: a poll begun before a reconnect does not count as the catch-up poll", () => {
  const inbox = caughtUp();
  assert.equal(inbox.beginPoll(), true); // The bus is down: a fallback poll is in flight.
  inbox.fallBehind(); // The bus reconnects meanwhile.
  assert.equal(inbox.beginPoll(), false, "the catch-up poll waits for the one in flight");
  inbox.acceptPage([], { limit: 100 });
  assert.equal(inbox.endPoll({ caughtUp: true }), true, "the catch-up poll runs next");
  assert.equal(inbox.sync, "behind", "the old poll may have missed what the bus did not push");
  inbox.receive(msg(50));
  assert.equal(inbox.beginHandOver(), undefined);
  inbox.beginPoll();
  inbox.acceptPage([msg(45)], { limit: 100 });
  inbox.endPoll({ caughtUp: true });
  assert.equal(inbox.sync, "caught-up");
  assert.deepEqual(ids(inbox.beginHandOver()!.batch), [45, 50]);
});

Deno.test("inbox: a message answered during a hand-over a crash voids is not handed over again", () => {
  const inbox = caughtUp();
  inbox.receive(msg(1));
  inbox.beginHandOver();
  assert.deepEqual(ids(inbox.answer()), [1]); // Answered before deliver() returned...
  assert.deepEqual(ids(inbox.failTurn({ retry: true }).answered), [1]); // ...then it died.
  assert.equal(inbox.handOverDone(), false);
  assert.equal(inbox.pendingCount, 0);
  assert.equal(inbox.beginHandOver(), undefined);
  assert.equal(inbox.receive(msg(1)), false);
});
