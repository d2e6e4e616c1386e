//! [`GpuExecutor`]: the entry point the node uses. It opens the devices a [`GpuConfig`]
//! asks for, runs batches there when they are large enough, and redoes a batch on the CPU
//! when the device fails (logged with `tracing::warn!`, counted in
//! [`GpuExecutor::fallback_count`]). It implements `engine_api::ExecutionEngine`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use engine_api::{
    ContractResult, EngineError, EngineType, ExecutionContext, ExecutionEngine, SpeedupTable,
    TaskType,
};
use parking_lot::RwLock;

use crate::config::{BackendChoice, GpuConfig};
use crate::device::{open_devices, DeviceInfo, GpuDevice};
use crate::error::{GpuError, Result};
use crate::gpu_hash::GpuHasher;
use crate::hash::{CpuBackend, Digest, HashAlgo, HashBackend, MerkleTree, Messages};

/// A task other modules (signatures, proofs) plug into [`ExecutionEngine::execute`]: gets
/// the executor and the input bytes, returns the output bytes.
pub type TaskHandler = Arc<dyn Fn(&GpuExecutor, &[u8]) -> Result<Vec<u8>> + Send + Sync>;

/// The GPU executor (CPU fallback included).
pub struct GpuExecutor {
    config: GpuConfig,
    cpu: CpuBackend,
    devices: Vec<GpuDevice>,
    hashers: Vec<GpuHasher>,
    /// Why no GPU is in use, when none is.
    no_gpu_reason: Option<String>,
    fallbacks: AtomicU64,
    speedups: Arc<SpeedupTable>,
    handlers: RwLock<HashMap<String, (TaskType, TaskHandler)>>,
}

impl std::fmt::Debug for GpuExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuExecutor")
            .field("backend", &self.backend_name())
            .field("devices", &self.devices)
            .field("fallbacks", &self.fallback_count())
            .finish()
    }
}

impl GpuExecutor {
    /// Opens what `config` asks for. Never fails because of the GPU: with no usable device
    /// the executor runs on the CPU and [`GpuExecutor::no_gpu_reason`] says why. Fails only
    /// when the CPU pool cannot be built.
    pub fn new(config: GpuConfig) -> Result<Self> {
        Self::with_speedups(config, Arc::new(SpeedupTable::new()))
    }

    /// As [`GpuExecutor::new`], reporting speed-ups from the shared table.
    pub fn with_speedups(config: GpuConfig, speedups: Arc<SpeedupTable>) -> Result<Self> {
        let cpu = CpuBackend::with_threads(config.cpu_threads)?;
        let limit = (config.memory_limit_mib > 0).then_some(config.memory_limit_mib << 20);
        let (devices, hashers, reason) = match open_devices(&config) {
            Ok(devs) if devs.is_empty() => {
                let why = if config.backend == BackendChoice::Cpu {
                    "backend = cpu".to_string()
                } else {
                    "no usable GPU found".to_string()
                };
                (Vec::new(), Vec::new(), Some(why))
            }
            Ok(devs) => {
                let mut hashers = Vec::new();
                let mut err = None;
                for d in &devs {
                    match GpuHasher::new(d.clone(), limit) {
                        Ok(h) => hashers.push(h),
                        Err(e) => {
                            err = Some(e);
                            break;
                        }
                    }
                }
                match err {
                    None => (devs, hashers, None),
                    Some(e) => {
                        tracing::warn!("GPU hash kernels unusable, running on the CPU: {e}");
                        (Vec::new(), Vec::new(), Some(e.to_string()))
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    "GPU backend {:?} unavailable, running on the CPU: {e}",
                    config.backend
                );
                (Vec::new(), Vec::new(), Some(e.to_string()))
            }
        };
        Ok(Self {
            config,
            cpu,
            devices,
            hashers,
            no_gpu_reason: reason,
            fallbacks: AtomicU64::new(0),
            speedups,
            handlers: RwLock::new(HashMap::new()),
        })
    }

    /// A CPU-only executor.
    pub fn cpu_only() -> Result<Self> {
        Self::new(GpuConfig::with_backend(BackendChoice::Cpu))
    }

    pub fn config(&self) -> &GpuConfig {
        &self.config
    }
    /// The CPU backend (reference and fallback).
    pub fn cpu(&self) -> &CpuBackend {
        &self.cpu
    }
    /// The opened GPUs (empty when running on the CPU).
    pub fn devices(&self) -> &[GpuDevice] {
        &self.devices
    }
    pub fn device_infos(&self) -> Vec<DeviceInfo> {
        self.devices.iter().map(|d| d.info().clone()).collect()
    }
    /// The per-device hashers.
    pub fn hashers(&self) -> &[GpuHasher] {
        &self.hashers
    }
    /// `cuda`, `opencl` or `cpu`.
    pub fn backend_name(&self) -> &'static str {
        self.devices
            .first()
            .map(|d| d.backend().as_str())
            .unwrap_or("cpu")
    }
    /// Why no GPU is used (`None` when one is).
    pub fn no_gpu_reason(&self) -> Option<&str> {
        self.no_gpu_reason.as_deref()
    }
    /// How many batches a device failed and the CPU redid.
    pub fn fallback_count(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }
    pub fn speedups(&self) -> &Arc<SpeedupTable> {
        &self.speedups
    }
    /// Whether a batch of `items` for `kernel` goes to the GPU.
    pub fn uses_gpu(&self, kernel: &str, items: usize) -> bool {
        !self.devices.is_empty() && items >= self.config.min_batch_for(kernel)
    }

