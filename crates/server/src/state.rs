//! What every handler shares: the store, the compiled configurations, the token cache and
//! the change feed, plus the background task that keeps them current.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{Mutex, broadcast, watch};

use crate::config::Settings;
use crate::configs::{self, Configs, Loaded};
use crate::http::rate_limit::RateLimits;
use crate::store::{Store, StoreError};
use crate::tokens::TokenCache;

/// How many configuration changes a live stream may fall behind before it is dropped.
pub const CHANGE_BACKLOG: usize = 64;

/// Shared server state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    settings: Settings,
    configs: Configs,
    tokens: TokenCache,
    changes: broadcast::Sender<Arc<Loaded>>,
    leader: AtomicBool,
    replica: String,
    /// Serializes reloads, so an older configuration never replaces a newer one.
    reloading: Mutex<()>,
    shutdown: watch::Sender<bool>,
    /// Ids of revoked tokens; live streams opened with one of them end when it appears.
    revoked: watch::Sender<Arc<HashSet<String>>>,
    /// OFREP evaluation rate limits per token and client address.
    rate_limits: RateLimits,
    /// The server's own dry-run tallies, from OFREP evaluations.
    dry_run_tallies: Arc<sluice_core::dry_run::Tallies>,
}

/// Resolves once `signal` says the server is shutting down, including when it already did
/// before this call.
pub async fn until_shutdown(signal: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped at once, so the future stays `Send`.
    let _ = signal.wait_for(|closing| *closing).await.map(|_| ());
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl AppState {
    /// State over an open store. Nothing is served until [`AppState::reload`] succeeds.
    pub fn new(store: Arc<dyn Store>, settings: Settings) -> AppState {
        let (changes, _) = broadcast::channel(CHANGE_BACKLOG);
        let replica = format!("{:08x}", rand::random::<u32>());
        AppState {
            inner: Arc::new(Inner {
                store,
                configs: Configs::default(),
                tokens: TokenCache::default(),
                changes,
                leader: AtomicBool::new(false),
                replica,
                reloading: Mutex::new(()),
                shutdown: watch::channel(false).0,
                revoked: watch::channel(Arc::new(HashSet::new())).0,
                rate_limits: RateLimits::new(settings.rate_limit),
                dry_run_tallies: Arc::default(),
                settings,
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The compiled configurations.
    pub fn configs(&self) -> &Configs {
        &self.inner.configs
    }

    /// The server's own dry-run tallies.
    pub fn dry_run_tallies(&self) -> &sluice_core::dry_run::Tallies {
        &self.inner.dry_run_tallies
    }

    /// The OFREP evaluation rate limits.
    pub fn rate_limits(&self) -> &RateLimits {
        &self.inner.rate_limits
    }

    /// The token cache.
    pub fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    /// A receiver of every configuration installed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Loaded>> {
        self.inner.changes.subscribe()
    }

    /// How many live streams are connected.
    pub fn subscribers(&self) -> usize {
        self.inner.changes.receiver_count()
    }

    /// Whether flags come from files (GitOps mode) rather than the API.
    pub fn gitops(&self) -> bool {
        self.inner.settings.flags.is_some()
    }

    /// This replica's random id, for `/api/v1/status`.
    pub fn replica(&self) -> &str {
        &self.inner.replica
    }

    /// Whether this replica holds the leader lock.
    pub fn is_leader(&self) -> bool {
        self.inner.leader.load(Ordering::Relaxed)
    }

    pub(crate) fn set_leader(&self, leader: bool) {
        self.inner.leader.store(leader, Ordering::Relaxed);
    }

    /// A receiver of the set of revoked token ids, which changes when a token is revoked.
    pub fn revocations(&self) -> watch::Receiver<Arc<HashSet<String>>> {
        self.inner.revoked.subscribe()
    }

    /// Re-reads the tokens: cached tokens that are no longer live are forgotten (the others
    /// stay, so requests keep authenticating from memory while the store is unreachable), and
    /// live streams are told when the revoked set grows. When the store cannot list them the
    /// cache is left as it is and the caller retries: nothing can be revoked without the store.
    async fn refresh_tokens(&self) -> Result<(), String> {
        let tokens = self
            .inner
            .store
            .list_tokens()
            .await
            .map_err(|e| format!("cannot read the tokens: {e}"))?;
        self.inner.tokens.retain_live(&tokens);
        let revoked: HashSet<String> = tokens
            .into_iter()
            .filter(|t| t.revoked_at_ms.is_some())
            .map(|t| t.id)
            .collect();
        self.inner.revoked.send_if_modified(|current| {
            if **current == revoked {
                return false;
            }
            *current = Arc::new(revoked);
            true
        });
        Ok(())
    }

    /// A receiver that changes when the server begins to shut down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Tells live streams and background tasks to finish.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Loads the configuration from its source (files in GitOps mode, else the store),
    /// compiles every environment and installs it. On failure the last good configuration
    /// stays in service and the error is kept for `/ready`.
    pub async fn reload(&self) -> Result<(), String> {
        let _serialized = self.inner.reloading.lock().await;
        let result = match &self.inner.settings.flags {
            Some(path) => self.load_files(path).await,
            None => self.load_store().await,
        };
        let result = match self.refresh_tokens().await {
            Ok(()) => result,
            Err(error) => result.and(Err(error)),
        };
        // A write that leaves every flag and segment as it was (a token, an environment's
        // description, a file touched without change) is not a new configuration for SDKs.
        let current = self.inner.configs.current();
        let result = result
            .map(|loaded| loaded.filter(|l| current.as_ref().is_none_or(|c| c.source != l.source)));
        match result {
            Ok(Some(loaded)) => {
                let loaded = Arc::new(loaded);
                self.inner.configs.install(loaded.clone());
                // Nobody listening is fine.
                let _ = self.inner.changes.send(loaded);
                Ok(())
            }
            Ok(None) => {
                // Nothing changed, and whatever failed before now loads.
                self.inner.configs.clear_error();
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "configuration reload failed; still serving the last good one");
                self.inner.configs.record_error(error.clone());
                Err(error)
            }
        }
    }

    async fn load_store(&self) -> Result<Option<Loaded>, String> {
        let snapshot = self
            .inner
            .store
            .snapshot(None)
            .await
            .map_err(|e: StoreError| format!("cannot read the configuration: {e}"))?;
        if let Some(current) = self.inner.configs.current()
            && current.version == snapshot.config_version
        {
            return Ok(None);
        }
        let tallies = Arc::clone(&self.inner.dry_run_tallies);
        tokio::task::spawn_blocking(move || configs::compile_snapshot(&snapshot, &tallies))
            .await
            .map_err(|e| e.to_string())?
            .map(Some)
            .map_err(|e| e.to_string())
    }

    async fn load_files(&self, path: &std::path::Path) -> Result<Option<Loaded>, String> {
        let path = path.to_owned();
        let version = self.inner.configs.current().map_or(1, |c| c.version + 1);
        let loaded = tokio::task::spawn_blocking(move || {
            let document = configs::read_flags_path(&path)?;
            configs::compile_document(&document, version)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        Ok(Some(loaded))
    }
}
