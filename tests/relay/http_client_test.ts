import assert from "node:assert/strict";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import { isConflict, RelayError, relayErrorKind } from "../../src/relay/errors.ts";
import { RelayHttpClient } from "../../src/relay/http_client.ts";
import { parseMessage, toEpochMs, toIso } from "../../src/relay/wire.ts";
import { FakeClock } from "../support/fake_clock.ts";

const HEARTBEAT = {
  status: "idle" as const,
  provider: "claude" as const,
  version: "0.1.0",
  pid: 4242,
  host: "test-host",
};

async function rejects(promise: Promise<unknown>): Promise<RelayError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RelayError, `expected a RelayError, got ${error}`);
    return error;
  }
  assert.fail("expected the call to fail");
}

Deno.test("sendMessage stores a message; the same idempotency key answers the original", async () => {
  await using relay = await closing(startDevRelay());
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  const input = {
    from: "user",
    to: "a1",
    kind: "chat",
    body: "hello",
    payload: { n: 1 },
    occurredAt: Date.now(),
    idempotencyKey: "key-1",
  };
  const first = await client.sendMessage(input);
  assert.equal(first.duplicate, false);
  assert.equal(first.message.body, "hello");
  assert.deepEqual(first.message.payload, { n: 1 });
  assert.match(first.message.createdAt, /^\d{4}-\d\d-\d\dT.*Z$/);

  const again = await client.sendMessage({ ...input, body: "changed" });
  assert.equal(again.duplicate, true);
  assert.deepEqual(again.message, first.message);
  assert.equal(relay.admin.state().messages.length, 1);

  const other = await client.sendMessage({ ...input, idempotencyKey: "key-2" });
  assert.equal(other.duplicate, false);
  assert.notEqual(other.message.id, first.message.id);
  assert.equal(relay.admin.state().messages.length, 2);
});

Deno.test("pollUnread lists unread messages for the agent until markRead", async () => {
  await using relay = await closing(startDevRelay());
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  const m1 =
    (await client.sendMessage({ from: "user", to: "a1", kind: "chat", body: "one" })).message;
  const m2 =
    (await client.sendMessage({ from: "user", to: "a1", kind: "chat", body: "two" })).message;
  await client.sendMessage({ from: "user", to: "a2", kind: "chat", body: "not for a1" });

  assert.deepEqual((await client.pollUnread("a1")).map((m) => m.id), [m1.id, m2.id]);
  assert.deepEqual((await client.pollUnread("a1", { limit: 1 })).map((m) => m.id), [m1.id]);
  await client.markRead(m1.id, "a1");
  await client.markRead(m1.id, "a1"); // idempotent
  assert.deepEqual((await client.pollUnread("a1")).map((m) => m.id), [m2.id]);
  assert.equal(relay.admin.state().reads.length, 1);

  const missing = await rejects(client.markRead(999_999, "a1"));
  assert.equal(missing.status, 404);
  assert.equal(missing.kind, "permanent");
});

Deno.test("a chat message creates a reply obligation; the agent's reply with replyTo clears it", async () => {
  await using relay = await closing(startDevRelay());
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  const ask = (await client.sendMessage({ from: "user", to: "a1", kind: "chat", body: "why?" }))
    .message;
  await client.sendMessage({ from: "user", to: "a1", kind: "session", body: "mirror only" });
  const second = (await client.sendMessage({ from: "boss", to: "a1", kind: "chat", body: "and?" }))
    .message;

  let owed = await client.replyObligations("a1");
  assert.deepEqual(owed.map((o) => [o.messageId, o.from, o.body]), [
    [ask.id, "user", "why?"],
    [second.id, "boss", "and?"],
  ]);
  assert.equal(typeof owed[0]?.createdAt, "string");

  // A reply by someone else does not clear a1's obligation; a reply creates none.
  await client.sendMessage({ from: "a2", to: "user", kind: "chat", body: "x", replyTo: ask.id });
  assert.equal((await client.replyObligations("a1")).length, 2);
  assert.equal((await client.replyObligations("user")).length, 0);

  // Any kind of message from a1 with replyTo clears it.
  const reply = (await client.sendMessage({
    from: "a1",
    to: "user",
    kind: "chat",
    body: "because",
    replyTo: ask.id,
  })).message;
  await client.sendMessage({
    from: "a1",
    to: "boss",
    kind: "session",
    body: "ok",
    replyTo: second.id,
  });
  owed = await client.replyObligations("a1");
  assert.deepEqual(owed, []);
  const stored = relay.admin.state().obligations;
  assert.equal(stored.find((o) => o.messageId === ask.id)?.clearedBy, reply.id);
  // The reply reached the sender's unread list.
  assert.ok((await client.pollUnread("user")).some((m) => m.replyTo === ask.id));
});

