//! A flag's lifecycle, pure: active, rolled out, stale or archived, with the reasons a flag
//! is stale, classified from facts the server gathers (definition, last change, last
//! evaluation, archive mark) and a `now` it passes in.
//!
//! - **Archived** is an explicit mark someone set; everything else is computed.
//! - **Stale** when at least one reason holds: the flag is settled (every environment
//!   serves one variant to everyone, or has the flag off) and unchanged for the window; it
//!   was not evaluated for the window (a flag never reported counts from its creation); or
//!   today is after its `expires` date.
//! - **Rolled out** when settled but not yet stale; **active** otherwise.

use serde::{Deserialize, Serialize};

use crate::model::{FlagDef, RuleDef};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// What one environment serves of a flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "serves", rename_all = "camelCase")]
pub enum Serving {
    /// The flag is off there: 0%.
    Off,
    /// One variant to everyone: 100% of one variant.
    Everyone {
        /// The variant.
        variant: String,
    },
    /// Different people may get different variants.
    Mixed,
}

/// What `environment` serves of `flag`, from its effective enabled state, rules and default.
///
/// Prerequisites make a flag conditional, so a flag with any is `Mixed`. Rules are read in
/// order: a rule without conditions ends the list (nothing after it is reached); each rule
/// adds the variant it serves, or every variant its split gives a weight above 0.
pub fn serving(flag: &FlagDef, environment: &str) -> Serving {
    let over = flag.environments.get(environment);
    let enabled = over.and_then(|o| o.enabled).unwrap_or(flag.enabled);
    if !enabled {
        return Serving::Off;
    }
    if !flag.prerequisites.is_empty() {
        return Serving::Mixed;
    }
    let rules: &[RuleDef] = over.and_then(|o| o.rules.as_deref()).unwrap_or(&flag.rules);
    let default = over
        .and_then(|o| o.default_variant.as_deref())
        .unwrap_or(&flag.default_variant);
    let mut served: Vec<&str> = Vec::new();
    let mut reaches_default = true;
    for rule in rules {
        if let Some(variant) = &rule.serve {
            served.push(variant);
        }
        for weight in rule.split.iter().flatten() {
            if weight.weight > 0 {
                served.push(&weight.variant);
            }
        }
        if rule.when.is_empty() {
            reaches_default = false;
            break;
        }
    }
    if reaches_default {
        served.push(default);
    }
    served.sort_unstable();
    served.dedup();
    match served.as_slice() {
        [only] => Serving::Everyone {
            variant: (*only).to_owned(),
        },
        _ => Serving::Mixed,
    }
}

/// Where a flag is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Still serving different variants to different people, or recently changed.
    Active,
    /// Settled everywhere, but changed recently.
    RolledOut,
    /// At least one staleness reason holds.
    Stale,
    /// Someone archived it.
    Archived,
}

/// Why a flag is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum StaleReason {
    /// Every environment serves one variant to everyone or is off, and the flag has not
    /// changed for the window.
    #[serde(rename_all = "camelCase")]
    Settled {
        /// When it last changed.
        last_changed_ms: i64,
        /// Whole days since then.
        days: i64,
    },
    /// No SDK reported an exposure for the window.
    #[serde(rename_all = "camelCase")]
    NotEvaluated {
        /// The newest telemetry bucket with exposures, if any was ever reported.
        last_evaluated_ms: Option<i64>,
        /// Whole days since then (or since the flag was created, when never reported).
        days: i64,
    },
    /// Today is after its `expires` date.
    Expired {
        /// The date, `YYYY-MM-DD`.
        expires: String,
    },
}

impl StaleReason {
    /// A sentence for people.
    pub fn describe(&self) -> String {
        match self {
            StaleReason::Settled { days, .. } => {
                format!("at 0% or 100% in every environment and unchanged for {days} days")
            }
            StaleReason::NotEvaluated {
                last_evaluated_ms: Some(_),
                days,
            } => format!("not evaluated for {days} days"),
            StaleReason::NotEvaluated {
                last_evaluated_ms: None,
                days,
            } => format!("never evaluated in the {days} days since it was created"),
            StaleReason::Expired { expires } => format!("past its expiry date {expires}"),
        }
    }
}

