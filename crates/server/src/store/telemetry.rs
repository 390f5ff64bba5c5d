//! SDK telemetry in the store: batches merged into per-bucket aggregates once each, the SDK
//! instances with the configuration version each has applied, and crash reports.
//!
//! # The key decision: telemetry is data, not configuration
//!
//! Recording a batch does not lock the `meta` row, bump `config_version`, append an audit
//! record or notify anyone. It is one transaction of its own:
//!
//! 1. The batch id goes into `metric_batches` (`PRIMARY KEY (env, batch_id)`) with
//!    `ON CONFLICT DO NOTHING`. When it was there already, the transaction rolls back and
//!    the batch is reported as a duplicate: a retried batch counts once. On PostgreSQL a
//!    concurrent retry waits for the first attempt and then sees its id.
//! 2. The batch's buckets are summed per key (flag, variant, configuration version, bucket
//!    start) and merged into `metric_aggregates` in key order, so concurrent batches lock
//!    rows in the same order and never deadlock. A new row is inserted with
//!    `ON CONFLICT DO NOTHING`; an existing one is read (`FOR UPDATE` on PostgreSQL; an SQLite
//!    write transaction holds the database's write lock from `BEGIN IMMEDIATE`), merged in
//!    Rust (saturating counts, [`DDSketch::merge`](sluice_core::rollout::DDSketch::merge),
//!    event sums) and written back. No count is lost to a concurrent batch.
//! 3. The instance row is upserted: `last_seen_ms` (the server's clock) only moves forward,
//!    and the SDK name, configuration version and dropped count are taken from the report
//!    with the newest `sentAtMs` (the instance's own clock), so a late retry of an old batch
//!    never rolls an acknowledgement back.
//! 4. Crash reports are appended; each environment keeps its newest [`MAX_CRASH_REPORTS`].
//!
//! Batch ids are kept for [`BATCH_ID_RETENTION_MS`] (a day): a batch retried later than that
//! would count twice. Aggregates and instances are kept until deleted by hand.
//!
//! Every batch is checked first ([`validate_batch`]), latency sketches included, and so is
//! every sketch read back from the database, because the sketch crate trusts its inputs.

pub(crate) mod sketch;
mod validate;

pub(crate) use sketch::{check as check_sketch, merge as merge_sketch};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_core::rollout::{Arms, LatencySketch};
use sluice_core::telemetry::{
    BucketReport, CrashReport, EventAggregate, MetricsBatch, bucket_start,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Row};

pub use validate::{
    MAX_COUNT, MAX_CRASH_MESSAGE_LEN, MAX_EVENT_MAGNITUDE, MAX_EVENTS_PER_BUCKET, MAX_FUTURE_MS,
    MAX_LABEL_LEN, validate_batch,
};

use super::tables::to_json;
use super::{Backend, StoreError, sqlite};

/// How many crash reports each environment keeps; older ones are deleted.
pub const MAX_CRASH_REPORTS: i64 = 1000;

/// How long a batch id is remembered, so that a retried batch counts once.
pub const BATCH_ID_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// What became of a posted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ingested {
    /// Whether this batch was recorded now; false for a duplicate.
    pub accepted: bool,
    /// Whether this batch id had already been recorded, so nothing was written.
    pub duplicate: bool,
    /// How many aggregate rows the batch was merged into.
    pub buckets: usize,
    /// How many crash reports were stored.
    pub crashes: usize,
}

/// Exposures, errors, crashes, latency and custom events, summed. Merging two is exact for
/// the counts and sums, and as accurate as the sketch for latency quantiles.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Aggregate {
    /// Evaluations that served the variant.
    pub exposures: u64,
    /// Errors recorded against it.
    pub errors: u64,
    /// Crashes recorded while it was active.
    pub crashes: u64,
    /// Latencies in milliseconds, when any were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySketch>,
    /// Custom events by name.
    #[serde(default)]
    pub events: BTreeMap<String, EventAggregate>,
}

impl Aggregate {
    /// The aggregate of one reported bucket.
    pub fn of_bucket(bucket: &BucketReport) -> Aggregate {
        Aggregate {
            exposures: bucket.exposures,
            errors: bucket.errors,
            crashes: bucket.crashes,
            // An empty sketch carries nothing, and its JSON form cannot be read back.
            latency: bucket.latency.clone().filter(|s| s.count() > 0),
            events: bucket.events.clone(),
        }
    }

