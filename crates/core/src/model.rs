//! The flag definition format: the serde model that files, the server API and exports share.
//!
//! These types describe what a person writes. They are deliberately loose where strictness
//! would stop error collection (a condition is one flat struct, checked field by field in
//! [`crate::compile`]), and strict where serde can say exactly what is wrong
//! (`deny_unknown_fields` catches typos such as `rulse`).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The environments a file describes when it does not list its own.
pub const DEFAULT_ENVIRONMENTS: [&str; 3] = ["development", "staging", "production"];

/// The largest split weight total: weights are out of 100,000, so one unit is 1/1000 of a percent.
pub const WEIGHT_TOTAL: u32 = 100_000;

/// A whole flags file: flags, segments and the environments they are described for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagFile {
    /// The format version; only `1` exists.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Environment names. Defaults to development, staging and production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<String>>,
    /// Reusable audiences, by name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub segments: IndexMap<String, SegmentDef>,
    /// Flags, by key.
    #[serde(default)]
    pub flags: IndexMap<String, FlagDef>,
}

fn default_version() -> u32 {
    1
}

impl Default for FlagFile {
    fn default() -> FlagFile {
        FlagFile {
            version: default_version(),
            environments: None,
            segments: IndexMap::new(),
            flags: IndexMap::new(),
        }
    }
}

impl FlagFile {
    /// The environment names this file describes.
    pub fn environment_names(&self) -> Vec<&str> {
        match &self.environments {
            Some(names) => names.iter().map(String::as_str).collect(),
            None => DEFAULT_ENVIRONMENTS.to_vec(),
        }
    }
}

/// The value type every variant of a flag shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagType {
    /// `true` or `false`.
    Boolean,
    /// Any string.
    String,
    /// Any JSON number.
    Number,
    /// A JSON object.
    Object,
}

impl FlagType {
    /// The name used in the file format.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagType::Boolean => "boolean",
            FlagType::String => "string",
            FlagType::Number => "number",
            FlagType::Object => "object",
        }
    }

    /// Whether `value` is of this type.
    pub fn admits(self, value: &Value) -> bool {
        match self {
            FlagType::Boolean => value.is_boolean(),
            FlagType::String => value.is_string(),
            FlagType::Number => value.is_number(),
            FlagType::Object => value.is_object(),
        }
    }
}

/// Who wrote the change a flag guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provenance {
    /// Written mostly by an AI assistant.
    AiAssisted,
    /// Written by people.
    Human,
    /// Both.
    Mixed,
}

impl Provenance {
    /// The name used in the file format.
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::AiAssisted => "ai-assisted",
            Provenance::Human => "human",
            Provenance::Mixed => "mixed",
        }
    }
}

/// How much harm the guarded change could do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Cosmetic or easily undone.
    Low,
    /// The default.
    Medium,
    /// Money, data or availability at stake.
    High,
}

impl Risk {
    /// The name used in the file format.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

/// One flag, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagDef {
    /// What the flag guards, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The team or person responsible for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Free labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The value type of every variant.
    #[serde(rename = "type")]
    pub flag_type: FlagType,
    /// Variant name to value.
    pub variants: IndexMap<String, Value>,
    /// Served when no rule matches.
    pub default_variant: String,
    /// Served when the flag is disabled. Without it, a disabled flag yields the caller's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_variant: Option<String>,
    /// The kill switch: `false` serves the off variant everywhere.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Flags that must evaluate to a given variant before this flag's rules apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<PrerequisiteDef>,
    /// Ordered rules; the first that matches decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleDef>,
    /// The context attribute splits bucket by. Defaults to the targeting key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_by: Option<String>,
    /// The bucketing salt. Defaults to the flag key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Who wrote the guarded change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// How much harm the guarded change could do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    /// The date by which the flag should be removed, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Free metadata, returned with every evaluation.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub metadata: IndexMap<String, Value>,
    /// The goal metrics of an A/B experiment on this flag, the primary one first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<GoalDef>,
    /// Per-environment overrides of `enabled`, the rules and the default variant.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub environments: IndexMap<String, EnvironmentOverride>,
}

fn default_enabled() -> bool {
    true
}

/// A goal metric: an event the application sends through the SDK's `track`, compared
/// between the flag's variants by `sluice experiment report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalDef {
    /// The event's name, as sent to `track`.
    pub event: String,
    /// How it is measured; `conversion` when not given.
    #[serde(default)]
    pub kind: GoalKind,
    /// Which way is an improvement; `higher` when not given.
    #[serde(default, skip_serializing_if = "Better::is_higher")]
    pub better: Better,
}

