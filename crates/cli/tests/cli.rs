//! The `sluice` binary, run as a user would: exit codes, messages and JSON output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .unwrap()
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/flags.yaml")
        .display()
        .to_string()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn validate_accepts_the_example() {
    let output = sluice(&["validate", &example()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("ok (sluice format, 6 flags, 3 segments)"));
}

#[test]
fn validate_reports_every_error_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        &dir,
        "bad.yaml",
        "flags:\n  a:\n    type: boolean\n    variants: { \"on\": true }\n    default_variant: off\n    rules:\n      - when: [{ attribute: v, op: semver_gt, value: \"1.x\" }]\n        serve: \"on\"\n",
    );
    let good = write(&dir, "good.json", r#"{"flags": {}}"#);
    let output = sluice(&["validate", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        errors
            .contains("bad.yaml:5:5: flags.a.default_variant: `off` is not a variant of this flag"),
        "{errors}"
    );
    assert!(
        errors.contains(
            "bad.yaml:7:47: flags.a.rules[0].when[0].value: \"1.x\" is not a semver version"
        ),
        "{errors}"
    );
    assert!(errors.contains("bad.yaml: 2 errors"), "{errors}");
    assert!(stdout(&output).contains("good.json: ok"));
}

#[test]
fn validate_names_a_missing_file() {
    let output = sluice(&["validate", "/nonexistent/flags.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot read /nonexistent/flags.yaml"));
}

#[test]
fn eval_explains_the_deciding_rule() {
    let output = sluice(&[
        "eval",
        &example(),
        "new-checkout",
        "--env",
        "production",
        "--context",
        r#"{"targetingKey": "u1", "email": "ada@shop.example"}"#,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "new-checkout = true  variant=on reason=TARGETING_MATCH  (rule 0 `internal first`, via segment `internal`)\n"
    );
}

#[test]
fn eval_json_for_scripts_and_environments_apply() {
    let output = sluice(&[
        "eval",
        &example(),
        "legacy-invoice-pdf",
        "--env",
        "production",
        "--json",
    ]);
    assert!(output.status.success());
    let result: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(result["reason"], "DISABLED");
    assert_eq!(result["value"], false);

    let output = sluice(&[
        "eval",
        &example(),
        "legacy-invoice-pdf",
        "--env",
        "staging",
        "--json",
    ]);
    let result: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(result["reason"], "STATIC");
    assert_eq!(result["value"], true);
}

#[test]
fn eval_all_lists_every_flag() {
    let output = sluice(&["eval", &example(), "--all", "--json", "-k", "user-1"]);
    assert!(output.status.success());
    let results: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(results.as_array().map(Vec::len), Some(6));
}

#[test]
fn eval_rejects_bad_input_clearly() {
    let output = sluice(&["eval", &example(), "new-checkout", "--context", "[1]"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("the context must be a JSON object"));

    let output = sluice(&["eval", &example(), "new-checkout", "--context", "{oops"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--context is not valid JSON"));

    let output = sluice(&["eval", &example(), "no-such-flag"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("FLAG_NOT_FOUND"));

    let output = sluice(&["eval", &example(), "new-checkout", "--env", "qa"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("environment `qa` is not defined"));
}
