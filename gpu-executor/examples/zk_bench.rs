//! BN254 MSM and NTT benchmark: arkworks on all CPU threads and every GPU backend present,
//! in one run. Prints one JSON array of `engine_api::BenchRecord` on stdout, progress on
//! stderr.
//!
//! ```text
//! cargo run --release -p gpu-executor --features cuda,opencl --example zk_bench -- \
//!     [--suite msm|ntt|all] [--msm-logs 16-22] [--ntt-logs 10-24] \
//!     [--cpu-max-msm-log 20] [--cpu-max-ntt-log 24] [--reps 5] [--backends cuda,opencl]
//! ```

use gpu_executor::zk::bench::{msm_suite, ntt_suite, ZkBenchOptions};
use gpu_executor::BackendKind;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// `16-22` -> 16..=22; `20` -> [20].
fn parse_range(s: &str) -> BoxResult<Vec<u32>> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u32, u32) = (a.parse()?, b.parse()?);
    Ok((a..=b).collect())
}

fn main() -> BoxResult<()> {
    let mut opts = ZkBenchOptions::default();
    let mut suite = String::from("all");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--suite" => suite = val()?,
            "--msm-logs" => opts.msm_log_sizes = parse_range(&val()?)?,
            "--ntt-logs" => opts.ntt_log_sizes = parse_range(&val()?)?,
            "--cpu-max-msm-log" => opts.cpu_max_msm_log = val()?.parse()?,
            "--cpu-max-ntt-log" => opts.cpu_max_ntt_log = val()?.parse()?,
            "--reps" => opts.reps = val()?.parse()?,
            "--cpu-threads" => opts.cpu_threads = val()?.parse()?,
            "--backends" => {
                opts.backends = val()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| match s {
                        "cuda" => Ok(BackendKind::Cuda),
                        "opencl" => Ok(BackendKind::Opencl),
                        other => Err(format!("unknown backend {other}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--include-opencl-cpu" => opts.opencl_gpus_only = false,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let mut records = Vec::new();
    if suite == "msm" || suite == "all" {
        records.extend(msm_suite(&opts)?);
    }
    if suite == "ntt" || suite == "all" {
        records.extend(ntt_suite(&opts)?);
    }
    println!("{}", serde_json::to_string_pretty(&records)?);
    Ok(())
}
