//! Staged rollouts in the store: rollouts, their transitions, webhooks and the delivery outbox.
//!
//! # The key decision: a transition is one audited write, keyed by (rollout, seq)
//!
//! A transition from `sluice_core::rollout` ([`step`](sluice_core::rollout::step) or
//! [`command`](sluice_core::rollout::command)) is applied like every other configuration
//! write: in one transaction that holds the `meta` row. Inside it the rollout row is read,
//! the transition must be the next one (`seq == state.transition_seq + 1`, checked by the
//! pure [`apply`]), the flag's targeting is rewritten from the new state
//! ([`RolloutState::targeting`]), the whole configuration is re-validated, the transition is
//! inserted into `rollout_transitions` (`PRIMARY KEY (rollout_id, seq)`), the rollout row is
//! updated, one outbox row per subscribed webhook is queued, and exactly one audit record is
//! appended whose `after` carries the transition with its evidence. `config_version` moves
//! and, on PostgreSQL, `NOTIFY` goes out, so SDK streams get the change at once.
//!
//! A transition whose seq is already taken is a replay: when the stored one did the same
//! thing (same kind, from and to) nothing is written and the caller learns it was already
//! applied; otherwise it was decided from a state that no longer holds, and the write fails
//! with [`StoreError::Conflict`]. So a crash before the commit leaves nothing (the next tick
//! decides again), a replay after it writes nothing, and of two racing writers one wins.
//!
//! Webhook deliveries are data, not configuration: marking one delivered or failed does not
//! lock `meta` or write an audit record. Creating and deleting a webhook does.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_core::model::FlagDef;
use sluice_core::rollout::{ApplyError, RolloutState, Transition, TransitionKind, apply};
use sluice_core::{Error, ErrorKind, Errors, Path, PathSegment};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Row};

use super::tables::{DefRow, FLAGS, find_environment, load_config, to_json, validate};
use super::writes::{Entry, Outcome};
use super::{Change, StoreError};

/// One rollout, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRollout {
    /// `ro_` and 16 hex digits.
    pub id: String,
    /// Its whole state, from `sluice_core`.
    pub state: RolloutState,
    /// The configuration version that wrote the current exposure: telemetry reported under
    /// an older version is not counted in the current stage's window.
    pub exposure_version: i64,
    /// When it was created.
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
    /// Starts at 1, grows by one on every transition.
    pub version: i64,
}

impl StoredRollout {
    /// Whether it is not final: at most one such rollout exists per flag and environment.
    pub fn is_active(&self) -> bool {
        !self.state.status.is_final()
    }
}

/// A rollout to create: its pending state, and the start transition when it can start now.
#[derive(Debug, Clone)]
pub struct NewRollout {
    /// The pending state, from [`RolloutState::new`].
    pub state: RolloutState,
    /// The `start` transition made from it, or `None` to leave it pending (its first stage
    /// needs approvals).
    pub start: Option<Transition>,
}

/// One applied transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// The rollout.
    pub rollout_id: String,
    /// Its sequence number within the rollout.
    pub seq: i64,
    /// The transition, with its evidence.
    pub transition: Transition,
    /// When it was made.
    pub at_ms: i64,
    /// The configuration version it committed as.
    pub config_version: i64,
}

/// What applying a transition did.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedRollout {
    /// The rollout after it.
    pub rollout: StoredRollout,
    /// The transition recorded under its seq (this one, or the one applied before).
    pub transition: Option<TransitionRecord>,
    /// False when the transition had already been applied, so nothing was written.
    pub applied: bool,
}

/// Which rollouts to list. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutFilter {
    /// Only this environment.
    pub env: Option<String>,
    /// Only this flag.
    pub flag: Option<String>,
    /// Only rollouts that are not final.
    pub active_only: bool,
    /// At most this many, newest first; 100 when `None`, never more than 1000.
    pub limit: Option<u32>,
}

/// A webhook, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// `whk_` and 16 hex digits.
    pub id: String,
    /// Where deliveries are posted.
    pub url: String,
    /// The transition kinds announced (`rollback`, `advance`, …); empty for all.
    pub events: Vec<String>,
    /// Only transitions in this environment; `None` for all.
    pub env: Option<String>,
    /// When it was created.
    pub created_ms: i64,
    /// Starts at 1.
    pub version: i64,
}

