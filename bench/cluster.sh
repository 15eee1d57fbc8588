#!/usr/bin/env bash
# A measured cluster (issue 11, item 6): three `latchkey serve` instances A, B
# and C on one scratch PostgreSQL database (created here, dropped at exit),
# with one master key and one issuer (the balancer's URL), behind HAProxy
# (Debian's package, run in the foreground with a config generated in the
# temp dir: roundrobin, keep-alive, health check GET /readyz).
#
# Prints one Markdown table of throughput through the balancer with 1, 2 and
# 3 instances (client_credentials and introspection, wrk with post.lua as
# bench/run.sh does; instances are started one by one and put into rotation
# through HAProxy's runtime API), and one of revoke-on-A → refused-on-C
# latency over BENCH_CLUSTER_REVOCATIONS revocations (bench/cluster_revoke.py:
# keep-alive connections straight to A and C), with the number of tokens
# still active at C on the first check after A answered 200 (target 0).
#
#   bench/cluster.sh           # 1,000 revocations, 10 s per throughput row
#   bench/cluster.sh --short   # CI/short form: 100 revocations, 3 s rows (1 s warm-up)
#
# Exits non-zero only when the harness itself fails (install, build, start-up,
# a wrong answer before the runs, wrk); a missed target is reported in the table.
#
# Knobs (environment):
#   BENCH_CLUSTER_REVOCATIONS  revocation samples (default 1000; --short: 100)
#   BENCH_DURATION             measured run per throughput row, wrk -d (default 10s; --short: 3s)
#   BENCH_WARMUP               warm-up run before each row (default 2s; --short: 1s)
#   BENCH_THREADS              wrk -t (default 2)
#   BENCH_CONNS                wrk -c (default 32)
#   BENCH_CLUSTER_CHECK        HAProxy's health-check path (default /readyz; /healthz
#                              to measure a binary older than the instance registry)
#   BENCH_HAPROXY              the haproxy binary (default: haproxy on PATH; when it is
#                              missing and this runs as root on Debian, apt-get installs it)
#   BENCH_PYTHON               python3 for the latency client (default python3; stdlib only)
#   BENCH_PG_HOST/USER         PostgreSQL for the scratch database (127.0.0.1/postgres)
#   BENCH_LOG                  the instances' log filter, LATCHKEY_LOG (default info)
#   BENCH_KEEP=1               keep the temporary directory (logs, haproxy.cfg) afterwards
#   CARGO_TARGET_DIR           build directory (default ~/.cache/latchkey/target)
#   BENCH_BIN                  measure this latchkey binary instead of building one

set -euo pipefail
shopt -s inherit_errexit

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

case ${1:-} in
  "") REVOCATIONS=${BENCH_CLUSTER_REVOCATIONS:-1000} ;;
  --short)
    REVOCATIONS=${BENCH_CLUSTER_REVOCATIONS:-100}
    export BENCH_DURATION=${BENCH_DURATION:-3s} BENCH_WARMUP=${BENCH_WARMUP:-1s}
    ;;
  *)
    echo "usage: bench/cluster.sh [--short]" >&2
    exit 2
    ;;
esac

# say, die, the cleanup trap, server start/stop, the CLI, wrk_run.
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"

THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNS:-32}
CHECK_PATH=${BENCH_CLUSTER_CHECK:-/readyz}
PYTHON=${BENCH_PYTHON:-python3}
HAPROXY=${BENCH_HAPROXY:-haproxy}

# Target of the revocation row: issue 10's cross-instance goal, which is also
# the default acknowledgement bound (--ack-bound).
TARGET_REVOKE_P99_MS=250

