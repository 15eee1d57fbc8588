//! The `latchkey` binary as an operator uses it: exit codes, one-line errors,
//! JSON output, and that a refused command changes nothing.
//!
//! Every test runs the real binary against a SQLite file in a fresh temporary
//! folder, at `<tmp>/db/latchkey.db`: Latchkey creates missing folders, so a
//! missing `db/` folder proves nothing was opened or written.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use app::domain::{demo, secrets::sha256_hex};
use serde_json::Value;
use tempfile::TempDir;

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A temporary folder holding one test's database.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn db_folder(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    fn db_file(&self) -> PathBuf {
        self.db_folder().join("latchkey.db")
    }

    fn db_url(&self) -> String {
        format!("sqlite://{}", self.db_file().display())
    }

    /// Runs `latchkey ARGS`, with `stdin` piped in (or no input at all).
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        latchkey(self.dir.path(), &self.db_url(), &[], args, stdin)
    }

    /// Like `run`, with extra environment variables.
    fn run_env(&self, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Run {
        latchkey(self.dir.path(), &self.db_url(), env, args, stdin)
    }

    /// Runs a command that must succeed and returns its stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let run = self.run(args, stdin);
        assert_eq!(run.code, 0, "latchkey {args:?} failed: {run:?}");
        run.stdout
    }

    /// Runs a `--json` command that must succeed and parses its stdout.
    fn json(&self, args: &[&str], stdin: Option<&str>) -> Value {
        let stdout = self.ok(args, stdin);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("latchkey {args:?}: not JSON ({e}): {stdout}"))
    }

    fn users(&self) -> Vec<Value> {
        as_array(self.json(&["user", "list", "--json"], None))
    }

    fn clients(&self) -> Vec<Value> {
        as_array(self.json(&["client", "list", "--json"], None))
    }

    fn add_user(&self, username: &str, password: &str, admin: bool) -> Run {
        let mut args = vec![
            "user",
            "add",
            "--username",
            username,
            "--password-stdin",
            "--json",
        ];
        if admin {
            args.push("--admin");
        }
        self.run(&args, Some(&format!("{password}\n")))
    }
}

/// Runs the binary in `dir` with a clean environment: no `LATCHKEY_*` or
/// `LEPTOS_SITE_ROOT` from the caller, the given database URL, then `env`.
fn latchkey(
    dir: &Path,
    db_url: &str,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LATCHKEY_") {
            command.env_remove(name);
        }
    }
    command
        .env_remove("LEPTOS_SITE_ROOT")
        .env("LATCHKEY_DATABASE_URL", db_url)
        .envs(env.iter().copied())
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start latchkey");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        // The binary may exit (refusing its arguments) before reading: ignore a broken pipe.
        let _ = pipe.write_all(input.as_bytes());
    }
    let output = child.wait_with_output().expect("wait for latchkey");
    Run {
        code: output.status.code().expect("latchkey ended by a signal"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

fn as_array(value: Value) -> Vec<Value> {
    value
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("expected a JSON array: {value}"))
}

/// Asserts exit code 2 and one stderr line, `latchkey: error: ...`, containing every `needle`.
fn assert_refused(run: &Run, needles: &[&str]) {
    assert_eq!(run.code, 2, "expected exit code 2: {run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line: {run:?}");
    let line = lines[0];
    assert!(
        line.starts_with("latchkey: error: "),
        "unexpected error line: {line}"
    );
    assert!(
        line.len() > "latchkey: error: ".len(),
        "empty error message"
    );
    for needle in needles {
        assert!(line.contains(needle), "{needle:?} not in: {line}");
    }
}

/// The `name` strings of a list of JSON objects, sorted.
fn field<'a>(items: &'a [Value], name: &str) -> Vec<&'a str> {
    let mut found: Vec<&str> = items.iter().filter_map(|v| v[name].as_str()).collect();
    found.sort_unstable();
    found
}

fn as_slice(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

// --- Invalid configuration: exit 2, one line naming the setting, nothing created ---

fn assert_bad_config(sandbox: &Sandbox, run: &Run, setting: &str) {
    assert_refused(run, &[setting]);
    assert!(run.stdout.is_empty(), "stdout should be empty: {run:?}");
    assert!(
        !sandbox.db_folder().exists(),
        "the database folder was created: {run:?}"
    );
}

#[test]
fn bad_listen_address_is_refused_before_the_database_is_created() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["serve", "--addr", "not-an-addr"], None);
    assert_bad_config(&sandbox, &run, "LATCHKEY_ADDR");
    assert!(run.stderr.contains("not-an-addr"), "{run:?}");
}

#[test]
fn bad_ack_bound_and_audit_retention_are_refused_before_the_database_is_created() {
    let sandbox = Sandbox::new();
    // Shorter than the freshness window would break the guarantee.
    let run = sandbox.run(&["serve", "--ack-bound", "100ms"], None);
    assert_bad_config(&sandbox, &run, "LATCHKEY_ACK_BOUND");
    let run = sandbox.run(&["prune", "--audit-retention", "2h"], None);
    assert_bad_config(&sandbox, &run, "LATCHKEY_AUDIT_RETENTION");
    let run = sandbox.run_env(&[("LATCHKEY_AUDIT_RETENTION", "forever")], &["prune"], None);
    assert_bad_config(&sandbox, &run, "LATCHKEY_AUDIT_RETENTION");
}

