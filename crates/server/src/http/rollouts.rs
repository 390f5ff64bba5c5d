//! `/api/v1/rollouts`: start staged rollouts, watch them, and steer them by hand.
//!
//! `POST /api/v1/rollouts` creates a rollout of one flag in one environment from a `plan` or
//! a `template` and starts it at once (it stays `pending` when its first stage needs
//! approvals). `GET /api/v1/rollouts` lists them; `GET /api/v1/rollouts/{id}` shows one with
//! the current stage's window, what the controller would decide now with every guardrail's
//! numbers, and the history of transitions with their evidence: why it is where it is.
//! `POST /api/v1/rollouts/{id}/{start|pause|resume|promote|rollback|kill|approve}` are
//! people's commands; each goes through the same pure controller and the same audited,
//! idempotent write as the controller's own transitions. Writes need an admin token; reads an
//! admin token, or a server token of the rollout's environment.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_core::model::FlagDef;
use sluice_core::rollout::{
    Command, CommandError, RolloutPlan, RolloutState, StageDecision, Template, Window, command,
};
use sluice_core::{Error, ErrorKind, Errors};

use crate::http::auth::Caller;
use crate::http::changes::{gate, gate_request};
use crate::http::error::ApiError;
use crate::http::{JsonBody, change, refuse_in_gitops};
use crate::rollouts::{RolloutError, current_decision, run_command};
use crate::state::{AppState, now_ms};
use crate::store::rollouts::kind_name;
use crate::store::{
    ChangePayload, GatedCommand, NewRollout, RolloutFilter, StoreError, StoredRollout, TokenAccess,
    TransitionRecord,
};

/// Rollout routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rollouts", get(list).post(create))
        .route("/api/v1/rollouts/{id}", get(read))
        .route("/api/v1/rollouts/{id}/start", post(start))
        .route("/api/v1/rollouts/{id}/pause", post(pause))
        .route("/api/v1/rollouts/{id}/resume", post(resume))
        .route("/api/v1/rollouts/{id}/promote", post(promote))
        .route("/api/v1/rollouts/{id}/rollback", post(rollback))
        .route("/api/v1/rollouts/{id}/kill", post(kill))
        .route("/api/v1/rollouts/{id}/approve", post(approve))
}

fn what(id: &str) -> String {
    format!("rollout `{id}`")
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

/// A store error about a rollout write: conflicts are about the rollout's state, not `If-Match`.
fn store_error(error: StoreError, what: &str) -> ApiError {
    match error {
        StoreError::Conflict { .. } => ApiError::Conflict(format!(
            "{what} changed while this was decided; read it again and retry"
        )),
        StoreError::InUse { by } => ApiError::Conflict(format!(
            "the flag already has a rollout in this environment that is not finished: {by}"
        )),
        other => ApiError::from_store(other, what),
    }
}

fn rollout_error(error: RolloutError, what: &str) -> ApiError {
    match error {
        RolloutError::Command(error) => ApiError::Conflict(error.to_string()),
        RolloutError::Store(error) => store_error(error, what),
        RolloutError::Held(reason) => ApiError::Conflict(format!(
            "held by the release checklist: {reason}; record evidence, or an admin may override"
        )),
    }
}

/// The body of `POST /api/v1/rollouts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// The flag rolled out.
    flag: String,
    /// The environment.
    env: String,
    /// A plan, in the plan format.
    plan: Option<Value>,
    /// A built-in plan: `standard` or `cautious`.
    template: Option<String>,
    /// The new variant; the flag's other variant when it has two.
    treatment: Option<String>,
    /// The old variant; the environment's default variant when left out.
    control: Option<String>,
    /// Why, for the audit log.
    reason: Option<String>,
}

