//! The client: the flags currently served, how they got there, and evaluation over them.
//!
//! A [`Client`] is a cheap handle on shared state. The flags live in an `ArcSwap` holding the
//! current [`Snapshot`], an immutable compiled configuration plus the environment overrides
//! resolved against it. Evaluation loads the snapshot without locking and evaluates through
//! core; a reload builds a new snapshot and swaps it in whole, so a reader sees the old flags
//! or the new ones, never a mixture. Whatever feeds the snapshot (a file watcher, or a server
//! connection) only calls the `Inner` methods that install flags and report status, which
//! hold a small lock so that a snapshot and the status that describes it change together.
//!
//! The typed accessors skip even the `ArcSwap` load when they can: each thread keeps the
//! snapshot it last evaluated in a thread-local cache, tagged with a process-wide unique
//! generation, and uses it while the client's current generation (one atomic load) still
//! matches. A reload publishes a new generation after the new snapshot, so the next read on
//! every thread misses and loads the new one. The price is that an idle thread keeps the last
//! snapshot it used alive (one per thread) until it evaluates again or exits.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::{ArcSwapOption, Guard};
use serde_json::Value;
use sluice_core::{Context, Engine, Evaluation, Reason, Typed};

use crate::details::Details;
use crate::dry_run::{Active, StagedRun};
use crate::file::FileBuilder;
use crate::overrides::{self, Override, OverrideWarning, Requested};
use crate::server::ServerBuilder;
use crate::status::{StatusPublisher, StatusReceiver};
use crate::telemetry::Telemetry;
use crate::telemetry::counters::Counters;
use crate::{Error, Status};

/// A loaded snapshot, if any: what evaluation reads.
pub(crate) type SnapshotGuard = Guard<Option<Arc<Snapshot>>>;

/// A compiled configuration and the overrides resolved against it. Never changed once built.
#[derive(Debug)]
pub(crate) struct Snapshot {
    engine: Engine,
    overrides: overrides::Resolved,
    /// The server's configuration version; `None` for a file.
    version: Option<i64>,
    /// Exposure and error counters, with telemetry on.
    counters: Option<Arc<Counters>>,
    /// Running dry runs, with telemetry on.
    dry_runs: Active,
    /// Unique in the process: what the thread-local cache recognises it by.
    generation: u64,
}

/// Snapshot generations; 0 means none.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The snapshot this thread evaluated last, of whichever client.
    static LAST_SNAPSHOT: RefCell<Option<Arc<Snapshot>>> = const { RefCell::new(None) };
}