/// What the server knows about one flag.
#[derive(Debug, Clone)]
pub struct FlagFacts<'a> {
    /// The definition.
    pub definition: &'a FlagDef,
    /// Every environment's name.
    pub environments: &'a [String],
    /// When the flag was created.
    pub created_ms: i64,
    /// When the flag last changed (its newest audit record, or its last write).
    pub last_changed_ms: i64,
    /// The newest telemetry bucket with exposures for the flag, in any environment.
    pub last_evaluated_ms: Option<i64>,
    /// When it was archived, if it is.
    pub archived_ms: Option<i64>,
}

/// A flag's classification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Where it is.
    pub stage: Stage,
    /// Why it is stale; empty unless stale (or archived while stale).
    pub reasons: Vec<StaleReason>,
    /// What each environment serves, by name.
    pub serving: Vec<(String, Serving)>,
}

/// Classifies a flag at `now_ms` with a window of `window_days` days.
pub fn classify(facts: &FlagFacts<'_>, now_ms: i64, window_days: u32) -> Lifecycle {
    let window_ms = i64::from(window_days).saturating_mul(DAY_MS);
    let days_since = |ms: i64| now_ms.saturating_sub(ms).max(0) / DAY_MS;
    let serving: Vec<(String, Serving)> = facts
        .environments
        .iter()
        .map(|name| (name.clone(), self::serving(facts.definition, name)))
        .collect();
    let settled = serving.iter().all(|(_, s)| *s != Serving::Mixed);
    let mut reasons = Vec::new();
    if settled && now_ms.saturating_sub(facts.last_changed_ms) >= window_ms {
        reasons.push(StaleReason::Settled {
            last_changed_ms: facts.last_changed_ms,
            days: days_since(facts.last_changed_ms),
        });
    }
    let evaluated_or_created = facts.last_evaluated_ms.unwrap_or(facts.created_ms);
    if now_ms.saturating_sub(evaluated_or_created) >= window_ms {
        reasons.push(StaleReason::NotEvaluated {
            last_evaluated_ms: facts.last_evaluated_ms,
            days: days_since(evaluated_or_created),
        });
    }
    if let Some(expires) = &facts.definition.expires
        && let (Ok(date), Some(today)) = (expires.parse::<jiff::civil::Date>(), today(now_ms))
        && today > date
    {
        reasons.push(StaleReason::Expired {
            expires: expires.clone(),
        });
    }
    let stage = if facts.archived_ms.is_some() {
        Stage::Archived
    } else if !reasons.is_empty() {
        Stage::Stale
    } else if settled {
        Stage::RolledOut
    } else {
        Stage::Active
    };
    Lifecycle {
        stage,
        reasons,
        serving,
    }
}

