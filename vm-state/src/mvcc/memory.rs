//! Multi-version memory (`MvMemory`): for every state key, the values written by the block's
//! transactions, each tagged with the version `(TxIndex, Incarnation)` that wrote it, or an
//! ESTIMATE marker left where an aborted incarnation wrote.
//!
//! Layout, chosen for the hot path (no global lock, no shared counter touched per read):
//! - a sharded hash table of [`KeyCell`]s (the key is hashed once per lookup, with a
//!   per-block random seed; the shard comes from the middle bits of that hash) whose entries
//!   name cells in append-only arenas (`boxcar`), one per worker (a worker creates cells
//!   in its own arena, so creating cells takes no shared counter), so a cell never moves and
//!   is never removed until the block ends, and read sets and write sets hold plain
//!   [`CellRef`] indices (no reference count that every core would fight over on hot keys)
//!   and validation never hashes a key again;
//! - each worker keeps a small direct-mapped [`CellCache`] from key hash to cell, so keys that
//!   every transaction reads (a contract's code hash) are found without taking a shard lock,
//!   and keeps its own copy of such a key's committed value (a shared `Arc` would again be one
//!   reference count for all cores);
//! - each [`KeyCell`] has its own small lock over a vector of `(TxIndex, Entry)` sorted by
//!   transaction (writes land near its end, so inserts are cheap) and a
//!   once-filled cache of the committed (pre-block) value, so each key is read from the
//!   committed store at most once per block however often incarnations re-read it;
//! - per transaction, the output of its latest recorded incarnation ([`TxSlot`]): the read set
//!   with the version each read saw (or "from storage"), the written cells and the receipt.

use hashbrown::HashSet;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use hashbrown::hash_table::{Entry as TableEntry, HashTable};
use hashbrown::DefaultHashBuilder;

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};
use smallvec::SmallVec;

use crate::error::VmStateError;
use crate::types::{Incarnation, Receipt, StateKey, StateValue, TxIndex};

/// Number of shards of the key map (a power of two).
const SHARDS: usize = 1024;

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

/// What a read through a worker's cache saw ([`MvMemory::read_cached`]).
#[derive(Clone, Debug)]
pub(crate) enum CachedRead {
    Version(TxIndex, Incarnation, Option<StateValue>),
    Estimate(TxIndex),
    Storage(Option<StateValue>),
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
    /// The key's first 32 bytes as big-endian integers, computed while the key is in cache:
    /// sorting the block's write set compares these and touches a key's bytes only on a tie.
    prefix: KeyPrefix,
    /// Sorted by transaction index (inline up to two versions; mostly appended near its end).
    versions: Mutex<SmallVec<[(TxIndex, Entry); 2]>>,
    /// The lowest transaction that ever wrote here in this block (`usize::MAX`: none). Only
    /// goes down. A reader at or below it has nothing below it and reads committed state
    /// without taking the lock: keys every transaction reads but none writes (a contract's
    /// code hash) stay free of lock traffic between cores.
    lowest_writer: AtomicUsize,
    /// The highest transaction that has read this key in this block, plus one (0: none).
    /// Only goes up. A writer that adds a version here checks it: if no higher transaction
    /// has read the key yet, nobody needs validating again because of this write (see
    /// [`MvMemory::record`]). Readers announce themselves before they look at the versions
    /// and writers look after they wrote (both `SeqCst`), so one of them sees the other.
    max_reader: AtomicUsize,
    base: OnceLock<Option<StateValue>>,
}

