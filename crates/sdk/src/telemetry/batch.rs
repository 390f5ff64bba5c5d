//! Assembling batches: aggregates become [`MetricsBatch`]es, split to fit, serialized once.
//!
//! A batch is serialized when it is made, with a random id, and retried byte for byte under
//! that id, so the server, which counts a batch id once, never counts a retry twice. A flush
//! with more than [`MAX_REPORTS_PER_BATCH`] bucket reports, or whose JSON would pass
//! [`MAX_BODY_BYTES`] (well under the server's default 1 MiB body limit, even uncompressed),
//! is split. Bodies over [`GZIP_ABOVE`] are sent gzip-compressed (`Content-Encoding: gzip`).

use std::hash::{BuildHasher, RandomState};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_core::dry_run::{DryRunReport, MAX_DRY_RUNS_PER_BATCH};
use sluice_core::telemetry::{
    BucketReport, CrashReport, InstanceReport, MetricsBatch, ShadowReport,
};

use crate::telemetry::aggregate::{Key, Series};
use crate::telemetry::counters::Counters;

/// The most bucket reports in one batch.
pub(crate) const MAX_REPORTS_PER_BATCH: usize = 1_000;

/// The largest body sent, before compression; a larger batch is split.
pub(crate) const MAX_BODY_BYTES: usize = 512 * 1024;

/// Bodies larger than this are compressed.
pub(crate) const GZIP_ABOVE: usize = 1024;

/// A serialized batch waiting to be sent, or sent again.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) id: String,
    pub(crate) body: Vec<u8>,
    /// Whether `body` is gzip-compressed JSON.
    pub(crate) gzip: bool,
    /// The observations it carries: what is lost if it is dropped.
    pub(crate) observations: u64,
    /// No reports and no crashes: only the instance's heartbeat.
    pub(crate) empty: bool,
    /// The configuration version it reports as applied.
    pub(crate) version: Option<i64>,
    /// Failed attempts so far.
    pub(crate) attempts: u32,
}

/// One series as a wire report, named from its table; `None` when the slot is unknown.
pub(crate) fn report(key: Key, series: Series, table: &Counters) -> Option<BucketReport> {
    let (flag, variant) = table.names(key.slot)?;
    Some(BucketReport {
        start_ms: key.start_ms,
        flag: flag.to_string(),
        variant: variant.to_string(),
        config_version: table.version(),
        exposures: series.exposures,
        errors: series.errors,
        crashes: series.crashes,
        latency: series.latency,
        events: series.events,
    })
}

/// What one flush sends.
#[derive(Debug, Default)]
pub(crate) struct Contents {
    /// Reports with the observations each carries.
    pub(crate) reports: Vec<(BucketReport, u64)>,
    pub(crate) crashes: Vec<CrashReport>,
    /// Shadow experiment results; they travel in batches of their own.
    pub(crate) shadow: Vec<ShadowReport>,
    /// Dry-run tallies; they travel with the shadow results.
    pub(crate) dry_runs: Vec<DryRunReport>,
}

/// The most shadow reports in one batch: far below the body limit even with every sampled
/// pair at its largest.
pub(crate) const MAX_SHADOW_PER_BATCH: usize = 100;

