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
import { startControlServer } from "../../src/control/mod.ts";
import { createPermissionDecider } from "../../src/control/permission_policy.ts";
import { PLUGIN_DIR_NAME } from "../../src/adapters/claude_plugin.ts";
import type { ProviderAdapter } from "../../src/adapters/adapter.ts";
import { createClaudeSession, message } from "../support/claude_session.ts";
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
        const prompts = s.rec.of("prompt").map((e) => e.text);
        assert.equal(prompts.length, 1);
        assert.match(prompts[0] ?? "", /^Stop hook feedback:/);
        assert.match(prompts[0] ?? "", /STOP-ME where is my answer\?/);
        assert.match(prompts[0] ?? "", /bob/);
        // The first answer became a step; the answer to the owed message is the response.
        assert.deepEqual(
          s.rec.of("step").filter((e) => e.kind === "text").map((e) => e.text),
          ["PONG from mock"],
        );
        assert.deepEqual(responses(s.rec), ["Answering bob now."]);
        assert.equal(s.rec.of("turn-end").length, 1);
        assert.ok(control.hooks.some((h) => h.event === "session-start"));
        assert.ok(control.hooks.some((h) => h.event === "user-prompt-submit"));
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
      await s.adapter.stop({ timeoutMs: 5000 });
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
