//! Criterion benches of block execution (token and native transfers, sequential vs
//! Block-STM at several thread counts) and of single-call latency.
//!
//! `cargo bench -p vm-runtime --bench execution`; `SUPERVM_BENCH_BLOCK` sets the block size
//! (default 10,000), `SUPERVM_BENCH_THREADS` the thread counts (default 1,2,4,8,16, capped at
//! the available cores). The full table with speed-ups: the `execution_suite` example.

use std::collections::BTreeMap;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vm_runtime::bench::{prepare_block, Workload, TRIVIAL_WAT};
use vm_runtime::vm_state::{execute_block_sequential, ParallelExecutor};
use vm_runtime::{contracts, CallRequest, StateKey, StateValue, StateView, Vm, VmConfig, VmWorker};

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn blocks(c: &mut Criterion) {
    let vm = Arc::new(Vm::new(VmConfig::default()).expect("engine"));
    let size = env_list("SUPERVM_BENCH_BLOCK", &[10_000])[0];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads: Vec<usize> = env_list("SUPERVM_BENCH_THREADS", &[1, 2, 4, 8, 16])
        .into_iter()
        .map(|t| t.clamp(1, cores))
        .collect();
    threads.dedup();
    for workload in [Workload::Token, Workload::Native] {
        for accounts in [2usize, 100, 10_000] {
            let b = prepare_block(&vm, workload, accounts, size).expect("block");
            let mut g = c.benchmark_group(format!("{workload:?}-{accounts}acct"));
            g.sample_size(10);
            g.throughput(Throughput::Elements(size as u64));
            g.bench_function("sequential", |bench| {
                bench.iter(|| {
                    execute_block_sequential(&b.exec, &b.txs, &b.env, &b.state).expect("run")
                })
            });
            for &t in &threads {
                let par = ParallelExecutor::new(t).expect("pool");
                g.bench_with_input(BenchmarkId::new("parallel", t), &t, |bench, _| {
                    bench.iter(|| {
                        par.execute_block(&b.exec, &b.txs, &b.env, &b.state)
                            .expect("run")
                    })
                });
            }
            g.finish();
        }
    }
}

struct View(BTreeMap<StateKey, StateValue>);

impl StateView for View {
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, vm_runtime::ReadError> {
        Ok(self.0.get(key).cloned())
    }
    fn write(&mut self, _key: StateKey, _value: Option<StateValue>) {}
}

fn latency(c: &mut Criterion) {
    let vm = Arc::new(Vm::new(VmConfig::default()).expect("engine"));
    let trivial = vm
        .compile(&contracts::wat(TRIVIAL_WAT).expect("wat"))
        .expect("compile");
    let token = vm.compile(&contracts::token_wasm()).expect("compile");
    let mut view = View(BTreeMap::new());
    let transfer = contracts::token_transfer_input(&[2; 20], 0);
    let req = |input| CallRequest {
        caller: [1; 20],
        contract: [7; 20],
        value: 0,
        input,
        gas_limit: 1_000_000,
        block_number: 1,
        timestamp: 0,
    };
    let mut g = c.benchmark_group("call");
    g.bench_function("trivial-fresh-instance", |b| {
        b.iter(|| {
            VmWorker::new()
                .run(&vm, &trivial, &req(&[]), &mut view)
                .expect("call")
        })
    });
    let mut w = VmWorker::new();
    g.bench_function("trivial-reused-instance", |b| {
        b.iter(|| w.run(&vm, &trivial, &req(&[]), &mut view).expect("call"))
    });
    g.bench_function("token-transfer-reused-instance", |b| {
        b.iter(|| {
            w.run(&vm, &token, &req(&transfer), &mut view)
                .expect("call")
        })
    });
    g.finish();
}

criterion_group!(benches, latency, blocks);
criterion_main!(benches);
