//! The commands. Output meant for people goes to stdout as text, or as JSON
//! with `--json`; logs and errors go to stderr. Exit codes: 0 done, 1 failed
//! (database or internal), 2 invalid input or configuration.

use std::{io::Read, process::ExitCode};

use app::domain::{
    audit::{self, AuditEvent, AuditKind},
    backchannel::RetryPolicy,
    clients::{self, ClientChange, ClientKind, GrantType, NewClient},
    demo, instances,
    keys::{self, KeyRing, MasterKey},
    policy::{self, Policy, PolicyChange},
    resource_servers,
    retention::{self, Retention},
    revocation::RevokedSets,
    scopes, upstream,
    usage::Usage,
    users,
    web_session::WebSessionStore,
    Db, DomainError,
};
use clap::Parser;
use serde_json::json;

use crate::background::{Background, Work};
use crate::config::{
    master_key_from_env, on_off, outbox_retry, policy_change, validate_common, Cli, ClientCommand,
    Command, InvalidSetting, KeysCommand, PolicyCommand, ScopeCommand, ServeConfig,
    UpstreamCommand, UserCommand,
};

/// Why a command failed, and with which exit code.
#[derive(Debug)]
pub enum Failure {
    /// Exit 2: the input or configuration is wrong; nothing was changed.
    Invalid(String),
    /// Exit 1: something failed that the input did not cause.
    Failed(String),
}

impl From<InvalidSetting> for Failure {
    fn from(e: InvalidSetting) -> Self {
        Failure::Invalid(e.0)
    }
}

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Self {
        if e.is_caller_error() {
            Failure::Invalid(e.to_string())
        } else {
            Failure::Failed(e.to_string())
        }
    }
}

