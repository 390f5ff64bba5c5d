//! OFREP answers prepared once per compiled configuration, and the evaluation counters.
//!
//! An OFREP success answer is `{"key":K,"value":V,"variant":X,"reason":R,"metadata":M}`.
//! Everything in it but the reason is fixed by the flag and the variant, so when a
//! configuration is installed each flag's variants are serialized once, into the bytes before
//! the reason and the bytes after it. Answering is then copying those bytes around the
//! reason's name: a bulk request over hundreds of flags does no JSON escaping and no number
//! formatting at all. Anything else (a failure, an evaluation without a variant) goes
//! through serde as before, into the same buffer.
//!
//! The same table holds each flag variant's `sluice_evaluations_total` counters, one per
//! reason, made on first use. Counting an evaluation is then a short scan of the flag's
//! variants and an atomic add, instead of hashing three labels per evaluation.

use std::collections::HashMap;
use std::sync::OnceLock;

use metrics::Counter;
use serde::Serialize;
use serde_json::Value;
use sluice_core::{Engine, Evaluation, Reason};

use crate::http::ofrep::evaluation_answer;

/// Every reason, in the order of [`reason_slot`].
const REASONS: [Reason; 6] = [
    Reason::Static,
    Reason::TargetingMatch,
    Reason::Split,
    Reason::Disabled,
    Reason::Default,
    Reason::Error,
];

fn reason_slot(reason: Reason) -> usize {
    match reason {
        Reason::Static => 0,
        Reason::TargetingMatch => 1,
        Reason::Split => 2,
        Reason::Disabled => 3,
        Reason::Default => 4,
        Reason::Error => 5,
    }
}

/// One counter per reason, each registered the first time it counts.
#[derive(Debug, Default)]
struct Counters([OnceLock<Counter>; REASONS.len()]);

impl Counters {
    fn count(&self, flag: &str, variant: &str, reason: Reason) {
        self.0[reason_slot(reason)]
            .get_or_init(|| crate::metrics::evaluation_counter(flag, variant, reason.as_str()))
            .increment(1);
    }
}

/// One variant of one flag.
#[derive(Debug)]
struct VariantAnswer {
    name: Box<str>,
    /// `{"key":K,"value":V,"variant":X,"reason":"`
    head: Box<[u8]>,
    counters: Counters,
}

/// One flag: its variants, and what follows the reason.
#[derive(Debug)]
struct FlagAnswers {
    key: Box<str>,
    variants: Box<[VariantAnswer]>,
    /// `","metadata":M}`
    tail: Box<[u8]>,
    /// For evaluations that served no variant.
    no_variant: Counters,
}

impl FlagAnswers {
    fn variant(&self, name: &str) -> Option<&VariantAnswer> {
        self.variants.iter().find(|v| &*v.name == name)
    }
}

/// The prepared answers of one environment's configuration, in the engine's flag order.
#[derive(Debug, Default)]
pub struct Answers {
    flags: Box<[FlagAnswers]>,
    positions: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    /// Roughly the bytes of a bulk answer, so its buffer is allocated once.
    bulk_size: usize,
}

impl Answers {
    /// Prepares the answers of every flag in `engine`.
    pub fn new(engine: &Engine) -> Answers {
        let flags: Box<[FlagAnswers]> = engine
            .keys()
            .map(|key| {
                let info = engine.info(key);
                let variants = engine
                    .variants(key)
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| VariantAnswer {
                        name: name.into(),
                        head: head(key, value, name).into(),
                        counters: Counters::default(),
                    })
                    .collect();
                let mut tail = b"\",\"metadata\":".to_vec();
                let metadata = info.map(|flag| &flag.metadata);
                // Writing JSON into a Vec fails only for maps with non-string keys.
                let written = match metadata {
                    Some(map) => serde_json::to_writer(&mut tail, map),
                    None => serde_json::to_writer(&mut tail, &serde_json::Map::new()),
                };
                debug_assert!(written.is_ok());
                tail.push(b'}');
                FlagAnswers {
                    key: key.into(),
                    variants,
                    tail: tail.into(),
                    no_variant: Counters::default(),
                }
            })
            .collect();
        let positions = flags
            .iter()
            .enumerate()
            .map(|(position, flag)| (flag.key.clone(), position))
            .collect();
        let bulk_size = flags
            .iter()
            .map(|flag| {
                let head = flag.variants.iter().map(|v| v.head.len()).max();
                head.unwrap_or(64) + "TARGETING_MATCH".len() + flag.tail.len() + 1
            })
            .sum::<usize>()
            + 256;
        Answers {
            flags,
            positions,
            bulk_size,
        }
    }

    /// Roughly how many bytes a bulk answer takes.
    pub fn bulk_size_hint(&self) -> usize {
        self.bulk_size
    }

    /// The position of `key` in the engine's flag order.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.positions.get(key).copied()
    }

    /// Counts the evaluation of the flag at `position` and appends its OFREP answer to `out`.
    /// `position` is `None` for a key that names no flag.
    pub fn answer(
        &self,
        position: Option<usize>,
        key: &str,
        evaluation: &Evaluation<'_>,
        out: &mut Vec<u8>,
    ) {
        let Some(flag) = position.and_then(|p| self.flags.get(p)) else {
            crate::metrics::count_unknown_flag();
            return serialize(key, evaluation, out);
        };
        let variant = evaluation.variant.and_then(|name| flag.variant(name));
        match variant {
            Some(variant) => variant
                .counters
                .count(key, &variant.name, evaluation.reason),
            None => flag.no_variant.count(key, "", evaluation.reason),
        }
        match variant {
            Some(variant) if evaluation.error.is_none() => {
                out.extend_from_slice(&variant.head);
                out.extend_from_slice(evaluation.reason.as_str().as_bytes());
                out.extend_from_slice(&flag.tail);
            }
            _ => serialize(key, evaluation, out),
        }
    }
}

