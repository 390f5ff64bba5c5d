//! OFREP evaluation: environments selected by token, ETags, errors, and the real client.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Options, boolean_flag, spawn_app, spawn_with};

#[tokio::test]
async fn evaluates_in_the_tokens_environment() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    let production = app.token("client", Some("production")).await;
    let staging = app.token("client", Some("staging")).await;

    let (status, body) = app
        .ofrep(
            &production,
            "checkout",
            json!({"targetingKey": "u1", "plan": "pro"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], true);
    assert_eq!(body["reason"], "TARGETING_MATCH");
    assert_eq!(body["variant"], "on");

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
    let (_, body) = app
        .ofrep(&production, "checkout", json!({"plan": "pro"}))
        .await;
    assert_eq!(body["reason"], "DISABLED");
    assert_eq!(body["value"], false);
    let (_, body) = app
        .ofrep(&staging, "checkout", json!({"plan": "pro"}))
        .await;
    assert_eq!(body["value"], true);
}

#[tokio::test]
async fn errors_follow_ofrep() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    let token = app.token("client", Some("production")).await;
    let (status, body) = app.ofrep(&token, "missing", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errorCode"], "FLAG_NOT_FOUND");
    assert_eq!(body["key"], "missing");

    let response = app
        .request(
            Method::POST,
            "/ofrep/v1/evaluate/flags/checkout",
            Some(&token),
        )
        .header("content-type", "application/json")
        .body("{\"context\": [1]}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["content-type"], "application/json");
    let (status, _) = app.ofrep("sluice_wrong", "checkout", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.ofrep(&app.admin, "checkout", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bulk_has_an_etag_and_answers_304() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    let token = app.token("client", Some("production")).await;
    let bulk = || {
        app.request(Method::POST, "/ofrep/v1/evaluate/flags", Some(&token))
            .json(&json!({"context": {"targetingKey": "u1"}}))
    };
    let first = bulk().send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let body: serde_json::Value = first.json().await.unwrap();
    assert_eq!(body["flags"][0]["key"], "checkout");
    assert_eq!(body["eventStreams"][0]["type"], "sse");

    let again = bulk().header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // A change that alters this context's result changes the ETag.
    app.request(
        Method::POST,
        "/api/v1/flags/checkout/kill?env=production",
        Some(&app.admin),
    )
    .send()
    .await
    .unwrap();
    let changed = bulk().header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
}

#[tokio::test]
async fn over_the_rate_limit_answers_429_with_whole_seconds_to_wait() {
    let app = spawn_with(Options {
        rate_limit: Some(3),
        ..Options::default()
    })
    .await;
    app.create_flag("checkout", boolean_flag()).await;
    let token = app.token("client", Some("production")).await;
    let other = app.token("client", Some("production")).await;
    let bulk = |token: &str| {
        app.request(Method::POST, "/ofrep/v1/evaluate/flags", Some(token))
            .json(&json!({"context": {"targetingKey": "u1"}}))
    };
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(bulk(&token).send().await.unwrap().status());
    }
    assert_eq!(&statuses[..3], &[StatusCode::OK; 3], "{statuses:?}");
    let refused = bulk(&token).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is whole seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.headers()["content-type"], "application/json");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    // Single evaluations share the bucket; another token has its own.
    let single = app
        .request(
            Method::POST,
            "/ofrep/v1/evaluate/flags/checkout",
            Some(&token),
        )
        .json(&json!({"context": {"targetingKey": "u1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(single.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(bulk(&other).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn cors_exposes_etag() {
    let app = spawn_app().await;
    let response = app
        .request(Method::OPTIONS, "/ofrep/v1/evaluate/flags", None)
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}
