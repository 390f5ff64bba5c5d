//! A/B scenarios for `sluice simulate`: seeded synthetic experiments analysed by
//! [`crate::ab::analyze`] at every look, exactly as the report reads them.
//!
//! A run draws exposures in `looks` equal batches up to the horizon, splits each batch between
//! control and treatment by a fair coin (so the SRM check sees honest noise), draws each
//! arm's conversions, and stops at the first look whose verdict is not inconclusive. An A/A
//! run (no lift) that stops with a winner or a loser is a false call; a lift run that stops
//! with the treatment as winner found the lift.
//!
//! [`expected_power`] is what the test should reach: the chance that the always-valid lower
//! bound is above zero at the horizon alone (normal approximation). Looking earlier only adds
//! chances, so the simulated power should be at least that.

use serde::{Deserialize, Serialize};

use crate::ab::{AbInput, ArmTotals, GoalKind, Verdict, analyze};
use crate::rollout::simulate::{Rng, run_seed};
use crate::rollout::stats::{self, Sides};
use crate::rollout::{DEFAULT_ALPHA, DEFAULT_TUNING};

/// The power a horizon is chosen for when none is given.
pub const TARGET_POWER: f64 = 0.8;

/// An A/B simulation's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbSettings {
    /// The control's conversion rate.
    pub baseline: f64,
    /// The treatment's relative lift: 0 for an A/A run, 0.1 for +10%.
    pub lift: f64,
    /// Exposures per arm at the horizon.
    pub horizon_per_arm: u64,
    /// How many times the report is read, evenly spaced up to the horizon.
    pub looks: u32,
    /// The report's two-sided level.
    pub alpha: f64,
    /// The report's tuning.
    pub tuning: f64,
}

impl AbSettings {
    /// A/A (`lift` 0) or lift settings at the report's defaults, with the horizon at which
    /// a `reference_lift` would be found with [`TARGET_POWER`] (so an A/A run is judged over
    /// as much traffic as the matching lift run).
    pub fn new(baseline: f64, lift: f64, reference_lift: f64) -> Option<AbSettings> {
        let horizon = horizon_for_power(
            baseline,
            reference_lift,
            DEFAULT_ALPHA,
            DEFAULT_TUNING,
            TARGET_POWER,
        )?;
        Some(AbSettings {
            baseline,
            lift,
            horizon_per_arm: horizon,
            looks: 20,
            alpha: DEFAULT_ALPHA,
            tuning: DEFAULT_TUNING,
        })
    }

    /// The treatment's conversion rate.
    pub fn treatment_rate(&self) -> f64 {
        self.baseline * (1.0 + self.lift)
    }
}

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbRun {
    /// The first verdict that was not inconclusive, or inconclusive at the horizon.
    pub verdict: Verdict,
    /// Exposures per arm (mean of the two) when it stopped.
    pub stopped_at: u64,
}

/// Many runs, summed up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbSummary {
    /// Runs.
    pub runs: u64,
    /// Runs that ended with the treatment winning.
    pub winners: u64,
    /// Runs that ended with it losing.
    pub losers: u64,
    /// Runs stopped by a sample ratio mismatch.
    pub srm: u64,
    /// A/A: (winners + losers) / runs, the false-call rate; with a lift, losers / runs.
    pub false_call_rate: f64,
    /// With a lift: winners / runs; in A/A it is the false-winner rate.
    pub winner_rate: f64,
    /// The 95% Wilson interval of `winner_rate`.
    pub winner_rate_interval: (f64, f64),
    /// The final-look power the horizon gives (see [`expected_power`]); 0 for A/A.
    pub expected_power: f64,
    /// The fixed-horizon two-sided z-test's samples per arm for the lift at 80% power: the floor.
    pub fixed_horizon_per_arm: Option<u64>,
    /// Mean exposures per arm at the stop, over runs that found a winner.
    pub mean_exposures_to_winner: Option<f64>,
}

fn final_look(baseline: f64, lift: f64, n: u64, alpha: f64, tuning: f64) -> Option<f64> {
    let treatment = baseline * (1.0 + lift);
    if !(baseline > 0.0 && baseline < 1.0 && treatment > 0.0 && treatment < 1.0) || n == 0 {
        return None;
    }
    let nf = n as f64;
    let se = (baseline * (1.0 - baseline) / nf + treatment * (1.0 - treatment) / nf).sqrt();
    let diff = stats::Difference {
        estimate: treatment - baseline,
        std_error: se,
        n: n.saturating_mul(2),
    };
    let halfwidth = diff.bounds(alpha / 2.0, tuning).halfwidth;
    Some(stats::normal_cdf((diff.estimate - halfwidth) / se))
}

/// The chance the report calls the treatment a winner at a look with `n` exposures per arm,
/// when its conversion is `baseline × (1 + lift)`: `Φ((δ − h)/se)`, with `h` the always-valid
/// half-width at `alpha / 2` and `se` the difference's standard error.
pub fn expected_power(settings: &AbSettings) -> f64 {
    if settings.lift == 0.0 {
        return 0.0;
    }
    final_look(
        settings.baseline,
        settings.lift,
        settings.horizon_per_arm,
        settings.alpha,
        settings.tuning,
    )
    .unwrap_or(0.0)
}

