//! Signing keys: the keys that sign access tokens and ID tokens, how they are
//! stored, rotated and published, and the one function that validates a JWT.
//!
//! * The private keys live in the `signing_keys` table, encrypted with
//!   AES-256-GCM under a [`MasterKey`] that never touches the database (it is a
//!   file next to the configuration), so a database dump alone signs nothing.
//! * There is always one active key per [`SigningAlg`]: EdDSA (Ed25519, RFC 8037)
//!   for access tokens, RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3) for
//!   ID tokens, which OpenID Connect Core §15.1 requires every provider to support.
//! * [`KeyRing`] holds the keys parsed once, never per token (`jsonwebtoken::encode`
//!   re-parses and re-checks the RSA key on every call).
//!   [`KeyRing::reload`] swaps them in place, so a `keys rotate` run by the CLI
//!   reaches every running instance.
//! * [`rotate`] retires the active keys and creates new ones; a retired key keeps
//!   verifying and stays in the JWKS (RFC 7517) for [`RETIRED_KEY_GRACE`], then it
//!   is gone.
//! * [`KeyRing::verify_access_token`] is the only place a JWT access token is
//!   accepted: explicit type (RFC 9068 §4), known `kid`, the algorithm pinned to
//!   that key (RFC 8725 §3.1), issuer, audience and expiry.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, RwLock},
};

use aes_gcm::{
    aead::{Aead, KeyInit},
    Aes256Gcm, Nonce,
};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use rand::{rngs::OsRng, RngCore};
use ring::signature::{
    Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents, UnparsedPublicKey, ED25519,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};

use super::{
    error::{DomainError, DomainResult},
    secrets,
    store::{now, on_db, Db},
};

/// Re-exported so callers (and the tests that forge hostile tokens) use the very
/// version the key ring validates with.
pub use jsonwebtoken;

/// How long a retired key keeps verifying tokens and stays in the JWKS, in
/// seconds. The longest access-token lifetime a client may be given is 24 h and
/// ID tokens live 1 h, so a key retired at time `t` signed nothing that outlives
/// `t + 24 h`; the extra hour covers instances that keep signing with the old key
/// until their next [`KeyRing::reload`] and relying parties' JWKS caches.
pub const RETIRED_KEY_GRACE: i64 = 24 * 3600 + 3600;

/// RSA modulus size: 2048 bits is the floor of RFC 7518 §3.3 and of NIST SP 800-57
/// until 2030; larger keys make every ID token slower to sign for every client.
const RSA_BITS: usize = 2048;

/// AES-GCM nonce length: 96 bits, the size GCM is defined for (NIST SP 800-38D §5.2.1.1).
const NONCE_LEN: usize = 12;

// ---------------------------------------------------------------------------
// Master key
// ---------------------------------------------------------------------------

/// The 256-bit key that encrypts signing keys at rest (AES-256-GCM).
///
/// Deliberately neither `Serialize` nor printable: `{:?}` shows `[redacted]`.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl MasterKey {
    /// A new random key from the OS.
    pub fn generate() -> MasterKey {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        MasterKey(key)
    }

    /// Reads a key written by [`MasterKey::to_base64url`] (surrounding whitespace is
    /// ignored). The error never repeats the input: it may be a real key with a typo.
    pub fn from_base64url(text: &str) -> Result<MasterKey, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| "the master key is not valid base64url (unpadded)".to_string())?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "the master key must be exactly 32 bytes (43 base64url characters), got {} bytes",
                bytes.len()
            )
        })?;
        Ok(MasterKey(key))
    }

    /// The key as unpadded base64url (43 characters): how it is stored in its file.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Reads the key from `path`, or creates the file (and its folders) with a new
    /// key when it is missing. The file is created readable by its owner only
    /// (mode 0600 on Unix), atomically: if another process creates it first, its
    /// key is read instead of overwritten.
    pub fn load_or_create_file(path: impl AsRef<Path>) -> Result<MasterKey, String> {
        let path = path.as_ref();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                warn_if_readable_by_others(path);
                return MasterKey::from_base64url(&text)
                    .map_err(|e| format!("{}: {e}", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!(
                    "cannot read the master key {}: {e}",
                    path.display()
                ))
            }
        }
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
        }
        let key = MasterKey::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(mut file) => {
                use std::io::Write;
                file.write_all(format!("{}\n", key.to_base64url()).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| format!("cannot write the master key {}: {e}", path.display()))?;
                tracing::info!(path = %path.display(), "created a new master key");
                Ok(key)
            }
            // Another instance won the race: use its key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the master key {}: {e}", path.display()))?;
                MasterKey::from_base64url(&text).map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) => Err(format!(
                "cannot create the master key {}: {e}",
                path.display()
            )),
        }
    }

    /// Encrypts with a fresh random 96-bit nonce; returns base64 of `nonce || ciphertext`
    /// (the ciphertext ends with GCM's 128-bit tag). A random nonce is safe here: at
    /// most a handful of keys are ever encrypted under one master key, far below
    /// the 2^32 messages NIST SP 800-38D §8.3 allows.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let cipher = Aes256Gcm::new(&self.0.into());
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            // Only fails for plaintexts beyond 64 GiB.
            .expect("AES-GCM encryption of a small plaintext");
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        STANDARD.encode(out)
    }

    /// Decrypts what [`MasterKey::encrypt`] produced. A wrong key, a changed byte or
    /// a truncated text all fail the GCM tag check and give `Err`.
    pub fn decrypt(&self, encrypted: &str) -> Result<Vec<u8>, String> {
        let bytes = STANDARD
            .decode(encrypted.trim())
            .map_err(|_| "encrypted value is not valid base64".to_string())?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err("encrypted value is too short".into());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        Aes256Gcm::new(&self.0.into())
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| "cannot decrypt: wrong master key or altered data".to_string())
    }
}

/// A key file others can read is a leaked key; say so without refusing to start.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the master key file is readable by group or others; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

// ---------------------------------------------------------------------------
// Algorithms
// ---------------------------------------------------------------------------

/// The JWS algorithms Latchkey signs with (RFC 7518 §3.1 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SigningAlg {
    /// Ed25519 (RFC 8037): small, fast, deterministic; access tokens.
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256: the ID-token default of OpenID Connect.
    RS256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 2] = [SigningAlg::EdDSA, SigningAlg::RS256];

    /// The `alg` value, also what the `algorithm` column holds.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::RS256 => "RS256",
        }
    }

    /// The inverse of [`SigningAlg::as_str`] (exact, case-sensitive like JOSE names).
    pub fn parse(value: &str) -> Option<SigningAlg> {
        match value {
            "EdDSA" => Some(SigningAlg::EdDSA),
            "RS256" => Some(SigningAlg::RS256),
            _ => None,
        }
    }

    /// The same algorithm in `jsonwebtoken`'s terms.
    pub fn jwt_algorithm(self) -> Algorithm {
        match self {
            SigningAlg::EdDSA => Algorithm::EdDSA,
            SigningAlg::RS256 => Algorithm::RS256,
        }
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------
// Token errors
// ---------------------------------------------------------------------------

/// Why a token was refused. Callers answer every variant with the same "invalid
/// token" (RFC 6750 §3.1); the variants are for logs and tests. No message
/// contains the token or any of its claims.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, or a header that is not a JOSE header we know
    /// (this includes `alg: none`, which no key of ours has).
    #[error("malformed token")]
    Malformed,
    /// The `typ` header is not the one this kind of token must carry.
    #[error("wrong token type")]
    WrongType,
    /// No `kid`, or a `kid` that is not (or no longer) one of ours.
    #[error("unknown signing key")]
    UnknownKey,
    /// The header's `alg` is not the algorithm of the key its `kid` names.
    #[error("algorithm does not match the key")]
    WrongAlgorithm,
    /// Signed by us, but past its `exp`.
    #[error("token expired")]
    Expired,
    /// A bad signature, or claims that fail validation (issuer, audience, `nbf`,
    /// a missing required claim, claims of the wrong shape).
    #[error("invalid token: {0}")]
    BadSignatureOrClaims(String),
}

