/**
 * `deno task bench`: every benchmark part, each printing ratios against a baseline measured in
 * the same run. `deno task bench outbox` or `deno task bench hooks` runs one part.
 *
 * @module
 */
import { runHooksBench } from "./hooks_bench.ts";
import { runOutboxBench } from "./outbox_bench.ts";

const PARTS: Record<string, () => Promise<string[]>> = {
  outbox: () => runOutboxBench(),
  hooks: () => runHooksBench(),
};

const wanted = Deno.args.length > 0 ? Deno.args : Object.keys(PARTS);
for (const name of wanted) {
  const part = PARTS[name];
  if (!part) {
    // deno-lint-ignore no-console
    console.error(`unknown benchmark part "${name}"; parts: ${Object.keys(PARTS).join(", ")}`);
    Deno.exit(2);
  }
  // deno-lint-ignore no-console
  console.log(`== ${name}`);
  for (const line of await part()) {
    // deno-lint-ignore no-console
    console.log(line);
  }
}
