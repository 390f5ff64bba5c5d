//! Dry runs of staged rule changes (migration `0008_dry_runs.sql`).
//!
//! Starting and stopping a dry run is a configuration write: one audit record
//! (`dry_run.start`, `dry_run.stop` on `dry-run:<id>`) and a version bump, because SDKs receive
//! the running dry runs with their configuration. At most one runs per flag and environment
//! (a partial unique index). The staged rules are checked against the whole configuration
//! when the dry run starts; a later flag write that makes them invalid does not stop it, the
//! evaluators skip it and its report says why. Tallies are data, merged without audit.

use serde::{Deserialize, Serialize};
use sluice_core::dry_run::{DryRunReport, DryRunSample, Transition, compile_staged};
use sluice_core::model::EnvironmentOverride;
use sqlx::{AnyConnection, AnyPool, Row, any::AnyRow};

use super::tables::{FLAGS, list_environments, load_config, to_json};
use super::writes::{Entry, Outcome};
use super::{Change, StoreError};

/// How many sampled contexts each dry run keeps.
pub const MAX_DRY_RUN_SAMPLES: i64 = 20;

/// Whether a dry run is still evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DryRunStatus {
    /// Evaluators evaluate the staged rules beside the served ones.
    Running,
    /// Stopped; its tallies stay readable.
    Stopped,
}

impl DryRunStatus {
    fn as_str(self) -> &'static str {
        match self {
            DryRunStatus::Running => "running",
            DryRunStatus::Stopped => "stopped",
        }
    }
}

/// A dry run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredDryRun {
    /// Its id.
    pub id: i64,
    /// The environment whose rules are staged.
    pub env: String,
    /// The flag.
    pub flag: String,
    /// The staged override: the fields it sets replace the flag's in `env`.
    pub staged: EnvironmentOverride,
    /// The flag's version when the dry run started.
    pub flag_version: i64,
    /// Running or stopped.
    pub status: DryRunStatus,
    /// When it started, Unix milliseconds.
    pub created_ms: i64,
    /// The token that started it.
    pub created_by: Option<String>,
    /// Why, in its author's words.
    pub reason: Option<String>,
    /// When it stopped.
    pub ended_ms: Option<i64>,
}

/// A dry run to start.
#[derive(Debug, Clone)]
pub struct NewDryRun {
    /// The environment.
    pub env: String,
    /// The flag.
    pub flag: String,
    /// The staged override.
    pub staged: EnvironmentOverride,
}

/// What a dry run's evaluators tallied.
#[derive(Debug, Clone, Default)]
pub struct DryRunTallies {
    /// Evaluations per (served, staged) pair.
    pub transitions: Vec<Transition>,
    /// The newest sampled contexts whose variant would change, newest first.
    pub samples: Vec<DryRunSample>,
}

const COLUMNS: &str = "SELECT id, env, flag, staged, flag_version, status, created_ms, \
     created_by, reason, ended_ms FROM dry_runs";

fn read(row: &AnyRow) -> Result<StoredDryRun, StoreError> {
    let staged: String = row.try_get("staged")?;
    let status: String = row.try_get("status")?;
    Ok(StoredDryRun {
        id: row.try_get("id")?,
        env: row.try_get("env")?,
        flag: row.try_get("flag")?,
        staged: serde_json::from_str(&staged).map_err(|e| {
            StoreError::Other(anyhow::anyhow!("a stored dry run is unreadable: {e}"))
        })?,
        flag_version: row.try_get("flag_version")?,
        status: if status == "running" {
            DryRunStatus::Running
        } else {
            DryRunStatus::Stopped
        },
        created_ms: row.try_get("created_ms")?,
        created_by: row.try_get("created_by")?,
        reason: row.try_get("reason")?,
        ended_ms: row.try_get("ended_ms")?,
    })
}

async fn fetch(conn: &mut AnyConnection, id: i64) -> Result<StoredDryRun, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} WHERE id = $1")))
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    read(&row)
}

/// Starts a dry run, after checking the staged rules against the whole configuration.
pub(super) async fn start(
    conn: &mut AnyConnection,
    change: &Change,
    new: &NewDryRun,
) -> Result<Outcome<StoredDryRun>, StoreError> {
    let environments = list_environments(conn).await?;
    if !environments.iter().any(|e| e.name == new.env) {
        return Err(StoreError::NotFound);
    }
    let flag = FLAGS
        .get::<sluice_core::model::FlagDef>(conn, &new.flag)
        .await?;
    let config = load_config(conn).await?;
    compile_staged(&config.file, &new.flag, &new.env, &new.staged).map_err(StoreError::Invalid)?;
    let staged = to_json(&new.staged)?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO dry_runs (env, flag, staged, flag_version, status, created_ms, created_by, \
         reason) VALUES ($1, $2, $3, $4, 'running', $5, $6, $7) RETURNING id",
    )
    .bind(&new.env)
    .bind(&new.flag)
    .bind(&staged)
    .bind(flag.version)
    .bind(change.now_ms)
    .bind(&change.actor)
    .bind(&change.reason)
    .fetch_one(&mut *conn)
    .await?;
    let dry_run = fetch(conn, id).await?;
    let entry = Entry {
        action: "dry_run.start",
        resource: format!("dry-run:{id}"),
        before: None,
        after: Some(to_json(&dry_run)?),
    };
    Ok(Outcome::Write(dry_run, entry))
}

