//! The hybrid scheduler: routes each batch of work to the CPU or the GPU, or splits it.
//!
//! Work comes in four batch kernels ([`Kernel`]): Ed25519 signature checks, hashing (state
//! leaves, transaction ids), Merkle roots and privacy-proof verification. MVCC transaction
//! execution is not a batch kernel: it always runs on the CPU (Block-STM), and is counted
//! under [`TaskType::Transaction`].
//!
//! ## Strategies
//! - `CpuOnly`: the CPU backend.
//! - `GpuOnly`: the GPU backend (the CPU when no GPU is present).
//! - `Auto`: per batch, the device with the lower *predicted* latency for this kernel and
//!   batch size. Predictions come from a [`CostModel`] per (kernel, device): exponential
//!   moving averages of the observed per-item latency in size classes (powers of two). They
//!   are seeded by start-up calibration (see [`crate::calibration`]) and updated by every
//!   batch the node runs. A size class that one device has never run is explored once; a
//!   losing device that is close (predicted within 2x) is re-probed every
//!   [`REPROBE_EVERY`] batches of that class, so the crossover follows the machine. Manual
//!   thresholds (`[scheduler.thresholds]`) override the prediction.
//! - `LoadBalance`: each batch is split, the GPU taking a prefix in proportion to the
//!   predicted throughputs at that size, and both parts run at once (the GPU part on a
//!   scoped thread, the CPU part on the CPU pool). Merkle roots split at a subtree boundary.
//!
//! ## Faults
//! A GPU error redoes the batch (or the GPU's part of it) on the CPU, logs a warning and
//! counts a fallback (`supervm_gpu_fallbacks_total`). Every backend returns the CPU's bytes,
//! so results never depend on the route.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use engine_api::{EngineType, SpeedupTable, TaskType};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::config::{Strategy, Thresholds};
use crate::error::{NodeError, Result};

/// A re-probe of the losing device every this many batches of one size class.
pub const REPROBE_EVERY: u64 = 200;

/// Number of size classes (log2 of the batch size).
const CLASSES: usize = 40;

/// A batch kernel the scheduler routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kernel {
    /// Ed25519 signature verification.
    SignatureVerify,
    /// SHA-256 over a batch of messages.
    Hash,
    /// Merkle root over 32-byte leaves.
    Merkle,
    /// Groth16 privacy-proof verification.
    PrivacyProof,
}

impl Kernel {
    pub const ALL: [Kernel; 4] = [
        Kernel::SignatureVerify,
        Kernel::Hash,
        Kernel::Merkle,
        Kernel::PrivacyProof,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Kernel::SignatureVerify => "signature_verify",
            Kernel::Hash => "hash",
            Kernel::Merkle => "merkle",
            Kernel::PrivacyProof => "privacy_proof",
        }
    }
    /// The L1 task type of this kernel.
    pub fn task_type(self) -> TaskType {
        match self {
            Kernel::SignatureVerify => TaskType::BatchSignatureVerify,
            Kernel::Hash => TaskType::HashCompute,
            Kernel::Merkle => TaskType::MerkleTreeBuild,
            Kernel::PrivacyProof => TaskType::PrivacyTransaction,
        }
    }
    fn threshold(self, t: &Thresholds) -> Option<usize> {
        match self {
            Kernel::SignatureVerify => t.signature_verify,
            Kernel::Hash => t.hash,
            Kernel::Merkle => t.merkle,
            Kernel::PrivacyProof => t.privacy_proof,
        }
    }
}

/// Where a batch ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Cpu,
    Gpu,
    /// Split between both.
    Split,
}

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Route::Cpu => "cpu",
            Route::Gpu => "gpu",
            Route::Split => "split",
        }
    }
}

/// A device class of the cost models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    Cpu,
    Gpu,
}

/// Per-item latency averages by size class (`floor(log2(batch))`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CostModel {
    /// `(class, ns per item, samples)`, sorted by class.
    pub classes: Vec<(u32, f64, u64)>,
}

fn class_of(n: usize) -> u32 {
    (usize::BITS - 1 - n.max(1).leading_zeros()).min(CLASSES as u32 - 1)
}

impl CostModel {
    /// Records a batch of `n` items that took `ns` nanoseconds.
    pub fn observe(&mut self, n: usize, ns: f64, alpha: f64) {
        if n == 0 || !ns.is_finite() || ns < 0.0 {
            return;
        }
        let c = class_of(n);
        let per = ns / n as f64;
        match self.classes.binary_search_by_key(&c, |e| e.0) {
            Ok(i) => {
                let e = &mut self.classes[i];
                e.1 = if e.2 == 0 {
                    per
                } else {
                    alpha * per + (1.0 - alpha) * e.1
                };
                e.2 += 1;
            }
            Err(i) => self.classes.insert(i, (c, per, 1)),
        }
    }
    /// Whether a size class within two of `n`'s (a quarter to four times the size) has an
    /// observation: close enough for [`CostModel::per_item_ns`] to predict `n`.
    pub fn has_near(&self, n: usize) -> bool {
        let c = class_of(n);
        self.classes.iter().any(|e| e.0.abs_diff(c) <= 2)
    }
    /// Predicted nanoseconds per item for a batch of `n`: the class of `n`, else the nearest
    /// observed class (log-linear interpolation between the two neighbours when both exist).
    pub fn per_item_ns(&self, n: usize) -> Option<f64> {
        if self.classes.is_empty() {
            return None;
        }
        let c = class_of(n);
        match self.classes.binary_search_by_key(&c, |e| e.0) {
            Ok(i) => Some(self.classes[i].1),
            Err(0) => Some(self.classes[0].1),
            Err(i) if i == self.classes.len() => Some(self.classes[i - 1].1),
            Err(i) => {
                let (c0, p0, _) = self.classes[i - 1];
                let (c1, p1, _) = self.classes[i];
                let t = (c as f64 - c0 as f64) / (c1 as f64 - c0 as f64);
                Some((p0.ln() * (1.0 - t) + p1.ln() * t).exp())
            }
        }
    }
    /// Predicted latency of a batch of `n` items, in nanoseconds.
    pub fn predict_ns(&self, n: usize) -> Option<f64> {
        self.per_item_ns(n).map(|p| p * n as f64)
    }
}

