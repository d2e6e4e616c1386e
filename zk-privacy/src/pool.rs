//! The privacy pool's state rules, over an abstract key-value view.
//!
//! The node stores the pool under `StateKey::privacy(sub_key)`; this module only sees the
//! sub-keys through [`PrivacyState`], so it does not depend on `vm-state`. Keys:
//!
//! | sub-key | value |
//! |---|---|
//! | `"meta"` | `leaf_count: u64 LE` ‖ `root_seq: u64 LE` (absent: empty tree, seq 0) |
//! | `"frontier" ‖ level: u8` | 32-byte Fr, the tree frontier at that height |
//! | `"root" ‖ seq: u64 LE` | 32-byte Fr, the root with that sequence number |
//! | `"rootseq" ‖ root (32 B)` | `seq: u64 LE`, the latest sequence number of that root |
//! | `"nf" ‖ nullifier (32 B)` | `[1]`: the nullifier has been spent |
//!
//! Roots get sequence numbers 0 (the empty tree), 1, 2, ... as commitments are appended.
//! A root is *recent* while its sequence number is among the last `recent_roots` (K) ones;
//! older root entries are deleted as new ones arrive.
//!
//! A transfer has two halves:
//! - [`PrivacyPool::spend`] checks the root and the nullifiers and records the nullifiers.
//!   It reads everything first and only then writes, so a rejected transfer writes nothing
//!   and a view that does not show a transaction its own writes (MVCC) is fine. Two
//!   transfers spending the same note, in one block or in two, reveal the same nullifier:
//!   the later one (in block order) is rejected with [`Rejection::NullifierSpent`].
//! - [`PrivacyPool::append_commitments`] appends output commitments and records one new
//!   root. The node calls it once per block, after execution, with the commitments of the
//!   block's accepted transfers in block order, so transfers of one block never wait on
//!   each other's tree updates (roots are per block, as Zcash anchors are).
//!
//! [`PrivacyPool::apply_transfer`] does both for one transfer (tools and tests).

use ark_bn254::Fr;

use crate::error::{Result, ZkError};
use crate::transfer::{decode_fr, encode_fr, TransferPublicInputs};
use crate::tree::{check_depth, empty_roots, Frontier, DEFAULT_DEPTH};

/// The node's view of the privacy sub-keyspace (implemented on top of its `StateView`).
pub trait PrivacyState {
    /// The view's read error (e.g. a Block-STM dependency); passed through unchanged.
    type Error;
    /// Reads a sub-key.
    fn read(&mut self, sub_key: &[u8]) -> std::result::Result<Option<Vec<u8>>, Self::Error>;
    /// Writes (`Some`) or deletes (`None`) a sub-key.
    fn write(&mut self, sub_key: Vec<u8>, value: Option<Vec<u8>>);
}

/// Why a transfer was rejected by the state rules (proof validity is checked before).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("root is not one of the last {0} roots of the note-commitment tree")]
    UnknownRoot(usize),
    #[error("nullifier {0} has already been spent")]
    NullifierSpent(String),
    #[error("the transfer reveals the same nullifier twice")]
    DuplicateNullifier,
    #[error("the note-commitment tree of depth {0} is full")]
    TreeFull(usize),
    #[error("corrupt privacy-pool state: {0}")]
    CorruptState(String),
}

/// What an accepted transfer changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedTransfer {
    /// Leaf positions of the two new commitments.
    pub positions: [u64; 2],
    /// The tree root after the append (now the most recent root).
    pub new_root: Fr,
    /// Its sequence number.
    pub root_seq: u64,
}

/// Pool parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivacyPool {
    depth: usize,
    recent_roots: usize,
    zeros: Vec<Fr>,
}

/// Default number of recent roots accepted (K).
pub const DEFAULT_RECENT_ROOTS: usize = 100;

impl Default for PrivacyPool {
    fn default() -> Self {
        Self {
            depth: DEFAULT_DEPTH,
            recent_roots: DEFAULT_RECENT_ROOTS,
            zeros: empty_roots(DEFAULT_DEPTH),
        }
    }
}

