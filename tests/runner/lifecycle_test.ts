/**
 * The runner's lifecycle under trouble, over real processes: a provider that dies mid-turn, a
 * bus `restart` mid-turn, a graceful stop mid-turn, a backlog larger than one inbox page, a
 * provider trying to report a status that is the runner's own, and what the provider can see.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type DevRelay, startDevRelay } from "../../src/dev_relay/mod.ts";
import type { Message } from "../../src/types.ts";
import { bashAgent, ECHO } from "../support/agents.ts";
import { withHome } from "../support/home.ts";
import {
  markedRead,
  Poster,
  type PostOptions,
  replies,
  repliesTo,
} from "../support/relay_messages.ts";
import { type RunningRunner, startRunner } from "../support/runner_process.ts";
import { waitFor } from "../support/wait.ts";

/** A relay, a home and the runner generations started on them, for one agent. */
class World {
  runner: RunningRunner | undefined;
  readonly #poster: Poster;
  constructor(readonly relay: DevRelay, readonly home: string, readonly agentId: string) {
    this.#poster = new Poster(relay);
  }

  /** Starts a runner with `program` as its `command` provider, and waits for its info file. */
  async start(program: string[]): Promise<RunningRunner> {
    this.runner = startRunner(this.relay, {
      agentId: this.agentId,
      home: this.home,
      providerArgs: program,
    });
    await this.runner.info();
    return this.runner;
  }

  get stateDir(): string {
    return join(this.home, "state", this.agentId);
  }

  async onBus(): Promise<void> {
    await waitFor(
      "the runner on the bus",
      () => this.relay.admin.connections().some((c) => c.agentId === this.agentId),
    );
  }

  send(body: string, options: PostOptions = {}): Promise<Message> {
    return this.#poster.post(this.agentId, body, options);
  }

  repliesTo(id: number): Message[] {
    return repliesTo(this.relay, id).filter((m) => m.from === this.agentId);
  }

  busy(): boolean {
    return this.relay.admin.state().statuses.some((s) =>
      s.agentId === this.agentId && s.status === "busy"
    );
  }

  /** Waits until message `id` is marked read and the runner has nothing left to send. */
  async settled(id: number): Promise<void> {
    await waitFor("mark-read", () => markedRead(this.relay, id));
    await this.runner!.settled();
  }

  async stop(): Promise<number> {
    return (await this.runner?.stop()) ?? -1;
  }
}

async function world(agentId: string, fn: (w: World) => Promise<void>): Promise<void> {
  const relay = await startDevRelay({ port: 0, token: `relay-token-${crypto.randomUUID()}` });
  try {
    await withHome("arr-life-", async (home) => {
      const w = new World(relay, home, agentId);
      try {
        await fn(w);
      } finally {
        await w.stop();
      }
    });
  } finally {
    await relay.close();
  }
}

Deno.test("lifecycle: a provider that dies mid-turn is restarted and the message answered once", async () => {
  await world("flaky", async (w) => {
    // The first time it sees CRASH it dies before answering; the restarted one answers.
    const marker = join(w.home, "crashed");
    await w.start(bashAgent(
      `if [[ $body == CRASH* && ! -e ${marker} ]]; then touch ${marker}; exit 1; fi; reply "ok $body"`,
    ));
    await w.onBus();
    const m = await w.send("CRASH now");
    await waitFor("the reply after the restart", () => w.repliesTo(m.id).length > 0);
    await w.settled(m.id);
    assert.deepEqual(w.repliesTo(m.id).map((r) => r.body), ["ok CRASH now"]);
    assert.match(await w.runner!.log(), /restarting in 500 ms/);
    assert.equal(await w.stop(), 0);
  });
});

Deno.test("lifecycle: a bus restart mid-turn re-delivers the turn's message to the new provider", async () => {
  await world("restartee", async (w) => {
    // Each provider answers only once the test has seen the second one start (a gate file), so
    // the answer comes from the new provider, however slow the machine (a 1 s pause did not
    // make sure of that: a slower restart left the first provider time to answer).
    const gate = join(w.home, "restarted");
    const runner = await w.start(
      bashAgent(`until [[ -e ${gate} ]]; do sleep 0.05; done; reply "done $body"`),
    );
    await w.onBus();
    const m = await w.send("work");
    await waitFor("busy", () => w.busy());
    const result = await w.relay.admin.sendCommand(w.agentId, { type: "restart" }, {
      timeoutMs: 15_000,
    });
    assert.equal(result.ok, true, JSON.stringify(result));
    // The old provider is gone once the new one started; then the new one's turn ends.
    await waitFor(
      "the second provider",
      async () => (await runner.log()).match(/\] command started \(pid/g)?.length === 2,
    );
    await Deno.writeTextFile(gate, "");
    await waitFor("the reply", () => w.repliesTo(m.id).length > 0);
    await w.settled(m.id);
    assert.deepEqual(w.repliesTo(m.id).map((r) => r.body), ["done work"]);
  });
});

