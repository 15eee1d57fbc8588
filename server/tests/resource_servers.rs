//! Resource servers as clients: the audience tokens name (RFC 9068 §3, RFC
//! 8707 `resource`), who may introspect what, and userinfo refusing tokens
//! meant for an API only. Both backends.

mod common;

use app::domain::{clients::ClientKind, resource_servers};
use common::{
    exec,
    flow::{self, cc_token_response, is_active_at, jwt_part, person, service, str_of, App},
    TestDb, TestServer,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_backends!(
    tokens_name_the_resource_servers_of_their_scopes,
    a_resource_parameter_names_the_only_audience,
    only_the_tokens_own_client_and_its_audience_may_introspect,
    a_code_survives_when_its_audience_cannot_be_read,
);

async fn register(t: &TestDb, rs: &App, audience: &str, scopes: &[&str]) {
    resource_servers::set(
        &t.db,
        &rs.client_id,
        audience,
        &scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        &Default::default(),
    )
    .await
    .unwrap();
}

async fn token_with(server: &TestServer, app: &App, form: &[(&str, &str)]) -> reqwest::Response {
    let mut all = vec![("grant_type", "client_credentials")];
    all.extend_from_slice(form);
    reqwest::Client::new()
        .post(server.url("/oauth/token"))
        .basic_auth(&app.client_id, app.secret.as_deref())
        .form(&all)
        .send()
        .await
        .unwrap()
}

async fn userinfo_status(server: &TestServer, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(server.url("/oauth/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn tokens_name_the_resource_servers_of_their_scopes(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes_api = service(&t.db, "Notes API", &[]).await;
    let photos_api = service(&t.db, "Photos API", &[]).await;
    register(&t, &notes_api, "https://notes.example", &["notes:read"]).await;
    register(&t, &photos_api, "https://photos.example", &["photos:read"]).await;
    let app = flow::app(
        &t,
        "Notes",
        ClientKind::Confidential,
        &["notes:read", "photos:read"],
    )
    .await;
    let alice = person(&t, &server, "alice").await;

    let aud = |tokens: &Value| jwt_part(str_of(tokens, "access_token"), 1)["aud"].clone();
    // Only Latchkey's own scopes: Latchkey's own endpoints.
    let only_openid = flow::tokens_for(&alice, &server, &app, "openid").await;
    assert_eq!(aud(&only_openid), json!(server.base));
    // An API's scope only: that API, and userinfo refuses it.
    let api_only = flow::tokens_for(&alice, &server, &app, "notes:read").await;
    assert_eq!(aud(&api_only), json!("https://notes.example"));
    assert_eq!(
        userinfo_status(&server, str_of(&api_only, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    // Both APIs and OpenID: every one of them.
    let all = flow::tokens_for(&alice, &server, &app, "openid notes:read photos:read").await;
    assert_eq!(
        aud(&all),
        json!([
            "https://notes.example",
            "https://photos.example",
            server.base
        ])
    );
    assert_eq!(
        userinfo_status(&server, str_of(&all, "access_token")).await,
        StatusCode::OK
    );
    // A refresh keeps computing it from the (possibly narrowed) scope.
    let res = flow::refresh(&server, &app, str_of(&all, "refresh_token")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let refreshed: Value = res.json().await.unwrap();
    assert_eq!(aud(&refreshed), aud(&all));
    // A registration change applies to the next token at once.
    resource_servers::remove(&t.db, &photos_api.client_id, &Default::default())
        .await
        .unwrap();
    let res = flow::refresh(&server, &app, str_of(&refreshed, "refresh_token")).await;
    let again: Value = res.json().await.unwrap();
    assert_eq!(aud(&again), json!(["https://notes.example", server.base]));
    t.cleanup().await;
}

async fn a_resource_parameter_names_the_only_audience(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes_api = service(&t.db, "Notes API", &[]).await;
    register(&t, &notes_api, "https://notes.example", &["notes:read"]).await;
    let job = service(&t.db, "Job", &["notes:read", "reports:read"]).await;
    let res = token_with(&server, &job, &[("resource", "https://notes.example")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        jwt_part(str_of(&body, "access_token"), 1)["aud"],
        "https://notes.example"
    );
    // Not a registered resource server: invalid_target (RFC 8707 §2).
    let res = token_with(&server, &job, &[("resource", "https://evil.example")]).await;
    assert_eq!(
        flow::oauth_error(res).await,
        (StatusCode::BAD_REQUEST, "invalid_target".into())
    );
    // Checked before a code is used: the code still works afterwards.
    let app = flow::app(&t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let alice = person(&t, &server, "alice").await;
    let code = flow::code_for(&alice, &server, &app, "notes:read").await;
    let redeem = |resource: &'static str| {
        let (server, app, code) = (&server, &app, code.clone());
        async move {
            flow::token_request(
                server,
                app,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &app.redirect_uri),
                    ("code_verifier", flow::VERIFIER),
                    ("resource", resource),
                ],
            )
            .await
        }
    };
    let res = redeem("https://evil.example").await;
    assert_eq!(flow::oauth_error(res).await.1, "invalid_target");
    let res = redeem("https://notes.example").await;
    assert_eq!(res.status(), StatusCode::OK);
    // Without one, a scope no server serves adds the issuer.
    let res = cc_token_response(&server, &job).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        jwt_part(str_of(&body, "access_token"), 1)["aud"],
        json!(["https://notes.example", server.base])
    );
    t.cleanup().await;
}

async fn only_the_tokens_own_client_and_its_audience_may_introspect(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes_api = service(&t.db, "Notes API", &[]).await;
    let photos_api = service(&t.db, "Photos API", &[]).await;
    register(&t, &notes_api, "https://notes.example", &["notes:read"]).await;
    register(&t, &photos_api, "https://photos.example", &["photos:read"]).await;
    let app = flow::app(&t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let backend = service(&t.db, "A client_credentials app", &[]).await;
    let alice = person(&t, &server, "alice").await;
    let tokens = flow::tokens_for(&alice, &server, &app, "openid notes:read").await;
    let access = str_of(&tokens, "access_token");
    assert!(
        is_active_at(&server, &notes_api, access).await,
        "its audience"
    );
    assert!(is_active_at(&server, &app, access).await, "its own client");
    // Another resource server, or any other confidential client, learns nothing.
    assert!(!is_active_at(&server, &photos_api, access).await);
    assert!(!is_active_at(&server, &backend, access).await);
    // Nor the refresh token, which only its own client may introspect.
    let refresh = str_of(&tokens, "refresh_token");
    assert!(is_active_at(&server, &app, refresh).await);
    assert!(!is_active_at(&server, &notes_api, refresh).await);
    // No longer a resource server: no longer told (each instance re-reads
    // the registrations within a second).
    resource_servers::remove(&t.db, &notes_api.client_id, &Default::default())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while is_active_at(&server, &notes_api, access).await {
        assert!(
            std::time::Instant::now() < deadline,
            "still told after the registration went"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        is_active_at(&server, &app, access).await,
        "its own client still is"
    );
    t.cleanup().await;
}

/// A code whose access token's audience cannot be decided — the resource
/// servers cannot be read (here: their table renamed away) — is answered 503
/// and stays unredeemed, so the app's retry gets its tokens. Before, the
/// code was consumed and its family created first and the audience read
/// after: the 503 came too late, and the retry was a replayed code, which
/// revoked the family.
async fn a_code_survives_when_its_audience_cannot_be_read(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes_api = service(&t.db, "Notes API", &[]).await;
    register(&t, &notes_api, "https://notes.example", &["notes:read"]).await;
    let app = flow::app(&t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let alice = person(&t, &server, "alice").await;
    let code = flow::code_for(&alice, &server, &app, "openid notes:read").await;

    exec(
        &t.db,
        "ALTER TABLE resource_servers RENAME TO resource_servers_away",
    )
    .await;
    // What this process remembers of them is read again at the next use.
    app::domain::clients::registration_changed();
    let res = flow::redeem(&server, &app, &code).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (_, error) = flow::oauth_error(res).await;
    assert_eq!(error, "temporarily_unavailable");

    exec(
        &t.db,
        "ALTER TABLE resource_servers_away RENAME TO resource_servers",
    )
    .await;
    let res = flow::redeem(&server, &app, &code).await;
    assert_eq!(res.status(), StatusCode::OK, "the retry redeems the code");
    let tokens: Value = res.json().await.unwrap();
    let access = str_of(&tokens, "access_token");
    assert_eq!(
        jwt_part(access, 1)["aud"],
        json!(["https://notes.example", server.base])
    );
    assert!(flow::is_active_at(&server, &notes_api, access).await);
    let res = flow::refresh(&server, &app, str_of(&tokens, "refresh_token")).await;
    assert_eq!(res.status(), StatusCode::OK, "its family is live");
    t.cleanup().await;
}
