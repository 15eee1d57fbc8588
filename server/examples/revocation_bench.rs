//! Revocation bench rows (issue 10, item 7), against release builds of
//! `latchkey` and the guard crate's `notes_api` example, as processes on
//! 127.0.0.1. See bench/README.md ("Revocation rows"); run it with
//! `bench/revocation.sh`.
//!
//! Rows:
//! - revocation → refused at the example API, p50/p99/max over
//!   `BENCH_REVOCATIONS` revocations (default 50; 1000 for the full run): one
//!   Latchkey on SQLite, and two Latchkey instances on one PostgreSQL database
//!   (tokens and revocations at A, the API follows B). Each sample: a fresh
//!   client_credentials token (aud = the API) that the API accepts, then the
//!   clock starts, the token is revoked (RFC 7009) at Latchkey, and the API is
//!   polled (`GET /notes`, no pause) until it answers 401.
//! - the API's validated requests/s (`wrk` against `GET /notes` with a valid
//!   token) with 0 and with 100,000 entries in its revoked set (100,000 `jti`
//!   revocations written into the log by SQL while everything is stopped,
//!   then Latchkey and the API started again).
//! - Latchkey's RSS before and after 1,000 idle SSE connections to
//!   `/oauth/revocations/stream`.
//!
//! Environment: `LATCHKEY_BIN`, `NOTES_API_BIN` (default
//! `$CARGO_TARGET_DIR/release/{latchkey,examples/notes_api}`),
//! `BENCH_REVOCATIONS` (50), `BENCH_REVOKED_ENTRIES` (100000),
//! `BENCH_SSE_CONNECTIONS` (1000), `BENCH_DURATION` (wrk -d, 10s),
//! `BENCH_PG_URL` (postgres://postgres@127.0.0.1:5432/test; a scratch
//! database is created next to it and dropped; `none` skips PostgreSQL).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use app::domain::{
    clients::{self, ClientKind, GrantType, NewClient},
    keys::MasterKey,
    resource_servers,
    store::BeginWrite,
    Db,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

const AUDIENCE: &str = "http://notes-api.bench";
/// How long one sample may take before the run counts it as a failure.
const SAMPLE_LIMIT: Duration = Duration::from_secs(10);

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn env_num(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v
            .parse()
            .map_err(|_| format!("{name} must be a whole number, not {v:?}").into()),
    }
}

struct Settings {
    latchkey: PathBuf,
    notes_api: PathBuf,
    revocations: usize,
    entries: usize,
    sse: usize,
    duration: String,
    pg_url: Option<String>,
}

/// A client's id and secret.
#[derive(Clone)]
struct Creds {
    id: String,
    secret: String,
}

/// A child process killed when dropped.
struct Proc {
    child: Child,
    base: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let target = env_or("CARGO_TARGET_DIR", "target");
    let settings = Settings {
        latchkey: env_or("LATCHKEY_BIN", &format!("{target}/release/latchkey")).into(),
        notes_api: env_or(
            "NOTES_API_BIN",
            &format!("{target}/release/examples/notes_api"),
        )
        .into(),
        revocations: env_num("BENCH_REVOCATIONS", 50)?,
        entries: env_num("BENCH_REVOKED_ENTRIES", 100_000)?,
        sse: env_num("BENCH_SSE_CONNECTIONS", 1000)?,
        duration: env_or("BENCH_DURATION", "10s"),
        pg_url: match env_or("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/test") {
            none if none == "none" => None,
            url => Some(url),
        },
    };
    for bin in [&settings.latchkey, &settings.notes_api] {
        if !bin.is_file() {
            return Err(format!(
                "{} is missing: build the release binaries (bench/revocation.sh does)",
                bin.display()
            )
            .into());
        }
    }
    let mut latency_rows = Vec::new();
    let mut wrk_rows = Vec::new();
    let mut rss_rows = Vec::new();
    sqlite_rows(&settings, &mut latency_rows, &mut wrk_rows, &mut rss_rows).await?;
    if let Some(pg_url) = &settings.pg_url {
        latency_rows.push(postgres_row(&settings, pg_url).await?);
    }

