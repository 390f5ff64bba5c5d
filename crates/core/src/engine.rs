//! The compiled, immutable form of a flag configuration, and evaluation over it.
//!
//! An [`Engine`] is built once per configuration and environment, then shared behind an
//! `Arc` and swapped whole when the configuration changes. Evaluation only reads it:
//! no locks, no I/O, and on the success path no allocation, because the result borrows
//! variant names and values from the engine.

use std::fmt::Write as _;
use std::hash::BuildHasher as _;

use serde_json::{Map, Value};

use crate::bucket;
use crate::condition::{Condition, Segment};
use crate::context::{Context, same_text};
use crate::evaluation::{ErrorCode, Evaluation, Reason, RuleRef, Typed};
use crate::flagd::Logic;
use crate::model::{FlagType, Provenance, Risk};
use crate::murmur3::Murmur3;

/// What a flag is, beyond how it evaluates: returned with every evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlagInfo {
    /// The flag key.
    pub key: String,
    /// The declared value type; flagd flags declare none.
    pub flag_type: Option<FlagType>,
    /// What the flag guards.
    pub description: Option<String>,
    /// Who is responsible for it.
    pub owner: Option<String>,
    /// Free labels.
    pub tags: Vec<String>,
    /// Who wrote the guarded change.
    pub provenance: Option<Provenance>,
    /// How much harm the guarded change could do.
    pub risk: Option<Risk>,
    /// When the flag should be gone, `YYYY-MM-DD`.
    pub expires: Option<String>,
    /// Free metadata with scalar values.
    pub metadata: Map<String, Value>,
}

/// Where a split takes its bucketing value from.
#[derive(Debug, Clone)]
pub(crate) enum BucketBy {
    TargetingKey,
    Attribute(Box<[Box<str>]>),
}

/// What a rule serves.
#[derive(Debug, Clone)]
pub(crate) enum Serve {
    Variant(usize),
    /// Arms as (exclusive upper bucket, variant index), in order; zero-weight arms dropped.
    Split {
        arms: Box<[(u32, usize)]>,
        bucket_by: BucketBy,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub name: Option<Box<str>>,
    pub conditions: Box<[Condition]>,
    pub serve: Serve,
}

#[derive(Debug, Clone)]
pub(crate) enum Targeting {
    Rules(Box<[Rule]>),
    Logic(Logic),
}

#[derive(Debug, Clone)]
pub(crate) struct Prerequisite {
    pub flag: usize,
    pub variant: usize,
}

/// One compiled flag.
#[derive(Debug, Clone)]
pub(crate) struct Flag {
    pub info: FlagInfo,
    pub variants: Box<[(Box<str>, Value)]>,
    pub default_variant: Option<usize>,
    pub off_variant: Option<usize>,
    pub enabled: bool,
    pub prerequisites: Box<[Prerequisite]>,
    pub targeting: Targeting,
    pub salt: Box<str>,
}

/// A compiled configuration for one environment.
#[derive(Debug, Clone)]
pub struct Engine {
    flags: Box<[Flag]>,
    /// Per flag, the bucketing hasher after its salt, so a split only hashes the key.
    salt_prefixes: Box<[Murmur3]>,
    segments: Box<[Segment]>,
    index: KeyIndex,
    environment: Option<String>,
}

/// Flag keys to flag positions: open addressing over the keys' hashes.
///
/// A `HashMap<Box<str>, usize>` compares the key it finds through `memcmp`; here the flag's
/// own key is compared inline, and the table holds only positions, so it is small.
#[derive(Debug, Clone)]
struct KeyIndex {
    /// Per slot, a flag position; a power of two of them, at most half full.
    slots: Box<[Option<usize>]>,
    hasher: foldhash::fast::FixedState,
}

impl KeyIndex {
    /// Indexes keys by their position. A repeated key maps to its last position.
    fn new<'a>(keys: impl ExactSizeIterator<Item = &'a str> + Clone) -> KeyIndex {
        let capacity = (keys.len() * 2).next_power_of_two().max(2);
        let mut index = KeyIndex {
            slots: vec![None; capacity].into(),
            hasher: foldhash::fast::FixedState::default(),
        };
        let all: Vec<&str> = keys.collect();
        for (position, key) in all.iter().enumerate() {
            let mut slot = index.start(key);
            loop {
                match index.slots[slot] {
                    Some(other) if all.get(other) != Some(key) => slot = (slot + 1) & index.mask(),
                    _ => {
                        index.slots[slot] = Some(position);
                        break;
                    }
                }
            }
        }
        index
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    #[inline]
    fn start(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) & self.mask()
    }