require_tools wrk curl jq ss base64 awk "$PYTHON" pg_isready createdb dropdb psql
pg_isready -q -h "$PG_HOST" || die "PostgreSQL does not answer on $PG_HOST (pg_isready)"
if ! command -v "$HAPROXY" >/dev/null; then
  if [[ $HAPROXY == haproxy && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing HAProxy from Debian's packages: apt-get install -y haproxy"
    DEBIAN_FRONTEND=noninteractive apt-get install -y haproxy >/dev/null ||
      die "apt-get install -y haproxy failed"
  else
    die "$HAPROXY is required (Debian: apt-get install haproxy)"
  fi
fi
HAPROXY_VERSION=$("$HAPROXY" -v | sed -n '1s/^HAProxy version \([^ ]*\).*/\1/p')

bench_init latchkey-cluster

# --- 1. the binary --------------------------------------------------------------
bench_build

# --- 2. the database and the clients ------------------------------------------------
WORK=$TMP/cluster
mkdir -p "$WORK"
PG_DB=lk_cluster_$$
createdb -h "$PG_HOST" -U "$PG_USER" "$PG_DB"
DB_URL="postgres://$PG_USER@$PG_HOST:5432/$PG_DB"
PG_VERSION=$(psql -h "$PG_HOST" -U "$PG_USER" -d "$PG_DB" -Atc 'SHOW server_version' | cut -d' ' -f1)
# shellcheck disable=SC2034  # read by lib.sh (lk, start_server)
MASTER_KEY=$(new_master_key)

say "preparing $DB_URL"
lk migrate >/dev/null
# A machine client for client_credentials (its tokens name no resource server),
# also the client of the revocation samples (it introspects its own tokens).
read -r CC_ID CC_SECRET <<<"$(add_client --name bench-cc --grant-type client_credentials)"
# A resource server that introspects, and a job whose tokens name it: the
# introspection row's token.
read -r RS_ID RS_SECRET <<<"$(add_client --name bench-rs --grant-type client_credentials)"
lk client resource-server --audience "$RS_AUDIENCE" --serves bench:read -- "$RS_ID" >/dev/null
lk scope set bench:read --description "Read bench data" >/dev/null
read -r JOB_ID JOB_SECRET <<<"$(add_client --name bench-job --grant-type client_credentials --scope bench:read)"

# --- 3. HAProxy, with every server in maintenance ---------------------------------
# The balancer comes first: its URL is every instance's issuer. Each server
# gets a port now; an instance that has to move (a port taken meanwhile) is
# given its new address through the runtime API before it is put in rotation.
NAMES=(a b c)
declare -A INST_PORT INST_BASE INST_PID
for name in "${NAMES[@]}"; do INST_PORT[$name]=$(free_port); done
HAPROXY_CFG=$TMP/haproxy.cfg
ADMIN_PORT=""

# Writes the config for the balancer on PORT with the runtime API on ADMIN_PORT.
write_haproxy_cfg() {
  {
    cat <<EOF
# Generated by bench/cluster.sh.
global
    maxconn 4096
    stats socket ipv4@127.0.0.1:$ADMIN_PORT level admin

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s

frontend balancer
    bind 127.0.0.1:$PORT
    monitor-uri /haproxy-up
    default_backend latchkey

backend latchkey
    balance roundrobin
    option httpchk GET $CHECK_PATH
    http-check expect status 200
    default-server check inter 500ms rise 1 fall 2
EOF
    for name in "${NAMES[@]}"; do
      echo "    server $name 127.0.0.1:${INST_PORT[$name]} disabled"
    done
  } >"$HAPROXY_CFG"
}

# One start attempt of HAProxy (see lib.sh's start_server_with).
try_start_haproxy() {
  ADMIN_PORT=$(free_port)
  write_haproxy_cfg
  "$HAPROXY" -c -q -f "$HAPROXY_CFG" || die "haproxy rejects $HAPROXY_CFG"
  SERVER_LOG=$WORK/haproxy.log
  "$HAPROXY" -db -f "$HAPROXY_CFG" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  wait_until_ready "$BASE/haproxy-up"
}

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
say "HAProxy $HAPROXY_VERSION on $BASE (config: $HAPROXY_CFG)"
start_server_with try_start_haproxy
LB_BASE=$BASE
HAPROXY_PID=$SERVER_PID
EXTRA_PIDS+=("$HAPROXY_PID")
SERVER_PID=""
ISSUER=$LB_BASE

# Sends one command to HAProxy's runtime API; prints the answer.   $1 command
haproxy_cmd() {
  local fd answer
  exec {fd}<>"/dev/tcp/127.0.0.1/$ADMIN_PORT" || die "cannot reach HAProxy's runtime API"
  printf '%s\n' "$1" >&"$fd"
  answer=$(cat <&"$fd")
  exec {fd}<&-
  printf '%s\n' "$answer"
}

# One column of `show stat` for a server of the backend.   $1 server  $2 column
haproxy_stat() {
  haproxy_cmd "show stat" | awk -F, -v s="$1" -v col="$2" '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
    $1 == "latchkey" && $2 == s { print $c }'
}

# --- 4. the instances ------------------------------------------------------------
# Starts instance $1 on its port (lib.sh's start_server, issuer = the
# balancer), waits until it says ready, then puts it into HAProxy's rotation
# and waits until HAProxy's health check finds it UP.
ROTATION=()
add_instance() {
  local name=$1 WORK=$TMP/$1 PORT=${INST_PORT[$1]} BASE status
  BASE="http://127.0.0.1:$PORT"
  mkdir -p "$WORK"
  say "instance ${name^^}: latchkey serve on $BASE, issuer $ISSUER (log: $WORK/server.log)"
  start_server
  INST_PORT[$name]=$PORT
  INST_BASE[$name]=$BASE
  INST_PID[$name]=$SERVER_PID
  EXTRA_PIDS+=("$SERVER_PID")
  SERVER_PID=""
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "$BASE$CHECK_PATH" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null "$BASE$CHECK_PATH" || die "instance ${name^^} does not answer $CHECK_PATH with 200"

  haproxy_cmd "set server latchkey/$name addr 127.0.0.1 port $PORT" >/dev/null
  haproxy_cmd "set server latchkey/$name state ready" >/dev/null
  for _ in $(seq 100); do
    status=$(haproxy_stat "$name" status)
    [[ $status == UP ]] && break
    sleep 0.1
  done
  [[ $status == UP ]] || die "HAProxy does not find instance ${name^^} UP (status: $status)"
  ROTATION+=("$name")
  say "instance ${name^^}: in rotation (pid ${INST_PID[$name]}); ${#ROTATION[@]} behind $LB_BASE"
}

# --- 5. throughput rows -------------------------------------------------------------
# The tokens: the introspection row introspects one job token (aud = the
# resource server) as the resource server, as bench/run.sh does with its
# code-flow token.
new_token() {
  local json
  json=$(curl -sS -u "$1:$2" -d grant_type=client_credentials "$3/oauth/token")
  jq -er '.access_token' <<<"$json" || die "client_credentials at $3 issues no token: $json"
}
check_active() {
  curl -sS -u "$RS_ID:$RS_SECRET" --data-urlencode "token=$1" "$2/oauth/introspect" |
    jq -e '.active == true' >/dev/null || die "$2: the resource server's introspection does not say active $3"
}

# Results per row key ("<endpoint> <n>"): the BENCH_RESULT line, the
# instances' and HAProxy's CPU ticks during it, the split over the instances.
declare -A RESULT INST_CPU LB_CPU SPLIT
ROW_KEYS=()
NOTES=()

# Runs one throughput row.   $1 endpoint (cc|introspection)  $2 key suffix
# ("1", "2", "3", "direct")  $3 base URL
throughput_row() {
  local endpoint=$1 key="$1 $2" base=$3 name path expect before=() after=() total=0 i split=""
  case $endpoint in
    cc)
      BENCH_AUTH=$(basic "$CC_ID" "$CC_SECRET")
      BENCH_BODY="grant_type=client_credentials"
      path=/oauth/token expect='"access_token"'
      ;;
    introspection)
      BENCH_AUTH=$(basic "$RS_ID" "$RS_SECRET")
      BENCH_BODY="token=$INTROSPECT_TOKEN"
      path=/oauth/introspect expect='"active":true'
      check_active "$INTROSPECT_TOKEN" "$base" "(before the run)"
      ;;
  esac
  export BENCH_AUTH BENCH_BODY
  CPU_PIDS=()
  for name in "${ROTATION[@]}"; do CPU_PIDS+=("${INST_PID[$name]}"); done
  CPU_PIDS+=("$HAPROXY_PID")
  for name in "${ROTATION[@]}"; do before+=("$(haproxy_stat "$name" stot)"); done

  wrk_run "$endpoint / $2" "" "$expect" -t "$THREADS" -c "$CONNS" -s "$BENCH_DIR/post.lua" "$base$path"
  [[ $WRK_WARM_BAD == 0 ]] || NOTES+=("$endpoint / $2: $WRK_WARM_BAD wrong answers in the warm-up (see above)")
  [[ $endpoint != introspection ]] || check_active "$INTROSPECT_TOKEN" "$base" "after the run"

  RESULT[$key]=$WRK_RESULT
  LB_CPU[$key]=${WRK_CPU_TICKS_EACH[-1]}
  if [[ $2 == direct ]]; then
    # Straight to A: HAProxy saw none of it.
    INST_CPU[$key]=${WRK_CPU_TICKS_EACH[0]}
    LB_CPU[$key]=""
    SPLIT[$key]="–"
  else
    INST_CPU[$key]=$((WRK_CPU_TICKS - WRK_CPU_TICKS_EACH[-1]))
    # How the balancer spread the requests (warm-up and run), in %.
    for name in "${ROTATION[@]}"; do after+=("$(haproxy_stat "$name" stot)"); done
    for i in "${!after[@]}"; do total=$((total + after[i] - before[i])); done
    for i in "${!after[@]}"; do
      split+="${split:+ / }$(awk -v n=$((after[i] - before[i])) -v t="$total" 'BEGIN { printf "%.0f", (t > 0 ? 100 * n / t : 0) }')"
    done
    SPLIT[$key]=$split
  fi
  ROW_KEYS+=("$key")
}

