/**
 * The operator commands run as a user runs them from source: `deno run -A main.ts ARGS`, with
 * only the environment the test gives (plus PATH, HOME and NO_COLOR).
 *
 * @module
 */
import { childEnv, MAIN, type RunOutput } from "../support/run_main.ts";

/** Spawns `deno run -A main.ts ARGS`; the caller owns the child. */
export function spawnCli(
  args: string[],
  env: Record<string, string>,
  options: { stdin?: "piped" | "null" } = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--frozen", MAIN, ...args],
    env: childEnv(env),
    clearEnv: true,
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Runs `deno run -A main.ts ARGS` to completion. */
export async function runCli(args: string[], env: Record<string, string>): Promise<RunOutput> {
  const out = await spawnCli(args, env).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}
