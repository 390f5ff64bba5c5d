//! flagd targeting: JSON Logic compiled once by datalogic-rs, run against the context.
//!
//! Compiling a flag's targeting does three things in one walk over the rule. It substitutes
//! `{"$ref": "name"}` with the rule from `$evaluators`. It checks every operator against the ones
//! flagd's evaluator knows, so that an operator flagd would reject (datalogic-rs knows more, such
//! as `length` or `??`) fails here as it fails there. And it renames flagd's four custom operators
//! to private names (see [`super::operators::renamed`]), because datalogic-rs's built-ins of the
//! same names behave differently and cannot be overridden. What fails to compile is kept as an
//! error message: flagd reports these problems when the flag is evaluated, as `PARSE_ERROR`,
//! and the document still loads.
//!
//! Evaluation builds the data JSON Logic sees in an arena, borrowing every string from the
//! context: the attributes, plus `{"$flagd": {"flagKey": .., "timestamp": ..}}` with the
//! timestamp taken from [`Context::timestamp`], the caller's clock.

use std::cell::RefCell;
use std::sync::{Arc, LazyLock};

use datalogic_rs::bumpalo::Bump;
use datalogic_rs::bumpalo::collections::Vec as ArenaVec;
use datalogic_rs::datavalue::{NumberValue, OwnedDataValue};
use datalogic_rs::{DataValue, EvaluationConfig};
use serde_json::{Map, Value};

use super::operators::{self, Affix, Fractional, SemVer};
use crate::context::Context;
use crate::engine::{Flag, LogicOutcome};
use crate::evaluation::ErrorCode;

/// The JSON Logic operators flagd's evaluator (`diegoholiveira/jsonlogic` v3) knows, besides
/// flagd's own four.
#[rustfmt::skip]
const JSON_LOGIC_OPERATORS: &[&str] = &[
    "var", "missing", "missing_some", "if", "?:", "==", "===", "!=", "!==", "!", "!!", "or", "and",
    "<", "<=", ">", ">=", "max", "min", "+", "-", "*", "/", "%", "in", "cat", "substr", "merge",
    "map", "filter", "reduce", "all", "some", "none",
];

/// How deeply targeting may nest once `$ref`s are substituted.
const MAX_DEPTH: usize = 128;

/// How many values targeting may hold once `$ref`s are substituted, so that evaluators that
/// refer to each other many times over cannot blow up.
const MAX_NODES: usize = 100_000;

/// How deeply a context may nest to be given to targeting.
const MAX_CONTEXT_DEPTH: usize = 128;

/// An arena that grew beyond this is dropped after use rather than kept for the next evaluation.
const MAX_RETAINED_ARENA: usize = 1 << 20;

/// The engine every flagd rule is compiled and run by, with flagd's operators registered.
static ENGINE: LazyLock<datalogic_rs::Engine> = LazyLock::new(|| {
    datalogic_rs::Engine::builder()
        // JSON Logic compares unlike values as unequal; it does not fail.
        .with_config(EvaluationConfig::default().with_loose_equality_errors(false))
        .add_operator(operators::FRACTIONAL, Fractional)
        .add_operator(operators::SEM_VER, SemVer)
        .add_operator(operators::STARTS_WITH, Affix { suffix: false })
        .add_operator(operators::ENDS_WITH, Affix { suffix: true })
        .build()
});

thread_local! {
    /// A reusable arena per thread, so evaluation does not start from an empty allocator.
    static ARENA: RefCell<Bump> = RefCell::new(Bump::new());
}

/// Runs `run` with this thread's arena, cleared afterwards, or with a fresh one when that is
/// unavailable (the thread is shutting down, or this is a nested call).
fn with_arena(run: impl FnOnce(&Bump) -> LogicOutcome) -> LogicOutcome {
    let mut run = Some(run);
    let reused = ARENA.try_with(|cell| {
        let mut arena = cell.try_borrow_mut().ok()?;
        let result = run.take()?(&arena);
        if arena.allocated_bytes() > MAX_RETAINED_ARENA {
            *arena = Bump::new();
        } else {
            arena.reset();
        }
        Some(result)
    });
    match (reused, run) {
        (Ok(Some(result)), _) => result,
        (_, Some(run)) => run(&Bump::new()),
        // `run` is only taken on the path that returns its result.
        (_, None) => LogicOutcome::Failed(ErrorCode::General, "targeting did not run".into()),
    }
}

