//! Benchmark suites behind `supervm bench hash` / `supervm bench merkle` (and
//! `examples/bench.rs`): the CPU backend on all threads and every GPU backend in the same
//! run, batch sizes 1K..16M, end to end from host memory and device-resident (kernel
//! only), plus the crossover batch size where the GPU starts to win.
//!
//! Method: each case runs once to warm up (kernel compilation, buffer allocation), then
//! `repeats` times (fewer when one run takes over a second); the median is reported.

use std::time::Instant;

use engine_api::BenchRecord;

use crate::device::{list_devices, open_device, BackendKind, GpuDevice, LaunchDims};
use crate::error::{GpuError, Result};
use crate::gpu_hash::GpuHasher;
use crate::hash::{cpu_model_name, CpuBackend, Digest, HashAlgo, HashBackend, Messages};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Batch sizes (messages or leaves). Default: 1K, 4K, ..., 16M (powers of 4).
    pub sizes: Vec<usize>,
    /// Timed runs per case (median reported). Default 5.
    pub repeats: usize,
    /// CPU threads (0 = all). Default 0.
    pub cpu_threads: usize,
    /// Message length of the hash suite, in bytes. Default 64.
    pub msg_len: usize,
    /// Hash functions. Default: both.
    pub algos: Vec<HashAlgo>,
    /// Also benchmark OpenCL devices that are not GPUs (PoCL). Default false.
    pub include_cpu_opencl: bool,
    /// Skip the CPU backend above this batch size (it is the slow one). Default: no limit.
    pub cpu_max_batch: usize,
    /// Which GPU backends to run. Default: both.
    pub gpu_backends: Vec<BackendKind>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            sizes: (0..8).map(|i| 1024usize << (2 * i)).collect(),
            repeats: 5,
            cpu_threads: 0,
            msg_len: 64,
            algos: HashAlgo::ALL.to_vec(),
            include_cpu_opencl: false,
            cpu_max_batch: usize::MAX,
            gpu_backends: vec![BackendKind::Cuda, BackendKind::Opencl],
        }
    }
}

