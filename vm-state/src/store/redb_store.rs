//! [`RedbStore`]: committed state in redb 2 database files.
//!
//! Tables (state format 2): `state` (key -> 32-byte leaf hash of the entry ‖ value) and
//! `meta` (`format` -> `[2]`, `height` -> u64 LE, `root` -> 32 bytes). Keeping the leaf hash
//! in front of the value makes a block's writes one B-tree insert per key (format 1 kept the
//! hashes in a second table: twice the inserts, which dominated the commit). A block is ONE
//! redb write transaction holding its writes with their leaf hashes, the new height and the
//! new root; redb commits it
//! atomically and durably (copy-on-write B-trees, fsync'd commit slot), so a process killed at
//! any point reopens at the last committed block with nothing half-written. Reopening the file
//! is the restart path. [`StateStore::commit_blocks`] puts several consecutive blocks in one
//! such transaction (each key written once, one durable commit, every block's root still
//! computed); a crash then leaves the store before the group or after it.
//!
//! **Shards** (state format 3, [`RedbStore::open_with_shards`]): redb runs the inserts of
//! one write transaction on one thread, about 2-3 us per key, so a block of ~18,000 writes
//! spent 35-55 ms there. A store of `N` shards keeps key `k` in file `shard(k) =
//! fnv1a64(k) mod N` (shard 0 is the given path, shard `i` is `PATH.i`), each file with the
//! same tables plus `undo`, and commits a block as `N` write transactions filled on `N`
//! threads and committed at once. Atomicity across files comes from undo records: each
//! shard's transaction also stores, under the new height, the previous entry of every key it
//! changes (or its absence) and the height it had before; it drops its older record in the
//! same transaction. After a crash between shard commits some shards are one commit ahead:
//! opening the store (or a failed commit, at once) rolls every shard ahead of the lowest
//! height back with its undo record, so the store is at the last block (or group) that every
//! shard committed. Readers take a snapshot of all shards; one that lands between a
//! commit's first and last shard commit waits for the commit and reads again. One shard is format 2 exactly,
//! without undo records; the state root does not depend on the shard count.
//!
//! The leaf hashes of committed state are also kept in memory, in key order, after the first
//! commit (about key size + 32 bytes per entry): a block's new root is then a merge of its
//! updates into that index and a Merkle pass, on a second thread while its inserts run. The
//! index is replaced only after a durable commit and reloaded from the table after a failed
//! one, so it always mirrors committed state.
//!
//! Reads for execution go through [`RedbStore::snapshot`]: one redb read transaction per
//! shard (MVCC snapshots) shared by all workers of a block, unaffected by concurrent commits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction,
};

use super::{
    check_height, leaf_hashes_of, leaf_updates, merge_leaves, CommitInfo, StateReader, StateStore,
    WriteSet,
};
use crate::error::{Result, VmStateError};
use crate::root::{Hash32, StateHasher};
use crate::types::{StateKey, StateValue};

const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Sharded stores: the new height -> what undoes that shard's last commit.
const UNDO: TableDefinition<u64, &[u8]> = TableDefinition::new("undo");
const META_FORMAT: &str = "format";
const META_HEIGHT: &str = "height";
const META_ROOT: &str = "root";
/// Sharded stores: the shard count (every file) and the file's shard index.
const META_SHARDS: &str = "shards";
const META_SHARD: &str = "shard";
/// The on-disk layout of a one-file store.
const FORMAT: u8 = 2;
/// The on-disk layout of a sharded store.
const FORMAT_SHARDED: u8 = 3;
/// Most shards a store may have.
pub const MAX_SHARDS: usize = 64;

/// Splits a stored `leaf hash ‖ value`.
fn split_entry(stored: &[u8]) -> Result<(&[u8], &[u8])> {
    if stored.len() < 32 {
        return Err(VmStateError::Corrupt(format!(
            "state entry of {} bytes has no leaf hash",
            stored.len()
        )));
    }
    Ok(stored.split_at(32))
}

