//! flagd's flag definition format, loaded into the same engine.
//!
//! A flagd document has `flags` (each with `state`, `variants`, `defaultVariant`, JSON Logic
//! `targeting` and `metadata`), flag-set `metadata`, and `$evaluators`: named rules that
//! targeting includes with `{"$ref": "name"}`. [`FlagdFile::from_value`] checks the structure
//! and reports every problem with its path; [`FlagdFile::compile`] compiles each flag's targeting
//! once into an [`Engine`], which evaluates flagd flags like Sluice's own, with flagd's reasons.
//!
//! The one design decision: targeting is not checked at load beyond being a mapping. flagd
//! reports an unknown operator or a `$ref` to no evaluator only when the flag is evaluated, and
//! its conformance suite expects the document to load and those flags to evaluate to `ERROR`
//! with `PARSE_ERROR`. So such targeting compiles into a rule that fails that way.
//!
//! ```
//! use sluice_core::{Context, Format, Reason, Source};
//!
//! let text = r#"{
//!   "flags": {
//!     "new-checkout": {
//!       "state": "ENABLED",
//!       "variants": { "on": true, "off": false },
//!       "defaultVariant": "off",
//!       "targeting": { "if": [{ "$ref": "staff" }, "on", null] }
//!     }
//!   },
//!   "$evaluators": { "staff": { "ends_with": [{ "var": "email" }, "@example.com"] } }
//! }"#;
//! let engine = Source::parse(Some("flags.json"), text, Format::Json)?.compile(None)?;
//! let context = Context::with_key("user-1").set("email", "ada@example.com");
//! let result = engine.boolean("new-checkout", &context, false);
//! assert!(result.value);
//! assert_eq!(result.details.reason, Reason::TargetingMatch);
//! # Ok::<(), sluice_core::Errors>(())
//! ```

mod logic;
mod operators;

use serde_json::{Map, Value};

use crate::compile::check_key;
use crate::engine::{Engine, Flag, FlagInfo, Targeting};
use crate::error::{Error, ErrorKind, Errors, Path};

pub(crate) use logic::Logic;

/// The largest integer a JSON number carries exactly everywhere (2^53 - 1), as flagd's schema
/// requires of number variants.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// One flag of a flagd document.
#[derive(Debug, Clone, PartialEq)]
struct FlagdFlag {
    enabled: bool,
    variants: Vec<(String, Value)>,
    default_variant: Option<String>,
    targeting: Option<Value>,
    metadata: Map<String, Value>,
}

/// A flagd flags document.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagdFile {
    flags: Vec<(String, FlagdFlag)>,
    metadata: Map<String, Value>,
    evaluators: Map<String, Value>,
}

/// Renders a JSON value for a message, briefly.
fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let short: String = text.chars().take(57).collect();
        format!("{short}...")
    } else {
        text
    }
}

fn structure(path: Path, message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Structure, path, message)
}

impl FlagdFile {
    /// Reads a flagd document, reporting every structural problem with its path.
    ///
    /// Fields flagd does not know are ignored, as flagd ignores them. Targeting is only
    /// required to be a mapping: problems inside it surface when the flag is evaluated.
    pub fn from_value(value: Value) -> Result<FlagdFile, Vec<Error>> {
        let root = Path::root();
        let Value::Object(top) = value else {
            return Err(vec![structure(
                root,
                "expected a mapping with `flags` at the top",
            )]);
        };
        let mut errors = Vec::new();
        let mut file = FlagdFile {
            flags: Vec::new(),
            metadata: Map::new(),
            evaluators: Map::new(),
        };
        for (name, value) in top {
            let path = root.key(name.clone());
            match name.as_str() {
                "flags" => match value {
                    Value::Object(flags) => {
                        for (key, definition) in flags {
                            let at = path.key(key.clone());
                            if let Some(flag) = read_flag(&key, definition, &at, &mut errors) {
                                file.flags.push((key, flag));
                            }
                        }
                    }
                    Value::Null => {}
                    other => errors.push(structure(
                        path,
                        format!(
                            "expected a mapping of flag keys to flag definitions, found {}",
                            show(&other)
                        ),
                    )),
                },
                "metadata" => file.metadata = read_metadata(value, &path, &mut errors),
                "$evaluators" => file.evaluators = read_evaluators(value, &path, &mut errors),
                // flagd's schema allows other fields here, such as `$schema`.
                _ => {}
            }
        }
        if errors.is_empty() {
            Ok(file)
        } else {
            Err(errors)
        }
    }

