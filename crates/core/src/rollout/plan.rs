//! Rollout plans: the stages a change goes through and the guardrails that judge each one.
//!
//! A plan is data, written in YAML or JSON like a flags file and validated the same way:
//! every problem is reported with its path (`stages[2].percent`) and, from text, its line
//! and column. Exposure only widens: each stage adds its audience, or a larger share of it,
//! to the people already on the new path, and the last stage sends everyone there.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::compile::check_key;
use crate::model::{ConditionDef, RuleDef, WEIGHT_TOTAL};

/// The false-alarm level of each guardrail's one-sided test unless the plan sets `alpha`.
pub const DEFAULT_ALPHA: f64 = 0.05;
/// The total sample size (both arms) at which the confidence sequences are tightest unless
/// the plan sets `tuning`. GrowthBook's safe rollouts use the same value.
pub const DEFAULT_TUNING: f64 = 5000.0;
/// How long a stage may hold after its bake time before the rollout pauses and alerts.
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(24 * 3600);
/// A stage's bake time when it does not set one.
pub const DEFAULT_BAKE: Duration = Duration::from_secs(3600);
/// A stage's minimum exposures per arm when it does not set `min_samples`.
pub const DEFAULT_MIN_SAMPLES: u64 = 1000;
/// The most approvals a stage may require.
pub const MAX_APPROVALS: u32 = 10;

/// A staged rollout: ordered stages, the guardrails that judge them, and what to do on failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPlan {
    /// A name for people, such as the template it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the plan is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The stages, in order. The last one sends everyone to the new path.
    pub stages: Vec<Stage>,
    /// The metrics each stage is judged on. Defaults to error rate, crash rate and latency p99.
    #[serde(default = "crate::rollout::default_guardrails")]
    pub guardrails: Vec<Guardrail>,
    /// What happens when a guardrail fails.
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// How long a stage may hold after its bake time (for lack of data, an undecided
    /// guardrail or a sample ratio mismatch) before the rollout pauses and alerts.
    #[serde(default = "default_max_hold", with = "duration_text")]
    pub max_hold: Duration,
    /// The level of each one-sided guardrail test, in `(0, 0.5)`.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// The total sample size at which the confidence sequences are tightest.
    #[serde(default = "default_tuning")]
    pub tuning: f64,
}

fn default_max_hold() -> Duration {
    DEFAULT_MAX_HOLD
}

fn default_alpha() -> f64 {
    DEFAULT_ALPHA
}

fn default_tuning() -> f64 {
    DEFAULT_TUNING
}

/// One step of a rollout: who gets the new path, for how long at least, on how much evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// A name for people. Defaults to a description of the audience and percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Who this stage adds to the new path.
    #[serde(default, skip_serializing_if = "Audience::is_everyone")]
    pub audience: Audience,
    /// The share of the audience on the new path.
    pub percent: Percentage,
    /// The least time the stage runs before it may advance.
    #[serde(default = "default_bake", with = "duration_text")]
    pub bake: Duration,
    /// The least exposures in each arm before a guardrail may pass.
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    /// The approvals needed before the rollout enters this stage.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub approvals: u32,
    /// What the guardrails must show before the stage advances.
    #[serde(default, skip_serializing_if = "Gate::is_pass")]
    pub gate: Gate,
}

fn default_bake() -> Duration {
    DEFAULT_BAKE
}

fn default_min_samples() -> u64 {
    DEFAULT_MIN_SAMPLES
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl Stage {
    /// A stage with the default bake time and samples, no approvals, and gate `pass`.
    pub fn new(audience: Audience, percent: Percentage) -> Stage {
        Stage {
            name: None,
            audience,
            percent,
            bake: DEFAULT_BAKE,
            min_samples: DEFAULT_MIN_SAMPLES,
            approvals: 0,
            gate: Gate::Pass,
        }
    }

    /// The name to show: the stage's own, or one made from its audience and percentage.
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let audience = self.audience.label();
        match (&self.audience, self.percent.is_all()) {
            (Audience::Everyone, _) => self.percent.to_string(),
            (_, true) => audience,
            (_, false) => format!("{} of {audience}", self.percent),
        }
    }
}

