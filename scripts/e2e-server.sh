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
# upstream provider "Corp SSO" (scopes profile, offline_access). The provider
# is started, and answers, before the first instance starts, so once the
# first instance's /healthz answers both are up.
#
# $4: the folder for the databases and master keys (made afresh, removed at
# the end), so that tests can run the CLI on them; default a temporary one.
#
# Options, before the arguments:
#   --postgres URL   the first instance on PostgreSQL instead of SQLite: URL
#                    (postgres://USER@HOST:PORT/NAME, NAME of a-z, 0-9 and _)
#                    names a database that is dropped if it exists and made
#                    afresh (through psql on the same server's `postgres`
#                    database), and dropped again at the end. The provider
#                    stays on its own SQLite database in the folder.
#   --no-notes-api   no example API: Playwright then waits for the first
#                    instance's /healthz instead ($2 is ignored).
set -euo pipefail
postgres_url=""
notes_api=1
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) postgres_url="$2"; shift 2 ;;
    --no-notes-api) notes_api=0; shift ;;
    --) shift; break ;;
    --*) echo "e2e-server.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
port="${1:-3100}"
api_port="${2:-${NOTES_API_PORT:-3200}}"
upstream_port="${3:-${LATCHKEY_E2E_UPSTREAM_PORT:-3110}}"
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/latchkey/target}"
bin="$target/debug/latchkey"
api_bin="$target/debug/examples/notes_api"
if [ "$notes_api" = 1 ] && [ ! -x "$api_bin" ]; then
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
pg_db=""
# psql on the PostgreSQL server's maintenance database (as createdb does).
pg_admin() { PGOPTIONS="-c client_min_messages=warning" psql "${postgres_url%/*}/postgres" -X -q -v ON_ERROR_STOP=1 "$@"; }
# The servers are killed outright: a graceful shutdown takes them about 2 s
# each, and nothing of theirs is kept (Playwright sends SIGTERM to make this
# run). Bash's "Killed" notices go to /dev/null, psql's errors (fd 3) do not.
exec 3>&2
cleanup() {
  exec 2>/dev/null
  for pid in "${pids[@]}"; do kill -KILL "$pid" || true; done
  wait || true
  rm -rf "$dir"
  if [ -n "$pg_db" ]; then
    pg_admin -c "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" 2>&3 || true
  fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT
if [ -n "$postgres_url" ]; then
  name="${postgres_url##*/}"
  if ! [[ "$postgres_url" =~ ^postgres(ql)?:// && "$name" =~ ^[a-z0-9_]+$ ]]; then
    echo "e2e-server.sh: --postgres wants postgres://USER@HOST:PORT/NAME (NAME of a-z, 0-9, _), not $postgres_url" >&2
    exit 2
  fi
  if ! command -v psql >/dev/null; then
    echo "e2e-server.sh: --postgres needs psql (apt-get install postgresql-client)" >&2
    exit 1
  fi
  pg_db="$name"
  pg_admin -c "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)"
  pg_admin -c "CREATE DATABASE \"$pg_db\""
  export LATCHKEY_DATABASE_URL="$postgres_url"
else
  export LATCHKEY_DATABASE_URL="sqlite://$dir/latchkey.db"
fi
export LATCHKEY_MASTER_KEY_FILE="$dir/latchkey.key"
export LATCHKEY_ADDR="127.0.0.1:$port"
export LATCHKEY_ISSUER="http://127.0.0.1:$port"
export LEPTOS_SITE_ROOT="$root/target/site"
export LATCHKEY_LOG="${LATCHKEY_LOG:-warn}"
"$bin" demo >/dev/null

# The company's provider: the same binary on its own database and key.
upstream_issuer="http://localhost:$upstream_port"
upstream_env=(
  LATCHKEY_DATABASE_URL="sqlite://$dir/upstream.db"
  LATCHKEY_MASTER_KEY_FILE="$dir/upstream.key"
  LATCHKEY_ADDR="127.0.0.1:$upstream_port"
  LATCHKEY_ISSUER="$upstream_issuer"
)
upstream() { env "${upstream_env[@]}" "$bin" "$@"; }
printf '%s\n' carol-password-1 | upstream user add --username carol --password-stdin >/dev/null
client_json="$(upstream client add --name "Latchkey of the team" \
  --redirect-uri "$LATCHKEY_ISSUER/signin/upstream/callback" \
  --post-logout-redirect-uri "$LATCHKEY_ISSUER/signin" --json)"
{ read -r upstream_client_id; read -r upstream_client_secret; } < <(printf '%s' "$client_json" |
  python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["client"]["client_id"]); print(c["client_secret"])')
# One CLI call points the first instance at it. (--client-id=: a generated
# client id may begin with "-", which would read as an option otherwise.)
printf '%s\n' "$upstream_client_secret" | "$bin" upstream add --name "Corp SSO" \
  --issuer "$upstream_issuer" --client-id="$upstream_client_id" --client-secret-stdin \
  --scope profile --scope offline_access >/dev/null

# The provider first: the first instance's /healthz answering then means both
# are up (Playwright waits for that one alone with --no-notes-api).
wait_for() {
  for _ in $(seq 1 600); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "e2e-server.sh: $1 did not answer" >&2
  return 1
}
# Not through the function: $! must be the server itself, for cleanup to kill.
env "${upstream_env[@]}" "$bin" serve &
pids+=($!)
wait_for "$upstream_issuer/healthz"
"$bin" serve &
pids+=($!)

if [ "$notes_api" = 1 ]; then
  # The API's guard retries until Latchkey answers; waiting here only keeps
  # its log free of connection errors.
  wait_for "$LATCHKEY_ISSUER/healthz"
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
fi

wait -n "${pids[@]}"
