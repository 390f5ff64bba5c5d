//! flagd's flag definition format, loaded into the same engine.
//!
//! Placeholder: the loader and JSON Logic targeting arrive with the flagd conformance work.

use serde_json::Value;

use crate::context::Context;
use crate::engine::{Engine, Flag, LogicOutcome};
use crate::error::{Error, ErrorKind, Errors, Path};

/// A flagd flags document.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagdFile {
    value: Value,
}

impl FlagdFile {
    /// Reads a flagd document.
    pub fn from_value(value: Value) -> Result<FlagdFile, Vec<Error>> {
        Ok(FlagdFile { value })
    }

    /// Compiles the document.
    pub fn compile(&self) -> Result<Engine, Errors> {
        Err(Errors(vec![Error::new(
            ErrorKind::Invalid,
            Path::root(),
            "flagd documents are not supported yet",
        )]))
    }
}

/// Compiled JSON Logic targeting.
#[derive(Debug, Clone)]
pub(crate) struct Logic;

impl Logic {
    pub(crate) fn resolve(&self, _flag: &Flag, _context: &Context) -> LogicOutcome {
        LogicOutcome::Static
    }
}
