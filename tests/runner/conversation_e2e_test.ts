/**
 * The conversation promises through the real program (`main.ts run` under its sandbox, the
 * reference relay, real agent processes): every message ends answered or failed, exactly once,
 * with receipts; operator interrupts never make the runner give up; two agents cannot talk
 * forever; a relay that lists mirror messages as unread does not delay real ones.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import type { Message } from "../../src/types.ts";
import { bashAgent, ECHO } from "../support/agents.ts";
import { withHome } from "../support/home.ts";
import { markedRead, Poster, repliesTo } from "../support/relay_messages.ts";
import { startRunner } from "../support/runner_process.ts";
import { waitFor } from "../support/wait.ts";

/** An agent that reports every turn as failed (`status: error`). */
const FAILING = bashAgent(
  `echo '{"type":"status","status":"busy"}'; echo '{"type":"status","status":"error"}'`,
);

async function receiptStates(relayUrl: string, token: string, id: number): Promise<string[]> {
  const res = await fetch(`${relayUrl}/api/messages/${id}/receipts`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    return [];
  }
  const { receipts } = await res.json() as { receipts: Array<{ state: string }> };
  return receipts.map((r) => r.state);
}

Deno.test("conversation: a turn that keeps failing ends in one failure reply, with receipts", async () => {
  await withHome("arr-conv-", async (home) => {
    const relay = await startDevRelay({ port: 0 });
    try {
      const runner = startRunner(relay, {
        agentId: "failing",
        home,
        providerArgs: FAILING,
        extraArgs: ["--turn-retries", "1"],
      });
      await runner.info();
      const sent = await new Poster(relay).post("failing", "please work");
      const [reply] = await waitFor(
        "the failure reply",
        () => repliesTo(relay, sent.id).length > 0 && repliesTo(relay, sent.id),
        { signal: runner.exited, timeoutMs: 30_000 },
      );
      assert.deepEqual(reply!.payload, {
        status: "failed",
        error: "The program reported an error.",
      });
      assert.match(reply!.body, /could not answer message \d+: The program reported an error/);
      await waitFor("the mark-read", () => markedRead(relay, sent.id));
      await runner.drained();
      assert.equal(repliesTo(relay, sent.id).length, 1, "exactly one answer");
      const states = await receiptStates(relay.url, relay.token, sent.id);
      // The relay keeps one receipt per state: received, handed (twice: the try and the retry),
      // failed.
      assert.deepEqual(states, ["received", "handed", "failed"]);
      assert.match(await runner.log(), /1 message\(s\) will be delivered again/, "retried once");
      assert.equal(await runner.stop(), 0);
    } finally {
      await relay.close();
    }
  });
});

/** An agent that works on each message for a long time; a SIGINT ends it (bash's `wait`). */
const SLOW = bashAgent(
  `trap 'kill $! 2>/dev/null; exit 130' INT; sleep 30 & wait $!; reply "done"`,
);

Deno.test("conversation: 8 operator interrupts leave the runner up, each turn failed once", async () => {
  await withHome("arr-conv-", async (home) => {
    const relay = await startDevRelay({ port: 0 });
    try {
      const runner = startRunner(relay, { agentId: "calm", home, providerArgs: SLOW });
      await runner.info();
      await waitFor("the bus", () => relay.admin.connections().some((c) => c.agentId === "calm"));
      const poster = new Poster(relay);
      for (let i = 0; i < 8; i++) {
        // The interrupt ends the slow agent mid-turn: an exit the runner itself caused.
        const before = (await runner.status())["pid"];
        const sent = await poster.post("calm", `work ${i}`);
        await waitFor("busy", async () => (await runner.status()).status === "busy", {
          signal: runner.exited,
        });
        const result = await relay.admin.sendCommand("calm", { type: "interrupt" });
        assert.equal(result.ok, true, JSON.stringify(result));
        const [reply] = await waitFor(
          "the failure reply",
          () => repliesTo(relay, sent.id).length > 0 && repliesTo(relay, sent.id),
          { signal: runner.exited },
        );
        assert.deepEqual(reply!.payload, {
          status: "failed",
          error: "The turn was interrupted by an operator.",
        });
        await waitFor("a new provider, idle", async () => {
          const status = await runner.status();
          return status.status === "idle" && status["pid"] !== before;
        }, { signal: runner.exited });
      }
      assert.doesNotMatch(await runner.log(), /exited unexpectedly|giving up/);
      assert.equal(await runner.stop(), 0);
    } finally {
      await relay.close();
    }
  });
});

Deno.test("conversation: two echo agents exchange a handful of messages after one, not thousands", async () => {
  await withHome("arr-conv-", async (home) => {
    const relay = await startDevRelay({ port: 0 });
    try {
      const a = startRunner(relay, { agentId: "ping", home, providerArgs: [ECHO] });
      const b = startRunner(relay, { agentId: "pong", home, providerArgs: [ECHO] });
      await Promise.all([a.info(), b.info()]);
      // ping's user-less message to pong: pong answers, ping is shown the answer, and stops.
      const first = await new Poster(relay).post("pong", "hello", { from: "ping" });
      await waitFor("pong's answer", () => repliesTo(relay, first.id).length > 0);
      await waitFor("ping read it", () => {
        const answer = repliesTo(relay, first.id)[0]!;
        return markedRead(relay, answer.id);
      }, { timeoutMs: 30_000 });
      await Promise.all([a.settled(), b.settled()]);
      const chats = relay.admin.state().messages.filter((m: Message) => m.kind === "chat");
      assert.ok(chats.length <= 3, `${chats.length} chat messages: ${JSON.stringify(chats)}`);
      assert.equal(await a.stop(), 0);
      assert.equal(await b.stop(), 0);
    } finally {
      await relay.close();
    }
  });
});

Deno.test("conversation: a relay that lists mirror messages as unread does not delay real ones", async () => {
  await withHome("arr-conv-", async (home) => {
    const relay = await startDevRelay({ port: 0, faults: { sessionUnread: true } });
    try {
      const poster = new Poster(relay);
      // A full page and more of mirror traffic first, then a real message.
      for (let i = 0; i < 150; i++) {
        await poster.post("busy", `mirror ${i}`, { kind: "session", from: "busy" });
      }
      const real = await poster.post("busy", "the real one");
      const started = Date.now();
      const runner = startRunner(relay, { agentId: "busy", home, providerArgs: [ECHO] });
      await waitFor("the answer", () => repliesTo(relay, real.id).length > 0, {
        signal: runner.exited,
      });
      const tookMs = Date.now() - started;
      // Paging reads past the mirror pages at start: no 5 s retry loop in between.
      assert.ok(
        !/inbox poll: 100 unread message\(s\) in 1 page\(s\), 0 new/.test(await runner.log()),
        "the first poll paged on instead of stopping at a page of nothing new",
      );
      assert.ok(tookMs < 60_000);
      assert.equal(await runner.stop(), 0);
    } finally {
      await relay.close();
    }
  });
});
