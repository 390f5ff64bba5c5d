//! The bodies of the write operations: what each one checks and changes inside its transaction.
//!
//! Each body runs on the connection of a write transaction that already holds the `meta`
//! row (see `sql.rs`), and returns an [`Outcome`]: the value to return plus the audit
//! [`Entry`] to append, or the value alone when nothing changed. Any error, including a
//! version conflict or an invalid result, makes the caller roll the whole transaction back.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_core::FlagFile;
use sluice_core::model::{FlagDef, SegmentDef};
use sqlx::AnyConnection;

use super::tables::{
    DefRow, DefTable, FLAGS, SEGMENTS, check_version, find_environment, find_token, load_config,
    new_token_id, to_json, validate,
};
use super::{Change, Environment, ImportSummary, ImportTally, NewToken, StoreError, Token};

/// What one mutation records in the audit log.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) action: &'static str,
    pub(super) resource: String,
    pub(super) before: Option<String>,
    pub(super) after: Option<String>,
}

/// What a write body decided.
#[derive(Debug)]
pub(super) enum Outcome<T> {
    /// Append `Entry` to the audit log and commit.
    Write(T, Entry),
    /// Nothing changed: roll back, record nothing, and report the current version.
    Unchanged(T),
}

pub(super) async fn create_def<T>(
    conn: &mut AnyConnection,
    table: &DefTable,
    change: &Change,
    key: &str,
    definition: &T,
) -> Result<Outcome<DefRow<T>>, StoreError>
where
    T: Serialize + DeserializeOwned + Clone,
{
    if table.find::<T>(conn, key).await?.is_some() {
        return Err(StoreError::AlreadyExists);
    }
    table
        .insert(conn, key, definition, 1, change.now_ms)
        .await?;
    validate(conn).await?;
    let entry = Entry {
        action: table.create_action,
        resource: table.resource(key),
        before: None,
        after: Some(to_json(definition)?),
    };
    let row = DefRow {
        key: key.to_owned(),
        definition: definition.clone(),
        version: 1,
        created_at_ms: change.now_ms,
        updated_at_ms: change.now_ms,
    };
    Ok(Outcome::Write(row, entry))
}

/// A read-modify-write of one definition, audited as `action`.
pub(super) async fn modify_def<T, F>(
    conn: &mut AnyConnection,
    table: &DefTable,
    change: &Change,
    key: &str,
    expected_version: Option<i64>,
    action: &'static str,
    modify: F,
) -> Result<Outcome<DefRow<T>>, StoreError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(&mut T),
{
    let mut row: DefRow<T> = table.get(conn, key).await?;
    check_version(expected_version, row.version)?;
    let before = to_json(&row.definition)?;
    modify(&mut row.definition);
    row.version += 1;
    row.updated_at_ms = change.now_ms;
    table
        .replace(conn, key, &row.definition, row.version, change.now_ms)
        .await?;
    validate(conn).await?;
    let entry = Entry {
        action,
        resource: table.resource(key),
        before: Some(before),
        after: Some(to_json(&row.definition)?),
    };
    Ok(Outcome::Write(row, entry))
}

pub(super) async fn delete_def<T>(
    conn: &mut AnyConnection,
    table: &DefTable,
    key: &str,
    expected_version: Option<i64>,
) -> Result<Outcome<DefRow<T>>, StoreError>
where
    T: Serialize + DeserializeOwned,
{
    let row: DefRow<T> = table.get(conn, key).await?;
    check_version(expected_version, row.version)?;
    table.remove(conn, key).await?;
    validate(conn).await?;
    let entry = Entry {
        action: table.delete_action,
        resource: table.resource(key),
        before: Some(to_json(&row.definition)?),
        after: None,
    };
    Ok(Outcome::Write(row, entry))
}

/// The kill switch for one environment, or for the base definition.
pub(super) async fn set_flag_enabled(
    conn: &mut AnyConnection,
    change: &Change,
    key: &str,
    environment: Option<&str>,
    enabled: bool,
    expected_version: Option<i64>,
) -> Result<Outcome<DefRow<FlagDef>>, StoreError> {
    if let Some(environment) = environment
        && find_environment(conn, environment).await?.is_none()
    {
        return Err(StoreError::NotFound);
    }
    let action = if enabled { "flag.restore" } else { "flag.kill" };
    modify_def(
        conn,
        &FLAGS,
        change,
        key,
        expected_version,
        action,
        |def: &mut FlagDef| match environment {
            Some(environment) => {
                let state = def.environments.entry(environment.to_owned()).or_default();
                state.enabled = Some(enabled);
            }
            None => def.enabled = enabled,
        },
    )
    .await
}

