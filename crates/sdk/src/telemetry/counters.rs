//! Exposure and error counters for one snapshot: a pre-allocated table of atomics.
//!
//! Every snapshot (one compiled configuration, one version) gets a [`Counters`] table with
//! one slot per (flag, variant) and, per slot, an exposure counter and an error counter.
//! Counting an exposure is then one `fetch_add` on a slot found without hashing the flag key
//! again: core's evaluation returns the flag's [`FlagInfo`] and the variant's name by
//! reference into the engine, so the table is keyed by the *addresses* of the two (an
//! open-addressing table under a multiplicative hash of both). Only a variant forced by an
//! environment override, whose name lives elsewhere, falls back to finding the flag by its
//! `FlagInfo` address alone and comparing names. Addresses are only compared, never
//! dereferenced, so nothing here needs `unsafe`, and the table owns copies of every name it
//! reports.
//!
//! Threads that count at the same time would fight over the cache lines of a single array,
//! so the counters are laid out in several shards, each starting on its own cache lines, and
//! every thread counts in the shard [`active::record`] assigned to it. Draining sums the
//! shards and swaps them to zero; a count that lands during a drain goes to the next one,
//! never lost or counted twice.

use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_core::{Engine, Evaluation, FlagInfo};

use crate::telemetry::active::{self, Entry};

/// A multiplier for Fibonacci hashing of addresses.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Counters per cache line.
const LINE: usize = 8;

/// One flag in the table.
#[derive(Debug)]
struct FlagSlots {
    key: Arc<str>,
    /// The flag's first slot; its variants follow in definition order.
    first: u32,
    /// How many variants it has.
    variants: u32,
}

/// One slot: the flag position and the variant it counts.
#[derive(Debug)]
struct Slot {
    flag: u32,
    variant: Arc<str>,
}

/// What an entry of an [`Index`] finds.
#[derive(Debug, Clone, Copy, Default)]
struct Found {
    /// The `FlagInfo` address; 0 marks an empty entry.
    info: usize,
    /// The variant name's address, or 0 in the index of flags.
    variant: usize,
    flag: u32,
    slot: u32,
}

/// Addresses to flags and slots: open addressing, a power of two of entries, at most half
/// full.
#[derive(Debug)]
struct Index {
    entries: Box<[Found]>,
    shift: u32,
}

impl Index {
    fn new(found: &[Found]) -> Index {
        let size = (found.len() * 2).next_power_of_two().max(2);
        let mut index = Index {
            entries: vec![Found::default(); size].into(),
            shift: 64 - size.trailing_zeros(),
        };
        let mask = size - 1;
        for item in found {
            let mut at = index.start(item.info, item.variant);
            while let Some(entry) = index.entries.get_mut(at) {
                if entry.info == 0 || (entry.info == item.info && entry.variant == item.variant) {
                    *entry = *item;
                    break;
                }
                at = (at + 1) & mask;
            }
        }
        index
    }

    #[inline]
    fn start(&self, info: usize, variant: usize) -> usize {
        let key = (info as u64) ^ (variant as u64).rotate_left(29);
        (key.wrapping_mul(GOLDEN) >> self.shift) as usize
    }

    #[inline]
    fn get(&self, info: usize, variant: usize) -> Option<&Found> {
        let mask = self.entries.len() - 1;
        let mut at = self.start(info, variant);
        loop {
            let entry = self.entries.get(at)?;
            if entry.info == info && entry.variant == variant {
                return Some(entry);
            }
            if entry.info == 0 {
                return None;
            }
            at = (at + 1) & mask;
        }
    }
}

/// What one slot counted since the last drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drained {
    pub(crate) slot: u32,
    pub(crate) exposures: u64,
    pub(crate) errors: u64,
}

/// The exposure and error counters of one snapshot.
pub(crate) struct Counters {
    /// Unique in the process, so a thread's active variants name their table unambiguously
    /// across clients and versions.
    id: u64,
    version: i64,
    /// (`FlagInfo` address, variant name address) to slot.
    variants: Index,
    /// `FlagInfo` address to flag position.
    flags_by_info: Index,
    flags: Box<[FlagSlots]>,
    slots: Box<[Slot]>,
    /// Per shard, `stride` counters: the exposures of every slot, then their errors, then
    /// padding to a cache line and one more, so shards never share a line.
    counts: Box<[AtomicU64]>,
    stride: usize,
    shard_mask: usize,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("flags", &self.flags.len())
            .field("slots", &self.slots.len())
            .field("shards", &(self.shard_mask + 1))
            .finish()
    }
}