/// The batch kernels of one backend. The CPU implementation is the reference; a GPU
/// implementation returns exactly its results (or an error, and the batch is redone on the
/// CPU).
pub trait BatchKernels: Send + Sync {
    /// A short name for logs (`cpu`, `cuda:0 NVIDIA H200`, ...).
    fn name(&self) -> String;
    /// Whether this backend runs `kernel` (a GPU without, say, a pairing kernel routes that
    /// kernel to the CPU).
    fn supports(&self, kernel: Kernel) -> bool;
    /// Ed25519 checks: one `bool` per item, in order.
    fn verify_ed25519(&self, items: &[SigItem<'_>]) -> std::result::Result<Vec<bool>, String>;
    /// SHA-256 of each message.
    fn sha256(&self, msgs: &[&[u8]]) -> std::result::Result<Vec<[u8; 32]>, String>;
    /// Merkle root over 32-byte leaves (`docs/MERKLE.md`, SHA-256).
    fn merkle_root(&self, leaves: &[[u8; 32]]) -> std::result::Result<[u8; 32], String>;
    /// Privacy-proof checks: one `bool` per proof.
    fn verify_proofs(&self, proofs: &[ProofItem<'_>]) -> std::result::Result<Vec<bool>, String>;
    /// What [`BatchKernels::verify_proofs`] costs for a batch that verifies, on proofs that
    /// need not (checked decoding and one batch equation, no search for bad proofs; see
    /// `zk_privacy::verify::check_payloads_on`): start-up calibration times this. Returns
    /// the equation's outcome, which decides nothing. `Err` when the backend cannot (no
    /// keys loaded yet, a payload that does not decode, a failing device).
    fn time_proof_check(&self, proofs: &[ProofItem<'_>]) -> std::result::Result<bool, String> {
        let _ = proofs;
        Err(format!("{} cannot time a proof check", self.name()))
    }
}

/// A kernel call on one backend, as [`HybridScheduler`] routes it.
type KernelFn<'a, T, R> =
    dyn Fn(&dyn BatchKernels, &[T]) -> std::result::Result<Vec<R>, String> + Sync + 'a;

/// One Ed25519 check.
#[derive(Clone, Copy, Debug)]
pub struct SigItem<'a> {
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
    pub message: &'a [u8],
}

/// One privacy proof with its public inputs: an encoded `zk_privacy::PrivacyTransfer`.
#[derive(Clone, Copy, Debug)]
pub struct ProofItem<'a> {
    pub payload: &'a [u8],
}

/// Counters of one (kernel or task, route).
#[derive(Debug, Default)]
struct RouteCounter {
    batches: AtomicU64,
    items: AtomicU64,
    nanos: AtomicU64,
}

/// A snapshot of one route counter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteStat {
    pub task: TaskType,
    pub route: Route,
    pub batches: u64,
    pub items: u64,
    pub total_ms: f64,
}

/// What happened to one routed batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchReport {
    pub route: Route,
    /// Items that ran on the GPU (after fallbacks: those the GPU actually returned).
    pub gpu_items: usize,
    pub fell_back: bool,
    pub elapsed_ns: u64,
}

#[derive(Default)]
struct ModelState {
    cpu: CostModel,
    gpu: CostModel,
    /// Batches decided per size class, for re-probing.
    decisions: HashMap<u32, u64>,
}

/// The calibration / cost-model state of all kernels (cached on disk by
/// [`crate::calibration`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CostSnapshot {
    pub kernels: Vec<(Kernel, CostModel, CostModel)>,
}

/// The hybrid scheduler. Cheap to share (`Arc`).
pub struct HybridScheduler {
    strategy: Strategy,
    thresholds: Thresholds,
    alpha: f64,
    cpu: Arc<dyn BatchKernels>,
    gpu: Option<Arc<dyn BatchKernels>>,
    models: Mutex<HashMap<Kernel, ModelState>>,
    counters: Mutex<HashMap<(TaskType, Route), Arc<RouteCounter>>>,
    fallbacks: AtomicU64,
    speedups: Arc<SpeedupTable>,
    /// Optional engine for contract tasks through [`engine_api::ExecutionEngine`].
    pub(crate) contract_engine: Option<Arc<dyn engine_api::ExecutionEngine>>,
}

impl std::fmt::Debug for HybridScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridScheduler")
            .field("strategy", &self.strategy)
            .field("cpu", &self.cpu.name())
            .field("gpu", &self.gpu.as_ref().map(|g| g.name()))
            .finish()
    }
}

impl HybridScheduler {
    /// A scheduler over a CPU backend and optionally a GPU backend.
    pub fn new(
        strategy: Strategy,
        thresholds: Thresholds,
        alpha: f64,
        cpu: Arc<dyn BatchKernels>,
        gpu: Option<Arc<dyn BatchKernels>>,
    ) -> Self {
        if gpu.is_none() && matches!(strategy, Strategy::GpuOnly | Strategy::LoadBalance) {
            tracing::warn!(
                strategy = strategy.name(),
                "no GPU backend: every batch runs on the CPU"
            );
        }
        Self {
            strategy,
            thresholds,
            alpha,
            cpu,
            gpu,
            models: Mutex::new(HashMap::new()),
            counters: Mutex::new(HashMap::new()),
            fallbacks: AtomicU64::new(0),
            speedups: Arc::new(SpeedupTable::new()),
            contract_engine: None,
        }
    }

    /// Sets the engine that runs contract tasks of [`engine_api::ExecutionEngine::execute`].
    pub fn with_contract_engine(mut self, engine: Arc<dyn engine_api::ExecutionEngine>) -> Self {
        self.contract_engine = Some(engine);
        self
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }
    pub fn has_gpu(&self) -> bool {
        self.gpu.is_some()
    }
    pub fn gpu_name(&self) -> Option<String> {
        self.gpu.as_ref().map(|g| g.name())
    }
    pub fn cpu_kernels(&self) -> &Arc<dyn BatchKernels> {
        &self.cpu
    }
    pub fn gpu_kernels(&self) -> Option<&Arc<dyn BatchKernels>> {
        self.gpu.as_ref()
    }
    /// The measured speed-up table (GPU over CPU per task), shared with engines.
    pub fn speedups(&self) -> Arc<SpeedupTable> {
        self.speedups.clone()
    }
    /// GPU batches redone on the CPU so far.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Feeds one observation into the cost model of (kernel, device).
    pub fn observe(&self, kernel: Kernel, device: Device, n: usize, ns: f64) {
        let mut models = self.models.lock();
        let st = models.entry(kernel).or_default();
        match device {
            Device::Cpu => st.cpu.observe(n, ns, self.alpha),
            Device::Gpu => st.gpu.observe(n, ns, self.alpha),
        }
        self.refresh_speedup(kernel, st, n);
    }

