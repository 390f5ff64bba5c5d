//! flagd's custom JSON Logic operators: `fractional`, `sem_ver`, `starts_with` and `ends_with`.
//!
//! They follow flagd's Go evaluator (`core/pkg/evaluator`, v0.16) rather than datalogic-rs's
//! built-ins of the same names. datalogic-rs's `fractional` accepts only string variants, so it
//! cannot serve as a condition (`[[false, 0], [true, 100]]`), and its `starts_with` turns numbers
//! into strings where flagd returns null. Every operator here returns null on bad input (wrong
//! argument count or type, an invalid version, an unknown comparison), never `false`, so the flag
//! falls back to its default variant instead of looking up a variant named "false".
//!
//! The arguments arrive already evaluated, as flagd's operators receive them from its JSON Logic
//! library, so nested rules in bucketing values, variant names and weights just work.

use std::borrow::Cow;
use std::cmp::Ordering;

use datalogic_rs::bumpalo::Bump;
use datalogic_rs::datavalue::NumberValue;
use datalogic_rs::operator::EvalContext;
use datalogic_rs::{ArenaExt, CustomOperator, DataValue};

use crate::context::TARGETING_KEY;
use crate::murmur3::{Murmur3, murmur3_32};

/// The private name `fractional` is compiled under; see [`renamed`].
pub(super) const FRACTIONAL: &str = "flagd:fractional";
/// The private name `sem_ver` is compiled under.
pub(super) const SEM_VER: &str = "flagd:sem_ver";
/// The private name `starts_with` is compiled under.
pub(super) const STARTS_WITH: &str = "flagd:starts_with";
/// The private name `ends_with` is compiled under.
pub(super) const ENDS_WITH: &str = "flagd:ends_with";

/// The name a flagd custom operator is compiled under, or `None` for any other operator.
///
/// datalogic-rs resolves its built-ins before custom operators, so registering ours under
/// flagd's names would never reach them: targeting is rewritten to these names instead.
pub(super) fn renamed(operator: &str) -> Option<&'static str> {
    match operator {
        "fractional" => Some(FRACTIONAL),
        "sem_ver" => Some(SEM_VER),
        "starts_with" => Some(STARTS_WITH),
        "ends_with" => Some(ENDS_WITH),
        _ => None,
    }
}

/// The largest single weight and weight total flagd accepts (`math.MaxInt32`).
const MAX_WEIGHT: i64 = i32::MAX as i64;

/// flagd's `fractional`.
#[derive(Debug)]
pub(super) struct Fractional;

impl CustomOperator for Fractional {
    fn evaluate<'a>(
        &self,
        args: &[&'a DataValue<'a>],
        ctx: &mut EvalContext<'_, 'a>,
        arena: &'a Bump,
    ) -> datalogic_rs::Result<&'a DataValue<'a>> {
        Ok(fractional(args, ctx.root_input()).unwrap_or_else(|| arena.null()))
    }
}

/// flagd's `sem_ver`.
#[derive(Debug)]
pub(super) struct SemVer;

impl CustomOperator for SemVer {
    fn evaluate<'a>(
        &self,
        args: &[&'a DataValue<'a>],
        _ctx: &mut EvalContext<'_, 'a>,
        arena: &'a Bump,
    ) -> datalogic_rs::Result<&'a DataValue<'a>> {
        Ok(sem_ver(args).map_or_else(|| arena.null(), |result| arena.bool(result)))
    }
}

/// flagd's `starts_with` (`suffix: false`) and `ends_with` (`suffix: true`).
#[derive(Debug)]
pub(super) struct Affix {
    /// Whether this is `ends_with`.
    pub(super) suffix: bool,
}

impl CustomOperator for Affix {
    fn evaluate<'a>(
        &self,
        args: &[&'a DataValue<'a>],
        _ctx: &mut EvalContext<'_, 'a>,
        arena: &'a Bump,
    ) -> datalogic_rs::Result<&'a DataValue<'a>> {
        Ok(affix(args, self.suffix).map_or_else(|| arena.null(), |result| arena.bool(result)))
    }
}

