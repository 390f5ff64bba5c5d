//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! What is measured:
//!
//! - `sluice_http_requests_total{method, route, status}` and
//!   `sluice_http_request_duration_seconds{method, route, status}` (a histogram): every
//!   request, labelled with the matched route template such as
//!   `/api/v1/flags/{key}`, never the raw path, so label values stay few. Requests that
//!   match no route are labelled `route="unmatched"`. For live streams the duration is the
//!   time to the response head, not the life of the stream.
//! - `sluice_evaluations_total{flag, variant, reason}`: every OFREP evaluation, single and
//!   bulk. An evaluation of a flag that does not exist is labelled `flag="(unknown)"`, since
//!   callers choose those keys and could otherwise make series without bound; its variant
//!   is empty, as it is for every failed evaluation.
//! - `sluice_stream_connections{route}`: live streams connected now, on `/api/v1/stream`
//!   and `/ofrep/v1/events`.
//!
//! `/metrics` needs no token, as on most servers: it is read-only and shows route
//! templates, status codes, flag keys, variant names and counts, never contexts, values,
//! rules or tokens. Keep it off the public internet where flag keys are confidential.
//!
//! One recorder is installed per process, the first time [`install`] runs (building the
//! router does); later calls return the same handle, so many servers in one process (as in
//! tests) share it and its counts. Our own route renders it; the exporter's HTTP listener
//! is not used. A plain thread runs the exporter's upkeep every few seconds, so histogram
//! samples never pile up while nobody scrapes.
//!
//! The hot path does not allocate: each label combination's handles are created once and
//! then only added to. Request series live in a copy-on-write map read without locking;
//! evaluation counters live beside each configuration's prepared OFREP answers
//! ([`crate::answers`]), found by the flag's position instead of by hashing labels.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sluice_core::Reason;

use crate::state::AppState;

/// Requests served, by method, route template and status.
pub const REQUESTS: &str = "sluice_http_requests_total";
/// Time to the response head, by method, route template and status.
pub const REQUEST_DURATION: &str = "sluice_http_request_duration_seconds";
/// OFREP evaluations, by flag, variant and reason.
pub const EVALUATIONS: &str = "sluice_evaluations_total";
/// Live streams connected now, by route.
pub const STREAM_CONNECTIONS: &str = "sluice_stream_connections";

/// The routes of live streams, the label values of [`STREAM_CONNECTIONS`].
pub const STREAM_ROUTES: [&str; 2] = ["/api/v1/stream", "/ofrep/v1/events"];

/// The route label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";
/// The flag label of evaluations of flags that do not exist.
pub const UNKNOWN_FLAG: &str = "(unknown)";

/// Upper bounds of the latency histogram's buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder on first use and returns its handle; `None` when another
/// recorder was installed first (then `/metrics` answers 503).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(build).as_ref()
}

fn build() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), LATENCY_BUCKETS);
    let recorder = match builder {
        Ok(builder) => builder.build_recorder(),
        Err(error) => {
            tracing::error!(%error, "cannot configure the metrics recorder");
            return None;
        }
    };
    let handle = recorder.handle();
    if let Err(error) = metrics::set_global_recorder(recorder) {
        tracing::warn!(%error, "another metrics recorder is installed; /metrics stays empty");
        return None;
    }
    metrics::describe_counter!(
        REQUESTS,
        "HTTP requests served, by route template and status."
    );
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time to the response head, by route template and status."
    );
    metrics::describe_counter!(
        EVALUATIONS,
        "OFREP evaluations, by flag, variant and reason."
    );
    metrics::describe_gauge!(STREAM_CONNECTIONS, "Live streams connected now, by route.");
    // Shown as 0 before the first connection, rather than missing.
    for route in STREAM_ROUTES {
        metrics::gauge!(STREAM_CONNECTIONS, "route" => route).set(0.0);
    }
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("sluice-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        // Scrapes still fold samples in; only an unscraped server keeps them longer.
        tracing::warn!(%error, "cannot start the metrics upkeep thread");
    }
    Some(handle)
}

/// `GET /metrics`.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

async fn render() -> Response {
    match install() {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are unavailable: another recorder is installed in this process\n",
        )
            .into_response(),
    }
}

