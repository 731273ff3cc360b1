/**
 * Delivery around the inbox, with a fake adapter, a fake relay poll and the fake clock: what is
 * handed over, in what order, and what goes out (prompts, replies, mark-reads). No process.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ProviderAdapter } from "../../src/adapters/mod.ts";
import { Delivery, POLL_RETRY_MS } from "../../src/runner/delivery.ts";
import { EventQueue } from "../../src/runner/event_queue.ts";
import { Inbox } from "../../src/runner/inbox.ts";
import { type Outgoing, readOutgoing } from "../../src/runner/outgoing.ts";
import type { Message } from "../../src/types.ts";
import { OversizedAnswerError } from "../../src/relay/mod.ts";
import { FakeClock } from "../support/fake_clock.ts";

const AGENT = "alice";

function msg(id: number, extra: Partial<Message> = {}): Message {
  return { id, from: "bob", to: AGENT, kind: "chat", body: `m${id}`, createdAt: "", ...extra };
}

/** Lets pending promise callbacks run (the fake clock runs timers, not microtasks). */
const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

/** A poll answer: the page, or a failure. `after`, when the relay pages by it. */
type PageSource =
  | Array<Message[] | Error>
  | ((after: number | undefined, limit: number) => Message[]);

function setup(options: { pages?: PageSource; repliesPerMinute?: number } = {}) {
  const clock = new FakeClock();
  const inbox = new Inbox(AGENT);
  const sent: Outgoing[] = [];
  const events = new EventQueue({
    agentId: AGENT,
    provider: "command",
    project: "/tmp",
    sessionId: () => "s",
    now: () => clock.now(),
  });
  /** Kinds of event the outbox cannot store for now (a full disk). */
  const refused = new Set<string>();
  events.attach({
    enqueue: (input) => {
      if (refused.has(input.kind)) throw new Error("Outbox could not store it: disk is full");
      const event = readOutgoing({ kind: input.kind, payload: input.payload });
      assert.ok(event, `a well-formed ${input.kind} event`);
      sent.push(event);
      return { seq: sent.length, idempotencyKey: String(sent.length), durable: true };
    },
  });
  const handed: number[][] = [];
  let failNext = false;
  const adapter = {
    deliver: (messages: Message[]) => {
      if (failNext) {
        failNext = false;
        return Promise.reject(new Error("stdin closed"));
      }
      handed.push(messages.map((m) => m.id));
      return Promise.resolve();
    },
  } as Pick<ProviderAdapter, "deliver"> as ProviderAdapter;
  const source = options.pages ?? [];
  const pages = typeof source === "function" ? [] : [...source];
  const afters: Array<number | undefined> = [];
  let polls = 0;
  const delivery = new Delivery({
    inbox,
    events,
    clock,
    obligations: { annotate: () => {}, markDirty: () => {}, markAnswered: () => {} },
    poll: ({ after, limit }) => {
      polls++;
      afters.push(after);
      if (typeof source === "function") {
        try {
          return Promise.resolve(source(after, limit));
        } catch (error) {
          return Promise.reject(error);
        }
      }
      const page = pages.shift() ?? [];
      return page instanceof Error ? Promise.reject(page) : Promise.resolve(page);
    },
    readyAdapter: () => adapter,
    stopping: () => false,
    onHandingChange: () => {},
    onPollSuccess: () => {},
    onDelivered: () => {},
    retryBackoff: { baseMs: 1_000, maxMs: 1_000 },
    ...(options.repliesPerMinute ? { repliesPerMinute: options.repliesPerMinute } : {}),
  });
  const receipts = () =>
    sent.flatMap((e) => e.kind === "receipt" ? [`${e.payload.messageId}:${e.payload.state}`] : []);
  const kinds = () =>
    sent.filter((e) => e.kind !== "receipt").map((e) =>
      e.kind === "message"
        ? `${e.payload.kind}:${e.payload.replyTo ?? e.payload.body}`
        : e.kind === "mark-read"
        ? `read:${e.payload.messageId}`
        : e.kind
    );
  const t = {
    clock,
    inbox,
    delivery,
    handed,
    kinds,
    receipts,
    sent: () => sent.filter((e) => e.kind !== "receipt"),
    afters,
    polls: () => polls,
    failNext: () => (failNext = true),
    refused,
    /** Runs every timer due within `ms`, letting promises settle between. */
    run: async (ms = 0) => {
      for (let i = 0; i < 5; i++) {
        t.clock.tick(i === 0 ? ms : 0);
        await settle();
      }
    },
  };
  return t;
}

