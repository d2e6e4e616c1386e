//! Block-STM against the sequential oracle on random blocks of the synthetic executor.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use vm_state::testing::{generate_block, genesis, key, SynthTx, SynthWorker, SyntheticExecutor};
use vm_state::{
    execute_block_sequential, root, BlockEnv, BlockOutput, ParallelExecutor, ReadError, Receipt,
    StateKey, StateReader, StateValue, StateView, TxExecutor, VmStateError,
};

use crate::stress;

pub(crate) const UNIVERSES: [u32; 4] = [2, 10, 100, 10_000];

pub(crate) fn executors() -> &'static [ParallelExecutor] {
    static EXECS: OnceLock<Vec<ParallelExecutor>> = OnceLock::new();
    EXECS.get_or_init(|| {
        (1..=8)
            .map(|t| ParallelExecutor::new(t).expect("thread pool"))
            .collect()
    })
}

pub(crate) fn base(universe: u32) -> &'static BTreeMap<StateKey, StateValue> {
    static BASES: OnceLock<Vec<BTreeMap<StateKey, StateValue>>> = OnceLock::new();
    let bases = BASES.get_or_init(|| UNIVERSES.iter().map(|&u| genesis(u, 1_000)).collect());
    let i = UNIVERSES
        .iter()
        .position(|&u| u == universe)
        .expect("known universe");
    &bases[i]
}

fn state_root_after(base: &BTreeMap<StateKey, StateValue>, ws: &vm_state::WriteSet) -> [u8; 32] {
    let mut state = base.clone();
    for (k, v) in ws {
        match v {
            Some(v) => {
                state.insert(k.clone(), v.clone());
            }
            None => {
                state.remove(k);
            }
        }
    }
    root::state_root_of(state.iter().map(|(k, v)| (k.as_bytes(), &v[..])))
}

pub(crate) fn env() -> BlockEnv {
    BlockEnv {
        number: 42,
        timestamp: 1_700_000_000,
        chain_id: 7,
    }
}

pub(crate) fn assert_same(par: &BlockOutput, seq: &BlockOutput, ctx: &str) {
    assert_eq!(par.receipts, seq.receipts, "receipts differ ({ctx})");
    assert_eq!(par.write_set, seq.write_set, "write sets differ ({ctx})");
}

/// Runs `txs` sequentially once and in parallel `repeats` times on each of `threads`, with no
/// sequential fallback allowed, and compares receipts, write sets and state roots.
fn check_block(
    universe: u32,
    txs: &[SynthTx],
    threads: &[usize],
    repeats: u32,
) -> Result<(), TestCaseError> {
    let exec = SyntheticExecutor::default();
    let base = base(universe);
    let seq = execute_block_sequential(&exec, txs, &env(), base)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let seq_root = state_root_after(base, &seq.write_set);
    for &t in threads {
        let pe = &executors()[t - 1];
        for r in 0..repeats {
            let par = pe
                .execute_block_parallel(&exec, txs, &env(), base)
                .map_err(|e| TestCaseError::fail(format!("threads {t}: {e}")))?;
            prop_assert_eq!(
                &par.receipts,
                &seq.receipts,
                "receipts, threads {}, run {}",
                t,
                r
            );
            prop_assert_eq!(
                &par.write_set,
                &seq.write_set,
                "write set, threads {}, run {}",
                t,
                r
            );
            prop_assert_eq!(state_root_after(base, &par.write_set), seq_root);
            prop_assert!(!par.stats.sequential_fallback);
            prop_assert!(par.stats.executions >= txs.len() as u64);
        }
    }
    Ok(())
}

