//! The learning report: change failure rate, median time to full rollout, mean time to
//! restore and rollbacks by cause, in total and split by provenance and by risk, each with
//! its counts so a rate over three releases is not mistaken for one over three hundred.
//!
//! Definitions (the server builds the records from rollout transitions):
//! - a release is *started* when one of its rollouts started, and *failed* when one of its
//!   rollouts was rolled back or killed; change failure rate = failed / started;
//! - time to full rollout = when its last rollout completed − when its first started, for
//!   releases whose rollouts all completed; the median of those;
//! - time to restore = a rollback's (or kill's) time − when the stage it left began, i.e. how
//!   long the failing exposure lasted; the mean over every restore;
//! - rollbacks by cause: `guardrail:<metric>` for the controller's, `manual` for a person's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Provenance, Risk};

/// One rollback or kill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRecord {
    /// `guardrail:<metric>`, `guardrail`, or `manual`.
    pub cause: String,
    /// When the exposure that failed began.
    pub exposed_ms: i64,
    /// When it was restored.
    pub restored_ms: i64,
}

/// What happened to one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRecord {
    /// Who wrote it.
    pub provenance: Provenance,
    /// Its risk.
    pub risk: Risk,
    /// When its first rollout started.
    pub started_ms: Option<i64>,
    /// When its last rollout completed, if all completed.
    pub completed_ms: Option<i64>,
    /// Its rollbacks and kills.
    pub restores: Vec<RestoreRecord>,
}

/// The figures over a set of releases.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Releases counted.
    pub releases: u64,
    /// Of those, started.
    pub started: u64,
    /// Of those, with a rollback or kill.
    pub failed: u64,
    /// failed / started; `None` when none started.
    pub change_failure_rate: Option<f64>,
    /// Releases fully rolled out.
    pub full_rollouts: u64,
    /// The median time from start to full rollout, in milliseconds.
    pub median_time_to_full_rollout_ms: Option<f64>,
    /// Rollbacks and kills.
    pub restores: u64,
    /// The mean time to restore, in milliseconds.
    pub mean_time_to_restore_ms: Option<f64>,
    /// Rollbacks and kills by cause.
    pub rollbacks_by_cause: BTreeMap<String, u64>,
}

/// The figures of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupFigures {
    /// The provenance, when the group is split by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// The risk, when the group is split by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    /// The figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// The whole report. Groups with no release are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Every release.
    pub total: Figures,
    /// Split by provenance.
    pub by_provenance: Vec<GroupFigures>,
    /// Split by risk.
    pub by_risk: Vec<GroupFigures>,
    /// Split by both.
    pub by_provenance_and_risk: Vec<GroupFigures>,
}

const PROVENANCES: [Provenance; 3] = [Provenance::AiAssisted, Provenance::Human, Provenance::Mixed];
const RISKS: [Risk; 3] = [Risk::Low, Risk::Medium, Risk::High];

/// The median of `values`: the mean of the two middle values for an even count.
fn median(values: &mut [i64]) -> Option<f64> {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => values.get(n / 2).map(|v| *v as f64),
        _ => {
            let low = *values.get(n / 2 - 1)? as f64;
            let high = *values.get(n / 2)? as f64;
            Some((low + high) / 2.0)
        }
    }
}

/// The figures over `records`.
pub fn figures<'a>(records: impl IntoIterator<Item = &'a ReleaseRecord>) -> Figures {
    let mut out = Figures::default();
    let mut to_full = Vec::new();
    let mut restore_total: i128 = 0;
    for record in records {
        out.releases += 1;
        let Some(started) = record.started_ms else {
            continue;
        };
        out.started += 1;
        if !record.restores.is_empty() {
            out.failed += 1;
        }
        if let Some(completed) = record.completed_ms {
            out.full_rollouts += 1;
            to_full.push(completed.saturating_sub(started).max(0));
        }
        for restore in &record.restores {
            out.restores += 1;
            restore_total += i128::from(
                restore
                    .restored_ms
                    .saturating_sub(restore.exposed_ms)
                    .max(0),
            );
            *out.rollbacks_by_cause
                .entry(restore.cause.clone())
                .or_default() += 1;
        }
    }
    out.change_failure_rate = (out.started > 0).then(|| out.failed as f64 / out.started as f64);
    out.median_time_to_full_rollout_ms = median(&mut to_full);
    out.mean_time_to_restore_ms =
        (out.restores > 0).then(|| restore_total as f64 / out.restores as f64);
    out
}

