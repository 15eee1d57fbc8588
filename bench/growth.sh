#!/usr/bin/env bash
# Growth rows (issue 11, items 1 and 7): how Latchkey behaves once a SQLite
# database holds a million revocations. The schema comes from the binary
# (`latchkey migrate`), users and clients from its CLI, the bulk rows from
# bench/growth_data.py (stdlib sqlite3). Three copies of one database:
#
#   empty      users, clients and the page fixtures only
#   1M         + N revoked grants, N revoked token families (with N revoked
#              refresh tokens), N revoked access-token jtis and their 3N
#              revocation_log entries, revoked an hour ago under 10-minute
#              access tokens (until_at = revoked_at + 600: none still matters)
#   1M + live  + BENCH_GROWTH_LIVE revocations that still matter (until_at an
#              hour ahead), at log positions after the expired ones
#
# On each, with the server pinned to one core and curl/wrk to the other:
# start-up time (spawn → /.well-known/openid-configuration answers), idle CPU
# over BENCH_IDLE seconds after start-up, RSS after start-up and after the
# introspection runs, introspection requests/s (wrk; the three servers stay up
# and are measured in turns, BENCH_ROUNDS times: the median), one "revoke all apps"
# call through the admin API for a user with 10,000 live token families over
# 100 grants (then the families are counted in the database), and the My apps
# page (GET / with a signed-in session) for a user with 500 grants, p50 over
# BENCH_PAGE_REQUESTS requests. Prints one Markdown table against the targets.
#
# Exits non-zero only when the harness itself fails; a missed target is
# reported in the table.
#
# Knobs (environment):
#   BENCH_BIN             the latchkey binary to measure (default
#                         $CARGO_TARGET_DIR/release/latchkey; this script does not build)
#   BENCH_GROWTH_N        N, revocations of each kind in the 1M database (default 1000000)
#   BENCH_GROWTH_LIVE     revocations that still matter in the third database (default 100000)
#   BENCH_DURATION        one measured introspection run, wrk -d (default 10s)
#   BENCH_ROUNDS          introspection runs per database, taken in turns; the median counts (default 3)
#   BENCH_WARMUP          introspection warm-up, wrk -d (default 2s)
#   BENCH_IDLE            idle window after start-up, in seconds (default 20)
#   BENCH_SETTLE=0        measure introspection, My apps and revoke-all while the retention
#                         job's first run (a minute after start) clears the expired backlog;
#                         by default the script waits until it did (BENCH_SETTLE_MAX seconds
#                         at most, default 900), so those rows show the steady state
#   BENCH_THREADS         wrk -t (default 1)
#   BENCH_CONNS           wrk -c (default 16)
#   BENCH_PAGE_REQUESTS   GETs of the My apps page (default 50)
#   BENCH_SERVER_CPU      core the server is pinned to (default 0)
#   BENCH_CLIENT_CPU      core this script, curl, wrk and the generator run on (default 1)
#   BENCH_LOG             server log filter, LATCHKEY_LOG (default info)
#   BENCH_KEEP=1          keep the temporary directory (databases, logs) afterwards
#   CARGO_TARGET_DIR      where the default BENCH_BIN is (default ~/.cache/latchkey/target)

set -euo pipefail
shopt -s inherit_errexit

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# say, die, lk, free_port, server_cpu_ticks, sign_in, code_flow, stop_server
# (this script keeps its own cleanup and start_server: several servers run
# at once here, and start-up is timed).
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
GROWTH_N=${BENCH_GROWTH_N:-1000000}
GROWTH_LIVE=${BENCH_GROWTH_LIVE:-100000}
DURATION=${BENCH_DURATION:-10s}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-2s}
IDLE_SECS=${BENCH_IDLE:-20}
SETTLE=${BENCH_SETTLE:-1}
SETTLE_MAX=${BENCH_SETTLE_MAX:-900}
THREADS=${BENCH_THREADS:-1}
CONNS=${BENCH_CONNS:-16}
PAGE_REQUESTS=${BENCH_PAGE_REQUESTS:-50}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}

