#!/usr/bin/env bash
# Fuzzes the admin API with schemathesis (PyPI) from its own OpenAPI document,
# /api/admin/openapi.json, with a real admin token: every answer must be no
# 5xx, a status code the document lists for the operation, and a body that
# matches the document's schema for that status.
#
#   bash scripts/schemathesis.sh            # short form (CI): few examples per operation
#   bash scripts/schemathesis.sh --long     # many more examples, every phase
#   bash scripts/schemathesis.sh --examples N [--seed S] [--keep]
#   LATCHKEY_BIN=path/to/latchkey bash scripts/schemathesis.sh   # that binary, no build
#
# What it does: installs schemathesis into a venv outside the clone
# ($HOME/.cache/latchkey/venv, LATCHKEY_VENV to change), builds the debug
# binary (the features CI's cargo test uses, so nothing is rebuilt), starts
# `latchkey serve` on a new SQLite database in a temp dir on a free port
# (3600-3699) with a stub site and the request limits off (the fuzzer sends
# far more requests than they allow), registers a client_credentials client
# with the latchkey:admin scope through the CLI, takes a token from
# /oauth/token and runs schemathesis against the server. The server's log and
# schemathesis's reports (JUnit, NDJSON) are kept when it fails (or --keep).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
REPO=$PWD
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/latchkey/target}"

SCHEMATHESIS_VERSION=4.32.5
VENV=${LATCHKEY_VENV:-$HOME/.cache/latchkey/venv}
EXAMPLES=8
PHASES=examples,coverage,fuzzing
SEED=${SCHEMATHESIS_SEED:-}
KEEP=0
while (($#)); do
  case $1 in
    --long) EXAMPLES=200; PHASES=examples,coverage,fuzzing,stateful ;;
    --examples) EXAMPLES=$2; shift ;;
    --seed) SEED=$2; shift ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "schemathesis.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '==> %s\n' "$*"; }
die() { printf 'schemathesis.sh: error: %s\n' "$*" >&2; exit 1; }

# --- schemathesis in its venv ----------------------------------------------------
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q " $SCHEMATHESIS_VERSION\$"; then
  say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# --- the server --------------------------------------------------------------------
if [[ -n ${LATCHKEY_BIN:-} ]]; then
  BIN=$LATCHKEY_BIN
  say "not building: fuzzing LATCHKEY_BIN=$BIN"
else
  say "building the debug binary (cargo build -p latchkey --features app/ssr)"
  cargo build --quiet -p latchkey --features app/ssr
  BIN=$CARGO_TARGET_DIR/debug/latchkey
fi
[[ -x $BIN ]] || die "no binary at $BIN"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-schemathesis.XXXXXX")
SERVER_PID=""
OK=0
cleanup() {
  local rc=$?
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ $OK == 1 && $KEEP == 0 ]]; then
    rm -rf "$TMP"
  else
    echo "schemathesis.sh: server log, database and reports kept in $TMP" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# `latchkey serve` refuses to start without the Leptos site; the admin API never serves it.
mkdir -p "$TMP/site/pkg"
: >"$TMP/site/pkg/latchkey.js"

MASTER_KEY=$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')
DB_URL="sqlite://$TMP/latchkey.db"
lk() {
  (cd "$TMP" && env LATCHKEY_DATABASE_URL="$DB_URL" LATCHKEY_MASTER_KEY="$MASTER_KEY" \
    LATCHKEY_LOG=warn "$BIN" "$@")
}

# A port in 3600-3699 that no socket uses.
free_port() {
  local port
  for _ in $(seq 200); do
    port=$((3600 + RANDOM % 100))
    if ! ss -Htan "sport = :$port" | grep -q .; then
      echo "$port"
      return 0
    fi
  done
  die "no free port in 3600-3699"
}

lk migrate >/dev/null
# Something for the list, read and update operations to find: a user (the
# last admin: demoting or disabling it must answer 409, not fail) and a client.
printf '%s\n' 'schemathesis-password-123' |
  lk user add --username fuzz-admin --admin --password-stdin >/dev/null
