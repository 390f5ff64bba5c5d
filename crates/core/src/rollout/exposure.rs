//! The flag targeting that realises a rollout: who is on the new variant, written as rules.
//!
//! An [`Exposure`] is the pure description of what the flag must do at a point of a rollout:
//! for each audience met so far, the share of it on the new (treatment) variant, and whether
//! the flag is on. [`Exposure::apply`] writes it into a [`FlagDef`] for one environment as
//! rules named `rollout: …`, placed before the flag's own rules, each a split between the
//! treatment and control variants. Bucketing is the flag's own (salted by the flag key unless
//! it sets a salt), and the treatment arm comes first in every split, so a context on the new
//! path stays there as its share grows.
//!
//! A rollback is an exposure like any other: one rule giving everyone the control variant
//! (treatment weight 0), ahead of every other rule, so nothing can serve the new variant while
//! it stands. A kill is the same rule with the flag turned off.

use serde::{Deserialize, Serialize};

use crate::model::{FlagDef, RuleDef, WEIGHT_TOTAL, WeightDef};
use crate::rollout::controller::{RolloutState, Status};
use crate::rollout::plan::{Audience, RolloutPlan};

/// Every rule a rollout writes is named with this prefix, and [`Exposure::apply`] replaces
/// every rule so named.
pub const RULE_PREFIX: &str = "rollout: ";

/// One audience's share of the new variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// Who.
    pub audience: Audience,
    /// Their share on the treatment variant, out of 100,000; the rest get the control variant.
    pub treatment_weight: u32,
}

/// The flag change that realises a point of a rollout, in one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    /// `false` turns the flag off in the environment (a kill). `true` leaves its kill switch
    /// as it is: a rollout never turns on a flag someone turned off.
    pub enabled: bool,
    /// Each audience's share, specific audiences first, everyone last. Empty before a rollout
    /// starts: the flag's own rules apply.
    pub shares: Vec<Share>,
}

impl Exposure {
    /// No rollout rules: the flag as it was before the rollout.
    pub fn untouched() -> Exposure {
        Exposure {
            enabled: true,
            shares: Vec::new(),
        }
    }

    /// The exposure in force at `stage` of `plan`: each audience met so far with its share.
    pub fn stage(plan: &RolloutPlan, stage: usize) -> Exposure {
        Exposure {
            enabled: true,
            shares: plan
                .exposure(stage)
                .into_iter()
                .map(|(audience, percent)| Share {
                    audience: audience.clone(),
                    treatment_weight: percent.weight(),
                })
                .collect(),
        }
    }

    /// Everyone on the control variant.
    pub fn rolled_back() -> Exposure {
        Exposure {
            enabled: true,
            shares: vec![Share {
                audience: Audience::Everyone,
                treatment_weight: 0,
            }],
        }
    }

    /// Everyone on the control variant, and the flag off.
    pub fn off() -> Exposure {
        Exposure {
            enabled: false,
            ..Exposure::rolled_back()
        }
    }

    /// The exposure a rollout's state calls for.
    pub fn of(state: &RolloutState) -> Exposure {
        match state.status {
            Status::Pending => Exposure::untouched(),
            Status::Running
            | Status::AwaitingApproval
            | Status::Paused { .. }
            | Status::Completed => Exposure::stage(&state.plan, state.stage),
            Status::RolledBack { .. } => Exposure::rolled_back(),
            Status::Killed { .. } => Exposure::off(),
        }
    }

    /// The largest share of any audience on the new variant, out of 100,000.
    pub fn max_treatment_weight(&self) -> u32 {
        self.shares
            .iter()
            .map(|s| s.treatment_weight)
            .max()
            .unwrap_or(0)
    }

    /// The rules that realise the shares: `treatment` for each audience's share and
    /// `control` for the rest, the treatment arm first in each split.
    pub fn rules(&self, treatment: &str, control: &str) -> Vec<RuleDef> {
        self.shares
            .iter()
            .map(|share| {
                let (serve, split) = match share.treatment_weight {
                    0 => (Some(control.to_owned()), None),
                    weight if weight >= WEIGHT_TOTAL => (Some(treatment.to_owned()), None),
                    weight => (
                        None,
                        Some(vec![
                            WeightDef {
                                variant: treatment.to_owned(),
                                weight,
                            },
                            WeightDef {
                                variant: control.to_owned(),
                                weight: WEIGHT_TOTAL - weight,
                            },
                        ]),
                    ),
                };
                RuleDef {
                    name: Some(format!("{RULE_PREFIX}{}", share.audience.label())),
                    when: share.audience.conditions().to_vec(),
                    serve,
                    split,
                    bucket_by: None,
                }
            })
            .collect()
    }

    /// Writes the exposure into `flag` for `environment`: the environment's rules become the
    /// rollout's rules followed by its own rules (any earlier rollout rules dropped), and a
    /// kill turns the flag off there. Applying the same exposure twice changes nothing.
    pub fn apply(&self, flag: &mut FlagDef, environment: &str, treatment: &str, control: &str) {
        let is_rollout = |rule: &RuleDef| {
            rule.name
                .as_deref()
                .is_some_and(|name| name.starts_with(RULE_PREFIX))
        };
        let existing = flag
            .environments
            .get(environment)
            .and_then(|o| o.rules.as_ref());
        if self.shares.is_empty()
            && self.enabled
            && !existing.unwrap_or(&flag.rules).iter().any(is_rollout)
        {
            return;
        }
        let own: Vec<RuleDef> = existing
            .unwrap_or(&flag.rules)
            .iter()
            .filter(|rule| !is_rollout(rule))
            .cloned()
            .collect();
        let mut rules = self.rules(treatment, control);
        rules.extend(own);
        let overrides = flag.environments.entry(environment.to_owned()).or_default();
        overrides.rules = Some(rules);
        if !self.enabled {
            overrides.enabled = Some(false);
        }
    }
}

impl RolloutState {
    /// `flag` with this rollout's exposure written into its environment: what the server
    /// stores with each transition.
    pub fn targeting(&self, flag: &FlagDef) -> FlagDef {
        let mut flag = flag.clone();
        Exposure::of(self).apply(&mut flag, &self.environment, &self.treatment, &self.control);
        flag
    }
}