pub(super) async fn create_environment(
    conn: &mut AnyConnection,
    change: &Change,
    name: &str,
    description: Option<&str>,
) -> Result<Outcome<Environment>, StoreError> {
    if find_environment(conn, name).await?.is_some() {
        return Err(StoreError::AlreadyExists);
    }
    insert_environment(conn, name, description, change.now_ms).await?;
    // Checks the name, among everything else.
    validate(conn).await?;
    let environment = Environment {
        name: name.to_owned(),
        description: description.map(str::to_owned),
        version: 1,
        created_at_ms: change.now_ms,
        updated_at_ms: change.now_ms,
    };
    let entry = Entry {
        action: "environment.create",
        resource: format!("environment:{name}"),
        before: None,
        after: Some(to_json(&environment)?),
    };
    Ok(Outcome::Write(environment, entry))
}

async fn insert_environment(
    conn: &mut AnyConnection,
    name: &str,
    description: Option<&str>,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO environments (name, description, version, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, 1, $3, $3)",
    )
    .bind(name)
    .bind(description)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn update_environment(
    conn: &mut AnyConnection,
    change: &Change,
    name: &str,
    description: Option<&str>,
    expected_version: Option<i64>,
) -> Result<Outcome<Environment>, StoreError> {
    let before = find_environment(conn, name)
        .await?
        .ok_or(StoreError::NotFound)?;
    check_version(expected_version, before.version)?;
    let after = Environment {
        description: description.map(str::to_owned),
        version: before.version + 1,
        updated_at_ms: change.now_ms,
        ..before.clone()
    };
    sqlx::query(
        "UPDATE environments SET description = $2, version = $3, updated_at_ms = $4 \
         WHERE name = $1",
    )
    .bind(name)
    .bind(&after.description)
    .bind(after.version)
    .bind(change.now_ms)
    .execute(&mut *conn)
    .await?;
    let entry = Entry {
        action: "environment.update",
        resource: format!("environment:{name}"),
        before: Some(to_json(&before)?),
        after: Some(to_json(&after)?),
    };
    Ok(Outcome::Write(after, entry))
}

