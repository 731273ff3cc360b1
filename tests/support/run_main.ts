/**
 * Runs the program (`main.ts`) as a child process exactly as `deno task start` does: the
 * launcher's fixed flags from deno.json's `start` task; main.ts then sandboxes each command in
 * its Worker.
 *
 * @module
 */
import { join } from "node:path";
import { APP_DIR, LAUNCH_ENV, sandboxedRunArgs } from "../../scripts/sandbox.ts";

/** Path of main.ts. */
export const MAIN: string = join(APP_DIR, "main.ts");

/** A finished run's exit code and output. */
export interface RunOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment a sandboxed child gets: only what the test gives, plus PATH, HOME and the launch env. */
export function childEnv(extra: Record<string, string>): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    NO_COLOR: "1",
    ...LAUNCH_ENV,
    ...extra,
  };
}

/** Spawns `main.ts ARGS` (or another script) under the sandbox; the caller owns the child. */
export function spawnSandboxed(
  args: string[],
  options: { env: Record<string, string>; script?: string; cwd?: string; stdin?: "piped" | "null" },
): Deno.ChildProcess {
  const env = childEnv(options.env);
  return new Deno.Command(Deno.execPath(), {
    args: sandboxedRunArgs(options.script ?? MAIN, args, env),
    env,
    clearEnv: true,
    cwd: options.cwd ?? APP_DIR,
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Runs `main.ts ARGS` under the sandbox to completion. */
export async function runSandboxed(
  args: string[],
  options: { env: Record<string, string>; script?: string; cwd?: string },
): Promise<RunOutput> {
  const out = await spawnSandboxed(args, options).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}
