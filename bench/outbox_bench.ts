/**
 * The outbox part of `deno task bench` (issue 3), every figure measured in the same run:
 *
 * 1. Enqueue rate at depth 0 and at depth 20k, against a raw `node:sqlite` insert loop on the
 *    same schema with the same pragmas (WAL, synchronous=NORMAL, incremental auto-vacuum);
 *    goal: >= 0.8x raw, flat with depth. Also coalesce enqueues, `durability: "full"`, and the
 *    seed's per-insert `count(*)` re-enacted for contrast.
 * 2. Drain rate to a loopback HTTP receiver (`Deno.serve` on 127.0.0.1, its own thread), with
 *    the default batch (500 events or 1 MiB; and 100 for reference); goal: >= 30k events/s.
 *    Also one POST per event, as the relay's per-message API needs. The median of three runs.
 * 3. Recovery: the receiver is down for 3 s with the default backoff (1 s doubling, cap 60 s);
 *    when it is back, `wake()` is called (as the relay client does on reconnect) and the time to
 *    the first delivery and to the drained queue is measured; goal <= 0.5 s. Without `wake()`,
 *    for reference, the queue waits out the backoff.
 *
 * Run alone with `deno run -A bench/outbox_bench.ts`.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { Outbox, type OutboxRecord, type OutboxSend } from "../src/outbox/mod.ts";
import { SCHEMA_SQL, SQL } from "../src/outbox/store.ts";

/** Options of {@linkcode runOutboxBench} (defaults are the figures). */
export interface OutboxBenchOptions {
  /** Enqueues per rate measurement. Default 5,000. */
  enqueues?: number;
  /** The deep queue. Default 20,000. */
  depth?: number;
  /** Events drained per drain run (three runs per setting). Default 20,000. */
  drainEvents?: number;
  /** The outage before the recovery measurement, in ms. Default 3,000. */
  outageMs?: number;
}

const PAYLOAD = {
  from: "bench-agent",
  to: "user",
  kind: "session",
  body: "The assistant finished the turn: 3 files changed, all tests pass. ".repeat(3),
  payload: { role: "assistant", turn: 12, tools: ["bash", "edit"] },
};
const PAYLOAD_JSON = JSON.stringify(PAYLOAD);

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function removeDb(path: string): void {
  for (const suffix of ["", "-wal", "-shm", ".lock"]) {
    try {
      Deno.removeSync(path + suffix);
    } catch {
      // Not there.
    }
  }
}

/** A raw database with the outbox's schema and pragmas. */
function rawDb(path: string, durability: "NORMAL" | "FULL" = "NORMAL"): DatabaseSync {
  removeDb(path);
  const db = new DatabaseSync(path);
  db.exec("PRAGMA auto_vacuum = INCREMENTAL");
  db.prepare("PRAGMA journal_mode = WAL").get();
  db.exec(`PRAGMA synchronous = ${durability}`);
  db.exec("PRAGMA journal_size_limit = 4194304");
  db.exec(SCHEMA_SQL);
  return db;
}

/** Raw inserts per second: the same statement the outbox runs, autocommit, one per row. */
function rawRate(db: DatabaseSync, count: number, firstSeq: number): number {
  const insert = db.prepare(SQL.insert);
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const seq = firstSeq + i;
    insert.run(seq, "session", "append", null, Date.now(), `bench-agent:${seq}`, PAYLOAD_JSON);
  }
  return count / ((performance.now() - started) / 1000);
}

function enqueueRate(outbox: Outbox, count: number, mode: "append" | "coalesce" = "append") {
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    outbox.enqueue(
      mode === "append"
        ? { kind: "session", payload: PAYLOAD }
        : { kind: "state", payload: PAYLOAD, mode, dedupeKey: `k${i % 8}` },
    );
  }
  return count / ((performance.now() - started) / 1000);
}

/**
 * Raw inserts and outbox enqueues in alternating chunks (which goes first alternates too), so
 * that whatever else the machine is doing slows both alike. Returns both rates.
 */
