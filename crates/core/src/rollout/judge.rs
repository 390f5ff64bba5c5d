//! The judge: one guardrail, two arms over the same window, one verdict with its evidence.
//!
//! Every metric becomes a difference, treatment minus control, with always-valid one-sided
//! bounds from [`crate::rollout::stats`]. The tolerance turns into a threshold on that
//! difference. A guardrail fails when the whole interval lies beyond the threshold on the
//! worse side, and passes when it lies wholly on the better side and each arm has its minimum
//! samples. Anything else is inconclusive, and never a pass.
//!
//! Latency quantiles are judged as rates: the share of treatment requests slower than the
//! control's quantile plus the tolerance, against the share of control requests slower than
//! the control's quantile. The treatment's quantile is within tolerance exactly when the first
//! share is no larger than the second, so the rate machinery carries over unchanged.

use std::fmt;

use serde::{Deserialize, Serialize};
use sketches_ddsketch::DDSketch;

use crate::rollout::plan::{Direction, Guardrail, Metric, MetricKind};
use crate::rollout::stats::{self, Difference};

/// The fewest samples per arm before any verdict, pass or fail: below this the normal
/// approximation behind the sequences is not trusted.
pub const MIN_SAMPLES_FOR_ANY_VERDICT: u64 = 100;
/// For latency quantiles, the fewest requests per arm expected above the quantile before any
/// verdict: `n · (1 − q)` must reach it, so p99 needs 2,000 requests per arm.
pub const MIN_TAIL_SAMPLES: u64 = 20;

/// The two arms of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Arms<T> {
    /// The old path.
    pub control: T,
    /// The new path.
    pub treatment: T,
}

/// Exposures and how many of them saw the event, for rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Proportions {
    /// Exposures.
    pub n: u64,
    /// Exposures that saw the event (an error, a crash, a custom event).
    pub k: u64,
}

/// Count, sum and sum of squares of a per-exposure value, for means.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Moments {
    /// Exposures.
    pub n: u64,
    /// The sum of the values.
    pub sum: f64,
    /// The sum of the squared values.
    pub sum_sq: f64,
}

impl Moments {
    /// Adds one value.
    pub fn add(&mut self, value: f64) {
        self.n += 1;
        self.sum += value;
        self.sum_sq += value * value;
    }
}

/// A mergeable latency sketch, in milliseconds.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LatencySketch(pub DDSketch);

impl fmt::Debug for LatencySketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quantile = |q: f64| self.0.quantile(q).ok().flatten();
        f.debug_struct("LatencySketch")
            .field("count", &self.0.count())
            .field("p50", &quantile(0.5))
            .field("p99", &quantile(0.99))
            .finish()
    }
}

impl LatencySketch {
    /// Requests in the sketch.
    pub fn count(&self) -> u64 {
        self.0.count() as u64
    }

    /// The `q` quantile, or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.0.quantile(q).ok().flatten()
    }

    /// The value at rank `rank` (0-based, in `0..count`) as the sketch reports it.
    fn at_rank(&self, rank: u64, count: u64) -> Option<f64> {
        if count <= 1 {
            return self.0.min();
        }
        let last = count - 1;
        if rank >= last {
            // `quantile(1.0)` is the exact maximum; keep the sequence monotone.
            let before = self.at_rank(last - 1, count)?;
            return Some(self.0.max()?.max(before));
        }
        // `quantile` takes rank ⌊q (count − 1)⌋; aim at the middle of the rank.
        let q = (rank as f64 + 0.5) / last as f64;
        self.0.quantile(q).ok().flatten()
    }

    /// How many requests the sketch puts above `threshold`.
    pub fn count_above(&self, threshold: f64) -> u64 {
        let count = self.count();
        // Find the first rank whose value exceeds the threshold.
        let (mut lo, mut hi) = (0u64, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.at_rank(mid, count) {
                Some(value) if value > threshold => hi = mid,
                _ => lo = mid + 1,
            }
        }
        count - lo
    }
}

/// One guardrail's data for a window.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricData {
    /// Rates.
    Proportions(Arms<Proportions>),
    /// Means.
    Moments(Arms<Moments>),
    /// Latency sketches.
    Latency(Box<Arms<LatencySketch>>),
}

