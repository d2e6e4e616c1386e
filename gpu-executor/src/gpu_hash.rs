//! Hashing and Merkle trees on a [`GpuDevice`] (CUDA or OpenCL: the same code drives both,
//! through the backend layer). Kernels: `kernels/hash.cl`.
//!
//! Large batches are cut into chunks that fit the memory budget; chunks alternate between
//! the device's queues, each driven by its own host thread with its own reusable buffers,
//! so one chunk's copies overlap another's kernel.

use std::sync::Mutex;

use crate::device::{
    BackendKind, DeviceBuffer, GpuDevice, HostStaging, KernelArg, KernelSource, LaunchDims, Queue,
};
use crate::error::{GpuError, Result};
use crate::hash::{inner_node, Digest, HashAlgo, HashBackend, MerkleTree, Messages, EMPTY_ROOT};
use crate::pod::as_bytes_mut;

/// The hashing / Merkle kernel source.
pub const HASH_SOURCE: KernelSource = KernelSource::new("hash", include_str!("../kernels/hash.cl"));

/// Kernel names in [`HASH_SOURCE`].
pub mod kernels {
    pub const SHA256_VAR: &str = "sha256_var";
    pub const SHA256_32: &str = "sha256_32";
    pub const SHA256_64: &str = "sha256_64";
    pub const KECCAK256_VAR: &str = "keccak256_var";
    pub const KECCAK256_32: &str = "keccak256_32";
    pub const KECCAK256_64: &str = "keccak256_64";
    pub const MERKLE_LEAF_SHA256: &str = "merkle_leaf_sha256";
    pub const MERKLE_NODE_SHA256: &str = "merkle_node_sha256";
    pub const MERKLE_LEAF_KECCAK256: &str = "merkle_leaf_keccak256";
    pub const MERKLE_NODE_KECCAK256: &str = "merkle_node_keccak256";
}

/// Largest number of messages in one chunk (keeps several chunks in flight on big batches).
const MAX_CHUNK_ITEMS: usize = 1 << 22;

#[derive(Default)]
struct Slot {
    data: Option<DeviceBuffer>,
    offsets: Option<DeviceBuffer>,
    out: Option<DeviceBuffer>,
    /// Pinned host staging (CUDA): two input buffers (double-buffered uploads) and one
    /// output buffer.
    stage_in: [Option<HostStaging>; 2],
    stage_out: Option<HostStaging>,
}

/// Largest chunk when copies go through pinned staging (smaller chunks pipeline better).
const STAGED_CHUNK_ITEMS: usize = 1 << 18;

/// Grows `slot` to at least `bytes` of staging memory.
fn ensure_staging(dev: &GpuDevice, slot: &mut Option<HostStaging>, bytes: usize) -> Result<()> {
    if slot.as_ref().is_none_or(|s| s.len() < bytes) {
        *slot = None;
        *slot = Some(dev.alloc_staging(bytes)?);
    }
    Ok(())
}

/// Copies `src` into `dst` (same length) with several threads for large copies: host
/// memory bandwidth, not one core, is then the limit.
pub(crate) fn par_copy(dst: &mut [u8], src: &[u8]) {
    const PART: usize = 4 << 20;
    if src.len() <= PART {
        dst.copy_from_slice(src);
        return;
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .clamp(1, 8);
    let part = src.len().div_ceil(threads);
    std::thread::scope(|s| {
        for (d, c) in dst.chunks_mut(part).zip(src.chunks(part)) {
            s.spawn(move || d.copy_from_slice(c));
        }
    });
}

/// Hashing and Merkle trees on one device.
pub struct GpuHasher {
    dev: GpuDevice,
    /// Device bytes one batch may use in total (over all queues).
    budget: u64,
    /// Reusable buffers, one set per queue.
    slots: Vec<Mutex<Slot>>,
    /// Threads per group of the hash kernels.
    group_size: u32,
}

impl std::fmt::Debug for GpuHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GpuHasher({}, budget {} MiB)",
            self.dev.info(),
            self.budget >> 20
        )
    }
}

