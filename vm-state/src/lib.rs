//! SuperVM L0 state layer (no wasmtime): multi-version memory, the Block-STM parallel
//! executor with its sequential oracle, committed state stores and the state root.
//!
//! `vm-runtime` re-exports this crate and plugs the WASM VM in as a [`types::TxExecutor`].
#![forbid(unsafe_code)]

pub mod types;

pub use types::*;
