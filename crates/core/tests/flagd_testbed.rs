//! Runs flagd-testbed's evaluator suite in-process against [`Engine`].
//!
//! The suite is Gherkin: `evaluator/gherkin/*.feature` over `evaluator/flags/testkit-flags.json`.
//! Every scenario runs, Scenario Outlines expanded, except those tagged `@fractional-v1` (flagd's
//! legacy bucketing; Sluice implements the current v2). The steps mean what
//! `flagd-testbed/HARNESS.md` says, with typed evaluation (`Engine::boolean` and friends) standing
//! in for an OFREP request. The testbed is found at `../shared/flagd-testbed` beside the
//! workspace, or wherever `SLUICE_FLAGD_TESTBED` points; when it is missing the test says so
//! and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use gherkin::{Feature, GherkinEnv, Step};
use regex::Regex;
use serde_json::{Map, Value, json};
use sluice_core::{Context, Engine, Evaluation, Format, Source};

/// Tags whose cases are not run.
const EXCLUDED_TAGS: &[&str] = &["fractional-v1"];

/// The evaluator suite has 125 cases without `@fractional-v1`.
const MIN_CASES: usize = 125;

/// One expanded scenario: its name, tags, and steps with placeholders filled in.
struct Case {
    name: String,
    tags: Vec<String>,
    steps: Vec<Step>,
}

/// The expected value type of the flag under test.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Boolean,
    String,
    Integer,
    Float,
    Object,
}

impl Kind {
    fn parse(name: &str) -> Result<Kind, String> {
        Ok(match name {
            "Boolean" => Kind::Boolean,
            "String" => Kind::String,
            "Integer" => Kind::Integer,
            "Float" => Kind::Float,
            "Object" => Kind::Object,
            other => return Err(format!("unknown type `{other}`")),
        })
    }

    /// A value written in a step, read as this type.
    fn value(self, text: &str) -> Result<Value, String> {
        let parsed = match self {
            Kind::Boolean => text.parse::<bool>().ok().map(Value::Bool),
            Kind::String => Some(Value::String(text.to_owned())),
            Kind::Integer => text.parse::<i64>().ok().map(Value::from),
            Kind::Float => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            // Gherkin keeps the backslashes of `\"` in table cells.
            Kind::Object => serde_json::from_str::<Value>(&text.replace("\\\"", "\""))
                .ok()
                .filter(Value::is_object),
        };
        parsed.ok_or_else(|| format!("`{text}` is not a {self:?} value"))
    }
}

/// What an evaluation showed, owned.
#[derive(Debug)]
struct Resolved {
    value: Value,
    variant: Option<String>,
    reason: String,
    error: Option<String>,
    metadata: Map<String, Value>,
}

