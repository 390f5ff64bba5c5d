//! Dry runs in the server: the staged engines compiled with each environment's
//! configuration, the server's own tallies from OFREP evaluations, and their flush.
//!
//! The tallies outlive any one configuration: a reload compiles new `StagedFlag`s that count
//! into the same entry of core's `Tallies` (by dry-run id), and the flusher drains them into
//! the store every [`FLUSH_INTERVAL`].
//! A report read flushes first, so what this replica counted is in it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_core::FlagFile;
use sluice_core::dry_run::{StagedFlag, Tallies, compile_staged};

use crate::state::{AppState, until_shutdown};
use crate::store::{StoreError, StoredDryRun};

/// How often the server's own tallies are written to the store.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// The running dry runs of `environment`, compiled against `file`, by flag, and the
/// `dry_runs` list SDKs receive with the configuration. A dry run whose staged rules no
/// longer compile (the flag changed since it started) is left out, with a warning.
pub fn compile_for(
    file: &FlagFile,
    environment: &str,
    running: &[StoredDryRun],
    tallies: &Tallies,
) -> (HashMap<String, Arc<StagedFlag>>, Value) {
    let mut staged_flags = HashMap::new();
    let mut listed = Vec::new();
    for dry_run in running.iter().filter(|d| d.env == environment) {
        match compile_staged(file, &dry_run.flag, environment, &dry_run.staged) {
            Ok(engine) => {
                staged_flags.insert(
                    dry_run.flag.clone(),
                    Arc::new(tallies.staged(dry_run.id, &dry_run.flag, engine)),
                );
                listed.push(json!({
                    "id": dry_run.id,
                    "flag": dry_run.flag,
                    "staged": dry_run.staged,
                }));
            }
            Err(errors) => tracing::warn!(
                dry_run = dry_run.id,
                flag = %dry_run.flag,
                environment,
                %errors,
                "a dry run's staged rules no longer compile; it is not evaluated"
            ),
        }
    }
    (staged_flags, Value::Array(listed))
}

/// Writes the server's tallies to the store; on failure they are kept for the next flush.
pub async fn flush(state: &AppState) -> Result<(), StoreError> {
    let reports = state.dry_run_tallies().take();
    if reports.is_empty() {
        return Ok(());
    }
    match state.store().record_dry_runs(&reports).await {
        Ok(()) => Ok(()),
        Err(error) => {
            state.dry_run_tallies().restore(reports);
            Err(error)
        }
    }
}

/// Flushes every [`FLUSH_INTERVAL`] until shutdown, and once more then.
pub async fn run_flusher(state: AppState) {
    let mut shutdown = state.shutdown_signal();
    loop {
        tokio::select! {
            () = tokio::time::sleep(FLUSH_INTERVAL) => {}
            () = until_shutdown(&mut shutdown) => {
                if let Err(error) = flush(&state).await {
                    tracing::warn!(%error, "dry-run tallies not written at shutdown");
                }
                return;
            }
        }
        if let Err(error) = flush(&state).await {
            tracing::warn!(%error, "dry-run tallies not written; retrying at the next flush");
        }
    }
}