    /// Compiles the document: every flag's targeting is compiled once, here.
    ///
    /// Flag metadata is merged over the flag-set metadata. flagd documents have no
    /// environments, so the engine's environment is `None`.
    pub fn compile(&self) -> Result<Engine, Errors> {
        let flags = self
            .flags
            .iter()
            .map(|(key, definition)| {
                let mut metadata = self.metadata.clone();
                metadata.extend(definition.metadata.clone());
                let default_variant = definition.default_variant.as_ref().and_then(|name| {
                    definition
                        .variants
                        .iter()
                        .position(|(variant, _)| variant == name)
                });
                Flag {
                    info: FlagInfo {
                        key: key.clone(),
                        flag_type: None,
                        metadata,
                        ..FlagInfo::default()
                    },
                    variants: definition
                        .variants
                        .iter()
                        .map(|(name, value)| (Box::from(name.as_str()), value.clone()))
                        .collect(),
                    default_variant,
                    // A disabled flagd flag serves the caller's default.
                    off_variant: None,
                    enabled: definition.enabled,
                    prerequisites: Box::new([]),
                    targeting: Targeting::Logic(Logic::compile(
                        definition.targeting.as_ref(),
                        &self.evaluators,
                    )),
                    // flagd's `fractional` hashes its own bucketing value, unsalted.
                    salt: Box::from(""),
                }
            })
            .collect();
        Ok(Engine::from_parts(flags, Vec::new(), None))
    }

    /// The document as flagd JSON again, as SDKs that load flagd files expect it.
    pub fn to_value(&self) -> Value {
        let flags: Map<String, Value> = self
            .flags
            .iter()
            .map(|(key, flag)| {
                let mut definition = Map::new();
                let state = if flag.enabled { "ENABLED" } else { "DISABLED" };
                definition.insert("state".into(), Value::String(state.into()));
                let variants: Map<String, Value> = flag.variants.iter().cloned().collect();
                definition.insert("variants".into(), Value::Object(variants));
                if let Some(default) = &flag.default_variant {
                    definition.insert("defaultVariant".into(), Value::String(default.clone()));
                }
                if let Some(targeting) = &flag.targeting {
                    definition.insert("targeting".into(), targeting.clone());
                }
                if !flag.metadata.is_empty() {
                    definition.insert("metadata".into(), Value::Object(flag.metadata.clone()));
                }
                (key.clone(), Value::Object(definition))
            })
            .collect();
        let mut document = Map::new();
        document.insert("flags".into(), Value::Object(flags));
        if !self.metadata.is_empty() {
            document.insert("metadata".into(), Value::Object(self.metadata.clone()));
        }
        if !self.evaluators.is_empty() {
            document.insert("$evaluators".into(), Value::Object(self.evaluators.clone()));
        }
        Value::Object(document)
    }

    /// The flag keys, in document order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.flags.iter().map(|(key, _)| key.as_str())
    }

    /// The number of flags.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether there are no flags.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// The flag-set metadata.
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }
}

