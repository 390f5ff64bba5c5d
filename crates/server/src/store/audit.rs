//! The hash-chained audit log: record types, the canonical encoding, and chain verification.
//!
//! Each record stores `hash = hex(sha256(prev_hash ‖ canonical))`, where `prev_hash` is the
//! previous record's `hash` as 64 lowercase hex ASCII bytes ([`GENESIS_HASH`] for the first
//! record) and `canonical` is [`canonical_bytes`]: compact `serde_json` of an object with
//! exactly these keys, in this (sorted) order:
//!
//! ```text
//! {"action":…,"actor":…,"after":…,"before":…,"config_version":…,"reason":…,
//!  "request_id":…,"resource":…,"time_ms":…}
//! ```
//!
//! `before` and `after` are the stored JSON *texts*, embedded as JSON strings (or `null`), so
//! the encoding never depends on how a JSON library orders or formats keys. Strings are
//! escaped as `serde_json` does (only `"`, `\` and control characters; no other escaping).
//!
//! A record's position (`seq`) is not hashed: it is protected by the link instead, since
//! moving, removing or inserting a record breaks the `prev_hash` of the next one. The `meta`
//! row keeps the chain head (last `seq` and `hash`), so a deleted last record is caught too.
//! The chain proves the log was not altered by someone without write access to `meta`;
//! anyone who can rewrite every row can rebuild a consistent chain, so export the head
//! (`ChainReport::head_hash`) elsewhere when that matters.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record, as stored. `before` and `after` are JSON texts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain: 1, 2, 3, … with no gaps.
    pub seq: i64,
    /// The configuration version the mutation produced.
    pub config_version: i64,
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// The acting token's id; `None` for the server itself.
    pub actor: Option<String>,
    /// What happened, such as `flag.create` or `flag.kill`.
    pub action: String,
    /// What it happened to, such as `flag:checkout`.
    pub resource: String,
    /// The resource before, as JSON text; `None` when it was created.
    pub before: Option<String>,
    /// The resource after, as JSON text; `None` when it was deleted.
    pub after: Option<String>,
    /// Why, in the actor's words.
    pub reason: Option<String>,
    /// The HTTP request id.
    pub request_id: Option<String>,
    /// The previous record's hash.
    pub prev_hash: String,
    /// `hex(sha256(prev_hash ‖ canonical))`.
    pub hash: String,
}

/// The hashed fields, in sorted key order. Field order here *is* the canonical order.
#[derive(Serialize)]
struct Canonical<'a> {
    action: &'a str,
    actor: Option<&'a str>,
    after: Option<&'a str>,
    before: Option<&'a str>,
    config_version: i64,
    reason: Option<&'a str>,
    request_id: Option<&'a str>,
    resource: &'a str,
    time_ms: i64,
}

/// The bytes of a record that its hash covers, besides `prev_hash`.
pub fn canonical_bytes(record: &AuditRecord) -> Vec<u8> {
    let canonical = Canonical {
        action: &record.action,
        actor: record.actor.as_deref(),
        after: record.after.as_deref(),
        before: record.before.as_deref(),
        config_version: record.config_version,
        reason: record.reason.as_deref(),
        request_id: record.request_id.as_deref(),
        resource: &record.resource,
        time_ms: record.time_ms,
    };
    // Serializing a struct of strings and integers cannot fail; fall back to an empty
    // encoding rather than panic, which would then fail verification visibly.
    serde_json::to_vec(&canonical).unwrap_or_default()
}

/// `hex(sha256(prev_hash ‖ canonical_bytes(record)))`, using `record.prev_hash`.
pub fn record_hash(record: &AuditRecord) -> String {
    let mut hasher = Sha256::new();
    hasher.update(record.prev_hash.as_bytes());
    hasher.update(canonical_bytes(record));
    hex::encode(hasher.finalize())
}

