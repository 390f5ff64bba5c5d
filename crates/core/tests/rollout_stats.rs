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