impl Snapshot {
    fn new(
        engine: Engine,
        requested: &[Requested],
        version: Option<i64>,
        counters: Option<Arc<Counters>>,
        dry_runs: Active,
    ) -> Snapshot {
        let overrides = overrides::resolve(&engine, requested);
        Snapshot {
            engine,
            overrides,
            version,
            counters,
            dry_runs,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn counters(&self) -> Option<&Arc<Counters>> {
        self.counters.as_ref()
    }

    /// The server's configuration version; `None` for a file.
    pub(crate) fn version(&self) -> Option<i64> {
        self.version
    }

    /// Counts an exposure of what `evaluation` served for `context`, with telemetry on, and
    /// evaluates the flag's staged rules when it has a running dry run.
    #[inline]
    pub(crate) fn expose(&self, evaluation: &Evaluation<'_>, context: &Context) {
        if let Some(counters) = &self.counters
            && let Some((flag, slot)) = counters.locate(evaluation)
        {
            counters.expose(flag, slot);
        }
        self.dry_runs.observe(evaluation, context);
    }

    /// A typed value through core's typed accessor `typed` (which writes its result in
    /// place), counting the exposure when the variant's value was served.
    #[inline(always)]
    fn typed<'a, T: Copy>(
        &'a self,
        flag: &str,
        context: &Context,
        default: T,
        typed: impl FnOnce(&'a Engine, &str, &Context, T) -> Typed<'a, T>,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> T {
        if !self.overrides.forced.is_empty() && self.overrides.forced.contains_key(flag) {
            let (evaluation, _) = self.evaluate(flag, context);
            return match evaluation.value.and_then(convert) {
                Some(value) => {
                    self.expose(&evaluation, context);
                    value
                }
                None => default,
            };
        }
        let result = typed(&self.engine, flag, context, default);
        // A type mismatch clears the value: the caller got the default, not the variant.
        if result.details.value.is_some() {
            self.expose(&result.details, context);
        }
        result.value
    }

    /// Evaluates one flag; the flag is `true` when an environment override decided.
    #[inline]
    pub(crate) fn evaluate<'a>(&'a self, flag: &str, context: &Context) -> (Evaluation<'a>, bool) {
        if !self.overrides.forced.is_empty()
            && let Some(forced) = self.overrides.forced.get(flag)
        {
            let evaluation = Evaluation {
                value: Some(&forced.value),
                variant: Some(&forced.variant),
                reason: Reason::Static,
                error: None,
                error_message: None,
                rule: None,
                segment: None,
                prerequisite: None,
                flag: self.engine.info(flag),
            };
            return (evaluation, true);
        }
        (self.engine.evaluate(flag, context), false)
    }
}

/// Where a client's flags come from.
#[derive(Debug)]
pub(crate) enum Origin {
    /// A flags file, as named to the builder.
    File(PathBuf),
    /// A Sluice server, by its base URL.
    Server(String),
}

/// The state every clone of a client shares.
pub(crate) struct Inner {
    snapshot: ArcSwapOption<Snapshot>,
    /// The generation of the snapshot in `snapshot`, published after it; 0 for none.
    generation: AtomicU64,
    status: StatusPublisher,
    requested: Vec<Requested>,
    /// Given to a file builder, or learned from the server's first configuration.
    environment: OnceLock<String>,
    origin: Origin,
    /// Held while the snapshot and the status change together.
    installing: Mutex<()>,
    /// The background work that keeps the flags current (a file watch, a server connection);
    /// it stops when this is dropped.
    background: Mutex<Option<Box<dyn Send>>>,
    /// Telemetry, for a server client with telemetry on.
    telemetry: Option<Arc<Telemetry>>,
    /// The shadow experiment workers, started by the first background experiment.
    shadow: OnceLock<crate::experiment::Runner>,
}

impl Inner {
    pub(crate) fn new(
        origin: Origin,
        environment: Option<String>,
        requested: Vec<Requested>,
        telemetry: Option<Arc<Telemetry>>,
    ) -> Inner {
        let known = OnceLock::new();
        if let Some(environment) = environment {
            let _ = known.set(environment);
        }
        Inner {
            snapshot: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            status: StatusPublisher::new(Status::NotReady),
            requested,
            environment: known,
            origin,
            installing: Mutex::new(()),
            background: Mutex::new(None),
            telemetry,
            shadow: OnceLock::new(),
        }
    }

    /// The shadow workers, started on first use.
    pub(crate) fn shadow_runner(&self) -> &crate::experiment::Runner {
        self.shadow.get_or_init(crate::experiment::Runner::start)
    }

    pub(crate) fn telemetry(&self) -> Option<&Arc<Telemetry>> {
        self.telemetry.as_ref()
    }

    /// The snapshot served now, if any.
    pub(crate) fn snapshot(&self) -> SnapshotGuard {
        self.snapshot.load()
    }

    pub(crate) fn set_background(&self, handle: Box<dyn Send>) {
        *self
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(handle);
    }

    fn installing(&self) -> MutexGuard<'_, ()> {
        self.installing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn status(&self) -> &StatusPublisher {
        &self.status
    }

    /// Whether any flags are served.
    pub(crate) fn has_flags(&self) -> bool {
        self.snapshot.load().is_some()
    }

    /// Serves `engine` from now on, and reports the client `Ready` with no error.
    pub(crate) fn install(&self, engine: Engine) {
        let _installing = self.installing();
        self.swap_in(engine, Vec::new(), None);
        self.status.set(Status::Ready, None);
    }

    /// Serves a server configuration from now on, reported with `status` and no error.
    pub(crate) fn install_config(
        &self,
        engine: Engine,
        staged: Vec<StagedRun>,
        version: i64,
        environment: &str,
        status: Status,
    ) {
        let _installing = self.installing();
        self.learn_environment(environment);
        self.swap_in(engine, staged, Some(version));
        self.status.set(status, None);
    }

    /// Serves a configuration from the cache file, reported `Stale`, but only while no flags
    /// are served: a server's answer always wins over the cache. Returns whether it did.
    pub(crate) fn install_fallback(
        &self,
        engine: Engine,
        staged: Vec<StagedRun>,
        version: i64,
        environment: &str,
    ) -> bool {
        let _installing = self.installing();
        if self.has_flags() {
            return false;
        }
        self.learn_environment(environment);
        self.swap_in(engine, staged, Some(version));
        self.status.set(Status::Stale, None);
        tracing::warn!(
            version,
            "serving flags from the cache file until the server answers"
        );
        true
    }

    fn learn_environment(&self, environment: &str) {
        if let Err(other) = self.environment.set(environment.to_owned())
            && self.environment.get().map(String::as_str) != Some(environment)
        {
            tracing::warn!(
                first = self.environment.get().map(String::as_str).unwrap_or_default(),
                now = %other,
                "the server's environment differs from the one first served"
            );
        }
    }

    fn swap_in(&self, engine: Engine, staged: Vec<StagedRun>, version: Option<i64>) {
        let (counters, dry_runs) = match (&self.telemetry, version) {
            (Some(telemetry), Some(version)) => (
                Some(telemetry.table_for(&engine, version)),
                Active::new(staged, telemetry.dry_run_tallies()),
            ),
            _ => (None, Active::default()),
        };
        let snapshot = Snapshot::new(engine, &self.requested, version, counters, dry_runs);
        let previous = self.snapshot.load();
        let warned_before = previous.as_deref().map(|s| &s.overrides.warnings);
        if warned_before != Some(&snapshot.overrides.warnings) {
            for warning in &snapshot.overrides.warnings {
                tracing::warn!("{warning}");
            }
        }
        if previous.is_none() {
            for applied in &snapshot.overrides.applied {
                tracing::info!(
                    variable = %applied.variable,
                    flag = %applied.flag,
                    variant = %applied.variant,
                    "environment override in force"
                );
            }
        }
        let generation = snapshot.generation;
        self.snapshot.store(Some(Arc::new(snapshot)));
        self.generation.store(generation, Ordering::Release);
        if let (Some(telemetry), Some(version)) = (&self.telemetry, version) {
            telemetry.applied(version);
        }
    }

    /// Reports a problem with the source. The flags served stay as they are.
    pub(crate) fn fail(&self, error: Error) {
        let _installing = self.installing();
        let message = error.to_string();
        if self.status.set(Status::Error, Some(error)) {
            tracing::warn!(error = %message, "keeping the last good flags");
        }
    }

    /// Reports that the source cannot be reached for now: `Stale` when flags are served,
    /// `NotReady` otherwise. The flags served stay as they are.
    pub(crate) fn unreachable(&self, error: Error) {
        let _installing = self.installing();
        let status = if self.has_flags() {
            Status::Stale
        } else {
            Status::NotReady
        };
        let message = error.to_string();
        let was = self.status.status();
        if self.status.set(status, Some(error)) && was != status {
            tracing::warn!(error = %message, %status, "the flag server cannot be reached");
        }
    }

    /// Reports that the source confirmed the flags served are its current ones.
    pub(crate) fn confirm(&self) {
        let _installing = self.installing();
        if self.has_flags() {
            if self.status.status() != Status::Ready {
                tracing::info!("the flag server is reachable again");
            }
            self.status.set(Status::Ready, None);
        }
    }
}

/// Serves feature flags: evaluates them in-process, from a file or a Sluice server.
///
/// Cloning is cheap and every clone shares the same flags and status. Background work (the
/// file watcher, the server connection) stops when the last clone is dropped.
///
/// Evaluation is synchronous, does no I/O, takes no lock and never panics. When anything goes
/// wrong (an unknown flag, a value of another type, a context a split cannot bucket) the typed
/// accessors return the caller's default, and the `*_details` methods say why.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = self.inner.snapshot.load().as_ref().map(|s| s.engine.len());
        f.debug_struct("Client")
            .field("origin", &self.inner.origin)
            .field("environment", &self.inner.environment)
            .field("status", &self.status())
            .field("flags", &flags)
            .finish()
    }
}

