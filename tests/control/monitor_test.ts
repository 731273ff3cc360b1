/**
 * `GET /monitor` (src/control/monitor.ts): an upgrade only, and over a real port the hello,
 * published events and log entries.
 */
import assert from "node:assert/strict";
import { startControlServer } from "../../src/control/mod.ts";
import { waitFor } from "../support/wait.ts";
import { fake, get, handlerFor, withLogs } from "./control_fake.ts";

Deno.test("GET /monitor without a WebSocket upgrade answers 400", async () => {
  const res = await handlerFor(fake())(get("/monitor"));
  assert.equal(res.status, 400);
  assert.match((await res.json()).error, /WebSocket upgrade/);
});

Deno.test("over a real port: /monitor streams hello, published events and log entries", async () => {
  await withLogs(async () => {
    const f = fake();
    const server = startControlServer({ port: 0, callbacks: f.callbacks });
    const url = `ws://127.0.0.1:${server.port}/monitor`;
    try {
      const refused = await fetch(url.replace("ws:", "http:"), {
        headers: { upgrade: "websocket", connection: "upgrade" },
      });
      assert.equal(refused.status, 401);
      await refused.body?.cancel();

      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${server.secret}` } });
      const frames: Array<Record<string, unknown>> = [];
      const waiters: Array<() => void> = [];
      ws.onmessage = (e) => {
        frames.push(JSON.parse(e.data));
        waiters.splice(0).forEach((w) => w());
      };
      const until = async (test: () => boolean) => {
        while (!test()) await new Promise<void>((r) => waiters.push(r));
      };
      await until(() => frames.length >= 1);
      assert.equal(frames[0]!["type"], "hello");
      assert.equal((frames[0]!["status"] as Record<string, unknown>)["agentId"], "a1");
      assert.equal(server.handler.monitorClients, 1);

      server.publish({ type: "outbox", pending: 3, poisoned: 0 });
      await until(() => frames.some((fr) => fr["type"] === "outbox"));
      const outbox = frames.find((fr) => fr["type"] === "outbox")!;
      assert.equal(outbox["pending"], 3);
      assert.equal(typeof outbox["at"], "number");

      const fatal = await fetch(`http://127.0.0.1:${server.port}/hook-fatal`, {
        method: "POST",
        headers: { authorization: `Bearer ${server.secret}` },
        body: JSON.stringify({ hook: "pre-compact", error: "boom" }),
      });
      await fatal.body?.cancel();
      await until(() => frames.some((fr) => fr["type"] === "log" && fr["level"] === "fatal"));
      await until(() => frames.some((fr) => fr["type"] === "hook-fatal"));
      const log = frames.find((fr) => fr["type"] === "log" && fr["level"] === "fatal")!;
      assert.match(String(log["message"]), /hook pre-compact failed: boom/);

      const hook = await fetch(`http://127.0.0.1:${server.port}/hooks/session-start`, {
        method: "POST",
        headers: { authorization: `Bearer ${server.secret}` },
        body: "{}",
      });
      await hook.body?.cancel();
      await until(() => frames.some((fr) => fr["type"] === "hook"));
      const answered = frames.find((fr) => fr["type"] === "hook")!;
      assert.equal(answered["event"], "session-start");
      assert.equal(answered["status"], 200);
      assert.equal(typeof answered["ms"], "number");

      const closed = new Promise((r) => (ws.onclose = r));
      ws.close();
      await closed;
      await waitFor("the closed client to leave the monitor", () => {
        return server.handler.monitorClients === 0;
      });
    } finally {
      await server.close();
    }
  });
});
