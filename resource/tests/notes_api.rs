//! The example API (`examples/notes_api.rs`) as a process, against the fake
//! issuer: it starts, guards `/notes` and reports its health.

mod common;

use std::{path::PathBuf, process::Stdio, sync::OnceLock, time::Duration};

use common::*;
use http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The example's binary, built (or found up to date) once per run by the
/// cargo running these tests: `cargo test --test notes_api` alone does not
/// build examples. The build gets a clean environment: the variables cargo
/// sets for tests would make it rebuild C dependencies (ring) every time.
fn example_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = std::process::Command::new(cargo);
            build
                .args(["build", "-p", "latchkey-resource", "--example", "notes_api"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env_clear();
            for name in [
                "PATH",
                "HOME",
                "CARGO_HOME",
                "CARGO_TARGET_DIR",
                "RUSTUP_HOME",
                "RUSTUP_TOOLCHAIN",
            ] {
                if let Some(value) = std::env::var_os(name) {
                    build.env(name, value);
                }
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "building the example failed");
            // target/debug/deps/notes_api-HASH → target/debug/examples/notes_api
            let test_binary = std::env::current_exe().unwrap();
            let profile_dir = test_binary.parent().unwrap().parent().unwrap();
            profile_dir
                .join("examples")
                .join(format!("notes_api{}", std::env::consts::EXE_SUFFIX))
        })
        .clone()
}

#[tokio::test]
async fn the_example_guards_notes_and_reports_health() {
    let binary = tokio::task::spawn_blocking(example_binary).await.unwrap();
    let fake = FakeIssuer::start().await;
    let mut child = tokio::process::Command::new(binary)
        .env("LATCHKEY_ISSUER", fake.url())
        .env("NOTES_API_CLIENT_ID", CLIENT_ID)
        .env("NOTES_API_CLIENT_SECRET", CLIENT_SECRET)
        .env("NOTES_API_AUDIENCE", AUDIENCE)
        .env("NOTES_API_ADDR", "127.0.0.1:0")
        .env("NOTES_API_STALE_AFTER_SECS", "5")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = within(lines.next_line(), "the example's first line")
        .await
        .unwrap()
        .expect("the example printed a line");
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let api = format!("http://{addr}");

    let claims = fake.claims();
    let reader = fake.sign(&claims);
    let answer = call(&format!("{api}/notes"), Some(&reader)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body, json!({"sub": "alice", "notes": []}));

    // notes:write is another scope: 403 for this token, 201 for one with it.
    let client = reqwest::Client::new();
    let post = |token: String| {
        client
            .post(format!("{api}/notes"))
            .bearer_auth(token)
            .json(&json!({"text": "buy milk"}))
            .send()
    };
    assert_eq!(
        post(reader.clone()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let mut writer = claims.clone();
    writer["scope"] = json!("notes:read notes:write");
    writer["jti"] = json!("writer-jti");
    assert_eq!(
        post(fake.sign(&writer)).await.unwrap().status(),
        StatusCode::CREATED
    );
    let answer = call(&format!("{api}/notes"), Some(&reader)).await;
    assert_eq!(answer.body["notes"], json!(["buy milk"]));

    // Revoked through the feed: refused.
    fake.revoke("grant", claims["gid"].as_str().unwrap(), now() + 600);
    eventually("the example refuses the revoked grant", || async {
        call(&format!("{api}/notes"), Some(&reader)).await.status == StatusCode::UNAUTHORIZED
    })
    .await;

    let health = reqwest::get(format!("{api}/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["ready"], true);
    assert_eq!(health["fresh"], true);
    assert_eq!(health["last_position"], 1);
    assert_eq!(health["entries"], 1);
    assert_eq!(health["fallback"], "fail-closed");

    // The feed goes away for longer than the bound: /healthz says so.
    fake.set_feed_down(true);
    within(
        async {
            loop {
                let status = reqwest::get(format!("{api}/healthz"))
                    .await
                    .unwrap()
                    .status();
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        },
        "healthz reports the stale feed",
    )
    .await;
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_example_explains_a_bad_configuration() {
    let binary = tokio::task::spawn_blocking(example_binary).await.unwrap();
    let output = tokio::process::Command::new(&binary)
        .env_remove("LATCHKEY_ISSUER")
        .env("NOTES_API_CLIENT_ID", CLIENT_ID)
        .env("NOTES_API_CLIENT_SECRET", CLIENT_SECRET)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LATCHKEY_ISSUER is required"), "{stderr}");
    let output = tokio::process::Command::new(&binary)
        .env("LATCHKEY_ISSUER", "http://127.0.0.1:9")
        .env("NOTES_API_CLIENT_ID", CLIENT_ID)
        .env("NOTES_API_CLIENT_SECRET", CLIENT_SECRET)
        .env("NOTES_API_FALLBACK", "sometimes")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("NOTES_API_FALLBACK must be fail-closed or introspect"),
        "{stderr}"
    );
}
