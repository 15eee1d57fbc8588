#!/usr/bin/env python3
"""The driver of bench/crash-loop.sh (issue 13, item 4: crash safety).

Standard library only. bench/crash-loop.sh prepares Latchkey with bench/lib.sh
(database, users bench1..benchW, clients, `latchkey serve`), writes CONFIG (a
JSON file) and then calls, per run, on the same STATE file (JSON, kept):

  crash_loop.py drive CONFIG STATE --pid PID --run N
      W workers (one user and one browser each) issue, sign in, redeem codes,
      refresh with rotation, revoke (RFC 7009: refresh tokens, access tokens
      with and without a token family), sign out (RP-initiated logout) and
      probe what was revoked, at once; after a random delay the driver sends
      SIGKILL to PID. Every answer is recorded: a revocation answered 200
      is *confirmed*; one cut off by the kill is *uncertain*.
  crash_loop.py check-db CONFIG STATE [--label L]
      With the server down: SQL invariants (see check_db).
  crash_loop.py check-live CONFIG STATE [--all]
      After the restart, over HTTP (see check_live).
  crash_loop.py summary CONFIG STATE

Each command exits 1 when an invariant is violated (printed, and kept in
STATE under "violations"), 2 when the harness itself fails.
"""

import base64
import http.client
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse

# Per-operation weights of a worker's loop.
WEIGHTS = {
    "cc_issue": 14,
    "cc_revoke": 6,
    "code_flow": 12,
    "refresh": 40,
    "revoke_refresh": 6,
    "revoke_access": 4,
    "logout": 3,
    "probe": 5,
}

# How many confirmed revocations of earlier runs check-live samples (all of
# the last run's are checked; --all checks every one).
CHECK_SAMPLE = 150
# How many live families check-live turns into a reuse test per restart.
REUSE_PROBES = 2


def log(*parts):
    print("crash_loop:", *parts, file=sys.stderr, flush=True)


# --- state ------------------------------------------------------------------


def load_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        if default is None:
            raise
        return default


def save_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def new_state():
    return {
        "runs": 0,
        # family id -> {worker, sid, gen, token, prev, access, status, how, run,
        #               pending, checked}
        # status: live | revoked (confirmed by a 200, or seen revoked in the
        #         database) | uncertain (a revocation was cut off by the kill)
        "families": {},
        # confirmed access-token revocations by jti: {jti, token, exp, run, checked}
        "jtis": [],
        # sid -> {worker, status: live | ended | uncertain, run}
        "sessions": {},
        # worker index -> {cookie, sid, id_token}
        "workers": {},
        "counters": {},
        "violations": [],
        "anomalies": [],
    }


def bump(st, key, n=1):
    st["counters"][key] = st["counters"].get(key, 0) + n


def violation(st, what, **detail):
    entry = {"run": st["runs"], "what": what, **detail}
    st["violations"].append(entry)
    if st.get("proving"):
        log("caught, as it must be:", entry["what"])
    else:
        log("VIOLATION:", json.dumps(entry, sort_keys=True)[:2000])


def anomaly(st, what, **detail):
    entry = {"run": st["runs"], "what": what, **detail}
    st["anomalies"].append(entry)
    log("note:", json.dumps(entry, sort_keys=True)[:500])


# --- tokens -------------------------------------------------------------------


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def chain_token(token):
    """(family_id, generation) of a chain refresh token (app/src/domain/refresh.rs,
    `Presented`: base64url(0x01 ‖ len ‖ family_id ‖ u64 generation ‖ mac))."""
    raw = b64url_decode(token)
    if len(raw) < 2 or raw[0] != 1 or len(raw) != 2 + raw[1] + 8 + 32:
        raise ValueError("not a chain refresh token")
    n = raw[1]
    return raw[2 : 2 + n].decode(), int.from_bytes(raw[2 + n : 2 + n + 8], "big")


def jwt_claims(token):
    return json.loads(b64url_decode(token.split(".")[1]))


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# --- HTTP -----------------------------------------------------------------------


class Cut(Exception):
    """No answer: the connection failed (the server was killed, or is down)."""


class Http:
    """One keep-alive HTTP/1.1 connection, with a browser's cookies."""

    def __init__(self, base, counters, timeout=30):
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port or 80
        self.timeout = timeout
        self.conn = None
        self.cookies = {}
        self.counters = counters  # dict shared per thread; summed later

    def request(self, method, path, form=None, headers=None, retry=False):
        """(status, headers dict (lower-case names; set-cookie a list), body str).
        Raises Cut when no answer came. With retry, one more attempt on a new
        connection (only where repeating is harmless)."""
        body = urllib.parse.urlencode(form) if form is not None else None
        h = dict(headers or {})
        if body is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.conn.request(method, path, body, h)
                res = self.conn.getresponse()
                data = res.read().decode("utf-8", "replace")
                break
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if retry and attempt == 1:
                    continue
                raise Cut(f"{method} {path}: {type(e).__name__}: {e}") from None
        self.counters["answered"] = self.counters.get("answered", 0) + 1
        hdrs = {}
        for k, v in res.getheaders():
            k = k.lower()
            if k == "set-cookie":
                hdrs.setdefault(k, []).append(v)
                name, _, rest = v.partition("=")
                value = rest.split(";", 1)[0]
                if re.search(r"(?i)max-age=0\b", v) or value == "":
                    self.cookies.pop(name.strip(), None)
                else:
                    self.cookies[name.strip()] = value
            else:
                hdrs[k] = v
        if res.status == 429:
            self.counters["throttled_429"] = self.counters.get("throttled_429", 0) + 1
        return res.status, hdrs, data

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def form_json(body):
    try:
        return json.loads(body)
    except ValueError:
        return {}


# --- the client side of the flows -------------------------------------------------


class Client:
    """What one worker does over its connection; answers only, no bookkeeping."""

    def __init__(self, cfg, http_):
        self.cfg = cfg
        self.http = http_

    def token(self, who, form, retry=False):
        cid, secret = self.cfg[who + "_id"], self.cfg[who + "_secret"]
        return self.http.request("POST", "/oauth/token", form, {"Authorization": basic(cid, secret)}, retry)

    def revoke(self, who, token, retry=False):
        cid, secret = self.cfg[who + "_id"], self.cfg[who + "_secret"]
        return self.http.request("POST", "/oauth/revoke", {"token": token}, {"Authorization": basic(cid, secret)}, retry)

    def introspect(self, who, token, retry=False):
        cid, secret = self.cfg[who + "_id"], self.cfg[who + "_secret"]
        status, _, body = self.http.request(
            "POST", "/oauth/introspect", {"token": token}, {"Authorization": basic(cid, secret)}, retry
        )
        return status, form_json(body)

    def sign_in(self, username):
        self.http.cookies.clear()
        status, h, _ = self.http.request(
            "POST", "/signin", {"username": username, "password": self.cfg["password"], "next": "/"},
            {"Origin": self.cfg["issuer"]},
        )
        if status == 303 and "error=throttled" in h.get("location", ""):
            raise Throttled(h["location"])
        if status != 303 or h.get("location") != "/":
            raise Unexpected(f"sign-in: {status} {h.get('location')}")

    def authorize(self):
        """A code for the app, in this browser's sign-in. None: not signed in."""
        cfg = self.cfg
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": cfg["app_id"],
                "redirect_uri": cfg["redirect_uri"],
                "scope": "openid offline_access",
                "state": "x",
            }
        )
        status, h, body = self.http.request("GET", "/oauth/authorize?" + query)
        if status == 200:
            # The consent page (first time for this user and app): allow.
            m = re.search(r'name="request_id" value="([^"]*)"', body)
            if not m:
                if "signin" in body and 'name="password"' in body:
                    return None
                raise Unexpected("authorize: 200 without a consent form")
            status, h, body = self.http.request(
                "POST",
                "/oauth/authorize",
                {"request_id": m.group(1), "decision": "allow"},
                {"Origin": cfg["issuer"]},
            )
        loc = h.get("location", "")
        if status in (302, 303) and loc.startswith(cfg["redirect_uri"] + "?"):
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)
            return q["code"][0]
        if status in (302, 303) and "signin" in loc:
            return None
        raise Unexpected(f"authorize: {status} {loc}")


