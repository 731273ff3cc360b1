/**
 * Round 2 (issue 16), the control server of the real program (`main.ts run` under its sandbox,
 * `--provider claude` on the scripted Claude stand-in, so the hook endpoints answer), over its
 * real port:
 *
 * - methods named like `Object` members (`constructor`, `toString`, `hasOwnProperty`,
 *   `__proto__`...) on every route, with and without the secret: 405 (or 401), never a 5xx;
 * - 200 idle half-sent requests (half a header block, half a body with and without the secret)
 *   held open while the real bash + curl Stop hook keeps answering: the connection count and the
 *   hook latency against an unloaded baseline are printed as figures (docs/reliability.md).
 *
 * @module
 */
import assert from "node:assert/strict";
import { waitFor } from "../support/wait.ts";
import { closeAll, openHalfSent, serverConnections } from "../control/half_sent.ts";
import {
  hookEnv,
  latencyFigures,
  OBJECT_MEMBER_METHODS,
  rawRequest,
  ROUTES,
  runHook,
  withFakeClaude,
} from "./support/round2.ts";

// deno-lint-ignore no-console
const report = (line: string) => console.log(`  figure: ${line}`);

Deno.test("control server: methods named like Object members answer 405 (401 without the secret) on every route, never 5xx", async () => {
  await withFakeClaude("arr-control-", async ({ start }) => {
    const runner = start({ agentId: "ctl" });
    const { port, secret } = await runner.control();
    const seen = new Map<number, number>();
    for (const method of OBJECT_MEMBER_METHODS) {
      for (const path of ROUTES) {
        const authed = await rawRequest(port, method, path, secret);
        seen.set(authed.status, (seen.get(authed.status) ?? 0) + 1);
        assert.equal(authed.status, 405, `${method} ${path}: ${authed.text}`);
        assert.match(authed.text, /\r\nallow: /i, `${method} ${path}: an Allow header`);
        assert.match(authed.text, /"error":/, `${method} ${path}: a JSON error`);
        const anon = await rawRequest(port, method, path);
        assert.ok(
          anon.status === 401 || anon.status === 405,
          `${method} ${path} without the secret: ${anon.text}`,
        );
      }
    }
    // The runner is up and unharmed: a real hook still answers, and nothing was logged as an
    // error of the runner's own.
    const ok = await runHook("stop", "{}", await hookEnv(runner));
    assert.deepEqual([ok.code, ok.stdout], [0, "{}"]);
    const log = await runner.log();
    assert.doesNotMatch(log, /\b(ERROR|FATAL)\b/);
    assert.equal(await runner.stop(), 0);
  });
});

Deno.test("control server: 200 idle half-sent requests over the real port; the real Stop hook keeps answering", async () => {
  await withFakeClaude("arr-control-", async ({ start }) => {
    const conns: Deno.TcpConn[] = [];
    try {
      const runner = start({ agentId: "ctl", logLevel: "info" });
      const env = await hookEnv(runner);
      const { port, secret } = await runner.control();
      const hookRounds = async (n: number) => {
        const ms: number[] = [];
        for (let i = 0; i < n; i++) {
          const run = await runHook("stop", '{"stop_hook_active":false}', env);
          assert.deepEqual([run.code, run.stdout, run.stderr], [0, "{}", ""]);
          ms.push(run.ms);
        }
        return ms;
      };
      const baseline = await hookRounds(30);
      const idleBefore = serverConnections(port);
      conns.push(...await openHalfSent(port, 100, { kind: "headers" }));
      conns.push(...await openHalfSent(port, 80, { kind: "body-unauthenticated" }));
      const bodies = await openHalfSent(port, 20, { kind: "body", secret });
      conns.push(...bodies);
      const open = await waitFor(
        "every half-sent connection accepted",
        () => serverConnections(port) - idleBefore >= 200 && serverConnections(port),
      );
      const loaded = await hookRounds(30);
      // The stalled authenticated bodies got their 408 (the body deadline); the runner is fine.
      for (const conn of bodies) {
        const buffer = new Uint8Array(256);
        const n = await conn.read(buffer);
        assert.match(
          new TextDecoder().decode(buffer.subarray(0, n ?? 0)),
          /^HTTP\/1\.1 408 /,
        );
      }
      const afterDeadline = serverConnections(port);
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
      const b = latencyFigures(baseline);
      const l = latencyFigures(loaded);
      report(
        `200 half-sent requests: ${open} server connections open with them ` +
          `(${idleBefore} before), ${afterDeadline} after the 408s; stop.sh p50 ${l.p50} / ` +
          `p99 ${l.p99} / max ${l.max} ms with them, ${b.p50} / ${b.p99} / ${b.max} ms without`,
      );
      // The clients go away (see the next test for a stop while they stay).
      closeAll(conns);
      assert.equal(await runner.stop(), 0);
    } finally {
      closeAll(conns);
    }
  });
});

/**
 * Found by this suite (issue 16 round 2), fixed in `src/control/server.ts`: `close()` awaited
 * `server.shutdown()`, which waits for every open connection, and a half-sent request never
 * completes (a half-sent body, even one already answered 408 or 401), so SIGTERM never ended the
 * run. Closing now waits at most `CLOSE_GRACE_MS` for them.
 */
Deno.test({
  name: "control: a graceful stop ends within its budget while half-sent requests stay open",
  fn: async () => {
    await withFakeClaude("arr-control-", async ({ start }) => {
      const conns: Deno.TcpConn[] = [];
      try {
        const runner = start({ agentId: "ctl", extraArgs: ["--stop-timeout", "4"] });
        const { port, secret } = await runner.control();
        conns.push(...await openHalfSent(port, 10, { kind: "headers" }));
        conns.push(...await openHalfSent(port, 10, { kind: "body-unauthenticated" }));
        conns.push(...await openHalfSent(port, 10, { kind: "body", secret }));
        await waitFor("the connections accepted", () => serverConnections(port) >= 30);
        const code = await Promise.race([
          runner.stop(),
          new Promise<string>((resolve) => {
            const timer = setTimeout(() => resolve("still running 12 s after SIGTERM"), 12_000);
            runner.output.finally(() => clearTimeout(timer));
          }),
        ]);
        assert.equal(code, 0, "the graceful stop ended within its 4 s budget");
      } finally {
        closeAll(conns);
      }
    });
  },
});
