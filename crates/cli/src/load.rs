//! Reading flag files from disk into a [`Source`], with errors that name the file.

use std::path::Path;

use anyhow::Context as _;
use sluice_core::{Errors, Format, Source};

/// What can go wrong reading a flag file.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io(anyhow::Error),
    /// The file was read and is invalid.
    Invalid(Errors),
}

/// Reads and parses a flag file; the format follows the file name.
pub fn read_source(path: &Path) -> Result<Source, LoadError> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(LoadError::Io)?;
    let name = path.display().to_string();
    Source::parse(Some(&name), &text, Format::from_file_name(&name)).map_err(LoadError::Invalid)
}
