//! Experiments: `GET /api/v1/experiments/{key}/shadow` reads a shadow experiment's results.
//!
//! The read takes an admin token with `?env=`, or a server token of that environment, like the
//! telemetry reads; it covers the last day by default (`?since=` in Unix milliseconds), since
//! shadow experiments run for days. The analysis is core's ([`sluice_core::shadow::analyze`]),
//! with the guardrails' default α and tuning, so it agrees with a `shadow_mismatch_rate`
//! guardrail over the same rows.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_core::rollout::{DEFAULT_ALPHA, DEFAULT_TUNING};
use sluice_core::shadow::analyze;
use sluice_core::telemetry::bucket_start;

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::telemetry::observed_environment;
use crate::state::{AppState, now_ms};
use crate::store::shadow::totals;

/// The window the read covers when `since` is not given: the last day.
pub const DEFAULT_SHADOW_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// The most mismatching pairs returned.
pub const SAMPLES_SHOWN: u32 = 20;

/// Experiment routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/experiments/{key}/shadow", get(shadow))
        .route(
            "/api/v1/experiments/{key}/report",
            get(crate::http::ab_report::report),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShadowQuery {
    env: Option<String>,
    since: Option<i64>,
}

async fn shadow(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Query(query): Query<ShadowQuery>,
) -> Result<Json<Value>, ApiError> {
    let environment = observed_environment(&state, &caller, query.env.as_deref()).await?;
    let since = bucket_start(
        query
            .since
            .unwrap_or_else(|| now_ms().saturating_sub(DEFAULT_SHADOW_WINDOW_MS)),
    );
    let rows = state
        .store()
        .shadow_metrics(&environment, &key, since)
        .await?;
    let samples = state
        .store()
        .shadow_samples(&environment, &key, SAMPLES_SHOWN)
        .await?;
    let analysis = analyze(&totals(&rows), DEFAULT_ALPHA, DEFAULT_TUNING);
    Ok(Json(json!({
        "experiment": key,
        "env": environment,
        "since": since,
        "analysis": analysis,
        "samples": samples,
    })))
}
