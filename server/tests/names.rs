//! Names in any letter case for all of Unicode, the same on SQLite and
//! PostgreSQL (issue 9, fault 4): SQLite's `lower()` folds ASCII only, so
//! `Émile` and `émile` were two users there and one on PostgreSQL, and
//! `JÜRGEN` could not sign in as `Jürgen`. Names are now compared by a key
//! made in the application (NFKC + Unicode case folding) and shown as typed.

mod common;

use app::domain::{
    admin,
    audit::Actor,
    audit_search::{self, AuditFilter},
    clients::{self, ClientChange, ClientKind, GrantType, NewClient},
    names::{self, KeyCollision},
    revocation::RevokedSets,
    store::MIGRATOR,
    users, Db, DomainError,
};
use common::{
    browser, count, exec,
    flow::{self, Person, PASSWORD},
    text_value, TestDb, TestServer,
};
use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use sqlx::{
    error::BoxDynError,
    migrate::{Migration, MigrationSource, Migrator},
};

on_both_backends!(
    non_ascii_username_in_another_case_is_the_same_user,
    usernames_in_compatibility_forms_are_the_same_user,
    sign_in_over_http_in_capitals_finds_the_non_ascii_user,
    non_ascii_client_names_are_unique_in_any_case,
    admin_searches_fold_the_query_like_the_names,
    audit_filter_finds_a_non_ascii_username_in_any_case,
    names_stored_before_the_key_columns_get_their_keys,
    names_that_collide_once_folded_keep_the_older_one,
);

async fn add(t: &TestDb, username: &str) -> Result<users::User, DomainError> {
    users::add_user(&t.db, username, PASSWORD, false).await
}

/// Asserts the refusal `add_user` gives for a taken name, the same text on both backends.
fn assert_taken(result: Result<users::User, DomainError>, username: &str) {
    match result {
        Err(DomainError::Conflict(message)) => {
            assert_eq!(message, format!("a user named {username:?} already exists"))
        }
        other => panic!("{username:?}: expected a conflict, got {other:?}"),
    }
}

async fn username_key(db: &Db, id: &str) -> Option<String> {
    text_value(db, "SELECT username_key FROM users WHERE id = $1", id).await
}

async fn non_ascii_username_in_another_case_is_the_same_user(t: TestDb) {
    let emile = add(&t, "Émile").await.unwrap();
    assert_taken(add(&t, "émile").await, "émile");
    assert_taken(add(&t, "ÉMILE").await, "ÉMILE");
    assert_eq!(count(&t.db, "users").await, 1);
    assert_eq!(
        count(&t.db, "audit_events WHERE kind = 'user_created'").await,
        1
    );
    // Shown as typed, compared by its key.
    let list = users::list_users(&t.db).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].username, "Émile");
    assert_eq!(
        username_key(&t.db, &emile.id).await.as_deref(),
        Some("émile")
    );
    for typed in ["émile", "ÉMILE", "E\u{301}mile"] {
        let found = users::find_by_username(&t.db, typed).await.unwrap();
        assert_eq!(found.map(|u| u.id), Some(emile.id.clone()), "{typed:?}");
    }
    // A different letter is a different user.
    add(&t, "Emile").await.unwrap();
    assert_eq!(count(&t.db, "users").await, 2);
    t.cleanup().await;
}

async fn usernames_in_compatibility_forms_are_the_same_user(t: TestDb) {
    // The ligature ﬁ is "fi"; ß is "ss"; a decomposed ü is ü; fullwidth is plain.
    for (first, again) in [
        ("ﬁle", "FILE"),
        ("Straße", "STRASSE"),
        ("Jürgen", "JU\u{308}RGEN"),
        ("ＢＯＢ", "bob"),
        ("Οδυσσεύς", "ΟΔΥΣΣΕΎΣ"),
    ] {
        add(&t, first).await.unwrap();
        assert_taken(add(&t, again).await, again);
    }
    assert_eq!(count(&t.db, "users").await, 5);
    // Letters with combining marks are letters (a decomposed ü, a Devanagari
    // virama); invisible ones are not: "alice" + a Hangul filler would look
    // like "alice".
    add(&t, "Zoe\u{308}").await.unwrap();
    add(&t, "कृष्ण").await.unwrap();
    for bad in ["alice\u{3164}", "\u{308}zoe", "ali\u{200B}ce"] {
        let err = add(&t, bad).await.unwrap_err();
        assert!(err.to_string().starts_with("username: "), "{bad:?}: {err}");
    }
    assert_eq!(count(&t.db, "users").await, 7);
    t.cleanup().await;
}

