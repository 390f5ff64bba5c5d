//! Shared support for running flagd-testbed's Gherkin suites against Sluice.
//!
//! This crate locates the testbed, reads and expands its scenarios ([`read_cases`]), matches
//! and applies the steps that `flagd-testbed/HARNESS.md` describes ([`Steps`]), and compares a
//! resolved result with the expectations. A harness supplies only how a flag is evaluated (a
//! [`World`] in, a [`Resolved`] out), which cases it runs, and how it reports.

#![warn(missing_docs)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use gherkin::{Feature, GherkinEnv, Step};
use regex::{Captures, Regex};
use serde_json::{Map, Value, json};

/// Where the testbed is: `SLUICE_FLAGD_TESTBED` if set, else `../shared/flagd-testbed` beside
/// the workspace.
pub fn testbed_dir() -> PathBuf {
    match std::env::var_os("SLUICE_FLAGD_TESTBED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/flagd-testbed"),
    }
}

/// One expanded scenario: its name, tags, and steps with placeholders filled in.
#[derive(Debug, Clone)]
pub struct Case {
    /// The feature and scenario names, plus the Examples row for an outline.
    pub name: String,
    /// The tags of the feature, rule, scenario and Examples block.
    pub tags: Vec<String>,
    /// Background steps followed by the scenario's steps.
    pub steps: Vec<Step>,
}

impl Case {
    /// Whether the case carries any of `tags` (written without the `@`).
    pub fn tagged(&self, tags: &[&str]) -> bool {
        self.tags.iter().any(|tag| tags.contains(&tag.as_str()))
    }
}

/// Reads a `.feature` file and expands it into its cases.
pub fn read_cases(path: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut feature = Feature::parse(keep_unknown_escapes(&text), GherkinEnv::default())
        .map_err(|error| format!("{}: {error:?}", path.display()))?;
    feature.path = Some(path.to_owned());
    Ok(cases(&feature))
}

/// The expected value type of the flag under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Boolean`.
    Boolean,
    /// `String`.
    String,
    /// `Integer`.
    Integer,
    /// `Float`.
    Float,
    /// `Object`.
    Object,
}

impl Kind {
    /// The type a step names.
    pub fn parse(name: &str) -> Result<Kind, String> {
        Ok(match name {
            "Boolean" => Kind::Boolean,
            "String" => Kind::String,
            "Integer" => Kind::Integer,
            "Float" => Kind::Float,
            "Object" => Kind::Object,
            other => return Err(format!("unknown type `{other}`")),
        })
    }

    /// A value written in a step, read as this type. Floats keep float semantics (`1` is
    /// `1.0`, `-0.0` stays negative), strings are verbatim.
    pub fn value(self, text: &str) -> Result<Value, String> {
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

    /// Whether a JSON value is of this type, as a client without the type in its request
    /// must check (OFREP ADR-0003).
    pub fn admits(self, value: &Value) -> bool {
        match self {
            Kind::Boolean => value.is_boolean(),
            Kind::String => value.is_string(),
            Kind::Integer => value.as_number().is_some_and(|n| {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }),
            Kind::Float => value.is_number(),
            Kind::Object => value.is_object(),
        }
    }
}

/// What an evaluation resolved to, as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The value served (the caller's default on error).
    pub value: Value,
    /// The variant, if one was chosen.
    pub variant: Option<String>,
    /// The reason, such as `STATIC`, `TARGETING_MATCH` or `ERROR`.
    pub reason: String,
    /// The error code, if the evaluation failed.
    pub error: Option<String>,
    /// The flag's metadata.
    pub metadata: Map<String, Value>,
}

/// The state of one scenario.
#[derive(Debug, Default)]
pub struct World {
    /// The type of the flag under test, once a flag step has run.
    pub kind: Option<Kind>,
    /// The flag key.
    pub key: String,
    /// The caller's default value, of type `kind`.
    pub default: Value,
    /// The evaluation context built by the context steps.
    pub context: Map<String, Value>,
    /// The result, once the flag was evaluated.
    pub resolved: Option<Resolved>,
}

impl World {
    /// The flag type, or an error if no flag step has run.
    pub fn kind(&self) -> Result<Kind, String> {
        self.kind.ok_or_else(|| "no flag was chosen".to_owned())
    }

    /// The result, or an error if the flag was not evaluated.
    pub fn resolved(&self) -> Result<&Resolved, String> {
        self.resolved
            .as_ref()
            .ok_or_else(|| "the flag was not evaluated".to_owned())
    }
}

/// What a harness must do after [`Steps::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing: the step was applied to the world.
    Continue,
    /// Evaluate the world's flag and store the result in [`World::resolved`].
    Evaluate,
}

/// The step patterns. Values are greedy `(.*)` so that embedded quotes survive.
#[derive(Debug)]
pub struct Steps {
    setup: Regex,
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
    /// The steps of a suite whose setup step reads `setup` (`an evaluator`, `a stable flagd
    /// provider`); every case starts from a fresh [`World`], so that step does nothing.
    pub fn new(setup: &str) -> Steps {
        #[allow(clippy::expect_used)]
        let pattern = |text: &str| Regex::new(text).expect("a valid step pattern");
        Steps {
            setup: pattern(&format!("^{}$", regex::escape(setup))),
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

    /// The name of the option a step sets (`an option "cache" of type ...`), if it sets one.
    pub fn option<'t>(&self, text: &'t str) -> Option<&'t str> {
        self.option
            .captures(text)
            .and_then(|captures| captures.get(1))
            .map(|name| name.as_str())
    }

