//! The admin console's pages and server functions over real HTTP, on both
//! backends: 403 for non-admins (pages and every function), and each
//! function's effect — policy saved or refused with nothing changed, bulk
//! revocation seen at the protocol level, users disabled, secrets rotated,
//! clients created, edited and deleted, the audit log filtered and exported;
//! any page number answers a page; an unknown action changes nothing; a
//! refused form post without JavaScript back on its form with the message.

mod common;

use app::domain::clients::ClientKind;
use common::{count, exec, flow::*, get_or_fail, TestDb, TestServer, PATIENCE};
use reqwest::{header, StatusCode};
use serde_json::Value;

on_both_backends!(
    non_admins_get_403_on_pages_and_functions,
    policy_is_saved_or_refused_whole,
    client_lifecycle_from_the_console,
    bulk_revocation_and_user_controls_take_effect,
    charts_and_audit_log_show_what_happened,
    audit_page_numbers_of_any_size_answer_a_page,
    unknown_actions_are_refused_and_change_nothing,
    refused_plain_form_posts_go_back_to_the_form_with_the_message,
    scope_catalogue_and_app_identity_from_the_console,
    a_page_whose_data_cannot_be_read_says_so,
);

async fn admin(t: &TestDb, server: &TestServer) -> Person {
    // The scope the tests register clients for.
    catalogue(&t.db, &["reports:read"]).await;
    admin_person(t, server, "root").await
}

/// A console server function called like a form post without JavaScript.
async fn call(
    person: &Person,
    server: &TestServer,
    name: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    form_post(person, server, &format!("console/{name}"), None, form).await
}

