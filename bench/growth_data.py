#!/usr/bin/env python3
"""Bulk data for bench/growth.sh (issue 11, item 7), written straight into a
SQLite database that `latchkey migrate` created (the schema is the binary's
own; this script only inserts rows, in one transaction per command, with
executemany).

    growth_data.py fixtures DB --password-from USERNAME
        Users and clients the other commands and the page rows need:
        300 users growth-user-NNN and 5 clients growth-old-N (the owners of
        the revoked grants), 500 clients growth-app-NNN, the user growth-apps
        with one live grant per app client (500; one live token family and
        refresh token each: the My apps row), and the user growth-revoke with
        100 live grants (app clients 1..100) of 100 live token families each,
        every family with a live refresh token (10,000: the "revoke all apps"
        row). Every user gets the password hash of USERNAME (a user the CLI
        created), so any of them can sign in with its password.

    growth_data.py revocations DB --count N --revoked-ago SECS --until-after SECS
        N revoked grants (one revoked token family under each, with one
        revoked refresh token), N revoked access-token jtis
        (revoked_access_tokens), and 3N revocation_log entries (grant i,
        family i, jti i at consecutive positions after the log's head, the
        head row moved to the last). revoked_at spreads over the 10 minutes
        ending SECS ago; until_at = revoked_at + --until-after.
        The million expired revocations: --revoked-ago 3600 --until-after 600.
        Revocations that still matter: --revoked-ago 0 --until-after 3600.
        --kinds-total T instead of 3N entries: T entries split as evenly as
        possible over the three kinds (grants, families, jtis).

    growth_data.py steady DB --rate R --days D [--session-days L]
        The rows D days of R refreshes a second leave behind (before the
        retention job runs: bench/growth.sh runs `latchkey prune` after it),
        under the default policy (10-minute access tokens, 14-day idle and
        90-day absolute refresh lifetimes, rotation on): R x 600 sessions
        live at any time (each refreshes once per access-token lifetime),
        one per user, spread over 10 clients; each session lasts L days
        (default 7), then its user signs in again (a new sign-in, code and
        family) and the old family goes idle. Per session started: a sign-in
        (login_sessions, ended when the next one starts), a family holding
        its refresh-token chain, audit events `login` and `code_redeemed`;
        per user one grant and one `consent_granted`; refreshes counted per
        client and minute (usage_counts) and per user, client and day
        (usage_days).

    growth_data.py stored-sample DB --count N
        N stored refresh tokens (as before chains: one row per refresh, its
        parent's hash, SHA-256 keys) and N `token_refreshed` audit rows (as
        before refreshes were counted), into an existing family: to measure
        what one refresh used to cost in bytes.

Prints one line of JSON: what was written and how long it took.
"""

import argparse
import base64
import hashlib
import json
import os
import sqlite3
import sys
import time

FILLER_USERS = 300
OLD_CLIENTS = 5
APP_CLIENTS = 500
REVOKE_GRANTS = 100
FAMILIES_PER_REVOKE_GRANT = 100
SCOPES = "openid offline_access"
DAY = 86400
BATCH = 50_000


