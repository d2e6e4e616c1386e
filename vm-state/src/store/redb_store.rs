//! [`RedbStore`]: committed state in a redb 2 database file.
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
//! The leaf hashes of committed state are also kept in memory, in key order, after the first
//! commit (about key size + 32 bytes per entry): a block's new root is then a merge of its
//! updates into that index and a Merkle pass, on a second thread while its inserts run. The
//! index is replaced only after a durable commit and reloaded from the table after a failed
//! one, so it always mirrors committed state.
//!
//! Reads for execution go through [`RedbStore::snapshot`]: one redb read transaction (an MVCC
//! snapshot) shared by all workers of a block, unaffected by concurrent commits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadOnlyTable, ReadableTable, TableDefinition};

use super::{
    check_height, leaf_hashes_of, leaf_updates, merge_leaves, CommitInfo, StateReader, StateStore,
    WriteSet,
};
use crate::error::{Result, VmStateError};
use crate::root::{Hash32, StateHasher};
use crate::types::{StateKey, StateValue};

const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const META_FORMAT: &str = "format";
const META_HEIGHT: &str = "height";
const META_ROOT: &str = "root";
/// The on-disk layout this code reads and writes.
const FORMAT: u8 = 2;

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

/// [`StateStore`] on an embedded redb database.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    /// The leaf hashes of committed state in key order, kept in memory after the first
    /// commit so the next state root is computed (merge + Merkle pass, on a second thread)
    /// while the block's inserts run, instead of scanning the table after them. `None`
    /// until loaded, and after a failed commit (reloaded from the database).
    leaves: parking_lot::Mutex<Option<LeafIndex>>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
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
    let height = match meta.get(META_HEIGHT)? {
        None => return Ok(None),
        Some(h) => {
            let b: [u8; 8] = h
                .value()
                .try_into()
                .map_err(|_| VmStateError::Corrupt("height is not 8 bytes".into()))?;
            u64::from_le_bytes(b)
        }
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

impl RedbStore {
    /// Opens (or creates) the database at `path`. Opening an existing file is the restart
    /// path: the store is at its last committed block.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let db = Database::create(&path)?;
        // Create the tables once so read transactions always find them.
        let wtx = db.begin_write()?;
        {
            wtx.open_table(STATE)?;
            let mut meta = wtx.open_table(META)?;
            let format = meta.get(META_FORMAT)?.map(|v| v.value().to_vec());
            match format.as_deref() {
                Some([FORMAT]) => {}
                None if meta.get(META_HEIGHT)?.is_none() => {
                    meta.insert(META_FORMAT, &[FORMAT][..])?;
                }
                other => {
                    return Err(VmStateError::Database(format!(
                        "{} holds state format {} (this build reads format {FORMAT}); \
                         re-import the chain into a new data directory",
                        path.display(),
                        other.map_or("1".to_string(), |f| format!("{f:?}"))
                    )))
                }
            }
        }
        wtx.commit()?;
        Ok(Self {
            db,
            path,
            leaves: parking_lot::Mutex::new(None),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A consistent snapshot of the latest committed state (concrete type of
    /// [`StateStore::snapshot`]).
    pub fn redb_snapshot(&self) -> Result<RedbSnapshot> {
        let rtx = self.db.begin_read()?;
        Ok(RedbSnapshot {
            table: rtx.open_table(STATE)?,
        })
    }

    /// Number of live entries.
    pub fn len(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        Ok(self.db.begin_read()?.open_table(STATE)?.len()?)
    }

    /// Whether the state is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    fn commit_inner(
        &self,
        height: u64,
        write_set: &WriteSet,
        hasher: &dyn StateHasher,
        crash_before_commit: bool,
    ) -> Result<CommitInfo> {
        self.commit_group(&[(height, write_set)], hasher, crash_before_commit)?
            .pop()
            .ok_or_else(|| VmStateError::Invariant("a commit returned no result".into()))
    }

    /// Commits consecutive blocks in ONE write transaction: each key written once with its
    /// value from the last block that wrote it (a single block: every write), every block's
    /// state root computed in order from the in-memory leaf index on a second thread while
    /// this one inserts, the last height and root, one durable commit.
    fn commit_group(
        &self,
        blocks: &[(u64, &WriteSet)],
        hasher: &dyn StateHasher,
        crash_before_commit: bool,
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
        let t0 = std::time::Instant::now();
        let mut phases = [0u128; 3];
        let n_leaves: usize;
        // Taken out for the commit; put back only once it is durable.
        let cached = self.leaves.lock().take();
        let wtx = self.db.begin_write()?;
        let (infos, index) = {
            let mut meta = wtx.open_table(META)?;
            check_height(read_latest(&meta)?, first)?;
            let updates: Vec<_> = blocks
                .iter()
                .map(|(_, ws)| leaf_updates(ws, hasher))
                .collect::<Result<_>>()?;
            phases[0] = t0.elapsed().as_micros();
            let mut state = wtx.open_table(STATE)?;
            let index = match cached {
                Some(index) => index,
                None => scan_leaves(&state)?.collect::<Result<_>>()?,
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
            let (inserted, rooted) = std::thread::scope(|s| {
                let root_job = s.spawn(|| -> Result<(LeafIndex, Vec<Hash32>)> {
                    let mut index = index;
                    let mut roots = Vec::with_capacity(updates.len());
                    for u in &updates {
                        index = merge_leaves(index.into_iter().map(Ok), u)?;
                        roots.push(hasher.merkle_root(&leaf_hashes_of(&index)));
                    }
                    Ok((index, roots))
                });
                let inserted = (|| -> Result<()> {
                    let mut entry = Vec::new();
                    for (j, &(key, b, i)) in all.iter().enumerate() {
                        if all.get(j + 1).is_some_and(|next| next.0 == key) {
                            continue;
                        }
                        match (&blocks[b].1.as_slice()[i].1, updates[b][i].1) {
                            (Some(v), Some(h)) => {
                                entry.clear();
                                entry.extend_from_slice(&h);
                                entry.extend_from_slice(v);
                                state.insert(key.as_bytes(), &entry[..])?;
                            }
                            _ => {
                                state.remove(key.as_bytes())?;
                            }
                        }
                    }
                    Ok(())
                })();
                phases[1] = t0.elapsed().as_micros();
                (inserted, root_job.join())
            });
            inserted?;
            let (index, roots) = rooted
                .map_err(|_| VmStateError::Invariant("the state-root thread panicked".into()))??;
            n_leaves = index.len();
            let infos: Vec<CommitInfo> = blocks
                .iter()
                .zip(roots)
                .map(|(&(height, _), state_root)| CommitInfo { height, state_root })
                .collect();
            if let Some(last) = infos.last() {
                meta.insert(META_HEIGHT, &last.height.to_le_bytes()[..])?;
                meta.insert(META_ROOT, &last.state_root[..])?;
            }
            (infos, index)
        };
        if crash_before_commit {
            // Everything is written into the transaction; dropping it here is what a crash
            // before the commit point does: redb discards it.
            drop(wtx);
            return Err(VmStateError::Database(
                "simulated crash before commit".into(),
            ));
        }
        phases[2] = t0.elapsed().as_micros();
        wtx.commit()?;
        *self.leaves.lock() = Some(index);
        tracing::debug!(
            target: "supervm::commit",
            first,
            blocks = blocks.len(),
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
        self.commit_inner(height, write_set, hasher, true)
    }
}

impl StateReader for RedbStore {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>> {
        self.redb_snapshot()?.get(key)
    }
}

impl StateStore for RedbStore {
    fn latest(&self) -> Result<Option<CommitInfo>> {
        let rtx = self.db.begin_read()?;
        read_latest(&rtx.open_table(META)?)
    }

    fn snapshot(&self) -> Result<Arc<dyn StateReader>> {
        Ok(Arc::new(self.redb_snapshot()?))
    }

    fn preview_root(&self, write_set: &WriteSet, hasher: &dyn StateHasher) -> Result<Hash32> {
        let rtx = self.db.begin_read()?;
        let state = rtx.open_table(STATE)?;
        let updates = leaf_updates(write_set, hasher)?;
        let all: LeafIndex = merge_leaves(scan_leaves(&state)?, &updates)?;
        Ok(hasher.merkle_root(&leaf_hashes_of(&all)))
    }

    fn commit_block(
        &self,
        height: u64,
        write_set: &WriteSet,
        hasher: &dyn StateHasher,
    ) -> Result<CommitInfo> {
        self.commit_inner(height, write_set, hasher, false)
    }

    /// One write transaction for all of `blocks` (see `commit_group`).
    fn commit_blocks(
        &self,
        blocks: &[(u64, &WriteSet)],
        hasher: &dyn StateHasher,
    ) -> Result<Vec<CommitInfo>> {
        self.commit_group(blocks, hasher, false)
    }

    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<(StateKey, StateValue)>> {
        let rtx = self.db.begin_read()?;
        let state = rtx.open_table(STATE)?;
        let mut out = Vec::new();
        for item in state.range::<&[u8]>(prefix..)? {
            if out.len() >= limit {
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
        Ok(out)
    }
}

/// A read-only snapshot of a [`RedbStore`] (one redb read transaction).
pub struct RedbSnapshot {
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl StateReader for RedbSnapshot {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>> {
        match self.table.get(key.as_bytes())? {
            None => Ok(None),
            Some(v) => Ok(Some(Arc::from(split_entry(v.value())?.1))),
        }
    }
}
