//! The crash gate: a release's share follows a plan of stages, each held for a bake time and
//! judged on the crash-free session rate of the new version against the previous complete
//! release of the channel, by the rollout judge ([`crate::rollout::judge`]) and its
//! always-valid statistics. A regression halts the release.
//!
//! The judge's `crash_rate` is the share of sessions that crashed, which is one minus the
//! crash-free session rate, so "the crash-free rate fell by more than the tolerance" and
//! "the crash rate rose by more than the tolerance" are the same test. There is no sample
//! ratio check: the arms are two versions, not two halves of a randomised split, and uptake
//! of an update is not random.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::apps::release::Share;
use crate::error::{Error, ErrorKind, Path};
use crate::rollout::plan::duration_text;
use crate::rollout::{
    Arms, DEFAULT_ALPHA, DEFAULT_TUNING, Guardrail, JudgeConfig, Metric, MetricData, Outcome,
    Proportions, Tolerance, Verdict, judge,
};

/// The default bake time of a release stage.
const DEFAULT_STAGE_BAKE: Duration = Duration::from_secs(24 * 3600);
/// The default sessions per version before a stage may pass.
const DEFAULT_MIN_SESSIONS: u64 = 1000;

fn default_bake() -> Duration {
    DEFAULT_STAGE_BAKE
}

fn default_min_sessions() -> u64 {
    DEFAULT_MIN_SESSIONS
}

fn default_tolerance() -> Tolerance {
    // The crash rate may rise by at most a tenth of itself, or 0.1 percentage point when
    // the previous release hardly crashes.
    Tolerance::relative(0.1).or_absolute(0.001, crate::rollout::ToleranceUnit::Points)
}

fn default_alpha() -> f64 {
    DEFAULT_ALPHA
}

fn default_tuning() -> f64 {
    DEFAULT_TUNING
}

/// One stage of a release plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleaseStage {
    /// The share of installs offered the release during this stage.
    pub percent: Share,
    /// The least time the stage runs before it may advance.
    #[serde(default = "default_bake", with = "duration_text")]
    pub bake: Duration,
    /// The least sessions reported for each version before the gate may pass.
    #[serde(default = "default_min_sessions")]
    pub min_sessions: u64,
}

/// Stages a release's share follows, and the crash gate between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleasePlan {
    /// The stages, with growing shares; the last one is 100% and completes the release.
    pub stages: Vec<ReleaseStage>,
    /// How much worse the crash rate may be than the previous release's, as in rollout
    /// plans: `10%` relative, `0.1pp` absolute, or both (`10% or 0.1pp`).
    #[serde(default = "default_tolerance")]
    pub tolerance: Tolerance,
    /// The level of the one-sided test.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// The total sessions at which the confidence sequence is tightest.
    #[serde(default = "default_tuning")]
    pub tuning: f64,
}

impl ReleasePlan {
    /// Every problem with the plan, under `base`.
    pub fn problems(&self, base: &Path) -> Vec<Error> {
        let mut problems = Vec::new();
        let mut push = |path: Path, message: String| {
            problems.push(Error::new(ErrorKind::Invalid, path, message));
        };
        if self.stages.is_empty() {
            push(base.key("stages"), "a plan needs at least one stage".into());
        }
        for (index, stage) in self.stages.iter().enumerate() {
            if index > 0 && stage.percent <= self.stages[index - 1].percent {
                push(
                    base.key("stages").index(index).key("percent"),
                    "each stage must offer the release to more installs than the one before".into(),
                );
            }
        }
        if let Some(last) = self.stages.last()
            && !last.percent.is_all()
        {
            push(
                base.key("stages")
                    .index(self.stages.len() - 1)
                    .key("percent"),
                "the last stage must be 100, which completes the release".into(),
            );
        }
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            push(base.key("alpha"), "must be above 0 and below 0.5".into());
        }
        if !(self.tuning.is_finite() && self.tuning >= 1.0) {
            push(base.key("tuning"), "must be at least 1".into());
        }
        problems
    }

    /// The guardrail every stage is judged on.
    pub fn guardrail(&self) -> Guardrail {
        Guardrail::new(Metric::CrashRate, self.tolerance)
    }
}

/// Where a plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateState {
    /// The current stage's index.
    pub stage: usize,
    /// When it started (or was last resumed), in milliseconds since the Unix epoch.
    pub stage_started_ms: i64,
}

/// Sessions and crashes per version since the stage started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionCounts {
    /// The previous complete release of the channel.
    pub previous: Proportions,
    /// The release being rolled out.
    pub release: Proportions,
}

/// What the gate says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum GateAction {
    /// Stay at this stage.
    Hold,
    /// Move to stage `to`, offering the release to `share`.
    Advance {
        /// The next stage.
        to: usize,
        /// Its share.
        share: Share,
    },
    /// The crash rate regressed: stop offering the release.
    Halt,
}

