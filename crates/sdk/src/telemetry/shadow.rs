//! Shadow experiment results between flushes: counts, both latencies and a few mismatching
//! pairs per (bucket, experiment, configuration version).
//!
//! Bounded like the rest of telemetry: at most [`MAX_SHADOW_SERIES`] series between flushes
//! and [`MAX_SAMPLES_PER_SHADOW`] sampled pairs per series, each side cut to
//! [`MAX_SAMPLE_BYTES`]. A result that does not fit is refused and counted as dropped.

use std::collections::BTreeMap;

use sluice_core::rollout::LatencySketch;
use sluice_core::telemetry::{
    MAX_SAMPLE_BYTES, MAX_SAMPLES_PER_SHADOW, MismatchSample, ShadowReport, truncate_sample,
};

/// The most shadow series (experiment, version, bucket) held between flushes.
pub(crate) const MAX_SHADOW_SERIES: usize = 1_000;

/// How one run of an experiment ended, as telemetry counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    Match,
    Mismatch,
    Ignored,
    Noisy,
    CandidateError,
    CandidateTimeout,
    Dropped,
}

/// One run to record.
#[derive(Debug, Clone)]
pub(crate) struct ShadowObservation {
    pub(crate) counted: Counted,
    pub(crate) control_ms: Option<f64>,
    pub(crate) candidate_ms: Option<f64>,
    /// The control run twice: whether the two agreed.
    pub(crate) noise_matched: Option<bool>,
    /// A mismatching pair, already rendered by the `clean` hook.
    pub(crate) sample: Option<(String, String)>,
    pub(crate) at_ms: i64,
}

/// The series key: bucket start, experiment, configuration version.
type Key = (i64, String, i64);

#[derive(Debug, Default)]
pub(crate) struct ShadowAggregator {
    series: BTreeMap<Key, ShadowReport>,
}

fn add_latency(sketch: &mut Option<LatencySketch>, milliseconds: Option<f64>) {
    if let Some(ms) = milliseconds.filter(|ms| ms.is_finite() && *ms >= 0.0) {
        sketch.get_or_insert_with(LatencySketch::default).0.add(ms);
    }
}

impl ShadowAggregator {
    /// Whether a sampled pair would still be kept for this series: lets the caller skip
    /// rendering results nobody will read.
    pub(crate) fn wants_sample(&self, start_ms: i64, experiment: &str, version: i64) -> bool {
        self.series
            .get(&(start_ms, experiment.to_owned(), version))
            .is_none_or(|report| report.samples.len() < MAX_SAMPLES_PER_SHADOW)
    }

    /// Records one run; returns whether it fit.
    pub(crate) fn record(
        &mut self,
        start_ms: i64,
        experiment: &str,
        version: i64,
        observation: ShadowObservation,
    ) -> bool {
        let key = (start_ms, experiment.to_owned(), version);
        if !self.series.contains_key(&key) && self.series.len() >= MAX_SHADOW_SERIES {
            return false;
        }
        let report = self.series.entry(key).or_insert_with(|| ShadowReport {
            start_ms,
            experiment: experiment.to_owned(),
            config_version: version,
            ..ShadowReport::default()
        });
        match observation.counted {
            Counted::Match => report.matches += 1,
            Counted::Mismatch => report.mismatches += 1,
            Counted::Ignored => report.ignored += 1,
            Counted::Noisy => report.noisy += 1,
            Counted::CandidateError => report.candidate_errors += 1,
            Counted::CandidateTimeout => report.candidate_timeouts += 1,
            Counted::Dropped => report.dropped += 1,
        }
        if let Some(matched) = observation.noise_matched {
            report.noise_comparisons += 1;
            report.noise_mismatches += u64::from(!matched);
        }
        add_latency(&mut report.control_latency, observation.control_ms);
        add_latency(&mut report.candidate_latency, observation.candidate_ms);
        if let Some((control, candidate)) = observation.sample
            && report.samples.len() < MAX_SAMPLES_PER_SHADOW
        {
            report.samples.push(MismatchSample {
                at_ms: observation.at_ms,
                control: truncate_sample(&control, MAX_SAMPLE_BYTES),
                candidate: truncate_sample(&candidate, MAX_SAMPLE_BYTES),
            });
        }
        true
    }

    /// Takes everything, in key order.
    pub(crate) fn take(&mut self) -> Vec<ShadowReport> {
        std::mem::take(&mut self.series).into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(counted: Counted) -> ShadowObservation {
        ShadowObservation {
            counted,
            control_ms: Some(2.0),
            candidate_ms: Some(3.0),
            noise_matched: None,
            sample: None,
            at_ms: 5,
        }
    }

    #[test]
    fn runs_add_up_per_series_and_samples_are_capped() {
        let mut aggregator = ShadowAggregator::default();
        for _ in 0..7 {
            assert!(aggregator.record(0, "pricing", 1, run(Counted::Match)));
        }
        for i in 0..5 {
            let mut mismatch = run(Counted::Mismatch);
            mismatch.sample = Some((format!("c{i}"), "x".repeat(5_000)));
            mismatch.noise_matched = Some(i != 0);
            assert!(aggregator.record(0, "pricing", 1, mismatch));
        }
        assert!(aggregator.record(0, "pricing", 2, run(Counted::CandidateTimeout)));
        let reports = aggregator.take();
        assert_eq!(reports.len(), 2);
        let first = &reports[0];
        assert_eq!((first.matches, first.mismatches), (7, 5));
        assert_eq!((first.noise_comparisons, first.noise_mismatches), (5, 1));
        assert_eq!(first.samples.len(), MAX_SAMPLES_PER_SHADOW);
        assert!(first.samples[0].candidate.len() <= MAX_SAMPLE_BYTES);
        assert_eq!(first.control_latency.as_ref().map(|s| s.count()), Some(12));
        assert_eq!(reports[1].candidate_timeouts, 1);
        assert!(aggregator.take().is_empty());
    }

    #[test]
    fn a_full_aggregator_refuses_new_series() {
        let mut aggregator = ShadowAggregator::default();
        for version in 0..MAX_SHADOW_SERIES as i64 {
            assert!(aggregator.record(0, "e", version, run(Counted::Match)));
        }
        assert!(!aggregator.record(0, "e", -1, run(Counted::Match)));
        assert!(aggregator.record(0, "e", 0, run(Counted::Match)));
        assert!(aggregator.wants_sample(0, "e", 0));
        for _ in 0..MAX_SAMPLES_PER_SHADOW {
            let mut mismatch = run(Counted::Mismatch);
            mismatch.sample = Some(("a".into(), "b".into()));
            assert!(aggregator.record(0, "e", 0, mismatch));
        }
        assert!(!aggregator.wants_sample(0, "e", 0));
    }
}