#[test]
fn bad_rate_limits_and_metrics_address_are_refused_before_the_database_is_created() {
    let sandbox = Sandbox::new();
    for (flag, value, setting) in [
        ("--rate-limit-per-ip", "100/d", "LATCHKEY_RATE_LIMIT_PER_IP"),
        ("--rate-limit-per-ip", "0/s", "LATCHKEY_RATE_LIMIT_PER_IP"),
        (
            "--rate-limit-per-client",
            "many",
            "LATCHKEY_RATE_LIMIT_PER_CLIENT",
        ),
        (
            "--rate-limit-failure-cost",
            "0",
            "LATCHKEY_RATE_LIMIT_FAILURE_COST",
        ),
        (
            "--rate-limit-failure-cost",
            "1001",
            "LATCHKEY_RATE_LIMIT_FAILURE_COST",
        ),
        ("--metrics-addr", "localhost", "LATCHKEY_METRICS_ADDR"),
        // The issuer's own address.
        ("--metrics-addr", "127.0.0.1:3000", "LATCHKEY_METRICS_ADDR"),
    ] {
        let run = sandbox.run(&["serve", flag, value], None);
        assert_bad_config(&sandbox, &run, setting);
        assert!(run.stderr.contains(value), "{run:?}");
    }
}

#[test]
fn prune_dry_run_lists_every_rule_and_deletes_nothing() {
    let sandbox = Sandbox::new();
    let dry = sandbox.json(&["prune", "--dry-run", "--json"], None);
    assert_eq!(dry["dry_run"], true);
    let rules = as_slice(&dry["rules"]);
    let tables: Vec<&str> = rules.iter().filter_map(|r| r["table"].as_str()).collect();
    for table in [
        "auth_codes",
        "refresh_tokens",
        "revocation_log",
        "audit_events",
    ] {
        assert!(tables.contains(&table), "{table} not in {dry}");
    }
    assert!(
        rules.iter().all(|r| r["rows"] == 0),
        "a fresh database: {dry}"
    );
    let text = sandbox.ok(&["prune", "--audit-retention", "0"], None);
    assert!(text.starts_with("     DELETED  WHAT"), "{text}");
}

#[test]
fn bad_listen_address_from_the_environment_is_refused_the_same_way() {
    let sandbox = Sandbox::new();
    let run = sandbox.run_env(&[("LATCHKEY_ADDR", "bogus")], &["serve"], None);
    assert_bad_config(&sandbox, &run, "LATCHKEY_ADDR");
    assert!(run.stderr.contains("bogus"), "{run:?}");
}

#[test]
fn non_http_issuer_is_refused_before_the_database_is_created() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["serve", "--issuer", "ftp://x"], None);
    assert_bad_config(&sandbox, &run, "LATCHKEY_ISSUER");
}

#[test]
fn unsupported_database_url_is_refused() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["--database-url", "mysql://x", "user", "list"], None);
    assert_bad_config(&sandbox, &run, "LATCHKEY_DATABASE_URL");
}

#[test]
fn invalid_log_filter_is_refused_before_the_database_is_created() {
    for filter in ["foo=bar=baz", "[{", "info,,=["] {
        let sandbox = Sandbox::new();
        let run = sandbox.run(&["--log-level", filter, "user", "list"], None);
        assert_bad_config(&sandbox, &run, "LATCHKEY_LOG");
    }
}

#[test]
fn serve_without_a_built_site_is_refused_naming_leptos_site_root() {
    let sandbox = Sandbox::new();
    let empty_site = tempfile::tempdir().expect("temp dir");
    let site = empty_site.path().to_str().expect("UTF-8 path");
    let run = sandbox.run(
        &["serve", "--addr", "127.0.0.1:0", "--site-root", site],
        None,
    );
    assert_bad_config(&sandbox, &run, "LEPTOS_SITE_ROOT");
}

// --- Users ---

#[test]
fn user_add_prints_the_user_without_any_password_and_list_shows_them() {
    let sandbox = Sandbox::new();

    let alice = sandbox.add_user("alice", "alice-password", false);
    assert_eq!(alice.code, 0, "{alice:?}");
    let created: Value = serde_json::from_str(&alice.stdout).expect("user add --json prints JSON");
    assert_eq!(created["username"], "alice");
    assert_eq!(created["is_admin"], false);
    let lowered = alice.stdout.to_lowercase();
    assert!(
        !lowered.contains("password") && !lowered.contains("hash"),
        "{}",
        alice.stdout
    );
    assert!(!alice.stdout.contains("alice-password") && !alice.stdout.contains("$argon2"));

    let admin = sandbox.add_user("root", "root-password", true);
    assert_eq!(admin.code, 0, "{admin:?}");
    let created: Value = serde_json::from_str(&admin.stdout).expect("user add --json prints JSON");
    assert_eq!(created["username"], "root");
    assert_eq!(created["is_admin"], true);

    let users = sandbox.users();
    assert_eq!(field(&users, "username"), ["alice", "root"]);
    for user in &users {
        assert_eq!(user["is_admin"], user["username"] == "root", "{user}");
        assert!(
            user.get("password_hash").is_none() && user.get("password").is_none(),
            "{user}"
        );
    }

    let listing = sandbox.ok(&["user", "list"], None);
    assert!(
        listing.contains("alice") && listing.contains("root"),
        "{listing}"
    );
}

