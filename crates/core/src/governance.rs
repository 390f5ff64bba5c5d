//! Protected environments and change requests, pure: which environments a flag write
//! changes, how many approvals a change then needs, and who may give them.
//!
//! The server asks [`flag_touches`] which environments a write would change, turns that into
//! a [`Requirement`] with [`requirement`] from the environments' [`Protection`], and counts
//! approvals with [`check_approval`] and [`is_approved`]. Nothing here reads a clock or a store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{EnvironmentOverride, FlagDef};

/// How an environment is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Protection {
    /// Approvals a change needs before it applies; 0 means unprotected.
    pub required_approvals: u32,
    /// Whether the author of a change may approve it too.
    pub allow_self_approval: bool,
}

impl Protection {
    /// Whether changes to the environment need approvals at all.
    pub fn is_protected(&self) -> bool {
        self.required_approvals > 0
    }
}

/// What a change needs before it may apply: the strictest protection of every protected
/// environment it touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    /// The protected environments the change touches, by name.
    pub environments: Vec<String>,
    /// The largest number of approvals any of them requires.
    pub required_approvals: u32,
    /// True only when every one of them allows self-approval.
    pub allow_self_approval: bool,
}

/// Which of `environments` a flag write changes.
///
/// A created or deleted flag touches every environment. Otherwise a change to anything but
/// the per-environment overrides, the description, the owner or the tags touches every
/// environment (the base definition is what each environment inherits); a change to one
/// environment's override touches that environment only. An absent override and an empty
/// one are the same.
pub fn flag_touches(
    before: Option<&FlagDef>,
    after: Option<&FlagDef>,
    environments: &[String],
) -> Vec<String> {
    let (Some(before), Some(after)) = (before, after) else {
        return environments.to_vec();
    };
    if shared_part(before) != shared_part(after) {
        return environments.to_vec();
    }
    let empty = EnvironmentOverride::default();
    environments
        .iter()
        .filter(|name| {
            let old = before.environments.get(*name).unwrap_or(&empty);
            let new = after.environments.get(*name).unwrap_or(&empty);
            old != new
        })
        .cloned()
        .collect()
}

/// A flag without what never changes how it is served: overrides, description, owner, tags,
/// goals.
fn shared_part(flag: &FlagDef) -> FlagDef {
    let mut shared = flag.clone();
    shared.environments.clear();
    shared.description = None;
    shared.owner = None;
    shared.tags.clear();
    shared.goals.clear();
    shared
}

/// What a change touching `touched` needs, or `None` when none of them is protected.
pub fn requirement(
    touched: &[String],
    protections: &BTreeMap<String, Protection>,
) -> Option<Requirement> {
    let mut result: Option<Requirement> = None;
    for name in touched {
        let Some(protection) = protections.get(name).filter(|p| p.is_protected()) else {
            continue;
        };
        let entry = result.get_or_insert_with(|| Requirement {
            environments: Vec::new(),
            required_approvals: 0,
            allow_self_approval: true,
        });
        entry.environments.push(name.clone());
        entry.required_approvals = entry.required_approvals.max(protection.required_approvals);
        entry.allow_self_approval &= protection.allow_self_approval;
    }
    result
}

/// Why an approval is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRefusal {
    /// The approver wrote the change, and self-approval is not allowed.
    #[error("`{0}` wrote this change request and may not approve it; another admin must")]
    SelfApproval(String),
    /// The approver already approved it; each admin counts once.
    #[error("`{0}` already approved this change request; each admin counts once")]
    AlreadyApproved(String),
}

/// Whether `approver` may add an approval to a change by `author` that `approved_by` have
/// already approved.
pub fn check_approval(
    author: &str,
    approver: &str,
    approved_by: &[String],
    allow_self_approval: bool,
) -> Result<(), ApprovalRefusal> {
    if approver == author && !allow_self_approval {
        return Err(ApprovalRefusal::SelfApproval(approver.to_owned()));
    }
    if approved_by.iter().any(|a| a == approver) {
        return Err(ApprovalRefusal::AlreadyApproved(approver.to_owned()));
    }
    Ok(())
}