/** A delivery whose first catch-up poll found nothing. */
async function ready() {
  const t = setup();
  t.delivery.pollSoon(0);
  await t.run();
  return t;
}

Deno.test("delivery: a message pushed during the first poll waits for the poll's older messages", async () => {
  const t = setup({ pages: [[msg(1), msg(2)]] });
  t.delivery.pollSoon(0);
  t.delivery.receive(msg(3)); // Pushed before the poll's timer even ran.
  t.clock.tick(0);
  await settle();
  t.clock.tick(0);
  await settle();
  assert.deepEqual(t.handed, [[1, 2, 3]]);
  assert.deepEqual(
    t.kinds(),
    ["session:m1", "session:m2", "session:m3"],
    "each prompt mirrored once",
  );
});

Deno.test("delivery: a response answers the turn and marks each message read with its reply", async () => {
  const t = await ready();
  t.delivery.receive(msg(1));
  t.clock.tick(0);
  await settle();
  t.delivery.respond("hi", t.clock.now());
  t.delivery.endTurn(true);
  assert.deepEqual(t.kinds(), ["session:m1", "chat:1", "read:1"]);
  assert.deepEqual(t.receipts(), ["1:received", "1:handed", "1:answered"]);
});

Deno.test("delivery: an answer the outbox cannot store leaves its message unread, never read without it", async () => {
  const t = await ready();
  t.delivery.receive(msg(1));
  t.clock.tick(0);
  await settle();
  t.refused.add("message"); // the reply is refused; a small mark-read would still fit
  t.delivery.respond("hi", t.clock.now());
  t.delivery.endTurn(true);
  assert.deepEqual(t.kinds(), ["session:m1"]);
  assert.deepEqual(t.receipts(), ["1:received", "1:handed"]);

  // Room again: the next message is answered and read as usual.
  t.refused.clear();
  t.delivery.receive(msg(2));
  await t.run();
  t.delivery.respond("hello", t.clock.now());
  t.delivery.endTurn(true);
  assert.deepEqual(t.kinds(), ["session:m1", "session:m2", "chat:2", "read:2"]);
});

Deno.test("delivery: a failed hand-over is retried, without a second prompt echo", async () => {
  const t = await ready();
  t.failNext();
  t.delivery.receive(msg(1));
  t.clock.tick(0);
  await settle();
  assert.deepEqual(t.handed, []);
  t.clock.tick(1_000);
  await settle();
  assert.deepEqual(t.handed, [[1]]);
  assert.deepEqual(t.kinds(), ["session:m1"]);
});

Deno.test("delivery: a turn failed by a crash is handed over again after the restart", async () => {
  const t = await ready();
  t.delivery.receive(msg(1));
  t.clock.tick(0);
  await settle();
  t.delivery.failTurn("the provider exited with code 1", { cause: "crash" });
  t.clock.tick(1_000); // The retry's backoff.
  t.delivery.drainSoon(0);
  t.clock.tick(0);
  await settle();
  assert.deepEqual(t.handed, [[1], [1]]);
  t.delivery.respond("done", t.clock.now());
  t.delivery.endTurn(true);
  assert.deepEqual(t.kinds(), ["session:m1", "chat:1", "read:1"], "one prompt, one reply");
});

Deno.test("delivery: a failed poll is retried until it succeeds, and then delivers", async () => {
  const t = setup({ pages: [new Error("relay 500"), [msg(4)]] });
  t.delivery.pollSoon(0);
  t.clock.tick(0);
  await settle();
  assert.equal(t.polls(), 1);
  assert.deepEqual(t.handed, []);
  t.clock.tick(POLL_RETRY_MS);
  await settle();
  t.clock.tick(0);
  await settle();
  assert.equal(t.polls(), 2);
  assert.deepEqual(t.handed, [[4]]);
});

