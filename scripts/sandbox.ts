/**
 * The launcher's one fixed flag set, and `deno task compile`.
 *
 * The program sandboxes itself (src/entry/, src/sandbox/, docs/sandbox.md): the launcher holds one
 * host-independent set of Deno flags, written once in deno.json's `start` task, and runs each
 * command in a Worker narrowed at run time to exactly that run's dirs. So `deno task start`, the
 * tests ({@linkcode sandboxedRunArgs}) and the compiled binary all take the same path, and one
 * build serves every host.
 *
 * - `deno run -A scripts/sandbox.ts flags` prints the launcher's flags.
 * - `deno run -A scripts/sandbox.ts compile [OUTPUT]` builds `dist/agent-relay-runner` with those
 *   flags (`deno task compile`); `DENORT_BIN` names a local `denort` runtime for offline builds.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { headCommit } from "../src/cli/build_info.ts";

/** The project root (where deno.json is). */
export const APP_DIR: string = resolve(import.meta.dirname ?? ".", "..");

/** The Deno version the project pins (and whose `denort` a compile needs). */
export const DENO_VERSION = "2.9.6";

/** The environment every launch gets on top of the caller's: no update check (it ignores --allow-net). */
export const LAUNCH_ENV: Readonly<Record<string, string>> = { DENO_NO_UPDATE_CHECK: "1" };

/**
 * The launcher's flags, read from deno.json's `start` task (`deno run FLAGS main.ts`): the one
 * place they are written.
 */
export function launcherFlags(configPath = join(APP_DIR, "deno.json")): string[] {
  const config = JSON.parse(Deno.readTextFileSync(configPath));
  const task = String(config?.tasks?.start ?? "");
  const words = task.split(/\s+/).filter((w) => w !== "");
  const run = words.indexOf("run");
  const main = words.indexOf("main.ts");
  if (words[run - 1] !== "deno" || main < run) {
    throw new Error(`${configPath}: the start task is not "deno run FLAGS main.ts"`);
  }
  return words.slice(run + 1, main);
}

/**
 * The full `deno` argv (after `deno`) that runs `main` with `args` the way `deno task start`
 * does. Spawn it with {@linkcode LAUNCH_ENV} in the environment.
 */
export function sandboxedRunArgs(
  main: string,
  args: string[],
  _env?: Record<string, string | undefined>,
): string[] {
  return ["run", `--config=${join(APP_DIR, "deno.json")}`, ...launcherFlags(), main, ...args];
}

/** The one line `deno task compile` prints when it cannot get Deno's runtime. */
export const DENORT_MISSING =
  `deno compile needs denort ${DENO_VERSION}: set DENORT_BIN=/path/to/denort (see docs/sandbox.md)`;

/** Whether `deno compile`'s error output says it could not download `denort`. */
export function isDenortDownloadFailure(stderr: string): boolean {
  return /denort|download|dl\.deno\.land|error sending request|dns error|failed to lookup|connection refused|network/i
    .test(stderr);
}

/** The `deno compile` argv (after `deno`) for the binary at `output`. */
export function compileArgs(output: string): string[] {
  const flags = launcherFlags().filter((f) => f !== "--frozen");
  return [
    "compile",
    "--frozen",
    `--config=${join(APP_DIR, "deno.json")}`,
    ...flags,
    // The modules main.ts loads when a command runs (src/util/import_lazily.ts): Deno compiles
    // in what a literal import names, and these are named at run time.
    "--include",
    join(APP_DIR, "src"),
    "--include",
    join(APP_DIR, "hooks"),
    "--include",
    join(APP_DIR, BUILD_COMMIT_FILE),
    "--output",
    output,
    join(APP_DIR, "main.ts"),
  ];
}

/** The file `--version` reads the commit from in a compiled binary (written, embedded, removed). */
const BUILD_COMMIT_FILE = "BUILD_COMMIT";

async function compile(rest: string[]): Promise<number> {
  const commitFile = join(APP_DIR, BUILD_COMMIT_FILE);
  await Deno.writeTextFile(commitFile, `${headCommit(join(APP_DIR, ".git")) ?? "unknown"}\n`);
  try {
    return await compileWith(rest);
  } finally {
    await Deno.remove(commitFile).catch(() => {});
  }
}

async function compileWith(rest: string[]): Promise<number> {
  const output = resolve(rest[0] ?? join(APP_DIR, "dist", "agent-relay-runner"));
  const args = compileArgs(output);
  const denort = Deno.env.get("DENORT_BIN");
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    env: { ...LAUNCH_ENV },
    stdout: "inherit",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (out.code !== 0 && !denort && isDenortDownloadFailure(stderr)) {
    // deno-lint-ignore no-console
    console.error(DENORT_MISSING);
    return 1;
  }
  await Deno.stderr.write(out.stderr);
  return out.code;
}

if (import.meta.main) {
  const [command, ...rest] = Deno.args;
  if (command === "flags") {
    // deno-lint-ignore no-console
    console.log(launcherFlags().join(" "));
  } else if (command === "compile") {
    Deno.exit(await compile(rest));
  } else {
    // deno-lint-ignore no-console
    console.error("usage: sandbox.ts flags | compile [OUTPUT]");
    Deno.exit(2);
  }
}
