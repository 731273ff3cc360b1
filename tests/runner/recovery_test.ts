/**
 * Recovery: the probe loop on the fake clock. It probes only while something waits, at most
 * one probe at a time, every 250 to 375 ms, and wakes at once when the relay answers.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Recovery } from "../../src/runner/recovery.ts";
import { FakeClock } from "../support/fake_clock.ts";

const settle = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

Deno.test("recovery: probes every 250 ms while the relay is away, wakes once when it answers", async () => {
  const clock = new FakeClock();
  let waiting = true;
  let up = false;
  let probes = 0;
  let wakes = 0;
  const recovery = new Recovery({
    clock,
    random: () => 0,
    probe: () => {
      probes++;
      return Promise.resolve(up);
    },
    waiting: () => waiting,
    wake: () => {
      wakes++;
      waiting = false;
    },
  });
  recovery.check();
  recovery.check(); // One loop, whatever the number of checks.
  for (let i = 1; i <= 4; i++) {
    clock.tick(250);
    await settle();
    assert.equal(probes, i);
  }
  up = true;
  clock.tick(250);
  await settle();
  assert.equal(wakes, 1);
  clock.tick(5_000);
  await settle();
  assert.equal(probes, 5, "no probing once nothing waits");
  recovery.stop();
});

Deno.test("recovery: nothing is probed while nothing waits, and nothing after stop", async () => {
  const clock = new FakeClock();
  let probes = 0;
  let waiting = false;
  const recovery = new Recovery({
    clock,
    probe: () => {
      probes++;
      return Promise.resolve(false);
    },
    waiting: () => waiting,
    wake: () => {},
  });
  recovery.check();
  clock.tick(1_000);
  await settle();
  assert.equal(probes, 0);
  waiting = true;
  recovery.check();
  recovery.stop();
  clock.tick(1_000);
  await settle();
  assert.equal(probes, 0);
});

Deno.test("recovery: a relay that answers the probe but fails the calls is left to the backoff", async () => {
  const clock = new FakeClock();
  let probes = 0;
  let wakes = 0;
  const recovery = new Recovery({
    clock,
    random: () => 0,
    probe: () => {
      probes++;
      return Promise.resolve(true); // GET /health answers; the API answers 500.
    },
    waiting: () => true,
    wake: () => wakes++,
  });
  for (let i = 0; i < 4; i++) {
    recovery.check(); // The outbox failed again.
    clock.tick(250);
    await settle();
  }
  assert.equal(probes, 4);
  assert.equal(wakes, 0, "no wake without an outage the probe saw");
  recovery.stop();
});
