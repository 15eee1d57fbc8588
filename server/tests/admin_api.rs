//! The admin REST API over real HTTP, on both backends: Bearer authentication
//! with Latchkey's own `latchkey:admin` tokens (and losing it the moment they
//! are revoked), clients, token policy, users, the audit log and its export,
//! the OpenAPI document.

mod common;

use app::domain::clients::ClientKind;
use common::{browser, flow::*, TestDb, TestServer};
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    admin_api_needs_a_live_latchkey_admin_token,
    revoking_the_admin_clients_tokens_cuts_api_access_at_once,
    clients_are_created_edited_searched_and_deleted,
    secret_rotation_stops_the_old_secret_at_once,
    client_revoke_makes_every_token_of_the_client_inactive,
    policy_changes_are_validated_and_apply_at_once,
    policy_defaults_are_read_and_changed,
    users_are_created_searched_and_shown,
    non_ascii_names_are_refused_and_found_in_any_case,
    disabling_a_user_cuts_off_tokens_and_sign_in,
    the_last_admin_keeps_their_rights,
    user_bulk_revocations_answer_counts,
    audit_log_filters_pages_and_exports,
    numbers_of_any_size_are_bounded,
    unknown_ids_and_routes_are_json_404s,
    openapi_document_lists_every_route_and_the_bearer_scheme,
    resource_servers_are_registered_read_and_removed,
    upstream_providers_are_added_read_changed_and_removed,
    unreadable_queries_are_documented_400s,
    scope_catalogue_and_client_metadata_through_the_api,
);

const ADMIN_SCOPE: &str = "latchkey:admin";

/// Calls the admin API: status, headers and the JSON body (`Null` if none).
struct Api<'a> {
    server: &'a TestServer,
    token: Option<String>,
}

struct Answer {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Value,
    text: String,
}

impl Answer {
    /// Asserts an error answer with this status, code and (if given) field.
    fn error(&self, status: StatusCode, error: &str, field: Option<&str>) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.body["error"], error, "{}", self.text);
        assert!(self.body["message"].is_string(), "{}", self.text);
        if let Some(field) = field {
            assert_eq!(self.body["field"], field, "{}", self.text);
        }
    }

    fn ok(&self) -> &Value {
        assert!(self.status.is_success(), "{} {}", self.status, self.text);
        &self.body
    }
}

