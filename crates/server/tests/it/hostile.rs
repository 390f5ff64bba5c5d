//! Hostile input over raw TCP: oversized bodies and request heads, slow clients, deep
//! nesting. Each test speaks HTTP/1.1 by hand where a well-behaved client library would
//! refuse to misbehave.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::auth_matrix::declared_routes;
use crate::helpers::{Options, TestApp, spawn_app, spawn_with};

const TEN_MB: usize = 10 * 1024 * 1024;

fn host(app: &TestApp) -> &str {
    app.address.trim_start_matches("http://")
}

/// Reads until the end of a response head (or EOF) and returns the status code.
async fn read_status(stream: &mut TcpStream) -> Option<u16> {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    let text = String::from_utf8_lossy(&received);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A request path for a route template: every `{parameter}` becomes `x`.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "x"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_write_route_answers_a_10_mb_body_413_before_reading_it() {
    let app = spawn_app().await;
    let writes: Vec<(String, String)> = declared_routes()
        .into_iter()
        .filter(|(method, _)| matches!(method.as_str(), "POST" | "PUT" | "PATCH"))
        .collect();
    assert!(writes.len() >= 15, "only {} write routes", writes.len());
    let mut wrong = Vec::new();
    let mut slowest = Duration::ZERO;
    for (method, template) in &writes {
        let path = concrete(template);
        let mut stream = TcpStream::connect(host(&app)).await.unwrap();
        let started = Instant::now();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: sluice\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {TEN_MB}\r\n\r\n",
            app.admin
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // Only the start of the body is ever sent: the answer must not wait for the rest.
        let _ = stream.write_all(&[b' '; 16 * 1024]).await;
        let status = tokio::time::timeout(Duration::from_secs(5), read_status(&mut stream))
            .await
            .ok()
            .flatten();
        slowest = slowest.max(started.elapsed());
        if status != Some(413) {
            wrong.push(format!("{method} {template}: {status:?}"));
        }
    }
    assert!(wrong.is_empty(), "not 413: {wrong:#?}");
    println!(
        "{} write routes answered 413 to a 10 MB body, the slowest in {slowest:?}",
        writes.len()
    );
    assert!(slowest < Duration::from_secs(2), "slowest {slowest:?}");
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit() {
    let app = spawn_with(Options {
        body_limit: Some(64 * 1024),
        ..Options::default()
    })
    .await;
    let stream = TcpStream::connect(host(&app)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /api/v1/flags/chunked HTTP/1.1\r\nHost: sluice\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        app.admin
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    // No length to refuse up front: the server must stop reading at its limit.
    let sender = tokio::spawn(async move {
        let chunk = [b' '; 8 * 1024];
        let mut sent = 0;
        while sent < TEN_MB {
            let frame = format!("{:x}\r\n", chunk.len());
            if writer.write_all(frame.as_bytes()).await.is_err()
                || writer.write_all(&chunk).await.is_err()
                || writer.write_all(b"\r\n").await.is_err()
            {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buffer = [0_u8; 4096];
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    drop(reader);
    let sent = sender.await.unwrap();
    assert!(sent < TEN_MB, "the server read all {sent} bytes");
    // Nothing was written.
    let (status, _) = app.get("/api/v1/flags/chunked", &app.admin.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(host(&app)).await.unwrap();
    let filler = "a".repeat(100 * 1024);
    let request = format!("GET /health HTTP/1.1\r\nHost: sluice\r\nX-Filler: {filler}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    let status = tokio::time::timeout(Duration::from_secs(5), read_status(&mut stream))
        .await
        .unwrap();
    assert_eq!(status, Some(431));
    // The server is unharmed.
    let health = app
        .request(Method::GET, "/health", None)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// `depth` nested arrays, as text.
fn nested(depth: usize) -> String {
    let mut text = String::with_capacity(depth * 2);
    text.extend(std::iter::repeat_n('[', depth));
    text.extend(std::iter::repeat_n(']', depth));
    text
}

#[tokio::test]
async fn json_nested_10000_levels_deep_is_a_quick_parse_error() {
    let app = spawn_app().await;
    let client = app.token("client", Some("production")).await;
    let deep = nested(10_000);
    let context = format!("{{\"context\": {{\"targetingKey\": \"u\", \"deep\": {deep}}}}}");
    let flag = format!(
        "{{\"type\": \"boolean\", \"variants\": {{\"on\": true, \"off\": false}}, \
         \"default_variant\": \"off\", \"metadata\": {{\"deep\": {deep}}}}}"
    );
    let cases = [
        (Method::POST, "/api/v1/flags/deep", app.admin.clone(), flag),
        (
            Method::POST,
            "/ofrep/v1/evaluate/flags/deep",
            client.clone(),
            context.clone(),
        ),
        (
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            client.clone(),
            context,
        ),
    ];
    for (method, path, token, body) in cases {
        let mut fastest = Duration::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            let response = app
                .request(method.clone(), path, Some(&token))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status();
            let answer: Value = response.json().await.unwrap();
            fastest = fastest.min(started.elapsed());
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
                "{path}: {status} {answer}"
            );
            let text = answer.to_string();
            assert!(text.contains("recursion limit"), "{path}: {text}");
        }
        println!("{path}: 10,000 levels refused in {fastest:?} (fastest of 5)");
        assert!(fastest < Duration::from_millis(10), "{path}: {fastest:?}");
    }
}

#[tokio::test]
async fn regexes_that_are_too_long_or_too_large_are_refused_when_written() {
    let app = spawn_app().await;
    let with_pattern = |pattern: String| {
        json!({
            "type": "boolean",
            "variants": {"on": true, "off": false},
            "default_variant": "off",
            "rules": [{"when": [{"attribute": "email", "op": "matches", "value": pattern}], "serve": "on"}],
        })
    };
    for (pattern, expected) in [
        ("a".repeat(2_000), "at most 1024"),
        (r"\w{200}\w{200}\w{200}".to_owned(), "compiles larger"),
    ] {
        let (status, body) = app
            .admin_json(Method::POST, "/api/v1/flags/redos", with_pattern(pattern))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let text = body.to_string();
        assert!(text.contains(expected), "{text}");
        assert!(text.contains("rules[0].when[0]"), "{text}");
    }
    let (status, _) = app.get("/api/v1/flags/redos", &app.admin.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_catastrophic_backtracking_pattern_evaluates_in_linear_time() {
    let app = spawn_app().await;
    let definition = json!({
        "type": "boolean",
        "variants": {"on": true, "off": false},
        "default_variant": "off",
        "rules": [{"when": [{"attribute": "input", "op": "matches", "value": "^(a+)+$"}], "serve": "on"}],
    });
    app.create_flag("redos", definition).await;
    let client = app.token("client", Some("production")).await;
    // A backtracking engine takes 2^n steps on n `a`s followed by a `!`; 30 would be minutes.
    let mut times = Vec::new();
    for length in [1_000_usize, 100_000] {
        let input = format!("{}!", "a".repeat(length));
        let mut fastest = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            let (status, body) = app
                .ofrep(
                    &client,
                    "redos",
                    json!({"targetingKey": "u", "input": input}),
                )
                .await;
            fastest = fastest.min(started.elapsed());
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["value"], json!(false));
        }
        times.push(fastest);
    }
    println!("^(a+)+$ on 1,000 and 100,000 characters: {times:?}");
    assert!(times[1] < Duration::from_millis(500), "{times:?}");
}
