//! JWS (RFC 7515) signing and verification with the [`KeyRing`]'s keys, and
//! why a token is refused ([`TokenError`]).
//!
//! * [`KeyRing::sign`] assembles the JWS itself with keys parsed once
//!   (`jsonwebtoken::encode` re-parses and re-checks the RSA key on every call).
//! * [`KeyRing::verify_access_token`] is the only place a JWT access token is
//!   accepted: explicit type (RFC 9068 §4), known `kid`, the algorithm pinned to
//!   that key (RFC 8725 §3.1), issuer, audience and expiry.
//!   [`KeyRing::verify_id_token_hint`] accepts one of our ID tokens as the
//!   `id_token_hint` of RP-initiated logout. Both are one function,
//!   [`KeyRing::verify`], under the [`Rules`] of each kind of token:
//!   `jsonwebtoken::decode` with each key's `DecodingKey` built once, and a
//!   token that verified before has only its signature check skipped.

use std::{collections::HashSet, sync::RwLock};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{errors::ErrorKind, Validation};
use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};

use super::{
    error::{DomainError, DomainResult},
    keys::{KeyRing, PublicPart, SigningAlg},
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

/// SHA-256 of the tokens that verified, up to [`VERIFIED_CAPACITY`]: see
/// [`KeyRing::verify`].
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
    /// A token that verified is remembered (its SHA-256, up to 50,000 tokens):
    /// presented again, only the signature check is skipped — header, key,
    /// claims and expiry are checked anew ([`KeyRing::verify`]).
    pub fn verify_access_token<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<T, TokenError> {
        self.verify(token, &Rules::access_token(issuer, Some(audience)))
    }

    /// [`KeyRing::verify_access_token`] for a token of any audience (it must
    /// still name one): introspection and RFC 7009 revocation, which decide
    /// who may see or revoke it by other rules.
    pub fn verify_access_token_any_audience<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<T, TokenError> {
        self.verify(token, &Rules::access_token(issuer, None))
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
        self.verify(
            token,
            &Rules {
                access_token: false,
                algs: &[SigningAlg::RS256],
                required: &["iss"],
                check_time: false,
                issuer,
                audience: None,
            },
        )
    }

    /// The one JWT verification: every token Latchkey accepts passes here,
    /// under the [`Rules`] of its kind. In order, each failure with its
    /// [`TokenError`]:
    ///
    /// 1. the header parses (an `alg` outside RFC 7518's list, `none`
    ///    included, does not): [`TokenError::Malformed`];
    /// 2. `typ` says at+jwt exactly when an access token is expected:
    ///    [`TokenError::WrongType`];
    /// 3. `kid` names one of our keys, active or retired within the grace:
    ///    [`TokenError::UnknownKey`];
    /// 4. that key's algorithm is one the rules allow and the header's `alg`
    ///    is that algorithm (no HMAC keyed with our public key, no swap):
    ///    [`TokenError::WrongAlgorithm`];
    /// 5. `jsonwebtoken::decode` with that key's cached `DecodingKey`: the
    ///    signature, the required claims, `exp` and `nbf` (when the rules
    ///    check time; leeway 0), `iss`, `aud` (when the rules name one).
    ///
    /// A token that passed is remembered by its SHA-256 (up to 50,000 of
    /// them; introspection is asked about one token many times). Presented
    /// again — the same bytes, so a changed byte anywhere is a new token —
    /// steps 1–4 run as before and step 5 runs with the signature check
    /// alone switched off.
    fn verify<T: DeserializeOwned>(&self, token: &str, rules: &Rules) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.typ.as_deref().is_some_and(is_access_token_type) != rules.access_token {
            return Err(TokenError::WrongType);
        }
        let (alg, key) = self.key_for(header.kid.as_deref())?;
        if !rules.algs.contains(&alg) || header.alg != alg.jwt_algorithm() {
            return Err(TokenError::WrongAlgorithm);
        }
        let mut validation = Validation::new(alg.jwt_algorithm());
        validation.leeway = 0;
        validation.validate_exp = rules.check_time;
        validation.validate_nbf = rules.check_time;
        validation.set_required_spec_claims(rules.required);
        validation.set_issuer(&[rules.issuer]);
        match rules.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = self.verified.contains(&digest);
        if known {
            validation.insecure_disable_signature_validation();
        }
        let claims = jsonwebtoken::decode::<T>(token, &key.decoding, &validation)
            .map_err(token_error)?
            .claims;
        if !known {
            self.verified.insert(digest);
        }
        Ok(claims)
    }
}

/// What a token must be to pass [`KeyRing::verify`]: the rules of one kind
/// of token.
struct Rules<'a> {
    /// `typ` must say at+jwt (access tokens, RFC 9068 §4) or must not (ID
    /// tokens, which must never pass as access tokens).
    access_token: bool,
    /// The algorithms of the keys that may have signed it.
    algs: &'a [SigningAlg],
    /// The claims that must be present (and of their type).
    required: &'a [&'a str],
    /// Whether `exp` and `nbf` are checked (with no leeway).
    check_time: bool,
    /// The `iss` it must name (a string equal to it, or an array of strings
    /// holding it).
    issuer: &'a str,
    /// The `aud` it must name, likewise; `None`: any (or none, unless `aud`
    /// is required).
    audience: Option<&'a str>,
}

