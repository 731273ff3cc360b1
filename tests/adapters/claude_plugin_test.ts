/**
 * Tests of the Claude adapter with its hook plugin on the real CLI (in a loopback-only network
 * namespace against the mock Anthropic API): the Stop hook's block for an owed reply, permission
 * questions through the control server, and the SessionEnd insight reported before `stop()`
 * resolves. The adapter writes the plugin into the state dir itself.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createControlHandler,
  generateSecret,
  HOOK_EVENTS,
  startControlServer,
} from "../../src/control/mod.ts";
import { createPermissionDecider } from "../../src/control/permission_policy.ts";
import { hooksConfig, PLUGIN_DIR_NAME, writePlugin } from "../../src/adapters/claude_plugin.ts";
import type { ProviderAdapter } from "../../src/adapters/adapter.ts";
import { createClaudeSandbox } from "../support/claude_netns.ts";
import {
  createClaudeSession,
  message,
  MOCK_PORT_INSIDE,
  MOCK_SOCKET,
} from "../support/claude_session.ts";
import { CLAUDE, exists, realTest, responses, SCRIPT, touchScript } from "./claude_real.ts";

/**
 * A control server of the test, with a fixed obligation snapshot, recording every hook. The
 * sandbox offers its port inside the namespace (it bridges `AGENT_RELAY_RUNNER_PORT`).
 */
async function withControlServer(
  options: {
    owed: { messageId: number; from: string; body: string }[];
    delivered: () => number[];
    policy: "allow" | "deny";
  },
  fn: (control: {
    env: Record<string, string>;
    hooks: { event: string; payload: Record<string, unknown> }[];
    /** Hands every hook to `adapter.onHook` too, as the runner does. */
    forwardTo(adapter: ProviderAdapter): void;
  }) => Promise<void>,
): Promise<void> {
  const hooks: { event: string; payload: Record<string, unknown> }[] = [];
  let target: ProviderAdapter | undefined;
  const server = startControlServer({
    port: 0,
    callbacks: {
      status: () => ({
        agentId: "agent-1",
        provider: "claude",
        status: "busy",
        pid: Deno.pid,
        startedAt: Date.now(),
        outbox: { pending: 0, poisoned: 0 },
      }),
      setStatus: () => {},
      obligations: {
        get: () => options.owed.map((o) => ({ ...o, createdAt: "2026-11-27T12:00:00.000Z" })),
        refreshedAt: Date.now(),
      },
      deliveredThisTurn: options.delivered,
      decidePermission: createPermissionDecider({ policy: options.policy }),
      onHook: (event, payload) => {
        hooks.push({ event, payload });
        target?.onHook?.(event, payload);
      },
    },
  });
  try {
    await fn({
      env: {
        AGENT_RELAY_RUNNER_PORT: String(server.port),
        AGENT_RELAY_RUNNER_SECRET: server.secret,
      },
      hooks,
      forwardTo: (adapter) => (target = adapter),
    });
  } finally {
    await server.close();
  }
}