# Targets.
TARGET_STARTUP_S=1          # start-up with the 1M database
TARGET_IDLE_CPU_PCT=1       # idle CPU, % of one core, 1M database
TARGET_RSS_DELTA_MB=5       # RSS, 1M database against empty
TARGET_INTROSPECT_PCT=10    # introspection, 1M and 1M + live against empty: at most this much slower
TARGET_REVOKE_ALL_S=1       # one "revoke all apps" call
TARGET_PAGE_P50_MS=10       # My apps page p50

# What the fixtures hold (bench/growth_data.py).
REVOKE_FAMILIES=10000
REVOKE_GRANTS=100
PAGE_GRANTS=500

USERNAME=bench1
PASSWORD=bench-password-123
REDIRECT_URI=https://growth-bench.example/cb

for tool in wrk curl jq ss taskset python3 awk getconf; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
[[ -x $BIN ]] || die "no latchkey binary at $BIN (build one: cargo build --release -p latchkey, or set BENCH_BIN)"
[[ $GROWTH_N =~ ^[0-9]+$ && $GROWTH_N -ge 1 ]] || die "BENCH_GROWTH_N must be a whole number ≥ 1"
[[ $GROWTH_LIVE =~ ^[0-9]+$ && $GROWTH_LIVE -ge 1 ]] || die "BENCH_GROWTH_LIVE must be a whole number ≥ 1"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || die "BENCH_ROUNDS must be a whole number ≥ 1"
[[ $IDLE_SECS =~ ^[0-9]+$ && $IDLE_SECS -ge 1 ]] || die "BENCH_IDLE must be whole seconds ≥ 1"
NPROC=$(nproc)
if ((NPROC < 2)); then
  say "only $NPROC core: server and load generator share it"
  SERVER_CPU=0 CLIENT_CPU=0
fi
# Everything this script starts (curl, wrk, the generator) runs on the client
# core; the server is started on its own (start_server).
taskset -cp "$CLIENT_CPU" $$ >/dev/null

# --- state the cleanup trap needs -------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-growth.XXXXXX")
SERVER_PID=""
SERVER_LOG=""
declare -A PID_OF=()   # the server of each database, while it runs
OK=0

