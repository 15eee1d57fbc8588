//! Several real Latchkey processes on one database, as operators run them
//! (issue 11, item 3): a revocation or a change acknowledged by one instance
//! holds at every other from the next request on — not eventually. Three
//! `latchkey serve` processes share a PostgreSQL schema or a SQLite file.

use std::time::Duration;

mod common;

use app::domain::{audit::Actor, clients};
use common::{
    exec,
    flow::{cc_token, cc_token_response, is_active, is_active_at, revoke_by_rfc7009, service},
    process::{cli, empty_site, process_db_url, start, Instance},
    TestDb,
};
use reqwest::StatusCode;

on_both_backends!(
    a_revocation_acknowledged_at_one_instance_holds_at_every_other_at_once,
    a_frozen_instance_refuses_tokens_until_it_read_the_log,
    registration_and_key_changes_hold_everywhere_once_acknowledged,
    refresh_policy_edits_hold_everywhere_once_acknowledged,
);

/// Three instances on `t`, A first (it alone creates the signing keys), B
/// and C sharing A's issuer.
async fn three(t: &TestDb, dir: &std::path::Path) -> (Instance, Instance, Instance) {
    let site = empty_site(dir);
    let url = process_db_url(t);
    let a = start(dir, &url, &site, None).await;
    let b = start(dir, &url, &site, Some(&a.base)).await;
    let c = start(dir, &url, &site, Some(&a.base)).await;
    (a, b, c)
}

/// Every instance refuses the client's credentials (401).
async fn all_refuse(instances: &[&Instance], job: &common::flow::App, what: &str) {
    for i in instances {
        assert_eq!(
            cc_token_response(*i, job).await.status(),
            StatusCode::UNAUTHORIZED,
            "{}: {what} is refused",
            i.base
        );
    }
}

async fn a_revocation_acknowledged_at_one_instance_holds_at_every_other_at_once(t: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let job = service(&t.db, "Job", &[]).await;
    let (a, b, c) = three(&t, dir.path()).await;
    for round in 0..40 {
        let access = cc_token(&a, &job).await;
        assert!(
            is_active(&b, &job, &access).await,
            "round {round}: live at B"
        );
        assert!(
            is_active(&c, &job, &access).await,
            "round {round}: live at C"
        );
        // On PostgreSQL, cut every LISTEN connection first: B and C must
        // still apply the revocation before A acknowledges it (they poll).
        if t.schema().is_some() {
            exec(
                &t.db,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
            )
            .await;
        }
        revoke_by_rfc7009(&a, &job, &access).await;
        // No waiting, no retry: the 200 meant every instance knows.
        assert!(!is_active(&b, &job, &access).await, "round {round}: B");
        assert!(!is_active(&c, &job, &access).await, "round {round}: C");
    }
    drop((a, b, c));
    t.cleanup().await;
}

