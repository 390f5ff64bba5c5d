//! The connection to the server: first fetch, live stream, polling fallback, reconnects.
//!
//! One loop owns every request, so their pacing is easy to see:
//!
//! 1. Fetch `GET /api/v1/config` once.
//! 2. Follow `GET /api/v1/stream`, sending the last installed version as `Last-Event-ID`, so
//!    the server sends a configuration only when it is newer than the one served.
//! 3. When the stream fails, poll the config at once, then every poll interval (with
//!    `If-None-Match`, so an unchanged configuration costs a 304) until the reconnect delay
//!    has passed, and go back to 2. The delay backs off from 1 s to 30 s with jitter, and
//!    starts again after a stream that stayed healthy for 60 s.
//!
//! 401 and 403 end the loop: the token will not get better by retrying. 429's `Retry-After`
//! holds every request back until it has passed. Status follows what the server last said:
//! `Ready` after a configuration, a 304 or a stream connection; `Stale` (or `NotReady`,
//! with no flags yet) when it cannot be reached; `Error` for a refused token, or after a
//! malformed event or invalid configuration, which are otherwise ignored.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, IF_NONE_MATCH, RETRY_AFTER};
use serde_json::Value;
use tokio::time::{Instant, sleep_until, timeout};

use crate::client::Inner;
use crate::server::backoff::{self, Backoff, Jitter};
use crate::server::config::{self, Config};
use crate::server::{cache, sse};
use crate::{Error, Status};

/// The largest event, or poll body, accepted: far beyond any sane flag configuration.
const MAX_EVENT_BYTES: usize = 64 * 1024 * 1024;
/// The longest `Retry-After` honoured; a larger one is treated as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What the loop needs to know, fixed when the client is built.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) config_url: String,
    pub(crate) stream_url: String,
    pub(crate) token: String,
    pub(crate) poll_interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) stream_idle_timeout: Duration,
    pub(crate) cache_file: Option<PathBuf>,
}

/// Why a request or a stream ended, and whether to try again.
#[derive(Debug)]
enum Failure {
    /// The token was refused: stop.
    Fatal(Error),
    /// Anything else: report it and retry later.
    Retry(Error),
}

pub(crate) struct Connection {
    http: reqwest::Client,
    settings: Settings,
    inner: Weak<Inner>,
    /// The cache file's configuration, until something else has been served.
    fallback: Arc<Mutex<Option<Config>>>,
    /// The version last received from the server and installed: what `If-None-Match` and
    /// `Last-Event-ID` carry. Never a cached version, which may be another environment's.
    served: Option<i64>,
    /// No request before this instant: the server's `Retry-After`.
    not_before: Option<Instant>,
    jitter: Jitter,
}

impl Connection {
    pub(crate) fn new(
        http: reqwest::Client,
        settings: Settings,
        inner: Weak<Inner>,
        fallback: Arc<Mutex<Option<Config>>>,
    ) -> Connection {
        Connection {
            http,
            settings,
            inner,
            fallback,
            served: None,
            not_before: None,
            jitter: Jitter::from_entropy(),
        }
    }

    /// Runs until the token is refused or the client is dropped.
    pub(crate) async fn run(mut self) {
        let mut backoff = Backoff::new(backoff::INITIAL, backoff::CAP);
        let mut stream_next = match self.poll().await {
            Ok(()) => true,
            Err(failure) => {
                if !self.report(failure) {
                    return;
                }
                false
            }
        };
        loop {
            if self.inner.strong_count() == 0 {
                return;
            }
            if stream_next {
                let (healthy_for, failure) = self.stream().await;
                match failure {
                    Failure::Fatal(error) => {
                        self.fatal(error);
                        return;
                    }
                    // A stream that never connected says the server is unreachable; one that
                    // connected and dropped leaves that to the poll just below.
                    Failure::Retry(error) if healthy_for.is_none() => {
                        self.unreachable(error);
                    }
                    Failure::Retry(error) => {
                        tracing::debug!(%error, "the live stream ended");
                    }
                }
                if healthy_for.is_some_and(|healthy| healthy >= backoff::HEALTHY) {
                    backoff.reset();
                }
                if let Err(failure) = self.poll().await
                    && !self.report(failure)
                {
                    return;
                }
            }
            stream_next = true;
            let delay = backoff.next_delay(self.jitter.next_unit());
            let resume = Instant::now() + delay;
            tracing::debug!(?delay, "reconnecting the live stream later");
            loop {
                let next_poll = Instant::now() + self.settings.poll_interval;
                if next_poll >= resume {
                    sleep_until(resume).await;
                    break;
                }
                sleep_until(next_poll).await;
                if let Err(failure) = self.poll().await
                    && !self.report(failure)
                {
                    return;
                }
            }
        }
    }

