//! The judge and the stage decision: clear passes, clear failures, too little data, SRM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_core::rollout::{
    Action, Arms, DDSketch, Direction, FailurePolicy, Gate, Guardrail, HoldReason, Inconclusive,
    JudgeConfig, LatencySketch, Metric, MetricData, Moments, Observation, Outcome, PauseReason,
    Proportions, RolloutPlan, Scale, Template, TestKind, Tolerance, ToleranceUnit, decide, judge,
};

const CONFIG: JudgeConfig = JudgeConfig {
    alpha: 0.05,
    tuning: 5000.0,
    min_samples: 1000,
};

fn rates(control: (u64, u64), treatment: (u64, u64)) -> MetricData {
    MetricData::Proportions(Arms {
        control: Proportions {
            n: control.0,
            k: control.1,
        },
        treatment: Proportions {
            n: treatment.0,
            k: treatment.1,
        },
    })
}

fn error_rate() -> Guardrail {
    Guardrail::new(
        Metric::ErrorRate,
        Tolerance::relative(0.2).or_absolute(0.001, ToleranceUnit::Points),
    )
}

/// A small deterministic generator (SplitMix64), so the tests need no randomness crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn sketch(rng: &mut Rng, n: usize, median_ms: f64, scale: f64) -> LatencySketch {
    let mut sketch = DDSketch::default();
    for _ in 0..n {
        sketch.add(median_ms * (0.5 * rng.normal()).exp() * scale);
    }
    LatencySketch(sketch)
}

fn latency(control: LatencySketch, treatment: LatencySketch) -> MetricData {
    MetricData::Latency(Box::new(Arms { control, treatment }))
}

#[test]
fn equal_error_rates_at_large_n_pass() {
    let verdict = judge(
        &error_rate(),
        Some(&rates((450_000, 4500), (50_000, 500))),
        &CONFIG,
    );
    assert_eq!(
        verdict.outcome,
        Outcome::Pass,
        "{}",
        verdict.evidence.summary
    );
    let evidence = &verdict.evidence;
    assert_eq!(evidence.test, TestKind::ProportionSequence);
    assert_eq!(evidence.direction, Direction::LowerIsBetter);
    assert_eq!(
        (evidence.n.control, evidence.n.treatment),
        (450_000, 50_000)
    );
    assert_eq!(evidence.control, Some(0.01));
    assert_eq!(evidence.treatment, Some(0.01));
    assert_eq!(evidence.difference, Some(0.0));
    assert!(
        (evidence.threshold.unwrap() - 0.002).abs() < 1e-15,
        "20% of 1%"
    );
    let interval = evidence.interval.unwrap();
    assert_eq!(interval.scale, Scale::Difference);
    assert!(
        interval.lo < 0.0 && interval.hi > 0.0 && interval.hi < 0.002,
        "{interval:?}"
    );
    assert!(evidence.p_value.unwrap() < 0.05);
    let expected = format!(
        "error_rate: treatment 1.00% vs control 1.00% (50000 and 450000 samples), difference +0 pp, \
         always-valid bounds [−{lo:.3} pp, +{hi:.3} pp] at α = 0.05 each side; tolerated +0.200 pp (20% or 0.1pp); \
         passes: even the upper bound is within tolerance.",
        lo = -interval.lo * 100.0,
        hi = interval.hi * 100.0,
    );
    assert_eq!(evidence.summary, expected);
}

#[test]
fn a_doubled_error_rate_fails() {
    let verdict = judge(
        &error_rate(),
        Some(&rates((45_000, 450), (5_000, 100))),
        &CONFIG,
    );
    assert_eq!(
        verdict.outcome,
        Outcome::Fail,
        "{}",
        verdict.evidence.summary
    );
    let interval = verdict.evidence.interval.unwrap();
    assert!(interval.lo > verdict.evidence.threshold.unwrap());
    assert!(verdict.evidence.p_value.unwrap() < 0.05);
    // The sentence docs/statistics.md shows.
    assert_eq!(
        verdict.evidence.summary,
        "error_rate: treatment 2.00% vs control 1.00% (5000 and 45000 samples), difference +1.00 pp, \
         always-valid bounds [+0.389 pp, +1.61 pp] at α = 0.05 each side; tolerated +0.200 pp (20% or 0.1pp); \
         fails: even the lower bound is worse than tolerated."
    );
    // A failure needs no minimum sample beyond the floor: it acts at once.
    let early = judge(&error_rate(), Some(&rates((900, 9), (150, 15))), &CONFIG);
    assert_eq!(early.outcome, Outcome::Fail, "{}", early.evidence.summary);
}

