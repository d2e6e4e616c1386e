//! The block pipeline and the node around it.
//!
//! One block goes through:
//! 1. **decode**: header checks (chain id, height = head + 1, parent hash = head hash) and
//!    every transaction decoded (`vm_runtime::Transaction::decode`, checked);
//! 2. **tx root**: transaction ids (`SHA-256` of each encoding) and their Merkle root,
//!    routed, compared with the header; the gas limits must fit the block gas limit;
//! 3. **signatures**: every Ed25519 signature, in one routed batch (in a block of at least
//!    `FRONT_OVERLAP_MIN_TXS` transactions, stage 2 and the declared-keys plan run on two
//!    threads of their own meanwhile; verdicts are taken in stage order);
//! 4. **proofs**: every privacy proof, in one routed batch (random linear combination);
//! 5. **execute**: Block-STM over a snapshot of committed state (`vm_state`), through
//!    [`NodeExecutor`] (WASM VM + privacy-pool rules), then the block's note commitments
//!    appended to the privacy tree in one batch ([`NodeExecutor::finalize_block`]);
//! 6. **state root + commit**: the write set (plus the head record) is committed in one
//!    atomic step; leaf hashes and the Merkle root go through [`RoutedHasher`] (routed);
//! 7. **metrics**.
//!
//! Stages 1-4 of block N+1 read nothing that block N writes (the head they check is block
//! N's header, known before N executes), so [`Node::import`] runs them on two more threads
//! while block N executes and commits: stages 1-3 of block N+2 on one, stage 4 of block N+1
//! on the other (blocks that queued up before stage 4 have their proofs checked in one batch,
//! [`Node::verify_proofs_group`]). Execution does not wait for a block's own proofs
//! either: the proof stage hands each block on before checking its proofs and sends the
//! verdicts after it, so block N executes while its proofs are checked and is sent to
//! commit only once they verified (the `proofs-wait` stage: how long execution then waited
//! for the verdict). A block that fails 1-4 is rejected with the reason and changes
//! nothing; blocks before it stay committed.
//!
//! Blocks N-1 and N-2 commit on a third thread while block N executes: N reads a snapshot
//! of committed state with their write sets laid on top ([`Overlay`]); at most two blocks
//! wait for or are in their commit, commits stay in order and each is atomic, so a crash
//! never leaves a block without its parent. When the committer falls behind, the queued
//! blocks commit together in one store transaction ([`StateStore::commit_blocks`]). The
//! committing thread does its CPU hashing itself ([`RoutedHasher::inline_cpu`]): an
//! earlier version hashed on the shared pool, where Block-STM's workers hold every thread
//! until the block ends, and measured slower than no overlap at all.
//!
//! Within a stage, the per-transaction work runs on the node's thread pool: decoding,
//! signing hashes, transaction ids (routed hashing), signature and proof batches (proof
//! payloads are decoded in parallel: `zk_privacy::verify::verify_payloads`).
//!
//! The node keeps two system entries in state, so they are committed atomically with the
//! block: `h"genesis"` (the genesis hash) and `h"head"` (height `u64` LE || block hash).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Instant;

use ark_bn254::Bn254;
use ark_groth16::{PreparedVerifyingKey, ProvingKey};
use parking_lot::Mutex;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use vm_runtime::tx::{Transaction, TxKind};
use vm_runtime::{Vm, VmConfig};
use vm_state::{
    BlockEnv, BlockPlan, CommitInfo, Hash32, ParallelExecutor, StateHasher, StateKey, StateReader,
    StateStore, StateValue, TxStatus, WriteSet,
};
use zk_privacy::pool::PrivacyPool;

use crate::block::{Block, Genesis};
use crate::config::{NodeConfig, Strategy};
use crate::error::{NodeError, Result};
use crate::exec::{CommittedPrivacy, NodeExecutor};
use crate::metrics as m;
use crate::scheduler::{HybridScheduler, Kernel, ProofItem, Route, SigItem};

/// Most blocks whose proofs the import pipeline checks in one batch. On the H200 host
/// (2026-12-04, `supervm bench node`, 5% privacy, proofs on the GPU) groups of up to 3 gave
/// auto a median of 221k TPS over six alternated runs, up to 2 the same, and no grouping
/// 195k (`docs/BENCHMARKS.md`).
pub const PROOF_GROUP: usize = 3;

/// Blocks of at least this many transactions check their transaction root and make their
/// plan on two threads of their own beside the signature check (stage 3); smaller blocks do
/// all three on the front thread (two thread starts cost more than they would save).
pub(crate) const FRONT_OVERLAP_MIN_TXS: usize = 1024;

/// Recent roots the node's privacy pool accepts (a chain parameter).
pub const PRIVACY_RECENT_ROOTS: usize = 4096;

/// Key of the head record.
pub fn head_key() -> StateKey {
    StateKey(b"hhead".to_vec())
}
/// Key of the genesis hash.
pub fn genesis_key() -> StateKey {
    StateKey(b"hgenesis".to_vec())
}
/// Key of the state layout the chain was started with ([`STATE_LAYOUT`]).
pub fn layout_key() -> StateKey {
    StateKey(b"hlayout".to_vec())
}
/// The layout of the state this build reads and writes: 2 = nonce and balance in one
/// account record per address (`vm_state::Account`, since 2026-12-04). Data directories
/// without this record hold layout 1 (separate balance and nonce entries) and are refused.
pub const STATE_LAYOUT: u8 = 2;

/// Checks that a store holding a chain was started with [`STATE_LAYOUT`] (an empty store
/// passes). `Err` says what the data directory holds and what to do.
pub fn check_state_layout(store: &dyn StateStore) -> Result<()> {
    if store.latest().map_err(Node::store_err)?.is_none() {
        return Ok(());
    }
    let layout = store
        .get(&layout_key())
        .map_err(Node::store_err)?
        .map(|v| v.to_vec());
    if layout.as_deref() == Some(&[STATE_LAYOUT][..]) {
        return Ok(());
    }
    Err(NodeError::Store(format!(
        "the data directory holds state layout {} and this build reads layout \
         {STATE_LAYOUT} (account records); re-import the chain into a new data directory",
        layout.map_or("1".to_string(), |l| format!("{l:?}"))
    )))
}

fn head_value(height: u64, hash: &[u8; 32]) -> StateValue {
    let mut v = Vec::with_capacity(40);
    v.extend_from_slice(&height.to_le_bytes());
    v.extend_from_slice(hash);
    StateValue::from(v)
}

/// The transaction root of encoded transactions, on the CPU (`docs/BLOCK_FORMAT.md`).
pub fn tx_root_cpu(txs: &[Vec<u8>]) -> [u8; 32] {
    let ids: Vec<Hash32> = txs.iter().map(|t| Sha256::digest(t).into()).collect();
    vm_state::root::merkle_root(&ids)
}

/// A [`StateHasher`] that routes through the scheduler and records where it ran.
pub struct RoutedHasher {
    sched: Arc<HybridScheduler>,
    /// Builds the leaf messages in parallel (`None`: on the calling thread).
    pool: Option<Arc<rayon::ThreadPool>>,
    /// Work the scheduler would route to the CPU runs here instead of on the CPU pool (the
    /// commit thread: Block-STM holds the pool while the next block executes): on the
    /// calling thread, or on a small pool of its own.
    inline_cpu: Option<vm_state::CpuStateHasher>,
    nanos: AtomicU64,
    routes: Mutex<Vec<Route>>,
}

