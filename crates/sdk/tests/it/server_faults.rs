//! Server mode under injected faults, through a proxy in front of a real server: a revoked
//! token, rate limiting, malformed and invalid stream events, and a black hole.

use std::time::{Duration, Instant};

use serde_json::json;
use sluice::{ContextBuilder, Error, ErrorCode, Status};

use crate::harness::{Mode, Proxy, Seen, TestServer, color_flag};
use crate::server_mode::{builder, color, wait_for_status};
use crate::wait_until;

/// A server with a `color` flag, a production server token, and a forwarding proxy.
fn setup() -> (TestServer, String, String, Proxy) {
    let server = TestServer::start();
    server.create_flag("color", color_flag("red"));
    let (id, token) = server.server_token("production");
    let proxy = Proxy::start(server.address, Mode::Forward);
    (server, id, token, proxy)
}

#[test]
fn a_revoked_token_stops_the_client_without_a_reconnect_storm() {
    let (server, token_id, token, proxy) = setup();
    let client = builder(&proxy.url(), &token).build().unwrap();
    assert_eq!(color(&client), "red");

    server.revoke(&token_id);
    let before = proxy.seen().len();
    proxy.cut();
    wait_for_status(&client, Status::Error, Duration::from_secs(5));
    let error = client.last_error().unwrap();
    assert!(
        matches!(*error, Error::Unauthorized { status: 401, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("401"), "{error}");
    assert_eq!(
        color(&client),
        "red",
        "the last good flags are still served"
    );

    // Nothing can signal that no request will come: watch for longer than the first
    // reconnect delay (at most 1 s) and several poll intervals (200 ms).
    let after_error = proxy.seen().len();
    std::thread::sleep(Duration::from_millis(2500));
    let seen = proxy.seen();
    assert_eq!(
        seen.len(),
        after_error,
        "requests after the 401: {:?}",
        &seen[after_error..]
    );
    // The refused request, and perhaps one the cut broke while in flight.
    assert!(seen.len() - before <= 2, "{:?}", &seen[before..]);
    assert!(
        seen[before..]
            .iter()
            .all(|seen| seen.path.starts_with("/api/v1/"))
    );
    assert_eq!(client.status(), Status::Error);
}

#[test]
fn a_403_at_start_is_an_error_at_once() {
    let (server, _, _, proxy) = setup();
    proxy.set_mode(Mode::Reply {
        status: 403,
        headers: vec![],
        body: json!({"error": "forbidden", "message": "this token cannot read configurations"})
            .to_string(),
    });
    let started = Instant::now();
    let client = builder(&proxy.url(), "anything").build().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(client.status(), Status::Error);
    let error = client.last_error().unwrap();
    assert!(
        error
            .to_string()
            .contains("this token cannot read configurations"),
        "{error}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(proxy.seen().len(), 1);
    drop(server);
}

#[test]
fn rate_limiting_is_honoured_and_the_client_recovers() {
    let (server, _, token, proxy) = setup();
    let client = builder(&proxy.url(), &token).build().unwrap();
    assert_eq!(color(&client), "red");

    proxy.set_mode(Mode::Reply {
        status: 429,
        headers: vec![("retry-after", "2".to_owned())],
        body: json!({"error": "rate_limited", "message": "slow down"}).to_string(),
    });
    proxy.cut();
    // The cut may first fail a request in flight; the 429 follows.
    let limited = |error: &Error| {
        matches!(
            error,
            Error::Status {
                status: 429,
                retry_after: Some(delay),
                ..
            } if *delay == Duration::from_secs(2)
        )
    };
    assert!(
        wait_until(Duration::from_secs(5), || client
            .last_error()
            .is_some_and(|error| limited(&error))),
        "{:?}",
        client.last_error()
    );
    assert_eq!(client.status(), Status::Stale);
    assert_eq!(color(&client), "red");

    // Three rate-limited requests in a row, each at least Retry-After after the last.
    let replies = || -> Vec<Seen> {
        let seen = proxy.seen();
        seen.into_iter()
            .filter(|seen| seen.mode == "reply")
            .collect()
    };
    assert!(wait_until(Duration::from_secs(10), || replies().len() >= 3));
    let replies = replies();
    for pair in replies[..3].windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(1950),
            "{gap:?} between {pair:?}"
        );
    }

    server.update_flag("color", color_flag("blue"));
    proxy.set_mode(Mode::Forward);
    wait_for_status(&client, Status::Ready, Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(5), || color(&client) == "blue"));
}

