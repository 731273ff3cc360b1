import assert from "node:assert/strict";
import { join } from "node:path";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import { RelayHttpClient } from "../../src/relay/http_client.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { waitFor } from "./helpers.ts";

async function relayFor(options: Parameters<typeof startDevRelay>[0] = {}) {
  const relay = await startDevRelay(options);
  return Object.assign(relay, { [Symbol.asyncDispose]: () => relay.close() });
}

async function call(
  url: string,
  init: RequestInit & { token?: string | null } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const headers = new Headers(init.headers);
  if (init.token !== null) headers.set("authorization", `Bearer ${init.token ?? "dev"}`);
  const response = await fetch(url, { ...init, headers });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // keep the text
  }
  return { status: response.status, body, headers: response.headers };
}

function errorOf(body: unknown): string {
  return String((body as { error?: unknown }).error);
}

Deno.test("the relay listens on 127.0.0.1 only and answers /health without a token", async () => {
  await using relay = await relayFor();
  assert.match(relay.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.deepEqual((await call(`${relay.url}/health`, { token: null })).body, { ok: true });
  // 127.0.0.2 is loopback too, but a socket bound to 127.0.0.1 does not accept it.
  await assert.rejects(Deno.connect({ hostname: "127.0.0.2", port: relay.port }));
});

Deno.test("API and admin requests need the right bearer token", async () => {
  await using relay = await relayFor({ token: "root-token" });
  const url = `${relay.url}/api/messages?for=a1`;
  const none = await call(url, { token: null });
  assert.equal(none.status, 401);
  assert.match(errorOf(none.body), /missing bearer token/);
  assert.equal((await call(url, { token: "nope" })).status, 401);
  assert.equal((await call(url, { token: "root-token" })).status, 200);

  const issued = relay.admin.issueToken();
  assert.equal((await call(url, { token: issued.token })).status, 200);
  // Only the root token opens the admin API.
  assert.equal((await call(`${relay.url}/admin/state`, { token: issued.token })).status, 401);
  assert.equal((await call(`${relay.url}/admin/state`, { token: "root-token" })).status, 200);
  // ...even after every token expired.
  relay.admin.expireTokens();
  assert.equal((await call(url, { token: "root-token" })).status, 401);
  assert.equal((await call(`${relay.url}/admin/state`, { token: "root-token" })).status, 200);
});

Deno.test("bad requests get a clear 400, 404, 405, 413 or 426 and store nothing", async () => {
  await using relay = await relayFor();
  const post = (path: string, body: string) =>
    call(`${relay.url}${path}`, {
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
    });

  let r = await post("/api/messages", "{not json");
  assert.equal(r.status, 400);
  assert.match(errorOf(r.body), /not valid JSON/);
  r = await post("/api/messages", "[1]");
  assert.equal(r.status, 400);
  r = await post("/api/messages", JSON.stringify({ from: "a", to: "b", kind: "chat", body: 5 }));
  assert.equal(r.status, 400);
  assert.match(errorOf(r.body), /"body" must be a string/);
  r = await post(
    "/api/messages",
    JSON.stringify({ from: "a", to: "b", kind: "chat", body: "x", replyTo: -1 }),
  );
  assert.match(errorOf(r.body), /replyTo/);
  r = await post(
    "/api/messages",
    JSON.stringify({ from: "a", to: "b", kind: "chat", body: "x", occurredAt: "later" }),
  );
  assert.match(errorOf(r.body), /occurredAt/);
  r = await post(
    "/api/messages",
    JSON.stringify({ from: "a", to: "b", kind: "chat", body: "x".repeat(1024 * 1024 + 1) }),
  );
  assert.equal(r.status, 413);
  r = await post("/api/agents/a1/heartbeat", JSON.stringify({ status: "asleep" }));
  assert.equal(r.status, 400);
  assert.match(errorOf(r.body), /status/);
  r = await post("/api/insights", JSON.stringify({ agentId: "a1" }));
  assert.equal(r.status, 400);
  r = await post("/api/agents/a1/permission-requests", JSON.stringify({ requestId: "r" }));
  assert.equal(r.status, 400);

  assert.equal((await call(`${relay.url}/api/messages`)).status, 400); // no ?for=
  assert.equal((await call(`${relay.url}/api/messages?for=a&limit=0`)).status, 400);
  assert.equal((await call(`${relay.url}/api/messages?for=a&unread=maybe`)).status, 400);
  assert.equal((await call(`${relay.url}/api/nothing`)).status, 404);
  assert.equal((await call(`${relay.url}/elsewhere`)).status, 404);
  const wrong = await call(`${relay.url}/api/insights`);
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "POST");
  assert.equal((await call(`${relay.url}/api/bus?agentId=a1`)).status, 426);

  const state = relay.admin.state();
  assert.equal(state.messages.length + state.heartbeats.length + state.insights.length, 0);
});

Deno.test("messages accept an ISO occurredAt and a taskId; unread=false lists read ones too", async () => {
  await using relay = await relayFor();
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  const r = await call(`${relay.url}/api/messages`, {
    method: "POST",
    body: JSON.stringify({
      from: "user",
      to: "a1",
      kind: "chat",
      body: "t",
      taskId: "task-1",
      occurredAt: "2026-01-01T00:00:00Z",
    }),
  });
  assert.equal(r.status, 201);
  const message = (r.body as { message: { id: number; taskId: string } }).message;
  assert.equal(message.taskId, "task-1");
  await client.markRead(message.id, "a1");
  assert.equal((await client.pollUnread("a1")).length, 0);
  const all = await call(`${relay.url}/api/messages?for=a1&unread=false`);
  assert.equal((all.body as { messages: unknown[] }).messages.length, 1);
});

