//! A notes API protected by Latchkey: `cargo run -p latchkey-resource --example notes_api`.
//!
//! Environment:
//! - `LATCHKEY_ISSUER` (required): the issuer, e.g. `http://127.0.0.1:3000`.
//! - `NOTES_API_CLIENT_ID`, `NOTES_API_CLIENT_SECRET` (required): this API's
//!   client at Latchkey, allowed the scope `latchkey:revocations`.
//! - `NOTES_API_AUDIENCE`: the `aud` tokens must name (default: the issuer).
//! - `NOTES_API_ADDR`: where to listen (default `127.0.0.1:3200`).
//! - `NOTES_API_FALLBACK`: `fail-closed` (default) or `introspect`.
//! - `NOTES_API_STALE_AFTER_SECS`: the staleness bound (default 30).
//!
//! Routes:
//! - `GET /notes` (scope `notes:read`): the notes of the token's `sub`, as JSON.
//! - `POST /notes` (scope `notes:write`): adds `{"text": "..."}` to them.
//! - `GET /healthz`: the guard's [`Health`]; 200 when fresh, else 503.
//!
//! Prints `listening on ADDR` on stdout once the first snapshot of the
//! revocation feed has loaded and it accepts connections; logs go to stderr
//! (`RUST_LOG` filters them).

use std::{
    collections::HashMap,
    env,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use latchkey_resource::{AccessToken, Fallback, Guard, Health};
use serde::Deserialize;
use serde_json::{json, Value};

/// Notes by owner (`sub`), in memory.
type Notes = Arc<Mutex<HashMap<String, Vec<String>>>>;

#[derive(Clone)]
struct AppState {
    guard: Guard,
    notes: Notes,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let required = |name: &str| {
        env::var(name).map_err(|_| format!("{name} is required (see the example's docs)"))
    };
    let issuer = required("LATCHKEY_ISSUER")?;
    let client_id = required("NOTES_API_CLIENT_ID")?;
    let client_secret = required("NOTES_API_CLIENT_SECRET")?;
    let audience = env::var("NOTES_API_AUDIENCE").unwrap_or_else(|_| issuer.clone());
    let addr: SocketAddr = env::var("NOTES_API_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3200".into())
        .parse()
        .map_err(|e| format!("NOTES_API_ADDR: {e}"))?;
    let fallback = match env::var("NOTES_API_FALLBACK").as_deref() {
        Err(_) | Ok("fail-closed") => Fallback::FailClosed,
        Ok("introspect") => Fallback::Introspect,
        Ok(other) => {
            return Err(format!(
                "NOTES_API_FALLBACK must be fail-closed or introspect, not {other:?}"
            )
            .into())
        }
    };
    let stale_after = match env::var("NOTES_API_STALE_AFTER_SECS") {
        Err(_) => Duration::from_secs(30),
        Ok(secs) => match secs.parse::<u64>() {
            Ok(secs) if secs > 0 => Duration::from_secs(secs),
            _ => {
                return Err(format!(
                    "NOTES_API_STALE_AFTER_SECS must be a whole number of seconds above 0, not {secs:?}"
                )
                .into())
            }
        },
    };

    let guard = Guard::builder(&issuer)
        .audience(audience)
        .client_credentials(client_id, client_secret)
        .fallback(fallback)
        .stale_after(stale_after)
        .realm("notes")
        .build()?;

    let state = AppState {
        guard: guard.clone(),
        notes: Notes::default(),
    };
    let app = Router::new()
        .route(
            "/notes",
            get(list_notes)
                .route_layer(guard.require_scopes(["notes:read"]))
                .merge(
                    axum::routing::post(add_note)
                        .route_layer(guard.require_scopes(["notes:write"])),
                ),
        )
        .route("/healthz", get(healthz))
        .with_state(state);

    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%issuer, "waiting for the first snapshot of the revocation feed");
    guard.ready().await;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// `GET /notes`: the caller's notes.
async fn list_notes(State(state): State<AppState>, token: AccessToken) -> Json<Value> {
    let notes = state.notes.lock().unwrap_or_else(|e| e.into_inner());
    let mine = notes.get(&token.sub).cloned().unwrap_or_default();
    Json(json!({ "sub": token.sub, "notes": mine }))
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

/// `POST /notes`: adds one.
async fn add_note(
    State(state): State<AppState>,
    token: AccessToken,
    Json(note): Json<NewNote>,
) -> impl IntoResponse {
    let mut notes = state.notes.lock().unwrap_or_else(|e| e.into_inner());
    notes.entry(token.sub.clone()).or_default().push(note.text);
    StatusCode::CREATED
}

/// `GET /healthz`: the guard's health; 503 while the revocation set is stale.
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let health = state.guard.health();
    let status = if health.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health))
}
