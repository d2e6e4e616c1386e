//! The execution benchmark suite (`supervm bench execution`, `cargo run --release -p
//! vm-runtime --example execution_suite`, and the criterion bench `benches/execution.rs`).
//!
//! Blocks of token-contract transfers and of native transfers over a fixed number of
//! accounts, executed with vm-state's sequential executor (the baseline) and its Block-STM
//! parallel executor at several thread counts; plus the latency of one contract call on a
//! fresh instance and on a reused (reset) instance. Every parallel result is checked against
//! the sequential one before it is reported.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_api::BenchRecord;
use serde::{Deserialize, Serialize};
use vm_state::{
    execute_block_sequential, Account, Address, BlockEnv, ParallelExecutor, StateKey, StateValue,
};

use crate::contracts;
use crate::instance::{CallRequest, VmWorker};
use crate::tx::{address_of, contract_address, AccessList, Transaction, TxKind};
use crate::vm::Vm;
use crate::{VmConfig, VmError, VmExecutor};

/// What a block is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Workload {
    /// `transfer(to, 1)` calls of the token contract.
    Token,
    /// Native transfers of 1 unit.
    Native,
    /// The same token calls, each declaring its two balance slots (`TxKind::Call::access`):
    /// the block runs on the dependency graph of declared keys instead of Block-STM.
    TokenDeclared,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Token => "token",
            Workload::Native => "native",
            Workload::TokenDeclared => "token-declared",
        }
    }
}

/// Options of [`execution_suite`]; the defaults are the issue's benchmark.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecutionBenchOptions {
    /// Transactions per block. Default: 10,000.
    pub block_size: usize,
    /// Account counts (the conflict level: 2 is nearly serial). Default: 2, 100, 10,000.
    pub accounts: Vec<usize>,
    /// Thread counts of the parallel executor, capped at the available cores.
    /// Default: 1, 2, 4, 8, 16.
    pub threads: Vec<usize>,
    /// Workloads. Default: token and native.
    pub workloads: Vec<Workload>,
    /// Timed runs per configuration (the median is reported). Default: 5.
    pub repeats: usize,
    /// Calls per latency measurement. Default: 20,000.
    pub latency_iters: usize,
}

impl Default for ExecutionBenchOptions {
    fn default() -> Self {
        Self {
            block_size: 10_000,
            accounts: vec![2, 100, 10_000],
            threads: vec![1, 2, 4, 8, 16],
            workloads: vec![Workload::Token, Workload::Native],
            repeats: 5,
            latency_iters: 20_000,
        }
    }
}

/// Errors of the suite.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error("block execution failed: {0}")]
    Block(String),
    #[error("parallel result differs from sequential ({0})")]
    Mismatch(String),
}

/// A prepared benchmark block: genesis state, transactions and the executor.
pub struct BenchBlock {
    pub exec: VmExecutor,
    pub state: BTreeMap<StateKey, StateValue>,
    pub env: BlockEnv,
    pub txs: Vec<Transaction>,
}

const CHAIN_ID: u64 = 1;

fn bench_pubkey(i: usize) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&(i as u64).to_le_bytes());
    k[31] = 0xb5;
    k
}

