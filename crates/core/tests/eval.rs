//! The evaluation corpus: `tests/eval/*.yaml` files of definitions and expected outcomes.
//!
//! Each file has `definitions` (a flags file) and `cases`. A case names a flag, an optional
//! environment and a context, and lists only the fields of the outcome it pins down:
//! `value`, `variant`, `reason`, `error`, `rule`, `rule_name`, `segment`, `prerequisite`.
//! The SDK runs the same corpus through its own client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use serde_json::{Value, json};
use sluice_core::{Context, Format, Source};

fn run_file(path: &Path) -> (usize, Vec<String>) {
    let text = fs::read_to_string(path).unwrap();
    let document: Value = yaml_serde::from_str(&text).unwrap();
    let definitions = serde_json::to_string(&document["definitions"]).unwrap();
    let source = Source::parse(None, &definitions, Format::Json).unwrap();
    let mut failures = Vec::new();
    let cases = document["cases"].as_array().unwrap();
    for (index, case) in cases.iter().enumerate() {
        let flag = case["flag"].as_str().unwrap();
        let environment = case.get("env").and_then(Value::as_str);
        let engine = source.compile(environment).unwrap();
        let context = Context::from_value(case["context"].clone()).unwrap();
        let outcome = engine.evaluate(flag, &context);
        let actual = json!({
            "value": outcome.value,
            "variant": outcome.variant,
            "reason": outcome.reason.as_str(),
            "error": outcome.error.map(|e| e.as_str()),
            "rule": outcome.rule.map(|r| r.index),
            "rule_name": outcome.rule.and_then(|r| r.name),
            "segment": outcome.segment,
            "prerequisite": outcome.prerequisite,
        });
        for (field, expected) in case["expect"].as_object().unwrap() {
            if &actual[field] != expected {
                failures.push(format!(
                    "{}: case {index} ({flag}, {}): {field} is {}, expected {expected}",
                    path.display(),
                    case["context"],
                    actual[field]
                ));
            }
        }
        // Evaluating never depends on anything but the inputs.
        assert_eq!(engine.evaluate(flag, &context), outcome);
    }
    (cases.len(), failures)
}

#[test]
fn corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/eval");
    let mut total = 0;
    let mut failures = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let (count, mut failed) = run_file(&path);
            total += count;
            failures.append(&mut failed);
        }
    }
    assert!(total > 60, "only {total} cases ran");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
