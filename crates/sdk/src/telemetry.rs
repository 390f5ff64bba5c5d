//! Telemetry: what users were served and what happened to them, reported to the server.
//!
//! In server mode a client reports, per flag variant, configuration version and 10-second
//! bucket: exposures (every evaluation that served a variant), errors, latencies and custom
//! events, plus crashes, to `POST /api/v1/metrics` (wire format: [`sluice_core::telemetry`]).
//! Every batch also acknowledges the configuration version the client applied. File mode
//! has no server to report to: there the same methods exist and do nothing.
//!
//! - **Evaluation stays cheap.** Counting an exposure is one relaxed atomic add in a table
//!   pre-allocated per configuration (`counters.rs`) plus one thread-local store
//!   (`active.rs`); no lock, no allocation, no clock.
//! - **Bounded.** Everything else aggregates in memory under a budget (`aggregate.rs`), and
//!   at most [`MAX_PENDING_BATCHES`] batches wait to be sent (`flush.rs`). What does not fit
//!   is dropped and counted, and the count travels in every batch.
//! - **Never blocking.** Sending happens on the client's own background thread, every flush
//!   interval, at once after a new configuration is applied, and best-effort when the client
//!   is dropped or the crash hook fires (`crash.rs`).
//! - **Idempotent.** A batch is serialized once with a random id and retried byte for byte
//!   under that id (`batch.rs`); the server counts an id once.

pub(crate) mod active;
pub(crate) mod aggregate;
pub(crate) mod batch;
pub(crate) mod counters;
pub(crate) mod crash;
pub(crate) mod flush;
pub(crate) mod shadow;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_core::telemetry::{CrashReport, InstanceReport, bucket_start};
use sluice_core::{Context, Engine};

use crate::client::{Client, Snapshot, SnapshotGuard};
use aggregate::{Aggregator, Key};
use batch::Contents;
use counters::Counters;
use shadow::{ShadowAggregator, ShadowObservation};
use sluice_core::dry_run::Tallies;

pub use crash::{CRASH_FLUSH_BOUND, MAX_MESSAGE_BYTES, install_crash_hook};

/// How often a server client sends its telemetry, by default.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// The most batches that wait to be sent; the oldest is dropped (and counted) beyond it.
pub const MAX_PENDING_BATCHES: usize = 60;

/// What the SDK calls itself in its instance reports.
pub(crate) const SDK: &str = concat!("sluice-rust/", env!("CARGO_PKG_VERSION"));

/// No version applied yet.
const NO_VERSION: i64 = i64::MIN;

/// Ids of counter tables, unique in the process; 0 means none.
static NEXT_TABLE: AtomicU64 = AtomicU64::new(1);

/// The current time in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Locks a mutex, ignoring poisoning: every critical section leaves its data consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How far blocking flushes have got.
#[derive(Debug, Default)]
struct Flushes {
    requested: u64,
    completed: u64,
    /// Whether nothing was left waiting after the last completed flush.
    delivered: bool,
}

/// A client's telemetry, shared by its clones, its snapshots and its background thread.
pub(crate) struct Telemetry {
    instance_id: String,
    shards: usize,
    /// Every counter table that a snapshot still uses or that has not been drained since.
    tables: Mutex<Vec<Arc<Counters>>>,
    aggregator: Mutex<Aggregator>,
    /// Shadow experiment results.
    shadow: Mutex<ShadowAggregator>,
    /// Dry-run tallies.
    dry_runs: Tallies,
    applied: AtomicI64,
    dropped: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    pending: AtomicUsize,
    /// The server refused the token: nothing more is sent.
    stopped: AtomicBool,
    /// A new configuration was applied and not yet acknowledged.
    ack_due: AtomicBool,
    wake: tokio::sync::Notify,
    flushes: Mutex<Flushes>,
    flushed: Condvar,
    crash_hook: AtomicBool,
    /// The wall clock that places observations in buckets; fixed in tests.
    clock: fn() -> i64,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("instance_id", &self.instance_id)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    pub(crate) fn new() -> Telemetry {
        Telemetry::with_clock(now_ms)
    }

