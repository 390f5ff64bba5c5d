//! SDK telemetry: `POST /api/v1/metrics` takes batches; `GET /api/v1/flags/{key}/metrics`
//! and `GET /api/v1/instances` read what was recorded.
//!
//! A batch is a [`MetricsBatch`] as JSON, posted with a server token whose environment it
//! belongs to (admin and client tokens get 403). `Content-Encoding: gzip` is read with a hard
//! cap on the decompressed size ([`MAX_DECOMPRESSED`]), so a gzip bomb gets 413 after at most
//! that many bytes were inflated; other encodings get 415. Malformed JSON is 400; a batch
//! that breaks a rule is 422 naming every problem's path, such as `buckets[3].startMs`.
//! A recorded batch gets 200 `{"accepted": true, "duplicate": false, …}`; a batch id already
//! recorded gets 200 `{"accepted": false, "duplicate": true, …}` and counts nothing, so an
//! SDK retries until it sees any 2xx and then forgets the batch.
//!
//! The reads take an admin token with `?env=`, or a server token of that environment (`env`
//! may be left out). Both default to the last hour (`?since=` in Unix milliseconds).

use std::io::Read as _;
use std::sync::Once;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_core::telemetry::{BUCKET_MS, MetricsBatch, bucket_start};
use sluice_core::{Error, ErrorKind, Errors, Position};

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::telemetry::totals_by_variant;
use crate::store::{Aggregate, AggregateRow, StoreError, TokenAccess, TokenScope};

/// The most bytes a gzip body may decompress to. The compressed body is capped before it is
/// read by the server's body limit (1 MiB by default).
pub const MAX_DECOMPRESSED: usize = 8 * 1024 * 1024;

/// The window the reads cover when `since` is not given: the last hour.
pub const DEFAULT_WINDOW_MS: i64 = 60 * 60 * 1000;

/// The most aggregate rows one `GET /api/v1/flags/{key}/metrics` returns.
pub const MAX_METRIC_ROWS: u32 = 10_000;

/// The most instances one `GET /api/v1/instances` lists.
pub const MAX_INSTANCES: u32 = 10_000;

/// Batches received, by outcome: `accepted`, `duplicate` or `rejected`.
pub const BATCHES_METRIC: &str = "sluice_telemetry_batches_total";

/// Telemetry routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/metrics", post(ingest))
        .route("/api/v1/flags/{key}/metrics", get(flag_metrics))
        .route("/api/v1/instances", get(instances))
}

fn count_batch(outcome: &'static str) {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_counter!(
            BATCHES_METRIC,
            "SDK telemetry batches received, by outcome (accepted, duplicate, rejected)."
        );
    });
    metrics::counter!(BATCHES_METRIC, "outcome" => outcome).increment(1);
}

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let mut codings = Vec::new();
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| {
            ApiError::UnsupportedMediaType("Content-Encoding is not readable text".into())
        })?;
        codings.extend(
            text.split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty() && c != "identity"),
        );
    }
    match codings.as_slice() {
        [] => Ok(Encoding::Identity),
        [only] if only == "gzip" || only == "x-gzip" => Ok(Encoding::Gzip),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding `{}`: send the batch as plain JSON or with `gzip`",
            codings.join(", ")
        ))),
    }
}

/// Inflates a gzip body, reading at most `limit + 1` bytes of output.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut inflated = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    MultiGzDecoder::new(body)
        .take(cap)
        .read_to_end(&mut inflated)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid gzip: {e}")))?;
    if inflated.len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "the gzip body decompresses to more than {limit} bytes; send smaller batches"
        )));
    }
    Ok(inflated)
}

/// Parses a batch; errors name the path, line and column (422 for a value of the wrong
/// shape, 400 for text that is not JSON).
fn parse(bytes: &[u8]) -> Result<MetricsBatch, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let error = match serde_path_to_error::deserialize::<_, MetricsBatch>(&mut deserializer) {
        Ok(batch) => {
            return match deserializer.end() {
                Ok(()) => Ok(batch),
                Err(error) => Err(ApiError::BadRequest(format!("body: {error}"))),
            };
        }
        Err(error) => error,
    };
    let mut path = sluice_core::Path::root();
    for segment in error.path().iter() {
        path = match segment {
            serde_path_to_error::Segment::Seq { index } => path.index(*index),
            serde_path_to_error::Segment::Map { key } => path.key(key.clone()),
            serde_path_to_error::Segment::Enum { variant } => path.key(variant.clone()),
            serde_path_to_error::Segment::Unknown => path,
        };
    }
    let shown = error.path().to_string();
    let inner = error.into_inner();
    let message = format!("body: {shown}: {inner}");
    if !inner.is_data() {
        return Err(ApiError::BadRequest(message));
    }
    let mut located = Error::new(ErrorKind::Structure, path, inner.to_string());
    located.position = Some(Position {
        line: inner.line(),
        column: inner.column(),
    });
    Err(ApiError::InvalidBody {
        message,
        errors: Errors(vec![located]),
    })
}

