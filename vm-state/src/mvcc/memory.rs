//! Multi-version memory (`MvMemory`): for every state key, the values written by the block's
//! transactions, each tagged with the version `(TxIndex, Incarnation)` that wrote it, or an
//! ESTIMATE marker left where an aborted incarnation wrote.
//!
//! Layout, chosen for the hot path (no global lock):
//! - a sharded hash table of `Arc<KeyCell>` (the key is hashed once per lookup, with a
//!   per-block random seed; the shard comes from the middle bits of that hash); a key's cell is created on its first read
//!   or write in the block and never removed until the block ends, so read sets and write
//!   sets hold `Arc<KeyCell>`s and validation never hashes a key again;
//! - each [`KeyCell`] has its own small lock over a vector of `(TxIndex, Entry)` sorted by
//!   transaction (writes land near its end, so inserts are cheap) and a
//!   once-filled cache of the committed (pre-block) value, so each key is read from the
//!   committed store at most once per block however often incarnations re-read it;
//! - per transaction, the output of its latest recorded incarnation ([`TxSlot`]): the read set
//!   with the version each read saw (or "from storage"), the written cells and the receipt.

use hashbrown::HashSet;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use hashbrown::hash_table::{Entry as TableEntry, HashTable};
use hashbrown::DefaultHashBuilder;

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};
use smallvec::SmallVec;

use crate::error::VmStateError;
use crate::types::{Incarnation, Receipt, StateKey, StateValue, TxIndex};

/// Number of shards of the key map (a power of two).
const SHARDS: usize = 256;

/// One version slot of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Written by incarnation `incarnation`; `None` is a deletion.
    Written {
        incarnation: Incarnation,
        value: Option<StateValue>,
    },
    /// The writing incarnation was aborted; its re-execution will probably write here again.
    Estimate,
}

/// What a read at position `txn` sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MvRead {
    /// The value written by the highest transaction below the reader.
    Version {
        txn: TxIndex,
        incarnation: Incarnation,
        value: Option<StateValue>,
    },
    /// The highest transaction below the reader left an ESTIMATE: the reader must wait for it.
    Estimate(TxIndex),
    /// No transaction below the reader wrote the key: read committed state.
    Storage,
}

/// Where a recorded read came from (what validation compares against).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOrigin {
    Version(TxIndex, Incarnation),
    Storage,
}

/// All versions of one key in the current block.
#[derive(Debug)]
pub struct KeyCell {
    key: StateKey,
    hash: u64,
    /// Sorted by transaction index (inline up to two versions; mostly appended near its end).
    versions: Mutex<SmallVec<[(TxIndex, Entry); 2]>>,
    /// The lowest transaction that ever wrote here in this block (`usize::MAX`: none). Only
    /// goes down. A reader at or below it has nothing below it and reads committed state
    /// without taking the lock: keys every transaction reads but none writes (a contract's
    /// code hash) stay free of lock traffic between cores.
    lowest_writer: AtomicUsize,
    base: OnceLock<Option<StateValue>>,
}

impl KeyCell {
    fn new(key: StateKey, hash: u64) -> Self {
        Self {
            key,
            hash,
            versions: Mutex::new(SmallVec::new()),
            lowest_writer: AtomicUsize::new(usize::MAX),
            base: OnceLock::new(),
        }
    }
    pub fn key(&self) -> &StateKey {
        &self.key
    }
    /// The latest entry strictly below `txn`.
    pub fn read_below(&self, txn: TxIndex) -> MvRead {
        // A write that races with this load is not complete yet: reading committed state is
        // then a valid order (validation re-reads after the writer has finished).
        if txn <= self.lowest_writer.load(Ordering::Acquire) {
            return MvRead::Storage;
        }
        let versions = self.versions.lock();
        let below = versions.partition_point(|(t, _)| *t < txn);
        match below.checked_sub(1).map(|i| &versions[i]) {
            None => MvRead::Storage,
            Some((t, Entry::Estimate)) => MvRead::Estimate(*t),
            Some((t, Entry::Written { incarnation, value })) => MvRead::Version {
                txn: *t,
                incarnation: *incarnation,
                value: value.clone(),
            },
        }
    }
    /// The cached committed value, if it was read already in this block.
    pub fn cached_base(&self) -> Option<&Option<StateValue>> {
        self.base.get()
    }
    /// Caches the committed value (the first caller wins; all callers read the same
    /// immutable snapshot, so they agree).
    pub fn cache_base(&self, value: Option<StateValue>) -> Option<StateValue> {
        self.base.get_or_init(|| value).clone()
    }
    fn set(&self, txn: TxIndex, entry: Entry) {
        let mut versions = self.versions.lock();
        self.lowest_writer.fetch_min(txn, Ordering::AcqRel);
        match versions.binary_search_by_key(&txn, |(t, _)| *t) {
            Ok(i) => versions[i].1 = entry,
            Err(i) => versions.insert(i, (txn, entry)),
        }
    }
    fn remove(&self, txn: TxIndex) {
        let mut versions = self.versions.lock();
        if let Ok(i) = versions.binary_search_by_key(&txn, |(t, _)| *t) {
            versions.remove(i);
        }
    }
    fn mark_estimate(&self, txn: TxIndex) -> bool {
        let mut versions = self.versions.lock();
        match versions.binary_search_by_key(&txn, |(t, _)| *t) {
            Ok(i) => {
                versions[i].1 = Entry::Estimate;
                true
            }
            Err(_) => false,
        }
    }
}

