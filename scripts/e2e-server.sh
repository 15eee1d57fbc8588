#!/usr/bin/env bash
# Starts Latchkey for the end-to-end tests: a fresh SQLite database in a
# temporary folder, the demo data, on 127.0.0.1:$1; then the guard crate's
# example API (`notes_api`, built by `cargo build -p latchkey-resource
# --example notes_api`) on 127.0.0.1:$2 (default $NOTES_API_PORT or 3200)
# against it with the demo resource server's credentials. Run from end2end/
# by Playwright, which waits for the API's /healthz: 200 once Latchkey is up
# and the API has loaded the revocation feed. Ends when either process ends.
set -euo pipefail
port="${1:-3100}"
api_port="${2:-${NOTES_API_PORT:-3200}}"
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/latchkey/target}"
bin="$target/debug/latchkey"
api_bin="$target/debug/examples/notes_api"
if [ ! -x "$api_bin" ]; then
  echo "e2e-server.sh: $api_bin is missing: cargo build -p latchkey-resource --example notes_api" >&2
  exit 1
fi
dir="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
export LATCHKEY_DATABASE_URL="sqlite://$dir/latchkey.db"
export LATCHKEY_MASTER_KEY_FILE="$dir/latchkey.key"
export LATCHKEY_ADDR="127.0.0.1:$port"
export LATCHKEY_ISSUER="http://127.0.0.1:$port"
export LEPTOS_SITE_ROOT="$root/target/site"
export LATCHKEY_LOG="${LATCHKEY_LOG:-warn}"
"$bin" demo >/dev/null
"$bin" serve &
pids+=($!)

# The API's guard retries until Latchkey answers; waiting here only keeps
# its log free of connection errors.
for _ in $(seq 1 600); do
  curl -fs -o /dev/null "$LATCHKEY_ISSUER/healthz" && break
  sleep 0.1
done

# The demo data registers `demo-notes-api` as the resource server
# http://127.0.0.1:3200 (its audience, whatever port the API listens on).
LATCHKEY_ISSUER="$LATCHKEY_ISSUER" \
  NOTES_API_CLIENT_ID=demo-notes-api \
  NOTES_API_CLIENT_SECRET=demo-notes-api-secret-for-local-use-only \
  NOTES_API_AUDIENCE=http://127.0.0.1:3200 \
  NOTES_API_ADDR="127.0.0.1:$api_port" \
  RUST_LOG="${RUST_LOG:-warn}" \
  "$api_bin" >/dev/null &
pids+=($!)

wait -n "${pids[@]}"
