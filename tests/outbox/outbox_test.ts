import assert from "node:assert/strict";
import { DatabaseSync, StatementSync } from "node:sqlite";
import { join } from "node:path";
import { configureLogging, type LogEntry, onLogEntry } from "../../src/logger.ts";
import {
  defaultClassify,
  Outbox,
  type OutboxChange,
  OutboxLockedError,
  type OutboxOptions,
  type OutboxRecord,
  type OutboxSend,
  type SendResult,
} from "../../src/outbox/mod.ts";
type OutboxTimers = {
  setTimeout(cb: () => void, d: number): unknown;
  clearTimeout(id: unknown): void;
};
import { backoffDelay, backoffStep } from "../../src/util/backoff.ts";
import { ENQUEUE_SQL, SCHEMA_SQL } from "../../src/outbox/store.ts";

// ---------------------------------------------------------------------------------------------
// Support: a fake clock with fake timers, temp dirs, a deferred.

/** Lets pending promise callbacks and microtasks run (a few real macrotask turns). */
async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Lets chains of already-settled promises run, without waiting for real time. */
async function microtasks(rounds = 100): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

class FakeClock {
  now = 1_700_000_000_000;
  /** Every delay passed to setTimeout, in order. */
  readonly delays: number[] = [];
  #next = 1;
  #timers = new Map<number, { at: number; fn: () => void }>();
  readonly timers: OutboxTimers = {
    setTimeout: (fn, delayMs) => {
      const id = this.#next++;
      this.#timers.set(id, { at: this.now + delayMs, fn });
      this.delays.push(delayMs);
      return id;
    },
    clearTimeout: (id) => {
      this.#timers.delete(id as number);
    },
  };

  get armed(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing due timers in order and letting promises settle. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    await settle(1);
    for (;;) {
      await microtasks();
      let best: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= end && (best === undefined || entry[1].at < best[1].at)) best = entry;
      }
      if (best === undefined) break;
      this.#timers.delete(best[0]);
      this.now = Math.max(this.now, best[1].at);
      best[1].fn();
    }
    this.now = end;
    await settle();
  }
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const HOUR = 3_600_000;

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "outbox_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function open(dir: string, clock: FakeClock, options: Partial<OutboxOptions> = {}): Outbox {
  return new Outbox({
    path: join(dir, "outbox.sqlite"),
    agentId: "agent-1",
    clock: {
      now: () => clock.now,
      setTimeout: clock.timers.setTimeout,
      clearTimeout: clock.timers.clearTimeout,
    },
    pollMs: HOUR,
    ...options,
  });
}

const okAll: OutboxSend = (records) => Promise.resolve(records.map(() => ({ ok: true })));

function transientError(message = "relay down") {
  return Object.assign(new Error(message), { permanent: false });
}