/// A field of an object value.
fn field<'a>(value: &'a DataValue<'a>, name: &str) -> Option<&'a DataValue<'a>> {
    value
        .as_object()?
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A weight as flagd reads it: a whole number, or 1 when absent or null. Negative weights
/// count as 0; anything else, or a weight above `i32::MAX`, makes the whole rule null.
fn weight(entry: &[DataValue<'_>]) -> Option<i64> {
    let weight = match entry.get(1) {
        None | Some(DataValue::Null) => 1,
        Some(DataValue::Number(NumberValue::Integer(weight))) => *weight,
        Some(DataValue::Number(NumberValue::Float(weight))) => {
            if !weight.is_finite() || weight.fract() != 0.0 {
                return None;
            }
            // Saturates far outside the accepted range, which the checks below reject.
            *weight as i64
        }
        Some(_) => return None,
    };
    let weight = weight.max(0);
    (weight <= MAX_WEIGHT).then_some(weight)
}

/// The variant of one `[variant, weight]` entry, when it is one flagd accepts.
fn entry_variant<'a>(entry: &'a [DataValue<'a>]) -> Option<&'a DataValue<'a>> {
    let variant = entry.first()?;
    match variant {
        DataValue::String(_) | DataValue::Bool(_) | DataValue::Number(_) | DataValue::Null => {
            Some(variant)
        }
        _ => None,
    }
}

/// flagd's v2 `fractional`: `None` stands for null.
///
/// The bucketing string is the first argument when it evaluated to a string, otherwise
/// `$flagd.flagKey` followed by `targetingKey` (a null first argument is skipped; any other
/// first argument is already a bucket). It is hashed with MurmurHash3 x86_32, seed 0, and
/// mapped onto `[0, total weight)` as `(hash * total) >> 32`.
pub(super) fn fractional<'a>(
    args: &[&'a DataValue<'a>],
    root: &'a DataValue<'a>,
) -> Option<&'a DataValue<'a>> {
    let (first, rest) = args.split_first()?;
    let (hash, buckets) = match first.as_str() {
        Some(bucket_by) => (murmur3_32(bucket_by.as_bytes(), 0), rest),
        None => {
            let buckets = if first.is_null() { rest } else { args };
            let targeting_key = field(root, TARGETING_KEY)?.as_str()?;
            let flag_key = field(root, "$flagd")
                .and_then(|flagd| field(flagd, "flagKey"))
                .and_then(DataValue::as_str)
                .unwrap_or_default();
            let mut hasher = Murmur3::new(0);
            hasher.write(flag_key.as_bytes());
            hasher.write(targeting_key.as_bytes());
            (hasher.finish(), buckets)
        }
    };
    let mut total: i64 = 0;
    for bucket in buckets {
        let entry = bucket.as_array()?;
        entry_variant(entry)?;
        total += weight(entry)?;
    }
    if total == 0 || total > MAX_WEIGHT {
        return None;
    }
    // `total` is in 1..=i32::MAX here, so the product fits in a u64.
    let point = (u64::from(hash) * total as u64) >> 32;
    let mut end: u64 = 0;
    for bucket in buckets {
        let entry = bucket.as_array()?;
        end += weight(entry)? as u64;
        if point < end {
            return match entry_variant(entry)? {
                DataValue::Null => None,
                variant => Some(variant),
            };
        }
    }
    None
}

/// A number as flagd writes it in text: integral values without a fraction (`1.0` is `1`).
pub(super) fn number_text(number: &NumberValue) -> String {
    match *number {
        NumberValue::Integer(value) => value.to_string(),
        NumberValue::Float(value) => {
            // 2^63: every integral float below it converts to i64 exactly.
            if value.fract() == 0.0 && value.abs() < (1u64 << 63) as f64 {
                (value as i64).to_string()
            } else {
                value.to_string()
            }
        }
    }
}

