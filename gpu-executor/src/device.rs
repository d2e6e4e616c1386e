//! The backend layer: one device abstraction over CUDA and OpenCL that every kernel module
//! (hashing, Merkle, signatures, MSM/NTT) builds on. See `docs/GPU_BACKEND.md`.
//!
//! - [`KernelSource`]: a kernel file (`include_str!`) plus its name; [`COMMON_HEADER`] is
//!   prepended automatically, so one source compiles under NVRTC and OpenCL.
//! - [`GpuDevice`]: one opened device; compiles a source once (per process on CUDA, per
//!   source hash and context on OpenCL), allocates [`DeviceBuffer`]s and hands out
//!   [`Queue`]s (CUDA streams / OpenCL in-order queues) that upload, launch and download.
//! - [`list_devices`] / [`open_devices`]: discovery with properties read from the devices.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{GpuError, Result};
use crate::pod::{as_bytes, as_bytes_mut, Pod};

/// The header every kernel source is compiled with (`kernels/common.h`): address-space
/// qualifiers, thread indices, integer intrinsics and PTX fast paths, for NVRTC and OpenCL.
pub const COMMON_HEADER: &str = include_str!("../kernels/common.h");

/// Which GPU API a device is driven through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Cuda,
    Opencl,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cuda => "cuda",
            BackendKind::Opencl => "opencl",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Properties of a device, read from the device itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub backend: BackendKind,
    /// Index within the backend (CUDA ordinal, or position in the OpenCL device order).
    pub index: usize,
    /// Device name as the driver reports it (e.g. `NVIDIA H200`).
    pub name: String,
    /// Vendor (`NVIDIA Corporation`, ...); for CUDA always NVIDIA.
    pub vendor: String,
    /// OpenCL platform name; empty for CUDA.
    pub platform: String,
    /// Streaming multiprocessors (CUDA) or compute units (OpenCL).
    pub compute_units: u32,
    /// Total device memory in bytes.
    pub total_memory: u64,
    /// Largest single allocation in bytes.
    pub max_alloc: u64,
    /// CUDA compute capability (major, minor); `None` for OpenCL.
    pub compute_capability: Option<(u32, u32)>,
    /// API version: `CUDA driver 13000`, or the OpenCL device version string.
    pub version: String,
    /// Largest work-group / thread block.
    pub max_group_size: u32,
    /// Core clock in MHz, when reported.
    pub clock_mhz: u32,
    /// Whether this is a GPU (OpenCL may expose CPUs and accelerators too).
    pub is_gpu: bool,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} {} ({} units, {} MiB",
            self.backend,
            self.index,
            self.name,
            self.compute_units,
            self.total_memory >> 20
        )?;
        if let Some((ma, mi)) = self.compute_capability {
            write!(f, ", sm_{ma}{mi}")?;
        }
        if !self.platform.is_empty() {
            write!(f, ", {}", self.platform)?;
        }
        write!(f, ", {})", self.version)
    }
}

/// A kernel source file. Each kernel module declares its sources as constants, e.g.
/// `KernelSource::new("hash", include_str!("../kernels/hash.cl"))`; [`COMMON_HEADER`] is
/// prepended before compiling (NVRTC has no file system, so no `#include`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSource {
    /// Short name used in logs and build errors.
    pub name: &'static str,
    /// The source text (without the common header).
    pub source: &'static str,
}

impl KernelSource {
    pub const fn new(name: &'static str, source: &'static str) -> Self {
        Self { name, source }
    }

    /// The full text that is compiled: the common header, then the source.
    pub fn full_text(&self) -> String {
        let mut s = String::with_capacity(COMMON_HEADER.len() + self.source.len() + 64);
        s.push_str(COMMON_HEADER);
        s.push_str("\n#line 1 \"");
        s.push_str(self.name);
        s.push_str("\"\n");
        s.push_str(self.source);
        s
    }

