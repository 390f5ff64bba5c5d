//! The sender: drains, batches and posts telemetry from the client's background thread.
//!
//! It runs on the same small runtime as the server connection and wakes:
//!
//! - at every bucket boundary, to move the exposure counters into the aggregator under the
//!   bucket they were counted in;
//! - every flush interval, at once when a new configuration has been applied (so the server
//!   hears which version the instance runs), and when a flush is asked for: then it drains,
//!   makes batches and sends them. A flush with nothing to report still sends a batch: the
//!   instance's heartbeat.
//!
//! Batches wait in a queue of at most [`MAX_PENDING_BATCHES`], oldest dropped (and counted)
//! beyond it, and are sent oldest first. A failed send (no answer, 5xx, 408, 429) is retried
//! with the same batch id after a backoff from 1 s to 30 s with jitter (429's `Retry-After`
//! when longer), at most [`MAX_ATTEMPTS`] times. Any other 4xx drops the batch; 401 and 403
//! stop telemetry for good, as they stop the connection.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use sluice_core::telemetry::{BUCKET_MS, bucket_start};
use tokio::time::{Instant, sleep_until};

use crate::server::backoff::{self, Backoff, Jitter};
use crate::telemetry::batch::{self, Pending};
use crate::telemetry::{MAX_PENDING_BATCHES, Telemetry, now_ms};

/// The most attempts at one batch before it is dropped.
pub(crate) const MAX_ATTEMPTS: u32 = 20;

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// How long after a bucket boundary the counters are drained, so that the boundary has
/// surely passed on the wall clock.
const AFTER_BOUNDARY: Duration = Duration::from_millis(5);

thread_local! {
    static BACKGROUND: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as a client's background thread, which must never wait for a
/// flush, since it is the one that flushes.
pub(crate) fn mark_background_thread() {
    BACKGROUND.with(|flag| flag.set(true));
}

pub(crate) fn on_background_thread() -> bool {
    BACKGROUND.with(Cell::get)
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) interval: Duration,
    pub(crate) request_timeout: Duration,
}

/// How one send went.
#[derive(Debug)]
enum Outcome {
    Accepted,
    /// 401 or 403: stop.
    Refused(StatusCode),
    /// Another 4xx: this batch will never be accepted.
    Rejected(StatusCode, String),
    /// Worth retrying; with the `Retry-After` the server asked for, if any.
    Failed(String, Option<Duration>),
}

#[derive(Debug)]
pub(crate) struct Flusher {
    telemetry: Arc<Telemetry>,
    http: reqwest::Client,
    settings: Settings,
    pending: VecDeque<Pending>,
    backoff: Backoff,
    jitter: Jitter,
    /// No send before this instant, after a failure.
    retry_at: Option<Instant>,
    next_flush: Instant,
    /// When the counters were last drained, Unix milliseconds: what they hold since was
    /// counted in that bucket.
    last_drain_ms: i64,
}

impl Flusher {
    pub(crate) fn new(
        telemetry: Arc<Telemetry>,
        http: reqwest::Client,
        settings: Settings,
    ) -> Self {
        Flusher {
            telemetry,
            http,
            next_flush: Instant::now() + settings.interval,
            settings,
            pending: VecDeque::new(),
            backoff: Backoff::new(backoff::INITIAL, backoff::CAP),
            jitter: Jitter::from_entropy(),
            retry_at: None,
            last_drain_ms: now_ms(),
        }
    }

    /// Runs until the server refuses the token, then waits forever (the caller's other work
    /// goes on). Stop it by dropping the future.
    pub(crate) async fn run(&mut self) {
        loop {
            if self.telemetry.is_stopped() {
                std::future::pending::<()>().await;
            }
            let wake_at = self.next_wake();
            tokio::select! {
                () = sleep_until(wake_at) => {}
                () = self.telemetry.wake.notified() => {}
            }
            self.step().await;
        }
    }

    /// When to wake next: the next bucket boundary, flush or retry, whichever is first.
    fn next_wake(&self) -> Instant {
        let now_ms = now_ms();
        let to_boundary = bucket_start(now_ms) + BUCKET_MS - now_ms;
        let boundary = Instant::now()
            + Duration::from_millis(u64::try_from(to_boundary).unwrap_or(0))
            + AFTER_BOUNDARY;
        let mut wake = boundary.min(self.next_flush);
        if let Some(retry_at) = self.retry_at {
            wake = wake.min(retry_at);
        }
        wake
    }

