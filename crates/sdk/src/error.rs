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
    /// A server client was configured wrongly, such as without a token or with a URL that
    /// is not `http` or `https`.
    #[error("{0}")]
    Config(String),
    /// The server refused the token (401 or 403). The client stops talking to it and keeps
    /// serving the flags it has, if any; a new token needs a new client.
    #[error("the server refused the token ({status}) at {url}: {message}")]
    Unauthorized {
        /// The request that was refused.
        url: String,
        /// 401 or 403.
        status: u16,
        /// What the server said.
        message: String,
    },
    /// The server could not be reached, or did not answer in time. The client retries.
    #[error("cannot reach the server at {url}: {message}")]
    Unreachable {
        /// The request that failed.
        url: String,
        /// The cause, with its chain of causes.
        message: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server answered with an unexpected status, such as 429 or a 5xx. The client
    /// retries, no sooner than `retry_after` when the server gave one.
    #[error("the server answered {status} at {url}{}: {message}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    Status {
        /// The request.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` the server asked for, in whole seconds.
        retry_after: Option<Duration>,
        /// The start of the response body.
        message: String,
    },
    /// Something that should have been a configuration is not one: a malformed stream event,
    /// response body or cache file. It is ignored and the last good flags are kept.
    #[error("{origin} sent something that is not a configuration: {message}")]
    Malformed {
        /// Where it came from: a URL, or the cache file.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// A configuration from the server (or the cache file) that does not compile. It is
    /// ignored and the last good flags are kept.
    #[error("{}", describe_invalid_config(origin, *version, errors))]
    InvalidConfig {
        /// Where it came from: a URL, or the cache file.
        origin: String,
        /// Its configuration version.
        version: i64,
        /// Every problem found, never empty.
        errors: sluice_core::Errors,
    },
    /// The cache file could not be written or read.
    #[error("cache file {}: {source}", path.display())]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
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

fn describe_invalid_config(origin: &str, version: i64, errors: &sluice_core::Errors) -> String {
    let count = errors.len();
    let noun = if count == 1 { "problem" } else { "problems" };
    format!("configuration version {version} from {origin} has {count} {noun}:\n{errors}")
}

impl Error {
    /// The definition problems, when this error is about an invalid file or configuration.
    pub fn definition_errors(&self) -> Option<&sluice_core::Errors> {
        match self {
            Error::Invalid { errors, .. } | Error::InvalidConfig { errors, .. } => Some(errors),
            _ => None,
        }
    }
}