/// Parses the command line, runs the command, prints any error as one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid(message)) => {
            eprintln!("latchkey: error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("latchkey: failed: {message}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    validate_common(&cli)?;
    // Validate everything the command needs before opening (and so creating) anything.
    let serve = match &cli.command {
        Command::Serve(args) => Some((
            ServeConfig::validate(args)?,
            outbox_retry(args)?,
            args.retention.validate()?,
        )),
        _ => None,
    };
    let retention = match &cli.command {
        Command::Prune { retention, .. } => Some(retention.validate()?),
        _ => None,
    };
    let sensitive = match &cli.command {
        // Not given: the scope keeps its mark (a new one is not sensitive).
        Command::Scope(ScopeCommand::Set { sensitive, .. }) => on_off("sensitive", sensitive)?,
        _ => None,
    };
    let password = match &cli.command {
        Command::User(UserCommand::Add { username, .. }) => {
            users::validate_username(username)?;
            Some(read_password_stdin()?)
        }
        _ => None,
    };
    let change: Option<PolicyChange> = match &cli.command {
        Command::Client(ClientCommand::Set { flags, .. }) => Some(policy_change(flags, true)?),
        Command::Policy(PolicyCommand::Set { flags, .. }) => Some(policy_change(flags, false)?),
        _ => None,
    };
    let registration: Option<ClientChange> = match &cli.command {
        Command::Client(ClientCommand::Set {
            backchannel,
            metadata,
            ..
        }) => {
            let metadata = metadata.change();
            metadata.check()?;
            Some(ClientChange {
                metadata,
                ..backchannel.change()?
            })
        }
        _ => None,
    };
    // An upstream provider to add or change, its secret read from stdin.
    let upstream_input = match &cli.command {
        Command::Upstream(UpstreamCommand::Add {
            name,
            issuer,
            client_id,
            scopes,
            settings,
            ..
        }) => {
            let change = settings.change()?;
            let new = upstream::NewProvider {
                name: name.clone(),
                issuer: issuer.clone(),
                client_id: client_id.clone(),
                client_secret: read_secret_stdin()?,
                scopes: scopes.clone(),
                revoke_at_logout: change.revoke_at_logout.unwrap_or(true),
                end_upstream_session: change.end_upstream_session.unwrap_or(false),
                revocation_endpoint: change.revocation_endpoint.flatten(),
                revocation_token_param: change.revocation_token_param.flatten(),
                revocation_extra_params: change.revocation_extra_params.unwrap_or_default(),
            };
            Some(Ok(new.validated()?))
        }
        Command::Upstream(UpstreamCommand::Set {
            name,
            client_id,
            client_secret_stdin,
            scopes,
            settings,
            ..
        }) => {
            let mut change = settings.change()?;
            change.name = name.clone();
            change.client_id = client_id.clone();
            change.scopes = (!scopes.is_empty()).then(|| scopes.clone());
            if *client_secret_stdin {
                change.client_secret = Some(read_secret_stdin()?);
            }
            Some(Err(change))
        }
        _ => None,
    };
    let client = match &cli.command {
        Command::Client(ClientCommand::Add { .. }) => {
            let new = new_client_from_args(&cli.command)?;
            new.validated()?;
            Some(new)
        }
        _ => None,
    };

    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log_level))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Failed(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let db = open(&cli.database_url).await?;
        let result = match cli.command {
            Command::Serve(_) => {
                let master = master_key(&cli.master_key_file)?;
                let (config, retry, retention) = serve.expect("validated above");
                serve_until_stopped(db.clone(), master, config, retry, retention).await
            }
            Command::Client(ClientCommand::Set { client_id, json, .. }) => {
                let (change, registration) = (change.expect("validated above"), registration.expect("validated above"));
                let not_found = |e| match e {
                    DomainError::NotFound => Failure::Invalid(format!("client_id: no client {client_id:?}")),
                    other => other.into(),
                };
                // The policy first: its rules need the database, the registration's were checked above.
                let has_registration = registration != ClientChange::default();
                let policy = if change != PolicyChange::default() || !has_registration {
                    Some(policy::set_client(&db, &client_id, &change, None).await.map_err(not_found)?)
                } else {
                    None
                };
                let client = if has_registration {
                    Some(clients::update_client(&db, &client_id, &registration, &Default::default()).await.map_err(not_found)?)
                } else {
                    None
                };
                if json {
                    let mut out = json!({ "client_id": client_id });
                    if let Some((overrides, effective)) = &policy {
                        out["overrides"] = json!(overrides);
                        out["effective"] = json!(effective);
                    }
                    if let Some(client) = &client {
                        out["client"] = json!(client);
                    }
                    print_json(&out);
                } else {
                    if let Some((_, effective)) = &policy {
                        println!("policy of client {client_id} changed; effective now:");
                        print_policy(effective);
                    }
                    if let Some(client) = &client {
                        println!("registration of client {client_id}:");
                        print_backchannel(client);
                        print_metadata(&client.metadata);
                    }
                }
                Ok(())
            }
            Command::Policy(PolicyCommand::Show(flag)) => {
                let defaults = policy::defaults(&db).await?;
                if flag.json {
                    print_json(&defaults);
                } else {
                    print_policy(&defaults);
                }
                Ok(())
            }
            Command::Policy(PolicyCommand::Set { json, .. }) => {
                let after = policy::set_defaults(&db, &change.expect("validated above"), None).await?;
                if json {
                    print_json(&after);
                } else {
                    println!("policy defaults changed:");
                    print_policy(&after);
                }
                Ok(())
            }
            Command::Keys(KeysCommand::Rotate(flag)) => {
                let master = master_key(&cli.master_key_file)?;
                // Make sure keys exist (and are readable with this master key) before rotating them.
                KeyRing::load_or_create(&db, &master).await?;
                let kids = keys::rotate(&db, &master).await?;
                audit::record(
                    &db,
                    &AuditEvent::new(AuditKind::KeysRotated).detail(json!({ "active_kids": kids })),
                )
                .await?;
                if flag.json {
                    print_json(&json!({ "active_kids": kids }));
                } else {
                    println!("new signing keys are active: {}", kids.join(", "));
                    println!("Running servers pick them up within a minute; old keys keep verifying until their tokens expired.");
                }
                Ok(())
            }
            Command::Migrate => {
                println!("database is up to date");
                Ok(())
            }
            Command::Backup { file, json } => {
                let bytes = db.backup_to(std::path::Path::new(&file)).await?;
                if json {
                    print_json(&json!({ "file": file, "bytes": bytes }));
                } else {
                    println!("backed up to {file} ({bytes} bytes; integrity check ok)");
                    println!("Keep the master key with it: without it the signing keys and upstream secrets in the copy cannot be read.");
                }
                Ok(())
            }
            Command::Prune { dry_run, json, .. } => {
                let retention = retention.expect("validated above");
                let report = if dry_run {
                    retention::dry_run(&db, &retention).await?
                } else {
                    retention::run(&db, &retention).await?
                };
                if json {
                    print_json(&json!({ "dry_run": dry_run, "rules": report }));
                } else {
                    let verb = if dry_run { "WOULD DELETE" } else { "DELETED" };
                    println!("{verb:>12}  WHAT");
                    for pruned in &report {
                        println!("{:>12}  {}", pruned.rows, pruned.name);
                    }
                }
                Ok(())
            }
            Command::User(UserCommand::Add { username, admin, json, .. }) => {
                let user = users::add_user(&db, &username, &password.unwrap_or_default(), admin).await?;
                if json {
                    print_json(&user);
                } else {
                    println!("created user {} (id {}){}", user.username, user.id, if admin { ", admin" } else { "" });
                }
                Ok(())
            }
            Command::User(UserCommand::Unlock { username, json }) => {
                let user = users::find_by_username(&db, &username)
                    .await?
                    .ok_or_else(|| Failure::Invalid(format!("username: no user {username:?}")))?;
                let actor = app::domain::audit::Actor::default();
                let was_locked = app::domain::throttle::clear(&db, &user.id, &user.username, &actor).await?;
                if json {
                    print_json(&json!({ "username": user.username, "was_locked": was_locked }));
                } else if was_locked {
                    println!("{} may sign in again (the lockout is lifted, failures forgotten)", user.username);
                } else {
                    println!("{} was not locked; failures forgotten", user.username);
                }
                Ok(())
            }
            Command::User(UserCommand::List(flag)) => {
                let list = users::list_users(&db).await?;
                if flag.json {
                    print_json(&list);
                } else {
                    println!("{:<32} {:<6} {:<9} CREATED (UTC)", "USERNAME", "ADMIN", "DISABLED");
                    for u in list {
                        println!(
                            "{:<32} {:<6} {:<9} {}",
                            u.username,
                            yes_no(u.is_admin),
                            yes_no(u.disabled_at.is_some()),
                            utc(u.created_at)
                        );
                    }
                }
                Ok(())
            }
            Command::Client(ClientCommand::Add { json, .. }) => {
                let (client, secret) = clients::add_client(&db, &client.expect("validated above")).await?;
                if json {
                    print_json(&json!({ "client": client, "client_secret": secret.as_ref().map(|s| &s.0) }));
                } else {
                    println!("created client {:?} ({})", client.name, client.kind.as_str());
                    println!("client_id:     {}", client.client_id);
                    if client.backchannel_logout_uri.is_some() {
                        print_backchannel(&client);
                    }
                    if client.metadata != Default::default() {
                        print_metadata(&client.metadata);
                    }
                    if let Some(secret) = secret {
                        println!("client_secret: {}", secret.0);
                        println!("Store the secret now: it is shown only once (Latchkey keeps only its hash).");
                    }
                }
                Ok(())
            }
            Command::Client(ClientCommand::ResourceServer {
                client_id,
                audience,
                scopes,
                remove,
                json,
            }) => {
                let actor = app::domain::audit::Actor::default();
                if remove {
                    match resource_servers::remove(&db, &client_id, &actor).await {
                        Ok(true) => {
                            println!("client {client_id} is no longer a resource server");
                            Ok(())
                        }
                        Ok(false) => Err(Failure::Invalid(format!(
                            "client_id: {client_id:?} is not a resource server"
                        ))),
                        Err(e) => Err(e.into()),
                    }
                } else {
                    let audience = audience.unwrap_or_default();
                    match resource_servers::set(&db, &client_id, &audience, &scopes, &actor).await {
                        Ok(registered) if json => {
                            print_json(&registered);
                            Ok(())
                        }
                        Ok(registered) => {
                            let serves = match registered.scopes.is_empty() {
                                true => "no scope yet".to_owned(),
                                false => registered.scopes.join(" "),
                            };
                            println!(
                                "client {client_id} is a resource server: audience {}, serves {serves}",
                                registered.audience
                            );
                            Ok(())
                        }
                        Err(DomainError::NotFound) => {
                            Err(Failure::Invalid(format!("client_id: no client {client_id:?}")))
                        }
                        Err(e) => Err(e.into()),
                    }
                }
            }
            Command::Client(ClientCommand::List(flag)) => {
                let list = clients::list_clients(&db).await?;
                if flag.json {
                    print_json(&list);
                } else {
                    println!("{:<24} {:<28} {:<13} GRANT TYPES", "CLIENT_ID", "NAME", "KIND");
                    for c in list {
                        let grants: Vec<_> = c.grant_types.iter().map(|g| g.as_str()).collect();
                        println!("{:<24} {:<28} {:<13} {}", c.client_id, c.name, c.kind.as_str(), grants.join(" "));
                    }
                }
                Ok(())
            }
            Command::Upstream(command) => {
                run_upstream(&db, &cli.master_key_file, command, upstream_input).await
            }
            Command::Scope(command) => run_scope(&db, command, sensitive).await,
            Command::Demo(flag) => {
                let report = demo::seed(&db).await?;
                if flag.json {
                    print_json(&report);
                } else {
                    print_demo(&report);
                }
                Ok(())
            }
        };
        db.close().await;
        result
    })
}