Deno.test("delivery: while the bus is down the inbox is polled every 5 s, and not once it is back", async () => {
  const t = setup();
  t.delivery.busDown(true);
  t.delivery.busDown(true); // A second state change keeps the same rhythm.
  for (let i = 1; i <= 3; i++) {
    t.clock.tick(POLL_RETRY_MS);
    await settle();
    assert.equal(t.polls(), i);
  }
  t.delivery.busDown(false);
  t.clock.tick(POLL_RETRY_MS * 3);
  await settle();
  assert.equal(t.polls(), 3);
  t.delivery.cancelTimers();
});

Deno.test("delivery: non-chat messages on a polled page are marked read, never handed over", async () => {
  const t = setup({ pages: [[msg(1, { kind: "session" }), msg(2)]] });
  t.delivery.pollSoon(0);
  t.clock.tick(0);
  await settle();
  t.clock.tick(0);
  await settle();
  assert.deepEqual(t.handed, [[2]]);
  assert.deepEqual(t.kinds(), ["read:1", "session:m2"]);
});

Deno.test("delivery: a turn that fails twice ends in one failure reply, marked read and answered", async () => {
  const t = await ready();
  t.delivery.receive(msg(1));
  await t.run();
  t.delivery.endTurn(false, "the model API answered 500");
  await t.run(1_000);
  assert.deepEqual(t.handed, [[1], [1]], "retried once");
  t.delivery.endTurn(false, "the model API answered 500");
  await t.run(5_000);
  assert.deepEqual(t.handed, [[1], [1]], "not a third time");
  assert.deepEqual(t.kinds(), ["session:m1", "chat:1", "read:1"]);
  assert.deepEqual(t.receipts(), ["1:received", "1:handed", "1:handed", "1:failed"]);
  const reply = t.sent()[1]!;
  assert.equal(reply.kind, "message");
  if (reply.kind === "message") {
    assert.deepEqual(reply.payload.payload, {
      status: "failed",
      error: "The model API answered 500.",
    });
    assert.match(reply.payload.body, /could not answer message 1: The model API answered 500/);
  }
});

Deno.test("delivery: a failure reply the outbox cannot store leaves its message unread", async () => {
  const t = await ready();
  t.delivery.receive(msg(1));
  await t.run();
  t.delivery.endTurn(false, "the model API answered 500");
  await t.run(1_000);
  t.refused.add("message");
  t.delivery.endTurn(false, "the model API answered 500");
  await t.run(5_000);
  assert.deepEqual(t.handed, [[1], [1]]);
  assert.deepEqual(t.kinds(), ["session:m1"], "no mark-read without the failure reply");
  assert.deepEqual(t.receipts(), ["1:received", "1:handed", "1:handed", "1:failed"]);
});

Deno.test("delivery: an operator's interrupt fails the turn for good, without a retry", async () => {
  const t = await ready();
  t.delivery.receive(msg(1));
  await t.run();
  t.delivery.interrupt();
  t.delivery.failTurn("the provider exited with code 130", { cause: "crash" });
  await t.run(5_000);
  assert.deepEqual(t.handed, [[1]]);
  assert.deepEqual(t.kinds(), ["session:m1", "chat:1", "read:1"]);
  const reply = t.sent()[1]!;
  if (reply.kind === "message") {
    assert.deepEqual(reply.payload.payload, {
      status: "failed",
      error: "The turn was interrupted by an operator.",
    });
  }
});

Deno.test("delivery: the catch-up poll pages with after= until a short page", async () => {
  const all = Array.from({ length: 250 }, (_, i) => msg(i + 1));
  const t = setup({ pages: (after) => all.filter((m) => m.id > (after ?? 0)).slice(0, 100) });
  t.delivery.pollSoon(0);
  await t.run();
  assert.deepEqual(t.afters, [undefined, 100, 200]);
  assert.equal(t.inbox.sync, "caught-up");
  assert.equal(t.handed.length, 1);
  assert.deepEqual(t.handed[0], all.slice(0, 20).map((m) => m.id), "oldest first");
});

Deno.test("delivery: a relay that ignores after= does not make the poll loop", async () => {
  const full = Array.from({ length: 100 }, (_, i) => msg(i + 1));
  const t = setup({ pages: () => full });
  t.delivery.pollSoon(0);
  await t.run();
  assert.deepEqual(t.afters, [undefined, 100], "the second page repeated the first: stop");
  assert.equal(t.inbox.sync, "caught-up");
});