impl<'a> Api<'a> {
    fn new(server: &'a TestServer, token: &str) -> Self {
        Api {
            server,
            token: Some(token.to_owned()),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = reqwest::Client::new().request(method, self.server.url(path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let res = request.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }
}

/// A server, an admin API client and an API handle with its token.
async fn setup(t: &TestDb) -> (TestServer, App, String) {
    let server = TestServer::start(&t.db).await;
    let admin = service(&t.db, "Ops robot", &[ADMIN_SCOPE]).await;
    let token = cc_token(&server, &admin).await;
    // The scopes the tests register clients for.
    catalogue(&t.db, &["notes:read", "notes:write", "reports:read"]).await;
    (server, admin, token)
}

async fn sign_in_status(server: &TestServer, username: &str) -> String {
    let res = browser()
        .0
        .post(server.url("/signin"))
        .form(&[
            ("username", username),
            ("password", PASSWORD),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    location(&res)
}

async fn admin_api_needs_a_live_latchkey_admin_token(t: TestDb) {
    let (server, admin, token) = setup(&t).await;
    // No token: 401 with a bare Bearer challenge, as JSON (so this route won
    // over the server functions' /api/{*fn_name}).
    let anonymous = Api {
        server: &server,
        token: None,
    };
    let res = anonymous.get("/api/admin/clients").await;
    res.error(StatusCode::UNAUTHORIZED, "invalid_request", None);
    assert_eq!(
        res.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"latchkey\""
    );
    let res = anonymous
        .post(
            "/api/admin/users",
            json!({ "username": "x", "password": "y" }),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "checked before the body"
    );

    // Garbage and tampered tokens: 401 invalid_token.
    let mut tampered = token.clone();
    tampered.pop();
    for bad in ["not-a-jwt", "a.b.c", tampered.as_str()] {
        let res = Api::new(&server, bad).get("/api/admin/clients").await;
        res.error(StatusCode::UNAUTHORIZED, "invalid_token", None);
        let challenge = res.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
            "{challenge}"
        );
    }

    // A client_credentials token without latchkey:admin: 403.
    let reports = service(&t.db, "Reports", &["reports:read"]).await;
    let reports_token = cc_token(&server, &reports).await;
    let res = Api::new(&server, &reports_token)
        .get("/api/admin/clients")
        .await;
    res.error(StatusCode::FORBIDDEN, "insufficient_scope", None);
    let challenge = res.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"latchkey:admin\""),
        "{challenge}"
    );

    // A person's token: 403, even from an app allowed latchkey:admin (a person
    // cannot consent to that scope at all: /oauth/authorize refuses it, see
    // flows.rs; admin rights are not a consent).
    let sneaky = app(&t, "Sneaky", ClientKind::Confidential, &[ADMIN_SCOPE]).await;
    let alice = person(&t, &server, "alice").await;
    let body = tokens_for(&alice, &server, &sneaky, "openid").await;
    let res = Api::new(&server, str_of(&body, "access_token"))
        .get("/api/admin/clients")
        .await;
    res.error(StatusCode::FORBIDDEN, "insufficient_scope", None);

    // The admin client's token: 200, JSON, never cached.
    let res = Api::new(&server, &token).get("/api/admin/clients").await;
    let body = res.ok();
    assert_eq!(res.headers[header::CACHE_CONTROL], "no-store");
    assert!(res.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(body["clients"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["client_id"] == admin.client_id.as_str()));

    // Taking latchkey:admin away from the client applies at the next call.
    let api = Api::new(&server, &token);
    api.patch(
        &format!("/api/admin/clients/{}", admin.client_id),
        json!({ "extra_scopes": ["reports:read"] }),
    )
    .await
    .ok();
    api.get("/api/admin/clients")
        .await
        .error(StatusCode::FORBIDDEN, "insufficient_scope", None);
    t.cleanup().await;
}

async fn revoking_the_admin_clients_tokens_cuts_api_access_at_once(t: TestDb) {
    let (server, admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    api.get("/api/admin/users").await.ok();
    let res = api
        .post(
            &format!("/api/admin/clients/{}/revoke", admin.client_id),
            json!({}),
        )
        .await;
    assert_eq!(
        res.ok(),
        &json!({ "grants_revoked": 1, "families_revoked": 0 })
    );
    // The very next request with the same token is refused.
    let res = api.get("/api/admin/users").await;
    res.error(StatusCode::UNAUTHORIZED, "invalid_token", None);
    assert!(res.headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    assert!(!is_active(&server, &admin, &token).await);
    // A new token works again (the client itself is not deleted).
    let fresh = cc_token(&server, &admin).await;
    Api::new(&server, &fresh).get("/api/admin/users").await.ok();
    // The revocation is in the audit log, done by the client.
    let audit = Api::new(&server, &fresh)
        .get(&format!(
            "/api/admin/audit?kind=revoked&client={}",
            admin.client_id
        ))
        .await;
    let events = audit.ok()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor_client_id"], admin.client_id.as_str());
    assert_eq!(events[0]["detail"]["what"], "client_grants");
    t.cleanup().await;
}

async fn clients_are_created_edited_searched_and_deleted(t: TestDb) {
    let (server, admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);

    // Validation: 422 naming the field; not JSON: 400.
    api.post(
        "/api/admin/clients",
        json!({ "name": "Bad", "redirect_uris": ["/relative"] }),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("redirect_uri"),
    );
    api.post("/api/admin/clients", json!({ "name": "No URIs" }))
        .await
        .error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("redirect_uri"),
        );
    api.post(
        "/api/admin/clients",
        json!({ "name": "Pub", "kind": "public", "grant_types": ["client_credentials"] }),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("grant_type"),
    );
    api.post(
        "/api/admin/clients",
        json!({ "name": "X", "redirect_uris": ["https://x.example/cb"], "grant_types": ["password"] }),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("grant_types"),
    );
    api.post(
        "/api/admin/clients",
        json!({ "name": "X", "redirect_uris": ["https://x.example/cb"], "colour": "red" }),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("colour"),
    );
    api.post("/api/admin/clients", json!({ "kind": "public" }))
        .await
        .error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("name"),
        );
    let res = reqwest::Client::new()
        .post(server.url("/api/admin/clients"))
        .bearer_auth(&token)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(
        common::count(&t.db, "clients").await,
        1,
        "nothing was created"
    );

    // Create: 201, the secret once, a Location.
    let res = api
        .post(
            "/api/admin/clients",
            json!({
                "name": "100% Notes",
                "redirect_uris": ["https://notes.example/cb"],
                "post_logout_redirect_uris": ["https://notes.example/bye"],
                "extra_scopes": ["notes:read"],
            }),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let notes_id = str_of(&res.body["client"], "client_id").to_owned();
    assert_eq!(
        res.headers[header::LOCATION],
        format!("/api/admin/clients/{notes_id}").as_str()
    );
    assert_eq!(res.body["client"]["kind"], "confidential");
    assert_eq!(
        res.body["client"]["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(res.body["client"]["refresh_enabled"], true);
    let secret = str_of(&res.body, "client_secret").to_owned();
    assert!(secret.len() >= 43);
    api.post(
        "/api/admin/clients",
        json!({ "name": "100% NOTES", "redirect_uris": ["https://n.example/cb"] }),
    )
    .await
    .error(StatusCode::CONFLICT, "conflict", None);
    let res = api
        .post(
            "/api/admin/clients",
            json!({ "name": "SPA", "kind": "public", "redirect_uris": ["https://spa.example/cb"] }),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    assert!(res.body.get("client_secret").is_none(), "public: no secret");
    for name in ["1000 Notes", "Team_Notes", "TeamXNotes"] {
        let res = api
            .post(
                "/api/admin/clients",
                json!({ "name": name, "redirect_uris": ["https://x.example/cb"] }),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    }

    // The new client works at once: a user flow with the secret shown.
    let notes = App {
        client_id: notes_id.clone(),
        secret: Some(secret),
        redirect_uri: "https://notes.example/cb".into(),
        post_logout_uri: "https://notes.example/bye".into(),
    };
    let alice = person(&t, &server, "alice").await;
    tokens_for(&alice, &server, &notes, "openid notes:read").await;

    // Search: substring of name or id, any case, wildcards literal.
    // Sorted here: the server sorts by the name's key in the database's collation.
    let names = |body: &Value| sorted_names(body, "clients", "name");
    let all = api.get("/api/admin/clients").await;
    assert_eq!(
        names(all.ok()),
        [
            "100% Notes",
            "1000 Notes",
            "Ops robot",
            "SPA",
            "Team_Notes",
            "TeamXNotes"
        ]
    );
    for (q, expected) in [
        ("%25", vec!["100% Notes"]),
        // Client ids are base64url (they may hold `_`): search for more than one character.
        ("team_notes", vec!["Team_Notes"]),
        (
            "NOTES",
            vec!["100% Notes", "1000 Notes", "Team_Notes", "TeamXNotes"],
        ),
        ("%5C", vec![]),
        ("o'", vec![]),
    ] {
        let res = api.get(&format!("/api/admin/clients?q={q}")).await;
        assert_eq!(names(res.ok()), expected, "q={q}");
    }
    let by_id = api
        .get(&format!("/api/admin/clients?q={}", &notes_id[2..10]))
        .await;
    assert_eq!(names(by_id.ok()), ["100% Notes"]);
    let listed = all.body["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == notes_id.as_str())
        .unwrap();
    assert_eq!(listed["client_id"], notes_id.as_str());
    assert_eq!(listed["active_grants"], 1);
    assert_eq!(listed["active_families"], 1);
    assert!(listed["last_activity"].as_i64().unwrap() > 0);
    assert_eq!(listed["refresh_enabled"], true);

    // Read and edit, under the registration rules.
    let path = format!("/api/admin/clients/{notes_id}");
    let got = api.get(&path).await;
    assert_eq!(
        got.ok()["redirect_uris"],
        json!(["https://notes.example/cb"])
    );
    assert_eq!(got.body["extra_scopes"], json!(["notes:read"]));
    api.patch(
        &path,
        json!({ "redirect_uris": ["https://notes.example/cb#x"] }),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("redirect_uri"),
    );
    api.patch(&path, json!({ "kind": "public" })).await.error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("kind"),
    );
    api.patch(&path, json!({ "name": "teamxnotes" }))
        .await
        .error(StatusCode::CONFLICT, "conflict", None);
    api.patch(&path, json!({})).await.error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        None,
    );
    let res = api
        .patch(
            &path,
            json!({
                "name": "Notes",
                "redirect_uris": ["https://notes.example/cb", "https://notes.example/cb2"],
                "grant_types": ["authorization_code"],
                "extra_scopes": ["notes:read", "notes:write"],
            }),
        )
        .await;
    let body = res.ok();
    assert_eq!(body["name"], "Notes");
    assert_eq!(body["grant_types"], json!(["authorization_code"]));
    assert_eq!(body["refresh_enabled"], false, "no refresh_token grant");
    assert_eq!(
        body["post_logout_redirect_uris"],
        json!(["https://notes.example/bye"]),
        "kept"
    );
    let events = api
        .get(&format!(
            "/api/admin/audit?kind=client_updated&client={notes_id}"
        ))
        .await;
    let event = &events.ok()["events"][0];
    assert_eq!(event["actor_client_id"], admin.client_id.as_str());
    assert_eq!(event["detail"]["before"]["name"], "100% Notes");
    assert_eq!(event["detail"]["after"]["name"], "Notes");

    // Delete: everything it holds is revoked first, then it is gone.
    let res = api.delete(&path).await;
    assert_eq!(
        res.ok(),
        &json!({ "client_id": notes_id, "deleted": true, "grants_revoked": 1, "families_revoked": 1 })
    );
    api.get(&path)
        .await
        .error(StatusCode::NOT_FOUND, "not_found", None);
    api.delete(&path)
        .await
        .error(StatusCode::NOT_FOUND, "not_found", None);
    let names_after = names(api.get("/api/admin/clients").await.ok());
    assert!(!names_after.contains(&"Notes".to_owned()));
    let (status, error) = oauth_error(cc_token_response(&server, &notes).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    // Its name is free again.
    let res = api
        .post(
            "/api/admin/clients",
            json!({ "name": "Notes", "redirect_uris": ["https://notes.example/cb"] }),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let kinds: Vec<String> = api
        .get(&format!("/api/admin/audit?client={notes_id}"))
        .await
        .ok()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "client_created",
        "client_updated",
        "revoked",
        "client_deleted",
    ] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} in {kinds:?}");
    }
    t.cleanup().await;
}

async fn secret_rotation_stops_the_old_secret_at_once(t: TestDb) {
    let (server, _admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    let reports = service(&t.db, "Reports", &["reports:read"]).await;
    // Used just before: the server has just seen the old secret work.
    cc_token(&server, &reports).await;
    let res = api
        .post(
            &format!("/api/admin/clients/{}/secret", reports.client_id),
            json!({}),
        )
        .await;
    let body = res.ok();
    assert_eq!(body["client_id"], reports.client_id.as_str());
    let new_secret = str_of(body, "client_secret").to_owned();
    assert_ne!(Some(new_secret.as_str()), reports.secret.as_deref());
    // The old secret: 401 invalid_client at the token endpoint.
    let res = cc_token_response(&server, &reports).await;
    assert!(
        res.headers().contains_key(header::WWW_AUTHENTICATE),
        "{} {:?}",
        res.status(),
        res.headers()
    );
    let (status, error) = oauth_error(res).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    // The new one works.
    let rotated = App {
        secret: Some(new_secret),
        ..reports.clone()
    };
    cc_token(&server, &rotated).await;
    // A public client has no secret to rotate.
    let spa = app(&t, "SPA", ClientKind::Public, &[]).await;
    api.post(
        &format!("/api/admin/clients/{}/secret", spa.client_id),
        json!({}),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("kind"),
    );
    let events = api
        .get(&format!(
            "/api/admin/audit?kind=client_secret_rotated&client={}",
            reports.client_id
        ))
        .await;
    assert_eq!(events.ok()["total"], 1);
    t.cleanup().await;
}

async fn client_revoke_makes_every_token_of_the_client_inactive(t: TestDb) {
    let (server, _, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let alice = person(&t, &server, "alice").await;
    let bob = person(&t, &server, "bob").await;
    let a = tokens_for(&alice, &server, &notes, "openid").await;
    let b = tokens_for(&bob, &server, &notes, "openid").await;
    let b2 = tokens_for(&bob, &server, &notes, "openid").await;
    for body in [&a, &b, &b2] {
        assert!(is_active(&server, &notes, str_of(body, "access_token")).await);
    }
    let res = api
        .post(
            &format!("/api/admin/clients/{}/revoke", notes.client_id),
            json!({}),
        )
        .await;
    assert_eq!(
        res.ok(),
        &json!({ "grants_revoked": 2, "families_revoked": 3 })
    );
    for body in [&a, &b, &b2] {
        assert!(!is_active(&server, &notes, str_of(body, "access_token")).await);
        let (status, error) =
            oauth_error(refresh(&server, &notes, str_of(body, "refresh_token")).await).await;
        assert_eq!(
            (status, error.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
    }
    let listed = api
        .get(&format!("/api/admin/clients/{}", notes.client_id))
        .await;
    assert_eq!(listed.ok()["active_grants"], 0);
    assert_eq!(listed.body["active_families"], 0);
    // Nothing left: a second revocation changes nothing.
    let res = api
        .post(
            &format!("/api/admin/clients/{}/revoke", notes.client_id),
            json!({}),
        )
        .await;
    assert_eq!(
        res.ok(),
        &json!({ "grants_revoked": 0, "families_revoked": 0 })
    );
    t.cleanup().await;
}

async fn policy_changes_are_validated_and_apply_at_once(t: TestDb) {
    let (server, admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let path = format!("/api/admin/clients/{}/policy", notes.client_id);

    let res = api.get(&path).await;
    let body = res.ok();
    assert_eq!(body["client_id"], notes.client_id.as_str());
    assert_eq!(body["overrides"]["access_ttl"], Value::Null);
    assert_eq!(body["defaults"]["access_ttl"], "10m");
    assert_eq!(body["effective"]["access_ttl_secs"], 600);
    assert_eq!(body["effective"]["refresh_idle_ttl"], "14d");
    assert_eq!(body["effective"]["refresh_enabled"], true);

    // Out of range, inconsistent, unparsable: 422 naming the field, nothing saved.
    api.patch(&path, json!({ "access_ttl": "30s" }))
        .await
        .error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("access_ttl"),
        );
    api.patch(&path, json!({ "access_ttl": "25h" }))
        .await
        .error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("access_ttl"),
        );
    api.patch(
        &path,
        json!({ "refresh_idle_ttl": "30d", "refresh_absolute_ttl": "7d" }),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("refresh_absolute_ttl"),
    );
    api.patch(&path, json!({ "reuse_grace": "5 minutes" }))
        .await
        .error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("reuse_grace"),
        );
    api.patch(&path, json!({ "rotate_refresh": "yes" }))
        .await
        .error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("rotate_refresh"),
        );
    api.patch(&path, json!({ "access_tll": "5m" })).await.error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("access_tll"),
    );
    let res = api.get(&path).await;
    assert_eq!(res.ok()["overrides"]["access_ttl"], Value::Null);
    assert_eq!(res.body["overrides"]["refresh_idle_ttl"], Value::Null);
    assert_eq!(res.body["effective"]["access_ttl"], "10m", "nothing saved");
    let changes = api.get("/api/admin/audit?kind=policy_changed").await;
    assert_eq!(changes.ok()["total"], 0);

    // Refresh off: says how many refresh tokens stop; a real refresh then fails.
    let alice = person(&t, &server, "alice").await;
    let body = tokens_for(&alice, &server, &notes, "openid").await;
    let r1 = str_of(&body, "refresh_token").to_owned();
    let res = api.patch(&path, json!({ "refresh_enabled": false })).await;
    let body = res.ok();
    assert_eq!(body["refresh_tokens_stopped"], 1);
    assert_eq!(body["overrides"]["refresh_enabled"], false);
    assert_eq!(body["effective"]["refresh_enabled"], false);
    let (status, error) = oauth_error(refresh(&server, &notes, &r1).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "unauthorized_client")
    );
    // Back to inheriting (null): the same token works again.
    let res = api.patch(&path, json!({ "refresh_enabled": null })).await;
    assert_eq!(res.ok()["overrides"]["refresh_enabled"], Value::Null);
    assert!(res.body.get("refresh_tokens_stopped").is_none());
    assert_eq!(refresh(&server, &notes, &r1).await.status(), StatusCode::OK);

    // Access TTL 5m: the next client_credentials token lives 300 s.
    let admin_policy = format!("/api/admin/clients/{}/policy", admin.client_id);
    let res = api
        .patch(&admin_policy, json!({ "access_ttl": "5m" }))
        .await;
    assert_eq!(res.ok()["effective"]["access_ttl_secs"], 300);
    assert_eq!(res.body["overrides"]["access_ttl"], "5m");
    let next = cc_token(&server, &admin).await;
    let claims = jwt_part(&next, 1);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    // Seconds as a number work too.
    let res = api.patch(&admin_policy, json!({ "access_ttl": 120 })).await;
    assert_eq!(res.ok()["effective"]["access_ttl"], "2m");

    // Every change is audited with before/after and the calling client.
    let changes = api
        .get(&format!(
            "/api/admin/audit?kind=policy_changed&client={}",
            notes.client_id
        ))
        .await;
    let events = changes.ok()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|e| e["actor_client_id"] == admin.client_id.as_str()));
    let off = &events[1];
    assert_eq!(off["detail"]["before"]["refresh_enabled"], Value::Null);
    assert_eq!(off["detail"]["after"]["refresh_enabled"], false);
    assert_eq!(off["detail"]["effective_before"]["refresh_enabled"], true);
    t.cleanup().await;
}

async fn policy_defaults_are_read_and_changed(t: TestDb) {
    let (server, admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    let path = "/api/admin/policy/defaults";
    let res = api.get(path).await;
    assert_eq!(res.ok()["defaults"]["access_ttl"], "10m");
    assert_eq!(res.body["defaults"]["revoke_on_logout"], true);
    api.patch(path, json!({ "access_ttl": null })).await.error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("access_ttl"),
    );
    api.patch(path, json!({ "access_ttl": "2d" })).await.error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("access_ttl"),
    );
    assert_eq!(api.get(path).await.ok()["defaults"]["access_ttl"], "10m");

    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let alice = person(&t, &server, "alice").await;
    let body = tokens_for(&alice, &server, &notes, "openid").await;
    let r1 = str_of(&body, "refresh_token").to_owned();
    let res = api
        .patch(
            path,
            json!({ "access_ttl": "15m", "refresh_enabled": false }),
        )
        .await;
    assert_eq!(res.ok()["defaults"]["access_ttl"], "15m");
    assert_eq!(res.body["defaults"]["refresh_enabled"], false);
    assert_eq!(res.body["refresh_tokens_stopped"], 1);
    let (_, error) = oauth_error(refresh(&server, &notes, &r1).await).await;
    assert_eq!(error, "unauthorized_client");
    let claims = jwt_part(&cc_token(&server, &admin).await, 1);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    let changes = api.get("/api/admin/audit?kind=policy_changed").await;
    let event = &changes.ok()["events"][0];
    assert_eq!(event["actor_client_id"], admin.client_id.as_str());
    assert_eq!(event["detail"]["scope"], "defaults");
    assert_eq!(event["detail"]["before"]["access_ttl_secs"], 600);
    assert_eq!(event["detail"]["after"]["access_ttl_secs"], 900);
    t.cleanup().await;
}

/// The `field` of every item of `body[list]`, sorted without regard to case
/// (the server's order follows the database's collation).
fn sorted_names(body: &Value, list: &str, field: &str) -> Vec<String> {
    let mut names: Vec<String> = body[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect();
    names.sort_by_key(|n| n.to_lowercase());
    names
}

/// The usernames of a user list answer, sorted without regard to case.
fn usernames(res: &Answer) -> Vec<String> {
    sorted_names(res.ok(), "users", "username")
}

async fn users_are_created_searched_and_shown(t: TestDb) {
    let (server, admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    let res = api
        .post(
            "/api/admin/users",
            json!({ "username": "root", "password": "long enough pw", "is_admin": true }),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    assert_eq!(res.body["username"], "root");
    assert_eq!(res.body["is_admin"], true);
    assert_eq!(res.body["disabled"], false);
    assert!(res.body.get("password").is_none() && res.body.get("password_hash").is_none());
    let root_id = str_of(&res.body, "id").to_owned();
    assert_eq!(
        res.headers[header::LOCATION],
        format!("/api/admin/users/{root_id}").as_str()
    );
    api.post(
        "/api/admin/users",
        json!({ "username": "ROOT", "password": "long enough pw" }),
    )
    .await
    .error(StatusCode::CONFLICT, "conflict", None);
    api.post(
        "/api/admin/users",
        json!({ "username": "shorty", "password": "short" }),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("password"),
    );
    api.post(
        "/api/admin/users",
        json!({ "username": "o'hara", "password": "long enough pw" }),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("username"),
    );
    api.post("/api/admin/users", json!({ "username": "nopw" }))
        .await
        .error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("password"),
        );
    for name in ["a_c", "axc", "Mixed.Case"] {
        let res = api
            .post(
                "/api/admin/users",
                json!({ "username": name, "password": "long enough pw" }),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    }
    let created = api.get("/api/admin/audit?kind=user_created").await;
    let events = created.ok()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 4);
    assert!(events
        .iter()
        .all(|e| e["actor_client_id"] == admin.client_id.as_str()));

    // Search: substring, any case; %, _ and quotes are literal.
    assert_eq!(
        usernames(&api.get("/api/admin/users").await),
        ["a_c", "axc", "Mixed.Case", "root"]
    );
    for (q, expected) in [
        ("_", vec!["a_c"]),
        ("%25", vec![]),
        ("a%25c", vec![]),
        ("'", vec![]),
        ("x'%20OR%20'1'%3D'1", vec![]),
        ("%5C", vec![]),
        ("mixed.", vec!["Mixed.Case"]),
        ("C", vec!["a_c", "axc", "Mixed.Case"]),
    ] {
        assert_eq!(
            usernames(&api.get(&format!("/api/admin/users?q={q}")).await),
            expected,
            "q={q}"
        );
    }
    api.get(&format!("/api/admin/users?q={}", "x".repeat(101)))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", Some("q"));
    api.get("/api/admin/users?q=a&q=b").await.error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        None,
    );

    // A user with an app and a sign-in.
    let notes = app(&t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let alice = person(&t, &server, "alice").await;
    tokens_for(&alice, &server, &notes, "openid notes:read").await;
    tokens_for(&alice, &server, &notes, "openid").await;
    let res = api
        .get(&format!("/api/admin/users/{}", alice.user_id))
        .await;
    let body = res.ok();
    assert_eq!(body["user"]["username"], "alice");
    let apps = body["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["client_name"], "Notes");
    assert_eq!(apps[0]["client_id"], notes.client_id.as_str());
    assert_eq!(apps[0]["scopes"], json!(["openid", "notes:read"]));
    assert_eq!(apps[0]["active_families"], 2);
    assert!(apps[0]["last_used_at"].as_i64().is_some());
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    t.cleanup().await;
}

/// Issue 9: SQLite's `lower()` folds ASCII only, so `JÜRGEN` was a second
/// user there (one on PostgreSQL) and `?q=jür` found nothing.
async fn non_ascii_names_are_refused_and_found_in_any_case(t: TestDb) {
    let (server, _admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    let user = |username: &str| json!({ "username": username, "password": "long enough pw" });
    let created = api.post("/api/admin/users", user("Jürgen")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let jurgen_id = str_of(&created.body, "id").to_owned();
    for taken in ["JÜRGEN", "jürgen", "JU\u{308}RGEN"] {
        api.post("/api/admin/users", user(taken)).await.error(
            StatusCode::CONFLICT,
            "conflict",
            None,
        );
    }
    assert_eq!(
        api.post("/api/admin/users", user("Jurgen")).await.status,
        StatusCode::CREATED
    );
    // `jür`, `JÜR`, fullwidth `ＪÜＲ`, percent-encoded.
    for q in ["j%C3%BCr", "J%C3%9CR", "%EF%BC%AA%C3%9C%EF%BC%B2"] {
        let found = usernames(&api.get(&format!("/api/admin/users?q={q}")).await);
        assert_eq!(found, ["Jürgen"], "q={q}");
    }
    assert_eq!(
        usernames(&api.get("/api/admin/users?q=RGEN").await),
        ["Jurgen", "Jürgen"]
    );

    let client = |name: &str| json!({ "name": name, "redirect_uris": ["https://cafe.example/cb"] });
    let res = api.post("/api/admin/clients", client("Café Notes")).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    api.post("/api/admin/clients", client("CAFÉ NOTES"))
        .await
        .error(StatusCode::CONFLICT, "conflict", None);
    let found = api.get("/api/admin/clients?q=caf%C3%89").await;
    assert_eq!(sorted_names(found.ok(), "clients", "name"), ["Café Notes"]);

    // The audit log's `user` filter takes the username in any case.
    let events = api.get("/api/admin/audit?user=J%C3%9CRGEN").await;
    let events = events.ok()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["kind"], "user_created");
    assert_eq!(events[0]["subject_user_id"], jurgen_id.as_str());
    t.cleanup().await;
}

async fn disabling_a_user_cuts_off_tokens_and_sign_in(t: TestDb) {
    let (server, admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let alice = person(&t, &server, "alice").await;
    let bob = person(&t, &server, "bob").await;
    let a = tokens_for(&alice, &server, &notes, "openid").await;
    let b = tokens_for(&bob, &server, &notes, "openid").await;
    let path = format!("/api/admin/users/{}", alice.user_id);

    api.patch(&path, json!({})).await.error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        None,
    );
    api.patch(&path, json!({ "disabled": "yes" })).await.error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("disabled"),
    );
    let res = api.patch(&path, json!({ "disabled": true })).await;
    let body = res.ok();
    assert_eq!(body["user"]["disabled"], true);
    assert!(body["user"]["disabled_at"].as_i64().is_some());
    assert_eq!(
        body["cut_off"],
        json!({ "grants_revoked": 1, "families_revoked": 1, "sessions_ended": 1 })
    );
    // Her tokens are dead: refresh fails, the access token is inactive.
    let (status, error) =
        oauth_error(refresh(&server, &notes, str_of(&a, "refresh_token")).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    assert!(!is_active(&server, &notes, str_of(&a, "access_token")).await);
    // Her browser is signed out, and she cannot sign in again.
    let res = alice.http.get(server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed out");
    let signin = sign_in_status(&server, "alice").await;
    assert!(signin.starts_with("/signin?error=invalid"), "{signin}");
    // Bob is untouched.
    assert!(is_active(&server, &notes, str_of(&b, "access_token")).await);
    assert_eq!(
        refresh(&server, &notes, str_of(&b, "refresh_token"))
            .await
            .status(),
        StatusCode::OK
    );
    let detail = api.get(&path).await;
    assert_eq!(detail.ok()["apps"], json!([]));
    assert_eq!(detail.body["sessions"], json!([]));

    // Disabling again is allowed (a retry) and finds nothing left.
    let res = api.patch(&path, json!({ "disabled": true })).await;
    assert_eq!(
        res.ok()["cut_off"],
        json!({ "grants_revoked": 0, "families_revoked": 0, "sessions_ended": 0 })
    );
    // Enabled again: she can sign in; her old tokens stay dead.
    let res = api.patch(&path, json!({ "disabled": false })).await;
    assert_eq!(res.ok()["user"]["disabled"], false);
    assert!(res.body.get("cut_off").is_none());
    assert_eq!(sign_in_status(&server, "alice").await, "/");
    assert!(!is_active(&server, &notes, str_of(&a, "access_token")).await);

    let events = api
        .get(&format!("/api/admin/audit?user={}", alice.user_id))
        .await;
    let kinds: Vec<String> = events.ok()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "user_disabled").count(),
        1,
        "{kinds:?}"
    );
    for kind in ["user_enabled", "revoked", "logout"] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} in {kinds:?}");
    }
    // By username too.
    let by_name = api
        .get("/api/admin/audit?user=ALICE&kind=user_disabled")
        .await;
    assert_eq!(by_name.ok()["total"], 1);
    assert_eq!(
        by_name.body["events"][0]["actor_client_id"],
        admin.client_id.as_str()
    );
    t.cleanup().await;
}

async fn the_last_admin_keeps_their_rights(t: TestDb) {
    let (server, _admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    let create = |username: &'static str, is_admin: bool| {
        let api = &api;
        async move {
            let res = api
                .post(
                    "/api/admin/users",
                    json!({ "username": username, "password": "long enough pw", "is_admin": is_admin }),
                )
                .await;
            assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
            str_of(&res.body, "id").to_owned()
        }
    };
    let root = create("root", true).await;
    let boss = create("boss", true).await;
    let _carol = create("carol", false).await;
    let root_path = format!("/api/admin/users/{root}");
    let boss_path = format!("/api/admin/users/{boss}");

    // A disabled admin does not count.
    api.patch(&boss_path, json!({ "disabled": true }))
        .await
        .ok();
    api.patch(&root_path, json!({ "is_admin": false }))
        .await
        .error(StatusCode::CONFLICT, "conflict", None);
    api.patch(&root_path, json!({ "disabled": true }))
        .await
        .error(StatusCode::CONFLICT, "conflict", None);
    let root_now = api.get(&root_path).await;
    assert_eq!(root_now.ok()["user"]["is_admin"], true, "nothing changed");
    assert_eq!(root_now.body["user"]["disabled"], false);

    // With boss back, root may step down; then boss is the last one.
    api.patch(&boss_path, json!({ "disabled": false }))
        .await
        .ok();
    let res = api.patch(&root_path, json!({ "is_admin": false })).await;
    assert_eq!(res.ok()["user"]["is_admin"], false);
    api.patch(&boss_path, json!({ "is_admin": false }))
        .await
        .error(StatusCode::CONFLICT, "conflict", None);
    api.patch(&boss_path, json!({ "is_admin": false, "disabled": true }))
        .await
        .error(StatusCode::CONFLICT, "conflict", None);
    // Promoting and demoting in one go elsewhere is fine.
    let res = api.patch(&root_path, json!({ "is_admin": true })).await;
    assert_eq!(res.ok()["user"]["is_admin"], true);
    let changes = api.get("/api/admin/audit?kind=user_admin_changed").await;
    let events = changes.ok()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["detail"]["after"]["is_admin"], true);
    assert_eq!(events[1]["detail"]["before"]["is_admin"], true);
    t.cleanup().await;
}

async fn user_bulk_revocations_answer_counts(t: TestDb) {
    let (server, _, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let photos = app(&t, "Photos", ClientKind::Confidential, &[]).await;
    let alice = person(&t, &server, "alice").await;
    let n = tokens_for(&alice, &server, &notes, "openid").await;
    let p = tokens_for(&alice, &server, &photos, "openid").await;

    // Sign out everywhere: two browsers, the families under them revoked.
    let second = Person {
        http: browser().0,
        user_id: alice.user_id.clone(),
        username: alice.username.clone(),
    };
    sign_in(&second, &server).await;
    let res = api
        .post(
            &format!("/api/admin/users/{}/sign-out-everywhere", alice.user_id),
            json!({}),
        )
        .await;
    assert_eq!(
        res.ok(),
        &json!({ "sessions_ended": 2, "families_revoked": 2 })
    );
    for (app, body) in [(&notes, &n), (&photos, &p)] {
        assert!(!is_active(&server, app, str_of(body, "access_token")).await);
    }
    let res = alice.http.get(server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed out");

    // Revoke all apps: the grants (consents) go too.
    sign_in(&alice, &server).await;
    tokens_for(&alice, &server, &notes, "openid").await;
    let res = api
        .post(
            &format!("/api/admin/users/{}/revoke-apps", alice.user_id),
            json!({}),
        )
        .await;
    assert_eq!(
        res.ok(),
        &json!({ "grants_revoked": 2, "families_revoked": 1 })
    );
    let detail = api
        .get(&format!("/api/admin/users/{}", alice.user_id))
        .await;
    assert_eq!(detail.ok()["apps"], json!([]));
    assert_eq!(
        detail.body["sessions"].as_array().unwrap().len(),
        1,
        "still signed in"
    );
    t.cleanup().await;
}

async fn audit_log_filters_pages_and_exports(t: TestDb) {
    let (server, admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    for i in 0..5 {
        let res = api
            .post(
                "/api/admin/users",
                json!({ "username": format!("user{i}"), "password": "long enough pw" }),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED);
    }
    // Pages, newest first.
    let page1 = api
        .get("/api/admin/audit?kind=user_created&per_page=2")
        .await;
    let body = page1.ok().clone();
    assert_eq!(body["total"], 5);
    assert_eq!(body["page"], 1);
    assert_eq!(body["per_page"], 2);
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["detail"]["username"], "user4");
    assert_eq!(events[1]["detail"]["username"], "user3");
    assert!(events[0]["time"].as_str().unwrap().ends_with('Z'));
    let page3 = api
        .get("/api/admin/audit?kind=user_created&per_page=2&page=3")
        .await;
    let events = page3.ok()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["username"], "user0");

    // Filters by client (actor or subject) and time.
    let by_client = api
        .get(&format!("/api/admin/audit?client={}", admin.client_id))
        .await;
    let kinds: Vec<String> = by_client.ok()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.contains(&"client_created".to_owned()), "{kinds:?}");
    // Its client_credentials tokens are counted per minute, not audited.
    assert!(!kinds.contains(&"token_issued".to_owned()), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "user_created").count(), 5);
    let future = api.get("/api/admin/audit?from=2999-01-01").await;
    assert_eq!(future.ok()["total"], 0);
    let past = api.get("/api/admin/audit?to=2000-01-01T00:00:00Z").await;
    assert_eq!(past.ok()["total"], 0);
    let all_time = api
        .get("/api/admin/audit?from=0&to=2999-12-31&kind=user_created")
        .await;
    assert_eq!(all_time.ok()["total"], 5);

    // Bad filters: 422 naming the field.
    for (query, field) in [
        ("per_page=201", "per_page"),
        ("per_page=0", "per_page"),
        ("page=0", "page"),
        ("page=two", "page"),
        ("from=yesterday", "from"),
        ("to=2026-02-30", "to"),
        ("from=2026-02-02&to=2026-02-01", "to"),
        ("kind=DROP%20TABLE", "kind"),
    ] {
        api.get(&format!("/api/admin/audit?{query}")).await.error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some(field),
        );
    }