/// The batches for `contents`: one with no reports when there is nothing (a heartbeat).
/// Returns them and the observations that could not be sent at any size.
pub(crate) fn assemble(
    contents: Contents,
    instance: &InstanceReport,
    dropped: u64,
    now_ms: i64,
) -> (Vec<Pending>, u64) {
    let Contents {
        reports,
        crashes,
        shadow,
        dry_runs,
    } = contents;
    let mut chunks: Vec<Vec<(BucketReport, u64)>> = Vec::new();
    let mut reports = reports.into_iter().peekable();
    while reports.peek().is_some() {
        chunks.push(reports.by_ref().take(MAX_REPORTS_PER_BATCH).collect());
    }
    if chunks.is_empty() {
        chunks.push(Vec::new());
    }
    let mut crashes = Some(crashes);
    let mut batches = Vec::new();
    let mut refused = 0;
    let mut queue: Vec<Vec<(BucketReport, u64)>> = chunks.into_iter().rev().collect();
    while let Some(chunk) = queue.pop() {
        let observations: u64 = chunk.iter().map(|(_, count)| count).sum();
        let these_crashes = crashes.take().unwrap_or_default();
        let crash_count = these_crashes.len() as u64;
        let batch = MetricsBatch {
            batch_id: random_id(),
            instance: instance.clone(),
            sent_at_ms: now_ms,
            buckets: chunk.iter().map(|(report, _)| report.clone()).collect(),
            crashes: these_crashes,
            dropped,
            shadow: Vec::new(),
            dry_runs: Vec::new(),
        };
        let body = match serde_json::to_vec(&batch) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, "cannot serialize a telemetry batch; dropping it");
                refused += observations + crash_count;
                continue;
            }
        };
        if body.len() > MAX_BODY_BYTES {
            if chunk.len() > 1 {
                // Split in two and try again; the crashes go with the first half.
                crashes = Some(batch.crashes);
                let mut first = chunk;
                let second = first.split_off(first.len() / 2);
                queue.push(second);
                queue.push(first);
            } else {
                tracing::warn!(
                    bytes = body.len(),
                    "a telemetry report is too large to send; dropping it"
                );
                refused += observations;
                crashes = Some(batch.crashes);
            }
            continue;
        }
        let (body, gzip) = compress(body);
        batches.push(Pending {
            id: batch.batch_id,
            body,
            gzip,
            observations: observations + crash_count,
            empty: chunk.is_empty() && crash_count == 0,
            version: instance.config_version,
            attempts: 0,
        });
    }
    // Crashes left over when every report was too large still deserve a batch.
    if let Some(left) = crashes.filter(|left| !left.is_empty()) {
        let (more, lost) = assemble(
            Contents {
                crashes: left,
                ..Contents::default()
            },
            instance,
            dropped,
            now_ms,
        );
        batches.extend(more);
        refused += lost;
    }
    // Shadow results and dry-run tallies travel in batches of their own, a bounded number of
    // reports each.
    let mut shadow = shadow.into_iter().peekable();
    let mut dry_runs = dry_runs.into_iter().peekable();
    while shadow.peek().is_some() || dry_runs.peek().is_some() {
        let chunk: Vec<ShadowReport> = shadow.by_ref().take(MAX_SHADOW_PER_BATCH).collect();
        let dry_chunk: Vec<DryRunReport> = dry_runs.by_ref().take(MAX_DRY_RUNS_PER_BATCH).collect();
        let observations: u64 = chunk.iter().map(ShadowReport::observations).sum::<u64>()
            + dry_chunk.iter().map(DryRunReport::evaluations).sum::<u64>();
        let batch = MetricsBatch {
            batch_id: random_id(),
            instance: instance.clone(),
            sent_at_ms: now_ms,
            buckets: Vec::new(),
            crashes: Vec::new(),
            dropped,
            shadow: chunk,
            dry_runs: dry_chunk,
        };
        match serde_json::to_vec(&batch) {
            Ok(body) if body.len() <= MAX_BODY_BYTES => {
                let (body, gzip) = compress(body);
                batches.push(Pending {
                    id: batch.batch_id,
                    body,
                    gzip,
                    observations,
                    empty: false,
                    version: instance.config_version,
                    attempts: 0,
                });
            }
            _ => {
                tracing::warn!("shadow results too large to send; dropping them");
                refused += observations;
            }
        }
    }
    (batches, refused)
}

/// `body` gzip-compressed when it is large enough to gain, and whether it is.
fn compress(body: Vec<u8>) -> (Vec<u8>, bool) {
    if body.len() <= GZIP_ABOVE {
        return (body, false);
    }
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    match encoder.write_all(&body).and_then(|()| encoder.finish()) {
        Ok(compressed) => (compressed, true),
        Err(_) => (body, false),
    }
}

