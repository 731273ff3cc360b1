/**
 * End to end with the real Claude Code CLI: the reference relay and the runner in this process
 * (on 127.0.0.1), Claude in a loopback-only network namespace (tests/support/claude_netns.ts)
 * talking to the mock Anthropic API, its hooks reaching the runner's control server through the
 * sandbox's bridge of `AGENT_RELAY_RUNNER_PORT`.
 *
 * Skipped, with a printed reason, only when the CLI is not installed
 * (`bash scripts/install_providers.sh claude`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createClaudeAdapter } from "../../src/adapters/claude.ts";
import { resolveRunConfig, type RunConfig } from "../../src/config/config.ts";
import { loadSession, saveSession } from "../../src/runner/session_store.ts";
import { type DevRelay, startDevRelay } from "../../src/dev_relay/mod.ts";
import { Runner } from "../../src/runner/runner.ts";
import type { Message } from "../../src/types.ts";
import {
  type ClaudeSandbox,
  createClaudeSandbox,
  installedClaude,
} from "../support/claude_netns.ts";
import { MOCK_PORT_INSIDE, MOCK_SOCKET } from "../support/claude_session.ts";
import {
  type MockAnthropic,
  type MockScript,
  startMockAnthropic,
} from "../support/mock_anthropic.ts";
import { cmdline } from "../support/process_tree.ts";
import { mirrorEntries, Poster } from "../support/relay_messages.ts";
import { waitFor } from "../support/wait.ts";

const CLAUDE = installedClaude();
const AGENT = "claude-e2e";

if (CLAUDE === undefined) {
  // deno-lint-ignore no-console
  console.log(
    "runner_claude_e2e_test: skipping: Claude Code is not installed in .tmp/providers/claude" +
      " (run: bash scripts/install_providers.sh claude)",
  );
}

const SCRIPT: MockScript = {
  rules: [
    { match: "STOP-ME", reply: [{ text: "Answering bob now." }] },
    // Answered once the test opens the gate (the runner has learnt of a message owed meanwhile).
    { match: "SLOW-PING", reply: [{ gate: "slow-ping" }, { text: "PONG from mock" }] },
    {
      match: "RUN-ECHO",
      reply: [
        { text: "Running it." },
        {
          tool_use: {
            name: "Bash",
            input: { command: "echo hello-from-tool", description: "echo" },
          },
        },
      ],
    },
    { match: "hello-from-tool", reply: [{ text: "The tool said hello." }] },
    { match: "PING", reply: [{ text: "PONG from mock" }] },
    {
      match: "MODEL-DOWN",
      reply: [{ error: { status: 500, type: "api_error", message: "mock outage" } }],
    },
  ],
  fallback: [{ text: "fallback reply" }],
};

interface World {
  relay: DevRelay;
  mock: MockAnthropic;
  sandbox: ClaudeSandbox;
  home: string;
  /** Starts a runner; `before` sees its config first (to seed the state dir). */
  startRunner(before?: (config: RunConfig) => void): Promise<Runner>;
  send(body: string, from?: string): Promise<Message>;
  messages(): Message[];
  close(): Promise<void>;
}

async function world(options: { env?: Record<string, string> } = {}): Promise<World> {
  const relay = await startDevRelay({});
  const sandbox = await createClaudeSandbox({
    forwards: [{ port: MOCK_PORT_INSIDE, socket: MOCK_SOCKET }],
    ...(options.env ? { env: options.env } : {}),
  });
  const mock = await startMockAnthropic(SCRIPT, { path: join(sandbox.sockets, MOCK_SOCKET) });
  const home = join(sandbox.root, "relay-home");
  const runners: Runner[] = [];
  const poster = new Poster(relay);
  return {
    relay,
    mock,
    sandbox,
    home,
    startRunner: async (before) => {
      const config = resolveRunConfig([
        "--agent-id",
        AGENT,
        "--provider",
        "claude",
        "--relay-url",
        relay.url,
        "--cwd",
        sandbox.cwd,
        "--permission-policy",
        "allow",
      ], { AGENT_RELAY_HOME: home, AGENT_RELAY_TOKEN: relay.token, HOME: home });
      before?.(config);
      const runner = new Runner(config, {
        spawn: sandbox.spawn,
        adapterFactory: (context, events) => createClaudeAdapter(context, events, { bin: CLAUDE! }),
        obligationsIntervalMs: 250,
        stopTimeoutMs: 5_000,
        restart: { stepMs: 50 },
      });
      runners.push(runner);
      await runner.start();
      return runner;
    },
    send: (body, from = "user") => poster.post(AGENT, body, { from }),
    messages: () => relay.admin.state().messages,
    close: async () => {
      for (const runner of runners) {
        await runner.stop(0);
        await runner.done;
      }
      await mock.close();
      await relay.close();
      await sandbox.cleanup();
    },
  };
}

