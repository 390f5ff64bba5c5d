//! The dry-run panel of a flag's page: the newest dry run of the flag in one environment, its
//! staged rules in words and its would-change counts. Admins only, like the dry-run API.
//! Starting, stopping and applying stay in the CLI and the API.

use maud::{Markup, html};
use sluice_core::dry_run::DryRunTotals;

use crate::console::flag_detail::describe_rule;
use crate::state::AppState;
use crate::store::{DryRunStatus, StoredDryRun};

/// The panel for `key` in `env`, or `None` when it never had a dry run there.
pub async fn panel(state: &AppState, key: &str, env: &str) -> Option<Markup> {
    // What this replica counted since its last flush belongs in the figures.
    if let Err(error) = crate::dry_runs::flush(state).await {
        tracing::warn!(%error, "dry-run tallies not written before a console page");
    }
    let store = state.store();
    let newest: StoredDryRun = store
        .list_dry_runs(Some(env), Some(key))
        .await
        .ok()?
        .into_iter()
        .next()?;
    let tallies = store.dry_run_tallies(newest.id).await.ok()?;
    let totals = DryRunTotals::from_transitions(&tallies.transitions);
    let running = newest.status == DryRunStatus::Running;
    let share = |count: u64| {
        if totals.evaluations == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}%", count as f64 * 100.0 / totals.evaluations as f64)
        }
    };
    Some(html! {
        h3 { "Dry run " (newest.id) @if running { " (running)" } @else { " (stopped)" } }
        @if let Some(reason) = &newest.reason { p { "Why: " (reason) } }
        @if let Some(rules) = &newest.staged.rules {
            p { "Staged rules:" }
            ol { @for rule in rules { li { (describe_rule(rule)) } } }
        }
        @if let Some(default) = &newest.staged.default_variant {
            p { "Staged default: " code { (default) } }
        }
        @if let Some(enabled) = newest.staged.enabled {
            p { "Staged switch: " (if enabled { "on" } else { "off" }) }
        }
        @if totals.evaluations == 0 {
            p { "No evaluations compared yet." }
        } @else {
            p {
                "Compared " (totals.evaluations) " evaluations: " strong { (totals.would_change) }
                " (" (share(totals.would_change)) ") would get a different variant."
            }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Now" } th scope="col" { "Staged" } th scope="col" { "Evaluations" } th scope="col" { "Share" } } }
                    tbody {
                        @for t in &totals.transitions {
                            tr {
                                td { code { (t.from) } }
                                td { code { (t.to) } @if !t.changes() { " (same)" } }
                                td { (t.count) }
                                td { (share(t.count)) }
                            }
                        }
                    }
                }
            }
        }
        @if running {
            p { "Apply or stop it with " code { "sluice flags dry-run apply|stop " (key) " --env " (env) } "." }
        }
    })
}
