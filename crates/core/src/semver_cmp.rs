//! Semantic version parsing and ordering that never allocates, for the evaluation hot path.
//!
//! Definitions are checked with the `semver` crate when they load, so a bad operand gets a
//! precise message. Context values are parsed here on every evaluation: `MAJOR.MINOR.PATCH`
//! with an optional pre-release and build, a leading `v`, and missing minor or patch parts
//! read as 0 (`17.1` is `17.1.0`), since apps report versions that way. Ordering follows
//! semver 2.0.0 §11, tested against the `semver` crate.

use std::cmp::Ordering;

/// A parsed version borrowing its pre-release from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    /// The major number.
    pub major: u64,
    /// The minor number.
    pub minor: u64,
    /// The patch number.
    pub patch: u64,
    /// The pre-release identifiers, dot-separated; empty for a release.
    pub pre: &'a str,
}

/// Dot-separated identifiers, each non-empty and made of ASCII alphanumerics and `-`.
#[inline]
fn valid_identifiers(text: &[u8]) -> bool {
    let mut empty = true;
    for &b in text {
        if b == b'.' {
            if empty {
                return false;
            }
            empty = true;
        } else if b.is_ascii_alphanumeric() || b == b'-' {
            empty = false;
        } else {
            return false;
        }
    }
    !empty
}

/// Parses `text`, or returns `None` when it is not a version.
///
/// This runs on every evaluation of a semver condition, so it reads the bytes once, left to
/// right, rather than splitting the text with `str` pattern searches.
#[inline]
pub fn parse(text: &str) -> Option<Version<'_>> {
    let bytes = text.as_bytes();
    let mut at = usize::from(matches!(bytes.first(), Some(b'v' | b'V')));
    // Up to three numbers separated by dots: no sign, no leading zero, within `u64`.
    let mut numbers = [0_u64; 3];
    for (index, slot) in numbers.iter_mut().enumerate() {
        let start = at;
        let mut number: u64 = 0;
        while let Some(&digit) = bytes.get(at)
            && digit.is_ascii_digit()
        {
            number = number
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            at += 1;
        }
        if at == start || (at - start > 1 && bytes.get(start) == Some(&b'0')) {
            return None;
        }
        *slot = number;
        if index < 2 && bytes.get(at) == Some(&b'.') {
            at += 1;
        } else {
            break;
        }
    }
    // Then the end, a pre-release after `-`, or build metadata after `+`.
    let pre = match bytes.get(at..)?.split_first() {
        None => "",
        Some((b'+', build)) => {
            if !valid_identifiers(build) {
                return None;
            }
            ""
        }
        Some((b'-', after_dash)) => {
            let pre_len = after_dash
                .iter()
                .position(|&b| b == b'+')
                .unwrap_or(after_dash.len());
            let (pre, build) = after_dash.split_at(pre_len);
            if !valid_identifiers(pre) {
                return None;
            }
            if let Some((_, build)) = build.split_first()
                && !valid_identifiers(build)
            {
                return None;
            }
            text.get(at + 1..at + 1 + pre_len)?
        }
        Some(_) => return None,
    };
    let [major, minor, patch] = numbers;
    Some(Version {
        major,
        minor,
        patch,
        pre,
    })
}

fn compare_identifier(a: &str, b: &str) -> Ordering {
    let a_numeric = !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit());
    let b_numeric = !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit());
    match (a_numeric, b_numeric) {
        (true, true) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

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
            (Some(x), Some(y)) => match compare_identifier(x, y) {
                Ordering::Equal => {}
                other => return other,
            },
        }
    }
}

