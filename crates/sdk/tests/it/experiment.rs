//! Shadow experiments in file mode: the control's result always wins, whatever the candidate
//! does, and a background candidate never delays it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice::experiment::Outcome;
use sluice::{Context, ExperimentResult};

use crate::{client_for, wait_until};

const FLAGS: &str = r#"
flags:
  pricing-v2:
    type: boolean
    variants: { on: true, off: false }
    default_variant: on
  pricing-off:
    type: boolean
    variants: { on: true, off: false }
    default_variant: off
  pricing-split:
    type: string
    variants: { candidate: candidate, control: control }
    default_variant: control
    rules:
      - split: [{ variant: candidate, weight: 30000 }, { variant: control, weight: 70000 }]
"#;

fn user(i: usize) -> Context {
    Context::with_key(format!("user-{i}").as_str())
}

type Published = Arc<Mutex<Vec<ExperimentResult>>>;

fn collector() -> (
    Published,
    impl Fn(&ExperimentResult) + Send + Sync + Clone + 'static,
) {
    let published: Published = Arc::default();
    let sink = Arc::clone(&published);
    (published, move |result: &ExperimentResult| {
        sink.lock().unwrap().push(result.clone())
    })
}

fn outcomes(published: &Published) -> Vec<Outcome> {
    published
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.outcome.clone())
        .collect()
}

#[test]
fn inline_the_control_wins_whatever_the_candidate_does() {
    let (_dir, _path, client) = client_for(FLAGS);
    let (published, publish) = collector();
    let ctx = user(1);

    let same = client
        .experiment("pricing-v2")
        .control(|| 10)
        .candidate(|| 10)
        .compare_eq()
        .publish(publish.clone())
        .run(&ctx);
    let different = client
        .experiment("pricing-v2")
        .control(|| 10)
        .candidate(|| 11)
        .compare_eq()
        .clean_debug()
        .publish(publish.clone())
        .run(&ctx);
    let panicking = client
        .experiment("pricing-v2")
        .control(|| 10)
        .candidate(|| -> i32 { panic!("candidate broke") })
        .compare_eq()
        .publish(publish.clone())
        .run(&ctx);
    let slow = client
        .experiment("pricing-v2")
        .control(|| 10)
        .candidate(|| {
            std::thread::sleep(Duration::from_millis(60));
            99
        })
        .compare_eq()
        .timeout(Duration::from_millis(10))
        .publish(publish.clone())
        .run(&ctx);
    let waived = client
        .experiment("pricing-v2")
        .control(|| 1.000)
        .candidate(|| 1.004)
        .compare(|a, b| a == b)
        .ignore(|a: &f64, b: &f64| (a - b).abs() < 0.005)
        .publish(publish)
        .run(&ctx);

    assert_eq!((same, different, panicking, slow), (10, 10, 10, 10));
    assert_eq!(waived, 1.000);
    assert_eq!(
        outcomes(&published),
        vec![
            Outcome::Match,
            Outcome::Mismatch,
            Outcome::CandidateError("candidate broke".into()),
            Outcome::CandidateTimeout,
            Outcome::Ignored,
        ]
    );
    let results = published.lock().unwrap();
    assert!(results[0].candidate.is_some());
    assert!(results[3].candidate.is_none(), "a late result is discarded");
}

#[test]
fn the_flag_decides_who_is_shadowed_and_it_is_sticky() {
    let (_dir, _path, client) = client_for(FLAGS);
    let ran = AtomicUsize::new(0);
    let shadowed = |key: &str, i: usize| {
        let before = ran.load(Ordering::Relaxed);
        let value = client
            .experiment(key)
            .control(|| "old")
            .candidate(|| {
                ran.fetch_add(1, Ordering::Relaxed);
                "new"
            })
            .compare_eq()
            .run(&user(i));
        assert_eq!(value, "old");
        ran.load(Ordering::Relaxed) > before
    };
    assert!((0..50).all(|i| !shadowed("pricing-off", i)));
    assert!((0..50).all(|i| !shadowed("missing-flag", i)));
    let first: Vec<bool> = (0..2_000).map(|i| shadowed("pricing-split", i)).collect();
    let again: Vec<bool> = (0..2_000).map(|i| shadowed("pricing-split", i)).collect();
    assert_eq!(first, again, "the same contexts are shadowed every time");
    let share = first.iter().filter(|s| **s).count() as f64 / 2_000.0;
    assert!((0.26..0.34).contains(&share), "{share}");
    // Without a comparator the candidate never runs.
    let before = ran.load(Ordering::Relaxed);
    client
        .experiment("pricing-v2")
        .control(|| 1)
        .candidate(|| {
            ran.fetch_add(1, Ordering::Relaxed);
            2
        })
        .run(&user(1));
    assert_eq!(ran.load(Ordering::Relaxed), before);
}