#[test]
fn duplicate_username_in_any_case_is_refused_and_changes_nothing() {
    let sandbox = Sandbox::new();
    assert_eq!(sandbox.add_user("alice", "alice-password", false).code, 0);

    for taken in ["alice", "ALICE"] {
        let run = sandbox.add_user(taken, "another-password", true);
        assert_refused(&run, &["already exists"]);
        assert!(run.stdout.is_empty(), "{run:?}");
    }

    let users = sandbox.users();
    assert_eq!(field(&users, "username"), ["alice"]);
    assert_eq!(users[0]["is_admin"], false);
}

/// Issue 9: on SQLite (the default) `Émile` then `émile` both succeeded,
/// since SQLite's `lower()` folds ASCII only.
#[test]
fn non_ascii_username_in_another_case_is_refused_and_changes_nothing() {
    let sandbox = Sandbox::new();
    assert_eq!(sandbox.add_user("Émile", "emile-password", false).code, 0);

    for taken in ["émile", "ÉMILE", "E\u{301}MILE"] {
        let run = sandbox.add_user(taken, "another-password", true);
        assert_refused(&run, &["already exists"]);
        assert!(run.stdout.is_empty(), "{run:?}");
    }
    // Different letters are a different user; each is listed as typed.
    assert_eq!(sandbox.add_user("Emile", "emile-password", false).code, 0);
    let users = sandbox.users();
    assert_eq!(field(&users, "username"), ["Emile", "Émile"]);
}

#[test]
fn empty_or_missing_password_is_refused_before_the_database_is_created() {
    let sandbox = Sandbox::new();
    let args = ["user", "add", "--username", "alice", "--password-stdin"];

    for stdin in [Some("\n"), Some(""), None] {
        let run = sandbox.run(&args, stdin);
        assert_refused(&run, &[]);
        assert!(
            run.stderr.starts_with("latchkey: error: password:"),
            "stdin {stdin:?}: {run:?}"
        );
        assert!(
            !sandbox.db_folder().exists(),
            "stdin {stdin:?} created the database"
        );
    }
}

#[test]
fn short_password_is_refused_before_the_database_is_created() {
    let sandbox = Sandbox::new();
    let run = sandbox.add_user("alice", "12345", false);
    assert_refused(&run, &["password:", "at least 8"]);
    assert!(!sandbox.db_file().exists());
}

#[test]
fn only_the_first_stdin_line_is_the_password() {
    let sandbox = Sandbox::new();
    // "short" alone is refused: the second line must not be read into the password.
    let run = sandbox.run(
        &["user", "add", "--username", "alice", "--password-stdin"],
        Some("short\nthe-rest-of-the-input\n"),
    );
    assert_refused(&run, &["at least 8"]);
}

#[test]
fn invalid_username_is_refused_and_adds_nobody() {
    let sandbox = Sandbox::new();
    let run = sandbox.add_user("bad name", "alice-password", false);
    assert_refused(&run, &["username:"]);
    assert!(
        !sandbox.db_file().exists(),
        "validated before the database is opened"
    );
    assert!(sandbox.users().is_empty());
}

// --- Clients ---

#[test]
fn confidential_client_secret_is_shown_once_and_stored_as_its_sha256() {
    let sandbox = Sandbox::new();
    let added = sandbox.json(
        &[
            "client",
            "add",
            "--name",
            "Notes",
            "--redirect-uri",
            "https://app.example/cb",
            "--json",
        ],
        None,
    );
    let client_id = added["client"]["client_id"]
        .as_str()
        .expect("client.client_id")
        .to_owned();
    assert!(!client_id.is_empty());
    assert_eq!(added["client"]["name"], "Notes");
    assert_eq!(added["client"]["kind"], "confidential");
    let secret = added["client_secret"]
        .as_str()
        .expect("client_secret string")
        .to_owned();
    assert_eq!(secret.len(), 43, "a 256-bit base64url secret: {secret}");

    let clients = sandbox.clients();
    assert_eq!(field(&clients, "client_id"), [client_id.as_str()]);
    assert_eq!(
        clients[0]["redirect_uris"],
        serde_json::json!(["https://app.example/cb"])
    );
    for listing in [
        sandbox.ok(&["client", "list", "--json"], None),
        sandbox.ok(&["client", "list"], None),
    ] {
        assert!(listing.contains(&client_id), "{listing}");
        assert!(
            !listing.contains(&secret),
            "the secret is listed: {listing}"
        );
        assert!(
            !listing.contains(&sha256_hex(&secret)),
            "the secret hash is listed: {listing}"
        );
    }

    let url = sandbox.db_url();
    let stored: Option<String> = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let pool = sqlx::SqlitePool::connect(&url)
                .await
                .expect("open the database");
            let hash = sqlx::query_scalar("SELECT secret_hash FROM clients WHERE id = $1")
                .bind(&client_id)
                .fetch_one(&pool)
                .await
                .expect("the client row");
            pool.close().await;
            hash
        });
    assert_eq!(stored.as_deref(), Some(sha256_hex(&secret).as_str()));
}

