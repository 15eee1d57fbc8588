//! The console's sign-in providers over real HTTP, on both backends: 403 for
//! non-admins (pages and every function); adding, editing and removing a
//! provider through the server functions, audited with only the fields that
//! changed; the client secret sealed under the upstream key the server
//! provides (an empty secret field keeps it), and never in a page or answer;
//! a bad issuer refused with its field named and nothing stored.

mod common;

use app::domain::{
    audit_search::{self, AuditFilter},
    upstream,
};
use common::{count, flow::*, master_key, TestDb, TestServer};
use reqwest::{header, StatusCode};

on_both_backends!(
    non_admins_get_403_on_provider_pages_and_functions,
    providers_are_added_edited_and_removed_from_the_console,
);

const SECRET: &str = "upstream-secret-from-the-console";
const NEW_SECRET: &str = "rotated-upstream-secret";

async fn admin(t: &TestDb, server: &TestServer) -> Person {
    admin_person(t, server, "root").await
}

/// A console server function called as the hydrated page calls it (JSON answer).
async fn call(
    person: &Person,
    server: &TestServer,
    name: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    person
        .http
        .post(server.url(&format!("/api/console/{name}")))
        .header(header::ORIGIN, server.base.clone())
        .header(header::ACCEPT, "application/json")
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn page(person: &Person, server: &TestServer, path: &str) -> (StatusCode, String) {
    let res = person.http.get(server.url(path)).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

fn provider_form<'a>(changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("name", "Corp SSO"),
        ("issuer", "https://sso.corp.example"),
        ("client_id", "latchkey"),
        ("client_secret", SECRET),
        ("scopes", "profile offline_access"),
        ("revoke_at_logout", "on"),
        ("revocation_endpoint", ""),
        ("revocation_token_param", ""),
        ("revocation_extra_params", ""),
    ];
    for (k, v) in changes {
        match form.iter_mut().find(|(key, _)| key == k) {
            Some(field) => field.1 = v,
            None => form.push((k, v)),
        }
    }
    form.retain(|(_, v)| *v != "<absent>");
    form
}

/// The `upstream_provider_changed` events, oldest first, as JSON text.
async fn provider_events(t: &TestDb) -> Vec<serde_json::Value> {
    let filter = AuditFilter {
        kind: Some("upstream_provider_changed".into()),
        ..Default::default()
    }
    .validated()
    .unwrap();
    let found = audit_search::search(&t.db, &filter, app::model::PageRequest::clamped(1, 100))
        .await
        .unwrap();
    let mut events: Vec<_> = found.events.into_iter().map(|e| e.detail).collect();
    events.reverse();
    events
}

