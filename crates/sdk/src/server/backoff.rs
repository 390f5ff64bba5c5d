//! Reconnect delays: exponential from 1 s to a 30 s cap, with jitter in [d/2, d].
//!
//! [`Backoff`] is pure: it is handed a number in [0, 1) for each delay rather than drawing
//! one, so its tests fix the randomness and production passes [`Jitter::next_unit`]. Halving
//! jitter keeps a fleet of clients that lost the same server from reconnecting in step, while
//! never waiting less than half the nominal delay.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// The first reconnect delay, before jitter.
pub(crate) const INITIAL: Duration = Duration::from_secs(1);
/// The longest reconnect delay, before jitter.
pub(crate) const CAP: Duration = Duration::from_secs(30);
/// How long a stream must stay healthy for the delay to start again from [`INITIAL`].
pub(crate) const HEALTHY: Duration = Duration::from_secs(60);

/// The delay before each reconnect attempt.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    cap: Duration,
    /// Failed attempts since the last reset.
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, cap: Duration) -> Backoff {
        Backoff {
            initial,
            cap: cap.max(initial),
            failures: 0,
        }
    }

    /// The nominal delay for the next attempt, before jitter: `initial × 2^failures`, capped.
    pub(crate) fn nominal(&self) -> Duration {
        let factor = 1_u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.cap)
    }

    /// The delay before the next attempt, `d/2 + unit × d/2` for the nominal delay `d`, and
    /// counts a failure. `unit` is a uniform draw from [0, 1); it is clamped into that range.
    pub(crate) fn next_delay(&mut self, unit: f64) -> Duration {
        let nominal = self.nominal();
        self.failures = self.failures.saturating_add(1);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = nominal / 2;
        half + half.mul_f64(unit)
    }

    /// Starts again from the initial delay, after a healthy stretch.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A small pseudo-random source for jitter (SplitMix64), seeded per client from the
/// standard library's random hasher keys. Jitter needs spread, not secrecy.
#[derive(Debug, Clone)]
pub(crate) struct Jitter {
    state: u64,
}

impl Jitter {
    pub(crate) fn from_entropy() -> Jitter {
        Jitter {
            state: RandomState::new().hash_one(std::process::id()),
        }
    }

    /// A uniform draw from [0, 1).
    pub(crate) fn next_unit(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits, as a fraction of 2^53.
        (z >> 11) as f64 / (1_u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    #[test]
    fn delays_double_from_one_second_to_the_cap() {
        let mut backoff = Backoff::new(INITIAL, CAP);
        let nominal: Vec<u64> = (0..8)
            .map(|_| {
                let nominal = backoff.nominal().as_secs();
                backoff.next_delay(0.5);
                nominal
            })
            .collect();
        assert_eq!(nominal, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn jitter_spans_half_to_all_of_the_nominal_delay() {
        let mut backoff = Backoff::new(INITIAL, CAP);
        assert_eq!(backoff.next_delay(0.0), secs(0.5));
        let mut backoff = Backoff::new(INITIAL, CAP);
        assert_eq!(backoff.next_delay(0.75), secs(0.875));
        let mut backoff = Backoff::new(INITIAL, CAP);
        backoff.next_delay(0.0);
        assert_eq!(backoff.next_delay(0.5), secs(1.5));
        // Out-of-range draws are clamped, never negative or beyond the nominal delay.
        let mut backoff = Backoff::new(INITIAL, CAP);
        assert_eq!(backoff.next_delay(-3.0), secs(0.5));
        let mut backoff = Backoff::new(INITIAL, CAP);
        assert_eq!(backoff.next_delay(7.0), secs(1.0));
        let mut backoff = Backoff::new(INITIAL, CAP);
        assert_eq!(backoff.next_delay(f64::NAN), secs(0.5));
    }

    #[test]
    fn capped_delays_stay_within_15_and_30_seconds() {
        let mut backoff = Backoff::new(INITIAL, CAP);
        let mut jitter = Jitter { state: 42 };
        for attempt in 0..200 {
            let delay = backoff.next_delay(jitter.next_unit());
            if attempt >= 5 {
                assert!(delay >= secs(15.0) && delay <= secs(30.0), "{delay:?}");
            }
        }
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut backoff = Backoff::new(INITIAL, CAP);
        for _ in 0..100_000 {
            backoff.next_delay(1.0);
        }
        assert_eq!(backoff.nominal(), CAP);
    }

    #[test]
    fn reset_starts_again_from_the_initial_delay() {
        let mut backoff = Backoff::new(INITIAL, CAP);
        for _ in 0..6 {
            backoff.next_delay(0.3);
        }
        backoff.reset();
        assert_eq!(backoff.nominal(), INITIAL);
        assert_eq!(backoff.next_delay(0.0), secs(0.5));
    }

    #[test]
    fn jitter_is_uniform_enough() {
        let mut jitter = Jitter { state: 7 };
        let mut buckets = [0_u32; 10];
        for _ in 0..100_000 {
            let unit = jitter.next_unit();
            assert!((0.0..1.0).contains(&unit));
            buckets[(unit * 10.0) as usize] += 1;
        }
        for count in buckets {
            assert!((9_500..10_500).contains(&count), "{buckets:?}");
        }
    }
}
