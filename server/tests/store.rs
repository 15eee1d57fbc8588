//! The repository layer on both backends: one body per test, run on SQLite and PostgreSQL.

mod common;

use app::domain::{
    clients::{self, ClientKind, GrantType, NewClient},
    demo,
    login_sessions::{self, ClientInfo},
    secrets::sha256_hex,
    users, Db, DomainError,
};
use common::{count, exec, text_value, TestDb};
use tower_sessions::{
    session::{Id, Record},
    SessionStore,
};

on_both_backends!(
    durable_writes_reach_the_disk_before_they_commit,
    backup_copies_sqlite_and_names_pg_dump_for_postgresql,
    migrations_create_the_whole_schema_and_run_twice,
    users_are_created_listed_and_authenticated,
    duplicate_username_in_any_case_changes_nothing,
    bad_passwords_are_rejected_before_anything_is_written,
    clients_store_only_the_secret_hash,
    duplicate_client_name_changes_nothing,
    sign_in_sessions_start_resolve_and_end,
    disabled_users_neither_authenticate_nor_resolve,
    demo_seed_is_idempotent,
    browser_session_store_round_trips,
);

async fn migrations_create_the_whole_schema_and_run_twice(t: TestDb) {
    for table in [
        "users",
        "clients",
        "policy_default",
        "login_sessions",
        "grants",
        "token_families",
        "refresh_tokens",
        "auth_codes",
        "revoked_access_tokens",
        "signing_keys",
        "audit_events",
    ] {
        let n = count(&t.db, table).await;
        let expected = if table == "policy_default" { 1 } else { 0 };
        assert_eq!(n, expected, "table {table}");
    }
    // A second run finds nothing to do and does not fail.
    t.db.migrate().await.unwrap();
    assert_eq!(count(&t.db, "policy_default").await, 1);
    t.cleanup().await;
}

async fn users_are_created_listed_and_authenticated(t: TestDb) {
    let bob = users::add_user(&t.db, "Bob", "bob-password-1", false)
        .await
        .unwrap();
    let ann = users::add_user(&t.db, "ann", "ann-password-1", true)
        .await
        .unwrap();
    let list = users::list_users(&t.db).await.unwrap();
    assert_eq!(
        list.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(),
        ["ann", "Bob"]
    );
    assert!(list[0].is_admin && !list[1].is_admin);

    // Case-insensitive username, exact password.
    let found = users::authenticate(&t.db, "bob", "bob-password-1")
        .await
        .unwrap();
    assert_eq!(found.as_ref().map(|u| &u.id), Some(&bob.id));
    assert!(users::authenticate(&t.db, "Bob", "bob-password-2")
        .await
        .unwrap()
        .is_none());
    assert!(users::authenticate(&t.db, "nobody", "bob-password-1")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        users::find_by_username(&t.db, "ANN")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(ann.id)
    );
    // Stored as an Argon2id hash, never the password.
    let hash = text_value(
        &t.db,
        "SELECT password_hash FROM users WHERE username = $1",
        "Bob",
    )
    .await
    .unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("bob-password-1"));
    // Each creation is audited.
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'user_created'").await,
        2
    );
    t.cleanup().await;
}

async fn duplicate_username_in_any_case_changes_nothing(t: TestDb) {
    users::add_user(&t.db, "carol", "carol-password", false)
        .await
        .unwrap();
    let err = users::add_user(&t.db, "CAROL", "another-password", true)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(count(&t.db, "users").await, 1);
    assert_eq!(count(&t.db, "audit_events").await, 1);
    // The original password still works; the rejected one does not.
    assert!(users::authenticate(&t.db, "carol", "carol-password")
        .await
        .unwrap()
        .is_some());
    assert!(users::authenticate(&t.db, "carol", "another-password")
        .await
        .unwrap()
        .is_none());
    t.cleanup().await;
}

async fn bad_passwords_are_rejected_before_anything_is_written(t: TestDb) {
    for (password, why) in [("", "must not be empty"), ("short", "at least 8")] {
        let err = users::add_user(&t.db, "dave", password, false)
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with("password: ") && err.to_string().contains(why),
            "{err}"
        );
    }
    let err = users::add_user(&t.db, "bad name!", "long-enough-pw", false)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("username: "), "{err}");
    assert_eq!(count(&t.db, "users").await, 0);
    t.cleanup().await;
}

fn web_app(name: &str) -> NewClient {
    NewClient {
        name: name.into(),
        kind: ClientKind::Confidential,
        redirect_uris: vec![
            "https://app.example/cb".into(),
            "https://app.example/cb".into(),
        ],
        post_logout_redirect_uris: vec!["https://app.example/".into()],
        grant_types: vec![],
        extra_scopes: vec!["notes:read".into()],
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        metadata: Default::default(),
    }
}

