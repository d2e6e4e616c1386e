//! `supervm bench ed25519` / `supervm bench secp256k1`: throughput of the CPU reference
//! (`ed25519-dalek` per signature and in batch mode, `k256`) and of each GPU backend, end to
//! end from host memory (packing, upload, kernel, download, unpacking), over batch sizes,
//! plus the crossover batch size where a GPU overtakes the CPU. Inputs are valid signatures
//! made from deterministic keys (a pool of distinct ones, repeated for large batches).

use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey as EdSigningKey};
use engine_api::BenchRecord;
use k256::ecdsa::SigningKey as EcSigningKey;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::{
    cpu, EcrecoverItem, Ed25519Item, Sec1PublicKey, Secp256k1Item, SigConfig, SigExecutor,
};
use crate::device::{list_devices, open_device, BackendKind, GpuDevice};
use crate::error::Result;

/// Options of the signature suites.
#[derive(Clone, Debug)]
pub struct SigBenchOptions {
    /// Batch sizes. Default: 1K, 4K, 16K, 64K, 256K, 1M.
    pub sizes: Vec<usize>,
    /// Timed runs per measurement (after one warm-up run); the median is reported. Default: 3.
    pub repeats: usize,
    /// CPU measurements stop at this batch size (the CPU rate is flat beyond a few thousand
    /// signatures, and 1M signatures take seconds). Default: 65536.
    pub cpu_max_batch: usize,
    /// Ed25519 message length in bytes. Default: 128.
    pub message_len: usize,
    /// CPU threads (0 = all cores).
    pub cpu_threads: usize,
    /// GPU backends to measure (each skipped with a message when absent). Default: CUDA, OpenCL.
    pub backends: Vec<BackendKind>,
    /// Also measure OpenCL CPU devices (PoCL). Default: false.
    pub opencl_cpu_devices: bool,
    /// Kernel settings.
    pub sig: SigConfig,
}

impl Default for SigBenchOptions {
    fn default() -> Self {
        Self {
            sizes: vec![1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20],
            repeats: 3,
            cpu_max_batch: 1 << 16,
            message_len: 128,
            cpu_threads: 0,
            backends: vec![BackendKind::Cuda, BackendKind::Opencl],
            opencl_cpu_devices: false,
            sig: SigConfig::default(),
        }
    }
}

/// A device result that differs from the CPU's on the (valid) benchmark inputs.
fn wrong_result() -> crate::error::GpuError {
    crate::error::GpuError::Launch("device rejected a valid benchmark signature".into())
}

/// Distinct signatures generated; larger batches repeat them.
const DISTINCT: usize = 1 << 14;

fn seed(tag: &str, i: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    h.update((i as u64).to_le_bytes());
    h.finalize().into()
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "cpu".to_string())
}

