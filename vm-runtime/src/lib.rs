//! SuperVM L0/L1 CPU kernel: WebAssembly contracts on wasmtime with deterministic settings and
//! fuel gas, executed over the Block-STM multi-version state of `vm-state` (re-exported here),
//! and the WASM implementation of the L1 `ExecutionEngine` trait.
//!
//! How the parts fit:
//! - [`vm`]: one deterministic wasmtime engine ([`Vm`]), deploy validation and the
//!   compiled-contract cache keyed by code hash.
//! - `host`: the host ABI (module `"env"`), documented in `docs/CONTRACT_ABI.md`.
//! - `instance`: per-worker-thread contract instances ([`VmWorker`]), reset to their initial
//!   image before every call; this is what makes execution scale across threads.
//! - [`tx`]: transactions, their canonical encoding and signatures.
//! - [`executor`]: [`VmExecutor`], the `vm_state::TxExecutor` the block executors run.
//! - [`l1`]: [`WasmEngine`] (the L1 `ExecutionEngine` for WASM) and [`EvmEngine`] (refuses:
//!   there is no EVM).
//! - [`bench`]: the execution benchmark suite (`supervm bench execution`).
//! - [`contracts`]: the shipped WAT contracts (token, counter map) and input builders.
#![deny(unsafe_code)]

pub mod alloc_tuning;
pub mod bench;
pub mod config;
pub mod contracts;
pub mod crypto;
mod dirty;
pub mod error;
pub mod executor;
mod host;
mod instance;
pub mod l1;
pub mod tx;
pub mod vm;

pub use engine_api;
pub use vm_state;
pub use vm_state::types::*;

pub use config::{GasSchedule, VmConfig};
pub use error::{Result, VmError};
pub use executor::{VmExecutor, PRIVACY_REJECTED};
pub use host::{DECLARED_READ_ONLY, HOST_FUNCTIONS, HOST_MODULE, NOT_DECLARED};
pub use instance::{CallReport, CallRequest, VmWorker, MAX_INSTANCES_PER_WORKER};
pub use l1::{EvmEngine, WasmEngine, EVM_UNSUPPORTED};
pub use tx::{
    address_of, contract_address, verify_batch, AccessList, Transaction, TxKind, MAX_DECLARED_SLOTS,
};
pub use vm::{CompiledContract, Vm};
