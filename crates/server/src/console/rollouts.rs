//! Rollouts: the list, and one rollout's progress through its stages with each guardrail's
//! verdict and evidence, the commands for admins, and a live stream of its changes.
//!
//! The live part of the page is one fragment ([`live`]); the stream at
//! `/rollouts/{id}/events` sends it again, rendered by the same function, whenever the
//! rollout's transition number or status changes (it wakes on the store's change feed), so
//! the script only swaps HTML and never builds any.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use sluice_core::rollout::{Inconclusive, Outcome, StageDecision, Verdict, format_duration};

use super::layout::{Section, error_page, page, time};
use super::outcome::respond;
use super::session::{Sessions, Viewer};
use crate::http::rollouts::{Kind, steer};
use crate::rollouts::current_decision;
use crate::state::{AppState, now_ms, until_shutdown};
use crate::store::rollouts::kind_name;
use crate::store::{RolloutFilter, StoredRollout, TransitionRecord};

/// Rollout pages and commands.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rollouts", get(list))
        .route("/rollouts/{id}", get(detail))
        .route("/rollouts/{id}/{command}", post(command))
}

/// The live stream (kept apart from the request timeout).
pub fn events_router() -> Router<AppState> {
    Router::new().route("/rollouts/{id}/events", get(events))
}

fn status_badge(rollout: &StoredRollout) -> Markup {
    let name = rollout.state.status.name();
    let class = match name {
        "running" | "completed" => "badge on",
        "rolled_back" | "killed" => "badge off",
        _ => "badge mixed",
    };
    html! { span class=(class) { (name.replace('_', " ")) } }
}

async fn list(State(state): State<AppState>, viewer: Viewer) -> Response {
    let filter = RolloutFilter {
        env: viewer.environment().map(str::to_owned),
        flag: None,
        active_only: false,
        limit: Some(200),
    };
    let Ok(rollouts) = state.store().list_rollouts(&filter).await else {
        return error_page(
            Some(&viewer),
            StatusCode::INTERNAL_SERVER_ERROR,
            "the store could not be read",
        );
    };
    let body = html! {
        @if rollouts.is_empty() { p.muted { "No rollouts yet." } }
        @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Rollout" } th scope="col" { "Flag" } th scope="col" { "Environment" }
                        th scope="col" { "Status" } th scope="col" { "Stage" } th scope="col" { "Updated" }
                    } }
                    tbody {
                        @for r in &rollouts {
                            tr {
                                th scope="row" { a href=(format!("/rollouts/{}", r.id)) { (r.id) } }
                                td { (r.state.flag) }
                                td { (r.state.environment) }
                                td { (status_badge(r)) }
                                td { (r.state.stage + 1) " of " (r.state.plan.stages.len()) ": "
                                     (r.state.plan.stages.get(r.state.stage).map(|s| s.label()).unwrap_or_default()) }
                                td { (time(r.updated_ms)) }
                            }
                        }
                    }
                }
            }
        }
    };
    page(Some(&viewer), Section::Rollouts, "Rollouts", body)
}

fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.4}"))
}

fn verdict_row(verdict: &Verdict) -> Markup {
    let e = &verdict.evidence;
    let metric = match serde_json::to_value(&e.metric) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_owned(),
    };
    let (class, word) = match &verdict.outcome {
        Outcome::Pass => ("badge pass", "pass".to_owned()),
        Outcome::Fail => ("badge fail", "fail".to_owned()),
        Outcome::Inconclusive(why) => (
            "badge inconclusive",
            match why {
                Inconclusive::NotEnoughData => "inconclusive: not enough data",
                Inconclusive::Holding => "inconclusive: still deciding",
                Inconclusive::InvalidData => "inconclusive: invalid data",
            }
            .to_owned(),
        ),
    };
    html! {
        tr {
            th scope="row" { (metric) }
            td { span class=(class) { (word) } }
            td { (e.summary) }
            td {
                "n = " (e.n.control) " control / " (e.n.treatment) " treatment (min " (e.min_samples) ")"
                br; "control " (number(e.control)) ", treatment " (number(e.treatment))
                br; "difference " (number(e.difference)) ", threshold " (number(e.threshold))
                @if let Some(i) = &e.interval { br; "interval [" (format!("{:.4}", i.lo)) ", " (format!("{:.4}", i.hi)) "]" }
                @if let Some(p) = e.p_value { br; "p = " (format!("{p:.4}")) }
            }
        }
    }
}

