//! Desktop apps in the server: people's release commands and the crash gate's tick.
//!
//! Both decide with `sluice_core::apps` (pure) and write through
//! [`Store::update_app_release`](crate::store::Store::update_app_release), one audited transaction that
//! checks the release has not moved since it was read; a command recomputes on such a race.
//! The gate runs on the leader, in the rollout controller's loop ([`crate::rollouts::run_loop`]):
//! for every rolling release with a plan, it counts the sessions of the release and of the
//! channel's newest complete release since the stage started, asks
//! [`decide_gate`] for a verdict, and halts, advances or completes the release.

use serde::Serialize;
use sluice_core::apps::{
    CommandError, GateAction, GateDecision, ReleaseCommand, ReleaseState, SessionCounts,
    apply_command, decide_gate,
};

use crate::state::AppState;
use crate::store::{AppReleaseUpdate, Change, Committed, Store, StoreError, StoredAppRelease};

/// How often a command is recomputed when another writer moved the release meanwhile.
const COMMAND_ATTEMPTS: usize = 3;

/// Why a command was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The release's state does not allow it.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The store failed or refused it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies a person's command to a release.
pub async fn run_command(
    store: &dyn Store,
    change: &Change,
    app: &str,
    channel: &str,
    version: &str,
    command: ReleaseCommand,
) -> Result<Committed<StoredAppRelease>, ReleaseError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = store.get_app_release(app, channel, version).await?;
        let next = apply_command(&current.release, command, change.now_ms)?;
        let update = AppReleaseUpdate {
            action: match command {
                ReleaseCommand::Promote { .. } => "release.promote",
                ReleaseCommand::Halt => "release.halt",
                ReleaseCommand::Resume => "release.resume",
                ReleaseCommand::Pull => "release.pull",
            },
            expected_revision: current.revision,
            release: next,
            evidence: None,
        };
        match store
            .update_app_release(change, app, channel, version, &update)
            .await
        {
            Err(StoreError::Conflict { .. }) if attempt < COMMAND_ATTEMPTS => continue,
            other => return Ok(other?),
        }
    }
}

/// The previous release the crash gate compares with: the newest complete release of the
/// channel older than `release`.
pub fn baseline<'r>(
    release: &StoredAppRelease,
    channel: &'r [StoredAppRelease],
) -> Option<&'r StoredAppRelease> {
    let version = release.release.semver();
    channel
        .iter()
        .filter(|r| r.release.state == ReleaseState::Complete && r.release.semver() < version)
        .max_by(|a, b| a.release.semver().cmp(&b.release.semver()))
}

/// What the gate says about one release now, with the counts it judged.
pub async fn gate_decision(
    store: &dyn Store,
    release: &StoredAppRelease,
    now_ms: i64,
) -> Result<Option<(GateDecision, SessionCounts)>, StoreError> {
    let (Some(plan), Some(gate)) = (&release.release.plan, &release.release.gate) else {
        return Ok(None);
    };
    let channel = store
        .list_app_releases(&release.app, Some(&release.release.channel))
        .await?;
    let since = gate.stage_started_ms;
    let previous = match baseline(release, &channel) {
        Some(previous) => {
            store
                .session_counts(&release.app, &previous.release.version, since)
                .await?
        }
        None => Default::default(),
    };
    let counts = SessionCounts {
        previous,
        release: store
            .session_counts(&release.app, &release.release.version, since)
            .await?,
    };
    Ok(Some((decide_gate(plan, gate, now_ms, &counts), counts)))
}

/// What one gate tick did to one release.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateOutcome {
    /// The app.
    pub app: String,
    /// The channel.
    pub channel: String,
    /// The version.
    pub version: String,
    /// The audit action written, if any.
    pub action: Option<&'static str>,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// Judges every rolling release that follows a plan at `now_ms` and writes what the gate
/// decides: a regression halts the release, a passing stage advances it (and the last
/// stage completes it). Only the leader should call this; one release failing does not stop
/// the others.
pub async fn tick(state: &AppState, now_ms: i64) -> Result<Vec<GateOutcome>, StoreError> {
    let store = state.store();
    let mut outcomes = Vec::new();
    for release in store.rolling_app_releases().await? {
        let outcome = gate_one(store, &release, now_ms).await;
        let (action, error) = match outcome {
            Ok(action) => (action, None),
            Err(error) => (None, Some(error.to_string())),
        };
        if action.is_some() || error.is_some() {
            outcomes.push(GateOutcome {
                app: release.app.clone(),
                channel: release.release.channel.clone(),
                version: release.release.version.clone(),
                action,
                error,
            });
        }
    }
    Ok(outcomes)
}

async fn gate_one(
    store: &dyn Store,
    release: &StoredAppRelease,
    now_ms: i64,
) -> Result<Option<&'static str>, StoreError> {
    let Some((decision, counts)) = gate_decision(store, release, now_ms).await? else {
        return Ok(None);
    };
    let mut next = release.release.clone();
    let action = match &decision.action {
        GateAction::Hold => return Ok(None),
        GateAction::Halt => {
            next.state = ReleaseState::Halted;
            "release.gate.halt"
        }
        GateAction::Advance { to, share } => {
            next.share = *share;
            if share.is_all() {
                next.state = ReleaseState::Complete;
                next.gate = None;
                "release.gate.complete"
            } else {
                if let Some(gate) = &mut next.gate {
                    gate.stage = *to;
                    gate.stage_started_ms = now_ms;
                }
                "release.gate.advance"
            }
        }
    };
    let update = AppReleaseUpdate {
        action,
        expected_revision: release.revision,
        release: next,
        evidence: Some(serde_json::json!({
            "summary": decision.summary,
            "verdict": decision.verdict,
            "sessions": counts,
        })),
    };
    let change = Change::at(now_ms).because(decision.summary.clone());
    match store
        .update_app_release(
            &change,
            &release.app,
            &release.release.channel,
            &release.release.version,
            &update,
        )
        .await
    {
        Ok(_) => Ok(Some(action)),
        // Someone changed the release meanwhile; the next tick decides again.
        Err(StoreError::Conflict { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}
