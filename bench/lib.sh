# shellcheck shell=bash
# shellcheck disable=SC2034  # variables set here are read by the sourcing script
# Shared bash for bench/run.sh, bench/peer.sh and bench/cluster.sh: sourced, never run.
#
# The caller sets `set -euo pipefail` and `shopt -s inherit_errexit`, and
# BENCH_DIR (this folder) and REPO (the checkout) before sourcing. This file
# reads the knobs both scripts document (BENCH_DURATION, BENCH_WARMUP,
# BENCH_PG_HOST/USER, BENCH_LOG, BENCH_KEEP, BENCH_BIN, BENCH_RATE_LIMIT,
# CARGO_TARGET_DIR) and
# defines:
#   - say/die, the temp dir and the cleanup trap (bench_init);
#   - the build, or BENCH_BIN (bench_build);
#   - starting and stopping one server at a time (SERVER_PID), with an
#     optional command prefix (SERVER_PREFIX, e.g. taskset); processes the
#     caller keeps running besides it (EXTRA_PIDS) are stopped at exit too;
#   - preparing Latchkey on one backend the way the load rows need it
#     (latchkey_prepare, latchkey_access_token, latchkey_sanity_checks);
#   - wrk's warm-up + measured run (wrk_run), with an optional command
#     prefix (WRK_CMD), counting the CPU time of the server (or of CPU_PIDS).

BENCH_SCRIPT=${0##*/}

DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
PG_HOST=${BENCH_PG_HOST:-127.0.0.1}
PG_USER=${BENCH_PG_USER:-postgres}
SERVER_LOG_LEVEL=${BENCH_LOG:-info}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/latchkey/target}
BIN=${BENCH_BIN:-$CARGO_TARGET_DIR/release/latchkey}
# Request limits stay on, sized above any load here (every request still
# passes the limiters); `off` measures without them.
BENCH_RATE_LIMIT=${BENCH_RATE_LIMIT:-1000000000/s}

# What the benchmark registers.
USERNAME=bench    # users are bench1, bench2, ... (latchkey_prepare's second argument)
PASSWORD=bench-password-123
REDIRECT_URI=https://bench.example/cb
REDIRECT_URI_NOROTATE=https://bench-norotate.example/cb
RS_AUDIENCE=https://bench-rs.example

say() { printf '==> %s\n' "$*"; }
die() { printf '%s: error: %s\n' "$BENCH_SCRIPT" "$*" >&2; exit 1; }

require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "$tool is required"
  done
}

# --- state the cleanup trap needs -------------------------------------------
TMP=""
SERVER_PID=""
SERVER_LOG=""
SERVER_PREFIX=()   # prepended to the server's command (e.g. taskset -c 0)
ISSUER=""          # latchkey's --issuer ("" = its own BASE; cluster.sh: the balancer's URL)
EXTRA_PIDS=()      # other processes the caller started (stopped at exit, last first)
CPU_PIDS=()        # whose CPU time wrk_run counts (empty = SERVER_PID)
WRK_CMD=(wrk)      # how wrk is run (e.g. taskset -c 1 wrk)
PG_DB=""           # scratch database currently created (dropped at exit)
OK=0               # set to 1 when everything ran: the temp dir is then removed

# Stops one process this shell started.   $1 its pid ("" = nothing to do)
stop_pid() {
  local pid=$1
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    # Graceful shutdown first; SIGKILL if it does not stop within 5 s.
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}

stop_server() {
  stop_pid "$SERVER_PID"
  SERVER_PID=""
}

drop_pg_db() {
  if [[ -n $PG_DB ]]; then
    dropdb -h "$PG_HOST" -U "$PG_USER" --if-exists "$PG_DB" || true
    PG_DB=""
  fi
}