Deno.test("lifecycle: a graceful stop mid-turn leaves the message for the next start", async () => {
  await world("stopper", async (w) => {
    // Never answers (a fixed 3 s pause was outrun when the stop came later than that).
    await w.start(bashAgent(`while :; do sleep 0.05; done; reply "late $body"`));
    await w.onBus();
    const m = await w.send("long job");
    await waitFor("busy", () => w.busy());
    assert.equal(await w.stop(), 0);
    assert.equal(w.relay.admin.state().reads.some((r) => r.messageId === m.id), false);
    await w.start([ECHO]);
    await waitFor("the reply from the next start", () => w.repliesTo(m.id).length > 0);
    assert.deepEqual(w.repliesTo(m.id).map((r) => r.body), ["echo: long job"]);
    await waitFor("mark-read", () => markedRead(w.relay, m.id));
  });
});

Deno.test("lifecycle: a backlog larger than one inbox page is answered in full", async () => {
  await world("backlog", async (w) => {
    const sent: Message[] = [];
    for (let i = 0; i < 130; i++) sent.push(await w.send(`b${i}`));
    await w.start([ECHO]);
    await waitFor("130 replies", () => replies(w.relay).length >= 130, { timeoutMs: 60_000 });
    const answered = replies(w.relay).map((r) => r.replyTo!).sort((a, b) => a - b);
    assert.deepEqual(answered, sent.map((m) => m.id));
  });
});

Deno.test("lifecycle: providers cannot set offline, and do not see the relay token", async () => {
  await world("guarded", async (w) => {
    const runner = await w.start(
      bashAgent(`reply "token=\${AGENT_RELAY_TOKEN:-} port=\${AGENT_RELAY_RUNNER_PORT:+set}"`),
    );
    const info = await runner.info();
    await w.onBus();
    const secret = (await Deno.readTextFile(join(w.stateDir, "control-secret"))).trim();
    assert.equal((await Deno.stat(join(w.stateDir, "control-secret"))).mode! & 0o777, 0o600);
    const res = await fetch(`http://127.0.0.1:${info.controlPort}/status`, {
      method: "POST",
      headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
      body: JSON.stringify({ status: "offline" }),
    });
    await res.body?.cancel();
    const m = await w.send("hi");
    const [reply] = await waitFor(
      "the reply",
      () => w.repliesTo(m.id).length > 0 && w.repliesTo(m.id),
    );
    assert.equal(reply!.body, "token= port=set");
    const status = await fetch(`http://127.0.0.1:${info.controlPort}/status`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    const snapshot = await status.text();
    assert.equal(JSON.parse(snapshot).status, "idle");
    assert.equal(snapshot.includes(secret), false);
    assert.equal(snapshot.includes(w.relay.token), false);
  });
});

Deno.test("lifecycle: task claims follow the turn, and a hook's FATAL report reaches the relay", async () => {
  await world("tasker", async (w) => {
    // Reports a hook failure the way the hook plugin's ERR trap does, then answers.
    const runner = await w.start(bashAgent(
      `curl -fsS --max-time 2 -H "Authorization: Bearer $AGENT_RELAY_RUNNER_SECRET" ` +
        `-H 'content-type: application/json' -d '{"hook":"stop","error":"exit 7: false"}' ` +
        `"http://127.0.0.1:$AGENT_RELAY_RUNNER_PORT/hook-fatal" >/dev/null; reply "did $body"`,
    ));
    await w.onBus();
    const m = await w.send("job", { taskId: "t-42" });
    assert.equal(m.taskId, "t-42");
    await waitFor("the reply", () => w.repliesTo(m.id).length > 0);
    const statuses = await waitFor("the task done", () => {
      const s = w.relay.admin.state().taskStatuses.filter((t) => t.taskId === "t-42");
      return s.length >= 2 && s;
    });
    assert.deepEqual(statuses.map((s) => s.status), ["in_progress", "done"]);
    const fatal = await waitFor(
      "the hook_fatal insight",
      () => w.relay.admin.state().insights.find((i) => i.signal === "hook_fatal"),
    );
    assert.deepEqual(fatal.value, { hook: "stop", error: "exit 7: false" });
    assert.equal(fatal.agentId, w.agentId);
    assert.match(
      await runner.log(),
      /FATAL \[hook:stop\] exit 7: false|FATAL .*stop.*exit 7: false/,
    );
  });
});

Deno.test("lifecycle: a page of messages the runner never delivers does not hide a chat", async () => {
  await world("noisy", async (w) => {
    for (let i = 0; i < 100; i++) await w.send(`n${i}`, { from: "bot", kind: "note" });
    const chat = await w.send("the real one");
    await w.start([ECHO]);
    await waitFor("the chat answered", () => w.repliesTo(chat.id).length > 0, {
      timeoutMs: 30_000,
    });
    assert.deepEqual(w.repliesTo(chat.id).map((r) => r.body), ["echo: the real one"]);
  });
});
