//! The audit log: one row per thing that happened to access (sign-in, consent,
//! token issued, revoked, policy changed, ...), written by the domain functions
//! that do those things.

use serde::Serialize;

use super::{error::DomainResult, store::Db};
use crate::on_db;

/// What happened. Stored as the snake_case string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Login,
    LoginFailed,
    Logout,
    UserCreated,
    ClientCreated,
    PolicyChanged,
    ConsentGranted,
    CodeRedeemed,
    TokenIssued,
    TokenRefreshed,
    ReuseDetected,
    Revoked,
    KeysRotated,
    UserDisabled,
    UserEnabled,
    UserAdminChanged,
    ClientUpdated,
    ClientDeleted,
    ClientSecretRotated,
    BackchannelLogoutDelivered,
    BackchannelLogoutGaveUp,
    UpstreamProviderChanged,
    UpstreamTokensRevoked,
    UpstreamRevocationGaveUp,
    SignInThrottled,
    SignInThrottleCleared,
    ScopeDefined,
    ScopeRemoved,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Login => "login",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::Logout => "logout",
            AuditKind::UserCreated => "user_created",
            AuditKind::ClientCreated => "client_created",
            AuditKind::PolicyChanged => "policy_changed",
            AuditKind::ConsentGranted => "consent_granted",
            AuditKind::CodeRedeemed => "code_redeemed",
            AuditKind::TokenIssued => "token_issued",
            AuditKind::TokenRefreshed => "token_refreshed",
            AuditKind::ReuseDetected => "reuse_detected",
            AuditKind::Revoked => "revoked",
            AuditKind::KeysRotated => "keys_rotated",
            AuditKind::UserDisabled => "user_disabled",
            AuditKind::UserEnabled => "user_enabled",
            AuditKind::UserAdminChanged => "user_admin_changed",
            AuditKind::ClientUpdated => "client_updated",
            AuditKind::ClientDeleted => "client_deleted",
            AuditKind::ClientSecretRotated => "client_secret_rotated",
            AuditKind::BackchannelLogoutDelivered => "backchannel_logout_delivered",
            AuditKind::BackchannelLogoutGaveUp => "backchannel_logout_gave_up",
            AuditKind::UpstreamProviderChanged => "upstream_provider_changed",
            AuditKind::UpstreamTokensRevoked => "upstream_tokens_revoked",
            AuditKind::UpstreamRevocationGaveUp => "upstream_revocation_gave_up",
            AuditKind::SignInThrottled => "sign_in_throttled",
            AuditKind::SignInThrottleCleared => "sign_in_throttle_cleared",
            AuditKind::ScopeDefined => "scope_defined",
            AuditKind::ScopeRemoved => "scope_removed",
        }
    }
}

/// One event; `None` fields do not apply to it.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub kind: AuditKind,
    pub actor_user_id: Option<String>,
    pub actor_client_id: Option<String>,
    pub subject_user_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(kind: AuditKind) -> Self {
        AuditEvent {
            kind,
            actor_user_id: None,
            actor_client_id: None,
            subject_user_id: None,
            client_id: None,
            ip: None,
            detail: serde_json::json!({}),
        }
    }

    /// The user who did it.
    pub fn actor(mut self, user_id: &str) -> Self {
        self.actor_user_id = Some(user_id.to_owned());
        self
    }

    /// The user whose access it concerns.
    pub fn subject(mut self, user_id: &str) -> Self {
        self.subject_user_id = Some(user_id.to_owned());
        self
    }

    pub fn client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_owned());
        self
    }

    pub fn ip(mut self, ip: &str) -> Self {
        self.ip = Some(ip.to_owned()).filter(|s| !s.is_empty());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// The SQL that stores an event; shared by [`record`] and by functions that
/// write the event inside their own transaction.
pub const INSERT_SQL: &str = "INSERT INTO audit_events \
    (id, at, kind, actor_user_id, actor_client_id, subject_user_id, client_id, ip, detail) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Binds an event to [`INSERT_SQL`] for any executor (pool or transaction).
#[macro_export]
macro_rules! bind_audit {
    ($event:expr) => {{
        let e: &$crate::domain::audit::AuditEvent = $event;
        sqlx::query($crate::domain::audit::INSERT_SQL)
            .bind($crate::domain::secrets::new_ordered_id())
            .bind($crate::domain::store::now())
            .bind(e.kind.as_str())
            .bind(e.actor_user_id.clone())
            .bind(e.actor_client_id.clone())
            .bind(e.subject_user_id.clone())
            .bind(e.client_id.clone())
            .bind(e.ip.clone())
            .bind(e.detail.to_string())
    }};
}

/// Writes one event on its own.
pub async fn record(db: &Db, event: &AuditEvent) -> DomainResult<()> {
    on_db!(db, |pool| pool
        .execute_write(crate::bind_audit!(event))
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Who did something: a signed-in person (dashboard, CLI) or a client (the
/// admin API, with a `latchkey:admin` token). Both `None`: the system, or a
/// CLI command run on the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
}

impl Actor {
    pub fn user(user_id: &str) -> Actor {
        Actor {
            user_id: Some(user_id.to_owned()),
            client_id: None,
        }
    }

    pub fn client(client_id: &str) -> Actor {
        Actor {
            user_id: None,
            client_id: Some(client_id.to_owned()),
        }
    }

    /// How revocations name the actor (`revoked_by`): `user:<id>`, `client:<id>` or `system`.
    pub fn label(&self) -> String {
        match (&self.user_id, &self.client_id) {
            (Some(user), _) => format!("user:{user}"),
            (None, Some(client)) => format!("client:{client}"),
            (None, None) => "system".to_owned(),
        }
    }
}

impl AuditEvent {
    /// The actor (user or client) who did it.
    pub fn by(mut self, actor: &Actor) -> Self {
        if actor.user_id.is_some() {
            self.actor_user_id.clone_from(&actor.user_id);
        }
        if actor.client_id.is_some() {
            self.actor_client_id.clone_from(&actor.client_id);
        }
        self
    }
}