add_instance a
INTROSPECT_TOKEN=$(new_token "$JOB_ID" "$JOB_SECRET" "$LB_BASE")
check_at_jwt latchkey "$INTROSPECT_TOKEN"
check_at_jwt latchkey "$(new_token "$CC_ID" "$CC_SECRET" "$LB_BASE")"
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)

# A reference: instance A alone, without the balancer.
throughput_row cc direct "${INST_BASE[a]}"
throughput_row introspection direct "${INST_BASE[a]}"
throughput_row cc 1 "$LB_BASE"
throughput_row introspection 1 "$LB_BASE"
add_instance b
throughput_row cc 2 "$LB_BASE"
throughput_row introspection 2 "$LB_BASE"
add_instance c
throughput_row cc 3 "$LB_BASE"
throughput_row introspection 3 "$LB_BASE"

# --- 6. revoke at A → refused at C ------------------------------------------------
say "revocations: $REVOCATIONS samples, revoke at A (${INST_BASE[a]}), introspect at C (${INST_BASE[c]})"
REVOKE_OUT=$WORK/revocations.txt
"$PYTHON" "$BENCH_DIR/cluster_revoke.py" "${INST_BASE[a]}" "${INST_BASE[c]}" \
  "$CC_ID" "$CC_SECRET" "$REVOCATIONS" >"$REVOKE_OUT" || die "the revocation client failed"
