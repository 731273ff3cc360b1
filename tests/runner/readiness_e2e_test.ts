/**
 * Readiness through the real program: `GET /ready` answers 503 with a reason until the bus is
 * connected and the provider runs, then 200; a relay that refuses the token keeps it 503 and
 * shows `unauthorized` in `/health` and `/status`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import { readiness } from "../../src/runner/status.ts";
import { ECHO } from "../support/agents.ts";
import { withHome } from "../support/home.ts";
import { startRunner } from "../support/runner_process.ts";
import { waitFor } from "../support/wait.ts";

async function ready(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}/ready`);
  return { status: res.status, body: await res.json() };
}

Deno.test("readiness: each reason, in order of weight", () => {
  const up = { stopping: false, auth: "ok" as const, providerRunning: true, bus: "open" };
  assert.deepEqual(readiness(up), { ready: true });
  assert.deepEqual(readiness({ ...up, bus: "connecting" }), {
    ready: false,
    reason: "the relay bus is not connected (connecting)",
  });
  assert.deepEqual(readiness({ ...up, providerRunning: false }), {
    ready: false,
    reason: "the provider is not running",
  });
  assert.deepEqual(readiness({ ...up, auth: "unauthorized", bus: "connecting" }), {
    ready: false,
    reason: "the relay refused the token (unauthorized)",
  });
  assert.deepEqual(readiness({ ...up, stopping: true }), {
    ready: false,
    reason: "the runner is stopping",
  });
});

Deno.test("readiness: /ready goes 200 once the bus is up; a refused token keeps it 503", async () => {
  await withHome("arr-ready-", async (home) => {
    const relay = await startDevRelay({ port: 0 });
    try {
      const good = startRunner(relay, { agentId: "good", home, providerArgs: [ECHO] });
      const info = await good.info();
      const port = info["controlPort"] as number;
      const first = await ready(port);
      if (first.status === 503) assert.equal(typeof first.body["reason"], "string");
      await waitFor("ready", async () => (await ready(port)).status === 200, {
        signal: good.exited,
      });
      assert.equal(await good.stop(), 0);

      const bad = startRunner(relay, {
        agentId: "bad",
        home,
        providerArgs: [ECHO],
        env: { AGENT_RELAY_TOKEN: "not-the-token" },
      });
      const badPort = (await bad.info())["controlPort"] as number;
      const refused = await waitFor("unauthorized", async () => {
        const r = await ready(badPort);
        return r.status === 503 && /unauthorized/.test(String(r.body["reason"])) && r;
      }, { signal: bad.exited });
      assert.equal(refused.body["ready"], false);
      const health = await (await fetch(`http://127.0.0.1:${badPort}/health`)).json();
      assert.deepEqual(health, { ok: true, relay: { auth: "unauthorized" } });
      assert.equal(await bad.stop(), 0);
    } finally {
      await relay.close();
    }
  });
});
