//! Groth16 verification: single proofs and batches.
//!
//! A batch of `n` proofs under one verifying key is checked with one random linear
//! combination: for 128-bit weights `rho_i`,
//!
//! `prod_i e(rho_i A_i, B_i) * e(sum_i rho_i IC_i, -gamma) * e(sum_i rho_i C_i, -delta)
//!  == e(alpha, beta)^(sum_i rho_i)`
//!
//! where `IC_i = IC_0 + sum_j x_ij IC_j`. The public-input part collapses to one MSM over the
//! key's `IC` with scalars `sum_i rho_i x_ij`; the Miller loops of the `(rho_i A_i, B_i)`
//! pairs run in parallel chunks on the given thread pool and share one final
//! exponentiation. A bad proof makes the check fail except with probability about 2^-128;
//! then every proof is verified on its own to find the bad ones. The weights come from
//! SHA-256 over the whole batch (Fiat-Shamir), so the outcome is deterministic.

use ark_bn254::{Bn254, Fr, G1Affine, G1Projective, G2Affine};
use ark_ec::pairing::{MillerLoopOutput, Pairing, PairingOutput};
use ark_ec::{AffineRepr, CurveGroup, VariableBaseMSM};
use ark_ff::One;
use ark_groth16::{Groth16, PreparedVerifyingKey, Proof, VerifyingKey};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Result, ZkError};
use crate::transfer::{encode_fr, encode_proof};

/// Prepares a verifying key (precomputes `e(alpha, beta)` and the negated G2 elements).
pub fn prepare(vk: &VerifyingKey<Bn254>) -> PreparedVerifyingKey<Bn254> {
    ark_groth16::prepare_verifying_key(vk)
}

fn check_inputs(pvk: &PreparedVerifyingKey<Bn254>, inputs: &[Fr]) -> Result<()> {
    let expected = pvk.vk.gamma_abc_g1.len().saturating_sub(1);
    if inputs.len() != expected {
        return Err(ZkError::PublicInputs(format!(
            "{} public inputs for a key that takes {expected}",
            inputs.len()
        )));
    }
    Ok(())
}

/// Verifies one proof. `Ok(false)` for a proof that does not verify, `Err` for public
/// inputs of the wrong count.
pub fn verify_proof(
    pvk: &PreparedVerifyingKey<Bn254>,
    proof: &Proof<Bn254>,
    inputs: &[Fr],
) -> Result<bool> {
    check_inputs(pvk, inputs)?;
    Ok(Groth16::<Bn254>::verify_proof(pvk, proof, inputs)?)
}

/// One proof with its public inputs, as handed to [`batch_verify`].
#[derive(Clone, Debug, PartialEq)]
pub struct ProofWithInputs {
    pub proof: Proof<Bn254>,
    pub inputs: Vec<Fr>,
}

/// The outcome of a batch verification.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// Indices (into the batch) of the proofs that do not verify, ascending. Empty when
    /// the whole batch is valid.
    pub invalid: Vec<usize>,
    /// Whether the batch check alone decided (no individual fallback was needed).
    pub batch_check_passed: bool,
}

impl BatchOutcome {
    pub fn all_valid(&self) -> bool {
        self.invalid.is_empty()
    }
}

/// Fiat-Shamir weights: 128-bit, nonzero, derived from the key and the whole batch.
fn weights(pvk: &PreparedVerifyingKey<Bn254>, batch: &[ProofWithInputs]) -> Vec<Fr> {
    let mut h = Sha256::new();
    h.update(b"supervm/zk-privacy/batch-verify/v1");
    h.update((batch.len() as u64).to_le_bytes());
    for g in &pvk.vk.gamma_abc_g1 {
        h.update(encode_g1(g));
    }
    let per_item: Vec<[u8; 32]> = batch
        .par_iter()
        .map(|item| {
            let mut hi = Sha256::new();
            hi.update(encode_proof(&item.proof));
            for x in &item.inputs {
                hi.update(encode_fr(x));
            }
            hi.finalize().into()
        })
        .collect();
    for d in &per_item {
        h.update(d);
    }
    let seed: [u8; 32] = h.finalize().into();
    (0..batch.len())
        .into_par_iter()
        .map(|i| {
            let mut hi = Sha256::new();
            hi.update(seed);
            hi.update((i as u64).to_le_bytes());
            let d: [u8; 32] = hi.finalize().into();
            let mut w = [0u8; 16];
            w.copy_from_slice(&d[..16]);
            let v = u128::from_le_bytes(w) | 1; // nonzero
            Fr::from(v)
        })
        .collect()
}

