//! `/api/v1/releases` and `/api/v1/reports/releases`: releases, their checklist gate,
//! evidence, override, start, rollback drills, history and the learning report.
//!
//! `POST /api/v1/releases` takes a release (see docs/releases.md), applies the server's
//! policy and stores the effective policy with the rule that chose it. Every write needs an
//! admin token and is one audited write; reads need an admin token too, since a release's
//! rollback procedure and escalation path are internal.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_core::model::FlagDef;
use sluice_core::release::{Evidence, Item, Override, ReleaseSpec, report};
use sluice_core::rollout::{Command, CommandError, RolloutState, command};
use sluice_core::{Error, ErrorKind, Errors};

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::{JsonBody, change, refuse_in_gitops};
use crate::releases::{DrillError, checklist, release_records, run_drill, timeline};
use crate::state::{AppState, now_ms};
use crate::store::{NewRelease, NewRollout, ReleaseChange, StoreError, StoredRelease};

/// Release routes answered within the request timeout.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/releases", get(list).post(create))
        .route("/api/v1/releases/{id}", get(read))
        .route("/api/v1/releases/{id}/checklist", get(read_checklist))
        .route("/api/v1/releases/{id}/evidence", post(add_evidence))
        .route("/api/v1/releases/{id}/override", post(add_override))
        .route("/api/v1/releases/{id}/start", post(start))
        .route("/api/v1/reports/releases", get(read_report))
}

/// Drills wait for SDK acknowledgements, up to their own timeout, so they are not under the
/// request timeout.
pub fn drill_router() -> Router<AppState> {
    Router::new().route("/api/v1/releases/{id}/drills", post(drill))
}

fn what(id: &str) -> String {
    format!("release `{id}`")
}

fn invalid(field: &str, message: String) -> ApiError {
    let error = Error::new(
        ErrorKind::Invalid,
        sluice_core::Path::root().key(field),
        message.clone(),
    );
    ApiError::InvalidBody {
        message: format!("body: {field}: {message}"),
        errors: Errors(vec![error]),
    }
}

fn named(caller: &Caller) -> String {
    format!("{} ({})", caller.token.name, caller.token.id)
}

async fn load(state: &AppState, id: &str) -> Result<StoredRelease, ApiError> {
    state
        .store()
        .get_release(id)
        .await
        .map_err(|e| ApiError::from_store(e, &what(id)))
}

/// A release for the API, with its checklist.
pub(crate) async fn view(state: &AppState, release: &StoredRelease) -> Result<Value, ApiError> {
    let checklist = checklist(state.store(), release, now_ms()).await?;
    let rollouts = state.store().release_rollouts(&release.id).await?;
    Ok(json!({
        "id": release.id,
        "name": release.name,
        "spec": release.spec,
        "effectivePolicy": {
            "rule": release.policy.rule,
            "reason": release.policy.reason,
            "template": release.policy.template,
            "bakePercent": release.policy.bake_percent,
            "samplesPercent": release.policy.samples_percent,
            "approvals": release.policy.approvals,
            "minBakeSecs": release.policy.min_bake.as_secs(),
            "requiredStages": release.policy.required_stages,
            "missingStages": release.policy.missing_stages(&release.plan),
        },
        "plan": release.plan,
        "stages": release.plan.stages.iter().map(|s| json!({
            "label": s.label(),
            "bakeSecs": s.bake.as_secs(),
            "approvals": s.approvals,
        })).collect::<Vec<_>>(),
        "checklist": checklist,
        "override": release.override_,
        "evidence": release.evidence,
        "rollouts": rollouts,
        "createdBy": release.created_by,
        "createdMs": release.created_ms,
        "updatedMs": release.updated_ms,
        "version": release.version,
    }))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let spec = ReleaseSpec::from_value(body).map_err(|errors| {
        let message = errors
            .iter()
            .next()
            .map(|e| format!("body: {}: {}", e.path, e.message))
            .unwrap_or_else(|| "body: invalid release".into());
        ApiError::InvalidBody { message, errors }
    })?;
    let policy = state
        .settings()
        .policy
        .choose(spec.provenance.kind, spec.risk)
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "the release policy covers no {} change of {} risk",
                spec.provenance.kind.as_str(),
                spec.risk.as_str()
            ))
        })?;
    let plan = spec.plan(&policy);
    let change = change(&caller, &headers, None);
    let committed = state
        .store()
        .create_release(&change, &NewRelease { spec, policy, plan })
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists => {
                invalid("name", "a release with this name already exists".into())
            }
            other => ApiError::from(other),
        })?;
    let body = view(&state, &committed.value).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let releases = state.store().list_releases().await?;
    let now = now_ms();
    let mut items = Vec::new();
    for release in &releases {
        let checklist = checklist(state.store(), release, now).await?;
        items.push(json!({
            "id": release.id,
            "name": release.name,
            "provenance": release.spec.provenance.kind,
            "risk": release.spec.risk,
            "flags": release.spec.flags,
            "rule": release.policy.rule,
            "checklistPassed": checklist.passed,
            "gateOpen": checklist.open,
            "overridden": release.override_.is_some(),
            "createdMs": release.created_ms,
        }));
    }
    Ok(Json(json!({ "releases": items })))
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let release = load(&state, &id).await?;
    let mut body = view(&state, &release).await?;
    body["timeline"] = json!(timeline(state.store(), &release).await?);
    Ok(Json(body))
}

