/**
 * Helpers of the sandbox tests: the program started the way `deno task start` starts it (the
 * launcher's fixed flags), temp dirs, and waiting for a positive signal.
 *
 * @module
 */
import { join } from "node:path";
import { APP_DIR, launcherFlags } from "../../scripts/sandbox.ts";
import { childEnv, MAIN, type RunOutput } from "../support/run_main.ts";

export { waitFor } from "../support/wait.ts";
export { childEnv, MAIN };

/** A finished child's exit code and output. */
export type Output = RunOutput;

/** Options of {@linkcode spawnMain}. */
export interface SpawnOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Another script than main.ts, run with the same flags. */
  script?: string;
  /** Run through `deno task start` itself. */
  task?: boolean;
}

/** Spawns main.ts (or `script`) with `args` under the launcher's flags; the caller owns it. */
export function spawnMain(args: string[], options: SpawnOptions = {}): Deno.ChildProcess {
  const argv = options.task
    ? ["task", "--quiet", `--config=${join(APP_DIR, "deno.json")}`, "start", ...args]
    : ["run", ...launcherFlags(), options.script ?? MAIN, ...args];
  return new Deno.Command(Deno.execPath(), {
    args: argv,
    env: childEnv(options.env ?? {}),
    clearEnv: true,
    cwd: options.cwd ?? APP_DIR,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Collects a child's output and exit code. */
export async function outputOf(child: Deno.ChildProcess): Promise<Output> {
  const out = await child.output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** Runs main.ts with `args` to the end. */
export function runMain(args: string[], options: SpawnOptions = {}): Promise<Output> {
  return outputOf(spawnMain(args, options));
}

/** A temp dir, removed on dispose (`await using dir = await tempDir()`). */
export async function tempDir(prefix = "arr-sbx-"): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/** Whether a pid is alive (not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Reads a JSON file, or `undefined` while it is missing or half written. */
export function readJson(path: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(path));
  } catch {
    return undefined;
  }
}