/// The statistical settings of one judgement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JudgeConfig {
    /// The level of each one-sided bound.
    pub alpha: f64,
    /// The total sample size at which the sequences are tightest.
    pub tuning: f64,
    /// The fewest samples per arm for a pass.
    pub min_samples: u64,
}

/// What a guardrail says about a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The new path is no worse than tolerated.
    Pass,
    /// The new path is worse than tolerated.
    Fail,
    /// Neither yet.
    Inconclusive(Inconclusive),
}

/// Why a guardrail has no verdict yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inconclusive {
    /// Too few samples in an arm, or no data at all.
    NotEnoughData,
    /// Enough samples, but the interval still straddles the threshold.
    Holding,
    /// The data cannot be right (more events than exposures) or is not the metric's kind.
    InvalidData,
}

/// The test behind a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestKind {
    /// Always-valid confidence sequence on a difference of proportions.
    ProportionSequence,
    /// Always-valid confidence sequence on a difference of means.
    MeanSequence,
    /// Always-valid confidence sequence on the difference of the shares of requests slower
    /// than a quantile threshold.
    QuantileExceedanceSequence,
    /// Always-valid confidence sequence on one rate against an absolute bound (shadow
    /// mismatches).
    RateSequence,
}

impl TestKind {
    /// A name for people.
    pub fn describe(self) -> &'static str {
        match self {
            TestKind::ProportionSequence => {
                "always-valid confidence sequence, difference of proportions"
            }
            TestKind::MeanSequence => "always-valid confidence sequence, difference of means",
            TestKind::QuantileExceedanceSequence => {
                "always-valid confidence sequence, difference of shares slower than the tolerated quantile"
            }
            TestKind::RateSequence => "always-valid confidence sequence, one rate against a bound",
        }
    }
}

/// What an interval bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Treatment minus control, in the metric's unit (a fraction for rates).
    Difference,
    /// For latency: the share of treatment requests slower than the tolerated threshold
    /// minus the share of control requests slower than the control's quantile. Its threshold is 0.
    ExceedanceShare,
    /// The treatment's rate itself, against an absolute bound (shadow mismatches).
    Rate,
}

/// Always-valid bounds, each one-sided at level α.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The lower bound.
    pub lo: f64,
    /// The upper bound.
    pub hi: f64,
    /// What is bounded.
    pub scale: Scale,
}

/// For latency: the shares the quantile comparison was turned into.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Exceedance {
    /// The control's quantile plus the tolerance, in ms.
    pub threshold_ms: f64,
    /// The share of control requests slower than the control's quantile.
    pub control_share: f64,
    /// The share of treatment requests slower than `threshold_ms`.
    pub treatment_share: f64,
}

/// The numbers behind a verdict, for people and for the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The metric judged.
    pub metric: Metric,
    /// Which way is better.
    pub direction: Direction,
    /// The test used.
    pub test: TestKind,
    /// The level of each one-sided bound.
    pub alpha: f64,
    /// Samples per arm.
    pub n: Arms<u64>,
    /// The samples per arm a pass needs.
    pub min_samples: u64,
    /// The control's value (a rate as a fraction, latency in ms), when it has data.
    pub control: Option<f64>,
    /// The treatment's value, when it has data.
    pub treatment: Option<f64>,
    /// `treatment − control`.
    pub difference: Option<f64>,
    /// The tolerated difference, `treatment − control`, in the metric's unit: positive for
    /// lower-is-better metrics, negative for higher-is-better ones.
    pub threshold: Option<f64>,
    /// The always-valid bounds the decision was made on.
    pub interval: Option<Interval>,
    /// For latency, the shares compared.
    pub exceedance: Option<Exceedance>,
    /// The always-valid p-value of the side the estimate lies on: against "no worse than
    /// tolerated" when the estimate is worse, against "worse than tolerated" when it is not.
    pub p_value: Option<f64>,
    /// One sentence saying what was found.
    pub summary: String,
}

/// One guardrail's verdict on a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Pass, fail or inconclusive.
    pub outcome: Outcome,
    /// Why.
    pub evidence: Evidence,
}

