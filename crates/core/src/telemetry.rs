//! The telemetry wire format: what an SDK reports to `POST /api/v1/metrics`.
//!
//! An SDK aggregates locally and sends one [`MetricsBatch`] per flush. Everything is keyed by
//! flag, variant, the configuration version the SDK had applied, and a 10-second bucket
//! ([`BUCKET_MS`]), because that is the grain the server stores and the rollout judge reads:
//! per arm (variant), over the same window. Nothing here is per request; the SDK sums
//! evaluations, errors, custom events and latency sketches before sending, so a batch stays
//! small however busy the application is.
//!
//! Shadow experiments (an SDK running a candidate beside the control and comparing them) add
//! [`ShadowReport`]s per experiment, configuration version and bucket. The field is left out of
//! the JSON when empty, so a batch without shadow results is byte for byte what it was before.
//!
//! Dry runs of staged rule changes add [`crate::dry_run::DryRunReport`]s, left out when empty too.
//!
//! The environment is not in the batch: the server token that posts it names it.
//! `batch_id` makes a retried batch count once. The instance report doubles as an
//! acknowledgement of the configuration version the SDK applied, which rollback drills read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rollout::LatencySketch;

/// The width of one aggregation bucket, in milliseconds.
pub const BUCKET_MS: i64 = 10_000;

/// The most buckets one batch may carry; the server refuses more with a located error.
pub const MAX_BUCKETS_PER_BATCH: usize = 10_000;

/// The most crash reports one batch may carry.
pub const MAX_CRASHES_PER_BATCH: usize = 100;

/// The longest batch id or instance id accepted.
pub const MAX_ID_LEN: usize = 128;

/// The most shadow reports one batch may carry.
pub const MAX_SHADOW_PER_BATCH: usize = 1_000;

/// The most mismatching pairs one shadow report may carry.
pub const MAX_SAMPLES_PER_SHADOW: usize = 3;

/// The longest representation of one side of a mismatching pair, in bytes; an SDK truncates
/// at a character boundary before this and marks the cut with `…`.
pub const MAX_SAMPLE_BYTES: usize = 1_024;

/// The start of the bucket holding `unix_ms`.
pub fn bucket_start(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(BUCKET_MS) * BUCKET_MS
}

/// One flush from one SDK instance.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsBatch {
    /// Unique per batch (a random id); a batch posted twice is counted once.
    pub batch_id: String,
    /// Which SDK instance sent it, and the configuration it has applied.
    pub instance: InstanceReport,
    /// When the SDK sent it, Unix milliseconds.
    pub sent_at_ms: i64,
    /// Aggregates per flag, variant, configuration version and bucket.
    #[serde(default)]
    pub buckets: Vec<BucketReport>,
    /// Panics recorded by the crash hook since the last flush.
    #[serde(default)]
    pub crashes: Vec<CrashReport>,
    /// Telemetry the SDK dropped because its buffers were full, since it started.
    #[serde(default)]
    pub dropped: u64,
    /// Shadow experiment results per experiment, configuration version and bucket.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<ShadowReport>,
    /// Dry-run tallies: evaluations per (served, staged) variant pair of each dry run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_runs: Vec<crate::dry_run::DryRunReport>,
}

/// What one shadow experiment recorded under one configuration version in one bucket.
///
/// Every run that ran the candidate ends in exactly one of: a match, a mismatch, ignored (the
/// `ignore` hook said the difference does not matter), a candidate error (it panicked) or a
/// candidate timeout. `noisy` counts candidate comparisons made on a run whose control,
/// run twice, disagreed with itself: they are not matches or mismatches, because the control
/// itself was not deterministic there. `noise_comparisons` and `noise_mismatches` count those
/// control-against-control comparisons (the noise floor).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShadowReport {
    /// The bucket's start, Unix milliseconds, a multiple of [`BUCKET_MS`].
    pub start_ms: i64,
    /// The experiment's key, which is also the key of the flag that samples it.
    pub experiment: String,
    /// The configuration version the sampling flag was evaluated under.
    pub config_version: i64,
    /// Candidate results equal to the control's.
    #[serde(default)]
    pub matches: u64,
    /// Candidate results different from the control's.
    #[serde(default)]
    pub mismatches: u64,
    /// Differences the `ignore` hook waived.
    #[serde(default)]
    pub ignored: u64,
    /// Candidate comparisons left out because the control disagreed with itself.
    #[serde(default)]
    pub noisy: u64,
    /// Candidate runs that panicked.
    #[serde(default)]
    pub candidate_errors: u64,
    /// Candidate runs that did not finish within the timeout.
    #[serde(default)]
    pub candidate_timeouts: u64,
    /// Candidate runs not made because the background queue was full.
    #[serde(default)]
    pub dropped: u64,
    /// Control-against-control comparisons (the noise floor sample).
    #[serde(default)]
    pub noise_comparisons: u64,
    /// Of those, how many differed.
    #[serde(default)]
    pub noise_mismatches: u64,
    /// How long the control took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_latency: Option<LatencySketch>,
    /// How long the candidate took when it finished, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_latency: Option<LatencySketch>,
    /// A few mismatching pairs, for debugging.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<MismatchSample>,
}

impl ShadowReport {
    /// How many observations it holds: what is lost if it is dropped.
    pub fn observations(&self) -> u64 {
        self.matches
            + self.mismatches
            + self.ignored
            + self.noisy
            + self.candidate_errors
            + self.candidate_timeouts
            + self.dropped
            + self.noise_comparisons
    }
}

/// One mismatching pair, as the experiment's `clean` hook rendered it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MismatchSample {
    /// When it was recorded, Unix milliseconds.
    pub at_ms: i64,
    /// The control's result, at most [`MAX_SAMPLE_BYTES`].
    pub control: String,
    /// The candidate's result, at most [`MAX_SAMPLE_BYTES`].
    pub candidate: String,
}

