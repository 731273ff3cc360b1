/**
 * Hardening: bad command lines and bad environments (issue 9). Each gets a clear error and the
 * contract's exit code (0 clean stop, 1 runtime failure, 2 bad usage), and loses nothing:
 * random argv, an unwritable log or info dir, a log file that cannot be opened, a corrupt
 * outbox, a second runner on the same state dir, and (as root, where a tmpfs can be mounted)
 * a full or read-only filesystem; a relay URL with a query or a fragment (issue 16). tests/cli_test.ts covers the single usage errors.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveRunConfig, UsageError } from "../../src/config/mod.ts";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import { LOG_LEVELS } from "../../src/logger.ts";
import type { Message } from "../../src/types.ts";
import { lines, readControl, streamAgent } from "../support/agents.ts";
import { withHome } from "../support/home.ts";
import { markedRead, Poster, replies } from "../support/relay_messages.ts";
import { runSandboxed } from "../support/run_main.ts";
import { startRunner } from "../support/runner_process.ts";
import { waitFor } from "../support/wait.ts";
import { mulberry32 } from "./support/prng.ts";

const RELAY = "http://127.0.0.1:9";

function oneLine(stderr: string): string {
  const all = stderr.split("\n").filter((l) => l.trim() !== "");
  assert.equal(all.length, 1, `expected one line on stderr, got: ${stderr}`);
  return all[0]!;
}

// ---------------------------------------------------------------------------------------------
// The command line

Deno.test("bad input: 5,000 seeded random argv give a valid config or a one-line usage error, nothing else", () => {
  const rng = mulberry32(0xa55);
  const flags = [
    "--agent-id",
    "--provider",
    "--relay-url",
    "--cwd",
    "--state-dir",
    "--log-dir",
    "--log-level",
    "--log-format",
    "--control-port",
    "--info-file",
    "--permission-policy",
    "--help",
    "-h",
    "--bogus",
    "-x",
    "--",
    "--agent-id=",
    "--control-port=80",
  ];
  const value = () =>
    rng.pick([
      () => rng.string(rng.int(0, 12)),
      () => "",
      () => " ",
      () => "a\nb",
      () => "\u0000",
      () => "x".repeat(rng.int(150, 400)),
      () => "\u00e9\u4e2d\ud83d\ude00",
      () => String(rng.int(-5, 70_000)),
      () => rng.pick(["0", "65535", "65536", "1e3", "0x50", "-1", " 80 "]),
      () => rng.pick(["claude", "codex", "command", "gpt", "CLAUDE"]),
      () => rng.pick(["debug", "WARN", " info ", "loud", "text", "json", "xml"]),
      () => rng.pick(["allow", "deny", "ask-relay", "maybe"]),
      () =>
        rng.pick([
          RELAY,
          "https://localhost:1/x/",
          "http://[::1]:80",
          "http://127.0.0.2:9",
          "http://10.0.0.1/",
          "http://relay.example.invalid/",
          "ws://127.0.0.1/",
          "http://u:p@127.0.0.1/",
          "http://[::ffff:127.0.0.1]/",
          "http://0x7f.1/",
          "http://127.0.0.1:99999/",
          "not a url",
          "",
        ]),
      () => `/tmp/${rng.string(6)}`,
      () => "../../etc",
    ])();
  const envs = [
    {},
    { HOME: "/home/op" },
    { HOME: "/home/op", AGENT_RELAY_URL: RELAY },
    { HOME: "/home/op", AGENT_RELAY_LOG_LEVEL: "shout" },
    { HOME: "/home/op", AGENT_RELAY_SESSION_DEBUG: "1", AGENT_RELAY_PERMISSION_POLICY: "nope" },
    { AGENT_RELAY_HOME: "/srv/relay", AGENT_RELAY_RUNNER_OUTBOX_DIR: "rel/outbox" },
  ];
  let configs = 0;
  let usage = 0;
  for (let i = 0; i < 5_000; i++) {
    const argv: string[] = [];
    // Half the cases start from a valid command line, so later flags are what gets tested.
    const sane = rng.chance(0.5);
    if (sane || rng.chance(0.7)) argv.push("--agent-id", sane ? `agent-${i}` : value());
    if (sane || rng.chance(0.7)) argv.push("--relay-url", sane ? RELAY : value());
    for (let n = rng.int(0, sane ? 2 : 6); n > 0; n--) {
      argv.push(rng.pick(flags));
      if (rng.chance(0.8)) argv.push(value());
    }
    if (rng.chance(0.5)) argv.push("--", ...Array.from({ length: rng.int(0, 3) }, value));
    const env = rng.pick(envs) as Record<string, string>;
    try {
      const c = resolveRunConfig(argv, env);
      configs++;
      const where = JSON.stringify(argv);
      assert.ok(["127.0.0.1", "localhost", "[::1]"].includes(new URL(c.relayUrl).hostname), where);
      assert.ok(c.controlPort >= 0 && c.controlPort <= 65535, where);
      assert.ok((LOG_LEVELS as readonly string[]).includes(c.logLevel), where);
      assert.ok(c.agentId.trim() !== "" && c.agentId.length <= 200, where);
      for (const dir of [c.stateDir, c.logDir, c.outboxDir, c.infoFile, c.cwd]) {
        assert.ok(dir.startsWith("/"), `${dir} is absolute: ${where}`);
      }
      if (c.provider === "command") assert.ok(c.providerArgs.length > 0, where);
    } catch (error) {
      if (!(error instanceof UsageError)) {
        throw new Error(`argv ${JSON.stringify(argv)} threw ${error}`, { cause: error });
      }
      usage++;
      assert.ok(!error.message.includes("\n"), `a one-line message: ${error.message}`);
      assert.ok(error.message.length < 600, `a short message: ${error.message.slice(0, 80)}...`);
    }
  }
  assert.ok(configs > 200 && usage > 1_000, `${configs} configs, ${usage} usage errors`);
});

Deno.test("bad input: a loopback relay the sandbox does not grant (127.0.0.2) exits 2 at once, not retrying forever", async () => {
  await withHome("arr-bad-", async (home) => {
    for (const url of ["http://127.0.0.2:9", "http://[::ffff:127.0.0.1]:9"]) {
      const out = await runSandboxed(
        ["run", "--agent-id", "a", "--relay-url", url, "--provider", "command", "--", "/bin/cat"],
        { env: { AGENT_RELAY_HOME: home } },
      );
      assert.equal(out.code, 2, out.stderr);
      assert.match(
        oneLine(out.stderr),
        /is not on a loopback host .*127\.0\.0\.1, localhost, \[::1\]/,
      );
    }
  });
});

Deno.test("bad input: a relay URL with a query or a fragment exits 2 at once, by flag or by AGENT_RELAY_URL", async () => {
  await withHome("arr-bad-", async (home) => {
    const args = ["run", "--agent-id", "a", "--provider", "command", "--", "/bin/cat"];
    for (
      const url of [
        "http://127.0.0.1:9/?x",
        "http://127.0.0.1:9/#y",
        "http://127.0.0.1:9?",
        "http://127.0.0.1:9/#",
      ]
    ) {
      for (const how of ["flag", "env"] as const) {
        const out = await runSandboxed(
          how === "flag" ? ["run", "--relay-url", url, ...args.slice(1)] : args,
          { env: { AGENT_RELAY_HOME: home, ...(how === "env" ? { AGENT_RELAY_URL: url } : {}) } },
        );
        assert.equal(out.code, 2, `${how} ${url}: ${out.stderr}`);
        assert.match(oneLine(out.stderr), /query|fragment/, `${how} ${url}`);
      }
    }
    // Nothing started: no runner-info file, no outbox.
    assert.deepEqual(await Array.fromAsync(Deno.readDir(home)), []);
  });
});

Deno.test("bad input: a value with control characters is still one line on stderr, exit 2", async () => {
  await withHome("arr-bad-", async (home) => {
    const out = await runSandboxed(
      ["run", "--agent-id", "two\nlines\u0007", "--relay-url", RELAY],
      { env: { AGENT_RELAY_HOME: home } },
    );
    assert.equal(out.code, 2, out.stderr);
    assert.equal(
      oneLine(out.stderr),
      'agent-relay-runner: --agent-id "two\\nlines\\u0007" must be 1 to 128 letters, digits, ".", "_" or "-" (not "." or "..")',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The environment

Deno.test("bad environment: an unwritable log dir or info-file dir exits 1 with one line naming it, starting nothing", async () => {
  await withHome("arr-bad-", async (home) => {
    const file = join(home, "a-file");
    await Deno.writeTextFile(file, "in the way");
    const base = ["run", "--agent-id", "nodir", "--relay-url", RELAY, "--provider", "command"];
    const cases: Array<[string[], RegExp]> = [
      [
        ["--log-dir", join(file, "logs")],
        /^agent-relay-runner: log dir .*a-file\/logs is not writable: Not a directory/,
      ],
      [
        ["--info-file", join(file, "info.json")],
        /^agent-relay-runner: info file dir .*a-file is not writable/,
      ],
      [
        ["--state-dir", join(file, "state")],
        /^agent-relay-runner: state dir .*a-file\/state is not writable/,
      ],
    ];
    for (const [flags, pattern] of cases) {
      const out = await runSandboxed([...base, ...flags, "--", "/bin/cat"], {
        env: { AGENT_RELAY_HOME: home },
      });
      assert.equal(out.code, 1, out.stderr);
      assert.match(oneLine(out.stderr), pattern);
    }
    // Nothing was started: no state, no runner-info file, no outbox.
    await assert.rejects(Deno.stat(join(home, "state", "nodir", "runner-info.json")));
    await assert.rejects(Deno.stat(join(home, "state", "nodir", "outbox", "outbox.sqlite")));
    assert.equal(await Deno.readTextFile(file), "in the way");
  });
});

Deno.test("bad environment: a provider that cannot start, a missing cwd or a port in use: exit 1, one line", async () => {
  await withHome("arr-bad-", async (home) => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const notExecutable = join(home, "agent.txt");
      await Deno.writeTextFile(notExecutable, "echo hi");
      const base = ["run", "--agent-id", "nostart", "--relay-url", RELAY, "--provider", "command"];
      const cases: Array<[string[], RegExp]> = [
        [
          [...base, "--", join(home, "missing-agent")],
          /cannot start: .*missing-agent.*No such file/,
        ],
        [[...base, "--", notExecutable], /cannot start: .*agent\.txt.*Permission denied/],
        [[...base, "--cwd", join(home, "gone"), "--", "/bin/cat"], /cannot start: .*No such cwd/],
        [
          [...base, "--control-port", String(listener.addr.port), "--", "/bin/cat"],
          /cannot start: Cannot listen on 127\.0\.0\.1:\d+: Address already in use/,
        ],
      ];
      for (const [args, pattern] of cases) {
        const out = await runSandboxed(args, { env: { AGENT_RELAY_HOME: home } });
        assert.equal(out.code, 1, out.stderr);
        assert.match(oneLine(out.stderr), pattern);
        await assert.rejects(Deno.stat(join(home, "state", "nostart", "runner-info.json")));
      }
    } finally {
      listener.close();
    }
  });
});

Deno.test("bad environment: a log file that cannot be opened: error and fatal records still reach stderr, and the runner works", async () => {
  await withHome("arr-bad-", async (home) => {
    const relay = await startDevRelay({ port: 0 });
    const agentCwd = join(home, "agent");
    await Deno.mkdir(agentCwd);
    // The log file's path is taken by a directory: the dir is writable, the file cannot open.
    await Deno.mkdir(join(home, "logs", "session-mirror-nolog.log"), { recursive: true });
    const runner = startRunner(relay, {
      agentId: "nolog",
      home,
      cwd: agentCwd,
      providerArgs: streamAgent(),
    });
    try {
      await runner.info();
      const { port, secret } = await readControl(agentCwd);
      const message = await new Poster(relay).post("nolog", "still answered?", {
        retryForMs: 5_000,
      });
      await waitFor("the reply", () => replies(relay).some((r) => r.replyTo === message.id));
      const res = await fetch(`http://127.0.0.1:${port}/hook-fatal`, {
        method: "POST",
        headers: { authorization: `Bearer ${secret}` },
        body: JSON.stringify({ hook: "pre-tool-use", error: "the hook broke" }),
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    } finally {
      assert.equal(await runner.stop(), 0);
      await relay.close();
    }
    const { stderr } = await runner.output;
    assert.match(stderr, /ERROR \[logger\] cannot open log file .*session-mirror-nolog\.log/);
    assert.match(stderr, /FATAL \[control\] hook pre-tool-use failed: the hook broke/);
    // Only error and fatal records fall back to stderr, not the debug chatter.
    assert.doesNotMatch(stderr, /\] (DEBUG|INFO |WARN ) /);
  });
});

Deno.test("bad environment: a corrupt outbox: exit 1 naming the file, the file untouched, nothing lost", async () => {
  await withHome("arr-bad-", async (home) => {
    const relay = await startDevRelay({ port: 0 });
    const agentCwd = join(home, "agent");
    await Deno.mkdir(agentCwd);
    const outboxDir = join(home, "state", "corrupt", "outbox");
    await Deno.mkdir(outboxDir, { recursive: true, mode: 0o700 });
    const file = join(outboxDir, "outbox.sqlite");
    const garbage = new TextEncoder().encode("this is not an SQLite database\n".repeat(200));
    await Deno.writeFile(file, garbage, { mode: 0o600 });
    try {
      const message = await new Poster(relay).post("corrupt", "wait for me");
      const first = startRunner(relay, {
        agentId: "corrupt",
        home,
        cwd: agentCwd,
        providerArgs: streamAgent(),
      });
      const out = await first.output;
      assert.equal(out.code, 1, out.stderr);
      assert.match(
        oneLine(out.stderr),
        /^agent-relay-runner: cannot start: Outbox .*outbox\.sqlite is not a readable SQLite database .*left untouched/,
      );
      assert.deepEqual(await Deno.readFile(file), garbage, "the file is left as it was");
      assert.deepEqual(relay.admin.state().reads, [], "the message is still unread");
      assert.deepEqual(await lines(agentCwd, "received.txt"), [], "and was never delivered");
      // The operator moves the file aside; the next start delivers and answers the message.
      await Deno.rename(file, `${file}.corrupt`);
      const second = startRunner(relay, {
        agentId: "corrupt",
        home,
        cwd: agentCwd,
        providerArgs: streamAgent(),
      });
      try {
        await waitFor("the reply", () => replies(relay).some((r) => r.replyTo === message.id));
      } finally {
        assert.equal(await second.stop(), 0);
      }
    } finally {
      await relay.close();
    }
  });
});

Deno.test("bad environment: a second runner on the same state dir fails fast naming the first's pid; the first carries on", async () => {
  await withHome("arr-bad-", async (home) => {
    const relay = await startDevRelay({ port: 0 });
    const agentCwd = join(home, "agent");
    await Deno.mkdir(agentCwd);
    const first = startRunner(relay, {
      agentId: "twice",
      home,
      cwd: agentCwd,
      providerArgs: streamAgent(),
    });
    try {
      const info = await first.info();
      const started = performance.now();
      const second = startRunner(relay, {
        agentId: "twice",
        home,
        cwd: join(home, "elsewhere"),
        providerArgs: streamAgent(),
      });
      const out = await second.output;
      const ms = performance.now() - started;
      assert.equal(out.code, 1, out.stderr);
      assert.match(
        oneLine(out.stderr),
        new RegExp(
          `outbox\\.sqlite is in use by process ${first.child.pid}; only one runner may open it`,
        ),
      );
      assert.ok(ms < 10_000, `failed fast (${Math.round(ms)} ms)`);
      // The first runner's info file is still its own, and it still answers.
      const after = JSON.parse(await Deno.readTextFile(join(first.stateDir, "runner-info.json")));
      assert.equal(after.pid, first.child.pid);
      assert.equal(after.controlPort, info["controlPort"]);
      const message = await new Poster(relay).post("twice", "still there?");
      await waitFor("the reply", () => replies(relay).some((r) => r.replyTo === message.id));
    } finally {
      assert.equal(await first.stop(), 0);
      await relay.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Full and read-only filesystems (a tmpfs, so root only)

/** Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN); CI as a user may not. */
function canMountTmpfs(): boolean {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) return false;
  const dir = Deno.makeTempDirSync({ prefix: "arr-mount-probe-" });
  try {
    const mounted = new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir],
      stdout: "null",
      stderr: "null",
    }).outputSync().code === 0;
    if (mounted) new Deno.Command("umount", { args: ["-l", dir] }).outputSync();
    return mounted;
  } catch {
    return false;
  } finally {
    Deno.removeSync(dir);
  }
}

