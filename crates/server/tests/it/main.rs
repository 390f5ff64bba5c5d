//! Integration tests: a real server on an ephemeral port over a real SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod apps;
mod auth_matrix;
mod conformance;
mod console;
mod dry_runs;
mod experiments;
mod gitops;
mod governance;
mod helpers;
mod hostile;
mod ofrep;
mod ofrep_client;
mod releases;
mod rollouts;
mod telemetry;
mod webdriver;
