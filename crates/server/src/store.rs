//! Storage: flags, segments, environments, API tokens and the audit log, on SQLite or PostgreSQL.
//!
//! # The key decision: every write is one serialized, audited transaction
//!
//! Every mutating method runs one transaction that first updates the single `meta` row.
//! That row holds the global `config_version` and the head of the audit hash chain, so
//! locking it first serializes all writers, in one process and across replicas:
//! SQLite opens write transactions with `BEGIN IMMEDIATE` (so it never meets a deferred
//! read-to-write upgrade deadlock) and PostgreSQL queues writers on the row lock.
//! Inside that transaction the method checks the expected version, writes the row,
//! validates the whole resulting configuration with `sluice_core`, appends exactly one
//! audit record linked to the previous one, bumps `config_version` by one and, on
//! PostgreSQL, sends `NOTIFY sluice_changes` with the new version.
//! A write that fails any check (a version conflict, an invalid result) rolls back and
//! leaves no trace: no row, no audit record, no version bump.
//!
//! # Data model
//!
//! - Flags are stored as [`FlagDef`] JSON (TEXT) per key, with an integer `version` that
//!   starts at 1 and grows by one on every write. Per-environment state (the kill switch,
//!   rules and default variant) lives inside [`FlagDef::environments`], so "kill flag X in
//!   production" is a read-modify-write of that flag ([`Store::set_flag_enabled`]).
//! - Segments are [`SegmentDef`] JSON per name, with a version.
//! - Environments have a name, a description and a version. The first migration seeds
//!   development, staging and production, without an audit record.
//! - A whole configuration is a [`FlagFile`] with `environments: Some(every name)`; callers
//!   compile it per environment. [`Store::snapshot`] reads it in one consistent transaction.
//!   The store never keeps a configuration that `sluice_core::validate` rejects: such
//!   writes fail with [`StoreError::Invalid`], which also stops deleting a segment, flag or
//!   environment that something still refers to.
//! - API tokens have a random id (`tok_` and 16 hex digits), a name, an access scope (admin,
//!   or server or client for one environment) and the SHA-256 of their secret, as hex.
//!   Secrets are generated elsewhere and never reach the store.
//! - The audit log is hash-chained; see [`audit`] for the canonical encoding and
//!   [`Store::verify_audit`] for the check.
//! - SDK telemetry (aggregates per flag, variant, configuration version and 10-second
//!   bucket; SDK instances and the configuration version each applied; crash reports) is
//!   data, not configuration: [`Store::record_metrics`] neither locks `meta` nor writes an
//!   audit record nor bumps `config_version`. See [`telemetry`].
//!
//! # Conventions
//!
//! - Optimistic concurrency: updates and deletes take `expected_version: Option<i64>`;
//!   a mismatch writes nothing and returns [`StoreError::Conflict`] with the current version.
//! - Time is an input: every write takes a [`Change`] that carries `now_ms`. The store never
//!   reads the clock, except for the seed rows' timestamps in the first migration.
//! - Every write returns the new `config_version` in a [`Committed`], for versioned change
//!   events; [`Store::subscribe`] yields the latest version as it moves.
//! - Columns follow `CRATES.md`: booleans are BIGINT 0/1, times BIGINT milliseconds, JSON TEXT.
//!   Queries are built at run time over `sqlx::Any`, and each backend has its own migrations
//!   in `migrations/{sqlite,postgres}/`, embedded at build time and run on open.
//! - SQLite runs in WAL mode with `synchronous=FULL`, so an acknowledged write survives
//!   `kill -9` and power loss; there, change notifications are in-process and the single
//!   process is always the leader. PostgreSQL adds `LISTEN/NOTIFY` and a leader lock on an
//!   advisory lock ([`LeaderLock`]).

pub mod apps;
pub mod audit;
pub mod dry_runs;
pub mod governance;
pub mod lifecycle;
mod postgres;
pub mod releases;
pub mod rollouts;
pub mod shadow;
mod sql;
mod sqlite;
mod tables;
pub mod telemetry;
mod writes;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_core::FlagFile;
use sluice_core::model::{FlagDef, SegmentDef};
use sluice_core::telemetry::MetricsBatch;
use tokio::sync::watch;

pub use apps::{App, AppReleaseUpdate, NewApp, SessionReport, StoredAppRelease, VersionInstalls};
pub use audit::{AuditFilter, AuditRecord, BreakKind, ChainBreak, ChainReport};
pub use dry_runs::{DryRunStatus, DryRunTallies, NewDryRun, StoredDryRun};
pub use governance::{
    Approval, ChangePayload, ChangeRequest, ChangeStatus, GatedCommand, NewChangeRequest,
    StoredProtection,
};
pub use lifecycle::FlagActivity;
pub use postgres::PgLeaderLock;
pub use releases::{NewRelease, ReleaseChange, ReleaseEvent, StoredRelease};
pub use rollouts::{
    AppliedRollout, Delivery, DeliveryOutcome, DeliveryStatus, NewRollout, NewWebhook,
    RolloutFilter, StoredRollout, TransitionRecord, Webhook,
};
pub use shadow::ShadowRow;
pub use telemetry::{Aggregate, AggregateRow, Ingested, InstanceRow, StoredCrash};

