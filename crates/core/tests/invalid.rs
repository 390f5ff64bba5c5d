//! Every file in `tests/invalid/` must be rejected with exactly the messages frozen beside it.
//!
//! Each `NAME.yaml` or `NAME.json` has a `NAME.errors` file with the expected output of
//! `sluice validate`, one error a line. Run with `SLUICE_BLESS=1` to rewrite the expected
//! files after a deliberate change, then review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use sluice_core::{Errors, Format, Source};

fn check(file_name: &str, text: &str) -> Result<(), Errors> {
    let source = Source::parse(Some(file_name), text, Format::from_file_name(file_name))?;
    source.compile(None).map(|_| ())
}

#[test]
fn invalid_definitions_are_rejected_with_located_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    let mut cases = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if extension != "yaml" && extension != "json" {
            continue;
        }
        cases += 1;
        let file_name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let text = fs::read_to_string(&path).unwrap();
        let errors = match check(&file_name, &text) {
            Ok(()) => {
                failures.push(format!("{file_name}: was accepted"));
                continue;
            }
            Err(errors) => errors,
        };
        for error in errors.iter() {
            assert!(
                error.position.is_some(),
                "{file_name}: no position in `{error}`"
            );
            assert_eq!(error.file.as_deref(), Some(file_name.as_str()));
        }
        let actual = format!("{errors}\n");
        let expected_path = path.with_extension("errors");
        if bless {
            fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{file_name}:\n--- expected\n{expected}--- actual\n{actual}"
            ));
        }
    }
    assert!(cases >= 30, "only {cases} invalid definitions are covered");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
