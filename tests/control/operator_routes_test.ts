/**
 * The operator endpoints (src/control/operator_routes.ts): status, the reply-obligation
 * snapshot and the log level.
 */
import assert from "node:assert/strict";
import { getLogLevel } from "../../src/logger.ts";
import { fake, get, handlerFor, owed, post, withLogs } from "./control_fake.ts";

Deno.test("GET /status adds uptime and the obligation snapshot's age, times in ISO-8601", async () => {
  const f = fake();
  f.obligations = [owed(1, "user")];
  f.refreshedAt = 4_000;
  const body = await (await handlerFor(f)(get("/status"))).json();
  assert.equal(body.agentId, "a1");
  assert.equal(body.status, "busy");
  assert.equal(body.pid, 4242);
  assert.equal(body.startedAt, "1970-01-01T00:00:01.000Z", "the snapshot's epoch ms as ISO");
  assert.equal(body.uptimeMs, 4_000);
  assert.equal(body.relayAuth, "unknown", "no relayAuth callback");
  assert.deepEqual(body.outbox, { pending: 2, poisoned: 1 });
  assert.equal(body.lastDeliveryAt, 1_500, "extra runner fields pass through");
  assert.deepEqual(body.obligations, {
    count: 1,
    refreshedAt: "1970-01-01T00:00:04.000Z",
    ageMs: 1_000,
  });
});

Deno.test("POST /status hands the status and its source to the runner", async () => {
  const f = fake();
  const h = handlerFor(f);
  assert.deepEqual(await (await h(post("/status", { status: "idle" }))).json(), {
    ok: true,
    status: "idle",
  });
  await (await h(post("/status", { status: "busy", source: "script" }))).body?.cancel();
  assert.deepEqual(f.statuses, [["idle", "control"], ["busy", "script"]]);
});

Deno.test("GET /reply-obligations serves the local snapshot with refreshedAt", async () => {
  const f = fake();
  const h = handlerFor(f);
  assert.deepEqual(await (await h(get("/reply-obligations"))).json(), {
    obligations: [],
    count: 0,
    refreshedAt: null,
    ageMs: null,
  });
  f.obligations = [owed(9, "user", "hi")];
  f.refreshedAt = 4_500;
  const body = await (await h(get("/reply-obligations"))).json();
  assert.deepEqual(body.obligations, [owed(9, "user", "hi")]);
  assert.equal(body.refreshedAt, "1970-01-01T00:00:04.500Z");
  assert.equal(body.ageMs, 500);
});

Deno.test("GET and POST /log-level read and change the logger's level at run time", async () => {
  await withLogs(async (entries) => {
    const h = handlerFor(fake());
    assert.deepEqual(await (await h(get("/log-level"))).json(), {
      level: "info",
      levels: ["debug", "info", "warn", "error", "fatal"],
    });
    const res = await h(post("/log-level", { level: " DEBUG " }));
    assert.deepEqual(await res.json(), { ok: true, level: "debug", previous: "info" });
    assert.equal(getLogLevel(), "debug");
    assert.ok(entries.some((e) => /log level set to debug \(was info\)/.test(e.message)));
  });
});
