/**
 * Retries: the jittered backoff, transient failures that never poison, restarts, `wake()`,
 * idempotency keys across retries, the backstop poll, and the failure classifier.
 *
 * @module
 */
import assert from "node:assert/strict";
import { defaultClassify, type OutboxSend, type SendResult } from "../../src/outbox/mod.ts";
import { failureText, readResults } from "../../src/outbox/send.ts";
import { backoffDelay, backoffStep } from "../../src/util/backoff.ts";
import { waitFor } from "../support/wait.ts";
import { deferred, HOUR, okAll, open, TestClock, transientError, withDir } from "./support.ts";

Deno.test("outbox: backoff doubles to the cap with jitter in [step/2, step]", () => {
  const shape = { baseMs: 1000, maxMs: 60_000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8, 100].map((n) => backoffStep(n, shape)),
    [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000],
  );
  for (let n = 1; n < 12; n++) {
    const step = backoffStep(n, shape);
    assert.equal(backoffDelay(n, shape, () => 0), step / 2, "never below half the step");
    assert.equal(backoffDelay(n, shape, () => 0.999999999), step);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(n, shape);
      assert.ok(d >= step / 2 && d <= step, `delay ${d} outside [${step / 2}, ${step}]`);
    }
  }
  assert.equal(backoffDelay(3, shape, () => 7), 4000, "a bad random source is clamped");
  assert.equal(backoffDelay(3, shape, () => -1), 2000);
});

/** The pump re-arms the same delay when it exits; collapse adjacent repeats. */
function dedupe(values: number[]): number[] {
  return values.filter((v, i) => i === 0 || values[i - 1] !== v);
}

Deno.test("outbox: retry delays follow the jittered backoff, reset after a delivery", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    let failing = true;
    const randoms = [0, 0.5, 0.999999, 0, 0.5, 0];
    using outbox = open(dir, clock, {
      backoff: { baseMs: 100, maxMs: 400 },
      random: () => randoms.shift() ?? 0,
      send: (records) =>
        failing
          ? Promise.reject(transientError())
          : Promise.resolve(records.map(() => ({ ok: true as const }))),
    });
    outbox.enqueue({ kind: "e" });
    outbox.start();
    await waitFor("the first failure", () => outbox.stats().consecutiveFailures === 1);
    for (let i = 0; i < 4; i++) await clock.advance(400);
    const retries = () => clock.delays.filter((d) => d !== HOUR);
    // steps 100, 200, 400, 400, 400 with random 0, .5, ~1, 0, .5
    assert.deepEqual(dedupe(retries()).slice(0, 5), [50, 150, 400, 200, 300]);
    failing = false;
    await clock.advance(400);
    await waitFor("the queue to drain", () => outbox.stats().pending === 0);
    assert.equal(outbox.stats().pending, 0);
    assert.equal(outbox.stats().consecutiveFailures, 0);
    failing = true;
    clock.delays.length = 0;
    outbox.enqueue({ kind: "e" });
    await waitFor("a retry to be armed", () => retries().length > 0);
    assert.deepEqual(dedupe(retries()), [50], "the backoff starts over after a delivery");
    await outbox.stop();
  });
});

Deno.test("defect 4: transient failures never poison, however long the outage", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    let attempts = 0;
    using outbox = open(dir, clock, {
      send: () => {
        attempts++;
        return Promise.reject(transientError("connection refused"));
      },
    });
    outbox.enqueue({ kind: "e" });
    outbox.start();
    // Six hours of outage at the 60 s cap: hundreds of attempts.
    await clock.advance(6 * HOUR);
    await waitFor("the last attempt's failure", () => outbox.list()[0]?.attempts === attempts);
    assert.ok(attempts > 300, `only ${attempts} attempts`);
    assert.equal(outbox.stats().poisoned, 0);
    assert.equal(outbox.stats().pending, 1);
    assert.equal(outbox.list()[0]?.attempts, attempts);
    assert.equal(outbox.stats().lastError, "connection refused");
    await outbox.stop();
  });
});

