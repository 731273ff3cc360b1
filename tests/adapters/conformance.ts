/**
 * The contract every provider adapter keeps, as one suite run against each adapter that works
 * here without a model (conformance_test.ts): start → idle; deliver → consumed, response,
 * turn-end, idle; a failed turn ends not ok once and the next delivery works; interrupt (a
 * running turn's, and an idle one that harms nothing); stop resolves with the child gone and one
 * expected exit; an unexpected exit reported once; stop during start.
 *
 * @module
 */
import assert from "node:assert/strict";
import type {
  AdapterEvents,
  ProviderAdapter,
  SessionEvent,
  Spawner,
} from "../../src/adapters/adapter.ts";
import type { AgentStatus, Message } from "../../src/types.ts";
import { waitFor } from "../support/wait.ts";

/** An adapter under test, as {@linkcode ConformanceSubject.create} builds it. */
export interface SubjectRun {
  adapter: ProviderAdapter;
  /** Removes what the subject made (temp dirs); the suite has stopped the adapter by then. */
  cleanup(): Promise<void>;
}

/** One adapter the suite runs against. */
export interface ConformanceSubject {
  name: string;
  /** Builds an adapter (not started) that spawns through `spawn` and reports to `events`. */
  create(events: AdapterEvents, spawn: Spawner): Promise<SubjectRun>;
  /** The response to a message with body `body`. */
  responseTo(body: string): string;
  /**
   * A message body the provider takes in and leaves unanswered until interrupted; without one,
   * the interrupt of a running turn is not checked.
   */
  hangingBody?: string;
  /** A message body whose turn the provider fails (as after a model API error). */
  failingBody: string;
}

type Exit = { code: number | null; signal: string | null; expected: boolean };

/** What an adapter reported, and the children it spawned. */
class Record implements AdapterEvents {
  readonly statuses: AgentStatus[] = [];
  readonly events: SessionEvent[] = [];
  readonly exits: Exit[] = [];
  /** Every child spawned, and whether it has exited. */
  readonly children: { child: Deno.ChildProcess; exited: boolean }[] = [];

  status(status: AgentStatus): void {
    this.statuses.push(status);
  }
  event(event: SessionEvent): void {
    this.events.push(event);
  }
  exit(info: Exit): void {
    this.exits.push(info);
  }
  diagnostic(): void {}

  of<T extends SessionEvent["type"]>(type: T): Extract<SessionEvent, { type: T }>[] {
    return this.events.filter((e): e is Extract<SessionEvent, { type: T }> => e.type === type);
  }

  /** A spawner that keeps every child it starts. */
  watching(spawn: Spawner): Spawner {
    return (command, options) => {
      const child = spawn(command, options);
      const entry = { child, exited: false };
      this.children.push(entry);
      child.status.finally(() => (entry.exited = true));
      return child;
    };
  }

  /** Resolves once every child spawned so far has exited. */
  async childrenGone(): Promise<void> {
    await waitFor(
      "every spawned child to exit",
      () => this.children.every((c) => c.exited),
      { timeoutMs: 10_000 },
    );
  }
}

function message(id: number, body: string): Message {
  return {
    id,
    from: "alice",
    to: "agent-1",
    kind: "chat",
    body,
    createdAt: "2026-11-27T12:00:00.000Z",
  };
}