#[test]
fn confidential_client_human_output_shows_the_secret_once() {
    let sandbox = Sandbox::new();
    let out = sandbox.ok(
        &[
            "client",
            "add",
            "--name",
            "Notes",
            "--redirect-uri",
            "https://app.example/cb",
        ],
        None,
    );
    let secret_line = out
        .lines()
        .find(|l| l.starts_with("client_secret:"))
        .unwrap_or_else(|| panic!("no client_secret line: {out}"));
    let secret = secret_line.trim_start_matches("client_secret:").trim();
    assert_eq!(secret.len(), 43, "{out}");
    assert!(!sandbox.ok(&["client", "list"], None).contains(secret));
}

#[test]
fn public_client_has_no_secret() {
    let sandbox = Sandbox::new();
    let added = sandbox.json(
        &[
            "client",
            "add",
            "--name",
            "SPA",
            "--public",
            "--redirect-uri",
            "https://spa.example/cb",
            "--json",
        ],
        None,
    );
    assert!(added["client_secret"].is_null(), "{added}");
    assert_eq!(added["client"]["kind"], "public");

    let human = sandbox.ok(
        &[
            "client",
            "add",
            "--name",
            "SPA 2",
            "--public",
            "--redirect-uri",
            "https://spa.example/cb",
        ],
        None,
    );
    assert!(human.contains("client_id:"), "{human}");
    assert!(!human.contains("client_secret:"), "{human}");

    let clients = sandbox.clients();
    assert_eq!(field(&clients, "name"), ["SPA", "SPA 2"]);
    assert!(clients.iter().all(|c| c["kind"] == "public"));
}

#[test]
fn bad_client_input_is_refused_naming_the_field_and_adds_nothing() {
    let cases: [(&[&str], &str); 5] = [
        (&["--redirect-uri", "/cb"], "redirect_uri"),
        (&["--redirect-uri", "https://a.example/cb#x"], "fragment"),
        (
            &[
                "--redirect-uri",
                "https://a.example/cb",
                "--post-logout-redirect-uri",
                "notabsolute",
            ],
            "post_logout_redirect_uri",
        ),
        (
            &[
                "--redirect-uri",
                "https://a.example/cb",
                "--grant-type",
                "password",
            ],
            "grant_type",
        ),
        (
            &[
                "--redirect-uri",
                "https://a.example/cb",
                "--public",
                "--grant-type",
                "client_credentials",
            ],
            "client_credentials",
        ),
    ];
    for (extra, needle) in cases {
        let sandbox = Sandbox::new();
        let mut args = vec!["client", "add", "--name", "Notes", "--json"];
        args.extend_from_slice(extra);
        let run = sandbox.run(&args, None);
        assert_refused(&run, &[needle]);
        assert!(run.stdout.is_empty(), "{extra:?}: {run:?}");
        assert!(
            !sandbox.db_file().exists(),
            "{extra:?}: validated before the database is opened"
        );
        assert!(sandbox.clients().is_empty(), "{extra:?} added a client");
    }
}

#[test]
fn duplicate_client_name_in_another_case_is_refused_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let first = sandbox.json(
        &[
            "client",
            "add",
            "--name",
            "Notes",
            "--redirect-uri",
            "https://app.example/cb",
            "--json",
        ],
        None,
    );

    let run = sandbox.run(
        &[
            "client",
            "add",
            "--name",
            "notes",
            "--redirect-uri",
            "https://other.example/cb",
            "--json",
        ],
        None,
    );
    assert_refused(&run, &["already exists"]);
    assert!(run.stdout.is_empty(), "{run:?}");

    let clients = sandbox.clients();
    assert_eq!(
        field(&clients, "client_id"),
        [first["client"]["client_id"].as_str().unwrap()]
    );
    assert_eq!(field(&clients, "name"), ["Notes"]);
}

// --- Demo data ---

#[test]
fn demo_twice_creates_the_demo_data_once() {
    let sandbox = Sandbox::new();
    let first = sandbox.ok(&["demo"], None);
    assert!(!first.contains("(already present)"), "{first}");

    let second = sandbox.ok(&["demo"], None);
    let entries: Vec<&str> = second
        .lines()
        .filter(|l| {
            l.trim_start().starts_with("admin ")
                || l.trim_start().starts_with("user ")
                || l.trim_start().starts_with("client ")
        })
        .collect();
    assert_eq!(
        entries.len(),
        5,
        "two users, two apps and the notes API: {second}"
    );
    for line in entries {
        assert!(line.ends_with("(already present)"), "{line}");
    }

    let users = sandbox.users();
    assert_eq!(field(&users, "username"), ["admin", "alice"]);
    let clients = sandbox.clients();
    assert_eq!(
        field(&clients, "client_id"),
        ["demo-notes", "demo-notes-api", "demo-spa"]
    );
}

