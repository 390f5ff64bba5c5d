//! The rollout controller in the server: the leader's loop, people's commands, and webhooks.
//!
//! The decisions are `sluice_core::rollout`'s, pure: [`step`](sluice_core::rollout::step)
//! judges a stage from a [`Window`](sluice_core::rollout::Window) of telemetry, and
//! [`command`](sluice_core::rollout::command) turns a person's instruction into a transition.
//! This module feeds them and writes what they decide:
//!
//! - `window.rs` builds the current stage's window from the store's telemetry aggregates:
//!   the control arm is the control variant, the treatment arm the treatment variant, counted
//!   from the stage's start and only under the configuration version that wrote the stage's
//!   exposure, so nothing reported before the flag changed is judged as the new stage.
//! - `controller.rs` has [`tick`], which the leader calls every `--rollout-interval` seconds
//!   (and tests call with a virtual clock), and [`run_command`] for the API. Both apply
//!   transitions through [`Store::apply_transition`](crate::store::Store::apply_transition),
//!   one audited, idempotent transaction each, and reload at once so SDK streams get the
//!   change.
//! - `webhooks.rs` delivers the outbox: signed (HMAC-SHA256), retried with backoff, and only
//!   to public addresses unless allow-listed, connecting to the address it vetted.

pub mod controller;
pub mod webhooks;
pub mod window;

pub use controller::{
    RolloutError, TickOutcome, TickReport, current_decision, run_command, run_loop, tick,
};
pub use window::{gather, window_of};