realTest(
  "with the plugin, a Stop block for an owed reply makes Claude take another turn",
  async () => {
    let delivered: number[] = [];
    await withControlServer({
      owed: [{ messageId: 7, from: "bob", body: "STOP-ME where is my answer?" }],
      delivered: () => delivered,
      policy: "deny",
    }, async (control) => {
      const stateDir = await Deno.makeTempDir({ prefix: "arr-state-" });
      const s = await createClaudeSession({
        script: SCRIPT,
        adapter: { bin: CLAUDE! },
        context: {
          stateDir,
          env: control.env,
        },
      });
      try {
        await s.adapter.start();
        assert.ok(await exists(join(stateDir, PLUGIN_DIR_NAME, "hooks", "stop.sh")));
        delivered = [1];
        await s.adapter.deliver([message(1, "PING first")]);
        await s.rec.turnEnds(1);
        const stops = control.hooks.filter((h) => h.event === "stop");
        assert.deepEqual(stops.map((h) => h.payload.stop_hook_active), [false, true]);
        // The block's own feedback is not a prompt of the session (issue 14); it reached the
        // model as the next request's last text.
        assert.deepEqual(s.rec.of("prompt"), []);
        const last = s.mock.messageRequests().at(-1)?.lastText ?? "";
        assert.match(last, /STOP-ME where is my answer\?/);
        assert.match(last, /bob/);
        // The first answer became a step; the answer to the owed message is the response.
        assert.deepEqual(
          s.rec.of("step").filter((e) => e.kind === "text").map((e) => e.text),
          ["PONG from mock"],
        );
        assert.deepEqual(responses(s.rec), ["Answering bob now."]);
        assert.equal(s.rec.of("turn-end").length, 1);
        assert.ok(control.hooks.some((h) => h.event === "user-prompt-submit"));
        // The SessionStart hook's report can reach the control server after the turn's end on
        // a loaded machine (it did, in a run with 8 test jobs): wait for it.
        await s.rec.waitFor(
          "the SessionStart hook",
          () => control.hooks.some((h) => h.event === "session-start"),
        );
      } finally {
        await s.close();
        await Deno.remove(stateDir, { recursive: true });
      }
    });
  },
);

realTest("with the plugin, permission questions go to the control server's policy", async () => {
  await withControlServer({ owed: [], delivered: () => [1], policy: "allow" }, async (control) => {
    const stateDir = await Deno.makeTempDir({ prefix: "arr-state-" });
    let stdioAsked = 0;
    const s = await createClaudeSession({
      script: touchScript(["by-hook.txt"]),
      adapter: { bin: CLAUDE! },
      context: {
        stateDir,
        env: control.env,
        decidePermission: () => {
          stdioAsked++;
          return Promise.resolve({ decision: "deny" });
        },
      },
    });
    try {
      await s.adapter.start();
      await s.adapter.deliver([message(1, "TOUCH-by-hook.txt")]);
      await s.rec.turnEnds(1);
      assert.ok(await exists(join(s.sandbox.cwd, "by-hook.txt")));
      const asked = control.hooks.filter((h) => h.event === "permission-request");
      assert.equal(asked.length, 1);
      assert.equal(asked[0]?.payload.tool_name, "Bash");
      assert.equal(stdioAsked, 0, "the adapter itself was not asked");
      assert.deepEqual(responses(s.rec), ["touched it"]);
    } finally {
      await s.close();
      await Deno.remove(stateDir, { recursive: true });
    }
  });
});