/// Builds a block of `block_size` transfers of `workload` among `accounts` accounts (sender
/// `i % accounts`, recipient a pseudo-random other account, fixed by `i`), with genesis
/// balances for all of them. The
/// token is deployed at `contract_address([0; 20], 0)` by writing its code to genesis state.
pub fn prepare_block(
    vm: &Arc<Vm>,
    workload: Workload,
    accounts: usize,
    block_size: usize,
) -> Result<BenchBlock, BenchError> {
    let accounts = accounts.max(1);
    let exec = VmExecutor::new(Arc::clone(vm));
    let mut state = BTreeMap::new();
    let code = contracts::token_wasm();
    let contract = vm.compile(&code)?;
    let token: Address = contract_address(&[0; 20], 0);
    let hash = contract.code_hash();
    state.insert(StateKey::code(&token), StateValue::from(&hash[..]));
    state.insert(StateKey::code_blob(&hash), StateValue::from(&code[..]));
    let pubkeys: Vec<[u8; 32]> = (0..accounts).map(bench_pubkey).collect();
    let addrs: Vec<Address> = pubkeys.iter().map(address_of).collect();
    for a in &addrs {
        let funded = Account {
            nonce: 0,
            balance: u128::from(u64::MAX),
        };
        state.insert(StateKey::account(a), funded.encode());
        state.insert(
            StateKey::storage(&token, &contracts::token_balance_key(a)),
            StateValue::from(&1_000_000_000u128.to_le_bytes()[..]),
        );
    }
    let mut nonces = vec![0u64; accounts];
    let txs = (0..block_size)
        .map(|i| {
            let from = i % accounts;
            let to = if accounts > 1 {
                let r = (splitmix64(i as u64) % (accounts as u64 - 1)) as usize;
                addrs[(from + 1 + r) % accounts]
            } else {
                addrs[from]
            };
            let kind = match workload {
                Workload::Token => TxKind::Call {
                    contract: token,
                    input: contracts::token_transfer_input(&to, 1),
                    value: 0,
                    access: None,
                },
                Workload::TokenDeclared => TxKind::Call {
                    contract: token,
                    input: contracts::token_transfer_input(&to, 1),
                    value: 0,
                    access: Some(AccessList::writes(vec![
                        contracts::token_balance_key(&addrs[from]),
                        contracts::token_balance_key(&to),
                    ])),
                },
                Workload::Native => TxKind::Transfer { to, amount: 1 },
            };
            let nonce = nonces[from];
            nonces[from] += 1;
            Transaction::new_unsigned(CHAIN_ID, pubkeys[from], nonce, 100_000, 1, kind)
        })
        .collect();
    Ok(BenchBlock {
        exec,
        state,
        env: BlockEnv {
            number: 1,
            timestamp: 1_700_000_000,
            chain_id: CHAIN_ID,
        },
        txs,
    })
}

/// SplitMix64: a fixed pseudo-random sequence, so every run benchmarks the same block.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The CPU model, from `/proc/cpuinfo` where there is one.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn record(case: String, batch: usize, time: Duration, threads: usize, device: &str) -> BenchRecord {
    let secs = time.as_secs_f64().max(1e-12);
    BenchRecord {
        suite: "execution".into(),
        case,
        backend: "cpu".into(),
        device: device.to_string(),
        batch: batch as u64,
        items_per_sec: batch as f64 / secs,
        median_ms: secs * 1e3,
        cpu_threads: threads,
    }
}

