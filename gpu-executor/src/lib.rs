//! SuperVM L3 GPU executor: batch kernels on CUDA and OpenCL with a rayon CPU backend that is
//! both the reference and the fallback.
//!
//! Layers, bottom up:
//! - [`device`]: the backend layer. [`GpuDevice`] wraps one CUDA device (cudarc + NVRTC,
//!   feature `cuda`) or OpenCL device (opencl3, feature `opencl`) behind one API: compile a
//!   [`KernelSource`] once, allocate [`DeviceBuffer`]s, and upload / launch / download on
//!   in-order [`Queue`]s. Kernel sources live in `kernels/` and compile under both NVRTC and
//!   OpenCL thanks to `kernels/common.h`. `docs/GPU_BACKEND.md` is the guide for kernel
//!   authors.
//! - Kernel modules on top of it: hashing and Merkle trees here; signatures (`sig`) and
//!   MSM/NTT (`zk`) in their own modules.
//! - [`GpuExecutor`]: picks devices from a [`GpuConfig`], runs batches there, and redoes a
//!   batch on the CPU (logged, counted) when the device fails. It implements
//!   `engine_api::ExecutionEngine`.
#![deny(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod config;
#[cfg(feature = "cuda")]
mod cuda;
pub mod device;
pub mod error;
pub mod executor;
pub mod gpu_hash;
pub mod hash;
#[cfg(feature = "opencl")]
mod opencl;
pub mod pod;
pub mod sig;

pub use config::{BackendChoice, GpuConfig};
pub use device::{
    list_devices, open_device, open_devices, preferred_device, BackendKind, DeviceBuffer,
    DeviceInfo, GpuDevice, HostStaging, KernelArg, KernelSource, LaunchDims, Queue,
};
pub use error::{GpuError, Result};
pub use executor::GpuExecutor;
pub use gpu_hash::GpuHasher;
pub use hash::{
    CpuBackend, Digest, HashAlgo, HashBackend, MerkleTree, MessageBatch, Messages, EMPTY_ROOT,
};
pub mod zk;
