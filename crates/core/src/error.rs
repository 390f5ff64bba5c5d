//! Errors in flag definitions: what is wrong, where in the document, and where in the file.
//!
//! Loading never stops at the first problem. Every error found is returned, each with the
//! path of the offending value (`flags.checkout.rules[2].when[0].value`) and, for text
//! sources, the line and column it starts at.

use std::fmt;

/// One step into a document: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSegment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// Where a value sits in a document, such as `flags.checkout.rules[2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path(Vec<PathSegment>);

impl Path {
    /// The document root.
    pub fn root() -> Path {
        Path(Vec::new())
    }

    /// This path extended by a key.
    pub fn key(&self, key: impl Into<String>) -> Path {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Key(key.into()));
        Path(segments)
    }

    /// This path extended by an index.
    pub fn index(&self, index: usize) -> Path {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Index(index));
        Path(segments)
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }

    /// This path extended by `tail`'s segments.
    pub fn join(&self, tail: &[PathSegment]) -> Path {
        let mut segments = self.0.clone();
        segments.extend_from_slice(tail);
        Path(segments)
    }

    /// The enclosing path, or `None` at the root.
    pub fn parent(&self) -> Option<Path> {
        let (_, rest) = self.0.split_last()?;
        Some(Path(rest.to_vec()))
    }

    /// Appends the segments of a `serde_path_to_error` path.
    pub(crate) fn join_serde(&self, tracked: &serde_path_to_error::Path) -> Path {
        let mut path = self.clone();
        for segment in tracked.iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => path = path.index(*index),
                serde_path_to_error::Segment::Map { key } => path = path.key(key.clone()),
                serde_path_to_error::Segment::Enum { variant } => path = path.key(variant.clone()),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        path
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for segment in &self.0 {
            match segment {
                PathSegment::Key(key) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
            first = false;
        }
        if first {
            f.write_str("(root)")?;
        }
        Ok(())
    }
}

/// A line and column in a source text, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, in characters.
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What is wrong with a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text is not valid YAML or JSON.
    Syntax,
    /// A value has the wrong shape: a missing or unknown field, or the wrong type.
    Structure,
    /// A name (variant, segment, flag, environment) refers to nothing.
    UnknownReference,
    /// A name is defined twice.
    Duplicate,
    /// Segments or prerequisites refer back to themselves.
    Cycle,
    /// An operand does not suit its operator: a bad semver, regex, date or number.
    InvalidOperand,
    /// A value does not match the flag's type.
    TypeMismatch,
    /// Split weights are out of range or do not add up to 100,000.
    InvalidWeights,
    /// A field combination or value that the format forbids.
    Invalid,
}

/// One problem in a flag definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The kind of problem.
    pub kind: ErrorKind,
    /// Where in the document.
    pub path: Path,
    /// A sentence saying what is wrong.
    pub message: String,
    /// The file it came from, when it came from one.
    pub file: Option<String>,
    /// The line and column, when the source was text.
    pub position: Option<Position>,
}

impl Error {
    /// An error at `path`.
    pub fn new(kind: ErrorKind, path: Path, message: impl Into<String>) -> Error {
        Error {
            kind,
            path,
            message: message.into(),
            file: None,
            position: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
            if let Some(position) = self.position {
                write!(f, "{position}:")?;
            }
            f.write_str(" ")?;
        } else if let Some(position) = self.position {
            write!(f, "{position}: ")?;
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for Error {}

/// Every problem found in one document. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errors(pub Vec<Error>);

impl Errors {
    /// The problems, in document order where positions are known.
    pub fn iter(&self) -> std::slice::Iter<'_, Error> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: an `Errors` holds at least one error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

impl IntoIterator for Errors {
    type Item = Error;
    type IntoIter = std::vec::IntoIter<Error>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
