//! Built-in plans, and the policy that picks one from a change's provenance and risk.
//!
//! Both templates start with staff (segment `internal`) and opted-in users
//! (`beta_opt_in == true`), judged with gate `no_failure` because such small audiences can
//! rarely prove anything, then widen to everyone in steps judged with gate `pass`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind, Errors, Path};
use crate::model::{ConditionDef, Operator, Provenance, Risk};
use crate::rollout::plan::{
    Audience, FailurePolicy, Gate, Guardrail, Metric, Percentage, RolloutPlan, Stage, Tolerance,
    ToleranceUnit,
};
use crate::source::{Format, from_value_at};

/// The segment the templates' first stage targets.
pub const INTERNAL_SEGMENT: &str = "internal";
/// The boolean context attribute the templates' beta stage targets.
pub const BETA_ATTRIBUTE: &str = "beta_opt_in";

/// The guardrails a plan gets when it lists none: error rate (20% or 0.1 pp), crash rate
/// (20% or 0.05 pp) and latency p99 (10% or 5 ms), all lower-is-better.
pub fn default_guardrails() -> Vec<Guardrail> {
    vec![
        Guardrail::new(
            Metric::ErrorRate,
            Tolerance::relative(0.20).or_absolute(0.001, ToleranceUnit::Points),
        ),
        Guardrail::new(
            Metric::CrashRate,
            Tolerance::relative(0.20).or_absolute(0.0005, ToleranceUnit::Points),
        ),
        Guardrail::new(
            Metric::LatencyP99,
            Tolerance::relative(0.10).or_absolute(5.0, ToleranceUnit::Millis),
        ),
    ]
}

/// A built-in plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// internal → beta → 10% → 50% → 100%.
    Standard,
    /// internal → beta → 1% → 5% → 10% → 25% → 50% → 100%, with longer bakes.
    Cautious,
}

const HOUR: u64 = 3600;

/// One row of a template: audience, percent, bake, samples per arm, gate.
type Row = (Audience, u32, u64, u64, Gate);

impl Template {
    /// Every template.
    pub const ALL: [Template; 2] = [Template::Standard, Template::Cautious];

    /// The template's name: `standard` or `cautious`.
    pub fn name(self) -> &'static str {
        match self {
            Template::Standard => "standard",
            Template::Cautious => "cautious",
        }
    }

    /// The template called `name`.
    pub fn from_name(name: &str) -> Option<Template> {
        Template::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The template's plan.
    pub fn plan(self) -> RolloutPlan {
        let internal = || Audience::segment(INTERNAL_SEGMENT);
        let beta = || {
            Audience::Condition(ConditionDef {
                attribute: Some(BETA_ATTRIBUTE.to_owned()),
                op: Some(Operator::Eq),
                value: Some(Value::Bool(true)),
                ..ConditionDef::default()
            })
        };
        let everyone = || Audience::Everyone;
        let (rows, max_hold, description): (Vec<Row>, u64, &str) = match self {
            Template::Standard => (
                vec![
                    (internal(), 100, HOUR / 2, 100, Gate::NoFailure),
                    (beta(), 100, 2 * HOUR, 500, Gate::NoFailure),
                    (everyone(), 10, 2 * HOUR, 2_000, Gate::Pass),
                    (everyone(), 50, 4 * HOUR, 5_000, Gate::Pass),
                    (everyone(), 100, 0, 0, Gate::Pass),
                ],
                24 * HOUR,
                "internal → beta → 10% → 50% → 100%",
            ),
            Template::Cautious => (
                vec![
                    (internal(), 100, HOUR, 100, Gate::NoFailure),
                    (beta(), 100, 4 * HOUR, 500, Gate::NoFailure),
                    (everyone(), 1, 4 * HOUR, 1_000, Gate::Pass),
                    (everyone(), 5, 4 * HOUR, 2_000, Gate::Pass),
                    (everyone(), 10, 6 * HOUR, 5_000, Gate::Pass),
                    (everyone(), 25, 12 * HOUR, 10_000, Gate::Pass),
                    (everyone(), 50, 24 * HOUR, 20_000, Gate::Pass),
                    (everyone(), 100, 0, 0, Gate::Pass),
                ],
                48 * HOUR,
                "internal → beta → 1% → 5% → 10% → 25% → 50% → 100%",
            ),
        };
        let stages = rows
            .into_iter()
            .map(|(audience, percent, bake, min_samples, gate)| Stage {
                name: None,
                audience,
                percent: Percentage::from_weight(percent * 1000).unwrap_or(Percentage::ALL),
                bake: Duration::from_secs(bake),
                min_samples,
                approvals: 0,
                gate,
            })
            .collect();
        RolloutPlan {
            name: Some(self.name().to_owned()),
            description: Some(description.to_owned()),
            on_failure: FailurePolicy::Rollback,
            max_hold: Duration::from_secs(max_hold),
            ..RolloutPlan::new(stages)
        }
    }
}