/** Registers the conformance tests of `subject`. */
export function conformanceSuite(subject: ConformanceSubject, spawn: Spawner): void {
  const test = (name: string, fn: (run: SubjectRun, rec: Record) => Promise<void>) =>
    Deno.test(`conformance (${subject.name}): ${name}`, async () => {
      const rec = new Record();
      const run = await subject.create(rec, rec.watching(spawn));
      try {
        await fn(run, rec);
      } finally {
        await run.adapter.stop({ timeoutMs: 3_000 });
        await rec.childrenGone();
        await run.cleanup();
      }
    });

  test(
    "start → idle; deliver → consumed, response, turn-end, idle; stop → gone",
    async (run, rec) => {
      const { adapter } = run;
      await adapter.start();
      assert.equal(rec.statuses.at(-1), "idle");
      const pid = adapter.pid;
      assert.ok(pid !== undefined, "a pid while running");
      await adapter.deliver([message(1, "hello")]);
      await waitFor("the turn's end", () => rec.of("turn-end").length === 1);
      await waitFor("idle after the turn", () => rec.statuses.at(-1) === "idle");
      assert.deepEqual(rec.of("consumed"), [{ type: "consumed", messageIds: [1] }]);
      assert.deepEqual(rec.of("response").map((e) => e.text), [subject.responseTo("hello")]);
      assert.equal(rec.of("turn-end")[0]?.ok, true);
      const types = rec.events.map((e) => e.type);
      assert.ok(types.indexOf("consumed") < types.indexOf("response"), types.join(","));
      assert.ok(types.indexOf("response") < types.indexOf("turn-end"), types.join(","));
      assert.ok(rec.statuses.includes("busy"), rec.statuses.join(","));

      await adapter.stop({ timeoutMs: 3_000 });
      assert.deepEqual(rec.exits.map((e) => e.expected), [true]);
      assert.equal(adapter.pid, undefined);
      assert.equal(rec.children[0]?.exited, true, "the child has exited");
      await assert.rejects(() => adapter.deliver([message(2, "late")]), /not running/);
      await adapter.stop(); // a second stop is harmless
      assert.equal(rec.exits.length, 1);
    },
  );

  if (subject.hangingBody !== undefined) {
    const body = subject.hangingBody;
    test("interrupt ends a running turn not ok, and the adapter goes on", async (run, rec) => {
      const { adapter } = run;
      await adapter.start();
      await adapter.deliver([message(1, body)]);
      await waitFor("the hanging turn's messages consumed", () => rec.of("consumed").length === 1);
      assert.equal(rec.statuses.at(-1), "busy");
      await adapter.interrupt();
      await waitFor("the interrupted turn's end", () => rec.of("turn-end").length === 1);
      assert.equal(rec.of("turn-end")[0]?.ok, false);
      await waitFor("idle after the interrupt", () => rec.statuses.at(-1) === "idle");
      assert.deepEqual(rec.exits, []);
      await adapter.deliver([message(2, "after")]);
      await waitFor("the next turn's end", () => rec.of("turn-end").length === 2);
      assert.equal(rec.of("turn-end")[1]?.ok, true);
      assert.deepEqual(rec.of("response").map((e) => e.text).at(-1), subject.responseTo("after"));
    });
  }

  test("a failed turn: turn-end ok:false once, then the next delivery works", async (run, rec) => {
    const { adapter } = run;
    await adapter.start();
    await adapter.deliver([message(1, subject.failingBody)]);
    await waitFor("the failed turn's end", () => rec.of("turn-end").length === 1);
    const failed = rec.of("turn-end")[0];
    assert.equal(failed?.ok, false);
    // One sentence on one line, for the sender's failure reply.
    assert.match(failed?.error ?? "", /^[^\n]{1,300}$/);
    assert.deepEqual(rec.of("response"), []);
    await waitFor("ready again", () => ["idle", "error"].includes(rec.statuses.at(-1) ?? ""));
    await adapter.deliver([message(2, "after")]);
    await waitFor("the next turn's end", () => rec.of("turn-end").length >= 2);
    assert.deepEqual(rec.of("turn-end").map((e) => e.ok), [false, true]);
    assert.deepEqual(rec.of("response").map((e) => e.text), [subject.responseTo("after")]);
    assert.equal(rec.statuses.at(-1), "idle");
    assert.deepEqual(rec.exits, []);
  });

  test("interrupt while idle harms nothing; stop still leaves nothing behind", async (run, rec) => {
    const { adapter } = run;
    await adapter.start();
    await adapter.interrupt();
    // The provider is still there and answers.
    await adapter.deliver([message(1, "still here")]);
    await waitFor("the turn's end", () => rec.of("turn-end").length === 1);
    assert.equal(rec.of("turn-end")[0]?.ok, true);
    assert.deepEqual(rec.of("response").map((e) => e.text), [subject.responseTo("still here")]);
    assert.deepEqual(rec.exits, []);
    await adapter.stop({ timeoutMs: 3_000 });
    assert.equal(adapter.pid, undefined);
    await rec.childrenGone();
    assert.ok(rec.exits.length <= 1, JSON.stringify(rec.exits));
  });

  test("an unexpected exit is reported once, and deliveries then fail", async (run, rec) => {
    const { adapter } = run;
    await adapter.start();
    Deno.kill(adapter.pid!, "SIGKILL");
    await waitFor("the exit report", () => rec.exits.length === 1);
    assert.deepEqual(rec.exits, [{ code: 137, signal: "SIGKILL", expected: false }]);
    assert.equal(adapter.pid, undefined);
    await assert.rejects(() => adapter.deliver([message(1, "late")]), /not running/);
    await adapter.stop();
    assert.equal(rec.exits.length, 1);
  });

  test("stop during start resolves, the start settles, and no child is left", async (run, rec) => {
    const { adapter } = run;
    const starting = adapter.start().then(() => "started", () => "failed");
    await adapter.stop({ timeoutMs: 3_000 });
    const outcome = await starting;
    if (outcome === "started") await adapter.stop({ timeoutMs: 3_000 });
    assert.equal(adapter.pid, undefined);
    await rec.childrenGone();
    assert.ok(rec.exits.every((e) => e.expected), JSON.stringify(rec.exits));
  });
}