def new_id():
    """A random 128-bit id, base64url without padding (secrets.rs new_id)."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def token_hash():
    """Hex SHA-256 of a random 256-bit token (how refresh tokens are stored)."""
    return hashlib.sha256(os.urandom(32)).hexdigest()


def connect(path):
    if not os.path.exists(path):
        sys.exit(f"growth_data.py: no database at {path} (run latchkey migrate first)")
    conn = sqlite3.connect(path, isolation_level=None)
    # A bulk load into a scratch copy: no rollback journal, no fsync, a
    # large page cache; the file goes back to WAL (the server's mode) at the end.
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1048576")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


def finish(conn):
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def insert(conn, sql, rows):
    """executemany in slices, so generators of a million rows never sit in memory."""
    batch = []
    count = 0
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            conn.executemany(sql, batch)
            count += len(batch)
            batch.clear()
    if batch:
        conn.executemany(sql, batch)
        count += len(batch)
    return count


def scalar(conn, sql, *args):
    row = conn.execute(sql, args).fetchone()
    return row[0] if row else None


def fixtures(conn, password_from):
    now = int(time.time())
    password_hash = scalar(
        conn, "SELECT password_hash FROM users WHERE username_key = ?", password_from.lower()
    )
    if password_hash is None:
        sys.exit(f"growth_data.py: no user {password_from!r} to copy the password hash from")
    if scalar(conn, "SELECT COUNT(*) FROM users WHERE username_key = 'growth-apps'"):
        sys.exit("growth_data.py: the fixtures are already there")

    def user(name):
        return (new_id(), name, name, password_hash, 0, now - 30 * DAY)

    def client(name, grant_types):
        return (
            new_id(), name, name, "confidential", token_hash(),
            json.dumps(["https://growth.example/cb"]), "[]", grant_types, "",
            now - 30 * DAY, now - 30 * DAY,
        )

    users = [user(f"growth-user-{i:03}") for i in range(1, FILLER_USERS + 1)]
    apps_user = user("growth-apps")
    revoke_user = user("growth-revoke")
    old_clients = [client(f"growth-old-{i}", "authorization_code refresh_token")
                   for i in range(1, OLD_CLIENTS + 1)]
    app_clients = [client(f"growth-app-{i:03}", "authorization_code refresh_token")
                   for i in range(1, APP_CLIENTS + 1)]

    conn.execute("BEGIN")
    insert(conn, "INSERT INTO users (id, username, username_key, password_hash, is_admin, created_at) "
                 "VALUES (?, ?, ?, ?, ?, ?)", users + [apps_user, revoke_user])
    insert(conn, "INSERT INTO clients (id, name, name_key, kind, secret_hash, redirect_uris, "
                 "post_logout_redirect_uris, grant_types, extra_scopes, created_at, updated_at) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", old_clients + app_clients)

    grants, families, tokens = [], [], []

    def live_family(grant_id, at):
        family = new_id()
        families.append((family, grant_id, at, at, "127.0.0.1", "growth-bench"))
        tokens.append((token_hash(), family, SCOPES, at, at + 14 * DAY))

    # growth-apps: one live grant per app client, used at different times
    # (the page sorts by last use), each with one live session.
    for i, c in enumerate(app_clients):
        gid = new_id()
        at = now - 20 * DAY + i * 60
        grants.append((gid, apps_user[0], c[0], SCOPES, at - DAY, at, "127.0.0.1", "growth-bench"))
        live_family(gid, at)
    # growth-revoke: 100 live grants of 100 live families each.
    for c in app_clients[:REVOKE_GRANTS]:
        gid = new_id()
        at = now - 10 * DAY
        grants.append((gid, revoke_user[0], c[0], SCOPES, at - DAY, at, "127.0.0.1", "growth-bench"))
        for k in range(FAMILIES_PER_REVOKE_GRANT):
            live_family(gid, at + k)
    insert(conn, "INSERT INTO grants (id, user_id, client_id, scopes, created_at, last_used_at, "
                 "last_used_ip, last_used_ua) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", grants)
    insert(conn, "INSERT INTO token_families (id, grant_id, created_at, last_used_at, last_used_ip, "
                 "last_used_ua) VALUES (?, ?, ?, ?, ?, ?)", families)
    insert(conn, "INSERT INTO refresh_tokens (hash, family_id, scopes, issued_at, expires_at) "
                 "VALUES (?, ?, ?, ?, ?)", tokens)
    conn.execute("COMMIT")
    return {
        "users": len(users) + 2,
        "clients": len(old_clients) + len(app_clients),
        "live_grants": len(grants),
        "live_families": len(families),
        "live_refresh_tokens": len(tokens),
        "apps_user_id": apps_user[0],
        "revoke_user_id": revoke_user[0],
    }


def revocations(conn, per_kind, revoked_ago, until_after):
    """per_kind: (grants, families, jtis). Family i hangs from grant i when
    there is one, else from grant i mod grants (grants >= 1)."""
    n_grants, n_families, n_jtis = per_kind
    now = int(time.time())
    users = [r[0] for r in conn.execute(
        "SELECT id FROM users WHERE username LIKE 'growth-user-%' ORDER BY username")]
    clients = [r[0] for r in conn.execute(
        "SELECT id FROM clients WHERE name LIKE 'growth-old-%' ORDER BY name")]
    if not users or not clients:
        sys.exit("growth_data.py: run the fixtures command first")
    head = scalar(conn, "SELECT position FROM revocation_log_head WHERE id = 1")
    if head is None:
        sys.exit("growth_data.py: no revocation_log_head row (is the database migrated?)")

    most = max(per_kind)
    end = now - revoked_ago
    start = end - 600  # revoked over the 10 minutes ending `revoked_ago` seconds ago

    def revoked_at(i):
        return start + (i * 600) // max(most, 1)

    grant_ids = [new_id() for _ in range(n_grants)]
    family_ids = [new_id() for _ in range(n_families)]
    jtis = [new_id() for _ in range(n_jtis)]

    def grant_rows():
        for i, gid in enumerate(grant_ids):
            at = revoked_at(i)
            yield (gid, users[i % len(users)], clients[i % len(clients)], SCOPES,
                   at - 7 * DAY, at - 600, at, f"user:{users[i % len(users)]}", "user revoked the app")

    def family_rows():
        for i, fid in enumerate(family_ids):
            at = revoked_at(i)
            yield (fid, grant_ids[i % len(grant_ids)], at - 7 * DAY, at - 600, at, "user revoked the app")

    def token_rows():
        for i, fid in enumerate(family_ids):
            at = revoked_at(i)
            yield (token_hash(), fid, SCOPES, at - 600, at - 600 + 14 * DAY, at)

    def jti_rows():
        for i, jti in enumerate(jtis):
            at = revoked_at(i)
            yield (jti, at + until_after, at)

    # The log: at each step i, grant i, family i, jti i (those that exist),
    # at consecutive positions after the head: the order they were revoked in.
    entries = [0]

    def log_rows():
        position = head
        for i in range(most):
            at = revoked_at(i)
            for kind, ids in (("grant", grant_ids), ("family", family_ids), ("jti", jtis)):
                if i < len(ids):
                    position += 1
                    yield (position, kind, ids[i], at + until_after, at)
        entries[0] = position - head

    started = time.monotonic()
    conn.execute("BEGIN")
    insert(conn, "INSERT INTO grants (id, user_id, client_id, scopes, created_at, last_used_at, "
                 "revoked_at, revoked_by, revoke_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
           grant_rows())
    insert(conn, "INSERT INTO token_families (id, grant_id, created_at, last_used_at, revoked_at, "
                 "revoke_reason) VALUES (?, ?, ?, ?, ?, ?)", family_rows())
    insert(conn, "INSERT INTO refresh_tokens (hash, family_id, scopes, issued_at, expires_at, "
                 "revoked_at) VALUES (?, ?, ?, ?, ?, ?)", token_rows())
    insert(conn, "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at) VALUES (?, ?, ?)",
           jti_rows())
    insert(conn, "INSERT INTO revocation_log (position, kind, id, until_at, revoked_at) "
                 "VALUES (?, ?, ?, ?, ?)", log_rows())
    conn.execute("UPDATE revocation_log_head SET position = ? WHERE id = 1", (head + entries[0],))
    conn.execute("COMMIT")
    return {
        "grants": n_grants,
        "families": n_families,
        "refresh_tokens": n_families,
        "jtis": n_jtis,
        "log_positions": [head + 1, head + entries[0]],
        "revoked_at": [revoked_at(0), revoked_at(most - 1) if most else None],
        "until_after": until_after,
        "seconds": round(time.monotonic() - started, 1),
    }


def steady(conn, rate, days, session_days):
    now = int(time.time())
    access_ttl, idle = 600, 14 * DAY
    live = rate * access_ttl              # sessions live at any moment
    users = [new_id() for _ in range(live)]
    clients = [new_id() for _ in range(10)]
    span = days * DAY
    session = session_days * DAY
    started = time.monotonic()
    conn.execute("BEGIN")
    insert(conn, "INSERT INTO users (id, username, username_key, password_hash, is_admin, created_at) "
                 "VALUES (?, ?, ?, 'x', 0, ?)",
           ((u, f"steady-{i}", f"steady-{i}", now - span) for i, u in enumerate(users)))
    insert(conn, "INSERT INTO clients (id, name, name_key, kind, secret_hash, redirect_uris, "
                 "post_logout_redirect_uris, grant_types, extra_scopes, created_at, updated_at) "
                 "VALUES (?, ?, ?, 'confidential', ?, '[\"https://steady.example/cb\"]', '[]', "
                 "'authorization_code refresh_token', '', ?, ?)",
           ((c, f"steady-{i}", f"steady-{i}", token_hash(), now - span, now - span)
            for i, c in enumerate(clients)))
    grants = [new_id() for _ in users]
    insert(conn, "INSERT INTO grants (id, user_id, client_id, scopes, created_at, last_used_at, "
                 "last_used_ip, last_used_ua) VALUES (?, ?, ?, ?, ?, ?, '203.0.113.7', 'steady')",
           ((g, u, clients[i % len(clients)], SCOPES, now - span, now)
            for i, (g, u) in enumerate(zip(grants, users))))
    counts = {"sessions": 0}

    def sessions():
        """(user index, start, end or None): back-to-back sessions per user,
        phases spread evenly so that sessions start at a steady pace."""
        for i in range(len(users)):
            t = now - span - (i * session) // len(users)
            while t < now:
                end = t + session
                yield i, max(t, now - span), (end if end < now else None)
                t = end

    def session_rows():
        for i, start, end in sessions():
            counts["sessions"] += 1
            last = min(end or now, now)
            yield i, start, end, last

    rows = list(session_rows())
    insert(conn, "INSERT INTO login_sessions (id, user_id, user_agent, ip, created_at, last_seen_at, "
                 "ended_at, end_reason) VALUES (?, ?, 'steady', '203.0.113.7', ?, ?, ?, ?)",
           ((f"ls-{k}", users[i], start, last, end, "signed in again" if end else None)
            for k, (i, start, end, last) in enumerate(rows)))
    insert(conn, "INSERT INTO token_families (id, grant_id, login_session_id, created_at, last_used_at, "
                 "last_used_ip, last_used_ua, scopes, chain_generation, chain_rotated_at, chain_expires_at) "
                 "VALUES (?, ?, ?, ?, ?, '203.0.113.7', 'steady', ?, ?, ?, ?)",
           ((new_id(), grants[i], f"ls-{k}", start, last, SCOPES, (last - start) // access_ttl,
             last, last + idle) for k, (i, start, end, last) in enumerate(rows)))
    def audit_rows():
        for k, (i, start, end, last) in enumerate(rows):
            for kind in ("login", "code_redeemed"):
                yield (new_id(), start, kind, users[i], None, users[i], clients[i % len(clients)],
                       "203.0.113.7", '{"user_agent":"steady"}')
        for i, u in enumerate(users):
            yield (new_id(), now - span, "consent_granted", u, None, u, clients[i % len(clients)],
                   "203.0.113.7", '{"scope":"openid offline_access"}')
    audit = insert(conn, "INSERT INTO audit_events (id, at, kind, actor_user_id, actor_client_id, "
                         "subject_user_id, client_id, ip, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   audit_rows())
    per_client_minute = rate * 60 // len(clients)
    minutes = insert(conn, "INSERT INTO usage_counts (client_id, minute, kind, n) VALUES (?, ?, 'token_refreshed', ?)",
                     ((c, m, per_client_minute) for m in range((now - span) // 60, now // 60)
                      for c in clients))
    per_day = DAY // access_ttl
    user_days = insert(conn, "INSERT INTO usage_days (id, user_id, client_id, day, kind, n, last_at) "
                             "VALUES (?, ?, ?, ?, 'token_refreshed', ?, ?)",
                       ((new_id(), u, clients[i % len(clients)], d, per_day, d * DAY + DAY - 1)
                        for d in range((now - span) // DAY, now // DAY)
                        for i, u in enumerate(users)))
    conn.execute("COMMIT")
    return {
        "rate": rate, "days": days, "session_days": session_days,
        "live_sessions": live, "users": len(users), "sessions": counts["sessions"],
        "refreshes": rate * span, "audit_events": audit, "usage_counts": minutes,
        "usage_days": user_days, "seconds": round(time.monotonic() - started, 1),
    }


def stored_sample(conn, count):
    family = scalar(conn, "SELECT id FROM token_families LIMIT 1")
    client = scalar(conn, "SELECT id FROM clients LIMIT 1")
    user = scalar(conn, "SELECT id FROM users LIMIT 1")
    if family is None:
        sys.exit("growth_data.py: stored-sample needs a family (run steady first)")
    now = int(time.time())
    started = time.monotonic()
    conn.execute("BEGIN")

    def tokens():
        parent = None
        for k in range(count):
            h = token_hash()
            yield (h, family, parent, SCOPES, now - k, now - k + 14 * DAY, now - k + 600)
            parent = h
    insert(conn, "INSERT INTO refresh_tokens (hash, family_id, parent_hash, scopes, issued_at, "
                 "expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?)", tokens())
    detail = json.dumps({"grant_id": new_id(), "family_id": family, "scope": SCOPES, "rotated": True})
    insert(conn, "INSERT INTO audit_events (id, at, kind, actor_user_id, actor_client_id, subject_user_id, "
                 "client_id, ip, detail) VALUES (?, ?, 'token_refreshed', NULL, ?, ?, ?, '203.0.113.7', ?)",
           ((new_id(), now - k, client, user, client, detail) for k in range(count)))
    conn.execute("COMMIT")
    return {"stored_tokens": count, "refresh_audit_events": count,
            "seconds": round(time.monotonic() - started, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fx = sub.add_parser("fixtures")
    fx.add_argument("db")
    fx.add_argument("--password-from", required=True)
    rv = sub.add_parser("revocations")
    rv.add_argument("db")
    group = rv.add_mutually_exclusive_group(required=True)
    group.add_argument("--count", type=int, help="N of each kind (3N log entries)")
    group.add_argument("--kinds-total", type=int, help="T log entries over the three kinds")
    rv.add_argument("--revoked-ago", type=int, required=True)
    rv.add_argument("--until-after", type=int, required=True)
    st = sub.add_parser("steady")
    st.add_argument("db")
    st.add_argument("--rate", type=int, required=True, help="refreshes per second")
    st.add_argument("--days", type=int, required=True)
    st.add_argument("--session-days", type=int, default=7)
    ss = sub.add_parser("stored-sample")
    ss.add_argument("db")
    ss.add_argument("--count", type=int, required=True)
    args = parser.parse_args()

    if args.command == "revocations":
        if args.count is not None:
            per_kind = (args.count,) * 3
        else:
            t = args.kinds_total
            per_kind = (t // 3 + (t % 3 > 0), t // 3 + (t % 3 > 1), t // 3)
        if per_kind[0] < 1:
            sys.exit("growth_data.py: at least one revoked grant is needed")
    conn = connect(args.db)
    if args.command == "fixtures":
        out = fixtures(conn, args.password_from)
    elif args.command == "steady":
        out = steady(conn, args.rate, args.days, args.session_days)
    elif args.command == "stored-sample":
        out = stored_sample(conn, args.count)
    else:
        out = revocations(conn, per_kind, args.revoked_ago, args.until_after)
    # Only after a commit: a failed bulk load (journal off) leaves a scratch file to throw away.
    finish(conn)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