/// The PostgreSQL channel that carries the new `config_version` after every committed write.
pub const CHANGES_CHANNEL: &str = "sluice_changes";

/// Where the store lives, parsed once from `--database`.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// An SQLite file, created on first open.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL database, shared by several replicas.
    Postgres {
        /// The full `postgres://` URL, credentials included.
        url: String,
    },
}

/// Why a store URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid database URL: {0}")]
pub struct StoreUrlError(String);

impl FromStr for StoreUrl {
    type Err = StoreUrlError;

    /// Accepts `sqlite://PATH`, `sqlite:PATH` (each optionally with `?mode=rwc`),
    /// `postgres://…` and `postgresql://…`.
    fn from_str(text: &str) -> Result<StoreUrl, StoreUrlError> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres {
                url: text.to_owned(),
            });
        }
        let Some(rest) = text.strip_prefix("sqlite:") else {
            return Err(StoreUrlError(format!(
                "`{}` must start with `sqlite://` or `postgres://`",
                redact(text)
            )));
        };
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        if let Some(query) = query
            && !query.is_empty()
            && query != "mode=rwc"
        {
            return Err(StoreUrlError(format!(
                "unsupported SQLite option `{query}`: only `mode=rwc` is accepted, and it is the default"
            )));
        }
        if path.is_empty() || path == ":memory:" {
            return Err(StoreUrlError(
                "an SQLite URL needs a file path, such as `sqlite://sluice.db`".into(),
            ));
        }
        Ok(StoreUrl::Sqlite {
            path: PathBuf::from(path),
        })
    }
}

impl StoreUrl {
    /// Which database this URL names.
    pub fn backend(&self) -> Backend {
        match self {
            StoreUrl::Sqlite { .. } => Backend::Sqlite,
            StoreUrl::Postgres { .. } => Backend::Postgres,
        }
    }
}

/// Hides the password of a `scheme://user:password@host` URL.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            StoreUrl::Postgres { url } => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

/// The database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One embedded SQLite file.
    Sqlite,
    /// PostgreSQL, for several replicas.
    Postgres,
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The flag, segment, environment or token does not exist.
    #[error("not found")]
    NotFound,
    /// The caller's expected version is stale; nothing was written.
    #[error("version conflict: the current version is {current}")]
    Conflict {
        /// The version now stored.
        current: i64,
    },
    /// Something with that key or name already exists.
    #[error("already exists")]
    AlreadyExists,
    /// The write would leave a configuration that `sluice_core` rejects; nothing was written.
    #[error("the resulting configuration is invalid: {0}")]
    Invalid(sluice_core::Errors),
    /// The resource cannot be deleted while something else uses it, such as an environment
    /// with unrevoked tokens. `by` names one user, such as `token:tok_0123456789abcdef`.
    #[error("still in use by {by}")]
    InUse {
        /// One resource that still refers to it.
        by: String,
    },
    /// The database could not be reached, did not answer in time, or is busy with another
    /// writer; nothing is known to have been written, and the caller may retry.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database failed, or returned something unreadable.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        match error {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(ref database)
                if database.kind() == sqlx::error::ErrorKind::UniqueViolation =>
            {
                StoreError::AlreadyExists
            }
            sqlx::Error::PoolTimedOut => {
                StoreError::Unavailable("no database connection became free in time".into())
            }
            sqlx::Error::Io(ref io) => StoreError::Unavailable(format!("connection: {io}")),
            sqlx::Error::Database(ref database) if unavailable(database.code().as_deref()) => {
                StoreError::Unavailable(database.message().to_owned())
            }
            other => StoreError::Other(anyhow::Error::new(other)),
        }
    }
}

/// How long a request waits for a pooled database connection before the store answers
/// [`StoreError::Unavailable`]: a database that is down or unreachable fails requests fast
/// instead of queueing them.
pub(crate) const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Database error codes that mean "not now" rather than "wrong": SQLite's busy and locked
/// (5, 6, and their extended forms), PostgreSQL's connection exceptions (class 08), shutdown
/// and cannot-connect-now (57P), and lock timeouts (55P03).
fn unavailable(code: Option<&str>) -> bool {
    let Some(code) = code else {
        return false;
    };
    if code.len() == 5 {
        // A PostgreSQL SQLSTATE; SQLite's codes have at most four digits.
        return code.starts_with("08") || code.starts_with("57P") || code == "55P03";
    }
    code.parse::<u32>()
        .is_ok_and(|sqlite| matches!(sqlite & 0xff, 5 | 6))
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> StoreError {
        StoreError::Other(anyhow::Error::new(error).context("stored JSON is unreadable"))
    }
}

