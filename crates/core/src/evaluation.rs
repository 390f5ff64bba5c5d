//! What an evaluation returns: the value, the variant, and why, in OpenFeature's vocabulary.
//!
//! An [`Evaluation`] borrows everything from the engine, so producing one never allocates on
//! the success path. Typed accessors wrap it in [`Typed`], which always carries a usable
//! value: the flag's, or the caller's default with an error code.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::FlagInfo;

/// Why a value was served (OpenFeature's resolution reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The flag has no targeting; its default variant is all it can serve.
    Static,
    /// A rule matched and served a variant.
    TargetingMatch,
    /// A rule matched and served a split arm.
    Split,
    /// The flag is switched off.
    Disabled,
    /// No rule matched, so the default variant was served.
    Default,
    /// Something went wrong; see the error code.
    Error,
}

impl Reason {
    /// The OpenFeature name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
            Reason::Disabled => "DISABLED",
            Reason::Default => "DEFAULT",
            Reason::Error => "ERROR",
        }
    }
}

/// What went wrong (OpenFeature's error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// No flag has that key.
    FlagNotFound,
    /// The flag's value is not of the type asked for.
    TypeMismatch,
    /// The flag's targeting could not be read or run.
    ParseError,
    /// A split needs a targeting key and the context has none.
    TargetingKeyMissing,
    /// The context cannot be used, such as a bucketing attribute that is not a string or number.
    InvalidContext,
    /// Anything else, such as a rule naming a variant that does not exist.
    General,
}

impl ErrorCode {
    /// The OpenFeature name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            ErrorCode::InvalidContext => "INVALID_CONTEXT",
            ErrorCode::General => "GENERAL",
        }
    }
}

/// The rule that decided an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleRef<'a> {
    /// Its position in the flag's rules, from 0.
    pub index: usize,
    /// Its name, when it has one.
    pub name: Option<&'a str>,
}

/// The outcome of evaluating one flag for one context.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation<'a> {
    /// The value served, or `None` when the caller's default applies.
    pub value: Option<&'a Value>,
    /// The variant served.
    pub variant: Option<&'a str>,
    /// Why.
    pub reason: Reason,
    /// What went wrong, when `reason` is [`Reason::Error`].
    pub error: Option<ErrorCode>,
    /// A sentence about the error, for logs.
    pub error_message: Option<String>,
    /// The rule that decided, when one did.
    pub rule: Option<RuleRef<'a>>,
    /// The segment through which the deciding rule matched, when it named one.
    pub segment: Option<&'a str>,
    /// The prerequisite flag that was not satisfied, when that decided.
    pub prerequisite: Option<&'a str>,
    /// The flag's descriptive fields and metadata; `None` when the flag does not exist.
    pub flag: Option<&'a FlagInfo>,
}

impl<'a> Evaluation<'a> {
    /// An evaluation that failed with `error`.
    pub fn error(flag: Option<&'a FlagInfo>, error: ErrorCode, message: impl Into<String>) -> Self {
        Evaluation {
            value: None,
            variant: None,
            reason: Reason::Error,
            error: Some(error),
            error_message: Some(message.into()),
            rule: None,
            segment: None,
            prerequisite: None,
            flag,
        }
    }
}

/// A typed evaluation: always a value, plus how it was arrived at.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed<'a, T> {
    /// The flag's value, or the caller's default when anything went wrong.
    pub value: T,
    /// The evaluation behind it. On a type mismatch its reason is `Error`.
    pub details: Evaluation<'a>,
}

impl<'a, T> Typed<'a, T> {
    /// Applies `convert` to the served value; falls back to `default` on any failure.
    pub(crate) fn from_evaluation(
        mut details: Evaluation<'a>,
        default: T,
        convert: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Typed<'a, T> {
        let Some(value) = details.value else {
            return Typed {
                value: default,
                details,
            };
        };
        match convert(value) {
            Some(value) => Typed { value, details },
            None => {
                details = Evaluation::error(
                    details.flag,
                    ErrorCode::TypeMismatch,
                    "the flag's value is not of the requested type",
                );
                Typed {
                    value: default,
                    details,
                }
            }
        }
    }

    /// The error code, if the caller's default was used because of one.
    pub fn error(&self) -> Option<ErrorCode> {
        self.details.error
    }
}
