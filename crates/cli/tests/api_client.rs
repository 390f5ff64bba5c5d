//! The `sluice` CLI as a client of a real `sluice serve` child on an ephemeral port:
//! output, exit codes and what the server ends up holding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// A running server, killed when dropped (also when a test panics).
struct Server {
    child: Child,
    url: String,
    admin: String,
    data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command with no `SLUICE_*` variables from the environment the tests run in.
fn clean_command(args: &[&str]) -> Command {
    let mut command = Command::new(SLUICE);
    command.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLUICE_") {
            command.env_remove(name);
        }
    }
    command
}

impl Server {
    fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let data_dir = data.path().to_str().unwrap().to_owned();
        let mut child = clean_command(&["serve", "--port", "0", "--data-dir", &data_dir])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut server = Server {
            child,
            url: String::new(),
            admin: String::new(),
            data,
        };

        // Read on a thread so a server that never prints fails the test instead of hanging
        // it; the thread keeps draining stdout until the child exits.
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut after_token_line = false;
        while server.url.is_empty() || server.admin.is_empty() {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("the server did not print its URL and admin token");
            if let Some(url) = line.strip_prefix("Sluice is serving on ") {
                server.url = url.trim().to_owned();
            } else if line.contains("first admin token") {
                after_token_line = true;
            } else if after_token_line {
                server.admin = line.trim().to_owned();
                after_token_line = false;
            }
        }
        server
    }

    /// Runs the CLI against this server with the admin token.
    fn sluice(&self, args: &[&str]) -> Output {
        self.sluice_as(Some(&self.admin), args)
    }

    /// Runs the CLI against this server with `token`, or none.
    fn sluice_as(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut command = clean_command(args);
        command.env("SLUICE_URL", &self.url).stdin(Stdio::null());
        if let Some(token) = token {
            command.env("SLUICE_TOKEN", token);
        }
        command.output().unwrap()
    }

    /// Runs the CLI and parses its stdout as JSON, requiring success.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let output = self.sluice(&args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        serde_json::from_str(&stdout(&output)).unwrap()
    }

    /// Applies the example file.
    fn apply_example(&self) {
        let output = self.sluice(&["apply", &example(), "--yes"]);
        assert!(output.status.success(), "{}", stderr(&output));
    }

    /// Evaluates one flag over OFREP with `token`, returning the status and body.
    fn evaluate(&self, token: &str, key: &str, context: Value) -> (u16, Value) {
        let response = reqwest::blocking::Client::new()
            .post(format!("{}/ofrep/v1/evaluate/flags/{key}", self.url))
            .bearer_auth(token)
            .json(&json!({ "context": context }))
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/flags.yaml")
        .display()
        .to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const V1: &str = "\
segments:
  staff:
    when: [{ attribute: email, op: ends_with, value: \"@shop.example\" }]
flags:
  a: { type: boolean, variants: { \"on\": true, \"off\": false }, default_variant: \"on\" }
  b: { type: boolean, variants: { \"on\": true, \"off\": false }, default_variant: \"on\" }
";

const V2: &str = "\
segments:
  staff:
    when: [{ attribute: email, op: ends_with, value: \"@shop.example\" }]
flags:
  a: { type: boolean, variants: { \"on\": true, \"off\": false }, default_variant: \"off\", enabled: false }
  c:
    type: string
    variants: { blue: blue, green: green }
    default_variant: blue
    rules: [{ when: [{ segment: staff }], serve: green }]
";

#[test]
fn apply_shows_the_diff_confirms_imports_and_then_has_nothing_to_do() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let v1 = write(dir.path(), "v1.yaml", V1);
    let v1 = v1.to_str().unwrap();

    let output = server.sluice(&["apply", v1, "--dry-run"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("Changes to http://127.0.0.1:"), "{text}");
    assert!(
        text.contains("  flags:\n    + a\n    + b\n  segments:\n    + staff\n"),
        "{text}"
    );
    assert!(
        text.contains("2 flags to create, 0 to update, 0 to delete; 1 segment to create"),
        "{text}"
    );
    assert!(text.ends_with("Dry run: nothing was written.\n"), "{text}");
    assert_eq!(server.json(&["flags", "list"]), json!({"flags": []}));

    // Without a terminal to ask on, only --yes applies.
    let output = server.sluice(&["apply", v1]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains(
        "error: refusing to apply without confirmation: stdin is not a terminal; pass --yes"
    ));
    assert_eq!(server.json(&["flags", "list"]), json!({"flags": []}));

    let output = server.sluice(&["apply", v1, "--yes", "--reason", "first import"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(&format!("Applied {v1}: config version")),
        "{text}"
    );
    assert!(
        text.contains("  flags: 2 created, 0 updated, 0 deleted, 0 unchanged\n"),
        "{text}"
    );
    assert!(
        text.contains("  segments: 1 created, 0 updated, 0 deleted, 0 unchanged\n"),
        "{text}"
    );
    let flags = server.json(&["flags", "list"]);
    let keys: Vec<&str> = flags["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a", "b"]);

    let output = server.sluice(&["apply", v1, "--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(&format!("No changes: the server already matches {v1}.")),
        "{}",
        stdout(&output)
    );

    // Created, updated with the fields that differ, and deleted.
    let v2 = write(dir.path(), "v2.yaml", V2);
    let v2 = v2.to_str().unwrap();
    let output = server.sluice(&["apply", v2, "--dry-run", "--env", "production"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("  flags:\n    + c\n    ~ a (default_variant, enabled)\n    - b\n"),
        "{text}"
    );
    assert!(!text.contains("segments:"), "{text}");

    let changes = server.json(&["apply", v2, "--dry-run"]);
    assert_eq!(changes["dryRun"], true);
    assert_eq!(changes["changes"]["flags"]["created"], json!(["c"]));
    assert_eq!(changes["changes"]["flags"]["deleted"], json!(["b"]));

    let applied = server.json(&["apply", v2, "--yes"]);
    assert_eq!(applied["dryRun"], false);
    assert_eq!(applied["summary"]["flags"]["created"], json!(["c"]));
    assert_eq!(applied["summary"]["flags"]["updated"], json!(["a"]));
    assert_eq!(applied["summary"]["flags"]["deleted"], json!(["b"]));
    assert!(applied["configVersion"].as_i64().unwrap() > 1);
    let flag = server.json(&["flags", "get", "a"]);
    assert_eq!(flag["definition"]["enabled"], false);

    // The whole example round-trips too: applying it twice changes nothing the second time.
    server.apply_example();
    let output = server.sluice(&["apply", &example(), "--yes"]);
    assert!(
        stdout(&output).contains("No changes"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn apply_reports_local_errors_with_their_location_and_sends_nothing() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        "flags:\n  a:\n    type: boolean\n    variants: { \"on\": true }\n    default_variant: off\n",
    );
    let output = server.sluice(&["apply", bad.to_str().unwrap(), "--yes"]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        errors
            .contains("bad.yaml:5:5: flags.a.default_variant: `off` is not a variant of this flag"),
        "{errors}"
    );
    assert!(
        errors.contains("bad.yaml: 1 error; nothing was sent"),
        "{errors}"
    );

    let output = server.sluice(&["apply", &example(), "--yes", "--env", "qa"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("environment `qa` is not defined"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.json(&["flags", "list"]), json!({"flags": []}));

    let output = server.sluice(&["apply", "/nonexistent/flags.yaml", "--yes"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot read /nonexistent/flags.yaml"));
}

#[test]
fn flags_list_get_kill_and_restore() {
    let server = Server::start();
    server.apply_example();

    let output = server.sluice(&["flags", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in ["KEY", "STATE", "new-checkout", "payments-api-v2", "boolean"] {
        assert!(text.contains(expected), "{expected} in {text}");
    }

    let output = server.sluice(&["flags", "get", "new-checkout"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in ["payments-team", "definition:", "PAY-1412", "internal first"] {
        assert!(text.contains(expected), "{expected} in {text}");
    }

    let output = server.sluice(&["flags", "get", "no-such-flag"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: 404 Not Found: flag `no-such-flag` does not exist\n"
    );

    let output = server.sluice(&[
        "flags",
        "kill",
        "new-checkout",
        "--env",
        "production",
        "--reason",
        "checkout errors",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "new-checkout in production: killed: it serves its off variant (now off, flag version 2).\n"
    );
    let output = server.sluice(&["flags", "list"]);
    assert!(
        stdout(&output).contains("on; production: off"),
        "{}",
        stdout(&output)
    );
    let flag = server.json(&["flags", "get", "new-checkout"]);
    assert_eq!(
        flag["definition"]["environments"]["production"]["enabled"],
        false
    );
    assert_eq!(flag["version"], 2);

    let output = server.sluice(&["flags", "restore", "new-checkout", "--env", "production"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "new-checkout in production: restored: its rules and default apply again (now on, flag version 3).\n"
    );
    let flag = server.json(&["flags", "restore", "new-checkout", "--env", "staging"]);
    assert_eq!(flag["key"], "new-checkout");

    let output = server.sluice(&["flags", "kill", "no-such-flag", "--env", "production"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: 404 Not Found: "),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_client_token_evaluates_over_ofrep_until_revoked() {
    let server = Server::start();
    server.apply_example();

    let output = server.sluice(&[
        "token",
        "create",
        "--scope",
        "client",
        "--env",
        "production",
        "--name",
        "web",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("`web` (client token for production)"),
        "{text}"
    );
    assert!(
        stderr(&output).contains("shown only once"),
        "{}",
        stderr(&output)
    );
    let secret = text
        .lines()
        .find_map(|line| line.strip_prefix("secret: "))
        .unwrap()
        .to_owned();
    let id = text.split_whitespace().nth(1).unwrap().to_owned();
    assert!(id.starts_with("tok_"), "{text}");

    let (status, body) =
        server.evaluate(&secret, "legacy-invoice-pdf", json!({"targetingKey": "u1"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], false);
    assert_eq!(body["reason"], "DISABLED");

    // A client token cannot administer.
    let output = server.sluice_as(Some(&secret), &["flags", "list"]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        errors.starts_with("error: 403 Forbidden: this needs an admin token"),
        "{errors}"
    );
    assert!(
        errors.contains("hint: this needs more access than the token has: set SLUICE_TOKEN"),
        "{errors}"
    );

    let output = server.sluice(&["token", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        id.as_str(),
        "web",
        "client",
        "production",
        "first admin",
        "admin",
        "(all)",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    let tokens = server.json(&["token", "list"]);
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 2);

    let output = server.sluice(&["token", "revoke", &id]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!(
            "Revoked {id} `web` (client token for production): it authorizes nothing from now on.\n"
        )
    );
    let (status, _) = server.evaluate(&secret, "legacy-invoice-pdf", json!({}));
    assert_eq!(status, 401);

    let output = server.sluice(&["token", "create", "--scope", "admin", "--env", "production"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: 400 Bad Request: admin tokens cover every environment"),
        "{}",
        stderr(&output)
    );

    let created = server.json(&["token", "create", "--scope", "server", "--env", "staging"]);
    assert_eq!(created["scope"], "server");
    assert_eq!(created["environment"], "staging");
    assert_eq!(created["name"], "server-staging");
    assert!(created["secret"].as_str().is_some_and(|s| !s.is_empty()));
}

#[test]
fn audit_lists_every_change_and_verify_names_a_broken_link() {
    let server = Server::start();
    server.apply_example();
    let output = server.sluice(&[
        "flags",
        "kill",
        "new-checkout",
        "--env",
        "production",
        "--reason",
        "checkout errors",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));

    let output = server.sluice(&["audit", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "SEQ",
        "token.create",
        "config.import",
        "flag.kill",
        "flag:new-checkout",
        "checkout errors",
        "(server)",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    assert!(text.contains("3 records, newest first."), "{text}");

    let kills = server.json(&["audit", "list", "--action", "flag.kill"]);
    let records = kills["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["resource"], "flag:new-checkout");
    assert_eq!(records[0]["reason"], "checkout errors");
    let latest = server.json(&["audit", "list", "--limit", "1"]);
    assert_eq!(latest["records"][0]["seq"], 3);
    let output = server.sluice(&["audit", "list", "--resource", "flag:nothing"]);
    assert_eq!(stdout(&output), "No audit records match.\n");

    let output = server.sluice(&["audit", "verify"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with("OK: the audit chain verifies (3 records); head #3 "),
        "{text}"
    );
    let head = text.split_whitespace().last().unwrap();
    assert_eq!(head.len(), 64, "{text}");
    assert_eq!(server.json(&["audit", "verify"])["ok"], true);

    // Edit a record behind the server's back: verification names it and fails.
    tamper(
        &server.data.path().join("sluice.db"),
        "UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 2",
    );
    let output = server.sluice(&["audit", "verify"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(text.starts_with("BROKEN at record 2 (edited): "), "{text}");
    let output = server.sluice(&["audit", "verify", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["report"]["first_break"]["seq"], 2);
}

/// Runs one SQL statement on the server's SQLite file, as an intruder would.
fn tamper(database: &Path, sql: &'static str) {
    use sqlx::Connection as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(database)
            .busy_timeout(Duration::from_secs(10));
        let mut connection = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        let done = sqlx::query(sql).execute(&mut connection).await.unwrap();
        assert_eq!(done.rows_affected(), 1);
        connection.close().await.unwrap();
    });
}

#[test]
fn bad_credentials_and_unreachable_servers_explain_themselves() {
    let server = Server::start();

    let output = server.sluice_as(Some("not-a-token"), &["flags", "list"]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        errors.starts_with("error: 401 Unauthorized: invalid or revoked token\n"),
        "{errors}"
    );
    assert!(
        errors.contains("hint: set SLUICE_TOKEN (or --token)"),
        "{errors}"
    );
    assert!(stdout(&output).is_empty());

    let output = server.sluice_as(None, &["audit", "verify"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: 401 Unauthorized: missing credential"),
        "{}",
        stderr(&output)
    );

    // --url and --token override the environment.
    let output = server.sluice_as(
        Some("not-a-token"),
        &["token", "list", "--token", &server.admin],
    );
    assert!(output.status.success(), "{}", stderr(&output));

    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let output = server.sluice(&["flags", "list", "--url", &closed]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        errors.starts_with(&format!(
            "error: cannot reach the Sluice server at {closed}: "
        )),
        "{errors}"
    );
    assert!(errors.contains("SLUICE_URL"), "{errors}");

    let output = server.sluice(&["token", "list", "--url", "https://flags.example"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("plain HTTP only"),
        "{}",
        stderr(&output)
    );
}

const ROLLOUT_FLAGS: &str = "\
flags:
  checkout: { type: boolean, variants: { \"on\": true, \"off\": false }, default_variant: \"off\" }
";

const ROLLOUT_PLAN: &str = "\
stages:
  - { percent: 10, bake: 1h, min_samples: 100 }
  - { percent: 50, bake: 2h }
  - { percent: 100 }
";

#[test]
fn rollout_start_status_steer_and_explain() {
    let server = Server::start();
    let flags = write(server.data.path(), "flags.yaml", ROLLOUT_FLAGS);
    let output = server.sluice(&["apply", &flags.display().to_string(), "--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));

    // A plan with an error is refused locally, with its line.
    let bad = write(
        server.data.path(),
        "bad.yaml",
        "stages:\n  - { percent: 500 }\n",
    );
    let output = server.sluice(&[
        "rollout",
        "start",
        "checkout",
        "--env",
        "production",
        "--plan",
        &bad.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("bad.yaml:2"),
        "{}",
        stderr(&output)
    );

    let plan = write(server.data.path(), "plan.yaml", ROLLOUT_PLAN);
    let output = server.sluice(&[
        "rollout",
        "start",
        "checkout",
        "--env",
        "production",
        "--plan",
        &plan.display().to_string(),
        "--reason",
        "new flow",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("Started rollout ro_"),
        "{}",
        stdout(&output)
    );

    let output = server.sluice(&["rollout", "status", "checkout"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "running",
        "1. 10%",
        "bake 0s of 1h",
        "GUARDRAIL",
        "error_rate",
        "History:",
        "start by tok_",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }

    let output = server.sluice(&["rollout", "promote", "checkout"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--reason"), "{}", stderr(&output));
    let output = server.sluice(&["rollout", "promote", "checkout", "--reason", "looks fine"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("Promoted"), "{}", stdout(&output));

    let output = server.sluice(&["rollout", "rollback", "checkout", "-r", "support tickets"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("rolled back"),
        "{}",
        stdout(&output)
    );
    let output = server.sluice(&["rollout", "pause", "checkout"]);
    assert_eq!(output.status.code(), Some(1), "nothing unfinished to pause");

    let status = server.json(&["rollout", "status", "checkout"]);
    assert_eq!(status["status"], "rolled_back");
    let kinds: Vec<&str> = status["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["start", "promote", "rollback"]);
    let listed = server.json(&["rollout", "list", "--flag", "checkout"]);
    assert_eq!(listed["rollouts"].as_array().unwrap().len(), 1);
}

#[test]
fn env_protect_changes_approve_and_flags_stale_through_the_cli() {
    let server = Server::start();
    server.apply_example();
    let flags = server.json(&["flags", "list"]);
    let key = flags["flags"][0]["key"].as_str().unwrap().to_owned();

    let output = server.sluice(&["env", "protect", "production", "--approvals", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output)
            .contains("production: changes need 1 approval(s) from admins other than the author"),
        "{}",
        stdout(&output)
    );
    // Killing is instant; restoring files a change request.
    let output = server.sluice(&["flags", "kill", &key, "--env", "production"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = server.sluice(&["flags", "restore", &key, "--env", "production"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("production is protected: change request cr_"),
        "{}",
        stdout(&output)
    );
    let listed = server.json(&["changes", "list", "--status", "pending"]);
    let id = listed["changeRequests"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(listed["changeRequests"][0]["kind"], "flag.restore");

    // The author cannot approve it; another admin can, and it applies.
    let output = server.sluice(&["changes", "approve", &id]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("may not approve"),
        "{}",
        stderr(&output)
    );
    let reviewer = server.json(&["token", "create", "--scope", "admin", "--name", "reviewer"]);
    let reviewer = reviewer["secret"].as_str().unwrap().to_owned();
    let output = server.sluice_as(Some(&reviewer), &["changes", "approve", &id]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(": applied (1 of 1 approvals)"),
        "{}",
        stdout(&output)
    );
    let shown = server.json(&["changes", "show", &id]);
    assert_eq!(shown["status"], "applied");
    let flag = server.json(&["flags", "get", &key]);
    assert_eq!(
        flag["definition"]["environments"]["production"]["enabled"],
        true
    );

    // Stale flags: nothing was evaluated, but everything is younger than a day.
    let output = server.sluice(&["flags", "stale", "--days", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("No stale flags"),
        "{}",
        stdout(&output)
    );
    let everything = server.json(&["flags", "stale", "--all"]);
    assert_eq!(
        everything["flags"].as_array().unwrap().len(),
        flags["flags"].as_array().unwrap().len()
    );
    let output = server.sluice(&["flags", "archive", &key]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), format!("{key}: archived."));
    let everything = server.json(&["flags", "stale", "--all"]);
    let archived = everything["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == key.as_str())
        .unwrap()
        .clone();
    assert_eq!(archived["stage"], "archived");
}

#[test]
fn release_create_checklist_override_and_report() {
    let server = Server::start();
    let flags = write(
        server.data.path(),
        "flags.yaml",
        "flags:\n  new-checkout:\n    type: boolean\n    variants: { on: true, off: false }\n    default_variant: off\n    off_variant: off\n",
    );
    let output = server.sluice(&["apply", &flags.display().to_string(), "--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));

    // A broken release is refused locally, with its line.
    let bad = write(
        server.data.path(),
        "bad.yaml",
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/release.yaml"
        ))
        .unwrap()
        .replace("risk: high ", "risk: huge "),
    );
    let output = server.sluice(&["release", "create", &bad.display().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("bad.yaml:10"),
        "{}",
        stderr(&output)
    );

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/release.yaml");
    let output = server.sluice(&["release", "create", example]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("Policy rule `ai-assisted-high`"), "{text}");
    assert!(text.contains("Gate: shut"), "{text}");

    // The checklist exits 1 while the gate is shut, and names what is missing.
    let output = server.sluice(&["release", "checklist", "checkout-v2"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("segment `beta-testers` does not exist"),
        "{}",
        stdout(&output)
    );

    let output = server.sluice(&[
        "release",
        "override",
        "checkout-v2",
        "--reason",
        "drill day",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("OVERRIDDEN by"),
        "{}",
        stdout(&output)
    );
    let output = server.sluice(&["release", "checklist", "checkout-v2"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    let output = server.sluice(&["release", "list"]);
    assert!(
        stdout(&output).contains("overridden"),
        "{}",
        stdout(&output)
    );
    let output = server.sluice(&["--json", "report"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["report"]["total"]["releases"], 1);
    assert_eq!(report["report"]["total"]["started"], 0);
}

const RELEASE: &str = "\
channel: stable
version: 1.0.0
notes: First release.
artifacts:
  - os: macos
    arch: arm64
    url: https://dl.example.com/Desk-1.0.0-arm64.zip
    size: 1000
    sha512: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==
";

#[test]
fn app_create_release_promote_halt_resume_pull_and_status() {
    let server = Server::start();
    let output = server.sluice(&["app", "create", "desk", "--name", "Desk"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("Created app `desk` with channels stable, beta, nightly."),
        "{}",
        stdout(&output)
    );
    let listed = server.json(&["app", "list"]);
    assert_eq!(listed["apps"][0]["key"], "desk");

    // A broken release file is refused locally, naming the field.
    let bad = write(
        server.data.path(),
        "bad.yaml",
        &RELEASE.replace("version: 1.0.0", "version: one"),
    );
    let output = server.sluice(&[
        "app",
        "release",
        "create",
        "desk",
        "-f",
        &bad.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("version"), "{}", stderr(&output));

    let file = write(server.data.path(), "release.yaml", RELEASE);
    let file = file.display().to_string();
    let output = server.sluice(&[
        "app",
        "release",
        "create",
        "desk",
        "-f",
        &file,
        "--percent",
        "100",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("complete"), "{}", stdout(&output));
    // 0.1% is a real share, not 0.
    let output = server.sluice(&[
        "app",
        "release",
        "create",
        "desk",
        "-f",
        &file,
        "--version",
        "1.1.0",
        "--percent",
        "0.1",
        "--reason",
        "canary",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("offered to 0.1% of installs"),
        "{}",
        stdout(&output)
    );

    let output = server.sluice(&[
        "app",
        "release",
        "promote",
        "desk",
        "1.1.0",
        "--percent",
        "0.05",
    ]);
    assert_eq!(output.status.code(), Some(1), "shrinking is refused");
    assert!(stderr(&output).contains("409"), "{}", stderr(&output));
    let output = server.sluice(&[
        "app",
        "release",
        "promote",
        "desk",
        "1.1.0",
        "--percent",
        "10",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("rolling, offered to 10%"),
        "{}",
        stdout(&output)
    );
    let output = server.sluice(&[
        "app",
        "release",
        "halt",
        "desk",
        "1.1.0",
        "-r",
        "crash spike",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("is halted"), "{}", stdout(&output));
    let output = server.sluice(&["app", "release", "resume", "desk", "1.1.0"]);
    assert!(
        stdout(&output).contains("is rolling"),
        "{}",
        stdout(&output)
    );
    let output = server.sluice(&[
        "app",
        "release",
        "pull",
        "desk",
        "1.1.0",
        "--channel",
        "stable",
    ]);
    assert!(stdout(&output).contains("is pulled"), "{}", stdout(&output));

    let releases = server.json(&["app", "release", "list", "desk", "--channel", "stable"]);
    let states: Vec<&str> = releases["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["complete", "pulled"]);
    let output = server.sluice(&["app", "release", "list", "desk"]);
    assert!(stdout(&output).contains("pulled"), "{}", stdout(&output));

    let output = server.sluice(&["app", "status", "desk"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in ["stable: 0 installs reporting", "1.1.0", "pulled", "nightly"] {
        assert!(text.contains(expected), "{expected} in {text}");
    }

    // Each change is in the audit log, with its reason.
    let audit = server.json(&["audit", "list", "--resource", "app:desk/stable/1.1.0"]);
    let records = audit["records"].as_array().unwrap();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "release.pull",
            "release.resume",
            "release.halt",
            "release.promote",
            "release.create"
        ]
    );
    assert_eq!(records[2]["reason"], "crash spike");
    assert_eq!(records[4]["reason"], "canary");
}

const AB: &str = "\
version: 1
environments: [production]
flags:
  pricing:
    type: string
    variants: { control: old, treatment: new }
    default_variant: control
    goals:
      - { event: purchase }
      - { event: purchase_value, kind: mean, better: lower }
    rules:
      - split:
          - { variant: control, weight: 50000 }
          - { variant: treatment, weight: 50000 }
";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn experiment_report_and_shadow_read_the_telemetry() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "ab.yaml", AB);
    let output = server.sluice(&["apply", file.to_str().unwrap(), "--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let created = server.json(&[
        "token",
        "create",
        "--scope",
        "server",
        "--env",
        "production",
    ]);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let start = now_ms() / 10_000 * 10_000 - 10_000;
    let bucket = |variant: &str, exposures: u64, conversions: u64| {
        json!({
            "startMs": start, "flag": "pricing", "variant": variant, "configVersion": 1,
            "exposures": exposures,
            "events": {
                "purchase": {"count": conversions, "sum": conversions as f64, "sumSq": conversions as f64},
                "purchase_value": {"count": conversions, "sum": conversions as f64 * 10.0, "sumSq": conversions as f64 * 100.0},
            },
        })
    };
    let batch = json!({
        "batchId": "ab-1",
        "instance": {"id": "i-1", "sdk": "sluice-rust/0.1.0", "configVersion": 1},
        "sentAtMs": now_ms(),
        "buckets": [bucket("control", 20_000, 2_000), bucket("treatment", 20_000, 2_600)],
        "crashes": [],
        "dropped": 0,
        "shadow": [{
            "startMs": start, "experiment": "pricing", "configVersion": 1,
            "matches": 990, "mismatches": 10,
        }],
    });
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/metrics", server.url))
        .bearer_auth(&secret)
        .json(&batch)
        .send()
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().unwrap()
    );

    let since = start.to_string();
    let base = [
        "experiment",
        "report",
        "pricing",
        "--env",
        "production",
        "--metric",
        "purchase",
        "--since",
        &since,
    ];
    let output = server.sluice(&base);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("control (control)"), "{text}");
    assert!(text.contains("20000"), "{text}");
    assert!(text.contains("13.00%"), "{text}");
    assert!(text.contains("+30.00%"), "{text}");
    assert!(text.contains("Verdict: winner. `treatment` wins"), "{text}");
    assert!(text.contains("SRM: exposures match the split"), "{text}");
    let report = server.json(&base);
    assert_eq!(report["report"]["winner"], "treatment");
    assert_eq!(report["report"]["arms"][1]["events"], 2_600);

    let output = server.sluice(&[
        "experiment",
        "report",
        "pricing",
        "--env",
        "production",
        "--metric",
        "purchase",
        "--kind",
        "median",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));

    // Without --metric: every goal the flag declares, the primary first, each measured as
    // declared.
    let goals = [
        "experiment",
        "report",
        "pricing",
        "--env",
        "production",
        "--since",
        &since,
    ];
    let output = server.sluice(&goals);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("goal `purchase` (conversion, higher is better)"),
        "{text}"
    );
    assert!(
        text.contains("goal `purchase_value` (mean, lower is better)"),
        "{text}"
    );
    let reports = server.json(&goals);
    assert_eq!(reports.as_array().unwrap().len(), 2, "{reports}");
    assert_eq!(reports[0]["metric"], "purchase");
    assert_eq!(reports[0]["report"]["winner"], "treatment");
    assert_eq!(reports[1]["kind"], "mean");
    // More value per exposure where less is better: the treatment loses that goal.
    assert_eq!(reports[1]["better"], "lower");
    assert_eq!(reports[1]["report"]["verdict"], "loser", "{}", reports[1]);

    let shadow = [
        "experiment",
        "shadow",
        "pricing",
        "--env",
        "production",
        "--since",
        &since,
    ];
    let output = server.sluice(&shadow);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("10 / 1000"), "{text}");
    assert!(text.contains("1.00%"), "{text}");
    let body = server.json(&shadow);
    assert_eq!(body["analysis"]["mismatchRate"]["k"], 10);
}

#[test]
fn flags_dry_run_starts_reports_and_stops() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "flags.yaml", V2);
    let output = server.sluice(&["apply", file.to_str().unwrap(), "--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let client = server.json(&[
        "token",
        "create",
        "--scope",
        "client",
        "--env",
        "production",
    ]);
    let client = client["secret"].as_str().unwrap().to_owned();

    // A broken rules file is refused here, with its line, and nothing starts.
    let broken = write(
        dir.path(),
        "broken.yaml",
        "rules:\n  - serve: green\n    colour: red\n",
    );
    let output = server.sluice(&[
        "flags",
        "dry-run",
        "c",
        "--env",
        "production",
        "--rules",
        broken.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("broken.yaml:3"),
        "{}",
        stderr(&output)
    );

    // Staged: everyone gets green, not only staff.
    let rules = write(dir.path(), "staged.yaml", "default_variant: green\n");
    let output = server.sluice(&[
        "flags",
        "dry-run",
        "c",
        "--env",
        "production",
        "--rules",
        rules.to_str().unwrap(),
        "--reason",
        "green for all",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("running"), "{}", stdout(&output));

    for (email, served) in [
        ("a@shop.example", "green"),
        ("b@else.example", "blue"),
        ("c@else.example", "blue"),
    ] {
        let (status, body) =
            server.evaluate(&client, "c", json!({"targetingKey": email, "email": email}));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["variant"], served, "the current rules keep serving");
    }
    let report = ["flags", "dry-run", "report", "c", "--env", "production"];
    let output = server.sluice(&report);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("Compared 3 evaluations: 2 (66.7%) would get a different variant."),
        "{text}"
    );
    assert!(text.contains("blue -> green"), "{text}");
    let body = server.json(&report);
    assert_eq!(body["report"]["wouldChange"], 2);
    assert_eq!(body["reason"], "green for all");

    let output = server.sluice(&["flags", "dry-run", "stop", "c", "--env", "production"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("stopped"), "{}", stdout(&output));
    let output = server.sluice(&["flags", "dry-run", "stop", "c", "--env", "production"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no running dry run"),
        "{}",
        stderr(&output)
    );
}