async fn clients_store_only_the_secret_hash(t: TestDb) {
    common::flow::catalogue(&t.db, &["notes:read"]).await;
    let (client, secret) = clients::add_client(&t.db, &web_app("Notes")).await.unwrap();
    let secret = secret.expect("a confidential client gets a secret");
    assert_eq!(format!("{secret:?}"), "[redacted]");
    let stored = text_value(
        &t.db,
        "SELECT secret_hash FROM clients WHERE id = $1",
        &client.client_id,
    )
    .await;
    assert_eq!(stored, Some(sha256_hex(&secret.0)));
    assert_ne!(stored.as_deref(), Some(secret.0.as_str()));

    let (public, none) = clients::add_client(
        &t.db,
        &NewClient {
            kind: ClientKind::Public,
            ..web_app("Phone app")
        },
    )
    .await
    .unwrap();
    assert!(none.is_none());

    let listed = clients::list_clients(&t.db).await.unwrap();
    assert_eq!(listed.len(), 2);
    let notes = listed
        .iter()
        .find(|c| c.client_id == client.client_id)
        .unwrap();
    assert_eq!(
        notes.redirect_uris,
        ["https://app.example/cb"],
        "duplicates collapse"
    );
    assert_eq!(
        notes.grant_types,
        [GrantType::AuthorizationCode, GrantType::RefreshToken]
    );
    assert_eq!(notes.extra_scopes, ["notes:read"]);
    let phone = listed
        .iter()
        .find(|c| c.client_id == public.client_id)
        .unwrap();
    assert_eq!(phone.kind, ClientKind::Public);
    t.cleanup().await;
}

async fn duplicate_client_name_changes_nothing(t: TestDb) {
    common::flow::catalogue(&t.db, &["notes:read"]).await;
    clients::add_client(&t.db, &web_app("Notes")).await.unwrap();
    let err = clients::add_client(&t.db, &web_app("notes"))
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Conflict(_)), "{err:?}");
    let err = clients::add_client(
        &t.db,
        &NewClient {
            redirect_uris: vec!["https://app.example/cb#x".into()],
            ..web_app("Other")
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("fragment"), "{err}");
    assert_eq!(count(&t.db, "clients").await, 1);
    t.cleanup().await;
}

async fn sign_in_sessions_start_resolve_and_end(t: TestDb) {
    let user = users::add_user(&t.db, "erin", "erin-password", false)
        .await
        .unwrap();
    let from = ClientInfo {
        ip: "127.0.0.9".into(),
        user_agent: "TestBrowser/1.0".into(),
    };
    let sid = login_sessions::start(&t.db, &user, &from).await.unwrap();
    let resolved = login_sessions::resolve(&t.db, &sid, &from)
        .await
        .unwrap()
        .expect("live");
    assert_eq!(resolved.user.id, user.id);
    assert_eq!(
        login_sessions::count_live(&t.db, &user.id).await.unwrap(),
        1
    );
    assert!(login_sessions::resolve(&t.db, "no-such-id", &from)
        .await
        .unwrap()
        .is_none());

    let revoked = app::domain::revocation::RevokedSets::default();
    login_sessions::end(&t.db, &revoked, &resolved, "signed_out", &from)
        .await
        .unwrap();
    login_sessions::end(&t.db, &revoked, &resolved, "signed_out", &from)
        .await
        .unwrap(); // idempotent
    assert!(login_sessions::resolve(&t.db, &sid, &from)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        login_sessions::count_live(&t.db, &user.id).await.unwrap(),
        0
    );
    assert_eq!(count(&t.db, "audit_events WHERE kind = 'login'").await, 1);
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'logout'").await,
        1,
        "ending twice audits once"
    );
    t.cleanup().await;
}

async fn disabled_users_neither_authenticate_nor_resolve(t: TestDb) {
    let user = users::add_user(&t.db, "frank", "frank-password", false)
        .await
        .unwrap();
    let sid = login_sessions::start(&t.db, &user, &ClientInfo::default())
        .await
        .unwrap();
    exec(
        &t.db,
        "UPDATE users SET disabled_at = 1 WHERE username = 'frank'",
    )
    .await;
    assert!(users::authenticate(&t.db, "frank", "frank-password")
        .await
        .unwrap()
        .is_none());
    assert!(login_sessions::resolve(&t.db, &sid, &ClientInfo::default())
        .await
        .unwrap()
        .is_none());
    t.cleanup().await;
}

async fn demo_seed_is_idempotent(t: TestDb) {
    let first = demo::seed(&t.db).await.unwrap();
    assert!(first.users.iter().all(|u| u.created) && first.clients.iter().all(|c| c.created));
    let audit_after_first = count(&t.db, "audit_events").await;
    let second = demo::seed(&t.db).await.unwrap();
    assert!(second.users.iter().all(|u| !u.created) && second.clients.iter().all(|c| !c.created));
    assert_eq!(count(&t.db, "users").await, 2);
    assert_eq!(count(&t.db, "clients").await, 3);
    assert_eq!(count(&t.db, "resource_servers").await, 1);
    assert_eq!(count(&t.db, "audit_events").await, audit_after_first);
    // The printed credentials work.
    let (name, password) = demo::USER;
    assert!(users::authenticate(&t.db, name, password)
        .await
        .unwrap()
        .is_some());
    t.cleanup().await;
}

