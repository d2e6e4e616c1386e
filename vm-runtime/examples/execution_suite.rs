//! Runs the execution benchmark suite and prints a table (and JSON records with `--json`).
//!
//! ```text
//! cargo run --release -p vm-runtime --example execution_suite [-- --quick] [--json FILE]
//! ```
//! `--quick`: 2,000-transaction blocks and 3 repeats (for small machines).
//! `SUPERVM_BENCH_THREADS=1,2,4`, `SUPERVM_BENCH_ACCOUNTS=2,10000`,
//! `SUPERVM_BENCH_WORKLOADS=token,native` and `SUPERVM_BENCH_REPEATS=N` override the defaults.
//! Diagnosis: `SUPERVM_BENCH_PHASES=1` prints each timed block's phases (stderr),
//! `SUPERVM_EXEC_PROFILE=1` adds where the workers' time went, and
//! `SUPERVM_BENCH_FORCE_PARALLEL=1` runs Block-STM on whole blocks instead of the adaptive
//! executor. `SUPERVM_BENCH_CEILING=1` adds `-ceiling` rows: the sequential block run on t
//! threads at once, each its own copy, the most t cores of this machine give to perfectly
//! independent work, and `alu` rows: a register-only loop on 1 and on t threads at once (what
//! the cores give to work that shares nothing at all). Sequential and parallel runs alternate
//! round by round (medians reported).

/// The allocator the `supervm` node runs with, so these figures match the node's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use vm_runtime::bench::{execution_suite, format_report, ExecutionBenchOptions, Workload};

fn main() -> anyhow::Result<()> {
    // The node's allocator setting (`vm_runtime::alloc_tuning`), so these figures match it.
    vm_runtime::alloc_tuning::tune_mimalloc();
    let args: Vec<String> = std::env::args().collect();
    let mut opts = ExecutionBenchOptions::default();
    if args.iter().any(|a| a == "--quick") {
        opts.block_size = 2_000;
        opts.repeats = 3;
        opts.latency_iters = 5_000;
    }
    if let Ok(t) = std::env::var("SUPERVM_BENCH_THREADS") {
        opts.threads = t.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    }
    if let Ok(a) = std::env::var("SUPERVM_BENCH_ACCOUNTS") {
        opts.accounts = a.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    }
    if let Ok(w) = std::env::var("SUPERVM_BENCH_WORKLOADS") {
        opts.workloads = w
            .split(',')
            .filter_map(|x| match x.trim() {
                "token" => Some(Workload::Token),
                "native" => Some(Workload::Native),
                "token-declared" => Some(Workload::TokenDeclared),
                _ => None,
            })
            .collect();
    }
    if let Ok(r) = std::env::var("SUPERVM_BENCH_REPEATS") {
        opts.repeats = r.trim().parse().unwrap_or(opts.repeats);
    }
    let records = execution_suite(&opts)?;
    println!("{}", format_report(&records));
    if let Some(i) = args.iter().position(|a| a == "--json") {
        let path = args
            .get(i + 1)
            .ok_or_else(|| anyhow::anyhow!("--json needs a file name"))?;
        let lines: Vec<String> = records
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()?;
        std::fs::write(path, lines.join("\n") + "\n")?;
    }
    Ok(())
}
