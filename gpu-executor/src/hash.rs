//! Batch hashing and Merkle trees: the public types, the backend trait, and the CPU
//! reference (rayon on an explicit pool; `sha2` / `sha3`). The Merkle rule is
//! `docs/MERKLE.md`'s.

use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::error::{GpuError, Result};

/// A 32-byte digest.
pub type Digest = [u8; 32];

/// Which hash function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgo {
    /// SHA-256 (FIPS 180-4).
    Sha256,
    /// Keccak-256 as Ethereum uses it (original Keccak padding 0x01, not SHA3-256's 0x06).
    Keccak256,
}

impl HashAlgo {
    pub const ALL: [HashAlgo; 2] = [HashAlgo::Sha256, HashAlgo::Keccak256];
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Keccak256 => "keccak256",
        }
    }
    /// The `GpuConfig::min_batch` key of this algorithm's Merkle kernel.
    pub fn merkle_key(self) -> &'static str {
        match self {
            HashAlgo::Sha256 => "merkle-sha256",
            HashAlgo::Keccak256 => "merkle-keccak256",
        }
    }
    /// Hashes one message on the CPU.
    pub fn digest(self, msg: &[u8]) -> Digest {
        self.digest_parts(&[msg])
    }
    /// Hashes the concatenation of `parts` on the CPU.
    pub fn digest_parts(self, parts: &[&[u8]]) -> Digest {
        match self {
            HashAlgo::Sha256 => {
                let mut h = sha2::Sha256::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
            HashAlgo::Keccak256 => {
                let mut h = sha3::Keccak256::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
        }
    }
}

impl std::str::FromStr for HashAlgo {
    type Err = GpuError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "sha256" => Ok(HashAlgo::Sha256),
            "keccak256" | "keccak" => Ok(HashAlgo::Keccak256),
            other => Err(GpuError::Config(format!(
                "unknown hash `{other}` (expected sha256 or keccak256)"
            ))),
        }
    }
}

impl std::fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A batch of messages, borrowed. Either packed variable-length messages (`data` plus
/// `offsets`, message `i` is `data[offsets[i]..offsets[i + 1]]`) or `n` messages of one
/// fixed length laid out back to back (the 32- and 64-byte cases have fast kernels).
#[derive(Clone, Copy, Debug)]
pub enum Messages<'a> {
    Packed { data: &'a [u8], offsets: &'a [u64] },
    Fixed { data: &'a [u8], len: usize },
}

impl<'a> Messages<'a> {
    /// Packed messages; checks that offsets are non-decreasing and inside `data`.
    pub fn packed(data: &'a [u8], offsets: &'a [u64]) -> Result<Self> {
        if offsets.is_empty() {
            return Err(GpuError::InvalidInput(
                "offsets must have n + 1 entries (at least one)".into(),
            ));
        }
        if let Some(w) = offsets.windows(2).position(|w| w[0] > w[1]) {
            return Err(GpuError::InvalidInput(format!(
                "offsets decrease at message {w}"
            )));
        }
        let last = offsets[offsets.len() - 1];
        if last > data.len() as u64 {
            return Err(GpuError::InvalidInput(format!(
                "last offset {last} beyond {} data bytes",
                data.len()
            )));
        }
        Ok(Messages::Packed { data, offsets })
    }
    /// `data.len() / len` messages of `len` bytes each.
    pub fn fixed(data: &'a [u8], len: usize) -> Result<Self> {
        if len == 0 || data.len() / len * len != data.len() {
            return Err(GpuError::InvalidInput(format!(
                "{} bytes is not a whole number of {len}-byte messages",
                data.len()
            )));
        }
        Ok(Messages::Fixed { data, len })
    }
    /// Number of messages.
    pub fn len(&self) -> usize {
        match self {
            Messages::Packed { offsets, .. } => offsets.len() - 1,
            Messages::Fixed { data, len } => data.len() / len,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Message `i`.
    pub fn get(&self, i: usize) -> &'a [u8] {
        match *self {
            Messages::Packed { data, offsets } => {
                &data[offsets[i] as usize..offsets[i + 1] as usize]
            }
            Messages::Fixed { data, len } => &data[i * len..(i + 1) * len],
        }
    }
    /// Total message bytes.
    pub fn total_bytes(&self) -> u64 {
        match *self {
            Messages::Packed { offsets, .. } => offsets[offsets.len() - 1] - offsets[0],
            Messages::Fixed { data, .. } => data.len() as u64,
        }
    }
    /// Messages `range` as a batch of the same kind.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Messages<'a> {
        match *self {
            Messages::Packed { data, offsets } => Messages::Packed {
                data,
                offsets: &offsets[range.start..range.end + 1],
            },
            Messages::Fixed { data, len } => Messages::Fixed {
                data: &data[range.start * len..range.end * len],
                len,
            },
        }
    }
}

/// An owned batch of variable-length messages (packed bytes + offsets).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageBatch {
    pub data: Vec<u8>,
    /// `n + 1` offsets, starting at 0.
    pub offsets: Vec<u64>,
}