/// Which audit records to list. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Exactly this resource, such as `flag:checkout`.
    pub resource: Option<String>,
    /// Exactly this action, such as `flag.kill`.
    pub action: Option<String>,
    /// Exactly this actor token id.
    pub actor: Option<String>,
    /// Records at or after this time (ms).
    pub since_ms: Option<i64>,
    /// Records strictly before this time (ms).
    pub until_ms: Option<i64>,
    /// Records with a smaller `seq`, for paging backwards from the last page's smallest.
    pub before_seq: Option<i64>,
    /// At most this many records; 100 when `None`, never more than [`MAX_AUDIT_PAGE`].
    pub limit: Option<u32>,
}

/// The largest page [`crate::store::Store::list_audit`] returns.
pub const MAX_AUDIT_PAGE: u32 = 1000;

/// How a link of the chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The record's content no longer matches its hash: it was edited.
    Edited,
    /// The record with this `seq` is missing: it was deleted (or renumbered).
    Missing,
    /// The record is intact but does not follow its predecessor: records were reordered,
    /// or the predecessor was replaced and rehashed.
    Reordered,
}

/// The first broken link of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    /// The `seq` at which the chain breaks.
    pub seq: i64,
    /// How.
    pub kind: BreakKind,
    /// A sentence for people.
    pub message: String,
}

/// The result of verifying the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// How many records were checked.
    pub records: i64,
    /// The chain head recorded in `meta`: the last `seq` …
    pub head_seq: i64,
    /// … and its hash ([`GENESIS_HASH`] for an empty log).
    pub head_hash: String,
    /// The first broken link, or `None` when the whole chain verifies.
    pub first_break: Option<ChainBreak>,
}

impl ChainReport {
    /// Whether the whole chain verifies.
    pub fn is_valid(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Checks records one at a time, in `seq` order, remembering only the previous link.
#[derive(Debug)]
pub(crate) struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    records: i64,
}

impl Verifier {
    pub(crate) fn new() -> Verifier {
        Verifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            records: 0,
        }
    }

    /// Checks the next record; returns the break it shows, if any.
    pub(crate) fn push(&mut self, record: &AuditRecord) -> Option<ChainBreak> {
        self.records += 1;
        if record.seq != self.expected_seq {
            return Some(ChainBreak {
                seq: self.expected_seq,
                kind: BreakKind::Missing,
                message: format!(
                    "record {} is missing: the next record is {}",
                    self.expected_seq, record.seq
                ),
            });
        }
        if record_hash(record) != record.hash {
            return Some(ChainBreak {
                seq: record.seq,
                kind: BreakKind::Edited,
                message: format!(
                    "record {} does not match its hash: it was edited",
                    record.seq
                ),
            });
        }
        if record.prev_hash != self.prev_hash {
            return Some(ChainBreak {
                seq: record.seq,
                kind: BreakKind::Reordered,
                message: format!(
                    "record {} does not follow record {}: records were reordered or replaced",
                    record.seq,
                    record.seq - 1
                ),
            });
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&record.hash);
        None
    }

    /// Checks the end of the chain against the head kept in `meta`.
    pub(crate) fn finish(self, head_seq: i64, head_hash: &str) -> ChainReport {
        let last_seq = self.expected_seq - 1;
        let first_break = if head_seq > last_seq {
            Some(ChainBreak {
                seq: last_seq + 1,
                kind: BreakKind::Missing,
                message: format!(
                    "records {} to {head_seq} are missing from the end of the log",
                    last_seq + 1
                ),
            })
        } else if head_seq < last_seq {
            Some(ChainBreak {
                seq: head_seq + 1,
                kind: BreakKind::Edited,
                message: format!(
                    "record {} is past the recorded head {head_seq}: it was added outside the store",
                    head_seq + 1
                ),
            })
        } else if head_hash != self.prev_hash {
            Some(ChainBreak {
                seq: last_seq,
                kind: BreakKind::Edited,
                message: format!(
                    "record {last_seq} does not match the recorded chain head: it was replaced"
                ),
            })
        } else {
            None
        };
        self.report(head_seq, head_hash, first_break)
    }

