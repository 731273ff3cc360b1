# shellcheck shell=bash
# Shared library of the agent-relay-runner Claude Code hooks (sourced, never run).
#
# Each hook script is thin: it calls `relay_hook <event>`, which forwards the hook's stdin,
# unchanged, to the runner's control server (POST /hooks/<event> on 127.0.0.1) and prints the
# runner's answer on stdout, where Claude Code reads it. All logic lives in the runner.
#
# Rules:
# - Outside a runner (no AGENT_RELAY_RUNNER_PORT) a hook reads its stdin, prints nothing and
#   exits 0.
# - Before the secret goes anywhere: AGENT_RELAY_RUNNER_PORT must be a port number (digits, 1 to
#   65535; "80@x.invalid" would have curl resolve another host), and the runner that started
#   the provider (AGENT_RELAY_RUNNER_PID, when set) must still be alive, ours, and a runner
#   (comm `deno` or `agent-relay-run...`). Otherwise the hook gives up: one line on stderr, no
#   curl at all, nothing on stdout, exit 0. An orphaned provider never hands the secret to
#   whatever listens on the dead runner's port.
# - Every curl call is bounded: --max-time 2 for the forward, 1 s for the fatal report and for
#   the Stop hook's idle fallback, so a hook never runs longer than about 4 s (hooks.json: 5 s)
#   whatever the runner or the relay is doing.
# - The bearer secret is handed to curl on a file descriptor (-H @/dev/fd/3), never on its
#   command line, where other local users could read it in the process list.
# - Any unexpected failure (ERR, or an exit with a non-zero status) is reported once as
#   {hook, error} to POST /hook-fatal, where the runner logs it FATAL; the hook then exits 0 so
#   the provider is never disturbed.
# - The Stop hook posts {"status":"idle"} to /status on exit when forwarding failed: the turn
#   must end even if the runner missed the Stop. When forwarding succeeded the runner has
#   decided (ended the turn, or deliberately blocked it) and nothing more is sent.
# - No jq: the only JSON built here is the fatal report, escaped by relay__json_escape.

RELAY_HOOK=""
RELAY_BASE=""
RELAY_FORWARDED=0
RELAY_REPORTED=0

# relay_hook EVENT - forward stdin to /hooks/EVENT and print the answer.
relay_hook() {
  RELAY_HOOK="$1"
  if [ -z "${AGENT_RELAY_RUNNER_PORT:-}" ]; then
    relay__give_up ""
  fi
  local port="${AGENT_RELAY_RUNNER_PORT}"
  if [[ ! "$port" =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
    relay__give_up "AGENT_RELAY_RUNNER_PORT is not a port number (1 to 65535)"
  fi
  local why
  if ! why="$(relay__runner_alive)"; then
    relay__give_up "$why"
  fi
  RELAY_BASE="http://127.0.0.1:$((10#$port))"
  set -o errtrace
  trap 'relay__on_err "$?" "$BASH_COMMAND"' ERR
  trap relay__on_exit EXIT
  curl -fsS --max-time 2 -X POST \
    -H @/dev/fd/3 -H 'Content-Type: application/json' \
    --data-binary @- "${RELAY_BASE}/hooks/${RELAY_HOOK}" \
    3<<<"Authorization: Bearer ${AGENT_RELAY_RUNNER_SECRET:-}"
  RELAY_FORWARDED=1
  exit 0
}

# relay__give_up WHY - read stdin, say WHY on stderr (if any), print nothing, exit 0; no curl.
relay__give_up() {
  # Read the payload anyway, so the provider's write never hits a closed pipe.
  [ -t 0 ] || cat >/dev/null 2>&1 || true
  if [ -n "$1" ]; then
    printf 'agent-relay-runner %s hook: %s; not forwarding\n' "$RELAY_HOOK" "$1" >&2 || true
  fi
  exit 0
}

# relay__runner_alive - succeeds when AGENT_RELAY_RUNNER_PID is unset, or names a live process
# of this user that is a runner; otherwise prints why not and fails.
relay__runner_alive() {
  local pid="${AGENT_RELAY_RUNNER_PID:-}" comm="" exe=""
  [ -z "$pid" ] && return 0
  if [[ ! "$pid" =~ ^[1-9][0-9]{0,9}$ ]]; then
    printf 'AGENT_RELAY_RUNNER_PID is not a process id'
    return 1
  fi
  if [ ! -O "/proc/$pid" ]; then
    printf 'the runner (pid %s) is gone' "$pid"
    return 1
  fi
  { read -r comm <"/proc/$pid/comm"; } 2>/dev/null || true
  case "$comm" in
    deno | agent-relay-run*) return 0 ;;
  esac
  # A renamed binary: the first word of its command line.
  { IFS= read -r -d '' exe <"/proc/$pid/cmdline"; } 2>/dev/null || true
  case "${exe##*/}" in
    deno | agent-relay-runner*) return 0 ;;
  esac
  printf 'pid %s is not the runner (it is %s)' "$pid" "${comm:-unknown}"
  return 1
}

