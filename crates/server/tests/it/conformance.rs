//! flagd-testbed's provider suites, run over HTTP against `sluice serve --flags allFlags.json`.
//!
//! The suites are `gherkin/evaluation`, `targeting`, `disabled` and `metadata`, filtered with
//! `not @fractional-v1 and not @fractional-v3 and not @deprecated`. Each case is one OFREP
//! single evaluation with a production client token, mapped to a result the way
//! `flagd-testbed/HARNESS.md` describes (and `@openfeature/ofrep-core` does): a 200 with a
//! `value` is checked against the expected type on the client side (`TYPE_MISMATCH`); a 200
//! without one serves the caller's default with the body's reason; a 4xx with an `errorCode`
//! serves the default with reason `ERROR`. The same key is cross-checked in the bulk response.
//!
//! Cases that need flag-set selectors (`an option "selector"`, `@metadata-provider`) or
//! provider lifecycle steps (events, lost connections, modified flags) test a flagd provider,
//! not evaluation, and are counted as skipped. The testbed is found at
//! `../shared/flagd-testbed` beside the workspace, or wherever `SLUICE_FLAGD_TESTBED` points;
//! when it is missing the test says so and passes.

use std::io::Write as _;

use regex::Regex;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use sluice_testbed::{
    Case, Kind, Next, Resolved, Steps, Tally, World, read_cases, step_failed, testbed_dir,
};

use crate::helpers::{Options, TestApp, spawn_with, split};

/// The provider suites that are evaluation semantics.
const FEATURES: &[&str] = &["evaluation", "targeting", "disabled", "metadata"];

/// Tags whose cases are outside the chosen filter.
const EXCLUDED_TAGS: &[&str] = &["fractional-v1", "fractional-v3", "deprecated"];

/// The filtered subset has 132 cases, four of which need flag sets.
const MIN_PASSED: usize = 120;

/// Why a case is not run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Skip {
    /// It selects a flag set (`Flagd-Selector`), which Sluice has no equivalent of.
    FlagSet,
    /// It drives a provider's lifecycle (events, connection loss, flag changes).
    Lifecycle,
}

/// Why a case cannot run against an OFREP server, if it cannot.
fn skip(steps: &Steps, lifecycle: &Regex, case: &Case) -> Option<Skip> {
    if case.tagged(&["metadata-provider"]) {
        return Some(Skip::FlagSet);
    }
    for step in &case.steps {
        if steps.option(&step.value) == Some("selector") {
            return Some(Skip::FlagSet);
        }
        if lifecycle.is_match(&step.value) {
            return Some(Skip::Lifecycle);
        }
    }
    None
}

