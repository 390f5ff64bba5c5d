//! Sluice's Rust SDK: evaluate feature flags in-process, from a file or a Sluice server.
//!
//! A [`Client`] holds the current flags as an immutable compiled configuration and evaluates
//! them synchronously, with no I/O and no lock, through the same engine as the CLI and the
//! server, so all three give the same answer. In file mode it watches the file and reloads it
//! on change; an invalid edit keeps the last good flags and is reported through
//! [`Client::status`], [`Client::last_error`] and [`Client::subscribe`]. In server mode
//! ([`Client::builder`]`().server(url)`, see [`ServerBuilder`]) it follows the server's live
//! stream, falls back to polling, and serves the last good flags through any outage.
//!
//! ```
//! use sluice::{Client, ContextBuilder, Reason};
//!
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/flags.yaml");
//! let client = Client::file_builder(path)
//!     .environment("production")
//!     .env_vars([("SLUICE_FLAG_SEARCH_RANKING", "learned")])
//!     .build()?;
//!
//! let staff = ContextBuilder::new("user-7").attr("email", "ada@shop.example").build();
//! assert!(client.bool("new-checkout", &staff, false));
//!
//! // A kill switch, off in production: the off variant is served.
//! let details = client.bool_details("legacy-invoice-pdf", &staff, true);
//! assert_eq!((details.value, details.reason), (false, Reason::Disabled));
//!
//! // `SLUICE_FLAG_SEARCH_RANKING=learned` forces a variant.
//! let details = client.string_details("search-ranking", &staff, "bm25");
//! assert_eq!(details.value, "learned-2026-10");
//! assert!(details.overridden);
//!
//! // Anything that goes wrong serves the caller's default and says why.
//! let details = client.integer_details("new-checkout", &staff, 7);
//! assert_eq!(details.value, 7);
//! assert_eq!(details.error, Some(sluice::ErrorCode::TypeMismatch));
//! # Ok::<(), sluice::Error>(())
//! ```
//!
//! Environment variables named `SLUICE_FLAG_<KEY>` force a flag's variant; see
//! [`override_variable`] and the crate's README. With the default `openfeature` feature,
//! [`openfeature::SluiceProvider`] serves a client through the OpenFeature API.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod client;
mod context;
mod details;
mod dry_run;
mod error;
pub mod experiment;
mod file;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "openfeature")]
pub mod openfeature;
mod overrides;
mod server;
mod status;
pub mod telemetry;

pub use client::{Builder, Client};
pub use context::ContextBuilder;
pub use details::{Details, ErrorCode, Rule};
pub use error::Error;
pub use experiment::{AsyncExperiment, Experiment, ExperimentResult, Outcome};
pub use file::{DEFAULT_DEBOUNCE, FileBuilder};
pub use overrides::{OVERRIDE_PREFIX, Override, OverrideWarning, override_variable};
pub use server::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_INIT_TIMEOUT, DEFAULT_POLL_INTERVAL, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_STREAM_IDLE_TIMEOUT, ServerBuilder,
};
pub use status::{Status, StatusReceiver};
pub use telemetry::{
    DEFAULT_FLUSH_INTERVAL, LatencyGuard, TelemetryStats, clear_active_variants, install_crash_hook,
};

pub use sluice_core::{Context, Reason};

/// The core crate, for its engine, model and error types.
pub use sluice_core as core;