# relay__json_escape TEXT - TEXT as the inside of a JSON string.
relay__json_escape() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"
  s="${s//$'\r'/\\r}"
  s="${s//$'\t'/\\t}"
  s="${s//[$'\001'-$'\037']/ }"
  printf '%s' "$s"
}

# relay__post PATH BODY MAX_TIME - best-effort POST; never fails, prints nothing.
relay__post() {
  curl -fsS --max-time "$3" -X POST \
    -H @/dev/fd/3 -H 'Content-Type: application/json' \
    --data-binary "$2" "${RELAY_BASE}$1" \
    3<<<"Authorization: Bearer ${AGENT_RELAY_RUNNER_SECRET:-}" >/dev/null 2>&1 || true
}

# relay__report_fatal DETAIL - POST {hook, error} to /hook-fatal (once), and say it on stderr.
relay__report_fatal() {
  [ "$RELAY_REPORTED" = 1 ] && return 0
  RELAY_REPORTED=1
  local hook error
  hook="$(relay__json_escape "$RELAY_HOOK")"
  error="$(relay__json_escape "$1")"
  relay__post /hook-fatal "{\"hook\":\"${hook}\",\"error\":\"${error}\"}" 1
  printf 'agent-relay-runner %s hook: %s\n' "$RELAY_HOOK" "$1" >&2 || true
}

# relay__describe STATUS COMMAND - a sentence for a failed command (curl's codes explained).
relay__describe() {
  case "$2" in
    curl*)
      case "$1" in
        6 | 7) printf 'the runner is not reachable on 127.0.0.1:%s' "${AGENT_RELAY_RUNNER_PORT}" ;;
        22) printf 'the runner answered the %s hook with an HTTP error' "$RELAY_HOOK" ;;
        23) printf 'writing the answer to stdout failed' ;;
        26) printf 'reading the hook payload from stdin failed' ;;
        28) printf 'the runner did not answer within 2 s' ;;
        *) printf 'forwarding to the runner failed' ;;
      esac
      printf ' (curl exit %s)' "$1"
      ;;
    *) printf 'the hook failed (exit %s: %s)' "$1" "${2%%$'\n'*}" ;;
  esac
}

relay__on_err() {
  local status="$1" command="$2"
  trap - ERR
  set +e
  relay__report_fatal "$(relay__describe "$status" "$command")"
  exit 0
}

relay__on_exit() {
  local status=$?
  trap - ERR EXIT
  set +e
  [ "$status" = 0 ] || relay__report_fatal "the hook exited with status ${status}"
  if [ "$RELAY_HOOK" = stop ] && [ "$RELAY_FORWARDED" != 1 ]; then
    relay__post /status '{"status":"idle","source":"stop-hook"}' 1
  fi
  exit 0
}