/// The report over `records`.
pub fn report(records: &[ReleaseRecord]) -> Report {
    let group = |provenance: Option<Provenance>, risk: Option<Risk>| {
        let matching: Vec<&ReleaseRecord> = records
            .iter()
            .filter(|r| provenance.is_none_or(|p| r.provenance == p))
            .filter(|r| risk.is_none_or(|k| r.risk == k))
            .collect();
        (!matching.is_empty()).then(|| GroupFigures {
            provenance,
            risk,
            figures: figures(matching),
        })
    };
    Report {
        total: figures(records),
        by_provenance: PROVENANCES
            .into_iter()
            .filter_map(|p| group(Some(p), None))
            .collect(),
        by_risk: RISKS
            .into_iter()
            .filter_map(|k| group(None, Some(k)))
            .collect(),
        by_provenance_and_risk: PROVENANCES
            .into_iter()
            .flat_map(|p| RISKS.into_iter().map(move |k| (p, k)))
            .filter_map(|(p, k)| group(Some(p), Some(k)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        provenance: Provenance,
        risk: Risk,
        started: Option<i64>,
        completed: Option<i64>,
        restores: &[(&str, i64, i64)],
    ) -> ReleaseRecord {
        ReleaseRecord {
            provenance,
            risk,
            started_ms: started,
            completed_ms: completed,
            restores: restores
                .iter()
                .map(|(cause, exposed, restored)| RestoreRecord {
                    cause: (*cause).into(),
                    exposed_ms: *exposed,
                    restored_ms: *restored,
                })
                .collect(),
        }
    }

    #[test]
    fn empty_history_has_no_rates() {
        let report = report(&[]);
        assert_eq!(report.total, Figures::default());
        assert!(report.by_provenance.is_empty());
    }

    #[test]
    fn figures_are_split_and_counted() {
        use Provenance::{AiAssisted, Human};
        use Risk::{High, Low};
        let records = [
            record(
                AiAssisted,
                High,
                Some(0),
                None,
                &[("guardrail:error_rate", 100, 400)],
            ),
            record(AiAssisted, High, Some(0), Some(1_000), &[]),
            record(AiAssisted, Low, Some(0), Some(3_000), &[("manual", 0, 200)]),
            record(Human, Low, Some(10), Some(2_010), &[]),
            record(Human, Low, None, None, &[]),
        ];
        let report = report(&records);
        let total = &report.total;
        assert_eq!((total.releases, total.started, total.failed), (5, 4, 2));
        assert_eq!(total.change_failure_rate, Some(0.5));
        // 1000, 2000, 3000: the middle one.
        assert_eq!(total.median_time_to_full_rollout_ms, Some(2_000.0));
        assert_eq!(total.full_rollouts, 3);
        assert_eq!(total.mean_time_to_restore_ms, Some(250.0));
        assert_eq!(total.rollbacks_by_cause["manual"], 1);
        assert_eq!(total.rollbacks_by_cause["guardrail:error_rate"], 1);

        let ai = &report.by_provenance[0];
        assert_eq!(ai.provenance, Some(AiAssisted));
        assert_eq!(ai.figures.change_failure_rate, Some(2.0 / 3.0));
        // 1000 and 3000: the mean of the two.
        assert_eq!(ai.figures.median_time_to_full_rollout_ms, Some(2_000.0));
        let human = &report.by_provenance[1];
        assert_eq!((human.figures.releases, human.figures.started), (2, 1));
        assert_eq!(human.figures.change_failure_rate, Some(0.0));
        assert_eq!(human.figures.mean_time_to_restore_ms, None);

        let risks: Vec<(Option<Risk>, u64)> = report
            .by_risk
            .iter()
            .map(|g| (g.risk, g.figures.releases))
            .collect();
        assert_eq!(risks, [(Some(Low), 3), (Some(High), 2)]);
        let ai_high = report
            .by_provenance_and_risk
            .iter()
            .find(|g| g.provenance == Some(AiAssisted) && g.risk == Some(High))
            .unwrap();
        assert_eq!(ai_high.figures.change_failure_rate, Some(0.5));
        assert_eq!(ai_high.figures.mean_time_to_restore_ms, Some(300.0));
        assert_eq!(report.by_provenance_and_risk.len(), 3);
    }
}
