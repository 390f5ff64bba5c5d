//! The HTTP surface: the router, its middleware, and helpers every route module shares.
//!
//! Each route module exports `router()`. Middleware, outermost first: a request id is set
//! (or kept from `X-Request-Id`) and echoed on the response; requests are traced with it;
//! requests are counted and timed by route for `/metrics` ([`crate::metrics`]);
//! a panic becomes a 500 naming the request id; bodies over the limit get 413 before they
//! are read; non-streaming requests time out. CORS allows any origin without credentials,
//! so browser OpenFeature clients can evaluate, and exposes `ETag` and `Retry-After`.

pub mod ab_report;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod changes;
pub mod dry_runs;
pub mod environments;
pub mod error;
pub mod experiments;
pub mod feeds;
pub mod files;
pub mod flags;
pub mod health;
pub mod lifecycle;
pub mod ofrep;
pub mod openapi;
pub mod rate_limit;
pub mod releases;
pub mod rollouts;
pub mod segments;
pub mod stream;
pub mod telemetry;
pub mod tokens;
pub mod webhooks;

use std::panic::AssertUnwindSafe;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use futures_util::FutureExt as _;
use serde::de::DeserializeOwned;
use serde_json::json;
use tower_http::cors::{Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::Change;

/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The header carrying a write's reason into the audit log.
pub const REASON: HeaderName = HeaderName::from_static("x-sluice-reason");

/// The whole application.
pub fn app(state: AppState) -> Router {
    let settings = state.settings().clone();
    let sessions = std::sync::Arc::new(crate::console::session::Sessions::default());
    let timed = Router::new()
        .merge(crate::console::router(sessions.clone()))
        .merge(ofrep::evaluation_router())
        .merge(lifecycle::router())
        .merge(flags::router())
        .merge(changes::router())
        .merge(segments::router())
        .merge(environments::router())
        .merge(tokens::router())
        .merge(audit::router())
        .merge(files::router())
        .merge(health::router())
        .merge(openapi::router())
        .merge(crate::metrics::router())
        .merge(stream::config_router())
        .merge(telemetry::router())
        .merge(rollouts::router())
        .merge(releases::router())
        .merge(experiments::router())
        .merge(dry_runs::router())
        .merge(webhooks::router())
        .merge(apps::router())
        .merge(feeds::router())
        .layer(middleware::from_fn(write_deadline))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ));
    let streaming = Router::new()
        .merge(ofrep::events_router())
        .merge(stream::router())
        .merge(releases::drill_router())
        .merge(crate::console::events_router(sessions));
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static(feeds::STAGING_ID),
            HeaderName::from_static(feeds::INSTALL_ID),
            HeaderName::from_static(feeds::MANUAL),
        ])
        .expose_headers([header::ETAG, header::RETRY_AFTER]);
    Router::new()
        .merge(timed)
        .merge(streaming)
        .fallback(not_found)
        // One limit: the layer below refuses a large Content-Length at once and caps
        // streamed bodies; axum's own extractor limit would only repeat it.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(settings.body_limit))
        .layer(cors)
        .layer(middleware::from_fn(catch_panic))
        .layer(middleware::from_fn(crate::metrics::track))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::debug_span!("request", method = %request.method(), path = %request.uri().path(), request_id = id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, SequentialIds::new()))
        .with_state(state)
}

