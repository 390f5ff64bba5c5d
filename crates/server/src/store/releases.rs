//! Releases in the store: the release rows, their events and the rollouts they started.
//!
//! # The key decision: a release's history is written with the release, audited
//!
//! Every change to a release (created, evidence, override, a drill, a gate hold) is one write
//! like any other configuration write: it holds the `meta` row, appends one event to
//! `release_events` and exactly one audit record on resource `release:<name>`. A rollout a
//! release starts is created in the same write as its link in `release_rollouts` (and its
//! audit record is the rollout's own `rollout.start`). A gate hold is written only when its
//! reason differs from the last hold's, so a tick every five seconds does not flood the log.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_core::release::{Evidence, Override, ReleaseSpec};
use sluice_core::rollout::{Policy, RolloutPlan};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Row};

use super::rollouts::{AppliedRollout, NewRollout};
use super::tables::to_json;
use super::writes::{Entry, Outcome};
use super::{Change, StoreError};

/// One release, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRelease {
    /// `rel_` and 16 hex digits.
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// What people wrote.
    pub spec: ReleaseSpec,
    /// The policy the server chose, with its rule.
    pub policy: Policy,
    /// The plan its rollouts follow.
    pub plan: RolloutPlan,
    /// Checklist evidence, oldest first.
    pub evidence: Vec<Evidence>,
    /// The override of the checklist, once given.
    pub override_: Option<Override>,
    /// Who created it.
    pub created_by: Option<String>,
    /// When it was created.
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
    /// Starts at 1, grows by one on every change.
    pub version: i64,
}

/// A release to create.
#[derive(Debug, Clone)]
pub struct NewRelease {
    /// What people wrote, checked.
    pub spec: ReleaseSpec,
    /// The policy chosen.
    pub policy: Policy,
    /// The plan.
    pub plan: RolloutPlan,
}

/// One event in a release's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseEvent {
    /// The release.
    pub release_id: String,
    /// Its number within the release, from 1.
    pub seq: i64,
    /// `create`, `evidence`, `override`, `hold`, `drill`, `start`.
    pub kind: String,
    /// When.
    pub at_ms: i64,
    /// Who, or `None` for the server.
    pub actor: Option<String>,
    /// What, as JSON.
    pub detail: Value,
}

/// A change to a release.
#[derive(Debug, Clone)]
pub enum ReleaseChange {
    /// Evidence for one checklist item.
    Evidence(Evidence),
    /// The override; refused when one was given already.
    Override(Override),
    /// An event with no change to the release row: `drill` or `hold`. A `hold` whose detail
    /// equals the last hold's writes nothing.
    Event {
        /// The event's kind.
        kind: &'static str,
        /// What happened.
        detail: Value,
    },
}

pub(super) fn new_release_id() -> String {
    format!("rel_{}", hex::encode(rand::random::<[u8; 8]>()))
}

const RELEASE_COLUMNS: &str = "SELECT id, name, spec, policy, plan, evidence, override_json, \
     created_by, created_ms, updated_ms, version FROM releases";

fn release_row(row: &AnyRow) -> Result<StoredRelease, StoreError> {
    let text = |name: &str| -> Result<String, StoreError> { Ok(row.try_get(name)?) };
    let override_json: Option<String> = row.try_get("override_json")?;
    Ok(StoredRelease {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        spec: serde_json::from_str(&text("spec")?)?,
        policy: serde_json::from_str(&text("policy")?)?,
        plan: serde_json::from_str(&text("plan")?)?,
        evidence: serde_json::from_str(&text("evidence")?)?,
        override_: override_json
            .map(|t| serde_json::from_str(&t))
            .transpose()?,
        created_by: row.try_get("created_by")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        version: row.try_get("version")?,
    })
}

fn event_row(row: &AnyRow) -> Result<ReleaseEvent, StoreError> {
    let detail: String = row.try_get("detail")?;
    Ok(ReleaseEvent {
        release_id: row.try_get("release_id")?,
        seq: row.try_get("seq")?,
        kind: row.try_get("kind")?,
        at_ms: row.try_get("at_ms")?,
        actor: row.try_get("actor")?,
        detail: serde_json::from_str(&detail)?,
    })
}

