//! Real `latchkey serve` processes on a test database, as operators run them
//! (`instances.rs`, `resource_guard.rs`): started on a port, killed when dropped.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{Site, TestDb};

/// A `latchkey serve` child process, killed when dropped.
pub struct Instance {
    child: Child,
    pub base: String,
    pub port: u16,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    /// Kills the process now (`SIGKILL`), as a crash or a host going away would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to end by itself (after `SIGTERM`, say): its
    /// exit status. Panics if it has not within a minute.
    pub fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "latchkey serve did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Freezes the process (`SIGSTOP`) or lets it go on (`SIGCONT`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }
}

/// Runs a `latchkey` command (not `serve`) in `dir` on `db_url`; asserts it
/// succeeded and returns its standard output.
pub fn cli(dir: &Path, db_url: &str, args: &[&str]) -> String {
    cli_with_stdin(dir, db_url, args, "")
}

/// [`cli`] with `input` on standard input (a password, a client secret).
pub fn cli_with_stdin(dir: &Path, db_url: &str, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .env_remove("LATCHKEY_MASTER_KEY")
        .env("LATCHKEY_DATABASE_URL", db_url)
        .env("LATCHKEY_LOG", "warn")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run latchkey");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("run latchkey");
    assert!(
        out.status.success(),
        "latchkey {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Site for Instance {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

/// A port free right now on 127.0.0.1, and never handed out before in this
/// test binary: tests start processes in parallel, and two of them given the
/// same port would talk to each other's server (one fails to bind; its test
/// then reaches the other's).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// `serve` wants a built site; these tests never load a page: an empty one in `dir`.
pub fn empty_site(dir: &Path) -> PathBuf {
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    std::fs::write(site.join("pkg/latchkey.js"), "").unwrap();
    site
}

/// The database URL a process uses for this test's database: the SQLite file,
/// or the PostgreSQL URL with the test's schema as `search_path`.
pub fn process_db_url(t: &TestDb) -> String {
    match t.schema() {
        None => t.url.clone(),
        Some(schema) => {
            let sep = if t.url.contains('?') { '&' } else { '?' };
            format!("{}{sep}options=-c%20search_path%3D{schema}", t.url)
        }
    }
}

/// Starts `latchkey serve` in `dir` (where it keeps its master key) on
/// `db_url` on a free port and waits until it answers.
pub async fn start(dir: &Path, db_url: &str, site: &Path, issuer: Option<&str>) -> Instance {
    start_on(free_port(), dir, db_url, site, issuer).await
}

/// [`start`] on a given port (to start one again where it was).
pub async fn start_on(
    port: u16,
    dir: &Path,
    db_url: &str,
    site: &Path,
    issuer: Option<&str>,
) -> Instance {
    start_with(port, dir, db_url, site, issuer, &[]).await
}

/// [`start_on`] with `extra` flags for `serve`.
pub async fn start_with(
    port: u16,
    dir: &Path,
    db_url: &str,
    site: &Path,
    issuer: Option<&str>,
    extra: &[&str],
) -> Instance {
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .env_remove("LATCHKEY_MASTER_KEY")
        .env("LATCHKEY_DATABASE_URL", db_url)
        .env("LATCHKEY_LOG", "warn")
        // No request limits unless a test asks (`extra` flags win over these).
        .env("LATCHKEY_RATE_LIMIT_PER_IP", "off")
        .env("LATCHKEY_RATE_LIMIT_PER_CLIENT", "off")
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--issuer", issuer.unwrap_or(&base)])
        .arg("--site-root")
        .arg(site)
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start latchkey serve");
    let instance = Instance { child, base, port };
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
