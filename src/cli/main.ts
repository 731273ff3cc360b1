/**
 * The command line's entry: dispatches to `run`, `version`, `help`, `dev-relay`, `send`,
 * `outbox`, `status` and `attach`.
 *
 * Every command returns its exit code; usage errors print one line on stderr and return 2.
 *
 * @module
 */
import { readEnv, UsageError } from "../config/mod.ts";
import { importLazily } from "../util/mod.ts";
import { versionLine } from "./build_info.ts";
import { HELP } from "./help.ts";

/** A command: its arguments (after its name) and the environment in, the exit code out. */
export type Command = (
  args: string[],
  env: Record<string, string | undefined>,
) => Promise<number>;

/**
 * Each command's module, loaded only when that command runs (src/util/import_lazily.ts; each call
 * names its module literally, so that the bundle can include it: scripts/bundle.ts).
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  "run": async () =>
    (await importLazily<typeof import("./run.ts")>("./run.ts", import.meta.url)).runCommand,
  "dev-relay": async () =>
    (await importLazily<typeof import("./dev_relay.ts")>("./dev_relay.ts", import.meta.url))
      .devRelayCommand,
  "send": async () =>
    (await importLazily<typeof import("./send.ts")>("./send.ts", import.meta.url)).sendCommand,
  "outbox": async () =>
    (await importLazily<typeof import("./outbox.ts")>("./outbox.ts", import.meta.url))
      .outboxCommand,
  "status": async () =>
    (await importLazily<typeof import("./status.ts")>("./status.ts", import.meta.url))
      .statusCommand,
  "attach": async () =>
    (await importLazily<typeof import("./attach.ts")>("./attach.ts", import.meta.url))
      .attachCommand,
};

function print(text: string): void {
  // deno-lint-ignore no-console
  console.log(text.replace(/\n$/, ""));
}

function isVersion(command: string): boolean {
  return command === "version" || command === "--version" || command === "-V";
}

/** Prints a usage error the way every command does: one line on stderr. */
export function printUsageError(error: UsageError): number {
  // deno-lint-ignore no-console
  console.error(`agent-relay-runner: ${error.message}`);
  return 2;
}

/**
 * Runs `command` with `args`, the way every command runs: a usage error prints one line and
 * returns 2; any other error prints one `fatal:` line and returns 1.
 */
export async function runGuarded(
  command: Command,
  args: string[],
  options: { env: Record<string, string | undefined> },
): Promise<number> {
  try {
    return await command(args, options.env);
  } catch (error) {
    return failed(error);
  }
}

function failed(error: unknown): number {
  if (error instanceof UsageError) return printUsageError(error);
  // deno-lint-ignore no-console
  console.error(
    `agent-relay-runner: fatal: ${error instanceof Error ? error.message : String(error)}`,
  );
  return 1;
}

/** Runs the command line; returns the exit code. */
export async function main(
  args: string[],
  env: Record<string, string | undefined> = readEnv(),
): Promise<number> {
  // `deno task start -- --help` passes the `--` through.
  const [command, ...rest] = args[0] === "--" ? args.slice(1) : args;
  try {
    if (command === undefined || command === "help" || command === "--help" || command === "-h") {
      const topic = command === "help" ? rest[0] : undefined;
      if (topic !== undefined && topic !== "help" && !isVersion(topic)) {
        const load = Object.hasOwn(COMMANDS, topic) ? COMMANDS[topic] : undefined;
        if (!load) throw new UsageError(`no help for "${topic}": no such command (try --help)`);
        return await (await load())(["--help"], env);
      }
      print(HELP);
      return command === undefined ? 2 : 0;
    }
    if (isVersion(command)) {
      print(versionLine());
      return 0;
    }
    const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!load) throw new UsageError(`unknown command "${command}" (try --help)`);
    return await (await load())(rest, env);
  } catch (error) {
    return failed(error);
  }
}
