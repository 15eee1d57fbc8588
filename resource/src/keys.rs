//! The issuer's signing keys (its JWKS, RFC 7517 §5), by `kid`, each pinned to
//! one algorithm.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    jwk::{AlgorithmParameters, EllipticCurve, Jwk},
    Algorithm, DecodingKey,
};

/// A verification key and the one algorithm tokens signed with it may name.
pub(crate) struct VerifyKey {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

type KeyMap = HashMap<String, Arc<VerifyKey>>;

/// The current JWKS, swapped whole on every fetch.
pub(crate) struct KeyCache {
    keys: RwLock<Arc<KeyMap>>,
    /// Held while fetching; holds when the last fetch for an unknown kid
    /// started (None: never).
    pub fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl KeyCache {
    pub fn new() -> Self {
        KeyCache {
            keys: RwLock::new(Arc::new(HashMap::new())),
            fetch: tokio::sync::Mutex::new(None),
        }
    }

    pub fn get(&self, kid: &str) -> Option<Arc<VerifyKey>> {
        self.read().get(kid).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> Arc<KeyMap> {
        // Writers only ever assign a whole map: a poisoned lock holds a valid one.
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, keys: KeyMap) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }
}

/// Whether a fetch may start now, given when the last one did.
pub(crate) fn may_refetch(last: Option<Instant>, interval: Duration) -> bool {
    last.is_none_or(|at| at.elapsed() >= interval)
}

/// The usable keys of a JWKS document, by `kid`: keys for signatures (`use`
/// absent or `sig`) with a `kid` and an asymmetric algorithm that fits the key
/// type — the JWK's `alg`, or EdDSA for an Ed25519 key without one. Anything
/// else (symmetric keys, unknown types or algorithms) is skipped: it can never
/// verify a token. Returns the keys and how many were skipped.
pub(crate) fn parse_jwks(document: &serde_json::Value) -> Result<(KeyMap, usize), String> {
    let keys = document
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("the JWKS has no \"keys\" array")?;
    let mut usable = HashMap::new();
    let mut skipped = 0;
    for value in keys {
        match parse_key(value) {
            Some((kid, key)) => {
                usable.insert(kid, Arc::new(key));
            }
            None => skipped += 1,
        }
    }
    Ok((usable, skipped))
}

fn parse_key(value: &serde_json::Value) -> Option<(String, VerifyKey)> {
    let kid = value.get("kid")?.as_str()?.to_owned();
    if value.get("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
    let alg = match value.get("alg") {
        Some(alg) => alg.as_str()?.parse::<Algorithm>().ok()?,
        None => match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                Algorithm::EdDSA
            }
            _ => return None,
        },
    };
    let fits = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (alg, &ec.curve),
            (Algorithm::ES256, EllipticCurve::P256) | (Algorithm::ES384, EllipticCurve::P384)
        ),
        AlgorithmParameters::OctetKeyPair(okp) => {
            alg == Algorithm::EdDSA && okp.curve == EllipticCurve::Ed25519
        }
        // A symmetric key in a public JWKS would let anyone sign.
        AlgorithmParameters::OctetKey(_) => false,
    };
    if !fits {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, VerifyKey { alg, key }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn keeps_signature_keys_with_a_fitting_algorithm() {
        let jwks = json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "ed", "alg": "EdDSA", "use": "sig"},
            {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "ed-no-alg"},
            {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "ed-as-rsa", "alg": "RS256"},
            {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "ed-enc", "alg": "EdDSA", "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": X, "alg": "EdDSA"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
            {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "none", "alg": "none"},
            {"kty": "weird", "kid": "weird", "alg": "EdDSA"},
        ]});
        let (keys, skipped) = parse_jwks(&jwks).unwrap();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort();
        assert_eq!(kids, ["ed", "ed-no-alg"]);
        assert_eq!(skipped, 6);
        assert_eq!(keys["ed-no-alg"].alg, Algorithm::EdDSA);
        assert!(parse_jwks(&json!({"nokeys": []})).is_err());
    }

    #[test]
    fn refetch_waits_for_the_interval() {
        let interval = Duration::from_secs(10);
        assert!(may_refetch(None, interval));
        assert!(!may_refetch(Some(Instant::now()), interval));
        assert!(may_refetch(
            Some(Instant::now() - Duration::from_secs(11)),
            interval
        ));
    }
}