/// A stage a policy requires every chosen plan to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequiredStage {
    /// A first stage for staff (segment `internal`).
    Internal,
    /// A stage for opted-in users (`beta_opt_in == true`).
    Beta,
    /// A shadow stage, where the new path runs beside the old one and only the old one's
    /// answer is used. Reserved: accepted and recorded, enforced once shadow mode exists.
    Shadow,
}

impl RequiredStage {
    /// The name used in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            RequiredStage::Internal => "internal",
            RequiredStage::Beta => "beta",
            RequiredStage::Shadow => "shadow",
        }
    }

    /// Whether `plan` has this stage; `None` for a stage kind that cannot be checked yet.
    pub fn present_in(self, plan: &RolloutPlan) -> Option<bool> {
        match self {
            RequiredStage::Internal => Some(
                plan.stages
                    .iter()
                    .any(|s| s.audience == Audience::segment(INTERNAL_SEGMENT)),
            ),
            RequiredStage::Beta => Some(plan.stages.iter().any(|s| {
                matches!(&s.audience, Audience::Condition(c)
                    if c.attribute.as_deref() == Some(BETA_ATTRIBUTE))
            })),
            RequiredStage::Shadow => None,
        }
    }
}

fn hundred() -> u32 {
    100
}

fn is_zero_duration(duration: &Duration) -> bool {
    duration.is_zero()
}

/// One rule of a policy file: which changes it covers and what they get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// The rule's name, shown with every policy it chooses.
    pub name: String,
    /// The provenances it covers; empty for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<Provenance>,
    /// The risks it covers; empty for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risk: Vec<Risk>,
    /// The base plan.
    pub template: Template,
    /// Bake times are multiplied by this, in percent.
    #[serde(default = "hundred")]
    pub bake_percent: u32,
    /// Minimum samples are multiplied by this, in percent.
    #[serde(default = "hundred")]
    pub samples_percent: u32,
    /// Approvals needed before the first everyone-stage and before the last.
    #[serde(default)]
    pub approvals: u32,
    /// Every stage but the last bakes at least this long (`"2h"`, or seconds).
    #[serde(
        default,
        with = "crate::rollout::plan::duration_text",
        skip_serializing_if = "is_zero_duration"
    )]
    pub min_bake: Duration,
    /// Stages the plan must have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_stages: Vec<RequiredStage>,
}

impl PolicyRule {
    /// Whether the rule covers this change.
    pub fn covers(&self, provenance: Provenance, risk: Risk) -> bool {
        (self.provenance.is_empty() || self.provenance.contains(&provenance))
            && (self.risk.is_empty() || self.risk.contains(&risk))
    }
}

/// A policy file: rules tried in order, the first that covers a change wins. Every
/// provenance and risk must be covered by some rule.
///
/// ```yaml
/// rules:
///   - name: ai-high
///     provenance: [ai-assisted]
///     risk: [high]
///     template: cautious
///     bake_percent: 200
///     approvals: 2
///     min_bake: 2h
///     required_stages: [internal, beta, shadow]
///   - name: everything-else
///     template: standard
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The rules, in order.
    pub rules: Vec<PolicyRule>,
}

const ALL_PROVENANCES: [Provenance; 3] =
    [Provenance::Human, Provenance::Mixed, Provenance::AiAssisted];
