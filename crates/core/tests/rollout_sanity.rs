//! Quick sanity checks of the judge under continuous monitoring, with a seeded generator.
//!
//! These are not the decision-quality benchmark (that is `sluice simulate`); they only show
//! that peeking every 1,000 samples does not inflate wrong failures in A/A traffic, and that
//! a doubled error rate is caught near the fixed-horizon sample size.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_core::rollout::stats::{Sides, fixed_horizon_sample_size};
use sluice_core::rollout::{
    Arms, Guardrail, JudgeConfig, Metric, MetricData, Outcome, Proportions, Tolerance,
    ToleranceUnit, judge,
};

/// SplitMix64: small, fast and good enough for Bernoulli draws.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

const CONFIG: JudgeConfig = JudgeConfig {
    alpha: 0.05,
    tuning: 5000.0,
    min_samples: 1000,
};

struct Scenario {
    control_rate: f64,
    treatment_rate: f64,
    treatment_share: f64,
    tolerance: Tolerance,
    peeks: usize,
    every: usize,
}

/// The first look at which each run failed, as treatment samples, or `None`.
fn run(scenario: &Scenario, runs: usize, seed: u64) -> Vec<Option<u64>> {
    let guardrail = Guardrail::new(Metric::ErrorRate, scenario.tolerance);
    let mut rng = Rng(seed);
    (0..runs)
        .map(|_| {
            let mut arms = Arms::<Proportions>::default();
            for _ in 0..scenario.peeks {
                for _ in 0..scenario.every {
                    let (arm, rate) = if rng.uniform() < scenario.treatment_share {
                        (&mut arms.treatment, scenario.treatment_rate)
                    } else {
                        (&mut arms.control, scenario.control_rate)
                    };
                    arm.n += 1;
                    arm.k += u64::from(rng.uniform() < rate);
                }
                let verdict = judge(&guardrail, Some(&MetricData::Proportions(arms)), &CONFIG);
                if verdict.outcome == Outcome::Fail {
                    return Some(arms.treatment.n);
                }
            }
            None
        })
        .collect()
}

fn failure_rate(results: &[Option<u64>]) -> f64 {
    results.iter().filter(|r| r.is_some()).count() as f64 / results.len() as f64
}

#[test]
fn aa_traffic_rarely_fails_however_often_it_is_checked() {
    // 200 A/A runs at 1% errors, 50/50, checked every 1,000 samples up to 100,000.
    // Against a vanishing tolerance the sequence's own guarantee is on trial: at most α = 5%.
    let strict = Scenario {
        control_rate: 0.01,
        treatment_rate: 0.01,
        treatment_share: 0.5,
        tolerance: Tolerance::absolute(1e-9, ToleranceUnit::Plain),
        peeks: 100,
        every: 1000,
    };
    let strict_rate = failure_rate(&run(&strict, 200, 1));
    eprintln!("A/A, 50/50, no tolerance: {strict_rate}");
    assert!(
        strict_rate <= 0.025,
        "wrong failures with no tolerance: {strict_rate}"
    );
    // With the default tolerance (20% or 0.1 pp) there is room between A/A and a failure.
    let default = Scenario {
        tolerance: Tolerance::relative(0.2).or_absolute(0.001, ToleranceUnit::Points),
        ..strict
    };
    let default_rate = failure_rate(&run(&default, 200, 2));
    eprintln!("A/A, 50/50, default tolerance: {default_rate}");
    assert!(
        default_rate <= 0.005,
        "wrong failures with the default tolerance: {default_rate}"
    );
    // The same at a 10% stage, where the arms are unbalanced.
    let unbalanced = Scenario {
        treatment_share: 0.1,
        tolerance: Tolerance::absolute(1e-9, ToleranceUnit::Plain),
        ..strict
    };
    let unbalanced_rate = failure_rate(&run(&unbalanced, 200, 3));
    eprintln!("A/A, 10/90, no tolerance: {unbalanced_rate}");
    assert!(
        unbalanced_rate <= 0.025,
        "wrong failures at 10%: {unbalanced_rate}"
    );
}

#[test]
fn a_doubled_error_rate_is_caught_near_the_fixed_horizon_floor() {
    // 1% → 2% errors at a 10% stage, checked every 1,000 samples up to 100,000 (10,000 treatment).
    let tolerance = Tolerance::relative(0.2).or_absolute(0.001, ToleranceUnit::Points);
    let doubled = Scenario {
        control_rate: 0.01,
        treatment_rate: 0.02,
        treatment_share: 0.1,
        tolerance,
        peeks: 100,
        every: 1000,
    };
    let results = run(&doubled, 200, 4);
    let detected = failure_rate(&results);
    assert!(detected >= 0.95, "detected in only {detected} of runs");
    let mut samples: Vec<u64> = results.iter().flatten().copied().collect();
    samples.sort_unstable();
    let median = samples[samples.len() / 2];
    // The floor: a one-sided fixed-horizon z-test with 80% power against the same tolerated
    // rate (1.2%), with the control arm 9 times the treatment's.
    let floor = fixed_horizon_sample_size(0.012, 0.02, 0.05, 0.8, Sides::One, 9.0)
        .unwrap()
        .treatment;
    eprintln!(
        "1% → 2% at 10%: detected {detected}, median treatment samples {median}, floor {floor}"
    );
    assert!(
        median <= 2 * floor,
        "median treatment samples to detect {median}, fixed-horizon floor {floor}"
    );
}