/// Judges one guardrail on one window's data. `None` means no data arrived for it.
pub fn judge(guardrail: &Guardrail, data: Option<&MetricData>, config: &JudgeConfig) -> Verdict {
    let kind = guardrail.metric.kind();
    let shadow = guardrail.metric == Metric::ShadowMismatchRate;
    let test = match kind {
        MetricKind::Proportion if shadow => TestKind::RateSequence,
        MetricKind::Proportion => TestKind::ProportionSequence,
        MetricKind::Mean => TestKind::MeanSequence,
        MetricKind::Latency(_) => TestKind::QuantileExceedanceSequence,
    };
    let blank = Evidence {
        metric: guardrail.metric.clone(),
        direction: guardrail.direction(),
        test,
        alpha: config.alpha,
        n: Arms::default(),
        min_samples: config.min_samples,
        control: None,
        treatment: None,
        difference: None,
        threshold: None,
        interval: None,
        exceedance: None,
        p_value: None,
        summary: String::new(),
    };
    match (kind, data) {
        (_, None) => inconclusive(
            blank,
            Inconclusive::NotEnoughData,
            "no data arrived for this metric in the window".to_owned(),
        ),
        (MetricKind::Proportion, Some(MetricData::Proportions(arms))) if shadow => {
            shadow_rate(guardrail, arms, config, blank)
        }
        (MetricKind::Proportion, Some(MetricData::Proportions(arms))) => {
            proportions(guardrail, arms, config, blank)
        }
        (MetricKind::Mean, Some(MetricData::Moments(arms))) => {
            moments(guardrail, arms, config, blank)
        }
        (MetricKind::Latency(q), Some(MetricData::Latency(arms))) => {
            latency(guardrail, q, arms, config, blank)
        }
        (_, Some(_)) => inconclusive(
            blank,
            Inconclusive::InvalidData,
            "the data reported is not of this metric's kind".to_owned(),
        ),
    }
}

fn inconclusive(mut evidence: Evidence, why: Inconclusive, reason: String) -> Verdict {
    evidence.summary = format!("{}: inconclusive, {reason}.", evidence.metric);
    Verdict {
        outcome: Outcome::Inconclusive(why),
        evidence,
    }
}

/// How a number is shown for a metric.
#[derive(Clone, Copy)]
enum Unit {
    Rate,
    Millis,
    Plain,
}

impl Unit {
    fn value(self, value: f64) -> String {
        match self {
            Unit::Rate => format!("{}%", significant(value * 100.0, 3)),
            Unit::Millis => format!("{} ms", significant(value, 4)),
            Unit::Plain => significant(value, 4),
        }
    }

    fn difference(self, value: f64) -> String {
        let sign = if value >= 0.0 { "+" } else { "−" };
        match self {
            Unit::Rate => format!("{sign}{} pp", significant(value.abs() * 100.0, 3)),
            Unit::Millis => format!("{sign}{} ms", significant(value.abs(), 4)),
            Unit::Plain => format!("{sign}{}", significant(value.abs(), 4)),
        }
    }
}

/// `value` with about `digits` significant digits, without exponent notation.
fn significant(value: f64, digits: i32) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).clamp(0, 8) as usize;
    format!("{value:.decimals$}")
}

/// The core of every test: a difference with bounds, against a threshold.
struct Comparison {
    difference: Difference,
    /// The threshold on the tested difference.
    threshold: f64,
    /// Whether "worse" means a larger tested difference.
    worse_is_up: bool,
}

struct Judged {
    outcome: Outcome,
    interval: (f64, f64),
    p_value: f64,
}

fn compare(comparison: &Comparison, n: Arms<u64>, config: &JudgeConfig) -> Judged {
    let bounds = comparison.difference.bounds(config.alpha, config.tuning);
    let (lo, hi) = (bounds.lo, bounds.hi);
    let (fails, passes) = if comparison.worse_is_up {
        (lo > comparison.threshold, hi < comparison.threshold)
    } else {
        (hi < comparison.threshold, lo > comparison.threshold)
    };
    let enough = n.control >= config.min_samples && n.treatment >= config.min_samples;
    let outcome = if fails {
        Outcome::Fail
    } else if passes && enough {
        Outcome::Pass
    } else if !enough {
        Outcome::Inconclusive(Inconclusive::NotEnoughData)
    } else {
        Outcome::Inconclusive(Inconclusive::Holding)
    };
    let p_value = comparison
        .difference
        .p_value(comparison.threshold, config.alpha, config.tuning);
    Judged {
        outcome,
        interval: (lo, hi),
        p_value,
    }
}