/// The fewest exposures per arm at which [`expected_power`] reaches `power`, by bisection.
pub fn horizon_for_power(
    baseline: f64,
    lift: f64,
    alpha: f64,
    tuning: f64,
    power: f64,
) -> Option<u64> {
    if lift <= 0.0 || !(power > 0.0 && power < 1.0) {
        return None;
    }
    let reaches = |n: u64| final_look(baseline, lift, n, alpha, tuning).is_some_and(|p| p >= power);
    let mut high: u64 = 1_000;
    while !reaches(high) {
        high = high.checked_mul(2)?;
        if high > 1 << 40 {
            return None;
        }
    }
    let mut low = high / 2;
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if reaches(mid) { high = mid } else { low = mid }
    }
    Some(high)
}

/// One seeded run.
pub fn run(settings: &AbSettings, seed: u64) -> AbRun {
    let mut rng = Rng::new(seed);
    let looks = u64::from(settings.looks.max(1));
    let total = settings.horizon_per_arm.saturating_mul(2);
    let mut arms = [
        ArmTotals {
            variant: "control".into(),
            weight: Some(1),
            ..ArmTotals::default()
        },
        ArmTotals {
            variant: "treatment".into(),
            weight: Some(1),
            ..ArmTotals::default()
        },
    ];
    let rates = [settings.baseline, settings.treatment_rate()];
    let mut drawn = 0;
    let mut verdict = Verdict::Inconclusive;
    for look in 1..=looks {
        let target = total / looks * look + if look == looks { total % looks } else { 0 };
        let batch = target - drawn;
        drawn = target;
        let to_control = rng.binomial(batch, 0.5);
        for (arm, (n, rate)) in arms
            .iter_mut()
            .zip([(to_control, rates[0]), (batch - to_control, rates[1])])
        {
            let conversions = rng.binomial(n, rate);
            arm.exposures += n;
            arm.count += conversions;
            arm.sum += conversions as f64;
            arm.sum_sq += conversions as f64;
        }
        let report = analyze(&AbInput {
            arms: arms.to_vec(),
            control: "control".into(),
            kind: GoalKind::Conversion,
            better: crate::ab::Better::Higher,
            alpha: settings.alpha,
            tuning: settings.tuning,
        });
        verdict = report.verdict;
        if verdict != Verdict::Inconclusive {
            break;
        }
    }
    AbRun {
        verdict,
        stopped_at: (arms[0].exposures + arms[1].exposures) / 2,
    }
}

/// `runs` runs under `seed` (run `i` seeded by [`run_seed`]).
pub fn run_many(settings: &AbSettings, seed: u64, runs: u64) -> Vec<AbRun> {
    (0..runs)
        .map(|i| run(settings, run_seed(seed, i)))
        .collect()
}

fn wilson(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (k, nf) = (successes as f64, n as f64);
    let p = k / nf;
    let centre = (p + z * z / (2.0 * nf)) / (1.0 + z * z / nf);
    let half = z * (p * (1.0 - p) / nf + z * z / (4.0 * nf * nf)).sqrt() / (1.0 + z * z / nf);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Sums runs up.
pub fn summarise(settings: &AbSettings, results: &[AbRun]) -> AbSummary {
    let runs = results.len() as u64;
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count() as u64;
    let (winners, losers, srm) = (
        count(Verdict::Winner),
        count(Verdict::Loser),
        count(Verdict::Srm),
    );
    let rate = |k: u64| {
        if runs == 0 {
            0.0
        } else {
            k as f64 / runs as f64
        }
    };
    let won: Vec<u64> = results
        .iter()
        .filter(|r| r.verdict == Verdict::Winner)
        .map(|r| r.stopped_at)
        .collect();
    AbSummary {
        runs,
        winners,
        losers,
        srm,
        false_call_rate: if settings.lift == 0.0 {
            rate(winners + losers)
        } else {
            rate(losers)
        },
        winner_rate: rate(winners),
        winner_rate_interval: wilson(winners, runs),
        expected_power: expected_power(settings),
        fixed_horizon_per_arm: stats::fixed_horizon_sample_size(
            settings.baseline,
            settings.treatment_rate(),
            settings.alpha,
            TARGET_POWER,
            Sides::Two,
            1.0,
        )
        .map(|s| s.treatment),
        mean_exposures_to_winner: (!won.is_empty())
            .then(|| won.iter().map(|&n| n as f64).sum::<f64>() / won.len() as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_horizon_gives_the_power_it_was_chosen_for() {
        let settings = AbSettings::new(0.1, 0.1, 0.1).unwrap();
        let p = expected_power(&settings);
        assert!((0.8..0.81).contains(&p), "{p}");
        let fixed = summarise(&settings, &[]).fixed_horizon_per_arm.unwrap();
        // The always-valid test costs more samples than the fixed-horizon floor.
        assert!(
            settings.horizon_per_arm > fixed,
            "{} vs {fixed}",
            settings.horizon_per_arm
        );
    }

    #[test]
    fn runs_are_reproducible() {
        let settings = AbSettings::new(0.1, 0.0, 0.1).unwrap();
        assert_eq!(run(&settings, 7), run(&settings, 7));
    }
}
