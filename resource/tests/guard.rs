//! The guard against a fake Latchkey over real HTTP: token checks, the
//! revocation feed (snapshot, stream, reconnection), staleness and its
//! fallbacks, scopes.

mod common;

use std::{
    collections::HashSet,
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::*;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latchkey_resource::{Fallback, Guard, Reason, RevocationKind};
use serde_json::json;

fn invalid(reason: Reason) -> String {
    format!(
        "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
        reason.description()
    )
}

#[tokio::test]
async fn a_valid_token_is_accepted_and_its_claims_reach_the_handler() {
    let fake = FakeIssuer::start().await;
    let guard = fake.ready_guard().await;
    let api = serve_api(&guard).await;
    let token = fake.sign(&fake.claims());
    let answer = call(&format!("{api}/notes"), Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["sub"], "alice");
    assert_eq!(answer.body["introspected"], false);
    // The full media type and any case are accepted too (RFC 9068 §4).
    let kid = fake.state().keys[0].kid.clone();
    for typ in ["application/at+jwt", "AT+JWT"] {
        let token = fake.sign_with(&kid, Some(typ), &fake.claims());
        assert_eq!(
            call(&format!("{api}/me"), Some(&token)).await.status,
            StatusCode::OK,
            "{typ}"
        );
    }
    // `aud` as an array naming us.
    let mut claims = fake.claims();
    claims["aud"] = json!(["https://other.test", AUDIENCE]);
    let answer = call(&format!("{api}/me"), Some(&fake.sign(&claims))).await;
    assert_eq!(answer.status, StatusCode::OK);
    // Through `validate` too.
    let validated = guard.validate(&token).await.unwrap();
    assert_eq!(validated.client_id, "web-app");
    assert!(validated.has_scope("notes:read"));
    assert_eq!(validated.aud, [AUDIENCE]);
}

#[tokio::test]
async fn no_token_gets_a_bare_challenge() {
    let fake = FakeIssuer::start().await;
    let guard = fake.ready_guard().await;
    let api = serve_api(&guard).await;
    let answer = call(&format!("{api}/notes"), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge.as_deref(),
        Some(format!("Bearer realm=\"{REALM}\"").as_str())
    );
    // Another scheme is no credentials either (RFC 6750 §3.1).
    let answer = call_with_authorization(&format!("{api}/notes"), Some("Basic c29tZTpvbmU=")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge.as_deref(),
        Some(format!("Bearer realm=\"{REALM}\"").as_str())
    );
    // A malformed Bearer header is an invalid token.
    let answer = call_with_authorization(&format!("{api}/notes"), Some("Bearer not a token")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge.as_deref(),
        Some(invalid(Reason::MalformedAuthorization).as_str())
    );
}

#[tokio::test]
async fn tokens_failing_a_check_are_refused_with_the_reason() {
    let fake = FakeIssuer::start().await;
    let guard = fake.ready_guard().await;
    let api = format!("{}/me", serve_api(&guard).await);
    let kid = fake.state().keys[0].kid.clone();
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = fake.claims();
        change(&mut claims);
        fake.sign(&claims)
    };
    let tampered = {
        let token = fake.sign(&fake.claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut other = fake.claims();
        other["sub"] = json!("mallory");
        let payload = base64_url(&serde_json::to_vec(&other).unwrap());
        parts[1] = &payload;
        parts.join(".")
    };
    // HMAC keyed with the public key, under the Ed25519 key's kid (RFC 8725 §2.1).
    let confused = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(
            &header,
            &fake.claims(),
            &EncodingKey::from_secret(&fake.public_key()),
        )
        .unwrap()
    };
    let cases: Vec<(&str, String, Reason)> = vec![
        ("not a JWT", "abc.def".into(), Reason::Malformed),
        (
            "typ JWT",
            fake.sign_with(&kid, Some("JWT"), &fake.claims()),
            Reason::WrongType,
        ),
        (
            "no typ",
            fake.sign_with(&kid, None, &fake.claims()),
            Reason::WrongType,
        ),
        (
            "another issuer",
            with(&|c| c["iss"] = json!("https://evil.test")),
            Reason::WrongIssuer,
        ),
        (
            "another audience",
            with(&|c| c["aud"] = json!("https://other.test")),
            Reason::WrongAudience,
        ),
        (
            "audiences without ours",
            with(&|c| c["aud"] = json!(["https://a.test", "https://b.test"])),
            Reason::WrongAudience,
        ),
        (
            "expired",
            with(&|c| c["exp"] = json!(now() - 5)),
            Reason::Expired,
        ),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(now() + 300)),
            Reason::NotYetValid,
        ),
        (
            "no gid",
            with(&|c| {
                c.as_object_mut().unwrap().remove("gid");
            }),
            Reason::MissingClaim("gid"),
        ),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            Reason::MissingClaim("exp"),
        ),
        ("tampered payload", tampered, Reason::BadSignature),
        ("HMAC with the public key", confused, Reason::WrongAlgorithm),
    ];
    for (what, token, reason) in cases {
        let answer = call(&api, Some(&token)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            answer.challenge.as_deref(),
            Some(invalid(reason.clone()).as_str()),
            "{what}"
        );
        assert_eq!(answer.body["error"], "invalid_token", "{what}");
        assert_eq!(refusal(&guard, &token).await, reason, "{what}");
    }
}

