//! Runs flagd-testbed's evaluator suite in-process against [`Engine`].
//!
//! The suite is Gherkin: `evaluator/gherkin/*.feature` over `evaluator/flags/testkit-flags.json`.
//! Every scenario runs, Scenario Outlines expanded, except those tagged `@fractional-v1` (flagd's
//! legacy bucketing; Sluice implements the current v2). The steps mean what
//! `flagd-testbed/HARNESS.md` says (see `sluice-testbed`), with typed evaluation
//! (`Engine::boolean` and friends) standing in for an OFREP request. The testbed is found at
//! `../shared/flagd-testbed` beside the workspace, or wherever `SLUICE_FLAGD_TESTBED` points;
//! when it is missing the test says so and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sluice_core::{Context, Engine, Evaluation, Format, Source};
use sluice_testbed::{Kind, Resolved, Steps, Tally, World, read_cases, testbed_dir};

/// Tags whose cases are not run.
const EXCLUDED_TAGS: &[&str] = &["fractional-v1"];

/// The evaluator suite has 125 cases without `@fractional-v1`.
const MIN_CASES: usize = 125;

/// What an evaluation showed, owned.
fn resolved(value: Value, details: &Evaluation<'_>) -> Resolved {
    Resolved {
        value,
        variant: details.variant.map(str::to_owned),
        reason: details.reason.as_str().to_owned(),
        error: details.error.map(|code| code.as_str().to_owned()),
        metadata: details
            .flag
            .map(|flag| flag.metadata.clone())
            .unwrap_or_default(),
    }
}

/// Evaluates the world's flag with the typed accessor for its kind.
fn evaluate(engine: &Engine, world: &World) -> Result<Resolved, String> {
    // The caller's clock, as a server would pass it, for `$flagd.timestamp`.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    let context = Context::from_value(Value::Object(world.context.clone()))
        .ok_or("bad context")?
        .at(now);
    let key = world.key.as_str();
    Ok(match world.kind()? {
        Kind::Boolean => {
            let default = world.default.as_bool().ok_or("bad default")?;
            let typed = engine.boolean(key, &context, default);
            resolved(Value::Bool(typed.value), &typed.details)
        }
        Kind::String => {
            let default = world.default.as_str().ok_or("bad default")?;
            let typed = engine.string(key, &context, default);
            resolved(Value::from(typed.value), &typed.details)
        }
        Kind::Integer => {
            let default = world.default.as_i64().ok_or("bad default")?;
            let typed = engine.integer(key, &context, default);
            resolved(Value::from(typed.value), &typed.details)
        }
        Kind::Float => {
            let default = world.default.as_f64().ok_or("bad default")?;
            let typed = engine.number(key, &context, default);
            let value =
                serde_json::Number::from_f64(typed.value).map_or(Value::Null, Value::Number);
            resolved(value, &typed.details)
        }
        Kind::Object => {
            let typed = engine.object(key, &context, &world.default);
            resolved(typed.value.clone(), &typed.details)
        }
    })
}

#[test]
fn flagd_testbed_evaluator_suite() {
    let testbed = testbed_dir();
    let suite = testbed.join("evaluator");
    if !suite.is_dir() {
        println!(
            "flagd testbed: not found at {}; set SLUICE_FLAGD_TESTBED to run the suite",
            testbed.display()
        );
        return;
    }
    let flags_file = suite.join("flags/testkit-flags.json");
    let text = std::fs::read_to_string(&flags_file).unwrap();
    let source = Source::parse(Some("testkit-flags.json"), &text, Format::Json)
        .unwrap_or_else(|errors| panic!("testkit-flags.json does not load:\n{errors}"));
    let engine = source
        .compile(None)
        .unwrap_or_else(|errors| panic!("testkit-flags.json does not compile:\n{errors}"));

    let mut features: Vec<PathBuf> = std::fs::read_dir(suite.join("gherkin"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "feature"))
        .collect();
    features.sort();
    assert!(
        !features.is_empty(),
        "no .feature files in {}",
        suite.display()
    );

    let steps = Steps::new("an evaluator");
    let mut tally = Tally::default();
    let mut skipped = 0;
    for path in &features {
        for case in read_cases(path).unwrap_or_else(|error| panic!("{error}")) {
            if case.tagged(EXCLUDED_TAGS) {
                skipped += 1;
                continue;
            }
            let outcome = steps.run(&case, |world| evaluate(&engine, world));
            tally.record(&case, outcome);
        }
    }

    let (passed, failed) = (tally.passed, tally.failures.len());
    tally.report(&format!(
        "flagd testbed: {passed} passed, {failed} failed ({skipped} skipped by tag)"
    ));
    assert!(
        failed == 0,
        "{failed} flagd testbed cases failed; the report is above"
    );
    assert!(
        passed >= MIN_CASES,
        "only {passed} testbed cases ran; expected at least {MIN_CASES}"
    );
}
