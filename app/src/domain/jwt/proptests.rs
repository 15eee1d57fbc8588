//! Property tests of JWT validation ([`KeyRing::verify_access_token`],
//! [`KeyRing::verify_id_token_hint`]): a token we signed verifies; random
//! text, a truncated or extended token, one signed by another key (under our
//! `kid` or another), one whose header or payload was changed, and one whose
//! header breaks the rules (`alg` not the key's, `typ` of the other kind of
//! token) — even when signed by our own key — never do. `PROPTEST_CASES`
//! raises the case count.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::domain::store::now;

const ISS: &str = "https://login.example";
const AUD: &str = "https://api.example";

/// Ours; an attacker's keys under our very kids; the attacker's keys
/// under kids of their own.
fn rings() -> &'static (KeyRing, KeyRing, KeyRing) {
    static RINGS: OnceLock<(KeyRing, KeyRing, KeyRing)> = OnceLock::new();
    RINGS.get_or_init(|| {
        let impostor = KeyRing::in_memory("ours");
        let stranger = impostor.relabelled("theirs");
        (KeyRing::in_memory("ours"), impostor, stranger)
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
    let (_, signer) = keys.signer(alg).unwrap();
    let message = format!("{}.{}", b64(header), b64(payload));
    let signature = signer.sign(message.as_bytes()).unwrap();
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
    #![proptest_config(crate::domain::proptest_config(64))]

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
        let jwk = super::tests::published_jwk(ours(), alg);
        for secret in [jwk.to_string().into_bytes(), super::tests::raw_public_key(&jwk)] {
            let header = json!({ "alg": "HS256", "kid": kid(alg), "typ": typ });
            let token = super::tests::hs256(&header, &claims, &secret);
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
