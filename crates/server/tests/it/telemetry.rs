//! SDK telemetry over HTTP: batches arrive, retries count once, aggregates match what was
//! sent, gzip works and gzip bombs do not, bad batches name their paths, and instances
//! acknowledge the configuration version they applied.

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_core::rollout::LatencySketch;
use sluice_core::telemetry::bucket_start;

use crate::helpers::{TestApp, boolean_flag, spawn_app, split};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn sketch(values: &[f64]) -> Value {
    let mut sketch = LatencySketch::default();
    for &value in values {
        sketch.0.add(value);
    }
    serde_json::to_value(sketch).unwrap()
}

/// A bucket of `checkout` at `start`, under configuration version `version`.
fn bucket(start: i64, variant: &str, version: i64, exposures: u64, latencies: &[f64]) -> Value {
    let mut bucket = json!({
        "startMs": start,
        "flag": "checkout",
        "variant": variant,
        "configVersion": version,
        "exposures": exposures,
        "errors": exposures / 10,
        "crashes": 1,
        "events": {"purchase": {"count": 2, "sum": 30.5, "sumSq": 500.25}},
    });
    // An SDK leaves out an empty sketch.
    if !latencies.is_empty() {
        bucket["latency"] = sketch(latencies);
    }
    bucket
}

fn batch(id: &str, instance: &str, version: Option<i64>, buckets: Vec<Value>) -> Value {
    json!({
        "batchId": id,
        "instance": {"id": instance, "sdk": "sluice-rust/0.1.0", "configVersion": version},
        "sentAtMs": now_ms(),
        "buckets": buckets,
        "crashes": [],
        "dropped": 0,
    })
}

async fn post(app: &TestApp, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let response = app
        .request(Method::POST, "/api/v1/metrics", token)
        .json(body)
        .send()
        .await
        .unwrap();
    split(response).await
}

async fn post_bytes(
    app: &TestApp,
    token: &str,
    encoding: Option<&str>,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = app
        .request(Method::POST, "/api/v1/metrics", Some(token))
        .header("content-type", "application/json");
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    split(request.body(bytes).send().await.unwrap()).await
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The buckets of `checkout` in production since `since`, read with an admin token.
async fn metrics(app: &TestApp, since: i64) -> Value {
    let (status, body) = app
        .get(
            &format!("/api/v1/flags/checkout/metrics?env=production&since={since}"),
            &app.admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn row<'a>(metrics: &'a Value, variant: &str, start: i64) -> &'a Value {
    metrics["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["variant"] == variant && b["startMs"] == start)
        .unwrap_or_else(|| panic!("no {variant} row at {start}: {metrics:#}"))
}

fn sketch_count(row: &Value) -> u64 {
    let sketch: LatencySketch = serde_json::from_value(row["latency"].clone()).unwrap();
    sketch.count()
}

/// The configuration version production is served at: what an SDK applies and reports.
fn served_version(app: &TestApp) -> i64 {
    app.state
        .configs()
        .environment("production")
        .unwrap()
        .version
}

async fn setup() -> (TestApp, String, i64) {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    let server = app.token("server", Some("production")).await;
    (app, server, bucket_start(now_ms()) - 20_000)
}

#[tokio::test]
async fn a_batch_is_stored_as_sent_without_touching_the_configuration() {
    let (app, server, start) = setup().await;
    let version = app.state.store().config_version().await.unwrap();
    let (_, audit_before) = app.get("/api/v1/audit", &app.admin).await;
    let sent = batch(
        "b-1",
        "instance-1",
        Some(version),
        vec![
            bucket(start, "on", version, 100, &[10.0, 20.0, 30.0]),
            bucket(start, "off", version, 50, &[5.0]),
            bucket(start + 10_000, "on", version, 7, &[1.0, 2.0]),
        ],
    );
    let (status, body) = post(&app, Some(&server), &sent).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"accepted": true, "duplicate": false, "buckets": 3, "crashes": 0})
    );

    let read = metrics(&app, start).await;
    assert_eq!(read["flag"], "checkout");
    assert_eq!(read["env"], "production");
    assert_eq!(read["buckets"].as_array().unwrap().len(), 3);
    let on = row(&read, "on", start);
    assert_eq!(on["exposures"], 100);
    assert_eq!(on["errors"], 10);
    assert_eq!(on["crashes"], 1);
    assert_eq!(on["configVersion"], version);
    assert_eq!(sketch_count(on), 3);
    assert_eq!(
        on["events"]["purchase"],
        json!({"count": 2, "sum": 30.5, "sumSq": 500.25})
    );
    let off = row(&read, "off", start);
    assert_eq!(off["exposures"], 50);
    assert_eq!(sketch_count(off), 1);
    // Totals per variant, with quantiles for people.
    let on_total = &read["totals"]["on"];
    assert_eq!(on_total["exposures"], 107);
    assert_eq!(on_total["errors"], 10);
    assert_eq!(on_total["crashes"], 2);
    assert_eq!(on_total["latencyCount"], 5);
    assert_eq!(on_total["events"]["purchase"]["count"], 4);
    assert_eq!(on_total["events"]["purchase"]["sum"], 61.0);
    let p50 = on_total["p50"].as_f64().unwrap();
    assert!((9.0..=11.0).contains(&p50), "p50 {p50}");
    // DDSketch ranks down: p99 of five values is the fourth, 20, within 1%.
    let p99 = on_total["p99"].as_f64().unwrap();
    assert!((19.8..=20.2).contains(&p99), "p99 {p99}");
    assert_eq!(read["truncated"], false);

    // A server token reads its own environment without naming it.
    let (status, own) = app
        .get("/api/v1/flags/checkout/metrics?since=0", &server)
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["buckets"], read["buckets"]);
    // `since` skips older buckets.
    let later = metrics(&app, start + 10_000).await;
    assert_eq!(later["buckets"].as_array().unwrap().len(), 1);

    // Telemetry is data: no version bump, no audit record.
    assert_eq!(app.state.store().config_version().await.unwrap(), version);
    let (_, audit_after) = app.get("/api/v1/audit", &app.admin).await;
    assert_eq!(audit_before, audit_after);
}