#[test]
fn demo_json_reports_the_credentials() {
    let sandbox = Sandbox::new();
    let report = sandbox.json(&["demo", "--json"], None);

    let alice = as_slice(&report["users"])
        .iter()
        .find(|u| u["username"] == "alice")
        .unwrap_or_else(|| panic!("no alice: {report}"));
    assert_eq!(alice["password"], "alice-demo-password");
    assert_eq!(alice["password"], demo::USER.1);
    assert_eq!(alice["created"], true);

    let notes = as_slice(&report["clients"])
        .iter()
        .find(|c| c["client_id"] == "demo-notes")
        .unwrap_or_else(|| panic!("no demo-notes: {report}"));
    let secret = notes["client_secret"]
        .as_str()
        .expect("demo-notes has a secret");
    assert!(!secret.is_empty());

    let spa = as_slice(&report["clients"])
        .iter()
        .find(|c| c["client_id"] == "demo-spa")
        .unwrap_or_else(|| panic!("no demo-spa: {report}"));
    assert!(spa["client_secret"].is_null(), "{spa}");

    // Again: the same credentials, now reported as found.
    let again = sandbox.json(&["demo", "--json"], None);
    assert!(
        as_slice(&again["users"])
            .iter()
            .all(|u| u["created"] == false),
        "{again}"
    );
    assert!(
        as_slice(&again["clients"])
            .iter()
            .all(|c| c["created"] == false),
        "{again}"
    );
}

// --- Migrations ---

#[test]
fn migrate_creates_the_database_and_can_run_again() {
    let sandbox = Sandbox::new();
    for _ in 0..2 {
        let run = sandbox.run(&["migrate"], None);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.stdout.trim(), "database is up to date");
    }
    assert!(sandbox.db_file().is_file());
    assert!(sandbox.users().is_empty());
    assert!(sandbox.clients().is_empty());
}

// --- Help ---

#[test]
fn help_names_every_environment_variable() {
    let sandbox = Sandbox::new();
    let top = sandbox.ok(&["--help"], None);
    for var in ["LATCHKEY_DATABASE_URL", "LATCHKEY_LOG"] {
        assert!(
            top.contains(&format!("[env: {var}")),
            "{var} not in --help: {top}"
        );
    }
    let serve = sandbox.ok(&["serve", "--help"], None);
    for var in [
        "LATCHKEY_ADDR",
        "LATCHKEY_ISSUER",
        "LATCHKEY_DATABASE_URL",
        "LATCHKEY_LOG",
        "LEPTOS_SITE_ROOT",
    ] {
        assert!(
            serve.contains(&format!("[env: {var}")),
            "{var} not in serve --help: {serve}"
        );
    }
    assert!(!sandbox.db_folder().exists(), "--help opened the database");
}

// --- Policy and keys ---

#[test]
fn client_policy_overrides_apply_and_bad_values_change_nothing() {
    let sandbox = Sandbox::new();
    let added = sandbox.json(
        &[
            "client",
            "add",
            "--name",
            "Notes",
            "--redirect-uri",
            "https://app.example/cb",
            "--json",
        ],
        None,
    );
    let id = added["client"]["client_id"].as_str().unwrap().to_owned();
    let set = sandbox.json(
        &[
            "client",
            "set",
            &id,
            "--access-ttl",
            "5m",
            "--refresh",
            "off",
            "--json",
        ],
        None,
    );
    assert_eq!(set["effective"]["access_ttl_secs"], 300);
    assert_eq!(set["effective"]["refresh_enabled"], false);
    assert_eq!(
        set["overrides"]["refresh_idle_ttl_secs"],
        Value::Null,
        "untouched fields inherit"
    );

    // Out of range, inconsistent, unparsable, unknown client: exit 2, nothing changed.
    for (args, needle) in [
        (vec!["--access-ttl", "30s"], "access_ttl"),
        (vec!["--access-ttl", "25h"], "access_ttl"),
        (
            vec!["--refresh-idle-ttl", "30d", "--refresh-absolute-ttl", "1d"],
            "shorter than the idle",
        ),
        (vec!["--rotate", "maybe"], "--rotate"),
        (vec!["--reuse-grace", "soon"], "--reuse-grace"),
        // Issue 9: numbers beyond any bound are a clear error, not an overflow.
        (vec!["--access-ttl", "99999999999999999d"], "too long"),
        (
            vec!["--refresh-idle-ttl", "99999999999999999999"],
            "too long",
        ),
        (vec!["--access-ttl", "9223372036854775807s"], "too long"),
        (vec!["--access-ttl=-5m"], "--access-ttl"),
    ] {
        let mut full = vec!["client", "set", id.as_str()];
        full.extend(args.iter());
        assert_refused(&sandbox.run(&full, None), &[needle]);
    }
    assert_refused(
        &sandbox.run(&["client", "set", "nope", "--rotate", "off"], None),
        &["client_id"],
    );
    let back = sandbox.json(
        &["client", "set", &id, "--refresh", "inherit", "--json"],
        None,
    );
    assert_eq!(
        back["effective"]["access_ttl_secs"], 300,
        "the failed changes left the policy alone"
    );
    assert_eq!(
        back["effective"]["refresh_enabled"], true,
        "inherit returns to the default"
    );
}

