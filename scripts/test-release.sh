#!/usr/bin/env bash
# Tests the release as README's "Deploying" documents it: builds the release
# layout (scripts/build-release.sh) into a temporary folder, copies it as one
# would to /opt/latchkey, writes the settings file from deploy/latchkey.env
# with its paths moved into the temporary folder (the state directory, the
# layout, a free port on 127.0.0.1), and then, with those settings alone and
# from the state directory:
#   - adds a user with the CLI and starts `latchkey serve`;
#   - checks that the master key file was created with mode 0600;
#   - fetches /signin and every /pkg/ file its HTML names (the js, the wasm,
#     the css): each answers 200 with the layout's bytes, the wasm as
#     application/wasm;
#   - posts the sign-in form: from another origin → 403, with a wrong
#     password → back to the form, no sign-in; with the right one → 303 to
#     the dashboard with the session cookie, and the dashboard then shows the
#     user signed in (and does not without the cookie);
#   - in Debian's Chromium (end2end/'s Playwright), signs in through the form
#     and waits for the page to hydrate (body[data-hydrated]) with no page or
#     console error: the release wasm runs. Required with CI=true; elsewhere
#     skipped with a notice when Chromium or end2end/node_modules is missing.
#
# Usage: bash scripts/test-release.sh [--layout DIR]
#   --layout DIR   test an existing layout (e.g. dist/) instead of building one
# The port: LATCHKEY_RELEASE_TEST_PORT, or a free one in 3400-3499.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
layout=""
if [ "${1:-}" = "--layout" ]; then layout="$(cd "$2" && pwd)"; shift 2; fi
started=$(date +%s)

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill -KILL "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

fail() {
  echo "test-release.sh: FAILED: $*" >&2
  if [ -s "$tmp/serve.log" ]; then
    echo "--- latchkey serve's log ---" >&2
    tail -n 40 "$tmp/serve.log" >&2
  fi
  exit 1
}
ok() { echo "  ok: $*"; }

if [ -z "$layout" ]; then
  echo "==> building the release layout (scripts/build-release.sh)"
  bash scripts/build-release.sh "$tmp/dist"
  layout="$tmp/dist"
fi
for f in latchkey site/pkg/latchkey.js site/pkg/latchkey.wasm site/pkg/latchkey.css; do
  [ -s "$layout/$f" ] || fail "the layout $layout has no $f"
done

# As README says: the layout copied to /opt/latchkey, the settings file,
# the state directory (here all under $tmp).
opt="$tmp/opt/latchkey"
state="$tmp/state"
mkdir -p "$opt" "$state"
chmod 700 "$state"
cp -R "$layout/." "$opt/"

port="${LATCHKEY_RELEASE_TEST_PORT:-$(python3 - <<'EOF'
import random, socket
for port in random.sample(range(3400, 3500), 100):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
EOF
)}"
[ -n "$port" ] || fail "no free port in 3400-3499"
issuer="http://127.0.0.1:$port"

# deploy/latchkey.env with this machine's paths: every documented setting
# must be there, and nothing else is set.
sed -e "s#^LATCHKEY_ISSUER=.*#LATCHKEY_ISSUER=$issuer#" \
    -e "s#^LATCHKEY_ADDR=.*#LATCHKEY_ADDR=127.0.0.1:$port#" \
    -e "s#/var/lib/latchkey#$state#g" \
    -e "s#/opt/latchkey#$opt#g" \
    -e "s#^LATCHKEY_LOG=.*#LATCHKEY_LOG=info#" \
    deploy/latchkey.env > "$tmp/latchkey.env"
for var in LATCHKEY_ISSUER LATCHKEY_ADDR LATCHKEY_DATABASE_URL LATCHKEY_MASTER_KEY_FILE LEPTOS_SITE_ROOT; do
  grep -q "^$var=" "$tmp/latchkey.env" || fail "deploy/latchkey.env does not set $var"
done
# Nothing from the calling environment: only the settings file (as systemd
# does), from the state directory (the unit's WorkingDirectory).
mapfile -t settings < <(grep -E '^[A-Z_]+=' "$tmp/latchkey.env")
run() {
  (cd "$state" && exec env -i PATH=/usr/bin:/bin HOME="$state" "${settings[@]}" "$opt/latchkey" "$@")
}

echo "==> the release binary from the layout: $opt (port $port)"
username="release-check"
password="release-check-password-$RANDOM$RANDOM"
printf '%s\n' "$password" | run user add --username "$username" --password-stdin >/dev/null \
  || fail "latchkey user add"
ok "user added with the CLI"

# Started as run does, without its extra subshell: $! is the server itself.
(cd "$state" && exec env -i PATH=/usr/bin:/bin HOME="$state" "${settings[@]}" "$opt/latchkey" serve) \
  >"$tmp/serve.log" 2>&1 &
server_pid=$!
up=0
for _ in $(seq 1 300); do
  if curl -fs -o /dev/null "$issuer/healthz"; then up=1; break; fi
  kill -0 "$server_pid" 2>/dev/null || fail "latchkey serve exited"
  sleep 0.1
done
[ "$up" = 1 ] || fail "$issuer/healthz did not answer within 30 s"
ok "serving at $issuer"

[ -f "$state/latchkey.key" ] || fail "no master key file in the state directory"
mode="$(stat -c %a "$state/latchkey.key")"
[ "$mode" = 600 ] || fail "the master key file has mode $mode, not 600"
[ -f "$state/latchkey.db" ] || fail "no database in the state directory"
ok "database and master key (mode 600) in the state directory"

