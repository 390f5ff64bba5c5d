//! Environment overrides: `SLUICE_FLAG_<KEY>=<variant>` forces a flag to serve one variant.
//!
//! The variables are read once, when the client is built, from a source the builder can
//! replace, so tests never touch the process environment. They are resolved against each
//! loaded configuration in turn: a flag that appears in a later edit of the file picks up its
//! override then, and a variant that does not exist is reported and ignored, never guessed.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;
use sluice_core::Engine;

/// The prefix of override variables.
pub const OVERRIDE_PREFIX: &str = "SLUICE_FLAG_";

/// The variable that overrides `flag`: the key upper-cased, `-` and `.` turned into `_`.
///
/// ```
/// assert_eq!(sluice::override_variable("new-checkout"), "SLUICE_FLAG_NEW_CHECKOUT");
/// assert_eq!(sluice::override_variable("search.ranking"), "SLUICE_FLAG_SEARCH_RANKING");
/// ```
pub fn override_variable(flag: &str) -> String {
    format!("{OVERRIDE_PREFIX}{}", variable_suffix(flag))
}

fn variable_suffix(flag: &str) -> String {
    flag.chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// One `SLUICE_FLAG_*` variable, as read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requested {
    variable: String,
    suffix: String,
    variant: String,
}

/// Keeps the `SLUICE_FLAG_*` variables, sorted by name so reports are stable.
pub(crate) fn read<I>(variables: I) -> Vec<Requested>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut requested: Vec<Requested> = variables
        .into_iter()
        .filter_map(|(variable, value)| {
            let suffix = variable_suffix(variable.strip_prefix(OVERRIDE_PREFIX)?);
            Some(Requested {
                suffix,
                variant: value.trim().to_owned(),
                variable,
            })
        })
        .collect();
    requested.sort_by(|a, b| a.variable.cmp(&b.variable));
    requested
}

/// The process environment's variables, skipping any that are not valid Unicode
/// (`std::env::vars` would panic on those).
pub(crate) fn process_environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(name, _)| name.starts_with(OVERRIDE_PREFIX))
        .collect()
}

/// An override in force: `variable` makes `flag` serve `variant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The environment variable, such as `SLUICE_FLAG_NEW_CHECKOUT`.
    pub variable: String,
    /// The flag key it applies to.
    pub flag: String,
    /// The variant it serves.
    pub variant: String,
}

/// An override variable that was ignored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverrideWarning {
    /// No flag's key turns into this variable's name.
    UnknownFlag {
        /// The environment variable.
        variable: String,
        /// The variant it asked for.
        variant: String,
    },
    /// The flag exists but has no variant of that name.
    UnknownVariant {
        /// The environment variable.
        variable: String,
        /// The flag it names.
        flag: String,
        /// The variant it asked for.
        variant: String,
        /// The flag's variants.
        known: Vec<String>,
    },
}

impl fmt::Display for OverrideWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverrideWarning::UnknownFlag { variable, variant } => write!(
                f,
                "{variable}={variant} is ignored: no flag's key turns into that name"
            ),
            OverrideWarning::UnknownVariant {
                variable,
                flag,
                variant,
                known,
            } => write!(
                f,
                "{variable}={variant} is ignored: flag `{flag}` has no variant `{variant}` (it has {})",
                known.join(", ")
            ),
        }
    }
}

/// A forced variant, with its value copied out of the engine it was resolved against.
#[derive(Debug)]
pub(crate) struct Forced {
    pub variant: String,
    pub value: Value,
}

/// The overrides resolved against one engine.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    pub forced: HashMap<String, Forced>,
    pub applied: Vec<Override>,
    pub warnings: Vec<OverrideWarning>,
}

