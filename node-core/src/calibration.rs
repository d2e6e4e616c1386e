//! Start-up calibration of the scheduler's cost models.
//!
//! For every kernel the GPU backend runs, CPU and GPU latency are measured at a few batch
//! sizes (median of three runs after a warm-up) on synthetic inputs and fed to
//! [`HybridScheduler::observe`]; the crossover sizes and the `SpeedupTable` follow from the
//! models. The result is cached as JSON (`scheduler.calibration_cache`), keyed by the device
//! names and the CPU thread count, and reused on the next start when the key matches.
//! Without a GPU there is nothing to decide and nothing is measured. Privacy proofs are
//! measured apart ([`calibrate_proofs`]) once the node has loaded its keys.

use std::path::Path;
use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

use crate::scheduler::{CostSnapshot, HybridScheduler, Kernel, SigItem};

/// Batch sizes measured per kernel.
pub fn sizes(kernel: Kernel) -> &'static [usize] {
    match kernel {
        Kernel::SignatureVerify => &[64, 1024, 8192],
        Kernel::Hash | Kernel::Merkle => &[256, 4096, 65536],
        // Measured apart, once the privacy keys are loaded: see [`calibrate_proofs`].
        Kernel::PrivacyProof => &[],
    }
}

/// Privacy-proof batch sizes [`calibrate_proofs`] measures: a block's proofs at a few
/// percent privacy, and small batches. Each covers the size classes within two of its own
/// (see `CostModel::has_near`): 16-511 and 128-4,095 proofs.
pub const PROOF_SIZES: [usize; 2] = [64, 512];

#[derive(Serialize, Deserialize)]
struct CacheFile {
    key: String,
    costs: CostSnapshot,
}

fn cache_key(s: &HybridScheduler) -> String {
    format!(
        "cpu={} gpu={}",
        s.cpu_kernels().name(),
        s.gpu_name().unwrap_or_default()
    )
}

fn median3(mut f: impl FnMut() -> bool) -> Option<f64> {
    if !f() {
        return None; // warm-up failed: the device cannot run it
    }
    let mut v = Vec::with_capacity(3);
    for _ in 0..3 {
        let t = Instant::now();
        if !f() {
            return None;
        }
        v.push(t.elapsed().as_nanos() as f64);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[1])
}

/// Measures and loads the cost models; reuses `cache` when it matches. Returns whether a
/// measurement ran (false: loaded from cache, or no GPU).
pub fn calibrate(s: &HybridScheduler, cache: Option<&Path>) -> bool {
    let Some(gpu) = s.gpu_kernels().cloned() else {
        return false;
    };
    let key = cache_key(s);
    if let Some(path) = cache {
        if let Ok(text) = std::fs::read_to_string(path) {
            match serde_json::from_str::<CacheFile>(&text) {
                Ok(c) if c.key == key => {
                    s.load_costs(&c.costs);
                    tracing::info!(path = %path.display(), "calibration loaded from cache");
                    return false;
                }
                _ => tracing::info!("calibration cache does not match these devices; measuring"),
            }
        }
    }
    let cpu = s.cpu_kernels().clone();
    // Inputs.
    let max_sig = 8192;
    let key_pair = SigningKey::from_bytes(&[7u8; 32]);
    let msgs: Vec<[u8; 32]> = (0..max_sig as u32)
        .map(|i| {
            let mut m = [0u8; 32];
            m[..4].copy_from_slice(&i.to_le_bytes());
            m
        })
        .collect();
    let sigs: Vec<[u8; 64]> = msgs.iter().map(|m| key_pair.sign(m).to_bytes()).collect();
    let pk = key_pair.verifying_key().to_bytes();
    let sig_items: Vec<SigItem<'_>> = msgs
        .iter()
        .zip(&sigs)
        .map(|(m, sg)| SigItem {
            public_key: pk,
            signature: *sg,
            message: m,
        })
        .collect();
    let blobs: Vec<[u8; 64]> = (0..65536u32)
        .map(|i| {
            let mut b = [0u8; 64];
            b[..4].copy_from_slice(&i.to_le_bytes());
            b
        })
        .collect();
    let blob_refs: Vec<&[u8]> = blobs.iter().map(|b| b.as_slice()).collect();
    let leaves: Vec<[u8; 32]> = blobs
        .iter()
        .map(|b| {
            let mut l = [0u8; 32];
            l.copy_from_slice(&b[..32]);
            l
        })
        .collect();
    for kernel in Kernel::ALL {
        if !gpu.supports(kernel) || sizes(kernel).is_empty() {
            continue;
        }
        for &n in sizes(kernel) {
            for (dev, k) in [
                (crate::scheduler::Device::Cpu, &cpu),
                (crate::scheduler::Device::Gpu, &gpu),
            ] {
                let ns = match kernel {
                    Kernel::SignatureVerify => {
                        median3(|| k.verify_ed25519(&sig_items[..n.min(max_sig)]).is_ok())
                    }
                    Kernel::Hash => median3(|| k.sha256(&blob_refs[..n]).is_ok()),
                    Kernel::Merkle => median3(|| k.merkle_root(&leaves[..n]).is_ok()),
                    Kernel::PrivacyProof => None,
                };
                if let Some(ns) = ns {
                    s.observe(kernel, dev, n, ns);
                }
            }
        }
        calibrated(s, kernel);
    }
    if let Some(path) = cache {
        save(s, path);
    }
    true
}