/// A form post to `/api/{endpoint}` accepting HTML, as a browser without
/// JavaScript sends it; from `page` (the Referer) when given.
async fn form_post(
    person: &Person,
    server: &TestServer,
    endpoint: &str,
    page: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = person
        .http
        .post(server.url(&format!("/api/{endpoint}")))
        .header(header::ORIGIN, server.base.clone())
        .header(header::ACCEPT, "text/html")
        .form(form);
    if let Some(page) = page {
        request = request.header(header::REFERER, server.url(page));
    }
    request.send().await.unwrap()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn html(person: &Person, server: &TestServer, path: &str) -> (StatusCode, String) {
    let res = person.http.get(server.url(path)).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

const POLICY_INHERIT: [(&str, &str); 7] = [
    ("refresh_enabled", "inherit"),
    ("access_ttl", ""),
    ("refresh_idle_ttl", ""),
    ("refresh_absolute_ttl", ""),
    ("rotate_refresh", "inherit"),
    ("reuse_grace", ""),
    ("revoke_on_logout", "inherit"),
];

fn policy_form<'a>(client_id: &'a str, changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![("client_id", client_id)];
    for (k, v) in POLICY_INHERIT {
        form.push((
            k,
            changes
                .iter()
                .find(|(c, _)| *c == k)
                .map(|(_, v)| *v)
                .unwrap_or(v),
        ));
    }
    form
}

async fn non_admins_get_403_on_pages_and_functions(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let alice = person(&t, &server, "alice").await;
    let (signed_out, _) = common::browser();
    for path in [
        "/admin",
        "/admin/clients",
        &format!("/admin/clients/{}", notes.client_id),
        "/admin/users",
        "/admin/audit",
        "/admin/defaults",
        "/admin/audit/export?format=csv",
    ] {
        let (status, body) = html(&alice, &server, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains(r#"data-testid="forbidden""#), "{path}");
        // Nobody signed in: to sign-in, and back to exactly this page
        // (`callers::signed_in_or_refused`, pages and the export alike).
        let res = signed_out.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        let next: String = url::form_urlencoded::parse(
            res.headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .split_once('?')
                .unwrap()
                .1
                .as_bytes(),
        )
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())
        .unwrap();
        assert_eq!(next, path);
    }
    let id = notes.client_id.as_str();
    for (name, form) in [
        ("home", vec![]),
        ("clients", vec![("q", "")]),
        ("client", vec![("client_id", id)]),
        (
            "client_policy",
            policy_form(id, &[("refresh_enabled", "off")]),
        ),
        ("revoke_client", vec![("client_id", id)]),
        ("rotate_secret", vec![("client_id", id)]),
        ("delete_client", vec![("client_id", id), ("name", "Notes")]),
        ("users", vec![("q", "")]),
        (
            "update_user",
            vec![("user_id", alice.user_id.as_str()), ("what", "make_admin")],
        ),
        (
            "cut_user",
            vec![("user_id", alice.user_id.as_str()), ("what", "apps")],
        ),
    ] {
        let res = call(&alice, &server, name, &form).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}");
    }
    assert_eq!(
        count(&t.db, "clients WHERE deleted_at IS NULL").await,
        1,
        "nothing changed"
    );
    assert_eq!(count(&t.db, "users WHERE is_admin").await, 0);
    // Signed out: the page sends to sign-in.
    let (anonymous, _) = common::browser();
    let res = anonymous.get(server.url("/admin")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    t.cleanup().await;
}

async fn policy_is_saved_or_refused_whole(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let root = admin(&t, &server).await;
    let alice = person(&t, &server, "alice").await;
    let tokens = tokens_for(&alice, &server, &notes, "openid").await;
    let id = notes.client_id.as_str();

    let (status, page) = html(&root, &server, &format!("/admin/clients/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Inherits default (10m)"));
    assert!(
        page.contains("Switching refresh off stops 1 live refresh token"),
        "{page}"
    );

    // Out of range (and inconsistent) values: refused, nothing saved.
    for bad in [
        policy_form(id, &[("access_ttl", "30s")]),
        policy_form(
            id,
            &[("refresh_idle_ttl", "30d"), ("refresh_absolute_ttl", "1d")],
        ),
        policy_form(id, &[("refresh_enabled", "maybe")]),
    ] {
        let res = call(&root, &server, "client_policy", &bad).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad:?}");
    }
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'policy_changed'").await,
        0
    );

    let res = call(
        &root,
        &server,
        "client_policy",
        &policy_form(id, &[("refresh_enabled", "off"), ("access_ttl", "5m")]),
    )
    .await;
    assert_eq!(location(&res), format!("/admin/clients/{id}?saved=policy"));
    let (_, error) =
        oauth_error(refresh(&server, &notes, str_of(&tokens, "refresh_token")).await).await;
    assert_eq!(error, "unauthorized_client");
    let (_, page) = html(&root, &server, &format!("/admin/clients/{id}")).await;
    assert!(page.contains("Override: 5m. Effective: 5m."));
    let res = call(
        &root,
        &server,
        "client_policy",
        &policy_form(id, &[("access_ttl", "5m")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let renewed: Value = refresh(&server, &notes, str_of(&tokens, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    let claims = jwt_part(str_of(&renewed, "access_token"), 1);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );

    // Defaults: no "inherit" there; a valid change applies to inheriting clients.
    let defaults: Vec<(&str, &str)> = vec![
        ("refresh_enabled", "on"),
        ("access_ttl", "15m"),
        ("refresh_idle_ttl", "14d"),
        ("refresh_absolute_ttl", "90d"),
        ("rotate_refresh", "on"),
        ("reuse_grace", "0s"),
        ("revoke_on_logout", "on"),
    ];
    let res = call(&root, &server, "save_defaults", &defaults).await;
    assert_eq!(location(&res), "/admin/defaults?saved=1");
    let (_, page) = html(&root, &server, "/admin/defaults").await;
    assert!(page.contains("Now: 15m."));
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'policy_changed'").await,
        3
    );
    t.cleanup().await;
}

async fn client_lifecycle_from_the_console(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let root = admin(&t, &server).await;
    let create = [
        ("name", "Reports"),
        ("kind", "confidential"),
        ("redirect_uris", "https://reports.example/cb"),
        ("post_logout_redirect_uris", ""),
        ("grant_code", "on"),
        ("grant_refresh", "on"),
        ("extra_scopes", "reports:read"),
    ];
    // Bad input: a message naming the field, nothing created.
    let mut bad = create.to_vec();
    bad[2] = ("redirect_uris", "not a uri");
    let res = call(&root, &server, "create_client", &bad).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("redirect_uri"));
    assert_eq!(count(&t.db, "clients").await, 0);

    let res = call(&root, &server, "create_client", &create).await;
    let to = location(&res);
    let id = to
        .trim_start_matches("/admin/clients/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    // The secret is shown once, on the next page view only.
    let (_, page) = html(&root, &server, &to).await;
    let marker = r#"data-testid="new-secret""#;
    assert!(page.contains(marker), "{page}");
    let start = page.find(marker).unwrap();
    let value_at = page[..start].rfind("value=\"").unwrap() + 7;
    let secret = page[value_at..].split('"').next().unwrap().to_owned();
    let (_, again) = html(&root, &server, &to).await;
    assert!(!again.contains(marker), "shown once");
    let reports = App {
        client_id: id.clone(),
        secret: Some(secret.clone()),
        redirect_uri: "https://reports.example/cb".into(),
        post_logout_uri: String::new(),
    };
    let (_, error) = oauth_error(
        token_request(&server, &reports, &[("grant_type", "client_credentials")]).await,
    )
    .await;
    assert_eq!(
        error, "unauthorized_client",
        "authenticated with the shown secret"
    );

    // Edit: a grant type and a name.
    let res = call(
        &root,
        &server,
        "update_client",
        &[
            ("client_id", id.as_str()),
            ("name", "Reports v2"),
            ("redirect_uris", "https://reports.example/cb"),
            ("post_logout_redirect_uris", ""),
            ("grant_code", "on"),
            ("grant_refresh", "on"),
            ("grant_client_credentials", "on"),
            ("extra_scopes", "reports:read"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let res = token_request(&server, &reports, &[("grant_type", "client_credentials")]).await;
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, page) = html(&root, &server, "/admin/clients?q=v2").await;
    assert!(page.contains("Reports v2"));

    // Rotate: the old secret stops at once.
    call(
        &root,
        &server,
        "rotate_secret",
        &[("client_id", id.as_str())],
    )
    .await;
    let res = token_request(&server, &reports, &[("grant_type", "client_credentials")]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Delete: gone from the list, cannot authenticate.
    let res = call(
        &root,
        &server,
        "delete_client",
        &[("client_id", id.as_str()), ("name", "Reports v2")],
    )
    .await;
    assert!(location(&res).starts_with("/admin/clients?deleted=Reports+v2"));
    let (_, page) = html(&root, &server, "/admin/clients").await;
    assert!(!page.contains("Reports v2"));
    t.cleanup().await;
}

async fn bulk_revocation_and_user_controls_take_effect(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let root = admin(&t, &server).await;
    let alice = person(&t, &server, "alice").await;
    let first = tokens_for(&alice, &server, &notes, "openid").await;
    let id = notes.client_id.as_str();

    let (_, page) = html(&root, &server, &format!("/admin/clients/{id}")).await;
    assert!(
        page.contains("1 grants and 1 sessions end at once"),
        "counts stated before"
    );
    let res = call(&root, &server, "revoke_client", &[("client_id", id)]).await;
    assert_eq!(
        location(&res),
        format!("/admin/clients/{id}?revoked_grants=1&revoked_families=1")
    );
    assert!(!is_active(&server, &notes, str_of(&first, "access_token")).await);

    // The user's page: revoke their apps, sign out everywhere, disable.
    let second = tokens_for(&alice, &server, &notes, "openid").await;
    let user_page = format!("/admin/users/{}", alice.user_id);
    let (_, page) = html(&root, &server, &user_page).await;
    assert!(page.contains("Notes") && page.contains("Apps (1)"));
    let res = call(
        &root,
        &server,
        "cut_user",
        &[("user_id", alice.user_id.as_str()), ("what", "apps")],
    )
    .await;
    assert_eq!(location(&res), format!("{user_page}?revoked_grants=1"));
    assert!(!is_active(&server, &notes, str_of(&second, "access_token")).await);
    let res = call(
        &root,
        &server,
        "cut_user",
        &[("user_id", alice.user_id.as_str()), ("what", "sessions")],
    )
    .await;
    assert_eq!(location(&res), format!("{user_page}?sessions_ended=1"));
    let (status, _) = html(&alice, &server, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "signed out everywhere");

    sign_in(&alice, &server).await;
    let third = tokens_for(&alice, &server, &notes, "openid").await;
    let res = call(
        &root,
        &server,
        "update_user",
        &[("user_id", alice.user_id.as_str()), ("what", "disable")],
    )
    .await;
    assert!(location(&res).starts_with(&format!("{user_page}?saved=disable")));
    assert!(!is_active(&server, &notes, str_of(&third, "access_token")).await);
    let res = alice
        .http
        .post(server.url("/signin"))
        .form(&[("username", "alice"), ("password", PASSWORD), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert!(
        location(&res).starts_with("/signin?error=invalid"),
        "a disabled user cannot sign in"
    );

    // The last admin keeps their rights.
    let res = call(
        &root,
        &server,
        "update_user",
        &[("user_id", root.user_id.as_str()), ("what", "remove_admin")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(count(&t.db, "users WHERE is_admin").await, 1);
    // Users are found literally: `%` matches nothing here.
    let (_, page) = html(&root, &server, "/admin/users?q=%25").await;
    assert!(!page.contains("alice"));
    let (_, page) = html(&root, &server, "/admin/users?q=LIC").await;
    assert!(page.contains("alice"));
    t.cleanup().await;
}

async fn charts_and_audit_log_show_what_happened(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let root = admin(&t, &server).await;
    let alice = person(&t, &server, "alice").await;
    let tokens = tokens_for(&alice, &server, &notes, "openid").await;
    refresh(&server, &notes, str_of(&tokens, "refresh_token")).await;
    // The refresh is counted, not audited: it reaches the chart once its
    // count is written (within `usage::FLUSH_EVERY`; here at once).
    server.usage.flush().await.unwrap();
    let (status, page) = html(&root, &server, "/admin").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.matches(r#"data-testid="chart""#).count(), 2);
    assert!(
        page.contains("Issued (1)") && page.contains("Refreshed (1)"),
        "{page}"
    );
    assert!(page.contains(r#"data-testid="top-clients""#) && page.contains(">Notes<"));
    assert!(page.contains("<svg"), "server-rendered SVG");

    let (_, page) = html(&root, &server, "/admin/audit?kind=consent_granted").await;
    assert!(page.contains("1 events."), "{page}");
    let (_, page) = html(&root, &server, "/admin/audit?kind=token_refreshed").await;
    assert!(
        page.contains("0 events."),
        "refreshes are counted, not audited: {page}"
    );
    let res = root
        .http
        .get(server.url("/admin/audit/export?format=json&kind=consent_granted"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let rows: Vec<Value> = res.json().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["kind"], "consent_granted");
    t.cleanup().await;
}

/// The console's audit log with page numbers of every size (issue 9): a
/// page that exists, the last one for a page past the end, never a hang;
/// times beyond the year 9999 are refused with a message, not a 500.
async fn audit_page_numbers_of_any_size_answer_a_page(t: TestDb) {
    use app::domain::audit::{self, AuditEvent, AuditKind};
    let server = TestServer::start(&t.db).await;
    let root = admin(&t, &server).await;
    for _ in 0..60 {
        audit::record(&t.db, &AuditEvent::new(AuditKind::KeysRotated))
            .await
            .unwrap();
    }
    for (n, expected) in [
        ("9223372036854775807", "Page 2 of 2"),
        ("99999999999999999999", "Page 2 of 2"),
        ("2", "Page 2 of 2"),
        ("-9223372036854775808", "Page 1 of 2"),
        ("0", "Page 1 of 2"),
        ("two", "Page 1 of 2"),
    ] {
        let path = format!("/admin/audit?kind=keys_rotated&page={n}");
        let (status, html) = get_or_fail(&root.http, &server.url(&path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(html.contains(expected), "{path}: {expected}");
        let rows = html.matches("<tr><td>").count();
        assert_eq!(
            rows,
            if expected.starts_with("Page 2") {
                10
            } else {
                50
            },
            "{path}"
        );
    }
    // Lists without pages ignore the number.
    for path in [
        "/admin/clients?page=9223372036854775807",
        "/admin/users?page=-1",
    ] {
        let (status, _) = get_or_fail(&root.http, &server.url(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    for path in [
        "/admin/audit?to=9223372036854775807",
        "/admin/audit?from=99999999999999999999",
    ] {
        let (status, html) = get_or_fail(&root.http, &server.url(path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(html.contains("too late"), "{path}");
    }
    // The console function itself, called with any i64: the last page.
    let res = root
        .http
        .post(server.url("/api/console/audit"))
        .header(header::ORIGIN, server.base.clone())
        .form(&[
            ("user", ""),
            ("client", ""),
            ("kind", "keys_rotated"),
            ("from", ""),
            ("to", ""),
            ("page", "9223372036854775807"),
        ])
        .timeout(PATIENCE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (_, page): (Value, Value) = res.json().await.unwrap();
    assert_eq!(
        (&page["page"], &page["total"]),
        (&Value::from(2), &Value::from(60))
    );
    t.cleanup().await;
}

/// Fault 8 of issue 9: the user action treated any unknown `what` as "sign
/// out everywhere". Every console action with a fixed set of choices refuses
/// anything else with 400, and nothing changes.
async fn unknown_actions_are_refused_and_change_nothing(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let root = admin(&t, &server).await;
    let alice = person(&t, &server, "alice").await;
    let tokens = tokens_for(&alice, &server, &notes, "openid").await;
    let alice_id = alice.user_id.as_str();
    let clients_before = count(&t.db, "clients").await;
    for (name, form) in [
        (
            "cut_user",
            vec![("user_id", alice_id), ("what", "everything")],
        ),
        ("cut_user", vec![("user_id", alice_id), ("what", "")]),
        (
            "cut_user",
            vec![("user_id", alice_id), ("what", "Sessions")],
        ),
        (
            "update_user",
            vec![("user_id", alice_id), ("what", "delete")],
        ),
        (
            "create_client",
            vec![
                ("kind", "confidentail"),
                ("name", "Typo"),
                ("redirect_uris", "https://typo.example/cb"),
                ("grant_code", "on"),
            ],
        ),
    ] {
        let res = call(&root, &server, name, &form).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{name} {form:?}");
    }
    // Alice is still signed in, her app's tokens live, nothing was created.
    let (status, _) = html(&alice, &server, "/").await;
    assert_eq!(status, StatusCode::OK, "alice is still signed in");
    assert!(is_active(&server, &notes, str_of(&tokens, "access_token")).await);
    assert_eq!(
        count(&t.db, "login_sessions WHERE ended_at IS NOT NULL").await,
        0
    );
    assert_eq!(count(&t.db, "grants WHERE revoked_at IS NOT NULL").await, 0);
    assert_eq!(
        count(&t.db, "users WHERE disabled_at IS NOT NULL OR is_admin").await,
        1
    );
    assert_eq!(count(&t.db, "clients").await, clients_before);
    t.cleanup().await;
}

/// A refused form post: the server function, the page the form is on (with an
/// earlier action's notice in its query), the form, the message the page must
/// show, and a mark of the form on that page.
struct Refused<'a> {
    endpoint: &'a str,
    page: String,
    form: Vec<(&'a str, &'a str)>,
    message: &'a str,
    form_mark: &'a str,
}

/// Every console (and dashboard) form that can be refused, posted without
/// JavaScript: the browser is sent back to the form's page, which shows the
/// message inline next to the form (not leptos' raw `ServerError|…` text), the
/// earlier notice gone; nothing is saved.
async fn refused_plain_form_posts_go_back_to_the_form_with_the_message(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let root = admin(&t, &server).await;
    let id = notes.client_id.as_str();
    let client_page = format!("/admin/clients/{id}");
    let root_page = format!("/admin/users/{}", root.user_id);
    let defaults = [
        ("refresh_enabled", "on"),
        ("access_ttl", "abc"),
        ("refresh_idle_ttl", "14d"),
        ("refresh_absolute_ttl", "90d"),
        ("rotate_refresh", "on"),
        ("reuse_grace", "0s"),
        ("revoke_on_logout", "on"),
    ];
    let registration = [
        ("client_id", id),
        ("name", "Notes"),
        ("redirect_uris", "https://notes.example/cb"),
        ("post_logout_redirect_uris", ""),
        ("extra_scopes", ""),
    ];
    let new_client = [
        ("name", "Reports"),
        ("kind", "confidential"),
        ("redirect_uris", "not a uri"),
        ("post_logout_redirect_uris", ""),
        ("grant_code", "on"),
        ("extra_scopes", ""),
    ];
    let new_user = [("username", "bob"), ("password", "short")];
    let last_admin = [("user_id", root.user_id.as_str()), ("what", "remove_admin")];
    let grant = [("grant_id", "no-such-grant")];
    let cases = vec![
        Refused {
            endpoint: "console/save_defaults",
            page: "/admin/defaults?saved=1".into(),
            form: defaults.to_vec(),
            message: r#"access_ttl: "abc" is not a duration"#,
            form_mark: r#"data-testid="policy-access_ttl""#,
        },
        Refused {
            endpoint: "console/client_policy",
            page: format!("{client_page}?saved=policy"),
            form: policy_form(id, &[("access_ttl", "0")]),
            message: "access_ttl: 0s is outside",
            form_mark: r#"data-testid="policy-form""#,
        },
        Refused {
            endpoint: "console/update_client",
            page: format!("{client_page}?saved=registration"),
            form: registration.to_vec(),
            message: "grant_type: choose at least one grant type",
            // The edit disclosure is open, with the message and the form inside.
            form_mark: r#"<details open class="edit">"#,
        },
        Refused {
            endpoint: "console/create_client",
            page: "/admin/clients?deleted=Old".into(),
            form: new_client.to_vec(),
            message: "redirect_uri",
            form_mark: r#"id="c-redirect""#,
        },
        Refused {
            endpoint: "console/create_user",
            page: "/admin/users".into(),
            form: new_user.to_vec(),
            message: "password: must be at least 8 characters",
            form_mark: r#"id="u-pass""#,
        },
        Refused {
            endpoint: "console/update_user",
            page: format!("{root_page}?saved=enable"),
            form: last_admin.to_vec(),
            message: "is the last admin",
            form_mark: "Remove admin rights",
        },
        Refused {
            endpoint: "revoke_app",
            page: "/?revoked=Old".into(),
            form: grant.to_vec(),
            message: "Not found: it may have been revoked already.",
            form_mark: r#"data-testid="no-apps""#,
        },
    ];
    for Refused {
        endpoint,
        page,
        form,
        message,
        form_mark,
    } in cases
    {
        let res = form_post(&root, &server, endpoint, Some(&page), &form).await;
        assert_eq!(res.status(), StatusCode::FOUND, "{endpoint}");
        let to = location(&res);
        let path = page.split('?').next().unwrap();
        assert!(
            to.starts_with(&format!("{path}?__path=")) && to.contains("&__err="),
            "{endpoint}: back to {path} with the error, not {to}"
        );
        let (status, html) = html(&root, &server, &to).await;
        assert_eq!(status, StatusCode::OK, "{endpoint}");
        assert!(
            html.contains(r#"data-testid="action-error""#) && html.contains(message),
            "{endpoint}: the message inline: {html}"
        );
        assert!(html.contains(form_mark), "{endpoint}: the form is there");
        assert!(
            !html.contains(r#"data-testid="notice""#),
            "{endpoint}: no earlier notice"
        );
    }
    // Nothing was saved.
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'policy_changed'").await,
        0
    );
    let (_, page) = html(&root, &server, "/admin/defaults").await;
    assert!(page.contains("Now: 10m."), "{page}");
    let (_, page) = html(&root, &server, &client_page).await;
    assert!(page.contains("Inherits default (10m)"));
    assert!(page.contains("authorization_code, refresh_token"));
    assert_eq!(count(&t.db, "clients").await, 1);
    assert_eq!(count(&t.db, "users").await, 1);
    assert_eq!(count(&t.db, "users WHERE is_admin").await, 1);
    t.cleanup().await;
}

async fn scope_catalogue_and_app_identity_from_the_console(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let root = admin(&t, &server).await;
    let (status, page) = html(&root, &server, "/admin/scopes").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"data-scope="reports:read""#), "{page}");
    assert!(page.contains("Test words for reports:read"));
    // Add one; a bad one is refused with the field's message and changes nothing.
    let res = call(
        &root,
        &server,
        "save_scope",
        &[("scope", "files:read"), ("description", "")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("description"));
    let res = call(
        &root,
        &server,
        "save_scope",
        &[
            ("scope", "files:read"),
            ("description", "Read <your> files"),
            ("sensitive", "on"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let (_, page) = html(&root, &server, "/admin/scopes").await;
    assert!(page.contains("Read &lt;your&gt; files"), "escaped: {page}");
    // Its edit form holds the current words and mark (saving keeps what is not changed).
    let row = &page[page.find(r#"data-scope="files:read""#).unwrap()..];
    let row = &row[..row.find("</li>").unwrap()];
    assert!(row.contains(r#"value="Read &lt;your&gt; files""#), "{row}");
    assert!(row.contains(r#"name="sensitive" checked"#), "{row}");
    assert!(page.contains("Sensitive"));
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'scope_defined'").await,
        2
    );

    // A client with its identity, shown on its page.
    let create = [
        ("name", "Files"),
        ("kind", "confidential"),
        ("redirect_uris", "https://files.example/cb"),
        ("post_logout_redirect_uris", ""),
        ("grant_code", "on"),
        ("extra_scopes", "files:read"),
        ("logo_uri", "https://files.example/logo.png"),
        ("client_uri", "https://files.example/"),
        ("description", "Your files"),
    ];
    let mut bad = create.to_vec();
    bad[6] = ("logo_uri", "javascript:alert(1)");
    let res = call(&root, &server, "create_client", &bad).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("logo_uri"));
    let res = call(&root, &server, "create_client", &create).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let to = location(&res);
    let (_, page) = html(&root, &server, &to).await;
    assert!(page.contains(r#"data-testid="client-identity""#), "{page}");
    assert!(page.contains(r#"src="https://files.example/logo.png""#));
    assert!(page.contains(">files.example<"), "the home page's host");
    assert!(
        page.contains(r#"value="https://files.example/logo.png""#),
        "in the edit form"
    );

    // In use: no remove button, and a removal is refused.
    let (_, page) = html(&root, &server, "/admin/scopes").await;
    let row = page.find(r#"data-scope="files:read""#).unwrap();
    let next = page[row..].find("</li>").unwrap() + row;
    assert!(page[row..next].contains("Registered by Files"), "{page}");
    assert!(!page[row..next].contains("Yes, remove it"));
    let res = call(&root, &server, "remove_scope", &[("scope", "files:read")]).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("Files"));
    assert_eq!(
        count(&t.db, "scope_catalogue WHERE scope = 'files:read'").await,
        1
    );
    t.cleanup().await;
}

/// A signed-in admin whose page's data cannot be read (its table is gone
/// for a moment) gets the page frame saying so (`components::layout::Loaded`
/// → `LoadFailed`), not the page and not a sign-in link; back, the page loads.
async fn a_page_whose_data_cannot_be_read_says_so(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let root = admin(&t, &server).await;
    let (status, body) = html(&root, &server, "/admin/scopes").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("This page could not be loaded"), "{body}");
    exec(
        &t.db,
        "ALTER TABLE scope_catalogue RENAME TO scope_catalogue_away",
    )
    .await;
    let (_, body) = html(&root, &server, "/admin/scopes").await;
    exec(
        &t.db,
        "ALTER TABLE scope_catalogue_away RENAME TO scope_catalogue",
    )
    .await;
    assert!(body.contains("This page could not be loaded"), "{body}");
    assert!(body.contains(r#"role="alert""#), "{body}");
    assert!(!body.contains("Sign in again"), "{body}");
    let (_, body) = html(&root, &server, "/admin/scopes").await;
    assert!(!body.contains("This page could not be loaded"), "{body}");
    t.cleanup().await;
}