fn kernel_for(algo: HashAlgo, fixed: Option<usize>) -> &'static str {
    use kernels::*;
    match (algo, fixed) {
        (HashAlgo::Sha256, Some(32)) => SHA256_32,
        (HashAlgo::Sha256, Some(64)) => SHA256_64,
        (HashAlgo::Sha256, _) => SHA256_VAR,
        (HashAlgo::Keccak256, Some(32)) => KECCAK256_32,
        (HashAlgo::Keccak256, Some(64)) => KECCAK256_64,
        (HashAlgo::Keccak256, _) => KECCAK256_VAR,
    }
}

fn merkle_kernels(algo: HashAlgo) -> (&'static str, &'static str) {
    use kernels::*;
    match algo {
        HashAlgo::Sha256 => (MERKLE_LEAF_SHA256, MERKLE_NODE_SHA256),
        HashAlgo::Keccak256 => (MERKLE_LEAF_KECCAK256, MERKLE_NODE_KECCAK256),
    }
}

fn digests_as_bytes(d: &[Digest]) -> &[[u8; 32]] {
    d
}

impl GpuHasher {
    /// Compiles the kernels on `dev` (errors with [`GpuError::Build`] and the log if they do
    /// not compile). `memory_limit` caps the device memory a batch uses (default: a quarter
    /// of the device's memory).
    pub fn new(dev: GpuDevice, memory_limit: Option<u64>) -> Result<Self> {
        dev.prepare(&HASH_SOURCE)?;
        let info = dev.info();
        let budget = memory_limit
            .filter(|&b| b > 0)
            .unwrap_or(info.total_memory / 4)
            .max(4096);
        let slots = (0..dev.num_queues()).map(|_| Mutex::default()).collect();
        Ok(Self {
            dev,
            budget,
            slots,
            group_size: LaunchDims::DEFAULT_GROUP,
        })
    }

    pub fn device(&self) -> &GpuDevice {
        &self.dev
    }

    /// Threads per group for the hash kernels (default 256; must not exceed the device's
    /// maximum).
    pub fn set_group_size(&mut self, g: u32) {
        self.group_size = g.clamp(32, self.dev.info().max_group_size.max(32));
    }

    /// Device bytes a batch may use.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Whether host copies go through pinned staging (CUDA).
    fn staged(&self) -> bool {
        self.dev.backend() == BackendKind::Cuda
    }

    fn slot_budget(&self) -> u64 {
        (self.budget / self.slots.len() as u64).min(self.dev.info().max_alloc)
    }

    /// Plans chunks of `msgs`: consecutive ranges that each fit one slot's budget.
    fn plan(&self, msgs: &Messages<'_>) -> Result<Vec<std::ops::Range<usize>>> {
        let n = msgs.len();
        let budget = self.slot_budget();
        let mut out = Vec::new();
        match *msgs {
            Messages::Fixed { len, .. } if len == 32 || len == 64 => {
                let per = (len + 32) as u64;
                let cap = if self.staged() {
                    STAGED_CHUNK_ITEMS
                } else {
                    MAX_CHUNK_ITEMS
                };
                let items = ((budget / per) as usize).clamp(1, cap);
                let mut a = 0;
                while a < n {
                    let b = (a + items).min(n);
                    out.push(a..b);
                    a = b;
                }
            }
            _ => {
                let mut a = 0;
                while a < n {
                    let mut b = a;
                    let mut bytes: u64 = 8; // the closing offset
                    while b < n && b - a < MAX_CHUNK_ITEMS {
                        let cost = msgs.get(b).len() as u64 + 8 + 32;
                        if b > a && bytes + cost > budget {
                            break;
                        }
                        bytes += cost;
                        b += 1;
                    }
                    if bytes > budget {
                        return Err(GpuError::OutOfMemory {
                            requested: bytes,
                            detail: format!(
                                "message {a} alone needs more than the {budget}-byte budget"
                            ),
                        });
                    }
                    out.push(a..b);
                    a = b;
                }
            }
        }
        Ok(out)
    }