/// `{"key":K,"value":V,"variant":X,"reason":"`, as serde writes it.
fn head(key: &str, value: &Value, variant: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Head<'a> {
        key: &'a str,
        value: &'a Value,
        variant: &'a str,
        reason: &'static str,
    }
    let mut bytes = Vec::new();
    let written = serde_json::to_writer(
        &mut bytes,
        &Head {
            key,
            value,
            variant,
            reason: "",
        },
    );
    debug_assert!(written.is_ok());
    // Drop the closing `"}` of the empty reason, leaving its opening quote.
    bytes.truncate(bytes.len().saturating_sub(2));
    bytes
}

/// The general path: serde writes the answer.
fn serialize(key: &str, evaluation: &Evaluation<'_>, out: &mut Vec<u8>) {
    if let Err(error) = serde_json::to_writer(&mut *out, &evaluation_answer(key, evaluation)) {
        // Values are JSON already, so this cannot happen; keep the document valid anyway.
        tracing::error!(%error, key, "cannot serialize an OFREP answer");
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::{Context, Format, Source};

    use super::*;

    fn engine() -> Engine {
        let text = r#"
flags:
  plain:
    type: string
    variants: { a: "x\"y", b: "é" }
    default_variant: a
    metadata: { team: "payments", tier: 2 }
  split:
    type: object
    variants: { on: { "n": 1.5, "s": "\u2028" }, off: {} }
    default_variant: off
    rules:
      - split: [{ variant: on, weight: 50000 }, { variant: off, weight: 50000 }]
  killed:
    type: boolean
    enabled: false
    variants: { on: true, off: false }
    default_variant: on
    off_variant: off
"#;
        Source::parse(None, text, Format::Yaml)
            .unwrap()
            .compile(None)
            .unwrap()
    }

    #[test]
    fn prepared_answers_are_byte_for_byte_what_serde_writes() {
        let engine = engine();
        let answers = Answers::new(&engine);
        for user in ["u1", "u2", "u3", "u4"] {
            let context = Context::with_key(user);
            for (key, evaluation) in engine.evaluate_all(&context) {
                let mut fast = Vec::new();
                answers.answer(answers.position(key), key, &evaluation, &mut fast);
                let mut slow = Vec::new();
                serialize(key, &evaluation, &mut slow);
                assert_eq!(
                    String::from_utf8(fast).unwrap(),
                    String::from_utf8(slow).unwrap()
                );
            }
        }
    }

    #[test]
    fn unknown_flags_and_errors_take_the_general_path() {
        let engine = engine();
        let answers = Answers::new(&engine);
        let evaluation = engine.evaluate("missing", &Context::new());
        let mut out = Vec::new();
        answers.answer(
            answers.position("missing"),
            "missing",
            &evaluation,
            &mut out,
        );
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["errorCode"], "FLAG_NOT_FOUND");

        // A split without a targeting key is an error, even though the flag exists.
        let evaluation = engine.evaluate("split", &Context::new());
        let mut out = Vec::new();
        answers.answer(answers.position("split"), "split", &evaluation, &mut out);
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["errorCode"], "TARGETING_KEY_MISSING", "{value}");
    }
}