fn encode_g1(p: &G1Affine) -> [u8; 32] {
    use ark_serialize::CanonicalSerialize;
    let mut out = [0u8; 32];
    let mut w = &mut out[..];
    let _ = p.serialize_compressed(&mut w);
    out
}

/// The batch equation alone: `true` iff the random linear combination holds. All items
/// must have the right number of public inputs.
fn batch_equation(
    pvk: &PreparedVerifyingKey<Bn254>,
    batch: &[ProofWithInputs],
    chunk: usize,
) -> bool {
    let rho = weights(pvk, batch);
    let l = pvk.vk.gamma_abc_g1.len();
    // sum_i rho_i * (1, x_i1, ..., x_il)
    let ic_scalars: Vec<Fr> = (0..l)
        .into_par_iter()
        .map(|j| {
            if j == 0 {
                rho.iter().sum()
            } else {
                batch
                    .iter()
                    .zip(&rho)
                    .map(|(item, r)| item.inputs[j - 1] * r)
                    .sum()
            }
        })
        .collect();
    let rho_sum = ic_scalars[0];
    let ic = G1Projective::msm_unchecked(&pvk.vk.gamma_abc_g1, &ic_scalars);
    let cs: Vec<G1Affine> = batch.iter().map(|i| i.proof.c).collect();
    let c_acc = G1Projective::msm_unchecked(&cs, &rho);
    let tail = Bn254::multi_miller_loop(
        [ic.into_affine(), c_acc.into_affine()],
        [pvk.gamma_g2_neg_pc.clone(), pvk.delta_g2_neg_pc.clone()],
    );
    let head = batch
        .par_chunks(chunk.max(1))
        .zip(rho.par_chunks(chunk.max(1)))
        .map(|(items, rs)| {
            let a_proj: Vec<G1Projective> = items
                .iter()
                .zip(rs)
                .map(|(item, r)| item.proof.a * r)
                .collect();
            let a = G1Projective::normalize_batch(&a_proj);
            let b: Vec<G2Affine> = items.iter().map(|item| item.proof.b).collect();
            Bn254::multi_miller_loop(a, b).0
        })
        .reduce(<Bn254 as Pairing>::TargetField::one, |x, y| x * y);
    let Some(lhs) = Bn254::final_exponentiation(MillerLoopOutput(head * tail.0)) else {
        return false;
    };
    let rhs = PairingOutput::<Bn254>(pvk.alpha_g1_beta_g2) * rho_sum;
    lhs == rhs
}

/// Verifies a batch of proofs under one key (see the module docs); runs on the calling
/// thread's rayon pool (call it inside `pool.install`). Items with the wrong number of
/// public inputs are reported invalid.
pub fn batch_verify(pvk: &PreparedVerifyingKey<Bn254>, batch: &[ProofWithInputs]) -> BatchOutcome {
    if batch.is_empty() {
        return BatchOutcome {
            invalid: Vec::new(),
            batch_check_passed: true,
        };
    }
    let well_formed = batch
        .iter()
        .all(|item| check_inputs(pvk, &item.inputs).is_ok());
    let threads = rayon::current_num_threads().max(1);
    let chunk = batch.len().div_ceil(threads * 4).max(8);
    if well_formed && batch_equation(pvk, batch, chunk) {
        return BatchOutcome {
            invalid: Vec::new(),
            batch_check_passed: true,
        };
    }
    let invalid = batch
        .par_iter()
        .enumerate()
        .filter(|(_, item)| !matches!(verify_proof(pvk, &item.proof, &item.inputs), Ok(true)))
        .map(|(i, _)| i)
        .collect();
    BatchOutcome {
        invalid,
        batch_check_passed: false,
    }
}

/// `true` when `a` is the identity (such proofs never come out of checked decoding).
pub fn is_degenerate(proof: &Proof<Bn254>) -> bool {
    proof.a.is_zero() || proof.b.is_zero() || proof.c.is_zero()
}
