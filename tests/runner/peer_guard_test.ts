import assert from "node:assert/strict";
import { PeerGuard } from "../../src/runner/peer_guard.ts";

Deno.test("peer guard: a backlog written before the first reply is no loop", () => {
  let now = 10_000;
  const guard = new PeerGuard({ limit: 2, now: () => now });
  for (let i = 0; i < 50; i++) {
    assert.equal(guard.check("user", 1_000 + i), "send", `reply ${i}`);
    now += 10;
  }
});

Deno.test("peer guard: round trips past the limit are held, reported once, and let go a minute on", () => {
  let now = 0;
  const guard = new PeerGuard({ limit: 2, now: () => now });
  const trip = () => {
    now += 100;
    return guard.check("bot", now - 50); // Written after our last reply.
  };
  assert.equal(trip(), "send");
  assert.equal(trip(), "send");
  assert.equal(trip(), "suspect");
  assert.equal(trip(), "hold");
  now += 61_000;
  assert.equal(guard.check("bot", now - 50), "send");
  assert.equal(guard.check("other", now), "send", "per peer");
});
