//! The rollout statistics against reference values computed independently with scipy.
//!
//! `tests/data/stats_reference.json` is the output of `scripts/stats_reference.py`. Closed
//! forms must agree to a relative 1e-9; values the script finds by root-finding (p-values)
//! to a relative 1e-6; sample sizes exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use sluice_core::rollout::stats::{
    self, Sides, always_valid_p_value, chi_square_test, fixed_horizon_sample_size, mixing_rho,
    normal_quantile,
};

const CLOSED_FORM: f64 = 1e-9;
const ROOT_FOUND: f64 = 1e-6;

fn reference() -> Value {
    let text = include_str!("data/stats_reference.json");
    serde_json::from_str(text).unwrap()
}

fn num(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` missing in {value}"))
}

fn int(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` missing in {value}"))
}

#[track_caller]
fn close(actual: f64, expected: f64, relative: f64, what: &str) {
    let scale = expected.abs().max(1e-300);
    let error = (actual - expected).abs();
    assert!(
        error <= relative * scale || error <= 1e-15,
        "{what}: got {actual:e}, reference {expected:e} (relative error {:e}, allowed {relative:e})",
        error / scale
    );
}

#[test]
fn normal_quantiles_match_scipy() {
    let reference = reference();
    let cases = reference["normal_quantiles"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let p = num(case, "p");
        close(
            normal_quantile(p),
            num(case, "z"),
            CLOSED_FORM,
            &format!("z({p})"),
        );
    }
    assert!(normal_quantile(0.0).is_nan() && normal_quantile(1.0).is_nan());
}

#[test]
fn mixing_rho_matches() {
    for case in reference()["rho"].as_array().unwrap() {
        let (alpha, tuning) = (num(case, "alpha"), num(case, "tuning"));
        close(
            mixing_rho(alpha, tuning),
            num(case, "rho"),
            CLOSED_FORM,
            &format!("rho({alpha}, {tuning})"),
        );
    }
}

#[test]
fn proportion_sequences_match_howard_bound() {
    let reference = reference();
    let cases = reference["proportion_sequences"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let (control, treatment) = (&case["control"], &case["treatment"]);
        let what = format!("{control} vs {treatment}");
        let difference = stats::proportion_difference(
            int(control, "n"),
            int(control, "k"),
            int(treatment, "n"),
            int(treatment, "k"),
        )
        .unwrap();
        let (alpha, tuning) = (num(case, "alpha"), num(case, "tuning"));
        close(
            difference.estimate,
            num(case, "estimate"),
            CLOSED_FORM,
            &format!("estimate {what}"),
        );
        close(
            difference.std_error,
            num(case, "std_error"),
            CLOSED_FORM,
            &format!("std error {what}"),
        );
        let bounds = difference.bounds(alpha, tuning);
        close(
            bounds.halfwidth,
            num(case, "halfwidth"),
            CLOSED_FORM,
            &format!("half-width {what}"),
        );
        close(
            bounds.lo,
            num(case, "lo"),
            CLOSED_FORM,
            &format!("lo {what}"),
        );
        close(
            bounds.hi,
            num(case, "hi"),
            CLOSED_FORM,
            &format!("hi {what}"),
        );
        // The closed form is conservative: never tighter than the exact mixture boundary.
        assert!(
            bounds.halfwidth >= num(case, "exact_mixture_halfwidth") * (1.0 - 1e-12),
            "{what}"
        );
        let p = difference.p_value(num(case, "threshold"), alpha, tuning);
        close(
            p,
            num(case, "p_value"),
            ROOT_FOUND,
            &format!("p-value {what}"),
        );
        // The p-value and the bounds agree: p ≤ α exactly when the bound excludes the threshold.
        let threshold = num(case, "threshold");
        let excluded = bounds.lo > threshold || bounds.hi < threshold;
        assert_eq!(p <= alpha, excluded, "{what}: p = {p}, bounds {bounds:?}");
    }
}

#[test]
fn mean_sequences_match() {
    for case in reference()["mean_sequences"].as_array().unwrap() {
        let arm = |v: &Value| (int(v, "n"), num(v, "sum"), num(v, "sum_sq"));
        let difference =
            stats::mean_difference(arm(&case["control"]), arm(&case["treatment"])).unwrap();
        // Sums of squares lose digits to cancellation: 1e-9 relative still holds at these sizes.
        close(
            difference.estimate,
            num(case, "estimate"),
            CLOSED_FORM,
            "mean estimate",
        );
        close(
            difference.std_error,
            num(case, "std_error"),
            1e-8,
            "mean std error",
        );
        let bounds = difference.bounds(num(case, "alpha"), num(case, "tuning"));
        close(
            bounds.halfwidth,
            num(case, "halfwidth"),
            1e-8,
            "mean half-width",
        );
    }
}