#[test]
fn too_little_data_is_never_a_pass() {
    // No data at all.
    let none = judge(&error_rate(), None, &CONFIG);
    assert_eq!(
        none.outcome,
        Outcome::Inconclusive(Inconclusive::NotEnoughData)
    );
    assert_eq!(
        none.evidence.summary,
        "error_rate: inconclusive, no data arrived for this metric in the window."
    );
    // Below the floor for any verdict, even with a dramatic difference.
    let tiny = judge(&error_rate(), Some(&rates((50, 0), (50, 40))), &CONFIG);
    assert_eq!(
        tiny.outcome,
        Outcome::Inconclusive(Inconclusive::NotEnoughData)
    );
    assert!(
        tiny.evidence.summary.contains("fewer than the 100 per arm"),
        "{}",
        tiny.evidence.summary
    );
    assert_eq!(tiny.evidence.interval, None);
    // Above the floor, no failure, but below the stage's minimum: not enough data, however good it looks.
    let short = judge(&error_rate(), Some(&rates((900, 9), (900, 0))), &CONFIG);
    assert_eq!(
        short.outcome,
        Outcome::Inconclusive(Inconclusive::NotEnoughData),
        "{}",
        short.evidence.summary
    );
    assert!(
        short.evidence.summary.contains("a pass needs 1000 per arm"),
        "{}",
        short.evidence.summary
    );
    // Enough samples, but the interval straddles the tolerance: holding.
    let undecided = judge(
        &error_rate(),
        Some(&rates((5_000, 50), (5_000, 56))),
        &CONFIG,
    );
    assert_eq!(
        undecided.outcome,
        Outcome::Inconclusive(Inconclusive::Holding),
        "{}",
        undecided.evidence.summary
    );
}

#[test]
fn impossible_data_is_flagged() {
    let more_events = judge(
        &error_rate(),
        Some(&rates((1000, 10), (1000, 1001))),
        &CONFIG,
    );
    assert_eq!(
        more_events.outcome,
        Outcome::Inconclusive(Inconclusive::InvalidData)
    );
    let wrong_kind = judge(
        &error_rate(),
        Some(&MetricData::Moments(Arms::default())),
        &CONFIG,
    );
    assert_eq!(
        wrong_kind.outcome,
        Outcome::Inconclusive(Inconclusive::InvalidData)
    );
}

#[test]
fn higher_is_better_metrics_fail_when_they_drop() {
    let conversion = Guardrail {
        min_samples: None,
        metric: Metric::EventRate("checkout".into()),
        direction: Some(Direction::HigherIsBetter),
        tolerance: Tolerance::relative(0.05),
    };
    let dropped = judge(
        &conversion,
        Some(&rates((50_000, 5_000), (50_000, 4_000))),
        &CONFIG,
    );
    assert_eq!(
        dropped.outcome,
        Outcome::Fail,
        "{}",
        dropped.evidence.summary
    );
    assert!(
        (dropped.evidence.threshold.unwrap() + 0.005).abs() < 1e-12,
        "5% of 10%, below"
    );
    let rose = judge(
        &conversion,
        Some(&rates((50_000, 5_000), (50_000, 5_200))),
        &CONFIG,
    );
    assert_eq!(rose.outcome, Outcome::Pass, "{}", rose.evidence.summary);

    let order_value = Guardrail {
        min_samples: None,
        metric: Metric::EventMean("order_value".into()),
        direction: Some(Direction::HigherIsBetter),
        tolerance: Tolerance::absolute(1.0, ToleranceUnit::Plain),
    };
    let mut rng = Rng(7);
    let mut arms = Arms::<Moments>::default();
    for _ in 0..20_000 {
        arms.control.add(50.0 + 10.0 * rng.normal());
        arms.treatment.add(45.0 + 10.0 * rng.normal());
    }
    let verdict = judge(&order_value, Some(&MetricData::Moments(arms)), &CONFIG);
    assert_eq!(
        verdict.outcome,
        Outcome::Fail,
        "{}",
        verdict.evidence.summary
    );
    assert_eq!(verdict.evidence.test, TestKind::MeanSequence);
}

