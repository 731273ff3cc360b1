/**
 * The outbox's lifecycle: `close()` mid-send, `flush()`, `stop()` and `start()`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { SendResult } from "../../src/outbox/mod.ts";
import { waitFor } from "../support/wait.ts";
import {
  deferred,
  HOUR,
  nextChange,
  okAll,
  open,
  TestClock,
  transientError,
  withDir,
} from "./support.ts";

Deno.test("defect 3: close() mid-send is clean whatever the send does afterwards", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    // A send that ignores the signal and settles after close, each way it can settle.
    for (const settleWith of ["resolve", "reject", "abort-reject"] as const) {
      const gate = deferred<SendResult[]>();
      let signal: AbortSignal | undefined;
      using outbox = open(dir, clock, {
        send: (_records, options) => {
          signal = options.signal;
          if (settleWith === "abort-reject") {
            return new Promise((_, reject) =>
              options.signal.addEventListener("abort", () => reject(options.signal.reason))
            );
          }
          return gate.promise;
        },
      });
      const { seq } = outbox.enqueue({ kind: "e", payload: settleWith });
      outbox.start();
      await waitFor("the send", () => outbox.stats().inFlight === 1);
      assert.equal(outbox.stats().inFlight, 1);
      outbox.close();
      assert.equal(signal?.aborted, true, "the send is told to stop");
      if (settleWith === "resolve") gate.resolve([{ ok: true }]);
      if (settleWith === "reject") gate.reject(new Error("socket closed"));
      // stop() resolves once the pump has let go of the settled send.
      await outbox.stop();
      // The record stays for the next opener, with its key; nothing ran on the closed database.
      using next = open(dir, clock);
      assert.deepEqual(next.list().map((r) => r.seq), [seq]);
      next.purge({ all: true });
      next.close();
    }
    // close() during a backoff wait, before start, twice.
    using failing = open(dir, clock, { send: () => Promise.reject(transientError()) });
    failing.enqueue({ kind: "e" });
    failing.start();
    await waitFor("the first failure", () => failing.stats().consecutiveFailures === 1);
    assert.equal(failing.stats().consecutiveFailures, 1);
    failing.close();
    failing.close();
    assert.equal(clock.armed, 0, "no timer is left behind");
    await clock.advance(HOUR);
    using _idle = open(dir, clock);
  });
});

Deno.test("outbox: flush() resolves when drained, or as soon as a send fails", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    let fail = false;
    using outbox = open(dir, clock, {
      batchSize: 3,
      send: async (records) => {
        await new Promise((resolve) => setTimeout(resolve, 0));
        if (fail) throw transientError();
        return records.map(() => ({ ok: true as const }));
      },
    });
    assert.equal(await outbox.flush(), 0, "not started: nothing to wait for");
    for (let i = 0; i < 10; i++) outbox.enqueue({ kind: "e" });
    outbox.start();
    assert.equal(await outbox.flush(), 0);
    fail = true;
    outbox.enqueue({ kind: "e" });
    assert.equal(await outbox.flush(), 1);
    const controller = new AbortController();
    controller.abort();
    assert.equal(await outbox.flush({ signal: controller.signal }), 1);
    // A flush waiting on a send that hangs ends with close() (or its signal).
    await outbox.stop();
    fail = false;
    const hang = deferred<void>();
    using stuck = open(dir, clock, {
      path: join(dir, "stuck.sqlite"),
      send: async (records) => {
        await hang.promise;
        return records.map(() => ({ ok: true as const }));
      },
    });
    stuck.enqueue({ kind: "e" });
    stuck.start();
    const waiting = stuck.flush();
    await waitFor("the hanging send", () => stuck.stats().inFlight === 1);
    stuck.close();
    assert.equal(await waiting, 1);
    hang.resolve();
    await stuck.stop();
  });
});

Deno.test("outbox: stop() lets go and start() resumes; start() needs a send", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    using inspector = open(dir, clock);
    assert.throws(() => inspector.start(), /has no send function/);
    inspector.close();
    const sent: number[] = [];
    using outbox = open(dir, clock, {
      send: (records) => {
        sent.push(...records.map((r) => r.seq));
        return okAll(records, { signal: new AbortController().signal });
      },
    });
    outbox.start();
    await outbox.stop();
    // The enqueue's notification comes after the pump's chance to send (a started pump sends
    // before it): once it has arrived, a send would have been seen.
    const enqueued = nextChange(outbox, "enqueued");
    outbox.enqueue({ kind: "e" });
    await enqueued;
    assert.deepEqual(sent, [], "stopped: queued, not sent");
    assert.equal(clock.armed, 0);
    outbox.start();
    await waitFor("the send after start()", () => sent.length > 0);
    assert.deepEqual(sent, [1]);
    await outbox.stop();
    outbox.close();
    assert.throws(() => outbox.start(), /is closed/);
  });
});