/// Turns `jsonwebtoken`'s error into ours without its message: serde's messages
/// quote the offending claim values.
fn token_error(err: jsonwebtoken::errors::Error) -> TokenError {
    let why = match err.kind() {
        ErrorKind::ExpiredSignature => return TokenError::Expired,
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            return TokenError::Malformed
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            return TokenError::WrongAlgorithm
        }
        ErrorKind::InvalidSignature => "bad signature".to_string(),
        ErrorKind::InvalidIssuer => "wrong issuer".to_string(),
        ErrorKind::InvalidAudience => "wrong audience".to_string(),
        ErrorKind::InvalidSubject => "wrong subject".to_string(),
        ErrorKind::ImmatureSignature => "not valid yet (nbf)".to_string(),
        ErrorKind::MissingRequiredClaim(claim) => format!("missing claim {claim}"),
        ErrorKind::Json(_) => "claims of the wrong shape".to_string(),
        _ => "rejected".to_string(),
    };
    TokenError::BadSignatureOrClaims(why)
}

/// Whether `typ` says "JWT access token" (RFC 9068 §2.1: `at+jwt`; §4: compare
/// case-insensitively and accept the full media type `application/at+jwt`).
fn is_access_token_type(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

// ---------------------------------------------------------------------------
// at_hash
// ---------------------------------------------------------------------------

/// The ID token's `at_hash` for an RS256 ID token (OpenID Connect Core §3.1.3.6):
/// base64url of the left-most 128 bits of SHA-256 of the ASCII access token.
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

// ---------------------------------------------------------------------------
// Parsed keys
// ---------------------------------------------------------------------------

/// A private key parsed into ring's form, ready to sign without re-parsing.
/// `jsonwebtoken::encode` would re-parse the RSA key (`RsaKeyPair::from_der`,
/// with its consistency checks) for every token, so the JWS is assembled here
/// (RFC 7515 §5.1) and only verification goes through `jsonwebtoken`.
enum Signer {
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// The public half: what verifies, and what the JWKS publishes.
struct PublicPart {
    /// For `jsonwebtoken` (ID token hints).
    decoding: DecodingKey,
    /// The same key for ring directly (access tokens: the hot path).
    verifier: Verifier,
    jwk: serde_json::Value,
}

/// A public key in the form ring verifies with, and how: Ed25519 (RFC 8032),
/// or RSASSA-PKCS1-v1_5 with SHA-256 and a 2048–8192-bit modulus, the very
/// verification `jsonwebtoken` does for `EdDSA` and `RS256`.
enum Verifier {
    Ed25519(Vec<u8>),
    Rsa(RsaPublicKeyComponents<Vec<u8>>),
}

impl Verifier {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Verifier::Ed25519(public_key) => UnparsedPublicKey::new(&ED25519, public_key)
                .verify(message, signature)
                .is_ok(),
            Verifier::Rsa(components) => components
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
        }
    }
}

/// One key of the ring. `signer` is present only while the key is active:
/// retired private keys are not kept in memory.
#[derive(Clone)]
struct Entry {
    kid: String,
    alg: SigningAlg,
    created_at: i64,
    retired_at: Option<i64>,
    public: Arc<PublicPart>,
    signer: Option<Arc<Signer>>,
}

impl Entry {
    /// Active, or retired less than [`RETIRED_KEY_GRACE`] ago.
    fn is_usable(&self, now: i64) -> bool {
        self.retired_at
            .is_none_or(|retired| retired.saturating_add(RETIRED_KEY_GRACE) > now)
    }
}

/// Parses a decrypted private key and derives its public JWK.
fn parse_private_key(
    kid: &str,
    alg: SigningAlg,
    der: &[u8],
) -> Result<(Signer, PublicPart), String> {
    match alg {
        SigningAlg::EdDSA => {
            let pair = Ed25519KeyPair::from_pkcs8(der)
                .map_err(|e| format!("not an Ed25519 PKCS#8 key: {e}"))?;
            let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
            let decoding = DecodingKey::from_ed_components(&x).map_err(|e| e.to_string())?;
            let verifier = Verifier::Ed25519(pair.public_key().as_ref().to_vec());
            // RFC 8037 §2 (OKP key type), RFC 7517 §4 (kid, alg, use).
            let jwk = serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": x,
                "kid": kid, "alg": "EdDSA", "use": "sig",
            });
            Ok((
                Signer::Ed25519(pair),
                PublicPart {
                    decoding,
                    verifier,
                    jwk,
                },
            ))
        }
        SigningAlg::RS256 => {
            let pair =
                RsaKeyPair::from_der(der).map_err(|e| format!("not an RSA PKCS#1 key: {e}"))?;
            let components = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
            let n = URL_SAFE_NO_PAD.encode(&components.n);
            let e = URL_SAFE_NO_PAD.encode(&components.e);
            let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|e| e.to_string())?;
            // RFC 7518 §6.3.1: n and e as unsigned big-endian base64url.
            let jwk = serde_json::json!({
                "kty": "RSA", "n": n, "e": e,
                "kid": kid, "alg": "RS256", "use": "sig",
            });
            Ok((
                Signer::Rsa(pair),
                PublicPart {
                    decoding,
                    verifier: Verifier::Rsa(components),
                    jwk,
                },
            ))
        }
    }
}

/// A new private key: PKCS#8 v2 for Ed25519 (what ring reads back), PKCS#1 DER
/// for RSA (what ring's `RsaKeyPair::from_der` reads).
fn generate_private_key(alg: SigningAlg) -> Result<Vec<u8>, String> {
    match alg {
        SigningAlg::EdDSA => {
            let rng = ring::rand::SystemRandom::new();
            Ed25519KeyPair::generate_pkcs8(&rng)
                .map(|doc| doc.as_ref().to_vec())
                .map_err(|_| "Ed25519 key generation failed".to_string())
        }
        SigningAlg::RS256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS)
                .map_err(|e| format!("RSA key generation failed: {e}"))?;
            key.to_pkcs1_der()
                .map(|doc| doc.as_bytes().to_vec())
                .map_err(|e| format!("RSA key encoding failed: {e}"))
        }
    }
}

/// A generated key, encrypted and ready to insert.
struct NewKey {
    kid: String,
    alg: SigningAlg,
    private_key: String,
    public_jwk: String,
}

/// Generates keys of the given algorithms off the async executor (RSA generation
/// takes a noticeable fraction of a second, and longer unoptimised).
async fn generate_keys(master: &MasterKey, algs: Vec<SigningAlg>) -> DomainResult<Vec<NewKey>> {
    let master = master.clone();
    tokio::task::spawn_blocking(move || {
        algs.into_iter()
            .map(|alg| {
                let kid = secrets::random_token(12);
                let der = generate_private_key(alg)?;
                let (_, public) = parse_private_key(&kid, alg, &der)?;
                Ok(NewKey {
                    private_key: master.encrypt(&der),
                    public_jwk: public.jwk.to_string(),
                    kid,
                    alg,
                })
            })
            .collect::<Result<Vec<_>, String>>()
    })
    .await
    .map_err(|e| DomainError::Internal(format!("key generation task failed: {e}")))?
    .map_err(DomainError::Internal)
}

const INSERT_KEY: &str =
    "INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, created_at) \
                          VALUES ($1, $2, $3, $4, $5)";

type KeyRow = (String, String, String, String, i64, Option<i64>);

// ---------------------------------------------------------------------------
// Key ring
// ---------------------------------------------------------------------------

