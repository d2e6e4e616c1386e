//! The node's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the node library.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration file could not be read or is invalid (unknown key, bad value).
    #[error("config error in {path}: {message}")]
    Config { path: String, message: String },
    /// A configuration value parsed but is not acceptable.
    #[error("invalid config value `{key}`: {message}")]
    ConfigValue { key: String, message: String },
    /// A block was rejected; nothing was changed.
    #[error("block {height} rejected: {reason}")]
    BlockRejected { height: u64, reason: String },
    /// A block file could not be decoded.
    #[error("malformed block data: {0}")]
    Malformed(String),
    /// The committed-state database failed.
    #[error("state store: {0}")]
    Store(String),
    /// The execution engine failed (not a transaction failure: those are receipts).
    #[error("execution: {0}")]
    Execution(String),
    /// A GPU or CPU kernel failed on every route.
    #[error("kernel {task} failed: {message}")]
    Kernel { task: String, message: String },
    /// The metrics endpoint could not start.
    #[error("metrics: {0}")]
    Metrics(String),
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl NodeError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NodeError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = NodeError> = std::result::Result<T, E>;