const ALL_RISKS: [Risk; 3] = [Risk::Low, Risk::Medium, Risk::High];

impl PolicyFile {
    /// The built-in policy; see [`policy`] for its table.
    pub fn builtin() -> PolicyFile {
        use Provenance::{AiAssisted, Human, Mixed};
        use Risk::{High, Low, Medium};
        let rule = |name: &str,
                    provenance: Vec<Provenance>,
                    risk: Vec<Risk>,
                    template,
                    bake_percent,
                    samples_percent,
                    approvals,
                    required_stages: Vec<RequiredStage>| PolicyRule {
            name: name.to_owned(),
            provenance,
            risk,
            template,
            bake_percent,
            samples_percent,
            approvals,
            min_bake: Duration::ZERO,
            required_stages,
        };
        let cautious_stages = || {
            vec![
                RequiredStage::Internal,
                RequiredStage::Beta,
                RequiredStage::Shadow,
            ]
        };
        PolicyFile {
            rules: vec![
                rule(
                    "ai-assisted-high",
                    vec![AiAssisted],
                    vec![High],
                    Template::Cautious,
                    200,
                    200,
                    2,
                    cautious_stages(),
                ),
                rule(
                    "ai-assisted-medium",
                    vec![AiAssisted],
                    vec![Medium],
                    Template::Cautious,
                    100,
                    100,
                    1,
                    Vec::new(),
                ),
                rule(
                    "ai-assisted-low",
                    vec![AiAssisted],
                    vec![Low],
                    Template::Standard,
                    150,
                    100,
                    0,
                    Vec::new(),
                ),
                rule(
                    "mixed-high",
                    vec![Mixed],
                    vec![High],
                    Template::Cautious,
                    150,
                    100,
                    1,
                    Vec::new(),
                ),
                rule(
                    "mixed-medium",
                    vec![Mixed],
                    vec![Medium],
                    Template::Standard,
                    150,
                    100,
                    0,
                    Vec::new(),
                ),
                rule(
                    "human-high",
                    vec![Human],
                    vec![High],
                    Template::Cautious,
                    100,
                    100,
                    1,
                    Vec::new(),
                ),
                rule(
                    "default",
                    Vec::new(),
                    Vec::new(),
                    Template::Standard,
                    100,
                    100,
                    0,
                    Vec::new(),
                ),
            ],
        }
    }

    /// Reads and checks a policy file from YAML or JSON text. `file` names it in messages.
    pub fn parse(file: Option<&str>, text: &str, format: Format) -> Result<PolicyFile, Errors> {
        crate::rollout::validate::read_document(file, text, format, |value| {
            let policy: PolicyFile =
                from_value_at(value, &Path::root()).map_err(|e| Errors(vec![e]))?;
            policy.check()?;
            Ok(policy)
        })
    }