#[test]
fn latency_is_judged_on_the_share_above_the_tolerated_quantile() {
    let p99 = Guardrail::new(
        Metric::LatencyP99,
        Tolerance::relative(0.10).or_absolute(5.0, ToleranceUnit::Millis),
    );
    let mut rng = Rng(42);
    // The same distribution in both arms: passes.
    let same = latency(
        sketch(&mut rng, 60_000, 100.0, 1.0),
        sketch(&mut rng, 30_000, 100.0, 1.0),
    );
    let verdict = judge(&p99, Some(&same), &CONFIG);
    assert_eq!(
        verdict.outcome,
        Outcome::Pass,
        "{}",
        verdict.evidence.summary
    );
    let evidence = &verdict.evidence;
    assert_eq!(evidence.test, TestKind::QuantileExceedanceSequence);
    let control_p99 = evidence.control.unwrap();
    // The p99 of a log-normal with median 100 ms and σ 0.5, within the sketch's accuracy.
    assert!(
        (control_p99 / (100.0 * (0.5_f64 * 2.326_348).exp()) - 1.0).abs() < 0.03,
        "{control_p99}"
    );
    let exceedance = evidence.exceedance.unwrap();
    assert!((exceedance.threshold_ms - control_p99 * 1.1).abs() < 1e-9);
    assert!(
        (0.005..=0.0101).contains(&exceedance.control_share),
        "{exceedance:?}"
    );
    assert!(
        exceedance.treatment_share < exceedance.control_share,
        "{exceedance:?}"
    );
    assert_eq!(evidence.interval.unwrap().scale, Scale::ExceedanceShare);

    // Every request 30% slower: fails.
    let slower = latency(
        sketch(&mut rng, 60_000, 100.0, 1.0),
        sketch(&mut rng, 10_000, 100.0, 1.3),
    );
    let verdict = judge(&p99, Some(&slower), &CONFIG);
    assert_eq!(
        verdict.outcome,
        Outcome::Fail,
        "{}",
        verdict.evidence.summary
    );
    assert!(verdict.evidence.difference.unwrap() > 0.2 * verdict.evidence.control.unwrap());

    // Only the tail slower: 3% of treatment requests take 5× as long. The median barely moves; p99 fails.
    let mut tail = DDSketch::default();
    for _ in 0..10_000 {
        let slow = if rng.uniform() < 0.03 { 5.0 } else { 1.0 };
        tail.add(100.0 * (0.5 * rng.normal()).exp() * slow);
    }
    let control = sketch(&mut rng, 60_000, 100.0, 1.0);
    let tail = LatencySketch(tail);
    let verdict = judge(&p99, Some(&latency(control.clone(), tail.clone())), &CONFIG);
    assert_eq!(
        verdict.outcome,
        Outcome::Fail,
        "{}",
        verdict.evidence.summary
    );
    let p50 = Guardrail::new(Metric::LatencyP50, Tolerance::relative(0.10));
    let verdict = judge(&p50, Some(&latency(control, tail)), &CONFIG);
    assert_eq!(
        verdict.outcome,
        Outcome::Pass,
        "{}",
        verdict.evidence.summary
    );

    // p99 needs 2,000 requests per arm before any verdict.
    let few = latency(
        sketch(&mut rng, 60_000, 100.0, 1.0),
        sketch(&mut rng, 1_500, 100.0, 2.0),
    );
    let verdict = judge(&p99, Some(&few), &CONFIG);
    assert_eq!(
        verdict.outcome,
        Outcome::Inconclusive(Inconclusive::NotEnoughData)
    );
    assert!(
        verdict
            .evidence
            .summary
            .contains("fewer than the 2000 per arm"),
        "{}",
        verdict.evidence.summary
    );
    let empty = latency(LatencySketch::default(), LatencySketch::default());
    assert_eq!(
        judge(&p99, Some(&empty), &CONFIG).outcome,
        Outcome::Inconclusive(Inconclusive::NotEnoughData)
    );
}