fn key(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + rest.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(rest);
    k
}

/// Sub-key of a spent nullifier.
pub fn nullifier_key(nf: &Fr) -> Vec<u8> {
    key(b"nf", &encode_fr(nf))
}
fn root_key(seq: u64) -> Vec<u8> {
    key(b"root", &seq.to_le_bytes())
}
fn root_seq_key(root: &Fr) -> Vec<u8> {
    key(b"rootseq", &encode_fr(root))
}
fn frontier_key(level: usize) -> Vec<u8> {
    key(b"frontier", &[level as u8])
}
const META_KEY: &[u8] = b"meta";

fn corrupt(what: impl ToString) -> Rejection {
    Rejection::CorruptState(what.to_string())
}

fn read_u64(bytes: &[u8], what: &str) -> std::result::Result<u64, Rejection> {
    let b: [u8; 8] = bytes
        .try_into()
        .map_err(|_| corrupt(format!("{what}: {} bytes", bytes.len())))?;
    Ok(u64::from_le_bytes(b))
}

impl PrivacyPool {
    /// A pool with a tree of `depth` accepting the last `recent_roots` roots.
    pub fn new(depth: usize, recent_roots: usize) -> Result<Self> {
        check_depth(depth)?;
        if recent_roots == 0 {
            return Err(ZkError::Config("recent_roots must be at least 1".into()));
        }
        Ok(Self {
            depth,
            recent_roots,
            zeros: empty_roots(depth),
        })
    }
    pub fn depth(&self) -> usize {
        self.depth
    }
    pub fn recent_roots(&self) -> usize {
        self.recent_roots
    }

    fn read_meta<S: PrivacyState>(
        &self,
        state: &mut S,
    ) -> std::result::Result<std::result::Result<(u64, u64), Rejection>, S::Error> {
        Ok(match state.read(META_KEY)? {
            None => Ok((0, 0)),
            Some(v) if v.len() == 16 => Ok((
                u64::from_le_bytes(v[..8].try_into().unwrap_or([0; 8])),
                u64::from_le_bytes(v[8..].try_into().unwrap_or([0; 8])),
            )),
            Some(v) => Err(corrupt(format!("meta of {} bytes", v.len()))),
        })
    }

    /// The number of note commitments in the tree (0 before any transfer).
    pub fn leaf_count<S: PrivacyState>(
        &self,
        state: &mut S,
    ) -> std::result::Result<std::result::Result<u64, Rejection>, S::Error> {
        Ok(self.read_meta(state)?.map(|(count, _)| count))
    }

    /// How many more transfers (two notes each) the tree can take after `leaves` notes.
    pub fn transfers_left(&self, leaves: u64) -> u64 {
        (1u64 << self.depth.min(63)).saturating_sub(leaves) / 2
    }

    /// The current root (the empty tree's root before any transfer).
    pub fn current_root<S: PrivacyState>(
        &self,
        state: &mut S,
    ) -> std::result::Result<std::result::Result<Fr, Rejection>, S::Error> {
        let (_, seq) = match self.read_meta(state)? {
            Ok(m) => m,
            Err(r) => return Ok(Err(r)),
        };
        if seq == 0 {
            return Ok(Ok(self.zeros[self.depth]));
        }
        Ok(match state.read(&root_key(seq))? {
            Some(b) => decode_fr(&b, "root").map_err(corrupt),
            None => Err(corrupt(format!("missing root #{seq}"))),
        })
    }

