//! SuperVM L0 state layer (no wasmtime): multi-version memory, the Block-STM parallel
//! executor with its sequential oracle, committed state stores and the state root.
//!
//! How the parts fit, for one block:
//! 1. The node takes a consistent snapshot of committed state ([`store::StateStore::snapshot`]).
//! 2. [`mvcc::ParallelExecutor::execute_block`] runs the block's transactions with Block-STM
//!    on an explicit thread pool, through a [`types::TxExecutor`] (the WASM VM of
//!    `vm-runtime`; [`testing::SyntheticExecutor`] in tests and benches). Its result equals
//!    [`mvcc::execute_block_sequential`]'s: receipts and the block's write set.
//! 3. [`store::StateStore::commit_block`] applies the write set, rehashes the changed
//!    entries' leaves and computes the state root ([`root`], `docs/MERKLE.md`) through a
//!    pluggable [`root::StateHasher`], and stores writes, height and root atomically.
//!
//! `vm-runtime` re-exports this crate and plugs the WASM VM in as a [`types::TxExecutor`].
#![forbid(unsafe_code)]

pub mod error;
pub mod mvcc;
pub mod root;
pub mod store;
pub mod testing;
pub mod types;
pub mod write_set;

pub use error::{Result, VmStateError};
pub use mvcc::{
    execute_block_sequential, global_sequential_fallbacks, profiling, wait_for_freed_memory,
    BlockOutput, BlockPlan, ExecStats, ParallelExecutor,
};
pub use root::{CpuStateHasher, Hash32, StateHasher, EMPTY_ROOT};
pub use store::{
    shard_of, CommitInfo, CrashPoint, EmptyState, MemoryStore, RedbStore, StateReader, StateStore,
    WriteSet, MAX_SHARDS,
};
pub use types::*;
