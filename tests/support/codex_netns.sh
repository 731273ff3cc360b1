#!/usr/bin/env bash
# Runs the real Codex CLI inside a fresh loopback-only network namespace (test-only).
#
# Usage: codex_netns.sh CODEX_ARGS...   (a drop-in for the `codex` executable)
# Environment:
#   CODEX_NETNS_BIN     the real codex executable
#   CODEX_NETNS_SOCKET  unix socket of the mock Responses API (served by the test, outside)
#   CODEX_NETNS_PORT    the port the in-namespace forwarder listens on (config.toml's base_url)
#   CODEX_NETNS_DENO    the deno executable that runs the forwarder
#
# Inside the namespace only `lo` exists, so Codex can reach nothing but 127.0.0.1 there. The
# forwarder (codex_netns_forward.ts) pipes 127.0.0.1:$CODEX_NETNS_PORT to the mock's unix socket
# (the file system is shared; the network is not) and exits once Codex has exited. The script
# `exec`s Codex, so the spawner's pid is Codex's own pid: signals reach it directly.
set -euo pipefail
: "${CODEX_NETNS_BIN:?}" "${CODEX_NETNS_SOCKET:?}" "${CODEX_NETNS_PORT:?}" "${CODEX_NETNS_DENO:?}"
if [[ -z ${CODEX_NETNS_INSIDE:-} ]]; then
  export CODEX_NETNS_INSIDE=1
  exec unshare --user --map-root-user --net "$0" "$@"
fi
ip link set lo up
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# --allow-all: Deno reads /proc/PID/stat (to see Codex exit) only with all permissions.
# The forwarder says "ready" once it listens. (Probing the port instead could connect a probe
# to itself, which then held the port the forwarder needed.)
exec {forwarder}< <(DENO_NO_UPDATE_CHECK=1 "$CODEX_NETNS_DENO" run --no-config --no-lock \
  --allow-all "$here/codex_netns_forward.ts" "$CODEX_NETNS_PORT" "$CODEX_NETNS_SOCKET" "$$" \
  </dev/null)
if ! read -r -t 30 said <&"$forwarder" || [[ $said != ready ]]; then
  echo "codex_netns: the port forwarder did not start" >&2
  exit 97
fi
exec {forwarder}<&-
exec "$CODEX_NETNS_BIN" "$@"
