//! The A/B report's error rates over seeded simulated experiments, read at 20 looks each.

use sluice_core::ab::Verdict;
use sluice_core::ab::simulate::{AbSettings, run_many, summarise};

#[test]
fn aa_runs_call_a_winner_or_loser_at_most_five_percent_of_the_time() {
    let settings = AbSettings::new(0.1, 0.0, 0.1).expect("settings");
    let results = run_many(&settings, 42, 400);
    let summary = summarise(&settings, &results);
    assert_eq!(summary.runs, 400);
    assert!(
        summary.false_call_rate <= 0.05,
        "false calls {} of 400",
        summary.winners + summary.losers
    );
    // SRM at p < 0.001 over 20 looks: rare under a fair split.
    // The SRM test is sequential at α = 0.001: at most 0.1% of runs in expectation.
    assert!(summary.srm <= 2, "{} SRM stops", summary.srm);
}

#[test]
fn a_ten_percent_lift_is_found_at_least_at_the_expected_power() {
    let settings = AbSettings::new(0.1, 0.1, 0.1).expect("settings");
    let results = run_many(&settings, 7, 200);
    let summary = summarise(&settings, &results);
    assert!(summary.expected_power >= 0.8);
    // The upper end of the observed power's 95% interval reaches the expected power.
    assert!(
        summary.winner_rate_interval.1 >= summary.expected_power,
        "power {} ({:?}) below expected {}",
        summary.winner_rate,
        summary.winner_rate_interval,
        summary.expected_power
    );
    assert!(results.iter().all(|r| r.verdict != Verdict::Loser));
}
