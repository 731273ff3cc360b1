/**
 * Hardening: `kill -9` of the runner during a mixed stream, then a restart on the same state
 * dir (issue 9). The suite runs 20 seeded kills; `deno task fuzz crash` runs 100 (see
 * tests/hardening/support/crash_scenario.ts and docs/reliability.md).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import { runCrashScenario } from "./support/crash_scenario.ts";

import {
  lines,
  Poster,
  replies,
  sleep,
  startRunner,
  streamAgent,
  waitFor,
} from "./support/runner_harness.ts";

Deno.test("hardening: 20 seeded kill -9 runs during a stream (100 in `deno task fuzz crash`): nothing acknowledged lost, nothing stored twice", async () => {
  const report = await runCrashScenario({ runs: 20, seed: 9 });
  assert.deepEqual(report.problems, [], JSON.stringify(report, null, 2));
  // Each message is answered once, even when a kill cut its turn short.
  assert.deepEqual(report.answeredTwice, [], JSON.stringify(report, null, 2));
  assert.equal(report.runs, 20);
  // The kills did catch acknowledged events in the outbox, and hooks did report failures.
  assert.ok(
    report.killsDuringRelayFault > 0 && report.acknowledgedDistinct > 0,
    JSON.stringify(report),
  );
  assert.ok(report.hookFatals.acknowledged > 0);
  assert.ok(report.hookFatals.stored >= report.hookFatals.acknowledged);
});

/**
 * A message the runner handed to its provider is marked read only once the turn is over: when
 * the runner is killed mid-turn (the provider dies with it), the next start delivers the
 * message again, and it is answered once.
 */
Deno.test({
  name:
    "hardening: a message in the provider's hands when the runner is killed is delivered again and answered once",
  async fn() {
    const home = await Deno.makeTempDir({ prefix: "arr-lost-" });
    const agentCwd = join(home, "agent");
    await Deno.mkdir(agentCwd);
    const relay = await startDevRelay({ port: 0 });
    try {
      // A slow agent: it takes the message and works on it as long as its runner lives.
      const slow = [
        "bash",
        "-c",
        // Works until its runner is gone, then exits (no stray process).
        "while IFS= read -r line; do echo got >> received.txt; " +
        'while kill -0 "$PPID" 2>/dev/null; do sleep 0.1; done; done',
      ];
      const first = startRunner(relay.url, relay.token, {
        agentId: "lost",
        home,
        cwd: agentCwd,
        program: slow,
      });
      await first.info();
      const message = await new Poster(relay).post("lost", "please answer", { retryForMs: 5_000 });
      await waitFor("the delivery", async () => (await lines(agentCwd, "received.txt")).length > 0);
      await sleep(300); // Room for a mark-read to reach the relay, were it sent at delivery.
      assert.equal(await first.kill(), 137);

      const second = startRunner(relay.url, relay.token, {
        agentId: "lost",
        home,
        cwd: agentCwd,
        program: streamAgent(),
      });
      try {
        await second.info();
        await waitFor(
          "the reply",
          () => replies(relay).some((r) => r.replyTo === message.id),
          10_000,
        )
          .catch(() => {
            const read = relay.admin.state().reads.some((r) => r.messageId === message.id);
            const owed = relay.admin.state().obligations.some((o) =>
              o.messageId === message.id && o.clearedAt === undefined
            );
            assert.fail(
              `message #${message.id} was never answered after the restart ` +
                `(marked read: ${read}, obligation still open: ${owed})`,
            );
          });
        await sleep(300); // Room for a duplicate.
        assert.equal(replies(relay).filter((r) => r.replyTo === message.id).length, 1);
        assert.equal((await lines(agentCwd, "received.txt")).length, 2, "delivered twice");
      } finally {
        await second.stop();
      }
    } finally {
      await relay.close();
      await Deno.remove(home, { recursive: true });
    }
  },
});

/**
 * A message answered in a turn that a kill cuts short (another message of the same batch still
 * being worked on) is not answered again after the restart: its mark-read is queued with its
 * reply, not at the end of the turn. (Found by the random kills about once in ten runs.)
 */
Deno.test({
  name: "crash: a message answered in a turn cut short by a kill is answered once",
  async fn() {
    const home = await Deno.makeTempDir({ prefix: "arr-twice-" });
    const agentCwd = join(home, "agent");
    await Deno.mkdir(agentCwd);
    const relay = await startDevRelay({ port: 0 });
    try {
      const poster = new Poster(relay);
      // Both unread before the start: the first poll delivers them in one batch.
      const first = await poster.post("twice", "answered at once");
      const second = await poster.post("twice", "worked on until the kill");
      // Answers the first message at once, then works on the second as long as its runner lives.
      const agent = [
        "bash",
        "-c",
        'n=0; while IFS= read -r line; do id=${line#*\\"id\\":}; id=${id%%,*}; n=$((n+1)); ' +
        "echo $id >> received.txt; if [ $n -eq 1 ]; then " +
        'echo "{\\"type\\":\\"response\\",\\"text\\":\\"done $id\\",\\"replyTo\\":$id}"; ' +
        'else while kill -0 "$PPID" 2>/dev/null; do sleep 0.1; done; fi; done',
      ];
      const runner = startRunner(relay.url, relay.token, {
        agentId: "twice",
        home,
        cwd: agentCwd,
        program: agent,
      });
      await runner.info();
      await waitFor("the first reply", () => replies(relay).some((r) => r.replyTo === first.id));
      await waitFor(
        "both delivered",
        async () => (await lines(agentCwd, "received.txt")).length === 2,
      );
      await sleep(300);
      assert.equal(await runner.kill(), 137);
      const restarted = startRunner(relay.url, relay.token, {
        agentId: "twice",
        home,
        cwd: agentCwd,
        program: streamAgent(),
      });
      try {
        await waitFor(
          "the second reply",
          () => replies(relay).some((r) => r.replyTo === second.id),
        );
        await sleep(500);
        assert.equal(
          replies(relay).filter((r) => r.replyTo === first.id).length,
          1,
          `message #${first.id} is answered once (delivered: ${
            (await lines(agentCwd, "received.txt")).join(", ")
          })`,
        );
      } finally {
        await restarted.stop();
      }
    } finally {
      await relay.close();
      await Deno.remove(home, { recursive: true });
    }
  },
});
