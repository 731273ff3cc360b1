/**
 * The operator's operations: poisoned events (ERROR log with the commands to fix it, requeue)
 * and purge.
 *
 * @module
 */
import assert from "node:assert/strict";
import { operatorFlags } from "../../src/outbox/queue.ts";
import type { OutboxRecord } from "../../src/outbox/mod.ts";
import { waitFor } from "../support/wait.ts";
import { open, TestClock, withDir, withLogs } from "./support.ts";

Deno.test("defect 4: a permanent failure poisons at once, logs an ERROR with complete commands, and can be requeued", async () => {
  await withLogs(async (entries) => {
    await withDir(async (dir) => {
      const clock = new TestClock();
      let refuse = true;
      const delivered: unknown[] = [];
      using outbox = open(dir, clock, {
        batchSize: 1,
        send: (records) => {
          const r = records[0] as OutboxRecord;
          if (refuse && r.payload === "bad") {
            // No `permanent` in the result: the classifier reads the error's own flag.
            const error = Object.assign(new Error("HTTP 400: body.to is required"), {
              permanent: true,
            });
            return Promise.resolve([{ ok: false, error }]);
          }
          delivered.push(r.payload);
          return Promise.resolve([{ ok: true }]);
        },
      });
      const bad = outbox.enqueue({ kind: "e", payload: "bad" });
      outbox.enqueue({ kind: "e", payload: "good" });
      outbox.start();
      await waitFor("the queue to drain", () => outbox.stats().pending === 0);
      assert.deepEqual(delivered, ["good"], "the poisoned head does not block the queue");
      const [poisoned] = outbox.poisoned();
      assert.equal(poisoned?.seq, bad.seq);
      assert.equal(poisoned?.idempotencyKey, bad.idempotencyKey);
      assert.equal(poisoned?.lastError, "HTTP 400: body.to is required");
      assert.equal(poisoned?.poisonedAt, clock.now());
      assert.equal(entries.filter((e) => e.level === "fatal").length, 0, "the runner goes on");
      const errors = entries.filter((e) => e.level === "error" && /poisoned/.test(e.message));
      assert.equal(errors.length, 1);
      assert.match(errors[0]?.message ?? "", /seq=1 kind=e poisoned .*body\.to is required/);
      assert.match(
        errors[0]?.message ?? "",
        /"agent-relay-runner outbox requeue --(agent-id|state-dir) \S+ --seq 1"/,
      );

      refuse = false;
      assert.equal(outbox.requeue(99), 0);
      assert.equal(outbox.requeue(bad.seq), 1);
      await waitFor("the requeued event's delivery", () => delivered.length > 1);
      assert.deepEqual(delivered, ["good", "bad"]);
      assert.deepEqual(outbox.stats().poisoned, 0);
      assert.equal(outbox.stats().delivered, 2);
      await outbox.stop();
    });
  });
});

Deno.test("outbox: purge removes one, the poisoned, or everything but what is in flight", async () => {
  await withDir((dir) => {
    const clock = new TestClock();
    using outbox = open(dir, clock);
    for (let i = 0; i < 5; i++) outbox.enqueue({ kind: "e", payload: i });
    assert.equal(outbox.purge({ seq: 2 }), 1);
    assert.equal(outbox.purge({ seq: 2 }), 0);
    assert.equal(outbox.purge({ poisoned: true }), 0);
    assert.deepEqual(outbox.list().map((r) => r.seq), [1, 3, 4, 5]);
    assert.throws(() => outbox.purge({} as never), /purge needs/);
    assert.equal(outbox.purge({ all: true }), 4);
    assert.equal(outbox.stats().pending, 0);
    assert.equal(outbox.enqueue({ kind: "e" }).seq, 6, "sequences are never reused");
    outbox.close();
    using again = open(dir, clock);
    again.purge({ all: true });
    assert.equal(again.enqueue({ kind: "e" }).seq, 7, "not even after a reopen of an empty file");
  });
});

Deno.test("outbox: the poisoned-event hint names the agent, or the state dir when it is not the default", () => {
  assert.equal(
    operatorFlags("alice", "/h/.agent-relay/state/alice/outbox/outbox.sqlite"),
    "--agent-id alice",
  );
  assert.equal(
    operatorFlags("alice", "/srv/alice state/outbox/outbox.sqlite"),
    '--state-dir "/srv/alice state"',
  );
  assert.equal(operatorFlags("alice", "/srv/a/outbox/outbox.sqlite"), "--state-dir /srv/a");
});
