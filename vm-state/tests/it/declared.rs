//! The declared-access path (a dependency graph from declared keys, no Block-STM) against
//! the sequential oracle, and what happens when an executor breaks its declaration.

use proptest::prelude::*;
use vm_state::testing::{generate_block, key, SynthTx, SynthWorker, SyntheticExecutor};
use vm_state::{
    execute_block_sequential, Access, BlockEnv, ParallelExecutor, ReadError, Receipt, StateKey,
    StateView, TxExecutor, VmStateError,
};

use crate::parallel::{assert_same, base, env, executors, UNIVERSES};
use crate::stress;

/// The graph alone, repeated, against the sequential oracle (`universe_prop!`).
fn check(universe: u32, txs: &[SynthTx], threads: usize) -> Result<(), TestCaseError> {
    let exec = SyntheticExecutor::declaring();
    let base = base(universe);
    let seq = execute_block_sequential(&exec, txs, &env(), base)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let pe = &executors()[threads - 1];
    for r in 0..3 * stress() {
        let out = pe
            .execute_block_declared(&exec, txs, &env(), base)
            .map_err(|e| TestCaseError::fail(format!("threads {threads}: {e}")))?
            .ok_or_else(|| TestCaseError::fail("every transaction declares"))?;
        prop_assert_eq!(
            &out.receipts,
            &seq.receipts,
            "receipts, threads {}, run {}",
            threads,
            r
        );
        prop_assert_eq!(
            &out.write_set,
            &seq.write_set,
            "write set, threads {}, run {}",
            threads,
            r
        );
    }
    Ok(())
}

universe_prop!(declared_equals_sequential_2_keys, 2, 40, check);
universe_prop!(declared_equals_sequential_10_keys, 10, 40, check);
universe_prop!(declared_equals_sequential_100_keys, 100, 30, check);
universe_prop!(declared_equals_sequential_10000_keys, 10_000, 20, check);

/// Large blocks through `execute_block` (the node's entry point), every thread count: the
/// graph runs wherever it has parallelism, and the result is the sequential one every time.
#[test]
fn large_declared_blocks_equal_sequential() {
    let exec = SyntheticExecutor::declaring();
    for (i, &u) in UNIVERSES.iter().enumerate() {
        let base = base(u);
        for seed in 0..2 * u64::from(stress()) {
            let txs = generate_block(7_000 + 13 * seed + i as u64, u, 3_000, 60);
            let seq = execute_block_sequential(&exec, &txs, &env(), base).expect("sequential");
            for t in 2..=8 {
                let out = executors()[t - 1]
                    .execute_block(&exec, &txs, &env(), base)
                    .expect("declared");
                assert_same(
                    &out,
                    &seq,
                    &format!("universe {u}, seed {seed}, threads {t}"),
                );
                assert!(!out.stats.sequential_fallback);
                // The graph ran, unless a graph run of this executor was judged too slow
                // (then the block was skipped to sequential). (An executor of at most 4
                // workers chooses by measurement: its first such block runs sequentially as
                // a reference, and it runs blocks sequentially after a graph run that gained
                // nothing.)
                if u >= 100 && t > 4 && out.stats.probe_skips == 0 {
                    assert_eq!(out.stats.declared_runs, 1, "universe {u}: the graph ran");
                    assert_eq!(out.stats.executions, txs.len() as u64);
                }
                if u == 2 {
                    assert_eq!(out.stats.declared_runs, 0, "a 2-key block is a chain");
                }
            }
        }
    }
}

/// Hot read-only keys (read by every transaction, written by none) add no edge; a late
/// write to one orders every earlier reader before it.
#[test]
fn hot_read_only_keys_and_a_late_write() {
    let exec = SyntheticExecutor::declaring();
    let base = base(10_000);
    let mut txs: Vec<SynthTx> = (0..2_000u32)
        .map(|i| SynthTx::Mix {
            reads: vec![0, 1],
            writes: vec![100 + i],
            salt: u64::from(i),
        })
        .collect();
    txs.insert(
        1_500,
        SynthTx::Mix {
            reads: vec![5],
            writes: vec![0],
            salt: 1,
        },
    );
    let seq = execute_block_sequential(&exec, &txs, &env(), base).expect("sequential");
    for t in [2, 4, 8] {
        for r in 0..4 * stress() {
            let out = executors()[t - 1]
                .execute_block_declared(&exec, &txs, &env(), base)
                .expect("declared")
                .expect("every transaction declares");
            assert_eq!(out.stats.declared_runs, 1);
            assert_same(&out, &seq, &format!("threads {t}, run {r}"));
        }
    }
}

/// Executors that break their declaration in each possible way, or do not declare.
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// `Toggle` transactions do not declare (not a lie: the block is simply undeclared).
    TogglesUndeclared,
    /// A transfer declares only its sender.
    OmitsReceiver,
    /// A `Mix` declares its writes as reads.
    WritesAsReads,
}

struct Liar(SyntheticExecutor, Lie);

impl TxExecutor for Liar {
    type Tx = SynthTx;
    type Worker = SynthWorker;
    fn new_worker(&self) -> SynthWorker {
        self.0.new_worker()
    }
    fn execute(
        &self,
        w: &mut SynthWorker,
        tx: &SynthTx,
        env: &BlockEnv,
        view: &mut dyn StateView,
    ) -> Result<Receipt, ReadError> {
        self.0.execute(w, tx, env, view)
    }
    fn declare_access(&self, tx: &SynthTx, out: &mut Vec<(StateKey, Access)>) -> bool {
        match (self.1, tx) {
            (Lie::TogglesUndeclared, SynthTx::Toggle { .. }) => false,
            (Lie::OmitsReceiver, SynthTx::Transfer { from, .. }) => {
                out.push((key(*from), Access::Write));
                true
            }
            (Lie::WritesAsReads, SynthTx::Mix { reads, writes, .. }) => {
                out.extend(reads.iter().chain(writes).map(|k| (key(*k), Access::Read)));
                true
            }
            _ => self.0.declare_access(tx, out),
        }
    }
}