async function withLogs(fn: (entries: LogEntry[]) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "outbox_log_" });
  const handle = configureLogging({ logDir: dir, agentId: "t", level: "debug" });
  const entries: LogEntry[] = [];
  const off = onLogEntry((e) => {
    if (e.component === "outbox") entries.push(e);
  });
  try {
    await fn(entries);
  } finally {
    off();
    handle.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Basics

Deno.test("outbox: enqueue is durable when it returns and keeps occurredAt, key and order", async () => {
  await withDir((dir) => {
    const clock = new FakeClock();
    const first = open(dir, clock);
    const a = first.enqueue({ kind: "session", payload: { text: "one" } });
    clock.now += 5;
    const b = first.enqueue({ kind: "insight", payload: { n: 2 }, occurredAt: 42 });
    assert.equal(b.seq, a.seq + 1);
    assert.match(a.idempotencyKey, /^agent-1:[0-9a-f-]{36}$/);
    assert.deepEqual(first.stats().pending, 2);
    first.close();

    const second = open(dir, clock);
    const records = second.list();
    assert.deepEqual(
      records.map((r) => [r.seq, r.kind, r.payload, r.occurredAt, r.idempotencyKey]),
      [
        [a.seq, "session", { text: "one" }, 1_700_000_000_000, a.idempotencyKey],
        [b.seq, "insight", { n: 2 }, 42, b.idempotencyKey],
      ],
    );
    assert.equal(second.stats().pending, 2);
    const c = second.enqueue({ kind: "session" });
    assert.equal(c.seq, b.seq + 1, "sequences continue after a reopen");
    second.close();
  });
});

Deno.test("outbox: bad input is refused with a clear error and stores nothing", async () => {
  await withDir((dir) => {
    const clock = new FakeClock();
    const outbox = open(dir, clock);
    try {
      const cyclic: Record<string, unknown> = {};
      cyclic["self"] = cyclic;
      const cases: [unknown, RegExp][] = [
        [{ kind: "" }, /kind "" must be a non-empty string/],
        [{ kind: 7 }, /kind 7 must be a non-empty string/],
        [{ kind: "k", mode: "merge" }, /mode "merge" must be "append" or "coalesce"/],
        [{ kind: "k", mode: "coalesce" }, /coalesce mode needs a dedupeKey/],
        [{ kind: "k", payload: 10n }, /payload is not JSON-serializable/],
        [{ kind: "k", payload: cyclic }, /payload is not JSON-serializable/],
        [{ kind: "k", occurredAt: Number.NaN }, /occurredAt NaN must be epoch ms/],
        [null, /must be an object/],
      ];
      for (const [input, message] of cases) {
        assert.throws(() => outbox.enqueue(input as never), message);
      }
      assert.equal(outbox.stats().pending, 0);
      assert.equal(outbox.enqueue({ kind: "ok" }).seq, 1, "no sequence was consumed");
      assert.throws(() => new Outbox({ path: join(dir, "x.sqlite"), agentId: "a", batchSize: 0 }), {
        name: "RangeError",
        message: /batchSize 0/,
      });
      assert.throws(
        () => new Outbox({ path: join(dir, "y.sqlite"), agentId: "a", backoff: { maxMs: 1 } }),
        /backoff\.maxMs 1/,
      );
    } finally {
      outbox.close();
    }
    assert.throws(() => outbox.enqueue({ kind: "late" }), /is closed/);
  });
});

Deno.test("outbox: a file that is not an outbox gets a clear error and is left untouched", async () => {
  await withDir((dir) => {
    const text = join(dir, "notes.sqlite");
    Deno.writeTextFileSync(text, "not a database at all, just some text that is long enough\n");
    assert.throws(() => new Outbox({ path: text, agentId: "a" }), /not a readable SQLite database/);
    assert.equal(Deno.readTextFileSync(text).startsWith("not a database"), true);

    const foreign = join(dir, "other.sqlite");
    const db = new DatabaseSync(foreign);
    db.exec("CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('ada')");
    db.close();
    assert.throws(
      () => new Outbox({ path: foreign, agentId: "a" }),
      /not an outbox \(tables: people\)/,
    );
    const check = new DatabaseSync(foreign);
    assert.deepEqual(check.prepare("SELECT name FROM people").all().map((r) => r["name"]), ["ada"]);
    check.close();
    // The lock was released: the path can be opened once it holds an outbox.
    Deno.removeSync(text);
    const ok = new Outbox({ path: text, agentId: "a" });
    ok.close();
  });
});

// ---------------------------------------------------------------------------------------------
// Delivery, batching, ordering

Deno.test("outbox: delivers in seq order in batches of batchSize, then reports counters", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const batches: number[][] = [];
    const outbox = open(dir, clock, {
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
    await settle();
    assert.deepEqual(batches, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]);
    assert.deepEqual(outbox.stats(), {
      pending: 0,
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
    const again = open(dir, clock);
    assert.equal(again.stats().delivered, 10, "delivered is a total kept in the file");
    again.close();
  });
});

Deno.test("outbox: a batch also stops at batchBytes of payload; a big event goes alone", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const batches: number[][] = [];
    const outbox = open(dir, clock, {
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
    await settle();
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
    outbox.close();
  });
});

Deno.test("outbox: a batch's results apply in order; after a transient failure nothing is acked", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const calls: number[][] = [];
    let round = 0;
    const outbox = open(dir, clock, {
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
    await settle();
    assert.deepEqual(outbox.list().map((r) => [r.seq, r.attempts, r.lastError]), [
      [4, 1, "503"],
      [5, 1, undefined],
    ]);
    assert.deepEqual(outbox.poisoned().map((r) => [r.seq, r.lastError]), [[2, "400 bad request"]]);
    assert.equal(outbox.stats().delivered, 2);
    assert.equal(outbox.stats().consecutiveFailures, 1);
    await clock.advance(100);
    assert.deepEqual(calls, [[1, 2, 3, 4, 5], [4, 5]]);
    assert.equal(outbox.stats().pending, 0);
    assert.equal(outbox.stats().delivered, 4);
    await outbox.stop();
    outbox.close();
  });
});

