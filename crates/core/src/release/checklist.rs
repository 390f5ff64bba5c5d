//! The pre-release checklist: six items, each passed by facts the server read or by
//! evidence a named person recorded, and the gate that promotion past the first stage waits on.
//!
//! | item | passes from data when | otherwise |
//! |---|---|---|
//! | `flag` | every flag exists, and in production is off or under a rollout | evidence |
//! | `rollback` | the procedure names its kind (and commit), steps, time to restore, data at risk and on-call | evidence |
//! | `monitoring` | the plan has guardrails and an SDK sent telemetry recently | evidence |
//! | `audience` | the audience segment exists and has include keys or conditions | evidence |
//! | `limitations` | the release lists known limitations | evidence |
//! | `escalation` | the release lists an escalation path | evidence |

use serde::{Deserialize, Serialize};

use crate::release::spec::ReleaseSpec;

/// One checklist item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    /// A feature flag is in place.
    Flag,
    /// The rollback procedure is documented.
    Rollback,
    /// Monitoring and alerting are configured.
    Monitoring,
    /// The beta or canary audience is identified.
    Audience,
    /// Known limitations are documented.
    Limitations,
    /// The escalation path is clear.
    Escalation,
}

impl Item {
    /// Every item, in checklist order.
    pub const ALL: [Item; 6] = [
        Item::Flag,
        Item::Rollback,
        Item::Monitoring,
        Item::Audience,
        Item::Limitations,
        Item::Escalation,
    ];

    /// The item's name: `flag`, `rollback`, `monitoring`, `audience`, `limitations`,
    /// `escalation`.
    pub fn name(self) -> &'static str {
        match self {
            Item::Flag => "flag",
            Item::Rollback => "rollback",
            Item::Monitoring => "monitoring",
            Item::Audience => "audience",
            Item::Limitations => "limitations",
            Item::Escalation => "escalation",
        }
    }

    /// The item called `name`.
    pub fn from_name(name: &str) -> Option<Item> {
        Item::ALL.into_iter().find(|item| item.name() == name)
    }

    /// What the item asks, for people.
    pub fn title(self) -> &'static str {
        match self {
            Item::Flag => "feature flag in place",
            Item::Rollback => "rollback procedure documented",
            Item::Monitoring => "monitoring and alerting configured",
            Item::Audience => "beta or canary audience identified",
            Item::Limitations => "known limitations documented",
            Item::Escalation => "escalation path clear",
        }
    }
}

/// A flag's state in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductionState {
    /// Turned off in production.
    Off,
    /// On in production, with a rollout that is not finished deciding who gets what.
    UnderRollout,
    /// On in production with no rollout: the change may already be out.
    On,
    /// There is no production environment.
    NoProduction,
}

/// What the server knows about one of the release's flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagFacts {
    /// The flag key.
    pub key: String,
    /// Whether it is defined.
    pub exists: bool,
    /// Its state in production.
    pub production: ProductionState,
}

/// What the server knows about monitoring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitoringFacts {
    /// Guardrails on the release's plan.
    pub guardrails: usize,
    /// SDK instances that sent telemetry recently, in any environment.
    pub recent_instances: usize,
    /// How far back "recently" reaches, in seconds.
    pub recent_secs: u64,
}

/// What the server knows about the audience segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudienceFacts {
    /// The segment's name.
    pub segment: String,
    /// Whether it is defined.
    pub exists: bool,
    /// Its include keys.
    pub include: usize,
    /// Its conditions.
    pub conditions: usize,
}

/// Everything the checklist reads besides the release itself and its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFacts {
    /// One per flag of the release, in its order.
    pub flags: Vec<FlagFacts>,
    /// Monitoring.
    pub monitoring: MonitoringFacts,
    /// The audience segment, when the release names one.
    pub audience: Option<AudienceFacts>,
}

/// Evidence for one item, from a named person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// The item.
    pub item: Item,
    /// What was done, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Where it can be seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Who recorded it (a token's name and id).
    pub by: String,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
}

/// An admin's override of a failing checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Override {
    /// Why; required.
    pub reason: String,
    /// Who (a token's name and id).
    pub by: String,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
}

/// How an item passed, or that it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemSource {
    /// Checked from data.
    Data,
    /// Passed on a person's evidence.
    Evidence,
    /// Not passed.
    Missing,
}

/// One item's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    /// The item.
    pub item: Item,
    /// What it asks.
    pub title: String,
    /// Whether it passes.
    pub passed: bool,
    /// How.
    pub source: ItemSource,
    /// What the data says, in one sentence.
    pub detail: String,
    /// The newest evidence recorded for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

/// The whole checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checklist {
    /// The six items, in order.
    pub items: Vec<ItemResult>,
    /// Whether every item passes.
    pub passed: bool,
    /// The override, when an admin gave one.
    #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
    pub override_: Option<Override>,
    /// Whether promotion past the first stage may go ahead: passed, or overridden.
    pub open: bool,
}

impl Checklist {
    /// The items that do not pass.
    pub fn failing(&self) -> impl Iterator<Item = &ItemResult> {
        self.items.iter().filter(|i| !i.passed)
    }

