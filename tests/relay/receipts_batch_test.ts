/**
 * Receipts (issue 14), the batch endpoint and the health probe (issue 18), on the reference
 * relay and through the client.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import {
  type BatchItem,
  BatchUnsupportedError,
  RelayError,
  RelayHttpClient,
} from "../../src/relay/mod.ts";
import { waitFor } from "./helpers.ts";
import { RelayBus } from "../../src/relay/bus_client.ts";
import type { Message } from "../../src/types.ts";

async function relayFor(options: Parameters<typeof startDevRelay>[0] = {}) {
  const relay = await startDevRelay(options);
  return Object.assign(relay, { [Symbol.asyncDispose]: () => relay.close() });
}

async function post(url: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { authorization: "Bearer dev", "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

Deno.test("receipts: stored once per message, agent and state, listed in order, 404 for an unknown message", async () => {
  await using relay = await relayFor();
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  const { message } = await client.sendMessage({
    from: "user",
    to: "a1",
    kind: "chat",
    body: "hi",
  });
  assert.deepEqual(await client.receipts(message.id), []);

  await client.sendReceipt(message.id, { agentId: "a1", state: "received", at: 1000 });
  await client.sendReceipt(message.id, { agentId: "a1", state: "handed", at: 1001 });
  // Idempotent: the same (message, agent, state) again stores nothing; the first stays.
  const url = `${relay.url}/api/messages/${message.id}/receipts`;
  const again = await post(url, { agentId: "a1", state: "handed", at: 5000 });
  assert.equal(again.status, 200);
  assert.deepEqual(again.body, { receipt: { state: "handed", at: 1001, agentId: "a1" } });
  const failed = await post(url, {
    agentId: "a1",
    state: "failed",
    at: 1002,
    detail: "the model API answered 500",
  });
  assert.equal(failed.status, 201);

  assert.deepEqual(await client.receipts(message.id), [
    { state: "received", at: 1000, agentId: "a1" },
    { state: "handed", at: 1001, agentId: "a1" },
    { state: "failed", at: 1002, agentId: "a1", detail: "the model API answered 500" },
  ]);
  const stored = relay.admin.state().receipts;
  assert.equal(stored.length, 3);
  assert.equal(stored[2]?.messageId, message.id);
  assert.equal(typeof stored[2]?.createdAt, "string");

  // Validation: each a 400 that names the field; nothing stored.
  const bad: Array<[unknown, RegExp]> = [
    [{ agentId: "a1", state: "done", at: 1 }, /"state" must be one of received, handed/],
    [{ agentId: "a1", state: "handed", at: "soon" }, /"at" must be epoch milliseconds/],
    [{ agentId: "a1", state: "handed", at: -1 }, /"at"/],
    [{ state: "handed", at: 1 }, /"agentId" is required/],
    [{ agentId: "a2", state: "handed", at: 1, detail: "d".repeat(1001) }, /"detail" is longer/],
    [[1], /must be a JSON object/],
  ];
  for (const [body, pattern] of bad) {
    const r = await post(url, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match(String((r.body as { error: string }).error), pattern);
  }
  assert.equal(relay.admin.state().receipts.length, 3);

  const missing = await client.sendReceipt(999_999, { agentId: "a1", state: "handed", at: 1 })
    .catch((e) => e);
  assert.ok(missing instanceof RelayError && missing.status === 404);
  assert.equal((await client.receipts(999_999).catch((e) => e)).status, 404);
  assert.equal((await post(`${relay.url}/api/messages/x/receipts`, {})).status, 400);
});

Deno.test("POST /api/batch applies each item as its single call would, in order, in one answer", async () => {
  await using relay = await relayFor({ faults: { insights409: false } });
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  // A bus observer sees each new message once, after the batch.
  const seen: Message[] = [];
  const observer = new RelayBus({
    baseUrl: relay.url,
    agentId: "watcher",
    role: "observer",
    token: () => "dev",
    pingIntervalMs: 0,
    onMessage: (m) => void seen.push(m),
  });
  observer.start();
  await observer.whenConnected();
  try {
    const first = await client.sendMessage({ from: "user", to: "a1", kind: "chat", body: "q" });
    const insight = {
      sessionId: "s",
      project: "p",
      agentId: "a1",
      signal: "turn",
      value: 1,
      source: "runner",
      occurredAt: 1,
      idempotencyKey: "ins-1",
    };
    const items: BatchItem[] = [
      {
        type: "message",
        body: {
          from: "a1",
          to: "user",
          kind: "chat",
          body: "a",
          replyTo: first.message.id,
          idempotencyKey: "k1",
        },
      },
      {
        type: "message",
        body: { from: "a1", to: "user", kind: "chat", body: "dup", idempotencyKey: "k1" },
      },
      { type: "insight", body: insight },
      { type: "insight", body: insight },
      { type: "mark-read", messageId: first.message.id, agentId: "a1" },
      { type: "mark-read", messageId: 999_999, agentId: "a1" },
      { type: "task-status", taskId: "t1", body: { status: "done", agentId: "a1" } },
      { type: "task-status", taskId: "t1", body: { status: "finished" as "done", agentId: "a1" } },
      {
        type: "receipt",
        messageId: first.message.id,
        body: { agentId: "a1", state: "answered", at: 9 },
      },
      { type: "receipt", messageId: 999_999, body: { agentId: "a1", state: "answered", at: 9 } },
      // deno-lint-ignore no-explicit-any
      { type: "bogus" } as any,
      {
        type: "message",
        body: { from: "a1", to: "user", kind: "chat", body: "x".repeat(1024 * 1024) },
      },
    ];
    const results = await client.sendBatch(items);
    assert.deepEqual(results.map((r) => r.status), [
      201,
      200,
      201,
      200,
      200,
      404,
      200,
      400,
      201,
      404,
      400,
      413,
    ]);
    assert.match(results[5]?.error ?? "", /message 999999 does not exist/);
    assert.match(results[7]?.error ?? "", /"status" must be in_progress, done or failed/);
    assert.equal(results[0]?.error, undefined);

    const state = relay.admin.state();
    assert.deepEqual(state.messages.map((m) => m.body), ["q", "a"]);
    assert.equal(state.insights.length, 1);
    assert.equal(state.reads.length, 1);
    assert.equal(state.taskStatuses.length, 1);
    assert.deepEqual(state.receipts.map((r) => r.state), ["answered"]);
    assert.equal(state.obligations[0]?.clearedBy, state.messages[1]?.id);
    await waitFor(() => seen.length === 2, "both new messages on the bus");
    assert.deepEqual(seen.map((m) => m.body), ["q", "a"]);

    // The same batch again: every write is a duplicate or a repeat.
    const again = await client.sendBatch(items.slice(0, 5));
    assert.deepEqual(again.map((r) => r.status), [200, 200, 200, 200, 200]);
    assert.equal(relay.admin.state().messages.length, 2);

    // The insights switch answers 409 per item, as the single call would.
    await relay.admin.setFaults({ insights409: true });
    assert.deepEqual(
      (await client.sendBatch([{ type: "insight", body: { ...insight, idempotencyKey: "i2" } }]))
        .map((r) => r.status),
      [409],
    );
    assert.deepEqual(await client.sendBatch([]), []);
  } finally {
    await observer.close();
  }
});

Deno.test("the batch refuses a malformed or oversized whole with a 4xx; the client checks its limits", async () => {
  await using relay = await relayFor();
  const url = `${relay.url}/api/batch`;
  assert.equal((await post(url, { items: "no" })).status, 400);
  assert.equal((await post(url, "{not json")).status, 400);
  const many = { items: Array.from({ length: 1001 }, () => ({ type: "bogus" })) };
  const tooMany = await post(url, many);
  assert.equal(tooMany.status, 400);
  assert.match(String((tooMany.body as { error: string }).error), /at most 1000 items/);
  const huge = await post(url, { items: [], pad: "x".repeat(4 * 1024 * 1024) });
  assert.equal(huge.status, 413);

  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  const items = Array.from({ length: 1001 }, (): BatchItem => ({
    type: "mark-read",
    messageId: 1,
    agentId: "a",
  }));
  await assert.rejects(client.sendBatch(items), RangeError);
  const fat: BatchItem[] = Array.from({ length: 5 }, () => ({
    type: "message",
    body: { from: "a", to: "b", kind: "chat", body: "y".repeat(1024 * 1024) },
  }));
  await assert.rejects(client.sendBatch(fat), /over the limit of 4194304/);
  assert.equal(relay.admin.state().messages.length, 0);
});

Deno.test("a relay without the batch endpoint (404, 405) throws BatchUnsupportedError", async () => {
  for (const status of [404, 405]) {
    const ac = new AbortController();
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
      () => Response.json({ error: "no" }, { status }),
    );
    try {
      const client = new RelayHttpClient({ baseUrl: `http://127.0.0.1:${server.addr.port}` });
      const error = await client.sendBatch([{ type: "mark-read", messageId: 1, agentId: "a" }])
        .catch((e) => e);
      assert.ok(error instanceof BatchUnsupportedError, String(error));
      assert.ok(error instanceof RelayError);
      assert.equal(error.status, status);
    } finally {
      ac.abort();
      await server.finished;
    }
  }
  // Any other failure stays a plain RelayError.
  await using relay = await relayFor({ faults: { failStatus: 503 } });
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  const error = await client.sendBatch([{ type: "mark-read", messageId: 1, agentId: "a" }])
    .catch((e) => e);
  assert.ok(error instanceof RelayError && !(error instanceof BatchUnsupportedError));
  assert.equal(error.kind, "transient");
});

Deno.test("probe: true when the relay answers at all, false when it is down or silent", async () => {
  await using relay = await relayFor({ token: "secret" });
  // No token needed, and any status counts: a faulted relay is still there.
  const client = new RelayHttpClient({ baseUrl: relay.url });
  assert.equal(await client.probe(), true);
  await relay.admin.setFaults({ down: true });
  assert.equal(await client.probe(), false);
  await relay.admin.setFaults({ down: false });
  assert.equal(await client.probe(), true);

  const answering = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("<html>", { status: 503 }),
  );
  // A listener that accepts and never answers: the probe times out.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  try {
    const other = new RelayHttpClient({ baseUrl: `http://127.0.0.1:${answering.addr.port}` });
    assert.equal(await other.probe(), true);
    const mute = new RelayHttpClient({ baseUrl: `http://127.0.0.1:${silent.addr.port}` });
    assert.equal(await mute.probe({ timeoutMs: 100 }), false);
    const aborted = AbortSignal.abort();
    assert.equal(await client.probe({ signal: aborted }), false);
  } finally {
    await answering.shutdown();
    silent.close();
    for (const conn of held) conn.close();
    await accepting.catch(() => {});
  }
});
