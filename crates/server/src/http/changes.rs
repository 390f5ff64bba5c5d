//! `/api/v1/change-requests`: changes to protected environments that wait for approvals.
//!
//! Writes that change how a protected environment serves (see `docs/governance.md` for the
//! exact scope) do not apply: the route files a change request and answers 202 with it.
//! [`gate`] is that check, shared by the flag, segment and rollout routes. Other admins
//! approve it (`POST …/{id}/approve`); the approval that reaches the required number applies
//! it at once, through the same store write the direct route would have made. A rejected
//! request never applies; one whose resource moved past its base version fails with 409 and
//! changes nothing. Turning a flag off, rolling back and killing a rollout are never gated.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_core::governance::{Protection, Requirement, flag_touches, requirement};
use sluice_core::rollout::{Command, Transition, command};

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::{JsonBody, change, refuse_in_gitops};
use crate::state::AppState;
use crate::store::{
    ChangePayload, ChangeRequest, ChangeStatus, GatedCommand, NewChangeRequest, StoreError,
};

/// Change request routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/change-requests", get(list).post(create))
        .route("/api/v1/change-requests/{id}", get(read))
        .route("/api/v1/change-requests/{id}/approve", post(approve))
        .route("/api/v1/change-requests/{id}/reject", post(reject))
        .route("/api/v1/change-requests/{id}/apply", post(apply))
}

fn what(id: &str) -> String {
    format!("change request `{id}`")
}

/// A store error about a change request: refusals and conflicts are 409s with their reason.
fn store_error(error: StoreError, what: &str) -> ApiError {
    match error {
        StoreError::InUse { by } => ApiError::Conflict(by),
        StoreError::Conflict { current } => ApiError::Conflict(format!(
            "{what}: the resource changed since the change was requested (it is now at \
             version {current}); nothing was changed; file the change again"
        )),
        other => ApiError::from_store(other, what),
    }
}

/// What a write would need and the resource version it starts from, or `None` when it
/// touches no protected environment.
async fn requirement_of(
    state: &AppState,
    payload: &ChangePayload,
) -> Result<(Option<Requirement>, i64), ApiError> {
    let store = state.store();
    let stored = store.protections().await?;
    let protections: BTreeMap<String, Protection> = stored
        .iter()
        .map(|(name, p)| (name.clone(), p.protection))
        .collect();
    if protections.is_empty() && !matches!(payload, ChangePayload::EnvironmentProtect { .. }) {
        return Ok((None, 0));
    }
    let environments: Vec<String> = store
        .list_environments()
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let flag = |key: &str| {
        let key = key.to_owned();
        async move {
            store
                .get_flag(&key)
                .await
                .map_err(|e| ApiError::from_store(e, &format!("flag `{key}`")))
        }
    };
    let segment_version = |name: &str| {
        let name = name.to_owned();
        async move {
            store
                .get_segment(&name)
                .await
                .map(|s| s.version)
                .map_err(|e| ApiError::from_store(e, &format!("segment `{name}`")))
        }
    };
    Ok(match payload {
        ChangePayload::FlagCreate { key, definition } => {
            let base = match store.get_flag(key).await {
                Ok(existing) => existing.version,
                Err(StoreError::NotFound) => 0,
                Err(error) => return Err(error.into()),
            };
            let touched = flag_touches(None, Some(definition), &environments);
            (requirement(&touched, &protections), base)
        }
        ChangePayload::FlagUpdate { key, definition } => {
            let current = flag(key).await?;
            let touched = flag_touches(Some(&current.definition), Some(definition), &environments);
            (requirement(&touched, &protections), current.version)
        }
        ChangePayload::FlagDelete { key } => {
            let current = flag(key).await?;
            let touched = flag_touches(Some(&current.definition), None, &environments);
            (requirement(&touched, &protections), current.version)
        }
        ChangePayload::FlagRestore { key, environment } => {
            let current = flag(key).await?;
            let mut after = current.definition.clone();
            match environment {
                Some(name) => {
                    after.environments.entry(name.clone()).or_default().enabled = Some(true)
                }
                None => after.enabled = true,
            }
            let touched = flag_touches(Some(&current.definition), Some(&after), &environments);
            (requirement(&touched, &protections), current.version)
        }
        // Segments are shared by every environment.
        ChangePayload::SegmentUpdate { name, .. } | ChangePayload::SegmentDelete { name } => {
            let base = segment_version(name).await?;
            (requirement(&environments, &protections), base)
        }
        ChangePayload::RolloutCommand { rollout, .. } => {
            let stored = store
                .get_rollout(rollout)
                .await
                .map_err(|e| ApiError::from_store(e, &format!("rollout `{rollout}`")))?;
            let base = i64::try_from(stored.state.transition_seq).unwrap_or(i64::MAX);
            (
                requirement(
                    std::slice::from_ref(&stored.state.environment),
                    &protections,
                ),
                base,
            )
        }
        ChangePayload::EnvironmentProtect { name, protection } => {
            let current = store
                .protection(name)
                .await
                .map_err(|e| ApiError::from_store(e, &format!("environment `{name}`")))?;
            let weaker = protection.required_approvals < current.protection.required_approvals
                || (protection.allow_self_approval && !current.protection.allow_self_approval);
            let needs = (current.protection.is_protected() && weaker).then(|| Requirement {
                environments: vec![name.clone()],
                required_approvals: current.protection.required_approvals,
                allow_self_approval: current.protection.allow_self_approval,
            });
            (needs, current.version)
        }
    })
}

