#!/usr/bin/env bash
# Installs the real provider CLIs, at pinned versions, into .tmp/providers (test-only; never
# committed). Idempotent: an installed pinned version is kept. Used by .ci/run and by developers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CLAUDE_VERSION="2.1.331"
CODEX_VERSION="0.169.0"
root=".tmp/providers"
install() { # name package version
  local dir="$root/$1" pkg="$2" version="$3"
  if [[ -f "$dir/node_modules/$pkg/package.json" ]] &&
    grep -q "\"version\": \"$version\"" "$dir/node_modules/$pkg/package.json"; then
    return 0
  fi
  mkdir -p "$dir"
  echo "installing $pkg@$version into $dir" >&2
  # The native binary arrives as an optional dependency: never pass --omit=optional.
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "$pkg@$version" >&2
}
want="${1:-all}"
if [[ $want == all || $want == claude ]]; then install claude @anthropic-ai/claude-code "$CLAUDE_VERSION"; fi

if [[ $want == all || $want == codex ]]; then install codex @openai/codex "$CODEX_VERSION"; fi
