#!/usr/bin/env bash
# Builds the release site and binary, without downloads beyond the crates.io
# and npm registries, and lays them out for deployment (README, "Deploying"):
#
#   DIR/latchkey                the server and CLI (migrations are built in)
#   DIR/site/pkg/latchkey.js    the hydration script,
#   DIR/site/pkg/latchkey.wasm  its WebAssembly (optimised by wasm-opt),
#   DIR/site/pkg/latchkey.css   the style sheet,
#   DIR/site/...                and the static files of public/
#
# Usage: bash scripts/build-release.sh [DIR]      (DIR defaults to dist/)
#        bash scripts/build-release.sh --tools-only
#                 only install what the build needs (scripts/setup.sh and
#                 wasm-opt), e.g. in a container image layer of its own
#
# DIR's `latchkey` and `site/` are replaced; nothing else in DIR is touched.
#
# cargo-leptos runs `wasm-opt` for release builds and downloads one from
# GitHub when none is on PATH. This script puts Binaryen 132 from npm
# (`binaryen@132.0.0`, installed once into $LATCHKEY_TOOLS_DIR, default
# ~/.cache/latchkey/tools) first on PATH instead. Not Debian's `binaryen`
# package (version 108): its wasm fails at hydration with
# "WebAssembly.Table.set(): Argument 1 is invalid for table".
#
# The site is built into $CARGO_TARGET_DIR/site-release, not the clone's
# target/site: a debug server (scripts/run.sh, the Playwright tests) keeps its
# debug site, since a debug server with a release wasm fails at hydration
# (and the reverse). The binary is $CARGO_TARGET_DIR/release/latchkey, the
# wasm is built with the `wasm-release` profile (Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/latchkey/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
tools_only=0
if [ "${1:-}" = "--tools-only" ]; then tools_only=1; shift; fi
out="${1:-dist}"
tools="${LATCHKEY_TOOLS_DIR:-$HOME/.cache/latchkey/tools}"
binaryen=132.0.0
started=$(date +%s)

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

bash scripts/setup.sh

wasm_opt="$tools/node_modules/.bin/wasm-opt"
if ! "$wasm_opt" --version 2>/dev/null | grep -q '^wasm-opt version 132\b'; then
  step "installing wasm-opt (npm binaryen@$binaryen) into $tools"
  mkdir -p "$tools"
  npm install --prefix "$tools" --save-exact --no-audit --no-fund --loglevel=error "binaryen@$binaryen"
fi
export PATH="$tools/node_modules/.bin:$PATH"
# The one cargo-leptos will run (it takes the first on PATH).
if [ "$(command -v wasm-opt)" != "$wasm_opt" ] || ! wasm-opt --version | grep -q '^wasm-opt version 132\b'; then
  echo "build-release.sh: wasm-opt on PATH is not $wasm_opt (Binaryen 132)" >&2
  exit 1
fi
if [ "$tools_only" = 1 ]; then exit 0; fi

site="$CARGO_TARGET_DIR/site-release"
step "building the release site and binary (cargo leptos build --release)"
LEPTOS_SITE_ROOT="$site" cargo leptos build --release

bin="$CARGO_TARGET_DIR/release/latchkey"
for f in "$bin" "$site/pkg/latchkey.js" "$site/pkg/latchkey.wasm" "$site/pkg/latchkey.css"; do
  if [ ! -s "$f" ]; then
    echo "build-release.sh: $f is missing after the build" >&2
    exit 1
  fi
done

step "laying out the release in $out"
mkdir -p "$out"
rm -rf "$out/latchkey" "$out/site"
cp "$bin" "$out/latchkey"
cp -R "$site" "$out/site"
# wasm-bindgen's TypeScript declarations: for editors, not for serving.
find "$out/site" -name '*.d.ts' -delete

out_abs="$(cd "$out" && pwd)"
echo
echo "Release layout ($(( $(date +%s) - started ))s):"
(cd "$out_abs" && find latchkey site -type f -printf '%s\t%p\n' | sort -k2 |
  awk -F'\t' '{ printf "  %10d  %s\n", $1, $2 }')
echo
echo "Run it (README, \"Deploying\"):"
echo "  LEPTOS_SITE_ROOT=$out_abs/site LATCHKEY_ISSUER=https://id.example.com \\"
echo "  LATCHKEY_DATABASE_URL=sqlite:///var/lib/latchkey/latchkey.db \\"
echo "  LATCHKEY_MASTER_KEY_FILE=/var/lib/latchkey/latchkey.key $out_abs/latchkey serve"
