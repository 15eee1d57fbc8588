//! Retention (issue 11, item 2): what no longer matters is deleted, in
//! batches, and what still matters stays — a live chain, a rotated token
//! still able to reveal reuse, a recent revocation, a sign-in with live
//! tokens, the audit log within its retention. Real flows over HTTP make the
//! rows; SQL moves their times into the past. Both databases.

mod common;

use app::domain::{
    clients::ClientKind,
    retention::{self, Pruned, Retention, BATCH},
    revocation::RevokedBy,
    store::now,
};
use common::{
    count, exec,
    flow::{self, oauth_error, refresh, str_of},
    text_value, TestDb, TestServer,
};
use reqwest::StatusCode;
use serde_json::Value;

on_both_backends!(
    deletes_what_no_longer_matters_and_keeps_the_rest,
    dry_run_counts_exactly_and_deletes_nothing,
    audit_retention_zero_keeps_every_event,
    upstream_token_rows_go_with_their_ended_sign_in_once_nothing_is_due,
);

const SYSTEM: RevokedBy<'static> = RevokedBy {
    actor: "system",
    reason: "test",
    actor_user_id: None,
    actor_client_id: None,
};

const DAY: i64 = 86_400;

fn rows(report: &[Pruned], table: &str) -> u64 {
    report
        .iter()
        .filter(|p| p.table == table)
        .map(|p| p.rows)
        .sum()
}

/// What the test builds: a live rotated chain with three stored tokens
/// (from before chains: one expired, one revoked, one live), a session
/// that ended unrevoked, a signed-out second device, a revoked second app, a
/// revoked access token, an unredeemed code, old audit events (more than
/// one batch), usage counts and two outbox rows.
struct World {
    server: TestServer,
    notes: flow::App,
    /// The chain's first generation: presenting it again is reuse.
    r0: String,
    /// Its second: the same.
    r1: String,
    /// The chain's current token.
    r2: String,
    live_family: String,
    /// A family of the same sign-in whose chain ran out (aged by [`age`]).
    ended_family: String,
    live_sign_in: String,
}

