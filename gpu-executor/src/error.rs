//! The crate's one error type.

/// Everything that can go wrong in the GPU executor. None of these is ever a panic: a
/// missing library, a kernel that does not compile or a device that runs out of memory all
/// come back as a value the caller can act on (usually: redo the batch on the CPU, which
/// [`crate::GpuExecutor`] does for you).
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// The backend cannot be used on this machine: the feature is not compiled in, the
    /// driver library (libcuda, libnvrtc, libOpenCL) is missing, or no device was found.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A kernel source failed to compile; `log` is the compiler's log (NVRTC or OpenCL).
    #[error("kernel source `{source_name}` failed to build on {backend}:\n{log}")]
    Build {
        backend: &'static str,
        source_name: String,
        log: String,
    },
    /// A kernel launch, a copy or a synchronisation failed on the device.
    #[error("device operation failed: {0}")]
    Launch(String),
    /// The device could not allocate `requested` bytes.
    #[error("out of device memory allocating {requested} bytes: {detail}")]
    OutOfMemory { requested: u64, detail: String },
    /// The caller's input is malformed (offsets out of order, a leaf of the wrong size, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The configuration names something that does not exist or is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// `Result` with [`GpuError`].
pub type Result<T, E = GpuError> = std::result::Result<T, E>;

impl GpuError {
    /// Whether redoing the same work on the CPU is the right reaction (everything except
    /// malformed input, which the CPU would reject too).
    pub fn is_device_fault(&self) -> bool {
        !matches!(self, GpuError::InvalidInput(_))
    }
}
