//! `sluice simulate`'s engine: synthetic traffic in virtual time through the real controller.
//!
//! A run starts a rollout with [`command`], then ticks: each tick draws the exposures of that
//! stretch of virtual time, splits them between the arms by the stage's share, draws their
//! errors, crashes and latencies, adds them to the stage's [`Window`], and calls [`step`],
//! which asks [`crate::rollout::decide`] and the judge. Transitions go through [`apply`]
//! exactly as the server applies them, and a stage change starts a new window. A run ends when
//! the rollout completes, rolls back or pauses (a person is alerted), or at the horizon.
//!
//! Nothing here is tuned to the judge: the traffic is what the settings say, drawn exactly
//! (Poisson exposures per tick, binomial splits and events, lognormal latencies), from a
//! seeded generator so a run is reproducible. [`summarise`] sets the outcome beside the
//! fixed-horizon sample size for the same test at 80% power: the statistical floor.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rollout::controller::{Command, RolloutState, Status, apply, command, step};
use crate::rollout::decide::{Action, HoldReason, Observation, PauseReason, Window};
use crate::rollout::judge::{Arms, MetricData, Proportions};
use crate::rollout::plan::{Metric, MetricKind, RolloutPlan};
use crate::rollout::stats::{self, Sides};
use crate::rollout::template::Template;

/// Power of the fixed-horizon test the floor is computed for.
pub const FLOOR_POWER: f64 = 0.8;

/// What the treatment does differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// No difference between the arms: every rollback is wrong.
    Aa,
    /// The treatment is worse: its error rate (or latency) multiplied by the effect.
    Regression,
    /// A regression at a trickle of traffic: how long detection takes, and how often the
    /// rollout pauses for want of evidence first.
    LowTraffic,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 3] = [Scenario::Aa, Scenario::Regression, Scenario::LowTraffic];

    /// The scenario's name: `aa`, `regression` or `low-traffic`.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Aa => "aa",
            Scenario::Regression => "regression",
            Scenario::LowTraffic => "low-traffic",
        }
    }

    /// The scenario called `name`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The metric a regression worsens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regressed {
    /// The error rate is multiplied by the effect.
    ErrorRate,
    /// Every latency is multiplied by the effect, so every quantile is.
    Latency,
}

/// Everything a simulation needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The scenario.
    pub scenario: Scenario,
    /// The template whose plan is driven.
    pub template: Template,
    /// The plan driven: the template's stages from its first stage open to everyone (the
    /// staff and beta stages have no randomised control to simulate).
    pub plan: RolloutPlan,
    /// Exposures per minute, all arms together.
    pub traffic_per_min: f64,
    /// Virtual time between ticks.
    #[serde(with = "crate::rollout::plan::duration_text")]
    pub tick: Duration,
    /// A run still undecided after this much virtual time ends as unfinished.
    #[serde(with = "crate::rollout::plan::duration_text")]
    pub horizon: Duration,
    /// The control's error rate.
    pub error_rate: f64,
    /// The control's crash rate.
    pub crash_rate: f64,
    /// The control's median latency in ms; latencies are lognormal.
    pub latency_median_ms: f64,
    /// The σ of the latencies' logarithm.
    pub latency_sigma: f64,
    /// The metric the treatment worsens.
    pub regressed: Regressed,
    /// The factor it is worsened by; 1 in A/A.
    pub effect: f64,
}

impl Settings {
    /// The scenario's defaults: 1,000 exposures a minute (20 for `low-traffic`), 1% errors,
    /// 0.1% crashes, latencies with a 100 ms median and σ = 0.5 (p99 ≈ 320 ms), ticks every
    /// 10 s, a 30-day horizon, and for the regressions a doubled error rate.
    pub fn new(scenario: Scenario, template: Template) -> Settings {
        let full = template.plan();
        let first = full
            .stages
            .iter()
            .position(|s| s.audience.is_everyone())
            .unwrap_or(0);
        let plan = RolloutPlan {
            stages: full.stages[first..].to_vec(),
            ..full
        };
        Settings {
            scenario,
            template,
            plan,
            traffic_per_min: if scenario == Scenario::LowTraffic {
                20.0
            } else {
                1000.0
            },
            tick: Duration::from_secs(10),
            horizon: Duration::from_secs(30 * 86_400),
            error_rate: 0.01,
            crash_rate: 0.001,
            latency_median_ms: 100.0,
            latency_sigma: 0.5,
            regressed: Regressed::ErrorRate,
            effect: if scenario == Scenario::Aa { 1.0 } else { 2.0 },
        }
    }

