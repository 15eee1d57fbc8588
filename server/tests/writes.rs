//! Every kind of write at once (issue 9, fault 6): sign-ins, consents, code
//! redemptions, refreshes, client_credentials tokens, revocations, logouts,
//! client, policy and user edits, concurrently, with no error and no 5xx.
//!
//! On SQLite the database is opened with a busy timeout of zero: a writer that
//! did not wait for this process's write turn (`store::BeginWrite`) would
//! collide with another and fail at once with `database is locked`, instead
//! of hiding in the busy handler's sleeps as it would in production.

mod common;

use std::time::Duration;

use app::domain::{
    admin::{self, UserChange},
    audit::Actor,
    clients::{self, ClientChange, ClientKind},
    policy::{self, PolicyChange},
    users, Db,
};
use common::{flow::*, TestDb, TestServer};
use futures_util::future::{join_all, BoxFuture, FutureExt};
use reqwest::{header, StatusCode};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_every_kind_of_write_at_once_without_error() {
    // The server's own log lines (a database error behind a 503) show with a failure.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let t = TestDb::sqlite().await;
    let strict = Db::connect_with_busy_timeout(&t.url, Duration::ZERO)
        .await
        .unwrap();
    every_kind_of_write_at_once(&t, &strict).await;
    strict.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_every_kind_of_write_at_once_without_error() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    every_kind_of_write_at_once(&t, &t.db).await;
    t.cleanup().await;
}

/// Rounds of writes; each round runs every kind at once.
const ROUNDS: usize = 6;

type Write = BoxFuture<'static, Result<(), String>>;

async fn every_kind_of_write_at_once(t: &TestDb, db: &Db) {
    let server = TestServer::start(db).await;
    let notes = app(t, "Notes", ClientKind::Confidential, &[]).await;
    let service = service(db, "Service", &[]).await;
    let admin_user = users::add_user(db, "root", PASSWORD, true).await.unwrap();
    let admin = Actor::user(&admin_user.id);
    let mut people = Vec::new();
    for i in 0..ROUNDS {
        people.push(person(t, &server, &format!("user{i}")).await);
    }
    // Others run code flows meanwhile (a sign-in in the same browser would
    // rightly void the consent page it has open).
    let mut consenting = Vec::new();
    for i in 0..ROUNDS {
        consenting.push(person(t, &server, &format!("other{i}")).await);
    }
    let mut sessions = Vec::new();
    for p in &people {
        sessions.push(tokens_for(p, &server, &notes, "openid").await);
    }

    for round in 0..ROUNDS {
        let mut writes: Vec<Write> = Vec::new();
        let p = &people[round];
        // A sign-in (login session, browser session, audit).
        writes.push(http(p.http.post(server.url("/signin")).form(&[
            ("username", p.username.as_str()),
            ("password", PASSWORD),
            ("next", "/"),
        ])));
        // A whole code flow: consent (prompt=consent), code, redemption.
        writes.push({
            let (server_url, notes, http_client) = (
                server.base.clone(),
                notes.clone(),
                consenting[round].http.clone(),
            );
            async move { code_flow(&server_url, &notes, &http_client).await }.boxed()
        });
        // Refreshes with rotation in every other session.
        for s in sessions.iter().skip(round % 2).step_by(2) {
            let rt = s["refresh_token"].as_str().unwrap_or_default().to_owned();
            writes.push(token(
                &server,
                &notes,
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            ));
        }
        // client_credentials tokens (grant on first use, audit).
        for _ in 0..3 {
            writes.push(http(
                reqwest::Client::new()
                    .post(server.url("/oauth/token"))
                    .basic_auth(&service.client_id, service.secret.as_deref())
                    .form(&[("grant_type", "client_credentials")]),
            ));
        }
        // RFC 7009 revocation of one session's access token.
        let access = sessions[round]["access_token"].as_str().unwrap().to_owned();
        writes.push(http(
            reqwest::Client::new()
                .post(server.url("/oauth/revoke"))
                .basic_auth(&notes.client_id, notes.secret.as_deref())
                .form(&[("token", access.as_str())]),
        ));
        // Dashboard sign-out of the previous round's person.
        if round > 0 {
            writes.push(http(
                people[round - 1]
                    .http
                    .post(server.url("/signout"))
                    .header(header::ORIGIN, server.base.clone()),
            ));
        }
        // Admin edits: a client, the policy, a user.
        let (db1, db2, db3, db4) = (db.clone(), db.clone(), db.clone(), db.clone());
        let (notes_id, admin1, admin2) = (notes.client_id.clone(), admin.clone(), admin.clone());
        writes.push(
            async move {
                let change = ClientChange {
                    name: Some(format!("Notes {round}")),
                    ..Default::default()
                };
                clients::update_client(&db1, &notes_id, &change, &admin1)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("update_client: {e}"))
            }
            .boxed(),
        );
        let service_id = service.client_id.clone();
        writes.push(
            async move {
                let change = PolicyChange {
                    access_ttl_secs: Some(Some(600 + round as i64)),
                    ..Default::default()
                };
                policy::set_client(&db2, &service_id, &change, None)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("set_client: {e}"))
            }
            .boxed(),
        );
        writes.push(
            async move {
                let change = PolicyChange {
                    reuse_grace_secs: Some(Some(round as i64)),
                    ..Default::default()
                };
                policy::set_defaults(&db3, &change, None)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("set_defaults: {e}"))
            }
            .boxed(),
        );
        let (revoked, user_id) = (server.revoked.clone(), people[round].user_id.clone());
        writes.push(
            async move {
                let change = UserChange {
                    disabled: None,
                    is_admin: Some(round % 2 == 0),
                };
                admin::update_user(&db4, &revoked, &user_id, change, &admin2)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("update_user: {e}"))
            }
            .boxed(),
        );
        let failures: Vec<String> = join_all(writes)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        assert!(failures.is_empty(), "round {round}: {failures:#?}");
    }
}

