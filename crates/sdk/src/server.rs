//! Server mode: serve a Sluice server's flags, kept current over its live stream.
//!
//! The key decision is where the network work runs. A client owns one background thread
//! with its own single-threaded tokio runtime, whatever the caller uses: plain threads, a
//! tokio runtime of either flavour, or another executor. [`ServerBuilder::build`] is
//! therefore an ordinary blocking call that works everywhere, and a caller's runtime that is
//! busy or blocked can never delay a flag update (nor can the SDK's I/O slow the caller's).
//! The cost is one mostly idle thread per client; applications are expected to build one
//! client and clone it.
//!
//! The thread runs [`connection::Connection`]: a first fetch of `GET /api/v1/config`, then
//! the live stream `GET /api/v1/stream`, and while the stream is down, ETag polling of the
//! config with reconnects backing off from 1 s to 30 s. Beside it, on the same runtime, runs
//! the telemetry sender ([`crate::telemetry`]'s `flush::Flusher`), unless telemetry is off.
//! It holds the client only weakly; dropping the last clone stops the thread, after one last
//! telemetry flush of at most 500 ms, and joins it.

pub(crate) mod backoff;
mod cache;
mod config;
mod connection;
pub(crate) mod sse;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::client::{Client, Inner, Origin};
use crate::telemetry::{self, DEFAULT_FLUSH_INTERVAL, Telemetry, flush};
use crate::{Error, Status, overrides};

/// How long [`ServerBuilder::build`] waits for the first configuration, by default.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the configuration is polled while the live stream is down, by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// How long opening a TCP connection may take, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request may take to answer (a poll, in full; the stream, up to its headers).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the live stream may stay silent before it is presumed dead, by default. The
/// server sends a heartbeat every 15 s unless configured otherwise.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// How long dropping the last clone of a client waits for its last telemetry flush.
const FINAL_FLUSH_BOUND: Duration = Duration::from_millis(500);

