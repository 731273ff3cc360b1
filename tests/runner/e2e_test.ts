/**
 * End to end over real processes: the reference relay (in this process, on loopback), the runner
 * (a child process under the sandbox) and a `command` provider (the echo agent, or a bash agent).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import type { Message } from "../../src/types.ts";
import { bashAgent, ECHO } from "../support/agents.ts";
import { withHome } from "../support/home.ts";
import { markedRead, mirrored, Poster, replies } from "../support/relay_messages.ts";
import { startRunner } from "../support/runner_process.ts";
import { outboxRecords } from "../support/stores.ts";
import { waitFor } from "../support/wait.ts";

Deno.test("e2e: relay → runner → echo agent → reply on the relay, then SIGTERM stops cleanly", async () => {
  const relay = await startDevRelay({ port: 0 });
  try {
    await withHome("arr-e2e-", async (home) => {
      const runner = startRunner(relay, { agentId: "echo", home, providerArgs: [ECHO] });
      const info = await runner.info();
      assert.equal(info["agentId"], "echo");
      assert.equal(info["provider"], "command");
      assert.equal(typeof info["controlPort"], "number");
      const infoText = await Deno.readTextFile(join(home, "state", "echo", "runner-info.json"));
      assert.equal(infoText.includes(relay.token), false, "no secret in the info file");
      const health = await fetch(`http://127.0.0.1:${info["controlPort"]}/health`);
      const { ok, relay: relayView } = await health.json();
      assert.equal(ok, true);
      assert.ok(["ok", "unknown"].includes(relayView.auth), JSON.stringify(relayView));

      const sent = await new Poster(relay).post("echo", "hello runner");
      const [reply] = await waitFor("the reply", () => replies(relay).length > 0 && replies(relay));
      assert.equal(reply!.body, "echo: hello runner");
      assert.equal(reply!.replyTo, sent.id);
      assert.equal(reply!.from, "echo");
      await waitFor("mark-read", () => markedRead(relay, sent.id));
      await waitFor(
        "the obligation cleared",
        () => !relay.admin.state().obligations.some((o) => o.messageId === sent.id && !o.clearedAt),
      );
      const mirror = mirrored(relay);
      assert.ok(mirror.some((m) => m.body === "hello runner"), "the prompt echo is mirrored");

      assert.equal(await runner.stop(), 0);
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
  await withHome("arr-e2e-", async (home) => {
    const db = join(home, "relay.sqlite");
    let relay = await startDevRelay({ port: 0, dbPath: db });
    const port = relay.port;
    // Answers each message once the gate file exists: the test makes it after taking the relay
    // down, so the first reply is produced while the relay is down (with a 0.8 s pause instead,
    // a second's delay before the relay went down let the reply through first).
    const gate = join(home, "relay-is-down");
    const slow = bashAgent(
      `until [[ -e ${gate} ]]; do sleep 0.05; done; reply "done $id"`,
    );
    const runner = startRunner(relay, { agentId: "slow", home, providerArgs: slow });
    try {
      await runner.info();
      await waitFor("the bus", () => relay.admin.connections().some((c) => c.agentId === "slow"));
      const first = await new Poster(relay).post("slow", "one");
      await waitFor("busy", () => relay.admin.state().statuses.some((s) => s.status === "busy"));
      await relay.close(); // Down while the agent works on "one".
      await Deno.writeTextFile(gate, "");
      await waitFor(
        "the reply queued in the outbox while the relay is down",
        () =>
          outboxRecords(runner.outboxFile).some((r) =>
            JSON.stringify(r.payload).includes(`"replyTo":${first.id}`)
          ),
        { signal: runner.exited },
      );
      relay = await startDevRelay({ port, dbPath: db });
      const second = await new Poster(relay).post("slow", "two");
      await waitFor("both replies", () => replies(relay).length >= 2).catch(async (e) => {
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
      assert.equal(await runner.stop(), 0);
    } finally {
      await runner.stop();
      await relay.close();
    }
  });
});

Deno.test("e2e: kill -9 and a restart on the same state dir deliver every queued event exactly once", async () => {
  await withHome("arr-e2e-", async (home) => {
    const relay = await startDevRelay({ port: 0 });
    try {
      let runner = startRunner(relay, { agentId: "k9", home, providerArgs: [ECHO] });
      await runner.info();
      await waitFor("the bus", () => relay.admin.connections().some((c) => c.agentId === "k9"));
      const poster = new Poster(relay);
      const sent: Message[] = [];
      for (let i = 0; i < 5; i++) sent.push(await poster.post("k9", `m${i}`));
      // Then the relay refuses everything: replies and mirror events pile up in the outbox.
      await relay.admin.setFaults({ failStatus: 503 });
      await waitFor("every reply queued in the outbox", () => {
        const queued = outboxRecords(runner.outboxFile).map((r) => JSON.stringify(r.payload));
        return sent.every((m) => queued.some((p) => p.includes(`"replyTo":${m.id}`)));
      }, { signal: runner.exited });
      assert.equal(await runner.kill(), 137);
      assert.ok((await Deno.stat(runner.outboxFile)).size > 0);
      await relay.admin.clearFaults();
      runner = startRunner(relay, { agentId: "k9", home, providerArgs: [ECHO] });
      await waitFor("every reply", () => replies(relay).length >= 5).catch(async (e) => {
        // deno-lint-ignore no-console
        console.error(await runner.log());
        throw e;
      });
      // Every message read and nothing left to send: a duplicate would be on the relay by now.
      await waitFor("every mark-read", () => markedRead(relay, ...sent.map((m) => m.id)));
      await runner.settled();
      const got = replies(relay).map((m) => m.replyTo).sort((a, b) => a! - b!);
      assert.deepEqual(got, sent.map((m) => m.id));
      const bodies = mirrored(relay).map((m) => m.body);
      for (const m of sent) {
        assert.equal(bodies.filter((b) => b === m.body).length, 1, `one prompt echo of ${m.body}`);
      }
      assert.equal(await runner.stop(), 0);
    } finally {
      await relay.close();
    }
  });
});

Deno.test("e2e: a crash-looping provider gives up with exit 1", async () => {
  await withHome("arr-e2e-", async (home) => {
    const relay = await startDevRelay({ port: 0 });
    try {
      const runner = startRunner(relay, {
        agentId: "crashy",
        home,
        providerArgs: ["bash", "-c", "exit 3"],
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
