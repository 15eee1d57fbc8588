#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: the server's
# user-space cost of one client_credentials issuance, one introspection (of
# the same token each time: its signature is remembered) and one first
# verification (a new token each time: the signature is checked),
# repeatable to a fraction of a per cent whatever else the machine is doing.
# Wall-clock rows (bench/run.sh, bench/peer.sh) move by ±25 % on a shared
# 2-core VM; this is the figure to compare two builds by. It does not count
# the kernel (sockets, about 40 % of a request's CPU time) nor waiting, so
# it complements the wall-clock rows rather than replacing them.
#
# For each row: prepare Latchkey on SQLite as bench/run.sh does, start it
# under callgrind, send BENCH_INSTR_WARMUP requests, zero the counters, send
# BENCH_INSTR_REQUESTS requests on one keep-alive connection (each answer
# checked), dump, and print instructions per request. With BENCH_KEEP=1 the
# dumps stay in the temp dir; `callgrind_annotate --inclusive=yes <dump>`
# shows where they go.
#
# Knobs (environment):
#   BENCH_INSTR_REQUESTS   measured requests per row (default 2000)
#   BENCH_INSTR_WARMUP     requests before counting (default 300)
#   BENCH_INSTR_TOP        functions listed per row, by inclusive cost (default 0)
#   BENCH_BIN, BENCH_KEEP, CARGO_TARGET_DIR as for bench/run.sh

set -euo pipefail
shopt -s inherit_errexit

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"

REQUESTS=${BENCH_INSTR_REQUESTS:-2000}
WARMUP_REQUESTS=${BENCH_INSTR_WARMUP:-300}
TOP=${BENCH_INSTR_TOP:-0}

require_tools valgrind callgrind_control callgrind_annotate python3 curl jq ss base64
bench_init latchkey-instructions
bench_build

# callgrind follows `env` into latchkey (--trace-children); the dumps go to
# the temp dir, one per callgrind_control -d.
SERVER_PREFIX=(valgrind --tool=callgrind --trace-children=yes --dump-instr=no
  "--callgrind-out-file=$TMP/callgrind.out.%p")

# Sends N POSTs on one keep-alive connection and checks every answer. A body
# "@FILE" sends the lines of FILE in turn, one per request, from line SKIP on.
#   $1 N  $2 path  $3 Authorization  $4 body  $5 string every body contains
#   $6 SKIP (for "@FILE"; default 0)
send() {
  python3 - "$PORT" "$@" <<'PY'
import http.client, sys
port, n, path, auth, body, expect = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
skip = int(sys.argv[7]) if len(sys.argv) > 7 else 0
bodies = open(body[1:]).read().split()[skip:] if body.startswith("@") else None
if bodies is not None and len(bodies) < n:
    sys.exit(f"{body}: {len(bodies)} bodies left, {n} needed")
conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=120)
headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
for i in range(n):
    conn.request("POST", path, body=bodies[i] if bodies else body, headers=headers)
    r = conn.getresponse()
    data = r.read().decode()
    if r.status != 200 or expect not in data:
        sys.exit(f"request {i}: {r.status} {data[:200]}")
PY
}

# The instructions of the last dump (its "totals:" line), divided by N.
#   $1 label  $2 N
measure() {
  local label=$1 n=$2 dump total
  dump=$(ls -t "$TMP"/callgrind.out.* | head -n1)
  total=$(awk '/^totals:/ { print $2 }' "$dump")
  printf '| %s | %s | %s |\n' "$label" "$(th "$total")" "$(th $((total / n)))" >>"$TMP/table"
  if ((TOP > 0)); then
    echo "--- $label: top $TOP by inclusive instructions ($dump)"
    # (head closes the pipe early: not a failure.)
    callgrind_annotate --inclusive=yes "$dump" 2>/dev/null |
      awk '/^-+$/ { n++ } n >= 3' | grep -v '^-' | head -n "$TOP" || true
  fi
}

# One row: warm up, zero, send N, dump, measure. With a body "@FILE" the
# warm-up sends its first lines and the counted requests the next ones.
#   $1 label  $2 path  $3 Authorization  $4 body  $5 expected string
row() {
  say "$1: $WARMUP_REQUESTS requests to warm up, then $REQUESTS counted"
  send "$WARMUP_REQUESTS" "$2" "$3" "$4" "$5"
  callgrind_control -z "$SERVER_PID" >/dev/null 2>&1
  send "$REQUESTS" "$2" "$3" "$4" "$5" "$WARMUP_REQUESTS"
  callgrind_control -d "$SERVER_PID" >/dev/null 2>&1
  measure "$1" "$REQUESTS"
}

printf '| row | instructions | per request |\n| --- | ---: | ---: |\n' >"$TMP/table"
latchkey_prepare sqlite 1
# callgrind's pid is the server's (valgrind execs env, which execs latchkey).
access_token=$(latchkey_access_token)
latchkey_sanity_checks "$access_token"
row "client_credentials (JWT)" /oauth/token "$(basic "$CC_ID" "$CC_SECRET")" \
  "grant_type=client_credentials" '"access_token"'
row "introspection (JWT)" /oauth/introspect "$(basic "$RS_ID" "$RS_SECRET")" \
  "token=$access_token" '"active":true'
# A first verification: each request introspects another token (one of
# bench-cc's own client_credentials tokens, issued before counting), so the
# verified-token cache never has it and the signature (Ed25519) is checked.
say "first verification: issuing $((WARMUP_REQUESTS + REQUESTS)) client_credentials tokens"
python3 - "$PORT" "$(basic "$CC_ID" "$CC_SECRET")" "$((WARMUP_REQUESTS + REQUESTS))" \
  >"$TMP/fresh_tokens" <<'PY'
import http.client, json, sys
port, auth, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=120)
headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
for i in range(n):
    conn.request("POST", "/oauth/token", body="grant_type=client_credentials", headers=headers)
    r = conn.getresponse()
    data = r.read().decode()
    if r.status != 200:
        sys.exit(f"request {i}: {r.status} {data[:200]}")
    print("token=" + json.loads(data)["access_token"])
PY
row "introspection, first verification (JWT)" /oauth/introspect \
  "$(basic "$CC_ID" "$CC_SECRET")" "@$TMP/fresh_tokens" '"active":true'
stop_server

echo
echo "Instructions per request (callgrind, SQLite, $REQUESTS requests per row after $WARMUP_REQUESTS; $BUILD_NOTE):"
echo
cat "$TMP/table"
OK=1