function pairedRates(
  db: DatabaseSync,
  outbox: Outbox,
  count: number,
  firstRawSeq: number,
): { raw: number; box: number } {
  const chunk = 250;
  let rawMs = 0;
  let boxMs = 0;
  let seq = firstRawSeq;
  for (let done = 0, i = 0; done < count; done += chunk, i++) {
    const n = Math.min(chunk, count - done);
    const runRaw = () => {
      const started = performance.now();
      rawRate(db, n, seq);
      seq += n;
      rawMs += performance.now() - started;
    };
    const runBox = () => {
      const started = performance.now();
      enqueueRate(outbox, n);
      boxMs += performance.now() - started;
    };
    if (i % 2 === 0) {
      runRaw();
      runBox();
    } else {
      runBox();
      runRaw();
    }
  }
  return { raw: count / (rawMs / 1000), box: count / (boxMs / 1000) };
}

async function enqueueSection(dir: string, o: Required<OutboxBenchOptions>): Promise<string[]> {
  const lines: string[] = [];
  const rounds = 3;
  const shallow: { raw: number; box: number }[] = [];
  const deep: { raw: number; box: number }[] = [];
  for (let round = 0; round < rounds; round++) {
    const db = rawDb(join(dir, "raw.sqlite"));
    const boxPath = join(dir, "box.sqlite");
    removeDb(boxPath);
    const outbox = new Outbox({ path: boxPath, agentId: "bench-agent", maxRows: 1_000_000 });
    shallow.push(pairedRates(db, outbox, o.enqueues, 1));
    rawRate(db, o.depth - o.enqueues, o.enqueues + 1);
    enqueueRate(outbox, o.depth - o.enqueues);
    deep.push(pairedRates(db, outbox, o.enqueues, o.depth + 1));
    db.close();
    outbox.close();
    await Promise.resolve();
  }
  const r0 = median(shallow.map((r) => r.raw));
  const b0 = median(shallow.map((r) => r.box));
  const rd = median(deep.map((r) => r.raw));
  const bd = median(deep.map((r) => r.box));
  const ratio0 = median(shallow.map((r) => r.box / r.raw));
  const ratioDeep = median(deep.map((r) => r.box / r.raw));
  const verdict = (ok: boolean) => ok ? "goal met" : "GOAL MISSED";
  lines.push(
    `  raw insert loop, depth 0           ${fmt(r0).padStart(8)} rows/s`,
    `  enqueue (append), depth 0          ${fmt(b0).padStart(8)} events/s  ${
      ratio0.toFixed(2)
    }x raw (goal >= 0.8: ${verdict(ratio0 >= 0.8)})`,
    `  raw insert loop, depth ${o.depth / 1000}k         ${fmt(rd).padStart(8)} rows/s`,
    `  enqueue (append), depth ${o.depth / 1000}k        ${fmt(bd).padStart(8)} events/s  ${
      ratioDeep.toFixed(2)
    }x raw (goal >= 0.8: ${verdict(ratioDeep >= 0.8)}), ${(bd / b0).toFixed(2)}x depth 0`,
  );

  // Coalesce at depth.
  const boxPath = join(dir, "box.sqlite");
  removeDb(boxPath);
  const outbox = new Outbox({ path: boxPath, agentId: "bench-agent", maxRows: 1_000_000 });
  enqueueRate(outbox, o.depth);
  const coalesce = enqueueRate(outbox, o.enqueues, "coalesce");
  // The bound: every enqueue drops the oldest row.
  outbox.close();
  removeDb(boxPath);
  const bounded = new Outbox({ path: boxPath, agentId: "bench-agent", maxRows: o.depth });
  enqueueRate(bounded, o.depth);
  const atBound = enqueueRate(bounded, o.enqueues);
  bounded.close();
  lines.push(
    `  enqueue (coalesce), depth ${o.depth / 1000}k      ${fmt(coalesce).padStart(8)} events/s`,
    `  enqueue at the bound (drops oldest) ${fmt(atBound).padStart(7)} events/s`,
  );

  // Durability full: an fsync per commit.
  removeDb(boxPath);
  const full = new Outbox({ path: boxPath, agentId: "bench-agent", durability: "full" });
  const fullRate = enqueueRate(full, Math.min(o.enqueues, 500));
  full.close();
  const rawFull = rawDb(join(dir, "rawfull.sqlite"), "FULL");
  const rawFullRate = rawRate(rawFull, Math.min(o.enqueues, 500), 1);
  rawFull.close();
  lines.push(
    `  enqueue, durability "full"         ${fmt(fullRate).padStart(8)} events/s  ${
      (fullRate / rawFullRate).toFixed(2)
    }x raw FULL (${fmt(rawFullRate)} rows/s; an fsync per event)`,
  );

  // The seed's defect 1, re-enacted: a count(*) with every insert, at depth.
  const seedDb = rawDb(join(dir, "seed.sqlite"));
  rawRate(seedDb, o.depth, 1);
  const count = seedDb.prepare("SELECT count(*) AS n FROM outbox");
  const insert = seedDb.prepare(SQL.insert);
  const seedN = 300;
  const started = performance.now();
  for (let i = 0; i < seedN; i++) {
    const seq = o.depth + 1 + i;
    insert.run(seq, "session", "append", null, Date.now(), `k${seq}`, PAYLOAD_JSON);
    count.get();
  }
  const seedRate = seedN / ((performance.now() - started) / 1000);
  seedDb.close();
  lines.push(
    `  seed-style insert + count(*), ${o.depth / 1000}k ${fmt(seedRate).padStart(8)} events/s  ` +
      `(for contrast: ${(seedRate / rd).toFixed(2)}x raw)`,
  );
  for (const name of ["raw.sqlite", "box.sqlite", "rawfull.sqlite", "seed.sqlite"]) {
    removeDb(join(dir, name));
  }
  return lines;
}

