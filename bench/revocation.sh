#!/usr/bin/env bash
# Revocation bench rows (issue 10, item 7): builds release binaries of
# latchkey, the guard crate's notes_api example and this bench
# (server/examples/revocation_bench.rs), then runs it. See bench/README.md,
# "Revocation rows".
#
#   bench/revocation.sh          # CI short form: 50 revocations per setup
#   bench/revocation.sh --full   # 1,000 revocations per setup
#
# Knobs (environment): BENCH_REVOCATIONS (overrides 50/1000),
# BENCH_REVOKED_ENTRIES (100000), BENCH_SSE_CONNECTIONS (1000),
# BENCH_DURATION (wrk -d, 10s), BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/test,
# "none" skips the PostgreSQL row), CARGO_TARGET_DIR (~/.cache/latchkey/target).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/latchkey/target}"
if [ "${1:-}" = "--full" ]; then
  export BENCH_REVOCATIONS="${BENCH_REVOCATIONS:-1000}"
elif [ -n "${1:-}" ]; then
  echo "usage: bench/revocation.sh [--full]" >&2
  exit 2
fi
for tool in wrk; do
  command -v "$tool" >/dev/null || { echo "revocation.sh: $tool is required" >&2; exit 1; }
done
echo "==> building release binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release -p latchkey -p latchkey-resource --bins --examples
exec "$CARGO_TARGET_DIR/release/examples/revocation_bench"
