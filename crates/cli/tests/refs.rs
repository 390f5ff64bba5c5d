//! `sluice refs` through the real binary over a fixture tree: planted references in several
//! languages, planted unused flags, a `.gitignore`d file that must be skipped, custom
//! patterns and a config file, and the exit codes CI relies on (0 clean, 1 findings, 2 error).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn sluice(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLUICE_") {
            command.env_remove(name);
        }
    }
    command.output().unwrap()
}

fn write(root: &Path, name: &str, text: &str) {
    let path = root.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const FLAGS: &str = "\
flags:
  new-checkout:
    type: boolean
    variants: { \"on\": true, \"off\": false }
    default_variant: \"off\"
  banner-color:
    type: string
    variants: { blue: blue, green: green }
    default_variant: blue
  old-experiment:
    type: boolean
    variants: { \"on\": true, \"off\": false }
    default_variant: \"off\"
  legacy-search:
    type: boolean
    variants: { \"on\": true, \"off\": false }
    default_variant: \"off\"
";

/// A tree that uses `new-checkout` and `banner-color`, names an undefined `ghost-flag`,
/// and mentions `old-experiment` only in an ignored file.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "flags.yaml", FLAGS);
    write(
        root,
        "src/main.rs",
        "fn main() {\n    let on = client.bool(\"new-checkout\", &ctx, false);\n}\n",
    );
    write(
        root,
        "web/app.ts",
        "// header\nconst color = await client.getStringValue('banner-color', 'blue');\nif (flags.isEnabled(\"ghost-flag\")) {}\n",
    );
    write(root, ".gitignore", "generated/\n");
    write(
        root,
        "generated/old.py",
        "x = client.boolean_value(\"old-experiment\", False)\n",
    );
    write(
        root,
        "README.md",
        "Call `client.bool(\"...\")` to evaluate.\n",
    );
    dir
}

#[test]
fn refs_finds_planted_references_and_unused_flags_and_skips_ignored_files() {
    let dir = fixture();
    let root = dir.path().to_str().unwrap();
    let flags = dir.path().join("flags.yaml");
    let output = sluice(&["refs", root, "--flags", flags.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("Used in code but not defined:"), "{text}");
    assert!(text.contains("ghost-flag  web/app.ts:3"), "{text}");
    assert!(text.contains("Defined but not used in code:"), "{text}");
    // Only used in a .gitignored file, so unused.
    assert!(
        text.contains(&format!("old-experiment  {}:10", flags.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("legacy-search  {}:14", flags.display())),
        "{text}"
    );
    assert!(!text.contains("new-checkout"), "{text}");
    assert!(!text.contains("banner-color"), "{text}");
    assert!(!text.contains("generated/old.py"), "{text}");

    let output = sluice(&["refs", root, "--flags", flags.to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["references"], 3);
    assert_eq!(
        report["undefined"],
        serde_json::json!([{"key": "ghost-flag", "file": "web/app.ts", "line": 3}])
    );
    let unused: Vec<&str> = report["unused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["key"].as_str().unwrap())
        .collect();
    assert_eq!(unused, vec!["legacy-search", "old-experiment"]);
}

#[test]
fn refs_is_clean_with_exit_0_and_takes_custom_patterns() {
    let dir = fixture();
    let root = dir.path();
    // Use the rest, in a call shape the defaults do not know, found by --pattern.
    write(
        root,
        "src/more.rs",
        "feature!(legacy_search);\nfeature!(old_experiment);\n",
    );
    std::fs::remove_file(root.join("web/app.ts")).unwrap();
    let flags = "\
flags:
  new-checkout: { type: boolean, variants: { \"on\": true, \"off\": false }, default_variant: \"off\" }
  legacy_search: { type: boolean, variants: { \"on\": true, \"off\": false }, default_variant: \"off\" }
  old_experiment: { type: boolean, variants: { \"on\": true, \"off\": false }, default_variant: \"off\" }
";
    write(root, "flags.yaml", flags);
    let flags_path = root.join("flags.yaml");
    let args = [
        "refs",
        root.to_str().unwrap(),
        "--flags",
        flags_path.to_str().unwrap(),
        "--pattern",
        r"feature!\((\w+)\)",
    ];
    let output = sluice(&args);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("Every defined flag is used"), "{text}");

    // The same pattern from a config file; without it the two are unused again.
    write(root, "refs.yaml", "patterns:\n  - 'feature!\\((\\w+)\\)'\n");
    let config = root.join("refs.yaml");
    let output = sluice(&[
        "refs",
        root.to_str().unwrap(),
        "--flags",
        flags_path.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0));
    let output = sluice(&[
        "refs",
        root.to_str().unwrap(),
        "--flags",
        flags_path.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn refs_exits_2_on_errors() {
    let dir = fixture();
    let root = dir.path().to_str().unwrap();
    let flags = dir.path().join("flags.yaml");
    let missing = sluice(&["refs", "/no/such/dir", "--flags", flags.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not a directory"));
    let bad = sluice(&[
        "refs",
        root,
        "--flags",
        flags.to_str().unwrap(),
        "--pattern",
        "no-group",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("capture group"));
    let no_flags_file = sluice(&["refs", root, "--flags", "/no/such/flags.yaml"]);
    assert_eq!(no_flags_file.status.code(), Some(2));
    // No server to ask: an error, not findings.
    let unreachable = sluice(&["--url", "http://127.0.0.1:9", "refs", root]);
    assert_eq!(unreachable.status.code(), Some(2));
}