Deno.test("recordInsight deduplicates by key; the insights switch answers 409 (conflict)", async () => {
  await using relay = await closing(startDevRelay());
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  const insight = {
    sessionId: "s1",
    project: "/work",
    agentId: "a1",
    signal: "context_ratio",
    value: { ratio: 0.5 },
    outcome: { ok: true },
    source: "server",
    occurredAt: 1_700_000_000_000,
    idempotencyKey: "ins-1",
  };
  await client.recordInsight(insight);
  await client.recordInsight(insight);
  const stored = relay.admin.state().insights;
  assert.equal(stored.length, 1);
  assert.deepEqual(stored[0]?.value, { ratio: 0.5 });
  assert.equal(stored[0]?.occurredAt, 1_700_000_000_000);

  await relay.admin.setFaults({ insights409: true });
  const error = await rejects(client.recordInsight({ ...insight, idempotencyKey: "ins-2" }));
  assert.equal(error.kind, "conflict");
  assert.equal(error.status, 409);
  assert.equal(error.permanent, false);
  assert.ok(isConflict(error));
  assert.equal(relay.admin.state().insights.length, 1);
});

Deno.test("task status, heartbeat, permission request and leave are stored", async () => {
  await using relay = await closing(
    startDevRelay({ permission: { decision: "allow", reason: "ok" } }),
  );
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  await client.setTaskStatus("task/7", {
    status: "in_progress",
    agentId: "a1",
    metadata: { m: 1 },
  });
  await client.heartbeat("a1", HEARTBEAT);
  const decision = await client.askPermission("a1", {
    requestId: "r1",
    provider: "claude",
    tool: "Bash",
    input: { command: "ls" },
  });
  assert.deepEqual(decision, { decision: "allow", reason: "ok" });
  relay.admin.setPermission({ decision: "deny" });
  assert.deepEqual(
    await client.askPermission("a1", {
      requestId: "r2",
      provider: "claude",
      tool: "Bash",
      input: {},
    }),
    { decision: "deny" },
  );
  await client.leave("a1");

  const state = relay.admin.state();
  assert.deepEqual(
    state.taskStatuses.map((t) => [t.taskId, t.status, t.agentId, t.metadata]),
    [["task/7", "in_progress", "a1", { m: 1 }]],
  );
  assert.deepEqual(
    state.heartbeats.map((h) => [h.agentId, h.status, h.pid, h.host]),
    [["a1", "idle", 4242, "test-host"]],
  );
  assert.deepEqual(state.permissionRequests.map((p) => [p.requestId, p.tool, p.decision]), [
    ["r1", "Bash", "allow"],
    ["r2", "Bash", "deny"],
  ]);
  assert.deepEqual(state.departures.map((d) => d.agentId), ["a1"]);

  const bad = await rejects(client.setTaskStatus("t", { status: "nope" as "done", agentId: "a1" }));
  assert.equal(bad.kind, "permanent");
  assert.match(bad.message, /status/);
});

Deno.test("the token is renewed before it expires; the old one stays valid until its expiry", async () => {
  const clock = new FakeClock();
  await using relay = await closing(startDevRelay({ clock, tokenTtlMs: 120_000 }));
  const changes: Array<[string, number | undefined]> = [];
  const client = new RelayHttpClient({
    baseUrl: relay.url,
    token: "dev",
    clock,
    renewBeforeMs: 60_000,
    onTokenChange: (token, expiresAt) => changes.push([token, expiresAt]),
  });
  const first = await client.renewToken();
  assert.notEqual(first.token, "dev");
  assert.equal(first.expiresAt, clock.now() + 120_000);
  assert.equal(client.token, first.token);
  assert.deepEqual(changes, [[first.token, first.expiresAt]]);

  await client.heartbeat("a1", HEARTBEAT); // far from expiry: no renewal
  assert.equal(changes.length, 1);

  clock.tick(61_000); // inside the renew-before window
  await client.heartbeat("a1", HEARTBEAT);
  assert.equal(changes.length, 2);
  const second = changes[1]?.[0];
  assert.ok(second && second !== first.token);
  assert.equal(client.token, second);

  // The first token is still valid until it expires...
  const old = new RelayHttpClient({ baseUrl: relay.url, token: first.token, clock });
  await old.heartbeat("a1", HEARTBEAT);
  // ...and after that, a call renews it (inside the relay's grace) and retries.
  clock.tick(60_000);
  let oldChanged = "";
  const late = new RelayHttpClient({
    baseUrl: relay.url,
    token: first.token,
    clock,
    onTokenChange: (token) => oldChanged = token,
  });
  await late.heartbeat("a1", HEARTBEAT);
  assert.ok(oldChanged && oldChanged !== first.token);
  assert.equal(relay.admin.state().heartbeats.length, 4);
});

