#!/usr/bin/env bash
# Builds Latchkey and starts it on SQLite (data/latchkey.db) with the demo data.
# Settings: LATCHKEY_ADDR, LATCHKEY_ISSUER, LATCHKEY_DATABASE_URL, LATCHKEY_LOG (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/latchkey/target}"
export LEPTOS_SITE_ROOT="${LEPTOS_SITE_ROOT:-target/site}"

bash scripts/setup.sh
echo "==> building (cargo leptos build)"
cargo leptos build
bin="$CARGO_TARGET_DIR/debug/latchkey"
"$bin" demo
issuer="${LATCHKEY_ISSUER:-http://${LATCHKEY_ADDR:-127.0.0.1:3000}}"
echo
echo "Latchkey is starting. Open $issuer/signin and sign in as alice / alice-demo-password"
echo "(or admin / latchkey-admin-demo). Stop it with Ctrl-C."
exec "$bin" serve
