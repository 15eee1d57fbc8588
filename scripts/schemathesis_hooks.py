"""Schemathesis hooks for scripts/schemathesis.sh: a fresh admin token for
every request.

The fuzzer reuses ids it saw in earlier answers, so it finds the admin
client's own id and, in time, revokes its tokens, rotates its secret, takes
its `latchkey:admin` scope away or deletes it: each is what the API must
allow. So each request gets a new client_credentials token, and when the
client can no longer have one, a new admin client is registered through the
CLI (the database is the server's SQLite file) and used from then on.
"""

import base64
import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import schemathesis

BASE = os.environ["LATCHKEY_BASE"]
_client = {"id": os.environ["LATCHKEY_ADMIN_CLIENT_ID"], "secret": os.environ["LATCHKEY_ADMIN_SECRET"]}
_made = [0]


def _cli(*args):
    return subprocess.run(
        [os.environ["LATCHKEY_BIN"], *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=os.environ["LATCHKEY_WORK"],
    ).stdout


def _new_client():
    _made[0] += 1
    created = json.loads(
        _cli("client", "add", "--json", "--name", f"Schemathesis {_made[0]}",
             "--grant-type", "client_credentials", "--scope", "latchkey:admin")
    )
    _client["id"] = created["client"]["client_id"]
    _client["secret"] = created["client_secret"]
    _cli("client", "set", "--access-ttl", "24h", "--", _client["id"])


def _token():
    basic = base64.b64encode(f"{_client['id']}:{_client['secret']}".encode()).decode()
    request = urllib.request.Request(
        f"{BASE}/oauth/token",
        data=urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "latchkey:admin"}).encode(),
        headers={"Authorization": f"Basic {basic}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["access_token"]


@schemathesis.auth(refresh_interval=None)
class LatchkeyAdmin:
    def get(self, case, context):
        try:
            return _token()
        except urllib.error.HTTPError:
            # Deleted, its secret rotated, or no longer allowed latchkey:admin.
            _new_client()
            return _token()

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
