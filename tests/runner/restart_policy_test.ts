import assert from "node:assert/strict";
import { RestartPolicy } from "../../src/runner/restart_policy.ts";

Deno.test("restart policy: the delay doubles from 500 ms with each recent exit (the shared backoff step), capped at 10 s", () => {
  const policy = new RestartPolicy({ maxRapidExits: 100, windowMs: 600_000 });
  const delays = [];
  for (let i = 0; i < 25; i++) {
    const d = policy.onExit(i * 1000, 60_000);
    assert.equal(d.action, "restart");
    if (d.action === "restart") delays.push(d.delayMs);
  }
  assert.deepEqual(delays.slice(0, 4), [500, 1000, 2000, 4000]);
  assert.equal(delays.at(-1), 10_000);
});

Deno.test("restart policy: exits older than the window no longer count", () => {
  const policy = new RestartPolicy({ windowMs: 10_000 });
  policy.onExit(0, 100);
  policy.onExit(1_000, 100);
  const d = policy.onExit(20_000, 100);
  assert.deepEqual(d, { action: "restart", delayMs: 500, recentExits: 1 });
});

Deno.test("restart policy: more than N rapid exits in the window gives up", () => {
  const policy = new RestartPolicy({ maxRapidExits: 3, rapidMs: 5_000, windowMs: 60_000 });
  for (let i = 0; i < 3; i++) assert.equal(policy.onExit(i * 100, 200).action, "restart");
  const d = policy.onExit(400, 200);
  assert.equal(d.action, "give-up");
  assert.equal(d.recentExits, 4);
});

Deno.test("restart policy: a long run is not a crash loop even with many exits", () => {
  const policy = new RestartPolicy({ maxRapidExits: 2, rapidMs: 5_000 });
  for (let i = 0; i < 5; i++) policy.onExit(i, 100);
  assert.equal(policy.onExit(10, 50_000).action, "restart");
});