/// Who a stage adds to the new path.
#[derive(Debug, Clone, Default)]
pub enum Audience {
    /// Everyone. Written `everyone`, or left out.
    #[default]
    Everyone,
    /// Contexts matching one condition in the flag format's shape, written as a mapping:
    /// `{ segment: internal }` or `{ attribute: beta_opt_in, op: eq, value: true }`.
    Condition(ConditionDef),
    /// Contexts matching all these conditions, written as a list.
    All(Vec<ConditionDef>),
}

/// Two audiences are the same when they have the same conditions, however written.
impl PartialEq for Audience {
    fn eq(&self, other: &Audience) -> bool {
        self.is_everyone() == other.is_everyone() && self.conditions() == other.conditions()
    }
}

impl Audience {
    /// Members of a segment.
    pub fn segment(name: impl Into<String>) -> Audience {
        Audience::Condition(ConditionDef {
            segment: Some(name.into()),
            ..ConditionDef::default()
        })
    }

    /// Whether this is everyone.
    pub fn is_everyone(&self) -> bool {
        matches!(self, Audience::Everyone)
    }

    /// The conditions, all of which must hold; none for everyone.
    pub fn conditions(&self) -> &[ConditionDef] {
        match self {
            Audience::Everyone => &[],
            Audience::Condition(condition) => std::slice::from_ref(condition),
            Audience::All(conditions) => conditions,
        }
    }

    /// A short description: `everyone`, a segment name, or the attributes tested.
    pub fn label(&self) -> String {
        if self.is_everyone() {
            return "everyone".to_owned();
        }
        let parts: Vec<String> = self
            .conditions()
            .iter()
            .map(|c| {
                let name = c
                    .segment
                    .clone()
                    .or_else(|| c.attribute.clone())
                    .unwrap_or_else(|| "?".to_owned());
                if c.negate {
                    format!("not {name}")
                } else {
                    name
                }
            })
            .collect();
        parts.join(" and ")
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Audience::Everyone => serializer.serialize_str("everyone"),
            Audience::Condition(condition) => condition.serialize(serializer),
            Audience::All(conditions) => conditions.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Audience, D::Error> {
        struct AudienceVisitor;

        impl<'de> Visitor<'de> for AudienceVisitor {
            type Value = Audience;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`everyone`, a condition such as `{ segment: internal }`, or a list of conditions")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Audience, E> {
                if text == "everyone" {
                    Ok(Audience::Everyone)
                } else {
                    Err(E::custom(format!(
                        "unknown audience `{text}`: write `everyone`, `{{ segment: {text} }}`, or a condition"
                    )))
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Audience, A::Error> {
                let condition =
                    ConditionDef::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Audience::Condition(condition))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Audience, A::Error> {
                let conditions =
                    Vec::<ConditionDef>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Audience::All(conditions))
            }
        }

        deserializer.deserialize_any(AudienceVisitor)
    }
}

/// A share of an audience, held as a weight out of 100,000 like split weights, so one unit
/// is a thousandth of a percent. Written as a percent number: `10`, `0.5`, or `"10%"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Percentage(u32);

impl Percentage {
    /// Everyone in the audience.
    pub const ALL: Percentage = Percentage(WEIGHT_TOTAL);

    /// A percentage from a weight in `1..=100_000`.
    pub fn from_weight(weight: u32) -> Option<Percentage> {
        (1..=WEIGHT_TOTAL)
            .contains(&weight)
            .then_some(Percentage(weight))
    }

    /// A percentage from a percent number in `(0, 100]` with at most three decimals.
    pub fn from_percent(percent: f64) -> Result<Percentage, String> {
        if !percent.is_finite() || percent <= 0.0 || percent > 100.0 {
            return Err(format!(
                "a percentage must be greater than 0 and at most 100, not {percent}"
            ));
        }
        let scaled = percent * 1000.0;
        let weight = scaled.round();
        if (scaled - weight).abs() > 1e-6 {
            return Err(format!(
                "{percent}% is finer than the 0.001% steps rollouts move in"
            ));
        }
        // In range: 0 < weight <= 100_000.
        Ok(Percentage(weight as u32))
    }

