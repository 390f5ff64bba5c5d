//! The evaluation context: who is asking, as a JSON object.
//!
//! A context is what OpenFeature calls an evaluation context: a targeting key plus free
//! attributes, which may nest. The targeting key lives under `targetingKey`, exactly as it
//! does on the wire, so a context read from an OFREP body needs no translation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The attribute name of the targeting key.
pub const TARGETING_KEY: &str = "targetingKey";

/// Who a flag is evaluated for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Context {
    attributes: Map<String, Value>,
    #[serde(skip)]
    timestamp: Option<i64>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Context {
        Context::default()
    }

    /// A context with a targeting key.
    pub fn with_key(key: impl Into<String>) -> Context {
        Context::new().set(TARGETING_KEY, key.into())
    }

    /// Reads a context from a JSON object. Anything else is `None`.
    pub fn from_value(value: Value) -> Option<Context> {
        match value {
            Value::Object(attributes) => Some(Context {
                attributes,
                timestamp: None,
            }),
            _ => None,
        }
    }

    /// Sets an attribute, replacing any previous value.
    pub fn set(mut self, name: impl Into<String>, value: impl Into<Value>) -> Context {
        self.attributes.insert(name.into(), value.into());
        self
    }

    /// Sets the evaluation time in Unix seconds, for rules that read the clock (flagd's
    /// `$flagd.timestamp`). Core never reads a clock itself.
    pub fn at(mut self, unix_seconds: i64) -> Context {
        self.timestamp = Some(unix_seconds);
        self
    }

    /// The evaluation time, when the caller set one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The targeting key, when present and a string.
    #[inline]
    pub fn targeting_key(&self) -> Option<&str> {
        self.attributes.get(TARGETING_KEY).and_then(Value::as_str)
    }

    /// All attributes, the targeting key included.
    pub fn attributes(&self) -> &Map<String, Value> {
        &self.attributes
    }

    /// Looks up a path of attribute names, descending into nested objects.
    #[inline]
    pub fn lookup<'a>(&'a self, path: &[Box<str>]) -> Option<&'a Value> {
        let (first, rest) = path.split_first()?;
        let mut value = self.attributes.get(first.as_ref())?;
        for name in rest {
            value = value.as_object()?.get(name.as_ref())?;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_descends_into_objects() {
        let context = Context::with_key("u1").set("app", json!({"version": "2.1.0"}));
        let path: Vec<Box<str>> = vec!["app".into(), "version".into()];
        assert_eq!(context.lookup(&path), Some(&json!("2.1.0")));
        let missing: Vec<Box<str>> = vec!["app".into(), "build".into()];
        assert_eq!(context.lookup(&missing), None);
        assert_eq!(context.targeting_key(), Some("u1"));
    }

    #[test]
    fn only_objects_are_contexts() {
        assert!(Context::from_value(json!([1])).is_none());
        assert!(Context::from_value(json!({"a": 1})).is_some());
    }
}