/// The gate's decision with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    /// What to do.
    pub action: GateAction,
    /// The judge's verdict on the crash rate, new version against previous.
    pub verdict: Verdict,
    /// One or two sentences for people and the audit log.
    pub summary: String,
}

/// Decides a rolling release's stage at `now_ms` from the sessions since the stage started.
///
/// A failing crash rate halts at once, whatever the bake time. Advancing needs the bake time
/// over, `min_sessions` for each version, and a pass. Without a previous complete release
/// (`counts.previous.n == 0`) the gate can never pass, so the plan holds: promote by hand.
pub fn decide_gate(
    plan: &ReleasePlan,
    gate: &GateState,
    now_ms: i64,
    counts: &SessionCounts,
) -> GateDecision {
    let stage = plan.stages.get(gate.stage);
    let min_samples = stage.map_or(DEFAULT_MIN_SESSIONS, |s| s.min_sessions);
    let config = JudgeConfig {
        alpha: plan.alpha,
        tuning: plan.tuning,
        min_samples,
    };
    let data = MetricData::Proportions(Arms {
        control: counts.previous,
        treatment: counts.release,
    });
    let verdict = judge(&plan.guardrail(), Some(&data), &config);
    let evidence = verdict.evidence.summary.clone();
    let decision = |action: GateAction, summary: String| GateDecision {
        action,
        verdict: verdict.clone(),
        summary,
    };
    if verdict.outcome == Outcome::Fail {
        return decision(
            GateAction::Halt,
            format!("The crash rate regressed against the previous release: {evidence}"),
        );
    }
    let Some(stage) = stage else {
        return decision(
            GateAction::Hold,
            format!("Stage {} is not in the plan.", gate.stage),
        );
    };
    let elapsed_ms = now_ms.saturating_sub(gate.stage_started_ms).max(0);
    let bake_ms = i64::try_from(stage.bake.as_millis()).unwrap_or(i64::MAX);
    if elapsed_ms < bake_ms {
        return decision(
            GateAction::Hold,
            format!(
                "Baking: {} s of {} s. {evidence}",
                elapsed_ms / 1000,
                bake_ms / 1000
            ),
        );
    }
    if verdict.outcome != Outcome::Pass {
        return decision(
            GateAction::Hold,
            format!("The crash rate is not shown to be within tolerance yet. {evidence}"),
        );
    }
    match plan.stages.get(gate.stage + 1) {
        Some(next) => decision(
            GateAction::Advance {
                to: gate.stage + 1,
                share: next.percent,
            },
            format!(
                "The crash rate is within tolerance after the bake time; advancing to {}. {evidence}",
                next.percent
            ),
        ),
        None => decision(GateAction::Hold, "The last stage is reached.".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ReleasePlan {
        serde_json::from_value(serde_json::json!({
            "stages": [
                {"percent": 1, "bake": "1h", "minSessions": 500},
                {"percent": 10, "bake": "1h", "minSessions": 500},
                {"percent": 100}
            ]
        }))
        .unwrap()
    }

    fn counts(previous: (u64, u64), release: (u64, u64)) -> SessionCounts {
        SessionCounts {
            previous: Proportions {
                n: previous.0,
                k: previous.1,
            },
            release: Proportions {
                n: release.0,
                k: release.1,
            },
        }
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_crash_regression_halts_at_once_even_while_baking() {
        let gate = GateState {
            stage: 0,
            stage_started_ms: 0,
        };
        let decision = decide_gate(&plan(), &gate, 1, &counts((5000, 50), (2000, 200)));
        assert_eq!(decision.action, GateAction::Halt, "{}", decision.summary);
        assert_eq!(decision.verdict.outcome, Outcome::Fail);
    }

    #[test]
    fn a_healthy_release_holds_while_baking_then_advances() {
        let gate = GateState {
            stage: 0,
            stage_started_ms: 0,
        };
        let healthy = counts((20_000, 20), (20_000, 20));
        let early = decide_gate(&plan(), &gate, HOUR / 2, &healthy);
        assert_eq!(early.action, GateAction::Hold);
        let later = decide_gate(&plan(), &gate, HOUR, &healthy);
        assert_eq!(
            later.action,
            GateAction::Advance {
                to: 1,
                share: Share::from_weight(10_000).unwrap()
            },
            "{}",
            later.summary
        );
    }

    #[test]
    fn without_sessions_nothing_passes() {
        let gate = GateState {
            stage: 0,
            stage_started_ms: 0,
        };
        let decision = decide_gate(&plan(), &gate, 10 * HOUR, &counts((0, 0), (0, 0)));
        assert_eq!(decision.action, GateAction::Hold);
    }

    #[test]
    fn plans_must_grow_to_100() {
        let mut bad = plan();
        bad.stages.swap(0, 1);
        bad.stages.pop();
        let paths: Vec<String> = bad
            .problems(&Path::root().key("plan"))
            .iter()
            .map(|e| e.path.to_string())
            .collect();
        assert_eq!(paths, ["plan.stages[1].percent", "plan.stages[1].percent"]);
    }
}