    /// Hashes one chunk on queue `qi` with that queue's buffers; writes `out`.
    fn hash_chunk(
        &self,
        qi: usize,
        algo: HashAlgo,
        msgs: &Messages<'_>,
        out: &mut [Digest],
    ) -> Result<()> {
        let n = msgs.len();
        if n == 0 {
            return Ok(());
        }
        let mut slot = self.slots[qi].lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut *slot;
        let q = self.dev.queue(qi);
        self.dev.ensure_capacity(&mut slot.out, n * 32)?;
        let outbuf = slot
            .out
            .as_ref()
            .ok_or_else(|| GpuError::Launch("no buffer".into()))?;
        match *msgs {
            Messages::Fixed { data, len } if (len == 32 || len == 64) && self.staged() => {
                // Pinned staging: parallel host copy in, asynchronous DMA both ways.
                self.dev.ensure_capacity(&mut slot.data, data.len())?;
                ensure_staging(&self.dev, &mut slot.stage_in[0], data.len())?;
                ensure_staging(&self.dev, &mut slot.stage_out, n * 32)?;
                let (Some(inbuf), Some(st_in), Some(st_out)) = (
                    slot.data.as_mut(),
                    slot.stage_in[0].as_mut(),
                    slot.stage_out.as_mut(),
                ) else {
                    return Err(GpuError::Launch("no buffer".into()));
                };
                par_copy(&mut st_in.as_mut_slice()?[..data.len()], data);
                q.upload_staged(inbuf, 0, st_in, 0..data.len())?;
                q.launch(
                    &HASH_SOURCE,
                    kernel_for(algo, Some(len)),
                    n as u64,
                    &[
                        KernelArg::Buffer(inbuf),
                        KernelArg::Buffer(outbuf),
                        KernelArg::U32(n as u32),
                    ],
                )?;
                q.download_staged(outbuf, 0, st_out, 0..n * 32)?;
                par_copy(as_bytes_mut(out), &st_out.as_mut_slice()?[..n * 32]);
                return Ok(());
            }
            Messages::Fixed { data, len } if len == 32 || len == 64 => {
                self.dev.ensure_capacity(&mut slot.data, data.len())?;
                let inbuf = slot
                    .data
                    .as_mut()
                    .ok_or_else(|| GpuError::Launch("no buffer".into()))?;
                q.upload(inbuf, 0, data)?;
                q.launch(
                    &HASH_SOURCE,
                    kernel_for(algo, Some(len)),
                    n as u64,
                    &[
                        KernelArg::Buffer(inbuf),
                        KernelArg::Buffer(outbuf),
                        KernelArg::U32(n as u32),
                    ],
                )?;
            }
            _ => {
                // Rebase to the chunk's first byte; a fixed batch of another length becomes
                // packed with implicit offsets.
                let (bytes, offsets): (&[u8], Vec<u64>) = match *msgs {
                    Messages::Packed { data, offsets } => {
                        let base = offsets[0];
                        let end = offsets[n];
                        (
                            &data[base as usize..end as usize],
                            offsets.iter().map(|o| o - base).collect(),
                        )
                    }
                    Messages::Fixed { data, len } => {
                        (data, (0..=n as u64).map(|i| i * len as u64).collect())
                    }
                };
                self.dev
                    .ensure_capacity(&mut slot.data, bytes.len().max(1))?;
                self.dev
                    .ensure_capacity(&mut slot.offsets, offsets.len() * 8)?;
                let inbuf = slot
                    .data
                    .as_mut()
                    .ok_or_else(|| GpuError::Launch("no buffer".into()))?;
                q.upload(inbuf, 0, bytes)?;
                let offbuf = slot
                    .offsets
                    .as_mut()
                    .ok_or_else(|| GpuError::Launch("no buffer".into()))?;
                q.upload(offbuf, 0, &offsets)?;
                let inbuf = slot
                    .data
                    .as_ref()
                    .ok_or_else(|| GpuError::Launch("no buffer".into()))?;
                let offbuf = slot
                    .offsets
                    .as_ref()
                    .ok_or_else(|| GpuError::Launch("no buffer".into()))?;
                q.launch(
                    &HASH_SOURCE,
                    kernel_for(algo, None),
                    n as u64,
                    &[
                        KernelArg::Buffer(inbuf),
                        KernelArg::Buffer(offbuf),
                        KernelArg::Buffer(outbuf),
                        KernelArg::U32(n as u32),
                    ],
                )?;
            }
        }
        q.download(outbuf, 0, out)
    }

    /// Hashes `msgs`; chunked to the memory budget, chunks spread over the queues.
    pub fn hash(&self, algo: HashAlgo, msgs: &Messages<'_>) -> Result<Vec<Digest>> {
        let mut out = vec![[0u8; 32]; msgs.len()];
        self.hash_into(algo, msgs, &mut out)?;
        Ok(out)
    }

