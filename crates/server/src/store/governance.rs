//! Protected environments and change requests in the store.
//!
//! # The key decision: a change request applies through the ordinary write path
//!
//! A change request stores the write it stands for ([`ChangePayload`]: a flag or segment
//! definition, a kill-switch restore, a rollout command, a protection change) and the
//! version of the resource it was computed from. Creating, approving and rejecting it are
//! audited writes of their own (`change.create`, `change.approve`, `change.reject` on
//! `change:<id>`), which move `config_version` like any audited write but change no flag.
//! Applying it is one write transaction that holds the `meta` row, as every write does: it
//! checks that the request is approved, that the resource is still at the base version
//! (otherwise [`StoreError::Conflict`], and nothing changes), runs the same body the direct
//! write runs (`writes.rs`, `rollouts.rs`), marks the request applied, and appends exactly
//! one audit record: the underlying action (`flag.update`, `rollout.promote`, ...) on the
//! resource itself, so the resource's history shows the change, with a reason naming the
//! change request, its author and its approvers.
//!
//! The base version is the resource's own version (flag, segment, protection) or, for a
//! rollout, its transition seq, not the global `config_version`: unrelated writes do not
//! invalidate a pending request, while any change to the same resource does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_core::governance::{Protection, Requirement, check_approval, is_approved};
use sluice_core::model::{FlagDef, SegmentDef};
use sluice_core::rollout::Transition;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Row};

use super::rollouts::AppliedRollout;
use super::tables::{FLAGS, SEGMENTS, find_environment, to_json};
use super::writes::{self, Entry, Outcome};
use super::{Change, StoreError};

/// A rollout command that a protected environment gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatedCommand {
    /// Start a pending rollout.
    Start,
    /// Resume a paused rollout.
    Resume,
    /// Move to the next stage now.
    Promote,
}

impl GatedCommand {
    /// The command's name.
    pub fn as_str(self) -> &'static str {
        match self {
            GatedCommand::Start => "start",
            GatedCommand::Resume => "resume",
            GatedCommand::Promote => "promote",
        }
    }
}

/// The write a change request stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum ChangePayload {
    /// Create a flag.
    #[serde(rename = "flag.create")]
    FlagCreate {
        /// Its key.
        key: String,
        /// Its definition.
        definition: FlagDef,
    },
    /// Replace a flag's definition.
    #[serde(rename = "flag.update")]
    FlagUpdate {
        /// Its key.
        key: String,
        /// The new definition.
        definition: FlagDef,
    },
    /// Delete a flag.
    #[serde(rename = "flag.delete")]
    FlagDelete {
        /// Its key.
        key: String,
    },
    /// Turn a flag back on (turning it off is never gated).
    #[serde(rename = "flag.restore")]
    FlagRestore {
        /// Its key.
        key: String,
        /// The environment, or `None` for the flag's base `enabled`.
        environment: Option<String>,
    },
    /// Replace a segment's definition.
    #[serde(rename = "segment.update")]
    SegmentUpdate {
        /// Its name.
        name: String,
        /// The new definition.
        definition: SegmentDef,
    },
    /// Delete a segment.
    #[serde(rename = "segment.delete")]
    SegmentDelete {
        /// Its name.
        name: String,
    },
    /// A rollout command.
    #[serde(rename = "rollout.command")]
    RolloutCommand {
        /// The rollout's id.
        rollout: String,
        /// Which command.
        command: GatedCommand,
    },
    /// Weaken an environment's protection.
    #[serde(rename = "environment.protect")]
    EnvironmentProtect {
        /// The environment.
        name: String,
        /// The new protection.
        protection: Protection,
    },
}

impl ChangePayload {
    /// The payload's kind, as stored and shown.
    pub fn kind(&self) -> &'static str {
        match self {
            ChangePayload::FlagCreate { .. } => "flag.create",
            ChangePayload::FlagUpdate { .. } => "flag.update",
            ChangePayload::FlagDelete { .. } => "flag.delete",
            ChangePayload::FlagRestore { .. } => "flag.restore",
            ChangePayload::SegmentUpdate { .. } => "segment.update",
            ChangePayload::SegmentDelete { .. } => "segment.delete",
            ChangePayload::RolloutCommand { .. } => "rollout.command",
            ChangePayload::EnvironmentProtect { .. } => "environment.protect",
        }
    }

    /// The resource it changes, as the audit log names it (`flag:checkout`).
    pub fn resource(&self) -> String {
        match self {
            ChangePayload::FlagCreate { key, .. }
            | ChangePayload::FlagUpdate { key, .. }
            | ChangePayload::FlagDelete { key }
            | ChangePayload::FlagRestore { key, .. } => format!("flag:{key}"),
            ChangePayload::SegmentUpdate { name, .. } | ChangePayload::SegmentDelete { name } => {
                format!("segment:{name}")
            }
            ChangePayload::RolloutCommand { rollout, .. } => format!("rollout:{rollout}"),
            ChangePayload::EnvironmentProtect { name, .. } => format!("environment:{name}"),
        }
    }
}

