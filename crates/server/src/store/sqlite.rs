//! SQLite specifics: opening the file durably, its migrations, and how writes begin.
//!
//! The file runs in WAL mode with `synchronous=FULL`: a commit returns only after the WAL is
//! synced, so an acknowledged write survives `kill -9` and power loss. Write transactions
//! begin with `BEGIN IMMEDIATE`, taking the write lock up front and waiting on
//! `busy_timeout`, so two writers never deadlock upgrading a read lock.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyConnection, AnyPool};
use sqlx::{ConnectOptions, Connection, Executor};

use super::StoreError;

/// Migrations in `migrations/sqlite/`, embedded at build time.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How every write transaction begins.
pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// How long a connection waits for another's write lock before failing: long enough for
/// writers to take turns, short enough that a database held by another process fails a
/// request with 503 instead of hanging it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Enough for concurrent readers; writers take turns anyway.
const MAX_CONNECTIONS: u32 = 8;

/// Opens `path` (creating it) in WAL mode and returns a pool with durable settings.
pub(crate) async fn connect(path: &Path) -> Result<AnyPool, StoreError> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| anyhow::Error::new(e).context("reading the current directory"))?
            .join(path)
    };
    let url = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .to_url_lossy();
    let options = AnyConnectOptions::from_url(&url)?;

    // Switching to WAL needs an exclusive lock that busy_timeout does not wait for, so do it
    // once, on one connection, before the pool opens more. It persists in the file.
    let mut first = AnyConnection::connect_with(&options)
        .await
        .map_err(|e| anyhow::Error::new(e).context(format!("opening {}", path.display())))?;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
        .fetch_one(&mut first)
        .await?;
    first.close().await?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Other(anyhow::anyhow!(
            "{} cannot use WAL mode (it stays in `{mode}` mode)",
            path.display()
        )));
    }

    let pool = AnyPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(super::ACQUIRE_TIMEOUT)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute("PRAGMA synchronous = FULL").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                let busy = format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis());
                conn.execute(sqlx::AssertSqlSafe(busy)).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_durable() -> Result<(), Box<dyn std::error::Error>> {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir()?;
        let pool = connect(&dir.path().join("durable.db")).await?;
        let mut conn = pool.acquire().await?;
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await?;
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await?;
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await?;
        assert_eq!(journal, "wal");
        assert_eq!(synchronous, 2, "FULL");
        assert_eq!(foreign_keys, 1);
        assert_eq!(busy, i64::try_from(BUSY_TIMEOUT.as_millis()).unwrap());
        drop(conn);
        pool.close().await;
        Ok(())
    }
}
