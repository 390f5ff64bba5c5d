//! Rate limits on OFREP evaluation: 429 with `Retry-After` in whole seconds.
//!
//! Each token, from each client address, gets its own GCRA bucket (the `governor` crate):
//! `--rate-limit` evaluation requests per second with a burst of the same size. Keying by
//! token and address means one runaway process cannot starve every other user of a client
//! token that many browsers share, and a limit of 0 turns the check off. A single bulk
//! request counts once, however many flags it evaluates.
//!
//! The default, 1,000 requests a second per token and address, is far above what an OFREP
//! client polling or following the event stream needs, and below what a loop gone wrong
//! produces. A backend that evaluates per request over OFREP should raise it, or better use
//! an SDK that evaluates in-process.
//!
//! The limiter's memory grows with the callers it has seen; [`RateLimits::shrink`] forgets
//! the ones whose buckets are full again, and the server calls it every minute.

use std::hash::BuildHasher as _;
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::http::error::ApiError;

/// The default limit: requests per second per token and client address.
pub const DEFAULT_RATE_LIMIT: u32 = 1_000;

/// The caller a bucket belongs to: a hash of the token id, and the client address.
type Key = (u64, Option<IpAddr>);

/// The evaluation rate limiter; a no-op when the limit is 0.
#[derive(Debug)]
pub struct RateLimits {
    limiter: Option<DefaultKeyedRateLimiter<Key>>,
    hasher: foldhash::fast::FixedState,
}

impl RateLimits {
    /// Allows `per_second` requests a second per token and address, in bursts of as many.
    pub fn new(per_second: u32) -> RateLimits {
        RateLimits {
            limiter: NonZeroU32::new(per_second)
                .map(|rate| DefaultKeyedRateLimiter::keyed(Quota::per_second(rate))),
            hasher: foldhash::fast::FixedState::with_seed(0x51u64),
        }
    }

    /// Counts one request by `token_id` from `address`; refuses it when over the limit.
    pub fn check(&self, token_id: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let key = (self.hasher.hash_one(token_id), address);
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Whole seconds, rounded up, and never 0: `Retry-After: 0` invites a storm.
            let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::TooManyRequests {
                retry_after: retry_after.max(1),
            }
        })
    }

    /// Forgets callers whose buckets have refilled.
    pub fn shrink(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_next_request_waits_whole_seconds() {
        let limits = RateLimits::new(5);
        let address = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..5 {
            limits.check("tok_a", address).unwrap();
        }
        match limits.check("tok_a", address) {
            Err(ApiError::TooManyRequests { retry_after }) => assert_eq!(retry_after, 1),
            other => panic!("expected 429, got {other:?}"),
        }
        // Another token, or the same token from another address, has its own bucket.
        limits.check("tok_b", address).unwrap();
        limits
            .check("tok_a", Some(IpAddr::from([127, 0, 0, 2])))
            .unwrap();
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limits = RateLimits::new(0);
        for _ in 0..10_000 {
            limits.check("tok_a", None).unwrap();
        }
        limits.shrink();
    }
}
