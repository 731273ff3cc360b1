/**
 * The launcher: the program's main isolate (main.ts loads it, from the bundle or the source).
 *
 * It resolves the configuration (flags, environment, dirs), creates and checks the dirs, then
 * runs the command in a Worker of that command's entry module (src/entry/mod.ts) holding exactly
 * its grants, relays signals to it and exits with its exit code (docs/sandbox.md). `help`,
 * `version`, `status`, `attach` and usage errors need no Worker: they read no untrusted input,
 * and run here.
 *
 * @module
 */
import {
  DirError,
  ENV_VARS,
  prepareDirs,
  readEnv,
  resolveOutboxDir,
  resolveRunConfig,
  UsageError,
} from "../config/mod.ts";
import {
  devRelayGrants,
  type Grants,
  launch,
  type LaunchPlan,
  outboxGrants,
  refusePlantedLinks,
  runGrants,
  sendGrants,
  withProgramModules,
} from "../sandbox/mod.ts";
import { appDir, importLazily, join } from "../util/mod.ts";
import { BUNDLE_DIR } from "../bundle/mod.ts";
import { isWorkerCommand, type WorkerCommand } from "./mod.ts";

/** The program's own files: read-granted to the Worker (hook sources, modules). */
const APP_DIR = appDir() ?? ".";
/** The program's modules: every Worker reads them, to load its command when it runs. */
const MODULES = [join(APP_DIR, "src"), join(APP_DIR, "deno.json"), join(APP_DIR, BUNDLE_DIR)];

type Env = Record<string, string | undefined>;

function report(line: string): void {
  // deno-lint-ignore no-console
  console.error(`agent-relay-runner: ${line}`);
}

/** The value after `name` in `args` (the launcher only needs a few paths; the command parses). */
function flagValue(args: string[], name: string): string | undefined {
  const end = args.includes("--") ? args.indexOf("--") : args.length;
  for (let i = 0; i < end; i++) {
    const arg = args[i]!;
    if (arg === name) return args[i + 1];
    if (arg.startsWith(`${name}=`)) return arg.slice(name.length + 1);
  }
  return undefined;
}

const WORKER_ENV = [...ENV_VARS];
const WORKER_SYS = ["hostname"];

/** The plan for a sandboxed command, or a number: the exit code of a command that is done. */
function plan(args: string[], env: Env): LaunchPlan | number {
  const [command, ...rest] = args;
  const sandboxed = (grants: Grants): LaunchPlan => ({
    args,
    grants: withProgramModules(grants, MODULES),
    env: WORKER_ENV,
    sys: WORKER_SYS,
  });
  const own = rest.includes("--") ? rest.slice(0, rest.indexOf("--")) : rest;
  const help = own.includes("--help") || own.includes("-h");
  switch (command) {
    case "run": {
      if (help) return sandboxed({ read: [], write: [], run: [], net: [] });
      const config = resolveRunConfig(rest, env);
      try {
        prepareDirs(config);
      } catch (error) {
        if (!(error instanceof DirError)) throw error;
        report(error.message);
        return error.name === "UnsafeDirError" ? 2 : 1;
      }
      const withPath = { ...env, PATH: Deno.env.get("PATH") };
      return {
        ...sandboxed(runGrants(config, withPath, { appDir: APP_DIR })),
        run: {
          stateDir: config.stateDir,
          config,
          // While the Worker loads: a symlink planted at a file the run writes is refused, and a
          // new outbox file is built, so that the run's open finds it ready.
          prepare: async () => {
            await refusePlantedLinks(config);
            const { outboxPath, prepareOutboxFile } = await importLazily<
              typeof import("../outbox/files/mod.ts")
            >("../outbox/files/mod.ts", import.meta.url);
            prepareOutboxFile(outboxPath(config.outboxDir));
          },
        },
      };
    }
    case "outbox": {
      const stateFlag = flagValue(rest, "--state-dir");
      let outboxDir: string | undefined;
      try {
        outboxDir = resolveOutboxDir({
          agentId: flagValue(rest, "--agent-id"),
          stateDir: stateFlag,
        }, env);
      } catch {
        // The command reports the usage error.
      }
      return sandboxed(outboxGrants(outboxDir, stateFlag));
    }
    case "dev-relay":
      return sandboxed(devRelayGrants(flagValue(rest, "--db")));
    case "send":
      return sandboxed(sendGrants());
    default:
      return -1; // help, version, unknown: the CLI itself, here.
  }
}

/** Runs the command line in this isolate (the CLI loads only now: a run's launcher needs none of it). */
async function runHere(args: string[], env: Env): Promise<number> {
  const { main } = await importLazily<typeof import("../cli/mod.ts")>(
    "../cli/mod.ts",
    import.meta.url,
  );
  return await main(args, env);
}

/** Options of {@linkcode launcher}. */
export interface LauncherOptions {
  /** The Worker's entry module of each sandboxed command (src/entry/mod.ts). */
  workers: Record<WorkerCommand, URL>;
}

/** Plans the command line `argv`, then runs it in the sandbox's Worker; resolves with the exit code. */
export async function launcher(argv: string[], options: LauncherOptions): Promise<number> {
  // Deno's update check ignores --allow-net: never in this process or what it starts.
  Deno.env.set("DENO_NO_UPDATE_CHECK", "1");
  // `deno task start -- run ...` passes the `--` through.
  const args = argv[0] === "--" ? argv.slice(1) : argv;
  const env = readEnv();
  let planned: LaunchPlan | number;
  try {
    planned = plan(args, env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    report(error.message);
    return 2;
  }
  if (planned === -1) return await runHere(args, env);
  if (typeof planned === "number") return planned;
  const command = args[0];
  if (!isWorkerCommand(command)) throw new Error(`No Worker entry for the command "${command}"`);
  return await launch(options.workers[command], planned);
}