Deno.test("outbox: a thrown permanent error on a batch isolates the bad record", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const calls: number[][] = [];
    const outbox = open(dir, clock, {
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
    await settle();
    assert.deepEqual(calls, [[1, 2, 3, 4, 5], [1], [2], [3], [4], [5]]);
    assert.deepEqual(outbox.poisoned().map((r) => r.seq), [3]);
    assert.equal(outbox.stats().delivered, 4);
    await outbox.stop();
    outbox.close();
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
    const outbox = new Outbox({
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
        if (n % 25 === 0) await settle(1);
      }
      const left = await (async () => {
        for (let i = 0; i < 2000 && outbox.stats().pending > 0; i++) {
          await new Promise((r) => setTimeout(r, 2));
        }
        return outbox.stats().pending;
      })();
      assert.equal(left, 0);
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
    const clock = new FakeClock();
    let answer: unknown = undefined;
    const outbox = open(dir, clock, {
      send: () => Promise.resolve(answer as SendResult[]),
    });
    outbox.enqueue({ kind: "e" });
    outbox.start();
    await settle();
    assert.equal(outbox.stats().lastError, "send resolved without a result array");
    answer = [];
    outbox.wake();
    await settle();
    assert.equal(outbox.stats().lastError, "send returned no valid result for event seq=1");
    assert.equal(outbox.stats().pending, 1);
    assert.equal(outbox.stats().poisoned, 0);
    await outbox.stop();
    outbox.close();
  });
});

// ---------------------------------------------------------------------------------------------
// Backoff and jitter

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

Deno.test("outbox: retry delays follow the jittered backoff, reset after a delivery", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    let failing = true;
    const randoms = [0, 0.5, 0.999999, 0, 0.5, 0];
    const outbox = open(dir, clock, {
      backoff: { baseMs: 100, maxMs: 400 },
      random: () => randoms.shift() ?? 0,
      send: (records) =>
        failing
          ? Promise.reject(transientError())
          : Promise.resolve(records.map(() => ({ ok: true as const }))),
    });
    outbox.enqueue({ kind: "e" });
    outbox.start();
    await settle();
    for (let i = 0; i < 4; i++) await clock.advance(400);
    const retries = () => clock.delays.filter((d) => d !== HOUR);
    // steps 100, 200, 400, 400, 400 with random 0, .5, ~1, 0, .5
    assert.deepEqual(dedupe(retries()).slice(0, 5), [50, 150, 400, 200, 300]);
    failing = false;
    await clock.advance(400);
    assert.equal(outbox.stats().pending, 0);
    assert.equal(outbox.stats().consecutiveFailures, 0);
    failing = true;
    clock.delays.length = 0;
    outbox.enqueue({ kind: "e" });
    await settle();
    assert.deepEqual(dedupe(retries()), [50], "the backoff starts over after a delivery");
    await outbox.stop();
    outbox.close();
  });
});

/** The pump re-arms the same delay when it exits; collapse adjacent repeats. */
function dedupe(values: number[]): number[] {
  return values.filter((v, i) => i === 0 || values[i - 1] !== v);
}

// ---------------------------------------------------------------------------------------------
// The seed's measured defects

Deno.test("defect 1: every statement enqueue runs is a keyed lookup (no scan, no count)", async () => {
  await withDir((dir) => {
    const db = new DatabaseSync(join(dir, "plan.sqlite"));
    db.exec(SCHEMA_SQL);
    db.exec("ALTER TABLE outbox ADD COLUMN poisoned INTEGER"); // for the seed's statements
    const plan = (sql: string) =>
      db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(
        ...Array.from({ length: (sql.match(/\?/g) ?? []).length }, () => 1),
      ).map((r) => String(r["detail"]));
    // Keyed: an index or primary-key search, or a walk in primary-key order cut by LIMIT.
    const keyed = (sql: string) =>
      plan(sql).every((step) =>
        /^SEARCH \w+ USING (INTEGER PRIMARY KEY|PRIMARY KEY|COVERING INDEX|INDEX)/.test(step) ||
        (/^SCAN (outbox|poisoned)$/.test(step) && /ORDER BY seq LIMIT \?$/.test(sql))
      );
    // The check can fail: the seed's per-enqueue statements are full scans.
    assert.equal(keyed("SELECT count(*) AS n FROM outbox"), false);
    assert.equal(keyed("SELECT seq FROM outbox ORDER BY poisoned DESC, seq ASC LIMIT ?"), false);
    assert.equal(keyed("DELETE FROM outbox WHERE dedupe_key = ? AND poisoned = 0"), false);
    for (const sql of ENQUEUE_SQL) assert.ok(keyed(sql), `${sql}: ${plan(sql).join("; ")}`);
    db.close();
  });
});

/** Records the SQL of every statement run while `fn` runs (exec'd BEGIN/COMMIT aside). */
function statementsRunBy(fn: () => void): string[] {
  const proto = StatementSync.prototype as unknown as Record<string, unknown>;
  const names = ["run", "all", "get", "iterate"] as const;
  const originals = names.map((name) => proto[name] as (...args: unknown[]) => unknown);
  const seen: string[] = [];
  names.forEach((name, i) => {
    proto[name] = function (this: StatementSync, ...args: unknown[]) {
      seen.push(this.sourceSQL);
      return originals[i]!.apply(this, args);
    };
  });
  try {
    fn();
  } finally {
    names.forEach((name, i) => proto[name] = originals[i]);
  }
  return seen;
}