/// Stops a dry run; stopping a stopped one changes nothing.
pub(super) async fn stop(
    conn: &mut AnyConnection,
    change: &Change,
    id: i64,
) -> Result<Outcome<StoredDryRun>, StoreError> {
    let before = fetch(conn, id).await?;
    if before.status == DryRunStatus::Stopped {
        return Ok(Outcome::Unchanged(before));
    }
    sqlx::query("UPDATE dry_runs SET status = $1, ended_ms = $2 WHERE id = $3")
        .bind(DryRunStatus::Stopped.as_str())
        .bind(change.now_ms)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let after = fetch(conn, id).await?;
    let entry = Entry {
        action: "dry_run.stop",
        resource: format!("dry-run:{id}"),
        before: Some(to_json(&before)?),
        after: Some(to_json(&after)?),
    };
    Ok(Outcome::Write(after, entry))
}

/// One dry run.
pub(super) async fn get(pool: &AnyPool, id: i64) -> Result<StoredDryRun, StoreError> {
    let mut conn = pool.acquire().await?;
    fetch(&mut conn, id).await
}

/// Dry runs, newest first, optionally of one environment and one flag.
pub(super) async fn list(
    conn: &mut AnyConnection,
    env: Option<&str>,
    flag: Option<&str>,
    running_only: bool,
) -> Result<Vec<StoredDryRun>, StoreError> {
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    for (column, value) in [("env", env), ("flag", flag)] {
        if let Some(value) = value {
            binds.push(value);
            clauses.push(format!("{column} = ${}", binds.len()));
        }
    }
    if running_only {
        clauses.push("status = 'running'".to_owned());
    }
    let mut sql = COLUMNS.to_owned();
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(" ORDER BY id DESC LIMIT 1000");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = query.bind(bind);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter().map(read).collect()
}

/// Merges tallies. With `environment`, only dry runs of that environment are counted (what an
/// SDK's server token may report); reports of unknown or other dry runs are skipped.
pub(super) async fn record(
    conn: &mut AnyConnection,
    environment: Option<&str>,
    reports: &[DryRunReport],
) -> Result<(), StoreError> {
    for report in reports {
        let env: Option<String> = sqlx::query_scalar("SELECT env FROM dry_runs WHERE id = $1")
            .bind(report.dry_run)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(env) = env else { continue };
        if environment.is_some_and(|wanted| wanted != env) {
            continue;
        }
        for transition in &report.transitions {
            let count = i64::try_from(transition.count).unwrap_or(i64::MAX);
            sqlx::query(
                "INSERT INTO dry_run_transitions (dry_run_id, from_variant, to_variant, count) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (dry_run_id, from_variant, to_variant) \
                 DO UPDATE SET count = dry_run_transitions.count + excluded.count",
            )
            .bind(report.dry_run)
            .bind(&transition.from)
            .bind(&transition.to)
            .bind(count)
            .execute(&mut *conn)
            .await?;
        }
        for sample in &report.samples {
            sqlx::query(
                "INSERT INTO dry_run_samples (dry_run_id, at_ms, context, from_variant, \
                 to_variant) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(report.dry_run)
            .bind(sample.at_ms)
            .bind(&sample.context)
            .bind(&sample.from)
            .bind(&sample.to)
            .execute(&mut *conn)
            .await?;
        }
        if !report.samples.is_empty() {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM dry_run_samples WHERE dry_run_id = $1 AND id NOT IN \
                 (SELECT id FROM dry_run_samples WHERE dry_run_id = $1 ORDER BY id DESC \
                 LIMIT {MAX_DRY_RUN_SAMPLES})"
            )))
            .bind(report.dry_run)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// A dry run's tallies.
pub(super) async fn tallies(pool: &AnyPool, id: i64) -> Result<DryRunTallies, StoreError> {
    let mut conn = pool.acquire().await?;
    let transitions = sqlx::query(
        "SELECT from_variant, to_variant, count FROM dry_run_transitions WHERE dry_run_id = $1 \
         ORDER BY from_variant, to_variant",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        let count: i64 = row.try_get("count")?;
        Ok(Transition {
            from: row.try_get("from_variant")?,
            to: row.try_get("to_variant")?,
            count: u64::try_from(count).unwrap_or(0),
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    let samples = sqlx::query(
        "SELECT at_ms, context, from_variant, to_variant FROM dry_run_samples \
         WHERE dry_run_id = $1 ORDER BY id DESC",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        Ok(DryRunSample {
            at_ms: row.try_get("at_ms")?,
            context: row.try_get("context")?,
            from: row.try_get("from_variant")?,
            to: row.try_get("to_variant")?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(DryRunTallies {
        transitions,
        samples,
    })
}
