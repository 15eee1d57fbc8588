//! Request headers read alike at every endpoint, over real HTTP on both
//! backends: the `Authorization` scheme in any case and with extra spaces
//! (Basic at the token, introspection and revocation endpoints; Bearer at
//! userinfo and the admin API), a malformed Basic header answered 401 with a
//! Basic challenge, client credentials form-urlencoded inside Basic,
//! `Content-Type` with parameters and in any case, `Origin`/`Referer`
//! normalised before comparison and refused when malformed.

mod common;

use app::domain::{clients::ClientKind, demo};
use base64::{engine::general_purpose::STANDARD, Engine};
use common::{browser, flow::*, TestDb, TestServer};
use reqwest::{
    header::{self, HeaderName, HeaderValue},
    StatusCode,
};
use serde_json::{json, Value};

on_both_backends!(
    basic_scheme_is_case_insensitive_at_every_client_endpoint,
    malformed_basic_is_401_with_a_basic_challenge,
    basic_credentials_may_be_form_urlencoded,
    bearer_scheme_is_case_insensitive_at_userinfo_and_the_admin_api,
    content_type_is_read_as_a_media_type,
    origin_and_referer_are_compared_normalised_and_fail_closed,
);

/// A confidential client's id and secret.
fn id_and_secret(app: App) -> (String, String) {
    (app.client_id, app.secret.expect("a confidential client"))
}

/// A form post to `path` with exactly these extra headers (repeated names are sent repeated).
async fn post_form(
    server: &TestServer,
    path: &str,
    headers: &[(HeaderName, &str)],
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(server.url(path)).form(form);
    for (name, value) in headers {
        request = request.header(name.clone(), *value);
    }
    request.send().await.unwrap()
}

/// A token request with this one `Authorization` header.
async fn token_with(server: &TestServer, auth: &str, form: &[(&str, &str)]) -> reqwest::Response {
    post_form(
        server,
        "/oauth/token",
        &[(header::AUTHORIZATION, auth)],
        form,
    )
    .await
}

