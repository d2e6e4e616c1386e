//! Benchmark suites for `supervm bench msm` / `ntt` and `examples/zk_bench.rs`: arkworks on
//! all CPU threads and each GPU backend present, in one run, as [`BenchRecord`]s. Every GPU
//! figure is checked against arkworks at the sizes the CPU also ran, and a run in which the
//! device failed (and the executor fell back to the CPU) is reported, not recorded.

use std::sync::Arc;
use std::time::Instant;

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::CurveGroup;
use ark_ff::UniformRand;
use ark_std::rand::{rngs::StdRng, SeedableRng};
use engine_api::BenchRecord;
use rayon::prelude::*;

use super::{cpu, NttDirection, ZkConfig, ZkExecutor};
use crate::config::{BackendChoice, GpuConfig};
use crate::device::BackendKind;
use crate::error::Result;

/// What to run. Sizes are log2 of the number of points.
#[derive(Clone, Debug)]
pub struct ZkBenchOptions {
    /// G1 MSM sizes. Default: 16..=22.
    pub msm_log_sizes: Vec<u32>,
    /// G2 MSM sizes (part of the `msm` suite; `Some(vec![])`: none). Default: `None`, the
    /// G1 sizes up to 2^20.
    pub msm_g2_log_sizes: Option<Vec<u32>>,
    /// NTT sizes. Default: 10..=24.
    pub ntt_log_sizes: Vec<u32>,
    /// Largest MSM size arkworks runs (it takes seconds beyond 2^20). Default: 20.
    pub cpu_max_msm_log: u32,
    /// Largest NTT size arkworks runs. Default: 24.
    pub cpu_max_ntt_log: u32,
    /// Timed repetitions per case (the median is reported), after one warm-up. Default: 5.
    pub reps: usize,
    /// CPU threads for arkworks (0 = all). Default: 0.
    pub cpu_threads: usize,
    /// GPU backends to try (those that are not present are skipped). Default: CUDA, OpenCL.
    pub backends: Vec<BackendKind>,
    /// Skip OpenCL devices that are not GPUs (PoCL's CPU device). Default: true.
    pub opencl_gpus_only: bool,
    /// Seed of the random inputs. Default: 1.
    pub seed: u64,
}

impl Default for ZkBenchOptions {
    fn default() -> Self {
        Self {
            msm_log_sizes: (16..=22).collect(),
            msm_g2_log_sizes: None,
            ntt_log_sizes: (10..=24).collect(),
            cpu_max_msm_log: 20,
            cpu_max_ntt_log: 24,
            reps: 5,
            cpu_threads: 0,
            backends: vec![BackendKind::Cuda, BackendKind::Opencl],
            opencl_gpus_only: true,
            seed: 1,
        }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "cpu".into())
}

/// Random points of a group, quickly: runs of consecutive multiples P, P+Q, P+2Q, ... per
/// chunk, normalised in batches.
fn random_bases<G: CurveGroup<ScalarField = Fr>>(n: usize, seed: u64) -> Vec<G::Affine> {
    const CHUNK: usize = 1 << 12;
    let chunks: Vec<Vec<G::Affine>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut rng = StdRng::seed_from_u64(seed ^ (c as u64).wrapping_mul(0x9e37_79b9));
            let len = CHUNK.min(n - c * CHUNK);
            let g = G::generator();
            let mut p = g * Fr::rand(&mut rng);
            let q = g * Fr::rand(&mut rng);
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                v.push(p);
                p += q;
            }
            G::normalize_batch(&v)
        })
        .collect();
    chunks.concat()
}

/// Random G1 points (see `random_bases`).
pub fn random_g1_bases(n: usize, seed: u64) -> Vec<G1Affine> {
    random_bases::<G1Projective>(n, seed)
}

/// Random G2 points, like [`random_g1_bases`].
pub fn random_g2_bases(n: usize, seed: u64) -> Vec<G2Affine> {
    random_bases::<G2Projective>(n, seed)
}

