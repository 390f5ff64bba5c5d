//! OpenFeature Remote Evaluation Protocol: `POST /ofrep/v1/evaluate/flags[/{key}]`.
//!
//! A client or server token selects the environment. Responses follow OFREP v0.3.0: a
//! success carries `key`, `value`, `variant`, `reason` and `metadata`; a failure carries
//! `key`, `errorCode` and `errorDetails`, with 404 for a missing flag and 400 otherwise.
//! Both endpoints answer with an `ETag` hashed from the evaluated body, and 304 when the
//! caller's `If-None-Match` still matches. Bulk responses advertise the SSE stream that
//! tells clients when to evaluate again.

use std::convert::Infallible;

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures_util::Stream;
use serde::ser::{SerializeMap as _, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sluice_core::{Context, ErrorCode, Evaluation};

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::{environment_config, matches_etag};
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
    let request: Request = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not an OFREP request: {e}"))?;
    match request.context {
        None | Some(Value::Null) => Ok(Context::new().at(now)),
        Some(value)
            if value
                .get(sluice_core::TARGETING_KEY)
                .is_some_and(|key| !key.is_string()) =>
        {
            Err(format!(
                "`context.{}` must be a string",
                sluice_core::TARGETING_KEY
            ))
        }
        Some(value) => Context::from_value(value)
            .map(|c| c.at(now))
            .ok_or_else(|| "`context` must be a JSON object".to_owned()),
    }
}

/// One evaluation in OFREP's shape, borrowed from the engine and serialized straight to
/// bytes, without building a `Value` tree (which dominated bulk evaluation).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer<'a> {
    /// The value, variant, reason and the flag's metadata.
    Success {
        /// The flag key.
        key: &'a str,
        /// The value; absent when the caller's default applies.
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<&'a Value>,
        /// The variant.
        #[serde(skip_serializing_if = "Option::is_none")]
        variant: Option<&'a str>,
        /// Why.
        reason: &'static str,
        /// The flag's metadata.
        metadata: Metadata<'a>,
    },
    /// The error code and a sentence.
    Failure {
        /// The flag key.
        key: &'a str,
        /// OpenFeature's error code.
        #[serde(rename = "errorCode")]
        error_code: &'static str,
        /// What went wrong.
        #[serde(rename = "errorDetails")]
        error_details: &'a str,
    },
}

/// A flag's metadata, serialized as `{}` when there is no flag.
#[derive(Debug)]
pub struct Metadata<'a>(Option<&'a Map<String, Value>>);

impl Serialize for Metadata<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(map) => map.serialize(serializer),
            None => serializer.serialize_map(Some(0))?.end(),
        }
    }
}

fn error_body(key: &str, code: ErrorCode, details: &str) -> Value {
    json!({"key": key, "errorCode": code.as_str(), "errorDetails": details})
}

/// The OFREP answer for one evaluation, for serde.
pub fn evaluation_answer<'a>(key: &'a str, evaluation: &'a Evaluation<'_>) -> Answer<'a> {
    match evaluation.error {
        None => Answer::Success {
            key,
            value: evaluation.value,
            variant: evaluation.variant,
            reason: evaluation.reason.as_str(),
            metadata: Metadata(evaluation.flag.map(|flag| &flag.metadata)),
        },
        Some(code) => Answer::Failure {
            key,
            error_code: code.as_str(),
            error_details: evaluation.error_message.as_deref().unwrap_or(code.as_str()),
        },
    }
}

/// The HTTP status of a single evaluation: 404 for a missing flag, 400 for other errors.
fn evaluation_status(evaluation: &Evaluation<'_>) -> StatusCode {
    match evaluation.error {
        None => StatusCode::OK,
        Some(ErrorCode::FlagNotFound) => StatusCode::NOT_FOUND,
        Some(_) => StatusCode::BAD_REQUEST,
    }
}

/// `"` + the body's 128-bit XXH3 in hex + `"`. An ETag only has to change when the body
/// does; a cryptographic hash would cost more than evaluating hundreds of flags.
fn etag_of(body: &[u8]) -> [u8; 34] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = xxhash_rust::xxh3::xxh3_128(body).to_be_bytes();
    let mut etag = [b'"'; 34];
    for (i, byte) in digest.iter().enumerate() {
        etag[1 + 2 * i] = HEX[usize::from(byte >> 4)];
        etag[2 + 2 * i] = HEX[usize::from(byte & 0x0f)];
    }
    etag
}

/// A JSON response with an ETag, or 304 when the caller already has it.
fn with_etag(headers: &HeaderMap, status: StatusCode, body: Vec<u8>) -> Response {
    let etag = etag_of(&body);
    let etag = std::str::from_utf8(&etag).unwrap_or("\"\"");
    let etag_header = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\""));
    if status == StatusCode::OK && matches_etag(headers, etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response();
    }
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag_header),
        ],
        body,
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

