//! Rollback drills: turn a release's flags off in one environment, wait until every live SDK
//! instance there has acknowledged the configuration that did it, then turn them back on.
//!
//! An instance is live when it sent telemetry in the [`LIVE_WINDOW_MS`] before the drill
//! began. Its acknowledgement is its report of an applied configuration version at or past
//! the one that turned the last flag off (see ARCHITECTURE.md, "Acknowledgements"). Its
//! time-to-kill runs from the moment before the first flag was turned off to the server's
//! receipt of that report, read as `lastSeenMs` when the drill first sees the new version
//! (never later than the poll that saw it). Instances that do not acknowledge before the
//! timeout are listed. The flags are restored whatever happened, each to the exact enabled
//! setting it had in the environment, and the drill is recorded on the release.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use sluice_core::release::DrillTimings;

use crate::state::{AppState, now_ms};
use crate::store::{Change, ReleaseChange, StoreError, StoredRelease};

/// How recently an instance must have reported to count as live: two minutes.
pub const LIVE_WINDOW_MS: i64 = 120_000;
/// How often the drill reads the instances.
pub const POLL: Duration = Duration::from_millis(25);
/// The longest a drill waits.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// One instance's part in a drill.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillInstance {
    /// The instance id.
    pub id: String,
    /// Its SDK.
    pub sdk: String,
    /// The version it had applied when the drill began.
    pub version_before: Option<i64>,
    /// When it acknowledged, by the server's clock.
    pub acknowledged_ms: Option<i64>,
    /// Acknowledged − started.
    pub time_to_kill_ms: Option<i64>,
}

/// What a drill found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    /// The release.
    pub release: String,
    /// The environment.
    pub env: String,
    /// The flags turned off and restored.
    pub flags: Vec<String>,
    /// When it began: just before the first flag was turned off.
    pub started_ms: i64,
    /// The configuration version with every flag off.
    pub kill_version: i64,
    /// When waiting ended.
    pub finished_ms: i64,
    /// The timeout given.
    pub timeout_ms: i64,
    /// Whether it ended by timeout.
    pub timed_out: bool,
    /// Every live instance.
    pub instances: Vec<DrillInstance>,
    /// The ids of those that never acknowledged.
    pub never_acknowledged: Vec<String>,
    /// Time-to-kill percentiles over those that did.
    pub timings: Option<DrillTimings>,
    /// Whether every flag was restored.
    pub restored: bool,
    /// The configuration version after restoring.
    pub restore_version: Option<i64>,
    /// Restore problems, if any.
    pub restore_errors: Vec<String>,
}

/// Why a drill could not run.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// The environment does not exist.
    #[error("environment `{0}` does not exist")]
    UnknownEnvironment(String),
    /// A flag of the release does not exist.
    #[error("flag `{0}` of the release does not exist")]
    UnknownFlag(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs a drill of `release` in `env`, waiting at most `timeout`; `actor` is who asked.
pub async fn run_drill(
    state: &AppState,
    release: &StoredRelease,
    env: &str,
    timeout: Duration,
    actor: &str,
    request_id: Option<&str>,
) -> Result<DrillReport, DrillError> {
    let store = state.store();
    match store.get_environment(env).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => return Err(DrillError::UnknownEnvironment(env.to_owned())),
        Err(error) => return Err(error.into()),
    }
    let mut previous = Vec::new();
    for key in &release.spec.flags {
        match store.get_flag(key).await {
            Ok(flag) => previous.push((
                key.clone(),
                flag.definition
                    .environments
                    .get(env)
                    .and_then(|e| e.enabled),
            )),
            Err(StoreError::NotFound) => return Err(DrillError::UnknownFlag(key.clone())),
            Err(error) => return Err(error.into()),
        }
    }
    let timeout = timeout.min(MAX_TIMEOUT);
    let change = |what: &str| {
        let mut change = Change::at(now_ms()).by(actor).because(format!(
            "rollback drill of release `{}`: {what}",
            release.name
        ));
        if let Some(id) = request_id {
            change = change.request(id);
        }
        change
    };
    let started_ms = now_ms();
    let live = store
        .instances(env, started_ms - LIVE_WINDOW_MS, 10_000)
        .await?;
    let mut kill_version = 0;
    let mut kill_error = None;
    for (key, _) in &previous {
        match store
            .set_flag_enabled(&change("flag off"), key, Some(env), false, None)
            .await
        {
            Ok(committed) => kill_version = committed.config_version,
            Err(error) => {
                kill_error = Some(error);
                break;
            }
        }
    }
    if let Err(error) = state.reload().await {
        tracing::error!(%error, "reload after a drill's flag-off failed");
    }
    let mut acknowledged: BTreeMap<String, i64> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut timed_out = false;
    if kill_error.is_none() {
        loop {
            let polled_ms = now_ms();
            let rows = store
                .instances(env, started_ms - LIVE_WINDOW_MS, 10_000)
                .await?;
            for row in rows {
                if live.iter().any(|l| l.id == row.id)
                    && !acknowledged.contains_key(&row.id)
                    && row.config_version.is_some_and(|v| v >= kill_version)
                {
                    acknowledged.insert(row.id.clone(), row.last_seen_ms.min(polled_ms));
                }
            }
            if live.iter().all(|l| acknowledged.contains_key(&l.id)) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                timed_out = true;
                break;
            }
            tokio::time::sleep(POLL).await;
        }
    }
    let finished_ms = now_ms();
    let mut restore_errors = Vec::new();
    let mut restore_version = None;
    for (key, enabled) in &previous {
        let restored = async {
            let mut flag = store.get_flag(key).await?;
            let version = flag.version;
            let entry = flag
                .definition
                .environments
                .entry(env.to_owned())
                .or_default();
            entry.enabled = *enabled;
            store
                .update_flag(&change("restore"), key, &flag.definition, Some(version))
                .await
        }
        .await;
        match restored {
            Ok(committed) => restore_version = Some(committed.config_version),
            Err(error) => restore_errors.push(format!("flag `{key}`: {error}")),
        }
    }
    if let Err(error) = state.reload().await {
        tracing::error!(%error, "reload after a drill's restore failed");
    }
    if let Some(error) = kill_error {
        return Err(error.into());
    }
    let instances: Vec<DrillInstance> = live
        .iter()
        .map(|row| {
            let at = acknowledged.get(&row.id).copied();
            DrillInstance {
                id: row.id.clone(),
                sdk: row.sdk.clone(),
                version_before: row.config_version,
                acknowledged_ms: at,
                time_to_kill_ms: at.map(|at| (at - started_ms).max(0)),
            }
        })
        .collect();
    let times: Vec<i64> = instances.iter().filter_map(|i| i.time_to_kill_ms).collect();
    let report = DrillReport {
        release: release.name.clone(),
        env: env.to_owned(),
        flags: previous.iter().map(|(key, _)| key.clone()).collect(),
        started_ms,
        kill_version,
        finished_ms,
        timeout_ms: i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX),
        timed_out,
        never_acknowledged: instances
            .iter()
            .filter(|i| i.acknowledged_ms.is_none())
            .map(|i| i.id.clone())
            .collect(),
        instances,
        timings: DrillTimings::from_times(&times),
        restored: restore_errors.is_empty(),
        restore_version,
        restore_errors,
    };
    let record = ReleaseChange::Event {
        kind: "drill",
        detail: json!(report),
    };
    store
        .change_release(&change("recorded"), &release.id, &record)
        .await?;
    Ok(report)
}
