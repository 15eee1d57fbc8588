//! Command-line flags with their environment equivalents, validated once.
//!
//! Every setting can come from a flag or a `LATCHKEY_*` variable (the flag
//! wins). A bad value is reported as one line naming the setting and what is
//! wrong, with exit code 2, before anything is opened or written.

use std::net::SocketAddr;

use app::domain::{
    backchannel::{validate_uri as validate_logout_uri, RetryPolicy},
    clients::{ClientChange, ClientMetadataChange},
    instances,
    keys::MasterKey,
    policy::{self, duration_secs, format_duration, Given, PolicyChange},
    retention::Retention,
    store::Backend,
    DomainError,
};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Latchkey: an OAuth 2.0 / OpenID Connect server where revoking access really ends it.",
    after_help = "Every listing and creating command takes --json for scripts.\nExit codes: 0 done, 1 failed (database or internal error), 2 invalid input or configuration."
)]
pub struct Cli {
    /// Database: sqlite://PATH (embedded, the default) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "LATCHKEY_DATABASE_URL",
        default_value = "sqlite://data/latchkey.db",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive like `info,sqlx=warn`.
    #[arg(long, env = "LATCHKEY_LOG", default_value = "info", global = true)]
    pub log_level: String,

    /// File holding the master key that encrypts signing keys at rest (created when missing, mode 0600).
    #[arg(
        long,
        env = "LATCHKEY_MASTER_KEY_FILE",
        default_value = "data/latchkey.key",
        global = true
    )]
    pub master_key_file: String,

    #[command(subcommand)]
    pub command: Command,
}

