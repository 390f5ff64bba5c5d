//! Token secrets at rest: after 100 tokens are issued and one is used by a real SDK with a
//! cache file and telemetry, no secret appears in the database files (SQLite's main file,
//! WAL and shared memory), in anything logged at any level, or in the SDK's cache.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sluice::Status;

use crate::harness::{TestServer, color_flag};
use crate::server_mode::{builder, wait_for_status};

/// Every log line of this test process, from the first use on: a global subscriber at TRACE,
/// so the server's and the SDK's logs from their own threads are all kept.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        // Another test binary's subscriber cannot be in this process; if one were, the
        // assertion on the log size below would fail rather than pass vacuously.
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn no_token_secret_is_stored_logged_or_cached() {
    let logs = captured_logs();
    let server = TestServer::start();
    server.create_flag("color", color_flag("red"));
    let mut secrets = vec![server.admin.clone()];
    for i in 0..100 {
        let (scope, environment) = match i % 3 {
            0 => ("admin", None),
            1 => ("server", Some("production")),
            _ => ("client", Some("staging")),
        };
        let (status, token) = server.post(
            "/api/v1/tokens",
            json!({"name": format!("t{i}"), "scope": scope, "environment": environment}),
        );
        assert_eq!(status, StatusCode::CREATED, "{token}");
        secrets.push(token["secret"].as_str().unwrap().to_owned());
    }
    let (_, sdk_secret) = server.server_token("production");
    secrets.push(sdk_secret.clone());
    // Use the tokens: an SDK with a cache file and telemetry, some OFREP calls, a bad token.
    let cache = tempfile::tempdir().unwrap();
    let cache_file = cache.path().join("flags.cache.json");
    let client = builder(&server.url(), &sdk_secret)
        .cache_file(&cache_file)
        .telemetry(true)
        .build()
        .unwrap();
    wait_for_status(&client, Status::Ready, Duration::from_secs(10));
    client.string("color", &sluice::ContextBuilder::new("u").build(), "none");
    assert!(client.flush_telemetry(Duration::from_secs(10)));
    drop(client);
    let (status, _) = server.get("/api/v1/tokens");
    assert_eq!(status, StatusCode::OK);
    // A near miss of a real secret is refused, and must not be logged either.
    let mut stream = std::net::TcpStream::connect(server.address).unwrap();
    write!(
        stream,
        "GET /api/v1/config HTTP/1.1\r\nHost: sluice\r\nAuthorization: Bearer {}x\r\nConnection: close\r\n\r\n",
        &secrets[5]
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    let mut places: Vec<(String, Vec<u8>)> = Vec::new();
    let mut database_files = 0;
    for entry in std::fs::read_dir(server.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            database_files += 1;
            places.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    assert!(database_files >= 2, "expected the database and its WAL");
    let cached = std::fs::read(&cache_file).unwrap();
    assert!(
        contains(&cached, "color"),
        "the cache holds the configuration"
    );
    places.push(("the SDK cache".into(), cached));
    let logged = logs.lock().unwrap().clone();
    assert!(
        logged.len() > 1_000,
        "only {} bytes were logged",
        logged.len()
    );
    places.push(("the logs".into(), logged));

    assert_eq!(secrets.len(), 102);
    for secret in &secrets {
        let hex = secret.trim_start_matches("sluice_");
        assert_eq!(hex.len(), 64, "{secret}");
        for (place, bytes) in &places {
            // Any 16 hex digits of a secret would be a leak; check the first and last.
            for piece in [&hex[..16], &hex[48..]] {
                assert!(!contains(bytes, piece), "a token secret appears in {place}");
            }
        }
    }
}