/// Median wall time in ms of `repeats` runs after a warm-up run.
fn median_ms<F: FnMut()>(repeats: usize, mut f: F) -> f64 {
    f();
    let mut t: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// [`median_ms`] of a device call that reports whether its results were right: the first
/// error or wrong result ends the measurement.
fn checked_median_ms<F: FnMut() -> Result<bool>>(repeats: usize, mut f: F) -> Result<f64> {
    let mut failed = None;
    let ms = median_ms(repeats, || match f() {
        Ok(true) => {}
        Ok(false) => failed = Some(wrong_result()),
        Err(e) => failed = Some(e),
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(ms),
    }
}

/// The time of a checked run, or `None` after printing why the device failed.
fn report_failure(backend: &str, name: &str, n: usize, timed: Result<f64>) -> Option<f64> {
    timed
        .map_err(|e| eprintln!("sig bench: {backend} {name} batch {n}: {e}"))
        .ok()
}

/// The devices of [`bench_devices`] as single-device executors with their kernels built
/// (a device whose kernels fail to build is reported and left out).
fn prepared_executors(
    opts: &SigBenchOptions,
    pool: &Arc<rayon::ThreadPool>,
) -> Vec<(&'static str, String, SigExecutor)> {
    let mut out = Vec::new();
    for dev in bench_devices(opts) {
        let backend = dev.backend().as_str();
        let name = dev.info().name.clone();
        let exec = SigExecutor::with_devices(vec![dev], Arc::clone(pool), opts.sig.clone());
        let start = Instant::now();
        if let Err(e) = exec.prepare() {
            eprintln!("sig bench: {backend} {name}: kernels failed to build: {e}");
            continue;
        }
        eprintln!(
            "sig bench: {backend} {name}: kernels built in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        out.push((backend, name, exec));
    }
    out
}

fn record(
    case: &str,
    suite: &str,
    backend: &str,
    device: &str,
    batch: usize,
    ms: f64,
    threads: usize,
) -> BenchRecord {
    let items_per_sec = if ms > 0.0 {
        batch as f64 / (ms / 1e3)
    } else {
        0.0
    };
    // progress on stderr, so a run cut short still shows what it measured
    eprintln!(
        "sig bench: {suite} {case} {backend} batch {batch}: {items_per_sec:.0}/s ({ms:.3} ms)"
    );
    BenchRecord {
        suite: suite.to_string(),
        case: case.to_string(),
        backend: backend.to_string(),
        device: device.to_string(),
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

/// The devices to measure: first CUDA device; first OpenCL GPU (or CPU device when asked).
fn bench_devices(opts: &SigBenchOptions) -> Vec<GpuDevice> {
    let infos = list_devices();
    let mut out = Vec::new();
    for &kind in &opts.backends {
        let pick = infos.iter().find(|d| {
            d.backend == kind
                && (d.is_gpu || (kind == BackendKind::Opencl && opts.opencl_cpu_devices))
        });
        match pick {
            Some(info) => match open_device(kind, info.index, 1) {
                Ok(d) => out.push(d),
                Err(e) => eprintln!(
                    "sig bench: {kind} device {} failed to open: {e}",
                    info.index
                ),
            },
            None => eprintln!("sig bench: no {kind} device, skipping it"),
        }
    }
    out
}

/// Adds a crossover record per GPU backend: the smallest batch at which the GPU beats the
/// CPU reference rate `cpu_rate` (batch 0 when it never does in the sizes measured).
fn crossovers(
    records: &mut Vec<BenchRecord>,
    suite: &str,
    gpu_case: &str,
    cpu_rate: f64,
    name: &str,
) {
    if cpu_rate <= 0.0 {
        return; // no CPU measurement to compare with
    }
    let mut add = Vec::new();
    let mut devices: Vec<(String, String)> = records
        .iter()
        .filter(|r| r.case == gpu_case)
        .map(|r| (r.backend.clone(), r.device.clone()))
        .collect();
    devices.dedup();
    for (backend, device) in devices {
        let hit = records
            .iter()
            .filter(|r| r.case == gpu_case && r.backend == backend && r.device == device)
            .filter(|r| r.items_per_sec > cpu_rate)
            .min_by_key(|r| r.batch);
        let mut r = match hit {
            Some(r) => r.clone(),
            None => record(gpu_case, suite, &backend, &device, 0, 0.0, 0),
        };
        r.case = format!("{name}-crossover");
        add.push(r);
    }
    records.extend(add);
}

fn best_rate(records: &[BenchRecord], case: &str) -> f64 {
    records
        .iter()
        .filter(|r| r.case == case)
        .map(|r| r.items_per_sec)
        .fold(0.0, f64::max)
}

/// Ed25519 suite.
pub fn ed25519_suite(opts: &SigBenchOptions) -> Result<Vec<BenchRecord>> {
    let pool = super::build_pool(opts.cpu_threads)?;
    let threads = pool.current_num_threads();
    let max = opts.sizes.iter().copied().max().unwrap_or(0);
    let distinct = max.clamp(1, DISTINCT);
    let mlen = opts.message_len;
    let signed: Vec<([u8; 32], Vec<u8>, [u8; 64])> = pool.install(|| {
        (0..distinct)
            .into_par_iter()
            .map(|i| {
                let key = EdSigningKey::from_bytes(&seed("ed25519-key", i));
                let msg: Vec<u8> = (0..mlen)
                    .map(|j| seed("msg", i)[j % 32] ^ j as u8)
                    .collect();
                let sig = key.sign(&msg).to_bytes();
                (key.verifying_key().to_bytes(), msg, sig)
            })
            .collect()
    });
    let items: Vec<Ed25519Item<'_>> = (0..max)
        .map(|i| {
            let (pk, msg, sig) = &signed[i % distinct];
            Ed25519Item {
                public_key: *pk,
                message: msg,
                signature: *sig,
            }
        })
        .collect();
    let suite = "ed25519";
    let cpu_dev = cpu_name();
    let mut records = Vec::new();
    for &n in &opts.sizes {
        if n > opts.cpu_max_batch {
            continue;
        }
        let batch = &items[..n];
        let ms = median_ms(opts.repeats, || {
            std::hint::black_box(cpu::ed25519_verify_batch(&pool, batch));
        });
        records.push(record(
            "verify-dalek-strict",
            suite,
            "cpu",
            &cpu_dev,
            n,
            ms,
            threads,
        ));
        let ms = median_ms(opts.repeats, || {
            let ok = pool.install(|| {
                batch.par_chunks(64).all(|c| {
                    let msgs: Vec<&[u8]> = c.iter().map(|i| i.message).collect();
                    let sigs: Vec<ed25519_dalek::Signature> = c
                        .iter()
                        .map(|i| ed25519_dalek::Signature::from_bytes(&i.signature))
                        .collect();
                    let keys: Option<Vec<ed25519_dalek::VerifyingKey>> = c
                        .iter()
                        .map(|i| ed25519_dalek::VerifyingKey::from_bytes(&i.public_key).ok())
                        .collect();
                    keys.is_some_and(|k| ed25519_dalek::verify_batch(&msgs, &sigs, &k).is_ok())
                })
            });
            std::hint::black_box(ok);
        });
        records.push(record(
            "verify-dalek-batch",
            suite,
            "cpu",
            &cpu_dev,
            n,
            ms,
            threads,
        ));
    }
    for (backend, name, exec) in prepared_executors(opts, &pool) {
        for &n in &opts.sizes {
            let batch = &items[..n];
            let timed = checked_median_ms(opts.repeats, || {
                exec.try_gpu_ed25519(batch).map(|v| v.iter().all(|&ok| ok))
            });
            let Some(ms) = report_failure(backend, &name, n, timed) else {
                break;
            };
            records.push(record(
                "verify-end-to-end",
                suite,
                backend,
                &name,
                n,
                ms,
                threads,
            ));
        }
    }
    let cpu_rate = best_rate(&records, "verify-dalek-strict");
    crossovers(&mut records, suite, "verify-end-to-end", cpu_rate, "verify");
    Ok(records)
}

/// secp256k1 suite: ECDSA verification and recovery.
pub fn secp256k1_suite(opts: &SigBenchOptions) -> Result<Vec<BenchRecord>> {
    let pool = super::build_pool(opts.cpu_threads)?;
    let threads = pool.current_num_threads();
    let max = opts.sizes.iter().copied().max().unwrap_or(0);
    let distinct = max.clamp(1, DISTINCT);
    let signed: Vec<(Secp256k1Item, EcrecoverItem)> = pool.install(|| {
        (0..distinct)
            .into_par_iter()
            .filter_map(|i| {
                let key = EcSigningKey::from_bytes(&seed("secp256k1-key", i).into()).ok()?;
                let hash = seed("hash", i);
                let (sig, id) = key.sign_prehash_recoverable(&hash).ok()?;
                let sig = sig.normalize_s().unwrap_or(sig);
                // normalising s flips the parity of R; recompute the id from the key
                let mut rec = [0u8; 65];
                rec[..64].copy_from_slice(&sig.to_bytes());
                let vk = key.verifying_key();
                rec[64] = (0u8..2)
                    .find(|&v| {
                        k256::ecdsa::RecoveryId::from_byte(v).is_some_and(|rid| {
                            k256::ecdsa::VerifyingKey::recover_from_prehash(&hash, &sig, rid)
                                .is_ok_and(|k| &k == vk)
                        })
                    })
                    .unwrap_or(id.to_byte())
                    + 27;
                let pk = Sec1PublicKey::from_slice(vk.to_encoded_point(true).as_bytes())?;
                let mut signature = [0u8; 64];
                signature.copy_from_slice(&sig.to_bytes());
                Some((
                    Secp256k1Item {
                        public_key: pk,
                        hash,
                        signature,
                    },
                    EcrecoverItem {
                        hash,
                        signature: rec,
                    },
                ))
            })
            .collect()
    });
    let distinct = signed.len().max(1);
    let verify: Vec<Secp256k1Item> = (0..max).map(|i| signed[i % distinct].0).collect();
    let recover: Vec<EcrecoverItem> = (0..max).map(|i| signed[i % distinct].1).collect();
    // the addresses the CPU reference recovers (each input is checked to recover one)
    let distinct_addr: Vec<[u8; 20]> = pool.install(|| {
        signed
            .par_iter()
            .map(|(_, r)| cpu::ecrecover_one(r, true).map_or([0u8; 20], |k| k.address))
            .collect()
    });
    let expected_addr: Vec<[u8; 20]> = (0..max).map(|i| distinct_addr[i % distinct]).collect();
    let suite = "secp256k1";
    let cpu_dev = cpu_name();
    let low_s = opts.sig.require_low_s;
    let mut records = Vec::new();
    for &n in &opts.sizes {
        if n > opts.cpu_max_batch {
            continue;
        }
        let ms = median_ms(opts.repeats, || {
            std::hint::black_box(cpu::secp256k1_verify_batch(&pool, &verify[..n], low_s));
        });
        records.push(record(
            "ecdsa-verify-k256",
            suite,
            "cpu",
            &cpu_dev,
            n,
            ms,
            threads,
        ));
        let ms = median_ms(opts.repeats, || {
            std::hint::black_box(cpu::ecrecover_batch(&pool, &recover[..n], low_s));
        });
        records.push(record(
            "ecrecover-k256",
            suite,
            "cpu",
            &cpu_dev,
            n,
            ms,
            threads,
        ));
    }
    for (backend, name, exec) in prepared_executors(opts, &pool) {
        for &n in &opts.sizes {
            let timed = checked_median_ms(opts.repeats, || {
                exec.try_gpu_secp256k1(&verify[..n])
                    .map(|v| v.iter().all(|&ok| ok))
            });
            let Some(ms) = report_failure(backend, &name, n, timed) else {
                break;
            };
            records.push(record(
                "ecdsa-verify-end-to-end",
                suite,
                backend,
                &name,
                n,
                ms,
                threads,
            ));
            let timed = checked_median_ms(opts.repeats, || {
                exec.try_gpu_ecrecover(&recover[..n]).map(|v| {
                    v.iter()
                        .zip(&expected_addr[..n])
                        .all(|(got, want)| got.map(|k| k.address) == Some(*want))
                })
            });
            let Some(ms) = report_failure(backend, &name, n, timed) else {
                break;
            };
            records.push(record(
                "ecrecover-end-to-end",
                suite,
                backend,
                &name,
                n,
                ms,
                threads,
            ));
        }
    }
    let v_rate = best_rate(&records, "ecdsa-verify-k256");
    crossovers(
        &mut records,
        suite,
        "ecdsa-verify-end-to-end",
        v_rate,
        "ecdsa-verify",
    );
    let r_rate = best_rate(&records, "ecrecover-k256");
    crossovers(
        &mut records,
        suite,
        "ecrecover-end-to-end",
        r_rate,
        "ecrecover",
    );
    Ok(records)
}
