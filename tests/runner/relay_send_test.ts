/**
 * The outbox transport: batches through `POST /api/batch`, the fallback to one call per event
 * (remembered), and what each answer means for each record. A fake relay client, no network.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { OutboxRecord, SendResult } from "../../src/outbox/mod.ts";
import {
  type BatchItem,
  type BatchResult,
  BatchUnsupportedError,
  RelayError,
} from "../../src/relay/mod.ts";
import { markRead, receipt } from "../../src/runner/outgoing.ts";
import { type RelayCalls, relaySend } from "../../src/runner/relay_send.ts";

let seq = 0;
function record(event: { kind: string; payload: unknown }): OutboxRecord {
  seq++;
  return {
    seq,
    kind: event.kind,
    payload: event.payload,
    mode: "append",
    idempotencyKey: `k${seq}`,
    occurredAt: 1000 + seq,
    attempts: 0,
  } as OutboxRecord;
}

function fakeRelay(answer: (items: readonly BatchItem[]) => BatchResult[] | Error) {
  const calls: string[] = [];
  const relay = {
    sendBatch: (items: readonly BatchItem[]) => {
      calls.push(`batch:${items.length}`);
      const a = answer(items);
      return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
    },
    markRead: (id: number) => {
      calls.push(`read:${id}`);
      return Promise.resolve();
    },
    sendReceipt: (id: number) => {
      calls.push(`receipt:${id}`);
      return Promise.resolve();
    },
  } as unknown as RelayCalls;
  return { relay, calls };
}

const signal = new AbortController().signal;
const oks = (results: SendResult[]) =>
  results.map((r) => r.ok ? "ok" : r.permanent ? "poison" : "retry");

Deno.test("relay send: a batch in one call; each item's status decides its record", async () => {
  const { relay, calls } = fakeRelay((items) =>
    items.map((_, i) => ({ status: [200, 409, 400, 404][i]! }))
  );
  const send = relaySend(relay, { agentId: "a" });
  const results = await send([
    record(markRead(1)),
    record(markRead(2)), // 409: refused on purpose, delivered.
    record(markRead(3)), // 400: poisoned.
    record(receipt(4, "handed")), // 404 to a receipt: a relay without receipts, delivered.
  ], { signal });
  assert.deepEqual(calls, ["batch:4"]);
  assert.deepEqual(oks(results), ["ok", "ok", "poison", "ok"]);
});

Deno.test("relay send: after a transient item, the rest counts as not sent (order)", async () => {
  const { relay } = fakeRelay((items) => items.map((_, i) => ({ status: i === 1 ? 503 : 200 })));
  const results = await relaySend(relay, { agentId: "a" })(
    [record(markRead(1)), record(markRead(2)), record(markRead(3))],
    { signal },
  );
  assert.deepEqual(oks(results), ["ok", "retry", "retry"]);
});

Deno.test("relay send: a relay without /api/batch gets one call per event, for the rest of the run", async () => {
  const { relay, calls } = fakeRelay(() => new BatchUnsupportedError("no batch", 404));
  const send = relaySend(relay, { agentId: "a" });
  assert.deepEqual(oks(await send([record(markRead(1)), record(markRead(2))], { signal })), [
    "ok",
    "ok",
  ]);
  await send([record(markRead(3)), record(markRead(4))], { signal });
  assert.deepEqual(calls, ["batch:2", "read:1", "read:2", "read:3", "read:4"]);
});

Deno.test("relay send: a batch call that fails as a whole is retried, with its error", async () => {
  const { relay } = fakeRelay(() =>
    new RelayError("relay 500", { kind: "transient", status: 500 })
  );
  const results = await relaySend(relay, { agentId: "a" })(
    [record(markRead(1)), record(markRead(2))],
    { signal },
  );
  assert.deepEqual(oks(results), ["retry", "retry"]);
  assert.equal((results[0] as { error: unknown }).error, "relay 500");
});

Deno.test("relay send: a stored record this runner cannot read is poisoned, the rest still go", async () => {
  const { relay, calls } = fakeRelay((items) => items.map(() => ({ status: 200 })));
  const results = await relaySend(relay, { agentId: "a" })(
    [record({ kind: "mark-read", payload: { messageId: -1 } }), record(markRead(2))],
    { signal },
  );
  assert.deepEqual(oks(results), ["poison", "ok"]);
  assert.deepEqual(calls, ["batch:1"]);
});

Deno.test("relay send: a chunk too large for one batch call goes one call per record", async () => {
  const { relay, calls } = fakeRelay(() =>
    new RangeError("A batch of 5000000 bytes is over the limit")
  );
  const results = await relaySend(relay, { agentId: "a" })(
    [record(markRead(1)), record(markRead(2))],
    { signal },
  );
  assert.deepEqual(oks(results), ["ok", "ok"]);
  assert.deepEqual(calls, ["batch:2", "read:1", "read:2"]);
});
