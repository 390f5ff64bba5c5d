//! Releases, the pure parts: the release format, the pre-release checklist, rollback drill
//! timings and the learning report.
//!
//! The one design decision: every judgement about a release is a function of facts the
//! server gathers (the flags as stored, the telemetry instances, the audience segment, the
//! evidence people recorded, the rollouts' transitions), so the same facts always give the
//! same checklist and the same report, and each can be tested from tables without a server.

mod checklist;
mod drill;
mod report;
mod spec;

pub use checklist::{
    AudienceFacts, Checklist, Evidence, FlagFacts, Item, ItemResult, ItemSource, MonitoringFacts,
    Override, ProductionState, ReleaseFacts, evaluate,
};
pub use drill::{DrillTimings, percentile};
pub use report::{Figures, GroupFigures, ReleaseRecord, Report, RestoreRecord, report};
pub use spec::{ProvenanceInfo, ReleaseSpec, RollbackKind, RollbackProcedure};