#[test]
fn policy_defaults_change_and_refuse_inherit() {
    let sandbox = Sandbox::new();
    let before = sandbox.json(&["policy", "show", "--json"], None);
    assert_eq!(before["access_ttl_secs"], 600);
    let after = sandbox.json(&["policy", "set", "--access-ttl", "15m", "--json"], None);
    assert_eq!(after["access_ttl_secs"], 900);
    assert_refused(
        &sandbox.run(&["policy", "set", "--rotate", "inherit"], None),
        &["--rotate"],
    );
    assert_refused(
        &sandbox.run(&["policy", "set"], None),
        &["nothing to change"],
    );
    assert_eq!(
        sandbox.json(&["policy", "show", "--json"], None)["access_ttl_secs"],
        900
    );
}

#[test]
fn keys_rotate_makes_new_active_keys() {
    let sandbox = Sandbox::new();
    let first = sandbox.json(&["keys", "rotate", "--json"], None);
    let second = sandbox.json(&["keys", "rotate", "--json"], None);
    let kids = |v: &Value| v["active_kids"].as_array().unwrap().clone();
    assert_eq!(kids(&first).len(), 2);
    assert_ne!(kids(&first), kids(&second));
    assert!(
        sandbox.dir.path().join("data/latchkey.key").exists(),
        "master key file created"
    );
    let bad = sandbox.run_env(
        &[("LATCHKEY_MASTER_KEY", "too-short")],
        &["keys", "rotate"],
        None,
    );
    assert_refused(&bad, &["LATCHKEY_MASTER_KEY"]);
}

#[test]
fn backchannel_logout_is_registered_changed_and_removed() {
    let sandbox = Sandbox::new();
    let add = |extra: &[&'static str]| {
        let mut args = vec![
            "client",
            "add",
            "--name",
            "Notes",
            "--redirect-uri",
            "https://notes.example/cb",
        ];
        args.extend_from_slice(extra);
        args
    };
    assert_refused(
        &sandbox.run(
            &add(&["--backchannel-logout-uri", "http://notes.example/bc"]),
            None,
        ),
        &["backchannel_logout_uri", "https"],
    );
    assert!(sandbox.clients().is_empty(), "nothing registered");
    let created = sandbox.json(
        &add(&[
            "--backchannel-logout-uri",
            "https://notes.example/bc",
            "--backchannel-logout-session-required",
            "--json",
        ]),
        None,
    );
    let client = &created["client"];
    assert_eq!(client["backchannel_logout_uri"], "https://notes.example/bc");
    assert_eq!(client["backchannel_logout_session_required"], true);
    let id = client["client_id"].as_str().unwrap().to_owned();

    assert_refused(
        &sandbox.run(
            &[
                "client",
                "set",
                &id,
                "--backchannel-logout-session-required",
                "maybe",
            ],
            None,
        ),
        &["--backchannel-logout-session-required"],
    );
    let changed = sandbox.json(
        &[
            "client",
            "set",
            &id,
            "--backchannel-logout-uri",
            "http://127.0.0.1:8080/bc",
            "--backchannel-logout-session-required",
            "off",
            "--json",
        ],
        None,
    );
    assert_eq!(
        changed["client"]["backchannel_logout_uri"],
        "http://127.0.0.1:8080/bc"
    );
    assert_eq!(
        changed["client"]["backchannel_logout_session_required"],
        false
    );
    assert!(
        changed.get("effective").is_none(),
        "the policy was not touched"
    );
    let removed = sandbox.json(
        &[
            "client",
            "set",
            &id,
            "--backchannel-logout-uri",
            "none",
            "--json",
        ],
        None,
    );
    assert_eq!(removed["client"]["backchannel_logout_uri"], Value::Null);
    let listed = sandbox.clients();
    assert_eq!(listed[0]["backchannel_logout_uri"], Value::Null);
}

// --- Upstream providers (issue 12) ---

const UPSTREAM_SECRET: &str = "the-upstream-secret-never-printed";

fn add_upstream(sandbox: &Sandbox, extra: &[&str]) -> Run {
    let mut args = vec![
        "upstream",
        "add",
        "--name",
        "Corp SSO",
        "--issuer",
        "https://sso.corp.example",
        "--client-id",
        "latchkey",
        "--client-secret-stdin",
    ];
    args.extend_from_slice(extra);
    sandbox.run_env(
        &[("LATCHKEY_ISSUER", "https://id.team.example")],
        &args,
        Some(&format!("{UPSTREAM_SECRET}\n")),
    )
}