const RECEIVER_WORKER = `
self.onmessage = (event) => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: event.data.port, onListen: () => {} },
    async (req) => {
      await req.json();
      return new Response(null, { status: 204 });
    },
  );
  self.postMessage({ port: server.addr.port });
  self.onmessage = async () => {
    await server.shutdown();
    self.postMessage({ stopped: true });
  };
};
`;

/** The receiver's handle. */
interface Receiver {
  port: number;
  stop(): Promise<void>;
}

/**
 * A loopback HTTP receiver (POST a JSON array or object, answer 204) on its own thread, as
 * the relay is its own process: its JSON parsing does not eat the outbox's thread.
 */
async function startReceiver(port = 0): Promise<Receiver> {
  const url = URL.createObjectURL(new Blob([RECEIVER_WORKER], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  URL.revokeObjectURL(url);
  const next = () =>
    new Promise<{ port?: number }>((resolve) => {
      worker.onmessage = (event) => resolve(event.data);
    });
  const listening = next();
  worker.postMessage({ port });
  const { port: bound } = await listening;
  return {
    port: bound ?? port,
    async stop() {
      const stopped = next();
      worker.postMessage({ stop: true });
      await stopped;
      worker.terminate();
    },
  };
}

function httpSend(url: () => string, batch: boolean): OutboxSend {
  const wire = (r: OutboxRecord) => ({
    ...(r.payload as object),
    occurredAt: r.occurredAt,
    idempotencyKey: r.idempotencyKey,
  });
  return async (records, { signal }) => {
    if (batch) {
      const res = await fetch(`${url()}/batch`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(records.map(wire)),
        signal,
      });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return records.map(() => ({ ok: true as const }));
    }
    // One POST per event, in order, stopping at the first failure (as the relay client does).
    const results: { ok: true }[] = [];
    for (const record of records) {
      const res = await fetch(`${url()}/one`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(wire(record)),
        signal,
      });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      results.push({ ok: true });
    }
    return results;
  };
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return true;
}

/** Drains `events` queued events through `send`; returns events per second. */
async function drainRate(
  path: string,
  events: number,
  batchSize: number | undefined,
  send: OutboxSend,
): Promise<number> {
  removeDb(path);
  const outbox = new Outbox({
    path,
    agentId: "bench-agent",
    ...(batchSize === undefined ? {} : { batchSize }),
    maxRows: 1_000_000,
    send,
  });
  for (let i = 0; i < events; i++) outbox.enqueue({ kind: "session", payload: PAYLOAD });
  const started = performance.now();
  outbox.start();
  const done = await waitFor(() => outbox.stats().pending === 0, 60_000);
  const elapsed = performance.now() - started;
  await outbox.stop();
  outbox.close();
  removeDb(path);
  return done ? events / (elapsed / 1000) : 0;
}

