//! `sluice simulate`, run as a user would: the JSON's shape and sanity on a few runs. The
//! 1,000-run targets are a benchmark (docs/benchmarks.md), not a test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::Value;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .unwrap()
}

fn json(args: &[&str]) -> Value {
    let output = sluice(args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn simulate_aa_prints_its_summary_as_json() {
    let args = [
        "simulate",
        "--scenario",
        "aa",
        "--runs",
        "20",
        "--seed",
        "1",
        "--json",
    ];
    let value = json(&args);
    assert_eq!(value["scenario"], "aa");
    assert_eq!(value["runs"], 20);
    assert_eq!(value["seed"], 1);
    let settings = &value["settings"];
    assert_eq!(settings["template"], "standard");
    assert_eq!(settings["traffic_per_min"], 1000.0);
    assert_eq!(settings["effect"], 1.0);
    assert_eq!(settings["plan"]["stages"].as_array().unwrap().len(), 3);
    let summary = &value["summary"];
    let count = |name: &str| summary[name].as_u64().unwrap();
    assert_eq!(
        count("rolled_back") + count("completed") + count("paused") + count("unfinished"),
        20
    );
    // A/A traffic at 1,000 exposures a minute: nearly every run completes, and the floor
    // (an effect to detect) does not exist.
    assert!(count("completed") >= 18, "{summary}");
    let rate = summary["rollback_rate"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&rate));
    assert!(summary["floor"].is_null());
    let complete = summary["median_time_to_complete_s"].as_f64().unwrap();
    // The bakes alone take 6 hours; the evidence takes longer.
    assert!(complete >= 6.0 * 3600.0, "{complete}");
    let target = &summary["targets"][0];
    assert_eq!(target["name"], "wrong rollback rate");
    assert_eq!(target["bound"], 0.01);
}

#[test]
fn simulate_regression_reports_detection_beside_the_floor() {
    let args = [
        "simulate",
        "--scenario",
        "regression",
        "--runs",
        "20",
        "--seed",
        "2",
        "--json",
    ];
    let value = json(&args);
    // The same seed gives the same figures, however the runs are spread over threads.
    let mut one_thread = args.to_vec();
    one_thread.extend(["--threads", "1"]);
    assert_eq!(json(&one_thread), value);
    let summary = &value["summary"];
    assert_eq!(summary["floor"]["treatment"], 2021);
    assert!(summary["rolled_back"].as_u64().unwrap() >= 18, "{summary}");
    let samples = summary["median_treatment_samples"].as_u64().unwrap();
    assert!(samples > 100 && samples < 10_000, "{samples}");
    assert!(summary["samples_to_floor"].as_f64().unwrap() > 0.0);
    assert!(summary["median_time_to_rollback_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn simulate_prints_a_table_and_rejects_bad_settings() {
    let output = sluice(&[
        "simulate",
        "--scenario",
        "regression",
        "--runs",
        "3",
        "--threads",
        "1",
    ]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("detected (rolled back)"), "{text}");
    assert!(text.contains("fixed-horizon floor"), "{text}");
    assert!(text.contains("target: detection rate"), "{text}");

    let output = sluice(&["simulate", "--scenario", "aa", "--traffic", "0"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--traffic must be a positive"));
    let output = sluice(&["simulate", "--scenario", "nope"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn simulate_ab_aa_keeps_false_calls_under_five_percent() {
    let value = json(&[
        "simulate",
        "--scenario",
        "ab-aa",
        "--runs",
        "200",
        "--seed",
        "3",
        "--json",
    ]);
    assert_eq!(value["scenario"], "ab-aa");
    let summary = &value["summary"];
    assert_eq!(summary["runs"], 200);
    assert!(
        summary["falseCallRate"].as_f64().unwrap() <= 0.05,
        "{summary}"
    );
    assert!(value["settings"]["horizonPerArm"].as_u64().unwrap() > 10_000);
    let output = sluice(&["simulate", "--scenario", "ab-lift", "--lift", "0"]);
    assert_eq!(output.status.code(), Some(1));
}
