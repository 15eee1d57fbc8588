#!/usr/bin/env bash
# Runs every test: unit and integration tests (the storage and sign-in tests on
# SQLite and on PostgreSQL), then the Playwright tests in Debian's Chromium.
# With CI=true the PostgreSQL tests must run; elsewhere they skip with a notice
# when no PostgreSQL answers at LATCHKEY_TEST_POSTGRES_URL
# (default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/latchkey/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# On CI, no incremental compilation caches: a clean clone compiles the
# workspace's crates afresh anyway (its files are newer than anything built),
# and their caches took 12 GB of disk on top of the shared build directory.
if [ "${CI:-}" = "true" ]; then
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi
started=$(date +%s)

bash scripts/setup.sh --e2e

# On CI the machine's PostgreSQL must be up; start the cluster if it is not.
if [ "${CI:-}" = "true" ] && command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "==> starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi

echo "==> unit and integration tests (SQLite and PostgreSQL)"
cargo test -p app -p latchkey --features app/ssr

echo "==> the resource-server guard (latchkey-resource)"
cargo test -p latchkey-resource

# A real server on SQLite; the admin API fuzzed from its own OpenAPI document.
echo "==> the admin API against its OpenAPI document (schemathesis)"
bash scripts/schemathesis.sh

# After cargo test, so the server binary the browser tests start is this build's.
echo "==> building the site (cargo leptos build)"
cargo leptos build

echo "==> building the example API the browser tests start (notes_api)"
cargo build -p latchkey-resource --example notes_api

echo "==> end-to-end tests (Playwright, Chromium)"
(cd end2end && npx playwright test)

# Crash safety (issue 13): a release server killed with SIGKILL at random
# moments under load, 20 times on SQLite and 20 on PostgreSQL, its invariants
# checked after each kill and restart (bench/README.md, "Crash safety").
echo "==> crash safety (bench/crash-loop.sh, 20 kills per database, release binary)"
bash scripts/build-release.sh "$CARGO_TARGET_DIR/release-layout"
LATCHKEY_BIN="$CARGO_TARGET_DIR/release/latchkey" CRASH_RUNS=20 bash bench/crash-loop.sh

# The release layout the crash loop was built with (no second build), started
# as README's "Deploying" documents it: signs in over HTTP and in Chromium.
echo "==> the release layout (scripts/test-release.sh)"
bash scripts/test-release.sh --layout "$CARGO_TARGET_DIR/release-layout"

echo "==> all tests passed in $(( $(date +%s) - started ))s"