/// The release whose id or name is `key`.
async fn find(conn: &mut AnyConnection, key: &str) -> Result<Option<StoredRelease>, StoreError> {
    let sql = format!("{RELEASE_COLUMNS} WHERE id = $1 OR name = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(release_row).transpose()
}

async fn append_event(
    conn: &mut AnyConnection,
    release_id: &str,
    kind: &str,
    change: &Change,
    detail: &Value,
) -> Result<ReleaseEvent, StoreError> {
    let last: Option<i64> =
        sqlx::query_scalar("SELECT MAX(seq) FROM release_events WHERE release_id = $1")
            .bind(release_id)
            .fetch_one(&mut *conn)
            .await?;
    let event = ReleaseEvent {
        release_id: release_id.to_owned(),
        seq: last.unwrap_or(0) + 1,
        kind: kind.to_owned(),
        at_ms: change.now_ms,
        actor: change.actor.clone(),
        detail: detail.clone(),
    };
    sqlx::query(
        "INSERT INTO release_events (release_id, seq, kind, at_ms, actor, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&event.release_id)
    .bind(event.seq)
    .bind(&event.kind)
    .bind(event.at_ms)
    .bind(&event.actor)
    .bind(to_json(&event.detail)?)
    .execute(&mut *conn)
    .await?;
    Ok(event)
}

/// Creates a release in the caller's write.
pub(super) async fn create(
    conn: &mut AnyConnection,
    change: &Change,
    new: &NewRelease,
) -> Result<Outcome<StoredRelease>, StoreError> {
    if find(conn, &new.spec.name).await?.is_some() {
        return Err(StoreError::AlreadyExists);
    }
    let release = StoredRelease {
        id: new_release_id(),
        name: new.spec.name.clone(),
        spec: new.spec.clone(),
        policy: new.policy.clone(),
        plan: new.plan.clone(),
        evidence: Vec::new(),
        override_: None,
        created_by: change.actor.clone(),
        created_ms: change.now_ms,
        updated_ms: change.now_ms,
        version: 1,
    };
    sqlx::query(
        "INSERT INTO releases (id, name, spec, policy, plan, evidence, override_json, \
         created_by, created_ms, updated_ms, version) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $8, 1)",
    )
    .bind(&release.id)
    .bind(&release.name)
    .bind(to_json(&release.spec)?)
    .bind(to_json(&release.policy)?)
    .bind(to_json(&release.plan)?)
    .bind(to_json(&release.evidence)?)
    .bind(&release.created_by)
    .bind(change.now_ms)
    .execute(&mut *conn)
    .await?;
    let detail = json!({"policy": release.policy});
    append_event(conn, &release.id, "create", change, &detail).await?;
    let entry = Entry {
        action: "release.create",
        resource: format!("release:{}", release.name),
        before: None,
        after: Some(to_json(&json!({
            "id": release.id,
            "spec": release.spec,
            "policy": release.policy,
            "plan": release.plan,
        }))?),
    };
    Ok(Outcome::Write(release, entry))
}

/// Applies one change to release `key` in the caller's write.
pub(super) async fn update(
    conn: &mut AnyConnection,
    change: &Change,
    key: &str,
    what: &ReleaseChange,
) -> Result<Outcome<(StoredRelease, Option<ReleaseEvent>)>, StoreError> {
    let mut release = find(conn, key).await?.ok_or(StoreError::NotFound)?;
    let (action, kind, detail): (&'static str, &str, Value) = match what {
        ReleaseChange::Evidence(evidence) => {
            release.evidence.push(evidence.clone());
            ("release.evidence", "evidence", json!(evidence))
        }
        ReleaseChange::Override(given) => {
            if release.override_.is_some() {
                return Err(StoreError::AlreadyExists);
            }
            release.override_ = Some(given.clone());
            ("release.override", "override", json!(given))
        }
        ReleaseChange::Event { kind, detail } => {
            if *kind == "hold" {
                let last: Option<String> = sqlx::query_scalar(
                    "SELECT detail FROM release_events WHERE release_id = $1 AND kind = 'hold' \
                     ORDER BY seq DESC LIMIT 1",
                )
                .bind(&release.id)
                .fetch_optional(&mut *conn)
                .await?;
                let same = last
                    .map(|t| serde_json::from_str::<Value>(&t))
                    .transpose()?
                    .is_some_and(|last| last == *detail);
                if same {
                    return Ok(Outcome::Unchanged((release, None)));
                }
            }
            let action = match *kind {
                "hold" => "release.hold",
                "drill" => "release.drill",
                _ => "release.event",
            };
            (action, *kind, detail.clone())
        }
    };
    let event = append_event(conn, &release.id, kind, change, &detail).await?;
    let before_version = release.version;
    release.version += 1;
    release.updated_ms = change.now_ms;
    sqlx::query(
        "UPDATE releases SET evidence = $2, override_json = $3, updated_ms = $4, version = $5 \
         WHERE id = $1 AND version = $6",
    )
    .bind(&release.id)
    .bind(to_json(&release.evidence)?)
    .bind(release.override_.as_ref().map(to_json).transpose()?)
    .bind(change.now_ms)
    .bind(release.version)
    .bind(before_version)
    .execute(&mut *conn)
    .await?;
    let entry = Entry {
        action,
        resource: format!("release:{}", release.name),
        before: None,
        after: Some(to_json(&json!({
            "release": release.id,
            "event": event,
        }))?),
    };
    Ok(Outcome::Write((release, Some(event)), entry))
}

/// Creates a rollout for release `key` and links it, in the caller's write.
pub(super) async fn start_rollout(
    conn: &mut AnyConnection,
    config_version: i64,
    change: &Change,
    key: &str,
    rollout: &NewRollout,
) -> Result<Outcome<AppliedRollout>, StoreError> {
    let release = find(conn, key).await?.ok_or(StoreError::NotFound)?;
    let outcome = super::rollouts::create(conn, config_version, change, rollout).await?;
    if let Outcome::Write(applied, _) = &outcome {
        sqlx::query(
            "INSERT INTO release_rollouts (rollout_id, release_id, created_ms) VALUES ($1, $2, $3)",
        )
        .bind(&applied.rollout.id)
        .bind(&release.id)
        .bind(change.now_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(outcome)
}

pub(super) async fn get(pool: &AnyPool, key: &str) -> Result<StoredRelease, StoreError> {
    let mut conn = pool.acquire().await?;
    find(&mut conn, key).await?.ok_or(StoreError::NotFound)
}

pub(super) async fn list(pool: &AnyPool) -> Result<Vec<StoredRelease>, StoreError> {
    let sql = format!("{RELEASE_COLUMNS} ORDER BY created_ms DESC, id");
    let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(pool).await?;
    rows.iter().map(release_row).collect()
}

pub(super) async fn events(pool: &AnyPool, id: &str) -> Result<Vec<ReleaseEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT release_id, seq, kind, at_ms, actor, detail FROM release_events \
         WHERE release_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(event_row).collect()
}

pub(super) async fn rollouts(pool: &AnyPool, id: &str) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT rollout_id FROM release_rollouts WHERE release_id = $1 ORDER BY created_ms, rollout_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?)
}

/// The release a rollout belongs to: the one that started it, else the newest release that
/// lists its flag.
pub(super) async fn of_rollout(
    pool: &AnyPool,
    rollout_id: &str,
    flag: &str,
) -> Result<Option<StoredRelease>, StoreError> {
    let linked: Option<String> =
        sqlx::query_scalar("SELECT release_id FROM release_rollouts WHERE rollout_id = $1")
            .bind(rollout_id)
            .fetch_optional(pool)
            .await?;
    if let Some(id) = linked {
        return get(pool, &id).await.map(Some);
    }
    Ok(list(pool)
        .await?
        .into_iter()
        .find(|r| r.spec.flags.iter().any(|f| f == flag)))
}
