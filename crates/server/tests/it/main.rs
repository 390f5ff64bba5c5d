//! Integration tests: a real server on an ephemeral port over a real SQLite file.

mod api;
mod helpers;
mod ofrep;
mod stream;