    /// As [`GpuHasher::hash`], into a caller-provided slice (`out.len() == msgs.len()`).
    /// Reusing the output avoids first-touch page faults on a fresh allocation, which for
    /// millions of digests cost more than the device work.
    pub fn hash_into(&self, algo: HashAlgo, msgs: &Messages<'_>, out: &mut [Digest]) -> Result<()> {
        let n = msgs.len();
        if out.len() != n {
            return Err(GpuError::InvalidInput(format!(
                "output has {} slots for {n} messages",
                out.len()
            )));
        }
        if n == 0 {
            return Ok(());
        }
        let chunks = self.plan(msgs)?;
        let queues = self.slots.len().min(chunks.len());
        if queues <= 1 {
            for r in chunks {
                let m = msgs.slice(r.clone());
                self.hash_chunk(0, algo, &m, &mut out[r])?;
            }
            return Ok(());
        }
        // Split `out` into the chunks' pieces, then deal chunks round-robin to the queues.
        let mut pieces: Vec<(std::ops::Range<usize>, &mut [Digest])> = Vec::new();
        let mut rest: &mut [Digest] = out;
        for r in &chunks {
            let (a, b) = rest.split_at_mut(r.len());
            pieces.push((r.clone(), a));
            rest = b;
        }
        on_queues(queues, pieces, "hash", |qi, (r, dst)| {
            let m = msgs.slice(r);
            self.hash_chunk(qi, algo, &m, dst)
        })
    }

    /// Launches the fixed-length kernel on data already on the device (device-resident
    /// benchmarks and callers that keep data on the GPU). `len` is 32 or 64; `input` holds
    /// `n * len` bytes, `out` receives `n * 32`. Returns once queued.
    pub fn launch_fixed(
        &self,
        q: Queue<'_>,
        algo: HashAlgo,
        len: usize,
        input: &DeviceBuffer,
        n: usize,
        out: &DeviceBuffer,
    ) -> Result<()> {
        if len != 32 && len != 64 {
            return Err(GpuError::InvalidInput(format!(
                "fixed-length kernels take 32 or 64 bytes, not {len}"
            )));
        }
        if input.len() < n * len || out.len() < n * 32 {
            return Err(GpuError::InvalidInput("device buffers too small".into()));
        }
        q.launch_dims(
            &HASH_SOURCE,
            kernel_for(algo, Some(len)),
            LaunchDims::with_group(n as u64, self.group_size),
            &[
                KernelArg::Buffer(input),
                KernelArg::Buffer(out),
                KernelArg::U32(n as u32),
            ],
        )
    }

    /// Builds the Merkle tree of `n` leaves in `leaves` entirely on the device, in place:
    /// `leaves` (n * 32 bytes) is overwritten with the leaf nodes and `scratch` (at least
    /// ceil(n/2) * 32 bytes) takes the levels above; no level leaves the device. Returns
    /// which buffer holds the root at offset 0 (`false` = `leaves`, `true` = `scratch`).
    pub fn merkle_on_device(
        &self,
        q: Queue<'_>,
        algo: HashAlgo,
        leaves: &mut DeviceBuffer,
        n: usize,
        scratch: &mut DeviceBuffer,
    ) -> Result<bool> {
        if n == 0 {
            return Err(GpuError::InvalidInput("no leaves".into()));
        }
        if leaves.len() < n * 32 || scratch.len() < n.div_ceil(2) * 32 {
            return Err(GpuError::InvalidInput("device buffers too small".into()));
        }
        let (leaf_k, node_k) = merkle_kernels(algo);
        q.launch(
            &HASH_SOURCE,
            leaf_k,
            n as u64,
            &[
                KernelArg::Buffer(leaves),
                KernelArg::Buffer(leaves),
                KernelArg::U32(n as u32),
            ],
        )?;
        let mut count = n;
        let mut in_scratch = false;
        while count > 1 {
            let next = count.div_ceil(2);
            let (src, dst): (&DeviceBuffer, &DeviceBuffer) = if in_scratch {
                (scratch, leaves)
            } else {
                (leaves, scratch)
            };
            q.launch(
                &HASH_SOURCE,
                node_k,
                next as u64,
                &[
                    KernelArg::Buffer(src),
                    KernelArg::Buffer(dst),
                    KernelArg::U32(count as u32),
                ],
            )?;
            in_scratch = !in_scratch;
            count = next;
        }
        Ok(in_scratch)
    }