    /// The position of `key`, given the key at each position.
    #[inline]
    fn get<'a>(&self, key: &str, key_at: impl Fn(usize) -> Option<&'a str>) -> Option<usize> {
        let mut slot = self.start(key);
        loop {
            let position = (*self.slots.get(slot)?)?;
            if key_at(position).is_some_and(|k| same_text(k.as_bytes(), key.as_bytes())) {
                return Some(position);
            }
            slot = (slot + 1) & self.mask();
        }
    }
}

/// An evaluation before it borrows names and values: indexes only.
struct Outcome {
    variant: Option<usize>,
    reason: Reason,
    error: Option<(ErrorCode, String)>,
    rule: Option<usize>,
    segment: Option<usize>,
    prerequisite: Option<usize>,
}

impl Outcome {
    fn new(variant: Option<usize>, reason: Reason) -> Outcome {
        Outcome {
            variant,
            reason,
            error: None,
            rule: None,
            segment: None,
            prerequisite: None,
        }
    }

    fn failed(code: ErrorCode, message: String) -> Outcome {
        Outcome {
            error: Some((code, message)),
            ..Outcome::new(None, Reason::Error)
        }
    }
}

/// A number written into a stack buffer, so bucketing by a numeric attribute does not allocate.
struct StackText {
    bytes: [u8; 64],
    len: usize,
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        let target = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        target.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Engine {
    pub(crate) fn from_parts(
        flags: Vec<Flag>,
        segments: Vec<Segment>,
        environment: Option<String>,
    ) -> Engine {
        let index = KeyIndex::new(flags.iter().map(|flag| flag.info.key.as_str()));
        let salt_prefixes = flags
            .iter()
            .map(|flag| bucket::prefix(&flag.salt))
            .collect();
        Engine {
            flags: flags.into(),
            salt_prefixes,
            segments: segments.into(),
            index,
            environment,
        }
    }

    /// The environment this engine was compiled for; `None` for the base definitions.
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// The number of flags.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether there are no flags.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// The flag keys, in definition order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.flags.iter().map(|f| f.info.key.as_str())
    }

    /// A flag's descriptive fields.
    pub fn info(&self, key: &str) -> Option<&FlagInfo> {
        self.position(key).map(|i| &self.flags[i].info)
    }

    /// A flag's variants, by name, in definition order.
    pub fn variants(&self, key: &str) -> Option<impl Iterator<Item = (&str, &Value)>> {
        let flag = &self.flags[self.position(key)?];
        Some(
            flag.variants
                .iter()
                .map(|(name, value)| (name.as_ref(), value)),
        )
    }

