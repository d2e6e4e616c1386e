//! The note-commitment tree: an append-only binary Merkle tree of fixed depth with Poseidon
//! nodes `H(left, right)` and empty leaves equal to 0 (an empty subtree of height `h` hashes
//! to `zeros[h]`, `zeros[0] = 0`, `zeros[h+1] = H(zeros[h], zeros[h])`).
//!
//! - [`NoteTree`] keeps every node: append, root, authentication path (wallets, tests, the
//!   `prove` tool).
//! - [`Frontier`] keeps only the rightmost filled subtree per level: append and root in
//!   O(depth) with `depth` stored values; it is what the node keeps in state.

use ark_bn254::Fr;
use ark_ff::Zero;

use crate::error::{Result, ZkError};
use crate::poseidon::hash_node;

/// Largest supported depth (positions are `u64`; proofs need `depth` Poseidon hashes).
pub const MAX_DEPTH: usize = 32;
/// Default depth of the note-commitment tree (2^20 notes).
pub const DEFAULT_DEPTH: usize = 20;

/// `zeros[h]` for `h` in `0..=depth`.
pub fn empty_roots(depth: usize) -> Vec<Fr> {
    let mut zeros = Vec::with_capacity(depth + 1);
    zeros.push(Fr::zero());
    for h in 0..depth {
        zeros.push(hash_node(zeros[h], zeros[h]));
    }
    zeros
}

/// The root of an empty tree of `depth`.
pub fn empty_root(depth: usize) -> Fr {
    empty_roots(depth)[depth]
}

pub(crate) fn check_depth(depth: usize) -> Result<()> {
    if depth == 0 || depth > MAX_DEPTH {
        return Err(ZkError::Config(format!(
            "tree depth {depth} outside 1..={MAX_DEPTH}"
        )));
    }
    Ok(())
}

/// An authentication path: the sibling at each level, leaf level first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerklePath {
    pub position: u64,
    pub siblings: Vec<Fr>,
}

impl MerklePath {
    /// The root this path leads to from `leaf`.
    pub fn root(&self, leaf: Fr) -> Fr {
        let mut cur = leaf;
        for (level, sib) in self.siblings.iter().enumerate() {
            cur = if (self.position >> level) & 1 == 1 {
                hash_node(*sib, cur)
            } else {
                hash_node(cur, *sib)
            };
        }
        cur
    }
}

/// A full note-commitment tree (all nodes kept).
#[derive(Clone, Debug)]
pub struct NoteTree {
    depth: usize,
    zeros: Vec<Fr>,
    /// `levels[0]` are the leaves, `levels[h]` the filled nodes at height `h`.
    levels: Vec<Vec<Fr>>,
}

impl NoteTree {
    pub fn new(depth: usize) -> Result<Self> {
        check_depth(depth)?;
        Ok(Self {
            depth,
            zeros: empty_roots(depth),
            levels: vec![Vec::new(); depth + 1],
        })
    }
    pub fn depth(&self) -> usize {
        self.depth
    }
    /// Number of leaves appended.
    pub fn len(&self) -> u64 {
        self.levels[0].len() as u64
    }
    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }
    fn node(&self, level: usize, index: usize) -> Fr {
        self.levels[level]
            .get(index)
            .copied()
            .unwrap_or(self.zeros[level])
    }
    /// Appends a commitment; returns its position.
    pub fn append(&mut self, leaf: Fr) -> Result<u64> {
        let pos = self.levels[0].len();
        if pos as u128 >= 1u128 << self.depth {
            return Err(ZkError::TreeFull { depth: self.depth });
        }
        self.levels[0].push(leaf);
        let mut index = pos;
        for level in 0..self.depth {
            let parent = index / 2;
            let h = hash_node(
                self.node(level, parent * 2),
                self.node(level, parent * 2 + 1),
            );
            let up = &mut self.levels[level + 1];
            if parent < up.len() {
                up[parent] = h;
            } else {
                up.push(h);
            }
            index = parent;
        }
        Ok(pos as u64)
    }
    /// The current root.
    pub fn root(&self) -> Fr {
        self.node(self.depth, 0)
    }
    /// The leaf at `position`.
    pub fn leaf(&self, position: u64) -> Option<Fr> {
        self.levels[0].get(usize::try_from(position).ok()?).copied()
    }
    /// The authentication path of the leaf at `position`.
    pub fn path(&self, position: u64) -> Result<MerklePath> {
        if position >= self.len() {
            return Err(ZkError::Witness(format!(
                "no leaf at position {position} (tree has {})",
                self.len()
            )));
        }
        let mut index = position as usize;
        let mut siblings = Vec::with_capacity(self.depth);
        for level in 0..self.depth {
            siblings.push(self.node(level, index ^ 1));
            index /= 2;
        }
        Ok(MerklePath { position, siblings })
    }
}

