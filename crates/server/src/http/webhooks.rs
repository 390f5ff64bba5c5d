//! `/api/v1/webhooks`: where rollout transitions are announced. Admin tokens only.
//!
//! A webhook is a URL, an optional environment, the transition kinds it wants (all when
//! empty) and a secret that signs each delivery. The secret is chosen by the caller or
//! generated, and shown once, in the creation's answer; it is never listed or audited. A URL
//! naming a loopback or private address literally is refused at once unless allow-listed;
//! names are resolved, and checked, at each delivery (see `rollouts/webhooks.rs`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_core::{Error, ErrorKind, Errors};

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::{JsonBody, change};
use crate::rollouts::webhooks::{AllowList, Refusal, check_url, is_public};
use crate::state::AppState;
use crate::store::NewWebhook;

/// The longest secret accepted, in bytes.
const MAX_SECRET_LEN: usize = 256;

/// Webhook routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks", get(list).post(create))
        .route("/api/v1/webhooks/{id}", delete(remove))
}

/// The body of `POST /api/v1/webhooks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    secret: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    env: Option<String>,
    reason: Option<String>,
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::InvalidBody {
        message: format!("body: {field}: {message}"),
        errors: Errors(vec![Error::new(
            ErrorKind::Invalid,
            sluice_core::Path::root().key(field),
            message,
        )]),
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let url = check_url(&body.url).map_err(|e| match e {
        Refusal::BadUrl(message) => invalid("url", message.trim_start_matches("url: ").to_owned()),
        other => invalid("url", other.to_string()),
    })?;
    // An address written in the URL is checked now; names are checked at each delivery.
    if let Some(host) = url.host_str()
        && let Ok(address) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
    {
        let allow = AllowList::new(&state.settings().webhook_allow);
        if !is_public(address) && !allow.allows(address) {
            return Err(invalid(
                "url",
                format!("{address} is not a public address; allow it with --webhook-allow"),
            ));
        }
    }
    let secret = match body.secret {
        Some(secret) if secret.is_empty() || secret.len() > MAX_SECRET_LEN => {
            return Err(invalid(
                "secret",
                format!("must be 1 to {MAX_SECRET_LEN} bytes"),
            ));
        }
        Some(secret) => secret,
        None => format!("whsec_{}", hex::encode(rand::random::<[u8; 24]>())),
    };
    let committed = state
        .store()
        .create_webhook(
            &change(&caller, &headers, body.reason),
            &NewWebhook {
                url: body.url,
                secret: secret.clone(),
                events: body.events,
                env: body.env,
            },
        )
        .await
        .map_err(|e| ApiError::from_store(e, "the webhook"))?;
    let mut answer = json!(committed.value);
    answer["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let hooks = state.store().list_webhooks().await?;
    let deliveries = state.store().deliveries(None, 100).await?;
    Ok(Json(json!({ "webhooks": hooks, "deliveries": deliveries })))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    state
        .store()
        .delete_webhook(&change(&caller, &headers, None), &id)
        .await
        .map_err(|e| ApiError::from_store(e, &format!("webhook `{id}`")))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
