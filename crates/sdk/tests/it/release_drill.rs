//! A rollback drill against real SDK instances: three `Client`s in server mode acknowledge
//! the flag-off at once, a fourth instance reported once and then stalled. The drill reports
//! the stalled one, gives timings within the measured wall time, and restores the flag.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::{Client, ContextBuilder};

use crate::harness::TestServer;
use crate::server_mode::builder;
use crate::wait_until;

const FLAG: &str = "fast-search";

fn client(url: &str, token: &str) -> Client {
    builder(url, token)
        .telemetry(true)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap()
}

fn instances(server: &TestServer) -> Vec<Value> {
    let (status, body) = server.get("/api/v1/instances?env=staging");
    assert_eq!(status, StatusCode::OK, "{body}");
    body["instances"].as_array().cloned().unwrap_or_default()
}

fn now_ms() -> i64 {
    sluice_server::state::now_ms()
}

#[test]
fn a_drill_reports_the_stalled_instance_and_times_the_others() {
    let server = TestServer::start();
    server.create_flag(
        FLAG,
        json!({"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "on", "off_variant": "off"}),
    );
    let (status, body) = server.post(
        "/api/v1/releases",
        json!({
            "name": "search-v2",
            "flags": [FLAG],
            "provenance": {"kind": "human"},
            "risk": "low",
            "rollback": {"kind": "flag-off", "steps": ["turn fast-search off"], "expected_time_to_restore": "1m", "data_at_risk": "none", "on_call": "ana"}
        }),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, token) = server.server_token("staging");
    let url = server.url();
    let clients: Vec<Client> = (0..3).map(|_| client(&url, &token)).collect();
    let user = ContextBuilder::new("user-1").build();
    for client in &clients {
        client.wait_ready(Duration::from_secs(5)).unwrap();
        assert!(client.bool(FLAG, &user, false));
    }
    // Every client has acknowledged its first configuration.
    assert!(wait_until(Duration::from_secs(10), || {
        instances(&server)
            .iter()
            .filter(|i| i["configVersion"].is_i64())
            .count()
            == 3
    }));
    // An instance that reported once and will never acknowledge anything again.
    let version = instances(&server)[0]["configVersion"].as_i64().unwrap();
    let batch = json!({
        "batchId": "stalled-batch",
        "instance": {"id": "stalled-1", "sdk": "sluice-rust/0.1.0", "configVersion": version},
        "sentAtMs": now_ms(),
        "buckets": [],
        "crashes": [],
        "dropped": 0,
    });
    let posted = server.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/api/v1/metrics"))
            .bearer_auth(&token)
            .json(&batch)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(posted, StatusCode::OK);
    assert_eq!(instances(&server).len(), 4);

    let before = now_ms();
    let (status, report) = server.post(
        "/api/v1/releases/search-v2/drills",
        json!({"env": "staging", "timeoutSecs": 2}),
    );
    let after = now_ms();
    assert_eq!(status, StatusCode::OK, "{report}");

    assert_eq!(report["neverAcknowledged"], json!(["stalled-1"]));
    assert_eq!(report["timedOut"], true);
    assert_eq!(report["instances"].as_array().unwrap().len(), 4);
    let started = report["startedMs"].as_i64().unwrap();
    let finished = report["finishedMs"].as_i64().unwrap();
    assert!(
        before <= started && started <= finished && finished <= after,
        "{report}"
    );
    // It waited out the timeout for the stalled instance.
    assert!(finished - started >= 2_000, "{report}");
    let kill_version = report["killVersion"].as_i64().unwrap();
    assert!(kill_version > version);
    let mut times = Vec::new();
    for instance in report["instances"].as_array().unwrap() {
        if instance["id"] == "stalled-1" {
            assert_eq!(instance["acknowledgedMs"], Value::Null);
            continue;
        }
        let acknowledged = instance["acknowledgedMs"].as_i64().unwrap();
        let time = instance["timeToKillMs"].as_i64().unwrap();
        assert!(
            started <= acknowledged && acknowledged <= finished,
            "{instance}"
        );
        assert_eq!(time, acknowledged - started);
        times.push(time);
    }
    times.sort_unstable();
    let timings = &report["timings"];
    assert_eq!(timings["acknowledged"], 3);
    assert_eq!(timings["p50Ms"].as_i64().unwrap(), times[1]);
    assert_eq!(timings["p99Ms"].as_i64().unwrap(), times[2]);
    assert_eq!(timings["maxMs"].as_i64().unwrap(), times[2]);
    // Live SDKs acknowledge within a second, far inside the wall time measured around it.
    assert!(times[2] < 1_000, "{report}");
    assert!(times[2] <= after - before);

    // Restored exactly, and every client serves it again.
    assert_eq!(report["restored"], true, "{report}");
    let (_, flag) = server.get(&format!("/api/v1/flags/{FLAG}"));
    assert!(
        flag["definition"]["environments"]["staging"]["enabled"].is_null()
            && flag.to_string().contains(FLAG),
        "{flag}"
    );
    for client in &clients {
        assert!(wait_until(Duration::from_secs(5), || client.bool(FLAG, &user, false)));
    }
    // The drill is on the release's timeline, and the kill and restore are audited.
    let (_, release) = server.get("/api/v1/releases/search-v2");
    let drill = release["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "drill")
        .cloned()
        .expect("the drill is recorded");
    assert_eq!(drill["detail"]["neverAcknowledged"], json!(["stalled-1"]));
    let (_, audit) = server.get(&format!("/api/v1/audit?resource=flag:{FLAG}"));
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"flag.kill") && actions.contains(&"flag.update"),
        "{actions:?}"
    );
}