Deno.test("the client accepts an epoch or ISO expiresAt and renews ahead of it", async () => {
  const clock = new FakeClock();
  await using relay = await closing(startDevRelay({ clock }));
  for (const expiresAt of [clock.now() + 30_000, new Date(clock.now() + 30_000).toISOString()]) {
    let renewed = 0;
    const client = new RelayHttpClient({
      baseUrl: relay.url,
      token: "dev",
      tokenExpiresAt: expiresAt,
      clock,
      onTokenChange: () => renewed++,
    });
    assert.equal(client.tokenExpiresAt, clock.now() + 30_000);
    await client.heartbeat("a1", HEARTBEAT);
    assert.equal(renewed, 1);
    assert.notEqual(client.token, "dev");
  }
});

Deno.test("an auth failure renews the token, then retries once", async () => {
  await using relay = await closing(startDevRelay());
  let changed: string | undefined;
  const client = new RelayHttpClient({
    baseUrl: relay.url,
    token: "dev",
    onTokenChange: (token) => changed = token,
  });
  relay.admin.expireTokens();
  const { message } = await client.sendMessage({
    from: "a1",
    to: "user",
    kind: "chat",
    body: "hi",
  });
  assert.ok(changed && changed !== "dev");
  assert.equal(client.token, changed);
  assert.deepEqual(relay.admin.state().messages.map((m) => m.id), [message.id]);

  // Concurrent auth failures share one renewal.
  relay.admin.expireTokens();
  let renewals = 0;
  const shared = new RelayHttpClient({
    baseUrl: relay.url,
    token: changed,
    onTokenChange: () => renewals++,
  });
  await Promise.all([1, 2, 3].map(() => shared.heartbeat("a1", HEARTBEAT)));
  assert.equal(renewals, 1);
});

Deno.test("a token the relay does not know is an auth error that never shows the token", async () => {
  await using relay = await closing(startDevRelay());
  const token = "wrong-secret-token-123";
  const client = new RelayHttpClient({ baseUrl: relay.url, token });
  const error = await rejects(client.heartbeat("a1", HEARTBEAT));
  assert.equal(error.kind, "auth");
  assert.equal(error.status, 401);
  assert.match(error.message, /renewal failed/);
  assert.ok(!error.message.includes(token));
  assert.ok(!String(error.cause).includes(token));
  assert.equal(relay.admin.state().heartbeats.length, 0);
});

Deno.test("every HTTP status class maps to its kind", async () => {
  await using relay = await closing(startDevRelay());
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  const cases: Array<[number, string]> = [
    [500, "transient"],
    [502, "transient"],
    [503, "transient"],
    [408, "transient"],
    [429, "transient"],
    [409, "conflict"],
    [401, "auth"],
    [403, "auth"],
    [400, "permanent"],
    [404, "permanent"],
    [422, "permanent"],
  ];
  for (const [status, kind] of cases) {
    await relay.admin.setFaults({ failStatus: status });
    const error = await rejects(client.heartbeat("a1", HEARTBEAT));
    assert.equal(error.status, status, `status ${status}`);
    assert.equal(error.kind, kind, `status ${status}`);
    assert.equal(error.permanent, kind === "permanent", `status ${status}`);
    assert.equal(relayErrorKind(error), kind);
    assert.ok(!error.message.includes("Bearer"));
  }
  await relay.admin.setFaults({ failStatus: 429 });
  assert.equal((await rejects(client.heartbeat("a1", HEARTBEAT))).retryAfterMs, 1000);
  await relay.admin.clearFaults();
  await client.heartbeat("a1", HEARTBEAT);
  assert.equal(relay.admin.state().heartbeats.length, 1);

  // A request the relay rejects on its merits is permanent too.
  const invalid = await rejects(
    client.sendMessage({ from: "a1", to: "", kind: "chat", body: "x" }),
  );
  assert.equal(invalid.status, 400);
  assert.equal(invalid.kind, "permanent");
  assert.match(invalid.message, /"to"/);
});

