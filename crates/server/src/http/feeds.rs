//! `/apps/…`: what desktop installs fetch and report, without a token.
//!
//! Update feeds are public and read-only, like any update server's files: an updater built
//! into a shipped app cannot keep a secret, and a feed shows only what any install may
//! download. Each answer is computed for the requesting install (never cached:
//! `Cache-Control: no-store`):
//!
//! - `GET /apps/{app}/{channel}.yml` (and `{channel}-mac.yml`, `{channel}-linux.yml`,
//!   `{channel}-linux-arm64.yml`): electron-updater. `latest` means `stable` unless the app
//!   has a channel named `latest`.
//! - `GET /apps/{app}/{channel}/appcast.xml?os=macos&arch=arm64`: a Sparkle appcast.
//! - `GET /apps/{app}/{channel}/tauri/{target}/{arch}/{current_version}`: Tauri's dynamic
//!   update endpoint; 204 when there is no newer release.
//!
//! The install is identified by the `x-user-staging-id` header (electron-updater sends its
//! persisted id there), else `x-sluice-install-id`, else the `install` query parameter;
//! without one it is outside every partial cohort. A manual "check for updates" says so with
//! `x-sluice-manual: 1` or `manual=1`.
//!
//! `POST /apps/{app}/sessions` takes one install's session outcomes (clean or crashed) for
//! the crash gate. It is public too, for the same reason, and bounded instead: a report
//! carries at most 1,000 sessions of a version the app has released, every field is checked,
//! and each client address is held to the server's `--rate-limit` per second.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use sluice_core::apps::feed::{electron_yml, sparkle_appcast, tauri_json, tauri_usable};
use sluice_core::apps::{Arch, Install, Os, Release, is_newer, offer};
use sluice_core::{Error, ErrorKind, Errors};

use crate::http::JsonBody;
use crate::http::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::apps::MAX_SESSIONS_PER_REPORT;
use crate::store::{App, SessionReport};

/// The longest install id accepted, in bytes.
const MAX_INSTALL_ID_LEN: usize = 128;
/// electron-updater's install id header.
pub const STAGING_ID: &str = "x-user-staging-id";
/// The install id header for the other formats.
pub const INSTALL_ID: &str = "x-sluice-install-id";
/// The header marking a manual check.
pub const MANUAL: &str = "x-sluice-manual";

/// Feed and session routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app}/sessions", post(sessions))
        .route("/apps/{app}/{file}", get(electron))
        .route("/apps/{app}/{channel}/appcast.xml", get(sparkle))
        .route(
            "/apps/{app}/{channel}/tauri/{target}/{arch}/{current_version}",
            get(tauri),
        )
}

type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn admit(state: &AppState, peer: &Peer, key: &str) -> Result<(), ApiError> {
    let address = peer.as_ref().map(|Extension(ConnectInfo(addr))| addr.ip());
    state.rate_limits().check(key, address)
}

/// What a feed request may say in its query.
#[derive(Debug, Default, Deserialize)]
struct FeedQuery {
    install: Option<String>,
    manual: Option<String>,
    os: Option<String>,
    arch: Option<String>,
}

fn truthy(text: &str) -> bool {
    matches!(text.trim(), "1" | "true" | "yes")
}

fn install_of(headers: &HeaderMap, query: &FeedQuery) -> Result<(Option<String>, bool), ApiError> {
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let id = header_text(STAGING_ID)
        .or_else(|| header_text(INSTALL_ID))
        .or(query.install.as_deref())
        .filter(|id| !id.is_empty());
    if id.is_some_and(|id| id.len() > MAX_INSTALL_ID_LEN) {
        return Err(ApiError::BadRequest(format!(
            "install: an install id is at most {MAX_INSTALL_ID_LEN} bytes"
        )));
    }
    let manual =
        header_text(MANUAL).is_some_and(truthy) || query.manual.as_deref().is_some_and(truthy);
    Ok((id.map(str::to_owned), manual))
}

async fn load_app(state: &AppState, app: &str) -> Result<App, ApiError> {
    state
        .store()
        .get_app(app)
        .await
        .map_err(|e| ApiError::from_store(e, &format!("app `{app}`")))
}