impl KeyCell {
    fn new(key: StateKey, hash: u64) -> Self {
        Self {
            prefix: KeyPrefix::of(&key),
            key,
            hash,
            versions: Mutex::new(SmallVec::new()),
            lowest_writer: AtomicUsize::new(usize::MAX),
            max_reader: AtomicUsize::new(0),
            base: OnceLock::new(),
        }
    }
    pub fn key(&self) -> &StateKey {
        &self.key
    }
    /// The latest entry strictly below `txn`.
    pub fn read_below(&self, txn: TxIndex) -> MvRead {
        self.max_reader
            .fetch_max(txn.saturating_add(1), Ordering::SeqCst);
        // A write that races with this load is not complete yet: reading committed state is
        // then a valid order (the writer sees this reader in `max_reader` and has the
        // higher transactions validated again).
        if txn <= self.lowest_writer.load(Ordering::SeqCst) {
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
        self.lowest_writer.fetch_min(txn, Ordering::SeqCst);
        match versions.binary_search_by_key(&txn, |(t, _)| *t) {
            Ok(i) => versions[i].1 = entry,
            Err(i) => versions.insert(i, (txn, entry)),
        }
    }
    /// Whether a transaction above `txn` has read this key in this block (call after
    /// writing the version of `txn`: see `max_reader`).
    fn read_above(&self, txn: TxIndex) -> bool {
        self.max_reader.load(Ordering::SeqCst) > txn.saturating_add(1)
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

/// A key's first 32 bytes, zero-padded, as two big-endian integers: comparing prefixes and
/// then (on a tie) the full keys orders keys exactly as their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KeyPrefix(u128, u128);

impl KeyPrefix {
    pub(crate) fn of(k: &StateKey) -> Self {
        let mut b = [0u8; 32];
        let n = k.0.len().min(32);
        b[..n].copy_from_slice(&k.0[..n]);
        let (hi, lo) = b.split_at(16);
        let hi = <[u8; 16]>::try_from(hi).map_or(0, u128::from_be_bytes);
        let lo = <[u8; 16]>::try_from(lo).map_or(0, u128::from_be_bytes);
        Self(hi, lo)
    }
}

/// Sorts entries with distinct keys by key, given each key's prefix (see [`KeyPrefix`]).
/// `parallel`: sort on the current rayon pool.
pub(crate) fn sort_prefixed<V: Send>(
    mut keyed: Vec<(KeyPrefix, StateKey, V)>,
    parallel: bool,
) -> Vec<(StateKey, V)> {
    use rayon::prelude::*;
    let cmp = |a: &(KeyPrefix, StateKey, V), b: &(KeyPrefix, StateKey, V)| {
        a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1))
    };
    if parallel {
        keyed.par_sort_unstable_by(cmp);
        // Indexed: each thread writes its part of the output in place.
        keyed.into_par_iter().map(|(_, k, v)| (k, v)).collect()
    } else {
        keyed.sort_unstable_by(cmp);
        keyed.into_iter().map(|(_, k, v)| (k, v)).collect()
    }
}

/// A cell of one block's [`MvMemory`]: its arena and its index there.
/// Only the `MvMemory` that made it can resolve it ([`MvMemory::at`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CellRef {
    arena: u32,
    index: u32,
}

/// One recorded read of an incarnation.
#[derive(Clone, Debug)]
pub(crate) struct ReadRecord {
    pub(crate) cell: CellRef,
    pub(crate) origin: ReadOrigin,
    /// The value read (repeat reads in the same incarnation return it).
    pub(crate) value: Option<StateValue>,
}

/// The recorded output of a transaction's latest incarnation.
#[derive(Debug, Default)]
pub(crate) struct TxSlot {
    pub(crate) incarnation: Incarnation,
    pub(crate) reads: Vec<ReadRecord>,
    pub(crate) writes: Vec<(CellRef, Option<StateValue>)>,
    pub(crate) receipt: Option<Receipt>,
}

/// Entries of a worker's [`CellCache`] (a power of two).
const CELL_CACHE_SLOTS: usize = 512;

/// A worker's direct-mapped cache of cells of one block, indexed by key hash: a hit costs one
/// hash and one key comparison and touches no shared lock. A slot also holds the worker's own
/// copy of the key's committed value once the worker read it twice from committed state, so
/// hot read-only keys do not bounce one reference count between cores.
pub(crate) struct CellCache {
    slots: Box<[Option<CachedCell>]>,
    /// The arena this worker creates cells in.
    arena: u32,
}

struct CachedCell {
    hash: u64,
    cell: CellRef,
    base: BaseCopy,
}

/// What a worker holds of a key's committed value.
enum BaseCopy {
    /// It has not read the key from committed state yet.
    Unread,
    /// It read it once (through the cell's shared copy).
    ReadOnce,
    /// Its private copy (made on its second read).
    Own(Option<StateValue>),
}

impl CellCache {
    /// The cache of worker `worker` (`0..workers` of [`MvMemory::with_workers`]; any other
    /// value uses the shared arena).
    pub(crate) fn new(worker: usize) -> Self {
        Self {
            slots: (0..CELL_CACHE_SLOTS).map(|_| None).collect(),
            arena: u32::try_from(worker).unwrap_or(u32::MAX),
        }
    }
}