/// Which way a goal metric improves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// More is better: conversions, revenue.
    #[default]
    Higher,
    /// Less is better: latency, refunds, support tickets.
    Lower,
}

impl Better {
    /// Whether more is better.
    pub fn is_higher(&self) -> bool {
        *self == Better::Higher
    }

    /// `higher` or `lower`.
    pub fn name(self) -> &'static str {
        match self {
            Better::Higher => "higher",
            Better::Lower => "lower",
        }
    }

    /// The direction called `name`.
    pub fn from_name(name: &str) -> Option<Better> {
        match name {
            "higher" => Some(Better::Higher),
            "lower" => Some(Better::Lower),
            _ => None,
        }
    }
}

/// What a goal metric measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalKind {
    /// Events per exposure, capped at 1: a conversion rate.
    #[default]
    Conversion,
    /// The event's summed value per exposure: a mean.
    Mean,
}

impl GoalKind {
    /// `conversion` or `mean`.
    pub fn name(self) -> &'static str {
        match self {
            GoalKind::Conversion => "conversion",
            GoalKind::Mean => "mean",
        }
    }

    /// The kind called `name`.
    pub fn from_name(name: &str) -> Option<GoalKind> {
        match name {
            "conversion" => Some(GoalKind::Conversion),
            "mean" => Some(GoalKind::Mean),
            _ => None,
        }
    }
}

/// What one environment changes about a flag. Absent fields inherit the flag's own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentOverride {
    /// Overrides the kill switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Replaces the rules entirely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RuleDef>>,
    /// Overrides the default variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_variant: Option<String>,
}

/// A dependency on another flag's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrerequisiteDef {
    /// The flag that must be evaluated first.
    pub flag: String,
    /// The variant it must evaluate to.
    pub variant: String,
}

/// One targeting rule: when all conditions hold, serve a variant or a split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// A name for people and for evaluation reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions, all of which must hold. Empty means always.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<ConditionDef>,
    /// The variant to serve. Exactly one of `serve` and `split` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<String>,
    /// A weighted split to serve, weights out of 100,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Vec<WeightDef>>,
    /// Overrides the flag's `bucket_by` for this rule's split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_by: Option<String>,
}

/// One arm of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightDef {
    /// The variant this arm serves.
    pub variant: String,
    /// Its weight, out of 100,000.
    pub weight: u32,
}

/// A condition on the context, or membership of a segment.
///
/// Either `attribute` with `op` (and `value` or `values`), or `segment`, is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDef {
    /// A dotted path into the context, such as `app.version`. `targetingKey` is the targeting key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// The operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Operator>,
    /// One operand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Several operands; the condition holds when any of them does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
    /// A segment the context must belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Inverts the outcome.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

/// The condition operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Equal to the operand (numbers compare numerically).
    Eq,
    /// Not equal to any operand.
    Neq,
    /// Equal to one of the operands.
    In,
    /// Equal to none of the operands.
    NotIn,
    /// A string containing the operand.
    Contains,
    /// A string starting with the operand.
    StartsWith,
    /// A string ending with the operand.
    EndsWith,
    /// A string matching the operand as a regular expression.
    Matches,
    /// A number less than the operand.
    Lt,
    /// A number at most the operand.
    Lte,
    /// A number greater than the operand.
    Gt,
    /// A number at least the operand.
    Gte,
    /// A semantic version equal to the operand.
    SemverEq,
    /// A semantic version lower than the operand.
    SemverLt,
    /// A semantic version at most the operand.
    SemverLte,
    /// A semantic version greater than the operand.
    SemverGt,
    /// A semantic version at least the operand.
    SemverGte,
    /// An RFC 3339 time (or Unix seconds) before the operand.
    Before,
    /// An RFC 3339 time (or Unix seconds) after the operand.
    After,
    /// The attribute is present and not null. Takes no operand.
    Exists,
}

impl Operator {
    /// The name used in the file format.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Neq => "neq",
            Operator::In => "in",
            Operator::NotIn => "not_in",
            Operator::Contains => "contains",
            Operator::StartsWith => "starts_with",
            Operator::EndsWith => "ends_with",
            Operator::Matches => "matches",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::SemverEq => "semver_eq",
            Operator::SemverLt => "semver_lt",
            Operator::SemverLte => "semver_lte",
            Operator::SemverGt => "semver_gt",
            Operator::SemverGte => "semver_gte",
            Operator::Before => "before",
            Operator::After => "after",
            Operator::Exists => "exists",
        }
    }
}

/// A named, reusable audience.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentDef {
    /// What the audience is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Targeting keys that always belong.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Targeting keys that never belong; exclusion wins over inclusion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Conditions, all of which must hold. Empty means only `include` belongs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<ConditionDef>,
}