    fn refresh_speedup(&self, kernel: Kernel, st: &ModelState, n: usize) {
        if let (Some(c), Some(g)) = (st.cpu.per_item_ns(n), st.gpu.per_item_ns(n)) {
            if g > 0.0 {
                self.speedups
                    .record(EngineType::Gpu, kernel.task_type(), c / g);
            }
        }
    }

    /// The cost models of every kernel (for the calibration cache and reports).
    pub fn cost_snapshot(&self) -> CostSnapshot {
        let models = self.models.lock();
        let mut kernels: Vec<_> = models
            .iter()
            .map(|(k, st)| (*k, st.cpu.clone(), st.gpu.clone()))
            .collect();
        kernels.sort_by_key(|e| e.0);
        CostSnapshot { kernels }
    }

    /// Whether the cost model of (kernel, device) can predict a batch of `n` without
    /// exploring (an observation within two size classes).
    pub fn has_costs_near(&self, kernel: Kernel, device: Device, n: usize) -> bool {
        let models = self.models.lock();
        models.get(&kernel).is_some_and(|st| match device {
            Device::Cpu => st.cpu.has_near(n),
            Device::Gpu => st.gpu.has_near(n),
        })
    }

    /// Loads cost models (from the calibration cache).
    pub fn load_costs(&self, snap: &CostSnapshot) {
        let mut models = self.models.lock();
        for (k, cpu, gpu) in &snap.kernels {
            let st = models.entry(*k).or_default();
            st.cpu = cpu.clone();
            st.gpu = gpu.clone();
            if let Some(&(c, _, _)) = st.gpu.classes.last() {
                self.refresh_speedup(*k, st, 1usize << c);
            }
        }
    }

    /// The smallest batch size class (a power of two) at which the GPU is predicted faster,
    /// from the measured models; `None` when it never is or nothing was measured.
    pub fn crossover(&self, kernel: Kernel) -> Option<usize> {
        let models = self.models.lock();
        let st = models.get(&kernel)?;
        if st.cpu.classes.is_empty() || st.gpu.classes.is_empty() {
            return None;
        }
        (0..CLASSES as u32).map(|c| 1usize << c).find(|&n| {
            match (st.cpu.per_item_ns(n), st.gpu.per_item_ns(n)) {
                (Some(c), Some(g)) => g < c,
                _ => false,
            }
        })
    }

    /// The route (and GPU share) for a batch of `n` items of `kernel`.
    fn decide(&self, kernel: Kernel, n: usize) -> (Route, usize) {
        match &self.gpu {
            Some(g) if n > 0 && g.supports(kernel) => {}
            _ => return (Route::Cpu, 0),
        }
        match self.strategy {
            Strategy::CpuOnly => (Route::Cpu, 0),
            Strategy::GpuOnly => (Route::Gpu, n),
            Strategy::Auto => {
                if let Some(t) = kernel.threshold(&self.thresholds) {
                    return if n >= t {
                        (Route::Gpu, n)
                    } else {
                        (Route::Cpu, 0)
                    };
                }
                let mut models = self.models.lock();
                let st = models.entry(kernel).or_default();
                // Explore a device that never ran a batch within two size classes of this
                // one (a block's proofs come in batches of one, two or three blocks: each
                // size need not cost a run on the slower device).
                if !st.gpu.has_near(n) {
                    return (Route::Gpu, n);
                }
                if !st.cpu.has_near(n) {
                    return (Route::Cpu, 0);
                }
                let (c, g) = match (st.cpu.predict_ns(n), st.gpu.predict_ns(n)) {
                    (Some(c), Some(g)) => (c, g),
                    _ => return (Route::Cpu, 0),
                };
                let d = st.decisions.entry(class_of(n)).or_insert(0);
                *d += 1;
                let probe = d.is_multiple_of(REPROBE_EVERY);
                let gpu_wins = g < c;
                let close = if gpu_wins { c < 2.0 * g } else { g < 2.0 * c };
                if gpu_wins != (probe && close) {
                    (Route::Gpu, n)
                } else {
                    (Route::Cpu, 0)
                }
            }
            Strategy::LoadBalance => {
                if n < 2 {
                    return self.decide_auto_like(kernel, n);
                }
                let models = self.models.lock();
                let share = match models.get(&kernel) {
                    Some(st) => match (st.cpu.per_item_ns(n), st.gpu.per_item_ns(n)) {
                        (Some(c), Some(g)) if c > 0.0 && g > 0.0 => {
                            // Throughputs 1/c and 1/g: the GPU takes n * (1/g) / (1/c + 1/g).
                            let f = c / (c + g);
                            ((n as f64) * f).round() as usize
                        }
                        _ => n / 2,
                    },
                    None => n / 2,
                };
                match share {
                    0 => (Route::Cpu, 0),
                    s if s >= n => (Route::Gpu, n),
                    s => (Route::Split, s),
                }
            }
        }
    }

    /// Whether a batch of `n` items of `kernel` would go (at least partly) to the GPU, without
    /// counting a decision: lets a caller that must not wait for the CPU pool (the commit
    /// thread, while Block-STM holds the pool) do CPU-routed work on its own thread instead.
    pub fn prefers_gpu(&self, kernel: Kernel, n: usize) -> bool {
        match &self.gpu {
            Some(g) if n > 0 && g.supports(kernel) => {}
            _ => return false,
        }
        match self.strategy {
            Strategy::CpuOnly => false,
            Strategy::GpuOnly => true,
            Strategy::Auto | Strategy::LoadBalance => match kernel.threshold(&self.thresholds) {
                Some(t) if self.strategy == Strategy::Auto => n >= t,
                _ => self.decide_auto_like(kernel, n).0 == Route::Gpu,
            },
        }
    }

    /// Counts a batch of `kernel` that the caller ran on the CPU itself (see
    /// [`HybridScheduler::prefers_gpu`]). Its time does not feed the cost models, which
    /// describe the CPU pool.
    pub fn count_inline(&self, kernel: Kernel, items: usize, ns: u64) {
        self.count(kernel.task_type(), Route::Cpu, items, ns);
    }

    fn decide_auto_like(&self, kernel: Kernel, n: usize) -> (Route, usize) {
        let models = self.models.lock();
        match models
            .get(&kernel)
            .and_then(|st| Some((st.cpu.predict_ns(n)?, st.gpu.predict_ns(n)?)))
        {
            Some((c, g)) if g < c => (Route::Gpu, n),
            _ => (Route::Cpu, 0),
        }
    }

