//! Sticky bucketing: the same salt and key always land in the same one of 100,000 buckets.
//!
//! The bucket is `(murmur3_x86_32(salt ‖ ":" ‖ key, seed 0) × 100,000) >> 32`. The
//! multiply-shift maps the 32-bit hash onto the buckets in order, so there is no modulo
//! skew towards low buckets, and a key's bucket never depends on the weights. A split
//! serves the arm whose cumulative weight first exceeds the bucket, which makes ramps
//! monotonic: a key served the first arm at 10% is still served it at 50%.

use crate::model::WEIGHT_TOTAL;
use crate::murmur3::Murmur3;

/// The bucket, in `0..100_000`, of `key` under `salt`.
#[inline]
pub fn bucket(salt: &str, key: &str) -> u32 {
    bucket_after(&prefix(salt), key)
}

/// The hasher state after `salt ‖ ":"`, which every key bucketed under `salt` starts with.
///
/// An engine computes it once per flag, so evaluation only hashes the key.
pub fn prefix(salt: &str) -> Murmur3 {
    let mut hasher = Murmur3::new(0);
    hasher.write(salt.as_bytes());
    hasher.write(b":");
    hasher
}

/// The bucket of `key` under the salt that `prefix` was made from: the same as [`bucket`].
#[inline]
pub fn bucket_after(prefix: &Murmur3, key: &str) -> u32 {
    let mut hasher = prefix.clone();
    hasher.write(key.as_bytes());
    scale(hasher.finish(), WEIGHT_TOTAL)
}

/// Maps a 32-bit hash onto `0..total` in order.
#[inline]
pub fn scale(hash: u32, total: u32) -> u32 {
    ((u64::from(hash) * u64::from(total)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_stay_in_range_at_the_extremes() {
        assert_eq!(scale(0, WEIGHT_TOTAL), 0);
        assert_eq!(scale(u32::MAX, WEIGHT_TOTAL), WEIGHT_TOTAL - 1);
        assert_eq!(scale(u32::MAX / 2, 100), 49);
    }

    #[test]
    fn prefixed_bucket_matches_the_whole_hash() {
        for salt in ["", "a", "ab", "abc", "abcd", "new-checkout", "flag-b"] {
            let prefix = prefix(salt);
            for i in 0..50 {
                let key = "k".repeat(i % 9) + &i.to_string();
                let whole = crate::murmur3::murmur3_32(format!("{salt}:{key}").as_bytes(), 0);
                assert_eq!(bucket_after(&prefix, &key), scale(whole, WEIGHT_TOTAL));
                assert_eq!(bucket(salt, &key), scale(whole, WEIGHT_TOTAL));
            }
        }
    }

    #[test]
    fn salt_changes_the_bucket() {
        let differing = (0..100)
            .filter(|i| {
                let key = format!("user-{i}");
                bucket("flag-a", &key) != bucket("flag-b", &key)
            })
            .count();
        assert!(differing > 95, "only {differing} of 100 keys moved");
    }
}
