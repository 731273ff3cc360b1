/**
 * The control server over a real port (src/control/server.ts): 127.0.0.1 only, whatever
 * `DENO_SERVE_ADDRESS` says, the secret required, and a port in use a clear error.
 */
import assert from "node:assert/strict";
import { MAX_BODY_BYTES, startControlServer } from "../../src/control/mod.ts";
import { fake, owed } from "./control_fake.ts";

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("over a real port: 127.0.0.1 only, secret required, hooks answered", async () => {
  const f = fake();
  f.obligations = [owed(5, "user", "ping")];
  const server = startControlServer({ port: 0, callbacks: f.callbacks });
  try {
    assert.match(server.secret, /^[0-9a-f]{64}$/);
    const base = `http://127.0.0.1:${server.port}`;
    const health = await fetch(`${base}/health`);
    assert.deepEqual(await health.json(), { ok: true, relay: { auth: "unknown" } });
    const denied = await fetch(`${base}/hooks/stop`, { method: "POST", body: "{}" });
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
    const res = await fetch(`${base}/hooks/stop`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.secret}` },
      body: JSON.stringify({ stop_hook_active: false }),
    });
    assert.equal((await res.json()).decision, "block");
    const big = await fetch(`${base}/hooks/stop`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.secret}` },
      body: new Uint8Array(MAX_BODY_BYTES + 10).fill(0x20),
    });
    assert.equal(big.status, 413);
    await big.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("over a real port: DENO_SERVE_ADDRESS cannot move or duplicate the listener", async () => {
  for (const override of ["tcp:127.0.0.2:{port}", "duplicate,tcp:127.0.0.1:{port}"]) {
    const port = freePort();
    Deno.env.set("DENO_SERVE_ADDRESS", override.replace("{port}", String(port)));
    const server = startControlServer({ port: 0, callbacks: fake().callbacks });
    try {
      assert.equal(Deno.env.get("DENO_SERVE_ADDRESS"), undefined);
      assert.notEqual(server.port, port);
      const health = await fetch(`http://127.0.0.1:${server.port}/health`);
      assert.deepEqual(await health.json(), { ok: true, relay: { auth: "unknown" } });
      await assert.rejects(
        fetch(`http://127.0.0.1:${port}/health`),
        "nothing listens on the override",
      );
    } finally {
      Deno.env.delete("DENO_SERVE_ADDRESS");
      await server.close();
    }
  }
});

Deno.test("over a real port: a port in use is a clear error, and nothing is left open", () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (listener.addr as Deno.NetAddr).port;
    assert.throws(
      () => startControlServer({ port, callbacks: fake().callbacks }),
      new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${port}`),
    );
  } finally {
    listener.close();
  }
});