    fn count(&self, task: TaskType, route: Route, items: usize, ns: u64) {
        let c = {
            let mut m = self.counters.lock();
            m.entry((task, route)).or_default().clone()
        };
        c.batches.fetch_add(1, Ordering::Relaxed);
        c.items.fetch_add(items as u64, Ordering::Relaxed);
        c.nanos.fetch_add(ns, Ordering::Relaxed);
        let task_name = format!("{task:?}");
        metrics::counter!("supervm_route_total", "task" => task_name.clone(), "route" => route.name())
            .increment(1);
        metrics::counter!("supervm_route_items_total", "task" => task_name, "route" => route.name())
            .increment(items as u64);
    }

    /// Counts work that is not a batch kernel (MVCC execution on the CPU).
    pub fn count_task(&self, task: TaskType, items: usize, ns: u64) {
        self.count(task, Route::Cpu, items, ns);
    }

    /// Per-route counters and timings, sorted.
    pub fn route_stats(&self) -> Vec<RouteStat> {
        let m = self.counters.lock();
        let mut v: Vec<RouteStat> = m
            .iter()
            .map(|((task, route), c)| RouteStat {
                task: *task,
                route: *route,
                batches: c.batches.load(Ordering::Relaxed),
                items: c.items.load(Ordering::Relaxed),
                total_ms: c.nanos.load(Ordering::Relaxed) as f64 / 1e6,
            })
            .collect();
        v.sort_by_key(|s| (s.task, s.route.name()));
        v
    }

    fn fallback(&self, kernel: Kernel, err: &str) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("supervm_gpu_fallbacks_total", "task" => kernel.name()).increment(1);
        tracing::warn!(
            kernel = kernel.name(),
            error = err,
            "GPU batch failed; redone on the CPU"
        );
    }

    /// Runs one item-wise batch kernel on the route the strategy picks.
    fn run_map<T: Sync, R: Send>(
        &self,
        kernel: Kernel,
        items: &[T],
        cpu: &KernelFn<'_, T, R>,
    ) -> Result<(Vec<R>, BatchReport)> {
        let n = items.len();
        let start = Instant::now();
        let (route, gpu_share) = self.decide(kernel, n);
        let kerr = |m: String| NodeError::Kernel {
            task: kernel.name().into(),
            message: m,
        };
        let run_cpu = |part: &[T]| -> Result<Vec<R>> {
            let t = Instant::now();
            let r = cpu(self.cpu.as_ref(), part).map_err(kerr)?;
            self.observe(
                kernel,
                Device::Cpu,
                part.len(),
                t.elapsed().as_nanos() as f64,
            );
            Ok(r)
        };
        // A GPU attempt: Ok(Some) on success, Ok(None) after a fallback.
        let run_gpu = |part: &[T]| -> Option<Vec<R>> {
            let gpu = self.gpu.as_ref()?;
            let t = Instant::now();
            match cpu(gpu.as_ref(), part) {
                Ok(r) if r.len() == part.len() => {
                    self.observe(
                        kernel,
                        Device::Gpu,
                        part.len(),
                        t.elapsed().as_nanos() as f64,
                    );
                    Some(r)
                }
                Ok(r) => {
                    self.fallback(
                        kernel,
                        &format!("returned {} results for {} items", r.len(), part.len()),
                    );
                    None
                }
                Err(e) => {
                    self.fallback(kernel, &e);
                    None
                }
            }
        };
        let mut fell_back = false;
        let mut gpu_items = 0;
        let out = match route {
            Route::Cpu => run_cpu(items)?,
            Route::Gpu => match run_gpu(items) {
                Some(r) => {
                    gpu_items = n;
                    r
                }
                None => {
                    fell_back = true;
                    run_cpu(items)?
                }
            },
            Route::Split => {
                let (g_part, c_part) = items.split_at(gpu_share);
                let (g_res, c_res) = std::thread::scope(|s| {
                    let h = s.spawn(|| run_gpu(g_part));
                    let c = run_cpu(c_part);
                    // A panic in a GPU backend is a fault like any other: redo on the CPU.
                    (h.join().unwrap_or(None), c)
                });
                let mut g = match g_res {
                    Some(r) => {
                        gpu_items = g_part.len();
                        r
                    }
                    None => {
                        fell_back = true;
                        run_cpu(g_part)?
                    }
                };
                g.extend(c_res?);
                g
            }
        };
        let ns = start.elapsed().as_nanos() as u64;
        self.count(kernel.task_type(), route, n, ns);
        Ok((
            out,
            BatchReport {
                route,
                gpu_items,
                fell_back,
                elapsed_ns: ns,
            },
        ))
    }

    /// Ed25519 batch verification, routed.
    pub fn verify_signatures(&self, items: &[SigItem<'_>]) -> Result<(Vec<bool>, BatchReport)> {
        self.run_map(Kernel::SignatureVerify, items, &|k, p| k.verify_ed25519(p))
    }

    /// SHA-256 of each message, routed.
    pub fn sha256_batch(&self, msgs: &[&[u8]]) -> Result<(Vec<[u8; 32]>, BatchReport)> {
        self.run_map(Kernel::Hash, msgs, &|k, p| k.sha256(p))
    }

    /// Privacy-proof batch verification, routed.
    pub fn verify_proofs(&self, proofs: &[ProofItem<'_>]) -> Result<(Vec<bool>, BatchReport)> {
        self.run_map(Kernel::PrivacyProof, proofs, &|k, p| k.verify_proofs(p))
    }

    /// Merkle root (`docs/MERKLE.md`), routed. `LoadBalance` splits at the largest power of
    /// two below the leaf count (the left subtree), the faster device taking the larger part;
    /// the two subtree roots are joined with one inner-node hash.
    pub fn merkle_root(&self, leaves: &[[u8; 32]]) -> Result<([u8; 32], BatchReport)> {
        let n = leaves.len();
        let gpu_merkle = self
            .gpu
            .as_ref()
            .is_some_and(|g| g.supports(Kernel::Merkle));
        if self.strategy == Strategy::LoadBalance && gpu_merkle && n >= 4 {
            let start = Instant::now();
            let left = if n.is_power_of_two() {
                n / 2
            } else {
                1usize << (usize::BITS - 1 - n.leading_zeros())
            };
            let gpu_faster = {
                let models = self.models.lock();
                models
                    .get(&Kernel::Merkle)
                    .and_then(|st| Some((st.cpu.per_item_ns(n)?, st.gpu.per_item_ns(n)?)))
                    .is_none_or(|(c, g)| g <= c)
            };
            let (l, r) = leaves.split_at(left);
            // The larger (left) part to the faster device.
            let (g_part, c_part, gpu_left) = if gpu_faster {
                (l, r, true)
            } else {
                (r, l, false)
            };
            let parts: Vec<&[[u8; 32]]> = vec![g_part, c_part];
            let (mut roots, rep) = self.run_merkle_parts(&parts)?;
            if !gpu_left {
                roots.swap(0, 1);
            }
            let root = inner_node(&roots[0], &roots[1]);
            let ns = start.elapsed().as_nanos() as u64;
            self.count(TaskType::MerkleTreeBuild, Route::Split, n, ns);
            return Ok((
                root,
                BatchReport {
                    route: Route::Split,
                    elapsed_ns: ns,
                    ..rep
                },
            ));
        }
        let start = Instant::now();
        let (route, _) = match self.decide(Kernel::Merkle, n) {
            (Route::Split, _) => (Route::Gpu, n),
            d => d,
        };
        let kerr = |m: String| NodeError::Kernel {
            task: Kernel::Merkle.name().into(),
            message: m,
        };
        let mut fell_back = false;
        let mut gpu_items = 0;
        let mut root = None;
        if route == Route::Gpu {
            if let Some(gpu) = &self.gpu {
                let t = Instant::now();
                match gpu.merkle_root(leaves) {
                    Ok(r) => {
                        self.observe(
                            Kernel::Merkle,
                            Device::Gpu,
                            n,
                            t.elapsed().as_nanos() as f64,
                        );
                        gpu_items = n;
                        root = Some(r);
                    }
                    Err(e) => {
                        self.fallback(Kernel::Merkle, &e);
                        fell_back = true;
                    }
                }
            }
        }
        let root = match root {
            Some(r) => r,
            None => {
                let t = Instant::now();
                let r = self.cpu.merkle_root(leaves).map_err(kerr)?;
                self.observe(
                    Kernel::Merkle,
                    Device::Cpu,
                    n,
                    t.elapsed().as_nanos() as f64,
                );
                r
            }
        };
        let ns = start.elapsed().as_nanos() as u64;
        self.count(TaskType::MerkleTreeBuild, route, n, ns);
        Ok((
            root,
            BatchReport {
                route,
                gpu_items,
                fell_back,
                elapsed_ns: ns,
            },
        ))
    }

    /// Two subtrees: `parts[0]` on the GPU, `parts[1]` on the CPU, at once.
    fn run_merkle_parts(&self, parts: &[&[[u8; 32]]]) -> Result<(Vec<[u8; 32]>, BatchReport)> {
        let kerr = |m: String| NodeError::Kernel {
            task: Kernel::Merkle.name().into(),
            message: m,
        };
        let (g, c) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                let gpu = self.gpu.as_ref()?;
                let t = Instant::now();
                match gpu.merkle_root(parts[0]) {
                    Ok(r) => {
                        self.observe(
                            Kernel::Merkle,
                            Device::Gpu,
                            parts[0].len(),
                            t.elapsed().as_nanos() as f64,
                        );
                        Some(r)
                    }
                    Err(e) => {
                        self.fallback(Kernel::Merkle, &e);
                        None
                    }
                }
            });
            let t = Instant::now();
            let c = self.cpu.merkle_root(parts[1]);
            self.observe(
                Kernel::Merkle,
                Device::Cpu,
                parts[1].len(),
                t.elapsed().as_nanos() as f64,
            );
            (h.join().unwrap_or(None), c)
        });
        let c = c.map_err(kerr)?;
        let (g, fell_back) = match g {
            Some(g) => (g, false),
            None => (self.cpu.merkle_root(parts[0]).map_err(kerr)?, true),
        };
        Ok((
            vec![g, c],
            BatchReport {
                route: Route::Split,
                gpu_items: if fell_back { 0 } else { parts[0].len() },
                fell_back,
                elapsed_ns: 0,
            },
        ))
    }
}