cleanup() {
  local rc=$? pid
  stop_server
  for pid in "${PID_OF[@]}"; do
    SERVER_PID=$pid
    stop_server
  done
  if [[ $OK == 1 && ${BENCH_KEEP:-0} != 1 ]]; then
    rm -rf "$TMP"
  else
    echo "growth.sh: logs and databases kept in $TMP" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# `latchkey serve` refuses to start without the Leptos site (pkg/latchkey.js);
# the pages measured here render on the server and never load it.
mkdir -p "$TMP/site/pkg"
: >"$TMP/site/pkg/latchkey.js"

MASTER_KEY=$(new_master_key)

# --- helpers ------------------------------------------------------------------------
# DB (a file path), DB_URL and WORK (cwd, logs, cookie jars) are set per database.

# 1234567 → 1,234,567

now_ns() { echo "${EPOCHREALTIME/./}000"; }

# VmRSS of the server in MB (10^6 bytes).
server_rss_mb() {
  awk '/^VmRSS:/ { printf "%.1f", $2 * 1024 / 1e6 }' "/proc/$SERVER_PID/status"
}

# Copies a database that no process has open (WAL file too, should one be left).
copy_db() {
  cp "$1" "$2"
  if [[ -f $1-wal ]]; then cp "$1-wal" "$2-wal"; fi
}

# Runs SQL against DB with Python's sqlite3 (read-only), prints the first column of the first row.
db_scalar() {
  python3 - "$DB" "$@" <<'PY'
import sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(conn.execute(sys.argv[2], sys.argv[3:]).fetchone()[0])
PY
}

# Starts `latchkey serve` on DB pinned to SERVER_CPU and waits until
# /.well-known/openid-configuration answers; sets STARTUP_S (spawn → first
# answer). Retries on a new port if another process took it (3 attempts).
start_server() {
  local attempt t0 t1
  SERVER_LOG=$WORK/server.log
  for attempt in 1 2 3; do
    PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    t0=$(now_ns)
    (cd "$WORK" && exec taskset -c "$SERVER_CPU" env \
      LATCHKEY_DATABASE_URL="sqlite://$DB" \
      LATCHKEY_MASTER_KEY="$MASTER_KEY" \
      LATCHKEY_MASTER_KEY_FILE="$WORK/latchkey.key" \
      LATCHKEY_ADDR="127.0.0.1:$PORT" \
      LATCHKEY_ISSUER="$BASE" \
      LATCHKEY_LOG="$SERVER_LOG_LEVEL" \
      LEPTOS_SITE_ROOT="$TMP/site" \
      "$BIN" serve) >>"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    # Polled without pause (each curl takes a few ms on the other core); give up after 60 s.
    while (($(now_ns) - t0 < 60 * 1000000000)); do
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
        break
      fi
      if curl -fsS -o /dev/null --max-time 1 "$BASE/.well-known/openid-configuration" 2>/dev/null; then
        t1=$(now_ns)
        STARTUP_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
        return 0
      fi
    done
    stop_server
    if ((attempt < 3)) && grep -q 'Address already in use' "$SERVER_LOG"; then
      say "port $PORT taken; retrying"
      continue
    fi
    echo "--- last lines of $SERVER_LOG ---" >&2
    tail -n 30 "$SERVER_LOG" >&2 || true
    die "the server did not start (or did not answer within 60 s)"
  done
}

# Runs wrk against BASE; prints "requests/s p99_ms errors".
#   $1 duration  $2 expected body ("" = none)  $3 name of its output file ($WORK/wrk-$3.txt)
introspect_wrk() {
  local out=$WORK/wrk-$3.txt result
  BENCH_EXPECT=$2 wrk -d "$1" -t "$THREADS" -c "$CONNS" --latency -s "$BENCH_DIR/post.lua" \
    "$BASE/oauth/introspect" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
  result=$(grep '^BENCH_RESULT ' "$out" | tail -n1) || { cat "$out" >&2; die "no BENCH_RESULT in $out"; }
  awk -v line="$result" 'BEGIN {
    n = split(line, kv, " ")
    for (i = 2; i <= n; i++) { split(kv[i], p, "="); r[p[1]] = p[2] }
    errors = r["socket_errors"] + (r["bad"] > r["non2xx"] ? r["bad"] : r["non2xx"])
    printf "%.0f %.2f %d\n", r["requests"] / (r["duration_us"] / 1e6), r["p99_us"] / 1000, errors
  }'
}

# --- 1. the data --------------------------------------------------------------------
say "binary: $BIN"
WORK=$TMP/base
mkdir -p "$WORK"
DB=$WORK/latchkey.db
DB_URL="sqlite://$DB"
say "base database: latchkey migrate, a user and three clients with the CLI"
lk migrate >/dev/null
printf '%s\n' "$PASSWORD" | lk user add --username "$USERNAME" --password-stdin >/dev/null
json=$(lk client add --json --name growth-rs --grant-type client_credentials)
RS_ID=$(jq -er .client.client_id <<<"$json")
RS_SECRET=$(jq -er .client_secret <<<"$json")
lk client resource-server --audience https://growth-rs.example --serves growth:read -- "$RS_ID" >/dev/null
lk scope set growth:read --description "Read growth data" >/dev/null
json=$(lk client add --json --name growth-app --redirect-uri "$REDIRECT_URI" \
  --grant-type authorization_code --grant-type refresh_token --scope growth:read)
APP_ID=$(jq -er .client.client_id <<<"$json")
APP_SECRET=$(jq -er .client_secret <<<"$json")
json=$(lk client add --json --name growth-admin --grant-type client_credentials --scope latchkey:admin)
ADMIN_ID=$(jq -er .client.client_id <<<"$json")
ADMIN_SECRET=$(jq -er .client_secret <<<"$json")