    /// Telemetry whose observations are placed in buckets by `clock`.
    pub(crate) fn with_clock(clock: fn() -> i64) -> Telemetry {
        // Twice the cores, so that threads rarely share a shard.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Telemetry {
            instance_id: batch::random_id(),
            shards: (cores * 2).next_power_of_two().min(32),
            tables: Mutex::new(Vec::new()),
            aggregator: Mutex::new(Aggregator::default()),
            shadow: Mutex::new(ShadowAggregator::default()),
            dry_runs: Tallies::default(),
            applied: AtomicI64::new(NO_VERSION),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            ack_due: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            flushes: Mutex::new(Flushes::default()),
            flushed: Condvar::new(),
            crash_hook: AtomicBool::new(false),
            clock,
        }
    }

    pub(crate) fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// A counter table for a new snapshot.
    pub(crate) fn table_for(&self, engine: &Engine, version: i64) -> Arc<Counters> {
        let id = NEXT_TABLE.fetch_add(1, Ordering::Relaxed);
        let table = Arc::new(Counters::new(id, engine, version, self.shards));
        lock(&self.tables).push(Arc::clone(&table));
        table
    }

    /// Notes that `version` is now served, and asks for an acknowledgement at once.
    pub(crate) fn applied(&self, version: i64) {
        self.applied.store(version, Ordering::Relaxed);
        self.ack_due.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    pub(crate) fn instance(&self) -> InstanceReport {
        let version = self.applied.load(Ordering::Relaxed);
        InstanceReport {
            id: self.instance_id.clone(),
            sdk: SDK.to_owned(),
            config_version: (version != NO_VERSION).then_some(version),
        }
    }

    pub(crate) fn add_dropped(&self, observations: u64) {
        if observations > 0 {
            self.dropped.fetch_add(observations, Ordering::Relaxed);
        }
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> TelemetryStats {
        TelemetryStats {
            enabled: true,
            stopped: self.stopped.load(Ordering::Relaxed),
            dropped: self.dropped(),
            batches_sent: self.sent.load(Ordering::Relaxed),
            failed_attempts: self.failed.load(Ordering::Relaxed),
            pending_batches: self.pending.load(Ordering::Relaxed),
        }
    }

    /// Moves the counters of every table into the aggregator, under the bucket `start_ms`.
    pub(crate) fn drain(&self, start_ms: i64) {
        let tables = lock(&self.tables);
        self.drain_tables(&tables, start_ms);
    }

    fn drain_tables(&self, tables: &[Arc<Counters>], start_ms: i64) {
        let mut aggregator = lock(&self.aggregator);
        for table in tables {
            for drained in table.drain() {
                let key = Key {
                    start_ms,
                    table: table.id(),
                    slot: drained.slot,
                };
                if !aggregator.count(key, drained.exposures, drained.errors) {
                    self.add_dropped(drained.exposures + drained.errors);
                }
            }
        }
    }

    /// Drains the counters (under the bucket `start_ms`) and takes everything aggregated,
    /// named; forgets the tables no snapshot uses any more, now that they are drained.
    pub(crate) fn collect(&self, start_ms: i64) -> Contents {
        let mut tables = lock(&self.tables);
        // Only a table that nothing could count into before the drain is done with.
        let finished: Vec<u64> = tables
            .iter()
            .filter(|table| Arc::strong_count(table) == 1)
            .map(|table| table.id())
            .collect();
        self.drain_tables(&tables, start_ms);
        let (series, crashes) = lock(&self.aggregator).take();
        let mut contents = Contents {
            reports: Vec::with_capacity(series.len()),
            crashes,
            shadow: lock(&self.shadow).take(),
            dry_runs: self.dry_runs.take(),
        };
        for (key, series) in series {
            let observations = series.observations();
            let table = tables.iter().find(|table| table.id() == key.table);
            match table.and_then(|table| batch::report(key, series, table)) {
                Some(report) => contents.reports.push((report, observations)),
                None => self.add_dropped(observations),
            }
        }
        tables.retain(|table| !finished.contains(&table.id()));
        contents
    }

    /// The table and slot this thread was last served for `flag`, in `snapshot`'s table or
    /// an older one of this client's.
    fn active(&self, snapshot: &Snapshot, flag: &str) -> Option<(Arc<Counters>, u32)> {
        let current = snapshot.counters()?;
        if let Some(position) = snapshot
            .engine()
            .info(flag)
            .and_then(|i| current.flag_of(i))
            && let Some(entry) = active::get(position)
            && entry.table == current.id()
            && entry.flag == position
        {
            return Some((Arc::clone(current), entry.slot));
        }
        // Served under an older configuration, before a reload.
        let tables = lock(&self.tables);
        active::all().into_iter().find_map(|entry| {
            let table = tables.iter().find(|table| table.id() == entry.table)?;
            table
                .is_flag(entry.flag, flag)
                .then(|| (Arc::clone(table), entry.slot))
        })
    }

    /// Every table and slot active on this thread that belongs to this client.
    fn all_active(&self, snapshot: Option<&Snapshot>) -> Vec<(u64, u32)> {
        let entries = active::all();
        if entries.is_empty() {
            return Vec::new();
        }
        let current = snapshot.and_then(Snapshot::counters).map(|c| c.id());
        let mut found = Vec::with_capacity(entries.len());
        let mut others = Vec::new();
        for entry in entries {
            if Some(entry.table) == current {
                found.push((entry.table, entry.slot));
            } else {
                others.push(entry);
            }
        }
        if !others.is_empty() {
            let tables = lock(&self.tables);
            found.extend(
                others
                    .into_iter()
                    .filter(|entry| tables.iter().any(|table| table.id() == entry.table))
                    .map(|entry| (entry.table, entry.slot)),
            );
        }
        found
    }

    pub(crate) fn latency(&self, table: u64, slot: u32, elapsed: Duration) {
        let key = Key {
            start_ms: bucket_start((self.clock)()),
            table,
            slot,
        };
        if !lock(&self.aggregator).latency(key, elapsed.as_secs_f64() * 1_000.0) {
            self.add_dropped(1);
        }
    }

    fn events(&self, targets: &[(u64, u32)], event: &str, value: f64) {
        let start_ms = bucket_start((self.clock)());
        let mut aggregator = lock(&self.aggregator);
        let mut refused = 0;
        for &(table, slot) in targets {
            let key = Key {
                start_ms,
                table,
                slot,
            };
            refused += u64::from(!aggregator.event(key, event, value));
        }
        drop(aggregator);
        self.add_dropped(refused);
    }

    /// Records a panic against the variants active on this thread.
    pub(crate) fn crash(&self, message: String, location: Option<String>) {
        let start_ms = bucket_start((self.clock)());
        let entries = active::all();
        let Some(tables) = crash::lock_briefly(&self.tables) else {
            self.add_dropped(1);
            return;
        };
        let mut keys = Vec::new();
        let mut variants = std::collections::BTreeMap::new();
        for entry in entries {
            let Some(table) = tables.iter().find(|table| table.id() == entry.table) else {
                continue;
            };
            if let Some((flag, variant)) = table.names(entry.slot) {
                variants.insert(flag.to_string(), variant.to_string());
                keys.push(Key {
                    start_ms,
                    table: entry.table,
                    slot: entry.slot,
                });
            }
        }
        drop(tables);
        let report = CrashReport {
            at_ms: (self.clock)(),
            message,
            location,
            variants,
        };
        let Some(mut aggregator) = crash::lock_briefly(&self.aggregator) else {
            self.add_dropped(keys.len() as u64 + 1);
            return;
        };
        let refused = aggregator.crash(&keys, report);
        drop(aggregator);
        self.add_dropped(refused);
    }

    /// Whether a mismatching pair of `experiment` under `version` would be kept now.
    pub(crate) fn wants_shadow_sample(&self, experiment: &str, version: i64) -> bool {
        let start_ms = bucket_start((self.clock)());
        lock(&self.shadow).wants_sample(start_ms, experiment, version)
    }

    /// Where the snapshots' dry runs count.
    pub(crate) fn dry_run_tallies(&self) -> &Tallies {
        &self.dry_runs
    }

    /// Records one run of a shadow experiment.
    pub(crate) fn shadow(&self, experiment: &str, version: i64, observation: ShadowObservation) {
        let start_ms = bucket_start((self.clock)());
        if !lock(&self.shadow).record(start_ms, experiment, version, observation) {
            self.add_dropped(1);
        }
    }

    /// The wall clock telemetry buckets by, Unix milliseconds.
    pub(crate) fn clock_ms(&self) -> i64 {
        (self.clock)()
    }

    /// Asks the background thread to flush now; returns the ticket to wait for.
    pub(crate) fn request_flush(&self) -> u64 {
        let ticket = {
            let mut flushes = lock(&self.flushes);
            flushes.requested += 1;
            flushes.requested
        };
        self.wake.notify_one();
        ticket
    }

    /// The flush requests made so far, for the background thread to answer.
    pub(crate) fn requested(&self) -> u64 {
        lock(&self.flushes).requested
    }

    /// Whether a flush was requested and not answered yet.
    pub(crate) fn flush_wanted(&self) -> bool {
        let flushes = lock(&self.flushes);
        flushes.requested > flushes.completed
    }

    /// Answers the flush requests up to `ticket`.
    pub(crate) fn complete(&self, ticket: u64, delivered: bool) {
        let mut flushes = lock(&self.flushes);
        flushes.completed = flushes.completed.max(ticket);
        flushes.delivered = delivered;
        drop(flushes);
        self.flushed.notify_all();
    }

    /// Flushes now and waits, at most `timeout`, until the flush has been attempted; returns
    /// whether nothing was left unsent. Never waits on the client's own thread.
    pub(crate) fn flush_blocking(&self, timeout: Duration) -> bool {
        if self.stopped.load(Ordering::Relaxed) {
            return false;
        }
        let ticket = self.request_flush();
        if flush::on_background_thread() {
            return false;
        }
        let deadline = Instant::now() + timeout;
        let mut flushes = lock(&self.flushes);
        while flushes.completed < ticket {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            flushes = self
                .flushed
                .wait_timeout(flushes, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        flushes.delivered
    }

    /// The server refused the token: stop sending, and release anyone waiting.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.complete(u64::MAX, false);
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

/// What a client's telemetry has done so far: from [`Client::telemetry_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TelemetryStats {
    /// Whether the client reports telemetry: a server client built with telemetry on.
    pub enabled: bool,
    /// Whether it stopped because the server refused the token (401 or 403).
    pub stopped: bool,
    /// Observations (exposures, errors, latencies, events, crashes) dropped because a
    /// buffer was full or a batch could not be delivered, since the client started.
    pub dropped: u64,
    /// Batches the server accepted.
    pub batches_sent: u64,
    /// Attempts to send a batch that failed and were (or will be) retried.
    pub failed_attempts: u64,
    /// Batches waiting to be sent.
    pub pending_batches: usize,
}

/// Times an operation for a flag's variant, recording the latency when dropped: from
/// [`Client::latency_guard`] and [`Client::latency_guard_for`].
///
/// Nothing is recorded if the thread is panicking, if the guard was
/// [cancelled](LatencyGuard::cancel), or if there was no variant to attribute it to.
#[must_use = "the latency is recorded when the guard is dropped"]
pub struct LatencyGuard {
    target: Option<(Arc<Telemetry>, Arc<Counters>, u32)>,
    started: Instant,
}

impl fmt::Debug for LatencyGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyGuard")
            .field("recording", &self.target.is_some())
            .field("started", &self.started)
            .finish()
    }
}

impl LatencyGuard {
    fn new(target: Option<(Arc<Telemetry>, Arc<Counters>, u32)>) -> LatencyGuard {
        LatencyGuard {
            target,
            started: Instant::now(),
        }
    }

    /// How long since the guard was made.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Drops the guard without recording anything.
    pub fn cancel(mut self) {
        self.target = None;
    }
}

impl Drop for LatencyGuard {
    fn drop(&mut self) {
        if let Some((telemetry, table, slot)) = self.target.take()
            && !std::thread::panicking()
        {
            telemetry.latency(table.id(), slot, self.started.elapsed());
        }
    }
}

/// Forgets the variants this thread was served, so that later `record_error`, `time`,
/// `latency_guard` and `track` calls on it attribute nothing until it evaluates again.
/// Call it where a pooled thread starts on unrelated work, such as at the start of a request.
pub fn clear_active_variants() {
    active::clear();
}

/// Telemetry: recording what happened after an evaluation.
///
/// The forms without a context attribute to the variant this thread was last served for the
/// flag (see [`crate::telemetry`]'s notes on threads; in async code prefer the `*_for` forms,
/// which evaluate the flag for a context without counting an exposure). Without telemetry
/// (file mode, or `.telemetry(false)`) they do nothing.
impl Client {
    /// The telemetry of a server client with telemetry on, and the snapshot served now.
    fn telemetry_now(&self) -> Option<(&Arc<Telemetry>, SnapshotGuard)> {
        let telemetry = self.inner().telemetry()?;
        Some((telemetry, self.inner().snapshot()))
    }

    /// The table and slot `context` is served for `flag` now, without counting an exposure.
    fn served(snapshot: &Snapshot, flag: &str, context: &Context) -> Option<(Arc<Counters>, u32)> {
        let table = snapshot.counters()?;
        let (evaluation, _) = snapshot.evaluate(flag, context);
        let (_, slot) = table.locate(&evaluation)?;
        Some((Arc::clone(table), slot))
    }

    /// Records an error against the variant this thread was last served for `flag`.
    pub fn record_error(&self, flag: &str) {
        let Some((telemetry, guard)) = self.telemetry_now() else {
            return;
        };
        let Some(snapshot) = guard.as_deref() else {
            return;
        };
        if let Some((table, slot)) = telemetry.active(snapshot, flag) {
            table.error(slot);
        }
    }

    /// Records an error against the variant `context` is served for `flag`.
    pub fn record_error_for(&self, flag: &str, context: &Context) {
        let Some((_, guard)) = self.telemetry_now() else {
            return;
        };
        if let Some((table, slot)) = guard
            .as_deref()
            .and_then(|snapshot| Client::served(snapshot, flag, context))
        {
            table.error(slot);
        }
    }

    /// Records a latency against the variant this thread was last served for `flag`.
    pub fn record_latency(&self, flag: &str, elapsed: Duration) {
        let Some((telemetry, guard)) = self.telemetry_now() else {
            return;
        };
        if let Some((table, slot)) = guard
            .as_deref()
            .and_then(|snapshot| telemetry.active(snapshot, flag))
        {
            telemetry.latency(table.id(), slot, elapsed);
        }
    }

    /// Records a latency against the variant `context` is served for `flag`.
    pub fn record_latency_for(&self, flag: &str, context: &Context, elapsed: Duration) {
        let Some((telemetry, guard)) = self.telemetry_now() else {
            return;
        };
        if let Some((table, slot)) = guard
            .as_deref()
            .and_then(|snapshot| Client::served(snapshot, flag, context))
        {
            telemetry.latency(table.id(), slot, elapsed);
        }
    }

    /// A guard that records the time until it is dropped against the variant this thread
    /// was last served for `flag` (at the time the guard is made).
    pub fn latency_guard(&self, flag: &str) -> LatencyGuard {
        let target = self.telemetry_now().and_then(|(telemetry, guard)| {
            let (table, slot) = telemetry.active(guard.as_deref()?, flag)?;
            Some((Arc::clone(telemetry), table, slot))
        });
        LatencyGuard::new(target)
    }

    /// A guard that records the time until it is dropped against the variant `context` is
    /// served for `flag`. Safe to hold across `.await`.
    pub fn latency_guard_for(&self, flag: &str, context: &Context) -> LatencyGuard {
        let target = self.telemetry_now().and_then(|(telemetry, guard)| {
            let (table, slot) = Client::served(guard.as_deref()?, flag, context)?;
            Some((Arc::clone(telemetry), table, slot))
        });
        LatencyGuard::new(target)
    }

    /// Runs `operation` and records how long it took against the variant this thread was
    /// last served for `flag`. Nothing is recorded if it panics.
    pub fn time<T>(&self, flag: &str, operation: impl FnOnce() -> T) -> T {
        let guard = self.latency_guard(flag);
        let result = operation();
        drop(guard);
        result
    }

    /// Runs `operation` and records how long it took against the variant `context` is
    /// served for `flag`. Nothing is recorded if it panics.
    pub fn time_for<T>(&self, flag: &str, context: &Context, operation: impl FnOnce() -> T) -> T {
        let guard = self.latency_guard_for(flag, context);
        let result = operation();
        drop(guard);
        result
    }

    /// Tracks a custom event with a value (count, sum and sum of squares are reported)
    /// against every variant active on this thread: each flag's last variant served here.
    pub fn track(&self, event: &str, value: f64) {
        let Some((telemetry, guard)) = self.telemetry_now() else {
            return;
        };
        let targets = telemetry.all_active(guard.as_deref());
        if !targets.is_empty() {
            telemetry.events(&targets, event, value);
        }
    }

    /// Tracks a custom event against the variant `context` is served for `flag`.
    pub fn track_for(&self, flag: &str, context: &Context, event: &str, value: f64) {
        let Some((telemetry, guard)) = self.telemetry_now() else {
            return;
        };
        if let Some((table, slot)) = guard
            .as_deref()
            .and_then(|snapshot| Client::served(snapshot, flag, context))
        {
            telemetry.events(&[(table.id(), slot)], event, value);
        }
    }

    /// What the client's telemetry has done so far; all zero, and `enabled: false`, without
    /// telemetry.
    pub fn telemetry_stats(&self) -> TelemetryStats {
        self.inner()
            .telemetry()
            .map(|telemetry| telemetry.stats())
            .unwrap_or_default()
    }

    /// Sends the telemetry gathered so far now, and waits at most `timeout` for the attempt.
    /// Returns whether everything was delivered; `false` without telemetry. It blocks the
    /// calling thread: in async code, call it from `spawn_blocking`.
    pub fn flush_telemetry(&self, timeout: Duration) -> bool {
        self.inner()
            .telemetry()
            .is_some_and(|telemetry| telemetry.flush_blocking(timeout))
    }

    /// The random id this client reports telemetry under, with telemetry on.
    pub fn instance_id(&self) -> Option<&str> {
        self.inner().telemetry().map(|t| t.instance_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;
    use crate::client::{Inner, Origin};
    use sluice_core::{Format, Source};

    const FLAGS: &str = r#"{"flags": {
        "checkout": {"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off",
            "rules": [{"split": [{"variant": "on", "weight": 50000}, {"variant": "off", "weight": 50000}]}]},
        "color": {"type": "string", "variants": {"red": "red", "blue": "blue"}, "default_variant": "red"}
    }}"#;

    fn engine(text: &str) -> Engine {
        Source::parse(Some("t.json"), text, Format::Json)
            .and_then(|source| source.compile(None))
            .unwrap()
    }

    /// A server-mode client with telemetry and no background thread, serving version 1.
    /// Its clock stands still, so a test never straddles two buckets and their budgets.
    fn client() -> (Client, Arc<Telemetry>) {
        let telemetry = Arc::new(Telemetry::with_clock(|| 1_234_567));
        let inner = Inner::new(
            Origin::Server("http://127.0.0.1:1".into()),
            None,
            Vec::new(),
            Some(Arc::clone(&telemetry)),
        );
        inner.install_config(engine(FLAGS), Vec::new(), 1, "production", Status::Ready);
        (Client::from_inner(Arc::new(inner)), telemetry)
    }

    fn user(i: usize) -> Context {
        Context::with_key(format!("user-{i}").as_str())
    }

    /// The reports of `contents` by (flag, variant, version), merged over buckets.
    fn by_variant(
        contents: &Contents,
    ) -> std::collections::BTreeMap<(String, String, i64), sluice_core::telemetry::BucketReport>
    {
        let mut map = std::collections::BTreeMap::<_, sluice_core::telemetry::BucketReport>::new();
        for (report, _) in &contents.reports {
            let key = (
                report.flag.clone(),
                report.variant.clone(),
                report.config_version,
            );
            let merged = map.entry(key).or_default();
            merged.exposures += report.exposures;
            merged.errors += report.errors;
            merged.crashes += report.crashes;
            if let Some(latency) = &report.latency {
                let sketch = merged.latency.get_or_insert_with(Default::default);
                sketch.0.merge(&latency.0).unwrap();
            }
            for (name, event) in &report.events {
                merged.events.entry(name.clone()).or_default().merge(event);
            }
        }
        map
    }

    #[test]
    fn exposures_count_per_variant_and_version() {
        clear_active_variants();
        let (client, telemetry) = client();
        let mut served = std::collections::BTreeMap::<bool, u64>::new();
        for i in 0..1_000 {
            *served
                .entry(client.bool("checkout", &user(i), false))
                .or_default() += 1;
        }
        assert_eq!(client.string("color", &user(0), "x"), "red");
        let details = client.string_details("color", &user(0), "x");
        assert_eq!(details.variant.as_deref(), Some("red"));
        // Defaults are not exposures: unknown flags and type mismatches.
        assert!(!client.bool("missing", &user(0), false));
        assert_eq!(client.integer("color", &user(0), 7), 7);
        assert_eq!(client.integer_details("color", &user(0), 7).value, 7);

        let contents = telemetry.collect(0);
        let reports = by_variant(&contents);
        assert_eq!(reports.len(), 3, "{reports:?}");
        let key = |flag: &str, variant: &str| (flag.to_owned(), variant.to_owned(), 1);
        assert_eq!(reports[&key("checkout", "on")].exposures, served[&true]);
        assert_eq!(reports[&key("checkout", "off")].exposures, served[&false]);
        assert_eq!(reports[&key("color", "red")].exposures, 2);
        assert!(reports.values().all(|report| report.start_ms == 0));
        assert_eq!(telemetry.dropped(), 0);
        // Drained: nothing twice.
        assert!(telemetry.collect(0).reports.is_empty());
        assert_eq!(telemetry.instance().config_version, Some(1));
        assert_eq!(telemetry.instance().sdk, SDK);
    }

    #[test]
    fn errors_latencies_and_events_go_to_the_variant_this_thread_was_served() {
        clear_active_variants();
        let (client, telemetry) = client();
        let on_user = (0..)
            .map(user)
            .find(|u| client.bool("checkout", u, false))
            .unwrap();
        let off_user = (0..)
            .map(user)
            .find(|u| !client.bool("checkout", u, true))
            .unwrap();
        telemetry.collect(0);

        client.bool("checkout", &on_user, false);
        client.record_error("checkout");
        client.record_error("checkout");
        let answer = client.time("checkout", || 42);
        assert_eq!(answer, 42);
        drop(client.latency_guard("checkout"));
        client.latency_guard("checkout").cancel();
        client.track("purchase", 10.0);
        // The explicit forms evaluate for the context, and count no exposure.
        client.record_error_for("checkout", &off_user);
        client.record_latency_for("checkout", &off_user, Duration::from_millis(250));
        client.track_for("checkout", &off_user, "purchase", 3.0);
        // Nothing is attributed for a flag this thread never evaluated.
        client.record_error("color");
        client.track_for("missing", &off_user, "purchase", 1.0);

        // Another thread's variants are its own.
        let other = client.clone();
        let off = off_user.clone();
        std::thread::spawn(move || {
            other.bool("checkout", &off, false);
            other.track("purchase", 100.0);
        })
        .join()
        .unwrap();

        let reports = by_variant(&telemetry.collect(0));
        let on = &reports[&("checkout".to_owned(), "on".to_owned(), 1)];
        assert_eq!((on.exposures, on.errors), (1, 2));
        assert_eq!(on.latency.as_ref().map(|l| l.count()), Some(2));
        assert_eq!(on.events["purchase"].count, 1);
        assert_eq!(on.events["purchase"].sum, 10.0);
        let off = &reports[&("checkout".to_owned(), "off".to_owned(), 1)];
        assert_eq!((off.exposures, off.errors), (1, 1));
        let latency = off.latency.as_ref().unwrap();
        assert_eq!(latency.count(), 1);
        assert!((latency.quantile(0.5).unwrap() - 250.0).abs() < 5.0);
        assert_eq!(off.events["purchase"].count, 2);
        assert_eq!(off.events["purchase"].sum, 103.0);
        assert!(!reports.contains_key(&("color".to_owned(), "red".to_owned(), 1)));
    }

    #[test]
    fn a_reload_keeps_attributing_to_the_version_served() {
        clear_active_variants();
        let (client, telemetry) = client();
        client.string("color", &user(1), "x");
        // A new version arrives between the evaluation and the error.
        client
            .inner()
            .install_config(engine(FLAGS), Vec::new(), 2, "production", Status::Ready);
        client.record_error("color");
        assert_eq!(telemetry.instance().config_version, Some(2));
        let reports = by_variant(&telemetry.collect(0));
        let old = &reports[&("color".to_owned(), "red".to_owned(), 1)];
        assert_eq!((old.exposures, old.errors), (1, 1));
        // This thread's snapshot cache still holds version 1 until it evaluates again.
        assert_eq!(lock(&telemetry.tables).len(), 2);
        client.string("color", &user(1), "x");
        let reports = by_variant(&telemetry.collect(0));
        assert_eq!(
            reports[&("color".to_owned(), "red".to_owned(), 2)].exposures,
            1
        );
        // Now the old table, drained and unused, is forgotten; the new one stays.
        assert_eq!(lock(&telemetry.tables).len(), 1);
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        clear_active_variants();
        let (client, telemetry) = client();
        client.string("color", &user(1), "x");
        let names = aggregate::MAX_SERIES_PER_BUCKET + 500;
        for i in 0..names {
            client.track(&format!("event-{i}"), 1.0);
        }
        // The series itself and the exposure's place were budgeted too, so at least 500 went.
        let dropped = client.telemetry_stats().dropped;
        assert!((500..=502).contains(&dropped), "{dropped}");
        // Non-finite values are dropped and counted too.
        client.track("event-0", f64::INFINITY);
        assert_eq!(client.telemetry_stats().dropped, dropped + 1);
        let contents = telemetry.collect(0);
        let events: usize = contents.reports.iter().map(|(r, _)| r.events.len()).sum();
        assert_eq!(events as u64 + dropped, names as u64);
    }

    #[test]
    fn a_crash_records_the_active_variants() {
        clear_active_variants();
        let (client, telemetry) = client();
        let on_user = (0..)
            .map(user)
            .find(|u| client.bool("checkout", u, false))
            .unwrap();
        client.string("color", &on_user, "x");
        telemetry.crash("boom".into(), Some("src/main.rs:1:1".into()));
        let contents = telemetry.collect(0);
        assert_eq!(contents.crashes.len(), 1);
        let crash = &contents.crashes[0];
        assert_eq!(crash.message, "boom");
        assert_eq!(crash.location.as_deref(), Some("src/main.rs:1:1"));
        assert_eq!(
            crash.variants.get("checkout").map(String::as_str),
            Some("on")
        );
        assert_eq!(crash.variants.get("color").map(String::as_str), Some("red"));
        let crashes: u64 = contents.reports.iter().map(|(r, _)| r.crashes).sum();
        assert_eq!(crashes, 2);
    }

    #[test]
    fn without_telemetry_everything_is_a_no_op() {
        let inner = Inner::new(Origin::Server("http://x".into()), None, Vec::new(), None);
        inner.install_config(engine(FLAGS), Vec::new(), 1, "production", Status::Ready);
        let client = Client::from_inner(Arc::new(inner));
        client.bool("checkout", &user(1), false);
        client.record_error("checkout");
        client.track("e", 1.0);
        assert_eq!(client.time("checkout", || 5), 5);
        assert!(!client.flush_telemetry(Duration::from_millis(10)));
        assert_eq!(client.telemetry_stats(), TelemetryStats::default());
        assert_eq!(client.instance_id(), None);
        assert!(!install_crash_hook(&client));
    }
}
