//! Signing keys on both backends: creation, encryption at rest, signing, the one
//! access-token validation function against hostile tokens, JWKS, rotation,
//! the retirement grace period and reloading.

mod common;

use app::domain::{
    jwt::{
        jsonwebtoken::{self, Algorithm, EncodingKey, Header},
        TokenError,
    },
    keys::{self, KeyRing, MasterKey, SigningAlg, RETIRED_KEY_GRACE},
    store::now,
    Db,
};
use common::{count, TestDb};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

on_both_backends!(
    first_load_creates_one_key_per_algorithm_and_a_second_load_none,
    private_keys_are_stored_encrypted_under_the_master_key,
    wrong_master_key_neither_loads_nor_replaces_the_keys,
    signed_access_token_verifies_and_returns_its_claims,
    access_tokens_with_wrong_claims_are_rejected,
    forged_and_confused_access_tokens_are_rejected,
    jwks_lists_both_keys_with_public_members_only,
    rotation_signs_with_new_keys_and_old_tokens_still_verify,
    keys_retired_beyond_the_grace_period_disappear_after_reload,
    id_token_hint_accepts_expired_rs256_and_rejects_others,
    reload_picks_up_a_rotation_done_by_another_instance,
    racing_first_starts_sign_with_the_newest_key_and_verify_both,
);

const ISS: &str = "https://login.example";
const AUD: &str = "https://api.example";

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
}

fn claims(exp_in: i64) -> Claims {
    Claims {
        iss: ISS.into(),
        aud: AUD.into(),
        sub: "user-1".into(),
        exp: now() + exp_in,
        nbf: None,
    }
}

async fn sql(db: &Db, statement: &str) {
    match db {
        Db::Sqlite(pool) => sqlx::query(statement).execute(pool).await.map(|_| ()),
        Db::Postgres(pool) => sqlx::query(statement).execute(pool).await.map(|_| ()),
    }
    .unwrap();
}

/// (kid, algorithm, private_key, retired_at) of every row, oldest first.
async fn rows(db: &Db) -> Vec<(String, String, String, Option<i64>)> {
    let q =
        "SELECT kid, algorithm, private_key, retired_at FROM signing_keys ORDER BY created_at, kid";
    match db {
        Db::Sqlite(pool) => sqlx::query_as(q).fetch_all(pool).await.unwrap(),
        Db::Postgres(pool) => sqlx::query_as(q).fetch_all(pool).await.unwrap(),
    }
}

/// The decrypted private key (PKCS#8 for EdDSA, PKCS#1 for RS256) of `kid`.
async fn private_der(db: &Db, master: &MasterKey, kid: &str) -> Vec<u8> {
    let row = rows(db).await.into_iter().find(|r| r.0 == kid).unwrap();
    master.decrypt(&row.2).unwrap()
}

/// An encoding key of ours, as an attacker holding the private key would build it.
async fn encoding_key(db: &Db, master: &MasterKey, kid: &str, alg: SigningAlg) -> EncodingKey {
    let der = private_der(db, master, kid).await;
    match alg {
        SigningAlg::EdDSA => EncodingKey::from_ed_der(&der),
        SigningAlg::RS256 => EncodingKey::from_rsa_der(&der),
    }
}

fn header(alg: Algorithm, kid: Option<&str>, typ: Option<&str>) -> Header {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    header.typ = typ.map(str::to_owned);
    header
}