    /// Does whatever is due.
    async fn step(&mut self) {
        let ticket = self.telemetry.requested();
        let asked = self.telemetry.flush_wanted();
        let ack = self.telemetry.ack_due.swap(false, Ordering::Relaxed);
        let now = Instant::now();
        let due = asked || ack || now >= self.next_flush;
        if due {
            self.enqueue();
            self.next_flush = now + self.settings.interval;
        } else {
            self.drain();
        }
        let retry_due = self.retry_at.is_none_or(|at| at <= now);
        if !self.pending.is_empty() && (asked || retry_due) {
            self.send().await;
        }
        self.telemetry.complete(ticket, self.pending.is_empty());
    }

    /// Moves the counters into the aggregator.
    fn drain(&mut self) {
        let now_ms = now_ms();
        self.telemetry.drain(bucket_start(self.last_drain_ms));
        self.last_drain_ms = now_ms;
    }

    /// Turns everything gathered into batches at the back of the queue.
    fn enqueue(&mut self) {
        let now_ms = now_ms();
        let contents = self.telemetry.collect(bucket_start(self.last_drain_ms));
        self.last_drain_ms = now_ms;
        let instance = self.telemetry.instance();
        let (batches, lost) =
            batch::assemble(contents, &instance, self.telemetry.dropped(), now_ms);
        self.telemetry.add_dropped(lost);
        for batch in batches {
            // A heartbeat adds nothing to a queue whose last batch reports the same version.
            if batch.empty
                && self
                    .pending
                    .back()
                    .is_some_and(|last| last.version == batch.version)
            {
                continue;
            }
            if self.pending.len() >= MAX_PENDING_BATCHES
                && let Some(oldest) = self.pending.pop_front()
            {
                self.telemetry.add_dropped(oldest.observations);
            }
            self.pending.push_back(batch);
        }
        self.publish_pending();
    }

    fn publish_pending(&self) {
        self.telemetry
            .pending
            .store(self.pending.len(), Ordering::Relaxed);
    }

    /// Sends the queue, oldest first, until it is empty or a send fails.
    async fn send(&mut self) {
        while let Some(front) = self.pending.front() {
            let outcome = self.post(front).await;
            match outcome {
                Outcome::Accepted => {
                    self.pending.pop_front();
                    self.telemetry.sent.fetch_add(1, Ordering::Relaxed);
                    self.backoff.reset();
                    self.retry_at = None;
                }
                Outcome::Refused(status) => {
                    tracing::error!(%status, "the flag server refused the token for telemetry; not sending any more");
                    let lost: u64 = self.pending.drain(..).map(|p| p.observations).sum();
                    self.telemetry.add_dropped(lost);
                    self.publish_pending();
                    self.telemetry.stop();
                    return;
                }
                Outcome::Rejected(status, message) => {
                    tracing::warn!(%status, message, "the flag server rejected a telemetry batch; dropping it");
                    if let Some(rejected) = self.pending.pop_front() {
                        self.telemetry.add_dropped(rejected.observations);
                    }
                }
                Outcome::Failed(error, retry_after) => {
                    self.telemetry.failed.fetch_add(1, Ordering::Relaxed);
                    let mut give_up = false;
                    if let Some(front) = self.pending.front_mut() {
                        front.attempts += 1;
                        give_up = front.attempts >= MAX_ATTEMPTS;
                        tracing::debug!(error, batch = %front.id, attempts = front.attempts, "sending telemetry failed");
                    }
                    if give_up && let Some(failed) = self.pending.pop_front() {
                        tracing::warn!(error, batch = %failed.id, "dropping a telemetry batch after {MAX_ATTEMPTS} attempts");
                        self.telemetry.add_dropped(failed.observations);
                    }
                    let delay = self
                        .backoff
                        .next_delay(self.jitter.next_unit())
                        .max(retry_after.unwrap_or_default());
                    self.retry_at = Some(Instant::now() + delay);
                    break;
                }
            }
        }
        self.publish_pending();
    }