    // CSV export: a download with a header row and quoted fields.
    let res = api
        .get("/api/admin/audit/export?format=csv&kind=user_created")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert!(res.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(
        res.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"latchkey-audit.csv\""
    );
    let lines: Vec<&str> = res.text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "id,at,time,kind,actor_user_id,actor_client_id,subject_user_id,client_id,ip,detail"
    );
    assert_eq!(lines.len(), 6, "{}", res.text);
    let row = lines[1];
    assert!(row.contains(",user_created,"), "{row}");
    assert!(row.contains(&format!(",{},", admin.client_id)), "{row}");
    assert!(
        row.ends_with(r#","{""is_admin"":false,""username"":""user4""}""#),
        "{row}"
    );
    // Default format is CSV; JSON is an array of the same events.
    let res = api.get("/api/admin/audit/export?kind=user_created").await;
    assert!(res.text.starts_with("id,at,time,kind,"));
    let res = api
        .get("/api/admin/audit/export?format=json&kind=user_created")
        .await;
    assert_eq!(
        res.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"latchkey-audit.json\""
    );
    let events = res.ok().as_array().unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(events[4]["detail"]["username"], "user0");
    api.get("/api/admin/audit/export?format=xml").await.error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("format"),
    );
    let anonymous = Api {
        server: &server,
        token: None,
    };
    anonymous.get("/api/admin/audit/export").await.error(
        StatusCode::UNAUTHORIZED,
        "invalid_request",
        None,
    );
    t.cleanup().await;
}