impl Client {
    /// Serves the flags in a file, in Sluice's format or flagd's, YAML or JSON (by extension:
    /// `.json` is JSON, anything else YAML), and reloads it when it changes. Uses the base
    /// definitions, without any environment's overrides, and reads `SLUICE_FLAG_*` variables
    /// from the process environment. See [`Client::file_builder`] for the options.
    ///
    /// Fails when the file cannot be read, is invalid, or its directory cannot be watched.
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Client, Error> {
        Client::file_builder(path).build()
    }

    /// Configures a client that serves the flags in a file.
    pub fn file_builder(path: impl Into<PathBuf>) -> FileBuilder {
        FileBuilder::new(path.into())
    }

    /// Configures a client that serves the flags of a Sluice server, kept current over its
    /// live stream. `url` is the server's base URL, such as `https://flags.internal:8470`.
    /// See [`ServerBuilder`].
    pub fn server_builder(url: impl Into<String>) -> ServerBuilder {
        ServerBuilder::new(url.into())
    }

    /// Chooses where a client's flags come from: `Client::builder().server(url)` or
    /// `Client::builder().file(path)`, the same as [`Client::server_builder`] and
    /// [`Client::file_builder`].
    pub fn builder() -> Builder {
        Builder { _private: () }
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Client {
        Client { inner }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Where the client stands with its source.
    pub fn status(&self) -> Status {
        self.inner.status.status()
    }

    /// The last problem the source reported, until a later load succeeds. For a file client,
    /// an invalid edit: its message names the file, line, column and path of each problem.
    pub fn last_error(&self) -> Option<Arc<Error>> {
        self.inner.status.last_error()
    }

    /// Subscribes to status changes, including a new error while the status stays `Error`.
    pub fn subscribe(&self) -> StatusReceiver {
        self.inner.status.subscribe()
    }

    /// Blocks until the client is `Ready`, for at most `timeout`. A file client is ready as soon
    /// as it is built, and again after an invalid edit is fixed.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        match self.inner.status.wait_ready(timeout) {
            Status::Ready => Ok(()),
            status => Err(Error::NotReady {
                status,
                timeout,
                source: self.last_error(),
            }),
        }
    }