fn jwks_kids(ring: &KeyRing) -> Vec<String> {
    ring.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn jwk(ring: &KeyRing, kid: &str) -> Value {
    ring.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .cloned()
        .unwrap_or_else(|| panic!("{kid} not in the JWKS"))
}

/// Minimal base64url (no padding), so the tests can forge tokens by hand.
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | ((*b as u32) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn unb64(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        acc = (acc << 6) | B64.iter().position(|&b| b == c).expect("base64url") as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// `header.payload.signature` from JSON values and raw signature bytes.
fn compact(header: &Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        b64(signature)
    )
}

async fn first_load_creates_one_key_per_algorithm_and_a_second_load_none(t: TestDb) {
    let master = MasterKey::generate();
    let started = std::time::Instant::now();
    let ring = KeyRing::load_or_create(&t.db, &master).await.unwrap();
    eprintln!(
        "first load_or_create (Ed25519 + RSA-2048 keygen): {:?}",
        started.elapsed()
    );
    let created = rows(&t.db).await;
    assert_eq!(created.len(), 2);
    let mut algs: Vec<&str> = created.iter().map(|r| r.1.as_str()).collect();
    algs.sort();
    assert_eq!(algs, ["EdDSA", "RS256"]);
    assert!(created.iter().all(|r| r.3.is_none()), "both active");
    for alg in SigningAlg::ALL {
        let kid = ring.signing_kid(alg).unwrap();
        assert!(created.iter().any(|r| r.0 == kid && r.1 == alg.as_str()));
        assert_eq!(kid.len(), 16, "12 random bytes, base64url");
    }

    // A second start (or a second instance) creates nothing and signs with the same keys.
    let again = KeyRing::load_or_create(&t.db, &master).await.unwrap();
    assert_eq!(count(&t.db, "signing_keys").await, 2);
    for alg in SigningAlg::ALL {
        assert_eq!(again.signing_kid(alg), ring.signing_kid(alg));
    }
    t.cleanup().await;
}

async fn private_keys_are_stored_encrypted_under_the_master_key(t: TestDb) {
    let master = MasterKey::generate();
    let ring = KeyRing::load_or_create(&t.db, &master).await.unwrap();
    let other = MasterKey::generate();
    for (kid, algorithm, stored, _) in rows(&t.db).await {
        // Not PEM, not base64 of a DER SEQUENCE (which starts "MI" or "MF"/"MC").
        assert!(
            !stored.contains("PRIVATE KEY") && !stored.contains('\n'),
            "{algorithm}"
        );
        assert!(
            !stored.starts_with("MI") && !stored.starts_with("MF"),
            "{algorithm}"
        );
        assert!(
            other.decrypt(&stored).is_err(),
            "{algorithm}: another master key decrypts"
        );
        let der = master.decrypt(&stored).unwrap();
        assert_eq!(der[0], 0x30, "{algorithm}: a DER SEQUENCE");
        // The stored key is the very key the ring signs with: a token signed with
        // the decrypted key verifies against the ring.
        let alg = SigningAlg::parse(&algorithm).unwrap();
        let key = encoding_key(&t.db, &master, &kid, alg).await;
        let token = jsonwebtoken::encode(
            &header(alg.jwt_algorithm(), Some(&kid), Some("at+jwt")),
            &claims(60),
            &key,
        )
        .unwrap();
        let got: Claims = ring.verify_access_token(&token, ISS, AUD).unwrap();
        assert_eq!(got.sub, "user-1");
    }
    t.cleanup().await;
}

async fn wrong_master_key_neither_loads_nor_replaces_the_keys(t: TestDb) {
    let master = MasterKey::generate();
    let ring = KeyRing::load_or_create(&t.db, &master).await.unwrap();
    let err = KeyRing::load_or_create(&t.db, &MasterKey::generate())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wrong master key"), "{err}");
    assert_eq!(
        count(&t.db, "signing_keys").await,
        2,
        "no keys created over the unreadable ones"
    );

    // A reload that meets a key it cannot decrypt fails and keeps the current keys.
    let before = ring.signing_kid(SigningAlg::EdDSA);
    keys::rotate(&t.db, &master).await.unwrap();
    assert!(ring.reload(&t.db, &MasterKey::generate()).await.is_err());
    assert_eq!(ring.signing_kid(SigningAlg::EdDSA), before);
    ring.reload(&t.db, &master).await.unwrap();
    assert_ne!(ring.signing_kid(SigningAlg::EdDSA), before);
    t.cleanup().await;
}

async fn signed_access_token_verifies_and_returns_its_claims(t: TestDb) {
    let ring = KeyRing::load_or_create(&t.db, &MasterKey::generate())
        .await
        .unwrap();
    let sent = claims(300);
    let token = ring.sign(SigningAlg::EdDSA, "at+jwt", &sent).unwrap();
    let head = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(head.alg, Algorithm::EdDSA);
    assert_eq!(head.typ.as_deref(), Some("at+jwt"));
    assert_eq!(head.kid, ring.signing_kid(SigningAlg::EdDSA));
    let got: Claims = ring.verify_access_token(&token, ISS, AUD).unwrap();
    assert_eq!(got, sent);
    // Untyped claims work too, and so does every spelling RFC 9068 §4 allows.
    let raw: Value = ring.verify_access_token(&token, ISS, AUD).unwrap();
    assert_eq!(raw["sub"], "user-1");
    for typ in ["application/at+jwt", "AT+JWT"] {
        let token = ring.sign(SigningAlg::EdDSA, typ, &sent).unwrap();
        assert!(
            ring.verify_access_token::<Claims>(&token, ISS, AUD).is_ok(),
            "{typ}"
        );
    }
    // RS256 access tokens verify the same way; an `nbf` already passed is fine.
    let token = ring
        .sign(
            SigningAlg::RS256,
            "at+jwt",
            &Claims {
                nbf: Some(now() - 5),
                ..claims(300)
            },
        )
        .unwrap();
    assert_eq!(
        ring.verify_access_token::<Claims>(&token, ISS, AUD)
            .unwrap()
            .sub,
        "user-1"
    );
    t.cleanup().await;
}

async fn access_tokens_with_wrong_claims_are_rejected(t: TestDb) {
    let ring = KeyRing::load_or_create(&t.db, &MasterKey::generate())
        .await
        .unwrap();
    let verify = |token: &str| ring.verify_access_token::<Value>(token, ISS, AUD);
    let sign = |claims: &Value| ring.sign(SigningAlg::EdDSA, "at+jwt", claims).unwrap();
    let good = json!({ "iss": ISS, "aud": AUD, "sub": "u", "exp": now() + 300 });
    assert!(verify(&sign(&good)).is_ok());

    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let bad = |why: &str| TokenError::BadSignatureOrClaims(why.into());
    assert_eq!(
        verify(&sign(&with("iss", json!("https://evil.example")))),
        Err(bad("wrong issuer"))
    );
    assert_eq!(
        verify(&sign(&with("aud", json!("https://other-api.example")))),
        Err(bad("wrong audience"))
    );
    // An audience list is fine when it names us, not when it does not.
    assert!(verify(&sign(&with("aud", json!(["x", AUD])))).is_ok());
    assert!(verify(&sign(&with("aud", json!(["x", "y"])))).is_err());
    // Expired one second ago: no leeway.
    assert_eq!(
        verify(&sign(&with("exp", json!(now() - 1)))),
        Err(TokenError::Expired)
    );
    assert_eq!(
        verify(&sign(&with("exp", json!(now() - 3600)))),
        Err(TokenError::Expired)
    );
    assert_eq!(
        verify(&sign(&with("nbf", json!(now() + 60)))),
        Err(bad("not valid yet (nbf)"))
    );
    // Leaving a claim out does not skip its check.
    assert_eq!(
        verify(&sign(&without("exp"))),
        Err(bad("missing claim exp"))
    );
    assert_eq!(
        verify(&sign(&without("iss"))),
        Err(bad("missing claim iss"))
    );
    assert_eq!(
        verify(&sign(&without("aud"))),
        Err(bad("missing claim aud"))
    );
    assert!(verify(&sign(&with("exp", json!("tomorrow")))).is_err());

    // The error never carries the token or its claims.
    let token = sign(&with("iss", json!("https://evil.example")));
    let message = verify(&token).unwrap_err().to_string();
    assert!(
        !message.contains("evil") && !message.contains(&token),
        "{message}"
    );
    t.cleanup().await;
}

async fn forged_and_confused_access_tokens_are_rejected(t: TestDb) {
    let master = MasterKey::generate();
    let ring = KeyRing::load_or_create(&t.db, &master).await.unwrap();
    let ed_kid = ring.signing_kid(SigningAlg::EdDSA).unwrap();
    let rsa_kid = ring.signing_kid(SigningAlg::RS256).unwrap();
    let verify = |token: &str| ring.verify_access_token::<Claims>(token, ISS, AUD);
    let good = ring
        .sign(SigningAlg::EdDSA, "at+jwt", &claims(300))
        .unwrap();
    assert!(verify(&good).is_ok());

    // Tampered payload: another subject under the original signature.
    let parts: Vec<&str> = good.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&unb64(parts[1])).unwrap();
    payload["sub"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(payload.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        verify(&tampered),
        Err(TokenError::BadSignatureOrClaims("bad signature".into()))
    );
    // Garbage and truncations.
    assert_eq!(verify("not-a-jwt"), Err(TokenError::Malformed));
    assert_eq!(
        verify(&format!("{}.{}", parts[0], parts[1])),
        Err(TokenError::Malformed)
    );
    assert!(
        verify(&format!("{}.{}.", parts[0], parts[1])).is_err(),
        "empty signature"
    );

    // alg: none, with a real kid and an empty signature.
    let payload = serde_json::to_value(claims(300)).unwrap();
    let none = compact(
        &json!({ "alg": "none", "typ": "at+jwt", "kid": ed_kid }),
        &payload,
        b"",
    );
    assert_eq!(verify(&none), Err(TokenError::Malformed));
    let none = compact(
        &json!({ "alg": "None", "typ": "at+jwt", "kid": ed_kid }),
        &payload,
        b"",
    );
    assert!(verify(&none).is_err());

    // HS256 keyed with our public keys (the classic algorithm-confusion attack):
    // raw Ed25519 x, its base64url text, RSA n, and the whole JWK text.
    let ed_jwk = jwk(&ring, &ed_kid);
    let rsa_jwk = jwk(&ring, &rsa_kid);
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        (&ed_kid, unb64(ed_jwk["x"].as_str().unwrap())),
        (&ed_kid, ed_jwk["x"].as_str().unwrap().as_bytes().to_vec()),
        (&ed_kid, ed_jwk.to_string().into_bytes()),
        (&rsa_kid, unb64(rsa_jwk["n"].as_str().unwrap())),
        (&rsa_kid, rsa_jwk["n"].as_str().unwrap().as_bytes().to_vec()),
        (&rsa_kid, rsa_jwk.to_string().into_bytes()),
    ];
    for (kid, secret) in secrets {
        let token = jsonwebtoken::encode(
            &header(Algorithm::HS256, Some(kid), Some("at+jwt")),
            &claims(300),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_eq!(
            verify(&token),
            Err(TokenError::WrongAlgorithm),
            "HS256 under {kid}"
        );
    }

    // Real signatures by our own keys, but under the other key's kid.
    let rsa_key = encoding_key(&t.db, &master, &rsa_kid, SigningAlg::RS256).await;
    let ed_key = encoding_key(&t.db, &master, &ed_kid, SigningAlg::EdDSA).await;
    let forge = |alg, kid: Option<&str>, typ: Option<&str>, key: &EncodingKey| {
        jsonwebtoken::encode(&header(alg, kid, typ), &claims(300), key).unwrap()
    };
    // Control: the forging itself is sound; with the right kid these verify.
    assert!(verify(&forge(
        Algorithm::RS256,
        Some(&rsa_kid),
        Some("at+jwt"),
        &rsa_key
    ))
    .is_ok());
    assert!(verify(&forge(
        Algorithm::EdDSA,
        Some(&ed_kid),
        Some("at+jwt"),
        &ed_key
    ))
    .is_ok());
    assert_eq!(
        verify(&forge(
            Algorithm::RS256,
            Some(&ed_kid),
            Some("at+jwt"),
            &rsa_key
        )),
        Err(TokenError::WrongAlgorithm),
        "RS256 token carrying the EdDSA kid"
    );
    assert_eq!(
        verify(&forge(
            Algorithm::EdDSA,
            Some(&rsa_kid),
            Some("at+jwt"),
            &ed_key
        )),
        Err(TokenError::WrongAlgorithm),
        "EdDSA token carrying the RS256 kid"
    );

    // Unknown or missing kid: no fallback to trying our keys.
    assert_eq!(
        verify(&forge(
            Algorithm::EdDSA,
            Some("no-such-kid"),
            Some("at+jwt"),
            &ed_key
        )),
        Err(TokenError::UnknownKey)
    );
    assert_eq!(
        verify(&forge(Algorithm::EdDSA, None, Some("at+jwt"), &ed_key)),
        Err(TokenError::UnknownKey)
    );

    // Not typed as an access token: an ID token (typ JWT) or no typ at all.
    let id_token = ring.sign(SigningAlg::EdDSA, "JWT", &claims(300)).unwrap();
    assert_eq!(verify(&id_token), Err(TokenError::WrongType));
    let id_token = ring.sign(SigningAlg::RS256, "JWT", &claims(300)).unwrap();
    assert_eq!(verify(&id_token), Err(TokenError::WrongType));
    assert_eq!(
        verify(&forge(Algorithm::EdDSA, Some(&ed_kid), None, &ed_key)),
        Err(TokenError::WrongType)
    );
    t.cleanup().await;
}

async fn jwks_lists_both_keys_with_public_members_only(t: TestDb) {
    let ring = KeyRing::load_or_create(&t.db, &MasterKey::generate())
        .await
        .unwrap();
    let jwks = ring.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(jwks.as_object().unwrap().len(), 1, "only `keys`");

    let ed_kid = ring.signing_kid(SigningAlg::EdDSA).unwrap();
    let ed = jwk(&ring, &ed_kid);
    assert_eq!(ed["kty"], "OKP");
    assert_eq!(ed["crv"], "Ed25519");
    assert_eq!(ed["alg"], "EdDSA");
    assert_eq!(ed["use"], "sig");
    assert_eq!(unb64(ed["x"].as_str().unwrap()).len(), 32);
    let mut members: Vec<&str> = ed.as_object().unwrap().keys().map(String::as_str).collect();
    members.sort();
    assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x"]);

    let rsa_kid = ring.signing_kid(SigningAlg::RS256).unwrap();
    let rsa = jwk(&ring, &rsa_kid);
    assert_eq!(rsa["kty"], "RSA");
    assert_eq!(rsa["alg"], "RS256");
    assert_eq!(rsa["use"], "sig");
    assert_eq!(rsa["e"], "AQAB", "65537");
    let n = unb64(rsa["n"].as_str().unwrap());
    assert_eq!(n.len(), 256, "2048-bit modulus, no leading zero");
    assert!(n[0] & 0x80 != 0);
    let mut members: Vec<&str> = rsa
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    members.sort();
    assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);

    for key in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "{private} in {key}");
        }
    }
    t.cleanup().await;
}