/// A webhook to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    /// Where deliveries are posted; checked by the caller.
    pub url: String,
    /// The HMAC key that signs deliveries.
    pub secret: String,
    /// Transition kinds; empty for all. Each must be a [`TransitionKind`] name.
    pub events: Vec<String>,
    /// Only this environment, which must exist.
    pub env: Option<String>,
}

/// One queued delivery, with what signing it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The outbox row.
    pub id: i64,
    /// The webhook.
    pub webhook_id: String,
    /// The rollout whose transition it announces.
    pub rollout_id: String,
    /// The transition's seq.
    pub seq: i64,
    /// `rollout.<kind>`.
    pub event: String,
    /// Where to post.
    pub url: String,
    /// The JSON body, fixed when the transition was written.
    pub payload: String,
    /// The webhook's secret.
    pub secret: String,
    /// Attempts made so far.
    pub attempts: i64,
}

/// A delivery's state, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStatus {
    /// The outbox row.
    pub id: i64,
    /// The webhook.
    pub webhook_id: String,
    /// The rollout.
    pub rollout_id: String,
    /// The transition's seq.
    pub seq: i64,
    /// `rollout.<kind>`.
    pub event: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due.
    pub next_attempt_ms: i64,
    /// When it was delivered (a 2xx answer).
    pub delivered_ms: Option<i64>,
    /// When it was given up on.
    pub failed_ms: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Answered 2xx at this time.
    Delivered {
        /// When.
        at_ms: i64,
    },
    /// Failed; try again at `next_attempt_ms`.
    Retry {
        /// When to try again.
        next_attempt_ms: i64,
        /// What went wrong.
        error: String,
    },
    /// Failed for the last time, or can never succeed (a refused destination).
    GaveUp {
        /// When.
        at_ms: i64,
        /// What went wrong.
        error: String,
    },
}

/// Every transition kind's name, as webhooks' `events` take them.
pub const TRANSITION_KINDS: [&str; 10] = [
    "start",
    "advance",
    "await_approval",
    "approve",
    "pause",
    "resume",
    "promote",
    "rollback",
    "kill",
    "complete",
];

/// The name of a transition kind: `rollback`, `await_approval`, …
pub fn kind_name(kind: TransitionKind) -> &'static str {
    match kind {
        TransitionKind::Start => "start",
        TransitionKind::Advance => "advance",
        TransitionKind::AwaitApproval => "await_approval",
        TransitionKind::Approve => "approve",
        TransitionKind::Pause => "pause",
        TransitionKind::Resume => "resume",
        TransitionKind::Promote => "promote",
        TransitionKind::Rollback => "rollback",
        TransitionKind::Kill => "kill",
        TransitionKind::Complete => "complete",
    }
}

/// The audit action of a transition: `rollout.rollback`, …
fn action(kind: TransitionKind) -> &'static str {
    match kind {
        TransitionKind::Start => "rollout.start",
        TransitionKind::Advance => "rollout.advance",
        TransitionKind::AwaitApproval => "rollout.await_approval",
        TransitionKind::Approve => "rollout.approve",
        TransitionKind::Pause => "rollout.pause",
        TransitionKind::Resume => "rollout.resume",
        TransitionKind::Promote => "rollout.promote",
        TransitionKind::Rollback => "rollout.rollback",
        TransitionKind::Kill => "rollout.kill",
        TransitionKind::Complete => "rollout.complete",
    }
}

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn invalid(path: Path, message: impl Into<String>) -> StoreError {
    StoreError::Invalid(Errors(vec![Error::new(ErrorKind::Invalid, path, message)]))
}

/// `errors` with each path moved under `prefix`, such as `plan`.
fn under(prefix: &str, errors: Errors) -> Errors {
    Errors(
        errors
            .iter()
            .map(|error| {
                let mut path = Path::root().key(prefix);
                for segment in error.path.segments() {
                    path = match segment {
                        PathSegment::Key(key) => path.key(key.clone()),
                        PathSegment::Index(index) => path.index(*index),
                    };
                }
                let mut moved = error.clone();
                moved.path = path;
                moved
            })
            .collect(),
    )
}

