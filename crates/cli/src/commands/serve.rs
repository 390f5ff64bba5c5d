//! `sluice serve`: run the server on SQLite (the default) or PostgreSQL.

use std::process::ExitCode;

use anyhow::Context as _;
use sluice_server::{ServeArgs, Settings};
use tokio::net::TcpListener;

/// Starts the server and runs it until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let address = listener.local_addr()?;
        let store = settings.store.clone();
        let started = sluice_server::start(settings).await?;
        println!("Sluice is serving on http://{address}");
        println!("  store: {store}");
        if let Some(token) = &started.admin_token {
            println!("  first admin token (shown once, only its SHA-256 is stored):");
            println!("    {token}");
        }
        sluice_server::serve(listener, started.state, sluice_server::shutdown_signal())
            .await
            .context("the server failed")?;
        println!("Sluice stopped.");
        Ok(ExitCode::SUCCESS)
    })
}