/** The message ids in `runner`'s local reply-obligation snapshot (GET /reply-obligations). */
async function owedIds(runner: Runner): Promise<number[]> {
  const secret = (await Deno.readTextFile(join(runner.config.stateDir, "control-secret"))).trim();
  const res = await fetch(`http://127.0.0.1:${runner.controlPort}/reply-obligations`, {
    headers: { authorization: `Bearer ${secret}` },
  });
  if (!res.ok) {
    throw new Error(`GET /reply-obligations answered ${res.status}: ${await res.text()}`);
  }
  const body = await res.json() as { obligations: { messageId: number }[] };
  return body.obligations.map((o) => o.messageId);
}

function replyTo(w: World, id: number): Message | undefined {
  return w.messages().find((m) => m.from === AGENT && m.kind === "chat" && m.replyTo === id);
}

function sessionMirror(w: World) {
  return mirrorEntries(w.relay, (m) => m.from === AGENT);
}

/**
 * The host pid of the `unshare` process that wraps this runner's CLI: the provider pid that
 * `/status` shows. (Not the first such process under this one: `deno test --parallel` runs
 * other test files' Claude processes in this same process, and killing one broke their tests.)
 */
async function claudeWrapperPid(runner: Runner): Promise<number | undefined> {
  const secret = (await Deno.readTextFile(join(runner.config.stateDir, "control-secret"))).trim();
  const res = await fetch(`http://127.0.0.1:${runner.controlPort}/status`, {
    headers: { authorization: `Bearer ${secret}` },
  });
  // `pid` is the provider's, or the runner's own (this process) while no provider runs.
  const { pid } = await res.json() as { pid?: number };
  if (pid === undefined || pid === Deno.pid) return undefined;
  return pid;
}

Deno.test({
  name: "e2e claude: a chat message is answered on the relay; tool steps are mirrored once",
  ignore: CLAUDE === undefined,
  fn: async () => {
    const w = await world();
    try {
      const runner = await w.startRunner();
      const sent = await w.send("RUN-ECHO please");
      const reply = await waitFor("the reply", () => replyTo(w, sent.id));
      assert.equal(reply.body, "The tool said hello.");
      assert.equal(reply.to, "user");
      // The mock saw the message, marked with its id and sender.
      const prompt = w.mock.messageRequests()[0]?.lastText ?? "";
      assert.ok(prompt.includes(`[relay message #${sent.id} from user]\nRUN-ECHO please`), prompt);
      await waitFor("the mirror", () => sessionMirror(w).some((m) => m.kind === "tool_result"));
      const steps = sessionMirror(w).filter((m) => m.type === "step");
      assert.deepEqual(steps.filter((m) => m.kind === "tool_use").map((m) => m.body), [
        "Bash: echo hello-from-tool",
      ]);
      assert.deepEqual(steps.filter((m) => m.kind === "tool_result").map((m) => m.body), [
        "hello-from-tool",
      ]);
      // The final response is the reply, not mirrored again.
      assert.equal(
        w.messages().filter((m) => m.from === AGENT && m.body === "The tool said hello.").length,
        1,
      );
      // Session end (the runner stops Claude) → the context_ratio insight.
      await runner.stop(0);
      assert.equal(await runner.done, 0);
      const insight = w.relay.admin.state().insights.find((i) => i.signal === "context_ratio");
      assert.ok(insight, "context_ratio insight stored");
      const value = insight.value as {
        ratio: number;
        gatheringCalls: number;
        totalToolCalls: number;
      };
      assert.equal(value.ratio, 1);
      assert.equal(value.totalToolCalls, 1);
    } finally {
      await w.close();
    }
  },
});

Deno.test({
  name: "e2e claude: a provider crash restarts Claude, which resumes its session",
  ignore: CLAUDE === undefined,
  fn: async () => {
    const w = await world();
    try {
      const runner = await w.startRunner();
      const first = await w.send("PING remember-alpha");
      await waitFor("the first reply", () => replyTo(w, first.id));
      const wrapper = await claudeWrapperPid(runner);
      assert.ok(wrapper !== undefined, "found the CLI's process");
      const argv = cmdline(wrapper);
      assert.ok(argv?.[0]?.endsWith("unshare"), `pid ${wrapper} wraps the CLI: ${argv?.[0]}`);
      Deno.kill(wrapper, "SIGKILL");
      await waitFor(
        "the old process to go",
        async () => (await claudeWrapperPid(runner)) !== wrapper,
      );
      const second = await w.send("PING beta");
      const reply = await waitFor("the second reply", () => replyTo(w, second.id));
      assert.equal(reply.body, "PONG from mock");
      const last = w.mock.messageRequests().at(-1)?.body as { messages: unknown[] };
      const history = JSON.stringify(last.messages);
      assert.ok(history.includes("remember-alpha"), "the resumed session holds the first turn");
      // The first message was answered once and not delivered again.
      assert.equal(
        w.messages().filter((m) => m.from === AGENT && m.replyTo === first.id).length,
        1,
      );
    } finally {
      await w.close();
    }
  },
});