/// Runs the suite. Block cases are named `{token|native}-{N}acct-seq` (sequential
/// baseline, `cpu_threads` 1) and `{token|native}-{N}acct-par` (Block-STM, `cpu_threads`
/// threads); latency cases are `call-trivial-fresh-instance`, `call-trivial-reused-instance`
/// and `call-token-transfer-reused-instance` (`median_ms` per call). [`speedups`] derives
/// the parallel speed-ups.
pub fn execution_suite(opts: &ExecutionBenchOptions) -> Result<Vec<BenchRecord>, BenchError> {
    let vm = Arc::new(Vm::new(VmConfig::default())?);
    let device = cpu_name();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads: Vec<usize> = opts.threads.iter().map(|&t| t.clamp(1, cores)).collect();
    threads.sort_unstable();
    threads.dedup();
    let repeats = opts.repeats.max(1);
    // SUPERVM_BENCH_CEILING: the same sequential block run on t threads at once, each its
    // own copy: what t cores give to perfectly independent work here (no executor can beat
    // it), to tell Block-STM's overhead from the machine's limit.
    let ceiling_threads: Vec<usize> = if std::env::var_os("SUPERVM_BENCH_CEILING").is_some() {
        threads.iter().copied().filter(|&t| t > 1).collect()
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for &workload in &opts.workloads {
        for &accounts in &opts.accounts {
            // Fresh executors per kind of block: an executor remembers a recent probe
            // verdict (`ParallelExecutor::execute_block`), which belongs to its own stream
            // of blocks.
            let executors: Vec<ParallelExecutor> = threads
                .iter()
                .map(|&t| ParallelExecutor::new(t).map_err(|e| BenchError::Block(e.to_string())))
                .collect::<Result<_, _>>()?;
            let b = prepare_block(&vm, workload, accounts, opts.block_size)?;
            let name = format!("{}-{accounts}acct", workload.name());
            let run_seq = || {
                execute_block_sequential(&b.exec, &b.txs, &b.env, &b.state)
                    .map_err(|e| BenchError::Block(e.to_string()))
            };
            let reference = run_seq()?;
            // SUPERVM_BENCH_FORCE_PARALLEL: Block-STM for the whole block, no adaptive
            // executor (diagnosis; the reported figures use the adaptive executor).
            let force = std::env::var_os("SUPERVM_BENCH_FORCE_PARALLEL").is_some();
            let phases = std::env::var_os("SUPERVM_BENCH_PHASES").is_some();
            // SUPERVM_BENCH_FORCE_DECLARED: the declared-access graph alone, at any thread
            // count (diagnosis; blocks that do not declare fall back to the adaptive path).
            let force_declared = std::env::var_os("SUPERVM_BENCH_FORCE_DECLARED").is_some();
            let run_par = |par: &ParallelExecutor| {
                if force {
                    par.execute_block_parallel(&b.exec, &b.txs, &b.env, &b.state)
                } else if force_declared {
                    match par.execute_block_declared(&b.exec, &b.txs, &b.env, &b.state) {
                        Ok(Some(out)) => Ok(out),
                        Ok(None) => par.execute_block(&b.exec, &b.txs, &b.env, &b.state),
                        Err(e) => Err(e),
                    }
                } else {
                    par.execute_block(&b.exec, &b.txs, &b.env, &b.state)
                }
                .map_err(|e| BenchError::Block(e.to_string()))
            };
            for par in &executors {
                let first = run_par(par)?;
                if first.receipts != reference.receipts || first.write_set != reference.write_set {
                    return Err(BenchError::Mismatch(format!(
                        "{name}, {} threads",
                        par.threads()
                    )));
                }
            }
            // Rounds of one sequential run and one run per thread count, interleaved, so
            // that a slow phase of a shared host affects every configuration alike.
            let mut seq_times = Vec::with_capacity(repeats);
            let mut par_times: Vec<Vec<Duration>> =
                vec![Vec::with_capacity(repeats); executors.len()];
            let ceilings: Vec<Ceiling> = ceiling_threads
                .iter()
                .map(|&t| Ceiling::new(&vm, &b, t))
                .collect::<Result<_, _>>()?;
            let mut ceiling_times: Vec<Vec<Duration>> =
                vec![Vec::with_capacity(repeats); ceiling_threads.len()];
            for _ in 0..repeats {
                for (i, c) in ceilings.iter().enumerate() {
                    vm_state::wait_for_freed_memory();
                    ceiling_times[i].push(c.run(&b)?);
                }
                // Each timed run starts once the blocks before it are freed (the executor
                // frees a block's memory on a thread of its own, which would otherwise run
                // during the next timed run).
                vm_state::wait_for_freed_memory();
                let t = Instant::now();
                run_seq()?;
                seq_times.push(t.elapsed());
                for (i, par) in executors.iter().enumerate() {
                    vm_state::wait_for_freed_memory();
                    let t = Instant::now();
                    let o = run_par(par)?;
                    par_times[i].push(t.elapsed());
                    if phases {
                        print_phases(&name, par.threads(), t.elapsed(), &o.stats);
                    }
                }
            }
            out.push(record(
                format!("{name}-seq"),
                b.txs.len(),
                median(seq_times),
                1,
                &device,
            ));
            for (&t, times) in ceiling_threads.iter().zip(ceiling_times) {
                out.push(record(
                    format!("{name}-ceiling"),
                    b.txs.len() * t,
                    median(times),
                    t,
                    &device,
                ));
            }
            for (par, times) in executors.iter().zip(par_times) {
                out.push(record(
                    format!("{name}-par"),
                    b.txs.len(),
                    median(times),
                    par.threads(),
                    &device,
                ));
            }
        }
    }
    if !ceiling_threads.is_empty() {
        out.extend(alu_ceiling(&ceiling_threads, repeats, &device));
    }
    out.extend(call_latency(
        &vm,
        opts.latency_iters.max(1),
        repeats,
        &device,
    )?);
    Ok(out)
}

/// The sequential block on `t` threads at once (`SUPERVM_BENCH_CEILING`): a pool of `t`
/// threads made once, each thread with its own executor and its own deep copy of the state
/// (values are `Arc`s: shared ones would make the threads contend on their reference counts),
/// warmed by one untimed run on its own thread (thread-local allocator heaps, instances).
struct Ceiling {
    pool: rayon::ThreadPool,
    copies: Vec<(VmExecutor, BTreeMap<StateKey, StateValue>)>,
}

impl Ceiling {
    fn new(vm: &Arc<Vm>, b: &BenchBlock, t: usize) -> Result<Self, BenchError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .thread_name(|i| format!("ceiling-{i}"))
            .build()
            .map_err(|e| BenchError::Block(e.to_string()))?;
        let copies = (0..t)
            .map(|_| {
                // SUPERVM_BENCH_CEILING=own-vm: each thread also gets its own engine and
                // module cache, to tell engine contention from the machine.
                let exec = if std::env::var("SUPERVM_BENCH_CEILING").as_deref() == Ok("own-vm") {
                    VmExecutor::new(Vm::new(vm.config().clone()).map(Arc::new)?)
                } else {
                    VmExecutor::new(Arc::clone(vm))
                };
                let state = b
                    .state
                    .iter()
                    .map(|(k, v)| (k.clone(), StateValue::from(&v[..])))
                    .collect();
                Ok((exec, state))
            })
            .collect::<Result<_, BenchError>>()?;
        let c = Self { pool, copies };
        c.run(b)?;
        Ok(c)
    }

    /// Runs every copy at once, one per pool thread; the wall time until the last finished.
    fn run(&self, b: &BenchBlock) -> Result<Duration, BenchError> {
        let start = Instant::now();
        let results = self.pool.broadcast(|ctx| {
            let (exec, state) = &self.copies[ctx.index()];
            execute_block_sequential(exec, &b.txs, &b.env, state)
                .map(|_| ())
                .map_err(|e| BenchError::Block(e.to_string()))
        });
        let elapsed = start.elapsed();
        results.into_iter().collect::<Result<(), _>>()?;
        Ok(elapsed)
    }
}