/// The part of a rollout's page that updates live.
pub fn live(
    rollout: &StoredRollout,
    decision: Option<&StageDecision>,
    history: &[TransitionRecord],
) -> Markup {
    let state = &rollout.state;
    let stages = &state.plan.stages;
    let reason = match &state.status {
        sluice_core::rollout::Status::Paused { reason }
        | sluice_core::rollout::Status::RolledBack { reason }
        | sluice_core::rollout::Status::Killed { reason } => Some(reason.clone()),
        _ => None,
    };
    let current_label = stages
        .get(state.stage)
        .map(|s| s.label())
        .unwrap_or_default();
    html! {
        p {
            "Status: " (status_badge(rollout))
            @if let Some(r) = reason { " — " (r) }
        }
        p id="stage-now" {
            "Stage " strong { (state.stage + 1) } " of " (stages.len()) ": " strong.stage-label { (current_label) }
            ", since " (time(state.stage_started_ms))
        }
        progress max=(stages.len()) value=(state.stage + 1) aria-label="Stages completed" {
            (state.stage + 1) " of " (stages.len())
        }
        ol.stages aria-label="Stages" {
            @for (i, stage) in stages.iter().enumerate() {
                li class=(if i < state.stage { "done" } else if i == state.stage { "current" } else { "" })
                    aria-current=[(i == state.stage).then_some("step")] {
                    (stage.label()) " · bake " (format_duration(stage.bake))
                    @if stage.approvals > 0 { " · " (stage.approvals) " approval(s)" }
                }
            }
        }
        h2 { "Guardrails" }
        @match decision {
            Some(d) => {
                p { (d.summary) }
                @if d.verdicts.is_empty() { p.muted { "This plan has no guardrails." } }
                @else {
                    div.table-wrap { table {
                        thead { tr { th scope="col" { "Metric" } th scope="col" { "Verdict" } th scope="col" { "In words" } th scope="col" { "Numbers" } } }
                        tbody { @for v in &d.verdicts { (verdict_row(v)) } }
                    } }
                }
                @if let Some(srm) = &d.srm {
                    p { "Sample ratio: " (srm.observed.control) " control / " (srm.observed.treatment)
                        " treatment, expected treatment share " (format!("{:.1}%", srm.expected_treatment_share * 100.0))
                        @if srm.mismatch { " — " strong.error { "the split is broken" } } }
                }
            }
            None => p.muted { "No decision now: the rollout is not running." },
        }
        h2 { "History" }
        div.table-wrap { table {
            thead { tr { th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Stages" } th scope="col" { "Why" } } }
            tbody {
                @for record in history.iter().rev() {
                    @let t = &record.transition;
                    tr {
                        td { (t.seq) }
                        td { (time(t.at_ms)) }
                        td { (kind_name(t.kind)) }
                        td { (t.from.stage + 1) " → " (t.to.stage + 1) }
                        td {
                            @if let Some(r) = &t.evidence.reason { (r) br; }
                            span.muted { (t.evidence.summary) }
                        }
                    }
                }
            }
        } }
    }
}

async fn load(state: &AppState, viewer: &Viewer, id: &str) -> Result<StoredRollout, Response> {
    match state.store().get_rollout(id).await {
        Ok(r) if viewer.sees(&r.state.environment) => Ok(r),
        Ok(_) => Err(error_page(
            Some(viewer),
            StatusCode::FORBIDDEN,
            &format!("rollout `{id}` is in an environment this session cannot see"),
        )),
        Err(_) => Err(error_page(
            Some(viewer),
            StatusCode::NOT_FOUND,
            &format!("rollout `{id}` does not exist"),
        )),
    }
}

async fn fragment(state: &AppState, rollout: &StoredRollout) -> Markup {
    let history = state
        .store()
        .rollout_transitions(&rollout.id)
        .await
        .unwrap_or_default();
    let decision = current_decision(state.store(), rollout, now_ms())
        .await
        .ok()
        .and_then(|(_, d)| d);
    live(rollout, decision.as_ref(), &history)
}

async fn detail(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let rollout = match load(&state, &viewer, &id).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let live_part = fragment(&state, &rollout).await;
    let active = rollout.is_active();
    let commands: [(&str, &str, bool, bool); 5] = [
        ("pause", "Pause", false, false),
        ("resume", "Resume", false, false),
        ("promote", "Promote to the next stage", true, false),
        ("rollback", "Roll back", true, true),
        ("approve", "Approve the next stage", false, false),
    ];
    let body = html! {
        p { "Flag " a href=(format!("/flags/{}", rollout.state.flag)) { (rollout.state.flag) }
            " in " strong { (rollout.state.environment) } ": " code { (rollout.state.control) } " → " code { (rollout.state.treatment) } }
        p.muted id="live-status" role="status" aria-live="polite" { "Reload to update (live updates need JavaScript)." }
        div id="rollout-live" data-live=(format!("/rollouts/{id}/events")) data-seq=(rollout.state.transition_seq) aria-live="polite" {
            (live_part)
        }
        @if viewer.can_write() && active {
            h2 { "Steer" }
            @for (name, label, needs_reason, dangerous) in commands {
                form.inline method="post" action=(format!("/rollouts/{id}/{name}"))
                    data-confirm=[dangerous.then(|| format!("{label}: {}?", rollout.state.flag))] {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    @if needs_reason {
                        label for=(format!("reason-{name}")) { "Reason" }
                        input type="text" id=(format!("reason-{name}")) name="reason" required;
                    }
                    button type="submit" class=(if dangerous { "danger" } else { "" }) { (label) }
                }
            }
        }
    };
    page(
        Some(&viewer),
        Section::Rollouts,
        &format!("Rollout {id}"),
        body,
    )
}

#[derive(Debug, Deserialize)]
struct CommandForm {
    csrf: Option<String>,
    reason: Option<String>,
}

async fn command(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    form: Result<Form<CommandForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = form.ok().map(|Form(f)| f);
    if let Some(refused) =
        viewer.refuse_post(&headers, form.as_ref().and_then(|f| f.csrf.as_deref()))
    {
        return refused;
    }
    let kind = match name.as_str() {
        "start" => Kind::Start,
        "pause" => Kind::Pause,
        "resume" => Kind::Resume,
        "promote" => Kind::Promote,
        "rollback" => Kind::Rollback,
        "kill" => Kind::Kill,
        "approve" => Kind::Approve,
        other => {
            return error_page(
                Some(&viewer),
                StatusCode::NOT_FOUND,
                &format!("no rollout command `{other}`"),
            );
        }
    };
    let reason = form.and_then(|f| f.reason).filter(|r| !r.trim().is_empty());
    if matches!(kind, Kind::Promote | Kind::Rollback) && reason.is_none() {
        return error_page(
            Some(&viewer),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason: say why, for the audit log",
        );
    }
    let body = match reason {
        Some(reason) => Bytes::from(json!({ "reason": reason }).to_string()),
        None => Bytes::new(),
    };
    let result = steer(
        state,
        viewer.caller.clone(),
        headers,
        id.clone(),
        body,
        kind,
    )
    .await;
    respond(&viewer, result, &format!("/rollouts/{id}")).await
}

async fn events(
    State(state): State<AppState>,
    axum::Extension(sessions): axum::Extension<std::sync::Arc<Sessions>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let rollout = match load(&state, &viewer, &id).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    Sse::new(stream(state, sessions, viewer.key, rollout))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn stream(
    state: AppState,
    sessions: std::sync::Arc<Sessions>,
    key: String,
    first: StoredRollout,
) -> impl Stream<Item = Result<Event, Infallible>> {
    async_stream::stream! {
        let mut changes = state.store().subscribe();
        let mut shutdown = state.shutdown_signal();
        let id = first.id.clone();
        let mut rollout = first;
        let mut last: Option<(u64, String)> = None;
        loop {
            let seen = (rollout.state.transition_seq, rollout.state.status.name().to_owned());
            if last.as_ref() != Some(&seen) {
                let html = fragment(&state, &rollout).await.into_string();
                let data = json!({ "seq": seen.0, "status": seen.1, "html": html });
                yield Ok(Event::default().event("rollout").data(data.to_string()));
                last = Some(seen);
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                () = until_shutdown(&mut shutdown) => break,
            }
            if !sessions.is_open(&key) {
                break;
            }
            match state.store().get_rollout(&id).await {
                Ok(r) => rollout = r,
                Err(_) => break,
            }
        }
    }
}