    /// Whether `root` is among the last K roots.
    pub fn is_recent_root<S: PrivacyState>(
        &self,
        state: &mut S,
        root: &Fr,
    ) -> std::result::Result<std::result::Result<bool, Rejection>, S::Error> {
        let (_, current) = match self.read_meta(state)? {
            Ok(m) => m,
            Err(r) => return Ok(Err(r)),
        };
        let seq = if *root == self.zeros[self.depth] && state.read(&root_seq_key(root))?.is_none() {
            Some(0)
        } else {
            match state.read(&root_seq_key(root))? {
                Some(b) => match read_u64(&b, "root sequence") {
                    Ok(s) => Some(s),
                    Err(r) => return Ok(Err(r)),
                },
                None => None,
            }
        };
        Ok(Ok(match seq {
            Some(s) => s <= current && current - s < self.recent_roots as u64,
            None => false,
        }))
    }

    /// Whether a nullifier has been spent.
    pub fn is_spent<S: PrivacyState>(
        &self,
        state: &mut S,
        nf: &Fr,
    ) -> std::result::Result<bool, S::Error> {
        Ok(state.read(&nullifier_key(nf))?.is_some())
    }

    /// Checks a transfer's spend against the state (distinct nullifiers, a recent root,
    /// unspent nullifiers) and, if it passes, records its nullifiers. It reads no tree
    /// frontier and writes no root, so transfers of one block do not depend on each other
    /// unless they reveal the same nullifier: the node appends the block's commitments
    /// afterwards, in one [`PrivacyPool::append_commitments`]. A rejection writes nothing.
    pub fn spend<S: PrivacyState>(
        &self,
        state: &mut S,
        public: &TransferPublicInputs,
    ) -> std::result::Result<std::result::Result<(), Rejection>, S::Error> {
        if public.nullifiers[0] == public.nullifiers[1] {
            return Ok(Err(Rejection::DuplicateNullifier));
        }
        match self.is_recent_root(state, &public.root)? {
            Ok(true) => {}
            Ok(false) => return Ok(Err(Rejection::UnknownRoot(self.recent_roots))),
            Err(r) => return Ok(Err(r)),
        }
        for nf in &public.nullifiers {
            if self.is_spent(state, nf)? {
                return Ok(Err(Rejection::NullifierSpent(hex::encode(encode_fr(nf)))));
            }
        }
        for nf in &public.nullifiers {
            state.write(nullifier_key(nf), Some(vec![1]));
        }
        Ok(Ok(()))
    }

    /// Appends `commitments` to the tree in order (positions `count..count + n`) and
    /// records the new root with the next sequence number (deleting the root that leaves
    /// the window of recent roots): one root per call, however many commitments. Hashing
    /// takes about `2n + depth` Poseidon calls, level by level in parallel
    /// ([`Frontier::append_batch`]). `Ok(Ok(None))` for no commitments (nothing written);
    /// [`Rejection::TreeFull`] when they do not all fit (nothing written).
    pub fn append_commitments<S: PrivacyState>(
        &self,
        state: &mut S,
        commitments: &[Fr],
    ) -> std::result::Result<std::result::Result<Option<AppendedNotes>, Rejection>, S::Error> {
        if commitments.is_empty() {
            return Ok(Ok(None));
        }
        let (count, seq) = match self.read_meta(state)? {
            Ok(m) => m,
            Err(r) => return Ok(Err(r)),
        };
        if u128::from(count) + commitments.len() as u128 > 1u128 << self.depth {
            return Ok(Err(Rejection::TreeFull(self.depth)));
        }
        let mut frontier = Frontier {
            depth: self.depth,
            count,
            filled: Vec::with_capacity(self.depth),
        };
        for level in 0..self.depth {
            match state.read(&frontier_key(level))? {
                Some(b) => match decode_fr(&b, "frontier") {
                    Ok(x) => frontier.filled.push(x),
                    Err(e) => return Ok(Err(corrupt(e))),
                },
                None => frontier.filled.push(self.zeros[level]),
            }
        }
        let old_seq_to_drop = (seq + 1).checked_sub(self.recent_roots as u64);
        let old_root = match old_seq_to_drop {
            Some(s) if s > 0 => state.read(&root_key(s))?,
            _ => None,
        };
        let before = frontier.filled.clone();
        let new_root = match frontier.append_batch(commitments, &self.zeros) {
            Ok(r) => r,
            Err(_) => return Ok(Err(Rejection::TreeFull(self.depth))),
        };
        let new_seq = seq + 1;
        for (level, (old, new)) in before.iter().zip(&frontier.filled).enumerate() {
            if old != new {
                state.write(frontier_key(level), Some(encode_fr(new).to_vec()));
            }
        }
        let mut meta = Vec::with_capacity(16);
        meta.extend_from_slice(&frontier.count.to_le_bytes());
        meta.extend_from_slice(&new_seq.to_le_bytes());
        state.write(META_KEY.to_vec(), Some(meta));
        state.write(root_key(new_seq), Some(encode_fr(&new_root).to_vec()));
        if let (Some(s), Some(old)) = (old_seq_to_drop, old_root) {
            // The root with sequence `s` leaves the window of recent roots.
            state.write(root_key(s), None);
            if let Ok(r) = decode_fr(&old, "root") {
                if r != new_root {
                    state.write(root_seq_key(&r), None);
                }
            }
        }
        state.write(
            root_seq_key(&new_root),
            Some(new_seq.to_le_bytes().to_vec()),
        );
        Ok(Ok(Some(AppendedNotes {
            first_position: count,
            count: commitments.len() as u64,
            new_root,
            root_seq: new_seq,
        })))
    }