realTest("with the plugin, stop() resolves after the SessionEnd hook's insight", async () => {
  await withControlServer({ owed: [], delivered: () => [10], policy: "deny" }, async (control) => {
    const stateDir = await Deno.makeTempDir({ prefix: "arr-state-" });
    const s = await createClaudeSession({
      script: SCRIPT,
      adapter: { bin: CLAUDE! },
      context: { stateDir, env: control.env },
    });
    control.forwardTo(s.adapter);
    try {
      await s.adapter.start();
      await s.adapter.deliver([message(10, "RUN-ECHO please")]);
      await s.rec.turnEnds(1);
      // Room for a loaded machine: Claude runs its SessionEnd hook as it leaves on its own.
      await s.adapter.stop({ timeoutMs: 15_000 });
      assert.ok(control.hooks.some((h) => h.event === "session-end"), "the SessionEnd hook ran");
      const insights = s.rec.of("insight");
      assert.equal(insights.length, 1);
      assert.equal(insights[0]?.signal, "context_ratio");
      assert.equal((insights[0]?.value as { totalToolCalls: number }).totalToolCalls, 1);
    } finally {
      await s.close();
      await Deno.remove(stateDir, { recursive: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Native HTTP hooks (`hookTransport: "http"`)

realTest(
  "native HTTP hooks: every event but SessionStart arrives over HTTP; the Stop block works",
  async () => {
    const secret = generateSecret();
    const hooks: { event: string; payload: Record<string, unknown>; agent: string }[] = [];
    const owed = [{ messageId: 7, from: "bob", body: "STOP-ME where is my answer?" }];
    let agent = "";
    const handler = createControlHandler({
      secret,
      callbacks: {
        status: () => ({
          agentId: "agent-1",
          provider: "claude",
          status: "busy",
          pid: Deno.pid,
          startedAt: Date.now(),
          outbox: { pending: 0, poisoned: 0 },
        }),
        setStatus: () => {},
        obligations: {
          get: () => owed.map((o) => ({ ...o, createdAt: "2026-11-27T12:00:00.000Z" })),
          refreshedAt: Date.now(),
        },
        deliveredThisTurn: () => [1],
        decidePermission: createPermissionDecider({ policy: "allow" }),
        onHook: (event, payload) => void hooks.push({ event, payload, agent }),
      },
    });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      agent = req.headers.get("user-agent") ?? "";
      return handler(req);
    });
    const stateDir = await Deno.makeTempDir({ prefix: "arr-state-" });
    const s = await createClaudeSession({
      script: touchScript(["by-http.txt"]),
      adapter: { bin: CLAUDE! },
      context: {
        stateDir,
        hookTransport: "http",
        env: {
          AGENT_RELAY_RUNNER_PORT: String(server.addr.port),
          AGENT_RELAY_RUNNER_SECRET: secret,
          AGENT_RELAY_RUNNER_PID: String(Deno.pid),
        },
      },
    });
    try {
      await s.adapter.start();
      const written = JSON.parse(
        await Deno.readTextFile(join(stateDir, PLUGIN_DIR_NAME, "hooks", "hooks.json")),
      );
      assert.equal(written.hooks.Stop[0].hooks[0].type, "http");
      assert.ok(
        !(await Deno.readTextFile(join(stateDir, PLUGIN_DIR_NAME, "hooks", "hooks.json")))
          .includes(secret),
        "the secret is not on disk",
      );
      await s.adapter.deliver([message(1, "TOUCH-by-http.txt")]);
      await s.rec.turnEnds(1);
      assert.ok(await exists(join(s.sandbox.cwd, "by-http.txt")), "allowed over HTTP");
      const by = (event: string) => hooks.filter((h) => h.event === event);
      assert.match(by("session-start")[0]?.agent ?? "", /^curl\//, "SessionStart: bash + curl");
      for (
        const event of [
          "user-prompt-submit",
          "pre-tool-use",
          "permission-request",
          "post-tool-use",
          "stop",
        ]
      ) {
        assert.ok(by(event).length >= 1, `${event} fired`);
        for (const h of by(event)) assert.doesNotMatch(h.agent, /^curl\//, `${event} over HTTP`);
      }
      // The Stop block for bob's message, answered over HTTP: Claude took another turn.
      assert.deepEqual(by("stop").map((h) => h.payload.stop_hook_active), [false, true]);
      // The block's reason reached the model as the next request's last text.
      const last = s.mock.messageRequests().at(-1)?.lastText ?? "";
      assert.match(last, /STOP-ME where is my answer\?/);
      assert.match(last, /bob/);
      assert.equal(s.rec.of("turn-end").length, 1);
    } finally {
      await s.close();
      await server.shutdown();
      handler.close();
      await Deno.remove(stateDir, { recursive: true });
    }
  },
);

/** A PING turn over HTTP hooks whose runner `mode` is refused or never answers: it must end. */
async function turnWithBrokenHooks(mode: "refused" | "hangs"): Promise<number> {
  const sandbox = await createClaudeSandbox({
    forwards: [{ port: MOCK_PORT_INSIDE, socket: MOCK_SOCKET }],
    // refused: nothing listens on the port inside the namespace.
    bridgeRunnerPort: mode === "hangs",
  });
  const releases: Array<() => void> = [];
  let requests = 0;
  let hang = true;
  const hanging = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    requests++;
    if (!hang) return Response.json({});
    return new Promise<Response>((resolve) => releases.push(() => resolve(Response.json({}))));
  });
  const stateDir = await Deno.makeTempDir({ prefix: "arr-state-" });
  const s = await createClaudeSession({
    script: SCRIPT,
    sandbox,
    adapter: { bin: CLAUDE! },
    context: {
      stateDir,
      hookTransport: "http",
      env: {
        AGENT_RELAY_RUNNER_PORT: String(hanging.addr.port),
        AGENT_RELAY_RUNNER_SECRET: generateSecret(),
        AGENT_RELAY_RUNNER_PID: String(Deno.pid),
      },
    },
  });
  try {
    await s.adapter.start();
    const started = performance.now();
    await s.adapter.deliver([message(1, "PING now")]);
    await s.rec.turnEnds(1, 60_000);
    const ms = performance.now() - started;
    assert.deepEqual(responses(s.rec), ["PONG from mock"]);
    if (mode === "hangs") assert.ok(requests >= 2, "the HTTP hooks reached the hanging server");
    else assert.equal(requests, 0);
    return ms;
  } finally {
    hang = false;
    for (const release of releases) release();
    await s.close();
    await hanging.shutdown();
    await sandbox.cleanup();
    await Deno.remove(stateDir, { recursive: true });
  }
}

realTest("native HTTP hooks: a refused connection never wedges the agent", async () => {
  await turnWithBrokenHooks("refused");
});

realTest(
  "native HTTP hooks: a runner that never answers costs the hook's timeout, no wedge",
  async () => {
    const ms = await turnWithBrokenHooks("hangs");
    // UserPromptSubmit and Stop each wait out their 5 s timeout (hooks.json), then Claude goes on.
    assert.ok(ms >= 5_000, `the turn took ${ms} ms`);
  },
);

Deno.test("writePlugin(http): HTTP hooks to the port with the secret's variable, SessionStart in bash", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const root = await writePlugin(dir, { transport: "http", port: 43123 });
    const text = await Deno.readTextFile(join(root, "hooks", "hooks.json"));
    assert.deepEqual(JSON.parse(text), hooksConfig("http", 43123));
    const config = JSON.parse(text);
    assert.deepEqual(Object.keys(config.hooks).sort(), Object.values(HOOK_EVENTS).sort());
    for (const [event, name] of Object.entries(HOOK_EVENTS)) {
      const [hook] = config.hooks[name][0].hooks;
      if (name === "SessionStart") {
        assert.deepEqual(hook, {
          type: "command",
          command: "${CLAUDE_PLUGIN_ROOT}/hooks/session-start.sh",
          timeout: 5,
        });
        continue;
      }
      assert.deepEqual(hook, {
        type: "http",
        url: `http://127.0.0.1:43123/hooks/${event}`,
        headers: { Authorization: "Bearer $AGENT_RELAY_RUNNER_SECRET" },
        allowedEnvVars: ["AGENT_RELAY_RUNNER_SECRET"],
        timeout: 5,
      });
    }
    // The scripts stay (SessionStart, and `--hooks bash` on the next start).
    assert.ok(await exists(join(root, "hooks", "session-start.sh")));
    // The bash transport writes the repository's file byte for byte.
    const bash = await writePlugin(dir);
    assert.equal(
      await Deno.readTextFile(join(bash, "hooks", "hooks.json")),
      await Deno.readTextFile(new URL("../../hooks/hooks/hooks.json", import.meta.url)),
    );
    assert.deepEqual(
      JSON.parse(await Deno.readTextFile(join(bash, "hooks", "hooks.json"))),
      hooksConfig("bash"),
    );
    for (const port of [undefined, 0, 65536, 1.5, NaN]) {
      await assert.rejects(
        writePlugin(dir, { transport: "http", ...(port === undefined ? {} : { port }) }),
        /The HTTP hook plugin needs the control port \(1 to 65535\)/,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
