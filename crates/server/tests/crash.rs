//! Crash safety: a `sluice serve` child is SIGKILLed in the middle of a stream of writes, 50
//! times over the same data directory, and after each kill the database must be intact,
//! every acknowledged write must be there, and the audit chain must verify.
//!
//! The test runs the real `sluice` binary, which belongs to another package, so Cargo does
//! not build it for this one: it is looked up beside this test's own directory
//! (`target/<profile>/sluice`). `cargo test --workspace`, the project's test command, builds
//! it; otherwise run `cargo build -p sluice-cli` first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};

const ROUNDS: usize = 50;
/// Concurrent writers; each owns its own keys, so its `If-Match` versions are exact.
const WRITERS: usize = 4;
const KEYS_PER_WRITER: usize = 4;
/// When the kill comes, after the writes start.
const KILL_AFTER_MS: std::ops::RangeInclusive<u64> = 20..=300;
/// How long a start may take before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The `sluice` binary of the same build as this test.
fn sluice_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // Integration tests live in target/<profile>/deps/.
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir.join(format!("sluice{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        let notice = format!(
            "the crash test runs the `sluice` binary, but {} does not exist: build it with \
             `cargo build -p sluice-cli` (same CARGO_TARGET_DIR and profile as the tests), \
             or run `cargo test --workspace`, which builds it",
            binary.display()
        );
        let _ = std::io::stderr().write_all(format!("{notice}\n").as_bytes());
        panic!("{notice}");
    }
    binary
}

/// A running `sluice serve` child, killed when dropped.
struct Server {
    child: Child,
    address: String,
    /// The first admin token, printed only by the start that created it.
    admin_token: Option<String>,
}

impl Server {
    /// Starts `sluice serve --port 0 --data-dir DIR` and waits for its address (and, on the
    /// first start, its admin token).
    fn start(binary: &Path, data_dir: &Path, log_path: &Path, first: bool) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap();
        let mut command = Command::new(binary);
        command
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for name in [
            "BIND",
            "PORT",
            "DATABASE",
            "DATA_DIR",
            "FLAGS",
            "CONFIG",
            "BODY_LIMIT",
            "REQUEST_TIMEOUT",
            "HEARTBEAT",
        ] {
            command.env_remove(format!("SLUICE_{name}"));
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines, received) = mpsc::channel();
        // Drains stdout until the child exits, so it never writes to a closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let next_line = || {
            let left = deadline.saturating_duration_since(Instant::now());
            received.recv_timeout(left).unwrap_or_else(|error| {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                panic!("sluice serve did not start ({error}); its log:\n{log}")
            })
        };
        let address = loop {
            if let Some(address) = next_line().strip_prefix("Sluice is serving on ") {
                break address.trim().to_owned();
            }
        };
        let admin_token = first.then(|| {
            while !next_line().contains("first admin token") {}
            next_line().trim().to_owned()
        });
        Server {
            child,
            address,
            admin_token,
        }
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The latest known state of one flag: acknowledged by a write, or seen after a restart.
#[derive(Debug, Clone)]
struct Known {
    version: i64,
    /// The definition at `version`.
    definition: Value,
}

/// What one writer did in one round.
#[derive(Debug, Default)]
struct Outcome {
    /// The acknowledged writes, in order, per key: (version, definition).
    acknowledged: Vec<(String, i64, Value)>,
    /// A write was in flight when the server died.
    in_flight: bool,
}

fn key(writer: usize, index: usize) -> String {
    format!("w{writer}-k{index}")
}

fn definition(round: usize, writer: usize, sequence: usize) -> Value {
    json!({
        "description": format!("round {round}, writer {writer}, write {sequence}"),
        "type": "boolean",
        "variants": {"on": true, "off": false},
        "default_variant": if sequence.is_multiple_of(2) { "off" } else { "on" },
        "off_variant": "off",
        "rules": [{"when": [{"attribute": "plan", "op": "eq", "value": "pro"}], "serve": "on"}],
    })
}

/// Writes in a tight loop until the server stops answering: creates the writer's flags,
/// then updates them with `If-Match`, with a kill-switch toggle every third write.
async fn write_until_killed(
    client: Client,
    address: String,
    token: String,
    round: usize,
    writer: usize,
    mut versions: Vec<i64>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut sequence = 0;
    loop {
        let index = sequence % KEYS_PER_WRITER;
        let key = key(writer, index);
        let version = versions[index];
        let request = if version == 0 {
            client
                .request(Method::POST, format!("{address}/api/v1/flags/{key}"))
                .json(&definition(round, writer, sequence))
        } else if sequence % 3 == 2 {
            let action = if sequence.is_multiple_of(2) {
                "kill"
            } else {
                "restore"
            };
            client
                .request(
                    Method::POST,
                    format!("{address}/api/v1/flags/{key}/{action}?env=production"),
                )
                .header("if-match", format!("\"{version}\""))
        } else {
            client
                .request(Method::PUT, format!("{address}/api/v1/flags/{key}"))
                .header("if-match", format!("\"{version}\""))
                .json(&definition(round, writer, sequence))
        };
        let response = match request.bearer_auth(&token).send().await {
            Ok(response) => response,
            Err(_) => {
                outcome.in_flight = true;
                return outcome;
            }
        };
        let status = response.status();
        let Ok(body) = response.json::<Value>().await else {
            // The server died while sending the response: not acknowledged.
            outcome.in_flight = true;
            return outcome;
        };
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "round {round}: writer {writer}: {key} at version {version} got {status}: {body}"
        );
        let new_version = body["version"].as_i64().unwrap();
        assert_eq!(new_version, version + 1, "round {round}: {key}: {body}");
        versions[index] = new_version;
        outcome
            .acknowledged
            .push((key, new_version, body["definition"].clone()));
        sequence += 1;
    }
}

