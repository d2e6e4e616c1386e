//! [`MemoryStore`]: committed state in memory (tests and tools). Same behaviour as the redb
//! store, minus durability.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;

use super::{
    check_height, leaf_hashes_of, leaf_updates, merge_leaves, CommitInfo, StateReader, StateStore,
    WriteSet,
};
use crate::error::Result;
use crate::root::{Hash32, StateHasher};
use crate::types::{StateKey, StateValue};

#[derive(Debug, Default)]
struct Inner {
    /// Shared with snapshots; copied on the first commit after a snapshot was taken.
    state: Arc<BTreeMap<StateKey, StateValue>>,
    leaves: BTreeMap<StateKey, Hash32>,
    latest: Option<CommitInfo>,
}

/// In-memory [`StateStore`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.inner.read().state.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StateReader for MemoryStore {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>> {
        Ok(BTreeMap::get(&self.inner.read().state, key).cloned())
    }
}

impl StateStore for MemoryStore {
    fn latest(&self) -> Result<Option<CommitInfo>> {
        Ok(self.inner.read().latest)
    }

    fn snapshot(&self) -> Result<Arc<dyn StateReader>> {
        Ok(self.inner.read().state.clone())
    }

    fn preview_root(&self, write_set: &WriteSet, hasher: &dyn StateHasher) -> Result<Hash32> {
        let inner = self.inner.read();
        let updates = leaf_updates(write_set, hasher)?;
        let leaves: Vec<(Vec<u8>, Hash32)> = merge_leaves(
            inner.leaves.iter().map(|(k, h)| Ok((k.0.clone(), *h))),
            &updates,
        )?;
        Ok(hasher.merkle_root(&leaf_hashes_of(&leaves)))
    }

    fn commit_block(
        &self,
        height: u64,
        write_set: &WriteSet,
        hasher: &dyn StateHasher,
    ) -> Result<CommitInfo> {
        let mut guard = self.inner.write();
        check_height(guard.latest, height)?;
        let updates = leaf_updates(write_set, hasher)?;
        // Everything that can fail ran above: from here on the commit cannot stop half-way.
        let inner = &mut *guard;
        let state = Arc::make_mut(&mut inner.state);
        for ((key, value), (_, leaf)) in write_set.iter().zip(&updates) {
            match (value, leaf) {
                (Some(v), Some(h)) => {
                    state.insert(key.clone(), v.clone());
                    inner.leaves.insert(key.clone(), *h);
                }
                _ => {
                    state.remove(key);
                    inner.leaves.remove(key);
                }
            }
        }
        let leaves: Vec<Hash32> = inner.leaves.values().copied().collect();
        let info = CommitInfo {
            height,
            state_root: hasher.merkle_root(&leaves),
        };
        inner.latest = Some(info);
        Ok(info)
    }

    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<(StateKey, StateValue)>> {
        let inner = self.inner.read();
        let start = StateKey(prefix.to_vec());
        Ok(inner
            .state
            .range((Bound::Included(&start), Bound::Unbounded))
            .take_while(|(k, _)| k.0.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
