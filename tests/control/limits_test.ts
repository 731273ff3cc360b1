/**
 * The control server's limits on slow and excess requests (issue 16): a body that does not
 * arrive within the deadline answers 408, more requests in flight than the cap answer 503, and
 * 200 half-sent requests over a real port leave a real hook (bash + curl) answered meanwhile.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createControlHandler, startControlServer } from "../../src/control/mod.ts";
import { writePlugin } from "../../src/adapters/claude_plugin.ts";
import type { PermissionDecision } from "../../src/types.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { waitFor } from "../support/wait.ts";
import { AUTH, fake, get, post, SECRET } from "./control_fake.ts";
import { closeAll, openHalfSent, serverConnections } from "./half_sent.ts";

/** A body stream that sends `text` and then never ends. */
function stalled(text: string): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(text));
    },
  });
}

Deno.test("a body that does not arrive within the deadline answers 408; nothing reaches the runner", async () => {
  const clock = new FakeClock();
  const f = fake();
  const h = createControlHandler({ secret: SECRET, callbacks: f.callbacks, clock });
  for (const path of ["/hooks/stop", "/status", "/hook-fatal"]) {
    const answering = h(post(path, stalled('{"stop_hook_active":')));
    await waitFor("the body's deadline to be armed", () => clock.pending === 1);
    clock.tick(1_999);
    assert.equal(h.inFlight, 1, `${path}: still reading at 1,999 ms`);
    clock.tick(1);
    const res = await answering;
    assert.equal(res.status, 408, path);
    assert.match((await res.json()).error, /The body did not arrive within 2000 ms/);
    assert.equal(h.inFlight, 0);
  }
  assert.deepEqual(f.hooks, []);
  assert.deepEqual(f.statuses, []);
  assert.deepEqual(f.fatals, []);
  const metrics = await (await h(get("/metrics"))).text();
  assert.match(metrics, /^agent_relay_runner_control_body_timeouts_total 3$/m);
});

Deno.test("more requests in flight than the cap answer 503 at once, and the cap frees up", async () => {
  const releases: Array<() => void> = [];
  const f = fake({
    decidePermission: () =>
      new Promise<PermissionDecision>((resolve) => {
        releases.push(() => resolve({ decision: "allow" }));
      }),
  });
  const h = createControlHandler({
    secret: SECRET,
    callbacks: f.callbacks,
    maxInFlight: 2,
    hookBudgetMs: 60_000,
  });
  const waiting = [
    h(post("/hooks/permission-request", { tool_name: "Bash" })),
    h(post("/hooks/permission-request", { tool_name: "Edit" })),
  ];
  await waitFor("two permission questions", () => releases.length === 2);
  const busy = await h(post("/hooks/stop", { stop_hook_active: true }));
  assert.equal(busy.status, 503);
  assert.equal(busy.headers.get("retry-after"), "1");
  assert.match((await busy.json()).error, /answering 2 requests already/);
  const open = await h(get("/health", {}));
  assert.equal(open.status, 503, "the cap counts every request");
  await open.body?.cancel();
  for (const release of releases) release();
  for (const res of await Promise.all(waiting)) {
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
  const after = await h(post("/hooks/stop", { stop_hook_active: true }));
  assert.equal(after.status, 200);
  assert.deepEqual(await after.json(), {});
  const metrics = await (await h(get("/metrics", AUTH))).text();
  assert.match(metrics, /^agent_relay_runner_control_busy_total 2$/m);
});

/** Reads from `conn` until the status line is in; "" when the server closed first. */
async function statusLine(conn: Deno.TcpConn): Promise<string> {
  const buffer = new Uint8Array(512);
  let text = "";
  while (!text.includes("\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return text.split("\r\n")[0] ?? "";
}

Deno.test("200 half-sent requests: a real hook is answered meanwhile, stalled bodies get 408", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "limits-test-" });
  const f = fake();
  const server = startControlServer({
    port: 0,
    callbacks: f.callbacks,
    bodyTimeoutMs: 500,
  });
  const conns: Deno.TcpConn[] = [];
  try {
    const root = await writePlugin(stateDir);
    conns.push(...await openHalfSent(server.port, 100, { kind: "headers" }));
    conns.push(...await openHalfSent(server.port, 100, { kind: "body-unauthenticated" }));
    const bodies = await openHalfSent(server.port, 20, { kind: "body", secret: server.secret });
    conns.push(...bodies);
    await waitFor("every connection accepted", () => serverConnections(server.port) >= 220);
    // A real Stop hook (bash + curl) while they all hang: answered, and correctly.
    for (let i = 0; i < 5; i++) {
      const child = new Deno.Command("bash", {
        args: [join(root, "hooks", "stop.sh")],
        clearEnv: true,
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          AGENT_RELAY_RUNNER_PORT: String(server.port),
          AGENT_RELAY_RUNNER_SECRET: server.secret,
          AGENT_RELAY_RUNNER_PID: String(Deno.pid),
        },
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode('{"stop_hook_active":true}'));
      await writer.close();
      const out = await child.output();
      assert.equal(out.code, 0);
      assert.equal(new TextDecoder().decode(out.stdout), "{}");
      assert.equal(new TextDecoder().decode(out.stderr), "");
    }
    assert.equal(f.hooks.filter((h) => h.event === "stop").length, 5);
    // Each authenticated stalled body gets its 408; the unauthenticated ones their 401.
    for (const conn of bodies) assert.equal(await statusLine(conn), "HTTP/1.1 408 Request Timeout");
    assert.equal(await statusLine(conns[100]!), "HTTP/1.1 401 Unauthorized");
    await waitFor("nothing in flight", () => server.handler.inFlight === 0);
  } finally {
    closeAll(conns);
    await server.close();
    await Deno.remove(stateDir, { recursive: true });
  }
});