/// `SHA-256(0x01 || left || right)`, the inner node of `docs/MERKLE.md`.
pub fn inner_node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Splits `u32`-LE-length-prefixed items.
fn split_prefixed(input: &[u8]) -> std::result::Result<Vec<&[u8]>, engine_api::EngineError> {
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(engine_api::EngineError::InvalidInput(format!(
                "item {}: truncated length prefix",
                out.len()
            )));
        }
        let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() - 4 < n {
            return Err(engine_api::EngineError::InvalidInput(format!(
                "item {}: {n} bytes announced, {} left",
                out.len(),
                rest.len() - 4
            )));
        }
        out.push(&rest[4..4 + n]);
        rest = &rest[4 + n..];
    }
    Ok(out)
}

fn batch_result(output: Vec<u8>) -> engine_api::ContractResult {
    engine_api::ContractResult {
        success: true,
        return_data: output,
        gas_used: 0,
        logs: Vec::new(),
        state_changes: Vec::new(),
        failure: None,
    }
}

/// The hybrid scheduler as an L1 engine. Batch task types take `input` as:
/// - `HashCompute`: `u32`-LE-length-prefixed messages -> concatenated SHA-256 digests;
/// - `MerkleTreeBuild`: concatenated 32-byte leaves -> the 32-byte root;
/// - `BatchSignatureVerify`: length-prefixed items `pk(32) || sig(64) || message` -> one
///   byte (1 valid, 0 invalid) per item;
/// - `PrivacyTransaction`: length-prefixed encoded `PrivacyTransfer`s -> one byte per proof.
///
/// Contract task types (`Transaction`, `ContractCall`, `StateQuery`) go to the contract
/// engine set with [`HybridScheduler::with_contract_engine`] (the WASM engine), always on
/// the CPU. `ZkProofGeneration` is the proving service's (zk-privacy), not this engine's.
impl engine_api::ExecutionEngine for HybridScheduler {
    fn execute(
        &self,
        code: &[u8],
        input: &[u8],
        ctx: &engine_api::ExecutionContext,
    ) -> engine_api::Result<engine_api::ContractResult> {
        use engine_api::EngineError as E;
        let internal = |e: NodeError| E::Internal(e.to_string());
        match ctx.task_type {
            TaskType::HashCompute => {
                let msgs = split_prefixed(input)?;
                let (h, _) = self.sha256_batch(&msgs).map_err(internal)?;
                Ok(batch_result(h.concat()))
            }
            TaskType::MerkleTreeBuild => {
                if !input.len().is_multiple_of(32) {
                    return Err(E::InvalidInput(format!(
                        "{} bytes is not a whole number of 32-byte leaves",
                        input.len()
                    )));
                }
                let leaves: Vec<[u8; 32]> = input
                    .chunks_exact(32)
                    .map(|c| {
                        let mut l = [0u8; 32];
                        l.copy_from_slice(c);
                        l
                    })
                    .collect();
                let (root, _) = self.merkle_root(&leaves).map_err(internal)?;
                Ok(batch_result(root.to_vec()))
            }
            TaskType::BatchSignatureVerify => {
                let raw = split_prefixed(input)?;
                let mut items = Vec::with_capacity(raw.len());
                for (i, r) in raw.iter().enumerate() {
                    if r.len() < 96 {
                        return Err(E::InvalidInput(format!(
                            "signature item {i}: {} bytes, at least 96 needed",
                            r.len()
                        )));
                    }
                    let mut public_key = [0u8; 32];
                    public_key.copy_from_slice(&r[..32]);
                    let mut signature = [0u8; 64];
                    signature.copy_from_slice(&r[32..96]);
                    items.push(SigItem {
                        public_key,
                        signature,
                        message: &r[96..],
                    });
                }
                let (ok, _) = self.verify_signatures(&items).map_err(internal)?;
                Ok(batch_result(ok.into_iter().map(u8::from).collect()))
            }
            TaskType::PrivacyTransaction => {
                let raw = split_prefixed(input)?;
                let items: Vec<ProofItem<'_>> =
                    raw.iter().map(|p| ProofItem { payload: p }).collect();
                let (ok, _) = self.verify_proofs(&items).map_err(internal)?;
                Ok(batch_result(ok.into_iter().map(u8::from).collect()))
            }
            TaskType::Transaction | TaskType::ContractCall | TaskType::StateQuery => {
                match &self.contract_engine {
                    Some(e) => {
                        let t = Instant::now();
                        let r = e.execute(code, input, ctx);
                        self.count_task(ctx.task_type, 1, t.elapsed().as_nanos() as u64);
                        r
                    }
                    None => Err(E::Unsupported(
                        "no contract engine attached to the hybrid scheduler".into(),
                    )),
                }
            }
            TaskType::ZkProofGeneration => Err(E::Unsupported(
                "proof generation runs in zk-privacy's proving service".into(),
            )),
        }
    }