/// Where a change request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeStatus {
    /// Waiting for approvals.
    Pending,
    /// Has its approvals, not applied yet (applying failed, or was not tried).
    Approved,
    /// Someone rejected it; it never applies.
    Rejected,
    /// Applied.
    Applied,
}

impl ChangeStatus {
    fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Pending => "pending",
            ChangeStatus::Approved => "approved",
            ChangeStatus::Rejected => "rejected",
            ChangeStatus::Applied => "applied",
        }
    }

    fn parse(text: &str) -> Result<ChangeStatus, StoreError> {
        Ok(match text {
            "pending" => ChangeStatus::Pending,
            "approved" => ChangeStatus::Approved,
            "rejected" => ChangeStatus::Rejected,
            "applied" => ChangeStatus::Applied,
            other => {
                return Err(StoreError::Other(anyhow::anyhow!(
                    "unknown change request status `{other}`"
                )));
            }
        })
    }
}

/// One approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The approving token's id.
    pub actor: String,
    /// When.
    pub at_ms: i64,
}

/// A change request to file.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChangeRequest {
    /// The write.
    pub payload: ChangePayload,
    /// The resource's version it was computed from (0 for a flag that does not exist yet).
    pub base_version: i64,
    /// What it needs.
    pub requirement: Requirement,
}

/// A stored change request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequest {
    /// `cr_` and 16 hex digits.
    pub id: String,
    /// The payload's kind.
    pub kind: String,
    /// The resource it changes.
    pub resource: String,
    /// The write.
    pub payload: ChangePayload,
    /// The resource's version it was computed from.
    pub base_version: i64,
    /// The token that asked for it.
    pub author: String,
    /// Why, in the author's words.
    pub reason: Option<String>,
    /// What it needs.
    pub requirement: Requirement,
    /// Approvals so far, in order.
    pub approvals: Vec<Approval>,
    /// Where it is.
    pub status: ChangeStatus,
    /// Who rejected or applied it.
    pub resolved_by: Option<String>,
    /// The configuration version its application wrote.
    pub applied_version: Option<i64>,
    /// When it was filed.
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
    /// Starts at 1, grows by one on every change.
    pub version: i64,
}

impl ChangeRequest {
    /// Whether it has its approvals.
    pub fn has_approvals(&self) -> bool {
        is_approved(self.approvals.len(), self.requirement.required_approvals)
    }
}

/// An environment's protection with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredProtection {
    /// The environment.
    pub environment: String,
    /// The protection.
    #[serde(flatten)]
    pub protection: Protection,
    /// 0 when never set, then grows by one on every change.
    pub version: i64,
}

fn new_change_id() -> String {
    format!("cr_{}", hex::encode(rand::random::<[u8; 8]>()))
}

const CHANGE_COLUMNS: &str = "SELECT id, kind, resource, payload, base_version, author, reason, \
     environments, required_approvals, allow_self_approval, approvals, status, resolved_by, \
     applied_version, created_ms, updated_ms, version FROM change_requests";

fn change_row(row: &AnyRow) -> Result<ChangeRequest, StoreError> {
    let payload: String = row.try_get("payload")?;
    let environments: String = row.try_get("environments")?;
    let approvals: String = row.try_get("approvals")?;
    let status: String = row.try_get("status")?;
    let required: i64 = row.try_get("required_approvals")?;
    let allow_self: i64 = row.try_get("allow_self_approval")?;
    Ok(ChangeRequest {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        resource: row.try_get("resource")?,
        payload: serde_json::from_str(&payload)?,
        base_version: row.try_get("base_version")?,
        author: row.try_get("author")?,
        reason: row.try_get("reason")?,
        requirement: Requirement {
            environments: serde_json::from_str(&environments)?,
            required_approvals: u32::try_from(required).unwrap_or(u32::MAX),
            allow_self_approval: allow_self != 0,
        },
        approvals: serde_json::from_str(&approvals)?,
        status: ChangeStatus::parse(&status)?,
        resolved_by: row.try_get("resolved_by")?,
        applied_version: row.try_get("applied_version")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        version: row.try_get("version")?,
    })
}

