/**
 * `attach` opens the runner's monitor before it says "attached" and takes typed lines: a fake
 * control server on loopback (the runner's `/status` and `/monitor`) whose monitor is slow to
 * say hello, as a loaded runner may be.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { attachCommand } from "../../src/cli/attach.ts";
import { withHome } from "../support/home.ts";

Deno.test("attach: 'attached' comes after the runner's monitor said hello, never before", async () => {
  await withHome("arr-attach-monitor-", async (home) => {
    const order: string[] = [];
    const closed = Promise.withResolvers<void>();
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      if (req.headers.get("authorization") !== "Bearer s3cret") {
        return new Response("{}", { status: 401 });
      }
      const url = new URL(req.url);
      if (url.pathname === "/status") {
        return Response.json({ agentId: "a", provider: "command", status: "idle" });
      }
      if (url.pathname === "/monitor") {
        const { socket, response } = Deno.upgradeWebSocket(req);
        socket.onopen = () => {
          // A runner slow to answer: the hello comes a moment after the connection.
          setTimeout(() => {
            order.push("hello");
            socket.send(JSON.stringify({ type: "hello", at: Date.now(), status: "idle" }));
          }, 300);
        };
        socket.onclose = () => closed.resolve();
        return response;
      }
      return new Response("{}", { status: 404 });
    });
    try {
      const stateDir = join(home, "state", "a");
      Deno.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      Deno.writeTextFileSync(
        join(stateDir, "runner-info.json"),
        JSON.stringify({
          pid: Deno.pid,
          agentId: "a",
          provider: "command",
          controlPort: server.addr.port,
        }),
      );
      Deno.writeTextFileSync(join(stateDir, "control-secret"), "s3cret\n", { mode: 0o600 });
      const detach = new AbortController();
      const lines: string[] = [];
      const code = await attachCommand(["--agent-id", "a"], {
        AGENT_RELAY_HOME: home,
        HOME: home,
      }, {
        stdout: (line) => {
          lines.push(line);
          if (/attached to a/.test(line)) {
            order.push("attached");
            detach.abort();
          }
        },
        stderr: () => {},
        stdin: new ReadableStream({ start: () => {} }),
        signal: detach.signal,
        colour: false,
      });
      assert.equal(code, 0, lines.join("\n"));
      assert.deepEqual(order, ["hello", "attached"]);
      await closed.promise;
    } finally {
      await server.shutdown();
    }
  });
});