    fn engine_type(&self) -> EngineType {
        EngineType::Hybrid
    }

    fn validate_code(&self, code: &[u8]) -> engine_api::Result<()> {
        match &self.contract_engine {
            Some(e) => e.validate_code(code),
            None => Err(engine_api::EngineError::Unsupported(
                "no contract engine attached to the hybrid scheduler".into(),
            )),
        }
    }

    fn supports_task(&self, task: TaskType) -> bool {
        match task {
            TaskType::HashCompute
            | TaskType::MerkleTreeBuild
            | TaskType::BatchSignatureVerify
            | TaskType::PrivacyTransaction => true,
            TaskType::Transaction | TaskType::ContractCall | TaskType::StateQuery => self
                .contract_engine
                .as_ref()
                .is_some_and(|e| e.supports_task(task)),
            TaskType::ZkProofGeneration => false,
        }
    }

    fn estimated_speedup(&self, task: TaskType) -> Option<f64> {
        if self.strategy == Strategy::CpuOnly || self.gpu.is_none() {
            return None;
        }
        self.speedups.get(EngineType::Gpu, task)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::OnceLock;

    use ed25519_dalek::{Signer, SigningKey};

    use sha2::Digest;

    use super::*;
    use crate::kernels::CpuKernels;

    fn pool() -> Arc<rayon::ThreadPool> {
        Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap(),
        )
    }

    fn cpu() -> Arc<CpuKernels> {
        Arc::new(CpuKernels::new(pool(), Arc::new(OnceLock::new())))
    }

    /// A second backend that is the CPU reference but fails on chosen calls (fault injection).
    struct FlakyGpu {
        inner: Arc<CpuKernels>,
        calls: AtomicUsize,
        fail_every: usize,
    }

    impl FlakyGpu {
        fn tick(&self) -> std::result::Result<(), String> {
            let c = self.calls.fetch_add(1, Ordering::Relaxed);
            if self.fail_every > 0 && c.is_multiple_of(self.fail_every) {
                Err("injected device fault".into())
            } else {
                Ok(())
            }
        }
    }

    impl BatchKernels for FlakyGpu {
        fn name(&self) -> String {
            "flaky".into()
        }
        fn supports(&self, k: Kernel) -> bool {
            k != Kernel::PrivacyProof
        }
        fn verify_ed25519(&self, i: &[SigItem<'_>]) -> std::result::Result<Vec<bool>, String> {
            self.tick()?;
            self.inner.verify_ed25519(i)
        }
        fn sha256(&self, m: &[&[u8]]) -> std::result::Result<Vec<[u8; 32]>, String> {
            self.tick()?;
            self.inner.sha256(m)
        }
        fn merkle_root(&self, l: &[[u8; 32]]) -> std::result::Result<[u8; 32], String> {
            self.tick()?;
            self.inner.merkle_root(l)
        }
        fn verify_proofs(&self, _p: &[ProofItem<'_>]) -> std::result::Result<Vec<bool>, String> {
            Err("no".into())
        }
    }

    fn sched(strategy: Strategy, fail_every: usize) -> HybridScheduler {
        let c = cpu();
        let g = Arc::new(FlakyGpu {
            inner: c.clone(),
            calls: AtomicUsize::new(0),
            fail_every,
        });
        HybridScheduler::new(strategy, Thresholds::default(), 0.3, c, Some(g))
    }

    fn msgs(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("message {i}").into_bytes())
            .collect()
    }

    #[test]
    fn every_strategy_and_fault_pattern_gives_the_cpu_result() {
        let m = msgs(1000);
        let refs: Vec<&[u8]> = m.iter().map(|x| x.as_slice()).collect();
        let want = cpu().sha256(&refs).unwrap();
        let leaves: Vec<[u8; 32]> = want.clone();
        let want_root = vm_state::root::merkle_root(&leaves);
        for strategy in Strategy::ALL {
            for fail_every in [0, 1, 2, 3] {
                let s = sched(strategy, fail_every);
                for n in [0, 1, 2, 7, 64, 1000] {
                    let (h, _) = s.sha256_batch(&refs[..n]).unwrap();
                    assert_eq!(h, want[..n], "{strategy:?} fail_every={fail_every} n={n}");
                    let (r, _) = s.merkle_root(&leaves[..n]).unwrap();
                    assert_eq!(r, vm_state::root::merkle_root(&leaves[..n]));
                }
                let (r, _) = s.merkle_root(&leaves).unwrap();
                assert_eq!(r, want_root);
                if fail_every == 1 && strategy != Strategy::CpuOnly {
                    assert!(s.fallbacks() > 0, "{strategy:?} counted no fallback");
                }
            }
        }
    }

