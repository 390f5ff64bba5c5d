//! Releases in the server: the checklist read from real data, the gate the rollout controller
//! asks before promoting past the first stage, rollback drills against live SDK instances,
//! and the history and report built from rollout transitions and release events.
//!
//! The judgements themselves are pure and live in `sluice_core::release`; this module only
//! gathers the facts they need and writes what they decide.

pub mod drill;
pub mod facts;
pub mod gate;
pub mod history;

pub use drill::{DrillError, DrillReport, run_drill};
pub use facts::{RECENT_TELEMETRY_MS, checklist};
pub use gate::{advances, gate_for};
pub use history::{release_records, timeline};