REVOKE_RESULT=$(grep '^CLUSTER_RESULT ' "$REVOKE_OUT" | tail -n1) || die "no CLUSTER_RESULT in $REVOKE_OUT"
say "$REVOKE_RESULT"
# One field of the CLUSTER_RESULT line.   $1 name
rv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$REVOKE_RESULT"; }
first_error=${REVOKE_RESULT#* first_error=}
[[ $(rv errors) == 0 ]] || NOTES+=("revocations: $(rv errors) samples failed; first: $first_error")
[[ $(rv not_active_before) == 0 ]] ||
  NOTES+=("revocations: $(rv not_active_before) fresh tokens were not active at C before the revocation (C stale?)")

# Peak memory of each instance and of HAProxy, and anything they complained about.
RSS_LINE="A $(server_peak_rss "${INST_PID[a]}"), B $(server_peak_rss "${INST_PID[b]}"), C $(server_peak_rss "${INST_PID[c]}"); HAProxy $(server_peak_rss "$HAPROXY_PID")"
for name in "${NAMES[@]}"; do
  SERVER_LOG=$TMP/$name/server.log
  note=$(server_log_note "instance ${name^^}")
  [[ -z $note ]] || NOTES+=("$note")
done

# --- 7. the tables -----------------------------------------------------------------
# Prints one field of a row's result (rps, p50, p99, errors).   $1 key  $2 field
field() {
  awk -v line="${RESULT[$1]}" -v cpu_ticks=0 -v hz="$CLK_TCK" -v f="$2" "$BENCH_RESULT_AWK"'
    BEGIN {
      parse_result(line)
      v["rps"] = rps; v["p50"] = p50; v["p99"] = p99; v["errors"] = errors; v["requests"] = r["requests"]
      print v[f]
    }'
}

# One throughput row.   $1 key
table_row() {
  local key=$1 endpoint=${1% *} n=${1#* } label base_rps=""
  case $endpoint in
    cc) label=client_credentials ;;
    *) label=introspection ;;
  esac
  [[ $n == direct ]] || base_rps=$(field "$endpoint 1" rps)
  awk -v label="$label" -v n="$n" -v rps="$(field "$key" rps)" -v p50="$(field "$key" p50)" \
    -v p99="$(field "$key" p99)" -v errors="$(field "$key" errors)" -v requests="$(field "$key" requests)" \
    -v base="$base_rps" -v spread="${SPLIT[$key]}" -v icpu="${INST_CPU[$key]}" -v lcpu="${LB_CPU[$key]}" \
    -v hz="$CLK_TCK" '
    BEGIN {
      us = requests > 0 ? 1e6 / hz / requests : 0
      if (n == "direct") {
        instances = "1, straight to A (no balancer)"; ratio = "–"; target = "reference"; result = "–"
        lb = "–"
      } else {
        instances = n; ratio = sprintf("%.2f×", (base > 0 ? rps / base : 0))
        target = sprintf("scales (ideal %d×)", n)
        result = sprintf("%.0f%% of ideal", (base > 0 ? 100 * rps / base / n : 0))
        if (n == 1) { target = "–"; result = "baseline" }
        if (errors > 0) result = result " (errors)"
        lb = sprintf("%.0f µs", lcpu * us)
      }
      printf "| %s | %s | %.0f | %.2f ms | %.2f ms | %d | %s | %s | %s | %s | %.0f µs | %s |\n",
        label, instances, rps, p50, p99, errors, ratio, target, result, spread, icpu * us, lb
    }'
}

