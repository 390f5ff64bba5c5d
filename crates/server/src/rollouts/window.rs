//! The current stage's window: telemetry aggregates turned into the judge's arms.
//!
//! Rows of the control variant make the control arm and rows of the treatment variant the
//! treatment arm; other variants are left out. Only rows from the 10-second bucket holding
//! the stage's start on, and reported under the configuration version that wrote the
//! stage's exposure or a later one, are counted. Each metric of the plan is built from them:
//!
//! | metric | data |
//! |---|---|
//! | `error_rate` | proportions: exposures, errors (capped at exposures) |
//! | `crash_rate` | proportions: exposures, crashes (capped at exposures) |
//! | `latency_pNN` | the merged latency sketches (an arm without one is empty) |
//! | `event_rate{e}` | proportions: exposures, the event's count (capped at exposures) |
//! | `event_mean{e}` | moments: exposures, the event's sum and sum of squares |
//! | `shadow_mismatch_rate` | the shadow results of the experiment named like the flag: treatment arm = comparisons and mismatches, control arm = the noise floor (control against itself); judged as one rate against an absolute bound |
//!
//! A metric no arm reported anything for is left out, and the judge calls it inconclusive.

use sluice_core::rollout::{
    Arms, Metric, MetricData, Moments, Observation, Proportions, RolloutState, Window,
};
use sluice_core::shadow::ShadowTotals;
use sluice_core::telemetry::BUCKET_MS;

use crate::store::telemetry::arm_totals;
use crate::store::{Aggregate, AggregateRow, Store, StoreError, StoredRollout};

/// Rows read per query while gathering a window.
const PAGE: u32 = 5_000;

/// The window of `rollout`'s current stage at `now_ms`, from the store's telemetry.
pub async fn gather(
    store: &dyn Store,
    rollout: &StoredRollout,
    now_ms: i64,
) -> Result<Window, StoreError> {
    let state = &rollout.state;
    let mut rows: Vec<AggregateRow> = Vec::new();
    let mut since = state.stage_started_ms;
    loop {
        let mut page = store
            .flag_metrics(&state.environment, &state.flag, since, PAGE)
            .await?;
        let full = page.len() >= PAGE as usize;
        if full && let Some(last) = page.last().map(|r| r.start_ms) {
            // The last bucket may continue on the next page: read it again whole.
            if page.iter().all(|r| r.start_ms == last) {
                // One bucket holds more rows than a page; count what fits.
                rows.append(&mut page);
                since = last + BUCKET_MS;
                continue;
            }
            page.retain(|r| r.start_ms < last);
            rows.append(&mut page);
            since = last;
            continue;
        }
        rows.append(&mut page);
        break;
    }
    rows.retain(|r| r.config_version >= rollout.exposure_version);
    let mut window = window_of(state, &rows);
    if state
        .plan
        .guardrails
        .iter()
        .any(|g| g.metric == Metric::ShadowMismatchRate)
    {
        let mut shadow = store
            .shadow_metrics(&state.environment, &state.flag, state.stage_started_ms)
            .await?;
        shadow.retain(|r| r.config_version >= rollout.exposure_version);
        if let Some(observation) = shadow_observation(&crate::store::shadow::totals(&shadow)) {
            window.metrics.push(observation);
        }
    }
    window.elapsed = state.elapsed(now_ms);
    Ok(window)
}

/// The window that `rows` (already limited to the stage) make for `state`'s plan.
pub fn window_of(state: &RolloutState, rows: &[AggregateRow]) -> Window {
    let arms = arm_totals(rows, &[state.control.as_str()], &[state.treatment.as_str()]);
    let metrics = state
        .plan
        .guardrails
        .iter()
        .filter_map(|guardrail| {
            observe(&guardrail.metric, &arms).map(|data| Observation {
                metric: guardrail.metric.clone(),
                data,
            })
        })
        .collect();
    Window {
        elapsed: std::time::Duration::ZERO,
        exposures: Arms {
            control: arms.control.exposures,
            treatment: arms.treatment.exposures,
        },
        metrics,
        approvals: u32::try_from(state.approvals.len()).unwrap_or(u32::MAX),
    }
}

