//! Liveness, readiness and status: `/health`, `/ready` and `/api/v1/status`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::StoreError;

/// How long `/ready` waits for the store before answering 503.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Health routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/v1/status", get(status))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// 200 once the store answers and a configuration is loaded; 503 before. A failed reload
/// is reported while the last good configuration keeps being served.
async fn ready(State(state): State<AppState>) -> Response {
    // A database that does not answer is as unready as one that refuses.
    let store = tokio::time::timeout(READY_TIMEOUT, state.store().config_version())
        .await
        .unwrap_or(Err(StoreError::Unavailable("no answer in time".into())));
    let loaded = state.configs().current();
    let last_error = state.configs().last_error();
    let body = json!({
        "store": store.as_ref().map(|_| "ok").unwrap_or("unreachable"),
        "configVersion": loaded.as_ref().map(|l| l.version),
        "lastReloadError": last_error,
    });
    let status = if store.is_ok() && loaded.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.admin()?;
    let loaded = state.configs().current();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "replica": state.replica(),
        "leader": state.is_leader(),
        "backend": format!("{:?}", state.store().backend()).to_lowercase(),
        "gitops": state.gitops(),
        "configVersion": loaded.as_ref().map(|l| l.version),
        "streams": state.subscribers(),
    })))
}