async fn sign_in_over_http_in_capitals_finds_the_non_ascii_user(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let jurgen = add(&t, "Jürgen").await.unwrap();
    for typed in ["JÜRGEN", "jürgen", "JU\u{308}RGEN"] {
        let person = Person {
            http: browser().0,
            user_id: jurgen.id.clone(),
            username: typed.into(),
        };
        // Asserts the redirect to "/" that only a successful sign-in gives.
        flow::sign_in(&person, &server).await;
        let home = person.http.get(server.url("/")).send().await.unwrap();
        assert_eq!(home.status(), StatusCode::OK);
        let body = home.text().await.unwrap();
        assert!(
            body.contains(r#"<strong data-testid="topbar-username">Jürgen</strong>"#),
            "{typed:?}: shown as typed at creation: {body}"
        );
    }
    assert_eq!(
        count(&t.db, "login_sessions WHERE ended_at IS NULL").await,
        3
    );
    // The password still has to be right.
    let res = browser()
        .0
        .post(server.url("/signin"))
        .form(&[
            ("username", "JÜRGEN"),
            ("password", "not-his-password"),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_ne!(flow::location(&res), "/");
    assert_eq!(
        count(&t.db, "login_sessions WHERE ended_at IS NULL").await,
        3
    );
    t.cleanup().await;
}

fn app_named(name: &str) -> NewClient {
    NewClient {
        name: name.into(),
        kind: ClientKind::Public,
        redirect_uris: vec!["https://app.example/cb".into()],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::AuthorizationCode],
        extra_scopes: vec![],
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        metadata: Default::default(),
    }
}

fn assert_client_taken<T: std::fmt::Debug>(result: Result<T, DomainError>, name: &str) {
    match result {
        Err(DomainError::Conflict(message)) => {
            assert_eq!(message, format!("a client named {name:?} already exists"))
        }
        other => panic!("{name:?}: expected a conflict, got {other:?}"),
    }
}

async fn non_ascii_client_names_are_unique_in_any_case(t: TestDb) {
    let (cafe, _) = clients::add_client(&t.db, &app_named("Café Notes"))
        .await
        .unwrap();
    for taken in ["CAFÉ NOTES", "cafe\u{301} notes", "Café\u{200B} Notes"] {
        assert_client_taken(clients::add_client(&t.db, &app_named(taken)).await, taken);
    }
    clients::add_client(&t.db, &app_named("ﬁle sync"))
        .await
        .unwrap();
    assert_client_taken(
        clients::add_client(&t.db, &app_named("FILE SYNC")).await,
        "FILE SYNC",
    );
    // Renaming onto a taken name is refused too, and changes nothing.
    let (other, _) = clients::add_client(&t.db, &app_named("Other"))
        .await
        .unwrap();
    let rename = |name: &str| ClientChange {
        name: Some(name.into()),
        ..ClientChange::default()
    };
    let actor = Actor::default();
    assert_client_taken(
        clients::update_client(&t.db, &other.client_id, &rename("CAFÉ NOTES"), &actor).await,
        "CAFÉ NOTES",
    );
    let listed = clients::list_clients(&t.db).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Café Notes", "ﬁle sync", "Other"], "shown as typed");
    // A rename writes the key: the old name is free, the new one taken.
    clients::update_client(&t.db, &other.client_id, &rename("Ölmühle"), &actor)
        .await
        .unwrap();
    assert_client_taken(
        clients::add_client(&t.db, &app_named("ÖLMÜHLE")).await,
        "ÖLMÜHLE",
    );
    clients::add_client(&t.db, &app_named("OTHER"))
        .await
        .unwrap();
    // A deleted client's name is free again.
    let revoked = RevokedSets::load(&t.db).await.unwrap();
    admin::delete_client(&t.db, &revoked, &cafe.client_id, &actor)
        .await
        .unwrap();
    clients::add_client(&t.db, &app_named("CAFÉ NOTES"))
        .await
        .unwrap();
    // Only invisible characters is no name.
    let err = clients::add_client(&t.db, &app_named("\u{200B}\u{AD}"))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("name: "), "{err}");
    t.cleanup().await;
}

/// The usernames the admin search `q` finds.
async fn usernames(t: &TestDb, q: &str) -> Vec<String> {
    let found = admin::list_users(&t.db, Some(q)).await.unwrap();
    found.into_iter().map(|u| u.username).collect()
}

/// The client names the admin search `q` finds.
async fn client_names(t: &TestDb, q: &str) -> Vec<String> {
    let found = admin::list_clients(&t.db, Some(q)).await.unwrap();
    found.into_iter().map(|c| c.name).collect()
}

async fn admin_searches_fold_the_query_like_the_names(t: TestDb) {
    add(&t, "Jürgen").await.unwrap();
    add(&t, "Jurgen").await.unwrap();
    add(&t, "Straße").await.unwrap();
    for q in ["jür", "JÜR", "ＪÜＲ", "ju\u{308}r"] {
        assert_eq!(usernames(&t, q).await, ["Jürgen"], "{q:?}");
    }
    assert_eq!(usernames(&t, "RGEN\u{200B}").await, ["Jurgen", "Jürgen"]);
    assert_eq!(usernames(&t, "STRASS").await, ["Straße"]);
    assert_eq!(usernames(&t, "ß").await, ["Straße"]);
    // Still a literal substring: a fullwidth ％ folds to % and stays literal.
    assert!(usernames(&t, "％").await.is_empty());
    assert!(usernames(&t, "j_rgen").await.is_empty());

    let (cafe, _) = clients::add_client(&t.db, &app_named("Café 100% Bio"))
        .await
        .unwrap();
    clients::add_client(&t.db, &app_named("Cafe 100 Bio"))
        .await
        .unwrap();
    assert_eq!(client_names(&t, "CAFÉ").await, ["Café 100% Bio"]);
    assert_eq!(client_names(&t, "０％").await, ["Café 100% Bio"]);
    assert_eq!(client_names(&t, "bio").await.len(), 2);
    // The client_id is searched too, in any case.
    let id_part = cafe.client_id[..6].to_uppercase();
    let by_id = admin::list_clients(&t.db, Some(&id_part)).await.unwrap();
    assert!(
        by_id.iter().any(|c| c.client_id == cafe.client_id),
        "{id_part}"
    );
    t.cleanup().await;
}

async fn audit_filter_finds_a_non_ascii_username_in_any_case(t: TestDb) {
    let jurgen = add(&t, "Jürgen").await.unwrap();
    add(&t, "Jurgen").await.unwrap();
    let filter = AuditFilter {
        user: Some("JÜRGEN".into()),
        ..AuditFilter::default()
    }
    .validated()
    .unwrap();
    let page = audit_search::search(&t.db, &filter, app::model::PageRequest::clamped(1, 50))
        .await
        .unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].kind, "user_created");
    assert_eq!(
        page.events[0].subject_user_id.as_deref(),
        Some(jurgen.id.as_str())
    );
    assert_eq!(audit_search::export(&t.db, &filter).await.unwrap().len(), 1);
    t.cleanup().await;
}