async fn integrity_check(database: &Path) {
    let options = SqliteConnectOptions::new().filename(database);
    let mut connection = SqliteConnection::connect_with(&options).await.unwrap();
    let rows = sqlx::query("PRAGMA integrity_check")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    let result: Vec<String> = rows.iter().map(|row| row.get::<String, _>(0)).collect();
    connection.close().await.unwrap();
    assert_eq!(result, ["ok"], "PRAGMA integrity_check");
}

/// Every flag the server has, by key.
async fn stored_flags(client: &Client, address: &str, token: &str) -> BTreeMap<String, Known> {
    let response = client
        .get(format!("{address}/api/v1/flags"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flag| {
            let known = Known {
                version: flag["version"].as_i64().unwrap(),
                definition: flag["definition"].clone(),
            };
            (flag["key"].as_str().unwrap().to_owned(), known)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let binary = sluice_binary();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let database = data_dir.join("sluice.db");
    let log = dir.path().join("sluice.log");
    let started = Instant::now();

    let start = |first: bool| {
        let (binary, data_dir, log) = (binary.clone(), data_dir.clone(), log.clone());
        async move {
            tokio::task::spawn_blocking(move || Server::start(&binary, &data_dir, &log, first))
                .await
                .unwrap()
        }
    };
    let mut server = start(true).await;
    let token = server
        .admin_token
        .clone()
        .expect("the first start prints an admin token");

    // The floor every flag must stay at or above: its last acknowledged or seen version.
    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    let (mut acknowledged_total, mut in_flight_rounds, mut unacknowledged_found) =
        (0usize, 0usize, 0usize);
    for round in 1..=ROUNDS {
        let client = Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let versions = (0..KEYS_PER_WRITER)
                    .map(|index| known.get(&key(writer, index)).map_or(0, |k| k.version))
                    .collect();
                tokio::spawn(write_until_killed(
                    client.clone(),
                    server.address.clone(),
                    token.clone(),
                    round,
                    writer,
                    versions,
                ))
            })
            .collect();
        let kill_after = Duration::from_millis(rand::random_range(KILL_AFTER_MS));
        tokio::time::sleep(kill_after).await;
        server.kill();

        let mut acknowledged = BTreeMap::new();
        let mut in_flight = false;
        for writer in writers {
            let outcome = writer.await.unwrap();
            in_flight |= outcome.in_flight;
            acknowledged_total += outcome.acknowledged.len();
            for (key, version, definition) in outcome.acknowledged {
                acknowledged.insert(
                    key,
                    Known {
                        version,
                        definition,
                    },
                );
            }
        }
        in_flight_rounds += usize::from(in_flight);
        for (key, latest) in acknowledged {
            known.insert(key, latest);
        }

        integrity_check(&database).await;
        drop(server);
        server = start(false).await;
        let stored = stored_flags(&client, &server.address, &token).await;
        for (key, floor) in &known {
            let Some(now) = stored.get(key) else {
                panic!(
                    "round {round}: flag {key} was acknowledged at version {} and is gone",
                    floor.version
                );
            };
            assert!(
                now.version >= floor.version,
                "round {round}: flag {key} was acknowledged at version {} but is at {}",
                floor.version,
                now.version
            );
            assert!(
                now.version <= floor.version + 1,
                "round {round}: flag {key} moved from {} to {} with one writer and one write in flight",
                floor.version,
                now.version
            );
            if now.version == floor.version {
                assert_eq!(
                    now.definition, floor.definition,
                    "round {round}: flag {key} at version {}",
                    now.version
                );
            } else {
                // Committed, but the kill came before the response.
                unacknowledged_found += 1;
            }
        }
        // Writes that committed without an acknowledgement are the new floor.
        known.extend(stored);

        let response = client
            .get(format!("{}/api/v1/audit/verify", server.address))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let report: Value = response.json().await.unwrap();
        assert_eq!(
            report["ok"], true,
            "round {round}: the audit chain is broken: {report}"
        );
    }
    server.kill();

    let summary = format!(
        "crash test: {ROUNDS} SIGKILLs in {:.1} s; {acknowledged_total} acknowledged writes all present; \
         {in_flight_rounds} rounds killed with a write in flight; {unacknowledged_found} unacknowledged writes found committed\n",
        started.elapsed().as_secs_f64()
    );
    // Past the harness's capture, so the figures show in every run.
    let _ = std::io::stderr().write_all(summary.as_bytes());
    assert!(
        acknowledged_total >= ROUNDS,
        "too few writes were acknowledged to test anything: {acknowledged_total}"
    );
}
