//! Built-in plans, and the policy that picks one from a change's provenance and risk.
//!
//! Both templates start with staff (segment `internal`) and opted-in users
//! (`beta_opt_in == true`), judged with gate `no_failure` because such small audiences can
//! rarely prove anything, then widen to everyone in steps judged with gate `pass`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{ConditionDef, Operator, Provenance, Risk};
use crate::rollout::plan::{
    Audience, FailurePolicy, Gate, Guardrail, Metric, Percentage, RolloutPlan, Stage, Tolerance,
    ToleranceUnit,
};

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

/// The template and knobs chosen for a change.
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
    /// Why, in one sentence.
    pub reason: String,
}

/// Chooses a plan for a change from who wrote it and how much harm it could do.
///
/// | provenance \ risk | low | medium | high |
/// |---|---|---|---|
/// | human | standard | standard | cautious, 1 approval |
/// | mixed | standard | standard, bakes ×1.5 | cautious, bakes ×1.5, 1 approval |
/// | ai-assisted | standard, bakes ×1.5 | cautious, 1 approval | cautious, bakes ×2, samples ×2, 2 approvals |
///
/// AI-assisted changes get more exposure time and more people watching because their
/// failure modes are less familiar to reviewers; high risk gets more steps.
pub fn policy(provenance: Provenance, risk: Risk) -> Policy {
    use Provenance::{AiAssisted, Human, Mixed};
    use Risk::{High, Low, Medium};
    let (template, bake_percent, samples_percent, approvals) = match (provenance, risk) {
        (Human, Low | Medium) | (Mixed, Low) => (Template::Standard, 100, 100, 0),
        (Human, High) => (Template::Cautious, 100, 100, 1),
        (Mixed, Medium) | (AiAssisted, Low) => (Template::Standard, 150, 100, 0),
        (Mixed, High) => (Template::Cautious, 150, 100, 1),
        (AiAssisted, Medium) => (Template::Cautious, 100, 100, 1),
        (AiAssisted, High) => (Template::Cautious, 200, 200, 2),
    };
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
    reason.push('.');
    Policy {
        template,
        bake_percent,
        samples_percent,
        approvals,
        reason,
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