async fn non_admins_get_403_on_provider_pages_and_functions(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let sealer = upstream::sealer(master_key());
    let new = upstream::NewProvider {
        name: "Corp SSO".into(),
        issuer: "https://sso.corp.example".into(),
        client_id: "latchkey".into(),
        client_secret: SECRET.into(),
        revoke_at_logout: true,
        ..Default::default()
    };
    let provider = upstream::add(&t.db, &sealer, &new, &app::domain::audit::Actor::default())
        .await
        .unwrap();
    let alice = person(&t, &server, "alice").await;
    for path in [
        "/admin/upstreams".to_string(),
        format!("/admin/upstreams/{}", provider.id),
    ] {
        let (status, body) = page(&alice, &server, &path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains(r#"data-testid="forbidden""#), "{path}");
    }
    let id = provider.id.as_str();
    let mut edit = provider_form(&[("name", "Taken over")]);
    edit.push(("provider_id", id));
    for (name, form) in [
        ("upstreams", vec![]),
        ("upstream", vec![("provider_id", id)]),
        ("add_upstream", provider_form(&[("name", "Evil SSO")])),
        ("update_upstream", edit),
        ("remove_upstream", vec![("provider_id", id)]),
    ] {
        let res = call(&alice, &server, name, &form).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}");
        assert!(!res.text().await.unwrap().contains(SECRET), "{name}");
    }
    let list = upstream::list(&t.db).await.unwrap();
    assert_eq!(list.len(), 1, "nothing added or removed");
    assert_eq!(list[0].name, "Corp SSO", "nothing changed");
    t.cleanup().await;
}

async fn providers_are_added_edited_and_removed_from_the_console(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let sealer = upstream::sealer(master_key());
    let root = admin(&t, &server).await;

    // A bad issuer: 400 naming the field, nothing stored.
    let res = call(
        &root,
        &server,
        "add_upstream",
        &provider_form(&[("issuer", "http://sso.corp.example")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("issuer: "));
    assert_eq!(count(&t.db, "upstream_providers").await, 0);

    // Added: the secret sealed under the upstream key the server provides.
    let res = call(&root, &server, "add_upstream", &provider_form(&[])).await;
    assert!(res.status().is_success(), "{}", res.status());
    let list = upstream::list(&t.db).await.unwrap();
    assert_eq!(list.len(), 1);
    let p = list[0].clone();
    assert_eq!(p.scopes, ["profile", "offline_access"]);
    assert!(p.revoke_at_logout && !p.end_upstream_session);
    assert_eq!(
        upstream::client_secret(&t.db, &sealer, &p.id)
            .await
            .unwrap(),
        SECRET
    );

    // The list and the provider's page: the redirect URI from the issuer, never the secret.
    let callback = format!("{}/signin/upstream/callback", server.base);
    let (status, list_page) = page(&root, &server, "/admin/upstreams").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list_page.contains("Corp SSO") && list_page.contains(&callback));
    let (status, detail) = page(&root, &server, &format!("/admin/upstreams/{}", p.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(detail.contains(r#"data-testid="upstream-health""#));
    assert!(detail.contains(&callback));
    let answer = call(&root, &server, "upstream", &[("provider_id", &p.id)]).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let answer = answer.text().await.unwrap();
    assert!(answer.contains("sso.corp.example"));
    for text in [&list_page, &detail, &answer] {
        assert!(!text.contains(SECRET), "the secret never leaves the server");
    }
    // Found by its id only (the domain's `find` also takes a name).
    let (status, _) = page(&root, &server, "/admin/upstreams/Corp%20SSO").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Edited: an empty secret keeps it; only the fields that changed are audited.
    let mut edit = provider_form(&[
        ("name", "Corp SSO EU"),
        ("client_secret", ""),
        ("revoke_at_logout", "<absent>"),
        ("issuer", "https://elsewhere.example"),
    ]);
    edit.push(("provider_id", &p.id));
    let res = call(&root, &server, "update_upstream", &edit).await;
    assert!(res.status().is_success(), "{}", res.status());
    let after = upstream::find(&t.db, &p.id).await.unwrap().unwrap();
    assert_eq!(after.name, "Corp SSO EU");
    assert!(!after.revoke_at_logout);
    assert_eq!(
        after.issuer, "https://sso.corp.example",
        "the issuer cannot change"
    );
    assert_eq!(
        upstream::client_secret(&t.db, &sealer, &p.id)
            .await
            .unwrap(),
        SECRET
    );
    let events = provider_events(&t).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[1]["fields"],
        serde_json::json!(["name", "revoke_at_logout"])
    );

    // A new secret, the overrides; a refused override changes nothing.
    let mut edit = provider_form(&[
        ("name", "Corp SSO EU"),
        ("client_secret", NEW_SECRET),
        ("revoke_at_logout", "<absent>"),
        ("revocation_token_param", "refresh_token"),
        (
            "revocation_extra_params",
            "tenant=corp\r\n\r\naudience=latchkey",
        ),
    ]);
    edit.push(("provider_id", &p.id));
    let res = call(&root, &server, "update_upstream", &edit).await;
    assert!(res.status().is_success(), "{}", res.status());
    let after = upstream::find(&t.db, &p.id).await.unwrap().unwrap();
    assert_eq!(
        after.revocation_token_param.as_deref(),
        Some("refresh_token")
    );
    assert_eq!(after.revocation_extra_params.len(), 2);
    assert_eq!(after.revocation_extra_params["tenant"], "corp");
    assert_eq!(
        upstream::client_secret(&t.db, &sealer, &p.id)
            .await
            .unwrap(),
        NEW_SECRET
    );
    let mut bad = provider_form(&[("revocation_extra_params", "client_secret=x")]);
    bad.push(("provider_id", &p.id));
    let res = call(&root, &server, "update_upstream", &bad).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("revocation_extra_params: "));
    assert_eq!(upstream::find(&t.db, &p.id).await.unwrap().unwrap(), after);
    let events = provider_events(&t).await;
    assert_eq!(events.len(), 3);
    let audited = serde_json::to_string(&events).unwrap();
    assert!(!audited.contains(SECRET) && !audited.contains(NEW_SECRET));

    // Removed: gone from the list; the page answers 404.
    let res = call(&root, &server, "remove_upstream", &[("provider_id", &p.id)]).await;
    assert!(res.status().is_success(), "{}", res.status());
    assert!(upstream::list(&t.db).await.unwrap().is_empty());
    let (status, _) = page(&root, &server, &format!("/admin/upstreams/{}", p.id)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let events = provider_events(&t).await;
    assert_eq!(events[3]["change"], "removed");
    t.cleanup().await;
}