/// A broken declaration is an invariant error on the declared path alone; through
/// `execute_block` the block is re-run sequentially, counted, with the sequential result.
#[test]
fn a_broken_declaration_falls_back_to_sequential() {
    let txs = generate_block(11, 10_000, 2_000, 60);
    let base = base(10_000);
    for lie in [Lie::OmitsReceiver, Lie::WritesAsReads] {
        let exec = Liar(SyntheticExecutor::declaring(), lie);
        let seq = execute_block_sequential(&exec, &txs, &env(), base).expect("seq");
        // More than 4 workers: no calibration runs, the graph runs at once.
        let pe = ParallelExecutor::new(6).expect("pool");
        let err = pe
            .execute_block_declared(&exec, &txs, &env(), base)
            .expect_err("a broken declaration");
        assert!(
            matches!(&err, VmStateError::Invariant(m) if m.contains("declared")),
            "{lie:?}: {err}"
        );
        let out = pe
            .execute_block(&exec, &txs, &env(), base)
            .expect("fallback");
        assert!(out.stats.sequential_fallback, "{lie:?}");
        assert_eq!(pe.sequential_fallbacks(), 1);
        assert_same(&out, &seq, &format!("{lie:?}"));
    }
}

/// A block with one transaction that does not declare runs with Block-STM as before.
#[test]
fn one_undeclared_transaction_means_block_stm() {
    let exec = Liar(SyntheticExecutor::declaring(), Lie::TogglesUndeclared);
    let mut txs = generate_block(3, 10_000, 500, 100);
    txs.push(SynthTx::Toggle { key: 3 });
    let pe = &executors()[3];
    assert!(pe
        .execute_block_declared(&exec, &txs, &env(), base(10_000))
        .expect("no error")
        .is_none());
    let seq = execute_block_sequential(&exec, &txs, &env(), base(10_000)).expect("seq");
    let out = pe
        .execute_block(&exec, &txs, &env(), base(10_000))
        .expect("Block-STM");
    assert_eq!(out.stats.declared_runs, 0);
    assert_same(&out, &seq, "undeclared");
}

/// With the graph turned off, declaring blocks run as before (Block-STM or sequentially),
/// with the same result; turned back on, the graph runs again.
#[test]
fn the_graph_can_be_turned_off() {
    let exec = SyntheticExecutor::declaring();
    let txs = generate_block(21, 10_000, 2_000, 60);
    let seq = execute_block_sequential(&exec, &txs, &env(), base(10_000)).expect("seq");
    let pe = ParallelExecutor::new(6).expect("pool");
    pe.set_declared_graph(false);
    assert!(!pe.wants_plans());
    let off = pe
        .execute_block(&exec, &txs, &env(), base(10_000))
        .expect("off");
    assert_eq!(off.stats.declared_runs, 0);
    assert_same(&off, &seq, "graph off");
    pe.set_declared_graph(true);
    let on = pe
        .execute_block(&exec, &txs, &env(), base(10_000))
        .expect("on");
    assert_eq!(on.stats.declared_runs, 1);
    assert_same(&on, &seq, "graph on");
}

/// A graph run whose workers waited for pool threads busy with other work (in the node: a
/// proof batch checked on the CPU) is judged by the workers' own time, not by that wait: the
/// next block still runs on the graph. (Judged by wall time, as before 2026-12-07, the busy
/// run counted as too slow and the next seven blocks ran sequentially.)
#[test]
fn a_busy_pool_does_not_send_the_next_blocks_sequential() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    // Transactions that cost something (SHA-256 rounds), so that the block's work, not
    // planning and sorting on the one free thread, is what the verdict weighs.
    let exec = SyntheticExecutor {
        work: 30,
        declare: true,
    };
    let txs = generate_block(77, 10_000, 1_000, 60);
    let base = base(10_000);
    let seq = execute_block_sequential(&exec, &txs, &env(), base).expect("seq");
    let pe = ParallelExecutor::new(8).expect("pool");
    let warm = pe.execute_block(&exec, &txs, &env(), base).expect("warm");
    assert_eq!(warm.stats.declared_runs, 1, "the graph ran");
    // Seven of the pool's eight threads busy for longer than the block takes.
    let busy = Arc::new(AtomicUsize::new(0));
    for _ in 0..7 {
        let busy = Arc::clone(&busy);
        pe.pool().spawn(move || {
            busy.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1_500));
        });
    }
    while busy.load(Ordering::SeqCst) < 7 {
        std::thread::yield_now();
    }
    let out = pe
        .execute_block(&exec, &txs, &env(), base)
        .expect("busy pool");
    assert_same(&out, &seq, "busy pool");
    assert_eq!(
        out.stats.declared_runs, 1,
        "the graph ran on the free thread"
    );
    assert!(
        out.stats.effective_parallel_ns < out.stats.parallel_ns,
        "the workers that waited for a thread count only from their start"
    );
    let next = pe.execute_block(&exec, &txs, &env(), base).expect("next");
    assert_same(&next, &seq, "after a busy pool");
    assert_eq!(next.stats.probe_skips, 0, "not skipped to sequential");
    assert_eq!(next.stats.declared_runs, 1, "the graph still runs");
}
