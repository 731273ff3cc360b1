/**
 * Operating the runner from outside (issues 14 and 17): `GET /ready`, the relay auth state in
 * `/health` and `/status`, the bus, status and build figures in `/metrics`, and the hook
 * endpoints refused (409) for a provider that does not use hooks.
 */
import assert from "node:assert/strict";
import { VERSION } from "../../src/version.ts";
import type { ProviderName } from "../../src/types.ts";
import { createControlHandler } from "../../src/control/mod.ts";
import { fake, get, handlerFor, owed, post, SECRET } from "./control_fake.ts";

Deno.test("GET /ready: 200 without a readiness callback, 503 with the reason while not ready", async () => {
  const always = handlerFor(fake());
  const res = await always(get("/ready", {}));
  assert.equal(res.status, 200, "no secret needed");
  assert.deepEqual(await res.json(), { ready: true });

  let state: { ready: true } | { ready: false; reason: string } = {
    ready: false,
    reason: "the relay bus is connecting",
  };
  const f = fake({ readiness: () => state });
  const h = handlerFor(f);
  const waiting = await h(get("/ready", {}));
  assert.equal(waiting.status, 503);
  assert.deepEqual(await waiting.json(), { ready: false, reason: "the relay bus is connecting" });
  state = { ready: true };
  const ready = await h(get("/ready", {}));
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { ready: true });
  const wrong = await h(post("/ready", {}, {}));
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "GET");
  await wrong.body?.cancel();
});

Deno.test("GET /ready: a failing readiness check is not ready, and a secret in a reason is redacted", async () => {
  const throwing = handlerFor(fake({
    readiness: () => {
      throw new Error("boom");
    },
  }));
  const res = await throwing(get("/ready", {}));
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), {
    ready: false,
    reason: "the readiness check failed: boom",
  });
  const leaky = handlerFor(fake({ readiness: () => ({ ready: false, reason: `bad ${SECRET}` }) }));
  const text = await (await leaky(get("/ready", {}))).text();
  assert.ok(!text.includes(SECRET), text);
});

Deno.test("/health and /status show the relay auth state; odd or failing answers are unknown", async () => {
  let auth: string = "unauthorized";
  const h = handlerFor(fake({ relayAuth: () => auth as "ok" }));
  const health = await h(get("/health", {}));
  assert.equal(health.status, 200, "health stays 200 whatever the relay says");
  assert.deepEqual(await health.json(), { ok: true, relay: { auth: "unauthorized" } });
  assert.equal((await (await h(get("/status"))).json()).relayAuth, "unauthorized");
  auth = "ok";
  assert.equal((await (await h(get("/status"))).json()).relayAuth, "ok");
  auth = "maybe";
  assert.equal((await (await h(get("/status"))).json()).relayAuth, "unknown");
  const failing = handlerFor(fake({
    relayAuth: () => {
      throw new Error("x");
    },
  }));
  assert.deepEqual(await (await failing(get("/health", {}))).json(), {
    ok: true,
    relay: { auth: "unknown" },
  });
});

Deno.test("GET /metrics: bus connected, the agent status and the build info", async () => {
  let bus = "connecting";
  const base = fake().callbacks.status;
  const f = fake({ status: () => ({ ...base(), bus }) });
  const h = handlerFor(f);
  const metrics = async () => await (await h(get("/metrics"))).text();
  let text = await metrics();
  assert.match(text, /^agent_relay_runner_bus_connected 0$/m);
  assert.match(text, /^agent_relay_runner_agent_status\{status="busy"\} 1$/m);
  assert.match(text, /^agent_relay_runner_agent_status\{status="idle"\} 0$/m);
  assert.equal(text.match(/^agent_relay_runner_agent_status\{.*\} 1$/gm)?.length, 1);
  assert.match(
    text,
    new RegExp(
      `^agent_relay_runner_build_info\\{version="${VERSION.replace(/\./g, "\\.")}",deno="${
        Deno.version.deno.replace(/\./g, "\\.")
      }",bundled="false"\\} 1$`,
      "m",
    ),
  );
  bus = "open";
  text = await metrics();
  assert.match(text, /^agent_relay_runner_bus_connected 1$/m);
});

for (const provider of ["command", "codex"] as ProviderName[]) {
  Deno.test(`POST /hooks/*: 409 for the ${provider} provider, nothing read and nothing done`, async () => {
    const f = fake();
    f.obligations = [owed(3, "user", "queued")];
    const h = createControlHandler({ secret: SECRET, callbacks: f.callbacks, provider });
    for (const event of ["stop", "permission-request", "pre-tool-use", "session-end"]) {
      const res = await h(post(`/hooks/${event}`, { stop_hook_active: false }));
      assert.equal(res.status, 409, event);
      const body = await res.json();
      assert.match(body.error, new RegExp(`The ${provider} provider does not use hooks`));
    }
    assert.deepEqual(f.hooks, [], "no hook reached the runner");
    // The secret is still checked first, and the other endpoints still answer.
    const unauth = await h(post("/hooks/stop", {}, {}));
    assert.equal(unauth.status, 401);
    await unauth.body?.cancel();
    const status = await h(get("/status"));
    assert.equal(status.status, 200);
    await status.body?.cancel();
    const fatal = await h(post("/hook-fatal", { hook: "x", error: "y" }));
    assert.equal(fatal.status, 200);
    await fatal.body?.cancel();
  });
}

Deno.test("POST /hooks/*: the claude provider is answered", async () => {
  const f = fake();
  const h = createControlHandler({ secret: SECRET, callbacks: f.callbacks, provider: "claude" });
  const res = await h(post("/hooks/stop", { stop_hook_active: true }));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  assert.equal(f.hooks.length, 1);
});