    /// A stable 64-bit hash of [`KernelSource::full_text`] (FNV-1a), the compile cache key.
    pub fn hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in COMMON_HEADER
            .bytes()
            .chain(self.name.bytes())
            .chain(self.source.bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
}

/// Grid shape of a launch: `items` work items (one per thread) in groups of `group_size`.
/// The grid is rounded up to whole groups, so kernels must check `GLOBAL_ID < n` themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchDims {
    pub items: u64,
    /// Threads per block / work-group. Default 256.
    pub group_size: u32,
}

impl LaunchDims {
    pub const DEFAULT_GROUP: u32 = 256;
    pub fn items(items: u64) -> Self {
        Self {
            items,
            group_size: Self::DEFAULT_GROUP,
        }
    }
    pub fn with_group(items: u64, group_size: u32) -> Self {
        Self { items, group_size }
    }
    /// Number of groups (CUDA blocks).
    pub fn groups(&self) -> u64 {
        let g = u64::from(self.group_size.max(1));
        self.items.div_ceil(g)
    }
}

/// One kernel argument, in the order of the kernel's parameters.
#[derive(Clone, Copy, Debug)]
pub enum KernelArg<'a> {
    /// A device buffer (a `GLOBAL T*` parameter; the kernel picks `T`).
    Buffer(&'a DeviceBuffer),
    /// A `u32` scalar.
    U32(u32),
    /// A `u64` scalar.
    U64(u64),
    /// An `i32` scalar.
    I32(i32),
}

pub(crate) enum BufferImpl {
    #[cfg(feature = "cuda")]
    Cuda(cudarc::driver::CudaSlice<u8>),
    #[cfg(feature = "opencl")]
    Opencl(opencl3::memory::Buffer<u8>),
    /// Zero-byte buffer (no device allocation; kernels never touch it).
    Empty,
}

/// Memory on one device, untyped (bytes). Allocate once and reuse it for many batches:
/// allocation is far more expensive than a launch. Dropping it frees the memory.
pub struct DeviceBuffer {
    #[cfg_attr(not(any(feature = "cuda", feature = "opencl")), allow(dead_code))]
    pub(crate) inner: BufferImpl,
    pub(crate) len: usize,
    /// Address of the owning device implementation, to reject cross-device use.
    pub(crate) owner: usize,
}

impl DeviceBuffer {
    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceBuffer({} bytes)", self.len)
    }
}

pub(crate) enum StagingImpl {
    #[cfg(feature = "cuda")]
    Cuda {
        mem: cudarc::driver::PinnedHostSlice<u8>,
        /// Recorded after the last asynchronous copy that uses this memory.
        pending: Option<cudarc::driver::CudaEvent>,
    },
    Plain(Vec<u8>),
}

/// Host memory for copies to and from a device: page-locked (pinned) on CUDA, so copies run
/// asynchronously at full PCIe speed and overlap kernels; a plain `Vec` elsewhere (where the
/// asynchronous copies below are ordinary blocking ones). Accessing the bytes waits for any
/// asynchronous copy still using them, so it is always safe.
pub struct HostStaging {
    pub(crate) inner: StagingImpl,
    pub(crate) len: usize,
}

impl fmt::Debug for HostStaging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HostStaging({} bytes, pinned: {})",
            self.len,
            self.is_pinned()
        )
    }
}

impl Drop for HostStaging {
    fn drop(&mut self) {
        // Never free pinned memory that an asynchronous copy still uses.
        let _ = self.as_mut_slice();
    }
}

impl HostStaging {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Whether this is page-locked memory.
    pub fn is_pinned(&self) -> bool {
        !matches!(self.inner, StagingImpl::Plain(_))
    }
    /// The bytes, after any pending asynchronous copy finished.
    pub fn as_slice(&mut self) -> Result<&[u8]> {
        self.as_mut_slice().map(|s| &*s)
    }
    /// The bytes, writable, after any pending asynchronous copy finished.
    pub fn as_mut_slice(&mut self) -> Result<&mut [u8]> {
        match &mut self.inner {
            StagingImpl::Plain(v) => Ok(v.as_mut_slice()),
            #[cfg(feature = "cuda")]
            StagingImpl::Cuda { mem, pending } => crate::cuda::staging_slice(mem, pending),
        }
    }
}