Deno.test("defect 1: enqueue at depth 20k runs only those statements, bound included", async () => {
  await withDir((dir) => {
    const clock = new FakeClock();
    const outbox = open(dir, clock, { maxRows: 20_000 });
    for (let i = 0; i < 20_000; i++) outbox.enqueue({ kind: "e", payload: i });
    assert.equal(outbox.stats().pending, 20_000);
    const ran = statementsRunBy(() => {
      outbox.enqueue({ kind: "e", payload: "x" }); // at the bound: drops the oldest
      outbox.enqueue({ kind: "e", payload: "y" });
      outbox.enqueue({ kind: "s", payload: 1, mode: "coalesce", dedupeKey: "k" });
      outbox.enqueue({ kind: "s", payload: 2, mode: "coalesce", dedupeKey: "k" });
    });
    assert.ok(ran.length >= 4);
    for (const sql of ran) assert.ok(ENQUEUE_SQL.includes(sql), `enqueue ran: ${sql}`);
    assert.equal(outbox.stats().pending, 20_000);
    assert.equal(outbox.stats().dropped, 3, "three were dropped, one replaced by coalescing");
    assert.deepEqual(outbox.list({ limit: 1 }).map((r) => r.seq), [4]);
    // The check can fail: a count(*) per enqueue (the seed's) would be seen.
    const counted = statementsRunBy(() => outbox.list({ limit: 1 }));
    assert.deepEqual(counted.filter((sql) => !ENQUEUE_SQL.includes(sql)).length, 1);
    outbox.close();
  });
});

Deno.test("defect 2: coalesce replaces only pending coalesce rows with its key, atomically", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const outbox = open(dir, clock);
    outbox.enqueue({ kind: "turn", payload: "append-1", dedupeKey: "k" });
    outbox.enqueue({ kind: "state", payload: "s1", dedupeKey: "k", mode: "coalesce" });
    outbox.enqueue({ kind: "state", payload: "other", dedupeKey: "j", mode: "coalesce" });
    outbox.enqueue({ kind: "turn", payload: "append-2", dedupeKey: "k" });
    outbox.enqueue({ kind: "state", payload: "s2", dedupeKey: "k", mode: "coalesce" });
    const last = outbox.enqueue({ kind: "state", payload: "s3", dedupeKey: "k", mode: "coalesce" });
    assert.deepEqual(outbox.list().map((r) => r.payload), ["append-1", "other", "append-2", "s3"]);
    assert.equal(outbox.list().at(-1)?.seq, last.seq);
    assert.equal(outbox.stats().pending, 4);
    outbox.close();

    // The in-flight coalesce row is not deleted under the send; the newer one follows it.
    const gate = deferred<SendResult[]>();
    const sent: unknown[] = [];
    const second = open(dir, clock, {
      batchSize: 1,
      send: (records) => {
        sent.push(records[0]?.payload);
        return records[0]?.payload === "append-1"
          ? gate.promise
          : okAll(records, { signal: new AbortController().signal });
      },
    });
    second.purge({ all: true });
    second.enqueue({ kind: "turn", payload: "append-1" });
    second.start();
    await settle();
    second.enqueue({ kind: "state", payload: "t1", dedupeKey: "k", mode: "coalesce" });
    assert.equal(second.stats().inFlight, 1);
    gate.resolve([{ ok: true }]);
    await settle();
    assert.deepEqual(sent, ["append-1", "t1"]);
    await second.stop();
    second.close();
  });
});

Deno.test("defect 2: a coalesce row in flight is kept; the new state queues behind it", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const gate = deferred<SendResult[]>();
    const sent: unknown[] = [];
    const outbox = open(dir, clock, {
      send: (records) => {
        sent.push(...records.map((r) => r.payload));
        return sent.length === 1
          ? gate.promise
          : okAll(records, { signal: new AbortController().signal });
      },
    });
    outbox.enqueue({ kind: "state", payload: "v1", dedupeKey: "k", mode: "coalesce" });
    outbox.start();
    await settle();
    assert.equal(outbox.stats().inFlight, 1);
    outbox.enqueue({ kind: "state", payload: "v2", dedupeKey: "k", mode: "coalesce" });
    outbox.enqueue({ kind: "state", payload: "v3", dedupeKey: "k", mode: "coalesce" });
    assert.deepEqual(outbox.list().map((r) => r.payload), ["v1", "v3"]);
    gate.resolve([{ ok: true }]);
    await settle();
    assert.deepEqual(sent, ["v1", "v3"]);
    await outbox.stop();
    outbox.close();
  });
});