    /// Applies a step to the world: records a flag, default or context, or checks an
    /// expectation against [`World::resolved`]. The evaluation step is the harness's, so
    /// it returns [`Next::Evaluate`].
    pub fn apply(&self, world: &mut World, step: &Step) -> Result<Next, String> {
        let text = step.value.as_str();
        let group = |captures: &Captures<'_>, i: usize| captures[i].to_owned();
        if self.setup.is_match(text) {
            // Every case starts from a fresh world.
        } else if let Some(name) = self.option(text) {
            if name != "cache" {
                return Err(format!("option `{name}` is not supported"));
            }
        } else if let Some(captures) = self.flag.captures(text) {
            let kind = Kind::parse(&captures[1])?;
            world.kind = Some(kind);
            world.key = group(&captures, 2);
            world.default = kind.value(&captures[3])?;
        } else if let Some(captures) = self.context_key.captures(text) {
            let kind = Kind::parse(&captures[2])?;
            world
                .context
                .insert(group(&captures, 1), kind.value(&captures[3])?);
        } else if let Some(captures) = self.nested.captures(text) {
            let outer = world
                .context
                .entry(group(&captures, 1))
                .or_insert_with(|| json!({}));
            if !outer.is_object() {
                *outer = json!({});
            }
            if let Value::Object(fields) = outer {
                fields.insert(group(&captures, 2), Value::from(&captures[3]));
            }
        } else if let Some(captures) = self.targeting_key.captures(text) {
            world
                .context
                .insert("targetingKey".to_owned(), Value::from(&captures[1]));
        } else if self.evaluated.is_match(text) {
            return Ok(Next::Evaluate);
        } else if let Some(captures) = self.value.captures(text) {
            let expected = world.kind()?.value(&captures[1])?;
            let resolved = world.resolved()?;
            if !same(&resolved.value, &expected) {
                return Err(format!(
                    "value {}, expected {expected} (variant {:?}, reason {}, error {:?})",
                    resolved.value, resolved.variant, resolved.reason, resolved.error
                ));
            }
        } else if let Some(captures) = self.reason.captures(text) {
            let actual = &world.resolved()?.reason;
            if actual != &captures[1] {
                return Err(format!("reason {actual}, expected {}", &captures[1]));
            }
        } else if let Some(captures) = self.error_code.captures(text) {
            let actual = world.resolved()?.error.as_deref().unwrap_or_default();
            if actual != &captures[1] {
                return Err(format!(
                    "error code `{actual}`, expected `{}`",
                    &captures[1]
                ));
            }
        } else if self.metadata_contains.is_match(text) {
            let metadata = &world.resolved()?.metadata;
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
        } else if self.metadata_empty.is_match(text) {
            let metadata = &world.resolved()?.metadata;
            if !metadata.is_empty() {
                return Err(format!("metadata {metadata:?}, expected none"));
            }
        } else {
            return Err(format!("no step matches `{text}`"));
        }
        Ok(Next::Continue)
    }

    /// Runs a case's steps in a fresh world, calling `evaluate` for the evaluation step.
    pub fn run(
        &self,
        case: &Case,
        mut evaluate: impl FnMut(&World) -> Result<Resolved, String>,
    ) -> Result<(), String> {
        let mut world = World::default();
        case.steps.iter().try_for_each(|step| {
            let applied = match self.apply(&mut world, step) {
                Ok(Next::Evaluate) => evaluate(&world).map(|resolved| {
                    world.resolved = Some(resolved);
                }),
                Ok(Next::Continue) => Ok(()),
                Err(error) => Err(error),
            };
            applied.map_err(|error| step_failed(step, &error))
        })
    }
}

/// The error of a case that failed at `step`.
pub fn step_failed(step: &Step, error: &str) -> String {
    format!("step `{}`: {error}", step.value)
}

/// Whether two values are equal as the testbed compares them: numbers numerically.
pub fn same(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => actual == expected,
    }
}

/// Passed and failed cases of a run.
#[derive(Debug, Default)]
pub struct Tally {
    /// How many cases passed.
    pub passed: usize,
    /// The failed cases, each its name and error.
    pub failures: Vec<String>,
}

impl Tally {
    /// Counts a case's outcome.
    pub fn record(&mut self, case: &Case, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.passed += 1,
            Err(error) => self.failures.push(format!("{}\n    {error}", case.name)),
        }
    }

    /// Writes `summary` and every failure to the stderr handle directly, so the counts show
    /// even when test output is captured.
    pub fn report(&self, summary: &str) {
        let mut report = summary.to_owned();
        for failure in &self.failures {
            let _ = write!(report, "\n  FAILED {failure}");
        }
        let _ = writeln!(std::io::stderr(), "{report}");
    }
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