/// The check in front of every gated write: `Ok(None)` when the write may go ahead, or the
/// 202 response carrying the change request filed instead. `expected_version` is the
/// request's `If-Match`: a stale one is 412, as for the direct write.
pub async fn gate(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    payload: ChangePayload,
    reason: Option<String>,
    expected_version: Option<i64>,
) -> Result<Option<Response>, ApiError> {
    let filed = gate_request(state, caller, headers, payload, reason, expected_version).await?;
    Ok(filed.as_ref().map(accepted))
}

/// [`gate`], returning the change request filed instead of a response.
pub async fn gate_request(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    payload: ChangePayload,
    reason: Option<String>,
    expected_version: Option<i64>,
) -> Result<Option<ChangeRequest>, ApiError> {
    let (needed, base) = requirement_of(state, &payload).await?;
    let Some(needed) = needed else {
        return Ok(None);
    };
    if let Some(expected) = expected_version
        && expected != base
    {
        return Err(ApiError::PreconditionFailed { current: base });
    }
    let filed = file(state, caller, headers, payload, reason, needed, base).await?;
    Ok(Some(filed))
}

async fn file(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    payload: ChangePayload,
    reason: Option<String>,
    needed: Requirement,
    base: i64,
) -> Result<ChangeRequest, ApiError> {
    let committed = state
        .store()
        .create_change_request(
            &change(caller, headers, reason),
            &NewChangeRequest {
                payload,
                base_version: base,
                requirement: needed,
            },
        )
        .await?;
    Ok(committed.value)
}

/// The 202 answer of a gated write.
pub fn accepted(request: &ChangeRequest) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "changeRequest": view(request) })),
    )
        .into_response()
}

/// A change request for the API.
pub fn view(request: &ChangeRequest) -> Value {
    let mut body = json!(request);
    body["approvalsNeeded"] = json!(
        usize::try_from(request.requirement.required_approvals)
            .unwrap_or(usize::MAX)
            .saturating_sub(request.approvals.len())
    );
    body
}

/// Query parameters of `GET /api/v1/change-requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<ChangeStatus>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let requests = state
        .store()
        .list_change_requests(query.status, query.limit.unwrap_or(100))
        .await?;
    Ok(Json(
        json!({ "changeRequests": requests.iter().map(view).collect::<Vec<_>>() }),
    ))
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let request = state
        .store()
        .get_change_request(&id)
        .await
        .map_err(|e| ApiError::from_store(e, &what(&id)))?;
    Ok(Json(view(&request)))
}