impl MessageBatch {
    pub fn new() -> Self {
        Self {
            data: Vec::new(),
            offsets: vec![0],
        }
    }
    pub fn push(&mut self, msg: &[u8]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.data.extend_from_slice(msg);
        self.offsets.push(self.data.len() as u64);
    }
    pub fn from_messages<I, M>(msgs: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: AsRef<[u8]>,
    {
        let mut b = Self::new();
        for m in msgs {
            b.push(m.as_ref());
        }
        b
    }
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The borrowed view.
    pub fn as_messages(&self) -> Messages<'_> {
        if self.offsets.is_empty() {
            return Messages::Packed {
                data: &[],
                offsets: &[0],
            };
        }
        Messages::Packed {
            data: &self.data,
            offsets: &self.offsets,
        }
    }
}

/// A Merkle tree's root and, when requested, every level (level 0 = the leaf nodes
/// `H(0x00 || leaf)`, last level = `[root]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    pub root: Digest,
    /// Empty unless levels were requested (and empty for zero leaves).
    pub levels: Vec<Vec<Digest>>,
}

/// The root of an empty tree.
pub const EMPTY_ROOT: Digest = [0u8; 32];

/// A backend that hashes batches and builds Merkle trees. The CPU backend is the
/// reference; GPU backends must return the same bytes.
pub trait HashBackend: Send + Sync {
    /// `cpu`, `cuda` or `opencl`.
    fn kind(&self) -> &'static str;
    /// Device name (CPU model, or GPU name).
    fn device_name(&self) -> String;
    /// One digest per message, in order.
    fn hash_batch(&self, algo: HashAlgo, msgs: &Messages<'_>) -> Result<Vec<Digest>>;
    /// The Merkle tree of `leaves` (root only unless `keep_levels`).
    fn merkle(&self, algo: HashAlgo, leaves: &[Digest], keep_levels: bool) -> Result<MerkleTree>;
}

/// Leaf node `H(0x00 || leaf)`.
pub fn leaf_node(algo: HashAlgo, leaf: &Digest) -> Digest {
    algo.digest_parts(&[&[0u8], leaf])
}

/// Inner node `H(0x01 || left || right)`.
pub fn inner_node(algo: HashAlgo, left: &Digest, right: &Digest) -> Digest {
    algo.digest_parts(&[&[1u8], left, right])
}

/// One level up (sequential): pairs hashed, an odd last node carried up unchanged.
pub fn next_level(algo: HashAlgo, level: &[Digest]) -> Vec<Digest> {
    level
        .chunks(2)
        .map(|c| match c {
            [l, r] => inner_node(algo, l, r),
            [x] => *x,
            _ => unreachable!("chunks(2) yields 1 or 2 items"),
        })
        .collect()
}

/// The root above a level of already-hashed nodes (sequential).
pub fn root_of_nodes(algo: HashAlgo, nodes: &[Digest]) -> Digest {
    match nodes.len() {
        0 => EMPTY_ROOT,
        1 => nodes[0],
        _ => {
            let mut level = next_level(algo, nodes);
            while level.len() > 1 {
                level = next_level(algo, &level);
            }
            level[0]
        }
    }
}

/// The simplest possible Merkle root (sequential, no threads): the oracle for tests.
pub fn merkle_root_sequential(algo: HashAlgo, leaves: &[Digest]) -> Digest {
    let nodes: Vec<Digest> = leaves.iter().map(|l| leaf_node(algo, l)).collect();
    root_of_nodes(algo, &nodes)
}

/// The CPU backend: rayon on its own pool (never the global one).
#[derive(Clone)]
pub struct CpuBackend {
    pool: Arc<rayon::ThreadPool>,
}

impl std::fmt::Debug for CpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuBackend({} threads)", self.threads())
    }
}