    /// The treatment's error rate.
    pub fn treatment_error_rate(&self) -> f64 {
        match self.regressed {
            Regressed::ErrorRate => (self.error_rate * self.effect).clamp(0.0, 1.0),
            Regressed::Latency => self.error_rate,
        }
    }

    /// The factor on the treatment's latencies.
    pub fn treatment_latency_scale(&self) -> f64 {
        match self.regressed {
            Regressed::ErrorRate => 1.0,
            Regressed::Latency => self.effect,
        }
    }

    /// Whether the arms differ.
    pub fn is_aa(&self) -> bool {
        self.effect == 1.0
    }

    /// The treatment's share at the first stage.
    pub fn first_share(&self) -> f64 {
        self.plan
            .stages
            .first()
            .map_or(1.0, |s| s.percent.fraction())
    }

    /// The fixed-horizon floor at the first stage: the samples a one-sided, single-look
    /// two-proportion z-test at the plan's α needs for 80% power against the same
    /// hypothesis the guardrail tests (the regressed metric no worse than tolerated), with
    /// the arms in the first stage's ratio. `None` in A/A, or when the effect is within
    /// the tolerance, so there is nothing to detect.
    pub fn floor(&self) -> Option<Floor> {
        if self.is_aa() {
            return None;
        }
        let share = self.first_share();
        if !(share > 0.0 && share < 1.0) {
            return None;
        }
        let ratio = (1.0 - share) / share;
        let (p_control, p_treatment) = match self.regressed {
            Regressed::ErrorRate => {
                let guardrail = self
                    .plan
                    .guardrails
                    .iter()
                    .find(|g| g.metric == Metric::ErrorRate)?;
                let margin = guardrail.tolerance.margin(self.error_rate);
                (self.error_rate + margin, self.treatment_error_rate())
            }
            Regressed::Latency => {
                // The judge compares the share of treatment requests slower than the control's
                // quantile plus the tolerance with the control's 1 − q.
                let (guardrail, q) =
                    self.plan
                        .guardrails
                        .iter()
                        .find_map(|g| match g.metric.kind() {
                            MetricKind::Latency(q) => Some((g, q)),
                            _ => None,
                        })?;
                let z = stats::normal_quantile(q);
                let control_quantile = self.latency_median_ms * (self.latency_sigma * z).exp();
                let threshold = control_quantile + guardrail.tolerance.margin(control_quantile);
                let scaled = self.latency_median_ms * self.treatment_latency_scale();
                let exceed =
                    1.0 - stats::normal_cdf((threshold / scaled).ln() / self.latency_sigma);
                (1.0 - q, exceed)
            }
        };
        if p_treatment <= p_control {
            return None;
        }
        let size = stats::fixed_horizon_sample_size(
            p_control,
            p_treatment,
            self.plan.alpha,
            FLOOR_POWER,
            Sides::One,
            ratio,
        )?;
        let treatment_per_min = self.traffic_per_min * share;
        Some(Floor {
            p_control,
            p_treatment,
            treatment: size.treatment,
            control: size.control,
            time: Duration::from_secs_f64(
                (size.treatment as f64 / treatment_per_min * 60.0).clamp(0.0, 1e12),
            ),
        })
    }
}

