//! Batch signature verification on the GPU with the CPU as reference and fallback:
//! Ed25519 under `ed25519-dalek` `verify_strict` rules, secp256k1 ECDSA and Ethereum-style
//! public key recovery under `k256` rules. docs/SIGNATURES.md gives the acceptance rules and
//! the techniques.
//!
//! - [`cpu`]: the reference (`ed25519-dalek` / `k256` per signature on a rayon pool).
//! - `kernels` / `gpu`: the kernel sources (`kernels/sig/`) and their host side on one device.
//! - [`SigExecutor`]: batch-first API; picks the device(s) from a [`GpuConfig`], splits a
//!   batch into chunks (over several devices when configured), and redoes a batch on the CPU
//!   (logged, counted in [`SigStats`]) when a device fails.
//! - [`cli`]: the `supervm verify` JSON-lines tool; [`bench`]: the `supervm bench` suites.

pub mod bench;
pub mod cli;
pub mod cpu;
mod gpu;
mod kernels;
mod types;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::config::GpuConfig;
use crate::device::{BackendKind, GpuDevice};
use crate::error::{GpuError, Result};

pub use types::{EcrecoverItem, Ed25519Item, RecoveredKey, Sec1PublicKey, Secp256k1Item};

/// Settings of the signature kernels (`[gpu.sig]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SigConfig {
    /// secp256k1 (verify and recovery): reject `s > n/2` as `k256` does. When false, a high
    /// `s` is accepted as its low twin `n - s` would be. Default: true.
    pub require_low_s: bool,
    /// Batches with fewer signatures run on the CPU. Default: 512.
    pub min_gpu_batch: usize,
    /// Most signatures per kernel launch; larger batches are split into chunks (spread over
    /// the devices). Default: 262144.
    pub chunk_items: usize,
    /// Threads per block / work-group. Default: 128.
    pub group_size: u32,
    /// On CUDA, multiply field elements with PTX carry chains (`mad.lo.cc` / `madc.hi`)
    /// instead of the portable C that OpenCL runs. Default: false.
    pub cuda_ptx: bool,
}

impl Default for SigConfig {
    fn default() -> Self {
        Self {
            require_low_s: true,
            min_gpu_batch: 512,
            chunk_items: 1 << 18,
            group_size: 128,
            cuda_ptx: false,
        }
    }
}

impl SigConfig {
    /// Every batch on the device, whatever its size (tests).
    pub fn always_gpu() -> Self {
        Self {
            min_gpu_batch: 0,
            ..Self::default()
        }
    }
}

/// Counters of a [`SigExecutor`] (batches, not signatures).
#[derive(Debug, Default)]
pub struct SigStats {
    gpu_batches: AtomicU64,
    cpu_batches: AtomicU64,
    gpu_failures: AtomicU64,
}

/// A copy of [`SigStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigStatsSnapshot {
    pub gpu_batches: u64,
    pub cpu_batches: u64,
    /// Device batches that failed and were redone on the CPU.
    pub gpu_failures: u64,
}

impl SigStats {
    pub fn snapshot(&self) -> SigStatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SigStatsSnapshot {
            gpu_batches: l(&self.gpu_batches),
            cpu_batches: l(&self.cpu_batches),
            gpu_failures: l(&self.gpu_failures),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn build_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("sig-cpu-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| GpuError::Config(format!("cannot start the CPU thread pool: {e}")))
}

/// Signature verification on the configured devices, or on the CPU. `Send + Sync`; calls on
/// one device are serialised (they share its scratch memory).
pub struct SigExecutor {
    gpus: Vec<Mutex<gpu::GpuSig>>,
    backend: Option<BackendKind>,
    pool: Arc<rayon::ThreadPool>,
    config: SigConfig,
    stats: SigStats,
}

impl std::fmt::Debug for SigExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigExecutor({}, {} devices)",
            self.backend_name(),
            self.gpus.len()
        )
    }
}

impl SigExecutor {
    /// Opens the devices `gpu` selects (none for backend `cpu`, or `auto` without a GPU) and
    /// a CPU pool of `gpu.cpu_threads` threads (0 = all cores). Errors when an explicitly
    /// requested backend cannot be opened.
    pub fn new(gpu: &GpuConfig, config: SigConfig) -> Result<Self> {
        let pool = build_pool(gpu.cpu_threads)?;
        let devices = crate::device::open_devices(gpu)?;
        Ok(Self::with_devices(devices, pool, config))
    }

