//! The statistics behind the judge: always-valid confidence sequences, the SRM test, and
//! fixed-horizon sample sizes. Pure functions of counts; `docs/statistics.md` has the formulas.
//!
//! The confidence sequence is the asymptotic one of Waudby-Smith et al. (2023) in its
//! one-sided form, the normal-mixture boundary of Howard et al. (2021, eq. 14), as GrowthBook
//! uses it. It stays valid however often it is looked at, which is what lets the controller
//! check every few seconds without inflating false alarms.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// The SRM p-value below which a sample ratio mismatch blocks advancing.
pub const SRM_P_THRESHOLD: f64 = 0.001;
/// The fewest exposures per arm for the SRM check to run (GrowthBook's floor).
pub const SRM_MIN_PER_ARM: u64 = 8;

/// The standard normal quantile: `z` with `Φ(z) = p`. NaN outside `(0, 1)`.
pub fn normal_quantile(p: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    match Normal::new(0.0, 1.0) {
        Ok(normal) => normal.inverse_cdf(p),
        Err(_) => f64::NAN,
    }
}

/// The standard normal distribution function `Φ(x)`.
pub fn normal_cdf(x: f64) -> f64 {
    match Normal::new(0.0, 1.0) {
        Ok(normal) => normal.cdf(x),
        Err(_) => f64::NAN,
    }
}

/// The mixing parameter ρ of the one-sided sequence at level `alpha`, tuned to be tightest
/// at `tuning` total samples: `ρ = √((−2 ln 2α + ln(1 − 2 ln 2α)) / N*)`.
///
/// This is eq. 161 of Waudby-Smith et al. (2023) evaluated at `2α`, as GrowthBook does for
/// its one-sided tests. Any fixed ρ > 0 gives a valid sequence; ρ only moves where it is tightest.
pub fn mixing_rho(alpha: f64, tuning: f64) -> f64 {
    let a = 2.0 * alpha;
    let log_a = a.ln();
    ((-2.0 * log_a + (-2.0 * log_a + 1.0).ln()) / tuning).sqrt()
}

/// The half-width of the one-sided always-valid bound on a mean after `n` observations with
/// per-observation variance `variance`:
/// `√(variance · 2(nρ² + 1)/(nρ)² · ln(1 + √(nρ² + 1)/(2α)))`.
pub fn one_sided_halfwidth(variance: f64, n: f64, alpha: f64, rho: f64) -> f64 {
    let nr2 = n * rho * rho;
    let spread = 2.0 * (nr2 + 1.0) / (n * rho).powi(2);
    let log_term = (1.0 + (nr2 + 1.0).sqrt() / (2.0 * alpha)).ln();
    (variance * spread * log_term).sqrt()
}

/// The always-valid one-sided p-value for an estimate `distance` beyond the value tested,
/// with the same `variance`, `n` and `rho` as [`one_sided_halfwidth`]: the smallest α whose
/// bound excludes that value, `min(1, √(nρ² + 1) / (2(e^L − 1)))` with
/// `L = distance² (nρ)² / (2 · variance · (nρ² + 1))`. It is 1 when `distance ≤ 0`.
pub fn always_valid_p_value(distance: f64, variance: f64, n: f64, rho: f64) -> f64 {
    if distance.is_nan() || distance <= 0.0 {
        return 1.0;
    }
    if variance.is_nan() || variance <= 0.0 {
        return 0.0;
    }
    let nr2 = n * rho * rho;
    let l = distance * distance * (n * rho).powi(2) / (2.0 * variance * (nr2 + 1.0));
    let p = (nr2 + 1.0).sqrt() / (2.0 * l.exp_m1());
    if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) }
}

/// A difference of two arms' means, treatment minus control, with its standard error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// Treatment's mean minus control's.
    pub estimate: f64,
    /// The standard error of `estimate`.
    pub std_error: f64,
    /// Both arms' samples together: the sequence's "time".
    pub n: u64,
}

/// Always-valid bounds on a difference, each one-sided at level α.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// The lower bound: the difference is above it, at every look, with probability ≥ 1 − α.
    pub lo: f64,
    /// The upper bound, likewise.
    pub hi: f64,
    /// `hi − estimate`, which equals `estimate − lo`.
    pub halfwidth: f64,
}

impl Difference {
    /// The per-observation variance the sequence needs: `std_error² · n`.
    pub fn variance(&self) -> f64 {
        self.std_error * self.std_error * self.n as f64
    }

    /// The one-sided always-valid bounds at level `alpha`, tightest near `tuning` samples.
    pub fn bounds(&self, alpha: f64, tuning: f64) -> Bounds {
        let rho = mixing_rho(alpha, tuning);
        let halfwidth = one_sided_halfwidth(self.variance(), self.n as f64, alpha, rho);
        Bounds {
            lo: self.estimate - halfwidth,
            hi: self.estimate + halfwidth,
            halfwidth,
        }
    }

