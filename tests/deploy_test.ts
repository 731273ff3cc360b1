/**
 * The deploy recipes of docs/deploy.md, tried where this machine allows: the Node and Python
 * launchers start a live runner (`deno task start run ...`, the reference relay, the echo
 * agent), wait for `GET /ready`, stop it with SIGTERM and exit with its code; SIGTERM to the
 * whole process group (systemd's `KillMode=control-group`) stops it gracefully; the systemd unit
 * passes `systemd-analyze verify`; the unit's and pm2's stop timeouts are above the stop budget.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startDevRelay } from "../src/dev_relay/mod.ts";
import { DEFAULT_STOP_BUDGET_MS } from "../src/config/mod.ts";
import { ECHO } from "./support/agents.ts";
import { withHome } from "./support/home.ts";
import { waitFor } from "./support/wait.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DEPLOY = join(ROOT, "deploy");

function env(home: string, token: string): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? home,
    NO_COLOR: "1",
    AGENT_RELAY_HOME: home,
    AGENT_RELAY_TOKEN: token,
    LAUNCH_ONCE: "1",
  };
}

function runArgs(agentId: string, relayUrl: string, extra: string[] = []): string[] {
  return [
    Deno.execPath(),
    "task",
    "--quiet",
    "start",
    "run",
    "--agent-id",
    agentId,
    "--relay-url",
    relayUrl,
    "--provider",
    "command",
    ...extra,
    "--",
    ECHO,
  ];
}

for (const [name, launcher] of [["node", "launch.mjs"], ["python3", "launch.py"]] as const) {
  Deno.test(`deploy: the ${name} launcher waits for /ready, stops the runner and reads its exit code`, async () => {
    const relay = await startDevRelay({ port: 0 });
    try {
      await withHome("arr-deploy-", async (home) => {
        const agentId = `launched-${name}`;
        const infoFile = join(home, "state", agentId, "runner-info.json");
        const out = await new Deno.Command(name, {
          args: [join(DEPLOY, "launchers", launcher), infoFile, ...runArgs(agentId, relay.url)],
          env: env(home, relay.token),
          clearEnv: true,
          cwd: ROOT,
        }).output();
        const stdout = new TextDecoder().decode(out.stdout);
        const stderr = new TextDecoder().decode(out.stderr);
        assert.equal(out.code, 0, `${stdout}\n${stderr}`);
        assert.match(
          stdout,
          new RegExp(`^ready: agent ${agentId}, runner pid \\d+, port \\d+$`, "m"),
        );
        assert.match(stdout, /^runner exited with code 0$/m);
        await assert.rejects(Deno.stat(infoFile), Deno.errors.NotFound, "a clean stop");

        // A bad flag: never ready, and the launcher passes the runner's 2 on.
        const bad = await new Deno.Command(name, {
          args: [
            join(DEPLOY, "launchers", launcher),
            infoFile,
            ...runArgs(agentId, relay.url, ["--stop-timeout", "never"]),
          ],
          env: env(home, relay.token),
          clearEnv: true,
          cwd: ROOT,
        }).output();
        assert.equal(bad.code, 2);
        assert.match(new TextDecoder().decode(bad.stderr), /--stop-timeout "never"/);
        assert.doesNotMatch(new TextDecoder().decode(bad.stdout), /ready:/);
      });
    } finally {
      await relay.close();
    }
  });
}

Deno.test("deploy: SIGTERM to the whole process group (KillMode=control-group) stops gracefully", async () => {
  const relay = await startDevRelay({ port: 0 });
  try {
    await withHome("arr-deploy-", async (home) => {
      const child = new Deno.Command("setsid", {
        args: runArgs("grouped", relay.url),
        env: env(home, relay.token),
        clearEnv: true,
        cwd: ROOT,
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      const infoFile = join(home, "state", "grouped", "runner-info.json");
      const port = await waitFor("the runner-info file", async () => {
        try {
          return JSON.parse(await Deno.readTextFile(infoFile)).controlPort as number;
        } catch {
          return undefined;
        }
      });
      await waitFor("GET /ready 200", async () => {
        const res = await fetch(`http://127.0.0.1:${port}/ready`).catch(() => undefined);
        await res?.body?.cancel();
        return res?.status === 200;
      });
      const kill = await new Deno.Command("kill", { args: ["-TERM", "--", `-${child.pid}`] })
        .output();
      assert.ok(kill.success, "the group was signalled");
      assert.equal((await child.status).code, 0, await stderr);
      const log = await Deno.readTextFile(join(home, "logs", "session-mirror-grouped.log"));
      assert.match(log, /INFO {2}\[runner\] stopped/);
      await assert.rejects(Deno.stat(infoFile), Deno.errors.NotFound);
    });
  } finally {
    await relay.close();
  }
});

Deno.test("deploy: the systemd unit verifies; its and pm2's stop timeouts exceed the stop budget", async () => {
  const unit = await Deno.readTextFile(join(DEPLOY, "systemd", "agent-relay-runner@.service"));
  assert.match(unit, /^KillMode=control-group$/m);
  assert.match(unit, /^RestartPreventExitStatus=2$/m);
  const stopSec = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1]);
  const budget = Number(/--stop-timeout (\d+)/.exec(unit)?.[1]) * 1000;
  assert.equal(budget, DEFAULT_STOP_BUDGET_MS);
  assert.ok(stopSec * 1000 > budget, `TimeoutStopSec=${stopSec} is above the ${budget} ms budget`);

  const require = createRequire(import.meta.url);
  const pm2 = require(join(DEPLOY, "pm2", "ecosystem.config.cjs"));
  const app = pm2.apps[0];
  assert.ok(app.kill_timeout > DEFAULT_STOP_BUDGET_MS, "pm2's kill_timeout is above the budget");
  assert.ok(app.args.includes("--log-file") && app.args.includes("-"));

  const docker = await Deno.readTextFile(join(DEPLOY, "docker", "Dockerfile"));
  assert.match(docker, /^STOPSIGNAL SIGTERM$/m);
  assert.match(docker, /^FROM denoland\/deno:2\.9\.6$/m, "the pinned Deno version");

  // systemd-analyze checks the unit's syntax offline; the binary is replaced by one that exists.
  const probe = await new Deno.Command("systemd-analyze", { args: ["--version"] }).output()
    .catch(() => undefined);
  if (!probe?.success) return;
  await withHome("arr-unit-", async (dir) => {
    const path = join(dir, "agent-relay-runner@.service");
    await Deno.writeTextFile(
      path,
      unit.replace("/usr/local/bin/agent-relay-runner", "/usr/bin/env"),
    );
    const out = await new Deno.Command("systemd-analyze", { args: ["verify", path] }).output();
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, text);
    assert.doesNotMatch(text, /Unknown (key|section)|Failed to parse|bad-setting/i);
  });
});