Deno.test({
  name: "e2e claude: a Stop block for a reply owed makes Claude answer it in the same session",
  ignore: CLAUDE === undefined,
  fn: async () => {
    const w = await world();
    try {
      const runner = await w.startRunner();
      const first = await w.send("SLOW-PING please");
      await waitFor("the first delivery", () => w.mock.messageRequests().length >= 1);
      // Arrives while Claude is busy: owed, not part of this turn. The model answers the first
      // message only once the runner's snapshot holds it (not after a delay that a loaded
      // machine could outrun), so the turn's Stop hook sees it.
      const owed = await w.send("STOP-ME where is my answer?", "bob");
      await waitFor(
        "the owed message in the runner's snapshot",
        async () => (await owedIds(runner)).includes(owed.id),
      );
      w.mock.open("slow-ping");
      const reply = await waitFor("the reply to the owed message", () => replyTo(w, owed.id));
      assert.equal(reply.body, "Answering bob now.");
      assert.equal(reply.to, "bob");
      const firstReply = await waitFor(
        "the reply to the first message",
        () => replyTo(w, first.id),
      );
      // Each sender gets its own answer: what Claude said before the block answers the first.
      assert.equal(firstReply.body, "PONG from mock");
      assert.equal(firstReply.to, "user");
      // The owed message reached Claude through the Stop hook's feedback, not as a new delivery.
      const feedback = w.mock.messageRequests().find((r) =>
        r.lastText?.includes("Stop hook feedback")
      );
      assert.ok(feedback, "Claude was told about the owed message");
      assert.ok(feedback.lastText?.includes("STOP-ME where is my answer?"));
      // A later message is answered by itself: the owed one was not queued again.
      const later = await w.send("PING gamma");
      await waitFor("the later reply", () => replyTo(w, later.id));
      const deliveries = w.mock.messageRequests().filter((r) =>
        r.lastText?.includes(`[relay message #${owed.id} from bob]`)
      );
      assert.equal(deliveries.length, 0, "the owed message was not delivered again");
      const laterPrompt = w.mock.messageRequests().at(-1)?.lastText ?? "";
      assert.ok(laterPrompt.includes(`[relay message #${later.id} from user]`), laterPrompt);
      // Each sender's message shows once as its prompt to the agent; the block's own feedback
      // text is no prompt.
      const prompts = mirrorEntries(w.relay, () => true).filter((e) => e.type === "prompt");
      assert.deepEqual(
        prompts.filter((e) => e.from === "bob").map((e) => e.body),
        ["STOP-ME where is my answer?"],
      );
      assert.equal(prompts.filter((e) => e.body.includes("Stop hook feedback")).length, 0);
    } finally {
      await w.close();
    }
  },
});

Deno.test({
  name: "e2e claude: a model answering 500 ends in one failure reply within the retry budget",
  ignore: CLAUDE === undefined,
  fn: async () => {
    // Two API retries per turn inside Claude, one turn retry in the runner: six requests.
    const w = await world({ env: { CLAUDE_CODE_MAX_RETRIES: "2" } });
    try {
      await w.startRunner();
      const sent = await w.send("MODEL-DOWN please");
      const reply = await waitFor("the failure reply", () => replyTo(w, sent.id), {
        timeoutMs: 120_000,
      });
      const payload = reply.payload as { status: string; error: string };
      assert.equal(payload.status, "failed");
      assert.match(payload.error, /500|mock outage/);
      assert.equal(reply.to, "user");
      const failed = w.mock.messageRequests().filter((r) => r.lastText?.includes("MODEL-DOWN"));
      assert.ok(failed.length >= 4, `${failed.length} model requests: the turn was retried`);
      // The agent is not wedged: the next message is answered.
      const next = await w.send("PING after the outage");
      const answer = await waitFor("the next answer", () => replyTo(w, next.id), {
        timeoutMs: 60_000,
      });
      assert.match(answer.body, /PONG from mock/);
    } finally {
      await w.close();
    }
  },
});

Deno.test({
  name: "e2e claude: a dead saved session id does not stop the agent: a new session starts",
  ignore: CLAUDE === undefined,
  fn: async () => {
    const w = await world();
    const dead = "0b6c3f0e-1111-4222-8333-444444444444";
    try {
      let stateDir = "";
      await w.startRunner((config) => {
        stateDir = config.stateDir;
        Deno.mkdirSync(stateDir, { recursive: true });
        saveSession(stateDir, "claude", dead);
      });
      const sent = await w.send("PING after a dead id");
      const reply = await waitFor("the reply", () => replyTo(w, sent.id));
      assert.equal(reply.body, "PONG from mock");
      const saved = loadSession(stateDir, "claude");
      assert.ok(saved !== undefined && saved !== dead, `the new session id is saved (${saved})`);
    } finally {
      await w.close();
    }
  },
});