impl RoutedHasher {
    pub fn new(sched: Arc<HybridScheduler>) -> Self {
        Self {
            sched,
            pool: None,
            inline_cpu: None,
            nanos: AtomicU64::new(0),
            routes: Mutex::new(Vec::new()),
        }
    }
    /// Builds leaf messages on `pool`.
    pub fn with_pool(mut self, pool: Arc<rayon::ThreadPool>) -> Self {
        self.pool = Some(pool);
        self
    }
    /// CPU-routed hashing off the CPU pool: on `pool`, or on the calling thread (see the
    /// field).
    pub fn inline_cpu(mut self, pool: Option<Arc<rayon::ThreadPool>>) -> Self {
        self.inline_cpu = Some(match pool {
            Some(p) => vm_state::CpuStateHasher::with_pool(p),
            None => vm_state::CpuStateHasher::new(),
        });
        self
    }
    /// The hasher for this batch when it runs off the CPU pool.
    fn runs_inline(&self, kernel: Kernel, n: usize) -> Option<&vm_state::CpuStateHasher> {
        self.inline_cpu
            .as_ref()
            .filter(|_| !self.sched.prefers_gpu(kernel, n))
    }
    fn finish_inline(&self, kernel: Kernel, n: usize, t: Instant) {
        let ns = t.elapsed().as_nanos() as u64;
        self.sched.count_inline(kernel, n, ns);
        self.routes.lock().push(Route::Cpu);
        self.nanos.fetch_add(ns, Ordering::Relaxed);
    }
    /// Time spent hashing and the routes taken since the last call.
    pub fn take(&self) -> (u64, Vec<Route>) {
        (
            self.nanos.swap(0, Ordering::Relaxed),
            std::mem::take(&mut *self.routes.lock()),
        )
    }
}

impl StateHasher for RoutedHasher {
    fn leaf_hashes(&self, entries: &[(&[u8], &[u8])]) -> Vec<Hash32> {
        let t = Instant::now();
        if let Some(cpu) = self.runs_inline(Kernel::Hash, entries.len()) {
            let out = cpu.leaf_hashes(entries);
            self.finish_inline(Kernel::Hash, entries.len(), t);
            return out;
        }
        let msg = |(k, v): &(&[u8], &[u8])| {
            let mut m = Vec::with_capacity(4 + k.len() + v.len());
            m.extend_from_slice(&u32::try_from(k.len()).unwrap_or(u32::MAX).to_le_bytes());
            m.extend_from_slice(k);
            m.extend_from_slice(v);
            m
        };
        let msgs: Vec<Vec<u8>> = match &self.pool {
            Some(pool) if entries.len() >= 1024 => {
                pool.install(|| entries.par_iter().map(msg).collect())
            }
            _ => entries.iter().map(msg).collect(),
        };
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        let out = match self.sched.sha256_batch(&refs) {
            Ok((h, rep)) => {
                self.routes.lock().push(rep.route);
                h
            }
            Err(e) => {
                tracing::error!("leaf hashing failed on every route ({e}); using the reference");
                entries
                    .iter()
                    .map(|(k, v)| vm_state::root::leaf_hash(k, v))
                    .collect()
            }
        };
        self.nanos
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }

    fn merkle_root(&self, leaves: &[Hash32]) -> Hash32 {
        let t = Instant::now();
        if let Some(cpu) = self.runs_inline(Kernel::Merkle, leaves.len()) {
            let out = cpu.merkle_root(leaves);
            self.finish_inline(Kernel::Merkle, leaves.len(), t);
            return out;
        }
        let out = match self.sched.merkle_root(leaves) {
            Ok((r, rep)) => {
                self.routes.lock().push(rep.route);
                r
            }
            Err(e) => {
                tracing::error!("Merkle root failed on every route ({e}); using the reference");
                vm_state::root::merkle_root(leaves)
            }
        };
        self.nanos
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
}

/// Groth16 keys of the confidential-transfer circuit.
pub struct PrivacyKeys {
    /// Present for dev parameters and when `privacy.proving_key` is set.
    pub pk: Option<Arc<ProvingKey<Bn254>>>,
    pub pvk: Arc<PreparedVerifyingKey<Bn254>>,
}

/// Loads or creates the privacy keys per `[privacy]`. Dev parameters are created once and
/// cached under `data_dir` (proving key and verifying key in separate files, so a node that
/// only verifies loads the small one). `need_pk`: the caller proves (dev workload).
pub fn load_privacy_keys(cfg: &NodeConfig, need_pk: bool) -> Result<PrivacyKeys> {
    use zk_privacy::setup;
    let p = &cfg.privacy;
    let zk = |e: zk_privacy::ZkError| NodeError::Execution(format!("privacy parameters: {e}"));
    let prepared =
        |vk: &ark_groth16::VerifyingKey<Bn254>| Arc::new(zk_privacy::verify::prepare(vk));
    if !p.proving_key.as_os_str().is_empty() || !p.verifying_key.as_os_str().is_empty() {
        let pk = if need_pk || p.verifying_key.as_os_str().is_empty() {
            if p.proving_key.as_os_str().is_empty() {
                return Err(NodeError::ConfigValue {
                    key: "privacy.proving_key".into(),
                    message: "needed to prove privacy transfers".into(),
                });
            }
            Some(setup::load_proving_key(&p.proving_key).map_err(zk)?)
        } else {
            None
        };
        let vk = if p.verifying_key.as_os_str().is_empty() {
            pk.as_ref().map(|pk| pk.vk.clone())
        } else {
            Some(setup::load_verifying_key(&p.verifying_key).map_err(zk)?)
        };
        let vk = vk.ok_or_else(|| NodeError::ConfigValue {
            key: "privacy.verifying_key".into(),
            message: "no verifying key".into(),
        })?;
        return Ok(PrivacyKeys {
            pk: pk.map(Arc::new),
            pvk: prepared(&vk),
        });
    }
    let depth = p.tree_depth;
    let base = cfg
        .node
        .data_dir
        .join(format!("privacy-dev-d{depth}-s{}", p.dev_seed));
    let pk_path = base.with_extension("pk");
    let vk_path = base.with_extension("vk");
    if !need_pk {
        if let Ok(vk) = setup::load_verifying_key(&vk_path) {
            return Ok(PrivacyKeys {
                pk: None,
                pvk: prepared(&vk),
            });
        }
    }
    let pk = match setup::load_proving_key(&pk_path) {
        Ok(pk) => pk,
        Err(_) => {
            tracing::info!(
                depth,
                "creating dev privacy parameters (UNSAFE for production)"
            );
            let seed = format!("supervm-dev-{}", p.dev_seed);
            let pk = setup::dev_setup(
                zk_privacy::circuit::TransferCircuit::blank(depth),
                seed.as_bytes(),
            )
            .map_err(zk)?;
            if std::fs::create_dir_all(&cfg.node.data_dir).is_ok() {
                if let Err(e) = setup::save_proving_key(&pk, &pk_path)
                    .and_then(|_| setup::save_verifying_key(&pk.vk, &vk_path))
                {
                    tracing::warn!("cannot cache dev privacy parameters: {e}");
                }
            }
            pk
        }
    };
    let pvk = prepared(&pk.vk);
    Ok(PrivacyKeys {
        pk: Some(Arc::new(pk)),
        pvk,
    })
}

/// Time and route of one stage.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StageTime {
    pub stage: &'static str,
    pub ms: f64,
    /// `cpu`, `gpu`, `split` or `-` (nothing to do).
    pub route: String,
}

/// Counts per transaction kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KindCounts {
    pub transfer: usize,
    pub call: usize,
    pub deploy: usize,
    pub privacy: usize,
}

impl KindCounts {
    /// The counter of `kind`.
    pub fn of(&mut self, kind: &TxKind) -> &mut usize {
        match kind {
            TxKind::Transfer { .. } => &mut self.transfer,
            TxKind::Call { .. } => &mut self.call,
            TxKind::Deploy { .. } => &mut self.deploy,
            TxKind::Privacy(_) => &mut self.privacy,
        }
    }
    pub fn total(&self) -> usize {
        self.transfer + self.call + self.deploy + self.privacy
    }
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &KindCounts) {
        self.transfer += other.transfer;
        self.call += other.call;
        self.deploy += other.deploy;
        self.privacy += other.privacy;
    }
}

impl std::fmt::Display for KindCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "transfer {}, call {}, deploy {}, privacy {}",
            self.transfer, self.call, self.deploy, self.privacy
        )
    }
}

/// What happened to one committed block.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BlockReport {
    pub height: u64,
    pub txs: usize,
    pub privacy_txs: usize,
    /// Transactions whose receipt is not `Success`.
    pub failed_txs: usize,
    /// Transactions per kind.
    pub txs_by_kind: KindCounts,
    /// Failed (non-`Success`) transactions per kind.
    pub failed_by_kind: KindCounts,
    /// The first failed transaction: its index and status (`None` when all succeeded).
    pub first_failure: Option<(usize, String)>,
    pub state_root: [u8; 32],
    pub stages: Vec<StageTime>,
    /// Wall time of the block end to end (verification + execution + commit).
    pub total_ms: f64,
    pub tps: f64,
    pub aborts: u64,
    pub re_executions: u64,
    pub sequential_fallback: bool,
    pub committed_bytes: u64,
}

