/**
 * `GET /metrics` (src/control/metrics.ts): Prometheus text with the runner's figures and the
 * server's own hook counts, latency histogram, stop blocks, hook-fatal reports and refusals.
 */
import assert from "node:assert/strict";
import { fake, get, handlerFor, owed, post } from "./control_fake.ts";

Deno.test("GET /metrics is Prometheus text with outbox, obligations and hook figures", async () => {
  const f = fake();
  f.obligations = [owed(1, "u"), owed(2, "u")];
  f.refreshedAt = 3_000;
  const h = handlerFor(f);
  await (await h(post("/hooks/stop", { stop_hook_active: false }))).body?.cancel();
  await (await h(post("/hooks/stop", { stop_hook_active: true }))).body?.cancel();
  await (await h(post("/hooks/stop", "nope"))).body?.cancel();
  await (await h(post("/hooks/pre-tool-use", {}))).body?.cancel();
  await (await h(post("/hook-fatal", { hook: "stop", error: "x" }))).body?.cancel();
  await (await h(get("/metrics", {}))).body?.cancel();
  const res = await h(get("/metrics"));
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const value = (line: string) => {
    const found = text.split("\n").find((l) => l.startsWith(line + " "));
    assert.ok(found, `missing ${line} in\n${text}`);
    return Number(found.slice(line.length + 1));
  };
  assert.equal(value("agent_relay_runner_outbox_pending"), 2);
  assert.equal(value("agent_relay_runner_outbox_poisoned"), 1);
  assert.equal(value("agent_relay_runner_outbox_delivered_total"), 40);
  assert.equal(value("agent_relay_runner_reply_obligations"), 2);
  assert.equal(value("agent_relay_runner_reply_obligations_age_seconds"), 2);
  assert.equal(value('agent_relay_runner_hook_requests_total{event="stop",code="200"}'), 2);
  assert.equal(value('agent_relay_runner_hook_requests_total{event="stop",code="400"}'), 1);
  assert.equal(value('agent_relay_runner_hook_requests_total{event="pre-tool-use",code="200"}'), 1);
  assert.equal(value('agent_relay_runner_hook_duration_seconds_count{event="stop"}'), 3);
  assert.equal(value('agent_relay_runner_hook_duration_seconds_bucket{event="stop",le="+Inf"}'), 3);
  assert.equal(value("agent_relay_runner_stop_blocks_total"), 1);
  assert.equal(value("agent_relay_runner_hook_fatal_total"), 1);
  assert.equal(value("agent_relay_runner_control_unauthorized_total"), 1);
  assert.equal(value("agent_relay_runner_cost_usd_total"), 0.25);
  assert.match(text, /# TYPE agent_relay_runner_hook_duration_seconds histogram/);
  assert.doesNotMatch(text, /bad name/);
  for (const line of text.trim().split("\n")) {
    assert.match(line, /^(# (HELP|TYPE) \w+ .+|[a-zA-Z_:][\w:]*(\{[^}]*\})? [-+\w.]+)$/, line);
  }
});