    /// A backend that is the CPU reference but whose first call hangs far past any deadline.
    struct HangingGpu {
        inner: Arc<CpuKernels>,
        hang: std::sync::atomic::AtomicBool,
    }

    impl HangingGpu {
        fn maybe_hang(&self) {
            if self.hang.swap(false, Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(800));
            }
        }
    }

    impl BatchKernels for HangingGpu {
        fn name(&self) -> String {
            "hanging".into()
        }
        fn supports(&self, _: Kernel) -> bool {
            true
        }
        fn verify_ed25519(&self, i: &[SigItem<'_>]) -> std::result::Result<Vec<bool>, String> {
            self.maybe_hang();
            self.inner.verify_ed25519(i)
        }
        fn sha256(&self, m: &[&[u8]]) -> std::result::Result<Vec<[u8; 32]>, String> {
            self.maybe_hang();
            self.inner.sha256(m)
        }
        fn merkle_root(&self, l: &[[u8; 32]]) -> std::result::Result<[u8; 32], String> {
            self.maybe_hang();
            self.inner.merkle_root(l)
        }
        fn verify_proofs(&self, p: &[ProofItem<'_>]) -> std::result::Result<Vec<bool>, String> {
            self.maybe_hang();
            self.inner.verify_proofs(p)
        }
    }

    /// A GPU call that hangs is abandoned at the deadline: the batch is redone on the CPU
    /// (same result, a counted fallback), and the GPU is used again once the call returns.
    #[test]
    fn a_hung_gpu_call_times_out_to_the_cpu() {
        let c = cpu();
        let g = Arc::new(HangingGpu {
            inner: c.clone(),
            hang: std::sync::atomic::AtomicBool::new(true),
        });
        let timed = Arc::new(crate::watchdog::TimedKernels::new(
            g,
            std::time::Duration::from_millis(100),
        ));
        let s = HybridScheduler::new(
            Strategy::GpuOnly,
            Thresholds::default(),
            0.3,
            c.clone(),
            Some(timed.clone()),
        );
        let m = msgs(100);
        let refs: Vec<&[u8]> = m.iter().map(|x| x.as_slice()).collect();
        let want = c.sha256(&refs).unwrap();
        let start = Instant::now();
        let (h, rep) = s.sha256_batch(&refs).unwrap();
        assert_eq!(h, want);
        assert!(rep.fell_back && rep.gpu_items == 0);
        assert!(start.elapsed() < std::time::Duration::from_millis(700));
        assert_eq!(s.fallbacks(), 1);
        // Busy with the abandoned call: straight to the CPU, same result.
        let (h, rep) = s.sha256_batch(&refs).unwrap();
        assert_eq!(h, want);
        assert!(rep.fell_back);
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while timed.abandoned_calls() > 0 && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let (h, rep) = s.sha256_batch(&refs).unwrap();
        assert_eq!(h, want);
        assert!(!rep.fell_back && rep.gpu_items == refs.len());
    }

    #[test]
    fn signatures_are_checked_per_item_on_every_route() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let m: Vec<[u8; 32]> = (0..300u32)
            .map(|i| {
                let mut x = [0u8; 32];
                x[..4].copy_from_slice(&i.to_le_bytes());
                x
            })
            .collect();
        let mut sigs: Vec<[u8; 64]> = m.iter().map(|x| key.sign(x).to_bytes()).collect();
        sigs[17][5] ^= 1; // bad R
        sigs[250][40] ^= 1; // bad S
        let items: Vec<SigItem<'_>> = m
            .iter()
            .zip(&sigs)
            .map(|(x, s)| SigItem {
                public_key: key.verifying_key().to_bytes(),
                signature: *s,
                message: x,
            })
            .collect();
        let want: Vec<bool> = items.iter().map(crate::kernels::ed25519_strict).collect();
        assert!(!want[17] && !want[250] && want[0]);
        for strategy in Strategy::ALL {
            for fail_every in [0, 2] {
                let s = sched(strategy, fail_every);
                let (got, _) = s.verify_signatures(&items).unwrap();
                assert_eq!(got, want, "{strategy:?}");
            }
        }
    }

    #[test]
    fn auto_follows_measured_costs_and_thresholds() {
        let s = sched(Strategy::Auto, 0);
        // The GPU is 10x faster per item from 1024 items on, slower below.
        for (n, c, g) in [(64usize, 1.0, 50.0), (1024, 1.0, 0.1), (65536, 1.0, 0.1)] {
            s.observe(Kernel::Hash, Device::Cpu, n, c * n as f64);
            s.observe(Kernel::Hash, Device::Gpu, n, g * n as f64);
        }
        assert_eq!(s.decide(Kernel::Hash, 64).0, Route::Cpu);
        assert_eq!(s.decide(Kernel::Hash, 70_000).0, Route::Gpu);
        // Sizes next to a measured class are predicted, not explored: the GPU measured
        // slower at 64 stays off at 150 (class 7); a size far from every measurement is run
        // on each device once.
        assert_eq!(s.decide(Kernel::Hash, 150).0, Route::Cpu);
        s.observe(Kernel::Merkle, Device::Cpu, 512, 2.0 * 512.0);
        s.observe(Kernel::Merkle, Device::Gpu, 512, 1.0 * 512.0);
        assert_eq!(s.decide(Kernel::Merkle, 1000).0, Route::Gpu);
        assert_eq!(s.decide(Kernel::Merkle, 200).0, Route::Gpu);
        s.observe(Kernel::Merkle, Device::Cpu, 8, 1.0 * 8.0);
        assert_eq!(s.decide(Kernel::Merkle, 8).0, Route::Gpu); // explores the GPU
        s.observe(Kernel::Merkle, Device::Gpu, 8, 50.0 * 8.0);
        assert_eq!(s.decide(Kernel::Merkle, 8).0, Route::Cpu);
        let x = s.crossover(Kernel::Hash).unwrap();
        assert!(x > 64 && x <= 1024, "crossover {x}");
        assert!(s
            .speedups()
            .get(EngineType::Gpu, TaskType::HashCompute)
            .is_some());
        let t = HybridScheduler::new(
            Strategy::Auto,
            Thresholds {
                hash: Some(100),
                ..Thresholds::default()
            },
            0.2,
            cpu(),
            Some(Arc::new(FlakyGpu {
                inner: cpu(),
                calls: AtomicUsize::new(0),
                fail_every: 0,
            })),
        );
        assert_eq!(t.decide(Kernel::Hash, 99).0, Route::Cpu);
        assert_eq!(t.decide(Kernel::Hash, 100).0, Route::Gpu);
        // Privacy proofs are not supported by this GPU: always the CPU.
        assert_eq!(t.decide(Kernel::PrivacyProof, 1000).0, Route::Cpu);
    }

