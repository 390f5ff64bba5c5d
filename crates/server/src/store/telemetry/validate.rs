//! The rules a metrics batch must keep before anything of it is stored.
//!
//! Every problem is reported with its path in the wire format's own (camelCase) names, such
//! as `buckets[3].startMs`, so an SDK author sees at once what to fix. Unknown flags and
//! variants are not problems: an SDK may evaluate a newer configuration than the server
//! has compiled, and telemetry is evidence either way.

use sluice_core::dry_run::{
    DryRunReport, MAX_DRY_RUNS_PER_BATCH, MAX_SAMPLES_PER_DRY_RUN, MAX_TRANSITIONS_PER_DRY_RUN,
};
use sluice_core::telemetry::{
    BUCKET_MS, BucketReport, CrashReport, MAX_BUCKETS_PER_BATCH, MAX_CRASHES_PER_BATCH, MAX_ID_LEN,
    MAX_SAMPLE_BYTES, MAX_SAMPLES_PER_SHADOW, MAX_SHADOW_PER_BATCH, MetricsBatch, ShadowReport,
};
use sluice_core::{Error, ErrorKind, Errors, MAX_KEY_LEN, Path};

use super::sketch;

/// The most distinct custom events one bucket may carry.
pub const MAX_EVENTS_PER_BUCKET: usize = 64;
/// The largest exposure, error or crash count, or custom event count, one bucket may carry.
pub const MAX_COUNT: u64 = 1_000_000_000_000;
/// The largest magnitude of a custom event's sum or sum of squares.
pub const MAX_EVENT_MAGNITUDE: f64 = 1e150;
/// The longest SDK name, crash location, or flag key or variant in a crash report.
pub const MAX_LABEL_LEN: usize = 256;
/// The longest panic message.
pub const MAX_CRASH_MESSAGE_LEN: usize = 4096;
/// How far past the server's clock a bucket may start, for clock skew.
pub const MAX_FUTURE_MS: i64 = 24 * 60 * 60 * 1000;
/// The most problems reported for one batch.
const MAX_REPORTED: usize = 100;

/// Collects problems, up to [`MAX_REPORTED`].
struct Problems(Vec<Error>);

impl Problems {
    fn push(&mut self, path: Path, message: impl Into<String>) {
        if self.0.len() < MAX_REPORTED {
            self.0.push(Error::new(ErrorKind::Invalid, path, message));
        }
    }

    fn text(&mut self, path: Path, text: &str, min: usize, max: usize) {
        if text.len() < min {
            self.push(path, "must not be empty");
        } else if text.len() > max {
            self.push(path, format!("longer than {max} bytes"));
        } else if text.chars().any(char::is_control) {
            self.push(path, "contains a control character");
        }
    }

    fn count(&mut self, path: Path, count: u64) {
        if count > MAX_COUNT {
            self.push(path, format!("larger than {MAX_COUNT}"));
        }
    }

    fn non_negative(&mut self, path: Path, value: i64) {
        if value < 0 {
            self.push(path, "must not be negative");
        }
    }
}

/// Checks `batch`, received at `received_ms` by the server's clock; every problem is
/// returned with its path.
pub fn validate_batch(batch: &MetricsBatch, received_ms: i64) -> Result<(), Errors> {
    let mut problems = Problems(Vec::new());
    let root = Path::root();
    problems.text(root.key("batchId"), &batch.batch_id, 1, MAX_ID_LEN);
    let instance = root.key("instance");
    problems.text(instance.key("id"), &batch.instance.id, 1, MAX_ID_LEN);
    problems.text(instance.key("sdk"), &batch.instance.sdk, 0, MAX_LABEL_LEN);
    if let Some(version) = batch.instance.config_version {
        problems.non_negative(instance.key("configVersion"), version);
    }
    problems.non_negative(root.key("sentAtMs"), batch.sent_at_ms);
    let buckets = root.key("buckets");
    if batch.buckets.len() > MAX_BUCKETS_PER_BATCH {
        problems.push(
            buckets.clone(),
            format!(
                "{} buckets; a batch may carry at most {MAX_BUCKETS_PER_BATCH}",
                batch.buckets.len()
            ),
        );
    } else {
        for (index, bucket) in batch.buckets.iter().enumerate() {
            check_bucket(&mut problems, &buckets.index(index), bucket, received_ms);
        }
    }
    let crashes = root.key("crashes");
    if batch.crashes.len() > MAX_CRASHES_PER_BATCH {
        problems.push(
            crashes.clone(),
            format!(
                "{} crash reports; a batch may carry at most {MAX_CRASHES_PER_BATCH}",
                batch.crashes.len()
            ),
        );
    } else {
        for (index, crash) in batch.crashes.iter().enumerate() {
            check_crash(&mut problems, &crashes.index(index), crash);
        }
    }
    let shadow = root.key("shadow");
    if batch.shadow.len() > MAX_SHADOW_PER_BATCH {
        problems.push(
            shadow.clone(),
            format!(
                "{} shadow reports; a batch may carry at most {MAX_SHADOW_PER_BATCH}",
                batch.shadow.len()
            ),
        );
    } else {
        for (index, report) in batch.shadow.iter().enumerate() {
            check_shadow(&mut problems, &shadow.index(index), report, received_ms);
        }
    }
    let dry_runs = root.key("dryRuns");
    if batch.dry_runs.len() > MAX_DRY_RUNS_PER_BATCH {
        problems.push(
            dry_runs.clone(),
            format!(
                "{} dry-run reports; a batch may carry at most {MAX_DRY_RUNS_PER_BATCH}",
                batch.dry_runs.len()
            ),
        );
    } else {
        for (index, report) in batch.dry_runs.iter().enumerate() {
            check_dry_run(&mut problems, &dry_runs.index(index), report);
        }
    }
    if problems.0.is_empty() {
        Ok(())
    } else {
        Err(Errors(problems.0))
    }
}

