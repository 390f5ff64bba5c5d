//! A/B experiment analysis, pure: per variant n, conversion rate or mean, lift against the
//! control with the guardrails' always-valid bounds, a sample ratio mismatch (SRM) check
//! against the flag's split weights, and a verdict in plain words.
//!
//! The statistics are [`crate::rollout::stats`]'s, the module the rollout guardrails use:
//! [`stats::proportion_difference`] or [`stats::mean_difference`], their
//! [`Difference::bounds`] (a confidence sequence, valid however often the report is read), and
//! [`stats::sequential_multinomial_test`] for the SRM, valid however often it is read too.
//! `docs/experiments.md` explains the figures.
//!
//! The unit is the exposure, as everywhere in telemetry: a conversion rate is events over
//! exposures (capped at 1 per exposure), a mean is the summed value over exposures (an
//! exposure without the event counts as 0), exactly as the `event_rate{…}` and
//! `event_mean{…}` guardrails read them.

pub mod simulate;

use serde::{Deserialize, Serialize};

pub use crate::model::{Better, GoalKind};
use crate::model::{FlagDef, RuleDef};
use crate::rollout::stats::{self, Difference, SRM_MIN_PER_ARM, SRM_P_THRESHOLD};

/// The fewest exposures in each compared arm before a winner or a loser may be declared.
pub const MIN_EXPOSURES_PER_ARM: u64 = 100;

/// Variant names taken as the control, in order, when none is named.
pub const CONTROL_NAMES: [&str; 3] = ["control", "off", "false"];

/// One variant's totals over the window: exposures and the goal event's count, sum and sum of
/// squares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmTotals {
    /// The variant.
    pub variant: String,
    /// Exposures served this variant.
    pub exposures: u64,
    /// How many times the goal event was tracked against it.
    pub count: u64,
    /// The sum of the tracked values.
    pub sum: f64,
    /// The sum of their squares.
    pub sum_sq: f64,
    /// The variant's configured split weight, when the flag has one split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// What to analyse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbInput {
    /// The arms, control among them.
    pub arms: Vec<ArmTotals>,
    /// The control's variant.
    pub control: String,
    /// Conversion or mean.
    pub kind: GoalKind,
    /// Which way is an improvement.
    #[serde(default)]
    pub better: Better,
    /// The overall level: two-sided, shared among the treatment arms (Bonferroni).
    pub alpha: f64,
    /// Where the confidence sequence is tightest, in total samples of two arms.
    pub tuning: f64,
}

/// A treatment arm against the control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// Treatment minus control, absolute.
    pub difference: f64,
    /// The always-valid interval on the difference, two-sided at the arm's level.
    pub lo: f64,
    /// Its upper end.
    pub hi: f64,
    /// The relative lift, `difference / control`; `None` when the control's value is 0.
    pub lift: Option<f64>,
    /// The interval divided by the control's value (the control's own uncertainty is not in it).
    pub lift_lo: Option<f64>,
    /// Its upper end.
    pub lift_hi: Option<f64>,
    /// The always-valid two-sided p-value of "no difference".
    pub p_value: f64,
    /// The level this arm was tested at: `alpha / treatment arms`.
    pub alpha: f64,
    /// This arm's call.
    pub call: Call,
}

/// A treatment arm's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    /// The whole interval is on the improving side of zero (above it, or below it for a
    /// goal where lower is better).
    Better,
    /// The whole interval is on the other side.
    Worse,
    /// The interval holds zero, or too few exposures yet.
    Inconclusive,
}

/// One arm in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmReport {
    /// The variant.
    pub variant: String,
    /// Whether it is the control.
    pub control: bool,
    /// Exposures: n.
    pub n: u64,
    /// Goal events tracked.
    pub events: u64,
    /// The conversion rate or the mean per exposure; `None` without exposures.
    pub value: Option<f64>,
    /// Its configured split weight, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Against the control; `None` for the control, or when it cannot be computed yet.
    pub comparison: Option<Comparison>,
}