/// The signing keys, parsed, shared by every request. Cloning is cheap (one
/// `Arc`); [`KeyRing::reload`] replaces the keys for every clone at once.
#[derive(Clone)]
pub struct KeyRing {
    entries: Arc<RwLock<Vec<Entry>>>,
    /// SHA-256 of access tokens whose signature verified: see
    /// [`KeyRing::verify_access_token`].
    verified: Arc<RwLock<std::collections::HashSet<[u8; 32]>>>,
    /// The HMAC-SHA256 key of refresh-token chains: see
    /// [`KeyRing::refresh_chain_mac`].
    chain: Arc<ring::hmac::Key>,
}

#[cfg(test)]
impl KeyRing {
    /// A ring with no signing key and a random chain key: for tests of the
    /// refresh-chain MAC.
    pub(crate) fn chain_only() -> KeyRing {
        KeyRing {
            entries: Arc::default(),
            verified: Arc::default(),
            chain: Arc::new(MasterKey::generate().refresh_chain_key()),
        }
    }
}

/// Whether any signing key is stored (made under some master key).
pub async fn exist(db: &Db) -> DomainResult<bool> {
    let n: i64 = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM signing_keys"
    )
    .fetch_one(pool)
    .await)?;
    Ok(n > 0)
}

impl MasterKey {
    /// Another 256-bit key for one purpose, derived from this one
    /// (HMAC-SHA256 of `label`): the same on every instance, never stored,
    /// and what is encrypted under it cannot be decrypted with the master key
    /// itself or under another label.
    pub fn derive(&self, label: &str) -> MasterKey {
        let master = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let derived = ring::hmac::sign(&master, label.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(derived.as_ref());
        MasterKey(key)
    }

    /// The key refresh-token chains are MACed with, derived from this
    /// master key (HMAC-SHA256 of a fixed label): the same on every
    /// instance, and never stored.
    fn refresh_chain_key(&self) -> ring::hmac::Key {
        let master = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let derived = ring::hmac::sign(&master, b"latchkey refresh-token chain key v1");
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref())
    }
}

/// How many verified signatures [`KeyRing`] remembers; when full it forgets
/// them all (they are verified again on their next use).
const VERIFIED_CAPACITY: usize = 50_000;

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.read();
        f.debug_list()
            .entries(entries.iter().map(|e| (e.alg, &e.kid, e.retired_at)))
            .finish()
    }
}

