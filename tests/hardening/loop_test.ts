/**
 * Round 2 (issue 16), looping peers, through the real program (`main.ts run` under its sandbox,
 * the reference relay, real agent processes):
 *
 * - two echo agents, one message between them: the runner replies only to messages that owe one,
 *   so the exchange ends after a handful of relay messages (before the fix: 2,520 in 20 s);
 * - a peer that answers every reply with a new message (it owes a reply each time): the per-peer
 *   guard holds the replies past 30 round trips a minute and reports `loop_suspected` once.
 *
 * The counts are in docs/reliability.md ("Round 2").
 *
 * @module
 */
import assert from "node:assert/strict";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import type { Message } from "../../src/types.ts";
import { ECHO } from "../support/agents.ts";
import { withHome } from "../support/home.ts";
import { markedRead, Poster, repliesTo } from "../support/relay_messages.ts";
import { startRunner } from "../support/runner_process.ts";
import { waitFor } from "../support/wait.ts";

// deno-lint-ignore no-console
const report = (line: string) => console.log(`  figure: ${line}`);

Deno.test("loop: two echo agents, one message: a handful of relay messages in all, then quiet", async () => {
  await withHome("arr-loop-", async (home) => {
    const relay = await startDevRelay({ port: 0 });
    try {
      const a = startRunner(relay, { agentId: "ping", home, providerArgs: [ECHO] });
      const b = startRunner(relay, { agentId: "pong", home, providerArgs: [ECHO] });
      await Promise.all([a.info(), b.info()]);
      const before = relay.admin.state().messages.length;
      // One message from ping (as if its agent had sent it) to pong.
      const first = await new Poster(relay).post("pong", "hello", { from: "ping" });
      await waitFor("pong's answer", () => repliesTo(relay, first.id).length > 0, {
        signal: b.exited,
      });
      const answer = repliesTo(relay, first.id)[0]!;
      await waitFor("ping read pong's answer", () => markedRead(relay, answer.id), {
        signal: a.exited,
        timeoutMs: 30_000,
      });
      await Promise.all([a.settled(), b.settled()]);
      const after = relay.admin.state().messages.slice(before);
      const chats = after.filter((m: Message) => m.kind === "chat");
      const kinds = after.map((m: Message) =>
        `${m.from}->${m.to} ${m.kind}${m.replyTo ? ` re #${m.replyTo}` : ""}`
      );
      report(`two echo agents: ${after.length} relay messages after one: ${kinds.join(", ")}`);
      assert.equal(chats.length, 2, `the message and its one answer: ${kinds.join(", ")}`);
      assert.ok(after.length <= 8, `${after.length} relay messages: ${kinds.join(", ")}`);
      // ping's answer to the reply went to its mirror only: no chat back to pong.
      assert.deepEqual(repliesTo(relay, answer.id), []);
      assert.equal(await a.stop(), 0);
      assert.equal(await b.stop(), 0);
      // Still quiet after both stopped: the count did not move while they settled and stopped.
      const chatsAtEnd = relay.admin.state().messages.slice(before).filter((m) =>
        m.kind === "chat"
      );
      assert.equal(chatsAtEnd.length, 2);
    } finally {
      await relay.close();
    }
  });
});

Deno.test("loop: a peer that answers every reply with a new message is held after 30 round trips a minute, loop_suspected once", async () => {
  await withHome("arr-loop-", async (home) => {
    const relay = await startDevRelay({ port: 0 });
    try {
      const victim = startRunner(relay, {
        agentId: "victim",
        home,
        providerArgs: [ECHO],
        logLevel: "info",
      });
      await victim.info();
      const poster = new Poster(relay);
      const suspected = () =>
        relay.admin.state().insights.filter((i) => i.signal === "loop_suspected");
      let sent = 0;
      let held: Message | undefined;
      // The bouncer: each time the victim answers, a new message that owes a reply.
      for (let round = 0; round < 45 && held === undefined; round++) {
        const message = await poster.post("victim", `round ${round}`, { from: "mallory" });
        sent++;
        const outcome = await waitFor(
          `the answer to round ${round}, or the guard`,
          () =>
            repliesTo(relay, message.id).length > 0
              ? "answered"
              : suspected().length > 0
              ? "held"
              : undefined,
          { signal: victim.exited },
        );
        if (outcome === "held") held = message;
      }
      assert.ok(held, `the guard never held a reply in ${sent} round trips`);
      const answered = relay.admin.state().messages.filter((m) =>
        m.kind === "chat" && m.from === "victim" && m.to === "mallory"
      );
      report(`bouncing peer: held after ${answered.length} replies (${sent} messages sent)`);
      assert.equal(answered.length, 30, "30 round trips a minute, then held");
      assert.equal(suspected().length, 1);
      assert.deepEqual(
        (suspected()[0]!.value as { peer: string }).peer,
        "mallory",
      );
      assert.deepEqual(repliesTo(relay, held.id), [], "the held reply is not sent");
      assert.ok(!markedRead(relay, held.id), "the held message stays unread");
      assert.match(await victim.log(), /loop suspected: over 30 replies a minute to mallory/);
      assert.equal(await victim.stop(), 0);
    } finally {
      await relay.close();
    }
  });
});
