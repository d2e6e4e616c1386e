//! Signature benchmark: the `supervm bench ed25519|secp256k1` suites without the node.
//!
//! ```text
//! cargo run --release -p gpu-executor --features cuda,opencl --example sig_bench -- \
//!     [--suite ed25519|secp256k1|all] [--sizes 1024,65536,1048576] [--repeats 3] \
//!     [--cpu-max 65536] [--msg-len 128] [--opencl-cpu] [--ptx] [--group 128]
//! ```
//! `--cpu-max 0` skips the CPU measurements; `--ptx` uses the PTX field multiplication on CUDA.
//! Prints one JSON `BenchRecord` per line on stdout and a table on stderr.

use gpu_executor::sig::bench::{ed25519_suite, secp256k1_suite, SigBenchOptions};

fn main() -> anyhow::Result<()> {
    let mut opts = SigBenchOptions::default();
    let mut suite = "all".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--suite" => suite = val()?,
            "--sizes" => {
                opts.sizes = val()?
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<Result<_, _>>()?
            }
            "--repeats" => opts.repeats = val()?.parse()?,
            "--cpu-max" => opts.cpu_max_batch = val()?.parse()?,
            "--msg-len" => opts.message_len = val()?.parse()?,
            "--threads" => opts.cpu_threads = val()?.parse()?,
            "--opencl-cpu" => opts.opencl_cpu_devices = true,
            "--ptx" => opts.sig.cuda_ptx = true,
            "--group" => opts.sig.group_size = val()?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let mut records = Vec::new();
    if suite == "ed25519" || suite == "all" {
        records.extend(ed25519_suite(&opts)?);
    }
    if suite == "secp256k1" || suite == "all" {
        records.extend(secp256k1_suite(&opts)?);
    }
    for r in &records {
        println!("{}", serde_json::to_string(r)?);
    }
    eprintln!(
        "{:<10} {:<26} {:<7} {:>9} {:>12} {:>11}  device",
        "suite", "case", "backend", "batch", "items/s", "median ms"
    );
    for r in &records {
        eprintln!(
            "{:<10} {:<26} {:<7} {:>9} {:>12.0} {:>11.3}  {}",
            r.suite, r.case, r.backend, r.batch, r.items_per_sec, r.median_ms, r.device
        );
    }
    Ok(())
}