#[test]
fn malformed_and_invalid_events_are_reported_and_ignored() {
    let (server, _, token, proxy) = setup();
    let client = builder(&proxy.url(), &token).build().unwrap();
    assert_eq!(color(&client), "red");
    // The injected configurations claim versions 999 and 1000; neither may be served.
    let not_injected = |client: &sluice::Client| client.version().is_some_and(|v| v < 999);

    // A frame whose data is not JSON, then a heartbeat.
    proxy.set_mode(Mode::Stream(
        "event: put\nid: 999\ndata: {\"version\": 999, \"flags\": \n\n: ping\n\n".to_owned(),
    ));
    proxy.cut();
    wait_for_status(&client, Status::Error, Duration::from_secs(10));
    let error = client.last_error().unwrap();
    assert!(matches!(*error, Error::Malformed { .. }), "{error}");
    assert!(error.to_string().contains("not JSON"), "{error}");
    assert_eq!(color(&client), "red");
    assert!(not_injected(&client), "{:?}", client.version());

    // Well-formed, but a definition that does not compile.
    let invalid = json!({
        "version": 1000,
        "environment": "production",
        "format": "sluice",
        "flags": {"flags": {"color": color_flag("purple")}}
    });
    proxy.set_mode(Mode::Stream(format!(
        "event: put\nid: 1000\ndata: {invalid}\n\n"
    )));
    proxy.cut();
    assert!(
        wait_until(Duration::from_secs(10), || client
            .last_error()
            .is_some_and(|error| matches!(*error, Error::InvalidConfig { .. }))),
        "{:?}",
        client.last_error()
    );
    let error = client.last_error().unwrap();
    let problem = error.definition_errors().unwrap().iter().next().unwrap();
    assert_eq!(problem.path.to_string(), "flags.color.default_variant");
    assert_eq!(client.status(), Status::Error);
    assert_eq!(color(&client), "red");
    assert!(not_injected(&client), "{:?}", client.version());

    // The real stream again: the client recovers and follows changes.
    proxy.set_mode(Mode::Forward);
    proxy.cut();
    server.update_flag("color", color_flag("green"));
    wait_for_status(&client, Status::Ready, Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(5), || color(&client) == "green"));
    assert!(client.last_error().is_none());
}

#[test]
fn a_black_hole_neither_blocks_init_nor_slows_evaluation() {
    let (server, _, token, proxy) = setup();
    proxy.set_mode(Mode::BlackHole);
    let init_timeout = Duration::from_millis(500);

    let started = Instant::now();
    let client = builder(&proxy.url(), &token)
        .init_timeout(init_timeout)
        .build()
        .unwrap();
    let took = started.elapsed();
    println!("black hole: build returned after {took:?} (init timeout {init_timeout:?})");
    assert!(took < init_timeout + Duration::from_millis(100), "{took:?}");
    assert!(took >= init_timeout, "{took:?}");
    assert_eq!(client.status(), Status::NotReady);

    // Not ready: the caller's default, at once. The bound is on the 99th percentile, so a
    // test thread descheduled by a busy machine does not fail it.
    let user = ContextBuilder::new("u").build();
    let mut timings = Vec::with_capacity(2000);
    for _ in 0..1000 {
        let started = Instant::now();
        let details = client.string_details("color", &user, "fallback");
        timings.push(started.elapsed());
        assert_eq!(details.value, "fallback");
        assert_eq!(details.error, Some(ErrorCode::ProviderNotReady));
        let started = Instant::now();
        let value = client.bool("color", &user, true);
        timings.push(started.elapsed());
        assert!(value);
    }
    timings.sort();
    let (median, p99, slowest) = (timings[1000], timings[1980], timings[1999]);
    println!(
        "black hole: not-ready evaluation median {median:?}, p99 {p99:?}, slowest {slowest:?} (2000 calls)"
    );
    assert!(p99 < Duration::from_millis(1), "{p99:?}");

    // The server appears behind the same address.
    proxy.set_mode(Mode::Forward);
    let started = Instant::now();
    client.wait_ready(Duration::from_secs(10)).unwrap();
    println!(
        "black hole: ready {:?} after the upstream came back",
        started.elapsed()
    );
    assert_eq!(color(&client), "red");

    // Dropping the client stops its thread promptly, even with a request hanging.
    proxy.set_mode(Mode::BlackHole);
    proxy.cut();
    let started = Instant::now();
    drop(client);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(server);
}

#[test]
fn a_black_hole_at_start_serves_the_cache_after_the_init_timeout() {
    let (server, _, token, proxy) = setup();
    let cache = tempfile::tempdir().unwrap();
    let path = cache.path().join("cache.json");
    {
        let client = builder(&proxy.url(), &token)
            .cache_file(&path)
            .build()
            .unwrap();
        assert_eq!(color(&client), "red");
        assert!(wait_until(Duration::from_secs(5), || path.exists()));
    }
    proxy.set_mode(Mode::BlackHole);
    let init_timeout = Duration::from_millis(400);
    let started = Instant::now();
    let client = builder(&proxy.url(), &token)
        .init_timeout(init_timeout)
        .cache_file(&path)
        .build()
        .unwrap();
    let took = started.elapsed();
    assert!(took < init_timeout + Duration::from_millis(100), "{took:?}");
    assert_eq!(client.status(), Status::Stale);
    assert_eq!(color(&client), "red");

    server.update_flag("color", color_flag("blue"));
    proxy.set_mode(Mode::Forward);
    wait_for_status(&client, Status::Ready, Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(5), || color(&client) == "blue"));
}
