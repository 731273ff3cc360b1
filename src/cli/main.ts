/**
 * The command line's entry: dispatches to `run`, `version`, `help`, `dev-relay`, `send`,
 * `outbox`, `status` and `attach`.
 *
 * Every command returns its exit code; usage errors print one line on stderr and return 2.
 *
 * @module
 */
import { readEnv, UsageError } from "../config/mod.ts";
import { versionLine } from "./build_info.ts";
import { HELP } from "./help.ts";

type Command = (args: string[], env: Record<string, string | undefined>) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  "run": async () => (await import("./run.ts")).runCommand,
  "dev-relay": async () => (await import("./dev_relay.ts")).devRelayCommand,
  "send": async () => (await import("./send.ts")).sendCommand,
  "outbox": async () => (await import("./outbox.ts")).outboxCommand,
  "status": async () => (await import("./status.ts")).statusCommand,
  "attach": async () => (await import("./attach.ts")).attachCommand,
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
    if (error instanceof UsageError) return printUsageError(error);
    // deno-lint-ignore no-console
    console.error(
      `agent-relay-runner: fatal: ${error instanceof Error ? error.message : String(error)}`,
    );
    return 1;
  }
}
