//! Background tasks that keep a replica current: following the store's change feed,
//! watching GitOps files, holding (or waiting for) the leader lock, and, on the leader, the
//! rollout controller's loop.

use std::path::PathBuf;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::state::AppState;

/// How often a follower tries to take the leader lock.
const LEADER_RETRY: Duration = Duration::from_secs(5);
/// How long after a failed reload from the store it is tried again.
const RELOAD_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long file events settle before a reload.
const FILE_DEBOUNCE: Duration = Duration::from_millis(100);

/// Starts every background task; they end when the server shuts down.
pub fn spawn_background(state: &AppState) {
    tokio::spawn(follow_store(state.clone()));
    tokio::spawn(hold_leadership(state.clone()));
    tokio::spawn(shrink_rate_limits(state.clone()));
    tokio::spawn(crate::dry_runs::run_flusher(state.clone()));
    let interval = state.settings().rollout_interval;
    if !interval.is_zero() {
        // Ticks only while this replica holds the leader lock.
        let deliverer =
            crate::rollouts::webhooks::Deliverer::system(&state.settings().webhook_allow);
        tokio::spawn(crate::rollouts::run_loop(
            state.clone(),
            interval,
            deliverer,
        ));
    }
    if let Some(path) = state.settings().flags.clone() {
        watch_files(state.clone(), path);
    }
}

/// Reloads whenever the store's configuration version moves (on PostgreSQL, also after
/// other replicas' writes, through LISTEN/NOTIFY).
async fn follow_store(state: AppState) {
    let mut versions = state.store().subscribe();
    let mut shutdown = state.shutdown_signal();
    // A reload that failed (the store unreachable mid-way) is tried again, since the change
    // feed may not say anything new until the next write.
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = versions.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = retry => {}
            _ = crate::state::until_shutdown(&mut shutdown) => return,
        }
        // In GitOps mode the store still owns tokens: reload refreshes them too.
        retry_at = state
            .reload()
            .await
            .err()
            .map(|_| tokio::time::Instant::now() + RELOAD_RETRY);
    }
}

/// Forgets rate-limited callers that went quiet, every minute.
async fn shrink_rate_limits(state: AppState) {
    let mut shutdown = state.shutdown_signal();
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = every.tick() => state.rate_limits().shrink(),
            _ = crate::state::until_shutdown(&mut shutdown) => return,
        }
    }
}

async fn hold_leadership(state: AppState) {
    let mut lock = match state.store().leader_lock().await {
        Ok(lock) => lock,
        Err(error) => {
            tracing::error!(%error, "cannot create the leader lock");
            return;
        }
    };
    let mut shutdown = state.shutdown_signal();
    loop {
        match lock.try_acquire().await {
            Ok(leader) => {
                if leader != state.is_leader() {
                    tracing::info!(leader, replica = state.replica(), "leadership changed");
                }
                state.set_leader(leader);
            }
            Err(error) => {
                tracing::warn!(%error, "leader lock check failed");
                state.set_leader(false);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(LEADER_RETRY) => {}
            _ = crate::state::until_shutdown(&mut shutdown) => {
                let _ = lock.release().await;
                return;
            }
        }
    }
}

/// Watches the GitOps path (its directory, so editors' rename-on-save is seen) and reloads
/// after changes settle. An invalid edit keeps the last good configuration.
fn watch_files(state: AppState, path: PathBuf) {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let watched = if path.is_dir() {
        path.clone()
    } else {
        path.parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    };
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = sender.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::error!(%error, "cannot watch the flags files; edits will not be reloaded");
            return;
        }
    };
    if let Err(error) = watcher.watch(&watched, RecursiveMode::NonRecursive) {
        tracing::error!(%error, path = %watched.display(), "cannot watch the flags files");
        return;
    }
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        let mut shutdown = state.shutdown_signal();
        loop {
            tokio::select! {
                event = receiver.recv() => {
                    if event.is_none() {
                        return;
                    }
                    tokio::time::sleep(FILE_DEBOUNCE).await;
                    while receiver.try_recv().is_ok() {}
                    match state.reload().await {
                        Ok(()) => tracing::info!("flags files reloaded"),
                        Err(error) => tracing::error!(%error, "flags files are invalid; serving the last good ones"),
                    }
                }
                _ = crate::state::until_shutdown(&mut shutdown) => return,
            }
        }
    });
}