impl BlockReport {
    /// One line for the console.
    pub fn line(&self) -> String {
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|s| format!("{} {:.1}ms@{}", s.stage, s.ms, s.route))
            .collect();
        let failed = if self.failed_txs == 0 {
            "0 failed".to_string()
        } else {
            format!("{} failed: {}", self.failed_txs, self.failed_by_kind)
        };
        format!(
            "#{} txs={} ({} privacy, {failed}, {} re-executed) tps={:.0} total={:.1}ms | {} | root={}",
            self.height,
            self.txs,
            self.privacy_txs,
            self.re_executions,
            self.tps,
            self.total_ms,
            stages.join(" "),
            &hex::encode(self.state_root)[..16]
        )
    }
}

/// A block that passed stages 1-3 (decoding, transaction root, signatures).
pub struct SignedBlock {
    pub block: Block,
    /// The header's hash (computed once, in stage 1-3).
    pub hash: [u8; 32],
    pub txs: Vec<Transaction>,
    pub stages: Vec<StageTime>,
    verify_ns: u64,
    /// The declared-keys plan of `txs`, made here so that execution does not wait for it.
    plan: Option<BlockPlan>,
}

/// A block that passed stages 1-4.
pub struct VerifiedBlock {
    pub block: Block,
    pub hash: [u8; 32],
    pub txs: Vec<Transaction>,
    plan: Option<BlockPlan>,
    pub stages: Vec<StageTime>,
    pub privacy_txs: usize,
    verify_ns: u64,
}

impl VerifiedBlock {
    /// A block that passed stages 1-3, with `privacy_txs` privacy transactions, before (or
    /// without) its stage-4 verdict.
    fn unchecked(sb: SignedBlock, privacy_txs: usize) -> Self {
        let SignedBlock {
            block,
            hash,
            txs,
            stages,
            verify_ns,
            plan,
        } = sb;
        Self {
            block,
            hash,
            txs,
            plan,
            stages,
            privacy_txs,
            verify_ns,
        }
    }
}

/// One block's privacy proofs for stage 4: its height, and each proof's transaction index
/// and payload.
struct BlockProofs<'a> {
    height: u64,
    payloads: Vec<(usize, &'a [u8])>,
}

impl<'a> BlockProofs<'a> {
    fn of(height: u64, txs: &'a [Transaction]) -> Self {
        let payloads = txs
            .iter()
            .enumerate()
            .filter_map(|(i, tx)| match &tx.kind {
                TxKind::Privacy(p) => Some((i, p.as_slice())),
                _ => None,
            })
            .collect();
        Self { height, payloads }
    }
}

/// [`BlockProofs`] with copies of the payloads, kept by the proof stage while the block
/// itself goes on to execution.
struct OwnedProofs {
    height: u64,
    payloads: Vec<(usize, Vec<u8>)>,
}

impl OwnedProofs {
    fn of(sb: &SignedBlock) -> Self {
        let b = BlockProofs::of(sb.block.header.height, &sb.txs);
        Self {
            height: b.height,
            payloads: b.payloads.iter().map(|&(i, p)| (i, p.to_vec())).collect(),
        }
    }

    fn view(&self) -> BlockProofs<'_> {
        BlockProofs {
            height: self.height,
            payloads: self
                .payloads
                .iter()
                .map(|(i, p)| (*i, p.as_slice()))
                .collect(),
        }
    }
}

/// A block's stage-4 outcome: its proofs verified.
struct ProofVerdict {
    privacy_txs: usize,
    /// Where the batch ran (`-`: the block had no proofs).
    route: String,
    /// The block's share of the batch's time.
    share_ns: u64,
}

impl ProofVerdict {
    /// Adds the `proofs` stage to a block's stages (before `execute-idle` when the block
    /// has executed meanwhile, so that stages stay in pipeline order) and its time to the
    /// block's verification time.
    fn record(self, stages: &mut Vec<StageTime>, verify_ns: &mut u64) {
        let at = stages
            .iter()
            .position(|st| st.stage == "execute-idle")
            .unwrap_or(stages.len());
        stages.insert(
            at,
            StageTime {
                stage: "proofs",
                ms: self.share_ns as f64 / 1e6,
                route: self.route,
            },
        );
        *verify_ns += self.share_ns;
    }
}

/// A block that went through stage 5 (execution), waiting for its commit.
pub struct ExecutedBlock {
    pub height: u64,
    pub txs: usize,
    pub privacy_txs: usize,
    /// The block's writes plus the head record, committed in one step.
    pub write_set: Arc<WriteSet>,
    pub stages: Vec<StageTime>,
    verify_ns: u64,
    exec_ns: u64,
    txs_by_kind: KindCounts,
    failed_by_kind: KindCounts,
    first_failure: Option<(usize, String)>,
    aborts: u64,
    re_executions: u64,
    sequential_fallback: bool,
    /// Why Block-STM's probe was stopped (`slow` or `conflicts`), if it was.
    stopped_probe: Option<&'static str>,
}

/// Time a pipeline thread spent waiting since `since` (for its input, or for a later stage
/// to make room), reported with the block it then took up: the stage that waits least
/// is the pipeline's bottleneck.
fn idle_time(stage: &'static str, since: Instant) -> StageTime {
    StageTime {
        stage,
        ms: since.elapsed().as_secs_f64() * 1e3,
        route: "wait".into(),
    }
}

/// The result of a scoped thread (a panic there goes on here), or of `inline` run on this
/// thread when the thread could not be started.
fn joined_or_inline<T>(
    h: std::io::Result<std::thread::ScopedJoinHandle<'_, T>>,
    inline: impl FnOnce() -> T,
) -> T {
    match h {
        Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
        Err(_) => inline(),
    }
}

fn route_name(routes: &[Route]) -> String {
    let mut names: Vec<&str> = routes.iter().map(|r| r.name()).collect();
    names.dedup();
    if names.is_empty() {
        "-".into()
    } else {
        names.join("+")
    }
}

/// The WASM VM per `[execution]`.
pub fn build_vm(cfg: &NodeConfig) -> Result<Arc<Vm>> {
    let vm_cfg = VmConfig {
        memory_limit_bytes: usize::try_from(cfg.execution.wasm_memory_limit).unwrap_or(usize::MAX),
        ..VmConfig::default()
    };
    Vm::new(vm_cfg)
        .map(Arc::new)
        .map_err(|e| NodeError::Execution(e.to_string()))
}

/// The head of the chain: height, block hash, state root.
pub type Head = (u64, [u8; 32], [u8; 32]);

