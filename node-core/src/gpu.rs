//! The GPU side of the scheduler: [`GpuKernels`] over `gpu_executor::GpuExecutor`'s device
//! paths (no CPU fallback inside: the scheduler does the fallback and counts it), and
//! [`build_scheduler`], which opens what `[gpu]` asks for.

use std::sync::{Arc, OnceLock};

use gpu_executor::zk::{ZkConfig, ZkExecutor};
use gpu_executor::{BackendChoice, GpuConfig, GpuExecutor, HashAlgo, MessageBatch};

use crate::config::{GpuBackendChoice, NodeConfig, Strategy};
use crate::error::{NodeError, Result};
use crate::kernels::CpuKernels;
use crate::pipeline::PrivacyKeys;
use crate::scheduler::{BatchKernels, HybridScheduler, Kernel, ProofItem, SigItem};

/// Batch kernels on the GPU executor's devices.
pub struct GpuKernels {
    exec: Arc<GpuExecutor>,
    sig: Option<gpu_executor::sig::SigExecutor>,
    /// Privacy proofs: the Miller loops on the first device; decoding, weights and the
    /// final exponentiation on `pool`.
    zk: Option<ZkExecutor>,
    pool: Arc<rayon::ThreadPool>,
    privacy: Arc<OnceLock<PrivacyKeys>>,
}

impl GpuKernels {
    /// `None` when the executor opened no device. `pool` does the CPU side of privacy-proof
    /// batches, which verify under the keys in `privacy` once the node has loaded them.
    pub fn new(
        exec: Arc<GpuExecutor>,
        pool: Arc<rayon::ThreadPool>,
        privacy: Arc<OnceLock<PrivacyKeys>>,
    ) -> Option<Self> {
        if exec.devices().is_empty() {
            None
        } else {
            let zk = exec.devices().first().and_then(|d| {
                let zk =
                    ZkExecutor::with_device(Some(d.clone()), pool.clone(), ZkConfig::default());
                match zk.prepare_pairing() {
                    Ok(()) if zk.backend_name() != "cpu" => Some(zk),
                    Ok(()) => None,
                    Err(e) => {
                        tracing::warn!("GPU Miller-loop kernel unavailable: {e}");
                        None
                    }
                }
            });
            let sig = gpu_executor::sig::SigExecutor::from_gpu_executor(
                &exec,
                gpu_executor::sig::SigConfig::always_gpu(),
            );
            let sig = match sig.prepare() {
                Ok(()) if sig.has_gpu() => Some(sig),
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!("GPU Ed25519 kernel unavailable: {e}");
                    None
                }
            };
            Some(Self {
                exec,
                sig,
                zk,
                pool,
                privacy,
            })
        }
    }
}

