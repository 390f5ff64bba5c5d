//! One flag: its variants and rules in words, its state per environment, and per-variant
//! charts over the last hours (exposures, error rate, latency p99, shadow mismatch rate).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use sluice_core::lifecycle::{Serving, serving};
use sluice_core::model::{ConditionDef, Operator, RuleDef};

use super::chart::{Series, Unit, line_chart};
use super::flags::serving_badge;
use super::layout::{Section, error_page, page};
use super::session::Viewer;
use crate::state::{AppState, now_ms};
use crate::store::telemetry::{Aggregate, AggregateRow};

/// How far back the charts look.
pub const CHART_WINDOW_MS: i64 = 6 * 60 * 60 * 1000;
/// At most this many aggregate rows per environment are read.
const MAX_ROWS: u32 = 20_000;

fn operator_words(op: Operator) -> String {
    match op {
        Operator::Eq => "is".into(),
        Operator::Neq => "is not".into(),
        Operator::In => "is one of".into(),
        Operator::NotIn => "is none of".into(),
        Operator::Lt => "<".into(),
        Operator::Lte => "≤".into(),
        Operator::Gt => ">".into(),
        Operator::Gte => "≥".into(),
        other => other.as_str().replace('_', " "),
    }
}

/// One condition in words: `country is one of "de", "fr"`, `in segment beta`.
pub fn describe_condition(condition: &ConditionDef) -> String {
    let not = if condition.negate { "not " } else { "" };
    if let Some(segment) = &condition.segment {
        return format!("{not}in segment {segment}");
    }
    let attribute = condition.attribute.as_deref().unwrap_or("?");
    let op = condition.op.map_or_else(|| "?".to_owned(), operator_words);
    let operand = match (&condition.value, &condition.values) {
        (Some(value), _) => value.to_string(),
        (None, Some(values)) => values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        (None, None) => String::new(),
    };
    format!("{not}{attribute} {op} {operand}")
        .trim_end()
        .to_owned()
}

/// One rule in words: `when A and B, serve on` or `…, split on 10% / off 90%`.
pub fn describe_rule(rule: &RuleDef) -> String {
    let when = if rule.when.is_empty() {
        "everyone".to_owned()
    } else {
        format!(
            "when {}",
            rule.when
                .iter()
                .map(describe_condition)
                .collect::<Vec<_>>()
                .join(" and ")
        )
    };
    let serve = match (&rule.serve, &rule.split) {
        (Some(variant), _) => format!("serve {variant}"),
        (None, Some(split)) => {
            let total: u64 = split
                .iter()
                .map(|w| u64::from(w.weight))
                .sum::<u64>()
                .max(1);
            format!(
                "split {}",
                split
                    .iter()
                    .map(|w| format!(
                        "{} {:.1}%",
                        w.variant,
                        u64::from(w.weight) as f64 * 100.0 / total as f64
                    ))
                    .collect::<Vec<_>>()
                    .join(" / ")
            )
        }
        (None, None) => "serve nothing".to_owned(),
    };
    format!("{when}: {serve}")
}

fn rules_list(rules: &[RuleDef], default: &str) -> Markup {
    html! {
        ol {
            @for rule in rules {
                li {
                    @if let Some(name) = &rule.name { strong { (name) } ": " }
                    (describe_rule(rule))
                }
            }
            li { "otherwise: serve " code { (default) } }
        }
    }
}

/// Per-variant series from aggregate rows: (exposures, error rate, p99 latency).
pub fn variant_series(rows: &[AggregateRow]) -> (Vec<Series>, Vec<Series>, Vec<Series>) {
    let mut merged: BTreeMap<&str, BTreeMap<i64, Aggregate>> = BTreeMap::new();
    for row in rows.iter().filter(|r| !r.variant.is_empty()) {
        merged
            .entry(row.variant.as_str())
            .or_default()
            .entry(row.start_ms)
            .or_default()
            .merge(&row.aggregate);
    }
    let mut exposures = Vec::new();
    let mut errors = Vec::new();
    let mut latency = Vec::new();
    for (variant, buckets) in merged {
        let name = variant.to_owned();
        exposures.push(Series {
            name: name.clone(),
            points: buckets
                .iter()
                .map(|(t, a)| (*t, a.exposures as f64))
                .collect(),
        });
        errors.push(Series {
            name: name.clone(),
            points: buckets
                .iter()
                .filter(|(_, a)| a.exposures > 0)
                .map(|(t, a)| (*t, a.errors.min(a.exposures) as f64 / a.exposures as f64))
                .collect(),
        });
        latency.push(Series {
            name,
            points: buckets
                .iter()
                .filter_map(|(t, a)| {
                    a.latency
                        .as_ref()
                        .and_then(|l| l.quantile(0.99))
                        .map(|p| (*t, p))
                })
                .collect(),
        });
    }
    (exposures, errors, latency)
}

