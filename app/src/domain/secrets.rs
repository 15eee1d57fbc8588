//! Random identifiers and secrets, their hashes, and password hashing.
//!
//! Client secrets and refresh tokens are 256-bit random values, so a single
//! SHA-256 is enough to store them (and keeps the token endpoint fast);
//! passwords are people's, so they get Argon2id, run off the async executor.

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::{rngs::OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `n` random bytes from the OS, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A random 128-bit identifier (22 characters).
pub fn new_id() -> String {
    random_token(16)
}

/// A 256-bit secret (43 characters): client secrets, refresh tokens, codes.
pub fn new_secret() -> String {
    random_token(32)
}

/// An identifier that sorts by creation time: 12 hex digits of milliseconds, then randomness.
pub fn new_ordered_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut tail = [0u8; 8];
    OsRng.fill_bytes(&mut tail);
    format!("{millis:012x}{}", hex::encode(tail))
}

/// Hex SHA-256: how secrets and tokens are stored.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Compares a presented secret with a stored hash in constant time.
pub fn secret_matches(presented: &str, stored_hash: &str) -> bool {
    sha256_hex(presented)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// A password hash: deliberately neither `Serialize` nor printable.
#[derive(Clone)]
pub struct PasswordHashString(pub String);

impl std::fmt::Debug for PasswordHashString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Hashes a password with Argon2id (default parameters) on a blocking thread.
pub async fn hash_password(password: String) -> Result<PasswordHashString, String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| PasswordHashString(h.to_string()))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// A valid Argon2id hash of a random password: verified against when the user
/// does not exist, so a wrong username costs as long as a wrong password.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Verifies a password on a blocking thread. A `None` hash, or a stored value
/// that is no hash (the password-less users of an upstream provider), checks
/// a dummy and fails: every refusal costs one Argon2 verification, so the time
/// tells nothing about the account.
pub async fn verify_password(password: String, hash: Option<PasswordHashString>) -> bool {
    tokio::task::spawn_blocking(move || {
        let dummy = || {
            DUMMY_HASH
                .get_or_init(|| {
                    let salt = SaltString::generate(&mut OsRng);
                    Argon2::default()
                        .hash_password(new_secret().as_bytes(), &salt)
                        .map(|h| h.to_string())
                        .unwrap_or_default()
                })
                .clone()
        };
        let (hash, real) = match hash {
            Some(h) if PasswordHash::new(&h.0).is_ok() => (h.0, true),
            _ => (dummy(), false),
        };
        let ok = PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && real
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_matches_only_its_own_hash() {
        let secret = new_secret();
        let hash = sha256_hex(&secret);
        assert!(secret_matches(&secret, &hash));
        assert!(!secret_matches(&new_secret(), &hash));
        assert_eq!(secret.len(), 43);
    }

    #[test]
    fn ordered_ids_sort_by_time() {
        let a = new_ordered_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_ordered_id();
        assert!(a < b, "{a} should sort before {b}");
    }

    #[tokio::test]
    async fn password_round_trip_and_unknown_user_fails() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.0.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(hash.clone())).await);
        assert!(!verify_password("wrong".into(), Some(hash)).await);
        assert!(!verify_password("correct horse".into(), None).await);
        // A stored value that is no hash (an upstream provider's user) never verifies.
        let none = PasswordHashString(crate::domain::upstream::NO_PASSWORD.into());
        assert!(!verify_password(crate::domain::upstream::NO_PASSWORD.into(), Some(none)).await);
        assert!(!verify_password(String::new(), Some(PasswordHashString(String::new()))).await);
        assert_eq!(
            format!("{:?}", PasswordHashString("x".into())),
            "[redacted]"
        );
    }
}