say "base database: fixtures (bench/growth_data.py fixtures)"
json=$(python3 "$BENCH_DIR/growth_data.py" fixtures "$DB" --password-from "$USERNAME")
echo "    $json"
REVOKE_USER_ID=$(jq -er .revoke_user_id <<<"$json")
[[ $(jq -r .live_families <<<"$json") == $((REVOKE_FAMILIES + PAGE_GRANTS)) ]] ||
  die "the fixtures do not hold the expected $REVOKE_FAMILIES + $PAGE_GRANTS live families"

# One start and stop, so that what a first start creates (signing keys, the
# session store's table) is not counted in any database's start-up.
say "base database: first start (signing keys, session table)"
start_server
stop_server
BASE_DB=$DB

declare -A DB_OF WORK_OF SIZE_OF GEN_OF
for set in empty 1m live; do
  WORK_OF[$set]=$TMP/$set
  mkdir -p "${WORK_OF[$set]}"
  DB_OF[$set]=${WORK_OF[$set]}/latchkey.db
done
copy_db "$BASE_DB" "${DB_OF[empty]}"
copy_db "$BASE_DB" "${DB_OF[1m]}"
GEN_OF[empty]="-"

say "1M database: $GROWTH_N revoked grants, families (+ refresh tokens) and jtis, revoked an hour ago"
t0=$(now_ns)
json=$(python3 "$BENCH_DIR/growth_data.py" revocations "${DB_OF[1m]}" --count "$GROWTH_N" \
  --revoked-ago 3600 --until-after 600)
echo "    $json"
GEN_OF[1m]=$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.0f s", (b - a) / 1e9 }')

say "1M + live database: a copy, + $GROWTH_LIVE revocations that matter for another hour"
copy_db "${DB_OF[1m]}" "${DB_OF[live]}"
t0=$(now_ns)
json=$(python3 "$BENCH_DIR/growth_data.py" revocations "${DB_OF[live]}" --kinds-total "$GROWTH_LIVE" \
  --revoked-ago 0 --until-after 3600)
echo "    $json"
GEN_OF[live]=$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.0f s", (b - a) / 1e9 }')
DB=${DB_OF[empty]}
FIXTURES="$(db_scalar "SELECT COUNT(*) FROM users") users, $(db_scalar "SELECT COUNT(*) FROM clients") clients, \
$(db_scalar "SELECT COUNT(*) FROM grants WHERE revoked_at IS NULL") live grants, \
$(th "$(db_scalar "SELECT COUNT(*) FROM token_families WHERE revoked_at IS NULL")") live token families"
for set in empty 1m live; do
  SIZE_OF[$set]=$(stat -c %s "${DB_OF[$set]}" | awk '{ printf "%.0f MB", $1 / 1e6 }')
done

# --- 2. the measurements --------------------------------------------------------------
# One server per database, all three kept running (idle but for the one under
# load) so that introspection can go round them in turns: the machine's other
# load then weighs on each database alike.
declare -A BASE_OF TOKEN_OF STARTUP IDLE_CPU RSS_START RSS_AFTER RPS P99 ERRORS \
  REVOKE_S REVOKE_OK PAGE_P50 PAGE_P99 LIVE_IN_DB ROUND_RPS SETTLE_S
LOG_NOTES=()
SETS="empty 1m live"

# Points the helpers (lk, db_scalar, the server's pid and address) at one database.
use_set() {
  WORK=${WORK_OF[$1]}
  DB=${DB_OF[$1]}
  DB_URL="sqlite://$DB"
  SERVER_PID=${PID_OF[$1]:-}
  BASE=${BASE_OF[$1]:-}
  SERVER_LOG=$WORK/server.log
}

