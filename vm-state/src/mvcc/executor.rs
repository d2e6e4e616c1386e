//! The block executors: [`ParallelExecutor`] (Block-STM on an explicit rayon pool) and
//! [`execute_block_sequential`], the oracle it must always agree with.

use crate::write_set::WriteSet;
use std::any::Any;

use hashbrown::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Instant;

use crossbeam_utils::Backoff;
use parking_lot::Mutex;

use crate::error::{Result, VmStateError};
use crate::mvcc::declared;
use crate::mvcc::memory::{sort_prefixed, CellCache, KeyPrefix, Leftovers, MvMemory};
use crate::mvcc::scheduler::{Scheduler, Task, Version};
use crate::mvcc::view::{ParallelView, SequentialView};
use crate::mvcc::{BlockOutput, ExecStats};
use crate::store::StateReader;
use crate::types::{BlockEnv, ReadError, Receipt, StateKey, StateValue, TxExecutor, TxIndex};

static GLOBAL_SEQUENTIAL_FALLBACKS: AtomicU64 = AtomicU64::new(0);

/// Whether workers measure where their time goes (`SUPERVM_EXEC_PROFILE` set; read once):
/// [`ExecStats::profile`] is filled only then.
pub fn profiling() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SUPERVM_EXEC_PROFILE").is_some())
}

/// A clock read when profiling, nothing otherwise.
pub(crate) fn tick(on: bool) -> Option<Instant> {
    on.then(Instant::now)
}

pub(crate) fn since(t: Option<Instant>) -> u64 {
    t.map_or(0, |t| t.elapsed().as_nanos() as u64)
}

/// How many blocks, over all executors of this process, fell back to sequential execution
/// after the parallel path found a broken invariant.
pub fn global_sequential_fallbacks() -> u64 {
    GLOBAL_SEQUENTIAL_FALLBACKS.load(Ordering::Relaxed)
}

pub(crate) fn panic_message(p: Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// The declared-access plan of one block ([`ParallelExecutor::plan_block`]): its
/// dependency graph, or the finding that the block does not declare its keys or forms a
/// chain. Used only for the transactions it was made for (the same slice; otherwise the
/// block is planned again). Even a plan of other transactions could not change a result:
/// the run checks every access against the plan's declarations, and a graph orders
/// correctly any transactions whose accesses stay within them; anything else stops the run
/// and the block is re-run sequentially.
pub struct BlockPlan {
    plan: declared::Plan,
    /// The address and length of the transactions' slice it was made for.
    txs: (usize, usize),
    plan_ns: u64,
}

impl std::fmt::Debug for BlockPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockPlan")
            .field("txs", &self.txs.1)
            .field("plan_ns", &self.plan_ns)
            .finish_non_exhaustive()
    }
}

