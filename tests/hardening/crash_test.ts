/**
 * Hardening: `kill -9` of the runner during a mixed stream, then a restart on the same state
 * dir (issue 9). The suite runs 20 seeded kills; `deno task fuzz crash` runs 100 (see
 * tests/hardening/support/crash_scenario.ts and docs/reliability.md).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type DevRelay, startDevRelay } from "../../src/dev_relay/mod.ts";
import { lines, streamAgent } from "../support/agents.ts";
import { withHome } from "../support/home.ts";
import { markedRead, mirrored, Poster, replies } from "../support/relay_messages.ts";
import { startRunner } from "../support/runner_process.ts";
import { waitFor } from "../support/wait.ts";
import { runCrashScenario } from "./support/crash_scenario.ts";

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
    await withHome("arr-lost-", async (home) => {
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
        const first = startRunner(relay, {
          agentId: "lost",
          home,
          cwd: agentCwd,
          providerArgs: slow,
        });
        await first.info();
        const message = await new Poster(relay).post("lost", "please answer", {
          retryForMs: 5_000,
        });
        await waitFor(
          "the delivery",
          async () => (await lines(agentCwd, "received.txt")).length > 0,
        );
        // The hand-off's prompt echo is on the relay and nothing else is queued: a mark-read
        // sent at delivery would be on the relay too.
        await waitFor("the prompt echo", () => promptEchoed(relay, message.id));
        await first.drained();
        assert.equal(await first.kill(), 137);

        const second = startRunner(relay, {
          agentId: "lost",
          home,
          cwd: agentCwd,
          providerArgs: streamAgent(),
        });
        try {
          await second.info();
          await waitFor(
            "the reply",
            () => replies(relay).some((r) => r.replyTo === message.id),
            { timeoutMs: 30_000 }, // a new runner process: room for a loaded machine
          )
            .catch(() => {
              const read = markedRead(relay, message.id);
              const owed = relay.admin.state().obligations.some((o) =>
                o.messageId === message.id && o.clearedAt === undefined
              );
              assert.fail(
                `message #${message.id} was never answered after the restart ` +
                  `(marked read: ${read}, obligation still open: ${owed})`,
              );
            });
          // Read, and nothing left to do: a duplicate would be on the relay by now.
          await waitFor("the mark-read", () => markedRead(relay, message.id));
          await second.settled();
          assert.equal(replies(relay).filter((r) => r.replyTo === message.id).length, 1);
          assert.equal((await lines(agentCwd, "received.txt")).length, 2, "delivered twice");
        } finally {
          await second.stop();
        }
      } finally {
        await relay.close();
      }
    });
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
    await withHome("arr-twice-", async (home) => {
      const agentCwd = join(home, "agent");
      await Deno.mkdir(agentCwd);
      const relay = await startDevRelay({ port: 0 });
      try {
        const poster = new Poster(relay);
        // Both unread before the start: the first poll delivers them in one batch.
        const first = await poster.post("twice", "answered at once");
        const second = await poster.post("twice", "worked on until the kill");
        // Answers the first message at once, then works on the second as long as its runner
        // lives.
        const agent = [
          "bash",
          "-c",
          'n=0; while IFS= read -r line; do id=${line#*\\"id\\":}; id=${id%%,*}; n=$((n+1)); ' +
          "echo $id >> received.txt; if [ $n -eq 1 ]; then " +
          'echo "{\\"type\\":\\"response\\",\\"text\\":\\"done $id\\",\\"replyTo\\":$id}"; ' +
          'else while kill -0 "$PPID" 2>/dev/null; do sleep 0.1; done; fi; done',
        ];
        const runner = startRunner(relay, {
          agentId: "twice",
          home,
          cwd: agentCwd,
          providerArgs: agent,
        });
        await runner.info();
        await waitFor(
          "the first reply",
          () => replies(relay).some((r) => r.replyTo === first.id),
        );
        await waitFor(
          "both delivered",
          async () => (await lines(agentCwd, "received.txt")).length === 2,
        );
        // Everything queued so far (the reply, and its mark-read) is on the relay.
        await runner.drained();
        assert.equal(await runner.kill(), 137);
        const restarted = startRunner(relay, {
          agentId: "twice",
          home,
          cwd: agentCwd,
          providerArgs: streamAgent(),
        });
        try {
          await waitFor(
            "the second reply",
            () => replies(relay).some((r) => r.replyTo === second.id),
          );
          // Both read, and nothing left to do: a second answer would be on the relay by now.
          await waitFor("the mark-reads", () => markedRead(relay, first.id, second.id));
          await restarted.settled();
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
      }
    });
  },
});

/** Whether the hand-off of message `id` to the provider is mirrored on the relay. */
function promptEchoed(relay: DevRelay, id: number): boolean {
  return mirrored(relay).some((m) =>
    (m.payload as { session?: { messageId?: number } } | undefined)?.session?.messageId === id
  );
}
