import assert from "node:assert/strict";
import { configureLogging, type LogEntry, onLogEntry } from "../../src/logger.ts";
import {
  type CacheTimers,
  DEFAULT_DIRTY_DEBOUNCE_MS,
  DEFAULT_REFRESH_INTERVAL_MS,
  MAX_ANNOTATIONS,
  ReplyObligationCache,
} from "../../src/runner/reply_obligations.ts";
import type { ReplyObligation } from "../../src/types.ts";

/** Timers run by hand: `run(kind)` fires every pending timer of that kind once. */
class ManualTimers implements CacheTimers {
  #next = 1;
  readonly pending = new Map<
    number,
    { kind: "timeout" | "interval"; ms: number; cb: () => void }
  >();
  setTimeout(cb: () => void, ms: number): number {
    this.pending.set(this.#next, { kind: "timeout", ms, cb });
    return this.#next++;
  }
  clearTimeout(id: unknown): void {
    this.pending.delete(id as number);
  }
  setInterval(cb: () => void, ms: number): number {
    this.pending.set(this.#next, { kind: "interval", ms, cb });
    return this.#next++;
  }
  clearInterval(id: unknown): void {
    this.pending.delete(id as number);
  }
  delays(kind: "timeout" | "interval"): number[] {
    return [...this.pending.values()].filter((t) => t.kind === kind).map((t) => t.ms);
  }
  run(kind: "timeout" | "interval", ms?: number): number {
    let n = 0;
    for (const [id, t] of [...this.pending]) {
      if (t.kind !== kind || (ms !== undefined && t.ms !== ms)) continue;
      if (kind === "timeout") this.pending.delete(id);
      t.cb();
      n++;
    }
    return n;
  }
}

/** A fetch whose answers the test releases one by one. */
class ScriptedFetch {
  calls: AbortSignal[] = [];
  #waiting: Array<{ resolve: (v: ReplyObligation[]) => void; reject: (e: unknown) => void }> = [];
  readonly fn = (signal: AbortSignal): Promise<ReplyObligation[]> => {
    this.calls.push(signal);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  };
  answer(list: unknown): void {
    const next = this.#waiting.shift();
    assert.ok(next, "no fetch is waiting");
    next.resolve(list as ReplyObligation[]);
  }
  fail(error: Error): void {
    const next = this.#waiting.shift();
    assert.ok(next, "no fetch is waiting");
    next.reject(error);
  }
  get waiting(): number {
    return this.#waiting.length;
  }
}

const ob = (messageId: number, from = "user"): ReplyObligation => ({
  messageId,
  from,
  createdAt: "2026-11-27T10:00:00.000Z",
});

function setup(options: { now?: () => number } = {}) {
  const timers = new ManualTimers();
  const fetch = new ScriptedFetch();
  const cache = new ReplyObligationCache({ fetch: fetch.fn, timers, ...options });
  return { timers, fetch, cache };
}

Deno.test("before any refresh get() is empty and refreshedAt is undefined", () => {
  const { cache, fetch } = setup();
  assert.deepEqual(cache.get(), []);
  assert.equal(cache.refreshedAt, undefined);
  assert.equal(cache.ageMs(), undefined);
  assert.equal(fetch.calls.length, 0, "get() must never fetch");
});

Deno.test("refresh() replaces the snapshot; get() hands out copies", async () => {
  let clock = 1_000;
  const { cache, fetch } = setup({ now: () => clock });
  const done = cache.refresh();
  assert.ok(cache.refreshing);
  fetch.answer([ob(1), ob(2, "bob")]);
  await done;
  assert.equal(cache.refreshedAt, 1_000);
  clock = 1_250;
  assert.equal(cache.ageMs(), 250);
  const first = cache.get();
  assert.deepEqual(first.map((o) => o.messageId), [1, 2]);
  first[0]!.from = "mallory";
  first.pop();
  assert.deepEqual(cache.get(), [ob(1), ob(2, "bob")]);
});

Deno.test("concurrent refresh() calls share one request", async () => {
  const { cache, fetch } = setup();
  const a = cache.refresh();
  const b = cache.refresh();
  const c = cache.refresh();
  assert.equal(fetch.calls.length, 1);
  assert.equal(a, b);
  assert.equal(b, c);
  fetch.answer([ob(5)]);
  await Promise.all([a, b, c]);
  assert.deepEqual(cache.get().map((o) => o.messageId), [5]);
  const d = cache.refresh();
  assert.equal(fetch.calls.length, 2, "a refresh after the first settled is a new request");
  fetch.answer([]);
  await d;
  assert.deepEqual(cache.get(), []);
});

Deno.test("a failed refresh keeps the last snapshot and logs once per streak at debug", async () => {
  const dir = await Deno.makeTempDir();
  const logging = configureLogging({ logDir: dir, agentId: "t", level: "debug" });
  const entries: LogEntry[] = [];
  const off = onLogEntry((e) => e.component === "obligations" && entries.push(e));
  try {
    let clock = 10;
    const { cache, fetch } = setup({ now: () => clock });
    let p = cache.refresh();
    fetch.answer([ob(1)]);
    await p;
    clock = 20;
    for (let i = 0; i < 3; i++) {
      p = cache.refresh();
      fetch.fail(new Error("connection refused"));
      await p; // never rejects
    }
    assert.deepEqual(cache.get().map((o) => o.messageId), [1]);
    assert.equal(cache.refreshedAt, 10);
    assert.equal(cache.lastError, "connection refused");
    p = cache.refresh();
    fetch.fail(new Error("status 503"));
    await p;
    p = cache.refresh();
    fetch.answer([ob(2)]);
    await p;
    assert.equal(cache.lastError, undefined);
    assert.deepEqual(cache.get().map((o) => o.messageId), [2]);
    assert.deepEqual(entries.map((e) => e.level), ["debug", "debug", "debug"]);
    assert.match(
      entries[0]!.message,
      /serving the last snapshot \(1 obligations.*connection refused/,
    );
    assert.match(entries[1]!.message, /status 503/);
    assert.match(entries[2]!.message, /recovered after 4 failed attempts/);
  } finally {
    off();
    logging.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a refresh that hangs is aborted after fetchTimeoutMs and the snapshot kept", async () => {
  const timers = new ManualTimers();
  const fetch = new ScriptedFetch();
  const cache = new ReplyObligationCache({ fetch: fetch.fn, timers, fetchTimeoutMs: 700 });
  let p = cache.refresh();
  fetch.answer([ob(4)]);
  await p;
  p = cache.refresh();
  assert.deepEqual(timers.delays("timeout"), [700]);
  timers.run("timeout", 700);
  await p;
  assert.ok(fetch.calls[1]!.aborted);
  assert.match(cache.lastError ?? "", /no answer within 700 ms/);
  assert.deepEqual(cache.get().map((o) => o.messageId), [4]);
  assert.equal(cache.refreshing, false, "a hung fetch must not wedge later refreshes");
});

Deno.test("markDirty() collapses a burst into one refresh after the debounce", async () => {
  const { cache, fetch, timers } = setup();
  cache.markDirty();
  cache.markDirty();
  cache.markDirty();
  assert.deepEqual(timers.delays("timeout"), [DEFAULT_DIRTY_DEBOUNCE_MS]);
  assert.equal(fetch.calls.length, 0);
  timers.run("timeout", DEFAULT_DIRTY_DEBOUNCE_MS);
  assert.equal(fetch.calls.length, 1);
  const inFlight = cache.refresh();
  assert.equal(fetch.calls.length, 1, "refresh() joins the debounced request");
  fetch.answer([ob(9)]);
  await inFlight;
  assert.deepEqual(cache.get().map((o) => o.messageId), [9]);
  cache.markDirty();
  assert.deepEqual(
    timers.delays("timeout"),
    [DEFAULT_DIRTY_DEBOUNCE_MS],
    "a new burst, a new timer",
  );
  cache.stop();
});

Deno.test("markDirty() during a running refresh runs one more refresh after it", async () => {
  const { cache, fetch, timers } = setup();
  const first = cache.refresh();
  cache.markDirty();
  timers.run("timeout", DEFAULT_DIRTY_DEBOUNCE_MS);
  assert.equal(fetch.calls.length, 1, "no second request while one is in flight");
  fetch.answer([ob(1)]);
  await first;
  assert.equal(fetch.calls.length, 2, "the change during the request gets its own refresh");
  fetch.answer([ob(1), ob(2)]);
  await cache.refresh();
  assert.deepEqual(cache.get().map((o) => o.messageId), [1, 2]);
});

Deno.test("start() refreshes at once and on the interval; stop() clears everything", async () => {
  const { cache, fetch, timers } = setup();
  cache.start();
  cache.start(); // idempotent
  assert.equal(fetch.calls.length, 1);
  assert.deepEqual(timers.delays("interval"), [DEFAULT_REFRESH_INTERVAL_MS]);
  fetch.answer([ob(1)]);
  await cache.refresh();
  timers.run("interval");
  assert.equal(fetch.calls.length, 2);
  cache.markDirty();
  cache.stop();
  assert.ok(fetch.calls[1]!.aborted, "stop() aborts the running refresh");
  assert.equal(timers.pending.size, 0);
  await cache.refresh();
  assert.equal(fetch.calls.length, 2, "a stopped cache does not fetch");
  assert.deepEqual(cache.get().map((o) => o.messageId), [1], "the snapshot stays readable");
});

Deno.test("annotate() fills in bodies for quoting, bounded in number", async () => {
  const { cache, fetch } = setup();
  cache.annotate({ id: 1, body: "please review", from: "user" });
  const p = cache.refresh();
  fetch.answer([ob(1), { ...ob(2), body: "relay text" }, ob(3)]);
  await p;
  const got = cache.get();
  assert.equal(got[0]!.body, "please review");
  assert.equal(got[1]!.body, "relay text");
  assert.equal(got[2]!.body, undefined);
  for (let i = 0; i < MAX_ANNOTATIONS; i++) cache.annotate({ id: 1000 + i, body: "x" });
  assert.equal(cache.bodyOf(1), undefined, "the oldest annotation is dropped past the bound");
  assert.equal(cache.bodyOf(1000 + MAX_ANNOTATIONS - 1), "x");
});

Deno.test("markAnswered() hides a message until the relay stops listing it", async () => {
  const { cache, fetch } = setup();
  let p = cache.refresh();
  fetch.answer([ob(1), ob(2)]);
  await p;
  // A refresh that started before the mark and already lacks the message must not retire it.
  p = cache.refresh();
  cache.markAnswered([1]);
  assert.deepEqual(cache.get().map((o) => o.messageId), [2]);
  fetch.answer([ob(2)]);
  await p;
  // The reply is still in the outbox: the relay lists the message again; it stays hidden.
  p = cache.refresh();
  fetch.answer([ob(1), ob(2)]);
  await p;
  assert.deepEqual(cache.get().map((o) => o.messageId), [2]);
  // The relay has the reply: the mark is retired, so the same id could block again if listed.
  p = cache.refresh();
  fetch.answer([ob(2)]);
  await p;
  p = cache.refresh();
  fetch.answer([ob(1), ob(2)]);
  await p;
  assert.deepEqual(cache.get().map((o) => o.messageId), [1, 2]);
});

Deno.test("malformed obligations are skipped; a non-array answer is a failed refresh", async () => {
  const { cache, fetch } = setup();
  let p = cache.refresh();
  fetch.answer([ob(1), null, { messageId: "2", from: "x" }, { messageId: 3 }, ob(1), {
    messageId: 4,
    from: "y",
  }]);
  await p;
  assert.deepEqual(cache.get().map((o) => o.messageId), [1, 4]);
  p = cache.refresh();
  fetch.answer({ obligations: [] });
  await p;
  assert.deepEqual(cache.get().map((o) => o.messageId), [1, 4]);
  assert.match(cache.lastError ?? "", /not an array/);
});

Deno.test("bad options are refused", () => {
  const fetch = () => Promise.resolve([]);
  assert.throws(() => new ReplyObligationCache({ fetch, intervalMs: 0 }), /intervalMs 0/);
  assert.throws(() => new ReplyObligationCache({ fetch, debounceMs: -1 }), /debounceMs -1/);
});

Deno.test("against a real loopback relay: served, then kept while the relay is down", async () => {
  let obligations: ReplyObligation[] = [ob(11, "user")];
  const relay = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => {
      assert.equal(new URL(req.url).pathname, "/api/agents/a1/reply-obligations");
      return Response.json({ obligations });
    },
  );
  const url = `http://127.0.0.1:${relay.addr.port}/api/agents/a1/reply-obligations`;
  const cache = new ReplyObligationCache({
    fetch: async (signal) => {
      const res = await fetch(url, { signal });
      if (!res.ok) throw new Error(`status ${res.status}`);
      return (await res.json()).obligations;
    },
    intervalMs: 60_000,
  });
  try {
    await cache.refresh();
    assert.deepEqual(cache.get().map((o) => o.messageId), [11]);
    obligations = [];
    await relay.shutdown();
    await cache.refresh();
    assert.deepEqual(cache.get().map((o) => o.messageId), [11]);
    assert.ok(cache.lastError);
  } finally {
    cache.stop();
    await relay.shutdown();
  }
});
