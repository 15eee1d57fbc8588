//! Apps people recognise and permissions in plain words (issue 14, items 1
//! and 2), on both backends: RFC 7591 client metadata (logo, home page,
//! policy, terms, description) validated, stored and shown on the consent
//! page and in My apps; the scope catalogue's rules (registration takes only
//! catalogued scopes, a scope in use cannot be removed, built-in wording
//! cannot be redefined, every change audited) and its words, sensitive first.

mod common;

use app::domain::{
    audit::Actor,
    clients::{
        self, ClientChange, ClientKind, ClientMetadata, ClientMetadataChange, GrantType, NewClient,
    },
    scopes, DomainError,
};
use common::{count, exec, flow::*, TestDb, TestServer};
use reqwest::StatusCode;

on_both_backends!(
    client_metadata_is_validated_before_anything_is_written,
    client_metadata_is_stored_changed_and_removed,
    consent_page_and_my_apps_show_the_app_as_registered,
    registration_takes_only_catalogued_scopes,
    a_scope_in_use_cannot_be_removed_and_builtins_cannot_be_redefined,
    scopes_registered_before_the_catalogue_are_adopted,
    consent_and_my_apps_use_the_catalogues_words_sensitive_first,
    authorize_refuses_a_scope_that_left_the_catalogue,
);

fn web_app(name: &str, metadata: ClientMetadata) -> NewClient {
    NewClient {
        name: name.into(),
        kind: ClientKind::Confidential,
        redirect_uris: vec!["https://app.example/cb".into()],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        extra_scopes: vec![],
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        metadata,
    }
}

/// Metadata with one field set.
fn with_field(field: &str, value: String) -> ClientMetadata {
    let value = Some(value);
    match field {
        "logo_uri" => ClientMetadata {
            logo_uri: value,
            ..Default::default()
        },
        "client_uri" => ClientMetadata {
            client_uri: value,
            ..Default::default()
        },
        "policy_uri" => ClientMetadata {
            policy_uri: value,
            ..Default::default()
        },
        "tos_uri" => ClientMetadata {
            tos_uri: value,
            ..Default::default()
        },
        "description" => ClientMetadata {
            description: value,
            ..Default::default()
        },
        other => panic!("no field {other}"),
    }
}