    /// Folds `other` into this one. Counts saturate instead of overflowing; a latency merge
    /// that would overflow the sketch keeps this one's sketch, and is logged.
    pub fn merge(&mut self, other: &Aggregate) {
        self.exposures = self.exposures.saturating_add(other.exposures);
        self.errors = self.errors.saturating_add(other.errors);
        self.crashes = self.crashes.saturating_add(other.crashes);
        match (&mut self.latency, &other.latency) {
            (_, None) => {}
            (None, Some(theirs)) => self.latency = Some(theirs.clone()),
            (Some(ours), Some(theirs)) => {
                if let Err(message) = sketch::merge(ours, theirs) {
                    tracing::warn!(message, "latency not merged");
                }
            }
        }
        for (name, theirs) in &other.events {
            let ours = self.events.entry(name.clone()).or_default();
            ours.count = ours.count.saturating_add(theirs.count);
            ours.sum = finite_sum(ours.sum, theirs.sum);
            ours.sum_sq = finite_sum(ours.sum_sq, theirs.sum_sq);
        }
    }
}

/// `a + b`, kept finite so that it stays representable in JSON.
fn finite_sum(a: f64, b: f64) -> f64 {
    let sum = a + b;
    if sum.is_finite() {
        sum
    } else if sum > 0.0 {
        f64::MAX
    } else {
        f64::MIN
    }
}

/// One stored aggregate: a flag's variant, served under one configuration version, in one
/// 10-second bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregateRow {
    /// The flag key.
    pub flag: String,
    /// The variant served; empty for errors recorded when none was.
    pub variant: String,
    /// The configuration version it was served under.
    pub config_version: i64,
    /// The bucket's start, Unix milliseconds, a multiple of
    /// [`BUCKET_MS`](sluice_core::telemetry::BUCKET_MS).
    pub start_ms: i64,
    /// What was recorded.
    #[serde(flatten)]
    pub aggregate: Aggregate,
}

/// Sums rows per variant, over every configuration version and bucket given.
pub fn totals_by_variant(rows: &[AggregateRow]) -> BTreeMap<String, Aggregate> {
    let mut totals: BTreeMap<String, Aggregate> = BTreeMap::new();
    for row in rows {
        totals
            .entry(row.variant.clone())
            .or_default()
            .merge(&row.aggregate);
    }
    totals
}

/// Sums rows into two arms: rows of a `control` variant into one, rows of a `treatment`
/// variant into the other; rows of other variants are left out. This is the shape the
/// rollout judge compares.
pub fn arm_totals(rows: &[AggregateRow], control: &[&str], treatment: &[&str]) -> Arms<Aggregate> {
    let mut arms = Arms::<Aggregate>::default();
    for row in rows {
        let variant = row.variant.as_str();
        if control.contains(&variant) {
            arms.control.merge(&row.aggregate);
        } else if treatment.contains(&variant) {
            arms.treatment.merge(&row.aggregate);
        }
    }
    arms
}

/// An SDK instance and the configuration version it last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRow {
    /// The instance id, random per SDK process.
    pub id: String,
    /// The SDK and its version, such as `sluice-rust/0.1.0`.
    pub sdk: String,
    /// The configuration version it has applied; `None` before it had one.
    pub config_version: Option<i64>,
    /// Telemetry it dropped since it started, because its buffers were full.
    pub dropped: u64,
    /// When its first batch arrived, by the server's clock.
    pub first_seen_ms: i64,
    /// When its latest batch arrived, by the server's clock.
    pub last_seen_ms: i64,
}

/// A stored crash report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredCrash {
    /// The instance that reported it.
    pub instance_id: String,
    /// When it arrived, by the server's clock.
    pub received_ms: i64,
    /// What the SDK reported.
    #[serde(flatten)]
    pub report: CrashReport,
}

/// The key of one aggregate row within an environment, in the order rows are locked.
type Key<'a> = (&'a str, &'a str, i64, i64);

/// Sums a batch's buckets per aggregate row, in key order.
fn group(buckets: &[BucketReport]) -> BTreeMap<Key<'_>, Aggregate> {
    let mut rows: BTreeMap<Key<'_>, Aggregate> = BTreeMap::new();
    for bucket in buckets {
        let key = (
            bucket.flag.as_str(),
            bucket.variant.as_str(),
            bucket.config_version,
            bucket.start_ms,
        );
        let aggregate = Aggregate::of_bucket(bucket);
        match rows.get_mut(&key) {
            Some(row) => row.merge(&aggregate),
            None => {
                rows.insert(key, aggregate);
            }
        }
    }
    rows
}

