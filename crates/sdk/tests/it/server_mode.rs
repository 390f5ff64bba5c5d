//! Server mode against a real server: first fetch, live propagation, a server restart, and
//! the last-known-good cache file.

use std::time::{Duration, Instant};

use sluice::{Client, ContextBuilder, Error, Status};

use crate::harness::{TestServer, color_flag};
use crate::wait_until;

/// A server client for tests: no process overrides, quick timeouts and polls. Telemetry is
/// off, so that the proxy's request counts are about the configuration alone; the telemetry
/// tests turn it on.
pub fn builder(url: &str, token: &str) -> sluice::ServerBuilder {
    Client::builder()
        .server(url)
        .token(token)
        .env_vars(Vec::<(String, String)>::new())
        .init_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(1))
        .request_timeout(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(200))
        .telemetry(false)
}

pub fn color(client: &Client) -> String {
    client.string("color", &ContextBuilder::new("u").build(), "none")
}

/// Waits for the status to become `wanted`, through any intermediate states.
pub fn wait_for_status(client: &Client, wanted: Status, within: Duration) {
    let mut changes = client.subscribe();
    let deadline = Instant::now() + within;
    while client.status() != wanted {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "still {} (last error: {:?}) after {within:?}",
            client.status(),
            client.last_error().map(|e| e.to_string())
        );
        let _ = changes.wait_changed(left);
    }
}

#[test]
fn build_fetches_the_environment_of_the_token() {
    let server = TestServer::start();
    server.create_flag("color", color_flag("red"));
    let (_, token) = server.server_token("staging");
    let client = builder(&server.url(), &token).build().unwrap();
    assert_eq!(client.status(), Status::Ready);
    assert_eq!(color(&client), "red");
    assert_eq!(client.environment(), Some("staging"));
    assert_eq!(client.server(), Some(server.url().as_str()));
    assert_eq!(client.file(), None);
    assert!(client.version().is_some());
    assert_eq!(client.flag_keys(), ["color"]);
}

#[test]
fn a_flag_change_reaches_a_connected_client_in_under_a_second() {
    let server = TestServer::start();
    server.create_flag("color", color_flag("red"));
    let (_, token) = server.server_token("production");
    // Polling is slowed right down, so only the live stream can deliver in time.
    let client = builder(&server.url(), &token)
        .poll_interval(Duration::from_secs(600))
        .build()
        .unwrap();
    assert_eq!(color(&client), "red");
    let mut slowest = Duration::ZERO;
    for variant in ["green", "blue", "red", "green", "blue"] {
        let before = client.version();
        let started = Instant::now();
        server.update_flag("color", color_flag(variant));
        assert!(
            wait_until(Duration::from_secs(1), || color(&client) == variant),
            "still {} after 1 s",
            color(&client)
        );
        let took = started.elapsed();
        slowest = slowest.max(took);
        assert!(took < Duration::from_secs(1), "{took:?}");
        assert!(client.version() > before);
        assert_eq!(client.status(), Status::Ready);
    }
    println!("propagation: slowest of 5 changes {slowest:?} (write request included)");
}

#[test]
fn a_server_restart_serves_stale_flags_then_recovers_with_changes_made_meanwhile() {
    let mut server = TestServer::start();
    server.create_flag("color", color_flag("red"));
    let (_, token) = server.server_token("production");
    let client = builder(&server.url(), &token).build().unwrap();
    assert_eq!(color(&client), "red");
    let version = client.version();

    server.stop();
    wait_for_status(&client, Status::Stale, Duration::from_secs(5));
    assert_eq!(color(&client), "red", "the last good flags are served");
    assert!(
        matches!(*client.last_error().unwrap(), Error::Unreachable { .. }),
        "{:?}",
        client.last_error()
    );
    let details = client.string_details("color", &ContextBuilder::new("u").build(), "none");
    assert_eq!((details.value.as_str(), details.error), ("red", None));

    // The flag changes while the client cannot see the server.
    server.change_offline(|server, url| server.update_flag_at(url, "color", color_flag("blue")));
    assert_eq!(client.status(), Status::Stale);
    assert_eq!(color(&client), "red");

    server.restart();
    wait_for_status(&client, Status::Ready, Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(5), || color(&client) == "blue"),
        "still {}",
        color(&client)
    );
    assert!(client.version() > version);
    assert!(client.last_error().is_none());

    // And the live stream works again.
    server.update_flag("color", color_flag("green"));
    assert!(wait_until(Duration::from_secs(5), || color(&client) == "green"));
}

#[test]
fn the_cache_file_serves_when_the_server_is_down_at_start() {
    let mut server = TestServer::start();
    server.create_flag("color", color_flag("green"));
    let (_, token) = server.server_token("production");
    let cache = tempfile::tempdir().unwrap();
    let path = cache.path().join("flags.json");

    let first = builder(&server.url(), &token)
        .cache_file(&path)
        .build()
        .unwrap();
    assert_eq!(color(&first), "green");
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&path)
            .is_ok_and(|text| text.contains("green"))),
        "the cache was never written"
    );
    drop(first);
    server.stop();
    let cached: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let version = cached["version"].as_i64();
    assert!(version.is_some(), "{cached}");

    // Connection refused: the cache is served at once, without waiting out the timeout.
    let started = Instant::now();
    let client = builder(&server.url(), &token)
        .init_timeout(Duration::from_secs(5))
        .cache_file(&path)
        .build()
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(client.status(), Status::Stale);
    assert_eq!(color(&client), "green");
    assert_eq!(client.version(), version);
    assert_eq!(client.environment(), Some("production"));

    server.restart();
    wait_for_status(&client, Status::Ready, Duration::from_secs(10));
    assert_eq!(color(&client), "green");
}

#[test]
fn without_a_server_or_cache_the_client_is_not_ready_and_serves_defaults() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let started = Instant::now();
    let client = builder(&url, "token")
        .init_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(400));
    assert_eq!(client.status(), Status::NotReady);
    assert!(matches!(
        *client.last_error().unwrap(),
        Error::Unreachable { .. }
    ));
    let details = client.bool_details("anything", &ContextBuilder::new("u").build(), true);
    assert!(details.value);
    assert_eq!(details.error, Some(sluice::ErrorCode::ProviderNotReady));
    assert!(client.wait_ready(Duration::from_millis(10)).is_err());
}