    /// Evaluates one flag.
    #[inline]
    pub fn evaluate(&self, key: &str, context: &Context) -> Evaluation<'_> {
        match self.position(key) {
            Some(index) => self.evaluation(index, context),
            None => not_found(key),
        }
    }

    /// Evaluates every flag, in definition order.
    pub fn evaluate_all<'a>(
        &'a self,
        context: &'a Context,
    ) -> impl Iterator<Item = (&'a str, Evaluation<'a>)> + 'a {
        (0..self.flags.len()).map(move |index| {
            (
                self.flags[index].info.key.as_str(),
                self.evaluation(index, context),
            )
        })
    }

    /// A boolean flag's value, or `default`.
    #[inline]
    pub fn boolean(&self, key: &str, context: &Context, default: bool) -> Typed<'_, bool> {
        self.typed(key, context, default, Value::as_bool)
    }

    /// A string flag's value, or `default`.
    #[inline]
    pub fn string<'a>(
        &'a self,
        key: &str,
        context: &Context,
        default: &'a str,
    ) -> Typed<'a, &'a str> {
        self.typed(key, context, default, Value::as_str)
    }

    /// A number flag's value, or `default`.
    #[inline]
    pub fn number(&self, key: &str, context: &Context, default: f64) -> Typed<'_, f64> {
        self.typed(key, context, default, Value::as_f64)
    }

    /// A number flag's value as an integer, or `default` when it is not integral.
    #[inline]
    pub fn integer(&self, key: &str, context: &Context, default: i64) -> Typed<'_, i64> {
        self.typed(key, context, default, Value::as_i64)
    }

    /// An object flag's value, or `default`.
    #[inline]
    pub fn object<'a>(
        &'a self,
        key: &str,
        context: &Context,
        default: &'a Value,
    ) -> Typed<'a, &'a Value> {
        self.typed(key, context, default, |v| v.is_object().then_some(v))
    }

    /// The index of the flag with this key.
    #[inline]
    fn position(&self, key: &str) -> Option<usize> {
        self.index.get(key, |i| {
            self.flags.get(i).map(|flag| flag.info.key.as_str())
        })
    }

    #[inline]
    fn evaluation(&self, index: usize, context: &Context) -> Evaluation<'_> {
        self.details(index, self.resolve(index, context, 0))
    }

    /// [`Typed::from_evaluation`] over [`Engine::evaluate`], written so that the result is
    /// built in place.
    ///
    /// Building an `Evaluation` and then moving it into a `Typed` made the compiler store it
    /// field by field and reload it in wider pieces, which stalls on store forwarding: that
    /// cost more than evaluating a flag without rules. Here the served value is converted
    /// first, and the evaluation is written once, straight into the result.
    #[inline(always)]
    fn typed<'a, T: Copy>(
        &'a self,
        key: &str,
        context: &Context,
        default: T,
        convert: impl Fn(&'a Value) -> Option<T>,
    ) -> Typed<'a, T> {
        let Some(index) = self.position(key) else {
            return Typed::from_evaluation(not_found(key), default, convert);
        };
        let outcome = self.resolve(index, context, 0);
        let served = outcome
            .variant
            .and_then(|v| self.flags[index].variants.get(v))
            .map(|(_, value)| value);
        match served.map(&convert) {
            // A type mismatch: the error path, as `from_evaluation` words it.
            Some(None) => Typed::from_evaluation(self.details(index, outcome), default, convert),
            converted => Typed {
                value: converted.flatten().unwrap_or(default),
                details: self.details(index, outcome),
            },
        }
    }

    /// The evaluation of the flag at `index`, given how it resolved.
    #[inline(always)]
    fn details(&self, index: usize, outcome: Outcome) -> Evaluation<'_> {
        let flag = &self.flags[index];
        let rule = match (&flag.targeting, outcome.rule) {
            (Targeting::Rules(rules), Some(i)) => Some(RuleRef {
                index: i,
                name: rules.get(i).and_then(|r| r.name.as_deref()),
            }),
            (Targeting::Logic(_), Some(i)) => Some(RuleRef {
                index: i,
                name: None,
            }),
            _ => None,
        };
        let (error, error_message) = match outcome.error {
            Some((code, message)) => (Some(code), Some(message)),
            None => (None, None),
        };
        let variant = outcome.variant.and_then(|v| flag.variants.get(v));
        Evaluation {
            value: variant.map(|(_, value)| value),
            variant: variant.map(|(name, _)| name.as_ref()),
            reason: outcome.reason,
            error,
            error_message,
            rule,
            segment: outcome
                .segment
                .and_then(|s| self.segments.get(s))
                .map(|s| s.name.as_ref()),
            prerequisite: outcome
                .prerequisite
                .and_then(|p| self.flags.get(p))
                .map(|f| f.info.key.as_str()),
            flag: Some(&flag.info),
        }
    }

    fn resolve(&self, index: usize, context: &Context, depth: usize) -> Outcome {
        let flag = &self.flags[index];
        if !flag.enabled {
            return Outcome::new(flag.off_variant, Reason::Disabled);
        }
        // Prerequisites are acyclic once compiled; the depth bound is a second guard.
        if depth > self.flags.len() {
            return Outcome::failed(ErrorCode::General, "prerequisites nest too deeply".into());
        }
        for prerequisite in &flag.prerequisites {
            let outcome = self.resolve(prerequisite.flag, context, depth + 1);
            if outcome.variant != Some(prerequisite.variant) {
                return Outcome {
                    prerequisite: Some(prerequisite.flag),
                    ..Outcome::new(flag.default_variant, Reason::Default)
                };
            }
        }
        match &flag.targeting {
            Targeting::Rules(rules) => self.resolve_rules(index, rules, context),
            Targeting::Logic(logic) => logic.resolve(flag, context).into_outcome(flag),
        }
    }

    fn resolve_rules(&self, index: usize, rules: &[Rule], context: &Context) -> Outcome {
        let flag = &self.flags[index];
        if rules.is_empty() {
            let reason = if flag.prerequisites.is_empty() {
                Reason::Static
            } else {
                Reason::Default
            };
            return Outcome::new(flag.default_variant, reason);
        }
        for (rule_index, rule) in rules.iter().enumerate() {
            let mut segment = None;
            if !rule
                .conditions
                .iter()
                .all(|c| c.holds(context, &self.segments, &mut segment))
            {
                continue;
            }
            let mut outcome = match &rule.serve {
                Serve::Variant(variant) => Outcome::new(Some(*variant), Reason::TargetingMatch),
                Serve::Split { arms, bucket_by } => {
                    match split_bucket(&self.salt_prefixes[index], bucket_by, context) {
                        Ok(bucket) => {
                            let variant = arms
                                .iter()
                                .find(|(upper, _)| bucket < *upper)
                                .map(|(_, variant)| *variant);
                            Outcome::new(variant, Reason::Split)
                        }
                        Err(failed) => failed,
                    }
                }
            };
            outcome.rule = Some(rule_index);
            outcome.segment = segment;
            return outcome;
        }
        Outcome::new(flag.default_variant, Reason::Default)
    }
}