impl KeyRing {
    /// The MAC of generation `generation` of token family `family_id`'s
    /// refresh-token chain (`refresh::ChainToken`): HMAC-SHA256 over a
    /// version byte, the family id with its length, and the generation
    /// (big-endian u64). 32 bytes.
    pub fn refresh_chain_mac(&self, family_id: &str, generation: u64) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.chain);
        ctx.update(&[1, family_id.len() as u8]);
        ctx.update(family_id.as_bytes());
        ctx.update(&generation.to_be_bytes());
        let mut mac = [0u8; 32];
        mac.copy_from_slice(ctx.sign().as_ref());
        mac
    }

    /// Loads the keys; first creates an EdDSA and an RS256 key when there is no
    /// active key of that algorithm (a new database, or keys retired by hand).
    ///
    /// Two instances starting together may both create keys; then there are two
    /// active keys of one algorithm, the newest signs and both verify.
    pub async fn load_or_create(db: &Db, master: &MasterKey) -> DomainResult<KeyRing> {
        let active: Vec<String> = on_db!(db, |pool| sqlx::query_scalar(
            "SELECT DISTINCT algorithm FROM signing_keys WHERE retired_at IS NULL"
        )
        .fetch_all(pool)
        .await)?;
        let missing: Vec<SigningAlg> = SigningAlg::ALL
            .into_iter()
            .filter(|alg| !active.iter().any(|a| a == alg.as_str()))
            .collect();
        if !missing.is_empty() {
            let created_at = now();
            for key in generate_keys(master, missing).await? {
                on_db!(db, |pool| pool
                    .execute_write(
                        sqlx::query(INSERT_KEY)
                            .bind(&key.kid)
                            .bind(key.alg.as_str())
                            .bind(&key.private_key)
                            .bind(&key.public_jwk)
                            .bind(created_at)
                    )
                    .await
                    .map(|_| ()))?;
                tracing::info!(kid = %key.kid, alg = %key.alg, "created a signing key");
            }
        }
        let ring = KeyRing {
            entries: Arc::new(RwLock::new(Vec::new())),
            verified: Arc::default(),
            chain: Arc::new(master.refresh_chain_key()),
        };
        ring.reload(db, master).await?;
        Ok(ring)
    }

    /// Re-reads the table and swaps the keys in place. Keys already loaded are
    /// reused as they are (no decryption, no parsing); keys retired longer than
    /// [`RETIRED_KEY_GRACE`] ago are dropped.
    ///
    /// Fails, keeping the current keys, when a key cannot be decrypted with
    /// `master` (the wrong master key file) or its stored public key does not
    /// match its private key: signing with keys nobody can verify, or
    /// publishing keys that are not ours, would be worse than an error.
    pub async fn reload(&self, db: &Db, master: &MasterKey) -> DomainResult<()> {
        let oldest_usable = now().saturating_sub(RETIRED_KEY_GRACE);
        let rows: Vec<KeyRow> = on_db!(db, |pool| sqlx::query_as(
            "SELECT kid, algorithm, private_key, public_jwk, created_at, retired_at \
             FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1 \
             ORDER BY created_at, kid"
        )
        .bind(oldest_usable)
        .fetch_all(pool)
        .await)?;
        let known: HashMap<String, Entry> = self
            .read()
            .iter()
            .map(|e| (e.kid.clone(), e.clone()))
            .collect();
        let master = master.clone();
        // Decrypting and parsing RSA keys is CPU work: keep it off the executor.
        let entries = tokio::task::spawn_blocking(move || build_entries(rows, known, &master))
            .await
            .map_err(|e| DomainError::Internal(format!("key loading task failed: {e}")))??;
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = entries;
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Entry>> {
        // Writers only ever assign a whole Vec, so a poisoned lock still holds a valid one.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The kid of the key that signs with `alg` now: the newest active one
    /// (ties, from two instances creating keys in the same second: highest kid).
    pub fn signing_kid(&self, alg: SigningAlg) -> Option<String> {
        self.signing_entry(alg).map(|e| e.kid)
    }

    fn signing_entry(&self, alg: SigningAlg) -> Option<Entry> {
        self.read()
            .iter()
            .filter(|e| e.alg == alg && e.retired_at.is_none() && e.signer.is_some())
            .max_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)))
            .cloned()
    }

    /// The JSON Web Key Set (RFC 7517 §5) published at `jwks_uri`: every active
    /// key and every key retired less than [`RETIRED_KEY_GRACE`] ago, newest
    /// first. Public members only.
    pub fn jwks(&self) -> serde_json::Value {
        let now = now();
        let entries = self.read();
        let mut usable: Vec<&Entry> = entries.iter().filter(|e| e.is_usable(now)).collect();
        // Active keys first (a rotation within the same second must still list
        // the new signing keys first), then newest first.
        usable.sort_by(|a, b| {
            (a.retired_at.is_some(), b.created_at, &b.kid).cmp(&(
                b.retired_at.is_some(),
                a.created_at,
                &a.kid,
            ))
        });
        let keys: Vec<serde_json::Value> = usable.iter().map(|e| e.public.jwk.clone()).collect();
        serde_json::json!({ "keys": keys })
    }

    /// Signs `claims` as a JWS compact serialization (RFC 7515 §7.1) with the
    /// signing key of `alg`; the header carries `alg`, `kid` and `typ` (`at+jwt`
    /// for access tokens per RFC 9068 §2.1, `JWT` for ID tokens).
    pub fn sign(
        &self,
        alg: SigningAlg,
        typ: &str,
        claims: &impl Serialize,
    ) -> DomainResult<String> {
        let entry = self
            .signing_entry(alg)
            .ok_or_else(|| DomainError::Internal(format!("no active {alg} signing key")))?;
        let Some(signer) = entry.signer else {
            return Err(DomainError::Internal(format!(
                "no active {alg} signing key"
            )));
        };
        let header = serde_json::json!({ "alg": alg.as_str(), "kid": entry.kid, "typ": typ });
        let payload = serde_json::to_vec(claims)
            .map_err(|e| DomainError::Internal(format!("claims do not serialize: {e}")))?;
        let mut token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = match &*signer {
            Signer::Ed25519(pair) => pair.sign(token.as_bytes()).as_ref().to_vec(),
            Signer::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    token.as_bytes(),
                    &mut signature,
                )
                .map_err(|_| DomainError::Internal("RSA signing failed".into()))?;
                signature
            }
        };
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(token)
    }

    /// The verification key a token header names, if it is ours and usable, with
    /// the algorithm that key is pinned to.
    fn key_for(&self, kid: Option<&str>) -> Result<(SigningAlg, Arc<PublicPart>), TokenError> {
        let kid = kid.ok_or(TokenError::UnknownKey)?;
        let now = now();
        self.read()
            .iter()
            .find(|e| e.kid == kid && e.is_usable(now))
            .map(|e| (e.alg, e.public.clone()))
            .ok_or(TokenError::UnknownKey)
    }

    /// Validates a JWT access token (RFC 9068) and returns its claims: the one
    /// function the server accepts a JWT access token through.
    ///
    /// In order: the header parses; `typ` is `at+jwt` (RFC 9068 §4, against
    /// confusing it with an ID token); `kid` names one of our usable keys (no
    /// trying every key); the header's `alg` is that key's algorithm (RFC 8725
    /// §2.1, §3.1: `none`, HMAC keyed with our public key and algorithm swaps all
    /// fail here); then the signature, `iss`, `aud`, `exp` (required, no leeway)
    /// and `nbf` if present. `iss` and `aud` are required too: without them a
    /// token would pass the issuer and audience checks by saying nothing.
    ///
    /// The checks are `jsonwebtoken::decode`'s, in its order and with its
    /// outcomes (see [`validate_access_claims`]), but each part is decoded once
    /// and the signature goes to ring directly: this runs for every
    /// introspection. A token whose signature verified is remembered (its
    /// SHA-256, up to 50,000 tokens): presented again, only the signature
    /// check is skipped — header, key, claims and expiry are checked anew.
    pub fn verify_access_token<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<T, TokenError> {
        self.verify_access(token, issuer, Some(audience))
    }

    /// [`KeyRing::verify_access_token`] for a token of any audience (it must
    /// still name one): introspection and RFC 7009 revocation, which decide
    /// who may see or revoke it by other rules.
    pub fn verify_access_token_any_audience<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<T, TokenError> {
        self.verify_access(token, issuer, None)
    }

    fn verify_access<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
        audience: Option<&str>,
    ) -> Result<T, TokenError> {
        // header.payload.signature (RFC 7515 §7.1); a header part holding more
        // dots fails to decode.
        let (message, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, payload) = message.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let header: jsonwebtoken::Header = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Malformed)?;
        if !header.typ.as_deref().is_some_and(is_access_token_type) {
            return Err(TokenError::WrongType);
        }
        let (alg, key) = self.key_for(header.kid.as_deref())?;
        if header.alg != alg.jwt_algorithm() {
            return Err(TokenError::WrongAlgorithm);
        }
        // The same token verified before (introspection is asked about one
        // token many times): the signature check, the costly step, is skipped;
        // every other check runs each time. Keyed by the whole token, so a
        // changed byte anywhere is verified afresh, and only after `kid`
        // named a key still usable.
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = self
            .verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&digest);
        if !known {
            let signature = URL_SAFE_NO_PAD
                .decode(signature)
                .map_err(|_| TokenError::Malformed)?;
            if !key.verifier.verify(message.as_bytes(), &signature) {
                return Err(TokenError::BadSignatureOrClaims("bad signature".into()));
            }
            let mut verified = self.verified.write().unwrap_or_else(|e| e.into_inner());
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
            verified.insert(digest);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let wrong_shape = || TokenError::BadSignatureOrClaims("claims of the wrong shape".into());
        // Parsed once, into a Value: checked from there, then handed to T.
        // (Unlike jsonwebtoken, a duplicated member is not refused but the
        // last one taken; only a payload we signed gets here, and we never
        // repeat a member.)
        let claims: serde_json::Value =
            serde_json::from_slice(&payload).map_err(|_| wrong_shape())?;
        let valid = if claims.is_object() {
            validate_access_claims(&claims, issuer, audience, now())
        } else {
            Err(wrong_shape())
        };
        let claims = T::deserialize(claims).map_err(|_| wrong_shape())?;
        valid.map(|()| claims)
    }

    /// Validates an `id_token_hint` of RP-initiated logout (OpenID Connect
    /// RP-Initiated Logout 1.0 §2): one of our RS256 ID tokens, signature and
    /// `iss` checked. Its expiry is deliberately not checked (the spec expects
    /// expired hints, since people log out long after signing in), nor its
    /// audience: the caller compares `aud` with the `client_id`. An access token
    /// (`typ: at+jwt`) is refused even if RS256-signed: it is not an ID token.
    pub fn verify_id_token_hint<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.typ.as_deref().is_some_and(is_access_token_type) {
            return Err(TokenError::WrongType);
        }
        let (alg, key) = self.key_for(header.kid.as_deref())?;
        if alg != SigningAlg::RS256 || header.alg != Algorithm::RS256 {
            return Err(TokenError::WrongAlgorithm);
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss"]);
        validation.set_issuer(&[issuer]);
        jsonwebtoken::decode::<T>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(token_error)
    }
}

/// The claim checks of [`KeyRing::verify_access_token`], as `jsonwebtoken`
/// 9 makes them with `leeway = 0`, `exp`, `iss` and `aud` required, one
/// issuer and one audience: a required claim that is absent or not of its type
/// is missing; `exp` before `now` is expired and `nbf` after it is not yet
/// valid (NumericDate: a non-negative integer, or a float, rounded); `iss`
/// and `aud` are a string equal to ours or an array of strings naming it.
/// The unit test `access_token_fast_path_agrees_with_jsonwebtoken` holds the
/// two to the same answers.
fn validate_access_claims(
    claims: &serde_json::Value,
    issuer: &str,
    audience: Option<&str>,
    now: i64,
) -> Result<(), TokenError> {
    use serde_json::Value;
    let bad = |why: &str| TokenError::BadSignatureOrClaims(why.into());
    // jsonwebtoken's reader of these claims loses its place in the JSON on a
    // non-empty array or object as `exp` or `nbf`, and on any array or object
    // as `sub`, and then refuses the whole payload: so does this.
    let nested = |name: &str, empty_too: bool| match claims.get(name) {
        Some(Value::Array(a)) => empty_too || !a.is_empty(),
        Some(Value::Object(o)) => empty_too || !o.is_empty(),
        _ => false,
    };
    if nested("exp", false) || nested("nbf", false) || nested("sub", true) {
        return Err(bad("claims of the wrong shape"));
    }
    let numeric_date = |name: &str| match claims.get(name) {
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Some(u),
            (None, Some(f)) if n.is_f64() && f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
                Some(f.round() as u64)
            }
            _ => None,
        },
        _ => None,
    };
    // Some(names it), or None when absent or not a string or an array of strings.
    let names = |name: &str, ours: &str| match claims.get(name) {
        Some(Value::String(s)) => Some(s == ours),
        Some(Value::Array(items)) => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<&str>>>()
            .map(|items| items.contains(&ours)),
        _ => None,
    };
    let exp = numeric_date("exp").ok_or_else(|| bad("missing claim exp"))?;
    let iss = names("iss", issuer).ok_or_else(|| bad("missing claim iss"))?;
    let aud = match audience {
        Some(audience) => names("aud", audience),
        // Any audience, as long as there is one.
        None => names("aud", "").map(|_| true),
    }
    .ok_or_else(|| bad("missing claim aud"))?;
    let now = u64::try_from(now).unwrap_or(0);
    if exp < now {
        return Err(TokenError::Expired);
    }
    if numeric_date("nbf").is_some_and(|nbf| nbf > now) {
        return Err(bad("not valid yet (nbf)"));
    }
    if !iss {
        return Err(bad("wrong issuer"));
    }
    if !aud {
        return Err(bad("wrong audience"));
    }
    Ok(())
}

