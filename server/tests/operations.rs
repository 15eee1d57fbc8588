//! Operations (issue 13, item 8) on real `latchkey serve` processes and an
//! in-process server, on both backends: Prometheus metrics on their own
//! listener, liveness and readiness, and a clean shutdown on SIGTERM that
//! ends the revocation streams and deregisters the instance.

use std::time::Duration;

mod common;

use app::domain::grants::REVOCATIONS_SCOPE;
use common::{
    browser,
    flow::{cc_token, cc_token_response, revoke_by_rfc7009, service, App},
    process::{empty_site, free_port, process_db_url, start_with, Instance},
    TestDb, TestServer,
};
use reqwest::{header, StatusCode};
use serde_json::Value;

on_both_backends!(
    metrics_count_requests_tokens_revocations_and_failures,
    metrics_show_which_path_each_refresh_took,
    readiness_names_what_is_not_ready_and_liveness_does_not_care,
    sigterm_ends_streams_and_deregisters_the_instance,
);

/// The value of the series `name{labels}` in a Prometheus text exposition:
/// the line whose name is `name` and whose labels include every one of
/// `labels` (in any order). `None` when no such series exists.
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            let (series_name, rest) = match key.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (key, ""),
            };
            let all = labels
                .iter()
                .all(|(k, v)| rest.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
            (series_name == name && all).then(|| value.parse().ok())?
        })
}

/// A `latchkey serve` process on `t` with its metrics on a second address
/// (returned as `host:port`).
async fn serve_with_metrics(t: &TestDb, dir: &std::path::Path) -> (Instance, String) {
    let site = empty_site(dir);
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let server = start_with(
        free_port(),
        dir,
        &process_db_url(t),
        &site,
        None,
        &["--metrics-addr", &metrics_addr],
    )
    .await;
    (server, metrics_addr)
}

