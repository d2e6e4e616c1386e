//! Committed state: what blocks read from and commit to.
//!
//! - [`StateReader`]: read-only access to committed state (`Send + Sync`; the parallel
//!   executor reads it from every worker at once).
//! - [`StateStore`]: a reader plus the latest committed height and state root, atomic
//!   per-block commits ([`StateStore::commit_block`]), consistent snapshots for executing the
//!   next block, and prefix scans for tooling.
//! - [`MemoryStore`] (tests, tools) and [`RedbStore`] (the embedded database) behave the same;
//!   tests check that.
//!
//! Heights: a fresh store has no committed block (`latest() == None`); the first commit must
//! be height 0 (genesis) and each next one exactly the previous height + 1.
//!
//! Every store keeps each live key's leaf hash (`crate::root`) beside its value, so a commit
//! hashes only the entries the block wrote and then runs the Merkle pass over all leaf hashes
//! in key order.

mod memory;
mod redb_store;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use memory::MemoryStore;
pub use redb_store::{shard_of, CrashPoint, RedbSnapshot, RedbStore, MAX_SHARDS};

use crate::error::{Result, VmStateError};
use crate::root::{Hash32, StateHasher};
use crate::types::{StateKey, StateValue};

pub use crate::write_set::WriteSet;

/// Read-only access to committed state.
pub trait StateReader: Send + Sync {
    /// The committed value of `key`, `None` if absent.
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>>;
}

/// The height and state root of a committed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommitInfo {
    pub height: u64,
    pub state_root: Hash32,
}

/// Committed state with atomic per-block commits.
pub trait StateStore: StateReader {
    /// The last committed block, `None` for a fresh store.
    fn latest(&self) -> Result<Option<CommitInfo>>;

    /// The height the next commit must have (0 for a fresh store).
    fn next_height(&self) -> Result<u64> {
        next_height_after(self.latest()?)
    }

    /// A consistent read-only view of the latest committed state, unaffected by later
    /// commits (execute a block against this).
    fn snapshot(&self) -> Result<Arc<dyn StateReader>>;

    /// The state root the store would have after committing `write_set` (nothing is
    /// written).
    fn preview_root(&self, write_set: &WriteSet, hasher: &dyn StateHasher) -> Result<Hash32>;

    /// Applies `write_set` as block `height` and stores the new height and state root, all in
    /// one atomic step: after a crash the store is at the previous block or at this one, never
    /// in between. `height` must be [`StateStore::next_height`], else
    /// [`VmStateError::WrongHeight`] and nothing changes.
    fn commit_block(
        &self,
        height: u64,
        write_set: &WriteSet,
        hasher: &dyn StateHasher,
    ) -> Result<CommitInfo>;

    /// Commits consecutive blocks (`blocks[0].0` must be [`StateStore::next_height`]) and
    /// returns each one's [`CommitInfo`]. After a crash the store is at one of the blocks'
    /// boundaries. The default commits them one by one; [`RedbStore`] writes them in one
    /// transaction (each key once, one durable commit), so a committer that fell behind
    /// catches up with fewer writes.
    fn commit_blocks(
        &self,
        blocks: &[(u64, &WriteSet)],
        hasher: &dyn StateHasher,
    ) -> Result<Vec<CommitInfo>> {
        blocks
            .iter()
            .map(|&(height, ws)| self.commit_block(height, ws, hasher))
            .collect()
    }

    /// Up to `limit` live entries whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<(StateKey, StateValue)>>;
}

pub(crate) fn next_height_after(latest: Option<CommitInfo>) -> Result<u64> {
    match latest {
        None => Ok(0),
        Some(c) => c
            .height
            .checked_add(1)
            .ok_or_else(|| VmStateError::Corrupt("height overflow".into())),
    }
}

pub(crate) fn check_height(latest: Option<CommitInfo>, height: u64) -> Result<()> {
    let expected = next_height_after(latest)?;
    if height != expected {
        return Err(VmStateError::WrongHeight {
            expected,
            got: height,
        });
    }
    Ok(())
}

/// Leaf hash of every live entry of the write set (`None` for deletions), in key order,
/// hashed in one batch.
pub(crate) fn leaf_updates<'a>(
    write_set: &'a WriteSet,
    hasher: &dyn StateHasher,
) -> Result<Vec<(&'a StateKey, Option<Hash32>)>> {
    let live: Vec<(&[u8], &[u8])> = write_set
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.as_bytes(), &v[..])))
        .collect();
    let hashes = hasher.leaf_hashes(&live);
    if hashes.len() != live.len() {
        return Err(VmStateError::Invariant(format!(
            "state hasher returned {} leaf hashes for {} entries",
            hashes.len(),
            live.len()
        )));
    }
    let mut it = hashes.into_iter();
    Ok(write_set
        .iter()
        .map(|(k, v)| (k, if v.is_some() { it.next() } else { None }))
        .collect())
}

/// Merges the existing leaves (key and leaf hash, in key order) with updates (in key order)
/// into the leaves of the new state, keys included (`K` is whatever key type the caller
/// keeps; an updated key is made from its bytes).
pub(crate) fn merge_leaves<K, I>(
    existing: I,
    updates: &[(&StateKey, Option<Hash32>)],
) -> Result<Vec<(K, Hash32)>>
where
    K: AsRef<[u8]> + for<'a> From<&'a [u8]>,
    I: Iterator<Item = Result<(K, Hash32)>>,
{
    let (lower, _) = existing.size_hint();
    let mut out: Vec<(K, Hash32)> = Vec::with_capacity(lower + updates.len());
    let mut ups = updates.iter().peekable();
    let new = |(uk, uh): &(&StateKey, Option<Hash32>)| uh.map(|h| (K::from(uk.as_bytes()), h));
    for item in existing {
        let (k, h) = item?;
        while let Some(u) = ups.next_if(|(uk, _)| uk.as_bytes() < k.as_ref()) {
            out.extend(new(u));
        }
        match ups.next_if(|(uk, _)| uk.as_bytes() == k.as_ref()) {
            Some((_, Some(nh))) => out.push((k, *nh)),
            Some((_, None)) => {}
            None => out.push((k, h)),
        }
    }
    out.extend(ups.filter_map(new));
    Ok(out)
}

/// The leaf hashes of merged leaves, in order.
pub(crate) fn leaf_hashes_of<K>(leaves: &[(K, Hash32)]) -> Vec<Hash32> {
    leaves.iter().map(|(_, h)| *h).collect()
}

impl<T: StateReader + ?Sized> StateReader for Arc<T> {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>> {
        (**self).get(key)
    }
}

impl<T: StateReader + ?Sized> StateReader for &T {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>> {
        (**self).get(key)
    }
}

impl StateReader for BTreeMap<StateKey, StateValue> {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>> {
        Ok(BTreeMap::get(self, key).cloned())
    }
}

impl<S: std::hash::BuildHasher + Send + Sync> StateReader for HashMap<StateKey, StateValue, S> {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>> {
        Ok(HashMap::get(self, key).cloned())
    }
}

/// Committed state with nothing in it.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmptyState;

impl StateReader for EmptyState {
    fn get(&self, _key: &StateKey) -> Result<Option<StateValue>> {
        Ok(None)
    }
}
