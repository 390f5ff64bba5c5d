//! `/api/v1/audit`: the hash-chained audit log, filtered, and its verification.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::AuditFilter;

/// Audit routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/audit", get(list))
        .route("/api/v1/audit/verify", get(verify))
}

/// Query parameters of `GET /api/v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    resource: Option<String>,
    action: Option<String>,
    actor: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    before: Option<i64>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.admin()?;
    let filter = AuditFilter {
        resource: query.resource,
        action: query.action,
        actor: query.actor,
        since_ms: query.since,
        until_ms: query.until,
        before_seq: query.before,
        limit: query.limit,
    };
    let records = state.store().list_audit(&filter).await?;
    Ok(Json(json!({ "records": records })))
}

async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.admin()?;
    let report = state.store().verify_audit().await?;
    Ok(Json(
        json!({ "ok": report.first_break.is_none(), "report": report }),
    ))
}
