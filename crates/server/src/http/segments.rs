//! `/api/v1/segments`: create, read, update and delete reusable audiences.
//!
//! Segments are shared by every environment, so while any environment is protected,
//! updating or deleting one files a change request (202) instead; creating one does not,
//! since nothing can refer to a new segment yet.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sluice_core::model::SegmentDef;

use crate::http::auth::Caller;
use crate::http::changes::gate;
use crate::http::error::ApiError;
use crate::http::{JsonBody, change, if_match, refuse_in_gitops, versioned};
use crate::state::AppState;
use crate::store::{ChangePayload, StoredSegment};

/// Segment routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/segments", get(list)).route(
        "/api/v1/segments/{name}",
        get(read).post(create).put(update).delete(remove),
    )
}

fn what(name: &str) -> String {
    format!("segment `{name}`")
}

fn body(segment: &StoredSegment) -> serde_json::Value {
    json!({
        "name": segment.name,
        "version": segment.version,
        "createdAt": segment.created_at_ms,
        "updatedAt": segment.updated_at_ms,
        "definition": segment.definition,
    })
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.admin()?;
    let segments = state.store().list_segments().await?;
    Ok(Json(
        json!({ "segments": segments.iter().map(body).collect::<Vec<_>>() }),
    ))
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let segment = state
        .store()
        .get_segment(&name)
        .await
        .map_err(|e| ApiError::from_store(e, &what(&name)))?;
    Ok(versioned(StatusCode::OK, segment.version, body(&segment)))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(definition): JsonBody<SegmentDef>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    sluice_core::check_key(&name).map_err(ApiError::BadRequest)?;
    let committed = state
        .store()
        .create_segment(&change(&caller, &headers, None), &name, &definition)
        .await
        .map_err(|e| ApiError::from_store(e, &what(&name)))?;
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
    Path(name): Path<String>,
    JsonBody(definition): JsonBody<SegmentDef>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let payload = ChangePayload::SegmentUpdate {
        name: name.clone(),
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
        .update_segment(
            &change(&caller, &headers, None),
            &name,
            &definition,
            if_match(&headers)?,
        )
        .await
        .map_err(|e| ApiError::from_store(e, &what(&name)))?;
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
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let payload = ChangePayload::SegmentDelete { name: name.clone() };
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
        .delete_segment(&change(&caller, &headers, None), &name, if_match(&headers)?)
        .await
        .map_err(|e| ApiError::from_store(e, &what(&name)))?;
    state.reload().await.ok();
    Ok(StatusCode::NO_CONTENT.into_response())
}