pub(super) fn new_rollout_id() -> String {
    format!("ro_{}", hex::encode(rand::random::<[u8; 8]>()))
}

pub(super) fn new_webhook_id() -> String {
    format!("whk_{}", hex::encode(rand::random::<[u8; 8]>()))
}

const ROLLOUT_COLUMNS: &str =
    "SELECT id, state, exposure_version, created_ms, updated_ms, version FROM rollouts";

fn rollout_row(row: &AnyRow) -> Result<StoredRollout, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(StoredRollout {
        id: row.try_get("id")?,
        state: serde_json::from_str(&state)?,
        exposure_version: row.try_get("exposure_version")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        version: row.try_get("version")?,
    })
}

const TRANSITION_COLUMNS: &str =
    "SELECT rollout_id, seq, transition, at_ms, config_version FROM rollout_transitions";

fn transition_row(row: &AnyRow) -> Result<TransitionRecord, StoreError> {
    let transition: String = row.try_get("transition")?;
    Ok(TransitionRecord {
        rollout_id: row.try_get("rollout_id")?,
        seq: row.try_get("seq")?,
        transition: serde_json::from_str(&transition)?,
        at_ms: row.try_get("at_ms")?,
        config_version: row.try_get("config_version")?,
    })
}

async fn find_rollout(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<StoredRollout>, StoreError> {
    let sql = format!("{ROLLOUT_COLUMNS} WHERE id = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(rollout_row).transpose()
}

async fn find_transition(
    conn: &mut AnyConnection,
    id: &str,
    seq: i64,
) -> Result<Option<TransitionRecord>, StoreError> {
    let sql = format!("{TRANSITION_COLUMNS} WHERE rollout_id = $1 AND seq = $2");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .bind(seq)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(transition_row).transpose()
}

async fn active_rollout(
    conn: &mut AnyConnection,
    env: &str,
    flag: &str,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM rollouts WHERE env = $1 AND flag = $2 AND active = 1")
            .bind(env)
            .bind(flag)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Creates a rollout and, when given, applies its start transition, in the caller's write.
pub(super) async fn create(
    conn: &mut AnyConnection,
    config_version: i64,
    change: &Change,
    new: &NewRollout,
) -> Result<Outcome<AppliedRollout>, StoreError> {
    let state = &new.state;
    if find_environment(conn, &state.environment).await?.is_none() {
        return Err(invalid(
            Path::root().key("env"),
            format!("environment `{}` does not exist", state.environment),
        ));
    }
    let Some(flag) = FLAGS.find::<FlagDef>(conn, &state.flag).await? else {
        return Err(invalid(
            Path::root().key("flag"),
            format!("flag `{}` does not exist", state.flag),
        ));
    };
    let mut problems = Vec::new();
    for (field, variant) in [("treatment", &state.treatment), ("control", &state.control)] {
        if !flag.definition.variants.contains_key(variant.as_str()) {
            let known: Vec<&str> = flag
                .definition
                .variants
                .keys()
                .map(String::as_str)
                .collect();
            problems.push(Error::new(
                ErrorKind::Invalid,
                Path::root().key(field),
                format!(
                    "flag `{}` has no variant `{variant}`; it has {}",
                    state.flag,
                    known.join(", ")
                ),
            ));
        }
    }
    if state.treatment == state.control {
        problems.push(Error::new(
            ErrorKind::Invalid,
            Path::root().key("treatment"),
            format!(
                "the treatment and control variants are both `{}`; a rollout moves people from one to another",
                state.treatment
            ),
        ));
    }
    if !problems.is_empty() {
        return Err(StoreError::Invalid(Errors(problems)));
    }
    let config = load_config(conn).await?;
    state
        .plan
        .validate_for(&config.file)
        .map_err(|errors| StoreError::Invalid(under("plan", errors)))?;
    if let Some(id) = active_rollout(conn, &state.environment, &state.flag).await? {
        return Err(StoreError::InUse {
            by: format!("rollout:{id}"),
        });
    }
    let row = StoredRollout {
        id: new_rollout_id(),
        state: state.clone(),
        exposure_version: config_version,
        created_ms: change.now_ms,
        updated_ms: change.now_ms,
        version: 1,
    };
    sqlx::query(
        "INSERT INTO rollouts (id, env, flag, state, seq, status, active, exposure_version, \
         created_ms, updated_ms, version) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $8, 1)",
    )
    .bind(&row.id)
    .bind(&state.environment)
    .bind(&state.flag)
    .bind(to_json(&row.state)?)
    .bind(seq_i64(state.transition_seq))
    .bind(state.status.name())
    .bind(config_version)
    .bind(change.now_ms)
    .execute(&mut *conn)
    .await?;
    match &new.start {
        Some(start) => commit(conn, config_version, change, row, start).await,
        None => {
            let entry = Entry {
                action: "rollout.create",
                resource: format!("flag:{}", state.flag),
                before: None,
                after: Some(to_json(&json!({
                    "rollout": row.id,
                    "env": state.environment,
                    "state": row.state,
                }))?),
            };
            Ok(Outcome::Write(
                AppliedRollout {
                    rollout: row,
                    transition: None,
                    applied: true,
                },
                entry,
            ))
        }
    }
}

/// Whether two transitions with the same seq do the same thing.
fn same(a: &Transition, b: &Transition) -> bool {
    a.seq == b.seq && a.kind == b.kind && a.from == b.from && a.to == b.to
}

/// Applies one transition in the caller's write; see the module documentation.
pub(super) async fn apply_transition(
    conn: &mut AnyConnection,
    config_version: i64,
    change: &Change,
    id: &str,
    transition: &Transition,
) -> Result<Outcome<AppliedRollout>, StoreError> {
    let row = find_rollout(conn, id).await?.ok_or(StoreError::NotFound)?;
    let current = row.state.transition_seq;
    if transition.seq <= current {
        let stored = find_transition(conn, id, seq_i64(transition.seq)).await?;
        return match stored {
            Some(record) if same(&record.transition, transition) => {
                Ok(Outcome::Unchanged(AppliedRollout {
                    rollout: row,
                    transition: Some(record),
                    applied: false,
                }))
            }
            _ => Err(StoreError::Conflict {
                current: seq_i64(current),
            }),
        };
    }
    commit(conn, config_version, change, row, transition).await
}

/// Writes one transition of `row`: state, flag, transition, outbox, audit entry.
async fn commit(
    conn: &mut AnyConnection,
    config_version: i64,
    change: &Change,
    row: StoredRollout,
    transition: &Transition,
) -> Result<Outcome<AppliedRollout>, StoreError> {
    let next = apply(&row.state, transition).map_err(|error| match error {
        ApplyError::AlreadyApplied { current, .. } | ApplyError::OutOfOrder { current, .. } => {
            StoreError::Conflict {
                current: seq_i64(current),
            }
        }
        ApplyError::Conflict { .. } => StoreError::Conflict {
            current: seq_i64(row.state.transition_seq),
        },
    })?;
    let env = next.environment.clone();
    let key = next.flag.clone();
    // Only a kill follows a final state; it must not touch a newer rollout's flag.
    if !row.is_active()
        && let Some(other) = active_rollout(conn, &env, &key).await?
    {
        return Err(StoreError::InUse {
            by: format!("rollout:{other}"),
        });
    }
    let Some(flag) = FLAGS.find::<FlagDef>(conn, &key).await? else {
        return Err(invalid(
            Path::root().key("flag"),
            format!("flag `{key}` no longer exists; the rollout cannot change it"),
        ));
    };
    let DefRow {
        definition: before,
        version: flag_version,
        ..
    } = flag;
    let after = next.targeting(&before);
    let flag_changed = after != before;
    if flag_changed {
        FLAGS
            .replace(conn, &key, &after, flag_version + 1, change.now_ms)
            .await?;
    }
    validate(conn).await?;
    let seq = seq_i64(transition.seq);
    let insert = sqlx::query(
        "INSERT INTO rollout_transitions (rollout_id, seq, kind, transition, at_ms, \
         config_version) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&row.id)
    .bind(seq)
    .bind(kind_name(transition.kind))
    .bind(to_json(transition)?)
    .bind(transition.at_ms)
    .bind(config_version)
    .execute(&mut *conn)
    .await;
    match insert {
        Ok(_) => {}
        // Its seq is taken: another writer got there first.
        Err(error) => {
            return Err(match StoreError::from(error) {
                StoreError::AlreadyExists => StoreError::Conflict { current: seq },
                other => other,
            });
        }
    }
    let stored = StoredRollout {
        state: next,
        exposure_version: if flag_changed {
            config_version
        } else {
            row.exposure_version
        },
        updated_ms: change.now_ms,
        version: row.version + 1,
        ..row.clone()
    };
    sqlx::query(
        "UPDATE rollouts SET state = $2, seq = $3, status = $4, active = $5, \
         exposure_version = $6, updated_ms = $7, version = $8 WHERE id = $1",
    )
    .bind(&stored.id)
    .bind(to_json(&stored.state)?)
    .bind(seq)
    .bind(stored.state.status.name())
    .bind(i64::from(stored.is_active()))
    .bind(stored.exposure_version)
    .bind(change.now_ms)
    .bind(stored.version)
    .execute(&mut *conn)
    .await?;
    queue_deliveries(conn, config_version, change.now_ms, &stored, transition).await?;
    let entry = Entry {
        action: action(transition.kind),
        resource: format!("flag:{key}"),
        before: Some(to_json(&json!({
            "rollout": stored.id,
            "env": env,
            "phase": transition.from,
            "flag": before,
        }))?),
        after: Some(to_json(&json!({
            "rollout": stored.id,
            "env": env,
            "seq": transition.seq,
            "kind": kind_name(transition.kind),
            "phase": transition.to,
            "exposure": transition.exposure,
            "evidence": transition.evidence,
            "flag": after,
        }))?),
    };
    let record = TransitionRecord {
        rollout_id: stored.id.clone(),
        seq,
        transition: transition.clone(),
        at_ms: transition.at_ms,
        config_version,
    };
    Ok(Outcome::Write(
        AppliedRollout {
            rollout: stored,
            transition: Some(record),
            applied: true,
        },
        entry,
    ))
}

/// The body every webhook receives for a transition.
pub fn webhook_payload(
    rollout: &StoredRollout,
    transition: &Transition,
    config_version: i64,
) -> Value {
    let state = &rollout.state;
    json!({
        "id": format!("{}.{}", rollout.id, transition.seq),
        "event": format!("rollout.{}", kind_name(transition.kind)),
        "rollout": rollout.id,
        "env": state.environment,
        "flag": state.flag,
        "treatment": state.treatment,
        "control": state.control,
        "seq": transition.seq,
        "atMs": transition.at_ms,
        "configVersion": config_version,
        "from": transition.from,
        "to": transition.to,
        "summary": transition.evidence.summary,
        "actor": transition.evidence.actor,
        "reason": transition.evidence.reason,
        "decision": transition.evidence.decision,
    })
}

async fn queue_deliveries(
    conn: &mut AnyConnection,
    config_version: i64,
    now_ms: i64,
    rollout: &StoredRollout,
    transition: &Transition,
) -> Result<(), StoreError> {
    let hooks = list_webhooks_on(conn).await?;
    let kind = kind_name(transition.kind);
    let env = &rollout.state.environment;
    let mut payload = None;
    for hook in hooks {
        let wanted = hook.env.as_ref().is_none_or(|e| e == env)
            && (hook.events.is_empty() || hook.events.iter().any(|e| e == kind));
        if !wanted {
            continue;
        }
        let body = match &payload {
            Some(body) => body,
            None => payload.insert(to_json(&webhook_payload(
                rollout,
                transition,
                config_version,
            ))?),
        };
        sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, rollout_id, seq, event, url, payload, \
             attempts, next_attempt_ms, created_ms) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
        )
        .bind(&hook.id)
        .bind(&rollout.id)
        .bind(seq_i64(transition.seq))
        .bind(format!("rollout.{kind}"))
        .bind(&hook.url)
        .bind(body.as_str())
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(super) async fn get_rollout(pool: &AnyPool, id: &str) -> Result<StoredRollout, StoreError> {
    let mut conn = pool.acquire().await?;
    find_rollout(&mut conn, id)
        .await?
        .ok_or(StoreError::NotFound)
}

pub(super) async fn list_rollouts(
    pool: &AnyPool,
    filter: &RolloutFilter,
) -> Result<Vec<StoredRollout>, StoreError> {
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    if let Some(env) = &filter.env {
        binds.push(env.clone());
        clauses.push(format!("env = ${}", binds.len()));
    }
    if let Some(flag) = &filter.flag {
        binds.push(flag.clone());
        clauses.push(format!("flag = ${}", binds.len()));
    }
    if filter.active_only {
        clauses.push("active = 1".to_owned());
    }
    let limit = filter.limit.unwrap_or(100).min(1000);
    let mut sql = ROLLOUT_COLUMNS.to_owned();
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY created_ms DESC, id LIMIT {limit}"));
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for bind in binds {
        query = query.bind(bind);
    }
    let rows = query.fetch_all(pool).await?;
    rows.iter().map(rollout_row).collect()
}

pub(super) async fn transitions(
    pool: &AnyPool,
    id: &str,
) -> Result<Vec<TransitionRecord>, StoreError> {
    let sql = format!("{TRANSITION_COLUMNS} WHERE rollout_id = $1 ORDER BY seq");
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(transition_row).collect()
}

const WEBHOOK_COLUMNS: &str = "SELECT id, url, events, env, created_ms, version FROM webhooks";

fn webhook_row(row: &AnyRow) -> Result<Webhook, StoreError> {
    let events: String = row.try_get("events")?;
    Ok(Webhook {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        events: serde_json::from_str(&events)?,
        env: row.try_get("env")?,
        created_ms: row.try_get("created_ms")?,
        version: row.try_get("version")?,
    })
}

async fn list_webhooks_on(conn: &mut AnyConnection) -> Result<Vec<Webhook>, StoreError> {
    let sql = format!("{WEBHOOK_COLUMNS} ORDER BY created_ms, id");
    let rows = sqlx::query(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(webhook_row).collect()
}

pub(super) async fn list_webhooks(pool: &AnyPool) -> Result<Vec<Webhook>, StoreError> {
    let mut conn = pool.acquire().await?;
    list_webhooks_on(&mut conn).await
}

pub(super) async fn create_webhook(
    conn: &mut AnyConnection,
    change: &Change,
    hook: &NewWebhook,
) -> Result<Outcome<Webhook>, StoreError> {
    let mut problems = Vec::new();
    for (index, event) in hook.events.iter().enumerate() {
        if !TRANSITION_KINDS.contains(&event.as_str()) {
            problems.push(Error::new(
                ErrorKind::Invalid,
                Path::root().key("events").index(index),
                format!(
                    "unknown event `{event}`; expected one of {}",
                    TRANSITION_KINDS.join(", ")
                ),
            ));
        }
    }
    if let Some(env) = &hook.env
        && find_environment(conn, env).await?.is_none()
    {
        problems.push(Error::new(
            ErrorKind::Invalid,
            Path::root().key("env"),
            format!("environment `{env}` does not exist"),
        ));
    }
    if !problems.is_empty() {
        return Err(StoreError::Invalid(Errors(problems)));
    }
    let stored = Webhook {
        id: new_webhook_id(),
        url: hook.url.clone(),
        events: hook.events.clone(),
        env: hook.env.clone(),
        created_ms: change.now_ms,
        version: 1,
    };
    sqlx::query(
        "INSERT INTO webhooks (id, url, secret, events, env, created_ms, version) \
         VALUES ($1, $2, $3, $4, $5, $6, 1)",
    )
    .bind(&stored.id)
    .bind(&stored.url)
    .bind(&hook.secret)
    .bind(to_json(&stored.events)?)
    .bind(&stored.env)
    .bind(change.now_ms)
    .execute(&mut *conn)
    .await?;
    // The secret stays out of the audit log: `Webhook` does not carry it.
    let entry = Entry {
        action: "webhook.create",
        resource: format!("webhook:{}", stored.id),
        before: None,
        after: Some(to_json(&stored)?),
    };
    Ok(Outcome::Write(stored, entry))
}

pub(super) async fn delete_webhook(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Outcome<Webhook>, StoreError> {
    let sql = format!("{WEBHOOK_COLUMNS} WHERE id = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let hook = row
        .as_ref()
        .map(webhook_row)
        .transpose()?
        .ok_or(StoreError::NotFound)?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND delivered_ms IS NULL")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let entry = Entry {
        action: "webhook.delete",
        resource: format!("webhook:{id}"),
        before: Some(to_json(&hook)?),
        after: None,
    };
    Ok(Outcome::Write(hook, entry))
}

pub(super) async fn due_deliveries(
    pool: &AnyPool,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let sql = format!(
        "SELECT d.id, d.webhook_id, d.rollout_id, d.seq, d.event, d.url, d.payload, d.attempts, \
         w.secret FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.delivered_ms IS NULL AND d.failed_ms IS NULL AND d.next_attempt_ms <= $1 \
         ORDER BY d.next_attempt_ms, d.id LIMIT {limit}"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(now_ms)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Delivery {
                id: row.try_get("id")?,
                webhook_id: row.try_get("webhook_id")?,
                rollout_id: row.try_get("rollout_id")?,
                seq: row.try_get("seq")?,
                event: row.try_get("event")?,
                url: row.try_get("url")?,
                payload: row.try_get("payload")?,
                secret: row.try_get("secret")?,
                attempts: row.try_get("attempts")?,
            })
        })
        .collect()
}

pub(super) async fn record_delivery(
    pool: &AnyPool,
    id: i64,
    outcome: &DeliveryOutcome,
) -> Result<(), StoreError> {
    let query = match outcome {
        DeliveryOutcome::Delivered { at_ms } => sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, delivered_ms = $2, \
             last_error = NULL WHERE id = $1 AND delivered_ms IS NULL",
        )
        .bind(id)
        .bind(*at_ms),
        DeliveryOutcome::Retry {
            next_attempt_ms,
            error,
        } => sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_ms = $2, \
             last_error = $3 WHERE id = $1 AND delivered_ms IS NULL",
        )
        .bind(id)
        .bind(*next_attempt_ms)
        .bind(error.clone()),
        DeliveryOutcome::GaveUp { at_ms, error } => sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, failed_ms = $2, \
             last_error = $3 WHERE id = $1 AND delivered_ms IS NULL",
        )
        .bind(id)
        .bind(*at_ms)
        .bind(error.clone()),
    };
    query.execute(pool).await?;
    Ok(())
}

pub(super) async fn deliveries(
    pool: &AnyPool,
    rollout_id: Option<&str>,
    limit: u32,
) -> Result<Vec<DeliveryStatus>, StoreError> {
    let filter = if rollout_id.is_some() {
        "WHERE rollout_id = $1 "
    } else {
        ""
    };
    let sql = format!(
        "SELECT id, webhook_id, rollout_id, seq, event, attempts, next_attempt_ms, delivered_ms, \
         failed_ms, last_error FROM webhook_deliveries {filter}ORDER BY id DESC LIMIT {limit}"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    if let Some(id) = rollout_id {
        query = query.bind(id.to_owned());
    }
    let rows = query.fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            Ok(DeliveryStatus {
                id: row.try_get("id")?,
                webhook_id: row.try_get("webhook_id")?,
                rollout_id: row.try_get("rollout_id")?,
                seq: row.try_get("seq")?,
                event: row.try_get("event")?,
                attempts: row.try_get("attempts")?,
                next_attempt_ms: row.try_get("next_attempt_ms")?,
                delivered_ms: row.try_get("delivered_ms")?,
                failed_ms: row.try_get("failed_ms")?,
                last_error: row.try_get("last_error")?,
            })
        })
        .collect()
}