/// Iterations of [`alu_work`] per run (about a second on one core of the dev machine).
const ALU_ITERS: u64 = 4_000_000_000;

/// A dependent multiply-add chain in registers: no memory, no allocation, nothing shared.
fn alu_work(iters: u64) -> u64 {
    let mut x = std::hint::black_box(1u64);
    for i in 0..iters {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
    }
    std::hint::black_box(x)
}

/// `SUPERVM_BENCH_CEILING`: the same register-only loop on 1 thread (`alu-seq`) and on each
/// of `multi` thread counts at once (`alu-ceiling`), the speed-up t cores give to work that
/// shares nothing at all.
fn alu_ceiling(multi: &[usize], repeats: usize, device: &str) -> Vec<BenchRecord> {
    let mut one = Vec::with_capacity(repeats);
    let mut many: Vec<Vec<Duration>> = vec![Vec::with_capacity(repeats); multi.len()];
    for _ in 0..repeats.min(3) {
        let t = Instant::now();
        alu_work(ALU_ITERS);
        one.push(t.elapsed());
        for (i, &n) in multi.iter().enumerate() {
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..n {
                    s.spawn(|| alu_work(ALU_ITERS));
                }
            });
            many[i].push(t.elapsed());
        }
    }
    let mut out = vec![record(
        "alu-seq".into(),
        ALU_ITERS as usize,
        median(one),
        1,
        device,
    )];
    for (&n, times) in multi.iter().zip(many) {
        out.push(record(
            "alu-ceiling".into(),
            ALU_ITERS as usize * n,
            median(times),
            n,
            device,
        ));
    }
    out
}

/// `SUPERVM_BENCH_PHASES`: where one block's time went.
fn print_phases(name: &str, threads: usize, total: Duration, s: &vm_state::ExecStats) {
    let p = &s.profile;
    eprintln!(
        "{name} {threads} thr: total {:.2} ms, plan {:.2} ms (depth {}, busy {:.2} ms), parallel {:.2} ms, finish {:.2} ms, sequential {:.2} ms; executions {} validations {} aborts {} waits {}; worker ms: execute {:.1} record {:.1} validate {:.1} schedule {:.1}; finish ms: collect {:.2} map {:.2}; bailouts {} probe skips {}",
        total.as_secs_f64() * 1e3,
        s.plan_ns as f64 / 1e6,
        s.graph_depth,
        s.profile.execute_ns as f64 / 1e6,
        s.parallel_ns as f64 / 1e6,
        s.finish_ns as f64 / 1e6,
        s.sequential_ns as f64 / 1e6,
        s.executions,
        s.validations,
        s.aborts,
        s.dependency_waits,
        p.execute_ns as f64 / 1e6,
        p.record_ns as f64 / 1e6,
        p.validate_ns as f64 / 1e6,
        p.schedule_ns as f64 / 1e6,
        p.collect_ns as f64 / 1e6,
        p.map_ns as f64 / 1e6,
        s.probe_bailouts,
        s.probe_skips,
    );
    if !s.steps.is_empty() {
        let steps: Vec<String> = s
            .steps
            .iter()
            .map(|(name, ns)| format!("{name} {:.3}", *ns as f64 / 1e6))
            .collect();
        eprintln!("{name} {threads} thr steps ms: {}", steps.join(", "));
    }
}

/// A contract whose `call` does nothing: measures the VM's fixed cost per call.
pub const TRIVIAL_WAT: &str = r#"(module (memory (export "memory") 1) (func (export "call")))"#;