/// Every committed key with its leaf hash, in key order.
type LeafIndex = Vec<(Box<[u8]>, Hash32)>;

/// The keys and leaf hashes of a `state` table, in key order.
fn scan_leaves<'t, T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &'t T,
) -> Result<impl Iterator<Item = Result<(Box<[u8]>, Hash32)>> + 't> {
    Ok(table.iter()?.map(|item| {
        let (k, v) = item?;
        Ok((
            Box::from(k.value()),
            to_hash(split_entry(v.value())?.0, "leaf hash")?,
        ))
    }))
}

/// The keys and leaf hashes of all shards' `state` tables, in key order.
fn scan_all_leaves<T: ReadableTable<&'static [u8], &'static [u8]>>(
    tables: &[T],
) -> Result<LeafIndex> {
    let mut all: LeafIndex = Vec::new();
    for t in tables {
        for item in scan_leaves(t)? {
            all.push(item?);
        }
    }
    if tables.len() > 1 {
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    Ok(all)
}

/// The shard of `key` among `n` (FNV-1a, 64 bits; part of the sharded format).
pub fn shard_of(key: &[u8], n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % n as u64) as usize
}

/// [`StateStore`] on embedded redb databases: one file, or shards (module docs).
pub struct RedbStore {
    /// Shard 0 (the given path) first.
    shards: Vec<Database>,
    path: PathBuf,
    /// The leaf hashes of committed state in key order, kept in memory after the first
    /// commit so the next state root is computed (merge + Merkle pass, on a second thread)
    /// while the block's inserts run, instead of scanning the table after them. `None`
    /// until loaded, and after a failed commit (reloaded from the database).
    leaves: parking_lot::Mutex<Option<LeafIndex>>,
    /// Held by commits and recovery (one writer at a time across all shards).
    writer: parking_lot::Mutex<()>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .field("shards", &self.shards.len())
            .finish()
    }
}

fn to_hash(bytes: &[u8], what: &str) -> Result<Hash32> {
    bytes.try_into().map_err(|_| {
        VmStateError::Corrupt(format!("{what}: expected 32 bytes, found {}", bytes.len()))
    })
}

fn read_latest<T: ReadableTable<&'static str, &'static [u8]>>(
    meta: &T,
) -> Result<Option<CommitInfo>> {
    let Some(height) = read_u64(meta, META_HEIGHT)? else {
        return Ok(None);
    };
    let root = match meta.get(META_ROOT)? {
        None => {
            return Err(VmStateError::Corrupt(
                "height stored without a state root".into(),
            ))
        }
        Some(r) => to_hash(r.value(), "state root")?,
    };
    Ok(Some(CommitInfo {
        height,
        state_root: root,
    }))
}

fn read_u64<T: ReadableTable<&'static str, &'static [u8]>>(
    meta: &T,
    key: &str,
) -> Result<Option<u64>> {
    match meta.get(key)? {
        None => Ok(None),
        Some(v) => {
            let b: [u8; 8] = v
                .value()
                .try_into()
                .map_err(|_| VmStateError::Corrupt(format!("meta `{key}` is not 8 bytes")))?;
            Ok(Some(u64::from_le_bytes(b)))
        }
    }
}

/// Marks a new file as shard `i` of `n` (state format 3).
fn mark_shard(
    meta: &mut redb::Table<&'static str, &'static [u8]>,
    i: usize,
    n: usize,
) -> Result<()> {
    meta.insert(META_FORMAT, &[FORMAT_SHARDED][..])?;
    meta.insert(META_SHARDS, &(n as u64).to_le_bytes()[..])?;
    meta.insert(META_SHARD, &(i as u64).to_le_bytes()[..])?;
    Ok(())
}

fn write_latest(wtx: &WriteTransaction, info: Option<CommitInfo>) -> Result<()> {
    let mut meta = wtx.open_table(META)?;
    match info {
        Some(c) => {
            meta.insert(META_HEIGHT, &c.height.to_le_bytes()[..])?;
            meta.insert(META_ROOT, &c.state_root[..])?;
        }
        None => {
            meta.remove(META_HEIGHT)?;
            meta.remove(META_ROOT)?;
        }
    }
    Ok(())
}

