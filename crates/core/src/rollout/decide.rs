//! The stage decision: from a window's data and the time spent, advance, hold, pause or roll back.
//!
//! A failed guardrail acts at once, whatever the bake time. Advancing needs everything at the
//! same time: the bake time over, the minimum samples in each arm, no sample ratio mismatch,
//! the stage's gate met, and the next stage's approvals. Anything short of that holds, and a
//! hold that outlives the plan's `max_hold` after the bake time pauses and alerts: a rollout
//! never passes for want of evidence.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rollout::judge::{Arms, JudgeConfig, MetricData, Outcome, Verdict, judge};
use crate::rollout::plan::{Audience, FailurePolicy, Gate, Metric, RolloutPlan, duration_text};
use crate::rollout::stats::{self, ChiSquare, SRM_MIN_PER_ARM, SRM_P_THRESHOLD};

/// One metric's data for the window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Observation {
    /// The metric.
    pub metric: Metric,
    /// Its aggregates per arm.
    pub data: MetricData,
}

/// Everything known about the current stage: time spent, traffic, metrics, approvals.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Window {
    /// Time since the stage started. The controller's [`crate::rollout::step`] ignores it
    /// and measures the time itself, from the stage's start and the `now` it is given.
    #[serde(with = "duration_text")]
    pub elapsed: Duration,
    /// Exposures per arm in the window: the minimum samples and the SRM check count these.
    /// At a stage with a randomised split, count only that split's two arms, so the SRM check
    /// compares like with like; at a stage giving 100% of an audience, control is everyone else.
    pub exposures: Arms<u64>,
    /// The metrics reported for the same window.
    pub metrics: Vec<Observation>,
    /// Distinct approvals recorded for entering the next stage. The controller's
    /// [`crate::rollout::step`] ignores it and counts the approvals its state records.
    pub approvals: u32,
}

impl Window {
    /// The data reported for `metric`, if any.
    pub fn data(&self, metric: &Metric) -> Option<&MetricData> {
        self.metrics
            .iter()
            .find(|o| &o.metric == metric)
            .map(|o| &o.data)
    }
}

/// The sample ratio check of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Srm {
    /// The treatment share the split should give.
    pub expected_treatment_share: f64,
    /// Exposures per arm.
    pub observed: Arms<u64>,
    /// The chi-square test, when both arms have enough exposures to run it.
    pub test: Option<ChiSquare>,
    /// Whether audiences of earlier stages stay on the new variant, so the treatment share
    /// may exceed the split and only a share below it is a mismatch.
    #[serde(default)]
    pub at_least: bool,
    /// Whether the split is broken: p below 0.001 (and, when `at_least`, too few treatment
    /// exposures rather than too many).
    pub mismatch: bool,
}

/// Checks exposures against a stage's split, for stages with a randomised control.
///
/// With `at_least`, earlier stages' audiences (staff, beta testers) stay on the new variant
/// beside the random share, so more treatment than the split gives is expected, by an amount
/// that depends on how much of the traffic they are; only too little treatment is a mismatch.
pub fn srm_check(exposures: Arms<u64>, expected_treatment_share: f64, at_least: bool) -> Srm {
    let test = (exposures.control >= SRM_MIN_PER_ARM && exposures.treatment >= SRM_MIN_PER_ARM)
        .then(|| {
            stats::chi_square_test(
                &[exposures.control, exposures.treatment],
                &[1.0 - expected_treatment_share, expected_treatment_share],
            )
        })
        .flatten();
    let total = exposures.control.saturating_add(exposures.treatment);
    #[allow(clippy::cast_precision_loss)]
    let too_little_treatment =
        (exposures.treatment as f64) < expected_treatment_share * total as f64;
    Srm {
        expected_treatment_share,
        observed: exposures,
        test,
        at_least,
        mismatch: test.is_some_and(|t| t.p_value < SRM_P_THRESHOLD)
            && (!at_least || too_little_treatment),
    }
}

/// Whether a stage before `stage` targets a specific audience, which then stays on the new
/// variant beside the stage's random share.
pub fn keeps_audiences(plan: &RolloutPlan, stage: usize) -> bool {
    plan.stages
        .iter()
        .take(stage)
        .any(|earlier| !matches!(earlier.audience, Audience::Everyone))
}