/// Builds the ring from the table's rows, reusing what `known` already parsed.
fn build_entries(
    rows: Vec<KeyRow>,
    known: HashMap<String, Entry>,
    master: &MasterKey,
) -> DomainResult<Vec<Entry>> {
    let mut entries = Vec::with_capacity(rows.len());
    for (kid, algorithm, private_key, public_jwk, created_at, retired_at) in rows {
        let alg = SigningAlg::parse(&algorithm).ok_or_else(|| {
            DomainError::Internal(format!(
                "signing key {kid} has an unknown algorithm {algorithm:?}"
            ))
        })?;
        let active = retired_at.is_none();
        if let Some(old) = known.get(&kid).filter(|old| old.alg == alg) {
            if !active || old.signer.is_some() {
                entries.push(Entry {
                    retired_at,
                    created_at,
                    signer: if active { old.signer.clone() } else { None },
                    ..old.clone()
                });
                continue;
            }
        }
        let der = master
            .decrypt(&private_key)
            .map_err(|e| DomainError::Internal(format!("signing key {kid}: {e}")))?;
        let (signer, public) = parse_private_key(&kid, alg, &der)
            .map_err(|e| DomainError::Internal(format!("signing key {kid}: {e}")))?;
        let stored: serde_json::Value = serde_json::from_str(&public_jwk).map_err(|_| {
            DomainError::Internal(format!("signing key {kid}: stored public JWK is not JSON"))
        })?;
        if stored != public.jwk {
            return Err(DomainError::Internal(format!(
                "signing key {kid}: stored public JWK does not match the private key"
            )));
        }
        entries.push(Entry {
            kid,
            alg,
            created_at,
            retired_at,
            public: Arc::new(public),
            signer: active.then(|| Arc::new(signer)),
        });
    }
    Ok(entries)
}

