//! `/api/v1/export` and `/api/v1/import`: a whole flags file in the core's format.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sluice_core::{Document, Format, Source};

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::{change, refuse_in_gitops};
use crate::state::AppState;

/// Import and export routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/export", get(export))
        .route("/api/v1/import", post(import))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    format: Option<String>,
}

async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let snapshot = state.store().snapshot(None).await?;
    let version = HeaderValue::from(snapshot.config_version);
    match query.format.as_deref().unwrap_or("json") {
        "json" => Ok(([("x-sluice-config-version", version)], Json(snapshot.file)).into_response()),
        "yaml" => {
            let text =
                yaml_serde::to_string(&snapshot.file).map_err(|e| ApiError::Internal(e.into()))?;
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/yaml"),
                    ),
                    (
                        header::HeaderName::from_static("x-sluice-config-version"),
                        version,
                    ),
                ],
                text,
            )
                .into_response())
        }
        other => Err(ApiError::BadRequest(format!(
            "unknown format `{other}`: use json or yaml"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    /// Report what would change without writing.
    #[serde(default)]
    dry_run: bool,
    /// Why, for the audit log.
    reason: Option<String>,
}

/// Replaces every flag and segment with the file's, in one audited transaction. The body is
/// YAML when its content type says so, JSON otherwise. `If-Match` may carry the expected
/// configuration version.
async fn import(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<ImportQuery>,
    body: String,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let yaml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("yaml"));
    let format = if yaml { Format::Yaml } else { Format::Json };
    let source = Source::parse(Some("request body"), &body, format).map_err(ApiError::Invalid)?;
    source.compile(None).map_err(ApiError::Invalid)?;
    let Document::Sluice(file) = source.into_document() else {
        return Err(ApiError::BadRequest(
            "flagd documents cannot be imported; serve them with `sluice serve --flags`".into(),
        ));
    };
    let expected = crate::http::if_match(&headers)?;
    if query.dry_run {
        let current = state.store().snapshot(None).await?;
        let diff = sluice_core::diff::diff(&current.file, &file);
        return Ok(Json(json!({"dryRun": true, "changes": diff})).into_response());
    }
    refuse_protected(&state, &file).await?;
    let committed = state
        .store()
        .import(&change(&caller, &headers, query.reason), &file, expected)
        .await?;
    state.reload().await.ok();
    Ok((
        StatusCode::OK,
        Json(json!({"configVersion": committed.config_version, "summary": committed.value})),
    )
        .into_response())
}

/// Refuses an import that would change a protected environment: change requests are per
/// flag or segment, so such changes go through the flag and segment routes instead.
async fn refuse_protected(state: &AppState, file: &sluice_core::FlagFile) -> Result<(), ApiError> {
    let protections = state.store().protections().await?;
    if protections.is_empty() {
        return Ok(());
    }
    let current = state.store().snapshot(None).await?.file;
    let environments: Vec<String> = current.environments.clone().unwrap_or_default();
    let mut touched: Vec<String> = Vec::new();
    let segments_changed = current.segments.len() != file.segments.len()
        || current
            .segments
            .iter()
            .any(|(name, def)| file.segments.get(name) != Some(def));
    if segments_changed {
        touched.extend(environments.iter().cloned());
    }
    let keys: std::collections::BTreeSet<&String> =
        current.flags.keys().chain(file.flags.keys()).collect();
    for key in keys {
        touched.extend(sluice_core::governance::flag_touches(
            current.flags.get(key),
            file.flags.get(key),
            &environments,
        ));
    }
    let protected: std::collections::BTreeSet<&String> = touched
        .iter()
        .filter(|name| protections.contains_key(*name))
        .collect();
    if protected.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = protected.iter().map(|n| n.as_str()).collect();
    Err(ApiError::Conflict(format!(
        "this import changes protected environment(s) {}: change those flags and segments \
         one by one, as change requests",
        names.join(", ")
    )))
}
