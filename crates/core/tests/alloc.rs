//! Evaluation makes no heap allocation on its success paths, counted by a global allocator.
//!
//! The workloads are those of the benchmarks in `crates/bench`: (a) a boolean flag without
//! rules, and (b) a flag whose rule needs a segment (an `ends_with` condition or an include
//! list), a semver condition and a 10% split. The engine and the contexts are built first;
//! then 10,000 evaluations with varied targeting keys, which hit the split, miss it, match
//! the segment and miss it, must not allocate once, through `Engine::evaluate` or
//! `Engine::boolean`. Allocations are counted per thread, so tests running in parallel on
//! other threads do not disturb the count.

// `GlobalAlloc` is an unsafe trait, and implementing it is the only way to count allocations.
// The implementation below only forwards to the system allocator; nothing else here is unsafe.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use serde_json::json;
use sluice_core::{Context, Engine, Format, Reason, Source};

/// The system allocator, counting allocations made by the current thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with` fails only while the thread is being torn down; nothing is measured then.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; counting touches only a const-initialised thread-local `Cell`,
// which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `alloc`'s contract, which is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` came from this allocator, which is `System`; the rest is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, which is `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns what it returned with the number of allocations it made.
fn allocations_in<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    let after = ALLOCATIONS.with(Cell::get);
    (result, after - before)
}

/// The benchmark flags: (a) `plain`, (b) `targeted`, plus a 50/50 string experiment.
const DEFINITIONS: &str = r#"
segments:
  staff:
    include: ["vip-1", "vip-2"]
    when:
      - { attribute: email, op: ends_with, value: "@example.com" }
flags:
  plain:
    type: boolean
    variants: { "on": true, "off": false }
    default_variant: "on"
  targeted:
    type: boolean
    variants: { "on": true, "off": false }
    default_variant: "off"
    rules:
      - name: staff-on-old-apps
        when:
          - { segment: staff }
          - { attribute: app.version, op: semver_lt, value: "2.0.0" }
        split:
          - { variant: "on", weight: 10000 }
          - { variant: "off", weight: 90000 }
  experiment:
    type: string
    variants: { control: "control", treatment: "treatment" }
    default_variant: control
    rules:
      - split:
          - { variant: control, weight: 50000 }
          - { variant: treatment, weight: 50000 }
"#;

const EVALUATIONS: usize = 10_000;

fn engine() -> Engine {
    Source::parse(Some("alloc.yaml"), DEFINITIONS, Format::Yaml)
        .unwrap()
        .compile(Some("production"))
        .unwrap()
}

/// Contexts with varied keys: most match the segment by email, some by the include list,
/// some not at all; most run an old app, some a new one.
fn contexts() -> Vec<Context> {
    (0..EVALUATIONS)
        .map(|i| {
            let key = match i % 50 {
                0 => "vip-1".to_owned(),
                1 => "vip-2".to_owned(),
                _ => format!("user-{i}"),
            };
            let email = if i % 7 == 0 {
                format!("u{i}@elsewhere.org")
            } else {
                format!("u{i}@example.com")
            };
            let version = if i % 11 == 0 { "2.3.0" } else { "1.9.4" };
            Context::with_key(key)
                .set("email", email)
                .set("app", json!({ "version": version, "build": i }))
        })
        .collect()
}

/// How the targeted flag's evaluations fell, to show the paths were all exercised.
#[derive(Debug, Default)]
struct Paths {
    split_on: usize,
    split_off: usize,
    segment_matched: usize,
    no_match: usize,
}

#[test]
fn evaluate_does_not_allocate() {
    let engine = engine();
    let contexts = contexts();
    let (paths, allocations) = allocations_in(|| {
        let mut paths = Paths::default();
        for context in &contexts {
            let plain = engine.evaluate("plain", context);
            assert_eq!(plain.reason, Reason::Static);
            let targeted = engine.evaluate("targeted", context);
            match (targeted.reason, targeted.variant) {
                (Reason::Split, Some("on")) => paths.split_on += 1,
                (Reason::Split, _) => paths.split_off += 1,
                (Reason::Default, _) => paths.no_match += 1,
                (other, _) => panic!("unexpected reason {other:?}"),
            }
            if targeted.segment == Some("staff") {
                paths.segment_matched += 1;
            }
        }
        paths
    });
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in {EVALUATIONS} × 2 evaluations"
    );
    assert!(paths.split_on > EVALUATIONS / 20, "{paths:?}");
    assert!(paths.split_off > EVALUATIONS / 2, "{paths:?}");
    assert!(paths.no_match > EVALUATIONS / 10, "{paths:?}");
    assert_eq!(
        paths.segment_matched,
        paths.split_on + paths.split_off,
        "{paths:?}"
    );
}

#[test]
fn boolean_does_not_allocate() {
    let engine = engine();
    let contexts = contexts();
    let ((on, included), allocations) = allocations_in(|| {
        let (mut on, mut included) = (0, 0);
        for context in &contexts {
            let plain = engine.boolean("plain", context, false);
            assert!(plain.value);
            let targeted = engine.boolean("targeted", context, false);
            assert_eq!(targeted.error(), None);
            on += usize::from(targeted.value);
            // Keys on the include list match the segment whatever their email.
            let key = context.targeting_key().unwrap_or_default();
            included += usize::from(key.starts_with("vip-") && targeted.details.segment.is_some());
        }
        (on, included)
    });
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in {EVALUATIONS} × 2 evaluations"
    );
    assert!(
        on > EVALUATIONS / 20 && on < EVALUATIONS / 5,
        "{on} served on"
    );
    assert!(included > 0, "no included key matched the segment");
}

#[test]
fn typed_accessors_and_bulk_evaluation_do_not_allocate() {
    let engine = engine();
    let contexts = contexts();
    let (treatments, allocations) = allocations_in(|| {
        let mut treatments = 0;
        for context in contexts.iter().take(1_000) {
            let variant = engine.string("experiment", context, "control");
            treatments += usize::from(variant.value == "treatment");
            assert_eq!(engine.evaluate_all(context).count(), 3);
        }
        treatments
    });
    assert_eq!(allocations, 0);
    assert!(
        (400..600).contains(&treatments),
        "{treatments} of 1000 in treatment"
    );

    // Collecting the results allocates their vector, and nothing else.
    let (results, allocations) =
        allocations_in(|| engine.evaluate_all(&contexts[0]).collect::<Vec<_>>());
    assert_eq!(results.len(), 3);
    assert_eq!(allocations, 1);
}

#[test]
fn the_counter_sees_allocations() {
    let (text, allocations) = allocations_in(|| format!("{}", 12_345));
    assert_eq!(text, "12345");
    assert_eq!(allocations, 1);
    // An error path may allocate its message: an unknown flag does.
    let engine = engine();
    let context = Context::with_key("user-1");
    let (missing, allocations) = allocations_in(|| engine.evaluate("missing", &context).error);
    assert!(missing.is_some());
    assert!(allocations > 0);
}
