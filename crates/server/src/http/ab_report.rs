//! A/B experiments: `GET /api/v1/experiments/{key}/report` analyses a flag with variants
//! against one goal event: `?metric=` (and `kind=`), else the flag's first declared goal.
//!
//! It reads the flag's telemetry aggregates (exposures and the goal event's count, sum and sum
//! of squares per variant) over the window, the flag's split weights in the environment, and
//! runs core's [`sluice_core::ab::analyze`] with the guardrails' default α and tuning. The
//! access is the telemetry reads': an admin token with `?env=`, or a server token of the
//! environment.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_core::ab::{AbInput, ArmTotals, Better, GoalKind, analyze, pick_control, split_weights};
use sluice_core::model::GoalDef;
use sluice_core::rollout::{DEFAULT_ALPHA, DEFAULT_TUNING};
use sluice_core::telemetry::bucket_start;

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::telemetry::observed_environment;
use crate::state::{AppState, now_ms};
use crate::store::telemetry::totals_by_variant;

/// The window the report covers when `since` is not given: the last 7 days.
pub const DEFAULT_REPORT_WINDOW_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// The most aggregate rows one report reads; a longer window is refused (422).
pub const MAX_REPORT_ROWS: u32 = 500_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    env: Option<String>,
    metric: Option<String>,
    kind: Option<String>,
    better: Option<String>,
    control: Option<String>,
    since: Option<i64>,
}

pub(crate) async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Query(query): Query<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    let environment = observed_environment(&state, &caller, query.env.as_deref()).await?;
    let kind = query
        .kind
        .as_deref()
        .map(|name| {
            GoalKind::from_name(name).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`kind` must be `conversion` or `mean`, not `{name}`"
                ))
            })
        })
        .transpose()?;
    let flag = state
        .store()
        .get_flag(&key)
        .await
        .map_err(|e| ApiError::from_store(e, &format!("flag `{key}`")))?
        .definition;
    let better = query
        .better
        .as_deref()
        .map(|name| {
            Better::from_name(name).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`better` must be `higher` or `lower`, not `{name}`"
                ))
            })
        })
        .transpose()?;
    // The goal: the one named, or the flag's primary goal; measured as its declaration says
    // unless `kind` and `better` say otherwise.
    let declared = match query.metric.as_deref().filter(|m| !m.is_empty()) {
        Some(metric) => flag
            .goals
            .iter()
            .find(|g| g.event == metric)
            .cloned()
            .or_else(|| {
                Some(GoalDef {
                    event: metric.to_owned(),
                    kind: GoalKind::default(),
                    better: Better::default(),
                })
            }),
        None => flag.goals.first().cloned(),
    };
    let Some(goal) = declared else {
        return Err(ApiError::BadRequest(format!(
            "`metric` is required: flag `{key}` declares no `goals`; name the goal event, such as `?metric=purchase`"
        )));
    };
    let metric = goal.event;
    let kind = kind.unwrap_or(goal.kind);
    let better = better.unwrap_or(goal.better);
    let since = bucket_start(
        query
            .since
            .unwrap_or_else(|| now_ms().saturating_sub(DEFAULT_REPORT_WINDOW_MS)),
    );
    let rows = state
        .store()
        .flag_metrics(&environment, &key, since, MAX_REPORT_ROWS + 1)
        .await?;
    if rows.len() > MAX_REPORT_ROWS as usize {
        return Err(ApiError::BadRequest(format!(
            "`since`: the window holds more than {MAX_REPORT_ROWS} aggregate rows; start it later"
        )));
    }
    let totals = totals_by_variant(&rows);
    let weights: Option<BTreeMap<String, u32>> =
        split_weights(&flag, &environment).map(|w| w.into_iter().collect());
    // The arms: the split's variants when the flag has one split, else every variant it
    // declares.
    let variants: Vec<String> = match &weights {
        Some(w) => w.keys().cloned().collect(),
        None => flag.variants.keys().cloned().collect(),
    };
    let Some(control) = pick_control(&flag, query.control.as_deref(), &variants) else {
        return Err(ApiError::BadRequest(format!(
            "`control`: `{}` is not one of the experiment's variants ({})",
            query.control.as_deref().unwrap_or_default(),
            variants.join(", ")
        )));
    };
    let arms: Vec<ArmTotals> = variants
        .iter()
        .map(|variant| {
            let aggregate = totals.get(variant);
            let event = aggregate.and_then(|a| a.events.get(&metric));
            ArmTotals {
                variant: variant.clone(),
                exposures: aggregate.map_or(0, |a| a.exposures),
                count: event.map_or(0, |e| e.count),
                sum: event.map_or(0.0, |e| e.sum),
                sum_sq: event.map_or(0.0, |e| e.sum_sq),
                weight: weights.as_ref().and_then(|w| w.get(variant).copied()),
            }
        })
        .collect();
    let analysis = analyze(&AbInput {
        arms,
        control,
        kind,
        better,
        alpha: DEFAULT_ALPHA,
        tuning: DEFAULT_TUNING,
    });
    Ok(Json(json!({
        "flag": key,
        "env": environment,
        "metric": metric,
        "kind": kind,
        "better": better,
        "goals": flag.goals,
        "since": since,
        "alpha": DEFAULT_ALPHA,
        "report": analysis,
    })))
}