fn check_bucket(problems: &mut Problems, at: &Path, bucket: &BucketReport, received_ms: i64) {
    let start = at.key("startMs");
    if bucket.start_ms < 0 {
        problems.push(start, "must not be negative");
    } else if bucket.start_ms % BUCKET_MS != 0 {
        problems.push(start, format!("not a multiple of {BUCKET_MS}"));
    } else if bucket.start_ms > received_ms.saturating_add(MAX_FUTURE_MS) {
        problems.push(
            start,
            "more than a day after the server's clock; check the SDK host's clock",
        );
    }
    problems.text(at.key("flag"), &bucket.flag, 1, MAX_KEY_LEN);
    // Empty: errors recorded when no variant was served, such as an unknown flag.
    problems.text(at.key("variant"), &bucket.variant, 0, MAX_KEY_LEN);
    problems.non_negative(at.key("configVersion"), bucket.config_version);
    problems.count(at.key("exposures"), bucket.exposures);
    problems.count(at.key("errors"), bucket.errors);
    problems.count(at.key("crashes"), bucket.crashes);
    if let Some(latency) = &bucket.latency
        && let Err(message) = sketch::check(latency)
    {
        problems.push(at.key("latency"), message);
    }
    let events = at.key("events");
    if bucket.events.len() > MAX_EVENTS_PER_BUCKET {
        problems.push(
            events,
            format!(
                "{} events; a bucket may carry at most {MAX_EVENTS_PER_BUCKET}",
                bucket.events.len()
            ),
        );
        return;
    }
    for (name, event) in &bucket.events {
        let here = events.key(name.clone());
        problems.text(here.clone(), name, 1, MAX_KEY_LEN);
        problems.count(here.key("count"), event.count);
        if !(event.sum.is_finite() && event.sum.abs() <= MAX_EVENT_MAGNITUDE) {
            problems.push(here.key("sum"), format!("beyond ±{MAX_EVENT_MAGNITUDE:e}"));
        }
        if !(event.sum_sq.is_finite() && (0.0..=MAX_EVENT_MAGNITUDE).contains(&event.sum_sq)) {
            problems.push(
                here.key("sumSq"),
                format!("must be between 0 and {MAX_EVENT_MAGNITUDE:e}"),
            );
        }
    }
}

fn check_start(problems: &mut Problems, start: Path, start_ms: i64, received_ms: i64) {
    if start_ms < 0 {
        problems.push(start, "must not be negative");
    } else if start_ms % BUCKET_MS != 0 {
        problems.push(start, format!("not a multiple of {BUCKET_MS}"));
    } else if start_ms > received_ms.saturating_add(MAX_FUTURE_MS) {
        problems.push(
            start,
            "more than a day after the server's clock; check the SDK host's clock",
        );
    }
}