    /// Costs learned from batches (here privacy proofs, not calibrated before) survive
    /// a restart through the calibration cache, so the next start does not explore again.
    #[test]
    fn learned_costs_are_cached_for_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calibration.json");
        let s = sched(Strategy::Auto, 0);
        s.observe(Kernel::Merkle, Device::Cpu, 1000, 2000.0);
        s.observe(Kernel::Merkle, Device::Gpu, 1000, 1000.0);
        s.observe(Kernel::PrivacyProof, Device::Cpu, 500, 5e7);
        crate::calibration::save(&s, &path);
        let t = sched(Strategy::Auto, 0);
        assert!(
            !crate::calibration::calibrate(&t, Some(&path)),
            "loaded, not measured"
        );
        assert_eq!(t.cost_snapshot(), s.cost_snapshot());
        assert_eq!(t.decide(Kernel::Merkle, 1000).0, Route::Gpu);
    }

    /// Privacy proofs are calibrated once the keys are loaded (on payloads that decode but
    /// need not verify): both devices get costs at every size a block's proofs come in, so
    /// `auto` routes them without exploring the slower device on a block; a second call
    /// measures nothing, and the next start loads them from the cache.
    #[test]
    fn privacy_proofs_are_calibrated_once_the_keys_are_loaded() {
        use crate::calibration::{calibrate, calibrate_proofs};
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::NodeConfig::default();
        cfg.node.data_dir = dir.path().to_path_buf();
        cfg.privacy.tree_depth = 2;
        let keys = Arc::new(OnceLock::new());
        let backends = || -> (Arc<dyn BatchKernels>, Option<Arc<dyn BatchKernels>>) {
            // The CPU reference standing in for the GPU.
            (
                Arc::new(CpuKernels::new(pool(), keys.clone())),
                Some(Arc::new(CpuKernels::new(pool(), keys.clone()))),
            )
        };
        let (c, g) = backends();
        let s = HybridScheduler::new(Strategy::Auto, Thresholds::default(), 0.2, c, g);
        let path = dir.path().join("calibration.json");
        assert!(
            !calibrate_proofs(&s, Some(&path)),
            "no keys: nothing to measure"
        );
        assert!(!path.exists());
        let loaded = crate::pipeline::load_privacy_keys(&cfg, false).unwrap();
        assert!(keys.set(loaded).is_ok());
        assert!(calibrate_proofs(&s, Some(&path)));
        for n in [16, 500, 1000, 1500, 4000] {
            for dev in [Device::Cpu, Device::Gpu] {
                assert!(
                    s.has_costs_near(Kernel::PrivacyProof, dev, n),
                    "{dev:?} {n}"
                );
            }
        }
        assert!(!calibrate_proofs(&s, Some(&path)), "measured once");
        let (c, g) = backends();
        let t = HybridScheduler::new(Strategy::Auto, Thresholds::default(), 0.2, c, g);
        assert!(!calibrate(&t, Some(&path)), "loaded from the cache");
        assert!(!calibrate_proofs(&t, Some(&path)), "the cache had them");
        assert_eq!(t.cost_snapshot(), s.cost_snapshot());
    }

    #[test]
    fn load_balance_splits_in_proportion_to_throughput() {
        let s = sched(Strategy::LoadBalance, 0);
        s.observe(Kernel::Hash, Device::Cpu, 4096, 3.0 * 4096.0);
        s.observe(Kernel::Hash, Device::Gpu, 4096, 1.0 * 4096.0);
        let (route, share) = s.decide(Kernel::Hash, 4000);
        assert_eq!(route, Route::Split);
        assert_eq!(share, 3000); // the GPU is 3x faster: it takes 3/4
        let m = msgs(4000);
        let refs: Vec<&[u8]> = m.iter().map(|x| x.as_slice()).collect();
        let (h, rep) = s.sha256_batch(&refs).unwrap();
        assert_eq!(h, cpu().sha256(&refs).unwrap());
        assert_eq!(rep.route, Route::Split);
        assert!(rep.gpu_items > 0 && rep.gpu_items < 4000);
        let stats = s.route_stats();
        assert!(stats
            .iter()
            .any(|r| r.task == TaskType::HashCompute && r.route == Route::Split));
    }

    #[test]
    fn cost_model_interpolates_between_classes() {
        let mut m = CostModel::default();
        assert_eq!(m.per_item_ns(10), None);
        m.observe(16, 160.0, 0.5);
        m.observe(1024, 1024.0, 0.5);
        assert_eq!(m.per_item_ns(16), Some(10.0));
        assert_eq!(m.per_item_ns(1), Some(10.0));
        assert_eq!(m.per_item_ns(1 << 20), Some(1.0));
        let mid = m.per_item_ns(128).unwrap();
        assert!(mid < 10.0 && mid > 1.0);
        m.observe(16, 320.0, 0.5);
        assert_eq!(m.per_item_ns(16), Some(15.0));
    }

    #[test]
    fn execution_engine_interface_routes_batches() {
        use engine_api::{ExecutionContext, ExecutionEngine};
        let s = sched(Strategy::Auto, 0);
        assert_eq!(s.engine_type(), EngineType::Hybrid);
        let ctx = ExecutionContext {
            task_type: TaskType::HashCompute,
            ..ExecutionContext::default()
        };
        let mut input = Vec::new();
        for m in [&b"a"[..], b"", b"hello"] {
            input.extend_from_slice(&(m.len() as u32).to_le_bytes());
            input.extend_from_slice(m);
        }
        let r = s.execute(&[], &input, &ctx).unwrap();
        assert_eq!(r.return_data.len(), 96);
        assert_eq!(&r.return_data[64..], &sha2::Sha256::digest(b"hello")[..]);
        assert!(s.execute(&[], &[1, 0], &ctx).is_err());
        let ctx = ExecutionContext {
            task_type: TaskType::ContractCall,
            ..ExecutionContext::default()
        };
        assert!(s.execute(&[], &[], &ctx).is_err());
        assert!(!s.supports_task(TaskType::ZkProofGeneration));
        assert!(s.supports_task(TaskType::MerkleTreeBuild));
    }
}