fn median_ms(mut f: impl FnMut() -> Result<()>, repeats: usize) -> Result<f64> {
    f()?; // warm-up
    let mut times = Vec::new();
    let budget = std::time::Duration::from_secs(2);
    let started = Instant::now();
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if started.elapsed() > budget && times.len() >= 2 {
            break;
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

fn record(
    suite: &str,
    case: String,
    backend: &str,
    device: &str,
    batch: usize,
    ms: f64,
    threads: usize,
) -> BenchRecord {
    BenchRecord {
        suite: suite.into(),
        case,
        backend: backend.into(),
        device: device.into(),
        batch: batch as u64,
        items_per_sec: if ms > 0.0 {
            batch as f64 / (ms / 1e3)
        } else {
            0.0
        },
        median_ms: ms,
        cpu_threads: threads,
    }
}

/// The GPUs to benchmark.
fn bench_devices(opts: &BenchOptions) -> Vec<GpuDevice> {
    let mut out = Vec::new();
    for info in list_devices() {
        if !opts.gpu_backends.contains(&info.backend) {
            continue;
        }
        if info.backend == BackendKind::Opencl && !info.is_gpu && !opts.include_cpu_opencl {
            continue;
        }
        match open_device(info.backend, info.index, 4) {
            Ok(d) => out.push(d),
            Err(e) => tracing::warn!("bench: cannot open {info}: {e}"),
        }
    }
    out
}

/// Deterministic pseudo-random bytes (xorshift64*; benchmark inputs need no quality).
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(n);
    v
}

/// `hash` suite: `{algo}-{len}B-end-to-end` for every backend and `{algo}-{len}B-device` for
/// every GPU, then one `{algo}-{len}B-crossover` record per GPU backend (its `batch` is the
/// smallest measured batch from which the GPU end to end beats the CPU; absent if never).
pub fn hash_suite(opts: &BenchOptions) -> Result<Vec<BenchRecord>> {
    let cpu = CpuBackend::with_threads(opts.cpu_threads)?;
    let threads = cpu.threads();
    let cpu_name = cpu_model_name();
    let devs = bench_devices(opts);
    let mut hashers: Vec<GpuHasher> = devs
        .iter()
        .filter_map(|d| match GpuHasher::new(d.clone(), None) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!("bench: {}: {e}", d.info());
                None
            }
        })
        .collect();
    let len = opts.msg_len.max(1);
    let max = opts.sizes.iter().copied().max().unwrap_or(0);
    let data = random_bytes(max * len, 1);
    let mut out = Vec::new();
    for &algo in &opts.algos {
        for &n in &opts.sizes {
            let msgs = Messages::fixed(&data[..n * len], len)?;
            let e2e = format!("{algo}-{len}B-end-to-end");
            if n <= opts.cpu_max_batch {
                let ms = median_ms(|| cpu.hash_batch(algo, &msgs).map(|_| ()), opts.repeats)?;
                out.push(record(
                    "hash",
                    e2e.clone(),
                    "cpu",
                    &cpu_name,
                    n,
                    ms,
                    threads,
                ));
            }
            // The same into a reused output buffer (no fresh allocation per batch, so no
            // first-touch page faults on it): the pattern of a node that keeps its buffers.
            let reused = format!("{algo}-{len}B-end-to-end-reused-output");
            let mut buf = vec![[0u8; 32]; n];
            if n <= opts.cpu_max_batch {
                let ms = median_ms(|| cpu.hash_into(algo, &msgs, &mut buf), opts.repeats)?;
                out.push(record(
                    "hash",
                    reused.clone(),
                    "cpu",
                    &cpu_name,
                    n,
                    ms,
                    threads,
                ));
            }
            for h in &hashers {
                let info = h.device().info();
                let be = info.backend.as_str();
                match median_ms(|| h.hash(algo, &msgs).map(|_| ()), opts.repeats) {
                    Ok(ms) => out.push(record("hash", e2e.clone(), be, &info.name, n, ms, threads)),
                    Err(e) => tracing::warn!("bench {e2e} {be} n={n}: {e}"),
                }
                match median_ms(|| h.hash_into(algo, &msgs, &mut buf), opts.repeats) {
                    Ok(ms) => out.push(record(
                        "hash",
                        reused.clone(),
                        be,
                        &info.name,
                        n,
                        ms,
                        threads,
                    )),
                    Err(e) => tracing::warn!("bench {reused} {be} n={n}: {e}"),
                }
                if len == 32 || len == 64 {
                    match device_resident_hash(h, algo, &data[..n * len], len, n, opts.repeats) {
                        Ok(ms) => out.push(record(
                            "hash",
                            format!("{algo}-{len}B-device"),
                            be,
                            &info.name,
                            n,
                            ms,
                            threads,
                        )),
                        Err(e) => tracing::warn!("bench device-resident {be} n={n}: {e}"),
                    }
                }
            }
            // Group-size sweep of the device-resident kernel at the largest batch.
            if n == max && (len == 32 || len == 64) {
                for h in hashers.iter_mut() {
                    let info = h.device().info().clone();
                    for g in [128u32, 512] {
                        h.set_group_size(g);
                        let r =
                            device_resident_hash(h, algo, &data[..n * len], len, n, opts.repeats);
                        if let Ok(ms) = r {
                            let case = format!("{algo}-{len}B-device-g{g}");
                            let be = info.backend.as_str();
                            out.push(record("hash", case, be, &info.name, n, ms, threads));
                        }
                    }
                    h.set_group_size(LaunchDims::DEFAULT_GROUP);
                }
            }
        }
        out.extend(crossovers(
            &out,
            &format!("{algo}-{len}B-end-to-end"),
            "hash",
        ));
        out.extend(crossovers(
            &out,
            &format!("{algo}-{len}B-end-to-end-reused-output"),
            "hash",
        ));
    }
    Ok(out)
}

fn device_resident_hash(
    h: &GpuHasher,
    algo: HashAlgo,
    data: &[u8],
    len: usize,
    n: usize,
    repeats: usize,
) -> Result<f64> {
    let d = h.device();
    let mut input = d.alloc(data.len())?;
    let out = d.alloc(n * 32)?;
    let q = d.queue(0);
    q.upload(&mut input, 0, data)?;
    // Several launches per timed run for small batches, so launch latency is visible but
    // host timer resolution is not.
    let reps = (1 << 20) / n.max(1);
    let reps = reps.clamp(1, 64);
    let ms = median_ms(
        || {
            for _ in 0..reps {
                h.launch_fixed(q, algo, len, &input, n, &out)?;
            }
            q.synchronize()
        },
        repeats,
    )?;
    Ok(ms / reps as f64)
}