    /// The weight out of 100,000.
    pub fn weight(self) -> u32 {
        self.0
    }

    /// The percent number, such as `10.0`.
    pub fn percent(self) -> f64 {
        f64::from(self.0) / 1000.0
    }

    /// The fraction, such as `0.1`.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / f64::from(WEIGHT_TOTAL)
    }

    /// Whether this is 100%.
    pub fn is_all(self) -> bool {
        self.0 == WEIGHT_TOTAL
    }
}

impl fmt::Display for Percentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.percent())
    }
}

impl Serialize for Percentage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(1000) {
            serializer.serialize_u32(self.0 / 1000)
        } else {
            serializer.serialize_f64(self.percent())
        }
    }
}

impl<'de> Deserialize<'de> for Percentage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Percentage, D::Error> {
        struct PercentVisitor;

        impl Visitor<'_> for PercentVisitor {
            type Value = Percentage;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a percent number such as 10 or 0.5, or a string such as \"10%\"")
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Percentage, E> {
                Percentage::from_percent(value).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Percentage, E> {
                self.visit_f64(value as f64)
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Percentage, E> {
                self.visit_f64(value as f64)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Percentage, E> {
                let number = text.trim().strip_suffix('%').unwrap_or(text).trim();
                let value: f64 = number.parse().map_err(|_| {
                    E::custom(format!("`{text}` is not a percentage; write 10 or \"10%\""))
                })?;
                self.visit_f64(value)
            }
        }

        deserializer.deserialize_any(PercentVisitor)
    }
}

/// What the guardrails must show before a stage advances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// Every guardrail passes: the evidence shows the new path is no worse than tolerated.
    #[default]
    Pass,
    /// No guardrail fails. For small audiences such as staff, whose numbers can rarely prove
    /// anything: the stage still needs its bake time and samples, and a failure still acts.
    NoFailure,
}

impl Gate {
    /// Whether this is the default gate, `pass`.
    pub fn is_pass(&self) -> bool {
        *self == Gate::Pass
    }
}

/// What happens when a guardrail fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Send everyone back to the old path.
    #[default]
    Rollback,
    /// Stop where it is and alert.
    Pause,
    /// Roll back by turning the flag off (its kill switch).
    Kill,
}

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Errors, crashes, latency.
    LowerIsBetter,
    /// Conversions, revenue.
    HigherIsBetter,
}

impl Direction {
    /// The name used in plans.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::LowerIsBetter => "lower_is_better",
            Direction::HigherIsBetter => "higher_is_better",
        }
    }
}

/// What a guardrail measures.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// The share of exposures that saw an error: `error_rate`.
    ErrorRate,
    /// The share of exposures that saw a crash: `crash_rate`.
    CrashRate,
    /// Median latency in milliseconds: `latency_p50`.
    LatencyP50,
    /// 95th percentile latency in milliseconds: `latency_p95`.
    LatencyP95,
    /// 99th percentile latency in milliseconds: `latency_p99`.
    LatencyP99,
    /// The share of exposures that sent a custom event: `event_rate{checkout}`.
    EventRate(String),
    /// The mean value per exposure of a custom event: `event_mean{order_value}`.
    EventMean(String),
    /// The share of shadowed requests whose results differed: `shadow_mismatch_rate`.
    ShadowMismatchRate,
}

/// How a metric is aggregated and tested.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricKind {
    /// A share of exposures: `k` events out of `n`.
    Proportion,
    /// A latency quantile, from sketches; the field is the quantile, such as 0.99.
    Latency(f64),
    /// A mean per exposure, from `n`, the sum and the sum of squares.
    Mean,
}

impl Metric {
    /// Every fixed name, for messages.
    pub const NAMES: &'static str = "`error_rate`, `crash_rate`, `latency_p50`, `latency_p95`, `latency_p99`, \
         `event_rate{EVENT}`, `event_mean{EVENT}` or `shadow_mismatch_rate`";