/// Environment variable holding the master key itself (base64url, 32 bytes):
/// several instances on one PostgreSQL must share it. Wins over the file.
pub const MASTER_KEY_ENV: &str = "LATCHKEY_MASTER_KEY";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (migrates the database first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Copy the SQLite database to FILE, consistent while a server runs (VACUUM INTO); PostgreSQL: use pg_dump.
    Backup {
        /// Where the copy goes; must not exist yet.
        file: String,
        #[arg(long)]
        json: bool,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Create the demo admin, user and clients (again: changes nothing) and print their credentials.
    Demo(JsonFlag),
    /// Token policy defaults for every client.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Upstream OpenID Connect providers people sign in through ("Sign in with …").
    #[command(subcommand)]
    Upstream(UpstreamCommand),
    /// The scope catalogue: the scopes clients may be registered for, in the words people read.
    #[command(subcommand)]
    Scope(ScopeCommand),
    /// Delete what retention says goes (a running server does this every minute).
    Prune {
        /// Print what would be deleted, deleting nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        retention: RetentionArgs,
        #[arg(long)]
        json: bool,
    },
}

/// How long what is not deleted by its own rule is kept (README, "Retention").
#[derive(Debug, Args, Clone)]
pub struct RetentionArgs {
    /// Delete audit events older than this (e.g. 400d, 90d); 0 keeps them forever.
    #[arg(long, env = "LATCHKEY_AUDIT_RETENTION", default_value = "400d")]
    pub audit_retention: String,
}

impl RetentionArgs {
    /// The retention settings; `InvalidSetting` for a malformed or too-short duration.
    pub fn validate(&self) -> Result<Retention, InvalidSetting> {
        let raw = &self.audit_retention;
        let secs = duration_secs(raw)
            .ok()
            .filter(|s| *s == 0 || *s >= 86_400)
            .ok_or_else(|| {
                InvalidSetting(format!(
                    "invalid LATCHKEY_AUDIT_RETENTION (--audit-retention) {raw:?}: \
                     expected 0 (keep forever) or a duration of at least 1d such as 90d, 400d"
                ))
            })?;
        Ok(Retention {
            audit_secs: (secs > 0).then_some(secs),
        })
    }
}

/// Policy fields, as flags. Durations: 90s, 15m, 1h, 30d. For a client,
/// `inherit` returns a field to the server default.
#[derive(Debug, Args, Default)]
pub struct PolicyFlags {
    /// Allow the refresh grant: on, off.
    #[arg(long)]
    pub refresh: Option<String>,
    /// Access-token lifetime (1m–24h).
    #[arg(long)]
    pub access_ttl: Option<String>,
    /// Refresh tokens die after this long unused.
    #[arg(long)]
    pub refresh_idle_ttl: Option<String>,
    /// Refresh tokens die this long after sign-in, used or not (not shorter than idle).
    #[arg(long)]
    pub refresh_absolute_ttl: Option<String>,
    /// Rotate refresh tokens at every use: on, off.
    #[arg(long)]
    pub rotate: Option<String>,
    /// How long a rotated refresh token may still be presented without counting as reuse (0s–5m).
    #[arg(long)]
    pub reuse_grace: Option<String>,
    /// Revoke the tokens of a sign-in when it signs out: on, off.
    #[arg(long)]
    pub revoke_on_logout: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the defaults.
    Show(JsonFlag),
    /// Change the defaults.
    Set {
        #[command(flatten)]
        flags: PolicyFlags,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make new signing keys active; the old ones keep verifying until their tokens expired.
    Rotate(JsonFlag),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LATCHKEY_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: String,

    /// The issuer URL: the public base URL of this server (https in production: the session cookie is then Secure).
    #[arg(long, env = "LATCHKEY_ISSUER", default_value = "http://127.0.0.1:3000")]
    pub issuer: String,

    /// Folder with the built site (pkg/latchkey.js, .wasm, .css), as written by `cargo leptos build`.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,

    /// Outbox (back-channel logout) retries: the delay after the first failure, doubling after each.
    #[arg(long, env = "LATCHKEY_OUTBOX_RETRY_FIRST", default_value = "1s")]
    pub outbox_retry_first: String,

    /// Outbox retries: the longest delay between two attempts.
    #[arg(long, env = "LATCHKEY_OUTBOX_RETRY_MAX", default_value = "10m")]
    pub outbox_retry_max: String,

    /// Outbox: stop retrying a delivery this long after it was written.
    #[arg(long, env = "LATCHKEY_OUTBOX_GIVE_UP_AFTER", default_value = "24h")]
    pub outbox_give_up_after: String,

    #[command(flatten)]
    pub retention: RetentionArgs,

    /// Several instances: how long a revocation or change waits for every other live instance to apply it before it is acknowledged anyway (lagging instances fail closed); at least 250ms.
    #[arg(long, env = "LATCHKEY_ACK_BOUND", default_value = "250ms")]
    pub ack_bound: String,

    /// Sign-in throttling: failed sign-ins per username within the window before it is locked; 0 turns it off.
    #[arg(long, env = "LATCHKEY_SIGNIN_FAILURES_PER_USER", default_value = "5")]
    pub signin_failures_per_user: String,

    /// Sign-in throttling: failed sign-ins per client IP address within the window before it is locked; 0 turns it off.
    #[arg(long, env = "LATCHKEY_SIGNIN_FAILURES_PER_IP", default_value = "20")]
    pub signin_failures_per_ip: String,

    /// Sign-in throttling: the window failures are counted in.
    #[arg(long, env = "LATCHKEY_SIGNIN_FAILURE_WINDOW", default_value = "15m")]
    pub signin_failure_window: String,

    /// Sign-in throttling: the first lockout; each one in a row doubles it.
    #[arg(long, env = "LATCHKEY_SIGNIN_LOCKOUT", default_value = "1m")]
    pub signin_lockout: String,

    /// A reverse proxy or load balancer whose X-Forwarded-For names the client (an address or CIDR range; repeat, or comma-separated in the variable). Without one, the client is the TCP peer.
    #[arg(
        long = "trusted-proxy",
        env = "LATCHKEY_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trusted_proxies: Vec<String>,

    /// Requests per client address to the token, introspection, revocation,
    /// userinfo, admin API and upstream sign-in endpoints: N/s, N/min or N/h (up to N at once), or off.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_PER_IP", default_value = crate::rate_limit::Config::DEFAULT_PER_IP)]
    pub rate_limit_per_ip: String,

    /// Requests per authenticated confidential client to those endpoints: N/s, N/min or N/h, or off.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_PER_CLIENT", default_value = crate::rate_limit::Config::DEFAULT_PER_CLIENT)]
    pub rate_limit_per_client: String,

    /// What a failed client authentication (wrong client credentials, a bad admin API token) costs at its address, in requests (1-1000).
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_FAILURE_COST", default_value = crate::rate_limit::Config::DEFAULT_FAILURE_COST)]
    pub rate_limit_failure_cost: String,

    /// Address (IP:PORT) of a second listener serving Prometheus metrics at GET /metrics; empty: no metrics. Keep it private.
    #[arg(long, env = "LATCHKEY_METRICS_ADDR", default_value = "")]
    pub metrics_addr: String,

    /// Sign-in throttling: the longest lockout.
    #[arg(long, env = "LATCHKEY_SIGNIN_LOCKOUT_MAX", default_value = "1h")]
    pub signin_lockout_max: String,
}

/// The outbox worker's retry schedule from `serve`'s flags: durations such as
/// `1s`, `10m`, `24h`; the first delay at least 1 s, the longest at least the
/// first, the deadline at least 1 s.
pub fn outbox_retry(args: &ServeArgs) -> Result<RetryPolicy, InvalidSetting> {
    let secs = |env: &str, flag: &str, raw: &str, min: i64| {
        duration_secs(raw)
            .ok()
            .filter(|s| *s >= min)
            .ok_or_else(|| {
                InvalidSetting(format!(
                    "invalid {env} (--{flag}) {raw:?}: expected a duration of at least {} such as 1s, 10m, 24h",
                    format_duration(min)
                ))
            })
    };
    let first_secs = secs(
        "LATCHKEY_OUTBOX_RETRY_FIRST",
        "outbox-retry-first",
        &args.outbox_retry_first,
        1,
    )?;
    Ok(RetryPolicy {
        first_secs,
        max_secs: secs(
            "LATCHKEY_OUTBOX_RETRY_MAX",
            "outbox-retry-max",
            &args.outbox_retry_max,
            first_secs,
        )?,
        give_up_after_secs: secs(
            "LATCHKEY_OUTBOX_GIVE_UP_AFTER",
            "outbox-give-up-after",
            &args.outbox_give_up_after,
            1,
        )?,
    })
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        #[arg(long, allow_hyphen_values = true)]
        username: String,
        /// Read the password from standard input (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Give the user admin rights.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List(JsonFlag),
    /// Lift a sign-in lockout (throttling) of a username and forget its failures.
    Unlock {
        /// The username (any letter case).
        #[arg(allow_hyphen_values = true)]
        username: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its client_id and, for a confidential client, its secret (once).
    Add {
        #[arg(long, allow_hyphen_values = true)]
        name: String,
        /// An exact redirect URI (repeat for several).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// An exact post-logout redirect URI (repeat for several).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE required), e.g. a browser or mobile app.
        #[arg(long)]
        public: bool,
        /// authorization_code, refresh_token or client_credentials (repeat; default: the first two).
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// An extra scope the client may ask for beyond openid/profile/email/offline_access (repeat).
        #[arg(long = "scope", allow_hyphen_values = true)]
        scopes: Vec<String>,
        #[command(flatten)]
        backchannel: BackchannelFlags,
        #[command(flatten)]
        metadata: MetadataFlags,
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List(JsonFlag),
    /// Make a client a resource server (an API tokens are for): its audience
    /// (RFC 8707 resource indicator, named in the `aud` of tokens carrying a
    /// scope it serves) and the scopes it serves; `--remove` undoes it.
    ResourceServer {
        /// The client_id.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// An absolute URI without a fragment, e.g. https://notes.example/api.
        #[arg(long, required_unless_present = "remove")]
        audience: Option<String>,
        /// A scope it serves (repeat).
        #[arg(long = "serves", allow_hyphen_values = true)]
        scopes: Vec<String>,
        /// Make it an ordinary client again.
        #[arg(long, conflicts_with_all = ["audience", "scopes"])]
        remove: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change a client's token policy (overrides of the defaults).
    Set {
        /// The client_id.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        #[command(flatten)]
        flags: PolicyFlags,
        #[command(flatten)]
        backchannel: BackchannelFlags,
        #[command(flatten)]
        metadata: MetadataFlags,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScopeCommand {
    /// List the catalogued scopes (the OpenID scopes and Latchkey's own are built in).
    List(JsonFlag),
    /// Add a scope, or change its words or sensitivity.
    Set {
        /// The scope, e.g. notes:read (RFC 6749 §3.3: no spaces, quotes or backslashes).
        #[arg(allow_hyphen_values = true)]
        scope: String,
        /// What it lets an app do, as people read it on the consent page ("Read your notes"; at most 120 characters).
        #[arg(long, allow_hyphen_values = true)]
        description: String,
        /// Listed first and marked on the consent page and in My apps: on (the bare flag), off; not given: unchanged (a new scope: off).
        #[arg(long, value_name = "on|off", num_args = 0..=1, default_missing_value = "on")]
        sensitive: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a scope no client is registered for any more.
    Remove {
        #[arg(allow_hyphen_values = true)]
        scope: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UpstreamCommand {
    /// Add a provider; prints the redirect URI to register there.
    Add {
        /// Shown on the sign-in page: "Sign in with NAME".
        #[arg(long, allow_hyphen_values = true)]
        name: String,
        /// Its issuer URL (discovery: ISSUER/.well-known/openid-configuration).
        #[arg(long)]
        issuer: String,
        /// The client_id Latchkey has there.
        #[arg(long, allow_hyphen_values = true)]
        client_id: String,
        /// Read the client secret from standard input (one line).
        #[arg(long, required = true)]
        client_secret_stdin: bool,
        /// A scope to ask for besides openid (repeat), e.g. profile, email, offline_access.
        #[arg(long = "scope", allow_hyphen_values = true)]
        scopes: Vec<String>,
        #[command(flatten)]
        settings: UpstreamFlags,
        #[arg(long)]
        json: bool,
    },
    /// List providers.
    List(JsonFlag),
    /// Change a provider (by id or name); flags not given stay as they are.
    Set {
        /// The provider's id or name.
        #[arg(allow_hyphen_values = true)]
        provider: String,
        #[arg(long, allow_hyphen_values = true)]
        name: Option<String>,
        #[arg(long, allow_hyphen_values = true)]
        client_id: Option<String>,
        /// Read a new client secret from standard input (one line).
        #[arg(long)]
        client_secret_stdin: bool,
        /// The scopes to ask for besides openid (repeat; replaces the list).
        #[arg(long = "scope", allow_hyphen_values = true)]
        scopes: Vec<String>,
        #[command(flatten)]
        settings: UpstreamFlags,
        #[arg(long)]
        json: bool,
    },
    /// Remove a provider: no new sign-ins through it; its users stay linked.
    Remove {
        /// The provider's id or name.
        #[arg(allow_hyphen_values = true)]
        provider: String,
        #[arg(long)]
        json: bool,
    },
}

/// A provider's logout settings, as flags.
#[derive(Debug, Args, Default)]
pub struct UpstreamFlags {
    /// Revoke the provider's tokens (RFC 7009) when a sign-in through it ends: on (default), off.
    #[arg(long, value_name = "on|off")]
    pub revoke_at_logout: Option<String>,
    /// After signing out, offer to sign out of the provider too (RP-initiated logout): on, off (default).
    #[arg(long, value_name = "on|off")]
    pub end_upstream_session: Option<String>,
    /// Where revocations go, when discovery names no revocation_endpoint; `none` clears it.
    #[arg(long, value_name = "URL")]
    pub revocation_endpoint: Option<String>,
    /// The token parameter's name in revocations (default `token`); `none` clears it.
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub revocation_token_param: Option<String>,
    /// An extra form parameter sent with each revocation (repeat; replaces the list).
    #[arg(
        long = "revocation-param",
        value_name = "NAME=VALUE",
        allow_hyphen_values = true
    )]
    pub revocation_params: Vec<String>,
    /// Send no extra revocation parameters.
    #[arg(long, conflicts_with = "revocation_params")]
    pub clear_revocation_params: bool,
}

impl UpstreamFlags {
    /// The change these flags ask for (fields not given: `None`).
    pub fn change(&self) -> Result<app::domain::upstream::ProviderChange, InvalidSetting> {
        let clearable =
            |raw: &Option<String>| raw.as_deref().map(|v| (v != "none").then(|| v.to_owned()));
        let params = if self.clear_revocation_params {
            Some(Default::default())
        } else if self.revocation_params.is_empty() {
            None
        } else {
            Some(
                app::domain::upstream::parse_param_pairs(&self.revocation_params)
                    .map_err(|e| InvalidSetting(e.to_string()))?,
            )
        };
        Ok(app::domain::upstream::ProviderChange {
            revoke_at_logout: on_off("revoke-at-logout", &self.revoke_at_logout)?,
            end_upstream_session: on_off("end-upstream-session", &self.end_upstream_session)?,
            revocation_endpoint: clearable(&self.revocation_endpoint),
            revocation_token_param: clearable(&self.revocation_token_param),
            revocation_extra_params: params,
            ..Default::default()
        })
    }
}

// Ids are random base64url and may begin with `-`: every argument that takes
// an id, a name or a scope (positional or `--flag VALUE`) is declared
// `allow_hyphen_values`, or clap would take `-eMmg…` for a flag.

/// A client's OpenID Connect Back-Channel Logout registration (§2.2), as flags.
#[derive(Debug, Args, Default)]
pub struct BackchannelFlags {
    /// Where logout tokens are POSTed: https, or http on 127.0.0.1/[::1]/localhost; `none` removes it.
    #[arg(long, value_name = "URL")]
    pub backchannel_logout_uri: Option<String>,
    /// Put `sid` in every logout token of a sign-in: on (the bare flag), off.
    #[arg(long, value_name = "on|off", num_args = 0..=1, default_missing_value = "on")]
    pub backchannel_logout_session_required: Option<String>,
}

impl BackchannelFlags {
    /// The registration change these flags ask for (`None` fields: keep), the
    /// URI checked by the registration rules; or the flag that is wrong.
    pub fn change(&self) -> Result<ClientChange, InvalidSetting> {
        let uri = match self.backchannel_logout_uri.as_deref() {
            None => None,
            Some("none") => Some(None),
            Some(raw) => Some(Some(
                validate_logout_uri(raw).map_err(|e| InvalidSetting(e.to_string()))?,
            )),
        };
        let required = on_off(
            "backchannel-logout-session-required",
            &self.backchannel_logout_session_required,
        )?;
        Ok(ClientChange {
            backchannel_logout_uri: uri,
            backchannel_logout_session_required: required,
            ..ClientChange::default()
        })
    }
}

/// What people see of a client besides its name (RFC 7591 §2), as flags:
/// each URL https (http only on 127.0.0.1/[::1]/localhost), at most 500
/// characters; an empty value removes it (`client set`).
#[derive(Debug, Args, Default)]
pub struct MetadataFlags {
    /// The app's logo (a square image works best), shown on the consent page and in My apps.
    #[arg(long, value_name = "URL")]
    pub logo_uri: Option<String>,
    /// The app's home page; people see its host next to the name.
    #[arg(long, value_name = "URL")]
    pub client_uri: Option<String>,
    /// The app's privacy policy.
    #[arg(long, value_name = "URL")]
    pub policy_uri: Option<String>,
    /// The app's terms of service.
    #[arg(long, value_name = "URL")]
    pub tos_uri: Option<String>,
    /// One short paragraph (at most 300 characters) saying what the app is.
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub description: Option<String>,
}

impl MetadataFlags {
    /// The change these flags ask for (`None`: keep; `Some("")`: remove).
    pub fn change(&self) -> ClientMetadataChange {
        ClientMetadataChange {
            logo_uri: self.logo_uri.clone(),
            client_uri: self.client_uri.clone(),
            policy_uri: self.policy_uri.clone(),
            tos_uri: self.tos_uri.clone(),
            description: self.description.clone(),
        }
    }
}

/// An `on|off` flag's value (`None`: not given); `InvalidSetting` names the flag.
pub fn on_off(flag: &str, raw: &Option<String>) -> Result<Option<bool>, InvalidSetting> {
    match raw.as_deref() {
        None => Ok(None),
        Some("on") => Ok(Some(true)),
        Some("off") => Ok(Some(false)),
        Some(other) => Err(InvalidSetting(format!(
            "invalid --{flag} {other:?}: expected on or off"
        ))),
    }
}

/// A configuration or input error: one line, exit code 2.
#[derive(Debug)]
pub struct InvalidSetting(pub String);

impl std::fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads the policy flags into a change (`policy::parse_change`), or names
/// the flag that is wrong. `inherit` returns a client's field to the default.
pub fn policy_change(
    flags: &PolicyFlags,
    allow_inherit: bool,
) -> Result<PolicyChange, InvalidSetting> {
    let given = [
        ("refresh_enabled", &flags.refresh),
        ("access_ttl", &flags.access_ttl),
        ("refresh_idle_ttl", &flags.refresh_idle_ttl),
        ("refresh_absolute_ttl", &flags.refresh_absolute_ttl),
        ("rotate_refresh", &flags.rotate),
        ("reuse_grace", &flags.reuse_grace),
        ("revoke_on_logout", &flags.revoke_on_logout),
    ]
    .into_iter()
    .filter_map(|(key, raw)| {
        let raw = raw.as_deref()?;
        Some((
            key,
            if raw == "inherit" {
                Given::Inherit
            } else {
                Given::Text(raw)
            },
        ))
    });
    policy::parse_change(given, !allow_inherit).map_err(|e| match e {
        DomainError::Invalid { field, message } => {
            let flag = policy::FIELDS
                .iter()
                .find(|f| f.key == field)
                .map_or(field, |f| f.flag);
            InvalidSetting(format!("invalid --{flag}: {message}"))
        }
        other => InvalidSetting(other.to_string()),
    })
}

/// The master key from `LATCHKEY_MASTER_KEY`, if set; a malformed one is a configuration error.
pub fn master_key_from_env() -> Result<Option<MasterKey>, InvalidSetting> {
    match std::env::var(MASTER_KEY_ENV) {
        Ok(value) if !value.is_empty() => MasterKey::from_base64url(&value)
            .map(Some)
            .map_err(|why| InvalidSetting(format!("invalid {MASTER_KEY_ENV}: {why}"))),
        _ => Ok(None),
    }
}

/// Checks the settings every command shares.
pub fn validate_common(cli: &Cli) -> Result<Backend, InvalidSetting> {
    master_key_from_env()?;
    tracing_subscriber::EnvFilter::try_new(&cli.log_level).map_err(|e| {
        InvalidSetting(format!(
            "invalid LATCHKEY_LOG (--log-level) {:?}: {e}",
            cli.log_level
        ))
    })?;
    Backend::of_url(&cli.database_url).map_err(|why| {
        InvalidSetting(format!(
            "invalid LATCHKEY_DATABASE_URL (--database-url) {:?}: {why}",
            redact_password(&cli.database_url)
        ))
    })
}

/// The validated settings of `latchkey serve`.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    /// See `instances::set_ack_bound`.
    pub ack_bound: std::time::Duration,
    /// Without a trailing slash.
    pub issuer: String,
    pub site_root: String,
    /// Sign-in throttling.
    pub throttle: app::domain::throttle::Policy,
    /// Proxies whose `X-Forwarded-For` is believed (`callers::client_ip`).
    pub trusted_proxies: crate::callers::TrustedProxies,
    /// Request limits (`rate_limit`).
    pub rate_limits: crate::rate_limit::Config,
    /// Where `/metrics` is served (`metrics`); `None`: nowhere, nothing recorded.
    pub metrics_addr: Option<SocketAddr>,
}

impl ServeConfig {
    /// The session cookie is `Secure` when the issuer is https.
    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// `scheme://host[:port]` of the issuer, compared with `Origin` headers.
    pub fn origin(&self) -> String {
        url::Url::parse(&self.issuer)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }

    pub fn validate(args: &ServeArgs) -> Result<ServeConfig, InvalidSetting> {
        let addr: SocketAddr = args.addr.parse().map_err(|_| {
            InvalidSetting(format!(
                "invalid LATCHKEY_ADDR (--addr) {:?}: expected IP:PORT, e.g. 127.0.0.1:3000",
                args.addr
            ))
        })?;
        let issuer = validate_issuer(&args.issuer).map_err(|why| {
            InvalidSetting(format!(
                "invalid LATCHKEY_ISSUER (--issuer) {:?}: {why}",
                args.issuer
            ))
        })?;
        let ack_bound = parse_millis(&args.ack_bound)
            .filter(|d| *d >= instances::MIN_ACK_BOUND && *d <= std::time::Duration::from_secs(60))
            .ok_or_else(|| {
                InvalidSetting(format!(
                    "invalid LATCHKEY_ACK_BOUND (--ack-bound) {:?}: expected a duration from 250ms to 60s such as 250ms, 1s",
                    args.ack_bound
                ))
            })?;
        // Every flag first: the site is checked last (a test without one
        // still learns which flag is wrong).
        let config = ServeConfig {
            addr,
            ack_bound,
            issuer,
            site_root: args.site_root.clone(),
            throttle: throttle_policy(args)?,
            trusted_proxies: trusted_proxies(&args.trusted_proxies)?,
            rate_limits: rate_limits(args)?,
            metrics_addr: metrics_addr(&args.metrics_addr, addr)?,
        };
        let pkg = std::path::Path::new(&args.site_root)
            .join("pkg")
            .join("latchkey.js");
        if !pkg.is_file() {
            return Err(InvalidSetting(format!(
                "invalid LEPTOS_SITE_ROOT (--site-root) {:?}: {} is missing; build the site with `cargo leptos build`",
                args.site_root,
                pkg.display()
            )));
        }
        Ok(config)
    }
}

/// `--metrics-addr`: empty (none), or `IP:PORT` other than `--addr`.
fn metrics_addr(raw: &str, addr: SocketAddr) -> Result<Option<SocketAddr>, InvalidSetting> {
    match raw.trim() {
        "" => Ok(None),
        raw => raw
            .parse::<SocketAddr>()
            .ok()
            .filter(|m| *m != addr)
            .map(Some)
            .ok_or_else(|| {
                InvalidSetting(format!(
                    "invalid LATCHKEY_METRICS_ADDR (--metrics-addr) {raw:?}: expected IP:PORT other than --addr, e.g. 127.0.0.1:9464"
                ))
            }),
    }
}

/// The `--rate-limit-*` flags.
fn rate_limits(args: &ServeArgs) -> Result<crate::rate_limit::Config, InvalidSetting> {
    use crate::rate_limit::Rate;
    let rate = |flag: &str, var: &str, raw: &str| {
        Rate::parse(raw).map_err(|_| {
            InvalidSetting(format!(
                "invalid {var} (--{flag}) {raw:?}: expected N/s, N/min or N/h (N from 1 to 1000000000), or off"
            ))
        })
    };
    let failure_cost = args
        .rate_limit_failure_cost
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n <= 1000)
        .and_then(std::num::NonZeroU32::new)
        .ok_or_else(|| {
            InvalidSetting(format!(
                "invalid LATCHKEY_RATE_LIMIT_FAILURE_COST (--rate-limit-failure-cost) {:?}: expected a number from 1 to 1000",
                args.rate_limit_failure_cost
            ))
        })?;
    Ok(crate::rate_limit::Config {
        per_ip: rate(
            "rate-limit-per-ip",
            "LATCHKEY_RATE_LIMIT_PER_IP",
            &args.rate_limit_per_ip,
        )?,
        per_client: rate(
            "rate-limit-per-client",
            "LATCHKEY_RATE_LIMIT_PER_CLIENT",
            &args.rate_limit_per_client,
        )?,
        failure_cost,
    })
}

/// `--trusted-proxy` values: addresses or CIDR ranges.
fn trusted_proxies(raw: &[String]) -> Result<crate::callers::TrustedProxies, InvalidSetting> {
    let mut nets = Vec::new();
    for value in raw.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        let net = value
            .parse::<ipnet::IpNet>()
            .or_else(|_| value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                InvalidSetting(format!(
                    "invalid LATCHKEY_TRUSTED_PROXIES (--trusted-proxy) {value:?}: expected an IP address or a CIDR range such as 10.0.0.0/8"
                ))
            })?;
        nets.push(net);
    }
    Ok(crate::callers::TrustedProxies(std::sync::Arc::new(nets)))
}

/// The sign-in throttling flags: counts 0–1000, durations 1s–24h, the
/// longest lockout at least the first.
fn throttle_policy(args: &ServeArgs) -> Result<app::domain::throttle::Policy, InvalidSetting> {
    let count = |flag: &str, var: &str, raw: &str| {
        raw.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=1000).contains(n))
            .ok_or_else(|| {
                InvalidSetting(format!(
                    "invalid {var} (--{flag}) {raw:?}: expected a number from 0 (off) to 1000"
                ))
            })
    };
    let duration = |flag: &str, var: &str, raw: &str| {
        duration_secs(raw)
            .ok()
            .filter(|s| (1..=86_400).contains(s))
            .ok_or_else(|| {
                InvalidSetting(format!(
                    "invalid {var} (--{flag}) {raw:?}: expected a duration from 1s to 24h such as 30s, 15m, 1h"
                ))
            })
    };
    let policy = app::domain::throttle::Policy {
        username_failures: count(
            "signin-failures-per-user",
            "LATCHKEY_SIGNIN_FAILURES_PER_USER",
            &args.signin_failures_per_user,
        )?,
        ip_failures: count(
            "signin-failures-per-ip",
            "LATCHKEY_SIGNIN_FAILURES_PER_IP",
            &args.signin_failures_per_ip,
        )?,
        window_secs: duration(
            "signin-failure-window",
            "LATCHKEY_SIGNIN_FAILURE_WINDOW",
            &args.signin_failure_window,
        )?,
        first_lock_secs: duration(
            "signin-lockout",
            "LATCHKEY_SIGNIN_LOCKOUT",
            &args.signin_lockout,
        )?,
        max_lock_secs: duration(
            "signin-lockout-max",
            "LATCHKEY_SIGNIN_LOCKOUT_MAX",
            &args.signin_lockout_max,
        )?,
    };
    if policy.max_lock_secs < policy.first_lock_secs {
        return Err(InvalidSetting(format!(
            "invalid LATCHKEY_SIGNIN_LOCKOUT_MAX (--signin-lockout-max) {:?}: shorter than the first lockout {:?}",
            args.signin_lockout_max, args.signin_lockout
        )));
    }
    Ok(policy)
}

/// `250ms`, or any duration `duration_secs` takes (`1s`, `2m`).
fn parse_millis(raw: &str) -> Option<std::time::Duration> {
    match raw.trim().strip_suffix("ms") {
        Some(ms) if !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()) => {
            ms.parse().ok().map(std::time::Duration::from_millis)
        }
        Some(_) => None,
        None => duration_secs(raw)
            .ok()
            .map(|s| std::time::Duration::from_secs(s as u64)),
    }
}

/// An issuer is an absolute http(s) URL with no query or fragment (OpenID Connect Discovery §3).
pub fn validate_issuer(raw: &str) -> Result<String, &'static str> {
    let url = url::Url::parse(raw)
        .map_err(|_| "expected an absolute URL such as https://id.example.com")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL");
    }
    if url.host_str().is_none() {
        return Err("has no host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Hides the password of a database URL in messages.
fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, ClientCommand, Command, UpstreamCommand, UserCommand};

    /// Ids are base64url: one in 32 begins with `-`, which clap would read
    /// as a flag unless the argument allows it.
    #[test]
    fn ids_beginning_with_a_hyphen_are_ids() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("latchkey").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"))
                .command
        };
        match parse(&["client", "set", "-eMmgLEuaSMIW844JD18", "--refresh", "off"]) {
            Command::Client(ClientCommand::Set { client_id, .. }) => {
                assert_eq!(client_id, "-eMmgLEuaSMIW844JD18")
            }
            other => panic!("{other:?}"),
        }
        match parse(&["client", "resource-server", "-x", "--remove"]) {
            Command::Client(ClientCommand::ResourceServer { client_id, .. }) => {
                assert_eq!(client_id, "-x")
            }
            other => panic!("{other:?}"),
        }
        match parse(&["upstream", "remove", "-abc"]) {
            Command::Upstream(UpstreamCommand::Remove { provider, .. }) => {
                assert_eq!(provider, "-abc")
            }
            other => panic!("{other:?}"),
        }
        match parse(&["upstream", "set", "-abc", "--revoke-at-logout", "off"]) {
            Command::Upstream(UpstreamCommand::Set { provider, .. }) => {
                assert_eq!(provider, "-abc")
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "upstream",
            "add",
            "--name",
            "-Corp",
            "--issuer",
            "https://sso.example",
            "--client-id",
            "-hwBpCFH_9I8Q7GYtgQ7",
            "--client-secret-stdin",
            "--scope",
            "-x",
        ]) {
            Command::Upstream(UpstreamCommand::Add {
                name,
                client_id,
                scopes,
                ..
            }) => {
                assert_eq!(
                    (name.as_str(), client_id.as_str()),
                    ("-Corp", "-hwBpCFH_9I8Q7GYtgQ7")
                );
                assert_eq!(scopes, ["-x"]);
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "upstream",
            "set",
            "x",
            "--client-id",
            "-abc",
            "--revocation-param",
            "-a=b",
        ]) {
            Command::Upstream(UpstreamCommand::Set {
                client_id,
                settings,
                ..
            }) => {
                assert_eq!(client_id.as_deref(), Some("-abc"));
                assert_eq!(settings.revocation_params, ["-a=b"]);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["user", "add", "--username", "-bob", "--password-stdin"]) {
            Command::User(UserCommand::Add { username, .. }) => assert_eq!(username, "-bob"),
            other => panic!("{other:?}"),
        }
        match parse(&["user", "unlock", "-bob"]) {
            Command::User(UserCommand::Unlock { username, .. }) => assert_eq!(username, "-bob"),
            other => panic!("{other:?}"),
        }
    }

    use super::*;

    #[test]
    fn issuer_is_normalised_and_checked() {
        assert_eq!(
            validate_issuer("https://id.example.com/").unwrap(),
            "https://id.example.com"
        );
        assert_eq!(
            validate_issuer("http://127.0.0.1:3000").unwrap(),
            "http://127.0.0.1:3000"
        );
        assert!(validate_issuer("ftp://x").is_err());
        assert!(validate_issuer("https://id.example.com/?a=1").is_err());
        assert!(validate_issuer("id.example.com").is_err());
    }

    #[test]
    fn database_password_is_hidden_in_messages() {
        assert_eq!(
            redact_password("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
    }
}

/// Property tests of [`parse_millis`] (`--ack-bound`): `NNNms`, or any
/// duration [`duration_secs`] takes, nothing else. `PROPTEST_CASES` raises
/// the case count.
#[cfg(test)]
mod proptests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn config() -> ProptestConfig {
        crate::proptest_config()
    }

    /// The rule written out: around optional whitespace, ASCII digits then
    /// `ms` are milliseconds (as many as a u64 holds); anything else is a
    /// whole number of seconds as `duration_secs` reads it.
    fn expected(raw: &str) -> Option<Duration> {
        let text = raw.trim();
        if let Some(digits) = text.strip_suffix("ms") {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let ms = digits.chars().try_fold(0u64, |n, c| {
                n.checked_mul(10)?.checked_add(u64::from(c as u8 - b'0'))
            })?;
            return Some(Duration::from_millis(ms));
        }
        duration_secs(text)
            .ok()
            .map(|s| Duration::from_secs(s as u64))
    }

    proptest! {
        #![proptest_config(config())]

        /// Any text gets the answer the rule gives, and no panic.
        #[test]
        fn ack_bounds_follow_the_rule(
            raw in prop_oneof![
                "[ \t]{0,2}[0-9]{0,22}(ms|s|m|h|d|)[ \t]{0,2}",
                "[-+]?[0-9]{0,4}([.][0-9]{1,3})?(ms|MS|Ms|µs|ns| ms|mss|)",
                prop::sample::select(vec![
                    "+5ms", "-5ms", "5 ms", " 5ms ", "5.0ms", "5msms", "ms", "0x5ms", "٥ms", "５ms",
                    "5MS", "1_000ms", "+0ms", "18446744073709551616ms", "250", "1s", "+1s",
                ])
                .prop_map(str::to_owned),
                any::<String>(),
            ],
        ) {
            prop_assert_eq!(parse_millis(&raw), expected(&raw), "{:?}", raw);
        }

        /// `NNNms` is NNN milliseconds, and `NNNs` NNN seconds.
        #[test]
        fn milliseconds_and_seconds_mean_what_they_say(n in prop_oneof![0u64..100_000, any::<u64>()]) {
            prop_assert_eq!(parse_millis(&format!("{n}ms")), Some(Duration::from_millis(n)));
            let secs = parse_millis(&format!("{n}s"));
            if n <= app::domain::policy::MAX_DURATION_SECS as u64 {
                prop_assert_eq!(secs, Some(Duration::from_secs(n)));
            } else {
                prop_assert_eq!(secs, None);
            }
        }
    }
}