/// Why `guard` refuses `token` (it must).
async fn refusal(guard: &Guard, token: &str) -> Reason {
    guard.validate(token).await.unwrap_err().reason().clone()
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_once_per_interval() {
    let fake = FakeIssuer::start().await;
    let guard = FakeIssuer::start_guard(
        fake.guard_builder()
            .jwks_refetch_interval(Duration::from_secs(3600)),
    )
    .await;
    let api = format!("{}/me", serve_api(&guard).await);
    assert_eq!(fake.state().jwks_fetches, 1, "the first load");
    // The issuer rotates: the first token with the new kid is accepted after
    // one refetch.
    fake.add_key("key-2");
    let rotated = fake.sign_with("key-2", Some("at+jwt"), &fake.claims());
    let answer = call(&api, Some(&rotated)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(fake.state().jwks_fetches, 2);
    // A flood of made-up kids within the interval: no further fetch.
    let flood = (0..40).map(|i| {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(format!("made-up-{i}"));
        header.typ = Some("at+jwt".into());
        let token = format!(
            "{}.{}.{}",
            base64_url(&serde_json::to_vec(&header).unwrap()),
            base64_url(&serde_json::to_vec(&fake.claims()).unwrap()),
            base64_url(b"not a signature"),
        );
        let api = api.clone();
        async move { call(&api, Some(&token)).await }
    });
    for answer in futures_util::future::join_all(flood).await {
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            answer.challenge.as_deref(),
            Some(invalid(Reason::UnknownKey).as_str())
        );
    }
    assert_eq!(fake.state().jwks_fetches, 2, "the flood fetched nothing");
}

#[tokio::test]
async fn every_kind_of_entry_revokes_from_the_snapshot_and_from_the_stream() {
    let fake = FakeIssuer::start().await;
    let until = now() + 600;
    // In the log before the guard starts: the snapshot brings them.
    let (snap_grant, snap_family, snap_jti) = (fake.claims(), fake.claims(), fake.claims());
    fake.revoke("grant", snap_grant["gid"].as_str().unwrap(), until);
    fake.revoke("family", snap_family["fid"].as_str().unwrap(), until);
    fake.revoke("jti", snap_jti["jti"].as_str().unwrap(), until);
    let guard = fake.ready_guard().await;
    let api = format!("{}/me", serve_api(&guard).await);
    for (claims, kind) in [
        (&snap_grant, RevocationKind::Grant),
        (&snap_family, RevocationKind::Family),
        (&snap_jti, RevocationKind::Jti),
    ] {
        let token = fake.sign(claims);
        let answer = call(&api, Some(&token)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{kind}");
        assert_eq!(
            answer.challenge.as_deref(),
            Some(invalid(Reason::Revoked(kind)).as_str())
        );
        assert_eq!(refusal(&guard, &token).await, Reason::Revoked(kind));
    }
    let health = guard.health();
    assert_eq!((health.entries, health.last_position), (3, 3));
    // Live: each token works, is revoked on the stream, and is then refused.
    for (kind, claim, revoked) in [
        ("grant", "gid", RevocationKind::Grant),
        ("family", "fid", RevocationKind::Family),
        ("jti", "jti", RevocationKind::Jti),
    ] {
        let claims = fake.claims();
        let token = fake.sign(&claims);
        assert_eq!(call(&api, Some(&token)).await.status, StatusCode::OK);
        fake.revoke(kind, claims[claim].as_str().unwrap(), until);
        eventually(
            &format!("a streamed {kind} entry refuses the token"),
            || async { call(&api, Some(&token)).await.status == StatusCode::UNAUTHORIZED },
        )
        .await;
        assert_eq!(refusal(&guard, &token).await, Reason::Revoked(revoked));
    }
    let health = guard.health();
    assert_eq!((health.entries, health.last_position), (6, 6));
    assert!(health.connected && health.fresh && health.ready);
    // A client_credentials token (no fid) is checked by gid and jti.
    let mut machine = fake.claims();
    machine.as_object_mut().unwrap().remove("fid");
    assert_eq!(
        call(&api, Some(&fake.sign(&machine))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_snapshot_is_read_page_by_page() {
    let fake = FakeIssuer::start().await;
    let until = now() + 600;
    for i in 0..2500 {
        fake.revoke("jti", &format!("j{i}"), until);
    }
    let guard = fake.ready_guard().await;
    let health = guard.health();
    assert_eq!((health.entries, health.last_position), (2500, 2500));
    assert_eq!(fake.state().snapshot_afters, [0, 1000, 2000]);
    assert_eq!(
        fake.state().stream_last_event_ids,
        [Some("2500".to_owned())]
    );
}

#[tokio::test]
async fn entries_are_dropped_once_their_until_passed() {
    let fake = FakeIssuer::start().await;
    let guard = fake.ready_guard().await;
    fake.revoke("jti", "short-lived", now() + 1);
    fake.revoke("jti", "long-lived", now() + 600);
    eventually("both entries arrive", || async {
        guard.health().entries == 2
    })
    .await;
    eventually("the short-lived entry is swept", || async {
        guard.health().entries == 1
    })
    .await;
    let mut claims = fake.claims();
    claims["jti"] = json!("long-lived");
    assert_eq!(
        refusal(&guard, &fake.sign(&claims)).await,
        Reason::Revoked(RevocationKind::Jti)
    );
}

#[tokio::test]
async fn a_reconnection_resumes_with_last_event_id_and_loses_nothing() {
    let fake = FakeIssuer::start().await;
    let guard = fake.ready_guard().await;
    let until = now() + 600;
    let [first, during, between, after] = [0; 4].map(|_| fake.claims());
    let token = |c: &serde_json::Value| fake.sign(c);
    fake.revoke("family", first["fid"].as_str().unwrap(), until);
    eventually("the first entry streams in", || async {
        guard.health().last_position == 1
    })
    .await;
    // The stream breaks and the feed is unreachable for a while.
    fake.set_feed_down(true);
    eventually("the guard notices", || async { !guard.health().connected }).await;
    // Committed while the guard is away...
    fake.revoke("grant", during["gid"].as_str().unwrap(), until);
    // ...and one committed after its catch-up snapshot, before its stream opens.
    fake.state().after_next_snapshot =
        Some(("jti", between["jti"].as_str().unwrap().into(), until));
    fake.set_feed_down(false);
    eventually("the guard is connected again", || async {
        guard.health().connected && guard.health().last_position == 3
    })
    .await;
    for (what, claims) in [
        ("first", &first),
        ("during", &during),
        ("between", &between),
    ] {
        assert!(
            matches!(refusal(&guard, &token(claims)).await, Reason::Revoked(_)),
            "{what}"
        );
    }
    {
        let state = fake.state();
        assert_eq!(
            state.snapshot_afters,
            [0, 1],
            "the catch-up resumed after 1"
        );
        assert_eq!(
            state.stream_last_event_ids,
            [Some("0".to_owned()), Some("2".to_owned())],
            "the stream resumed after the snapshot's position; it replayed 3"
        );
    }
    fake.revoke("jti", after["jti"].as_str().unwrap(), until);
    eventually("the stream carries on", || async {
        guard.validate(&token(&after)).await.is_err()
    })
    .await;
    assert_eq!(guard.health().entries, 4);
}

/// Collects what the guard logs, for the once-per-outage lines.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread: the guard's tasks run where the log subscriber is the default.
#[tokio::test(flavor = "current_thread")]
async fn a_stream_down_past_the_bound_fails_closed_and_recovers() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let fake = FakeIssuer::start().await;
    let guard =
        FakeIssuer::start_guard(fake.guard_builder().stale_after(Duration::from_secs(2))).await;
    let api = format!("{}/me", serve_api(&guard).await);
    let token = fake.sign(&fake.claims());
    assert_eq!(call(&api, Some(&token)).await.status, StatusCode::OK);
    fake.set_feed_down(true);
    eventually("the guard fails closed", || async {
        call(&api, Some(&token)).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    let answer = call(&api, Some(&token)).await;
    assert_eq!(
        answer.challenge.as_deref(),
        Some(invalid(Reason::Stale).as_str())
    );
    let health = guard.health();
    assert!(!health.fresh && !health.connected && health.ready);
    assert!(health.stale_since.is_some() && health.last_error.is_some());
    for _ in 0..5 {
        assert_eq!(
            call(&api, Some(&token)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        logs.count("no news from the revocation feed"),
        1,
        "one error line per outage"
    );
    fake.set_feed_down(false);
    eventually("the guard accepts tokens again", || async {
        call(&api, Some(&token)).await.status == StatusCode::OK
    })
    .await;
    assert_eq!(guard.health().stale_since, None);
    eventually("the recovery is logged", || async {
        logs.count("caught up") == 1
    })
    .await;
    assert_eq!(logs.count("no news from the revocation feed"), 1);
}

#[tokio::test]
async fn while_stale_introspection_decides_when_configured() {
    let fake = FakeIssuer::start().await;
    let guard = FakeIssuer::start_guard(
        fake.guard_builder()
            .stale_after(Duration::from_secs(2))
            .fallback(Fallback::Introspect),
    )
    .await;
    let api = format!("{}/me", serve_api(&guard).await);
    let active = fake.sign(&fake.claims());
    let inactive = fake.sign(&fake.claims());
    fake.state().active.insert(active.clone());
    // Fresh: local validation alone; nobody is asked.
    for token in [&active, &inactive] {
        assert_eq!(call(&api, Some(token)).await.status, StatusCode::OK);
    }
    assert!(fake.state().introspections.is_empty());
    fake.set_feed_down(true);
    eventually("the inactive token is refused by introspection", || async {
        call(&api, Some(&inactive)).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(
        call(&api, Some(&inactive)).await.challenge.as_deref(),
        Some(invalid(Reason::Inactive).as_str())
    );
    let answer = call(&api, Some(&active)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["introspected"], true);
    {
        let state = fake.state();
        let asked = state.introspections.last().unwrap();
        assert_eq!(asked, &(expected_basic(), active.clone()));
    }
    // Introspection unreachable too: refused.
    fake.state().introspection_down = true;
    assert_eq!(
        call(&api, Some(&active)).await.challenge.as_deref(),
        Some(invalid(Reason::IntrospectionFailed).as_str())
    );
    fake.state().introspection_down = false;
    fake.set_feed_down(false);
    eventually("fresh again: local validation alone", || async {
        call(&api, Some(&inactive)).await.status == StatusCode::OK
    })
    .await;
    assert_eq!(call(&api, Some(&active)).await.body["introspected"], false);
}

#[tokio::test]
async fn before_the_first_snapshot_every_token_is_refused() {
    let fake = FakeIssuer::start().await;
    fake.set_feed_down(true);
    let guard = fake.guard_builder().build().unwrap();
    let api = format!("{}/me", serve_api(&guard).await);
    let token = fake.sign(&fake.claims());
    eventually("discovery and JWKS done, feed still down", || async {
        fake.state().jwks_fetches == 1
    })
    .await;
    let answer = call(&api, Some(&token)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge.as_deref(),
        Some(invalid(Reason::NotReady).as_str())
    );
    let health = guard.health();
    assert!(!health.ready && health.stale_since.is_some());
    fake.set_feed_down(false);
    within(guard.ready(), "ready once the feed answers").await;
    assert_eq!(call(&api, Some(&token)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_refused_feed_token_is_replaced() {
    let fake = FakeIssuer::start().await;
    let guard = fake.ready_guard().await;
    assert_eq!(fake.state().token_requests, 1);
    // The issuer forgets the feed token (revoked, expired) and drops the stream.
    fake.state().feed_tokens.clear();
    fake.cut_streams();
    eventually("a new token and a new stream", || async {
        let state = fake.state();
        state.token_requests == 2 && state.stream_last_event_ids.len() == 2
    })
    .await;
    assert!(fake.state().feed_unauthorized >= 1);
    eventually("connected again", || async { guard.health().connected }).await;
}

#[tokio::test]
async fn the_feed_token_is_renewed_when_the_stream_ends_with_it() {
    let fake = FakeIssuer::start().await;
    // Tokens for 2 s; the fake ends each stream when its token expires.
    fake.state().feed_token_lifetime = Some(Duration::from_secs(2));
    let guard = fake.ready_guard().await;
    eventually("three streams, each with a new token", || async {
        fake.state().stream_tokens.len() >= 3
    })
    .await;
    let state = fake.state();
    let tokens: HashSet<&String> = state.stream_tokens.iter().collect();
    assert_eq!(
        tokens.len(),
        state.stream_tokens.len(),
        "{:?}",
        state.stream_tokens
    );
    assert_eq!(
        state.feed_unauthorized, 0,
        "never presented an expired token"
    );
    drop(state);
    assert!(guard.health().ready);
}

#[tokio::test]
async fn a_missing_scope_is_403_with_the_scope_in_the_challenge() {
    let fake = FakeIssuer::start().await;
    let guard = fake.ready_guard().await;
    let api = serve_api(&guard).await;
    let mut claims = fake.claims();
    claims["scope"] = json!("openid notes:write");
    let token = fake.sign(&claims);
    let answer = call(&format!("{api}/notes"), Some(&token)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.challenge.as_deref(),
        Some(
            format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", error_description=\"{}\", scope=\"notes:read\"",
                Reason::InsufficientScope(vec![]).description()
            )
            .as_str()
        )
    );
    assert_eq!(answer.body["error"], "insufficient_scope");
    // The same token is fine where no scope is required.
    assert_eq!(
        call(&format!("{api}/me"), Some(&token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_silent_stream_is_dropped_and_the_guard_catches_up_again() {
    // Streams that never send a byte (a half-open connection looks the same).
    let fake = FakeIssuer::start_with_keep_alive(Duration::from_secs(3600)).await;
    let guard =
        FakeIssuer::start_guard(fake.guard_builder().stale_after(Duration::from_millis(900))).await;
    eventually(
        "the guard gives up on silent streams and reconnects",
        || async { fake.state().stream_last_event_ids.len() >= 3 },
    )
    .await;
    // Each reconnection caught up through the snapshot from where it was.
    let afters = fake.state().snapshot_afters.clone();
    assert!(
        afters.len() >= 3 && afters.iter().all(|a| *a == 0),
        "{afters:?}"
    );
    // Still following: an entry committed now is caught (by the next
    // catch-up, since the stream says nothing).
    let claims = fake.claims();
    fake.revoke("jti", claims["jti"].as_str().unwrap(), now() + 600);
    eventually("the entry is applied", || async {
        guard.health().last_position == 1
    })
    .await;
    assert_eq!(
        refusal(&guard, &fake.sign(&claims)).await,
        Reason::Revoked(RevocationKind::Jti)
    );
}
