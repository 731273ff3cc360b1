/**
 * A hostile relay, round 2: one 60 MB message in the unread page. The runner (the real program
 * under its sandbox) must neither run out of memory nor trip on it again: it reads relay answers
 * through a byte limit, refuses that one message with a failure reply to its sender, marks it
 * read, and goes on with the next. Peak RSS is read from /proc. And a relay that serves message
 * ids that are not positive safe integers, in its unread pages and on its bus: never delivered.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ECHO, lines, streamAgent } from "../support/agents.ts";
import { withHome } from "../support/home.ts";
import { startRunner } from "../support/runner_process.ts";
import { waitFor } from "../support/wait.ts";
import { rawMessage, startFakeRelay } from "./support/fake_relay.ts";

const HUGE = 60 * 1024 * 1024;
const AGENT = "victim";

interface Posted {
  path: string;
  body: unknown;
}

/** A relay that serves one huge message, then a normal one, and records what the runner posts. */
function hostileRelay() {
  const posted: Posted[] = [];
  let hugeRead = false;
  const message = (id: number, body: string) => ({
    id,
    from: id === 7 ? "mallory" : "bob",
    to: AGENT,
    kind: "chat",
    body,
    createdAt: new Date(0).toISOString(),
  });
  const hugePage = () => {
    const head = new TextEncoder().encode(
      `{"messages":[{"id":7,"from":"mallory","to":"${AGENT}","kind":"chat","body":"`,
    );
    const tail = new TextEncoder().encode(`","createdAt":"1970-01-01T00:00:00.000Z"}]}`);
    const chunk = new Uint8Array(64 * 1024).fill(0x41);
    let sent = 0;
    return new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(head);
      },
      pull(controller) {
        if (sent >= HUGE) {
          controller.enqueue(tail);
          controller.close();
          return;
        }
        controller.enqueue(chunk);
        sent += chunk.length;
      },
    });
  };
  const json = (status: number, body: unknown) => Response.json(body, { status });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const path = url.pathname;
    if (req.method === "GET" && path === "/api/messages") {
      const after = Number(url.searchParams.get("after") ?? "0");
      if (!hugeRead && after < 7) return new Response(hugePage());
      return json(200, { messages: after < 8 ? [message(8, "after the huge one")] : [] });
    }
    if (req.method === "GET" && path.endsWith("/reply-obligations")) {
      return json(200, { obligations: [] });
    }
    if (path === "/health") return json(200, { ok: true });
    if (req.method === "POST") {
      const body = await req.json().catch(() => null);
      posted.push({ path, body });
      if (path === "/api/messages/7/read") hugeRead = true;
      if (path === "/api/batch") {
        const items = (body as { items: Array<{ type: string; messageId?: number }> }).items;
        for (const item of items) {
          if (item.type === "mark-read" && item.messageId === 7) hugeRead = true;
          posted.push({ path: `batch:${item.type}`, body: item });
        }
        return json(200, { results: items.map(() => ({ status: 200 })) });
      }
      return json(path === "/api/messages" ? 201 : 200, { ok: true, message: message(99, "") });
    }
    return json(404, { error: "no such route" });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    posted,
    close: () => server.shutdown(),
  };
}

/** The peak resident set of `pid`, in MiB (VmHWM). */
function peakRssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? "0");
  return kb / 1024;
}

Deno.test("hostile relay: a 60 MB message is refused with a failure reply; RSS stays under 256 MiB", async () => {
  await withHome("arr-hostile-", async (home) => {
    const relay = hostileRelay();
    try {
      const runner = startRunner({ url: relay.url, token: "t" }, {
        agentId: AGENT,
        home,
        providerArgs: [ECHO],
        logLevel: "info",
      });
      await runner.info();
      const failure = await waitFor("the failure reply to mallory", () => {
        const found = relay.posted.find((p) => {
          const body = (p.path === "batch:message" ? (p.body as { body: unknown }).body : p.body) as
            | { to?: string; replyTo?: number }
            | null;
          return body?.to === "mallory" && body.replyTo === 7;
        });
        return found;
      }, { signal: runner.exited, timeoutMs: 60_000 });
      const reply = (failure.path === "batch:message"
        ? (failure.body as { body: unknown }).body
        : failure.body) as { payload: { status: string; error: string } };
      assert.equal(reply.payload.status, "failed");
      assert.match(reply.payload.error, /too large to deliver/);
      // The next message is delivered and answered as usual.
      await waitFor("the answer to #8", () =>
        relay.posted.some((p) => {
          const body = (p.path === "batch:message" ? (p.body as { body: unknown }).body : p.body) as
            | { replyTo?: number; body?: string }
            | null;
          return body?.replyTo === 8 && body.body === "echo: after the huge one";
        }), { signal: runner.exited, timeoutMs: 30_000 });
      const peak = peakRssMiB(runner.child.pid);
      // deno-lint-ignore no-console
      console.log(`  figure: peak RSS (VmHWM) ${peak.toFixed(1)} MiB under a 60 MB message`);
      assert.ok(peak < 256, `peak RSS ${peak.toFixed(0)} MiB`);
      assert.match(await runner.log(), /message #7 from mallory refused: the message is too large/);
      assert.equal(await runner.stop(), 0);
    } finally {
      await relay.close();
    }
  });
});

Deno.test("hostile relay: poll and bus messages with ids -5, 1e308, 1.5 are never delivered, answered or marked read", async () => {
  await withHome("arr-hostile-", async (home) => {
    const relay = startFakeRelay();
    const bad = [-5, 1e308, 1.5, 0, 2 ** 53];
    for (const id of bad) relay.addUnread(rawMessage(id, { to: AGENT, body: `bad ${id}` }));
    relay.addUnread(rawMessage(3, { to: AGENT, body: "good poll" }));
    try {
      const runner = startRunner(relay, {
        agentId: AGENT,
        home,
        cwd: home,
        providerArgs: streamAgent(),
      });
      await waitFor("the answer to #3 (the poll)", () => relay.repliesTo(3).length > 0, {
        signal: runner.exited,
      });
      await waitFor("the bus connection", () => relay.busSockets() > 0, { signal: runner.exited });
      // The bad ones first, then a good one on the same socket: once #4 is answered, the
      // frames before it were handled.
      for (const id of ["-5", "1e308", "1.5", "0", "9007199254740992", '"6"']) {
        relay.push(
          `{"type":"message.new","message":{"id":${id},"from":"bob","to":"${AGENT}","kind":"chat","body":"bad bus ${id}","createdAt":"${
            new Date().toISOString()
          }"}}`,
        );
      }
      relay.push({ type: "message.new", message: rawMessage(4, { to: AGENT, body: "good bus" }) });
      await waitFor("the answer to #4 (the bus)", () => relay.repliesTo(4).length > 0, {
        signal: runner.exited,
      });
      await runner.settled();
      assert.deepEqual(
        await lines(home, "received.txt"),
        ["3", "4"],
        "only the good ids delivered",
      );
      for (const id of [...bad, 6, "6"]) {
        assert.deepEqual(relay.repliesTo(id), [], `no reply to ${id}`);
        assert.ok(!relay.reads.has(id), `${id} not marked read`);
      }
      const log = await runner.log();
      assert.match(log, /skipped a malformed message in the unread list/);
      assert.match(log, /bus message\.new ignored: malformed message/);
      assert.equal(await runner.stop(), 0);
    } finally {
      await relay.close();
    }
  });
});
