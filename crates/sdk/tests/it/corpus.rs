//! The shared evaluation corpus, `crates/core/tests/eval/*.yaml`, run through the SDK client.
//!
//! Each file's definitions are written to a flags file and served by a client per
//! environment; every case must come out as it does from the engine directly.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use serde_json::{Value, json};
use sluice::{Client, Context};

fn run_file(path: &Path, failures: &mut Vec<String>) -> usize {
    let text = fs::read_to_string(path).unwrap();
    let document: Value = yaml_serde::from_str(&text).unwrap();
    let directory = tempfile::tempdir().unwrap();
    let flags = directory.path().join("flags.json");
    fs::write(
        &flags,
        serde_json::to_string(&document["definitions"]).unwrap(),
    )
    .unwrap();

    let mut clients: HashMap<Option<String>, Client> = HashMap::new();
    let cases = document["cases"].as_array().unwrap();
    for (index, case) in cases.iter().enumerate() {
        let flag = case["flag"].as_str().unwrap();
        let environment = case.get("env").and_then(Value::as_str).map(str::to_owned);
        let client = clients.entry(environment.clone()).or_insert_with(|| {
            let mut builder = Client::file_builder(&flags)
                .env_vars(Vec::<(String, String)>::new())
                .watch(false);
            if let Some(environment) = &environment {
                builder = builder.environment(environment.clone());
            }
            builder.build().unwrap()
        });
        let context = Context::from_value(case["context"].clone()).unwrap();
        let details = client.details(flag, &context);
        let actual = json!({
            "value": details.value,
            "variant": details.variant,
            "reason": details.reason.as_str(),
            "error": details.error.map(|e| e.as_str()),
            "rule": details.rule.as_ref().map(|r| r.index),
            "rule_name": details.rule.as_ref().and_then(|r| r.name.clone()),
            "segment": details.segment,
            "prerequisite": details.prerequisite,
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
        // The typed accessors agree with the details.
        if let Some(Value::Bool(served)) = &details.value {
            assert_eq!(client.bool(flag, &context, !served), *served);
        }
        if let Some(Value::String(served)) = &details.value {
            assert_eq!(&client.string(flag, &context, ""), served);
        }
    }
    cases.len()
}

#[test]
fn the_shared_corpus_comes_out_the_same() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/eval");
    let mut total = 0;
    let mut failures = Vec::new();
    for entry in fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            total += run_file(&path, &mut failures);
        }
    }
    assert!(total > 60, "only {total} cases ran");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
