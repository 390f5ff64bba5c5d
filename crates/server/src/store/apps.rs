//! Desktop apps (migration `0005_apps.sql`): apps and their channels, releases, and what
//! installs report (session outcomes per version and minute, the version each install runs).
//!
//! Creating an app or a release, and every change of a release (a person's command or the
//! crash gate's decision), is a configuration write: one transaction holding the `meta` row,
//! with exactly one audit record (`app.create`, `release.create`, `release.<command>`,
//! `release.gate.<action>`) on resource `app:<key>/<channel>/<version>`. Session reports are
//! data, like SDK telemetry: no `meta` lock, no audit record, no version bump.

use serde::{Deserialize, Serialize};
use sluice_core::apps::{DEFAULT_CHANNELS, Release, ReleaseSpec, check_channel, validate_spec};
use sluice_core::rollout::Proportions;
use sluice_core::{Error, ErrorKind, Errors, Path, check_key};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

use super::tables::to_json;
use super::writes::{Entry, Outcome};
use super::{Backend, Change, StoreError, sqlite};

/// The bucket width of session counts.
pub const SESSION_BUCKET_MS: i64 = 60_000;

/// An app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    /// Its key, as in feed URLs: `/apps/{key}/…`.
    pub key: String,
    /// A name for people.
    pub name: Option<String>,
    /// Its channels.
    pub channels: Vec<String>,
    /// When it was created.
    pub created_ms: i64,
    /// Starts at 1.
    pub version: i64,
}

/// An app to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewApp {
    /// Its key.
    pub key: String,
    /// A name for people.
    #[serde(default)]
    pub name: Option<String>,
    /// Its channels; stable, beta and nightly when left out.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

/// A stored release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAppRelease {
    /// `rel_` and 16 hex digits; also the release's bucketing salt.
    pub id: String,
    /// The app.
    pub app: String,
    /// The release itself.
    #[serde(flatten)]
    pub release: Release,
    /// When it was created.
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
    /// Starts at 1, grows by one on every write.
    pub revision: i64,
}

impl StoredAppRelease {
    /// The audit resource: `app:<key>/<channel>/<version>`.
    pub fn resource(&self) -> String {
        format!(
            "app:{}/{}/{}",
            self.app, self.release.channel, self.release.version
        )
    }
}

/// A change to one release: the release after it, with the revision it was decided from.
#[derive(Debug, Clone, PartialEq)]
pub struct AppReleaseUpdate {
    /// The audit action, such as `release.halt` or `release.gate.advance`.
    pub action: &'static str,
    /// The revision the change was decided from; another one means someone else wrote first.
    pub expected_revision: i64,
    /// The release after the change.
    pub release: Release,
    /// The evidence, for the audit record (the gate's decision).
    pub evidence: Option<serde_json::Value>,
}

/// Sessions reported by one install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionReport {
    /// The install's stable id.
    pub install_id: String,
    /// The version it runs.
    pub version: String,
    /// Its channel.
    pub channel: String,
    /// Sessions that ended cleanly.
    #[serde(default)]
    pub clean: u64,
    /// Sessions that crashed.
    #[serde(default)]
    pub crashed: u64,
}

/// Installs seen on one version of one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInstalls {
    /// The channel.
    pub channel: String,
    /// The version.
    pub version: String,
    /// Installs whose last report named it.
    pub installs: i64,
}

/// The most sessions one report may carry.
pub const MAX_SESSIONS_PER_REPORT: u64 = 1000;

pub(super) fn new_release_id() -> String {
    format!("rel_{}", hex::encode(rand::random::<[u8; 8]>()))
}

fn invalid(path: Path, message: impl Into<String>) -> StoreError {
    StoreError::Invalid(Errors(vec![Error::new(ErrorKind::Invalid, path, message)]))
}