/// Who makes a change, why, and when: recorded in its audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The acting token's id; `None` for the server itself (first start, GitOps reloads).
    pub actor: Option<String>,
    /// Why, in the actor's words.
    pub reason: Option<String>,
    /// The HTTP request id, to join the audit log with request logs.
    pub request_id: Option<String>,
    /// The time of the change, in milliseconds since the Unix epoch.
    pub now_ms: i64,
}

impl Change {
    /// A change by the server itself at `now_ms`, with no reason or request id.
    pub fn at(now_ms: i64) -> Change {
        Change {
            actor: None,
            reason: None,
            request_id: None,
            now_ms,
        }
    }

    /// Sets the acting token id.
    pub fn by(mut self, actor: impl Into<String>) -> Change {
        self.actor = Some(actor.into());
        self
    }

    /// Sets the reason.
    pub fn because(mut self, reason: impl Into<String>) -> Change {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the request id.
    pub fn request(mut self, request_id: impl Into<String>) -> Change {
        self.request_id = Some(request_id.into());
        self
    }
}

/// The outcome of a committed write.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<T> {
    /// What was written.
    pub value: T,
    /// The global configuration version after the write.
    pub config_version: i64,
}

/// An environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Its name, such as `production`.
    pub name: String,
    /// What it is for, for people.
    pub description: Option<String>,
    /// Starts at 1, grows by one on every write.
    pub version: i64,
    /// When it was created.
    pub created_at_ms: i64,
    /// When it was last written.
    pub updated_at_ms: i64,
}

/// A stored flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFlag {
    /// Its key.
    pub key: String,
    /// Its definition, per-environment state included.
    pub definition: FlagDef,
    /// Starts at 1, grows by one on every write.
    pub version: i64,
    /// When it was created.
    pub created_at_ms: i64,
    /// When it was last written.
    pub updated_at_ms: i64,
}

/// A stored segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSegment {
    /// Its name.
    pub name: String,
    /// Its definition.
    pub definition: SegmentDef,
    /// Starts at 1, grows by one on every write.
    pub version: i64,
    /// When it was created.
    pub created_at_ms: i64,
    /// When it was last written.
    pub updated_at_ms: i64,
}

/// The kind of access a token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// Everything, in every environment.
    Admin,
    /// Reads one environment's full configuration and posts metrics.
    Server,
    /// Only evaluates in one environment; never sees rules.
    Client,
}

impl TokenScope {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Admin => "admin",
            TokenScope::Server => "server",
            TokenScope::Client => "client",
        }
    }
}

impl FromStr for TokenScope {
    type Err = String;

    fn from_str(text: &str) -> Result<TokenScope, String> {
        match text {
            "admin" => Ok(TokenScope::Admin),
            "server" => Ok(TokenScope::Server),
            "client" => Ok(TokenScope::Client),
            other => Err(format!(
                "unknown token scope `{other}`: expected admin, server or client"
            )),
        }
    }
}

/// What a token may do: admin tokens have no environment, the others exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "lowercase")]
pub enum TokenAccess {
    /// Everything, in every environment.
    Admin,
    /// Full configuration of one environment, and metrics.
    Server {
        /// The environment.
        environment: String,
    },
    /// Evaluation in one environment.
    Client {
        /// The environment.
        environment: String,
    },
}

impl TokenAccess {
    /// The scope, without the environment.
    pub fn scope(&self) -> TokenScope {
        match self {
            TokenAccess::Admin => TokenScope::Admin,
            TokenAccess::Server { .. } => TokenScope::Server,
            TokenAccess::Client { .. } => TokenScope::Client,
        }
    }

    /// The environment of a server or client token.
    pub fn environment(&self) -> Option<&str> {
        match self {
            TokenAccess::Admin => None,
            TokenAccess::Server { environment } | TokenAccess::Client { environment } => {
                Some(environment)
            }
        }
    }
}

/// A token to create. The secret itself never reaches the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// A name for people, such as `checkout-service`.
    pub name: String,
    /// What it may do.
    pub access: TokenAccess,
    /// The SHA-256 of the secret, as 64 lowercase hex digits.
    pub secret_sha256: String,
}

/// A stored token, without its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// `tok_` and 16 hex digits.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// What it may do.
    #[serde(flatten)]
    pub access: TokenAccess,
    /// When it was created.
    pub created_at_ms: i64,
    /// When it was revoked; a revoked token authorizes nothing.
    pub revoked_at_ms: Option<i64>,
    /// Starts at 1, grows by one on every write.
    pub version: i64,
}