#[test]
fn upstream_add_prints_the_redirect_uri_and_never_the_secret() {
    let sandbox = Sandbox::new();
    let run = add_upstream(
        &sandbox,
        &["--scope", "profile", "--scope", "offline_access"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("added upstream provider \"Corp SSO\""),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("https://id.team.example/signin/upstream/callback"),
        "the redirect URI to register: {run:?}"
    );
    assert!(
        run.stdout.contains("openid profile offline_access"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("revoke at logout:     on"),
        "on by default: {run:?}"
    );
    assert!(!run.stdout.contains(UPSTREAM_SECRET) && !run.stderr.contains(UPSTREAM_SECRET));

    let list = as_array(sandbox.json(&["upstream", "list", "--json"], None));
    assert_eq!(field(&list, "name"), ["Corp SSO"]);
    assert!(!list[0].to_string().contains(UPSTREAM_SECRET));
    let text = sandbox.ok(&["upstream", "list"], None);
    assert!(text.contains("https://sso.corp.example"), "{text}");

    // Set by name (any case): switches, overrides, extra parameters.
    let after = sandbox.json(
        &[
            "upstream",
            "set",
            "corp sso",
            "--revoke-at-logout",
            "off",
            "--revocation-endpoint",
            "https://sso.corp.example/revoke",
            "--revocation-param",
            "tenant=corp",
            "--json",
        ],
        None,
    );
    assert_eq!(after["revoke_at_logout"], false);
    assert_eq!(
        after["revocation_endpoint"],
        "https://sso.corp.example/revoke"
    );
    assert_eq!(after["revocation_extra_params"]["tenant"], "corp");
    let cleared = sandbox.json(
        &[
            "upstream",
            "set",
            "Corp SSO",
            "--revocation-endpoint",
            "none",
            "--clear-revocation-params",
            "--json",
        ],
        None,
    );
    assert_eq!(cleared["revocation_endpoint"], Value::Null);
    assert_eq!(cleared["revocation_extra_params"], serde_json::json!({}));

    // Removed: listed no more; removing again names the provider.
    let out = sandbox.ok(&["upstream", "remove", "Corp SSO"], None);
    assert!(out.contains("removed upstream provider"), "{out}");
    assert!(as_array(sandbox.json(&["upstream", "list", "--json"], None)).is_empty());
    assert_refused(
        &sandbox.run(&["upstream", "remove", "Corp SSO"], None),
        &["Corp SSO"],
    );
}

#[test]
fn bad_upstream_input_is_refused_naming_the_field_and_adds_nothing() {
    let cases: [(&[&str], &str); 4] = [
        (&["--revoke-at-logout", "maybe"], "--revoke-at-logout"),
        (
            &["--revocation-param", "novalue"],
            "revocation_extra_params",
        ),
        (
            &["--revocation-param", "token=x"],
            "revocation_extra_params",
        ),
        (
            &["--revocation-endpoint", "http://sso.corp.example/revoke"],
            "revocation_endpoint",
        ),
    ];
    for (extra, needle) in cases {
        let sandbox = Sandbox::new();
        let run = add_upstream(&sandbox, extra);
        assert_refused(&run, &[needle]);
        assert!(
            !sandbox.db_file().exists(),
            "{extra:?}: validated before the database is opened"
        );
    }
    // A plain-http issuer off loopback, and an empty secret.
    let sandbox = Sandbox::new();
    let run = sandbox.run(
        &[
            "upstream",
            "add",
            "--name",
            "X",
            "--issuer",
            "http://sso.corp.example",
            "--client-id",
            "a",
            "--client-secret-stdin",
        ],
        Some("secret\n"),
    );
    assert_refused(&run, &["issuer", "https"]);
    let run = sandbox.run(
        &[
            "upstream",
            "add",
            "--name",
            "X",
            "--issuer",
            "https://sso.corp.example",
            "--client-id",
            "a",
            "--client-secret-stdin",
        ],
        Some("\n"),
    );
    assert_refused(&run, &["client_secret"]);
    assert!(!sandbox.db_file().exists());
    // A duplicate name in another case: refused, the first one unchanged.
    let sandbox = Sandbox::new();
    assert_eq!(add_upstream(&sandbox, &[]).code, 0);
    let run = sandbox.run(
        &[
            "upstream",
            "add",
            "--name",
            "CORP SSO",
            "--issuer",
            "https://other.example",
            "--client-id",
            "a",
            "--client-secret-stdin",
        ],
        Some("secret\n"),
    );
    assert_refused(&run, &["already exists"]);
    let list = as_array(sandbox.json(&["upstream", "list", "--json"], None));
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["issuer"], "https://sso.corp.example");
}

#[test]
fn upstream_add_refuses_a_master_key_that_is_not_the_database_s() {
    let sandbox = Sandbox::new();
    // The server's keys, under the master key of the sandbox folder.
    sandbox.ok(&["keys", "rotate"], None);
    // The same database from another folder: another (new) master key file.
    let elsewhere = tempfile::tempdir().unwrap();
    let run = latchkey(
        elsewhere.path(),
        &sandbox.db_url(),
        &[],
        &[
            "upstream",
            "add",
            "--name",
            "Corp SSO",
            "--issuer",
            "https://sso.corp.example",
            "--client-id",
            "a",
            "--client-secret-stdin",
        ],
        Some("secret\n"),
    );
    assert_refused(&run, &["master key"]);
    assert!(as_array(sandbox.json(&["upstream", "list", "--json"], None)).is_empty());
}

#[test]
fn backup_copies_the_database_and_refuses_to_overwrite() {
    let sandbox = Sandbox::new();
    assert_eq!(
        sandbox
            .add_user("alice", "correct horse battery", false)
            .code,
        0
    );
    let copy = sandbox.dir.path().join("copy.db");
    let copy_text = copy.display().to_string();
    let out = sandbox.json(&["backup", &copy_text, "--json"], None);
    assert!(out["bytes"].as_u64().unwrap() > 0, "{out}");
    // The copy is a whole database: the user is in it.
    let copy_url = format!("sqlite://{copy_text}");
    let run = sandbox.run_env(
        &[("LATCHKEY_DATABASE_URL", &copy_url)],
        &["user", "list", "--json"],
        None,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let users: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(field(as_slice(&users), "username"), ["alice"]);
    // Never over an existing file.
    assert_refused(&sandbox.run(&["backup", &copy_text], None), &["exists"]);
}

#[test]
fn scope_catalogue_and_client_identity_from_the_command_line() {
    let sandbox = Sandbox::new();
    // A client cannot be registered for a scope the catalogue lacks.
    let run = sandbox.run(
        &[
            "client",
            "add",
            "--name",
            "Files",
            "--redirect-uri",
            "https://files.example/cb",
            "--scope",
            "files:read",
        ],
        None,
    );
    assert_refused(&run, &["files:read", "catalogue"]);
    // Bad words or a built-in scope: refused.
    assert_refused(
        &sandbox.run(&["scope", "set", "openid", "--description", "x"], None),
        &["scope"],
    );
    assert_refused(
        &sandbox.run(&["scope", "set", "files:read", "--description", ""], None),
        &["description"],
    );
    assert_refused(
        &sandbox.run(
            &[
                "scope",
                "set",
                "files:read",
                "--description",
                "x",
                "--sensitive",
                "maybe",
            ],
            None,
        ),
        &["--sensitive"],
    );
    let set = sandbox.json(
        &[
            "scope",
            "set",
            "files:read",
            "--description",
            "Read your files",
            "--sensitive",
            "--json",
        ],
        None,
    );
    assert_eq!(set["scope"]["sensitive"], true);
    // Reworded without the flag: still sensitive.
    sandbox.ok(
        &[
            "scope",
            "set",
            "files:read",
            "--description",
            "Read your files",
        ],
        None,
    );
    let list = sandbox.json(&["scope", "list", "--json"], None);
    assert_eq!(list["scopes"][0]["description"], "Read your files");
    assert_eq!(list["scopes"][0]["sensitive"], true, "kept when not given");
    let text = sandbox.ok(&["scope", "list"], None);
    assert!(
        text.contains("files:read") && text.contains("Read your files"),
        "{text}"
    );

    // The client with its identity; a bad logo is refused and adds nothing.
    let run = sandbox.run(
        &[
            "client",
            "add",
            "--name",
            "Files",
            "--redirect-uri",
            "https://files.example/cb",
            "--logo-uri",
            "data:image/png;base64,AA==",
        ],
        None,
    );
    assert_refused(&run, &["logo_uri"]);
    assert!(sandbox.clients().is_empty());
    let added = sandbox.json(
        &[
            "client",
            "add",
            "--name",
            "Files",
            "--redirect-uri",
            "https://files.example/cb",
            "--scope",
            "files:read",
            "--logo-uri",
            "https://files.example/logo.png",
            "--client-uri",
            "https://files.example/",
            "--description",
            "Your files",
            "--json",
        ],
        None,
    );
    let id = added["client"]["client_id"].as_str().unwrap().to_owned();
    assert_eq!(
        added["client"]["logo_uri"],
        "https://files.example/logo.png"
    );
    // `client set`: an empty value removes a field; a bad one changes nothing, policy included.
    let run = sandbox.run(
        &[
            "client",
            "set",
            &id,
            "--access-ttl",
            "5m",
            "--tos-uri",
            "javascript:x",
        ],
        None,
    );
    assert_refused(&run, &["tos_uri"]);
    let shown = sandbox.json(&["client", "set", &id, "--logo-uri", "", "--json"], None);
    assert!(shown["client"]["logo_uri"].is_null(), "{shown}");
    assert_eq!(shown["client"]["description"], "Your files");
    let policy = sandbox.json(&["client", "set", &id, "--rotate", "on", "--json"], None);
    assert_ne!(
        policy["effective"]["access_ttl_secs"], 300,
        "the refused set changed no policy: {policy}"
    );

    // In use: removal refused, naming the client.
    assert_refused(
        &sandbox.run(&["scope", "remove", "files:read"], None),
        &["Files"],
    );
    assert_refused(
        &sandbox.run(&["scope", "remove", "other:read"], None),
        &["other:read"],
    );
}
