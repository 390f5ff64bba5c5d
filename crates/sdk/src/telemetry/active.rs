//! The variants active on this thread: which variant it was last served for each flag.
//!
//! Each exposure writes one small entry into a thread-local table of [`CAPACITY`] entries,
//! placed by the flag's position in its snapshot, so a thread remembers about its last 64
//! flags (two flags that share a place evict each other). An entry names its counter table
//! by a process-wide id rather than holding it, so recording costs one store and keeps
//! nothing alive. [`Client::record_error`](crate::Client::record_error), `time`,
//! `latency_guard`, `track` and the crash hook read it to attribute what happens next to the
//! variant this thread was served.
//!
//! The table also hands each thread its counter shard, assigned in turn on first use.
//!
//! Async tasks move between threads at every `.await`, so what a thread last evaluated may
//! belong to another task there; the `*_for` methods, which evaluate for a context instead,
//! are the ones to use across `.await`.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many flags a thread remembers.
pub(crate) const CAPACITY: usize = 64;

/// One remembered exposure: the table, the flag's position in it, and the slot served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The counter table's id; 0 for none (ids start at 1).
    pub(crate) table: u64,
    pub(crate) flag: u32,
    pub(crate) slot: u32,
}

const EMPTY: Entry = Entry {
    table: 0,
    flag: 0,
    slot: 0,
};

/// No shard assigned yet.
const UNASSIGNED: usize = usize::MAX;

struct Active {
    entries: [Cell<Entry>; CAPACITY],
    shard: Cell<usize>,
}

thread_local! {
    static ACTIVE: Active = const {
        Active {
            entries: [const { Cell::new(EMPTY) }; CAPACITY],
            shard: Cell::new(UNASSIGNED),
        }
    };
}

/// Hands out shards to threads in turn.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

impl Active {
    #[inline]
    fn shard(&self) -> usize {
        let shard = self.shard.get();
        if shard != UNASSIGNED {
            return shard;
        }
        let assigned = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % (UNASSIGNED - 1);
        self.shard.set(assigned);
        assigned
    }
}

/// Remembers `entry` as this thread's active variant of its flag; returns the thread's shard.
#[inline]
pub(crate) fn record(entry: Entry) -> usize {
    ACTIVE.with(|active| {
        if let Some(cell) = active.entries.get(entry.flag as usize % CAPACITY) {
            cell.set(entry);
        }
        active.shard()
    })
}

/// This thread's counter shard.
#[inline]
pub(crate) fn shard() -> usize {
    ACTIVE.with(Active::shard)
}

/// The entry remembered where the flag at `flag` would be.
pub(crate) fn get(flag: u32) -> Option<Entry> {
    ACTIVE.with(|active| {
        active
            .entries
            .get(flag as usize % CAPACITY)
            .map(Cell::get)
            .filter(|entry| entry.table != 0)
    })
}

/// Every entry this thread remembers.
pub(crate) fn all() -> Vec<Entry> {
    ACTIVE.with(|active| {
        active
            .entries
            .iter()
            .map(Cell::get)
            .filter(|entry| entry.table != 0)
            .collect()
    })
}

/// Forgets every variant this thread was served.
pub(crate) fn clear() {
    ACTIVE.with(|active| {
        for cell in &active.entries {
            cell.set(EMPTY);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_per_thread_bounded_and_clearable() {
        clear();
        let entry = Entry {
            table: 9,
            flag: 3,
            slot: 7,
        };
        let shard = record(entry);
        assert_eq!(shard, super::shard());
        assert_eq!(get(3), Some(entry));
        assert_eq!(get(4), None);
        // Another thread sees nothing of this one's.
        std::thread::spawn(|| assert!(all().is_empty()))
            .join()
            .unwrap();
        // A flag 64 positions on takes the same place.
        let later = Entry {
            table: 9,
            flag: 3 + CAPACITY as u32,
            slot: 1,
        };
        record(later);
        assert_eq!(get(3), Some(later));
        for flag in 0..1_000 {
            record(Entry {
                table: 9,
                flag,
                slot: flag,
            });
        }
        assert_eq!(all().len(), CAPACITY);
        clear();
        assert!(all().is_empty());
    }

    #[test]
    fn threads_get_different_shards() {
        let shards: Vec<usize> = (0..4)
            .map(|_| std::thread::spawn(shard).join().unwrap())
            .collect();
        let distinct: std::collections::BTreeSet<_> = shards.iter().collect();
        assert_eq!(distinct.len(), 4, "{shards:?}");
    }
}
