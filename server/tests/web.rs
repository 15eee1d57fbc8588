//! The dashboard's sign-in over real HTTP, on both backends: session cookie
//! flags, one generic error, no session on failure, session id renewed at
//! sign-in, sign-out ends the session, cross-site posts refused, `next` kept local.

mod common;

use app::domain::demo;
use common::{browser, count, exec, get_or_fail, TestDb, TestServer};
use reqwest::{header, StatusCode};

on_both_backends!(
    signed_out_pages_redirect_to_sign_in_and_back,
    demo_user_signs_in_and_sees_their_name,
    wrong_password_gives_one_message_and_no_session,
    session_id_is_renewed_at_every_sign_in,
    sign_out_ends_the_sign_in_everywhere,
    cross_site_posts_are_refused,
    next_never_leaves_the_site,
    disabled_user_cannot_sign_in,
    session_cookie_is_secure_behind_an_https_issuer,
    every_page_names_its_own_nonce_in_its_policy,
    pages_finish_while_other_servers_start,
);

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn set_cookie(res: &reqwest::Response) -> Option<String> {
    set_cookie_named(res, "latchkey_session")
}

fn set_cookie_named(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
}

async fn post_sign_in(
    http: &reqwest::Client,
    server: &TestServer,
    username: &str,
    password: &str,
    next: &str,
) -> reqwest::Response {
    http.post(server.url("/signin"))
        .header(header::ORIGIN, server.base.clone())
        .form(&[
            ("username", username),
            ("password", password),
            ("next", next),
        ])
        .send()
        .await
        .unwrap()
}

async fn seeded(t: &TestDb) -> TestServer {
    demo::seed(&t.db).await.unwrap();
    TestServer::start(&t.db).await
}

