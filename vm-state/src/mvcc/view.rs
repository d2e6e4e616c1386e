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

/// A small insertion-ordered map that scans linearly while small.
#[derive(Debug)]
pub(crate) struct SmallMap<V> {
    entries: Vec<(StateKey, V)>,
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
    fn position(&self, key: &StateKey) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| k == key),
        }
    }
    pub(crate) fn get(&self, key: &StateKey) -> Option<&V> {
        self.position(key).map(|i| &self.entries[i].1)
    }
    /// Inserts or replaces.
    pub(crate) fn put(&mut self, key: StateKey, value: V) {
        if let Some(i) = self.position(&key) {
            self.entries[i].1 = value;
            return;
        }
        if let Some(ix) = &mut self.index {
            ix.insert(key.clone(), self.entries.len());
        } else if self.entries.len() >= LINEAR_MAX {
            let mut ix: HashMap<StateKey, usize> = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect();
            ix.insert(key.clone(), self.entries.len());
            self.index = Some(ix);
        }
        self.entries.push((key, value));
    }
    pub(crate) fn into_entries(self) -> Vec<(StateKey, V)> {
        self.entries
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
            read_index: None,
            writes: SmallMap::with_capacity(4),
            dependency: None,
            storage_error: None,
        }
    }

    /// The read set and the write set (as cells of multi-version memory).
    #[allow(clippy::type_complexity)]
    pub(crate) fn finish(mut self) -> (Vec<ReadRecord>, Vec<(CellRef, Option<StateValue>)>) {
        let entries = std::mem::take(&mut self.writes).into_entries();
        // A key read before it was written (the common read-modify-write) already has its
        // cell in the read set: no second hash-table lookup. (`collect` reuses the buffer.)
        let writes = entries
            .into_iter()
            .map(|(k, v)| {
                let cell = match self.read_position(&k) {
                    Some(i) => self.reads[i].cell,
                    None => self.mem.cached_cell(self.cache, &k),
                };
                (cell, v)
            })
            .collect();
        (self.reads, writes)
    }

    fn read_position(&self, key: &StateKey) -> Option<usize> {
        match &self.read_index {
            Some(ix) => ix.get(key).copied(),
            None => self
                .reads
                .iter()
                .position(|r| self.mem.at(r.cell).key() == key),
        }
    }
}

impl StateView for ParallelView<'_> {
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, ReadError> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        if let Some(i) = self.read_position(key) {
            return Ok(self.reads[i].value.clone());
        }
        let base = self.base;
        let read = self.mem.read_cached(self.cache, key, self.txn, || {
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
        Ok(value)
    }

    fn write(&mut self, key: StateKey, value: Option<StateValue>) {
        self.writes.put(key, value);
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
        if let Some(v) = self.writes.get(key) {
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
        self.writes.put(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_map_switches_to_index() {
        let mut m = SmallMap::default();
        for i in 0..40u8 {
            m.put(StateKey(vec![i]), i);
        }
        m.put(StateKey(vec![3]), 100);
        assert_eq!(m.get(&StateKey(vec![3])), Some(&100));
        assert_eq!(m.get(&StateKey(vec![39])), Some(&39));
        assert_eq!(m.get(&StateKey(vec![41])), None);
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