fn field_of(e: DomainError) -> &'static str {
    match e {
        DomainError::Invalid { field, .. } => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

async fn client_metadata_is_validated_before_anything_is_written(t: TestDb) {
    let long = format!("https://app.example/{}", "a".repeat(500));
    let bad = [
        ("logo_uri", "javascript:alert(1)".to_owned()),
        ("logo_uri", "data:image/png;base64,iVBORw0KGgo=".into()),
        ("logo_uri", "http://evil.example/logo.png".into()),
        ("logo_uri", "http://127.0.0.5/logo.png".into()),
        ("logo_uri", "https://user:pw@app.example/logo.png".into()),
        ("logo_uri", long),
        ("client_uri", "https://app.example/#top".into()),
        ("client_uri", "ftp://app.example/".into()),
        ("policy_uri", "not a url".into()),
        ("tos_uri", "https:///no-host".into()),
        ("description", "d".repeat(301)),
        ("description", "two\nlines".into()),
        ("description", "\u{202e}live".into()),
    ];
    for (field, value) in bad {
        let metadata = with_field(field, value);
        let shown = format!("{metadata:?}");
        let e = clients::add_client(&t.db, &web_app("Bad", metadata))
            .await
            .expect_err(&shown);
        assert_eq!(field_of(e), field, "{shown}");
    }
    assert_eq!(count(&t.db, "clients").await, 0, "nothing written");
    // Edits check the same rules, and change nothing when refused.
    let (client, _) = clients::add_client(&t.db, &web_app("Good", ClientMetadata::default()))
        .await
        .unwrap();
    let change = ClientChange {
        name: Some("Renamed".into()),
        metadata: ClientMetadataChange {
            tos_uri: Some("vbscript:msgbox".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let e = clients::update_client(&t.db, &client.client_id, &change, &Actor::default())
        .await
        .unwrap_err();
    assert_eq!(field_of(e), "tos_uri");
    let now = clients::find_client(&t.db, &client.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.name, "Good", "the refused edit changed nothing");
    t.cleanup().await;
}

async fn client_metadata_is_stored_changed_and_removed(t: TestDb) {
    let metadata = ClientMetadata {
        logo_uri: Some("https://cdn.notes.example/logo.png".into()),
        client_uri: Some("https://notes.example/".into()),
        policy_uri: Some("http://127.0.0.1:8080/privacy".into()),
        tos_uri: Some("  https://notes.example/terms  ".into()),
        description: Some(" Write notes and read them anywhere. ".into()),
    };
    let (client, _) = clients::add_client(&t.db, &web_app("Notes", metadata))
        .await
        .unwrap();
    let stored = clients::find_client(&t.db, &client.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.metadata,
        ClientMetadata {
            logo_uri: Some("https://cdn.notes.example/logo.png".into()),
            client_uri: Some("https://notes.example/".into()),
            policy_uri: Some("http://127.0.0.1:8080/privacy".into()),
            tos_uri: Some("https://notes.example/terms".into()),
            description: Some("Write notes and read them anywhere.".into()),
        },
        "trimmed as stored"
    );
    assert_eq!(
        stored.metadata.identity(&stored.name).home_host.as_deref(),
        Some("notes.example")
    );
    // An empty value removes a field; fields not named stay.
    let change = ClientChange {
        metadata: ClientMetadataChange {
            logo_uri: Some(String::new()),
            description: Some("Notes, everywhere.".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let after = clients::update_client(&t.db, &client.client_id, &change, &Actor::default())
        .await
        .unwrap();
    assert_eq!(after.metadata.logo_uri, None);
    assert_eq!(
        after.metadata.description.as_deref(),
        Some("Notes, everywhere.")
    );
    assert_eq!(
        after.metadata.client_uri.as_deref(),
        Some("https://notes.example/")
    );
    let read = clients::find_client(&t.db, &client.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.metadata, after.metadata, "as written");
    // The audit event shows before and after.
    let detail = common::text_value(
        &t.db,
        "SELECT detail FROM audit_events WHERE kind = 'client_updated' AND client_id = $1",
        &client.client_id,
    )
    .await
    .unwrap();
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(
        detail["before"]["logo_uri"],
        "https://cdn.notes.example/logo.png"
    );
    assert!(detail["after"]["logo_uri"].is_null());
    t.cleanup().await;
}

async fn consent_page_and_my_apps_show_the_app_as_registered(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(
        &t,
        "Notes & <Co>",
        ClientKind::Confidential,
        &["notes:read"],
    )
    .await;
    let change = ClientChange {
        metadata: ClientMetadataChange {
            logo_uri: Some(format!("{}/favicon.svg?a=1&b=2", server.base)),
            client_uri: Some("https://notes.example/home".into()),
            policy_uri: Some("https://notes.example/privacy".into()),
            tos_uri: Some("https://notes.example/terms".into()),
            description: Some("Notes <b>you</b> keep".into()),
        },
        ..Default::default()
    };
    clients::update_client(&t.db, &notes.client_id, &change, &Actor::default())
        .await
        .unwrap();
    let alice = person(&t, &server, "alice").await;
    let res = get_authorize(
        &alice.http,
        &server,
        &authorize_params(&notes, "openid notes:read"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = res.text().await.unwrap();
    let logo = format!(
        r#"<img src="{}/favicon.svg?a=1&amp;b=2" alt="" referrerpolicy="no-referrer""#,
        server.base
    );
    assert!(
        html.contains(&logo),
        "the logo, escaped, without a referrer: {html}"
    );
    assert!(
        csp.contains("img-src 'self' data: https: http://localhost:* http://127.0.0.1:*"),
        "{csp}"
    );
    assert!(
        html.contains(r#">notes.example</a>"#),
        "the home page's host: {html}"
    );
    assert!(
        html.contains("Notes &lt;b&gt;you&lt;/b&gt; keep"),
        "the description, escaped"
    );
    assert!(!html.contains("<b>you</b>"));
    assert!(
        html.contains(r#"href="https://notes.example/privacy""#),
        "policy link"
    );
    assert!(
        html.contains(r#"href="https://notes.example/terms""#),
        "terms link"
    );
    assert!(
        html.contains(r#"<span class="app-letter">N</span>"#),
        "the letter tile under the logo"
    );
    let res = decide(&alice.http, &server, &request_id(&html), "allow").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // My apps: the same app, logo and home page.
    let res = alice.http.get(server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains("Notes &amp; &lt;Co&gt;"), "the name, escaped");
    assert!(page.contains(r#"referrerpolicy="no-referrer""#), "{page}");
    assert!(
        page.contains(&format!("{}/favicon.svg?a=1&amp;b=2", server.base)),
        "{page}"
    );
    assert!(page.contains(r#"data-testid="app-home""#) && page.contains(">notes.example<"));

    // Without a logo: only the letter tile.
    let bob = person(&t, &server, "bob").await;
    let plain = app(&t, "plain", ClientKind::Confidential, &[]).await;
    tokens_for(&bob, &server, &plain, "openid").await;
    let page = bob
        .http
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"<span class="app-letter">P</span>"#),
        "{page}"
    );
    assert!(!page.contains("referrerpolicy"), "no image without a logo");
    t.cleanup().await;
}

async fn registration_takes_only_catalogued_scopes(t: TestDb) {
    let new = NewClient {
        extra_scopes: vec!["reports:read".into()],
        ..web_app("Reports", ClientMetadata::default())
    };
    let e = clients::add_client(&t.db, &new).await.unwrap_err();
    let text = e.to_string();
    assert_eq!(field_of(e), "extra_scopes");
    assert!(
        text.contains("reports:read") && text.contains("catalogue"),
        "{text}"
    );
    assert_eq!(count(&t.db, "clients").await, 0);
    // Built-in scopes need no entry.
    let builtin = NewClient {
        extra_scopes: vec!["profile".into(), "latchkey:admin".into()],
        ..web_app("Builtin", ClientMetadata::default())
    };
    clients::add_client(&t.db, &builtin).await.unwrap();
    // Once catalogued, it registers; an edit adding another uncatalogued one is refused.
    scopes::define(
        &t.db,
        "reports:read",
        "Read your reports",
        Some(false),
        &Actor::default(),
    )
    .await
    .unwrap();
    let (client, _) = clients::add_client(&t.db, &new).await.unwrap();
    assert_eq!(client.extra_scopes, ["reports:read"]);
    let change = ClientChange {
        extra_scopes: Some(vec!["reports:read".into(), "reports:write".into()]),
        ..Default::default()
    };
    let e = clients::update_client(&t.db, &client.client_id, &change, &Actor::default())
        .await
        .unwrap_err();
    assert_eq!(field_of(e), "extra_scopes");
    let read = clients::find_client(&t.db, &client.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.extra_scopes, ["reports:read"], "unchanged");
    t.cleanup().await;
}

async fn a_scope_in_use_cannot_be_removed_and_builtins_cannot_be_redefined(t: TestDb) {
    let actor = Actor::default();
    for (scope, words, field) in [
        ("openid", "Anything", "scope"),
        ("latchkey:admin", "Anything", "scope"),
        ("has space", "Anything", "scope"),
        ("quote\"d", "Anything", "scope"),
        ("notes:read", "   ", "description"),
        ("notes:read", &"w".repeat(121), "description"),
        ("notes:read", "two\nlines", "description"),
    ] {
        let e = scopes::define(&t.db, scope, words, Some(false), &actor)
            .await
            .unwrap_err();
        assert_eq!(field_of(e), field, "{scope:?} {words:?}");
    }
    assert_eq!(count(&t.db, "scope_catalogue").await, 0);
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'scope_defined'").await,
        0
    );

    let first = scopes::define(
        &t.db,
        "notes:read",
        " Read your notes ",
        Some(false),
        &actor,
    )
    .await
    .unwrap();
    assert_eq!(first.description, "Read your notes");
    let again = scopes::define(
        &t.db,
        "notes:read",
        "Read all your notes",
        Some(true),
        &actor,
    )
    .await
    .unwrap();
    assert!(again.sensitive);
    assert_eq!(
        again.created_at, first.created_at,
        "changed, not re-created"
    );
    let listed = scopes::list(&t.db).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].description, "Read all your notes");

    let notes = app(&t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let e = scopes::remove(&t.db, "notes:read", &actor)
        .await
        .unwrap_err();
    match e {
        DomainError::Conflict(message) => assert!(message.contains("Notes"), "{message}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(count(&t.db, "scope_catalogue").await, 1, "still there");
    let change = ClientChange {
        extra_scopes: Some(vec![]),
        ..Default::default()
    };
    clients::update_client(&t.db, &notes.client_id, &change, &actor)
        .await
        .unwrap();
    scopes::remove(&t.db, "notes:read", &actor).await.unwrap();
    assert_eq!(count(&t.db, "scope_catalogue").await, 0);
    assert!(matches!(
        scopes::remove(&t.db, "notes:read", &actor).await,
        Err(DomainError::NotFound)
    ));
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'scope_defined'").await,
        2
    );
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'scope_removed'").await,
        1
    );
    t.cleanup().await;
}

async fn scopes_registered_before_the_catalogue_are_adopted(t: TestDb) {
    app(
        &t,
        "Legacy",
        ClientKind::Confidential,
        &["legacy:read", "profile"],
    )
    .await;
    // As a database from before the catalogue: the scope registered, no entry.
    exec(&t.db, "DELETE FROM scope_catalogue").await;
    t.db.migrate().await.unwrap();
    let listed = scopes::list(&t.db).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].scope, "legacy:read");
    assert_eq!(
        listed[0].description,
        "Use the “legacy:read” permission this app defines"
    );
    // Once adopted, nothing more to do; an admin's words are kept.
    scopes::define(
        &t.db,
        "legacy:read",
        "Read your old files",
        Some(false),
        &Actor::default(),
    )
    .await
    .unwrap();
    t.db.migrate().await.unwrap();
    assert_eq!(
        scopes::list(&t.db).await.unwrap()[0].description,
        "Read your old files"
    );
    t.cleanup().await;
}

async fn consent_and_my_apps_use_the_catalogues_words_sensitive_first(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let actor = Actor::default();
    scopes::define(&t.db, "notes:read", "Read your notes", Some(false), &actor)
        .await
        .unwrap();
    scopes::define(
        &t.db,
        "notes:write",
        "Change and delete your notes",
        Some(true),
        &actor,
    )
    .await
    .unwrap();
    let notes = app(
        &t,
        "Notes",
        ClientKind::Confidential,
        &["notes:read", "notes:write"],
    )
    .await;
    let alice = person(&t, &server, "alice").await;
    let params = authorize_params(&notes, "openid notes:read notes:write");
    let html = get_authorize(&alice.http, &server, &params)
        .await
        .text()
        .await
        .unwrap();
    let sensitive = html
        .find(r#"<li data-scope="notes:write" class="sensitive">"#)
        .expect("the sensitive scope, marked");
    let read = html.find("Read your notes").expect("the catalogue's words");
    let who = html.find("Know who you are").expect("the built-in words");
    assert!(
        sensitive < who && sensitive < read,
        "sensitive first: {html}"
    );
    assert!(html.contains("Change and delete your notes"));
    assert!(!html.contains("permission this app defines"));
    decide(&alice.http, &server, &request_id(&html), "allow").await;

    let page = alice
        .http
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Read your notes"), "{page}");
    let chip = page.find(r#"class="sensitive""#).expect("a sensitive chip");
    assert!(
        chip < page.find("Read your notes").unwrap(),
        "sensitive first"
    );
    t.cleanup().await;
}

async fn authorize_refuses_a_scope_that_left_the_catalogue(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let alice = person(&t, &server, "alice").await;
    // Removed while the client still lists it (a removal racing an edit).
    exec(
        &t.db,
        "DELETE FROM scope_catalogue WHERE scope = 'notes:read'",
    )
    .await;
    let res = get_authorize(
        &alice.http,
        &server,
        &authorize_params(&notes, "openid notes:read"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let q = query_of(&location(&res));
    assert_eq!(q["error"], "invalid_scope", "{q:?}");
    assert!(q["error_description"].contains("notes:read"));
    // Built-in scopes still go through.
    let res = get_authorize(&alice.http, &server, &authorize_params(&notes, "openid")).await;
    assert_eq!(res.status(), StatusCode::OK, "the consent page");
    t.cleanup().await;
}
