//! `sluice demo --headless --json`, run as a user would: the real binary starts its own
//! server, drives real SDK traffic, and prints one JSON object per event. The regression is
//! rolled back with its evidence; the healthy change reaches 100%.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs the demo and returns its events, with the wall time it took.
fn demo(scenario: &str) -> (Vec<Value>, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["demo", "--headless", "--json", "--scenario", scenario])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    eprintln!("sluice demo --scenario {scenario}: {took:?}");
    (events, took)
}

fn find<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == kind)
        .unwrap_or_else(|| panic!("no `{kind}` event in {events:#?}"))
}

/// What every run shows: the server with its console and token, the seeded release, a
/// passing checklist, every SDK instance acknowledging the end, and a verified audit trail.
fn common(events: &[Value], scenario: &str) {
    let server = find(events, "server");
    let console = server["console"].as_str().unwrap();
    assert!(console.starts_with("http://127.0.0.1:") && console.ends_with('/'));
    assert!(
        server["adminToken"]
            .as_str()
            .unwrap()
            .starts_with("sluice_")
    );
    assert_eq!(server["scenario"], scenario);
    let seeded = find(events, "seeded");
    assert_eq!(seeded["provenance"], "ai-assisted");
    let checklist = find(events, "checklist");
    assert_eq!(checklist["passed"], true, "{checklist:#}");
    assert_eq!(checklist["items"].as_array().unwrap().len(), 6);
    let stages: Vec<&str> = find(events, "rollout_started")["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(stages, ["internal", "beta-testers", "10%", "50%", "100%"]);
    let propagated = find(events, "propagated");
    assert_eq!(propagated["allAcknowledged"], true, "{propagated:#}");
    assert_eq!(propagated["behind"], 0);
    let instances = propagated["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3, "{propagated:#}");
    for instance in instances {
        assert!(
            instance["configVersion"].as_i64().unwrap()
                >= propagated["configVersion"].as_i64().unwrap()
        );
    }
    let audit = find(events, "audit");
    assert_eq!(audit["ok"], true, "{audit:#}");
    assert!(audit["records"].as_i64().unwrap() >= 8, "{audit:#}");
    // Every event is stamped, in order.
    let stamps: Vec<u64> = events
        .iter()
        .map(|e| e["elapsedMs"].as_u64().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
}

#[test]
fn the_regression_is_rolled_back_at_ten_percent_with_its_evidence() {
    let (events, took) = demo("regression");
    common(&events, "regression");
    let rollback = find(&events, "rollback");
    assert_eq!(rollback["kind"], "rollback");
    assert_eq!(rollback["from"], "10%", "{rollback:#}");
    assert!(
        rollback["actor"].is_null(),
        "the controller acts, not a person"
    );
    let verdicts = rollback["verdicts"].as_array().unwrap();
    let errors = verdicts
        .iter()
        .find(|v| v["metric"] == "error_rate")
        .unwrap();
    assert_eq!(errors["outcome"], "fail", "{errors:#}");
    let control = errors["control"].as_f64().unwrap();
    let treatment = errors["treatment"].as_f64().unwrap();
    assert!(treatment > 0.05 && control < 0.02, "{errors:#}");
    assert!(
        errors["interval"]["lo"].as_f64().unwrap() > errors["threshold"].as_f64().unwrap(),
        "{errors:#}"
    );
    assert!(errors["n"]["treatment"].as_u64().unwrap() > 0);
    assert!(errors["n"]["control"].as_u64().unwrap() > errors["n"]["treatment"].as_u64().unwrap());
    assert!(
        rollback["summary"].as_str().unwrap().contains("error_rate"),
        "{rollback:#}"
    );
    // The stages before it advanced, and nothing got past 10%.
    let advanced: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "stage")
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(advanced, ["internal", "beta-testers", "10%"]);
    assert!(events.iter().all(|e| e["event"] != "completed"));
    let propagated = find(&events, "propagated");
    assert_eq!(propagated["configVersion"], rollback["configVersion"]);
    assert!(
        propagated["usersOnTreatment"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n == 0),
        "{propagated:#}"
    );
    let summary = find(&events, "summary");
    assert_eq!(summary["outcome"], "rolled_back");
    assert_eq!(summary["auditVerified"], true);
    assert!(took < Duration::from_secs(60), "{took:?}");
}

#[test]
fn the_healthy_change_rolls_out_to_everyone() {
    let (events, took) = demo("healthy");
    common(&events, "healthy");
    assert!(events.iter().all(|e| e["event"] != "rollback"));
    let advanced: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "stage")
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(advanced, ["internal", "beta-testers", "10%", "50%"]);
    let completed = find(&events, "completed");
    assert_eq!(completed["toPercent"], 100.0, "{completed:#}");
    let verdicts = completed["verdicts"].as_array().unwrap();
    assert!(!verdicts.is_empty());
    assert!(
        verdicts.iter().all(|v| v["outcome"] == "pass"),
        "{completed:#}"
    );
    let propagated = find(&events, "propagated");
    assert!(
        propagated["usersOnTreatment"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| *n == propagated["users"]),
        "{propagated:#}"
    );
    let summary = find(&events, "summary");
    assert_eq!(summary["outcome"], "completed");
    assert!(took < Duration::from_secs(60), "{took:?}");
}