impl BatchKernels for GpuKernels {
    fn name(&self) -> String {
        let infos = self.exec.device_infos();
        infos
            .iter()
            .map(|d| format!("{}:{} {}", d.backend, d.index, d.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
    fn supports(&self, kernel: Kernel) -> bool {
        match kernel {
            Kernel::Hash | Kernel::Merkle => true,
            Kernel::SignatureVerify => self.sig.is_some(),
            Kernel::PrivacyProof => self.zk.is_some(),
        }
    }
    fn verify_ed25519(&self, items: &[SigItem<'_>]) -> std::result::Result<Vec<bool>, String> {
        let sig = self
            .sig
            .as_ref()
            .ok_or_else(|| "Ed25519 is not available on this GPU backend".to_string())?;
        let items: Vec<gpu_executor::sig::Ed25519Item<'_>> = items
            .iter()
            .map(|i| gpu_executor::sig::Ed25519Item {
                public_key: i.public_key,
                message: i.message,
                signature: i.signature,
            })
            .collect();
        sig.try_gpu_ed25519(&items).map_err(|e| e.to_string())
    }
    fn sha256(&self, msgs: &[&[u8]]) -> std::result::Result<Vec<[u8; 32]>, String> {
        let batch = MessageBatch::from_messages(msgs.iter().copied());
        self.exec
            .hash_on_gpus(HashAlgo::Sha256, &batch.as_messages())
            .map_err(|e| e.to_string())
    }
    fn merkle_root(&self, leaves: &[[u8; 32]]) -> std::result::Result<[u8; 32], String> {
        self.exec
            .merkle_on_gpus(HashAlgo::Sha256, leaves, false)
            .map(|t| t.root)
            .map_err(|e| e.to_string())
    }
    fn verify_proofs(&self, proofs: &[ProofItem<'_>]) -> std::result::Result<Vec<bool>, String> {
        let engine = self.miller_loops()?;
        crate::kernels::verify_privacy_batch(&self.pool, &self.privacy, proofs, Some(&engine))
    }
    fn time_proof_check(&self, proofs: &[ProofItem<'_>]) -> std::result::Result<bool, String> {
        let engine = self.miller_loops()?;
        crate::kernels::check_privacy_batch(&self.pool, &self.privacy, proofs, Some(&engine))
    }
}

impl GpuKernels {
    /// The device's Miller-loop kernel as a proof-verification engine.
    fn miller_loops(
        &self,
    ) -> std::result::Result<zk_privacy::verify::DeviceMillerLoops<'_>, String> {
        self.zk
            .as_ref()
            .map(zk_privacy::verify::DeviceMillerLoops)
            .ok_or_else(|| "the Miller-loop kernel is not available on this GPU".to_string())
    }
}

/// The GPU executor config for `[gpu]` (`none` = the CPU backend only).
pub fn gpu_config(cfg: &NodeConfig) -> GpuConfig {
    let backend = match cfg.gpu.backend {
        GpuBackendChoice::Auto => BackendChoice::Auto,
        GpuBackendChoice::Cuda => BackendChoice::Cuda,
        GpuBackendChoice::Opencl => BackendChoice::Opencl,
        GpuBackendChoice::None => BackendChoice::Cpu,
    };
    GpuConfig {
        backend,
        devices: cfg.gpu.device_ids.iter().map(|&d| d as usize).collect(),
        cpu_threads: cfg.threads(),
        ..GpuConfig::default()
    }
}

/// Everything the scheduler runs on.
pub struct Backends {
    pub pool: Arc<rayon::ThreadPool>,
    pub gpu_exec: Option<Arc<GpuExecutor>>,
    pub privacy: Arc<OnceLock<PrivacyKeys>>,
    /// The CPU side of the GPU's privacy-proof batches (checked decoding, weights, the
    /// final exponentiation) and the thread that drives the Miller-loop kernel
    /// (`[gpu] side_threads`; by default half the node's threads, up to 8), apart from
    /// `pool`, so that a block's proofs go on while the previous block's execution holds
    /// every thread of `pool` (which would otherwise queue them behind it). Present with a
    /// GPU.
    pub gpu_side: Option<Arc<rayon::ThreadPool>>,
}

/// Builds the CPU pool and opens the GPU per `[gpu]` (a missing GPU is logged, not an
/// error).
pub fn open_backends(cfg: &NodeConfig) -> Result<Backends> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads())
        .thread_name(|i| format!("supervm-{i}"))
        .build()
        .map_err(|e| NodeError::Execution(format!("thread pool: {e}")))?;
    let gpu_exec = if cfg.gpu.backend == GpuBackendChoice::None {
        None
    } else {
        match GpuExecutor::new(gpu_config(cfg)) {
            Ok(e) => {
                if let Some(why) = e.no_gpu_reason() {
                    tracing::info!("no GPU in use: {why}");
                }
                Some(Arc::new(e))
            }
            Err(e) => {
                tracing::warn!("GPU executor unavailable: {e}");
                None
            }
        }
    };
    let gpu_side = match &gpu_exec {
        Some(e) if !e.devices().is_empty() => Some(Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(cfg.gpu_side_threads())
                .thread_name(|i| format!("gpu-side-{i}"))
                .build()
                .map_err(|e| NodeError::Execution(format!("GPU side pool: {e}")))?,
        )),
        _ => None,
    };
    Ok(Backends {
        pool: Arc::new(pool),
        gpu_exec,
        privacy: Arc::new(OnceLock::new()),
        gpu_side,
    })
}

/// A scheduler with `strategy` over the opened backends.
pub fn build_scheduler(cfg: &NodeConfig, b: &Backends, strategy: Strategy) -> HybridScheduler {
    let cpu = Arc::new(CpuKernels::new(b.pool.clone(), b.privacy.clone()));
    let timeout = cfg.gpu.timeout_ms;
    let gpu: Option<Arc<dyn BatchKernels>> = b
        .gpu_exec
        .clone()
        .and_then(|e| {
            let side = b.gpu_side.clone().unwrap_or_else(|| b.pool.clone());
            GpuKernels::new(e, side, b.privacy.clone())
        })
        .map(|g| {
            let g = Arc::new(g) as Arc<dyn BatchKernels>;
            if timeout == 0 {
                g
            } else {
                Arc::new(crate::watchdog::TimedKernels::new(
                    g,
                    std::time::Duration::from_millis(timeout),
                )) as Arc<dyn BatchKernels>
            }
        });
    HybridScheduler::new(
        strategy,
        cfg.scheduler.thresholds.clone(),
        cfg.scheduler.ewma_alpha,
        cpu,
        gpu,
    )
}
