//! OpenFeature Remote Evaluation Protocol: `POST /ofrep/v1/evaluate/flags[/{key}]`.
//!
//! A client or server token selects the environment. Responses follow OFREP v0.3.0: a
//! success carries `key`, `value`, `variant`, `reason` and `metadata`; a failure carries
//! `key`, `errorCode` and `errorDetails`, with 404 for a missing flag and 400 otherwise.
//! Both endpoints answer with an `ETag` hashed from the evaluated body, and 304 when the
//! caller's `If-None-Match` still matches. Bulk responses advertise the SSE stream that
//! tells clients when to evaluate again.

use std::convert::Infallible;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sluice_core::{Context, ErrorCode, Evaluation};

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::TokenScope;

/// The evaluation routes.
pub fn evaluation_router() -> Router<AppState> {
    Router::new()
        .route("/ofrep/v1/evaluate/flags/{key}", post(evaluate))
        .route("/ofrep/v1/evaluate/flags", post(evaluate_all))
}

/// The change notification stream, which must not time out.
pub fn events_router() -> Router<AppState> {
    Router::new().route("/ofrep/v1/events", get(events))
}

#[derive(Debug, Deserialize)]
struct Request {
    #[serde(default)]
    context: Option<Value>,
}

/// Reads `{"context": {...}}`; an empty body or missing context is an empty context.
fn read_context(body: &[u8]) -> Result<Context, String> {
    let now = now_ms() / 1000;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Context::new().at(now));
    }
    let request: Request =
        serde_json::from_slice(body).map_err(|e| format!("the body is not an OFREP request: {e}"))?;
    match request.context {
        None | Some(Value::Null) => Ok(Context::new().at(now)),
        Some(value) => Context::from_value(value)
            .map(|c| c.at(now))
            .ok_or_else(|| "`context` must be a JSON object".to_owned()),
    }
}

fn success_body(key: &str, evaluation: &Evaluation<'_>) -> Value {
    let mut body = Map::new();
    body.insert("key".into(), Value::String(key.to_owned()));
    if let Some(value) = evaluation.value {
        body.insert("value".into(), value.clone());
    }
    if let Some(variant) = evaluation.variant {
        body.insert("variant".into(), Value::String(variant.to_owned()));
    }
    body.insert("reason".into(), Value::String(evaluation.reason.as_str().to_owned()));
    let metadata = evaluation
        .flag
        .map(|flag| Value::Object(flag.metadata.clone()))
        .unwrap_or_else(|| json!({}));
    body.insert("metadata".into(), metadata);
    Value::Object(body)
}

fn error_body(key: &str, code: ErrorCode, details: &str) -> Value {
    json!({"key": key, "errorCode": code.as_str(), "errorDetails": details})
}

/// The OFREP status and body for one evaluation.
pub fn evaluation_response(key: &str, evaluation: &Evaluation<'_>) -> (StatusCode, Value) {
    match evaluation.error {
        None => (StatusCode::OK, success_body(key, evaluation)),
        Some(code) => {
            let status = if code == ErrorCode::FlagNotFound {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_REQUEST
            };
            let details = evaluation.error_message.as_deref().unwrap_or(code.as_str());
            (status, error_body(key, code, details))
        }
    }
}

fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..12]))
}

fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

/// A JSON response with an ETag, or 304 when the caller already has it.
fn with_etag(headers: &HeaderMap, status: StatusCode, body: &Value) -> Response {
    let bytes = body.to_string().into_bytes();
    let etag = etag_of(&bytes);
    let etag_header = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    if status == StatusCode::OK && matches_etag(headers, &etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_header)],
        )
            .into_response();
    }
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::ETAG, etag_header),
        ],
        bytes,
    )
        .into_response()
}

fn invalid_context(key: Option<&str>, message: String) -> Response {
    let body = match key {
        Some(key) => error_body(key, ErrorCode::InvalidContext, &message),
        None => json!({"errorCode": "INVALID_CONTEXT", "errorDetails": message}),
    };
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn evaluate(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let environment = caller.environment(&[TokenScope::Client, TokenScope::Server])?;
    let context = match read_context(&body) {
        Ok(context) => context,
        Err(message) => return Ok(invalid_context(Some(&key), message)),
    };
    let config = state.configs().environment(environment).ok_or_else(|| {
        ApiError::NotFound(format!("environment `{environment}` has no configuration"))
    })?;
    let evaluation = config.engine.evaluate(&key, &context);
    crate::metrics::count_evaluation(&key, &evaluation);
    let (status, body) = evaluation_response(&key, &evaluation);
    Ok(with_etag(&headers, status, &body))
}

async fn evaluate_all(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let environment = caller.environment(&[TokenScope::Client, TokenScope::Server])?;
    let context = match read_context(&body) {
        Ok(context) => context,
        Err(message) => return Ok(invalid_context(None, message)),
    };
    let config = state.configs().environment(environment).ok_or_else(|| {
        ApiError::NotFound(format!("environment `{environment}` has no configuration"))
    })?;
    let flags: Vec<Value> = config
        .engine
        .evaluate_all(&context)
        .map(|(key, evaluation)| {
            crate::metrics::count_evaluation(key, &evaluation);
            evaluation_response(key, &evaluation).1
        })
        .collect();
    let mut response = json!({ "flags": flags, "metadata": {} });
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        response["eventStreams"] = json!([{
            "type": "sse",
            "url": format!("http://{host}/ofrep/v1/events"),
            "inactivityDelaySec": 120,
        }]);
    }
    Ok(with_etag(&headers, StatusCode::OK, &response))
}

/// `GET /ofrep/v1/events`: an SSE event each time the caller's environment changes.
async fn events(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let environment = caller
        .environment(&[TokenScope::Client, TokenScope::Server])?
        .to_owned();
    let mut changes = state.subscribe();
    let mut shutdown = state.shutdown_signal();
    let heartbeat = state.settings().heartbeat;
    let connection = crate::metrics::stream_connected("/ofrep/v1/events");
    let stream = async_stream::stream! {
        // Counted as connected until the stream is dropped.
        let _connection = connection;
        loop {
            let received = tokio::select! {
                received = changes.recv() => received,
                _ = shutdown.changed() => break,
            };
            match received {
                Ok(loaded) => {
                    if let Some(config) = loaded.environments.get(&environment) {
                        let data = json!({"type": "refetchEvaluation", "version": config.version});
                        yield Ok(Event::default().data(data.to_string()));
                    }
                }
                // A consumer that fell behind is dropped; it reconnects and refetches.
                Err(_) => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_read_leniently_and_rejected_clearly() {
        assert!(read_context(b"").is_ok());
        assert!(read_context(b"{}").is_ok());
        assert!(read_context(br#"{"context": null}"#).is_ok());
        let context = read_context(br#"{"context": {"targetingKey": "u1"}}"#).unwrap();
        assert_eq!(context.targeting_key(), Some("u1"));
        assert!(read_context(br#"{"context": [1]}"#).unwrap_err().contains("must be a JSON object"));
        assert!(read_context(b"{oops").unwrap_err().contains("not an OFREP request"));
    }

    #[test]
    fn etags_match_with_weak_prefixes_and_lists() {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        assert!(matches_etag(&headers, "\"b\""));
        assert!(!matches_etag(&headers, "\"c\""));
    }
}