/// Sends a request; anything 5xx is a failure.
fn http(request: reqwest::RequestBuilder) -> Write {
    async move {
        let res = request.send().await.map_err(|e| e.to_string())?;
        if res.status().is_server_error() {
            return Err(format!(
                "{}: {}",
                res.status(),
                res.text().await.unwrap_or_default()
            ));
        }
        Ok(())
    }
    .boxed()
}

/// A token request as `app`: a refusal (a rotated token met again, say) is
/// fine, a 5xx never is.
fn token(server: &TestServer, app: &App, form: &[(&str, &str)]) -> Write {
    http(
        reqwest::Client::new()
            .post(server.url("/oauth/token"))
            .basic_auth(&app.client_id, app.secret.as_deref())
            .form(form),
    )
}

/// Consent (asked again with prompt=consent), code, redemption: no 5xx anywhere.
async fn code_flow(base: &str, app: &App, browser: &reqwest::Client) -> Result<(), String> {
    let mut params = authorize_params(app, "openid");
    params.push(("prompt", "consent".into()));
    let res = browser
        .get(format!("{base}/oauth/authorize"))
        .query(&params)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if res.status() != StatusCode::OK {
        return Err(format!("authorize: {}", res.status()));
    }
    let html = res.text().await.map_err(|e| e.to_string())?;
    let res = browser
        .post(format!("{base}/oauth/authorize"))
        .header(header::ORIGIN, base)
        .form(&[
            ("request_id", request_id(&html).as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if res.status() != StatusCode::SEE_OTHER {
        return Err(format!("consent: {}", res.status()));
    }
    let code = query_of(&location(&res))
        .get("code")
        .cloned()
        .ok_or("no code")?;
    let res = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .basic_auth(&app.client_id, app.secret.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", app.redirect_uri.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if res.status() != StatusCode::OK {
        return Err(format!("redeem: {}", res.status()));
    }
    let _: Value = res.json().await.map_err(|e| e.to_string())?;
    Ok(())
}