async fn unknown_ids_and_routes_are_json_404s(t: TestDb) {
    let (server, _admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    let nope = "no-such-id";
    for answer in [
        api.get(&format!("/api/admin/clients/{nope}")).await,
        api.patch(
            &format!("/api/admin/clients/{nope}"),
            json!({ "name": "x" }),
        )
        .await,
        api.delete(&format!("/api/admin/clients/{nope}")).await,
        api.post(&format!("/api/admin/clients/{nope}/secret"), json!({}))
            .await,
        api.post(&format!("/api/admin/clients/{nope}/revoke"), json!({}))
            .await,
        api.get(&format!("/api/admin/clients/{nope}/policy")).await,
        api.patch(
            &format!("/api/admin/clients/{nope}/policy"),
            json!({ "access_ttl": "5m" }),
        )
        .await,
        api.get(&format!("/api/admin/users/{nope}")).await,
        api.patch(
            &format!("/api/admin/users/{nope}"),
            json!({ "disabled": true }),
        )
        .await,
        api.post(&format!("/api/admin/users/{nope}/revoke-apps"), json!({}))
            .await,
        api.post(
            &format!("/api/admin/users/{nope}/sign-out-everywhere"),
            json!({}),
        )
        .await,
        api.get("/api/admin/nothing-here").await,
        api.post("/api/admin/clients/x/y/z", json!({})).await,
    ] {
        answer.error(StatusCode::NOT_FOUND, "not_found", None);
        assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    }
    t.cleanup().await;
}

async fn openapi_document_lists_every_route_and_the_bearer_scheme(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let res = reqwest::Client::new()
        .get(server.url("/api/admin/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/admin/clients", &["get", "post"][..]),
        ("/api/admin/clients/{id}", &["get", "patch", "delete"]),
        ("/api/admin/clients/{id}/secret", &["post"]),
        ("/api/admin/clients/{id}/revoke", &["post"]),
        ("/api/admin/clients/{id}/policy", &["get", "patch"]),
        ("/api/admin/policy/defaults", &["get", "patch"]),
        ("/api/admin/users", &["get", "post"]),
        ("/api/admin/users/{id}", &["get", "patch"]),
        ("/api/admin/users/{id}/revoke-apps", &["post"]),
        ("/api/admin/users/{id}/sign-out-everywhere", &["post"]),
        ("/api/admin/audit", &["get"]),
        ("/api/admin/audit/export", &["get"]),
        ("/api/admin/upstreams", &["get", "post"]),
        ("/api/admin/upstreams/{id}", &["get", "patch", "delete"]),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} in {:?}", paths.keys()));
        for method in methods {
            let op = &item[*method];
            assert!(op.is_object(), "{method} {path}");
            assert_eq!(
                op["security"],
                json!([{ "bearer": ["latchkey:admin"] }]),
                "{method} {path}"
            );
        }
    }
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in ["ErrorBody", "PolicyPatch", "ClientView", "NewClientRequest"] {
        assert!(schemas.contains_key(name), "{name}");
    }
    t.cleanup().await;
}