cleanup() {
  local rc=$? i
  stop_server
  for ((i = ${#EXTRA_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${EXTRA_PIDS[i]}"; done
  drop_pg_db
  if [[ $OK == 1 && ${BENCH_KEEP:-0} != 1 ]]; then
    rm -rf "$TMP"
  else
    echo "$BENCH_SCRIPT: logs and data kept in $TMP" >&2
  fi
  exit "$rc"
}

# Creates the temp dir (with a stub Leptos site in it) and sets the traps.
#   $1 name for the temp dir
bench_init() {
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  # `latchkey serve` refuses to start without the Leptos site (pkg/latchkey.js).
  # The protocol endpoints measured here never serve it, so a stub site will do.
  mkdir -p "$TMP/site/pkg"
  : >"$TMP/site/pkg/latchkey.js"
}

# Builds the release binary, or takes BENCH_BIN as it is; sets BUILD_NOTE.
bench_build() {
  if [[ -n ${BENCH_BIN:-} ]]; then
    say "not building: measuring BENCH_BIN=$BIN"
    BUILD_NOTE="binary $BIN (not built)"
    [[ -x $BIN ]] || die "BENCH_BIN=$BIN is not an executable"
  else
    require_tools cargo
    say "building: cargo build --release -p latchkey (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    local build_start build_end build_secs
    build_start=$(date +%s.%N)
    (cd "$REPO" && cargo build --release -p latchkey)
    build_end=$(date +%s.%N)
    build_secs=$(awk -v a="$build_start" -v b="$build_end" 'BEGIN { printf "%.1f", b - a }')
    BUILD_NOTE="build ${build_secs}s"
    say "build took ${build_secs}s"
    [[ -x $BIN ]] || die "no binary at $BIN after the build"
  fi
}

# --- small helpers ------------------------------------------------------------------
# Per-backend settings, set by latchkey_prepare: WORK (cwd and data dir), DB_URL,
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

# A whole number with thousands separators: 1234567 -> 1,234,567.
th() { sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$1"; }

# CPU time (user + system, in clock ticks) a process has used so far.
#   $1 pid (default: the server)
CLK_TCK=$(getconf CLK_TCK)
server_cpu_ticks() {
  # Fields after the ")" of the command name: utime and stime are the 12th and 13th.
  sed 's/.*) //' "/proc/${1:-$SERVER_PID}/stat" | awk '{ print $12 + $13 }'
}

# A process's peak resident memory so far, e.g. "21.3 MiB".   $1 pid (default: the server)
server_peak_rss() {
  awk '/^VmHWM:/ { printf "%.1f MiB", $2 / 1024 }' "/proc/${1:-$SERVER_PID}/status"
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

# A fresh secret: 32 random bytes, unpadded base64url.
new_master_key() {
  head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='
}

# "Basic base64(id:secret)" (ids and secrets are base64url: nothing to escape).
basic() { printf 'Basic %s' "$(printf '%s:%s' "$1" "$2" | base64 -w0)"; }

uri_encode() { jq -rn --arg v "$1" '$v | @uri'; }

# The decoded JSON header of a JWS in compact form ("" if it is none).
jwt_header() {
  local part=${1%%.*}
  part=$(tr -- '-_' '+/' <<<"$part")
  while ((${#part} % 4)); do part+="="; done
  base64 -d <<<"$part" 2>/dev/null || true
}

# Exits with a message unless $2 is a JWS in compact form (three parts) whose
# header says typ at+jwt.   $1 who issued it (for the message)  $2 the token
check_at_jwt() {
  local header
  [[ $2 =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] ||
    die "$1: the access token is not a JWT of three parts: ${2:0:80}"
  header=$(jwt_header "$2")
  # (jq -e passes on empty input: an undecodable header is "null" instead.)
  jq -e '.typ | ascii_downcase == "at+jwt"' >/dev/null 2>&1 <<<"${header:-null}" ||
    die "$1: the access token's header is not typ at+jwt: $header"
}

# Registers a client and prints "client_id secret".
add_client() {
  local json
  json=$(lk client add --json "$@")
  jq -er '"\(.client.client_id) \(.client_secret)"' <<<"$json"
}

# --- starting a server ------------------------------------------------------------

# Waits until $1 answers (any 2xx) while the server process lives; gives up
# after 30 s.   $1 URL
wait_until_ready() {
  for _ in $(seq 300); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID" 2>/dev/null || true
      SERVER_PID=""
      echo "$BENCH_SCRIPT: the server exited during start-up" >&2
      return 1
    fi
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "$BENCH_SCRIPT: the server did not answer $1 within 30 s" >&2
  stop_server
  return 1
}

# Starts a server on PORT with a start function that starts one attempt
# (setting SERVER_PID and SERVER_LOG) and waits until it answers. Another
# process can still take the port between free_port and the bind: then it
# tries again on a new port (3 attempts).   $1 the start function
start_server_with() {
  local attempt
  for attempt in 1 2 3; do
    if "$1"; then
      return 0
    fi
    if ((attempt < 3)) && grep -qE 'Address already in use|EADDRINUSE' "$SERVER_LOG"; then
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

# Starts `latchkey serve` on PORT (see start_server_with).
start_server() { start_server_with try_start_latchkey; }

# One start attempt; returns non-zero if the server exits or does not answer
# /healthz within 30 s.
try_start_latchkey() {
  SERVER_LOG=$WORK/server.log
  (cd "$WORK" && exec "${SERVER_PREFIX[@]}" env \
    LATCHKEY_DATABASE_URL="$DB_URL" \
    LATCHKEY_MASTER_KEY="$MASTER_KEY" \
    LATCHKEY_MASTER_KEY_FILE="$WORK/latchkey.key" \
    LATCHKEY_ADDR="127.0.0.1:$PORT" \
    LATCHKEY_ISSUER="${ISSUER:-$BASE}" \
    LATCHKEY_LOG="$SERVER_LOG_LEVEL" \
    LATCHKEY_RATE_LIMIT_PER_IP="$BENCH_RATE_LIMIT" \
    LATCHKEY_RATE_LIMIT_PER_CLIENT="$BENCH_RATE_LIMIT" \
    LEPTOS_SITE_ROOT="$TMP/site" \
    "$BIN" serve) >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  # Ready when /healthz answers (the database is reachable).
  wait_until_ready "$BASE/healthz"
}

# --- browser flows ---------------------------------------------------------------

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

# --- Latchkey on one backend ------------------------------------------------------

# Creates the database (a new SQLite file, or a scratch PostgreSQL database
# lk_bench_<pid>), migrates it, adds N users and the four clients, starts
# `latchkey serve` on a free port and signs every user in. Sets WORK, DB_URL,
# MASTER_KEY, PORT, BASE, and CC_ID/CC_SECRET (client_credentials),
# RS_ID/RS_SECRET (a resource server that introspects), APP_ID/APP_SECRET (code
# flow + refresh, rotation on), NR_ID/NR_SECRET (the same, rotation off).
#   $1 sqlite|postgres  $2 how many users (bench1..benchN)
latchkey_prepare() {
  local backend=$1 users=$2
  WORK=$TMP/$backend
  mkdir -p "$WORK"
  case $backend in
    sqlite) DB_URL="sqlite://$WORK/latchkey.db" ;;
    postgres)
      PG_DB=lk_bench_$$
      createdb -h "$PG_HOST" -U "$PG_USER" "$PG_DB"
      DB_URL="postgres://$PG_USER@$PG_HOST:5432/$PG_DB"
      ;;
    *) die "unknown backend $backend (expected sqlite or postgres)" ;;
  esac
  MASTER_KEY=$(new_master_key)
  PORT=$(free_port)
  BASE="http://127.0.0.1:$PORT"

  say "$backend: preparing $DB_URL"
  lk migrate >/dev/null
  local u out
  for u in $(seq "$users"); do
    printf '%s\n' "$PASSWORD" | lk user add --username "$USERNAME$u" --password-stdin >/dev/null
  done
  # A machine client for client_credentials.
  out=$(add_client --name bench-cc --grant-type client_credentials)
  read -r CC_ID CC_SECRET <<<"$out"
  # A resource server that introspects (confidential, Basic auth): only
  # tokens whose aud names it, i.e. carrying the scope it serves.
  out=$(add_client --name bench-rs --grant-type client_credentials)
  read -r RS_ID RS_SECRET <<<"$out"
  lk client resource-server --audience "$RS_AUDIENCE" --serves bench:read -- "$RS_ID" >/dev/null
  # An app with the code flow and refresh tokens; rotation stays on (the default).
  lk scope set bench:read --description "Read bench data" >/dev/null
  out=$(add_client --name bench-app --redirect-uri "$REDIRECT_URI" \
    --grant-type authorization_code --grant-type refresh_token --scope bench:read)
  read -r APP_ID APP_SECRET <<<"$out"
  # The same, with rotation switched off for it.
  out=$(add_client --name bench-app-norotate \
    --redirect-uri "$REDIRECT_URI_NOROTATE" \
    --grant-type authorization_code --grant-type refresh_token)
  read -r NR_ID NR_SECRET <<<"$out"
  # "--": a client_id is random base64url and may start with "-".
  lk client set --rotate off --json -- "$NR_ID" | jq -e '.effective.rotate_refresh == false' >/dev/null ||
    die "could not switch rotation off for $NR_ID"

  say "$backend: starting latchkey serve on $BASE (log: $WORK/server.log)"
  start_server
  say "$backend: listening on $BASE (pid $SERVER_PID)"
  for u in $(seq "$users"); do sign_in "$USERNAME$u"; done
}

# An access token for bench1 and bench-app whose aud names the resource
# server (scope bench:read): the token the introspection row introspects.
# Prints it.
latchkey_access_token() {
  code_flow "${USERNAME}1" "$APP_ID" "$APP_SECRET" "$REDIRECT_URI" "openid offline_access bench:read" |
    jq -r .access_token
}

# The resource server's introspection of $1 says active:true (or exits).
#   $1 token  $2 when (for the message)
latchkey_check_active() {
  curl -sS -u "$RS_ID:$RS_SECRET" --data-urlencode "token=$1" "$BASE/oauth/introspect" |
    jq -e '.active == true' >/dev/null || die "introspection does not say the access token is active $2"
}

# Sanity checks the load rows rely on: the access token introspects as
# active, and client_credentials issues a JWT access token (typ at+jwt).
#   $1 the access token to introspect
latchkey_sanity_checks() {
  latchkey_check_active "$1" "(before the runs)"
  local json
  json=$(curl -sS -u "$CC_ID:$CC_SECRET" -d grant_type=client_credentials "$BASE/oauth/token")
  jq -e '.access_token' >/dev/null <<<"$json" || die "client_credentials does not issue a token: $json"
  check_at_jwt latchkey "$(jq -r .access_token <<<"$json")"
}

# Counts the WARN/ERROR lines in the server log; prints a note when there
# are any (nothing otherwise).   $1 who (for the note)
server_log_note() {
  local warns plain=${SERVER_LOG%.log}.plain.log
  # The log may carry ANSI colour codes: strip them first.
  sed 's/\x1b\[[0-9;]*m//g' "$SERVER_LOG" >"$plain"
  warns=$(grep -cE '^\S+ +(WARN|ERROR) ' "$plain" || true)
  if [[ $warns != 0 ]]; then
    echo "$1: $warns WARN/ERROR lines in the server log (BENCH_KEEP=1 keeps it), first: $(grep -m1 -E '^\S+ +(WARN|ERROR) ' "$plain" | cut -c1-300)"
  fi
}

# --- wrk ---------------------------------------------------------------------------

# Runs wrk (WRK_CMD) against the server (SERVER_PID): a warm-up of WARMUP,
# then the measured run of DURATION with --latency. The wrk script's
# environment (BENCH_*) must be exported by the caller.
#   $1 what is measured (messages; file names in WORK)  $2 warm-up tokens file ("" = same as measured)
#   $3 a string every warm-up response body must contain ("" = no check)
#   then: wrk args (script, url, ...)
# Sets WRK_OUT (the measured run's output file), WRK_RESULT (its BENCH_RESULT
# line), WRK_WARM_BAD (wrong answers in the warm-up), WRK_CPU_TICKS (the
# server's CPU time during the measured run, or the sum over CPU_PIDS) and
# WRK_CPU_TICKS_EACH (one figure per process of CPU_PIDS, in its order).
#
# Bodies are checked (post.lua's BENCH_EXPECT) in the warm-up only: wrk shares
# the machine with the server, and handing every body to Lua costs the server
# ~20% of its throughput on 2 cores. The measured run counts non-2xx/3xx and
# socket errors; refresh_rotate.lua must read every body, so it always checks.
wrk_run() {
  local what=$1 warm_tokens=$2 expect=$3
  shift 3
  local slug warm pid i
  local pids=("${CPU_PIDS[@]}") cpu0=() cpu1=()
  ((${#pids[@]})) || pids=("$SERVER_PID")
  slug=$(printf '%s' "$what" | tr -c 'a-zA-Z0-9' '_')
  WRK_OUT=$WORK/wrk-$slug.txt
  warm=$WORK/wrk-$slug-warmup.txt

  say "$what: warm-up $WARMUP${expect:+ (every body must contain $expect)}"
  BENCH_TOKENS_FILE=${warm_tokens:-${BENCH_TOKENS_FILE:-}} BENCH_EXPECT=$expect \
    "${WRK_CMD[@]}" -d "$WARMUP" "$@" >"$warm" 2>&1 || { cat "$warm" >&2; die "wrk warm-up failed"; }
  WRK_WARM_BAD=$(grep '^BENCH_RESULT ' "$warm" | tail -n1 | sed -n 's/.* bad=\([0-9]*\).*/\1/p')
  [[ -n $WRK_WARM_BAD ]] || { cat "$warm" >&2; die "no BENCH_RESULT in the warm-up output"; }
  if [[ $WRK_WARM_BAD != 0 ]]; then
    grep '^BENCH_FIRST_BAD ' "$warm" | head -n 3 | sed 's/^/    /'
  fi

  say "$what: ${WRK_CMD[*]} -d $DURATION --latency $*"
  for pid in "${pids[@]}"; do cpu0+=("$(server_cpu_ticks "$pid")"); done
  BENCH_EXPECT="" "${WRK_CMD[@]}" -d "$DURATION" --latency "$@" >"$WRK_OUT" 2>&1 ||
    { cat "$WRK_OUT" >&2; die "wrk failed"; }
  for pid in "${pids[@]}"; do cpu1+=("$(server_cpu_ticks "$pid")"); done
  WRK_CPU_TICKS=0
  WRK_CPU_TICKS_EACH=()
  for i in "${!pids[@]}"; do
    WRK_CPU_TICKS_EACH+=($((cpu1[i] - cpu0[i])))
    WRK_CPU_TICKS=$((WRK_CPU_TICKS + cpu1[i] - cpu0[i]))
  done
  sed 's/^/    /' "$WRK_OUT"
  WRK_RESULT=$(grep '^BENCH_RESULT ' "$WRK_OUT" | tail -n1) || die "no BENCH_RESULT in $WRK_OUT"
  if grep -q '^BENCH_FIRST_BAD ' "$WRK_OUT"; then
    echo "    first bad responses:"
    grep '^BENCH_FIRST_BAD ' "$WRK_OUT" | sort | uniq -c | head -n 5 | sed 's/^/      /'
  fi
}

# The awk program that turns a BENCH_RESULT line (awk variable `line`) into
# the array r[] and rps, p50, p99 (ms), errors (socket errors + bad answers
# when the script checked bodies, else wrk's non-2xx/3xx count) and cpu_us
# (the server's CPU time per request; awk variables cpu_ticks and hz).
# Prepend it to a program's BEGIN block.
BENCH_RESULT_AWK='
  function parse_result(line,    n, i, kv, p) {
    n = split(line, kv, " ")
    for (i = 2; i <= n; i++) { split(kv[i], p, "="); r[p[1]] = p[2] }
    rps = r["requests"] / (r["duration_us"] / 1e6)
    p50 = r["p50_us"] / 1000; p99 = r["p99_us"] / 1000
    errors = r["socket_errors"] + (r["bad"] > r["non2xx"] ? r["bad"] : r["non2xx"])
    cpu_us = r["requests"] > 0 ? cpu_ticks / hz * 1e6 / r["requests"] : 0
  }'
