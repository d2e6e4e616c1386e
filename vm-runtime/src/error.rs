//! The crate's error type.

use thiserror::Error;

/// Everything that can go wrong in `vm-runtime` outside a contract's own outcome (a contract
/// that reverts, runs out of gas or traps is a [`vm_state::TxStatus`], not an error).
#[derive(Debug, Error)]
pub enum VmError {
    /// The module is not valid WebAssembly, or uses a feature the VM does not allow.
    #[error("invalid module: {0}")]
    InvalidModule(String),
    /// The module imports something that is not part of the host ABI.
    #[error("unknown import {module}.{name} (only the documented functions of module \"env\" may be imported)")]
    UnknownImport { module: String, name: String },
    /// A required export is missing or has the wrong type.
    #[error("missing or mistyped export `{0}`")]
    MissingExport(String),
    /// The module exceeds a size limit of the configuration.
    #[error("code too large: {size} bytes (limit {limit})")]
    CodeTooLarge { size: usize, limit: usize },
    /// wasmtime refused the engine configuration.
    #[error("engine configuration: {0}")]
    Config(String),
    /// Compilation or instantiation failed for a reason other than the module's validity.
    #[error("instantiation: {0}")]
    Instantiate(String),
    /// Bytes that do not decode as a transaction.
    #[error("malformed transaction: {0}")]
    Decode(String),
    /// A signature that does not verify.
    #[error("bad signature: {0}")]
    Signature(String),
}

/// `Result` with [`VmError`].
pub type Result<T, E = VmError> = std::result::Result<T, E>;