    /// The always-valid p-value that the difference exceeds `value` (when the estimate is
    /// above it) or falls short of it (when below).
    pub fn p_value(&self, value: f64, alpha: f64, tuning: f64) -> f64 {
        let rho = mixing_rho(alpha, tuning);
        always_valid_p_value(
            (self.estimate - value).abs(),
            self.variance(),
            self.n as f64,
            rho,
        )
    }
}

/// The difference of two proportions, `kt/nt − kc/nc`.
///
/// The estimate is the raw difference. The standard error uses the Agresti–Caffo adjusted
/// proportions `(k + 1)/(n + 2)`, so that arms with no events (or only events) still have a
/// variance: `√(p̃c(1 − p̃c)/nc + p̃t(1 − p̃t)/nt)`. `None` when an arm is empty or `k > n`.
pub fn proportion_difference(nc: u64, kc: u64, nt: u64, kt: u64) -> Option<Difference> {
    if nc == 0 || nt == 0 || kc > nc || kt > nt {
        return None;
    }
    let (ncf, kcf, ntf, ktf) = (nc as f64, kc as f64, nt as f64, kt as f64);
    let adjusted_c = (kcf + 1.0) / (ncf + 2.0);
    let adjusted_t = (ktf + 1.0) / (ntf + 2.0);
    let variance = adjusted_c * (1.0 - adjusted_c) / ncf + adjusted_t * (1.0 - adjusted_t) / ntf;
    Some(Difference {
        estimate: ktf / ntf - kcf / ncf,
        std_error: variance.sqrt(),
        n: nc.saturating_add(nt),
    })
}

/// One rate, `k/n`, as a [`Difference`] from zero, so the same always-valid bounds apply.
///
/// The standard error uses the adjusted proportion `(k + 1)/(n + 2)`, so that a rate with no
/// events still has a variance: `√(p̃(1 − p̃)/n)`. `None` when `n` is 0 or `k > n`.
pub fn proportion(n: u64, k: u64) -> Option<Difference> {
    if n == 0 || k > n {
        return None;
    }
    let (nf, kf) = (n as f64, k as f64);
    let adjusted = (kf + 1.0) / (nf + 2.0);
    Some(Difference {
        estimate: kf / nf,
        std_error: (adjusted * (1.0 - adjusted) / nf).sqrt(),
        n,
    })
}

/// The difference of two means from counts, sums and sums of squares (Welch's standard
/// error, with each arm's sample variance). `None` when an arm has fewer than 2 samples.
pub fn mean_difference(control: (u64, f64, f64), treatment: (u64, f64, f64)) -> Option<Difference> {
    let arm = |(n, sum, sum_sq): (u64, f64, f64)| -> Option<(f64, f64)> {
        if n < 2 || !sum.is_finite() || !sum_sq.is_finite() {
            return None;
        }
        let nf = n as f64;
        let mean = sum / nf;
        let variance = ((sum_sq - sum * mean) / (nf - 1.0)).max(0.0);
        Some((mean, variance / nf))
    };
    let (mean_c, var_c) = arm(control)?;
    let (mean_t, var_t) = arm(treatment)?;
    Some(Difference {
        estimate: mean_t - mean_c,
        std_error: (var_c + var_t).sqrt(),
        n: control.0.saturating_add(treatment.0),
    })
}

/// A chi-square goodness-of-fit test of observed counts against expected shares.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChiSquare {
    /// `Σ (observed − expected)² / expected`.
    pub statistic: f64,
    /// Degrees of freedom: arms − 1.
    pub degrees_of_freedom: u32,
    /// `P(χ² ≥ statistic)`.
    pub p_value: f64,
}

/// The sum of `expected_shares` and the total of `observed`, when the two can be tested
/// against each other: at least two arms, one share per arm, every share positive and some
/// observations.
fn counts_and_shares(observed: &[u64], expected_shares: &[f64]) -> Option<(f64, f64)> {
    if observed.len() < 2 || observed.len() != expected_shares.len() {
        return None;
    }
    let share_total: f64 = expected_shares.iter().sum();
    if expected_shares.iter().any(|s| !s.is_finite() || *s <= 0.0) || share_total <= 0.0 {
        return None;
    }
    let total: f64 = observed.iter().map(|&o| o as f64).sum();
    (total > 0.0).then_some((share_total, total))
}

/// Tests `observed` counts against `expected_shares` (which are normalised to sum to 1).
/// `None` with fewer than two arms, a non-positive share, or no observations.
pub fn chi_square_test(observed: &[u64], expected_shares: &[f64]) -> Option<ChiSquare> {
    let (share_total, total) = counts_and_shares(observed, expected_shares)?;
    let statistic: f64 = observed
        .iter()
        .zip(expected_shares)
        .map(|(&o, &share)| {
            let expected = total * share / share_total;
            let gap = o as f64 - expected;
            gap * gap / expected
        })
        .sum();
    let degrees_of_freedom = u32::try_from(observed.len() - 1).ok()?;
    let p_value = ChiSquared::new(f64::from(degrees_of_freedom))
        .ok()?
        .sf(statistic);
    Some(ChiSquare {
        statistic,
        degrees_of_freedom,
        p_value,
    })
}

