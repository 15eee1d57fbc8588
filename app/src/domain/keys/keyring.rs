//! The key ring: the signing keys parsed once, shared by every request; how
//! they are stored (encrypted under the [`MasterKey`]), created, rotated,
//! reloaded and published (JWKS); and the refresh-chain MAC key derived from
//! the master key. Signing and verifying with them is [`crate::domain::jwt`].

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::DecodingKey;
use rand::rngs::OsRng;
use ring::signature::{Ed25519KeyPair, RsaKeyPair, RsaPublicKeyComponents, RSA_PKCS1_SHA256};

use super::{MasterKey, SigningAlg};
use crate::domain::{
    error::{DomainError, DomainResult},
    jwt::VerifiedTokens,
    secrets,
    store::{now, on_db, Db},
};

/// How long a retired key keeps verifying tokens and stays in the JWKS, in
/// seconds. The longest access-token lifetime a client may be given is 24 h and
/// ID tokens live 1 h, so a key retired at time `t` signed nothing that outlives
/// `t + 24 h`; the extra hour covers instances that keep signing with the old key
/// until their next [`KeyRing::reload`] and relying parties' JWKS caches.
pub const RETIRED_KEY_GRACE: i64 = 24 * 3600 + 3600;

/// RSA modulus size: 2048 bits is the floor of RFC 7518 §3.3 and of NIST SP 800-57
/// until 2030; larger keys make every ID token slower to sign for every client.
const RSA_BITS: usize = 2048;

// ---------------------------------------------------------------------------
// Parsed keys
// ---------------------------------------------------------------------------

/// A private key parsed once, ready to sign without re-parsing.
/// `jsonwebtoken::encode` would re-parse the RSA key (`RsaKeyPair::from_der`,
/// with its consistency checks) for every token, so the JWS is assembled here
/// (RFC 7515 §5.1, [`crate::domain::jwt`]).
///
/// Ed25519 signs through aws-lc-rs (AWS-LC, whose x86-64 Ed25519 is
/// s2n-bignum's): 9 µs a signature here against ring's 22 µs, and every
/// client_credentials token is one (bench/README.md, "Ed25519 signing").
/// RSA (ID tokens, logout tokens) stays with ring.
pub(crate) enum Signer {
    Ed25519(aws_lc_rs::signature::Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl Signer {
    /// The JWS signature of `message` (the ASCII `header.payload`).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DomainError> {
        match self {
            Signer::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Signer::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(|_| DomainError::Internal("RSA signing failed".into()))?;
                Ok(signature)
            }
        }
    }
}

/// The public half: what verifies, and what the JWKS publishes.
pub(crate) struct PublicPart {
    /// Built once per key, for `jsonwebtoken::decode`.
    pub(crate) decoding: DecodingKey,
    jwk: serde_json::Value,
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
            use aws_lc_rs::signature::KeyPair as _;
            let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(der)
                .map_err(|e| format!("not an Ed25519 PKCS#8 key: {e}"))?;
            let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
            let decoding = DecodingKey::from_ed_components(&x).map_err(|e| e.to_string())?;
            // RFC 8037 §2 (OKP key type), RFC 7517 §4 (kid, alg, use).
            let jwk = serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": x,
                "kid": kid, "alg": "EdDSA", "use": "sig",
            });
            Ok((Signer::Ed25519(pair), PublicPart { decoding, jwk }))
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
            Ok((Signer::Rsa(pair), PublicPart { decoding, jwk }))
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
    /// The tokens that verified, by SHA-256: presented again, only their
    /// signature check is skipped ([`KeyRing::verify_access_token`]).
    pub(crate) verified: Arc<VerifiedTokens>,
    /// The HMAC-SHA256 key of refresh-token chains: see
    /// [`KeyRing::refresh_chain_mac`].
    chain: Arc<ring::hmac::Key>,
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

    /// The key that signs with `alg` now, with its kid.
    pub(crate) fn signer(&self, alg: SigningAlg) -> Option<(String, Arc<Signer>)> {
        let entry = self.signing_entry(alg)?;
        Some((entry.kid, entry.signer?))
    }

    /// The public key `kid` names if it is ours and usable (active, or retired
    /// less than [`RETIRED_KEY_GRACE`] ago), with the algorithm it is pinned to.
    pub(crate) fn usable_key(&self, kid: &str) -> Option<(SigningAlg, Arc<PublicPart>)> {
        let now = now();
        self.read()
            .iter()
            .find(|e| e.kid == kid && e.is_usable(now))
            .map(|e| (e.alg, e.public.clone()))
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
    crate::domain::instances::announce_change(db).await;
    let kids: Vec<String> = keys.into_iter().map(|k| k.kid).collect();
    tracing::info!(new_kids = ?kids, "rotated the signing keys");
    Ok(kids)
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

    /// A ring with one fresh key per algorithm, kids `{prefix}-{alg}`,
    /// without a database.
    pub(crate) fn in_memory(prefix: &str) -> KeyRing {
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

    /// The same keys under kids `{prefix}-{alg}`, with a cache of their own.
    pub(crate) fn relabelled(&self, prefix: &str) -> KeyRing {
        let entries = self
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
            chain: self.chain.clone(),
        }
    }

    /// Marks every key retired at `at` (in memory only).
    pub(crate) fn retire_all(&self, at: i64) {
        for entry in self.entries.write().unwrap().iter_mut() {
            entry.retired_at = Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