/// The UTC date of `now_ms`.
fn today(now_ms: i64) -> Option<jiff::civil::Date> {
    let timestamp = jiff::Timestamp::from_millisecond(now_ms).ok()?;
    Some(timestamp.to_zoned(jiff::tz::TimeZone::UTC).date())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000_000; // 2025-06-15

    fn flags(text: &str) -> crate::FlagFile {
        yaml_serde::from_str(text).unwrap()
    }

    const FILE: &str = r#"
environments: [staging, production]
flags:
  settled:
    type: boolean
    variants: { "on": true, "off": false }
    default_variant: "on"
    environments:
      staging: { enabled: false }
  split:
    type: boolean
    variants: { "on": true, "off": false }
    default_variant: "off"
    rules:
      - split: [ { variant: "on", weight: 50000 }, { variant: "off", weight: 50000 } ]
  targeted-same:
    type: boolean
    variants: { "on": true, "off": false }
    default_variant: "on"
    rules:
      - when: [ { attribute: plan, op: eq, value: pro } ]
        serve: "on"
  everyone-rule:
    type: boolean
    variants: { "on": true, "off": false }
    default_variant: "off"
    rules:
      - name: "rollout: done"
        serve: "on"
      - when: [ { attribute: plan, op: eq, value: pro } ]
        serve: "off"
  expiring:
    type: boolean
    variants: { "on": true, "off": false }
    default_variant: "off"
    expires: "2025-06-14"
    rules:
      - split: [ { variant: "on", weight: 10000 }, { variant: "off", weight: 90000 } ]
"#;

    fn envs() -> Vec<String> {
        vec!["staging".into(), "production".into()]
    }

    fn facts<'a>(def: &'a FlagDef, envs: &'a [String], changed_days_ago: i64) -> FlagFacts<'a> {
        FlagFacts {
            definition: def,
            environments: envs,
            created_ms: NOW - 100 * DAY_MS,
            last_changed_ms: NOW - changed_days_ago * DAY_MS,
            last_evaluated_ms: Some(NOW - DAY_MS),
            archived_ms: None,
        }
    }

    #[test]
    fn serving_reads_the_effective_rules() {
        let file = flags(FILE);
        let settled = &file.flags["settled"];
        assert_eq!(serving(settled, "staging"), Serving::Off);
        assert_eq!(
            serving(settled, "production"),
            Serving::Everyone {
                variant: "on".into()
            }
        );
        assert_eq!(serving(&file.flags["split"], "production"), Serving::Mixed);
        assert_eq!(
            serving(&file.flags["targeted-same"], "production"),
            Serving::Everyone {
                variant: "on".into()
            }
        );
        assert_eq!(
            serving(&file.flags["everyone-rule"], "production"),
            Serving::Everyone {
                variant: "on".into()
            }
        );
    }

    #[test]
    fn settled_and_unchanged_is_stale_settled_and_recent_is_rolled_out() {
        let file = flags(FILE);
        let envs = envs();
        let old = classify(&facts(&file.flags["settled"], &envs, 30), NOW, 14);
        assert_eq!(old.stage, Stage::Stale);
        assert_eq!(
            old.reasons,
            vec![StaleReason::Settled {
                last_changed_ms: NOW - 30 * DAY_MS,
                days: 30
            }]
        );
        let recent = classify(&facts(&file.flags["settled"], &envs, 3), NOW, 14);
        assert_eq!(recent.stage, Stage::RolledOut);
        assert!(recent.reasons.is_empty());
        let split = classify(&facts(&file.flags["split"], &envs, 300), NOW, 14);
        assert_eq!(split.stage, Stage::Active);
    }

    #[test]
    fn never_evaluated_counts_from_creation() {
        let file = flags(FILE);
        let envs = envs();
        let mut quiet = facts(&file.flags["split"], &envs, 1);
        quiet.last_evaluated_ms = None;
        let lifecycle = classify(&quiet, NOW, 14);
        assert_eq!(lifecycle.stage, Stage::Stale);
        assert_eq!(
            lifecycle.reasons,
            vec![StaleReason::NotEvaluated {
                last_evaluated_ms: None,
                days: 100
            }]
        );
        quiet.created_ms = NOW - 2 * DAY_MS;
        assert_eq!(classify(&quiet, NOW, 14).stage, Stage::Active);
        quiet.last_evaluated_ms = Some(NOW - 20 * DAY_MS);
        quiet.created_ms = NOW - 200 * DAY_MS;
        assert_eq!(
            classify(&quiet, NOW, 14).reasons,
            vec![StaleReason::NotEvaluated {
                last_evaluated_ms: Some(NOW - 20 * DAY_MS),
                days: 20
            }]
        );
    }

    #[test]
    fn past_its_expiry_date_is_stale_but_not_on_the_day() {
        let file = flags(FILE);
        let envs = envs();
        let expiring = facts(&file.flags["expiring"], &envs, 1);
        let lifecycle = classify(&expiring, NOW, 14);
        assert_eq!(
            lifecycle.reasons,
            vec![StaleReason::Expired {
                expires: "2025-06-14".into()
            }]
        );
        // 2025-06-14 at noon UTC: the date itself is not past.
        let on_the_day = classify(&expiring, NOW - DAY_MS, 14);
        assert!(on_the_day.reasons.is_empty(), "{on_the_day:?}");
    }

    #[test]
    fn archived_wins_and_keeps_its_reasons() {
        let file = flags(FILE);
        let envs = envs();
        let mut archived = facts(&file.flags["settled"], &envs, 30);
        archived.archived_ms = Some(NOW);
        let lifecycle = classify(&archived, NOW, 14);
        assert_eq!(lifecycle.stage, Stage::Archived);
        assert_eq!(lifecycle.reasons.len(), 1);
    }
}
