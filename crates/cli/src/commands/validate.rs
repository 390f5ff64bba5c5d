//! `sluice validate FILE...`: exit 0 when every file is valid, 1 otherwise, printing every error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::load::{LoadError, read_source};
use sluice_core::Document;

/// Arguments of `sluice validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Flag files to check, YAML or JSON, in Sluice's format or flagd's.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Checks every file, printing a line per valid file and every error of the others.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let mut failed = false;
    for path in &args.files {
        let compiled = read_source(path).and_then(|source| {
            let engine = source.compile(None).map_err(LoadError::Invalid)?;
            Ok((source, engine))
        });
        match compiled {
            Ok((source, engine)) => {
                let (format, segments) = match source.document() {
                    Document::Sluice(file) => ("sluice", file.segments.len()),
                    Document::Flagd(_) => ("flagd", 0),
                };
                writeln!(
                    stdout,
                    "{}: ok ({format} format, {} flags, {segments} segments)",
                    path.display(),
                    engine.len()
                )?;
            }
            Err(LoadError::Io(error)) => {
                failed = true;
                writeln!(stderr, "{}: {error:#}", path.display())?;
            }
            Err(LoadError::Invalid(errors)) => {
                failed = true;
                writeln!(stderr, "{errors}")?;
                let count = errors.len();
                let noun = if count == 1 { "error" } else { "errors" };
                writeln!(stderr, "{}: {count} {noun}", path.display())?;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