/// Executes blocks with Block-STM on an explicit thread pool.
pub struct ParallelExecutor {
    pool: Arc<rayon::ThreadPool>,
    threads: usize,
    fallbacks: AtomicU64,
    /// Blocks still to run sequentially without a probe after the last bailout (see
    /// [`SKIP_AFTER_SLOW`]).
    skip_probes: AtomicU64,
    /// Whether the previous block ran on its declared-keys graph (the next graph run is then
    /// warm and may be judged: see `execute_block_adaptive`).
    graph_warm: AtomicBool,
    /// What a transaction cost in this executor's recent sequential runs (nanoseconds; 0:
    /// none yet): the reference a graph run is judged against. A lower sample replaces it
    /// at once, a higher one moves it a quarter of the way: a cold run (fresh memory, page
    /// faults) only ever makes it too high, and one cold sample must not stick.
    seq_ns_per_tx: AtomicU64,
    /// Sequential runs that fed `seq_ns_per_tx`.
    seq_samples: AtomicU64,
    /// Whether `execute_block` may run blocks on their declared keys' graph (default on).
    declared: AtomicBool,
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
            skip_probes: AtomicU64::new(0),
            graph_warm: AtomicBool::new(false),
            seq_ns_per_tx: AtomicU64::new(0),
            seq_samples: AtomicU64::new(0),
            declared: AtomicBool::new(true),
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
        self.execute_block_planned(exec, txs, env, base, None)
    }

    /// [`Self::execute_block`] with the block's declared-access plan made ahead
    /// ([`Self::plan_block`]; a plan made for other transactions is not used: the block is
    /// planned again).
    pub fn execute_block_planned<E: TxExecutor>(
        &self,
        exec: &E,
        txs: &[E::Tx],
        env: &BlockEnv,
        base: &dyn StateReader,
        plan: Option<BlockPlan>,
    ) -> Result<BlockOutput> {
        match self.execute_block_adaptive(exec, txs, env, base, plan) {
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
    /// - Small blocks: Block-STM.
    /// - Otherwise the first [`SEQ_PREFIX`] transactions run sequentially, which measures
    ///   what a transaction of this block costs on one thread, and the rest runs with
    ///   Block-STM on top of them, watched: once the first [`PROBE_PER_WORKER`] transactions
    ///   per worker were handed out, the run stops and the rest of the block runs
    ///   sequentially instead if conflicts (aborts + dependency waits) exceed a third of
    ///   them (checked at every conflict, so a dependency chain such as transfers among 2
    ///   accounts stops early), or if Block-STM's wall time per finished transaction so far
    ///   (counted from each worker's start: see `Block::effective_wall_ns`)
    ///   is not under 60% of the sequential cost (very cheap transactions such as native
    ///   transfers: the bookkeeping and the cache traffic between cores cost more than the
    ///   parallelism gives). A block that suits Block-STM pays only the short sequential
    ///   prefix; one that does not loses the little work done before the verdict and then
    ///   runs sequentially from its start (re-running the prefix is cheaper than reading
    ///   every key of the rest through the prefix's write set).
    /// - After a bailout an executor of at most [`REMEMBER_MAX_WORKERS`] workers remembers
    ///   the verdict: the next [`SKIP_AFTER_SLOW`]
    ///   blocks (after a too-slow verdict: a property of the machine and the transactions'
    ///   cost) or [`SKIP_AFTER_CONFLICTS`] blocks (after a conflict verdict: a property of
    ///   the block's content) run sequentially at once, then a block probes again. On the
    ///   2-core dev machine a bailout made a 10,000-transaction block 0.67-0.87x as fast as
    ///   sequential execution (the probe, then a sequential run beside the probe's
    ///   clean-up); skipping the probe runs it at sequential speed.
    ///
    /// Every segment starts from committed state plus the write sets of the segments before
    /// it, so segment boundaries cannot change any result; only timing picks the mode.
    fn execute_block_adaptive<E: TxExecutor>(
        &self,
        exec: &E,
        txs: &[E::Tx],
        env: &BlockEnv,
        base: &dyn StateReader,
        plan: Option<BlockPlan>,
    ) -> Result<BlockOutput> {
        let workers = self.threads.min(txs.len());
        let skip = workers > 1
            && self
                .skip_probes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |k| k.checked_sub(1))
                .is_ok();
        if workers <= 1 || skip {
            self.graph_warm.store(false, Ordering::Release);
            if let Some(p) = plan {
                drop_later(Box::new(p));
            }
            let mut out = execute_block_sequential(exec, txs, env, base)?;
            out.stats.probe_skips = u64::from(skip);
            if skip {
                self.note_sequential(&out.stats);
            }
            return Ok(out);
        }
        // An executor of few workers judges its graph runs against its own sequential runs;
        // with none yet, a block that would run on its graph runs sequentially once instead
        // (timed: the reference).
        let small = workers <= REMEMBER_MAX_WORKERS;
        let calibrate = small && self.seq_samples.load(Ordering::Acquire) < CALIBRATION_RUNS;
        let declared = if self.declared_graph() {
            self.run_declared(exec, txs, env, base, plan, calibrate)?
        } else {
            if let Some(p) = plan {
                drop_later(Box::new(p));
            }
            None
        };
        if let Some(out) = declared {
            if out.stats.declared_runs == 0 {
                // A chain, or the calibration: it ran sequentially. After a chain (a
                // property of the block's content, like heavy conflicts) the next blocks run
                // sequentially without building even a sample graph.
                self.note_sequential(&out.stats);
                self.graph_warm.store(false, Ordering::Release);
                if small && !calibrate {
                    self.skip_probes
                        .store(SKIP_AFTER_CONFLICTS, Ordering::Release);
                }
                return Ok(out);
            }
            // A graph run that cost about what its transactions cost one after another
            // gained nothing: on few workers with cheap transactions (native transfers on 2
            // cores) building the graph and sorting the write set cost more than the second
            // core gives. Such an executor then runs the next blocks sequentially (which
            // also refreshes the reference), as after a slow Block-STM probe. Only a run
            // that follows another graph run is judged: the first after other modes often
            // pays for fresh memory (page faults of 20 ms were seen on the 2-core machine).
            //
            // An executor of more than 4 workers makes no sequential reference runs (two
            // sequential blocks would cost it more than the graph usually gains); it judges
            // a graph run against the workers' summed time inside the executor instead, which
            // contention between cores only inflates (so it errs towards keeping the graph).
            // Native transfers among 100 accounts on 16 workers (a graph 488 deep) took
            // longer than that sum.
            let warm = self.graph_warm.swap(true, Ordering::AcqRel);
            let reference = if small {
                self.seq_ns_per_tx
                    .load(Ordering::Acquire)
                    .saturating_mul(txs.len() as u64)
            } else {
                out.stats.profile.execute_ns
            };
            if warm && graph_run_too_slow(&out.stats, reference) {
                self.skip_probes.store(SKIP_AFTER_SLOW, Ordering::Release);
                self.graph_warm.store(false, Ordering::Release);
            }
            return Ok(out);
        }
        self.graph_warm.store(false, Ordering::Release);
        let probe = (PROBE_PER_WORKER * workers).max(PROBE_MIN);
        self.execute_block_watched(exec, txs, env, base, SEQ_PREFIX, probe)
    }

    /// The adaptive path with explicit prefix and probe sizes (tests use small ones).
    fn execute_block_watched<E: TxExecutor>(
        &self,
        exec: &E,
        txs: &[E::Tx],
        env: &BlockEnv,
        base: &dyn StateReader,
        prefix: usize,
        probe: usize,
    ) -> Result<BlockOutput> {
        let n = txs.len();
        if n <= prefix + 2 * probe {
            return self.execute_block_parallel(exec, txs, env, base);
        }
        // The first half of the prefix warms this thread up (code, caches); the second half
        // is timed.
        let warm = prefix / 2;
        let mut out = execute_block_sequential(exec, &txs[..warm], env, base)?;
        let start = Instant::now();
        let timed = {
            let layered = Layered {
                writes: &out.write_set,
                base,
            };
            execute_block_sequential(exec, &txs[warm..prefix], env, &layered)
                .map_err(|e| offset_error(e, warm))?
        };
        let seq_ns_per_tx =
            (start.elapsed().as_nanos() as u64 / (prefix - warm).max(1) as u64).max(1);
        append(&mut out, timed);
        let layered = Layered {
            writes: &out.write_set,
            base,
        };
        let watch = Watch {
            probe,
            seq_ns_per_tx,
        };
        let rest = self
            .run_block_stm(exec, &txs[prefix..], env, &layered, Some(watch))
            .map_err(|e| offset_error(e, prefix))?;
        tracing::debug!(
            txs = n,
            prefix,
            probe,
            seq_ns_per_tx,
            parallel = rest.is_ok(),
            "adaptive block execution"
        );
        match rest {
            Ok(rest) => {
                append(&mut out, rest);
                Ok(out)
            }
            Err(stopped) => {
                // The whole block again, sequentially over committed state: re-running the
                // prefix (192 transactions) costs less than reading every key of the rest
                // through the prefix's write set first (about 18% of a token transfer's
                // cost on the 2-core dev machine).
                let mut all = execute_block_sequential(exec, txs, env, base)?;
                all.stats.probe_bailouts += 1;
                all.stats.probe_slow_bailouts += u64::from(stopped.slow);
                all.stats.probe_ns += stopped.ns;
                Ok(all)
            }
        }
    }

    /// The declared-access path alone (`mvcc::declared`): `None` if some transaction does
    /// not declare its keys; a block whose graph is nearly a chain runs sequentially. Errors
    /// are returned, with no sequential fallback.
    pub fn execute_block_declared<E: TxExecutor>(
        &self,
        exec: &E,
        txs: &[E::Tx],
        env: &BlockEnv,
        base: &dyn StateReader,
    ) -> Result<Option<BlockOutput>> {
        self.run_declared(exec, txs, env, base, None, false)
    }

    /// Whether a plan made now ([`Self::plan_block`]) would likely be used: the graph is on,
    /// more than one worker, and no recent verdict making the next blocks run sequentially.
    /// Advisory (a block without a plan is planned when it executes).
    pub fn wants_plans(&self) -> bool {
        self.declared_graph() && self.threads > 1 && self.skip_probes.load(Ordering::Acquire) == 0
    }

    /// Turns the declared-keys graph of [`Self::execute_block`] on (the default) or off
    /// (every block then runs as if its transactions did not declare: Block-STM or
    /// sequential). [`Self::execute_block_declared`] is not affected.
    pub fn set_declared_graph(&self, on: bool) {
        self.declared.store(on, Ordering::Release);
    }

    /// Whether [`Self::execute_block`] may use the declared-keys graph.
    pub fn declared_graph(&self) -> bool {
        self.declared.load(Ordering::Acquire)
    }

    /// Builds the declared-access plan of `txs` (on this executor's pool) for
    /// [`Self::execute_block_planned`]. It depends only on the transactions, not on state,
    /// so it can be made while the previous block executes.
    pub fn plan_block<E: TxExecutor>(&self, exec: &E, txs: &[E::Tx]) -> Result<BlockPlan> {
        let started = Instant::now();
        let plan = self.pool.install(|| declared::plan(exec, txs))?;
        Ok(BlockPlan {
            plan,
            txs: (txs.as_ptr() as usize, txs.len()),
            plan_ns: started.elapsed().as_nanos() as u64,
        })
    }

    /// Adds a sequential run of a block to the per-transaction reference (blocks of at least
    /// [`REFERENCE_MIN_TXS`] transactions).
    fn note_sequential(&self, s: &ExecStats) {
        if s.txs < REFERENCE_MIN_TXS || s.sequential_ns == 0 {
            return;
        }
        let sample = (s.sequential_ns / s.txs as u64).max(1);
        let _ = self
            .seq_ns_per_tx
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                Some(if old == 0 || sample < old {
                    sample
                } else {
                    old + (sample - old) / 4
                })
            });
        self.seq_samples.fetch_add(1, Ordering::AcqRel);
    }

    /// The declared-access path with an optional plan made ahead; `sequential_instead`: a
    /// block that would run on its graph runs sequentially.
    fn run_declared<E: TxExecutor>(
        &self,
        exec: &E,
        txs: &[E::Tx],
        env: &BlockEnv,
        base: &dyn StateReader,
        plan: Option<BlockPlan>,
        sequential_instead: bool,
    ) -> Result<Option<BlockOutput>> {
        let workers = self.threads.min(txs.len());
        let mine = (txs.as_ptr() as usize, txs.len());
        // `ahead`: the plan was made before this call, off the block's path
        let (plan, ahead) = match plan {
            Some(p) if p.txs == mine => (p, true),
            other => {
                if let Some(p) = other {
                    drop_later(Box::new(p));
                }
                (self.plan_block(exec, txs)?, false)
            }
        };
        let (graph, depth) = match plan.plan {
            declared::Plan::Undeclared => return Ok(None),
            declared::Plan::Chain { depth } => {
                tracing::trace!(txs = txs.len(), depth, "declared accesses form a chain");
                (None, depth)
            }
            declared::Plan::Graph(g) if sequential_instead => {
                let depth = g.depth;
                drop_later(g);
                (None, depth)
            }
            declared::Plan::Graph(g) => {
                let depth = g.depth;
                (Some(g), depth)
            }
        };
        let mut out = match graph {
            Some(g) => declared::run(
                &self.pool,
                g,
                exec,
                txs,
                env,
                base,
                workers.max(1),
                workers > REMEMBER_MAX_WORKERS,
            )?,
            None => execute_block_sequential(exec, txs, env, base)?,
        };
        out.stats.graph_depth = depth as u64;
        out.stats.plan_ns = plan.plan_ns;
        out.stats.plan_ahead = ahead;
        Ok(Some(out))
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
        self.run_block_stm(exec, txs, env, base, None)?
            .map_err(|_| VmStateError::Invariant("unwatched Block-STM run stopped".into()))
    }

    /// Block-STM; with `watch`, stops early (returns `Ok(Err(Stopped))`) when it judges
    /// Block-STM the wrong mode for this block (see [`Self::execute_block_adaptive`]).
    fn run_block_stm<E: TxExecutor>(
        &self,
        exec: &E,
        txs: &[E::Tx],
        env: &BlockEnv,
        base: &dyn StateReader,
        watch: Option<Watch>,
    ) -> Result<std::result::Result<BlockOutput, Stopped>> {
        let n = txs.len();
        if n == 0 {
            return Ok(Ok(BlockOutput::default()));
        }
        let workers = self.threads.min(n);
        let started = Instant::now();
        let block = Block {
            exec,
            txs,
            env,
            base,
            mem: MvMemory::with_workers(n, workers),
            next_worker: AtomicUsize::new(0),
            scheduler: Scheduler::new(n),
            workers,
            halt: AtomicBool::new(false),
            watch,
            conflicts: AtomicU64::new(0),
            verdict: AtomicU8::new(UNDECIDED),
            bailed_slow: AtomicBool::new(false),
            started: Instant::now(),
            probe_execs: AtomicU64::new(0),
            workers_started: AtomicU64::new(0),
            start_offsets_ns: AtomicU64::new(0),
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
        let parallel_ns = started.elapsed().as_nanos() as u64;
        let finishing = Instant::now();
        let Block {
            mem,
            scheduler,
            error,
            stats,
            verdict,
            bailed_slow,
            ..
        } = block;
        if let Some(e) = error.into_inner() {
            return Err(e);
        }
        if verdict.into_inner() == BAIL {
            let slow = bailed_slow.into_inner();
            if workers <= REMEMBER_MAX_WORKERS {
                let skip = if slow {
                    SKIP_AFTER_SLOW
                } else {
                    SKIP_AFTER_CONFLICTS
                };
                self.skip_probes.store(skip, Ordering::Release);
            }
            drop_later(Box::new((mem, scheduler)));
            return Ok(Err(Stopped {
                slow,
                ns: parallel_ns,
            }));
        }
        if !scheduler.done() {
            return Err(VmStateError::Invariant(
                "workers stopped before the block was done".into(),
            ));
        }
        let collect_start = Instant::now();
        let (final_writes, rest) = self.pool.install(|| mem.into_final_writes()).map_err(|t| {
            VmStateError::Invariant(format!(
                "block done but an ESTIMATE of transaction {t} is left"
            ))
        })?;
        let collect_ns = collect_start.elapsed().as_nanos() as u64;
        let map_start = Instant::now();
        // The map is bulk-built from sorted input on one thread while the others collect
        // and check the receipts.
        let (write_set, receipts) = self.pool.install(|| {
            rayon::join(
                || WriteSet::from_sorted(final_writes),
                || {
                    use rayon::prelude::*;
                    // An indexed collect (straight into one vector), then a check in place:
                    // collecting `Result`s in parallel builds and joins a list of vectors.
                    let first_error: Mutex<Option<VmStateError>> = Mutex::new(None);
                    let receipts: Vec<Option<Receipt>> = (0..n)
                        .into_par_iter()
                        .map(|txn| {
                            final_receipt(&scheduler, &rest, txn)
                                .map_err(|e| {
                                    first_error.lock().get_or_insert(e);
                                })
                                .ok()
                        })
                        .collect();
                    match first_error.into_inner() {
                        Some(e) => Err(e),
                        None => receipts
                            .into_iter()
                            .collect::<Option<Vec<Receipt>>>()
                            .ok_or_else(|| {
                                VmStateError::Invariant("a receipt went missing".into())
                            }),
                    }
                },
            )
        });
        let receipts = receipts?;
        let map_ns = map_start.elapsed().as_nanos() as u64;
        // Freeing the rest of multi-version memory (read sets, write sets, cached values) is
        // off the critical path: a thread of its own does it while the caller goes on.
        drop_later(Box::new((rest, scheduler)));
        let mut stats = stats.into_inner();
        stats.parallel_ns = parallel_ns;
        stats.finish_ns = finishing.elapsed().as_nanos() as u64;
        stats.profile.collect_ns = collect_ns;
        stats.profile.map_ns = map_ns;
        Ok(Ok(BlockOutput {
            receipts,
            write_set,
            stats,
        }))
    }
}

