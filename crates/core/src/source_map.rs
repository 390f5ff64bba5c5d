//! Line and column of every value in a YAML or JSON text, by document path.
//!
//! serde turns text into the model but forgets where each value came from. This module reads
//! the same text once more as a stream of YAML events (JSON is YAML's flow style), so any
//! error that carries a [`Path`] can be given the line and column a person should look at.
//! Mapping entries are located at their key, sequence items at their first character.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, Span};

use crate::error::{Path, Position};

/// Positions of the values in one text.
#[derive(Debug, Default)]
pub struct SourceMap {
    positions: HashMap<Path, Position>,
    duplicates: Vec<Path>,
}

enum Frame {
    Mapping {
        path: Path,
        key: Option<String>,
    },
    Sequence {
        path: Path,
        next: usize,
    },
    /// A mapping or sequence used as a mapping key: its contents have no path.
    Ignored,
}

impl SourceMap {
    /// Reads `text`. A text the YAML reader rejects yields a map that knows what it read so far.
    pub fn build(text: &str) -> SourceMap {
        let mut map = SourceMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        map.positions
            .insert(Path::root(), Position { line: 1, column: 1 });
        let mut parser = Parser::new_from_str(text);
        while let Some(Ok((event, span))) = parser.next_event() {
            match event {
                Event::Scalar(value, ..) => {
                    map.node(&mut stack, &span, Some(value.as_ref()));
                }
                Event::Alias(_) => {
                    map.node(&mut stack, &span, None);
                }
                Event::MappingStart(..) => {
                    let frame = match map.node(&mut stack, &span, None) {
                        Some(path) => Frame::Mapping { path, key: None },
                        None => Frame::Ignored,
                    };
                    stack.push(frame);
                }
                Event::SequenceStart(..) => {
                    let frame = match map.node(&mut stack, &span, None) {
                        Some(path) => Frame::Sequence { path, next: 0 },
                        None => Frame::Ignored,
                    };
                    stack.push(frame);
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::StreamEnd => break,
                _ => {}
            }
        }
        map
    }

    /// Records a node starting at `span`; returns its path when it is a value with one.
    fn node(&mut self, stack: &mut [Frame], span: &Span, scalar: Option<&str>) -> Option<Path> {
        let position = Position {
            line: span.start.line(),
            column: span.start.col() + 1,
        };
        let Some(frame) = stack.last_mut() else {
            return Some(Path::root());
        };
        match frame {
            Frame::Ignored => None,
            Frame::Sequence { path, next } => {
                let item = path.index(*next);
                *next += 1;
                self.positions.entry(item.clone()).or_insert(position);
                Some(item)
            }
            Frame::Mapping { path, key } => match key.take() {
                Some(key) => Some(path.key(key)),
                None => {
                    // This node is a key. Scalars name the entry; anything else is ignored.
                    let name = scalar.map_or_else(|| "?".to_owned(), str::to_owned);
                    let entry = path.key(name.clone());
                    if self.positions.contains_key(&entry) {
                        self.duplicates.push(entry.clone());
                    }
                    self.positions.insert(entry, position);
                    *key = Some(name);
                    None
                }
            },
        }
    }

    /// The position of `path`, or of its nearest enclosing value that has one.
    pub fn locate(&self, path: &Path) -> Option<Position> {
        let mut current = Some(path.clone());
        while let Some(path) = current {
            if let Some(position) = self.positions.get(&path) {
                return Some(*position);
            }
            current = path.parent();
        }
        None
    }

    /// Mapping keys that appear twice in the same mapping.
    pub fn duplicates(&self) -> &[Path] {
        &self.duplicates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(map: &SourceMap, path: &Path) -> String {
        map.locate(path)
            .map_or_else(|| "none".to_owned(), |p| p.to_string())
    }

    #[test]
    fn yaml_positions_point_at_keys_and_items() {
        let text = "flags:\n  checkout:\n    rules:\n      - serve: on\n      - when:\n          - attribute: a\n            value: x\n";
        let map = SourceMap::build(text);
        let flag = Path::root().key("flags").key("checkout");
        assert_eq!(at(&map, &flag), "2:3");
        assert_eq!(at(&map, &flag.key("rules").index(0)), "4:9");
        assert_eq!(
            at(
                &map,
                &flag.key("rules").index(1).key("when").index(0).key("value")
            ),
            "7:13"
        );
        // A missing path resolves to its nearest ancestor.
        assert_eq!(at(&map, &flag.key("rules").index(1).key("serve")), "5:9");
    }

    #[test]
    fn json_positions_and_duplicate_keys() {
        let text =
            "{\n  \"flags\": {\n    \"a\": {\"type\": \"boolean\", \"type\": \"string\"}\n  }\n}";
        let map = SourceMap::build(text);
        let flag = Path::root().key("flags").key("a");
        assert_eq!(at(&map, &flag), "3:5");
        assert_eq!(map.duplicates(), &[flag.key("type")]);
    }

    #[test]
    fn complex_keys_do_not_confuse_paths() {
        let text = "? [a, b]\n: 1\nc: 2\n";
        let map = SourceMap::build(text);
        assert_eq!(at(&map, &Path::root().key("c")), "3:1");
    }
}