/// Every number a client sends (issue 9): page and per_page, times, durations
/// as text or seconds — huge, negative, zero, not a number — answers 200 or
/// a 422 naming the field, never a 5xx or a hang; nothing is saved.
async fn numbers_of_any_size_are_bounded(t: TestDb) {
    let (server, _admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    for (query, field) in [
        ("page=9223372036854775807", "page"),
        ("page=1000001", "page"),
        ("page=99999999999999999999", "page"),
        ("page=-1", "page"),
        ("page=-9223372036854775809", "page"),
        ("page=0", "page"),
        ("page=1.5", "page"),
        ("per_page=9223372036854775807", "per_page"),
        ("per_page=-1", "per_page"),
        (
            "page=9223372036854775807&per_page=9223372036854775807",
            "page",
        ),
        ("from=99999999999999999999", "from"),
        ("to=9223372036854775807", "to"),
        ("to=253402300800", "to"),
    ] {
        let path = format!("/api/admin/audit?{query}");
        let res = api.get(&path).await;
        res.error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some(field),
        );
        assert!(!res.body["message"].as_str().unwrap().is_empty(), "{path}");
    }
    // The last page the API reads is 1 000 000: past the end it is empty.
    let far = api.get("/api/admin/audit?page=1000000&per_page=200").await;
    let body = far.ok();
    assert_eq!(body["page"], 1_000_000);
    assert_eq!(body["events"].as_array().unwrap().len(), 0);
    assert!(body["total"].as_i64().unwrap() > 0);
    let until_9999 = api.get("/api/admin/audit?from=0&to=253402300799").await;
    assert_eq!(until_9999.ok()["total"], body["total"]);

    // Durations: as text with a unit, or as seconds.
    let path = "/api/admin/policy/defaults";
    let before = api.get(path).await.ok().clone();
    for value in [
        json!("99999999999999999d"),
        json!("99999999999999999999999s"),
        json!("36501d"),
        json!(9_223_372_036_854_775_807_i64),
        json!(18_446_744_073_709_551_615_u64),
        json!(1e300),
        json!(-1),
        json!("-5m"),
        json!("1.5h"),
    ] {
        let res = api.patch(path, json!({ "access_ttl": value })).await;
        res.error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("access_ttl"),
        );
    }
    let res = api
        .patch(path, json!({ "reuse_grace": "99999999999999999d" }))
        .await;
    res.error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("reuse_grace"),
    );
    assert!(
        res.body["message"].as_str().unwrap().contains("too long"),
        "{}",
        res.text
    );
    assert_eq!(api.get(path).await.ok(), &before, "nothing saved");
}

