//! The flag lifecycle over HTTP: `GET /api/v1/flags/stale` and archiving.
//!
//! `GET /api/v1/flags/stale?days=14&at=<ms>&all=false` classifies every flag with
//! `sluice_core::lifecycle` from its definition, its newest audit record, the newest SDK
//! telemetry bucket with exposures for it, and its archive mark, and lists the stale ones
//! with their reasons (every flag, with its stage, under `all=true`). `at` classifies as of
//! another time, such as next month, instead of now. `POST /api/v1/flags/{key}/archive` and
//! `…/unarchive` set and clear the archive mark (audited; serving does not change). The
//! static `stale` segment wins over `{key}` for GET, so a flag keyed `stale` is read
//! through the list.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_core::lifecycle::{FlagFacts, Lifecycle, Stage, classify};

use crate::http::auth::Caller;
use crate::http::change;
use crate::http::error::ApiError;
use crate::state::{AppState, now_ms};

/// The window when `days` is left out: two weeks, GrowthBook's rule.
pub const DEFAULT_STALE_DAYS: u32 = 14;

/// Lifecycle routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/flags/stale", get(stale))
        .route("/api/v1/flags/{key}/archive", post(archive))
        .route("/api/v1/flags/{key}/unarchive", post(unarchive))
}

/// Query parameters of `GET /api/v1/flags/stale`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StaleQuery {
    days: Option<u32>,
    at: Option<i64>,
    all: Option<bool>,
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Active => "active",
        Stage::RolledOut => "rolled-out",
        Stage::Stale => "stale",
        Stage::Archived => "archived",
    }
}

async fn stale(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<StaleQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let days = query.days.unwrap_or(DEFAULT_STALE_DAYS);
    if days > 3650 {
        return Err(ApiError::BadRequest("days: at most 3650".into()));
    }
    let at = query.at.unwrap_or_else(now_ms);
    let store = state.store();
    let environments: Vec<String> = store
        .list_environments()
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let flags = store.list_flags().await?;
    let activity: BTreeMap<String, _> = store
        .flag_activity()
        .await?
        .into_iter()
        .map(|a| (a.key.clone(), a))
        .collect();
    let mut listed = Vec::new();
    for flag in &flags {
        let Some(activity) = activity.get(&flag.key) else {
            continue;
        };
        let facts = FlagFacts {
            definition: &flag.definition,
            environments: &environments,
            created_ms: activity.created_ms,
            last_changed_ms: activity.last_changed_ms,
            last_evaluated_ms: activity.last_evaluated_ms,
            archived_ms: activity.archived_ms,
        };
        let lifecycle = classify(&facts, at, days);
        if query.all.unwrap_or(false) || lifecycle.stage == Stage::Stale {
            listed.push(view(&flag.key, &flag.definition, activity, &lifecycle));
        }
    }
    Ok(Json(json!({ "days": days, "at": at, "flags": listed })))
}

fn view(
    key: &str,
    definition: &sluice_core::model::FlagDef,
    activity: &crate::store::FlagActivity,
    lifecycle: &Lifecycle,
) -> Value {
    let reasons: Vec<Value> = lifecycle
        .reasons
        .iter()
        .map(|reason| {
            let mut value = json!(reason);
            value["message"] = json!(reason.describe());
            value
        })
        .collect();
    let serving: serde_json::Map<String, Value> = lifecycle
        .serving
        .iter()
        .map(|(env, serving)| (env.clone(), json!(serving)))
        .collect();
    json!({
        "key": key,
        "stage": stage_name(lifecycle.stage),
        "reasons": reasons,
        "serving": serving,
        "createdMs": activity.created_ms,
        "lastChangedMs": activity.last_changed_ms,
        "lastEvaluatedMs": activity.last_evaluated_ms,
        "archivedMs": activity.archived_ms,
        "expires": definition.expires,
        "owner": definition.owner,
    })
}

/// The optional body of archive and unarchive.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveBody {
    reason: Option<String>,
}

async fn set_archived(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    key: String,
    bytes: axum::body::Bytes,
    archived: bool,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let body: ArchiveBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        ArchiveBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("body: reason: {e}")))?
    };
    let committed = state
        .store()
        .archive_flag(&change(&caller, &headers, body.reason), &key, archived)
        .await
        .map_err(|e| ApiError::from_store(e, &format!("flag `{key}`")))?;
    Ok(Json(json!({
        "key": key,
        "archived": committed.value.is_some(),
        "archivedMs": committed.value,
        "configVersion": committed.config_version,
    })))
}

async fn archive(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    set_archived(state, caller, headers, key, bytes, true).await
}

async fn unarchive(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    set_archived(state, caller, headers, key, bytes, false).await
}