    /// Root of `leaves`, which must fit the budget (48 bytes per leaf).
    fn merkle_root_resident(&self, qi: usize, algo: HashAlgo, leaves: &[Digest]) -> Result<Digest> {
        let n = leaves.len();
        let mut slot = self.slots[qi].lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut *slot;
        let q = self.dev.queue(qi);
        self.dev.ensure_capacity(&mut slot.data, n * 32)?;
        self.dev
            .ensure_capacity(&mut slot.out, n.div_ceil(2) * 32)?;
        let (Some(a), Some(b)) = (slot.data.as_mut(), slot.out.as_mut()) else {
            return Err(GpuError::Launch("no buffer".into()));
        };
        let bytes = crate::pod::as_bytes(digests_as_bytes(leaves));
        if self.staged() && bytes.len() > (1 << 20) {
            // Double-buffered pinned staging: the host copy of part k+1 overlaps the DMA of
            // part k.
            const PART: usize = 16 << 20;
            for st in slot.stage_in.iter_mut() {
                ensure_staging(&self.dev, st, PART.min(bytes.len()))?;
            }
            for (k, part) in bytes.chunks(PART).enumerate() {
                let Some(st) = slot.stage_in[k % 2].as_mut() else {
                    return Err(GpuError::Launch("no staging".into()));
                };
                par_copy(&mut st.as_mut_slice()?[..part.len()], part);
                q.upload_staged(a, k * PART, st, 0..part.len())?;
            }
        } else {
            q.upload(a, 0, digests_as_bytes(leaves))?;
        }
        let in_b = self.merkle_on_device(q, algo, a, n, b)?;
        let mut root = [[0u8; 32]; 1];
        q.download(if in_b { b } else { a }, 0, &mut root)?;
        Ok(root[0])
    }

    /// Every level of the tree of `leaves` (must fit the budget: 112 bytes per leaf).
    fn merkle_levels_resident(
        &self,
        qi: usize,
        algo: HashAlgo,
        leaves: &[Digest],
    ) -> Result<MerkleTree> {
        let n = leaves.len();
        // Level sizes and their offsets (in nodes) in one buffer.
        let mut sizes = vec![n];
        while *sizes.last().unwrap_or(&1) > 1 {
            let s = sizes[sizes.len() - 1].div_ceil(2);
            sizes.push(s);
        }
        let total: usize = sizes.iter().sum();
        let mut slot = self.slots[qi].lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut *slot;
        let q = self.dev.queue(qi);
        self.dev.ensure_capacity(&mut slot.data, n * 32)?;
        self.dev
            .ensure_capacity(&mut slot.offsets, n.div_ceil(2) * 32)?;
        self.dev.ensure_capacity(&mut slot.out, total * 32)?;
        let (Some(a), Some(b), Some(all)) =
            (slot.data.as_mut(), slot.offsets.as_mut(), slot.out.as_mut())
        else {
            return Err(GpuError::Launch("no buffer".into()));
        };
        q.upload(a, 0, digests_as_bytes(leaves))?;
        let (leaf_k, node_k) = merkle_kernels(algo);
        // Leaf nodes in place (each thread reads and writes only its own slot).
        q.launch(
            &HASH_SOURCE,
            leaf_k,
            n as u64,
            &[
                KernelArg::Buffer(a),
                KernelArg::Buffer(a),
                KernelArg::U32(n as u32),
            ],
        )?;
        q.copy(a, 0, all, 0, n * 32)?;
        // Levels ping-pong between `a` and `b`; each is also copied into place in `all`.
        let mut off = n;
        let mut in_b = false;
        for w in sizes.windows(2) {
            let (count, next) = (w[0], w[1]);
            let (src, dst): (&DeviceBuffer, &mut DeviceBuffer) = if in_b { (b, a) } else { (a, b) };
            q.launch(
                &HASH_SOURCE,
                node_k,
                next as u64,
                &[
                    KernelArg::Buffer(src),
                    KernelArg::Buffer(dst),
                    KernelArg::U32(count as u32),
                ],
            )?;
            q.copy(dst, 0, all, off * 32, next * 32)?;
            off += next;
            in_b = !in_b;
        }
        let mut flat = vec![[0u8; 32]; total];
        q.download(all, 0, &mut flat)?;
        let mut levels = Vec::with_capacity(sizes.len());
        let mut it = flat.into_iter();
        for s in &sizes {
            levels.push(it.by_ref().take(*s).collect::<Vec<_>>());
        }
        let root = levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or(EMPTY_ROOT);
        Ok(MerkleTree { root, levels })
    }