/// The whole configuration, read in one consistent transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSnapshot {
    /// The configuration version this snapshot shows.
    pub config_version: i64,
    /// Every environment, segment and flag, sorted by name. Compile it per environment.
    pub file: FlagFile,
    /// The version of each flag, by key.
    pub flag_versions: BTreeMap<String, i64>,
    /// The version of each segment, by name.
    pub segment_versions: BTreeMap<String, i64>,
    /// The running dry runs, evaluated beside the flags they stage rules for.
    pub dry_runs: Vec<StoredDryRun>,
}

/// What an import changed, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportTally {
    /// Keys that did not exist before.
    pub created: Vec<String>,
    /// Keys whose definition changed; their version grew by one.
    pub updated: Vec<String>,
    /// Keys that the file no longer has.
    pub deleted: Vec<String>,
    /// How many definitions were already identical; their versions are unchanged.
    pub unchanged: usize,
}

/// What [`Store::import`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    /// Environments the file lists that did not exist.
    pub environments_created: Vec<String>,
    /// Segment changes.
    pub segments: ImportTally,
    /// Flag changes.
    pub flags: ImportTally,
}

impl ImportSummary {
    /// Whether the import changed nothing (and so wrote nothing).
    pub fn is_empty(&self) -> bool {
        self.environments_created.is_empty()
            && self.segments.created.is_empty()
            && self.segments.updated.is_empty()
            && self.segments.deleted.is_empty()
            && self.flags.created.is_empty()
            && self.flags.updated.is_empty()
            && self.flags.deleted.is_empty()
    }
}

