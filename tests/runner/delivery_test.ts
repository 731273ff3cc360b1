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
import { FakeClock } from "../support/fake_clock.ts";

const AGENT = "alice";

function msg(id: number, extra: Partial<Message> = {}): Message {
  return { id, from: "bob", to: AGENT, kind: "chat", body: `m${id}`, createdAt: "", ...extra };
}

/** Lets pending promise callbacks run (the fake clock runs timers, not microtasks). */
const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

function setup(options: { pages?: Array<Message[] | Error> } = {}) {
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
  events.attach({
    enqueue: (input) => {
      const event = readOutgoing({ kind: input.kind, payload: input.payload });
      assert.ok(event, `a well-formed ${input.kind} event`);
      sent.push(event);
      return { seq: sent.length, idempotencyKey: String(sent.length), coalesced: false };
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
  const pages = [...(options.pages ?? [])];
  let polls = 0;
  const delivery = new Delivery({
    inbox,
    events,
    clock,
    obligations: { annotate: () => {}, markDirty: () => {}, markAnswered: () => {} },
    poll: () => {
      polls++;
      const page = pages.shift() ?? [];
      return page instanceof Error ? Promise.reject(page) : Promise.resolve(page);
    },
    readyAdapter: () => adapter,
    stopping: () => false,
    onHandingChange: () => {},
    onPollSuccess: () => {},
    onDelivered: () => {},
  });
  const kinds = () =>
    sent.map((e) =>
      e.kind === "message"
        ? `${e.payload.kind}:${e.payload.replyTo ?? e.payload.body}`
        : e.kind === "mark-read"
        ? `read:${e.payload.messageId}`
        : e.kind
    );
  return {
    clock,
    inbox,
    delivery,
    handed,
    kinds,
    polls: () => polls,
    failNext: () => (failNext = true),
  };
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
  const t = setup();
  t.delivery.receive(msg(1));
  t.clock.tick(0);
  await settle();
  t.delivery.respond("hi", t.clock.now());
  t.delivery.endTurn(true);
  assert.deepEqual(t.kinds(), ["session:m1", "chat:1", "read:1"]);
});

Deno.test("delivery: a failed hand-over is retried, without a second prompt echo", async () => {
  const t = setup();
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
  const t = setup();
  t.delivery.receive(msg(1));
  t.clock.tick(0);
  await settle();
  t.delivery.failTurn("the provider exited with code 1");
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