async fn resource_servers_are_registered_read_and_removed(t: TestDb) {
    let (server, _, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    let notes_api = service(&t.db, "Notes API", &[]).await;
    let other = service(&t.db, "Other API", &[]).await;
    let path = format!("/api/admin/clients/{}/resource-server", notes_api.client_id);
    api.get(&path)
        .await
        .error(StatusCode::NOT_FOUND, "not_found", None);
    let body =
        json!({ "audience": "https://notes.example/api", "scopes": ["notes:read", "notes:write"] });
    let res = api.put(&path, body.clone()).await;
    assert_eq!(
        res.ok(),
        &json!({
            "client_id": notes_api.client_id,
            "audience": "https://notes.example/api",
            "scopes": ["notes:read", "notes:write"],
        })
    );
    assert_eq!(
        api.get(&path).await.ok()["audience"],
        "https://notes.example/api"
    );
    // One audience, one resource server.
    let other_path = format!("/api/admin/clients/{}/resource-server", other.client_id);
    api.put(&other_path, body)
        .await
        .error(StatusCode::CONFLICT, "conflict", None);
    for (bad, field) in [
        (json!({ "audience": "notes" }), "audience"),
        (json!({ "audience": "https://x.example/#f" }), "audience"),
        (
            json!({ "audience": "https://x.example", "scopes": ["openid"] }),
            "scopes",
        ),
        (
            json!({ "audience": "https://x.example", "scopes": ["latchkey:admin"] }),
            "scopes",
        ),
    ] {
        api.put(&other_path, bad.clone()).await.error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some(field),
        );
    }
    api.put(
        "/api/admin/clients/nope/resource-server",
        json!({ "audience": "https://y.example" }),
    )
    .await
    .error(StatusCode::NOT_FOUND, "not_found", None);
    // Audited, then removed.
    let events = api
        .get(&format!(
            "/api/admin/audit?kind=client_updated&client={}",
            notes_api.client_id
        ))
        .await;
    assert_eq!(events.ok()["total"], 1);
    assert_eq!(api.delete(&path).await.status, StatusCode::NO_CONTENT);
    api.get(&path)
        .await
        .error(StatusCode::NOT_FOUND, "not_found", None);
    api.delete(&path)
        .await
        .error(StatusCode::NOT_FOUND, "not_found", None);
    t.cleanup().await;
}