impl Resolved {
    fn new(value: Value, details: &Evaluation<'_>) -> Resolved {
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
}

/// The state of one scenario.
#[derive(Default)]
struct World {
    kind: Option<Kind>,
    key: String,
    default: Value,
    context: Map<String, Value>,
    resolved: Option<Resolved>,
}

/// The step patterns. Values are greedy `(.*)` so that embedded quotes survive.
struct Steps {
    evaluator: Regex,
    option: Regex,
    flag: Regex,
    context_key: Regex,
    nested: Regex,
    targeting_key: Regex,
    evaluated: Regex,
    value: Regex,
    reason: Regex,
    error_code: Regex,
    metadata_contains: Regex,
    metadata_empty: Regex,
}

impl Steps {
    fn new() -> Steps {
        let pattern = |text: &str| Regex::new(text).unwrap();
        Steps {
            evaluator: pattern(r"^an evaluator$"),
            option: pattern(r#"^an option "(.*)" of type "(.*)" with value "(.*)"$"#),
            flag: pattern(
                r#"^an? (Boolean|String|Integer|Float|Object)-flag with key "(.*)" and a (?:fallback|default) value "(.*)"$"#,
            ),
            context_key: pattern(
                r#"^a context containing a key "(.*)", with type "(.*)" and with value "(.*)"$"#,
            ),
            nested: pattern(
                r#"^a context containing a nested property with outer key "(.*)" and inner key "(.*)", with value "(.*)"$"#,
            ),
            targeting_key: pattern(r#"^a context containing a targeting key with value "(.*)"$"#),
            evaluated: pattern(r"^the flag was evaluated with details$"),
            value: pattern(r#"^the resolved details value should be "(.*)"$"#),
            reason: pattern(r#"^the reason should be "(.*)"$"#),
            error_code: pattern(r#"^the error-code should be "(.*)"$"#),
            metadata_contains: pattern(r"^the resolved metadata should contain$"),
            metadata_empty: pattern(r"^the resolved metadata is empty$"),
        }
    }
}

/// Whether two values are equal as the testbed compares them: numbers numerically.
fn same(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => actual == expected,
    }
}

fn evaluate(engine: &Engine, world: &mut World) -> Result<(), String> {
    let kind = world.kind.ok_or("no flag was chosen")?;
    // The caller's clock, as a server would pass it, for `$flagd.timestamp`.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    let context = Context::from_value(Value::Object(world.context.clone()))
        .ok_or("bad context")?
        .at(now);
    let key = world.key.as_str();
    let resolved = match kind {
        Kind::Boolean => {
            let default = world.default.as_bool().ok_or("bad default")?;
            let typed = engine.boolean(key, &context, default);
            Resolved::new(Value::Bool(typed.value), &typed.details)
        }
        Kind::String => {
            let default = world.default.as_str().ok_or("bad default")?;
            let typed = engine.string(key, &context, default);
            Resolved::new(Value::from(typed.value), &typed.details)
        }
        Kind::Integer => {
            let default = world.default.as_i64().ok_or("bad default")?;
            let typed = engine.integer(key, &context, default);
            Resolved::new(Value::from(typed.value), &typed.details)
        }
        Kind::Float => {
            let default = world.default.as_f64().ok_or("bad default")?;
            let typed = engine.number(key, &context, default);
            let value =
                serde_json::Number::from_f64(typed.value).map_or(Value::Null, Value::Number);
            Resolved::new(value, &typed.details)
        }
        Kind::Object => {
            let typed = engine.object(key, &context, &world.default);
            Resolved::new(typed.value.clone(), &typed.details)
        }
    };
    world.resolved = Some(resolved);
    Ok(())
}

fn run_step(steps: &Steps, engine: &Engine, world: &mut World, step: &Step) -> Result<(), String> {
    let text = step.value.as_str();
    if steps.evaluator.is_match(text) {
        // The engine is loaded once and every case starts from a fresh world.
    } else if let Some(captures) = steps.option.captures(text) {
        match &captures[1] {
            "cache" => {}
            other => return Err(format!("option `{other}` is not supported in-process")),
        }
    } else if let Some(captures) = steps.flag.captures(text) {
        let kind = Kind::parse(&captures[1])?;
        world.kind = Some(kind);
        world.key = captures[2].to_owned();
        world.default = kind.value(&captures[3])?;
    } else if let Some(captures) = steps.context_key.captures(text) {
        let kind = Kind::parse(&captures[2])?;
        world
            .context
            .insert(captures[1].to_owned(), kind.value(&captures[3])?);
    } else if let Some(captures) = steps.nested.captures(text) {
        let outer = world
            .context
            .entry(captures[1].to_owned())
            .or_insert_with(|| json!({}));
        if !outer.is_object() {
            *outer = json!({});
        }
        if let Value::Object(fields) = outer {
            fields.insert(captures[2].to_owned(), Value::from(&captures[3]));
        }
    } else if let Some(captures) = steps.targeting_key.captures(text) {
        world
            .context
            .insert("targetingKey".to_owned(), Value::from(&captures[1]));
    } else if steps.evaluated.is_match(text) {
        evaluate(engine, world)?;
    } else if let Some(captures) = steps.value.captures(text) {
        let kind = world.kind.ok_or("no flag was chosen")?;
        let expected = kind.value(&captures[1])?;
        let actual = &world_resolved(&world.resolved)?.value;
        if !same(actual, &expected) {
            let resolved = world_resolved(&world.resolved)?;
            return Err(format!(
                "value {actual}, expected {expected} (variant {:?}, reason {}, error {:?})",
                resolved.variant, resolved.reason, resolved.error
            ));
        }
    } else if let Some(captures) = steps.reason.captures(text) {
        let actual = &world_resolved(&world.resolved)?.reason;
        if actual != &captures[1] {
            return Err(format!("reason {actual}, expected {}", &captures[1]));
        }
    } else if let Some(captures) = steps.error_code.captures(text) {
        let actual = world_resolved(&world.resolved)?
            .error
            .as_deref()
            .unwrap_or_default();
        if actual != &captures[1] {
            return Err(format!(
                "error code `{actual}`, expected `{}`",
                &captures[1]
            ));
        }
    } else if steps.metadata_contains.is_match(text) {
        let metadata = &world_resolved(&world.resolved)?.metadata;
        let table = step
            .table
            .as_ref()
            .ok_or("the metadata step has no table")?;
        for row in table.rows.iter().skip(1) {
            let [key, kind, value] = row.as_slice() else {
                return Err(format!("bad metadata row {row:?}"));
            };
            let expected = Kind::parse(kind)?.value(value)?;
            match metadata.get(key) {
                Some(actual) if same(actual, &expected) => {}
                actual => {
                    return Err(format!(
                        "metadata `{key}` is {actual:?}, expected {expected}"
                    ));
                }
            }
        }
    } else if steps.metadata_empty.is_match(text) {
        let metadata = &world_resolved(&world.resolved)?.metadata;
        if !metadata.is_empty() {
            return Err(format!("metadata {metadata:?}, expected none"));
        }
    } else {
        return Err(format!("no step matches `{text}`"));
    }
    Ok(())
}

fn world_resolved(resolved: &Option<Resolved>) -> Result<&Resolved, String> {
    resolved
        .as_ref()
        .ok_or_else(|| "the flag was not evaluated".to_owned())
}

/// Replaces `<name>` placeholders with a row of an Examples table.
fn fill(text: &str, header: &[String], row: &[String]) -> String {
    header
        .iter()
        .zip(row)
        .fold(text.to_owned(), |text, (name, value)| {
            text.replace(&format!("<{name}>"), value)
        })
}

fn fill_step(step: &Step, header: &[String], row: &[String]) -> Step {
    let mut step = step.clone();
    step.value = fill(&step.value, header, row);
    if let Some(table) = &mut step.table {
        for cells in &mut table.rows {
            for cell in cells {
                *cell = fill(cell, header, row);
            }
        }
    }
    step
}

/// Every case of a feature, with backgrounds prepended and outlines expanded.
fn cases(feature: &Feature) -> Vec<Case> {
    let mut found = Vec::new();
    let background =
        |steps: Option<&gherkin::Background>| steps.map(|b| b.steps.clone()).unwrap_or_default();
    let mut groups = vec![(
        feature.tags.clone(),
        background(feature.background.as_ref()),
        &feature.scenarios,
    )];
    for rule in &feature.rules {
        let mut tags = feature.tags.clone();
        tags.extend(rule.tags.iter().cloned());
        let mut steps = background(feature.background.as_ref());
        steps.extend(background(rule.background.as_ref()));
        groups.push((tags, steps, &rule.scenarios));
    }
    for (group_tags, background_steps, scenarios) in groups {
        for scenario in scenarios {
            let mut tags = group_tags.clone();
            tags.extend(scenario.tags.iter().cloned());
            let name = format!("{}: {}", feature.name, scenario.name);
            let mut steps = background_steps.clone();
            steps.extend(scenario.steps.iter().cloned());
            if scenario.examples.is_empty() {
                found.push(Case { name, tags, steps });
                continue;
            }
            for examples in &scenario.examples {
                let Some(table) = &examples.table else {
                    continue;
                };
                let Some((header, rows)) = table.rows.split_first() else {
                    continue;
                };
                for (index, row) in rows.iter().enumerate() {
                    let mut case_tags = tags.clone();
                    case_tags.extend(examples.tags.iter().cloned());
                    let label = examples.name.as_deref().unwrap_or("examples");
                    found.push(Case {
                        name: format!("{name} [{label} #{}: {}]", index + 1, row.join(" | ")),
                        tags: case_tags,
                        steps: steps.iter().map(|s| fill_step(s, header, row)).collect(),
                    });
                }
            }
        }
    }
    found
}

/// Doubles the backslash of every table-cell escape other than `\n`, `\|` and `\\`.
///
/// Gherkin keeps the backslash of an unknown escape such as `\"` (the testbed's JSON cells rely on
/// it), but the `gherkin` crate rejects the file instead; doubled, it reads back as written.
fn keep_unknown_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if !line.trim_start().starts_with('|') {
            out.push_str(line);
            continue;
        }
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '\\' {
                match chars.peek() {
                    Some(&next @ ('n' | '|' | '\\')) => {
                        out.push(next);
                        chars.next();
                    }
                    _ => out.push('\\'),
                }
            }
        }
    }
    out
}

fn testbed_dir() -> PathBuf {
    match std::env::var_os("SLUICE_FLAGD_TESTBED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/flagd-testbed"),
    }
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