fn call_latency(
    vm: &Arc<Vm>,
    iters: usize,
    repeats: usize,
    device: &str,
) -> Result<Vec<BenchRecord>, BenchError> {
    let trivial = contracts::wat(TRIVIAL_WAT).map_err(VmError::InvalidModule)?;
    let trivial = vm.compile(&trivial)?;
    let token = vm.compile(&contracts::token_wasm())?;
    let this: Address = [7; 20];
    let holder: Address = [1; 20];
    let mut state = BTreeMap::new();
    state.insert(
        StateKey::storage(&this, &contracts::token_balance_key(&holder)),
        StateValue::from(&u128::MAX.to_le_bytes()[..]),
    );
    let mut view = ReadOnlyView(&state);
    let transfer = contracts::token_transfer_input(&[2; 20], 1);
    let req = |input: &'static [u8]| CallRequest {
        caller: holder,
        contract: this,
        value: 0,
        input,
        gas_limit: 1_000_000,
        block_number: 1,
        timestamp: 0,
    };
    let mut out = Vec::new();
    let block_err = |e: vm_state::ReadError| BenchError::Block(e.to_string());

    // Fresh store + instance (from the cached InstancePre) + call, every time.
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        for _ in 0..iters {
            let mut w = VmWorker::new();
            w.run(vm, &trivial, &req(&[]), &mut view)
                .map_err(block_err)?;
        }
        times.push(t.elapsed() / iters as u32);
    }
    out.push(record(
        "call-trivial-fresh-instance".into(),
        1,
        median(times),
        1,
        device,
    ));

    for (case, contract, input) in [
        ("call-trivial-reused-instance", &trivial, &[][..]),
        ("call-token-transfer-reused-instance", &token, &transfer[..]),
    ] {
        let mut w = VmWorker::new();
        let req = CallRequest { input, ..req(&[]) };
        w.run(vm, contract, &req, &mut view).map_err(block_err)?;
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let t = Instant::now();
            for _ in 0..iters {
                w.run(vm, contract, &req, &mut view).map_err(block_err)?;
            }
            times.push(t.elapsed() / iters as u32);
        }
        out.push(record(case.into(), 1, median(times), 1, device));
    }
    Ok(out)
}

struct ReadOnlyView<'a>(&'a BTreeMap<StateKey, StateValue>);

impl vm_state::StateView for ReadOnlyView<'_> {
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, vm_state::ReadError> {
        Ok(self.0.get(key).cloned())
    }
    fn write(&mut self, _key: StateKey, _value: Option<StateValue>) {}
}

/// A parallel block case compared with its sequential baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpeedupRow {
    /// `{workload}-{N}acct`.
    pub case: String,
    pub threads: usize,
    pub tps: f64,
    /// Parallel TPS / sequential TPS.
    pub speedup: f64,
}

/// The speed-up of every `-par` record over its `-seq` record, and of every `-ceiling`
/// record (`SUPERVM_BENCH_CEILING`; its case is named `{base} ceiling`).
pub fn speedups(records: &[BenchRecord]) -> Vec<SpeedupRow> {
    records
        .iter()
        .filter_map(|r| {
            let (base, case) = match r.case.strip_suffix("-par") {
                Some(b) => (b, b.to_string()),
                None => {
                    let b = r.case.strip_suffix("-ceiling")?;
                    (b, format!("{b} ceiling"))
                }
            };
            let seq = records
                .iter()
                .find(|s| s.case.strip_suffix("-seq") == Some(base))?;
            Some(SpeedupRow {
                case,
                threads: r.cpu_threads,
                tps: r.items_per_sec,
                speedup: r.items_per_sec / seq.items_per_sec,
            })
        })
        .collect()
}

/// A plain-text table of the records and speed-ups.
pub fn format_report(records: &[BenchRecord]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<40} {:>7} {:>14} {:>12}",
        "case", "threads", "items/s", "median ms"
    );
    for r in records {
        let _ = writeln!(
            s,
            "{:<40} {:>7} {:>14.0} {:>12.4}",
            r.case, r.cpu_threads, r.items_per_sec, r.median_ms
        );
    }
    let _ = writeln!(
        s,
        "\n{:<24} {:>7} {:>14} {:>9}",
        "block", "threads", "TPS", "speed-up"
    );
    for row in speedups(records) {
        let _ = writeln!(
            s,
            "{:<24} {:>7} {:>14.0} {:>8.2}x",
            row.case, row.threads, row.tps, row.speedup
        );
    }
    s
}