    async fn post(&self, batch: &Pending) -> Outcome {
        let mut request = self
            .http
            .post(&self.settings.url)
            .bearer_auth(&self.settings.token)
            .header(CONTENT_TYPE, "application/json")
            .timeout(self.settings.request_timeout);
        if batch.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let request = request.body(batch.body.clone());
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Outcome::Failed(error.to_string(), None),
        };
        let status = response.status();
        if status.is_success() {
            return Outcome::Accepted;
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(|seconds| Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
        let body = response.text().await.unwrap_or_default();
        let message: String = body.chars().take(200).collect();
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Outcome::Refused(status),
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                Outcome::Failed(format!("{status}: {message}"), retry_after)
            }
            status if status.is_client_error() => Outcome::Rejected(status, message),
            status => Outcome::Failed(format!("{status}: {message}"), retry_after),
        }
    }

    /// The last flush, when the client is dropped: everything gathered, sent once more
    /// whatever the backoff says. The caller bounds how long it may take.
    pub(crate) async fn finish(&mut self) {
        if self.telemetry.is_stopped() {
            return;
        }
        let ticket = self.telemetry.requested();
        self.enqueue();
        self.send().await;
        self.telemetry.complete(ticket, self.pending.is_empty());
    }
}

/// Runs `flusher`, or waits forever without one.
pub(crate) async fn run(flusher: Option<&mut Flusher>) {
    match flusher {
        Some(flusher) => flusher.run().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use sluice_core::telemetry::MetricsBatch;
    use sluice_core::{Context, Format, Source};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A stub metrics endpoint: answers each request with the next status of its script
    /// (then 200), and keeps every body it received.
    struct Stub {
        url: String,
        bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    async fn stub(script: Vec<u16>) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v1/metrics", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&bodies);
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buffer = [0_u8; 8192];
                let body = loop {
                    let read = socket.read(&mut buffer).await.unwrap();
                    assert!(read > 0, "the request ended early");
                    request.extend_from_slice(&buffer[..read]);
                    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .map_or(0, |value| value.trim().parse().unwrap());
                    if request.len() >= end + 4 + length {
                        break request[end + 4..end + 4 + length].to_vec();
                    }
                };
                seen.lock().unwrap().push(body);
                let status = script.lock().unwrap().pop_front().unwrap_or(200);
                let answer = format!(
                    "HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
                socket.write_all(answer.as_bytes()).await.unwrap();
                let _ = socket.shutdown().await;
            }
        });
        Stub { url, bodies }
    }

    /// Telemetry with one exposure counted, and a flusher to `url`.
    fn flusher(url: &str) -> Flusher {
        let telemetry = Arc::new(Telemetry::new());
        let engine = Source::parse(
            Some("t.json"),
            r#"{"flags": {"a": {"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "on"}}}"#,
            Format::Json,
        )
        .and_then(|source| source.compile(None))
        .unwrap();
        let table = telemetry.table_for(&engine, 4);
        telemetry.applied(4);
        let (flag, slot) = table
            .locate(&engine.evaluate("a", &Context::default()))
            .unwrap();
        table.expose(flag, slot);
        let settings = Settings {
            url: url.to_owned(),
            token: "t".into(),
            interval: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(5),
        };
        Flusher::new(telemetry, reqwest::Client::new(), settings)
    }

    fn batch(body: &[u8]) -> MetricsBatch {
        serde_json::from_slice(body).unwrap()
    }

    #[tokio::test]
    async fn a_failed_batch_is_retried_with_the_same_id_and_body() {
        let stub = stub(vec![503]).await;
        let mut flusher = flusher(&stub.url);
        flusher.enqueue();
        flusher.send().await;
        assert_eq!(flusher.pending.len(), 1);
        assert_eq!(flusher.pending[0].attempts, 1);
        assert!(flusher.retry_at.is_some());
        let stats = flusher.telemetry.stats();
        assert_eq!(
            (
                stats.failed_attempts,
                stats.batches_sent,
                stats.pending_batches
            ),
            (1, 0, 1)
        );

        // A heartbeat is not queued behind a batch that reports the same version.
        flusher.enqueue();
        assert_eq!(flusher.pending.len(), 1);
        flusher.send().await;
        assert!(flusher.pending.is_empty());
        assert!(flusher.retry_at.is_none());
        let stats = flusher.telemetry.stats();
        assert_eq!(
            (
                stats.failed_attempts,
                stats.batches_sent,
                stats.pending_batches
            ),
            (1, 1, 0)
        );

        let bodies = stub.bodies.lock().unwrap().clone();
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0], bodies[1], "a retry sends the same bytes");
        let sent = batch(&bodies[0]);
        assert_eq!(sent.batch_id.len(), 32);
        assert_eq!(sent.instance.config_version, Some(4));
        assert_eq!(sent.instance.id, flusher.telemetry.instance_id());
        assert_eq!(sent.buckets.len(), 1);
        assert_eq!(sent.buckets[0].exposures, 1);
        assert_eq!(sent.buckets[0].config_version, 4);
    }

    #[tokio::test]
    async fn nothing_to_report_still_sends_a_heartbeat() {
        let stub = stub(vec![]).await;
        let mut flusher = flusher(&stub.url);
        flusher.enqueue();
        flusher.send().await;
        flusher.enqueue();
        flusher.send().await;
        let bodies = stub.bodies.lock().unwrap().clone();
        assert_eq!(bodies.len(), 2);
        let (first, second) = (batch(&bodies[0]), batch(&bodies[1]));
        assert_ne!(first.batch_id, second.batch_id);
        assert!(second.buckets.is_empty());
        assert_eq!(second.instance.config_version, Some(4));
    }

    #[tokio::test]
    async fn a_refused_token_stops_telemetry_and_counts_what_was_lost() {
        let stub = stub(vec![401]).await;
        let mut flusher = flusher(&stub.url);
        flusher.enqueue();
        flusher.send().await;
        let stats = flusher.telemetry.stats();
        assert!(stats.stopped);
        assert_eq!((stats.dropped, stats.pending_batches), (1, 0));
        assert!(!flusher.telemetry.flush_blocking(Duration::from_secs(1)));
        // Stopped, it never returns, and sends nothing more.
        let ran = tokio::time::timeout(Duration::from_millis(100), flusher.run()).await;
        assert!(ran.is_err());
        assert_eq!(stub.bodies.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_rejected_batch_is_dropped_and_counted() {
        let stub = stub(vec![400]).await;
        let mut flusher = flusher(&stub.url);
        flusher.enqueue();
        flusher.send().await;
        let stats = flusher.telemetry.stats();
        assert!(!stats.stopped);
        assert_eq!(
            (stats.dropped, stats.pending_batches, stats.batches_sent),
            (1, 0, 0)
        );
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_drops_the_oldest() {
        // Nothing listens on port 1 of localhost: every send fails at once.
        let mut flusher = flusher("http://127.0.0.1:1/api/v1/metrics");
        let telemetry = Arc::clone(&flusher.telemetry);
        crate::telemetry::active::clear();
        for _ in 0..MAX_PENDING_BATCHES + 5 {
            telemetry.crash("boom".into(), None);
            flusher.enqueue();
        }
        assert_eq!(flusher.pending.len(), MAX_PENDING_BATCHES);
        // The oldest five went: the first held the exposure and a crash report, the others a
        // crash report each.
        assert_eq!(telemetry.stats().dropped, 6);
        flusher.send().await;
        assert_eq!(telemetry.stats().failed_attempts, 1);
        assert_eq!(flusher.pending.len(), MAX_PENDING_BATCHES);
    }

    #[tokio::test]
    async fn a_blocking_flush_waits_for_the_loop() {
        let stub = stub(vec![]).await;
        let mut flusher = flusher(&stub.url);
        let telemetry = Arc::clone(&flusher.telemetry);
        let waiter = std::thread::spawn(move || telemetry.flush_blocking(Duration::from_secs(10)));
        let running = tokio::spawn(async move { flusher.run().await });
        let delivered = tokio::task::spawn_blocking(move || waiter.join().unwrap())
            .await
            .unwrap();
        running.abort();
        assert!(delivered);
        let bodies = stub.bodies.lock().unwrap().clone();
        assert!(!bodies.is_empty());
        let exposures: u64 = bodies
            .iter()
            .flat_map(|body| batch(body).buckets)
            .map(|bucket| bucket.exposures)
            .sum();
        assert_eq!(exposures, 1);
    }
}
