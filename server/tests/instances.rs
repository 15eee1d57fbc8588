//! Several real Latchkey processes on one database, as operators run them.
//!
//! Two `latchkey serve` processes share one SQLite file (PostgreSQL
//! instances are covered in-process by `flows.rs`, through LISTEN/NOTIFY):
//! a revocation at one is refused at the other once that one has re-read the
//! revocations (its periodic reload; SQLite has no notifications).

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

mod common;

use app::domain::Db;
use common::{
    flow::{cc_token, is_active, service},
    Site,
};

/// A `latchkey serve` child process, killed when dropped.
struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free right now on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `latchkey serve` in `dir` on `db_url` and waits until it answers.
async fn start(dir: &Path, db_url: &str, site: &Path, issuer: Option<&str>) -> Instance {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .env_remove("LATCHKEY_MASTER_KEY")
        .env("LATCHKEY_DATABASE_URL", db_url)
        .env("LATCHKEY_LOG", "warn")
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--issuer", issuer.unwrap_or(&base)])
        .arg("--site-root")
        .arg(site)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start latchkey serve");
    let instance = Instance { child, base };
    let started = Instant::now();
    loop {
        let up = reqwest::get(format!("{}/healthz", instance.base)).await;
        if up.is_ok_and(|r| r.status().is_success()) {
            return instance;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "latchkey serve did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Site for Instance {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_revocation_reaches_another_process_on_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    // `serve` wants a built site; these tests never load a page.
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    std::fs::write(site.join("pkg/latchkey.js"), "").unwrap();
    let db_url = format!("sqlite://{}/latchkey.db", dir.path().display());

    let db = Db::connect(&db_url).await.unwrap();
    db.migrate().await.unwrap();
    let service = service(&db, "Service", &[]).await;
    db.close().await;

    // A first, so it alone creates the signing keys; B shares A's issuer.
    let a = start(dir.path(), &db_url, &site, None).await;
    let b = start(dir.path(), &db_url, &site, Some(&a.base)).await;

    let access = &cc_token(&a, &service).await;
    assert!(is_active(&b, &service, access).await);

    let res = reqwest::Client::new()
        .post(format!("{}/oauth/revoke", a.base))
        .basic_auth(&service.client_id, service.secret.as_deref())
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(!is_active(&a, &service, access).await);
    // B re-reads the revocations every 5 s: three periods is a generous bound
    // for "it does arrive" (this is not a speed measurement).
    let revoked_at = Instant::now();
    while is_active(&b, &service, access).await {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(15),
            "the other process never learned of the revocation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
