//! Block-STM scheduler overhead with the synthetic executor: blocks of 10,000 transactions
//! (transfers, or the mixed workload) at 2, 100 and 10,000 keys, sequential vs parallel at
//! `SUPERVM_BENCH_THREADS` (default "1,2") threads. `SUPERVM_BENCH_WORK` adds SHA-256 rounds
//! per transaction (default 0: pure scheduler + MVCC overhead).
//!
//! Run: `cargo bench -p vm-state --bench blockstm`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vm_state::testing::{generate_block, genesis, SyntheticExecutor};
use vm_state::{execute_block_sequential, BlockEnv, ParallelExecutor};

fn threads() -> Vec<usize> {
    std::env::var("SUPERVM_BENCH_THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}

fn bench(c: &mut Criterion) {
    let work = std::env::var("SUPERVM_BENCH_WORK")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    let exec = SyntheticExecutor {
        work,
        declare: false,
    };
    let env = BlockEnv {
        number: 1,
        timestamp: 0,
        chain_id: 1,
    };
    let executors: Vec<(usize, ParallelExecutor)> = threads()
        .into_iter()
        .filter_map(|t| ParallelExecutor::new(t).ok().map(|e| (t, e)))
        .collect();
    for (workload, transfer_pct) in [("transfers", 100u32), ("mixed", 50)] {
        let mut group = c.benchmark_group(format!("blockstm_{workload}_work{work}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1));
        for universe in [2u32, 100, 10_000] {
            let base = genesis(universe, 1_000_000);
            let txs = generate_block(universe as u64, universe, 10_000, transfer_pct);
            group.throughput(Throughput::Elements(txs.len() as u64));
            group.bench_function(BenchmarkId::new("sequential", universe), |b| {
                b.iter(|| execute_block_sequential(&exec, &txs, &env, &base).expect("block"))
            });
            for (t, pe) in &executors {
                group.bench_function(BenchmarkId::new(format!("parallel_t{t}"), universe), |b| {
                    b.iter(|| pe.execute_block(&exec, &txs, &env, &base).expect("block"))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
