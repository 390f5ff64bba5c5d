//! PostgreSQL specifics: migrations, change notifications across replicas, and the leader lock.
//!
//! Every write sends `NOTIFY sluice_changes, '<config_version>'` inside its transaction, so
//! listeners hear of it exactly when it commits. Each store runs one listener task that feeds
//! the versions into its `watch` channel, re-reading `meta` whenever the listening connection
//! is re-established and every few seconds, so a lost notification delays a change but never
//! hides it. Leadership is a session-level advisory lock held by a dedicated connection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::postgres::{PgConnection, PgListener};
use sqlx::{Connection, Executor};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::sql::publish;
use super::{CHANGES_CHANNEL, StoreError};

/// Migrations in `migrations/postgres/`, embedded at build time.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Reads see one snapshot for the whole transaction.
pub(crate) const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// The advisory lock key of the leader: the bytes of "sluiceld".
pub const LEADER_LOCK_KEY: i64 = 0x736c_7569_6365_6c64;

/// How often the listener re-reads `meta`, in case a notification was lost.
const RESYNC_INTERVAL: Duration = Duration::from_secs(5);

/// How long to wait before reconnecting a failed listener.
const RETRY_DELAY: Duration = Duration::from_secs(1);

const MAX_CONNECTIONS: u32 = 10;

pub(crate) async fn connect(url: &str) -> Result<AnyPool, StoreError> {
    Ok(AnyPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(super::ACQUIRE_TIMEOUT)
        .connect(url)
        .await?)
}

/// Starts the tasks that feed committed versions from every replica into `changes`.
pub(crate) fn spawn_change_listener(
    url: String,
    pool: AnyPool,
    changes: Arc<watch::Sender<i64>>,
) -> Vec<JoinHandle<()>> {
    let listener = tokio::spawn(listen(url, pool.clone(), changes.clone()));
    let resync = tokio::spawn(async move {
        let mut interval = tokio::time::interval(RESYNC_INTERVAL);
        loop {
            interval.tick().await;
            resync_version(&pool, &changes).await;
        }
    });
    vec![listener, resync]
}

async fn resync_version(pool: &AnyPool, changes: &watch::Sender<i64>) {
    let version: Result<i64, sqlx::Error> =
        sqlx::query_scalar("SELECT config_version FROM meta WHERE id = 1")
            .fetch_one(pool)
            .await;
    if let Ok(version) = version {
        publish(changes, version);
    }
}

async fn listen(url: String, pool: AnyPool, changes: Arc<watch::Sender<i64>>) {
    loop {
        if let Ok(mut listener) = PgListener::connect(&url).await
            && listener.listen(CHANGES_CHANNEL).await.is_ok()
        {
            // Anything committed before LISTEN took effect is picked up here.
            resync_version(&pool, &changes).await;
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        if let Ok(version) = notification.payload().parse::<i64>() {
                            publish(&changes, version);
                        }
                    }
                    // The connection dropped and was re-established: catch up.
                    Ok(None) => resync_version(&pool, &changes).await,
                    Err(_) => break,
                }
            }
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
}

/// Leadership through `pg_try_advisory_lock` on a dedicated session.
///
/// The lock lives as long as the session: dropping this value closes the connection and
/// PostgreSQL releases the lock, and so does a crashed process. While leading,
/// [`PgLeaderLock::try_acquire`] checks that the session is still alive.
pub struct PgLeaderLock {
    url: String,
    key: i64,
    conn: Option<PgConnection>,
    leader: bool,
}

impl fmt::Debug for PgLeaderLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgLeaderLock")
            .field("key", &self.key)
            .field("connected", &self.conn.is_some())
            .field("leader", &self.leader)
            .finish_non_exhaustive()
    }
}

impl PgLeaderLock {
    pub(crate) fn new(url: &str) -> PgLeaderLock {
        PgLeaderLock {
            url: url.to_owned(),
            key: LEADER_LOCK_KEY,
            conn: None,
            leader: false,
        }
    }

    /// Takes the lock if it is free, or confirms that this session still holds it.
    pub async fn try_acquire(&mut self) -> Result<bool, StoreError> {
        if self.leader {
            if let Some(conn) = &mut self.conn
                && conn.ping().await.is_ok()
            {
                return Ok(true);
            }
            // The session died, and the lock with it.
            self.leader = false;
            self.conn = None;
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(PgConnection::connect(&self.url).await?),
        };
        let acquired: Result<bool, sqlx::Error> =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(self.key)
                .fetch_one(&mut *conn)
                .await;
        match acquired {
            Ok(acquired) => {
                self.leader = acquired;
                Ok(acquired)
            }
            Err(error) => {
                self.conn = None;
                Err(error.into())
            }
        }
    }

    /// Whether the last [`PgLeaderLock::try_acquire`] took or kept the lock.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// Releases the lock and closes the session.
    pub async fn release(&mut self) -> Result<(), StoreError> {
        self.leader = false;
        if let Some(mut conn) = self.conn.take() {
            conn.execute("SELECT pg_advisory_unlock_all()").await?;
            conn.close().await?;
        }
        Ok(())
    }
}