/// The fixed-horizon sample size the sequential test is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    /// The rate tested against: the control's plus the tolerance (for latency, the control's
    /// share above its quantile, 1 − q).
    pub p_control: f64,
    /// The treatment's true rate (for latency, its share above the tolerated threshold).
    pub p_treatment: f64,
    /// Treatment samples needed.
    pub treatment: u64,
    /// Control samples needed, in the first stage's ratio.
    pub control: u64,
    /// The virtual time the first stage takes to gather the treatment samples.
    #[serde(with = "crate::rollout::plan::duration_text")]
    pub time: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// A guardrail failed and the rollout rolled back (or was killed).
    RolledBack,
    /// Everyone reached the new variant.
    Completed,
    /// The rollout paused and alerted: a stage held past `max_hold`.
    Paused,
    /// Still undecided at the horizon.
    Unfinished,
}

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// How it ended.
    pub outcome: RunOutcome,
    /// The stage (in the simulated plan) it ended at.
    pub stage: usize,
    /// Virtual time from the start to the end.
    pub elapsed_ms: i64,
    /// Treatment exposures in the last stage's window when it ended: what the judge saw.
    pub treatment_samples: u64,
    /// Control exposures in that window.
    pub control_samples: u64,
    /// The metrics that failed, for a rollback.
    pub failed: Vec<Metric>,
    /// What a paused run was still waiting for: `baking`, `not_enough_samples`,
    /// `sample_ratio_mismatch`, or the metrics that had not passed.
    pub waiting_for: Vec<String>,
    /// Transitions applied.
    pub transitions: u64,
}

/// A seeded SplitMix64 generator with the few distributions the traffic needs.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
    spare_normal: Option<f64>,
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed,
            spare_normal: None,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller, both values used).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let (u, v) = (self.uniform(), self.uniform());
        let r = (-2.0 * u.ln()).sqrt();
        let angle = std::f64::consts::TAU * v;
        self.spare_normal = Some(r * angle.sin());
        r * angle.cos()
    }

    /// Binomial(n, p), exactly, by counting geometric waiting times: about `n·min(p, 1 − p)`
    /// draws.
    pub fn binomial(&mut self, n: u64, p: f64) -> u64 {
        if n == 0 || p.is_nan() || p <= 0.0 {
            return 0;
        }
        if p >= 1.0 {
            return n;
        }
        if p > 0.5 {
            return n - self.binomial(n, 1.0 - p);
        }
        let log_q = (-p).ln_1p();
        let mut successes = 0;
        let mut position: u64 = 0;
        loop {
            // Trials up to and including the next success.
            let gap = (self.uniform().ln() / log_q).floor() + 1.0;
            if gap > (n - position) as f64 {
                return successes;
            }
            position += gap as u64;
            successes += 1;
        }
    }

    /// Poisson(λ): multiplication for small λ, Hörmann's PTRS transformed rejection above.
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0;
        }
        if lambda < 30.0 {
            let limit = (-lambda).exp();
            let mut product = self.uniform();
            let mut count = 0;
            while product > limit {
                product *= self.uniform();
                count += 1;
            }
            return count;
        }
        let slam = lambda.sqrt();
        let loglam = lambda.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k as u64;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            let log_accept = -lambda + k * loglam - statrs::function::gamma::ln_gamma(k + 1.0);
            if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln() <= log_accept {
                return k as u64;
            }
        }
    }
}

/// The seed of run `index` under `seed`: runs are independent of each other and of the
/// order they are run in.
pub fn run_seed(seed: u64, index: u64) -> u64 {
    let mut rng = Rng::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    rng.next_u64()
}

/// The stage's window, with an observation for every guardrail the simulation reports.
fn empty_window(plan: &RolloutPlan) -> Window {
    let metrics = plan
        .guardrails
        .iter()
        .filter_map(|g| {
            let data = match (&g.metric, g.metric.kind()) {
                (Metric::ErrorRate | Metric::CrashRate, _) => {
                    MetricData::Proportions(Arms::default())
                }
                (_, MetricKind::Latency(_)) => MetricData::Latency(Box::default()),
                _ => return None,
            };
            Some(Observation {
                metric: g.metric.clone(),
                data,
            })
        })
        .collect();
    Window {
        metrics,
        ..Window::default()
    }
}