fn to_i64(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn to_u64(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

fn unreadable(what: &str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow::anyhow!("a stored {what} is unreadable: {message}"))
}

/// Reads the aggregate columns of a `metric_aggregates` row.
fn aggregate_of(row: &AnyRow) -> Result<Aggregate, StoreError> {
    let latency: Option<String> = row.try_get("latency")?;
    let events: String = row.try_get("events")?;
    Ok(Aggregate {
        exposures: to_u64(row.try_get("exposures")?),
        errors: to_u64(row.try_get("errors")?),
        crashes: to_u64(row.try_get("crashes")?),
        latency: latency
            .map(|text| sketch::parse_stored(&text))
            .transpose()
            .map_err(|e| unreadable("latency sketch", e))?,
        events: serde_json::from_str(&events).map_err(|e| unreadable("event aggregate", e))?,
    })
}

/// Records one batch; see the module documentation.
pub(super) async fn record_metrics(
    pool: &AnyPool,
    backend: Backend,
    environment: &str,
    batch: &MetricsBatch,
    received_ms: i64,
) -> Result<Ingested, StoreError> {
    validate_batch(batch, received_ms).map_err(StoreError::Invalid)?;
    let rows = group(&batch.buckets);
    let mut tx = match backend {
        Backend::Sqlite => pool.begin_with(sqlite::BEGIN_WRITE).await?,
        Backend::Postgres => pool.begin().await?,
    };
    let outcome = record(&mut tx, backend, environment, batch, &rows, received_ms).await;
    match outcome {
        Ok(ingested) if ingested.accepted => {
            tx.commit().await?;
            Ok(ingested)
        }
        Ok(ingested) => {
            tx.rollback().await?;
            Ok(ingested)
        }
        Err(error) => {
            // A failed rollback closes the connection, which rolls back just the same.
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

async fn record(
    conn: &mut AnyConnection,
    backend: Backend,
    environment: &str,
    batch: &MetricsBatch,
    rows: &BTreeMap<Key<'_>, Aggregate>,
    received_ms: i64,
) -> Result<Ingested, StoreError> {
    let first: Option<String> = sqlx::query_scalar(
        "INSERT INTO metric_batches (env, batch_id, received_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (env, batch_id) DO NOTHING RETURNING batch_id",
    )
    .bind(environment)
    .bind(&batch.batch_id)
    .bind(received_ms)
    .fetch_optional(&mut *conn)
    .await?;
    if first.is_none() {
        return Ok(Ingested {
            accepted: false,
            duplicate: true,
            buckets: 0,
            crashes: 0,
        });
    }
    for (key, aggregate) in rows {
        merge_row(conn, backend, environment, *key, aggregate).await?;
    }
    upsert_instance(conn, environment, batch, received_ms).await?;
    if !batch.shadow.is_empty() {
        super::shadow::record(conn, backend, environment, &batch.shadow, received_ms).await?;
    }
    if !batch.dry_runs.is_empty() {
        super::dry_runs::record(conn, Some(environment), &batch.dry_runs).await?;
    }
    for crash in &batch.crashes {
        insert_crash(conn, environment, &batch.instance.id, crash, received_ms).await?;
    }
    if !batch.crashes.is_empty() {
        sqlx::query(
            "DELETE FROM crash_reports WHERE env = $1 AND id <= \
             (SELECT id FROM crash_reports WHERE env = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(environment)
        .bind(MAX_CRASH_REPORTS)
        .execute(&mut *conn)
        .await?;
    }
    // Pruning now and then is enough, and keeps concurrent batches from queueing on it.
    if rand::random::<u8>() < 4 {
        sqlx::query("DELETE FROM metric_batches WHERE env = $1 AND received_ms < $2")
            .bind(environment)
            .bind(received_ms.saturating_sub(BATCH_ID_RETENTION_MS))
            .execute(&mut *conn)
            .await?;
    }
    Ok(Ingested {
        accepted: true,
        duplicate: false,
        buckets: rows.len(),
        crashes: batch.crashes.len(),
    })
}

const KEY_MATCH: &str = "env = $1 AND flag = $2 AND variant = $3 AND config_version = $4 \
                         AND bucket_start_ms = $5";

async fn merge_row(
    conn: &mut AnyConnection,
    backend: Backend,
    environment: &str,
    (flag, variant, config_version, start_ms): Key<'_>,
    incoming: &Aggregate,
) -> Result<(), StoreError> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO metric_aggregates (env, flag, variant, config_version, bucket_start_ms, \
         exposures, errors, crashes, latency, events) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (env, flag, variant, config_version, bucket_start_ms) DO NOTHING \
         RETURNING exposures",
    )
    .bind(environment)
    .bind(flag)
    .bind(variant)
    .bind(config_version)
    .bind(start_ms)
    .bind(to_i64(incoming.exposures))
    .bind(to_i64(incoming.errors))
    .bind(to_i64(incoming.crashes))
    .bind(incoming.latency.as_ref().map(to_json).transpose()?)
    .bind(to_json(&incoming.events)?)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        return Ok(());
    }
    // The row exists: lock it, merge in Rust, write it back.
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "SELECT exposures, errors, crashes, latency, events FROM metric_aggregates \
         WHERE {KEY_MATCH}{lock}"
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(environment)
        .bind(flag)
        .bind(variant)
        .bind(config_version)
        .bind(start_ms)
        .fetch_one(&mut *conn)
        .await?;
    let mut merged = aggregate_of(&row)?;
    merged.merge(incoming);
    let sql = format!(
        "UPDATE metric_aggregates SET exposures = $6, errors = $7, crashes = $8, latency = $9, \
         events = $10 WHERE {KEY_MATCH}"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(environment)
        .bind(flag)
        .bind(variant)
        .bind(config_version)
        .bind(start_ms)
        .bind(to_i64(merged.exposures))
        .bind(to_i64(merged.errors))
        .bind(to_i64(merged.crashes))
        .bind(merged.latency.as_ref().map(to_json).transpose()?)
        .bind(to_json(&merged.events)?)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn upsert_instance(
    conn: &mut AnyConnection,
    environment: &str,
    batch: &MetricsBatch,
    received_ms: i64,
) -> Result<(), StoreError> {
    // Fields of the report with the newest `sentAtMs` win; `last_seen_ms` never goes back.
    let newer = "excluded.reported_at_ms >= sdk_instances.reported_at_ms";
    let sql = format!(
        "INSERT INTO sdk_instances (env, instance_id, sdk, config_version, dropped, \
         reported_at_ms, first_seen_ms, last_seen_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (env, instance_id) DO UPDATE SET \
         sdk = CASE WHEN {newer} THEN excluded.sdk ELSE sdk_instances.sdk END, \
         config_version = CASE WHEN {newer} THEN excluded.config_version \
             ELSE sdk_instances.config_version END, \
         dropped = CASE WHEN {newer} THEN excluded.dropped ELSE sdk_instances.dropped END, \
         reported_at_ms = CASE WHEN {newer} THEN excluded.reported_at_ms \
             ELSE sdk_instances.reported_at_ms END, \
         last_seen_ms = CASE WHEN excluded.last_seen_ms > sdk_instances.last_seen_ms \
             THEN excluded.last_seen_ms ELSE sdk_instances.last_seen_ms END"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(environment)
        .bind(&batch.instance.id)
        .bind(&batch.instance.sdk)
        .bind(batch.instance.config_version)
        .bind(to_i64(batch.dropped))
        .bind(batch.sent_at_ms)
        .bind(received_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn insert_crash(
    conn: &mut AnyConnection,
    environment: &str,
    instance_id: &str,
    crash: &CrashReport,
    received_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO crash_reports (env, instance_id, at_ms, received_ms, message, location, \
         variants) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(environment)
    .bind(instance_id)
    .bind(crash.at_ms)
    .bind(received_ms)
    .bind(&crash.message)
    .bind(crash.location.as_deref())
    .bind(to_json(&crash.variants)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The aggregates of one flag from the bucket holding `since_ms` on, oldest first (then by
/// variant and configuration version), at most `limit` rows.
pub(super) async fn flag_metrics(
    pool: &AnyPool,
    environment: &str,
    flag: &str,
    since_ms: i64,
    limit: u32,
) -> Result<Vec<AggregateRow>, StoreError> {
    let sql = format!(
        "SELECT flag, variant, config_version, bucket_start_ms, exposures, errors, crashes, \
         latency, events FROM metric_aggregates \
         WHERE env = $1 AND flag = $2 AND bucket_start_ms >= $3 \
         ORDER BY bucket_start_ms, variant, config_version LIMIT {limit}"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(environment)
        .bind(flag)
        .bind(bucket_start(since_ms))
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(AggregateRow {
                flag: row.try_get("flag")?,
                variant: row.try_get("variant")?,
                config_version: row.try_get("config_version")?,
                start_ms: row.try_get("bucket_start_ms")?,
                aggregate: aggregate_of(row)?,
            })
        })
        .collect()
}

/// Instances of an environment last seen at or after `seen_since_ms`, most recent first.
pub(super) async fn instances(
    pool: &AnyPool,
    environment: &str,
    seen_since_ms: i64,
    limit: u32,
) -> Result<Vec<InstanceRow>, StoreError> {
    let sql = format!(
        "SELECT instance_id, sdk, config_version, dropped, first_seen_ms, last_seen_ms \
         FROM sdk_instances WHERE env = $1 AND last_seen_ms >= $2 \
         ORDER BY last_seen_ms DESC, instance_id LIMIT {limit}"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(environment)
        .bind(seen_since_ms)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(InstanceRow {
                id: row.try_get("instance_id")?,
                sdk: row.try_get("sdk")?,
                config_version: row.try_get("config_version")?,
                dropped: to_u64(row.try_get("dropped")?),
                first_seen_ms: row.try_get("first_seen_ms")?,
                last_seen_ms: row.try_get("last_seen_ms")?,
            })
        })
        .collect()
}

/// Crash reports of an environment received at or after `since_ms`, newest first.
pub(super) async fn crash_reports(
    pool: &AnyPool,
    environment: &str,
    since_ms: i64,
    limit: u32,
) -> Result<Vec<StoredCrash>, StoreError> {
    let sql = format!(
        "SELECT instance_id, at_ms, received_ms, message, location, variants \
         FROM crash_reports WHERE env = $1 AND received_ms >= $2 ORDER BY id DESC LIMIT {limit}"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(environment)
        .bind(since_ms)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            let variants: String = row.try_get("variants")?;
            Ok(StoredCrash {
                instance_id: row.try_get("instance_id")?,
                received_ms: row.try_get("received_ms")?,
                report: CrashReport {
                    at_ms: row.try_get("at_ms")?,
                    message: row.try_get("message")?,
                    location: row.try_get("location")?,
                    variants: serde_json::from_str(&variants)
                        .map_err(|e| unreadable("crash report", e))?,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(variant: &str, exposures: u64, latency: &[f64]) -> AggregateRow {
        let mut sketch = LatencySketch::default();
        for &value in latency {
            sketch.0.add(value);
        }
        let mut events = BTreeMap::new();
        events.insert(
            "checkout".to_owned(),
            EventAggregate {
                count: 1,
                sum: 2.0,
                sum_sq: 4.0,
            },
        );
        AggregateRow {
            flag: "f".into(),
            variant: variant.into(),
            config_version: 1,
            start_ms: 0,
            aggregate: Aggregate {
                exposures,
                errors: 1,
                crashes: 0,
                latency: (!latency.is_empty()).then_some(sketch),
                events,
            },
        }
    }

    #[test]
    fn rows_sum_per_variant_and_per_arm() {
        let rows = [
            row("on", 10, &[1.0, 2.0]),
            row("on", 5, &[]),
            row("off", 7, &[3.0]),
            row("other", 100, &[]),
        ];
        let totals = totals_by_variant(&rows);
        assert_eq!(totals["on"].exposures, 15);
        assert_eq!(totals["on"].errors, 2);
        assert_eq!(
            totals["on"].latency.as_ref().map(LatencySketch::count),
            Some(2)
        );
        assert_eq!(totals["on"].events["checkout"].sum, 4.0);
        let arms = arm_totals(&rows, &["off"], &["on"]);
        assert_eq!(arms.control.exposures, 7);
        assert_eq!(arms.treatment.exposures, 15);
        assert_eq!(arms.treatment.events["checkout"].count, 2);
    }

    #[test]
    fn counts_saturate_and_sums_stay_finite() {
        let mut a = row("on", u64::MAX, &[]).aggregate;
        let mut b = row("on", 1, &[]).aggregate;
        if let Some(event) = b.events.get_mut("checkout") {
            event.sum = f64::MAX;
        }
        a.merge(&b);
        a.merge(&b);
        assert_eq!(a.exposures, u64::MAX);
        assert_eq!(a.events["checkout"].sum, f64::MAX);
    }

    #[test]
    fn a_batch_groups_its_buckets_by_row() {
        let bucket = |variant: &str, exposures| BucketReport {
            start_ms: 10_000,
            flag: "f".into(),
            variant: variant.into(),
            config_version: 2,
            exposures,
            ..BucketReport::default()
        };
        let buckets = [bucket("on", 1), bucket("off", 2), bucket("on", 3)];
        let rows = group(&buckets);
        let keys: Vec<_> = rows.keys().map(|k| k.1).collect();
        assert_eq!(keys, ["off", "on"]);
        assert_eq!(rows[&("f", "on", 2, 10_000)].exposures, 4);
    }
}
