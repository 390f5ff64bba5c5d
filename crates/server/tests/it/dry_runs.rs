//! Dry runs over HTTP when the flag moves under them: staged rules that no longer compile are
//! skipped and reported, and `apply` refuses to write rules measured against another version
//! of the flag unless forced.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn colours(variants: &[&str]) -> Value {
    let variants: serde_json::Map<String, Value> = variants
        .iter()
        .map(|v| ((*v).to_owned(), json!(v)))
        .collect();
    json!({"type": "string", "variants": variants, "default_variant": "blue"})
}

#[tokio::test]
async fn a_flag_changed_under_a_dry_run_is_reported_and_not_applied_blindly() {
    let app = spawn_app().await;
    app.create_flag("colour", colours(&["blue", "green", "red"]))
        .await;
    let client = app.token("client", Some("production")).await;
    let (status, started) = app
        .admin_json(
            Method::POST,
            "/api/v1/dry-runs",
            json!({"flag": "colour", "env": "production", "staged": {"default_variant": "red"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let id = started["id"].as_i64().unwrap();
    let (_, body) = app
        .ofrep(&client, "colour", json!({"targetingKey": "u1"}))
        .await;
    assert_eq!(body["variant"], "blue");

    // `red` is removed: the staged rules no longer compile, so nothing evaluates them.
    let (status, body) = app
        .admin_json(
            Method::PUT,
            "/api/v1/flags/colour",
            colours(&["blue", "green"]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for user in ["u2", "u3"] {
        let (status, body) = app
            .ofrep(&client, "colour", json!({"targetingKey": user}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, report) = app
        .admin_json(Method::GET, &format!("/api/v1/dry-runs/{id}"), Value::Null)
        .await;
    assert_eq!(report["report"]["evaluations"], 1, "{report:#}");
    let problem = report["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("no longer compile"), "{report:#}");
    assert!(problem.contains("default_variant"), "{problem}");

    // Back with `red` (a new version of the flag): the dry run counts again, but applying it
    // would write rules measured against another version.
    let (status, body) = app
        .admin_json(
            Method::PUT,
            "/api/v1/flags/colour",
            colours(&["blue", "green", "red"]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.ofrep(&client, "colour", json!({"targetingKey": "u4"}))
        .await;
    let (_, report) = app
        .admin_json(Method::GET, &format!("/api/v1/dry-runs/{id}"), Value::Null)
        .await;
    assert_eq!(report["report"]["evaluations"], 2, "{report:#}");
    assert!(report["problem"].is_null(), "{report:#}");
    let apply = format!("/api/v1/dry-runs/{id}/apply");
    let (status, refused) = app.admin_json(Method::POST, &apply, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("changed since"),
        "{refused}"
    );
    let (status, applied) = app
        .admin_json(
            Method::POST,
            &apply,
            json!({"force": true, "reason": "re-checked"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["status"], "stopped");
    let (_, body) = app
        .ofrep(&client, "colour", json!({"targetingKey": "u5"}))
        .await;
    assert_eq!(body["variant"], "red", "the staged default now serves");
    let (status, again) = app.admin_json(Method::POST, &apply, json!({})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a stopped dry run is not applied: {again}"
    );
}