    /// Runs `gpu` on the devices when the batch is large enough, else `cpu`; a device
    /// fault (anything but [`GpuError::InvalidInput`]) is logged and counted, and `cpu`
    /// redoes the batch. The building block for every module's public entry points.
    pub fn run_with_fallback<T>(
        &self,
        kernel: &str,
        items: usize,
        gpu: impl FnOnce(&[GpuDevice]) -> Result<T>,
        cpu: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if !self.uses_gpu(kernel, items) {
            return cpu();
        }
        match gpu(&self.devices) {
            Ok(v) => Ok(v),
            Err(e) if e.is_device_fault() => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{kernel}: GPU batch of {items} failed, redone on the CPU: {e}");
                cpu()
            }
            Err(e) => Err(e),
        }
    }

    /// Hashes a batch: on the GPU(s) when large enough, with CPU fallback.
    pub fn hash(&self, algo: HashAlgo, msgs: &Messages<'_>) -> Result<Vec<Digest>> {
        self.run_with_fallback(
            algo.as_str(),
            msgs.len(),
            |_| self.hash_on_gpus(algo, msgs),
            || self.cpu.hash_batch(algo, msgs),
        )
    }

    /// The Merkle tree of `leaves` (docs/MERKLE.md), with CPU fallback.
    pub fn merkle(
        &self,
        algo: HashAlgo,
        leaves: &[Digest],
        keep_levels: bool,
    ) -> Result<MerkleTree> {
        self.run_with_fallback(
            algo.merkle_key(),
            leaves.len(),
            |_| self.merkle_on_gpus(algo, leaves, keep_levels),
            || self.cpu.merkle(algo, leaves, keep_levels),
        )
    }

    /// Hash on the GPUs only (no fallback): split evenly over several devices.
    pub fn hash_on_gpus(&self, algo: HashAlgo, msgs: &Messages<'_>) -> Result<Vec<Digest>> {
        match self.hashers.len() {
            0 => Err(GpuError::Unavailable("no GPU opened".into())),
            1 => self.hashers[0].hash(algo, msgs),
            k => {
                let n = msgs.len();
                let per = n.div_ceil(k);
                let parts: Vec<Result<Vec<Digest>>> = std::thread::scope(|s| {
                    let hs: Vec<_> = self
                        .hashers
                        .iter()
                        .enumerate()
                        .map(|(i, h)| {
                            let r = (i * per).min(n)..((i + 1) * per).min(n);
                            let m = msgs.slice(r);
                            s.spawn(move || h.hash(algo, &m))
                        })
                        .collect();
                    hs.into_iter()
                        .map(|h| {
                            h.join().unwrap_or_else(|_| {
                                Err(GpuError::Launch("GPU worker panicked".into()))
                            })
                        })
                        .collect()
                });
                let mut out = Vec::with_capacity(n);
                for p in parts {
                    out.extend(p?);
                }
                Ok(out)
            }
        }
    }

    /// Merkle on the GPUs only (no fallback). Several devices each build aligned
    /// power-of-two subtrees (root-only trees).
    pub fn merkle_on_gpus(
        &self,
        algo: HashAlgo,
        leaves: &[Digest],
        keep_levels: bool,
    ) -> Result<MerkleTree> {
        let k = self.hashers.len();
        if k == 0 {
            return Err(GpuError::Unavailable("no GPU opened".into()));
        }
        if k == 1 || keep_levels || leaves.len() < 2 * k {
            return self.hashers[0].merkle(algo, leaves, keep_levels);
        }
        let n = leaves.len();
        let chunk = n.div_ceil(k).next_power_of_two();
        let ranges: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|a| a..(a + chunk).min(n))
            .collect();
        let roots: Vec<Result<Digest>> = std::thread::scope(|s| {
            let hs: Vec<_> = ranges
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let h = &self.hashers[i % k];
                    let part = &leaves[r.clone()];
                    s.spawn(move || h.merkle(algo, part, false).map(|t| t.root))
                })
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(GpuError::Launch("GPU worker panicked".into())))
                })
                .collect()
        });
        let roots = roots.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(MerkleTree {
            root: crate::hash::root_of_nodes(algo, &roots),
            levels: Vec::new(),
        })
    }

    /// Registers a task for [`ExecutionEngine::execute`] under `code` (e.g. `ed25519`), of
    /// task type `task` (then reported by `supports_task`). Used by the signature and proof
    /// modules, which live outside this file.
    pub fn register_task(&self, code: &str, task: TaskType, handler: TaskHandler) {
        self.handlers
            .write()
            .insert(code.to_string(), (task, handler));
    }

    fn run_code(&self, code: &str, input: &[u8]) -> Result<Vec<u8>> {
        let parse_algo = |s: &str| s.parse::<HashAlgo>();
        match code {
            "sha256" | "keccak256" => {
                let algo = parse_algo(code)?;
                let batch = decode_length_prefixed(input)?;
                let d = self.hash(algo, &batch.as_messages())?;
                Ok(d.concat())
            }
            "merkle-sha256" | "merkle-keccak256" => {
                let algo = parse_algo(&code["merkle-".len()..])?;
                if input.len() / 32 * 32 != input.len() {
                    return Err(GpuError::InvalidInput(format!(
                        "Merkle input is {} bytes, not a multiple of 32",
                        input.len()
                    )));
                }
                let leaves: Vec<Digest> = input
                    .chunks_exact(32)
                    .map(|c| {
                        let mut d = [0u8; 32];
                        d.copy_from_slice(c);
                        d
                    })
                    .collect();
                Ok(self.merkle(algo, &leaves, false)?.root.to_vec())
            }
            other => {
                let h = self.handlers.read().get(other).map(|(_, h)| h.clone());
                match h {
                    Some(h) => h(self, input),
                    None => Err(GpuError::InvalidInput(format!(
                        "unknown GPU task `{other}`"
                    ))),
                }
            }
        }
    }
}