/// The SRM check of exposures against the split weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SrmCheck {
    /// Whether it ran: it needs weights for every arm and at least
    /// [`SRM_MIN_PER_ARM`] exposures in each.
    pub checked: bool,
    /// The log Bayes factor of the sequential multinomial test, when it ran.
    pub log_bayes_factor: Option<f64>,
    /// Its always-valid p-value, when it ran.
    pub p_value: Option<f64>,
    /// Whether the split is broken: `p_value <` [`SRM_P_THRESHOLD`].
    pub mismatch: bool,
    /// Why it did not run, or what it found.
    pub note: String,
}

/// The verdict on the experiment as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// One treatment is better than the control, and none is better than it.
    Winner,
    /// Every treatment is worse than the control.
    Loser,
    /// Not enough evidence either way.
    Inconclusive,
    /// The exposures do not match the split: the assignment is broken, trust nothing.
    Srm,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbReport {
    /// Conversion or mean.
    pub kind: GoalKind,
    /// The control's variant.
    pub control: String,
    /// Every arm, control first.
    pub arms: Vec<ArmReport>,
    /// The SRM check.
    pub srm: SrmCheck,
    /// The verdict.
    pub verdict: Verdict,
    /// The winning variant, with [`Verdict::Winner`].
    pub winner: Option<String>,
    /// The verdict in plain words.
    pub summary: String,
}

/// The rules an environment serves for `flag`: its own override, else the flag's.
fn rules_in<'a>(flag: &'a FlagDef, environment: &str) -> &'a [RuleDef] {
    flag.environments
        .get(environment)
        .and_then(|o| o.rules.as_deref())
        .unwrap_or(&flag.rules)
}

/// The split weights of `flag` in `environment`, by variant: those of its one split rule, or
/// of every split rule when they all give the same weights. `None` without a split or with
/// splits that disagree, since exposures are not counted per rule.
pub fn split_weights(flag: &FlagDef, environment: &str) -> Option<Vec<(String, u32)>> {
    let mut found: Option<Vec<(String, u32)>> = None;
    for rule in rules_in(flag, environment) {
        let Some(split) = &rule.split else { continue };
        let mut weights: Vec<(String, u32)> = split
            .iter()
            .filter(|w| w.weight > 0)
            .map(|w| (w.variant.clone(), w.weight))
            .collect();
        weights.sort();
        match &found {
            None => found = Some(weights),
            Some(previous) if *previous == weights => {}
            Some(_) => return None,
        }
    }
    found
}

/// The control of `flag` in `environment` among `variants`: `named` if given, else the first
/// of [`CONTROL_NAMES`] among them, else the flag's `offVariant`, else its default variant,
/// else the first variant.
pub fn pick_control(flag: &FlagDef, named: Option<&str>, variants: &[String]) -> Option<String> {
    if let Some(name) = named {
        return variants.iter().any(|v| v == name).then(|| name.to_owned());
    }
    let has = |name: &str| variants.iter().any(|v| v == name);
    CONTROL_NAMES
        .iter()
        .copied()
        .find(|name| has(name))
        .or_else(|| flag.off_variant.as_deref().filter(|v| has(v)))
        .or_else(|| Some(flag.default_variant.as_str()).filter(|v| has(v)))
        .or_else(|| variants.first().map(String::as_str))
        .map(str::to_owned)
}

fn value_of(arm: &ArmTotals, kind: GoalKind) -> Option<f64> {
    if arm.exposures == 0 {
        return None;
    }
    let n = arm.exposures as f64;
    Some(match kind {
        GoalKind::Conversion => arm.count.min(arm.exposures) as f64 / n,
        GoalKind::Mean => arm.sum / n,
    })
}

fn difference(control: &ArmTotals, treatment: &ArmTotals, kind: GoalKind) -> Option<Difference> {
    match kind {
        GoalKind::Conversion => stats::proportion_difference(
            control.exposures,
            control.count.min(control.exposures),
            treatment.exposures,
            treatment.count.min(treatment.exposures),
        ),
        GoalKind::Mean => stats::mean_difference(
            (control.exposures, control.sum, control.sum_sq),
            (treatment.exposures, treatment.sum, treatment.sum_sq),
        ),
    }
}

