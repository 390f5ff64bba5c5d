//! Bounded aggregation between flushes: counts, latency sketches and custom events per
//! series, where a series is one (bucket, counter table, slot), that is one flag variant
//! served under one configuration version in one 10-second bucket.
//!
//! Memory is bounded by a budget of [`MAX_SERIES_PER_BUCKET`] per bucket, where a series
//! costs one and each distinct event name under it one more, and [`MAX_SERIES`] in all.
//! What does not fit is refused; the caller counts it as dropped. Crash reports are kept up
//! to [`MAX_CRASHES`] per flush.

use std::collections::{BTreeMap, HashMap};

use sluice_core::rollout::LatencySketch;
use sluice_core::telemetry::{CrashReport, EventAggregate, MAX_CRASHES_PER_BATCH};

/// The most series (and event names) one bucket may hold between flushes.
pub(crate) const MAX_SERIES_PER_BUCKET: usize = 10_000;

/// The most series (and event names) held between flushes, over all buckets.
pub(crate) const MAX_SERIES: usize = 50_000;

/// The most crash reports held between flushes.
pub(crate) const MAX_CRASHES: usize = MAX_CRASHES_PER_BATCH;

/// The longest event name kept, in bytes; longer names are cut at a character boundary.
pub(crate) const MAX_EVENT_NAME_BYTES: usize = 128;

/// One series: a flag variant under one configuration version, in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    /// The bucket's start, Unix milliseconds.
    pub(crate) start_ms: i64,
    /// The counter table's id, which stands for the configuration version.
    pub(crate) table: u64,
    /// The (flag, variant) slot in that table.
    pub(crate) slot: u32,
}

/// What one series aggregated.
#[derive(Debug, Clone, Default)]
pub(crate) struct Series {
    pub(crate) exposures: u64,
    pub(crate) errors: u64,
    pub(crate) crashes: u64,
    pub(crate) latency: Option<LatencySketch>,
    pub(crate) events: BTreeMap<String, EventAggregate>,
}

impl Series {
    /// How many observations it holds: what is lost if it is dropped.
    pub(crate) fn observations(&self) -> u64 {
        let latencies = self.latency.as_ref().map_or(0, LatencySketch::count);
        let events: u64 = self.events.values().map(|event| event.count).sum();
        self.exposures + self.errors + self.crashes + latencies + events
    }
}

/// Everything aggregated since the last flush.
#[derive(Debug, Default)]
pub(crate) struct Aggregator {
    series: HashMap<Key, Series>,
    /// The budget used per bucket.
    used: HashMap<i64, usize>,
    total: usize,
    crashes: Vec<CrashReport>,
}

impl Aggregator {
    /// The series for `key`, if it exists or fits along with `names` new event names.
    fn admit(&mut self, key: Key, names: usize) -> Option<&mut Series> {
        let cost = usize::from(!self.series.contains_key(&key)) + names;
        if cost > 0 {
            let used = self.used.get(&key.start_ms).copied().unwrap_or(0);
            if used + cost > MAX_SERIES_PER_BUCKET || self.total + cost > MAX_SERIES {
                return None;
            }
            self.used.insert(key.start_ms, used + cost);
            self.total += cost;
        }
        Some(self.series.entry(key).or_default())
    }

    /// Adds exposures and errors; returns whether they fit.
    pub(crate) fn count(&mut self, key: Key, exposures: u64, errors: u64) -> bool {
        let Some(series) = self.admit(key, 0) else {
            return false;
        };
        series.exposures += exposures;
        series.errors += errors;
        true
    }

    /// Adds a latency in milliseconds; returns whether it fit.
    pub(crate) fn latency(&mut self, key: Key, milliseconds: f64) -> bool {
        if !milliseconds.is_finite() || milliseconds < 0.0 {
            return false;
        }
        let Some(series) = self.admit(key, 0) else {
            return false;
        };
        series
            .latency
            .get_or_insert_with(LatencySketch::default)
            .0
            .add(milliseconds);
        true
    }

    /// Adds one value of a custom event; returns whether it fit. Values that are not
    /// finite are refused: JSON cannot carry them.
    pub(crate) fn event(&mut self, key: Key, name: &str, value: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        let name = truncate(name, MAX_EVENT_NAME_BYTES);
        let known = self
            .series
            .get(&key)
            .is_some_and(|series| series.events.contains_key(name));
        let Some(series) = self.admit(key, usize::from(!known)) else {
            return false;
        };
        series.events.entry(name.to_owned()).or_default().add(value);
        true
    }

