//! Reading flag definitions from text: YAML or JSON, Sluice's format or flagd's.
//!
//! A [`Source`] is a parsed document plus the map from document paths to line and column,
//! so that every error, whether from the parser, from serde or from compilation, can name
//! the file, the line, the column and the path. Each flag and segment is deserialized on
//! its own, so one malformed flag does not hide the problems of the others.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::compile;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Errors, Path, Position};
use crate::flagd::FlagdFile;
use crate::model::FlagFile;
use crate::source_map::SourceMap;

/// The syntax of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML 1.2.
    Yaml,
    /// JSON.
    Json,
}

impl Format {
    /// JSON for a `.json` file name, YAML for anything else.
    pub fn from_file_name(name: &str) -> Format {
        if name.to_ascii_lowercase().ends_with(".json") {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// A document in one of the two flag formats.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// Sluice's own format.
    Sluice(FlagFile),
    /// flagd's flag definition format.
    Flagd(FlagdFile),
}

/// A parsed flag document that remembers where each value came from.
#[derive(Debug)]
pub struct Source {
    document: Document,
    map: SourceMap,
    file: Option<String>,
}

impl Source {
    /// Parses `text`. `file` names it in error messages.
    pub fn parse(file: Option<&str>, text: &str, format: Format) -> Result<Source, Errors> {
        let map = SourceMap::build(text);
        let place = |errors: Vec<Error>| Errors(place_errors(errors, &map, file));
        let value = parse_value(text, format).map_err(|e| place(vec![e]))?;
        let mut errors: Vec<Error> = map
            .duplicates()
            .iter()
            .map(|path| {
                Error::new(
                    ErrorKind::Duplicate,
                    path.clone(),
                    "this key appears twice in the same mapping",
                )
            })
            .collect();
        let document = if is_flagd(&value) {
            FlagdFile::from_value(value).map(Document::Flagd)
        } else {
            flag_file_from_value(value).map(Document::Sluice)
        };
        let document = match document {
            Ok(document) => document,
            Err(more) => {
                errors.extend(more);
                return Err(place(errors));
            }
        };
        if !errors.is_empty() {
            return Err(place(errors));
        }
        Ok(Source {
            document,
            map,
            file: file.map(str::to_owned),
        })
    }

    /// The parsed document.
    pub fn document(&self) -> &Document {
        &self.document
    }

    /// Consumes the source, keeping the document.
    pub fn into_document(self) -> Document {
        self.document
    }

    /// Validates and compiles for `environment` (`None` for the base definitions).
    pub fn compile(&self, environment: Option<&str>) -> Result<Engine, Errors> {
        let result = match &self.document {
            Document::Sluice(file) => compile::compile(file, environment),
            Document::Flagd(file) => file.compile(),
        };
        result.map_err(|errors| Errors(place_errors(errors.0, &self.map, self.file.as_deref())))
    }
}

/// Attaches file names and positions, and orders errors as they appear in the text.
fn place_errors(mut errors: Vec<Error>, map: &SourceMap, file: Option<&str>) -> Vec<Error> {
    for error in &mut errors {
        if error.position.is_none() {
            error.position = map.locate(&error.path);
        }
        if error.file.is_none() {
            error.file = file.map(str::to_owned);
        }
    }
    errors.sort_by_key(|e| e.position.map(|p| (p.line, p.column)));
    errors
}

fn parse_value(text: &str, format: Format) -> Result<Value, Error> {
    let syntax = |message: String, position: Option<Position>| Error {
        position,
        ..Error::new(ErrorKind::Syntax, Path::root(), message)
    };
    let value = match format {
        Format::Json => serde_json::from_str::<Value>(text).map_err(|e| {
            let position = (e.line() > 0).then(|| Position {
                line: e.line(),
                column: e.column(),
            });
            syntax(strip_location(&e.to_string()), position)
        })?,
        Format::Yaml => yaml_serde::from_str::<Value>(text).map_err(|e| {
            let position = e.location().map(|l| Position {
                line: l.line(),
                column: l.column(),
            });
            syntax(strip_location(&e.to_string()), position)
        })?,
    };
    if !value.is_object() {
        let found = if value.is_null() {
            "an empty document"
        } else {
            "something else"
        };
        return Err(syntax(
            format!("expected a mapping with `flags` at the top, found {found}"),
            Some(Position { line: 1, column: 1 }),
        ));
    }
    Ok(value)
}

/// Drops a trailing " at line L column C" that parsers add, since positions are shown separately.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// flagd documents are recognised by their `$schema`, `$evaluators`, or flags with `state`.
fn is_flagd(value: &Value) -> bool {
    if value.get("$evaluators").is_some() {
        return true;
    }
    if let Some(schema) = value.get("$schema").and_then(Value::as_str)
        && schema.contains("flagd")
    {
        return true;
    }
    value
        .get("flags")
        .and_then(Value::as_object)
        .is_some_and(|flags| {
            flags
                .values()
                .any(|flag| flag.get("state").is_some() || flag.get("defaultVariant").is_some())
        })
}

/// Deserializes `value` at `path`, turning a serde error into one located [`Error`].
pub(crate) fn from_value_at<T: DeserializeOwned>(value: Value, path: &Path) -> Result<T, Error> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|error| {
        let at = path.join_serde(error.path());
        Error::new(ErrorKind::Structure, at, error.into_inner().to_string())
    })
}

fn flag_file_from_value(value: Value) -> Result<FlagFile, Vec<Error>> {
    let root = Path::root();
    let Value::Object(top) = value else {
        return Err(vec![Error::new(
            ErrorKind::Structure,
            root,
            "expected a mapping",
        )]);
    };
    let mut errors = Vec::new();
    let mut file = FlagFile::default();
    for (name, value) in top {
        let path = root.key(name.clone());
        match name.as_str() {
            "version" => match from_value_at(value, &path) {
                Ok(version) => file.version = version,
                Err(e) => errors.push(e),
            },
            "environments" => match from_value_at(value, &path) {
                Ok(environments) => file.environments = Some(environments),
                Err(e) => errors.push(e),
            },
            "segments" => {
                for (key, def) in entries(value, &path, &mut errors) {
                    match from_value_at(def, &path.key(key.clone())) {
                        Ok(def) => {
                            file.segments.insert(key, def);
                        }
                        Err(e) => errors.push(e),
                    }
                }
            }
            "flags" => {
                for (key, def) in entries(value, &path, &mut errors) {
                    match from_value_at(def, &path.key(key.clone())) {
                        Ok(def) => {
                            file.flags.insert(key, def);
                        }
                        Err(e) => errors.push(e),
                    }
                }
            }
            other => errors.push(Error::new(
                ErrorKind::Structure,
                path,
                format!("unknown field `{other}`, expected one of `version`, `environments`, `segments`, `flags`"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(errors)
    }
}

/// The entries of a mapping; anything else is reported.
fn entries(value: Value, path: &Path, errors: &mut Vec<Error>) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        Value::Null => serde_json::Map::new(),
        _ => {
            errors.push(Error::new(
                ErrorKind::Structure,
                path.clone(),
                "expected a mapping of names to definitions",
            ));
            serde_json::Map::new()
        }
    }
}
