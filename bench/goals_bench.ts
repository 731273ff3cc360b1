/**
 * Issue 18's table in `deno task bench`: one line per goal, each ending `goal met` or
 * `goal missed`, every time a ratio against a baseline measured in the same run.
 *
 * - `hook`: native HTTP hook round trips against the bash + curl `stop.sh` floor, interleaved;
 *   goal: HTTP p99 <= 0.25 x bash+curl p99.
 * - `drain`: queued mirror entries through the runner's transport (`POST /api/batch`) to the
 *   reference relay on its own thread; goal >= 30,000 events/s; the one-call-per-event
 *   baseline beside it.
 * - `recovery`: the real program (`main.ts run` under its sandbox, `command` provider) against
 *   the reference relay, whose admin `down` fault shuts its listener and drops the bus for
 *   outages of several lengths while the agent's reply waits in the outbox; from the relay's
 *   return to the first write arriving (and the bus reconnecting); goal <= 500 ms.
 * - `launch`: spawn of the real program to its runner-info file (written once the control port
 *   listens) and to its first `GET /health` answer, medians of the starts, over the median of
 *   `deno run hello.ts` interleaved with them; goal: runner-info <= 4x hello.
 * - `rss`: the same runs' VmRSS once idle (ready, provider idle, 2 s later); goal <= 64 MiB.
 *
 * `deno task bench` builds the program's bundle first (`deno task build`), so the starts load it
 * as a built install's do; both lines say which copy they measured.
 *
 * @module
 */
import { join } from "node:path";
import { APP_DIR } from "../scripts/sandbox.ts";
import { freshBundle } from "../src/bundle/mod.ts";
import { startDevRelay } from "../src/dev_relay/mod.ts";
import { measureHttpHooks } from "./hooks_bench.ts";
import { measureDrain } from "./outbox_bench.ts";
import { helloOnce, median, poll, replyingAgent, startProgram } from "./program.ts";

const verdict = (ok: boolean) => ok ? "goal met" : "goal missed";
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const range = (values: number[], digits = 0) =>
  `${Math.min(...values).toFixed(digits)}..${Math.max(...values).toFixed(digits)}`;
const MiB = 1024 * 1024;
/** Which copy of the program main.ts loads (src/bundle/). */
const copy = () =>
  freshBundle(APP_DIR) ? "from its bundle" : "from its source files: no fresh bundle";

async function hookGoal(): Promise<string[]> {
  const f = await measureHttpHooks(200);
  return [
    `hook round trip: native HTTP hook p99 ${f.http.p99.toFixed(3)} ms (p50 ` +
    `${f.http.p50.toFixed(3)}) vs bash+curl p99 ${f.bash.p99.toFixed(2)} ms (p50 ` +
    `${f.bash.p50.toFixed(2)}), x${f.runs} interleaved: ${f.ratio.toFixed(3)}x ` +
    `(goal <= 0.25x${f.wrong ? `; ${f.wrong} wrong answers` : ""}): ` +
    verdict(f.ratio <= 0.25 && f.wrong === 0),
  ];
}

async function drainGoal(dir: string): Promise<string[]> {
  const { batched, single } = await measureDrain(dir, 20_000);
  return [
    `drain to the relay (real path: runner transport, POST /api/batch, reference relay): ` +
    `${fmt(batched.rate)} events/s median of 3 (${range(batched.runs)}), ` +
    `${(batched.rate / single.rate).toFixed(1)}x one call per event (${fmt(single.rate)}/s) ` +
    `(goal >= 30,000/s): ${verdict(batched.rate >= 30_000)}`,
  ];
}

/** Writes the relay accepts from the runner's outbox. */
const WRITE = /^POST \/api\/(batch|messages|messages\/\d+\/receipts|insights) 20\d /;

