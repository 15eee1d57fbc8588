#!/usr/bin/env bash
# Starts Latchkey for the end-to-end tests: a fresh SQLite database in a
# temporary folder, the demo data, on 127.0.0.1:$1; then the guard crate's
# example API (`notes_api`, built by `cargo build -p latchkey-resource
# --example notes_api`) on 127.0.0.1:$2 (default $NOTES_API_PORT or 3200)
# against it with the demo resource server's credentials. Run from end2end/
# by Playwright, which waits for the API's /healthz: 200 once Latchkey is up
# and the API has loaded the revocation feed. Ends when any process ends.
#
# Besides, a second Latchkey plays the company's identity provider (issue
# 12): its own SQLite database and master key, on 127.0.0.1:$3 (default
# $LATCHKEY_E2E_UPSTREAM_PORT or 3110) with the issuer http://localhost:$3 —
# another host than the first instance's 127.0.0.1, so the browser keeps
# their session cookies apart (cookies tell hosts apart, not ports). It has
# the user `carol` (password `carol-password-1`) and a confidential client
# for the first instance's callback; the first instance has it as the
# upstream provider "Corp SSO" (scopes profile, offline_access).
#
# $4: the folder for the databases and master keys (made afresh, removed at
# the end), so that tests can run the CLI on them; default a temporary one.
set -euo pipefail
port="${1:-3100}"
api_port="${2:-${NOTES_API_PORT:-3200}}"
upstream_port="${3:-${LATCHKEY_E2E_UPSTREAM_PORT:-3110}}"
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/latchkey/target}"
bin="$target/debug/latchkey"
api_bin="$target/debug/examples/notes_api"
if [ ! -x "$api_bin" ]; then
  echo "e2e-server.sh: $api_bin is missing: cargo build -p latchkey-resource --example notes_api" >&2
  exit 1
fi
if [ -n "${4:-}" ]; then
  dir="$4"
  rm -rf "$dir"
  mkdir -p "$dir"
else
  dir="$(mktemp -d)"
fi
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

# The company's provider: the same binary on its own database and key.
upstream_issuer="http://localhost:$upstream_port"
upstream() {
  LATCHKEY_DATABASE_URL="sqlite://$dir/upstream.db" \
    LATCHKEY_MASTER_KEY_FILE="$dir/upstream.key" \
    LATCHKEY_ADDR="127.0.0.1:$upstream_port" \
    LATCHKEY_ISSUER="$upstream_issuer" \
    "$bin" "$@"
}
printf '%s\n' carol-password-1 | upstream user add --username carol --password-stdin >/dev/null
client_json="$(upstream client add --name "Latchkey of the team" \
  --redirect-uri "$LATCHKEY_ISSUER/signin/upstream/callback" \
  --post-logout-redirect-uri "$LATCHKEY_ISSUER/signin" --json)"
{ read -r upstream_client_id; read -r upstream_client_secret; } < <(printf '%s' "$client_json" |
  python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["client"]["client_id"]); print(c["client_secret"])')
# One CLI call points the first instance at it.
printf '%s\n' "$upstream_client_secret" | "$bin" upstream add --name "Corp SSO" \
  --issuer "$upstream_issuer" --client-id "$upstream_client_id" --client-secret-stdin \
  --scope profile --scope offline_access >/dev/null

upstream serve &
pids+=($!)
"$bin" serve &
pids+=($!)

# The API's guard retries until Latchkey answers; waiting here only keeps
# its log free of connection errors. Playwright waits for the API only, so
# the upstream must answer before the API starts, too.
for url in "$LATCHKEY_ISSUER/healthz" "$upstream_issuer/healthz"; do
  for _ in $(seq 1 600); do
    curl -fs -o /dev/null "$url" && break
    sleep 0.1
  done
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
