//! Dry runs of staged rule changes: `POST /api/v1/dry-runs` starts one,
//! `GET /api/v1/dry-runs[?env=&flag=]` lists them, `GET /api/v1/dry-runs/{id}` reads one with
//! its would-change report, `POST /api/v1/dry-runs/{id}/stop` stops it, and
//! `POST /api/v1/dry-runs/{id}/apply` writes the staged rules into the flag. Admin only.
//!
//! Starting and stopping are audited configuration writes, so SDKs receive the running dry
//! runs with their configuration at once. They are not gated by environment protection: a
//! dry run changes what nobody is served.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_core::Errors;
use sluice_core::dry_run::{DryRunTotals, apply_staged, compile_staged, staged_from_value};

use crate::http::auth::Caller;
use crate::http::changes::gate;
use crate::http::error::ApiError;
use crate::http::{JsonBody, OptionalJsonBody, change, refuse_in_gitops};
use crate::state::AppState;
use crate::store::{ChangePayload, DryRunStatus, NewDryRun, StoredDryRun};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/dry-runs", post(start).get(list))
        .route("/api/v1/dry-runs/{id}", get(read))
        .route("/api/v1/dry-runs/{id}/stop", post(stop))
        .route("/api/v1/dry-runs/{id}/apply", post(apply))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    flag: String,
    env: String,
    /// An environment override (`rules`, `default_variant`, `enabled`) or a list of rules.
    staged: Value,
    reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopBody {
    reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    reason: Option<String>,
    /// Apply although the flag changed since the dry run started.
    force: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    env: Option<String>,
    flag: Option<String>,
}

/// Errors about the staged rules, placed under the body's `staged` field.
fn under_staged(errors: Errors) -> ApiError {
    let errors = Errors(
        errors
            .0
            .into_iter()
            .map(|mut error| {
                error.path = sluice_core::Path::root()
                    .key("staged")
                    .join(error.path.segments());
                error
            })
            .collect(),
    );
    ApiError::InvalidBody {
        message: format!("body: {errors}"),
        errors,
    }
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("dry run `{id}` does not exist")))
}

fn what(id: i64) -> String {
    format!("dry run `{id}`")
}

async fn start(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<StartBody>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let staged = staged_from_value(body.staged).map_err(under_staged)?;
    let new = NewDryRun {
        env: body.env,
        flag: body.flag,
        staged,
    };
    let change = change(&caller, &headers, body.reason);
    let committed = match state.store().start_dry_run(&change, &new).await {
        Ok(committed) => committed,
        Err(crate::store::StoreError::Invalid(errors)) => return Err(under_staged(errors)),
        Err(crate::store::StoreError::AlreadyExists) => {
            return Err(ApiError::Conflict(format!(
                "flag `{}` already has a running dry run in `{}`; stop it first",
                new.flag, new.env
            )));
        }
        Err(error) => {
            return Err(ApiError::from_store(
                error,
                &format!("flag `{}` in environment `{}`", new.flag, new.env),
            ));
        }
    };
    state.reload().await.ok();
    let mut view = view(&state, &committed.value).await?;
    // SDKs evaluate the dry run from this configuration version on.
    view["configVersion"] = json!(committed.config_version);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let dry_runs = state
        .store()
        .list_dry_runs(query.env.as_deref(), query.flag.as_deref())
        .await?;
    Ok(Json(json!({ "dryRuns": dry_runs })))
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let id = parse_id(&id)?;
    // What this replica counted since its last flush belongs in the report.
    if let Err(error) = crate::dry_runs::flush(&state).await {
        tracing::warn!(%error, "dry-run tallies not written before a report");
    }
    let dry_run = state
        .store()
        .get_dry_run(id)
        .await
        .map_err(|e| ApiError::from_store(e, &what(id)))?;
    Ok(Json(view(&state, &dry_run).await?))
}

async fn stop(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<StopBody>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let id = parse_id(&id)?;
    let committed = state
        .store()
        .stop_dry_run(&change(&caller, &headers, body.reason), id)
        .await
        .map_err(|e| ApiError::from_store(e, &what(id)))?;
    state.reload().await.ok();
    Ok(Json(view(&state, &committed.value).await?))
}

/// Writes the staged rules into the flag, as `PUT /api/v1/flags/{key}` would (so a protected
/// environment files a change request and answers 202, and the dry run keeps running until
/// it is applied), then stops the dry run. The flag must not have changed since the dry run
/// started, unless `force`: what was measured is what is applied.
async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<ApplyBody>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let id = parse_id(&id)?;
    let dry_run = state
        .store()
        .get_dry_run(id)
        .await
        .map_err(|e| ApiError::from_store(e, &what(id)))?;
    if dry_run.status != DryRunStatus::Running {
        return Err(ApiError::Conflict(format!(
            "{} is stopped; start a new one to apply its rules",
            what(id)
        )));
    }
    let flag = state
        .store()
        .get_flag(&dry_run.flag)
        .await
        .map_err(|e| ApiError::from_store(e, &format!("flag `{}`", dry_run.flag)))?;
    if flag.version != dry_run.flag_version && !body.force.unwrap_or(false) {
        return Err(ApiError::Conflict(format!(
            "flag `{}` changed since {} started (version {} then, {} now): its report measured other rules; stop it and start again, or apply with `force`",
            dry_run.flag,
            what(id),
            dry_run.flag_version,
            flag.version
        )));
    }
    let mut definition = flag.definition;
    apply_staged(&mut definition, &dry_run.env, &dry_run.staged);
    let reason = body
        .reason
        .or_else(|| Some(format!("applies dry run {id}")));
    let payload = ChangePayload::FlagUpdate {
        key: dry_run.flag.clone(),
        definition: definition.clone(),
    };
    if let Some(accepted) = gate(
        &state,
        &caller,
        &headers,
        payload,
        reason.clone(),
        Some(flag.version),
    )
    .await?
    {
        return Ok(accepted);
    }
    let change = change(&caller, &headers, reason);
    state
        .store()
        .update_flag(&change, &dry_run.flag, &definition, Some(flag.version))
        .await
        .map_err(|e| ApiError::from_store(e, &format!("flag `{}`", dry_run.flag)))?;
    let stopped = state
        .store()
        .stop_dry_run(&change, id)
        .await
        .map_err(|e| ApiError::from_store(e, &what(id)))?;
    state.reload().await.ok();
    Ok(Json(view(&state, &stopped.value).await?).into_response())
}

/// A dry run with its report: what its evaluators counted, and whether its staged rules
/// still compile against the configuration as it is now.
async fn view(state: &AppState, dry_run: &StoredDryRun) -> Result<Value, ApiError> {
    let tallies = state.store().dry_run_tallies(dry_run.id).await?;
    let totals = DryRunTotals::from_transitions(&tallies.transitions);
    let problem = if dry_run.status == DryRunStatus::Running {
        let snapshot = state.store().snapshot(None).await?;
        compile_staged(&snapshot.file, &dry_run.flag, &dry_run.env, &dry_run.staged)
            .err()
            .map(|errors| {
                format!("the staged rules no longer compile, so nothing evaluates them: {errors}")
            })
    } else {
        None
    };
    let mut value = json!(dry_run);
    value["report"] = json!({
        "evaluations": totals.evaluations,
        "wouldChange": totals.would_change,
        "wouldChangeShare": totals.would_change_share(),
        "transitions": totals.transitions,
        "samples": tallies.samples,
    });
    value["problem"] = json!(problem);
    Ok(value)
}