async fn rotation_signs_with_new_keys_and_old_tokens_still_verify(t: TestDb) {
    let master = MasterKey::generate();
    let ring = KeyRing::load_or_create(&t.db, &master).await.unwrap();
    let old_kids: Vec<String> = SigningAlg::ALL
        .iter()
        .map(|a| ring.signing_kid(*a).unwrap())
        .collect();
    let old_access = ring
        .sign(SigningAlg::EdDSA, "at+jwt", &claims(300))
        .unwrap();
    let old_rs = ring
        .sign(SigningAlg::RS256, "at+jwt", &claims(300))
        .unwrap();

    let started = std::time::Instant::now();
    let new_kids = keys::rotate(&t.db, &master).await.unwrap();
    eprintln!(
        "rotate (Ed25519 + RSA-2048 keygen): {:?}",
        started.elapsed()
    );
    assert_eq!(new_kids.len(), 2);
    assert!(new_kids.iter().all(|k| !old_kids.contains(k)));
    let all = rows(&t.db).await;
    assert_eq!(all.len(), 4);
    for (kid, _, _, retired_at) in &all {
        assert_eq!(retired_at.is_some(), old_kids.contains(kid), "{kid}");
    }

    ring.reload(&t.db, &master).await.unwrap();
    for (alg, kid) in SigningAlg::ALL.iter().zip(&new_kids) {
        assert_eq!(ring.signing_kid(*alg).as_ref(), Some(kid), "{alg}");
    }
    let new_access = ring
        .sign(SigningAlg::EdDSA, "at+jwt", &claims(300))
        .unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&new_access)
            .unwrap()
            .kid
            .as_ref(),
        Some(&new_kids[0])
    );
    for token in [&old_access, &old_rs, &new_access] {
        assert!(ring.verify_access_token::<Claims>(token, ISS, AUD).is_ok());
    }
    let mut listed = jwks_kids(&ring);
    listed.sort();
    let mut expected: Vec<String> = old_kids.iter().chain(&new_kids).cloned().collect();
    expected.sort();
    assert_eq!(
        listed, expected,
        "retired keys stay published during the grace period"
    );
    // Newest first: relying parties that look at the first key find the signing one.
    assert!(new_kids.contains(&jwks_kids(&ring)[0]));
    t.cleanup().await;
}