    /// Parses a metric name such as `latency_p99` or `event_rate{checkout}`.
    pub fn parse(text: &str) -> Result<Metric, String> {
        let fixed = match text {
            "error_rate" => Some(Metric::ErrorRate),
            "crash_rate" => Some(Metric::CrashRate),
            "latency_p50" => Some(Metric::LatencyP50),
            "latency_p95" => Some(Metric::LatencyP95),
            "latency_p99" => Some(Metric::LatencyP99),
            "shadow_mismatch_rate" => Some(Metric::ShadowMismatchRate),
            _ => None,
        };
        if let Some(metric) = fixed {
            return Ok(metric);
        }
        for (prefix, make) in [
            ("event_rate{", Metric::EventRate as fn(String) -> Metric),
            ("event_mean{", Metric::EventMean),
        ] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let Some(event) = rest.strip_suffix('}') else {
                    return Err(format!("`{text}` is missing its closing `}}`"));
                };
                check_key(event)
                    .map_err(|message| format!("bad event name in `{text}`: {message}"))?;
                return Ok(make(event.to_owned()));
            }
        }
        Err(format!(
            "unknown metric `{text}`; expected {}",
            Metric::NAMES
        ))
    }

    /// How the metric is aggregated and tested.
    pub fn kind(&self) -> MetricKind {
        match self {
            Metric::ErrorRate
            | Metric::CrashRate
            | Metric::EventRate(_)
            | Metric::ShadowMismatchRate => MetricKind::Proportion,
            Metric::LatencyP50 => MetricKind::Latency(0.50),
            Metric::LatencyP95 => MetricKind::Latency(0.95),
            Metric::LatencyP99 => MetricKind::Latency(0.99),
            Metric::EventMean(_) => MetricKind::Mean,
        }
    }

    /// The direction this metric always has, or `None` for custom events, which must say.
    pub fn natural_direction(&self) -> Option<Direction> {
        match self {
            Metric::EventRate(_) | Metric::EventMean(_) => None,
            _ => Some(Direction::LowerIsBetter),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::ErrorRate => f.write_str("error_rate"),
            Metric::CrashRate => f.write_str("crash_rate"),
            Metric::LatencyP50 => f.write_str("latency_p50"),
            Metric::LatencyP95 => f.write_str("latency_p95"),
            Metric::LatencyP99 => f.write_str("latency_p99"),
            Metric::EventRate(event) => write!(f, "event_rate{{{event}}}"),
            Metric::EventMean(event) => write!(f, "event_mean{{{event}}}"),
            Metric::ShadowMismatchRate => f.write_str("shadow_mismatch_rate"),
        }
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Metric, D::Error> {
        let text = String::deserialize(deserializer)?;
        Metric::parse(&text).map_err(de::Error::custom)
    }
}

/// The unit an absolute tolerance was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToleranceUnit {
    /// A bare number, in the metric's own unit (a fraction for rates, ms for latency).
    Plain,
    /// Percentage points, for rates: `0.5pp` is 0.005.
    Points,
    /// Milliseconds, for latency: `20ms`, or `1.5s` (1500 ms).
    Millis,
}

/// The degradation a guardrail tolerates: relative to the control's value, absolute, or
/// both, in which case the larger allowance applies.
///
/// Written as a string: `10%` (relative), `0.5pp` (absolute percentage points, rates),
/// `20ms` or `1.5s` (absolute, latency), a bare number (absolute, in the metric's unit),
/// or two of these joined by `or`: `10% or 0.1pp`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// The tolerated change as a fraction of the control's value: `0.1` for `10%`.
    pub relative: Option<f64>,
    /// The tolerated change in the metric's unit, and the unit it was written in.
    pub absolute: Option<(f64, ToleranceUnit)>,
}

impl Tolerance {
    /// A relative tolerance: `fraction` of the control's value.
    pub fn relative(fraction: f64) -> Tolerance {
        Tolerance {
            relative: Some(fraction),
            absolute: None,
        }
    }

    /// An absolute tolerance in the metric's unit.
    pub fn absolute(amount: f64, unit: ToleranceUnit) -> Tolerance {
        Tolerance {
            relative: None,
            absolute: Some((amount, unit)),
        }
    }

    /// Adds an absolute floor to a relative tolerance: the larger allowance applies.
    pub fn or_absolute(self, amount: f64, unit: ToleranceUnit) -> Tolerance {
        Tolerance {
            absolute: Some((amount, unit)),
            ..self
        }
    }