/// What each backend implements. Internal: users go through [`GpuDevice`] and [`Queue`].
pub(crate) trait DeviceImpl: Send + Sync {
    fn info(&self) -> &DeviceInfo;
    fn num_queues(&self) -> usize;
    fn alloc(&self, bytes: usize) -> Result<DeviceBuffer>;
    fn upload(&self, q: usize, dst: &mut DeviceBuffer, offset: usize, src: &[u8]) -> Result<()>;
    fn download(&self, q: usize, src: &DeviceBuffer, offset: usize, dst: &mut [u8]) -> Result<()>;
    fn copy(
        &self,
        q: usize,
        src: &DeviceBuffer,
        src_offset: usize,
        dst: &mut DeviceBuffer,
        dst_offset: usize,
        bytes: usize,
    ) -> Result<()>;
    fn prepare(&self, src: &KernelSource) -> Result<()>;
    fn launch(
        &self,
        q: usize,
        src: &KernelSource,
        kernel: &str,
        dims: LaunchDims,
        args: &[KernelArg<'_>],
    ) -> Result<()>;
    fn synchronize(&self, q: usize) -> Result<()>;
    fn free_memory(&self) -> Option<u64>;
    fn alloc_staging(&self, bytes: usize) -> Result<HostStaging> {
        Ok(HostStaging {
            inner: StagingImpl::Plain(vec![0u8; bytes]),
            len: bytes,
        })
    }
    /// Asynchronous where the staging memory is pinned; the default is a blocking upload.
    fn upload_staged(
        &self,
        q: usize,
        dst: &mut DeviceBuffer,
        offset: usize,
        src: &mut HostStaging,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        let bytes = &src.as_mut_slice()?[range];
        self.upload(q, dst, offset, bytes)
    }
    /// Asynchronous where the staging memory is pinned; the default is a blocking download.
    fn download_staged(
        &self,
        q: usize,
        src: &DeviceBuffer,
        offset: usize,
        dst: &mut HostStaging,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        let bytes = &mut dst.as_mut_slice()?[range];
        self.download(q, src, offset, bytes)
    }
}

/// One opened device. Cheap to clone (shared handle); `Send + Sync`.
#[derive(Clone)]
pub struct GpuDevice {
    pub(crate) imp: Arc<dyn DeviceImpl>,
}

impl fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GpuDevice({})", self.info())
    }
}

impl GpuDevice {
    #[cfg_attr(not(any(feature = "cuda", feature = "opencl")), allow(dead_code))]
    pub(crate) fn from_impl(imp: Arc<dyn DeviceImpl>) -> Self {
        Self { imp }
    }
    fn owner_id(&self) -> usize {
        Arc::as_ptr(&self.imp) as *const () as usize
    }