async fn browser_session_store_round_trips(t: TestDb) {
    let store = app::domain::web_session::WebSessionStore::new(&t.db)
        .await
        .unwrap();
    let mut record = Record {
        id: Id::default(),
        data: [("k".to_string(), serde_json::json!("v"))]
            .into_iter()
            .collect(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    store.create(&mut record).await.unwrap();
    let loaded = store.load(&record.id).await.unwrap().expect("stored");
    assert_eq!(loaded.data.get("k"), Some(&serde_json::json!("v")));
    assert_eq!(
        count(&t.db, "tower_sessions").await,
        1,
        "kept in the same database"
    );
    store.delete(&record.id).await.unwrap();
    assert!(store.load(&record.id).await.unwrap().is_none());
    t.cleanup().await;
}

/// `Db::backup_to`: a checked copy of a SQLite database (the CLI test shows
/// its content); on PostgreSQL a refusal that names pg_dump, writing nothing.
async fn backup_copies_sqlite_and_names_pg_dump_for_postgresql(t: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.db");
    match &t.db {
        app::domain::Db::Sqlite(_) => {
            assert!(t.db.backup_to(&file).await.unwrap() > 0);
            assert!(file.exists());
            let again = t.db.backup_to(&file).await.unwrap_err();
            assert!(again.to_string().contains("exists"), "{again}");
        }
        app::domain::Db::Postgres(_) => {
            let refused = t.db.backup_to(&file).await.unwrap_err();
            assert!(refused.to_string().contains("pg_dump"), "{refused}");
            assert!(!file.exists());
        }
    }
    t.cleanup().await;
}

/// A backup taken while a real server writes (failed sign-ins: audit rows
/// and throttle counters) is consistent: each copy passes its integrity
/// check and holds the rows committed before it began.
#[tokio::test]
async fn backup_while_a_server_writes_is_consistent() {
    use common::process::{cli, empty_site, free_port, process_db_url, start_with};
    let t = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let site = empty_site(dir.path());
    let url = process_db_url(&t);
    let server = start_with(
        free_port(),
        dir.path(),
        &url,
        &site,
        None,
        &["--signin-failures-per-ip", "0"],
    )
    .await;
    let signin = format!("{}/signin", server.base);
    let writer = tokio::spawn(async move {
        let http = common::browser().0;
        for i in 0.. {
            http.post(&signin)
                .form(&[
                    ("username", format!("guess{i}")),
                    ("password", "wrong".into()),
                    ("next", "/".into()),
                ])
                .send()
                .await
                .unwrap();
        }
    });
    for round in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let file = dir.path().join(format!("copy{round}.db"));
        let out = cli(dir.path(), &url, &["backup", &file.display().to_string()]);
        assert!(out.contains("integrity check ok"), "{out}");
        let copy = app::domain::Db::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        assert!(count(&copy, "audit_events").await > 0, "round {round}");
        copy.close().await;
    }
    writer.abort();
    t.cleanup().await;
}

/// A durable write transaction (what revocations use) commits only once it
/// is on disk: on SQLite it runs with `synchronous=FULL` (a plain one with
/// `NORMAL`, whose commits a power loss can undo), on PostgreSQL with
/// `synchronous_commit` on whatever the session said.
async fn durable_writes_reach_the_disk_before_they_commit(t: TestDb) {
    use app::domain::store::BeginWrite;
    use std::str::FromStr;
    match &t.db {
        Db::Sqlite(pool) => {
            for (durable, level) in [(true, 2), (false, 1), (true, 2)] {
                let mut tx = match durable {
                    true => pool.begin_durable_write().await.unwrap(),
                    false => pool.begin_write().await.unwrap(),
                };
                let got: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                assert_eq!(got, level, "durable: {durable}");
                tx.commit().await.unwrap();
            }
        }
        Db::Postgres(_) => {
            // A server (here: a connection) whose default is off: a plain
            // transaction keeps it, a durable one turns it on.
            let options = sqlx::postgres::PgConnectOptions::from_str(&t.url)
                .unwrap()
                .options([("synchronous_commit", "off")]);
            let pool = sqlx::PgPool::connect_with(options).await.unwrap();
            for (durable, setting) in [(true, "on"), (false, "off")] {
                let mut tx = match durable {
                    true => pool.begin_durable_write().await.unwrap(),
                    false => pool.begin_write().await.unwrap(),
                };
                let got: String = sqlx::query_scalar("SHOW synchronous_commit")
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                assert_eq!(got, setting, "durable: {durable}");
                tx.commit().await.unwrap();
            }
            pool.close().await;
        }
    }
    t.cleanup().await;
}
