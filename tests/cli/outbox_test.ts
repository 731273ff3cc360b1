import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { OUTBOX_HELP, outboxCommand } from "../../src/cli/outbox.ts";
import { resolveOutboxDir } from "../../src/config/mod.ts";
import { Outbox, outboxPath } from "../../src/outbox/mod.ts";
import { waitFor } from "../support/wait.ts";

const CLI = fileURLToPath(new URL("../../src/cli/outbox.ts", import.meta.url));
const CHILD = fileURLToPath(new URL("../fixtures/outbox_child.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

async function run(args: string[], env: Record<string, string | undefined>) {
  let stdout = "";
  let stderr = "";
  const code = await outboxCommand(args, env, {
    stdout: (text) => stdout += text,
    stderr: (text) => stderr += text,
  });
  return { code, stdout, stderr };
}

async function withHome(fn: (home: string) => Promise<void>): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "outbox_cli_" });
  try {
    await fn(home);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/** An outbox for agent `team_alice` under `home`: 3 pending, 1 poisoned, 2 delivered. */
async function seed(home: string): Promise<string> {
  const path = outboxPath(join(home, "state", "team_alice", "outbox"));
  using outbox = new Outbox({
    path,
    agentId: "team_alice",
    batchSize: 1,
    send: (records) =>
      Promise.resolve(
        records.map((r) =>
          r.payload === "bad"
            ? { ok: false as const, error: "HTTP 400: body.to is required", permanent: true }
            : { ok: true as const }
        ),
      ),
  });
  outbox.enqueue({ kind: "session", payload: "one" });
  outbox.enqueue({ kind: "session", payload: "bad" });
  outbox.enqueue({ kind: "session", payload: "two" });
  outbox.start();
  await waitFor("the seed's first events to settle", () => outbox.stats().pending === 0);
  await outbox.stop();
  outbox.enqueue({ kind: "insight", payload: { signal: "x" } });
  outbox.enqueue({ kind: "state", payload: "s", mode: "coalesce", dedupeKey: "status" });
  outbox.enqueue({ kind: "session", payload: "three" });
  return path;
}

Deno.test("outbox cli: the path is found as run finds it", () => {
  const env = { AGENT_RELAY_HOME: "/srv/relay", HOME: "/home/u" };
  assert.equal(
    resolveOutboxDir({ agentId: "team_alice" }, env),
    "/srv/relay/state/team_alice/outbox",
  );
  assert.equal(
    resolveOutboxDir({ agentId: "a" }, { HOME: "/home/u" }),
    "/home/u/.agent-relay/state/a/outbox",
  );
  assert.equal(resolveOutboxDir({ stateDir: "/var/s", agentId: "a" }, env), "/var/s/outbox");
  assert.equal(
    resolveOutboxDir({ agentId: "a" }, { ...env, AGENT_RELAY_RUNNER_OUTBOX_DIR: "/q/box" }),
    "/q/box",
  );
  assert.equal(
    resolveOutboxDir({ agentId: "a" }, { ...env, AGENT_RELAY_RUNNER_OUTBOX_DIR: "" }),
    "/srv/relay/state/a/outbox",
    "an empty variable is unset, as in run",
  );
  assert.equal(outboxPath("/q/box"), "/q/box/outbox.sqlite");
});

Deno.test("outbox cli: --help prints the usage and exits 0", async () => {
  const result = await run(["--help"], {});
  assert.equal(result.code, 0);
  assert.equal(result.stdout, OUTBOX_HELP);
  assert.match(result.stdout, /stats, list and poisoned work while the runner runs/);
  assert.equal((await run(["stats", "-h"], {})).code, 0);
});

Deno.test("outbox cli: bad usage exits 2 with one line on stderr", async () => {
  const env = { AGENT_RELAY_HOME: "/nonexistent-home" };
  const cases: [string[], RegExp][] = [
    [[], /missing command/],
    [["frobnicate", "--agent-id", "a"], /unknown command "frobnicate"/],
    [["stats", "--agent-id", "a", "--bogus"], /unknown flag --bogus/],
    [["stats"], /missing --agent-id \(or --state-dir\)/],
    [["stats", "--agent-id"], /--agent-id needs a value/],
    [["list", "--agent-id", "a", "--limit", "0"], /--limit "0" is not a whole number >= 1/],
    [["list", "--agent-id", "a", "--limit", "ten"], /--limit "ten"/],
    [["stats", "--agent-id", "a", "--limit", "3"], /--limit applies to list and poisoned/],
    [["stats", "--agent-id", "a", "extra"], /unexpected argument "extra"/],
    [["list", "--agent-id", "a", "--seq", "2"], /apply to requeue and purge/],
    [["requeue", "--agent-id", "a"], /exactly one of --seq N or --all/],
    [["requeue", "--agent-id", "a", "--poisoned"], /requeue takes --seq N or --all/],
    [["purge", "--agent-id", "a"], /exactly one of --seq N, --poisoned or --all/],
    [["purge", "--agent-id", "a", "--all", "--poisoned"], /exactly one of/],
    [["purge", "--agent-id", "a", "--seq", "-1"], /--seq/],
  ];
  for (const [args, message] of cases) {
    const result = await run(args, env);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.equal(result.stdout, "");
    const lines = result.stderr.split("\n").filter((l) => l !== "");
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0] ?? "", /^agent-relay-runner outbox: /);
    assert.match(lines[0] ?? "", message);
  }
});

