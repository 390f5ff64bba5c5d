//! `GET /api/v1/stream`: the live configuration feed for server SDKs, and
//! `GET /api/v1/config`: the same configuration for polling, with an ETag.
//!
//! On connect the stream sends the environment's whole configuration as a `put` event whose
//! id is the configuration version, then one `put` per change. A client reconnecting with
//! `Last-Event-ID` equal to the current version gets no repeat. Comments keep the
//! connection alive. A consumer that stops reading falls behind the bounded change feed and
//! is dropped; the writer never waits for it.

use std::convert::Infallible;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;

use crate::configs::EnvConfig;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::{environment_config, matches_etag};
use crate::state::AppState;
use crate::store::TokenScope;

/// The stream route, which must not time out.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/stream", get(stream))
}

/// The polling route.
pub fn config_router() -> Router<AppState> {
    Router::new().route("/api/v1/config", get(config))
}

/// The server token's environment configuration, as a `put` event would carry it. The ETag
/// is the configuration version; a matching `If-None-Match` gets 304.
async fn config(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let environment = caller.environment(&[TokenScope::Server])?;
    let current = environment_config(&state, environment)?;
    let etag = format!("\"{}\"", current.version);
    let etag_header = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    if matches_etag(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag_header),
        ],
        current.payload.to_string(),
    )
        .into_response())
}

fn put(config: &EnvConfig) -> Event {
    Event::default()
        .event("put")
        .id(config.version.to_string())
        .data(config.payload.as_ref())
}

async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let environment = caller.environment(&[TokenScope::Server])?.to_owned();
    // Subscribe before reading the current configuration, so no change falls in between.
    let mut changes = state.subscribe();
    let current = environment_config(&state, &environment)?;
    let last_seen: Option<i64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let mut shutdown = state.shutdown_signal();
    let mut revocations = state.revocations();
    let token_id = caller.token.id.clone();
    let heartbeat = state.settings().heartbeat;
    let connection = crate::metrics::stream_connected("/api/v1/stream");
    let stream = async_stream::stream! {
        // Counted as connected until the stream is dropped.
        let _connection = connection;
        let mut sent = last_seen;
        if sent != Some(current.version) {
            sent = Some(current.version);
            yield Ok(put(&current));
        }
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
                    let Some(config) = loaded.environments.get(&environment) else { continue };
                    if sent.is_some_and(|v| v >= config.version) {
                        continue;
                    }
                    sent = Some(config.version);
                    yield Ok(put(config));
                }
                Err(error) => {
                    tracing::info!(%error, environment, "dropping a live stream that fell behind");
                    break;
                }
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat)))
}
