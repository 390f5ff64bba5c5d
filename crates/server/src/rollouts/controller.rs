//! `tick`: judge every exposed rollout and apply what the judge decides; `run_command`: a
//! person's instruction; `run_loop`: the leader's timer around both and the webhook outbox.
//!
//! A transition that widens exposure (to a later stage, or completion) first asks the release
//! checklist gate ([`crate::releases::gate`]): while the rollout's release fails its
//! checklist and has no override, the transition is not applied and the hold is recorded on
//! the release; a person's promote gets the reason as an error.
//!
//! Every transition goes through [`Store::apply_transition`], one transaction that checks the
//! transition is the next one, so a tick that races another leader, a retried command, or a
//! replay after a crash never applies anything twice: the loser gets a conflict (or learns
//! the same transition was already applied) and the next tick decides again from the new
//! state. After any transition the configuration is reloaded at once, so SDK streams receive
//! the flag change without waiting for the change feed.

use std::time::Duration;

use serde::Serialize;
use sluice_core::rollout::{
    Command, CommandError, StageDecision, TransitionKind, Window, command, step,
};

use crate::releases::gate::{advances, gate_for, record_hold};
use crate::rollouts::webhooks::{Deliverer, deliver_due};
use crate::rollouts::window::gather;
use crate::state::{AppState, now_ms};
use crate::store::{
    AppliedRollout, Change, Committed, RolloutFilter, Store, StoreError, StoredRollout,
};

/// The most rollouts one tick looks at.
const MAX_ROLLOUTS_PER_TICK: u32 = 1000;
/// How often a command is recomputed when another writer moved the rollout meanwhile.
const COMMAND_ATTEMPTS: usize = 3;

/// What one tick did to one rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickOutcome {
    /// The rollout.
    pub rollout: String,
    /// Its flag.
    pub flag: String,
    /// Its environment.
    pub env: String,
    /// The transition decided, if any.
    pub kind: Option<TransitionKind>,
    /// Its seq.
    pub seq: Option<u64>,
    /// Whether this tick wrote it (false when it was already applied, or failed).
    pub applied: bool,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TickReport {
    /// Rollouts judged: running, awaiting approval or paused.
    pub examined: usize,
    /// Rollouts for which a transition was decided, or something failed.
    pub outcomes: Vec<TickOutcome>,
}

impl TickReport {
    /// The transitions this tick wrote.
    pub fn applied(&self) -> impl Iterator<Item = &TickOutcome> {
        self.outcomes.iter().filter(|o| o.applied)
    }
}

/// Why a command was not applied.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The pure controller refused it in the rollout's state.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The store failed or refused it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A release's checklist holds the rollout at its stage.
    #[error("{0}")]
    Held(String),
}

/// Judges every rollout whose new variant is exposed (running, awaiting approval or paused)
/// at `now_ms` and applies the transition each calls for. One rollout failing does not stop
/// the others; its error is in the report. Only the leader should call this.
pub async fn tick(state: &AppState, now_ms: i64) -> Result<TickReport, StoreError> {
    let filter = RolloutFilter {
        active_only: true,
        limit: Some(MAX_ROLLOUTS_PER_TICK),
        ..RolloutFilter::default()
    };
    let rollouts = state.store().list_rollouts(&filter).await?;
    let mut report = TickReport::default();
    for rollout in rollouts {
        if !rollout.state.status.is_exposed() {
            continue;
        }
        report.examined += 1;
        if let Some(outcome) = tick_one(state.store(), &rollout, now_ms).await {
            report.outcomes.push(outcome);
        }
    }
    if report.applied().next().is_some()
        && let Err(error) = state.reload().await
    {
        tracing::error!(%error, "reload after a rollout transition failed");
    }
    Ok(report)
}