async fn keys_retired_beyond_the_grace_period_disappear_after_reload(t: TestDb) {
    let master = MasterKey::generate();
    let ring = KeyRing::load_or_create(&t.db, &master).await.unwrap();
    let old_ed = ring.signing_kid(SigningAlg::EdDSA).unwrap();
    let old_rsa = ring.signing_kid(SigningAlg::RS256).unwrap();
    let old_token = ring
        .sign(SigningAlg::EdDSA, "at+jwt", &claims(300))
        .unwrap();
    keys::rotate(&t.db, &master).await.unwrap();

    // The EdDSA key was retired just inside the grace period, the RSA key just beyond it.
    let inside = now() - RETIRED_KEY_GRACE + 120;
    let beyond = now() - RETIRED_KEY_GRACE - 1;
    sql(
        &t.db,
        &format!("UPDATE signing_keys SET retired_at = {inside} WHERE kid = '{old_ed}'"),
    )
    .await;
    sql(
        &t.db,
        &format!("UPDATE signing_keys SET retired_at = {beyond} WHERE kid = '{old_rsa}'"),
    )
    .await;
    ring.reload(&t.db, &master).await.unwrap();
    let listed = jwks_kids(&ring);
    assert_eq!(listed.len(), 3);
    assert!(
        listed.contains(&old_ed) && !listed.contains(&old_rsa),
        "{listed:?}"
    );
    assert!(ring
        .verify_access_token::<Claims>(&old_token, ISS, AUD)
        .is_ok());

    // Once the EdDSA key is past the grace period too, its tokens stop verifying.
    sql(
        &t.db,
        &format!("UPDATE signing_keys SET retired_at = {beyond} WHERE kid = '{old_ed}'"),
    )
    .await;
    ring.reload(&t.db, &master).await.unwrap();
    assert_eq!(jwks_kids(&ring).len(), 2);
    assert!(!jwks_kids(&ring).contains(&old_ed));
    assert_eq!(
        ring.verify_access_token::<Claims>(&old_token, ISS, AUD),
        Err(TokenError::UnknownKey)
    );
    // A fresh instance does not load them either, and does not create keys.
    let fresh = KeyRing::load_or_create(&t.db, &master).await.unwrap();
    assert_eq!(fresh.jwks(), ring.jwks());
    assert_eq!(count(&t.db, "signing_keys").await, 4);
    t.cleanup().await;
}

