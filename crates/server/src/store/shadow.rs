//! Shadow experiment results in the store (migration `0007_experiments.sql`): merged per
//! experiment, configuration version and bucket in the metrics batch's own transaction, so a
//! retried batch counts once; a few mismatching pairs kept per experiment.

use serde::{Deserialize, Serialize};
use sluice_core::shadow::ShadowTotals;
use sluice_core::telemetry::{MismatchSample, ShadowReport, bucket_start};
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Row};

use super::tables::to_json;
use super::{Backend, StoreError};

/// How many mismatching pairs each experiment keeps per environment.
pub const MAX_SHADOW_SAMPLES: i64 = 100;

/// One stored shadow aggregate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowRow {
    /// The configuration version the sampling flag was evaluated under.
    pub config_version: i64,
    /// The bucket's start, Unix milliseconds.
    pub start_ms: i64,
    /// What was recorded (no samples).
    pub report: ShadowReport,
}

/// Sums rows.
pub fn totals(rows: &[ShadowRow]) -> ShadowTotals {
    let mut totals = ShadowTotals::default();
    for row in rows {
        totals.add(&row.report);
    }
    totals
}

fn merge(ours: &mut ShadowReport, theirs: &ShadowReport) {
    let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
    add(&mut ours.matches, theirs.matches);
    add(&mut ours.mismatches, theirs.mismatches);
    add(&mut ours.ignored, theirs.ignored);
    add(&mut ours.noisy, theirs.noisy);
    add(&mut ours.candidate_errors, theirs.candidate_errors);
    add(&mut ours.candidate_timeouts, theirs.candidate_timeouts);
    add(&mut ours.dropped, theirs.dropped);
    add(&mut ours.noise_comparisons, theirs.noise_comparisons);
    add(&mut ours.noise_mismatches, theirs.noise_mismatches);
    for (mine, other) in [
        (&mut ours.control_latency, &theirs.control_latency),
        (&mut ours.candidate_latency, &theirs.candidate_latency),
    ] {
        match (mine.as_mut(), other) {
            (_, None) => {}
            (None, Some(sketch)) => *mine = Some(sketch.clone()),
            (Some(sketch), Some(more)) => {
                if let Err(message) = super::telemetry::merge_sketch(sketch, more) {
                    tracing::warn!(message, "shadow latency not merged");
                }
            }
        }
    }
}

fn unreadable(message: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow::anyhow!(
        "a stored shadow aggregate is unreadable: {message}"
    ))
}

fn parse(text: &str) -> Result<ShadowReport, StoreError> {
    let report: ShadowReport = serde_json::from_str(text).map_err(unreadable)?;
    for sketch in [&report.control_latency, &report.candidate_latency]
        .into_iter()
        .flatten()
    {
        super::telemetry::check_sketch(sketch).map_err(unreadable)?;
    }
    Ok(report)
}