/// Decodes `[u32 LE length][bytes]...` into a batch (the `execute` input format).
pub fn decode_length_prefixed(input: &[u8]) -> Result<crate::hash::MessageBatch> {
    let mut b = crate::hash::MessageBatch::new();
    let mut rest = input;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(GpuError::InvalidInput("truncated length prefix".into()));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if rest.len() < len {
            return Err(GpuError::InvalidInput(format!(
                "message of {len} bytes truncated ({} left)",
                rest.len()
            )));
        }
        b.push(&rest[..len]);
        rest = &rest[len..];
    }
    Ok(b)
}

/// Encodes messages as `[u32 LE length][bytes]...`.
pub fn encode_length_prefixed<M: AsRef<[u8]>>(msgs: &[M]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        let m = m.as_ref();
        out.extend_from_slice(&(m.len() as u32).to_le_bytes());
        out.extend_from_slice(m);
    }
    out
}

const BUILTIN_CODES: [&str; 4] = ["sha256", "keccak256", "merkle-sha256", "merkle-keccak256"];

fn to_engine_err(e: GpuError) -> EngineError {
    match e {
        GpuError::InvalidInput(m) => EngineError::InvalidInput(m),
        other => EngineError::Internal(other.to_string()),
    }
}

/// `execute(code, input, ctx)`: `code` names the task as UTF-8 text:
/// - `sha256` / `keccak256`: `input` is messages as `[u32 LE length][bytes]...`;
///   `return_data` is the 32-byte digests concatenated, in order.
/// - `merkle-sha256` / `merkle-keccak256`: `input` is the 32-byte leaves concatenated;
///   `return_data` is the 32-byte root (docs/MERKLE.md).
/// - names registered with [`GpuExecutor::register_task`].
///
/// Gas is not metered for these tasks (`gas_used` = 0); the result never depends on
/// whether a GPU ran it.
impl ExecutionEngine for GpuExecutor {
    fn execute(
        &self,
        code: &[u8],
        input: &[u8],
        _ctx: &ExecutionContext,
    ) -> engine_api::Result<ContractResult> {
        let code = std::str::from_utf8(code)
            .map_err(|_| EngineError::InvalidCode("GPU task name is not UTF-8".into()))?;
        self.validate_code(code.as_bytes())?;
        let out = self.run_code(code, input).map_err(to_engine_err)?;
        Ok(ContractResult {
            success: true,
            return_data: out,
            gas_used: 0,
            logs: Vec::new(),
            state_changes: Vec::new(),
            failure: None,
        })
    }
    fn engine_type(&self) -> EngineType {
        EngineType::Gpu
    }
    fn validate_code(&self, code: &[u8]) -> engine_api::Result<()> {
        let code = std::str::from_utf8(code)
            .map_err(|_| EngineError::InvalidCode("GPU task name is not UTF-8".into()))?;
        if BUILTIN_CODES.contains(&code) || self.handlers.read().contains_key(code) {
            Ok(())
        } else {
            Err(EngineError::InvalidCode(format!(
                "unknown GPU task `{code}` (known: {}{})",
                BUILTIN_CODES.join(", "),
                self.handlers
                    .read()
                    .keys()
                    .map(|k| format!(", {k}"))
                    .collect::<String>()
            )))
        }
    }
    fn supports_task(&self, task: TaskType) -> bool {
        matches!(task, TaskType::HashCompute | TaskType::MerkleTreeBuild)
            || self.handlers.read().values().any(|(t, _)| *t == task)
    }
    fn estimated_speedup(&self, task: TaskType) -> Option<f64> {
        self.speedups.get(EngineType::Gpu, task)
    }
}
