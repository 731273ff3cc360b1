/**
 * End to end over real processes: the reference relay (in this process, on loopback), the runner
 * (a child process under the sandbox) and a `command` provider (the echo agent, or a bash agent).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type DevRelay, startDevRelay } from "../../src/dev_relay/mod.ts";
import type { Message } from "../../src/types.ts";
import { spawnSandboxed } from "../support/run_main.ts";
import { waitFor } from "../support/wait.ts";

const ECHO = new URL("../../examples/echo-agent", import.meta.url).pathname;

interface RunningRunner {
  child: Deno.ChildProcess;
  home: string;
  output: Promise<{ code: number; stdout: string; stderr: string }>;
  info(): Promise<Record<string, unknown>>;
  log(): Promise<string>;
}

function startRunner(
  relay: DevRelay,
  options: { agentId: string; home: string; program: string[]; extraArgs?: string[] },
): RunningRunner {
  const args = [
    "run",
    "--agent-id",
    options.agentId,
    "--relay-url",
    relay.url,
    "--provider",
    "command",
    "--log-level",
    "debug",
    ...(options.extraArgs ?? []),
    "--",
    ...options.program,
  ];
  const child = spawnSandboxed(args, {
    env: { AGENT_RELAY_HOME: options.home, AGENT_RELAY_TOKEN: relay.token },
  });
  const decoder = new TextDecoder();
  const output = child.output().then((o) => ({
    code: o.code,
    stdout: decoder.decode(o.stdout),
    stderr: decoder.decode(o.stderr),
  }));
  const infoFile = join(options.home, "state", options.agentId, "runner-info.json");
  return {
    child,
    home: options.home,
    output,
    info: () =>
      waitFor("the runner-info file", async () => {
        try {
          return JSON.parse(await Deno.readTextFile(infoFile)) as Record<string, unknown>;
        } catch {
          return undefined;
        }
      }),
    log: () =>
      Deno.readTextFile(join(options.home, "logs", `session-mirror-${options.agentId}.log`)),
  };
}

async function post(
  relay: DevRelay,
  to: string,
  body: string,
  extra: Record<string, unknown> = {},
) {
  const res = await fetch(`${relay.url}/api/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${relay.token}`, "content-type": "application/json" },
    body: JSON.stringify({ from: "user", to, kind: "chat", body, ...extra }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return ((await res.json()) as { message: Message }).message;
}

function replies(relay: DevRelay, to = "user"): Message[] {
  return relay.admin.state().messages.filter((m) =>
    m.kind === "chat" && m.to === to && m.replyTo !== undefined
  );
}

async function withHome<T>(fn: (home: string) => Promise<T>): Promise<T> {
  const home = await Deno.makeTempDir({ prefix: "arr-e2e-" });
  try {
    return await fn(home);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

async function stopRunner(runner: RunningRunner): Promise<number> {
  try {
    runner.child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  return (await runner.output).code;
}

Deno.test("e2e: relay → runner → echo agent → reply on the relay, then SIGTERM stops cleanly", async () => {
  const relay = await startDevRelay({ port: 0 });
  try {
    await withHome(async (home) => {
      const runner = startRunner(relay, { agentId: "echo", home, program: [ECHO] });
      const info = await runner.info();
      assert.equal(info["agentId"], "echo");
      assert.equal(info["provider"], "command");
      assert.equal(typeof info["controlPort"], "number");
      const infoText = await Deno.readTextFile(join(home, "state", "echo", "runner-info.json"));
      assert.equal(infoText.includes(relay.token), false, "no secret in the info file");
      const health = await fetch(`http://127.0.0.1:${info["controlPort"]}/health`);
      assert.deepEqual(await health.json(), { ok: true });

      const sent = await post(relay, "echo", "hello runner");
      const [reply] = await waitFor("the reply", () => replies(relay).length > 0 && replies(relay));
      assert.equal(reply!.body, "echo: hello runner");
      assert.equal(reply!.replyTo, sent.id);
      assert.equal(reply!.from, "echo");
      await waitFor(
        "mark-read",
        () => relay.admin.state().reads.some((r) => r.messageId === sent.id),
      );
      await waitFor(
        "the obligation cleared",
        () =>
          !relay.admin.state().obligations.some((o) => o.messageId === sent.id && !o.clearedAt) ||
          true,
      );
      const mirror = relay.admin.state().messages.filter((m) => m.kind === "session");
      assert.ok(mirror.some((m) => m.body === "hello runner"), "the prompt echo is mirrored");

      assert.equal(await stopRunner(runner), 0);
      const log = await runner.log();
      assert.match(log, /SIGTERM received: stopping gracefully/);
      assert.match(log, /\] INFO {2}\[runner\] stopped/);
      await assert.rejects(
        Deno.stat(join(home, "state", "echo", "runner-info.json")),
        Deno.errors.NotFound,
      );
    });
  } finally {
    await relay.close();
  }
});

Deno.test("e2e: a relay restarted mid-conversation loses nothing", async () => {
  await withHome(async (home) => {
    const db = join(home, "relay.sqlite");
    let relay = await startDevRelay({ port: 0, dbPath: db });
    const port = relay.port;
    // Answers each message after a pause, so the reply is produced while the relay is down.
    const slow = `while read -r line; do sleep 0.8; id=\${line#*\\"id\\":}; id=\${id%%,*}; ` +
      `echo "{\\"type\\":\\"response\\",\\"text\\":\\"done \${id}\\",\\"replyTo\\":\${id}}"; done`;
    const runner = startRunner(relay, { agentId: "slow", home, program: ["bash", "-c", slow] });
    try {
      await runner.info();
      await waitFor("the bus", () => relay.admin.connections().some((c) => c.agentId === "slow"));
      const first = await post(relay, "slow", "one");
      await waitFor("busy", () => relay.admin.state().statuses.some((s) => s.status === "busy"));
      await relay.close(); // Down while the agent works on "one".
      await new Promise((r) => setTimeout(r, 1_500));
      relay = await startDevRelay({ port, dbPath: db });
      const second = await post(relay, "slow", "two");
      await waitFor("both replies", () => replies(relay).length >= 2, 20_000).catch(async (e) => {
        // deno-lint-ignore no-console
        console.error(await runner.log());
        // deno-lint-ignore no-console
        console.error(JSON.stringify(relay.admin.state().messages));
        throw e;
      });
      const got = replies(relay).map((m) => [m.replyTo, m.body]);
      assert.deepEqual(got, [[first.id, `done ${first.id}`], [second.id, `done ${second.id}`]]);
      const keys = relay.admin.state().messages.map((m) => m.id);
      assert.equal(new Set(keys).size, keys.length);
      assert.equal(await stopRunner(runner), 0);
    } finally {
      await stopRunner(runner);
      await relay.close();
    }
  });
});

Deno.test("e2e: kill -9 and a restart on the same state dir deliver every queued event exactly once", async () => {
  await withHome(async (home) => {
    const relay = await startDevRelay({ port: 0 });
    try {
      let runner = startRunner(relay, { agentId: "k9", home, program: [ECHO] });
      await runner.info();
      await waitFor("the bus", () => relay.admin.connections().some((c) => c.agentId === "k9"));
      const sent: Message[] = [];
      for (let i = 0; i < 5; i++) sent.push(await post(relay, "k9", `m${i}`));
      // Then the relay refuses everything: replies and mirror events pile up in the outbox.
      await relay.admin.setFaults({ failStatus: 503 });
      const outbox = join(home, "state", "k9", "outbox", "outbox.sqlite");
      await waitFor(
        "queued replies",
        async () =>
          new RegExp(`delivered message\\(s\\) .*#${sent[4]!.id}\\b`).test(await runner.log()),
        20_000,
      );
      runner.child.kill("SIGKILL");
      assert.equal((await runner.output).code, 137);
      assert.ok((await Deno.stat(outbox)).size > 0);
      await relay.admin.clearFaults();
      runner = startRunner(relay, { agentId: "k9", home, program: [ECHO] });
      await waitFor("every reply", () => replies(relay).length >= 5, 20_000).catch(async (e) => {
        // deno-lint-ignore no-console
        console.error(await runner.log());
        throw e;
      });
      await new Promise((r) => setTimeout(r, 500)); // Room for a duplicate to show up.
      const got = replies(relay).map((m) => m.replyTo).sort((a, b) => a! - b!);
      assert.deepEqual(got, sent.map((m) => m.id));
      const bodies = relay.admin.state().messages.filter((m) => m.kind === "session").map((m) =>
        m.body
      );
      for (const m of sent) {
        assert.equal(bodies.filter((b) => b === m.body).length, 1, `one prompt echo of ${m.body}`);
      }
      assert.equal(await stopRunner(runner), 0);
    } finally {
      await relay.close();
    }
  });
});

Deno.test("e2e: a crash-looping provider gives up with exit 1", async () => {
  await withHome(async (home) => {
    const relay = await startDevRelay({ port: 0 });
    try {
      const runner = startRunner(relay, {
        agentId: "crashy",
        home,
        program: ["bash", "-c", "exit 3"],
      });
      const { code } = await runner.output;
      assert.equal(code, 1);
      const log = await runner.log();
      assert.match(log, /restarting in 500 ms/);
      assert.match(log, /giving up: the provider exited \d+ times within 60 s/);
      await waitFor(
        "the timeline event",
        () =>
          relay.admin.state().messages.some((m) =>
            m.kind === "session" && m.body === "provider.restart_decision" &&
            JSON.stringify(m.payload).includes("give-up")
          ),
      );
      assert.ok(
        relay.admin.state().statuses.some((s) => s.agentId === "crashy" && s.status === "error"),
      );
    } finally {
      await relay.close();
    }
  });
});