Deno.test("outbox: a batch read ahead during a send is dropped when the queue changed", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const gates: ReturnType<typeof deferred<SendResult[]>>[] = [];
    const sent: unknown[][] = [];
    const outbox = open(dir, clock, {
      batchSize: 2,
      maxRows: 6,
      send: (records) => {
        sent.push(records.map((r) => r.payload));
        const gate = deferred<SendResult[]>();
        gates.push(gate);
        return gate.promise;
      },
    });
    const release = async () => {
      gates.at(-1)?.resolve(sent.at(-1)!.map(() => ({ ok: true })));
      await settle();
    };
    outbox.enqueue({ kind: "e", payload: "a1" });
    outbox.enqueue({ kind: "e", payload: "a2" });
    outbox.enqueue({ kind: "s", payload: "s1", mode: "coalesce", dedupeKey: "k" });
    outbox.enqueue({ kind: "e", payload: "a3" });
    outbox.start();
    await settle();
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
    await release();
    assert.equal(sent.length, 5, "the purged a10 was not sent");
    assert.equal(outbox.stats().pending, 0);
    await outbox.stop();
    outbox.close();
  });
});

Deno.test("defect 3: close() mid-send is clean whatever the send does afterwards", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    // A send that ignores the signal and settles after close, each way it can settle.
    for (const settleWith of ["resolve", "reject", "abort-reject"] as const) {
      const gate = deferred<SendResult[]>();
      let signal: AbortSignal | undefined;
      const outbox = open(dir, clock, {
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
      await settle();
      assert.equal(outbox.stats().inFlight, 1);
      outbox.close();
      assert.equal(signal?.aborted, true, "the send is told to stop");
      if (settleWith === "resolve") gate.resolve([{ ok: true }]);
      if (settleWith === "reject") gate.reject(new Error("socket closed"));
      await settle();
      // The record stays for the next opener, with its key; nothing ran on the closed database.
      const next = open(dir, clock);
      assert.deepEqual(next.list().map((r) => r.seq), [seq]);
      next.purge({ all: true });
      next.close();
    }
    // close() during a backoff wait, before start, twice.
    const failing = open(dir, clock, { send: () => Promise.reject(transientError()) });
    failing.enqueue({ kind: "e" });
    failing.start();
    await settle();
    assert.equal(failing.stats().consecutiveFailures, 1);
    failing.close();
    failing.close();
    assert.equal(clock.armed, 0, "no timer is left behind");
    await clock.advance(HOUR);
    const idle = open(dir, clock);
    idle.close();
  });
});

Deno.test("defect 4: transient failures never poison, however long the outage", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    let attempts = 0;
    const outbox = open(dir, clock, {
      send: () => {
        attempts++;
        return Promise.reject(transientError("connection refused"));
      },
    });
    outbox.enqueue({ kind: "e" });
    outbox.start();
    // Six hours of outage at the 60 s cap: hundreds of attempts.
    await clock.advance(6 * HOUR);
    assert.ok(attempts > 300, `only ${attempts} attempts`);
    assert.equal(outbox.stats().poisoned, 0);
    assert.equal(outbox.stats().pending, 1);
    assert.equal(outbox.list()[0]?.attempts, attempts);
    assert.equal(outbox.stats().lastError, "connection refused");
    await outbox.stop();
    outbox.close();
  });
});

Deno.test("defect 4: crash-restarts keep attempt counts, clear the backoff, and never poison", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    for (let restart = 0; restart < 15; restart++) {
      const calls: number[] = [];
      const outbox = open(dir, clock, {
        backoff: { baseMs: 60_000, maxMs: 60_000 },
        send: (records) => {
          calls.push(records[0]?.attempts ?? -1);
          return Promise.reject(transientError());
        },
      });
      if (restart === 0) outbox.enqueue({ kind: "e" });
      outbox.start();
      await settle();
      assert.deepEqual(calls, [restart], "tried at once after a restart, attempts kept");
      outbox.close();
    }
    const last = open(dir, clock);
    assert.equal(last.stats().poisoned, 0);
    assert.equal(last.list()[0]?.attempts, 15);
    last.close();
  });
});

