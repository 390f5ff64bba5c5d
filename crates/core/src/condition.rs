//! Compiled conditions and segments, and how they are matched against a context.
//!
//! Operands are parsed once, when definitions compile: numbers become `f64`, versions and
//! times are parsed, regexes are built with a size limit. Matching then only reads the
//! context. A condition on a missing attribute never holds, even when negated: `exists`
//! is the way to test presence. An attribute of the wrong type simply fails the test.

use std::cmp::Ordering;
use std::collections::HashSet;

use regex::Regex;
use serde_json::Value;

use crate::context::{Context, same_text};
use crate::semver_cmp;

/// A hash set of strings with a fixed, fast hasher.
pub(crate) type KeySet = HashSet<Box<str>, foldhash::fast::FixedState>;

/// Which orderings of (attribute, operand) satisfy a comparison.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Accept {
    pub less: bool,
    pub equal: bool,
    pub greater: bool,
}

impl Accept {
    pub const LT: Accept = Accept {
        less: true,
        equal: false,
        greater: false,
    };
    pub const LTE: Accept = Accept {
        less: true,
        equal: true,
        greater: false,
    };
    pub const GT: Accept = Accept {
        less: false,
        equal: false,
        greater: true,
    };
    pub const GTE: Accept = Accept {
        less: false,
        equal: true,
        greater: true,
    };
    pub const EQ: Accept = Accept {
        less: false,
        equal: true,
        greater: false,
    };

    #[inline]
    fn admits(self, ordering: Ordering) -> bool {
        match ordering {
            Ordering::Less => self.less,
            Ordering::Equal => self.equal,
            Ordering::Greater => self.greater,
        }
    }
}

/// A version operand, owned.
#[derive(Debug, Clone)]
pub(crate) struct OwnedVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Box<str>,
}

impl OwnedVersion {
    fn borrow(&self) -> semver_cmp::Version<'_> {
        semver_cmp::Version {
            major: self.major,
            minor: self.minor,
            patch: self.patch,
            pre: &self.pre,
        }
    }
}

/// What an attribute is tested against. Every test holds when any operand satisfies it.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    /// Equal to an operand; numbers compare numerically.
    Equals(Box<[Value]>),
    Contains(Box<[Box<str>]>),
    StartsWith(Box<[Box<str>]>),
    EndsWith(Box<[Box<str>]>),
    Matches(Box<[Regex]>),
    Number(Accept, Box<[f64]>),
    Semver(Accept, Box<[OwnedVersion]>),
    /// Times as Unix nanoseconds.
    Time(Accept, Box<[i128]>),
    Exists,
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub(crate) enum Condition {
    /// Membership of the segment at this index.
    Segment { segment: usize, negate: bool },
    /// A test on an attribute. `invert` comes from the operator (`neq`, `not_in`);
    /// `negate` from the definition. Both apply only when the attribute is present.
    Attribute {
        path: Box<[Box<str>]>,
        test: Test,
        invert: bool,
        negate: bool,
    },
}

/// A compiled segment.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub name: Box<str>,
    pub include: KeySet,
    pub exclude: KeySet,
    pub conditions: Box<[Condition]>,
}

#[inline]
fn values_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => a == b,
        },
        _ => left == right,
    }
}

/// Parses an RFC 3339 string or Unix seconds into Unix nanoseconds.
pub(crate) fn time_nanos(value: &Value) -> Option<i128> {
    match value {
        Value::String(text) => text
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_nanosecond()),
        Value::Number(number) => {
            if let Some(seconds) = number.as_i64() {
                Some(i128::from(seconds) * 1_000_000_000)
            } else {
                let seconds = number.as_f64()?;
                seconds.is_finite().then_some((seconds * 1e9) as i128)
            }
        }
        _ => None,
    }
}

impl Test {
    #[inline]
    fn holds(&self, value: &Value) -> bool {
        match self {
            Test::Exists => !value.is_null(),
            Test::Equals(operands) => operands.iter().any(|op| values_equal(value, op)),
            Test::Contains(operands) => value
                .as_str()
                .is_some_and(|s| operands.iter().any(|op| s.contains(op.as_ref()))),
            Test::StartsWith(operands) => value.as_str().is_some_and(|s| {
                operands.iter().any(|op| {
                    s.as_bytes()
                        .get(..op.len())
                        .is_some_and(|start| same_text(start, op.as_bytes()))
                })
            }),
            Test::EndsWith(operands) => value.as_str().is_some_and(|s| {
                operands.iter().any(|op| {
                    s.len().checked_sub(op.len()).is_some_and(|from| {
                        s.as_bytes()
                            .get(from..)
                            .is_some_and(|end| same_text(end, op.as_bytes()))
                    })
                })
            }),
            Test::Matches(operands) => value
                .as_str()
                .is_some_and(|s| operands.iter().any(|re| re.is_match(s))),
            Test::Number(accept, operands) => value.as_f64().is_some_and(|n| {
                operands
                    .iter()
                    .any(|op| n.partial_cmp(op).is_some_and(|o| accept.admits(o)))
            }),
            Test::Semver(accept, operands) => {
                let Some(version) = value.as_str().and_then(semver_cmp::parse) else {
                    return false;
                };
                operands
                    .iter()
                    .any(|op| accept.admits(version.precedence(&op.borrow())))
            }
            Test::Time(accept, operands) => time_nanos(value)
                .is_some_and(|t| operands.iter().any(|op| accept.admits(t.cmp(op)))),
        }
    }
}

impl Condition {
    /// Whether the condition holds. When it holds through a segment, `matched_segment`
    /// is set to that segment's index.
    #[inline]
    pub(crate) fn holds(
        &self,
        context: &Context,
        segments: &[Segment],
        matched_segment: &mut Option<usize>,
    ) -> bool {
        match self {
            Condition::Segment { segment, negate } => {
                let member = segments
                    .get(*segment)
                    .is_some_and(|s| s.contains(context, segments));
                let holds = member != *negate;
                if holds && !negate && matched_segment.is_none() {
                    *matched_segment = Some(*segment);
                }
                holds
            }
            Condition::Attribute {
                path,
                test,
                invert,
                negate,
            } => match context.lookup(path) {
                None => matches!(test, Test::Exists) && *negate,
                Some(value) => (test.holds(value) != *invert) != *negate,
            },
        }
    }
}

impl Segment {
    /// Whether the context belongs to this segment. Definitions are acyclic, so the
    /// recursion through nested segments ends.
    pub(crate) fn contains(&self, context: &Context, segments: &[Segment]) -> bool {
        // Most segments have no key lists: skip looking the targeting key up for them.
        let has_lists = !self.exclude.is_empty() || !self.include.is_empty();
        if has_lists && let Some(key) = context.targeting_key() {
            if self.exclude.contains(key) {
                return false;
            }
            if self.include.contains(key) {
                return true;
            }
        }
        if self.conditions.is_empty() {
            return false;
        }
        let mut ignored = None;
        self.conditions
            .iter()
            .all(|c| c.holds(context, segments, &mut ignored))
    }
}
