//! Dry runs in the SDK: rule changes staged on the server, evaluated beside the rules served.
//!
//! A server configuration lists its environment's running dry runs (`dry_runs`: id, flag and
//! the staged override). The SDK compiles each against the configuration's flags, and every
//! served evaluation of such a flag also evaluates the staged rules and counts the pair of
//! variants (core's `StagedFlag`). The caller always gets what the served rules say. The
//! tallies live in the client's telemetry, outlive configuration changes, and travel in
//! metrics batches; without telemetry (file mode, `.telemetry(false)`) nothing is evaluated.
//! A dry run whose staged rules do not compile is skipped with a warning.

use std::collections::HashMap;

use serde_json::Value;
use sluice_core::dry_run::{StagedFlag, Tallies, compile_staged, staged_from_value};
use sluice_core::{Context, Engine, Evaluation, FlagFile};

/// A dry run compiled for the configuration it came with, not yet counting anywhere.
#[derive(Debug)]
pub(crate) struct StagedRun {
    id: i64,
    flag: String,
    engine: Engine,
}

/// Compiles the `dry_runs` a configuration lists, against its flags.
pub(crate) fn compile(
    listed: Option<&Value>,
    file: &FlagFile,
    environment: &str,
) -> Vec<StagedRun> {
    let Some(Value::Array(listed)) = listed else {
        return Vec::new();
    };
    let mut runs = Vec::with_capacity(listed.len());
    for entry in listed {
        let id = entry.get("id").and_then(Value::as_i64);
        let flag = entry.get("flag").and_then(Value::as_str);
        let (Some(id), Some(flag), Some(staged)) = (id, flag, entry.get("staged")) else {
            tracing::warn!(
                "a dry run in the configuration lacks `id`, `flag` or `staged`; skipped"
            );
            continue;
        };
        match staged_from_value(staged.clone())
            .and_then(|staged| compile_staged(file, flag, environment, &staged))
        {
            Ok(engine) => runs.push(StagedRun {
                id,
                flag: flag.to_owned(),
                engine,
            }),
            Err(errors) => {
                tracing::warn!(dry_run = id, flag, %errors, "a dry run does not compile; skipped");
            }
        }
    }
    runs
}

/// The dry runs a snapshot evaluates, by flag.
#[derive(Debug, Default)]
pub(crate) struct Active(HashMap<String, StagedFlag>);

impl Active {
    /// The runs, counting into `tallies`.
    pub(crate) fn new(runs: Vec<StagedRun>, tallies: &Tallies) -> Active {
        Active(
            runs.into_iter()
                .map(|run| {
                    (
                        run.flag.clone(),
                        tallies.staged(run.id, &run.flag, run.engine),
                    )
                })
                .collect(),
        )
    }

    /// Counts a served evaluation against the staged rules of its flag, if any.
    #[inline]
    pub(crate) fn observe(&self, served: &Evaluation<'_>, context: &Context) {
        if self.0.is_empty() {
            return;
        }
        if let Some(staged) = served.flag.and_then(|info| self.0.get(info.key.as_str())) {
            staged.observe(served, context, crate::telemetry::now_ms);
        }
    }
}