Deno.test("a fault that fails only the next request lets the retry through", async () => {
  await using relay = await closing(startDevRelay());
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  await relay.admin.setFaults({ failStatus: 403, failCount: 1 });
  // 403 → renew → retry: the caller sees success.
  await client.heartbeat("a1", HEARTBEAT);
  assert.notEqual(client.token, "dev");
  assert.equal(relay.admin.faults().failStatus, 0);
  assert.equal(relay.admin.state().heartbeats.length, 1);
});

Deno.test("an unparseable 2xx body is transient", async () => {
  await using relay = await closing(startDevRelay({ faults: { garbage: true } }));
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  const error = await rejects(client.sendMessage({ from: "a", to: "b", kind: "chat", body: "x" }));
  assert.equal(error.kind, "transient");
  assert.equal(error.status, 200);
  assert.match(error.message, /not JSON/);
  assert.equal((await rejects(client.pollUnread("b"))).kind, "transient");
  assert.equal((await rejects(client.heartbeat("b", HEARTBEAT))).kind, "transient");
});

Deno.test("a slow relay times out (transient) and a cancelled call is transient", async () => {
  await using relay = await closing(startDevRelay({ faults: { slowMs: 5_000 } }));
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev", timeoutMs: 50 });
  const error = await rejects(client.heartbeat("a1", HEARTBEAT));
  assert.equal(error.kind, "transient");
  assert.match(error.message, /timed out after 50ms/);

  const controller = new AbortController();
  const pending = client.pollUnread("a1", { signal: controller.signal });
  controller.abort();
  const cancelled = await rejects(pending);
  assert.equal(cancelled.kind, "transient");
  assert.match(cancelled.message, /cancelled/);
});

Deno.test("a relay that is down is transient; it comes back on the same port", async () => {
  await using relay = await closing(startDevRelay());
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  const port = relay.port;
  await relay.admin.setFaults({ down: true });
  const error = await rejects(client.heartbeat("a1", HEARTBEAT));
  assert.equal(error.kind, "transient");
  assert.equal(error.status, undefined);
  assert.match(error.message, /could not reach the relay/);
  await relay.admin.setFaults({ down: false });
  assert.equal(relay.port, port);
  await client.heartbeat("a1", HEARTBEAT);
  assert.equal(relay.admin.state().heartbeats.length, 1);
});

Deno.test("relay times: ISO and epoch are both read; messages normalize createdAt to ISO", () => {
  const iso = "2026-01-02T03:04:05.000Z";
  const ms = Date.parse(iso);
  assert.equal(toEpochMs(iso), ms);
  assert.equal(toEpochMs(ms), ms);
  assert.equal(toEpochMs(String(ms)), ms);
  assert.equal(toEpochMs("yesterday"), undefined);
  assert.equal(toEpochMs(Number.NaN), undefined);
  assert.equal(toIso(ms), iso);
  const message = parseMessage({
    id: 3,
    from: "a",
    to: "b",
    kind: "chat",
    body: "x",
    createdAt: ms,
  });
  assert.equal(message?.createdAt, iso);
  assert.equal(
    parseMessage({ id: "3", from: "a", to: "b", kind: "chat", body: "x", createdAt: ms }),
    undefined,
  );
  assert.equal(parseMessage({ id: 3, from: "a", to: "b", kind: "chat", body: "x" }), undefined);
});

Deno.test("the base URL must be http(s)", () => {
  assert.throws(() => new RelayHttpClient({ baseUrl: "ftp://127.0.0.1" }), /http or https/);
  assert.throws(() => new RelayHttpClient({ baseUrl: "not a url" }), /not a URL/);
  assert.equal(
    new RelayHttpClient({ baseUrl: "http://127.0.0.1:1/" }).baseUrl,
    "http://127.0.0.1:1",
  );
});

/** Makes a relay closeable with `await using`. */
async function closing<T extends { close(): Promise<void> }>(
  started: Promise<T>,
): Promise<T & AsyncDisposable> {
  const relay = await started;
  return Object.assign(relay, { [Symbol.asyncDispose]: () => relay.close() });
}
