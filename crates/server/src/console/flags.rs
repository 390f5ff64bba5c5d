//! The flags list (status per environment, provenance, risk, stale badge, search) and the
//! kill switch behind its confirmation page.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use sluice_core::lifecycle::{FlagFacts, Serving, Stage, classify, serving};
use sluice_core::model::FlagDef;

use super::layout::{Section, error_page, page};
use super::outcome::respond;
use super::session::Viewer;
use crate::http::flags::{Switch, switch};
use crate::http::lifecycle::DEFAULT_STALE_DAYS;
use crate::state::{AppState, now_ms};

/// Flag pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/flags", get(list))
        .route("/flags/{key}", get(super::flag_detail::detail))
        .route("/flags/{key}/kill", get(confirm).post(kill))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    q: Option<String>,
}

/// A badge saying what `environment` serves.
pub fn serving_badge(flag: &FlagDef, environment: &str) -> Markup {
    match serving(flag, environment) {
        Serving::Off => html! { span.badge.off { "off" } },
        Serving::Everyone { variant } => html! { span.badge.on { "on: " (variant) " to all" } },
        Serving::Mixed => html! { span.badge.mixed { "on: targeted" } },
    }
}

/// Whether `flag` matches the search words (key, description, owner, tags).
fn matches(key: &str, flag: &FlagDef, query: &str) -> bool {
    let haystack = format!(
        "{key} {} {} {}",
        flag.description.as_deref().unwrap_or(""),
        flag.owner.as_deref().unwrap_or(""),
        flag.tags.join(" ")
    )
    .to_lowercase();
    query
        .to_lowercase()
        .split_whitespace()
        .all(|word| haystack.contains(word))
}

