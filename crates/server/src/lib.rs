//! The Sluice server: flags per environment behind an admin API, OFREP evaluation, a live
//! change stream for SDKs, and a hash-chained audit log, on SQLite or PostgreSQL.
//!
//! [`app`] builds the router over an [`AppState`]; [`start`] opens the store, makes the
//! first admin token on first start, loads the configuration and starts the background
//! tasks; [`serve`] runs the router on a listener until a shutdown future resolves. The
//! `sluice serve` command is a thin wrapper over these.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod answers;
pub mod apps;
pub mod config;
pub mod configs;
pub mod console;
pub mod dry_runs;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod listen;
pub mod metrics;
pub mod releases;
pub mod rollouts;
pub mod state;
pub mod store;
pub mod tokens;
mod watch;

use std::future::Future;

use anyhow::Context as _;
use tokio::net::TcpListener;

pub use config::{ServeArgs, Settings};
pub use http::app;
pub use state::AppState;

use crate::store::{Change, NewToken, TokenAccess};
use crate::tokens::{generate_secret, hash_secret};

/// A server ready to serve: its state, and the admin secret when this start created one.
#[derive(Debug)]
pub struct Started {
    /// The shared state.
    pub state: AppState,
    /// The first admin token's secret, only on the start that created it.
    pub admin_token: Option<String>,
}

/// Opens the store, creates the first admin token if there is none, loads the
/// configuration and starts the background tasks (change feed, file watcher, leader lock).
pub async fn start(settings: Settings) -> anyhow::Result<Started> {
    if let store::StoreUrl::Sqlite { path } = &settings.store
        && let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the data directory {}", parent.display()))?;
    }
    let store = store::open(&settings.store)
        .await
        .context("cannot open the store")?;
    let state = AppState::new(store.clone(), settings);
    let admin_token = bootstrap_admin(&state).await?;
    if let Err(error) = state.reload().await {
        // GitOps files may be fixed later; the server reports not-ready until then.
        tracing::error!(%error, "no configuration could be loaded at start");
    }
    watch::spawn_background(&state);
    Ok(Started { state, admin_token })
}

/// Creates an admin token when the store has none, returning its secret.
async fn bootstrap_admin(state: &AppState) -> anyhow::Result<Option<String>> {
    let tokens = state
        .store()
        .list_tokens()
        .await
        .context("cannot read tokens")?;
    if tokens
        .iter()
        .any(|t| t.access == TokenAccess::Admin && t.revoked_at_ms.is_none())
    {
        return Ok(None);
    }
    let secret = generate_secret();
    let token = NewToken {
        name: "first admin".into(),
        access: TokenAccess::Admin,
        secret_sha256: hash_secret(&secret),
    };
    let change = Change::at(state::now_ms()).because("first start: no admin token existed");
    state
        .store()
        .create_token(&change, &token)
        .await
        .context("cannot create the first admin token")?;
    Ok(Some(secret))
}

/// Serves `state` on `listener` until `shutdown` resolves, then lets requests finish and
/// closes live streams.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = app(state.clone());
    let limits = listen::Limits {
        header_timeout: state.settings().header_timeout,
        ..listen::Limits::default()
    };
    let closing = state.clone();
    listen::serve_router(listener, router, limits, async move {
        shutdown.await;
        closing.begin_shutdown();
    })
    .await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