/// Request ids `<random prefix>-<counter>`: unique per process start, and made without a
/// system call per request (a UUID needs fresh randomness each time).
#[derive(Debug, Clone)]
struct SequentialIds {
    prefix: std::sync::Arc<str>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SequentialIds {
    fn new() -> SequentialIds {
        SequentialIds {
            prefix: format!("{:08x}", rand::random::<u32>()).into(),
            next: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for SequentialIds {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

/// How long a write may wait on the store before it is answered 503.
pub const WRITE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Answers 503 to a write (any method but GET, HEAD and OPTIONS) that the store has not
/// finished within [`WRITE_DEADLINE`], such as one stuck on a database that stopped
/// answering: the caller learns at once instead of holding a connection until the request
/// timeout. A write cut off this way may still commit if its commit was already on the wire,
/// so the message says to read before retrying; a write that never reached its commit leaves
/// nothing. Long operations (rollback drills) are routed outside this layer.
async fn write_deadline(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    match tokio::time::timeout(WRITE_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable(format!(
            "the store did not finish the write within {} s; read the resource back before \
             retrying",
            WRITE_DEADLINE.as_secs()
        ))
        .into_response(),
    }
}

/// Turns a panic in any handler into a logged 500 that names the request id.
async fn catch_panic(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => {
            // Request spans are at debug level to keep the hot path cheap, so server errors
            // name their request id here.
            if response.status().is_server_error() {
                tracing::error!(request_id, status = %response.status(), "request failed");
            }
            response
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(request_id, panic = message, "a handler panicked");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({
                    "error": "internal",
                    "message": "internal server error; the log has details under this request id",
                    "requestId": request_id,
                })),
            )
                .into_response()
        }
    }
}

/// A JSON request body whose errors name the field path, line and column (422), or say the
/// body is too large (413) or not JSON (400).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<JsonBody<T>, Response> {
        let bytes = body_bytes(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        parse_json(&bytes)
            .map(JsonBody)
            .map_err(IntoResponse::into_response)
    }
}

/// Like [`JsonBody`], but an empty (or all-whitespace) body is `T::default()`: for commands
/// whose body only adds optional fields such as a reason.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<OptionalJsonBody<T>, Response> {
        let bytes = body_bytes(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse_json(&bytes)
            .map(OptionalJsonBody)
            .map_err(IntoResponse::into_response)
    }
}

/// The request body, or a JSON error with the status the body limit or the read gave.
async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, Rejected> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            let status = rejection.status();
            (
                status,
                Json(json!({"error": "bad_request", "message": rejection.body_text()})),
            )
        })
}

/// A refused body: its status and JSON error, made a response by the extractor.
type Rejected = (StatusCode, Json<serde_json::Value>);

/// Deserializes a JSON body, or the response naming the field path, line and column.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Rejected> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let status = if inner.is_data() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        let body = json!({
            "error": if inner.is_data() { "invalid" } else { "bad_request" },
            "message": format!("body: {path}: {inner}"),
            "errors": [{"path": path, "message": inner.to_string(), "line": inner.line(), "column": inner.column()}],
        });
        (status, Json(body))
    })
}

/// Who, why and when, for the audit record of a write.
pub fn change(caller: &Caller, headers: &HeaderMap, reason: Option<String>) -> Change {
    let mut change = Change::at(now_ms()).by(caller.id());
    let reason = reason.or_else(|| {
        headers
            .get(REASON)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    if let Some(reason) = reason {
        change = change.because(reason);
    }
    if let Some(id) = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()) {
        change = change.request(id);
    }
    change
}

/// The version in `If-Match` (`"3"`, `W/"3"` or `3`), if the request sent one.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let bare = text.trim_start_matches("W/").trim_matches('"');
    bare.parse().map(Some).map_err(|_| {
        ApiError::BadRequest(format!(
            "If-Match must carry a version from an ETag, such as \"3\"; got `{text}`"
        ))
    })
}

/// A JSON response carrying the resource's version as its ETag.
pub fn versioned(status: StatusCode, version: i64, body: serde_json::Value) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{version}\""))
        .unwrap_or(HeaderValue::from_static("\"\""));
    (status, [(header::ETAG, etag)], Json(body)).into_response()
}

/// Whether `If-None-Match` names `etag` (weak or strong, in a list, or `*`).
pub fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

/// The served configuration of a token's environment.
pub fn environment_config(
    state: &AppState,
    environment: &str,
) -> Result<std::sync::Arc<crate::configs::EnvConfig>, ApiError> {
    state.configs().environment(environment).ok_or_else(|| {
        ApiError::NotFound(format!("environment `{environment}` has no configuration"))
    })
}

/// Refuses writes to flags and segments when files own them.
pub fn refuse_in_gitops(state: &AppState) -> Result<(), ApiError> {
    match &state.settings().flags {
        Some(path) => Err(ApiError::Conflict(format!(
            "flags are managed by files in GitOps mode ({}); change the files instead",
            path.display()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_500_naming_the_request() {
        async fn boom() -> &'static str {
            panic!("handler bug")
        }
        let router: Router = Router::new()
            .route("/boom", get(boom))
            .layer(middleware::from_fn(catch_panic));
        let request = Request::builder()
            .uri("/boom")
            .header(REQUEST_ID, "req-42")
            .body(Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["requestId"], "req-42");
        assert!(
            !body.to_string().contains("handler bug"),
            "panic details stay in the log"
        );
    }
}