    /// Why the gate is shut, in one sentence; `None` when it is open.
    pub fn hold_reason(&self) -> Option<String> {
        if self.open {
            return None;
        }
        let failing: Vec<String> = self
            .failing()
            .map(|i| format!("{} ({})", i.item.name(), i.detail))
            .collect();
        Some(format!(
            "the release checklist does not pass: {}",
            failing.join("; ")
        ))
    }
}

/// Evaluates the checklist of `spec` on `facts` and the evidence recorded (newest last).
pub fn evaluate(
    spec: &ReleaseSpec,
    facts: &ReleaseFacts,
    evidence: &[Evidence],
    override_: Option<&Override>,
) -> Checklist {
    let items: Vec<ItemResult> = Item::ALL
        .into_iter()
        .map(|item| {
            let (from_data, detail) = check(item, spec, facts);
            let latest = evidence
                .iter()
                .rev()
                .find(|e| e.item == item && has_content(e))
                .cloned();
            let source = if from_data {
                ItemSource::Data
            } else if latest.is_some() {
                ItemSource::Evidence
            } else {
                ItemSource::Missing
            };
            ItemResult {
                item,
                title: item.title().to_owned(),
                passed: source != ItemSource::Missing,
                source,
                detail,
                evidence: latest,
            }
        })
        .collect();
    let passed = items.iter().all(|i| i.passed);
    Checklist {
        open: passed || override_.is_some(),
        items,
        passed,
        override_: override_.cloned(),
    }
}

fn has_content(evidence: &Evidence) -> bool {
    let filled = |t: &Option<String>| t.as_deref().is_some_and(|t| !t.trim().is_empty());
    (filled(&evidence.text) || filled(&evidence.link)) && !evidence.by.trim().is_empty()
}

fn nonblank(list: &[String]) -> usize {
    list.iter().filter(|s| !s.trim().is_empty()).count()
}