    /// Properties read from the device.
    pub fn info(&self) -> &DeviceInfo {
        self.imp.info()
    }
    pub fn backend(&self) -> BackendKind {
        self.info().backend
    }
    /// How many queues (streams) this device was opened with.
    pub fn num_queues(&self) -> usize {
        self.imp.num_queues()
    }
    /// Queue `i` (modulo [`GpuDevice::num_queues`]). Work on one queue runs in order;
    /// different queues may overlap.
    pub fn queue(&self, i: usize) -> Queue<'_> {
        Queue {
            dev: self,
            index: i % self.num_queues().max(1),
        }
    }
    /// Allocates `bytes` bytes (contents undefined). Errors with
    /// [`GpuError::OutOfMemory`] when the device cannot hold it.
    pub fn alloc(&self, bytes: usize) -> Result<DeviceBuffer> {
        if bytes == 0 {
            return Ok(DeviceBuffer {
                inner: BufferImpl::Empty,
                len: 0,
                owner: self.owner_id(),
            });
        }
        if bytes as u64 > self.info().max_alloc {
            return Err(GpuError::OutOfMemory {
                requested: bytes as u64,
                detail: format!(
                    "larger than the device's largest allocation ({} bytes)",
                    self.info().max_alloc
                ),
            });
        }
        let mut b = self.imp.alloc(bytes)?;
        b.owner = self.owner_id();
        Ok(b)
    }
    /// Makes sure `buf` holds at least `bytes` bytes, reallocating (contents lost) if not.
    /// The way to keep reusable scratch buffers: `Option<DeviceBuffer>` in your struct.
    pub fn ensure_capacity(&self, buf: &mut Option<DeviceBuffer>, bytes: usize) -> Result<()> {
        let fits = buf
            .as_ref()
            .is_some_and(|b| b.len >= bytes && b.owner == self.owner_id());
        if !fits {
            *buf = None; // free first, so the old and new buffer never coexist
            *buf = Some(self.alloc(bytes)?);
        }
        Ok(())
    }
    /// Host staging memory of `bytes` bytes: pinned on CUDA (allocate once and reuse: pinning
    /// is slow), a plain vector on OpenCL.
    pub fn alloc_staging(&self, bytes: usize) -> Result<HostStaging> {
        self.imp.alloc_staging(bytes)
    }
    /// Compiles `src` for this device now (it is otherwise compiled at its first launch).
    /// Compilation happens once per process (CUDA) or per context and source hash (OpenCL).
    pub fn prepare(&self, src: &KernelSource) -> Result<()> {
        self.imp.prepare(src)
    }
    /// Waits for all queues.
    pub fn synchronize(&self) -> Result<()> {
        for q in 0..self.num_queues() {
            self.imp.synchronize(q)?;
        }
        Ok(())
    }
    /// Free device memory in bytes, when the API reports it (CUDA does, OpenCL does not).
    pub fn free_memory(&self) -> Option<u64> {
        self.imp.free_memory()
    }

    fn check(&self, b: &DeviceBuffer) -> Result<()> {
        if b.owner != self.owner_id() {
            return Err(GpuError::InvalidInput(
                "device buffer belongs to another device".into(),
            ));
        }
        Ok(())
    }
}

fn range_check(what: &str, offset: usize, len: usize, cap: usize) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= cap => Ok(()),
        _ => Err(GpuError::InvalidInput(format!(
            "{what}: range {offset}+{len} outside buffer of {cap} bytes"
        ))),
    }
}

/// An in-order command queue of a device (a CUDA stream / an OpenCL command queue).
#[derive(Clone, Copy)]
pub struct Queue<'d> {
    dev: &'d GpuDevice,
    index: usize,
}

