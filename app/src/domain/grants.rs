//! Grants: a user's consent to one client. The authorization endpoint asks
//! for consent only for scopes the live grant does not cover yet; allowing
//! creates the grant or widens it. Also the scope vocabulary and PKCE rules
//! the authorization endpoint checks.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use sha2::{Digest, Sha256};

use super::{
    audit::{AuditEvent, AuditKind},
    clients::Client,
    error::DomainResult,
    login_sessions::ClientInfo,
    secrets::new_id,
    store::{now, Db},
};
use crate::on_db;

/// The OpenID Connect scopes every client may ask for.
pub const OPENID_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The scope of Latchkey's own admin API.
pub const ADMIN_SCOPE: &str = "latchkey:admin";

/// The scope of the revocation feed (`/oauth/revocations`), for resource
/// servers that validate access tokens themselves.
pub const REVOCATIONS_SCOPE: &str = "latchkey:revocations";

/// Latchkey's own scopes: only a client's own client_credentials tokens may
/// carry them (when its registration lists them); a person's consent never
/// grants them.
pub const CLIENT_ONLY_SCOPES: [&str; 2] = [ADMIN_SCOPE, REVOCATIONS_SCOPE];

/// Every scope a client may ask a person for: the OpenID ones plus its own,
/// but never one of [`CLIENT_ONLY_SCOPES`].
pub fn allowed_scopes(client: &Client) -> Vec<String> {
    OPENID_SCOPES
        .iter()
        .map(|s| s.to_string())
        .chain(
            client
                .extra_scopes
                .iter()
                .filter(|s| !CLIENT_ONLY_SCOPES.contains(&s.as_str()))
                .cloned(),
        )
        .collect()
}

/// Splits a space-separated scope string into its distinct scopes, in order.
pub fn split_scopes(scopes: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scopes.split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// RFC 7636 §4.1: a code verifier is 43–128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 code challenge is base64url (no padding) of a SHA-256: 43 characters.
pub fn valid_code_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2, S256).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.6 with S256 only: `verifier` is a well-formed code verifier
/// ([`valid_code_verifier`]) whose S256 challenge is exactly `challenge`. A
/// verifier equal to its challenge (`plain`) or of any other form fails.
pub fn pkce_verifier_matches(challenge: &str, verifier: &str) -> bool {
    valid_code_verifier(verifier) && s256_challenge(verifier) == challenge
}

/// A user's live consent to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub scopes: Vec<String>,
}

impl Grant {
    /// The requested scopes this grant does not cover yet.
    pub fn missing<'a>(grant: Option<&Grant>, requested: &'a [String]) -> Vec<&'a String> {
        requested
            .iter()
            .filter(|s| grant.is_none_or(|g| !g.scopes.contains(s)))
            .collect()
    }
}

/// One row while a user may be issued something under a sign-in for a
/// client: the user is not disabled, the sign-in (`sid`) has not ended and
/// the client is not deleted. Parameters: `$1` user id, `$2` sign-in id, `$3`
/// client id. See [`issuer_locks`] for the locking suffix.
pub const LIVE_AUTHORITY_SQL: &str = "SELECT u.id FROM users u \
     JOIN login_sessions s ON s.user_id = u.id JOIN clients c ON c.id = $3 \
     WHERE u.id = $1 AND s.id = $2 AND u.disabled_at IS NULL AND s.ended_at IS NULL \
     AND c.deleted_at IS NULL";

/// What a write transaction that issues (a grant, a code) appends to its
/// liveness reads: on PostgreSQL, share locks on the rows it read. A
/// sign-out, a disabling, a deletion or a revocation committing at the same
/// moment then either waits for the issuing transaction, and the revocation
/// that follows it finds what was issued, or commits first and the issuing
/// transaction sees it. SQLite has one writer at a time: nothing to add.
pub fn issuer_locks(db: &Db, of: &str) -> String {
    match db {
        Db::Postgres(_) => format!(" FOR SHARE OF {of}"),
        Db::Sqlite(_) => String::new(),
    }
}

/// The user's live grant to a client, if any.
pub async fn live_grant(db: &Db, user_id: &str, client_id: &str) -> DomainResult<Option<Grant>> {
    let row: Option<(String, String)> = on_db!(db, |pool| {
        sqlx::query_as(
        "SELECT id, scopes FROM grants WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL"
    )
    .bind(user_id)
    .bind(client_id)
    .fetch_optional(pool)
    .await
    })?;
    Ok(row.map(|(id, scopes)| Grant {
        id,
        scopes: split_scopes(&scopes),
    }))
}

/// A person's answer "Allow" to a consent page.
#[derive(Clone, Copy, Debug)]
pub struct ConsentAnswer<'a> {
    pub user_id: &'a str,
    /// The sign-in the question was asked in.
    pub login_session_id: &'a str,
    pub client_id: &'a str,
    /// Everything the request asked for (the page asked only for what the
    /// grant below did not cover yet).
    pub scopes: &'a [String],
    /// The live grant the page was computed against, `None` if there was none.
    pub asked_against: Option<&'a str>,
}

