#!/usr/bin/env bash
# Crash safety (issue 13, item 4): drives Latchkey — client_credentials
# issuance, sign-ins and code redemptions, refresh with rotation, RFC 7009
# revocation of refresh and access tokens, RP-initiated logout — and kills it
# with SIGKILL at a random moment, N times, restarting it each time on the
# same database; then checks the invariants (bench/crash_loop.py has them
# all, each with its reason). On SQLite (a temp file) and on PostgreSQL (a
# scratch database, created and dropped here).
#
#   bench/crash-loop.sh                 # 20 kills on each database (CI's short form)
#   bench/crash-loop.sh --runs 200      # the long form (or CRASH_RUNS=200)
#   bench/crash-loop.sh --backends sqlite
#   LATCHKEY_BIN=$CARGO_TARGET_DIR/debug/latchkey bench/crash-loop.sh   # another binary
#   bench/crash-loop.sh --no-prove      # skip showing that each check can fail
#
# Exits non-zero at the first violation, keeping the logs, the state file and
# the database (the PostgreSQL one is not dropped then) for inspection.
set -euo pipefail
shopt -s inherit_errexit

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

RUNS=${CRASH_RUNS:-20}
BACKENDS=${CRASH_BACKENDS:-sqlite postgres}
WORKERS=${CRASH_WORKERS:-6}
KILL_MIN=${CRASH_KILL_MIN:-0.3}   # seconds of load before the kill: uniform in [MIN, MAX]
KILL_MAX=${CRASH_KILL_MAX:-2.5}
SEED=${CRASH_SEED:-}
PROVE=${CRASH_PROVE:-1}           # then corrupt copies to show each check catches what it is for
while (($#)); do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --runs=*) RUNS=${1#*=}; shift ;;
    --backends) BACKENDS=$2; shift 2 ;;
    --backends=*) BACKENDS=${1#*=}; shift ;;
    --workers) WORKERS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --no-prove) PROVE=0; shift ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "crash-loop.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "crash-loop.sh: --runs wants a positive number" >&2; exit 2; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/latchkey/target}
BENCH_BIN=${LATCHKEY_BIN:-$CARGO_TARGET_DIR/release/latchkey}
# The load comes from one address, well over the default per-IP limit:
# switched off (a binary without these settings ignores them).
export LATCHKEY_RATE_LIMIT_PER_IP=off LATCHKEY_RATE_LIMIT_PER_CLIENT=off BENCH_RATE_LIMIT=${BENCH_RATE_LIMIT:-off}
# Sign-in throttling counts each attempt before its password is checked, so
# a sign-in cut off by a kill counts as a failure: with the defaults the
# workers' users would be locked out after a few kills. Attempts are still
# counted (and cleared), just never enough to lock anyone.
export LATCHKEY_SIGNIN_FAILURES_PER_USER=1000 LATCHKEY_SIGNIN_FAILURES_PER_IP=1000 LATCHKEY_SIGNIN_FAILURE_WINDOW=1s
# psql's notices (DROP DATABASE IF EXISTS) are not news here.
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
DRIVER=$BENCH_DIR/crash_loop.py

require_tools curl jq ss python3
if [[ ! -x $BIN ]]; then
  [[ -z ${LATCHKEY_BIN:-} ]] || die "LATCHKEY_BIN=$BIN is not an executable"
  say "no release binary at $BIN: cargo build --release -p latchkey"
  (cd "$REPO" && cargo build --release -p latchkey)
  [[ -x $BIN ]] || die "no binary at $BIN after the build"
fi
bench_init crash-loop

# Stops here with the evidence kept: the temp dir (OK stays 0) and the
# PostgreSQL database (forgotten, so the exit trap does not drop it).
fail() {
  stop_server
  echo "crash-loop.sh: FAILED ($backend, run ${run:-0}): $*" >&2
  echo "crash-loop.sh: state (answers, confirmed revocations, violations): $STATE" >&2
  echo "crash-loop.sh: server logs: $WORK/server*.log; database: $DB_URL" >&2
  PG_DB=""
  exit 1
}

