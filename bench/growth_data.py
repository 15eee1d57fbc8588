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
    else:
        out = revocations(conn, per_kind, args.revoked_ago, args.until_after)
    # Only after a commit: a failed bulk load (journal off) leaves a scratch file to throw away.
    finish(conn)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
