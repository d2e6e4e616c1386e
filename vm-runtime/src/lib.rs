//! SuperVM L0/L1 CPU kernel: WebAssembly contracts on wasmtime with deterministic settings and
//! fuel gas, executed over the Block-STM multi-version state of `vm-state` (re-exported here),
//! and the WASM implementation of the L1 `ExecutionEngine` trait.
#![forbid(unsafe_code)]

pub use engine_api;
pub use vm_state;
pub use vm_state::types::*;