/// The sentence after the numbers: what the bounds show.
fn conclusion(outcome: Outcome, worse_is_up: bool, n: Arms<u64>, min_samples: u64) -> String {
    let (beyond, within) = if worse_is_up {
        ("lower", "upper")
    } else {
        ("upper", "lower")
    };
    match outcome {
        Outcome::Fail => format!("fails: even the {beyond} bound is worse than tolerated"),
        Outcome::Pass => format!("passes: even the {within} bound is within tolerance"),
        Outcome::Inconclusive(Inconclusive::NotEnoughData) => format!(
            "not enough data: a pass needs {min_samples} per arm, and has {} and {}",
            n.control, n.treatment
        ),
        Outcome::Inconclusive(_) => {
            "holding: the interval still straddles the tolerance".to_owned()
        }
    }
}

fn floor_problem(n: Arms<u64>, floor: u64) -> Option<String> {
    (n.control < floor || n.treatment < floor).then(|| {
        format!(
            "{} control and {} treatment samples, fewer than the {floor} per arm any verdict needs",
            n.control, n.treatment
        )
    })
}

fn proportions(
    guardrail: &Guardrail,
    arms: &Arms<Proportions>,
    config: &JudgeConfig,
    mut evidence: Evidence,
) -> Verdict {
    let n = Arms {
        control: arms.control.n,
        treatment: arms.treatment.n,
    };
    evidence.n = n;
    let Some(difference) = stats::proportion_difference(
        arms.control.n,
        arms.control.k,
        arms.treatment.n,
        arms.treatment.k,
    ) else {
        let why = if arms.control.k > arms.control.n || arms.treatment.k > arms.treatment.n {
            (
                Inconclusive::InvalidData,
                "an arm reports more events than exposures".to_owned(),
            )
        } else {
            (
                Inconclusive::NotEnoughData,
                "an arm has no exposures".to_owned(),
            )
        };
        return inconclusive(evidence, why.0, why.1);
    };
    let control = arms.control.k as f64 / arms.control.n as f64;
    let treatment = arms.treatment.k as f64 / arms.treatment.n as f64;
    differences(
        guardrail,
        control,
        treatment,
        difference,
        Unit::Rate,
        config,
        evidence,
    )
}

/// `shadow_mismatch_rate`: the treatment arm holds the candidate's comparisons (`n`) and
/// mismatches (`k`); the control arm holds the noise floor (control against itself), reported
/// but not tested. The rate passes when its always-valid upper bound is under the absolute
/// bound with at least the guardrail's (or stage's) minimum comparisons, and fails when even
/// its lower bound is above it.
fn shadow_rate(
    guardrail: &Guardrail,
    arms: &Arms<Proportions>,
    config: &JudgeConfig,
    mut evidence: Evidence,
) -> Verdict {
    let (n, k) = (arms.treatment.n, arms.treatment.k);
    let min_samples = guardrail.min_samples.unwrap_or(config.min_samples);
    evidence.min_samples = min_samples;
    evidence.n = Arms {
        control: arms.control.n,
        treatment: n,
    };
    let Some(rate) = stats::proportion(n, k) else {
        let (why, reason) = if k > n {
            (
                Inconclusive::InvalidData,
                "more mismatches than comparisons",
            )
        } else {
            (Inconclusive::NotEnoughData, "no comparisons yet")
        };
        return inconclusive(evidence, why, reason.to_owned());
    };
    let bound = guardrail.tolerance.margin(0.0);
    let noise = (arms.control.n > 0 && arms.control.k <= arms.control.n)
        .then(|| arms.control.k as f64 / arms.control.n as f64);
    evidence.control = noise;
    evidence.treatment = Some(rate.estimate);
    evidence.threshold = Some(bound);
    let bounds = rate.bounds(config.alpha, config.tuning);
    evidence.interval = Some(Interval {
        lo: bounds.lo,
        hi: bounds.hi,
        scale: Scale::Rate,
    });
    evidence.p_value = Some(rate.p_value(bound, config.alpha, config.tuning));
    let noise_text = match noise {
        Some(noise) => format!(
            "noise floor {} of {} control-against-control comparisons",
            Unit::Rate.value(noise),
            arms.control.n
        ),
        None => "no noise floor measured".to_owned(),
    };
    let numbers = format!(
        "{}: {} of {n} comparisons mismatched ({noise_text}), always-valid bounds [{}, {}] at α = {}; bound {}",
        guardrail.metric,
        Unit::Rate.value(rate.estimate),
        Unit::Rate.value(bounds.lo),
        Unit::Rate.value(bounds.hi),
        config.alpha,
        Unit::Rate.value(bound),
    );
    let outcome = if n < MIN_SAMPLES_FOR_ANY_VERDICT {
        Outcome::Inconclusive(Inconclusive::NotEnoughData)
    } else if bounds.lo > bound {
        Outcome::Fail
    } else if bounds.hi < bound && n >= min_samples {
        Outcome::Pass
    } else if n < min_samples {
        Outcome::Inconclusive(Inconclusive::NotEnoughData)
    } else {
        Outcome::Inconclusive(Inconclusive::Holding)
    };
    let conclusion = match outcome {
        Outcome::Fail => "fails: even the lower bound is above the bound".to_owned(),
        Outcome::Pass => "passes: even the upper bound is under the bound".to_owned(),
        Outcome::Inconclusive(Inconclusive::NotEnoughData) => format!(
            "not enough data: a pass needs {} comparisons, and has {n}",
            min_samples.max(MIN_SAMPLES_FOR_ANY_VERDICT)
        ),
        Outcome::Inconclusive(_) => "holding: the interval still straddles the bound".to_owned(),
    };
    evidence.summary = format!("{numbers}; {conclusion}.");
    Verdict { outcome, evidence }
}

