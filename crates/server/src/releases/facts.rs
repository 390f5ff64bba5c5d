//! The facts a release's checklist reads: its flags as stored, recent SDK telemetry, and its
//! audience segment.

use sluice_core::release::{
    AudienceFacts, Checklist, FlagFacts, MonitoringFacts, ProductionState, ReleaseFacts, evaluate,
};

use crate::store::{RolloutFilter, Store, StoreError, StoredRelease};

/// The environment the `flag` item looks at.
pub const PRODUCTION: &str = "production";
/// How recent telemetry must be for the `monitoring` item: one hour.
pub const RECENT_TELEMETRY_MS: i64 = 3_600_000;

/// Reads the facts for `release` at `now_ms`.
pub async fn gather(
    store: &dyn Store,
    release: &StoredRelease,
    now_ms: i64,
) -> Result<ReleaseFacts, StoreError> {
    let environments = store.list_environments().await?;
    let has_production = environments.iter().any(|e| e.name == PRODUCTION);
    let mut flags = Vec::new();
    for key in &release.spec.flags {
        let flag = match store.get_flag(key).await {
            Ok(flag) => Some(flag),
            Err(StoreError::NotFound) => None,
            Err(error) => return Err(error),
        };
        let production = match &flag {
            _ if !has_production => ProductionState::NoProduction,
            None => ProductionState::Off,
            Some(flag) => {
                let definition = &flag.definition;
                let enabled = definition
                    .environments
                    .get(PRODUCTION)
                    .and_then(|e| e.enabled)
                    .unwrap_or(definition.enabled);
                if !enabled {
                    ProductionState::Off
                } else {
                    let filter = RolloutFilter {
                        env: Some(PRODUCTION.to_owned()),
                        flag: Some(key.clone()),
                        active_only: true,
                        limit: Some(1),
                    };
                    if store.list_rollouts(&filter).await?.is_empty() {
                        ProductionState::On
                    } else {
                        ProductionState::UnderRollout
                    }
                }
            }
        };
        flags.push(FlagFacts {
            key: key.clone(),
            exists: flag.is_some(),
            production,
        });
    }
    let mut recent_instances = 0;
    for environment in &environments {
        recent_instances += store
            .instances(&environment.name, now_ms - RECENT_TELEMETRY_MS, 1000)
            .await?
            .len();
    }
    let audience = match &release.spec.audience {
        None => None,
        Some(name) => Some(match store.get_segment(name).await {
            Ok(segment) => AudienceFacts {
                segment: name.clone(),
                exists: true,
                include: segment.definition.include.len(),
                conditions: segment.definition.when.len(),
            },
            Err(StoreError::NotFound) => AudienceFacts {
                segment: name.clone(),
                exists: false,
                include: 0,
                conditions: 0,
            },
            Err(error) => return Err(error),
        }),
    };
    Ok(ReleaseFacts {
        flags,
        monitoring: MonitoringFacts {
            guardrails: release.plan.guardrails.len(),
            recent_instances,
            recent_secs: u64::try_from(RECENT_TELEMETRY_MS / 1000).unwrap_or(0),
        },
        audience,
    })
}

/// The checklist of `release` now: facts read, evidence and override applied.
pub async fn checklist(
    store: &dyn Store,
    release: &StoredRelease,
    now_ms: i64,
) -> Result<Checklist, StoreError> {
    let facts = gather(store, release, now_ms).await?;
    Ok(evaluate(
        &release.spec,
        &facts,
        &release.evidence,
        release.override_.as_ref(),
    ))
}
