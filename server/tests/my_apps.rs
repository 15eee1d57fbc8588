//! "My apps" and "Sessions" over real HTTP, on both backends, with data made by
//! real OAuth flows: the pages list what holds access; revoking through the
//! server functions kills the tokens at the protocol level; one user can never
//! see or touch another's grant, family or session; cross-site posts are refused;
//! client-supplied names are escaped; any page number answers a page.

mod common;

use app::domain::clients::ClientKind;
use common::{count, flow::*, get_or_fail, TestDb, TestServer, PATIENCE};
use reqwest::{header, StatusCode};
use serde_json::Value;

on_both_backends!(
    my_apps_lists_what_holds_access_and_revoking_kills_every_token,
    app_detail_shows_sessions_and_activity_and_signs_one_out,
    revoke_all_apps_ends_every_grant,
    nobody_sees_or_touches_another_users_apps_or_sessions,
    cross_site_posts_to_server_functions_are_refused,
    app_names_are_escaped,
    signing_out_other_sessions_ends_their_app_sessions,
    long_lists_are_paginated,
    page_numbers_of_any_size_answer_a_page,
);

async fn page(person: &Person, server: &TestServer, path: &str) -> (StatusCode, String) {
    let res = person.http.get(server.url(path)).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

/// The grant id behind an access token.
fn gid(tokens: &Value) -> String {
    jwt_part(str_of(tokens, "access_token"), 1)["gid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn my_apps_lists_what_holds_access_and_revoking_kills_every_token(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let alice = person(&t, &server, "alice").await;
    let (status, html) = page(&alice, &server, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"data-testid="no-apps""#), "empty state");

    let tokens = tokens_for(&alice, &server, &notes, "openid profile notes:read").await;
    let (_, html) = page(&alice, &server, "/").await;
    assert!(html.contains(r#"data-app="Notes""#), "{html}");
    assert!(html.contains("See your username"));
    assert!(html.contains(r#"title="notes:read""#));
    assert!(html.contains("1 active session"));
    assert!(!html.contains("Refresh off"));
    assert!(!html.contains(r#"data-testid="no-apps""#));

    let res = call(
        &alice,
        &server,
        "revoke_app",
        &[("grant_id", &gid(&tokens))],
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::FOUND,
        "a form post goes back with a message"
    );
    let to = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert_eq!(to, "/?revoked=Notes");
    let (_, html) = page(&alice, &server, &to).await;
    assert!(html.contains("Access for Notes revoked"));
    assert!(!html.contains(r#"data-app="Notes""#));

    // Dead at the protocol level, from the next request on.
    assert!(!is_active(&server, &notes, str_of(&tokens, "access_token")).await);
    assert!(!is_active(&server, &notes, str_of(&tokens, "refresh_token")).await);
    let (_, error) =
        oauth_error(refresh(&server, &notes, str_of(&tokens, "refresh_token")).await).await;
    assert_eq!(error, "invalid_grant");
    let res = reqwest::Client::new()
        .get(server.url("/oauth/userinfo"))
        .bearer_auth(str_of(&tokens, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Signing in to it again asks for consent again.
    let res = get_authorize(&alice.http, &server, &authorize_params(&notes, "openid")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains(r#"data-testid="consent""#));
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'revoked' AND actor_user_id IS NOT NULL AND client_id IS NOT NULL").await,
        1,
        "audited with the user as actor"
    );
    t.cleanup().await;
}

async fn app_detail_shows_sessions_and_activity_and_signs_one_out(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let alice = person(&t, &server, "alice").await;
    let first = tokens_for(&alice, &server, &notes, "openid").await;
    let second = tokens_for(&alice, &server, &notes, "openid").await;
    assert_eq!(
        refresh(&server, &notes, str_of(&second, "refresh_token"))
            .await
            .status(),
        StatusCode::OK
    );
    // The refresh is counted per day (written within `usage::FLUSH_EVERY`; here at once).
    server.usage.flush().await.unwrap();
    let path = format!("/apps/{}", gid(&first));
    let (status, html) = page(&alice, &server, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(html.matches(r#"data-testid="app-session""#).count(), 2);
    assert!(html.contains("You allowed access"));
    assert!(html.contains("Renewed its access once"));
    assert!(html.contains("Signed in on a device 2 times"));

    let fid = jwt_part(str_of(&first, "access_token"), 1)["fid"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = call(
        &alice,
        &server,
        "sign_out_app_session",
        &[("grant_id", &gid(&first)), ("family_id", &fid)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(!is_active(&server, &notes, str_of(&first, "access_token")).await);
    assert!(
        is_active(&server, &notes, str_of(&second, "access_token")).await,
        "the other session lives"
    );
    let (_, html) = page(&alice, &server, &path).await;
    assert_eq!(html.matches(r#"data-testid="app-session""#).count(), 1);
    t.cleanup().await;
}

async fn revoke_all_apps_ends_every_grant(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let photos = app(&t, "Photos", ClientKind::Confidential, &[]).await;
    let alice = person(&t, &server, "alice").await;
    let a = tokens_for(&alice, &server, &notes, "openid").await;
    let b = tokens_for(&alice, &server, &photos, "openid").await;
    let res = call(&alice, &server, "revoke_all_apps", &[]).await;
    assert_eq!(res.headers()[header::LOCATION], "/?revoked_all=2");
    assert!(!is_active(&server, &notes, str_of(&a, "access_token")).await);
    assert!(!is_active(&server, &photos, str_of(&b, "access_token")).await);
    let (_, html) = page(&alice, &server, "/?revoked_all=2").await;
    assert!(html.contains("Access for 2 apps revoked."));
    assert!(html.contains(r#"data-testid="no-apps""#));
    t.cleanup().await;
}

async fn nobody_sees_or_touches_another_users_apps_or_sessions(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let alice = person(&t, &server, "alice").await;
    let mallory = person(&t, &server, "mallory").await;
    let tokens = tokens_for(&alice, &server, &notes, "openid").await;
    let grant = gid(&tokens);
    let fid = jwt_part(str_of(&tokens, "access_token"), 1)["fid"]
        .as_str()
        .unwrap()
        .to_owned();
    let sid = jwt_part(str_of(&tokens, "access_token"), 1)["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, html) = page(&mallory, &server, &format!("/apps/{grant}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains(r#"data-testid="app-not-found""#) && !html.contains("Notes"));
    let (_, html) = page(&mallory, &server, "/").await;
    assert!(!html.contains("Notes"));
    for (endpoint, form) in [
        ("revoke_app", vec![("grant_id", grant.as_str())]),
        (
            "sign_out_app_session",
            vec![("grant_id", grant.as_str()), ("family_id", fid.as_str())],
        ),
        ("end_session", vec![("session_id", sid.as_str())]),
    ] {
        let res = call(&mallory, &server, endpoint, &form).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{endpoint}");
    }
    let res = call(&mallory, &server, "revoke_all_apps", &[]).await;
    assert_eq!(res.headers()[header::LOCATION], "/?revoked_all=0");
    // Nothing of Alice's changed.
    assert!(is_active(&server, &notes, str_of(&tokens, "access_token")).await);
    assert_eq!(count(&t.db, "grants WHERE revoked_at IS NOT NULL").await, 0);
    assert_eq!(
        count(&t.db, "login_sessions WHERE ended_at IS NOT NULL").await,
        0
    );
    let (_, html) = page(&alice, &server, "/").await;
    assert!(html.contains(r#"data-app="Notes""#));
    // Signed out: the server functions refuse.
    let (anonymous, _) = common::browser();
    let res = anonymous
        .post(server.url("/api/revoke_app"))
        .form(&[("grant_id", grant.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(is_active(&server, &notes, str_of(&tokens, "access_token")).await);
    t.cleanup().await;
}

async fn cross_site_posts_to_server_functions_are_refused(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let alice = person(&t, &server, "alice").await;
    let tokens = tokens_for(&alice, &server, &notes, "openid").await;
    for (endpoint, form) in [
        ("revoke_app", vec![("grant_id", gid(&tokens))]),
        ("revoke_all_apps", vec![]),
        ("end_other_sessions", vec![]),
    ] {
        let res = alice
            .http
            .post(server.url(&format!("/api/{endpoint}")))
            .header(header::ORIGIN, "https://evil.example")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{endpoint}");
    }
    assert!(is_active(&server, &notes, str_of(&tokens, "access_token")).await);
    t.cleanup().await;
}

async fn app_names_are_escaped(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    // Also a title breakout: leptos_meta writes <title> unescaped, the app escapes it.
    let evil = app(
        &t,
        "</title><script>alert(1)</script>",
        ClientKind::Confidential,
        &[],
    )
    .await;
    let alice = person(&t, &server, "alice").await;
    let tokens = tokens_for(&alice, &server, &evil, "openid").await;
    for path in ["/".to_string(), format!("/apps/{}", gid(&tokens))] {
        let (_, html) = page(&alice, &server, &path).await;
        assert!(!html.contains("<script>alert(1)"), "{path}: {html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}"
        );
    }
    t.cleanup().await;
}

async fn signing_out_other_sessions_ends_their_app_sessions(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let laptop = person(&t, &server, "alice").await;
    let phone = Person {
        http: common::browser().0,
        user_id: laptop.user_id.clone(),
        username: laptop.username.clone(),
    };
    sign_in(&phone, &server).await;
    let on_laptop = tokens_for(&laptop, &server, &notes, "openid").await;
    let on_phone = tokens_for(&phone, &server, &notes, "openid").await;
    let (_, html) = page(&phone, &server, "/sessions").await;
    assert_eq!(html.matches(r#"data-testid="sign-in-session""#).count(), 2);
    assert_eq!(html.matches(r#"data-current="true""#).count(), 1);

    let res = call(&phone, &server, "end_other_sessions", &[]).await;
    assert_eq!(res.headers()[header::LOCATION], "/sessions?ended=1");
    // The laptop is signed out and its app session is dead; the phone's lives.
    let (status, _) = page(&laptop, &server, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(!is_active(&server, &notes, str_of(&on_laptop, "access_token")).await);
    assert!(is_active(&server, &notes, str_of(&on_phone, "access_token")).await);
    // Signing out "here" signs this browser out.
    let sid = jwt_part(str_of(&on_phone, "access_token"), 1)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = call(&phone, &server, "end_session", &[("session_id", &sid)]).await;
    assert_eq!(res.headers()[header::LOCATION], "/signin?signed_out=1");
    assert!(!is_active(&server, &notes, str_of(&on_phone, "access_token")).await);
    let (status, _) = page(&phone, &server, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    t.cleanup().await;
}

/// `n` apps holding a grant of `person` (consent recorded the way the consent page does).
async fn grant_apps(t: &TestDb, person: &Person, n: usize) {
    let sid = common::text_value(
        &t.db,
        "SELECT id FROM login_sessions WHERE user_id = $1 AND ended_at IS NULL",
        &person.user_id,
    )
    .await
    .expect("a live sign-in");
    for i in 0..n {
        let a = app(t, &format!("App {i:03}"), ClientKind::Confidential, &[]).await;
        let answer = app::domain::grants::ConsentAnswer {
            user_id: &person.user_id,
            login_session_id: &sid,
            client_id: &a.client_id,
            scopes: &["openid".to_string()],
            asked_against: None,
        };
        app::domain::grants::consent(&t.db, &answer, &Default::default())
            .await
            .unwrap();
    }
}

async fn long_lists_are_paginated(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let alice = person(&t, &server, "alice").await;
    grant_apps(&t, &alice, 120).await;
    let (_, html) = page(&alice, &server, "/").await;
    assert_eq!(html.matches(r#"data-testid="app-card""#).count(), 50);
    assert!(html.contains("120 apps have access."));
    assert!(html.contains("Page 1 of 3") && html.contains(r#"href="/?page=2""#));
    let (_, html) = page(&alice, &server, "/?page=3").await;
    assert_eq!(html.matches(r#"data-testid="app-card""#).count(), 20);
    assert!(html.contains(r#"href="/?page=2""#) && !html.contains(r#"href="/?page=4""#));
    t.cleanup().await;
}

/// Page numbers that are huge (the input of issue 9: `(page - 1) * 50`
/// overflowed and the request never got an answer), negative, zero, not a
/// number: every one answers 200 with a page that exists, the last one for a
/// page past the end — in the pages and in their server functions.
async fn page_numbers_of_any_size_answer_a_page(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let alice = person(&t, &server, "alice").await;
    // 51 apps: two pages of My apps, the second with one card.
    grant_apps(&t, &alice, 51).await;
    let last = [
        "9223372036854775807",
        "99999999999999999999",
        "1000001",
        "3",
    ];
    let first = ["0", "-1", "-9223372036854775808", "abc", "", "1e3"];
    for (n, expected) in last
        .iter()
        .map(|n| (n, 2))
        .chain(first.iter().map(|n| (n, 1)))
    {
        let (status, html) = get_or_fail(&alice.http, &server.url(&format!("/?page={n}"))).await;
        assert_eq!(status, StatusCode::OK, "/?page={n}");
        assert!(
            html.contains(&format!("Page {expected} of 2")),
            "/?page={n}"
        );
        let cards = html.matches(r#"data-testid="app-card""#).count();
        assert_eq!(cards, if expected == 2 { 1 } else { 50 }, "/?page={n}");
        let (status, html) =
            get_or_fail(&alice.http, &server.url(&format!("/sessions?page={n}"))).await;
        assert_eq!(status, StatusCode::OK, "/sessions?page={n}");
        assert!(
            html.contains(r#"data-current="true""#),
            "/sessions?page={n}"
        );
    }
    // The server functions behind the pages take any i64; what is not one
    // is the caller's mistake (400), not the server's (it was 500).
    for n in ["abc", "99999999999999999999", "", "1.5"] {
        let res = alice
            .http
            .post(server.url("/api/my_apps"))
            .header(header::ORIGIN, server.base.clone())
            .form(&[("page", n)])
            .timeout(PATIENCE)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "my_apps page={n:?}");
    }
    for (endpoint, n, page) in [
        ("my_apps", "9223372036854775807", 2),
        ("my_apps", "-9223372036854775808", 1),
        ("my_sessions", "9223372036854775807", 1),
    ] {
        let res = alice
            .http
            .post(server.url(&format!("/api/{endpoint}")))
            .header(header::ORIGIN, server.base.clone())
            .form(&[("page", n)])
            .timeout(PATIENCE)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{endpoint} page={n}: {e}"));
        assert_eq!(res.status(), StatusCode::OK, "{endpoint} page={n}");
        let body: Value = res.json().await.unwrap();
        let list = if endpoint == "my_apps" {
            &body["apps"]
        } else {
            &body["sessions"]
        };
        assert_eq!(list["page"], page, "{endpoint} page={n}: {body}");
    }
    t.cleanup().await;
}