/// The receipt of transaction `txn`'s final incarnation, taken out of its slot.
fn final_receipt(scheduler: &Scheduler, rest: &Leftovers, txn: TxIndex) -> Result<Receipt> {
    let inc = scheduler.final_incarnation(txn)?;
    let (recorded, receipt) = rest
        .take_receipt(txn)
        .ok_or_else(|| VmStateError::Invariant(format!("no slot for transaction {txn}")))?;
    let receipt = receipt.ok_or_else(|| {
        VmStateError::Invariant(format!("transaction {txn} has no recorded output"))
    })?;
    if recorded != inc {
        return Err(VmStateError::Invariant(format!(
            "transaction {txn}: recorded incarnation {recorded} but final incarnation {inc}"
        )));
    }
    Ok(receipt)
}

/// Whether a block that ran on its declared-access graph took longer (planning, running and
/// finishing) than 90% of `reference`, what its transactions cost sequentially by the
/// executor's recent sequential runs (0: unknown, never too slow). The running counts as if
/// every worker had started at once (`effective_parallel_ns`): a graph is judged by what it
/// gains, not by how long other work of the pool kept its workers from starting (in the
/// node on the 16-core host, a proof batch checked on the CPU beside a block made its graph
/// run 42 ms long for 38 ms of work, and the seven blocks after it then ran sequentially, 22-36
/// ms each against 7-16 ms on the graph). A plan made ahead (`plan_ahead`) does not count:
/// it was not on the block's path, and running the block sequentially would not save it (on
/// the host, 2026-12-07 21:17 UTC, a plan made ahead in 44.8 ms beside the signature checks
/// sent `cpu_only`'s next seven blocks to sequential runs after a graph run of 2.8 ms
/// effective for 40.9 ms of work).
fn graph_run_too_slow(s: &ExecStats, reference: u64) -> bool {
    let running = match s.effective_parallel_ns {
        0 => s.parallel_ns,
        e => e.min(s.parallel_ns),
    };
    let plan = if s.plan_ahead { 0 } else { s.plan_ns };
    let wall = plan + running + s.finish_ns;
    s.declared_runs > 0
        && reference > 0
        && wall.saturating_mul(DECLARED_GAIN_DEN) > reference.saturating_mul(DECLARED_GAIN_NUM)
}