async fn read_checklist(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let release = load(&state, &id).await?;
    let checklist = checklist(state.store(), &release, now_ms()).await?;
    Ok(Json(json!(checklist)))
}

/// The body of `POST /api/v1/releases/{id}/evidence`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceBody {
    item: String,
    text: Option<String>,
    link: Option<String>,
}

async fn add_evidence(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<EvidenceBody>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let Some(item) = Item::from_name(&body.item) else {
        let names: Vec<&str> = Item::ALL.iter().map(|i| i.name()).collect();
        return Err(invalid(
            "item",
            format!(
                "unknown item `{}`; expected one of {}",
                body.item,
                names.join(", ")
            ),
        ));
    };
    let blank = |t: &Option<String>| t.as_deref().is_none_or(|t| t.trim().is_empty());
    if blank(&body.text) && blank(&body.link) {
        return Err(invalid(
            "text",
            "evidence needs a `text` or a `link`".into(),
        ));
    }
    let change = change(&caller, &headers, None);
    let evidence = Evidence {
        item,
        text: body.text,
        link: body.link,
        by: named(&caller),
        at_ms: change.now_ms,
    };
    let committed = state
        .store()
        .change_release(&change, &id, &ReleaseChange::Evidence(evidence))
        .await
        .map_err(|e| ApiError::from_store(e, &what(&id)))?;
    Ok(Json(view(&state, &committed.value.0).await?))
}

/// The body of `POST /api/v1/releases/{id}/override`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    reason: Option<String>,
}

async fn add_override(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<OverrideBody>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let reason = body.reason.unwrap_or_default();
    if reason.trim().is_empty() {
        return Err(invalid("reason", "an override needs a reason".into()));
    }
    let change = change(&caller, &headers, Some(reason.clone()));
    let given = Override {
        reason,
        by: named(&caller),
        at_ms: change.now_ms,
    };
    let committed = state
        .store()
        .change_release(&change, &id, &ReleaseChange::Override(given))
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists => ApiError::Conflict(format!(
                "{} was already overridden; an override is kept for good",
                what(&id)
            )),
            other => ApiError::from_store(other, &what(&id)),
        })?;
    Ok(Json(view(&state, &committed.value.0).await?))
}

/// The body of `POST /api/v1/releases/{id}/start`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    env: String,
    treatment: Option<String>,
    control: Option<String>,
    reason: Option<String>,
}

