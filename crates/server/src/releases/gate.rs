//! The checklist gate: a rollout of a release's flag does not move past its first stage (or
//! any further) while the release's checklist fails and no admin has overridden it.

use serde_json::json;
use sluice_core::rollout::{Transition, TransitionKind};

use crate::releases::facts::checklist;
use crate::store::{Change, ReleaseChange, Store, StoreError, StoredRelease, StoredRollout};

/// Whether a transition widens exposure: a move to a later stage, or completion.
pub fn advances(transition: &Transition) -> bool {
    transition.kind == TransitionKind::Complete || transition.to.stage > transition.from.stage
}

/// The release holding `rollout` back, with the reason, or `None` when it may move.
pub async fn gate_for(
    store: &dyn Store,
    rollout: &StoredRollout,
    now_ms: i64,
) -> Result<Option<(StoredRelease, String)>, StoreError> {
    let Some(release) = store
        .release_of_rollout(&rollout.id, &rollout.state.flag)
        .await?
    else {
        return Ok(None);
    };
    let checklist = checklist(store, &release, now_ms).await?;
    Ok(checklist.hold_reason().map(|reason| {
        let named = format!("release `{}`: {reason}", release.name);
        (release, named)
    }))
}

/// Records the hold as evidence on the release (written only when it differs from the last).
pub async fn record_hold(
    store: &dyn Store,
    release: &StoredRelease,
    rollout: &StoredRollout,
    transition: &Transition,
    reason: &str,
    now_ms: i64,
) {
    let detail = json!({
        "rollout": rollout.id,
        "flag": rollout.state.flag,
        "env": rollout.state.environment,
        "stage": transition.from.stage,
        "held": format!("{:?}", transition.kind).to_lowercase(),
        "reason": reason,
    });
    let change = Change::at(now_ms).because(reason.to_owned());
    let what = ReleaseChange::Event {
        kind: "hold",
        detail,
    };
    if let Err(error) = store.change_release(&change, &release.id, &what).await {
        tracing::warn!(release = release.id, %error, "cannot record a checklist hold");
    }
}
