//! OpenCL backend (feature `opencl`): opencl3, with libOpenCL loaded at run time (a missing
//! library makes every call return an error, which becomes [`GpuError::Unavailable`]).
//!
//! Devices are numbered in platform order, then device order within the platform (the order
//! `clinfo -l` prints). Programs are built once per device context and source hash.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use opencl3::command_queue::CommandQueue;
use opencl3::context::Context;
use opencl3::device::{Device, CL_DEVICE_TYPE_ALL, CL_DEVICE_TYPE_GPU};
use opencl3::error_codes::ClError;
use opencl3::kernel::Kernel;
use opencl3::memory::{Buffer, ClMem, CL_MEM_READ_WRITE};
use opencl3::platform::get_platforms;
use opencl3::program::Program;
use opencl3::types::{cl_mem, CL_BLOCKING};

use crate::device::{
    BackendKind, BufferImpl, DeviceBuffer, DeviceImpl, DeviceInfo, GpuDevice, KernelArg,
    KernelSource, LaunchDims,
};
use crate::error::{GpuError, Result};

const CL_MEM_OBJECT_ALLOCATION_FAILURE: i32 = -4;
const CL_OUT_OF_RESOURCES: i32 = -5;
const CL_OUT_OF_HOST_MEMORY: i32 = -6;
const CL_INVALID_BUFFER_SIZE: i32 = -61;

fn is_oom(e: &ClError) -> bool {
    matches!(
        e.0,
        CL_MEM_OBJECT_ALLOCATION_FAILURE
            | CL_OUT_OF_RESOURCES
            | CL_OUT_OF_HOST_MEMORY
            | CL_INVALID_BUFFER_SIZE
    )
}

fn cl_err(what: &str, e: ClError) -> GpuError {
    if is_oom(&e) {
        GpuError::OutOfMemory {
            requested: 0,
            detail: format!("OpenCL {what}: {e}"),
        }
    } else {
        GpuError::Launch(format!("OpenCL {what}: {e}"))
    }
}

fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(GpuError::Unavailable(format!("OpenCL {what} panicked"))))
}

/// Serialises platform discovery and context creation: some OpenCL implementations (PoCL)
/// crash when several threads initialise them at once.
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Every OpenCL device (id, platform name) in the backend's order.
fn all_device_ids() -> Result<Vec<(Device, String)>> {
    let _g = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let platforms = get_platforms().map_err(|e| {
        GpuError::Unavailable(format!(
            "no OpenCL platform (libOpenCL or an ICD missing): {e}"
        ))
    })?;
    let mut out = Vec::new();
    for p in platforms {
        let pname = p.name().unwrap_or_default();
        // A platform without devices answers CL_DEVICE_NOT_FOUND: skip it.
        if let Ok(ids) = p.get_devices(CL_DEVICE_TYPE_ALL) {
            out.extend(ids.into_iter().map(|id| (Device::new(id), pname.clone())));
        }
    }
    Ok(out)
}

fn read_info(index: usize, d: &Device, platform: &str) -> DeviceInfo {
    let total = d.global_mem_size().unwrap_or(0);
    DeviceInfo {
        backend: BackendKind::Opencl,
        index,
        name: d.name().unwrap_or_default().trim().to_string(),
        vendor: d.vendor().unwrap_or_default().trim().to_string(),
        platform: platform.trim().to_string(),
        compute_units: d.max_compute_units().unwrap_or(0),
        total_memory: total,
        max_alloc: d.max_mem_alloc_size().unwrap_or(total),
        compute_capability: None,
        version: d.version().unwrap_or_default().trim().to_string(),
        max_group_size: d.max_work_group_size().unwrap_or(1).clamp(1, 1 << 16) as u32,
        clock_mhz: d.max_clock_frequency().unwrap_or(0),
        is_gpu: d
            .dev_type()
            .map(|t| t & CL_DEVICE_TYPE_GPU != 0)
            .unwrap_or(false),
    }
}

/// All OpenCL devices with their properties.
pub(crate) fn list() -> Result<Vec<DeviceInfo>> {
    guarded("device discovery", || {
        Ok(all_device_ids()?
            .iter()
            .enumerate()
            .map(|(i, (d, p))| read_info(i, d, p))
            .collect())
    })
}

