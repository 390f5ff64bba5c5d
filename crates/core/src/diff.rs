//! What changes between two flag files: which flags and segments are created, updated (and
//! which of their fields) or deleted. Used by `sluice apply --dry-run` and import dry runs.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::FlagFile;

/// Changes to one kind of definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Keys that are new.
    pub created: Vec<String>,
    /// Keys whose definition changed, with the top-level fields that differ.
    pub updated: Vec<Updated>,
    /// Keys that are gone.
    pub deleted: Vec<String>,
}

/// One changed definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Updated {
    /// Its key.
    pub key: String,
    /// The fields that differ, such as `rules` or `environments`.
    pub fields: Vec<String>,
}

/// Everything that differs between two files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// Flag changes.
    pub flags: Changes,
    /// Segment changes.
    pub segments: Changes,
}

impl Diff {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        [&self.flags, &self.segments]
            .iter()
            .all(|c| c.created.is_empty() && c.updated.is_empty() && c.deleted.is_empty())
    }
}

fn changes<T: Serialize>(before: &IndexMap<String, T>, after: &IndexMap<String, T>) -> Changes {
    let as_map = |item: &T| match serde_json::to_value(item) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let mut result = Changes::default();
    for (key, new) in after {
        match before.get(key) {
            None => result.created.push(key.clone()),
            Some(old) => {
                let (old, new) = (as_map(old), as_map(new));
                let mut fields: Vec<String> = old
                    .keys()
                    .chain(new.keys())
                    .filter(|field| old.get(*field) != new.get(*field))
                    .cloned()
                    .collect();
                fields.sort();
                fields.dedup();
                if !fields.is_empty() {
                    result.updated.push(Updated {
                        key: key.clone(),
                        fields,
                    });
                }
            }
        }
    }
    result.deleted = before
        .keys()
        .filter(|key| !after.contains_key(*key))
        .cloned()
        .collect();
    result
}

/// The changes that turn `before` into `after`.
pub fn diff(before: &FlagFile, after: &FlagFile) -> Diff {
    Diff {
        flags: changes(&before.flags, &after.flags),
        segments: changes(&before.segments, &after.segments),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Document, Format, Source};

    fn file(text: &str) -> FlagFile {
        match Source::parse(None, text, Format::Yaml)
            .unwrap()
            .into_document()
        {
            Document::Sluice(file) => file,
            Document::Flagd(_) => unreachable!(),
        }
    }

    #[test]
    fn reports_created_updated_fields_and_deleted() {
        let before = file(
            "flags:\n  a: {type: boolean, variants: {on: true}, default_variant: on}\n  b: {type: boolean, variants: {on: true}, default_variant: on}\n",
        );
        let after = file(
            "flags:\n  a: {type: boolean, variants: {on: true}, default_variant: on, enabled: false}\n  c: {type: boolean, variants: {on: true}, default_variant: on}\n",
        );
        let diff = diff(&before, &after);
        assert_eq!(diff.flags.created, vec!["c"]);
        assert_eq!(diff.flags.deleted, vec!["b"]);
        assert_eq!(
            diff.flags.updated,
            vec![Updated {
                key: "a".into(),
                fields: vec!["enabled".into()]
            }]
        );
        assert!(!diff.is_empty());
        assert!(super::diff(&after, &after).is_empty());
    }
}