/// `workers` workers' summed time since each started (`started` of them so far, at
/// `offsets_ns` after the run's start in all), divided by `workers`: the wall time the run
/// would have taken so far had every worker started at once.
fn effective_wall_ns(now_ns: u64, started: u64, offsets_ns: u64, workers: usize) -> u64 {
    started.saturating_mul(now_ns).saturating_sub(offsets_ns) / workers.max(1) as u64
}

/// Something to free later.
pub(crate) type Garbage = Box<dyn Send>;

/// Frees `v` on a background thread of its own ("supervm-free"), or here if that thread
/// cannot be started. Freeing a block's multi-version memory (tens of thousands of small
/// allocations) takes milliseconds; done on a pool thread, as before, the next block's
/// workers and the end of the next block (`pool.install`) waited for that thread: on the
/// 2-core dev machine the end of a 10,000-transaction block took 7.7 ms median (2.7-23.6)
/// against 3.1 ms (2.8-3.7) with this thread.
pub(crate) fn drop_later(v: Garbage) {
    if let Some(tx) = free_thread() {
        if let Err(mpsc::SendError(Freed::Drop(v))) = tx.send(Freed::Drop(v)) {
            drop(v);
        }
    }
}

/// What the free thread is sent: memory to drop, or a request to say when it got there.
enum Freed {
    Drop(Garbage),
    Flush(mpsc::SyncSender<()>),
}