/// The first migration alone (the first-cut schema).
#[derive(Debug)]
struct FirstMigration;

impl<'s> MigrationSource<'s> for FirstMigration {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async { Ok(MIGRATOR.iter().take(1).cloned().collect()) })
    }
}

/// A second database beside the test's, with only the first migration applied:
/// the schema as it was before the key columns.
async fn first_cut_schema(t: &TestDb) -> (Db, Option<String>) {
    let (db, schema) = match t.schema() {
        None => {
            let url = t.url.replace("latchkey.db", "first-cut.db");
            (Db::connect(&url).await.unwrap(), None)
        }
        Some(schema) => {
            let old = format!("{schema}_old");
            (
                Db::connect_postgres_schema(&t.url, &old).await.unwrap(),
                Some(old),
            )
        }
    };
    let first_only = Migrator::new(FirstMigration).await.unwrap();
    match &db {
        Db::Sqlite(pool) => first_only.run(pool).await.unwrap(),
        Db::Postgres(pool) => first_only.run(pool).await.unwrap(),
    }
    (db, schema)
}

async fn names_stored_before_the_key_columns_get_their_keys(t: TestDb) {
    let (db, old_schema) = first_cut_schema(&t).await;
    // Rows as the first cut wrote them (no key columns yet).
    for (id, username, at) in [("u1", "Jürgen", 1), ("u2", "ÅSA", 2), ("u3", "bob", 3)] {
        exec(
            &db,
            &format!(
                "INSERT INTO users (id, username, password_hash, created_at) \
                 VALUES ('{id}', '{username}', 'x', {at})"
            ),
        )
        .await;
    }
    exec(
        &db,
        "INSERT INTO clients (id, name, kind, redirect_uris, post_logout_redirect_uris, \
         grant_types, created_at, updated_at) \
         VALUES ('c1', 'Café', 'public', '[]', '[]', 'authorization_code', 1, 1)",
    )
    .await;

    db.migrate().await.unwrap();

    assert_eq!(username_key(&db, "u1").await.as_deref(), Some("jürgen"));
    assert_eq!(username_key(&db, "u2").await.as_deref(), Some("åsa"));
    assert_eq!(username_key(&db, "u3").await.as_deref(), Some("bob"));
    assert_eq!(
        text_value(&db, "SELECT name_key FROM clients WHERE id = $1", "c1")
            .await
            .as_deref(),
        Some("café")
    );
    // Found in any case, refused as duplicates, shown as stored.
    let found = users::find_by_username(&db, "JÜRGEN").await.unwrap();
    assert_eq!(found.map(|u| u.username).as_deref(), Some("Jürgen"));
    assert!(matches!(
        users::add_user(&db, "åsa", PASSWORD, false).await,
        Err(DomainError::Conflict(_))
    ));
    assert!(matches!(
        clients::add_client(&db, &app_named("CAFÉ")).await,
        Err(DomainError::Conflict(_))
    ));
    // Nothing left to fill; running again changes nothing.
    assert_eq!(
        names::fill_missing_keys(&db).await.unwrap(),
        names::KeyFill::default()
    );
    if let (Db::Postgres(pool), Some(old)) = (&db, old_schema) {
        sqlx::query(&format!("DROP SCHEMA \"{old}\" CASCADE"))
            .execute(pool)
            .await
            .unwrap();
    }
    db.close().await;
    t.cleanup().await;
}