/// The append-only frontier of a tree: enough to append and compute the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontier {
    pub depth: usize,
    /// Number of leaves appended so far.
    pub count: u64,
    /// `filled[h]`: the last left child written at height `h` (meaningful where bit `h` of
    /// `count` is set).
    pub filled: Vec<Fr>,
}

impl Frontier {
    pub fn new(depth: usize) -> Result<Self> {
        check_depth(depth)?;
        Ok(Self {
            depth,
            count: 0,
            filled: empty_roots(depth)[..depth].to_vec(),
        })
    }
    fn check_shape(&self, zeros: &[Fr]) -> Result<()> {
        if zeros.len() < self.depth || self.filled.len() < self.depth {
            return Err(ZkError::Config(format!(
                "frontier of depth {} with {} empty roots and {} filled nodes",
                self.depth,
                zeros.len(),
                self.filled.len()
            )));
        }
        Ok(())
    }

    /// Appends `leaf` and returns the new root. `zeros` is [`empty_roots`]`(depth)`.
    pub fn append(&mut self, leaf: Fr, zeros: &[Fr]) -> Result<Fr> {
        if self.count as u128 >= 1u128 << self.depth {
            return Err(ZkError::TreeFull { depth: self.depth });
        }
        let index = self.count;
        let mut cur = leaf;
        self.check_shape(zeros)?;
        for (level, (zero, filled)) in zeros
            .iter()
            .zip(self.filled.iter_mut())
            .enumerate()
            .take(self.depth)
        {
            if (index >> level) & 1 == 0 {
                *filled = cur;
                cur = hash_node(cur, *zero);
            } else {
                cur = hash_node(*filled, cur);
            }
        }
        self.count += 1;
        Ok(cur)
    }

