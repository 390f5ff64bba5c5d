//! Shadow mode end to end: a real server, a real SDK running a shadow experiment, results in
//! the telemetry batches, the server's mismatch rate equal to what was injected, and a rollout
//! whose `shadow_mismatch_rate` guardrail refuses to advance while mismatches are above its
//! bound and advances once they are under it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::experiment::Outcome;
use sluice::{Client, ContextBuilder};

use crate::harness::TestServer;
use crate::server_mode::builder;
use crate::wait_until;

const USERS: u32 = 4_000;

fn plan() -> Value {
    json!({
        "stages": [
            {"percent": 50, "bake": "0s", "min_samples": 100},
            {"percent": 100}
        ],
        "guardrails": [
            {"metric": "shadow_mismatch_rate", "tolerance": "0.5pp", "min_samples": 1000}
        ],
        "on_failure": "pause"
    })
}

fn client(url: &str, token: &str) -> Client {
    builder(url, token)
        .telemetry(true)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap()
}

/// Every user runs the experiment once; the candidate differs for one user in `every`
/// (never when `every` is 0). Returns the candidate runs and the mismatches injected.
fn traffic(client: &Client, flag: &str, every: u32) -> (u64, u64) {
    let runs = Arc::new(AtomicU64::new(0));
    let mismatches = Arc::new(AtomicU64::new(0));
    for i in 0..USERS {
        let user = ContextBuilder::new(format!("user-{i}")).build();
        let (runs, mismatches) = (Arc::clone(&runs), Arc::clone(&mismatches));
        let price = client
            .experiment(flag)
            .control(|| 100 + i)
            .candidate(|| {
                if every > 0 && i % every == 0 {
                    1
                } else {
                    100 + i
                }
            })
            .compare_eq()
            .clean_debug()
            .publish(move |result| {
                runs.fetch_add(1, Ordering::Relaxed);
                if result.outcome == Outcome::Mismatch {
                    mismatches.fetch_add(1, Ordering::Relaxed);
                }
            })
            .run(&user);
        assert_eq!(price, 100 + i, "the control's result is always returned");
    }
    assert!(
        client.flush_telemetry(Duration::from_secs(10)),
        "{:?}",
        client.telemetry_stats()
    );
    (
        runs.load(Ordering::Relaxed),
        mismatches.load(Ordering::Relaxed),
    )
}

fn tick(server: &TestServer) {
    let state = server.state().clone();
    server
        .block_on(sluice_server::rollouts::tick(
            &state,
            sluice_server::state::now_ms(),
        ))
        .unwrap();
}

fn start(server: &TestServer, sdk: &Client, flag: &str) -> String {
    server.create_flag(
        flag,
        json!({"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off"}),
    );
    let (status, started) = server.post(
        "/api/v1/rollouts",
        json!({"flag": flag, "env": "production", "plan": plan(), "reason": "shadow"}),
    );
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let version = started["exposureVersion"].as_i64().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || sdk.version() >= Some(version)),
        "the SDK never received the shadow stage"
    );
    started["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_shadow_stage_advances_only_while_mismatches_stay_under_the_bound() {
    sluice::clear_active_variants();
    let server = TestServer::start();
    let (_, token) = server.server_token("production");
    let sdk = client(&server.url(), &token);

    // 2% of shadowed users get a different price: far above the 0.5% bound.
    let bad = start(&server, &sdk, "pricing-v2");
    let (runs, injected) = traffic(&sdk, "pricing-v2", 50);
    assert!(
        runs > 1_500 && injected > 20,
        "{runs} runs, {injected} mismatches"
    );
    let (status, report) = server.get("/api/v1/experiments/pricing-v2/shadow?env=production");
    assert_eq!(status, StatusCode::OK, "{report}");
    let rate = &report["analysis"]["mismatchRate"];
    assert_eq!(rate["k"], injected, "{report:#}");
    assert_eq!(rate["n"], runs, "{report:#}");
    let expected = injected as f64 / runs as f64;
    assert!((rate["rate"].as_f64().unwrap() - expected).abs() < 1e-12);
    assert!(rate["lo"].as_f64().unwrap() < expected && rate["hi"].as_f64().unwrap() > expected);
    let samples = report["samples"].as_array().unwrap();
    assert!(!samples.is_empty(), "{report:#}");
    assert_eq!(samples[0]["candidate"], "1");

    tick(&server);
    let (_, rollout) = server.get(&format!("/api/v1/rollouts/{bad}"));
    assert_eq!(rollout["stage"], 0, "{rollout:#}");
    assert_eq!(rollout["status"], "paused", "{rollout:#}");

    // No mismatches: the same stage passes and the rollout advances.
    let good = start(&server, &sdk, "pricing-v3");
    let (runs, injected) = traffic(&sdk, "pricing-v3", 0);
    assert!(runs > 1_500 && injected == 0, "{runs} runs");
    tick(&server);
    let (_, rollout) = server.get(&format!("/api/v1/rollouts/{good}"));
    assert_eq!(rollout["stage"], 1, "{rollout:#}");
    let (_, report) = server.get("/api/v1/experiments/pricing-v3/shadow?env=production");
    assert_eq!(report["analysis"]["mismatchRate"]["k"], 0, "{report:#}");
}
