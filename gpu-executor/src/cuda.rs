//! CUDA backend (feature `cuda`): cudarc's driver API with NVRTC, both loaded at run time.
//!
//! Every entry point first checks that libcuda and libnvrtc can be loaded (cudarc panics on
//! a missing library otherwise) and runs under `catch_unwind` as a second guard, so a
//! machine without CUDA sees [`GpuError::Unavailable`], never a panic.
//!
//! Kernels are compiled by NVRTC to PTX for the device's own architecture
//! (`--gpu-architecture=compute_XY`, which the driver finalises to `sm_XY`), once per
//! process and architecture; each device loads the module once.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{
    result as dres, sys, CudaContext, CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream,
    DevicePtr, DriverError, LaunchConfig, PinnedHostSlice, PushKernelArg,
};
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};

use crate::device::{
    BackendKind, BufferImpl, DeviceBuffer, DeviceImpl, DeviceInfo, GpuDevice, HostStaging,
    KernelArg, KernelSource, LaunchDims, StagingImpl,
};
use crate::error::{GpuError, Result};

fn driver_present() -> Result<()> {
    // SAFETY: `is_culib_present` only tries to dlopen the library by name.
    if !unsafe { sys::is_culib_present() } {
        return Err(GpuError::Unavailable(
            "libcuda (the NVIDIA driver library) is not installed".into(),
        ));
    }
    Ok(())
}

fn nvrtc_present() -> Result<()> {
    // SAFETY: as above, a dlopen probe.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(GpuError::Unavailable(
            "libnvrtc (the CUDA run-time compiler) is not installed".into(),
        ));
    }
    Ok(())
}

fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(GpuError::Unavailable(format!(
                "CUDA {what} panicked: {msg}"
            )))
        }
    }
}

fn derr(what: &str, e: DriverError) -> GpuError {
    let name = e
        .error_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", e.0));
    GpuError::Launch(format!("CUDA {what}: {name}"))
}

fn alloc_err(bytes: usize, e: DriverError) -> GpuError {
    if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        GpuError::OutOfMemory {
            requested: bytes as u64,
            detail: "cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY".into(),
        }
    } else {
        derr("alloc", e)
    }
}

fn attr(dev: sys::CUdevice, a: sys::CUdevice_attribute) -> i32 {
    // SAFETY: `dev` comes from `cuDeviceGet`.
    unsafe { dres::device::get_attribute(dev, a) }.unwrap_or(0)
}

fn driver_version() -> i32 {
    let mut v = 0i32;
    // SAFETY: writes one int; the library is loaded (checked by the callers).
    let r = unsafe { sys::cuDriverGetVersion(&mut v) };
    if r == sys::CUresult::CUDA_SUCCESS {
        v
    } else {
        0
    }
}