#[tokio::test]
async fn a_retried_batch_counts_once() {
    let (app, server, start) = setup().await;
    let sent = batch(
        "retry-me",
        "instance-1",
        Some(1),
        vec![bucket(start, "on", 1, 100, &[10.0, 20.0])],
    );
    let (status, first) = post(&app, Some(&server), &sent).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["accepted"], true);
    let (status, again) = post(&app, Some(&server), &sent).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        again,
        json!({"accepted": false, "duplicate": true, "buckets": 0, "crashes": 0})
    );

    // Concurrent retries of another batch: exactly one is counted.
    let racing = batch(
        "racing",
        "instance-1",
        Some(1),
        vec![bucket(start, "on", 1, 5, &[1.0])],
    );
    let posts = (0..8).map(|_| post(&app, Some(&server), &racing));
    let answers = futures_util::future::join_all(posts).await;
    let accepted = answers
        .iter()
        .filter(|(status, body)| *status == StatusCode::OK && body["accepted"] == true)
        .count();
    let duplicates = answers
        .iter()
        .filter(|(status, body)| *status == StatusCode::OK && body["duplicate"] == true)
        .count();
    assert_eq!((accepted, duplicates), (1, 7), "{answers:?}");

    let read = metrics(&app, start).await;
    let on = row(&read, "on", start);
    assert_eq!(on["exposures"], 105);
    assert_eq!(on["errors"], 10);
    assert_eq!(on["crashes"], 2);
    assert_eq!(sketch_count(on), 3);
    assert_eq!(on["events"]["purchase"]["count"], 4);

    // Prometheus counts batches by outcome.
    let scraped = app
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["accepted", "duplicate"] {
        let series = format!("sluice_telemetry_batches_total{{outcome=\"{outcome}\"}}");
        assert!(scraped.contains(&series), "{series} missing:\n{scraped}");
    }

    // The same id in another environment is another batch.
    let staging = app.token("server", Some("staging")).await;
    let (status, body) = post(&app, Some(&staging), &sent).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], true);
}

#[tokio::test]
async fn batches_into_the_same_bucket_sum() {
    let (app, server, start) = setup().await;
    for (index, exposures) in [30u64, 12, 8].into_iter().enumerate() {
        let sent = batch(
            &format!("batch-{index}"),
            &format!("instance-{index}"),
            Some(1),
            vec![bucket(
                start,
                "on",
                1,
                exposures,
                &[f64::from(index as u8) + 1.0; 3],
            )],
        );
        let (status, body) = post(&app, Some(&server), &sent).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // One batch may also repeat a bucket; both halves count.
    let split_bucket = batch(
        "batch-split",
        "instance-0",
        Some(1),
        vec![
            bucket(start, "on", 1, 10, &[]),
            bucket(start, "on", 1, 40, &[100.0]),
        ],
    );
    let (status, body) = post(&app, Some(&server), &split_bucket).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["buckets"], 1);

    let read = metrics(&app, start).await;
    assert_eq!(read["buckets"].as_array().unwrap().len(), 1);
    let on = row(&read, "on", start);
    assert_eq!(on["exposures"], 30 + 12 + 8 + 10 + 40);
    // A tenth of each bucket's exposures, rounded down: 3, 1, 0, 1 and 4.
    assert_eq!(on["errors"], 9);
    assert_eq!(on["crashes"], 5);
    assert_eq!(sketch_count(on), 3 * 3 + 1);
    assert_eq!(
        on["events"]["purchase"],
        json!({"count": 10, "sum": 152.5, "sumSq": 2501.25})
    );
    assert_eq!(read["totals"]["on"]["latencyCount"], 10);
    let p50 = read["totals"]["on"]["p50"].as_f64().unwrap();
    assert!((1.98..=2.02).contains(&p50), "p50 {p50}");
}