/// Connects and migrates: every command works on an up-to-date schema.
async fn open(url: &str) -> Result<Db, Failure> {
    let db = Db::connect(url)
        .await
        .map_err(|e| Failure::Failed(format!("cannot open the database: {e}")))?;
    db.migrate()
        .await
        .map_err(|e| Failure::Failed(format!("migrating the database failed: {e}")))?;
    Ok(db)
}

/// The master key: `LATCHKEY_MASTER_KEY`, else the key file (created at first start).
fn master_key(file: &str) -> Result<MasterKey, Failure> {
    match master_key_from_env()? {
        Some(key) => Ok(key),
        None => MasterKey::load_or_create_file(file)
            .map_err(|e| Failure::Failed(format!("master key file {file:?}: {e}"))),
    }
}

async fn serve_until_stopped(
    db: Db,
    master: MasterKey,
    config: ServeConfig,
    retry: RetryPolicy,
    retention: Retention,
) -> Result<(), Failure> {
    // First: what happens while the rest loads is counted too.
    let metrics = match config.metrics_addr {
        Some(addr) => {
            let handle = crate::metrics::install().map_err(Failure::Failed)?;
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                Failure::Failed(format!("cannot listen on {addr} for metrics: {e}"))
            })?;
            Some((handle, listener))
        }
        None => None,
    };
    let store = WebSessionStore::new(&db)
        .await
        .map_err(|e| Failure::Failed(format!("cannot prepare the session store: {e}")))?;
    // The change counter first: a change made while the rest loads is
    // applied again by the follower.
    let change = instances::change_generation(&db).await?;
    let keys = KeyRing::load_or_create(&db, &master).await?;
    let revoked = RevokedSets::load(&db).await?;
    // Listening before registering: an instance that cannot bind its port
    // never appears in the registry for the others to wait for.
    let addr = config.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Failed(format!("cannot listen on {addr}: {e}")))?;
    instances::set_ack_bound(config.ack_bound);
    let me = instances::register(&db, revoked.applied(), change).await?;
    revoked.enforce_freshness();
    let issuer = config.issuer.clone();
    let upstreams = crate::upstream::Upstreams::new(&master);
    let db_for_exit = db.clone();
    let usage = Usage::new(db.clone());
    let parts = crate::state::Parts {
        db,
        keys,
        revoked,
        config,
        session_store: store,
        usage: usage.clone(),
        upstreams,
    };
    let background = Background::start(
        &parts,
        Work {
            since_change: change,
            master_key: master,
            outbox: Some(retry),
            retention: Some(retention),
        },
    );
    let (app, state) = crate::http::build(parts, axum::Router::new());
    let metrics = metrics.map(|(handle, listener)| {
        tracing::info!(addr = ?listener.local_addr().ok(), "metrics at /metrics");
        tokio::spawn(async move {
            let router = crate::metrics::router(handle, state);
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        })
    });
    tracing::info!(%addr, %issuer, "latchkey is listening; sign in at {issuer}/signin");
    // On SIGTERM or Ctrl-C: stop accepting, end the revocation streams, let
    // requests in flight finish — for at most SHUTDOWN_GRACE.
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        crate::oauth::feed::end_streams();
        let _ = stopping_tx.send(true);
    });
    let served = tokio::select! {
        served = served => served,
        _ = async {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("requests still in flight {SHUTDOWN_GRACE:?} after the signal; stopping anyway");
            Ok(())
        }
    };
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    background.stop();
    if let Err(e) = usage.flush().await {
        tracing::warn!(error = %e, "writing the last usage counts failed");
    }
    if let Err(e) = instances::deregister(&db_for_exit, &me).await {
        tracing::warn!(error = %e, "could not deregister this instance; it ages out");
    }
    served.map_err(|e| Failure::Failed(format!("server error: {e}")))
}