/// A random 128-bit id in hex: SipHash under the standard library's random keys, which are
/// drawn from the operating system and differ per `RandomState`.
pub(crate) fn random_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    let seed = (count, now, std::process::id());
    let high = RandomState::new().hash_one(seed);
    let low = RandomState::new().hash_one(seed);
    format!("{high:016x}{low:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> InstanceReport {
        InstanceReport {
            id: "i".into(),
            sdk: "sluice-rust/test".into(),
            config_version: Some(3),
        }
    }

    fn report(flag: &str, exposures: u64) -> (BucketReport, u64) {
        (
            BucketReport {
                start_ms: 0,
                flag: flag.to_owned(),
                variant: "on".into(),
                config_version: 3,
                exposures,
                ..BucketReport::default()
            },
            exposures,
        )
    }

    fn parse(pending: &Pending) -> MetricsBatch {
        serde_json::from_slice(&pending.json()).unwrap()
    }

    impl Pending {
        /// The JSON, decompressed.
        pub(crate) fn json(&self) -> Vec<u8> {
            if !self.gzip {
                return self.body.clone();
            }
            let mut json = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&self.body[..]),
                &mut json,
            )
            .unwrap();
            json
        }
    }

    #[test]
    fn nothing_to_report_is_one_heartbeat() {
        let (batches, refused) = assemble(Contents::default(), &instance(), 4, 1_000);
        assert_eq!(refused, 0);
        assert_eq!(batches.len(), 1);
        assert!(batches[0].empty);
        assert!(!batches[0].gzip);
        let batch = parse(&batches[0]);
        assert_eq!(batch.batch_id, batches[0].id);
        assert_eq!(batch.instance, instance());
        assert_eq!((batch.dropped, batch.sent_at_ms), (4, 1_000));
        assert!(batch.buckets.is_empty());
    }

    #[test]
    fn many_reports_are_split_and_nothing_is_lost() {
        let reports: Vec<_> = (0..2_500).map(|i| report(&format!("f{i}"), 2)).collect();
        let crash = CrashReport {
            message: "boom".into(),
            ..CrashReport::default()
        };
        let contents = Contents {
            reports,
            crashes: vec![crash],
            ..Contents::default()
        };
        let (batches, refused) = assemble(contents, &instance(), 0, 0);
        assert_eq!(refused, 0);
        assert_eq!(batches.len(), 3);
        assert!(batches.iter().all(|batch| batch.gzip));
        let parsed: Vec<MetricsBatch> = batches.iter().map(parse).collect();
        let total: u64 = parsed
            .iter()
            .flat_map(|batch| &batch.buckets)
            .map(|bucket| bucket.exposures)
            .sum();
        assert_eq!(total, 5_000);
        assert_eq!(
            parsed
                .iter()
                .map(|batch| batch.crashes.len())
                .sum::<usize>(),
            1
        );
        let observations: u64 = batches.iter().map(|batch| batch.observations).sum();
        assert_eq!(observations, 5_001);
        let ids: std::collections::BTreeSet<_> = batches.iter().map(|b| &b.id).collect();
        assert_eq!(ids.len(), 3);
        assert!(
            batches
                .iter()
                .all(|batch| batch.json().len() <= MAX_BODY_BYTES)
        );
    }

    #[test]
    fn shadow_reports_and_dry_runs_travel_in_batches_of_their_own() {
        let shadow: Vec<ShadowReport> = (0..250)
            .map(|i| ShadowReport {
                experiment: format!("e{i}"),
                matches: 2,
                mismatches: 1,
                ..ShadowReport::default()
            })
            .collect();
        let contents = Contents {
            reports: vec![report("f", 4)],
            crashes: Vec::new(),
            shadow,
            dry_runs: (1..=2)
                .map(|id| DryRunReport {
                    dry_run: id,
                    flag: "f".into(),
                    transitions: vec![sluice_core::dry_run::Transition {
                        from: "off".into(),
                        to: "on".into(),
                        count: 5,
                    }],
                    samples: Vec::new(),
                })
                .collect(),
        };
        let (batches, refused) = assemble(contents, &instance(), 0, 0);
        assert_eq!(refused, 0);
        assert_eq!(batches.len(), 1 + 3);
        let parsed: Vec<MetricsBatch> = batches.iter().map(parse).collect();
        assert!(parsed[0].shadow.is_empty());
        assert_eq!(parsed[0].buckets.len(), 1);
        let shadow: usize = parsed.iter().map(|b| b.shadow.len()).sum();
        assert_eq!(shadow, 250);
        assert!(parsed[1..].iter().all(|b| b.buckets.is_empty()));
        // Dry-run tallies ride along with the shadow results, never with the buckets.
        assert!(parsed[0].dry_runs.is_empty());
        let dry_runs: usize = parsed.iter().map(|b| b.dry_runs.len()).sum();
        assert_eq!(dry_runs, 2);
        let observations: u64 = batches.iter().map(|batch| batch.observations).sum();
        assert_eq!(observations, 4 + 250 * 3 + 2 * 5);
    }

    #[test]
    fn bodies_over_the_size_limit_are_halved() {
        let long = "x".repeat(2_000);
        let reports: Vec<_> = (0..600).map(|i| report(&format!("{long}{i}"), 1)).collect();
        let (batches, refused) = assemble(
            Contents {
                reports,
                ..Contents::default()
            },
            &instance(),
            0,
            0,
        );
        assert_eq!(refused, 0);
        assert!(batches.len() >= 3, "{}", batches.len());
        assert!(
            batches
                .iter()
                .all(|batch| batch.json().len() <= MAX_BODY_BYTES)
        );
        let sent: usize = batches.iter().map(|b| parse(b).buckets.len()).sum();
        assert_eq!(sent, 600);
    }

    #[test]
    fn ids_are_distinct_hex() {
        let ids: std::collections::BTreeSet<String> = (0..1_000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 1_000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }
}
