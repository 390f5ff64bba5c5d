//! Shadow experiment analysis, pure: reports summed per experiment, then the mismatch rate
//! with always-valid bounds, the candidate's error and timeout rates, the latency difference
//! and the noise floor.
//!
//! The mismatch rate is `mismatches / (matches + mismatches)`: ignored differences, noisy runs
//! (the control disagreed with itself), errors and timeouts are not comparisons. Error and
//! timeout rates are over every candidate run (`matches + mismatches + ignored + noisy +
//! errors + timeouts`). Bounds are the one-sided always-valid bounds of
//! [`crate::rollout::stats`], the same sequences the rollout guardrails use, so the report
//! and a `shadow_mismatch_rate` guardrail agree.

use serde::{Deserialize, Serialize};

use crate::rollout::LatencySketch;
use crate::rollout::stats;
use crate::telemetry::ShadowReport;

/// Shadow reports of one experiment, summed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowTotals {
    /// Candidate results equal to the control's.
    pub matches: u64,
    /// Candidate results different from the control's.
    pub mismatches: u64,
    /// Differences the `ignore` hook waived.
    pub ignored: u64,
    /// Runs whose control disagreed with itself.
    pub noisy: u64,
    /// Candidate panics.
    pub candidate_errors: u64,
    /// Candidate timeouts.
    pub candidate_timeouts: u64,
    /// Runs dropped by a full queue.
    pub dropped: u64,
    /// Control-against-control comparisons.
    pub noise_comparisons: u64,
    /// Of those, disagreements.
    pub noise_mismatches: u64,
    /// Control latency, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_latency: Option<LatencySketch>,
    /// Candidate latency, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_latency: Option<LatencySketch>,
}

fn merge_sketch(into: &mut Option<LatencySketch>, from: &Option<LatencySketch>) {
    match (into.as_mut(), from) {
        (_, None) => {}
        (None, Some(theirs)) => *into = Some(theirs.clone()),
        (Some(ours), Some(theirs)) => {
            // Both come from checked sketches with the default configuration.
            let _ = ours.0.merge(&theirs.0);
        }
    }
}

impl ShadowTotals {
    /// Adds one report (or a stored row in the same shape). Counts saturate.
    pub fn add(&mut self, report: &ShadowReport) {
        let add = |ours: &mut u64, theirs: u64| *ours = ours.saturating_add(theirs);
        add(&mut self.matches, report.matches);
        add(&mut self.mismatches, report.mismatches);
        add(&mut self.ignored, report.ignored);
        add(&mut self.noisy, report.noisy);
        add(&mut self.candidate_errors, report.candidate_errors);
        add(&mut self.candidate_timeouts, report.candidate_timeouts);
        add(&mut self.dropped, report.dropped);
        add(&mut self.noise_comparisons, report.noise_comparisons);
        add(&mut self.noise_mismatches, report.noise_mismatches);
        merge_sketch(&mut self.control_latency, &report.control_latency);
        merge_sketch(&mut self.candidate_latency, &report.candidate_latency);
    }

    /// Comparisons: matches and mismatches.
    pub fn comparisons(&self) -> u64 {
        self.matches.saturating_add(self.mismatches)
    }

    /// Every candidate run that was made.
    pub fn runs(&self) -> u64 {
        [
            self.matches,
            self.mismatches,
            self.ignored,
            self.noisy,
            self.candidate_errors,
            self.candidate_timeouts,
        ]
        .iter()
        .fold(0u64, |sum, n| sum.saturating_add(*n))
    }
}

/// A rate with its always-valid bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateEstimate {
    /// Events.
    pub k: u64,
    /// Trials.
    pub n: u64,
    /// `k / n`.
    pub rate: f64,
    /// Lower always-valid bound, at least 0.
    pub lo: f64,
    /// Upper always-valid bound, at most 1.
    pub hi: f64,
}

/// `k` of `n` with bounds at `alpha` each side; `None` when `n` is 0.
pub fn rate(n: u64, k: u64, alpha: f64, tuning: f64) -> Option<RateEstimate> {
    let estimate = stats::proportion(n, k)?;
    let bounds = estimate.bounds(alpha, tuning);
    Some(RateEstimate {
        k,
        n,
        rate: estimate.estimate,
        lo: bounds.lo.max(0.0),
        hi: bounds.hi.min(1.0),
    })
}

/// Latency of both sides.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyComparison {
    /// Control p50, ms.
    pub control_p50: Option<f64>,
    /// Candidate p50, ms.
    pub candidate_p50: Option<f64>,
    /// Control p99, ms.
    pub control_p99: Option<f64>,
    /// Candidate p99, ms.
    pub candidate_p99: Option<f64>,
    /// Candidate p50 minus control p50, ms.
    pub p50_difference: Option<f64>,
    /// Candidate p99 minus control p99, ms.
    pub p99_difference: Option<f64>,
}