#[tokio::test]
async fn gzip_bodies_are_read() {
    let (app, server, start) = setup().await;
    let sent = batch(
        "gz",
        "instance-1",
        Some(1),
        vec![bucket(start, "on", 1, 42, &[3.0])],
    );
    let body = gzip(&serde_json::to_vec(&sent).unwrap());
    let (status, answer) = post_bytes(&app, &server, Some("gzip"), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], true);
    assert_eq!(
        row(&metrics(&app, start).await, "on", start)["exposures"],
        42
    );

    let (status, answer) = post_bytes(
        &app,
        &server,
        Some("br"),
        serde_json::to_vec(&sent).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    assert_eq!(answer["error"], "unsupported_media_type");
    let (status, answer) = post_bytes(&app, &server, Some("gzip"), b"not gzip".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

/// The process's peak resident memory, in KiB, where Linux reports it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_gzip_bomb_is_refused_without_inflating_it() {
    let (app, server, _) = setup().await;
    // 100 MB of zeros, compressed to about 100 KB: under the body limit.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..100 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 1024 * 1024, "{} bytes", bomb.len());
    drop(zeros);

    let before = peak_rss_kib();
    let started = std::time::Instant::now();
    let (status, body) = post_bytes(&app, &server, Some("gzip"), bomb).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "payload_too_large");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("decompresses to more than"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        // Inflating it all would take 100 MB at least; the cap is 8 MiB.
        assert!(
            after.saturating_sub(before) < 64 * 1024,
            "peak memory grew by {} KiB",
            after - before
        );
    }
    // Nothing was recorded, and the server still serves.
    let (status, listed) = app
        .get("/api/v1/instances?env=production&since=0", &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["instances"], json!([]));
}

#[tokio::test]
async fn bad_batches_are_refused_naming_the_field() {
    let (app, server, start) = setup().await;
    let mut misaligned = batch("bad-1", "i", Some(1), vec![bucket(start, "on", 1, 1, &[])]);
    misaligned["buckets"][0]["startMs"] = json!(start + 1);
    let (status, body) = post(&app, Some(&server), &misaligned).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "invalid");
    assert_eq!(body["errors"][0]["path"], "buckets[0].startMs");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("buckets[0].startMs: not a multiple of 10000"),
        "{body}"
    );

    let mut wrong_type = batch("bad-2", "i", Some(1), vec![bucket(start, "on", 1, 1, &[])]);
    wrong_type["buckets"][0]["exposures"] = json!("many");
    let (status, body) = post(&app, Some(&server), &wrong_type).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["path"], "buckets[0].exposures");

    let mut unknown = batch("bad-3", "i", Some(1), vec![]);
    unknown["instance"]["colour"] = json!("red");
    let (status, body) = post(&app, Some(&server), &unknown).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("colour"),
        "{body}"
    );

    let mut no_id = batch("", "", Some(1), vec![]);
    no_id["buckets"] = json!([]);
    let (status, body) = post(&app, Some(&server), &no_id).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let paths: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["batchId", "instance.id"]);

    let mut tampered = batch(
        "bad-4",
        "i",
        Some(1),
        vec![bucket(start, "on", 1, 1, &[5.0])],
    );
    tampered["buckets"][0]["latency"]["store"]["max_key"] = json!(1_000_000);
    let (status, body) = post(&app, Some(&server), &tampered).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["path"], "buckets[0].latency");

    let (status, body) = post_bytes(&app, &server, None, b"{oops".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // None of it was recorded, in part or whole.
    let read = metrics(&app, 0).await;
    assert_eq!(read["buckets"], json!([]));
    let (_, listed) = app
        .get("/api/v1/instances?env=production&since=0", &app.admin)
        .await;
    assert_eq!(listed["instances"], json!([]));
}

