//! What an evaluation served and why, owned so it can outlive the flags it came from.
//!
//! The typed accessors on [`crate::Client`] return bare values and allocate nothing on the
//! success path. [`Details`] is for when the reason matters: logging, debugging, OpenFeature.
//! It copies what core's borrowed [`sluice_core::Evaluation`] points at, because the flags it
//! borrowed from may be swapped out by a reload the moment the call returns.

use std::fmt;

use serde_json::{Map, Value};
use sluice_core::{Evaluation, Reason};

/// What went wrong with an evaluation, in OpenFeature's vocabulary.
///
/// These are core's codes plus `ProviderNotReady`, which only a client can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The client has no flags yet.
    ProviderNotReady,
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
    /// Anything else.
    General,
}

impl ErrorCode {
    /// The OpenFeature name, such as `FLAG_NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ProviderNotReady => "PROVIDER_NOT_READY",
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            ErrorCode::InvalidContext => "INVALID_CONTEXT",
            ErrorCode::General => "GENERAL",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<sluice_core::ErrorCode> for ErrorCode {
    fn from(code: sluice_core::ErrorCode) -> ErrorCode {
        match code {
            sluice_core::ErrorCode::FlagNotFound => ErrorCode::FlagNotFound,
            sluice_core::ErrorCode::TypeMismatch => ErrorCode::TypeMismatch,
            sluice_core::ErrorCode::ParseError => ErrorCode::ParseError,
            sluice_core::ErrorCode::TargetingKeyMissing => ErrorCode::TargetingKeyMissing,
            sluice_core::ErrorCode::InvalidContext => ErrorCode::InvalidContext,
            sluice_core::ErrorCode::General => ErrorCode::General,
        }
    }
}

/// The rule that decided an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its position in the flag's rules, from 0.
    pub index: usize,
    /// Its name, when it has one.
    pub name: Option<String>,
}

/// The outcome of evaluating one flag for one context: the value and how it was arrived at.
///
/// `T` is the value's type: `Option<serde_json::Value>` from [`crate::Client::details`], where
/// `None` means the flag served nothing and the caller's default applies; or the requested type
/// from the typed `*_details` methods, where an error leaves the caller's default in `value`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Details<T> {
    /// The flag key asked for.
    pub flag: String,
    /// The value served, or the caller's default.
    pub value: T,
    /// The variant served, when one was.
    pub variant: Option<String>,
    /// Why this value was served. An environment override serves with `Static`.
    pub reason: Reason,
    /// What went wrong, when `reason` is `Error`.
    pub error: Option<ErrorCode>,
    /// A sentence about the error, for logs.
    pub error_message: Option<String>,
    /// The rule that decided, when one did.
    pub rule: Option<Rule>,
    /// The segment through which the deciding rule matched, when it named one.
    pub segment: Option<String>,
    /// The prerequisite flag that was not met, when that decided.
    pub prerequisite: Option<String>,
    /// Whether a `SLUICE_FLAG_<KEY>` environment variable forced the variant.
    pub overridden: bool,
    /// The flag's metadata, empty when the flag does not exist.
    pub metadata: Map<String, Value>,
}

impl<T> Details<T> {
    /// Details for a client that has no flags yet.
    pub(crate) fn not_ready(flag: &str, default: T) -> Details<T> {
        Details {
            flag: flag.to_owned(),
            value: default,
            variant: None,
            reason: Reason::Error,
            error: Some(ErrorCode::ProviderNotReady),
            error_message: Some("the client has not loaded any flags yet".to_owned()),
            rule: None,
            segment: None,
            prerequisite: None,
            overridden: false,
            metadata: Map::new(),
        }
    }

    /// Copies an evaluation, converting its value with `convert`. A value that does not
    /// convert is a type mismatch, and `default` is served, exactly as core's typed accessors do.
    pub(crate) fn from_evaluation(
        flag: &str,
        evaluation: &Evaluation<'_>,
        overridden: bool,
        default: T,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> Details<T> {
        let metadata = evaluation
            .flag
            .map(|info| info.metadata.clone())
            .unwrap_or_default();
        let mut details = Details {
            flag: flag.to_owned(),
            value: default,
            variant: evaluation.variant.map(str::to_owned),
            reason: evaluation.reason,
            error: evaluation.error.map(ErrorCode::from),
            error_message: evaluation.error_message.clone(),
            rule: evaluation.rule.map(|rule| Rule {
                index: rule.index,
                name: rule.name.map(str::to_owned),
            }),
            segment: evaluation.segment.map(str::to_owned),
            prerequisite: evaluation.prerequisite.map(str::to_owned),
            overridden,
            metadata,
        };
        let Some(served) = evaluation.value else {
            return details;
        };
        match convert(served) {
            Some(value) => details.value = value,
            None => {
                details.variant = None;
                details.reason = Reason::Error;
                details.error = Some(ErrorCode::TypeMismatch);
                details.error_message =
                    Some("the flag's value is not of the requested type".to_owned());
                details.rule = None;
                details.segment = None;
                details.prerequisite = None;
            }
        }
        details
    }
}
