//! GitOps mode: files are the source of truth, edits reload, invalid edits keep the last good.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, boolean_flag, spawn_with};

const FLAGS: &str = "flags:\n  banner:\n    type: string\n    variants: { a: \"first\", b: \"second\" }\n    default_variant: a\n";

async fn until(
    app: &TestApp,
    what: &str,
    check: impl Fn(&Value) -> bool,
    fetch: impl AsyncFn(&TestApp) -> Value,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let value = fetch(app).await;
        if check(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: last seen {value}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn files_are_served_reloaded_and_protected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.yaml");
    std::fs::write(&path, FLAGS).unwrap();
    let app = spawn_with(Options {
        flags: Some(path.clone()),
        ..Options::default()
    })
    .await;
    let token = app.token("client", Some("production")).await;

    let (status, body) = app.ofrep(&token, "banner", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], "first");

    // The API cannot change file-owned flags.
    let (status, body) = app
        .admin_json(Method::POST, "/api/v1/flags/other", boolean_flag())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap().contains("GitOps"));

    // An edit is picked up.
    std::fs::write(
        &path,
        FLAGS.replace("default_variant: a", "default_variant: b"),
    )
    .unwrap();
    let evaluate = async |app: &TestApp| app.ofrep(&token, "banner", json!({})).await.1;
    until(
        &app,
        "the edit is served",
        |b| b["value"] == "second",
        evaluate,
    )
    .await;

    // An invalid edit keeps the last good flags and shows on /ready.
    std::fs::write(
        &path,
        FLAGS.replace("default_variant: a", "default_variant: c"),
    )
    .unwrap();
    let ready = async |app: &TestApp| {
        let response = app
            .request(Method::GET, "/ready", None)
            .send()
            .await
            .unwrap();
        response.json::<Value>().await.unwrap()
    };
    let report = until(
        &app,
        "the error is reported",
        |b| b["lastReloadError"].is_string(),
        ready,
    )
    .await;
    assert!(
        report["lastReloadError"]
            .as_str()
            .unwrap()
            .contains("`c` is not a variant"),
        "{report}"
    );
    assert_eq!(evaluate(&app).await["value"], "second");

    // A fix clears the error.
    std::fs::write(&path, FLAGS).unwrap();
    until(
        &app,
        "the fix is served",
        |b| b["value"] == "first",
        evaluate,
    )
    .await;
    until(
        &app,
        "the error is cleared",
        |b| b["lastReloadError"].is_null(),
        ready,
    )
    .await;
}