impl Version<'_> {
    /// Semver precedence; build metadata is ignored.
    #[inline]
    pub fn precedence(&self, other: &Version<'_>) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_pre(self.pre, other.pre))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lenient_forms() {
        let v = parse("v17.1").map(|v| (v.major, v.minor, v.patch));
        assert_eq!(v, Some((17, 1, 0)));
        assert_eq!(parse("2").map(|v| v.major), Some(2));
        assert!(parse("1.x").is_none());
        assert!(parse("1.2.3.4").is_none());
        assert!(parse("01.2.3").is_none());
        assert!(parse("1.2.3-").is_none());
        assert!(parse("").is_none());
        assert_eq!(parse("1.2.3-rc.1+build.5").map(|v| v.pre), Some("rc.1"));
    }

    /// The straightforward `str`-based parser the byte parser replaced, kept as the reference.
    fn reference_parse(text: &str) -> Option<Version<'_>> {
        fn number(part: &str) -> Option<u64> {
            if part.is_empty() || (part.len() > 1 && part.starts_with('0')) {
                return None;
            }
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        }
        fn valid_identifiers(text: &str) -> bool {
            text.split('.').all(|identifier| {
                !identifier.is_empty()
                    && identifier
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
        }
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        let (text, build) = match text.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (text, None),
        };
        if let Some(build) = build
            && !valid_identifiers(build)
        {
            return None;
        }
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => {
                if !valid_identifiers(pre) {
                    return None;
                }
                (core, pre)
            }
            None => (text, ""),
        };
        let mut parts = core.split('.');
        let major = number(parts.next()?)?;
        let minor = parts.next().map_or(Some(0), number)?;
        let patch = parts.next().map_or(Some(0), number)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Version {
            major,
            minor,
            patch,
            pre,
        })
    }

    #[test]
    fn overflow_and_edge_forms_match_reference() {
        for text in [
            "18446744073709551615.0.0",
            "18446744073709551616.0.0",
            "1.2.3+",
            "1.2.3-+b",
            "1.2.3-a+",
            "1.2.3-a..b",
            "1.2.3-a+b+c",
            "1.2.3+b-c",
            "v",
            "V1",
            "vv1",
            "1..2",
            "1.",
            ".1",
            "0.0.0-0",
            "1.2.3-é",
            "é",
        ] {
            assert_eq!(parse(text), reference_parse(text), "{text}");
        }
    }

    fn version_strategy() -> impl Strategy<Value = String> {
        let ident = prop_oneof![
            "[0-9]{1,3}"
                .prop_map(|s| s.trim_start_matches('0').to_owned())
                .prop_map(|s| if s.is_empty() { "0".to_owned() } else { s }),
            "[a-z][a-z0-9-]{0,4}",
        ];
        (
            0u64..4,
            0u64..4,
            0u64..4,
            proptest::collection::vec(ident, 0..3),
        )
            .prop_map(|(a, b, c, pre)| {
                if pre.is_empty() {
                    format!("{a}.{b}.{c}")
                } else {
                    format!("{a}.{b}.{c}-{}", pre.join("."))
                }
            })
    }

    proptest! {
        #[test]
        fn parse_matches_reference(text in "[vV]?[0-9.+a-z-]{0,14}") {
            prop_assert_eq!(parse(&text), reference_parse(&text));
        }

        #[test]
        fn parse_matches_reference_on_numbers(text in "[vV]?[0-9.]{0,25}([-+][0-9a-z.]{0,3})?") {
            prop_assert_eq!(parse(&text), reference_parse(&text));
        }

        #[test]
        fn parse_matches_reference_on_versions(text in version_strategy(), build in "(\\+[a-z0-9.-]{0,5})?") {
            let text = format!("{text}{build}");
            prop_assert_eq!(parse(&text), reference_parse(&text));
        }

        #[test]
        fn ordering_matches_semver_crate(a in version_strategy(), b in version_strategy()) {
            let ours = parse(&a).zip(parse(&b)).map(|(x, y)| x.precedence(&y));
            let theirs = semver::Version::parse(&a).ok().zip(semver::Version::parse(&b).ok())
                .map(|(x, y)| x.cmp_precedence(&y));
            prop_assert_eq!(ours, theirs);
        }
    }
}