fn read_info(index: usize) -> Result<DeviceInfo> {
    let dev = dres::device::get(index as i32).map_err(|e| derr("cuDeviceGet", e))?;
    let name = dres::device::get_name(dev).map_err(|e| derr("cuDeviceGetName", e))?;
    // SAFETY: `dev` comes from `cuDeviceGet`.
    let total =
        unsafe { dres::device::total_mem(dev) }.map_err(|e| derr("cuDeviceTotalMem", e))? as u64;
    use sys::CUdevice_attribute as A;
    let major = attr(dev, A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    let minor = attr(dev, A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    Ok(DeviceInfo {
        backend: BackendKind::Cuda,
        index,
        name,
        vendor: "NVIDIA Corporation".into(),
        platform: String::new(),
        compute_units: attr(dev, A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).max(0) as u32,
        total_memory: total,
        max_alloc: total,
        compute_capability: Some((major.max(0) as u32, minor.max(0) as u32)),
        version: format!("CUDA driver {}", driver_version()),
        max_group_size: attr(dev, A::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK).max(1) as u32,
        clock_mhz: (attr(dev, A::CU_DEVICE_ATTRIBUTE_CLOCK_RATE).max(0) / 1000) as u32,
        is_gpu: true,
    })
}

/// All CUDA devices with their properties.
pub(crate) fn list() -> Result<Vec<DeviceInfo>> {
    driver_present()?;
    guarded("device discovery", || {
        dres::init().map_err(|e| GpuError::Unavailable(format!("cuInit failed: {e:?}")))?;
        let n = dres::device::get_count().map_err(|e| derr("cuDeviceGetCount", e))?;
        (0..n.max(0) as usize).map(read_info).collect()
    })
}

/// Opens CUDA device `index` with `queues` streams.
pub(crate) fn open(index: usize, queues: usize) -> Result<GpuDevice> {
    driver_present()?;
    nvrtc_present()?;
    guarded("device open", || {
        dres::init().map_err(|e| GpuError::Unavailable(format!("cuInit failed: {e:?}")))?;
        let n = dres::device::get_count().map_err(|e| derr("cuDeviceGetCount", e))?;
        if index >= n.max(0) as usize {
            return Err(GpuError::Config(format!(
                "CUDA device {index} does not exist ({n} found)"
            )));
        }
        let info = read_info(index)?;
        let ctx = CudaContext::new(index).map_err(|e| derr("context", e))?;
        // SAFETY: called before any stream or buffer exists in this context; the backend
        // orders work itself (in-order queues, explicit synchronisation, and a context
        // synchronisation before a buffer is freed).
        unsafe { ctx.disable_event_tracking() };
        let streams = (0..queues)
            .map(|_| ctx.new_stream().map_err(|e| derr("stream", e)))
            .collect::<Result<Vec<_>>>()?;
        let dev = CudaDevice {
            info,
            ctx,
            streams,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        };
        Ok(GpuDevice::from_impl(Arc::new(dev)))
    })
}

/// Stack of the thread that runs NVRTC (see `compile`).
const NVRTC_STACK_BYTES: usize = 512 << 20;

type PtxCache = Mutex<HashMap<(u64, u32, u32), std::result::Result<String, String>>>;

/// Process-wide NVRTC cache: (source hash, arch) -> PTX or the compiler log.
fn ptx_cache() -> &'static PtxCache {
    static CACHE: OnceLock<PtxCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn compile(src: &KernelSource, major: u32, minor: u32) -> Result<String> {
    let key = (src.hash(), major, minor);
    let mut cache = ptx_cache().lock().unwrap_or_else(|p| p.into_inner());
    let entry = cache.entry(key).or_insert_with(|| {
        let opts = CompileOptions {
            options: vec![
                format!("--gpu-architecture=compute_{major}{minor}"),
                "--std=c++17".into(),
            ],
            ..Default::default()
        };
        let started = std::time::Instant::now();
        // NVRTC recurses deeply on large, heavily inlined kernels (the signature programs):
        // on a default 2-8 MiB thread stack it overflowed and the process stalled on the
        // H200 host. Compile on a dedicated thread with a large stack (virtual memory: only
        // the pages NVRTC touches are committed).
        let text = src.full_text();
        let run = move || -> std::result::Result<String, String> {
            match catch_unwind(AssertUnwindSafe(|| {
                cudarc::nvrtc::compile_ptx_with_opts(text, opts)
            })) {
                Ok(Ok(ptx)) => Ok(ptx.to_src()),
                Ok(Err(CompileError::CompileError { log, .. })) => {
                    Err(log.to_string_lossy().into_owned())
                }
                Ok(Err(e)) => Err(format!("{e:?}")),
                Err(_) => Err("NVRTC panicked".into()),
            }
        };
        let r = match std::thread::Builder::new()
            .name("nvrtc".into())
            .stack_size(NVRTC_STACK_BYTES)
            .spawn(run)
        {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|_| Err("NVRTC compile thread panicked".into())),
            Err(e) => Err(format!("cannot start the NVRTC compile thread: {e}")),
        };
        tracing::debug!(
            "NVRTC compiled `{}` for compute_{major}{minor} in {:?}",
            src.name,
            started.elapsed()
        );
        r
    });
    entry.clone().map_err(|log| GpuError::Build {
        backend: "cuda",
        source_name: src.name.to_string(),
        log,
    })
}

struct CudaDevice {
    info: DeviceInfo,
    ctx: Arc<CudaContext>,
    streams: Vec<Arc<CudaStream>>,
    modules: Mutex<HashMap<u64, Arc<CudaModule>>>,
    functions: Mutex<HashMap<(u64, String), CudaFunction>>,
}

impl CudaDevice {
    fn stream(&self, q: usize) -> &Arc<CudaStream> {
        &self.streams[q % self.streams.len()]
    }

    fn module(&self, src: &KernelSource) -> Result<Arc<CudaModule>> {
        let h = src.hash();
        if let Some(m) = self
            .modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&h)
        {
            return Ok(m.clone());
        }
        let (major, minor) = self.info.compute_capability.unwrap_or((5, 2));
        let ptx = compile(src, major, minor)?;
        let m = self
            .ctx
            .load_module(Ptx::from_src(ptx))
            .map_err(|e| GpuError::Build {
                backend: "cuda",
                source_name: src.name.to_string(),
                log: format!("cuModuleLoadData failed: {e:?}"),
            })?;
        self.modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(h, m.clone());
        Ok(m)
    }

    fn function(&self, src: &KernelSource, name: &str) -> Result<CudaFunction> {
        let key = (src.hash(), name.to_string());
        if let Some(f) = self
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(f.clone());
        }
        let m = self.module(src)?;
        let f = m.load_function(name).map_err(|e| {
            GpuError::Launch(format!(
                "kernel `{name}` not found in source `{}`: {e:?}",
                src.name
            ))
        })?;
        self.functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, f.clone());
        Ok(f)
    }
}