fn app_row(row: &AnyRow) -> Result<App, StoreError> {
    let channels: String = row.try_get("channels")?;
    Ok(App {
        key: row.try_get("key")?,
        name: row.try_get("name")?,
        channels: serde_json::from_str(&channels)?,
        created_ms: row.try_get("created_ms")?,
        version: row.try_get("version")?,
    })
}

const APP_COLUMNS: &str = "SELECT key, name, channels, created_ms, version FROM apps";
const RELEASE_COLUMNS: &str =
    "SELECT id, app, release, created_ms, updated_ms, revision FROM app_releases";

fn release_row(row: &AnyRow) -> Result<StoredAppRelease, StoreError> {
    let release: String = row.try_get("release")?;
    Ok(StoredAppRelease {
        id: row.try_get("id")?,
        app: row.try_get("app")?,
        release: serde_json::from_str(&release)?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        revision: row.try_get("revision")?,
    })
}

async fn find_app(conn: &mut AnyConnection, key: &str) -> Result<Option<App>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{APP_COLUMNS} WHERE key = $1")))
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(app_row).transpose()
}

pub(super) async fn create_app(
    conn: &mut AnyConnection,
    change: &Change,
    new: &NewApp,
) -> Result<Outcome<App>, StoreError> {
    let mut problems = Vec::new();
    if let Err(message) = check_key(&new.key) {
        problems.push(Error::new(
            ErrorKind::Invalid,
            Path::root().key("key"),
            message,
        ));
    }
    let channels: Vec<String> = match &new.channels {
        Some(channels) => channels.clone(),
        None => DEFAULT_CHANNELS.iter().map(|c| (*c).to_owned()).collect(),
    };
    if channels.is_empty() {
        problems.push(Error::new(
            ErrorKind::Invalid,
            Path::root().key("channels"),
            "an app needs at least one channel",
        ));
    }
    for (index, channel) in channels.iter().enumerate() {
        let at = Path::root().key("channels").index(index);
        if let Err(message) = check_channel(channel) {
            problems.push(Error::new(ErrorKind::Invalid, at, message));
        } else if channels[..index].contains(channel) {
            problems.push(Error::new(
                ErrorKind::Duplicate,
                at,
                format!("channel `{channel}` is listed twice"),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(StoreError::Invalid(Errors(problems)));
    }
    if find_app(conn, &new.key).await?.is_some() {
        return Err(StoreError::AlreadyExists);
    }
    let app = App {
        key: new.key.clone(),
        name: new.name.clone(),
        channels,
        created_ms: change.now_ms,
        version: 1,
    };
    sqlx::query(
        "INSERT INTO apps (key, name, channels, created_ms, updated_ms, version) \
         VALUES ($1, $2, $3, $4, $4, 1)",
    )
    .bind(&app.key)
    .bind(&app.name)
    .bind(to_json(&app.channels)?)
    .bind(change.now_ms)
    .execute(&mut *conn)
    .await?;
    let entry = Entry {
        action: "app.create",
        resource: format!("app:{}", app.key),
        before: None,
        after: Some(to_json(&app)?),
    };
    Ok(Outcome::Write(app, entry))
}

pub(super) async fn list_apps(pool: &AnyPool) -> Result<Vec<App>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{APP_COLUMNS} ORDER BY key")))
        .fetch_all(pool)
        .await?;
    rows.iter().map(app_row).collect()
}

pub(super) async fn get_app(pool: &AnyPool, key: &str) -> Result<App, StoreError> {
    let mut conn = pool.acquire().await?;
    find_app(&mut conn, key).await?.ok_or(StoreError::NotFound)
}

pub(super) async fn create_app_release(
    conn: &mut AnyConnection,
    change: &Change,
    app: &str,
    spec: &ReleaseSpec,
) -> Result<Outcome<StoredAppRelease>, StoreError> {
    let Some(found) = find_app(conn, app).await? else {
        return Err(StoreError::NotFound);
    };
    let pub_date_ms = validate_spec(spec, change.now_ms).map_err(StoreError::Invalid)?;
    if !found.channels.contains(&spec.channel) {
        return Err(invalid(
            Path::root().key("channel"),
            format!(
                "app `{app}` has no channel `{}`; its channels are {}",
                spec.channel,
                found.channels.join(", ")
            ),
        ));
    }
    let id = new_release_id();
    let release = Release::new(spec, id.clone(), pub_date_ms, change.now_ms);
    let stored = StoredAppRelease {
        id,
        app: app.to_owned(),
        release,
        created_ms: change.now_ms,
        updated_ms: change.now_ms,
        revision: 1,
    };
    sqlx::query(
        "INSERT INTO app_releases (id, app, channel, version, state, release, created_ms, \
         updated_ms, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1)",
    )
    .bind(&stored.id)
    .bind(app)
    .bind(&stored.release.channel)
    .bind(&stored.release.version)
    .bind(stored.release.state.as_str())
    .bind(to_json(&stored.release)?)
    .bind(change.now_ms)
    .execute(&mut *conn)
    .await?;
    let entry = Entry {
        action: "release.create",
        resource: stored.resource(),
        before: None,
        after: Some(to_json(&stored)?),
    };
    Ok(Outcome::Write(stored, entry))
}

async fn find_release(
    conn: &mut AnyConnection,
    app: &str,
    channel: &str,
    version: &str,
) -> Result<Option<StoredAppRelease>, StoreError> {
    let sql = format!("{RELEASE_COLUMNS} WHERE app = $1 AND channel = $2 AND version = $3");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(app)
        .bind(channel)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(release_row).transpose()
}

pub(super) async fn get_app_release(
    pool: &AnyPool,
    app: &str,
    channel: &str,
    version: &str,
) -> Result<StoredAppRelease, StoreError> {
    let mut conn = pool.acquire().await?;
    find_release(&mut conn, app, channel, version)
        .await?
        .ok_or(StoreError::NotFound)
}

pub(super) async fn list_app_releases(
    pool: &AnyPool,
    app: &str,
    channel: Option<&str>,
) -> Result<Vec<StoredAppRelease>, StoreError> {
    let rows = match channel {
        Some(channel) => {
            let sql = format!(
                "{RELEASE_COLUMNS} WHERE app = $1 AND channel = $2 ORDER BY created_ms, id"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(app)
                .bind(channel)
                .fetch_all(pool)
                .await?
        }
        None => {
            let sql = format!("{RELEASE_COLUMNS} WHERE app = $1 ORDER BY created_ms, id");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(app)
                .fetch_all(pool)
                .await?
        }
    };
    rows.iter().map(release_row).collect()
}

pub(super) async fn rolling_app_releases(
    pool: &AnyPool,
) -> Result<Vec<StoredAppRelease>, StoreError> {
    let sql =
        format!("{RELEASE_COLUMNS} WHERE state = 'rolling' ORDER BY created_ms, id LIMIT 1000");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?;
    rows.iter().map(release_row).collect()
}

pub(super) async fn update_app_release(
    conn: &mut AnyConnection,
    change: &Change,
    app: &str,
    channel: &str,
    version: &str,
    update: &AppReleaseUpdate,
) -> Result<Outcome<StoredAppRelease>, StoreError> {
    let Some(before) = find_release(conn, app, channel, version).await? else {
        return Err(StoreError::NotFound);
    };
    if before.revision != update.expected_revision {
        return Err(StoreError::Conflict {
            current: before.revision,
        });
    }
    // What may not change: the identity and the cohort's salt.
    if update.release.channel != before.release.channel
        || update.release.version != before.release.version
        || update.release.salt != before.release.salt
    {
        return Err(invalid(
            Path::root(),
            "a release's channel, version and salt never change",
        ));
    }
    let mut after = before.clone();
    after.release = update.release.clone();
    after.revision += 1;
    after.updated_ms = change.now_ms;
    sqlx::query(
        "UPDATE app_releases SET state = $1, release = $2, updated_ms = $3, revision = $4 \
         WHERE id = $5",
    )
    .bind(after.release.state.as_str())
    .bind(to_json(&after.release)?)
    .bind(change.now_ms)
    .bind(after.revision)
    .bind(&after.id)
    .execute(&mut *conn)
    .await?;
    let mut after_json = serde_json::to_value(&after)?;
    if let Some(evidence) = &update.evidence {
        after_json["evidence"] = evidence.clone();
    }
    let entry = Entry {
        action: update.action,
        resource: after.resource(),
        before: Some(to_json(&before)?),
        after: Some(after_json.to_string()),
    };
    Ok(Outcome::Write(after, entry))
}

/// Records one install's sessions in one transaction of its own (data, not configuration).
pub(super) async fn record_sessions(
    pool: &AnyPool,
    backend: Backend,
    app: &str,
    report: &SessionReport,
    received_ms: i64,
) -> Result<(), StoreError> {
    let mut tx = match backend {
        Backend::Sqlite => pool.begin_with(sqlite::BEGIN_WRITE).await?,
        Backend::Postgres => pool.begin().await?,
    };
    let outcome = async {
        let sessions = report.clean.saturating_add(report.crashed);
        if sessions > 0 {
            let bucket = received_ms - received_ms.rem_euclid(SESSION_BUCKET_MS);
            sqlx::query(
                "INSERT INTO app_sessions (app, version, bucket_ms, sessions, crashes) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app, version, bucket_ms) DO UPDATE SET \
                 sessions = app_sessions.sessions + excluded.sessions, \
                 crashes = app_sessions.crashes + excluded.crashes",
            )
            .bind(app)
            .bind(&report.version)
            .bind(bucket)
            .bind(i64::try_from(sessions).unwrap_or(i64::MAX))
            .bind(i64::try_from(report.crashed).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO app_installs (app, install_id, channel, version, last_seen_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app, install_id) DO UPDATE SET \
             channel = excluded.channel, version = excluded.version, \
             last_seen_ms = excluded.last_seen_ms",
        )
        .bind(app)
        .bind(&report.install_id)
        .bind(&report.channel)
        .bind(&report.version)
        .bind(received_ms)
        .execute(&mut *tx)
        .await?;
        Ok::<(), StoreError>(())
    }
    .await;
    match outcome {
        Ok(()) => {
            tx.commit().await?;
            Ok(())
        }
        Err(error) => {
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// Sessions and crashes of one app version from the bucket holding `since_ms` on.
pub(super) async fn session_counts(
    pool: &AnyPool,
    app: &str,
    version: &str,
    since_ms: i64,
) -> Result<Proportions, StoreError> {
    let since = since_ms - since_ms.rem_euclid(SESSION_BUCKET_MS);
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(sessions), 0) AS BIGINT) AS n, \
         CAST(COALESCE(SUM(crashes), 0) AS BIGINT) AS k \
         FROM app_sessions WHERE app = $1 AND version = $2 AND bucket_ms >= $3",
    )
    .bind(app)
    .bind(version)
    .bind(since)
    .fetch_one(pool)
    .await?;
    let n: i64 = row.try_get("n")?;
    let k: i64 = row.try_get("k")?;
    Ok(Proportions {
        n: u64::try_from(n).unwrap_or(0),
        k: u64::try_from(k).unwrap_or(0),
    })
}

/// Installs per channel and version among those seen since `since_ms`.
pub(super) async fn install_versions(
    pool: &AnyPool,
    app: &str,
    since_ms: i64,
) -> Result<Vec<VersionInstalls>, StoreError> {
    let rows = sqlx::query(
        "SELECT channel, version, COUNT(*) AS installs FROM app_installs \
         WHERE app = $1 AND last_seen_ms >= $2 GROUP BY channel, version ORDER BY channel, version",
    )
    .bind(app)
    .bind(since_ms)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(VersionInstalls {
                channel: row.try_get("channel")?,
                version: row.try_get("version")?,
                installs: row.try_get("installs")?,
            })
        })
        .collect()
}