/// The prior concentration of [`sequential_multinomial_test`]: the Dirichlet prior puts
/// `concentration × share` on each arm, so the shares it expects to see differ from the
/// expected ones by about `sqrt(share (1 − share) / concentration)`, half a percentage point
/// at 10,000 on a 50/50 split: the size of mismatch it is most sensitive to.
pub const SEQUENTIAL_SRM_CONCENTRATION: f64 = 10_000.0;

/// A sequential test of counts against expected shares.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialMultinomial {
    /// The natural log of the Bayes factor against the expected shares.
    pub log_bayes_factor: f64,
    /// `min(1, 1 / Bayes factor)`: an always-valid p-value.
    pub p_value: f64,
}

/// Tests `observed` counts against `expected_shares` (normalised to sum to 1) with the
/// Dirichlet-multinomial Bayes factor (Lindon and Malek, "Anytime-Valid Inference for
/// Multinomial Count Data", NeurIPS 2022), prior `Dirichlet(concentration × share)`.
///
/// `BF = Γ(K) / Γ(K + n) · Π Γ(Kpᵢ + xᵢ) / Γ(Kpᵢ) / Π pᵢ^xᵢ`. Under the expected shares the
/// running Bayes factor is a nonnegative martingale with mean 1, so by Ville's inequality it
/// ever reaches `1/α` with probability at most α: rejecting when `p_value < α` keeps the false
/// alarm rate at α however often the counts are read. `None` as for [`chi_square_test`].
pub fn sequential_multinomial_test(
    observed: &[u64],
    expected_shares: &[f64],
    concentration: f64,
) -> Option<SequentialMultinomial> {
    use statrs::function::gamma::ln_gamma;
    if concentration <= 0.0 {
        return None;
    }
    let (share_total, total) = counts_and_shares(observed, expected_shares)?;
    let mut log_bf = ln_gamma(concentration) - ln_gamma(concentration + total);
    for (&count, &share) in observed.iter().zip(expected_shares) {
        let p = share / share_total;
        let prior = concentration * p;
        let x = count as f64;
        log_bf += ln_gamma(prior + x) - ln_gamma(prior) - x * p.ln();
    }
    Some(SequentialMultinomial {
        log_bayes_factor: log_bf,
        p_value: (-log_bf).exp().min(1.0),
    })
}

/// Whether a test is one- or two-sided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sides {
    /// One-sided: α in one tail, as the guardrails test.
    One,
    /// Two-sided: α split between the tails.
    Two,
}

/// Fixed-horizon sample sizes for a two-proportion z-test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleSize {
    /// Samples in the treatment arm.
    pub treatment: u64,
    /// Samples in the control arm: `ratio` times the treatment's, rounded up.
    pub control: u64,
}

/// The samples a fixed-horizon two-proportion z-test needs to detect `p_treatment` against
/// `p_control` with probability `power` at level `alpha`, when the control arm is `ratio`
/// times the treatment arm (9 at a 10% stage): the statistical floor a sequential test is
/// measured against.
///
/// `nt = (z₁₋α + z_power)² · (pt(1 − pt) + pc(1 − pc)/ratio) / (pt − pc)²`, rounded up,
/// with `α/2` in place of `α` when two-sided (unpooled variance; Chow, Shao and Wang, 2008,
/// §4.2). `None` when the proportions are equal or an input is out of range.
pub fn fixed_horizon_sample_size(
    p_control: f64,
    p_treatment: f64,
    alpha: f64,
    power: f64,
    sides: Sides,
    ratio: f64,
) -> Option<SampleSize> {
    let unit = |p: f64| p > 0.0 && p < 1.0;
    if !(unit(p_control)
        && unit(p_treatment)
        && unit(alpha)
        && unit(power)
        && ratio > 0.0
        && ratio.is_finite())
    {
        return None;
    }
    let effect = p_treatment - p_control;
    if effect == 0.0 {
        return None;
    }
    let tail = match sides {
        Sides::One => alpha,
        Sides::Two => alpha / 2.0,
    };
    let z = normal_quantile(1.0 - tail) + normal_quantile(power);
    let variance = p_treatment * (1.0 - p_treatment) + p_control * (1.0 - p_control) / ratio;
    let treatment = (z * z * variance / (effect * effect)).ceil();
    let control = (treatment * ratio).ceil();
    if !(treatment.is_finite() && control.is_finite())
        || treatment > u64::MAX as f64
        || control > u64::MAX as f64
    {
        return None;
    }
    Some(SampleSize {
        treatment: treatment as u64,
        control: control as u64,
    })
}