    /// Appends `leaves` in order and returns the new root: the same frontier and root as
    /// `leaves.len()` calls of [`Frontier::append`], with about `2 * leaves.len() + depth`
    /// hashes instead of `depth` per leaf, each level hashed in parallel (rayon) when it
    /// is wide enough. All or nothing: a batch that does not fit leaves `self` unchanged;
    /// an empty batch is an error (there is no new root).
    pub fn append_batch(&mut self, leaves: &[Fr], zeros: &[Fr]) -> Result<Fr> {
        /// Below this many parents a level is hashed on the calling thread.
        const PAR_MIN: usize = 64;
        self.check_shape(zeros)?;
        let n = leaves.len() as u128;
        if u128::from(self.count) + n > 1u128 << self.depth {
            return Err(ZkError::TreeFull { depth: self.depth });
        }
        if leaves.is_empty() {
            // The frontier keeps left children only, so it cannot give the root by itself.
            return Err(ZkError::Config("append_batch of no leaves".into()));
        }
        // `cur` holds the nodes `lo..=hi` of the current level (the last one may be partial:
        // missing leaves count as empty subtrees, as in `append`).
        let mut lo = self.count;
        let mut cur: Vec<Fr> = leaves.to_vec();
        for (&zero, filled) in zeros.iter().zip(self.filled.iter_mut()).take(self.depth) {
            let hi = lo + cur.len() as u64 - 1;
            let left_of_lo = *filled;
            // The frontier keeps the last left child written at this level.
            if hi.is_multiple_of(2) {
                *filled = cur[(hi - lo) as usize];
            } else if hi > lo {
                *filled = cur[(hi - 1 - lo) as usize];
            }
            let (plo, phi) = (lo / 2, hi / 2);
            let node = |i: u64| -> Fr {
                if i < lo {
                    left_of_lo
                } else if i > hi {
                    zero
                } else {
                    cur[(i - lo) as usize]
                }
            };
            let parent = |p: u64| hash_node(node(2 * p), node(2 * p + 1));
            let count = (phi - plo + 1) as usize;
            let next: Vec<Fr> = if count >= PAR_MIN {
                use rayon::prelude::*;
                (plo..=phi).into_par_iter().map(parent).collect()
            } else {
                (plo..=phi).map(parent).collect()
            };
            cur = next;
            lo = plo;
        }
        self.count += leaves.len() as u64;
        Ok(cur[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_paths_and_frontier_agree() {
        let depth = 5;
        let zeros = empty_roots(depth);
        let mut tree = NoteTree::new(depth).unwrap();
        let mut frontier = Frontier::new(depth).unwrap();
        assert_eq!(tree.root(), empty_root(depth));
        for i in 0..(1u64 << depth) {
            let leaf = Fr::from(i * 31 + 5);
            assert_eq!(tree.append(leaf).unwrap(), i);
            let root = frontier.append(leaf, &zeros).unwrap();
            assert_eq!(root, tree.root());
            for j in [0, i / 2, i] {
                let p = tree.path(j).unwrap();
                assert_eq!(p.root(tree.leaf(j).unwrap()), root);
            }
        }
        assert!(matches!(
            tree.append(Fr::from(1u64)),
            Err(ZkError::TreeFull { .. })
        ));
        assert!(frontier.append(Fr::from(1u64), &zeros).is_err());
        assert!(tree.path(1 << depth).is_err());
        assert!(NoteTree::new(0).is_err());
    }

    /// Batches of every size from every starting count equal one-by-one appends (frontier
    /// and root), up to a full tree; wide batches take the parallel path.
    #[test]
    fn append_batch_equals_appends() {
        for depth in [1usize, 2, 3, 5, 8] {
            let zeros = empty_roots(depth);
            let cap = 1u64 << depth;
            let starts: Vec<u64> = (0..cap.min(9)).chain([cap / 2, cap - 1]).collect();
            for start in starts {
                let mut one = Frontier::new(depth).unwrap();
                for i in 0..start {
                    one.append(Fr::from(i + 1), &zeros).unwrap();
                }
                for n in [1u64, 2, 3, 4, 7, 64, 129, 200] {
                    if start + n > cap {
                        continue;
                    }
                    let mut seq = one.clone();
                    let mut root = Fr::zero();
                    let leaves: Vec<Fr> = (0..n).map(|i| Fr::from(1000 + start * 7 + i)).collect();
                    for l in &leaves {
                        root = seq.append(*l, &zeros).unwrap();
                    }
                    let mut batch = one.clone();
                    assert_eq!(batch.append_batch(&leaves, &zeros).unwrap(), root);
                    assert_eq!(batch, seq, "depth {depth} start {start} n {n}");
                }
                let mut full = one.clone();
                let too_many: Vec<Fr> = (0..=cap - start).map(Fr::from).collect();
                assert!(matches!(
                    full.append_batch(&too_many, &zeros),
                    Err(ZkError::TreeFull { .. })
                ));
                assert_eq!(full, one, "a batch that does not fit changes nothing");
                assert!(full.append_batch(&[], &zeros).is_err());
            }
        }
    }
}