    /// The flags file, for a client that serves one, as it was given to the builder.
    pub fn file(&self) -> Option<&Path> {
        match &self.inner.origin {
            Origin::File(path) => Some(path),
            Origin::Server(_) => None,
        }
    }

    /// The server's base URL, for a client that serves a server's flags.
    pub fn server(&self) -> Option<&str> {
        match &self.inner.origin {
            Origin::File(_) => None,
            Origin::Server(url) => Some(url),
        }
    }

    /// The environment whose flags the client serves: for a file, the one given to the
    /// builder (`None` for the base definitions); for a server, the one the token belongs
    /// to, once the first configuration has arrived.
    pub fn environment(&self) -> Option<&str> {
        self.inner.environment.get().map(String::as_str)
    }

    /// The server's configuration version the client serves, once it has one. Files have no
    /// version.
    pub fn version(&self) -> Option<i64> {
        self.inner.snapshot.load().as_ref().and_then(|s| s.version)
    }

    /// The keys of the flags currently served, in definition order.
    pub fn flag_keys(&self) -> Vec<String> {
        match self.inner.snapshot.load().as_deref() {
            Some(snapshot) => snapshot.engine.keys().map(str::to_owned).collect(),
            None => Vec::new(),
        }
    }

    /// The `SLUICE_FLAG_*` overrides in force on the current flags.
    pub fn overrides(&self) -> Vec<Override> {
        match self.inner.snapshot.load().as_deref() {
            Some(snapshot) => snapshot.overrides.applied.clone(),
            None => Vec::new(),
        }
    }

    /// The `SLUICE_FLAG_*` variables ignored on the current flags, and why. Each is also
    /// logged with `tracing::warn!` when it first appears.
    pub fn override_warnings(&self) -> Vec<OverrideWarning> {
        match self.inner.snapshot.load().as_deref() {
            Some(snapshot) => snapshot.overrides.warnings.clone(),
            None => Vec::new(),
        }
    }

    /// Runs `read` over the current snapshot, from this thread's cache when it is still
    /// current; `not_ready` when there is none.
    #[inline(always)]
    fn read<R>(&self, not_ready: impl FnOnce() -> R, read: impl FnOnce(&Snapshot) -> R) -> R {
        let generation = self.inner.generation.load(Ordering::Acquire);
        let mut read = Some(read);
        let cached = LAST_SNAPSHOT.try_with(|last| {
            let last = last.try_borrow().ok()?;
            let snapshot = last.as_deref().filter(|s| s.generation == generation)?;
            Some(read.take()?(snapshot))
        });
        if let Ok(Some(result)) = cached {
            return result;
        }
        self.read_fresh(not_ready, read)
    }

    /// [`Client::read`] past the cache: loads the snapshot and caches it for this thread.
    #[cold]
    #[inline(never)]
    fn read_fresh<R>(
        &self,
        not_ready: impl FnOnce() -> R,
        read: Option<impl FnOnce(&Snapshot) -> R>,
    ) -> R {
        let (Some(snapshot), Some(read)) = (self.inner.snapshot.load_full(), read) else {
            return not_ready();
        };
        let _ = LAST_SNAPSHOT.try_with(|last| {
            if let Ok(mut last) = last.try_borrow_mut() {
                *last = Some(Arc::clone(&snapshot));
            }
        });
        read(&snapshot)
    }