# Start-up, then the idle window: CPU and RSS. The server keeps running.
start_set() {
  local set=$1 ticks0 ticks1
  use_set "$set"
  LIVE_IN_DB[$set]=$(db_scalar "SELECT COUNT(*) FROM revocation_log WHERE until_at >= ?" "$(date +%s)")
  say "$set: starting latchkey serve on core $SERVER_CPU"
  start_server
  PID_OF[$set]=$SERVER_PID
  BASE_OF[$set]=$BASE
  STARTUP[$set]=$STARTUP_S
  say "$set: answered after ${STARTUP_S}s (pid $SERVER_PID); idle for ${IDLE_SECS}s"
  ticks0=$(server_cpu_ticks)
  sleep "$IDLE_SECS"
  ticks1=$(server_cpu_ticks)
  IDLE_CPU[$set]=$(awk -v t=$((ticks1 - ticks0)) -v hz="$CLK_TCK" -v s="$IDLE_SECS" \
    'BEGIN { printf "%.1f", t / hz / s * 100 }')
  RSS_START[$set]=$(server_rss_mb)
  say "$set: idle CPU ${IDLE_CPU[$set]} % of a core, RSS ${RSS_START[$set]} MB"
}

# Waits until the server's retention job has deleted every log entry past its
# `until` (the last big rule of its first run over a generated backlog).
settle_set() {
  local set=$1 left started=$SECONDS
  use_set "$set"
  while :; do
    left=$(db_scalar "SELECT COUNT(*) FROM revocation_log WHERE until_at < ?" "$(($(date +%s) - 60))")
    [[ $left == 0 ]] && break
    ((SECONDS - started < SETTLE_MAX)) || die "$set: $left expired log entries still there after ${SETTLE_MAX}s"
    sleep 2
  done
  SETTLE_S[$set]=$((SECONDS - started))
  say "$set: the retention backlog is gone (waited ${SETTLE_S[$set]} s)"
}

