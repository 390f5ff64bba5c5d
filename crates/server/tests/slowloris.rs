//! Slowloris: 1,000 connections that send a request head slowly or never are each closed
//! soon after the header timeout, while OFREP evaluation keeps its latency. In a test binary
//! of its own, so that no other test's work on the same cores moves the latencies it compares.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[path = "it/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use helpers::{Options, TestApp, boolean_flag, spawn_with};

fn host(app: &TestApp) -> &str {
    app.address.trim_start_matches("http://")
}

/// Latencies of `count` OFREP evaluations, one after another, sorted.
async fn evaluation_latencies(app: &TestApp, token: &str, count: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let started = Instant::now();
        let (status, _) = app
            .ofrep(
                token,
                "checkout",
                json!({"targetingKey": format!("user-{i}")}),
            )
            .await;
        latencies.push(started.elapsed());
        assert_eq!(status, StatusCode::OK);
    }
    latencies.sort();
    latencies
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

/// The p99 of three batches of 200 evaluations, their median: one burst of other work on
/// the machine moves one batch, not the figure.
async fn batched_p99(app: &TestApp, token: &str) -> Duration {
    let mut batches = Vec::with_capacity(3);
    for _ in 0..3 {
        batches.push(p99(&evaluation_latencies(app, token, 200).await));
    }
    batches.sort();
    batches[1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slowloris_connections_are_closed_and_evaluation_stays_fast() {
    const CONNECTIONS: usize = 1_000;
    // Long enough that the evaluations under attack finish before the slow connections are
    // closed: the comparison is with 1,000 idle slow connections held, not with their closing.
    let timeout = Duration::from_secs(6);
    let app = spawn_with(Options {
        header_timeout: Some(timeout.as_secs()),
        ..Options::default()
    })
    .await;
    app.create_flag("checkout", boolean_flag()).await;
    let client = app.token("client", Some("production")).await;
    // Warm up, then the baseline.
    evaluation_latencies(&app, &client, 50).await;
    let baseline = batched_p99(&app, &client).await;

    // Half send the start of a request head and stop; half send nothing at all.
    let opened = Instant::now();
    let mut slow = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut stream = TcpStream::connect(host(&app)).await.unwrap();
        if i % 2 == 0 {
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: sluice\r\nX-Slow: ")
                .await
                .unwrap();
        }
        slow.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let attacked = batched_p99(&app, &client).await;
    assert!(
        opened.elapsed() < timeout,
        "the evaluations under attack outlasted the header timeout"
    );

    // Every slow connection is closed by the server, soon after the timeout.
    let closes = slow.into_iter().map(|mut stream| {
        tokio::spawn(async move {
            let mut buffer = [0_u8; 1024];
            loop {
                match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer)).await
                {
                    Ok(Ok(0) | Err(_)) => return Some(Instant::now()),
                    Ok(Ok(_)) => {}
                    Err(_) => return None,
                }
            }
        })
    });
    let mut latest = Duration::ZERO;
    for close in futures_util::future::join_all(closes).await {
        let closed_at = close.unwrap().expect("a slow connection was never closed");
        latest = latest.max(closed_at - opened);
    }
    let (base, under) = (baseline, attacked);
    println!(
        "slowloris: {CONNECTIONS} connections all closed within {latest:?} of opening \
         (header timeout {timeout:?}); evaluation p99 {base:?} before, {under:?} during"
    );
    assert!(
        latest < timeout + Duration::from_secs(5),
        "the last slow connection closed after {latest:?}"
    );
    // The floor keeps a sub-millisecond baseline on loopback from making noise a failure.
    let bound = 2 * base.max(Duration::from_millis(2));
    assert!(under < bound, "p99 {under:?} under attack, bound {bound:?}");
}
