//! The whole rollout loop, end to end: a real server, real SDK clients evaluating and
//! reporting telemetry, the controller advancing on healthy evidence, a regression injected
//! mid-rollout, the automatic rollback reaching every SDK within a second, and the audit
//! record carrying the evidence.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::{Client, ContextBuilder};

use crate::harness::TestServer;
use crate::server_mode::builder;
use crate::wait_until;

const FLAG: &str = "new-checkout";
const USERS: u32 = 2_000;

/// Two stages: half of everyone (judged with gate `no_failure`, no bake), then everyone.
fn plan() -> Value {
    json!({
        "stages": [
            {"percent": 10, "bake": "0s", "min_samples": 100, "gate": "no_failure"},
            {"percent": 50, "bake": "1h", "min_samples": 100},
            {"percent": 100}
        ]
    })
}

fn client(url: &str, token: &str) -> Client {
    builder(url, token)
        .telemetry(true)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap()
}

/// Every user evaluates once; a share of those on the new variant see an error.
fn traffic(client: &Client, round: u32, treatment_errors_per_100: u32) -> (u32, u32) {
    let (mut on, mut off) = (0, 0);
    for i in 0..USERS {
        let user = ContextBuilder::new(format!("user-{i}")).build();
        if client.bool(FLAG, &user, false) {
            on += 1;
            if (i + round) % 100 < treatment_errors_per_100 {
                client.record_error(FLAG);
            }
        } else {
            off += 1;
            if (i + round) % 100 < 1 {
                client.record_error(FLAG);
            }
        }
    }
    assert!(
        client.flush_telemetry(Duration::from_secs(10)),
        "{:?}",
        client.telemetry_stats()
    );
    (on, off)
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

fn rollout(server: &TestServer, id: &str) -> Value {
    let (status, body) = server.get(&format!("/api/v1/rollouts/{id}"));
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[test]
fn a_regression_mid_rollout_is_rolled_back_and_every_sdk_sees_it() {
    sluice::clear_active_variants();
    let server = TestServer::start();
    server.create_flag(
        FLAG,
        json!({"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off"}),
    );
    let (_, token) = server.server_token("production");
    let sdk = client(&server.url(), &token);
    let watcher = client(&server.url(), &token);

    let (status, started) = server.post(
        "/api/v1/rollouts",
        json!({"flag": FLAG, "env": "production", "plan": plan(), "reason": "e2e"}),
    );
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    let version = started["exposureVersion"].as_i64().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || sdk.version() >= Some(version)),
        "the SDK never received the first stage"
    );

    // Healthy traffic at 10%: the controller advances to 50%.
    let (on, off) = traffic(&sdk, 0, 1);
    assert!(on > 100 && off > 1000, "{on} on, {off} off");
    tick(&server);
    let advanced = rollout(&server, &id);
    assert_eq!(advanced["stage"], 1, "{advanced:#}");
    assert_eq!(advanced["status"], "running");
    let stage_version = advanced["exposureVersion"].as_i64().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || sdk.version()
            >= Some(stage_version)),
        "the SDK never received the second stage"
    );

    // The regression: the new variant now errors for 40% of its users, the old one for 1%.
    let (on, off) = traffic(&sdk, 1, 40);
    assert!(on > 700 && off > 700, "{on} on, {off} off");
    tick(&server);
    let committed = Instant::now();
    let rolled = rollout(&server, &id);
    assert_eq!(rolled["status"], "rolled_back", "{rolled:#}");

    // Every SDK serves the old variant to everyone, within a second of the commit.
    let everyone_off = |client: &Client| {
        (0..USERS).all(|i| {
            let user = ContextBuilder::new(format!("user-{i}")).build();
            !client.bool(FLAG, &user, true)
        })
    };
    assert!(
        wait_until(Duration::from_secs(1), || everyone_off(&sdk)
            && everyone_off(&watcher)),
        "an SDK still served the new variant {:?} after the rollback",
        committed.elapsed()
    );

    // The audit record carries the evidence.
    let (status, audit) = server.get("/api/v1/audit?action=rollout.rollback");
    assert_eq!(status, StatusCode::OK, "{audit}");
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{audit:#}");
    let after: Value = serde_json::from_str(records[0]["after"].as_str().unwrap()).unwrap();
    let verdict = after["evidence"]["decision"]["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["evidence"]["metric"] == "error_rate")
        .unwrap()
        .clone();
    assert_eq!(verdict["outcome"], "fail", "{verdict:#}");
    let evidence = &verdict["evidence"];
    assert_eq!(evidence["n"]["treatment"], on, "{evidence:#}");
    assert_eq!(evidence["n"]["control"], off, "{evidence:#}");
    assert!(
        evidence["treatment"].as_f64().unwrap() > 0.3,
        "{evidence:#}"
    );
    assert!(evidence["control"].as_f64().unwrap() < 0.05, "{evidence:#}");
    assert!(
        evidence["interval"]["lo"].as_f64().unwrap() > evidence["threshold"].as_f64().unwrap(),
        "{evidence:#}"
    );
    assert_eq!(evidence["test"], "proportion_sequence");
    assert!(
        records[0]["reason"]
            .as_str()
            .unwrap()
            .contains("error_rate")
    );
}