fn moments(
    guardrail: &Guardrail,
    arms: &Arms<Moments>,
    config: &JudgeConfig,
    mut evidence: Evidence,
) -> Verdict {
    let n = Arms {
        control: arms.control.n,
        treatment: arms.treatment.n,
    };
    evidence.n = n;
    let as_tuple = |m: &Moments| (m.n, m.sum, m.sum_sq);
    let Some(difference) =
        stats::mean_difference(as_tuple(&arms.control), as_tuple(&arms.treatment))
    else {
        let finite = [arms.control, arms.treatment]
            .iter()
            .all(|m| m.sum.is_finite() && m.sum_sq.is_finite());
        return if finite {
            inconclusive(
                evidence,
                Inconclusive::NotEnoughData,
                "an arm has fewer than 2 samples".to_owned(),
            )
        } else {
            inconclusive(
                evidence,
                Inconclusive::InvalidData,
                "an arm's sums are not finite".to_owned(),
            )
        };
    };
    let control = arms.control.sum / arms.control.n as f64;
    let treatment = arms.treatment.sum / arms.treatment.n as f64;
    differences(
        guardrail,
        control,
        treatment,
        difference,
        Unit::Plain,
        config,
        evidence,
    )
}

/// Rates and means: the bounds on `treatment − control` against the tolerated difference.
fn differences(
    guardrail: &Guardrail,
    control: f64,
    treatment: f64,
    difference: Difference,
    unit: Unit,
    config: &JudgeConfig,
    mut evidence: Evidence,
) -> Verdict {
    let n = evidence.n;
    evidence.control = Some(control);
    evidence.treatment = Some(treatment);
    evidence.difference = Some(treatment - control);
    let margin = guardrail.tolerance.margin(control);
    let worse_is_up = guardrail.direction() == Direction::LowerIsBetter;
    let threshold = if worse_is_up { margin } else { -margin };
    evidence.threshold = Some(threshold);
    let numbers = format!(
        "{}: treatment {} vs control {} ({} and {} samples), difference {}",
        guardrail.metric,
        unit.value(treatment),
        unit.value(control),
        n.treatment,
        n.control,
        unit.difference(treatment - control),
    );
    if let Some(problem) = floor_problem(n, MIN_SAMPLES_FOR_ANY_VERDICT) {
        evidence.summary = format!("{numbers}; inconclusive, {problem}.");
        return Verdict {
            outcome: Outcome::Inconclusive(Inconclusive::NotEnoughData),
            evidence,
        };
    }
    let judged = compare(
        &Comparison {
            difference,
            threshold,
            worse_is_up,
        },
        n,
        config,
    );
    evidence.interval = Some(Interval {
        lo: judged.interval.0,
        hi: judged.interval.1,
        scale: Scale::Difference,
    });
    evidence.p_value = Some(judged.p_value);
    evidence.summary = format!(
        "{numbers}, always-valid bounds [{}, {}] at α = {} each side; tolerated {} ({}); {}.",
        unit.difference(judged.interval.0),
        unit.difference(judged.interval.1),
        config.alpha,
        unit.difference(threshold),
        guardrail.tolerance,
        conclusion(judged.outcome, worse_is_up, n, config.min_samples),
    );
    Verdict {
        outcome: judged.outcome,
        evidence,
    }
}

