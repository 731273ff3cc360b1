/**
 * The top-level help text, shared by `help`, `--help` and `run --help`. Its environment section
 * names every variable of `ENV_VARS` (src/config/env.ts); a test keeps the two equal.
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
  agent-relay-runner status --agent-id ID [--state-dir DIR] [--json]
  agent-relay-runner attach --agent-id ID [--as NAME] [--since N] [--relay-url URL]
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
  --log-file PATH|-         the log file (default <log-dir>/session-mirror-<agent>.log); - writes
                            the log to stderr (Docker, journald)
  --log-level LEVEL         debug | info | warn | error | fatal (default info)
  --log-format FORMAT       text | json (default text; json lines carry agentId and pid)
  --log-max-bytes N         rotate the log file past N bytes (default 10485760)
  --log-files N             log files kept, the live one included (default 5)
  --control-port N          the control server's port on 127.0.0.1 (default 0: any free port)
  --info-file PATH          the runner-info JSON file (default <state-dir>/runner-info.json)
  --permission-policy P     allow | deny | ask-relay: how tool-permission requests are answered
                            (default ask-relay, which falls back to deny within the hook budget)
  --token-file PATH         a 0600 file holding the relay token (or AGENT_RELAY_TOKEN_FILE): keeps
                            the token out of every process environment
  --hooks http|bash         how Claude Code's hooks reach the runner (default http)
  --turn-retries N          how often a failed turn is tried again before its messages get a
                            failure reply (0 to 10, default 1)
  --restart-max N           give up (exit 1) when the provider exits more than N times within
                            the window, each after a short run (default 5)
  --restart-window S        the window those exits are counted in, seconds (default 60)
  --restart-backoff MS      the first restart delay, doubled per recent exit (default 500)
  --stop-timeout S          the graceful stop budget on SIGTERM/SIGINT/SIGHUP, seconds (default
                            8): the provider gets all but the last flush (at most 3 s); give a
                            supervisor a longer stop timeout
  -h, --help                this help

status options:
  --agent-id ID, --state-dir DIR   the runner to ask (as given to run)
  --json                    print the runner's /status object

attach options (watch a running agent; a line typed on stdin is sent to it; Ctrl-C detaches):
  --agent-id ID, --state-dir DIR   the runner to attach to (as given to run)
  --as NAME                 who typed lines come from (default operator)
  --since N                 first replay the agent's last N mirror events from the relay
  --relay-url URL           the relay for typed lines and replays (or AGENT_RELAY_URL)
  colours are off when NO_COLOR is set or stdout is not a terminal

Environment (a flag wins over its variable; every variable the runner reads):
  AGENT_RELAY_URL               the relay (--relay-url)
  AGENT_RELAY_TOKEN             the relay's bearer token (never logged)
  AGENT_RELAY_TOKEN_FILE        a 0600 file holding the token (--token-file)
  AGENT_RELAY_HOME              base dir for logs and state (default ~/.agent-relay)
  AGENT_RELAY_LOG_LEVEL         debug|info|warn|error|fatal (--log-level)
  AGENT_RELAY_SESSION_DEBUG=1   debug logging, unless AGENT_RELAY_LOG_LEVEL is set
  AGENT_RELAY_RUNNER_OUTBOX_DIR where the durable outbox lives (default <state-dir>/outbox)
  AGENT_RELAY_RUNNER_INFO_FILE  the runner-info file (--info-file)
  AGENT_RELAY_WORKSPACE_JSON    workspace metadata (mode, deps, symlinks) for the first prompt
  AGENT_RELAY_PERMISSION_POLICY allow|deny|ask-relay (--permission-policy)
  AGENT_RELAY_CLAUDE_BIN        the Claude Code executable (default claude)
  AGENT_RELAY_CODEX_BIN         the Codex executable (default codex)
  CLAUDE_CONFIG_DIR             Claude Code's config dir (its transcripts), granted for reading
  CODEX_HOME                    the Codex home dir, granted for reading
  HOME                          the default base dir's parent (~/.agent-relay)
  DENO_SERVE_ADDRESS            read only to refuse it: the control server stays on 127.0.0.1

Examples:
  agent-relay-runner dev-relay --port 8787
  agent-relay-runner run --agent-id echo --relay-url http://127.0.0.1:8787 \\
      --provider command -- ./examples/echo-agent
  AGENT_RELAY_TOKEN=dev agent-relay-runner run --agent-id alice --provider claude \\
      --relay-url http://127.0.0.1:8787 --cwd ~/src/project
  agent-relay-runner send --relay http://127.0.0.1:8787 --to echo --wait-reply 10 "hello"
  agent-relay-runner status --agent-id echo
  AGENT_RELAY_URL=http://127.0.0.1:8787 agent-relay-runner attach --agent-id echo --since 20

Signals: SIGTERM, SIGINT and SIGHUP stop gracefully (within --stop-timeout); a second one exits
at once.
Exit codes: 0 clean stop; 1 provider gave up or fatal runtime error (the reason on stderr);
2 bad usage (one line on stderr; a supervisor should not restart).
Docs: README.md and docs/ in the source tree.
`;