async fn id_token_hint_accepts_expired_rs256_and_rejects_others(t: TestDb) {
    let master = MasterKey::generate();
    let ring = KeyRing::load_or_create(&t.db, &master).await.unwrap();
    let id_claims = json!({ "iss": ISS, "aud": "client-1", "sub": "user-1", "exp": now() - 7200 });
    let hint = ring.sign(SigningAlg::RS256, "JWT", &id_claims).unwrap();
    let got: Value = ring.verify_id_token_hint(&hint, ISS).unwrap();
    assert_eq!(got["aud"], "client-1");
    assert_eq!(got["sub"], "user-1");

    // Signed with EdDSA: not one of our ID tokens.
    let ed = ring.sign(SigningAlg::EdDSA, "JWT", &id_claims).unwrap();
    assert_eq!(
        ring.verify_id_token_hint::<Value>(&ed, ISS),
        Err(TokenError::WrongAlgorithm)
    );
    // Tampered.
    let parts: Vec<&str> = hint.split('.').collect();
    let forged = json!({ "iss": ISS, "aud": "client-1", "sub": "admin", "exp": now() - 7200 });
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(forged.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        ring.verify_id_token_hint::<Value>(&tampered, ISS),
        Err(TokenError::BadSignatureOrClaims("bad signature".into()))
    );
    // Another issuer, an unknown kid, an access token, HS256 with our RSA modulus.
    assert!(ring
        .verify_id_token_hint::<Value>(&hint, "https://evil.example")
        .is_err());
    let rsa_kid = ring.signing_kid(SigningAlg::RS256).unwrap();
    let rsa_key = encoding_key(&t.db, &master, &rsa_kid, SigningAlg::RS256).await;
    let unknown = jsonwebtoken::encode(
        &header(Algorithm::RS256, Some("nope"), Some("JWT")),
        &id_claims,
        &rsa_key,
    )
    .unwrap();
    assert_eq!(
        ring.verify_id_token_hint::<Value>(&unknown, ISS),
        Err(TokenError::UnknownKey)
    );
    let access = ring.sign(SigningAlg::RS256, "at+jwt", &id_claims).unwrap();
    assert_eq!(
        ring.verify_id_token_hint::<Value>(&access, ISS),
        Err(TokenError::WrongType)
    );
    let n = unb64(jwk(&ring, &rsa_kid)["n"].as_str().unwrap());
    let hs = jsonwebtoken::encode(
        &header(Algorithm::HS256, Some(&rsa_kid), Some("JWT")),
        &id_claims,
        &EncodingKey::from_secret(&n),
    )
    .unwrap();
    assert_eq!(
        ring.verify_id_token_hint::<Value>(&hs, ISS),
        Err(TokenError::WrongAlgorithm)
    );
    // A hint without an issuer is not one of ours.
    let no_iss = ring
        .sign(
            SigningAlg::RS256,
            "JWT",
            &json!({ "aud": "client-1", "sub": "u" }),
        )
        .unwrap();
    assert!(ring.verify_id_token_hint::<Value>(&no_iss, ISS).is_err());
    t.cleanup().await;
}

