//! [`GpuConfig`]: which backend and devices to use, and when a batch is worth a GPU.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which backend runs the GPU executor's batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// CUDA if a CUDA device is usable, else an OpenCL GPU, else the CPU.
    #[default]
    Auto,
    /// CUDA only (falls back to the CPU, with a warning, when unavailable).
    Cuda,
    /// OpenCL only (any device type, GPUs first; PoCL's CPU device counts).
    Opencl,
    /// The rayon CPU backend only.
    Cpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = crate::GpuError;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cuda" => Ok(Self::Cuda),
            "opencl" => Ok(Self::Opencl),
            "cpu" => Ok(Self::Cpu),
            other => Err(crate::GpuError::Config(format!(
                "unknown backend `{other}` (expected auto, cuda, opencl or cpu)"
            ))),
        }
    }
}

/// Configuration of the GPU executor (`[gpu]` in the node's config file).
///
/// ```toml
/// [gpu]
/// backend = "auto"          # auto | cuda | opencl | cpu
/// devices = [0, 1]          # device indices within the backend; empty = the first one
/// cpu_threads = 0           # 0 = all cores
/// [gpu.min_batch]
/// sha256 = 4096             # below this many items a batch stays on the CPU
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GpuConfig {
    /// Backend to use. Default: `auto`.
    pub backend: BackendChoice,
    /// Device indices within the chosen backend (CUDA ordinals; for OpenCL the index in
    /// [`crate::device::list_devices`]'s OpenCL order). Several devices split a batch.
    /// Default: empty, meaning the first device only.
    pub devices: Vec<usize>,
    /// Threads of the CPU backend's own rayon pool. Default: 0 = all logical cores.
    pub cpu_threads: usize,
    /// Per-kernel minimum batch size (keys: `sha256`, `keccak256`, `merkle-sha256`,
    /// `merkle-keccak256`, and whatever other modules define). Smaller batches run on the CPU.
    /// A kernel without an entry uses `default_min_batch`. Default: empty.
    pub min_batch: BTreeMap<String, usize>,
    /// Minimum batch for kernels not listed in `min_batch`. Default: 1024.
    pub default_min_batch: usize,
    /// Cap on the device memory one batch may use, in MiB; larger batches are chunked.
    /// Default: 0 = a quarter of the device's reported memory.
    pub memory_limit_mib: u64,
    /// Command queues (CUDA streams / OpenCL queues) per device, used to overlap copies and
    /// kernels of consecutive chunks. Default: 4.
    pub queues_per_device: usize,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            devices: Vec::new(),
            cpu_threads: 0,
            min_batch: BTreeMap::new(),
            default_min_batch: 1024,
            memory_limit_mib: 0,
            queues_per_device: 4,
        }
    }
}

impl GpuConfig {
    /// A config that forces one backend, every other field at its default.
    pub fn with_backend(backend: BackendChoice) -> Self {
        Self {
            backend,
            ..Self::default()
        }
    }

    /// Minimum batch size for `kernel`.
    pub fn min_batch_for(&self, kernel: &str) -> usize {
        self.min_batch
            .get(kernel)
            .copied()
            .unwrap_or(self.default_min_batch)
    }
}