    /// Reports a failure; returns whether to go on.
    fn report(&self, failure: Failure) -> bool {
        match failure {
            Failure::Fatal(error) => {
                self.fatal(error);
                false
            }
            Failure::Retry(error) => {
                self.unreachable(error);
                true
            }
        }
    }

    fn fatal(&self, error: Error) {
        tracing::error!(%error, "the flag server refused the token; not retrying");
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        // A refused token is no reason to serve defaults when the cache has flags.
        self.serve_fallback(&inner);
        inner.fail(error);
    }

    fn unreachable(&self, error: Error) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        self.serve_fallback(&inner);
        inner.unreachable(error);
    }

    fn serve_fallback(&self, inner: &Inner) {
        if inner.has_flags() {
            return;
        }
        let cached = self
            .fallback
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(config) = cached {
            inner.install_fallback(
                config.engine,
                config.staged,
                config.version,
                &config.environment,
            );
        }
    }

    /// Waits out any `Retry-After`.
    async fn pace(&mut self) {
        if let Some(not_before) = self.not_before.take() {
            sleep_until(not_before).await;
        }
    }

    /// One request for the configuration, conditional on the version served.
    async fn poll(&mut self) -> Result<(), Failure> {
        self.pace().await;
        let url = self.settings.config_url.clone();
        let mut request = self
            .http
            .get(&url)
            .bearer_auth(&self.settings.token)
            .header(ACCEPT, "application/json")
            .timeout(self.settings.request_timeout);
        if let Some(version) = self.served {
            request = request.header(IF_NONE_MATCH, format!("\"{version}\""));
        }
        let response = request
            .send()
            .await
            .map_err(|error| Failure::Retry(unreachable(&url, error)))?;
        if response.status() == StatusCode::NOT_MODIFIED {
            self.confirm();
            return Ok(());
        }
        let response = self.check(response, &url).await?;
        let body = response
            .bytes()
            .await
            .map_err(|error| Failure::Retry(unreachable(&url, error)))?;
        if body.len() > MAX_EVENT_BYTES {
            let error = Error::Malformed {
                origin: url.clone(),
                message: format!("the body is larger than {MAX_EVENT_BYTES} bytes"),
            };
            self.invalid(error);
            return Ok(());
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        self.accept(&text, &url);
        Ok(())
    }

    /// Connects the live stream and follows it until it fails. Returns how long it was
    /// connected, if it connected at all, and why it ended.
    async fn stream(&mut self) -> (Option<Duration>, Failure) {
        self.pace().await;
        let url = self.settings.stream_url.clone();
        let mut request = self
            .http
            .get(&url)
            .bearer_auth(&self.settings.token)
            .header(ACCEPT, "text/event-stream");
        if let Some(version) = self.served {
            request = request.header("Last-Event-ID", version.to_string());
        }
        let response = match timeout(self.settings.request_timeout, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return (None, Failure::Retry(unreachable(&url, error))),
            Err(_) => {
                return (
                    None,
                    Failure::Retry(silent(&url, self.settings.request_timeout)),
                );
            }
        };
        let mut response = match self.check(response, &url).await {
            Ok(response) => response,
            Err(failure) => return (None, failure),
        };
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !content_type.starts_with("text/event-stream") {
            // Something in the way, such as a proxy's login page: not the server's stream.
            let error = Error::Malformed {
                origin: url.clone(),
                message: format!("expected an event stream, got content type `{content_type}`"),
            };
            return (None, Failure::Retry(error));
        }
        let connected = Instant::now();
        // The server sends a configuration only if ours is older; no event means current.
        if self.served.is_some() {
            self.confirm();
        }
        let mut parser = sse::Parser::new(MAX_EVENT_BYTES);
        let mut events = Vec::new();
        loop {
            let chunk = match timeout(self.settings.stream_idle_timeout, response.chunk()).await {
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => {
                    let error = Error::Unreachable {
                        url: url.clone(),
                        message: "the server closed the live stream".to_owned(),
                        source: Box::new(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
                    };
                    return (Some(connected.elapsed()), Failure::Retry(error));
                }
                Ok(Err(error)) => {
                    return (
                        Some(connected.elapsed()),
                        Failure::Retry(unreachable(&url, error)),
                    );
                }
                Err(_) => {
                    let error = silent(&url, self.settings.stream_idle_timeout);
                    return (Some(connected.elapsed()), Failure::Retry(error));
                }
            };
            if let Err(too_large) = parser.feed(&chunk, &mut events) {
                // Reported, and the stream is dropped: the parser cannot resynchronise.
                let malformed = || Error::Malformed {
                    origin: url.clone(),
                    message: too_large.to_string(),
                };
                self.invalid(malformed());
                return (Some(connected.elapsed()), Failure::Retry(malformed()));
            }
            for event in events.drain(..) {
                if event.event == "put" {
                    self.accept(&event.data, &url);
                }
            }
        }
    }

    /// Passes a successful response; turns anything else into a failure, noting any
    /// `Retry-After`.
    async fn check(
        &mut self,
        response: reqwest::Response,
        url: &str,
    ) -> Result<reqwest::Response, Failure> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(|seconds| Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
        let message = match timeout(self.settings.request_timeout, response.text()).await {
            Ok(Ok(body)) => describe_body(&body),
            _ => String::new(),
        };
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(Failure::Fatal(Error::Unauthorized {
                url: url.to_owned(),
                status: status.as_u16(),
                message,
            }));
        }
        if let Some(delay) = retry_after {
            self.not_before = Some(Instant::now() + delay);
        }
        Err(Failure::Retry(Error::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            retry_after,
            message,
        }))
    }

    /// Installs a configuration from the server, unless it is the version already served.
    /// A malformed or invalid one is reported and ignored.
    fn accept(&mut self, text: &str, origin: &str) {
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(error) => {
                self.invalid(Error::Malformed {
                    origin: origin.to_owned(),
                    message: format!("not JSON: {error}"),
                });
                return;
            }
        };
        let version = config::version_of(&value);
        if version.is_some() && version == self.served {
            self.confirm();
            return;
        }
        let config = match config::compile(&value, text, origin) {
            Ok(config) => config,
            Err(error) => {
                self.invalid(error);
                return;
            }
        };
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let Config {
            version,
            environment,
            engine,
            staged,
            text,
        } = config;
        let flags = engine.len();
        inner.install_config(engine, staged, version, &environment, Status::Ready);
        drop(inner);
        self.served = Some(version);
        self.fallback
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        tracing::info!(
            version,
            environment,
            flags,
            "installed flags from the server"
        );
        if let Some(path) = &self.settings.cache_file
            && let Err(error) = cache::write(path, &text)
        {
            tracing::warn!(%error, "cannot update the cache file");
        }
    }

    fn invalid(&self, error: Error) {
        if let Some(inner) = self.inner.upgrade() {
            inner.fail(error);
        }
    }

    fn confirm(&self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.confirm();
        }
    }
}

fn unreachable(url: &str, error: reqwest::Error) -> Error {
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    Error::Unreachable {
        url: url.to_owned(),
        message,
        source: Box::new(error),
    }
}

fn silent(url: &str, waited: Duration) -> Error {
    Error::Unreachable {
        url: url.to_owned(),
        message: format!("no answer within {waited:?}"),
        source: Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)),
    }
}

/// The server's error message from a JSON error body, or the start of the body.
fn describe_body(body: &str) -> String {
    if let Ok(value) = serde_json::from_str::<Value>(body)
        && let Some(message) = value.get("message").and_then(Value::as_str)
    {
        return message.to_owned();
    }
    body.chars().take(200).collect()
}
