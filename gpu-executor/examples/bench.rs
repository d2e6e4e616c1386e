//! Runs the hash and Merkle benchmark suites and prints one JSON record per line
//! (`cargo run --release --example bench --features cuda,opencl -- [hash|merkle|all]
//! [--max-log2 N] [--repeats R] [--include-cpu-opencl]`).
use gpu_executor::bench::{hash_suite, merkle_suite, BenchOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = BenchOptions::default();
    let mut which = "all".to_string();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--max-log2" => {
                i += 1;
                let m: u32 = args.get(i).ok_or("--max-log2 N")?.parse()?;
                opts.sizes = (10..=m).step_by(2).map(|k| 1usize << k).collect();
            }
            "--repeats" => {
                i += 1;
                opts.repeats = args.get(i).ok_or("--repeats R")?.parse()?;
            }
            "--include-cpu-opencl" => opts.include_cpu_opencl = true,
            "--cpu-max-log2" => {
                i += 1;
                let m: u32 = args.get(i).ok_or("--cpu-max-log2 N")?.parse()?;
                opts.cpu_max_batch = 1usize << m;
            }
            other => which = other.to_string(),
        }
        i += 1;
    }
    let mut records = Vec::new();
    if which == "hash" || which == "all" {
        records.extend(hash_suite(&opts)?);
    }
    if which == "merkle" || which == "all" {
        records.extend(merkle_suite(&opts)?);
    }
    for r in &records {
        println!("{}", serde_json::to_string(r)?);
    }
    Ok(())
}