/// How long requests in flight may take to finish after SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// Reads the password from stdin: one line, its line ending removed.
/// `latchkey upstream …`; `input` is the validated provider of `add`
/// (`Ok`) or the change of `set` (`Err`).
async fn run_upstream(
    db: &Db,
    master_key_file: &str,
    command: UpstreamCommand,
    input: Option<Result<upstream::NewProvider, upstream::ProviderChange>>,
) -> Result<(), Failure> {
    let actor = app::domain::audit::Actor::default();
    fn not_found(provider: &str) -> impl Fn(DomainError) -> Failure + '_ {
        move |e| match e {
            DomainError::NotFound => {
                Failure::Invalid(format!("provider: no upstream provider {provider:?}"))
            }
            other => other.into(),
        }
    }
    match (command, input) {
        (UpstreamCommand::Add { json, .. }, Some(Ok(new))) => {
            let sealer = upstream::sealer(&checked_master_key(db, master_key_file).await?);
            let provider = upstream::add(db, &sealer, &new, &actor).await?;
            if json {
                print_json(&provider);
            } else {
                println!(
                    "added upstream provider {:?} (id {})",
                    provider.name, provider.id
                );
                print_provider(&provider);
                print_registration_hint(&provider);
            }
            Ok(())
        }
        (UpstreamCommand::Set { provider, json, .. }, Some(Err(change))) => {
            let sealer = upstream::sealer(&checked_master_key(db, master_key_file).await?);
            let after = upstream::update(db, &sealer, &provider, &change, &actor)
                .await
                .map_err(not_found(&provider))?;
            if json {
                print_json(&after);
            } else {
                println!(
                    "upstream provider {:?} (id {}) changed:",
                    after.name, after.id
                );
                print_provider(&after);
            }
            Ok(())
        }
        (UpstreamCommand::Remove { provider, json }, _) => {
            let removed = upstream::remove(db, &provider, &actor)
                .await
                .map_err(not_found(&provider))?;
            if json {
                print_json(&json!({ "removed": removed.id }));
            } else {
                println!(
                    "removed upstream provider {:?} (id {}); its users stay and can sign in again if it is added back",
                    removed.name, removed.id
                );
            }
            Ok(())
        }
        (UpstreamCommand::List(flag), _) => {
            let list = upstream::list(db).await?;
            if flag.json {
                print_json(&list);
            } else {
                println!("{:<24} {:<24} {:<7} ISSUER", "ID", "NAME", "REVOKE");
                for p in list {
                    println!(
                        "{:<24} {:<24} {:<7} {}",
                        p.id,
                        p.name,
                        yes_no(p.revoke_at_logout),
                        p.issuer
                    );
                }
            }
            Ok(())
        }
        _ => unreachable!("the input matches the command"),
    }
}