    /// One transfer applied on its own: [`PrivacyPool::spend`], then its two commitments
    /// appended with a root of their own (wallet tools and tests; the node spends during
    /// execution and appends once per block). All reads happen before any write reaches
    /// `state`, and a rejection writes nothing. The proof must have been verified before.
    pub fn apply_transfer<S: PrivacyState>(
        &self,
        state: &mut S,
        public: &TransferPublicInputs,
    ) -> std::result::Result<std::result::Result<AppliedTransfer, Rejection>, S::Error> {
        let mut buf = Buffered::new(state);
        if let Err(r) = self.spend(&mut buf, public)? {
            return Ok(Err(r));
        }
        let appended = match self.append_commitments(&mut buf, &public.commitments)? {
            Ok(Some(a)) => a,
            Ok(None) => return Ok(Err(corrupt("a transfer without commitments"))),
            Err(r) => return Ok(Err(r)),
        };
        buf.apply();
        Ok(Ok(AppliedTransfer {
            positions: [appended.first_position, appended.first_position + 1],
            new_root: appended.new_root,
            root_seq: appended.root_seq,
        }))
    }
}

/// What [`PrivacyPool::append_commitments`] changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendedNotes {
    /// Position of the first commitment; the others follow in order.
    pub first_position: u64,
    /// Number of commitments appended.
    pub count: u64,
    /// The tree root after the append (now the most recent root).
    pub new_root: Fr,
    /// Its sequence number.
    pub root_seq: u64,
}

/// A state with writes held back (read-your-writes) until the caller applies them: what a
/// transfer writes reaches the underlying state only if it is accepted.
pub struct Buffered<'a, S> {
    inner: &'a mut S,
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl<'a, S: PrivacyState> Buffered<'a, S> {
    /// Buffers the writes made through it over `inner`.
    pub fn new(inner: &'a mut S) -> Self {
        Self {
            inner,
            writes: Vec::new(),
        }
    }

    /// The buffered writes, in the order made (a later write of a sub-key wins); `inner` is
    /// left untouched.
    pub fn into_writes(self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.writes
    }

    /// Applies the buffered writes to `inner`, in order.
    pub fn apply(self) {
        for (k, v) in self.writes {
            self.inner.write(k, v);
        }
    }
}

impl<S: PrivacyState> PrivacyState for Buffered<'_, S> {
    type Error = S::Error;
    fn read(&mut self, sub_key: &[u8]) -> std::result::Result<Option<Vec<u8>>, Self::Error> {
        if let Some((_, v)) = self.writes.iter().rev().find(|(k, _)| k == sub_key) {
            return Ok(v.clone());
        }
        self.inner.read(sub_key)
    }
    fn write(&mut self, sub_key: Vec<u8>, value: Option<Vec<u8>>) {
        self.writes.push((sub_key, value));
    }
}