async function drainSection(dir: string, o: Required<OutboxBenchOptions>): Promise<string[]> {
  const lines: string[] = [];
  const receiver = await startReceiver();
  const url = `http://127.0.0.1:${receiver.port}`;
  const path = join(dir, "drain.sqlite");
  try {
    for (
      const [label, batchSize, events, batch] of [
        ["batches of 100", 100, o.drainEvents, true],
        ["batches of 500 (default)", undefined, o.drainEvents, true],
        ["one POST per event", 50, Math.min(o.drainEvents, 3_000), false],
      ] as const
    ) {
      // The median of three runs, each its own fresh file.
      const rates: number[] = [];
      for (let run = 0; run < 3; run++) {
        rates.push(await drainRate(path, events, batchSize, httpSend(() => url, batch)));
      }
      const rate = median(rates);
      const goal = batch && batchSize === undefined
        ? ` (goal >= 30,000: ${rate >= 30_000 ? "goal met" : "GOAL MISSED"})`
        : "";
      lines.push(
        `  drain to loopback HTTP, ${label.padEnd(24)} ${fmt(rate).padStart(7)} events/s${goal}`,
      );
    }
  } finally {
    await receiver.stop();
  }
  return lines;
}

async function recoverySection(dir: string, o: Required<OutboxBenchOptions>): Promise<string[]> {
  const lines: string[] = [];
  // Reserve a port, then free it: the receiver is "down" (connection refused) on it.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const url = `http://127.0.0.1:${port}`;
  for (const useWake of [true, false]) {
    const path = join(dir, "recovery.sqlite");
    removeDb(path);
    const outbox = new Outbox({
      path,
      agentId: "bench-agent",
      send: httpSend(() => url, true),
    });
    for (let i = 0; i < 1_000; i++) outbox.enqueue({ kind: "session", payload: PAYLOAD });
    let movingAt: number | undefined;
    outbox.onChange((change) => {
      if (change.reason === "delivered") movingAt ??= performance.now();
    });
    outbox.start();
    await new Promise((resolve) => setTimeout(resolve, o.outageMs));
    const failures = outbox.stats().consecutiveFailures;
    const receiver = await startReceiver(port);
    const upAt = performance.now();
    if (useWake) outbox.wake();
    await waitFor(() => movingAt !== undefined, 70_000);
    const first = (movingAt ?? performance.now()) - upAt;
    await waitFor(() => outbox.stats().pending === 0, 70_000);
    const drained = performance.now() - upAt;
    await outbox.stop();
    outbox.close();
    await receiver.stop();
    removeDb(path);
    lines.push(
      useWake
        ? `  recovery after a ${
          o.outageMs / 1000
        } s outage (${failures} failed attempts), wake(): ` +
          `moving ${fmt(first)} ms after the relay is back, 1,000 events drained in ` +
          `${fmt(drained)} ms (goal <= 500 ms: ${first <= 500 ? "goal met" : "GOAL MISSED"})`
        : `  same without wake() (for contrast): moving ${fmt(first)} ms after the relay is ` +
          `back (it waits out the backoff)`,
    );
  }
  return lines;
}

/** Runs the outbox benchmark; returns printable lines. */
export async function runOutboxBench(options: OutboxBenchOptions = {}): Promise<string[]> {
  const o: Required<OutboxBenchOptions> = {
    enqueues: options.enqueues ?? 5_000,
    depth: options.depth ?? 20_000,
    drainEvents: options.drainEvents ?? 20_000,
    outageMs: options.outageMs ?? 3_000,
  };
  const dir = await Deno.makeTempDir({ prefix: "outbox_bench_" });
  try {
    const lines = [
      `outbox (node:sqlite ${
        (new DatabaseSync(":memory:").prepare("SELECT sqlite_version() AS v").get() as {
          v: string;
        }).v
      }, WAL, synchronous=NORMAL; event payload ${PAYLOAD_JSON.length} B JSON)`,
    ];
    lines.push(...await enqueueSection(dir, o));
    lines.push(...await drainSection(dir, o));
    lines.push(...await recoverySection(dir, o));
    return lines;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const started = performance.now();
  for (const line of await runOutboxBench()) {
    // deno-lint-ignore no-console
    console.log(line);
  }
  // deno-lint-ignore no-console
  console.log(`  (outbox bench took ${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
