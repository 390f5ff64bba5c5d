//! The SDK's errors: what stopped a client from starting, or what its source reported later.
//!
//! Evaluation never returns these: it always serves a value, and says why in [`crate::Details`].
//! They come from building a client and, while it runs, from [`crate::Client::last_error`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Status;

/// Why a client could not start, or what its flag source last reported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The flags file could not be read.
    #[error("cannot read the flags file {}: {source}", path.display())]
    Read {
        /// The file, as given to the builder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The flags file was read but is not a valid definition. Each problem names its file,
    /// line, column and path, such as `flags.yaml:12:9: flags.checkout.rules[0].serve: ...`.
    #[error("{}", describe_invalid(path, errors))]
    Invalid {
        /// The file, as given to the builder.
        path: PathBuf,
        /// Every problem found, never empty.
        errors: sluice_core::Errors,
    },
    /// The file's directory could not be watched for changes.
    #[error("cannot watch {} for changes: {source}", path.display())]
    Watch {
        /// The directory that was to be watched.
        path: PathBuf,
        /// What the watcher said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// [`crate::Client::wait_ready`] gave up.
    #[error("the client was not ready after {timeout:?}; its status is {status}")]
    NotReady {
        /// The status when waiting stopped.
        status: Status,
        /// How long the caller waited.
        timeout: Duration,
        /// The last problem the client's source reported, if any.
        source: Option<Arc<Error>>,
    },
}

fn describe_invalid(path: &std::path::Path, errors: &sluice_core::Errors) -> String {
    let count = errors.len();
    let noun = if count == 1 { "problem" } else { "problems" };
    format!(
        "the flags file {} has {count} {noun}:\n{errors}",
        path.display()
    )
}

impl Error {
    /// The definition problems, when this error is about an invalid file.
    pub fn definition_errors(&self) -> Option<&sluice_core::Errors> {
        match self {
            Error::Invalid { errors, .. } => Some(errors),
            _ => None,
        }
    }
}