impl<'a> Rules<'a> {
    /// An access token: `typ` at+jwt, signed by any of our keys, `exp`, `iss`
    /// and `aud` required, time checked.
    fn access_token(issuer: &'a str, audience: Option<&'a str>) -> Rules<'a> {
        Rules {
            access_token: true,
            algs: &SigningAlg::ALL,
            required: &["exp", "iss", "aud"],
            check_time: true,
            issuer,
            audience,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::domain::store::now;

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

    const ISS: &str = "https://login.example";
    const AUD: &str = "https://api.example";

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A JWS over exactly this header and these claims, signed with `ring`'s
    /// key of `alg` whatever the header says.
    fn forge(ring: &KeyRing, alg: SigningAlg, header: &Value, claims: &Value) -> String {
        let (_, signer) = ring.signer(alg).unwrap();
        let message = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = signer.sign(message.as_bytes()).unwrap();
        format!("{message}.{}", b64(signature))
    }

    /// The JWK `ring` publishes for its key of `alg`.
    pub(super) fn published_jwk(ring: &KeyRing, alg: SigningAlg) -> Value {
        let jwks = ring.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        keys.iter()
            .find(|k| k["alg"] == alg.as_str())
            .unwrap()
            .clone()
    }

    /// The raw public key of a JWK: `x` (Ed25519) or `n` (RSA).
    pub(super) fn raw_public_key(jwk: &Value) -> Vec<u8> {
        let raw = jwk["x"].as_str().or(jwk["n"].as_str()).unwrap();
        URL_SAFE_NO_PAD.decode(raw).unwrap()
    }

    /// An HS256 JWS keyed with `secret` (the algorithm confusion attack when
    /// the secret is our public key).
    pub(super) fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
        let message = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        format!(
            "{message}.{}",
            b64(ring::hmac::sign(&key, message.as_bytes()))
        )
    }

    /// `token` with byte `i` replaced by another base64url character.
    fn changed(token: &str, i: usize) -> String {
        let mut bytes = token.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }

    type Case = (&'static str, String, Result<(), TokenError>);

    /// Runs each case twice: the second time, a token that verified is
    /// remembered and its signature not checked again.
    fn check(cases: &[Case], verify: impl Fn(&str) -> Result<Value, TokenError>) {
        for time in ["first", "again"] {
            for (what, token, expected) in cases {
                assert_eq!(&verify(token).map(drop), expected, "{time}: {what}");
            }
        }
    }

    /// Each rule of [`KeyRing::verify`] refuses an access token with its
    /// own reason.
    #[test]
    fn each_access_token_refusal_has_its_reason() {
        use TokenError::{Expired, Malformed, UnknownKey, WrongAlgorithm, WrongType};
        let ring = ring_in_memory();
        let (t, ed, rs) = (now(), SigningAlg::EdDSA, SigningAlg::RS256);
        let good = json!({ "iss": ISS, "aud": AUD, "sub": "u", "exp": t + 300 });
        let with = |name: &str, value: Value| {
            let mut claims = good.clone();
            claims[name] = value;
            claims
        };
        let without = |name: &str| {
            let mut claims = good.clone();
            claims.as_object_mut().unwrap().remove(name);
            claims
        };
        let at = |claims: Value| ring.sign(ed, "at+jwt", &claims).unwrap();
        let signed = |alg, typ| ring.sign(alg, typ, &good).unwrap();
        let forged = |alg, header: Value| forge(&ring, alg, &header, &good);
        let head = |alg: &str, kid: &str| json!({ "alg": alg, "kid": kid, "typ": "at+jwt" });
        let unsigned =
            |header: Value| format!("{}.{}.", b64(header.to_string()), b64(good.to_string()));
        let hs256_with = |alg| {
            let public_key = raw_public_key(&published_jwk(&ring, alg));
            hs256(&head("HS256", &format!("kid-{alg}")), &good, &public_key)
        };
        let bad = |why: &str| Err(TokenError::BadSignatureOrClaims(why.into()));
        let genuine = at(good.clone());
        let in_signature = genuine.rfind('.').unwrap() + 10;
        let in_payload = genuine.find('.').unwrap() + 10;
        let by_impostor = KeyRing::in_memory("kid").sign(ed, "at+jwt", &good).unwrap();
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("genuine EdDSA", genuine.clone(), Ok(())),
            ("genuine RS256", signed(rs, "at+jwt"), Ok(())),
            ("typ JWT", signed(ed, "JWT"), Err(WrongType)),
            ("no typ", forged(ed, json!({ "alg": "EdDSA", "kid": "kid-EdDSA" })), Err(WrongType)),
            ("unknown kid", forged(ed, head("EdDSA", "kid-other")), Err(UnknownKey)),
            ("no kid", forged(ed, json!({ "alg": "EdDSA", "typ": "at+jwt" })), Err(UnknownKey)),
            ("alg RS256, EdDSA key", forged(ed, head("RS256", "kid-EdDSA")), Err(WrongAlgorithm)),
            ("alg EdDSA, RS256 key", forged(rs, head("EdDSA", "kid-RS256")), Err(WrongAlgorithm)),
            ("alg none", unsigned(head("none", "kid-EdDSA")), Err(Malformed)),
            ("HS256 keyed with the EdDSA public key", hs256_with(ed), Err(WrongAlgorithm)),
            ("HS256 keyed with the RS256 public key", hs256_with(rs), Err(WrongAlgorithm)),
            ("expired 1 s ago", at(with("exp", json!(t - 1))), Err(Expired)),
            ("expires in 1 s", at(with("exp", json!(t + 1))), Ok(())),
            ("no exp", at(without("exp")), bad("missing claim exp")),
            ("exp not a number", at(with("exp", json!("soon"))), bad("missing claim exp")),
            ("no iss", at(without("iss")), bad("missing claim iss")),
            ("no aud", at(without("aud")), bad("missing claim aud")),
            ("another iss", at(with("iss", json!("https://evil.example"))), bad("wrong issuer")),
            ("another aud", at(with("aud", json!("https://x.example"))), bad("wrong audience")),
            ("aud an array naming ours", at(with("aud", json!(["x", AUD]))), Ok(())),
            ("nbf in 60 s", at(with("nbf", json!(t + 60))), bad("not valid yet (nbf)")),
            ("nbf 5 s ago", at(with("nbf", json!(t - 5))), Ok(())),
            ("another key under our kid", by_impostor, bad("bad signature")),
            ("a signature byte changed", changed(&genuine, in_signature), bad("bad signature")),
            ("a payload byte changed", changed(&genuine, in_payload), bad("bad signature")),
            ("signature cut short", genuine[..genuine.len() - 1].to_string(), Err(Malformed)),
            ("not a JWT", "not-a-jwt".into(), Err(Malformed)),
        ];
        check(&cases, |token| ring.verify_access_token(token, ISS, AUD));
        // Remembered, then changed by one character: verified afresh, refused.
        for i in [in_signature, in_payload, genuine.len() - 2] {
            let forged = changed(&genuine, i);
            assert!(
                ring.verify_access_token::<Value>(&forged, ISS, AUD)
                    .is_err(),
                "{i}"
            );
        }
        // Any audience, as long as one is named.
        #[rustfmt::skip]
        let any_audience: Vec<Case> = vec![
            ("another aud", at(with("aud", json!("https://x.example"))), Ok(())),
            ("no aud", at(without("aud")), bad("missing claim aud")),
            ("another iss", at(with("iss", json!("https://evil.example"))), bad("wrong issuer")),
            ("expired 1 s ago", at(with("exp", json!(t - 1))), Err(Expired)),
        ];
        check(&any_audience, |token| {
            ring.verify_access_token_any_audience(token, ISS)
        });
    }