Deno.test("defect 4: a permanent failure poisons at once, logs FATAL, and can be requeued", async () => {
  await withLogs(async (entries) => {
    await withDir(async (dir) => {
      const clock = new FakeClock();
      let refuse = true;
      const delivered: unknown[] = [];
      const outbox = open(dir, clock, {
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
      await settle();
      assert.deepEqual(delivered, ["good"], "the poisoned head does not block the queue");
      const [poisoned] = outbox.poisoned();
      assert.equal(poisoned?.seq, bad.seq);
      assert.equal(poisoned?.idempotencyKey, bad.idempotencyKey);
      assert.equal(poisoned?.lastError, "HTTP 400: body.to is required");
      assert.equal(poisoned?.poisonedAt, clock.now);
      const fatal = entries.filter((e) => e.level === "fatal");
      assert.equal(fatal.length, 1);
      assert.match(fatal[0]?.message ?? "", /seq=1 kind=e poisoned .*body\.to is required/);
      assert.match(fatal[0]?.message ?? "", /outbox requeue --seq 1/);

      refuse = false;
      assert.equal(outbox.requeue(99), 0);
      assert.equal(outbox.requeue(bad.seq), 1);
      await settle();
      assert.deepEqual(delivered, ["good", "bad"]);
      assert.deepEqual(outbox.stats().poisoned, 0);
      assert.equal(outbox.stats().delivered, 2);
      await outbox.stop();
      outbox.close();
    });
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

Deno.test("defect 5: wake() retries the head at once instead of waiting out the backoff", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    let up = false;
    let calls = 0;
    const outbox = open(dir, clock, {
      send: (records) => {
        calls++;
        return up
          ? Promise.resolve(records.map(() => ({ ok: true as const })))
          : Promise.reject(transientError());
      },
    });
    outbox.enqueue({ kind: "e" });
    outbox.start();
    await settle();
    while (calls < 10) await clock.advance((outbox.stats().nextAttemptAt ?? 0) - clock.now);
    const before = calls;
    assert.ok((outbox.stats().nextAttemptAt ?? 0) - clock.now >= 30_000, "deep in backoff");
    up = true;
    outbox.wake();
    await settle();
    assert.equal(calls, before + 1);
    assert.equal(outbox.stats().pending, 0, "delivered with no time passing");
    assert.equal(outbox.stats().consecutiveFailures, 0);
    await outbox.stop();
    outbox.close();
  });
});

Deno.test("defect 5: a wake() during a send that then fails retries at once", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const gates: ReturnType<typeof deferred<SendResult[]>>[] = [];
    const outbox = open(dir, clock, {
      backoff: { baseMs: 60_000, maxMs: 60_000 },
      send: () => {
        const gate = deferred<SendResult[]>();
        gates.push(gate);
        return gate.promise;
      },
    });
    outbox.enqueue({ kind: "e" });
    outbox.start();
    await settle();
    assert.equal(gates.length, 1);
    outbox.wake(); // the relay came back while this attempt was hanging on the dead one
    gates[0]?.reject(transientError("connection reset"));
    await settle();
    assert.equal(gates.length, 2, "retried without the 60 s backoff");
    gates[1]?.resolve([{ ok: true }]);
    await settle();
    assert.equal(outbox.stats().pending, 0);
    await outbox.stop();
    outbox.close();
  });
});

Deno.test("defect 6: idempotency keys are unique per event, even for identical bursts", async () => {
  await withDir((dir) => {
    const clock = new FakeClock(); // frozen: every event has the same occurredAt
    const outbox = open(dir, clock);
    const keys = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      keys.add(outbox.enqueue({ kind: "session", payload: { text: "same" } }).idempotencyKey);
    }
    assert.equal(keys.size, 1000);
    for (const key of keys) assert.ok(key.startsWith("agent-1:"));
    outbox.close();
  });
});

Deno.test("defect 6: a record's key is the same on every retry and after a restart", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const seen: string[] = [];
    const failing: OutboxSend = (records) => {
      seen.push(records[0]?.idempotencyKey ?? "");
      return Promise.reject(transientError());
    };
    const first = open(dir, clock, { send: failing, backoff: { baseMs: 10, maxMs: 10 } });
    const { idempotencyKey } = first.enqueue({ kind: "e" });
    first.start();
    await clock.advance(10);
    await clock.advance(10);
    first.close();
    const second = open(dir, clock, { send: failing });
    second.start();
    await settle();
    second.close();
    assert.ok(seen.length >= 4);
    assert.deepEqual(new Set(seen), new Set([idempotencyKey]));
  });
});

Deno.test("defect 7: a second opener of the same file fails fast naming the holder's pid", async () => {
  await withDir((dir) => {
    const clock = new FakeClock();
    const holder = open(dir, clock);
    holder.enqueue({ kind: "e" });
    const error = assert.throws(() => open(dir, clock), (e: unknown) => {
      assert.ok(e instanceof OutboxLockedError);
      assert.equal(e.pid, Deno.pid);
      assert.equal(e.path, join(dir, "outbox.sqlite"));
      assert.match(e.message, new RegExp(`in use by process ${Deno.pid}`));
      return true;
    });
    void error;
    holder.close();
    const next = open(dir, clock);
    assert.equal(next.stats().pending, 1);
    next.close();
  });
});

