//! What every request shares: [`AppState`], built once by `http::build`
//! from the [`Parts`] loaded at start (`latchkey serve`, or a test's server).

use std::sync::Arc;

use app::domain::{
    keys::KeyRing, revocation::RevokedSets, usage::Usage, web_session::WebSessionStore, Db,
};
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use leptos_axum::AxumRouteListing;

use crate::config::ServeConfig;

/// Everything a handler may need: one `Arc`, so the clones every request
/// makes (each `State` extractor and stateful middleware takes one) cost one
/// reference count, not one per field — cloning and dropping the fields one
/// by one was 20 % of an introspection's CPU, the counters' cache lines
/// bouncing between the cores.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub leptos_options: Arc<LeptosOptions>,
    pub db: Db,
    /// Signing keys, parsed once.
    pub keys: KeyRing,
    /// What is revoked, in memory: checked by introspection with no database round trip.
    pub revoked: RevokedSets,
    /// The registered resource servers: tokens' `aud`, who may introspect
    /// (re-read after a registration change).
    pub resource_servers: app::domain::resource_servers::ResourceServers,
    /// What client_credentials issuance reads, remembered
    /// (`tokens::IssuanceFacts`).
    pub issuance_facts: app::domain::tokens::IssuanceFacts,
    /// Clients' policies and SQLite's waiting rotations, for refreshes
    /// (`refresh::Refreshes`).
    pub refreshes: app::domain::refresh::Refreshes,
    /// Counts of client_credentials tokens issued and refreshes, written every second.
    pub usage: Usage,
    pub config: Arc<ServeConfig>,
    pub routes: Arc<Vec<AxumRouteListing>>,
    /// Upstream OpenID providers: the sealing key and discovered metadata.
    pub upstreams: crate::upstream::Upstreams,
    /// What the console's sign-in provider pages need (the sealing key, the
    /// redirect URI to register upstream): provided to server functions.
    pub upstream_settings: app::api::ssr::UpstreamSettings,
    /// Request limits per client address and per client.
    pub limits: crate::rate_limit::Limits,
}

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }

    /// What the token endpoint's grants issue with (`tokens::Issuance`).
    pub fn issuance(&self) -> app::domain::tokens::Issuance<'_> {
        app::domain::tokens::Issuance {
            db: &self.db,
            keys: &self.keys,
            revoked: &self.revoked,
            servers: &self.resource_servers,
            usage: &self.usage,
            facts: &self.issuance_facts,
            refreshes: &self.refreshes,
            issuer: &self.config.issuer,
        }
    }

    /// The claims of a live access token for this issuer
    /// (`tokens::live_access_token`): `None` for anything not live, or when
    /// this instance is stale and cannot tell.
    pub async fn live_access_token(
        &self,
        token: &str,
    ) -> Option<app::domain::tokens::AccessClaims> {
        app::domain::tokens::live_access_token(
            &self.db,
            &self.keys,
            &self.revoked,
            &self.config.issuer,
            token,
        )
        .await
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        (*state.leptos_options).clone()
    }
}

/// What the application is built from: loaded once at start (`latchkey
/// serve`, or a test's server), shared by every request.
pub struct Parts {
    pub db: Db,
    pub keys: KeyRing,
    pub revoked: RevokedSets,
    pub config: ServeConfig,
    pub session_store: WebSessionStore,
    pub usage: Usage,
    pub upstreams: crate::upstream::Upstreams,
}