async fn a_frozen_instance_refuses_tokens_until_it_read_the_log(t: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let job = service(&t.db, "Job", &[]).await;
    let (a, b, _c) = three(&t, dir.path()).await;
    let ready = |i: &Instance| {
        let url = format!("{}/readyz", i.base);
        async move { reqwest::get(url).await.unwrap().status() }
    };

    // B is frozen while A revokes: A acknowledges after the bound, and B,
    // woken, refuses the token from its first request on.
    let revoked = cc_token(&a, &job).await;
    assert!(is_active(&b, &job, &revoked).await);
    b.signal("STOP");
    revoke_by_rfc7009(&a, &job, &revoked).await;
    b.signal("CONT");
    assert!(!is_active(&b, &job, &revoked).await, "B read the log first");

    // B cannot read the log (the table is gone for a moment): stale, it
    // refuses even a live token and says it is not ready.
    let live = cc_token(&a, &job).await;
    assert!(is_active(&b, &job, &live).await);
    assert_eq!(ready(&b).await, StatusCode::OK);
    b.signal("STOP");
    exec(
        &t.db,
        "ALTER TABLE revocation_log_head RENAME TO revocation_log_head_away",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    b.signal("CONT");
    assert!(
        !is_active(&b, &job, &live).await,
        "a stale instance fails closed"
    );
    assert_eq!(ready(&b).await, StatusCode::SERVICE_UNAVAILABLE);
    exec(
        &t.db,
        "ALTER TABLE revocation_log_head_away RENAME TO revocation_log_head",
    )
    .await;
    assert!(
        is_active(&b, &job, &live).await,
        "caught up, it answers again"
    );
    assert_eq!(ready(&b).await, StatusCode::OK);
    drop((a, b, _c));
    t.cleanup().await;
}

async fn registration_and_key_changes_hold_everywhere_once_acknowledged(t: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let job = service(&t.db, "Job", &["notes:read"]).await;
    let rs = service(&t.db, "Notes API", &[]).await;
    let (a, b, c) = three(&t, dir.path()).await;
    // Warm every instance's client cache with the current secret.
    for i in [&a, &b, &c] {
        assert_eq!(cc_token_response(i, &job).await.status(), StatusCode::OK);
    }

    // A new secret (as the CLI, the console or the admin API rotate it):
    // once it returned, no instance takes the old one.
    let new_secret = clients::rotate_secret(&t.db, &job.client_id, &Actor::default())
        .await
        .unwrap();
    all_refuse(&[&a, &b, &c], &job, "the old secret").await;
    let job = common::flow::App {
        secret: Some(new_secret.0),
        ..job
    };

    // A new resource server for the job's API scope: every instance lets it
    // introspect the tokens meant for it at once (B had read the
    // registrations before, without it).
    let scoped = |i: &Instance| {
        let (url, job) = (format!("{}/oauth/token", i.base), job.clone());
        async move {
            let res = reqwest::Client::new()
                .post(url)
                .basic_auth(&job.client_id, job.secret.as_deref())
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", "notes:read"),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let body: serde_json::Value = res.json().await.unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let before = scoped(&a).await;
    assert!(!is_active_at(&b, &rs, &before).await);
    let audience = format!("{}/notes", a.base);
    let notes_read = vec!["notes:read".to_owned()];
    app::domain::resource_servers::set(
        &t.db,
        &rs.client_id,
        &audience,
        &notes_read,
        &Actor::default(),
    )
    .await
    .unwrap();
    let after = scoped(&a).await;
    for i in [&a, &b, &c] {
        assert!(
            is_active_at(i, &rs, &after).await,
            "{}: the resource server introspects",
            i.base
        );
    }

    // Keys rotated by the CLI: tokens signed with the new keys verify at
    // every instance as soon as the command returned.
    cli(dir.path(), &process_db_url(&t), &["keys", "rotate"]);
    for issuer in [&a, &b, &c] {
        let fresh = cc_token(issuer, &job).await;
        for other in [&a, &b, &c] {
            assert!(
                is_active(other, &job, &fresh).await,
                "a token of {} verifies at {}",
                issuer.base,
                other.base
            );
        }
    }

    // A policy edit (every instance remembers the client's access-token
    // lifetime for client_credentials): the very next token everywhere
    // carries the new one.
    app::domain::policy::set_client(
        &t.db,
        &job.client_id,
        &app::domain::policy::PolicyChange {
            access_ttl_secs: Some(Some(300)),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    for i in [&a, &b, &c] {
        let claims = common::flow::jwt_part(&cc_token(i, &job).await, 1);
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            300,
            "{}: the new lifetime",
            i.base
        );
    }

    // Deleted: no instance issues to the client any more.
    clients::mark_deleted(
        &t.db,
        &job.client_id,
        &Actor::default(),
        serde_json::json!({}),
    )
    .await
    .unwrap();
    all_refuse(&[&a, &b, &c], &job, "a deleted client").await;
    drop((a, b, c));
    t.cleanup().await;
}

/// Every instance remembers a client's policy for refreshes (the one-statement
/// rotation reads none): an edit acknowledged once holds at every instance
/// from the next refresh on — rotation switched off, then refresh itself.
async fn refresh_policy_edits_hold_everywhere_once_acknowledged(t: TestDb) {
    use app::domain::policy::{self, PolicyChange};
    use common::flow::{oauth_error, person, refresh, str_of, tokens_for};
    let dir = tempfile::tempdir().unwrap();
    let app = common::flow::app(&t, "Notes", clients::ClientKind::Confidential, &[]).await;
    let (a, b, c) = three(&t, dir.path()).await;
    let alice = person(&t, &a, "alice").await;
    let mut token = str_of(
        &tokens_for(&alice, &a, &app, "openid").await,
        "refresh_token",
    )
    .to_owned();
    // Each instance rotates once: each now remembers the client's policy.
    for i in [&a, &b, &c, &a, &b, &c] {
        let res = refresh(i, &app, &token).await;
        assert_eq!(res.status(), StatusCode::OK, "{}", i.base);
        let body: serde_json::Value = res.json().await.unwrap();
        token = str_of(&body, "refresh_token").to_owned();
    }
    let set = |change: PolicyChange| {
        let (db, id) = (t.db.clone(), app.client_id.clone());
        async move { policy::set_client(&db, &id, &change, None).await.unwrap() }
    };
    // Refresh switched off while rotation is on (what the one-statement
    // path would otherwise do from a stale memory).
    set(PolicyChange {
        refresh_enabled: Some(Some(false)),
        ..Default::default()
    })
    .await;
    for i in [&a, &b, &c] {
        let (status, error) = oauth_error(refresh(i, &app, &token).await).await;
        assert_eq!(
            (status, error.as_str()),
            (StatusCode::BAD_REQUEST, "unauthorized_client"),
            "{}: refresh is off",
            i.base
        );
    }
    // On again, with rotation off: the client keeps its token everywhere.
    set(PolicyChange {
        refresh_enabled: Some(None),
        rotate_refresh: Some(Some(false)),
        ..Default::default()
    })
    .await;
    for i in [&a, &b, &c] {
        let res = refresh(i, &app, &token).await;
        assert_eq!(res.status(), StatusCode::OK, "{}", i.base);
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(
            body.get("refresh_token").is_none(),
            "{}: rotation is off, the client keeps its token: {body}",
            i.base
        );
    }
    drop((a, b, c));
    t.cleanup().await;
}
