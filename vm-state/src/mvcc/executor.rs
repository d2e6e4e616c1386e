//! The block executors: [`ParallelExecutor`] (Block-STM on an explicit rayon pool) and
//! [`execute_block_sequential`], the oracle it must always agree with.

use std::any::Any;
use std::collections::BTreeMap;

use hashbrown::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_utils::Backoff;
use parking_lot::Mutex;

use crate::error::{Result, VmStateError};
use crate::mvcc::memory::MvMemory;
use crate::mvcc::scheduler::{Scheduler, Task, Version};
use crate::mvcc::view::{ParallelView, SequentialView};
use crate::mvcc::{BlockOutput, ExecStats};
use crate::store::StateReader;
use crate::types::{BlockEnv, ReadError, Receipt, StateKey, StateValue, TxExecutor};

static GLOBAL_SEQUENTIAL_FALLBACKS: AtomicU64 = AtomicU64::new(0);

/// How many blocks, over all executors of this process, fell back to sequential execution
/// after the parallel path found a broken invariant.
pub fn global_sequential_fallbacks() -> u64 {
    GLOBAL_SEQUENTIAL_FALLBACKS.load(Ordering::Relaxed)
}

fn panic_message(p: Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Executes blocks with Block-STM on an explicit thread pool.
pub struct ParallelExecutor {
    pool: Arc<rayon::ThreadPool>,
    threads: usize,
    fallbacks: AtomicU64,
}

impl std::fmt::Debug for ParallelExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelExecutor")
            .field("threads", &self.threads)
            .field("sequential_fallbacks", &self.sequential_fallbacks())
            .finish()
    }
}