async fn reload_picks_up_a_rotation_done_by_another_instance(t: TestDb) {
    let master = MasterKey::generate();
    let a = KeyRing::load_or_create(&t.db, &master).await.unwrap();
    let b = KeyRing::load_or_create(&t.db, &master).await.unwrap();
    let shared = a.clone();
    let token_by_a = a.sign(SigningAlg::EdDSA, "at+jwt", &claims(300)).unwrap();

    // `latchkey keys rotate` from the CLI: another process, another ring.
    let new_kids = keys::rotate(&t.db, &master).await.unwrap();
    assert_ne!(
        a.signing_kid(SigningAlg::EdDSA).as_ref(),
        Some(&new_kids[0]),
        "not before reload"
    );
    b.reload(&t.db, &master).await.unwrap();
    assert_eq!(
        b.signing_kid(SigningAlg::EdDSA).as_ref(),
        Some(&new_kids[0])
    );
    assert_eq!(
        b.signing_kid(SigningAlg::RS256).as_ref(),
        Some(&new_kids[1])
    );
    // Until it reloads, `a` still signs with its (now retired) key; `b` accepts those tokens.
    let late = a.sign(SigningAlg::EdDSA, "at+jwt", &claims(300)).unwrap();
    for token in [&token_by_a, &late] {
        assert!(b.verify_access_token::<Claims>(token, ISS, AUD).is_ok());
    }
    // Tokens of the new keys verify on `a` only after its reload, which every clone sees.
    let by_b = b.sign(SigningAlg::EdDSA, "at+jwt", &claims(300)).unwrap();
    assert_eq!(
        a.verify_access_token::<Claims>(&by_b, ISS, AUD),
        Err(TokenError::UnknownKey)
    );
    a.reload(&t.db, &master).await.unwrap();
    assert_eq!(
        shared.signing_kid(SigningAlg::EdDSA).as_ref(),
        Some(&new_kids[0])
    );
    assert!(shared
        .verify_access_token::<Claims>(&by_b, ISS, AUD)
        .is_ok());
    assert_eq!(a.jwks(), b.jwks());
    t.cleanup().await;
}

