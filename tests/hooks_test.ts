/**
 * The Claude Code hook plugin, end to end: the real bash scripts, written by `writePlugin`, run
 * with real curl against a real control server on 127.0.0.1, with a real loopback HTTP server
 * as the relay where one is needed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type ControlCallbacks,
  type ControlServer,
  HOOK_EVENTS,
  type HookContext,
  type HookEvent,
  type HookFatalReport,
  startControlServer,
} from "../src/control/mod.ts";
import {
  createPermissionDecider,
  type PermissionDecider,
} from "../src/control/permission_policy.ts";
import { PLUGIN_DIR_NAME, PLUGIN_FILES, writePlugin } from "../src/adapters/claude_plugin.ts";
import { ReplyObligationCache } from "../src/runner/reply_obligations.ts";
import type { AgentStatus, PermissionDecision, ReplyObligation } from "../src/types.ts";

/** The hook's budget: hooks.json gives every hook 5 s. */
const HOOK_TIMEOUT_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// A fake relay on loopback: obligations and permission answers, in three moods.

type Mood = "ok" | "slow";

class FakeRelay {
  mood: Mood = "ok";
  obligations: ReplyObligation[] = [];
  permission: PermissionDecision = { decision: "allow", reason: "operator said yes" };
  /** Requests answered, and requests still waiting (slow mood). */
  answered = 0;
  waiting = 0;
  readonly #releases = new Set<() => void>();
  readonly server: Deno.HttpServer<Deno.NetAddr>;