/// SQLite's old `lower()` index let `Émile` and `émile` both in. With the key,
/// the older keeps the name; the newer is left without a key (not found by
/// name: signing in as it reaches the older user) and reported.
async fn names_that_collide_once_folded_keep_the_older_one(t: TestDb) {
    // The state the key migration leaves such rows in (keys not yet filled),
    // written by hand: PostgreSQL's old index would have refused the second.
    let emile = add(&t, "Émile").await.unwrap();
    exec(
        &t.db,
        &format!(
            "INSERT INTO users (id, username, password_hash, created_at) \
             SELECT 'late', 'émile', password_hash, created_at + 1 FROM users WHERE id = '{}'",
            emile.id
        ),
    )
    .await;
    exec(&t.db, "UPDATE users SET username_key = NULL").await;

    t.db.migrate().await.unwrap();

    assert_eq!(
        username_key(&t.db, &emile.id).await.as_deref(),
        Some("émile")
    );
    assert_eq!(username_key(&t.db, "late").await, None);
    let fill = names::fill_missing_keys(&t.db).await.unwrap();
    assert_eq!(fill.filled, 0);
    assert_eq!(
        fill.collisions,
        [KeyCollision {
            table: "users",
            id: "late".into(),
            name: "émile".into(),
        }]
    );
    // Either spelling reaches the older user; the newer one is still listed.
    let found = users::authenticate(&t.db, "émile", PASSWORD).await.unwrap();
    assert_eq!(found.map(|u| u.id), Some(emile.id.clone()));
    assert_eq!(users::list_users(&t.db).await.unwrap().len(), 2);
    assert_taken(add(&t, "E\u{301}MILE").await, "E\u{301}MILE");
    t.cleanup().await;
}