/// Middleware that counts and times every request under its route template. Add it with
/// `Router::layer`, so that the matched route is known, outside the panic handler, so that
/// a panic counts as the 500 it becomes.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    // An `Arc<str>` inside: cloning it does not allocate.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    record_request(method, route, response.status(), started.elapsed());
    response
}

fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

#[derive(Clone)]
struct RequestSeries {
    count: Counter,
    duration: Histogram,
}

/// Route template, then (method, status).
type RequestMap = HashMap<Box<str>, HashMap<(&'static str, u16), RequestSeries>>;

static REQUEST_SERIES: LazyLock<Series<RequestMap>> = LazyLock::new(Series::default);

fn record_request(method: &'static str, route: &str, status: StatusCode, elapsed: Duration) {
    let code = status.as_u16();
    let seconds = elapsed.as_secs_f64();
    REQUEST_SERIES.with(
        |map| match map.get(route).and_then(|by| by.get(&(method, code))) {
            Some(series) => {
                series.count.increment(1);
                series.duration.record(seconds);
                true
            }
            None => false,
        },
        |map| {
            let status = status.as_str().to_owned();
            let labels = [
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status),
            ];
            let series = RequestSeries {
                count: metrics::counter!(REQUESTS, &labels),
                duration: metrics::histogram!(REQUEST_DURATION, &labels),
            };
            map.entry(route.into())
                .or_default()
                .insert((method, code), series);
        },
    );
}

/// The `sluice_evaluations_total` counter of one flag, variant and reason. Callers keep it:
/// [`crate::answers::Answers`] makes each once per configuration and then only adds to it.
pub fn evaluation_counter(flag: &str, variant: &str, reason: &'static str) -> Counter {
    install();
    metrics::counter!(
        EVALUATIONS,
        "flag" => flag.to_owned(),
        "variant" => variant.to_owned(),
        "reason" => reason,
    )
}

/// Counts one evaluation of a flag that does not exist.
pub fn count_unknown_flag() {
    static UNKNOWN: OnceLock<Counter> = OnceLock::new();
    UNKNOWN
        .get_or_init(|| evaluation_counter(UNKNOWN_FLAG, "", Reason::Error.as_str()))
        .increment(1);
}

/// One live stream, counted in `sluice_stream_connections` until dropped.
#[derive(Debug)]
pub struct StreamConnection(Gauge);

/// Counts a live stream on `route` (`/api/v1/stream` or `/ofrep/v1/events`) until the
/// returned value is dropped; move it into the stream.
pub fn stream_connected(route: &'static str) -> StreamConnection {
    install();
    let gauge = metrics::gauge!(STREAM_CONNECTIONS, "route" => route);
    gauge.increment(1.0);
    StreamConnection(gauge)
}

impl Drop for StreamConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A map of metric handles that readers look up without locking. A missing entry is added
/// under a lock to a copy that then replaces the map, which happens once per label
/// combination.
struct Series<T> {
    current: ArcSwap<T>,
    writer: Mutex<()>,
}

impl<T: Default> Default for Series<T> {
    fn default() -> Series<T> {
        Series {
            current: ArcSwap::from_pointee(T::default()),
            writer: Mutex::new(()),
        }
    }
}

impl<T: Clone> Series<T> {
    /// Runs `record` on the map; if it finds no entry (returns false), adds one with `add`
    /// and records again.
    fn with(&self, record: impl Fn(&T) -> bool, add: impl FnOnce(&mut T)) {
        if record(&self.current.load()) {
            return;
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.current.load_full();
        if record(&current) {
            return;
        }
        // Handles made before the recorder is installed would record nothing, forever.
        install();
        let mut next = T::clone(&current);
        add(&mut next);
        record(&next);
        self.current.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_static_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"PURGE").unwrap()),
            "OTHER"
        );
    }

    #[test]
    fn a_missing_entry_is_added_once_and_then_found() {
        let series: Series<HashMap<&'static str, u32>> = Series::default();
        let added = std::cell::Cell::new(0);
        for _ in 0..3 {
            series.with(
                |map| map.contains_key("a"),
                |map| {
                    added.set(added.get() + 1);
                    map.insert("a", 1);
                },
            );
        }
        assert_eq!(added.get(), 1);
    }
}
