//! The [`StateView`]s handed to a transaction executor: [`ParallelView`] reads through
//! multi-version memory and records the read set; [`SequentialView`] reads the block's
//! overlay of earlier writes, then committed state.
//!
//! Both views give read-your-writes inside a transaction (a read of a key the transaction
//! already wrote returns that write and is not recorded), and repeat reads of a key return the
//! value of the first read, so one incarnation always sees one consistent value per key.

use hashbrown::HashMap;

use crate::mvcc::memory::{CachedRead, CellCache, CellRef, MvMemory, ReadOrigin, ReadRecord};
use crate::store::StateReader;
use crate::types::{ReadError, StateKey, StateValue, StateView, TxIndex};

/// Above this many entries the per-transaction buffers build a hash index.
const LINEAR_MAX: usize = 16;

/// The "hash" of every key in a [`SmallMap`] whose user computes none.
const NO_HASH: u64 = 0;

/// A small insertion-ordered map that scans linearly while small. Entries carry their key's
/// hash (from the caller's hasher), so a scan compares 8-byte hashes and touches key bytes
/// only on a match: keys of one contract share their first 21 bytes, and comparing them was
/// a fifth of a Block-STM worker's time. A caller with no hash at hand passes
/// [`NO_HASH`]: every entry then matches on the hash and keys are compared.
#[derive(Debug)]
pub(crate) struct SmallMap<V> {
    entries: Vec<(u64, StateKey, V)>,
    index: Option<HashMap<StateKey, usize>>,
}

impl<V> Default for SmallMap<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: None,
        }
    }
}

impl<V> SmallMap<V> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
            index: None,
        }
    }
    fn position(&self, h: u64, key: &StateKey) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.get(key).copied(),
            None => self
                .entries
                .iter()
                .position(|(eh, k, _)| *eh == h && k == key),
        }
    }
    /// The value of `key`, whose hash is `h`.
    pub(crate) fn get(&self, h: u64, key: &StateKey) -> Option<&V> {
        self.position(h, key).map(|i| &self.entries[i].2)
    }
    /// Inserts or replaces.
    pub(crate) fn put(&mut self, h: u64, key: StateKey, value: V) {
        if let Some(i) = self.position(h, &key) {
            self.entries[i].2 = value;
            return;
        }
        if let Some(ix) = &mut self.index {
            ix.insert(key.clone(), self.entries.len());
        } else if self.entries.len() >= LINEAR_MAX {
            let mut ix: HashMap<StateKey, usize> = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (_, k, _))| (k.clone(), i))
                .collect();
            ix.insert(key.clone(), self.entries.len());
            self.index = Some(ix);
        }
        self.entries.push((h, key, value));
    }
    /// The entries with their hashes, in insertion order.
    pub(crate) fn into_hashed_entries(self) -> Vec<(u64, StateKey, V)> {
        self.entries
    }
    pub(crate) fn into_entries(self) -> Vec<(StateKey, V)> {
        self.entries.into_iter().map(|(_, k, v)| (k, v)).collect()
    }
}

fn storage_error(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The view of one incarnation in the parallel executor.
pub(crate) struct ParallelView<'a> {
    txn: TxIndex,
    mem: &'a MvMemory,
    base: &'a dyn StateReader,
    cache: &'a mut CellCache,
    reads: Vec<ReadRecord>,
    /// The hash of each read's key (`MvMemory::hash_key`), beside `reads`.
    read_hashes: Vec<u64>,
    /// Key -> position in `reads`, built once there are many reads.
    read_index: Option<HashMap<StateKey, usize>>,
    writes: SmallMap<Option<StateValue>>,
    /// The last ESTIMATE this view reported (the executor must return exactly this).
    pub(crate) dependency: Option<TxIndex>,
    /// A committed-state read that failed.
    pub(crate) storage_error: Option<String>,
}

impl<'a> ParallelView<'a> {
    pub(crate) fn new(
        txn: TxIndex,
        mem: &'a MvMemory,
        base: &'a dyn StateReader,
        cache: &'a mut CellCache,
    ) -> Self {
        Self {
            txn,
            mem,
            base,
            cache,
            reads: Vec::with_capacity(8),
            read_hashes: Vec::with_capacity(8),
            read_index: None,
            writes: SmallMap::with_capacity(4),
            dependency: None,
            storage_error: None,
        }
    }

    /// The read set and the write set (as cells of multi-version memory).
    #[allow(clippy::type_complexity)]
    pub(crate) fn finish(mut self) -> (Vec<ReadRecord>, Vec<(CellRef, Option<StateValue>)>) {
        let entries = std::mem::take(&mut self.writes).into_hashed_entries();
        // A key read before it was written (the common read-modify-write) already has its
        // cell in the read set: no second hash-table lookup.
        let writes = entries
            .into_iter()
            .map(|(h, k, v)| {
                let cell = match self.read_position(h, &k) {
                    Some(i) => self.reads[i].cell,
                    None => self.mem.cached_cell_hashed(self.cache, &k, h),
                };
                (cell, v)
            })
            .collect();
        (self.reads, writes)
    }