fn slice(b: &DeviceBuffer) -> Result<&CudaSlice<u8>> {
    match &b.inner {
        BufferImpl::Cuda(s) => Ok(s),
        #[allow(unreachable_patterns)]
        _ => Err(GpuError::InvalidInput("not a CUDA buffer".into())),
    }
}

fn slice_mut(b: &mut DeviceBuffer) -> Result<&mut CudaSlice<u8>> {
    match &mut b.inner {
        BufferImpl::Cuda(s) => Ok(s),
        #[allow(unreachable_patterns)]
        _ => Err(GpuError::InvalidInput("not a CUDA buffer".into())),
    }
}

/// A null device pointer, passed for zero-length buffers.
static NULL_PTR: u64 = 0;

impl DeviceImpl for CudaDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }
    fn num_queues(&self) -> usize {
        self.streams.len()
    }
    fn alloc(&self, bytes: usize) -> Result<DeviceBuffer> {
        let s = self.stream(0);
        // SAFETY: the memory is uninitialised bytes; every byte pattern is a valid u8 and
        // kernels only read what was uploaded or written before.
        let slice = unsafe { s.alloc::<u8>(bytes) }.map_err(|e| alloc_err(bytes, e))?;
        // Stream-ordered allocation: make it visible to every stream before first use.
        s.synchronize().map_err(|e| alloc_err(bytes, e))?;
        Ok(DeviceBuffer {
            inner: BufferImpl::Cuda(slice),
            len: bytes,
            owner: 0,
        })
    }
    fn upload(&self, q: usize, dst: &mut DeviceBuffer, offset: usize, src: &[u8]) -> Result<()> {
        let s = self.stream(q);
        let d = slice_mut(dst)?;
        let mut view = d.slice_mut(offset..offset + src.len());
        s.memcpy_htod(src, &mut view).map_err(|e| derr("upload", e))
    }
    fn download(&self, q: usize, src: &DeviceBuffer, offset: usize, dst: &mut [u8]) -> Result<()> {
        let s = self.stream(q);
        let d = slice(src)?;
        let view = d.slice(offset..offset + dst.len());
        s.memcpy_dtoh(&view, dst).map_err(|e| derr("download", e))?;
        s.synchronize().map_err(|e| derr("download", e))
    }
    fn copy(
        &self,
        q: usize,
        src: &DeviceBuffer,
        src_offset: usize,
        dst: &mut DeviceBuffer,
        dst_offset: usize,
        bytes: usize,
    ) -> Result<()> {
        let s = self.stream(q);
        let a = slice(src)?.slice(src_offset..src_offset + bytes);
        let d = slice_mut(dst)?;
        let mut b = d.slice_mut(dst_offset..dst_offset + bytes);
        s.memcpy_dtod(&a, &mut b).map_err(|e| derr("copy", e))
    }
    fn prepare(&self, src: &KernelSource) -> Result<()> {
        guarded("compile", || self.module(src).map(|_| ()))
    }
    fn launch(
        &self,
        q: usize,
        src: &KernelSource,
        kernel: &str,
        dims: LaunchDims,
        args: &[KernelArg<'_>],
    ) -> Result<()> {
        let f = guarded("compile", || self.function(src, kernel))?;
        let groups = dims.groups();
        if groups > i32::MAX as u64 {
            return Err(GpuError::InvalidInput(format!(
                "launch of {} items is too large for one grid",
                dims.items
            )));
        }
        let cfg = LaunchConfig {
            grid_dim: (groups as u32, 1, 1),
            block_dim: (dims.group_size, 1, 1),
            shared_mem_bytes: 0,
        };
        let s = self.stream(q);
        let mut b = s.launch_builder(&f);
        for a in args {
            match a {
                KernelArg::Buffer(buf) => match &buf.inner {
                    BufferImpl::Cuda(sl) => {
                        b.arg(sl);
                    }
                    BufferImpl::Empty => {
                        b.arg(&NULL_PTR);
                    }
                    #[allow(unreachable_patterns)]
                    _ => return Err(GpuError::InvalidInput("not a CUDA buffer".into())),
                },
                KernelArg::U32(v) => {
                    b.arg(v);
                }
                KernelArg::U64(v) => {
                    b.arg(v);
                }
                KernelArg::I32(v) => {
                    b.arg(v);
                }
            }
        }
        // SAFETY: the argument list is built from the caller's `KernelArg`s in parameter
        // order; buffers are live device allocations of this context (checked by owner), and
        // the kernel source documents the parameter types it expects. Out-of-bounds accesses
        // are prevented by the kernels' own `n` checks.
        unsafe { b.launch(cfg) }
            .map(|_| ())
            .map_err(|e| derr(&format!("launch of `{kernel}`"), e))
    }
    fn synchronize(&self, q: usize) -> Result<()> {
        self.stream(q)
            .synchronize()
            .map_err(|e| derr("synchronize", e))
    }
    fn free_memory(&self) -> Option<u64> {
        self.ctx.mem_get_info().ok().map(|(free, _)| free as u64)
    }
    fn alloc_staging(&self, bytes: usize) -> Result<HostStaging> {
        // SAFETY: page-locked host bytes; contents unspecified but every byte is a valid u8
        // (and the memory is initialised by the allocator's zeroed pages in practice).
        let mem = unsafe { self.ctx.alloc_pinned_with_flags::<u8>(bytes.max(1), 0) }
            .map_err(|e| alloc_err(bytes, e))?;
        Ok(HostStaging {
            inner: StagingImpl::Cuda { mem, pending: None },
            len: bytes,
        })
    }
    fn upload_staged(
        &self,
        q: usize,
        dst: &mut DeviceBuffer,
        offset: usize,
        src: &mut HostStaging,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        let StagingImpl::Cuda { mem, pending } = &mut src.inner else {
            let bytes = &src.as_mut_slice()?[range];
            return self.upload(q, dst, offset, bytes);
        };
        let host = staging_slice(mem, pending)?;
        let s = self.stream(q);
        let d = slice_mut(dst)?;
        let (base, _rec) = d.device_ptr(s);
        // SAFETY: both ranges were checked against their allocations by the caller; the
        // pinned memory stays alive and untouched until `pending` is waited for (every access
        // goes through `staging_slice`, and dropping PinnedHostSlice synchronises).
        unsafe { dres::memcpy_htod_async(base + offset as u64, &host[range], s.cu_stream()) }
            .map_err(|e| derr("upload", e))?;
        *pending = Some(self.record(q)?);
        Ok(())
    }
    fn download_staged(
        &self,
        q: usize,
        src: &DeviceBuffer,
        offset: usize,
        dst: &mut HostStaging,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        let StagingImpl::Cuda { mem, pending } = &mut dst.inner else {
            let bytes = &mut dst.as_mut_slice()?[range];
            return self.download(q, src, offset, bytes);
        };
        let host = staging_slice(mem, pending)?;
        let s = self.stream(q);
        let d = slice(src)?;
        let (base, _rec) = d.device_ptr(s);
        // SAFETY: as in `upload_staged`; the host range is written by the device and only
        // read after `pending` is waited for.
        unsafe { dres::memcpy_dtoh_async(&mut host[range], base + offset as u64, s.cu_stream()) }
            .map_err(|e| derr("download", e))?;
        *pending = Some(self.record(q)?);
        Ok(())
    }
}

/// The bytes of pinned staging memory, after its pending copy (if any) finished.
pub(crate) fn staging_slice<'a>(
    mem: &'a mut PinnedHostSlice<u8>,
    pending: &mut Option<CudaEvent>,
) -> Result<&'a mut [u8]> {
    if let Some(ev) = pending.take() {
        ev.synchronize().map_err(|e| derr("staging wait", e))?;
    }
    mem.as_mut_slice().map_err(|e| derr("staging", e))
}

impl CudaDevice {
    fn record(&self, q: usize) -> Result<CudaEvent> {
        let ev = self.ctx.new_event(None).map_err(|e| derr("event", e))?;
        ev.record(self.stream(q))
            .map_err(|e| derr("event record", e))?;
        Ok(ev)
    }
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        let _ = self.ctx.synchronize();
    }
}

/// Before a CUDA buffer is freed, wait for all streams of its context: with event tracking
/// off, a buffer freed on stream 0 could otherwise still be in use on another stream.
pub(crate) fn before_free(b: &BufferImpl) {
    if let BufferImpl::Cuda(s) = b {
        let _ = s.context().synchronize();
    }
}