/// Logs a kernel's calibration.
fn calibrated(s: &HybridScheduler, kernel: Kernel) {
    tracing::info!(
        kernel = kernel.name(),
        crossover = ?s.crossover(kernel),
        "calibrated"
    );
}

/// Measures privacy-proof verification on the CPU and the GPU at [`PROOF_SIZES`] (median of
/// three after a warm-up, on `zk_privacy::verify::calibration_payloads`: checked decoding
/// and one batch equation, the cost of a batch that verifies) and feeds the cost models, so
/// that `auto` need not explore the slower device with a block's proofs. Apart from
/// [`calibrate`] because it needs the node's verifying key, which the node loads when it
/// first meets a privacy transaction (or at start, when it proves). Sizes whose costs both
/// devices already have (from the cache or earlier batches) are skipped; without a GPU, a
/// GPU without the Miller-loop kernel, or the keys, nothing is measured. Saves the cache
/// when something was. Returns whether a measurement ran.
pub fn calibrate_proofs(s: &HybridScheduler, cache: Option<&Path>) -> bool {
    use crate::scheduler::{Device, ProofItem};
    let Some(gpu) = s.gpu_kernels().cloned() else {
        return false;
    };
    let kernel = Kernel::PrivacyProof;
    if !gpu.supports(kernel) {
        return false;
    }
    let todo: Vec<usize> = PROOF_SIZES
        .into_iter()
        .filter(|&n| {
            !(s.has_costs_near(kernel, Device::Cpu, n) && s.has_costs_near(kernel, Device::Gpu, n))
        })
        .collect();
    let Some(&max) = todo.iter().max() else {
        return false;
    };
    let cpu = s.cpu_kernels().clone();
    if cpu.time_proof_check(&[]).is_err() {
        return false; // the keys are not loaded yet
    }
    let payloads = zk_privacy::verify::calibration_payloads(max);
    let items: Vec<ProofItem<'_>> = payloads.iter().map(|p| ProofItem { payload: p }).collect();
    let mut measured = false;
    for n in todo {
        for (dev, k) in [(Device::Cpu, &cpu), (Device::Gpu, &gpu)] {
            if let Some(ns) = median3(|| k.time_proof_check(&items[..n]).is_ok()) {
                s.observe(kernel, dev, n, ns);
                measured = true;
            }
        }
    }
    if measured {
        calibrated(s, kernel);
        if let Some(path) = cache {
            save(s, path);
        }
    }
    measured
}

/// Writes the scheduler's cost models as they are now (start-up measurements plus what
/// the batches since taught them) to the calibration cache at `path`, so that the next
/// start with the same devices predicts from them instead of exploring again. Nothing
/// without a GPU. A write error is logged, not returned: the cache is an optimisation. The
/// file is replaced atomically.
pub fn save(s: &HybridScheduler, path: &Path) {
    if s.gpu_kernels().is_none() {
        return;
    }
    let file = CacheFile {
        key: cache_key(s),
        costs: s.cost_snapshot(),
    };
    let Ok(text) = serde_json::to_string_pretty(&file) else {
        return;
    };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = path.with_extension("json.tmp");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path)) {
        tracing::warn!("cannot write calibration cache {}: {e}", path.display());
    }
}