async fn tick_one(store: &dyn Store, rollout: &StoredRollout, now_ms: i64) -> Option<TickOutcome> {
    let outcome = |kind, seq, applied, error| TickOutcome {
        rollout: rollout.id.clone(),
        flag: rollout.state.flag.clone(),
        env: rollout.state.environment.clone(),
        kind,
        seq,
        applied,
        error,
    };
    let window = match gather(store, rollout, now_ms).await {
        Ok(window) => window,
        Err(error) => {
            tracing::error!(rollout = rollout.id, %error, "cannot read the rollout's telemetry");
            return Some(outcome(None, None, false, Some(error.to_string())));
        }
    };
    let transition = step(&rollout.state, now_ms, &window).transition?;
    if advances(&transition) {
        match gate_for(store, rollout, now_ms).await {
            Ok(None) => {}
            Ok(Some((release, reason))) => {
                record_hold(store, &release, rollout, &transition, &reason, now_ms).await;
                return Some(outcome(
                    Some(transition.kind),
                    Some(transition.seq),
                    false,
                    Some(format!("held: {reason}")),
                ));
            }
            // The gate fails closed: a rollout does not widen on a checklist nobody could read.
            Err(error) => {
                return Some(outcome(
                    Some(transition.kind),
                    Some(transition.seq),
                    false,
                    Some(format!("cannot read the release checklist: {error}")),
                ));
            }
        }
    }
    let change = Change::at(now_ms).because(transition.evidence.summary.clone());
    let kind = Some(transition.kind);
    let seq = Some(transition.seq);
    match store
        .apply_transition(&change, &rollout.id, &transition)
        .await
    {
        Ok(committed) => {
            if committed.value.applied {
                tracing::info!(
                    rollout = rollout.id,
                    flag = rollout.state.flag,
                    env = rollout.state.environment,
                    kind = ?transition.kind,
                    seq = transition.seq,
                    "rollout transition applied"
                );
            }
            Some(outcome(kind, seq, committed.value.applied, None))
        }
        Err(error) => {
            tracing::warn!(rollout = rollout.id, %error, "rollout transition not applied");
            Some(outcome(kind, seq, false, Some(error.to_string())))
        }
    }
}

/// Applies a person's instruction to rollout `id`: the pure [`command`] on the current state,
/// then one transactional write. When another writer moved the rollout between the read and
/// the write, the command is decided again on the new state (a few times at most).
pub async fn run_command(
    state: &AppState,
    id: &str,
    instruction: &Command,
    change: &Change,
) -> Result<Committed<AppliedRollout>, RolloutError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let rollout = state.store().get_rollout(id).await?;
        let transition = command(&rollout.state, change.now_ms, instruction.clone())?;
        if advances(&transition)
            && let Some((release, reason)) =
                gate_for(state.store(), &rollout, change.now_ms).await?
        {
            record_hold(
                state.store(),
                &release,
                &rollout,
                &transition,
                &reason,
                change.now_ms,
            )
            .await;
            return Err(RolloutError::Held(reason));
        }
        match state
            .store()
            .apply_transition(change, id, &transition)
            .await
        {
            Ok(committed) => {
                if committed.value.applied
                    && let Err(error) = state.reload().await
                {
                    tracing::error!(%error, "reload after a rollout command failed");
                }
                return Ok(committed);
            }
            Err(StoreError::Conflict { .. }) if attempt < COMMAND_ATTEMPTS => continue,
            Err(error) => return Err(error.into()),
        }
    }
}

/// The current stage's window and what the controller would decide on it now, without
/// writing anything: the answer to "why is it holding?".
pub async fn current_decision(
    store: &dyn Store,
    rollout: &StoredRollout,
    now_ms: i64,
) -> Result<(Window, Option<StageDecision>), StoreError> {
    let window = gather(store, rollout, now_ms).await?;
    let decision = step(&rollout.state, now_ms, &window).decision;
    Ok((window, decision))
}

/// The leader's loop: every `interval`, while this replica leads, one [`tick`], one tick of
/// the desktop release crash gate ([`crate::apps::tick`]) and one pass over the webhook outbox. Ends when the server shuts down.
pub async fn run_loop(state: AppState, interval: Duration, deliverer: Deliverer) {
    let mut shutdown = state.shutdown_signal();
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = crate::state::until_shutdown(&mut shutdown) => return,
        }
        if !state.is_leader() {
            continue;
        }
        let now = now_ms();
        if let Err(error) = tick(&state, now).await {
            tracing::error!(%error, "rollout tick failed");
        }
        match crate::apps::tick(&state, now).await {
            Ok(outcomes) => {
                for outcome in outcomes.iter().filter(|o| o.error.is_some()) {
                    tracing::error!(
                        app = outcome.app,
                        version = outcome.version,
                        error = outcome.error,
                        "release gate failed"
                    );
                }
            }
            Err(error) => tracing::error!(%error, "release gate tick failed"),
        }
        if let Err(error) = deliver_due(state.store(), &deliverer, now_ms()).await {
            tracing::error!(%error, "webhook delivery failed");
        }
    }
}