async fn channel_releases(
    state: &AppState,
    app: &App,
    channel: &str,
) -> Result<Vec<Release>, ApiError> {
    if !app.channels.iter().any(|c| c == channel) {
        return Err(ApiError::NotFound(format!(
            "app `{}` has no channel `{channel}`",
            app.key
        )));
    }
    let releases = state
        .store()
        .list_app_releases(&app.key, Some(channel))
        .await?;
    Ok(releases.into_iter().map(|r| r.release).collect())
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The channel and OS an electron-updater file name asks for.
fn electron_file(app: &App, file: &str) -> Option<(String, Os)> {
    let stem = file.strip_suffix(".yml")?;
    let known = |name: &str| app.channels.iter().any(|c| c == name);
    let channel_of = |name: &str| {
        if name == "latest" && !known("latest") {
            "stable".to_owned()
        } else {
            name.to_owned()
        }
    };
    if known(stem) {
        return Some((stem.to_owned(), Os::Windows));
    }
    for (suffix, os) in [
        ("-linux-arm64", Os::Linux),
        ("-linux", Os::Linux),
        ("-mac", Os::Macos),
    ] {
        if let Some(channel) = stem.strip_suffix(suffix) {
            return Some((channel_of(channel), os));
        }
    }
    Some((channel_of(stem), Os::Windows))
}

async fn electron(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path((app, file)): Path<(String, String)>,
    Query(query): Query<FeedQuery>,
) -> Result<Response, ApiError> {
    admit(&state, &peer, "app-feeds")?;
    let found = load_app(&state, &app).await?;
    let Some((channel, os)) = electron_file(&found, &file) else {
        return Err(ApiError::NotFound(format!(
            "no feed `{file}`: electron-updater feeds are `{{channel}}.yml`, `{{channel}}-mac.yml` or `{{channel}}-linux.yml`"
        )));
    };
    let (id, manual) = install_of(&headers, &query)?;
    let releases = channel_releases(&state, &found, &channel).await?;
    let install = Install {
        id: id.as_deref(),
        manual,
    };
    let chosen = offer(&releases, &install, |r| {
        r.artifacts.iter().any(|a| a.os == os)
    });
    let Some(yml) = chosen.and_then(|release| electron_yml(release, os)) else {
        return Err(ApiError::NotFound(format!(
            "channel `{channel}` of app `{app}` has no release for {}",
            os.as_str()
        )));
    };
    Ok(no_store(
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/yaml; charset=utf-8"),
            )],
            yml,
        )
            .into_response(),
    ))
}

async fn sparkle(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path((app, channel)): Path<(String, String)>,
    Query(query): Query<FeedQuery>,
) -> Result<Response, ApiError> {
    admit(&state, &peer, "app-feeds")?;
    let os = match query.os.as_deref() {
        None => Os::Macos,
        Some(text) => text
            .parse::<Os>()
            .map_err(|e| ApiError::BadRequest(format!("os: {e}")))?,
    };
    let arch = query
        .arch
        .as_deref()
        .map(|text| text.parse::<Arch>())
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("arch: {e}")))?;
    let found = load_app(&state, &app).await?;
    let (id, manual) = install_of(&headers, &query)?;
    let releases = channel_releases(&state, &found, &channel).await?;
    let install = Install {
        id: id.as_deref(),
        manual,
    };
    let chosen = offer(&releases, &install, |r| r.artifact(os, arch).is_some());
    let title = found.name.clone().unwrap_or_else(|| found.key.clone());
    let xml = sparkle_appcast(&title, chosen, os, arch);
    Ok(no_store(
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/rss+xml; charset=utf-8"),
            )],
            xml,
        )
            .into_response(),
    ))
}

async fn tauri(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path((app, channel, target, arch, current)): Path<(String, String, String, String, String)>,
    Query(query): Query<FeedQuery>,
) -> Result<Response, ApiError> {
    admit(&state, &peer, "app-feeds")?;
    let os = Os::from_tauri(&target).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "target: unknown Tauri target `{target}`: expected darwin, windows or linux"
        ))
    })?;
    let arch = Arch::from_tauri(&arch).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "arch: unknown Tauri arch `{arch}`: expected x86_64, aarch64 or i686"
        ))
    })?;
    let found = load_app(&state, &app).await?;
    let (id, manual) = install_of(&headers, &query)?;
    let releases = channel_releases(&state, &found, &channel).await?;
    let install = Install {
        id: id.as_deref(),
        manual,
    };
    let chosen = offer(&releases, &install, |r| tauri_usable(r, os, arch));
    let body = chosen
        .filter(|release| is_newer(release, &current))
        .and_then(|release| tauri_json(release, os, arch));
    Ok(no_store(match body {
        Some(body) => Json(body).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }))
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::InvalidBody {
        message: format!("body: {field}: {message}"),
        errors: Errors(vec![Error::new(
            ErrorKind::Invalid,
            sluice_core::Path::root().key(field),
            message,
        )]),
    }
}

async fn sessions(
    State(state): State<AppState>,
    peer: Peer,
    Path(app): Path<String>,
    JsonBody(report): JsonBody<SessionReport>,
) -> Result<Response, ApiError> {
    admit(&state, &peer, "app-sessions")?;
    if report.install_id.is_empty() || report.install_id.len() > MAX_INSTALL_ID_LEN {
        return Err(invalid(
            "installId",
            format!("must be 1 to {MAX_INSTALL_ID_LEN} bytes"),
        ));
    }
    if report.clean.saturating_add(report.crashed) > MAX_SESSIONS_PER_REPORT {
        return Err(invalid(
            "crashed",
            format!(
                "a report carries at most {MAX_SESSIONS_PER_REPORT} sessions (clean + crashed)"
            ),
        ));
    }
    let found = load_app(&state, &app).await?;
    if !found.channels.contains(&report.channel) {
        return Err(invalid(
            "channel",
            format!("app `{app}` has no channel `{}`", report.channel),
        ));
    }
    // Only versions the app released count, so a typo or a forged version cannot grow
    // the table without bound.
    let released = state
        .store()
        .list_app_releases(&app, None)
        .await?
        .iter()
        .any(|r| r.release.version == report.version);
    if !released {
        return Err(invalid(
            "version",
            format!("app `{app}` has no release {}", report.version),
        ));
    }
    state
        .store()
        .record_sessions(&app, &report, now_ms())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"accepted": true}))).into_response())
}