/// Whether the item passes from data, and what the data says.
fn check(item: Item, spec: &ReleaseSpec, facts: &ReleaseFacts) -> (bool, String) {
    match item {
        Item::Flag => {
            let mut problems = Vec::new();
            for flag in &facts.flags {
                if !flag.exists {
                    problems.push(format!("flag `{}` does not exist", flag.key));
                } else if flag.production == ProductionState::On {
                    problems.push(format!(
                        "flag `{}` is on in production without a rollout",
                        flag.key
                    ));
                }
            }
            if facts.flags.is_empty() {
                problems.push("the release has no flags".into());
            }
            if problems.is_empty() {
                (
                    true,
                    format!(
                        "{} flag(s) exist and are off, or under a rollout, in production",
                        facts.flags.len()
                    ),
                )
            } else {
                (false, problems.join(", "))
            }
        }
        Item::Rollback => {
            let missing = spec.rollback.missing();
            if missing.is_empty() {
                (
                    true,
                    format!("{} rollback documented", spec.rollback.kind.as_str()),
                )
            } else {
                (
                    false,
                    format!("the rollback procedure lacks {}", missing.join(", ")),
                )
            }
        }
        Item::Monitoring => {
            let m = &facts.monitoring;
            match (m.guardrails, m.recent_instances) {
                (0, _) => (false, "the plan has no guardrails".into()),
                (_, 0) => (
                    false,
                    format!(
                        "{} guardrail(s), but no SDK sent telemetry in the last {} s",
                        m.guardrails, m.recent_secs
                    ),
                ),
                (g, n) => (
                    true,
                    format!(
                        "{g} guardrail(s); {n} SDK instance(s) sent telemetry in the last {} s",
                        m.recent_secs
                    ),
                ),
            }
        }
        Item::Audience => match &facts.audience {
            None => (false, "the release names no audience segment".into()),
            Some(a) if !a.exists => (false, format!("segment `{}` does not exist", a.segment)),
            Some(a) if a.include == 0 && a.conditions == 0 => (
                false,
                format!(
                    "segment `{}` is empty: no include keys, no conditions",
                    a.segment
                ),
            ),
            Some(a) => (
                true,
                format!(
                    "segment `{}`: {} include key(s), {} condition(s)",
                    a.segment, a.include, a.conditions
                ),
            ),
        },
        Item::Limitations => match nonblank(&spec.known_limitations) {
            0 => (false, "no known limitations listed".into()),
            n => (true, format!("{n} known limitation(s) listed")),
        },
        Item::Escalation => match nonblank(&spec.escalation) {
            0 => (false, "no escalation path listed".into()),
            n => (true, format!("{n} step(s) of escalation listed")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Provenance, Risk};
    use crate::release::spec::{ProvenanceInfo, RollbackKind, RollbackProcedure};

    fn spec() -> ReleaseSpec {
        ReleaseSpec {
            name: "r".into(),
            description: None,
            flags: vec!["f".into()],
            provenance: ProvenanceInfo {
                kind: Provenance::Human,
                tool: None,
                link: None,
                reviewer: None,
            },
            risk: Risk::Low,
            guardrails: None,
            rollback: RollbackProcedure {
                kind: RollbackKind::FlagOff,
                commit: None,
                steps: vec!["turn f off".into()],
                expected_time_to_restore: Some(std::time::Duration::from_secs(60)),
                data_at_risk: Some("none".into()),
                on_call: Some("ana".into()),
            },
            known_limitations: vec!["slow on IE".into()],
            escalation: vec!["ana".into()],
            audience: Some("beta".into()),
        }
    }

    fn facts() -> ReleaseFacts {
        ReleaseFacts {
            flags: vec![FlagFacts {
                key: "f".into(),
                exists: true,
                production: ProductionState::Off,
            }],
            monitoring: MonitoringFacts {
                guardrails: 3,
                recent_instances: 1,
                recent_secs: 3600,
            },
            audience: Some(AudienceFacts {
                segment: "beta".into(),
                exists: true,
                include: 2,
                conditions: 0,
            }),
        }
    }

    fn evidence(item: Item, text: &str) -> Evidence {
        Evidence {
            item,
            text: Some(text.into()),
            link: None,
            by: "ana (tok_1)".into(),
            at_ms: 5,
        }
    }

    fn failing(checklist: &Checklist) -> Vec<&'static str> {
        checklist.failing().map(|i| i.item.name()).collect()
    }

    #[test]
    fn all_six_pass_from_data() {
        let checklist = evaluate(&spec(), &facts(), &[], None);
        assert!(checklist.passed && checklist.open);
        assert_eq!(checklist.items.len(), 6);
        assert!(checklist.items.iter().all(|i| i.source == ItemSource::Data));
        assert_eq!(checklist.hold_reason(), None);
    }

    #[test]
    fn each_fact_can_fail_its_item() {
        let mut f = facts();
        f.flags[0].production = ProductionState::On;
        f.monitoring.recent_instances = 0;
        f.audience.as_mut().unwrap().include = 0;
        let mut s = spec();
        s.rollback.on_call = None;
        s.known_limitations = vec![" ".into()];
        s.escalation.clear();
        let checklist = evaluate(&s, &f, &[], None);
        assert_eq!(
            failing(&checklist),
            [
                "flag",
                "rollback",
                "monitoring",
                "audience",
                "limitations",
                "escalation"
            ]
        );
        assert!(!checklist.open);
        let reason = checklist.hold_reason().unwrap();
        assert!(reason.contains("flag `f` is on in production"), "{reason}");
        assert!(reason.contains("lacks on_call"), "{reason}");
    }

    #[test]
    fn missing_flags_segments_and_guardrails_fail() {
        let mut f = facts();
        f.flags[0].exists = false;
        f.monitoring.guardrails = 0;
        f.audience.as_mut().unwrap().exists = false;
        let checklist = evaluate(&spec(), &f, &[], None);
        assert_eq!(failing(&checklist), ["flag", "monitoring", "audience"]);
        f.audience = None;
        let mut s = spec();
        s.audience = None;
        assert!(failing(&evaluate(&s, &f, &[], None)).contains(&"audience"));
    }

    #[test]
    fn under_a_rollout_or_without_production_the_flag_passes() {
        for state in [ProductionState::UnderRollout, ProductionState::NoProduction] {
            let mut f = facts();
            f.flags[0].production = state;
            assert!(evaluate(&spec(), &f, &[], None).passed);
        }
    }

    #[test]
    fn evidence_passes_an_item_the_data_cannot() {
        let mut f = facts();
        f.monitoring.recent_instances = 0;
        let empty = Evidence {
            text: Some("  ".into()),
            ..evidence(Item::Monitoring, "")
        };
        assert_eq!(
            failing(&evaluate(&spec(), &f, &[empty], None)),
            ["monitoring"]
        );
        let given = evidence(Item::Monitoring, "alerts in the pager dashboard");
        let checklist = evaluate(&spec(), &f, std::slice::from_ref(&given), None);
        assert!(checklist.passed);
        assert_eq!(checklist.items[2].source, ItemSource::Evidence);
        assert_eq!(checklist.items[2].evidence, Some(given));
        let unnamed = Evidence {
            by: String::new(),
            ..evidence(Item::Monitoring, "trust me")
        };
        assert!(!evaluate(&spec(), &f, &[unnamed], None).passed);
    }

    #[test]
    fn an_override_opens_the_gate_but_does_not_pass_the_checklist() {
        let mut f = facts();
        f.monitoring.recent_instances = 0;
        let o = Override {
            reason: "hotfix".into(),
            by: "ops (tok_2)".into(),
            at_ms: 9,
        };
        let checklist = evaluate(&spec(), &f, &[], Some(&o));
        assert!(!checklist.passed);
        assert!(checklist.open);
        assert_eq!(checklist.override_, Some(o));
        assert_eq!(checklist.hold_reason(), None);
    }

    #[test]
    fn items_round_trip_their_names() {
        for item in Item::ALL {
            assert_eq!(Item::from_name(item.name()), Some(item));
        }
        assert_eq!(Item::from_name("vibes"), None);
    }
}