/// What `GET /api/v1/experiments/{key}/shadow` and `sluice experiment shadow` show.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowAnalysis {
    /// Candidate runs made.
    pub runs: u64,
    /// Mismatches over comparisons, when there were any.
    pub mismatch_rate: Option<RateEstimate>,
    /// Control-against-control disagreements, when measured.
    pub noise_floor: Option<RateEstimate>,
    /// Candidate panics over runs.
    pub error_rate: Option<RateEstimate>,
    /// Candidate timeouts over runs.
    pub timeout_rate: Option<RateEstimate>,
    /// Ignored differences, noisy runs and dropped runs.
    pub ignored: u64,
    /// Runs not judged because the control disagreed with itself.
    pub noisy: u64,
    /// Runs dropped because the background queue was full.
    pub dropped: u64,
    /// Both sides' latency.
    pub latency: LatencyComparison,
    /// One sentence.
    pub summary: String,
}

fn percent(value: f64) -> String {
    format!("{:.3}%", value * 100.0)
}

/// Analyses summed shadow results at `alpha` (each side) with the sequences tuned at `tuning`.
pub fn analyze(totals: &ShadowTotals, alpha: f64, tuning: f64) -> ShadowAnalysis {
    let runs = totals.runs();
    let mismatch_rate = rate(totals.comparisons(), totals.mismatches, alpha, tuning);
    let noise_floor = rate(
        totals.noise_comparisons,
        totals.noise_mismatches,
        alpha,
        tuning,
    );
    let error_rate = rate(runs, totals.candidate_errors, alpha, tuning);
    let timeout_rate = rate(runs, totals.candidate_timeouts, alpha, tuning);
    let quantile = |sketch: &Option<LatencySketch>, q: f64| sketch.as_ref()?.quantile(q);
    let (control_p50, candidate_p50) = (
        quantile(&totals.control_latency, 0.5),
        quantile(&totals.candidate_latency, 0.5),
    );
    let (control_p99, candidate_p99) = (
        quantile(&totals.control_latency, 0.99),
        quantile(&totals.candidate_latency, 0.99),
    );
    let difference = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
    let latency = LatencyComparison {
        control_p50,
        candidate_p50,
        control_p99,
        candidate_p99,
        p50_difference: difference(control_p50, candidate_p50),
        p99_difference: difference(control_p99, candidate_p99),
    };
    let summary = match &mismatch_rate {
        None => format!("no comparisons yet ({runs} candidate runs)"),
        Some(m) => {
            let noise = noise_floor.map_or_else(
                || "noise floor not measured".to_owned(),
                |f| format!("noise floor {}", percent(f.rate)),
            );
            format!(
                "{} of {} comparisons mismatched ({}, always-valid bounds [{}, {}]); {noise}; {} candidate errors, {} timeouts",
                m.k,
                m.n,
                percent(m.rate),
                percent(m.lo),
                percent(m.hi),
                totals.candidate_errors,
                totals.candidate_timeouts
            )
        }
    };
    ShadowAnalysis {
        runs,
        mismatch_rate,
        noise_floor,
        error_rate,
        timeout_rate,
        ignored: totals.ignored,
        noisy: totals.noisy,
        dropped: totals.dropped,
        latency,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_right_denominators() {
        let mut totals = ShadowTotals::default();
        let mut sketch = LatencySketch::default();
        sketch.0.add(10.0);
        let mut slower = LatencySketch::default();
        slower.0.add(25.0);
        totals.add(&ShadowReport {
            matches: 9_890,
            mismatches: 100,
            ignored: 5,
            noisy: 3,
            candidate_errors: 2,
            noise_comparisons: 100,
            noise_mismatches: 1,
            control_latency: Some(sketch.clone()),
            candidate_latency: Some(slower),
            ..ShadowReport::default()
        });
        totals.add(&ShadowReport {
            matches: 10,
            control_latency: Some(sketch),
            ..ShadowReport::default()
        });
        let analysis = analyze(&totals, 0.05, 5000.0);
        let mismatch = analysis.mismatch_rate.unwrap();
        assert_eq!((mismatch.k, mismatch.n), (100, 10_000));
        assert!((mismatch.rate - 0.01).abs() < 1e-12);
        assert!(mismatch.lo < 0.01 && mismatch.hi > 0.01);
        assert!(mismatch.lo > 0.005 && mismatch.hi < 0.015, "{mismatch:?}");
        assert_eq!(analysis.runs, 10_010);
        assert_eq!(analysis.error_rate.unwrap().k, 2);
        assert_eq!(analysis.noise_floor.unwrap().rate, 0.01);
        let p50 = analysis.latency.p50_difference.unwrap();
        assert!((p50 - 15.0).abs() < 1.0, "{p50}");
        assert!(
            analysis
                .summary
                .starts_with("100 of 10000 comparisons mismatched")
        );
    }

    #[test]
    fn nothing_reported_is_no_rate() {
        let analysis = analyze(&ShadowTotals::default(), 0.05, 5000.0);
        assert!(analysis.mismatch_rate.is_none());
        assert!(analysis.summary.starts_with("no comparisons yet"));
    }
}