/// What a client makes of an OFREP single-evaluation response.
fn resolve(
    kind: Kind,
    default: &Value,
    status: StatusCode,
    body: &Value,
) -> Result<Resolved, String> {
    let metadata = || {
        body.get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let reason = || {
        body.get("reason")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if status == StatusCode::OK {
        let Some(value) = body.get("value") else {
            // A code default: a disabled flag, or no default variant.
            return Ok(Resolved {
                value: default.clone(),
                variant: None,
                reason: reason().ok_or_else(|| format!("a 200 without a reason: {body}"))?,
                error: None,
                metadata: metadata(),
            });
        };
        if !kind.admits(value) {
            return Ok(Resolved {
                value: default.clone(),
                variant: None,
                reason: "ERROR".to_owned(),
                error: Some("TYPE_MISMATCH".to_owned()),
                metadata: Map::new(),
            });
        }
        return Ok(Resolved {
            value: value.clone(),
            variant: body
                .get("variant")
                .and_then(Value::as_str)
                .map(str::to_owned),
            reason: reason().ok_or_else(|| format!("a 200 without a reason: {body}"))?,
            error: None,
            metadata: metadata(),
        });
    }
    let code = body.get("errorCode").and_then(Value::as_str);
    match code {
        Some(code) if status.is_client_error() || status.is_server_error() => {
            if (status == StatusCode::NOT_FOUND) != (code == "FLAG_NOT_FOUND") {
                return Err(format!("status {status} with errorCode {code}"));
            }
            Ok(Resolved {
                value: default.clone(),
                variant: None,
                reason: "ERROR".to_owned(),
                error: Some(code.to_owned()),
                metadata: metadata(),
            })
        }
        _ => Err(format!("unexpected OFREP response {status}: {body}")),
    }
}

/// Evaluates the world's flag over HTTP, single and bulk, and records what a client sees.
async fn evaluate(app: &TestApp, token: &str, world: &World) -> Result<Resolved, String> {
    let kind = world.kind()?;
    let request = json!({ "context": Value::Object(world.context.clone()) });
    let post = |path: String| {
        app.request(Method::POST, &path, Some(token))
            .json(&request)
            .send()
    };
    let response = post(format!("/ofrep/v1/evaluate/flags/{}", world.key))
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if content_type != "application/json" {
        return Err(format!(
            "content-type `{content_type}`, expected application/json"
        ));
    }
    let single: Value = response.json().await.map_err(|e| e.to_string())?;
    let resolved = resolve(kind, &world.default, status, &single)?;

    // The bulk response carries the same evaluation for the key, or omits a missing flag.
    let response = post("/ofrep/v1/evaluate/flags".to_owned())
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != StatusCode::OK {
        return Err(format!("bulk evaluation answered {}", response.status()));
    }
    let bulk: Value = response.json().await.map_err(|e| e.to_string())?;
    let item = bulk["flags"]
        .as_array()
        .ok_or_else(|| format!("bulk response without flags: {bulk}"))?
        .iter()
        .find(|item| item["key"] == world.key.as_str());
    match item {
        None if status == StatusCode::NOT_FOUND => {}
        Some(item) if *item == single => {}
        other => {
            return Err(format!(
                "bulk has {other:?} for the key; single evaluation gave {single}"
            ));
        }
    }
    Ok(resolved)
}

#[tokio::test]
async fn flagd_provider_suites_pass_over_http() {
    let testbed = testbed_dir();
    let flags = testbed.join("flags/allFlags.json");
    if !flags.is_file() {
        let _ = writeln!(
            std::io::stderr(),
            "flagd provider suites over HTTP: testbed not found at {}; set SLUICE_FLAGD_TESTBED to run them",
            testbed.display()
        );
        return;
    }
    let app = spawn_with(Options {
        flags: Some(flags),
        ..Options::default()
    })
    .await;
    let (status, ready) = split(
        app.request(Method::GET, "/ready", None)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "allFlags.json did not load: {ready}"
    );
    // Files own the flags; the store beside them still holds the tokens.
    assert!(app.state.gitops());
    assert!(app.dir.path().join("sluice.db").is_file());
    let token = app.token("client", Some("production")).await;

    let steps = Steps::new("a stable flagd provider");
    let lifecycle = Regex::new(
        r"(?:event handler$|event was fired|^the connection is lost|^the flag was modified)",
    )
    .unwrap();
    let mut tally = Tally::default();
    let (mut filtered, mut flag_sets, mut lifecycles) = (0, 0, 0);
    for name in FEATURES {
        let path = testbed.join(format!("gherkin/{name}.feature"));
        for case in read_cases(&path).unwrap_or_else(|error| panic!("{error}")) {
            if case.tagged(EXCLUDED_TAGS) {
                filtered += 1;
                continue;
            }
            match skip(&steps, &lifecycle, &case) {
                Some(Skip::FlagSet) => {
                    flag_sets += 1;
                    continue;
                }
                Some(Skip::Lifecycle) => {
                    lifecycles += 1;
                    continue;
                }
                None => {}
            }
            let mut world = World::default();
            let mut outcome = Ok(());
            for step in &case.steps {
                let applied = match steps.apply(&mut world, step) {
                    Ok(Next::Evaluate) => evaluate(&app, &token, &world)
                        .await
                        .map(|resolved| world.resolved = Some(resolved)),
                    Ok(Next::Continue) => Ok(()),
                    Err(error) => Err(error),
                };
                if let Err(error) = applied {
                    outcome = Err(step_failed(step, &error));
                    break;
                }
            }
            tally.record(&case, outcome);
        }
    }

    let (passed, failed) = (tally.passed, tally.failures.len());
    let skipped = flag_sets + lifecycles;
    tally.report(&format!(
        "flagd provider suites over HTTP: {passed} passed, {failed} failed ({skipped} skipped)\n  \
         skipped: {flag_sets} need flag-set selectors, {lifecycles} need provider lifecycle steps; \
         {filtered} more are outside the tag filter"
    ));
    assert!(
        failed == 0,
        "{failed} flagd provider cases failed over HTTP; the report is above"
    );
    assert!(
        passed >= MIN_PASSED,
        "only {passed} provider cases ran; expected at least {MIN_PASSED}"
    );
}