    #[inline]
    fn value<T>(
        &self,
        flag: &str,
        context: &Context,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> Option<T> {
        self.read(
            || None,
            |snapshot| {
                let (evaluation, _) = snapshot.evaluate(flag, context);
                let value = evaluation.value.and_then(convert)?;
                snapshot.expose(&evaluation, context);
                Some(value)
            },
        )
    }

    fn typed_details<T>(
        &self,
        flag: &str,
        context: &Context,
        default: T,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> Details<T> {
        let guard = self.inner.snapshot.load();
        let Some(snapshot) = guard.as_deref() else {
            return Details::not_ready(flag, default);
        };
        let (evaluation, overridden) = snapshot.evaluate(flag, context);
        let details = Details::from_evaluation(flag, &evaluation, overridden, default, convert);
        // A type mismatch clears the variant: the caller got the default, not the variant.
        if evaluation.value.is_some() && details.variant.is_some() {
            snapshot.expose(&evaluation, context);
        }
        details
    }

    /// A boolean flag's value, or `default`.
    #[inline]
    pub fn bool(&self, flag: &str, context: &Context, default: bool) -> bool {
        self.read(
            || default,
            |snapshot| snapshot.typed(flag, context, default, Engine::boolean, Value::as_bool),
        )
    }

    /// A string flag's value, or `default`.
    pub fn string(&self, flag: &str, context: &Context, default: &str) -> String {
        self.value(flag, context, |v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| default.to_owned())
    }

    /// A number flag's value, or `default`.
    #[inline]
    pub fn number(&self, flag: &str, context: &Context, default: f64) -> f64 {
        self.read(
            || default,
            |snapshot| snapshot.typed(flag, context, default, Engine::number, Value::as_f64),
        )
    }

    /// A number flag's value as an integer, or `default` when it is not integral.
    #[inline]
    pub fn integer(&self, flag: &str, context: &Context, default: i64) -> i64 {
        self.read(
            || default,
            |snapshot| snapshot.typed(flag, context, default, Engine::integer, Value::as_i64),
        )
    }

    /// An object flag's value, or `default`.
    pub fn json(&self, flag: &str, context: &Context, default: Value) -> Value {
        self.value(flag, context, |v| v.is_object().then(|| v.clone()))
            .unwrap_or(default)
    }

    /// Evaluates a flag of any type and says how: `value` is `None` when the flag served
    /// nothing and a caller's default would apply.
    pub fn details(&self, flag: &str, context: &Context) -> Details<Option<Value>> {
        self.typed_details(flag, context, None, |v| Some(Some(v.clone())))
    }

    /// [`Client::bool`] with the reason, variant, rule and error.
    pub fn bool_details(&self, flag: &str, context: &Context, default: bool) -> Details<bool> {
        self.typed_details(flag, context, default, Value::as_bool)
    }

    /// [`Client::string`] with the reason, variant, rule and error.
    pub fn string_details(&self, flag: &str, context: &Context, default: &str) -> Details<String> {
        self.typed_details(flag, context, default.to_owned(), |v| {
            v.as_str().map(str::to_owned)
        })
    }

    /// [`Client::number`] with the reason, variant, rule and error.
    pub fn number_details(&self, flag: &str, context: &Context, default: f64) -> Details<f64> {
        self.typed_details(flag, context, default, Value::as_f64)
    }

    /// [`Client::integer`] with the reason, variant, rule and error.
    pub fn integer_details(&self, flag: &str, context: &Context, default: i64) -> Details<i64> {
        self.typed_details(flag, context, default, Value::as_i64)
    }

    /// [`Client::json`] with the reason, variant, rule and error.
    pub fn json_details(&self, flag: &str, context: &Context, default: Value) -> Details<Value> {
        self.typed_details(flag, context, default, |v| v.is_object().then(|| v.clone()))
    }
}

/// Chooses a client's source: from [`Client::builder`].
#[derive(Debug)]
#[must_use]
pub struct Builder {
    _private: (),
}

impl Builder {
    /// A client that serves the flags in a file: see [`FileBuilder`].
    pub fn file(self, path: impl Into<PathBuf>) -> FileBuilder {
        FileBuilder::new(path.into())
    }

    /// A client that serves a Sluice server's flags: see [`ServerBuilder`].
    pub fn server(self, url: impl Into<String>) -> ServerBuilder {
        ServerBuilder::new(url.into())
    }
}
