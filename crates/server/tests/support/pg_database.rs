//! A fresh PostgreSQL database per test, shared by the test binaries that need one
//! (`#[path = "support/pg_database.rs"] mod pg_database;`).

use sqlx::{AnyConnection, Connection, Executor};

/// A `sluice_test_<random>` database, dropped with this value, even when the test panics.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    pub async fn create(admin_url: String) -> PgDatabase {
        sqlx::any::install_default_drivers();
        let name = format!("sluice_test_{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut admin = AnyConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        admin.close().await.unwrap();
        PgDatabase { admin_url, name }
    }

    /// The admin URL with its database replaced by this one.
    pub fn url(&self) -> String {
        let (base, query) = match self.admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (self.admin_url.as_str(), String::new()),
        };
        let (scheme, rest) = base.split_once("://").unwrap();
        let authority = rest.split('/').next().unwrap();
        format!("{scheme}://{authority}/{}{query}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop cannot await, and runs inside a runtime: use a thread with its own.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut admin = AnyConnection::connect(&admin_url).await?;
                admin.execute(sqlx::AssertSqlSafe(sql)).await?;
                admin.close().await
            })?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        });
        if let Ok(Err(error)) = dropper.join() {
            eprintln!("could not drop test database {}: {error}", self.name);
        }
    }
}
