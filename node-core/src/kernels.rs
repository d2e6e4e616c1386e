//! The backends behind the scheduler's [`BatchKernels`]: the CPU reference (always present)
//! and the GPU executor's device backends (features `cuda` / `opencl`).
//!
//! CPU: Ed25519 with `ed25519-dalek` batch verification per chunk on the node's pool,
//! confirmed one by one whenever the batch equation fails or a signature's `R` is not a
//! strict encoding, so the answer is exactly `verify_strict`'s (the rule of
//! `vm_runtime::tx::Transaction::verify_signature` and of `gpu_executor::sig`); SHA-256 with
//! `sha2`; Merkle roots with `vm_state`'s reference hasher; privacy proofs with
//! `zk_privacy::verify::batch_verify` under the pool's prepared verifying key (the GPU
//! backend runs the same with the batch's Miller loops on the device).

use std::sync::{Arc, OnceLock};

use rayon::prelude::*;
use sha2::{Digest, Sha256};
use vm_state::StateHasher;

use crate::pipeline::PrivacyKeys;
use crate::scheduler::{BatchKernels, Kernel, ProofItem, SigItem};

/// Signatures per dalek batch on one thread.
const SIG_CHUNK: usize = 256;

/// The CPU backend: the reference and the fallback.
pub struct CpuKernels {
    pool: Arc<rayon::ThreadPool>,
    hasher: vm_state::CpuStateHasher,
    privacy: Arc<OnceLock<PrivacyKeys>>,
}

impl CpuKernels {
    /// CPU kernels on `pool`; privacy proofs verify under the keys in `privacy` once the
    /// node has loaded them.
    pub fn new(pool: Arc<rayon::ThreadPool>, privacy: Arc<OnceLock<PrivacyKeys>>) -> Self {
        Self {
            hasher: vm_state::CpuStateHasher::with_pool(pool.clone()),
            pool,
            privacy,
        }
    }
    pub fn pool(&self) -> &Arc<rayon::ThreadPool> {
        &self.pool
    }
}

/// `verify_strict` of one signature.
pub fn ed25519_strict(item: &SigItem<'_>) -> bool {
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&item.public_key) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(&item.signature);
    vk.verify_strict(item.message, &sig).is_ok()
}

/// Whether `R` is canonical and not of small order (what `verify_strict` adds to the
/// equation that the batch check does not).
fn r_is_strict(signature: &[u8; 64]) -> bool {
    let mut r = [0u8; 32];
    r.copy_from_slice(&signature[..32]);
    match ed25519_dalek::VerifyingKey::from_bytes(&r) {
        Ok(p) => !p.is_weak() && p.to_bytes() == r,
        Err(_) => false,
    }
}

fn ed25519_chunk(items: &[SigItem<'_>]) -> Vec<bool> {
    let fast = (|| {
        let mut keys = Vec::with_capacity(items.len());
        let mut sigs = Vec::with_capacity(items.len());
        let mut msgs = Vec::with_capacity(items.len());
        for it in items {
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&it.public_key).ok()?;
            if vk.is_weak() || !r_is_strict(&it.signature) {
                return None;
            }
            keys.push(vk);
            sigs.push(ed25519_dalek::Signature::from_bytes(&it.signature));
            msgs.push(it.message);
        }
        ed25519_dalek::verify_batch(&msgs, &sigs, &keys).ok()
    })();
    match fast {
        Some(()) => vec![true; items.len()],
        None => items.iter().map(ed25519_strict).collect(),
    }
}

impl BatchKernels for CpuKernels {
    fn name(&self) -> String {
        format!("cpu ({} threads)", self.pool.current_num_threads())
    }
    fn supports(&self, _kernel: Kernel) -> bool {
        true
    }
    fn verify_ed25519(&self, items: &[SigItem<'_>]) -> Result<Vec<bool>, String> {
        if items.len() <= SIG_CHUNK {
            return Ok(ed25519_chunk(items));
        }
        Ok(self.pool.install(|| {
            items
                .par_chunks(SIG_CHUNK)
                .flat_map_iter(ed25519_chunk)
                .collect()
        }))
    }
    fn sha256(&self, msgs: &[&[u8]]) -> Result<Vec<[u8; 32]>, String> {
        let one = |m: &&[u8]| -> [u8; 32] { Sha256::digest(m).into() };
        if msgs.len() < 2048 {
            return Ok(msgs.iter().map(one).collect());
        }
        Ok(self
            .pool
            .install(|| msgs.par_iter().with_min_len(256).map(one).collect()))
    }
    fn merkle_root(&self, leaves: &[[u8; 32]]) -> Result<[u8; 32], String> {
        Ok(self.hasher.merkle_root(leaves))
    }
    fn verify_proofs(&self, proofs: &[ProofItem<'_>]) -> Result<Vec<bool>, String> {
        verify_privacy_batch(&self.pool, &self.privacy, proofs, None)
    }
    fn time_proof_check(&self, proofs: &[ProofItem<'_>]) -> Result<bool, String> {
        check_privacy_batch(&self.pool, &self.privacy, proofs, None)
    }
}

/// Decodes (checked) and batch-verifies privacy transfers on `pool` (decoding in
/// parallel: [`zk_privacy::verify::verify_payloads_on`]) under the node's prepared
/// verifying key, with the Miller loops on `engine` (`None`: the CPU); a payload that does
/// not decode is invalid. `Err` when the keys are not loaded yet or the engine fails.
pub fn verify_privacy_batch(
    pool: &rayon::ThreadPool,
    privacy: &OnceLock<PrivacyKeys>,
    proofs: &[ProofItem<'_>],
    engine: Option<&dyn zk_privacy::verify::MillerLoops>,
) -> Result<Vec<bool>, String> {
    on_payloads(pool, privacy, proofs, |pvk, payloads| {
        zk_privacy::verify::verify_payloads_on(pvk, payloads, engine)
    })
}

/// [`verify_privacy_batch`]'s cost on proofs that need not verify (for calibration):
/// `zk_privacy::verify::check_payloads_on` on `pool` under the node's key.
pub fn check_privacy_batch(
    pool: &rayon::ThreadPool,
    privacy: &OnceLock<PrivacyKeys>,
    proofs: &[ProofItem<'_>],
    engine: Option<&dyn zk_privacy::verify::MillerLoops>,
) -> Result<bool, String> {
    on_payloads(pool, privacy, proofs, |pvk, payloads| {
        zk_privacy::verify::check_payloads_on(pvk, payloads, engine)
    })
}

/// `f` over the proofs' payloads under the node's prepared verifying key, on `pool`. `Err`
/// when the keys are not loaded yet.
fn on_payloads<R: Send>(
    pool: &rayon::ThreadPool,
    privacy: &OnceLock<PrivacyKeys>,
    proofs: &[ProofItem<'_>],
    f: impl FnOnce(&ark_groth16::PreparedVerifyingKey<ark_bn254::Bn254>, &[&[u8]]) -> Result<R, String>
        + Send,
) -> Result<R, String> {
    let keys = privacy
        .get()
        .ok_or_else(|| "privacy keys are not loaded".to_string())?;
    let payloads: Vec<&[u8]> = proofs.iter().map(|p| p.payload).collect();
    pool.install(|| f(&keys.pvk, &payloads))
}