impl Queue<'_> {
    pub fn index(&self) -> usize {
        self.index
    }
    pub fn device(&self) -> &GpuDevice {
        self.dev
    }
    /// Copies `src` into `dst` at byte offset `offset`. Returns once `src` may be reused.
    pub fn upload<T: Pod>(&self, dst: &mut DeviceBuffer, offset: usize, src: &[T]) -> Result<()> {
        self.dev.check(dst)?;
        let bytes = as_bytes(src);
        range_check("upload", offset, bytes.len(), dst.len)?;
        if bytes.is_empty() {
            return Ok(());
        }
        self.dev.imp.upload(self.index, dst, offset, bytes)
    }
    /// Copies bytes from `src` at byte offset `offset` into `dst`; waits for the queue's
    /// earlier work and for the copy, so `dst` holds the result on return.
    pub fn download<T: Pod>(&self, src: &DeviceBuffer, offset: usize, dst: &mut [T]) -> Result<()> {
        self.dev.check(src)?;
        let bytes = as_bytes_mut(dst);
        range_check("download", offset, bytes.len(), src.len)?;
        if bytes.is_empty() {
            return self.synchronize();
        }
        self.dev.imp.download(self.index, src, offset, bytes)
    }
    /// Copies `src[range]` to `dst` at `offset`. Asynchronous when `src` is pinned: it
    /// returns at once, and `src` cannot be touched again before the copy is done
    /// ([`HostStaging::as_mut_slice`] waits for it).
    pub fn upload_staged(
        &self,
        dst: &mut DeviceBuffer,
        offset: usize,
        src: &mut HostStaging,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        self.dev.check(dst)?;
        range_check("upload_staged source", range.start, range.len(), src.len)?;
        range_check("upload_staged", offset, range.len(), dst.len)?;
        if range.is_empty() {
            return Ok(());
        }
        self.dev
            .imp
            .upload_staged(self.index, dst, offset, src, range)
    }
    /// Copies `range.len()` bytes of `src` at `offset` into `dst[range]`. Asynchronous when
    /// `dst` is pinned; reading `dst` ([`HostStaging::as_mut_slice`]) waits for the copy.
    pub fn download_staged(
        &self,
        src: &DeviceBuffer,
        offset: usize,
        dst: &mut HostStaging,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        self.dev.check(src)?;
        range_check(
            "download_staged destination",
            range.start,
            range.len(),
            dst.len,
        )?;
        range_check("download_staged", offset, range.len(), src.len)?;
        if range.is_empty() {
            return Ok(());
        }
        self.dev
            .imp
            .download_staged(self.index, src, offset, dst, range)
    }
    /// Device-to-device copy of `bytes` bytes.
    pub fn copy(
        &self,
        src: &DeviceBuffer,
        src_offset: usize,
        dst: &mut DeviceBuffer,
        dst_offset: usize,
        bytes: usize,
    ) -> Result<()> {
        self.dev.check(src)?;
        self.dev.check(dst)?;
        range_check("copy source", src_offset, bytes, src.len)?;
        range_check("copy destination", dst_offset, bytes, dst.len)?;
        if bytes == 0 {
            return Ok(());
        }
        self.dev
            .imp
            .copy(self.index, src, src_offset, dst, dst_offset, bytes)
    }
    /// Launches `kernel` of `src` over `items` work items, groups of 256.
    pub fn launch(
        &self,
        src: &KernelSource,
        kernel: &str,
        items: u64,
        args: &[KernelArg<'_>],
    ) -> Result<()> {
        self.launch_dims(src, kernel, LaunchDims::items(items), args)
    }
    /// Launches `kernel` of `src` with an explicit group size. Returns when the launch is
    /// queued; errors of the running kernel surface at the next synchronising call.
    pub fn launch_dims(
        &self,
        src: &KernelSource,
        kernel: &str,
        dims: LaunchDims,
        args: &[KernelArg<'_>],
    ) -> Result<()> {
        for a in args {
            if let KernelArg::Buffer(b) = a {
                self.dev.check(b)?;
            }
        }
        if dims.items == 0 {
            return Ok(());
        }
        if dims.group_size == 0 || dims.group_size > self.dev.info().max_group_size {
            return Err(GpuError::InvalidInput(format!(
                "group size {} outside 1..={}",
                dims.group_size,
                self.dev.info().max_group_size
            )));
        }
        self.dev.imp.launch(self.index, src, kernel, dims, args)
    }
    /// Waits until everything queued on this queue has finished.
    pub fn synchronize(&self) -> Result<()> {
        self.dev.imp.synchronize(self.index)
    }
}

/// The device of backend `kind` that tests and benchmarks run on: a GPU if `devices` lists
/// one, else its other device (PoCL's CPU device for OpenCL); `None` when the backend has
/// none.
pub fn preferred_device(devices: &[DeviceInfo], kind: BackendKind) -> Option<&DeviceInfo> {
    devices
        .iter()
        .filter(|d| d.backend == kind)
        .max_by_key(|d| d.is_gpu)
}

/// Every device of every compiled-in backend, with its properties. Missing libraries or
/// drivers give an empty list for that backend (never a panic); the reason is logged.
#[cfg_attr(not(any(feature = "cuda", feature = "opencl")), allow(unused_mut))]
pub fn list_devices() -> Vec<DeviceInfo> {
    let mut out = Vec::new();
    #[cfg(feature = "cuda")]
    match crate::cuda::list() {
        Ok(v) => out.extend(v),
        Err(e) => tracing::debug!("CUDA: {e}"),
    }
    #[cfg(feature = "opencl")]
    match crate::opencl::list() {
        Ok(v) => out.extend(v),
        Err(e) => tracing::debug!("OpenCL: {e}"),
    }
    out
}

/// Why a backend is unavailable, or `None` when it has at least one device.
pub fn backend_status(kind: BackendKind) -> Option<String> {
    let r: Result<Vec<DeviceInfo>> = match kind {
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => crate::cuda::list(),
        #[cfg(feature = "opencl")]
        BackendKind::Opencl => crate::opencl::list(),
        #[allow(unreachable_patterns)]
        other => Err(GpuError::Unavailable(format!(
            "gpu-executor was built without the `{other}` feature"
        ))),
    };
    match r {
        Ok(v) if v.is_empty() => Some(format!("no {kind} device found")),
        Ok(_) => None,
        Err(GpuError::Unavailable(why)) => Some(why),
        Err(e) => Some(e.to_string()),
    }
}

/// Opens device `index` of `kind` with `queues` queues.
pub fn open_device(kind: BackendKind, index: usize, queues: usize) -> Result<GpuDevice> {
    let queues = queues.clamp(1, 16);
    match kind {
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => crate::cuda::open(index, queues),
        #[cfg(feature = "opencl")]
        BackendKind::Opencl => crate::opencl::open(index, queues),
        #[allow(unreachable_patterns)]
        other => {
            let _ = (index, queues);
            Err(GpuError::Unavailable(format!(
                "gpu-executor was built without the `{other}` feature"
            )))
        }
    }
}

/// Opens every device of `kind` (for tests and benchmarks). `Err` says why there is none.
pub fn open_all(kind: BackendKind, queues: usize) -> Result<Vec<GpuDevice>> {
    if let Some(why) = backend_status(kind) {
        return Err(GpuError::Unavailable(why));
    }
    list_devices()
        .iter()
        .filter(|d| d.backend == kind)
        .map(|d| open_device(kind, d.index, queues))
        .collect()
}

/// Opens the devices `config` asks for. `Ok(vec![])` means "use the CPU" (backend `cpu`,
/// or `auto` with no usable GPU). An explicit `cuda`/`opencl` that cannot be opened is an
/// error (the caller decides whether to fall back).
pub fn open_devices(config: &crate::config::GpuConfig) -> Result<Vec<GpuDevice>> {
    use crate::config::BackendChoice;
    let ids: Vec<usize> = if config.devices.is_empty() {
        vec![0]
    } else {
        config.devices.clone()
    };
    let open_all = |kind: BackendKind| -> Result<Vec<GpuDevice>> {
        ids.iter()
            .map(|&i| open_device(kind, i, config.queues_per_device))
            .collect()
    };
    match config.backend {
        BackendChoice::Cpu => Ok(Vec::new()),
        BackendChoice::Cuda => open_all(BackendKind::Cuda),
        BackendChoice::Opencl => open_all(BackendKind::Opencl),
        BackendChoice::Auto => {
            if backend_status(BackendKind::Cuda).is_none() {
                match open_all(BackendKind::Cuda) {
                    Ok(d) => return Ok(d),
                    Err(e) => tracing::warn!("auto: CUDA present but failed to open: {e}"),
                }
            }
            #[cfg(feature = "opencl")]
            if let Ok(all) = crate::opencl::list() {
                // Only OpenCL GPUs count for `auto`; a CPU OpenCL device is slower than rayon.
                let gpus: Vec<usize> = all.iter().filter(|d| d.is_gpu).map(|d| d.index).collect();
                if !gpus.is_empty() {
                    let chosen: Vec<usize> = if config.devices.is_empty() {
                        vec![gpus[0]]
                    } else {
                        ids.iter().copied().filter(|i| gpus.contains(i)).collect()
                    };
                    match chosen
                        .iter()
                        .map(|&i| open_device(BackendKind::Opencl, i, config.queues_per_device))
                        .collect::<Result<Vec<_>>>()
                    {
                        Ok(d) if !d.is_empty() => return Ok(d),
                        Ok(_) => {}
                        Err(e) => tracing::warn!("auto: OpenCL GPU failed to open: {e}"),
                    }
                }
            }
            Ok(Vec::new())
        }
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        #[cfg(feature = "cuda")]
        crate::cuda::before_free(&self.inner);
    }
}

/// The header self-test kernel (`kernels/selftest.cl`).
pub const SELFTEST_SOURCE: KernelSource =
    KernelSource::new("selftest", include_str!("../kernels/selftest.cl"));

/// What `selftest_intrinsics` computes for one (a, b), in Rust.
fn selftest_expected(a: u64, b: u64) -> [u64; 8] {
    let (s0, c0a) = a.overflowing_add(b);
    let (s1, c1b) = s0.overflowing_add(1);
    let c0 = u64::from(c0a);
    let c1 = u64::from(c0a | c1b);
    let (d0, b0a) = a.overflowing_sub(b);
    let (d1, b1b) = d0.overflowing_sub(1);
    let b0 = u64::from(b0a);
    let b1 = u64::from(b0a | b1b);
    let wide = u128::from(a) * u128::from(b);
    let (la, lb) = (a as u32, b as u32);
    [
        s0,
        s1 ^ (c0 | (c1 << 1)),
        d0,
        d1 ^ (b0 | (b1 << 1)),
        wide as u64,
        (wide >> 64) as u64,
        (u64::from(la.rotate_right((b & 31) as u32)) << 32)
            | ((u64::from(la) * u64::from(lb)) >> 32),
        a.rotate_left((b & 63) as u32) ^ u64::from(la.swap_bytes()),
    ]
}

/// Compiles the header self-test on `dev`, runs it and compares every intrinsic of
/// `kernels/common.h` (carry chains, wide multiply, rotates, byte swap) with Rust.
pub fn self_test(dev: &GpuDevice) -> Result<()> {
    let pairs: Vec<u64> = [
        (0u64, 0u64),
        (u64::MAX, 1),
        (u64::MAX, u64::MAX),
        (0, 1),
        (1, u64::MAX),
        (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210),
        (0x8000_0000_0000_0000, 0x8000_0000_0000_0000),
        (0xdead_beef, 37),
    ]
    .iter()
    .flat_map(|&(a, b)| [a, b])
    .collect();
    let n = pairs.len() / 2;
    let mut input = dev.alloc(pairs.len() * 8)?;
    let output = dev.alloc(n * 64)?;
    let q = dev.queue(0);
    q.upload(&mut input, 0, &pairs)?;
    q.launch(
        &SELFTEST_SOURCE,
        "selftest_intrinsics",
        n as u64,
        &[
            KernelArg::Buffer(&input),
            KernelArg::Buffer(&output),
            KernelArg::U32(n as u32),
        ],
    )?;
    let mut got = vec![0u64; n * 8];
    q.download(&output, 0, &mut got)?;
    for i in 0..n {
        let want = selftest_expected(pairs[2 * i], pairs[2 * i + 1]);
        let have = &got[8 * i..8 * i + 8];
        if have != want {
            return Err(GpuError::Launch(format!(
                "self-test mismatch on {} for ({:#x}, {:#x}): got {have:x?}, want {want:x?}",
                dev.info().name,
                pairs[2 * i],
                pairs[2 * i + 1]
            )));
        }
    }
    Ok(())
}