/// A flag's compiled targeting.
#[derive(Debug, Clone)]
pub(crate) struct Logic {
    rule: Rule,
}

#[derive(Debug, Clone)]
enum Rule {
    /// No targeting, or `{}`: the flag is static.
    Static,
    /// A rule datalogic-rs compiled.
    Compiled(Arc<datalogic_rs::Logic>),
    /// Targeting that cannot run, and why; it evaluates to `PARSE_ERROR`.
    Invalid(Arc<str>),
}

impl Logic {
    /// Compiles a flag's targeting, substituting `$ref`s from `evaluators`.
    pub(crate) fn compile(targeting: Option<&Value>, evaluators: &Map<String, Value>) -> Logic {
        let rule = match targeting {
            None | Some(Value::Null) => Rule::Static,
            Some(Value::Object(rule)) if rule.is_empty() => Rule::Static,
            Some(targeting) => {
                let mut preparer = Preparer {
                    evaluators,
                    expanding: Vec::new(),
                    nodes: 0,
                };
                match preparer.prepare(targeting, 0) {
                    Ok(rule) => match ENGINE.compile(rule) {
                        Ok(logic) => Rule::Compiled(Arc::new(logic)),
                        Err(error) => Rule::Invalid(format!("invalid targeting: {error}").into()),
                    },
                    Err(message) => Rule::Invalid(message.into()),
                }
            }
        };
        Logic { rule }
    }

    /// Whether the targeting failed to compile, with the reason.
    #[cfg(test)]
    pub(crate) fn error(&self) -> Option<&str> {
        match &self.rule {
            Rule::Invalid(message) => Some(message),
            _ => None,
        }
    }

    /// Runs the targeting for `flag` and `context`.
    pub(crate) fn resolve(&self, flag: &Flag, context: &Context) -> LogicOutcome {
        let logic = match &self.rule {
            // flagd serves the caller's default with reason DEFAULT when there is no default variant.
            Rule::Static if flag.default_variant.is_none() => return LogicOutcome::NoVariant,
            Rule::Static => return LogicOutcome::Static,
            Rule::Invalid(message) => {
                return LogicOutcome::Failed(ErrorCode::ParseError, message.to_string());
            }
            Rule::Compiled(logic) => logic,
        };
        with_arena(|arena| {
            let Some(data) = data(arena, &flag.info.key, context) else {
                return LogicOutcome::Failed(
                    ErrorCode::InvalidContext,
                    format!("the context nests more than {MAX_CONTEXT_DEPTH} levels deep"),
                );
            };
            match ENGINE.evaluate(logic, data, arena) {
                Ok(result) => outcome(result),
                Err(error) => LogicOutcome::Failed(
                    ErrorCode::ParseError,
                    format!("targeting failed: {error}"),
                ),
            }
        })
    }
}

/// What a targeting result selects, as flagd reads it.
fn outcome(result: &DataValue<'_>) -> LogicOutcome {
    match result {
        DataValue::Null => LogicOutcome::NoVariant,
        DataValue::String(name) => LogicOutcome::Variant((*name).to_owned()),
        DataValue::Bool(value) => LogicOutcome::Variant(value.to_string()),
        DataValue::Number(number) => LogicOutcome::Variant(operators::number_text(number)),
        // flagd takes the JSON text without its quotes, which names no variant of any sane flag.
        other => LogicOutcome::Variant(other.to_json_string().replace('"', "")),
    }
}

/// Turns targeting into the rule datalogic-rs compiles; see the module documentation.
struct Preparer<'e> {
    evaluators: &'e Map<String, Value>,
    /// The evaluators being substituted, innermost last, to catch cycles.
    expanding: Vec<&'e str>,
    nodes: usize,
}