Deno.test("outbox cli: a missing outbox is an error (exit 1) and is not created", async () => {
  await withHome(async (home) => {
    const result = await run(["stats", "--agent-id", "nobody"], { AGENT_RELAY_HOME: home });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no outbox at .*state\/nobody\/outbox\/outbox\.sqlite/);
    const purge = await run(["purge", "--agent-id", "nobody", "--all"], { AGENT_RELAY_HOME: home });
    assert.equal(purge.code, 1);
    assert.deepEqual([...Deno.readDirSync(home)], []);
  });
});

Deno.test("outbox cli: stats, list and poisoned show the file's contents", async () => {
  await withHome(async (home) => {
    const path = await seed(home);
    const env = { AGENT_RELAY_HOME: home };
    const stats = await run(["stats", "--agent-id", "team_alice"], env);
    assert.equal(stats.code, 0, stats.stderr);
    assert.match(stats.stdout, new RegExp(`outbox +${path}`));
    assert.match(stats.stdout, /runner +not running/);
    assert.match(stats.stdout, /pending +3\n/);
    assert.match(stats.stdout, /poisoned +1\n/);
    assert.match(stats.stdout, /delivered +2\n/);
    assert.match(stats.stdout, /dropped +0\n/);
    assert.match(stats.stdout, /last error +\d{4}-\d\d-\d\dT.*Z HTTP 400: body\.to is required/);

    const json = await run(["stats", "--agent-id", "team_alice", "--json"], env);
    const parsed = JSON.parse(json.stdout);
    assert.equal(parsed.pending, 3);
    assert.equal(parsed.poisoned, 1);
    assert.equal(parsed.runnerRunning, false);

    const list = await run(["list", "--agent-id", "team_alice", "--limit", "2"], env);
    assert.equal(list.code, 0);
    const lines = list.stdout.trim().split("\n");
    assert.equal(lines.length, 3);
    assert.match(
      lines[0] ?? "",
      /^seq=4 kind=insight mode=append attempts=0 occurredAt=\S+Z key=team_alice:[0-9a-f-]{36} payload=\{"signal":"x"\}$/,
    );
    assert.match(lines[1] ?? "", /^seq=5 kind=state mode=coalesce .*dedupeKey=status/);
    assert.equal(lines[2], "2 of 3 pending event(s) shown");

    const listJson = await run(["list", "--agent-id", "team_alice", "--json"], env);
    const records = listJson.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(records.map((r) => r.payload), [{ signal: "x" }, "s", "three"]);

    const poisoned = await run(["poisoned", "--state-dir", join(home, "state", "team_alice")], env);
    assert.equal(poisoned.code, 0);
    assert.match(
      poisoned.stdout,
      /^seq=2 kind=session .*poisonedAt=\S+Z error="HTTP 400: body\.to is required" payload="bad"\n1 of 1 poisoned event\(s\) shown\n$/,
    );
  });
});