/// One run of `settings` with the generator seeded by `seed`.
pub fn run(settings: &Settings, seed: u64) -> RunResult {
    let mut rng = Rng::new(seed);
    let tick_ms = i64::try_from(settings.tick.as_millis().max(1)).unwrap_or(i64::MAX);
    let horizon_ms = i64::try_from(settings.horizon.as_millis()).unwrap_or(i64::MAX);
    let lambda = settings.traffic_per_min * settings.tick.as_secs_f64() / 60.0;
    let rates = Arms {
        control: (settings.error_rate, settings.crash_rate, 1.0),
        treatment: (
            settings.treatment_error_rate(),
            settings.crash_rate,
            settings.treatment_latency_scale(),
        ),
    };
    let mut state = RolloutState::new(
        settings.plan.clone(),
        "simulated",
        "simulation",
        "new",
        "old",
    );
    let mut transitions = 0;
    let result = |state: &RolloutState, outcome, now, window: &Window, transitions| {
        let decision = state
            .last
            .as_ref()
            .and_then(|t| t.evidence.decision.as_ref());
        let failed = decision
            .iter()
            .flat_map(|d| &d.verdicts)
            .filter(|v| v.outcome == crate::rollout::Outcome::Fail)
            .map(|v| v.evidence.metric.clone())
            .collect();
        let waiting_for = match decision.map(|d| &d.action) {
            Some(Action::Pause {
                reason: PauseReason::HoldExpired { reasons, .. },
            }) => reasons
                .iter()
                .flat_map(|reason| match reason {
                    HoldReason::Baking { .. } => vec!["baking".to_owned()],
                    HoldReason::NotEnoughSamples { .. } => vec!["not_enough_samples".to_owned()],
                    HoldReason::SampleRatioMismatch { .. } => {
                        vec!["sample_ratio_mismatch".to_owned()]
                    }
                    HoldReason::GuardrailsPending { metrics } => {
                        metrics.iter().map(ToString::to_string).collect()
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        RunResult {
            outcome,
            stage: state.stage,
            elapsed_ms: now,
            treatment_samples: window.exposures.treatment,
            control_samples: window.exposures.control,
            failed,
            waiting_for,
            transitions,
        }
    };
    let start = Command::Start {
        actor: "simulation".to_owned(),
    };
    match command(&state, 0, start).map(|t| apply(&state, &t)) {
        Ok(Ok(next)) => {
            state = next;
            transitions += 1;
        }
        _ => return result(&state, RunOutcome::Unfinished, 0, &Window::default(), 0),
    }
    let mut window = empty_window(&state.plan);
    let mut now: i64 = 0;
    while now < horizon_ms {
        now = now.saturating_add(tick_ms);
        let share = state
            .plan
            .stages
            .get(state.stage)
            .map_or(0.0, |s| s.percent.fraction());
        let exposures = rng.poisson(lambda);
        let treatment = rng.binomial(exposures, share);
        let counts = Arms {
            control: exposures - treatment,
            treatment,
        };
        window.exposures.control += counts.control;
        window.exposures.treatment += counts.treatment;
        add_traffic(&mut window, &mut rng, counts, rates, settings);

        let tick = step(&state, now, &window);
        let Some(transition) = tick.transition else {
            continue;
        };
        let Ok(next) = apply(&state, &transition) else {
            return result(&state, RunOutcome::Unfinished, now, &window, transitions);
        };
        transitions += 1;
        let restarted = next.stage_started_ms != state.stage_started_ms;
        state = next;
        let outcome = match state.status {
            Status::RolledBack { .. } | Status::Killed { .. } => Some(RunOutcome::RolledBack),
            Status::Completed => Some(RunOutcome::Completed),
            Status::Paused { .. } => Some(RunOutcome::Paused),
            _ => None,
        };
        if let Some(outcome) = outcome {
            return result(&state, outcome, now, &window, transitions);
        }
        if restarted {
            window = empty_window(&state.plan);
        }
    }
    result(&state, RunOutcome::Unfinished, now, &window, transitions)
}

/// Draws one tick's events for `counts` exposures per arm into the window's metrics.
fn add_traffic(
    window: &mut Window,
    rng: &mut Rng,
    counts: Arms<u64>,
    rates: Arms<(f64, f64, f64)>,
    settings: &Settings,
) {
    for observation in &mut window.metrics {
        match (&observation.metric, &mut observation.data) {
            (Metric::ErrorRate, MetricData::Proportions(arms)) => {
                add_events(rng, &mut arms.control, counts.control, rates.control.0);
                add_events(
                    rng,
                    &mut arms.treatment,
                    counts.treatment,
                    rates.treatment.0,
                );
            }
            (Metric::CrashRate, MetricData::Proportions(arms)) => {
                add_events(rng, &mut arms.control, counts.control, rates.control.1);
                add_events(
                    rng,
                    &mut arms.treatment,
                    counts.treatment,
                    rates.treatment.1,
                );
            }
            (_, MetricData::Latency(arms)) => {
                let arms = &mut **arms;
                for (sketch, n, scale) in [
                    (&mut arms.control, counts.control, rates.control.2),
                    (&mut arms.treatment, counts.treatment, rates.treatment.2),
                ] {
                    let median = settings.latency_median_ms * scale;
                    for _ in 0..n {
                        sketch
                            .0
                            .add(median * (settings.latency_sigma * rng.normal()).exp());
                    }
                }
            }
            _ => {}
        }
    }
}

fn add_events(rng: &mut Rng, arm: &mut Proportions, n: u64, p: f64) {
    arm.n += n;
    arm.k += rng.binomial(n, p);
}

/// A result set against its targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is measured.
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// The bound it must meet.
    pub bound: f64,
    /// Whether the bound is a maximum (`true`) or a minimum.
    pub at_most: bool,
    /// Whether it is met.
    pub met: bool,
}

/// Many runs, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Runs.
    pub runs: usize,
    /// Runs per outcome.
    pub rolled_back: usize,
    /// Runs that completed.
    pub completed: usize,
    /// Runs that paused.
    pub paused: usize,
    /// Runs undecided at the horizon.
    pub unfinished: usize,
    /// The share of runs that rolled back: wrong rollbacks in A/A, detections otherwise.
    pub rollback_rate: f64,
    /// Rollbacks at the first stage.
    pub rolled_back_at_first_stage: usize,
    /// The median treatment exposures in the window that failed, over the rollbacks.
    pub median_treatment_samples: Option<u64>,
    /// The median exposures of both arms in that window.
    pub median_total_samples: Option<u64>,
    /// The median virtual time from the start to the rollback.
    pub median_time_to_rollback_s: Option<f64>,
    /// The median virtual time from the start to completion, over the completed runs.
    pub median_time_to_complete_s: Option<f64>,
    /// Rollbacks by the metric that failed (a rollback on two metrics counts for both).
    pub rollbacks_by_metric: BTreeMap<String, usize>,
    /// Pauses by what they were still waiting for.
    pub pauses_waiting_for: BTreeMap<String, usize>,
    /// The fixed-horizon floor, when there is an effect to detect.
    pub floor: Option<Floor>,
    /// `median_treatment_samples / floor.treatment`.
    pub samples_to_floor: Option<f64>,
    /// The targets for this scenario, where it has them.
    pub targets: Vec<Target>,
}

fn median<T: Copy + Ord>(mut values: Vec<T>) -> Option<T> {
    values.sort_unstable();
    values.get(values.len().checked_sub(1)? / 2).copied()
}

/// Summarises runs of `settings`. The targets: in A/A at most 1% wrong rollbacks; for an
/// error-rate regression at least 95% detected, with median treatment samples at most twice
/// the floor. Latency and low-traffic runs are reported without targets.
pub fn summarise(settings: &Settings, results: &[RunResult]) -> Summary {
    let count = |outcome: RunOutcome| results.iter().filter(|r| r.outcome == outcome).count();
    let rollbacks: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.outcome == RunOutcome::RolledBack)
        .collect();
    let runs = results.len();
    let rollback_rate = if runs == 0 {
        0.0
    } else {
        rollbacks.len() as f64 / runs as f64
    };
    let median_treatment_samples = median(rollbacks.iter().map(|r| r.treatment_samples).collect());
    let median_total_samples = median(
        rollbacks
            .iter()
            .map(|r| r.treatment_samples + r.control_samples)
            .collect(),
    );
    let seconds = |ms: Option<i64>| ms.map(|ms| ms as f64 / 1000.0);
    let median_time_to_rollback_s =
        seconds(median(rollbacks.iter().map(|r| r.elapsed_ms).collect()));
    let median_time_to_complete_s = seconds(median(
        results
            .iter()
            .filter(|r| r.outcome == RunOutcome::Completed)
            .map(|r| r.elapsed_ms)
            .collect(),
    ));
    let mut rollbacks_by_metric = BTreeMap::new();
    for metric in rollbacks.iter().flat_map(|r| &r.failed) {
        *rollbacks_by_metric.entry(metric.to_string()).or_insert(0) += 1;
    }
    let mut pauses_waiting_for = BTreeMap::new();
    for reason in results
        .iter()
        .filter(|r| r.outcome == RunOutcome::Paused)
        .flat_map(|r| &r.waiting_for)
    {
        *pauses_waiting_for.entry(reason.clone()).or_insert(0) += 1;
    }
    let floor = settings.floor();
    let samples_to_floor = match (median_treatment_samples, floor) {
        (Some(samples), Some(floor)) if floor.treatment > 0 => {
            Some(samples as f64 / floor.treatment as f64)
        }
        _ => None,
    };
    let mut targets = Vec::new();
    if settings.is_aa() {
        targets.push(Target {
            name: "wrong rollback rate".to_owned(),
            value: rollback_rate,
            bound: 0.01,
            at_most: true,
            met: rollback_rate <= 0.01,
        });
    } else if settings.scenario == Scenario::Regression
        && settings.regressed == Regressed::ErrorRate
    {
        targets.push(Target {
            name: "detection rate".to_owned(),
            value: rollback_rate,
            bound: 0.95,
            at_most: false,
            met: rollback_rate >= 0.95,
        });
        if let Some(ratio) = samples_to_floor {
            targets.push(Target {
                name: "median treatment samples / fixed-horizon floor".to_owned(),
                value: ratio,
                bound: 2.0,
                at_most: true,
                met: ratio <= 2.0,
            });
        }
    }
    Summary {
        runs,
        rolled_back: rollbacks.len(),
        completed: count(RunOutcome::Completed),
        paused: count(RunOutcome::Paused),
        unfinished: count(RunOutcome::Unfinished),
        rollback_rate,
        rolled_back_at_first_stage: rollbacks.iter().filter(|r| r.stage == 0).count(),
        median_treatment_samples,
        median_total_samples,
        median_time_to_rollback_s,
        median_time_to_complete_s,
        rollbacks_by_metric,
        pauses_waiting_for,
        floor,
        samples_to_floor,
        targets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_and_variance(values: &[f64]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, variance)
    }

    #[test]
    fn the_samplers_have_the_right_moments() {
        let mut rng = Rng::new(7);
        for (n, p) in [(100u64, 0.01), (167, 0.1), (1000, 0.5), (50, 0.9)] {
            let draws: Vec<f64> = (0..20_000).map(|_| rng.binomial(n, p) as f64).collect();
            let (mean, variance) = mean_and_variance(&draws);
            let (m, v) = (n as f64 * p, n as f64 * p * (1.0 - p));
            assert!(
                (mean - m).abs() < 0.05 * m.max(1.0),
                "binomial({n}, {p}) mean {mean}"
            );
            assert!(
                (variance - v).abs() < 0.1 * v.max(1.0),
                "binomial({n}, {p}) var {variance}"
            );
            assert!(draws.iter().all(|&d| d <= n as f64));
        }
        for lambda in [0.5, 3.3, 29.0, 31.0, 166.7, 5000.0] {
            let draws: Vec<f64> = (0..20_000).map(|_| rng.poisson(lambda) as f64).collect();
            let (mean, variance) = mean_and_variance(&draws);
            assert!(
                (mean - lambda).abs() < 0.03 * lambda.max(1.0),
                "poisson({lambda}) mean {mean}"
            );
            assert!(
                (variance - lambda).abs() < 0.1 * lambda.max(1.0),
                "poisson({lambda}) var {variance}"
            );
        }
        let normals: Vec<f64> = (0..20_000).map(|_| rng.normal()).collect();
        let (mean, variance) = mean_and_variance(&normals);
        assert!(mean.abs() < 0.03 && (variance - 1.0).abs() < 0.05);
    }

    #[test]
    fn runs_are_reproducible_and_the_floor_matches_the_docs() {
        let settings = Settings {
            horizon: Duration::from_secs(3 * 3600),
            ..Settings::new(Scenario::Regression, Template::Standard)
        };
        assert_eq!(run(&settings, 3), run(&settings, 3));
        let floor = settings.floor().expect("a doubled error rate has a floor");
        // 1% → 2% against the tolerated 1.2%, 10% stage: docs/statistics.md.
        assert_eq!(floor.treatment, 2021);
        assert!(
            Settings::new(Scenario::Aa, Template::Standard)
                .floor()
                .is_none()
        );
    }
}
