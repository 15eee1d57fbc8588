//! The protocol endpoints over real HTTP, on both backends: discovery, JWKS,
//! client authentication, client_credentials, introspection, RFC 7009
//! revocation, policy read at use time, revocations surviving a restart.

mod common;

use app::domain::{
    clients::{self, ClientKind, NewClient},
    policy::{self, PolicyChange},
    resource_servers, Db,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use common::{
    count, exec,
    flow::{oauth_error, service},
    TestDb, TestServer,
};
use reqwest::{header, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    discovery_names_every_endpoint_and_jwks_serves_the_keys,
    client_credentials_issues_an_rfc9068_access_token,
    client_authentication_failures_are_401_invalid_client,
    malformed_token_requests_are_invalid_request,
    scope_can_narrow_but_never_widen,
    grant_types_are_enforced_per_client,
    introspection_is_for_confidential_clients_and_fails_closed,
    revocation_ends_the_token_at_once_and_survives_a_restart,
    another_clients_token_is_not_revoked,
    forged_tokens_are_inactive,
    access_ttl_is_read_from_policy_at_use_time,
    revocation_answers_503_when_the_database_is_down,
    token_errors_keep_their_rfc6749_codes,
);

struct Api {
    client_id: String,
    secret: String,
}

async fn api_client(t: &TestDb, name: &str, scopes: &[&str]) -> Api {
    let app = service(&t.db, name, scopes).await;
    Api {
        client_id: app.client_id,
        secret: app.secret.expect("a confidential client"),
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn token(server: &TestServer, api: &Api, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    http()
        .post(server.url("/oauth/token"))
        .basic_auth(&api.client_id, Some(&api.secret))
        .form(&form)
        .send()
        .await
        .unwrap()
}

async fn access_token(server: &TestServer, api: &Api) -> String {
    let res = token(server, api, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn introspect(server: &TestServer, by: &Api, token: &str) -> Value {
    let res = http()
        .post(server.url("/oauth/introspect"))
        .basic_auth(&by.client_id, Some(&by.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn revoke(server: &TestServer, by: &Api, token: &str, hint: &str) -> reqwest::Response {
    http()
        .post(server.url("/oauth/revoke"))
        .basic_auth(&by.client_id, Some(&by.secret))
        .form(&[("token", token), ("token_type_hint", hint)])
        .send()
        .await
        .unwrap()
}

fn jwt_part(token: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

async fn discovery_names_every_endpoint_and_jwks_serves_the_keys(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let meta: Value = http()
            .get(server.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(meta["issuer"], server.base);
        for (field, endpoint) in [
            ("authorization_endpoint", "/oauth/authorize"),
            ("token_endpoint", "/oauth/token"),
            ("userinfo_endpoint", "/oauth/userinfo"),
            ("jwks_uri", "/oauth/jwks"),
            ("revocation_endpoint", "/oauth/revoke"),
            ("introspection_endpoint", "/oauth/introspect"),
            ("end_session_endpoint", "/oauth/logout"),
        ] {
            assert_eq!(meta[field], format!("{}{endpoint}", server.base), "{field}");
        }
        assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            meta["id_token_signing_alg_values_supported"],
            json!(["RS256"])
        );
    }
    let jwks: Value = http()
        .get(server.url("/oauth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let mut algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    algs.sort();
    assert_eq!(algs, ["EdDSA", "RS256"]);
    assert!(keys
        .iter()
        .all(|k| k.get("d").is_none() && k["kid"].is_string()));
    t.cleanup().await;
}

async fn client_credentials_issues_an_rfc9068_access_token(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let api = api_client(&t, "Reports", &["reports:read", "reports:write"]).await;
    let res = token(&server, &api, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600, "the default access TTL");
    assert_eq!(body["scope"], "reports:read reports:write");
    assert!(
        body.get("refresh_token").is_none(),
        "never a refresh token for client_credentials"
    );
    let jwt = body["access_token"].as_str().unwrap();
    let header = jwt_part(jwt, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    let jwks: Value = http()
        .get(server.url("/oauth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == header["kid"]));
    let claims = jwt_part(jwt, 1);
    assert_eq!(claims["iss"], server.base);
    assert_eq!(claims["sub"], api.client_id);
    assert_eq!(claims["client_id"], api.client_id);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    assert!(claims["jti"].as_str().unwrap().len() >= 16);
    // Counted per client and minute (written within a second), not an
    // audit row per token.
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'token_issued'").await,
        0
    );
    common::eventually_text(
        &t.db,
        "SELECT CAST(SUM(n) AS TEXT) FROM usage_counts WHERE client_id = $1 AND kind = 'token_issued'",
        &api.client_id,
        "1",
        "the issuance is counted",
    )
    .await;
    // client_secret_post works as well.
    let res = http()
        .post(server.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &api.client_id),
            ("client_secret", &api.secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    t.cleanup().await;
}

async fn client_authentication_failures_are_401_invalid_client(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let api = api_client(&t, "Reports", &[]).await;
    let wrong = Api {
        client_id: api.client_id.clone(),
        secret: "not-the-secret".into(),
    };
    let res = token(&server, &wrong, &[]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    // Wrong secret in the body: 401 without a Basic challenge.
    let res = http()
        .post(server.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &api.client_id),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
    // A confidential client presenting no secret, an unknown client: the same answer.
    for form in [
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", api.client_id.as_str()),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
        ],
    ] {
        let res = http()
            .post(server.url("/oauth/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"],
            "invalid_client"
        );
    }
    // Basic and client_secret at once: invalid_request.
    let res = http()
        .post(server.url("/oauth/token"))
        .basic_auth(&api.client_id, Some(&api.secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", &api.secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    t.cleanup().await;
}

async fn malformed_token_requests_are_invalid_request(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let api = api_client(&t, "Reports", &[]).await;
    let send = |content_type: &'static str, body: String| {
        http()
            .post(server.url("/oauth/token"))
            .basic_auth(&api.client_id, Some(&api.secret))
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
    };
    let cases = [
        (
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials&grant_type=client_credentials".to_string(),
            "repeated",
        ),
        (
            "application/json",
            r#"{"grant_type":"client_credentials"}"#.to_string(),
            "x-www-form-urlencoded",
        ),
        (
            "application/x-www-form-urlencoded",
            format!(
                "grant_type=client_credentials&pad={}",
                "a".repeat(70 * 1024)
            ),
            "body",
        ),
        (
            "application/x-www-form-urlencoded",
            "scope=x".to_string(),
            "grant_type",
        ),
    ];
    for (content_type, body, needle) in cases {
        let res = send(content_type, body).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{needle}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"], "invalid_request", "{needle}");
        assert!(
            err["error_description"].as_str().unwrap().contains(needle),
            "{err}"
        );
    }
    let res = send(
        "application/x-www-form-urlencoded",
        "grant_type=password".into(),
    )
    .await
    .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    t.cleanup().await;
}

async fn scope_can_narrow_but_never_widen(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let api = api_client(&t, "Reports", &["a", "b"]).await;
    let res = token(&server, &api, &[("scope", "b")]).await;
    assert_eq!(res.json::<Value>().await.unwrap()["scope"], "b");
    let res = token(&server, &api, &[("scope", "a c")]).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_scope");
    t.cleanup().await;
}

async fn grant_types_are_enforced_per_client(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let (web, secret) = clients::add_client(
        &t.db,
        &NewClient {
            name: "Web".into(),
            kind: ClientKind::Confidential,
            redirect_uris: vec!["https://web.example/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec![],
            extra_scopes: vec![],
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            metadata: Default::default(),
        },
    )
    .await
    .unwrap();
    let web = Api {
        client_id: web.client_id,
        secret: secret.unwrap().0,
    };
    let res = token(&server, &web, &[]).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    t.cleanup().await;
}

async fn introspection_is_for_confidential_clients_and_fails_closed(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let api = api_client(&t, "Reports", &["r"]).await;
    let rs = api_client(&t, "Resource server", &[]).await;
    let nosy = api_client(&t, "Nosy", &[]).await;
    // Registered as serving "r": tokens carrying it name its audience.
    resource_servers::set(
        &t.db,
        &rs.client_id,
        "https://rs.example",
        &["r".into()],
        &Default::default(),
    )
    .await
    .unwrap();
    let jwt = access_token(&server, &api).await;
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["aud"], "https://rs.example",
        "the one audience, as a string"
    );
    // Any other confidential client is told nothing, the token's own client all.
    assert_eq!(
        introspect(&server, &nosy, &jwt).await,
        json!({ "active": false })
    );
    assert_eq!(introspect(&server, &api, &jwt).await["active"], true);
    let live = introspect(&server, &rs, &jwt).await;
    assert_eq!(live["active"], true);
    assert_eq!(live["aud"], "https://rs.example");
    assert_eq!(live["client_id"], api.client_id);
    assert_eq!(live["sub"], api.client_id);
    assert_eq!(live["scope"], "r");
    assert_eq!(live["iss"], server.base);
    assert_eq!(live["token_type"], "access_token");
    for field in ["exp", "iat", "jti", "aud"] {
        assert!(live.get(field).is_some(), "{field}");
    }
    for junk in ["", "not-a-token", "a.b.c", &jwt[..jwt.len() - 3]] {
        let res = http()
            .post(server.url("/oauth/introspect"))
            .basic_auth(&rs.client_id, Some(&rs.secret))
            .form(&[("token", junk)])
            .send()
            .await
            .unwrap();
        if junk.is_empty() {
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        } else {
            assert_eq!(
                res.json::<Value>().await.unwrap(),
                json!({ "active": false }),
                "{junk}"
            );
        }
    }
    // A public client may not introspect.
    let (public, _) = clients::add_client(
        &t.db,
        &NewClient {
            name: "SPA".into(),
            kind: ClientKind::Public,
            redirect_uris: vec!["https://spa.example/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec![],
            extra_scopes: vec![],
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            metadata: Default::default(),
        },
    )
    .await
    .unwrap();
    let res = http()
        .post(server.url("/oauth/introspect"))
        .form(&[("token", jwt.as_str()), ("client_id", &public.client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    t.cleanup().await;
}

async fn revocation_ends_the_token_at_once_and_survives_a_restart(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let api = api_client(&t, "Reports", &[]).await;
    let jwt = access_token(&server, &api).await;
    let other = access_token(&server, &api).await;
    // A wrong hint still works (RFC 7009 §2.1).
    let res = revoke(&server, &api, &jwt, "refresh_token").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(
        introspect(&server, &api, &jwt).await,
        json!({ "active": false })
    );
    assert_eq!(
        introspect(&server, &api, &other).await["active"],
        true,
        "only that token"
    );
    assert_eq!(count(&t.db, "revoked_access_tokens").await, 1);
    assert_eq!(count(&t.db, "audit_events WHERE kind = 'revoked'").await, 1);
    // Revoking again, or an unknown token: 200 and nothing new.
    assert_eq!(
        revoke(&server, &api, &jwt, "access_token").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        revoke(&server, &api, "garbage", "access_token")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(count(&t.db, "audit_events WHERE kind = 'revoked'").await, 1);
    // A new server process loads the revocation from the database.
    let issuer = server.base.clone();
    drop(server);
    let restarted = TestServer::start_with_issuer(&t.db, Some(&issuer)).await;
    assert_eq!(
        introspect(&restarted, &api, &jwt).await,
        json!({ "active": false })
    );
    assert_eq!(introspect(&restarted, &api, &other).await["active"], true);
    t.cleanup().await;
}

async fn another_clients_token_is_not_revoked(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let owner = api_client(&t, "Owner", &[]).await;
    let stranger = api_client(&t, "Stranger", &[]).await;
    let jwt = access_token(&server, &owner).await;
    let res = revoke(&server, &stranger, &jwt, "access_token").await;
    assert_eq!(res.status(), StatusCode::OK, "no token probing");
    assert_eq!(introspect(&server, &owner, &jwt).await["active"], true);
    assert_eq!(count(&t.db, "revoked_access_tokens").await, 0);
    // Bad client authentication at revocation: 401.
    let wrong = Api {
        client_id: owner.client_id.clone(),
        secret: "wrong".into(),
    };
    assert_eq!(
        revoke(&server, &wrong, &jwt, "access_token").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(introspect(&server, &owner, &jwt).await["active"], true);
    t.cleanup().await;
}

async fn forged_tokens_are_inactive(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let api = api_client(&t, "Reports", &[]).await;
    let jwt = access_token(&server, &api).await;
    let header = jwt_part(&jwt, 0);
    let payload = jwt.split('.').nth(1).unwrap();
    let enc = |v: Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
    let kid = header["kid"].as_str().unwrap();
    let forged = [
        format!(
            "{}.{payload}.",
            enc(json!({ "alg": "none", "typ": "at+jwt", "kid": kid }))
        ),
        format!(
            "{}.{payload}.c2ln",
            enc(json!({ "alg": "HS256", "typ": "at+jwt", "kid": kid }))
        ),
        format!(
            "{}.{payload}.{}",
            enc(json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "unknown" })),
            jwt.split('.').nth(2).unwrap()
        ),
        format!(
            "{}.{payload}.{}",
            enc(json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid })),
            jwt.split('.').nth(2).unwrap()
        ),
    ];
    for token in forged {
        assert_eq!(
            introspect(&server, &api, &token).await,
            json!({ "active": false }),
            "{token}"
        );
    }
    assert_eq!(introspect(&server, &api, &jwt).await["active"], true);
    t.cleanup().await;
}

/// What client_credentials issuance reads is remembered per instance
/// (`tokens::IssuanceFacts`); every policy change and every revocation of
/// the client's grant reaches the very next token.
async fn access_ttl_is_read_from_policy_at_use_time(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let api = api_client(&t, "Reports", &[]).await;
    let lifetime = |jwt: &str| {
        let claims = jwt_part(jwt, 1);
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap()
    };
    let first = access_token(&server, &api).await;
    assert_eq!(lifetime(&first), 600, "the default");
    assert_eq!(lifetime(&access_token(&server, &api).await), 600);
    let set = |change: PolicyChange| {
        let (db, id) = (t.db.clone(), api.client_id.clone());
        async move { policy::set_client(&db, &id, &change, None).await.unwrap() }
    };
    set(PolicyChange {
        access_ttl_secs: Some(Some(300)),
        ..Default::default()
    })
    .await;
    assert_eq!(lifetime(&access_token(&server, &api).await), 300);
    // The defaults change, and the client inherits them again.
    policy::set_defaults(
        &t.db,
        &PolicyChange {
            access_ttl_secs: Some(Some(900)),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(lifetime(&access_token(&server, &api).await), 300);
    set(PolicyChange {
        access_ttl_secs: Some(None),
        ..Default::default()
    })
    .await;
    let inherited = access_token(&server, &api).await;
    assert_eq!(lifetime(&inherited), 900);
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'policy_changed'").await,
        3
    );
    // The client's grant revoked: its tokens die, the next one is under a new grant.
    let gid = jwt_part(&inherited, 1)["gid"].as_str().unwrap().to_owned();
    server
        .revoked
        .revoke_client_grants(
            &t.db,
            &api.client_id,
            &app::domain::revocation::RevokedBy {
                actor: "system",
                reason: "test",
                actor_user_id: None,
                actor_client_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(introspect(&server, &api, &inherited).await["active"], false);
    let after = access_token(&server, &api).await;
    assert_ne!(jwt_part(&after, 1)["gid"].as_str().unwrap(), gid);
    assert_eq!(introspect(&server, &api, &after).await["active"], true);
    t.cleanup().await;
}

async fn revocation_answers_503_when_the_database_is_down(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let api = api_client(&t, "Reports", &[]).await;
    let jwt = access_token(&server, &api).await;
    t.db.close().await;
    let res = revoke(&server, &api, &jwt, "access_token").await;
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "never 200 for a revocation that did not happen"
    );
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );
    // Introspection cannot authenticate the caller either: never active.
    let res = http()
        .post(server.url("/oauth/introspect"))
        .basic_auth(&api.client_id, Some(&api.secret))
        .form(&[("token", jwt.as_str())])
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), StatusCode::OK);
}

async fn token_errors_keep_their_rfc6749_codes(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let api = api_client(&t, "Reports", &["a"]).await;
    // A scope the client may not have, and only that, is invalid_scope.
    let res = token(&server, &api, &[("scope", "a b")]).await;
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::BAD_REQUEST, "invalid_scope".into())
    );
    // The database failing while the token is issued (after the client
    // authenticated): 503 temporarily_unavailable, not a client error.
    // A trigger makes the insert of the client's grant (its first token's
    // write) fail, as a database that stopped writing would.
    let (fail, undo) = match &t.db {
        Db::Sqlite(_) => (
            vec![
                "CREATE TRIGGER grants_down BEFORE INSERT ON grants \
                  BEGIN SELECT RAISE(ABORT, 'the database stopped writing'); END",
            ],
            "DROP TRIGGER grants_down",
        ),
        Db::Postgres(_) => (
            vec![
                "CREATE FUNCTION grants_down() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'the database stopped writing'; END $$",
                "CREATE TRIGGER grants_down BEFORE INSERT ON grants \
                 FOR EACH ROW EXECUTE FUNCTION grants_down()",
            ],
            "DROP TRIGGER grants_down ON grants",
        ),
    };
    for statement in fail {
        exec(&t.db, statement).await;
    }
    let res = token(&server, &api, &[]).await;
    assert_eq!(
        oauth_error(res).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable".into()
        )
    );
    exec(&t.db, undo).await;
    assert_eq!(token(&server, &api, &[]).await.status(), StatusCode::OK);
    t.cleanup().await;
}
