//! Block-STM: parallel execution of a block whose result is exactly that of executing its
//! transactions one after another in the block's order.
//!
//! # The idea
//!
//! The block's order is fixed before execution (the "preset order"). Workers execute
//! transactions optimistically and in parallel, each against a *multi-version memory* that
//! holds, for every key, the value written by each transaction of the block. A transaction
//! reads, for each key, the value written by the highest transaction below it, or committed
//! state if none wrote it. If that read later turns out stale (a lower transaction was re-run
//! and wrote something else), the reader is re-executed. When nothing is left to execute or
//! validate, the multi-version memory holds exactly the sequential result.
//!
//! # Incarnations
//!
//! Each execution of a transaction is an *incarnation* `(TxIndex, Incarnation)`; incarnation
//! `i + 1` starts only after incarnation `i` is aborted. An incarnation runs the transaction
//! executor (the WASM VM) with a [`StateView`](crate::types::StateView) that records every
//! read with the *version* it saw (`(writer, writer's incarnation)`, or "from storage") and
//! buffers writes. When the executor returns, the incarnation's write set becomes versions in
//! multi-version memory (and any key the previous incarnation wrote but this one did not is
//! removed), and its read set is kept for validation.
//!
//! # ESTIMATE markers
//!
//! When an incarnation is aborted, its writes are not deleted but replaced by ESTIMATE
//! markers: the re-execution will most likely write the same keys. A transaction that reads
//! an ESTIMATE stops at once (`ReadError::Dependency(blocker)`), is parked on the blocker's
//! wait list and resumed (as its next incarnation) when the blocker finishes executing. This
//! turns a likely cascade of aborts into one wait.
//!
//! # Validation and validation waves
//!
//! Validating an incarnation re-reads its read set: every key must still resolve to the very
//! version read, and no ESTIMATE may be in the way. A failed validation aborts the incarnation
//! (only the first failing validation of an incarnation wins), marks its writes ESTIMATE and
//! schedules its re-execution. The scheduler's `validation_idx` moves forward over the block;
//! it is pulled back (a new *wave*) to `txn + 1` when `txn` is aborted, and to `txn` when an
//! incarnation of `txn` writes a key its previous incarnation did not write (a *new path*)
//! **and a higher transaction has already read that key** (it may have read it from below).
//! Each key's cell keeps the highest transaction that read it (`max_reader`, raised before
//! the reader looks at the versions; the writer checks it after adding its version, both
//! `SeqCst`, so either the writer sees the reader or the reader sees the version). Plain
//! Block-STM pulls the wave back on every new path, which makes every first incarnation
//! revalidate every transaction above it that has executed; with the check, a block of
//! mostly independent transactions is validated about once per transaction. A re-execution
//! that writes only keys it wrote before needs only its own validation: readers of those keys
//! hit the ESTIMATEs, or will be validated when their turn comes.
//!
//! # The collaborative scheduler
//!
//! There is no dispatcher thread. Each worker asks the scheduler for a task: validation if
//! `validation_idx < execution_idx`, else execution. Finishing a task may hand the same worker
//! its follow-up directly (an execution's own validation, an aborted transaction's
//! re-execution). The block is done when both indices passed the end, no task is in flight,
//! and no index was pulled back meanwhile (a counter of decreases makes this check lock-free).
//!
//! # Failure handling
//!
//! Every status transition and every dependency the executor reports is checked. A broken
//! invariant (or a panic inside the transaction executor, which an incarnation with an
//! inconsistent read set could trigger) stops all workers; [`ParallelExecutor::execute_block`]
//! then re-runs the block with [`execute_block_sequential`], sets `stats.sequential_fallback`
//! and counts it ([`ParallelExecutor::sequential_fallbacks`], [`global_sequential_fallbacks`]).
//!
//! # Declared keys
//!
//! A block whose transactions all declare their keys before running
//! ([`TxExecutor::declare_access`](crate::types::TxExecutor::declare_access)) does not need
//! any of the above: `declared.rs` runs it on the dependency graph of those keys (each
//! transaction executes once, after the transactions it depends on).
//!
//! # Where each part lives
//!
//! - `declared.rs`: declared-access execution (graph, workers, view).
//! - `memory.rs`: [`MvMemory`], the multi-version memory (sharded key map, per-key version
//!   maps with ESTIMATE markers, per-key cache of the committed value, per-transaction read and
//!   write sets, validation of a read set).
//! - `scheduler.rs`: [`Scheduler`], execution/validation indices, incarnation status,
//!   dependency wait lists, completion detection.
//! - `view.rs`: the state views of an incarnation (recording reads, buffering writes) and of
//!   sequential execution.
//! - `executor.rs`: [`ParallelExecutor`] (worker loop on an explicit rayon pool, one
//!   `TxExecutor::Worker` per worker per block, assembly of receipts and the write set,
//!   sequential fallback) and [`execute_block_sequential`], the oracle.
//!
//! The design follows "Block-STM: Scaling Blockchain Execution by Turning Ordering Curse to a
//! Performance Blessing" (Gelashvili et al., 2022) and its implementation in aptos-core
//! (`aptos-move/block-executor`, `aptos-move/mvhashmap`).

mod declared;
mod executor;
pub mod memory;
pub mod scheduler;
mod view;

use serde::{Deserialize, Serialize};

pub use executor::{
    execute_block_sequential, global_sequential_fallbacks, profiling, wait_for_freed_memory,
    BlockPlan, ParallelExecutor,
};
pub use memory::MvMemory;
pub use scheduler::Scheduler;

