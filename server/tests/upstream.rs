//! Signing in through an upstream OpenID Connect provider, and revoking its
//! tokens at logout (issue 12), against a real upstream: a second Latchkey
//! process plays the company's provider (its own SQLite database, its own
//! port, a client registered for the first instance), and a real `latchkey
//! serve` process on the test database (both backends) is the one people
//! sign in to. The browser is a cookie-keeping HTTP client. The upstream
//! answers at `localhost`, the first instance at `127.0.0.1`: cookies do not
//! tell ports apart, hosts they do.
//!
//! ID tokens that must be refused (wrong nonce, `aud`, `iss`, signature)
//! come from a fake provider in this file, with a "good" token first to show
//! the fake is otherwise accepted.

mod common;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use app::domain::{
    audit::Actor,
    keys::{KeyRing, MasterKey, SigningAlg},
    upstream::{self, NewProvider},
    Db,
};
use common::{
    count,
    flow::{is_active_at, location, query_of, request_id, App},
    process::{
        cli, cli_with_stdin, empty_site, free_port, process_db_url, start_on, start_with, Instance,
    },
    TestDb, TestServer,
};
use reqwest::{header, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    sign_in_through_the_upstream_and_sign_out_revokes_its_tokens,
    an_upstream_down_at_logout_is_revoked_once_it_is_back,
    refused_callbacks_create_no_session,
    id_tokens_that_fail_validation_create_no_session,
    signing_out_can_end_the_upstream_session_too,
    two_tabs_each_finish_their_own_sign_in,
    a_provider_named_like_another_s_id_does_not_shadow_it,
    revocation_overrides_are_what_the_provider_receives,
    signing_in_again_ends_the_first_sign_in_and_its_upstream_tokens,
);

const PASSWORD: &str = "correct horse battery";
/// How long a test waits for the outbox worker.
const PATIENCE: Duration = Duration::from_secs(30);

/// The company's provider: a Latchkey process with user `carol` and a client
/// registered for the first instance's callback.
struct Company {
    instance: Instance,
    dir: tempfile::TempDir,
    db_url: String,
    site: PathBuf,
    port: u16,
    /// `http://localhost:{port}`: what the browser and the first instance use.
    issuer: String,
    /// The client registered for the first instance.
    client: App,
}