/// Opens OpenCL device `index` with `queues` in-order command queues.
pub(crate) fn open(index: usize, queues: usize) -> Result<GpuDevice> {
    // One context per (device, queue count) per process, so that programs are built once
    // per process however often the device is opened.
    type Opened = Vec<((usize, usize), Arc<OpenclDevice>)>;
    static OPENED: Mutex<Opened> = Mutex::new(Vec::new());
    if let Some((_, d)) = OPENED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(k, _)| *k == (index, queues))
    {
        return Ok(GpuDevice::from_impl(d.clone()));
    }
    let dev = open_new(index, queues)?;
    OPENED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(((index, queues), dev.clone()));
    Ok(GpuDevice::from_impl(dev))
}

fn open_new(index: usize, queues: usize) -> Result<Arc<OpenclDevice>> {
    guarded("device open", || {
        let all = all_device_ids()?;
        let Some((dev, pname)) = all.get(index) else {
            return Err(GpuError::Config(format!(
                "OpenCL device {index} does not exist ({} found)",
                all.len()
            )));
        };
        let info = read_info(index, dev, pname);
        let _g = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let ctx = Context::from_device(dev).map_err(|e| cl_err("context", e))?;
        let qs = (0..queues)
            .map(|_| {
                CommandQueue::create_default_with_properties(&ctx, 0, 0)
                    .or_else(|_| {
                        #[allow(deprecated)]
                        CommandQueue::create_default(&ctx, 0)
                    })
                    .map_err(|e| cl_err("command queue", e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(OpenclDevice {
            info,
            ctx,
            queues: qs,
            programs: Mutex::new(HashMap::new()),
            kernels: Mutex::new(HashMap::new()),
        }))
    })
}

type KernelCache = HashMap<(u64, String), Arc<Mutex<Kernel>>>;

struct OpenclDevice {
    info: DeviceInfo,
    ctx: Context,
    queues: Vec<CommandQueue>,
    /// Built programs by source hash (or the build log of a failed build).
    programs: Mutex<HashMap<u64, std::result::Result<Arc<Program>, String>>>,
    /// Kernel objects; a kernel's arguments are shared state, so each is used under its lock.
    kernels: Mutex<KernelCache>,
}

fn buffer(b: &DeviceBuffer) -> Option<&Buffer<u8>> {
    match &b.inner {
        BufferImpl::Opencl(x) => Some(x),
        _ => None,
    }
}

fn buffer_mut(b: &mut DeviceBuffer) -> Result<&mut Buffer<u8>> {
    match &mut b.inner {
        BufferImpl::Opencl(x) => Ok(x),
        _ => Err(GpuError::InvalidInput("not an OpenCL buffer".into())),
    }
}

impl OpenclDevice {
    fn queue(&self, q: usize) -> &CommandQueue {
        &self.queues[q % self.queues.len()]
    }

    fn program(&self, src: &KernelSource) -> Result<Arc<Program>> {
        let h = src.hash();
        let mut progs = self.programs.lock().unwrap_or_else(|p| p.into_inner());
        let entry = progs.entry(h).or_insert_with(|| {
            let started = std::time::Instant::now();
            let r = Program::create_and_build_from_source(&self.ctx, &src.full_text(), "")
                .map(Arc::new);
            tracing::debug!(
                "OpenCL built `{}` on {} in {:?}",
                src.name,
                self.info.name,
                started.elapsed()
            );
            r
        });
        entry.clone().map_err(|log| GpuError::Build {
            backend: "opencl",
            source_name: src.name.to_string(),
            log,
        })
    }

    fn kernel(&self, src: &KernelSource, name: &str) -> Result<Arc<Mutex<Kernel>>> {
        let key = (src.hash(), name.to_string());
        if let Some(k) = self
            .kernels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(k.clone());
        }
        let prog = self.program(src)?;
        if name.contains('\0') {
            return Err(GpuError::InvalidInput("kernel name contains NUL".into()));
        }
        let k = Kernel::create(&prog, name).map_err(|e| {
            GpuError::Launch(format!(
                "kernel `{name}` not found in source `{}`: {e}",
                src.name
            ))
        })?;
        let k = Arc::new(Mutex::new(k));
        self.kernels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, k.clone());
        Ok(k)
    }
}

impl DeviceImpl for OpenclDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }
    fn num_queues(&self) -> usize {
        self.queues.len()
    }
    fn alloc(&self, bytes: usize) -> Result<DeviceBuffer> {
        // SAFETY: no host pointer is passed; the buffer's contents are unspecified bytes.
        let b = unsafe {
            Buffer::<u8>::create(&self.ctx, CL_MEM_READ_WRITE, bytes, std::ptr::null_mut())
        }
        .map_err(|e| {
            if is_oom(&e) {
                GpuError::OutOfMemory {
                    requested: bytes as u64,
                    detail: format!("clCreateBuffer: {e}"),
                }
            } else {
                cl_err("alloc", e)
            }
        })?;
        Ok(DeviceBuffer {
            inner: BufferImpl::Opencl(b),
            len: bytes,
            owner: 0,
        })
    }
    fn upload(&self, q: usize, dst: &mut DeviceBuffer, offset: usize, src: &[u8]) -> Result<()> {
        let b = buffer_mut(dst)?;
        // SAFETY: blocking write: `src` is read completely before the call returns; the
        // range was checked against the buffer size by the caller.
        unsafe {
            self.queue(q)
                .enqueue_write_buffer(b, CL_BLOCKING, offset, src, &[])
        }
        .map(|_| ())
        .map_err(|e| cl_err("upload", e))
    }
    fn download(&self, q: usize, src: &DeviceBuffer, offset: usize, dst: &mut [u8]) -> Result<()> {
        let b = buffer(src).ok_or_else(|| GpuError::InvalidInput("not an OpenCL buffer".into()))?;
        // SAFETY: blocking read into `dst`, which outlives the call; range checked by caller.
        unsafe {
            self.queue(q)
                .enqueue_read_buffer(b, CL_BLOCKING, offset, dst, &[])
        }
        .map(|_| ())
        .map_err(|e| cl_err("download", e))
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
        let a = buffer(src).ok_or_else(|| GpuError::InvalidInput("not an OpenCL buffer".into()))?;
        let b = buffer_mut(dst)?;
        // SAFETY: both ranges were checked against the buffer sizes by the caller; the
        // queue is in order, so the copy sees earlier writes.
        unsafe {
            self.queue(q)
                .enqueue_copy_buffer(a, b, src_offset, dst_offset, bytes, &[])
        }
        .map(|_| ())
        .map_err(|e| cl_err("copy", e))
    }
    fn prepare(&self, src: &KernelSource) -> Result<()> {
        guarded("build", || self.program(src).map(|_| ()))
    }
    fn launch(
        &self,
        q: usize,
        src: &KernelSource,
        kernel: &str,
        dims: LaunchDims,
        args: &[KernelArg<'_>],
    ) -> Result<()> {
        let k = guarded("build", || self.kernel(src, kernel))?;
        let k = k.lock().unwrap_or_else(|p| p.into_inner());
        let null: cl_mem = std::ptr::null_mut::<c_void>();
        for (i, a) in args.iter().enumerate() {
            let i = i as u32;
            // SAFETY: each argument is set with the size of the value the kernel parameter
            // expects (cl_mem for buffers, 4/8-byte scalars); a mismatch is reported by the
            // driver as CL_INVALID_ARG_SIZE rather than undefined behaviour.
            let r = unsafe {
                match a {
                    KernelArg::Buffer(b) => match buffer(b) {
                        Some(x) => k.set_arg(i, &x.get()),
                        None => k.set_arg(i, &null),
                    },
                    KernelArg::U32(v) => k.set_arg(i, v),
                    KernelArg::U64(v) => k.set_arg(i, v),
                    KernelArg::I32(v) => k.set_arg(i, v),
                }
            };
            r.map_err(|e| cl_err(&format!("argument {i} of `{kernel}`"), e))?;
        }
        let local = dims.group_size as usize;
        let global = dims.groups() as usize * local;
        // SAFETY: one-dimensional range with valid global/local sizes; all arguments were
        // set above; the kernel is held under its lock until it is enqueued (OpenCL copies
        // the argument values at enqueue time).
        unsafe {
            self.queue(q).enqueue_nd_range_kernel(
                k.get(),
                1,
                std::ptr::null(),
                &global,
                &local,
                &[],
            )
        }
        .map(|_| ())
        .map_err(|e| cl_err(&format!("launch of `{kernel}`"), e))
    }
    fn synchronize(&self, q: usize) -> Result<()> {
        self.queue(q).finish().map_err(|e| cl_err("finish", e))
    }
    fn free_memory(&self) -> Option<u64> {
        None
    }
}