use crate::types::Receipt;

/// Counters of one block's execution.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStats {
    /// Transactions in the block.
    pub txs: usize,
    /// Workers that ran the block.
    pub workers: usize,
    /// Executions started (incarnations, including those stopped by a dependency).
    pub executions: u64,
    /// Incarnations aborted by a failed validation.
    pub aborts: u64,
    /// Validations run.
    pub validations: u64,
    /// Executions stopped because they read an ESTIMATE.
    pub dependency_waits: u64,
    /// The parallel path failed and these results come from sequential execution.
    pub sequential_fallback: bool,
    /// Block-STM runs stopped by the conflict probe (the block then ran sequentially).
    pub probe_bailouts: u64,
    /// Of `probe_bailouts`, those stopped because Block-STM was too slow (the others:
    /// conflicts).
    pub probe_slow_bailouts: u64,
    /// Wall time of the stopped probes (nanoseconds; their work was discarded).
    pub probe_ns: u64,
    /// Blocks run sequentially without a probe because a recent probe stopped Block-STM
    /// (see `ParallelExecutor::execute_block`).
    pub probe_skips: u64,
    /// Blocks run on the dependency graph of declared accesses instead of Block-STM (see
    /// `mvcc::declared`; 0 or 1 per block).
    #[serde(default)]
    pub declared_runs: u64,
    /// Wall time spent collecting declarations and building their graph (nanoseconds),
    /// whether the graph then ran or not.
    #[serde(default)]
    pub plan_ns: u64,
    /// The graph's plan was made before the block's execution (`BlockPlan`, e.g. in the
    /// node's verification stage): its `plan_ns` was not on the block's path, and a graph
    /// run is judged without it.
    #[serde(default)]
    pub plan_ahead: bool,
    /// Transactions on the graph's longest chain (0: no graph was built).
    #[serde(default)]
    pub graph_depth: u64,
    /// Wall time of the named steps of planning and finishing a graph run (nanoseconds, in
    /// order), recorded only when profiling (`SUPERVM_EXEC_PROFILE`).
    #[serde(default)]
    pub steps: Vec<(String, u64)>,
    /// Wall time of Block-STM's worker phase (nanoseconds; 0 for sequential runs).
    pub parallel_ns: u64,
    /// A graph run's worker phase as it would have taken had every worker started at once:
    /// each worker's time from its own start, summed, over the workers (nanoseconds; 0 when
    /// not measured). Below `parallel_ns` when the pool's threads were busy with other
    /// work (a node's proof checks) before they took up the workers.
    #[serde(default)]
    pub effective_parallel_ns: u64,
    /// Wall time after the workers stopped: collecting the write set and receipts
    /// (nanoseconds).
    pub finish_ns: u64,
    /// Wall time of segments run sequentially by the adaptive executor (nanoseconds).
    pub sequential_ns: u64,
    /// Worker time, summed over workers, by activity (nanoseconds). Only measured when the
    /// environment variable `SUPERVM_EXEC_PROFILE` is set (it costs two clock reads per
    /// task); zero otherwise, except `execute_ns` of a graph run on more than 4 workers
    /// (the executor judges such runs by it).
    pub profile: WorkerProfile,
}

/// Where Block-STM workers spent their time (see [`ExecStats::profile`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerProfile {
    /// Inside the transaction executor (the VM, reads through multi-version memory).
    pub execute_ns: u64,
    /// Recording an incarnation's output and finishing its execution task.
    pub record_ns: u64,
    /// Validating read sets and finishing validation tasks.
    pub validate_ns: u64,
    /// Asking the scheduler for work, including waiting when there was none.
    pub schedule_ns: u64,
    /// Wall time, after the workers: collecting and sorting the final writes.
    pub collect_ns: u64,
    /// Wall time, after the workers: building the write-set map (and, beside it, the
    /// receipts).
    pub map_ns: u64,
}

impl ExecStats {
    /// Executions beyond the first of each transaction.
    pub fn re_executions(&self) -> u64 {
        self.executions.saturating_sub(self.txs as u64)
    }

    fn add(&mut self, o: &ExecStats) {
        self.executions += o.executions;
        self.aborts += o.aborts;
        self.validations += o.validations;
        self.dependency_waits += o.dependency_waits;
        self.probe_bailouts += o.probe_bailouts;
        self.probe_slow_bailouts += o.probe_slow_bailouts;
        self.probe_ns += o.probe_ns;
        self.probe_skips += o.probe_skips;
        self.declared_runs += o.declared_runs;
        self.plan_ns += o.plan_ns;
        self.plan_ahead |= o.plan_ahead;
        self.graph_depth = self.graph_depth.max(o.graph_depth);
        self.parallel_ns += o.parallel_ns;
        self.effective_parallel_ns += o.effective_parallel_ns;
        self.finish_ns += o.finish_ns;
        self.sequential_ns += o.sequential_ns;
        self.profile.execute_ns += o.profile.execute_ns;
        self.profile.record_ns += o.profile.record_ns;
        self.profile.validate_ns += o.profile.validate_ns;
        self.profile.schedule_ns += o.profile.schedule_ns;
        self.profile.collect_ns += o.profile.collect_ns;
        self.profile.map_ns += o.profile.map_ns;
    }
}

/// The result of executing a block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockOutput {
    /// One receipt per transaction, in block order.
    pub receipts: Vec<Receipt>,
    /// Every key the block wrote, with its final value (`None`: deleted).
    pub write_set: crate::write_set::WriteSet,
    pub stats: ExecStats,
}