/// Merges a batch's shadow reports, inside the batch's transaction, in key order.
pub(super) async fn record(
    conn: &mut AnyConnection,
    backend: Backend,
    environment: &str,
    reports: &[ShadowReport],
    received_ms: i64,
) -> Result<usize, StoreError> {
    let mut grouped: std::collections::BTreeMap<(&str, i64, i64), ShadowReport> =
        std::collections::BTreeMap::new();
    let mut samples: Vec<(&str, &MismatchSample)> = Vec::new();
    for report in reports {
        let key = (
            report.experiment.as_str(),
            report.config_version,
            report.start_ms,
        );
        let mut plain = report.clone();
        plain.samples.clear();
        plain.experiment.clear();
        if let Some(sketch) = &plain.control_latency
            && sketch.count() == 0
        {
            plain.control_latency = None;
        }
        if let Some(sketch) = &plain.candidate_latency
            && sketch.count() == 0
        {
            plain.candidate_latency = None;
        }
        match grouped.get_mut(&key) {
            Some(existing) => merge(existing, &plain),
            None => {
                grouped.insert(key, plain);
            }
        }
        samples.extend(
            report
                .samples
                .iter()
                .map(|s| (report.experiment.as_str(), s)),
        );
    }
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    const KEY: &str =
        "env = $1 AND experiment = $2 AND config_version = $3 AND bucket_start_ms = $4";
    for ((experiment, version, start_ms), report) in &grouped {
        let inserted: Option<String> = sqlx::query_scalar(
            "INSERT INTO shadow_aggregates (env, experiment, config_version, bucket_start_ms, \
             report) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (env, experiment, config_version, bucket_start_ms) DO NOTHING \
             RETURNING experiment",
        )
        .bind(environment)
        .bind(*experiment)
        .bind(*version)
        .bind(*start_ms)
        .bind(to_json(report)?)
        .fetch_optional(&mut *conn)
        .await?;
        if inserted.is_some() {
            continue;
        }
        let sql = format!("SELECT report FROM shadow_aggregates WHERE {KEY}{lock}");
        let text: String = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(environment)
            .bind(*experiment)
            .bind(*version)
            .bind(*start_ms)
            .fetch_one(&mut *conn)
            .await?;
        let mut merged = parse(&text)?;
        merge(&mut merged, report);
        let sql = format!("UPDATE shadow_aggregates SET report = $5 WHERE {KEY}");
        sqlx::query(AssertSqlSafe(sql))
            .bind(environment)
            .bind(*experiment)
            .bind(*version)
            .bind(*start_ms)
            .bind(to_json(&merged)?)
            .execute(&mut *conn)
            .await?;
    }
    for (experiment, sample) in &samples {
        sqlx::query(
            "INSERT INTO shadow_samples (env, experiment, at_ms, received_ms, control, candidate) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(environment)
        .bind(*experiment)
        .bind(sample.at_ms)
        .bind(received_ms)
        .bind(&sample.control)
        .bind(&sample.candidate)
        .execute(&mut *conn)
        .await?;
    }
    let experiments: std::collections::BTreeSet<&str> =
        samples.iter().map(|(experiment, _)| *experiment).collect();
    for experiment in experiments {
        sqlx::query(
            "DELETE FROM shadow_samples WHERE env = $1 AND experiment = $2 AND id <= \
             (SELECT id FROM shadow_samples WHERE env = $1 AND experiment = $2 \
              ORDER BY id DESC LIMIT 1 OFFSET $3)",
        )
        .bind(environment)
        .bind(experiment)
        .bind(MAX_SHADOW_SAMPLES)
        .execute(&mut *conn)
        .await?;
    }
    Ok(grouped.len())
}

/// The shadow aggregates of one experiment from the bucket holding `since_ms` on, oldest first.
pub(super) async fn shadow_metrics(
    pool: &AnyPool,
    environment: &str,
    experiment: &str,
    since_ms: i64,
) -> Result<Vec<ShadowRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT config_version, bucket_start_ms, report FROM shadow_aggregates \
         WHERE env = $1 AND experiment = $2 AND bucket_start_ms >= $3 \
         ORDER BY bucket_start_ms, config_version",
    )
    .bind(environment)
    .bind(experiment)
    .bind(bucket_start(since_ms))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let text: String = row.try_get("report")?;
            let mut report = parse(&text)?;
            report.experiment = experiment.to_owned();
            Ok(ShadowRow {
                config_version: row.try_get("config_version")?,
                start_ms: row.try_get("bucket_start_ms")?,
                report,
            })
        })
        .collect()
}

/// The newest mismatching pairs of one experiment, newest first.
pub(super) async fn shadow_samples(
    pool: &AnyPool,
    environment: &str,
    experiment: &str,
    limit: u32,
) -> Result<Vec<MismatchSample>, StoreError> {
    let sql = format!(
        "SELECT at_ms, control, candidate FROM shadow_samples \
         WHERE env = $1 AND experiment = $2 ORDER BY id DESC LIMIT {limit}"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(environment)
        .bind(experiment)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(MismatchSample {
                at_ms: row.try_get("at_ms")?,
                control: row.try_get("control")?,
                candidate: row.try_get("candidate")?,
            })
        })
        .collect()
}