/// The body of `POST /api/v1/change-requests`: a change to file explicitly.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    payload: ChangePayload,
    reason: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let (needed, base) = requirement_of(&state, &body.payload).await?;
    let Some(needed) = needed else {
        return Err(ApiError::Conflict(
            "this change touches no protected environment: make it directly".into(),
        ));
    };
    let filed = file(
        &state,
        &caller,
        &headers,
        body.payload,
        body.reason,
        needed,
        base,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&filed))).into_response())
}

/// The optional body of approve, reject and apply.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepBody {
    reason: Option<String>,
    /// For approve: `false` records the approval without applying, even when it completes
    /// the count (to apply later with `apply`, such as in a deploy window).
    apply: Option<bool>,
}

fn step_body(bytes: &[u8]) -> Result<StepBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(StepBody::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            ApiError::BadRequest(format!("body: reason: {e}"))
        } else {
            ApiError::BadRequest(format!("body: {e}"))
        }
    })
}

async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let body = step_body(&bytes)?;
    let committed = state
        .store()
        .approve_change_request(&change(&caller, &headers, body.reason), &id)
        .await
        .map_err(|e| store_error(e, &what(&id)))?;
    if committed.value.status != ChangeStatus::Approved || body.apply == Some(false) {
        return Ok(Json(view(&committed.value)));
    }
    // The approval that completes the count applies the change at once.
    let applied = run_apply(&state, &caller, &headers, &committed.value).await?;
    Ok(Json(view(&applied)))
}

async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let body = step_body(&bytes)?;
    let committed = state
        .store()
        .reject_change_request(&change(&caller, &headers, body.reason), &id)
        .await
        .map_err(|e| store_error(e, &what(&id)))?;
    Ok(Json(view(&committed.value)))
}

async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let request = state
        .store()
        .get_change_request(&id)
        .await
        .map_err(|e| ApiError::from_store(e, &what(&id)))?;
    let applied = run_apply(&state, &caller, &headers, &request).await?;
    Ok(Json(view(&applied)))
}

/// Applies an approved request, computing a rollout command's transition from the rollout
/// at its base seq, then reloads the served configuration.
async fn run_apply(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    request: &ChangeRequest,
) -> Result<ChangeRequest, ApiError> {
    let change = change(caller, headers, None);
    let transition = match &request.payload {
        ChangePayload::RolloutCommand { rollout, command } => {
            Some(rollout_transition(state, request, rollout, *command, change.now_ms).await?)
        }
        _ => None,
    };
    let committed = state
        .store()
        .apply_change_request(&change, &request.id, transition.as_ref())
        .await
        .map_err(|e| store_error(e, &what(&request.id)))?;
    state.reload().await.ok();
    Ok(committed.value)
}

async fn rollout_transition(
    state: &AppState,
    request: &ChangeRequest,
    id: &str,
    gated: GatedCommand,
    now_ms: i64,
) -> Result<Transition, ApiError> {
    let rollout = state
        .store()
        .get_rollout(id)
        .await
        .map_err(|e| ApiError::from_store(e, &format!("rollout `{id}`")))?;
    let seq = i64::try_from(rollout.state.transition_seq).unwrap_or(i64::MAX);
    if seq != request.base_version {
        return Err(store_error(
            StoreError::Conflict { current: seq },
            &what(&request.id),
        ));
    }
    let actor = request.author.clone();
    let reason = request
        .reason
        .clone()
        .unwrap_or_else(|| format!("change request {}", request.id));
    let instruction = match gated {
        GatedCommand::Start => Command::Start { actor },
        GatedCommand::Resume => Command::Resume { actor },
        GatedCommand::Promote => Command::Promote { reason, actor },
    };
    command(&rollout.state, now_ms, instruction).map_err(|e| ApiError::Conflict(e.to_string()))
}