/// The `shadow_mismatch_rate` observation of summed shadow results; `None` when nothing was
/// compared and no noise measured, so the guardrail is inconclusive.
pub fn shadow_observation(totals: &ShadowTotals) -> Option<Observation> {
    if totals.comparisons() == 0 && totals.noise_comparisons == 0 {
        return None;
    }
    Some(Observation {
        metric: Metric::ShadowMismatchRate,
        data: MetricData::Proportions(Arms {
            control: Proportions {
                n: totals.noise_comparisons,
                k: totals.noise_mismatches.min(totals.noise_comparisons),
            },
            treatment: Proportions {
                n: totals.comparisons(),
                k: totals.mismatches,
            },
        }),
    })
}

fn proportions(arms: &Arms<Aggregate>, events: impl Fn(&Aggregate) -> u64) -> MetricData {
    let of = |a: &Aggregate| Proportions {
        n: a.exposures,
        k: events(a).min(a.exposures),
    };
    MetricData::Proportions(Arms {
        control: of(&arms.control),
        treatment: of(&arms.treatment),
    })
}

fn observe(metric: &Metric, arms: &Arms<Aggregate>) -> Option<MetricData> {
    let reported = arms.control.exposures > 0 || arms.treatment.exposures > 0;
    match metric {
        Metric::ErrorRate => reported.then(|| proportions(arms, |a| a.errors)),
        Metric::CrashRate => reported.then(|| proportions(arms, |a| a.crashes)),
        Metric::LatencyP50 | Metric::LatencyP95 | Metric::LatencyP99 => {
            if arms.control.latency.is_none() && arms.treatment.latency.is_none() {
                return None;
            }
            let sketch = |a: &Aggregate| a.latency.clone().unwrap_or_default();
            Some(MetricData::Latency(Box::new(Arms {
                control: sketch(&arms.control),
                treatment: sketch(&arms.treatment),
            })))
        }
        Metric::EventRate(event) => {
            reported.then(|| proportions(arms, |a| a.events.get(event).map_or(0, |e| e.count)))
        }
        Metric::EventMean(event) => reported.then(|| {
            let of = |a: &Aggregate| {
                let totals = a.events.get(event);
                Moments {
                    n: a.exposures,
                    sum: totals.map_or(0.0, |e| e.sum),
                    sum_sq: totals.map_or(0.0, |e| e.sum_sq),
                }
            };
            MetricData::Moments(Arms {
                control: of(&arms.control),
                treatment: of(&arms.treatment),
            })
        }),
        Metric::ShadowMismatchRate => None,
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::rollout::{RolloutState, Template};

    use super::*;

    fn row(variant: &str, version: i64, exposures: u64, errors: u64) -> AggregateRow {
        AggregateRow {
            flag: "checkout".into(),
            variant: variant.into(),
            config_version: version,
            start_ms: 0,
            aggregate: Aggregate {
                exposures,
                errors,
                ..Aggregate::default()
            },
        }
    }

    #[test]
    fn arms_come_from_the_two_variants_and_rates_are_capped() {
        let state = RolloutState::new(
            Template::Standard.plan(),
            "checkout",
            "production",
            "on",
            "off",
        );
        let rows = [
            row("off", 3, 900, 9),
            row("on", 3, 100, 500),
            row("other", 3, 50, 50),
        ];
        let window = window_of(&state, &rows);
        assert_eq!(window.exposures.control, 900);
        assert_eq!(window.exposures.treatment, 100);
        match window.data(&Metric::ErrorRate) {
            Some(MetricData::Proportions(arms)) => {
                assert_eq!(arms.control, Proportions { n: 900, k: 9 });
                assert_eq!(arms.treatment, Proportions { n: 100, k: 100 });
            }
            other => panic!("{other:?}"),
        }
        assert!(
            window.data(&Metric::LatencyP99).is_none(),
            "no sketches, no data"
        );
    }

    #[test]
    fn shadow_results_make_the_mismatch_rate_with_the_noise_floor_as_control() {
        assert!(shadow_observation(&ShadowTotals::default()).is_none());
        let totals = ShadowTotals {
            matches: 990,
            mismatches: 10,
            ignored: 7,
            noise_comparisons: 50,
            noise_mismatches: 1,
            ..ShadowTotals::default()
        };
        match shadow_observation(&totals).map(|o| o.data) {
            Some(MetricData::Proportions(arms)) => {
                assert_eq!(arms.treatment, Proportions { n: 1000, k: 10 });
                assert_eq!(arms.control, Proportions { n: 50, k: 1 });
            }
            other => panic!("{other:?}"),
        }
    }
}