/// The node: committed state, scheduler, executor.
pub struct Node {
    cfg: NodeConfig,
    store: Arc<dyn StateStore>,
    sched: Arc<HybridScheduler>,
    executor: ParallelExecutor,
    exec: NodeExecutor,
    hasher: RoutedHasher,
    /// The hasher of commits that overlap the next block's execution ([`Node::import`]).
    commit_hasher: RoutedHasher,
    /// A small pool of its own (a quarter of the node's threads, up to 4) for short work on
    /// the critical path that must not queue behind the next block's verification on the
    /// main pool: the commit's hashing and the block's note-tree append.
    side_pool: Option<Arc<rayon::ThreadPool>>,
    pool: Arc<rayon::ThreadPool>,
    privacy: Arc<OnceLock<PrivacyKeys>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("scheduler", &self.sched)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node over `store`, with a scheduler built by the caller (see
    /// [`crate::build_scheduler`]) on `pool`.
    pub fn new(
        cfg: NodeConfig,
        store: Arc<dyn StateStore>,
        sched: Arc<HybridScheduler>,
        pool: Arc<rayon::ThreadPool>,
        privacy: Arc<OnceLock<PrivacyKeys>>,
        vm: Arc<Vm>,
    ) -> Result<Self> {
        let ppool = PrivacyPool::new(cfg.privacy.tree_depth, PRIVACY_RECENT_ROOTS)
            .map_err(|e| NodeError::Execution(e.to_string()))?;
        let threads = pool.current_num_threads();
        // A quarter of the node's threads (up to 4) hash the commits that overlap the next
        // block's execution and append the block's notes; short bursts, so they
        // oversubscribe the cores only briefly.
        let side_pool = rayon::ThreadPoolBuilder::new()
            .num_threads((threads / 4).clamp(1, 4))
            .thread_name(|i| format!("node-side-{i}"))
            .build()
            .map(Arc::new)
            .ok();
        Ok(Self {
            hasher: RoutedHasher::new(sched.clone()).with_pool(pool.clone()),
            commit_hasher: RoutedHasher::new(sched.clone()).inline_cpu(side_pool.clone()),
            side_pool,
            executor: {
                let executor = if cfg.execution.own_pool {
                    ParallelExecutor::new(cfg.workers())
                        .map_err(|e| NodeError::Execution(format!("Block-STM pool: {e}")))?
                } else {
                    ParallelExecutor::with_pool(pool.clone(), cfg.workers().min(threads))
                };
                executor.set_declared_graph(cfg.execution.declared_graph);
                executor
            },
            exec: NodeExecutor::new(vm, ppool),
            cfg,
            store,
            sched,
            pool,
            privacy,
        })
    }

    /// Saves the scheduler's learned cost models to the calibration cache (when
    /// calibration and its cache are on and a GPU is present; see
    /// [`crate::calibration::save`]). `run` and `import` call it when they stop.
    pub fn save_learned_costs(&self) {
        if let (true, Some(path)) = (self.calibrates(), crate::calibration_cache(&self.cfg)) {
            crate::calibration::save(&self.sched, &path);
        }
    }

    /// Whether this node calibrates its scheduler (calibration on, a strategy that decides
    /// routes).
    fn calibrates(&self) -> bool {
        self.cfg.scheduler.calibration && self.sched.strategy() != Strategy::CpuOnly
    }

    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }
    pub fn scheduler(&self) -> &Arc<HybridScheduler> {
        &self.sched
    }
    pub fn executor(&self) -> &NodeExecutor {
        &self.exec
    }

    /// The privacy keys with the proving key (for the dev workload); replaces verify-only
    /// keys loaded before.
    pub fn privacy_proving_key(&self) -> Result<Arc<ProvingKey<Bn254>>> {
        if let Some(pk) = self.privacy.get().and_then(|k| k.pk.clone()) {
            return Ok(pk);
        }
        let k = load_privacy_keys(&self.cfg, true)?;
        let pk =
            k.pk.clone()
                .ok_or_else(|| NodeError::Execution("no proving key".into()))?;
        if self.privacy.set(k).is_ok() {
            self.privacy_keys_loaded();
        }
        Ok(pk)
    }

    /// Once the privacy keys are loaded: the privacy-proof calibration
    /// ([`crate::calibration::calibrate_proofs`]), when calibration is on and the strategy
    /// is not `cpu_only`.
    fn privacy_keys_loaded(&self) {
        if self.calibrates() {
            let cache = crate::calibration_cache(&self.cfg);
            crate::calibration::calibrate_proofs(&self.sched, cache.as_deref());
        }
    }

    /// The privacy keys, loaded or created on first use.
    pub fn privacy_keys(&self) -> Result<&PrivacyKeys> {
        if let Some(k) = self.privacy.get() {
            return Ok(k);
        }
        let k = load_privacy_keys(&self.cfg, false)?;
        if self.privacy.set(k).is_ok() {
            self.privacy_keys_loaded();
        }
        self.privacy
            .get()
            .ok_or_else(|| NodeError::Execution("privacy keys not set".into()))
    }

    fn store_err(e: vm_state::VmStateError) -> NodeError {
        NodeError::Store(e.to_string())
    }

    /// The last committed block: height, block hash and state root; `None` before genesis.
    pub fn head(&self) -> Result<Option<Head>> {
        let Some(CommitInfo { height, state_root }) =
            self.store.latest().map_err(Self::store_err)?
        else {
            return Ok(None);
        };
        let v = self
            .store
            .get(&head_key())
            .map_err(Self::store_err)?
            .ok_or_else(|| NodeError::Store("committed state has no head record".into()))?;
        if v.len() != 40 {
            return Err(NodeError::Store(format!(
                "head record of {} bytes",
                v.len()
            )));
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&v[8..]);
        let mut hb = [0u8; 8];
        hb.copy_from_slice(&v[..8]);
        let recorded = u64::from_le_bytes(hb);
        if recorded != height {
            return Err(NodeError::Store(format!(
                "head record says height {recorded}, store says {height}"
            )));
        }
        Ok(Some((height, hash, state_root)))
    }

    /// Commits `genesis` as block 0 on a fresh store; on a store that has it already, checks
    /// it is the same genesis. Returns the head.
    pub fn init_genesis(&self, genesis: &Genesis) -> Result<Head> {
        let ghash = genesis.hash();
        if genesis.chain_id != self.cfg.node.chain_id {
            return Err(NodeError::BlockRejected {
                height: 0,
                reason: format!(
                    "genesis is for chain {}, node is chain {}",
                    genesis.chain_id, self.cfg.node.chain_id
                ),
            });
        }
        if let Some(head) = self.head()? {
            let stored = self
                .store
                .get(&genesis_key())
                .map_err(Self::store_err)?
                .map(|v| v.to_vec());
            if stored.as_deref() != Some(&ghash[..]) {
                return Err(NodeError::BlockRejected {
                    height: 0,
                    reason: "the data directory holds a different genesis".into(),
                });
            }
            check_state_layout(&*self.store)?;
            return Ok(head);
        }
        let mut ws = WriteSet::new();
        for (k, v) in &genesis.entries {
            if k.first() == Some(&b'h') {
                return Err(NodeError::BlockRejected {
                    height: 0,
                    reason: "genesis writes a reserved system key (tag 'h')".into(),
                });
            }
            if matches!(
                k.first(),
                Some(&(StateKey::TAG_LEGACY_BALANCE | StateKey::TAG_LEGACY_NONCE))
            ) {
                return Err(NodeError::BlockRejected {
                    height: 0,
                    reason: "genesis uses a retired balance or nonce key (tags 'b', 'n'); \
                             balances and nonces live in account records (tag 'a')"
                        .into(),
                });
            }
            if k.first() == Some(&StateKey::TAG_ACCOUNT) {
                if let Err(e) = vm_state::Account::decode(Some(v)) {
                    return Err(NodeError::BlockRejected {
                        height: 0,
                        reason: format!("genesis account {}: {e}", hex::encode(k)),
                    });
                }
            }
            ws.insert(StateKey(k.clone()), Some(StateValue::from(v.as_slice())));
        }
        ws.insert(genesis_key(), Some(StateValue::from(&ghash[..])));
        ws.insert(layout_key(), Some(StateValue::from(&[STATE_LAYOUT][..])));
        ws.insert(head_key(), Some(head_value(0, &ghash)));
        let info = self
            .store
            .commit_block(0, &ws, &self.hasher)
            .map_err(Self::store_err)?;
        self.hasher.take();
        metrics::gauge!(m::HEIGHT).set(0.0);
        Ok((0, ghash, info.state_root))
    }

    fn reject(height: u64, reason: String) -> NodeError {
        metrics::counter!(m::BLOCKS_REJECTED).increment(1);
        Self::rejection(height, reason)
    }

    /// A rejection not yet counted: stages 1-3 may find several reasons in one block (in
    /// parallel decoding, or stage 2 beside stage 3); [`Self::verify_signed`] counts the one
    /// it returns.
    fn rejection(height: u64, reason: String) -> NodeError {
        NodeError::BlockRejected { height, reason }
    }

    /// Stages 1-4 against the expected parent (`height`, `hash`).
    pub fn verify(&self, block: Block, parent: (u64, [u8; 32])) -> Result<VerifiedBlock> {
        self.verify_signed(block, parent)
            .and_then(|s| self.verify_proofs(s))
    }

