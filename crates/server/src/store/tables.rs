//! Row mapping and the small queries that every operation shares, over `sqlx::Any`.
//!
//! Flags and segments are the same shape, a JSON definition per key with a version, so one
//! [`DefTable`] serves both.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_core::FlagFile;
use sluice_core::model::{FlagDef, SegmentDef};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Row};

use super::audit::AuditRecord;
use super::{Environment, StoreError, StoredFlag, StoredSegment, Token, TokenAccess, TokenScope};

pub(super) fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    Ok(serde_json::to_string(value)?)
}

/// Checks the caller's expected version against the stored one.
pub(super) fn check_version(expected: Option<i64>, current: i64) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != current => Err(StoreError::Conflict { current }),
        _ => Ok(()),
    }
}

/// A table of JSON definitions keyed by name: flags or segments.
pub(super) struct DefTable {
    table: &'static str,
    key: &'static str,
    noun: &'static str,
    pub(super) create_action: &'static str,
    pub(super) update_action: &'static str,
    pub(super) delete_action: &'static str,
}

pub(super) const FLAGS: DefTable = DefTable {
    table: "flags",
    key: "key",
    noun: "flag",
    create_action: "flag.create",
    update_action: "flag.update",
    delete_action: "flag.delete",
};
pub(super) const SEGMENTS: DefTable = DefTable {
    table: "segments",
    key: "name",
    noun: "segment",
    create_action: "segment.create",
    update_action: "segment.update",
    delete_action: "segment.delete",
};

/// One row of a [`DefTable`].
pub(super) struct DefRow<T> {
    pub(super) key: String,
    pub(super) definition: T,
    pub(super) version: i64,
    pub(super) created_at_ms: i64,
    pub(super) updated_at_ms: i64,
}

impl DefRow<FlagDef> {
    pub(super) fn into_flag(self) -> StoredFlag {
        StoredFlag {
            key: self.key,
            definition: self.definition,
            version: self.version,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        }
    }
}

impl DefRow<SegmentDef> {
    pub(super) fn into_segment(self) -> StoredSegment {
        StoredSegment {
            name: self.key,
            definition: self.definition,
            version: self.version,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        }
    }
}

impl DefTable {
    pub(super) fn select(&self) -> String {
        format!(
            "SELECT {key} AS key, definition, version, created_at_ms, updated_at_ms FROM {table}",
            key = self.key,
            table = self.table
        )
    }

    pub(super) fn row<T: DeserializeOwned>(row: &AnyRow) -> Result<DefRow<T>, StoreError> {
        let definition: String = row.try_get("definition")?;
        Ok(DefRow {
            key: row.try_get("key")?,
            definition: serde_json::from_str(&definition)?,
            version: row.try_get("version")?,
            created_at_ms: row.try_get("created_at_ms")?,
            updated_at_ms: row.try_get("updated_at_ms")?,
        })
    }

    pub(super) async fn list<T: DeserializeOwned>(
        &self,
        conn: &mut AnyConnection,
    ) -> Result<Vec<DefRow<T>>, StoreError> {
        let sql = format!("{} ORDER BY {}", self.select(), self.key);
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(Self::row).collect()
    }