/// `merkle` suite: `merkle-{algo}-end-to-end` (host leaves to root) for every backend and
/// `merkle-{algo}-device` (leaves already on the device) for every GPU, plus crossovers.
pub fn merkle_suite(opts: &BenchOptions) -> Result<Vec<BenchRecord>> {
    let cpu = CpuBackend::with_threads(opts.cpu_threads)?;
    let threads = cpu.threads();
    let cpu_name = cpu_model_name();
    let devs = bench_devices(opts);
    let hashers: Vec<GpuHasher> = devs
        .iter()
        .filter_map(|d| GpuHasher::new(d.clone(), None).ok())
        .collect();
    let max = opts.sizes.iter().copied().max().unwrap_or(0);
    let bytes = random_bytes(max * 32, 2);
    let leaves: Vec<Digest> = bytes
        .chunks_exact(32)
        .map(|c| {
            let mut d = [0u8; 32];
            d.copy_from_slice(c);
            d
        })
        .collect();
    let mut out = Vec::new();
    for &algo in &opts.algos {
        let e2e = format!("merkle-{algo}-end-to-end");
        for &n in &opts.sizes {
            let l = &leaves[..n];
            if n <= opts.cpu_max_batch {
                let ms = median_ms(|| cpu.merkle(algo, l, false).map(|_| ()), opts.repeats)?;
                out.push(record(
                    "merkle",
                    e2e.clone(),
                    "cpu",
                    &cpu_name,
                    n,
                    ms,
                    threads,
                ));
            }
            for h in &hashers {
                let info = h.device().info();
                let be = info.backend.as_str();
                match median_ms(|| h.merkle(algo, l, false).map(|_| ()), opts.repeats) {
                    Ok(ms) => out.push(record(
                        "merkle",
                        e2e.clone(),
                        be,
                        &info.name,
                        n,
                        ms,
                        threads,
                    )),
                    Err(e) => tracing::warn!("bench {e2e} {be} n={n}: {e}"),
                }
                match device_resident_merkle(h, algo, l, opts.repeats) {
                    Ok(ms) => out.push(record(
                        "merkle",
                        format!("merkle-{algo}-device"),
                        be,
                        &info.name,
                        n,
                        ms,
                        threads,
                    )),
                    Err(e) => tracing::warn!("bench merkle device {be} n={n}: {e}"),
                }
            }
        }
        out.extend(crossovers(&out, &e2e, "merkle"));
    }
    Ok(out)
}

fn device_resident_merkle(
    h: &GpuHasher,
    algo: HashAlgo,
    leaves: &[Digest],
    repeats: usize,
) -> Result<f64> {
    let d = h.device();
    let n = leaves.len();
    let mut pristine = d.alloc(n * 32)?;
    let mut work = d.alloc(n * 32)?;
    let mut scratch = d.alloc(n.div_ceil(2) * 32)?;
    let q = d.queue(0);
    q.upload(&mut pristine, 0, leaves)?;
    // The leaf kernel works in place, so each run starts from a device-to-device copy of the
    // leaves, made (and waited for) before the timer starts.
    let mut run = || -> Result<f64> {
        q.copy(&pristine, 0, &mut work, 0, n * 32)?;
        q.synchronize()?;
        let t = Instant::now();
        h.merkle_on_device(q, algo, &mut work, n, &mut scratch)?;
        q.synchronize()?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    run()?;
    let mut times = Vec::new();
    for _ in 0..repeats.max(1) {
        times.push(run()?);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

/// For each GPU backend in `records` with case `case`: the smallest batch from which its
/// throughput beats the CPU's at every larger measured batch. One record per backend, case
/// `{case}-crossover` (`batch` = crossover; `items_per_sec` / `median_ms` of the GPU there).
pub fn crossovers(records: &[BenchRecord], case: &str, suite: &str) -> Vec<BenchRecord> {
    let cpu: Vec<&BenchRecord> = records
        .iter()
        .filter(|r| r.case == case && r.backend == "cpu")
        .collect();
    let mut backends: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r.case == case && r.backend != "cpu")
        .map(|r| (r.backend.as_str(), r.device.as_str()))
        .collect();
    backends.sort();
    backends.dedup();
    let mut out = Vec::new();
    for (be, dev) in backends {
        let mut pts: Vec<(&BenchRecord, f64)> = records
            .iter()
            .filter(|r| r.case == case && r.backend == be && r.device == dev)
            .filter_map(|g| {
                cpu.iter()
                    .find(|c| c.batch == g.batch)
                    .map(|c| (g, g.items_per_sec / c.items_per_sec.max(1e-9)))
            })
            .collect();
        pts.sort_by_key(|(g, _)| g.batch);
        // Smallest batch from which every larger batch also wins.
        let mut cross: Option<&BenchRecord> = None;
        for (g, speedup) in pts.iter().rev() {
            if *speedup > 1.0 {
                cross = Some(g);
            } else {
                break;
            }
        }
        if let Some(g) = cross {
            let mut r = (*g).clone();
            r.case = format!("{case}-crossover");
            r.suite = suite.into();
            out.push(r);
        }
    }
    out
}

/// Measured GPU speed-up over the CPU at the largest batch of `case`, per backend (what
/// the scheduler's calibration records in the `SpeedupTable`).
pub fn speedup_at_largest(records: &[BenchRecord], case: &str, backend: &str) -> Option<f64> {
    let g = records
        .iter()
        .filter(|r| r.case == case && r.backend == backend)
        .max_by_key(|r| r.batch)?;
    let c = records
        .iter()
        .find(|r| r.case == case && r.backend == "cpu" && r.batch == g.batch)?;
    Some(g.items_per_sec / c.items_per_sec)
}

/// Fails when a suite produced nothing at all (e.g. sizes empty).
pub fn ensure_nonempty(records: &[BenchRecord]) -> Result<()> {
    if records.is_empty() {
        return Err(GpuError::Config(
            "benchmark produced no measurements".into(),
        ));
    }
    Ok(())
}