/// The evaluation of a key no flag has; out of line, since it formats a message.
#[cold]
#[inline(never)]
fn not_found(key: &str) -> Evaluation<'static> {
    Evaluation::error(
        None,
        ErrorCode::FlagNotFound,
        format!("no flag has the key `{key}`"),
    )
}

fn split_bucket(salt: &Murmur3, bucket_by: &BucketBy, context: &Context) -> Result<u32, Outcome> {
    match bucket_by {
        BucketBy::TargetingKey => match context.targeting_key() {
            Some(key) => Ok(bucket::bucket_after(salt, key)),
            None => Err(Outcome::failed(
                ErrorCode::TargetingKeyMissing,
                "this flag splits by targeting key and the context has none".into(),
            )),
        },
        BucketBy::Attribute(path) => match context.lookup(path) {
            Some(Value::String(text)) => Ok(bucket::bucket_after(salt, text)),
            Some(Value::Number(number)) => {
                let mut text = StackText {
                    bytes: [0; 64],
                    len: 0,
                };
                write!(text, "{number}").map_err(|_| {
                    Outcome::failed(
                        ErrorCode::InvalidContext,
                        "bucketing number too long".into(),
                    )
                })?;
                let text = std::str::from_utf8(&text.bytes[..text.len]).unwrap_or_default();
                Ok(bucket::bucket_after(salt, text))
            }
            _ => Err(Outcome::failed(
                ErrorCode::InvalidContext,
                format!(
                    "this flag splits by `{}`, which the context lacks or is not a string or number",
                    path.join(".")
                ),
            )),
        },
    }
}

/// What flagd-style targeting decided, before it is mapped onto the flag's variants.
#[derive(Debug)]
pub(crate) enum LogicOutcome {
    /// The targeting named this variant.
    Variant(String),
    /// The targeting returned nothing: serve the default variant.
    NoVariant,
    /// The flag has no targeting at all.
    Static,
    /// The targeting failed.
    Failed(ErrorCode, String),
}

impl LogicOutcome {
    fn into_outcome(self, flag: &Flag) -> Outcome {
        match self {
            LogicOutcome::Static => Outcome::new(flag.default_variant, Reason::Static),
            LogicOutcome::NoVariant => Outcome::new(flag.default_variant, Reason::Default),
            LogicOutcome::Failed(code, message) => Outcome::failed(code, message),
            LogicOutcome::Variant(name) => {
                match flag.variants.iter().position(|(v, _)| v.as_ref() == name) {
                    Some(variant) => Outcome {
                        rule: Some(0),
                        ..Outcome::new(Some(variant), Reason::TargetingMatch)
                    },
                    None => Outcome::failed(
                        ErrorCode::General,
                        format!("targeting returned `{name}`, which is not a variant of this flag"),
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KeyIndex;

    #[test]
    fn key_index_finds_every_key_and_only_those() {
        for count in [0, 1, 2, 3, 7, 8, 9, 200, 1000] {
            let keys: Vec<String> = (0..count).map(|i| format!("flag-{i}")).collect();
            let index = KeyIndex::new(keys.iter().map(String::as_str));
            let key_at = |i: usize| keys.get(i).map(String::as_str);
            for (position, key) in keys.iter().enumerate() {
                assert_eq!(index.get(key, key_at), Some(position));
            }
            for missing in ["", "flag-", "flag-1000", "flag-01", "Flag-1"] {
                assert_eq!(index.get(missing, key_at), None, "{missing} among {count}");
            }
        }
    }

    #[test]
    fn a_repeated_key_maps_to_its_last_position() {
        let keys = ["a", "b", "a"];
        let index = KeyIndex::new(keys.iter().copied());
        let key_at = |i: usize| keys.get(i).copied();
        assert_eq!(index.get("a", key_at), Some(2));
        assert_eq!(index.get("b", key_at), Some(1));
    }
}