/// An in-memory [`PrivacyState`] (tests, tools, the node's reference model).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryPrivacyState {
    pub map: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
}

impl PrivacyState for MemoryPrivacyState {
    type Error = std::convert::Infallible;
    fn read(&mut self, sub_key: &[u8]) -> std::result::Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.map.get(sub_key).cloned())
    }
    fn write(&mut self, sub_key: Vec<u8>, value: Option<Vec<u8>>) {
        match value {
            Some(v) => {
                self.map.insert(sub_key, v);
            }
            None => {
                self.map.remove(&sub_key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::NoteTree;

    fn public(root: Fr, k: u64) -> TransferPublicInputs {
        TransferPublicInputs {
            root,
            nullifiers: [Fr::from(10 * k + 1), Fr::from(10 * k + 2)],
            commitments: [Fr::from(10 * k + 3), Fr::from(10 * k + 4)],
            fee: 0,
        }
    }

    /// A block of spends followed by one batch append gives the tree of the same commitments
    /// appended one by one, one new root per block, and a block that overflows writes
    /// nothing.
    #[test]
    fn spends_then_one_append_per_block() {
        let depth = 4;
        let pool = PrivacyPool::new(depth, 3).unwrap();
        let mut state = MemoryPrivacyState::default();
        let mut tree = NoteTree::new(depth).unwrap();
        let mut k = 0u64;
        let mut block_roots = vec![tree.root()];
        for (block, transfers) in [3u64, 1, 2].into_iter().enumerate() {
            let anchor = pool.current_root(&mut state).unwrap().unwrap();
            assert_eq!(anchor, tree.root());
            let mut cms = Vec::new();
            for _ in 0..transfers {
                let p = public(anchor, k);
                pool.spend(&mut state, &p).unwrap().unwrap();
                // The same nullifiers again in the block: spent.
                assert!(matches!(
                    pool.spend(&mut state, &p).unwrap(),
                    Err(Rejection::NullifierSpent(_))
                ));
                cms.extend_from_slice(&p.commitments);
                k += 1;
            }
            let before = tree.len();
            for c in &cms {
                tree.append(*c).unwrap();
            }
            let a = pool
                .append_commitments(&mut state, &cms)
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(a.first_position, before);
            assert_eq!(a.new_root, tree.root());
            assert_eq!(a.root_seq, block as u64 + 1);
            block_roots.push(tree.root());
        }
        // K = 3: the empty root (seq 0) has left the window, the last three are recent.
        for (seq, r) in block_roots.iter().enumerate() {
            let recent = pool.is_recent_root(&mut state, r).unwrap().unwrap();
            assert_eq!(recent, seq >= 1, "root #{seq}");
        }
        assert_eq!(pool.leaf_count(&mut state).unwrap().unwrap(), 12);
        // 12 of 16 leaves used: three more transfers do not fit; nothing is written.
        let before = state.clone();
        let cms: Vec<Fr> = (0..6).map(|i| Fr::from(500 + i)).collect();
        assert_eq!(
            pool.append_commitments(&mut state, &cms).unwrap(),
            Err(Rejection::TreeFull(depth))
        );
        assert_eq!(state, before);
        assert_eq!(pool.append_commitments(&mut state, &[]).unwrap(), Ok(None));
        assert_eq!(state, before);
        // apply_transfer (spend + append of its own) still works on top.
        let p = public(tree.root(), 99);
        let applied = pool.apply_transfer(&mut state, &p).unwrap().unwrap();
        tree.append(p.commitments[0]).unwrap();
        tree.append(p.commitments[1]).unwrap();
        assert_eq!(applied.positions, [12, 13]);
        assert_eq!(applied.new_root, tree.root());
    }
}
