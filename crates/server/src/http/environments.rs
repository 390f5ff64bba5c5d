//! `/api/v1/environments`: list, create, describe and delete environments, and protect them.
//!
//! `PUT /api/v1/environments/{name}/protection {requiredApprovals, allowSelfApproval}` sets
//! how many approvals changes to the environment need (0 unprotects it), audited as
//! `environment.protect`. Weakening a protected environment's protection (fewer approvals,
//! or allowing self-approval) is itself a change request under the current protection.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::http::auth::Caller;
use crate::http::changes::gate;
use crate::http::error::ApiError;
use crate::http::{JsonBody, change, if_match, refuse_in_gitops, versioned};
use crate::state::AppState;
use crate::store::ChangePayload;

/// Environment routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/environments", get(list))
        .route(
            "/api/v1/environments/{name}",
            get(read).post(create).put(update).delete(remove),
        )
        .route(
            "/api/v1/environments/{name}/protection",
            get(read_protection).put(protect),
        )
}

fn what(name: &str) -> String {
    format!("environment `{name}`")
}

/// The writable fields of an environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvironmentBody {
    description: Option<String>,
}

/// The body of `PUT /api/v1/environments/{name}/protection`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProtectionBody {
    required_approvals: u32,
    #[serde(default)]
    allow_self_approval: bool,
    reason: Option<String>,
}

async fn read_protection(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let protection = state
        .store()
        .protection(&name)
        .await
        .map_err(|e| ApiError::from_store(e, &what(&name)))?;
    Ok(versioned(
        StatusCode::OK,
        protection.version,
        json!(protection),
    ))
}

async fn protect(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<ProtectionBody>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    if body.required_approvals > 100 {
        return Err(ApiError::BadRequest(
            "body: requiredApprovals: at most 100".into(),
        ));
    }
    let protection = sluice_core::governance::Protection {
        required_approvals: body.required_approvals,
        allow_self_approval: body.allow_self_approval,
    };
    let payload = ChangePayload::EnvironmentProtect {
        name: name.clone(),
        protection,
    };
    let expected = if_match(&headers)?;
    if let Some(accepted) = gate(
        &state,
        &caller,
        &headers,
        payload,
        body.reason.clone(),
        expected,
    )
    .await?
    {
        return Ok(accepted);
    }
    let committed = state
        .store()
        .set_protection(
            &change(&caller, &headers, body.reason),
            &name,
            protection,
            expected,
        )
        .await
        .map_err(|e| ApiError::from_store(e, &what(&name)))?;
    Ok(versioned(
        StatusCode::OK,
        committed.value.version,
        json!(committed.value),
    ))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.admin()?;
    let environments = state.store().list_environments().await?;
    Ok(Json(json!({ "environments": environments })))
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let environment = state
        .store()
        .get_environment(&name)
        .await
        .map_err(|e| ApiError::from_store(e, &what(&name)))?;
    Ok(versioned(
        StatusCode::OK,
        environment.version,
        json!(environment),
    ))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<EnvironmentBody>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    sluice_core::check_key(&name).map_err(ApiError::BadRequest)?;
    let committed = state
        .store()
        .create_environment(
            &change(&caller, &headers, None),
            &name,
            body.description.as_deref(),
        )
        .await
        .map_err(|e| ApiError::from_store(e, &what(&name)))?;
    state.reload().await.ok();
    Ok(versioned(
        StatusCode::CREATED,
        committed.value.version,
        json!(committed.value),
    ))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<EnvironmentBody>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let committed = state
        .store()
        .update_environment(
            &change(&caller, &headers, None),
            &name,
            body.description.as_deref(),
            if_match(&headers)?,
        )
        .await
        .map_err(|e| ApiError::from_store(e, &what(&name)))?;
    Ok(versioned(
        StatusCode::OK,
        committed.value.version,
        json!(committed.value),
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
    state
        .store()
        .delete_environment(&change(&caller, &headers, None), &name, if_match(&headers)?)
        .await
        .map_err(|e| ApiError::from_store(e, &what(&name)))?;
    state.reload().await.ok();
    Ok(StatusCode::NO_CONTENT.into_response())
}