/// One shard of the key map: cells by key hash.
type Shard = CachePadded<RwLock<HashTable<CellRef>>>;

/// What is left of a block's multi-version memory once its write set is out: the
/// transactions' slots (receipts still to take; read and write sets) and values to free.
/// Drop it off the critical path.
pub(crate) struct Leftovers {
    slots: Box<[CachePadded<Mutex<TxSlot>>]>,
    #[allow(dead_code)] // held only to be dropped later
    arenas: Vec<CachePadded<boxcar::Vec<KeyCell>>>,
}

impl Leftovers {
    /// Takes the receipt of transaction `txn`'s latest recorded incarnation, with that
    /// incarnation (`None`: no such transaction).
    pub(crate) fn take_receipt(&self, txn: TxIndex) -> Option<(Incarnation, Option<Receipt>)> {
        let mut s = self.slots.get(txn)?.lock();
        Some((s.incarnation, s.receipt.take()))
    }
}

/// Multi-version memory for one block of `num_txs` transactions.
pub struct MvMemory {
    shards: Box<[Shard]>,
    /// Cell arenas: one per worker, the last shared by everyone else.
    arenas: Box<[CachePadded<boxcar::Vec<KeyCell>>]>,
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
        Self::with_workers(num_txs, 0)
    }

    /// Multi-version memory for `num_txs` transactions run by `workers` workers, each with
    /// its own cell arena.
    pub fn with_workers(num_txs: usize, workers: usize) -> Self {
        // Room for about four keys per transaction before any shard grows (a token transfer
        // touches five, some shared).
        let per_shard = (num_txs * 4).div_ceil(SHARDS);

        Self {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(RwLock::new(HashTable::with_capacity(per_shard))))
                .collect(),
            // Arenas grow on demand, each in its worker's thread (a bucket at a time; cells
            // never move): allocating them up front would fault in megabytes of pages on the
            // calling thread before any work starts.
            arenas: (0..=workers)
                .map(|_| CachePadded::new(boxcar::Vec::new()))
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

    /// The hash this block's memory uses for `key` (views keep it to compare keys cheaply).
    pub(crate) fn hash_key(&self, key: &StateKey) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard_of(h: u64) -> u32 {
        // hashbrown uses the low bits (bucket) and the top 7 bits (tag): shard on others.
        ((h >> 32) as u32) & (SHARDS as u32 - 1)
    }

    fn locate(&self, key: &StateKey) -> (u64, u32) {
        let h = self.hash_key(key);
        (h, Self::shard_of(h))
    }

    /// The cell `r` names. `r` must come from this `MvMemory` (every `CellRef` does: they
    /// are only made here and kept in this block's read and write sets and caches); anything
    /// else is a broken invariant and panics, which the worker turns into a sequential re-run.
    pub(crate) fn at(&self, r: CellRef) -> &KeyCell {
        &self.arenas[r.arena as usize][r.index as usize]
    }

    /// The key's cell, created on first use.
    pub fn cell(&self, key: &StateKey) -> &KeyCell {
        let (h, shard) = self.locate(key);
        self.at(self.cell_in(key, h, shard, u32::MAX))
    }

    /// The cell of `key` (hash `h`, in `shard`), created in arena `arena` (the shared one if
    /// out of range) if missing.
    fn cell_in(&self, key: &StateKey, h: u64, shard: u32, arena: u32) -> CellRef {
        let table = &self.shards[shard as usize];
        let eq = |r: &CellRef| self.at(*r).key == *key;
        if let Some(&r) = table.read().find(h, eq) {
            return r;
        }
        let mut table = table.write();
        let hash_of = |r: &CellRef| self.at(*r).hash;
        match table.entry(h, eq, hash_of) {
            TableEntry::Occupied(e) => *e.get(),
            TableEntry::Vacant(v) => {
                let last = self.arenas.len() - 1;
                let a = (arena as usize).min(last);
                let index = self.arenas[a].push(KeyCell::new(key.clone(), h));
                let r = CellRef {
                    arena: a as u32,
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                };
                v.insert(r);
                r
            }
        }
    }

    /// The cell of `key`, whose [`Self::hash_key`] is `h`, through a worker's cache: a hit
    /// takes no shard lock.
    pub(crate) fn cached_cell_hashed(
        &self,
        cache: &mut CellCache,
        key: &StateKey,
        h: u64,
    ) -> CellRef {
        self.cached_slot(cache, key, h).cell
    }

    fn cached_slot<'c>(
        &self,
        cache: &'c mut CellCache,
        key: &StateKey,
        h: u64,
    ) -> &'c mut CachedCell {
        let shard = Self::shard_of(h);
        let i = (h as usize) & (CELL_CACHE_SLOTS - 1);
        let hit = matches!(&cache.slots[i], Some(c) if c.hash == h && self.at(c.cell).key == *key);
        if !hit {
            cache.slots[i] = Some(CachedCell {
                hash: h,
                cell: self.cell_in(key, h, shard, cache.arena),
                base: BaseCopy::Unread,
            });
        }
        match &mut cache.slots[i] {
            Some(c) => c,
            None => unreachable!("slot filled above"),
        }
    }

    /// What transaction `txn` reads at `key`, through a worker's cache. A read of committed
    /// state is answered from the worker's private copy when it has one; otherwise `base`
    /// runs (once per key and block, whoever calls first) and, on a repeated read by this
    /// worker, the worker keeps its own copy. Returns the cell and the read.
    pub(crate) fn read_cached(
        &self,
        cache: &mut CellCache,
        key: &StateKey,
        h: u64,
        txn: TxIndex,
        base: impl FnOnce() -> Result<Option<StateValue>, String>,
    ) -> Result<(CellRef, CachedRead), String> {
        let slot = self.cached_slot(cache, key, h);
        let cell = slot.cell;
        let read = match self.at(cell).read_below(txn) {
            MvRead::Version {
                txn,
                incarnation,
                value,
            } => CachedRead::Version(txn, incarnation, value),
            MvRead::Estimate(t) => CachedRead::Estimate(t),
            MvRead::Storage => {
                let c = self.at(cell);
                match (&slot.base, c.cached_base()) {
                    (BaseCopy::Own(v), _) => CachedRead::Storage(v.clone()),
                    (BaseCopy::ReadOnce, Some(v)) => {
                        // This worker's second read of the key: keep a private copy.
                        let own: Option<StateValue> = v.as_deref().map(StateValue::from);
                        slot.base = BaseCopy::Own(own.clone());
                        CachedRead::Storage(own)
                    }
                    (_, Some(v)) => {
                        slot.base = BaseCopy::ReadOnce;
                        CachedRead::Storage(v.clone())
                    }
                    (_, None) => {
                        slot.base = BaseCopy::ReadOnce;
                        CachedRead::Storage(c.cache_base(base()?))
                    }
                }
            }
        };
        Ok((cell, read))
    }

    /// The key's cell if it exists.
    pub fn existing_cell(&self, key: &StateKey) -> Option<&KeyCell> {
        let (h, shard) = self.locate(key);
        let r = *self.shards[shard as usize]
            .read()
            .find(h, |r| self.at(*r).key == *key)?;
        Some(self.at(r))
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
    /// path") that a higher transaction has already read: then the higher transactions need
    /// validation again. Block-STM revalidates on every new path; a new path nobody above
    /// has read cannot have invalidated a read (a later reader sees the new version), which
    /// spares most first incarnations the revalidation of every transaction above them.
    pub(crate) fn record(
        &self,
        txn: TxIndex,
        incarnation: Incarnation,
        reads: Vec<ReadRecord>,
        writes: Vec<(CellRef, Option<StateValue>)>,
        receipt: Receipt,
    ) -> Result<bool, VmStateError> {
        for (cell, value) in &writes {
            self.at(*cell).set(
                txn,
                Entry::Written {
                    incarnation,
                    value: value.clone(),
                },
            );
        }
        let mut slot = self.slot(txn)?.lock();
        let read_above = |c: &CellRef| self.at(*c).read_above(txn);
        let wrote_new_path = if slot.writes.is_empty() {
            writes.iter().any(|(c, _)| read_above(c))
        } else if slot.writes.len() * writes.len() <= 64 {
            for (old, _) in &slot.writes {
                if !writes.iter().any(|(c, _)| c == old) {
                    self.at(*old).remove(txn);
                }
            }
            writes
                .iter()
                .any(|(c, _)| !slot.writes.iter().any(|(o, _)| c == o) && read_above(c))
        } else {
            let new: HashSet<CellRef> = writes.iter().map(|(c, _)| *c).collect();
            let old: HashSet<CellRef> = slot.writes.iter().map(|(c, _)| *c).collect();
            for (c, _) in &slot.writes {
                if !new.contains(c) {
                    self.at(*c).remove(txn);
                }
            }
            new.iter().any(|p| !old.contains(p) && read_above(p))
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
            self.at(*cell).mark_estimate(txn);
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
            .all(|r| match (self.at(r.cell).read_below(txn), r.origin) {
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

    /// Ends the block: the final value of every key written in it (the entry of its highest
    /// writer), sorted by key, and what is left to free (read sets, receipts; drop it off the
    /// critical path). Keys move out of their cells (no copies). Runs on the current rayon
    /// pool. `Err(txn)`: an ESTIMATE of `txn` is still in place (only possible if the block
    /// is not really done).
    #[allow(clippy::type_complexity)]
    pub(crate) fn into_final_writes(
        self,
    ) -> Result<(Vec<(StateKey, Option<StateValue>)>, Leftovers), TxIndex> {
        use rayon::prelude::*;
        let MvMemory { arenas, slots, .. } = self;
        let mut arenas = arenas.into_vec();
        // Keys and final values are taken out of the cells in place (a key leaves an empty
        // vector behind); the cells themselves, with their cached committed values and older
        // versions, are freed later, off the critical path.
        #[allow(clippy::type_complexity)]
        let per_arena: Vec<Vec<(KeyPrefix, StateKey, Option<StateValue>)>> = arenas
            .par_iter_mut()
            .map(|arena| {
                let cells: &mut boxcar::Vec<KeyCell> = arena;
                let count = cells.count();
                let mut out = Vec::with_capacity(count);
                for i in 0..count {
                    let Some(cell) = cells.get_mut(i) else {
                        continue;
                    };
                    match cell.versions.get_mut().last_mut() {
                        None => {}
                        Some((_, Entry::Written { value, .. })) => {
                            out.push((cell.prefix, std::mem::take(&mut cell.key), value.take()))
                        }
                        Some((t, Entry::Estimate)) => return Err(*t),
                    }
                }
                Ok(out)
            })
            .collect::<Result<_, TxIndex>>()?;
        // Flattened in parallel (each arena's entries moved by the thread that holds them).
        let all: Vec<(KeyPrefix, StateKey, Option<StateValue>)> =
            per_arena.into_par_iter().flatten_iter().collect();
        Ok((sort_prefixed(all, true), Leftovers { slots, arenas }))
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
                        let value: Option<StateValue> = v.map(|b| StateValue::from(vec![b]));
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

    fn ok_receipt() -> Receipt {
        Receipt {
            status: crate::types::TxStatus::Success,
            gas_used: 0,
            fee: 0,
            return_data: vec![],
            events: vec![],
        }
    }

    #[test]
    fn record_reports_new_paths_and_removes_stale_writes() {
        let mem = MvMemory::new(3);
        let (a, b) = (
            mem.cached_cell_hashed(&mut CellCache::new(0), &key(1), mem.hash_key(&key(1))),
            mem.cached_cell_hashed(&mut CellCache::new(0), &key(2), mem.hash_key(&key(2))),
        );
        let r = ok_receipt();
        // A new path nobody above has read: no revalidation needed.
        assert!(!mem
            .record(1, 0, vec![], vec![(a, None)], r.clone())
            .unwrap());
        // Transaction 2 reads both keys (before and after the write of 1).
        assert_eq!(
            mem.read(&key(1), 2),
            MvRead::Version {
                txn: 1,
                incarnation: 0,
                value: None
            }
        );
        assert_eq!(mem.read(&key(2), 2), MvRead::Storage);
        // The same path again: not new.
        assert!(!mem
            .record(1, 1, vec![], vec![(a, None)], r.clone())
            .unwrap());
        // A new path that transaction 2 has read: revalidate.
        assert!(mem
            .record(1, 2, vec![], vec![(b, None)], r.clone())
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

    /// Reads by the writer itself or below it do not call for revalidation.
    #[test]
    fn reads_at_or_below_the_writer_do_not_count() {
        let mem = MvMemory::new(3);
        let c = mem.cached_cell_hashed(&mut CellCache::new(0), &key(3), mem.hash_key(&key(3)));
        assert_eq!(mem.read(&key(3), 1), MvRead::Storage);
        assert_eq!(mem.read(&key(3), 0), MvRead::Storage);
        let r = ok_receipt();
        assert!(!mem.record(1, 0, vec![], vec![(c, None)], r).unwrap());
    }
}