async fn signed_out_pages_redirect_to_sign_in_and_back(t: TestDb) {
    let server = seeded(&t).await;
    let (http, _) = browser();
    let res = http.get(server.url("/?tab=apps")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/signin?next=%2F%3Ftab%3Dapps");
    let page = http
        .get(server.url("/signin?next=%2F%3Ftab%3Dapps"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let body = page.text().await.unwrap();
    assert!(body.contains(r#"name="username""#) && body.contains(r#"name="password""#));
    assert!(
        body.contains(r#"name="next" value="/?tab=apps""#),
        "next carried in the form"
    );
    // Signing in goes back where the user wanted to go.
    let (user, password) = demo::USER;
    let res = post_sign_in(&http, &server, user, password, "/?tab=apps").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/?tab=apps");
    t.cleanup().await;
}

async fn demo_user_signs_in_and_sees_their_name(t: TestDb) {
    let server = seeded(&t).await;
    let (http, _) = browser();
    let (user, password) = demo::USER;
    let res = post_sign_in(&http, &server, user, password, "/").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(&res).expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain-http issuer: {cookie}");

    let home = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let body = home.text().await.unwrap();
    assert!(
        body.contains(r#"<strong data-testid="topbar-username">alice</strong>"#),
        "{body}"
    );
    assert!(body.contains(r#"action="/signout""#));
    assert_eq!(
        count(&t.db, "login_sessions WHERE ended_at IS NULL").await,
        1
    );
    assert_eq!(count(&t.db, "audit_events WHERE kind = 'login'").await, 1);
    t.cleanup().await;
}

async fn wrong_password_gives_one_message_and_no_session(t: TestDb) {
    let server = seeded(&t).await;
    let (http, _) = browser();
    let wrong_password = post_sign_in(&http, &server, "alice", "not-her-password", "/").await;
    let unknown_user = post_sign_in(&http, &server, "mallory", "not-her-password", "/").await;
    for res in [&wrong_password, &unknown_user] {
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert!(
            location(res).starts_with("/signin?error=invalid&"),
            "{}",
            location(res)
        );
        assert!(set_cookie(res).is_none(), "no session cookie on failure");
    }
    let page = http
        .get(server.url(&location(&wrong_password)))
        .send()
        .await
        .unwrap();
    let body = page.text().await.unwrap();
    assert!(body.contains("Wrong username or password."));
    assert!(
        !body.contains("not-her-password"),
        "the password is never echoed"
    );
    assert_eq!(count(&t.db, "tower_sessions").await, 0);
    assert_eq!(count(&t.db, "login_sessions").await, 0);
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'login_failed'").await,
        2
    );
    // Empty fields: a message of their own, still no session.
    let empty = post_sign_in(&http, &server, "", "", "/").await;
    assert!(location(&empty).starts_with("/signin?error=missing"));
    assert_eq!(count(&t.db, "tower_sessions").await, 0);
    t.cleanup().await;
}

async fn session_id_is_renewed_at_every_sign_in(t: TestDb) {
    let server = seeded(&t).await;
    let (http, _) = browser();
    let (user, password) = demo::USER;
    let first = set_cookie(&post_sign_in(&http, &server, user, password, "/").await).unwrap();
    let second = set_cookie(&post_sign_in(&http, &server, user, password, "/").await).unwrap();
    let value = |c: &str| c.split(';').next().unwrap().to_owned();
    assert_ne!(value(&first), value(&second));
    // The first id is dead: a browser still holding it is signed out.
    let (stale, _) = browser();
    let res = stale
        .get(server.url("/"))
        .header(header::COOKIE, value(&first))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = stale
        .get(server.url("/"))
        .header(header::COOKIE, value(&second))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    t.cleanup().await;
}

async fn sign_out_ends_the_sign_in_everywhere(t: TestDb) {
    let server = seeded(&t).await;
    let (http, _) = browser();
    let (user, password) = demo::USER;
    let cookie = set_cookie(&post_sign_in(&http, &server, user, password, "/").await).unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let res = http
        .post(server.url("/signout"))
        .header(header::ORIGIN, server.base.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/signin?signed_out=1");
    assert_eq!(
        count(&t.db, "login_sessions WHERE ended_at IS NOT NULL").await,
        1
    );
    assert_eq!(count(&t.db, "audit_events WHERE kind = 'logout'").await, 1);
    // A copy of the old cookie (another tab, a thief) gets nothing.
    let (other, _) = browser();
    let res = other
        .get(server.url("/"))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).starts_with("/signin"));
    t.cleanup().await;
}

async fn cross_site_posts_are_refused(t: TestDb) {
    let server = seeded(&t).await;
    let (http, _) = browser();
    let (user, password) = demo::USER;
    for (name, value) in [
        (header::ORIGIN, "https://evil.example".to_owned()),
        (header::ORIGIN, "null".to_owned()),
        (header::REFERER, "https://evil.example/page".to_owned()),
    ] {
        let res = http
            .post(server.url("/signin"))
            .header(name.clone(), value.clone())
            .form(&[("username", user), ("password", password), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        assert!(set_cookie(&res).is_none());
        assert!(res.text().await.unwrap().contains("came from another site"));
    }
    assert_eq!(count(&t.db, "login_sessions").await, 0);

    // Signed in, a cross-site sign-out post is refused and the session lives on.
    post_sign_in(&http, &server, user, password, "/").await;
    let res = http
        .post(server.url("/signout"))
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        count(&t.db, "login_sessions WHERE ended_at IS NULL").await,
        1
    );
    // Same for server functions.
    let res = http
        .post(server.url("/api/current_user"))
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    t.cleanup().await;
}

async fn next_never_leaves_the_site(t: TestDb) {
    let server = seeded(&t).await;
    let (user, password) = demo::USER;
    for next in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
    ] {
        let (http, _) = browser();
        let res = post_sign_in(&http, &server, user, password, next).await;
        assert_eq!(location(&res), "/", "next={next}");
    }
    t.cleanup().await;
}

async fn disabled_user_cannot_sign_in(t: TestDb) {
    let server = seeded(&t).await;
    let (http, _) = browser();
    let (user, password) = demo::USER;
    post_sign_in(&http, &server, user, password, "/").await;
    exec(
        &t.db,
        "UPDATE users SET disabled_at = 1 WHERE username = 'alice'",
    )
    .await;
    // The live session stops working at once, and signing in again fails.
    let res = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = post_sign_in(&http, &server, user, password, "/").await;
    assert!(location(&res).starts_with("/signin?error=invalid"));
    t.cleanup().await;
}

async fn session_cookie_is_secure_behind_an_https_issuer(t: TestDb) {
    demo::seed(&t.db).await.unwrap();
    let server = TestServer::start_with_issuer(&t.db, Some("https://id.example.com")).await;
    let (http, _) = browser();
    let (user, password) = demo::USER;
    let res = post_sign_in(&http, &server, user, password, "/").await;
    // `__Host-`: Secure, for `/`, no Domain (browsers refuse it otherwise).
    assert!(set_cookie(&res).is_none());
    let cookie = set_cookie_named(&res, "__Host-latchkey_session").expect("cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("; Path=/"), "{cookie}");
    assert!(!cookie.to_lowercase().contains("domain="), "{cookie}");
    // HSTS on every answer of an https issuer, and on none of an http one.
    for path in ["/signin", "/oauth/jwks", "/healthz"] {
        let res = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(
            res.headers()[header::STRICT_TRANSPORT_SECURITY],
            "max-age=31536000",
            "{path}"
        );
    }
    let plain = TestServer::start(&t.db).await;
    let res = http.get(plain.url("/signin")).send().await.unwrap();
    assert!(!res
        .headers()
        .contains_key(header::STRICT_TRANSPORT_SECURITY));
    assert!(set_cookie(&post_sign_in(&http, &plain, user, password, "/").await).is_some());
    t.cleanup().await;
}

/// The nonce of a policy header.
fn nonce_of(policy: &str) -> String {
    let start = policy.find("'nonce-").expect("a nonce") + "'nonce-".len();
    policy[start..].split('\'').next().unwrap().to_owned()
}

async fn every_page_names_its_own_nonce_in_its_policy(t: TestDb) {
    let server = seeded(&t).await;
    let (http, _) = browser();
    let mut seen = Vec::new();
    // The sign-in page, a page not found (the fallback renders it), twice each.
    for path in ["/signin", "/signin", "/no-such-page", "/no-such-page"] {
        let res = http.get(server.url(path)).send().await.unwrap();
        let policy = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        let nonce = nonce_of(&policy);
        assert_eq!(nonce.len(), 22, "{path}: 128 bits, base64url");
        let html = res.text().await.unwrap();
        let scripts: Vec<&str> = html.split("<script").skip(1).collect();
        assert!(!scripts.is_empty(), "{path}: the hydration script");
        for script in scripts {
            let tag = script.split('>').next().unwrap();
            assert!(
                tag.contains(&format!("nonce=\"{nonce}\"")),
                "{path}: a script without this answer's nonce: <script{tag}>"
            );
        }
        seen.push(nonce);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "a new nonce for every answer");
    // JSON answers keep only frame-ancestors.
    let res = http.get(server.url("/oauth/jwks")).send().await.unwrap();
    assert_eq!(
        res.headers()[header::CONTENT_SECURITY_POLICY],
        "frame-ancestors 'none'"
    );
    t.cleanup().await;
}

/// Building a server (its route list) while another server in the process
/// renders pages never leaves a page unfinished. leptos_axum's route-list
/// generation suppresses resource loading process-wide, and a resource first
/// polled meanwhile never loads (leptos-rs/leptos#4773): the sign-in page
/// (its providers are a resource) hung forever in the tests, which start
/// many servers in one process. The route list is generated once per process.
async fn pages_finish_while_other_servers_start(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let db = t.db.clone();
    let starting = tokio::spawn(async move {
        for _ in 0..30 {
            drop(TestServer::start(&db).await);
        }
    });
    let (http, _) = browser();
    let url = format!("{}/signin", server.base);
    let mut pages = 0;
    while !starting.is_finished() || pages < 30 {
        let (status, html) = get_or_fail(&http, &url).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("</html>"), "an unfinished page: {html}");
        pages += 1;
    }
    starting.await.unwrap();
    t.cleanup().await;
}