pub(super) async fn delete_environment(
    conn: &mut AnyConnection,
    name: &str,
    expected_version: Option<i64>,
) -> Result<Outcome<Environment>, StoreError> {
    let before = find_environment(conn, name)
        .await?
        .ok_or(StoreError::NotFound)?;
    check_version(expected_version, before.version)?;
    let token: Option<String> = sqlx::query_scalar(
        "SELECT id FROM tokens WHERE environment = $1 AND revoked_at_ms IS NULL \
         ORDER BY id LIMIT 1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(token) = token {
        return Err(StoreError::InUse {
            by: format!("token:{token}"),
        });
    }
    sqlx::query("DELETE FROM environments WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM environment_protection WHERE env = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    // Fails while a flag still overrides this environment.
    validate(conn).await?;
    let entry = Entry {
        action: "environment.delete",
        resource: format!("environment:{name}"),
        before: Some(to_json(&before)?),
        after: None,
    };
    Ok(Outcome::Write(before, entry))
}

pub(super) async fn create_token(
    conn: &mut AnyConnection,
    change: &Change,
    token: &NewToken,
) -> Result<Outcome<Token>, StoreError> {
    if let Some(environment) = token.access.environment()
        && find_environment(conn, environment).await?.is_none()
    {
        return Err(StoreError::NotFound);
    }
    let stored = Token {
        id: new_token_id(),
        name: token.name.clone(),
        access: token.access.clone(),
        created_at_ms: change.now_ms,
        revoked_at_ms: None,
        version: 1,
    };
    sqlx::query(
        "INSERT INTO tokens (id, name, scope, environment, secret_sha256, created_at_ms, \
         revoked_at_ms, version) VALUES ($1, $2, $3, $4, $5, $6, NULL, 1)",
    )
    .bind(&stored.id)
    .bind(&stored.name)
    .bind(stored.access.scope().as_str())
    .bind(stored.access.environment())
    .bind(&token.secret_sha256)
    .bind(change.now_ms)
    .execute(&mut *conn)
    .await?;
    // The hash stays out of the audit log: `Token` does not carry it.
    let entry = Entry {
        action: "token.create",
        resource: format!("token:{}", stored.id),
        before: None,
        after: Some(to_json(&stored)?),
    };
    Ok(Outcome::Write(stored, entry))
}

pub(super) async fn revoke_token(
    conn: &mut AnyConnection,
    change: &Change,
    id: &str,
    expected_version: Option<i64>,
) -> Result<Outcome<Token>, StoreError> {
    let before = find_token(conn, id).await?.ok_or(StoreError::NotFound)?;
    check_version(expected_version, before.version)?;
    if before.revoked_at_ms.is_some() {
        return Ok(Outcome::Unchanged(before));
    }
    let after = Token {
        revoked_at_ms: Some(change.now_ms),
        version: before.version + 1,
        ..before.clone()
    };
    sqlx::query("UPDATE tokens SET revoked_at_ms = $2, version = $3 WHERE id = $1")
        .bind(id)
        .bind(change.now_ms)
        .bind(after.version)
        .execute(&mut *conn)
        .await?;
    let entry = Entry {
        action: "token.revoke",
        resource: format!("token:{id}"),
        before: Some(to_json(&before)?),
        after: Some(to_json(&after)?),
    };
    Ok(Outcome::Write(after, entry))
}

/// Replaces every flag and segment with the file's; see [`super::Store::import`].
pub(super) async fn import(
    conn: &mut AnyConnection,
    change: &Change,
    file: &FlagFile,
) -> Result<Outcome<ImportSummary>, StoreError> {
    let before = load_config(conn).await?.file;
    let mut summary = ImportSummary::default();
    for name in file.environments.iter().flatten() {
        if find_environment(conn, name).await?.is_none() {
            insert_environment(conn, name, None, change.now_ms).await?;
            summary.environments_created.push(name.clone());
        }
    }
    let segments: Vec<(&str, &SegmentDef)> = file
        .segments
        .iter()
        .map(|(key, def)| (key.as_str(), def))
        .collect();
    summary.segments = import_defs(conn, &SEGMENTS, &segments, change.now_ms).await?;
    let flags: Vec<(&str, &FlagDef)> = file
        .flags
        .iter()
        .map(|(key, def)| (key.as_str(), def))
        .collect();
    summary.flags = import_defs(conn, &FLAGS, &flags, change.now_ms).await?;
    if summary.is_empty() {
        return Ok(Outcome::Unchanged(summary));
    }
    let after = load_config(conn).await?.file;
    sluice_core::validate(&after).map_err(StoreError::Invalid)?;
    let entry = Entry {
        action: "config.import",
        resource: "config".to_owned(),
        before: Some(to_json(&before)?),
        after: Some(to_json(&after)?),
    };
    Ok(Outcome::Write(summary, entry))
}

/// Replaces every definition of `table` with `wanted`, keeping unchanged versions.
async fn import_defs<T>(
    conn: &mut AnyConnection,
    table: &DefTable,
    wanted: &[(&str, &T)],
    now_ms: i64,
) -> Result<ImportTally, StoreError>
where
    T: Serialize + DeserializeOwned + PartialEq,
{
    let existing: Vec<DefRow<T>> = table.list(conn).await?;
    let wanted_keys: BTreeSet<&str> = wanted.iter().map(|&(key, _)| key).collect();
    let mut tally = ImportTally::default();
    let mut existing_by_key = BTreeMap::new();
    for row in existing {
        if !wanted_keys.contains(row.key.as_str()) {
            table.remove(conn, &row.key).await?;
            tally.deleted.push(row.key.clone());
        }
        existing_by_key.insert(row.key.clone(), row);
    }
    for &(key, definition) in wanted {
        match existing_by_key.get(key) {
            Some(row) if row.definition == *definition => tally.unchanged += 1,
            Some(row) => {
                table
                    .replace(conn, key, definition, row.version + 1, now_ms)
                    .await?;
                tally.updated.push(key.to_owned());
            }
            None => {
                table.insert(conn, key, definition, 1, now_ms).await?;
                tally.created.push(key.to_owned());
            }
        }
    }
    Ok(tally)
}