/// The storage operations the server needs. Used as `Arc<dyn Store>`.
///
/// Every write takes a [`Change`] (who, why, when), writes exactly one audit record in the
/// same transaction, and returns the new configuration version. Reads never write.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// The current global configuration version; 0 before the first write.
    async fn config_version(&self) -> Result<i64, StoreError>;

    /// Every environment, by name.
    async fn list_environments(&self) -> Result<Vec<Environment>, StoreError>;
    /// One environment.
    async fn get_environment(&self, name: &str) -> Result<Environment, StoreError>;
    /// Creates an environment; [`StoreError::AlreadyExists`] if the name is taken.
    async fn create_environment(
        &self,
        change: &Change,
        name: &str,
        description: Option<&str>,
    ) -> Result<Committed<Environment>, StoreError>;
    /// Replaces an environment's description.
    async fn update_environment(
        &self,
        change: &Change,
        name: &str,
        description: Option<&str>,
        expected_version: Option<i64>,
    ) -> Result<Committed<Environment>, StoreError>;
    /// Deletes an environment. Fails with [`StoreError::Invalid`] while flags override it,
    /// and with [`StoreError::InUse`] while unrevoked tokens belong to it.
    async fn delete_environment(
        &self,
        change: &Change,
        name: &str,
        expected_version: Option<i64>,
    ) -> Result<Committed<Environment>, StoreError>;

    /// Every flag, by key.
    async fn list_flags(&self) -> Result<Vec<StoredFlag>, StoreError>;
    /// One flag.
    async fn get_flag(&self, key: &str) -> Result<StoredFlag, StoreError>;
    /// Creates a flag at version 1.
    async fn create_flag(
        &self,
        change: &Change,
        key: &str,
        definition: &FlagDef,
    ) -> Result<Committed<StoredFlag>, StoreError>;
    /// Replaces a flag's definition.
    async fn update_flag(
        &self,
        change: &Change,
        key: &str,
        definition: &FlagDef,
        expected_version: Option<i64>,
    ) -> Result<Committed<StoredFlag>, StoreError>;
    /// The kill switch: sets `enabled` for one environment (`Some`), or for the flag's base
    /// definition (`None`), as one read-modify-write. Audited as `flag.kill` or `flag.restore`.
    async fn set_flag_enabled(
        &self,
        change: &Change,
        key: &str,
        environment: Option<&str>,
        enabled: bool,
        expected_version: Option<i64>,
    ) -> Result<Committed<StoredFlag>, StoreError>;
    /// Deletes a flag. Fails with [`StoreError::Invalid`] while another flag requires it.
    async fn delete_flag(
        &self,
        change: &Change,
        key: &str,
        expected_version: Option<i64>,
    ) -> Result<Committed<StoredFlag>, StoreError>;

    /// Every segment, by name.
    async fn list_segments(&self) -> Result<Vec<StoredSegment>, StoreError>;
    /// One segment.
    async fn get_segment(&self, name: &str) -> Result<StoredSegment, StoreError>;
    /// Creates a segment at version 1.
    async fn create_segment(
        &self,
        change: &Change,
        name: &str,
        definition: &SegmentDef,
    ) -> Result<Committed<StoredSegment>, StoreError>;
    /// Replaces a segment's definition.
    async fn update_segment(
        &self,
        change: &Change,
        name: &str,
        definition: &SegmentDef,
        expected_version: Option<i64>,
    ) -> Result<Committed<StoredSegment>, StoreError>;
    /// Deletes a segment. Fails with [`StoreError::Invalid`] while something refers to it.
    async fn delete_segment(
        &self,
        change: &Change,
        name: &str,
        expected_version: Option<i64>,
    ) -> Result<Committed<StoredSegment>, StoreError>;

    /// Stores a new token with a fresh random id. Server and client tokens need an existing
    /// environment ([`StoreError::NotFound`] otherwise).
    async fn create_token(
        &self,
        change: &Change,
        token: &NewToken,
    ) -> Result<Committed<Token>, StoreError>;
    /// Every token, revoked ones included, by creation time.
    async fn list_tokens(&self) -> Result<Vec<Token>, StoreError>;
    /// One token by id.
    async fn get_token(&self, id: &str) -> Result<Token, StoreError>;
    /// The token whose secret hashes to `secret_sha256` (lowercase hex), revoked or not:
    /// the caller checks [`Token::revoked_at_ms`].
    async fn token_by_hash(&self, secret_sha256: &str) -> Result<Token, StoreError>;
    /// Revokes a token. Revoking a revoked token changes and records nothing.
    async fn revoke_token(
        &self,
        change: &Change,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<Committed<Token>, StoreError>;

    /// The whole configuration in one consistent read. With `Some(environment)`, fails with
    /// [`StoreError::NotFound`] unless that environment exists.
    async fn snapshot(&self, environment: Option<&str>) -> Result<ConfigSnapshot, StoreError>;
    /// Replaces every flag and segment with the file's, creating environments it lists, in one
    /// transaction with one `config.import` audit record. Unchanged definitions keep their
    /// versions, and an import that changes nothing writes nothing. `expected_config_version`
    /// guards against changes made since the caller computed its diff.
    async fn import(
        &self,
        change: &Change,
        file: &FlagFile,
        expected_config_version: Option<i64>,
    ) -> Result<Committed<ImportSummary>, StoreError>;

    /// Audit records matching `filter`, newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
    /// Recomputes the whole audit chain and reports the first broken link, if any.
    async fn verify_audit(&self) -> Result<ChainReport, StoreError>;

    /// Records one SDK telemetry batch for `environment`, received at `received_ms`, in one
    /// transaction that touches no configuration: no `meta` lock, audit record or version
    /// bump. A batch id already recorded for the environment writes nothing and returns a
    /// duplicate. A batch that breaks a rule fails with [`StoreError::Invalid`], every
    /// problem named by its path (`buckets[3].startMs`). See [`telemetry`].
    async fn record_metrics(
        &self,
        environment: &str,
        batch: &MetricsBatch,
        received_ms: i64,
    ) -> Result<Ingested, StoreError>;
    /// One flag's aggregates in `environment`, from the bucket holding `since_ms` on, oldest
    /// first (then by variant and configuration version), at most `limit` rows.
    async fn flag_metrics(
        &self,
        environment: &str,
        flag: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<AggregateRow>, StoreError>;
    /// SDK instances of `environment` last seen at or after `seen_since_ms`, most recently
    /// seen first, at most `limit`.
    /// The shadow results of `experiment` in `environment` from the bucket holding
    /// `since_ms` on, oldest first. See [`shadow`].
    async fn shadow_metrics(
        &self,
        environment: &str,
        experiment: &str,
        since_ms: i64,
    ) -> Result<Vec<ShadowRow>, StoreError>;

    /// The newest mismatching pairs of `experiment` in `environment`, at most `limit`.
    async fn shadow_samples(
        &self,
        environment: &str,
        experiment: &str,
        limit: u32,
    ) -> Result<Vec<sluice_core::telemetry::MismatchSample>, StoreError>;

    async fn instances(
        &self,
        environment: &str,
        seen_since_ms: i64,
        limit: u32,
    ) -> Result<Vec<InstanceRow>, StoreError>;
    /// Crash reports of `environment` received at or after `since_ms`, newest first, at
    /// most `limit`. Each environment keeps its newest [`telemetry::MAX_CRASH_REPORTS`].
    async fn crash_reports(
        &self,
        environment: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<StoredCrash>, StoreError>;

    /// Creates a rollout of one flag in one environment, and applies its start transition
    /// when [`NewRollout::start`] has one, as one write audited as `rollout.start` (or
    /// `rollout.create` while it waits for approvals). Fails with [`StoreError::Invalid`]
    /// naming the field (`flag`, `env`, `treatment`, `control`, `plan.stages[0]…`) when the
    /// flag, environment, variants or plan are wrong, and with [`StoreError::InUse`] while
    /// another rollout of the flag in the environment is not final. See [`rollouts`].
    async fn create_rollout(
        &self,
        change: &Change,
        rollout: &NewRollout,
    ) -> Result<Committed<AppliedRollout>, StoreError>;
    /// Applies one transition to a rollout in one write: the flag's targeting, the state,
    /// the transition under its seq, the webhook outbox and one audit record carrying the
    /// evidence. A replay (its seq taken by the same transition) writes nothing and returns
    /// `applied: false`; a transition made from a state that no longer holds fails with
    /// [`StoreError::Conflict`]. See [`rollouts`].
    async fn apply_transition(
        &self,
        change: &Change,
        rollout_id: &str,
        transition: &sluice_core::rollout::Transition,
    ) -> Result<Committed<AppliedRollout>, StoreError>;
    /// One rollout.
    async fn get_rollout(&self, id: &str) -> Result<StoredRollout, StoreError>;
    /// Rollouts matching `filter`, newest first.
    async fn list_rollouts(&self, filter: &RolloutFilter)
    -> Result<Vec<StoredRollout>, StoreError>;
    /// A rollout's transitions, in order: the history of why it is where it is.
    async fn rollout_transitions(&self, id: &str) -> Result<Vec<TransitionRecord>, StoreError>;
    /// Adds a webhook, audited as `webhook.create` without its secret.
    async fn create_webhook(
        &self,
        change: &Change,
        webhook: &NewWebhook,
    ) -> Result<Committed<Webhook>, StoreError>;
    /// Every webhook, without secrets.
    async fn list_webhooks(&self) -> Result<Vec<Webhook>, StoreError>;
    /// Deletes a webhook and its undelivered deliveries, audited as `webhook.delete`.
    async fn delete_webhook(
        &self,
        change: &Change,
        id: &str,
    ) -> Result<Committed<Webhook>, StoreError>;
    /// Deliveries due at `now_ms` (not delivered, not given up), oldest first, at most `limit`.
    async fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<Delivery>, StoreError>;
    /// Records one delivery attempt. Data, not configuration: no audit record.
    async fn record_delivery(&self, id: i64, outcome: &DeliveryOutcome) -> Result<(), StoreError>;
    /// Deliveries, newest first, of one rollout or of all.
    async fn deliveries(
        &self,
        rollout_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryStatus>, StoreError>;

    /// Every protected environment's protection, by name.
    async fn protections(&self) -> Result<BTreeMap<String, StoredProtection>, StoreError>;
    /// One environment's protection (version 0 and no approvals when never set).
    async fn protection(&self, environment: &str) -> Result<StoredProtection, StoreError>;
    /// Sets an environment's protection, audited as `environment.protect`; `expected_version`
    /// guards against a concurrent change. Setting what is already set writes nothing.
    async fn set_protection(
        &self,
        change: &Change,
        environment: &str,
        protection: sluice_core::governance::Protection,
        expected_version: Option<i64>,
    ) -> Result<Committed<StoredProtection>, StoreError>;
    /// Files a change request by `change.actor`, audited as `change.create`. See [`governance`].
    async fn create_change_request(
        &self,
        change: &Change,
        request: &NewChangeRequest,
    ) -> Result<Committed<ChangeRequest>, StoreError>;
    /// One change request.
    async fn get_change_request(&self, id: &str) -> Result<ChangeRequest, StoreError>;
    /// Change requests, newest first, of one status or all, at most `limit`.
    async fn list_change_requests(
        &self,
        status: Option<ChangeStatus>,
        limit: u32,
    ) -> Result<Vec<ChangeRequest>, StoreError>;
    /// Adds `change.actor`'s approval, audited as `change.approve`. Refused
    /// ([`StoreError::InUse`] naming why) for the author without self-approval, a second
    /// approval by the same token, or a request that is rejected or applied.
    async fn approve_change_request(
        &self,
        change: &Change,
        id: &str,
    ) -> Result<Committed<ChangeRequest>, StoreError>;
    /// Rejects a request that has not applied, audited as `change.reject`.
    async fn reject_change_request(
        &self,
        change: &Change,
        id: &str,
    ) -> Result<Committed<ChangeRequest>, StoreError>;
    /// Applies an approved request in one write with one audit record (the underlying
    /// action on the resource, its reason naming the request, author and approvers).
    /// [`StoreError::Conflict`] when the resource moved past the base version; nothing
    /// changes then. `transition` is a rollout command's transition.
    async fn apply_change_request(
        &self,
        change: &Change,
        id: &str,
        transition: Option<&sluice_core::rollout::Transition>,
    ) -> Result<Committed<ChangeRequest>, StoreError>;
    /// Every flag's last change, last evaluation and archive mark. See [`lifecycle`].
    async fn flag_activity(&self) -> Result<Vec<FlagActivity>, StoreError>;
    /// Archives or unarchives a flag; returns when it was archived (`None` when not).
    async fn archive_flag(
        &self,
        change: &Change,
        key: &str,
        archived: bool,
    ) -> Result<Committed<Option<i64>>, StoreError>;
    /// Creates a release: one event `create` and one audit record `release.create`.
    /// [`StoreError::AlreadyExists`] when its name is taken.
    async fn create_release(
        &self,
        change: &Change,
        release: &NewRelease,
    ) -> Result<Committed<StoredRelease>, StoreError>;
    /// Changes release `key` (its id or name): evidence, the override (once; then
    /// [`StoreError::AlreadyExists`]) or an event. One event, one audit record.
    async fn change_release(
        &self,
        change: &Change,
        key: &str,
        what: &ReleaseChange,
    ) -> Result<Committed<(StoredRelease, Option<ReleaseEvent>)>, StoreError>;
    /// Creates and starts (or leaves pending) a rollout of release `key`, linked to it, in one
    /// write audited as the rollout's own.
    async fn start_release_rollout(
        &self,
        change: &Change,
        key: &str,
        rollout: &NewRollout,
    ) -> Result<Committed<AppliedRollout>, StoreError>;
    /// The release whose id or name is `key`.
    async fn get_release(&self, key: &str) -> Result<StoredRelease, StoreError>;
    /// Every release, newest first.
    async fn list_releases(&self) -> Result<Vec<StoredRelease>, StoreError>;
    /// A release's events, oldest first.
    async fn release_events(&self, id: &str) -> Result<Vec<ReleaseEvent>, StoreError>;
    /// The ids of the rollouts a release started, oldest first.
    async fn release_rollouts(&self, id: &str) -> Result<Vec<String>, StoreError>;
    /// The release a rollout belongs to: the one that started it, else the newest release
    /// listing its flag.
    async fn release_of_rollout(
        &self,
        rollout_id: &str,
        flag: &str,
    ) -> Result<Option<StoredRelease>, StoreError>;
    /// Creates an app with its channels (stable, beta and nightly by default), audited as
    /// `app.create`. See [`apps`].
    async fn create_app(&self, change: &Change, app: &NewApp)
    -> Result<Committed<App>, StoreError>;
    /// Every app, by key.
    async fn list_apps(&self) -> Result<Vec<App>, StoreError>;
    /// One app.
    async fn get_app(&self, key: &str) -> Result<App, StoreError>;
    /// Creates a release of an app, audited as `release.create`. Fails with
    /// [`StoreError::Invalid`] naming the field (`version`, `artifacts[0].sha512`, `channel`,
    /// `plan.stages[1].percent`…), [`StoreError::NotFound`] for an unknown app and
    /// [`StoreError::AlreadyExists`] when the channel has that version.
    async fn create_app_release(
        &self,
        change: &Change,
        app: &str,
        spec: &sluice_core::apps::ReleaseSpec,
    ) -> Result<Committed<StoredAppRelease>, StoreError>;
    /// An app's releases, of one channel or all, oldest first.
    async fn list_app_releases(
        &self,
        app: &str,
        channel: Option<&str>,
    ) -> Result<Vec<StoredAppRelease>, StoreError>;
    /// One release.
    async fn get_app_release(
        &self,
        app: &str,
        channel: &str,
        version: &str,
    ) -> Result<StoredAppRelease, StoreError>;
    /// Every rolling release of every app, for the crash gate.
    async fn rolling_app_releases(&self) -> Result<Vec<StoredAppRelease>, StoreError>;
    /// Writes a release's new state, decided from revision `update.expected_revision`
    /// ([`StoreError::Conflict`] when it has moved on), with one audit record carrying the
    /// evidence.
    async fn update_app_release(
        &self,
        change: &Change,
        app: &str,
        channel: &str,
        version: &str,
        update: &AppReleaseUpdate,
    ) -> Result<Committed<StoredAppRelease>, StoreError>;
    /// Records one install's session outcomes: data, not configuration.
    async fn record_sessions(
        &self,
        app: &str,
        report: &SessionReport,
        received_ms: i64,
    ) -> Result<(), StoreError>;
    /// Sessions and crashes of one app version reported from the minute holding `since_ms` on.
    async fn session_counts(
        &self,
        app: &str,
        version: &str,
        since_ms: i64,
    ) -> Result<sluice_core::rollout::Proportions, StoreError>;
    /// Installs per channel and version among those that reported since `since_ms`.
    async fn install_versions(
        &self,
        app: &str,
        since_ms: i64,
    ) -> Result<Vec<VersionInstalls>, StoreError>;

    /// The configuration version, updated after every committed write: by this process's own
    /// writes on SQLite, and by every replica's through `LISTEN/NOTIFY` on PostgreSQL.
    ///
    /// It is a `watch` rather than a broadcast: a slow consumer skips to the newest version
    /// instead of lagging, which is what "reload up to version N" needs.
    fn subscribe(&self) -> watch::Receiver<i64>;

    // Dry runs of staged rule changes.

    /// Starts a dry run (audited as `dry_run.start`): checks that the environment and flag
    /// exist, that the staged rules compile against the whole configuration (`Invalid`), and
    /// that no other dry run of the flag is running there (`AlreadyExists`).
    async fn start_dry_run(
        &self,
        change: &Change,
        dry_run: &NewDryRun,
    ) -> Result<Committed<StoredDryRun>, StoreError>;

    /// Stops a dry run (audited as `dry_run.stop`); a stopped one is left as it is.
    async fn stop_dry_run(
        &self,
        change: &Change,
        id: i64,
    ) -> Result<Committed<StoredDryRun>, StoreError>;

    /// One dry run.
    async fn get_dry_run(&self, id: i64) -> Result<StoredDryRun, StoreError>;

    /// Dry runs, newest first, optionally of one environment and one flag.
    async fn list_dry_runs(
        &self,
        env: Option<&str>,
        flag: Option<&str>,
    ) -> Result<Vec<StoredDryRun>, StoreError>;

    /// Merges the server's own dry-run tallies (from OFREP evaluations). SDK tallies arrive
    /// with their metrics batch through `record_metrics`.
    async fn record_dry_runs(
        &self,
        reports: &[sluice_core::dry_run::DryRunReport],
    ) -> Result<(), StoreError>;

    /// What a dry run's evaluators tallied.
    async fn dry_run_tallies(&self, id: i64) -> Result<DryRunTallies, StoreError>;

    /// A handle for leader election. On SQLite the one process always leads.
    async fn leader_lock(&self) -> Result<LeaderLock, StoreError>;

    /// Closes every connection. The store is unusable afterwards.
    async fn close(&self);
}

/// Leadership among replicas: only the leader runs the rollout controller.
#[derive(Debug)]
pub enum LeaderLock {
    /// SQLite: one process, always the leader.
    Single,
    /// PostgreSQL: an advisory lock held by a dedicated session.
    Postgres(PgLeaderLock),
}

impl LeaderLock {
    /// Tries to become (or checks that this is still) the leader, without waiting.
    pub async fn try_acquire(&mut self) -> Result<bool, StoreError> {
        match self {
            LeaderLock::Single => Ok(true),
            LeaderLock::Postgres(lock) => lock.try_acquire().await,
        }
    }

    /// Whether the last [`LeaderLock::try_acquire`] made or kept this the leader.
    pub fn is_leader(&self) -> bool {
        match self {
            LeaderLock::Single => true,
            LeaderLock::Postgres(lock) => lock.is_leader(),
        }
    }

    /// Gives up leadership. Dropping the lock does too, by closing its session.
    pub async fn release(&mut self) -> Result<(), StoreError> {
        match self {
            LeaderLock::Single => Ok(()),
            LeaderLock::Postgres(lock) => lock.release().await,
        }
    }
}

/// Opens (creating an SQLite file if needed) and migrates the store at `url`.
pub async fn open(url: &StoreUrl) -> Result<Arc<dyn Store>, StoreError> {
    let store = sql::SqlStore::open(url).await?;
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls() {
        let parse = |text: &str| text.parse::<StoreUrl>();
        assert_eq!(
            parse("sqlite://data/sluice.db?mode=rwc"),
            Ok(StoreUrl::Sqlite {
                path: "data/sluice.db".into()
            })
        );
        assert_eq!(
            parse("sqlite:sluice.db"),
            Ok(StoreUrl::Sqlite {
                path: "sluice.db".into()
            })
        );
        assert_eq!(
            parse("sqlite:///var/lib/sluice.db"),
            Ok(StoreUrl::Sqlite {
                path: "/var/lib/sluice.db".into()
            })
        );
        assert!(parse("sqlite://x.db?mode=ro").is_err());
        assert!(parse("sqlite::memory:").is_err());
        assert!(parse("mysql://localhost/x").is_err());
        let postgres = parse("postgres://sluice:hunter2@db:5432/sluice");
        assert_eq!(
            postgres.as_ref().map(StoreUrl::backend),
            Ok(Backend::Postgres)
        );
        let shown = format!("{:?}", postgres);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sluice:***@db:5432/sluice"), "{shown}");
    }
}