/// Whether `approvals` distinct approvals satisfy `required`.
pub fn is_approved(approvals: usize, required: u32) -> bool {
    approvals >= usize::try_from(required).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FlagType;

    fn flag() -> FlagDef {
        FlagDef {
            description: None,
            owner: None,
            tags: Vec::new(),
            flag_type: FlagType::Boolean,
            variants: [
                ("on".to_owned(), true.into()),
                ("off".to_owned(), false.into()),
            ]
            .into_iter()
            .collect(),
            default_variant: "off".into(),
            off_variant: None,
            enabled: true,
            prerequisites: Vec::new(),
            rules: Vec::new(),
            bucket_by: None,
            salt: None,
            provenance: None,
            risk: None,
            expires: None,
            metadata: Default::default(),
            goals: Vec::new(),
            environments: Default::default(),
        }
    }

    fn envs() -> Vec<String> {
        vec!["development".into(), "production".into()]
    }

    #[test]
    fn creating_deleting_or_changing_the_base_touches_every_environment() {
        let base = flag();
        assert_eq!(flag_touches(None, Some(&base), &envs()), envs());
        assert_eq!(flag_touches(Some(&base), None, &envs()), envs());
        let mut changed = base.clone();
        changed.default_variant = "on".into();
        assert_eq!(flag_touches(Some(&base), Some(&changed), &envs()), envs());
    }

    #[test]
    fn an_override_touches_its_environment_only() {
        let base = flag();
        let mut changed = base.clone();
        changed
            .environments
            .entry("development".into())
            .or_default()
            .default_variant = Some("on".into());
        assert_eq!(
            flag_touches(Some(&base), Some(&changed), &envs()),
            vec!["development".to_owned()]
        );
    }

    #[test]
    fn descriptions_and_empty_overrides_touch_nothing() {
        let base = flag();
        let mut changed = base.clone();
        changed.description = Some("new words".into());
        changed.tags.push("team-a".into());
        changed
            .environments
            .insert("production".into(), Default::default());
        assert!(flag_touches(Some(&base), Some(&changed), &envs()).is_empty());
    }

    #[test]
    fn the_strictest_protection_wins() {
        let protections: BTreeMap<String, Protection> = [
            (
                "staging".to_owned(),
                Protection {
                    required_approvals: 1,
                    allow_self_approval: true,
                },
            ),
            (
                "production".to_owned(),
                Protection {
                    required_approvals: 2,
                    allow_self_approval: false,
                },
            ),
            (
                "development".to_owned(),
                Protection {
                    required_approvals: 0,
                    allow_self_approval: false,
                },
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(requirement(&["development".into()], &protections), None);
        let staging = requirement(&["staging".into(), "development".into()], &protections);
        assert_eq!(
            staging,
            Some(Requirement {
                environments: vec!["staging".into()],
                required_approvals: 1,
                allow_self_approval: true,
            })
        );
        let both = requirement(&["staging".into(), "production".into()], &protections);
        assert_eq!(
            both,
            Some(Requirement {
                environments: vec!["staging".into(), "production".into()],
                required_approvals: 2,
                allow_self_approval: false,
            })
        );
    }

    #[test]
    fn approvals_come_from_other_admins_once_each() {
        assert_eq!(
            check_approval("alice", "alice", &[], false),
            Err(ApprovalRefusal::SelfApproval("alice".into()))
        );
        assert_eq!(check_approval("alice", "alice", &[], true), Ok(()));
        assert_eq!(check_approval("alice", "bob", &[], false), Ok(()));
        assert_eq!(
            check_approval("alice", "bob", &["bob".into()], false),
            Err(ApprovalRefusal::AlreadyApproved("bob".into()))
        );
        assert!(!is_approved(1, 2));
        assert!(is_approved(2, 2));
    }
}