#[test]
fn count_above_matches_a_direct_count_to_within_a_bin() {
    let mut rng = Rng(3);
    let values: Vec<f64> = (0..5_000).map(|_| 10.0 * (rng.normal()).exp()).collect();
    let mut sketch = DDSketch::default();
    for value in &values {
        sketch.add(*value);
    }
    let sketch = LatencySketch(sketch);
    for threshold in [1.0, 5.0, 10.0, 30.0, 100.0] {
        let exact = values.iter().filter(|v| **v > threshold).count() as f64;
        let close = values.iter().filter(|v| **v > threshold * 1.02).count() as f64;
        let wide = values.iter().filter(|v| **v > threshold / 1.02).count() as f64;
        let counted = sketch.count_above(threshold) as f64;
        assert!(
            counted >= close && counted <= wide,
            "{threshold}: {counted} vs exact {exact}"
        );
    }
    assert_eq!(sketch.count_above(f64::MAX), 0);
    assert_eq!(sketch.count_above(0.0), 5_000);
}

/// The standard plan, stage 2 (10% of everyone), with one guardrail for brevity.
fn plan() -> RolloutPlan {
    let mut plan = Template::Standard.plan();
    plan.guardrails = vec![error_rate()];
    plan
}

fn window(
    elapsed_hours: u64,
    control: (u64, u64),
    treatment: (u64, u64),
) -> sluice_core::rollout::Window {
    sluice_core::rollout::Window {
        elapsed: Duration::from_secs(elapsed_hours * 3600),
        exposures: Arms {
            control: control.0,
            treatment: treatment.0,
        },
        metrics: vec![Observation {
            metric: Metric::ErrorRate,
            data: rates(control, treatment),
        }],
        approvals: 0,
    }
}

#[test]
fn a_stage_advances_when_everything_is_met() {
    let decision = decide(&plan(), 2, &window(3, (450_000, 4500), (50_000, 500)));
    assert_eq!(
        decision.action,
        Action::Advance { to: 3 },
        "{}",
        decision.summary
    );
    assert_eq!(decision.verdicts.len(), 1);
    let srm = decision.srm.unwrap();
    assert!(!srm.mismatch);
    assert!(decision.summary.ends_with(
        "Advancing to 50%: baked 3h, 450000 control and 50000 treatment exposures, every guardrail passed."
    ));
    // The same evidence, before the bake time is over, holds.
    let early = decide(&plan(), 2, &window(1, (450_000, 4500), (50_000, 500)));
    assert_eq!(
        early.action,
        Action::Hold {
            reasons: vec![HoldReason::Baking {
                remaining: Duration::from_secs(3600)
            }]
        }
    );
}

#[test]
fn a_failure_acts_at_once_by_the_plan_policy() {
    let failing = window(0, (45_000, 450), (5_000, 100));
    let decision = decide(&plan(), 2, &failing);
    assert_eq!(
        decision.action,
        Action::Rollback {
            metrics: vec![Metric::ErrorRate]
        }
    );
    assert!(
        decision
            .summary
            .ends_with("Rolling back: error_rate failed."),
        "{}",
        decision.summary
    );
    let mut pausing = plan();
    pausing.on_failure = FailurePolicy::Pause;
    assert_eq!(
        decide(&pausing, 2, &failing).action,
        Action::Pause {
            reason: PauseReason::GuardrailFailed {
                metrics: vec![Metric::ErrorRate]
            }
        }
    );
    let mut killing = plan();
    killing.on_failure = FailurePolicy::Kill;
    assert_eq!(
        decide(&killing, 2, &failing).action,
        Action::Kill {
            metrics: vec![Metric::ErrorRate]
        }
    );
}