/// Random scalars.
pub fn random_scalars(n: usize, seed: u64) -> Vec<Fr> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| Fr::rand(&mut rng)).collect()
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time_reps(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up (and kernel compilation)
    let mut t = Vec::with_capacity(reps.max(1));
    for _ in 0..reps.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median_ms(t))
}

#[allow(clippy::too_many_arguments)]
fn record(
    suite: &str,
    case: String,
    backend: &str,
    device: &str,
    batch: u64,
    ms: f64,
    threads: usize,
) -> BenchRecord {
    BenchRecord {
        suite: suite.into(),
        case,
        backend: backend.into(),
        device: device.into(),
        batch,
        items_per_sec: batch as f64 / (ms / 1e3),
        median_ms: ms,
        cpu_threads: threads,
    }
}

/// One executor per GPU backend present, plus the CPU one (first).
fn executors(opts: &ZkBenchOptions) -> Result<Vec<ZkExecutor>> {
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(opts.cpu_threads)
            .build()
            .map_err(|e| crate::GpuError::Config(e.to_string()))?,
    );
    let mut out = vec![ZkExecutor::cpu(pool.clone())];
    for &kind in &opts.backends {
        if let Some(why) = crate::device::backend_status(kind) {
            eprintln!("zk bench: skipping {kind}: {why}");
            continue;
        }
        let index = if kind == BackendKind::Opencl && opts.opencl_gpus_only {
            match crate::device::list_devices()
                .into_iter()
                .find(|d| d.backend == kind && d.is_gpu)
            {
                Some(d) => d.index,
                None => {
                    eprintln!("zk bench: skipping OpenCL: no OpenCL GPU");
                    continue;
                }
            }
        } else {
            0
        };
        let choice = match kind {
            BackendKind::Cuda => BackendChoice::Cuda,
            BackendKind::Opencl => BackendChoice::Opencl,
        };
        let cfg = GpuConfig {
            devices: vec![index],
            ..GpuConfig::with_backend(choice)
        };
        let dev = match crate::device::open_devices(&cfg) {
            Ok(d) => d.into_iter().next(),
            Err(e) => {
                eprintln!("zk bench: skipping {kind}: {e}");
                continue;
            }
        };
        let exec = ZkExecutor::with_device(dev, pool.clone(), ZkConfig::always_gpu());
        if exec.backend_name() == "cpu" {
            eprintln!("zk bench: skipping {kind}: kernels unusable on this device");
            continue;
        }
        if let Err(e) = exec.prepare() {
            eprintln!("zk bench: skipping {kind}: {e}");
            continue;
        }
        out.push(exec);
    }
    Ok(out)
}

/// An MSM over resident bases (`ZkExecutor::msm_g1_resident` / `msm_g2_resident`).
type ResidentMsm<A, D, P> = fn(&ZkExecutor, &[A], Option<&D>, &[Fr]) -> Result<P>;

/// The operations the MSM suite times for one group.
struct MsmCase<'a, A, P, D> {
    group: &'static str,
    bases: &'a [A],
    scalars: &'a [Fr],
    msm: fn(&ZkExecutor, &[A], &[Fr]) -> Result<P>,
    upload: fn(&ZkExecutor, &[A]) -> Result<Option<D>>,
    resident: ResidentMsm<A, D, P>,
}