  constructor() {
    this.server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => this.#handle(req),
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.server.addr.port}`;
  }

  async #handle(req: Request): Promise<Response> {
    if (this.mood === "slow") {
      this.waiting++;
      // Answers only after 5 s (or when the test ends).
      await new Promise<void>((resolve) => {
        const release = () => {
          clearTimeout(timer);
          this.#releases.delete(release);
          resolve();
        };
        const timer = setTimeout(release, 5_000);
        this.#releases.add(release);
      });
      this.waiting--;
    }
    this.answered++;
    const path = new URL(req.url).pathname;
    if (path === "/api/agents/a1/reply-obligations") {
      return Response.json({ obligations: this.obligations });
    }
    if (path === "/api/agents/a1/permission-requests" && req.method === "POST") {
      await req.json();
      return Response.json(this.permission);
    }
    return Response.json({ error: "not found" }, { status: 404 });
  }

  async close(): Promise<void> {
    for (const release of [...this.#releases]) release();
    await this.server.shutdown();
  }
}

// ---------------------------------------------------------------------------------------------
// A minimal runner: the control server with a real cache and a real permission decider.

interface Runner {
  server: ControlServer;
  cache: ReplyObligationCache;
  delivered: number[];
  hooks: Array<{ event: HookEvent; raw: string; context: HookContext }>;
  statuses: Array<[AgentStatus, string]>;
  fatals: HookFatalReport[];
  failHook?: HookEvent;
  close(): Promise<void>;
}

function startRunner(
  relay: FakeRelay,
  options: { policy?: "allow" | "deny" | "ask-relay"; budgetMs?: number } = {},
): Runner {
  const cache = new ReplyObligationCache({
    fetch: async (signal) => {
      const res = await fetch(`${relay.url}/api/agents/a1/reply-obligations`, { signal });
      if (!res.ok) throw new Error(`relay answered ${res.status}`);
      return (await res.json()).obligations;
    },
    intervalMs: 60_000,
  });
  const policy = options.policy ?? "deny";
  const decidePermission: PermissionDecider = createPermissionDecider({
    policy,
    ...(options.budgetMs ? { budgetMs: options.budgetMs } : {}),
    ...(policy === "ask-relay"
      ? {
        ask: async (request, { signal }) => {
          const res = await fetch(`${relay.url}/api/agents/a1/permission-requests`, {
            method: "POST",
            body: JSON.stringify(request),
            signal,
          });
          return await res.json();
        },
      }
      : {}),
  });
  const runner: Runner = {
    cache,
    delivered: [],
    hooks: [],
    statuses: [],
    fatals: [],
    server: undefined as unknown as ControlServer,
    async close() {
      cache.stop();
      await runner.server.close();
    },
  };
  const callbacks: ControlCallbacks = {
    status: () => ({
      agentId: "a1",
      provider: "claude",
      status: "busy",
      pid: Deno.pid,
      startedAt: Date.now(),
      outbox: { pending: 0, poisoned: 0 },
    }),
    setStatus: (status, source) => void runner.statuses.push([status, source]),
    obligations: cache,
    deliveredThisTurn: () => runner.delivered,
    decidePermission,
    onHook: (event, _payload, context) => {
      runner.hooks.push({ event, raw: context.raw, context });
      if (event === runner.failHook) throw new Error("the runner broke");
      return event === "user-prompt-submit" ? { echoed: HOOK_EVENTS[event] } : undefined;
    },
    onHookFatal: (report) => void runner.fatals.push(report),
  };
  runner.server = startControlServer({ port: 0, callbacks });
  return runner;
}

// ---------------------------------------------------------------------------------------------
// Running the real scripts

let pluginDir: string | undefined;
let stateDir: string | undefined;

async function plugin(): Promise<string> {
  if (!pluginDir) {
    stateDir = await Deno.makeTempDir({ prefix: "hooks-test-" });
    pluginDir = await writePlugin(stateDir);
  }
  return pluginDir;
}

interface HookRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

async function runHook(
  event: string,
  payload: string,
  env: Record<string, string>,
  options: { closeStdout?: boolean } = {},
): Promise<HookRun> {
  const root = await plugin();
  const script = join(root, "hooks", `${event}.sh`);
  const args = options.closeStdout ? ["-c", 'exec 1>&-; exec "$0"', script] : [script];
  const started = performance.now();
  const child = new Deno.Command("bash", {
    args,
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", CLAUDE_PLUGIN_ROOT: root, ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(payload));
  await writer.close();
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
    ms: performance.now() - started,
  };
}

function envFor(runner: Runner): Record<string, string> {
  return {
    AGENT_RELAY_RUNNER_PORT: String(runner.server.port),
    AGENT_RELAY_RUNNER_SECRET: runner.server.secret,
    // This test process is the runner (comm `deno`): the liveness check passes.
    AGENT_RELAY_RUNNER_PID: String(Deno.pid),
  };
}

/**
 * A PATH whose `curl` records each call (to `log`) before running the real one, so a test can
 * see that no curl ran at all.
 */
async function curlSpy(): Promise<{ path: string; calls: () => Promise<number>; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "curl-spy-" });
  const real = new TextDecoder().decode(
    (await new Deno.Command("bash", { args: ["-c", "command -v curl"] }).output()).stdout,
  ).trim();
  const log = join(dir, "calls");
  await Deno.writeTextFile(
    join(dir, "curl"),
    `#!/usr/bin/env bash\necho call >>'${log}'\nexec '${real}' "$@"\n`,
    { mode: 0o700 },
  );
  return {
    dir,
    path: `${dir}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    calls: async () => {
      try {
        return (await Deno.readTextFile(log)).split("\n").filter(Boolean).length;
      } catch {
        return 0;
      }
    },
  };
}

const owed = (messageId: number, from: string, body?: string): ReplyObligation => ({
  messageId,
  from,
  createdAt: "2026-11-27T10:00:00.000Z",
  ...(body === undefined ? {} : { body }),
});

/** Runs `fn` with a fake relay and a runner, closing both afterwards. */
async function withRunner(
  options: { policy?: "allow" | "deny" | "ask-relay"; budgetMs?: number },
  fn: (runner: Runner, relay: FakeRelay) => Promise<void>,
): Promise<void> {
  const relay = new FakeRelay();
  const runner = startRunner(relay, options);
  try {
    await fn(runner, relay);
  } finally {
    await runner.close();
    await relay.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The plugin files

Deno.test("writePlugin() writes every plugin file, scripts 0700, and hooks.json points at them", async () => {
  const root = await plugin();
  assert.equal(root, join(stateDir!, PLUGIN_DIR_NAME));
  for (const file of PLUGIN_FILES) {
    const info = await Deno.stat(join(root, file));
    assert.equal(info.mode! & 0o777, file.endsWith(".sh") ? 0o700 : 0o600, file);
  }
  const repoFiles: string[] = [];
  for (const dir of [".claude-plugin", "hooks"]) {
    for await (const entry of Deno.readDir(new URL(`../hooks/${dir}/`, import.meta.url))) {
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
  await withRunner({ policy: "ask-relay", budgetMs: 300 }, async (runner, relay) => {
    const yes = await runHook("permission-request", permissionPayload, envFor(runner));
    assert.equal(JSON.parse(yes.stdout).hookSpecificOutput.decision.behavior, "allow");
    relay.permission = { decision: "deny", reason: "not on main" };
    const no = await runHook("permission-request", permissionPayload, envFor(runner));
    const denied = JSON.parse(no.stdout).hookSpecificOutput.decision;
    assert.deepEqual(denied, { behavior: "deny", message: "not on main" });
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
  if (stateDir) await Deno.remove(stateDir, { recursive: true });
  stateDir = undefined;
  pluginDir = undefined;
  assert.equal(pluginDir, undefined);
});
