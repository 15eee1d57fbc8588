#!/usr/bin/env bash
# Latchkey load benchmark: builds the server in release, starts it on each
# backend (SQLite, and PostgreSQL when one answers on 127.0.0.1), prepares
# users, clients and tokens with the CLI and real authorization-code flows,
# measures the token, introspection and refresh endpoints with wrk, and prints
# one Markdown table compared against the targets.
#
# Exits non-zero only when the harness itself fails (build, start-up, data
# preparation, wrk); a missed target is reported in the table, not as failure.
#
# Knobs (environment):
#   BENCH_BACKENDS        "sqlite postgres" (postgres is skipped if pg_isready says no)
#   BENCH_DURATION        measured run per row, wrk -d (default 10s)
#   BENCH_WARMUP          warm-up run before each row (default 2s)
#   BENCH_THREADS         wrk -t for client_credentials/introspection (default 2)
#   BENCH_CONNS           wrk -c for client_credentials/introspection (default 32)
#   BENCH_REFRESH_CONNS   N for the refresh rows: wrk -tN -cN (default 8)
#   BENCH_CHAIN_USERS     how many users the N rotation chains belong to (default 1:
#                         every chain is the same user+client, so the same grant row)
#   BENCH_PG_HOST/USER    PostgreSQL to create the scratch database on (127.0.0.1/postgres)
#   BENCH_LOG             server log filter, LATCHKEY_LOG (default info)
#   BENCH_KEEP=1          keep the temporary directory (logs, SQLite file) afterwards
#   CARGO_TARGET_DIR      build directory (default ~/.cache/latchkey/target)
#   BENCH_BIN             measure this latchkey binary instead of building one
#                         (e.g. one built from another checkout, to compare)
#   BENCH_ROWS            which rows to run (default "cc introspection rotation norotation revocation growth";
#                         growth runs bench/growth.sh on the same binary after the backends; its own
#                         knobs, e.g. BENCH_GROWTH_N, pass through the environment)

set -euo pipefail
shopt -s inherit_errexit

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNS:-32}
REFRESH_CONNS=${BENCH_REFRESH_CONNS:-8}
ROWS_WANTED=" ${BENCH_ROWS:-cc introspection rotation norotation revocation growth} "
CHAIN_USERS=${BENCH_CHAIN_USERS:-1}
PG_HOST=${BENCH_PG_HOST:-127.0.0.1}
PG_USER=${BENCH_PG_USER:-postgres}
SERVER_LOG_LEVEL=${BENCH_LOG:-info}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/latchkey/target}
BIN=${BENCH_BIN:-$CARGO_TARGET_DIR/release/latchkey}

# Targets (requests/s; introspection also p99 in ms).
TARGET_CC_RPS=4000
TARGET_INTROSPECT_RPS=10000
TARGET_INTROSPECT_P99_MS=5
TARGET_REFRESH_RPS=2000

# What the benchmark registers.
USERNAME=bench    # users are bench1, bench2, ... (BENCH_CHAIN_USERS of them)
PASSWORD=bench-password-123
REDIRECT_URI=https://bench.example/cb
REDIRECT_URI_NOROTATE=https://bench-norotate.example/cb

say() { printf '==> %s\n' "$*"; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }

for tool in cargo wrk curl jq ss base64 awk; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

# --- state the cleanup trap needs -------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-bench.XXXXXX")
SERVER_PID=""
SERVER_LOG=""
PG_DB=""         # scratch database currently created (dropped at exit)
OK=0             # set to 1 when everything ran: the temp dir is then removed

