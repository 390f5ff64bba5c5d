//! The one [`Store`] implementation, over `sqlx::Any`, shared by SQLite and PostgreSQL.
//!
//! The SQL is portable (`$N` placeholders, `RETURNING`, TEXT and BIGINT only). What differs
//! per backend lives in `sqlite.rs` and `postgres.rs`: connecting, migrations, how a
//! transaction begins, and how changes are announced.
//!
//! Every write follows one shape: [`SqlStore::begin_write`] locks the `meta` row, a body
//! from `writes.rs` does the work, and [`SqlStore::finish`] appends the audit record and
//! commits, or rolls back explicitly on any error. Telemetry is the exception: it is data,
//! not configuration, and `telemetry.rs` records it without the `meta` row or an audit record.

use std::fmt;
use std::sync::Arc;

use sluice_core::FlagFile;
use sluice_core::model::{FlagDef, SegmentDef};
use sluice_core::telemetry::MetricsBatch;
use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Row, Transaction};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::apps::{
    self, App, AppReleaseUpdate, NewApp, SessionReport, StoredAppRelease, VersionInstalls,
};
use super::audit::{self, AuditFilter, AuditRecord, ChainReport, MAX_AUDIT_PAGE, Verifier};
use super::governance::{self, ChangeRequest, ChangeStatus, NewChangeRequest, StoredProtection};
use super::lifecycle::{self, FlagActivity};
use super::releases::{self, NewRelease, ReleaseChange, ReleaseEvent, StoredRelease};
use super::rollouts::{
    self, AppliedRollout, Delivery, DeliveryOutcome, DeliveryStatus, NewRollout, NewWebhook,
    RolloutFilter, StoredRollout, TransitionRecord, Webhook,
};
use super::tables::{
    AUDIT_COLUMNS, DefRow, FLAGS, SEGMENTS, TOKEN_COLUMNS, audit_row, check_version,
    current_version, find_environment, find_token, is_sha256_hex, list_environments, load_config,
    token_row,
};
use super::writes::{self, Entry, Outcome};
use super::{
    AggregateRow, Backend, CHANGES_CHANNEL, Change, Committed, ConfigSnapshot, Environment,
    ImportSummary, Ingested, InstanceRow, LeaderLock, NewToken, Store, StoreError, StoreUrl,
    StoredCrash, StoredFlag, StoredSegment, Token, postgres, sqlite, telemetry,
};
use super::{DryRunTallies, NewDryRun, StoredDryRun, dry_runs};

/// How many audit records verification reads per query.
const VERIFY_PAGE: i64 = 500;

/// The default page of [`Store::list_audit`].
const DEFAULT_AUDIT_PAGE: u32 = 100;

pub(crate) struct SqlStore {
    pool: AnyPool,
    url: StoreUrl,
    changes: Arc<watch::Sender<i64>>,
    /// Background tasks (the PostgreSQL listener), stopped when the store is dropped.
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for SqlStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Raises a watched version, never lowers it: concurrent commits may announce out of order.
pub(crate) fn publish(changes: &watch::Sender<i64>, version: i64) {
    changes.send_if_modified(|current| {
        if version > *current {
            *current = version;
            true
        } else {
            false
        }
    });
}

/// A write transaction that holds the `meta` row, and so the audit chain head.
struct WriteTx {
    tx: Transaction<'static, Any>,
    /// The version this write commits as.
    config_version: i64,
    audit_seq: i64,
    audit_head: String,
}

impl WriteTx {
    /// The version readers see while this write is pending, and after it rolls back.
    fn current_version(&self) -> i64 {
        self.config_version - 1
    }

    fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

/// One value bound to a dynamically built query.
enum Param {
    Text(String),
    Int(i64),
}

impl SqlStore {
    pub(crate) async fn open(url: &StoreUrl) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = match url {
            StoreUrl::Sqlite { path } => sqlite::connect(path).await?,
            StoreUrl::Postgres { url } => postgres::connect(url).await?,
        };
        let migrated = match url.backend() {
            Backend::Sqlite => sqlite::MIGRATOR.run(&pool).await,
            Backend::Postgres => postgres::MIGRATOR.run(&pool).await,
        };
        migrated.map_err(|e| anyhow::Error::new(e).context("running database migrations"))?;
        let version = current_version(&pool).await?;
        let changes = Arc::new(watch::Sender::new(version));
        let tasks = match url {
            StoreUrl::Sqlite { .. } => Vec::new(),
            StoreUrl::Postgres { url } => {
                postgres::spawn_change_listener(url.clone(), pool.clone(), changes.clone())
            }
        };
        Ok(SqlStore {
            pool,
            url: url.clone(),
            changes,
            tasks,
        })
    }

    /// Begins a write: locks the `meta` row first thing, which serializes every writer.
    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let mut tx = match self.url.backend() {
            Backend::Sqlite => self.pool.begin_with(sqlite::BEGIN_WRITE).await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        let head = sqlx::query(
            "UPDATE meta SET config_version = config_version + 1 WHERE id = 1 \
             RETURNING config_version, audit_seq, audit_head",
        )
        .fetch_one(&mut *tx)
        .await;
        let head = match head {
            Ok(head) => head,
            Err(error) => {
                let _ = tx.rollback().await;
                return Err(error.into());
            }
        };
        Ok(WriteTx {
            config_version: head.try_get("config_version")?,
            audit_seq: head.try_get("audit_seq")?,
            audit_head: head.try_get("audit_head")?,
            tx,
        })
    }

    /// Commits what a write body decided, with its audit record, or rolls it all back.
    async fn finish<T>(
        &self,
        mut write: WriteTx,
        change: &Change,
        outcome: Result<Outcome<T>, StoreError>,
    ) -> Result<Committed<T>, StoreError> {
        let (value, entry) = match outcome {
            Ok(Outcome::Write(value, entry)) => (value, entry),
            Ok(Outcome::Unchanged(value)) => {
                let config_version = write.current_version();
                write.tx.rollback().await?;
                return Ok(Committed {
                    value,
                    config_version,
                });
            }
            Err(error) => {
                // A failed rollback closes the connection, which rolls back just the same.
                let _ = write.tx.rollback().await;
                return Err(error);
            }
        };
        if let Err(error) = self.append_audit(&mut write, change, entry).await {
            let _ = write.tx.rollback().await;
            return Err(error);
        }
        let config_version = write.config_version;
        write.tx.commit().await?;
        publish(&self.changes, config_version);
        Ok(Committed {
            value,
            config_version,
        })
    }

    /// Appends the audit record, moves the chain head and, on PostgreSQL, queues the NOTIFY.
    async fn append_audit(
        &self,
        write: &mut WriteTx,
        change: &Change,
        entry: Entry,
    ) -> Result<(), StoreError> {
        let mut record = AuditRecord {
            seq: write.audit_seq + 1,
            config_version: write.config_version,
            time_ms: change.now_ms,
            actor: change.actor.clone(),
            action: entry.action.to_owned(),
            resource: entry.resource,
            before: entry.before,
            after: entry.after,
            reason: change.reason.clone(),
            request_id: change.request_id.clone(),
            prev_hash: write.audit_head.clone(),
            hash: String::new(),
        };
        record.hash = audit::record_hash(&record);
        sqlx::query(
            "INSERT INTO audit_log (seq, config_version, time_ms, actor, action, resource, \
             before_json, after_json, reason, request_id, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(record.seq)
        .bind(record.config_version)
        .bind(record.time_ms)
        .bind(record.actor)
        .bind(record.action)
        .bind(record.resource)
        .bind(record.before)
        .bind(record.after)
        .bind(record.reason)
        .bind(record.request_id)
        .bind(record.prev_hash)
        .bind(&record.hash)
        .execute(write.conn())
        .await?;
        sqlx::query("UPDATE meta SET audit_seq = $1, audit_head = $2 WHERE id = 1")
            .bind(record.seq)
            .bind(&record.hash)
            .execute(write.conn())
            .await?;
        if self.url.backend() == Backend::Postgres {
            // Delivered to listeners if, and when, the transaction commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(write.config_version.to_string())
                .execute(write.conn())
                .await?;
        }
        Ok(())
    }

    /// Begins a read-only transaction that sees one consistent state throughout.
    async fn begin_read(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.url.backend() {
            // A deferred SQLite transaction in WAL mode reads one snapshot from its first read.
            Backend::Sqlite => self.pool.begin().await?,
            Backend::Postgres => self.pool.begin_with(postgres::BEGIN_READ).await?,
        })
    }