const TMPFS = canMountTmpfs();

/** A runner (agent "full", `cat` as its provider) with its state dir at `stateDir`, to its exit. */
function runOnStateDir(home: string, stateDir: string) {
  const args = ["run", "--agent-id", "full", "--relay-url", RELAY, "--state-dir", stateDir];
  return runSandboxed([...args, "--provider", "command", "--", "/bin/cat"], {
    env: { AGENT_RELAY_HOME: home },
  });
}

async function withTmpfs<T>(
  options: string,
  fn: (home: string, mnt: string) => Promise<T>,
): Promise<T> {
  return await withHome("arr-bad-", async (home) => {
    const mnt = join(home, "mnt");
    await Deno.mkdir(mnt);
    const mount = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", options, "tmpfs", mnt],
    }).output();
    assert.equal(mount.code, 0, new TextDecoder().decode(mount.stderr));
    try {
      return await fn(home, mnt);
    } finally {
      await new Deno.Command("umount", { args: ["-l", mnt] }).output();
    }
  });
}

/** Fills the filesystem at `dir` with one file. */
async function fill(dir: string): Promise<void> {
  await new Deno.Command("dd", {
    args: ["if=/dev/zero", `of=${join(dir, "filler")}`, "bs=4k"],
    stdout: "null",
    stderr: "null",
  }).output();
}

