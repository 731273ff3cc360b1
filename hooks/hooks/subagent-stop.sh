#!/usr/bin/env bash
# Claude Code SubagentStop hook: forwards its payload to agent-relay-runner (see lib.sh).
set -euo pipefail
here="${BASH_SOURCE[0]%/*}"
[ "$here" != "${BASH_SOURCE[0]}" ] || here=.
# shellcheck source=lib.sh
source "$here/lib.sh"
relay_hook subagent-stop