# An access token to introspect (a real authorization-code flow), checked, and a warm-up.
prepare_introspection() {
  local set=$1 json result
  use_set "$set"
  sign_in "$USERNAME"
  json=$(code_flow "$USERNAME" "$APP_ID" "$APP_SECRET" "$REDIRECT_URI" "openid offline_access growth:read")
  TOKEN_OF[$set]=$(jq -r .access_token <<<"$json")
  curl -sS -u "$RS_ID:$RS_SECRET" --data-urlencode "token=${TOKEN_OF[$set]}" "$BASE/oauth/introspect" |
    jq -e '.active == true' >/dev/null || die "$set: introspection does not say the access token is active"
  export BENCH_BODY="token=${TOKEN_OF[$set]}"
  say "$set: introspection warm-up $WARMUP (every body must say active)"
  result=$(introspect_wrk "$WARMUP" '"active":true' "$set-warmup")
  [[ ${result##* } == 0 ]] || die "$set: introspection warm-up: ${result##* } wrong answers (see $WORK/wrk-$set-warmup.txt)"
}

# My apps, then revoke all apps; RSS after introspection first.
finish_set() {
  local set=$1 json token out codes live revoked
  use_set "$set"
  # Still active after all the runs (a 200 {"active":false} would have looked fine to wrk).
  curl -sS -u "$RS_ID:$RS_SECRET" --data-urlencode "token=${TOKEN_OF[$set]}" "$BASE/oauth/introspect" |
    jq -e '.active == true' >/dev/null || die "$set: the introspected token is no longer active after the runs"
  RSS_AFTER[$set]=$(server_rss_mb)

  # My apps for growth-apps (500 grants): one checked GET, then the measured
  # ones on one connection (curl reuses it), each timed by curl.
  sign_in growth-apps
  out=$(curl -sS -b "$WORK/cookies-growth-apps.txt" -o "$WORK/my-apps.html" -w '%{http_code}' "$BASE/")
  [[ $out == 200 ]] || die "My apps: HTTP $out for growth-apps (see $WORK/my-apps.html)"
  # The first page of 50 apps, of 500: 10 pages.
  grep -q 'growth-app-' "$WORK/my-apps.html" && grep -q "Page 1 of $((PAGE_GRANTS / 50))" "$WORK/my-apps.html" ||
    die "My apps: not the first of $((PAGE_GRANTS / 50)) pages of growth-app-* clients (see $WORK/my-apps.html)"
  local args=()
  for _ in $(seq "$PAGE_REQUESTS"); do args+=(-o /dev/null "$BASE/"); done
  curl -sS -b "$WORK/cookies-growth-apps.txt" -w '%{http_code} %{time_total}\n' "${args[@]}" >"$WORK/page.txt"
  codes=$(awk '$1 != 200' "$WORK/page.txt" | wc -l)
  ((codes == 0)) || die "My apps: $codes of $PAGE_REQUESTS GETs did not answer 200"
  read -r "PAGE_P50[$set]" "PAGE_P99[$set]" < <(awk '{ print $2 * 1000 }' "$WORK/page.txt" | sort -n |
    awk '{ v[NR] = $1 } END { i50 = int((NR + 1) / 2); i99 = int(NR * 0.99 + 0.999);
      printf "%.2f %.2f\n", v[i50], v[i99] }')
  say "$set: My apps p50 ${PAGE_P50[$set]} ms, p99 ${PAGE_P99[$set]} ms over $PAGE_REQUESTS GETs"

  # Revoke all apps of growth-revoke through the admin API, one timed call.
  json=$(curl -sS -u "$ADMIN_ID:$ADMIN_SECRET" -d grant_type=client_credentials \
    -d scope=latchkey:admin "$BASE/oauth/token")
  token=$(jq -er .access_token <<<"$json") || die "no admin API token: $json"
  out=$(curl -sS -X POST -H "Authorization: Bearer $token" -w '\n%{http_code} %{time_total}' \
    "$BASE/api/admin/users/$REVOKE_USER_ID/revoke-apps")
  read -r codes "REVOKE_S[$set]" <<<"${out##*$'\n'}"
  REVOKE_S[$set]=$(awk -v s="${REVOKE_S[$set]}" 'BEGIN { printf "%.3f", s }')
  [[ $codes == 200 ]] || die "revoke-apps answered $codes: ${out%$'\n'*}"
  echo "    revoke-apps: ${out%$'\n'*} in ${REVOKE_S[$set]} s"
  # Really revoked: no family of the user's grants is live, every one is revoked.
  live=$(db_scalar "SELECT COUNT(*) FROM token_families f JOIN grants g ON g.id = f.grant_id \
    WHERE g.user_id = ? AND f.revoked_at IS NULL" "$REVOKE_USER_ID")
  revoked=$(db_scalar "SELECT COUNT(*) FROM token_families f JOIN grants g ON g.id = f.grant_id \
    WHERE g.user_id = ? AND f.revoked_at IS NOT NULL" "$REVOKE_USER_ID")
  REVOKE_OK[$set]="$revoked revoked, $live live"
  if [[ $live == 0 && $revoked == "$REVOKE_FAMILIES" &&
    $(jq -r '"\(.grants_revoked) \(.families_revoked)"' <<<"${out%$'\n'*}") == "$REVOKE_GRANTS $REVOKE_FAMILIES" ]]; then
    REVOKE_OK[$set]=ok
  fi
  say "$set: revoke all apps ${REVOKE_S[$set]} s; families in the database: $revoked revoked, $live live"
}

for set in $SETS; do start_set "$set"; done
if ((SETTLE)); then
  for set in $SETS; do settle_set "$set"; done
fi
export BENCH_AUTH
BENCH_AUTH=$(basic "$RS_ID" "$RS_SECRET")
for set in $SETS; do prepare_introspection "$set"; done
# Introspection in turns: round r runs wrk against each database in order.
for round in $(seq "$ROUNDS"); do
  for set in $SETS; do
    use_set "$set"
    export BENCH_BODY="token=${TOKEN_OF[$set]}"
    read -r rps p99 errors < <(introspect_wrk "$DURATION" "" "$set-$round")
    ROUND_RPS[$set]+="$rps "
    P99[$set]+="$p99 "
    ERRORS[$set]=$((${ERRORS[$set]:-0} + errors))
    say "round $round/$ROUNDS, $set: introspection $rps/s, p99 $p99 ms, $errors errors"
  done
done
# The median of the rounds (of requests/s; of p99).
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for set in $SETS; do
  RPS[$set]=$(printf '%.0f' "$(median "${ROUND_RPS[$set]}")")
  P99[$set]=$(printf '%.2f' "$(median "${P99[$set]}")")
done
for set in $SETS; do finish_set "$set"; done

for set in $SETS; do
  use_set "$set"
  stop_server
  PID_OF[$set]=""
  plain=$WORK/server.plain.log
  sed 's/\x1b\[[0-9;]*m//g' "$SERVER_LOG" >"$plain"
  warns=$(grep -cE '^\S+ +(WARN|ERROR) ' "$plain" || true)
  if [[ $warns != 0 ]]; then
    LOG_NOTES+=("$set: $warns WARN/ERROR lines in the server log, first: $(grep -m1 -E '^\S+ +(WARN|ERROR) ' "$plain" | cut -c1-300)")
  fi
done

# --- 3. the table ---------------------------------------------------------------------
N_FMT=$(th "$GROWTH_N")
LIVE_FMT=$(th "$GROWTH_LIVE")
# The big database's name in the table: 1M at the default size.
if ((GROWTH_N == 1000000)); then M=1M; else M="N=$N_FMT"; fi
# Verdicts, each from the measured numbers.
verdict() { if awk "BEGIN { exit !($1) }"; then echo "meets target"; else echo "**misses target**"; fi; }
pct_of_empty() { awk -v a="$1" -v e="${RPS[empty]}" 'BEGIN { printf "%+.0f %%", (a / e - 1) * 100 }'; }

V_STARTUP=$(verdict "${STARTUP[1m]} < $TARGET_STARTUP_S")
V_IDLE=$(verdict "${IDLE_CPU[1m]} < $TARGET_IDLE_CPU_PCT")
V_RSS_START=$(verdict "${RSS_START[1m]} <= ${RSS_START[empty]} + $TARGET_RSS_DELTA_MB")
V_RSS_AFTER=$(verdict "${RSS_AFTER[1m]} <= ${RSS_AFTER[empty]} + $TARGET_RSS_DELTA_MB")
V_RPS=$(verdict "${RPS[1m]} >= ${RPS[empty]} * (1 - $TARGET_INTROSPECT_PCT / 100) && ${RPS[live]} >= ${RPS[empty]} * (1 - $TARGET_INTROSPECT_PCT / 100) && ${ERRORS[empty]} + ${ERRORS[1m]} + ${ERRORS[live]} == 0")
V_REVOKE=$(verdict "${REVOKE_S[empty]} < $TARGET_REVOKE_ALL_S && ${REVOKE_S[1m]} < $TARGET_REVOKE_ALL_S && ${REVOKE_S[live]} < $TARGET_REVOKE_ALL_S")
for set in empty 1m live; do
  [[ ${REVOKE_OK[$set]} == ok ]] || V_REVOKE="**misses target** (families: $set ${REVOKE_OK[$set]})"
done
V_PAGE=$(verdict "${PAGE_P50[empty]} < $TARGET_PAGE_P50_MS && ${PAGE_P50[1m]} < $TARGET_PAGE_P50_MS && ${PAGE_P50[live]} < $TARGET_PAGE_P50_MS")

echo
echo "## Latchkey growth rows"
echo
echo "$(uname -srm), $NPROC cores (load average $(cut -d' ' -f1-3 /proc/loadavg) at the end); binary $BIN;"
echo "SQLite; servers pinned to core $SERVER_CPU, curl/wrk to core $CLIENT_CPU; idle window ${IDLE_SECS} s from the first answer;"
echo "introspection wrk -t$THREADS -c$CONNS, a $WARMUP warm-up, then $ROUNDS run(s) of $DURATION per database in turns (median shown)."
echo "MB = 10^6 bytes."
echo "Databases: **empty** (${FIXTURES}: the page fixtures),"
echo "**$M** (+ $N_FMT revoked grants, families + refresh tokens and jtis, 3 × $N_FMT log entries, revoked an hour ago"
echo "under 10-minute access tokens), **$M + live** (+ $LIVE_FMT revocations that still matter)."
echo
echo "| row | empty | $M expired | $M + $LIVE_FMT live | target | result |"
echo "|---|---:|---:|---:|---|---|"
echo "| database file | ${SIZE_OF[empty]} | ${SIZE_OF[1m]} (generated in ${GEN_OF[1m]}) | ${SIZE_OF[live]} (+${GEN_OF[live]}) | — | — |"
echo "| log entries still mattering at start | $(th "${LIVE_IN_DB[empty]}") | $(th "${LIVE_IN_DB[1m]}") | $(th "${LIVE_IN_DB[live]}") | — | — |"
echo "| start-up (spawn → /.well-known answers) | ${STARTUP[empty]} s | ${STARTUP[1m]} s | ${STARTUP[live]} s | < $TARGET_STARTUP_S s at $M | $V_STARTUP |"
echo "| idle CPU, ${IDLE_SECS} s after start-up | ${IDLE_CPU[empty]} % | ${IDLE_CPU[1m]} % | ${IDLE_CPU[live]} % | < $TARGET_IDLE_CPU_PCT % of a core at $M | $V_IDLE |"
echo "| RSS after start-up (+${IDLE_SECS} s idle) | ${RSS_START[empty]} MB | ${RSS_START[1m]} MB | ${RSS_START[live]} MB | $M ≤ empty + $TARGET_RSS_DELTA_MB MB; live: stated | $V_RSS_START |"
if ((SETTLE)); then
  echo "| waited for the first retention run to clear the backlog (then measured below) | ${SETTLE_S[empty]} s | ${SETTLE_S[1m]} s | ${SETTLE_S[live]} s | — | — |"
else
  echo "| (BENCH_SETTLE=0: measured below while the first retention run clears the backlog) | | | | — | — |"
fi
echo "| RSS after the introspection runs | ${RSS_AFTER[empty]} MB | ${RSS_AFTER[1m]} MB | ${RSS_AFTER[live]} MB | $M ≤ empty + $TARGET_RSS_DELTA_MB MB; live: stated | $V_RSS_AFTER |"
echo "| introspection requests/s | $(th "${RPS[empty]}") | $(th "${RPS[1m]}") ($(pct_of_empty "${RPS[1m]}")) | $(th "${RPS[live]}") ($(pct_of_empty "${RPS[live]}")) | $M and live ≥ empty − $TARGET_INTROSPECT_PCT %, 0 errors | $V_RPS |"
echo "| introspection requests/s, each run | ${ROUND_RPS[empty]% } | ${ROUND_RPS[1m]% } | ${ROUND_RPS[live]% } | — | — |"
echo "| introspection p99 (median) / errors | ${P99[empty]} ms / ${ERRORS[empty]} | ${P99[1m]} ms / ${ERRORS[1m]} | ${P99[live]} ms / ${ERRORS[live]} | — | — |"
echo "| revoke all apps ($(th $REVOKE_FAMILIES) families, $REVOKE_GRANTS grants), one admin API call | ${REVOKE_S[empty]} s | ${REVOKE_S[1m]} s | ${REVOKE_S[live]} s | < $TARGET_REVOKE_ALL_S s, all $(th $REVOKE_FAMILIES) revoked in the DB | $V_REVOKE |"
echo "| My apps page ($PAGE_GRANTS grants), p50 of $PAGE_REQUESTS GETs | ${PAGE_P50[empty]} ms | ${PAGE_P50[1m]} ms | ${PAGE_P50[live]} ms | < $TARGET_PAGE_P50_MS ms | $V_PAGE |"
echo "| My apps page, p99 | ${PAGE_P99[empty]} ms | ${PAGE_P99[1m]} ms | ${PAGE_P99[live]} ms | — | — |"
if ((${#LOG_NOTES[@]})); then
  echo
  printf -- '- %s\n' "${LOG_NOTES[@]}"
fi
OK=1