    let steps = Steps::new();
    let (mut passed, mut skipped) = (0, 0);
    let mut failures = Vec::new();
    for path in &features {
        let text = std::fs::read_to_string(path).unwrap();
        let mut feature = Feature::parse(keep_unknown_escapes(&text), GherkinEnv::default())
            .unwrap_or_else(|error| panic!("{}: {error:?}", path.display()));
        feature.path = Some(path.clone());
        for case in cases(&feature) {
            if case
                .tags
                .iter()
                .any(|tag| EXCLUDED_TAGS.contains(&tag.as_str()))
            {
                skipped += 1;
                continue;
            }
            let mut world = World::default();
            let outcome = case.steps.iter().try_for_each(|step| {
                run_step(&steps, &engine, &mut world, step)
                    .map_err(|error| format!("step `{}`: {error}", step.value))
            });
            match outcome {
                Ok(()) => passed += 1,
                Err(error) => failures.push(format!("{}\n    {error}", case.name)),
            }
        }
    }

    let mut report = format!(
        "flagd testbed: {passed} passed, {} failed ({skipped} skipped by tag)",
        failures.len()
    );
    for failure in &failures {
        let _ = write!(report, "\n  FAILED {failure}");
    }
    // Written to the stderr handle directly, so the count shows even when output is captured.
    let _ = writeln!(std::io::stderr(), "{report}");
    assert!(
        failures.is_empty(),
        "{} flagd testbed cases failed; the report is above",
        failures.len()
    );
    assert!(
        passed >= MIN_CASES,
        "only {passed} testbed cases ran; expected at least {MIN_CASES}"
    );
}
