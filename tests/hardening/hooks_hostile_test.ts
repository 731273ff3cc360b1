/**
 * Round 2 (issue 16), attacks through the hooks, on the real program (`main.ts run` under its
 * sandbox with `--provider claude` on the scripted Claude stand-in) and the real bash + curl hook
 * scripts:
 *
 * - a hook environment whose `AGENT_RELAY_RUNNER_PORT` is `80@x.invalid` (or another non-port)
 *   never runs curl, so the secret header goes nowhere (a curl spy on PATH);
 * - a `session-end` hook whose `transcript_path` is a FIFO: a graceful stop still ends within
 *   the stop budget, exit 0;
 * - another process holding `BEGIN EXCLUSIVE` on the outbox for 7 s while hooks fire: every Stop
 *   is answered by the runner (not by the hook's own 2 s give-up), and nothing is lost: every
 *   event a hook was answered for reaches the relay once the lock goes, and the outbox is empty.
 *
 * The Stop latency under the lock is printed as a figure (docs/reliability.md, "Round 2").
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import { curlSpy, hookEnv, latencyFigures, runHook, withFakeClaude } from "./support/round2.ts";

// deno-lint-ignore no-console
const report = (line: string) => console.log(`  figure: ${line}`);

Deno.test("hooks: a port that is not a port number (80@x.invalid...) never runs curl against a live runner", async () => {
  await withFakeClaude("arr-hooks-", async ({ home, start }) => {
    const runner = start({ agentId: "hooked" });
    const env = await hookEnv(runner);
    const spy = await curlSpy(home);
    const bad = ["80@x.invalid", "80@127.0.0.1", "0", "65536", "1e3", "0x50", " 80", "80/x", ""];
    for (const port of bad) {
      for (const event of ["stop", "pre-tool-use", "permission-request", "session-end"]) {
        const run = await runHook(event, '{"tool_name":"Bash"}', {
          ...env,
          AGENT_RELAY_RUNNER_PORT: port,
          PATH: spy.path,
        });
        assert.equal(run.code, 0, `${event} ${port}`);
        assert.equal(run.stdout, "", `${event} ${port}: nothing that could block or decide`);
      }
    }
    assert.equal(await spy.calls(), 0, "curl never ran: the secret went nowhere");
    // The control: the real port calls curl and the runner answers.
    const ok = await runHook("stop", "{}", { ...env, PATH: spy.path });
    assert.deepEqual([ok.code, ok.stdout], [0, "{}"]);
    assert.equal(await spy.calls(), 1);
    assert.equal(await runner.stop(), 0);
  });
});

Deno.test("hooks: a session-end transcript_path naming a FIFO never holds up the graceful stop", async () => {
  await withFakeClaude("arr-hooks-", async ({ home, start }) => {
    const fifo = join(home, "transcript.jsonl");
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.equal(mk.code, 0);
    const runner = start({ agentId: "hooked", extraArgs: ["--stop-timeout", "4"] });
    const env = await hookEnv(runner);
    // The path the session started with, then the session-end: both the FIFO.
    const payload = JSON.stringify({ transcript_path: fifo, reason: "exit" });
    assert.equal((await runHook("session-start", payload, env)).code, 0);
    const end = await runHook("session-end", payload, env);
    assert.deepEqual([end.code, end.stderr], [0, ""]);
    const started = performance.now();
    const code = await Promise.race([
      runner.stop(),
      new Promise<string>((resolve) => {
        const timer = setTimeout(() => resolve("still running 10 s after SIGTERM"), 10_000);
        runner.output.finally(() => clearTimeout(timer));
      }),
    ]);
    const stopMs = performance.now() - started;
    if (code !== 0) {
      // Unblock a read stuck on the FIFO so the runner can go.
      const writer = await Deno.open(fifo, { write: true }).catch(() => undefined);
      writer?.close();
      await runner.kill();
    }
    report(`graceful stop with a FIFO transcript: ${stopMs.toFixed(0)} ms (budget 4,000 ms)`);
    assert.equal(code, 0, "the graceful stop ended with exit 0 within its budget");
    assert.match(
      await runner.log(),
      /reading the transcript .*transcript\.jsonl failed: .*not a regular file/,
    );
  });
});

const OUTBOX_CHILD = fileURLToPath(new URL("../fixtures/outbox_child.ts", import.meta.url));

/** A real process holding `BEGIN EXCLUSIVE` on `path` until `release()`. */
async function lockFromAnotherProcess(path: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", OUTBOX_CHILD, path, "exclusive"],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  const until = async (line: string) => {
    while (!seen.split("\n").includes(line)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the locking process ended before "${line}"`);
      seen += value;
    }
  };
  await until("locked");
  const writer = child.stdin.getWriter();
  return {
    release: async () => {
      await writer.write(new TextEncoder().encode("go\n"));
      await until("unlocked");
      await writer.close().catch(() => {});
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
      await child.status;
    },
  };
}

Deno.test("hooks: another process holding BEGIN EXCLUSIVE on the outbox for 7 s: every Stop answered by the runner, nothing lost", async () => {
  await withFakeClaude("arr-hooks-", async ({ relay, start }) => {
    const runner = start({ agentId: "locked", logLevel: "info" });
    const env = await hookEnv(runner);
    const { port, secret } = await runner.control();
    await runner.settled();
    const stopOverHttp = async () => {
      const t = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}/hooks/stop`, {
        method: "POST",
        headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
        body: '{"stop_hook_active":false}',
      });
      const text = await res.text();
      return { ms: performance.now() - t, ok: res.status === 200 && text === "{}" };
    };
    // The unlocked baseline, same calls.
    const free: number[] = [];
    for (let i = 0; i < 50; i++) free.push((await stopOverHttp()).ms);

    const locker = await lockFromAnotherProcess(runner.outboxFile);
    const lockedAt = performance.now();
    const stops: number[] = [];
    const hookStops: number[] = [];
    let compacts = 0;
    const fatals: Promise<void>[] = [];
    const acknowledged: string[] = [];
    let refused = 0;
    const reportFatal = async (hook: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/hook-fatal`, {
        method: "POST",
        headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
        body: JSON.stringify({ hook, error: "locked on purpose" }),
      });
      const answer = await res.text();
      assert.ok(res.status === 200 || res.status === 503, `${res.status} ${answer}`);
      if (res.status === 200) acknowledged.push(hook);
      else refused++;
    };
    let round = 0;
    try {
      while (performance.now() - lockedAt < 7_000) {
        round++;
        // An event to store (the mirror's step), a hook-fatal report (an insight), then Stops.
        const compact = await runHook("pre-compact", '{"trigger":"auto"}', env);
        assert.deepEqual([compact.code, compact.stdout], [0, "{}"], compact.stderr);
        compacts++;
        // A hook-fatal report (an insight) alongside: answered 200 only once stored durably,
        // else 503 (try again) after its wait; not awaited here, so the Stops keep coming.
        if (round % 4 === 1) fatals.push(reportFatal(`h${round}`));
        const viaHttp = await stopOverHttp();
        assert.ok(viaHttp.ok, "the Stop decision answered {}");
        stops.push(viaHttp.ms);
        const hook = await runHook("stop", '{"stop_hook_active":false}', env);
        // Answered by the runner: the hook printed its answer and did not fall back.
        assert.deepEqual([hook.code, hook.stdout, hook.stderr], [0, "{}", ""]);
        hookStops.push(hook.ms);
      }
      // The lock did bite: the runner held events in memory, waiting for it to go.
      assert.match(await runner.log(), /is locked by another connection: holding events/);
    } finally {
      await locker.release();
    }
    await Promise.all(fatals);
    const lockedMs = performance.now() - lockedAt;
    await runner.drained(30_000);
    const state = relay.admin.state();
    const steps = state.messages.filter((m) =>
      m.kind === "session" && m.body === "Compacting context"
    );
    const stored = state.insights.filter((i) => i.signal === "hook_fatal");
    const f = latencyFigures(stops);
    const h = latencyFigures(hookStops);
    const b = latencyFigures(free);
    report(
      `outbox locked ${(lockedMs / 1000).toFixed(1)} s: Stop decision over HTTP p50 ${f.p50} / ` +
        `p99 ${f.p99} / max ${f.max} ms (n=${f.n}; unlocked p50 ${b.p50} / p99 ${b.p99} / ` +
        `max ${b.max} ms); stop.sh p50 ${h.p50} / p99 ${h.p99} / max ${h.max} ms (n=${h.n}); ` +
        `${compacts} steps (${steps.length} on the relay), hook_fatal: ${acknowledged.length} ` +
        `acknowledged, ${refused} answered 503, ${stored.length} on the relay`,
    );
    assert.equal(steps.length, compacts, "every mirrored step stored, once");
    const storedHooks = stored.map((i) => (i.value as { hook?: string }).hook ?? "");
    assert.equal(new Set(storedHooks).size, storedHooks.length, "no hook_fatal stored twice");
    for (const hook of acknowledged) {
      assert.ok(storedHooks.includes(hook), `the acknowledged hook_fatal ${hook} is stored`);
    }
    assert.equal(await runner.stop(), 0);
    // The outbox file is empty after the stop.
    const db = new DatabaseSync(runner.outboxFile, { readOnly: true });
    try {
      const rows = db.prepare("SELECT COUNT(*) AS n FROM outbox").get() as { n: number };
      assert.equal(rows.n, 0);
    } finally {
      db.close();
    }
    const log = await runner.log();
    assert.match(log, /is free again: held events stored after \d+ ms/);
    assert.doesNotMatch(log, /database is locked/);
  });
});
