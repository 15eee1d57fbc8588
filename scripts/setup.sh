#!/usr/bin/env bash
# Installs what building and testing Latchkey needs, skipping what is there:
#   the wasm32 target, cargo-leptos 0.3.10, wasm-bindgen-cli at the lockfile's
#   version, and with --e2e also Debian's Chromium and the end2end npm packages.
# Safe to run again; prints one line per step.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# Newer cargo-leptos releases need a newer rustc than these machines have.
if ! cargo leptos --version 2>/dev/null | grep -q '0\.3\.10'; then
  step "installing cargo-leptos 0.3.10 (about 12 minutes on 2 cores, once)"
  env -u CARGO_TARGET_DIR cargo install cargo-leptos --version 0.3.10 --locked --debug
fi

# cargo-leptos runs the wasm-bindgen on PATH; it must match the lockfile exactly.
wbg=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wbg\$"; then
  step "installing wasm-bindgen-cli $wbg (about 3 minutes, once)"
  # No --locked: the registry mirror can lag the CLI's own lockfile.
  env -u CARGO_TARGET_DIR cargo install wasm-bindgen-cli --version "$wbg"
fi

if [ "${1:-}" = "--e2e" ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    step "installing Debian's Chromium"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -x end2end/node_modules/.bin/playwright ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    step "installing the end2end npm packages"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
