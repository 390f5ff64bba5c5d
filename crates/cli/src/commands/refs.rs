//! `sluice refs [DIR]`: find flag keys in source code, and compare them with the flags
//! defined in a flags file or on a server.
//!
//! The tree is walked like ripgrep walks it (the `ignore` crate): `.gitignore`, `.ignore`
//! and hidden files are skipped, in a git repository or not. Each text file is searched
//! with reference patterns, regular expressions whose first capture group is the flag key:
//! the defaults cover common SDK call shapes (`bool("key"`, `.string("key"`,
//! `getBooleanValue("key"`, `isEnabled("key"`, `boolVariation("key"`, `useFlag("key"` …);
//! `--pattern` adds one, and a `--config` YAML file (`patterns: [...]`,
//! `replace_defaults: true`) adds or replaces them. The report lists keys used in code but
//! not defined, and flags defined but not used, each with file:line. The exit code is 0
//! when both lists are empty, 1 when not, and 2 when the scan itself failed, for CI.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use regex::Regex;
use serde::Deserialize;
use serde_json::json;
use sluice_core::Document;

use crate::client::{Client, ClientError};
use crate::output::print_json;

/// A flag key inside a string literal: the first capture group of every default pattern.
const KEY: &str = r#"["'`]([A-Za-z0-9_][A-Za-z0-9_.-]*)["'`]"#;

/// The default reference patterns, before the key.
const DEFAULT_CALLS: [&str; 3] = [
    // Rust, Go, Python and OpenFeature-style typed getters: bool("k", .string("k",
    // boolean_value("k", string_details("k", getBoolean("k".
    r"\b(?:bool|boolean|string|str|int|integer|float|number|object|json)(?:_value|_details|Value|Details)?\(\s*",
    // Java, JavaScript and .NET OpenFeature clients: getBooleanValue("k", GetStringDetails("k".
    r"\b(?:get|Get)(?:Boolean|String|Number|Integer|Int|Float|Double|Object)(?:Value|Details)?(?:Async)?\(\s*",
    // Feature toggles and other SDKs: isEnabled("k", is_enabled("k", boolVariation("k",
    // useFlag("k", evaluate("k".
    r"\b(?:is_enabled|isEnabled|IsEnabled|enabled|is_on|isOn|variation|[a-z]+Variation|useFlag|use_flag|evaluate|flag)\(\s*",
];

/// Files larger than this are skipped: generated or vendored, not code that names flags.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Arguments of `sluice refs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The source tree to scan.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The flags file that defines the flags; without it, the server's flags are used.
    #[arg(long)]
    flags: Option<PathBuf>,
    /// Another reference pattern: a regular expression whose first capture group is the key.
    #[arg(long = "pattern", value_name = "REGEX")]
    patterns: Vec<String>,
    /// A YAML file with `patterns:` (a list of regular expressions) and optionally
    /// `replace_defaults: true`.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    replace_defaults: bool,
}

/// One reference found in code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    /// The file, relative to the scanned directory.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The flag key.
    pub key: String,
}

/// Where a flag is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// `FILE:LINE`, or the server's URL.
    pub place: String,
}

/// Builds the reference patterns.
fn patterns(extra: &[String], config: &Config) -> anyhow::Result<Vec<Regex>> {
    let mut sources: Vec<String> = if config.replace_defaults {
        Vec::new()
    } else {
        DEFAULT_CALLS
            .iter()
            .map(|call| format!("{call}{KEY}"))
            .collect()
    };
    sources.extend(config.patterns.iter().cloned());
    sources.extend(extra.iter().cloned());
    if sources.is_empty() {
        bail!("no reference patterns: the config replaces the defaults with none");
    }
    sources
        .iter()
        .map(|source| {
            let regex = Regex::new(source)
                .with_context(|| format!("invalid reference pattern `{source}`"))?;
            if regex.captures_len() < 2 {
                bail!("reference pattern `{source}` needs a capture group for the flag key");
            }
            Ok(regex)
        })
        .collect()
}