Deno.test("defect 4: crash-restarts keep attempt counts, clear the backoff, and never poison", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    for (let restart = 0; restart < 15; restart++) {
      const calls: number[] = [];
      using outbox = open(dir, clock, {
        backoff: { baseMs: 60_000, maxMs: 60_000 },
        send: (records) => {
          calls.push(records[0]?.attempts ?? -1);
          return Promise.reject(transientError());
        },
      });
      if (restart === 0) outbox.enqueue({ kind: "e" });
      outbox.start();
      await waitFor("the attempt's failure", () => outbox.stats().consecutiveFailures === 1);
      assert.deepEqual(calls, [restart], "tried at once after a restart, attempts kept");
      outbox.close();
    }
    using last = open(dir, clock);
    assert.equal(last.stats().poisoned, 0);
    assert.equal(last.list()[0]?.attempts, 15);
  });
});

Deno.test("defect 5: wake() retries the head at once instead of waiting out the backoff", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    let up = false;
    let calls = 0;
    using outbox = open(dir, clock, {
      send: (records) => {
        calls++;
        return up
          ? Promise.resolve(records.map(() => ({ ok: true as const })))
          : Promise.reject(transientError());
      },
    });
    outbox.enqueue({ kind: "e" });
    outbox.start();
    await waitFor("the first failure", () => outbox.stats().consecutiveFailures === 1);
    while (calls < 10) await clock.advance((outbox.stats().nextAttemptAt ?? 0) - clock.now());
    const before = calls;
    assert.ok((outbox.stats().nextAttemptAt ?? 0) - clock.now() >= 30_000, "deep in backoff");
    up = true;
    outbox.wake();
    assert.equal(outbox.stats().nextAttemptAt, undefined, "no longer backing off");
    await waitFor("the queue to drain", () => outbox.stats().pending === 0);
    assert.equal(calls, before + 1);
    assert.equal(outbox.stats().pending, 0, "delivered with no time passing");
    assert.equal(outbox.stats().consecutiveFailures, 0);
    await outbox.stop();
  });
});

Deno.test("defect 5: a wake() during a send that then fails retries at once", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    const gates: ReturnType<typeof deferred<SendResult[]>>[] = [];
    using outbox = open(dir, clock, {
      backoff: { baseMs: 60_000, maxMs: 60_000 },
      send: () => {
        const gate = deferred<SendResult[]>();
        gates.push(gate);
        return gate.promise;
      },
    });
    outbox.enqueue({ kind: "e" });
    outbox.start();
    await waitFor("the first send", () => gates.length > 0);
    assert.equal(gates.length, 1);
    outbox.wake(); // the relay came back while this attempt was hanging on the dead one
    gates[0]?.reject(transientError("connection reset"));
    // The fake clock stands still: a second send can only come from the wake.
    await waitFor("the second send", () => gates.length > 1);
    assert.equal(gates.length, 2, "retried without the 60 s backoff");
    gates[1]?.resolve([{ ok: true }]);
    await waitFor("the queue to drain", () => outbox.stats().pending === 0);
    assert.equal(outbox.stats().pending, 0);
    await outbox.stop();
  });
});

Deno.test("defect 6: a record's key is the same on every retry and after a restart", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    const seen: string[] = [];
    const failing: OutboxSend = (records) => {
      seen.push(records[0]?.idempotencyKey ?? "");
      return Promise.reject(transientError());
    };
    using first = open(dir, clock, { send: failing, backoff: { baseMs: 10, maxMs: 10 } });
    const { idempotencyKey } = first.enqueue({ kind: "e" });
    first.start();
    await clock.advance(10);
    await clock.advance(10);
    await waitFor("three attempts", () => first.stats().consecutiveFailures >= 3);
    first.close();
    using second = open(dir, clock, { send: failing });
    second.start();
    await waitFor("the attempt after the restart", () => second.stats().consecutiveFailures > 0);
    second.close();
    assert.ok(seen.length >= 4);
    assert.deepEqual(new Set(seen), new Set([idempotencyKey]));
  });
});