Deno.test("defect 8: the file shrinks back after a drain; enqueue never vacuums", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const path = join(dir, "outbox.sqlite");
    const outbox = open(dir, clock, { batchSize: 500, send: okAll });
    const big = "x".repeat(2000);
    for (let i = 0; i < 3000; i++) outbox.enqueue({ kind: "e", payload: { i, big } });
    const full = fileSize(path) + fileSize(`${path}-wal`);
    assert.ok(full > 6_000_000, `filled to ${full} bytes`);
    outbox.start();
    for (let i = 0; i < 50 && outbox.stats().pending > 0; i++) await settle();
    assert.equal(outbox.stats().pending, 0);
    await settle();
    const after = fileSize(path) + fileSize(`${path}-wal`);
    assert.ok(after < 200_000, `still ${after} bytes after the drain (was ${full})`);
    await outbox.stop();
    outbox.close();
  });
});

Deno.test("defect 9: the bound never counts nor drops the rows in flight", async () => {
  await withLogs(async (entries) => {
    await withDir(async (dir) => {
      const clock = new FakeClock();
      const gate = deferred<SendResult[]>();
      const sent: number[] = [];
      const outbox = open(dir, clock, {
        batchSize: 2,
        maxRows: 3,
        send: (records) => {
          sent.push(...records.map((r) => r.seq));
          return sent.length <= 2
            ? gate.promise
            : okAll(records, { signal: new AbortController().signal });
        },
      });
      outbox.enqueue({ kind: "e" }); // 1 } in flight
      outbox.enqueue({ kind: "e" }); // 2 }
      outbox.start();
      await settle();
      assert.equal(outbox.stats().inFlight, 2);
      for (let i = 0; i < 5; i++) outbox.enqueue({ kind: "e" }); // 3..7
      // 3 rows fit beside the 2 in flight: 3 and 4 were dropped, never 1 or 2.
      assert.deepEqual(outbox.list({ limit: 10 }).map((r) => r.seq), [1, 2, 5, 6, 7]);
      assert.equal(outbox.stats().dropped, 2);
      assert.equal(outbox.stats().pending, 5);
      gate.resolve([{ ok: true }, { ok: true }]);
      await settle();
      assert.deepEqual(sent, [1, 2, 5, 6, 7]);
      assert.equal(outbox.stats().delivered, 5);
      assert.equal(outbox.stats().dropped, 2);
      const warns = entries.filter((e) => e.level === "warn" && /Outbox full/.test(e.message));
      assert.equal(warns.length, 1, "drops are logged (rate-limited)");
      assert.match(warns[0]?.message ?? "", /dropped pending event seq=3 kind=e/);
      await outbox.stop();
      outbox.close();
      assert.ok(
        entries.some((e) => /dropped 1 more event/.test(e.message)),
        "no drop goes unreported",
      );
    });
  });
});

Deno.test("outbox: the bound drops poisoned events first, then the oldest pending", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const outbox = open(dir, clock, {
      maxRows: 4,
      send: (records) =>
        Promise.resolve(
          records.map((r) =>
            r.payload === "bad"
              ? { ok: false as const, error: "400", permanent: true }
              : { ok: true as const }
          ),
        ),
    });
    outbox.enqueue({ kind: "e", payload: "bad" });
    outbox.enqueue({ kind: "e", payload: "bad" });
    outbox.start();
    await settle();
    await outbox.stop();
    assert.equal(outbox.stats().poisoned, 2);
    for (let i = 0; i < 4; i++) outbox.enqueue({ kind: "e", payload: i });
    assert.deepEqual(outbox.poisoned().map((r) => r.seq), [], "both poisoned went first");
    assert.deepEqual(outbox.list().map((r) => r.payload), [0, 1, 2, 3]);
    outbox.enqueue({ kind: "e", payload: 4 });
    assert.deepEqual(outbox.list().map((r) => r.payload), [1, 2, 3, 4]);
    assert.equal(outbox.stats().dropped, 3);
    outbox.close();
  });
});

// ---------------------------------------------------------------------------------------------
// Lifecycle, maintenance, observation

Deno.test("outbox: flush() resolves when drained, or as soon as a send fails", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    let fail = false;
    const outbox = open(dir, clock, {
      batchSize: 3,
      send: async (records) => {
        await settle(1);
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
    const stuck = open(dir, clock, {
      path: join(dir, "stuck.sqlite"),
      send: async (records) => {
        await hang.promise;
        return records.map(() => ({ ok: true as const }));
      },
    });
    stuck.enqueue({ kind: "e" });
    stuck.start();
    const waiting = stuck.flush();
    await settle();
    stuck.close();
    assert.equal(await waiting, 1);
    hang.resolve();
    outbox.close();
  });
});