fn check_shadow(problems: &mut Problems, at: &Path, report: &ShadowReport, received_ms: i64) {
    check_start(problems, at.key("startMs"), report.start_ms, received_ms);
    problems.text(at.key("experiment"), &report.experiment, 1, MAX_KEY_LEN);
    problems.non_negative(at.key("configVersion"), report.config_version);
    for (name, count) in [
        ("matches", report.matches),
        ("mismatches", report.mismatches),
        ("ignored", report.ignored),
        ("noisy", report.noisy),
        ("candidateErrors", report.candidate_errors),
        ("candidateTimeouts", report.candidate_timeouts),
        ("dropped", report.dropped),
        ("noiseComparisons", report.noise_comparisons),
        ("noiseMismatches", report.noise_mismatches),
    ] {
        problems.count(at.key(name), count);
    }
    if report.noise_mismatches > report.noise_comparisons {
        problems.push(at.key("noiseMismatches"), "more than noiseComparisons");
    }
    for (name, sketch) in [
        ("controlLatency", &report.control_latency),
        ("candidateLatency", &report.candidate_latency),
    ] {
        if let Some(sketch) = sketch
            && let Err(message) = sketch::check(sketch)
        {
            problems.push(at.key(name), message);
        }
    }
    let samples = at.key("samples");
    if report.samples.len() > MAX_SAMPLES_PER_SHADOW {
        problems.push(
            samples,
            format!(
                "{} samples; a shadow report may carry at most {MAX_SAMPLES_PER_SHADOW}",
                report.samples.len()
            ),
        );
        return;
    }
    for (index, sample) in report.samples.iter().enumerate() {
        let here = samples.index(index);
        problems.non_negative(here.key("atMs"), sample.at_ms);
        for (name, text) in [
            ("control", &sample.control),
            ("candidate", &sample.candidate),
        ] {
            if text.len() > MAX_SAMPLE_BYTES {
                problems.push(
                    here.key(name),
                    format!("longer than {MAX_SAMPLE_BYTES} bytes"),
                );
            }
        }
    }
}

fn check_dry_run(problems: &mut Problems, at: &Path, report: &DryRunReport) {
    problems.text(at.key("flag"), &report.flag, 1, MAX_KEY_LEN);
    let transitions = at.key("transitions");
    if report.transitions.len() > MAX_TRANSITIONS_PER_DRY_RUN {
        problems.push(
            transitions,
            format!(
                "{} transitions; a dry-run report may carry at most {MAX_TRANSITIONS_PER_DRY_RUN}",
                report.transitions.len()
            ),
        );
    } else {
        for (index, transition) in report.transitions.iter().enumerate() {
            let here = transitions.index(index);
            problems.text(here.key("from"), &transition.from, 1, MAX_LABEL_LEN);
            problems.text(here.key("to"), &transition.to, 1, MAX_LABEL_LEN);
            problems.count(here.key("count"), transition.count);
        }
    }
    let samples = at.key("samples");
    if report.samples.len() > MAX_SAMPLES_PER_DRY_RUN {
        problems.push(
            samples,
            format!(
                "{} samples; a dry-run report may carry at most {MAX_SAMPLES_PER_DRY_RUN}",
                report.samples.len()
            ),
        );
        return;
    }
    for (index, sample) in report.samples.iter().enumerate() {
        let here = samples.index(index);
        problems.non_negative(here.key("atMs"), sample.at_ms);
        if sample.context.len() > MAX_SAMPLE_BYTES {
            problems.push(
                here.key("context"),
                format!("longer than {MAX_SAMPLE_BYTES} bytes"),
            );
        }
        problems.text(here.key("from"), &sample.from, 1, MAX_LABEL_LEN);
        problems.text(here.key("to"), &sample.to, 1, MAX_LABEL_LEN);
    }
}