    pub(super) async fn find<T: DeserializeOwned>(
        &self,
        conn: &mut AnyConnection,
        key: &str,
    ) -> Result<Option<DefRow<T>>, StoreError> {
        let sql = format!("{} WHERE {} = $1", self.select(), self.key);
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(Self::row).transpose()
    }

    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        conn: &mut AnyConnection,
        key: &str,
    ) -> Result<DefRow<T>, StoreError> {
        self.find(conn, key).await?.ok_or(StoreError::NotFound)
    }

    pub(super) async fn insert<T: Serialize>(
        &self,
        conn: &mut AnyConnection,
        key: &str,
        definition: &T,
        version: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {} ({}, definition, version, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $4)",
            self.table, self.key
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(key)
            .bind(to_json(definition)?)
            .bind(version)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    pub(super) async fn replace<T: Serialize>(
        &self,
        conn: &mut AnyConnection,
        key: &str,
        definition: &T,
        version: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE {} SET definition = $2, version = $3, updated_at_ms = $4 WHERE {} = $1",
            self.table, self.key
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(key)
            .bind(to_json(definition)?)
            .bind(version)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    pub(super) async fn remove(
        &self,
        conn: &mut AnyConnection,
        key: &str,
    ) -> Result<(), StoreError> {
        let sql = format!("DELETE FROM {} WHERE {} = $1", self.table, self.key);
        sqlx::query(AssertSqlSafe(sql))
            .bind(key)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    pub(super) fn resource(&self, key: &str) -> String {
        format!("{}:{key}", self.noun)
    }
}

pub(super) fn environment_row(row: &AnyRow) -> Result<Environment, StoreError> {
    Ok(Environment {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        version: row.try_get("version")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

pub(super) const ENVIRONMENT_COLUMNS: &str =
    "SELECT name, description, version, created_at_ms, updated_at_ms FROM environments";

pub(super) async fn find_environment(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<Environment>, StoreError> {
    let sql = format!("{ENVIRONMENT_COLUMNS} WHERE name = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(environment_row).transpose()
}

pub(super) async fn list_environments(
    conn: &mut AnyConnection,
) -> Result<Vec<Environment>, StoreError> {
    let sql = format!("{ENVIRONMENT_COLUMNS} ORDER BY name");
    let rows = sqlx::query(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(environment_row).collect()
}

pub(super) const TOKEN_COLUMNS: &str =
    "SELECT id, name, scope, environment, created_at_ms, revoked_at_ms, version FROM tokens";

pub(super) fn token_row(row: &AnyRow) -> Result<Token, StoreError> {
    let scope: String = row.try_get("scope")?;
    let scope: TokenScope = scope
        .parse()
        .map_err(|e: String| StoreError::Other(anyhow::anyhow!(e)))?;
    let environment: Option<String> = row.try_get("environment")?;
    let access = match (scope, environment) {
        (TokenScope::Admin, None) => TokenAccess::Admin,
        (TokenScope::Server, Some(environment)) => TokenAccess::Server { environment },
        (TokenScope::Client, Some(environment)) => TokenAccess::Client { environment },
        (scope, environment) => {
            return Err(StoreError::Other(anyhow::anyhow!(
                "stored token has scope {} with environment {environment:?}",
                scope.as_str()
            )));
        }
    };
    Ok(Token {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        access,
        created_at_ms: row.try_get("created_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
        version: row.try_get("version")?,
    })
}

pub(super) async fn find_token(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Token>, StoreError> {
    let sql = format!("{TOKEN_COLUMNS} WHERE id = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(token_row).transpose()
}

pub(super) fn audit_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        config_version: row.try_get("config_version")?,
        time_ms: row.try_get("time_ms")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        resource: row.try_get("resource")?,
        before: row.try_get("before_json")?,
        after: row.try_get("after_json")?,
        reason: row.try_get("reason")?,
        request_id: row.try_get("request_id")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

pub(super) const AUDIT_COLUMNS: &str = "SELECT seq, config_version, time_ms, actor, action, resource, \
     before_json, after_json, reason, request_id, prev_hash, hash FROM audit_log";

/// The whole configuration as one file, with every definition's version.
pub(super) struct LoadedConfig {
    pub(super) file: FlagFile,
    pub(super) flag_versions: BTreeMap<String, i64>,
    pub(super) segment_versions: BTreeMap<String, i64>,
}

pub(super) async fn load_config(conn: &mut AnyConnection) -> Result<LoadedConfig, StoreError> {
    let environments = list_environments(conn).await?;
    let segments: Vec<DefRow<SegmentDef>> = SEGMENTS.list(conn).await?;
    let flags: Vec<DefRow<FlagDef>> = FLAGS.list(conn).await?;
    let mut file = FlagFile {
        environments: Some(environments.into_iter().map(|e| e.name).collect()),
        ..FlagFile::default()
    };
    let mut flag_versions = BTreeMap::new();
    let mut segment_versions = BTreeMap::new();
    for row in segments {
        segment_versions.insert(row.key.clone(), row.version);
        file.segments.insert(row.key, row.definition);
    }
    for row in flags {
        flag_versions.insert(row.key.clone(), row.version);
        file.flags.insert(row.key, row.definition);
    }
    Ok(LoadedConfig {
        file,
        flag_versions,
        segment_versions,
    })
}

/// Rejects a write whose resulting configuration does not validate.
pub(super) async fn validate(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let config = load_config(conn).await?;
    sluice_core::validate(&config.file).map_err(StoreError::Invalid)
}

pub(super) fn new_token_id() -> String {
    format!("tok_{}", hex::encode(rand::random::<[u8; 8]>()))
}

pub(super) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(super) async fn current_version(pool: &AnyPool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT config_version FROM meta WHERE id = 1")
            .fetch_one(pool)
            .await?,
    )
}