async function recoveryGoal(dir: string): Promise<string[]> {
  const seen: { line: string; at: number }[] = [];
  const relay = await startDevRelay({
    port: 0,
    trace: (line) => seen.push({ line, at: performance.now() }),
  });
  const home = join(dir, "recovery");
  const program = startProgram(relay, {
    home,
    agentId: "bench-recovery",
    agent: replyingAgent("0.2"),
  });
  const outages = [1_500, 4_000, 10_000];
  const moving: number[] = [];
  const bus: number[] = [];
  try {
    await program.ready();
    const replied = () => {
      try {
        return Deno.readTextFileSync(join(program.cwd, "replied.txt")).trim().split("\n").length;
      } catch {
        return 0;
      }
    };
    for (const [i, outage] of outages.entries()) {
      // A message the agent answers after 0.2 s: the answer is written while the relay is down.
      const sent = await fetch(`${relay.url}/api/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${relay.token}`, "content-type": "application/json" },
        body: JSON.stringify({ from: "user", to: "bench-recovery", kind: "chat", body: `m${i}` }),
      });
      if (sent.status !== 201) throw new Error(`POST /api/messages answered ${sent.status}`);
      await sent.body?.cancel();
      await poll("the message handed over", () => {
        const handed = relay.admin.state().receipts.filter((r) => r.state === "handed").length;
        return handed > i || undefined;
      }, { everyMs: 5 });
      const downAt = performance.now();
      await relay.admin.setFaults({ down: true });
      await poll("the answer written during the outage", () => replied() > i || undefined, {
        everyMs: 5,
      });
      await new Promise((resolve) => setTimeout(resolve, downAt + outage - performance.now()));
      await relay.admin.setFaults({ down: false });
      const upAt = performance.now();
      const after = (pattern: RegExp) => seen.find((s) => s.at >= upAt && pattern.test(s.line))?.at;
      moving.push(await poll("the first write", () => after(WRITE), { everyMs: 2 }) - upAt);
      bus.push(
        await poll("the bus back", () => after(/^bus open .*bench-recovery/), { everyMs: 2 }) -
          upAt,
      );
      await poll("the answer on the relay", () => {
        const answered = relay.admin.state().messages.filter((m) => m.replyTo !== undefined);
        return answered.length > i || undefined;
      });
    }
  } finally {
    await program.stop();
    await relay.close();
  }
  const worst = Math.max(...moving);
  return [
    `relay back -> queue moving (real program, relay down ${
      outages.map((o) => o / 1000).join(", ")
    } s with an answer queued): first write ${
      moving.map((m) => fmt(m)).join(", ")
    } ms after the relay is back, bus back ${bus.map((m) => fmt(m)).join(", ")} ms ` +
    `(goal <= 500 ms): ${verdict(worst <= 500)}`,
  ];
}

/** One start of the real program: spawn -> runner-info, -> control port; idle RSS. */
interface Start {
  info: number;
  control: number;
  rss: number;
  peak: number;
  /** The anonymous part of `rss` (heaps, stacks) and the file-backed part (the executable). */
  anon: number;
  file: number;
}

async function oneStart(dir: string, n: number, relay: { url: string; token: string }) {
  const program = startProgram(relay, {
    home: join(dir, `launch-${n}`),
    agentId: `bench-launch-${n}`,
    agent: replyingAgent("0"),
  });
  try {
    const { at } = await program.info();
    const control = await program.controlReady();
    await program.ready();
    const secret = Deno.readTextFileSync(join(program.stateDir, "control-secret")).trim();
    const port = (await program.info()).info["controlPort"];
    await poll("the provider idle", async () => {
      const res = await fetch(`http://127.0.0.1:${port}/status`, {
        headers: { authorization: `Bearer ${secret}` },
      });
      const status = await res.json() as { status?: string };
      return status.status === "idle" || undefined;
    }, { everyMs: 50 });
    // Idle: nothing to do but the heartbeat and the bus's pings.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const proc = Deno.readTextFileSync(`/proc/${program.child.pid}/status`);
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(proc)?.[1]);
    return {
      info: at - program.spawnedAt,
      control: control - program.spawnedAt,
      rss: kb("VmRSS") * 1024,
      peak: kb("VmHWM") * 1024,
      anon: kb("RssAnon") * 1024,
      file: kb("RssFile") * 1024,
    } satisfies Start;
  } finally {
    await program.stop();
  }
}

