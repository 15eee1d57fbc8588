//! Request limits (issue 13, item 2) over real HTTP, on both backends: per
//! client address at every machine-facing endpoint, per authenticated
//! confidential client, 401s costing more, 429 with `Retry-After` in each
//! endpoint's error shape, and the browser's pages untouched.

mod common;

use std::num::NonZeroU32;

use app::domain::grants::ADMIN_SCOPE;
use common::{
    flow::{cc_token, cc_token_response, get_bearer, service, App},
    TestDb, TestServer,
};
use latchkey::rate_limit::{Config, Rate};
use reqwest::{header, StatusCode};
use serde_json::Value;

on_both_backends!(
    an_address_over_its_limit_is_refused_at_every_limited_endpoint,
    failed_client_authentication_costs_more_than_success,
    a_bad_token_at_userinfo_costs_one_not_ten,
    a_client_over_its_limit_is_refused_and_the_others_are_not,
    wrong_secrets_for_a_client_do_not_use_up_its_allowance,
    the_admin_api_limits_its_callers_in_its_own_shape,
);

fn limits(per_ip: &str, per_client: &str, failure_cost: u32) -> Config {
    Config {
        per_ip: Rate::parse(per_ip).unwrap(),
        per_client: Rate::parse(per_client).unwrap(),
        failure_cost: NonZeroU32::new(failure_cost).unwrap(),
    }
}

/// A 429 with `Retry-After` (whole seconds, at least 1), never cached, and its JSON body.
async fn too_many(res: reqwest::Response, what: &str) -> Value {
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{what}");
    let retry_after: u64 = res
        .headers()
        .get(header::RETRY_AFTER)
        .unwrap_or_else(|| panic!("{what}: no Retry-After"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{what}: {retry_after}");
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store", "{what}");
    res.json().await.unwrap_or(Value::Null)
}

/// RFC 6749 §5.2 shape.
fn assert_oauth_429(body: &Value, what: &str) {
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("too many requests")),
        "{what}: {body}"
    );
}

/// `n` client_credentials requests of `app`, each answered `status`.
async fn token_requests(server: &TestServer, app: &App, n: usize, status: StatusCode) {
    for i in 0..n {
        assert_eq!(
            cc_token_response(server, app).await.status(),
            status,
            "request {i}"
        );
    }
}

/// A GET of `path` with a bearer token that is no token: 401.
async fn refused_bearer(server: &TestServer, path: &str) {
    let res = get_bearer(server, path, "not-a-token").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
}

