//! Sign-in throttling (issue 13, item 1) over real HTTP, on both backends:
//! failures counted per username and per address in the database, so two
//! instances agree and a restart forgets nothing; the same answer for
//! existing and unknown usernames; a success clears the username; admins see
//! and clear a lockout; each lockout audited.

mod common;

use app::domain::users;
use common::{
    browser,
    flow::{cc_token, location, service, PASSWORD},
    TestDb, TestServer,
};
use reqwest::{header, StatusCode};
use serde_json::Value;

on_both_backends!(
    five_failures_lock_a_username_everywhere_until_an_admin_clears_it,
    an_address_failing_too_often_is_locked_for_every_username,
    guesses_sent_all_at_once_get_no_more_tries,
    callbacks_any_site_can_trigger_lock_nobody_out,
    the_cli_lifts_a_lockout,
    a_new_sign_in_ends_the_one_the_browser_held,
    behind_a_trusted_proxy_each_client_address_is_counted_apart,
);

/// Signs in at `server` and returns where the form sends the browser.
async fn sign_in(server: &TestServer, username: &str, password: &str) -> String {
    let res = browser()
        .0
        .post(server.url("/signin"))
        .form(&[
            ("username", username),
            ("password", password),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    location(&res)
}

/// The `error` (and `minutes`) of a sign-in page URL.
fn error_of(to: &str) -> (String, Option<String>) {
    let url = url::Url::parse(&format!("http://x{to}")).unwrap();
    let get = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    (get("error").unwrap_or_default(), get("minutes"))
}

async fn count_where(t: &TestDb, sql: &str) -> i64 {
    common::text_value(
        &t.db,
        &format!("SELECT CAST(({sql}) AS TEXT) WHERE $1 = $1"),
        "-",
    )
    .await
    .unwrap()
    .parse()
    .unwrap()
}

async fn five_failures_lock_a_username_everywhere_until_an_admin_clears_it(t: TestDb) {
    let user = users::add_user(&t.db, "alice", PASSWORD, false)
        .await
        .unwrap();
    // Two instances on one database.
    let a = TestServer::start(&t.db).await;
    let b = TestServer::start(&t.db).await;
    for i in 1..=4 {
        let at = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            error_of(&sign_in(at, "alice", "wrong password").await).0,
            "invalid",
            "failure {i}"
        );
    }
    // The fifth failure, at the other instance, locks the username.
    let (error, minutes) = error_of(&sign_in(&b, "ALICE", "wrong password").await);
    assert_eq!(
        (error.as_str(), minutes.as_deref()),
        ("throttled", Some("1"))
    );
    // The right password is refused too, at either instance, before it is checked.
    assert_eq!(
        error_of(&sign_in(&a, "alice", PASSWORD).await).0,
        "throttled"
    );
    // A restart forgets nothing.
    drop(a);
    let a = TestServer::start(&t.db).await;
    assert_eq!(
        error_of(&sign_in(&a, "alice", PASSWORD).await).0,
        "throttled"
    );
    assert_eq!(
        count_where(&t, "SELECT COUNT(*) FROM login_sessions").await,
        0,
        "nobody signed in"
    );

    // An unknown username gets exactly the same answers.
    let mut unknown = Vec::new();
    for _ in 0..6 {
        unknown.push(error_of(&sign_in(&a, "nobody", "wrong password").await));
    }
    let codes: Vec<&str> = unknown.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        codes,
        [
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "throttled",
            "throttled"
        ]
    );
    assert_eq!(
        count_where(
            &t,
            "SELECT COUNT(*) FROM audit_events WHERE kind = 'sign_in_throttled'"
        )
        .await,
        2,
        "one audit event per lockout"
    );

    // The admin sees the lockout (API and console) and lifts it in the console.
    let robot = service(&t.db, "Ops robot", &["latchkey:admin"]).await;
    let token = cc_token(&a, &robot).await;
    let locked_until = |server: &TestServer| {
        let (url, token) = (
            server.url(&format!("/api/admin/users/{}", user.id)),
            token.clone(),
        );
        async move {
            let detail: Value = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            detail["sign_in_locked_until"].as_i64()
        }
    };
    assert!(locked_until(&a).await.expect("locked") > app::domain::store::now());
    users::add_user(&t.db, "root", PASSWORD, true)
        .await
        .unwrap();
    let root = browser().0;
    let res = root
        .post(a.url("/signin"))
        .form(&[("username", "root"), ("password", PASSWORD), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/");
    let page = |root: reqwest::Client, url: String| async move {
        root.get(url).send().await.unwrap().text().await.unwrap()
    };
    let user_page = a.url(&format!("/admin/users/{}", user.id));
    assert!(page(root.clone(), user_page.clone())
        .await
        .contains("Sign-in is locked until"));
    let res = root
        .post(a.url("/api/console/update_user"))
        .header(header::ORIGIN, &a.base)
        .header(header::ACCEPT, "text/html")
        .form(&[("user_id", user.id.as_str()), ("what", "clear_throttle")])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert!(!page(root.clone(), user_page)
        .await
        .contains("Sign-in is locked until"));
    assert_eq!(locked_until(&a).await, None);
    assert_eq!(
        count_where(
            &t,
            "SELECT COUNT(*) FROM audit_events WHERE kind = 'sign_in_throttle_cleared'"
        )
        .await,
        1
    );
    // Signing in works again, and a success clears the count: four more
    // failures are not yet a lockout; the fifth is, and the admin API lifts it.
    assert_eq!(sign_in(&b, "alice", PASSWORD).await, "/");
    for i in 1..=4 {
        assert_eq!(
            error_of(&sign_in(&b, "alice", "wrong").await).0,
            "invalid",
            "failure {i} after"
        );
    }
    assert_eq!(
        error_of(&sign_in(&b, "alice", "wrong").await).0,
        "throttled"
    );
    let cleared: Value = reqwest::Client::new()
        .post(a.url(&format!(
            "/api/admin/users/{}/clear-sign-in-throttle",
            user.id
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["was_locked"], true);
    assert_eq!(sign_in(&a, "alice", PASSWORD).await, "/");
    t.cleanup().await;
}

async fn an_address_failing_too_often_is_locked_for_every_username(t: TestDb) {
    users::add_user(&t.db, "bob", PASSWORD, false)
        .await
        .unwrap();
    let server = TestServer::start(&t.db).await;
    // Twenty usernames, one failure each: the address reaches its limit.
    for i in 1..=19 {
        let to = sign_in(&server, &format!("guess{i}"), "wrong password").await;
        assert_eq!(error_of(&to).0, "invalid", "failure {i}");
    }
    assert_eq!(
        error_of(&sign_in(&server, "guess20", "wrong password").await).0,
        "throttled"
    );
    // Now every username from this address is refused, the right password too.
    assert_eq!(
        error_of(&sign_in(&server, "bob", PASSWORD).await).0,
        "throttled"
    );
    // Signing in through an upstream provider starts nothing either.
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
    let res = browser()
        .0
        .post(server.url(&format!("/signin/upstream/{}", provider.id)))
        .header(header::ORIGIN, &server.base)
        .form(&[("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(&location(&res)).0, "throttled");
    t.cleanup().await;
}

/// Forty wrong passwords for one username sent at once: each attempt is
/// counted before its password is checked, so only the first five are
/// checked (the fifth locks), not as many as arrive together.
async fn guesses_sent_all_at_once_get_no_more_tries(t: TestDb) {
    users::add_user(&t.db, "alice", PASSWORD, false)
        .await
        .unwrap();
    let server = TestServer::start(&t.db).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let url = server.url("/signin");
        tasks.push(tokio::spawn(async move {
            let res = browser()
                .0
                .post(url)
                .form(&[
                    ("username", "alice"),
                    ("password", &format!("wrong {i}")),
                    ("next", "/"),
                ])
                .send()
                .await
                .unwrap();
            error_of(&location(&res)).0
        }));
    }
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap());
    }
    let invalid = codes.iter().filter(|c| *c == "invalid").count();
    let throttled = codes.iter().filter(|c| *c == "throttled").count();
    assert_eq!((invalid, throttled), (4, 36), "{codes:?}");
    assert_eq!(
        count_where(
            &t,
            "SELECT COUNT(*) FROM audit_events WHERE kind = 'login_failed'"
        )
        .await,
        5,
        "five passwords were checked"
    );
    t.cleanup().await;
}

/// The upstream callback is a GET any site can make a browser send: without
/// a pending sign-in (or with a wrong state) it counts for nothing, so it
/// cannot lock an address out.
async fn callbacks_any_site_can_trigger_lock_nobody_out(t: TestDb) {
    users::add_user(&t.db, "bob", PASSWORD, false)
        .await
        .unwrap();
    let server = TestServer::start(&t.db).await;
    for i in 0..25 {
        let res = browser()
            .0
            .get(server.url(&format!("/signin/upstream/callback?code=x&state=forged{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(&location(&res)).0, "upstream_expired");
    }
    assert_eq!(sign_in(&server, "bob", PASSWORD).await, "/");
    t.cleanup().await;
}

/// `latchkey user unlock` lifts a lockout (when no other admin can).
async fn the_cli_lifts_a_lockout(t: TestDb) {
    users::add_user(&t.db, "alice", PASSWORD, true)
        .await
        .unwrap();
    let server = TestServer::start(&t.db).await;
    for _ in 0..5 {
        sign_in(&server, "alice", "wrong password").await;
    }
    assert_eq!(
        error_of(&sign_in(&server, "alice", PASSWORD).await).0,
        "throttled"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = common::process::cli(
        dir.path(),
        &common::process::process_db_url(&t),
        &["user", "unlock", "ALICE"],
    );
    assert!(out.contains("may sign in again"), "{out}");
    assert_eq!(sign_in(&server, "alice", PASSWORD).await, "/");
    t.cleanup().await;
}

/// Signing in again in a browser that holds a sign-in ends the one it held:
/// otherwise no browser could ever sign it out.
async fn a_new_sign_in_ends_the_one_the_browser_held(t: TestDb) {
    users::add_user(&t.db, "carol", PASSWORD, false)
        .await
        .unwrap();
    let server = TestServer::start(&t.db).await;
    let (http, _jar) = browser();
    for _ in 0..2 {
        let res = http
            .post(server.url("/signin"))
            .form(&[("username", "carol"), ("password", PASSWORD), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(location(&res), "/");
    }
    assert_eq!(
        count_where(&t, "SELECT COUNT(*) FROM login_sessions").await,
        2
    );
    assert_eq!(
        count_where(
            &t,
            "SELECT COUNT(*) FROM login_sessions WHERE ended_at IS NULL"
        )
        .await,
        1,
        "the first one ended"
    );
    assert_eq!(
        common::text_value(
            &t.db,
            "SELECT MAX(end_reason) FROM login_sessions WHERE $1 = $1",
            "-"
        )
        .await
        .as_deref(),
        Some("replaced by a new sign-in")
    );
    t.cleanup().await;
}

/// Behind a trusted reverse proxy (`--trusted-proxy`), the client is the
/// address `X-Forwarded-For` names: twenty failures from one client lock
/// that client only, another client behind the same proxy signs in, and the
/// audit log has the client's address, not the proxy's. (An untrusted peer's
/// header is ignored: `callers::client_ip`'s unit test.)
async fn behind_a_trusted_proxy_each_client_address_is_counted_apart(t: TestDb) {
    use common::process::{empty_site, free_port, process_db_url, start_with};
    users::add_user(&t.db, "bob", PASSWORD, false)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let site = empty_site(dir.path());
    let server = start_with(
        free_port(),
        dir.path(),
        &process_db_url(&t),
        &site,
        None,
        &["--trusted-proxy", "127.0.0.1"],
    )
    .await;
    let through_proxy = |client: &'static str, username: String, password: &'static str| {
        let url = format!("{}/signin", server.base);
        async move {
            let res = browser()
                .0
                .post(url)
                .header("x-forwarded-for", client)
                .form(&[
                    ("username", username.as_str()),
                    ("password", password),
                    ("next", "/"),
                ])
                .send()
                .await
                .unwrap();
            location(&res)
        }
    };
    for i in 1..=19 {
        let to = through_proxy("198.51.100.7", format!("guess{i}"), "wrong").await;
        assert_eq!(error_of(&to).0, "invalid", "failure {i}");
    }
    let to = through_proxy("198.51.100.7", "guess20".into(), "wrong").await;
    assert_eq!(error_of(&to).0, "throttled");
    assert_eq!(
        error_of(&through_proxy("198.51.100.7", "bob".into(), PASSWORD).await).0,
        "throttled",
        "that client is locked"
    );
    assert_eq!(
        through_proxy("198.51.100.8", "bob".into(), PASSWORD).await,
        "/",
        "another client behind the same proxy is not"
    );
    assert_eq!(
        count_where(
            &t,
            "SELECT COUNT(*) FROM audit_events WHERE kind = 'login_failed' AND ip = '198.51.100.7'"
        )
        .await,
        20
    );
    t.cleanup().await;
}