/// Configures a client that serves a Sluice server's flags: from [`Client::server_builder`]
/// or `Client::builder().server(url)`.
///
/// The token is a server token: it selects the environment and lets the client read its
/// full configuration.
///
/// ```no_run
/// use std::time::Duration;
///
/// let client = sluice::Client::builder()
///     .server("http://flags.internal:8470")
///     .token(std::env::var("SLUICE_TOKEN").unwrap_or_default())
///     .init_timeout(Duration::from_secs(2))
///     .cache_file("/var/cache/myapp/flags.json")
///     .build()?;
/// # Ok::<(), sluice::Error>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct ServerBuilder {
    url: String,
    token: Option<String>,
    init_timeout: Duration,
    cache_file: Option<PathBuf>,
    poll_interval: Duration,
    connect_timeout: Duration,
    request_timeout: Duration,
    stream_idle_timeout: Duration,
    variables: Option<Vec<(String, String)>>,
    telemetry: bool,
    flush_interval: Duration,
    crash_hook: bool,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("init_timeout", &self.init_timeout)
            .field("cache_file", &self.cache_file)
            .field("poll_interval", &self.poll_interval)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("stream_idle_timeout", &self.stream_idle_timeout)
            .field("telemetry", &self.telemetry)
            .field("flush_interval", &self.flush_interval)
            .field("crash_hook", &self.crash_hook)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    pub(crate) fn new(url: String) -> ServerBuilder {
        ServerBuilder {
            url,
            token: None,
            init_timeout: DEFAULT_INIT_TIMEOUT,
            cache_file: None,
            poll_interval: DEFAULT_POLL_INTERVAL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
            variables: None,
            telemetry: true,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            crash_hook: false,
        }
    }

    /// The server token (sent as `Authorization: Bearer`). Required.
    pub fn token(mut self, secret: impl Into<String>) -> ServerBuilder {
        self.token = Some(secret.into());
        self
    }

    /// How long [`ServerBuilder::build`] waits for the first configuration; 5 s by default.
    /// `Duration::ZERO` returns at once. Either way the client keeps trying in the background.
    pub fn init_timeout(mut self, timeout: Duration) -> ServerBuilder {
        self.init_timeout = timeout;
        self
    }

    /// Keeps the last configuration in this file, replaced atomically after each change, and
    /// serves it (status `Stale`) when the server cannot be reached at start. Use one file
    /// per client.
    pub fn cache_file(mut self, path: impl Into<PathBuf>) -> ServerBuilder {
        self.cache_file = Some(path.into());
        self
    }

    /// How often to poll the configuration while the live stream is down; 10 s by default.
    pub fn poll_interval(mut self, interval: Duration) -> ServerBuilder {
        self.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How long opening a connection may take; 5 s by default.
    pub fn connect_timeout(mut self, timeout: Duration) -> ServerBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// How long the server may take to answer: a poll in full, the stream up to its first
    /// byte of headers; 10 s by default.
    pub fn request_timeout(mut self, timeout: Duration) -> ServerBuilder {
        self.request_timeout = timeout;
        self
    }

    /// How long the live stream may stay silent (no event, no heartbeat) before the client
    /// drops it and reconnects; 45 s by default. Keep it above the server's heartbeat.
    pub fn stream_idle_timeout(mut self, timeout: Duration) -> ServerBuilder {
        self.stream_idle_timeout = timeout;
        self
    }

    /// Whether to report telemetry (exposures, errors, latencies, events, crashes and the
    /// configuration version applied) to the server's `POST /api/v1/metrics`; on by default.
    /// Off, the telemetry methods do nothing, as in file mode. See [`crate::telemetry`].
    pub fn telemetry(mut self, enabled: bool) -> ServerBuilder {
        self.telemetry = enabled;
        self
    }

    /// How often to send telemetry; 10 s by default. A new configuration is acknowledged at
    /// once whatever the interval.
    pub fn flush_interval(mut self, interval: Duration) -> ServerBuilder {
        self.flush_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Installs the crash hook when the client is built: see [`crate::install_crash_hook`].
    /// Off by default; needs telemetry.
    pub fn crash_hook(mut self, enabled: bool) -> ServerBuilder {
        self.crash_hook = enabled;
        self
    }

    /// Reads `SLUICE_FLAG_*` overrides from these pairs instead of the process environment.
    /// Pass an empty list to ignore the environment.
    pub fn env_vars<I, K, V>(mut self, variables: I) -> ServerBuilder
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let pairs = variables
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()));
        self.variables = Some(pairs.collect());
        self
    }

    /// Starts the client and waits, at most the init timeout, for its first configuration.
    ///
    /// It returns as soon as the client is `Ready`, or the server refused the token
    /// (`Error`), or the server could not be reached and the cache file was loaded
    /// (`Stale`). When the timeout passes first it loads the cache file if there is one,
    /// and returns anyway: the client keeps trying in the background, and evaluations serve
    /// callers' defaults with `PROVIDER_NOT_READY` until flags arrive. Check
    /// [`Client::status`], or wait with [`Client::wait_ready`] or [`Client::subscribe`].
    ///
    /// Fails only on configuration mistakes: no token, a URL that is not `http(s)://`, or
    /// a thread that cannot be started. (An HTTP client that cannot be created, which would
    /// be a broken TLS setup, is reported as status `Error`.) It blocks the calling thread, so in
    /// async code call it from `spawn_blocking`, or with a zero init timeout and then await
    /// [`crate::StatusReceiver::changed`].
    pub fn build(self) -> Result<Client, Error> {
        let started = Instant::now();
        let token = match self.token {
            Some(token) if !token.trim().is_empty() => token,
            _ => {
                return Err(Error::Config(
                    "a server client needs a token: call `.token(secret)` with a server token"
                        .to_owned(),
                ));
            }
        };
        let base = parse_base(&self.url)?;
        let variables = self
            .variables
            .unwrap_or_else(overrides::process_environment);
        let requested = overrides::read(variables);
        // Built on the connection thread: loading the platform's root certificates can take
        // tens of milliseconds, which should not count against the init timeout.
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(concat!("sluice-rust/", env!("CARGO_PKG_VERSION")));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| {
                Error::Config(format!("cannot create the client's runtime: {error}"))
            })?;

        // The cache is read now, but served only if the server does not answer first.
        let fallback = match &self.cache_file {
            Some(path) => match cache::read(path) {
                Ok(config) => config,
                Err(error) => {
                    tracing::warn!(%error, "ignoring the cache file");
                    None
                }
            },
            None => None,
        };
        let fallback = Arc::new(Mutex::new(fallback));

        let telemetry = self.telemetry.then(|| Arc::new(Telemetry::new()));
        let flush_settings = flush::Settings {
            url: join(&base, "api/v1/metrics"),
            token: token.clone(),
            interval: self.flush_interval,
            request_timeout: self.request_timeout,
        };
        let inner = Arc::new(Inner::new(
            Origin::Server(self.url.clone()),
            None,
            requested,
            telemetry.clone(),
        ));
        let settings = connection::Settings {
            config_url: join(&base, "api/v1/config"),
            stream_url: join(&base, "api/v1/stream"),
            token,
            poll_interval: self.poll_interval,
            request_timeout: self.request_timeout,
            stream_idle_timeout: self.stream_idle_timeout,
            cache_file: self.cache_file.clone(),
        };
        let weak = Arc::downgrade(&inner);
        let shared_fallback = Arc::clone(&fallback);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name("sluice-server".to_owned())
            .spawn(move || {
                telemetry::flush::mark_background_thread();
                let http = match http.build() {
                    Ok(http) => http,
                    Err(error) => {
                        if let Some(inner) = weak.upgrade() {
                            let message = format!("cannot create the HTTP client: {error}");
                            inner.fail(Error::Config(message));
                        }
                        return;
                    }
                };
                let mut flusher = telemetry
                    .map(|telemetry| flush::Flusher::new(telemetry, http.clone(), flush_settings));
                let connection = connection::Connection::new(http, settings, weak, shared_fallback);
                runtime.block_on(async move {
                    tokio::select! {
                        () = connection.run() => {}
                        () = flush::run(flusher.as_mut()) => {}
                        _ = stopped => {}
                    }
                    // What was gathered since the last flush, best-effort.
                    if let Some(flusher) = flusher.as_mut() {
                        let _ = tokio::time::timeout(FINAL_FLUSH_BOUND, flusher.finish()).await;
                    }
                });
                // Nothing spawned on the runtime may keep the thread (or a join) waiting.
                runtime.shutdown_background();
            })
            .map_err(|error| Error::Config(format!("cannot start the client's thread: {error}")))?;
        inner.set_background(Box::new(Background {
            stop: Some(stop),
            thread: Some(thread),
        }));

        if self.crash_hook {
            crate::install_crash_hook(&Client::from_inner(Arc::clone(&inner)));
        }
        let remaining = self.init_timeout.saturating_sub(started.elapsed());
        let status = inner
            .status()
            .wait_for(remaining, |status| status != Status::NotReady);
        if status == Status::NotReady {
            let cached = fallback
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
        Ok(Client::from_inner(inner))
    }
}

