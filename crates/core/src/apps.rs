//! Desktop app updates: channels, releases with a server-controlled staged share, the cohort
//! math that decides which release an install is offered, the crash gate, and the three feed
//! formats (electron-updater, Sparkle, Tauri). Pure: times and install ids are inputs.
//!
//! # The key decision: the server picks the release, not the client
//!
//! electron-updater and Sparkle stage updates on the client, from a fixed per-install id
//! and no release salt, so the same installs are early for every release, and a share like
//! 0.1% silently becomes 0. Here the server answers each feed request for one install:
//! it buckets the install id under the release's own salt (the bucketing of flags, so ramps
//! are monotonic and shares exact to 0.001%), and serves either the newest release whose
//! cohort holds the install, or the newest complete release of the channel. A feed never
//! carries a staging percentage, so clients never stage a second time.

mod cohort;
pub mod feed;
mod gate;
mod release;

pub use cohort::{Install, in_cohort, is_newer, offer};
pub use gate::{
    GateAction, GateDecision, GateState, ReleasePlan, ReleaseStage, SessionCounts, decide_gate,
};
pub use release::{
    Arch, Artifact, CommandError, DEFAULT_CHANNELS, MAX_ARTIFACTS, MAX_NOTES_LEN, Os, Release,
    ReleaseCommand, ReleaseSpec, ReleaseState, Share, apply_command, check_channel, validate_spec,
};
