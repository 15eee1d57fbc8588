//! Driving the authorization code flow by hand over real HTTP: a user signs in
//! in a cookie-keeping "browser", an app sends them to `/oauth/authorize`, they
//! allow it on the consent page, the app redeems the code.

use app::domain::{
    clients::{self, ClientKind, GrantType, NewClient},
    grants::s256_challenge,
    users,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use reqwest::{header, StatusCode};
use serde_json::Value;

use super::{browser, Site, TestDb};

pub const PASSWORD: &str = "correct horse battery";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A registered app (relying party).
#[derive(Clone, Debug)]
pub struct App {
    pub client_id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
    pub post_logout_uri: String,
}

/// Registers an app that may use the code flow and refresh tokens.
pub async fn app(t: &TestDb, name: &str, kind: ClientKind, extra_scopes: &[&str]) -> App {
    let slug: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    let redirect_uri = format!("https://{slug}.example/cb");
    let post_logout_uri = format!("https://{slug}.example/bye");
    catalogue(&t.db, extra_scopes).await;
    let (client, secret) = clients::add_client(
        &t.db,
        &NewClient {
            name: name.into(),
            kind,
            redirect_uris: vec![redirect_uri.clone()],
            post_logout_redirect_uris: vec![post_logout_uri.clone()],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            extra_scopes: extra_scopes.iter().map(|s| s.to_string()).collect(),
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            metadata: Default::default(),
        },
    )
    .await
    .unwrap();
    App {
        client_id: client.client_id,
        secret: secret.map(|s| s.0),
        redirect_uri,
        post_logout_uri,
    }
}

/// A signed-in browser of a new user.
pub struct Person {
    pub http: reqwest::Client,
    pub user_id: String,
    pub username: String,
}

pub async fn person(t: &TestDb, server: &impl Site, username: &str) -> Person {
    person_with(t, server, username, false).await
}

/// A signed-in browser of a new administrator.
pub async fn admin_person(t: &TestDb, server: &impl Site, username: &str) -> Person {
    person_with(t, server, username, true).await
}

async fn person_with(t: &TestDb, server: &impl Site, username: &str, is_admin: bool) -> Person {
    let user = users::add_user(&t.db, username, PASSWORD, is_admin)
        .await
        .unwrap();
    let person = Person {
        http: browser().0,
        user_id: user.id,
        username: username.into(),
    };
    sign_in(&person, server).await;
    person
}

/// The same person signed in again in a browser of its own (a second device).
pub async fn another_browser(person: &Person, server: &impl Site) -> Person {
    let again = Person {
        http: browser().0,
        user_id: person.user_id.clone(),
        username: person.username.clone(),
    };
    sign_in(&again, server).await;
    again
}

pub async fn sign_in(person: &Person, server: &impl Site) {
    let res = person
        .http
        .post(server.url("/signin"))
        .form(&[
            ("username", person.username.as_str()),
            ("password", PASSWORD),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/", "signed in");
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The query parameters of a redirect's `Location`.
pub fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Authorization request parameters for `app` with PKCE S256 over [`VERIFIER`].
pub fn authorize_params<'a>(app: &'a App, scope: &'a str) -> Vec<(&'a str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", app.client_id.clone()),
        ("redirect_uri", app.redirect_uri.clone()),
        ("scope", scope.into()),
        ("state", "st-123".into()),
        ("nonce", "n-456".into()),
        ("code_challenge", s256_challenge(VERIFIER)),
        ("code_challenge_method", "S256".into()),
    ]
}

pub async fn get_authorize(
    http: &reqwest::Client,
    server: &impl Site,
    params: &[(&str, String)],
) -> reqwest::Response {
    http.get(server.url("/oauth/authorize"))
        .query(params)
        .send()
        .await
        .unwrap()
}

/// The hidden `request_id` of a consent page.
pub fn request_id(consent_html: &str) -> String {
    let marker = r#"name="request_id" value=""#;
    let start = consent_html.find(marker).expect("a consent form") + marker.len();
    consent_html[start..].split('"').next().unwrap().to_owned()
}

/// Answers a consent page.
pub async fn decide(
    http: &reqwest::Client,
    server: &impl Site,
    request_id: &str,
    decision: &str,
) -> reqwest::Response {
    http.post(server.url("/oauth/authorize"))
        .header(header::ORIGIN, server.url(""))
        .form(&[("request_id", request_id), ("decision", decision)])
        .send()
        .await
        .unwrap()
}

/// Runs authorize (+ consent when asked) and returns the code.
pub async fn code_for(person: &Person, server: &impl Site, app: &App, scope: &str) -> String {
    let res = get_authorize(&person.http, server, &authorize_params(app, scope)).await;
    let res = if res.status() == StatusCode::OK {
        let html = res.text().await.unwrap();
        decide(&person.http, server, &request_id(&html), "allow").await
    } else {
        res
    };
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let loc = location(&res);
    assert!(loc.starts_with(&app.redirect_uri), "{loc}");
    let q = query_of(&loc);
    assert_eq!(q.get("state").map(String::as_str), Some("st-123"));
    q.get("code").expect("a code").clone()
}

/// A token request authenticated as `app` (Basic for confidential, client_id for public).
pub async fn token_request(
    server: &impl Site,
    app: &App,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let http = reqwest::Client::new();
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let request = http.post(server.url("/oauth/token"));
    let request = match &app.secret {
        Some(secret) => request.basic_auth(&app.client_id, Some(secret)),
        None => {
            form.push(("client_id", &app.client_id));
            request
        }
    };
    request.form(&form).send().await.unwrap()
}

pub async fn redeem(server: &impl Site, app: &App, code: &str) -> reqwest::Response {
    token_request(
        server,
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &app.redirect_uri),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

/// The whole flow: a token response's JSON.
pub async fn tokens_for(person: &Person, server: &impl Site, app: &App, scope: &str) -> Value {
    let code = code_for(person, server, app, scope).await;
    let res = redeem(server, app, &code).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

pub async fn refresh(server: &impl Site, app: &App, refresh_token: &str) -> reqwest::Response {
    token_request(
        server,
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// An RFC 6749 §5.2 error response: its status and `error` code.
pub async fn oauth_error(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Whether introspection by `by` (a confidential app) says the token is
/// active. `by` must be the client the token was issued to: any other
/// (unless a resource server the token's `aud` names, see
/// [`is_active_at`]) is told "inactive" whatever the token's state, and a
/// test asserting inactivity would prove nothing.
pub async fn is_active(server: &impl Site, by: &App, token: &str) -> bool {
    if token.split('.').count() == 3 {
        assert_eq!(
            jwt_part(token, 1)["client_id"].as_str(),
            Some(by.client_id.as_str()),
            "introspect an access token as its own client (or use is_active_at)"
        );
    }
    is_active_at(server, by, token).await
}

/// GET `path` with `Authorization: Bearer {token}` (RFC 6750 §2.1).
pub async fn get_bearer(server: &impl Site, path: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Whether `/oauth/userinfo` takes the access token (200) or refuses it
/// (401): the liveness check for a token no client may introspect any more
/// (a public client's, a deleted client's). It must carry `openid`.
pub async fn userinfo_takes(server: &impl Site, access: &str) -> bool {
    match get_bearer(server, "/oauth/userinfo", access).await.status() {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("userinfo answered {other}"),
    }
}

/// Introspection by any client `by` (a resource server, say).
pub async fn is_active_at(server: &impl Site, by: &App, token: &str) -> bool {
    let res = reqwest::Client::new()
        .post(server.url("/oauth/introspect"))
        .basic_auth(&by.client_id, by.secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let active = body["active"].as_bool().unwrap();
    if !active {
        assert_eq!(
            body,
            serde_json::json!({ "active": false }),
            "exactly inactive"
        );
    }
    active
}

/// The payload (i = 1) or header (i = 0) of a JWT.
pub fn jwt_part(token: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Calls a dashboard server function (`/api/{endpoint}`) the way a
/// JavaScript-less form post does.
pub async fn call(
    person: &Person,
    server: &impl Site,
    endpoint: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    person
        .http
        .post(server.url(&format!("/api/{endpoint}")))
        .header(header::ORIGIN, server.url(""))
        .header(header::ACCEPT, "text/html")
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Puts each of `scopes` that is not built in or catalogued yet into the
/// scope catalogue (registration takes only catalogued scopes), with words
/// that name it: "Test words for notes:read".
pub async fn catalogue(db: &app::domain::Db, scopes: &[&str]) {
    let known = app::domain::scopes::catalogue(db).await.unwrap();
    for scope in scopes.iter().filter(|s| !known.offers(s)) {
        app::domain::scopes::define(
            db,
            scope,
            &format!("Test words for {scope}"),
            Some(false),
            &Default::default(),
        )
        .await
        .unwrap();
    }
}

/// A confidential client_credentials client with these extra scopes.
pub async fn service(db: &app::domain::Db, name: &str, scopes: &[&str]) -> App {
    catalogue(db, scopes).await;
    let (client, secret) = clients::add_client(
        db,
        &NewClient {
            name: name.into(),
            kind: ClientKind::Confidential,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            extra_scopes: scopes.iter().map(|s| s.to_string()).collect(),
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            metadata: Default::default(),
        },
    )
    .await
    .unwrap();
    App {
        client_id: client.client_id,
        secret: secret.map(|s| s.0),
        redirect_uri: String::new(),
        post_logout_uri: String::new(),
    }
}

/// A client_credentials token request authenticated with Basic.
pub async fn cc_token_response(server: &impl Site, app: &App) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url("/oauth/token"))
        .basic_auth(&app.client_id, app.secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

/// A client_credentials access token of `app`.
pub async fn cc_token(server: &impl Site, app: &App) -> String {
    let res = cc_token_response(server, app).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    str_of(&body, "access_token").to_owned()
}

/// RFC 7009 revocation of `token` by `app` (the client it was issued to): 200.
pub async fn revoke_by_rfc7009(server: &impl Site, app: &App, token: &str) {
    let res = reqwest::Client::new()
        .post(server.url("/oauth/revoke"))
        .basic_auth(&app.client_id, app.secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// The dashboard's sign-out button (`POST /signout`, same origin).
pub async fn sign_out(person: &Person, server: &impl Site) -> reqwest::Response {
    person
        .http
        .post(server.url("/signout"))
        .header(header::ORIGIN, server.url(""))
        .send()
        .await
        .unwrap()
}