#[test]
fn a_sample_ratio_mismatch_blocks_advancing() {
    // 10% was asked for (beside the staff and beta audiences kept on the new variant) and
    // only 9% arrived.
    let decision = decide(&plan(), 2, &window(3, (455_000, 4550), (45_000, 450)));
    let Action::Hold { reasons } = &decision.action else {
        panic!("{:?}", decision.action)
    };
    assert!(
        matches!(reasons.as_slice(), [HoldReason::SampleRatioMismatch { p_value }] if *p_value < 1e-20)
    );
    assert!(decision.srm.unwrap().mismatch);
    assert!(
        decision.summary.contains("a mismatch"),
        "{}",
        decision.summary
    );
    // More than 10% is what the kept audiences add: not a mismatch, at 11% or at 20%.
    for treatment in [55_000, 100_000] {
        let surplus = decide(
            &plan(),
            2,
            &window(3, (500_000 - treatment, 4450), (treatment, 550)),
        );
        let srm = surplus.srm.unwrap();
        assert!(srm.at_least && !srm.mismatch, "{srm:?}");
        assert!(
            surplus.summary.contains("at least 10.000%"),
            "{}",
            surplus.summary
        );
    }
    // Audience stages at 100% have no randomised split to check.
    let staff = decide(&plan(), 0, &window(1, (180_000, 1800), (200, 2)));
    assert_eq!(staff.srm, None);
}

#[test]
fn holding_too_long_pauses_and_alerts() {
    // 25h after a 2h bake with too few samples: past the 24h max hold.
    let decision = decide(&plan(), 2, &window(27, (4_500, 45), (500, 5)));
    let Action::Pause {
        reason: PauseReason::HoldExpired { held, reasons },
    } = &decision.action
    else {
        panic!("{:?}", decision.action)
    };
    assert_eq!(*held, Duration::from_secs(25 * 3600));
    assert!(matches!(
        reasons[0],
        HoldReason::NotEnoughSamples { required: 2000, .. }
    ));
    assert!(
        decision
            .summary
            .contains("Pausing and alerting: held 1d1h past the bake time"),
        "{}",
        decision.summary
    );
    // With no metrics at all, the same: never a silent pass.
    let mut empty = window(27, (4_500, 45), (500, 5));
    empty.metrics.clear();
    assert!(matches!(
        decide(&plan(), 2, &empty).action,
        Action::Pause { .. }
    ));
    let mut short = window(3, (450_000, 4500), (50_000, 500));
    short.metrics.clear();
    let decision = decide(&plan(), 2, &short);
    assert_eq!(
        decision.action,
        Action::Hold {
            reasons: vec![HoldReason::GuardrailsPending {
                metrics: vec![Metric::ErrorRate]
            }]
        }
    );
}

#[test]
fn approvals_gate_the_next_stage() {
    let mut plan = plan();
    plan.stages[3].approvals = 2;
    let mut ready = window(3, (450_000, 4500), (50_000, 500));
    ready.approvals = 1;
    assert_eq!(
        decide(&plan, 2, &ready).action,
        Action::AwaitApproval {
            required: 2,
            received: 1
        }
    );
    ready.approvals = 2;
    assert_eq!(decide(&plan, 2, &ready).action, Action::Advance { to: 3 });
    // Waiting for people never times out into a pause.
    let mut late = window(100, (450_000, 4500), (50_000, 500));
    late.approvals = 0;
    assert!(matches!(
        decide(&plan, 2, &late).action,
        Action::AwaitApproval { .. }
    ));
}

#[test]
fn gate_no_failure_advances_small_audiences_without_proof() {
    let plan = plan();
    assert_eq!(plan.stages[0].gate, Gate::NoFailure);
    // 150 staff requests can prove nothing, but nothing failed and the bake is over.
    let decision = decide(&plan, 0, &window(1, (180_000, 1800), (150, 2)));
    assert_eq!(
        decision.action,
        Action::Advance { to: 1 },
        "{}",
        decision.summary
    );
    assert!(
        decision
            .summary
            .contains("no guardrail failed (gate `no_failure`)")
    );
    assert_eq!(
        decision.verdicts[0].outcome,
        Outcome::Inconclusive(Inconclusive::Holding)
    );
    // A failure still acts.
    let decision = decide(&plan, 0, &window(1, (180_000, 1800), (150, 30)));
    assert!(
        matches!(decision.action, Action::Rollback { .. }),
        "{}",
        decision.summary
    );
    // And the minimum samples still hold.
    let decision = decide(&plan, 0, &window(1, (180_000, 1800), (50, 0)));
    assert!(matches!(decision.action, Action::Hold { .. }));
}

