/**
 * The hook plugin end to end, forwarding: every event forwarded unchanged, and every way a hook
 * can fail (no runner, runner down, errors, a wrong secret, a stalled runner) costs at most its
 * budget and exits 0.
 *
 * @module
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { HOOK_EVENTS } from "../../src/control/mod.ts";
import { PLUGIN_DIR_NAME, PLUGIN_FILES, writePlugin } from "../../src/adapters/claude_plugin.ts";
import {
  cleanupPlugin,
  envFor,
  HOOK_TIMEOUT_MS,
  plugin,
  runHook,
  withRunner,
} from "../support/hook_scripts.ts";

Deno.test("writePlugin() writes every plugin file, scripts 0700, and hooks.json points at them", async () => {
  const root = await plugin();
  assert.equal(basename(root), PLUGIN_DIR_NAME);
  for (const file of PLUGIN_FILES) {
    const info = await Deno.stat(join(root, file));
    assert.equal(info.mode! & 0o777, file.endsWith(".sh") ? 0o700 : 0o600, file);
  }
  const repoFiles: string[] = [];
  for (const dir of [".claude-plugin", "hooks"]) {
    for await (const entry of Deno.readDir(new URL(`../../hooks/${dir}/`, import.meta.url))) {
      repoFiles.push(`${dir}/${entry.name}`);
    }
  }
  assert.deepEqual(
    [...PLUGIN_FILES].sort(),
    repoFiles.sort(),
    "PLUGIN_FILES lists the repo's hooks/",
  );
  const manifest = JSON.parse(await Deno.readTextFile(join(root, ".claude-plugin/plugin.json")));
  assert.equal(manifest.name, "agent-relay-runner");
  const config = JSON.parse(await Deno.readTextFile(join(root, "hooks/hooks.json")));
  assert.deepEqual(Object.keys(config.hooks).sort(), Object.values(HOOK_EVENTS).sort());
  for (const [kebab, name] of Object.entries(HOOK_EVENTS)) {
    const [group] = config.hooks[name];
    const [hook] = group.hooks;
    assert.equal(hook.type, "command");
    assert.equal(hook.command, `\${CLAUDE_PLUGIN_ROOT}/hooks/${kebab}.sh`);
    assert.ok(hook.timeout * 1000 >= 4_000 && hook.timeout * 1000 <= HOOK_TIMEOUT_MS, name);
    const script = await Deno.readTextFile(join(root, "hooks", `${kebab}.sh`));
    assert.match(script, /^#!\/usr\/bin\/env bash\n/);
    assert.match(script, /\nset -euo pipefail\n/);
    assert.match(script, new RegExp(`\\nrelay_hook ${kebab}\\n$`));
  }
  const lib = await Deno.readTextFile(join(root, "hooks/lib.sh"));
  const code = lib.split("\n").filter((line) => !line.trimStart().startsWith("#")).join("\n");
  assert.doesNotMatch(code, /\bjq\b/, "no jq");
  assert.match(lib, /curl -fsS --max-time 2/);
});

Deno.test("writePlugin() replaces an older copy whole", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const root = await writePlugin(dir);
    await Deno.writeTextFile(join(root, "hooks", "stale.sh"), "old");
    await Deno.writeTextFile(join(root, "hooks", "stop.sh"), "tampered");
    await writePlugin(dir);
    await assert.rejects(Deno.stat(join(root, "hooks", "stale.sh")), Deno.errors.NotFound);
    assert.match(await Deno.readTextFile(join(root, "hooks", "stop.sh")), /relay_hook stop/);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, [PLUGIN_DIR_NAME], "no staging folder left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Forwarding

Deno.test("every event forwards its payload unchanged and prints the runner's answer", async () => {
  await withRunner({ policy: "allow" }, async (runner) => {
    for (const [event, name] of Object.entries(HOOK_EVENTS)) {
      const payload = `{"session_id":"s-1","hook_event_name":"${name}","cwd":"/tmp/a b",` +
        `"prompt":"quote \\" backslash \\\\ tab \\t \u00e9 \u2713 \u{1F600}","stop_hook_active":false,` +
        `"tool_name":"Bash","n":1.50}\n`;
      const run = await runHook(event, payload, envFor(runner));
      assert.equal(run.code, 0, `${event}: ${run.stderr}`);
      assert.equal(run.stderr, "", event);
      const seen = runner.hooks.at(-1)!;
      assert.equal(seen.event, event);
      assert.equal(seen.raw, payload, `${event}: the payload arrives byte for byte`);
      const answer = JSON.parse(run.stdout);
      if (event === "user-prompt-submit") assert.deepEqual(answer, { echoed: "UserPromptSubmit" });
      else if (event === "permission-request") {
        assert.equal(answer.hookSpecificOutput.decision.behavior, "allow");
      } else assert.deepEqual(answer, {}, event);
    }
    assert.equal(runner.hooks.length, Object.keys(HOOK_EVENTS).length);
    assert.deepEqual(runner.fatals, []);
    assert.deepEqual(runner.statuses, [], "a forwarded stop posts no idle of its own");
  });
});

Deno.test("outside a runner (no AGENT_RELAY_RUNNER_PORT) a hook exits 0 silently", async () => {
  for (const event of ["stop", "pre-tool-use", "session-start"]) {
    const run = await runHook(event, '{"a":1}', {});
    assert.deepEqual([run.code, run.stdout, run.stderr], [0, "", ""], event);
  }
});

Deno.test("with the runner down a hook exits 0 within its budget", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  for (const event of ["stop", "permission-request", "post-tool-use"]) {
    const run = await runHook(event, "{}", {
      AGENT_RELAY_RUNNER_PORT: String(port),
      AGENT_RELAY_RUNNER_SECRET: "x".repeat(64),
    });
    assert.equal(run.code, 0, event);
    assert.equal(run.stdout, "", event);
    assert.match(run.stderr, /runner is not reachable on 127\.0\.0\.1:\d+ \(curl exit 7\)/);
    assert.ok(run.ms < HOOK_TIMEOUT_MS, `${event} took ${run.ms} ms`);
  }
});

// ---------------------------------------------------------------------------------------------
// Failures are reported FATAL

Deno.test("a hook the runner answers with an error reports FATAL and exits 0", async () => {
  await withRunner({}, async (runner) => {
    runner.failHook = "pre-tool-use";
    const run = await runHook("pre-tool-use", '{"tool_name":"Read"}', envFor(runner));
    assert.equal(run.code, 0);
    assert.equal(run.stdout, "");
    assert.equal(runner.fatals.length, 1);
    assert.equal(runner.fatals[0]!.hook, "pre-tool-use");
    assert.match(
      runner.fatals[0]!.error,
      /answered the pre-tool-use hook with an HTTP error \(curl exit 22\)/,
    );
  });
});

Deno.test("a wrong secret is a failure too: reported, exit 0, nothing done", async () => {
  await withRunner({}, async (runner) => {
    const run = await runHook("session-start", "{}", {
      ...envFor(runner),
      AGENT_RELAY_RUNNER_SECRET: "wrong-secret-wrong-secret",
    });
    assert.equal(run.code, 0);
    assert.deepEqual(runner.hooks, []);
    assert.deepEqual(runner.fatals, [], "the report carries the same wrong secret: refused");
    assert.match(run.stderr, /HTTP error/);
  });
});

Deno.test("a hook that fails mid-way (stdout closed) reports FATAL; a failed stop still posts idle", async () => {
  await withRunner({}, async (runner) => {
    const run = await runHook("stop", '{"stop_hook_active":false}', envFor(runner), {
      closeStdout: true,
    });
    assert.equal(run.code, 0);
    assert.equal(runner.hooks.length, 1, "the runner got the stop");
    assert.equal(runner.fatals.length, 1);
    assert.equal(runner.fatals[0]!.hook, "stop");
    assert.match(runner.fatals[0]!.error, /writing the answer to stdout failed \(curl exit 23\)/);
    assert.deepEqual(runner.statuses, [["idle", "stop-hook"]]);
  });
});

Deno.test("when forwarding the stop fails the Stop hook clears busy (idle) on exit", async () => {
  await withRunner({}, async (runner) => {
    runner.failHook = "stop";
    // onHook throwing on stop is logged, not answered 500: make the body invalid instead.
    const run = await runHook("stop", '{"stop_hook_active":"nope"}', envFor(runner));
    assert.equal(run.code, 0);
    assert.equal(run.stdout, "");
    assert.equal(runner.fatals.length, 1);
    assert.deepEqual(runner.statuses, [["idle", "stop-hook"]]);
  });
});

Deno.test("a runner that never answers: the hook gives up at 2 s, reports it and posts idle", async () => {
  const fatals: string[] = [];
  const statuses: string[] = [];
  let release: () => void = () => {};
  const hung = new Promise<void>((r) => (release = r));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/hooks/stop") {
      await hung;
      return Response.json({});
    }
    const body = await req.text();
    if (path === "/hook-fatal") fatals.push(body);
    if (path === "/status") statuses.push(body);
    return Response.json({ ok: true });
  });
  try {
    const run = await runHook("stop", "{}", {
      AGENT_RELAY_RUNNER_PORT: String(server.addr.port),
      AGENT_RELAY_RUNNER_SECRET: "s".repeat(64),
    });
    assert.equal(run.code, 0);
    assert.equal(run.stdout, "");
    assert.equal(fatals.length, 1);
    assert.match(JSON.parse(fatals[0]!).error, /did not answer within 2 s \(curl exit 28\)/);
    assert.deepEqual(statuses.map((s) => JSON.parse(s)), [{ status: "idle", source: "stop-hook" }]);
    assert.ok(run.ms < HOOK_TIMEOUT_MS, `took ${run.ms} ms`);
  } finally {
    release();
    await server.shutdown();
  }
});

// ---------------------------------------------------------------------------------------------
// The stop decision through the real hook

Deno.test("cleanup: remove the plugin's temp state dir", async () => {
  await cleanupPlugin();
  assert.equal(await plugin().then(() => true), true);
  await cleanupPlugin();
});
