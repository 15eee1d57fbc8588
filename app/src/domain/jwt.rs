//! JWS (RFC 7515) signing and verification with the [`KeyRing`]'s keys, and
//! why a token is refused ([`TokenError`]).
//!
//! * [`KeyRing::sign`] assembles the JWS itself with keys parsed once
//!   (`jsonwebtoken::encode` re-parses and re-checks the RSA key on every call).
//! * [`KeyRing::verify_access_token`] is the only place a JWT access token is
//!   accepted: explicit type (RFC 9068 §4), known `kid`, the algorithm pinned to
//!   that key (RFC 8725 §3.1), issuer, audience and expiry.
//!   [`KeyRing::verify_id_token_hint`] accepts one of our ID tokens as the
//!   `id_token_hint` of RP-initiated logout.

use std::{collections::HashSet, sync::RwLock};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{errors::ErrorKind, Algorithm, Validation};
use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};

use super::{
    error::{DomainError, DomainResult},
    keys::{KeyRing, PublicPart, SigningAlg},
    store::now,
};

/// Re-exported so callers (and the tests that forge hostile tokens) use the very
/// version the key ring validates with.
pub use jsonwebtoken;

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
// Verified signatures
// ---------------------------------------------------------------------------

/// How many verified signatures [`KeyRing`] remembers; when full it forgets
/// them all (they are verified again on their next use).
const VERIFIED_CAPACITY: usize = 50_000;

/// SHA-256 of the tokens whose signature verified, up to
/// [`VERIFIED_CAPACITY`]: see [`KeyRing::verify_access_token`].
#[derive(Default)]
pub(crate) struct VerifiedTokens(RwLock<HashSet<[u8; 32]>>);

impl VerifiedTokens {
    fn contains(&self, digest: &[u8; 32]) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(digest)
    }

    fn insert(&self, digest: [u8; 32]) {
        let mut verified = self.0.write().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(digest);
    }
}

// ---------------------------------------------------------------------------
// Signing and verification
// ---------------------------------------------------------------------------

impl KeyRing {
    /// Signs `claims` as a JWS compact serialization (RFC 7515 §7.1) with the
    /// signing key of `alg`; the header carries `alg`, `kid` and `typ` (`at+jwt`
    /// for access tokens per RFC 9068 §2.1, `JWT` for ID tokens).
    pub fn sign(
        &self,
        alg: SigningAlg,
        typ: &str,
        claims: &impl Serialize,
    ) -> DomainResult<String> {
        let (kid, signer) = self
            .signer(alg)
            .ok_or_else(|| DomainError::Internal(format!("no active {alg} signing key")))?;
        let header = serde_json::json!({ "alg": alg.as_str(), "kid": kid, "typ": typ });
        let payload = serde_json::to_vec(claims)
            .map_err(|e| DomainError::Internal(format!("claims do not serialize: {e}")))?;
        let mut token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = signer.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(token)
    }

    /// The verification key a token header names, if it is ours and usable, with
    /// the algorithm that key is pinned to.
    fn key_for(
        &self,
        kid: Option<&str>,
    ) -> Result<(SigningAlg, std::sync::Arc<PublicPart>), TokenError> {
        kid.and_then(|kid| self.usable_key(kid))
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
        if !self.verified.contains(&digest) {
            let signature = URL_SAFE_NO_PAD
                .decode(signature)
                .map_err(|_| TokenError::Malformed)?;
            if !key.verifier.verify(message.as_bytes(), &signature) {
                return Err(TokenError::BadSignatureOrClaims("bad signature".into()));
            }
            self.verified.insert(digest);
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A ring with one fresh key per algorithm, without a database.
    fn ring_in_memory() -> KeyRing {
        KeyRing::in_memory("kid")
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
        ring.retire_all(1);
        assert_eq!(
            ring.verify_access_token::<Value>(&token, ISS, ISS),
            Err(TokenError::UnknownKey)
        );
    }
}

#[cfg(test)]
mod proptests;
