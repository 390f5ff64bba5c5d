//! The audit log: filterable by resource, action and actor (a GET form, so it works without
//! script), with a banner saying whether the hash chain verifies. Admin sessions only.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::html;
use serde::Deserialize;

use super::layout::{Section, error_page, page, time};
use super::session::Viewer;
use crate::state::AppState;
use crate::store::audit::AuditFilter;

/// Audit pages.
pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list))
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    resource: Option<String>,
    action: Option<String>,
    actor: Option<String>,
}

fn filled(value: &Option<String>) -> Option<String> {
    value
        .as_ref()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<AuditQuery>,
) -> Response {
    if !viewer.can_write() {
        return error_page(
            Some(&viewer),
            StatusCode::FORBIDDEN,
            "the audit log spans environments: sign in with an admin token to read it",
        );
    }
    let filter = AuditFilter {
        resource: filled(&query.resource),
        action: filled(&query.action),
        actor: filled(&query.actor),
        limit: Some(200),
        ..AuditFilter::default()
    };
    let store = state.store();
    let (records, chain) = match (store.list_audit(&filter).await, store.verify_audit().await) {
        (Ok(r), Ok(c)) => (r, c),
        _ => {
            return error_page(
                Some(&viewer),
                StatusCode::INTERNAL_SERVER_ERROR,
                "the audit log could not be read",
            );
        }
    };
    let field = |id: &str, label: &str, value: &Option<String>, hint: &str| {
        html! {
            label for=(id) { (label) }
            input type="text" id=(id) name=(id) value=(value.clone().unwrap_or_default()) placeholder=(hint);
        }
    };
    let body = html! {
        @match &chain.first_break {
            None => p.notice role="status" id="chain" {
                span.badge.pass { "chain verifies" } " "
                (chain.records) " records checked; head #" (chain.head_seq) " " code { (chain.head_hash.get(..16).unwrap_or(&chain.head_hash)) "…" }
            },
            Some(b) => p.notice.error role="alert" id="chain" {
                span.badge.fail { "chain broken" } " at #" (b.seq) ": " (b.message)
            },
        }
        form.inline method="get" action="/audit" aria-label="Filter the audit log" {
            (field("resource", "Resource", &query.resource, "flag:checkout"))
            (field("action", "Action", &query.action, "flag.kill"))
            (field("actor", "Actor", &query.actor, "tok_…"))
            button type="submit" { "Filter" }
            a href="/audit" { "Clear" }
        }
        p.muted { (records.len()) " records, newest first (at most 200)" }
        div.table-wrap { table {
            thead { tr { th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Resource" } th scope="col" { "Reason" } } }
            tbody {
                @for r in &records {
                    tr {
                        td { (r.seq) }
                        td { (time(r.time_ms)) }
                        td { (r.actor.as_deref().unwrap_or("server")) }
                        td { (r.action) }
                        td { (r.resource) }
                        td { (r.reason.as_deref().unwrap_or("")) }
                    }
                }
            }
        } }
    };
    page(Some(&viewer), Section::Audit, "Audit log", body)
}