Deno.test("delivery: order holds through a reconnect whose catch-up poll fails once", async () => {
  const t = setup({ pages: [[], new Error("relay 500"), [msg(3)]] });
  t.delivery.pollSoon(0);
  await t.run();
  t.inbox.fallBehind(); // The bus reconnected...
  t.delivery.pollSoon(0);
  t.delivery.receive(msg(9)); // ...and pushed a new message on the new connection.
  await t.run();
  assert.equal(t.polls(), 2);
  assert.deepEqual(t.handed, [], "held: the failed poll may have missed older messages");
  await t.run(POLL_RETRY_MS);
  assert.equal(t.polls(), 3);
  assert.deepEqual(t.handed, [[3, 9]], "the older one first");
});

Deno.test("delivery: a reply the agent was shown gets no reply back (no ping-pong), only the mirror", async () => {
  const t = await ready();
  t.delivery.receive(msg(5, { replyTo: 2 })); // Another agent's answer to something we said.
  await t.run();
  t.delivery.respond("thanks!", t.clock.now());
  t.delivery.endTurn(true);
  assert.deepEqual(t.kinds(), ["session:m5", "session:thanks!", "read:5"]);
  assert.deepEqual(t.receipts(), ["5:received", "5:handed", "5:answered"]);
});

Deno.test("delivery: past the per-peer rate, replies are held unsent and unread, and a loop is reported once", async () => {
  const t = setup({ pages: [[]], repliesPerMinute: 2 });
  t.delivery.pollSoon(0);
  await t.run();
  for (let id = 1; id <= 4; id++) {
    t.delivery.receive(msg(id));
    await t.run();
    t.delivery.respond(`r${id}`, t.clock.now());
    t.delivery.endTurn(true);
    await t.run();
  }
  const chats = () => t.kinds().filter((k) => k.startsWith("chat:"));
  assert.deepEqual(chats(), ["chat:1", "chat:2"], "the third and fourth are held");
  assert.equal(t.sent().filter((e) => e.kind === "insight").length, 1, "one loop_suspected");
  assert.ok(!t.kinds().includes("read:3"), "a held reply's message stays unread until it is sent");
  await t.run(61_000);
  await t.run(5_000);
  assert.deepEqual(chats(), ["chat:1", "chat:2", "chat:3", "chat:4"], "sent once the rate falls");
  assert.ok(t.kinds().includes("read:4"));
  t.delivery.cancelTimers();
});

Deno.test("delivery: a message too large to read is refused with a failure reply and marked read; the rest goes on", async () => {
  const t = setup({
    pages: (after, limit) => {
      if ((after ?? 0) < 7) {
        throw new OversizedAnswerError("over the limit", {
          limit: 4 * 1024 * 1024,
          ...(limit === 1 ? { first: { id: 7, from: "mallory" } } : {}),
        });
      }
      return after === 7 ? [msg(8)] : [];
    },
  });
  t.delivery.pollSoon(0);
  await t.run();
  assert.deepEqual(t.handed, [[8]]);
  assert.deepEqual(t.afters, [undefined, undefined, 7]);
  assert.deepEqual(t.kinds().slice(0, 2), ["chat:7", "read:7"]);
  const reply = t.sent()[0]!;
  if (reply.kind === "message") {
    assert.equal(reply.payload.to, "mallory");
    assert.match(
      String((reply.payload.payload as { error: string }).error),
      /too large to deliver/,
    );
  }
});

Deno.test("delivery: a turn that fails after answering settles what it answered (read, tasks done)", async () => {
  const t = await ready();
  t.delivery.receive(msg(7, { replyTo: 3, taskId: "T1" })); // A reply: answered to the mirror.
  t.delivery.receive(msg(8, { taskId: "T2" }));
  await t.run();
  t.delivery.respond("ok", t.clock.now());
  t.delivery.endTurn(false, "the model API answered 500");
  await t.run(5_000);
  assert.ok(t.kinds().includes("read:7"), "the reply message is read");
  assert.ok(t.kinds().includes("read:8"));
  const tasks = t.sent().flatMap((e) =>
    e.kind === "task-status" ? [`${e.payload.taskId}:${e.payload.status}`] : []
  );
  assert.deepEqual(tasks.filter((x) => !x.endsWith("in_progress")), ["T1:done", "T2:done"]);
  assert.deepEqual(t.handed, [[7, 8]], "nothing answered is handed over again");
});