async fn post_form(
    server: &TestServer,
    path: &str,
    app: &App,
    form: &[(&str, &str)],
) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url(path))
        .basic_auth(&app.client_id, app.secret.as_deref())
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn an_address_over_its_limit_is_refused_at_every_limited_endpoint(t: TestDb) {
    let server = TestServer::start_with_rate_limits(&t.db, limits("4/min", "off", 1)).await;
    let app = service(&t.db, "Reports", &[]).await;
    let token = cc_token(&server, &app).await;
    // Three more of the four: introspection, revocation, a token.
    let res = post_form(&server, "/oauth/introspect", &app, &[("token", &token)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = post_form(&server, "/oauth/revoke", &app, &[("token", "unknown")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        cc_token_response(&server, &app).await.status(),
        StatusCode::OK
    );

    let body = too_many(cc_token_response(&server, &app).await, "token").await;
    assert_oauth_429(&body, "token");
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let body = too_many(
            post_form(&server, path, &app, &[("token", &token)]).await,
            path,
        )
        .await;
        assert_oauth_429(&body, path);
    }
    let http = reqwest::Client::new();
    let body = too_many(
        http.get(server.url("/oauth/userinfo"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        "userinfo",
    )
    .await;
    assert_oauth_429(&body, "userinfo");
    let body = too_many(
        http.get(server.url("/api/admin/clients"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        "admin API",
    )
    .await;
    assert_eq!(body["error"], "rate_limited", "{body}");
    // The browser's upstream callback: a page in words.
    let res = http
        .get(server.url("/signin/upstream/callback?state=x&code=y"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key(header::RETRY_AFTER));
    let page = res.text().await.unwrap();
    assert!(page.contains("Try again in"), "{page}");
    // Pages, discovery and keys are not limited.
    for path in [
        "/signin",
        "/.well-known/openid-configuration",
        "/oauth/jwks",
    ] {
        let res = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    // The refused revocation revoked nothing.
    assert_eq!(common::count(&t.db, "revoked_access_tokens").await, 0);
}

async fn failed_client_authentication_costs_more_than_success(t: TestDb) {
    let server = TestServer::start_with_rate_limits(&t.db, limits("20/min", "off", 8)).await;
    let app = service(&t.db, "Reports", &[]).await;
    let wrong = App {
        secret: Some("not the secret".into()),
        ..app.clone()
    };
    // Two failures cost 16 of 20.
    token_requests(&server, &wrong, 2, StatusCode::UNAUTHORIZED).await;
    token_requests(&server, &app, 4, StatusCode::OK).await;
    let body = too_many(cc_token_response(&server, &app).await, "after failures").await;
    assert_oauth_429(&body, "after failures");
}

/// Only a failed authentication of the caller itself costs more: an app
/// presenting a person's revoked or expired token at userinfo is not guessing.
async fn a_bad_token_at_userinfo_costs_one_not_ten(t: TestDb) {
    let server = TestServer::start_with_rate_limits(&t.db, limits("5/min", "off", 10)).await;
    let app = service(&t.db, "Reports", &[]).await;
    for _ in 0..2 {
        refused_bearer(&server, "/oauth/userinfo").await;
    }
    token_requests(&server, &app, 3, StatusCode::OK).await;
    too_many(cc_token_response(&server, &app).await, "sixth").await;
}

async fn a_client_over_its_limit_is_refused_and_the_others_are_not(t: TestDb) {
    let server = TestServer::start_with_rate_limits(&t.db, limits("off", "3/min", 10)).await;
    let busy = service(&t.db, "Busy", &[]).await;
    let calm = service(&t.db, "Calm", &[]).await;
    let token = cc_token(&server, &busy).await;
    assert_eq!(
        cc_token_response(&server, &busy).await.status(),
        StatusCode::OK
    );
    let res = post_form(&server, "/oauth/introspect", &busy, &[("token", &token)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The fourth request of the client, whichever endpoint.
    for path in ["/oauth/token", "/oauth/introspect", "/oauth/revoke"] {
        let form: &[(&str, &str)] = if path == "/oauth/token" {
            &[("grant_type", "client_credentials")]
        } else {
            &[("token", &token)]
        };
        let body = too_many(post_form(&server, path, &busy, form).await, path).await;
        assert_oauth_429(&body, path);
    }
    // Another client is not affected; the refused revocation revoked nothing.
    cc_token(&server, &calm).await;
    assert_eq!(common::count(&t.db, "revoked_access_tokens").await, 0);
}

async fn wrong_secrets_for_a_client_do_not_use_up_its_allowance(t: TestDb) {
    let server = TestServer::start_with_rate_limits(&t.db, limits("off", "3/min", 10)).await;
    let app = service(&t.db, "Target", &[]).await;
    let attacker = App {
        secret: Some("guess".into()),
        ..app.clone()
    };
    token_requests(&server, &attacker, 10, StatusCode::UNAUTHORIZED).await;
    token_requests(&server, &app, 3, StatusCode::OK).await;
    too_many(cc_token_response(&server, &app).await, "fourth").await;
}

async fn the_admin_api_limits_its_callers_in_its_own_shape(t: TestDb) {
    // Per client: the token request is one, two API calls, then refused.
    let server = TestServer::start_with_rate_limits(&t.db, limits("off", "3/min", 10)).await;
    let admin = service(&t.db, "Ops robot", &[ADMIN_SCOPE]).await;
    let token = cc_token(&server, &admin).await;
    let get = || get_bearer(&server, "/api/admin/clients", &token);
    for i in 0..2 {
        assert_eq!(get().await.status(), StatusCode::OK, "call {i}");
    }
    let body = too_many(get().await, "admin API per client").await;
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(body["message"].as_str().unwrap().contains("try again in"));

    // Per address: bad tokens cost more.
    let server = TestServer::start_with_rate_limits(&t.db, limits("12/min", "off", 5)).await;
    for _ in 0..2 {
        refused_bearer(&server, "/api/admin/clients").await;
    }
    let token = cc_token(&server, &admin).await;
    let ok = get_bearer(&server, "/api/admin/clients", &token).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let body = too_many(
        get_bearer(&server, "/api/admin/clients", &token).await,
        "admin API per address",
    )
    .await;
    assert_eq!(body["error"], "rate_limited", "{body}");
}