/// A `sem_ver` operand as text: strings as they are, numbers as flagd prints them (`1.2`).
fn version_text<'a>(value: &'a DataValue<'a>) -> Option<Cow<'a, str>> {
    match value {
        DataValue::String(text) => Some(Cow::Borrowed(text)),
        DataValue::Number(number) => Some(Cow::Owned(number_text(number))),
        _ => None,
    }
}

/// A version as Go's `golang.org/x/mod/semver` reads it, which flagd uses.
///
/// `MAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]]` after an optional `v` or `V`; missing minor and
/// patch parts are 0, and only a full version may carry a pre-release or build. Numbers keep
/// their digits, so versions of any size compare exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version<'t> {
    major: &'t str,
    minor: &'t str,
    patch: &'t str,
    pre: &'t str,
}

/// A leading version number: digits, without a leading zero unless it is `0`.
fn version_number(text: &str) -> Option<(&str, &str)> {
    let end = text
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, rest) = text.split_at(end);
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    Some((digits, rest))
}

/// Dot-separated identifiers of `[0-9A-Za-z-]`, none empty; pre-release numbers have no leading zero.
fn valid_identifiers(text: &str, numbers_without_leading_zero: bool) -> bool {
    text.split('.').all(|identifier| {
        let numeric = identifier.bytes().all(|b| b.is_ascii_digit());
        !identifier.is_empty()
            && identifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !(numbers_without_leading_zero
                && numeric
                && identifier.len() > 1
                && identifier.starts_with('0'))
    })
}

