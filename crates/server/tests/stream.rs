//! The live stream: a snapshot on connect, then each change, quickly. A test binary of its
//! own, so that its one-second limits are not shared with other tests' work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::Value;

#[path = "it/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use helpers::{boolean_flag, spawn_app};

/// Reads SSE `data:` payloads of `put` events from a response.
async fn next_put(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buffer: &mut String,
) -> Value {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if frame.lines().any(|l| l == "event: put") {
                let data: String = frame
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                    .collect();
                return serde_json::from_str(&data).unwrap();
            }
            continue;
        }
        let chunk = stream.next().await.unwrap().unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn a_change_reaches_a_connected_sdk_within_a_second() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    let server = app.token("server", Some("production")).await;
    let response = app
        .request(Method::GET, "/api/v1/stream", Some(&server))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let snapshot = next_put(&mut stream, &mut buffer).await;
    assert_eq!(snapshot["environment"], "production");
    assert!(snapshot["flags"]["flags"]["checkout"].is_object());
    let version = snapshot["version"].as_i64().unwrap();

    let started = Instant::now();
    app.request(
        Method::POST,
        "/api/v1/flags/checkout/kill?env=production",
        Some(&app.admin),
    )
    .send()
    .await
    .unwrap();
    let killed = async {
        loop {
            let put = next_put(&mut stream, &mut buffer).await;
            if put["flags"]["flags"]["checkout"]["environments"]["production"]["enabled"] == false {
                return put;
            }
        }
    };
    let change = tokio::time::timeout(Duration::from_secs(1), killed)
        .await
        .expect("the change arrived within 1 s");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(change["version"].as_i64().unwrap() > version);
    assert_eq!(
        change["flags"]["flags"]["checkout"]["environments"]["production"]["enabled"],
        false
    );
}

#[tokio::test]
async fn client_tokens_cannot_read_rules() {
    let app = spawn_app().await;
    let client = app.token("client", Some("production")).await;
    let response = app
        .request(Method::GET, "/api/v1/stream", Some(&client))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn polling_answers_304_until_the_configuration_changes() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    let server = app.token("server", Some("production")).await;
    let first = app
        .request(Method::GET, "/api/v1/config", Some(&server))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), reqwest::StatusCode::OK);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = first.json().await.unwrap();
    assert_eq!(format!("\"{}\"", body["version"]), etag);

    let same = app
        .request(Method::GET, "/api/v1/config", Some(&server))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), reqwest::StatusCode::NOT_MODIFIED);

    app.request(
        Method::POST,
        "/api/v1/flags/checkout/kill?env=production",
        Some(&app.admin),
    )
    .send()
    .await
    .unwrap();
    let changed = app
        .request(Method::GET, "/api/v1/config", Some(&server))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn revoking_a_token_ends_its_open_stream() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    let (_, created) = app
        .admin_json(
            Method::POST,
            "/api/v1/tokens",
            serde_json::json!({"name": "svc", "scope": "server", "environment": "production"}),
        )
        .await;
    let secret = created["secret"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let response = app
        .request(Method::GET, "/api/v1/stream", Some(secret))
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    next_put(&mut stream, &mut buffer).await;

    let revoked = app
        .request(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&app.admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), reqwest::StatusCode::OK);
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream stayed open after its token was revoked"
    );
    let again = app
        .request(Method::GET, "/api/v1/stream", Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), reqwest::StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_consumer_that_stops_reading_does_not_slow_the_others() {
    let app = spawn_app().await;
    let mut flag = boolean_flag();
    // A large configuration fills the stuck consumer's socket buffers quickly.
    flag["metadata"] = serde_json::json!({"padding": "x".repeat(100_000)});
    app.create_flag("checkout", flag).await;
    let server = app.token("server", Some("production")).await;
    // Streams outlive the helper client's request timeout.
    let streaming = reqwest::Client::new();
    let open = || {
        streaming
            .get(format!("{}/api/v1/stream", app.address))
            .bearer_auth(&server)
            .send()
    };
    let stuck = open().await.unwrap();
    let reader = open().await.unwrap();
    let mut reading = reader.bytes_stream();
    let mut buffer = String::new();
    next_put(&mut reading, &mut buffer).await;

    // Several megabytes of changes, while one consumer reads nothing.
    let changes = 40;
    for round in 0..changes {
        let action = if round % 2 == 0 { "kill" } else { "restore" };
        let started = Instant::now();
        let response = app
            .request(
                Method::POST,
                &format!("/api/v1/flags/checkout/{action}?env=production"),
                Some(&app.admin),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let expected = action == "restore";
        let seen = async {
            loop {
                let put = next_put(&mut reading, &mut buffer).await;
                let enabled =
                    put["flags"]["flags"]["checkout"]["environments"]["production"]["enabled"]
                        .as_bool();
                if enabled == Some(expected) {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(1), seen)
            .await
            .unwrap_or_else(|_| {
                panic!("change {round} took over 1 s to reach the reading consumer")
            });
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    // The stuck consumer is still connected; the server only holds its socket buffers
    // and the bounded change feed for it, and drops it once it is a whole feed behind.
    drop(stuck);
}