Deno.test({
  name:
    "bad environment (tmpfs, root only): a read-only log dir and a full state dir at start exit 1 with one line",
  ignore: !TMPFS,
  async fn() {
    await withTmpfs("size=1m,mode=0700,ro", async (home, mnt) => {
      const out = await runSandboxed([
        "run",
        "--agent-id",
        "ro",
        "--relay-url",
        RELAY,
        "--log-dir",
        join(mnt, "logs"),
        "--provider",
        "command",
        "--",
        "/bin/cat",
      ], { env: { AGENT_RELAY_HOME: home } });
      assert.equal(out.code, 1, out.stderr);
      assert.match(
        oneLine(out.stderr),
        /log dir .*mnt\/logs is not writable: Read-only file system/,
      );
    });
    await withTmpfs("size=256k,mode=0700", async (home, mnt) => {
      await fill(mnt);
      const out = await runOnStateDir(home, join(mnt, "state"));
      assert.equal(out.code, 1, out.stderr);
      assert.match(
        oneLine(out.stderr),
        /^agent-relay-runner: (cannot start|state dir|cannot write the pidfile .*No space left)/,
      );
      await assert.rejects(Deno.stat(join(mnt, "state", "runner-info.json")));
    });
  },
});

Deno.test({
  name:
    "bad environment (tmpfs, root only): the state dir fills up mid-run: errors logged, nothing from the relay lost after a restart",
  ignore: !TMPFS,
  async fn() {
    await withTmpfs("size=1m,mode=0700", async (home, mnt) => {
      const relay = await startDevRelay({ port: 0 });
      const agentCwd = join(home, "agent");
      await Deno.mkdir(agentCwd);
      const poster = new Poster(relay);
      const start = () =>
        startRunner(relay, {
          agentId: "filling",
          home,
          cwd: agentCwd,
          stateDir: join(mnt, "state"),
          providerArgs: streamAgent(),
        });
      const posted: Message[] = [];
      try {
        const first = start();
        try {
          await first.info();
          posted.push(await poster.post("filling", "before"));
          await waitFor("the first reply", () => replies(relay).length === 1);
          await fill(mnt);
          posted.push(await poster.post("filling", "while full"));
          await waitFor(
            "the delivery",
            async () => (await lines(agentCwd, "received.txt")).length === 2,
          );
          await waitFor(
            "a failed write logged",
            async () => /queueing a .* event failed/.test(await first.log()),
          );
          await Deno.remove(join(mnt, "filler"));
          posted.push(await poster.post("filling", "after"));
          await waitFor(
            "the reply after",
            () => replies(relay).some((r) => r.replyTo === posted[2]!.id),
          );
        } finally {
          assert.equal(await first.stop(), 0);
        }
        const log = await first.log();
        assert.match(
          log,
          /ERROR \[runner\] queueing a .* event failed: Outbox .*outbox\.sqlite could not store .*disk is full/,
        );
        // What the full disk cost, the restart recovers: the message is still unread on the
        // relay, so it is delivered and answered again.
        const second = start();
        try {
          await waitFor(
            "every reply",
            () => posted.every((m) => replies(relay).some((r) => r.replyTo === m.id)),
          );
          // Every message read and nothing left to do: a duplicate would be on the relay by now.
          await waitFor("every mark-read", () => markedRead(relay, ...posted.map((m) => m.id)));
          await second.settled();
        } finally {
          assert.equal(await second.stop(), 0);
        }
        for (const m of posted) {
          assert.equal(replies(relay).filter((r) => r.replyTo === m.id).length, 1, `#${m.id}`);
        }
      } finally {
        await relay.close();
      }
    });
  },
});

/**
 * On a nearly full filesystem (room for the lock file, not for the database and its WAL) the
 * error names the outbox file and suggests the cause.
 */
Deno.test({
  name: "bad environment: a nearly full disk at start names the outbox and the likely cause",
  ignore: !TMPFS,
  async fn() {
    await withTmpfs("size=256k,mode=0700", async (home, mnt) => {
      // Leave 16 KiB free.
      await new Deno.Command("dd", {
        args: ["if=/dev/zero", `of=${join(mnt, "spare")}`, "bs=1k", "count=16"],
        stderr: "null",
      }).output();
      await fill(mnt);
      await Deno.remove(join(mnt, "spare"));
      const out = await runOnStateDir(home, join(mnt, "state"));
      assert.equal(out.code, 1, out.stderr);
      assert.match(oneLine(out.stderr), /outbox\.sqlite.*(full|no space)/i);
    });
  },
});