/** Starts of the real program and `deno run hello.ts`, interleaved (shared by launch and rss). */
let startsMemo: Promise<{ starts: Start[]; hello: number[] }> | undefined;

function measureStarts(dir: string, runs = 5) {
  return startsMemo ??= (async () => {
    const relay = await startDevRelay({ port: 0 });
    try {
      await helloOnce(dir); // warm the cache of both
      await oneStart(dir, 0, relay);
      const starts: Start[] = [];
      const hello: number[] = [];
      for (let i = 1; i <= runs; i++) {
        hello.push(await helloOnce(dir));
        starts.push(await oneStart(dir, i, relay));
      }
      return { starts, hello };
    } finally {
      await relay.close();
    }
  })();
}

async function launchGoal(dir: string): Promise<string[]> {
  const { starts, hello } = await measureStarts(dir);
  const info = median(starts.map((s) => s.info));
  const control = median(starts.map((s) => s.control));
  const base = median(hello);
  // The runner writes its runner-info file once the control port listens: that is the port
  // ready. The first GET /health answer after it also counts the bench's own polling and fetch.
  const ratio = info / base;
  return [
    `launch -> control port ready (real program ${copy()}, median of ${starts.length}): ` +
    `runner-info ` +
    `(port listening) ${fmt(info)} ms (${range(starts.map((s) => s.info))}), first /health ` +
    `answer ${fmt(control)} ms (${range(starts.map((s) => s.control))}) vs deno run hello.ts ` +
    `${fmt(base)} ms (${range(hello)}): ${ratio.toFixed(1)}x (${(control / base).toFixed(1)}x ` +
    `to /health) (goal <= 4x): ${verdict(ratio <= 4)}`,
  ];
}

async function rssGoal(dir: string): Promise<string[]> {
  const { starts } = await measureStarts(dir);
  const rss = starts.map((s) => s.rss / MiB);
  const peak = starts.map((s) => s.peak / MiB);
  const m = median(rss);
  // The file-backed part moves with the host's page cache (docs/performance.md); the anonymous
  // part is the program's own.
  const anon = median(starts.map((s) => s.anon / MiB)).toFixed(1);
  const file = median(starts.map((s) => s.file / MiB)).toFixed(1);
  return [
    `idle RSS (real program ${copy()}, with its Worker, command provider, idle 2 s; median of ` +
    `${starts.length}): ${m.toFixed(1)} MiB (${range(rss, 1)}; anonymous ${anon}, ` +
    `file-backed ${file}), peak ${median(peak).toFixed(1)} MiB (goal <= 64 MiB): ` +
    verdict(m <= 64),
  ];
}

/** The goals, by name, in the table's order. */
export const GOALS: Record<string, (dir: string) => Promise<string[]>> = {
  hook: () => hookGoal(),
  drain: drainGoal,
  recovery: recoveryGoal,
  launch: launchGoal,
  rss: rssGoal,
};

/** Runs the named goals (default: all); returns printable lines. */
export async function runGoalsBench(names: string[] = Object.keys(GOALS)): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "goals_bench_" });
  startsMemo = undefined;
  try {
    const lines: string[] = [];
    for (const name of names) {
      const started = performance.now();
      const goal = GOALS[name];
      if (!goal) throw new Error(`unknown goal "${name}"; goals: ${Object.keys(GOALS).join(", ")}`);
      for (const line of await goal(dir)) lines.push(`  ${line}`);
      lines.push(`    (${name}: ${((performance.now() - started) / 1000).toFixed(1)} s)`);
    }
    return lines;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