async fn racing_first_starts_sign_with_the_newest_key_and_verify_both(t: TestDb) {
    let master = MasterKey::generate();
    let ring = KeyRing::load_or_create(&t.db, &master).await.unwrap();
    let first = ring
        .sign(SigningAlg::EdDSA, "at+jwt", &claims(300))
        .unwrap();
    // Two instances that both found no key: two active keys per algorithm.
    keys::rotate(&t.db, &master).await.unwrap();
    sql(&t.db, "UPDATE signing_keys SET retired_at = NULL").await;
    sql(
        &t.db,
        &format!("UPDATE signing_keys SET created_at = {}", now()),
    )
    .await;
    let ring = KeyRing::load_or_create(&t.db, &master).await.unwrap();
    assert_eq!(count(&t.db, "signing_keys").await, 4, "nothing created");
    let all = rows(&t.db).await;
    for alg in SigningAlg::ALL {
        // Same created_at: the highest kid signs.
        let highest = all
            .iter()
            .filter(|r| r.1 == alg.as_str())
            .map(|r| r.0.clone())
            .max();
        assert_eq!(ring.signing_kid(alg), highest, "{alg}");
    }
    assert_eq!(jwks_kids(&ring).len(), 4);
    assert!(ring.verify_access_token::<Claims>(&first, ISS, AUD).is_ok());
    let second = ring
        .sign(SigningAlg::EdDSA, "at+jwt", &claims(300))
        .unwrap();
    assert!(ring
        .verify_access_token::<Claims>(&second, ISS, AUD)
        .is_ok());
    t.cleanup().await;
}