fn free_thread() -> Option<&'static mpsc::Sender<Freed>> {
    static FREE: OnceLock<Option<mpsc::Sender<Freed>>> = OnceLock::new();
    FREE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Freed>();
        std::thread::Builder::new()
            .name("supervm-free".into())
            .spawn(move || {
                for f in rx {
                    match f {
                        Freed::Drop(v) => drop(v),
                        Freed::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .ok()
            .map(|_| tx)
    })
    .as_ref()
}

/// Waits until every block's memory handed to the free thread so far has been freed. For
/// benchmarks: without it, freeing the previous block's memory (milliseconds) runs during
/// the next timed run and, on a machine with few cores, slows it down.
pub fn wait_for_freed_memory() {
    if let Some(tx) = free_thread() {
        let (done, wait) = mpsc::sync_channel(1);
        if tx.send(Freed::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

/// A watched Block-STM run that stopped: why (too slow, else conflicts) and after how long.
#[derive(Clone, Copy, Debug)]
struct Stopped {
    slow: bool,
    ns: u64,
}

/// When a watched Block-STM run judges itself, and the sequential cost per transaction it
/// must beat (measured on the block's sequential prefix).
#[derive(Clone, Copy, Debug)]
struct Watch {
    probe: usize,
    seq_ns_per_tx: u64,
}

/// Transactions the adaptive executor runs sequentially first, to measure their cost (the
/// second half is timed).
const SEQ_PREFIX: usize = 192;

/// Size of the Block-STM probe per worker (see `execute_block_adaptive`), at least
/// [`PROBE_MIN`] transactions.
const PROBE_PER_WORKER: usize = 64;
const PROBE_MIN: usize = 512;

/// Committed state seen through the write set of the block's earlier segments.
struct Layered<'a> {
    writes: &'a WriteSet,
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
    out.write_set.merge(next.write_set);
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
    workers: usize,
    halt: AtomicBool,
    /// Hands out worker numbers (each worker's own cell arena).
    next_worker: AtomicUsize,
    /// Watched run: when to judge, and the sequential cost to beat.
    watch: Option<Watch>,
    /// Aborts + dependency waits so far (watched runs only).
    conflicts: AtomicU64,
    /// [`UNDECIDED`], [`CONTINUE`] or [`BAIL`].
    verdict: AtomicU8,
    /// The verdict was BAIL because Block-STM was too slow (not because of conflicts).
    bailed_slow: AtomicBool,
    /// When the run started, and the first executions finished before the verdict (watched
    /// runs only).
    started: Instant,
    probe_execs: AtomicU64,
    /// Workers that started, and the sum of their start times (nanoseconds after
    /// `started`): the verdict judges the time the workers had, not the time they waited
    /// for a thread of a pool busy with other work.
    workers_started: AtomicU64,
    start_offsets_ns: AtomicU64,
    error: Mutex<Option<VmStateError>>,
    stats: Mutex<ExecStats>,
}

/// A watched run stops once conflicts exceed `probe / CONFLICT_DIVISOR`. Measured on the
/// 16-core host: token transfers among 100 accounts (about 20% aborts + waits) still run
/// twice as fast as sequentially at 8-16 workers; among 2 accounts (about one conflict per
/// transaction) Block-STM is a dependency chain and loses.
const CONFLICT_DIVISOR: u64 = 3;

/// Conflicts before a watched run may call the block a dependency chain (more conflicts than
/// half the finished transactions) and stop early.
const CHAIN_MIN_CONFLICTS: u64 = 64;

/// Executors of at most this many workers remember a stopped probe (measured on the 2-core
/// dev machine; with more workers the probe's cost was not measured to matter, and a block
/// that Block-STM would speed up must not wait for the next probe).
const REMEMBER_MAX_WORKERS: usize = 4;
/// A declared-access run whose wall time exceeds this fraction of its transactions'
/// sequential cost counts as too slow (see `execute_block_adaptive`).
const DECLARED_GAIN_NUM: u64 = 9;
const DECLARED_GAIN_DEN: u64 = 10;
/// Smallest block whose sequential run updates the per-transaction reference.
const REFERENCE_MIN_TXS: usize = 256;
/// Sequential runs an executor of few workers makes before its first graph run (the first
/// is often cold).
const CALIBRATION_RUNS: u64 = 2;
/// Blocks that run sequentially without a probe after a probe found Block-STM too slow.
const SKIP_AFTER_SLOW: u64 = 7;
/// Blocks that run sequentially without a probe after a probe stopped on conflicts.
const SKIP_AFTER_CONFLICTS: u64 = 3;

const UNDECIDED: u8 = 0;
const CONTINUE: u8 = 1;
const BAIL: u8 = 2;

impl<E: TxExecutor> Block<'_, E> {
    fn fail(&self, e: VmStateError) {
        let mut slot = self.error.lock();
        if slot.is_none() {
            *slot = Some(e);
        }
        self.halt.store(true, Ordering::SeqCst);
    }

    fn note_conflict(&self) {
        let Some(Watch { probe, .. }) = self.watch else {
            return;
        };
        let c = self.conflicts.fetch_add(1, Ordering::Relaxed) + 1;
        // Stop before the probe is through when conflicts already exceed its limit, or when
        // they outnumber half the finished transactions (a dependency chain: Block-STM
        // crawls, so waiting for the probe would waste time).
        let chain = c >= CHAIN_MIN_CONFLICTS && c * 2 > self.probe_execs.load(Ordering::Relaxed);
        if (c * CONFLICT_DIVISOR > probe as u64 || chain)
            && self
                .verdict
                .compare_exchange(UNDECIDED, BAIL, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.halt.store(true, Ordering::SeqCst);
        }
    }

    /// In a watched run, once the probe's transactions were handed out: continue, or stop
    /// every worker if conflicts exceed a third of the probe. One worker decides.
    fn judge(&self) {
        let Some(Watch {
            probe,
            seq_ns_per_tx,
        }) = self.watch
        else {
            return;
        };
        if self.verdict.load(Ordering::Relaxed) != UNDECIDED
            || self.scheduler.execution_progress() < probe
        {
            return;
        }
        let execs = self.probe_execs.load(Ordering::Relaxed).max(1);
        let wall_ns = self.effective_wall_ns();
        // Wall time per finished transaction must be under 60% of the sequential cost: the
        // probe does not see the end of the block (collecting the write set), which costs
        // Block-STM more than sequential execution.
        let too_slow = wall_ns.saturating_mul(10) > execs.saturating_mul(seq_ns_per_tx) * 6;
        let bail =
            too_slow || self.conflicts.load(Ordering::Relaxed) * CONFLICT_DIVISOR > probe as u64;
        let v = if bail { BAIL } else { CONTINUE };
        if self
            .verdict
            .compare_exchange(UNDECIDED, v, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
            && bail
        {
            self.bailed_slow.store(too_slow, Ordering::Relaxed);
            self.halt.store(true, Ordering::SeqCst);
        }
    }

    /// The probe's wall time as if every worker had started when the first one did: the
    /// workers' summed time since each started, divided by the number of workers. In a node
    /// the pool is shared with other stages (decoding, proof checks) whose jobs can hold
    /// threads for milliseconds; measured from the run's start, a probe that waited for
    /// its threads looked too slow and the whole block was run again sequentially (on the
    /// 16-core host a third to a half of the node's blocks were stopped, not for conflicts,
    /// and took about 3x as long).
    fn effective_wall_ns(&self) -> u64 {
        let now = self.started.elapsed().as_nanos() as u64;
        let started = self.workers_started.load(Ordering::Acquire);
        let offsets = self.start_offsets_ns.load(Ordering::Acquire);
        effective_wall_ns(now, started, offsets, self.workers)
    }

    fn run_worker(&self) {
        let offset = self.started.elapsed().as_nanos() as u64;
        self.start_offsets_ns.fetch_add(offset, Ordering::AcqRel);
        self.workers_started.fetch_add(1, Ordering::AcqRel);
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
        let mut cells = CellCache::new(self.next_worker.fetch_add(1, Ordering::Relaxed));
        let prof = profiling();
        let backoff = Backoff::new();
        let mut task: Option<Task> = None;
        while !self.scheduler.done() && !self.halt.load(Ordering::Relaxed) {
            let next = match task {
                Some(Task::Execute(v)) => {
                    let r = self.try_execute(&mut worker, &mut cells, v, stats);
                    self.judge();
                    r
                }
                Some(Task::Validate(v)) => {
                    let t = tick(prof);
                    let r = self.validate(v, stats);
                    stats.profile.validate_ns += since(t);
                    r
                }
                None => {
                    let t = tick(prof);
                    let r = self.scheduler.next_task().inspect(|t| {
                        if t.is_some() {
                            backoff.reset();
                        } else {
                            backoff.snooze();
                        }
                    });
                    stats.profile.schedule_ns += since(t);
                    r
                }
            };
            task = match next {
                Ok(t) => t,
                Err(e) => {
                    self.exec.recycle_worker(worker);
                    return Err(e);
                }
            };
        }
        self.exec.recycle_worker(worker);
        Ok(())
    }

    fn try_execute(
        &self,
        worker: &mut E::Worker,
        cells: &mut CellCache,
        v: Version,
        stats: &mut ExecStats,
    ) -> Result<Option<Task>> {
        let tx = self.txs.get(v.txn).ok_or_else(|| {
            VmStateError::Invariant(format!("scheduled transaction {} out of range", v.txn))
        })?;
        loop {
            stats.executions += 1;
            let mut view = ParallelView::new(v.txn, &self.mem, self.base, cells);
            let t = tick(profiling());
            let result = catch_unwind(AssertUnwindSafe(|| {
                self.exec.execute(worker, tx, self.env, &mut view)
            }));
            stats.profile.execute_ns += since(t);
            // While a watched run is undecided, finished first executions are counted for the
            // verdict.
            if self.watch.is_some()
                && v.incarnation == 0
                && matches!(result, Ok(Ok(_)))
                && self.verdict.load(Ordering::Relaxed) == UNDECIDED
            {
                self.probe_execs.fetch_add(1, Ordering::Relaxed);
            }
            let result = result.map_err(|p| VmStateError::ExecutorPanic {
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
                    let t = tick(profiling());
                    let (reads, writes) = view.finish();
                    let wrote_new_path =
                        self.mem
                            .record(v.txn, v.incarnation, reads, writes, receipt)?;
                    let next = self.scheduler.finish_execution(v, wrote_new_path);
                    stats.profile.record_ns += since(t);
                    return next;
                }
                Err(ReadError::Dependency(d)) => {
                    if view.dependency != Some(d) {
                        return Err(VmStateError::Invariant(format!(
                            "transaction {} returned a dependency on {d} that its view never reported",
                            v.txn
                        )));
                    }
                    stats.dependency_waits += 1;
                    self.note_conflict();
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
            self.note_conflict();
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
    let started = Instant::now();
    // Sized for a few keys per transaction: growing it rehashes every key written so far
    // and faults in fresh pages (a tenth of a sequential block's time on the dev machine).
    let mut overlay: HashMap<StateKey, Option<StateValue>> =
        HashMap::with_capacity(txs.len().saturating_mul(3));
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
    exec.recycle_worker(worker);
    let n = txs.len();
    Ok(BlockOutput {
        receipts,
        write_set: sorted_write_set(overlay),
        stats: ExecStats {
            txs: n,
            workers: 1,
            executions: n as u64,
            sequential_ns: started.elapsed().as_nanos() as u64,
            ..ExecStats::default()
        },
    })
}

/// The block's write set from the sequential overlay: an unstable sort of the (distinct) keys.
fn sorted_write_set(overlay: HashMap<StateKey, Option<StateValue>>) -> WriteSet {
    let entries: Vec<(KeyPrefix, StateKey, Option<StateValue>)> = overlay
        .into_iter()
        .map(|(k, v)| (KeyPrefix::of(&k), k, v))
        .collect();
    WriteSet::from_sorted(sort_prefixed(entries, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{generate_block, genesis, SyntheticExecutor};

    /// Segmented execution (a sequential prefix, then a watched Block-STM run that may stop
    /// and hand the rest to sequential execution) gives exactly the sequential result,
    /// whichever way the verdict goes.
    #[test]
    fn watched_segments_equal_sequential() {
        let exec = SyntheticExecutor::default();
        let env = BlockEnv::default();
        for (universe, pct) in [(2u32, 100u32), (10, 50), (1000, 70)] {
            let base = genesis(universe, 1_000_000);
            let txs = generate_block(u64::from(universe), universe, 300, pct);
            let seq = execute_block_sequential(&exec, &txs, &env, &base).expect("seq");
            for threads in [2, 3, 6] {
                let pe = ParallelExecutor::new(threads).expect("pool");
                for (prefix, probe) in [(1, 16), (2, 20), (40, 64), (101, 90), (10, 150)] {
                    let out = pe
                        .execute_block_watched(&exec, &txs, &env, &base, prefix, probe)
                        .expect("watched");
                    let ctx = format!("{universe} {threads} {prefix} {probe}");
                    assert_eq!(out.receipts, seq.receipts, "{ctx}");
                    assert_eq!(out.write_set, seq.write_set, "{ctx}");
                    assert_eq!(out.stats.txs, txs.len());
                }
                // Forced verdicts: a sequential cost nothing can beat (always stops at the
                // verdict) and one nothing can miss (continues unless conflicts stop it).
                for seq_ns_per_tx in [1, u64::MAX / 1024] {
                    for probe in [16, 64] {
                        let watch = Watch {
                            probe,
                            seq_ns_per_tx,
                        };
                        let out = match pe
                            .run_block_stm(&exec, &txs, &env, &base, Some(watch))
                            .expect("watched run")
                        {
                            Ok(out) => out,
                            Err(_) => {
                                execute_block_sequential(&exec, &txs, &env, &base).expect("seq")
                            }
                        };
                        let ctx = format!("{universe} {threads} forced {seq_ns_per_tx} {probe}");
                        assert_eq!(out.receipts, seq.receipts, "{ctx}");
                        assert_eq!(out.write_set, seq.write_set, "{ctx}");
                    }
                }
            }
            let one = ParallelExecutor::new(1).expect("pool");
            let out = one.execute_block(&exec, &txs, &env, &base).expect("one");
            assert_eq!((out.receipts, out.write_set), (seq.receipts, seq.write_set));
        }
    }

    #[test]
    fn the_probe_clock_counts_only_time_the_workers_had() {
        // Every worker from the start: the wall time itself.
        assert_eq!(effective_wall_ns(1_000, 4, 0, 4), 1_000);
        // One of 16 workers got a thread, 800 ns late (the pool was busy): a sixteenth of
        // the 200 ns it ran.
        assert_eq!(effective_wall_ns(1_000, 1, 800, 16), 12);
        // Two of two, the second 500 ns late: (1000 + 500) / 2.
        assert_eq!(effective_wall_ns(1_000, 2, 500, 2), 750);
        // Nothing started yet, or a worker count of zero: no division by zero.
        assert_eq!(effective_wall_ns(1_000, 0, 0, 0), 0);
    }

    /// A plan made ahead is used; a plan of other transactions, even forced onto a block of
    /// the same length, cannot change the result (the run either respects the plan's
    /// declarations, and then its graph orders the block correctly, or it stops and the
    /// block is re-run sequentially).
    #[test]
    fn plans_made_ahead_and_stale_plans() {
        let exec = SyntheticExecutor::declaring();
        let base = genesis(10_000, 1_000);
        let env = BlockEnv::default();
        let a = generate_block(1, 10_000, 2_000, 60);
        let b = generate_block(2, 10_000, 2_000, 60);
        let pe = ParallelExecutor::new(8).expect("pool");
        let seq_b = execute_block_sequential(&exec, &b, &env, &base).expect("seq");
        let plan = pe.plan_block(&exec, &b).expect("plan");
        let out = pe
            .execute_block_planned(&exec, &b, &env, &base, Some(plan))
            .expect("planned");
        assert_eq!(out.receipts, seq_b.receipts);
        assert_eq!(out.write_set, seq_b.write_set);
        assert_eq!(out.stats.declared_runs, 1);
        // A's plan presented as B's (the slice check bypassed).
        let mut stale = pe.plan_block(&exec, &a).expect("plan");
        stale.txs = (b.as_ptr() as usize, b.len());
        let out = pe
            .execute_block_planned(&exec, &b, &env, &base, Some(stale))
            .expect("stale plan");
        assert_eq!(out.receipts, seq_b.receipts);
        assert_eq!(out.write_set, seq_b.write_set);
        assert!(out.stats.sequential_fallback, "B leaves A's declarations");
        // A's plan for A's own length but another slice: planned again.
        let a2 = a.clone();
        let plan = pe.plan_block(&exec, &a).expect("plan");
        let seq_a = execute_block_sequential(&exec, &a2, &env, &base).expect("seq");
        let out = pe
            .execute_block_planned(&exec, &a2, &env, &base, Some(plan))
            .expect("replanned");
        assert_eq!(out.receipts, seq_a.receipts);
        assert!(!out.stats.sequential_fallback);
    }

    #[test]
    fn a_graph_run_that_gained_nothing_is_too_slow() {
        let mut s = ExecStats {
            declared_runs: 1,
            plan_ns: 1_000,
            parallel_ns: 5_000,
            finish_ns: 1_000,
            ..ExecStats::default()
        };
        // 7 us of wall time for 10 us of sequential work: a gain.
        assert!(!graph_run_too_slow(&s, 10_000));
        // 7 us for 7.5 us: no gain worth the bookkeeping.
        assert!(graph_run_too_slow(&s, 7_500));
        // Workers kept from starting by other work of the pool: judged as if they had
        // started at once (2 us of the 5 us: 4 us in all, a gain).
        s.effective_parallel_ns = 2_000;
        assert!(!graph_run_too_slow(&s, 7_500));
        // Never more than the wall time itself.
        s.effective_parallel_ns = 9_000;
        assert!(graph_run_too_slow(&s, 7_500));
        // A plan made ahead is not on the block's path: 6 us for 7.5 us, a gain.
        s.plan_ahead = true;
        assert!(!graph_run_too_slow(&s, 7_500));
        s.plan_ahead = false;
        s.effective_parallel_ns = 0;
        // No reference yet, or not a graph run: no verdict.
        assert!(!graph_run_too_slow(&s, 0));
        s.declared_runs = 0;
        assert!(!graph_run_too_slow(&s, 7_500));
    }

    /// An executor of few workers runs its first graph-eligible block sequentially (the
    /// reference), then runs the graph; the result is the sequential one throughout.
    #[test]
    fn few_workers_calibrate_on_a_sequential_run_first() {
        let exec = SyntheticExecutor::declaring();
        let base = genesis(10_000, 1_000);
        let env = BlockEnv::default();
        let txs = generate_block(5, 10_000, 2_000, 60);
        let seq = execute_block_sequential(&exec, &txs, &env, &base).expect("seq");
        let pe = ParallelExecutor::new(2).expect("pool");
        let mut outs = Vec::new();
        for _ in 0..CALIBRATION_RUNS {
            let out = pe
                .execute_block(&exec, &txs, &env, &base)
                .expect("calibration");
            assert_eq!(out.stats.declared_runs, 0, "calibration run");
            outs.push(out);
        }
        assert!(pe.seq_ns_per_tx.load(Ordering::Relaxed) > 0);
        let graph = pe.execute_block(&exec, &txs, &env, &base).expect("graph");
        assert_eq!(graph.stats.declared_runs, 1, "then the graph");
        outs.push(graph);
        for out in outs {
            assert_eq!(out.receipts, seq.receipts);
            assert_eq!(out.write_set, seq.write_set);
        }
    }

    /// A stopped probe is remembered: the next blocks run sequentially without a probe (the
    /// same results), as many as the verdict's kind says, then a block probes again.
    #[test]
    fn stopped_probe_is_remembered() {
        let exec = SyntheticExecutor::default();
        let env = BlockEnv::default();
        {
            let (seq_ns_per_tx, skips) = (1u64, SKIP_AFTER_SLOW);
            let base = genesis(1000, 1_000_000);
            let txs = generate_block(7, 1000, 400, 70);
            let seq = execute_block_sequential(&exec, &txs, &env, &base).expect("seq");
            let pe = ParallelExecutor::new(2).expect("pool");
            // A sequential cost nothing can beat: the watch stops the run as too slow.
            let watch = Watch {
                probe: 16,
                seq_ns_per_tx,
            };
            let stopped = pe
                .run_block_stm(&exec, &txs, &env, &base, Some(watch))
                .expect("watched run")
                .expect_err("stopped as too slow");
            assert!(stopped.slow);
            for i in 0..skips {
                let out = pe.execute_block(&exec, &txs, &env, &base).expect("block");
                assert_eq!(out.stats.probe_skips, 1, "block {i} after the stop");
                assert_eq!(out.receipts, seq.receipts);
                assert_eq!(out.write_set, seq.write_set);
            }
            let out = pe.execute_block(&exec, &txs, &env, &base).expect("block");
            assert_eq!(out.stats.probe_skips, 0, "probes again");
            assert_eq!((out.receipts, out.write_set), (seq.receipts, seq.write_set));
        }
        // A chain of conflicts (2 accounts): the conflict verdict skips fewer blocks.
        let base = genesis(2, 1_000_000);
        let txs = generate_block(3, 2, 400, 100);
        let pe = ParallelExecutor::new(2).expect("pool");
        let watch = Watch {
            probe: 64,
            seq_ns_per_tx: u64::MAX / 1024,
        };
        if let Err(stopped) = pe
            .run_block_stm(&exec, &txs, &env, &base, Some(watch))
            .expect("watched run")
        {
            assert!(!stopped.slow);
            for _ in 0..SKIP_AFTER_CONFLICTS {
                let out = pe.execute_block(&exec, &txs, &env, &base).expect("block");
                assert_eq!(out.stats.probe_skips, 1);
            }
        }
    }
}
