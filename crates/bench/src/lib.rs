//! Shared pieces of the benchmarks: the SDK workload (the same flags for Sluice and for
//! Unleash), the SDK clients measured, a Sluice server started in-process, and reading back
//! criterion's estimates.
//!
//! The criterion benchmarks live in `benches/`, the load tools in `src/bin/`.

pub mod criterion_files;
pub mod sdk;
pub mod server;
pub mod workload;