pub(crate) fn tx(universe: u32) -> impl Strategy<Value = SynthTx> {
    prop_oneof![
        4 => (0..universe, 0..universe, 0u64..1_500).prop_map(|(from, to, amount)| SynthTx::Transfer { from, to, amount }),
        2 => (proptest::collection::vec(0..universe, 0..5), proptest::collection::vec(0..universe, 1..4), any::<u64>())
            .prop_map(|(reads, writes, salt)| SynthTx::Mix { reads, writes, salt }),
        1 => (0..universe).prop_map(|key| SynthTx::Toggle { key }),
    ]
}

pub(crate) fn block(universe: u32) -> impl Strategy<Value = (Vec<SynthTx>, usize)> {
    (proptest::collection::vec(tx(universe), 0..120), 1usize..=8)
}

/// `check_block` for one thread count, repeated (`universe_prop!`).
fn check_universe(universe: u32, txs: &[SynthTx], threads: usize) -> Result<(), TestCaseError> {
    check_block(universe, txs, &[threads], 3 * stress())
}

universe_prop!(parallel_equals_sequential_2_keys, 2, 40, check_universe);
universe_prop!(parallel_equals_sequential_10_keys, 10, 40, check_universe);
universe_prop!(parallel_equals_sequential_100_keys, 100, 30, check_universe);
universe_prop!(
    parallel_equals_sequential_10000_keys,
    10_000,
    12,
    check_universe
);

/// The adaptive executor on blocks large enough for its watched Block-STM run (more than
/// four workers) and its timed probes (fewer): whichever mode it picks, and whether the
/// conflict probe stops Block-STM or not, the result is the sequential one.
#[test]
fn adaptive_blocks_equal_sequential() {
    let exec = SyntheticExecutor::default();
    for (i, &u) in UNIVERSES.iter().enumerate() {
        let base = base(u);
        let txs = generate_block(1000 + i as u64, u, 2_500, 70);
        let seq = execute_block_sequential(&exec, &txs, &env(), base).expect("sequential");
        for t in [2, 3, 5, 8] {
            for r in 0..stress() {
                let out = executors()[t - 1]
                    .execute_block(&exec, &txs, &env(), base)
                    .expect("adaptive");
                assert_same(&out, &seq, &format!("universe {u}, threads {t}, run {r}"));
                assert!(!out.stats.sequential_fallback);
            }
        }
    }
}

/// Larger blocks, every thread count 1..=8, every universe.
#[test]
fn larger_blocks_every_thread_count() {
    let threads: Vec<usize> = (1..=8).collect();
    for (i, &u) in UNIVERSES.iter().enumerate() {
        for seed in 0..u64::from(stress()) {
            let txs = generate_block(seed * 31 + i as u64, u, 400, 60);
            check_block(u, &txs, &threads, 2).expect("parallel == sequential");
        }
    }
}

#[test]
fn empty_block() {
    let pe = &executors()[3];
    let out = pe
        .execute_block(&SyntheticExecutor::default(), &[], &env(), base(2))
        .expect("empty block");
    assert!(out.receipts.is_empty() && out.write_set.is_empty());
}

/// Wraps the synthetic executor; misbehaves on the first `bad_calls` executions.
struct Faulty {
    inner: SyntheticExecutor,
    calls: AtomicU32,
    bad_calls: u32,
    mode: Fault,
}

#[derive(Clone, Copy)]
enum Fault {
    /// Returns a dependency on a transaction its view never reported.
    InventedDependency,
    /// Panics.
    Panic,
}

impl TxExecutor for Faulty {
    type Tx = SynthTx;
    type Worker = SynthWorker;
    fn new_worker(&self) -> SynthWorker {
        self.inner.new_worker()
    }
    fn execute(
        &self,
        w: &mut SynthWorker,
        tx: &SynthTx,
        env: &BlockEnv,
        view: &mut dyn StateView,
    ) -> Result<Receipt, ReadError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.bad_calls {
            match self.mode {
                Fault::InventedDependency => return Err(ReadError::Dependency(usize::MAX)),
                Fault::Panic => panic!("faulty executor"),
            }
        }
        self.inner.execute(w, tx, env, view)
    }
}

