//! Bucketing properties: frozen golden vectors, uniformity, independence between flags,
//! and monotonic ramps through the engine's splits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sluice_core::bucket::bucket;
use sluice_core::{Context, Format, Source};

/// A small deterministic generator (SplitMix64), so the tests need no randomness source.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Golden {
    salt: String,
    key: String,
    bucket: u32,
}

fn golden_inputs() -> Vec<(String, String)> {
    let mut rng = SplitMix(2026);
    let salts = [
        "new-checkout",
        "pricing-v2",
        "search.ranking",
        "dark_mode",
        "a",
        "",
    ];
    let mut inputs = Vec::new();
    for i in 0..1000 {
        let salt = salts[i % salts.len()].to_owned();
        let key = match i % 4 {
            0 => format!("user-{}", rng.below(1_000_000)),
            1 => format!(
                "{:032x}",
                u128::from(rng.next()) << 64 | u128::from(rng.next())
            ),
            2 => format!("acct_{}@example.com", rng.below(10_000)),
            _ => "é✓-ünïcode-".repeat(1 + (i % 3)),
        };
        inputs.push((salt, key));
    }
    inputs
}

/// The reference: murmur3 x86_32 (seed 0) over the concatenation, multiplied onto 100,000.
fn reference_bucket(salt: &str, key: &str) -> u32 {
    let text = format!("{salt}:{key}");
    let hash = murmur3::murmur3_32(&mut text.as_bytes(), 0).unwrap();
    ((u64::from(hash) * 100_000) >> 32) as u32
}

#[test]
fn golden_vectors_are_frozen() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bucket_golden.json");
    let actual: Vec<Golden> = golden_inputs()
        .into_iter()
        .map(|(salt, key)| Golden {
            bucket: bucket(&salt, &key),
            salt,
            key,
        })
        .collect();
    for vector in &actual {
        assert_eq!(vector.bucket, reference_bucket(&vector.salt, &vector.key));
    }
    if std::env::var_os("SLUICE_BLESS").is_some() {
        fs::write(&path, serde_json::to_string_pretty(&actual).unwrap()).unwrap();
    }
    let frozen: Vec<Golden> = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(frozen.len(), 1000);
    assert_eq!(frozen, actual, "bucketing changed: every user would move");
}

#[test]
fn one_million_keys_spread_evenly_over_100_buckets() {
    let mut counts = [0u64; 100];
    let n = 1_000_000u64;
    for i in 0..n {
        let b = bucket("uniformity", &format!("user-{i}"));
        counts[(b / 1000) as usize] += 1;
    }
    let expected = n as f64 / 100.0;
    let chi2: f64 = counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    // 148.2 is the 99.9th percentile of χ² with 99 degrees of freedom.
    assert!(chi2 < 148.2, "χ² = {chi2}");
}

#[test]
fn two_flags_at_fifty_percent_overlap_a_quarter() {
    let n = 1_000_000u64;
    let both = (0..n)
        .filter(|i| {
            let key = format!("user-{i}");
            bucket("flag-one", &key) < 50_000 && bucket("flag-two", &key) < 50_000
        })
        .count();
    let share = both as f64 / n as f64 * 100.0;
    assert!((share - 25.0).abs() < 0.5, "overlap {share:.3}%");
}

fn ramp_engine(weight: u32) -> sluice_core::Engine {
    let text = format!(
        "flags:\n  ramp:\n    type: boolean\n    variants: {{ \"on\": true, \"off\": false }}\n    default_variant: \"off\"\n    rules:\n      - split:\n          - {{ variant: \"on\", weight: {weight} }}\n          - {{ variant: \"off\", weight: {} }}\n",
        100_000 - weight
    );
    Source::parse(None, &text, Format::Yaml)
        .unwrap()
        .compile(None)
        .unwrap()
}

#[test]
fn ramping_up_never_drops_a_key() {
    let mut rng = SplitMix(7);
    let keys: Vec<Context> = (0..100_000)
        .map(|i| Context::with_key(format!("k{i}-{}", rng.next())))
        .collect();
    let mut violations = 0;
    let mut checked_in = 0;
    for _ in 0..5 {
        let p1 = rng.below(100_000) as u32;
        let p2 = p1 + rng.below(u64::from(100_000 - p1)) as u32 + 1;
        let (low, high) = (ramp_engine(p1), ramp_engine(p2.min(100_000)));
        for context in &keys {
            if low.boolean("ramp", context, false).value {
                checked_in += 1;
                if !high.boolean("ramp", context, false).value {
                    violations += 1;
                }
            }
        }
    }
    assert!(
        checked_in > 1000,
        "the ramps let too few keys in to prove anything"
    );
    assert_eq!(violations, 0);
}

#[test]
fn split_share_matches_weight() {
    let engine = ramp_engine(10_000);
    let on = (0..100_000)
        .filter(|i| {
            engine
                .boolean("ramp", &Context::with_key(format!("u{i}")), false)
                .value
        })
        .count();
    let share = on as f64 / 1000.0;
    assert!((share - 10.0).abs() < 0.3, "10% split served {share:.2}%");
}
