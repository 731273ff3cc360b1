/**
 * `deno task fuzz` (`deno run -A tests/hardening/fuzz.ts`): the long runs of the hardening
 * tests (issue 9, docs/reliability.md), next to the scenarios it runs.
 *
 * ```
 * deno task fuzz [control] [--seed N] [--count N] [--wire N]   control server fuzz (default)
 * deno task fuzz crash [--seed N] [--runs N]                    kill -9 during a stream
 * deno task fuzz faults [--short]                               relay faults, 60 s outage
 * deno task fuzz round2 [--seed N] [--count N]                  issue 16's attacks, randomized
 * deno task fuzz all                                            all four, defaults
 * ```
 *
 * - `control`: `--count` (default 200,000) seeded requests in process, then `--wire` (default
 *   5,000) over a real port, against the contract's oracle (support/control_fuzz.ts). The test
 *   suite runs 10,000 + 2,000 with a fixed seed.
 * - `crash`: `--runs` (default 100) runner generations killed with SIGKILL at a random moment,
 *   each restarted on the same state dir (support/crash_scenario.ts). The suite runs 20.
 * - `faults`: the relay down 60 s, 10 s latency, 500s, garbage, bus drops, expired tokens, each
 *   phase followed by its recovery (support/fault_scenario.ts); `--short` runs the suite's
 *   durations. Prints the stop-decision figures for docs/reliability.md.
 * - `round2`: `--count` (default 2,000) random strings of control, separator and bidi
 *   characters into every path that logs relay- or provider-supplied text on a real runner (the
 *   log, stdout and stderr must hold none raw), then as many random method names (`Object`
 *   members, tokens) and half-sent requests at its control server (never a 5xx, `/health`
 *   answering, exit 0); support/round2_fuzz.ts.
 *
 * Exit code 0 when every promise held (each message answered once, in relay order, nothing
 * acknowledged lost), 1 otherwise, 2 for bad usage.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { portTarget, runControlFuzz } from "./support/control_fuzz.ts";
import { runCrashScenario } from "./support/crash_scenario.ts";
import { LONG_FAULTS, runFaultScenario, SHORT_FAULTS } from "./support/fault_scenario.ts";
import { fuzzControlMethods, fuzzLogForging } from "./support/round2_fuzz.ts";

// deno-lint-ignore no-console
const say = (line: string) => console.log(line);
// deno-lint-ignore no-console
const warn = (line: string) => console.error(line);

function int(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) {
    warn(`fuzz: --${name} "${value}" is not a whole number`);
    Deno.exit(2);
  }
  return Number(value);
}

async function control(seed: number, count: number, wire: number): Promise<boolean> {
  say(`control server fuzz: seed ${seed}, ${count} requests in process, ${wire} over a port`);
  const inProcess = await runControlFuzz({
    seed,
    count,
    maxFailures: 50,
    onProgress: (done, s) =>
      warn(`  ${done} requests, ${s.failures.length} failures, ${Math.round(s.elapsedMs)} ms`),
  });
  const overPort = await runControlFuzz({
    seed: seed + 1,
    count: wire,
    target: portTarget(),
    maxFailures: 50,
  });
  for (const [what, s] of [["in process", inProcess], ["over a port", overPort]] as const) {
    say(
      `  ${what}: ${s.count} requests in ${(s.elapsedMs / 1000).toFixed(1)} s ` +
        `(${Math.round(s.count / (s.elapsedMs / 1000))}/s); statuses ${JSON.stringify(s.statuses)}`,
    );
    say(
      `    ${s.unauthorized} without the secret, ${s.huge} over 1 MiB, ${s.streamed} streamed ` +
        `(${s.streamErrors} cut off); ${s.actions} actions, all authorized; ` +
        `${s.failures.length} failures`,
    );
    for (const f of s.failures) say(`    FAIL ${f}`);
  }
  return inProcess.failures.length === 0 && overPort.failures.length === 0;
}

async function crash(seed: number, runs: number): Promise<boolean> {
  say(`crash: ${runs} kill -9 runs, seed ${seed}`);
  const started = performance.now();
  const r = await runCrashScenario({ runs, seed, log: (line) => warn(`  ${line}`) });
  say(
    `  ${r.messages} messages over ${r.runs} runs in ${
      ((performance.now() - started) / 1000).toFixed(0)
    } s`,
  );
  say(
    `  ${r.acknowledgedDistinct} acknowledged events found in the outbox after kills ` +
      `(${r.killsDuringRelayFault} kills while the relay refused everything): all stored once`,
  );
  say(
    `  ${r.redelivered} messages delivered again after a kill, ${r.extraEchoes} extra prompt ` +
      `echoes; hook_fatal: ${r.hookFatals.tried} tried, ${r.hookFatals.acknowledged} ` +
      `acknowledged, ${r.hookFatals.stored} stored`,
  );
  say(
    `  runner start to runner-info file: ${
      JSON.stringify(r.startMs)
    } ms; last drain ${r.drainMs} ms`,
  );
  for (const p of r.problems) say(`  FAIL ${p}`);
  for (const p of r.answeredTwice) say(`  FAIL answered twice: ${p}`);
  return r.problems.length === 0 && r.answeredTwice.length === 0;
}

async function faults(short: boolean): Promise<boolean> {
  const options = { ...(short ? SHORT_FAULTS : LONG_FAULTS), isolate: true };
  say(
    `faults: outage ${options.outageMs / 1000} s, latency ${options.latencyMs / 1000} s, ` +
      `each phase followed by its recovery`,
  );
  const r = await runFaultScenario({ ...options, log: (line) => warn(`  ${line}`) });
  say(
    `  ${r.messages} messages; bus connections ${r.busConnections}; tokens renewed ${r.tokenRenewals}`,
  );
  say(
    "  | phase | fault on (s) | recovery after (s) | stop decision p50 / p99 / max (ms) | stop.sh p50 / max (ms) |",
  );
  say("  |---|---|---|---|---|");
  for (const p of r.phases) {
    say(
      `  | ${p.name} | ${(p.ms / 1000).toFixed(1)} | ${(p.recoveryMs / 1000).toFixed(1)} | ` +
        `${p.stop.p50} / ${p.stop.p99} / ${p.stop.max} (n=${p.stop.n}) | ` +
        `${p.hook.p50} / ${p.hook.max} (n=${p.hook.n}) |`,
    );
  }
  say(
    `  all phases: stop decision ${JSON.stringify(r.stop)} ms; stop.sh ${
      JSON.stringify(r.hook)
    } ms`,
  );
  for (const p of r.problems) say(`  FAIL ${p}`);
  for (const p of r.outOfOrder) say(`  FAIL out of order: ${p}`);
  return r.problems.length === 0 && r.exitCode === 0 && r.outOfOrder.length === 0;
}

async function round2(seed: number, count: number): Promise<boolean> {
  say(`round 2: seed ${seed}, ${count} hostile strings into the log, ${count} control requests`);
  let ok = true;
  for (
    const [what, run] of [
      ["log forging", fuzzLogForging],
      ["control methods and half-sent requests", fuzzControlMethods],
    ] as const
  ) {
    const r = await run({ seed, count, timeoutMs: 600_000 });
    say(
      `  ${what}: ${r.cases} cases in ${(r.elapsedMs / 1000).toFixed(1)} s; ` +
        `${JSON.stringify(r.counts)}; ${r.failures.length} failures`,
    );
    for (const f of r.failures) say(`    FAIL ${f}`);
    ok = ok && r.failures.length === 0;
  }
  return ok;
}

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        seed: { type: "string" },
        count: { type: "string" },
        wire: { type: "string" },
        runs: { type: "string" },
        short: { type: "boolean" },
      },
    });
  } catch (error) {
    warn(`fuzz: ${error instanceof Error ? error.message.split("\n")[0] : error}`);
    Deno.exit(2);
  }
  const { values, positionals } = parsed;
  const mode = positionals[0] ?? "control";
  const seed = int(values.seed, "seed", Date.now() % 2 ** 31);
  let ok = true;
  if (mode === "control" || mode === "all") {
    ok =
      await control(seed, int(values.count, "count", 200_000), int(values.wire, "wire", 5_000)) &&
      ok;
  }
  if (mode === "crash" || mode === "all") {
    ok = await crash(seed, int(values.runs, "runs", 100)) && ok;
  }
  if (mode === "faults" || mode === "all") ok = await faults(values.short === true) && ok;
  if (mode === "round2" || mode === "all") {
    ok = await round2(seed, int(values.count, "count", 2_000)) && ok;
  }
  if (!["control", "crash", "faults", "round2", "all"].includes(mode)) {
    warn(`fuzz: unknown mode "${mode}" (control, crash, faults, round2 or all)`);
    Deno.exit(2);
  }
  say(ok ? "every promise held" : "FAILED");
  Deno.exit(ok ? 0 : 1);
}