/// Upstream providers (issue 12): the secret is write-only and stored
/// encrypted; bad fields are 422 naming the field; names are unique; every
/// change is audited; a removed provider is gone from the list and 404.
async fn upstream_providers_are_added_read_changed_and_removed(t: TestDb) {
    let (server, _admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    let secret = "upstream-secret-that-must-never-come-back";
    let created = api
        .post(
            "/api/admin/upstreams",
            json!({
                "name": "Corp SSO",
                "issuer": "https://sso.corp.example",
                "client_id": "latchkey",
                "client_secret": secret,
                "scopes": ["profile", "openid", "offline_access"],
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let p = created.body.clone();
    let id = p["id"].as_str().unwrap().to_owned();
    assert_eq!(p["name"], "Corp SSO");
    assert_eq!(
        p["scopes"],
        json!(["profile", "offline_access"]),
        "openid is implied"
    );
    assert_eq!(p["revoke_at_logout"], true, "on by default");
    assert_eq!(p["end_upstream_session"], false);
    assert_eq!(
        p["redirect_uri"],
        server.url("/signin/upstream/callback"),
        "what to register at the provider"
    );
    assert!(!created.text.contains(secret), "the secret is write-only");
    let stored = common::text_value(
        &t.db,
        "SELECT client_secret_enc FROM upstream_providers WHERE id = $1",
        &id,
    )
    .await
    .unwrap();
    assert!(!stored.contains(secret), "encrypted at rest");

    let list = api.get("/api/admin/upstreams").await;
    assert_eq!(list.ok().as_array().unwrap().len(), 1);
    assert!(!list.text.contains(secret));
    let read = api.get(&format!("/api/admin/upstreams/{id}")).await;
    assert_eq!(read.ok()["health"]["linked_users"], 0);
    assert!(!read.text.contains(secret));

    // Bad input names its field; nothing is saved.
    for (body, field) in [
        (
            json!({"name": "X", "issuer": "http://sso.corp.example", "client_id": "a", "client_secret": "b"}),
            "issuer",
        ),
        (
            json!({"name": "X", "issuer": "https://sso.corp.example?tenant=1", "client_id": "a", "client_secret": "b"}),
            "issuer",
        ),
        (
            json!({"name": "", "issuer": "https://sso.corp.example", "client_id": "a", "client_secret": "b"}),
            "name",
        ),
        (
            json!({"name": "X", "issuer": "https://sso.corp.example", "client_id": "a", "client_secret": ""}),
            "client_secret",
        ),
        (
            json!({"name": "X", "issuer": "https://sso.corp.example", "client_id": "a", "client_secret": "b", "scopes": ["bad\"scope"]}),
            "scopes",
        ),
        (
            json!({"name": "X", "issuer": "https://sso.corp.example", "client_id": "a", "client_secret": "b", "revocation_endpoint": "javascript:alert(1)"}),
            "revocation_endpoint",
        ),
        (
            json!({"name": "X", "issuer": "https://sso.corp.example", "client_id": "a", "client_secret": "b", "revocation_extra_params": {"token": "x"}}),
            "revocation_extra_params",
        ),
    ] {
        api.post("/api/admin/upstreams", body).await.error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some(field),
        );
    }
    api.post(
        "/api/admin/upstreams",
        json!({"name": "corp sso", "issuer": "https://other.example", "client_id": "a", "client_secret": "b"}),
    )
    .await
    .error(StatusCode::CONFLICT, "conflict", None);
    assert_eq!(common::count(&t.db, "upstream_providers").await, 1);

    // Changes: a new secret (still write-only), switches, overrides; null clears.
    let changed = api
        .patch(
            &format!("/api/admin/upstreams/{id}"),
            json!({
                "client_secret": "a-new-secret",
                "revoke_at_logout": false,
                "revocation_endpoint": "https://sso.corp.example/revoke",
                "revocation_token_param": "refresh_token",
                "revocation_extra_params": {"tenant": "corp"},
            }),
        )
        .await;
    let c = changed.ok();
    assert_eq!(c["revoke_at_logout"], false);
    assert_eq!(c["revocation_endpoint"], "https://sso.corp.example/revoke");
    assert_eq!(c["revocation_token_param"], "refresh_token");
    assert_eq!(c["revocation_extra_params"], json!({"tenant": "corp"}));
    assert!(!changed.text.contains("a-new-secret"));
    assert_ne!(
        common::text_value(
            &t.db,
            "SELECT client_secret_enc FROM upstream_providers WHERE id = $1",
            &id
        )
        .await
        .unwrap(),
        stored,
        "the new secret is stored"
    );
    let cleared = api
        .patch(
            &format!("/api/admin/upstreams/{id}"),
            json!({"revocation_endpoint": null}),
        )
        .await;
    assert_eq!(cleared.ok()["revocation_endpoint"], Value::Null);
    api.patch(
        &format!("/api/admin/upstreams/{id}"),
        json!({"issuer": "https://evil.example"}),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("issuer"),
    );

    // Removed: gone from the list and 404; audited each time.
    assert_eq!(
        api.delete(&format!("/api/admin/upstreams/{id}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.get("/api/admin/upstreams").await.ok(), &json!([]));
    api.get(&format!("/api/admin/upstreams/{id}")).await.error(
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let audited = common::text_value(
        &t.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE kind = $1",
        "upstream_provider_changed",
    )
    .await;
    assert_eq!(
        audited.as_deref(),
        Some("4"),
        "added, changed twice, removed"
    );
    t.cleanup().await;
}

/// Found by schemathesis (scripts/schemathesis.sh): every operation that
/// reads a query answers 400 for one it cannot read (a repeated parameter),
/// and its OpenAPI document must list that 400 — the document's operations
/// with query parameters are the ones checked, so a new one is covered too.
async fn unreadable_queries_are_documented_400s(t: TestDb) {
    let (server, _admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    let doc = reqwest::get(server.url("/api/admin/openapi.json"))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let mut checked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(query) = op["parameters"].as_array().and_then(|ps| {
                ps.iter()
                    .find(|p| p["in"] == "query")
                    .and_then(|p| p["name"].as_str())
            }) else {
                continue;
            };
            assert_eq!(method, "get", "{method} {path}");
            let answer = api.get(&format!("{path}?{query}=1&{query}=2")).await;
            answer.error(StatusCode::BAD_REQUEST, "invalid_request", None);
            assert!(
                op["responses"]["400"]["content"]["application/json"].is_object(),
                "{method} {path} answers 400 but does not document it"
            );
            checked.push(path.clone());
        }
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "/api/admin/audit",
            "/api/admin/audit/export",
            "/api/admin/clients",
            "/api/admin/users"
        ],
        "the operations that take a query"
    );
    t.cleanup().await;
}

async fn scope_catalogue_and_client_metadata_through_the_api(t: TestDb) {
    let (server, _admin, token) = setup(&t).await;
    let api = Api::new(&server, &token);
    // The catalogue: add, change, list; bad input is a 422 naming the field.
    let put = api
        .put(
            "/api/admin/scopes/files:read",
            json!({ "description": "Read your files" }),
        )
        .await;
    assert_eq!(put.ok()["sensitive"], false);
    let put = api
        .put(
            "/api/admin/scopes/files:read",
            json!({ "description": "Read every file you own", "sensitive": true }),
        )
        .await;
    assert_eq!(put.ok()["description"], "Read every file you own");
    assert_eq!(put.body["sensitive"], true);
    api.put("/api/admin/scopes/openid", json!({ "description": "x" }))
        .await
        .error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("scope"),
        );
    api.put(
        "/api/admin/scopes/files:write",
        json!({ "description": "" }),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("description"),
    );
    api.put(
        "/api/admin/scopes/files:write",
        json!({ "description": "x", "extra": 1 }),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("extra"),
    );
    let list = api.get("/api/admin/scopes").await;
    let names: Vec<&str> = list.ok()["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scope"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["files:read", "notes:read", "notes:write", "reports:read"]
    );

    // A client with metadata; an uncatalogued scope or a bad URI is refused.
    api.post(
        "/api/admin/clients",
        json!({ "name": "Files", "redirect_uris": ["https://files.example/cb"], "extra_scopes": ["files:write"] }),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", Some("extra_scopes"));
    api.post(
        "/api/admin/clients",
        json!({ "name": "Files", "redirect_uris": ["https://files.example/cb"], "logo_uri": "javascript:alert(1)" }),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", Some("logo_uri"));
    let created = api
        .post(
            "/api/admin/clients",
            json!({
                "name": "Files",
                "redirect_uris": ["https://files.example/cb"],
                "extra_scopes": ["files:read"],
                "logo_uri": "https://files.example/logo.png",
                "client_uri": "https://files.example/",
                "description": "Your files, anywhere",
            }),
        )
        .await;
    let client = &created.ok()["client"];
    assert_eq!(client["logo_uri"], "https://files.example/logo.png");
    assert_eq!(client["description"], "Your files, anywhere");
    assert!(client["tos_uri"].is_null());
    let id = client["client_id"].as_str().unwrap().to_owned();
    let path = format!("/api/admin/clients/{id}");
    // PATCH: null removes a field, absent keeps it.
    let patched = api
        .patch(
            &path,
            json!({ "logo_uri": null, "tos_uri": "https://files.example/terms" }),
        )
        .await;
    assert!(patched.ok()["logo_uri"].is_null());
    assert_eq!(patched.body["tos_uri"], "https://files.example/terms");
    assert_eq!(patched.body["client_uri"], "https://files.example/");
    api.patch(
        &path,
        json!({ "policy_uri": "http://files.example/privacy" }),
    )
    .await
    .error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("policy_uri"),
    );

    // A scope in use cannot be removed; once unused it can, once.
    api.delete("/api/admin/scopes/files:read")
        .await
        .error(StatusCode::CONFLICT, "conflict", None);
    api.patch(&path, json!({ "extra_scopes": [] })).await.ok();
    assert_eq!(
        api.delete("/api/admin/scopes/files:read").await.status,
        StatusCode::NO_CONTENT
    );
    api.delete("/api/admin/scopes/files:read").await.error(
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    t.cleanup().await;
}