impl ParallelExecutor {
    /// An executor with its own pool of `threads` worker threads (at least 1).
    pub fn new(threads: usize) -> Result<Self> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("blockstm-{i}"))
            .build()
            .map_err(|e| VmStateError::ThreadPool(e.to_string()))?;
        Ok(Self::with_pool(Arc::new(pool), threads))
    }

    /// An executor that runs `threads` workers (at least 1) on a pool the caller owns. Use at
    /// most the pool's thread count: extra workers only wait for a free thread.
    pub fn with_pool(pool: Arc<rayon::ThreadPool>, threads: usize) -> Self {
        Self {
            pool,
            threads: threads.max(1),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Worker count per block.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The pool the workers run on.
    pub fn pool(&self) -> &Arc<rayon::ThreadPool> {
        &self.pool
    }

    /// Blocks this executor re-ran sequentially after a broken invariant.
    pub fn sequential_fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Executes `txs` in parallel; the result is exactly [`execute_block_sequential`]'s. If the
    /// parallel path finds a broken invariant (or the transaction executor panics in an
    /// incarnation), the block is re-run sequentially, `stats.sequential_fallback` is set and
    /// the fallback counters go up. Storage errors are returned.
    pub fn execute_block<E: TxExecutor>(
        &self,
        exec: &E,
        txs: &[E::Tx],
        env: &BlockEnv,
        base: &dyn StateReader,
    ) -> Result<BlockOutput> {
        match self.execute_block_adaptive(exec, txs, env, base) {
            Ok(out) => Ok(out),
            Err(e @ (VmStateError::Invariant(_) | VmStateError::ExecutorPanic { .. })) => {
                tracing::warn!(error = %e, txs = txs.len(), "parallel execution failed; re-running the block sequentially");
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                GLOBAL_SEQUENTIAL_FALLBACKS.fetch_add(1, Ordering::Relaxed);
                let mut out = execute_block_sequential(exec, txs, env, base)?;
                out.stats.sequential_fallback = true;
                Ok(out)
            }
            Err(e) => Err(e),
        }
    }

    /// Chooses how to run the block; the result is the sequential result either way.
    /// - One worker: Block-STM cannot overlap anything, so the block runs sequentially
    ///   (no multi-version bookkeeping; the same choice Aptos makes at concurrency 1).
    /// - Small blocks (up to two probes): Block-STM.
    /// - Otherwise a probe of the first transactions runs with Block-STM. If it saw few
    ///   conflicts (aborts + dependency waits under 10% of the probe) and more than
    ///   [`FEW_WORKERS`] workers ran it, the rest runs with Block-STM too. If not, the next
    ///   probe runs sequentially on top of the first; the
    ///   rest then runs in whichever mode was faster per transaction (a block that is one
    ///   long dependency chain, e.g. transfers among 2 accounts, is faster sequentially).
    ///
    /// Every segment starts from committed state plus the write sets of the segments before
    /// it, so segment boundaries cannot change any result; only timing picks the mode.
    fn execute_block_adaptive<E: TxExecutor>(
        &self,
        exec: &E,
        txs: &[E::Tx],
        env: &BlockEnv,
        base: &dyn StateReader,
    ) -> Result<BlockOutput> {
        let workers = self.threads.min(txs.len());
        if workers <= 1 {
            return execute_block_sequential(exec, txs, env, base);
        }
        let probe = (PROBE_PER_WORKER * workers).max(PROBE_MIN);
        self.execute_block_probed(exec, txs, env, base, probe, None)
    }

    /// The probing part of [`Self::execute_block_adaptive`]; `force` fixes the mode of the
    /// rest of the block instead of measuring (tests).
    fn execute_block_probed<E: TxExecutor>(
        &self,
        exec: &E,
        txs: &[E::Tx],
        env: &BlockEnv,
        base: &dyn StateReader,
        probe: usize,
        force: Option<bool>,
    ) -> Result<BlockOutput> {
        let n = txs.len();
        let workers = self.threads.min(n);
        if n <= 2 * probe {
            return self.execute_block_parallel(exec, txs, env, base);
        }
        let start = Instant::now();
        let mut out = self.execute_block_parallel(exec, &txs[..probe], env, base)?;
        let par_time = start.elapsed();
        let conflicts = out.stats.aborts + out.stats.dependency_waits;
        let mut done = probe;
        // With few workers a sequential probe is cheap, and a conflict count says little
        // (workers that happen to run one after another hardly conflict): always measure.
        let rest_parallel = if workers > FEW_WORKERS && conflicts * 10 <= probe as u64 {
            true
        } else {
            let start = Instant::now();
            let layered = Layered {
                writes: &out.write_set,
                base,
            };
            let next = execute_block_sequential(exec, &txs[done..done + probe], env, &layered)
                .map_err(|e| offset_error(e, done))?;
            let seq_time = start.elapsed();
            append(&mut out, next);
            done += probe;
            par_time < seq_time
        };
        let rest_parallel = force.unwrap_or(rest_parallel);
        let layered = Layered {
            writes: &out.write_set,
            base,
        };
        let next = if rest_parallel {
            self.execute_block_parallel(exec, &txs[done..], env, &layered)
        } else {
            execute_block_sequential(exec, &txs[done..], env, &layered)
        }
        .map_err(|e| offset_error(e, done))?;
        tracing::debug!(
            txs = n,
            probe,
            conflicts,
            rest_parallel,
            "adaptive block execution"
        );
        append(&mut out, next);
        Ok(out)
    }

    /// The sequential oracle (same as the free function).
    pub fn execute_block_sequential<E: TxExecutor>(
        &self,
        exec: &E,
        txs: &[E::Tx],
        env: &BlockEnv,
        base: &dyn StateReader,
    ) -> Result<BlockOutput> {
        execute_block_sequential(exec, txs, env, base)
    }

    /// Block-STM only: errors are returned, with no sequential fallback.
    pub fn execute_block_parallel<E: TxExecutor>(
        &self,
        exec: &E,
        txs: &[E::Tx],
        env: &BlockEnv,
        base: &dyn StateReader,
    ) -> Result<BlockOutput> {
        let n = txs.len();
        if n == 0 {
            return Ok(BlockOutput::default());
        }
        let workers = self.threads.min(n);
        let block = Block {
            exec,
            txs,
            env,
            base,
            mem: MvMemory::new(n),
            scheduler: Scheduler::new(n),
            halt: AtomicBool::new(false),
            error: Mutex::new(None),
            stats: Mutex::new(ExecStats {
                txs: n,
                workers,
                ..ExecStats::default()
            }),
        };
        self.pool.scope(|s| {
            for _ in 0..workers {
                s.spawn(|_| block.run_worker());
            }
        });
        let Block {
            mem,
            scheduler,
            error,
            stats,
            ..
        } = block;
        if let Some(e) = error.into_inner() {
            return Err(e);
        }
        if !scheduler.done() {
            return Err(VmStateError::Invariant(
                "workers stopped before the block was done".into(),
            ));
        }
        let incarnations = scheduler.final_incarnations()?;
        let final_writes = self.pool.install(|| mem.final_writes()).map_err(|t| {
            VmStateError::Invariant(format!(
                "block done but an ESTIMATE of transaction {t} is left"
            ))
        })?;
        // Sorted input: the map is bulk-built in linear time.
        let write_set: BTreeMap<StateKey, Option<StateValue>> = final_writes.into_iter().collect();
        let mut receipts = Vec::with_capacity(n);
        for (txn, ((recorded, receipt), inc)) in mem
            .take_receipts()
            .into_iter()
            .zip(incarnations)
            .enumerate()
        {
            let receipt = receipt.ok_or_else(|| {
                VmStateError::Invariant(format!("transaction {txn} has no recorded output"))
            })?;
            if recorded != inc {
                return Err(VmStateError::Invariant(format!(
                    "transaction {txn}: recorded incarnation {recorded} but final incarnation {inc}"
                )));
            }
            receipts.push(receipt);
        }
        // Freeing multi-version memory (every key cell, version map and read set) is off the
        // critical path: a pool thread does it while the caller goes on with the block.
        self.pool.spawn(move || drop((mem, scheduler)));
        Ok(BlockOutput {
            receipts,
            write_set,
            stats: stats.into_inner(),
        })
    }
}

/// Size of the Block-STM probe per worker (see `execute_block_adaptive`), at least
/// [`PROBE_MIN`] transactions.
const PROBE_PER_WORKER: usize = 64;
const PROBE_MIN: usize = 512;
/// Up to this many workers the sequential probe always runs.
const FEW_WORKERS: usize = 4;

/// Committed state seen through the write set of the block's earlier segments.
struct Layered<'a> {
    writes: &'a BTreeMap<StateKey, Option<StateValue>>,
    base: &'a dyn StateReader,
}