    println!();
    println!("## Revocation bench");
    println!();
    println!(
        "{} cores; release builds; samples: revoke (RFC 7009) at Latchkey, then poll the API until 401.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| setup | revocations | p50 | p99 | max | goal | result |");
    println!("|---|---:|---:|---:|---:|---|---|");
    for row in &latency_rows {
        println!("{row}");
    }
    println!();
    println!("| example API `GET /notes` | requests/s | p50 | p99 | non-2xx |");
    println!("|---|---:|---:|---:|---:|");
    for row in &wrk_rows {
        println!("{row}");
    }
    println!();
    println!("| Latchkey (SQLite) | RSS |");
    println!("|---|---:|");
    for row in &rss_rows {
        println!("{row}");
    }
    Ok(())
}

/// One instance on SQLite: throughput with an empty set, latency, SSE
/// memory, then throughput with `entries` revoked entries.
async fn sqlite_rows(
    s: &Settings,
    latency_rows: &mut Vec<String>,
    wrk_rows: &mut Vec<String>,
    rss_rows: &mut Vec<String>,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let site = stub_site(dir.path())?;
    let db_url = format!("sqlite://{}/latchkey.db", dir.path().display());
    let db = Db::connect(&db_url).await?;
    db.migrate().await?;
    let (rs, job) = register(&db).await?;
    let master = MasterKey::generate().to_base64url();
    let port = free_port()?;

    eprintln!("==> sqlite: latchkey on port {port}, the example API next to it");
    let lk = start_latchkey(s, dir.path(), &db_url, &site, port, None, &master).await?;
    let api = start_api(s, &lk.base, &rs).await?;
    let token = cc_token(&lk.base, &job).await?;
    wrk_rows.push(wrk_row(s, "0 revoked entries", &api.base, &token).await?);

    eprintln!("==> sqlite: {} revocations, one instance", s.revocations);
    let samples = latency(&lk.base, &lk.base, &api.base, &job, s.revocations).await?;
    latency_rows.push(latency_row("SQLite, one instance", &samples, 50));

    eprintln!("==> sqlite: {} idle SSE connections", s.sse);
    let feed = feed_token(&lk.base, &rs).await?;
    let before = rss_kib(lk.pid())?;
    let streams = open_streams(&lk.base, &feed, s.sse).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(lk.pid())?;
    rss_rows.push(format!(
        "| before the streams | {:.1} MiB |",
        before as f64 / 1024.0
    ));
    rss_rows.push(format!(
        "| with {} idle streams open | {:.1} MiB (+{:.1} KiB per stream) |",
        streams.len(),
        after as f64 / 1024.0,
        (after as f64 - before as f64) / streams.len().max(1) as f64
    ));
    drop(streams);

    eprintln!("==> sqlite: {} revoked entries by SQL, restart", s.entries);
    api.stop().await;
    lk.stop().await;
    bulk_revoke(&db, s.entries).await?;
    let lk = start_latchkey(s, dir.path(), &db_url, &site, port, None, &master).await?;
    let api = start_api(s, &lk.base, &rs).await?;
    let held = health_entries(&api.base).await?;
    if held < s.entries {
        return Err(format!("the API holds {held} entries, not {}", s.entries).into());
    }
    let token = cc_token(&lk.base, &job).await?;
    wrk_rows.push(wrk_row(s, &format!("{held} revoked entries"), &api.base, &token).await?);
    api.stop().await;
    lk.stop().await;
    db.close().await;
    Ok(())
}