#[test]
fn broken_invariant_falls_back_to_sequential() {
    let txs = generate_block(5, 10, 50, 70);
    let seq = execute_block_sequential(&SyntheticExecutor::default(), &txs, &env(), base(10))
        .expect("seq");
    for mode in [Fault::InventedDependency, Fault::Panic] {
        let pe = ParallelExecutor::new(2).expect("pool");
        let faulty = Faulty {
            inner: SyntheticExecutor::default(),
            calls: AtomicU32::new(0),
            bad_calls: 1,
            mode,
        };
        let before = vm_state::global_sequential_fallbacks();
        let out = pe
            .execute_block(&faulty, &txs, &env(), base(10))
            .expect("fallback result");
        assert!(out.stats.sequential_fallback);
        assert_eq!(pe.sequential_fallbacks(), 1);
        assert!(vm_state::global_sequential_fallbacks() > before);
        assert_same(&out, &seq, "fallback");
    }
}

#[test]
fn executor_that_always_panics_is_an_error() {
    let txs = generate_block(1, 10, 5, 100);
    let pe = ParallelExecutor::new(2).expect("pool");
    let faulty = Faulty {
        inner: SyntheticExecutor::default(),
        calls: AtomicU32::new(0),
        bad_calls: u32::MAX,
        mode: Fault::Panic,
    };
    let err = pe
        .execute_block(&faulty, &txs, &env(), base(10))
        .expect_err("must fail");
    assert!(matches!(err, VmStateError::ExecutorPanic { .. }), "{err}");
}

struct FailingReader;
impl StateReader for FailingReader {
    fn get(&self, _: &StateKey) -> vm_state::Result<Option<StateValue>> {
        Err(VmStateError::Storage("disk on fire".into()))
    }
}

#[test]
fn storage_errors_are_returned() {
    let txs = generate_block(2, 10, 20, 100);
    let pe = ParallelExecutor::new(2).expect("pool");
    let exec = SyntheticExecutor::default();
    let err = pe
        .execute_block(&exec, &txs, &env(), &FailingReader)
        .expect_err("must fail");
    assert!(matches!(err, VmStateError::Storage(_)), "{err}");
    assert_eq!(pe.sequential_fallbacks(), 0);
    // The declared-access path returns them too, never re-running the block.
    let declaring = SyntheticExecutor::declaring();
    let many = generate_block(2, 10_000, 400, 100);
    let err = pe
        .execute_block(&declaring, &many, &env(), &FailingReader)
        .expect_err("must fail");
    assert!(matches!(err, VmStateError::Storage(_)), "{err}");
    assert_eq!(pe.sequential_fallbacks(), 0);
    let err = execute_block_sequential(&exec, &txs, &env(), &FailingReader).expect_err("must fail");
    assert!(matches!(err, VmStateError::Storage(_)), "{err}");
}

#[test]
fn shared_pool_and_synthetic_semantics() {
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool"),
    );
    let pe = ParallelExecutor::with_pool(pool, 3);
    // 0 -> 1 twice, then an overdraft that must revert.
    let txs = vec![
        SynthTx::Transfer {
            from: 0,
            to: 1,
            amount: 600,
        },
        SynthTx::Transfer {
            from: 0,
            to: 1,
            amount: 600,
        },
        SynthTx::Transfer {
            from: 1,
            to: 0,
            amount: 100,
        },
    ];
    let out = pe
        .execute_block(&SyntheticExecutor::default(), &txs, &env(), base(2))
        .expect("block");
    assert_eq!(out.receipts[1].status, vm_state::TxStatus::Revert);
    let bal = |k: u32| {
        let v = out.write_set[&key(k)].clone().expect("live");
        u64::from_le_bytes(v[..8].try_into().expect("8 bytes"))
    };
    assert_eq!((bal(0), bal(1)), (500, 1500));
}
