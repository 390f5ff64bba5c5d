//! Cohorts of desktop releases over 100,000 simulated installs: shares within ±0.5 pp,
//! fresh cohorts per release, monotonic ramps, halts that stop offers at once, and the
//! fallback to the channel's newest complete release.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use sluice_core::apps::{
    Arch, Artifact, Install, Os, Release, ReleaseCommand, ReleaseSpec, ReleaseState, Share,
    apply_command, in_cohort, is_newer, offer,
};

const INSTALLS: usize = 100_000;
const SHA: &str =
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";

/// Install ids like electron-updater's: random UUIDs, here from a fixed generator.
fn install_ids() -> Vec<String> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..INSTALLS)
        .map(|_| {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let (a, b) = (next(), next());
            format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                b >> 52,
                b & 0xffff_ffff_ffff
            )
        })
        .collect()
}

fn release(version: &str, salt: &str, percent: f64) -> Release {
    let spec = ReleaseSpec {
        channel: "stable".into(),
        version: version.into(),
        artifacts: vec![Artifact {
            os: Os::Macos,
            arch: Arch::Arm64,
            url: format!("https://dl.example.com/app-{version}.zip"),
            size: 1,
            sha512: SHA.into(),
            signature: None,
        }],
        notes: None,
        pub_date: None,
        percent: Some(Share::from_percent(percent).unwrap()),
        allow_manual: false,
        plan: None,
    };
    Release::new(&spec, salt.into(), 0, 0)
}

fn cohort(release: &Release, ids: &[String]) -> Vec<bool> {
    ids.iter().map(|id| in_cohort(release, Some(id))).collect()
}

#[test]
fn the_cohort_share_matches_the_percentage_within_half_a_point() {
    let ids = install_ids();
    for percent in [0.1, 1.0, 5.0, 10.0, 25.0, 50.0, 90.0] {
        let release = release("2.0.0", "rel_share", percent);
        let inside = cohort(&release, &ids).iter().filter(|&&c| c).count();
        let share = inside as f64 * 100.0 / INSTALLS as f64;
        assert!(
            (share - percent).abs() <= 0.5,
            "{percent}%: {share:.3}% of installs are in the cohort"
        );
    }
    // 0.1% is a real cohort, not 0 (electron-builder#3891).
    let tenth = release("2.0.0", "rel_tenth", 0.1);
    let inside = cohort(&tenth, &ids).iter().filter(|&&c| c).count();
    assert!((50..=150).contains(&inside), "{inside} installs at 0.1%");
    let none = release("2.0.0", "rel_none", 0.0);
    assert!(cohort(&none, &ids).iter().all(|&c| !c));
}

#[test]
fn each_release_draws_a_fresh_cohort() {
    let ids = install_ids();
    let first = cohort(&release("2.0.0", "rel_a", 10.0), &ids);
    let second = cohort(&release("2.1.0", "rel_b", 10.0), &ids);
    let both = first
        .iter()
        .zip(&second)
        .filter(|(a, b)| **a && **b)
        .count();
    let early_in_first = first.iter().filter(|&&c| c).count();
    // Independent cohorts overlap by about 10% of 10%: 1% of installs, not 10%.
    let overlap = both as f64 / early_in_first as f64;
    assert!(
        (0.07..0.13).contains(&overlap),
        "{:.1}% of the first cohort is in the second",
        overlap * 100.0
    );
}

#[test]
fn installs_without_an_id_are_outside_partial_cohorts() {
    let partial = release("2.0.0", "rel_x", 99.999);
    assert!(!in_cohort(&partial, None));
    assert!(!in_cohort(&partial, Some("")));
    let complete = release("2.0.0", "rel_x", 100.0);
    assert!(in_cohort(&complete, None));
}

#[test]
fn halting_stops_new_offers_at_once_and_outsiders_get_the_previous_complete_release() {
    let ids = install_ids();
    let stable = release("1.0.0", "rel_old", 100.0);
    assert_eq!(stable.state, ReleaseState::Complete);
    let rolling = release("1.1.0", "rel_new", 30.0);
    let pulled = apply_command(
        &release("0.9.0", "rel_pulled", 100.0),
        ReleaseCommand::Pull,
        1,
    )
    .unwrap();
    let channel = vec![pulled.clone(), stable.clone(), rolling.clone()];
    let mut offered_new = 0;
    for id in &ids {
        let install = Install {
            id: Some(id),
            manual: false,
        };
        let got = offer(&channel, &install, |_| true).unwrap();
        assert_ne!(got.version, "0.9.0", "a pulled release is never offered");
        if in_cohort(&rolling, Some(id)) {
            assert_eq!(got.version, "1.1.0");
            offered_new += 1;
        } else {
            assert_eq!(got.version, "1.0.0");
        }
    }
    assert!(offered_new > 29_000, "{offered_new}");

    let halted = apply_command(&rolling, ReleaseCommand::Halt, 2).unwrap();
    let channel = vec![pulled, stable, halted];
    for id in &ids {
        let install = Install {
            id: Some(id),
            manual: true,
        };
        let got = offer(&channel, &install, |_| true).unwrap();
        assert_eq!(
            got.version, "1.0.0",
            "a halted release is offered to nobody"
        );
    }
}

#[test]
fn a_manual_check_bypasses_staging_only_when_the_release_allows_it() {
    let stable = release("1.0.0", "rel_old", 100.0);
    let mut rolling = release("1.1.0", "rel_new", 0.0);
    let manual = Install {
        id: Some("install-1"),
        manual: true,
    };
    let channel = vec![stable.clone(), rolling.clone()];
    assert_eq!(offer(&channel, &manual, |_| true).unwrap().version, "1.0.0");
    rolling.allow_manual = true;
    let channel = vec![stable, rolling];
    assert_eq!(offer(&channel, &manual, |_| true).unwrap().version, "1.1.0");
    let background = Install {
        id: Some("install-1"),
        manual: false,
    };
    assert_eq!(
        offer(&channel, &background, |_| true).unwrap().version,
        "1.0.0"
    );
}

#[test]
fn newer_means_semver_precedence() {
    let release = release("1.10.0", "s", 100.0);
    assert!(is_newer(&release, "1.9.3"));
    assert!(!is_newer(&release, "1.10.0"));
    assert!(is_newer(&release, "1.10.0-beta.1"));
    assert!(!is_newer(&release, "v2.0.0"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Raising the share never removes an install from the cohort.
    #[test]
    fn raising_the_share_never_removes_an_install(
        low in 0u32..=100_000,
        raise in 0u32..=100_000,
        ids in proptest::collection::vec("[a-z0-9-]{1,36}", 1..200),
    ) {
        let high = (low + raise).min(100_000);
        let before = release("3.0.0", "rel_ramp", f64::from(low) / 1000.0);
        let after = apply_command(
            &before,
            ReleaseCommand::Promote { share: Some(Share::from_weight(high).unwrap()) },
            1,
        ).unwrap();
        for id in &ids {
            if in_cohort(&before, Some(id)) {
                prop_assert!(in_cohort(&after, Some(id)), "{id} left the cohort going {low} -> {high}");
            }
        }
    }
}