impl StateReader for Layered<'_> {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }
}

/// Appends the output of the block's next segment.
fn append(out: &mut BlockOutput, next: BlockOutput) {
    out.receipts.extend(next.receipts);
    out.write_set.extend(next.write_set);
    out.stats.txs += next.stats.txs;
    out.stats.workers = out.stats.workers.max(next.stats.workers);
    out.stats.add(&next.stats);
}

/// Shifts transaction indices in an error of a segment starting at `offset`.
fn offset_error(e: VmStateError, offset: usize) -> VmStateError {
    match e {
        VmStateError::ExecutorPanic { tx, message } => VmStateError::ExecutorPanic {
            tx: tx + offset,
            message,
        },
        VmStateError::SequentialDependency { tx, on } => VmStateError::SequentialDependency {
            tx: tx + offset,
            on,
        },
        other => other,
    }
}

/// One block in flight, shared by its workers.
struct Block<'a, E: TxExecutor> {
    exec: &'a E,
    txs: &'a [E::Tx],
    env: &'a BlockEnv,
    base: &'a dyn StateReader,
    mem: MvMemory,
    scheduler: Scheduler,
    halt: AtomicBool,
    error: Mutex<Option<VmStateError>>,
    stats: Mutex<ExecStats>,
}

impl<E: TxExecutor> Block<'_, E> {
    fn fail(&self, e: VmStateError) {
        let mut slot = self.error.lock();
        if slot.is_none() {
            *slot = Some(e);
        }
        self.halt.store(true, Ordering::SeqCst);
    }

    fn run_worker(&self) {
        let mut stats = ExecStats::default();
        let result = catch_unwind(AssertUnwindSafe(|| self.worker_loop(&mut stats)));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.fail(e),
            Err(p) => self.fail(VmStateError::Invariant(format!(
                "worker panicked: {}",
                panic_message(p)
            ))),
        }
        self.stats.lock().add(&stats);
    }

    fn worker_loop(&self, stats: &mut ExecStats) -> Result<()> {
        let mut worker = self.exec.new_worker();
        let backoff = Backoff::new();
        let mut task: Option<Task> = None;
        while !self.scheduler.done() && !self.halt.load(Ordering::Relaxed) {
            task = match task {
                Some(Task::Execute(v)) => self.try_execute(&mut worker, v, stats)?,
                Some(Task::Validate(v)) => self.validate(v, stats)?,
                None => match self.scheduler.next_task()? {
                    Some(t) => {
                        backoff.reset();
                        Some(t)
                    }
                    None => {
                        backoff.snooze();
                        None
                    }
                },
            };
        }
        Ok(())
    }

    fn try_execute(
        &self,
        worker: &mut E::Worker,
        v: Version,
        stats: &mut ExecStats,
    ) -> Result<Option<Task>> {
        let tx = self.txs.get(v.txn).ok_or_else(|| {
            VmStateError::Invariant(format!("scheduled transaction {} out of range", v.txn))
        })?;
        loop {
            stats.executions += 1;
            let mut view = ParallelView::new(v.txn, &self.mem, self.base);
            let result = catch_unwind(AssertUnwindSafe(|| {
                self.exec.execute(worker, tx, self.env, &mut view)
            }))
            .map_err(|p| VmStateError::ExecutorPanic {
                tx: v.txn,
                message: panic_message(p),
            })?;
            if let Some(msg) = view.storage_error.take() {
                return Err(VmStateError::Storage(msg));
            }
            match result {
                Ok(receipt) => {
                    if let Some(d) = view.dependency {
                        return Err(VmStateError::Invariant(format!(
                            "transaction {} read an ESTIMATE of {d} but the executor did not return the dependency",
                            v.txn
                        )));
                    }
                    let (reads, writes) = view.finish();
                    let wrote_new_path =
                        self.mem
                            .record(v.txn, v.incarnation, reads, writes, receipt)?;
                    return self.scheduler.finish_execution(v, wrote_new_path);
                }
                Err(ReadError::Dependency(d)) => {
                    if view.dependency != Some(d) {
                        return Err(VmStateError::Invariant(format!(
                            "transaction {} returned a dependency on {d} that its view never reported",
                            v.txn
                        )));
                    }
                    stats.dependency_waits += 1;
                    if self.scheduler.add_dependency(v.txn, d)? {
                        return Ok(None);
                    }
                    // `d` finished meanwhile: run again at once.
                }
                Err(ReadError::Storage(msg)) => return Err(VmStateError::Storage(msg)),
            }
        }
    }

    fn validate(&self, v: Version, stats: &mut ExecStats) -> Result<Option<Task>> {
        stats.validations += 1;
        let valid = self.mem.validate_read_set(v.txn)?;
        let aborted = !valid && self.scheduler.try_validation_abort(v)?;
        if aborted {
            stats.aborts += 1;
            self.mem.convert_writes_to_estimates(v.txn)?;
        }
        self.scheduler.finish_validation(v.txn, aborted)
    }
}

