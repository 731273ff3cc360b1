/**
 * The delivery pump: batches in seq order and within batchBytes, results applied in order, a
 * refused batch narrowed down, order under a flaky loopback relay, malformed answers, the
 * batch read ahead, and corrupt stored payloads.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { Outbox, type OutboxChange, type SendResult } from "../../src/outbox/mod.ts";
import { waitFor } from "../support/wait.ts";
import { deferred, HOUR, okAll, open, TestClock, transientError, withDir } from "./support.ts";

Deno.test("outbox: delivers in seq order in batches of batchSize, then reports counters", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    const batches: number[][] = [];
    using outbox = open(dir, clock, {
      batchSize: 4,
      send: (records) => {
        batches.push(records.map((r) => r.seq));
        return okAll(records, { signal: new AbortController().signal });
      },
    });
    const changes: OutboxChange[] = [];
    outbox.onChange((c) => changes.push(c));
    for (let i = 0; i < 10; i++) outbox.enqueue({ kind: "e", payload: i });
    outbox.start();
    await waitFor("the queue to drain", () => outbox.stats().pending === 0);
    assert.deepEqual(batches, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]);
    assert.deepEqual(outbox.stats(), {
      pending: 0,
      held: 0,
      poisoned: 0,
      inFlight: 0,
      delivered: 10,
      dropped: 0,
      consecutiveFailures: 0,
    });
    assert.deepEqual(changes.map((c) => c.reason), [
      "enqueued",
      "delivered",
      "delivered",
      "delivered",
    ]);
    assert.equal(changes[0]?.stats.pending, 10, "one notification for the burst of ten");
    assert.equal(changes.at(-1)?.stats.delivered, 10);
    await outbox.stop();
    outbox.close();
    using again = open(dir, clock);
    assert.equal(again.stats().delivered, 10, "delivered is a total kept in the file");
  });
});

Deno.test("outbox: a batch also stops at batchBytes of payload; a big event goes alone", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    const batches: number[][] = [];
    using outbox = open(dir, clock, {
      batchSize: 100,
      batchBytes: 10_000,
      send: (records) => {
        batches.push(records.map((r) => r.seq));
        return okAll(records, { signal: new AbortController().signal });
      },
    });
    for (let i = 0; i < 3; i++) outbox.enqueue({ kind: "e", payload: "s".repeat(10) });
    outbox.enqueue({ kind: "e", payload: "b".repeat(25_000) }); // over the cap alone
    for (let i = 0; i < 5; i++) outbox.enqueue({ kind: "e", payload: "m".repeat(3_000) });
    outbox.start();
    await waitFor("the queue to drain", () => outbox.stats().pending === 0);
    assert.deepEqual(batches.flat(), [1, 2, 3, 4, 5, 6, 7, 8, 9], "each once, in order");
    assert.deepEqual(batches[0], [1, 2, 3], "the small ones up to the big one");
    assert.deepEqual(batches[1], [4], "the big one alone");
    const bytes = (seq: number) => seq <= 3 ? 12 : seq === 4 ? 25_002 : 3_002;
    for (const batch of batches) {
      const total = batch.reduce((sum, seq) => sum + bytes(seq), 0);
      assert.ok(batch.length === 1 || total <= 10_000, `batch ${batch} holds ${total} bytes`);
    }
    assert.ok(batches.length <= 5, `${batches.length} batches`);
    await outbox.stop();
  });
});

Deno.test("outbox: a batch's results apply in order; after a transient failure nothing is acked", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    const calls: number[][] = [];
    let round = 0;
    using outbox = open(dir, clock, {
      backoff: { baseMs: 100, maxMs: 100 },
      random: () => 0,
      send: (records) => {
        calls.push(records.map((r) => r.seq));
        round++;
        if (round === 1) {
          const results: SendResult[] = [
            { ok: true },
            { ok: false, error: "400 bad request", permanent: true },
            { ok: true },
            { ok: false, error: new Error("503") },
            { ok: true }, // delivered by the transport, but after a failure: not acked
          ];
          return Promise.resolve(results);
        }
        return Promise.resolve(records.map(() => ({ ok: true as const })));
      },
    });
    for (let i = 1; i <= 5; i++) outbox.enqueue({ kind: "e", payload: i });
    outbox.start();
    await waitFor("the first send's failure", () => outbox.stats().consecutiveFailures > 0);
    assert.deepEqual(outbox.list().map((r) => [r.seq, r.attempts, r.lastError]), [
      [4, 1, "503"],
      [5, 1, undefined],
    ]);
    assert.deepEqual(outbox.poisoned().map((r) => [r.seq, r.lastError]), [[2, "400 bad request"]]);
    assert.equal(outbox.stats().delivered, 2);
    assert.equal(outbox.stats().consecutiveFailures, 1);
    await clock.advance(100);
    await waitFor("the retry to drain the queue", () => outbox.stats().pending === 0);
    assert.deepEqual(calls, [[1, 2, 3, 4, 5], [4, 5]]);
    assert.equal(outbox.stats().pending, 0);
    assert.equal(outbox.stats().delivered, 4);
    await outbox.stop();
  });
});

Deno.test("outbox: a thrown permanent error on a batch isolates the bad record", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    const calls: number[][] = [];
    using outbox = open(dir, clock, {
      send: (records) => {
        calls.push(records.map((r) => r.seq));
        if (records.some((r) => r.payload === "bad")) {
          return Promise.reject(Object.assign(new Error("422 unprocessable"), { permanent: true }));
        }
        return okAll(records, { signal: new AbortController().signal });
      },
    });
    for (const p of ["a", "b", "bad", "c"]) outbox.enqueue({ kind: "e", payload: p });
    outbox.enqueue({ kind: "e", payload: "d" });
    outbox.start();
    await waitFor("the queue to drain", () => outbox.stats().pending === 0);
    assert.deepEqual(calls, [[1, 2, 3, 4, 5], [1], [2], [3], [4], [5]]);
    assert.deepEqual(outbox.poisoned().map((r) => r.seq), [3]);
    assert.equal(outbox.stats().delivered, 4);
    await outbox.stop();
  });
});

Deno.test("outbox: order holds under random transient failures against a loopback HTTP relay", async () => {
  await withDir(async (dir) => {
    // The relay: stores each idempotency key once, fails ~30% of requests with a 503 (before or
    // after storing part of the batch), as a real relay behind a flaky proxy could.
    const stored: { key: string; n: number }[] = [];
    const seen = new Set<string>();
    let rnd = 7;
    const rand = () => {
      rnd = (rnd * 1103515245 + 12345) % 2147483648;
      return rnd / 2147483648;
    };
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => {
        const batch = await req.json() as { key: string; n: number }[];
        const cut = rand() < 0.3 ? Math.floor(rand() * batch.length) : batch.length;
        for (const item of batch.slice(0, cut)) {
          if (!seen.has(item.key)) {
            seen.add(item.key);
            stored.push(item);
          }
        }
        if (cut < batch.length) return new Response("busy", { status: 503 });
        return Response.json({ ok: true });
      },
    );
    const url = `http://127.0.0.1:${server.addr.port}/batch`;
    using outbox = new Outbox({
      path: join(dir, "outbox.sqlite"),
      agentId: "agent-http",
      batchSize: 7,
      backoff: { baseMs: 1, maxMs: 2 },
      pollMs: HOUR,
      send: async (records, { signal }) => {
        const body = JSON.stringify(
          records.map((r) => ({ key: r.idempotencyKey, n: r.payload as number })),
        );
        const res = await fetch(url, { method: "POST", body, signal });
        await res.body?.cancel();
        if (!res.ok) throw transientError(`HTTP ${res.status}`);
        return records.map(() => ({ ok: true }));
      },
    });
    try {
      outbox.start();
      for (let n = 0; n < 200; n++) {
        outbox.enqueue({ kind: "e", payload: n });
        // Let the pump run now and then, so enqueues land mid-delivery.
        if (n % 25 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
      }
      await waitFor("the queue to drain", () => outbox.stats().pending === 0);
      assert.equal(outbox.stats().pending, 0);
      assert.deepEqual(stored.map((s) => s.n), Array.from({ length: 200 }, (_, i) => i));
      assert.equal(outbox.stats().delivered, 200);
    } finally {
      await outbox.stop();
      outbox.close();
      await server.shutdown();
    }
  });
});

Deno.test("outbox: a send's malformed answer counts as a transient failure", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    let answer: unknown = undefined;
    using outbox = open(dir, clock, {
      send: () => Promise.resolve(answer as SendResult[]),
    });
    outbox.enqueue({ kind: "e" });
    outbox.start();
    await waitFor("the first failure", () => outbox.stats().consecutiveFailures === 1);
    assert.equal(outbox.stats().lastError, "send resolved without a result array");
    answer = [];
    outbox.wake();
    await waitFor("the second failure", () => outbox.stats().consecutiveFailures === 2);
    assert.equal(outbox.stats().lastError, "send returned no valid result for event seq=1");
    assert.equal(outbox.stats().pending, 1);
    assert.equal(outbox.stats().poisoned, 0);
    await outbox.stop();
  });
});

Deno.test("outbox: a batch read ahead during a send is dropped when the queue changed", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    const gates: ReturnType<typeof deferred<SendResult[]>>[] = [];
    const sent: unknown[][] = [];
    using outbox = open(dir, clock, {
      batchSize: 2,
      maxRows: 6,
      send: (records) => {
        sent.push(records.map((r) => r.payload));
        const gate = deferred<SendResult[]>();
        gates.push(gate);
        return gate.promise;
      },
    });
    /** Acks the batch on the wire, then waits for the send after it. */
    const release = async () => {
      const sends = sent.length;
      gates.at(-1)?.resolve(sent.at(-1)!.map(() => ({ ok: true })));
      await waitFor(`send ${sends + 1}`, () => sent.length > sends);
    };
    outbox.enqueue({ kind: "e", payload: "a1" });
    outbox.enqueue({ kind: "e", payload: "a2" });
    outbox.enqueue({ kind: "s", payload: "s1", mode: "coalesce", dedupeKey: "k" });
    outbox.enqueue({ kind: "e", payload: "a3" });
    outbox.start();
    await waitFor("the first send", () => sent.length === 1);
    // [a1, a2] on the wire; [s1, a3] read ahead. A coalesce replaces s1 meanwhile.
    outbox.enqueue({ kind: "s", payload: "s2", mode: "coalesce", dedupeKey: "k" });
    await release();
    assert.deepEqual(sent, [["a1", "a2"], ["a3", "s2"]], "s1 is never sent");
    // [a3, s2] on the wire; nothing to read ahead. Appends only: the read-ahead stays good.
    outbox.enqueue({ kind: "e", payload: "a4" });
    outbox.enqueue({ kind: "e", payload: "a5" });
    await release();
    assert.deepEqual(sent.at(-1), ["a4", "a5"]);
    // [a4, a5] on the wire, [a6, a7] read ahead; a purge removes a6 meanwhile.
    outbox.enqueue({ kind: "e", payload: "a6" });
    outbox.enqueue({ kind: "e", payload: "a7" });
    await release();
    assert.deepEqual(sent.at(-1), ["a6", "a7"]);
    outbox.enqueue({ kind: "e", payload: "a8" });
    outbox.enqueue({ kind: "e", payload: "a9" });
    outbox.enqueue({ kind: "e", payload: "a10" });
    await release(); // [a8, a9] on the wire, [a10] read ahead
    assert.deepEqual(sent.at(-1), ["a8", "a9"]);
    outbox.purge({ seq: outbox.list().at(-1)!.seq });
    // A marker queued after the purge: once it is sent, the pump is past the stale read-ahead.
    outbox.enqueue({ kind: "e", payload: "marker" });
    await release();
    assert.deepEqual(sent.at(-1), ["marker"]);
    assert.equal(sent.length, 6, "the purged a10 was not sent");
    assert.ok(!sent.flat().includes("a10"), "the purged a10 was not sent");
    gates.at(-1)?.resolve([{ ok: true }]);
    await waitFor("the queue to drain", () => outbox.stats().pending === 0);
    assert.equal(outbox.stats().pending, 0);
    await outbox.stop();
  });
});

Deno.test("outbox: a corrupt stored payload is poisoned, not a crash", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    const path = join(dir, "outbox.sqlite");
    using first = open(dir, clock);
    first.enqueue({ kind: "e", payload: "broken" });
    first.enqueue({ kind: "e", payload: "fine" });
    first.close();
    const db = new DatabaseSync(path);
    db.prepare("UPDATE outbox SET payload = '{not json' WHERE seq = 1").run();
    db.close();
    const sent: unknown[] = [];
    using outbox = open(dir, clock, {
      send: (records) => {
        sent.push(...records.map((r) => r.payload));
        return okAll(records, { signal: new AbortController().signal });
      },
    });
    assert.equal(outbox.list()[0]?.payload, "{not json", "shown as text");
    outbox.start();
    await waitFor("the queue to drain", () => outbox.stats().pending === 0);
    assert.deepEqual(sent, ["fine"]);
    assert.match(outbox.poisoned()[0]?.lastError ?? "", /seq=1 is not valid JSON/);
    await outbox.stop();
  });
});