class Unexpected(Exception):
    """An answer the protocol does not allow here (not an invariant: reported)."""


class Throttled(Exception):
    """Sign-in throttling refused the sign-in (see crash-loop.sh)."""


# --- drive ----------------------------------------------------------------------


class Drive:
    def __init__(self, cfg, st, pid, run, seed):
        self.cfg, self.st, self.pid, self.run = cfg, st, pid, run
        self.lock = threading.Lock()
        self.killed = threading.Event()
        self.rng = random.Random(seed)
        self.thread_counters = []

    def worker(self, index):
        st, cfg = self.st, self.cfg
        rng = random.Random(self.rng.random())
        counters = {}
        self.thread_counters.append(counters)
        http_ = Http(cfg["base"], counters)
        me = st["workers"].setdefault(str(index), {"cookie": {}, "sid": None, "id_token": None})
        me["index"] = index
        http_.cookies = dict(me.get("cookie") or {})
        cl = Client(cfg, http_)
        username = cfg["users"][index]
        cc_tokens = []
        ops, weights = zip(*WEIGHTS.items())
        while not self.killed.is_set():
            op = rng.choices(ops, weights)[0]
            if op in ("code_flow", "logout") and me.get("throttled_until", 0) > time.time():
                op = "cc_issue"
            try:
                getattr(self, "op_" + op)(cl, me, username, rng, cc_tokens, counters)
                counters["op_" + op] = counters.get("op_" + op, 0) + 1
            except Cut as e:
                counters["cut"] = counters.get("cut", 0) + 1
                if not self.killed.is_set():
                    # An answer was lost while the server should be up.
                    with self.lock:
                        anomaly(st, "connection failed before the kill", error=str(e))
                    time.sleep(0.05)
            except Throttled:
                counters["sign_ins_throttled"] = counters.get("sign_ins_throttled", 0) + 1
                me["throttled_until"] = time.time() + 60
            except Unexpected as e:
                with self.lock:
                    anomaly(st, "unexpected answer", op=op, error=str(e))
                counters["unexpected"] = counters.get("unexpected", 0) + 1
                time.sleep(0.01)
        with self.lock:
            me["cookie"] = dict(http_.cookies)
        http_.close()

    # Families of this worker in a given state.
    def mine(self, worker, status="live", pending=False):
        with self.lock:
            return [
                (fid, f)
                for fid, f in self.st["families"].items()
                if f["worker"] == worker and f["status"] == status and f.get("pending", False) == pending
            ]

    def op_cc_issue(self, cl, me, username, rng, cc_tokens, c):
        status, _, body = cl.token("cc", {"grant_type": "client_credentials"})
        if status == 200:
            cc_tokens.append(form_json(body)["access_token"])
            del cc_tokens[:-10]
            c["cc_issued"] = c.get("cc_issued", 0) + 1
        elif status != 429:
            raise Unexpected(f"client_credentials: {status} {body[:200]}")

    def op_cc_revoke(self, cl, me, username, rng, cc_tokens, c):
        if not cc_tokens:
            return self.op_cc_issue(cl, me, username, rng, cc_tokens, c)
        token = cc_tokens.pop(rng.randrange(len(cc_tokens)))
        claims = jwt_claims(token)
        status, _, body = cl.revoke("cc", token)
        if status == 200:
            with self.lock:
                self.st["jtis"].append(
                    {"jti": claims["jti"], "token": token, "exp": claims["exp"], "run": self.run, "checked": False}
                )
                bump(self.st, "confirmed_jti_revocations")
        elif status != 429:
            raise Unexpected(f"revoke (access token, no family): {status} {body[:200]}")

    def ensure_signed_in(self, cl, me, username):
        if me.get("sid") and cl.http.cookies:
            return
        # Cleared before the request: a sign-in cut off by the kill leaves
        # nothing behind to end.
        me["sid"], me["id_token"] = None, None
        cl.sign_in(username)
        me["cookie"] = dict(cl.http.cookies)
        me["sid"] = "?"  # known once a code flow's ID token names it

    def op_code_flow(self, cl, me, username, rng, cc_tokens, c):
        self.ensure_signed_in(cl, me, username)
        code = cl.authorize()
        if code is None:
            # The browser session is gone (not a crash matter: the sign-in
            # row and the session record are separate writes).
            with self.lock:
                anomaly(self.st, "authorize sent a signed-in browser to the sign-in page", worker=me["index"])
            me["sid"] = None
            cl.http.cookies.clear()
            return
        status, _, body = cl.token(
            "app", {"grant_type": "authorization_code", "code": code, "redirect_uri": self.cfg["redirect_uri"]}
        )
        if status != 200:
            if status == 429:
                return
            raise Unexpected(f"code redemption: {status} {body[:200]}")
        j = form_json(body)
        fid, gen = chain_token(j["refresh_token"])
        idt = jwt_claims(j["id_token"])
        at = jwt_claims(j["access_token"])
        if at.get("fid") != fid or gen != 0:
            raise Unexpected(f"code redemption: refresh token of family {fid} gen {gen}, access token fid {at.get('fid')}")
        with self.lock:
            me["sid"], me["id_token"] = idt["sid"], j["id_token"]
            self.st["sessions"].setdefault(idt["sid"], {"worker": me["index"], "status": "live", "run": self.run})
            self.st["families"][fid] = {
                "worker": me["index"],
                "sid": idt["sid"],
                "gen": 0,
                "token": j["refresh_token"],
                "prev": None,
                "access": j["access_token"],
                "status": "live",
                "run": self.run,
                "pending": False,
            }
            bump(self.st, "families_started")

    def op_refresh(self, cl, me, username, rng, cc_tokens, c):
        live = self.mine(me["index"])
        if not live:
            if me.get("throttled_until", 0) > time.time():
                return self.op_cc_issue(cl, me, username, rng, cc_tokens, c)
            return self.op_code_flow(cl, me, username, rng, cc_tokens, c)
        fid, f = rng.choice(live)
        f["pending"] = True  # until the answer comes
        try:
            status, _, body = cl.token("app", {"grant_type": "refresh_token", "refresh_token": f["token"]})
        except Cut:
            raise  # stays pending: the rotation may or may not have committed
        f["pending"] = False
        j = form_json(body)
        if status == 200:
            nfid, gen = chain_token(j["refresh_token"])
            with self.lock:
                if nfid != fid or gen != f["gen"] + 1:
                    violation(
                        self.st,
                        "a rotation handed out another generation than the next",
                        family=fid,
                        held=f["gen"],
                        got=[nfid, gen],
                    )
                f["prev"], f["token"], f["gen"] = f["token"], j["refresh_token"], gen
                f["access"] = j["access_token"]
                bump(self.st, "refreshes")
        elif status == 400 and j.get("error") == "invalid_grant":
            with self.lock:
                violation(
                    self.st,
                    "the current refresh token of a live family was refused (a rotation or a family lost?)",
                    family=fid,
                    gen=f["gen"],
                    answer=j,
                )
                f["status"] = "broken"
        elif status != 429:
            raise Unexpected(f"refresh: {status} {body[:200]}")

    def revoke_family(self, cl, me, rng, what):
        live = self.mine(me["index"])
        if not live:
            return
        fid, f = rng.choice(live)
        f["status"] = "uncertain"  # until the answer comes
        try:
            status, _, body = cl.revoke("app", f["token"] if what == "refresh" else f["access"])
        except Cut:
            raise
        if status == 200:
            with self.lock:
                f.update(status="revoked", how="revoke_" + what, run=self.run, checked=False)
                bump(self.st, "confirmed_family_revocations")
        else:
            f["status"] = "live"
            if status != 429:
                raise Unexpected(f"revoke ({what} token): {status} {body[:200]}")

    def op_revoke_refresh(self, cl, me, username, rng, cc_tokens, c):
        self.revoke_family(cl, me, rng, "refresh")

    def op_revoke_access(self, cl, me, username, rng, cc_tokens, c):
        self.revoke_family(cl, me, rng, "access")

    def op_logout(self, cl, me, username, rng, cc_tokens, c):
        sid, hint = me.get("sid"), me.get("id_token")
        if not sid or sid == "?" or not hint:
            return self.op_code_flow(cl, me, username, rng, cc_tokens, c)
        with self.lock:
            mine = [f for f in self.st["families"].values() if f["sid"] == sid and f["status"] in ("live", "uncertain")]
        session = self.st["sessions"][sid]
        session["status"] = "uncertain"
        for f in mine:
            f["status"] = "uncertain"
        me["sid"], me["id_token"] = None, None
        try:
            status, _, body = cl.http.request("GET", "/oauth/logout?" + urllib.parse.urlencode({"id_token_hint": hint}))
        finally:
            cl.http.cookies.clear()
            me["cookie"] = {}
        if status == 200 and 'data-testid="signed-out"' in body:
            with self.lock:
                session.update(status="ended", run=self.run)
                for f in mine:
                    f.update(status="revoked", how="logout", run=self.run, checked=False, pending=False)
                bump(self.st, "confirmed_logouts")
                bump(self.st, "confirmed_family_revocations", len(mine))
        else:
            raise Unexpected(f"logout: {status} {body[:200]}")

    def op_probe(self, cl, me, username, rng, cc_tokens, c):
        """Presents what a confirmed revocation killed, while the load runs."""
        with self.lock:
            dead = [(fid, f) for fid, f in self.st["families"].items() if f["status"] == "revoked"]
            jtis = list(self.st["jtis"])
        if dead and (not jtis or rng.random() < 0.7):
            probe_family(cl, self.st, self.lock, *rng.choice(dead))
        elif jtis:
            probe_jti(cl, self.st, self.lock, rng.choice(jtis))
        c["probes"] = c.get("probes", 0) + 1

    def go(self, workers, kill_after):
        threads = [threading.Thread(target=self.worker, args=(i,), daemon=True) for i in range(workers)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + kill_after
        while time.monotonic() < deadline:
            if not alive(self.pid):
                with self.lock:
                    violation(self.st, "the server died on its own before the kill", pid=self.pid)
                break
            time.sleep(0.01)
        os.kill(self.pid, signal.SIGKILL)
        self.killed.set()
        for t in threads:
            t.join(60)
            if t.is_alive():
                raise SystemExit("crash_loop: a worker did not stop within 60 s of the kill")
        for c in self.thread_counters:
            for k, v in c.items():
                bump(self.st, k, v)


def probe_family(cl, st, lock, fid, f):
    """A revoked family's refresh token must be refused, its access token inactive."""
    status, _, body = cl.token("app", {"grant_type": "refresh_token", "refresh_token": f["token"]})
    if status == 200:
        with lock:
            violation(st, "a refresh token worked after its family was revoked", family=fid, how=f.get("how"))
    elif status == 400 and form_json(body).get("error") != "invalid_grant":
        raise Unexpected(f"probe refresh: {status} {body[:200]}")
    status, j = cl.introspect("app", f["access"])
    if status == 200 and j.get("active") is not False:
        with lock:
            violation(st, "a revoked family's access token introspected active", family=fid, answer=j)


def probe_jti(cl, st, lock, t):
    status, j = cl.introspect("cc", t["token"])
    if status == 200 and j.get("active") is not False:
        with lock:
            violation(st, "a revoked access token introspected active", jti=t["jti"], answer=j)


def alive(pid):
    """Whether pid runs (a zombie — killed, not yet reaped by the shell — does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


def cmd_drive(cfg, st, args):
    st["runs"] = args.run
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    kill_after = rng.uniform(cfg["kill_min"], cfg["kill_max"])
    before = dict(st["counters"])
    d = Drive(cfg, st, args.pid, args.run, rng.random())
    d.go(cfg["workers"], kill_after)
    # The kill was sent; wait until the process is gone (it holds the SQLite file).
    for _ in range(500):
        if not alive(args.pid):
            break
        time.sleep(0.01)
    new = {k: v - before.get(k, 0) for k, v in st["counters"].items() if v != before.get(k, 0)}
    log(
        f"run {args.run}: killed after {kill_after:.2f}s (seed {seed}); "
        + ", ".join(f"{k} {v}" for k, v in sorted(new.items()))
    )


# --- the database -------------------------------------------------------------------


class Database:
    """Read-only SQL on either backend: sqlite3, or psql for PostgreSQL."""

    def __init__(self, cfg, copy=False):
        self.cfg = cfg
        self.sqlite = cfg["backend"] == "sqlite"
        if self.sqlite:
            path = cfg["db_url"].split("://", 1)[1].split("?", 1)[0]
            if copy:
                # Checked on a copy of the file and its WAL, as the kill left
                # them: closing a connection checkpoints the WAL, and the
                # server's own recovery at the next start is what counts.
                scratch = os.path.join(os.path.dirname(path), "check-copy")
                os.makedirs(scratch, exist_ok=True)
                for suffix in ("", "-wal", "-shm"):
                    dst = os.path.join(scratch, "latchkey.db" + suffix)
                    if os.path.exists(dst):
                        os.remove(dst)
                for suffix in ("", "-wal"):
                    if os.path.exists(path + suffix):
                        shutil.copyfile(path + suffix, os.path.join(scratch, "latchkey.db" + suffix))
                path = os.path.join(scratch, "latchkey.db")
            self.conn = sqlite3.connect(path, timeout=30)

    def rows(self, sql):
        if self.sqlite:
            return [tuple(r) for r in self.conn.execute(sql).fetchall()]
        out = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-F", "\x1f", "-R", "\x1e", "-P", "null=\\N",
             "-v", "ON_ERROR_STOP=1", "-d", self.cfg["db_url"], "-c", sql],
            capture_output=True, text=True, check=False,
        )
        if out.returncode != 0:
            raise SystemExit(f"crash_loop: psql failed: {out.stderr.strip()}\n{sql}")
        text = out.stdout.rstrip("\n")
        if not text:
            return []
        rows = []
        for rec in text.split("\x1e"):
            rec = rec.lstrip("\n")
            if rec == "":
                continue
            rows.append(tuple(None if v == "\\N" else v for v in rec.split("\x1f")))
        return rows

    def close(self):
        if self.sqlite:
            self.conn.close()


def as_int(v):
    return None if v is None else int(v)


class Checks:
    """Counts checks passed; records violations."""

    def __init__(self, st, label):
        self.st, self.label = st, label
        self.passed = 0
        self.items = 0
        self.failed = 0

    def check(self, name, ok, items=1, **detail):
        self.items += items
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            violation(self.st, f"[{self.label}] {name}", **detail)

    def done(self, kind):
        bump(self.st, f"{kind}_checks_passed", self.passed)
        bump(self.st, f"{kind}_checks_failed", self.failed)
        bump(self.st, f"{kind}_items_checked", self.items)
        bump(self.st, f"{kind}_rounds")


def check_db(cfg, st, label):
    """The invariants on the tables, with the server down (nothing moves).

    1. SQLite: PRAGMA integrity_check is ok, PRAGMA foreign_key_check empty.
    2. No token family has two unused refresh tokens: at most one stored
       (`refresh_tokens`) token unused and unrevoked per family, none beside
       a chain; and the chain's generation is the last one handed out (one
       more when a refresh was cut off by the kill) — a rotation answered
       200 was durable, so the token it replaced is not current again.
       Every family whose code redemption was answered 200 exists.
    3. Every revocation answered 200 is in the tables: the family revoked
       (for a logout: the sign-in ended and every family under it revoked),
       the jti in revoked_access_tokens.
    4. The audit log agrees with the tables, pair by pair as they are written
       in one transaction (app/src/domain):
       a. codes.rs redeem_code: a token_families row <-> one code_redeemed
          event naming it <-> the auth code consumed, pointing at it;
       b. revocation.rs revoke: a family's revoked_at <-> one `revoked`
          event listing it in `families` <-> a revocation_log entry (kind
          family, or kind grant for its grant); auth codes revoked <-> the
          events' `codes` counts;
       c. revocation.rs revoke_access_token: a revoked_access_tokens row <->
          one `revoked` event (what access_token, its jti) <-> a log entry
          (kind jti);
       d. login_sessions.rs start / revocation.rs revoke (sign_in): a
          login_sessions row <-> one `login` event (its sid); ended_at <->
          one `logout` event (its sid);
       e. revocation_log_head.position is the log's highest position.
       (Entries retention may have pruned by now are not required.)
    """
    db = Database(cfg, copy=True)
    ck = Checks(st, label)
    now = time.time()
    try:
        if db.sqlite:
            integrity = db.rows("PRAGMA integrity_check")
            ck.check("PRAGMA integrity_check is ok", integrity == [("ok",)], got=integrity[:20])
            fk = db.rows("PRAGMA foreign_key_check")
            ck.check("PRAGMA foreign_key_check finds nothing", fk == [], got=fk[:20])

        fams = {
            r[0]: {
                "grant": r[1], "sid": r[2], "created": as_int(r[3]), "revoked_at": as_int(r[4]),
                "reason": r[5], "gen": as_int(r[6]),
            }
            for r in db.rows(
                "SELECT id, grant_id, login_session_id, created_at, revoked_at, revoke_reason, chain_generation "
                "FROM token_families"
            )
        }
        stored_unused = {
            r[0]: int(r[1])
            for r in db.rows(
                "SELECT family_id, COUNT(*) FROM refresh_tokens WHERE used_at IS NULL AND revoked_at IS NULL "
                "GROUP BY family_id"
            )
        }
        events = [
            (r[0], int(r[1]), r[2], json.loads(r[3]))
            for r in db.rows(
                "SELECT id, at, kind, detail FROM audit_events "
                "WHERE kind IN ('code_redeemed', 'revoked', 'login', 'logout')"
            )
        ]
        log_rows = [(int(r[0]), r[1], r[2], int(r[3])) for r in db.rows("SELECT position, kind, id, until_at FROM revocation_log")]
        head = db.rows("SELECT position FROM revocation_log_head WHERE id = 1")
        rats = {r[0]: (int(r[1]), int(r[2])) for r in db.rows("SELECT jti, expires_at, revoked_at FROM revoked_access_tokens")}
        sessions = {r[0]: as_int(r[1]) for r in db.rows("SELECT id, ended_at FROM login_sessions")}
        codes = db.rows("SELECT family_id, consumed_at, created_at FROM auth_codes WHERE family_id IS NOT NULL")
        codes_revoked = db.rows("SELECT COUNT(*), MIN(created_at) FROM auth_codes WHERE revoked_at IS NOT NULL")
        oldest_code = db.rows("SELECT MIN(created_at) FROM auth_codes")
        revoked_grants = {r[0] for r in db.rows("SELECT id FROM grants WHERE revoked_at IS NOT NULL")}
    finally:
        db.close()

    # 2. Two unused refresh tokens.
    bad = [f for f, n in stored_unused.items() if n > 1 or (n == 1 and fams.get(f, {}).get("gen") is not None)]
    ck.check("no family has two unused stored refresh tokens, or one beside its chain", not bad,
             items=len(fams), families=bad[:20])
    missing, behind, ahead = [], [], []
    for fid, f in st["families"].items():
        row = fams.get(fid)
        if row is None:
            missing.append(fid)
            continue
        top = f["gen"] + (1 if f.get("pending") else 0)
        if row["gen"] is None or row["gen"] < f["gen"]:
            behind.append((fid, f["gen"], row["gen"]))
        elif row["gen"] > top:
            ahead.append((fid, f["gen"], row["gen"]))
    ck.check("every family whose code redemption was answered 200 exists", not missing,
             items=len(st["families"]), families=missing[:20])
    ck.check("no rotation answered 200 was lost (the chain is at the generation last handed out)", not behind,
             items=len(st["families"]), families=behind[:20])
    ck.check("no chain moved further than the refreshes answered (plus one cut off)", not ahead,
             items=len(st["families"]), families=ahead[:20])

    # 3. Confirmed revocations.
    lost = [fid for fid, f in st["families"].items()
            if f["status"] == "revoked" and fams.get(fid, {}).get("revoked_at") is None]
    ck.check("every family revocation answered 200 is in the table", not lost,
             items=sum(f["status"] == "revoked" for f in st["families"].values()), families=lost[:20])
    lost = [t["jti"] for t in st["jtis"] if t["jti"] not in rats and t["exp"] + 3000 > now]
    ck.check("every access-token revocation answered 200 is in revoked_access_tokens", not lost,
             items=len(st["jtis"]), jtis=lost[:20])
    ended = [sid for sid, s in st["sessions"].items() if s["status"] == "ended"]
    lost = [sid for sid in ended if sessions.get(sid) is None]
    ck.check("every logout answered 200 ended its sign-in", not lost, items=len(ended), sids=lost[:20])
    ended_set = set(ended)
    lost = [fid for fid, f in fams.items() if f["sid"] in ended_set and f["revoked_at"] is None]
    ck.check("every family of a sign-in ended by a logout answered 200 is revoked", not lost,
             items=len(ended), families=lost[:20])

    # 4a. Families <-> code_redeemed <-> auth codes.
    redeemed = {}
    for _, _, kind, d in events:
        if kind == "code_redeemed":
            redeemed[d.get("family_id")] = redeemed.get(d.get("family_id"), 0) + 1
    bad = [f for f in fams if redeemed.get(f, 0) != 1] + [f for f in redeemed if f not in fams]
    ck.check("every token family has one code_redeemed event, and every code_redeemed event its family",
             not bad, items=len(fams) + len(redeemed), families=bad[:20])
    by_code = {}
    for fid, consumed, _ in codes:
        by_code.setdefault(fid, []).append(consumed)
    bad = [f for f, row in fams.items()
           if row["created"] > now - 3000 and (len(by_code.get(f, [])) != 1 or by_code[f][0] is None)]
    bad += [f for f in by_code if f not in fams]
    ck.check("every token family has the one consumed auth code that started it", not bad,
             items=len(fams), families=bad[:20])

    # 4b. Revoked families <-> `revoked` events <-> the revocation log.
    listed = {}
    codes_sum = 0
    for _, _, kind, d in events:
        if kind == "revoked" and d.get("what") != "access_token":
            for f in d.get("families") or []:
                listed[f] = listed.get(f, 0) + 1
            codes_sum += int(d.get("codes") or 0)
    revoked = {f for f, row in fams.items() if row["revoked_at"] is not None}
    bad = [f for f in revoked if listed.get(f, 0) != 1] + [f for f in listed if f not in revoked]
    ck.check("every revoked family is listed by one `revoked` event, and every listed family is revoked",
             not bad, items=len(revoked) + len(listed), families=bad[:20])
    fam_entries = {i for _, k, i, _ in log_rows if k == "family"}
    grant_entries = {i for _, k, i, _ in log_rows if k == "grant"}
    jti_entries = {i for _, k, i, _ in log_rows if k == "jti"}
    bad = [f for f in revoked
           if f not in fam_entries and fams[f]["grant"] not in grant_entries and fams[f]["revoked_at"] + 600 > now]
    bad += [f for f in fam_entries if f not in revoked]
    bad += [g for g in grant_entries if g not in revoked_grants]
    ck.check("every revoked family has its revocation_log entry, and every entry its revocation", not bad,
             items=len(revoked) + len(fam_entries) + len(grant_entries), ids=bad[:20])
    n_codes, min_code = int(codes_revoked[0][0]), as_int(oldest_code[0][0]) if oldest_code else None
    if min_code is None or min_code > now - 3000:
        ck.check("auth codes revoked = the codes the `revoked` events count", n_codes == codes_sum,
                 revoked_codes=n_codes, events_say=codes_sum)

    # 4c. Access tokens revoked by jti <-> `revoked` events <-> the log.
    jti_events = {}
    for _, at, kind, d in events:
        if kind == "revoked" and d.get("what") == "access_token":
            jti_events[d.get("jti")] = jti_events.get(d.get("jti"), []) + [at]
    bad = [j for j in rats if len(jti_events.get(j, [])) != 1]
    bad += [j for j, ats in jti_events.items() if j not in rats and max(ats) + 3000 > now]
    ck.check("every revoked_access_tokens row has one `revoked` event, and every such event its row", not bad,
             items=len(rats) + len(jti_events), jtis=bad[:20])
    bad = [j for j, (exp, _) in rats.items() if j not in jti_entries and exp + 50 > now]
    bad += [j for j in jti_entries if j not in rats]
    ck.check("every revoked_access_tokens row has its revocation_log entry, and every jti entry its row", not bad,
             items=len(rats) + len(jti_entries), jtis=bad[:20])

    # 4d. Sign-ins <-> login / logout events.
    logins, logouts = {}, {}
    for _, _, kind, d in events:
        if kind == "login":
            logins[d.get("sid")] = logins.get(d.get("sid"), 0) + 1
        elif kind == "logout":
            logouts[d.get("sid")] = logouts.get(d.get("sid"), 0) + 1
    bad = [s for s in sessions if logins.get(s, 0) != 1] + [s for s in logins if s not in sessions]
    ck.check("every sign-in has one `login` event, and every `login` event its sign-in", not bad,
             items=len(sessions) + len(logins), sids=bad[:20])
    ended_rows = {s for s, e in sessions.items() if e is not None}
    bad = [s for s in ended_rows if logouts.get(s, 0) != 1] + [s for s in logouts if s not in ended_rows]
    ck.check("every ended sign-in has one `logout` event, and every `logout` event names an ended sign-in", not bad,
             items=len(ended_rows) + len(logouts), sids=bad[:20])

    # 4e. The log's head.
    top = max((p for p, _, _, _ in log_rows), default=None)
    h = int(head[0][0]) if head else None
    ck.check("revocation_log_head is the log's highest position",
             h is not None and (h == top if top is not None else h >= 0), head=h, highest=top)

    ck.done("db")
    log(f"check-db ({label}): {ck.passed} checks passed over {ck.items} items, {ck.failed} failed; "
        f"{len(fams)} families ({len(revoked)} revoked), {len(rats)} jtis revoked, {len(sessions)} sign-ins, "
        f"{len(log_rows)} log entries")
    return ck.failed == 0


def cmd_check_db(cfg, st, args):
    return check_db(cfg, st, args.label or f"after kill {st['runs']}")


# --- check-live -------------------------------------------------------------------------


def check_live(cfg, st, everything):
    """After a restart, over HTTP:

    1. every revocation answered 200 is still effective: the family's last
       access token introspects `active: false` and its last refresh token
       is refused with invalid_grant; a jti's token introspects inactive
       (those of the last run all, earlier ones a sample; --all: every one);
    2. no refresh token works after its family was revoked: the same for
       every family the database says is revoked (for any reason);
    3. a refresh cut off by the kill is settled: its token either refreshes
       (the rotation had not committed) or is refused as reused (it had),
       and then the family is revoked;
    4. no family has two working refresh tokens: for a few live families,
       the previous generation is refused (reuse), and then the current one
       too (the family is revoked by it).
    """
    ck = Checks(st, f"restart after kill {st['runs']}")
    counters = {}
    http_ = Http(cfg["base"], counters)
    cl = Client(cfg, http_)
    rng = random.Random()
    db = Database(cfg)
    try:
        db_revoked = {r[0] for r in db.rows("SELECT id FROM token_families WHERE revoked_at IS NOT NULL")}
    finally:
        db.close()
    fams = st["families"]

    def refused(token):
        status, _, body = cl.token("app", {"grant_type": "refresh_token", "refresh_token": token}, retry=True)
        return status == 400 and form_json(body).get("error") == "invalid_grant", status, body[:300]

    def inactive(who, token):
        status, j = cl.introspect(who, token, retry=True)
        return status == 200 and j.get("active") is False, status, j

    # 1 and 2.
    confirmed = [fid for fid, f in fams.items() if f["status"] == "revoked"]
    new = [fid for fid in confirmed if not fams[fid].get("checked")]
    old = [fid for fid in confirmed if fams[fid].get("checked")]
    chosen = new + (old if everything else rng.sample(old, min(CHECK_SAMPLE, len(old))))
    for fid in chosen:
        f = fams[fid]
        ok, status, body = refused(f["token"])
        ck.check("a revoked family's refresh token is refused with invalid_grant", ok,
                 family=fid, how=f.get("how"), status=status, answer=body)
        ok, status, j = inactive("app", f["access"])
        ck.check("a revoked family's access token introspects inactive", ok,
                 family=fid, how=f.get("how"), status=status, answer=j)
        f["checked"] = True
    bump(st, "confirmed_family_revocations_rechecked", len(chosen))
    jt_new = [t for t in st["jtis"] if not t.get("checked")]
    jt_old = [t for t in st["jtis"] if t.get("checked")]
    for t in jt_new + (jt_old if everything else rng.sample(jt_old, min(CHECK_SAMPLE, len(jt_old)))):
        ok, status, j = inactive("cc", t["token"])
        ck.check("a revoked access token introspects inactive", ok, jti=t["jti"], status=status, answer=j)
        t["checked"] = True
        bump(st, "confirmed_jti_revocations_rechecked")
    # Families revoked in the database that the driver did not see confirmed
    # (a revocation cut off by the kill that had committed; reuse).
    for fid, f in fams.items():
        if fid in db_revoked and f["status"] != "revoked":
            ok, status, body = refused(f["token"])
            ck.check("a refresh token is refused once its family is revoked", ok,
                     family=fid, status=status, answer=body)
            f.update(status="revoked", how=f.get("how") or "found revoked", checked=True, pending=False)
        elif f["status"] == "uncertain":
            # The revocation cut off by the kill had not committed.
            f["status"] = "live"
    # 3. Refreshes cut off by the kill.
    for fid, f in fams.items():
        if f["status"] != "live" or not f.get("pending"):
            continue
        status, _, body = cl.token("app", {"grant_type": "refresh_token", "refresh_token": f["token"]}, retry=True)
        j = form_json(body)
        f["pending"] = False
        if status == 200:
            _, gen = chain_token(j["refresh_token"])
            ck.check("a refresh cut off by the kill had not committed: the next generation follows", gen == f["gen"] + 1,
                     family=fid, held=f["gen"], got=gen)
            f["prev"], f["token"], f["gen"], f["access"] = f["token"], j["refresh_token"], gen, j["access_token"]
            bump(st, "cut_refreshes_not_committed")
        else:
            ok = status == 400 and j.get("error") == "invalid_grant"
            ck.check("a refresh cut off by the kill had committed: its token is refused as reused", ok,
                     family=fid, status=status, answer=j)
            f.update(status="revoked", how="reuse after a cut refresh", checked=True, gen=f["gen"] + 1)
            # Its access token is the one before: its family is revoked now.
            ok, status, ij = inactive("app", f["access"])
            ck.check("... and its family's access token introspects inactive", ok, family=fid, answer=ij)
            bump(st, "cut_refreshes_committed")
    # 4. Two working refresh tokens.
    live = [fid for fid, f in fams.items() if f["status"] == "live" and f.get("prev")]
    for fid in rng.sample(live, min(REUSE_PROBES, len(live))):
        f = fams[fid]
        ok, status, body = refused(f["prev"])
        ck.check("the previous generation of a live family is refused (reuse)", ok, family=fid, status=status, answer=body)
        ok, status, body = refused(f["token"])
        ck.check("after reuse, the family's current refresh token is refused too", ok, family=fid, status=status, answer=body)
        f.update(status="revoked", how="reuse test", checked=True)
        bump(st, "reuse_tests")
    http_.close()
    bump(st, "answered", counters.get("answered", 0))
    ck.done("live")
    log(f"check-live (after kill {st['runs']}): {ck.passed} checks passed over {ck.items} items, {ck.failed} failed")
    return ck.failed == 0


def cmd_check_live(cfg, st, args):
    return check_live(cfg, st, args.all)


# --- proving that each check can fail ---------------------------------------------------


def pick(st, cond):
    """The most recently touched family that cond accepts and whose access
    token is still unexpired (some checks rightly skip what retention may
    already have pruned)."""
    now = time.time()
    best = None
    for fid, f in sorted(st["families"].items()):
        if cond(f) and jwt_claims(f["access"])["exp"] > now + 60:
            if best is None or f["run"] >= st["families"][best]["run"]:
                best = fid
    return best


def corruptions(st, sqlite):
    """(name, SQL statements, the check that must catch it) for check_db: each
    breaks one invariant on a scratch copy of the database."""
    revoked = pick(st, lambda f: f["status"] == "revoked" and f.get("how", "").startswith("revoke_"))
    by_logout = pick(st, lambda f: f["status"] == "revoked" and f.get("how") == "logout")
    live = pick(st, lambda f: f["status"] == "live" and f["gen"] >= 1)
    jti = st["jtis"][-1]["jti"] if st["jtis"] else None
    ended = next((sid for sid, x in sorted(st["sessions"].items()) if x["status"] == "ended"), None)
    q = lambda v: "'" + str(v).replace("'", "''") + "'"  # noqa: E731
    out = [
        ("a second unused stored refresh token beside a chain",
         [f"INSERT INTO refresh_tokens (hash, family_id, scopes, issued_at, expires_at) "
          f"VALUES ('x1', {q(live)}, 'openid', 0, 9999999999)"],
         "no family has two unused"),
        ("a rotation answered 200 lost (the chain one generation back)",
         [f"UPDATE token_families SET chain_generation = chain_generation - 1 WHERE id = {q(live)}"],
         "no rotation answered 200 was lost"),
        ("a chain two generations ahead",
         [f"UPDATE token_families SET chain_generation = chain_generation + 2 WHERE id = {q(live)}"],
         "no chain moved further"),
        ("a redeemed family gone (with its audit event)",
         [f"DELETE FROM token_families WHERE id = {q(live)}",
          f"DELETE FROM audit_events WHERE kind = 'code_redeemed' AND detail LIKE {q('%' + str(live) + '%')}",
          f"UPDATE auth_codes SET family_id = NULL WHERE family_id = {q(live)}"],
         "every family whose code redemption was answered 200 exists"),
        ("a family revoked by RFC 7009 un-revoked",
         [f"UPDATE token_families SET revoked_at = NULL WHERE id = {q(revoked)}"],
         "every family revocation answered 200 is in the table"),
        ("a revoked jti gone",
         [f"DELETE FROM revoked_access_tokens WHERE jti = {q(jti)}"],
         "every access-token revocation answered 200 is in revoked_access_tokens"),
        ("a sign-in ended by logout live again",
         [f"UPDATE login_sessions SET ended_at = NULL WHERE id = {q(ended)}"],
         "every logout answered 200 ended its sign-in"),
        ("a family of a logged-out sign-in un-revoked",
         [f"UPDATE token_families SET revoked_at = NULL WHERE id = {q(by_logout)}"],
         "every family of a sign-in ended by a logout answered 200 is revoked"),
        ("a family's code_redeemed event gone",
         [f"DELETE FROM audit_events WHERE kind = 'code_redeemed' AND detail LIKE {q('%' + str(live) + '%')}"],
         "every token family has one code_redeemed event"),
        ("a family's auth code not consumed",
         [f"UPDATE auth_codes SET consumed_at = NULL WHERE family_id = {q(live)}"],
         "every token family has the one consumed auth code"),
        ("a family's `revoked` event gone",
         [f"DELETE FROM audit_events WHERE kind = 'revoked' AND detail LIKE {q('%' + str(revoked) + '%')}"],
         "every revoked family is listed by one `revoked` event"),
        ("a family revoked without its event and log entry",
         [f"UPDATE token_families SET revoked_at = 1, revoke_reason = 'x' WHERE id = {q(live)}"],
         "every revoked family is listed by one `revoked` event"),
        ("a family's revocation_log entry gone",
         [f"DELETE FROM revocation_log WHERE kind = 'family' AND id = {q(revoked)}"],
         "every revoked family has its revocation_log entry"),
        ("an auth code revoked without its event",
         ["UPDATE auth_codes SET revoked_at = 1 WHERE hash = (SELECT MIN(hash) FROM auth_codes WHERE revoked_at IS NULL)"],
         "auth codes revoked = the codes the `revoked` events count"),
        ("a jti's `revoked` event gone",
         [f"DELETE FROM audit_events WHERE kind = 'revoked' AND detail LIKE {q('%' + str(jti) + '%')}"],
         "every revoked_access_tokens row has one `revoked` event"),
        ("a jti's revocation_log entry gone",
         [f"DELETE FROM revocation_log WHERE kind = 'jti' AND id = {q(jti)}"],
         "every revoked_access_tokens row has its revocation_log entry"),
        ("a sign-in's `login` event gone",
         [f"DELETE FROM audit_events WHERE kind = 'login' AND detail LIKE {q('%' + str(ended) + '%')}"],
         "every sign-in has one `login` event"),
        ("a sign-in's `logout` event gone",
         [f"DELETE FROM audit_events WHERE kind = 'logout' AND detail LIKE {q('%' + str(ended) + '%')}"],
         "every ended sign-in has one `logout` event"),
        ("the log's head behind its highest position",
         ["UPDATE revocation_log_head SET position = position - 1"],
         "revocation_log_head is the log's highest position"),
    ]
    if sqlite:
        out.append(("a family pointing at no grant (foreign keys)",
                    [f"UPDATE token_families SET grant_id = 'nowhere' WHERE id = {q(live)}"],
                    "PRAGMA foreign_key_check"))
        out.append(("a page of the file overwritten", ["CORRUPT-FILE"], "PRAGMA integrity_check"))
    missing = [name for name, sql, _ in out if any("'None'" in x for x in sql)]
    if missing:
        raise SystemExit(f"crash_loop: prove-db: the state has nothing to corrupt for: {missing}")
    return out


def cmd_prove_db(cfg, st, args):
    """Applies each corruption to a scratch copy of the database (the server
    is down) and runs check_db on it: each must be caught by its check."""
    import copy as copymod

    sqlite = cfg["backend"] == "sqlite"
    caught, missed = 0, []
    for i, (name, sqls, expect) in enumerate(corruptions(st, sqlite)):
        scratch_cfg = dict(cfg)
        if sqlite:
            src = cfg["db_url"].split("://", 1)[1].split("?", 1)[0]
            d = os.path.join(os.path.dirname(src), "prove")
            os.makedirs(d, exist_ok=True)
            dst = os.path.join(d, f"c{i}.db")
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(dst + suffix):
                    os.remove(dst + suffix)
            a, b = sqlite3.connect(src), sqlite3.connect(dst)
            a.backup(b)
            a.close()
            b.close()
            if sqls == ["CORRUPT-FILE"]:
                # Overwrites the root page of an index no check reads through
                # (auth_codes_expires), as a torn or lost page write would.
                c = sqlite3.connect(dst)
                page_size = c.execute("PRAGMA page_size").fetchone()[0]
                root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = 'auth_codes_expires'").fetchone()[0]
                c.close()
                with open(dst, "r+b") as f:
                    f.seek((root - 1) * page_size)
                    f.write(os.urandom(page_size))
            else:
                c = sqlite3.connect(dst)
                for sql in sqls:
                    c.execute(sql)
                c.commit()
                c.close()
            scratch_cfg["db_url"] = "sqlite://" + dst
        else:
            base, _, name_db = cfg["db_url"].rpartition("/")
            scratch = f"{name_db}_prove{i}"
            admin = base + "/postgres"
            subprocess.run(["psql", "-X", "-q", "-d", admin, "-c", f'DROP DATABASE IF EXISTS "{scratch}"'], check=True)
            subprocess.run(["psql", "-X", "-q", "-d", admin, "-c",
                            f'CREATE DATABASE "{scratch}" TEMPLATE "{name_db}"'], check=True)
            scratch_cfg["db_url"] = f"{base}/{scratch}"
            for sql in sqls:
                subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", scratch_cfg["db_url"], "-c", sql],
                               check=True, capture_output=True)
        trial = copymod.deepcopy(st)
        trial["violations"] = []
        trial["counters"] = {}
        trial["proving"] = True
        log(f"prove-db: {name}")
        try:
            check_db(scratch_cfg, trial, f"prove: {name}")
        except (sqlite3.DatabaseError, SystemExit) as e:
            # A file too broken to read at all is caught too.
            trial["violations"].append({"what": f"PRAGMA integrity_check (unreadable: {e})"})
        finally:
            if not sqlite:
                subprocess.run(["psql", "-X", "-q", "-d", admin, "-c", f'DROP DATABASE IF EXISTS "{scratch}"'],
                               check=True)
        if any(expect in v["what"] for v in trial["violations"]):
            caught += 1
        else:
            missed.append(name)
    bump(st, "proved_db_checks", caught)
    if missed:
        violation(st, "prove-db: corruptions no check caught", missed=missed)
        return False
    log(f"prove-db: all {caught} corruptions caught, each by its own check")
    return True


def live_corruptions(st, cfg):
    """SQL for the stopped server's database that check_live must catch after
    a restart: a confirmed revocation undone (the row and its log entry), a
    revoked jti undone, and a reuse grace of an hour for the app (so the
    previous generation refreshes again)."""
    revoked = pick(st, lambda f: f["status"] == "revoked" and f.get("how", "").startswith("revoke_"))
    jti = st["jtis"][-1]["jti"] if st["jtis"] else None
    if revoked is None or jti is None:
        raise SystemExit("crash_loop: prove-live: nothing confirmed revoked to undo")
    q = lambda v: "'" + str(v).replace("'", "''") + "'"  # noqa: E731
    return [
        f"UPDATE token_families SET revoked_at = NULL, revoke_reason = NULL WHERE id = {q(revoked)}",
        f"DELETE FROM revocation_log WHERE kind = 'family' AND id = {q(revoked)}",
        f"DELETE FROM revoked_access_tokens WHERE jti = {q(jti)}",
        f"DELETE FROM revocation_log WHERE kind = 'jti' AND id = {q(jti)}",
        f"UPDATE clients SET reuse_grace_secs = 3600 WHERE id = {q(cfg['app_id'])}",
    ], revoked, jti


def cmd_prove_live(cfg, st, args):
    """--break: corrupts the (stopped) database as live_corruptions says.
    --expect: after the restart, check_live must report exactly those three
    violations (on a copy of the state)."""
    import copy as copymod

    sqls, revoked, jti = live_corruptions(st, cfg)
    if args.stage == "break":
        if cfg["backend"] == "sqlite":
            c = sqlite3.connect(cfg["db_url"].split("://", 1)[1].split("?", 1)[0])
            for sql in sqls:
                c.execute(sql)
            c.commit()
            c.close()
        else:
            for sql in sqls:
                subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", cfg["db_url"], "-c", sql],
                               check=True, capture_output=True)
        log(f"prove-live: un-revoked family {revoked}, jti {jti}; reuse grace 1 h")
        return True
    trial = copymod.deepcopy(st)
    trial["violations"] = []
    trial["counters"] = {}
    trial["proving"] = True
    # The undone family among the checked ones; a live family with an earlier
    # generation for the reuse test.
    trial["families"][revoked]["checked"] = False
    # The probes the load makes, on the undone family and jti.
    http_ = Http(cfg["base"], {})
    cl = Client(cfg, http_)
    probe_family(cl, trial, threading.Lock(), revoked, trial["families"][revoked])
    probe_jti(cl, trial, threading.Lock(), next(t for t in trial["jtis"] if t["jti"] == jti))
    http_.close()
    check_live(cfg, trial, True)
    want = {
        # the probes made under load
        "a refresh token worked after its family was revoked": False,
        "a revoked family's access token introspected active": False,
        "a revoked access token introspected active": False,
        # the checks after a restart
        "a revoked family's refresh token is refused with invalid_grant": False,
        "a revoked family's access token introspects inactive": False,
        "a revoked access token introspects inactive": False,
        "the previous generation of a live family is refused (reuse)": False,
        "after reuse, the family's current refresh token is refused too": False,
    }
    for v in trial["violations"]:
        for k in want:
            if k in v["what"]:
                want[k] = True
    missed = [k for k, ok in want.items() if not ok]
    bump(st, "proved_live_checks", sum(want.values()))
    if missed:
        violation(st, "prove-live: undone revocations or a reuse no check caught", missed=missed)
        return False
    log(f"prove-live: all {len(want)} checks over HTTP caught what was undone")
    return True


def cmd_summary(cfg, st, args):
    c = st["counters"]
    fams = st["families"].values()
    print(
        f"{cfg['backend']}: {st['runs']} runs (kill -9 each), {c.get('answered', 0)} requests answered; "
        f"revocations confirmed (answered 200): {c.get('confirmed_family_revocations', 0)} token families "
        f"({c.get('confirmed_logouts', 0)} by logout), {c.get('confirmed_jti_revocations', 0)} access tokens; "
        f"{c.get('refreshes', 0)} rotations, {c.get('families_started', 0)} code redemptions, "
        f"{c.get('cc_issued', 0)} client_credentials tokens, {c.get('sign_ins_throttled', 0)} sign-ins throttled; "
        f"refreshes cut off by a kill: {c.get('cut_refreshes_committed', 0)} had committed, "
        f"{c.get('cut_refreshes_not_committed', 0)} had not; reuse tests {c.get('reuse_tests', 0)}; "
        f"invariant checks passed: {c.get('db_checks_passed', 0)} on the tables ({c.get('db_rounds', 0)} rounds, "
        f"{c.get('db_items_checked', 0)} items), {c.get('live_checks_passed', 0)} over HTTP ({c.get('live_rounds', 0)} "
        f"restarts, {c.get('live_items_checked', 0)} items; revocations re-checked: "
        f"{c.get('confirmed_family_revocations_rechecked', 0)} families, {c.get('confirmed_jti_revocations_rechecked', 0)} "
        f"jtis); checks shown to fail on broken data: {c.get('proved_db_checks', 0)} on the tables, "
        f"{c.get('proved_live_checks', 0)} over HTTP; violations: {len(st['violations'])}; "
        f"notes: {len(st['anomalies'])} (answers lost before the kill, unexpected answers; see the state file)"
    )
    return not st["violations"]


def main():
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["drive", "check-db", "check-live", "summary", "prove-db", "prove-live"])
    p.add_argument("config")
    p.add_argument("state")
    p.add_argument("--pid", type=int)
    p.add_argument("--run", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--label")
    p.add_argument("--all", action="store_true")
    p.add_argument("--stage", choices=["break", "expect"])
    args = p.parse_args()
    cfg = load_json(args.config)
    st = load_json(args.state, new_state())
    before = len(st["violations"])
    try:
        ok = {
            "drive": lambda: cmd_drive(cfg, st, args) or True,
            "check-db": lambda: cmd_check_db(cfg, st, args),
            "check-live": lambda: cmd_check_live(cfg, st, args),
            "summary": lambda: cmd_summary(cfg, st, args),
            "prove-db": lambda: cmd_prove_db(cfg, st, args),
            "prove-live": lambda: cmd_prove_live(cfg, st, args),
        }[args.command]()
    finally:
        save_json(args.state, st)
    if not ok or len(st["violations"]) > before:
        sys.exit(1)


if __name__ == "__main__":
    main()