Deno.test("outbox: the poll is a backstop that keeps draining while started", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    let up = false;
    using outbox = open(dir, clock, {
      pollMs: 1000,
      backoff: { baseMs: HOUR, maxMs: HOUR },
      send: (records) =>
        up
          ? okAll(records, { signal: new AbortController().signal })
          : Promise.reject(transientError()),
    });
    outbox.enqueue({ kind: "e" });
    outbox.start();
    await waitFor("the first failure", () => outbox.stats().consecutiveFailures === 1);
    assert.equal(outbox.stats().consecutiveFailures, 1);
    const due = outbox.stats().nextAttemptAt ?? 0;
    up = true;
    await clock.advance(1000);
    // The poll fired and the pump looked: it re-armed the retry for the rest of the backoff.
    await waitFor("the retry re-armed", () => clock.delays.includes(due - clock.now()));
    assert.equal(outbox.stats().pending, 1, "the poll does not jump the backoff");
    await clock.advance(HOUR);
    await waitFor("the queue to drain", () => outbox.stats().pending === 0);
    assert.equal(outbox.stats().pending, 0);
    assert.ok(clock.delays.includes(1000));
    await outbox.stop();
  });
});

Deno.test("defect 4: the default classifier reads the error's permanent flag only", () => {
  class HttpError extends Error {
    constructor(readonly status: number) {
      super(`HTTP ${status}`);
    }
    get permanent(): boolean {
      return this.status >= 400 && this.status < 500 &&
        ![401, 403, 408, 409, 429].includes(this.status);
    }
  }
  assert.equal(defaultClassify(new HttpError(400)), "permanent");
  assert.equal(defaultClassify(new HttpError(422)), "permanent");
  for (const status of [401, 403, 408, 429, 500, 503]) {
    assert.equal(defaultClassify(new HttpError(status)), "transient", String(status));
  }
  assert.equal(defaultClassify(new TypeError("fetch failed")), "transient");
  assert.equal(defaultClassify("400"), "transient");
  assert.equal(defaultClassify(null), "transient");
  assert.equal(
    defaultClassify({
      get permanent() {
        throw new Error("x");
      },
    }),
    "transient",
  );
});

Deno.test("outbox: a failure is stored as one line of at most 1,000 characters", () => {
  assert.equal(failureText(new Error("relay\n  down")), "relay down");
  assert.equal(failureText(new TypeError("")), "TypeError", "an Error without a message");
  assert.equal(failureText({ status: 503 }), '{"status":503}');
  assert.equal(failureText(undefined), "undefined");
  assert.equal(failureText("   "), "unknown error");
  assert.equal(failureText("x".repeat(1_500)), `${"x".repeat(1_000)}...`);
});

Deno.test("outbox: a batch's results are read in order up to the first transient failure", () => {
  const records = [1, 2, 3, 4].map((seq) => ({
    seq,
    kind: "e",
    payload: null,
    mode: "append" as const,
    idempotencyKey: `a:${seq}`,
    occurredAt: 0,
    attempts: 0,
  }));
  const classify = defaultClassify;
  const outcome = readResults(records, [
    { ok: true },
    { ok: false, error: Object.assign(new Error("HTTP 400"), { permanent: true }) },
    { ok: false, error: "HTTP 503" },
    { ok: true },
  ], { classify });
  assert.deepEqual(outcome.acked.map((r) => r.seq), [1]);
  assert.deepEqual(outcome.refused.map((r) => [r.record.seq, r.error]), [[2, "HTTP 400"]]);
  assert.deepEqual(outcome.failure, { at: 2, text: "HTTP 503" });
  assert.deepEqual(readResults(records, "nope", { classify }).failure, {
    at: 0,
    text: "send resolved without a result array",
  });
  assert.deepEqual(readResults(records, [{ ok: true }], { classify }).failure, {
    at: 1,
    text: "send returned no valid result for event seq=2",
  });
});