/// Executes `txs` one after another on the calling thread: the reference result.
pub fn execute_block_sequential<E: TxExecutor>(
    exec: &E,
    txs: &[E::Tx],
    env: &BlockEnv,
    base: &dyn StateReader,
) -> Result<BlockOutput> {
    let mut worker = catch_unwind(AssertUnwindSafe(|| exec.new_worker())).map_err(|p| {
        VmStateError::ExecutorPanic {
            tx: 0,
            message: panic_message(p),
        }
    })?;
    let mut overlay: HashMap<StateKey, Option<StateValue>> = HashMap::new();
    let mut receipts: Vec<Receipt> = Vec::with_capacity(txs.len());
    for (txn, tx) in txs.iter().enumerate() {
        let (result, writes) = {
            let mut view = SequentialView::new(&overlay, base);
            let result = catch_unwind(AssertUnwindSafe(|| {
                exec.execute(&mut worker, tx, env, &mut view)
            }))
            .map_err(|p| VmStateError::ExecutorPanic {
                tx: txn,
                message: panic_message(p),
            })?;
            if let Some(msg) = view.storage_error.take() {
                return Err(VmStateError::Storage(msg));
            }
            (result, view.into_writes())
        };
        match result {
            Ok(receipt) => {
                receipts.push(receipt);
                overlay.extend(writes);
            }
            Err(ReadError::Dependency(on)) => {
                return Err(VmStateError::SequentialDependency { tx: txn, on })
            }
            Err(ReadError::Storage(msg)) => return Err(VmStateError::Storage(msg)),
        }
    }
    let n = txs.len();
    Ok(BlockOutput {
        receipts,
        write_set: sorted_write_set(overlay),
        stats: ExecStats {
            txs: n,
            workers: 1,
            executions: n as u64,
            ..ExecStats::default()
        },
    })
}

/// The block's write set from the sequential overlay: an unstable sort of the (distinct) keys,
/// then a linear-time bulk build of the map.
fn sorted_write_set(
    overlay: HashMap<StateKey, Option<StateValue>>,
) -> BTreeMap<StateKey, Option<StateValue>> {
    let mut entries: Vec<(StateKey, Option<StateValue>)> = overlay.into_iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{generate_block, genesis, SyntheticExecutor};

    /// Segmented execution (a Block-STM probe, a sequential probe, the rest in either mode)
    /// gives exactly the sequential result.
    #[test]
    fn probed_segments_equal_sequential() {
        let exec = SyntheticExecutor::default();
        let env = BlockEnv::default();
        for (universe, pct) in [(2u32, 100u32), (10, 50), (1000, 70)] {
            let base = genesis(universe, 1_000_000);
            let txs = generate_block(u64::from(universe), universe, 300, pct);
            let seq = execute_block_sequential(&exec, &txs, &env, &base).expect("seq");
            for threads in [2, 3] {
                let pe = ParallelExecutor::new(threads).expect("pool");
                for force in [None, Some(true), Some(false)] {
                    for probe in [40, 149, 150] {
                        let out = pe
                            .execute_block_probed(&exec, &txs, &env, &base, probe, force)
                            .expect("probed");
                        assert_eq!(out.receipts, seq.receipts, "{universe} {threads} {force:?}");
                        assert_eq!(
                            out.write_set, seq.write_set,
                            "{universe} {threads} {force:?}"
                        );
                        assert_eq!(out.stats.txs, txs.len());
                    }
                }
            }
            let one = ParallelExecutor::new(1).expect("pool");
            let out = one.execute_block(&exec, &txs, &env, &base).expect("one");
            assert_eq!((out.receipts, out.write_set), (seq.receipts, seq.write_set));
        }
    }
}