/// Every reference in `text`, attributed to `file`.
pub fn scan_text(text: &str, file: &str, patterns: &[Regex]) -> Vec<Reference> {
    let mut found = BTreeSet::new();
    for (index, line) in text.lines().enumerate() {
        for pattern in patterns {
            for captures in pattern.captures_iter(line) {
                if let Some(key) = captures.get(1) {
                    found.insert(Reference {
                        key: key.as_str().to_owned(),
                        file: file.to_owned(),
                        line: index + 1,
                    });
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Walks `dir` (respecting ignore files) and scans every text file.
fn scan_tree(dir: &Path, patterns: &[Regex]) -> anyhow::Result<Vec<Reference>> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let mut references = Vec::new();
    let walker = ignore::WalkBuilder::new(dir)
        .require_git(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    for entry in walker {
        let entry = entry.context("walking the source tree")?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let too_large = entry
            .metadata()
            .map(|m| m.len() > MAX_FILE_BYTES)
            .unwrap_or(true);
        if too_large {
            continue;
        }
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        if bytes.contains(&0) {
            continue;
        }
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        let shown = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        references.extend(scan_text(&text, &shown, patterns));
    }
    Ok(references)
}

/// The line of `key`'s definition in a flags file's text, found as `key:` or `"key":`.
fn definition_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let trimmed = line.trim_start().trim_start_matches(['"', '\'']);
            trimmed
                .strip_prefix(key)
                .map(|rest| rest.trim_start_matches(['"', '\'']).trim_start())
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .map(|index| index + 1)
}

/// The flags a file defines, with `FILE:LINE` for each.
fn defined_in_file(path: &Path) -> anyhow::Result<BTreeMap<String, Definition>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let source = match crate::load::read_source(path) {
        Ok(source) => source,
        Err(crate::load::LoadError::Io(error)) => return Err(error),
        Err(crate::load::LoadError::Invalid(errors)) => {
            bail!("{} is not a valid flags file: {errors}", path.display())
        }
    };
    let keys: Vec<String> = match source.document() {
        Document::Sluice(file) => file.flags.keys().cloned().collect(),
        Document::Flagd(file) => file.keys().map(str::to_owned).collect(),
    };
    Ok(keys
        .into_iter()
        .map(|key| {
            let place = match definition_line(&text, &key) {
                Some(line) => format!("{}:{line}", path.display()),
                None => path.display().to_string(),
            };
            (key, Definition { place })
        })
        .collect())
}

/// What the scan found: keys used but undefined, and flags defined but unused.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// References whose key no flag defines.
    pub undefined: Vec<Reference>,
    /// Defined flags that no reference names, by key.
    pub unused: Vec<(String, Definition)>,
}

/// Compares references with definitions.
pub fn compare(references: &[Reference], defined: &BTreeMap<String, Definition>) -> Findings {
    let used: BTreeSet<&str> = references.iter().map(|r| r.key.as_str()).collect();
    Findings {
        undefined: references
            .iter()
            .filter(|r| !defined.contains_key(&r.key))
            .cloned()
            .collect(),
        unused: defined
            .iter()
            .filter(|(key, _)| !used.contains(key.as_str()))
            .map(|(key, definition)| (key.clone(), definition.clone()))
            .collect(),
    }
}

/// Runs `sluice refs`. Any failure is reported here and exits 2.
pub fn run(
    args: &Args,
    remote: &dyn Fn() -> Result<Client, ClientError>,
    json_output: bool,
) -> anyhow::Result<ExitCode> {
    match scan(args, remote) {
        Ok((references, findings)) => report(&references, &findings, json_output),
        Err(error) => {
            eprintln!("error: {error:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn scan(
    args: &Args,
    remote: &dyn Fn() -> Result<Client, ClientError>,
) -> anyhow::Result<(Vec<Reference>, Findings)> {
    let config: Config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            yaml_serde::from_str(&text)
                .with_context(|| format!("{} is not a refs config", path.display()))?
        }
        None => Config::default(),
    };
    let patterns = patterns(&args.patterns, &config)?;
    let defined = match &args.flags {
        Some(path) => defined_in_file(path)?,
        None => {
            let client = remote()?;
            let flags = client.list_flags()?;
            let place = client.base_url().to_owned();
            flags
                .data
                .flags
                .into_iter()
                .map(|flag| {
                    (
                        flag.key,
                        Definition {
                            place: place.clone(),
                        },
                    )
                })
                .collect()
        }
    };
    let references = scan_tree(&args.dir, &patterns)?;
    let findings = compare(&references, &defined);
    Ok((references, findings))
}

fn report(
    references: &[Reference],
    findings: &Findings,
    json_output: bool,
) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let clean = findings.undefined.is_empty() && findings.unused.is_empty();
    if json_output {
        print_json(
            &mut stdout,
            &json!({
                "references": references.len(),
                "undefined": findings.undefined.iter().map(|r| json!({"key": r.key, "file": r.file, "line": r.line})).collect::<Vec<_>>(),
                "unused": findings.unused.iter().map(|(key, d)| json!({"key": key, "definedAt": d.place})).collect::<Vec<_>>(),
            }),
        )?;
    } else {
        if !findings.undefined.is_empty() {
            writeln!(stdout, "Used in code but not defined:")?;
            for reference in &findings.undefined {
                writeln!(
                    stdout,
                    "  {}  {}:{}",
                    reference.key, reference.file, reference.line
                )?;
            }
        }
        if !findings.unused.is_empty() {
            writeln!(stdout, "Defined but not used in code:")?;
            for (key, definition) in &findings.unused {
                writeln!(stdout, "  {key}  {}", definition.place)?;
            }
        }
        if clean {
            writeln!(
                stdout,
                "Every defined flag is used, and every flag used is defined ({} references).",
                references.len()
            )?;
        }
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<Regex> {
        patterns(&[], &Config::default()).unwrap()
    }

    #[test]
    fn default_patterns_find_common_sdk_calls() {
        let text = r#"
let on = client.bool("rust-flag", &ctx, false);
name = client.string("py-flag", "x")
boolean enabled = client.getBooleanValue("java-flag", false);
if (unleash.isEnabled("toggle")) {}
const v = ld.boolVariation('ld-flag', user, false);
const x = useFlag(`react-flag`);
let s = client.string_details("details-flag", &ctx, "a");
print("not-a-flag")
"#;
        let keys: Vec<String> = scan_text(text, "f", &defaults())
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(
            keys,
            vec![
                "rust-flag",
                "py-flag",
                "java-flag",
                "toggle",
                "ld-flag",
                "react-flag",
                "details-flag"
            ]
        );
    }

    #[test]
    fn custom_patterns_need_a_capture_group() {
        let config = Config {
            patterns: vec![r"flagged\((\w+)\)".into()],
            replace_defaults: true,
        };
        let only = patterns(&[], &config).unwrap();
        let found = scan_text("flagged(abc) bool(\"x\")", "f", &only);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key, "abc");
        assert!(patterns(&["no-group".into()], &Config::default()).is_err());
    }

    #[test]
    fn compare_lists_both_sides() {
        let references = vec![
            Reference {
                key: "a".into(),
                file: "x.rs".into(),
                line: 3,
            },
            Reference {
                key: "ghost".into(),
                file: "y.rs".into(),
                line: 9,
            },
        ];
        let defined: BTreeMap<String, Definition> = ["a", "old"]
            .iter()
            .map(|k| {
                (
                    (*k).to_owned(),
                    Definition {
                        place: "flags.yaml:1".into(),
                    },
                )
            })
            .collect();
        let findings = compare(&references, &defined);
        assert_eq!(findings.undefined.len(), 1);
        assert_eq!(findings.undefined[0].key, "ghost");
        assert_eq!(findings.unused.len(), 1);
        assert_eq!(findings.unused[0].0, "old");
    }

    #[test]
    fn definition_lines_in_yaml_and_json() {
        assert_eq!(
            definition_line("flags:\n  checkout:\n    type: boolean\n", "checkout"),
            Some(2)
        );
        assert_eq!(
            definition_line("{\n \"flags\": {\n  \"checkout\": {}\n", "checkout"),
            Some(3)
        );
        assert_eq!(
            definition_line("flags:\n  checkout-v2:\n", "checkout"),
            None
        );
    }
}