/// Matches each requested override to the engine's flags and variants. A variant is matched
/// exactly, or else case-insensitively when that is unambiguous. When two keys turn into the
/// same variable name (`a-b` and `a.b`), the override applies to both.
pub(crate) fn resolve(engine: &Engine, requested: &[Requested]) -> Resolved {
    let mut resolved = Resolved::default();
    if requested.is_empty() {
        return resolved;
    }
    let mut by_suffix: HashMap<String, Vec<&str>> = HashMap::new();
    for key in engine.keys() {
        by_suffix.entry(variable_suffix(key)).or_default().push(key);
    }
    for request in requested {
        let Some(keys) = by_suffix.get(&request.suffix) else {
            resolved.warnings.push(OverrideWarning::UnknownFlag {
                variable: request.variable.clone(),
                variant: request.variant.clone(),
            });
            continue;
        };
        for &key in keys {
            let variants: Vec<(&str, &Value)> = engine
                .variants(key)
                .map(Iterator::collect)
                .unwrap_or_default();
            match pick_variant(&variants, &request.variant) {
                Some((name, value)) => {
                    resolved.forced.insert(
                        key.to_owned(),
                        Forced {
                            variant: name.to_owned(),
                            value: value.clone(),
                        },
                    );
                    resolved.applied.push(Override {
                        variable: request.variable.clone(),
                        flag: key.to_owned(),
                        variant: name.to_owned(),
                    });
                }
                None => resolved.warnings.push(OverrideWarning::UnknownVariant {
                    variable: request.variable.clone(),
                    flag: key.to_owned(),
                    variant: request.variant.clone(),
                    known: variants
                        .iter()
                        .map(|(name, _)| (*name).to_owned())
                        .collect(),
                }),
            }
        }
    }
    resolved
}

fn pick_variant<'a>(
    variants: &[(&'a str, &'a Value)],
    wanted: &str,
) -> Option<(&'a str, &'a Value)> {
    if let Some(exact) = variants.iter().find(|(name, _)| *name == wanted) {
        return Some(*exact);
    }
    let mut folded = variants
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(wanted));
    match (folded.next(), folded.next()) {
        (Some(only), None) => Some(*only),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sluice_core::{Format, Source};

    fn engine(text: &str) -> Engine {
        Source::parse(None, text, Format::Yaml)
            .unwrap()
            .compile(None)
            .unwrap()
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    const FLAGS: &str = r#"
flags:
  a-b:
    type: string
    variants: { "On": "x", "on": "y", red: "r" }
    default_variant: red
  a.b:
    type: string
    variants: { red: "r2" }
    default_variant: red
"#;

    #[test]
    fn keys_turn_into_variable_names() {
        assert_eq!(
            override_variable("new-checkout"),
            "SLUICE_FLAG_NEW_CHECKOUT"
        );
        assert_eq!(override_variable("a.b_c-D"), "SLUICE_FLAG_A_B_C_D");
    }

    #[test]
    fn only_prefixed_variables_are_read() {
        let requested = read(vars(&[
            ("PATH", "/bin"),
            ("SLUICE_FLAG_X", " on "),
            ("SLUICE_X", "a"),
        ]));
        assert_eq!(requested.len(), 1);
        assert_eq!(requested[0].suffix, "X");
        assert_eq!(requested[0].variant, "on");
    }

    #[test]
    fn variants_match_exactly_then_by_unambiguous_case() {
        let engine = engine(FLAGS);
        let resolved = resolve(&engine, &read(vars(&[("SLUICE_FLAG_A_B", "RED")])));
        // `RED` matches `red` in both flags whose keys turn into `A_B`.
        assert_eq!(resolved.applied.len(), 2);
        assert_eq!(resolved.forced["a-b"].value, "r");
        assert_eq!(resolved.forced["a.b"].value, "r2");

        let resolved = resolve(&engine, &read(vars(&[("SLUICE_FLAG_A_B", "ON")])));
        // `ON` is ambiguous between `On` and `on` in `a-b`, and unknown in `a.b`.
        assert!(resolved.forced.is_empty());
        assert_eq!(resolved.warnings.len(), 2);

        let resolved = resolve(&engine, &read(vars(&[("SLUICE_FLAG_A_B", "on")])));
        assert_eq!(resolved.forced["a-b"].value, "y");
    }

    #[test]
    fn unknown_flags_are_reported() {
        let resolved = resolve(&engine(FLAGS), &read(vars(&[("SLUICE_FLAG_NOPE", "on")])));
        assert_eq!(
            resolved.warnings,
            vec![OverrideWarning::UnknownFlag {
                variable: "SLUICE_FLAG_NOPE".into(),
                variant: "on".into()
            }]
        );
        assert!(
            resolved.warnings[0]
                .to_string()
                .contains("SLUICE_FLAG_NOPE=on is ignored")
        );
    }
}
