//! People who sign in: creating, listing, authenticating.
//!
//! A username is shown as typed and compared by its key
//! ([`names::fold_key`](super::names::fold_key): NFKC and Unicode case
//! folding), the same on SQLite and PostgreSQL: `Émile` and `émile` are one
//! user, and `JÜRGEN` signs in as `Jürgen`.

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::{
    props::{GeneralCategory, GeneralCategoryGroup},
    CodePointMapData,
};
use serde::Serialize;

use super::{
    audit::{self, Actor, AuditEvent, AuditKind},
    error::{DomainError, DomainResult},
    names::{fold_key, is_invisible},
    secrets::{hash_password, new_id, verify_password, PasswordHashString},
    store::{is_unique_violation, now, Db},
};
use crate::on_db;

/// A user as the rest of the program sees one: never with the password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: String,
    pub username: String,
    pub is_admin: bool,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
}

const USER_COLUMNS: &str = "id, username, is_admin, disabled_at, created_at";

/// Usernames: 1–64 characters of letters (with their combining marks),
/// digits and `. _ - @ +`, trimmed; answers the username as typed. The
/// characters are checked in NFKC, the form the key is made from, so a
/// decomposed `ü` (`u` + U+0308) or a fullwidth `Ａ` is a letter like any other.
pub fn validate_username(raw: &str) -> DomainResult<String> {
    let username = raw.trim();
    if username.is_empty() {
        return Err(DomainError::invalid("username", "must not be empty"));
    }
    if username.chars().count() > 64 {
        return Err(DomainError::invalid(
            "username",
            "must be at most 64 characters",
        ));
    }
    let category = CodePointMapData::<GeneralCategory>::new();
    let normal = ComposingNormalizerBorrowed::new_nfkc().normalize(username);
    // A combining mark belongs to the letter before it (Devanagari virama,
    // Thai vowel signs); an invisible one (a Hangul filler) is no letter.
    let mut after_letter = false;
    if let Some(c) = normal.chars().find(|&c| {
        let mark = GeneralCategoryGroup::Mark.contains(category.get(c));
        after_letter = !is_invisible(c) && (c.is_alphanumeric() || (mark && after_letter));
        !(after_letter || matches!(c, '.' | '_' | '-' | '@' | '+'))
    }) {
        return Err(DomainError::invalid(
            "username",
            format!("may contain letters, digits and . _ - @ + only, not {c:?}"),
        ));
    }
    Ok(username.to_owned())
}

/// Passwords: 8 to 1024 characters; anything else is the user's choice.
pub fn validate_password(password: &str) -> DomainResult<()> {
    if password.is_empty() {
        return Err(DomainError::invalid("password", "must not be empty"));
    }
    if password.chars().count() < 8 {
        return Err(DomainError::invalid(
            "password",
            "must be at least 8 characters",
        ));
    }
    if password.len() > 1024 {
        return Err(DomainError::invalid(
            "password",
            "must be at most 1024 bytes",
        ));
    }
    Ok(())
}

/// Creates a user; a taken username (in any letter case or compatibility
/// form: same [`fold_key`]) is a conflict.
pub async fn add_user(
    db: &Db,
    username: &str,
    password: &str,
    is_admin: bool,
) -> DomainResult<User> {
    add_user_by(db, username, password, is_admin, &Actor::default()).await
}

/// [`add_user`] done by an actor (recorded on the audit event).
pub async fn add_user_by(
    db: &Db,
    username: &str,
    password: &str,
    is_admin: bool,
    actor: &Actor,
) -> DomainResult<User> {
    let username = validate_username(username)?;
    validate_password(password)?;
    let hash = hash_password(password.to_owned())
        .await
        .map_err(DomainError::Internal)?;
    let user = User {
        id: new_id(),
        username,
        is_admin,
        disabled_at: None,
        created_at: now(),
    };
    let inserted = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, username, username_key, password_hash, is_admin, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(fold_key(&user.username))
        .bind(&hash.0)
        .bind(user.is_admin)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::new(AuditKind::UserCreated)
            .subject(&user.id)
            .by(actor)
            .detail(serde_json::json!({ "username": user.username, "is_admin": is_admin }));
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await
    });
    match inserted {
        Ok(()) => Ok(user),
        Err(e) if is_unique_violation(&e) => Err(DomainError::Conflict(format!(
            "a user named {:?} already exists",
            user.username
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Every user, by username (compared by key, so the order is the same on both backends).
pub async fn list_users(db: &Db) -> DomainResult<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username_key, id");
    Ok(on_db!(db, |pool| sqlx::query_as::<_, User>(&sql)
        .fetch_all(pool)
        .await)?)
}

/// The user whose username has the same key as `username` (any letter case).
pub async fn find_by_username(db: &Db, username: &str) -> DomainResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = $1");
    Ok(on_db!(db, |pool| sqlx::query_as::<_, User>(&sql)
        .bind(fold_key(username.trim()))
        .fetch_optional(pool)
        .await)?)
}

pub async fn find_by_id(db: &Db, id: &str) -> DomainResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    Ok(on_db!(db, |pool| sqlx::query_as::<_, User>(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await)?)
}

#[derive(sqlx::FromRow)]
struct Credentials {
    id: String,
    password_hash: String,
    disabled_at: Option<i64>,
}

/// Checks a username (any letter case: compared by [`fold_key`]) and
/// password. `None` for an unknown user, a wrong password
/// or a disabled user alike, and each takes one Argon2 verification, so neither
/// the answer nor its timing tells which.
pub async fn authenticate(db: &Db, username: &str, password: &str) -> DomainResult<Option<User>> {
    let found = on_db!(db, |pool| sqlx::query_as::<_, Credentials>(
        "SELECT id, password_hash, disabled_at FROM users WHERE username_key = $1"
    )
    .bind(fold_key(username.trim()))
    .fetch_optional(pool)
    .await)?;
    let hash = found
        .as_ref()
        .map(|c| PasswordHashString(c.password_hash.clone()));
    let ok = verify_password(password.to_owned(), hash).await;
    match found {
        Some(c) if ok && c.disabled_at.is_none() => {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
            Ok(on_db!(db, |pool| sqlx::query_as::<_, User>(&sql)
                .bind(&c.id)
                .fetch_optional(pool)
                .await)?)
        }
        _ => Ok(None),
    }
}

/// Records a failed sign-in (the username as typed, never the password).
pub async fn record_failed_login(db: &Db, username: &str, ip: &str) -> DomainResult<()> {
    metrics::counter!("latchkey_sign_in_failures_total").increment(1);
    let typed: String = username.trim().chars().take(64).collect();
    audit::record(
        db,
        &AuditEvent::new(AuditKind::LoginFailed)
            .ip(ip)
            .detail(serde_json::json!({ "username": typed })),
    )
    .await
}
