//! A/B experiment reports over HTTP: telemetry seeded through `POST /api/v1/metrics`, read
//! back through `GET /api/v1/experiments/{key}/report`, figures checked against the counts
//! sent and core's analysis of them.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_core::ab::{AbInput, ArmTotals, GoalKind, Verdict, analyze};
use sluice_core::rollout::{DEFAULT_ALPHA, DEFAULT_TUNING};
use sluice_core::telemetry::bucket_start;

use crate::helpers::{TestApp, spawn_app, split};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn split_flag() -> Value {
    json!({
        "type": "string",
        "variants": {"control": "old", "treatment": "new"},
        "default_variant": "control",
        "rules": [{"split": [
            {"variant": "control", "weight": 50000},
            {"variant": "treatment", "weight": 50000}
        ]}]
    })
}

/// One bucket of `pricing`: `exposures` of `variant`, `conversions` purchases worth 1 each.
fn bucket(start: i64, variant: &str, exposures: u64, conversions: u64) -> Value {
    json!({
        "startMs": start,
        "flag": "pricing",
        "variant": variant,
        "configVersion": 1,
        "exposures": exposures,
        "events": {"purchase": {
            "count": conversions,
            "sum": conversions as f64 * 2.0,
            "sumSq": conversions as f64 * 4.0
        }},
    })
}

async fn seed(app: &TestApp, buckets: Vec<Value>) {
    let server = app.token("server", Some("production")).await;
    let body = json!({
        "batchId": format!("b-{}", now_ms()),
        "instance": {"id": "i-1", "sdk": "sluice-rust/0.1.0", "configVersion": 1},
        "sentAtMs": now_ms(),
        "buckets": buckets,
        "crashes": [],
        "dropped": 0,
    });
    let response = app
        .request(Method::POST, "/api/v1/metrics", Some(&server))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, reply) = split(response).await;
    assert!(status.is_success(), "{status} {reply}");
}

async fn report(app: &TestApp, query: &str) -> (StatusCode, Value) {
    app.get(
        &format!("/api/v1/experiments/pricing/report?{query}"),
        &app.admin,
    )
    .await
}

#[tokio::test]
async fn a_report_gives_n_rates_lift_interval_and_verdict_from_the_telemetry() {
    let app = spawn_app().await;
    app.create_flag("pricing", split_flag()).await;
    let start = bucket_start(now_ms()) - 30_000;
    // Two buckets per arm: 10,000 + 10,000 exposures each, 10% vs 13% conversion.
    seed(
        &app,
        vec![
            bucket(start, "control", 10_000, 1_000),
            bucket(start + 10_000, "control", 10_000, 1_000),
            bucket(start, "treatment", 10_000, 1_250),
            bucket(start + 10_000, "treatment", 10_000, 1_350),
        ],
    )
    .await;
    let (status, body) = report(
        &app,
        &format!("env=production&metric=purchase&since={start}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = &body["report"];
    assert_eq!(r["control"], "control");
    assert_eq!(r["verdict"], "winner", "{body:#}");
    assert_eq!(r["winner"], "treatment");
    let arms = r["arms"].as_array().unwrap();
    assert_eq!(arms[0]["variant"], "control");
    assert_eq!(arms[0]["n"], 20_000);
    assert_eq!(arms[0]["events"], 2_000);
    assert_eq!(arms[0]["value"].as_f64().unwrap(), 0.1);
    assert_eq!(arms[1]["n"], 20_000);
    assert_eq!(arms[1]["value"].as_f64().unwrap(), 0.13);
    let c = &arms[1]["comparison"];
    assert!((c["difference"].as_f64().unwrap() - 0.03).abs() < 1e-12);
    assert!((c["lift"].as_f64().unwrap() - 0.3).abs() < 1e-9);
    // The interval is core's, over the same counts.
    let expected = analyze(&AbInput {
        arms: vec![
            ArmTotals {
                variant: "control".into(),
                exposures: 20_000,
                count: 2_000,
                sum: 4_000.0,
                sum_sq: 8_000.0,
                weight: Some(50_000),
            },
            ArmTotals {
                variant: "treatment".into(),
                exposures: 20_000,
                count: 2_600,
                sum: 5_200.0,
                sum_sq: 10_400.0,
                weight: Some(50_000),
            },
        ],
        control: "control".into(),
        kind: GoalKind::Conversion,
        better: sluice_core::ab::Better::Higher,
        alpha: DEFAULT_ALPHA,
        tuning: DEFAULT_TUNING,
    });
    assert_eq!(expected.verdict, Verdict::Winner);
    let lo = expected.arms[1].comparison.unwrap().lo;
    assert!((c["lo"].as_f64().unwrap() - lo).abs() < 1e-12);
    assert!(c["lo"].as_f64().unwrap() > 0.0);
    assert_eq!(r["srm"]["checked"], true);
    assert_eq!(r["srm"]["mismatch"], false);

    // The mean of the value per exposure: 2 per purchase.
    let (status, body) = report(
        &app,
        &format!("env=production&metric=purchase&kind=mean&since={start}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["report"]["kind"], "mean");
    assert_eq!(body["report"]["arms"][1]["value"].as_f64().unwrap(), 0.26);
}

#[tokio::test]
async fn exposures_off_the_split_are_an_srm_and_bad_queries_name_the_field() {
    let app = spawn_app().await;
    app.create_flag("pricing", split_flag()).await;
    let start = bucket_start(now_ms()) - 20_000;
    seed(
        &app,
        vec![
            bucket(start, "control", 12_000, 1_200),
            bucket(start, "treatment", 8_000, 1_200),
        ],
    )
    .await;
    let (status, body) = report(
        &app,
        &format!("env=production&metric=purchase&since={start}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["report"]["verdict"], "srm");
    assert_eq!(body["report"]["srm"]["mismatch"], true);
    assert!(
        body["report"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Do not trust")
    );

    let (status, body) = report(&app, "env=production").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("`metric`"), "{body}");
    let (status, body) = report(&app, "env=production&metric=purchase&kind=median").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("`kind`"), "{body}");
    let (status, body) = report(&app, "env=production&metric=purchase&control=nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("`control`"), "{body}");
    let (status, _) = app
        .get(
            "/api/v1/experiments/missing/report?env=production&metric=purchase",
            &app.admin,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A goal nobody tracked: the same exposures, no events, and still the SRM.
    let (status, body) = report(&app, "env=production&metric=signup").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["report"]["verdict"], "srm");
    assert_eq!(body["report"]["arms"][0]["n"], 12_000);
    assert_eq!(body["report"]["arms"][0]["events"], 0);
}
