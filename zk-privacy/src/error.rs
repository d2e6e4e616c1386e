//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in `zk-privacy`.
#[derive(Debug, Error)]
pub enum ZkError {
    /// Circuit synthesis or the R1CS-to-QAP reduction failed (unsatisfied constraints, a
    /// missing assignment, a domain too large for BN254's 2-adicity).
    #[error("constraint system: {0}")]
    Synthesis(String),
    /// The witness does not satisfy the circuit's constraints.
    #[error("witness does not satisfy the circuit (first unsatisfied: {0})")]
    Unsatisfied(String),
    /// A prover backend (MSM / NTT) failed or was handed inconsistent sizes.
    #[error("prover backend {backend}: {reason}")]
    Backend { backend: String, reason: String },
    /// Bytes that should hold a point, a field element, a proof or a key were rejected by
    /// checked deserialisation.
    #[error("invalid encoding of {what}: {reason}")]
    Encoding { what: &'static str, reason: String },
    /// Public inputs of the wrong number or range for a verifying key.
    #[error("public inputs: {0}")]
    PublicInputs(String),
    /// A JSON inputs file or export could not be read or has the wrong shape.
    #[error("json: {0}")]
    Json(String),
    /// Reading or writing a file failed.
    #[error("io on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is out of range (tree depth, cache size, thread count).
    #[error("configuration: {0}")]
    Config(String),
    /// The note-commitment tree has no room for more leaves.
    #[error("note-commitment tree of depth {depth} is full")]
    TreeFull { depth: usize },
    /// A value does not fit the circuit (a note value above 2^64-1, an unknown leaf).
    #[error("invalid witness: {0}")]
    Witness(String),
}

/// `Result` with [`ZkError`].
pub type Result<T, E = ZkError> = std::result::Result<T, E>;

impl From<ark_relations::r1cs::SynthesisError> for ZkError {
    fn from(e: ark_relations::r1cs::SynthesisError) -> Self {
        ZkError::Synthesis(e.to_string())
    }
}

impl ZkError {
    pub(crate) fn encoding(what: &'static str, reason: impl ToString) -> Self {
        ZkError::Encoding {
            what,
            reason: reason.to_string(),
        }
    }
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ZkError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