/// Retires every active key and creates a new EdDSA and a new RS256 key, in one
/// transaction (a failure leaves the old keys active). Returns the new kids.
/// Running instances reload ([`KeyRing::reload`]) before it returns
/// (`instances::announce_change`; each also reloads every minute), so every
/// instance verifies the new keys' tokens from then on; the old keys keep
/// verifying for [`RETIRED_KEY_GRACE`].
pub async fn rotate(db: &Db, master: &MasterKey) -> DomainResult<Vec<String>> {
    // Generate first: RSA generation is slow and must not hold a transaction open.
    let keys = generate_keys(master, SigningAlg::ALL.to_vec()).await?;
    let at = now();
    on_db!(db, |pool| {
        let mut tx = pool.begin_durable_write().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(at)
            .execute(&mut *tx)
            .await?;
        for key in &keys {
            sqlx::query(INSERT_KEY)
                .bind(&key.kid)
                .bind(key.alg.as_str())
                .bind(&key.private_key)
                .bind(&key.public_jwk)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    })?;
    super::instances::announce_change(db).await;
    let kids: Vec<String> = keys.into_iter().map(|k| k.kid).collect();
    tracing::info!(new_kids = ?kids, "rotated the signing keys");
    Ok(kids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_round_trips_and_encrypts_randomly() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64url(&key.to_base64url()).unwrap();
        let secret = b"private key bytes";
        let a = key.encrypt(secret);
        let b = key.encrypt(secret);
        assert_ne!(a, b, "each encryption uses a fresh nonce");
        assert_eq!(again.decrypt(&a).unwrap(), secret);
        assert_eq!(key.decrypt(&b).unwrap(), secret);
        assert_eq!(format!("{key:?}"), "[redacted]");
        assert_eq!(key.to_base64url().len(), 43);
    }

    #[test]
    fn wrong_master_key_fails_to_decrypt() {
        let encrypted = MasterKey::generate().encrypt(b"secret");
        let err = MasterKey::generate().decrypt(&encrypted).unwrap_err();
        assert!(err.contains("wrong master key"), "{err}");
    }

    #[test]
    fn tampered_ciphertext_fails_to_decrypt() {
        let key = MasterKey::generate();
        let encrypted = key.encrypt(b"secret");
        let mut bytes = STANDARD.decode(&encrypted).unwrap();
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[i] ^= 1;
            assert!(
                key.decrypt(&STANDARD.encode(&bytes)).is_err(),
                "byte {i} changed"
            );
            bytes[i] ^= 1;
        }
        assert!(key
            .decrypt(&STANDARD.encode(&bytes[..bytes.len() - 1]))
            .is_err());
        assert!(key.decrypt("").is_err());
        assert!(key.decrypt("not base64!").is_err());
        assert_eq!(key.decrypt(&STANDARD.encode(&bytes)).unwrap(), b"secret");
    }

    #[test]
    fn master_key_must_be_exactly_32_bytes() {
        let err = MasterKey::from_base64url(&URL_SAFE_NO_PAD.encode([7u8; 31])).unwrap_err();
        assert!(
            err.contains("exactly 32 bytes") && err.contains("got 31"),
            "{err}"
        );
        assert!(MasterKey::from_base64url(&URL_SAFE_NO_PAD.encode([7u8; 33])).is_err());
        let err = MasterKey::from_base64url("definitely*not*base64").unwrap_err();
        assert!(
            !err.contains("definitely"),
            "the input is not echoed: {err}"
        );
        assert!(
            MasterKey::from_base64url(&format!(" {}\n", URL_SAFE_NO_PAD.encode([7u8; 32]))).is_ok()
        );
    }

    #[test]
    fn master_key_file_is_created_private_then_reused() {
        let dir = tempfile_dir();
        let path = dir.join("nested/dir/master.key");
        let created = MasterKey::load_or_create_file(&path).unwrap();
        let loaded = MasterKey::load_or_create_file(&path).unwrap();
        assert_eq!(created.to_base64url(), loaded.to_base64url());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "too-short").unwrap();
        let err = MasterKey::load_or_create_file(&path).unwrap_err();
        assert!(err.contains("master.key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A fresh folder under the system temp dir (the app crate has no tempfile).
    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("latchkey-keys-{}", secrets::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn at_hash_matches_the_openid_connect_example() {
        // OpenID Connect Core 1.0, Appendix A.3/A.4 (RS256 ID token with at_hash).
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        // And by definition: the first 16 bytes of SHA-256, base64url.
        let token = "some-access-token";
        let digest = Sha256::digest(token.as_bytes());
        assert_eq!(at_hash(token), URL_SAFE_NO_PAD.encode(&digest[..16]));
        assert_eq!(at_hash(token).len(), 22);
    }

    #[test]
    fn signing_algorithms_round_trip_their_names() {
        for alg in SigningAlg::ALL {
            assert_eq!(SigningAlg::parse(alg.as_str()), Some(alg));
        }
        assert_eq!(SigningAlg::parse("none"), None);
        assert_eq!(SigningAlg::parse("rs256"), None);
    }

    #[test]
    fn access_token_type_is_compared_case_insensitively() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/AT+JWT",
        ] {
            assert!(is_access_token_type(typ), "{typ}");
        }
        for typ in ["JWT", "jwt", "at+jwt ", "application/jwt", ""] {
            assert!(!is_access_token_type(typ), "{typ}");
        }
    }

    #[test]
    fn generated_keys_parse_and_publish_only_public_members() {
        for alg in SigningAlg::ALL {
            let der = generate_private_key(alg).unwrap();
            let (_, public) = parse_private_key("kid-1", alg, &der).unwrap();
            let jwk = public.jwk.as_object().unwrap();
            assert_eq!(jwk["alg"], alg.as_str());
            assert_eq!(jwk["kid"], "kid-1");
            assert_eq!(jwk["use"], "sig");
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(!jwk.contains_key(private), "{alg}: {private}");
            }
        }
    }

    /// A ring with one fresh key per algorithm, without a database.
    fn ring_in_memory() -> KeyRing {
        ring_with_kids("kid")
    }

    /// [`ring_in_memory`] with kids `{prefix}-{alg}` (the property tests'
    /// rings too).
    pub(super) fn ring_with_kids(prefix: &str) -> KeyRing {
        let entries = SigningAlg::ALL
            .into_iter()
            .map(|alg| {
                let kid = format!("{prefix}-{alg}");
                let der = generate_private_key(alg).unwrap();
                let (signer, public) = parse_private_key(&kid, alg, &der).unwrap();
                Entry {
                    kid,
                    alg,
                    created_at: now(),
                    retired_at: None,
                    public: Arc::new(public),
                    signer: Some(Arc::new(signer)),
                }
            })
            .collect();
        KeyRing {
            entries: Arc::new(RwLock::new(entries)),
            verified: Arc::default(),
            chain: Arc::new(MasterKey::generate().refresh_chain_key()),
        }
    }

    /// `verify_access_token` as it was, all through `jsonwebtoken::decode`:
    /// the reference the fast path must agree with.
    fn verify_with_jsonwebtoken(
        ring: &KeyRing,
        token: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<serde_json::Value, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !header.typ.as_deref().is_some_and(is_access_token_type) {
            return Err(TokenError::WrongType);
        }
        let (alg, key) = ring.key_for(header.kid.as_deref())?;
        if header.alg != alg.jwt_algorithm() {
            return Err(TokenError::WrongAlgorithm);
        }
        let mut validation = Validation::new(alg.jwt_algorithm());
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        jsonwebtoken::decode::<serde_json::Value>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(token_error)
    }

    #[test]
    fn access_token_fast_path_agrees_with_jsonwebtoken() {
        use serde_json::{json, Value};
        const ISS: &str = "https://login.example";
        const AUD: &str = "https://api.example";
        let ring = ring_in_memory();
        let t = now();
        let good = json!({ "iss": ISS, "aud": AUD, "sub": "u", "exp": t + 300 });
        let with = |key: &str, value: Value| {
            let mut claims = good.clone();
            claims[key] = value;
            claims
        };
        let without = |key: &str| {
            let mut claims = good.clone();
            claims.as_object_mut().unwrap().remove(key);
            claims
        };
        let mut payloads = vec![good.clone(), without("exp"), without("iss"), without("aud")];
        for exp in [
            json!(t - 10),
            json!(t + 300),
            json!(t as f64 + 300.4),
            json!(t as f64 - 10.5),
            json!(-5),
            json!(1e30),
            json!(u64::MAX),
            json!("tomorrow"),
            json!(null),
            json!(true),
            json!([t + 300]),
            json!([]),
            json!({ "at": t + 300 }),
            json!({}),
        ] {
            payloads.push(with("exp", exp));
        }
        for nbf in [
            json!(t + 60),
            json!(t - 5),
            json!(t as f64 + 60.0),
            json!(-1),
            json!("later"),
            json!(null),
            json!([t + 60]),
            json!([]),
            json!({ "at": t + 60 }),
            json!({}),
        ] {
            payloads.push(with("nbf", nbf));
        }
        for (claim, ours) in [("iss", ISS), ("aud", AUD)] {
            for value in [
                json!("https://other.example"),
                json!([ours, "x"]),
                json!(["x", ours, ours]),
                json!(["x"]),
                json!([]),
                json!([ours, 1]),
                json!(5),
                json!(null),
                json!({ "v": ours }),
            ] {
                payloads.push(with(claim, value));
            }
        }
        for sub in [
            json!(7),
            json!(null),
            json!(["u"]),
            json!([]),
            json!({ "id": "u" }),
            json!({}),
        ] {
            payloads.push(with("sub", sub));
        }
        payloads.push(json!(1));
        payloads.push(json!("claims"));
        payloads.push(json!([]));
        let mut tokens: Vec<String> = Vec::new();
        for payload in &payloads {
            for alg in SigningAlg::ALL {
                tokens.push(ring.sign(alg, "at+jwt", payload).unwrap());
            }
        }
        // Damaged and confused tokens.
        let good_token = ring.sign(SigningAlg::EdDSA, "at+jwt", &good).unwrap();
        let (message, signature) = good_token.rsplit_once('.').unwrap();
        let (header, _) = message.split_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode(with("sub", json!("admin")).to_string());
        tokens.extend([
            format!("{header}.{other}.{signature}"),
            format!("{message}."),
            format!("{message}.!!"),
            format!("{message}.{signature}="),
            message.to_string(),
            format!("x.{good_token}"),
            format!("{header}.%%.{signature}"),
            format!(
                "{header}.{}.{signature}",
                URL_SAFE_NO_PAD.encode("not json")
            ),
            "not-a-jwt".into(),
            "..".into(),
            ring.sign(SigningAlg::EdDSA, "JWT", &good).unwrap(),
            ring.sign(SigningAlg::RS256, "application/AT+JWT", &good)
                .unwrap(),
        ]);
        for token in &tokens {
            let reference = verify_with_jsonwebtoken(&ring, token, ISS, AUD);
            // Twice: the second time the signature is remembered.
            for time in ["first", "again"] {
                let fast = ring.verify_access_token::<Value>(token, ISS, AUD);
                assert_eq!(fast, reference, "{time}: {token}");
            }
        }
        // Where they part: claims as a five-element array, which jsonwebtoken
        // reads positionally as [exp, nbf, sub, iss, aud]. Not a JSON object,
        // so not claims here (and nothing we sign).
        let array = ring
            .sign(
                SigningAlg::EdDSA,
                "at+jwt",
                &json!([t + 300, t - 5, "u", ISS, AUD]),
            )
            .unwrap();
        assert!(verify_with_jsonwebtoken(&ring, &array, ISS, AUD).is_ok());
        assert_eq!(
            ring.verify_access_token::<Value>(&array, ISS, AUD),
            Err(TokenError::BadSignatureOrClaims(
                "claims of the wrong shape".into()
            ))
        );
    }

    #[test]
    fn a_remembered_signature_still_needs_its_key_and_its_bytes() {
        use serde_json::{json, Value};
        const ISS: &str = "https://login.example";
        let ring = ring_in_memory();
        let claims = json!({ "iss": ISS, "aud": ISS, "sub": "u", "exp": now() + 300 });
        let token = ring.sign(SigningAlg::EdDSA, "at+jwt", &claims).unwrap();
        assert!(ring.verify_access_token::<Value>(&token, ISS, ISS).is_ok());
        // One changed byte of the signature: verified afresh, refused.
        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(
            ring.verify_access_token::<Value>(&forged, ISS, ISS),
            Err(TokenError::BadSignatureOrClaims("bad signature".into()))
        );
        // Its key retired long ago: refused, remembered or not.
        for entry in ring.entries.write().unwrap().iter_mut() {
            entry.retired_at = Some(1);
        }
        assert_eq!(
            ring.verify_access_token::<Value>(&token, ISS, ISS),
            Err(TokenError::UnknownKey)
        );
    }
}