async fn build(t: &TestDb) -> World {
    let server = TestServer::start(&t.db).await;
    let notes = flow::app(t, "Notes", ClientKind::Confidential, &[]).await;
    let calendar = flow::app(t, "Calendar", ClientKind::Confidential, &[]).await;
    let alice = flow::person(t, &server, "alice").await;

    // A live chain: r0 → r1 → r2.
    let first = flow::tokens_for(&alice, &server, &notes, "openid").await;
    let r0 = str_of(&first, "refresh_token").to_owned();
    let next = |token: String| {
        let (server, notes) = (&server, &notes);
        async move {
            let res = refresh(server, notes, &token).await;
            assert_eq!(res.status(), StatusCode::OK);
            let body: Value = res.json().await.unwrap();
            str_of(&body, "refresh_token").to_owned()
        }
    };
    let r1 = next(r0.clone()).await;
    let r2 = next(r1.clone()).await;
    // The only family so far.
    let live_family = text_value(&t.db, "SELECT id FROM token_families WHERE $1 = $1", "-")
        .await
        .unwrap();
    let live_sign_in = text_value(
        &t.db,
        "SELECT login_session_id FROM token_families WHERE id = $1",
        &live_family,
    )
    .await
    .unwrap();

    // Stored refresh tokens of the live family, as issued before chains.
    let at = now();
    exec(
        &t.db,
        &format!(
            "INSERT INTO refresh_tokens (hash, family_id, parent_hash, scopes, issued_at, expires_at, revoked_at) \
             VALUES ('stored-expired', '{live_family}', NULL, 'openid', {at}, {later}, NULL), \
             ('stored-revoked', '{live_family}', NULL, 'openid', {at}, {later}, {at}), \
             ('stored-live', '{live_family}', NULL, 'openid', {at}, {later}, NULL)",
            later = at + DAY
        ),
    )
    .await;
    // Another session of the same sign-in, which will have run out.
    let ended = flow::tokens_for(&alice, &server, &notes, "openid").await;
    let ended_family = flow::jwt_part(str_of(&ended, "access_token"), 1)["fid"]
        .as_str()
        .unwrap()
        .to_owned();

    // A second device signs in, gets tokens, signs out: its family is
    // revoked and its sign-in ended.
    let phone = flow::another_browser(&alice, &server).await;
    flow::tokens_for(&phone, &server, &notes, "openid").await;
    flow::sign_out(&phone, &server).await;

    // A second app, revoked; and a client_credentials access token revoked
    // on its own (by jti: it has no family).
    flow::tokens_for(&alice, &server, &calendar, "openid").await;
    let job = flow::service(&t.db, "Job", &[]).await;
    let cc = flow::cc_token(&server, &job).await;
    flow::revoke_by_rfc7009(&server, &job, &cc).await;
    let grant = text_value(
        &t.db,
        "SELECT id FROM grants WHERE client_id = $1",
        &calendar.client_id,
    )
    .await
    .unwrap();
    assert!(server
        .revoked
        .revoke_grant(&t.db, &grant, &SYSTEM)
        .await
        .unwrap());

    // An authorization code never redeemed.
    flow::code_for(&alice, &server, &notes, "openid").await;

    // Audit events from long ago, more than one batch of them.
    exec(
        &t.db,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {}) \
             INSERT INTO audit_events (id, at, kind, detail) \
             SELECT 'old-' || i, 1000, 'login', '{{}}' FROM n",
            BATCH * 2 + 500
        ),
    )
    .await;
    // Counted usage (client_credentials tokens per client and minute,
    // refreshes per user, client and day): one count from 1970 and one of
    // now of each.
    exec(
        &t.db,
        &format!(
            "INSERT INTO usage_counts (client_id, minute, kind, n) VALUES \
             ('{c}', 16, 'token_issued', 3), ('{c}', {minute}, 'token_issued', 2)",
            c = notes.client_id,
            minute = now() / 60
        ),
    )
    .await;
    exec(
        &t.db,
        &format!(
            "INSERT INTO usage_days (id, user_id, client_id, day, kind, n, last_at) VALUES \
             ('old-day', 'someone', '{c}', 0, 'token_refreshed', 4, 100), \
             ('new-day', 'someone', '{c}', {day}, 'token_refreshed', 1, {at})",
            c = notes.client_id,
            day = now() / DAY,
            at = now()
        ),
    )
    .await;
    // Two registered instances: one reported just now, one crashed long ago.
    exec(
        &t.db,
        &format!(
            "INSERT INTO instances (id, started_at, seen_at_ms, applied_position, applied_change) \
             VALUES ('alive', 0, {alive}, 0, 0), ('crashed', 0, 1000, 0, 0)",
            alive = now() * 1000
        ),
    )
    .await;
    // Two outbox rows written 40 days ago: one delivered, one still due.
    let old = now() - 40 * DAY;
    exec(
        &t.db,
        &format!(
            "INSERT INTO outbox (id, kind, client_id, target_url, payload, jti, created_at, \
             next_attempt_at, delivered_at) VALUES \
             ('done', 'backchannel_logout', '{c}', 'https://x.example/bc', '{{}}', 'j1', {old}, NULL, {old}), \
             ('due', 'backchannel_logout', '{c}', 'https://x.example/bc', '{{}}', 'j2', {old}, {old}, NULL)",
            c = notes.client_id
        ),
    )
    .await;
    World {
        server,
        notes,
        r0,
        r1,
        r2,
        live_family,
        ended_family,
        live_sign_in,
    }
}

/// Moves times into the past, as if the days had gone by.
async fn age(t: &TestDb, w: &World) {
    let statements = [
        // Every code expired two hours ago.
        "UPDATE auth_codes SET expires_at = expires_at - 7200".to_owned(),
        // A stored token's idle expiry passed two hours ago.
        format!(
            "UPDATE refresh_tokens SET expires_at = {} WHERE hash = 'stored-expired'",
            now() - 7200
        ),
        // The ended session: last used, and its chain's idle expiry, two days ago.
        format!(
            "UPDATE token_families SET last_used_at = {ago}, chain_expires_at = {ago} WHERE id = '{}'",
            w.ended_family,
            ago = now() - 2 * DAY
        ),
        // Every revocation happened 26 hours ago, past the longest access token.
        format!(
            "UPDATE token_families SET revoked_at = revoked_at - {} WHERE revoked_at IS NOT NULL",
            26 * 3600
        ),
        format!(
            "UPDATE refresh_tokens SET revoked_at = revoked_at - {} WHERE revoked_at IS NOT NULL",
            26 * 3600
        ),
        format!(
            "UPDATE grants SET revoked_at = revoked_at - {} WHERE revoked_at IS NOT NULL",
            26 * 3600
        ),
        format!(
            "UPDATE revoked_access_tokens SET expires_at = expires_at - {}",
            26 * 3600
        ),
        format!(
            "UPDATE revocation_log SET until_at = until_at - {}",
            26 * 3600
        ),
        // The ended sign-in ended 31 days ago.
        format!(
            "UPDATE login_sessions SET ended_at = ended_at - {} WHERE ended_at IS NOT NULL",
            31 * DAY
        ),
    ];
    for sql in statements {
        exec(&t.db, &sql).await;
    }
}

const TABLES: [&str; 9] = [
    "auth_codes",
    "refresh_tokens",
    "token_families",
    "grants",
    "login_sessions",
    "revoked_access_tokens",
    "revocation_log",
    "outbox",
    "audit_events",
];