fn variants(body: &StartBody, key: &str, flag: &FlagDef) -> Result<(String, String), ApiError> {
    let control = body.control.clone().unwrap_or_else(|| {
        flag.environments
            .get(&body.env)
            .and_then(|o| o.default_variant.clone())
            .unwrap_or_else(|| flag.default_variant.clone())
    });
    let treatment = match &body.treatment {
        Some(treatment) => treatment.clone(),
        None => {
            let others: Vec<&String> = flag.variants.keys().filter(|v| **v != control).collect();
            match others.as_slice() {
                [only] => (*only).clone(),
                _ => {
                    return Err(invalid(
                        "treatment",
                        format!(
                            "required: flag `{key}` has {} variants besides `{control}`",
                            others.len()
                        ),
                    ));
                }
            }
        }
    };
    Ok((treatment, control))
}

async fn start(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<StartBody>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let release = load(&state, &id).await?;
    let change = change(
        &caller,
        &headers,
        Some(
            body.reason
                .clone()
                .unwrap_or_else(|| format!("release `{}`", release.name)),
        ),
    );
    let mut started = Vec::new();
    for key in &release.spec.flags {
        let flag = match state.store().get_flag(key).await {
            Ok(flag) => flag,
            Err(StoreError::NotFound) => {
                return Err(invalid("flags", format!("flag `{key}` does not exist")));
            }
            Err(error) => return Err(error.into()),
        };
        let (treatment, control) = variants(&body, key, &flag.definition)?;
        let pending = RolloutState::new(release.plan.clone(), key, &body.env, treatment, control);
        let start = match command(
            &pending,
            change.now_ms,
            Command::Start {
                actor: caller.id().to_owned(),
            },
        ) {
            Ok(transition) => Some(transition),
            Err(CommandError::NeedsApprovals { .. }) => None,
            Err(error) => return Err(ApiError::Conflict(error.to_string())),
        };
        let committed = state
            .store()
            .start_release_rollout(
                &change,
                &release.id,
                &NewRollout {
                    state: pending,
                    start,
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::InUse { by } => ApiError::Conflict(format!(
                    "flag `{key}` already has a rollout in this environment that is not finished: {by}"
                )),
                other => ApiError::from_store(other, &format!("flag `{key}`")),
            })?;
        started.push(crate::http::rollouts::view(&committed.value.rollout));
    }
    state.reload().await.ok();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "release": release.name, "rollouts": started })),
    )
        .into_response())
}

/// The body of `POST /api/v1/releases/{id}/drills`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DrillBody {
    env: String,
    /// How long to wait for acknowledgements, in seconds; 30 by default, 600 at most.
    timeout_secs: Option<f64>,
}

async fn drill(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DrillBody>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let timeout = match body.timeout_secs {
        None => Duration::from_secs(30),
        Some(secs) if secs.is_finite() && secs > 0.0 && secs <= 600.0 => {
            Duration::from_secs_f64(secs)
        }
        Some(secs) => {
            return Err(invalid(
                "timeoutSecs",
                format!("{secs} is out of range: more than 0 and at most 600 seconds"),
            ));
        }
    };
    let release = load(&state, &id).await?;
    let request_id = headers
        .get(crate::http::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let report = run_drill(
        &state,
        &release,
        &body.env,
        timeout,
        caller.id(),
        request_id.as_deref(),
    )
    .await
    .map_err(|e| match e {
        DrillError::UnknownEnvironment(_) => invalid("env", e.to_string()),
        DrillError::UnknownFlag(_) => ApiError::Conflict(e.to_string()),
        DrillError::Store(error) => ApiError::from_store(error, &what(&id)),
    })?;
    Ok(Json(json!(report)))
}

/// Query parameters of `GET /api/v1/reports/releases`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    /// Releases created at or after this time, in Unix milliseconds.
    since: Option<i64>,
}

async fn read_report(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let since = query.since.unwrap_or(0);
    let records = release_records(state.store(), since).await?;
    let report = report(&records);
    Ok(Json(json!({ "since": since, "report": report })))
}
