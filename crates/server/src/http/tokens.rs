//! `/api/v1/tokens`: create (the secret is shown once), list and revoke API tokens.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::{JsonBody, change, if_match};
use crate::state::AppState;
use crate::store::{NewToken, TokenAccess, TokenScope};
use crate::tokens::{generate_secret, hash_secret};

/// Token routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list).post(create))
        .route("/api/v1/tokens/{id}", delete(revoke))
}

/// A token to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    scope: TokenScope,
    environment: Option<String>,
}

/// Turns a scope and an optional environment into access, or says why not.
pub fn access(scope: TokenScope, environment: Option<String>) -> Result<TokenAccess, String> {
    match (scope, environment) {
        (TokenScope::Admin, None) => Ok(TokenAccess::Admin),
        (TokenScope::Admin, Some(_)) => {
            Err("admin tokens cover every environment; drop `environment`".into())
        }
        (TokenScope::Server, Some(environment)) => Ok(TokenAccess::Server { environment }),
        (TokenScope::Client, Some(environment)) => Ok(TokenAccess::Client { environment }),
        (scope, None) => Err(format!("{} tokens need an `environment`", scope.as_str())),
    }
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.admin()?;
    let tokens = state.store().list_tokens().await?;
    Ok(Json(json!({ "tokens": tokens })))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    if body.name.trim().is_empty() {
        return Err(ApiError::BadRequest("`name` must not be empty".into()));
    }
    let access = access(body.scope, body.environment).map_err(ApiError::BadRequest)?;
    if let Some(environment) = access.environment() {
        state
            .store()
            .get_environment(environment)
            .await
            .map_err(|e| ApiError::from_store(e, &format!("environment `{environment}`")))?;
    }
    let secret = generate_secret();
    let new = NewToken {
        name: body.name,
        access,
        secret_sha256: hash_secret(&secret),
    };
    let committed = state
        .store()
        .create_token(&change(&caller, &headers, None), &new)
        .await?;
    let mut response = json!(committed.value);
    response["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let committed = state
        .store()
        .revoke_token(&change(&caller, &headers, None), &id, if_match(&headers)?)
        .await
        .map_err(|e| ApiError::from_store(e, &format!("token `{id}`")))?;
    state.tokens().clear();
    Ok(Json(json!(committed.value)).into_response())
}
