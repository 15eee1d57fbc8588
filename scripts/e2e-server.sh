#!/usr/bin/env bash
# Starts Latchkey for the end-to-end tests: a fresh SQLite database in a
# temporary folder, the demo data, on 127.0.0.1:$1. Run from end2end/ by Playwright.
set -euo pipefail
port="${1:-3100}"
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/latchkey/target}"
bin="$target/debug/latchkey"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
export LATCHKEY_DATABASE_URL="sqlite://$dir/latchkey.db"
export LATCHKEY_MASTER_KEY_FILE="$dir/latchkey.key"
export LATCHKEY_ADDR="127.0.0.1:$port"
export LATCHKEY_ISSUER="http://127.0.0.1:$port"
export LEPTOS_SITE_ROOT="$root/target/site"
export LATCHKEY_LOG="${LATCHKEY_LOG:-warn}"
"$bin" demo >/dev/null
exec "$bin" serve