async fn metrics_count_requests_tokens_revocations_and_failures(t: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let (server, metrics_addr) = serve_with_metrics(&t, dir.path()).await;
    let job = service(&t.db, "Job", &[]).await;
    let token = cc_token(&server, &job).await;
    revoke_by_rfc7009(&server, &job, &token).await;
    let wrong = App {
        secret: Some("wrong".into()),
        ..job.clone()
    };
    assert_eq!(
        cc_token_response(&server, &wrong).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A wrong password at the sign-in form.
    let res = browser()
        .0
        .post(format!("{}/signin", server.base))
        .header(header::ORIGIN, &server.base)
        .form(&[("username", "nobody"), ("password", "guess"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    let res = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = res.text().await.unwrap();
    let get = |name: &str, labels: &[(&str, &str)]| {
        series(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert_eq!(
        get(
            "latchkey_tokens_issued_total",
            &[("grant", "client_credentials")]
        ),
        1.0
    );
    assert_eq!(get("latchkey_revoked_total", &[("kind", "jti")]), 1.0);
    assert_eq!(get("latchkey_revoked_entries", &[]), 1.0);
    // The revocation, and nothing else here, was a durable write: on disk
    // before its 200 (on SQLite, with synchronous=FULL).
    assert_eq!(get("latchkey_durable_commits_total", &[]), 1.0);
    assert_eq!(get("latchkey_sign_in_failures_total", &[]), 1.0);
    let token_route = [("route", "/oauth/token"), ("method", "POST")];
    assert_eq!(
        get(
            "latchkey_http_requests_total",
            &[token_route[0], token_route[1], ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "latchkey_http_requests_total",
            &[token_route[0], token_route[1], ("status", "401")]
        ),
        1.0
    );
    // Timed: two token requests in the histogram, none slower than +Inf.
    assert_eq!(
        get("latchkey_http_request_duration_seconds_count", &token_route),
        2.0
    );
    assert_eq!(
        get(
            "latchkey_http_request_duration_seconds_bucket",
            &[token_route[0], token_route[1], ("le", "+Inf")]
        ),
        2.0
    );
    assert_eq!(
        get("latchkey_outbox_backlog", &[("kind", "backchannel_logout")]),
        0.0
    );
    assert_eq!(get("latchkey_feed_subscribers", &[]), 0.0);
    // Routes by pattern, never by raw path: no series names a token or id.
    assert!(!text.contains(&job.client_id), "{text}");

    // The issuer's address does not serve them.
    let res = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert!(!res
        .text()
        .await
        .unwrap()
        .contains("latchkey_http_requests_total"));
    drop(server);
    t.cleanup().await;
}

async fn readiness_names_what_is_not_ready_and_liveness_does_not_care(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let ready = |server: &TestServer| {
        let url = server.url("/readyz");
        async move {
            let res = reqwest::get(url).await.unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = ready(&server).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"ready": true, "database": "ok", "signing_keys": "ok", "revocations": "ok"})
    );
    // The database goes away: not ready, and says why; still alive.
    t.db.close().await;
    let (status, body) = ready(&server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["database"], "unavailable");
    assert_eq!(body["revocations"], "stale");
    let res = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "ok");
    drop(server);
    t.cleanup().await;
}

async fn sigterm_ends_streams_and_deregisters_the_instance(t: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let site = empty_site(dir.path());
    let mut server = start_with(
        free_port(),
        dir.path(),
        &process_db_url(&t),
        &site,
        None,
        &[],
    )
    .await;
    let api = service(&t.db, "Notes API", &[REVOCATIONS_SCOPE]).await;
    let token = cc_token(&server, &api).await;
    let instances = || {
        common::text_value(
            &t.db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM instances WHERE $1 = $1",
            "-",
        )
    };
    assert_eq!(instances().await.as_deref(), Some("1"));
    // A stream open for as long as the token lives (10 minutes).
    let mut stream = reqwest::Client::new()
        .get(format!("{}/oauth/revocations/stream", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    server.signal("TERM");
    // The stream ends (keep-alives aside) and the process exits cleanly.
    // Ended cleanly by the server (the chunked body's last chunk), not cut
    // off when the process gives up waiting and exits.
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match stream.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    assert!(
        matches!(ended, Ok(Ok(()))),
        "the stream was not ended cleanly: {ended:?}"
    );
    let status = tokio::task::block_in_place(|| server.wait_for_exit());
    assert!(status.success(), "{status:?}");
    // It said goodbye: nobody waits for it as a live instance.
    assert_eq!(instances().await.as_deref(), Some("0"));
    t.cleanup().await;
}

/// The common refresh (rotation on, the current token, no `scope`) is one
/// statement; a refresh with `scope`, and a used token presented again, take
/// the full path (read, decide, write) — counted per path.
async fn metrics_show_which_path_each_refresh_took(t: TestDb) {
    use common::flow::{app, oauth_error, person, refresh, str_of, token_request, tokens_for};
    let dir = tempfile::tempdir().unwrap();
    let (server, metrics_addr) = serve_with_metrics(&t, dir.path()).await;
    let notes = app(
        &t,
        "Notes",
        app::domain::clients::ClientKind::Confidential,
        &[],
    )
    .await;
    let alice = person(&t, &server, "alice").await;
    let first = tokens_for(&alice, &server, &notes, "openid").await;
    let r1 = str_of(&first, "refresh_token");
    let res = refresh(&server, &notes, r1).await;
    assert_eq!(res.status(), StatusCode::OK);
    let second: serde_json::Value = res.json().await.unwrap();
    let r2 = str_of(&second, "refresh_token");
    let res = token_request(
        &server,
        &notes,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", r2),
            ("scope", "openid"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        oauth_error(refresh(&server, &notes, r1).await).await.1,
        "invalid_grant"
    );

    let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let get = |path: &str| {
        series(&text, "latchkey_refreshes_total", &[("path", path)])
            .unwrap_or_else(|| panic!("no {path} refreshes in\n{text}"))
    };
    assert_eq!(get("one_statement"), 1.0);
    assert_eq!(get("full"), 2.0);
    drop(server);
    t.cleanup().await;
}