/// `Authorization` with this scheme text (case and spaces as given) over `id:secret`.
fn authorization(scheme_and_spaces: &str, id: &str, secret: &str) -> String {
    format!(
        "{scheme_and_spaces}{}",
        STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn challenge(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
}

const CLIENT_CREDENTIALS: &[(&str, &str)] = &[("grant_type", "client_credentials")];

async fn basic_scheme_is_case_insensitive_at_every_client_endpoint(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let (id, secret) = id_and_secret(service(&t.db, "Reports", &["r"]).await);
    let (rs_id, rs_secret) = id_and_secret(service(&t.db, "Resource server", &[]).await);
    // It serves "r": the tokens below name it, so it may introspect them.
    app::domain::resource_servers::set(
        &t.db,
        &rs_id,
        "https://rs.example",
        &["r".into()],
        &Default::default(),
    )
    .await
    .unwrap();
    let mut tokens = Vec::new();
    for scheme in ["Basic ", "BASIC ", "basic ", "bAsIc ", "Basic   "] {
        let auth = authorization(scheme, &id, &secret);
        let res = token_with(&server, &auth, CLIENT_CREDENTIALS).await;
        assert_eq!(res.status(), StatusCode::OK, "{scheme:?}");
        let body: Value = res.json().await.unwrap();
        tokens.push(str_of(&body, "access_token").to_owned());
    }
    // Introspection and revocation authenticate through the same parser.
    let introspect = |token: String| {
        let auth = authorization("BASIC ", &rs_id, &rs_secret);
        let server = &server;
        async move {
            let res = post_form(
                server,
                "/oauth/introspect",
                &[(header::AUTHORIZATION, &auth)],
                &[("token", &token)],
            )
            .await;
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()["active"].clone()
        }
    };
    assert_eq!(introspect(tokens[0].clone()).await, true);
    let res = post_form(
        &server,
        "/oauth/revoke",
        &[(
            header::AUTHORIZATION,
            &authorization("basic ", &id, &secret),
        )],
        &[("token", &tokens[0])],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(introspect(tokens[0].clone()).await, false);
    assert_eq!(introspect(tokens[1].clone()).await, true, "only that token");

    // The issue's input with a wrong secret: 401 invalid_client with the
    // Basic challenge, since the client used the header (RFC 6749 §5.2).
    let res = token_with(
        &server,
        &authorization("BASIC ", &id, "wrong"),
        CLIENT_CREDENTIALS,
    )
    .await;
    assert!(challenge(&res).is_some_and(|c| c.starts_with("Basic realm=\"latchkey\"")));
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    // BASIC and client_secret_post at once: still invalid_request.
    let res = token_with(
        &server,
        &authorization("BASIC ", &id, &secret),
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    t.cleanup().await;
}

async fn malformed_basic_is_401_with_a_basic_challenge(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let (id, secret) = id_and_secret(service(&t.db, "Reports", &[]).await);
    let good = authorization("Basic ", &id, &secret);
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("malformed base64", vec!["BASIC %%%".into()]),
        ("no colon", vec![format!("Basic {}", STANDARD.encode(&id))]),
        ("a tab, not a space", vec![good.replacen(' ', "\t", 1)]),
        ("no credentials", vec!["Basic".into()]),
        (
            "not UTF-8 once unescaped",
            vec![authorization("Basic ", &id, "%FF%FE")],
        ),
        (
            "two Authorization headers",
            vec![good.clone(), good.clone()],
        ),
    ];
    for (why, values) in cases {
        let headers: Vec<(HeaderName, &str)> = values
            .iter()
            .map(|v| (header::AUTHORIZATION, v.as_str()))
            .collect();
        let res = post_form(&server, "/oauth/token", &headers, CLIENT_CREDENTIALS).await;
        assert!(
            challenge(&res).is_some_and(|c| c.starts_with("Basic ")),
            "{why}: {:?}",
            challenge(&res)
        );
        assert_eq!(
            oauth_error(res).await,
            (StatusCode::UNAUTHORIZED, "invalid_client".into()),
            "{why}"
        );
    }
    // Another scheme is no Basic attempt: the body's client_id is used.
    let res = token_with(&server, "Digest username=\"x\"", CLIENT_CREDENTIALS).await;
    assert!(challenge(&res).is_none());
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    t.cleanup().await;
}

async fn basic_credentials_may_be_form_urlencoded(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let (id, secret) = id_and_secret(service(&t.db, "Reports", &[]).await);
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64; a
    // client may escape every byte.
    let escape_all = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let auth = authorization("Basic ", &escape_all(&id), &escape_all(&secret));
    let res = token_with(&server, &auth, CLIENT_CREDENTIALS).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The body's client_id is compared with the unescaped Basic id.
    let res = token_with(
        &server,
        &auth,
        &[("grant_type", "client_credentials"), ("client_id", &id)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    t.cleanup().await;
}

async fn bearer_scheme_is_case_insensitive_at_userinfo_and_the_admin_api(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let web = app(&t, "Web", ClientKind::Confidential, &[]).await;
    let alice = person(&t, &server, "alice").await;
    let body = tokens_for(&alice, &server, &web, "openid profile").await;
    let user_token = str_of(&body, "access_token").to_owned();
    let admin_token = cc_token(
        &server,
        &service(&t.db, "Ops robot", &["latchkey:admin"]).await,
    )
    .await;

    let get = |path: &'static str, auth: String| {
        let server = &server;
        async move {
            reqwest::Client::new()
                .get(server.url(path))
                .header(header::AUTHORIZATION, auth)
                .send()
                .await
                .unwrap()
        }
    };
    for (path, token) in [
        ("/oauth/userinfo", &user_token),
        ("/api/admin/clients", &admin_token),
    ] {
        for scheme in ["Bearer ", "BEARER ", "bearer ", "bEaReR   "] {
            let res = get(path, format!("{scheme}{token}")).await;
            assert_eq!(res.status(), StatusCode::OK, "{path} {scheme:?}");
        }
        // A Bearer header that cannot be read: 401 invalid_token.
        for malformed in ["Bearer".to_owned(), format!("Bearer\t{token}")] {
            let res = get(path, malformed.clone()).await;
            assert_eq!(
                res.status(),
                StatusCode::UNAUTHORIZED,
                "{path} {malformed:?}"
            );
            let c = challenge(&res).unwrap();
            assert!(
                c.starts_with("Bearer ") && c.contains("error=\"invalid_token\""),
                "{path} {malformed:?}: {c}"
            );
        }
        // Another scheme is no credentials: a bare challenge (RFC 6750 §3.1).
        let res = get(path, authorization("Basic ", "a", "b")).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            challenge(&res).as_deref(),
            Some("Bearer realm=\"latchkey\""),
            "{path}"
        );
    }
    let res = get("/oauth/userinfo", format!("BEARER {user_token}")).await;
    let claims: Value = res.json().await.unwrap();
    assert_eq!(claims["sub"], alice.user_id);
    t.cleanup().await;
}

async fn content_type_is_read_as_a_media_type(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let (id, secret) = id_and_secret(service(&t.db, "Reports", &[]).await);
    let auth = authorization("Basic ", &id, &secret);
    let token = |content_type: Option<&'static str>| {
        let mut request = reqwest::Client::new()
            .post(server.url("/oauth/token"))
            .header(header::AUTHORIZATION, auth.clone())
            .body("grant_type=client_credentials");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        request.send()
    };
    for content_type in [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "APPLICATION/X-WWW-FORM-URLENCODED",
        "Application/x-www-form-urlencoded;charset=utf-8",
        "application/x-www-form-urlencoded ;  charset=\"UTF-8\"",
    ] {
        let res = token(Some(content_type)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{content_type}");
    }
    for content_type in [
        Some("application/json"),
        Some("garbage"),
        Some("application/x-www-form-urlencodedx"),
        // The body would be misread in another charset (RFC 6749 Appendix B).
        Some("application/x-www-form-urlencoded; charset=ISO-8859-1"),
        None,
    ] {
        let res = token(content_type).await.unwrap();
        assert_eq!(
            oauth_error(res).await,
            (StatusCode::BAD_REQUEST, "invalid_request".into()),
            "{content_type:?}"
        );
    }

    // The admin API's JSON bodies.
    let admin_token = cc_token(
        &server,
        &service(&t.db, "Ops robot", &["latchkey:admin"]).await,
    )
    .await;
    let create_user = |content_type: &'static str, username: &str| {
        reqwest::Client::new()
            .post(server.url("/api/admin/users"))
            .bearer_auth(&admin_token)
            .header(header::CONTENT_TYPE, content_type)
            .body(json!({ "username": username, "password": PASSWORD }).to_string())
            .send()
    };
    for (i, content_type) in [
        "application/json",
        "Application/JSON; charset=UTF-8",
        "application/json ; charset=utf-8",
        "application/vnd.latchkey+json",
    ]
    .into_iter()
    .enumerate()
    {
        let res = create_user(content_type, &format!("user{i}"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{content_type}");
    }
    for content_type in ["text/plain", "garbage", "text/json", "application/jsonx"] {
        let res = create_user(content_type, "nobody").await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{content_type}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{content_type}");
    }
    t.cleanup().await;
}

async fn origin_and_referer_are_compared_normalised_and_fail_closed(t: TestDb) {
    demo::seed(&t.db).await.unwrap();
    // The issuer's host differs from the socket's, so either rule can be seen alone.
    let server = TestServer::start_with_issuer(&t.db, Some("https://Latchkey.Example")).await;
    let port = server.addr.port();
    let (user, _) = demo::USER;
    // A wrong password: the handler answers 303 back to the form; the
    // cross-site check answers 403 before it.
    let post = |headers: Vec<(HeaderName, HeaderValue)>| {
        let server = &server;
        async move {
            let mut request = browser().0.post(server.url("/signin")).form(&[
                ("username", user),
                ("password", "wrong"),
                ("next", "/"),
            ]);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            request.send().await.unwrap().status()
        }
    };
    let one = |name: HeaderName, value: &str| vec![(name, HeaderValue::from_str(value).unwrap())];
    let accepted = [
        one(header::ORIGIN, "https://latchkey.example"),
        one(header::ORIGIN, "HTTPS://LATCHKEY.EXAMPLE"),
        one(header::ORIGIN, "https://latchkey.example:443"),
        one(header::ORIGIN, &format!("http://127.0.0.1:{port}")),
        one(header::ORIGIN, &format!("HTTP://127.0.0.1:{port}")),
        one(
            header::REFERER,
            "HTTPS://Latchkey.Example/oauth/authorize?client_id=x",
        ),
        one(header::REFERER, &format!("http://127.0.0.1:{port}/signin")),
        // Neither header: not a browser page.
        vec![],
    ];
    for headers in accepted {
        assert_eq!(
            post(headers.clone()).await,
            StatusCode::SEE_OTHER,
            "{headers:?}"
        );
    }
    let refused = [
        one(header::ORIGIN, "null"),
        one(header::ORIGIN, "https://evil.example"),
        one(header::ORIGIN, "https://latchkey.example.evil.example"),
        one(header::ORIGIN, "https://latchkey.example:8443"),
        one(header::ORIGIN, &format!("http://localhost:{port}")),
        // Not a serialized origin: fail closed, even on our own host.
        one(header::ORIGIN, &format!("http://127.0.0.1:{port}/signin")),
        one(header::ORIGIN, &format!("127.0.0.1:{port}")),
        one(header::ORIGIN, "https://user@latchkey.example"),
        vec![(
            header::ORIGIN,
            HeaderValue::from_bytes(b"https://latchkey.example\xff").unwrap(),
        )],
        one(header::REFERER, "https://evil.example/page"),
        one(header::REFERER, "data:text/html,hello"),
        one(header::REFERER, "not a url"),
        // A repeated Origin: which one the browser meant is a guess.
        vec![
            (
                header::ORIGIN,
                HeaderValue::from_static("https://latchkey.example"),
            ),
            (
                header::ORIGIN,
                HeaderValue::from_static("https://evil.example"),
            ),
        ],
        // Origin wins over Referer.
        vec![
            (
                header::ORIGIN,
                HeaderValue::from_static("https://evil.example"),
            ),
            (
                header::REFERER,
                HeaderValue::from_static("https://latchkey.example/"),
            ),
        ],
    ];
    for headers in refused {
        assert_eq!(
            post(headers.clone()).await,
            StatusCode::FORBIDDEN,
            "{headers:?}"
        );
    }
    t.cleanup().await;
}
