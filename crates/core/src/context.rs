//! The evaluation context: who is asking, as a JSON object.
//!
//! A context is what OpenFeature calls an evaluation context: a targeting key plus free
//! attributes, which may nest. The targeting key lives under `targetingKey`, exactly as it
//! does on the wire, so a context read from an OFREP body needs no translation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The attribute name of the targeting key.
pub const TARGETING_KEY: &str = "targetingKey";

/// Objects with at most this many attributes are scanned rather than searched.
///
/// A search compares the name with each key it passes through `memcmp`; a scan only
/// compares bytes when the lengths match, which for a typical context of a handful of
/// attributes is once, at the key it finds.
const SCAN_LIMIT: usize = 16;

/// An attribute of a JSON object, by name.
#[inline(always)]
fn attribute<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if object.len() > SCAN_LIMIT {
        return object.get(name);
    }
    object
        .iter()
        .find_map(|(key, value)| same_text(key.as_bytes(), name.as_bytes()).then_some(value))
}

/// Byte equality without a call into `memcmp`, for the short names attributes have.
///
/// Compares machine words, overlapping at the end, as `memcmp` itself does, but inline.
#[inline(always)]
pub(crate) fn same_text(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() < 4 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    if a.len() <= 8 {
        return a.first_chunk::<4>() == b.first_chunk::<4>()
            && a.last_chunk::<4>() == b.last_chunk::<4>();
    }
    let (mut rest_a, mut rest_b) = (a, b);
    while let (Some((x, next_a)), Some((y, next_b))) = (
        rest_a.split_first_chunk::<8>(),
        rest_b.split_first_chunk::<8>(),
    ) {
        if next_a.is_empty() {
            break;
        }
        if x != y {
            return false;
        }
        (rest_a, rest_b) = (next_a, next_b);
    }
    a.last_chunk::<8>() == b.last_chunk::<8>()
}

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
        attribute(&self.attributes, TARGETING_KEY).and_then(Value::as_str)
    }

    /// All attributes, the targeting key included.
    pub fn attributes(&self) -> &Map<String, Value> {
        &self.attributes
    }

    /// Looks up a path of attribute names, descending into nested objects.
    #[inline]
    pub fn lookup<'a>(&'a self, path: &[Box<str>]) -> Option<&'a Value> {
        let (first, rest) = path.split_first()?;
        let mut value = attribute(&self.attributes, first)?;
        for name in rest {
            value = attribute(value.as_object()?, name)?;
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
    fn scanned_and_searched_lookups_agree() {
        let names = [
            "a",
            "ab",
            "email",
            "emaik",
            "targetingKey",
            "targetingKez",
            "x".repeat(17).leak(),
        ];
        for size in [0, 3, SCAN_LIMIT, SCAN_LIMIT + 1, 40] {
            let mut context = Context::new();
            for i in 0..size {
                context = context.set(
                    names[i % names.len()].to_owned() + &"_".repeat(i / names.len()),
                    i,
                );
            }
            for name in names.iter().chain(["", "a_", "targetingKey__"].iter()) {
                let path: Vec<Box<str>> = vec![(*name).into()];
                assert_eq!(
                    context.lookup(&path),
                    context.attributes().get(*name),
                    "{size} {name}"
                );
            }
        }
        assert!(same_text(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_text(b"0123456789abcdef", b"0123456789abcdeg"));
        assert!(!same_text(b"1123456789abcdef", b"0123456789abcdef"));
        assert!(!same_text(b"abc", b"abcd"));
        let text = b"targetingKey-and-some-more-bytes";
        for len in 0..text.len() {
            let a = &text[..len];
            assert!(same_text(a, a));
            for i in 0..len {
                let mut b = a.to_vec();
                b[i] ^= 1;
                assert!(!same_text(a, &b), "{len} {i}");
            }
        }
    }

    #[test]
    fn only_objects_are_contexts() {
        assert!(Context::from_value(json!([1])).is_none());
        assert!(Context::from_value(json!({"a": 1})).is_some());
    }
}