/// Items per rayon task: enough work to amortise scheduling.
const CPU_MIN_LEN: usize = 512;

impl CpuBackend {
    /// A backend on `pool`.
    pub fn new(pool: Arc<rayon::ThreadPool>) -> Self {
        Self { pool }
    }
    /// A backend with its own pool of `threads` threads (0 = all logical cores).
    pub fn with_threads(threads: usize) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("gpu-exec-cpu-{i}"))
            .build()
            .map_err(|e| GpuError::Config(format!("cannot build CPU pool: {e}")))?;
        Ok(Self::new(Arc::new(pool)))
    }
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }
    pub fn pool(&self) -> &Arc<rayon::ThreadPool> {
        &self.pool
    }
    /// Hashes into a caller-provided slice (`out.len() == msgs.len()`), in parallel.
    pub fn hash_into(&self, algo: HashAlgo, msgs: &Messages<'_>, out: &mut [Digest]) -> Result<()> {
        if out.len() != msgs.len() {
            return Err(GpuError::InvalidInput(format!(
                "output has {} slots for {} messages",
                out.len(),
                msgs.len()
            )));
        }
        let m = *msgs;
        self.pool.install(|| {
            out.par_iter_mut()
                .with_min_len(CPU_MIN_LEN)
                .enumerate()
                .for_each(|(i, d)| *d = algo.digest(m.get(i)));
        });
        Ok(())
    }
    /// Leaf nodes of `leaves`, in parallel.
    pub fn leaf_nodes(&self, algo: HashAlgo, leaves: &[Digest]) -> Vec<Digest> {
        self.pool.install(|| {
            leaves
                .par_iter()
                .with_min_len(CPU_MIN_LEN)
                .map(|l| leaf_node(algo, l))
                .collect()
        })
    }
    /// One level up, in parallel.
    pub fn next_level(&self, algo: HashAlgo, level: &[Digest]) -> Vec<Digest> {
        self.pool.install(|| {
            level
                .par_chunks(2)
                .with_min_len(CPU_MIN_LEN)
                .map(|c| match c {
                    [l, r] => inner_node(algo, l, r),
                    [x] => *x,
                    _ => unreachable!("chunks(2) yields 1 or 2 items"),
                })
                .collect()
        })
    }
}

/// The name of this machine's CPU (from /proc/cpuinfo), for reports.
pub fn cpu_model_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

impl HashBackend for CpuBackend {
    fn kind(&self) -> &'static str {
        "cpu"
    }
    fn device_name(&self) -> String {
        cpu_model_name()
    }
    fn hash_batch(&self, algo: HashAlgo, msgs: &Messages<'_>) -> Result<Vec<Digest>> {
        let m = *msgs;
        Ok(self.pool.install(|| {
            (0..m.len())
                .into_par_iter()
                .with_min_len(CPU_MIN_LEN)
                .map(|i| algo.digest(m.get(i)))
                .collect()
        }))
    }
    fn merkle(&self, algo: HashAlgo, leaves: &[Digest], keep_levels: bool) -> Result<MerkleTree> {
        if leaves.is_empty() {
            return Ok(MerkleTree {
                root: EMPTY_ROOT,
                levels: Vec::new(),
            });
        }
        let mut level = self.leaf_nodes(algo, leaves);
        let mut levels = Vec::new();
        while level.len() > 1 {
            let next = self.next_level(algo, &level);
            if keep_levels {
                levels.push(std::mem::replace(&mut level, next));
            } else {
                level = next;
            }
        }
        let root = level[0];
        if keep_levels {
            levels.push(level);
        }
        Ok(MerkleTree { root, levels })
    }
}
