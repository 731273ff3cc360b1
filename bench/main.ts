/**
 * `deno task bench [PART...]`: the benchmarks, each printing ratios against a baseline measured
 * in the same run.
 *
 * - `goals` (the default): issue 18's table, one line per goal ending `goal met` or
 *   `goal missed` (bench/goals_bench.ts); a goal alone: `hook`, `drain`, `recovery`, `launch`,
 *   `rss`, `claude`.
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
for (const goal of Object.keys(GOALS)) PARTS[goal] = () => runGoalsBench([goal]);

const wanted = Deno.args.length === 0
  ? ["goals"]
  : Deno.args.flatMap((a) => a === "all" ? ["goals", "hooks", "outbox"] : [a]);
for (const name of wanted) {
  if (!PARTS[name]) {
    // deno-lint-ignore no-console
    console.error(
      `unknown benchmark part "${name}"; parts: all, ${Object.keys(PARTS).join(", ")}`,
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