/// Keys and their previous stored entries, as an undo record lists them.
type UndoEntries<'a> = Vec<(&'a [u8], Option<&'a [u8]>)>;

/// What undoes one shard's last commit: the height it had before, and each changed key's
/// previous stored entry (`None`: the key was absent).
/// Encoding: `u8` 1 + `u64` LE height, or `u8` 0 (no block before); then per key `u32` LE
/// key length, key, `u8` 1 + `u32` LE length + stored entry, or `u8` 0.
struct Undo {
    bytes: Vec<u8>,
}

impl Undo {
    fn new(prev: Option<u64>) -> Self {
        let mut bytes = Vec::new();
        match prev {
            Some(h) => {
                bytes.push(1);
                bytes.extend_from_slice(&h.to_le_bytes());
            }
            None => bytes.push(0),
        }
        Self { bytes }
    }
    fn push(&mut self, key: &[u8], old: Option<&[u8]>) {
        self.bytes
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(key);
        match old {
            Some(v) => {
                self.bytes.push(1);
                self.bytes
                    .extend_from_slice(&(v.len() as u32).to_le_bytes());
                self.bytes.extend_from_slice(v);
            }
            None => self.bytes.push(0),
        }
    }
    /// Decodes a record: the previous height and the (key, old entry) pairs.
    fn decode(mut b: &[u8]) -> Result<(Option<u64>, UndoEntries<'_>)> {
        fn take<'a, const N: usize>(b: &mut &'a [u8]) -> Result<&'a [u8; N]> {
            let (x, rest) = b
                .split_first_chunk::<N>()
                .ok_or_else(|| VmStateError::Corrupt("undo record is truncated".into()))?;
            *b = rest;
            Ok(x)
        }
        fn take_slice<'a>(b: &mut &'a [u8]) -> Result<&'a [u8]> {
            let n = u32::from_le_bytes(*take::<4>(b)?) as usize;
            if b.len() < n {
                return Err(VmStateError::Corrupt("undo record is truncated".into()));
            }
            let (x, rest) = b.split_at(n);
            *b = rest;
            Ok(x)
        }
        let prev = match take::<1>(&mut b)?[0] {
            0 => None,
            1 => Some(u64::from_le_bytes(*take::<8>(&mut b)?)),
            t => return Err(VmStateError::Corrupt(format!("undo record tag {t}"))),
        };
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = take_slice(&mut b)?;
            let old = match take::<1>(&mut b)?[0] {
                0 => None,
                1 => Some(take_slice(&mut b)?),
                t => return Err(VmStateError::Corrupt(format!("undo entry tag {t}"))),
            };
            out.push((key, old));
        }
        Ok((prev, out))
    }
}

/// `f` of every item, the first on the calling thread and the others each on a scoped
/// thread of its own, in order; a job that panics is an [`VmStateError::Invariant`] naming
/// `what`.
fn on_threads<T: Send, R: Send>(
    items: Vec<T>,
    what: &str,
    f: impl Fn(T) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    let mut items = items.into_iter();
    let Some(first) = items.next() else {
        return Vec::new();
    };
    std::thread::scope(|s| {
        let f = &f;
        let jobs: Vec<_> = items.map(|x| s.spawn(move || f(x))).collect();
        let mut out = vec![f(first)];
        out.extend(jobs.into_iter().map(|j| {
            j.join()
                .unwrap_or_else(|_| Err(VmStateError::Invariant(format!("{what} panicked"))))
        }));
        out
    })
}

/// Where a test stops a commit ([`RedbStore::simulate_crash`]).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// Every shard's transaction is filled and dropped uncommitted.
    BeforeCommit,
    /// The first `n` shards commit, the others are dropped (a crash between shard commits;
    /// with `n` >= the shard count, a crash just after the commit point); the store is left
    /// as it is on disk, to be recovered by reopening it.
    AfterShards(usize),
}