    /// Checks the rules: names unique and not empty, multipliers at least 100% and at most
    /// 1000%, approvals within the plan limit, and every provenance and risk covered.
    pub fn check(&self) -> Result<(), Errors> {
        let mut errors = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let path = Path::root().key("rules").index(index);
            if rule.name.trim().is_empty() {
                errors.push(Error::new(
                    ErrorKind::Invalid,
                    path.key("name"),
                    "a rule needs a name",
                ));
            } else if !names.insert(rule.name.as_str()) {
                errors.push(Error::new(
                    ErrorKind::Duplicate,
                    path.key("name"),
                    format!("rule `{}` is named twice", rule.name),
                ));
            }
            for (field, value) in [
                ("bake_percent", rule.bake_percent),
                ("samples_percent", rule.samples_percent),
            ] {
                if !(100..=1000).contains(&value) {
                    errors.push(Error::new(
                        ErrorKind::Invalid,
                        path.key(field),
                        format!("{value} is out of range: a policy may only make plans stricter (100 to 1000)"),
                    ));
                }
            }
            if rule.approvals > crate::rollout::MAX_APPROVALS {
                errors.push(Error::new(
                    ErrorKind::Invalid,
                    path.key("approvals"),
                    format!("at most {} approvals", crate::rollout::MAX_APPROVALS),
                ));
            }
        }
        for provenance in ALL_PROVENANCES {
            for risk in ALL_RISKS {
                if !self.rules.iter().any(|r| r.covers(provenance, risk)) {
                    errors.push(Error::new(
                        ErrorKind::Invalid,
                        Path::root().key("rules"),
                        format!(
                            "no rule covers a {} change of {} risk; add a last rule without `provenance` and `risk`",
                            provenance.as_str(),
                            risk.as_str()
                        ),
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Errors(errors))
        }
    }

    /// The policy for a change: the first rule that covers it, or `None` when none does (a
    /// file that passed [`PolicyFile::check`] always has one).
    pub fn choose(&self, provenance: Provenance, risk: Risk) -> Option<Policy> {
        let rule = self.rules.iter().find(|r| r.covers(provenance, risk))?;
        Some(Policy::from_rule(rule, provenance, risk))
    }
}

/// The template and knobs chosen for a change, and the rule that chose them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// The base plan.
    pub template: Template,
    /// Bake times are multiplied by this, in percent: 150 means 1.5×.
    pub bake_percent: u32,
    /// Minimum samples are multiplied by this, in percent.
    pub samples_percent: u32,
    /// Approvals needed to enter the first stage open to everyone, and the last stage.
    pub approvals: u32,
    /// Every stage but the last bakes at least this long.
    #[serde(with = "crate::rollout::plan::duration_text")]
    pub min_bake: Duration,
    /// Stages the plan must have.
    pub required_stages: Vec<RequiredStage>,
    /// The name of the rule that chose this.
    pub rule: String,
    /// Why, in one sentence.
    pub reason: String,
}

/// Chooses a plan for a change from who wrote it and how much harm it could do, by the
/// built-in policy ([`PolicyFile::builtin`]).
///
/// | provenance \ risk | low | medium | high |
/// |---|---|---|---|
/// | human | standard | standard | cautious, 1 approval |
/// | mixed | standard | standard, bakes ×1.5 | cautious, bakes ×1.5, 1 approval |
/// | ai-assisted | standard, bakes ×1.5 | cautious, 1 approval | cautious, bakes ×2, samples ×2, 2 approvals, internal, beta and shadow stages required |
///
/// AI-assisted changes get more exposure time and more people watching because their
/// failure modes are less familiar to reviewers; high risk gets more steps.
pub fn policy(provenance: Provenance, risk: Risk) -> Policy {
    match PolicyFile::builtin().choose(provenance, risk) {
        Some(policy) => policy,
        // Unreachable: the built-in file ends with a rule that covers everything.
        None => Policy::from_rule(
            &PolicyRule {
                name: "default".into(),
                provenance: Vec::new(),
                risk: Vec::new(),
                template: Template::Cautious,
                bake_percent: 100,
                samples_percent: 100,
                approvals: 0,
                min_bake: Duration::ZERO,
                required_stages: Vec::new(),
            },
            provenance,
            risk,
        ),
    }
}

impl Policy {
    fn from_rule(rule: &PolicyRule, provenance: Provenance, risk: Risk) -> Policy {
        let PolicyRule {
            template,
            bake_percent,
            samples_percent,
            approvals,
            min_bake,
            ..
        } = *rule;
        let mut reason = format!(
            "{} change, {} risk: the {} template",
            provenance.as_str(),
            risk.as_str(),
            template.name()
        );
        if bake_percent != 100 {
            reason.push_str(&format!(", bakes ×{}", f64::from(bake_percent) / 100.0));
        }
        if samples_percent != 100 {
            reason.push_str(&format!(
                ", samples ×{}",
                f64::from(samples_percent) / 100.0
            ));
        }
        if approvals > 0 {
            reason.push_str(&format!(
                ", {approvals} approval{} before everyone-stages open and before 100%",
                if approvals == 1 { "" } else { "s" }
            ));
        }
        if !min_bake.is_zero() {
            reason.push_str(&format!(
                ", every stage bakes at least {}",
                crate::rollout::format_duration(min_bake)
            ));
        }
        reason.push('.');
        Policy {
            template,
            bake_percent,
            samples_percent,
            approvals,
            min_bake,
            required_stages: rule.required_stages.clone(),
            rule: rule.name.clone(),
            reason,
        }
    }