stop_server() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    # Graceful shutdown first; SIGKILL if it does not stop within 5 s.
    for _ in $(seq 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

drop_pg_db() {
  if [[ -n $PG_DB ]]; then
    dropdb -h "$PG_HOST" -U "$PG_USER" --if-exists "$PG_DB" || true
    PG_DB=""
  fi
}

cleanup() {
  local rc=$?
  stop_server
  drop_pg_db
  if [[ $OK == 1 && ${BENCH_KEEP:-0} != 1 ]]; then
    rm -rf "$TMP"
  else
    echo "run.sh: logs and data kept in $TMP" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. build ------------------------------------------------------------------
if [[ -n ${BENCH_BIN:-} ]]; then
  say "not building: measuring BENCH_BIN=$BIN"
  BUILD_NOTE="binary $BIN (not built)"
  [[ -x $BIN ]] || die "BENCH_BIN=$BIN is not an executable"
else
  say "building: cargo build --release -p latchkey (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  build_start=$(date +%s.%N)
  (cd "$REPO" && cargo build --release -p latchkey)
  build_end=$(date +%s.%N)
  BUILD_SECS=$(awk -v a="$build_start" -v b="$build_end" 'BEGIN { printf "%.1f", b - a }')
  BUILD_NOTE="build ${BUILD_SECS}s"
  say "build took ${BUILD_SECS}s"
  [[ -x $BIN ]] || die "no binary at $BIN after the build"
fi

# `latchkey serve` refuses to start without the Leptos site (pkg/latchkey.js).
# The protocol endpoints measured here never serve it, so a stub site will do.
mkdir -p "$TMP/site/pkg"
: >"$TMP/site/pkg/latchkey.js"

# --- helpers for one backend ------------------------------------------------------
# Per-backend settings, set by run_backend: WORK (cwd and data dir), DB_URL,
# MASTER_KEY, PORT, BASE (the issuer). Each user's browser is a cookie jar,
# $WORK/cookies-<user>.txt.

# The CLI with this backend's settings; run from WORK so no relative default
# path (data/...) can land in the source tree.
lk() {
  (cd "$WORK" && env \
    LATCHKEY_DATABASE_URL="$DB_URL" \
    LATCHKEY_MASTER_KEY="$MASTER_KEY" \
    LATCHKEY_MASTER_KEY_FILE="$WORK/latchkey.key" \
    LATCHKEY_LOG=warn \
    "$BIN" "$@")
}

# CPU time (user + system, in clock ticks) the server has used so far.
CLK_TCK=$(getconf CLK_TCK)
server_cpu_ticks() {
  # Fields after the ")" of the command name: utime and stime are the 12th and 13th.
  sed 's/.*) //' "/proc/$SERVER_PID/stat" | awk '{ print $12 + $13 }'
}

# A port no socket uses. Picked below the kernel's ephemeral range, so that
# wrk's and curl's outgoing connections cannot be holding it already.
free_port() {
  local port low
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  ((low > 11000)) || low=32768
  for _ in $(seq 100); do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! ss -Htan "sport = :$port" | grep -q .; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found"
}

# A fresh master key: 32 random bytes, unpadded base64url.
new_master_key() {
  head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='
}

# "Basic base64(id:secret)" (ids and secrets are base64url: nothing to escape).
basic() { printf 'Basic %s' "$(printf '%s:%s' "$1" "$2" | base64 -w0)"; }

uri_encode() { jq -rn --arg v "$1" '$v | @uri'; }

# Registers a client and prints "client_id secret".
add_client() {
  local json
  json=$(lk client add --json "$@")
  jq -er '"\(.client.client_id) \(.client_secret)"' <<<"$json"
}

# Starts `latchkey serve` on PORT and waits until it answers. Another process
# can still take the port between free_port and the bind: then it tries again
# on a new port (3 attempts).
start_server() {
  local attempt
  for attempt in 1 2 3; do
    if try_start_server; then
      return 0
    fi
    if ((attempt < 3)) && grep -q 'Address already in use' "$SERVER_LOG"; then
      PORT=$(free_port)
      BASE="http://127.0.0.1:$PORT"
      say "port taken; retrying on $BASE"
      continue
    fi
    echo "--- last lines of $SERVER_LOG ---" >&2
    tail -n 30 "$SERVER_LOG" >&2 || true
    die "the server did not start"
  done
}

# One start attempt; returns non-zero if the server exits or does not answer
# /healthz within 30 s.
try_start_server() {
  SERVER_LOG=$WORK/server.log
  (cd "$WORK" && exec env \
    LATCHKEY_DATABASE_URL="$DB_URL" \
    LATCHKEY_MASTER_KEY="$MASTER_KEY" \
    LATCHKEY_MASTER_KEY_FILE="$WORK/latchkey.key" \
    LATCHKEY_ADDR="127.0.0.1:$PORT" \
    LATCHKEY_ISSUER="$BASE" \
    LATCHKEY_LOG="$SERVER_LOG_LEVEL" \
    LEPTOS_SITE_ROOT="$TMP/site" \
    "$BIN" serve) >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  # Ready when /healthz answers (the database is reachable); give up after 30 s.
  for _ in $(seq 300); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID" 2>/dev/null || true
      SERVER_PID=""
      echo "run.sh: the server exited during start-up" >&2
      return 1
    fi
    if curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "run.sh: the server did not answer $BASE/healthz within 30 s" >&2
  stop_server
  return 1
}

# Signs a user in, in that user's cookie jar.   $1 username
sign_in() {
  local out jar=$WORK/cookies-$1.txt
  out=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' -b "$jar" -c "$jar" \
    --data-urlencode "username=$1" --data-urlencode "password=$PASSWORD" \
    --data-urlencode "next=/" "$BASE/signin")
  [[ $out == "303 $BASE/" ]] || die "sign-in failed: got '$out' (expected 303 to $BASE/)"
}

# One real authorization-code flow (no PKCE: a confidential client) for a
# signed-in user; prints the token response JSON.
#   $1 username  $2 client_id  $3 secret  $4 redirect_uri
# code_flow USER CLIENT_ID SECRET REDIRECT [SCOPE] (default: openid offline_access)
code_flow() {
  local jar=$WORK/cookies-$1.txt id=$2 secret=$3 redirect=$4 query status loc rid code json
  query="response_type=code&client_id=$id&redirect_uri=$(uri_encode "$redirect")&scope=$(uri_encode "${5:-openid offline_access}")&state=x"
  read -r status loc < <(curl -sS -o "$WORK/authorize.html" -w '%{http_code} %{redirect_url}\n' \
    -b "$jar" -c "$jar" "$BASE/oauth/authorize?$query")
  if [[ $status == 200 ]]; then
    # First time for this user+client: the consent page; allow it.
    rid=$(grep -o 'name="request_id" value="[^"]*"' "$WORK/authorize.html" | head -n1 |
      sed 's/.*value="//; s/"$//') || true
    [[ -n $rid ]] || die "authorize: 200 without a consent form (see $WORK/authorize.html)"
    read -r status loc < <(curl -sS -o "$WORK/decide.html" -w '%{http_code} %{redirect_url}\n' \
      -b "$jar" -c "$jar" -H "Origin: $BASE" \
      --data-urlencode "request_id=$rid" --data-urlencode "decision=allow" \
      "$BASE/oauth/authorize")
  fi
  [[ $status == 303 && $loc == "$redirect?"* ]] ||
    die "authorize: expected 303 to $redirect?code=..., got '$status $loc'"
  code=$(sed -n 's/.*[?&]code=\([^&]*\).*/\1/p' <<<"$loc")
  [[ -n $code && $loc == *"state=x"* ]] || die "authorize: no code/state in $loc"
  json=$(curl -sS -u "$id:$secret" \
    --data-urlencode grant_type=authorization_code --data-urlencode "code=$code" \
    --data-urlencode "redirect_uri=$redirect" "$BASE/oauth/token")
  jq -e '.access_token and .refresh_token' >/dev/null <<<"$json" ||
    die "code redemption failed: $json"
  echo "$json"
}

# Runs wrk: a warm-up, then the measured run, and records one table row.
#   $1 backend  $2 endpoint label  $3 target rps  $4 target p99 ms ("" = none)
#   $5 warm-up tokens file ("" = same as measured)
#   $6 a string every warm-up response body must contain ("" = no check)
#   then: wrk args (script, url, ...)
# The script's environment (BENCH_*) must be exported by the caller.
#
# Bodies are checked (post.lua's BENCH_EXPECT) in the warm-up only: wrk shares
# the machine with the server, and handing every body to Lua costs the server
# ~20% of its throughput on 2 cores. The measured run counts non-2xx/3xx and
# socket errors; refresh_rotate.lua must read every body, so it always checks.
ROWS=()
RSS_ROWS=()
LOG_NOTES=()
measure() {
  local backend=$1 label=$2 target_rps=$3 target_p99=$4 warm_tokens=$5 expect=$6
  shift 6
  local row
  case $label in
    client_credentials) row=cc ;;
    introspection) row=introspection ;;
    "refresh (rotation)") row=rotation ;;
    revocation) row=revocation ;;
    *) row=norotation ;;
  esac
  if [[ $ROWS_WANTED != *" $row "* ]]; then
    say "$backend / $label: skipped (BENCH_ROWS)"
    return 0
  fi
  local slug out warm result warm_bad cpu0 cpu1
  slug=$(tr -c 'a-z0-9' '_' <<<"$backend-$label")
  out=$WORK/wrk-$slug.txt
  warm=$WORK/wrk-$slug-warmup.txt

  say "$backend / $label: warm-up $WARMUP${expect:+ (every body must contain $expect)}"
  BENCH_TOKENS_FILE=${warm_tokens:-${BENCH_TOKENS_FILE:-}} BENCH_EXPECT=$expect \
    wrk -d "$WARMUP" "$@" >"$warm" 2>&1 || { cat "$warm" >&2; die "wrk warm-up failed"; }
  warm_bad=$(grep '^BENCH_RESULT ' "$warm" | tail -n1 | sed -n 's/.* bad=\([0-9]*\).*/\1/p')
  [[ -n $warm_bad ]] || { cat "$warm" >&2; die "no BENCH_RESULT in the warm-up output"; }
  if [[ $warm_bad != 0 ]]; then
    grep '^BENCH_FIRST_BAD ' "$warm" | head -n 3 | sed 's/^/    /'
    LOG_NOTES+=("$backend / $label: $warm_bad wrong answers in the warm-up (see above)")
  fi

  say "$backend / $label: wrk -d $DURATION $*"
  cpu0=$(server_cpu_ticks)
  BENCH_EXPECT="" wrk -d "$DURATION" --latency "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
  cpu1=$(server_cpu_ticks)
  sed 's/^/    /' "$out"

  result=$(grep '^BENCH_RESULT ' "$out" | tail -n1) || die "no BENCH_RESULT in $out"
  # requests/s, p50/p99 in ms, errors = socket errors + (bad responses when the
  # script checks bodies, else wrk's non-2xx/3xx count), verdict.
  # Also the server's own CPU time per request (user+system of the latchkey
  # process only: not wrk's, not PostgreSQL's).
  ROWS+=("$(awk -v backend="$backend" -v label="$label" \
    -v trps="$target_rps" -v tp99="$target_p99" -v line="$result" \
    -v cpu_ticks=$((cpu1 - cpu0)) -v hz="$CLK_TCK" '
    BEGIN {
      n = split(line, kv, " ")
      for (i = 2; i <= n; i++) { split(kv[i], p, "="); r[p[1]] = p[2] }
      rps = r["requests"] / (r["duration_us"] / 1e6)
      p50 = r["p50_us"] / 1000; p99 = r["p99_us"] / 1000
      errors = r["socket_errors"] + (r["bad"] > r["non2xx"] ? r["bad"] : r["non2xx"])
      target = "≥ " trps "/s"
      ok = rps >= trps && errors == 0
      if (tp99 != "") { target = target ", p99 < " tp99 " ms"; ok = ok && p99 < tp99 }
      verdict = ok ? "meets target" : "below target"
      if (trps == "") { target = "none"; verdict = errors == 0 ? "no errors" : "errors" }
      cpu_us = r["requests"] > 0 ? cpu_ticks / hz * 1e6 / r["requests"] : 0
      printf "| %s | %s | %.0f | %.2f ms | %.2f ms | %d | %s | %s | %.0f µs |",
        backend, label, rps, p50, p99, errors, target, verdict, cpu_us
    }')")
  if grep -q '^BENCH_FIRST_BAD ' "$out"; then
    echo "    first bad responses:"
    grep '^BENCH_FIRST_BAD ' "$out" | sort | uniq -c | head -n 5 | sed 's/^/      /'
  fi
}