pub(crate) fn read_batch(encoding: Encoding, body: &[u8]) -> Result<MetricsBatch, ApiError> {
    match encoding {
        Encoding::Identity => parse(body),
        Encoding::Gzip => parse(&gunzip(body, MAX_DECOMPRESSED)?),
    }
}

async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let received_ms = now_ms();
    let environment = caller.environment(&[TokenScope::Server])?.to_owned();
    let encoding = content_encoding(&headers).inspect_err(|_| count_batch("rejected"))?;
    // Inflating and parsing up to 8 MiB is CPU work: keep it off the async workers.
    let batch = tokio::task::spawn_blocking(move || read_batch(encoding, &body))
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("reading a metrics batch")))
        .and_then(|read| read)
        .inspect_err(|_| count_batch("rejected"))?;
    let ingested = state
        .store()
        .record_metrics(&environment, &batch, received_ms)
        .await
        .map_err(|error| match error {
            StoreError::Invalid(errors) => {
                count_batch("rejected");
                invalid_batch(errors)
            }
            other => ApiError::from(other),
        })?;
    count_batch(if ingested.duplicate {
        "duplicate"
    } else {
        "accepted"
    });
    Ok(Json(json!(ingested)))
}

fn invalid_batch(errors: Errors) -> ApiError {
    let mut message = String::from("the metrics batch is invalid");
    if let Some(first) = errors.iter().next() {
        message.push_str(&format!(": {}: {}", first.path, first.message));
    }
    if errors.len() > 1 {
        message.push_str(&format!(" (and {} more)", errors.len() - 1));
    }
    ApiError::InvalidBody { message, errors }
}

/// The environment a read is about: an admin token names it, a server token is bound to it.
pub(crate) async fn observed_environment(
    state: &AppState,
    caller: &Caller,
    requested: Option<&str>,
) -> Result<String, ApiError> {
    match &caller.token.access {
        TokenAccess::Admin => {
            let Some(name) = requested else {
                return Err(ApiError::BadRequest(
                    "`env` is required with an admin token, such as `?env=production`".into(),
                ));
            };
            state
                .store()
                .get_environment(name)
                .await
                .map_err(|e| ApiError::from_store(e, &format!("environment `{name}`")))?;
            Ok(name.to_owned())
        }
        TokenAccess::Server { environment } => match requested {
            Some(name) if name != environment => Err(ApiError::Forbidden(format!(
                "token `{}` belongs to environment `{environment}`, not `{name}`",
                caller.token.id
            ))),
            _ => Ok(environment.clone()),
        },
        TokenAccess::Client { .. } => Err(ApiError::Forbidden(format!(
            "this needs an admin token, or a server token of the environment; `{}` is a client token",
            caller.token.id
        ))),
    }
}

/// Query parameters of the reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowQuery {
    /// The environment; a server token's own when left out.
    env: Option<String>,
    /// Unix milliseconds; one hour ago when left out.
    since: Option<i64>,
}

/// A variant's totals for people: counts, latency quantiles and events.
fn summary(aggregate: &Aggregate) -> Value {
    let quantile = |q: f64| aggregate.latency.as_ref().and_then(|s| s.quantile(q));
    json!({
        "exposures": aggregate.exposures,
        "errors": aggregate.errors,
        "crashes": aggregate.crashes,
        "latencyCount": aggregate.latency.as_ref().map_or(0, |s| s.count()),
        "p50": quantile(0.5),
        "p95": quantile(0.95),
        "p99": quantile(0.99),
        "events": aggregate.events,
    })
}

/// Cuts a page that overflowed at a bucket boundary; returns where the next page starts.
fn cut_page(rows: &mut Vec<AggregateRow>, limit: usize) -> Option<i64> {
    let first_left_out = rows.get(limit)?.start_ms;
    rows.truncate(limit);
    let whole = rows.iter().filter(|r| r.start_ms < first_left_out).count();
    if whole == 0 {
        // One bucket has more rows than a page: show what fits and move past it.
        return Some(first_left_out + BUCKET_MS);
    }
    rows.truncate(whole);
    Some(first_left_out)
}

async fn flag_metrics(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Query(query): Query<WindowQuery>,
) -> Result<Json<Value>, ApiError> {
    let environment = observed_environment(&state, &caller, query.env.as_deref()).await?;
    let since = bucket_start(
        query
            .since
            .unwrap_or_else(|| now_ms().saturating_sub(DEFAULT_WINDOW_MS)),
    );
    let mut rows = state
        .store()
        .flag_metrics(&environment, &key, since, MAX_METRIC_ROWS + 1)
        .await?;
    let next = cut_page(&mut rows, MAX_METRIC_ROWS as usize);
    let totals: serde_json::Map<String, Value> = totals_by_variant(&rows)
        .iter()
        .map(|(variant, aggregate)| (variant.clone(), summary(aggregate)))
        .collect();
    Ok(Json(json!({
        "flag": key,
        "env": environment,
        "since": since,
        "buckets": rows,
        "totals": totals,
        "truncated": next.is_some(),
        "next": next,
    })))
}