/// Two instances on one scratch PostgreSQL database: the API follows B,
/// tokens and revocations at A.
async fn postgres_row(s: &Settings, pg_url: &str) -> Result<String> {
    let name = format!("lk_bench_revocation_{}", std::process::id());
    let admin = sqlx::PgPool::connect(pg_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await?;
    let mut url = url::Url::parse(pg_url)?;
    url.set_path(&name);
    let result = async {
        let db = Db::connect(url.as_str()).await?;
        db.migrate().await?;
        let (rs, job) = register(&db).await?;
        db.close().await;
        let dir = tempfile::tempdir()?;
        let site = stub_site(dir.path())?;
        let master = MasterKey::generate().to_base64url();
        eprintln!("==> postgres: instances B then A (B's issuer), the API following B");
        let b = start_latchkey(
            s,
            dir.path(),
            url.as_str(),
            &site,
            free_port()?,
            None,
            &master,
        )
        .await?;
        let a = start_latchkey(
            s,
            dir.path(),
            url.as_str(),
            &site,
            free_port()?,
            Some(&b.base),
            &master,
        )
        .await?;
        let api = start_api(s, &b.base, &rs).await?;
        eprintln!("==> postgres: {} revocations at A", s.revocations);
        let samples = latency(&a.base, &a.base, &api.base, &job, s.revocations).await?;
        api.stop().await;
        a.stop().await;
        b.stop().await;
        Ok::<_, Error>(latency_row(
            "PostgreSQL, revoked at A, API follows B",
            &samples,
            250,
        ))
    }
    .await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
    result
}

fn stub_site(dir: &Path) -> Result<PathBuf> {
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("pkg"))?;
    std::fs::write(site.join("pkg/latchkey.js"), "")?;
    Ok(site)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The API's client (allowed the feed, the resource server serving
/// `notes:read`) and a client_credentials job allowed `notes:read`.
async fn register(db: &Db) -> Result<(Creds, Creds)> {
    let add = |name: &str, scopes: &[&str]| NewClient {
        name: name.into(),
        kind: ClientKind::Confidential,
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::ClientCredentials],
        extra_scopes: scopes.iter().map(|s| s.to_string()).collect(),
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        metadata: Default::default(),
    };
    app::domain::scopes::define(
        db,
        "notes:read",
        "Read your notes",
        Some(false),
        &Default::default(),
    )
    .await?;
    let (rs, rs_secret) =
        clients::add_client(db, &add("Notes API", &["latchkey:revocations"])).await?;
    resource_servers::set(
        db,
        &rs.client_id,
        AUDIENCE,
        &["notes:read".to_owned()],
        &Default::default(),
    )
    .await?;
    let (job, job_secret) = clients::add_client(db, &add("Bench job", &["notes:read"])).await?;
    let creds = |id: String, secret: Option<clients::ClientSecret>| Creds {
        id,
        secret: secret.expect("a confidential client's secret").0,
    };
    Ok((
        creds(rs.client_id, rs_secret),
        creds(job.client_id, job_secret),
    ))
}

async fn start_latchkey(
    s: &Settings,
    dir: &Path,
    db_url: &str,
    site: &Path,
    port: u16,
    issuer: Option<&str>,
    master: &str,
) -> Result<Proc> {
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(&s.latchkey)
        .env("LATCHKEY_DATABASE_URL", db_url)
        .env("LATCHKEY_MASTER_KEY", master)
        .env("LATCHKEY_LOG", "warn")
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--issuer", issuer.unwrap_or(&base)])
        .arg("--site-root")
        .arg(site)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let proc = Proc { child, base };
    let started = Instant::now();
    loop {
        if let Ok(res) = reqwest::get(format!("{}/healthz", proc.base)).await {
            if res.status().is_success() {
                return Ok(proc);
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("latchkey did not come up on {}", proc.base).into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The example API for `issuer`; ready once it printed `listening on ADDR`.
async fn start_api(s: &Settings, issuer: &str, rs: &Creds) -> Result<Proc> {
    let mut child = Command::new(&s.notes_api)
        .env("LATCHKEY_ISSUER", issuer)
        .env("NOTES_API_CLIENT_ID", &rs.id)
        .env("NOTES_API_CLIENT_SECRET", &rs.secret)
        .env("NOTES_API_AUDIENCE", AUDIENCE)
        .env("NOTES_API_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .map_err(|_| "the example API did not start within 120 s")??
        .ok_or("the example API ended before listening")?;
    let addr = line
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected first line {line:?}"))?;
    Ok(Proc {
        base: format!("http://{addr}"),
        child,
    })
}

async fn token(base: &str, client: &Creds, scope: Option<&str>) -> Result<String> {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let res = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&form)
        .send()
        .await?;
    let status = res.status();
    let body: serde_json::Value = res.json().await?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no token ({status}): {body}").into())
}

async fn cc_token(base: &str, job: &Creds) -> Result<String> {
    token(base, job, None).await
}

async fn feed_token(base: &str, rs: &Creds) -> Result<String> {
    token(base, rs, Some("latchkey:revocations")).await
}

async fn notes_status(http: &reqwest::Client, api: &str, token: &str) -> Result<u16> {
    Ok(http
        .get(format!("{api}/notes"))
        .bearer_auth(token)
        .send()
        .await?
        .status()
        .as_u16())
}

/// `n` samples: a token the API accepts, revoked at `revoke_at`, polled at
/// the API until 401.
async fn latency(
    tokens_at: &str,
    revoke_at: &str,
    api: &str,
    job: &Creds,
    n: usize,
) -> Result<Vec<Duration>> {
    let http = reqwest::Client::new();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let token = cc_token(tokens_at, job).await?;
        let status = notes_status(&http, api, &token).await?;
        if status != 200 {
            return Err(format!("sample {i}: the API answers {status} for a live token").into());
        }
        let started = Instant::now();
        let res = http
            .post(format!("{revoke_at}/oauth/revoke"))
            .basic_auth(&job.id, Some(&job.secret))
            .form(&[("token", token.as_str())])
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(format!("sample {i}: revoke answered {}", res.status()).into());
        }
        loop {
            match notes_status(&http, api, &token).await? {
                401 => break,
                200 if started.elapsed() < SAMPLE_LIMIT => tokio::task::yield_now().await,
                200 => {
                    return Err(format!("sample {i}: still accepted after {SAMPLE_LIMIT:?}").into())
                }
                other => return Err(format!("sample {i}: the API answered {other}").into()),
            }
        }
        samples.push(started.elapsed());
    }
    Ok(samples)
}

fn latency_row(setup: &str, samples: &[Duration], goal_ms: u64) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |q: f64| {
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i]
    };
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let (p50, p99, max) = (at(0.50), at(0.99), *sorted.last().expect("samples"));
    let verdict = if p99 <= Duration::from_millis(goal_ms) {
        "meets goal"
    } else {
        "misses goal"
    };
    format!(
        "| {setup} | {} | {} | {} | {} | p99 ≤ {goal_ms} ms | {verdict} |",
        sorted.len(),
        ms(p50),
        ms(p99),
        ms(max)
    )
}