/// Compares one treatment with the control at the two-sided level `alpha`: one-sided bounds
/// at `alpha / 2` each. `better` says whether an interval above zero is better or worse.
pub fn compare(
    control: &ArmTotals,
    treatment: &ArmTotals,
    kind: GoalKind,
    better: Better,
    alpha: f64,
    tuning: f64,
) -> Option<Comparison> {
    let diff = difference(control, treatment, kind)?;
    let bounds = diff.bounds(alpha / 2.0, tuning);
    if !(bounds.lo.is_finite() && bounds.hi.is_finite()) {
        return None;
    }
    let p_value = (2.0 * diff.p_value(0.0, alpha / 2.0, tuning)).min(1.0);
    let enough =
        control.exposures >= MIN_EXPOSURES_PER_ARM && treatment.exposures >= MIN_EXPOSURES_PER_ARM;
    let (above, below) = match better {
        Better::Higher => (Call::Better, Call::Worse),
        Better::Lower => (Call::Worse, Call::Better),
    };
    let call = if enough && bounds.lo > 0.0 {
        above
    } else if enough && bounds.hi < 0.0 {
        below
    } else {
        Call::Inconclusive
    };
    let base = value_of(control, kind).filter(|v| *v != 0.0);
    let relative = |x: f64| base.map(|b| x / b.abs());
    Some(Comparison {
        difference: diff.estimate,
        lo: bounds.lo,
        hi: bounds.hi,
        lift: relative(diff.estimate),
        lift_lo: relative(bounds.lo),
        lift_hi: relative(bounds.hi),
        p_value,
        alpha,
        call,
    })
}

/// The SRM check of the arms' exposures against their weights.
pub fn srm_check(arms: &[ArmTotals]) -> SrmCheck {
    let not_checked = |note: &str| SrmCheck {
        checked: false,
        log_bayes_factor: None,
        p_value: None,
        mismatch: false,
        note: note.to_owned(),
    };
    let weights: Option<Vec<f64>> = arms.iter().map(|a| a.weight.map(f64::from)).collect();
    let Some(weights) = weights else {
        return not_checked("not checked: the flag has no single split over these variants");
    };
    if arms.iter().any(|a| a.exposures < SRM_MIN_PER_ARM) {
        return not_checked(&format!(
            "not checked yet: fewer than {SRM_MIN_PER_ARM} exposures in an arm"
        ));
    }
    let observed: Vec<u64> = arms.iter().map(|a| a.exposures).collect();
    match stats::sequential_multinomial_test(
        &observed,
        &weights,
        stats::SEQUENTIAL_SRM_CONCENTRATION,
    ) {
        Some(test) => {
            let mismatch = test.p_value < SRM_P_THRESHOLD;
            SrmCheck {
                checked: true,
                log_bayes_factor: Some(test.log_bayes_factor),
                p_value: Some(test.p_value),
                mismatch,
                note: if mismatch {
                    format!(
                        "sample ratio mismatch: exposures do not match the split (p = {:.2e} < {SRM_P_THRESHOLD})",
                        test.p_value
                    )
                } else {
                    format!("exposures match the split (p = {:.3})", test.p_value)
                },
            }
        }
        None => not_checked("not checked: the weights cannot be tested"),
    }
}

fn percent(x: f64) -> String {
    format!("{:+.2}%", x * 100.0)
}