Deno.test("state and renewed tokens survive a restart on the same port with the same file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dev-relay-" });
  try {
    const dbPath = join(dir, "relay.sqlite");
    const first = await startDevRelay({ dbPath });
    const port = first.port;
    const client = new RelayHttpClient({ baseUrl: first.url, token: "dev" });
    const m1 = (await client.sendMessage({ from: "user", to: "a1", kind: "chat", body: "keep me" }))
      .message;
    const { token } = await client.renewToken();
    await first.close();

    await using second = await relayFor({ dbPath, port });
    assert.equal(second.url, first.url);
    const again = new RelayHttpClient({ baseUrl: second.url, token });
    assert.deepEqual(await again.pollUnread("a1"), [m1]);
    assert.deepEqual((await again.replyObligations("a1")).map((o) => o.messageId), [m1.id]);
    const m2 = (await again.sendMessage({ from: "user", to: "a1", kind: "chat", body: "next" }))
      .message;
    assert.ok(m2.id > m1.id);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("issued tokens expire; an expired token may renew itself only within the grace", async () => {
  const clock = new FakeClock();
  await using relay = await relayFor({ clock, tokenTtlMs: 1000, renewGraceMs: 5000 });
  const renew = (token: string) => call(`${relay.url}/api/tokens/renew`, { method: "POST", token });
  const first = await renew("dev");
  assert.equal(first.status, 200);
  const { token, expiresAt } = first.body as { token: string; expiresAt: string };
  assert.equal(expiresAt, new Date(clock.now() + 1000).toISOString());
  const url = `${relay.url}/api/messages?for=a1`;
  assert.equal((await call(url, { token })).status, 200);
  clock.tick(1001);
  const expired = await call(url, { token });
  assert.equal(expired.status, 401);
  assert.match(errorOf(expired.body), /expired/);
  assert.equal((await call(url, { token: "dev" })).status, 200); // the root token never expires
  assert.equal((await renew(token)).status, 200);
  clock.tick(5000);
  const late = await renew(token);
  assert.equal(late.status, 401);
  assert.match(errorOf(late.body), /too long ago/);
});

Deno.test("the admin API switches faults, reports state and sends commands", async () => {
  await using relay = await relayFor();
  const admin = (path: string, body?: unknown) =>
    call(
      `${relay.url}${path}`,
      body === undefined ? {} : { method: "POST", body: JSON.stringify(body) },
    );
  const api = `${relay.url}/api/messages?for=a1`;

  assert.equal((await admin("/admin/faults", { failStatus: 503, failCount: 1 })).status, 200);
  assert.equal((await call(api)).status, 503);
  assert.equal((await call(api)).status, 200);
  assert.equal((await admin("/admin/faults", { slowMs: "x" })).status, 400);
  assert.equal((await admin("/admin/faults", { failStatus: 200 })).status, 400);
  assert.match(errorOf((await admin("/admin/faults", { explode: true })).body), /unknown fault/);
  assert.match(errorOf((await admin("/admin/faults", { down: true })).body), /downMs/);

  assert.equal((await admin("/admin/faults", { garbage: true })).status, 200);
  assert.equal(typeof (await call(api)).body, "string");
  assert.equal((await admin("/admin/faults", { clear: true })).status, 200);
  assert.equal((await call(api)).status, 200);

  assert.equal((await admin("/admin/faults", { expireTokens: true })).status, 200);
  assert.equal((await call(api)).status, 401);
  assert.equal((await admin("/admin/permission", { decision: "allow", reason: "go" })).status, 200);
  assert.equal((await admin("/admin/permission", { decision: "maybe" })).status, 400);
  const command = await admin("/admin/agents/a1/commands", { command: { type: "interrupt" } });
  assert.equal(command.status, 404);
  assert.equal((await admin("/admin/agents/a1/errors", { code: "fatal" })).status, 200);

  const state = (await admin("/admin/state")).body as Record<string, unknown>;
  for (const key of ["messages", "insights", "taskStatuses", "heartbeats", "statuses", "faults"]) {
    assert.ok(key in state, key);
  }

  // Down over HTTP comes back by itself after downMs, on the same port. The window is wide
  // enough to be seen on a loaded machine (300 ms could pass before the first probe).
  assert.equal((await admin("/admin/faults", { down: true, downMs: 2_000 })).status, 200);
  const reachable = () =>
    fetch(`${relay.url}/health`).then((r) => r.body?.cancel()).then(() => true, () => false);
  await waitFor(async () => !(await reachable()), "the relay to refuse connections");
  await waitFor(reachable, "the relay to come back");
  assert.equal(relay.admin.faults().down, false);
});

Deno.test("every request is traced as one readable line without the token", async () => {
  const lines: string[] = [];
  await using relay = await relayFor({ token: "tok-xyz", trace: (line) => void lines.push(line) });
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "tok-xyz" });
  await client.sendMessage({ from: "user", to: "a1", kind: "chat", body: "traced" });
  await client.pollUnread("a1");
  await client.renewToken();
  assert.match(lines[0] ?? "", /^POST \/api\/messages 201 \d+ms #1 user -> a1 chat "traced"$/);
  assert.match(lines[1] ?? "", /^GET \/api\/messages 200 \d+ms 1 for a1$/);
  assert.match(lines[2] ?? "", /^POST \/api\/tokens\/renew 200 /);
  assert.ok(lines.every((l) => !l.includes("tok-xyz") && !l.includes(client.token ?? "?")));
});

Deno.test("startDevRelay rejects a bad token and closes on an aborted signal", async () => {
  await assert.rejects(startDevRelay({ token: "has space" }), /printable/);
  const controller = new AbortController();
  const relay = await startDevRelay({ signal: controller.signal });
  const url = relay.url;
  controller.abort();
  await relay.close();
  await assert.rejects(fetch(`${url}/health`));
});