/// Property tests of JWT validation ([`KeyRing::verify_access_token`],
/// [`KeyRing::verify_id_token_hint`]): a token we signed verifies; random
/// text, a truncated or extended token, one signed by another key (under our
/// `kid` or another), one whose header or payload was changed, and one whose
/// header breaks the rules (`alg` not the key's, `typ` of the other kind of
/// token) — even when signed by our own key — never do. `PROPTEST_CASES`
/// raises the case count.
#[cfg(test)]
mod proptests {
    use std::sync::OnceLock;

    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;

    const ISS: &str = "https://login.example";
    const AUD: &str = "https://api.example";

    /// A ring with one fresh key per algorithm, kids `{prefix}-{alg}`.
    fn new_ring(prefix: &str) -> KeyRing {
        super::tests::ring_with_kids(prefix)
    }

    /// The same keys under kids `{prefix}-{alg}`.
    fn relabelled(keys: &KeyRing, prefix: &str) -> KeyRing {
        let entries = keys
            .read()
            .iter()
            .map(|e| Entry {
                kid: format!("{prefix}-{}", e.alg),
                ..e.clone()
            })
            .collect();
        KeyRing {
            entries: Arc::new(RwLock::new(entries)),
            verified: Arc::default(),
            chain: keys.chain.clone(),
        }
    }