/// One MSM size: arkworks on the CPU up to `opts.cpu_max_msm_log` (the reference), then
/// each GPU backend with bases uploaded per call and with bases resident on the device.
/// A backend that fell back or disagrees with the reference is reported, not recorded.
fn msm_size<A, P: PartialEq, D>(
    opts: &ZkBenchOptions,
    execs: &[ZkExecutor],
    k: u32,
    case: MsmCase<'_, A, P, D>,
    out: &mut Vec<BenchRecord>,
) -> Result<()> {
    let MsmCase {
        group,
        bases,
        scalars,
        msm,
        upload,
        resident,
    } = case;
    let threads = execs[0].pool().current_num_threads();
    let n = bases.len() as u64;
    let reference = if k <= opts.cpu_max_msm_log {
        let mut r = None;
        let ms = time_reps(opts.reps.min(3), || {
            r = Some(msm(&execs[0], bases, scalars)?);
            Ok(())
        })?;
        let case = format!("{group}-2^{k}");
        out.push(record("msm", case, "cpu", &cpu_model(), n, ms, threads));
        eprintln!("msm {group} 2^{k} cpu: {ms:.2} ms");
        r
    } else {
        None
    };
    for e in &execs[1..] {
        let dev = e.device_name().unwrap_or_default();
        let be = e.backend_name();
        let before = e.stats().gpu_failures;
        let mut res = None;
        let ms = time_reps(opts.reps, || {
            res = Some(msm(e, bases, scalars)?);
            Ok(())
        })?;
        let device_bases = upload(e, bases)?;
        let mut res2 = None;
        let ms2 = time_reps(opts.reps, || {
            res2 = Some(resident(e, bases, device_bases.as_ref(), scalars)?);
            Ok(())
        })?;
        drop(device_bases);
        if e.stats().gpu_failures != before {
            eprintln!("msm {group} 2^{k} {be}: device failed (fell back to the CPU); not recorded");
            continue;
        }
        let ok = match &reference {
            Some(r) => res.as_ref() == Some(r) && res2.as_ref() == Some(r),
            None => res == res2,
        };
        if !ok {
            eprintln!("msm {group} 2^{k} {be}: RESULT MISMATCH with arkworks; not recorded");
            continue;
        }
        eprintln!("msm {group} 2^{k} {be}: {ms:.2} ms end-to-end, {ms2:.2} ms bases resident");
        out.push(record(
            "msm",
            format!("{group}-2^{k}"),
            be,
            &dev,
            n,
            ms,
            threads,
        ));
        let case = format!("{group}-2^{k}-resident-bases");
        out.push(record("msm", case, be, &dev, n, ms2, threads));
    }
    Ok(())
}

/// G1 MSM: arkworks on the CPU, then each GPU backend (bases uploaded per call, and bases
/// resident on the device); then the same for G2 (cases `g2-2^k`, `g2-2^k-resident-bases`).
pub fn msm_suite(opts: &ZkBenchOptions) -> Result<Vec<BenchRecord>> {
    let execs = executors(opts)?;
    let mut out = Vec::new();
    for &k in &opts.msm_log_sizes {
        let n = 1usize << k;
        let bases = execs[0].pool().install(|| random_g1_bases(n, opts.seed));
        let scalars = random_scalars(n, opts.seed.wrapping_add(u64::from(k)));
        let case = MsmCase {
            group: "g1",
            bases: &bases,
            scalars: &scalars,
            msm: ZkExecutor::msm_g1,
            upload: ZkExecutor::upload_g1_bases,
            resident: ZkExecutor::msm_g1_resident,
        };
        msm_size(opts, &execs, k, case, &mut out)?;
    }
    let g2_sizes = opts.msm_g2_log_sizes.clone().unwrap_or_else(|| {
        let g1 = opts.msm_log_sizes.iter().copied();
        g1.filter(|&k| k <= 20).collect()
    });
    for k in g2_sizes {
        let n = 1usize << k;
        let bases = execs[0].pool().install(|| random_g2_bases(n, opts.seed));
        let scalars = random_scalars(n, opts.seed.wrapping_add(500 + u64::from(k)));
        let case = MsmCase {
            group: "g2",
            bases: &bases,
            scalars: &scalars,
            msm: ZkExecutor::msm_g2,
            upload: ZkExecutor::upload_g2_bases,
            resident: ZkExecutor::msm_g2_resident,
        };
        msm_size(opts, &execs, k, case, &mut out)?;
    }
    Ok(out)
}

