//! What the flag lifecycle needs from the store: when each flag last changed, when an SDK
//! last reported it, and which flags someone archived.
//!
//! Archiving is an audited write (`flag.archive`, `flag.unarchive` on `flag:<key>`) that does
//! not change how the flag is served; it is left out of "last changed", so archiving a flag
//! does not make it look freshly edited.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_core::model::FlagDef;
use sqlx::{AnyConnection, AnyPool, Row};

use super::tables::{DefRow, FLAGS, to_json};
use super::writes::{Entry, Outcome};
use super::{Change, StoreError};

/// The facts about one flag that come from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagActivity {
    /// Its key.
    pub key: String,
    /// When it was created.
    pub created_ms: i64,
    /// Its newest audit record other than archiving, or its last write.
    pub last_changed_ms: i64,
    /// The newest telemetry bucket with exposures for it, in any environment.
    pub last_evaluated_ms: Option<i64>,
    /// When it was archived, if it is.
    pub archived_ms: Option<i64>,
}

/// Every flag's activity, by key.
pub(super) async fn flag_activity(pool: &AnyPool) -> Result<Vec<FlagActivity>, StoreError> {
    let mut conn = pool.acquire().await?;
    let flags: Vec<DefRow<FlagDef>> = FLAGS.list(&mut conn).await?;
    let changed: BTreeMap<String, i64> = sqlx::query(
        "SELECT resource, MAX(time_ms) AS last_ms FROM audit_log \
         WHERE resource LIKE 'flag:%' AND action NOT IN ('flag.archive', 'flag.unarchive') \
         GROUP BY resource",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| -> Result<(String, i64), StoreError> {
        let resource: String = row.try_get("resource")?;
        let key = resource
            .strip_prefix("flag:")
            .unwrap_or(&resource)
            .to_owned();
        Ok((key, row.try_get("last_ms")?))
    })
    .collect::<Result<_, _>>()?;
    let evaluated: BTreeMap<String, i64> = sqlx::query(
        "SELECT flag, MAX(bucket_start_ms) AS last_ms FROM metric_aggregates \
         WHERE exposures > 0 GROUP BY flag",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| -> Result<(String, i64), StoreError> {
        Ok((row.try_get("flag")?, row.try_get("last_ms")?))
    })
    .collect::<Result<_, _>>()?;
    let archived: BTreeMap<String, i64> = sqlx::query("SELECT flag, archived_ms FROM flag_archive")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| -> Result<(String, i64), StoreError> {
            Ok((row.try_get("flag")?, row.try_get("archived_ms")?))
        })
        .collect::<Result<_, _>>()?;
    Ok(flags
        .into_iter()
        .map(|row| {
            let last_changed_ms = changed
                .get(&row.key)
                .copied()
                .unwrap_or(row.updated_at_ms)
                .max(row.updated_at_ms);
            FlagActivity {
                created_ms: row.created_at_ms,
                last_changed_ms,
                last_evaluated_ms: evaluated.get(&row.key).copied(),
                archived_ms: archived
                    .get(&row.key)
                    .copied()
                    .filter(|at| *at >= row.created_at_ms),
                key: row.key,
            }
        })
        .collect())
}

/// Archives (or unarchives) a flag, audited as `flag.archive` (`flag.unarchive`). Doing what
/// is already done writes nothing.
pub(super) async fn archive_flag(
    conn: &mut AnyConnection,
    change: &Change,
    key: &str,
    archived: bool,
) -> Result<Outcome<Option<i64>>, StoreError> {
    let flag: DefRow<FlagDef> = FLAGS.get(conn, key).await?;
    let current: Option<i64> =
        sqlx::query_scalar("SELECT archived_ms FROM flag_archive WHERE flag = $1")
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    let current = current.filter(|at| *at >= flag.created_at_ms);
    if current.is_some() == archived {
        return Ok(Outcome::Unchanged(current));
    }
    sqlx::query("DELETE FROM flag_archive WHERE flag = $1")
        .bind(key)
        .execute(&mut *conn)
        .await?;
    let after = if archived {
        sqlx::query("INSERT INTO flag_archive (flag, archived_ms, actor) VALUES ($1, $2, $3)")
            .bind(key)
            .bind(change.now_ms)
            .bind(&change.actor)
            .execute(&mut *conn)
            .await?;
        Some(change.now_ms)
    } else {
        None
    };
    let entry = Entry {
        action: if archived {
            "flag.archive"
        } else {
            "flag.unarchive"
        },
        resource: format!("flag:{key}"),
        before: Some(to_json(&serde_json::json!({ "archivedMs": current }))?),
        after: Some(to_json(&serde_json::json!({ "archivedMs": after }))?),
    };
    Ok(Outcome::Write(after, entry))
}