    /// The required stages the plan lacks (shadow is never reported: it is reserved).
    pub fn missing_stages(&self, plan: &RolloutPlan) -> Vec<RequiredStage> {
        self.required_stages
            .iter()
            .copied()
            .filter(|stage| stage.present_in(plan) == Some(false))
            .collect()
    }
}

impl Policy {
    /// The plan: the template with the knobs applied.
    pub fn plan(&self) -> RolloutPlan {
        let mut plan = self.template.plan();
        let scale = |value: u64, percent: u32| value.saturating_mul(u64::from(percent)) / 100;
        for stage in &mut plan.stages {
            stage.bake = Duration::from_secs(scale(stage.bake.as_secs(), self.bake_percent));
            stage.min_samples = scale(stage.min_samples, self.samples_percent);
        }
        let last = plan.stages.len().saturating_sub(1);
        for stage in plan.stages.iter_mut().take(last) {
            stage.bake = stage.bake.max(self.min_bake);
        }
        if self.approvals > 0 {
            let first_public = plan.stages.iter().position(|s| s.audience.is_everyone());
            let last = plan.stages.len().checked_sub(1);
            for index in [first_public, last].into_iter().flatten() {
                plan.stages[index].approvals = self.approvals;
            }
        }
        plan.description = Some(format!(
            "{} {}",
            plan.description.unwrap_or_default(),
            self.reason
        ));
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "rules:
  - name: ai-high
    provenance: [ai-assisted]
    risk: [high]
    template: cautious
    bake_percent: 150
    approvals: 2
    min_bake: 2h
    required_stages: [internal, beta, shadow]
  - name: rest
    template: standard
";

    #[test]
    fn a_policy_file_chooses_by_its_first_covering_rule() {
        let file = PolicyFile::parse(Some("policy.yaml"), FILE, Format::Yaml).unwrap();
        let ai_high = file.choose(Provenance::AiAssisted, Risk::High).unwrap();
        assert_eq!(ai_high.rule, "ai-high");
        assert_eq!(
            (ai_high.template, ai_high.approvals),
            (Template::Cautious, 2)
        );
        assert_eq!(ai_high.required_stages.len(), 3);
        let plan = ai_high.plan();
        let last = plan.stages.len() - 1;
        for stage in &plan.stages[..last] {
            assert!(stage.bake >= Duration::from_secs(2 * HOUR), "{stage:?}");
        }
        assert!(ai_high.missing_stages(&plan).is_empty());
        assert!(ai_high.reason.contains("at least 2h"), "{}", ai_high.reason);
        let human = file.choose(Provenance::Human, Risk::High).unwrap();
        assert_eq!(
            (human.rule.as_str(), human.template),
            ("rest", Template::Standard)
        );
    }

    #[test]
    fn a_policy_file_must_cover_every_change_and_only_tighten() {
        let text =
            "rules:\n  - name: x\n    risk: [low]\n    template: standard\n    bake_percent: 50\n";
        let errors = PolicyFile::parse(None, text, Format::Yaml).unwrap_err();
        let messages: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect();
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("rules[0].bake_percent")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("no rule covers a human change of medium risk")),
            "{messages:?}"
        );
        let errors = PolicyFile::parse(
            None,
            "rules:\n  - name: x\n    template: reckless\n",
            Format::Yaml,
        )
        .unwrap_err();
        let first = errors.iter().next().unwrap();
        assert_eq!(first.path.to_string(), "rules[0].template");
        assert!(first.position.is_some());
    }

    #[test]
    fn the_builtin_policy_names_its_rules() {
        let builtin = PolicyFile::builtin();
        builtin.check().unwrap();
        let ai_high = policy(Provenance::AiAssisted, Risk::High);
        assert_eq!(ai_high.rule, "ai-assisted-high");
        assert!(ai_high.required_stages.contains(&RequiredStage::Shadow));
        assert_eq!(RequiredStage::Shadow.present_in(&ai_high.plan()), None);
        assert_eq!(policy(Provenance::Human, Risk::Low).rule, "default");
    }
}