    /// Stages 1-3 of a block after `parent` (height, hash): header checks and decoding,
    /// the transaction root, the signatures.
    pub fn verify_signed(&self, block: Block, parent: (u64, [u8; 32])) -> Result<SignedBlock> {
        let r = self.signed_checks(block, parent);
        if let Err(NodeError::BlockRejected { .. }) = &r {
            metrics::counter!(m::BLOCKS_REJECTED).increment(1);
        }
        r
    }

    fn signed_checks(&self, block: Block, parent: (u64, [u8; 32])) -> Result<SignedBlock> {
        let t0 = Instant::now();
        let h = &block.header;
        let height = h.height;
        if h.chain_id != self.cfg.node.chain_id {
            return Err(Self::rejection(
                height,
                format!(
                    "chain id {} (node is {})",
                    h.chain_id, self.cfg.node.chain_id
                ),
            ));
        }
        if height != parent.0 + 1 {
            return Err(Self::rejection(
                height,
                format!("height {height}, expected {}", parent.0 + 1),
            ));
        }
        if h.parent_hash != parent.1 {
            return Err(Self::rejection(
                height,
                format!(
                    "parent hash {} is not the head's {}",
                    hex::encode(h.parent_hash),
                    hex::encode(parent.1)
                ),
            ));
        }
        let txs: Vec<Transaction> = self.pool.install(|| {
            block
                .txs
                .par_iter()
                .enumerate()
                .map(|(i, b)| {
                    Transaction::decode(b).map_err(|e| {
                        Self::rejection(height, format!("transaction {i} is malformed: {e}"))
                    })
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let mut stages = vec![StageTime {
            stage: "decode",
            ms: t0.elapsed().as_secs_f64() * 1e3,
            route: "cpu".into(),
        }];
        // Stages 2 and 3 and the plan need only the decoded transactions. In a large block
        // the transaction root and the plan run on two threads of their own while this one
        // checks the signatures (on the GPU route mostly a wait for the device); their
        // verdicts are taken in stage order, so a block is rejected for the same reason
        // either way.
        let (root, sigs, plan) = if txs.len() >= FRONT_OVERLAP_MIN_TXS {
            std::thread::scope(|s| {
                let named = |name: &str| std::thread::Builder::new().name(name.into());
                let root = named("front-root").spawn_scoped(s, || {
                    let _cpu = crate::cputime::ExitGuard;
                    self.check_tx_root(&block, &txs)
                });
                let plan = named("front-plan").spawn_scoped(s, || {
                    let _cpu = crate::cputime::ExitGuard;
                    self.plan_txs(&txs)
                });
                let sigs = self.check_signatures(height, &txs);
                (
                    joined_or_inline(root, || self.check_tx_root(&block, &txs)),
                    sigs,
                    joined_or_inline(plan, || self.plan_txs(&txs)),
                )
            })
        } else {
            let root = self.check_tx_root(&block, &txs)?;
            let sigs = self.check_signatures(height, &txs)?;
            (Ok(root), Ok(sigs), self.plan_txs(&txs))
        };
        stages.push(root?);
        stages.push(sigs?);
        let plan = match plan? {
            Some((plan, st)) => {
                stages.push(st);
                Some(plan)
            }
            None => None,
        };
        Ok(SignedBlock {
            hash: block.header.hash(),
            block,
            txs,
            stages,
            verify_ns: t0.elapsed().as_nanos() as u64,
            plan,
        })
    }

    /// Stage 2: the transaction ids and their Merkle root (routed) against the header, and
    /// the block's gas limits against the block gas limit.
    fn check_tx_root(&self, block: &Block, txs: &[Transaction]) -> Result<StageTime> {
        let t = Instant::now();
        let h = &block.header;
        let refs: Vec<&[u8]> = block.txs.iter().map(|t| t.as_slice()).collect();
        let (ids, r1) = self.sched.sha256_batch(&refs)?;
        let (root, r2) = self.sched.merkle_root(&ids)?;
        if root != h.tx_root {
            return Err(Self::rejection(
                h.height,
                format!(
                    "transaction root {} does not match the header's {}",
                    hex::encode(root),
                    hex::encode(h.tx_root)
                ),
            ));
        }
        let gas: u128 = txs.iter().map(|t| u128::from(t.gas_limit)).sum();
        if gas > u128::from(self.cfg.execution.block_gas_limit) {
            return Err(Self::rejection(
                h.height,
                format!(
                    "gas limits add up to {gas}, over the block gas limit {}",
                    self.cfg.execution.block_gas_limit
                ),
            ));
        }
        Ok(StageTime {
            stage: "txroot",
            ms: t.elapsed().as_secs_f64() * 1e3,
            route: route_name(&[r1.route, r2.route]),
        })
    }

    /// Stage 3: every signature, in one routed batch.
    fn check_signatures(&self, height: u64, txs: &[Transaction]) -> Result<StageTime> {
        let t = Instant::now();
        let hashes: Vec<[u8; 32]> = self
            .pool
            .install(|| txs.par_iter().map(|t| t.signing_hash()).collect());
        let items: Vec<SigItem<'_>> = txs
            .iter()
            .zip(&hashes)
            .map(|(t, h)| SigItem {
                public_key: t.sender,
                signature: t.signature,
                message: h,
            })
            .collect();
        let (ok, rep) = self.sched.verify_signatures(&items)?;
        if let Some(i) = ok.iter().position(|v| !v) {
            return Err(Self::rejection(
                height,
                format!("transaction {i} has an invalid signature"),
            ));
        }
        Ok(StageTime {
            stage: "signatures",
            ms: t.elapsed().as_secs_f64() * 1e3,
            route: if items.is_empty() {
                "-".into()
            } else {
                rep.route.name().into()
            },
        })
    }

    /// The declared-keys plan (`vm_state::BlockPlan`) where the executor takes plans: it
    /// needs only the transactions, so it is made while the blocks before this one execute.
    fn plan_txs(&self, txs: &[Transaction]) -> Result<Option<(BlockPlan, StageTime)>> {
        if !self.executor.wants_plans() {
            return Ok(None);
        }
        let t = Instant::now();
        let plan = self
            .executor
            .plan_block(&self.exec, txs)
            .map_err(|e| NodeError::Execution(e.to_string()))?;
        Ok(Some((
            plan,
            StageTime {
                stage: "plan",
                ms: t.elapsed().as_secs_f64() * 1e3,
                route: "cpu".into(),
            },
        )))
    }

    /// Stage 4: every privacy proof of a block that passed stages 1-3, in one routed batch.
    pub fn verify_proofs(&self, s: SignedBlock) -> Result<VerifiedBlock> {
        self.verify_proofs_group(vec![s])
            .pop()
            .unwrap_or_else(|| Err(NodeError::Execution("no proof-stage result".into())))
    }

    /// Stage 4 for consecutive blocks at once: their proofs in ONE routed batch (the GPU's
    /// Miller-loop kernel takes about the same time for one block's pairs as for several
    /// blocks' pairs), each proof's verdict exactly as in a batch of its own block. Results
    /// in order; the first block with an invalid proof is rejected and the blocks after it
    /// (its descendants) are not returned. The batch's time is shared out evenly.
    pub fn verify_proofs_group(&self, group: Vec<SignedBlock>) -> Vec<Result<VerifiedBlock>> {
        let verdicts = {
            let views: Vec<BlockProofs<'_>> = group
                .iter()
                .map(|sb| BlockProofs::of(sb.block.header.height, &sb.txs))
                .collect();
            self.proof_verdicts(&views)
        };
        let mut out = Vec::with_capacity(group.len());
        for (sb, verdict) in group.into_iter().zip(verdicts) {
            match verdict {
                Ok(pv) => {
                    let mut v = VerifiedBlock::unchecked(sb, pv.privacy_txs);
                    pv.record(&mut v.stages, &mut v.verify_ns);
                    out.push(Ok(v));
                }
                Err(e) => {
                    out.push(Err(e));
                    break;
                }
            }
        }
        out
    }

    /// The verdicts of stage 4 for consecutive blocks' proofs, checked in one routed batch:
    /// one per block in order, up to and including the first failure (a block with an
    /// invalid proof, naming its transaction; or the batch's error, given to the first
    /// block).
    fn proof_verdicts(&self, blocks: &[BlockProofs<'_>]) -> Vec<Result<ProofVerdict>> {
        let t = Instant::now();
        let proofs: Vec<ProofItem<'_>> = blocks
            .iter()
            .flat_map(|b| b.payloads.iter().map(|&(_, payload)| ProofItem { payload }))
            .collect();
        let mut verdict: Result<(Vec<bool>, String)> = Ok((Vec::new(), "-".to_string()));
        if !proofs.is_empty() {
            verdict = self.privacy_keys().and_then(|_| {
                self.sched
                    .verify_proofs(&proofs)
                    .map(|(ok, rep)| (ok, rep.route.name().to_string()))
            });
        }
        let n = blocks.len().max(1) as u64;
        let share_ns = t.elapsed().as_nanos() as u64 / n;
        let (ok, route) = match verdict {
            Ok(v) => v,
            // The batch decided nothing: the first block gets the error.
            Err(e) => return vec![Err(e)],
        };
        if blocks.len() > 1 {
            tracing::debug!(
                target: "supervm::verify",
                blocks = blocks.len(),
                proofs = ok.len(),
                ms = t.elapsed().as_secs_f64() * 1e3,
                "checked the proofs of queued blocks in one batch"
            );
        }
        let mut out = Vec::with_capacity(blocks.len());
        let mut start = 0;
        for b in blocks {
            let mine = start..start + b.payloads.len();
            start = mine.end;
            if let Some(j) = mine.clone().find(|&j| !ok[j]) {
                out.push(Err(Self::reject(
                    b.height,
                    format!(
                        "transaction {} has an invalid privacy proof",
                        b.payloads[j - mine.start].0
                    ),
                )));
                break;
            }
            out.push(Ok(ProofVerdict {
                privacy_txs: mine.len(),
                route: if mine.is_empty() {
                    "-".into()
                } else {
                    route.clone()
                },
                share_ns,
            }));
        }
        out
    }

    /// Stage 5: executes a verified block over `base`, committed state up to the block's
    /// parent (a snapshot).
    pub fn execute(&self, mut v: VerifiedBlock, base: &dyn StateReader) -> Result<ExecutedBlock> {
        let height = v.block.header.height;
        let plan = v.plan.take();
        let t = Instant::now();
        let env = BlockEnv {
            number: height,
            timestamp: v.block.header.timestamp,
            chain_id: self.cfg.node.chain_id,
        };
        // The note-tree append reads only committed state: with every privacy transfer
        // taken as accepted, it runs on the side pool while the block executes, and is kept
        // when execution accepted exactly those (see `NodeExecutor::append_notes`).
        let (out, early_notes) = match &self.side_pool {
            Some(side) if v.privacy_txs > 0 => {
                let txs = &v.txs;
                let mut early = None;
                // The append is a job on the side pool; execution runs here meanwhile.
                let (out, executed) = side.in_place_scope(|s| {
                    let early = &mut early;
                    s.spawn(move |_| {
                        let t = Instant::now();
                        // A panic only loses the early result (it is computed again).
                        *early = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            self.exec.append_notes(
                                txs,
                                |i| matches!(txs[i].kind, TxKind::Privacy(_)),
                                base,
                            )
                        }))
                        .ok()
                        .map(|notes| (notes, t.elapsed()));
                    });
                    let out = self
                        .executor
                        .execute_block_planned(&self.exec, &v.txs, &env, base, plan);
                    (out, Instant::now())
                });
                (out, early.map(|(n, took)| (n, took, executed)))
            }
            _ => (
                self.executor
                    .execute_block_planned(&self.exec, &v.txs, &env, base, plan),
                None,
            ),
        };
        // Waiting for the early note-tree append counts as the notes stage.
        let tn = early_notes.as_ref().map_or_else(Instant::now, |e| e.2);
        let out = out.map_err(|e| NodeError::Execution(e.to_string()))?;
        let exec_ns = tn.saturating_duration_since(t).as_nanos() as u64;
        self.sched
            .count_task(engine_api::TaskType::Transaction, v.txs.len(), exec_ns);
        let mut stages = v.stages;
        // How the block ran: on the dependency graph of its declared keys, with Block-STM,
        // or sequentially (after a stopped probe, a skipped one, a chain, or a fallback).
        let st = &out.stats;
        let graph = st.declared_runs > 0;
        let mode = if graph {
            "graph"
        } else if st.parallel_ns > 0 && st.probe_bailouts == 0 && !st.sequential_fallback {
            "bstm"
        } else {
            "seq"
        };
        stages.push(StageTime {
            stage: "execute",
            ms: exec_ns as f64 / 1e6,
            route: format!("cpu/{}t/{mode}", self.executor.threads()),
        });
        // A Block-STM probe stopped (the block then ran sequentially): how long it ran and
        // why.
        let stopped_probe =
            (out.stats.probe_bailouts > 0).then_some(if out.stats.probe_slow_bailouts > 0 {
                "slow"
            } else {
                "conflicts"
            });
        if let Some(reason) = stopped_probe {
            stages.push(StageTime {
                stage: "stopped-probe",
                ms: out.stats.probe_ns as f64 / 1e6,
                route: reason.into(),
            });
        }
        // With `SUPERVM_EXEC_PROFILE` set, where Block-STM's workers spent their time
        // (summed over workers) and its phases' wall times, or a graph block's phases.
        let (st, p) = (&out.stats, &out.stats.profile);
        let profile: Vec<(&'static str, u64, &str)> = if !vm_state::profiling() {
            Vec::new()
        } else if graph {
            vec![
                ("graph-plan", st.plan_ns, "wall"),
                ("graph-executor", p.execute_ns, "sum"),
                ("graph-parallel", st.parallel_ns, "wall"),
                ("graph-effective", st.effective_parallel_ns, "workers"),
                ("graph-finish", st.finish_ns, "wall"),
            ]
        } else if p.execute_ns > 0 {
            vec![
                ("bstm-execute", p.execute_ns, "sum"),
                ("bstm-record", p.record_ns, "sum"),
                ("bstm-validate", p.validate_ns, "sum"),
                ("bstm-schedule", p.schedule_ns, "sum"),
                ("bstm-sequential", st.sequential_ns, "wall"),
                ("bstm-parallel", st.parallel_ns, "wall"),
                ("bstm-finish", st.finish_ns, "wall"),
            ]
        } else {
            Vec::new()
        };
        stages.extend(profile.into_iter().map(|(stage, ns, route)| StageTime {
            stage,
            ms: ns as f64 / 1e6,
            route: route.into(),
        }));
        let mut txs_by_kind = KindCounts::default();
        let mut failed_by_kind = KindCounts::default();
        let mut first_failure = None;
        for (i, (tx, r)) in v.txs.iter().zip(&out.receipts).enumerate() {
            *txs_by_kind.of(&tx.kind) += 1;
            if r.status != TxStatus::Success {
                *failed_by_kind.of(&tx.kind) += 1;
                if first_failure.is_none() {
                    first_failure = Some((i, format!("{:?}", r.status)));
                }
            }
        }
        let mut ws = out.write_set;
        let early = early_notes.and_then(|(notes, took, _)| match notes {
            Ok(n) if n.matches(&v.txs, &out.receipts) => Some((n, took)),
            _ => None,
        });
        let (appended, route) = match early {
            Some((notes, took)) => {
                tracing::trace!(
                    target: "supervm::notes",
                    height,
                    ms = took.as_secs_f64() * 1e3,
                    "note-tree append ran beside execution"
                );
                (notes.apply(&mut ws), "cpu/beside")
            }
            None => {
                // The note-tree append is on the critical path; the main pool may be busy
                // verifying the next block, so a block with privacy transfers appends on
                // the side pool.
                let mut finalize = || {
                    self.exec
                        .finalize_block(&v.txs, &out.receipts, base, &mut ws)
                        .map_err(|reason| Self::reject(height, reason))
                };
                let appended = match &self.side_pool {
                    Some(side) if v.privacy_txs > 0 => side.install(finalize)?,
                    _ => finalize()?,
                };
                (appended, "cpu")
            }
        };
        stages.push(StageTime {
            stage: "notes",
            ms: tn.elapsed().as_secs_f64() * 1e3,
            route: if appended.is_some() { route } else { "-" }.into(),
        });
        let exec_ns = t.elapsed().as_nanos() as u64;
        ws.insert(head_key(), Some(head_value(height, &v.hash)));
        Ok(ExecutedBlock {
            height,
            txs: v.txs.len(),
            privacy_txs: v.privacy_txs,
            write_set: Arc::new(ws),
            stages,
            verify_ns: v.verify_ns,
            exec_ns,
            txs_by_kind,
            failed_by_kind,
            first_failure,
            aborts: out.stats.aborts,
            re_executions: out.stats.re_executions(),
            sequential_fallback: out.stats.sequential_fallback,
            stopped_probe,
        })
    }

    /// Stages 6-7: state root and one atomic commit of an executed block (which must
    /// follow the head), then metrics.
    pub fn commit(&self, e: ExecutedBlock) -> Result<BlockReport> {
        self.commit_group(vec![e], &self.hasher)?
            .pop()
            .ok_or_else(|| NodeError::Store("a commit returned no report".into()))
    }

    /// Commits consecutive executed blocks in one store call ([`StateStore::commit_blocks`])
    /// and reports each; the group's commit and state-root times are shared out evenly.
    fn commit_group(
        &self,
        group: Vec<ExecutedBlock>,
        hasher: &RoutedHasher,
    ) -> Result<Vec<BlockReport>> {
        let refs: Vec<(u64, &WriteSet)> = group.iter().map(|e| (e.height, &*e.write_set)).collect();
        let t = Instant::now();
        hasher.take();
        let infos = self
            .store
            .commit_blocks(&refs, hasher)
            .map_err(Self::store_err)?;
        let n = group.len().max(1) as u64;
        if n > 1 {
            tracing::debug!(
                target: "supervm::commit",
                blocks = n,
                ms = t.elapsed().as_secs_f64() * 1e3,
                "committed a group of queued blocks in one transaction"
            );
        }
        let commit_ns = t.elapsed().as_nanos() as u64 / n;
        let (root_ns, routes) = hasher.take();
        let root_ns = root_ns / n;
        if infos.len() != group.len() {
            return Err(NodeError::Store(format!(
                "{} commit results for {} blocks",
                infos.len(),
                group.len()
            )));
        }
        Ok(group
            .into_iter()
            .zip(infos)
            .map(|(e, info)| self.report(e, info, commit_ns, root_ns, &routes))
            .collect())
    }

    fn report(
        &self,
        e: ExecutedBlock,
        info: CommitInfo,
        commit_ns: u64,
        root_ns: u64,
        routes: &[Route],
    ) -> BlockReport {
        let height = e.height;
        let ws = &*e.write_set;
        let committed_bytes: u64 = ws
            .iter()
            .map(|(k, v)| (k.0.len() + v.as_ref().map_or(0, |v| v.len())) as u64)
            .sum();
        let mut stages = e.stages;
        stages.push(StageTime {
            stage: "stateroot",
            ms: root_ns as f64 / 1e6,
            route: route_name(routes),
        });
        stages.push(StageTime {
            stage: "commit",
            ms: commit_ns.saturating_sub(root_ns) as f64 / 1e6,
            route: "cpu".into(),
        });
        let total_ns = e.verify_ns + e.exec_ns + commit_ns;
        let txs = e.txs;
        let tps = if total_ns > 0 {
            txs as f64 / (total_ns as f64 / 1e9)
        } else {
            0.0
        };
        for s in &stages {
            m::stage(s.stage, s.ms * 1e3);
        }
        m::stage("block", total_ns as f64 / 1e3);
        metrics::gauge!(m::HEIGHT).set(height as f64);
        metrics::gauge!(m::TPS).set(tps);
        metrics::counter!(m::BLOCKS).increment(1);
        metrics::counter!(m::TXS).increment(txs as u64);
        metrics::counter!(m::REEXECUTIONS).increment(e.re_executions);
        metrics::counter!(m::ABORTS).increment(e.aborts);
        if e.sequential_fallback {
            metrics::counter!(m::SEQUENTIAL_FALLBACKS).increment(1);
        }
        if let Some(reason) = e.stopped_probe {
            metrics::counter!(m::STOPPED_PROBES, "reason" => reason).increment(1);
        }
        metrics::counter!(m::COMMITTED_BYTES).increment(committed_bytes);
        BlockReport {
            height,
            txs,
            privacy_txs: e.privacy_txs,
            failed_txs: e.failed_by_kind.total(),
            txs_by_kind: e.txs_by_kind,
            failed_by_kind: e.failed_by_kind,
            first_failure: e.first_failure,
            state_root: info.state_root,
            stages,
            total_ms: total_ns as f64 / 1e6,
            tps,
            aborts: e.aborts,
            re_executions: e.re_executions,
            sequential_fallback: e.sequential_fallback,
            committed_bytes,
        }
    }

    /// Stages 5-7: executes and commits a verified block (which must follow the head).
    pub fn execute_commit(&self, v: VerifiedBlock) -> Result<BlockReport> {
        let snapshot = self.store.snapshot().map_err(Self::store_err)?;
        let e = self.execute(v, snapshot.as_ref())?;
        self.commit(e)
    }

    /// Verifies, executes and commits one block after the head.
    pub fn import_block(&self, block: Block) -> Result<BlockReport> {
        let (h, hash, _) = self
            .head()?
            .ok_or_else(|| NodeError::Store("no genesis committed".into()))?;
        let v = self.verify(block, (h, hash))?;
        self.execute_commit(v)
    }

    /// Imports a stream of blocks as a four-stage pipeline: while block N executes, block
    /// N+2 goes through stages 1-3 on one thread, block N+1's proofs are checked on another,
    /// and blocks N-1 and N-2 commit on a third. Stops at the
    /// end of the stream, at the first bad block (its error is returned after every block
    /// before it is committed), or when `stop` is set. `on_block` sees each committed
    /// block's report, in order. Returns the number committed.
    ///
    /// Block N executes over a snapshot of committed state with the write sets of blocks
    /// N-1 and N-2 on top ([`Overlay`]), so it need not wait for their commits; at most
    /// [`COMMITS_IN_FLIGHT`] blocks are queued or committing, blocks queued together commit
    /// in one store transaction, and commits happen in order, each atomic, so a crash leaves
    /// a prefix of the chain. The committing thread hashes on its own thread (or the GPU),
    /// not on the pool that Block-STM holds ([`RoutedHasher::inline_cpu`]).
    pub fn import<I>(
        &self,
        blocks: I,
        stop: &AtomicBool,
        mut on_block: impl FnMut(&BlockReport),
    ) -> Result<u64>
    where
        I: Iterator<Item = Result<Block>> + Send,
    {
        let (h, hash, _) = self
            .head()?
            .ok_or_else(|| NodeError::Store("no genesis committed".into()))?;
        std::thread::scope(|s| {
            // Stages 1-3 may run up to PROOF_GROUP blocks ahead of the proof stage, so that
            // when the proof stage falls behind, its next batch takes them all at once.
            let (stx, srx) = mpsc::sync_channel::<Result<SignedBlock>>(PROOF_GROUP);
            let named = |name: &str| std::thread::Builder::new().name(name.into());
            let spawn_error = |e: std::io::Error| {
                NodeError::Execution(format!("cannot start a pipeline thread: {e}"))
            };
            named("front")
                .spawn_scoped(s, move || {
                    let _cpu = crate::cputime::ExitGuard;
                    let mut parent = (h, hash);
                    for b in blocks {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let v = b.and_then(|b| self.verify_signed(b, parent));
                        let failed = match &v {
                            Ok(v) => {
                                parent = (v.block.header.height, v.hash);
                                false
                            }
                            Err(_) => true,
                        };
                        if stx.send(v).is_err() || failed {
                            break;
                        }
                    }
                })
                .map_err(spawn_error)?;
            // The proof stage hands each block on to execution before its proofs are
            // checked (`rx`), then sends the verdicts in block order (`vrx`): a block
            // executes while its proofs are checked, and commits only once they verified.
            // The blocks channel holds a whole group, so the proof stage never waits on
            // execution while execution waits for one of that group's verdicts.
            let (tx, rx) = mpsc::sync_channel::<Result<VerifiedBlock>>(PROOF_GROUP);
            let (vtx, vrx) = mpsc::channel::<Result<ProofVerdict>>();
            named("proofs")
                .spawn_scoped(s, move || {
                    let _cpu = crate::cputime::ExitGuard;
                    // Blocks that queued up while the last batch ran are checked together (at
                    // most PROOF_GROUP): one GPU batch instead of several.
                    loop {
                        let idle = Instant::now();
                        let Ok(first) = srx.recv() else { break };
                        let mut group = Vec::new();
                        let mut front_err = None;
                        match first {
                            Ok(mut sb) => {
                                sb.stages.push(idle_time("proofs-idle", idle));
                                group.push(sb)
                            }
                            Err(e) => front_err = Some(e),
                        }
                        while front_err.is_none() && group.len() < PROOF_GROUP {
                            match srx.try_recv() {
                                Ok(Ok(sb)) => group.push(sb),
                                Ok(Err(e)) => front_err = Some(e),
                                Err(_) => break,
                            }
                        }
                        // The payloads stay here (copied: a few hundred bytes a proof); the
                        // blocks go on.
                        let owned: Vec<OwnedProofs> = group.iter().map(OwnedProofs::of).collect();
                        for (sb, o) in group.into_iter().zip(&owned) {
                            let v = VerifiedBlock::unchecked(sb, o.payloads.len());
                            if tx.send(Ok(v)).is_err() {
                                return;
                            }
                        }
                        let views: Vec<BlockProofs<'_>> =
                            owned.iter().map(OwnedProofs::view).collect();
                        let verdicts = if views.is_empty() {
                            Vec::new()
                        } else {
                            self.proof_verdicts(&views)
                        };
                        for v in verdicts {
                            let failed = v.is_err();
                            if vtx.send(v).is_err() || failed {
                                return;
                            }
                        }
                        if let Some(e) = front_err {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                })
                .map_err(spawn_error)?;
            let (ctx, crx) = mpsc::channel::<ExecutedBlock>();
            let (dtx, drx) = mpsc::channel::<Result<BlockReport>>();
            named("commit")
                .spawn_scoped(s, move || {
                    let _cpu = crate::cputime::ExitGuard;
                    loop {
                        let idle = Instant::now();
                        let Ok(mut first) = crx.recv() else { break };
                        first.stages.push(idle_time("commit-idle", idle));
                        // Whatever else is queued commits with it (at most COMMITS_IN_FLIGHT).
                        let mut group = vec![first];
                        while let Ok(e) = crx.try_recv() {
                            group.push(e);
                        }
                        match self.commit_group(group, &self.commit_hasher) {
                            Ok(reports) => {
                                for rep in reports {
                                    if dtx.send(Ok(rep)).is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(e) => {
                                let _ = dtx.send(Err(e));
                                return;
                            }
                        }
                    }
                })
                .map_err(spawn_error)?;
            let mut committed = 0u64;
            let mut in_flight = 0usize;
            let mut first_err: Option<NodeError> = None;
            let mut handle = |r: Result<BlockReport>, first_err: &mut Option<NodeError>| match r {
                Ok(rep) => {
                    committed += 1;
                    on_block(&rep);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            };
            // Write sets of the latest blocks sent to commit, newest first.
            let mut recent: std::collections::VecDeque<Arc<WriteSet>> =
                std::collections::VecDeque::with_capacity(COMMITS_IN_FLIGHT + 1);
            loop {
                let idle = Instant::now();
                let Ok(v) = rx.recv() else { break };
                let mut v = match v {
                    Ok(v) => v,
                    Err(e) => {
                        first_err.get_or_insert(e);
                        break;
                    }
                };
                // Block N-1-COMMITS_IN_FLIGHT must be committed before N reads a snapshot
                // (the blocks after it may still be committing: their write sets are laid
                // over the snapshot).
                v.stages.push(idle_time("execute-idle", idle));
                let blocked = Instant::now();
                let must_wait = in_flight > COMMITS_IN_FLIGHT;
                while in_flight > COMMITS_IN_FLIGHT {
                    match drx.recv() {
                        Ok(r) => handle(r, &mut first_err),
                        Err(_) => break,
                    }
                    in_flight -= 1;
                }
                if must_wait {
                    v.stages.push(idle_time("execute-blocked", blocked));
                }
                while let Ok(r) = drx.try_recv() {
                    handle(r, &mut first_err);
                    in_flight -= 1;
                }
                if first_err.is_some() {
                    break;
                }
                let snapshot = match self.store.snapshot() {
                    Ok(s) => s,
                    Err(e) => {
                        first_err = Some(Self::store_err(e));
                        break;
                    }
                };
                // Commits finish in order: the ones in flight are the newest `in_flight`.
                let executed = if in_flight == 0 {
                    self.execute(v, snapshot.as_ref())
                } else {
                    self.execute(
                        v,
                        &Overlay {
                            base: snapshot,
                            tops: recent.iter().take(in_flight).cloned().collect(),
                        },
                    )
                };
                let mut e = match executed {
                    Ok(e) => e,
                    Err(e) => {
                        first_err = Some(e);
                        break;
                    }
                };
                // Its proofs' verdict (usually in already): only a verified block commits.
                let waiting = Instant::now();
                match vrx.recv() {
                    Ok(Ok(pv)) => {
                        pv.record(&mut e.stages, &mut e.verify_ns);
                        e.stages.push(idle_time("proofs-wait", waiting));
                    }
                    Ok(Err(err)) => {
                        first_err = Some(err);
                        break;
                    }
                    Err(_) => {
                        first_err = Some(NodeError::Execution(
                            "the proof stage ended without a verdict".into(),
                        ));
                        break;
                    }
                }
                recent.push_front(e.write_set.clone());
                recent.truncate(COMMITS_IN_FLIGHT);
                if ctx.send(e).is_err() {
                    break;
                }
                in_flight += 1;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            drop(ctx);
            for r in drx {
                handle(r, &mut first_err);
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(committed),
            }
        })
    }

    /// Nonces of `addrs` in committed state.
    pub fn nonces(&self, addrs: &[vm_state::Address]) -> Result<Vec<u64>> {
        addrs
            .iter()
            .map(|a| {
                Ok(vm_state::Account::decode(
                    self.store
                        .get(&StateKey::account(a))
                        .map_err(Self::store_err)?
                        .as_deref(),
                )
                .map_err(NodeError::Store)?
                .nonce)
            })
            .collect()
    }

    /// Note commitments in the privacy pool's tree, in committed state.
    pub fn privacy_leaves(&self) -> Result<u64> {
        self.exec
            .privacy_pool()
            .leaf_count(&mut CommittedPrivacy(self.store.as_ref()))
            .map_err(Self::store_err)?
            .map_err(|r| NodeError::Store(r.to_string()))
    }

    /// Privacy transfers the tree can still take, in committed state.
    pub fn privacy_transfers_left(&self) -> Result<u64> {
        Ok(self
            .exec
            .privacy_pool()
            .transfers_left(self.privacy_leaves()?))
    }

    /// The privacy pool's current root in committed state.
    pub fn privacy_root(&self) -> Result<ark_bn254::Fr> {
        self.exec
            .privacy_pool()
            .current_root(&mut CommittedPrivacy(self.store.as_ref()))
            .map_err(Self::store_err)?
            .map_err(|r| NodeError::Store(r.to_string()))
    }
}

/// Committed state with the write sets of the blocks still committing on top, newest first.
/// A block in `tops` that has committed meanwhile is harmless: its values are then in `base`
/// too, and anything a later block wrote is read from that block's write set first.
struct Overlay {
    base: Arc<dyn StateReader>,
    tops: Vec<Arc<WriteSet>>,
}

impl StateReader for Overlay {
    fn get(&self, key: &StateKey) -> vm_state::Result<Option<StateValue>> {
        for top in &self.tops {
            if let Some(v) = top.get(key) {
                return Ok(v.clone());
            }
        }
        self.base.get(key)
    }
}

/// Blocks that may wait for or be in their commit while the next one executes. With more
/// than one, a committer that falls behind finds several blocks queued and commits them in
/// one store transaction ([`StateStore::commit_blocks`]: each key written once, one durable
/// commit), which is how it catches up: the commit is the longest stage under `auto`.
const COMMITS_IN_FLIGHT: usize = 2;
