/**
 * The command line: `run`, `version`, `help`, `dev-relay`, `send` and `outbox`.
 *
 * Every command returns its exit code; usage errors print one line on stderr and return 2.
 *
 * @module
 */
import { UsageError } from "./config.ts";
import { VERSION } from "./version.ts";
import { readEnv } from "./env.ts";

/** The top-level help text. */
export const HELP = `agent-relay-runner ${VERSION}
Runs one AI coding agent (Claude Code, Codex, or any command) and bridges it to an Agent Relay
server: messages in, status and session events out, a localhost control server for its hooks.

Usage:
  agent-relay-runner run --agent-id ID --relay-url URL [options] [-- provider args]
  agent-relay-runner dev-relay [--port 8787] [--db FILE] [--token dev]
  agent-relay-runner send --relay URL --to AGENT [--from user] [--token T] [--wait-reply S] TEXT
  agent-relay-runner outbox stats|list|poisoned|requeue|purge --agent-id ID [--state-dir DIR]
  agent-relay-runner version
  agent-relay-runner help [COMMAND]

run options:
  --agent-id ID             the agent's id on the relay (required)
  --provider NAME           claude | codex | command (default claude)
  --relay-url URL           the relay, http(s) on a loopback host (required; or AGENT_RELAY_URL)
  --cwd DIR                 the agent's working directory (default: the current one)
  --state-dir DIR           state: outbox, session ids, hook plugin
                            (default $AGENT_RELAY_HOME/state/<agent>)
  --log-dir DIR             where session-mirror-<agent>.log goes (default $AGENT_RELAY_HOME/logs)
  --log-level LEVEL         debug | info | warn | error | fatal (default info)
  --log-format FORMAT       text | json (default text)
  --control-port N          the control server's port on 127.0.0.1 (default 0: any free port)
  --info-file PATH          the runner-info JSON file (default <state-dir>/runner-info.json)
  --permission-policy P     allow | deny | ask-relay: how tool-permission requests are answered
                            (default ask-relay, which falls back to deny within the hook budget)
  -h, --help                this help

Environment (a flag wins over its variable):
  AGENT_RELAY_TOKEN             the relay's bearer token (never logged)
  AGENT_RELAY_HOME              base dir for logs and state (default ~/.agent-relay)
  AGENT_RELAY_LOG_LEVEL         debug|info|warn|error|fatal
  AGENT_RELAY_SESSION_DEBUG=1   debug logging, unless AGENT_RELAY_LOG_LEVEL is set
  AGENT_RELAY_RUNNER_OUTBOX_DIR where the durable outbox lives (default <state-dir>/outbox)
  AGENT_RELAY_RUNNER_INFO_FILE  the runner-info file
  AGENT_RELAY_WORKSPACE_JSON    workspace metadata (mode, deps, symlinks) for the first prompt

Examples:
  agent-relay-runner dev-relay --port 8787
  agent-relay-runner run --agent-id echo --relay-url http://127.0.0.1:8787 \\
      --provider command -- ./examples/echo-agent
  AGENT_RELAY_TOKEN=dev agent-relay-runner run --agent-id alice --provider claude \\
      --relay-url http://127.0.0.1:8787 --cwd ~/src/project
  agent-relay-runner send --relay http://127.0.0.1:8787 --to echo --wait-reply 10 "hello"

Exit codes: 0 clean stop; 1 provider gave up or fatal runtime error; 2 bad usage.
Docs: README.md and docs/ in the source tree.
`;

type Command = (args: string[], env: Record<string, string | undefined>) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  "run": async () => (await import("./run_command.ts")).runCommand,
  "dev-relay": async () => (await import("./dev_relay_cli.ts")).devRelayCommand,
  "send": async () => (await import("./send_cli.ts")).sendCommand,
  "outbox": async () => (await import("./outbox_cli.ts")).outboxCommand,
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