    pub(crate) fn report(
        self,
        head_seq: i64,
        head_hash: &str,
        first_break: Option<ChainBreak>,
    ) -> ChainReport {
        ChainReport {
            records: self.records,
            head_seq,
            head_hash: head_hash.to_owned(),
            first_break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: i64, prev_hash: &str, reason: &str) -> AuditRecord {
        let mut record = AuditRecord {
            seq,
            config_version: seq,
            time_ms: 1_700_000_000_000 + seq,
            actor: Some("tok_0123456789abcdef".into()),
            action: "flag.update".into(),
            resource: "flag:checkout".into(),
            before: Some(r#"{"b":1,"a":2}"#.into()),
            after: None,
            reason: Some(reason.into()),
            request_id: None,
            prev_hash: prev_hash.into(),
            hash: String::new(),
        };
        record.hash = record_hash(&record);
        record
    }

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut records: Vec<AuditRecord> = Vec::new();
        for seq in 1..=n {
            let prev = records
                .last()
                .map_or(GENESIS_HASH.to_owned(), |r| r.hash.clone());
            records.push(record(seq, &prev, "why"));
        }
        records
    }

    fn verify(records: &[AuditRecord], head_seq: i64, head_hash: &str) -> ChainReport {
        let mut verifier = Verifier::new();
        for record in records {
            if let Some(broken) = verifier.push(record) {
                return verifier.report(head_seq, head_hash, Some(broken));
            }
        }
        verifier.finish(head_seq, head_hash)
    }

    #[test]
    fn canonical_encoding_is_fixed() {
        let record = record(1, GENESIS_HASH, "a \"quoted\" reason");
        let text = String::from_utf8(canonical_bytes(&record)).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"action":"flag.update","actor":"tok_0123456789abcdef","after":null,"before":"{\"b\":1,\"a\":2}","config_version":1,"reason":"a \"quoted\" reason","request_id":null,"resource":"flag:checkout","time_ms":1700000000001}"#
        );
        assert_eq!(record.hash.len(), 64);
    }

    #[test]
    fn detects_each_kind_of_tampering() {
        let records = chain(4);
        let head = records[3].hash.clone();
        assert!(verify(&records, 4, &head).is_valid());
        assert!(verify(&[], 0, GENESIS_HASH).is_valid());

        let mut edited = records.clone();
        edited[1].reason = Some("nothing to see".into());
        let broken = verify(&edited, 4, &head).first_break;
        assert_eq!(
            broken.map(|b| (b.seq, b.kind)),
            Some((2, BreakKind::Edited))
        );

        let mut deleted = records.clone();
        deleted.remove(1);
        let broken = verify(&deleted, 4, &head).first_break;
        assert_eq!(
            broken.map(|b| (b.seq, b.kind)),
            Some((2, BreakKind::Missing))
        );

        let truncated = &records[..3];
        let broken = verify(truncated, 4, &head).first_break;
        assert_eq!(
            broken.map(|b| (b.seq, b.kind)),
            Some((4, BreakKind::Missing))
        );

        let mut swapped = records.clone();
        swapped.swap(1, 2);
        swapped[1].seq = 2;
        swapped[2].seq = 3;
        let broken = verify(&swapped, 4, &head).first_break;
        assert_eq!(
            broken.map(|b| (b.seq, b.kind)),
            Some((2, BreakKind::Reordered))
        );

        let mut rehashed = records.clone();
        rehashed[3].reason = Some("rewritten".into());
        rehashed[3].hash = record_hash(&rehashed[3]);
        let broken = verify(&rehashed, 4, &head).first_break;
        assert_eq!(
            broken.map(|b| (b.seq, b.kind)),
            Some((4, BreakKind::Edited))
        );
    }
}
