//! `/api/v1/apps`: desktop apps, their releases, and people's release commands. Admin only.
//!
//! `POST /api/v1/apps` creates an app (channels stable, beta and nightly unless given);
//! `POST /api/v1/apps/{app}/releases` creates a release in a channel;
//! `POST /api/v1/apps/{app}/channels/{channel}/releases/{version}/{promote|halt|resume|pull}`
//! changes one; `GET /api/v1/apps/{app}/status` shows each channel's releases and the installs
//! on each version. Every write is one audited transaction (`app.create`, `release.create`,
//! `release.<command>`). The install-facing feeds and session reports are in `http/feeds.rs`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_core::apps::{ReleaseCommand, ReleaseSpec, Share};
use sluice_core::{Error, ErrorKind, Errors};

use crate::apps::{ReleaseError, gate_decision, run_command};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::{JsonBody, change};
use crate::state::{AppState, now_ms};
use crate::store::{NewApp, StoreError};

/// App routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/apps", get(list).post(create))
        .route("/api/v1/apps/{app}", get(read))
        .route("/api/v1/apps/{app}/status", get(status))
        .route(
            "/api/v1/apps/{app}/releases",
            get(list_app_releases).post(create_app_release),
        )
        .route(
            "/api/v1/apps/{app}/channels/{channel}/releases/{version}",
            get(read_release),
        )
        .route(
            "/api/v1/apps/{app}/channels/{channel}/releases/{version}/{command}",
            post(command),
        )
}

fn what_app(app: &str) -> String {
    format!("app `{app}`")
}

fn what_release(app: &str, channel: &str, version: &str) -> String {
    format!("release {version} of app `{app}` in channel `{channel}`")
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewApp>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let committed = state
        .store()
        .create_app(&change(&caller, &headers, None), &body)
        .await
        .map_err(|e| ApiError::from_store(e, &what_app(&body.key)))?;
    Ok((StatusCode::CREATED, Json(json!(committed.value))).into_response())
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let apps = state.store().list_apps().await?;
    Ok(Json(json!({ "apps": apps })))
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(app): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let found = state
        .store()
        .get_app(&app)
        .await
        .map_err(|e| ApiError::from_store(e, &what_app(&app)))?;
    let releases = state.store().list_app_releases(&app, None).await?;
    Ok(Json(json!({ "app": found, "releases": releases })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelQuery {
    channel: Option<String>,
}

async fn list_app_releases(
    State(state): State<AppState>,
    caller: Caller,
    Path(app): Path<String>,
    Query(query): Query<ChannelQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    state
        .store()
        .get_app(&app)
        .await
        .map_err(|e| ApiError::from_store(e, &what_app(&app)))?;
    let releases = state
        .store()
        .list_app_releases(&app, query.channel.as_deref())
        .await?;
    Ok(Json(json!({ "releases": releases })))
}

async fn create_app_release(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(app): Path<String>,
    JsonBody(spec): JsonBody<ReleaseSpec>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let committed = state
        .store()
        .create_app_release(&change(&caller, &headers, None), &app, &spec)
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists => ApiError::Conflict(format!(
                "channel `{}` of app `{app}` already has version {}",
                spec.channel, spec.version
            )),
            other => ApiError::from_store(other, &what_app(&app)),
        })?;
    Ok((StatusCode::CREATED, Json(json!(committed.value))).into_response())
}

async fn read_release(
    State(state): State<AppState>,
    caller: Caller,
    Path((app, channel, version)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let release = state
        .store()
        .get_app_release(&app, &channel, &version)
        .await
        .map_err(|e| ApiError::from_store(e, &what_release(&app, &channel, &version)))?;
    let gate = gate_decision(state.store(), &release, now_ms()).await?;
    let gate = gate.map(|(decision, sessions)| json!({"decision": decision, "sessions": sessions}));
    Ok(Json(json!({ "release": release, "gate": gate })))
}

/// The optional body of a command.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    /// For promote: the new share, as a percent.
    percent: Option<Share>,
    /// Why, for the audit log.
    reason: Option<String>,
}

async fn command(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((app, channel, version, name)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let body: CommandBody = if body.iter().all(u8::is_ascii_whitespace) {
        CommandBody::default()
    } else {
        let mut deserializer = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let message = error.into_inner().to_string();
            ApiError::InvalidBody {
                message: format!("body: {path}: {message}"),
                errors: Errors(vec![Error::new(
                    ErrorKind::Invalid,
                    sluice_core::Path::root().key(path),
                    message,
                )]),
            }
        })?
    };
    let command = match name.as_str() {
        "promote" => ReleaseCommand::Promote {
            share: body.percent,
        },
        "halt" => ReleaseCommand::Halt,
        "resume" => ReleaseCommand::Resume,
        "pull" => ReleaseCommand::Pull,
        other => {
            return Err(ApiError::NotFound(format!(
                "no release command `{other}`: expected promote, halt, resume or pull"
            )));
        }
    };
    if body.percent.is_some() && name != "promote" {
        return Err(ApiError::InvalidBody {
            message: "body: percent: only promote takes a percent".into(),
            errors: Errors(vec![Error::new(
                ErrorKind::Invalid,
                sluice_core::Path::root().key("percent"),
                "only promote takes a percent",
            )]),
        });
    }
    let what = what_release(&app, &channel, &version);
    let committed = run_command(
        state.store(),
        &change(&caller, &headers, body.reason),
        &app,
        &channel,
        &version,
        command,
    )
    .await
    .map_err(|e| match e {
        ReleaseError::Command(error) => ApiError::Conflict(error.to_string()),
        ReleaseError::Store(StoreError::Conflict { .. }) => ApiError::Conflict(format!(
            "{what} changed while this was decided; read it again and retry"
        )),
        ReleaseError::Store(error) => ApiError::from_store(error, &what),
    })?;
    Ok(Json(json!(committed.value)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StatusQuery {
    /// Count installs that reported since this time; the last 7 days by default.
    since_ms: Option<i64>,
}

async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(app): Path<String>,
    Query(query): Query<StatusQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let found = state
        .store()
        .get_app(&app)
        .await
        .map_err(|e| ApiError::from_store(e, &what_app(&app)))?;
    let since = query
        .since_ms
        .unwrap_or_else(|| now_ms() - 7 * 24 * 3_600_000);
    let releases = state.store().list_app_releases(&app, None).await?;
    let installs = state.store().install_versions(&app, since).await?;
    let channels: Vec<Value> = found
        .channels
        .iter()
        .map(|channel| {
            let total: i64 = installs
                .iter()
                .filter(|i| &i.channel == channel)
                .map(|i| i.installs)
                .sum();
            let versions: Vec<Value> = installs
                .iter()
                .filter(|i| &i.channel == channel)
                .map(|i| {
                    json!({
                        "version": i.version,
                        "installs": i.installs,
                        "share": if total > 0 { i.installs as f64 / total as f64 } else { 0.0 },
                    })
                })
                .collect();
            let channel_releases: Vec<Value> = releases
                .iter()
                .filter(|r| &r.release.channel == channel)
                .map(|r| {
                    json!({
                        "version": r.release.version,
                        "state": r.release.state,
                        "percent": r.release.share,
                        "plan": r.release.plan.is_some(),
                        "stage": r.release.gate.map(|g| g.stage),
                    })
                })
                .collect();
            json!({
                "channel": channel,
                "installs": total,
                "versions": versions,
                "releases": channel_releases,
            })
        })
        .collect();
    Ok(Json(
        json!({ "app": app, "sinceMs": since, "channels": channels }),
    ))
}