    /// Ours; an attacker's keys under our very kids; the attacker's keys
    /// under kids of their own.
    fn rings() -> &'static (KeyRing, KeyRing, KeyRing) {
        static RINGS: OnceLock<(KeyRing, KeyRing, KeyRing)> = OnceLock::new();
        RINGS.get_or_init(|| {
            let impostor = new_ring("ours");
            let stranger = relabelled(&impostor, "theirs");
            (new_ring("ours"), impostor, stranger)
        })
    }

    fn ours() -> &'static KeyRing {
        &rings().0
    }

    fn kid(alg: SigningAlg) -> String {
        format!("ours-{alg}")
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A JWS over exactly this header and payload text, signed by `keys`'
    /// key of `alg`, whatever the header says.
    fn sign_raw(keys: &KeyRing, alg: SigningAlg, header: &str, payload: &str) -> String {
        let entry = keys.signing_entry(alg).unwrap();
        let message = format!("{}.{}", b64(header), b64(payload));
        let signature = match &*entry.signer.unwrap() {
            Signer::Ed25519(pair) => pair.sign(message.as_bytes()).as_ref().to_vec(),
            Signer::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    message.as_bytes(),
                    &mut signature,
                )
                .unwrap();
                signature
            }
        };
        format!("{message}.{}", b64(signature))
    }

    fn access(token: &str) -> Result<Value, TokenError> {
        ours().verify_access_token::<Value>(token, ISS, AUD)
    }

    fn id_hint(token: &str) -> Result<Value, TokenError> {
        ours().verify_id_token_hint::<Value>(token, ISS)
    }

    fn alg() -> impl Strategy<Value = SigningAlg> {
        prop::sample::select(SigningAlg::ALL.to_vec())
    }

    /// Valid access-token claims with random extra members.
    fn claims() -> impl Strategy<Value = Value> {
        (
            "[A-Za-z0-9_-]{1,24}",
            prop::collection::btree_map("[a-z_]{1,10}", any::<String>(), 0..4),
            60i64..86_400,
        )
            .prop_map(|(sub, extra, ttl)| {
                let mut claims = json!({ "iss": ISS, "aud": AUD, "sub": sub, "exp": now() + ttl });
                for (name, value) in extra {
                    if !["iss", "aud", "sub", "exp", "nbf"].contains(&name.as_str()) {
                        claims[name] = Value::String(value);
                    }
                }
                claims
            })
    }

    /// A JOSE header as an attacker would write one: `alg` among ours,
    /// others and misspellings, `kid` ours or not or absent, `typ` of
    /// either kind of token or anything.
    fn header() -> impl Strategy<Value = Value> {
        let alg = prop::option::of(prop::sample::select(vec![
            "EdDSA", "RS256", "none", "None", "HS256", "HS512", "ES256", "PS256", "RS512", "eddsa",
            "rs256", "",
        ]));
        let kid = prop::option::of(prop_oneof![
            prop::sample::select(vec![
                "ours-EdDSA".to_owned(),
                "ours-RS256".to_owned(),
                "theirs-EdDSA".to_owned(),
                "ours-eddsa".to_owned(),
                "".to_owned(),
            ]),
            "[ -~]{0,16}",
        ]);
        let typ = prop::option::of(prop_oneof![
            prop::sample::select(vec![
                "at+jwt",
                "AT+JWT",
                "application/at+jwt",
                "Application/At+JWT",
                "JWT",
                "jwt",
                "at+jwt ",
                "application/jwt",
                "",
            ])
            .prop_map(str::to_owned),
            "[ -~]{0,12}",
        ]);
        (alg, kid, typ).prop_map(|(alg, kid, typ)| {
            let mut header = serde_json::Map::new();
            if let Some(alg) = alg {
                header.insert("alg".into(), alg.into());
            }
            if let Some(kid) = kid {
                header.insert("kid".into(), kid.into());
            }
            if let Some(typ) = typ {
                header.insert("typ".into(), typ.into());
            }
            Value::Object(header)
        })
    }

    /// A header close to a valid one for the key of `alg`: each of `alg`,
    /// `kid` and `typ` is often right and otherwise wrong or missing, so
    /// that every single swap is tried often.
    fn header_near(alg: SigningAlg) -> impl Strategy<Value = Value> {
        let other_alg = prop::sample::select(vec![
            "EdDSA", "RS256", "none", "HS256", "ES256", "PS256", "RS512", "eddsa",
        ])
        .prop_map(|a| Some(a.to_owned()));
        let alg_field = prop_oneof![
            2 => Just(Some(alg.as_str().to_owned())),
            2 => other_alg,
            1 => Just(None),
        ];
        let other_kid = prop::sample::select(vec![
            "ours-EdDSA",
            "ours-RS256",
            "theirs-EdDSA",
            "theirs-RS256",
            "ours-rs256",
            "",
        ])
        .prop_map(|k| Some(k.to_owned()));
        let kid_field = prop_oneof![
            2 => Just(Some(kid(alg))),
            2 => other_kid,
            1 => Just(None),
        ];
        let typ_field = prop_oneof![
            2 => prop::sample::select(vec!["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+Jwt"])
                .prop_map(|t| Some(t.to_owned())),
            2 => prop::sample::select(vec!["JWT", "jwt", "", "at+jwt ", "application/jwt", "at-jwt"])
                .prop_map(|t| Some(t.to_owned())),
            1 => Just(None),
        ];
        (alg_field, kid_field, typ_field).prop_map(|(alg, kid, typ)| {
            let mut header = serde_json::Map::new();
            for (name, value) in [("alg", alg), ("kid", kid), ("typ", typ)] {
                if let Some(value) = value {
                    header.insert(name.into(), value.into());
                }
            }
            Value::Object(header)
        })
    }

    fn is_at_jwt(typ: Option<&str>) -> bool {
        typ.is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t == "at+jwt" || t == "application/at+jwt"
        })
    }

    proptest! {
        #![proptest_config(super::super::proptest_config(64))]

        /// A token we signed verifies, with its claims intact; as an ID
        /// token hint, only an RS256 one with `typ: JWT` does.
        #[test]
        fn genuine_tokens_verify(claims in claims(), alg in alg()) {
            let token = ours().sign(alg, "at+jwt", &claims).unwrap();
            prop_assert_eq!(access(&token), Ok(claims.clone()));
            prop_assert_eq!(
                ours().verify_access_token_any_audience::<Value>(&token, ISS),
                Ok(claims.clone())
            );
            prop_assert!(id_hint(&token).is_err(), "an access token passed as an ID token");
            let id_token = ours().sign(alg, "JWT", &claims).unwrap();
            prop_assert!(access(&id_token).is_err(), "an ID token passed as an access token");
            if alg == SigningAlg::RS256 {
                prop_assert_eq!(id_hint(&id_token), Ok(claims));
            } else {
                prop_assert!(id_hint(&id_token).is_err());
            }
        }

        /// Random text, and random text shaped like a JWS, never verifies.
        #[test]
        fn random_text_never_verifies(
            text in prop_oneof![
                any::<String>(),
                "[A-Za-z0-9_.=-]{0,400}",
                "[A-Za-z0-9_-]{0,120}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,400}",
                any::<Vec<u8>>().prop_map(|b| format!("{}.{}.{}", b64(&b), b64(&b), b64(&b))),
            ],
        ) {
            prop_assert!(access(&text).is_err());
            prop_assert!(id_hint(&text).is_err());
        }

        /// Our header and real claims with a random signature never verify.
        #[test]
        fn random_signatures_never_verify(
            claims in claims(),
            alg in alg(),
            signature in prop_oneof![
                prop::collection::vec(any::<u8>(), 64),
                prop::collection::vec(any::<u8>(), 256),
                any::<Vec<u8>>(),
            ],
        ) {
            let typ = if alg == SigningAlg::RS256 { "JWT" } else { "at+jwt" };
            let header = json!({ "alg": alg.as_str(), "kid": kid(alg), "typ": typ });
            let token = format!("{}.{}.{}", b64(header.to_string()), b64(claims.to_string()), b64(&signature));
            prop_assert!(access(&token).is_err());
            prop_assert!(id_hint(&token).is_err());
        }

        /// Every strict prefix of a genuine token, and the token with
        /// anything appended, is refused.
        #[test]
        fn truncated_or_extended_tokens_never_verify(
            claims in claims(),
            alg in alg(),
            cut in any::<prop::sample::Index>(),
            tail in "[A-Za-z0-9_.=-]{1,8}",
        ) {
            for typ in ["at+jwt", "JWT"] {
                let token = ours().sign(alg, typ, &claims).unwrap();
                let prefix = &token[..cut.index(token.len())];
                prop_assert!(access(prefix).is_err(), "prefix {}", prefix);
                prop_assert!(id_hint(prefix).is_err(), "prefix {}", prefix);
                let longer = format!("{token}{tail}");
                prop_assert!(access(&longer).is_err(), "{}", longer);
                prop_assert!(id_hint(&longer).is_err(), "{}", longer);
            }
        }

        /// The same claims signed by another key — under our kid or its
        /// own — never verify.
        #[test]
        fn tokens_signed_by_other_keys_never_verify(claims in claims(), alg in alg()) {
            let (_, impostor, stranger) = rings();
            for keys in [impostor, stranger] {
                for typ in ["at+jwt", "JWT"] {
                    let token = keys.sign(alg, typ, &claims).unwrap();
                    prop_assert!(access(&token).is_err());
                    prop_assert!(id_hint(&token).is_err());
                }
            }
            let under_our_kid = impostor.sign(alg, "at+jwt", &claims).unwrap();
            prop_assert_eq!(
                access(&under_our_kid),
                Err(TokenError::BadSignatureOrClaims("bad signature".into()))
            );
            let unknown = stranger.sign(alg, "at+jwt", &claims).unwrap();
            prop_assert_eq!(access(&unknown), Err(TokenError::UnknownKey));
        }

        /// A genuine token with another header (alg, kid, typ swapped,
        /// added or dropped, or only written differently: `AT+JWT`) keeping
        /// the signature is refused.
        #[test]
        fn a_changed_header_breaks_the_signature(
            (claims, alg, header) in (claims(), alg()).prop_flat_map(|(claims, alg)| {
                (Just(claims), Just(alg), prop_oneof![header_near(alg), header()])
            }),
        ) {
            for typ in ["at+jwt", "JWT"] {
                let token = ours().sign(alg, typ, &claims).unwrap();
                let (original, rest) = token.split_once('.').unwrap();
                let swapped = b64(header.to_string());
                if swapped != original {
                    let forged = format!("{swapped}.{rest}");
                    prop_assert!(access(&forged).is_err(), "{}", header);
                    prop_assert!(id_hint(&forged).is_err(), "{}", header);
                }
            }
        }

        /// Signed by our own key, a header is still checked: an access token
        /// verifies only when `kid` names the key that signed it, `alg` is
        /// that key's algorithm and `typ` says at+jwt; an ID token hint only
        /// when the key is RS256, `alg` says so and `typ` is not at+jwt.
        #[test]
        fn header_rules_hold_for_tokens_signed_by_our_keys(
            (claims, alg, header) in (claims(), alg())
                .prop_flat_map(|(claims, alg)| (Just(claims), Just(alg), header_near(alg))),
        ) {
            let token = sign_raw(ours(), alg, &header.to_string(), &claims.to_string());
            let said = |name: &str| header.get(name).and_then(Value::as_str);
            let names_the_key = said("kid") == Some(kid(alg).as_str());
            let access_ok = names_the_key && said("alg") == Some(alg.as_str()) && is_at_jwt(said("typ"));
            prop_assert_eq!(access(&token).is_ok(), access_ok, "{} signed with {}", header, alg);
            let id_ok = names_the_key
                && alg == SigningAlg::RS256
                && said("alg") == Some("RS256")
                && !is_at_jwt(said("typ"));
            prop_assert_eq!(id_hint(&token).is_ok(), id_ok, "{} signed with {}", header, alg);
        }

        /// HS256 keyed with our public key (the classic algorithm
        /// confusion) is refused.
        #[test]
        fn hmac_keyed_with_our_public_key_never_verifies(
            claims in claims(),
            alg in alg(),
            typ in prop::sample::select(vec!["at+jwt", "JWT"]),
        ) {
            let jwks = ours().jwks();
            let jwk = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["alg"] == alg.as_str())
                .unwrap()
                .clone();
            for secret in [
                jwk.to_string().into_bytes(),
                URL_SAFE_NO_PAD
                    .decode(jwk["x"].as_str().or(jwk["n"].as_str()).unwrap())
                    .unwrap(),
            ] {
                let header = json!({ "alg": "HS256", "kid": kid(alg), "typ": typ });
                let message = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
                let token = format!("{message}.{}", b64(ring::hmac::sign(&key, message.as_bytes())));
                prop_assert!(access(&token).is_err());
                prop_assert!(id_hint(&token).is_err());
            }
        }

        /// Any one character of the payload or signature changed, or the
        /// payload replaced by other claims, and the token is refused.
        #[test]
        fn a_tampered_payload_or_signature_never_verifies(
            claims in claims(),
            alg in alg(),
            at in any::<prop::sample::Index>(),
            with in prop::sample::select(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec()
            ),
            sub in "[A-Za-z0-9_-]{1,24}",
        ) {
            for typ in ["at+jwt", "JWT"] {
                let token = ours().sign(alg, typ, &claims).unwrap();
                let header_len = token.find('.').unwrap() + 1;
                let i = header_len + at.index(token.len() - header_len);
                if token.as_bytes()[i] != b'.' && token.as_bytes()[i] != with {
                    let mut bytes = token.clone().into_bytes();
                    bytes[i] = with;
                    let tampered = String::from_utf8(bytes).unwrap();
                    prop_assert!(access(&tampered).is_err(), "{}", tampered);
                    prop_assert!(id_hint(&tampered).is_err(), "{}", tampered);
                }
                let mut other = claims.clone();
                other["sub"] = Value::String(format!("{sub}!"));
                other["exp"] = json!(claims["exp"].as_i64().unwrap() + 1);
                let (header, rest) = token.split_once('.').unwrap();
                let (_, signature) = rest.split_once('.').unwrap();
                let forged = format!("{header}.{}.{signature}", b64(other.to_string()));
                prop_assert!(access(&forged).is_err());
                prop_assert!(id_hint(&forged).is_err());
            }
        }
    }
}