async fn counts(t: &TestDb) -> Vec<i64> {
    let mut out = Vec::new();
    for table in TABLES {
        out.push(count(&t.db, table).await);
    }
    out
}

async fn deletes_what_no_longer_matters_and_keeps_the_rest(t: TestDb) {
    let w = build(&t).await;
    // Nothing is old yet except the planted audit events and outbox row.
    let fresh = retention::run(&t.db, &Retention::default()).await.unwrap();
    assert_eq!(rows(&fresh, "audit_events"), (BATCH * 2 + 500) as u64);
    assert_eq!(rows(&fresh, "outbox"), 1, "only the delivered row");
    assert_eq!(rows(&fresh, "instances"), 1, "only the crashed one");
    // Counts past the audit retention go, today's stay (the refreshes above
    // add counts of their own, of today, within a second).
    assert_eq!(
        rows(&fresh, "usage_counts"),
        1,
        "the minute of 1970: {fresh:?}"
    );
    assert_eq!(rows(&fresh, "usage_days"), 1, "the day of 1970: {fresh:?}");
    assert_eq!(
        text_value(&t.db, "SELECT id FROM usage_days WHERE id = $1", "new-day").await,
        Some("new-day".to_owned())
    );
    assert_eq!(
        text_value(&t.db, "SELECT id FROM instances WHERE $1 = $1", "-").await,
        Some("alive".to_owned())
    );
    for table in TABLES
        .iter()
        .filter(|t| !["audit_events", "outbox"].contains(t))
    {
        assert_eq!(rows(&fresh, table), 0, "{table}: {fresh:?}");
    }

    age(&t, &w).await;
    let report = retention::run(&t.db, &Retention::default()).await.unwrap();
    // Codes: the four redeemed ones and the unredeemed one.
    assert_eq!(rows(&report, "auth_codes"), 5, "{report:?}");
    assert_eq!(count(&t.db, "auth_codes").await, 0);
    // Stored refresh tokens: the expired one and the revoked one; the
    // live one stays. (Chain tokens have no rows.)
    assert_eq!(rows(&report, "refresh_tokens"), 2, "{report:?}");
    assert_eq!(
        text_value(&t.db, "SELECT hash FROM refresh_tokens WHERE $1 = $1", "-").await,
        Some("stored-live".to_owned())
    );
    // Families: the phone's and the calendar's (revoked), the ended one;
    // the live one stays.
    assert_eq!(rows(&report, "token_families"), 3, "{report:?}");
    assert_eq!(
        text_value(&t.db, "SELECT id FROM token_families WHERE $1 = $1", "-").await,
        Some(w.live_family.clone())
    );
    // Grants: the calendar's; the notes grant and the job's own
    // client_credentials grant (live) stay.
    assert_eq!(rows(&report, "grants"), 1, "{report:?}");
    assert_eq!(count(&t.db, "grants").await, 2);
    // Sign-ins: the phone's ended one; the live one stays.
    assert_eq!(rows(&report, "login_sessions"), 1, "{report:?}");
    assert_eq!(
        text_value(&t.db, "SELECT id FROM login_sessions WHERE $1 = $1", "-").await,
        Some(w.live_sign_in.clone())
    );
    assert_eq!(rows(&report, "revoked_access_tokens"), 1, "{report:?}");
    assert_eq!(count(&t.db, "revoked_access_tokens").await, 0);
    assert!(rows(&report, "revocation_log") >= 3, "{report:?}");
    assert_eq!(count(&t.db, "revocation_log").await, 0);
    // The due outbox row stays; recent audit events stay.
    assert_eq!(count(&t.db, "outbox").await, 1);
    assert_eq!(
        text_value(&t.db, "SELECT id FROM outbox WHERE $1 = $1", "-").await,
        Some("due".to_owned())
    );
    assert!(count(&t.db, "audit_events").await > 0);
    // Run again: nothing left to delete.
    let again = retention::run(&t.db, &Retention::default()).await.unwrap();
    assert!(again.iter().all(|p| p.rows == 0), "{again:?}");

    // What stayed still works as before: r2 refreshes ...
    let res = refresh(&w.server, &w.notes, &w.r2).await;
    assert_eq!(res.status(), StatusCode::OK);
    // ... and r0 and r1, earlier generations of its chain, still reveal
    // reuse: the family is revoked.
    let (status, error) = oauth_error(refresh(&w.server, &w.notes, &w.r0).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (_, error) = oauth_error(refresh(&w.server, &w.notes, &w.r1).await).await;
    assert_eq!(error, "invalid_grant");
    assert!(text_value(
        &t.db,
        "SELECT revoke_reason FROM token_families WHERE id = $1",
        &w.live_family
    )
    .await
    .is_some_and(|reason| reason.contains("reuse")));
    t.cleanup().await;
}

async fn dry_run_counts_exactly_and_deletes_nothing(t: TestDb) {
    let world = build(&t).await;
    age(&t, &world).await;
    let before = counts(&t).await;
    let dry = retention::dry_run(&t.db, &Retention::default())
        .await
        .unwrap();
    assert_eq!(counts(&t).await, before, "a dry run deletes nothing");
    // Families go only after their refresh tokens: counted all the same.
    assert_eq!(rows(&dry, "token_families"), 3, "{dry:?}");
    let ran = retention::run(&t.db, &Retention::default()).await.unwrap();
    assert_eq!(dry, ran, "the dry run said exactly what goes");
    t.cleanup().await;
}

async fn audit_retention_zero_keeps_every_event(t: TestDb) {
    let _world = build(&t).await;
    let events = count(&t.db, "audit_events").await;
    let report = retention::run(&t.db, &Retention { audit_secs: None })
        .await
        .unwrap();
    assert_eq!(rows(&report, "audit_events"), 0);
    assert_eq!(rows(&report, "usage_counts"), 0);
    // A user's per-day counts go after 100 days whatever the audit
    // retention (the app page never shows older ones).
    assert_eq!(
        rows(&report, "usage_days"),
        1,
        "the day of 1970: {report:?}"
    );
    assert_eq!(count(&t.db, "audit_events").await, events);
    // A retention of 400 days takes the planted events from 1970 only.
    let report = retention::run(&t.db, &Retention::default()).await.unwrap();
    assert_eq!(rows(&report, "audit_events"), (BATCH * 2 + 500) as u64);
    assert_eq!(
        count(&t.db, "audit_events").await,
        events - (BATCH * 2 + 500)
    );
    t.cleanup().await;
}

/// Upstream tokens (issue 12): the row of an ended sign-in whose revocation
/// is done goes after 30 days, and then the sign-in; a revocation still due
/// keeps its row and its sign-in; a live sign-in keeps both.
async fn upstream_token_rows_go_with_their_ended_sign_in_once_nothing_is_due(t: TestDb) {
    let provider = app::domain::upstream::add(
        &t.db,
        &app::domain::upstream::sealer(common::master_key()),
        &app::domain::upstream::NewProvider {
            name: "Corp SSO".into(),
            issuer: "https://sso.corp.example".into(),
            client_id: "latchkey".into(),
            client_secret: "secret".into(),
            revoke_at_logout: true,
            ..Default::default()
        },
        &app::domain::audit::Actor::default(),
    )
    .await
    .unwrap();
    let user = app::domain::users::add_user(&t.db, "carol", flow::PASSWORD, false)
        .await
        .unwrap();
    let old = now() - 31 * DAY;
    let live = now();
    exec(
        &t.db,
        &format!(
            "INSERT INTO login_sessions (id, user_id, created_at, last_seen_at, ended_at, upstream_provider_id) VALUES \
             ('done', '{u}', {old}, {old}, {old}, '{p}'), ('due', '{u}', {old}, {old}, {old}, '{p}'), \
             ('live', '{u}', {live}, {live}, NULL, '{p}')",
            u = user.id,
            p = provider.id
        ),
    )
    .await;
    exec(
        &t.db,
        &format!(
            "INSERT INTO upstream_tokens (login_session_id, provider_id, refresh_token_enc, created_at, \
             revoke_requested_at, next_attempt_at, revoked_at) VALUES \
             ('done', '{p}', NULL, {old}, {old}, NULL, {old}), ('due', '{p}', 'sealed', {old}, {old}, {live}, NULL), \
             ('live', '{p}', 'sealed', {live}, NULL, NULL, NULL)",
            p = provider.id
        ),
    )
    .await;
    let report = retention::run(&t.db, &Retention::default()).await.unwrap();
    assert_eq!(rows(&report, "upstream_tokens"), 1, "{report:?}");
    assert_eq!(rows(&report, "login_sessions"), 1, "{report:?}");
    for (table, id) in [
        ("upstream_tokens", "login_session_id"),
        ("login_sessions", "id"),
    ] {
        assert_eq!(
            text_value(
                &t.db,
                &format!("SELECT MAX({id}) FROM {table} WHERE {id} = $1"),
                "done"
            )
            .await,
            None,
            "{table}"
        );
        for kept in ["due", "live"] {
            assert_eq!(
                text_value(
                    &t.db,
                    &format!("SELECT {id} FROM {table} WHERE {id} = $1"),
                    kept
                )
                .await
                .as_deref(),
                Some(kept),
                "{table}: {kept}"
            );
        }
    }
    t.cleanup().await;
}
