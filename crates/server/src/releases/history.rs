//! A release's timeline (its events and its rollouts' transitions, in time order) and the
//! records the learning report is computed from.

use serde_json::{Value, json};
use sluice_core::release::{ReleaseRecord, RestoreRecord};
use sluice_core::rollout::{Action, Status, TransitionKind};

use crate::store::rollouts::kind_name;
use crate::store::{Store, StoreError, StoredRelease, StoredRollout, TransitionRecord};

/// The rollouts a release started, each with its transitions.
pub async fn rollouts_of(
    store: &dyn Store,
    release: &StoredRelease,
) -> Result<Vec<(StoredRollout, Vec<TransitionRecord>)>, StoreError> {
    let mut out = Vec::new();
    for id in store.release_rollouts(&release.id).await? {
        let rollout = store.get_rollout(&id).await?;
        let transitions = store.rollout_transitions(&id).await?;
        out.push((rollout, transitions));
    }
    Ok(out)
}

/// Everything that happened to `release`, oldest first.
pub async fn timeline(
    store: &dyn Store,
    release: &StoredRelease,
) -> Result<Vec<Value>, StoreError> {
    let mut entries: Vec<(i64, u8, i64, Value)> = Vec::new();
    for event in store.release_events(&release.id).await? {
        entries.push((
            event.at_ms,
            0,
            event.seq,
            json!({
                "atMs": event.at_ms,
                "source": "release",
                "kind": event.kind,
                "actor": event.actor,
                "detail": event.detail,
            }),
        ));
    }
    for (rollout, transitions) in rollouts_of(store, release).await? {
        for record in transitions {
            let t = &record.transition;
            entries.push((
                t.at_ms,
                1,
                record.seq,
                json!({
                    "atMs": t.at_ms,
                    "source": "rollout",
                    "kind": kind_name(t.kind),
                    "rollout": rollout.id,
                    "flag": rollout.state.flag,
                    "env": rollout.state.environment,
                    "fromStage": t.from.stage,
                    "toStage": t.to.stage,
                    "status": t.to.status.name(),
                    "actor": t.evidence.actor,
                    "reason": t.evidence.reason,
                    "summary": t.evidence.summary,
                }),
            ));
        }
    }
    entries.sort_by_key(|e| (e.0, e.1, e.2));
    Ok(entries.into_iter().map(|(_, _, _, value)| value).collect())
}

/// Why a rollout was rolled back or killed: `guardrail:<metrics>` when the controller did it
/// on failed guardrails, `guardrail` when it gave no metric, `manual` when a person did.
fn cause(record: &TransitionRecord) -> String {
    let evidence = &record.transition.evidence;
    if evidence.actor.is_some() {
        return "manual".into();
    }
    let metrics = evidence.decision.as_ref().and_then(|d| match &d.action {
        Action::Rollback { metrics } | Action::Kill { metrics } if !metrics.is_empty() => Some(
            metrics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    });
    match metrics {
        Some(metrics) => format!("guardrail:{metrics}"),
        None => "guardrail".into(),
    }
}

/// The record of one release for the report.
pub fn record_of(
    release: &StoredRelease,
    rollouts: &[(StoredRollout, Vec<TransitionRecord>)],
) -> ReleaseRecord {
    let mut started_ms: Option<i64> = None;
    let mut completed_ms: Option<i64> = None;
    let mut all_completed = !rollouts.is_empty();
    let mut restores = Vec::new();
    for (rollout, transitions) in rollouts {
        all_completed &= rollout.state.status == Status::Completed;
        let mut stage_began = None;
        for record in transitions {
            let t = &record.transition;
            match t.kind {
                TransitionKind::Start => {
                    started_ms = Some(started_ms.map_or(t.at_ms, |s| s.min(t.at_ms)));
                }
                _ if t.to.status == Status::Completed => {
                    completed_ms = Some(completed_ms.map_or(t.at_ms, |c| c.max(t.at_ms)));
                }
                TransitionKind::Rollback | TransitionKind::Kill
                    if !matches!(t.from.status, Status::RolledBack { .. }) =>
                {
                    restores.push(RestoreRecord {
                        cause: cause(record),
                        exposed_ms: stage_began.unwrap_or(t.at_ms),
                        restored_ms: t.at_ms,
                    });
                }
                _ => {}
            }
            let entered_stage = matches!(t.kind, TransitionKind::Start | TransitionKind::Resume)
                || t.to.stage != t.from.stage;
            if entered_stage {
                stage_began = Some(t.at_ms);
            }
        }
    }
    ReleaseRecord {
        provenance: release.spec.provenance.kind,
        risk: release.spec.risk,
        started_ms,
        completed_ms: if all_completed { completed_ms } else { None },
        restores,
    }
}

/// The records of every release created at or after `since_ms`.
pub async fn release_records(
    store: &dyn Store,
    since_ms: i64,
) -> Result<Vec<ReleaseRecord>, StoreError> {
    let mut records = Vec::new();
    for release in store.list_releases().await? {
        if release.created_ms < since_ms {
            continue;
        }
        let rollouts = rollouts_of(store, &release).await?;
        records.push(record_of(&release, &rollouts));
    }
    Ok(records)
}