/// One recorded read of an incarnation.
#[derive(Clone, Debug)]
pub struct ReadRecord {
    pub cell: Arc<KeyCell>,
    pub origin: ReadOrigin,
    /// The value read (repeat reads in the same incarnation return it).
    pub value: Option<StateValue>,
}

/// The recorded output of a transaction's latest incarnation.
#[derive(Debug, Default)]
pub struct TxSlot {
    pub incarnation: Incarnation,
    pub reads: Vec<ReadRecord>,
    pub writes: Vec<(Arc<KeyCell>, Option<StateValue>)>,
    pub receipt: Option<Receipt>,
}

type Shard = CachePadded<RwLock<HashTable<Arc<KeyCell>>>>;

/// Multi-version memory for one block of `num_txs` transactions.
pub struct MvMemory {
    shards: Box<[Shard]>,
    hasher: DefaultHashBuilder,
    slots: Box<[CachePadded<Mutex<TxSlot>>]>,
}

impl std::fmt::Debug for MvMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MvMemory")
            .field("txs", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl MvMemory {
    pub fn new(num_txs: usize) -> Self {
        // Room for about two keys per transaction before any shard grows.
        let per_shard = (num_txs * 2).div_ceil(SHARDS);
        Self {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(RwLock::new(HashTable::with_capacity(per_shard))))
                .collect(),
            hasher: DefaultHashBuilder::default(),
            slots: (0..num_txs)
                .map(|_| CachePadded::new(Mutex::new(TxSlot::default())))
                .collect(),
        }
    }

    pub fn num_txs(&self) -> usize {
        self.slots.len()
    }

    fn locate(&self, key: &StateKey) -> (u64, &Shard) {
        let h = self.hasher.hash_one(key);
        // hashbrown uses the low bits (bucket) and the top 7 bits (tag): shard on others.
        (h, &self.shards[((h >> 32) as usize) & (SHARDS - 1)])
    }

    /// The key's cell, created on first use.
    pub fn cell(&self, key: &StateKey) -> Arc<KeyCell> {
        let (h, shard) = self.locate(key);
        if let Some(c) = shard.read().find(h, |c| c.key == *key) {
            return c.clone();
        }
        let mut table = shard.write();
        match table.entry(h, |c| c.key == *key, |c| c.hash) {
            TableEntry::Occupied(e) => e.get().clone(),
            TableEntry::Vacant(v) => {
                let cell = Arc::new(KeyCell::new(key.clone(), h));
                v.insert(cell.clone());
                cell
            }
        }
    }

    /// The key's cell if it exists.
    pub fn existing_cell(&self, key: &StateKey) -> Option<Arc<KeyCell>> {
        let (h, shard) = self.locate(key);
        shard.read().find(h, |c| c.key == *key).cloned()
    }

    /// Low-level: writes one version.
    pub fn write(
        &self,
        key: &StateKey,
        txn: TxIndex,
        incarnation: Incarnation,
        value: Option<StateValue>,
    ) {
        self.cell(key)
            .set(txn, Entry::Written { incarnation, value });
    }

    /// Low-level: replaces `txn`'s entry at `key` with an ESTIMATE (no-op if it has none).
    pub fn mark_estimate(&self, key: &StateKey, txn: TxIndex) {
        if let Some(c) = self.existing_cell(key) {
            c.mark_estimate(txn);
        }
    }

    /// Low-level: removes `txn`'s entry at `key`.
    pub fn remove(&self, key: &StateKey, txn: TxIndex) {
        if let Some(c) = self.existing_cell(key) {
            c.remove(txn);
        }
    }

    /// What transaction `txn` reads at `key`.
    pub fn read(&self, key: &StateKey, txn: TxIndex) -> MvRead {
        match self.existing_cell(key) {
            Some(c) => c.read_below(txn),
            None => MvRead::Storage,
        }
    }

    /// Records the output of incarnation `(txn, incarnation)`: its writes become versions,
    /// writes of the previous incarnation to keys not written now are removed. Returns
    /// whether a key outside the previous incarnation's write set was written ("wrote a new
    /// path": then all higher transactions need validation again).
    pub(crate) fn record(
        &self,
        txn: TxIndex,
        incarnation: Incarnation,
        reads: Vec<ReadRecord>,
        writes: Vec<(Arc<KeyCell>, Option<StateValue>)>,
        receipt: Receipt,
    ) -> Result<bool, VmStateError> {
        for (cell, value) in &writes {
            cell.set(
                txn,
                Entry::Written {
                    incarnation,
                    value: value.clone(),
                },
            );
        }
        let mut slot = self.slot(txn)?.lock();
        let wrote_new_path = if slot.writes.is_empty() {
            !writes.is_empty()
        } else if slot.writes.len() * writes.len() <= 64 {
            for (old, _) in &slot.writes {
                if !writes.iter().any(|(c, _)| Arc::ptr_eq(c, old)) {
                    old.remove(txn);
                }
            }
            writes
                .iter()
                .any(|(c, _)| !slot.writes.iter().any(|(o, _)| Arc::ptr_eq(c, o)))
        } else {
            let new: HashSet<*const KeyCell> = writes.iter().map(|(c, _)| Arc::as_ptr(c)).collect();
            let old: HashSet<*const KeyCell> =
                slot.writes.iter().map(|(c, _)| Arc::as_ptr(c)).collect();
            for (c, _) in &slot.writes {
                if !new.contains(&Arc::as_ptr(c)) {
                    c.remove(txn);
                }
            }
            new.iter().any(|p| !old.contains(p))
        };
        slot.incarnation = incarnation;
        slot.reads = reads;
        slot.writes = writes;
        slot.receipt = Some(receipt);
        Ok(wrote_new_path)
    }

    /// Turns all writes of `txn`'s latest recorded incarnation into ESTIMATEs.
    pub(crate) fn convert_writes_to_estimates(&self, txn: TxIndex) -> Result<(), VmStateError> {
        let slot = self.slot(txn)?.lock();
        for (cell, _) in &slot.writes {
            cell.mark_estimate(txn);
        }
        Ok(())
    }

    fn slot(&self, txn: TxIndex) -> Result<&Mutex<TxSlot>, VmStateError> {
        self.slots.get(txn).map(|s| &**s).ok_or_else(|| {
            VmStateError::Invariant(format!("no transaction {txn} in multi-version memory"))
        })
    }

    /// Whether every read of `txn`'s latest recorded incarnation would read the same version
    /// now.
    pub(crate) fn validate_read_set(&self, txn: TxIndex) -> Result<bool, VmStateError> {
        let slot = self.slot(txn)?.lock();
        Ok(slot
            .reads
            .iter()
            .all(|r| match (r.cell.read_below(txn), r.origin) {
                (MvRead::Storage, ReadOrigin::Storage) => true,
                (
                    MvRead::Version {
                        txn: t,
                        incarnation: i,
                        ..
                    },
                    ReadOrigin::Version(t0, i0),
                ) => t == t0 && i == i0,
                _ => false,
            }))
    }

    /// The final value of every key written in the block (the entry of its highest writer),
    /// sorted by key. Runs on the current rayon pool. `Err(txn)`: an ESTIMATE of `txn` is
    /// still in place (only possible if the block is not really done).
    pub(crate) fn final_writes(&self) -> Result<Vec<(StateKey, Option<StateValue>)>, TxIndex> {
        use rayon::prelude::*;
        let per_shard: Vec<Vec<(StateKey, Option<StateValue>)>> = self
            .shards
            .par_iter()
            .map(|shard| {
                let table = shard.read();
                let mut out = Vec::new();
                for cell in table.iter() {
                    match cell.versions.lock().last() {
                        None => {}
                        Some((_, Entry::Written { value, .. })) => {
                            out.push((cell.key.clone(), value.clone()))
                        }
                        Some((t, Entry::Estimate)) => return Err(*t),
                    }
                }
                Ok(out)
            })
            .collect::<Result<_, TxIndex>>()?;
        let mut all: Vec<(StateKey, Option<StateValue>)> =
            per_shard.into_iter().flatten().collect();
        all.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// Takes the receipt of every transaction's latest recorded incarnation, with that
    /// incarnation, in block order (ends the block).
    pub(crate) fn take_receipts(&self) -> Vec<(Incarnation, Option<Receipt>)> {
        self.slots
            .iter()
            .map(|s| {
                let mut s = s.lock();
                (s.incarnation, s.receipt.take())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Op {
        Write(u8, usize, u32, Option<u8>),
        Estimate(u8, usize),
        Remove(u8, usize),
        Read(u8, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = 0u8..6;
        let txn = 0usize..12;
        prop_oneof![
            4 => (key.clone(), txn.clone(), 0u32..4, proptest::option::of(any::<u8>())).prop_map(|(k, t, i, v)| Op::Write(k, t, i, v)),
            1 => (key.clone(), txn.clone()).prop_map(|(k, t)| Op::Estimate(k, t)),
            1 => (key.clone(), txn.clone()).prop_map(|(k, t)| Op::Remove(k, t)),
            4 => (key, 0usize..13).prop_map(|(k, t)| Op::Read(k, t)),
        ]
    }

    fn key(k: u8) -> StateKey {
        StateKey(vec![b's', k])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// MvMemory against a model: a `BTreeMap` from (key, txn) to entry, read by scanning.
        #[test]
        fn mvmemory_matches_btreemap_model(ops in proptest::collection::vec(op(), 1..80)) {
            let mem = MvMemory::new(12);
            let mut model: BTreeMap<(u8, usize), Entry> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Write(k, t, i, v) => {
                        let value: Option<StateValue> = v.map(|b| Arc::from(vec![b]));
                        mem.write(&key(k), t, i, value.clone());
                        model.insert((k, t), Entry::Written { incarnation: i, value });
                    }
                    Op::Estimate(k, t) => {
                        mem.mark_estimate(&key(k), t);
                        if let Some(e) = model.get_mut(&(k, t)) { *e = Entry::Estimate; }
                    }
                    Op::Remove(k, t) => {
                        mem.remove(&key(k), t);
                        model.remove(&(k, t));
                    }
                    Op::Read(k, t) => {
                        let expect = model
                            .iter()
                            .rfind(|((mk, mt), _)| *mk == k && *mt < t)
                            .map(|((_, mt), e)| match e {
                                Entry::Estimate => MvRead::Estimate(*mt),
                                Entry::Written { incarnation, value } => MvRead::Version { txn: *mt, incarnation: *incarnation, value: value.clone() },
                            })
                            .unwrap_or(MvRead::Storage);
                        prop_assert_eq!(mem.read(&key(k), t), expect);
                    }
                }
            }
        }
    }

    #[test]
    fn record_reports_new_paths_and_removes_stale_writes() {
        let mem = MvMemory::new(3);
        let (a, b) = (mem.cell(&key(1)), mem.cell(&key(2)));
        let r = Receipt {
            status: crate::types::TxStatus::Success,
            gas_used: 0,
            fee: 0,
            return_data: vec![],
            events: vec![],
        };
        assert!(mem
            .record(1, 0, vec![], vec![(a.clone(), None)], r.clone())
            .unwrap());
        assert!(!mem
            .record(1, 1, vec![], vec![(a.clone(), None)], r.clone())
            .unwrap());
        assert!(mem
            .record(1, 2, vec![], vec![(b.clone(), None)], r.clone())
            .unwrap());
        assert_eq!(mem.read(&key(1), 2), MvRead::Storage);
        assert_eq!(
            mem.read(&key(2), 2),
            MvRead::Version {
                txn: 1,
                incarnation: 2,
                value: None
            }
        );
        mem.convert_writes_to_estimates(1).unwrap();
        assert_eq!(mem.read(&key(2), 2), MvRead::Estimate(1));
    }
}