    /// An ID token hint: RS256 and not at+jwt; its issuer checked, its
    /// expiry and audience not.
    #[test]
    fn each_id_token_hint_refusal_has_its_reason() {
        use TokenError::{UnknownKey, WrongAlgorithm, WrongType};
        let ring = ring_in_memory();
        let (t, ed, rs) = (now(), SigningAlg::EdDSA, SigningAlg::RS256);
        let good = json!({ "iss": ISS, "aud": "client-1", "sub": "u", "exp": t - 3600 });
        let id = |alg, claims: Value| ring.sign(alg, "JWT", &claims).unwrap();
        let head = |alg: &str, kid: &str| json!({ "alg": alg, "kid": kid, "typ": "JWT" });
        let rsa_key = raw_public_key(&published_jwk(&ring, rs));
        let confused = hs256(&head("HS256", "kid-RS256"), &good, &rsa_key);
        let bad = |why: &str| Err(TokenError::BadSignatureOrClaims(why.into()));
        let genuine = id(rs, good.clone());
        let tampered = changed(&genuine, genuine.len() - 10);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("genuine, expired an hour ago", genuine.clone(), Ok(())),
            ("no exp, no aud", id(rs, json!({ "iss": ISS, "sub": "u" })), Ok(())),
            ("nbf in 60 s", id(rs, json!({ "iss": ISS, "nbf": t + 60 })), Ok(())),
            ("an access token", ring.sign(rs, "at+jwt", &good).unwrap(), Err(WrongType)),
            ("signed with EdDSA", id(ed, good.clone()), Err(WrongAlgorithm)),
            ("HS256 keyed with the RS256 public key", confused, Err(WrongAlgorithm)),
            ("unknown kid", forge(&ring, rs, &head("RS256", "kid-other"), &good), Err(UnknownKey)),
            ("no iss", id(rs, json!({ "aud": "client-1", "sub": "u" })), bad("missing claim iss")),
            ("another iss", id(rs, json!({ "iss": "https://evil.example" })), bad("wrong issuer")),
            ("a signature byte changed", tampered, bad("bad signature")),
        ];
        check(&cases, |token| ring.verify_id_token_hint(token, ISS));
    }

    #[test]
    fn a_remembered_signature_still_needs_its_key_and_its_bytes() {
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
