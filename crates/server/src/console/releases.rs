//! Releases, read-only: the list, one release's checklist with its evidence, the approvals
//! waiting for the signed-in token, its timeline, and the learning report by provenance.
//! Admin sessions only, as the release API is.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use sluice_core::release::{Figures, report};

use super::layout::{Section, error_page, page, percent, time};
use super::session::Viewer;
use crate::releases::{checklist, release_records, timeline};
use crate::state::{AppState, now_ms};

/// Release pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/releases", get(list))
        .route("/releases/{id}", get(detail))
}

/// A 403 page for read-only sessions; `None` for admins.
fn admin_only(viewer: &Viewer) -> Option<Response> {
    if viewer.can_write() {
        None
    } else {
        Some(error_page(
            Some(viewer),
            StatusCode::FORBIDDEN,
            "releases span environments: sign in with an admin token to see them",
        ))
    }
}

fn hours(ms: Option<f64>) -> String {
    ms.map_or_else(|| "–".to_owned(), |ms| format!("{:.1} h", ms / 3_600_000.0))
}

fn figures_cells(f: &Figures) -> Markup {
    html! {
        td { (f.releases) }
        td { (f.started) }
        td { (f.failed) }
        td { (f.change_failure_rate.map_or_else(|| "–".to_owned(), percent)) }
        td { (hours(f.median_time_to_full_rollout_ms)) }
        td { (hours(f.mean_time_to_restore_ms)) }
    }
}

async fn list(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Some(refused) = admin_only(&viewer) {
        return refused;
    }
    let store = state.store();
    let releases = store.list_releases().await.unwrap_or_default();
    let records = release_records(store, 0).await.unwrap_or_default();
    let report = report(&records);
    let body = html! {
        @if releases.is_empty() { p.muted { "No releases yet." } }
        @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "Release" } th scope="col" { "Flags" } th scope="col" { "Provenance" } th scope="col" { "Risk" } th scope="col" { "Created" } } }
                tbody {
                    @for r in &releases {
                        tr {
                            th scope="row" { a href=(format!("/releases/{}", r.id)) { (r.name) } }
                            td { (r.spec.flags.join(", ")) }
                            td { (r.spec.provenance.kind.as_str()) }
                            td { (r.spec.risk.as_str()) }
                            td { (time(r.created_ms)) }
                        }
                    }
                }
            } }
        }
        h2 { "Report by provenance" }
        div.table-wrap { table {
            thead { tr {
                th scope="col" { "Provenance" } th scope="col" { "Releases" } th scope="col" { "Started" }
                th scope="col" { "Failed" } th scope="col" { "Change failure rate" }
                th scope="col" { "Median time to full rollout" } th scope="col" { "Mean time to restore" }
            } }
            tbody {
                tr { th scope="row" { "all" } (figures_cells(&report.total)) }
                @for g in &report.by_provenance {
                    tr { th scope="row" { (g.provenance.map_or("-", |p| p.as_str())) } (figures_cells(&g.figures)) }
                }
            }
        } }
    };
    page(Some(&viewer), Section::Releases, "Releases", body)
}

async fn detail(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    if let Some(refused) = admin_only(&viewer) {
        return refused;
    }
    let store = state.store();
    let Ok(release) = store.get_release(&id).await else {
        return error_page(
            Some(&viewer),
            StatusCode::NOT_FOUND,
            &format!("release `{id}` does not exist"),
        );
    };
    let list = match checklist(store, &release, now_ms()).await {
        Ok(list) => list,
        Err(_) => {
            return error_page(
                Some(&viewer),
                StatusCode::INTERNAL_SERVER_ERROR,
                "the checklist could not be read",
            );
        }
    };
    let events = timeline(store, &release).await.unwrap_or_default();
    let mut waiting = Vec::new();
    for rollout_id in store
        .release_rollouts(&release.id)
        .await
        .unwrap_or_default()
    {
        if let Ok(r) = store.get_rollout(&rollout_id).await {
            let next = if r.state.status.name() == "pending" {
                r.state.stage
            } else {
                r.state.stage + 1
            };
            let needs = r.state.plan.stages.get(next).map_or(0, |s| s.approvals);
            if r.is_active()
                && needs > 0
                && !r.state.approvals.iter().any(|a| a == viewer.caller.id())
            {
                waiting.push(r);
            }
        }
    }
    let body = html! {
        p { "Flags: " (release.spec.flags.join(", ")) " · provenance " (release.spec.provenance.kind.as_str())
            " · risk " (release.spec.risk.as_str()) " · policy " (release.policy.rule) }
        h2 { "Checklist " @if list.open { span.badge.pass { "open" } } @else { span.badge.fail { "held" } } }
        div.table-wrap { table {
            thead { tr { th scope="col" { "Item" } th scope="col" { "Result" } th scope="col" { "What the data says" } th scope="col" { "Evidence" } } }
            tbody {
                @for item in &list.items {
                    tr {
                        th scope="row" { (item.title) }
                        td { @if item.passed { span.badge.pass { "pass" } } @else { span.badge.fail { "missing" } } }
                        td { (item.detail) }
                        td {
                            @if let Some(e) = &item.evidence {
                                (e.text.as_deref().unwrap_or("")) " "
                                @if let Some(link) = &e.link {
                                    // Only web links become links: never `javascript:` and the like.
                                    @if link.starts_with("https://") || link.starts_with("http://") {
                                        a href=(link) rel="noreferrer" { (link) } " "
                                    } @else { code { (link) } " " }
                                }
                                span.muted { "by " (e.by) ", " (time(e.at_ms)) }
                            }
                        }
                    }
                }
            }
        } }
        @if let Some(o) = &list.override_ { p.notice { "Overridden: " (serde_json::to_string(o).unwrap_or_default()) } }
        h2 { "Approvals waiting for you" }
        @if waiting.is_empty() { p.muted { "None." } }
        @else { ul { @for r in &waiting { li { a href=(format!("/rollouts/{}", r.id)) { (r.state.flag) " in " (r.state.environment) } " needs your approval" } } } }
        h2 { "Timeline" }
        @if events.is_empty() { p.muted { "Nothing has happened yet." } }
        @else {
            ol {
                @for e in &events {
                    li {
                        (time(e["atMs"].as_i64().unwrap_or(0))) ": "
                        strong { (e["kind"].as_str().unwrap_or("")) }
                        @if let Some(flag) = e["flag"].as_str() { " " (flag) " in " (e["env"].as_str().unwrap_or("")) }
                        @if e["source"] == "rollout" { " (stage " (e["fromStage"].as_u64().map_or(0, |s| s + 1)) " → " (e["toStage"].as_u64().map_or(0, |s| s + 1)) ")" }
                        @if let Some(d) = e["detail"].as_str() { " — " (d) }
                        @if let Some(d) = e["summary"].as_str() { " — " (d) }
                    }
                }
            }
        }
    };
    page(Some(&viewer), Section::Releases, &release.name, body)
}
