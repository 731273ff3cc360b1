/**
 * The hook plugin end to end, decisions: the Stop decision from the local snapshot whatever the
 * relay does, permission answers by policy, and the safety checks before curl (the port, the
 * runner alive).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  cleanupPlugin,
  curlSpy,
  envFor,
  owed,
  plugin,
  runHook,
  withRunner,
} from "../support/hook_scripts.ts";

Deno.test("stop blocks when a reply is owed and stop_hook_active is false; not when true", async () => {
  await withRunner({}, async (runner, relay) => {
    relay.obligations = [owed(41, "user"), owed(42, "planner")];
    runner.cache.annotate({ id: 42, body: "Which branch did you push?", from: "planner" });
    runner.delivered = [41];
    await runner.cache.refresh();
    const blocked = await runHook("stop", '{"stop_hook_active":false}', envFor(runner));
    assert.equal(blocked.code, 0);
    const answer = JSON.parse(blocked.stdout);
    assert.equal(answer.decision, "block");
    assert.match(answer.reason, /message 42 from planner: "Which branch did you push\?"/);
    assert.doesNotMatch(
      answer.reason,
      /message 41/,
      "the message delivered this turn never blocks",
    );
    assert.deepEqual(runner.statuses, [], "a deliberate block posts no idle");

    const passed = await runHook("stop", '{"stop_hook_active":true}', envFor(runner));
    assert.deepEqual(JSON.parse(passed.stdout), {});
    assert.equal(runner.hooks.at(-1)!.context.stop?.blocked, false);
    assert.deepEqual(runner.statuses, []);
  });
});

Deno.test("with the relay 5 s slow the stop decision still comes from the snapshot, at once", async () => {
  await withRunner({}, async (runner, relay) => {
    relay.obligations = [owed(7, "user", "are you there?")];
    await runner.cache.refresh();
    relay.mood = "slow";
    relay.obligations = [];
    const refreshing = runner.cache.refresh();
    runner.cache.markDirty();
    const run = await runHook("stop", '{"stop_hook_active":false}', envFor(runner));
    assert.equal(relay.answered, 1, "the slow relay has not answered the refresh yet");
    assert.ok(runner.cache.refreshing);
    assert.equal(JSON.parse(run.stdout).decision, "block");
    assert.match(JSON.parse(run.stdout).reason, /are you there\?/);
    runner.cache.stop();
    await refreshing;
  });
});

Deno.test("with the relay down the stop decision still comes from the snapshot", async () => {
  await withRunner({}, async (runner, relay) => {
    relay.obligations = [owed(8, "user", "hello?")];
    await runner.cache.refresh();
    await relay.server.shutdown();
    await runner.cache.refresh();
    assert.ok(runner.cache.lastError, "the refresh failed");
    const run = await runHook("stop", '{"stop_hook_active":false}', envFor(runner));
    assert.equal(JSON.parse(run.stdout).decision, "block");
    assert.match(JSON.parse(run.stdout).reason, /message 8 from user: "hello\?"/);
  });
});

// ---------------------------------------------------------------------------------------------
// Permission requests through the real hook

const permissionPayload = JSON.stringify({
  hook_event_name: "PermissionRequest",
  tool_name: "Bash",
  tool_input: { command: "git push" },
  permission_suggestions: [],
});

Deno.test("a permission request is answered by policy: allow, deny", async () => {
  for (const policy of ["allow", "deny"] as const) {
    await withRunner({ policy }, async (runner) => {
      const run = await runHook("permission-request", permissionPayload, envFor(runner));
      const answer = JSON.parse(run.stdout);
      assert.equal(answer.hookSpecificOutput.hookEventName, "PermissionRequest");
      assert.equal(answer.hookSpecificOutput.decision.behavior, policy);
    });
  }
});

Deno.test("ask-relay: the relay's answer is used; a 5 s slow relay gets deny in budget", async () => {
  // The default budget (1.5 s) for the answers: a short one could run out before a relay on a
  // loaded machine answers. A short one for the slow relay, well inside curl's 2 s.
  await withRunner({ policy: "ask-relay" }, async (runner, relay) => {
    const yes = await runHook("permission-request", permissionPayload, envFor(runner));
    assert.equal(JSON.parse(yes.stdout).hookSpecificOutput.decision.behavior, "allow");
    relay.permission = { decision: "deny", reason: "not on main" };
    const no = await runHook("permission-request", permissionPayload, envFor(runner));
    const denied = JSON.parse(no.stdout).hookSpecificOutput.decision;
    assert.deepEqual(denied, { behavior: "deny", message: "not on main" });
    assert.deepEqual(runner.fatals, []);
  });
  await withRunner({ policy: "ask-relay", budgetMs: 300 }, async (runner, relay) => {
    relay.mood = "slow";
    relay.permission = { decision: "allow" };
    const slow = await runHook("permission-request", permissionPayload, envFor(runner));
    const fallback = JSON.parse(slow.stdout).hookSpecificOutput.decision;
    assert.equal(fallback.behavior, "deny");
    assert.match(fallback.message, /did not answer within 300 ms/);
    assert.deepEqual(runner.fatals, []);
  });
});

// ---------------------------------------------------------------------------------------------
// The secret goes nowhere but a live runner on a real port

Deno.test("a port that is not a number 1 to 65535 gives up before curl: exit 0, silent stdout", async () => {
  const spy = await curlSpy();
  try {
    await withRunner({}, async (runner) => {
      for (const bad of ["80@x.invalid", "0", "65536", "99999999", "8080 ", "-1", "1e3", "0x50"]) {
        for (const event of ["stop", "pre-tool-use"]) {
          const run = await runHook(event, "{}", {
            ...envFor(runner),
            AGENT_RELAY_RUNNER_PORT: bad,
            PATH: spy.path,
          });
          assert.equal(run.code, 0, bad);
          assert.equal(run.stdout, "", bad);
          assert.match(run.stderr, /AGENT_RELAY_RUNNER_PORT is not a port number \(1 to 65535\)/);
        }
      }
      assert.equal(await spy.calls(), 0, "curl never ran");
      assert.deepEqual(runner.hooks, []);
      assert.deepEqual(runner.statuses, [], "not even the Stop hook's idle");
      // The control: a real port does call curl (the spy sees it) and reaches the runner.
      const ok = await runHook("stop", "{}", { ...envFor(runner), PATH: spy.path });
      assert.deepEqual([ok.code, ok.stdout], [0, "{}"]);
      assert.equal(await spy.calls(), 1);
      assert.equal(runner.hooks.length, 1);
    });
  } finally {
    await Deno.remove(spy.dir, { recursive: true });
  }
});

Deno.test("when the runner that started it is gone (or not a runner) a hook sends nothing", async () => {
  const spy = await curlSpy();
  const sleeper = new Deno.Command("sleep", { args: ["30"], stdout: "null", stderr: "null" })
    .spawn();
  try {
    const exited = new Deno.Command("true").spawn();
    const gone = exited.pid;
    await exited.status;
    await withRunner({}, async (runner) => {
      const cases: Array<[string, RegExp]> = [
        [String(gone), new RegExp(`the runner \\(pid ${gone}\\) is gone`)],
        [String(sleeper.pid), new RegExp(`pid ${sleeper.pid} is not the runner \\(it is sleep\\)`)],
        ["12ab", /AGENT_RELAY_RUNNER_PID is not a process id/],
      ];
      for (const [pid, why] of cases) {
        for (const event of ["stop", "permission-request"]) {
          const run = await runHook(event, '{"tool_name":"Bash"}', {
            ...envFor(runner),
            AGENT_RELAY_RUNNER_PID: pid,
            PATH: spy.path,
          });
          assert.equal(run.code, 0, pid);
          assert.equal(run.stdout, "", "nothing that could block or decide");
          assert.match(run.stderr, why);
        }
      }
      assert.equal(await spy.calls(), 0, "curl never ran: the secret went nowhere");
      assert.deepEqual(runner.hooks, []);
      assert.deepEqual(runner.fatals, []);
      // Unset (a runner that does not say its pid) keeps forwarding.
      const env = envFor(runner);
      delete (env as Record<string, string | undefined>).AGENT_RELAY_RUNNER_PID;
      const ok = await runHook("stop", "{}", { ...env, PATH: spy.path });
      assert.deepEqual([ok.code, ok.stdout], [0, "{}"]);
      assert.equal(runner.hooks.length, 1);
    });
  } finally {
    sleeper.kill();
    await sleeper.status;
    await Deno.remove(spy.dir, { recursive: true });
  }
});

Deno.test("cleanup: remove the plugin's temp state dir", async () => {
  await cleanupPlugin();
  assert.equal(await plugin().then(() => true), true);
  await cleanupPlugin();
});
