/**
 * `agent-relay-runner status` through the real program against a live runner (the reference
 * relay, the runner under its sandbox, the echo agent): the human view and `--json` after a
 * round trip, and one clear line with exit 1 when no runner runs or its port does not answer.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import { ECHO } from "../support/agents.ts";
import { withHome } from "../support/home.ts";
import { Poster, replies } from "../support/relay_messages.ts";
import { startRunner } from "../support/runner_process.ts";
import { waitFor } from "../support/wait.ts";
import { runCli } from "./cli_process.ts";

function oneLine(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l.trim() !== "");
  assert.equal(lines.length, 1, `expected one line on stderr, got: ${stderr}`);
  return lines[0]!;
}

Deno.test("status: no runner-info file exits 1 with one line naming the file", async () => {
  await withHome("arr-status-", async (home) => {
    const out = await runCli(["status", "--agent-id", "ghost"], { AGENT_RELAY_HOME: home });
    assert.equal(out.code, 1, out.stderr);
    assert.match(
      oneLine(out.stderr),
      /^agent-relay-runner: No runner is running for ghost: there is no runner-info file .*state\/ghost\/runner-info\.json$/,
    );
    assert.equal(out.stdout, "");
    const bad = await runCli(["status"], { AGENT_RELAY_HOME: home });
    assert.equal(bad.code, 2);
    assert.match(oneLine(bad.stderr), /missing required flag --agent-id/);
  });
});

Deno.test("status: a live runner's view and --json after a round trip; a dead one's port does not answer", async () => {
  const relay = await startDevRelay({ port: 0 });
  try {
    await withHome("arr-status-", async (home) => {
      const runner = startRunner(relay, { agentId: "echo", home, providerArgs: [ECHO] });
      const info = await runner.info();
      await new Poster(relay).post("echo", "hello status");
      await waitFor("the reply", () => replies(relay).length > 0);
      await runner.settled();
      const env = { AGENT_RELAY_HOME: home };

      const human = await runCli(["status", "--agent-id", "echo"], env);
      assert.equal(human.code, 0, human.stderr);
      const view = human.stdout;
      assert.match(view, /^agent {7}echo \(command\), runner pid \d+, provider pid \d+$/m);
      assert.match(view, /^status {6}idle, up \d+s \(since \d{4}-\d\d-\d\dT/m);
      assert.match(view, /^turn {8}none in progress; 0 message\(s\) waiting for the agent$/m);
      assert.match(view, /^outbox {6}0 pending, 0 poisoned, \d+ delivered$/m);
      assert.match(view, /^relay {7}bus open/m);
      assert.match(view, /^last error {2}-$/m);
      assert.equal(
        view.match(/^log file {4}(.*)$/m)?.[1],
        join(home, "logs", "session-mirror-echo.log"),
      );
      assert.match(
        view,
        new RegExp(`^control {5}http://127\\.0\\.0\\.1:${info["controlPort"]}$`, "m"),
      );
      assert.equal(view.includes((await runner.control()).secret), false, "no secret shown");

      const json = await runCli(["status", "--agent-id", "echo", "--json"], env);
      assert.equal(json.code, 0, json.stderr);
      const status = JSON.parse(json.stdout);
      assert.equal(status.agentId, "echo");
      assert.equal(status.status, "idle");
      assert.deepEqual(status.outbox, { pending: 0, poisoned: 0 });

      const byDir = await runCli(["status", "--state-dir", runner.stateDir, "--json"], {});
      assert.equal(byDir.code, 0, byDir.stderr);
      assert.equal(JSON.parse(byDir.stdout).agentId, "echo");

      // A runner killed without a clean stop leaves its info file: its port no longer answers.
      assert.equal(await runner.kill(), 137);
      const dead = await runCli(["status", "--agent-id", "echo"], env);
      assert.equal(dead.code, 1, dead.stderr);
      assert.match(
        oneLine(dead.stderr),
        /^agent-relay-runner: No runner is running for echo: the runner-info file names pid \d+, control port \d+, which does not answer/,
      );
    });
  } finally {
    await relay.close();
  }
});