impl Company {
    async fn start(first_port: u16) -> Company {
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}/company.db", dir.path().display());
        cli_with_stdin(
            dir.path(),
            &db_url,
            &["user", "add", "--username", "carol", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
        let callback = format!("http://127.0.0.1:{first_port}/signin/upstream/callback");
        let out = cli(
            dir.path(),
            &db_url,
            &[
                "client",
                "add",
                "--name",
                "Latchkey of the team",
                "--redirect-uri",
                &callback,
                "--post-logout-redirect-uri",
                &format!("http://127.0.0.1:{first_port}/signin"),
                "--json",
            ],
        );
        let out: Value = serde_json::from_str(&out).unwrap();
        let client = App {
            client_id: out["client"]["client_id"].as_str().unwrap().to_owned(),
            secret: out["client_secret"].as_str().map(str::to_owned),
            redirect_uri: callback,
            post_logout_uri: String::new(),
        };
        let site = empty_site(dir.path());
        let port = free_port();
        let issuer = format!("http://localhost:{port}");
        let instance = start_on(port, dir.path(), &db_url, &site, Some(&issuer)).await;
        Company {
            instance,
            dir,
            db_url,
            site,
            port,
            issuer,
            client,
        }
    }

    /// Starts it again where it was, on its own database.
    async fn restart(&mut self) {
        self.instance.kill();
        self.instance = start_on(
            self.port,
            self.dir.path(),
            &self.db_url,
            &self.site,
            Some(&self.issuer),
        )
        .await;
    }

    /// Carol's user id there: the `sub` of her ID tokens.
    fn carol_sub(&self) -> String {
        let out = cli(self.dir.path(), &self.db_url, &["user", "list", "--json"]);
        let users: Value = serde_json::from_str(&out).unwrap();
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == "carol")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// The first instance: a `latchkey serve` process on the test database
/// with "Corp SSO" pointing at `company`, retries every second.
struct First {
    instance: Instance,
    dir: tempfile::TempDir,
    db_url: String,
    site: PathBuf,
    port: u16,
    provider_id: String,
}

const RETRY: &[&str] = &["--outbox-retry-first", "1s", "--outbox-retry-max", "1s"];

impl First {
    async fn start(t: &TestDb, port: u16, company: &Company) -> First {
        let dir = tempfile::tempdir().unwrap();
        let db_url = process_db_url(t);
        let out = cli_with_stdin(
            dir.path(),
            &db_url,
            &[
                "upstream",
                "add",
                "--name",
                "Corp SSO",
                "--issuer",
                &company.issuer,
                "--client-id",
                &company.client.client_id,
                "--client-secret-stdin",
                "--scope",
                "profile",
                "--scope",
                "offline_access",
                "--json",
            ],
            &format!("{}\n", company.client.secret.as_deref().unwrap()),
        );
        let provider: Value = serde_json::from_str(&out).unwrap();
        assert!(
            !out.contains(company.client.secret.as_deref().unwrap()),
            "the secret is never printed"
        );
        let site = empty_site(dir.path());
        let instance = start_with(port, dir.path(), &db_url, &site, None, RETRY).await;
        First {
            instance,
            dir,
            db_url,
            site,
            port,
            provider_id: provider["id"].as_str().unwrap().to_owned(),
        }
    }

    async fn restart(&mut self) {
        self.instance.kill();
        self.instance = start_with(
            self.port,
            self.dir.path(),
            &self.db_url,
            &self.site,
            None,
            RETRY,
        )
        .await;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.instance.base, path)
    }

    /// [`through_upstream`] at this instance's provider.
    async fn through(
        &self,
        browser: &reqwest::Client,
        company: &Company,
        decision: &str,
    ) -> (String, reqwest::Response) {
        through_upstream(
            browser,
            &self.instance.base,
            &self.provider_id,
            company,
            decision,
        )
        .await
    }

    /// The decrypting key of upstream tokens at rest: the sealer of this
    /// instance's master key file.
    fn sealer(&self) -> MasterKey {
        upstream::sealer(
            &MasterKey::load_or_create_file(self.dir.path().join("data/latchkey.key")).unwrap(),
        )
    }
}

fn browser() -> reqwest::Client {
    common::browser().0
}

/// One sign-in through the provider in `browser`: the button's POST, the
/// provider's sign-in (when it has no session) and consent (when asked,
/// answered `decision`), and the callback. Returns the callback URL and the
/// first instance's answer to it.
async fn through_upstream(
    browser: &reqwest::Client,
    first_base: &str,
    provider_id: &str,
    company: &Company,
    decision: &str,
) -> (String, reqwest::Response) {
    let res = browser
        .post(format!("{first_base}/signin/upstream/{provider_id}"))
        .header(header::ORIGIN, first_base)
        .form(&[("next", "/sessions")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let authorize = location(&res);
    assert!(
        authorize.starts_with(&format!("{}/oauth/authorize?", company.issuer)),
        "{authorize}"
    );
    let q = query_of(&authorize);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256", "PKCE S256");
    assert!(
        q["state"].len() >= 16 && q["nonce"].len() >= 16,
        "state and nonce"
    );
    assert_eq!(q["scope"], "openid profile offline_access");

    let mut res = browser.get(&authorize).send().await.unwrap();
    if res.status() == StatusCode::SEE_OTHER && location(&res).starts_with("/signin") {
        // The provider's own sign-in, then back to its authorization endpoint.
        let next = query_of(&format!("{}{}", company.issuer, location(&res)))["next"].clone();
        let signed_in = browser
            .post(format!("{}/signin", company.issuer))
            .header(header::ORIGIN, &company.issuer)
            .form(&[
                ("username", "carol"),
                ("password", PASSWORD),
                ("next", &next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        res = browser
            .get(format!("{}{}", company.issuer, location(&signed_in)))
            .send()
            .await
            .unwrap();
    }
    if res.status() == StatusCode::OK {
        let html = res.text().await.unwrap();
        res = browser
            .post(format!("{}/oauth/authorize", company.issuer))
            .header(header::ORIGIN, &company.issuer)
            .form(&[
                ("request_id", request_id(&html).as_str()),
                ("decision", decision),
            ])
            .send()
            .await
            .unwrap();
    }
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let callback = location(&res);
    assert!(
        callback.starts_with(&format!("{first_base}/signin/upstream/callback?")),
        "{callback}"
    );
    let answer = browser.get(&callback).send().await.unwrap();
    (callback, answer)
}

/// The sign-in page's error code a refused callback ends on.
fn refused_with(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(res);
    assert!(to.starts_with("/signin?"), "{to}");
    query_of(&format!("http://x{to}"))["error"].clone()
}

/// One row of one column (test inspection).
async fn one(db: &Db, sql: &str, param: &str) -> Option<String> {
    common::text_value(db, sql, param).await
}

async fn number(db: &Db, sql: &str, param: &str) -> i64 {
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).bind(param).fetch_one(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(sql).bind(param).fetch_one(pool).await,
    }
    .unwrap()
}

/// The live upstream refresh token of `user_id`'s sign-in, decrypted.
async fn upstream_refresh_token(db: &Db, first: &First, user_id: &str) -> String {
    upstream_token(db, first, user_id, "refresh_token_enc").await
}

/// One stored upstream token (`column`) of `user_id`'s live sign-in, decrypted.
async fn upstream_token(db: &Db, first: &First, user_id: &str, column: &str) -> String {
    let enc = one(
        db,
        &format!(
            "SELECT t.{column} FROM upstream_tokens t \
             JOIN login_sessions s ON s.id = t.login_session_id \
             WHERE s.user_id = $1 AND s.ended_at IS NULL"
        ),
        user_id,
    )
    .await
    .unwrap_or_else(|| panic!("the upstream {column} is stored"));
    String::from_utf8(first.sealer().decrypt(&enc).unwrap()).unwrap()
}

/// Waits until the company's introspection says `token` is inactive.
async fn eventually_inactive(company: &Company, token: &str, what: &str) {
    let started = Instant::now();
    while is_active_at(&company.instance, &company.client, token).await {
        assert!(
            started.elapsed() < PATIENCE,
            "{what}: still active upstream"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const LINKED_USER: &str = "SELECT user_id FROM upstream_identities WHERE sub = $1";

async fn sign_in_through_the_upstream_and_sign_out_revokes_its_tokens(t: TestDb) {
    let port = free_port();
    let company = Company::start(port).await;
    // A local account with the upstream user's username, before anyone
    // signs in through the provider: it must not be taken over.
    let local = app::domain::users::add_user(&t.db, "carol", PASSWORD, false)
        .await
        .unwrap();
    let first = First::start(&t, port, &company).await;
    let browser = browser();

    let (callback, res) = first.through(&browser, &company, "allow").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/sessions", "signed in, on to `next`");

    // Linked by (iss, sub), to a new user — not the local "carol".
    let sub = company.carol_sub();
    let user_id = one(&t.db, LINKED_USER, &sub).await.expect("a linked user");
    assert_ne!(user_id, local.id, "the local account is not taken over");
    assert_eq!(
        one(
            &t.db,
            "SELECT issuer FROM upstream_identities WHERE sub = $1",
            &sub
        )
        .await
        .as_deref(),
        Some(company.issuer.as_str())
    );
    assert_eq!(
        one(&t.db, "SELECT username FROM users WHERE id = $1", &user_id)
            .await
            .as_deref(),
        Some("carol-2"),
        "named after preferred_username, without taking the local one"
    );
    assert_eq!(
        number(
            &t.db,
            "SELECT COUNT(*) FROM login_sessions WHERE user_id = $1",
            &local.id
        )
        .await,
        0,
        "nobody signed in as the local carol"
    );
    // The Sessions page says how the sign-in was made.
    let page = browser.get(first.url("/sessions")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("with Corp SSO"));

    // The upstream tokens are stored encrypted, and live upstream.
    let refresh = upstream_refresh_token(&t.db, &first, &user_id).await;
    assert_eq!(
        number(
            &t.db,
            "SELECT COUNT(*) FROM upstream_tokens WHERE refresh_token_enc LIKE '%' || $1 || '%'",
            &refresh
        )
        .await,
        0,
        "no plaintext at rest"
    );
    assert!(is_active_at(&company.instance, &company.client, &refresh).await);

    // Replaying the callback (its state) signs nobody in.
    let sessions_before = count(&t.db, "login_sessions").await;
    let replayed = browser.get(&callback).send().await.unwrap();
    assert_eq!(refused_with(&replayed), "upstream_expired");
    assert_eq!(count(&t.db, "login_sessions").await, sessions_before);

    // The upstream access token too (checked before signing out ends the sign-in).
    let access = upstream_token(&t.db, &first, &user_id, "access_token_enc").await;
    assert!(is_active_at(&company.instance, &company.client, &access).await);
    // Signing out revokes the upstream refresh token (RFC 7009 upstream).
    let out = browser
        .post(first.url("/signout"))
        .header(header::ORIGIN, &first.instance.base)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/signin?signed_out=1");
    eventually_inactive(&company, &refresh, "signed out").await;
    eventually_inactive(&company, &access, "signed out: the access token").await;
    common::eventually_text(
        &t.db,
        "SELECT CASE WHEN revoked_at IS NOT NULL AND refresh_token_enc IS NULL \
         AND access_token_enc IS NULL AND id_token_enc IS NULL THEN 'deleted' ELSE 'kept' END \
         FROM upstream_tokens t JOIN login_sessions s ON s.id = t.login_session_id WHERE s.user_id = $1",
        &user_id,
        "deleted",
        "revoked tokens are deleted",
    )
    .await;
    assert_eq!(
        number(
            &t.db,
            "SELECT COUNT(*) FROM audit_events WHERE kind = 'upstream_tokens_revoked' AND subject_user_id = $1",
            &user_id
        )
        .await,
        1
    );

    // With the switch off, signing out leaves the upstream token alone (and
    // Latchkey's copy is deleted at once).
    cli(
        first.dir.path(),
        &first.db_url,
        &["upstream", "set", "Corp SSO", "--revoke-at-logout", "off"],
    );
    let (_, res) = first.through(&browser, &company, "allow").await;
    assert_eq!(location(&res), "/sessions");
    let refresh = upstream_refresh_token(&t.db, &first, &user_id).await;
    let out = browser
        .post(first.url("/signout"))
        .header(header::ORIGIN, &first.instance.base)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        number(
            &t.db,
            "SELECT COUNT(*) FROM upstream_tokens WHERE provider_id = $1 \
             AND revoke_requested_at IS NULL AND refresh_token_enc IS NULL",
            &first.provider_id
        )
        .await,
        1,
        "nothing to revoke, and the copy is gone"
    );
    assert!(
        is_active_at(&company.instance, &company.client, &refresh).await,
        "switch off: the upstream token stays active"
    );
}

async fn an_upstream_down_at_logout_is_revoked_once_it_is_back(t: TestDb) {
    let port = free_port();
    let mut company = Company::start(port).await;
    let mut first = First::start(&t, port, &company).await;
    let browser = browser();
    let (_, res) = first.through(&browser, &company, "allow").await;
    assert_eq!(location(&res), "/sessions");
    let user_id = one(&t.db, LINKED_USER, &company.carol_sub()).await.unwrap();
    let refresh = upstream_refresh_token(&t.db, &first, &user_id).await;

    assert!(is_active_at(&company.instance, &company.client, &refresh).await);
    // The provider goes away; signing out still works at once.
    company.instance.kill();
    let out = browser
        .post(first.url("/signout"))
        .header(header::ORIGIN, &first.instance.base)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.status(),
        StatusCode::SEE_OTHER,
        "the local sign-out succeeds"
    );
    assert_eq!(
        number(
            &t.db,
            "SELECT COUNT(*) FROM login_sessions WHERE user_id = $1 AND ended_at IS NULL",
            &user_id
        )
        .await,
        0
    );
    // The worker tries, fails, and keeps the row due.
    let started = Instant::now();
    loop {
        let failed = number(
            &t.db,
            "SELECT COUNT(*) FROM upstream_tokens WHERE provider_id = $1 AND attempts >= 1 \
             AND last_error IS NOT NULL AND next_attempt_at IS NOT NULL AND revoked_at IS NULL",
            &first.provider_id,
        )
        .await;
        if failed == 1 {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "a failed attempt is recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A restart of the first instance in between loses nothing.
    first.restart().await;
    // The provider comes back where it was: the token is revoked there.
    company.restart().await;
    eventually_inactive(&company, &refresh, "after the provider came back").await;
}

async fn refused_callbacks_create_no_session(t: TestDb) {
    let port = free_port();
    let company = Company::start(port).await;
    let first = First::start(&t, port, &company).await;
    let browser = browser();

    // Denied at the provider's consent page.
    let (_, res) = first.through(&browser, &company, "deny").await;
    assert_eq!(refused_with(&res), "upstream_denied");
    assert_eq!(count(&t.db, "login_sessions").await, 0);
    assert_eq!(count(&t.db, "upstream_identities").await, 0);

    // A callback with a state this browser never started.
    let forged = browser
        .get(first.url("/signin/upstream/callback?code=abc&state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused_with(&forged), "upstream_expired");
    assert_eq!(count(&t.db, "login_sessions").await, 0);

    // A disabled linked user cannot sign in through the provider.
    let (_, res) = first.through(&browser, &company, "allow").await;
    assert_eq!(location(&res), "/sessions");
    let user_id = one(&t.db, LINKED_USER, &company.carol_sub()).await.unwrap();
    let refresh = upstream_refresh_token(&t.db, &first, &user_id).await;
    // An admin disables the user: the sign-in ends, and with it the
    // upstream tokens (the same path as every other way a sign-in ends).
    let revoked = app::domain::revocation::RevokedSets::load(&t.db)
        .await
        .unwrap();
    app::domain::admin::update_user(
        &t.db,
        &revoked,
        &user_id,
        app::domain::admin::UserChange {
            disabled: Some(true),
            is_admin: None,
        },
        &Actor::default(),
    )
    .await
    .unwrap();
    eventually_inactive(&company, &refresh, "user disabled").await;
    let sessions = count(&t.db, "login_sessions").await;
    let other = self::browser();
    let (_, res) = first.through(&other, &company, "allow").await;
    assert_eq!(refused_with(&res), "upstream_disabled");
    assert_eq!(
        count(&t.db, "login_sessions").await,
        sessions,
        "no new sign-in"
    );
    assert!(
        number(
            &t.db,
            "SELECT COUNT(*) FROM audit_events WHERE kind = 'login_failed' AND detail LIKE '%' || $1 || '%'",
            "upstream_disabled"
        )
        .await
            >= 1,
        "the refusal is audited"
    );
}

/// With "end upstream session" on, signing out offers RP-initiated logout at
/// the provider, with the ID token as hint; following it ends the provider's
/// own sign-in (the next sign-in there asks for the password again).
async fn signing_out_can_end_the_upstream_session_too(t: TestDb) {
    let port = free_port();
    let company = Company::start(port).await;
    let first = First::start(&t, port, &company).await;
    cli(
        first.dir.path(),
        &first.db_url,
        &[
            "upstream",
            "set",
            "Corp SSO",
            "--end-upstream-session",
            "on",
        ],
    );
    let browser = browser();
    let (_, res) = first.through(&browser, &company, "allow").await;
    assert_eq!(location(&res), "/sessions");
    let out = browser
        .post(first.url("/signout"))
        .header(header::ORIGIN, &first.instance.base)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK, "the offer page");
    let html = out.text().await.unwrap();
    assert!(
        html.contains("data-testid=\"upstream-signed-out\""),
        "{html}"
    );
    assert!(html.contains("Sign out of Corp SSO too"));
    let marker = "data-testid=\"upstream-sign-out\"";
    let link = html[..html.find(marker).unwrap()]
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(
        link.starts_with(&format!("{}/oauth/logout?", company.issuer)),
        "{link}"
    );
    let q = query_of(&link);
    assert!(
        q["id_token_hint"].split('.').count() == 3,
        "the ID token as hint"
    );
    assert_eq!(q["client_id"], company.client.client_id);
    assert_eq!(q["post_logout_redirect_uri"], first.url("/signin"));
    // Latchkey is signed out already, whatever the person chooses next.
    assert_eq!(count(&t.db, "login_sessions").await, 1);
    assert_eq!(
        number(
            &t.db,
            "SELECT COUNT(*) FROM login_sessions WHERE ended_at IS NULL AND id <> $1",
            ""
        )
        .await,
        0
    );
    // Following the offer signs the person out at the provider too.
    let res = browser.get(&link).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), first.url("/signin"));
    let again = browser
        .post(first.url(&format!("/signin/upstream/{}", first.provider_id)))
        .header(header::ORIGIN, &first.instance.base)
        .form(&[("next", "/")])
        .send()
        .await
        .unwrap();
    let at_company = browser.get(location(&again)).send().await.unwrap();
    assert_eq!(at_company.status(), StatusCode::SEE_OTHER);
    assert!(
        location(&at_company).starts_with("/signin"),
        "the provider asks for the password again: {}",
        location(&at_company)
    );
}

// ---------------------------------------------------------------------------
// A fake provider that signs whatever ID token the test asks for
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Good,
    WrongNonce,
    WrongAudience,
    WrongIssuer,
    BadSignature,
}

#[derive(Clone)]
struct Fake {
    base: String,
    keys: KeyRing,
    client_id: String,
    mode: Arc<Mutex<Mode>>,
    nonce: Arc<Mutex<String>>,
    /// What `/custom-revoke` received: the Authorization header and the form.
    revocations: Arc<Mutex<Vec<Revocation>>>,
}

/// One request to the fake's revocation endpoint.
#[derive(Clone, Debug)]
struct Revocation {
    authorization: Option<String>,
    form: std::collections::BTreeMap<String, String>,
}

impl Fake {
    /// Registers the fake as the provider "Fake SSO" of the Latchkey on `db`.
    async fn add_to(&self, db: &Db) -> upstream::Provider {
        let new = NewProvider {
            name: "Fake SSO".into(),
            issuer: self.base.clone(),
            client_id: self.client_id.clone(),
            client_secret: "fake-secret".into(),
            revoke_at_logout: true,
            ..Default::default()
        };
        upstream::add(
            db,
            &upstream::sealer(common::master_key()),
            &new,
            &Actor::default(),
        )
        .await
        .unwrap()
    }
}

async fn fake_provider(client_id: &str) -> (Fake, tokio::task::JoinHandle<()>, TestDb) {
    use axum::{
        extract::{Query, State},
        response::{IntoResponse, Redirect},
        routing::{get, post},
        Json, Router,
    };
    let keys_db = TestDb::sqlite().await;
    let keys = KeyRing::load_or_create(&keys_db.db, common::master_key())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fake = Fake {
        base: base.clone(),
        keys,
        client_id: client_id.to_owned(),
        mode: Arc::new(Mutex::new(Mode::Good)),
        nonce: Arc::default(),
        revocations: Arc::default(),
    };
    async fn discovery(State(f): State<Fake>) -> Json<Value> {
        Json(json!({
            "issuer": f.base,
            "authorization_endpoint": format!("{}/authorize", f.base),
            "token_endpoint": format!("{}/token", f.base),
            "jwks_uri": format!("{}/jwks", f.base),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }))
    }
    async fn revoke(
        State(f): State<Fake>,
        headers: axum::http::HeaderMap,
        axum::Form(form): axum::Form<std::collections::BTreeMap<String, String>>,
    ) -> &'static str {
        let authorization = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        f.revocations.lock().unwrap().push(Revocation {
            authorization,
            form,
        });
        ""
    }
    async fn jwks(State(f): State<Fake>) -> Json<Value> {
        Json(f.keys.jwks())
    }
    async fn authorize(
        State(f): State<Fake>,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> impl IntoResponse {
        *f.nonce.lock().unwrap() = q["nonce"].clone();
        let mut to = url::Url::parse(&q["redirect_uri"]).unwrap();
        to.query_pairs_mut()
            .append_pair("code", "fake-code")
            .append_pair("state", &q["state"]);
        Redirect::to(to.as_str())
    }
    async fn token(State(f): State<Fake>) -> Json<Value> {
        let mode = *f.mode.lock().unwrap();
        let now = app::domain::store::now();
        let mut claims = json!({
            "iss": f.base, "sub": "fake-subject", "aud": f.client_id,
            "iat": now, "exp": now + 300, "nonce": *f.nonce.lock().unwrap(),
            "preferred_username": "frank",
        });
        match mode {
            Mode::WrongNonce => claims["nonce"] = json!("another nonce"),
            Mode::WrongAudience => claims["aud"] = json!("another-client"),
            Mode::WrongIssuer => claims["iss"] = json!("http://127.0.0.1:9/"),
            Mode::Good | Mode::BadSignature => {}
        }
        let mut id_token = f.keys.sign(SigningAlg::RS256, "JWT", &claims).unwrap();
        if mode == Mode::BadSignature {
            // Another token's signature (same key, same kid): valid
            // base64url, wrong for these header and claims.
            claims["sub"] = json!("someone else");
            let other = f.keys.sign(SigningAlg::RS256, "JWT", &claims).unwrap();
            let signature = other.rsplit('.').next().unwrap();
            let cut = id_token.rfind('.').unwrap();
            id_token = format!("{}.{signature}", &id_token[..cut]);
        }
        Json(json!({
            "access_token": "fake-access", "refresh_token": "fake-refresh",
            "token_type": "Bearer", "expires_in": 300,
            "id_token": id_token,
        }))
    }
    let router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/custom-revoke", post(revoke))
        .with_state(fake.clone());
    let handle = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (fake, handle, keys_db)
}

async fn id_tokens_that_fail_validation_create_no_session(t: TestDb) {
    let (fake, handle, keys_db) = fake_provider("latchkey-at-fake").await;
    let provider = fake.add_to(&t.db).await;
    let server = TestServer::start(&t.db).await;
    let attempt = |mode: Mode| {
        let (fake, server_base, provider_id) =
            (fake.clone(), server.base.clone(), provider.id.clone());
        async move {
            *fake.mode.lock().unwrap() = mode;
            let browser = browser();
            let res = browser
                .post(format!("{server_base}/signin/upstream/{provider_id}"))
                .header(header::ORIGIN, &server_base)
                .form(&[("next", "/")])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "{mode:?}");
            let res = browser.get(location(&res)).send().await.unwrap();
            let callback = location(&res);
            browser.get(&callback).send().await.unwrap()
        }
    };
    for mode in [
        Mode::WrongNonce,
        Mode::WrongAudience,
        Mode::WrongIssuer,
        Mode::BadSignature,
    ] {
        let res = attempt(mode).await;
        assert_eq!(refused_with(&res), "upstream_invalid", "{mode:?}");
        assert_eq!(count(&t.db, "login_sessions").await, 0, "{mode:?}");
        assert_eq!(count(&t.db, "users").await, 0, "{mode:?}: nobody created");
    }
    // The same fake with a valid token is accepted: what failed above was
    // the one thing each mode changed.
    let res = attempt(Mode::Good).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
    assert_eq!(count(&t.db, "login_sessions").await, 1);
    assert_eq!(
        one(&t.db, "SELECT u.username FROM users u JOIN upstream_identities i ON i.user_id = u.id WHERE i.sub = $1", "fake-subject")
            .await
            .as_deref(),
        Some("frank")
    );
    // The provider rotates its signing keys: the next ID token names a key
    // the cached JWKS lacks, so the JWKS is fetched again and it verifies.
    app::domain::keys::rotate(&keys_db.db, common::master_key())
        .await
        .unwrap();
    fake.keys
        .reload(&keys_db.db, common::master_key())
        .await
        .unwrap();
    let res = attempt(Mode::Good).await;
    assert_eq!(location(&res), "/", "signed in with the provider's new key");
    assert_eq!(count(&t.db, "login_sessions").await, 2);
    handle.abort();
}

/// Two tabs start a sign-in through the provider; each callback finds its
/// own pending sign-in (by `state`), whatever the order, and the second
/// sign-in replaces the first in the browser.
async fn two_tabs_each_finish_their_own_sign_in(t: TestDb) {
    let (fake, handle, _keys_db) = fake_provider("latchkey-at-fake").await;
    let provider = fake.add_to(&t.db).await;
    let server = TestServer::start(&t.db).await;
    let browser = browser();
    let mut callbacks = Vec::new();
    for _ in 0..2 {
        let res = browser
            .post(server.url(&format!("/signin/upstream/{}", provider.id)))
            .header(header::ORIGIN, &server.base)
            .form(&[("next", "/")])
            .send()
            .await
            .unwrap();
        let at_provider = browser.get(location(&res)).send().await.unwrap();
        callbacks.push(location(&at_provider));
    }
    // The fake signs the nonce of the latest authorization request: the
    // second tab's callback first, then the first tab's (whose nonce the
    // fake no longer signs: refused as invalid, not as an unknown state).
    let second = browser.get(&callbacks[1]).send().await.unwrap();
    assert_eq!(location(&second), "/");
    let first = browser.get(&callbacks[0]).send().await.unwrap();
    assert_eq!(
        refused_with(&first),
        "upstream_invalid",
        "its own state was found"
    );
    // And replaying the second is refused: its state was taken out.
    let again = browser.get(&callbacks[1]).send().await.unwrap();
    assert_eq!(refused_with(&again), "upstream_expired");
    handle.abort();
}

/// A provider whose name spells another provider's id does not hide that
/// provider: an id always wins.
async fn a_provider_named_like_another_s_id_does_not_shadow_it(t: TestDb) {
    let sealer = upstream::sealer(common::master_key());
    let new = |name: String| NewProvider {
        name,
        issuer: "https://sso.corp.example".into(),
        client_id: "latchkey".into(),
        client_secret: "secret".into(),
        revoke_at_logout: true,
        ..Default::default()
    };
    let a = upstream::add(&t.db, &sealer, &new("Corp SSO".into()), &Actor::default())
        .await
        .unwrap();
    let b = upstream::add(&t.db, &sealer, &new(a.id.clone()), &Actor::default())
        .await
        .unwrap();
    // Whichever id sorts first, looking up a's id finds a; b by its own id.
    assert_eq!(
        upstream::find(&t.db, &a.id).await.unwrap().unwrap().id,
        a.id
    );
    assert_eq!(
        upstream::find(&t.db, &b.id).await.unwrap().unwrap().id,
        b.id
    );
    assert_eq!(
        upstream::remove(&t.db, &a.id, &Actor::default())
            .await
            .unwrap()
            .id,
        a.id
    );
    assert!(upstream::find(&t.db, &b.id).await.unwrap().is_some());
}

/// Signing in through the provider again in the same browser ends the first
/// sign-in, so its upstream refresh token is revoked: no sign-in is left that
/// no browser could sign out.
async fn signing_in_again_ends_the_first_sign_in_and_its_upstream_tokens(t: TestDb) {
    let port = free_port();
    let company = Company::start(port).await;
    let first = First::start(&t, port, &company).await;
    let browser = browser();
    let (_, res) = first.through(&browser, &company, "allow").await;
    assert_eq!(location(&res), "/sessions");
    let user_id = one(&t.db, LINKED_USER, &company.carol_sub()).await.unwrap();
    let refresh = upstream_refresh_token(&t.db, &first, &user_id).await;
    let (_, res) = first.through(&browser, &company, "allow").await;
    assert_eq!(location(&res), "/sessions");
    assert_eq!(
        number(
            &t.db,
            "SELECT COUNT(*) FROM login_sessions WHERE user_id = $1 AND ended_at IS NULL",
            &user_id
        )
        .await,
        1,
        "one live sign-in: the new one"
    );
    eventually_inactive(&company, &refresh, "the replaced sign-in's token").await;
    let newer = upstream_refresh_token(&t.db, &first, &user_id).await;
    assert_ne!(newer, refresh);
    assert!(is_active_at(&company.instance, &company.client, &newer).await);
}

/// The per-provider revocation overrides (issue 12, item 1): the endpoint,
/// the token parameter's name and the extra parameters are what the
/// provider receives at logout, with the client authenticated by HTTP Basic
/// (its discovery announces no method) — the refresh token, then the access
/// token.
async fn revocation_overrides_are_what_the_provider_receives(t: TestDb) {
    let (fake, handle, _keys_db) = fake_provider("latchkey-at-fake").await;
    let provider = fake.add_to(&t.db).await;
    let change = upstream::ProviderChange {
        revocation_endpoint: Some(Some(format!("{}/custom-revoke", fake.base))),
        revocation_token_param: Some(Some("refresh_token".into())),
        revocation_extra_params: Some([("tenant".to_owned(), "corp".to_owned())].into()),
        ..Default::default()
    };
    let sealer = upstream::sealer(common::master_key());
    upstream::update(&t.db, &sealer, &provider.id, &change, &Actor::default())
        .await
        .unwrap();
    let options = common::Options {
        outbox: Some(app::domain::backchannel::RetryPolicy::default()),
        ..Default::default()
    };
    let server = TestServer::start_with(&t.db, options).await;
    let browser = browser();
    let res = browser
        .post(server.url(&format!("/signin/upstream/{}", provider.id)))
        .header(header::ORIGIN, &server.base)
        .form(&[("next", "/")])
        .send()
        .await
        .unwrap();
    let at_provider = browser.get(location(&res)).send().await.unwrap();
    let back = browser.get(location(&at_provider)).send().await.unwrap();
    assert_eq!(location(&back), "/");
    let out = browser
        .post(server.url("/signout"))
        .header(header::ORIGIN, &server.base)
        .send()
        .await
        .unwrap();
    assert!(out.status().is_redirection());
    let started = Instant::now();
    while fake.revocations.lock().unwrap().len() < 2 {
        assert!(started.elapsed() < PATIENCE, "two revocations sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("latchkey-at-fake:fake-secret")
    );
    let sent = fake.revocations.lock().unwrap().clone();
    for (r, (token, hint)) in sent.iter().zip([
        ("fake-refresh", "refresh_token"),
        ("fake-access", "access_token"),
    ]) {
        assert_eq!(r.authorization.as_deref(), Some(basic.as_str()), "{r:?}");
        let expected: std::collections::BTreeMap<String, String> = [
            ("refresh_token", token),
            ("token_type_hint", hint),
            ("tenant", "corp"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            r.form, expected,
            "the overridden parameter name, no secret in the body"
        );
    }
    common::eventually_text(
        &t.db,
        "SELECT CASE WHEN revoked_at IS NOT NULL AND refresh_token_enc IS NULL THEN 'revoked' ELSE 'not yet' END \
         FROM upstream_tokens WHERE provider_id = $1",
        &provider.id,
        "revoked",
        "recorded as revoked, the tokens deleted",
    )
    .await;
    handle.abort();
}