impl<'e> Preparer<'e> {
    fn prepare(&mut self, value: &'e Value, depth: usize) -> Result<OwnedDataValue, String> {
        if depth > MAX_DEPTH {
            return Err(format!("targeting nests more than {MAX_DEPTH} levels deep"));
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(format!(
                "targeting holds more than {MAX_NODES} values once `$ref`s are substituted"
            ));
        }
        Ok(match value {
            Value::Null => OwnedDataValue::Null,
            Value::Bool(value) => OwnedDataValue::Bool(*value),
            Value::Number(number) => OwnedDataValue::Number(number_value(number)),
            Value::String(text) => OwnedDataValue::String(text.clone()),
            Value::Array(items) => OwnedDataValue::Array(
                items
                    .iter()
                    .map(|item| self.prepare(item, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(fields) => {
                let mut entries = fields.iter();
                match (entries.next(), entries.next()) {
                    (None, _) => OwnedDataValue::Object(Vec::new()),
                    (Some((operator, args)), None) => self.operation(operator, args, depth)?,
                    (Some(_), Some(_)) => {
                        let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
                        return Err(format!(
                            "a JSON Logic operation has exactly one key; this one has {}: `{}`",
                            keys.len(),
                            keys.join("`, `")
                        ));
                    }
                }
            }
        })
    }

    fn operation(
        &mut self,
        operator: &'e str,
        args: &'e Value,
        depth: usize,
    ) -> Result<OwnedDataValue, String> {
        if operator == "$ref" {
            let Some(name) = args.as_str() else {
                return Err("`$ref` must name an evaluator".into());
            };
            let Some((name, rule)) = self.evaluators.get_key_value(name) else {
                return Err(format!(
                    "`$ref` names `{name}`, which is not in `$evaluators`"
                ));
            };
            if self.expanding.contains(&name.as_str()) {
                return Err(format!(
                    "evaluator `{name}` refers to itself through {}",
                    self.expanding.join(" -> ")
                ));
            }
            self.expanding.push(name);
            let result = self.prepare(rule, depth + 1);
            self.expanding.pop();
            return result;
        }
        let name = match operators::renamed(operator) {
            Some(name) => name,
            None if JSON_LOGIC_OPERATORS.contains(&operator) => operator,
            None => return Err(format!("unknown operator `{operator}`")),
        };
        let args = self.prepare(args, depth + 1)?;
        Ok(OwnedDataValue::Object(vec![(name.to_owned(), args)]))
    }
}

/// A JSON number as datalogic-rs holds it; integers beyond `i64` become floats.
fn number_value(number: &serde_json::Number) -> NumberValue {
    match number.as_i64() {
        Some(integer) => NumberValue::Integer(integer),
        None => NumberValue::Float(number.as_f64().unwrap_or(f64::NAN)),
    }
}

/// The data targeting sees: the context's attributes and `$flagd`, borrowed into `arena`.
/// `None` when the context nests too deeply.
fn data<'a>(arena: &'a Bump, flag_key: &'a str, context: &'a Context) -> Option<&'a DataValue<'a>> {
    let attributes = context.attributes();
    let mut fields = ArenaVec::with_capacity_in(attributes.len() + 1, arena);
    for (name, value) in attributes {
        // flagd replaces any `$flagd` the caller sent.
        if name != "$flagd" {
            fields.push((name.as_str(), data_value(arena, value, 1)?));
        }
    }
    let mut flagd = ArenaVec::with_capacity_in(2, arena);
    flagd.push(("flagKey", DataValue::String(flag_key)));
    if let Some(timestamp) = context.timestamp() {
        flagd.push((
            "timestamp",
            DataValue::Number(NumberValue::Integer(timestamp)),
        ));
    }
    fields.push(("$flagd", DataValue::Object(flagd.into_bump_slice())));
    Some(arena.alloc(DataValue::Object(fields.into_bump_slice())))
}

fn data_value<'a>(arena: &'a Bump, value: &'a Value, depth: usize) -> Option<DataValue<'a>> {
    if depth > MAX_CONTEXT_DEPTH {
        return None;
    }
    Some(match value {
        Value::Null => DataValue::Null,
        Value::Bool(value) => DataValue::Bool(*value),
        Value::Number(number) => DataValue::Number(number_value(number)),
        Value::String(text) => DataValue::String(text),
        Value::Array(items) => {
            let mut values = ArenaVec::with_capacity_in(items.len(), arena);
            for item in items {
                values.push(data_value(arena, item, depth + 1)?);
            }
            DataValue::Array(values.into_bump_slice())
        }
        Value::Object(fields) => {
            let mut values = ArenaVec::with_capacity_in(fields.len(), arena);
            for (name, item) in fields {
                values.push((name.as_str(), data_value(arena, item, depth + 1)?));
            }
            DataValue::Object(values.into_bump_slice())
        }
    })
}
