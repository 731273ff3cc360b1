/**
 * `deno task bench [PART...]`: the benchmarks, each printing ratios against a baseline measured
 * in the same run.
 *
 * - `goals` (the default): issue 18's table, one line per goal ending `goal met` or
 *   `goal missed` (bench/goals_bench.ts); a goal alone: `hook`, `drain`, `recovery`, `launch`,
 *   `rss` (several goals named together share one run: `launch rss` starts the program once).
 * - `hooks`: the control server's hook figures (bench/hooks_bench.ts).
 * - `outbox`: the outbox's figures (bench/outbox_bench.ts).
 * - `all`: goals, hooks and outbox.
 *
 * @module
 */
import { GOALS, runGoalsBench } from "./goals_bench.ts";
import { runHooksBench } from "./hooks_bench.ts";
import { runOutboxBench } from "./outbox_bench.ts";

const PARTS: Record<string, () => Promise<string[]>> = {
  goals: () => runGoalsBench(),
  hooks: () => runHooksBench(),
  outbox: () => runOutboxBench(),
};
const args = Deno.args.flatMap((a) => a === "all" ? ["goals", "hooks", "outbox"] : [a]);
// Goals named one by one run together, as one part (they share the program's starts).
const goals = args.filter((a) => a in GOALS);
if (goals.length > 0) PARTS[goals.join(" ")] = () => runGoalsBench(goals);
const wanted = args.length === 0
  ? ["goals"]
  : [...(goals.length > 0 ? [goals.join(" ")] : []), ...args.filter((a) => !(a in GOALS))];
for (const name of wanted) {
  if (!PARTS[name]) {
    // deno-lint-ignore no-console
    console.error(
      `unknown benchmark part "${name}"; parts: all, goals, hooks, outbox, ${
        Object.keys(GOALS).join(", ")
      }`,
    );
    Deno.exit(2);
  }
}
for (const name of wanted) {
  const started = performance.now();
  // deno-lint-ignore no-console
  console.log(`== ${name}`);
  for (const line of await PARTS[name]!()) {
    // deno-lint-ignore no-console
    console.log(line);
  }
  // deno-lint-ignore no-console
  console.log(`   (${name} took ${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