/// The plan a body asks for.
fn plan_of(body: &CreateBody) -> Result<RolloutPlan, ApiError> {
    match (&body.plan, &body.template) {
        (Some(_), Some(_)) => Err(invalid(
            "template",
            "give `plan` or `template`, not both".into(),
        )),
        (None, None) => Err(invalid(
            "plan",
            "give a `plan`, or a `template` (standard or cautious)".into(),
        )),
        (None, Some(name)) => Template::from_name(name)
            .map(Template::plan)
            .ok_or_else(|| {
                invalid(
                    "template",
                    format!("unknown template `{name}`; expected standard or cautious"),
                )
            }),
        (Some(plan), None) => RolloutPlan::from_value(plan.clone()).map_err(|errors| {
            let moved = under_plan(errors);
            let first = moved
                .iter()
                .next()
                .map(|e| format!("body: {}: {}", e.path, e.message))
                .unwrap_or_else(|| "body: plan: invalid".into());
            ApiError::InvalidBody {
                message: first,
                errors: moved,
            }
        }),
    }
}

/// Errors of a plan, with their paths moved under `plan`.
fn under_plan(errors: Errors) -> Errors {
    Errors(
        errors
            .iter()
            .map(|error| {
                let mut path = sluice_core::Path::root().key("plan");
                for segment in error.path.segments() {
                    path = match segment {
                        sluice_core::PathSegment::Key(key) => path.key(key.clone()),
                        sluice_core::PathSegment::Index(index) => path.index(*index),
                    };
                }
                let mut moved = error.clone();
                moved.path = path;
                moved
            })
            .collect(),
    )
}

/// The treatment and control variants: as given, or the flag's defaults.
fn variants(body: &CreateBody, flag: &FlagDef) -> Result<(String, String), ApiError> {
    let control = match &body.control {
        Some(control) => control.clone(),
        None => flag
            .environments
            .get(&body.env)
            .and_then(|o| o.default_variant.clone())
            .unwrap_or_else(|| flag.default_variant.clone()),
    };
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
                            "required: flag `{}` has {} variants besides `{control}`",
                            body.flag,
                            others.len()
                        ),
                    ));
                }
            }
        }
    };
    Ok((treatment, control))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let plan = plan_of(&body)?;
    let flag = match state.store().get_flag(&body.flag).await {
        Ok(flag) => flag,
        Err(StoreError::NotFound) => {
            return Err(invalid(
                "flag",
                format!("flag `{}` does not exist", body.flag),
            ));
        }
        Err(error) => return Err(error.into()),
    };
    let (treatment, control) = variants(&body, &flag.definition)?;
    let pending = RolloutState::new(plan, &body.flag, &body.env, treatment, control);
    let change = change(&caller, &headers, body.reason.clone());
    let protected = state.store().protections().await?.contains_key(&body.env);
    let start = match command(
        &pending,
        change.now_ms,
        Command::Start {
            actor: caller.id().to_owned(),
        },
    ) {
        Ok(transition) => Some(transition),
        // The first stage needs approvals: it stays pending until they are given.
        Err(CommandError::NeedsApprovals { .. }) => None,
        Err(error) => return Err(ApiError::Conflict(error.to_string())),
    };
    // In a protected environment the rollout is created pending, and starting it is a
    // change request.
    let gated_start = protected && start.is_some();
    let start = if gated_start { None } else { start };
    let committed = state
        .store()
        .create_rollout(
            &change,
            &NewRollout {
                state: pending,
                start,
            },
        )
        .await
        .map_err(|e| store_error(e, &format!("flag `{}`", body.flag)))?;
    state.reload().await.ok();
    let rollout = &committed.value.rollout;
    if gated_start {
        let payload = ChangePayload::RolloutCommand {
            rollout: rollout.id.clone(),
            command: GatedCommand::Start,
        };
        if let Some(filed) =
            gate_request(&state, &caller, &headers, payload, body.reason, None).await?
        {
            let answer = json!({
                "rollout": view(rollout),
                "changeRequest": crate::http::changes::view(&filed),
            });
            return Ok((StatusCode::ACCEPTED, Json(answer)).into_response());
        }
    }
    Ok((StatusCode::CREATED, Json(view(rollout))).into_response())
}

