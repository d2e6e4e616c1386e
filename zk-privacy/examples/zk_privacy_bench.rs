//! `cargo run --release -p zk-privacy --example zk_privacy_bench [--features cuda,opencl]`
//!
//! Environment: `ZK_BENCH_DEPTH` (default 20), `ZK_BENCH_LOGS` (square-chain sizes, comma
//! separated, default 16), `ZK_BENCH_VERIFY` (batch sizes, default 1,64,1024,8192),
//! `ZK_BENCH_REPS` (default 3), `ZK_BENCH_THREADS` (0 = all), `ZK_BENCH_PROVE_BATCH`
//! (default 8). Prints one JSON `BenchRecord` per line.

use zk_privacy::bench::{groth16_suite, privacy_verify_suite, BenchOptions};

fn env_list(name: &str) -> Option<Vec<u64>> {
    std::env::var(name)
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

fn main() -> anyhow::Result<()> {
    let mut opts = BenchOptions::default();
    if let Some(d) = env_num("ZK_BENCH_DEPTH") {
        opts.depth = d as usize;
    }
    if let Some(l) = env_list("ZK_BENCH_LOGS") {
        opts.square_chain_log_sizes = l.into_iter().map(|x| x as u32).collect();
    }
    if let Some(v) = env_list("ZK_BENCH_VERIFY") {
        opts.verify_batch_sizes = v.into_iter().map(|x| x as usize).collect();
    }
    if let Some(r) = env_num("ZK_BENCH_REPS") {
        opts.reps = r as usize;
    }
    if let Some(t) = env_num("ZK_BENCH_THREADS") {
        opts.cpu_threads = t as usize;
    }
    if let Some(b) = env_num("ZK_BENCH_PROVE_BATCH") {
        opts.prove_batch = b as usize;
    }
    let only = std::env::args().nth(1).unwrap_or_default();
    let mut records = Vec::new();
    if only.is_empty() || only == "verify" {
        records.extend(privacy_verify_suite(&opts)?);
    }
    if only.is_empty() || only == "prove" {
        records.extend(groth16_suite(&opts)?);
    }
    for r in records {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}