impl<'t> Version<'t> {
    fn parse(text: &'t str) -> Option<Version<'t>> {
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        let (major, rest) = version_number(text)?;
        let mut version = Version {
            major,
            minor: "0",
            patch: "0",
            pre: "",
        };
        if rest.is_empty() {
            return Some(version);
        }
        let (minor, rest) = version_number(rest.strip_prefix('.')?)?;
        version.minor = minor;
        if rest.is_empty() {
            return Some(version);
        }
        let (patch, mut rest) = version_number(rest.strip_prefix('.')?)?;
        version.patch = patch;
        if let Some(after) = rest.strip_prefix('-') {
            let end = after.find('+').unwrap_or(after.len());
            let (pre, after_pre) = after.split_at(end);
            if !valid_identifiers(pre, true) {
                return None;
            }
            version.pre = pre;
            rest = after_pre;
        }
        if let Some(build) = rest.strip_prefix('+') {
            if !valid_identifiers(build, false) {
                return None;
            }
            rest = "";
        }
        rest.is_empty().then_some(version)
    }
}

/// Compares two version numbers without leading zeros: the longer is larger.
fn compare_numbers(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Semver precedence of pre-releases: none is highest; then identifier by identifier.
fn compare_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let x_numeric = x.bytes().all(|b| b.is_ascii_digit());
                let y_numeric = y.bytes().all(|b| b.is_ascii_digit());
                let order = match (x_numeric, y_numeric) {
                    (true, true) => compare_numbers(x, y),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

impl Version<'_> {
    fn precedence(&self, other: &Version<'_>) -> Ordering {
        compare_numbers(self.major, other.major)
            .then_with(|| compare_numbers(self.minor, other.minor))
            .then_with(|| compare_numbers(self.patch, other.patch))
            .then_with(|| compare_pre(self.pre, other.pre))
    }
}

/// flagd's `sem_ver`: `[version, operator, version]`; `None` stands for null.
pub(super) fn sem_ver(args: &[&DataValue<'_>]) -> Option<bool> {
    let [left, operator, right] = args else {
        return None;
    };
    let left = version_text(left)?;
    let right = version_text(right)?;
    let left = Version::parse(&left)?;
    let right = Version::parse(&right)?;
    let order = left.precedence(&right);
    Some(match operator.as_str()? {
        "=" => order == Ordering::Equal,
        "!=" => order != Ordering::Equal,
        "<" => order == Ordering::Less,
        "<=" => order != Ordering::Greater,
        ">" => order == Ordering::Greater,
        ">=" => order != Ordering::Less,
        "^" => left.major == right.major,
        "~" => left.major == right.major && left.minor == right.minor,
        _ => return None,
    })
}

/// flagd's `starts_with` and `ends_with`: exactly two strings; `None` stands for null.
pub(super) fn affix(args: &[&DataValue<'_>], suffix: bool) -> Option<bool> {
    let [text, affix] = args else {
        return None;
    };
    let (text, affix) = (text.as_str()?, affix.as_str()?);
    Some(if suffix {
        text.ends_with(affix)
    } else {
        text.starts_with(affix)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Evaluates an operator over JSON arguments and root data.
    fn run<R>(
        args: &str,
        root: &str,
        operator: impl for<'a> FnOnce(&[&'a DataValue<'a>], &'a DataValue<'a>) -> R,
    ) -> R {
        let arena = Bump::new();
        let args = DataValue::from_str(args, &arena).unwrap();
        let root = arena.alloc(DataValue::from_str(root, &arena).unwrap());
        let args: Vec<&DataValue<'_>> = args.as_array().unwrap().iter().collect();
        operator(&args, root)
    }

    fn fractional_json(args: &str, root: &str) -> String {
        run(args, root, |args, root| {
            fractional(args, root).map_or_else(|| "null".to_owned(), |v| v.to_json_string())
        })
    }

    fn sem_ver_of(args: &str) -> Option<bool> {
        run(args, "{}", |args, _| sem_ver(args))
    }

    fn v2_bucket(text: &str, total: u64) -> u64 {
        (u64::from(murmur3_32(text.as_bytes(), 0)) * total) >> 32
    }

    #[test]
    fn fractional_bucketing_golden_values() {
        // Frozen values of flagd's v2 mapping, `(murmur3_32(text, 0) * total) >> 32`. The
        // testbed's comments give 76 and 36 for the last two.
        assert_eq!(murmur3_32(b"fractional-flagjack", 0), 0x9fe8_43e0);
        assert_eq!(v2_bucket("fractional-flagjack", 100), 62);
        assert_eq!(v2_bucket("fractional-flag-shorthandjane@company.com", 2), 1);
        assert_eq!(v2_bucket("user1", 100), 76);
        assert_eq!(v2_bucket("jon@company.com", 100), 36);
        assert_eq!(v2_bucket("", 100), 0);
        // Buckets of 25 each: the suits match the testbed's @fractional-v2 rows.
        let suits = r#"["clubs", 25], ["diamonds", 25], ["hearts", 25], ["spades", 25]"#;
        for (name, suit) in [
            ("jack", "hearts"),
            ("queen", "spades"),
            ("ten", "clubs"),
            ("nine", "diamonds"),
            ("3", "clubs"),
        ] {
            let args = format!(r#"["fractional-flag{name}", {suits}]"#);
            assert_eq!(
                fractional_json(&args, "{}"),
                format!("\"{suit}\""),
                "{name}"
            );
        }
        // The implicit key is `$flagd.flagKey` + `targetingKey`, concatenated.
        let root = r#"{"targetingKey": "jon@company.com", "$flagd": {"flagKey": "fractional-flag-shorthand"}}"#;
        assert_eq!(v2_bucket("fractional-flag-shorthandjon@company.com", 2), 0);
        assert_eq!(
            fractional_json(r#"[["heads"], ["tails", 1]]"#, root),
            "\"heads\""
        );
        let root = r#"{"targetingKey": "jane@company.com", "$flagd": {"flagKey": "fractional-flag-shorthand"}}"#;
        assert_eq!(
            fractional_json(r#"[["heads"], ["tails", 1]]"#, root),
            "\"tails\""
        );
    }

    #[test]
    fn fractional_hash_edges() {
        // Keys whose hashes sit at the boundaries of a 50/50 split (from the testbed).
        for (key, expected) in [
            ("ejOoVL", "lower"),
            ("bY9fO-", "lower"),
            ("SI7p-", "lower"),
            ("6LvT0", "upper"),
            ("ceQdGm", "upper"),
        ] {
            let args = format!(r#"["{key}", ["lower", 50], ["upper", 50]]"#);
            assert_eq!(
                fractional_json(&args, "{}"),
                format!("\"{expected}\""),
                "{key}"
            );
        }
    }

    #[test]
    fn fractional_weights_and_shapes() {
        let keyed = r#"{"targetingKey": "any-user", "$flagd": {"flagKey": "f"}}"#;
        // Zero total weight, and no buckets at all, are null.
        assert_eq!(
            fractional_json(r#"["k", ["one", 0], ["two", 0]]"#, "{}"),
            "null"
        );
        assert_eq!(fractional_json(r#"["k"]"#, "{}"), "null");
        assert_eq!(fractional_json("[]", "{}"), "null");
        // Negative weights count as 0.
        assert_eq!(
            fractional_json(r#"["k", ["one", -50], ["two", 100]]"#, "{}"),
            "\"two\""
        );
        // A single entry always wins.
        assert_eq!(fractional_json(r#"[["single", 1]]"#, keyed), "\"single\"");
        // Non-string variants are returned as they are, so fractional works as a condition.
        assert_eq!(fractional_json("[[false, 0], [true, 100]]", keyed), "true");
        assert_eq!(fractional_json("[[1, 1]]", keyed), "1");
        // A null bucketing value is skipped; without a targeting key the result is null.
        assert_eq!(fractional_json(r#"[null, ["one", 1]]"#, "{}"), "null");
        assert_eq!(fractional_json(r#"[null, ["one", 1]]"#, keyed), "\"one\"");
        assert_eq!(
            fractional_json(r#"[["one", 1]]"#, r#"{"targetingKey": 5}"#),
            "null"
        );
        // Fractional weights, non-numeric weights, oversized weights and bad entries are null.
        assert_eq!(fractional_json(r#"["k", ["one", 1.5]]"#, "{}"), "null");
        assert_eq!(fractional_json(r#"["k", ["one", 2.0]]"#, "{}"), "\"one\"");
        assert_eq!(fractional_json(r#"["k", ["one", "1"]]"#, "{}"), "null");
        assert_eq!(fractional_json(r#"["k", ["one", null]]"#, "{}"), "\"one\"");
        assert_eq!(
            fractional_json(r#"["k", ["one", 2147483648]]"#, "{}"),
            "null"
        );
        assert_eq!(
            fractional_json(r#"["k", ["one", 2147483647], ["two", 1]]"#, "{}"),
            "null"
        );
        assert_eq!(
            fractional_json(r#"["k", ["one", 2147483647]]"#, "{}"),
            "\"one\""
        );
        assert_eq!(fractional_json(r#"["k", []]"#, "{}"), "null");
        assert_eq!(fractional_json(r#"["k", "one"]"#, "{}"), "null");
        assert_eq!(fractional_json(r#"["k", [["one"], 1]]"#, "{}"), "null");
        // A winning null variant is null.
        assert_eq!(fractional_json(r#"["k", [null, 1]]"#, "{}"), "null");
    }

    #[test]
    fn sem_ver_comparisons() {
        let cases = [
            (r#"["2.0.0", "=", "2.0.0"]"#, Some(true)),
            (r#"["2.1.0", ">", "2.0.0"]"#, Some(true)),
            (r#"["2.0.0-alpha", "<", "2.0.0"]"#, Some(true)),
            (r#"["2.0.0-alpha.2", ">", "2.0.0-alpha.10"]"#, Some(false)),
            (r#"["2.0.0-alpha.beta", ">", "2.0.0-alpha.1"]"#, Some(true)),
            (r#"["2.0.0-alpha", "<", "2.0.0-alpha.1"]"#, Some(true)),
            (r#"["1.0.0", "!=", "1.0.1"]"#, Some(true)),
            (r#"["1.0.0", "<=", "1.0.0"]"#, Some(true)),
            (r#"["1.0.0", ">=", "1.0.1"]"#, Some(false)),
            (r#"["3.0.1", "~", "3.0.0"]"#, Some(true)),
            (r#"["3.1.0", "~", "3.0.0"]"#, Some(false)),
            (r#"["3.1.0", "^", "3.0.0"]"#, Some(true)),
            (r#"["4.0.0", "^", "3.0.0"]"#, Some(false)),
            (r#"["10.0.0", ">", "9.0.0"]"#, Some(true)),
            (
                r#"["99999999999999999999999.0.0", ">", "9.0.0"]"#,
                Some(true),
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(sem_ver_of(args), expected, "{args}");
        }
    }

    #[test]
    fn sem_ver_normalizes_like_flagd() {
        let cases = [
            // `v` and `V` prefixes.
            (r#"["v1.0.0", "=", "1.0.0"]"#, Some(true)),
            (r#"["V1.0.0", "=", "v1.0.0"]"#, Some(true)),
            // Partial versions.
            (r#"["1", "=", "1.0.0"]"#, Some(true)),
            (r#"["1.0", "^", "1"]"#, Some(true)),
            // Numbers are versions.
            (r#"[1, "^", "1"]"#, Some(true)),
            (r#"[1.0, "^", "1"]"#, Some(true)),
            (r#"[1.2, ">", "1.1"]"#, Some(true)),
            (r#"[1.1, ">", "1.1"]"#, Some(false)),
            (r#"[2, ">", "1.1"]"#, Some(true)),
            // Build metadata is ignored.
            (r#"["1.0.0+other", "=", "1.0.0+build"]"#, Some(true)),
            (r#"["2.0.0", "=", "1.0.0+build"]"#, Some(false)),
        ];
        for (args, expected) in cases {
            assert_eq!(sem_ver_of(args), expected, "{args}");
        }
    }

    #[test]
    fn sem_ver_is_null_on_bad_input() {
        for args in [
            r#"["2.0.0.0", "=", "2.0.0"]"#,
            r#"["not-a-version", "=", "1.0.0"]"#,
            r#"["1.0.0", "===", "1.0.0"]"#,
            r#"["1.0.0", "="]"#,
            r#"["1.0.0", "=", "1.0.0", "1.0.0"]"#,
            r#"[null, "=", "1.0.0"]"#,
            r#"[true, "=", "1.0.0"]"#,
            r#"["1.0.0", 1, "1.0.0"]"#,
            r#"["01.0.0", "=", "1.0.0"]"#,
            r#"["1.0.0-01", "=", "1.0.0"]"#,
            r#"["1.0.0-", "=", "1.0.0"]"#,
            r#"["1.0.0+", "=", "1.0.0"]"#,
            r#"["1.0-rc.1", "=", "1.0.0"]"#,
            r#"["1.2.x", "=", "1.2.0"]"#,
            r#"["", "=", "1.0.0"]"#,
            r#"["vv1", "=", "1.0.0"]"#,
            r#"[-1, "=", "1.0.0"]"#,
        ] {
            assert_eq!(sem_ver_of(args), None, "{args}");
        }
    }

    #[test]
    fn affixes() {
        let starts = |args: &str| run(args, "{}", |args, _| affix(args, false));
        let ends = |args: &str| run(args, "{}", |args, _| affix(args, true));
        assert_eq!(starts(r#"["abcdef", "abc"]"#), Some(true));
        assert_eq!(starts(r#"["abcdef", "def"]"#), Some(false));
        assert_eq!(ends(r#"["abcxyz", "xyz"]"#), Some(true));
        assert_eq!(ends(r#"["", ""]"#), Some(true));
        assert_eq!(starts(r#"[123, "abc"]"#), None);
        assert_eq!(ends(r#"["abc", 1]"#), None);
        assert_eq!(starts(r#"["abc"]"#), None);
        assert_eq!(ends(r#"["abc", "c", "c"]"#), None);
    }

    #[test]
    fn numbers_print_as_flagd_prints_them() {
        assert_eq!(number_text(&NumberValue::Float(1.0)), "1");
        assert_eq!(number_text(&NumberValue::Float(1.2)), "1.2");
        assert_eq!(number_text(&NumberValue::Float(-0.0)), "0");
        assert_eq!(number_text(&NumberValue::Integer(-3)), "-3");
        assert_eq!(number_text(&NumberValue::Float(f64::NAN)), "NaN");
    }
}