Deno.test("outbox cli: requeue and purge change the file when the runner is stopped", async () => {
  await withHome(async (home) => {
    await seed(home);
    const env = { AGENT_RELAY_HOME: home };
    const a = ["--agent-id", "team_alice"];
    assert.equal((await run(["requeue", ...a, "--seq", "9"], env)).code, 1);
    const requeue = await run(["requeue", ...a, "--seq", "2"], env);
    assert.equal(requeue.code, 0, requeue.stderr);
    assert.equal(requeue.stdout, "requeued 1 event(s)\n");
    const none = await run(["requeue", ...a, "--all"], env);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no poisoned events to requeue/);
    const list = await run(["list", ...a, "--json"], env);
    assert.deepEqual(list.stdout.trim().split("\n").map((l) => JSON.parse(l).seq), [2, 4, 5, 6]);

    assert.equal((await run(["purge", ...a, "--seq", "5"], env)).stdout, "purged 1 event(s)\n");
    const missing = await run(["purge", ...a, "--seq", "5"], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no event with seq 5/);
    assert.equal((await run(["purge", ...a, "--poisoned"], env)).stdout, "purged 0 event(s)\n");
    const all = await run(["purge", ...a, "--all", "--json"], env);
    assert.deepEqual(JSON.parse(all.stdout), { purged: 3 });
    const stats = await run(["stats", ...a, "--json"], env);
    assert.equal(JSON.parse(stats.stdout).pending, 0);
  });
});

Deno.test("outbox cli: while a runner holds the outbox, reads work and changes are refused", async () => {
  await withHome(async (home) => {
    const path = await seed(home);
    const env = { AGENT_RELAY_HOME: home };
    const a = ["--agent-id", "team_alice"];
    // The "runner": a real process holding the outbox.
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CHILD, path, "hold"],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    try {
      const reader = child.stdout.getReader();
      assert.equal(new TextDecoder().decode((await reader.read()).value).trim(), "ready");
      reader.releaseLock();

      const stats = await run(["stats", ...a], env);
      assert.equal(stats.code, 0, stats.stderr);
      assert.match(stats.stdout, new RegExp(`runner +running \\(pid ${child.pid}\\)`));
      assert.match(stats.stdout, /pending +4\n/, "the holder's own event is visible");
      assert.equal((await run(["list", ...a], env)).code, 0);
      assert.equal((await run(["poisoned", ...a], env)).code, 0);

      for (const args of [["requeue", "--all"], ["purge", "--poisoned"], ["purge", "--seq", "4"]]) {
        const refused = await run([...args, ...a], env);
        assert.equal(refused.code, 1);
        assert.match(
          refused.stderr,
          new RegExp(
            `^agent-relay-runner outbox: the runner \\(pid ${child.pid}\\) holds .*; stop it`,
          ),
        );
      }
    } finally {
      child.kill("SIGKILL");
      await child.status;
      await child.stdout.cancel().catch(() => {});
    }
    // Stopped (here: killed): the change goes through and nothing was lost meanwhile.
    const requeue = await run(["requeue", ...a, "--all"], env);
    assert.equal(requeue.code, 0, requeue.stderr);
    const stats = await run(["stats", ...a, "--json"], env);
    assert.equal(JSON.parse(stats.stdout).pending, 5);
    assert.equal(JSON.parse(stats.stdout).runnerRunning, false);
  });
});

Deno.test("outbox cli: runs as its own program with the exit codes of the contract", async () => {
  await withHome(async (home) => {
    await seed(home);
    const runCli = async (args: string[]) => {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, ...args],
        cwd: ROOT,
        env: { AGENT_RELAY_HOME: home, NO_COLOR: "1" },
        stdin: "null",
      }).output();
      return {
        code: output.code,
        stdout: new TextDecoder().decode(output.stdout),
        stderr: new TextDecoder().decode(output.stderr),
      };
    };
    const stats = await runCli(["stats", "--agent-id", "team_alice"]);
    assert.equal(stats.code, 0, stats.stderr);
    assert.match(stats.stdout, /pending +3\n/);
    const bad = await runCli(["stats"]);
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr,
      "agent-relay-runner outbox: missing --agent-id (or --state-dir) to find the outbox\n",
    );
  });
});

Deno.test("outbox cli: list never prints a stored control character raw", async () => {
  await withHome(async (home) => {
    const path = outboxPath(join(home, "state", "mallory", "outbox"));
    {
      using outbox = new Outbox({ path, agentId: "mallory" });
      outbox.enqueue({ kind: "x\u001b[2Jy", payload: "line\u2028forged\u0000\u009b31m" });
    }
    const list = await run(["list", "--agent-id", "mallory"], { AGENT_RELAY_HOME: home });
    assert.equal(list.code, 0, list.stderr);
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(list.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/);
    assert.match(list.stdout, /kind=x\\u\{1b\}\[2Jy/);
  });
});