    /// The tolerated change, in the metric's unit, given the control's value.
    pub fn margin(&self, control: f64) -> f64 {
        let relative = self.relative.map_or(0.0, |r| r * control.abs());
        let absolute = self.absolute.map_or(0.0, |(amount, _)| amount);
        relative.max(absolute)
    }

    /// Parses the written form.
    pub fn parse(text: &str) -> Result<Tolerance, String> {
        let mut tolerance = Tolerance {
            relative: None,
            absolute: None,
        };
        let parts: Vec<&str> = text.split(" or ").map(str::trim).collect();
        if parts.len() > 2 {
            return Err(format!(
                "`{text}` has more than two parts; write `10%`, `0.5pp`, `20ms` or `10% or 0.5pp`"
            ));
        }
        for part in parts {
            let number = |digits: &str| -> Result<f64, String> {
                let value: f64 = digits.trim().parse().map_err(|_| {
                    format!("`{part}` is not a tolerance; write `10%`, `0.5pp`, `20ms` or a number")
                })?;
                if value.is_finite() && value > 0.0 {
                    Ok(value)
                } else {
                    Err(format!("a tolerance must be greater than 0, not `{part}`"))
                }
            };
            let absolute = if let Some(digits) = part.strip_suffix('%') {
                if tolerance
                    .relative
                    .replace(number(digits)? / 100.0)
                    .is_some()
                {
                    return Err(format!("`{text}` gives two relative tolerances"));
                }
                continue;
            } else if let Some(digits) = part.strip_suffix("pp") {
                (number(digits)? / 100.0, ToleranceUnit::Points)
            } else if let Some(digits) = part.strip_suffix("ms") {
                (number(digits)?, ToleranceUnit::Millis)
            } else if let Some(digits) = part.strip_suffix('s') {
                (number(digits)? * 1000.0, ToleranceUnit::Millis)
            } else {
                (number(part)?, ToleranceUnit::Plain)
            };
            if tolerance.absolute.replace(absolute).is_some() {
                return Err(format!("`{text}` gives two absolute tolerances"));
            }
        }
        Ok(tolerance)
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(relative) = self.relative {
            parts.push(format!("{}%", trim_float(relative * 100.0)));
        }
        if let Some((amount, unit)) = self.absolute {
            parts.push(match unit {
                ToleranceUnit::Plain => trim_float(amount),
                ToleranceUnit::Points => format!("{}pp", trim_float(amount * 100.0)),
                ToleranceUnit::Millis => format!("{}ms", trim_float(amount)),
            });
        }
        f.write_str(&parts.join(" or "))
    }
}

/// Prints a float without representation noise such as `0.30000000000000004`.
pub(crate) fn trim_float(value: f64) -> String {
    let text = format!("{:.9}", value);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

impl Serialize for Tolerance {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Tolerance {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Tolerance, D::Error> {
        struct ToleranceVisitor;

        impl Visitor<'_> for ToleranceVisitor {
            type Value = Tolerance;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a tolerance such as \"10%\", \"0.5pp\", \"20ms\" or a number")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Tolerance, E> {
                Tolerance::parse(text).map_err(E::custom)
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Tolerance, E> {
                if value.is_finite() && value > 0.0 {
                    Ok(Tolerance::absolute(value, ToleranceUnit::Plain))
                } else {
                    Err(E::custom(format!(
                        "a tolerance must be greater than 0, not {value}"
                    )))
                }
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Tolerance, E> {
                self.visit_f64(value as f64)
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Tolerance, E> {
                self.visit_f64(value as f64)
            }
        }

        deserializer.deserialize_any(ToleranceVisitor)
    }
}

/// One metric every stage is judged on, new path against old.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrail {
    /// What is measured.
    pub metric: Metric,
    /// Which way is better. Built-in metrics are lower-is-better; custom events must say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// How much worse the new path may be. For `shadow_mismatch_rate`, the absolute bound
    /// on the mismatch rate (`0.1pp`).
    pub tolerance: Tolerance,
    /// The fewest samples this guardrail needs for a pass, instead of the stage's
    /// `min_samples`: for `shadow_mismatch_rate`, the fewest comparisons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<u64>,
}

impl Guardrail {
    /// A guardrail on a built-in metric, with its natural direction.
    pub fn new(metric: Metric, tolerance: Tolerance) -> Guardrail {
        Guardrail {
            metric,
            direction: None,
            tolerance,
            min_samples: None,
        }
    }

    /// The direction: the one written, else the metric's natural one, else lower-is-better.
    pub fn direction(&self) -> Direction {
        self.direction
            .or_else(|| self.metric.natural_direction())
            .unwrap_or(Direction::LowerIsBetter)
    }
}

/// Durations written as `30m`, `2h`, `1h30m`, `1d`, `45s`, or a whole number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let hint = "write a duration such as `30m`, `2h`, `1h30m`, `1d` or a number of seconds";
    if trimmed.is_empty() {
        return Err(format!("an empty duration; {hint}"));
    }
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut units_seen = 0;
    for ch in trimmed.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        if ch == ' ' {
            continue;
        }
        let unit = match ch {
            'w' => 7 * 86_400,
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("`{text}` is not a duration; {hint}")),
        };
        let amount: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a duration; {hint}"))?;
        digits.clear();
        units_seen += 1;
        total = amount
            .checked_mul(unit)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    }
    if !digits.is_empty() || units_seen == 0 {
        return Err(format!("`{text}` is not a duration; {hint}"));
    }
    Ok(Duration::from_secs(total))
}