#[test]
fn the_last_stage_completes_and_unknown_stages_pause() {
    let plan = plan();
    assert_eq!(
        decide(&plan, 4, &window(0, (0, 0), (0, 0))).action,
        Action::Complete
    );
    assert_eq!(
        decide(&plan, 9, &window(0, (0, 0), (0, 0))).action,
        Action::Pause {
            reason: PauseReason::UnknownStage
        }
    );
}

#[test]
fn decisions_serialize_for_the_audit_log() {
    let decision = decide(&plan(), 2, &window(0, (45_000, 450), (5_000, 100)));
    let json = serde_json::to_value(&decision).unwrap();
    assert_eq!(
        json["action"],
        serde_json::json!({ "rollback": { "metrics": ["error_rate"] } })
    );
    let evidence = &json["verdicts"][0]["evidence"];
    assert_eq!(json["verdicts"][0]["outcome"], "fail");
    assert_eq!(evidence["metric"], "error_rate");
    assert_eq!(evidence["test"], "proportion_sequence");
    assert_eq!(
        evidence["n"],
        serde_json::json!({ "control": 45000, "treatment": 5000 })
    );
    assert_eq!(evidence["interval"]["scale"], "difference");
    let back: sluice_core::rollout::StageDecision = serde_json::from_value(json).unwrap();
    assert_eq!(back, decision);
}

fn shadow_guardrail() -> Guardrail {
    Guardrail {
        min_samples: Some(10_000),
        ..Guardrail::new(
            Metric::ShadowMismatchRate,
            Tolerance::absolute(0.001, ToleranceUnit::Points),
        )
    }
}

#[test]
fn the_shadow_mismatch_rate_is_one_rate_against_an_absolute_bound() {
    let config = JudgeConfig {
        alpha: 0.05,
        tuning: 5000.0,
        min_samples: 100,
    };
    let guardrail = shadow_guardrail();
    // Control arm: the noise floor, reported only.
    let data = |n, k| rates((500, 0), (n, k));
    // No mismatches in 12,000 comparisons: under 0.1% with room to spare.
    let verdict = judge(&guardrail, Some(&data(12_000, 0)), &config);
    assert_eq!(
        verdict.outcome,
        Outcome::Pass,
        "{}",
        verdict.evidence.summary
    );
    assert_eq!(verdict.evidence.test, TestKind::RateSequence);
    assert_eq!(verdict.evidence.interval.unwrap().scale, Scale::Rate);
    assert_eq!(verdict.evidence.min_samples, 10_000);
    assert_eq!(verdict.evidence.control, Some(0.0));
    // The same rate short of the guardrail's own minimum of comparisons holds.
    let verdict = judge(&guardrail, Some(&data(5_000, 0)), &config);
    assert_eq!(
        verdict.outcome,
        Outcome::Inconclusive(Inconclusive::NotEnoughData),
        "{}",
        verdict.evidence.summary
    );
    // 1% mismatches fails early, well before the minimum.
    let verdict = judge(&guardrail, Some(&data(2_000, 20)), &config);
    assert_eq!(
        verdict.outcome,
        Outcome::Fail,
        "{}",
        verdict.evidence.summary
    );
    assert!(
        verdict.evidence.summary.contains("20 of 2000")
            || verdict.evidence.summary.contains("of 2000 comparisons")
    );
    // 0.1% exactly never passes: the interval straddles the bound.
    let verdict = judge(&guardrail, Some(&data(20_000, 20)), &config);
    assert_eq!(
        verdict.outcome,
        Outcome::Inconclusive(Inconclusive::Holding),
        "{}",
        verdict.evidence.summary
    );
    // Impossible data.
    let verdict = judge(&guardrail, Some(&data(10, 11)), &config);
    assert_eq!(
        verdict.outcome,
        Outcome::Inconclusive(Inconclusive::InvalidData)
    );
}