async fn charts(state: &AppState, key: &str, env: &str) -> Markup {
    let since = now_ms() - CHART_WINDOW_MS;
    let store = state.store();
    let rows = store
        .flag_metrics(env, key, since, MAX_ROWS)
        .await
        .unwrap_or_default();
    let shadow = store
        .shadow_metrics(env, key, since)
        .await
        .unwrap_or_default();
    let (exposures, errors, latency) = variant_series(&rows);
    let mismatch: Vec<(i64, f64)> = {
        let mut by_bucket: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        for row in &shadow {
            let entry = by_bucket.entry(row.start_ms).or_default();
            entry.0 += row.report.mismatches;
            entry.1 += row.report.matches + row.report.mismatches;
        }
        by_bucket
            .into_iter()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(t, (m, n))| (t, m as f64 / n as f64))
            .collect()
    };
    let id = |what: &str| format!("chart-{env}-{what}");
    html! {
        div.charts {
            (line_chart(&id("exposures"), "Exposures per 10 s", Unit::Count, &exposures))
            (line_chart(&id("errors"), "Error rate", Unit::Rate, &errors))
            (line_chart(&id("p99"), "Latency p99", Unit::Millis, &latency))
            @if !mismatch.is_empty() {
                (line_chart(&id("shadow"), "Shadow mismatch rate", Unit::Rate,
                    &[Series { name: "candidate".into(), points: mismatch }]))
            }
        }
    }
}

/// `GET /flags/{key}`.
pub async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
) -> Response {
    let store = state.store();
    let flag = match store.get_flag(&key).await {
        Ok(flag) => flag,
        Err(_) => {
            return error_page(
                Some(&viewer),
                StatusCode::NOT_FOUND,
                &format!("flag `{key}` does not exist"),
            );
        }
    };
    let environments: Vec<String> = store
        .list_environments()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.name)
        .filter(|e| viewer.sees(e))
        .collect();
    let def = &flag.definition;
    let mut sections = Vec::new();
    for env in &environments {
        let over = def.environments.get(env);
        let rules = over.and_then(|o| o.rules.as_deref()).unwrap_or(&def.rules);
        let default = over
            .and_then(|o| o.default_variant.as_deref())
            .unwrap_or(&def.default_variant);
        let charts = charts(&state, &key, env).await;
        let dry_run = if viewer.can_write() {
            super::dry_run::panel(&state, &key, env).await
        } else {
            None
        };
        sections.push(html! {
            section aria-labelledby=(format!("env-{env}")) {
                h2 id=(format!("env-{env}")) { (env) " " (serving_badge(def, env)) }
                @if viewer.can_write() && !matches!(serving(def, env), Serving::Off) {
                    p { a.button.danger href=(format!("/flags/{key}/kill?env={env}")) { "Kill in " (env) } }
                }
                @if !matches!(serving(def, env), Serving::Off) {
                    h3 { "Rules" }
                    (rules_list(rules, default))
                } @else {
                    p { "Off: everyone gets " code { (def.off_variant.as_deref().unwrap_or(&def.default_variant)) } "." }
                }
                @if let Some(dry_run) = dry_run { (dry_run) }
                h3 { "Per variant, last 6 hours" }
                (charts)
            }
        });
    }
    let body = html! {
        @if let Some(d) = &def.description { p { (d) } }
        dl {
            dt { "Type" } dd { (format!("{:?}", def.flag_type).to_lowercase()) }
            dt { "Owner" } dd { (def.owner.as_deref().unwrap_or("-")) }
            dt { "Provenance" } dd { (def.provenance.map_or("-", |p| p.as_str())) }
            dt { "Risk" } dd { (def.risk.map_or("-", |r| r.as_str())) }
            dt { "Version" } dd { (flag.version) }
            @if let Some(e) = &def.expires { dt { "Expires" } dd { (e) } }
        }
        h2 { "Variants" }
        div.table-wrap {
            table {
                thead { tr { th scope="col" { "Variant" } th scope="col" { "Value" } th scope="col" { "Role" } } }
                tbody {
                    @for (name, value) in &def.variants {
                        tr {
                            th scope="row" { (name) }
                            td { code { (value.to_string()) } }
                            td {
                                @if *name == def.default_variant { "default " }
                                @if def.off_variant.as_deref() == Some(name.as_str()) { "off" }
                            }
                        }
                    }
                }
            }
        }
        @if !def.prerequisites.is_empty() {
            h2 { "Prerequisites" }
            ul { @for p in &def.prerequisites { li { (p.flag) " must be " code { (p.variant) } } } }
        }
        @for section in sections { (section) }
    };
    page(Some(&viewer), Section::Flags, &key, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_as_sentences() {
        let rule: RuleDef = serde_json::from_value(serde_json::json!({
            "name": "staff",
            "when": [{"attribute": "country", "op": "in", "values": ["de", "fr"]},
                     {"segment": "beta", "negate": true}],
            "split": [{"variant": "on", "weight": 1}, {"variant": "off", "weight": 3}]
        }))
        .unwrap();
        assert_eq!(
            describe_rule(&rule),
            "when country is one of \"de\", \"fr\" and not in segment beta: split on 25.0% / off 75.0%"
        );
    }
}
