/**
 * The top-level help text, shared by `help`, `--help` and `run --help`.
 *
 * @module
 */
import { VERSION } from "../version.ts";

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
  --token-file PATH         a 0600 file holding the relay token (or AGENT_RELAY_TOKEN_FILE): keeps
                            the token out of every process environment
  --hooks http|bash         how Claude Code's hooks reach the runner (default bash)
  --turn-retries N          how often a failed turn is tried again before its messages get a
                            failure reply (0 to 10, default 1)
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