# --- 2-4. one backend: start, prepare, measure, record RSS ------------------------
run_backend() {
  local backend=$1
  WORK=$TMP/$backend
  mkdir -p "$WORK"
  case $backend in
    sqlite) DB_URL="sqlite://$WORK/latchkey.db" ;;
    postgres)
      PG_DB=lk_bench_$$
      createdb -h "$PG_HOST" -U "$PG_USER" "$PG_DB"
      DB_URL="postgres://$PG_USER@$PG_HOST:5432/$PG_DB"
      ;;
  esac
  MASTER_KEY=$(new_master_key)
  PORT=$(free_port)
  BASE="http://127.0.0.1:$PORT"

  say "$backend: preparing $DB_URL"
  lk migrate >/dev/null
  local u
  for u in $(seq "$CHAIN_USERS"); do
    printf '%s\n' "$PASSWORD" | lk user add --username "$USERNAME$u" --password-stdin >/dev/null
  done
  local out cc_id cc_secret rs_id rs_secret app_id app_secret nr_id nr_secret
  # A machine client for client_credentials.
  out=$(add_client --name bench-cc --grant-type client_credentials)
  read -r cc_id cc_secret <<<"$out"
  # A resource server that introspects (confidential, Basic auth): only
  # tokens whose aud names it, i.e. carrying the scope it serves.
  out=$(add_client --name bench-rs --grant-type client_credentials)
  read -r rs_id rs_secret <<<"$out"
  lk client resource-server --audience https://bench-rs.example --serves bench:read -- "$rs_id" >/dev/null
  # An app with the code flow and refresh tokens; rotation stays on (the default).
  out=$(add_client --name bench-app --redirect-uri "$REDIRECT_URI" \
    --grant-type authorization_code --grant-type refresh_token --scope bench:read)
  read -r app_id app_secret <<<"$out"
  # The same, with rotation switched off for it.
  out=$(add_client --name bench-app-norotate \
    --redirect-uri "$REDIRECT_URI_NOROTATE" \
    --grant-type authorization_code --grant-type refresh_token)
  read -r nr_id nr_secret <<<"$out"
  # "--": a client_id is random base64url and may start with "-".
  lk client set --rotate off --json -- "$nr_id" | jq -e '.effective.rotate_refresh == false' >/dev/null ||
    die "could not switch rotation off for $nr_id"

  say "$backend: starting latchkey serve on $BASE (log: $WORK/server.log)"
  start_server
  say "$backend: listening on $BASE (pid $SERVER_PID)"

  # Tokens: 2N refresh chains (N for the warm-up, N for the measured run: a
  # chain whose last response wrk dropped at the end of a run cannot go on),
  # one no-rotation refresh token, one access token to introspect.
  say "$backend: $((2 * REFRESH_CONNS + 2)) authorization-code flows"
  for u in $(seq "$CHAIN_USERS"); do sign_in "$USERNAME$u"; done
  local json i user
  : >"$WORK/chains-warmup.txt"
  : >"$WORK/chains.txt"
  for i in $(seq "$REFRESH_CONNS"); do
    user=$USERNAME$(((i - 1) % CHAIN_USERS + 1))
    code_flow "$user" "$app_id" "$app_secret" "$REDIRECT_URI" | jq -r .refresh_token >>"$WORK/chains-warmup.txt"
    code_flow "$user" "$app_id" "$app_secret" "$REDIRECT_URI" | jq -r .refresh_token >>"$WORK/chains.txt"
  done
  json=$(code_flow "${USERNAME}1" "$app_id" "$app_secret" "$REDIRECT_URI" "openid offline_access bench:read")
  local access_token norotate_refresh
  access_token=$(jq -r .access_token <<<"$json")
  norotate_refresh=$(code_flow "${USERNAME}1" "$nr_id" "$nr_secret" "$REDIRECT_URI_NOROTATE" |
    jq -r .refresh_token)

  # Sanity checks the load runs rely on.
  curl -sS -u "$rs_id:$rs_secret" --data-urlencode "token=$access_token" "$BASE/oauth/introspect" |
    jq -e '.active == true' >/dev/null || die "introspection does not say the access token is active"
  curl -sS -u "$cc_id:$cc_secret" -d grant_type=client_credentials "$BASE/oauth/token" |
    jq -e '.access_token' >/dev/null || die "client_credentials does not issue a token"

  # client_credentials: a new signed token per request.
  export BENCH_BODY="grant_type=client_credentials" BENCH_AUTH
  BENCH_AUTH=$(basic "$cc_id" "$cc_secret")
  measure "$backend" client_credentials "$TARGET_CC_RPS" "" "" '"access_token"' \
    -t "$THREADS" -c "$CONNS" -s "$BENCH_DIR/post.lua" "$BASE/oauth/token"

  # introspection of one live access token by the resource server.
  export BENCH_BODY="token=$access_token"
  BENCH_AUTH=$(basic "$rs_id" "$rs_secret")
  measure "$backend" introspection "$TARGET_INTROSPECT_RPS" "$TARGET_INTROSPECT_P99_MS" "" '"active":true' \
    -t "$THREADS" -c "$CONNS" -s "$BENCH_DIR/post.lua" "$BASE/oauth/introspect"
  # Still active after the run (a 200 {"active":false} would have looked fine to wrk).
  curl -sS -u "$rs_id:$rs_secret" --data-urlencode "token=$access_token" "$BASE/oauth/introspect" |
    jq -e '.active == true' >/dev/null || die "the introspected token is no longer active after the run"

  # refresh with rotation: one chain per connection (-tN -cN).
  export BENCH_TOKENS_FILE=$WORK/chains.txt
  BENCH_AUTH=$(basic "$app_id" "$app_secret")
  measure "$backend" "refresh (rotation)" "$TARGET_REFRESH_RPS" "" "$WORK/chains-warmup.txt" "" \
    -t "$REFRESH_CONNS" -c "$REFRESH_CONNS" -s "$BENCH_DIR/refresh_rotate.lua" "$BASE/oauth/token"

  # refresh without rotation: one token shared by every connection.
  export BENCH_BODY="grant_type=refresh_token&refresh_token=$norotate_refresh"
  BENCH_AUTH=$(basic "$nr_id" "$nr_secret")
  measure "$backend" "refresh (no rotation)" "$TARGET_REFRESH_RPS" "" "" '"access_token"' \
    -t "$REFRESH_CONNS" -c "$REFRESH_CONNS" -s "$BENCH_DIR/post.lua" "$BASE/oauth/token"

  # revocation (RFC 7009): a client revokes one of its client_credentials
  # tokens; the first request revokes it, every later one finds it revoked
  # and still answers 200 after the same checks (no target in the issue).
  local cc_token
  cc_token=$(curl -sS -u "$cc_id:$cc_secret" -d grant_type=client_credentials "$BASE/oauth/token" |
    jq -r .access_token)
  export BENCH_BODY="token=$cc_token"
  BENCH_AUTH=$(basic "$cc_id" "$cc_secret")
  measure "$backend" revocation "" "" "" "" \
    -t "$THREADS" -c "$CONNS" -s "$BENCH_DIR/post.lua" "$BASE/oauth/revoke"
  if [[ $ROWS_WANTED == *" revocation "* ]]; then
    curl -sS -u "$cc_id:$cc_secret" --data-urlencode "token=$cc_token" "$BASE/oauth/introspect" |
      jq -e '.active == false' >/dev/null || die "the revoked token is still active"
  fi

  # 4. Peak resident memory of the server over all the runs above.
  local hwm
  hwm=$(awk '/^VmHWM:/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$SERVER_PID/status")
  RSS_ROWS+=("| $backend | $hwm |")

  # Anything the server complained about while under load (the log may carry
  # ANSI colour codes: strip them first).
  local warns plain
  plain=$WORK/server.plain.log
  sed 's/\x1b\[[0-9;]*m//g' "$SERVER_LOG" >"$plain"
  warns=$(grep -cE '^\S+ +(WARN|ERROR) ' "$plain" || true)
  if [[ $warns != 0 ]]; then
    LOG_NOTES+=("$backend: $warns WARN/ERROR lines in the server log (BENCH_KEEP=1 keeps it), first: $(grep -m1 -E '^\S+ +(WARN|ERROR) ' "$plain" | cut -c1-300)")
  fi

  stop_server
  drop_pg_db
}