async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> Response {
    let store = state.store();
    let (environments, flags, activity) = match (
        store.list_environments().await,
        store.list_flags().await,
        store.flag_activity().await,
    ) {
        (Ok(e), Ok(f), Ok(a)) => (e, f, a),
        _ => {
            return error_page(
                Some(&viewer),
                StatusCode::INTERNAL_SERVER_ERROR,
                "the store could not be read",
            );
        }
    };
    let all_environments: Vec<String> = environments.into_iter().map(|e| e.name).collect();
    let shown: Vec<&String> = all_environments.iter().filter(|e| viewer.sees(e)).collect();
    let activity: BTreeMap<&str, _> = activity.iter().map(|a| (a.key.as_str(), a)).collect();
    let q = query.q.unwrap_or_default();
    let now = now_ms();
    let listed: Vec<_> = flags
        .iter()
        .filter(|f| q.trim().is_empty() || matches(&f.key, &f.definition, &q))
        .collect();
    let body = html! {
        form.inline role="search" method="get" action="/flags" {
            label for="q" { "Search flags" }
            input type="search" id="q" name="q" value=(q) placeholder="key, owner, tag…";
            button type="submit" { "Search" }
            @if !q.is_empty() { a href="/flags" { "Clear" } }
        }
        p.muted { (listed.len()) " of " (flags.len()) " flags" }
        div.table-wrap {
            table {
                thead {
                    tr {
                        th scope="col" { "Flag" }
                        @for env in &shown { th scope="col" { (env) } }
                        th scope="col" { "Provenance" }
                        th scope="col" { "Risk" }
                        th scope="col" { "Lifecycle" }
                    }
                }
                tbody {
                    @for flag in &listed {
                        @let def = &flag.definition;
                        tr {
                            th scope="row" {
                                a href=(format!("/flags/{}", flag.key)) { (flag.key) }
                                @if let Some(d) = &def.description { br; span.muted.hide-narrow { (d) } }
                            }
                            @for env in &shown {
                                td {
                                    (serving_badge(def, env))
                                    @if viewer.can_write() && !matches!(serving(def, env), Serving::Off) {
                                        " "
                                        a.button.danger href=(format!("/flags/{}/kill?env={}", flag.key, env))
                                            aria-label=(format!("Kill {} in {}", flag.key, env)) { "Kill" }
                                    }
                                }
                            }
                            td { (def.provenance.map_or("-", |p| p.as_str())) }
                            td { (def.risk.map_or("-", |r| r.as_str())) }
                            td {
                                @if let Some(a) = activity.get(flag.key.as_str()) {
                                    @let facts = FlagFacts {
                                        definition: def,
                                        environments: &all_environments,
                                        created_ms: a.created_ms,
                                        last_changed_ms: a.last_changed_ms,
                                        last_evaluated_ms: a.last_evaluated_ms,
                                        archived_ms: a.archived_ms,
                                    };
                                    @let lifecycle = classify(&facts, now, DEFAULT_STALE_DAYS);
                                    @match lifecycle.stage {
                                        Stage::Stale => {
                                            span.badge.stale title=(lifecycle.reasons.iter().map(|r| r.describe()).collect::<Vec<_>>().join("; ")) { "stale" }
                                            @for r in &lifecycle.reasons { br; span.muted { (r.describe()) } }
                                        }
                                        Stage::Active => span.badge { "active" },
                                        Stage::RolledOut => span.badge { "rolled out" },
                                        Stage::Archived => span.badge { "archived" },
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(Some(&viewer), Section::Flags, "Flags", body)
}

#[derive(Debug, Deserialize)]
struct KillQuery {
    env: Option<String>,
}

async fn confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    Query(query): Query<KillQuery>,
) -> Response {
    let Some(env) = query.env.filter(|e| !e.is_empty()) else {
        return error_page(
            Some(&viewer),
            StatusCode::BAD_REQUEST,
            "env: name the environment to kill the flag in",
        );
    };
    if !viewer.can_write() {
        return error_page(
            Some(&viewer),
            StatusCode::FORBIDDEN,
            "this session is read-only: sign in with an admin token to act",
        );
    }
    let flag = match state.store().get_flag(&key).await {
        Ok(flag) => flag,
        Err(_) => {
            return error_page(
                Some(&viewer),
                StatusCode::NOT_FOUND,
                &format!("flag `{key}` does not exist"),
            );
        }
    };
    let off = flag
        .definition
        .off_variant
        .clone()
        .unwrap_or_else(|| flag.definition.default_variant.clone());
    let body = html! {
        p {
            "Turning " strong { (key) } " off in " strong { (env) } " serves everyone there the off variant "
            code { (off) } " at once. Now: " (serving_badge(&flag.definition, &env))
        }
        form.stack method="post" action=(format!("/flags/{key}/kill")) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="env" value=(env);
            div {
                label for="reason" { "Reason (for the audit log)" }
                input type="text" id="reason" name="reason" size="50";
            }
            div {
                button.danger type="submit" { "Kill " (key) " in " (env) }
                " "
                a href=(format!("/flags/{key}")) { "Cancel" }
            }
        }
    };
    page(Some(&viewer), Section::Flags, &format!("Kill {key}?"), body)
}

#[derive(Debug, Deserialize)]
struct KillForm {
    csrf: Option<String>,
    env: Option<String>,
    reason: Option<String>,
}

async fn kill(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(key): Path<String>,
    form: Result<Form<KillForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = form.ok().map(|Form(f)| f);
    if let Some(refused) =
        viewer.refuse_post(&headers, form.as_ref().and_then(|f| f.csrf.as_deref()))
    {
        return refused;
    }
    let Some(form) = form else {
        return error_page(
            Some(&viewer),
            StatusCode::BAD_REQUEST,
            "the form could not be read",
        );
    };
    let Some(env) = form.env.filter(|e| !e.is_empty()) else {
        return error_page(
            Some(&viewer),
            StatusCode::BAD_REQUEST,
            "env: name the environment to kill the flag in",
        );
    };
    let reason = form.reason.filter(|r| !r.trim().is_empty());
    let result = switch(
        state,
        viewer.caller.clone(),
        headers,
        key.clone(),
        Switch {
            env: Some(env),
            reason,
        },
        false,
    )
    .await;
    respond(&viewer, result, &format!("/flags/{key}")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_must_all_match() {
        let flag: FlagDef = serde_json::from_value(serde_json::json!({
            "type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off",
            "owner": "payments", "tags": ["checkout"]
        }))
        .unwrap();
        assert!(matches("new-cart", &flag, "cart PAYMENTS"));
        assert!(matches("new-cart", &flag, "checkout"));
        assert!(!matches("new-cart", &flag, "cart search"));
    }
}