impl RedbStore {
    /// Opens the store at `path`, or creates a one-file store there. Opening an existing
    /// store is the restart path: it is at its last committed block (a sharded store first
    /// rolls back shards a crash left ahead of the others).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_shards(path, 1)
    }

    /// Opens the store at `path`, or creates one of `shards` shards there (1 to
    /// [`MAX_SHARDS`]; an existing store keeps the count it was created with).
    pub fn open_with_shards(path: impl AsRef<Path>, shards: usize) -> Result<Self> {
        if shards == 0 || shards > MAX_SHARDS {
            return Err(VmStateError::Database(format!(
                "{shards} shards: a store has 1 to {MAX_SHARDS}"
            )));
        }
        let path = path.as_ref().to_path_buf();
        let db0 = Database::create(&path)?;
        let (n, has_height) = {
            let wtx = db0.begin_write()?;
            let r;
            {
                wtx.open_table(STATE)?;
                let mut meta = wtx.open_table(META)?;
                let format = meta.get(META_FORMAT)?.map(|v| v.value().to_vec());
                let has_height = meta.get(META_HEIGHT)?.is_some();
                r = match format.as_deref() {
                    Some([FORMAT]) => (1, has_height),
                    Some([FORMAT_SHARDED]) => {
                        let n = read_u64(&meta, META_SHARDS)?.ok_or_else(|| {
                            VmStateError::Corrupt("sharded store without a shard count".into())
                        })? as usize;
                        if !(2..=MAX_SHARDS).contains(&n) {
                            return Err(VmStateError::Corrupt(format!("shard count {n}")));
                        }
                        (n, has_height)
                    }
                    None if !has_height => {
                        if shards == 1 {
                            meta.insert(META_FORMAT, &[FORMAT][..])?;
                        } else {
                            mark_shard(&mut meta, 0, shards)?;
                            wtx.open_table(UNDO)?;
                        }
                        (shards, false)
                    }
                    other => {
                        return Err(VmStateError::Database(format!(
                            "{} holds state format {} (this build reads formats {FORMAT} and \
                             {FORMAT_SHARDED}); re-import the chain into a new data directory",
                            path.display(),
                            other.map_or("1".to_string(), |f| format!("{f:?}"))
                        )))
                    }
                };
            }
            wtx.commit()?;
            r
        };
        let mut dbs = vec![db0];
        for i in 1..n {
            let p = Self::shard_path(&path, i);
            if has_height && !p.exists() {
                return Err(VmStateError::Corrupt(format!(
                    "shard file {} of a store with committed blocks is missing",
                    p.display()
                )));
            }
            let db = Database::create(&p)?;
            let wtx = db.begin_write()?;
            {
                wtx.open_table(STATE)?;
                wtx.open_table(UNDO)?;
                let mut meta = wtx.open_table(META)?;
                let format = meta.get(META_FORMAT)?.map(|v| v.value().to_vec());
                let shard_has_height = meta.get(META_HEIGHT)?.is_some();
                match format.as_deref() {
                    Some([FORMAT_SHARDED]) => {
                        let idx = read_u64(&meta, META_SHARD)?;
                        let cnt = read_u64(&meta, META_SHARDS)?;
                        if idx != Some(i as u64) || cnt != Some(n as u64) {
                            return Err(VmStateError::Corrupt(format!(
                                "{} is shard {idx:?} of {cnt:?}, expected shard {i} of {n}",
                                p.display()
                            )));
                        }
                    }
                    None if !shard_has_height => {
                        mark_shard(&mut meta, i, n)?;
                    }
                    _ => {
                        return Err(VmStateError::Corrupt(format!(
                            "{} is not a shard of this store",
                            p.display()
                        )))
                    }
                }
            }
            wtx.commit()?;
            dbs.push(db);
        }
        let store = Self {
            shards: dbs,
            path,
            leaves: parking_lot::Mutex::new(None),
            writer: parking_lot::Mutex::new(()),
        };
        {
            let _w = store.writer.lock();
            store.recover()?;
        }
        Ok(store)
    }

    /// The file of shard `i` (`i > 0`) of the store at `path`: `PATH.i`.
    pub fn shard_path(path: &Path, i: usize) -> PathBuf {
        let mut s = path.as_os_str().to_os_string();
        s.push(format!(".{i}"));
        PathBuf::from(s)
    }

    /// The database file (shard 0).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of shards (1: a one-file store).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Read transactions on every shard that see the same committed block, and that block.
    /// A commit makes its shards visible one by one; a reader that lands in between waits
    /// for the commit (the writer lock) and reads again. Shards that still disagree then
    /// are an error (a failed rollback; reopening the store retries it).
    fn consistent_read(&self) -> Result<(Vec<ReadTransaction>, Option<CommitInfo>)> {
        let agree = |infos: &[Option<CommitInfo>]| infos.windows(2).all(|w| w[0] == w[1]);
        let (rtxs, infos) = self.read_shards()?;
        if agree(&infos) {
            return Ok((rtxs, infos[0]));
        }
        drop(rtxs);
        let _writer = self.writer.lock();
        let (rtxs, infos) = self.read_shards()?;
        if agree(&infos) {
            return Ok((rtxs, infos[0]));
        }
        Err(VmStateError::Corrupt(format!(
            "shards of {} are at different blocks: {:?}; reopen the store to roll them back",
            self.path.display(),
            infos
                .iter()
                .map(|c| c.map(|c| c.height))
                .collect::<Vec<_>>()
        )))
    }

    /// A read transaction on every shard and the block each one is at (they may differ
    /// between a commit's shard commits; see [`RedbStore::consistent_read`]).
    fn read_shards(&self) -> Result<(Vec<ReadTransaction>, Vec<Option<CommitInfo>>)> {
        let mut rtxs = Vec::with_capacity(self.shards.len());
        for db in &self.shards {
            rtxs.push(db.begin_read()?);
        }
        let mut infos = Vec::with_capacity(rtxs.len());
        for r in &rtxs {
            infos.push(read_latest(&r.open_table(META)?)?);
        }
        Ok((rtxs, infos))
    }

    /// The `state` table of every shard, all at the same committed block.
    fn state_tables(&self) -> Result<Vec<ReadOnlyTable<&'static [u8], &'static [u8]>>> {
        let (rtxs, _) = self.consistent_read()?;
        Ok(rtxs
            .iter()
            .map(|r| r.open_table(STATE))
            .collect::<std::result::Result<_, _>>()?)
    }

    /// A consistent snapshot of the latest committed state (concrete type of
    /// [`StateStore::snapshot`]).
    pub fn redb_snapshot(&self) -> Result<RedbSnapshot> {
        Ok(RedbSnapshot {
            tables: self.state_tables()?,
        })
    }

    /// Number of live entries.
    pub fn len(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        let mut n = 0;
        for t in self.state_tables()? {
            n += t.len()?;
        }
        Ok(n)
    }

    /// Whether the state is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Rolls every shard that is ahead of the lowest one back with its undo record (after a
    /// crash or a failed commit between shard commits). Call with `writer` held.
    fn recover(&self) -> Result<()> {
        if self.shards.len() == 1 {
            return Ok(());
        }
        let (_, infos) = self.read_shards()?;
        let Some(&target) = infos.iter().min_by_key(|c| c.map(|c| c.height)) else {
            return Ok(());
        };
        for (i, (db, info)) in self.shards.iter().zip(&infos).enumerate() {
            let Some(ahead) = *info else { continue };
            if Some(ahead) == target {
                continue;
            }
            let wtx = db.begin_write()?;
            {
                let mut undo = wtx.open_table(UNDO)?;
                let record = undo
                    .get(ahead.height)?
                    .map(|v| v.value().to_vec())
                    .ok_or_else(|| {
                        VmStateError::Corrupt(format!(
                            "shard {i} is at block {} and others at {:?}, and it has no undo \
                             record",
                            ahead.height,
                            target.map(|c| c.height)
                        ))
                    })?;
                let (prev, entries) = Undo::decode(&record)?;
                if prev != target.map(|c| c.height) {
                    return Err(VmStateError::Corrupt(format!(
                        "shard {i}'s undo record goes back to {prev:?}, not to {:?}",
                        target.map(|c| c.height)
                    )));
                }
                let mut state = wtx.open_table(STATE)?;
                for (k, old) in entries {
                    match old {
                        Some(v) => {
                            state.insert(k, v)?;
                        }
                        None => {
                            state.remove(k)?;
                        }
                    }
                }
                undo.remove(ahead.height)?;
            }
            write_latest(&wtx, target)?;
            wtx.commit()?;
            tracing::warn!(
                target: "supervm::commit",
                shard = i,
                from = ahead.height,
                to = ?target.map(|c| c.height),
                "rolled a shard back to the last block every shard committed"
            );
        }
        // The leaf index needs no reset: it is empty when the store opens and taken out
        // for the duration of a commit.
        Ok(())
    }

    fn commit_inner(
        &self,
        height: u64,
        write_set: &WriteSet,
        hasher: &dyn StateHasher,
        crash: Option<CrashPoint>,
    ) -> Result<CommitInfo> {
        self.commit_group(&[(height, write_set)], hasher, crash)?
            .pop()
            .ok_or_else(|| VmStateError::Invariant("a commit returned no result".into()))
    }

    /// Commits consecutive blocks in ONE write transaction per shard: each key written once
    /// with its value from the last block that wrote it (a single block: every write), each
    /// shard filled on its own thread, every block's state root computed in order from the
    /// in-memory leaf index on another thread meanwhile, the last height and root in every
    /// shard, then the shards' durable commits at once.
    fn commit_group(
        &self,
        blocks: &[(u64, &WriteSet)],
        hasher: &dyn StateHasher,
        crash: Option<CrashPoint>,
    ) -> Result<Vec<CommitInfo>> {
        let Some(&(first, _)) = blocks.first() else {
            return Ok(Vec::new());
        };
        for (i, &(h, _)) in blocks.iter().enumerate().skip(1) {
            if h != first + i as u64 {
                return Err(VmStateError::Invariant(format!(
                    "blocks committed together must be consecutive: {h} after {}",
                    first + i as u64 - 1
                )));
            }
        }
        let _writer = self.writer.lock();
        let t0 = std::time::Instant::now();
        let mut phases = [0u128; 3];
        let n = self.shards.len();
        // Taken out for the commit; put back only once it is durable.
        let cached = self.leaves.lock().take();
        let mut wtxs: Vec<WriteTransaction> = Vec::with_capacity(n);
        for db in &self.shards {
            wtxs.push(db.begin_write()?);
        }
        let prev = read_latest(&wtxs[0].open_table(META)?)?;
        check_height(prev, first)?;
        let updates: Vec<_> = blocks
            .iter()
            .map(|(_, ws)| leaf_updates(ws, hasher))
            .collect::<Result<_>>()?;
        phases[0] = t0.elapsed().as_micros();
        let index = match cached {
            Some(index) => index,
            None => {
                let tables: Vec<_> = wtxs
                    .iter()
                    .map(|w| w.open_table(STATE))
                    .collect::<std::result::Result<_, _>>()?;
                scan_all_leaves(&tables)?
            }
        };
        // (key, block, write) by key then block: the last of each key's run is written.
        // (Write sets are sorted: for one block this is a linear pass.)
        let mut all: Vec<(&StateKey, usize, usize)> = Vec::new();
        for (b, (_, ws)) in blocks.iter().enumerate() {
            all.extend(ws.keys().enumerate().map(|(i, k)| (k, b, i)));
        }
        if blocks.len() > 1 {
            all.sort_by(|x, y| x.0.cmp(y.0).then(x.1.cmp(&y.1)));
        }
        let mut per_shard: Vec<Vec<(&StateKey, usize, usize)>> = vec![Vec::new(); n];
        for (j, &(key, b, i)) in all.iter().enumerate() {
            if all.get(j + 1).is_some_and(|next| next.0 == key) {
                continue;
            }
            per_shard[shard_of(key.as_bytes(), n)].push((key, b, i));
        }
        let fill = |wtx: &WriteTransaction, writes: &[(&StateKey, usize, usize)]| -> Result<()> {
            let mut state = wtx.open_table(STATE)?;
            let mut undo = (n > 1).then(|| Undo::new(prev.map(|c| c.height)));
            let mut entry = Vec::new();
            for &(key, b, i) in writes {
                let old = match (&blocks[b].1.as_slice()[i].1, updates[b][i].1) {
                    (Some(v), Some(h)) => {
                        entry.clear();
                        entry.extend_from_slice(&h);
                        entry.extend_from_slice(v);
                        state.insert(key.as_bytes(), &entry[..])?
                    }
                    _ => state.remove(key.as_bytes())?,
                };
                if let Some(u) = undo.as_mut() {
                    u.push(key.as_bytes(), old.as_ref().map(|g| g.value()));
                }
            }
            if let Some(u) = undo {
                let mut t = wtx.open_table(UNDO)?;
                t.retain(|_, _| false)?;
                let last = first + blocks.len() as u64 - 1;
                t.insert(last, &u.bytes[..])?;
            }
            Ok(())
        };
        let (filled, rooted) = std::thread::scope(|s| {
            let root_job = s.spawn(|| -> Result<(LeafIndex, Vec<Hash32>)> {
                let mut index = index;
                let mut roots = Vec::with_capacity(updates.len());
                for u in &updates {
                    index = merge_leaves(index.into_iter().map(Ok), u)?;
                    roots.push(hasher.merkle_root(&leaf_hashes_of(&index)));
                }
                Ok((index, roots))
            });
            let filled: Result<Vec<()>> = on_threads(
                wtxs.iter().zip(&per_shard).collect(),
                "a shard writer",
                |(w, writes)| fill(w, writes),
            )
            .into_iter()
            .collect();
            phases[1] = t0.elapsed().as_micros();
            (filled, root_job.join())
        });
        filled?;
        let (index, roots) = rooted
            .map_err(|_| VmStateError::Invariant("the state-root thread panicked".into()))??;
        let n_leaves = index.len();
        let infos: Vec<CommitInfo> = blocks
            .iter()
            .zip(roots)
            .map(|(&(height, _), state_root)| CommitInfo { height, state_root })
            .collect();
        for w in &wtxs {
            write_latest(w, infos.last().copied())?;
        }
        phases[2] = t0.elapsed().as_micros();
        let commit_first = match crash {
            Some(CrashPoint::BeforeCommit) => {
                // Everything is written; dropping the transactions here is what a crash
                // before the commit point does: redb discards them.
                drop(wtxs);
                return Err(VmStateError::Database(
                    "simulated crash before commit".into(),
                ));
            }
            Some(CrashPoint::AfterShards(k)) => k.min(n),
            None => n,
        };
        let results = on_threads(
            wtxs.into_iter().take(commit_first).collect(),
            "a shard commit",
            |w| w.commit().map_err(VmStateError::from),
        );
        if crash.is_some() {
            // Nothing of the in-memory state is updated: the store is left as a crash
            // leaves it (all shards committed when `k >= n`: the blocks are durable).
            return Err(VmStateError::Database(format!(
                "simulated crash after {commit_first} of {n} shard commits"
            )));
        }
        if let Some(e) = results.into_iter().find_map(|r| r.err()) {
            // Some shards may have committed: put them back where the others are.
            if let Err(r) = self.recover() {
                tracing::error!(
                    target: "supervm::commit",
                    "rolling shards back after a failed commit failed too ({r}); reopen the \
                     store to retry"
                );
            }
            return Err(e);
        }
        *self.leaves.lock() = Some(index);
        tracing::debug!(
            target: "supervm::commit",
            first,
            blocks = blocks.len(),
            shards = n,
            writes = blocks.iter().map(|(_, ws)| ws.len()).sum::<usize>(),
            leaves = n_leaves,
            "commit phases (us, cumulative): leaf hashes {}, inserts {}, root joined {}, durable commit {}",
            phases[0],
            phases[1],
            phases[2],
            t0.elapsed().as_micros()
        );
        Ok(infos)
    }

    /// Test hook: performs [`StateStore::commit_blocks`] up to `at` and stops there as a
    /// crash would (see [`CrashPoint`]). Always returns an error.
    #[doc(hidden)]
    pub fn simulate_crash(
        &self,
        blocks: &[(u64, &WriteSet)],
        hasher: &dyn StateHasher,
        at: CrashPoint,
    ) -> Result<Vec<CommitInfo>> {
        self.commit_group(blocks, hasher, Some(at))
    }

    /// Test hook: performs every step of [`StateStore::commit_block`] but drops the write
    /// transaction instead of committing it (a crash just before the commit point). Always
    /// returns an error; the store stays at the previous block.
    #[doc(hidden)]
    pub fn simulate_crash_before_commit(
        &self,
        height: u64,
        write_set: &WriteSet,
        hasher: &dyn StateHasher,
    ) -> Result<CommitInfo> {
        self.commit_inner(height, write_set, hasher, Some(CrashPoint::BeforeCommit))
    }
}