/// Why a stage holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// The bake time is not over.
    Baking {
        /// Time left.
        #[serde(with = "duration_text")]
        remaining: Duration,
    },
    /// An arm has fewer exposures than the stage's minimum.
    NotEnoughSamples {
        /// The minimum per arm.
        required: u64,
        /// Exposures per arm.
        observed: Arms<u64>,
    },
    /// The arms' sizes do not match the split.
    SampleRatioMismatch {
        /// The chi-square p-value.
        p_value: f64,
    },
    /// These guardrails have not passed (gate `pass`).
    GuardrailsPending {
        /// The metrics still inconclusive.
        metrics: Vec<Metric>,
    },
}

/// Why a rollout pauses. A pause always alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// Guardrails failed and the plan's failure policy is `pause`.
    GuardrailFailed {
        /// The failed metrics.
        metrics: Vec<Metric>,
    },
    /// The stage held for longer than the plan's `max_hold` after its bake time.
    HoldExpired {
        /// How long past the bake time it has held.
        #[serde(with = "duration_text")]
        held: Duration,
        /// What it was still waiting for.
        reasons: Vec<HoldReason>,
    },
    /// The stage index is not in the plan.
    UnknownStage,
}

/// What the controller should do now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Move to stage `to`.
    Advance {
        /// The next stage's index.
        to: usize,
    },
    /// The last stage is reached: everyone is on the new path.
    Complete,
    /// Stay, for these reasons.
    Hold {
        /// Everything not yet met.
        reasons: Vec<HoldReason>,
    },
    /// Everything is met except the approvals needed to enter the next stage.
    AwaitApproval {
        /// Approvals needed.
        required: u32,
        /// Approvals recorded.
        received: u32,
    },
    /// Stop where it is and alert.
    Pause {
        /// Why.
        reason: PauseReason,
    },
    /// Send everyone back to the old path.
    Rollback {
        /// The failed metrics.
        metrics: Vec<Metric>,
    },
    /// Roll back by turning the flag off.
    Kill {
        /// The failed metrics.
        metrics: Vec<Metric>,
    },
}

/// A stage decision with all its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageDecision {
    /// The stage decided on.
    pub stage: usize,
    /// What to do.
    pub action: Action,
    /// Each guardrail's verdict, in the plan's order.
    pub verdicts: Vec<Verdict>,
    /// The sample ratio check, for stages with a randomised control.
    pub srm: Option<Srm>,
    /// Sentences saying why, one per line.
    pub summary: String,
}

/// Decides what to do at `stage` of `plan` given what `window` shows.
pub fn decide(plan: &RolloutPlan, stage: usize, window: &Window) -> StageDecision {
    decide_at(plan, stage, window, window.elapsed, window.approvals)
}