    /// An executor on `devices` (none: CPU only), using `pool` for CPU work.
    pub fn with_devices(
        devices: Vec<GpuDevice>,
        pool: Arc<rayon::ThreadPool>,
        config: SigConfig,
    ) -> Self {
        let backend = devices.first().map(GpuDevice::backend);
        let gpus = devices
            .into_iter()
            .map(|d| Mutex::new(gpu::GpuSig::new(d, config.group_size, config.cuda_ptx)))
            .collect();
        Self {
            gpus,
            backend,
            pool,
            config,
            stats: SigStats::default(),
        }
    }

    /// The signature kernels on the devices and CPU pool of a [`crate::GpuExecutor`] (the
    /// same backend selection as hashing).
    pub fn from_gpu_executor(exec: &crate::GpuExecutor, config: SigConfig) -> Self {
        Self::with_devices(
            exec.devices().to_vec(),
            Arc::clone(exec.cpu().pool()),
            config,
        )
    }

    /// A CPU-only executor on `pool`.
    pub fn cpu(pool: Arc<rayon::ThreadPool>, config: SigConfig) -> Self {
        Self::with_devices(Vec::new(), pool, config)
    }

    /// `cpu`, `cuda` or `opencl`.
    pub fn backend_name(&self) -> &'static str {
        self.backend.map_or("cpu", BackendKind::as_str)
    }

    /// Name of the first device (`None` on the CPU).
    pub fn device_name(&self) -> Option<String> {
        self.gpus
            .first()
            .map(|g| g.lock().device().info().name.clone())
    }

    pub fn has_gpu(&self) -> bool {
        !self.gpus.is_empty()
    }

    pub fn config(&self) -> &SigConfig {
        &self.config
    }

    pub fn pool(&self) -> &Arc<rayon::ThreadPool> {
        &self.pool
    }

    pub fn stats(&self) -> SigStatsSnapshot {
        self.stats.snapshot()
    }

    /// Compiles the kernels on every device now (otherwise the first call compiles them).
    pub fn prepare(&self) -> Result<()> {
        for g in &self.gpus {
            g.lock().prepare()?;
        }
        Ok(())
    }

    fn use_gpu(&self, n: usize) -> bool {
        !self.gpus.is_empty() && n > 0 && n >= self.config.min_gpu_batch
    }

    fn fallback(&self, what: &str, e: &GpuError) {
        bump(&self.stats.gpu_failures);
        tracing::warn!(
            "{what} verification on {} failed, redoing the batch on the CPU: {e}",
            self.backend_name()
        );
    }

    /// Runs `f` over `chunks` (index ranges), spread over the devices, results in order.
    fn run_chunks<T, F>(&self, chunks: &[(usize, usize)], f: F) -> Result<Vec<T>>
    where
        T: Send,
        F: Fn(&mut gpu::GpuSig, usize, usize) -> Result<Vec<T>> + Sync,
    {
        if self.gpus.is_empty() {
            return Err(GpuError::Unavailable("no device configured".into()));
        }
        let ndev = self.gpus.len();
        let per_chunk: Vec<Result<Vec<T>>> = if ndev == 1 || chunks.len() == 1 {
            let mut g = self.gpus[0].lock();
            chunks.iter().map(|&(a, b)| f(&mut g, a, b)).collect()
        } else {
            let mut slots: Vec<Option<Result<Vec<T>>>> = (0..chunks.len()).map(|_| None).collect();
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..ndev)
                    .map(|d| {
                        let f = &f;
                        let gpu = &self.gpus[d];
                        scope.spawn(move || {
                            let mut g = gpu.lock();
                            chunks
                                .iter()
                                .enumerate()
                                .skip(d)
                                .step_by(ndev)
                                .map(|(i, &(a, b))| (i, f(&mut g, a, b)))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                for h in handles {
                    match h.join() {
                        Ok(done) => {
                            for (i, r) in done {
                                slots[i] = Some(r);
                            }
                        }
                        Err(_) => {
                            // A panicking device thread leaves its slots empty: reported below.
                        }
                    }
                }
            });
            slots
                .into_iter()
                .map(|s| {
                    s.unwrap_or_else(|| Err(GpuError::Launch("device thread panicked".into())))
                })
                .collect()
        };
        let mut out = Vec::new();
        for r in per_chunk {
            out.extend(r?);
        }
        Ok(out)
    }

    fn uniform_chunks(&self, n: usize) -> Vec<(usize, usize)> {
        let c = self.config.chunk_items.max(1);
        (0..n).step_by(c).map(|a| (a, (a + c).min(n))).collect()
    }

    /// Ed25519 on the device(s) only: no fallback (tests, benchmarks).
    pub fn try_gpu_ed25519(&self, items: &[Ed25519Item<'_>]) -> Result<Vec<bool>> {
        let chunks = gpu::GpuSig::ed25519_chunks(items, self.config.chunk_items);
        self.run_chunks(&chunks, |g, a, b| g.ed25519(&self.pool, &items[a..b]))
    }

    /// secp256k1 ECDSA on the device(s) only: no fallback.
    pub fn try_gpu_secp256k1(&self, items: &[Secp256k1Item]) -> Result<Vec<bool>> {
        let low_s = self.config.require_low_s;
        self.run_chunks(&self.uniform_chunks(items.len()), |g, a, b| {
            g.secp256k1(&self.pool, &items[a..b], low_s)
        })
    }

    /// Recovery on the device(s) only: no fallback.
    pub fn try_gpu_ecrecover(&self, items: &[EcrecoverItem]) -> Result<Vec<Option<RecoveredKey>>> {
        let low_s = self.config.require_low_s;
        self.run_chunks(&self.uniform_chunks(items.len()), |g, a, b| {
            g.ecrecover(&self.pool, &items[a..b], low_s)
        })
    }

    /// One result per signature, `true` when it verifies (docs/SIGNATURES.md).
    pub fn verify_ed25519(&self, items: &[Ed25519Item<'_>]) -> Vec<bool> {
        if self.use_gpu(items.len()) {
            match self.try_gpu_ed25519(items) {
                Ok(v) => {
                    bump(&self.stats.gpu_batches);
                    return v;
                }
                Err(e) => self.fallback("Ed25519", &e),
            }
        }
        bump(&self.stats.cpu_batches);
        cpu::ed25519_verify_batch(&self.pool, items)
    }

    /// One result per signature, `true` when it verifies.
    pub fn verify_secp256k1(&self, items: &[Secp256k1Item]) -> Vec<bool> {
        if self.use_gpu(items.len()) {
            match self.try_gpu_secp256k1(items) {
                Ok(v) => {
                    bump(&self.stats.gpu_batches);
                    return v;
                }
                Err(e) => self.fallback("secp256k1", &e),
            }
        }
        bump(&self.stats.cpu_batches);
        cpu::secp256k1_verify_batch(&self.pool, items, self.config.require_low_s)
    }

    /// One result per signature: the recovered key and address, or `None`.
    pub fn ecrecover(&self, items: &[EcrecoverItem]) -> Vec<Option<RecoveredKey>> {
        if self.use_gpu(items.len()) {
            match self.try_gpu_ecrecover(items) {
                Ok(v) => {
                    bump(&self.stats.gpu_batches);
                    return v;
                }
                Err(e) => self.fallback("ecrecover", &e),
            }
        }
        bump(&self.stats.cpu_batches);
        cpu::ecrecover_batch(&self.pool, items, self.config.require_low_s)
    }

    /// Recovered addresses only.
    pub fn ecrecover_addresses(&self, items: &[EcrecoverItem]) -> Vec<Option<[u8; 20]>> {
        self.ecrecover(items)
            .into_iter()
            .map(|r| r.map(|k| k.address))
            .collect()
    }

    /// All-or-nothing: `true` when every signature verifies (an empty batch is `true`).
    pub fn verify_ed25519_all(&self, items: &[Ed25519Item<'_>]) -> bool {
        self.verify_ed25519(items).iter().all(|&ok| ok)
    }

    /// All-or-nothing: `true` when every signature verifies (an empty batch is `true`).
    pub fn verify_secp256k1_all(&self, items: &[Secp256k1Item]) -> bool {
        self.verify_secp256k1(items).iter().all(|&ok| ok)
    }
}