/// Analyses an experiment. Arms with no weight in a weighted split are still reported.
pub fn analyze(input: &AbInput) -> AbReport {
    let control = input.arms.iter().find(|a| a.variant == input.control);
    let treatments: Vec<&ArmTotals> = input
        .arms
        .iter()
        .filter(|a| a.variant != input.control)
        .collect();
    let per_arm_alpha = input.alpha / treatments.len().max(1) as f64;
    let mut arms = Vec::with_capacity(input.arms.len());
    if let Some(c) = control {
        arms.push(ArmReport {
            variant: c.variant.clone(),
            control: true,
            n: c.exposures,
            events: c.count,
            value: value_of(c, input.kind),
            weight: c.weight,
            comparison: None,
        });
    }
    for t in &treatments {
        arms.push(ArmReport {
            variant: t.variant.clone(),
            control: false,
            n: t.exposures,
            events: t.count,
            value: value_of(t, input.kind),
            weight: t.weight,
            comparison: control
                .and_then(|c| compare(c, t, input.kind, input.better, per_arm_alpha, input.tuning)),
        });
    }
    let srm = srm_check(&input.arms);
    let call_of = |a: &ArmReport| a.comparison.map_or(Call::Inconclusive, |c| c.call);
    let better: Vec<&ArmReport> = arms
        .iter()
        .filter(|a| !a.control && call_of(a) == Call::Better)
        .collect();
    let compared = arms.iter().filter(|a| !a.control).count();
    let all_worse = compared > 0
        && arms
            .iter()
            .filter(|a| !a.control)
            .all(|a| call_of(a) == Call::Worse);
    let (verdict, winner, summary) = if srm.mismatch {
        (
            Verdict::Srm,
            None,
            format!(
                "Do not trust these results: {}. Find out why before reading any lift.",
                srm.note
            ),
        )
    } else if control.is_none() {
        (
            Verdict::Inconclusive,
            None,
            format!(
                "Inconclusive: no exposures of the control `{}` yet.",
                input.control
            ),
        )
    } else if let Some(best) = better
        .iter()
        .max_by(|a, b| {
            // The surest improvement: the bound nearest zero is furthest from it.
            let sure = |x: &ArmReport| {
                x.comparison
                    .map_or(f64::NEG_INFINITY, |c| match input.better {
                        Better::Higher => c.lo,
                        Better::Lower => -c.hi,
                    })
            };
            sure(a).total_cmp(&sure(b))
        })
        .copied()
    {
        let lift = best
            .comparison
            .and_then(|c| c.lift.map(percent))
            .unwrap_or_else(|| "-".into());
        (
            Verdict::Winner,
            Some(best.variant.clone()),
            format!(
                "`{}` wins: its {} is better ({} is better) than `{}`'s, by {lift} (always-valid interval excludes no change).",
                best.variant,
                input.kind.name(),
                input.better.name(),
                input.control
            ),
        )
    } else if all_worse {
        (
            Verdict::Loser,
            None,
            format!(
                "Every treatment is worse than `{}` on {} (always-valid interval on the wrong side of zero); keep the control.",
                input.control,
                input.kind.name()
            ),
        )
    } else {
        let short = arms.iter().any(|a| a.n < MIN_EXPOSURES_PER_ARM);
        (
            Verdict::Inconclusive,
            None,
            if short {
                format!(
                    "Inconclusive: fewer than {MIN_EXPOSURES_PER_ARM} exposures in an arm; keep collecting."
                )
            } else {
                "Inconclusive: no treatment is clearly better or worse yet; keep collecting or stop and keep the control.".into()
            },
        )
    };
    AbReport {
        kind: input.kind,
        control: input.control.clone(),
        arms,
        srm,
        verdict,
        winner,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(variant: &str, exposures: u64, count: u64, weight: Option<u32>) -> ArmTotals {
        ArmTotals {
            variant: variant.into(),
            exposures,
            count,
            sum: count as f64,
            sum_sq: count as f64,
            weight,
        }
    }

    fn input(arms: Vec<ArmTotals>, kind: GoalKind) -> AbInput {
        AbInput {
            arms,
            control: "control".into(),
            kind,
            better: Better::Higher,
            alpha: 0.05,
            tuning: 5000.0,
        }
    }

    #[test]
    fn a_clear_lift_is_a_winner_with_its_figures() {
        let report = analyze(&input(
            vec![
                arm("control", 20_000, 2_000, Some(50)),
                arm("treatment", 20_000, 2_600, Some(50)),
            ],
            GoalKind::Conversion,
        ));
        assert_eq!(report.verdict, Verdict::Winner);
        assert_eq!(report.winner.as_deref(), Some("treatment"));
        assert_eq!(report.arms[0].value, Some(0.1));
        let c = report.arms[1].comparison.unwrap();
        assert!((c.difference - 0.03).abs() < 1e-12);
        assert!((c.lift.unwrap() - 0.3).abs() < 1e-9);
        assert!(c.lo > 0.0 && c.hi > c.difference && c.lo < c.difference);
        assert!(report.srm.checked && !report.srm.mismatch);
    }

    #[test]
    fn a_clear_drop_is_a_loser_and_no_difference_is_inconclusive() {
        let loser = analyze(&input(
            vec![
                arm("control", 20_000, 2_600, Some(1)),
                arm("treatment", 20_000, 2_000, Some(1)),
            ],
            GoalKind::Conversion,
        ));
        assert_eq!(loser.verdict, Verdict::Loser);
        let same = analyze(&input(
            vec![
                arm("control", 20_000, 2_000, Some(1)),
                arm("treatment", 20_000, 2_010, Some(1)),
            ],
            GoalKind::Conversion,
        ));
        assert_eq!(same.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn where_lower_is_better_a_drop_wins_and_a_rise_loses() {
        let arms = |treatment: u64| {
            vec![
                arm("control", 20_000, 2_000, None),
                arm("treatment", 20_000, treatment, None),
            ]
        };
        let lower = |arms| AbInput {
            better: Better::Lower,
            ..input(arms, GoalKind::Conversion)
        };
        let dropped = analyze(&lower(arms(1_400)));
        assert_eq!(dropped.verdict, Verdict::Winner, "{}", dropped.summary);
        assert_eq!(dropped.winner.as_deref(), Some("treatment"));
        assert!(
            dropped.summary.contains("lower is better"),
            "{}",
            dropped.summary
        );
        assert_eq!(analyze(&lower(arms(2_600))).verdict, Verdict::Loser);
        // The same counts read the usual way.
        assert_eq!(
            analyze(&input(arms(1_400), GoalKind::Conversion)).verdict,
            Verdict::Loser
        );
    }

    #[test]
    fn a_broken_split_is_srm_whatever_the_lift() {
        let report = analyze(&input(
            vec![
                arm("control", 20_000, 2_000, Some(50)),
                arm("treatment", 15_000, 3_000, Some(50)),
            ],
            GoalKind::Conversion,
        ));
        assert_eq!(report.verdict, Verdict::Srm);
        assert!(report.srm.mismatch);
        assert!(report.summary.starts_with("Do not trust"));
        // A 90/10 split with those exposures is about right, though.
        let weighted = analyze(&input(
            vec![
                arm("control", 18_000, 1_800, Some(90)),
                arm("treatment", 2_000, 200, Some(10)),
            ],
            GoalKind::Conversion,
        ));
        assert!(!weighted.srm.mismatch && weighted.srm.checked);
    }

    #[test]
    fn means_use_sums_of_squares_and_few_exposures_never_decide() {
        let mean_arm = |variant: &str, n: u64, mean: f64| ArmTotals {
            variant: variant.into(),
            exposures: n,
            count: n,
            sum: mean * n as f64,
            sum_sq: (mean * mean + 4.0) * n as f64,
            weight: None,
        };
        let report = analyze(&input(
            vec![
                mean_arm("control", 10_000, 10.0),
                mean_arm("treatment", 10_000, 10.5),
            ],
            GoalKind::Mean,
        ));
        assert_eq!(report.verdict, Verdict::Winner);
        assert!(!report.srm.checked);
        let few = analyze(&input(
            vec![arm("control", 50, 0, None), arm("treatment", 50, 50, None)],
            GoalKind::Conversion,
        ));
        assert_eq!(few.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn conversions_are_capped_at_exposures_and_alpha_is_shared() {
        let report = analyze(&input(
            vec![
                arm("control", 1_000, 5_000, None),
                arm("a", 1_000, 100, None),
                arm("b", 1_000, 100, None),
            ],
            GoalKind::Conversion,
        ));
        assert_eq!(report.arms[0].value, Some(1.0));
        assert_eq!(report.arms[1].comparison.unwrap().alpha, 0.025);
        assert_eq!(report.verdict, Verdict::Loser);
    }

    #[test]
    fn weights_and_control_come_from_the_flag() {
        let flag: FlagDef = serde_json::from_value(serde_json::json!({
            "type": "string",
            "variants": { "control": "a", "treatment": "b" },
            "default_variant": "control",
            "rules": [
                { "split": [ { "variant": "treatment", "weight": 30 }, { "variant": "control", "weight": 70 } ] }
            ],
            "environments": { "staging": { "rules": [ { "serve": "treatment" } ] } }
        }))
        .unwrap();
        let weights = split_weights(&flag, "production").unwrap();
        assert_eq!(
            weights,
            vec![("control".into(), 70), ("treatment".into(), 30)]
        );
        assert_eq!(split_weights(&flag, "staging"), None);
        let variants = vec!["treatment".to_owned(), "control".to_owned()];
        assert_eq!(
            pick_control(&flag, None, &variants).as_deref(),
            Some("control")
        );
        assert_eq!(pick_control(&flag, Some("nope"), &variants), None);
    }
}