fn latency(
    guardrail: &Guardrail,
    q: f64,
    arms: &Arms<LatencySketch>,
    config: &JudgeConfig,
    mut evidence: Evidence,
) -> Verdict {
    let n = Arms {
        control: arms.control.count(),
        treatment: arms.treatment.count(),
    };
    evidence.n = n;
    let (Some(control), Some(treatment)) = (arms.control.quantile(q), arms.treatment.quantile(q))
    else {
        return inconclusive(
            evidence,
            Inconclusive::NotEnoughData,
            "an arm has no requests".to_owned(),
        );
    };
    if !(control.is_finite() && treatment.is_finite()) {
        return inconclusive(
            evidence,
            Inconclusive::InvalidData,
            "a sketch holds values that are not finite".to_owned(),
        );
    }
    evidence.control = Some(control);
    evidence.treatment = Some(treatment);
    evidence.difference = Some(treatment - control);
    let margin = guardrail.tolerance.margin(control);
    evidence.threshold = Some(margin);
    let numbers = format!(
        "{}: treatment {} vs control {} ({} and {} requests), difference {}",
        guardrail.metric,
        Unit::Millis.value(treatment),
        Unit::Millis.value(control),
        n.treatment,
        n.control,
        Unit::Millis.difference(treatment - control),
    );
    let tail_floor = (MIN_TAIL_SAMPLES as f64 / (1.0 - q)).ceil() as u64;
    if let Some(problem) = floor_problem(n, MIN_SAMPLES_FOR_ANY_VERDICT.max(tail_floor)) {
        evidence.summary = format!("{numbers}; inconclusive, {problem}.");
        return Verdict {
            outcome: Outcome::Inconclusive(Inconclusive::NotEnoughData),
            evidence,
        };
    }
    let threshold_ms = control + margin;
    let control_above = arms.control.count_above(control);
    let treatment_above = arms.treatment.count_above(threshold_ms);
    let Some(difference) =
        stats::proportion_difference(n.control, control_above, n.treatment, treatment_above)
    else {
        return inconclusive(
            evidence,
            Inconclusive::InvalidData,
            "the sketches' counts disagree".to_owned(),
        );
    };
    let exceedance = Exceedance {
        threshold_ms,
        control_share: control_above as f64 / n.control as f64,
        treatment_share: treatment_above as f64 / n.treatment as f64,
    };
    evidence.exceedance = Some(exceedance);
    let judged = compare(
        &Comparison {
            difference,
            threshold: 0.0,
            worse_is_up: true,
        },
        n,
        config,
    );
    evidence.interval = Some(Interval {
        lo: judged.interval.0,
        hi: judged.interval.1,
        scale: Scale::ExceedanceShare,
    });
    evidence.p_value = Some(judged.p_value);
    let percentile = (q * 100.0).round();
    evidence.summary = format!(
        "{numbers}; tolerated {} ({}): {} of treatment requests are slower than {}, against {} of control \
         requests slower than the control's p{percentile}, difference bounds [{}, {}] at α = {} each side; {}.",
        Unit::Millis.difference(margin),
        guardrail.tolerance,
        Unit::Rate.value(exceedance.treatment_share),
        Unit::Millis.value(threshold_ms),
        Unit::Rate.value(exceedance.control_share),
        Unit::Rate.difference(judged.interval.0),
        Unit::Rate.difference(judged.interval.1),
        config.alpha,
        conclusion(judged.outcome, true, n, config.min_samples),
    );
    Verdict {
        outcome: judged.outcome,
        evidence,
    }
}