    fn read_position(&self, h: u64, key: &StateKey) -> Option<usize> {
        match &self.read_index {
            Some(ix) => ix.get(key).copied(),
            None => self
                .read_hashes
                .iter()
                .zip(&self.reads)
                .position(|(rh, r)| *rh == h && self.mem.at(r.cell).key() == key),
        }
    }
}

impl StateView for ParallelView<'_> {
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, ReadError> {
        let h = self.mem.hash_key(key);
        if let Some(v) = self.writes.get(h, key) {
            return Ok(v.clone());
        }
        if let Some(i) = self.read_position(h, key) {
            return Ok(self.reads[i].value.clone());
        }
        let base = self.base;
        let read = self.mem.read_cached(self.cache, key, h, self.txn, || {
            base.get(key).map_err(storage_error)
        });
        let (cell, read) = match read {
            Ok(r) => r,
            Err(msg) => {
                self.storage_error = Some(msg.clone());
                return Err(ReadError::Storage(msg));
            }
        };
        let (origin, value) = match read {
            CachedRead::Version(txn, incarnation, value) => {
                (ReadOrigin::Version(txn, incarnation), value)
            }
            CachedRead::Estimate(blocking) => {
                self.dependency = Some(blocking);
                return Err(ReadError::Dependency(blocking));
            }
            CachedRead::Storage(value) => (ReadOrigin::Storage, value),
        };
        if let Some(ix) = &mut self.read_index {
            ix.insert(key.clone(), self.reads.len());
        } else if self.reads.len() >= LINEAR_MAX {
            let mut ix: HashMap<StateKey, usize> = self
                .reads
                .iter()
                .enumerate()
                .map(|(i, r)| (self.mem.at(r.cell).key().clone(), i))
                .collect();
            ix.insert(key.clone(), self.reads.len());
            self.read_index = Some(ix);
        }
        self.reads.push(ReadRecord {
            cell,
            origin,
            value: value.clone(),
        });
        self.read_hashes.push(h);
        Ok(value)
    }

    fn write(&mut self, key: StateKey, value: Option<StateValue>) {
        let h = self.mem.hash_key(&key);
        self.writes.put(h, key, value);
    }
}

/// The view of one transaction in sequential execution.
pub(crate) struct SequentialView<'a> {
    overlay: &'a HashMap<StateKey, Option<StateValue>>,
    base: &'a dyn StateReader,
    writes: SmallMap<Option<StateValue>>,
    pub(crate) storage_error: Option<String>,
}

impl<'a> SequentialView<'a> {
    pub(crate) fn new(
        overlay: &'a HashMap<StateKey, Option<StateValue>>,
        base: &'a dyn StateReader,
    ) -> Self {
        Self {
            overlay,
            base,
            writes: SmallMap::default(),
            storage_error: None,
        }
    }
    pub(crate) fn into_writes(self) -> Vec<(StateKey, Option<StateValue>)> {
        self.writes.into_entries()
    }
}

impl StateView for SequentialView<'_> {
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, ReadError> {
        // No key hash here: the overlay lookup below hashes the key itself, and a second
        // hash per access would cost more than the few key comparisons it saves.
        if let Some(v) = self.writes.get(NO_HASH, key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        self.base.get(key).map_err(|e| {
            let msg = storage_error(e);
            self.storage_error = Some(msg.clone());
            ReadError::Storage(msg)
        })
    }

    fn write(&mut self, key: StateKey, value: Option<StateValue>) {
        self.writes.put(NO_HASH, key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_map_switches_to_index() {
        let mut m = SmallMap::default();
        // Hashes that collide on purpose: lookups must still compare keys.
        let h = |i: u8| u64::from(i % 3);
        for i in 0..40u8 {
            m.put(h(i), StateKey(vec![i]), i);
        }
        m.put(h(3), StateKey(vec![3]), 100);
        assert_eq!(m.get(h(3), &StateKey(vec![3])), Some(&100));
        assert_eq!(m.get(h(39), &StateKey(vec![39])), Some(&39));
        assert_eq!(m.get(h(41), &StateKey(vec![41])), None);
        assert_eq!(m.into_entries().len(), 40);
    }

    #[test]
    fn parallel_view_repeat_reads_are_stable_and_recorded_once() {
        use std::collections::BTreeMap;
        let base: BTreeMap<StateKey, StateValue> = (0..40u8)
            .map(|i| (StateKey(vec![i]), StateValue::from(vec![i])))
            .collect();
        let mem = MvMemory::new(3);
        let mut cache = CellCache::new(0);
        let mut view = ParallelView::new(2, &mem, &base, &mut cache);
        for round in 0..2 {
            for i in 0..40u8 {
                let v = view.read(&StateKey(vec![i])).unwrap();
                assert_eq!(v.as_deref(), Some(&[i][..]));
            }
            if round == 0 {
                // A lower transaction writes after our read: the incarnation keeps seeing the
                // value it read first (validation will catch the change).
                mem.write(&StateKey(vec![3]), 1, 0, None);
            }
        }
        view.write(StateKey(vec![5]), None);
        assert_eq!(view.read(&StateKey(vec![5])).unwrap(), None);
        let (reads, writes) = view.finish();
        assert_eq!(reads.len(), 40);
        assert_eq!(writes.len(), 1);
    }
}