fn read_flag(key: &str, value: Value, path: &Path, errors: &mut Vec<Error>) -> Option<FlagdFlag> {
    let before = errors.len();
    if let Err(message) = check_key(key) {
        errors.push(Error::new(ErrorKind::Invalid, path.clone(), message));
    }
    let Value::Object(fields) = value else {
        errors.push(structure(
            path.clone(),
            format!("expected a flag definition with `state`, `variants` and `defaultVariant`, found {}", show(&value)),
        ));
        return None;
    };
    let mut flag = FlagdFlag {
        enabled: true,
        variants: Vec::new(),
        default_variant: None,
        targeting: None,
        metadata: Map::new(),
    };
    let mut variants = None;
    for (name, value) in fields {
        let at = path.key(name.clone());
        match name.as_str() {
            "state" => match value.as_str() {
                Some("ENABLED") => flag.enabled = true,
                Some("DISABLED") => flag.enabled = false,
                _ => errors.push(structure(
                    at,
                    format!("expected `ENABLED` or `DISABLED`, found {}", show(&value)),
                )),
            },
            "variants" => variants = Some(read_variants(value, &at, errors)),
            "defaultVariant" => match value {
                Value::String(name) => flag.default_variant = Some(name),
                Value::Null => {}
                other => errors.push(structure(
                    at,
                    format!(
                        "expected a variant name, or null for the caller's default, found {}",
                        show(&other)
                    ),
                )),
            },
            "targeting" => match value {
                Value::Object(_) => flag.targeting = Some(value),
                Value::Null => {}
                other => errors.push(structure(
                    at,
                    format!(
                        "expected a JSON Logic rule (a mapping), found {}",
                        show(&other)
                    ),
                )),
            },
            "metadata" => flag.metadata = read_metadata(value, &at, errors),
            // flagd ignores fields it does not know.
            _ => {}
        }
    }
    // flagd's schema gives a flag without variants the boolean pair.
    flag.variants = variants.unwrap_or_else(|| {
        vec![
            ("true".to_owned(), Value::Bool(true)),
            ("false".to_owned(), Value::Bool(false)),
        ]
    });
    if let Some(name) = &flag.default_variant
        && !flag.variants.iter().any(|(variant, _)| variant == name)
    {
        let names: Vec<&str> = flag.variants.iter().map(|(v, _)| v.as_str()).collect();
        errors.push(Error::new(
            ErrorKind::UnknownReference,
            path.key("defaultVariant"),
            format!(
                "`{name}` is not a variant of this flag; its variants are `{}`",
                names.join("`, `")
            ),
        ));
    }
    (errors.len() == before).then_some(flag)
}

/// The type of a variant value, for messages; `None` for values a variant cannot have.
fn variant_type(value: &Value) -> Option<&'static str> {
    match value {
        Value::Bool(_) => Some("boolean"),
        Value::String(_) => Some("string"),
        Value::Number(_) => Some("number"),
        Value::Object(_) => Some("object"),
        Value::Null | Value::Array(_) => None,
    }
}