/// [`decide`] with the time spent in the stage and the approvals recorded given apart from
/// the window: the controller measures both itself rather than trusting the window's.
pub(crate) fn decide_at(
    plan: &RolloutPlan,
    stage: usize,
    window: &Window,
    elapsed: Duration,
    approvals: u32,
) -> StageDecision {
    let decision =
        |action: Action, verdicts: Vec<Verdict>, srm: Option<Srm>, summary: String| StageDecision {
            stage,
            action,
            verdicts,
            srm,
            summary,
        };
    let Some(current) = plan.stages.get(stage) else {
        return decision(
            Action::Pause {
                reason: PauseReason::UnknownStage,
            },
            Vec::new(),
            None,
            format!(
                "Stage {stage} is not in the plan, which has {} stages.",
                plan.stages.len()
            ),
        );
    };
    if stage + 1 == plan.stages.len() {
        return decision(
            Action::Complete,
            Vec::new(),
            None,
            "The last stage is reached: everyone is on the new path.".to_owned(),
        );
    }
    let config = JudgeConfig {
        alpha: plan.alpha,
        tuning: plan.tuning,
        min_samples: current.min_samples,
    };
    let verdicts: Vec<Verdict> = plan
        .guardrails
        .iter()
        .map(|guardrail| judge(guardrail, window.data(&guardrail.metric), &config))
        .collect();
    let mut lines: Vec<String> = verdicts
        .iter()
        .map(|v| v.evidence.summary.clone())
        .collect();

    let failed: Vec<Metric> = verdicts
        .iter()
        .filter(|v| v.outcome == Outcome::Fail)
        .map(|v| v.evidence.metric.clone())
        .collect();
    // A stage at 100% of its audience has no randomised control, so no split to check.
    let srm = (!current.percent.is_all()).then(|| {
        srm_check(
            window.exposures,
            current.percent.fraction(),
            keeps_audiences(plan, stage),
        )
    });
    if let Some(srm) = &srm
        && let Some(test) = &srm.test
    {
        lines.push(format!(
            "Sample ratio: {} control and {} treatment exposures against an expected {}{:.3}% treatment share, \
             chi-square {:.3}, p = {:.3e}{}.",
            srm.observed.control,
            srm.observed.treatment,
            if srm.at_least { "at least " } else { "" },
            srm.expected_treatment_share * 100.0,
            test.statistic,
            test.p_value,
            if srm.mismatch { ", a mismatch" } else { "" }
        ));
    }
    if !failed.is_empty() {
        let names = names(&failed);
        let (action, line) = match plan.on_failure {
            FailurePolicy::Rollback => (
                Action::Rollback { metrics: failed },
                format!("Rolling back: {names} failed."),
            ),
            FailurePolicy::Kill => (
                Action::Kill { metrics: failed },
                format!("Turning the flag off: {names} failed."),
            ),
            FailurePolicy::Pause => (
                Action::Pause {
                    reason: PauseReason::GuardrailFailed { metrics: failed },
                },
                format!("Pausing: {names} failed."),
            ),
        };
        lines.push(line);
        return decision(action, verdicts, srm, lines.join("\n"));
    }

    let mut reasons = Vec::new();
    if elapsed < current.bake {
        reasons.push(HoldReason::Baking {
            remaining: current.bake - elapsed,
        });
    }
    let exposures = window.exposures;
    if exposures.control < current.min_samples || exposures.treatment < current.min_samples {
        reasons.push(HoldReason::NotEnoughSamples {
            required: current.min_samples,
            observed: exposures,
        });
    }
    if let Some(srm) = &srm
        && srm.mismatch
        && let Some(test) = &srm.test
    {
        reasons.push(HoldReason::SampleRatioMismatch {
            p_value: test.p_value,
        });
    }
    if current.gate == Gate::Pass {
        let pending: Vec<Metric> = verdicts
            .iter()
            .filter(|v| v.outcome != Outcome::Pass)
            .map(|v| v.evidence.metric.clone())
            .collect();
        if !pending.is_empty() {
            reasons.push(HoldReason::GuardrailsPending { metrics: pending });
        }
    }

    if reasons.is_empty() {
        let next = &plan.stages[stage + 1];
        if approvals < next.approvals {
            lines.push(format!(
                "Ready to advance to {}, which needs {} approvals and has {}.",
                next.label(),
                next.approvals,
                approvals
            ));
            return decision(
                Action::AwaitApproval {
                    required: next.approvals,
                    received: approvals,
                },
                verdicts,
                srm,
                lines.join("\n"),
            );
        }
        let gate = match current.gate {
            Gate::Pass => "every guardrail passed",
            Gate::NoFailure => "no guardrail failed (gate `no_failure`)",
        };
        lines.push(format!(
            "Advancing to {}: baked {}, {} control and {} treatment exposures, {gate}.",
            next.label(),
            crate::rollout::format_duration(elapsed),
            exposures.control,
            exposures.treatment,
        ));
        return decision(
            Action::Advance { to: stage + 1 },
            verdicts,
            srm,
            lines.join("\n"),
        );
    }

    let waiting = describe(&reasons);
    let deadline = current.bake.saturating_add(plan.max_hold);
    if elapsed >= deadline {
        let held = elapsed - current.bake;
        lines.push(format!(
            "Pausing and alerting: held {} past the bake time, longer than the plan's max_hold of {}, waiting for {waiting}.",
            crate::rollout::format_duration(held),
            crate::rollout::format_duration(plan.max_hold),
        ));
        return decision(
            Action::Pause {
                reason: PauseReason::HoldExpired { held, reasons },
            },
            verdicts,
            srm,
            lines.join("\n"),
        );
    }
    lines.push(format!("Holding: waiting for {waiting}."));
    decision(Action::Hold { reasons }, verdicts, srm, lines.join("\n"))
}

fn names(metrics: &[Metric]) -> String {
    metrics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(reasons: &[HoldReason]) -> String {
    reasons
        .iter()
        .map(|reason| match reason {
            HoldReason::Baking { remaining } => {
                format!(
                    "the bake time ({} left)",
                    crate::rollout::format_duration(*remaining)
                )
            }
            HoldReason::NotEnoughSamples { required, observed } => format!(
                "{required} exposures per arm (control {}, treatment {})",
                observed.control, observed.treatment
            ),
            HoldReason::SampleRatioMismatch { p_value } => {
                format!("the sample ratio mismatch to clear (p = {p_value:.3e})")
            }
            HoldReason::GuardrailsPending { metrics } => format!("{} to pass", names(metrics)),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
