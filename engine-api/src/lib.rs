//! SuperVM L1: the engine interface.
//!
//! Every execution engine of SuperVM (the WASM engine in `vm-runtime`, the GPU executor in
//! `gpu-executor`, the hybrid scheduler in `node-core`) implements [`ExecutionEngine`]. The
//! trait and its plain data types live in this small crate so that the GPU crate can implement
//! it without depending on wasmtime (see `docs/ARCHITECTURE.md`).
//!
//! Speed-up estimates are never constants: [`SpeedupTable`] is filled by measurement (the
//! scheduler's calibration) and an engine reports what the table says, or `None` when no
//! measurement exists yet.
#![forbid(unsafe_code)]

use std::collections::HashMap;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// A 20-byte account or contract address.
pub type Address = [u8; 20];

/// The kind of engine behind an [`ExecutionEngine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EngineType {
    /// WebAssembly contracts on wasmtime (L0 CPU kernel).
    Wasm,
    /// Ethereum virtual machine. Not implemented: engines answer [`EngineError::Unsupported`].
    Evm,
    /// Batch kernels on a GPU (or their CPU reference).
    Gpu,
    /// The node's hybrid scheduler, routing between CPU and GPU.
    Hybrid,
}

/// The kind of work a task is; the scheduler routes on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaskType {
    Transaction,
    ContractCall,
    StateQuery,
    ZkProofGeneration,
    BatchSignatureVerify,
    MerkleTreeBuild,
    HashCompute,
    PrivacyTransaction,
}

impl TaskType {
    /// Every task type, in declaration order.
    pub const ALL: [TaskType; 8] = [
        TaskType::Transaction,
        TaskType::ContractCall,
        TaskType::StateQuery,
        TaskType::ZkProofGeneration,
        TaskType::BatchSignatureVerify,
        TaskType::MerkleTreeBuild,
        TaskType::HashCompute,
        TaskType::PrivacyTransaction,
    ];
}

/// Everything an engine needs to know about one execution besides code and input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionContext {
    pub caller: Address,
    pub contract: Address,
    pub value: u128,
    pub gas_limit: u64,
    pub block_number: u64,
    pub timestamp: u64,
    pub task_type: TaskType,
    /// A hint: run on a GPU when the engine can.
    pub prefer_gpu: bool,
    /// Which GPU, when several are configured.
    pub gpu_device_id: Option<u32>,
}

impl Default for ExecutionContext {
    fn default() -> Self {
        Self {
            caller: [0; 20],
            contract: [0; 20],
            value: 0,
            gas_limit: 10_000_000,
            block_number: 0,
            timestamp: 0,
            task_type: TaskType::ContractCall,
            prefer_gpu: false,
            gpu_device_id: None,
        }
    }
}

/// An event (log) emitted by a contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Log {
    pub address: Address,
    pub topics: Vec<[u8; 32]>,
    pub data: Vec<u8>,
}

/// One state change: `value == None` is a deletion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// The outcome of [`ExecutionEngine::execute`]. A revert or out-of-gas is data
/// (`success == false`), not an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractResult {
    pub success: bool,
    pub return_data: Vec<u8>,
    pub gas_used: u64,
    pub logs: Vec<Log>,
    pub state_changes: Vec<StateChange>,
    /// Why it failed, when it did (`"revert"`, `"out of gas"`, a trap message).
    pub failure: Option<String>,
}

/// Errors an engine returns when it cannot run a request at all.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine does not implement this (e.g. EVM bytecode, or a task type it does not run).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The code was rejected (invalid module, unknown import, too large, ...).
    #[error("invalid code: {0}")]
    InvalidCode(String),
    /// The input was malformed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// An internal failure of the engine (a device error, a database error, ...).
    #[error("engine failure: {0}")]
    Internal(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// The L1 interface every SuperVM engine implements.
pub trait ExecutionEngine: Send + Sync {
    /// Executes `code` with `input` in `ctx`.
    fn execute(&self, code: &[u8], input: &[u8], ctx: &ExecutionContext) -> Result<ContractResult>;
    /// What kind of engine this is.
    fn engine_type(&self) -> EngineType;
    /// Checks that `code` would be accepted by [`ExecutionEngine::execute`].
    fn validate_code(&self, code: &[u8]) -> Result<()>;
    /// Whether the engine runs tasks of this type.
    fn supports_task(&self, task: TaskType) -> bool;
    /// Measured speed-up of this engine over the CPU reference for `task`, from the
    /// calibration table; `None` when nothing was measured (never a made-up constant).
    fn estimated_speedup(&self, task: TaskType) -> Option<f64>;
}

/// Measured speed-ups per (engine, task), filled by the scheduler's calibration and by
/// observed latencies. Shared (`Arc`) between the scheduler and the engines.
#[derive(Debug, Default)]
pub struct SpeedupTable {
    inner: RwLock<HashMap<(EngineType, TaskType), f64>>,
}

impl SpeedupTable {
    pub fn new() -> Self {
        Self::default()
    }
    /// Records a measured speed-up (engine throughput / CPU reference throughput).
    pub fn record(&self, engine: EngineType, task: TaskType, speedup: f64) {
        if speedup.is_finite() && speedup > 0.0 {
            self.inner.write().insert((engine, task), speedup);
        }
    }
    /// The last measured speed-up, if any.
    pub fn get(&self, engine: EngineType, task: TaskType) -> Option<f64> {
        self.inner.read().get(&(engine, task)).copied()
    }
    /// All measurements, sorted for stable output.
    pub fn snapshot(&self) -> Vec<((EngineType, TaskType), f64)> {
        let mut v: Vec<_> = self.inner.read().iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
        v
    }
}

/// One benchmark measurement, the common JSON record of every `supervm bench` suite
/// (`--json FILE` writes one object per measurement).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchRecord {
    /// Suite name: `hash`, `merkle`, `ed25519`, `secp256k1`, `msm`, `ntt`, `groth16`,
    /// `execution`, `node`.
    pub suite: String,
    /// What was measured inside the suite (e.g. `sha256-64B-end-to-end`, `token-10000acct`).
    pub case: String,
    /// `cpu`, `cuda`, `opencl`, or a scheduler strategy for node-level suites.
    pub backend: String,
    /// Device name as read from the device (CPU model or GPU name).
    pub device: String,
    /// Items per measured run (messages, signatures, points, transactions).
    pub batch: u64,
    pub items_per_sec: f64,
    pub median_ms: f64,
    pub cpu_threads: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speedup_table_records_only_measured_values() {
        let t = SpeedupTable::new();
        assert_eq!(t.get(EngineType::Gpu, TaskType::HashCompute), None);
        t.record(EngineType::Gpu, TaskType::HashCompute, 7.5);
        t.record(EngineType::Gpu, TaskType::MerkleTreeBuild, f64::NAN);
        assert_eq!(t.get(EngineType::Gpu, TaskType::HashCompute), Some(7.5));
        assert_eq!(t.get(EngineType::Gpu, TaskType::MerkleTreeBuild), None);
        assert_eq!(t.snapshot().len(), 1);
    }
}