# The driver's view of this backend (rewritten after each start: a restart
# may land on another port when the old one is taken).
write_config() {
  jq -n --arg base "$BASE" --arg issuer "$ISSUER" --arg backend "$backend" --arg db_url "$DB_URL" \
    --arg app_id "$APP_ID" --arg app_secret "$APP_SECRET" \
    --arg cc_id "$CC_ID" --arg cc_secret "$CC_SECRET" \
    --arg redirect_uri "$REDIRECT_URI" --arg password "$PASSWORD" \
    --argjson workers "$WORKERS" --argjson kill_min "$KILL_MIN" --argjson kill_max "$KILL_MAX" \
    --argjson users "$(seq "$WORKERS" | jq -R "\"$USERNAME\" + ." | jq -s .)" \
    '{$base, $issuer, $backend, $db_url, $app_id, $app_secret, $cc_id, $cc_secret, $redirect_uri,
      $password, $workers, $kill_min, $kill_max, $users}' >"$CONFIG"
}

driver() { python3 "$DRIVER" "$1" "$CONFIG" "$STATE" "${@:2}"; }

# Starts the server (lib.sh) out of the job table: bash would print a line
# for every job a signal killed, and the kills here are the point.
start() {
  start_server
  disown "$SERVER_PID" 2>/dev/null || true
}

SUMMARIES=()
run_backend() {
  backend=$1
  local started
  started=$(date +%s)
  if [[ $backend == postgres ]]; then
    require_tools psql pg_isready createdb dropdb
    pg_isready -q -h "$PG_HOST" || die "PostgreSQL does not answer at $PG_HOST:5432"
  fi
  ISSUER=""
  latchkey_prepare "$backend" "$WORKERS"
  disown "$SERVER_PID" 2>/dev/null || true
  # The same issuer across restarts, whatever port a restart gets.
  ISSUER=$BASE
  # Consent once per user and app (the driver's code flows then go straight through).
  local u
  for u in $(seq "$WORKERS"); do
    code_flow "$USERNAME$u" "$APP_ID" "$APP_SECRET" "$REDIRECT_URI" >/dev/null
  done
  CONFIG=$WORK/crash-config.json
  STATE=$WORK/crash-state.json
  write_config
  say "$backend: $RUNS runs of load and kill -9 ($WORKERS workers, kill after ${KILL_MIN}-${KILL_MAX}s)"
  for run in $(seq "$RUNS"); do
    driver drive --pid "$SERVER_PID" --run "$run" ${SEED:+--seed $((SEED + run))} ||
      fail "a violation while the load ran (see above)"
    SERVER_PID=""
    mv "$SERVER_LOG" "$WORK/server.run$run.log"
    driver check-db || fail "an invariant on the tables after the kill"
    start
    write_config
    if ((run == RUNS)); then
      driver check-live --all || fail "an invariant after the restart"
    else
      driver check-live || fail "an invariant after the restart"
    fi
  done
  # A graceful stop, and the tables once more.
  stop_server
  mv "$SERVER_LOG" "$WORK/server.final.log"
  run=final
  driver check-db --label "after the last, graceful stop" || fail "an invariant on the tables at the end"
  if ((PROVE)); then
    # Each check must be able to fail: broken copies of the tables, each
    # caught by its own check; then confirmed revocations undone and a
    # reuse grace in the real database (nothing else runs on it any more),
    # which the checks over HTTP must catch after a restart.
    run=prove
    driver prove-db || fail "a corruption of the tables that no check caught"
    driver prove-live --stage break || fail "could not corrupt the database"
    start
    write_config
    driver prove-live --stage expect || fail "an undone revocation that the checks over HTTP did not catch"
    stop_server
    mv "$SERVER_LOG" "$WORK/server.prove.log"
  fi
  local summary panics
  summary=$(driver summary) || fail "violations recorded"
  # A panic is a bug even when the invariants held (the proof stage's
  # deliberately corrupted database is not counted).
  panics=$(find "$WORK" -maxdepth 1 -name 'server*.log' ! -name 'server.prove.log' -exec cat {} + |
    grep -c 'panicked' || true)
  ((panics == 0)) || fail "$panics panics in the server logs ($WORK/server*.log)"
  summary+="; $((  $(date +%s) - started ))s"
  SUMMARIES+=("$summary")
  echo "$summary"
}

total_started=$(date +%s)
for backend in $BACKENDS; do
  case $backend in
    sqlite | postgres) run_backend "$backend" ;;
    *) die "unknown backend $backend (sqlite or postgres)" ;;
  esac
  drop_pg_db
done

echo
echo "crash-loop: binary $BIN; $RUNS kills per database; $(( $(date +%s) - total_started ))s"
printf '  %s\n' "${SUMMARIES[@]}"
echo "crash-loop: every invariant held"
OK=1