/// wrk against `GET /notes` with a valid token: one table row.
async fn wrk_row(s: &Settings, label: &str, api: &str, token: &str) -> Result<String> {
    eprintln!("==> wrk {label}");
    let auth = format!("Authorization: Bearer {token}");
    let url = format!("{api}/notes");
    let warm = Command::new("wrk")
        .args(["-t2", "-c32", "-d2s", "-H", &auth, &url])
        .output()
        .await?;
    if !warm.status.success() {
        return Err("wrk failed (is it installed?)".into());
    }
    let out = Command::new("wrk")
        .args([
            "-t2",
            "-c32",
            "-d",
            &s.duration,
            "--latency",
            "-H",
            &auth,
            &url,
        ])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_owned())
    };
    let rps = field("Requests/sec:").ok_or("no Requests/sec in wrk's output")?;
    let p50 = field("50%").unwrap_or_default();
    let p99 = field("99%").unwrap_or_default();
    let non2xx = field("Non-2xx or 3xx responses:").unwrap_or_else(|| "0".into());
    Ok(format!("| {label} | {rps} | {p50} | {p99} | {non2xx} |"))
}

/// Opens `n` streams and keeps them (idle once their backlog was sent).
async fn open_streams(base: &str, feed: &str, n: usize) -> Result<Vec<reqwest::Response>> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let res = http
            .get(format!("{base}/oauth/revocations/stream"))
            .bearer_auth(feed)
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(format!("the stream answered {}", res.status()).into());
        }
        streams.push(res);
    }
    Ok(streams)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

async fn health_entries(api: &str) -> Result<usize> {
    let health: serde_json::Value = reqwest::get(format!("{api}/healthz")).await?.json().await?;
    health["entries"]
        .as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| format!("no entries in {health}").into())
}

/// Writes `n` jti revocations (tokens that never existed, live for an hour)
/// into the log and the revoked-token table, as `n` RFC 7009 revocations
/// would, in one statement each (Latchkey is stopped meanwhile).
async fn bulk_revoke(db: &Db, n: usize) -> Result<()> {
    let Db::Sqlite(pool) = db else {
        return Err("bulk_revoke is for the SQLite run".into());
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let n = n as i64;
    let mut tx = pool.begin_write().await?;
    let head: i64 = sqlx::query_scalar("SELECT position FROM revocation_log_head WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1) \
         INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at) \
         SELECT 'bench-' || i, $2, $3 FROM seq",
    )
    .bind(n)
    .bind(now + 3600)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1) \
         INSERT INTO revocation_log (position, kind, id, until_at, revoked_at) \
         SELECT $4 + i, 'jti', 'bench-' || i, $2, $3 FROM seq",
    )
    .bind(n)
    .bind(now + 3600)
    .bind(now)
    .bind(head)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE revocation_log_head SET position = $1 WHERE id = 1")
        .bind(head + n)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