    /// The Merkle tree of `leaves` (docs/MERKLE.md). Root-only trees larger than the budget
    /// are built from aligned power-of-two subtrees (whose roots are exactly the nodes of
    /// that level of the whole tree) spread over the queues; all-level trees must fit.
    pub fn merkle(
        &self,
        algo: HashAlgo,
        leaves: &[Digest],
        keep_levels: bool,
    ) -> Result<MerkleTree> {
        let n = leaves.len();
        if n == 0 {
            return Ok(MerkleTree {
                root: EMPTY_ROOT,
                levels: Vec::new(),
            });
        }
        if keep_levels {
            let need = (n as u64) * 32 * 4;
            if need > self.slot_budget() {
                return Err(GpuError::OutOfMemory {
                    requested: need,
                    detail: "all Merkle levels must fit the device budget at once".into(),
                });
            }
            return self.merkle_levels_resident(0, algo, leaves);
        }
        let per_leaf = 48u64;
        let fit = (self.slot_budget() / per_leaf).max(1) as usize;
        if n <= fit {
            let root = self.merkle_root_resident(0, algo, leaves)?;
            return Ok(MerkleTree {
                root,
                levels: Vec::new(),
            });
        }
        // Aligned subtrees of 2^k leaves.
        let chunk = 1usize << (usize::BITS - 1 - fit.leading_zeros());
        let ranges: Vec<std::ops::Range<usize>> = (0..n)
            .step_by(chunk)
            .map(|a| a..(a + chunk).min(n))
            .collect();
        let queues = self.slots.len().min(ranges.len()).max(1);
        let mut roots = vec![[0u8; 32]; ranges.len()];
        let work: Vec<(usize, &mut Digest)> = roots.iter_mut().enumerate().collect();
        on_queues(queues, work, "merkle", |qi, (i, dst)| {
            *dst = self.merkle_root_resident(qi, algo, &leaves[ranges[i].clone()])?;
            Ok(())
        })?;
        // A subtree with one leaf returned its leaf node, which is what the level holds too.
        let mut level = roots;
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|c| match c {
                    [l, r] => inner_node(algo, l, r),
                    [x] => *x,
                    _ => unreachable!("chunks(2) yields 1 or 2 items"),
                })
                .collect();
        }
        Ok(MerkleTree {
            root: level[0],
            levels: Vec::new(),
        })
    }
}

impl HashBackend for GpuHasher {
    fn kind(&self) -> &'static str {
        self.dev.backend().as_str()
    }
    fn device_name(&self) -> String {
        self.dev.info().name.clone()
    }
    fn hash_batch(&self, algo: HashAlgo, msgs: &Messages<'_>) -> Result<Vec<Digest>> {
        self.hash(algo, msgs)
    }
    fn merkle(&self, algo: HashAlgo, leaves: &[Digest], keep_levels: bool) -> Result<MerkleTree> {
        GpuHasher::merkle(self, algo, leaves, keep_levels)
    }
}

/// Deals `work` round-robin to `queues` queues and runs each queue's share on a thread of
/// its own, in order (`run(queue, item)`); the first error is returned, and a panicking
/// worker is an error naming `what`.
fn on_queues<W: Send>(
    queues: usize,
    work: Vec<W>,
    what: &str,
    run: impl Fn(usize, W) -> Result<()> + Sync,
) -> Result<()> {
    let queues = queues.max(1);
    let mut per_queue: Vec<Vec<W>> = (0..queues).map(|_| Vec::new()).collect();
    for (i, w) in work.into_iter().enumerate() {
        per_queue[i % queues].push(w);
    }
    let run = &run;
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = per_queue
            .into_iter()
            .enumerate()
            .map(|(qi, items)| {
                s.spawn(move || {
                    for w in items {
                        run(qi, w)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(GpuError::Launch(format!("{what} worker panicked"))))
            })
            .collect()
    });
    results.into_iter().collect()
}
