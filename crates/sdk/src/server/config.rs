//! A configuration as the server sends it, compiled: `{version, environment, format, flags}`.
//!
//! The same JSON arrives as a `put` event on the stream, as the body of `GET /api/v1/config`,
//! and is what the cache file holds, so one function reads all three. `flags` is a document
//! in Sluice's format (compiled for `environment`) or flagd's (which has no environments).

use serde_json::Value;
use sluice_core::{Document, Engine, Format, Source};

use crate::Error;
use crate::dry_run::{self, StagedRun};

/// A compiled configuration, and the text it came from, for the cache file.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) version: i64,
    pub(crate) environment: String,
    pub(crate) engine: Engine,
    /// The environment's running dry runs, compiled.
    pub(crate) staged: Vec<StagedRun>,
    pub(crate) text: String,
}

/// Just the version, for skipping a configuration already served without compiling it.
pub(crate) fn version_of(value: &Value) -> Option<i64> {
    value.get("version").and_then(Value::as_i64)
}

/// Reads and compiles a configuration. `origin` names where it came from, for errors.
pub(crate) fn parse(text: &str, origin: &str) -> Result<Config, Error> {
    let malformed = |message: String| Error::Malformed {
        origin: origin.to_owned(),
        message,
    };
    let value: Value =
        serde_json::from_str(text).map_err(|error| malformed(format!("not JSON: {error}")))?;
    compile(&value, text, origin)
}

/// Compiles an already parsed configuration whose text is `text`.
pub(crate) fn compile(value: &Value, text: &str, origin: &str) -> Result<Config, Error> {
    let malformed = |message: String| Error::Malformed {
        origin: origin.to_owned(),
        message,
    };
    let version = version_of(value).ok_or_else(|| malformed("no integer `version`".to_owned()))?;
    let environment = value
        .get("environment")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no string `environment`".to_owned()))?;
    let format = value
        .get("format")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no string `format`".to_owned()))?;
    let flags = value
        .get("flags")
        .filter(|flags| flags.is_object())
        .ok_or_else(|| malformed("no object `flags`".to_owned()))?;
    let compile_for = match format {
        "sluice" => Some(environment),
        "flagd" => None,
        other => {
            return Err(malformed(format!(
                "unknown format `{other}`; expected `sluice` or `flagd`"
            )));
        }
    };
    let name = format!("{origin} (version {version})");
    let invalid = |errors| Error::InvalidConfig {
        origin: origin.to_owned(),
        version,
        errors,
    };
    let source = Source::parse(Some(&name), &flags.to_string(), Format::Json).map_err(invalid)?;
    let engine = source.compile(compile_for).map_err(invalid)?;
    let staged = match source.document() {
        Document::Sluice(file) => dry_run::compile(value.get("dry_runs"), file, environment),
        Document::Flagd(_) => Vec::new(),
    };
    Ok(Config {
        version,
        environment: environment.to_owned(),
        engine,
        staged,
        text: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sluice_document() -> Value {
        json!({
            "flags": {
                "checkout": {
                    "type": "boolean",
                    "variants": {"on": true, "off": false},
                    "default_variant": "off",
                    "environments": {"production": {"default_variant": "on"}}
                }
            }
        })
    }

    #[test]
    fn sluice_documents_compile_for_their_environment() {
        let text = json!({"version": 3, "environment": "production", "format": "sluice", "flags": sluice_document()}).to_string();
        let config = parse(&text, "test").unwrap();
        assert_eq!(
            (config.version, config.environment.as_str()),
            (3, "production")
        );
        let evaluation = config
            .engine
            .evaluate("checkout", &sluice_core::Context::default());
        assert_eq!(evaluation.value, Some(&json!(true)));
        assert_eq!(config.text, text);
    }

    #[test]
    fn flagd_documents_compile_without_an_environment() {
        let flags = json!({"flags": {"banner": {"state": "ENABLED", "variants": {"a": "A", "b": "B"}, "defaultVariant": "b"}}});
        let text =
            json!({"version": 1, "environment": "staging", "format": "flagd", "flags": flags})
                .to_string();
        let config = parse(&text, "test").unwrap();
        let evaluation = config
            .engine
            .evaluate("banner", &sluice_core::Context::default());
        assert_eq!(evaluation.value, Some(&json!("B")));
    }

    #[test]
    fn malformed_payloads_say_what_is_missing() {
        for (text, expected) in [
            ("{", "not JSON"),
            ("[]", "no integer `version`"),
            (r#"{"version": "1"}"#, "no integer `version`"),
            (r#"{"version": 1}"#, "no string `environment`"),
            (
                r#"{"version": 1, "environment": "p"}"#,
                "no string `format`",
            ),
            (
                r#"{"version": 1, "environment": "p", "format": "sluice"}"#,
                "no object `flags`",
            ),
            (
                r#"{"version": 1, "environment": "p", "format": "yaml", "flags": {}}"#,
                "unknown format `yaml`",
            ),
        ] {
            let error = parse(text, "https://flags.example/api/v1/stream").unwrap_err();
            assert!(matches!(error, Error::Malformed { .. }), "{error:?}");
            let message = error.to_string();
            assert!(message.contains(expected), "{message}");
            assert!(
                message.starts_with("https://flags.example/api/v1/stream sent"),
                "{message}"
            );
        }
    }

    #[test]
    fn invalid_definitions_keep_their_paths() {
        let mut flags = sluice_document();
        flags["flags"]["checkout"]["default_variant"] = json!("purple");
        let text =
            json!({"version": 9, "environment": "production", "format": "sluice", "flags": flags})
                .to_string();
        let error = parse(&text, "origin").unwrap_err();
        let problems = error.definition_errors().unwrap();
        assert_eq!(
            problems.iter().next().unwrap().path.to_string(),
            "flags.checkout.default_variant"
        );
        assert!(
            error
                .to_string()
                .starts_with("configuration version 9 from origin has 1 problem"),
            "{error}"
        );
    }
}
