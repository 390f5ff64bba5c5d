//! Rollback drill timings: time-to-kill percentiles over the instances that acknowledged.

use serde::{Deserialize, Serialize};

/// Time-to-kill over the instances that acknowledged, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillTimings {
    /// Instances that acknowledged.
    pub acknowledged: usize,
    /// The median, by nearest rank.
    pub p50_ms: i64,
    /// The 99th percentile, by nearest rank.
    pub p99_ms: i64,
    /// The slowest.
    pub max_ms: i64,
}

impl DrillTimings {
    /// Timings from each acknowledging instance's time-to-kill; `None` when none acknowledged.
    pub fn from_times(times_ms: &[i64]) -> Option<DrillTimings> {
        let mut sorted = times_ms.to_vec();
        sorted.sort_unstable();
        Some(DrillTimings {
            acknowledged: sorted.len(),
            p50_ms: percentile(&sorted, 50)?,
            p99_ms: percentile(&sorted, 99)?,
            max_ms: *sorted.last()?,
        })
    }
}

/// The `p`th percentile of `sorted` (ascending) by nearest rank: the smallest value with at
/// least `p`% of the values at or below it. `None` for no values.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (usize::try_from(p.min(100)).unwrap_or(100) * n)
        .div_ceil(100)
        .max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 99), Some(4));
        let hundred: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 50), Some(50));
        assert_eq!(percentile(&hundred, 99), Some(99));
        assert_eq!(percentile(&hundred, 0), Some(1));
    }

    #[test]
    fn timings_sort_their_input() {
        let timings = DrillTimings::from_times(&[300, 100, 200]).unwrap();
        assert_eq!(
            timings,
            DrillTimings {
                acknowledged: 3,
                p50_ms: 200,
                p99_ms: 300,
                max_ms: 300
            }
        );
        assert_eq!(DrillTimings::from_times(&[]), None);
    }
}