/// The client's address, known when the server runs with connect info (always, outside
/// router-level tests).
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

/// The caller's environment, once its token may evaluate and is within its rate limit.
fn admit<'c>(state: &AppState, caller: &'c Caller, peer: &Peer) -> Result<&'c str, ApiError> {
    let environment = caller.environment(&[TokenScope::Client, TokenScope::Server])?;
    let address = peer.as_ref().map(|Extension(ConnectInfo(addr))| addr.ip());
    state.rate_limits().check(&caller.token.id, address)?;
    Ok(environment)
}

async fn evaluate(
    State(state): State<AppState>,
    caller: Caller,
    peer: Peer,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let environment = admit(&state, &caller, &peer)?;
    let context = match read_context(&body) {
        Ok(context) => context,
        Err(message) => return Ok(invalid_context(Some(&key), message)),
    };
    let config = environment_config(&state, environment)?;
    let evaluation = config.engine.evaluate(&key, &context);
    config.observe_dry_run(&key, &evaluation, &context);
    let mut body = Vec::with_capacity(256);
    let answers = &config.answers;
    answers.answer(answers.position(&key), &key, &evaluation, &mut body);
    Ok(with_etag(&headers, evaluation_status(&evaluation), body))
}

/// An OFREP event stream advertisement.
#[derive(Debug, Serialize)]
struct EventStream {
    #[serde(rename = "type")]
    kind: &'static str,
    url: String,
    #[serde(rename = "inactivityDelaySec")]
    inactivity_delay_sec: u32,
}

async fn evaluate_all(
    State(state): State<AppState>,
    caller: Caller,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let environment = admit(&state, &caller, &peer)?;
    let context = match read_context(&body) {
        Ok(context) => context,
        Err(message) => return Ok(invalid_context(None, message)),
    };
    let config = environment_config(&state, environment)?;
    // `{"flags":[...],"metadata":{},"eventStreams":[...]}`, each answer written by
    // `Answers`: prepared bytes for the common case, serde for the rest.
    let answers = &config.answers;
    let mut body = Vec::with_capacity(answers.bulk_size_hint());
    body.extend_from_slice(b"{\"flags\":[");
    for (position, (key, evaluation)) in config.engine.evaluate_all(&context).enumerate() {
        if position > 0 {
            body.push(b',');
        }
        answers.answer(Some(position), key, &evaluation, &mut body);
        config.observe_dry_run(key, &evaluation, &context);
    }
    body.extend_from_slice(b"],\"metadata\":{}");
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        let streams = [EventStream {
            kind: "sse",
            url: format!("http://{host}/ofrep/v1/events"),
            inactivity_delay_sec: 120,
        }];
        body.extend_from_slice(b",\"eventStreams\":");
        if let Err(error) = serde_json::to_writer(&mut body, &streams) {
            return Err(ApiError::Internal(error.into()));
        }
    }
    body.push(b'}');
    Ok(with_etag(&headers, StatusCode::OK, body))
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
    let mut revocations = state.revocations();
    let token_id = caller.token.id.clone();
    let heartbeat = state.settings().heartbeat;
    let connection = crate::metrics::stream_connected("/ofrep/v1/events");
    let stream = async_stream::stream! {
        // Counted as connected until the stream is dropped.
        let _connection = connection;
        loop {
            let received = tokio::select! {
                received = changes.recv() => received,
                // `wait_for` also sees a shutdown that began before this stream did.
                _ = crate::state::until_shutdown(&mut shutdown) => break,
                // A revoked token's stream ends; reconnecting gets 401.
                Ok(()) = revocations.changed() => {
                    if revocations.borrow_and_update().contains(&token_id) {
                        break;
                    }
                    continue;
                }
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
        assert!(
            read_context(br#"{"context": [1]}"#)
                .unwrap_err()
                .contains("must be a JSON object")
        );
        assert!(
            read_context(b"{oops")
                .unwrap_err()
                .contains("not an OFREP request")
        );
        // A targeting key that is not a string is refused, not read as absent.
        for key in ["42", "null", "true", "{}"] {
            let body = format!(r#"{{"context": {{"targetingKey": {key}}}}}"#);
            assert_eq!(
                read_context(body.as_bytes()).unwrap_err(),
                "`context.targetingKey` must be a string",
                "{body}"
            );
        }
    }

    #[test]
    fn etags_match_with_weak_prefixes_and_lists() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(matches_etag(&headers, "\"b\""));
        assert!(!matches_etag(&headers, "\"c\""));
    }
}