#[tokio::test]
async fn only_server_tokens_post_and_reads_stay_in_their_environment() {
    let (app, server, start) = setup().await;
    let client = app.token("client", Some("production")).await;
    let staging = app.token("server", Some("staging")).await;
    let sent = batch("auth", "i", Some(1), vec![bucket(start, "on", 1, 1, &[])]);
    let cases: [(Option<&str>, StatusCode); 4] = [
        (None, StatusCode::UNAUTHORIZED),
        (Some("not a token"), StatusCode::UNAUTHORIZED),
        (Some(app.admin.as_str()), StatusCode::FORBIDDEN),
        (Some(client.as_str()), StatusCode::FORBIDDEN),
    ];
    for (token, expected) in cases {
        let (status, body) = post(&app, token, &sent).await;
        assert_eq!(status, expected, "{body}");
    }
    let (status, body) = post(&app, Some(&server), &sent).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let reads = [
        "/api/v1/flags/checkout/metrics?env=production",
        "/api/v1/instances?env=production",
    ];
    for path in reads {
        assert_eq!(app.get(path, &client).await.0, StatusCode::FORBIDDEN);
        assert_eq!(app.get(path, &staging).await.0, StatusCode::FORBIDDEN);
        assert_eq!(app.get(path, &server).await.0, StatusCode::OK);
        assert_eq!(app.get(path, &app.admin).await.0, StatusCode::OK);
        let (status, _) = split(app.request(Method::GET, path, None).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // An admin names the environment, which must exist.
    let (status, body) = app.get("/api/v1/instances", &app.admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app.get("/api/v1/instances?env=nope", &app.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // The staging token sees staging, where nothing was reported.
    let (status, body) = app
        .get("/api/v1/flags/checkout/metrics?since=0", &staging)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["env"], "staging");
    assert_eq!(body["buckets"], json!([]));
}

#[tokio::test]
async fn instances_acknowledge_the_configuration_they_applied() {
    let (app, server, start) = setup().await;
    let version = served_version(&app);
    let before = now_ms();
    let first = batch(
        "ack-1",
        "web-1",
        Some(version),
        vec![bucket(start, "on", version, 3, &[])],
    );
    assert_eq!(post(&app, Some(&server), &first).await.0, StatusCode::OK);
    let other = batch("ack-2", "web-2", None, vec![]);
    assert_eq!(post(&app, Some(&server), &other).await.0, StatusCode::OK);
    let after = now_ms();

    let (status, listed) = app
        .get("/api/v1/instances?env=production", &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["env"], "production");
    assert_eq!(listed["currentConfigVersion"], version);
    let instances = listed["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{listed}");
    let web1 = instances.iter().find(|i| i["id"] == "web-1").unwrap();
    assert_eq!(web1["configVersion"], version);
    assert_eq!(web1["sdk"], "sluice-rust/0.1.0");
    let seen = web1["lastSeenMs"].as_i64().unwrap();
    assert!(
        (before..=after).contains(&seen),
        "{seen} not in {before}..={after}"
    );
    assert_eq!(listed["behind"], 1, "web-2 has no configuration yet");

    // A kill switch moves the configuration on: web-1 is behind until it reports it.
    let response = app
        .request(
            Method::POST,
            "/api/v1/flags/checkout/kill?env=production",
            Some(&app.admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let killed = served_version(&app);
    assert!(killed > version);
    let (_, listed) = app.get("/api/v1/instances", &server).await;
    assert_eq!(listed["currentConfigVersion"], killed);
    assert_eq!(listed["behind"], 2);

    let mut applied = batch("ack-3", "web-1", Some(killed), vec![]);
    let (_, body) = post(&app, Some(&server), &applied).await;
    assert_eq!(body["accepted"], true);
    let applied2 = batch("ack-4", "web-2", Some(killed), vec![]);
    assert_eq!(post(&app, Some(&server), &applied2).await.0, StatusCode::OK);
    // A late retry of an older report does not roll the acknowledgement back.
    applied["batchId"] = json!("ack-0-late");
    applied["instance"]["configVersion"] = json!(version);
    applied["sentAtMs"] = json!(before - 60_000);
    assert_eq!(post(&app, Some(&server), &applied).await.0, StatusCode::OK);

    let (_, listed) = app.get("/api/v1/instances", &server).await;
    assert_eq!(listed["behind"], 0, "{listed}");
    assert_eq!(
        listed["configVersions"],
        json!([{"configVersion": killed, "instances": 2, "lastSeenMs": listed["configVersions"][0]["lastSeenMs"]}])
    );
    let web1 = listed["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "web-1")
        .unwrap();
    assert_eq!(web1["configVersion"], killed);
    // `since` leaves out instances not seen since.
    let (_, recent) = app
        .get(
            &format!("/api/v1/instances?since={}", now_ms() + 60_000),
            &server,
        )
        .await;
    assert_eq!(recent["instances"], json!([]));
}