fn check_crash(problems: &mut Problems, at: &Path, crash: &CrashReport) {
    problems.non_negative(at.key("atMs"), crash.at_ms);
    // Panic messages span lines; only their length is limited.
    if crash.message.len() > MAX_CRASH_MESSAGE_LEN {
        problems.push(
            at.key("message"),
            format!("longer than {MAX_CRASH_MESSAGE_LEN} bytes"),
        );
    }
    if let Some(location) = &crash.location {
        problems.text(at.key("location"), location, 0, MAX_LABEL_LEN);
    }
    let variants = at.key("variants");
    if crash.variants.len() > MAX_EVENTS_PER_BUCKET {
        problems.push(
            variants,
            format!(
                "{} flags; a crash report may name at most {MAX_EVENTS_PER_BUCKET}",
                crash.variants.len()
            ),
        );
        return;
    }
    for (flag, variant) in &crash.variants {
        let here = variants.key(flag.clone());
        problems.text(here.clone(), flag, 1, MAX_KEY_LEN);
        problems.text(here, variant, 0, MAX_KEY_LEN);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_core::telemetry::{EventAggregate, InstanceReport};

    use super::*;

    const NOW: i64 = 1_700_000_012_345;

    fn batch() -> MetricsBatch {
        MetricsBatch {
            batch_id: "b1".into(),
            instance: InstanceReport {
                id: "i1".into(),
                sdk: "sluice-rust/0.1.0".into(),
                config_version: Some(3),
            },
            sent_at_ms: NOW,
            buckets: vec![BucketReport {
                start_ms: 1_700_000_010_000,
                flag: "checkout".into(),
                variant: "on".into(),
                config_version: 3,
                exposures: 10,
                ..BucketReport::default()
            }],
            ..MetricsBatch::default()
        }
    }

    fn paths(batch: &MetricsBatch) -> Vec<String> {
        match validate_batch(batch, NOW) {
            Ok(()) => Vec::new(),
            Err(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect(),
        }
    }

    #[test]
    fn shadow_reports_are_checked_with_their_paths() {
        let mut bad = batch();
        bad.shadow = vec![
            ShadowReport {
                start_ms: 1_700_000_010_000,
                experiment: "pricing".into(),
                matches: 3,
                ..ShadowReport::default()
            },
            ShadowReport {
                start_ms: 5,
                experiment: String::new(),
                noise_comparisons: 1,
                noise_mismatches: 2,
                samples: vec![
                    sluice_core::telemetry::MismatchSample {
                        at_ms: 1,
                        control: "x".repeat(MAX_SAMPLE_BYTES + 1),
                        candidate: "y".into(),
                    };
                    1
                ],
                ..ShadowReport::default()
            },
        ];
        assert_eq!(
            paths(&bad),
            [
                "shadow[1].startMs: not a multiple of 10000",
                "shadow[1].experiment: must not be empty",
                "shadow[1].noiseMismatches: more than noiseComparisons",
                "shadow[1].samples[0].control: longer than 1024 bytes",
            ]
        );
        bad.shadow.truncate(1);
        assert!(validate_batch(&bad, NOW).is_ok());
    }

    #[test]
    fn dry_run_reports_are_checked_with_their_paths() {
        use sluice_core::dry_run::{DryRunSample, Transition};
        let mut bad = batch();
        let good = DryRunReport {
            dry_run: 1,
            flag: "checkout".into(),
            transitions: vec![Transition {
                from: "off".into(),
                to: "on".into(),
                count: 3,
            }],
            samples: Vec::new(),
        };
        bad.dry_runs = vec![
            good.clone(),
            DryRunReport {
                flag: String::new(),
                transitions: vec![Transition {
                    from: String::new(),
                    to: "on".into(),
                    count: MAX_COUNT + 1,
                }],
                samples: vec![DryRunSample {
                    at_ms: 1,
                    context: "x".repeat(MAX_SAMPLE_BYTES + 1),
                    from: "off".into(),
                    to: "on".into(),
                }],
                ..good.clone()
            },
        ];
        assert_eq!(
            paths(&bad),
            [
                "dryRuns[1].flag: must not be empty",
                "dryRuns[1].transitions[0].from: must not be empty",
                "dryRuns[1].transitions[0].count: larger than 1000000000000",
                "dryRuns[1].samples[0].context: longer than 1024 bytes",
            ]
        );
        bad.dry_runs = vec![good; MAX_DRY_RUNS_PER_BATCH + 1];
        assert_eq!(
            paths(&bad),
            ["dryRuns: 101 dry-run reports; a batch may carry at most 100"]
        );
        bad.dry_runs.truncate(1);
        assert!(validate_batch(&bad, NOW).is_ok());
    }

    #[test]
    fn a_good_batch_passes() {
        assert_eq!(paths(&batch()), Vec::<String>::new());
    }

    #[test]
    fn problems_name_their_paths() {
        let mut bad = batch();
        bad.batch_id.clear();
        bad.instance.id = "x".repeat(MAX_ID_LEN + 1);
        bad.buckets[0].start_ms += 1;
        bad.buckets[0].exposures = MAX_COUNT + 1;
        let mut events = BTreeMap::new();
        events.insert(
            "pay".to_owned(),
            EventAggregate {
                count: 1,
                sum: 1.0,
                sum_sq: -1.0,
            },
        );
        bad.buckets[0].events = events;
        bad.crashes.push(CrashReport {
            at_ms: -1,
            ..CrashReport::default()
        });
        assert_eq!(
            paths(&bad),
            [
                "batchId: must not be empty",
                "instance.id: longer than 128 bytes",
                "buckets[0].startMs: not a multiple of 10000",
                "buckets[0].exposures: larger than 1000000000000",
                "buckets[0].events.pay.sumSq: must be between 0 and 1e150",
                "crashes[0].atMs: must not be negative",
            ]
        );
    }

    #[test]
    fn too_many_buckets_is_one_problem() {
        let mut big = batch();
        big.buckets = vec![big.buckets[0].clone(); MAX_BUCKETS_PER_BATCH + 1];
        assert_eq!(
            paths(&big),
            ["buckets: 10001 buckets; a batch may carry at most 10000"]
        );
    }
}
