/**
 * The command line's entry: dispatches to `run`, `version`, `help`, `dev-relay`, `send` and `outbox`.
 *
 * Every command returns its exit code; usage errors print one line on stderr and return 2.
 *
 * @module
 */
import { readEnv, UsageError } from "../config/mod.ts";
import { VERSION } from "../version.ts";
import { HELP } from "./help.ts";

type Command = (args: string[], env: Record<string, string | undefined>) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  "run": async () => (await import("./run.ts")).runCommand,
  "dev-relay": async () => (await import("./dev_relay.ts")).devRelayCommand,
  "send": async () => (await import("./send.ts")).sendCommand,
  "outbox": async () => (await import("./outbox.ts")).outboxCommand,
};

function print(text: string): void {
  // deno-lint-ignore no-console
  console.log(text.replace(/\n$/, ""));
}

/** Prints a usage error the way every command does: one line on stderr. */
export function printUsageError(error: UsageError): number {
  // deno-lint-ignore no-console
  console.error(`agent-relay-runner: ${error.message}`);
  return 2;
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
      if (command === "help" && rest[0] && COMMANDS[rest[0]]) {
        return await (await COMMANDS[rest[0]]!())(["--help"], env);
      }
      print(HELP);
      return command === undefined ? 2 : 0;
    }
    if (command === "version" || command === "--version" || command === "-V") {
      print(`agent-relay-runner ${VERSION}`);
      return 0;
    }
    const load = COMMANDS[command];
    if (!load) throw new UsageError(`unknown command "${command}" (try --help)`);
    return await (await load())(rest, env);
  } catch (error) {
    if (error instanceof UsageError) return printUsageError(error);
    // deno-lint-ignore no-console
    console.error(
      `agent-relay-runner: fatal: ${error instanceof Error ? error.message : String(error)}`,
    );
    return 1;
  }
}