#[test]
fn srm_p_values_match_scipy_chisquare() {
    let reference = reference();
    let cases = reference["srm"].as_array().unwrap();
    for case in cases {
        let observed: Vec<u64> = case["observed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let share = num(case, "expected_treatment_share");
        let test = chi_square_test(&observed, &[1.0 - share, share]).unwrap();
        let what = format!("{observed:?} at {share}");
        assert_eq!(test.degrees_of_freedom, 1);
        close(
            test.statistic,
            num(case, "statistic"),
            CLOSED_FORM,
            &format!("chi-square {what}"),
        );
        close(
            test.p_value,
            num(case, "p_value"),
            CLOSED_FORM,
            &format!("p-value {what}"),
        );
    }
}

#[test]
fn fixed_horizon_sample_sizes_match_power_root() {
    for case in reference()["sample_sizes"].as_array().unwrap() {
        let sides = match case["sides"].as_str().unwrap() {
            "one" => Sides::One,
            _ => Sides::Two,
        };
        let size = fixed_horizon_sample_size(
            num(case, "p_control"),
            num(case, "p_treatment"),
            num(case, "alpha"),
            num(case, "power"),
            sides,
            num(case, "ratio"),
        )
        .unwrap();
        assert_eq!(size.treatment, int(case, "treatment"), "{case}");
        assert_eq!(size.control, int(case, "control"), "{case}");
    }
}

#[test]
fn degenerate_inputs_do_not_panic() {
    assert!(stats::proportion_difference(0, 0, 10, 1).is_none());
    assert!(stats::proportion_difference(10, 11, 10, 1).is_none());
    assert!(stats::mean_difference((1, 1.0, 1.0), (10, 1.0, 1.0)).is_none());
    assert!(chi_square_test(&[0, 0], &[0.5, 0.5]).is_none());
    assert!(chi_square_test(&[10, 10], &[0.0, 1.0]).is_none());
    assert!(fixed_horizon_sample_size(0.01, 0.01, 0.05, 0.8, Sides::One, 1.0).is_none());
    assert_eq!(always_valid_p_value(-1.0, 1.0, 100.0, 0.1), 1.0);
    assert_eq!(always_valid_p_value(1.0, 0.0, 100.0, 0.1), 0.0);
    assert_eq!(always_valid_p_value(f64::NAN, 1.0, 100.0, 0.1), 1.0);
}

#[test]
fn the_sequential_srm_test_matches_its_closed_form() {
    // With a uniform prior (concentration 2 on a 50/50 split) the Bayes factor of x out of n
    // is 2ⁿ / ((n + 1) · C(n, x)).
    for (n, x, choose) in [(10u64, 5u64, 252.0), (10, 0, 1.0), (20, 3, 1140.0)] {
        let test = stats::sequential_multinomial_test(&[x, n - x], &[1.0, 1.0], 2.0).unwrap();
        let expected = 2f64.powi(n as i32) / ((n + 1) as f64 * choose);
        close(
            test.log_bayes_factor,
            expected.ln(),
            CLOSED_FORM,
            &format!("{x} of {n}"),
        );
        close(
            test.p_value,
            (1.0 / expected).min(1.0),
            CLOSED_FORM,
            &format!("p {x} of {n}"),
        );
    }
    assert!(stats::sequential_multinomial_test(&[1, 2], &[1.0, 0.0], 2.0).is_none());
    assert!(stats::sequential_multinomial_test(&[0, 0], &[1.0, 1.0], 2.0).is_none());
}

#[test]
fn the_sequential_srm_test_keeps_its_level_when_read_at_every_look_and_chi_square_does_not() {
    // 400 fair 50/50 experiments, each read 20 times (every 1,000 exposures): how many ever
    // alarm at α = 0.05.
    let mut state: u64 = 7;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (mut sequential, mut chi) = (0, 0);
    for _ in 0..400 {
        let (mut treatment, mut total) = (0u64, 0u64);
        let (mut sequential_alarm, mut chi_alarm) = (false, false);
        for _ in 0..20 {
            // 1,000 fair coin flips, 64 at a time (the last word's first 40 bits).
            for word in 0..16 {
                let bits = next();
                let bits = if word == 15 {
                    bits & ((1 << 40) - 1)
                } else {
                    bits
                };
                treatment += u64::from(bits.count_ones());
            }
            total += 1_000;
            let observed = [total - treatment, treatment];
            let test = stats::sequential_multinomial_test(
                &observed,
                &[0.5, 0.5],
                stats::SEQUENTIAL_SRM_CONCENTRATION,
            )
            .unwrap();
            sequential_alarm |= test.p_value < 0.05;
            chi_alarm |= chi_square_test(&observed, &[0.5, 0.5]).unwrap().p_value < 0.05;
        }
        sequential += usize::from(sequential_alarm);
        chi += usize::from(chi_alarm);
    }
    assert!(
        sequential <= 20,
        "{sequential} of 400 sequential false alarms"
    );
    assert!(
        chi > 40,
        "peeking at chi-square should alarm far more often: {chi} of 400"
    );
}

#[test]
fn the_sequential_srm_test_finds_a_real_mismatch() {
    // 50.8% instead of 50% over 200,000 exposures: z ≈ 7.
    let test = stats::sequential_multinomial_test(
        &[98_400, 101_600],
        &[0.5, 0.5],
        stats::SEQUENTIAL_SRM_CONCENTRATION,
    )
    .unwrap();
    assert!(test.p_value < 0.001, "{test:?}");
    // 90/10 exactly as weighted is not one.
    let fine = stats::sequential_multinomial_test(
        &[18_000, 2_000],
        &[90.0, 10.0],
        stats::SEQUENTIAL_SRM_CONCENTRATION,
    )
    .unwrap();
    assert!(fine.p_value > 0.5, "{fine:?}");
}