/// The canonical written form of a duration: `1h30m`, `2d`, `0s`. Sub-second parts are dropped.
pub fn format_duration(duration: Duration) -> String {
    let mut seconds = duration.as_secs();
    if seconds == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    for (unit, name) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if seconds >= unit {
            text.push_str(&(seconds / unit).to_string());
            text.push(name);
            seconds %= unit;
        }
    }
    text
}

/// Serde for durations as text (`2h`) or whole seconds; written back as text.
pub(crate) mod duration_text {
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"30m\", \"2h\" or a whole number of seconds")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                super::parse_duration(text).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(seconds))
            }

            fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
                u64::try_from(seconds)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom(format!("a duration cannot be negative: {seconds}")))
            }

            fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "{seconds} is not a whole number of seconds; write \"30m\" or a whole number"
                )))
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

impl RolloutPlan {
    /// A plan with these stages and the default guardrails, policies and statistics.
    pub fn new(stages: Vec<Stage>) -> RolloutPlan {
        RolloutPlan {
            name: None,
            description: None,
            stages,
            guardrails: crate::rollout::default_guardrails(),
            on_failure: FailurePolicy::Rollback,
            max_hold: DEFAULT_MAX_HOLD,
            alpha: DEFAULT_ALPHA,
            tuning: DEFAULT_TUNING,
        }
    }

    /// Who is on the new path during `stage`: each audience met so far with its latest share,
    /// specific audiences first in the order they appear, everyone last.
    pub fn exposure(&self, stage: usize) -> Vec<(&Audience, Percentage)> {
        let mut exposure: Vec<(&Audience, Percentage)> = Vec::new();
        for current in self.stages.iter().take(stage.saturating_add(1)) {
            match exposure
                .iter_mut()
                .find(|(audience, _)| **audience == current.audience)
            {
                Some(entry) => entry.1 = entry.1.max(current.percent),
                None => exposure.push((&current.audience, current.percent)),
            }
        }
        exposure.sort_by_key(|(audience, _)| audience.is_everyone());
        exposure
    }

    /// The flag rules that give `stage`'s exposure: for each audience, `new_variant` for its
    /// share and `old_variant` for the rest. The new variant's arm comes first in each split,
    /// so with sticky bucketing a context on the new path stays there as the share grows.
    pub fn rules(&self, stage: usize, new_variant: &str, old_variant: &str) -> Vec<RuleDef> {
        crate::rollout::Exposure::stage(self, stage).rules(new_variant, old_variant)
    }
}

/// Serde for optional durations as text (`2h`) or whole seconds.
pub(crate) mod duration_text_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => super::duration_text::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::duration_text")] Duration);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(d)| d))
    }
}