fn read_variants(value: Value, path: &Path, errors: &mut Vec<Error>) -> Vec<(String, Value)> {
    let Value::Object(map) = value else {
        errors.push(structure(
            path.clone(),
            format!(
                "expected a mapping of variant names to values, found {}",
                show(&value)
            ),
        ));
        return Vec::new();
    };
    if map.is_empty() {
        errors.push(Error::new(
            ErrorKind::Invalid,
            path.clone(),
            "a flag needs at least one variant",
        ));
    }
    let mut first: Option<(&'static str, String)> = None;
    let mut variants = Vec::with_capacity(map.len());
    for (name, value) in map {
        let at = path.key(name.clone());
        if name.is_empty() {
            errors.push(Error::new(
                ErrorKind::Invalid,
                at.clone(),
                "variant names must not be empty",
            ));
        }
        let Some(kind) = variant_type(&value) else {
            errors.push(structure(
                at,
                format!(
                    "variant values must be booleans, strings, numbers or objects, not {}",
                    show(&value)
                ),
            ));
            continue;
        };
        if let Value::Number(number) = &value {
            let unsafe_integer = match (number.as_i64(), number.as_u64()) {
                (Some(integer), _) => integer.unsigned_abs() > MAX_SAFE_INTEGER,
                (None, Some(_)) => true,
                (None, None) => false,
            };
            if unsafe_integer {
                errors.push(Error::new(
                    ErrorKind::Invalid,
                    at.clone(),
                    format!("{number} is beyond ±{MAX_SAFE_INTEGER}, the integers JSON numbers carry exactly"),
                ));
            }
        }
        match &first {
            None => first = Some((kind, name.clone())),
            Some((first_kind, first_name)) if *first_kind != kind => errors.push(Error::new(
                ErrorKind::TypeMismatch,
                at,
                format!(
                    "variant `{name}` is a {kind} but `{first_name}` is a {first_kind}: a flag's variants must all have one type"
                ),
            )),
            Some(_) => {}
        }
        variants.push((name, value));
    }
    variants
}

fn read_metadata(value: Value, path: &Path, errors: &mut Vec<Error>) -> Map<String, Value> {
    let map = match value {
        Value::Object(map) => map,
        Value::Null => return Map::new(),
        other => {
            errors.push(structure(
                path.clone(),
                format!(
                    "expected a mapping of metadata names to values, found {}",
                    show(&other)
                ),
            ));
            return Map::new();
        }
    };
    for (name, value) in &map {
        if !(value.is_string() || value.is_number() || value.is_boolean()) {
            errors.push(Error::new(
                ErrorKind::Invalid,
                path.key(name.clone()),
                format!(
                    "metadata values must be strings, numbers or booleans, not {}",
                    show(value)
                ),
            ));
        }
    }
    map
}

fn read_evaluators(value: Value, path: &Path, errors: &mut Vec<Error>) -> Map<String, Value> {
    let map = match value {
        Value::Object(map) => map,
        Value::Null => return Map::new(),
        other => {
            errors.push(structure(
                path.clone(),
                format!(
                    "expected a mapping of evaluator names to JSON Logic rules, found {}",
                    show(&other)
                ),
            ));
            return Map::new();
        }
    };
    for (name, rule) in &map {
        let at = path.key(name.clone());
        if name.is_empty() {
            errors.push(Error::new(
                ErrorKind::Invalid,
                at,
                "evaluator names must not be empty",
            ));
            continue;
        }
        match rule {
            Value::Object(fields) if !fields.is_empty() => {}
            _ => errors.push(structure(
                at,
                format!(
                    "an evaluator must be a JSON Logic rule (a non-empty mapping), not {}",
                    show(rule)
                ),
            )),
        }
    }
    map
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Context, ErrorCode, Format, Reason, Source};
    use serde_json::json;

    #[test]
    fn to_value_round_trips() {
        let document = json!({
            "$evaluators": {"e": {"in": ["a", "b"]}},
            "metadata": {"team": "x"},
            "flags": {"f": {"state": "DISABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a",
                "targeting": {"if": [{"$ref": "e"}, "b", null]}, "metadata": {"n": 1}}}
        });
        let file = FlagdFile::from_value(document).unwrap();
        let again = FlagdFile::from_value(file.to_value()).unwrap();
        assert_eq!(file, again);
    }

    fn engine(document: Value) -> Engine {
        FlagdFile::from_value(document).unwrap().compile().unwrap()
    }

    fn errors(document: Value) -> Vec<String> {
        FlagdFile::from_value(document)
            .unwrap_err()
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect()
    }

    fn flag(targeting: Value) -> Value {
        json!({
            "state": "ENABLED",
            "variants": { "a": "A", "b": "B", "true": "T", "false": "F", "1": "one" },
            "defaultVariant": "a",
            "targeting": targeting
        })
    }

    /// Evaluates a one-flag document with `targeting` and `$evaluators`: (variant, reason, error).
    fn run(
        targeting: Value,
        evaluators: Value,
        context: &Context,
    ) -> (Option<String>, Reason, Option<ErrorCode>) {
        let engine =
            engine(json!({ "flags": { "f": flag(targeting) }, "$evaluators": evaluators }));
        let result = engine.evaluate("f", context);
        (
            result.variant.map(str::to_owned),
            result.reason,
            result.error,
        )
    }

    fn variant(targeting: Value, context: &Context) -> Option<String> {
        run(targeting, json!({}), context).0
    }

    fn logic(targeting: Value, evaluators: Value) -> Logic {
        let Value::Object(evaluators) = evaluators else {
            panic!("evaluators must be a mapping")
        };
        Logic::compile(Some(&targeting), &evaluators)
    }

    #[test]
    fn refs_are_substituted_anywhere() {
        let evaluators = json!({
            "is_staff": { "ends_with": [{ "var": "email" }, "@example.com"] },
            "staff_or_beta": { "or": [{ "$ref": "is_staff" }, { "var": "beta" }] },
            "pick": { "if": [{ "$ref": "staff_or_beta" }, "b", null] }
        });
        let staff = Context::new().set("email", "ada@example.com");
        let beta = Context::new().set("beta", true);
        let other = Context::new().set("email", "bob@elsewhere.org");
        let targeting = json!({ "$ref": "pick" });
        assert_eq!(
            run(targeting.clone(), evaluators.clone(), &staff)
                .0
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            run(targeting.clone(), evaluators.clone(), &beta)
                .0
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            run(targeting, evaluators.clone(), &other).1,
            Reason::Default
        );
        // Inside arrays and as operator arguments too.
        let targeting = json!({ "if": [{ "and": [true, { "$ref": "is_staff" }] }, "b", "a"] });
        assert_eq!(run(targeting, evaluators, &staff).0.as_deref(), Some("b"));
    }

    #[test]
    fn unresolved_and_cyclic_refs_are_parse_errors_at_evaluation() {
        let missing = logic(json!({ "if": [{ "$ref": "nope" }, "a", "b"] }), json!({}));
        assert_eq!(
            missing.error(),
            Some("`$ref` names `nope`, which is not in `$evaluators`")
        );
        let cycle = logic(
            json!({ "$ref": "x" }),
            json!({ "x": { "!": [{ "$ref": "y" }] }, "y": { "!": [{ "$ref": "x" }] } }),
        );
        assert_eq!(
            cycle.error(),
            Some("evaluator `x` refers to itself through x -> y")
        );
        let not_a_name = logic(json!({ "$ref": 3 }), json!({}));
        assert_eq!(not_a_name.error(), Some("`$ref` must name an evaluator"));
        // The document loads; the flag evaluates to PARSE_ERROR.
        let (variant, reason, error) = run(json!({ "$ref": "nope" }), json!({}), &Context::new());
        assert_eq!(
            (variant, reason, error),
            (None, Reason::Error, Some(ErrorCode::ParseError))
        );
    }

    #[test]
    fn exponential_refs_are_bounded() {
        let mut evaluators = Map::new();
        evaluators.insert("e0".into(), json!({ "var": "x" }));
        for i in 1..40 {
            let previous = format!("e{}", i - 1);
            evaluators.insert(
                format!("e{i}"),
                json!({ "or": [{ "$ref": previous }, { "$ref": previous }] }),
            );
        }
        let logic = logic(json!({ "$ref": "e39" }), Value::Object(evaluators));
        assert!(
            logic
                .error()
                .is_some_and(|e| e.contains("more than 100000 values"))
        );
    }

    #[test]
    fn unknown_operators_are_parse_errors_at_evaluation() {
        for targeting in [
            json!({ "invalid": ["this is not valid targeting"] }),
            json!({ "if": [{ "length": ["abc"] }, "a", "b"] }),
            json!({ "??": [null, "a"] }),
            json!({ "a": 1, "b": 2 }),
        ] {
            let (variant, reason, error) = run(targeting.clone(), json!({}), &Context::new());
            assert_eq!(
                (variant, reason, error),
                (None, Reason::Error, Some(ErrorCode::ParseError)),
                "{targeting}"
            );
        }
        let unknown = logic(
            json!({ "if": [{ "length": ["abc"] }, "a", "b"] }),
            json!({}),
        );
        assert_eq!(unknown.error(), Some("unknown operator `length`"));
    }

    #[test]
    fn results_select_variants_as_flagd_does() {
        let context = Context::new();
        assert_eq!(
            variant(json!({ "if": [true, "b", "a"] }), &context).as_deref(),
            Some("b")
        );
        assert_eq!(
            variant(json!({ "if": [true, true, false] }), &context).as_deref(),
            Some("true")
        );
        assert_eq!(
            variant(json!({ "!": [true] }), &context).as_deref(),
            Some("false")
        );
        assert_eq!(
            variant(json!({ "+": [0.5, 0.5] }), &context).as_deref(),
            Some("1")
        );
        // Null serves the default variant with reason DEFAULT.
        let (variant, reason, error) = run(json!({ "if": [true, null, "b"] }), json!({}), &context);
        assert_eq!(
            (variant.as_deref(), reason, error),
            (Some("a"), Reason::Default, None)
        );
        // `{}` is no targeting at all.
        let (variant, reason, _) = run(json!({}), json!({}), &context);
        assert_eq!((variant.as_deref(), reason), (Some("a"), Reason::Static));
        // A name that is no variant is GENERAL.
        let (_, reason, error) = run(json!({ "cat": ["c", "d"] }), json!({}), &context);
        assert_eq!((reason, error), (Reason::Error, Some(ErrorCode::General)));
        // Failing arithmetic is a PARSE_ERROR, as flagd's JSON Logic library reports it.
        let (_, reason, error) = run(json!({ "/": [1, 0] }), json!({}), &context);
        assert_eq!(
            (reason, error),
            (Reason::Error, Some(ErrorCode::ParseError))
        );
    }

    #[test]
    fn flagd_properties_are_injected() {
        let targeting = json!({ "if": [{ "==": [{ "var": "$flagd.flagKey" }, "f"] }, "b", "a"] });
        assert_eq!(variant(targeting, &Context::new()).as_deref(), Some("b"));
        let targeting = json!({ "if": [{ ">": [{ "var": "$flagd.timestamp" }, { "var": "time" }] }, "b", "a"] });
        let context = Context::new().set("time", 1_000).at(2_000);
        assert_eq!(variant(targeting.clone(), &context).as_deref(), Some("b"));
        let context = Context::new().set("time", 3_000).at(2_000);
        assert_eq!(variant(targeting.clone(), &context).as_deref(), Some("a"));
        // A caller's `$flagd` is replaced, and without a clock there is no timestamp.
        let context = Context::new().set("$flagd", json!({ "flagKey": "other", "timestamp": 5 }));
        let targeting = json!({ "if": [{ "==": [{ "var": "$flagd.flagKey" }, "f"] }, { "var": "$flagd.timestamp" }, "a"] });
        assert_eq!(run(targeting, json!({}), &context).1, Reason::Default);
    }

    #[test]
    fn custom_operators_run_through_the_engine() {
        let keyed = Context::with_key("some-targeting-key");
        let condition = json!({ "if": [{ "fractional": [[false, 0], [true, 100]] }, "b", "a"] });
        assert_eq!(variant(condition, &keyed).as_deref(), Some("b"));
        let nested =
            json!({ "fractional": [{ "var": "targetingKey" }, [{ "if": [true, "b", "a"] }, 1]] });
        assert_eq!(variant(nested, &keyed).as_deref(), Some("b"));
        let (_, reason, _) = run(
            json!({ "fractional": [{ "var": "nothing" }, ["b", 1]] }),
            json!({}),
            &Context::new(),
        );
        assert_eq!(reason, Reason::Default);
        let version = Context::new().set("version", "v2.1");
        assert_eq!(
            variant(
                json!({ "sem_ver": [{ "var": "version" }, ">=", "2.1.0"] }),
                &version
            )
            .as_deref(),
            Some("true")
        );
        let (_, reason, _) = run(
            json!({ "starts_with": [{ "var": "n" }, "1"] }),
            json!({}),
            &Context::new().set("n", 12),
        );
        assert_eq!(reason, Reason::Default);
        let id = Context::new().set("id", "abcxyz");
        assert_eq!(
            variant(
                json!({ "if": [{ "ends_with": [{ "var": "id" }, "xyz"] }, "b", "a"] }),
                &id
            )
            .as_deref(),
            Some("b")
        );
    }

    #[test]
    fn metadata_merges_flag_over_flag_set() {
        let engine = engine(json!({
            "metadata": { "flagSetId": "set", "version": "1", "team": "core" },
            "flags": {
                "f": { "state": "ENABLED", "variants": { "on": true }, "defaultVariant": "on", "metadata": { "version": 2 } },
                "g": { "state": "DISABLED", "variants": { "on": true }, "defaultVariant": "on" }
            }
        }));
        let info = engine.info("f").unwrap();
        assert_eq!(
            Value::Object(info.metadata.clone()),
            json!({ "flagSetId": "set", "version": 2, "team": "core" })
        );
        assert_eq!(info.flag_type, None);
        let disabled = engine.evaluate("g", &Context::new());
        assert_eq!((disabled.value, disabled.reason), (None, Reason::Disabled));
        assert_eq!(
            engine.info("g").unwrap().metadata.get("team"),
            Some(&json!("core"))
        );
    }

    #[test]
    fn defaults_follow_the_schema() {
        // No state means enabled; no variants means the boolean pair.
        let pair = engine(json!({ "flags": { "f": { "defaultVariant": "true" } } }));
        let result = pair.boolean("f", &Context::new(), false);
        assert!(result.value);
        assert_eq!(result.details.reason, Reason::Static);
        // No default variant: the caller's default, reason DEFAULT, with or without targeting.
        let no_default = engine(json!({ "flags": {
            "f": { "state": "ENABLED", "variants": { "x": 1 }, "defaultVariant": null },
            "g": { "state": "ENABLED", "variants": { "x": 1 }, "targeting": { "if": [false, "x"] } }
        } }));
        for key in ["f", "g"] {
            let result = no_default.integer(key, &Context::new(), 7);
            assert_eq!(
                (result.value, result.details.reason, result.error()),
                (7, Reason::Default, None)
            );
        }
    }

    #[test]
    fn structural_errors_name_their_paths() {
        let mut found = errors(json!({
            "flags": {
                "bad state": { "state": "ON", "variants": { "a": 1 } },
                "mixed": { "state": "ENABLED", "variants": { "a": 1, "b": "x", "c": [1], "d": 9007199254740992i64 } },
                "dangling": { "state": "ENABLED", "variants": { "a": 1 }, "defaultVariant": "z", "targeting": "a" },
                "meta": { "state": "ENABLED", "variants": {}, "metadata": { "ok": 1, "nested": { "x": 1 } } },
                "scalar": true
            },
            "metadata": ["not", "a", "mapping"],
            "$evaluators": { "empty": {}, "text": "x" }
        }));
        found.sort();
        let expected = [
            "$evaluators.empty: an evaluator must be a JSON Logic rule (a non-empty mapping), not {}",
            "$evaluators.text: an evaluator must be a JSON Logic rule (a non-empty mapping), not \"x\"",
            "flags.bad state.state: expected `ENABLED` or `DISABLED`, found \"ON\"",
            "flags.bad state: `bad state` is not a valid key: use letters, digits, `-`, `_` and `.`, starting with a letter, digit or `_`",
            "flags.dangling.defaultVariant: `z` is not a variant of this flag; its variants are `a`",
            "flags.dangling.targeting: expected a JSON Logic rule (a mapping), found \"a\"",
            "flags.meta.metadata.nested: metadata values must be strings, numbers or booleans, not {\"x\":1}",
            "flags.meta.variants: a flag needs at least one variant",
            "flags.mixed.variants.b: variant `b` is a string but `a` is a number: a flag's variants must all have one type",
            "flags.mixed.variants.c: variant values must be booleans, strings, numbers or objects, not [1]",
            "flags.mixed.variants.d: 9007199254740992 is beyond ±9007199254740991, the integers JSON numbers carry exactly",
            "flags.scalar: expected a flag definition with `state`, `variants` and `defaultVariant`, found true",
            "metadata: expected a mapping of metadata names to values, found [\"not\",\"a\",\"mapping\"]",
        ];
        assert_eq!(found, expected);
    }

    #[test]
    fn errors_get_line_and_column_from_the_source() {
        let text = "{\n  \"flags\": {\n    \"f\": {\n      \"state\": \"MAYBE\",\n      \"variants\": { \"on\": true }\n    }\n  }\n}\n";
        let errors = Source::parse(Some("flags.json"), text, Format::Json).unwrap_err();
        let error = errors.iter().next().unwrap();
        assert_eq!(error.path.to_string(), "flags.f.state");
        assert_eq!(error.position.map(|p| (p.line, p.column)), Some((4, 7)));
    }

    #[test]
    fn evaluation_survives_hostile_contexts() {
        let targeting =
            json!({ "if": [{ "in": [{ "var": "a.b" }, { "var": "list" }] }, "b", "a"] });
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!({ "a": deep });
        }
        let (_, reason, error) = run(targeting.clone(), json!({}), &Context::new().set("a", deep));
        assert_eq!(
            (reason, error),
            (Reason::Error, Some(ErrorCode::InvalidContext))
        );
        let odd = Context::new()
            .set("list", json!([null, {}, [], 1.5, u64::MAX]))
            .set("a", json!({ "b": u64::MAX }));
        assert!(variant(targeting, &odd).is_some());
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const OPERATORS: &[&str] = &[
            "var",
            "missing",
            "missing_some",
            "if",
            "?:",
            "==",
            "===",
            "!=",
            "!==",
            "!",
            "!!",
            "or",
            "and",
            "<",
            "<=",
            ">",
            ">=",
            "max",
            "min",
            "+",
            "-",
            "*",
            "/",
            "%",
            "in",
            "cat",
            "substr",
            "merge",
            "map",
            "filter",
            "reduce",
            "all",
            "some",
            "none",
            "fractional",
            "sem_ver",
            "starts_with",
            "ends_with",
            "$ref",
            "nope",
        ];

        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(
                    |f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                ),
                prop::sample::select(
                    &[
                        "a",
                        "b",
                        "a.b",
                        "targetingKey",
                        "",
                        "1.2.3",
                        "v1",
                        "e",
                        "$flagd.flagKey",
                        "=",
                        "^"
                    ][..]
                )
                .prop_map(Value::from),
            ]
        }

        fn rule() -> impl Strategy<Value = Value> {
            leaf().prop_recursive(6, 80, 5, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                    (
                        prop::sample::select(OPERATORS),
                        prop::collection::vec(inner.clone(), 0..5)
                    )
                        .prop_map(|(op, args)| json!({ op: args })),
                    (prop::sample::select(OPERATORS), inner)
                        .prop_map(|(op, arg)| json!({ op: arg })),
                ]
            })
        }

        fn data() -> impl Strategy<Value = Value> {
            leaf().prop_recursive(4, 40, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(
                        prop::sample::select(&["a", "b", "e"][..]),
                        inner,
                        0..3
                    )
                    .prop_map(|fields| json!(fields)),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn evaluation_never_panics(
                targeting in rule(),
                evaluator in rule(),
                attributes in prop::collection::btree_map(
                    prop::sample::select(&["a", "b", "targetingKey", "$flagd", "e"][..]), data(), 0..4),
            ) {
                let engine = engine(json!({
                    "flags": { "f": flag(json!({ "if": [true, targeting, null] })) },
                    "$evaluators": { "e": { "!!": [evaluator] }, "a": { "$ref": "e" } }
                }));
                let mut context = Context::new().at(1_700_000_000);
                for (name, value) in attributes {
                    context = context.set(name, value);
                }
                let result = engine.evaluate("f", &context);
                prop_assert!(result.reason != Reason::Error || result.error.is_some());
            }
        }
    }
}
