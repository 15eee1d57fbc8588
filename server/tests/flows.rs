//! The authorization code flow, refresh tokens, userinfo and logout over real
//! HTTP, on both backends: consent, PKCE, single-use codes, rotation and reuse
//! detection, policy read at use time, and logout that revokes.

mod common;

use app::domain::{
    clients::ClientKind,
    jwt::at_hash,
    keys::SigningAlg,
    policy::{self, PolicyChange},
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use common::{count, exec, flow::*, text_value, TestDb, TestServer};
use reqwest::{header, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    code_flow_with_pkce_issues_access_refresh_and_id_tokens,
    authorize_errors_stay_here_until_the_redirect_uri_is_known_good,
    authorize_sends_signed_out_users_to_sign_in_and_back,
    deny_and_prompt_none_go_back_to_the_app,
    consent_page_escapes_the_app_name_and_refuses_cross_site_answers,
    code_is_bound_to_client_redirect_uri_and_verifier,
    code_replay_revokes_every_token_issued_from_it,
    refresh_rotates_and_reuse_revokes_the_family,
    refresh_scope_may_narrow_never_widen_and_stays_with_its_client,
    refresh_policy_is_read_at_every_use,
    reuse_grace_lets_a_retry_through,
    introspection_and_refresh_agree_on_a_used_refresh_token,
    concurrent_refreshes_have_exactly_one_winner,
    a_refresh_in_one_statement_matches_the_full_path,
    concurrent_refreshes_of_many_sessions_are_written_together,
    a_stored_refresh_token_from_before_chains_starts_its_familys_chain,
    a_forged_or_foreign_chain_token_is_unknown,
    refresh_tokens_introspect_and_revoke_for_their_client_only,
    userinfo_needs_a_live_openid_token,
    rp_logout_with_a_hint_of_this_browser_ends_its_sign_in_at_once,
    rp_logout_with_a_replayed_hint_never_ends_a_sign_in_unasked,
    rp_logout_without_a_hint_asks_first_and_never_redirects_unregistered,
    dashboard_sign_out_revokes_the_sign_ins_families,
);

async fn setup(t: &TestDb) -> (TestServer, App, Person) {
    let server = TestServer::start(&t.db).await;
    let app = app(t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let person = person(t, &server, "alice").await;
    (server, app, person)
}

async fn code_flow_with_pkce_issues_access_refresh_and_id_tokens(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let params = authorize_params(&app, "openid profile notes:read");
    let res = get_authorize(&alice.http, &server, &params).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(
        html.contains(r#"data-testid="consent-client">Notes<"#),
        "{html}"
    );
    assert!(html.contains("See your username"), "scopes in plain words");
    assert!(html.contains(r#"data-scope="notes:read""#));
    let res = decide(&alice.http, &server, &request_id(&html), "allow").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let q = query_of(&location(&res));
    assert_eq!(q["state"], "st-123");
    assert_eq!(q["iss"], server.base, "RFC 9207 iss");
    let code = q["code"].clone();

    let res = redeem(&server, &app, &code).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "openid profile notes:read");
    assert!(str_of(&body, "refresh_token").len() >= 43);

    let access = str_of(&body, "access_token");
    assert_eq!(jwt_part(access, 0)["typ"], "at+jwt");
    let claims = jwt_part(access, 1);
    assert_eq!(claims["sub"], alice.user_id.as_str());
    assert_eq!(claims["client_id"], app.client_id.as_str());
    assert_eq!(claims["aud"], server.base.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    for key in ["jti", "gid", "fid", "sid"] {
        assert!(claims[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
    }

    let id_token = str_of(&body, "id_token");
    let header = jwt_part(id_token, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(
        header["kid"].as_str(),
        server.keys.signing_kid(SigningAlg::RS256).as_deref()
    );
    let id = jwt_part(id_token, 1);
    assert_eq!(id["aud"], app.client_id.as_str());
    assert_eq!(id["iss"], server.base.as_str());
    assert_eq!(id["sub"], alice.user_id.as_str());
    assert_eq!(id["nonce"], "n-456");
    assert_eq!(id["sid"], claims["sid"]);
    assert_eq!(id["at_hash"], at_hash(access).as_str());
    assert_eq!(id["preferred_username"], "alice");
    assert!(is_active(&server, &app, access).await);

    // Asked again with the same scopes: no consent page, straight back with a code.
    let res = get_authorize(&alice.http, &server, &params).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(query_of(&location(&res)).contains_key("code"));
    // prompt=consent asks again, for everything requested.
    let mut again = params.clone();
    again.push(("prompt", "consent".into()));
    let res = get_authorize(&alice.http, &server, &again).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"data-scope="openid""#) && html.contains(r#"data-scope="notes:read""#));
    // A new scope: consent again, naming only the new one.
    let res = get_authorize(
        &alice.http,
        &server,
        &authorize_params(&app, "openid email"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"data-scope="email""#) && !html.contains(r#"data-scope="openid""#));

    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'consent_granted'").await,
        1
    );
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'code_redeemed'").await,
        1
    );
    assert_eq!(count(&t.db, "grants").await, 1);
    t.cleanup().await;
}

async fn authorize_errors_stay_here_until_the_redirect_uri_is_known_good(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let with = |changes: &[(&'static str, &str)]| {
        let mut p = authorize_params(&app, "openid");
        for (k, v) in changes {
            p.retain(|(n, _)| n != k);
            if !v.is_empty() {
                p.push((k, v.to_string()));
            }
        }
        p
    };
    // Unknown client, unregistered or missing redirect URI: a page, never a redirect.
    for bad in [
        with(&[("client_id", "nope")]),
        with(&[("redirect_uri", "https://evil.example/cb")]),
        with(&[("redirect_uri", &format!("{}/", app.redirect_uri))]),
        with(&[("redirect_uri", "")]),
        with(&[("client_id", "")]),
    ] {
        let res = get_authorize(&alice.http, &server, &bad).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(res.headers().get(header::LOCATION).is_none());
        assert!(res
            .text()
            .await
            .unwrap()
            .contains(r#"data-testid="oauth-error""#));
    }
    // With a good redirect URI, errors go back to the app with state.
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            with(&[("response_type", "token")]),
            "unsupported_response_type",
        ),
        (
            with(&[("code_challenge_method", "plain")]),
            "invalid_request",
        ),
        (with(&[("code_challenge_method", "")]), "invalid_request"),
        (with(&[("code_challenge", "too-short")]), "invalid_request"),
        (with(&[("code_challenge", "")]), "invalid_request"),
        (
            with(&[("scope", "openid admin:everything")]),
            "invalid_scope",
        ),
    ];
    let mut repeated = with(&[]);
    repeated.push(("scope", "profile".into()));
    for (params, error) in cases.into_iter().chain([(repeated, "invalid_request")]) {
        let res = get_authorize(&alice.http, &server, &params).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{params:?}");
        let loc = location(&res);
        assert!(loc.starts_with(&app.redirect_uri), "{loc}");
        let q = query_of(&loc);
        assert_eq!(q["error"], error, "{params:?}");
        assert_eq!(q["state"], "st-123");
        assert!(!q.contains_key("code"));
    }
    // A confidential client may skip PKCE; a public one may not.
    let res = get_authorize(
        &alice.http,
        &server,
        &with(&[("code_challenge", ""), ("code_challenge_method", "")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "consent page");
    let spa = common::flow::app(&t, "Spa", ClientKind::Public, &[]).await;
    let mut no_pkce = authorize_params(&spa, "openid");
    no_pkce.retain(|(k, _)| !k.starts_with("code_challenge"));
    let res = get_authorize(&alice.http, &server, &no_pkce).await;
    let q = query_of(&location(&res));
    assert_eq!(q["error"], "invalid_request");
    assert!(q["error_description"].contains("PKCE"));
    // A client allowed Latchkey's admin scope still cannot get it from a person.
    let ops = common::flow::app(&t, "Ops", ClientKind::Confidential, &["latchkey:admin"]).await;
    let res = get_authorize(
        &alice.http,
        &server,
        &authorize_params(&ops, "openid latchkey:admin"),
    )
    .await;
    assert_eq!(query_of(&location(&res))["error"], "invalid_scope");
    assert_eq!(count(&t.db, "auth_codes").await, 0);
    t.cleanup().await;
}

async fn authorize_sends_signed_out_users_to_sign_in_and_back(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let app = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    app::domain::users::add_user(&t.db, "bob", PASSWORD, false)
        .await
        .unwrap();
    let (http, _) = common::browser();
    let params = authorize_params(&app, "openid");
    let res = get_authorize(&http, &server, &params).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to_sign_in = location(&res);
    assert!(
        to_sign_in.starts_with("/signin?next=%2Foauth%2Fauthorize%3F"),
        "{to_sign_in}"
    );
    let next = query_of(&format!("http://x{to_sign_in}"))["next"].clone();
    // Signing in goes back to the very same authorization request.
    let res = http
        .post(server.url("/signin"))
        .form(&[("username", "bob"), ("password", PASSWORD), ("next", &next)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), next);
    let res = http.get(server.url(&next)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains(r#"data-testid="consent""#));
    t.cleanup().await;
}

async fn deny_and_prompt_none_go_back_to_the_app(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let mut params = authorize_params(&app, "openid");
    params.push(("prompt", "none".into()));
    let res = get_authorize(&alice.http, &server, &params).await;
    assert_eq!(query_of(&location(&res))["error"], "consent_required");
    let (signed_out, _) = common::browser();
    let res = get_authorize(&signed_out, &server, &params).await;
    assert_eq!(query_of(&location(&res))["error"], "login_required");

    let res = get_authorize(&alice.http, &server, &authorize_params(&app, "openid")).await;
    let id = request_id(&res.text().await.unwrap());
    let res = decide(&alice.http, &server, &id, "deny").await;
    let q = query_of(&location(&res));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-123");
    assert!(!q.contains_key("code"));
    // An answered request cannot be answered again.
    let res = decide(&alice.http, &server, &id, "allow").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(count(&t.db, "grants").await, 0);
    assert_eq!(count(&t.db, "auth_codes").await, 0);
    t.cleanup().await;
}

async fn consent_page_escapes_the_app_name_and_refuses_cross_site_answers(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let evil = app(
        &t,
        "<script>alert(1)</script>",
        ClientKind::Confidential,
        &[],
    )
    .await;
    let alice = person(&t, &server, "alice").await;
    let res = get_authorize(&alice.http, &server, &authorize_params(&evil, "openid")).await;
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // Another site cannot answer the consent page for the user.
    let res = alice
        .http
        .post(server.url("/oauth/authorize"))
        .header(header::ORIGIN, "https://evil.example")
        .form(&[
            ("request_id", request_id(&html).as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(count(&t.db, "grants").await, 0);
    // Another user's browser cannot answer it either.
    let bob = person(&t, &server, "bob").await;
    let res = decide(&bob.http, &server, &request_id(&html), "allow").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(count(&t.db, "grants").await, 0);
    t.cleanup().await;
}

async fn code_is_bound_to_client_redirect_uri_and_verifier(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let other = common::flow::app(&t, "Other", ClientKind::Confidential, &[]).await;
    let redeem_with = |code: String, app: App, redirect: String, verifier: Option<&'static str>| {
        let server = &server;
        async move {
            let mut form = vec![
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect.as_str()),
            ];
            if let Some(v) = verifier {
                form.push(("code_verifier", v));
            }
            oauth_error(token_request(server, &app, &form).await).await
        }
    };
    let bad = "x".repeat(43);
    let bad: &'static str = Box::leak(bad.into_boxed_str());
    for (who, redirect, verifier, expected) in [
        (&app, app.redirect_uri.clone(), Some(bad), "invalid_grant"),
        (&app, app.redirect_uri.clone(), None, "invalid_grant"),
        (
            &app,
            app.redirect_uri.clone(),
            Some("short"),
            "invalid_request",
        ),
        (
            &app,
            format!("{}?x=1", app.redirect_uri),
            Some(VERIFIER),
            "invalid_grant",
        ),
        (
            &other,
            app.redirect_uri.clone(),
            Some(VERIFIER),
            "invalid_grant",
        ),
    ] {
        let code = code_for(&alice, &server, &app, "openid").await;
        let (status, error) = redeem_with(code.clone(), who.clone(), redirect, verifier).await;
        assert_eq!(
            (status, error.as_str()),
            (StatusCode::BAD_REQUEST, expected)
        );
        if expected == "invalid_grant" {
            // A code presented wrongly is burnt: the right request fails too.
            let (_, error) = oauth_error(redeem(&server, &app, &code).await).await;
            assert_eq!(error, "invalid_grant");
        }
    }
    // Expired after 60 s.
    let code = code_for(&alice, &server, &app, "openid").await;
    exec(&t.db, "UPDATE auth_codes SET expires_at = expires_at - 61").await;
    assert_eq!(
        oauth_error(redeem(&server, &app, &code).await).await.1,
        "invalid_grant"
    );
    // A verifier for a request that had no challenge.
    let mut params = authorize_params(&app, "openid");
    params.retain(|(k, _)| !k.starts_with("code_challenge"));
    let res = get_authorize(&alice.http, &server, &params).await;
    let code = query_of(&location(&res))["code"].clone();
    assert_eq!(
        oauth_error(redeem(&server, &app, &code).await).await.1,
        "invalid_grant"
    );
    assert_eq!(count(&t.db, "token_families").await, 0, "nothing issued");
    t.cleanup().await;
}

async fn code_replay_revokes_every_token_issued_from_it(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let code = code_for(&alice, &server, &app, "openid offline_access").await;
    let first: Value = redeem(&server, &app, &code).await.json().await.unwrap();
    let access = str_of(&first, "access_token");
    assert!(is_active(&server, &app, access).await);
    let (status, error) = oauth_error(redeem(&server, &app, &code).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    assert!(
        !is_active(&server, &app, access).await,
        "replay revoked the access token"
    );
    let (_, error) =
        oauth_error(refresh(&server, &app, str_of(&first, "refresh_token")).await).await;
    assert_eq!(error, "invalid_grant", "and the refresh token");
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'reuse_detected'").await,
        1
    );
    assert_eq!(
        count(&t.db, "token_families WHERE revoked_at IS NOT NULL").await,
        1
    );
    t.cleanup().await;
}

async fn refresh_rotates_and_reuse_revokes_the_family(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let first = tokens_for(&alice, &server, &app, "openid notes:read").await;
    // The same app on another device: a family of its own.
    let other_device = tokens_for(&alice, &server, &app, "openid notes:read").await;
    let r1 = str_of(&first, "refresh_token");
    let res = refresh(&server, &app, r1).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let second: Value = res.json().await.unwrap();
    let r2 = str_of(&second, "refresh_token");
    assert_ne!(r1, r2, "rotated");
    let a2 = str_of(&second, "access_token");
    assert_eq!(
        jwt_part(a2, 1)["fid"],
        jwt_part(str_of(&first, "access_token"), 1)["fid"]
    );
    assert_eq!(second["scope"], "openid notes:read");
    assert!(is_active(&server, &app, a2).await);

    // The used token comes back: the whole family dies, the new token with it.
    let (status, error) = oauth_error(refresh(&server, &app, r1).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    assert!(!is_active(&server, &app, a2).await);
    assert!(!is_active(&server, &app, str_of(&first, "access_token")).await);
    // Only that family: the user's other session of the same app lives on.
    assert!(is_active(&server, &app, str_of(&other_device, "access_token")).await);
    assert_eq!(
        refresh(&server, &app, str_of(&other_device, "refresh_token"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        oauth_error(refresh(&server, &app, r2).await).await.1,
        "invalid_grant"
    );
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'reuse_detected'").await,
        1
    );
    // The two refreshes are counted (per client and minute, and per user,
    // client and day), not audited one row each.
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'token_refreshed'").await,
        0
    );
    common::eventually_text(
        &t.db,
        "SELECT CAST(SUM(n) AS TEXT) FROM usage_counts WHERE client_id = $1 AND kind = 'token_refreshed'",
        &app.client_id,
        "2",
        "refreshes counted per minute",
    )
    .await;
    common::eventually_text(
        &t.db,
        "SELECT CAST(SUM(n) AS TEXT) FROM usage_days u JOIN users p ON p.id = u.user_id \
         WHERE u.client_id = $1 AND p.username = 'alice' AND u.kind = 'token_refreshed'",
        &app.client_id,
        "2",
        "refreshes counted per user and day",
    )
    .await;
    assert_eq!(
        count(&t.db, "token_families WHERE revoked_at IS NULL").await,
        1,
        "only the other device's chain"
    );
    assert_eq!(
        count(&t.db, "refresh_tokens").await,
        0,
        "nothing is stored per refresh token: the family row holds the chain"
    );

    // Rotation off: the same refresh token keeps working and none is returned.
    policy::set_client(
        &t.db,
        &app.client_id,
        &PolicyChange {
            rotate_refresh: Some(Some(false)),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    let third = tokens_for(&alice, &server, &app, "openid").await;
    let r3 = str_of(&third, "refresh_token");
    for _ in 0..2 {
        let res = refresh(&server, &app, r3).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert!(body.get("refresh_token").is_none());
    }
    t.cleanup().await;
}

async fn refresh_scope_may_narrow_never_widen_and_stays_with_its_client(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let other = common::flow::app(&t, "Other", ClientKind::Confidential, &[]).await;
    let first = tokens_for(&alice, &server, &app, "openid notes:read").await;
    let r1 = str_of(&first, "refresh_token");
    let scoped = |scope: &'static str, token: String| {
        let (server, app) = (&server, &app);
        async move {
            token_request(
                server,
                app,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("scope", scope),
                ],
            )
            .await
        }
    };
    let (_, error) = oauth_error(scoped("openid notes:read profile", r1.into()).await).await;
    assert_eq!(error, "invalid_scope");
    let res = scoped("notes:read", r1.into()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let narrowed: Value = res.json().await.unwrap();
    assert_eq!(narrowed["scope"], "notes:read");
    assert_eq!(
        jwt_part(str_of(&narrowed, "access_token"), 1)["scope"],
        "notes:read"
    );
    // The successor keeps the full scope of the grant.
    let r2 = str_of(&narrowed, "refresh_token");
    let res = scoped("openid notes:read", r2.into()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let r3 = res.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another client presenting it: invalid_grant, and the token is not spent.
    let (_, error) = oauth_error(refresh(&server, &other, &r3).await).await;
    assert_eq!(error, "invalid_grant");
    assert_eq!(refresh(&server, &app, &r3).await.status(), StatusCode::OK);
    t.cleanup().await;
}

async fn refresh_policy_is_read_at_every_use(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let set = |change: PolicyChange| {
        let (db, id) = (t.db.clone(), app.client_id.clone());
        async move { policy::set_client(&db, &id, &change, None).await.unwrap() }
    };
    let body = tokens_for(&alice, &server, &app, "openid").await;
    let r1 = str_of(&body, "refresh_token").to_owned();
    set(PolicyChange {
        refresh_enabled: Some(Some(false)),
        ..Default::default()
    })
    .await;
    let (status, error) = oauth_error(refresh(&server, &app, &r1).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "unauthorized_client")
    );
    // No refresh token is issued while it is off.
    let body = tokens_for(&alice, &server, &app, "openid").await;
    assert!(body.get("refresh_token").is_none());
    set(PolicyChange {
        refresh_enabled: Some(None),
        access_ttl_secs: Some(Some(300)),
        ..Default::default()
    })
    .await;
    let res = refresh(&server, &app, &r1).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the switch was all that stopped it"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 300);
    let r2 = str_of(&body, "refresh_token").to_owned();

    // Idle lifetime: unused for too long.
    exec(
        &t.db,
        "UPDATE token_families SET chain_expires_at = chain_expires_at - 1209601",
    )
    .await;
    assert_eq!(
        oauth_error(refresh(&server, &app, &r2).await).await.1,
        "invalid_grant"
    );
    // Absolute lifetime: capped from the family's start, whatever the idle time says.
    let body = tokens_for(&alice, &server, &app, "openid").await;
    let r3 = str_of(&body, "refresh_token").to_owned();
    set(PolicyChange {
        refresh_absolute_ttl_secs: Some(Some(3600)),
        refresh_idle_ttl_secs: Some(Some(600)),
        ..Default::default()
    })
    .await;
    exec(
        &t.db,
        "UPDATE token_families SET created_at = created_at - 3601",
    )
    .await;
    let (_, error) = oauth_error(refresh(&server, &app, &r3).await).await;
    assert_eq!(error, "invalid_grant");
    // A disabled user's refresh tokens stop at once.
    let body = tokens_for(&alice, &server, &app, "openid").await;
    exec(&t.db, "UPDATE users SET disabled_at = 1").await;
    let (_, error) =
        oauth_error(refresh(&server, &app, str_of(&body, "refresh_token")).await).await;
    assert_eq!(error, "invalid_grant");
    t.cleanup().await;
}

async fn reuse_grace_lets_a_retry_through(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    policy::set_client(
        &t.db,
        &app.client_id,
        &PolicyChange {
            reuse_grace_secs: Some(Some(30)),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    let body = tokens_for(&alice, &server, &app, "openid").await;
    let r1 = str_of(&body, "refresh_token");
    let res = refresh(&server, &app, r1).await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    // A retry within the grace (say the first answer was lost) still works...
    let retry = refresh(&server, &app, r1).await;
    assert_eq!(retry.status(), StatusCode::OK);
    let retried: Value = retry.json().await.unwrap();
    // ... and gets the successor the lost answer carried ...
    assert_eq!(retried["refresh_token"], rotated["refresh_token"]);
    // ... but after the grace it is reuse.
    exec(
        &t.db,
        "UPDATE token_families SET chain_rotated_at = chain_rotated_at - 31 \
         WHERE chain_rotated_at IS NOT NULL",
    )
    .await;
    assert_eq!(
        oauth_error(refresh(&server, &app, r1).await).await.1,
        "invalid_grant"
    );
    assert!(!is_active(&server, &app, str_of(&retried, "access_token")).await);
    t.cleanup().await;
}

/// Introspection says `active` exactly when a refresh with the token would go
/// through (issue 9, fault 7): within the reuse grace a rotated token is
/// active (a retry works); a token rotated before the client switched
/// rotation off is inactive (presenting it is reuse).
async fn introspection_and_refresh_agree_on_a_used_refresh_token(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let set = |change: PolicyChange| {
        let (db, id) = (t.db.clone(), app.client_id.clone());
        async move { policy::set_client(&db, &id, &change, None).await.unwrap() }
    };
    set(PolicyChange {
        reuse_grace_secs: Some(Some(60)),
        ..Default::default()
    })
    .await;
    let body = tokens_for(&alice, &server, &app, "openid").await;
    let r1 = str_of(&body, "refresh_token");
    assert_eq!(refresh(&server, &app, r1).await.status(), StatusCode::OK);
    assert!(
        is_active(&server, &app, r1).await,
        "rotated, within the grace"
    );
    assert_eq!(refresh(&server, &app, r1).await.status(), StatusCode::OK);

    // Another session: rotated under rotation, then rotation switched off.
    set(PolicyChange {
        reuse_grace_secs: Some(Some(0)),
        ..Default::default()
    })
    .await;
    let body = tokens_for(&alice, &server, &app, "openid").await;
    let r1 = str_of(&body, "refresh_token");
    let rotated: Value = refresh(&server, &app, r1).await.json().await.unwrap();
    set(PolicyChange {
        rotate_refresh: Some(Some(false)),
        ..Default::default()
    })
    .await;
    assert!(
        !is_active(&server, &app, r1).await,
        "rotated: it has a successor"
    );
    assert_eq!(
        oauth_error(refresh(&server, &app, r1).await).await.1,
        "invalid_grant"
    );
    // Presenting it was reuse: the session's family is gone.
    assert!(!is_active(&server, &app, str_of(&rotated, "refresh_token")).await);
    t.cleanup().await;
}

async fn concurrent_refreshes_have_exactly_one_winner(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let body = tokens_for(&alice, &server, &app, "openid").await;
    let r1 = str_of(&body, "refresh_token").to_owned();
    let attempts = (0..10).map(|_| {
        let (server, app, r1) = (&server, &app, r1.clone());
        async move {
            let res = refresh(server, app, &r1).await;
            (res.status(), res.json::<Value>().await.unwrap())
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let winners: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");
    }
    // The chain moved on exactly once.
    assert_eq!(
        text_value(
            &t.db,
            "SELECT CAST(chain_generation AS TEXT) FROM token_families WHERE $1 = $1",
            "-"
        )
        .await
        .as_deref(),
        Some("1")
    );
    t.cleanup().await;
}

/// Refreshes of many sessions at once (on SQLite they queue for the write
/// turn and share one statement): every live one rotates, a revoked one in
/// the same moment is refused, and every successor works.
async fn concurrent_refreshes_of_many_sessions_are_written_together(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let mut live = Vec::new();
    for _ in 0..12 {
        let body = tokens_for(&alice, &server, &app, "openid").await;
        live.push(str_of(&body, "refresh_token").to_owned());
    }
    let body = tokens_for(&alice, &server, &app, "openid").await;
    let revoked = str_of(&body, "refresh_token").to_owned();
    revoke_by_rfc7009(&server, &app, &revoked).await;
    let all = live.iter().chain([&revoked]).map(|token| {
        let (server, app) = (&server, &app);
        async move { refresh(server, app, token).await }
    });
    let mut answers = futures_util::future::join_all(all).await;
    let (_, error) = oauth_error(answers.pop().unwrap()).await;
    assert_eq!(error, "invalid_grant", "the revoked session");
    let mut successors = Vec::new();
    for res in answers {
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        successors.push(str_of(&body, "refresh_token").to_owned());
    }
    assert_eq!(
        text_value(
            &t.db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM token_families WHERE chain_generation = 1 AND $1 = $1",
            "-"
        )
        .await
        .as_deref(),
        Some("12"),
        "each live chain moved on once"
    );
    let again = successors.iter().map(|token| {
        let (server, app) = (&server, &app);
        async move { refresh(server, app, token).await.status() }
    });
    for status in futures_util::future::join_all(again).await {
        assert_eq!(status, StatusCode::OK);
    }
    t.cleanup().await;
}

/// A refresh as a browser app sends it: with a user agent, and a `scope`
/// when given (which takes the full path: the scope is checked against the
/// family's before anything is written).
async fn refresh_from(
    server: &TestServer,
    app: &App,
    refresh_token: &str,
    scope: Option<&str>,
    user_agent: &str,
) -> Value {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    form.extend(scope.map(|s| ("scope", s)));
    let res = reqwest::Client::new()
        .post(server.url("/oauth/token"))
        .basic_auth(&app.client_id, app.secret.as_deref())
        .header(header::USER_AGENT, user_agent)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// The common refresh (rotation on, no `scope`) is one conditional UPDATE
/// with the client's policy from memory; with a `scope` it is the full path
/// (read, decide, write). Both hand out the same claims and write the same
/// columns: the chain, its idle expiry capped by the absolute lifetime, and
/// the family's and grant's "last used" when stale.
async fn a_refresh_in_one_statement_matches_the_full_path(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let first = tokens_for(&alice, &server, &app, "openid notes:read").await;
    let first_claims = jwt_part(str_of(&first, "access_token"), 1);
    let row = |column: &'static str| {
        let db = t.db.clone();
        async move {
            text_value(
                &db,
                &format!("SELECT CAST({column} AS TEXT) FROM token_families WHERE $1 = $1"),
                "-",
            )
            .await
            .unwrap_or_default()
        }
    };
    let grant_ua = || text_value(&t.db, "SELECT last_used_ua FROM grants WHERE $1 = $1", "-");
    let stale = || async {
        exec(
            &t.db,
            "UPDATE token_families SET last_used_at = last_used_at - 120, last_used_ua = 'old'",
        )
        .await;
        exec(
            &t.db,
            "UPDATE grants SET last_used_at = last_used_at - 120, last_used_ua = 'old'",
        )
        .await;
    };
    let same_claims = |body: &Value| {
        let claims = jwt_part(str_of(body, "access_token"), 1);
        for claim in [
            "sub",
            "client_id",
            "scope",
            "gid",
            "fid",
            "sid",
            "aud",
            "iss",
        ] {
            assert_eq!(claims[claim], first_claims[claim], "{claim}");
        }
        assert_eq!(body["scope"], "openid notes:read");
    };

    stale().await;
    let one = refresh_from(
        &server,
        &app,
        str_of(&first, "refresh_token"),
        None,
        "one-statement",
    )
    .await;
    same_claims(&one);
    assert_eq!(row("chain_generation").await, "1");
    assert_eq!(row("last_used_ua").await, "one-statement");
    assert_eq!(grant_ua().await.as_deref(), Some("one-statement"));
    let idle: i64 = row("chain_expires_at - chain_rotated_at")
        .await
        .parse()
        .unwrap();
    assert_eq!(
        idle,
        policy::defaults(&t.db).await.unwrap().refresh_idle_ttl_secs
    );

    stale().await;
    let full = refresh_from(
        &server,
        &app,
        str_of(&one, "refresh_token"),
        Some("openid notes:read"),
        "full-path",
    )
    .await;
    same_claims(&full);
    assert_eq!(row("chain_generation").await, "2");
    assert_eq!(row("last_used_ua").await, "full-path");
    assert_eq!(grant_ua().await.as_deref(), Some("full-path"));

    // Not stale: "last used" stays as it is (written at most once a minute).
    let quiet = refresh_from(&server, &app, str_of(&full, "refresh_token"), None, "quiet").await;
    assert_eq!(row("chain_generation").await, "3");
    assert_eq!(row("last_used_ua").await, "full-path");
    assert_eq!(grant_ua().await.as_deref(), Some("full-path"));

    // The absolute lifetime caps the idle expiry of an old family (the
    // policy edit applies to the remembered policy at once).
    policy::set_client(
        &t.db,
        &app.client_id,
        &PolicyChange {
            refresh_absolute_ttl_secs: Some(Some(3600)),
            refresh_idle_ttl_secs: Some(Some(600)),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    exec(
        &t.db,
        "UPDATE token_families SET created_at = created_at - 3300",
    )
    .await;
    refresh_from(
        &server,
        &app,
        str_of(&quiet, "refresh_token"),
        None,
        "quiet",
    )
    .await;
    assert_eq!(row("chain_generation").await, "4");
    assert_eq!(row("chain_expires_at - created_at").await, "3600");
    t.cleanup().await;
}

/// A refresh token issued before chains (stored as SHA-256, its family
/// without a chain) keeps working after the upgrade: its first rotation
/// starts the family's chain, whose tokens then work, and presenting the
/// stored token again is reuse.
async fn a_stored_refresh_token_from_before_chains_starts_its_familys_chain(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let body = tokens_for(&alice, &server, &app, "openid notes:read").await;
    let family = jwt_part(str_of(&body, "access_token"), 1)["fid"]
        .as_str()
        .unwrap()
        .to_owned();
    // The family as a pre-chain one, with two stored tokens (siblings, as a
    // retry within the grace made them before chains).
    let stored = app::domain::secrets::new_secret();
    let sibling = app::domain::secrets::new_secret();
    exec(
        &t.db,
        &format!(
            "UPDATE token_families SET scopes = NULL, chain_generation = NULL, \
             chain_expires_at = NULL WHERE id = '{family}'"
        ),
    )
    .await;
    exec(
        &t.db,
        &format!(
            "INSERT INTO refresh_tokens (hash, family_id, scopes, issued_at, expires_at) \
             VALUES ('{}', '{family}', 'openid notes:read', 1, 4000000000), \
             ('{}', '{family}', 'openid notes:read', 1, 4000000000)",
            app::domain::secrets::sha256_hex(&stored),
            app::domain::secrets::sha256_hex(&sibling)
        ),
    )
    .await;
    // The chain token the family had is unknown now (its family has no chain).
    assert_eq!(
        oauth_error(refresh(&server, &app, str_of(&body, "refresh_token")).await)
            .await
            .1,
        "invalid_grant"
    );
    assert!(
        is_active(&server, &app, &stored).await,
        "the stored token introspects"
    );
    let res = refresh(&server, &app, &stored).await;
    assert_eq!(res.status(), StatusCode::OK);
    let first: Value = res.json().await.unwrap();
    assert_eq!(first["scope"], "openid notes:read");
    let chained = str_of(&first, "refresh_token");
    assert_ne!(chained, stored);
    assert!(
        URL_SAFE_NO_PAD.decode(chained).unwrap().len() > 32,
        "a chain token, not another stored one"
    );
    assert_eq!(
        text_value(
            &t.db,
            "SELECT CAST(chain_generation AS TEXT) || ' ' || scopes FROM token_families WHERE id = $1",
            &family
        )
        .await
        .as_deref(),
        Some("1 openid notes:read")
    );
    assert_eq!(
        count(&t.db, "refresh_tokens").await,
        2,
        "no successor stored"
    );
    let res = refresh(&server, &app, chained).await;
    assert_eq!(res.status(), StatusCode::OK);
    let second: Value = res.json().await.unwrap();
    // The unused sibling once the chain has started: two parties hold the
    // session — reuse; the family and its chain are revoked.
    assert_eq!(
        oauth_error(refresh(&server, &app, &sibling).await).await.1,
        "invalid_grant"
    );
    assert_eq!(
        oauth_error(refresh(&server, &app, &stored).await).await.1,
        "invalid_grant"
    );
    assert!(!is_active(&server, &app, str_of(&second, "refresh_token")).await);
    assert!(!is_active(&server, &app, str_of(&second, "access_token")).await);
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'reuse_detected'").await,
        1
    );
    t.cleanup().await;
}

/// A chain token is MACed with a key derived from the master key: one whose
/// MAC does not verify (a changed generation, another family's id) is
/// unknown, and presenting it revokes nothing.
async fn a_forged_or_foreign_chain_token_is_unknown(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let body = tokens_for(&alice, &server, &app, "openid").await;
    let token = str_of(&body, "refresh_token");
    let raw = URL_SAFE_NO_PAD.decode(token).unwrap();
    // The generation (the 8 bytes before the 32-byte MAC) moved on by one.
    let mut later = raw.clone();
    let at = later.len() - 33;
    later[at] += 1;
    // Another family's id under this token's generation and MAC.
    let other = tokens_for(&alice, &server, &app, "openid").await;
    let other_raw = URL_SAFE_NO_PAD
        .decode(str_of(&other, "refresh_token"))
        .unwrap();
    let mut swapped = other_raw[..other_raw.len() - 40].to_vec();
    swapped.extend_from_slice(&raw[raw.len() - 40..]);
    for forged in [later, swapped] {
        let forged = URL_SAFE_NO_PAD.encode(forged);
        let (status, error) = oauth_error(refresh(&server, &app, &forged).await).await;
        assert_eq!(
            (status, error.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
        assert!(!is_active(&server, &app, &forged).await);
    }
    // Nothing was revoked: both sessions still refresh.
    assert_eq!(refresh(&server, &app, token).await.status(), StatusCode::OK);
    assert_eq!(
        refresh(&server, &app, str_of(&other, "refresh_token"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        count(&t.db, "token_families WHERE revoked_at IS NOT NULL").await,
        0
    );
    t.cleanup().await;
}

async fn refresh_tokens_introspect_and_revoke_for_their_client_only(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let other = common::flow::app(&t, "Other", ClientKind::Confidential, &[]).await;
    let body = tokens_for(&alice, &server, &app, "openid notes:read").await;
    let (access, refresh_token) = (
        str_of(&body, "access_token"),
        str_of(&body, "refresh_token"),
    );
    let answer: Value = reqwest::Client::new()
        .post(server.url("/oauth/introspect"))
        .basic_auth(&app.client_id, app.secret.as_deref())
        .form(&[
            ("token", refresh_token),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "refresh_token");
    assert_eq!(answer["scope"], "openid notes:read");
    assert_eq!(answer["sub"], alice.user_id.as_str());
    assert_eq!(answer["client_id"], app.client_id.as_str());
    assert!(
        !is_active(&server, &other, refresh_token).await,
        "not theirs"
    );

    // Another client revoking it: 200 and nothing happens.
    let revoke = |by: &App, token: &str| {
        reqwest::Client::new()
            .post(server.url("/oauth/revoke"))
            .basic_auth(&by.client_id, by.secret.as_deref())
            .form(&[
                ("token", token.to_owned()),
                ("token_type_hint", "access_token".into()),
            ])
            .send()
    };
    assert_eq!(
        revoke(&other, refresh_token).await.unwrap().status(),
        StatusCode::OK
    );
    assert!(is_active(&server, &app, refresh_token).await);
    // Its client revoking it (with a wrong hint): the family ends, access token too.
    assert_eq!(
        revoke(&app, refresh_token).await.unwrap().status(),
        StatusCode::OK
    );
    assert!(!is_active(&server, &app, refresh_token).await);
    assert!(!is_active(&server, &app, access).await);
    assert_eq!(
        oauth_error(refresh(&server, &app, refresh_token).await)
            .await
            .1,
        "invalid_grant"
    );
    t.cleanup().await;
}

async fn userinfo_needs_a_live_openid_token(t: TestDb) {
    let (server, app, alice) = setup(&t).await;
    let http = reqwest::Client::new();
    let body = tokens_for(&alice, &server, &app, "openid profile").await;
    let access = str_of(&body, "access_token");
    let res = http
        .get(server.url("/oauth/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let info: Value = res.json().await.unwrap();
    assert_eq!(
        info,
        json!({ "sub": alice.user_id, "preferred_username": "alice", "name": "alice" })
    );

    let res = http
        .get(server.url("/oauth/userinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"latchkey\""
    );
    // Forged: alg none, an ID-token type, an unknown kid (the one validation
    // function rejects each; keys.rs covers HS256 keyed with our public key).
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let header = jwt_part(access, 0);
    let payload = access.split('.').nth(1).unwrap();
    let mut none = header.clone();
    none["alg"] = json!("none");
    let mut unknown_kid = header.clone();
    unknown_kid["kid"] = json!("no-such-kid");
    let signature = access.split('.').nth(2).unwrap();
    let claims = jwt_part(access, 1);
    let id_typed = server.keys.sign(SigningAlg::EdDSA, "JWT", &claims).unwrap();
    let forged = [
        format!("{}.{payload}.", b64(&none)),
        format!("{}.{payload}.{signature}", b64(&unknown_kid)),
        id_typed,
    ];
    for bad in ["garbage", &format!("{access}x")]
        .into_iter()
        .chain(forged.iter().map(String::as_str))
    {
        assert!(!is_active(&server, &app, bad).await, "{bad}");
        let res = http
            .get(server.url("/oauth/userinfo"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let challenge = res.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_token");
    }
    // Without openid: 403 insufficient_scope.
    let narrow = tokens_for(&alice, &server, &app, "notes:read").await;
    let res = http
        .get(server.url("/oauth/userinfo"))
        .bearer_auth(str_of(&narrow, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Revoked: 401 from the next request on.
    let res = http
        .post(server.url("/oauth/revoke"))
        .basic_auth(&app.client_id, app.secret.as_deref())
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http
        .get(server.url("/oauth/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    t.cleanup().await;
}

/// Alice signed in, with tokens for `keep` (revoke-on-logout off), `app`
/// (default: on), and a client_credentials token of a service.
struct LogoutScene {
    server: TestServer,
    app: App,
    keep: App,
    alice: Person,
    app_tokens: Value,
    keep_tokens: Value,
    service: App,
    service_token: String,
}

async fn logout_scene(t: &TestDb) -> LogoutScene {
    let (server, app, alice) = setup(t).await;
    let keep = common::flow::app(t, "Keeper", ClientKind::Confidential, &[]).await;
    policy::set_client(
        &t.db,
        &keep.client_id,
        &PolicyChange {
            revoke_on_logout: Some(Some(false)),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    let app_tokens = tokens_for(&alice, &server, &app, "openid").await;
    let keep_tokens = tokens_for(&alice, &server, &keep, "openid").await;
    let service = service(&t.db, "Service", &[]).await;
    let service_token = cc_token(&server, &service).await;
    LogoutScene {
        server,
        app,
        keep,
        alice,
        app_tokens,
        keep_tokens,
        service,
        service_token,
    }
}

/// After a logout: the revoke-on-logout app's tokens are dead, the others live.
async fn assert_logout_effects(s: &LogoutScene) {
    let server = &s.server;
    assert!(!is_active(server, &s.app, str_of(&s.app_tokens, "access_token")).await);
    assert!(!is_active(server, &s.app, str_of(&s.app_tokens, "refresh_token")).await);
    assert_eq!(
        oauth_error(refresh(server, &s.app, str_of(&s.app_tokens, "refresh_token")).await)
            .await
            .1,
        "invalid_grant"
    );
    assert!(is_active(server, &s.keep, str_of(&s.keep_tokens, "access_token")).await);
    assert_eq!(
        refresh(server, &s.keep, str_of(&s.keep_tokens, "refresh_token"))
            .await
            .status(),
        StatusCode::OK
    );
    assert!(
        is_active(server, &s.service, &s.service_token).await,
        "client_credentials untouched"
    );
    // The browser is signed out.
    let res = s.alice.http.get(server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

async fn rp_logout_with_a_hint_of_this_browser_ends_its_sign_in_at_once(t: TestDb) {
    let s = logout_scene(&t).await;
    let hint = str_of(&s.app_tokens, "id_token");
    let res = s
        .alice
        .http
        .get(s.server.url("/oauth/logout"))
        .query(&[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", &s.app.post_logout_uri),
            ("state", "bye-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        format!("{}?state=bye-1", s.app.post_logout_uri)
    );
    assert_logout_effects(&s).await;
    assert_eq!(count(&t.db, "audit_events WHERE kind = 'logout'").await, 1);

    // An expired hint still works (people log out long after signing in)
    // from the browser whose sign-in it names.
    sign_in(&s.alice, &s.server).await;
    let fresh = tokens_for(&s.alice, &s.server, &s.app, "openid").await;
    let expired = expired_copy(&s.server, str_of(&fresh, "id_token"));
    let res = s
        .alice
        .http
        .post(s.server.url("/oauth/logout"))
        .header(header::ORIGIN, "https://app.example")
        .form(&[("id_token_hint", expired.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains(r#"data-testid="signed-out""#));
    assert!(!is_active(&s.server, &s.app, str_of(&fresh, "access_token")).await);
    // A hint we did not sign is refused.
    let res = s
        .alice
        .http
        .get(s.server.url("/oauth/logout"))
        .query(&[("id_token_hint", "a.b.c")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    t.cleanup().await;
}

/// The ID token as it would be once expired, signed with the server's key.
fn expired_copy(server: &TestServer, id_token: &str) -> String {
    let mut claims = jwt_part(id_token, 1);
    claims["exp"] = json!(claims["iat"].as_i64().unwrap() - 10);
    server.keys.sign(SigningAlg::RS256, "JWT", &claims).unwrap()
}

/// The one-time token of a logout confirmation page.
fn confirm_token(html: &str) -> String {
    let marker = r#"name="confirm" value=""#;
    let start = html.find(marker).expect("a confirmation form") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// OpenID Connect RP-Initiated Logout 1.0 §2 and §6: a hint that does not
/// name this browser's own sign-in (replayed from a log, sent by another
/// party) never ends a sign-in without its person confirming (issue 9).
async fn rp_logout_with_a_replayed_hint_never_ends_a_sign_in_unasked(t: TestDb) {
    let s = logout_scene(&t).await;
    let hint = str_of(&s.app_tokens, "id_token").to_owned();
    let expired = expired_copy(&s.server, &hint);
    let app_access = str_of(&s.app_tokens, "access_token");
    // From a client with no session cookie, by GET and by cross-site POST,
    // fresh or expired: nothing ends.
    let stranger = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for token in [&hint, &expired] {
        let res = stranger
            .get(s.server.url("/oauth/logout"))
            .query(&[("id_token_hint", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = stranger
            .post(s.server.url("/oauth/logout"))
            .header(header::ORIGIN, "https://evil.example")
            .form(&[("id_token_hint", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert!(is_active(&s.server, &s.app, app_access).await);
    let res = s.alice.http.get(s.server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "alice is still signed in");
    assert_eq!(count(&t.db, "audit_events WHERE kind = 'logout'").await, 0);

    // From alice's other browser (another sign-in of hers): she is asked,
    // and nothing ends until she confirms; then both sign-ins end.
    let other = another_browser(&s.alice, &s.server).await.http;
    let res = other
        .get(s.server.url("/oauth/logout"))
        .query(&[("id_token_hint", hint.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"data-testid="logout-confirm""#));
    assert!(is_active(&s.server, &s.app, app_access).await, "not yet");
    let res = other
        .post(s.server.url("/oauth/logout"))
        .header(header::ORIGIN, s.server.base.clone())
        .form(&[
            ("confirm", confirm_token(&html).as_str()),
            ("id_token_hint", hint.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert!(res
        .text()
        .await
        .unwrap()
        .contains(r#"data-testid="signed-out""#));
    assert_logout_effects(&s).await;
    let res = other.get(s.server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the other browser too");
    t.cleanup().await;
}

async fn rp_logout_without_a_hint_asks_first_and_never_redirects_unregistered(t: TestDb) {
    let s = logout_scene(&t).await;
    let res = s
        .alice
        .http
        .get(s.server.url("/oauth/logout"))
        .query(&[
            ("client_id", s.app.client_id.as_str()),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"data-testid="logout-confirm""#));
    assert!(
        is_active(&s.server, &s.app, str_of(&s.app_tokens, "access_token")).await,
        "not yet"
    );
    let marker = r#"name="confirm" value=""#;
    let start = html.find(marker).unwrap() + marker.len();
    let confirm = html[start..].split('"').next().unwrap().to_owned();
    // A forged confirmation does nothing.
    let res = s
        .alice
        .http
        .post(s.server.url("/oauth/logout"))
        .form(&[("confirm", "forged")])
        .send()
        .await
        .unwrap();
    assert!(res
        .text()
        .await
        .unwrap()
        .contains(r#"data-testid="logout-confirm""#));
    assert!(is_active(&s.server, &s.app, str_of(&s.app_tokens, "access_token")).await);
    // The page was shown again with a new token; the old one is spent.
    let res = s
        .alice
        .http
        .get(s.server.url("/oauth/logout"))
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    let start = html.find(marker).unwrap() + marker.len();
    let confirm2 = html[start..].split('"').next().unwrap().to_owned();
    assert_ne!(confirm, confirm2);
    let res = s
        .alice
        .http
        .post(s.server.url("/oauth/logout"))
        .form(&[
            ("confirm", confirm2.as_str()),
            ("client_id", s.app.client_id.as_str()),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "no redirect to an unregistered address"
    );
    assert!(res.headers().get(header::LOCATION).is_none());
    assert!(res
        .text()
        .await
        .unwrap()
        .contains(r#"data-testid="signed-out""#));
    assert_logout_effects(&s).await;
    t.cleanup().await;
}

async fn dashboard_sign_out_revokes_the_sign_ins_families(t: TestDb) {
    let s = logout_scene(&t).await;
    let res = common::flow::sign_out(&s.alice, &s.server).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_logout_effects(&s).await;
    assert_eq!(
        count(
            &t.db,
            "audit_events WHERE kind = 'revoked' AND actor_user_id IS NOT NULL"
        )
        .await,
        1
    );
    t.cleanup().await;
}

/// Two instances on one PostgreSQL database: a revocation at one is seen by
/// the other through LISTEN/NOTIFY, well before its next periodic read of
/// the revocation log. SQLite has no notifications: two
/// processes on one file are tested in `instances.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocation_reaches_another_instance_at_once() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let (a, app, alice) = setup(&t).await;
    let b = TestServer::start_with_issuer(&t.db, Some(&a.base)).await;
    let body = tokens_for(&alice, &a, &app, "openid").await;
    let access = str_of(&body, "access_token");
    assert!(is_active(&b, &app, access).await);
    // Give B's listener a moment to be subscribed before the revocation.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    common::flow::revoke_by_rfc7009(&a, &app, access).await;
    let started = std::time::Instant::now();
    while is_active(&b, &app, access).await {
        assert!(
            started.elapsed().as_millis() < 2000,
            "B still thinks the token is live"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    t.cleanup().await;
}