/// The master key, proven to be this database's: it decrypts the stored
/// signing keys (made now when there are none yet, as `serve` would). A secret
/// sealed under another key would be unreadable to the server.
async fn checked_master_key(db: &Db, file: &str) -> Result<MasterKey, Failure> {
    let from_env = master_key_from_env()?.is_some();
    if !from_env && !std::path::Path::new(file).exists() && keys::exist(db).await? {
        // Not a new one beside a database that has keys: they were made
        // under another, which is where the server reads secrets with.
        return Err(Failure::Invalid(format!(
            "master key: no file {file:?} here, and this database's signing keys were made \
             under another master key (run this where `latchkey serve` runs, or set \
             LATCHKEY_MASTER_KEY / --master-key-file)"
        )));
    }
    let master = master_key(file)?;
    KeyRing::load_or_create(db, &master).await.map_err(|e| {
        Failure::Invalid(format!(
            "master key: {e} (run this where `latchkey serve` runs, or set LATCHKEY_MASTER_KEY / --master-key-file)"
        ))
    })?;
    Ok(master)
}

fn print_provider(p: &upstream::Provider) {
    let or_default = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_owned());
    println!("  issuer:               {}", p.issuer);
    println!("  client_id:            {}", p.client_id);
    println!("  scopes:               openid {}", p.scopes.join(" "));
    println!(
        "  revoke at logout:     {}",
        if p.revoke_at_logout { "on" } else { "off" }
    );
    println!(
        "  end upstream session: {}",
        if p.end_upstream_session { "on" } else { "off" }
    );
    println!(
        "  revocation endpoint:  {}",
        or_default(&p.revocation_endpoint, "from discovery")
    );
    println!("  token parameter:      {}", p.token_param());
    if !p.revocation_extra_params.is_empty() {
        let pairs: Vec<String> = p
            .revocation_extra_params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("  extra parameters:     {}", pairs.join(" "));
    }
}