impl Counters {
    /// A table for every flag and variant of `engine`, served as `version`, with `shards`
    /// shards (rounded up to a power of two).
    pub(crate) fn new(id: u64, engine: &Engine, version: i64, shards: usize) -> Counters {
        let mut flags = Vec::with_capacity(engine.len());
        let mut slots = Vec::new();
        let mut by_variant = Vec::new();
        let mut by_info = Vec::with_capacity(engine.len());
        for key in engine.keys() {
            let (Some(info), Some(variants)) = (engine.info(key), engine.variants(key)) else {
                continue;
            };
            let (Ok(flag), Ok(first)) = (u32::try_from(flags.len()), u32::try_from(slots.len()))
            else {
                break;
            };
            let info = ptr::from_ref::<FlagInfo>(info).addr();
            for (name, _) in variants {
                let Ok(slot) = u32::try_from(slots.len()) else {
                    break;
                };
                by_variant.push(Found {
                    info,
                    variant: name.as_ptr().addr(),
                    flag,
                    slot,
                });
                slots.push(Slot {
                    flag,
                    variant: Arc::from(name),
                });
            }
            by_info.push(Found {
                info,
                variant: 0,
                flag,
                slot: first,
            });
            flags.push(FlagSlots {
                key: Arc::from(key),
                first,
                variants: u32::try_from(slots.len()).unwrap_or(u32::MAX) - first,
            });
        }
        let shards = shards.max(1).next_power_of_two();
        let stride = (slots.len() * 2).div_ceil(LINE) * LINE + LINE;
        Counters {
            id,
            version,
            variants: Index::new(&by_variant),
            flags_by_info: Index::new(&by_info),
            flags: flags.into(),
            slots: slots.into(),
            counts: (0..shards * stride).map(|_| AtomicU64::new(0)).collect(),
            stride,
            shard_mask: shards - 1,
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn version(&self) -> i64 {
        self.version
    }

    /// The flag position and slot of what `evaluation` served, if it served a variant of a
    /// flag in this table.
    #[inline]
    pub(crate) fn locate(&self, evaluation: &Evaluation<'_>) -> Option<(u32, u32)> {
        let info = ptr::from_ref::<FlagInfo>(evaluation.flag?).addr();
        let variant = evaluation.variant?;
        match self.variants.get(info, variant.as_ptr().addr()) {
            Some(found) => Some((found.flag, found.slot)),
            // A variant forced by an environment override: its name is not the engine's.
            None => self.locate_by_name(info, variant),
        }
    }

    #[cold]
    fn locate_by_name(&self, info: usize, variant: &str) -> Option<(u32, u32)> {
        let flag = self.flags_by_info.get(info, 0)?.flag;
        let slots = self.flags.get(flag as usize)?;
        let first = slots.first as usize;
        let names = self.slots.get(first..first + slots.variants as usize)?;
        let position = names.iter().position(|slot| &*slot.variant == variant)?;
        Some((flag, slots.first + u32::try_from(position).ok()?))
    }

    /// The flag position of the flag `info` describes, for an evaluation of this snapshot.
    pub(crate) fn flag_of(&self, info: &FlagInfo) -> Option<u32> {
        let info = ptr::from_ref::<FlagInfo>(info).addr();
        Some(self.flags_by_info.get(info, 0)?.flag)
    }

    /// Counts an exposure of `slot`, and makes it this thread's active variant of `flag`.
    #[inline]
    pub(crate) fn expose(&self, flag: u32, slot: u32) {
        let shard = active::record(Entry {
            table: self.id,
            flag,
            slot,
        });
        let at = (shard & self.shard_mask) * self.stride + slot as usize;
        if let Some(counter) = self.counts.get(at) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an error against `slot`.
    pub(crate) fn error(&self, slot: u32) {
        let shard = active::shard() & self.shard_mask;
        let at = shard * self.stride + self.slots.len() + slot as usize;
        if (slot as usize) < self.slots.len()
            && let Some(counter) = self.counts.get(at)
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes every non-zero count since the last drain.
    pub(crate) fn drain(&self) -> Vec<Drained> {
        let slots = self.slots.len();
        let take = |at: usize| {
            self.counts
                .get(at)
                .map_or(0, |counter| counter.swap(0, Ordering::Relaxed))
        };
        let mut drained = Vec::new();
        for (slot, index) in (0..slots).zip(0_u32..) {
            let (mut exposures, mut errors) = (0, 0);
            for shard in 0..=self.shard_mask {
                let base = shard * self.stride;
                exposures += take(base + slot);
                errors += take(base + slots + slot);
            }
            if exposures > 0 || errors > 0 {
                drained.push(Drained {
                    slot: index,
                    exposures,
                    errors,
                });
            }
        }
        drained
    }

    /// The flag key and variant name a slot counts.
    pub(crate) fn names(&self, slot: u32) -> Option<(&Arc<str>, &Arc<str>)> {
        let slot = self.slots.get(slot as usize)?;
        let flag = self.flags.get(slot.flag as usize)?;
        Some((&flag.key, &slot.variant))
    }

    /// Whether `flag` is the flag at position `position`.
    pub(crate) fn is_flag(&self, position: u32, flag: &str) -> bool {
        self.flags
            .get(position as usize)
            .is_some_and(|slots| &*slots.key == flag)
    }

    /// How many slots the table has.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{Context, Format, Source};

    fn engine() -> Engine {
        let text = r#"{"flags": {
            "a": {"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "on"},
            "b": {"type": "string", "variants": {"x": "x", "y": "y", "z": "z"}, "default_variant": "y"},
            "c": {"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off",
                  "rules": [{"split": [{"variant": "on", "weight": 50000}, {"variant": "off", "weight": 50000}]}]}
        }}"#;
        Source::parse(Some("t.json"), text, Format::Json)
            .and_then(|source| source.compile(None))
            .unwrap()
    }

    #[test]
    fn every_variant_of_every_flag_has_its_own_slot() {
        let engine = engine();
        let counters = Counters::new(1, &engine, 7, 4);
        assert_eq!(counters.len(), 7);
        assert_eq!(counters.version(), 7);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            for flag in ["a", "b", "c"] {
                let context = Context::with_key(format!("user-{i}").as_str());
                let evaluation = engine.evaluate(flag, &context);
                let (position, slot) = counters.locate(&evaluation).unwrap();
                assert!(counters.is_flag(position, flag));
                let (key, variant) = counters.names(slot).unwrap();
                assert_eq!(&**key, flag);
                assert_eq!(Some(&**variant), evaluation.variant);
                seen.insert(slot);
            }
        }
        // a:on, b:y, c:on and c:off.
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn a_name_from_elsewhere_is_found_by_text_and_unknown_flags_by_nothing() {
        let engine = engine();
        let counters = Counters::new(1, &engine, 1, 1);
        let mut evaluation = engine.evaluate("b", &Context::default());
        let forced = String::from("z");
        evaluation.variant = Some(&forced);
        let (_, slot) = counters.locate(&evaluation).unwrap();
        assert_eq!(&**counters.names(slot).unwrap().1, "z");
        evaluation.variant = Some("nope");
        assert_eq!(counters.locate(&evaluation), None);

        let missing = engine.evaluate("missing", &Context::default());
        assert_eq!(counters.locate(&missing), None);
        // Another engine's flag is not this table's, even with the same key.
        let other = self::engine();
        let foreign = other.evaluate("a", &Context::default());
        assert_eq!(counters.locate(&foreign), None);
    }

    #[test]
    fn drains_sum_the_shards_and_start_again_from_zero() {
        let engine = engine();
        let counters = Arc::new(Counters::new(1, &engine, 1, 4));
        let evaluation = engine.evaluate("a", &Context::default());
        let (flag, slot) = counters.locate(&evaluation).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counters = Arc::clone(&counters);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        counters.expose(flag, slot);
                    }
                    counters.error(slot);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(
            counters.drain(),
            [Drained {
                slot,
                exposures: 40_000,
                errors: 4
            }]
        );
        assert!(counters.drain().is_empty());
    }
}