echo
echo "## Cluster: three Latchkey instances behind HAProxy"
echo
echo "$(uname -srm), $(nproc) cores; $BUILD_NOTE; PostgreSQL $PG_VERSION (scratch database);"
echo "HAProxy $HAPROXY_VERSION (roundrobin, keep-alive, health check GET $CHECK_PATH every 500 ms)."
echo "Instances are added one by one (the rows with 1 instance ran before B and C started)."
echo "wrk -t$THREADS -c$CONNS, post.lua, $DURATION per row after a $WARMUP warm-up; 1-minute load average"
echo "before the runs: $LOAD_BEFORE. Everything (the instances, HAProxy, wrk, PostgreSQL) shares the"
echo "machine's $(nproc) cores, so more instances cannot add CPU: the ratio shows what the balancer and"
echo "the extra processes cost as much as how Latchkey scales. split: the share of requests each"
echo "instance in rotation answered (A / B / C, warm-up and run). CPU/req: user+system time of the"
echo "instances in rotation (summed) and of HAProxy, per request."
echo
echo "| endpoint | instances | requests/s | p50 | p99 | errors | ratio to 1 | target | result | split % | instances CPU/req | HAProxy CPU/req |"
echo "|---|---|---:|---:|---:|---:|---:|---|---|---|---:|---:|"
for key in "cc direct" "introspection direct" "cc 1" "cc 2" "cc 3" "introspection 1" "introspection 2" "introspection 3"; do
  table_row "$key"
done
echo
echo "Revoke at A → refused at C, $(rv samples) revocations (three instances, no other load; keep-alive"
echo "connections straight to A and C). Each sample: a client_credentials token from A, active at C"
echo "(the client introspects its own token); then the clock runs from sending the RFC 7009 revocation"
echo "to A until introspection at C answers active: false (polled without pause)."
echo
echo "| measure | p50 | p99 | max | target | result |"
echo "|---|---:|---:|---:|---|---|"
awk -v p50="$(rv p50_ms)" -v p99="$(rv p99_ms)" -v max="$(rv max_ms)" -v t="$TARGET_REVOKE_P99_MS" 'BEGIN {
  printf "| revoke at A → inactive at C | %.2f ms | %.2f ms | %.2f ms | p99 ≤ %d ms | %s |\n",
    p50, p99, max, t, (p99 <= t ? "met" : "missed") }'
awk -v p50="$(rv ack_p50_ms)" -v p99="$(rv ack_p99_ms)" -v max="$(rv ack_max_ms)" 'BEGIN {
  printf "| of which A answering the revocation (200) | %.2f ms | %.2f ms | %.2f ms | none (includes waiting for B and C) | – |\n",
    p50, p99, max }'
awk -v n="$(rv still_active_first)" -v of="$(rv samples)" -v polls="$(rv max_polls)" 'BEGIN {
  printf "| still active at C on the first check after the 200 | %d of %d | | checks until inactive: at most %d | 0 | %s |\n",
    n, of, polls, (n == 0 ? "met" : "missed") }'
echo
echo "Peak RSS (VmHWM): $RSS_LINE."
if ((${#NOTES[@]})); then
  echo
  printf -- '- %s\n' "${NOTES[@]}"
fi
OK=1