/// Records the user's consent: creates the grant, or widens the live one, and
/// audits `consent_granted`. Returns the grant.
///
/// The answer counts only for the question that was asked: `Conflict` (and
/// nothing written) when the sign-in has ended, the user was disabled, the
/// client deleted, or the grant the page was computed against is no longer
/// the live one (revoked, or replaced) — a consent page left open in another
/// tab dies with what it was asked under (issue 9).
pub async fn consent(
    db: &Db,
    answer: &ConsentAnswer<'_>,
    from: &ClientInfo,
) -> DomainResult<Grant> {
    let at = now();
    let ConsentAnswer {
        user_id,
        client_id,
        scopes,
        ..
    } = *answer;
    let live_sql = format!("{LIVE_AUTHORITY_SQL}{}", issuer_locks(db, "u, s, c"));
    let grant_sql = format!(
        "SELECT id, scopes FROM grants WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL{}",
        issuer_locks(db, "grants")
    );
    let result = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let live: Option<String> = sqlx::query_scalar(&live_sql)
            .bind(user_id)
            .bind(answer.login_session_id)
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?;
        let existing: Option<(String, String)> = sqlx::query_as(&grant_sql)
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?;
        if live.is_none() || existing.as_ref().map(|(id, _)| id.as_str()) != answer.asked_against {
            return Ok(None);
        }
        let (grant, added) = match existing {
            Some((id, current)) => {
                let mut all = split_scopes(&current);
                let added: Vec<String> = scopes
                    .iter()
                    .filter(|s| !all.contains(s))
                    .cloned()
                    .collect();
                all.extend(added.iter().cloned());
                if !added.is_empty() {
                    sqlx::query("UPDATE grants SET scopes = $1 WHERE id = $2")
                        .bind(all.join(" "))
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                }
                (Grant { id, scopes: all }, added)
            }
            None => {
                let grant = Grant {
                    id: new_id(),
                    scopes: scopes.to_vec(),
                };
                sqlx::query(
                    "INSERT INTO grants (id, user_id, client_id, scopes, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&grant.id)
                .bind(user_id)
                .bind(client_id)
                .bind(grant.scopes.join(" "))
                .bind(at)
                .execute(&mut *tx)
                .await?;
                (grant, scopes.to_vec())
            }
        };
        if !added.is_empty() {
            let event = AuditEvent::new(AuditKind::ConsentGranted)
                .actor(user_id)
                .subject(user_id)
                .client(client_id)
                .ip(&from.ip)
                .detail(serde_json::json!({
                    "grant_id": grant.id,
                    "scopes": added,
                    "user_agent": from.user_agent,
                }));
            crate::bind_audit!(&event).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Some(grant))
    });
    match result {
        Ok(Some(grant)) => Ok(grant),
        Ok(None) => Err(super::DomainError::Conflict(
            "the sign-in or the access this question was asked under has changed since".into(),
        )),
        // Two consents at once created two grants: the unique index kept one; use it.
        Err(e) if super::store::is_unique_violation(&e) => live_grant(db, user_id, client_id)
            .await?
            .ok_or(super::DomainError::NotFound),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_rules_follow_rfc7636() {
        // RFC 7636 Appendix B.
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(valid_code_verifier(&"a".repeat(43)));
        assert!(valid_code_verifier(&"~._-9zA".repeat(19)[..128]));
        assert!(!valid_code_verifier(&"a".repeat(42)));
        assert!(!valid_code_verifier(&"a".repeat(129)));
        assert!(!valid_code_verifier(&format!("{}+", "a".repeat(43))));
        assert!(!valid_code_verifier(&format!("{} ", "a".repeat(43))));
        assert!(valid_code_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!valid_code_challenge("short"));
        assert!(!valid_code_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
    }

    #[test]
    fn consent_is_asked_only_for_new_scopes() {
        let grant = Grant {
            id: "g".into(),
            scopes: vec!["openid".into(), "profile".into()],
        };
        let requested = split_scopes("openid  email openid");
        assert_eq!(requested, vec!["openid", "email"]);
        assert_eq!(Grant::missing(Some(&grant), &requested), vec!["email"]);
        assert_eq!(Grant::missing(None, &requested).len(), 2);
    }
}

/// Property tests of the PKCE rules (RFC 7636 §4.1, §4.2, §4.6) and of
/// splitting a scope string. `PROPTEST_CASES` raises the case count.
#[cfg(test)]
mod proptests {
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    use super::*;

    /// RFC 7636 §4.1's `unreserved`, written out.
    const UNRESERVED: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

    /// The rule as the RFC states it: 43–128 characters, each unreserved.
    fn is_verifier(s: &str) -> bool {
        (43..=128).contains(&s.chars().count()) && s.chars().all(|c| UNRESERVED.contains(c))
    }

    fn verifier() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._~-]{43,128}"
    }

    /// Strings near the rule: unreserved characters of a length at or
    /// near a bound (or any length), sometimes with one foreign character.
    fn near_verifier() -> impl Strategy<Value = String> {
        let length = prop_oneof![
            prop::sample::select(vec![0usize, 1, 41, 42, 43, 44, 127, 128, 129, 130]),
            0usize..200,
        ];
        let unreserved: Vec<char> = UNRESERVED.chars().collect();
        (
            length.prop_flat_map(move |n| {
                prop::collection::vec(prop::sample::select(unreserved.clone()), n)
                    .prop_map(|chars| chars.into_iter().collect::<String>())
            }),
            any::<prop::sample::Index>(),
            prop::option::of(prop_oneof![
                prop::sample::select(vec![
                    ' ', '+', '/', '=', '%', '!', '*', '\'', '(', ')', ':', '\0', 'é', 'Ａ', '٣',
                ]),
                any::<char>(),
            ]),
        )
            .prop_map(|(s, at, foreign)| match foreign {
                None => s,
                Some(_) if s.is_empty() => s,
                Some(c) => {
                    let mut chars: Vec<char> = s.chars().collect();
                    let i = at.index(chars.len());
                    chars[i] = c;
                    chars.into_iter().collect()
                }
            })
    }

    /// SHA-256 then base64url without padding, through another encoder.
    fn reference_challenge(verifier: &str) -> String {
        STANDARD
            .encode(Sha256::digest(verifier.as_bytes()))
            .replace('+', "-")
            .replace('/', "_")
            .trim_end_matches('=')
            .to_owned()
    }

    proptest! {
        #![proptest_config(super::super::proptest_config(256))]

        /// A code verifier is accepted exactly when RFC 7636 §4.1 allows it.
        #[test]
        fn verifiers_follow_rfc_7636(
            s in prop_oneof![verifier(), near_verifier(), any::<String>()],
        ) {
            prop_assert_eq!(valid_code_verifier(&s), is_verifier(&s), "{:?}", s);
        }

        /// The S256 challenge of a verifier is BASE64URL(SHA256(verifier)),
        /// a well-formed challenge, and only that verifier matches it.
        #[test]
        fn only_the_verifier_matches_its_s256_challenge(
            v in verifier(),
            other in prop_oneof![verifier(), near_verifier(), any::<String>()],
        ) {
            let challenge = s256_challenge(&v);
            prop_assert_eq!(&challenge, &reference_challenge(&v));
            prop_assert!(valid_code_challenge(&challenge));
            prop_assert!(pkce_verifier_matches(&challenge, &v));
            if other != v {
                prop_assert!(!pkce_verifier_matches(&challenge, &other), "{:?}", other);
            }
            // `plain`: the verifier sent as its own challenge.
            prop_assert!(!pkce_verifier_matches(&v, &v));
        }

        /// A verifier that breaks §4.1 fails even against its own S256 challenge.
        #[test]
        fn malformed_verifiers_never_match(s in prop_oneof![near_verifier(), any::<String>()]) {
            if !is_verifier(&s) {
                prop_assert!(!pkce_verifier_matches(&s256_challenge(&s), &s), "{:?}", s);
            }
        }

        /// A code challenge is 43 base64url characters, nothing else.
        #[test]
        fn challenges_are_43_base64url_characters(
            s in prop_oneof!["[A-Za-z0-9_-]{40,46}", "[A-Za-z0-9_=+/.~-]{43}", any::<String>()],
        ) {
            let expected = s.chars().count() == 43
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            prop_assert_eq!(valid_code_challenge(&s), expected, "{:?}", s);
        }

        /// Well-formed scope strings (RFC 6749 §3.3: tokens of NQCHAR
        /// separated by spaces) split back into their tokens, whatever the
        /// spacing.
        #[test]
        fn scope_strings_round_trip(
            scopes in prop::collection::btree_set("[!#-\\[\\]-~]{1,16}", 0..8),
            gaps in prop::collection::vec(1usize..4, 9),
        ) {
            let scopes: Vec<String> = scopes.into_iter().collect();
            let mut text = " ".repeat(gaps[8] - 1);
            for (i, s) in scopes.iter().enumerate() {
                text.push_str(s);
                text.push_str(&" ".repeat(gaps[i]));
            }
            prop_assert_eq!(split_scopes(&text), scopes.clone());
            prop_assert_eq!(split_scopes(&scopes.join(" ")), scopes);
        }

        /// Any text splits into its distinct space-separated pieces, in
        /// order of first appearance: a repeated scope counts once, and no
        /// piece is empty or holds a space.
        #[test]
        fn scope_splitting_drops_repeats_only(
            text in prop_oneof![
                any::<String>(),
                prop::collection::vec(prop::sample::select(vec!["openid", "email", "a", " ", "  ", "x:y"]), 0..12)
                    .prop_map(|parts| parts.concat()),
            ],
        ) {
            let mut expected: Vec<String> = Vec::new();
            for piece in text.split(' ') {
                if !piece.is_empty() && !expected.iter().any(|e| e == piece) {
                    expected.push(piece.to_owned());
                }
            }
            prop_assert_eq!(split_scopes(&text), expected);
        }
    }
}