Deno.test("outbox: stop() lets go and start() resumes; start() needs a send", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const inspector = open(dir, clock);
    assert.throws(() => inspector.start(), /has no send function/);
    inspector.close();
    const sent: number[] = [];
    const outbox = open(dir, clock, {
      send: (records) => {
        sent.push(...records.map((r) => r.seq));
        return okAll(records, { signal: new AbortController().signal });
      },
    });
    outbox.start();
    await outbox.stop();
    outbox.enqueue({ kind: "e" });
    await settle();
    assert.deepEqual(sent, [], "stopped: queued, not sent");
    assert.equal(clock.armed, 0);
    outbox.start();
    await settle();
    assert.deepEqual(sent, [1]);
    await outbox.stop();
    outbox.close();
    assert.throws(() => outbox.start(), /is closed/);
  });
});

Deno.test("outbox: the poll is a backstop that keeps draining while started", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    let up = false;
    const outbox = open(dir, clock, {
      pollMs: 1000,
      backoff: { baseMs: HOUR, maxMs: HOUR },
      send: (records) =>
        up
          ? okAll(records, { signal: new AbortController().signal })
          : Promise.reject(transientError()),
    });
    outbox.enqueue({ kind: "e" });
    outbox.start();
    await settle();
    assert.equal(outbox.stats().consecutiveFailures, 1);
    up = true;
    await clock.advance(1000);
    assert.equal(outbox.stats().pending, 1, "the poll does not jump the backoff");
    await clock.advance(HOUR);
    assert.equal(outbox.stats().pending, 0);
    assert.ok(clock.delays.includes(1000));
    await outbox.stop();
    outbox.close();
  });
});

Deno.test("outbox: purge removes one, the poisoned, or everything but what is in flight", async () => {
  await withDir((dir) => {
    const clock = new FakeClock();
    const outbox = open(dir, clock);
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
    const again = open(dir, clock);
    again.purge({ all: true });
    assert.equal(again.enqueue({ kind: "e" }).seq, 7, "not even after a reopen of an empty file");
    again.close();
  });
});

Deno.test("outbox: a corrupt stored payload is poisoned, not a crash", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const path = join(dir, "outbox.sqlite");
    const first = open(dir, clock);
    first.enqueue({ kind: "e", payload: "broken" });
    first.enqueue({ kind: "e", payload: "fine" });
    first.close();
    const db = new DatabaseSync(path);
    db.prepare("UPDATE outbox SET payload = '{not json' WHERE seq = 1").run();
    db.close();
    const sent: unknown[] = [];
    const outbox = open(dir, clock, {
      send: (records) => {
        sent.push(...records.map((r) => r.payload));
        return okAll(records, { signal: new AbortController().signal });
      },
    });
    assert.equal(outbox.list()[0]?.payload, "{not json", "shown as text");
    outbox.start();
    await settle();
    assert.deepEqual(sent, ["fine"]);
    assert.match(outbox.poisoned()[0]?.lastError ?? "", /seq=1 is not valid JSON/);
    await outbox.stop();
    outbox.close();
  });
});

Deno.test("outbox: listeners see enqueues (once per burst) and failures; a throwing one is harmless", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock();
    const outbox = open(dir, clock, { send: () => Promise.reject(transientError("down")) });
    const reasons: string[] = [];
    outbox.onChange(() => {
      throw new Error("listener bug");
    });
    const off = outbox.onChange((c) => reasons.push(`${c.reason}:${c.stats.pending}`));
    outbox.enqueue({ kind: "e" });
    outbox.enqueue({ kind: "e" });
    await settle();
    assert.deepEqual(reasons, ["enqueued:2"]);
    outbox.start();
    await settle();
    assert.deepEqual(reasons, ["enqueued:2", "failed:2"]);
    off();
    outbox.enqueue({ kind: "e" });
    await settle();
    assert.equal(reasons.length, 2);
    await outbox.stop();
    outbox.close();
  });
});

Deno.test("outbox: durability full and normal both work; the file is private", async () => {
  await withDir((dir) => {
    for (const durability of ["normal", "full"] as const) {
      const path = join(dir, durability, "outbox.sqlite");
      const outbox = new Outbox({ path, agentId: "a", durability });
      outbox.enqueue({ kind: "e" });
      outbox.close();
      assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    }
    assert.throws(
      () => new Outbox({ path: join(dir, "z.sqlite"), agentId: "a", durability: "max" as never }),
      /durability "max"/,
    );
  });
});