# The sign-in page and the files it loads.
code="$(curl -s -o "$tmp/signin.html" -w '%{http_code}' "$issuer/signin")"
[ "$code" = 200 ] || fail "GET /signin answered $code"
mapfile -t pkg < <(grep -o '/pkg/[A-Za-z0-9._-]*' "$tmp/signin.html" | sort -u)
printf '%s\n' "${pkg[@]}" | grep -qx /pkg/latchkey.js || fail "/signin does not name /pkg/latchkey.js (it names: ${pkg[*]:-nothing})"
printf '%s\n' "${pkg[@]}" | grep -qx /pkg/latchkey.wasm || fail "/signin does not name /pkg/latchkey.wasm (it names: ${pkg[*]})"
printf '%s\n' "${pkg[@]}" | grep -qx /pkg/latchkey.css || fail "/signin does not name /pkg/latchkey.css (it names: ${pkg[*]})"
for path in "${pkg[@]}"; do
  got="$(curl -s -o "$tmp/got" -w '%{http_code} %{content_type}' "$issuer$path")"
  [ "${got%% *}" = 200 ] || fail "GET $path answered ${got%% *}"
  cmp -s "$tmp/got" "$opt/site$path" || fail "GET $path is not the layout's site$path"
  case "$path" in
    *.wasm) [ "${got#* }" = application/wasm ] || fail "GET $path has Content-Type ${got#* }, not application/wasm" ;;
  esac
done
ok "/signin loads ${pkg[*]}: 200, the layout's files"

# The sign-in form over HTTP, as a browser posts it.
post_signin() { # ORIGIN PASSWORD JAR -> "CODE LOCATION" (headers in $tmp/headers)
  curl -s -o /dev/null -D "$tmp/headers" -w '%{http_code} %{redirect_url}' \
    -c "$3" -b "$3" -H "Origin: $1" \
    --data-urlencode "username=$username" --data-urlencode "password=$2" \
    --data-urlencode "next=/" "$issuer/signin"
}
got="$(post_signin https://evil.example "$password" "$tmp/jar-evil")"
[ "${got%% *}" = 403 ] || fail "a sign-in posted from another origin answered ${got%% *}, not 403"
ok "a sign-in posted from another origin: 403"

got="$(post_signin "$issuer" "not-$password" "$tmp/jar-wrong")"
[ "${got%% *}" = 303 ] || fail "a wrong password answered ${got%% *}, not 303"
case "${got#* }" in
  "$issuer/signin?"*) ;;
  *) fail "a wrong password went to ${got#* }, not back to /signin" ;;
esac
code="$(curl -s -o "$tmp/home-wrong.html" -w '%{http_code}' -b "$tmp/jar-wrong" "$issuer/")"
if grep -q "data-testid=\"topbar-username\"" "$tmp/home-wrong.html"; then
  fail "after a wrong password the dashboard shows someone signed in"
fi
[ "$code" != 200 ] || grep -q 'action="/signin"' "$tmp/home-wrong.html" ||
  fail "after a wrong password GET / answered 200 without the sign-in form"
ok "a wrong password: back to /signin, not signed in (GET / answered $code)"

got="$(post_signin "$issuer" "$password" "$tmp/jar")"
[ "${got%% *}" = 303 ] || fail "the sign-in answered ${got%% *}, not 303"
[ "${got#* }" = "$issuer/" ] || fail "the sign-in went to ${got#* }, not $issuer/"
grep -qi '^set-cookie: latchkey_session=[^;]*;.*httponly' "$tmp/headers" ||
  fail "the sign-in set no HttpOnly latchkey_session cookie: $(grep -i '^set-cookie' "$tmp/headers" || echo none)"
code="$(curl -s -o "$tmp/home.html" -w '%{http_code}' -b "$tmp/jar" "$issuer/")"
[ "$code" = 200 ] || fail "GET / after signing in answered $code"
grep -q "data-testid=\"topbar-username\"[^>]*>$username<" "$tmp/home.html" ||
  fail "the dashboard after signing in does not show $username signed in"
ok "signed in: 303 to /, the dashboard shows $username"

# The release wasm running in a browser (a wrong wasm-opt breaks hydration).
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
playwright="$root/end2end/node_modules/@playwright/test"
if [ -x "$chromium" ] && [ -d "$playwright" ]; then
  ISSUER="$issuer" USERNAME="$username" PASSWORD="$password" CHROMIUM="$chromium" PLAYWRIGHT="$playwright" \
    node - <<'EOF' || fail "the browser check"
const { chromium } = require(process.env.PLAYWRIGHT);
(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const errors = [];
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
    const issuer = process.env.ISSUER;
    await page.goto(`${issuer}/signin`);
    await page.locator('body[data-hydrated]').waitFor({ timeout: 15000 });
    await page.getByLabel('Username').fill(process.env.USERNAME);
    await page.getByLabel('Password').fill(process.env.PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(`${issuer}/`, { timeout: 15000 });
    await page.locator('body[data-hydrated]').waitFor({ timeout: 15000 });
    const shown = await page.getByTestId('topbar-username').textContent({ timeout: 15000 });
    if (shown !== process.env.USERNAME) throw new Error(`the hydrated dashboard shows ${shown}`);
    // Let late errors (a failed hydration logs after the marker) arrive.
    await page.waitForTimeout(500);
  } finally {
    await browser.close();
  }
  if (errors.length) throw new Error(errors.join('\n'));
})().catch((e) => { console.error(e.message || e); process.exit(1); });
EOF
  ok "in Chromium: signed in through the form, both pages hydrated, no errors"
elif [ "${CI:-}" = "true" ]; then
  fail "the browser check needs $chromium and end2end/node_modules (bash scripts/setup.sh --e2e)"
else
  echo "  skipped: the browser check (no $chromium or end2end/node_modules; bash scripts/setup.sh --e2e)"
fi

echo "==> the release layout passed in $(( $(date +%s) - started ))s"