async fn instances(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<WindowQuery>,
) -> Result<Json<Value>, ApiError> {
    let environment = observed_environment(&state, &caller, query.env.as_deref()).await?;
    let since = query
        .since
        .unwrap_or_else(|| now_ms().saturating_sub(DEFAULT_WINDOW_MS));
    let mut listed = state
        .store()
        .instances(&environment, since, MAX_INSTANCES + 1)
        .await?;
    let truncated = listed.len() > MAX_INSTANCES as usize;
    listed.truncate(MAX_INSTANCES as usize);
    let current = state
        .configs()
        .environment(&environment)
        .map(|config| config.version);
    // Per applied version: how many instances, and when one was last seen. Newest first,
    // instances without a configuration last.
    let mut versions: Vec<(Option<i64>, u64, i64)> = Vec::new();
    for instance in &listed {
        match versions
            .iter_mut()
            .find(|(version, _, _)| *version == instance.config_version)
        {
            Some((_, count, last_seen)) => {
                *count += 1;
                *last_seen = (*last_seen).max(instance.last_seen_ms);
            }
            None => versions.push((instance.config_version, 1, instance.last_seen_ms)),
        }
    }
    versions.sort_by_key(|&(version, _, _)| std::cmp::Reverse(version));
    let behind = listed
        .iter()
        .filter(|i| match (i.config_version, current) {
            (Some(applied), Some(current)) => applied < current,
            (None, _) => true,
            (Some(_), None) => false,
        })
        .count();
    Ok(Json(json!({
        "env": environment,
        "since": since,
        "currentConfigVersion": current,
        "behind": behind,
        "configVersions": versions
            .iter()
            .map(|(version, count, last_seen)| json!({
                "configVersion": version,
                "instances": count,
                "lastSeenMs": last_seen,
            }))
            .collect::<Vec<_>>(),
        "instances": listed,
        "truncated": truncated,
    })))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use axum::http::HeaderValue;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn encodings_are_read_or_refused() {
        let mut headers = HeaderMap::new();
        assert_eq!(content_encoding(&headers).unwrap(), Encoding::Identity);
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("GZip"));
        assert_eq!(content_encoding(&headers).unwrap(), Encoding::Gzip);
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(
            content_encoding(&headers).unwrap_err().status_code(),
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static("gzip, gzip"),
        );
        assert!(content_encoding(&headers).is_err());
    }

    #[test]
    fn gzip_is_capped_on_the_decompressed_size() {
        let text = b"{\"a\": 1}";
        assert_eq!(gunzip(&gzip(text), 100).unwrap(), text);
        let bomb = gzip(&vec![0u8; 1_000_000]);
        assert!(bomb.len() < 10_000);
        let refused = gunzip(&bomb, 64 * 1024).unwrap_err();
        assert!(
            matches!(refused, ApiError::PayloadTooLarge(_)),
            "{refused:?}"
        );
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn parse_errors_name_the_path() {
        let error = parse(br#"{"batchId": "b", "instance": {"id": "i"}, "sentAtMs": 1, "buckets": [{"startMs": "x"}]}"#)
            .unwrap_err();
        match error {
            ApiError::InvalidBody { message, errors } => {
                assert!(
                    message.starts_with("body: buckets[0].startMs: "),
                    "{message}"
                );
                assert_eq!(
                    errors.iter().next().unwrap().path.to_string(),
                    "buckets[0].startMs"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(b"{oops"), Err(ApiError::BadRequest(_))));
        let trailing = br#"{"batchId": "b", "instance": {"id": "i"}, "sentAtMs": 1} x"#;
        assert!(matches!(parse(trailing), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn pages_end_on_bucket_boundaries() {
        let row = |start_ms| AggregateRow {
            flag: "f".into(),
            variant: "v".into(),
            config_version: 1,
            start_ms,
            aggregate: Aggregate::default(),
        };
        let mut rows = vec![row(0), row(0), row(10_000), row(10_000), row(20_000)];
        assert_eq!(cut_page(&mut rows, 3), Some(10_000));
        assert_eq!(rows.len(), 2);
        let mut rows = vec![row(0), row(0), row(0)];
        assert_eq!(cut_page(&mut rows, 2), Some(10_000));
        assert_eq!(rows.len(), 2);
        let mut rows = vec![row(0)];
        assert_eq!(cut_page(&mut rows, 2), None);
    }
}