    /// Records a crash: one more for each series in `keys`, and the report. Returns how
    /// many of those observations did not fit.
    pub(crate) fn crash(&mut self, keys: &[Key], report: CrashReport) -> u64 {
        let mut refused = 0;
        for &key in keys {
            match self.admit(key, 0) {
                Some(series) => series.crashes += 1,
                None => refused += 1,
            }
        }
        if self.crashes.len() < MAX_CRASHES {
            self.crashes.push(report);
        } else {
            refused += 1;
        }
        refused
    }

    /// Takes everything, series in key order.
    pub(crate) fn take(&mut self) -> (Vec<(Key, Series)>, Vec<CrashReport>) {
        let mut series: Vec<(Key, Series)> = std::mem::take(&mut self.series).into_iter().collect();
        series.sort_unstable_by_key(|(key, _)| *key);
        self.used.clear();
        self.total = 0;
        (series, std::mem::take(&mut self.crashes))
    }
}

/// `text` cut to at most `limit` bytes, at a character boundary.
pub(crate) fn truncate(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(start_ms: i64, slot: u32) -> Key {
        Key {
            start_ms,
            table: 1,
            slot,
        }
    }

    #[test]
    fn series_add_up() {
        let mut aggregator = Aggregator::default();
        assert!(aggregator.count(key(0, 1), 5, 1));
        assert!(aggregator.count(key(0, 1), 2, 0));
        assert!(aggregator.latency(key(0, 1), 12.0));
        assert!(aggregator.latency(key(0, 1), 30.0));
        assert!(aggregator.event(key(0, 1), "checkout", 3.0));
        assert!(aggregator.event(key(0, 1), "checkout", 4.0));
        assert!(aggregator.event(key(10_000, 2), "checkout", 1.0));
        assert!(!aggregator.event(key(0, 1), "nan", f64::NAN));
        assert!(!aggregator.latency(key(0, 1), -1.0));
        let (series, crashes) = aggregator.take();
        assert!(crashes.is_empty());
        assert_eq!(series.len(), 2);
        let (first_key, first) = &series[0];
        assert_eq!(*first_key, key(0, 1));
        assert_eq!((first.exposures, first.errors), (7, 1));
        assert_eq!(first.latency.as_ref().map(LatencySketch::count), Some(2));
        let checkout = first.events["checkout"];
        assert_eq!(
            (checkout.count, checkout.sum, checkout.sum_sq),
            (2, 7.0, 25.0)
        );
        assert_eq!(first.observations(), 7 + 1 + 2 + 2);
        assert!(aggregator.take().0.is_empty());
    }

    #[test]
    fn a_full_bucket_refuses_new_series_but_not_existing_ones() {
        let mut aggregator = Aggregator::default();
        for slot in 0..MAX_SERIES_PER_BUCKET as u32 {
            assert!(aggregator.count(key(0, slot), 1, 0));
        }
        assert!(!aggregator.count(key(0, u32::MAX), 1, 0));
        assert!(!aggregator.event(key(0, 0), "new-name", 1.0));
        assert!(aggregator.count(key(0, 0), 1, 0));
        assert!(aggregator.latency(key(0, 0), 1.0));
        // Another bucket has its own budget.
        assert!(aggregator.count(key(10_000, u32::MAX), 1, 0));
        // A crash against a refused series is counted as refused; the report still fits.
        assert_eq!(
            aggregator.crash(&[key(0, 0), key(0, u32::MAX)], CrashReport::default()),
            1
        );
        let (series, crashes) = aggregator.take();
        assert_eq!(series.len(), MAX_SERIES_PER_BUCKET + 1);
        assert_eq!(crashes.len(), 1);
        // After a flush, the budget is free again.
        assert!(aggregator.count(key(0, u32::MAX), 1, 0));
    }

    #[test]
    fn the_total_budget_holds_over_many_buckets() {
        let mut aggregator = Aggregator::default();
        let mut accepted = 0;
        for bucket in 0..10 {
            for slot in 0..MAX_SERIES_PER_BUCKET as u32 {
                accepted += usize::from(aggregator.count(key(bucket * 10_000, slot), 1, 0));
            }
        }
        assert_eq!(accepted, MAX_SERIES);
    }

    #[test]
    fn crash_reports_are_capped() {
        let mut aggregator = Aggregator::default();
        let refused: u64 = (0..MAX_CRASHES + 5)
            .map(|_| aggregator.crash(&[], CrashReport::default()))
            .sum();
        assert_eq!(refused, 5);
        assert_eq!(aggregator.take().1.len(), MAX_CRASHES);
    }

    #[test]
    fn long_event_names_are_cut_at_a_character_boundary() {
        let name = "é".repeat(100);
        let cut = truncate(&name, MAX_EVENT_NAME_BYTES);
        assert_eq!(cut.len(), MAX_EVENT_NAME_BYTES);
        assert_eq!(truncate("ab", 1), "a");
        assert_eq!(truncate("éa", 1), "");
    }
}