    async fn read_snapshot(
        tx: &mut Transaction<'static, Any>,
    ) -> Result<ConfigSnapshot, StoreError> {
        let config_version: i64 =
            sqlx::query_scalar("SELECT config_version FROM meta WHERE id = 1")
                .fetch_one(&mut **tx)
                .await?;
        let config = load_config(tx).await?;
        let dry_runs = dry_runs::list(tx, None, None, true).await?;
        Ok(ConfigSnapshot {
            config_version,
            file: config.file,
            flag_versions: config.flag_versions,
            segment_versions: config.segment_versions,
            dry_runs,
        })
    }

    async fn read_chain(tx: &mut Transaction<'static, Any>) -> Result<ChainReport, StoreError> {
        let head = sqlx::query("SELECT audit_seq, audit_head FROM meta WHERE id = 1")
            .fetch_one(&mut **tx)
            .await?;
        let head_seq: i64 = head.try_get("audit_seq")?;
        let head_hash: String = head.try_get("audit_head")?;
        let mut verifier = Verifier::new();
        let mut after_seq = i64::MIN;
        loop {
            let sql = format!("{AUDIT_COLUMNS} WHERE seq > $1 ORDER BY seq LIMIT {VERIFY_PAGE}");
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(after_seq)
                .fetch_all(&mut **tx)
                .await?;
            if rows.is_empty() {
                return Ok(verifier.finish(head_seq, &head_hash));
            }
            for row in &rows {
                let record = audit_row(row)?;
                if let Some(broken) = verifier.push(&record) {
                    return Ok(verifier.report(head_seq, &head_hash, Some(broken)));
                }
                after_seq = record.seq;
            }
        }
    }
}

fn flag(committed: Committed<DefRow<FlagDef>>) -> Committed<StoredFlag> {
    Committed {
        value: committed.value.into_flag(),
        config_version: committed.config_version,
    }
}

fn segment(committed: Committed<DefRow<SegmentDef>>) -> Committed<StoredSegment> {
    Committed {
        value: committed.value.into_segment(),
        config_version: committed.config_version,
    }
}

#[async_trait::async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.url.backend()
    }

    async fn config_version(&self) -> Result<i64, StoreError> {
        current_version(&self.pool).await
    }

    async fn list_environments(&self) -> Result<Vec<Environment>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        list_environments(&mut conn).await
    }

    async fn get_environment(&self, name: &str) -> Result<Environment, StoreError> {
        let mut conn = self.pool.acquire().await?;
        find_environment(&mut conn, name)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn create_environment(
        &self,
        change: &Change,
        name: &str,
        description: Option<&str>,
    ) -> Result<Committed<Environment>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = writes::create_environment(write.conn(), change, name, description).await;
        self.finish(write, change, outcome).await
    }

    async fn update_environment(
        &self,
        change: &Change,
        name: &str,
        description: Option<&str>,
        expected_version: Option<i64>,
    ) -> Result<Committed<Environment>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome =
            writes::update_environment(write.conn(), change, name, description, expected_version)
                .await;
        self.finish(write, change, outcome).await
    }

    async fn delete_environment(
        &self,
        change: &Change,
        name: &str,
        expected_version: Option<i64>,
    ) -> Result<Committed<Environment>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = writes::delete_environment(write.conn(), name, expected_version).await;
        self.finish(write, change, outcome).await
    }

    async fn list_flags(&self) -> Result<Vec<StoredFlag>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows: Vec<DefRow<FlagDef>> = FLAGS.list(&mut conn).await?;
        Ok(rows.into_iter().map(DefRow::into_flag).collect())
    }

    async fn get_flag(&self, key: &str) -> Result<StoredFlag, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let row: DefRow<FlagDef> = FLAGS.get(&mut conn, key).await?;
        Ok(row.into_flag())
    }

    async fn create_flag(
        &self,
        change: &Change,
        key: &str,
        definition: &FlagDef,
    ) -> Result<Committed<StoredFlag>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = writes::create_def(write.conn(), &FLAGS, change, key, definition).await;
        self.finish(write, change, outcome).await.map(flag)
    }

    async fn update_flag(
        &self,
        change: &Change,
        key: &str,
        definition: &FlagDef,
        expected_version: Option<i64>,
    ) -> Result<Committed<StoredFlag>, StoreError> {
        let mut write = self.begin_write().await?;
        let action = FLAGS.update_action;
        let outcome = writes::modify_def(
            write.conn(),
            &FLAGS,
            change,
            key,
            expected_version,
            action,
            |stored: &mut FlagDef| stored.clone_from(definition),
        )
        .await;
        self.finish(write, change, outcome).await.map(flag)
    }

    async fn set_flag_enabled(
        &self,
        change: &Change,
        key: &str,
        environment: Option<&str>,
        enabled: bool,
        expected_version: Option<i64>,
    ) -> Result<Committed<StoredFlag>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = writes::set_flag_enabled(
            write.conn(),
            change,
            key,
            environment,
            enabled,
            expected_version,
        )
        .await;
        self.finish(write, change, outcome).await.map(flag)
    }

    async fn delete_flag(
        &self,
        change: &Change,
        key: &str,
        expected_version: Option<i64>,
    ) -> Result<Committed<StoredFlag>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = writes::delete_def(write.conn(), &FLAGS, key, expected_version).await;
        self.finish(write, change, outcome).await.map(flag)
    }

    async fn list_segments(&self) -> Result<Vec<StoredSegment>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows: Vec<DefRow<SegmentDef>> = SEGMENTS.list(&mut conn).await?;
        Ok(rows.into_iter().map(DefRow::into_segment).collect())
    }

    async fn get_segment(&self, name: &str) -> Result<StoredSegment, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let row: DefRow<SegmentDef> = SEGMENTS.get(&mut conn, name).await?;
        Ok(row.into_segment())
    }

    async fn create_segment(
        &self,
        change: &Change,
        name: &str,
        definition: &SegmentDef,
    ) -> Result<Committed<StoredSegment>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = writes::create_def(write.conn(), &SEGMENTS, change, name, definition).await;
        self.finish(write, change, outcome).await.map(segment)
    }

    async fn update_segment(
        &self,
        change: &Change,
        name: &str,
        definition: &SegmentDef,
        expected_version: Option<i64>,
    ) -> Result<Committed<StoredSegment>, StoreError> {
        let mut write = self.begin_write().await?;
        let action = SEGMENTS.update_action;
        let outcome = writes::modify_def(
            write.conn(),
            &SEGMENTS,
            change,
            name,
            expected_version,
            action,
            |stored: &mut SegmentDef| stored.clone_from(definition),
        )
        .await;
        self.finish(write, change, outcome).await.map(segment)
    }

    async fn delete_segment(
        &self,
        change: &Change,
        name: &str,
        expected_version: Option<i64>,
    ) -> Result<Committed<StoredSegment>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = writes::delete_def(write.conn(), &SEGMENTS, name, expected_version).await;
        self.finish(write, change, outcome).await.map(segment)
    }

    async fn create_token(
        &self,
        change: &Change,
        token: &NewToken,
    ) -> Result<Committed<Token>, StoreError> {
        if !is_sha256_hex(&token.secret_sha256) {
            return Err(StoreError::Other(anyhow::anyhow!(
                "a token's secret_sha256 must be 64 lowercase hex digits"
            )));
        }
        let mut write = self.begin_write().await?;
        let outcome = writes::create_token(write.conn(), change, token).await;
        self.finish(write, change, outcome).await
    }

    async fn list_tokens(&self) -> Result<Vec<Token>, StoreError> {
        let sql = format!("{TOKEN_COLUMNS} ORDER BY created_at_ms, id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_row).collect()
    }

    async fn get_token(&self, id: &str) -> Result<Token, StoreError> {
        let mut conn = self.pool.acquire().await?;
        find_token(&mut conn, id).await?.ok_or(StoreError::NotFound)
    }

    async fn token_by_hash(&self, secret_sha256: &str) -> Result<Token, StoreError> {
        let sql = format!("{TOKEN_COLUMNS} WHERE secret_sha256 = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(secret_sha256.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(token_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn revoke_token(
        &self,
        change: &Change,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<Committed<Token>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = writes::revoke_token(write.conn(), change, id, expected_version).await;
        self.finish(write, change, outcome).await
    }

    async fn snapshot(&self, environment: Option<&str>) -> Result<ConfigSnapshot, StoreError> {
        let mut tx = self.begin_read().await?;
        let snapshot = Self::read_snapshot(&mut tx).await;
        tx.rollback().await?;
        let snapshot = snapshot?;
        if let Some(environment) = environment {
            let known = snapshot
                .file
                .environments
                .iter()
                .flatten()
                .any(|name| name == environment);
            if !known {
                return Err(StoreError::NotFound);
            }
        }
        Ok(snapshot)
    }

    async fn import(
        &self,
        change: &Change,
        file: &FlagFile,
        expected_config_version: Option<i64>,
    ) -> Result<Committed<ImportSummary>, StoreError> {
        // The file must be valid on its own; the stored result is checked inside the write.
        sluice_core::validate(file).map_err(StoreError::Invalid)?;
        let mut write = self.begin_write().await?;
        let outcome = match check_version(expected_config_version, write.current_version()) {
            Ok(()) => writes::import(write.conn(), change, file).await,
            Err(conflict) => Err(conflict),
        };
        self.finish(write, change, outcome).await
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut clauses = Vec::new();
        let mut params = Vec::new();
        let mut add = |clause: &str, param: Param| {
            params.push(param);
            clauses.push(format!("{clause} ${}", params.len()));
        };
        if let Some(resource) = &filter.resource {
            add("resource =", Param::Text(resource.clone()));
        }
        if let Some(action) = &filter.action {
            add("action =", Param::Text(action.clone()));
        }
        if let Some(actor) = &filter.actor {
            add("actor =", Param::Text(actor.clone()));
        }
        if let Some(since) = filter.since_ms {
            add("time_ms >=", Param::Int(since));
        }
        if let Some(until) = filter.until_ms {
            add("time_ms <", Param::Int(until));
        }
        if let Some(before) = filter.before_seq {
            add("seq <", Param::Int(before));
        }
        let limit = filter
            .limit
            .unwrap_or(DEFAULT_AUDIT_PAGE)
            .min(MAX_AUDIT_PAGE);
        let mut sql = AUDIT_COLUMNS.to_owned();
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {limit}"));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for param in params {
            query = match param {
                Param::Text(text) => query.bind(text),
                Param::Int(number) => query.bind(number),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(audit_row).collect()
    }

    async fn verify_audit(&self) -> Result<ChainReport, StoreError> {
        let mut tx = self.begin_read().await?;
        let report = Self::read_chain(&mut tx).await;
        tx.rollback().await?;
        report
    }

    async fn record_metrics(
        &self,
        environment: &str,
        batch: &MetricsBatch,
        received_ms: i64,
    ) -> Result<Ingested, StoreError> {
        telemetry::record_metrics(&self.pool, self.backend(), environment, batch, received_ms).await
    }

    async fn flag_metrics(
        &self,
        environment: &str,
        flag: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<AggregateRow>, StoreError> {
        telemetry::flag_metrics(&self.pool, environment, flag, since_ms, limit).await
    }

    async fn shadow_metrics(
        &self,
        environment: &str,
        experiment: &str,
        since_ms: i64,
    ) -> Result<Vec<super::ShadowRow>, StoreError> {
        super::shadow::shadow_metrics(&self.pool, environment, experiment, since_ms).await
    }

    async fn shadow_samples(
        &self,
        environment: &str,
        experiment: &str,
        limit: u32,
    ) -> Result<Vec<sluice_core::telemetry::MismatchSample>, StoreError> {
        super::shadow::shadow_samples(&self.pool, environment, experiment, limit).await
    }

    async fn instances(
        &self,
        environment: &str,
        seen_since_ms: i64,
        limit: u32,
    ) -> Result<Vec<InstanceRow>, StoreError> {
        telemetry::instances(&self.pool, environment, seen_since_ms, limit).await
    }

    async fn crash_reports(
        &self,
        environment: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<StoredCrash>, StoreError> {
        telemetry::crash_reports(&self.pool, environment, since_ms, limit).await
    }

    async fn create_rollout(
        &self,
        change: &Change,
        rollout: &NewRollout,
    ) -> Result<Committed<AppliedRollout>, StoreError> {
        let mut write = self.begin_write().await?;
        let version = write.config_version;
        let outcome = rollouts::create(write.conn(), version, change, rollout).await;
        self.finish(write, change, outcome).await
    }

    async fn apply_transition(
        &self,
        change: &Change,
        rollout_id: &str,
        transition: &sluice_core::rollout::Transition,
    ) -> Result<Committed<AppliedRollout>, StoreError> {
        let mut write = self.begin_write().await?;
        let version = write.config_version;
        let outcome =
            rollouts::apply_transition(write.conn(), version, change, rollout_id, transition).await;
        self.finish(write, change, outcome).await
    }

    async fn get_rollout(&self, id: &str) -> Result<StoredRollout, StoreError> {
        rollouts::get_rollout(&self.pool, id).await
    }

    async fn list_rollouts(
        &self,
        filter: &RolloutFilter,
    ) -> Result<Vec<StoredRollout>, StoreError> {
        rollouts::list_rollouts(&self.pool, filter).await
    }

    async fn rollout_transitions(&self, id: &str) -> Result<Vec<TransitionRecord>, StoreError> {
        rollouts::transitions(&self.pool, id).await
    }

    async fn create_webhook(
        &self,
        change: &Change,
        webhook: &NewWebhook,
    ) -> Result<Committed<Webhook>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = rollouts::create_webhook(write.conn(), change, webhook).await;
        self.finish(write, change, outcome).await
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        rollouts::list_webhooks(&self.pool).await
    }

    async fn delete_webhook(
        &self,
        change: &Change,
        id: &str,
    ) -> Result<Committed<Webhook>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = rollouts::delete_webhook(write.conn(), id).await;
        self.finish(write, change, outcome).await
    }

    async fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        rollouts::due_deliveries(&self.pool, now_ms, limit).await
    }

    async fn record_delivery(&self, id: i64, outcome: &DeliveryOutcome) -> Result<(), StoreError> {
        rollouts::record_delivery(&self.pool, id, outcome).await
    }

    async fn deliveries(
        &self,
        rollout_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryStatus>, StoreError> {
        rollouts::deliveries(&self.pool, rollout_id, limit).await
    }

    async fn protections(
        &self,
    ) -> Result<std::collections::BTreeMap<String, StoredProtection>, StoreError> {
        governance::protections(&self.pool).await
    }

    async fn protection(&self, environment: &str) -> Result<StoredProtection, StoreError> {
        governance::protection(&self.pool, environment).await
    }

    async fn set_protection(
        &self,
        change: &Change,
        environment: &str,
        protection: sluice_core::governance::Protection,
        expected_version: Option<i64>,
    ) -> Result<Committed<StoredProtection>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = governance::set_protection(
            write.conn(),
            change,
            environment,
            protection,
            expected_version,
        )
        .await;
        self.finish(write, change, outcome).await
    }

    async fn create_change_request(
        &self,
        change: &Change,
        request: &NewChangeRequest,
    ) -> Result<Committed<ChangeRequest>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = governance::create_change(write.conn(), change, request).await;
        self.finish(write, change, outcome).await
    }

    async fn get_change_request(&self, id: &str) -> Result<ChangeRequest, StoreError> {
        governance::get_change(&self.pool, id).await
    }

    async fn list_change_requests(
        &self,
        status: Option<ChangeStatus>,
        limit: u32,
    ) -> Result<Vec<ChangeRequest>, StoreError> {
        governance::list_changes(&self.pool, status, limit).await
    }

    async fn approve_change_request(
        &self,
        change: &Change,
        id: &str,
    ) -> Result<Committed<ChangeRequest>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = governance::approve_change(write.conn(), change, id).await;
        self.finish(write, change, outcome).await
    }

    async fn reject_change_request(
        &self,
        change: &Change,
        id: &str,
    ) -> Result<Committed<ChangeRequest>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = governance::reject_change(write.conn(), change, id).await;
        self.finish(write, change, outcome).await
    }

    async fn apply_change_request(
        &self,
        change: &Change,
        id: &str,
        transition: Option<&sluice_core::rollout::Transition>,
    ) -> Result<Committed<ChangeRequest>, StoreError> {
        let mut write = self.begin_write().await?;
        // The audit record names the request, its author and approvers as read in this
        // transaction.
        let request = match governance::find_change(write.conn(), id).await {
            Ok(Some(request)) => request,
            Ok(None) => {
                let _ = write.tx.rollback().await;
                return Err(StoreError::NotFound);
            }
            Err(error) => {
                let _ = write.tx.rollback().await;
                return Err(error);
            }
        };
        let mut applied = change.clone();
        applied.reason = Some(governance::applied_reason(&request));
        let version = write.config_version;
        let outcome =
            governance::apply_change(write.conn(), version, &applied, id, transition).await;
        self.finish(write, &applied, outcome).await
    }

    async fn flag_activity(&self) -> Result<Vec<FlagActivity>, StoreError> {
        lifecycle::flag_activity(&self.pool).await
    }

    async fn archive_flag(
        &self,
        change: &Change,
        key: &str,
        archived: bool,
    ) -> Result<Committed<Option<i64>>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = lifecycle::archive_flag(write.conn(), change, key, archived).await;
        self.finish(write, change, outcome).await
    }

    async fn create_release(
        &self,
        change: &Change,
        release: &NewRelease,
    ) -> Result<Committed<StoredRelease>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = releases::create(write.conn(), change, release).await;
        self.finish(write, change, outcome).await
    }

    async fn change_release(
        &self,
        change: &Change,
        key: &str,
        what: &ReleaseChange,
    ) -> Result<Committed<(StoredRelease, Option<ReleaseEvent>)>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = releases::update(write.conn(), change, key, what).await;
        self.finish(write, change, outcome).await
    }

    async fn start_release_rollout(
        &self,
        change: &Change,
        key: &str,
        rollout: &NewRollout,
    ) -> Result<Committed<AppliedRollout>, StoreError> {
        let mut write = self.begin_write().await?;
        let version = write.config_version;
        let outcome = releases::start_rollout(write.conn(), version, change, key, rollout).await;
        self.finish(write, change, outcome).await
    }

    async fn get_release(&self, key: &str) -> Result<StoredRelease, StoreError> {
        releases::get(&self.pool, key).await
    }

    async fn list_releases(&self) -> Result<Vec<StoredRelease>, StoreError> {
        releases::list(&self.pool).await
    }

    async fn release_events(&self, id: &str) -> Result<Vec<ReleaseEvent>, StoreError> {
        releases::events(&self.pool, id).await
    }

    async fn release_rollouts(&self, id: &str) -> Result<Vec<String>, StoreError> {
        releases::rollouts(&self.pool, id).await
    }

    async fn release_of_rollout(
        &self,
        rollout_id: &str,
        flag: &str,
    ) -> Result<Option<StoredRelease>, StoreError> {
        releases::of_rollout(&self.pool, rollout_id, flag).await
    }

    async fn create_app(
        &self,
        change: &Change,
        app: &NewApp,
    ) -> Result<Committed<App>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = apps::create_app(write.conn(), change, app).await;
        self.finish(write, change, outcome).await
    }

    async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        apps::list_apps(&self.pool).await
    }

    async fn get_app(&self, key: &str) -> Result<App, StoreError> {
        apps::get_app(&self.pool, key).await
    }

    async fn create_app_release(
        &self,
        change: &Change,
        app: &str,
        spec: &sluice_core::apps::ReleaseSpec,
    ) -> Result<Committed<StoredAppRelease>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = apps::create_app_release(write.conn(), change, app, spec).await;
        self.finish(write, change, outcome).await
    }

    async fn list_app_releases(
        &self,
        app: &str,
        channel: Option<&str>,
    ) -> Result<Vec<StoredAppRelease>, StoreError> {
        apps::list_app_releases(&self.pool, app, channel).await
    }

    async fn get_app_release(
        &self,
        app: &str,
        channel: &str,
        version: &str,
    ) -> Result<StoredAppRelease, StoreError> {
        apps::get_app_release(&self.pool, app, channel, version).await
    }

    async fn rolling_app_releases(&self) -> Result<Vec<StoredAppRelease>, StoreError> {
        apps::rolling_app_releases(&self.pool).await
    }

    async fn update_app_release(
        &self,
        change: &Change,
        app: &str,
        channel: &str,
        version: &str,
        update: &AppReleaseUpdate,
    ) -> Result<Committed<StoredAppRelease>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome =
            apps::update_app_release(write.conn(), change, app, channel, version, update).await;
        self.finish(write, change, outcome).await
    }

    async fn record_sessions(
        &self,
        app: &str,
        report: &SessionReport,
        received_ms: i64,
    ) -> Result<(), StoreError> {
        apps::record_sessions(&self.pool, self.backend(), app, report, received_ms).await
    }

    async fn session_counts(
        &self,
        app: &str,
        version: &str,
        since_ms: i64,
    ) -> Result<sluice_core::rollout::Proportions, StoreError> {
        apps::session_counts(&self.pool, app, version, since_ms).await
    }

    async fn install_versions(
        &self,
        app: &str,
        since_ms: i64,
    ) -> Result<Vec<VersionInstalls>, StoreError> {
        apps::install_versions(&self.pool, app, since_ms).await
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.changes.subscribe()
    }

    async fn start_dry_run(
        &self,
        change: &Change,
        dry_run: &NewDryRun,
    ) -> Result<Committed<StoredDryRun>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = dry_runs::start(write.conn(), change, dry_run).await;
        self.finish(write, change, outcome).await
    }

    async fn stop_dry_run(
        &self,
        change: &Change,
        id: i64,
    ) -> Result<Committed<StoredDryRun>, StoreError> {
        let mut write = self.begin_write().await?;
        let outcome = dry_runs::stop(write.conn(), change, id).await;
        self.finish(write, change, outcome).await
    }

    async fn get_dry_run(&self, id: i64) -> Result<StoredDryRun, StoreError> {
        dry_runs::get(&self.pool, id).await
    }

    async fn list_dry_runs(
        &self,
        env: Option<&str>,
        flag: Option<&str>,
    ) -> Result<Vec<StoredDryRun>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        dry_runs::list(&mut conn, env, flag, false).await
    }

    async fn record_dry_runs(
        &self,
        reports: &[sluice_core::dry_run::DryRunReport],
    ) -> Result<(), StoreError> {
        let mut tx = match self.url.backend() {
            Backend::Sqlite => self.pool.begin_with(sqlite::BEGIN_WRITE).await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        match dry_runs::record(&mut tx, None, reports).await {
            Ok(()) => Ok(tx.commit().await?),
            Err(error) => {
                let _ = tx.rollback().await;
                Err(error)
            }
        }
    }

    async fn dry_run_tallies(&self, id: i64) -> Result<DryRunTallies, StoreError> {
        dry_runs::tallies(&self.pool, id).await
    }

    async fn leader_lock(&self) -> Result<LeaderLock, StoreError> {
        Ok(match &self.url {
            StoreUrl::Sqlite { .. } => LeaderLock::Single,
            StoreUrl::Postgres { url } => LeaderLock::Postgres(postgres::PgLeaderLock::new(url)),
        })
    }

    async fn close(&self) {
        for task in &self.tasks {
            task.abort();
        }
        self.pool.close().await;
    }
}
