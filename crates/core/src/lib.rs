//! Sluice's core: the flag model, validation, and the evaluation engine.
//!
//! Core does no I/O, reads no clock and never panics on input. Text goes in through
//! [`Source`], which reports every problem with its file, line, column and path. A valid
//! document compiles into an [`Engine`] for one environment, which evaluates flags for a
//! [`Context`] without locking and, on the success path, without allocating.
//!
//! ```
//! use sluice_core::{Context, Format, Reason, Source};
//!
//! let text = r#"
//! flags:
//!   new-checkout:
//!     type: boolean
//!     variants: { "on": true, "off": false }
//!     default_variant: "off"
//!     rules:
//!       - name: staff
//!         when:
//!           - { attribute: email, op: ends_with, value: "@example.com" }
//!         serve: "on"
//! "#;
//! let engine = Source::parse(Some("flags.yaml"), text, Format::Yaml)?.compile(Some("production"))?;
//! let context = Context::with_key("user-1").set("email", "ada@example.com");
//! let result = engine.boolean("new-checkout", &context, false);
//! assert!(result.value);
//! assert_eq!(result.details.reason, Reason::TargetingMatch);
//! # Ok::<(), sluice_core::Errors>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod ab;
pub mod apps;
pub mod bucket;
mod compile;
mod condition;
mod context;
pub mod diff;
pub mod dry_run;
mod engine;
mod error;
mod evaluation;
pub mod flagd;
pub mod governance;
pub mod lifecycle;
pub mod model;
pub mod murmur3;
pub mod release;
pub mod rollout;
pub mod semver_cmp;
pub mod shadow;
mod source;
mod source_map;
pub mod telemetry;

pub use compile::{MAX_KEY_LEN, MAX_REGEX_LEN, MAX_REGEX_SIZE, check_key, compile, validate};
pub use context::{Context, TARGETING_KEY};
pub use engine::{Engine, FlagInfo};
pub use error::{Error, ErrorKind, Errors, Path, PathSegment, Position};
pub use evaluation::{ErrorCode, Evaluation, Reason, RuleRef, Typed};
pub use model::FlagFile;
pub use source::{Document, Format, Source};
pub use source_map::SourceMap;