#[test]
fn the_noise_floor_runs_the_control_twice_and_marks_disagreements_noisy() {
    let (_dir, _path, client) = client_for(FLAGS);
    let (published, publish) = collector();
    let counter = AtomicUsize::new(0);
    for i in 0..20 {
        let value = client
            .experiment("pricing-v2")
            // Nondeterministic: each call differs.
            .control(|| counter.fetch_add(1, Ordering::Relaxed))
            .candidate(|| usize::MAX)
            .compare_eq()
            .noise_floor(1.0)
            .publish(publish.clone())
            .run(&user(i));
        assert!(value < usize::MAX);
    }
    let results = published.lock().unwrap();
    assert_eq!(results.len(), 20);
    assert!(results.iter().all(|r| r.outcome == Outcome::Noisy));
    assert!(results.iter().all(|r| r.noise_matched == Some(false)));
    drop(results);
    // A deterministic control has no noise: the candidate is judged.
    let (published, publish) = collector();
    client
        .experiment("pricing-v2")
        .control(|| 5)
        .candidate(|| 6)
        .compare_eq()
        .noise_floor(1.0)
        .publish(publish)
        .run(&user(1));
    let results = published.lock().unwrap();
    assert_eq!(results[0].outcome, Outcome::Mismatch);
    assert_eq!(results[0].noise_matched, Some(true));
}

#[test]
fn in_the_background_a_hanging_or_panicking_candidate_never_delays_or_changes_the_control() {
    let (_dir, _path, client) = client_for(FLAGS);
    let (published, publish) = collector();
    let mut slowest = Duration::ZERO;
    for i in 0..4 {
        let started = Instant::now();
        let value = client
            .experiment_async("pricing-v2")
            .control(|| 7)
            .candidate(|| {
                std::thread::sleep(Duration::from_secs(3));
                8
            })
            .compare_eq()
            .timeout(Duration::from_millis(50))
            .publish(publish.clone())
            .run(&user(i));
        slowest = slowest.max(started.elapsed());
        assert_eq!(value, 7);
    }
    let started = Instant::now();
    let value = client
        .experiment_async("pricing-v2")
        .control(|| 7)
        .candidate(|| -> i32 { panic!("background candidate broke") })
        .compare_eq()
        .publish(publish.clone())
        .run(&user(9));
    slowest = slowest.max(started.elapsed());
    assert_eq!(value, 7);
    let value = client
        .experiment_async("pricing-v2")
        .control(|| 7)
        .candidate(|| 70)
        .compare_eq()
        .publish(publish)
        .run(&user(10));
    assert_eq!(value, 7);
    // The control path waited for none of the 3-second candidates.
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");
    assert!(
        wait_until(Duration::from_secs(5), || published.lock().unwrap().len()
            == 6),
        "{:?}",
        outcomes(&published)
    );
    let got = outcomes(&published);
    assert_eq!(
        got.iter()
            .filter(|o| **o == Outcome::CandidateTimeout)
            .count(),
        4,
        "{got:?}"
    );
    assert!(got.contains(&Outcome::CandidateError(
        "background candidate broke".into()
    )));
    assert!(got.contains(&Outcome::Mismatch));
}

#[test]
fn a_full_background_queue_drops_and_counts() {
    let (_dir, _path, client) = client_for(FLAGS);
    let (published, publish) = collector();
    let total = sluice::experiment::QUEUE_CAPACITY + sluice::experiment::WORKERS + 200;
    let started = Instant::now();
    for i in 0..total {
        let value = client
            .experiment_async("pricing-v2")
            .control(|| 1)
            .candidate(|| {
                std::thread::sleep(Duration::from_millis(200));
                1
            })
            .compare_eq()
            .timeout(Duration::from_secs(5))
            .publish(publish.clone())
            .run(&user(i));
        assert_eq!(value, 1);
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    let dropped = outcomes(&published)
        .iter()
        .filter(|o| **o == Outcome::Dropped)
        .count();
    assert!(dropped >= 200, "{dropped}");
}