/// Query parameters of `GET /api/v1/rollouts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    env: Option<String>,
    flag: Option<String>,
    /// Only rollouts that are not final.
    active: Option<bool>,
    limit: Option<u32>,
}

/// The environment a read may see: any for admins, a server token's own.
fn readable_env(caller: &Caller, requested: Option<&str>) -> Result<Option<String>, ApiError> {
    match &caller.token.access {
        TokenAccess::Admin => Ok(requested.map(str::to_owned)),
        TokenAccess::Server { environment } => match requested {
            Some(name) if name != environment => Err(ApiError::Forbidden(format!(
                "token `{}` belongs to environment `{environment}`, not `{name}`",
                caller.token.id
            ))),
            _ => Ok(Some(environment.clone())),
        },
        TokenAccess::Client { .. } => Err(ApiError::Forbidden(format!(
            "this needs an admin token, or a server token of the environment; `{}` is a client token",
            caller.token.id
        ))),
    }
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let env = readable_env(&caller, query.env.as_deref())?;
    let filter = RolloutFilter {
        env,
        flag: query.flag,
        active_only: query.active.unwrap_or(false),
        limit: query.limit,
    };
    let rollouts = state.store().list_rollouts(&filter).await?;
    Ok(Json(
        json!({ "rollouts": rollouts.iter().map(view).collect::<Vec<_>>() }),
    ))
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rollout = state
        .store()
        .get_rollout(&id)
        .await
        .map_err(|e| ApiError::from_store(e, &what(&id)))?;
    readable_env(&caller, Some(&rollout.state.environment))?;
    let now = now_ms();
    let history = state.store().rollout_transitions(&id).await?;
    let (window, decision) = current_decision(state.store(), &rollout, now).await?;
    let deliveries = state.store().deliveries(Some(&id), 100).await?;
    let mut body = view(&rollout);
    body["nowMs"] = json!(now);
    body["window"] = window_view(&window);
    body["decision"] = decision_view(decision.as_ref());
    body["history"] = json!(history.iter().map(history_view).collect::<Vec<_>>());
    body["deliveries"] = json!(deliveries);
    Ok(Json(body))
}

fn window_view(window: &Window) -> Value {
    json!({
        "elapsedSecs": window.elapsed.as_secs(),
        "exposures": window.exposures,
    })
}

fn decision_view(decision: Option<&StageDecision>) -> Value {
    match decision {
        Some(decision) => json!(decision),
        None => Value::Null,
    }
}

fn history_view(record: &TransitionRecord) -> Value {
    let t = &record.transition;
    json!({
        "seq": t.seq,
        "kind": kind_name(t.kind),
        "atMs": t.at_ms,
        "configVersion": record.config_version,
        "from": t.from,
        "to": t.to,
        "exposure": t.exposure,
        "actor": t.evidence.actor,
        "reason": t.evidence.reason,
        "summary": t.evidence.summary,
        "decision": t.evidence.decision,
    })
}

/// A rollout for the API: its state, with each stage described for people.
pub fn view(rollout: &StoredRollout) -> Value {
    let state = &rollout.state;
    let status_reason = match &state.status {
        sluice_core::rollout::Status::Paused { reason }
        | sluice_core::rollout::Status::RolledBack { reason }
        | sluice_core::rollout::Status::Killed { reason } => Some(reason.clone()),
        _ => None,
    };
    let stages: Vec<Value> = state
        .plan
        .stages
        .iter()
        .enumerate()
        .map(|(index, stage)| {
            json!({
                "index": index,
                "label": stage.label(),
                "audience": stage.audience,
                "percent": stage.percent,
                "bakeSecs": stage.bake.as_secs(),
                "minSamples": stage.min_samples,
                "approvals": stage.approvals,
                "gate": stage.gate,
            })
        })
        .collect();
    json!({
        "id": rollout.id,
        "env": state.environment,
        "flag": state.flag,
        "treatment": state.treatment,
        "control": state.control,
        "status": state.status.name(),
        "statusReason": status_reason,
        "active": rollout.is_active(),
        "stage": state.stage,
        "stageLabel": state.plan.stages.get(state.stage).map(|s| s.label()),
        "stageStartedMs": state.stage_started_ms,
        "seq": state.transition_seq,
        "approvals": state.approvals,
        "stages": stages,
        "plan": state.plan,
        "last": state.last.as_ref().map(|t| json!({
            "seq": t.seq,
            "kind": kind_name(t.kind),
            "atMs": t.at_ms,
            "summary": t.evidence.summary,
            "actor": t.evidence.actor,
            "reason": t.evidence.reason,
        })),
        "exposureVersion": rollout.exposure_version,
        "version": rollout.version,
        "createdMs": rollout.created_ms,
        "updatedMs": rollout.updated_ms,
    })
}

