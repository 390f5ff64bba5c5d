//! Staged rollouts, the pure parts: plans, templates, the guardrail judge and its statistics.
//!
//! The one design decision everything follows from: a rollout is judged new path against old
//! path over the same window, with confidence sequences that stay valid however often they
//! are looked at. The controller can therefore ask [`decide`] on every tick, with no penalty
//! for peeking, and a verdict means the same thing at the first look as at the thousandth.
//!
//! Nothing here reads a clock or does I/O: the controller passes the time spent in a stage,
//! the exposures and the metric aggregates in a [`Window`], and gets back an [`Action`] with
//! its evidence. `docs/statistics.md` sets out the methods, formulas and references.
//!
//! ```
//! use std::time::Duration;
//! use sluice_core::rollout::{decide, Action, Arms, MetricData, Metric, Observation, Proportions, Template, Window};
//!
//! let plan = Template::Standard.plan();
//! // Stage 2 sends 10% of everyone to the new path; the new path doubles the error rate.
//! let window = Window {
//!     elapsed: Duration::from_secs(600),
//!     exposures: Arms { control: 45_000, treatment: 5_000 },
//!     metrics: vec![Observation {
//!         metric: Metric::ErrorRate,
//!         data: MetricData::Proportions(Arms {
//!             control: Proportions { n: 45_000, k: 450 },
//!             treatment: Proportions { n: 5_000, k: 100 },
//!         }),
//!     }],
//!     approvals: 0,
//! };
//! let decision = decide(&plan, 2, &window);
//! assert!(matches!(decision.action, Action::Rollback { .. }));
//! ```

mod controller;
mod decide;
mod exposure;
mod judge;
pub(crate) mod plan;
pub mod simulate;
pub mod stats;
mod template;
pub(crate) mod validate;

pub use controller::{
    ApplyError, Command, CommandError, Phase, RolloutState, Status, Step, Transition,
    TransitionEvidence, TransitionKind, apply, command, step,
};
pub use exposure::{Exposure, RULE_PREFIX, Share};

pub use decide::{
    Action, HoldReason, Observation, PauseReason, Srm, StageDecision, Window, decide,
    keeps_audiences, srm_check,
};
pub use judge::{
    Arms, Evidence, Exceedance, Inconclusive, Interval, JudgeConfig, LatencySketch,
    MIN_SAMPLES_FOR_ANY_VERDICT, MIN_TAIL_SAMPLES, MetricData, Moments, Outcome, Proportions,
    Scale, TestKind, Verdict, judge,
};
pub use plan::{
    Audience, DEFAULT_ALPHA, DEFAULT_BAKE, DEFAULT_MAX_HOLD, DEFAULT_MIN_SAMPLES, DEFAULT_TUNING,
    Direction, FailurePolicy, Gate, Guardrail, MAX_APPROVALS, Metric, MetricKind, Percentage,
    RolloutPlan, Stage, Tolerance, ToleranceUnit, format_duration, parse_duration,
};
pub use sketches_ddsketch::{Config as SketchConfig, DDSketch};
pub use template::{
    BETA_ATTRIBUTE, INTERNAL_SEGMENT, Policy, PolicyFile, PolicyRule, RequiredStage, Template,
    default_guardrails, policy,
};