lk client add --name "Fuzzed app" --redirect-uri https://app.example/cb >/dev/null
json=$(lk client add --json --name "Schemathesis" --grant-type client_credentials --scope latchkey:admin)
CLIENT_ID=$(jq -er .client.client_id <<<"$json")
SECRET=$(jq -er .client_secret <<<"$json")
# A long-lived token: a long run outlasts the default access token lifetime.
lk client set --access-ttl 24h -- "$CLIENT_ID" >/dev/null

start_server() {
  PORT=$(free_port)
  BASE="http://127.0.0.1:$PORT"
  (cd "$TMP" && exec env \
    LATCHKEY_DATABASE_URL="$DB_URL" \
    LATCHKEY_MASTER_KEY="$MASTER_KEY" \
    LATCHKEY_ADDR="127.0.0.1:$PORT" \
    LATCHKEY_ISSUER="$BASE" \
    LATCHKEY_LOG=info \
    LATCHKEY_RATE_LIMIT_PER_IP=off \
    LATCHKEY_RATE_LIMIT_PER_CLIENT=off \
    LEPTOS_SITE_ROOT="$TMP/site" \
    "$BIN" serve) >"$TMP/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || { wait "$SERVER_PID" || true; SERVER_PID=""; return 1; }
    curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
started=0
for attempt in 1 2 3; do
  if start_server; then started=1; break; fi
  grep -qE 'Address already in use|EADDRINUSE' "$TMP/server.log" || break
  say "port taken; retrying (attempt $attempt)"
done
((started)) || { tail -n 30 "$TMP/server.log" >&2; die "the server did not start"; }
say "latchkey serve on $BASE (log: $TMP/server.log)"

TOKEN=$(curl -sS -u "$CLIENT_ID:$SECRET" -d grant_type=client_credentials -d scope=latchkey:admin \
  "$BASE/oauth/token" | jq -er .access_token) || die "no admin access token from /oauth/token"
curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE/api/admin/clients" ||
  die "the admin token is refused by /api/admin/clients"

# --- schemathesis --------------------------------------------------------------------
say "schemathesis $SCHEMATHESIS_VERSION: $EXAMPLES examples per operation, phases $PHASES${SEED:+, seed $SEED}"
args=(
  run "$BASE/api/admin/openapi.json"
  --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance
  --max-examples "$EXAMPLES"
  --phases "$PHASES"
  --workers 1
  --request-timeout 30
  --report junit,ndjson --report-dir "$TMP/report"
  --output-truncate true
  # Tokens must not end up in the reports or the output.
  --output-sanitize true
)
[[ -n $SEED ]] && args+=(--seed "$SEED")
# The token: a fresh one for every request (scripts/schemathesis_hooks.py).
set +e
(cd "$TMP" && env SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$REPO/scripts" \
  LATCHKEY_BASE="$BASE" LATCHKEY_BIN="$BIN" LATCHKEY_WORK="$TMP" \
  LATCHKEY_DATABASE_URL="$DB_URL" LATCHKEY_MASTER_KEY="$MASTER_KEY" LATCHKEY_LOG=warn \
  LATCHKEY_ADMIN_CLIENT_ID="$CLIENT_ID" LATCHKEY_ADMIN_SECRET="$SECRET" \
  "$VENV/bin/schemathesis" "${args[@]}")
rc=$?
set -e

# A panic or an internal error is a fault even when its answer looked right.
if grep -E 'panicked|ERROR' "$TMP/server.log" | grep -v 'admin API: .* failed' | head -5 | grep -q .; then
  echo "schemathesis.sh: the server logged panics or errors:" >&2
  grep -E 'panicked|ERROR' "$TMP/server.log" | head -5 >&2
  rc=1
fi
((rc == 0)) || die "schemathesis found faults (exit $rc); see above and $TMP"
OK=1
say "schemathesis: no faults"