impl StateReader for RedbStore {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>> {
        self.redb_snapshot()?.get(key)
    }
}

impl StateStore for RedbStore {
    fn latest(&self) -> Result<Option<CommitInfo>> {
        Ok(self.consistent_read()?.1)
    }

    fn snapshot(&self) -> Result<Arc<dyn StateReader>> {
        Ok(Arc::new(self.redb_snapshot()?))
    }

    fn preview_root(&self, write_set: &WriteSet, hasher: &dyn StateHasher) -> Result<Hash32> {
        let tables = self.state_tables()?;
        let updates = leaf_updates(write_set, hasher)?;
        let all: LeafIndex = merge_leaves(scan_all_leaves(&tables)?.into_iter().map(Ok), &updates)?;
        Ok(hasher.merkle_root(&leaf_hashes_of(&all)))
    }

    fn commit_block(
        &self,
        height: u64,
        write_set: &WriteSet,
        hasher: &dyn StateHasher,
    ) -> Result<CommitInfo> {
        self.commit_inner(height, write_set, hasher, None)
    }

    /// One write transaction per shard for all of `blocks` (see `commit_group`).
    fn commit_blocks(
        &self,
        blocks: &[(u64, &WriteSet)],
        hasher: &dyn StateHasher,
    ) -> Result<Vec<CommitInfo>> {
        self.commit_group(blocks, hasher, None)
    }

    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<(StateKey, StateValue)>> {
        let tables = self.state_tables()?;
        let mut out = Vec::new();
        for state in &tables {
            for (taken, item) in state.range::<&[u8]>(prefix..)?.enumerate() {
                if taken >= limit {
                    break;
                }
                let (k, v) = item?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                out.push((
                    StateKey(k.value().to_vec()),
                    Arc::from(split_entry(v.value())?.1),
                ));
            }
        }
        if tables.len() > 1 {
            out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            out.truncate(limit);
        }
        Ok(out)
    }
}

/// A read-only snapshot of a [`RedbStore`] (one redb read transaction per shard).
pub struct RedbSnapshot {
    tables: Vec<ReadOnlyTable<&'static [u8], &'static [u8]>>,
}

impl StateReader for RedbSnapshot {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>> {
        let t = &self.tables[shard_of(key.as_bytes(), self.tables.len())];
        match t.get(key.as_bytes())? {
            None => Ok(None),
            Some(v) => Ok(Some(Arc::from(split_entry(v.value())?.1))),
        }
    }
}
