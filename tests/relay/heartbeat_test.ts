import assert from "node:assert/strict";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import { Heartbeat } from "../../src/relay/heartbeat.ts";
import { RelayHttpClient } from "../../src/relay/http_client.ts";
import type { AgentStatus } from "../../src/types.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { RecordingLogger, waitFor } from "./helpers.ts";

function heartbeatFor(baseUrl: string, logger: RecordingLogger, status: () => AgentStatus) {
  return new Heartbeat({
    client: new RelayHttpClient({ baseUrl, token: "dev", timeoutMs: 1000 }),
    agentId: "a1",
    info: () => ({ status: status(), provider: "codex", version: "0.1.0", pid: 7, host: "h" }),
    intervalMs: 5,
    logger,
  });
}

Deno.test("a failing relay logs one warning per distinct error and an info on recovery", async () => {
  const relay = await startDevRelay();
  try {
    const logger = new RecordingLogger();
    const heartbeat = heartbeatFor(relay.url, logger, () => "idle");
    assert.equal(await heartbeat.beat(), true);

    await relay.admin.setFaults({ failStatus: 500 });
    for (let i = 0; i < 4; i++) assert.equal(await heartbeat.beat(), false);
    assert.equal(heartbeat.failures, 4);
    await relay.admin.setFaults({ failStatus: 0, garbage: true });
    for (let i = 0; i < 3; i++) assert.equal(await heartbeat.beat(), false);
    await relay.admin.setFaults({ garbage: false, down: true });
    for (let i = 0; i < 3; i++) assert.equal(await heartbeat.beat(), false);

    const warnings = logger.at("warn");
    assert.equal(warnings.length, 3, warnings.join("\n"));
    assert.match(warnings[0] ?? "", /500/);
    assert.match(warnings[1] ?? "", /not JSON/);
    assert.match(warnings[2] ?? "", /could not reach/);
    assert.ok(warnings.every((w) => !w.includes("dev")));
    assert.deepEqual(logger.at("info"), []);

    await relay.admin.clearFaults();
    assert.equal(await heartbeat.beat(), true);
    assert.deepEqual(logger.at("info"), ["heartbeat recovered after 10 failed attempts"]);
    assert.equal(heartbeat.failures, 0);
    // The same error after a recovery is warned about again.
    await relay.admin.setFaults({ failStatus: 500 });
    await heartbeat.beat();
    assert.equal(logger.at("warn").length, 4);
  } finally {
    await relay.close();
  }
});

Deno.test("the heartbeat beats on its interval with the current status until stopped", async () => {
  const relay = await startDevRelay();
  try {
    let status: AgentStatus = "starting";
    const heartbeat = heartbeatFor(relay.url, new RecordingLogger(), () => status);
    heartbeat.start();
    heartbeat.start(); // a second start is a no-op
    await waitFor(() => relay.admin.state().heartbeats.length >= 2, "two heartbeats");
    status = "busy";
    await waitFor(
      () => relay.admin.state().heartbeats.some((h) => h.status === "busy"),
      "a heartbeat with the new status",
    );
    await heartbeat.stop();
    // A beat sent by hand after stop() still goes through (the op sanitizer checks that
    // stop() left no timer behind).
    status = "idle";
    assert.equal(await heartbeat.beat(), true);
    await waitFor(
      () => relay.admin.state().heartbeats.some((h) => h.status === "idle"),
      "the manual beat",
    );
    assert.deepEqual(
      relay.admin.state().heartbeats.slice(0, 1).map((h) => [h.agentId, h.status, h.provider]),
      [["a1", "starting", "codex"]],
    );
  } finally {
    await relay.close();
  }
});

Deno.test("stop() cancels a beat stuck on a slow relay", async () => {
  const relay = await startDevRelay({ faults: { slowMs: 10_000 } });
  try {
    const logger = new RecordingLogger();
    const heartbeat = heartbeatFor(relay.url, logger, () => "idle");
    heartbeat.start();
    await heartbeat.stop();
    // A cancelled beat is not a relay failure.
    assert.deepEqual(logger.at("warn"), []);
    assert.equal(heartbeat.failures, 0);
  } finally {
    await relay.close();
  }
});

Deno.test("the heartbeat's interval runs on the injected clock", async () => {
  const relay = await startDevRelay();
  try {
    const clock = new FakeClock();
    const heartbeat = new Heartbeat({
      client: new RelayHttpClient({ baseUrl: relay.url, token: "dev", timeoutMs: 1000 }),
      agentId: "a1",
      info: () => ({ status: "idle", provider: "codex", version: "0.1.0", pid: 7, host: "h" }),
      intervalMs: 30_000,
      clock,
      logger: new RecordingLogger(),
    });
    heartbeat.start();
    // The first beat goes at once; the next waits for the clock.
    await waitFor(() => clock.pending === 1, "the next beat armed on the fake clock");
    assert.equal(relay.admin.state().heartbeats.length, 1);
    clock.tick(30_000);
    await waitFor(() => relay.admin.state().heartbeats.length === 2, "the second beat");
    await waitFor(() => clock.pending === 1, "the third beat armed");
    await heartbeat.stop();
    assert.equal(clock.pending, 0);
  } finally {
    await relay.close();
  }
});