# The backends are started only for the rows measured on them.
BACKEND_ROWS=0
for row in cc introspection rotation norotation revocation; do
  if [[ $ROWS_WANTED == *" $row "* ]]; then BACKEND_ROWS=1; fi
done
((BACKEND_ROWS)) || BACKENDS=""

for backend in $BACKENDS; do
  case $backend in
    sqlite) run_backend sqlite ;;
    postgres)
      if command -v pg_isready >/dev/null && pg_isready -q -h "$PG_HOST"; then
        run_backend postgres
      else
        say "postgres: pg_isready -h $PG_HOST says no; skipped"
      fi
      ;;
    *) die "unknown backend $backend (expected sqlite or postgres)" ;;
  esac
done

# --- growth rows: bench/growth.sh on the same binary (its own data, on SQLite) -------
GROWTH_OUT=$TMP/growth.txt
: >"$GROWTH_OUT"
if [[ $ROWS_WANTED == *" growth "* ]]; then
  say "growth rows: bench/growth.sh (BENCH_GROWTH_N=${BENCH_GROWTH_N:-1000000})"
  BENCH_BIN=$BIN BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP "$BENCH_DIR/growth.sh" |
    tee "$GROWTH_OUT" | sed 's/^/    /'
fi
growth_table() {
  if [[ -s $GROWTH_OUT ]]; then
    echo
    sed -n '/^## Latchkey growth rows/,$p' "$GROWTH_OUT"
  fi
}
if ((BACKEND_ROWS == 0)); then
  growth_table
  OK=1
  exit 0
fi

# --- 5. the table ------------------------------------------------------------------
echo
echo "## Latchkey benchmark"
echo
echo "$(uname -srm), $(nproc) cores; $BUILD_NOTE; wrk $DURATION per row after a $WARMUP warm-up;"
echo "client_credentials/introspection: -t$THREADS -c$CONNS; refresh: -t$REFRESH_CONNS -c$REFRESH_CONNS"
echo "(rotation: $REFRESH_CONNS chains of $CHAIN_USERS user(s); no rotation: one token shared by all connections)."
echo "errors = non-2xx/3xx + socket errors (+ refresh responses without a new refresh_token);"
echo "a row meets its target only with 0 errors. server CPU/req: latchkey's own user+system time."
echo
echo "| backend | endpoint | requests/s | p50 | p99 | errors | target | result | server CPU/req |"
echo "|---|---|---:|---:|---:|---:|---|---|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "| backend | server peak RSS (VmHWM) |"
echo "|---|---:|"
printf '%s\n' "${RSS_ROWS[@]}"
if ((${#LOG_NOTES[@]})); then
  echo
  printf -- '- %s\n' "${LOG_NOTES[@]}"
fi
growth_table
OK=1
