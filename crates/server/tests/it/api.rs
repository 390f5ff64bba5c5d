//! The admin API: authorization, CRUD with versions, validation, audit.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{boolean_flag, spawn_app};

#[tokio::test]
async fn writes_need_an_admin_token() {
    let app = spawn_app().await;
    let client = app.token("client", Some("production")).await;
    let server = app.token("server", Some("production")).await;
    for token in [
        None,
        Some("sluice_not-a-real-token"),
        Some(client.as_str()),
        Some(server.as_str()),
    ] {
        let response = app
            .request(Method::POST, "/api/v1/flags/x", token)
            .json(&boolean_flag())
            .send()
            .await
            .unwrap();
        let expected = if token.is_some_and(|t| t == client || t == server) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(response.status(), expected, "token {token:?}");
    }
    let (status, _) = app.get("/api/v1/flags", &app.admin).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn stale_if_match_gets_412_and_writes_nothing() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    let response = app
        .request(Method::GET, "/api/v1/flags/checkout", Some(&app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["etag"], "\"1\"");

    let mut changed = boolean_flag();
    changed["enabled"] = json!(false);
    let update = |version: &'static str, body: serde_json::Value| {
        app.request(Method::PUT, "/api/v1/flags/checkout", Some(&app.admin))
            .header("if-match", version)
            .json(&body)
            .send()
    };
    assert_eq!(
        update("\"1\"", changed.clone()).await.unwrap().status(),
        StatusCode::OK
    );
    let stale = update("\"1\"", boolean_flag()).await.unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let (_, flag) = app.get("/api/v1/flags/checkout", &app.admin).await;
    assert_eq!(flag["version"], 2);
    assert_eq!(flag["definition"]["enabled"], false);
}

#[tokio::test]
async fn invalid_definitions_get_422_with_paths() {
    let app = spawn_app().await;
    let mut bad = boolean_flag();
    bad["rules"][0]["when"][0] = json!({"attribute": "v", "op": "semver_gt", "value": "1.x"});
    let (status, body) = app
        .admin_json(Method::POST, "/api/v1/flags/checkout", bad)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("\"1.x\" is not a semver version"),
        "{body}"
    );
    assert!(
        body["errors"][0]["path"]
            .as_str()
            .unwrap()
            .contains("rules[0].when[0].value"),
        "{body}"
    );

    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/flags/checkout",
            json!({"type": "boolean", "rulse": []}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("rulse"),
        "{body}"
    );

    let (status, _) = app.get("/api/v1/flags/checkout", &app.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn kill_switch_is_audited_and_the_chain_verifies() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    let response = app
        .request(
            Method::POST,
            "/api/v1/flags/checkout/kill?env=production&reason=incident-42",
            Some(&app.admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, records) = app
        .get("/api/v1/audit?resource=flag:checkout", &app.admin)
        .await;
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records.iter().any(|r| r["reason"] == "incident-42"));
    let (status, report) = app.get("/api/v1/audit/verify", &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["ok"], true, "{report}");
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let app = spawn_app().await;
    let big = "x".repeat(2 * 1024 * 1024);
    let response = app
        .request(Method::POST, "/api/v1/flags/checkout", Some(&app.admin))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn health_ready_and_unknown_routes() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/health", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .request(Method::GET, "/ready", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .request(Method::GET, "/nope", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/health", None)
        .header("x-padding", "x".repeat(512 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
}

#[tokio::test]
async fn oversized_streamed_bodies_get_413() {
    let app = spawn_app().await;
    // No Content-Length: the limit has to stop the body as it streams.
    let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 32 * 1024]));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = app
        .request(Method::POST, "/api/v1/flags/checkout", Some(&app.admin))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
