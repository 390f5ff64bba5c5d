//! The web console: server-rendered HTML pages over the store, served by `sluice serve` at
//! `/`, for people who would rather look than read JSON.
//!
//! Pages are [maud] templates in `console/` (one module per page or concern), styled by one
//! CSS file and enhanced by one small script of our own (`static/`), both embedded in the
//! binary. Every reading page works without the script; the script adds live rollout
//! updates (`EventSource` on [`rollouts::events`]) and inline confirmations.
//!
//! Sign-in takes a token and opens a server-side session ([`session`]): admin tokens may
//! act, server tokens read their own environment, client tokens are refused. Every POST
//! carries the session's CSRF token. These routes are HTML, not API: they are left out of
//! the OpenAPI document (see `tests/openapi.rs`) and answer a missing session with a
//! redirect to `/login` rather than 401.

pub mod assets;
pub mod audit;
pub mod chart;
pub mod dry_run;
pub mod flag_detail;
pub mod flags;
pub mod layout;
pub mod login;
pub mod outcome;
pub mod releases;
pub mod rollouts;
pub mod session;

use std::sync::Arc;

use axum::{Extension, Router};

use crate::state::AppState;

/// The console's pages and form handlers (under the request timeout).
pub fn router(sessions: Arc<session::Sessions>) -> Router<AppState> {
    Router::new()
        .merge(assets::router())
        .merge(login::router())
        .merge(flags::router())
        .merge(rollouts::router())
        .merge(releases::router())
        .merge(audit::router())
        .layer(Extension(sessions))
}

/// The console's live streams (no request timeout).
pub fn events_router(sessions: Arc<session::Sessions>) -> Router<AppState> {
    rollouts::events_router().layer(Extension(sessions))
}