/// The server's base URL, which must be `http` or `https`, with a trailing slash so that
/// API paths join under any path prefix it has.
fn parse_base(url: &str) -> Result<reqwest::Url, Error> {
    let mut base = reqwest::Url::parse(url.trim())
        .map_err(|error| Error::Config(format!("the server URL `{url}` is invalid: {error}")))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "the server URL `{url}` must start with http:// or https://"
        )));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.set_query(None);
    base.set_fragment(None);
    Ok(base)
}

fn join(base: &reqwest::Url, path: &str) -> String {
    base.join(path)
        .map_or_else(|_| format!("{base}{path}"), |url| url.to_string())
}

/// The connection thread; dropping it stops the connection and waits for the thread.
struct Background {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // The connection itself may drop the last reference, while installing flags.
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_gain_a_trailing_slash_and_keep_their_prefix() {
        let base = parse_base("http://127.0.0.1:8470").unwrap();
        assert_eq!(
            join(&base, "api/v1/config"),
            "http://127.0.0.1:8470/api/v1/config"
        );
        let base = parse_base("https://edge.example/sluice?x=1#top").unwrap();
        assert_eq!(
            join(&base, "api/v1/stream"),
            "https://edge.example/sluice/api/v1/stream"
        );
        let base = parse_base(" https://edge.example/sluice/ ").unwrap();
        assert_eq!(
            join(&base, "api/v1/stream"),
            "https://edge.example/sluice/api/v1/stream"
        );
    }

    #[test]
    fn bad_configurations_fail_fast() {
        for url in ["flags.internal:8470", "ftp://flags.internal", "not a url"] {
            let error = ServerBuilder::new(url.to_owned())
                .token("t")
                .build()
                .unwrap_err();
            assert!(matches!(error, Error::Config(_)), "{url}: {error}");
        }
        let error = ServerBuilder::new("http://127.0.0.1:1".to_owned())
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("needs a token"), "{error}");
        let error = ServerBuilder::new("http://127.0.0.1:1".to_owned())
            .token(" ")
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("needs a token"), "{error}");
    }

    #[test]
    fn the_token_is_redacted_in_debug_output() {
        let builder = ServerBuilder::new("http://x".to_owned()).token("s3cret");
        let debug = format!("{builder:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }
}