/// The optional body of a command: `{"reason": "…"}`, or nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    reason: Option<String>,
}

fn command_body(bytes: &Bytes) -> Result<CommandBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(CommandBody::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            invalid("reason", e.to_string())
        } else {
            ApiError::BadRequest(format!("body: {e}"))
        }
    })
}

/// Which command a route runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Start,
    Pause,
    Resume,
    Promote,
    Rollback,
    Kill,
    Approve,
}

/// Runs a person's command on a rollout, as the command routes do (the console too).
pub(crate) async fn steer(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    id: String,
    bytes: Bytes,
    kind: Kind,
) -> Result<Response, ApiError> {
    caller.admin()?;
    refuse_in_gitops(&state)?;
    let body = command_body(&bytes)?;
    let gated = match kind {
        Kind::Start => Some(GatedCommand::Start),
        Kind::Resume => Some(GatedCommand::Resume),
        Kind::Promote => Some(GatedCommand::Promote),
        // Pause, rollback and kill only reduce exposure, and stage approvals are already
        // approvals: none of them waits for a change request.
        Kind::Pause | Kind::Rollback | Kind::Kill | Kind::Approve => None,
    };
    if let Some(command) = gated {
        let payload = ChangePayload::RolloutCommand {
            rollout: id.clone(),
            command,
        };
        if let Some(accepted) = gate(
            &state,
            &caller,
            &headers,
            payload,
            body.reason.clone(),
            None,
        )
        .await?
        {
            return Ok(accepted);
        }
    }
    let change = change(&caller, &headers, body.reason);
    let actor = caller.id().to_owned();
    let reason = change.reason.clone().unwrap_or_default();
    let instruction = match kind {
        Kind::Start => Command::Start { actor },
        Kind::Pause => Command::Pause { reason, actor },
        Kind::Resume => Command::Resume { actor },
        Kind::Promote => Command::Promote { reason, actor },
        Kind::Rollback => Command::Rollback { reason, actor },
        Kind::Kill => Command::Kill { reason, actor },
        Kind::Approve => Command::Approve { actor },
    };
    let committed = run_command(&state, &id, &instruction, &change)
        .await
        .map_err(|e| rollout_error(e, &what(&id)))?;
    let mut body = view(&committed.value.rollout);
    body["applied"] = json!(committed.value.applied);
    body["transition"] = committed
        .value
        .transition
        .as_ref()
        .map_or(Value::Null, history_view);
    Ok(Json(body).into_response())
}

macro_rules! command_route {
    ($name:ident, $kind:expr) => {
        async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            headers: HeaderMap,
            Path(id): Path<String>,
            bytes: Bytes,
        ) -> Result<Response, ApiError> {
            steer(state, caller, headers, id, bytes, $kind).await
        }
    };
}

command_route!(start, Kind::Start);
command_route!(pause, Kind::Pause);
command_route!(resume, Kind::Resume);
command_route!(promote, Kind::Promote);
command_route!(rollback, Kind::Rollback);
command_route!(kill, Kind::Kill);
command_route!(approve, Kind::Approve);