/// `text` cut to at most `max` bytes at a character boundary, ending in `…` when cut.
pub fn truncate_sample(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let ellipsis = '…';
    let mut end = max.saturating_sub(ellipsis.len_utf8());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = text[..end].to_owned();
    cut.push(ellipsis);
    cut
}

/// An SDK instance and the configuration version it has applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceReport {
    /// Random per process, stable for its life.
    pub id: String,
    /// The SDK and its version, such as `sluice-rust/0.1.0`.
    #[serde(default)]
    pub sdk: String,
    /// The configuration version the instance evaluates with now; `None` before it has one.
    pub config_version: Option<i64>,
}

/// The aggregates of one flag variant, served under one configuration version, in one bucket.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketReport {
    /// The bucket's start, Unix milliseconds, a multiple of [`BUCKET_MS`].
    pub start_ms: i64,
    /// The flag key.
    pub flag: String,
    /// The variant served.
    pub variant: String,
    /// The configuration version it was served under.
    pub config_version: i64,
    /// Evaluations that served this variant (exposures).
    #[serde(default)]
    pub exposures: u64,
    /// Errors recorded against this variant.
    #[serde(default)]
    pub errors: u64,
    /// Crashes (panics) recorded while this variant was active.
    #[serde(default)]
    pub crashes: u64,
    /// Latencies recorded against this variant, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySketch>,
    /// Custom events by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub events: BTreeMap<String, EventAggregate>,
}

/// Count, sum and sum of squares of one custom event's values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventAggregate {
    /// How many times it was tracked.
    pub count: u64,
    /// The sum of the tracked values.
    pub sum: f64,
    /// The sum of the squared values, for variances.
    #[serde(default)]
    pub sum_sq: f64,
}

impl EventAggregate {
    /// Adds one tracked value.
    pub fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.sum_sq += value * value;
    }

    /// Folds another aggregate of the same event into this one.
    pub fn merge(&mut self, other: &EventAggregate) {
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }
}

/// One panic, with the variants that were active on its thread.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrashReport {
    /// When it happened, Unix milliseconds.
    pub at_ms: i64,
    /// The panic message, truncated.
    pub message: String,
    /// `file:line:column`, when known.
    #[serde(default)]
    pub location: Option<String>,
    /// Flag key to the variant active at the time.
    #[serde(default)]
    pub variants: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_on_ten_second_boundaries() {
        assert_eq!(bucket_start(0), 0);
        assert_eq!(bucket_start(9_999), 0);
        assert_eq!(bucket_start(10_000), 10_000);
        assert_eq!(bucket_start(1_700_000_012_345), 1_700_000_010_000);
        assert_eq!(bucket_start(-1), -10_000);
    }

    #[test]
    fn a_batch_round_trips_and_refuses_unknown_fields() {
        let mut sketch = LatencySketch::default();
        sketch.0.add(12.5);
        let mut events = BTreeMap::new();
        events
            .entry("checkout".to_owned())
            .or_insert_with(EventAggregate::default)
            .add(3.0);
        let batch = MetricsBatch {
            batch_id: "b1".into(),
            instance: InstanceReport {
                id: "i1".into(),
                sdk: "sluice-rust/0.1.0".into(),
                config_version: Some(7),
            },
            sent_at_ms: 1_700_000_012_345,
            buckets: vec![BucketReport {
                start_ms: 1_700_000_010_000,
                flag: "new-checkout".into(),
                variant: "on".into(),
                config_version: 7,
                exposures: 10,
                errors: 1,
                crashes: 0,
                latency: Some(sketch),
                events,
            }],
            crashes: vec![],
            dropped: 0,
            shadow: vec![],
            dry_runs: vec![],
        };
        let text = serde_json::to_string(&batch).unwrap();
        assert!(text.contains("\"batchId\":\"b1\""), "{text}");
        // No shadow results: the field is left out, so older servers read the batch.
        assert!(!text.contains("shadow"), "{text}");
        let back: MetricsBatch = serde_json::from_str(&text).unwrap();
        assert_eq!(back.buckets[0].exposures, 10);
        assert_eq!(
            back.buckets[0].latency.as_ref().map(LatencySketch::count),
            Some(1)
        );
        assert_eq!(back.buckets[0].events["checkout"].sum, 3.0);

        let unknown = text.replacen("\"batchId\"", "\"batchID\"", 1);
        assert!(serde_json::from_str::<MetricsBatch>(&unknown).is_err());
    }

    #[test]
    fn shadow_reports_round_trip() {
        let text = r#"{"batchId":"b","instance":{"id":"i","configVersion":3},"sentAtMs":0,
            "shadow":[{"startMs":10000,"experiment":"pricing-v2","configVersion":3,"matches":9,
            "mismatches":1,"samples":[{"atMs":1,"control":"1.0","candidate":"1.5"}]}]}"#;
        let batch: MetricsBatch = serde_json::from_str(text).unwrap();
        assert_eq!(batch.shadow.len(), 1);
        assert_eq!(batch.shadow[0].observations(), 10);
        assert_eq!(batch.shadow[0].samples[0].candidate, "1.5");
        let again = serde_json::to_string(&batch).unwrap();
        assert!(again.contains("\"noiseComparisons\":0"), "{again}");
    }

    #[test]
    fn samples_are_cut_at_character_boundaries() {
        assert_eq!(truncate_sample("short", 10), "short");
        let cut = truncate_sample("ééééé", 6);
        assert!(cut.len() <= 6, "{cut}");
        assert_eq!(cut, "é…");
        assert_eq!(truncate_sample("abcdefgh", 5), "ab…");
    }
}