/// NTT: forward, inverse and forward-coset transforms from host memory (copies included) on
/// the CPU and each GPU backend, plus the device-resident forward transform on the GPU.
pub fn ntt_suite(opts: &ZkBenchOptions) -> Result<Vec<BenchRecord>> {
    let execs = execs_or(opts)?;
    let threads = execs[0].pool().current_num_threads();
    let cpu_dev = cpu_model();
    let g = Fr::from(5u64); // Fr's multiplicative generator, the coset Groth16 uses
    let mut out = Vec::new();
    for &k in &opts.ntt_log_sizes {
        let n = 1usize << k;
        let input = random_scalars(n, opts.seed.wrapping_add(1000 + u64::from(k)));
        let cases: [(&str, NttDirection, Option<Fr>); 3] = [
            ("fft", NttDirection::Forward, None),
            ("ifft", NttDirection::Inverse, None),
            ("coset-fft", NttDirection::Forward, Some(g)),
        ];
        for (name, dir, coset) in cases {
            let reference = if k <= opts.cpu_max_ntt_log {
                let mut v = input.clone();
                let mut work = input.clone();
                let ms = time_reps(opts.reps.min(3), || {
                    work.copy_from_slice(&input);
                    execs[0].ntt(&mut work, dir, coset)
                })?;
                execs[0].pool().install(|| cpu::ntt(&mut v, dir, coset))?;
                out.push(record(
                    "ntt",
                    format!("{name}-2^{k}"),
                    "cpu",
                    &cpu_dev,
                    n as u64,
                    ms,
                    threads,
                ));
                eprintln!("ntt {name} 2^{k} cpu: {ms:.3} ms");
                Some(v)
            } else {
                None
            };
            for e in &execs[1..] {
                let dev = e.device_name().unwrap_or_default();
                let be = e.backend_name();
                let before = e.stats().gpu_failures;
                let mut work = input.clone();
                let ms = time_reps(opts.reps, || {
                    work.copy_from_slice(&input);
                    e.ntt(&mut work, dir, coset)
                })?;
                if e.stats().gpu_failures != before {
                    eprintln!("ntt {name} 2^{k} {be}: device failed; not recorded");
                    continue;
                }
                if reference.as_ref().is_some_and(|r| *r != work) {
                    eprintln!("ntt {name} 2^{k} {be}: RESULT MISMATCH with arkworks; not recorded");
                    continue;
                }
                eprintln!("ntt {name} 2^{k} {be}: {ms:.3} ms end-to-end");
                out.push(record(
                    "ntt",
                    format!("{name}-2^{k}"),
                    be,
                    &dev,
                    n as u64,
                    ms,
                    threads,
                ));
                if name == "fft" {
                    match e
                        .gpu
                        .as_ref()
                        .map(|g| resident_ntt_ms(&mut g.lock(), &input, k, opts.reps))
                    {
                        Some(Ok(ms)) => {
                            eprintln!("ntt fft 2^{k} {be}: {ms:.3} ms device-resident");
                            out.push(record(
                                "ntt",
                                format!("fft-2^{k}-resident"),
                                be,
                                &dev,
                                n as u64,
                                ms,
                                threads,
                            ));
                        }
                        Some(Err(err)) => eprintln!("ntt fft 2^{k} {be} resident: {err}"),
                        None => {}
                    }
                }
            }
        }
    }
    Ok(out)
}

fn execs_or(opts: &ZkBenchOptions) -> Result<Vec<ZkExecutor>> {
    executors(opts)
}

/// Forward NTT with input and output on the device (no host copies), median of `reps`.
fn resident_ntt_ms(g: &mut super::gpu::GpuZk, input: &[Fr], k: u32, reps: usize) -> Result<f64> {
    let dev = g.device().clone();
    let limbs: Vec<[u64; 4]> = input.iter().map(super::gpu::fr_limbs).collect();
    let mut a = dev.alloc(limbs.len() * 32)?;
    let mut b = dev.alloc(limbs.len() * 32)?;
    dev.queue(0).upload(&mut a, 0, &limbs)?;
    time_reps(reps, || {
        g.ntt_resident(&a, &mut b, k, NttDirection::Forward, None)
    })
}