pub(super) async fn find_change(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<ChangeRequest>, StoreError> {
    let sql = format!("{CHANGE_COLUMNS} WHERE id = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(change_row).transpose()
}

/// One change request.
pub(super) async fn get_change(pool: &AnyPool, id: &str) -> Result<ChangeRequest, StoreError> {
    let mut conn = pool.acquire().await?;
    find_change(&mut conn, id)
        .await?
        .ok_or(StoreError::NotFound)
}

/// Change requests, newest first, optionally of one status, at most `limit`.
pub(super) async fn list_changes(
    pool: &AnyPool,
    status: Option<ChangeStatus>,
    limit: u32,
) -> Result<Vec<ChangeRequest>, StoreError> {
    let limit = limit.clamp(1, 1000);
    let rows = match status {
        Some(status) => {
            let sql = format!(
                "{CHANGE_COLUMNS} WHERE status = $1 ORDER BY created_ms DESC, id LIMIT {limit}"
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(status.as_str())
                .fetch_all(pool)
                .await?
        }
        None => {
            let sql = format!("{CHANGE_COLUMNS} ORDER BY created_ms DESC, id LIMIT {limit}");
            sqlx::query(AssertSqlSafe(sql)).fetch_all(pool).await?
        }
    };
    rows.iter().map(change_row).collect()
}

async fn save_change(conn: &mut AnyConnection, change: &ChangeRequest) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE change_requests SET approvals = $2, status = $3, resolved_by = $4, \
         applied_version = $5, updated_ms = $6, version = $7 WHERE id = $1",
    )
    .bind(&change.id)
    .bind(to_json(&change.approvals)?)
    .bind(change.status.as_str())
    .bind(&change.resolved_by)
    .bind(change.applied_version)
    .bind(change.updated_ms)
    .bind(change.version)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn change_entry(
    action: &'static str,
    before: Option<&ChangeRequest>,
    after: &ChangeRequest,
) -> Result<Entry, StoreError> {
    Ok(Entry {
        action,
        resource: format!("change:{}", after.id),
        before: before.map(to_json).transpose()?,
        after: Some(to_json(after)?),
    })
}

/// Files a change request, audited as `change.create`.
pub(super) async fn create_change(
    conn: &mut AnyConnection,
    change: &Change,
    new: &NewChangeRequest,
) -> Result<Outcome<ChangeRequest>, StoreError> {
    let author = change.actor.clone().ok_or_else(|| {
        StoreError::Other(anyhow::anyhow!("a change request needs an author token"))
    })?;
    let stored = ChangeRequest {
        id: new_change_id(),
        kind: new.payload.kind().to_owned(),
        resource: new.payload.resource(),
        payload: new.payload.clone(),
        base_version: new.base_version,
        author,
        reason: change.reason.clone(),
        requirement: new.requirement.clone(),
        approvals: Vec::new(),
        status: ChangeStatus::Pending,
        resolved_by: None,
        applied_version: None,
        created_ms: change.now_ms,
        updated_ms: change.now_ms,
        version: 1,
    };
    sqlx::query(
        "INSERT INTO change_requests (id, kind, resource, payload, base_version, author, reason, \
         environments, required_approvals, allow_self_approval, approvals, status, resolved_by, \
         applied_version, created_ms, updated_ms, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL, $13, $13, 1)",
    )
    .bind(&stored.id)
    .bind(&stored.kind)
    .bind(&stored.resource)
    .bind(to_json(&stored.payload)?)
    .bind(stored.base_version)
    .bind(&stored.author)
    .bind(&stored.reason)
    .bind(to_json(&stored.requirement.environments)?)
    .bind(i64::from(stored.requirement.required_approvals))
    .bind(i64::from(stored.requirement.allow_self_approval))
    .bind(to_json(&stored.approvals)?)
    .bind(stored.status.as_str())
    .bind(change.now_ms)
    .execute(&mut *conn)
    .await?;
    let entry = change_entry("change.create", None, &stored)?;
    Ok(Outcome::Write(stored, entry))
}

/// Why approving, rejecting or applying is refused: shown as 409.
fn refused(message: String) -> StoreError {
    StoreError::InUse { by: message }
}

fn open_change(change: Option<ChangeRequest>) -> Result<ChangeRequest, StoreError> {
    let change = change.ok_or(StoreError::NotFound)?;
    match change.status {
        ChangeStatus::Pending | ChangeStatus::Approved => Ok(change),
        ChangeStatus::Rejected | ChangeStatus::Applied => Err(refused(format!(
            "change request {} is already {}",
            change.id,
            change.status.as_str()
        ))),
    }
}

/// Adds one approval, audited as `change.approve`; the request becomes `approved` with
/// its last required approval.
pub(super) async fn approve_change(
    conn: &mut AnyConnection,
    change: &Change,
    id: &str,
) -> Result<Outcome<ChangeRequest>, StoreError> {
    let before = open_change(find_change(conn, id).await?)?;
    let approver = change.actor.clone().unwrap_or_default();
    let approved_by: Vec<String> = before.approvals.iter().map(|a| a.actor.clone()).collect();
    check_approval(
        &before.author,
        &approver,
        &approved_by,
        before.requirement.allow_self_approval,
    )
    .map_err(|refusal| refused(refusal.to_string()))?;
    let mut after = before.clone();
    after.approvals.push(Approval {
        actor: approver,
        at_ms: change.now_ms,
    });
    if after.has_approvals() {
        after.status = ChangeStatus::Approved;
    }
    after.updated_ms = change.now_ms;
    after.version += 1;
    save_change(conn, &after).await?;
    let entry = change_entry("change.approve", Some(&before), &after)?;
    Ok(Outcome::Write(after, entry))
}

/// Rejects a request that has not applied, audited as `change.reject`.
pub(super) async fn reject_change(
    conn: &mut AnyConnection,
    change: &Change,
    id: &str,
) -> Result<Outcome<ChangeRequest>, StoreError> {
    let before = open_change(find_change(conn, id).await?)?;
    let mut after = before.clone();
    after.status = ChangeStatus::Rejected;
    after.resolved_by = change.actor.clone();
    after.updated_ms = change.now_ms;
    after.version += 1;
    save_change(conn, &after).await?;
    let entry = change_entry("change.reject", Some(&before), &after)?;
    Ok(Outcome::Write(after, entry))
}

/// Applies an approved request: see the module documentation. `transition` is the rollout
/// transition for a rollout command, computed by the caller from the rollout at the base seq.
pub(super) async fn apply_change(
    conn: &mut AnyConnection,
    config_version: i64,
    change: &Change,
    id: &str,
    transition: Option<&Transition>,
) -> Result<Outcome<ChangeRequest>, StoreError> {
    let before = open_change(find_change(conn, id).await?)?;
    if !before.has_approvals() {
        return Err(refused(format!(
            "change request {id} has {} of its {} approvals",
            before.approvals.len(),
            before.requirement.required_approvals
        )));
    }
    let base = Some(before.base_version);
    let entry = match &before.payload {
        ChangePayload::FlagCreate { key, definition } => {
            if let Some(row) = FLAGS.find::<FlagDef>(conn, key).await? {
                return Err(StoreError::Conflict {
                    current: row.version,
                });
            }
            entry_of(writes::create_def(conn, &FLAGS, change, key, definition).await?)
        }
        ChangePayload::FlagUpdate { key, definition } => entry_of(
            writes::modify_def(
                conn,
                &FLAGS,
                change,
                key,
                base,
                FLAGS.update_action,
                |stored: &mut FlagDef| stored.clone_from(definition),
            )
            .await?,
        ),
        ChangePayload::FlagDelete { key } => {
            entry_of(writes::delete_def::<FlagDef>(conn, &FLAGS, key, base).await?)
        }
        ChangePayload::FlagRestore { key, environment } => entry_of(
            writes::set_flag_enabled(conn, change, key, environment.as_deref(), true, base).await?,
        ),
        ChangePayload::SegmentUpdate { name, definition } => entry_of(
            writes::modify_def(
                conn,
                &SEGMENTS,
                change,
                name,
                base,
                SEGMENTS.update_action,
                |stored: &mut SegmentDef| stored.clone_from(definition),
            )
            .await?,
        ),
        ChangePayload::SegmentDelete { name } => {
            entry_of(writes::delete_def::<SegmentDef>(conn, &SEGMENTS, name, base).await?)
        }
        ChangePayload::RolloutCommand { rollout, .. } => {
            let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM rollouts WHERE id = $1")
                .bind(rollout)
                .fetch_optional(&mut *conn)
                .await?;
            let seq = seq.ok_or(StoreError::NotFound)?;
            let transition = match transition {
                Some(t)
                    if seq == before.base_version && i64::try_from(t.seq).ok() == Some(seq + 1) =>
                {
                    t
                }
                _ => return Err(StoreError::Conflict { current: seq }),
            };
            let outcome: Outcome<AppliedRollout> = super::rollouts::apply_transition(
                conn,
                config_version,
                change,
                rollout,
                transition,
            )
            .await?;
            entry_of(outcome)
        }
        ChangePayload::EnvironmentProtect { name, protection } => {
            entry_of(set_protection(conn, change, name, *protection, base).await?)
        }
    }?;
    let mut after = before.clone();
    after.status = ChangeStatus::Applied;
    after.resolved_by = change.actor.clone();
    after.applied_version = Some(config_version);
    after.updated_ms = change.now_ms;
    after.version += 1;
    save_change(conn, &after).await?;
    Ok(Outcome::Write(after, entry))
}

/// The audit entry of a write body that must write.
fn entry_of<T>(outcome: Outcome<T>) -> Result<Entry, StoreError> {
    match outcome {
        Outcome::Write(_, entry) => Ok(entry),
        // A replay or a no-op: the resource already is as requested, which the base version
        // check should have caught; refuse rather than mark it applied.
        Outcome::Unchanged(_) => Err(refused(
            "the change would change nothing: the resource already is as requested".into(),
        )),
    }
}

const PROTECTION_COLUMNS: &str =
    "SELECT env, required_approvals, allow_self_approval, version FROM environment_protection";

fn protection_row(row: &AnyRow) -> Result<StoredProtection, StoreError> {
    let required: i64 = row.try_get("required_approvals")?;
    let allow_self: i64 = row.try_get("allow_self_approval")?;
    Ok(StoredProtection {
        environment: row.try_get("env")?,
        protection: Protection {
            required_approvals: u32::try_from(required).unwrap_or(u32::MAX),
            allow_self_approval: allow_self != 0,
        },
        version: row.try_get("version")?,
    })
}

async fn find_protection(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<StoredProtection, StoreError> {
    let sql = format!("{PROTECTION_COLUMNS} WHERE env = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(row) => protection_row(&row)?,
        None => StoredProtection {
            environment: name.to_owned(),
            protection: Protection {
                required_approvals: 0,
                allow_self_approval: false,
            },
            version: 0,
        },
    })
}

/// Every environment's protection, by name; unprotected environments are left out.
pub(super) async fn protections(
    pool: &AnyPool,
) -> Result<BTreeMap<String, StoredProtection>, StoreError> {
    let sql = format!("{PROTECTION_COLUMNS} WHERE required_approvals > 0 ORDER BY env");
    let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(pool).await?;
    rows.iter()
        .map(|row| protection_row(row).map(|p| (p.environment.clone(), p)))
        .collect()
}

/// One environment's protection (version 0 when never set).
pub(super) async fn protection(pool: &AnyPool, name: &str) -> Result<StoredProtection, StoreError> {
    let mut conn = pool.acquire().await?;
    if find_environment(&mut conn, name).await?.is_none() {
        return Err(StoreError::NotFound);
    }
    find_protection(&mut conn, name).await
}

/// Sets an environment's protection, audited as `environment.protect`.
pub(super) async fn set_protection(
    conn: &mut AnyConnection,
    change: &Change,
    name: &str,
    protection: Protection,
    expected_version: Option<i64>,
) -> Result<Outcome<StoredProtection>, StoreError> {
    if find_environment(conn, name).await?.is_none() {
        return Err(StoreError::NotFound);
    }
    let before = find_protection(conn, name).await?;
    super::tables::check_version(expected_version, before.version)?;
    if before.protection == protection {
        return Ok(Outcome::Unchanged(before));
    }
    let after = StoredProtection {
        environment: name.to_owned(),
        protection,
        version: before.version + 1,
    };
    sqlx::query("DELETE FROM environment_protection WHERE env = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO environment_protection (env, required_approvals, allow_self_approval, \
         updated_ms, version) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(name)
    .bind(i64::from(protection.required_approvals))
    .bind(i64::from(protection.allow_self_approval))
    .bind(change.now_ms)
    .bind(after.version)
    .execute(&mut *conn)
    .await?;
    let entry = Entry {
        action: "environment.protect",
        resource: format!("environment:{name}"),
        before: Some(to_json(&before)?),
        after: Some(to_json(&after)?),
    };
    Ok(Outcome::Write(after, entry))
}

/// The reason an applied change request's audit record carries.
pub fn applied_reason(request: &ChangeRequest) -> String {
    let approvers: Vec<&str> = request.approvals.iter().map(|a| a.actor.as_str()).collect();
    let mut reason = format!(
        "change request {} by {}, approved by {}",
        request.id,
        request.author,
        if approvers.is_empty() {
            "nobody (no approvals required)".to_owned()
        } else {
            approvers.join(", ")
        }
    );
    if let Some(why) = &request.reason {
        reason.push_str(": ");
        reason.push_str(why);
    }
    reason
}