/// What to register at the provider: the callback under this server's issuer.
fn print_registration_hint(p: &upstream::Provider) {
    let issuer = std::env::var("LATCHKEY_ISSUER").unwrap_or_else(|_| "<issuer>".to_owned());
    println!(
        "Register this redirect URI at the provider: {}",
        crate::upstream::redirect_uri(&issuer)
    );
    if p.end_upstream_session {
        println!(
            "and this post-logout redirect URI: {}{}",
            issuer.trim_end_matches('/'),
            app::paths::SIGN_IN
        );
    }
}

/// One line of standard input: an upstream client secret.
fn read_secret_stdin() -> Result<String, Failure> {
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .map_err(|e| Failure::Invalid(format!("client_secret: cannot read standard input: {e}")))?;
    let secret = input.lines().next().unwrap_or_default().to_owned();
    if secret.is_empty() {
        return Err(Failure::Invalid(
            "client_secret: standard input is empty".into(),
        ));
    }
    Ok(secret)
}

fn read_password_stdin() -> Result<String, Failure> {
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .map_err(|e| Failure::Invalid(format!("password: cannot read standard input: {e}")))?;
    let password = input.lines().next().unwrap_or_default().to_owned();
    users::validate_password(&password)?;
    Ok(password)
}

fn new_client_from_args(command: &Command) -> Result<NewClient, Failure> {
    let Command::Client(ClientCommand::Add {
        name,
        redirect_uris,
        post_logout_redirect_uris,
        public,
        grant_types,
        scopes,
        backchannel,
        metadata,
        ..
    }) = command
    else {
        unreachable!("called for client add only")
    };
    let backchannel = backchannel.change()?;
    if backchannel.backchannel_logout_uri == Some(None) {
        return Err(Failure::Invalid(
            "backchannel_logout_uri: \"none\" removes a URI; a new client simply goes without"
                .into(),
        ));
    }
    let grant_types = grant_types
        .iter()
        .map(|g| {
            GrantType::parse(g).ok_or_else(|| {
                Failure::Invalid(format!(
                    "grant_type: {g:?} is not one of authorization_code, refresh_token, client_credentials"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NewClient {
        name: name.clone(),
        kind: if *public {
            ClientKind::Public
        } else {
            ClientKind::Confidential
        },
        redirect_uris: redirect_uris.clone(),
        post_logout_redirect_uris: post_logout_redirect_uris.clone(),
        grant_types,
        extra_scopes: scopes.clone(),
        backchannel_logout_uri: backchannel.backchannel_logout_uri.flatten(),
        backchannel_logout_session_required: backchannel
            .backchannel_logout_session_required
            .unwrap_or(false),
        metadata: metadata.change().applied_to(&Default::default()),
    })
}

fn print_backchannel(client: &clients::Client) {
    println!(
        "  back-channel logout URI   {}",
        client.backchannel_logout_uri.as_deref().unwrap_or("(none)")
    );
    println!(
        "  session (sid) required    {}",
        yes_no(client.backchannel_logout_session_required)
    );
}

/// `latchkey scope list|set|remove`.
async fn run_scope(db: &Db, command: ScopeCommand, sensitive: Option<bool>) -> Result<(), Failure> {
    let actor = audit::Actor::default();
    match command {
        ScopeCommand::List(flag) => {
            let list = scopes::list(db).await?;
            if flag.json {
                print_json(&json!({ "scopes": list }));
            } else {
                println!("{:<28} {:<10} DESCRIPTION", "SCOPE", "SENSITIVE");
                for s in list {
                    println!(
                        "{:<28} {:<10} {}",
                        s.scope,
                        yes_no(s.sensitive),
                        s.description
                    );
                }
            }
        }
        ScopeCommand::Set {
            scope,
            description,
            json,
            ..
        } => {
            let entry = scopes::define(db, &scope, &description, sensitive, &actor).await?;
            if json {
                print_json(&json!({ "scope": entry }));
            } else {
                println!(
                    "scope {} now reads {:?}{}",
                    entry.scope,
                    entry.description,
                    if entry.sensitive { " (sensitive)" } else { "" }
                );
            }
        }
        ScopeCommand::Remove { scope, json } => {
            scopes::remove(db, &scope, &actor)
                .await
                .map_err(|e| match e {
                    DomainError::NotFound => {
                        Failure::Invalid(format!("scope: {scope:?} is not in the catalogue"))
                    }
                    other => other.into(),
                })?;
            if json {
                print_json(&json!({ "scope": scope, "removed": true }));
            } else {
                println!("scope {scope} removed from the catalogue");
            }
        }
    }
    Ok(())
}

fn print_metadata(metadata: &clients::ClientMetadata) {
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    println!("  logo                      {}", shown(&metadata.logo_uri));
    println!(
        "  home page                 {}",
        shown(&metadata.client_uri)
    );
    println!(
        "  privacy policy            {}",
        shown(&metadata.policy_uri)
    );
    println!("  terms of service          {}", shown(&metadata.tos_uri));
    println!(
        "  description               {}",
        shown(&metadata.description)
    );
}

fn print_demo(report: &demo::DemoReport) {
    println!("Demo data (created now, or found from an earlier run):");
    for u in &report.users {
        let password = match &u.password {
            Some(p) => format!("password {p}"),
            None => "(its password was changed since, so it is not shown)".into(),
        };
        println!(
            "  {:<5} username {:<8} {password}{}",
            if u.is_admin { "admin" } else { "user" },
            u.username,
            if u.created {
                ""
            } else {
                "   (already present)"
            }
        );
    }
    for c in &report.clients {
        let target = match c.redirect_uris.is_empty() {
            true => format!("resource server, audience {}", demo::NOTES_API_AUDIENCE),
            false => format!("redirect_uri {}", c.redirect_uris.join(" ")),
        };
        println!(
            "  client {:<10} client_id {:<11} {}{target}{}",
            format!("{:?}", c.name),
            c.client_id,
            c.client_secret
                .as_ref()
                .map(|s| format!("client_secret {s}  "))
                .unwrap_or_else(|| "public (PKCE)  ".into()),
            if c.created {
                ""
            } else {
                "   (already present)"
            }
        );
    }
}

fn print_policy(p: &Policy) {
    for field in &policy::FIELDS {
        println!("  {:<21} {}", field.short_label, (field.of)(p).shown());
    }
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into())
    );
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `YYYY-MM-DD HH:MM` in UTC.
fn utc(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default()
}
