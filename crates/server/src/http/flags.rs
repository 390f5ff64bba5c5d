//! `/api/v1/flags`: create, read, update and delete flags, and the per-environment kill switch.
//!
//! Reads return an `ETag` with the flag's version; writes may send `If-Match` with it and
//! get 412 when it is stale. In GitOps mode files own the flags and every write is refused.
//! A write that changes a protected environment files a change request instead and answers
//! 202 ([`crate::http::changes`]); turning a flag off never does.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sluice_core::model::FlagDef;

use crate::http::auth::Caller;
use crate::http::changes::gate;
use crate::http::error::ApiError;
use crate::http::{JsonBody, change, if_match, refuse_in_gitops, versioned};
use crate::state::AppState;
use crate::store::{ChangePayload, StoredFlag};

/// Flag routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/flags", get(list))
        .route(
            "/api/v1/flags/{key}",
            get(read).post(create).put(update).delete(remove),
        )
        .route("/api/v1/flags/{key}/kill", post(kill))
        .route("/api/v1/flags/{key}/restore", post(restore))
}

fn what(key: &str) -> String {
    format!("flag `{key}`")
}

fn body(flag: &StoredFlag) -> serde_json::Value {
    json!({
        "key": flag.key,
        "version": flag.version,
        "createdAt": flag.created_at_ms,
        "updatedAt": flag.updated_at_ms,
        "definition": flag.definition,
    })
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.admin()?;
    let flags = state.store().list_flags().await?;
    Ok(Json(
        json!({ "flags": flags.iter().map(body).collect::<Vec<_>>() }),
    ))
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let flag = state
        .store()
        .get_flag(&key)
        .await
        .map_err(|e| ApiError::from_store(e, &what(&key)))?;
    Ok(versioned(StatusCode::OK, flag.version, body(&flag)))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
    JsonBody(definition): JsonBody<FlagDef>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    sluice_core::check_key(&key).map_err(ApiError::BadRequest)?;
    let payload = ChangePayload::FlagCreate {
        key: key.clone(),
        definition: definition.clone(),
    };
    if let Some(accepted) = gate(&state, &caller, &headers, payload, None, None).await? {
        return Ok(accepted);
    }
    let committed = state
        .store()
        .create_flag(&change(&caller, &headers, None), &key, &definition)
        .await
        .map_err(|e| ApiError::from_store(e, &what(&key)))?;
    state.reload().await.ok();
    Ok(versioned(
        StatusCode::CREATED,
        committed.value.version,
        body(&committed.value),
    ))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
    JsonBody(definition): JsonBody<FlagDef>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let payload = ChangePayload::FlagUpdate {
        key: key.clone(),
        definition: definition.clone(),
    };
    if let Some(accepted) = gate(
        &state,
        &caller,
        &headers,
        payload,
        None,
        if_match(&headers)?,
    )
    .await?
    {
        return Ok(accepted);
    }
    let committed = state
        .store()
        .update_flag(
            &change(&caller, &headers, None),
            &key,
            &definition,
            if_match(&headers)?,
        )
        .await
        .map_err(|e| ApiError::from_store(e, &what(&key)))?;
    state.reload().await.ok();
    Ok(versioned(
        StatusCode::OK,
        committed.value.version,
        body(&committed.value),
    ))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let payload = ChangePayload::FlagDelete { key: key.clone() };
    if let Some(accepted) = gate(
        &state,
        &caller,
        &headers,
        payload,
        None,
        if_match(&headers)?,
    )
    .await?
    {
        return Ok(accepted);
    }
    state
        .store()
        .delete_flag(&change(&caller, &headers, None), &key, if_match(&headers)?)
        .await
        .map_err(|e| ApiError::from_store(e, &what(&key)))?;
    state.reload().await.ok();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Which environment a kill or restore applies to, and why.
#[derive(Debug, Deserialize)]
pub(crate) struct Switch {
    /// The environment; without it, the flag's base `enabled`.
    pub(crate) env: Option<String>,
    /// Why, for the audit log.
    pub(crate) reason: Option<String>,
}

/// Turns a flag off or back on, as `POST …/kill` and `…/restore` do (the console too).
pub(crate) async fn switch(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    key: String,
    switch: Switch,
    enabled: bool,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    // Turning a flag off is never gated: an instant kill must stay instant.
    if enabled {
        let payload = ChangePayload::FlagRestore {
            key: key.clone(),
            environment: switch.env.clone(),
        };
        let reason = switch.reason.clone();
        if let Some(accepted) = gate(
            &state,
            &caller,
            &headers,
            payload,
            reason,
            if_match(&headers)?,
        )
        .await?
        {
            return Ok(accepted);
        }
    }
    let committed = state
        .store()
        .set_flag_enabled(
            &change(&caller, &headers, switch.reason),
            &key,
            switch.env.as_deref(),
            enabled,
            if_match(&headers)?,
        )
        .await
        .map_err(|e| ApiError::from_store(e, &what(&key)))?;
    state.reload().await.ok();
    Ok(versioned(
        StatusCode::OK,
        committed.value.version,
        body(&committed.value),
    ))
}

async fn kill(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(query): Query<Switch>,
) -> Result<Response, ApiError> {
    switch(state, caller, headers, key, query, false).await
}

async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(query): Query<Switch>,
) -> Result<Response, ApiError> {
    switch(state, caller, headers, key, query, true).await
}
