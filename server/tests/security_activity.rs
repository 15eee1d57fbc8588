//! A person's Security activity (issue 14, item 3) over real HTTP, on both
//! backends: what Latchkey or an administrator did to their account, the apps
//! that got access, new devices and lockouts, in plain words with a link;
//! what they did themselves is not listed; nobody sees another's events; the
//! top bar counts the unseen ones until the page is opened.

mod common;

use app::domain::{admin, audit::Actor, clients::ClientKind, my_apps, users};
use common::{browser, flow::*, TestDb, TestServer};
use reqwest::{header, StatusCode};

on_both_backends!(
    what_was_done_to_the_account_is_listed_newest_first_and_counted_until_seen,
    own_actions_are_not_listed_and_nobody_sees_anothers_events,
    new_devices_and_lockouts_are_listed,
    replayed_codes_are_not_listed_and_an_admin_sign_out_is_listed_once_per_session,
);

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0";
const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

async fn page(person: &Person, server: &TestServer, path: &str) -> String {
    let res = person.http.get(server.url(path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.text().await.unwrap()
}

/// The top bar's unseen count on My apps (`None`: no badge).
async fn unseen(person: &Person, server: &TestServer) -> Option<u32> {
    let html = page(person, server, "/").await;
    let at = html.find(r#"data-testid="security-unseen""#)?;
    let text = html[at..].split_once('>').unwrap().1;
    Some(text.split('<').next().unwrap().trim().parse().unwrap())
}

/// The `data-kind`s of the listed events, in page order.
fn kinds(html: &str) -> Vec<String> {
    html.split(r#"data-testid="security-event" data-kind=""#)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

async fn what_was_done_to_the_account_is_listed_newest_first_and_counted_until_seen(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let alice = person(&t, &server, "alice").await;
    let root = users::add_user(&t.db, "root", PASSWORD, true)
        .await
        .unwrap();
    let by_root = Actor::user(&root.id);
    assert_eq!(unseen(&alice, &server).await, None, "nothing yet");

    // 1. Notes got access.
    let tokens = tokens_for(&alice, &server, &notes, "openid notes:read").await;
    // 2. Its refresh token used twice: reuse detection ends the session.
    let refresh_token = str_of(&tokens, "refresh_token").to_owned();
    assert_eq!(
        refresh(&server, &notes, &refresh_token).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        refresh(&server, &notes, &refresh_token).await.status(),
        StatusCode::BAD_REQUEST
    );
    // 3. An administrator revokes all of her apps (the grant outlived the
    // reuse: only the session ended).
    admin::revoke_user_apps(
        &t.db,
        &server.revoked,
        &alice.user_id,
        &by_root,
        "lost laptop",
    )
    .await
    .unwrap();
    // 4. Consent again, then an administrator revokes every token of Notes.
    tokens_for(&alice, &server, &notes, "openid notes:read").await;
    admin::revoke_client(&t.db, &server.revoked, &notes.client_id, &by_root)
        .await
        .unwrap();

    // consent, reuse, admin revoke, consent, admin revoke of the client.
    assert_eq!(unseen(&alice, &server).await, Some(5));
    let html = page(&alice, &server, "/security").await;
    assert_eq!(
        kinds(&html),
        [
            "revoked",
            "consent_granted",
            "revoked",
            "reuse_detected",
            "consent_granted"
        ],
        "newest first: {html}"
    );
    assert!(
        html.contains("A session of Notes was ended to protect you"),
        "{html}"
    );
    assert!(html.contains("used twice"));
    assert!(
        html.contains("An administrator revoked every app"),
        "{html}"
    );
    assert!(!html.contains("lost laptop"), "an admin's reason is theirs");
    assert!(
        html.contains("An administrator revoked the access of Notes"),
        "{html}"
    );
    assert!(
        html.contains("You allowed it to: Know who you are: your Latchkey account id; Test words for notes:read."),
        "the catalogue's words: {html}"
    );
    assert!(html.contains("Notes got access to your account"));
    assert_eq!(
        html.matches(r#"class="badge ok">New<"#).count(),
        5,
        "all unseen at first look"
    );
    // Seen now: no badge, no "New".
    assert_eq!(unseen(&alice, &server).await, None);
    let again = page(&alice, &server, "/security").await;
    assert!(!again.contains(r#"class="badge ok">New<"#));
    assert_eq!(kinds(&again).len(), 5);
    // A new event counts again, and is the only one marked new.
    tokens_for(&alice, &server, &notes, "openid notes:read").await;
    assert_eq!(unseen(&alice, &server).await, Some(1));
    let html = page(&alice, &server, "/security").await;
    assert_eq!(html.matches(r#"class="badge ok">New<"#).count(), 1);
    // Its link goes to the app's page, which is live again.
    assert!(html.contains(r#"href="/apps/"#), "{html}");
    t.cleanup().await;
}

async fn own_actions_are_not_listed_and_nobody_sees_anothers_events(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let alice = person(&t, &server, "alice").await;
    let bob = person(&t, &server, "bob").await;
    let tokens = tokens_for(&alice, &server, &notes, "openid notes:read").await;
    // The app revokes its own token (RFC 7009), she revokes the app, signs out.
    revoke_by_rfc7009(&server, &notes, str_of(&tokens, "refresh_token")).await;
    tokens_for(&alice, &server, &notes, "openid notes:read").await;
    let grant = app::domain::grants::live_grant(&t.db, &alice.user_id, &notes.client_id)
        .await
        .unwrap()
        .unwrap();
    my_apps::revoke_app(&t.db, &server.revoked, &alice.user_id, &grant.id)
        .await
        .unwrap();
    let second = another_browser(&alice, &server).await;
    sign_out(&second, &server).await;
    let html = page(&alice, &server, "/security").await;
    assert_eq!(kinds(&html), ["consent_granted"], "{html}");

    // Bob sees none of it, and his own event only.
    let html = page(&bob, &server, "/security").await;
    assert!(
        html.contains(r#"data-testid="no-security-events""#),
        "{html}"
    );
    tokens_for(&bob, &server, &notes, "openid").await;
    assert_eq!(unseen(&bob, &server).await, Some(1));
    let html = page(&bob, &server, "/security").await;
    assert_eq!(kinds(&html), ["consent_granted"]);
    // Signed out: no activity for anyone.
    let res = browser()
        .0
        .get(server.url("/security"))
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    assert!(!text.contains(r#"data-testid="security-event""#));
    t.cleanup().await;
}

async fn new_devices_and_lockouts_are_listed(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    users::add_user(&t.db, "carol", PASSWORD, false)
        .await
        .unwrap();
    let sign_in_with = |agent: &'static str, password: &'static str| {
        let server = &server;
        async move {
            browser()
                .0
                .post(server.url("/signin"))
                .header(header::USER_AGENT, agent)
                .form(&[("username", "carol"), ("password", password), ("next", "/")])
                .send()
                .await
                .unwrap()
        }
    };
    let first = sign_in_with(FIREFOX, PASSWORD).await;
    assert_eq!(location(&first), "/");
    sign_in_with(FIREFOX, PASSWORD).await;
    sign_in_with(CHROME_MAC, PASSWORD).await;
    sign_in_with(CHROME_MAC, PASSWORD).await;
    // Five wrong passwords lock the username (the default throttle).
    for _ in 0..5 {
        sign_in_with(FIREFOX, "wrong-password-1").await;
    }
    assert_eq!(
        common::count(
            &t.db,
            "audit_events WHERE kind = 'sign_in_throttled' AND subject_user_id IS NOT NULL"
        )
        .await,
        1,
        "the lockout names the account"
    );
    let carol = Person {
        http: browser().0,
        user_id: String::new(),
        username: "carol".into(),
    };
    // Signed in as carol again once the lockout is lifted by an admin.
    let user = users::find_by_username(&t.db, "carol")
        .await
        .unwrap()
        .unwrap();
    app::domain::throttle::clear(&t.db, &user.id, "carol", &Actor::default())
        .await
        .unwrap();
    sign_in(&carol, &server).await;
    let html = page(&carol, &server, "/security").await;
    let listed = kinds(&html);
    assert_eq!(listed, ["login", "sign_in_throttled", "login"], "{html}");
    assert!(html.contains("New sign-in from Chrome on macOS"), "{html}");
    assert!(html.contains("Sign-ins to your account were paused"));
    assert!(html.contains(r#"href="/sessions""#));
    t.cleanup().await;
}

async fn replayed_codes_are_not_listed_and_an_admin_sign_out_is_listed_once_per_session(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let alice = person(&t, &server, "alice").await;
    // A used code replayed three times: audited, but not a session of hers that ended.
    let code = code_for(&alice, &server, &notes, "openid notes:read").await;
    assert_eq!(
        redeem(&server, &notes, &code).await.status(),
        StatusCode::OK
    );
    for _ in 0..3 {
        assert_eq!(
            redeem(&server, &notes, &code).await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        common::count(&t.db, "audit_events WHERE kind = 'reuse_detected'").await,
        3,
        "the replays are in the audit log"
    );
    // An administrator signs out her two sessions (the second from Firefox).
    let firefox = browser().0;
    let res = firefox
        .post(server.url("/signin"))
        .header(header::USER_AGENT, FIREFOX)
        .form(&[("username", "alice"), ("password", PASSWORD), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/");
    let root = users::add_user(&t.db, "root", PASSWORD, true)
        .await
        .unwrap();
    let done = admin::sign_out_everywhere(
        &t.db,
        &server.revoked,
        &alice.user_id,
        &Actor::user(&root.id),
    )
    .await
    .unwrap();
    assert_eq!(done.sessions_ended, 2);
    let again = another_browser(&alice, &server).await;
    let html = page(&again, &server, "/security").await;
    assert_eq!(
        kinds(&html),
        ["logout", "logout", "login", "consent_granted"],
        "two sign-outs, her Firefox sign-in (a new device), the consent: {html}"
    );
    assert!(
        html.contains("Your sign-in on Firefox on Linux was ended"),
        "{html}"
    );
    assert!(
        !html.contains("admin signed the user out everywhere"),
        "an admin's reason is theirs"
    );
    assert!(
        !html.contains("change your password"),
        "there is no such page"
    );
    t.cleanup().await;
}
