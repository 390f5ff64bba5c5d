//! Exposure and error counters for one snapshot: a pre-allocated table of atomics.
//!
//! Every snapshot (one compiled configuration, one version) gets a [`Counters`] table with
//! one slot per (flag, variant) and, per slot, an exposure counter and an error counter.
//! Counting an exposure is then one `fetch_add` on a slot found without hashing the flag key
//! again: core's evaluation returns the flag's [`FlagInfo`] and the variant's name by
//! reference into the engine, so the table indexes flags by the *address* of their
//! `FlagInfo` (an open-addressing table keyed by a multiplicative hash of the address) and
//! finds the variant by comparing the name's address with the flag's few variant names.
//! Only a variant forced by an environment override, whose name lives elsewhere, falls back
//! to comparing text. Addresses are only compared, never dereferenced, so nothing here needs
//! `unsafe`, and the table owns copies of every name it reports.
//!
//! Threads that count at the same time would fight over the cache lines of a single array,
//! so the table keeps several shards, each its own allocation, and every thread counts in
//! the shard [`active::record`] assigned to it. Draining sums the shards and swaps them to
//! zero; a count that lands during a drain goes to the next one, never lost or counted twice.

use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_core::{Engine, Evaluation, FlagInfo};

use crate::telemetry::active::{self, Entry};

/// A multiplier for Fibonacci hashing of addresses.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// One flag in the table.
#[derive(Debug)]
struct FlagSlots {
    key: Arc<str>,
    /// The flag's first slot; its variants follow in definition order.
    first: u32,
    /// Each variant name's address and length, in definition order.
    names: Box<[(usize, usize)]>,
}

/// One slot: the flag position and the variant it counts.
#[derive(Debug)]
struct Slot {
    flag: u32,
    variant: Arc<str>,
}

/// One shard's counters, indexed by slot.
#[derive(Debug)]
struct Shard {
    exposures: Box<[AtomicU64]>,
    errors: Box<[AtomicU64]>,
}

impl Shard {
    fn new(slots: usize) -> Shard {
        Shard {
            exposures: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            errors: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// `FlagInfo` addresses to flag positions.
#[derive(Debug)]
struct AddressIndex {
    /// (address, position); address 0 marks an empty slot. A power of two, at most half full.
    slots: Box<[(usize, u32)]>,
    shift: u32,
}

impl AddressIndex {
    fn new(addresses: &[usize]) -> AddressIndex {
        let size = (addresses.len() * 2).next_power_of_two().max(2);
        let mut index = AddressIndex {
            slots: vec![(0, 0); size].into(),
            shift: 64 - size.trailing_zeros(),
        };
        let mask = size - 1;
        for (position, &address) in addresses.iter().enumerate() {
            let Ok(position) = u32::try_from(position) else {
                break;
            };
            let mut slot = index.start(address);
            while let Some(entry) = index.slots.get_mut(slot) {
                if entry.0 == 0 || entry.0 == address {
                    *entry = (address, position);
                    break;
                }
                slot = (slot + 1) & mask;
            }
        }
        index
    }

    #[inline]
    fn start(&self, address: usize) -> usize {
        ((address as u64).wrapping_mul(GOLDEN) >> self.shift) as usize
    }

    #[inline]
    fn get(&self, address: usize) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut slot = self.start(address);
        loop {
            let &(found, position) = self.slots.get(slot)?;
            if found == address {
                return Some(position);
            }
            if found == 0 {
                return None;
            }
            slot = (slot + 1) & mask;
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
    index: AddressIndex,
    flags: Box<[FlagSlots]>,
    slots: Box<[Slot]>,
    shards: Box<[Shard]>,
    shard_mask: usize,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("flags", &self.flags.len())
            .field("slots", &self.slots.len())
            .field("shards", &self.shards.len())
            .finish()
    }
}

impl Counters {
    /// A table for every flag and variant of `engine`, served as `version`, with `shards`
    /// shards (rounded up to a power of two).
    pub(crate) fn new(id: u64, engine: &Engine, version: i64, shards: usize) -> Counters {
        let mut addresses = Vec::with_capacity(engine.len());
        let mut flags = Vec::with_capacity(engine.len());
        let mut slots = Vec::new();
        for key in engine.keys() {
            let (Some(info), Some(variants)) = (engine.info(key), engine.variants(key)) else {
                continue;
            };
            let (Ok(flag), Ok(first)) = (u32::try_from(flags.len()), u32::try_from(slots.len()))
            else {
                break;
            };
            let mut names = Vec::new();
            for (name, _) in variants {
                names.push((name.as_ptr().addr(), name.len()));
                slots.push(Slot {
                    flag,
                    variant: Arc::from(name),
                });
            }
            addresses.push(ptr::from_ref::<FlagInfo>(info).addr());
            flags.push(FlagSlots {
                key: Arc::from(key),
                first,
                names: names.into(),
            });
        }
        let shards = shards.max(1).next_power_of_two();
        Counters {
            id,
            version,
            index: AddressIndex::new(&addresses),
            flags: flags.into(),
            shards: (0..shards).map(|_| Shard::new(slots.len())).collect(),
            slots: slots.into(),
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
        let info = evaluation.flag?;
        let variant = evaluation.variant?;
        let flag = self.index.get(ptr::from_ref::<FlagInfo>(info).addr())?;
        let slots = self.flags.get(flag as usize)?;
        let address = (variant.as_ptr().addr(), variant.len());
        let position = match slots.names.iter().position(|&name| name == address) {
            Some(position) => position,
            // A variant forced by an environment override: its name is not the engine's.
            None => self.variant_by_name(slots, variant)?,
        };
        Some((flag, slots.first + u32::try_from(position).ok()?))
    }

    #[cold]
    fn variant_by_name(&self, slots: &FlagSlots, variant: &str) -> Option<usize> {
        let first = slots.first as usize;
        let names = self.slots.get(first..first + slots.names.len())?;
        names.iter().position(|slot| &*slot.variant == variant)
    }

    /// The flag position of the flag `info` describes, for an evaluation of this snapshot.
    #[inline]
    pub(crate) fn flag_of(&self, info: &FlagInfo) -> Option<u32> {
        self.index.get(ptr::from_ref::<FlagInfo>(info).addr())
    }

    /// Counts an exposure of `slot`, and makes it this thread's active variant of `flag`.
    #[inline]
    pub(crate) fn expose(&self, flag: u32, slot: u32) {
        let shard = active::record(Entry {
            table: self.id,
            flag,
            slot,
        });
        if let Some(counter) = self
            .shards
            .get(shard & self.shard_mask)
            .and_then(|shard| shard.exposures.get(slot as usize))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an error against `slot`.
    pub(crate) fn error(&self, slot: u32) {
        if let Some(counter) = self
            .shards
            .get(active::shard() & self.shard_mask)
            .and_then(|shard| shard.errors.get(slot as usize))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes every non-zero count since the last drain.
    pub(crate) fn drain(&self) -> Vec<Drained> {
        let mut drained = Vec::new();
        for (slot, index) in (0..self.slots.len()).zip(0_u32..) {
            let take = |counters: &Shard, errors: bool| {
                let array = if errors {
                    &counters.errors
                } else {
                    &counters.exposures
                };
                array
                    .get(slot)
                    .map_or(0, |counter| counter.swap(0, Ordering::Relaxed))
            };
            let exposures: u64 = self.shards.iter().map(|shard| take(shard, false)).sum();
            let errors: u64 = self.shards.iter().map(|shard| take(shard, true)).sum();
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
