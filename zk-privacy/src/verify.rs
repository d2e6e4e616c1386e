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
//! then halves of the batch are checked again, down to single verifications, to find the
//! bad ones. The weights come from SHA-256 over the whole batch (Fiat-Shamir), so the
//! outcome is deterministic.
//!
//! The Miller loops of the `(rho_i A_i, B_i)` pairs (with their G2 line preparation, about
//! 60% of a proof's CPU cost) can run elsewhere: [`batch_verify_on`] / [`verify_payloads_on`]
//! take a [`MillerLoops`] engine, e.g. [`DeviceMillerLoops`] over `gpu_executor`'s
//! Miller-loop kernel, whose per-pair results are bit-identical to arkworks'. Such an engine
//! may also decompress the proofs' points ([`MillerLoops::decompress`]: the square roots and
//! B's subgroup test, the costly part of checked decoding; the CPU parses each payload,
//! checks every root and decodes again whatever the engine calls invalid) and scale each
//! proof's `A` by its weight ([`MillerLoops::scale_g1`]). The weights, the two fixed pairs
//! and the final exponentiation stay on the CPU.
//! An engine error is returned (the caller redoes the batch on the CPU), never taken as a
//! verdict.
//!
//! Costs per proof (one thread; the same on the 2-core dev machine and the 16-core H200
//! host; `examples/verify_profile.rs`):
//! checked decoding ~125 us (G2 decompression ~30 us, the G2 subgroup test ~60 us with
//! [`crate::transfer::g2_in_subgroup`]), scaling `A` by its weight ~31 us (`rho = k1 + k2
//! lambda` with 64-bit halves: one joint 64-bit double-and-add through the G1
//! endomorphism), G2 line preparation ~99 us, the shared Miller loop ~163 us; the `C` and
//! public-input MSMs and the one final exponentiation are small beside them. On the
//! 16-core host, decoding plus batch verification ([`verify_payloads`]) ran 16.6k proofs/s
//! in batches of 500 and 22.8k/s in batches of 4,000 (the previous sequential decoding plus
//! arkworks' `multi_miller_loop`: 4.0k/s and 4.2k/s, same run).

use ark_bn254::g1::Config as G1Config;
use ark_bn254::{Bn254, Fq, Fq12, Fq2, Fr, G1Affine, G1Projective, G2Affine};
use ark_ec::bn::{g2::EllCoeff, BnConfig, G2Prepared};
use ark_ec::pairing::{MillerLoopOutput, Pairing, PairingOutput};
use ark_ec::scalar_mul::glv::GLVConfig;
use ark_ec::{AdditiveGroup, AffineRepr, CurveGroup, VariableBaseMSM};
use ark_ff::{Field, One};
use ark_groth16::{Groth16, PreparedVerifyingKey, Proof, VerifyingKey};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use gpu_executor::zk::{Decompressed, G2Root};

use crate::error::{Result, ZkError};
use crate::transfer::{encode_fr, encode_proof, CompressedTransfer};

/// Computes the product of the Miller loops of pairs `(a[i], b[i])` (affine, never the
/// identity, `a.len() == b.len()`), i.e. arkworks' `Bn254::multi_miller_loop(a, b)`.
pub trait MillerLoops: Sync {
    fn miller_product(&self, a: &[G1Affine], b: &[G2Affine]) -> std::result::Result<Fq12, String>;

    /// Whether this engine takes checked decoding's costly part ([`Self::decompress`]); by
    /// default it leaves decoding to the CPU.
    fn decompresses(&self) -> bool {
        false
    }

    /// Square roots of compressed points' `x^3 + b` (G1 and the G2 twist) and G2 membership,
    /// the costly part of checked decoding (see `ZkExecutor::gpu_decompress`). Called only
    /// when [`Self::decompresses`].
    fn decompress(&self, _g1_x: &[Fq], _g2_x: &[Fq2]) -> std::result::Result<Decompressed, String> {
        Err("this engine does not decompress".into())
    }

    /// Whether this engine scales each proof's `A` by its weight ([`Self::scale_g1`]); by
    /// default the CPU does.
    fn scales(&self) -> bool {
        false
    }

    /// `k1 * P + k2 * phi(P)` for each point `P` and weight `(k1, k2)` (`phi` = G1's GLV
    /// endomorphism), affine (see `ZkExecutor::gpu_scale_g1`). Called only when
    /// [`Self::scales`].
    fn scale_g1(
        &self,
        _points: &[G1Affine],
        _weights: &[(u64, u64)],
    ) -> std::result::Result<Vec<G1Affine>, String> {
        Err("this engine does not scale points".into())
    }
}

/// [`MillerLoops`] on the device of a `gpu_executor` zk executor
/// (`ZkExecutor::gpu_miller_product`: several device threads per pair for small batches,
/// the product taken on the device). Device only: a missing or failing device is an
/// error, for the caller to fall back on.
pub struct DeviceMillerLoops<'a>(pub &'a gpu_executor::zk::ZkExecutor);

impl MillerLoops for DeviceMillerLoops<'_> {
    fn miller_product(&self, a: &[G1Affine], b: &[G2Affine]) -> std::result::Result<Fq12, String> {
        self.0.gpu_miller_product(a, b).map_err(|e| e.to_string())
    }

    /// Not when the decompression kernel failed to compile or its self-test: the CPU
    /// decodes.
    fn decompresses(&self) -> bool {
        self.0.has_decompression()
    }

    fn decompress(&self, g1_x: &[Fq], g2_x: &[Fq2]) -> std::result::Result<Decompressed, String> {
        self.0.gpu_decompress(g1_x, g2_x).map_err(|e| e.to_string())
    }

    /// Not when the scaling kernel failed to compile or its self-test: the CPU scales.
    fn scales(&self) -> bool {
        self.0.has_scaling()
    }

    fn scale_g1(
        &self,
        points: &[G1Affine],
        weights: &[(u64, u64)],
    ) -> std::result::Result<Vec<G1Affine>, String> {
        self.0
            .gpu_scale_g1(points, weights)
            .map_err(|e| e.to_string())
    }
}

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

/// One proof's random weight `rho = k1 + k2 * lambda` (mod r), where `lambda` is the
/// eigenvalue of BN254's G1 endomorphism `phi(x, y) = (beta x, y)`: `rho * P = k1 * P +
/// k2 * phi(P)` costs one 64-bit double-and-add instead of a 128-bit one. The map from
/// `(k1, k2)` (64 bits each) to `rho` is injective (the shortest nonzero `(a, b)` with `a +
/// b lambda = 0 mod r` has entries near 2^127: the GLV basis), so `rho` takes 2^128 values
/// and a bad batch passes with probability at most 2^-128.
#[derive(Clone, Copy, Debug)]
struct Weight {
    k1: u64,
    k2: u64,
    rho: Fr,
}

/// Fiat-Shamir weights, derived from the key and the whole batch (see [`Weight`]).
fn weights(pvk: &PreparedVerifyingKey<Bn254>, batch: &[ProofWithInputs]) -> Vec<Weight> {
    let mut h = Sha256::new();
    h.update(b"supervm/zk-privacy/batch-verify/v2");
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
    let lambda = <G1Config as GLVConfig>::LAMBDA;
    (0..batch.len())
        .into_par_iter()
        .map(|i| {
            let mut hi = Sha256::new();
            hi.update(seed);
            hi.update((i as u64).to_le_bytes());
            let d: [u8; 32] = hi.finalize().into();
            let mut w = [0u8; 8];
            w.copy_from_slice(&d[..8]);
            let k1 = u64::from_le_bytes(w) | 1; // nonzero
            w.copy_from_slice(&d[8..16]);
            let k2 = u64::from_le_bytes(w);
            Weight {
                k1,
                k2,
                rho: Fr::from(k1) + lambda * Fr::from(k2),
            }
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

/// `k1 * P + k2 * phi(P)` for each `(P, weight)`: one joint 64-bit double-and-add per
/// point over the table `{P, phi(P), P + phi(P)}` (its last entry made affine for the
/// whole slice with one inversion). Returns affine points.
fn scale_g1(points: &[G1Affine], w: &[(u64, u64)]) -> Vec<G1Affine> {
    let phis: Vec<G1Affine> = points
        .iter()
        .map(<G1Config as GLVConfig>::endomorphism_affine)
        .collect();
    let both: Vec<G1Projective> = points
        .iter()
        .zip(&phis)
        .map(|(p, q)| G1Projective::from(*p) + q)
        .collect();
    let both = G1Projective::normalize_batch(&both);
    let out: Vec<G1Projective> = (0..points.len())
        .map(|i| {
            let (k1, k2) = w[i];
            let top = 64 - (k1 | k2).leading_zeros();
            let mut acc = G1Projective::ZERO;
            for bit in (0..top).rev() {
                acc.double_in_place();
                match ((k1 >> bit) & 1, (k2 >> bit) & 1) {
                    (1, 1) => acc += &both[i],
                    (1, 0) => acc += &points[i],
                    (0, 1) => acc += &phis[i],
                    _ => {}
                }
            }
            acc
        })
        .collect();
    G1Projective::normalize_batch(&out)
}

/// [`scale_g1`] on the current rayon pool, `chunk` points per task (each task's table made
/// affine with one inversion).
pub(crate) fn scale_all_on_cpu(
    points: &[G1Affine],
    weights: &[(u64, u64)],
    chunk: usize,
) -> Vec<G1Affine> {
    let chunk = chunk.max(1);
    points
        .par_chunks(chunk)
        .zip(weights.par_chunks(chunk))
        .flat_map_iter(|(p, w)| scale_g1(p, w))
        .collect()
}

/// `sum_i s_i P_i` for 64-bit scalars (Pippenger, 8-bit windows, one window per task).
fn msm_u64(bases: &[G1Affine], scalars: &[u64]) -> G1Projective {
    const C: usize = 8;
    let sums: Vec<G1Projective> = (0..64 / C)
        .into_par_iter()
        .map(|w| {
            let mut buckets = vec![G1Projective::ZERO; (1 << C) - 1];
            for (b, s) in bases.iter().zip(scalars) {
                let d = ((s >> (w * C)) & ((1 << C) - 1)) as usize;
                if d != 0 {
                    buckets[d - 1] += b;
                }
            }
            let mut run = G1Projective::ZERO;
            let mut sum = G1Projective::ZERO;
            for b in buckets.iter().rev() {
                run += b;
                sum += run;
            }
            sum
        })
        .collect();
    let mut acc = G1Projective::ZERO;
    for s in sums.iter().rev() {
        for _ in 0..C {
            acc.double_in_place();
        }
        acc += s;
    }
    acc
}

/// The Miller loop of `pairs` with one shared accumulator (one Fq12 squaring per step for
/// all of them, where ark-bn254's `multi_miller_loop` squares once per 4 pairs), the final
/// two Frobenius lines included (BN254's `x` is positive: no inversion). `None` if a
/// prepared point has the wrong number of line coefficients (never for points prepared
/// from non-identity affine points).
fn miller_loop(pairs: &[(G1Affine, G2Prepared<ark_bn254::Config>)]) -> Option<Fq12> {
    let mut iters: Vec<_> = pairs
        .iter()
        .map(|(p, q)| (p, q.ell_coeffs.iter()))
        .collect();
    let ell = |f: &mut Fq12, c: Option<&EllCoeff<ark_bn254::Config>>, p: &G1Affine| {
        let (mut c0, mut c1, c2) = *c?;
        // BN254 is a D-type twist.
        c0.mul_assign_by_fp(&p.y);
        c1.mul_assign_by_fp(&p.x);
        f.mul_by_034(&c0, &c1, &c2);
        Some(())
    };
    let ate = <ark_bn254::Config as BnConfig>::ATE_LOOP_COUNT;
    let mut f = Fq12::one();
    for i in (1..ate.len()).rev() {
        if i != ate.len() - 1 {
            f.square_in_place();
        }
        for (p, c) in iters.iter_mut() {
            ell(&mut f, c.next(), p)?;
        }
        if ate[i - 1] != 0 {
            for (p, c) in iters.iter_mut() {
                ell(&mut f, c.next(), p)?;
            }
        }
    }
    for _ in 0..2 {
        for (p, c) in iters.iter_mut() {
            ell(&mut f, c.next(), p)?;
        }
    }
    Some(f)
}

/// Where a batch's Miller loops run: `None` on the CPU (prepared lines, shared loop).
type Engine<'a> = Option<&'a dyn MillerLoops>;

/// `prod_i MillerLoop(rho_i A_i, B_i)`: on the CPU in chunks of `chunk` pairs sharing one
/// loop each, or on `engine` (each `A` scaled first: on the engine when it
/// [`MillerLoops::scales`], else on the CPU). `Ok(None)`: a prepared
/// point was malformed (never for checked decoding). `Err`: the engine failed.
fn miller_head(
    batch: &[ProofWithInputs],
    w: &[Weight],
    chunk: usize,
    engine: Engine<'_>,
) -> std::result::Result<Option<Fq12>, String> {
    let chunk = chunk.max(1);
    let points: Vec<G1Affine> = batch.iter().map(|item| item.proof.a).collect();
    let weights: Vec<(u64, u64)> = w.iter().map(|w| (w.k1, w.k2)).collect();
    if let Some(engine) = engine {
        let t = std::time::Instant::now();
        let on_engine = engine.scales();
        let a = if on_engine {
            let a = engine.scale_g1(&points, &weights)?;
            if a.len() != points.len() {
                return Err("the engine returned a wrong number of scaled points".into());
            }
            a
        } else {
            scale_all_on_cpu(&points, &weights, chunk)
        };
        let scale_ms = t.elapsed().as_secs_f64() * 1e3;
        let b: Vec<G2Affine> = batch.iter().map(|item| item.proof.b).collect();
        let t = std::time::Instant::now();
        let product = engine.miller_product(&a, &b).map(Some);
        tracing::debug!(
            target: "supervm::proofs",
            pairs = a.len(),
            ms = t.elapsed().as_secs_f64() * 1e3,
            scale_ms,
            on_engine,
            "Miller product on the engine"
        );
        return product;
    }
    let a = scale_all_on_cpu(&points, &weights, chunk);
    Ok(a.par_chunks(chunk)
        .zip(batch.par_chunks(chunk))
        .map(|(a, items)| {
            let pairs: Vec<_> = a
                .iter()
                .zip(items)
                .map(|(a, item)| (*a, G2Prepared::from(item.proof.b)))
                .collect();
            miller_loop(&pairs)
        })
        .try_reduce(Fq12::one, |x, y| Some(x * y)))
}

/// The batch equation alone: `true` iff the random linear combination holds. All items
/// must have the right number of public inputs. `Err` only when `engine` fails.
fn batch_equation(
    pvk: &PreparedVerifyingKey<Bn254>,
    batch: &[ProofWithInputs],
    chunk: usize,
    engine: Engine<'_>,
) -> std::result::Result<bool, String> {
    let w = weights(pvk, batch);
    let l = pvk.vk.gamma_abc_g1.len();
    // sum_i rho_i * (1, x_i1, ..., x_il)
    let ic_scalars: Vec<Fr> = (0..l)
        .into_par_iter()
        .map(|j| {
            if j == 0 {
                w.iter().map(|w| w.rho).sum()
            } else {
                batch
                    .iter()
                    .zip(&w)
                    .map(|(item, w)| item.inputs[j - 1] * w.rho)
                    .sum()
            }
        })
        .collect();
    let rho_sum = ic_scalars[0];
    // The fixed pairs' Miller loop and the right-hand side depend only on the weights: they
    // run beside the batch's Miller loops (on the GPU route, while the device works).
    let (fixed, head) = rayon::join(
        || {
            let ic = G1Projective::msm_unchecked(&pvk.vk.gamma_abc_g1, &ic_scalars);
            // sum rho_i C_i = sum k1_i C_i + phi(sum k2_i C_i)
            let cs: Vec<G1Affine> = batch.iter().map(|i| i.proof.c).collect();
            let k1: Vec<u64> = w.iter().map(|w| w.k1).collect();
            let k2: Vec<u64> = w.iter().map(|w| w.k2).collect();
            let (c1, c2) = rayon::join(|| msm_u64(&cs, &k1), || msm_u64(&cs, &k2));
            let c_acc = c1 + <G1Config as GLVConfig>::endomorphism(&c2);
            let tail = Bn254::multi_miller_loop(
                [ic.into_affine(), c_acc.into_affine()],
                [pvk.gamma_g2_neg_pc.clone(), pvk.delta_g2_neg_pc.clone()],
            );
            (tail, PairingOutput::<Bn254>(pvk.alpha_g1_beta_g2) * rho_sum)
        },
        || miller_head(batch, &w, chunk, engine),
    );
    let Some(head) = head? else {
        return Ok(false);
    };
    let (tail, rhs) = fixed;
    let Some(lhs) = Bn254::final_exponentiation(MillerLoopOutput(head * tail.0)) else {
        return Ok(false);
    };
    Ok(lhs == rhs)
}

/// Below this many proofs, a failed batch is verified proof by proof.
const INDIVIDUAL_BELOW: usize = 16;

/// Pairs per Miller-loop task: enough to share the Fq12 squarings, few enough that their
/// prepared G2 lines (17 KiB a pair) stay in a core's L2 cache across the 88 loop steps.
pub(crate) fn chunk_for(len: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    len.div_ceil(threads * 2).clamp(4, 32)
}

/// Indices (into `batch`, plus `offset`) of the proofs that do not verify, given that the
/// batch check of `batch` failed: halves are batch-checked (in parallel) and a failing half
/// is split again, so one bad proof among `n` costs about two batch checks of `n` proofs
/// instead of `n` single verifications. Small batches, and both halves failing (many bad
/// proofs), are verified proof by proof: every index reported is decided by a single
/// verification or by a passing batch check that covers it.
fn find_invalid(
    pvk: &PreparedVerifyingKey<Bn254>,
    batch: &[ProofWithInputs],
    offset: usize,
    engine: Engine<'_>,
) -> std::result::Result<Vec<usize>, String> {
    let individually = |items: &[ProofWithInputs], offset: usize| -> Vec<usize> {
        items
            .par_iter()
            .enumerate()
            .filter(|(_, item)| !matches!(verify_proof(pvk, &item.proof, &item.inputs), Ok(true)))
            .map(|(i, _)| offset + i)
            .collect()
    };
    if batch.len() < INDIVIDUAL_BELOW {
        return Ok(individually(batch, offset));
    }
    let (l, r) = batch.split_at(batch.len() / 2);
    let (l_ok, r_ok) = rayon::join(
        || batch_equation(pvk, l, chunk_for(l.len()), engine),
        || batch_equation(pvk, r, chunk_for(r.len()), engine),
    );
    Ok(match (l_ok?, r_ok?) {
        (true, true) => Vec::new(),
        (false, true) => find_invalid(pvk, l, offset, engine)?,
        (true, false) => find_invalid(pvk, r, offset + l.len(), engine)?,
        (false, false) => {
            let (mut a, b) = rayon::join(
                || individually(l, offset),
                || individually(r, offset + l.len()),
            );
            a.extend(b);
            a
        }
    })
}

/// Verifies a batch of proofs under one key (see the module docs); runs on the calling
/// thread's rayon pool (call it inside `pool.install`). Items with the wrong number of
/// public inputs are reported invalid. If the batch check fails, the bad proofs are found
/// by checking halves of the batch, down to single verifications (see `find_invalid`).
pub fn batch_verify(pvk: &PreparedVerifyingKey<Bn254>, batch: &[ProofWithInputs]) -> BatchOutcome {
    match batch_verify_on(pvk, batch, None) {
        Ok(o) => o,
        // unreachable (only an engine can fail, and there is none); fail closed anyway
        Err(_) => BatchOutcome {
            invalid: (0..batch.len()).collect(),
            batch_check_passed: false,
        },
    }
}

/// [`batch_verify`] with the Miller loops on `engine` (`None`: the CPU). An engine failure
/// is returned as `Err` and decides nothing.
pub fn batch_verify_on(
    pvk: &PreparedVerifyingKey<Bn254>,
    batch: &[ProofWithInputs],
    engine: Option<&dyn MillerLoops>,
) -> std::result::Result<BatchOutcome, String> {
    let (mut invalid, formed): (Vec<usize>, Vec<usize>) =
        (0..batch.len()).partition(|&i| check_inputs(pvk, &batch[i].inputs).is_err());
    if invalid.is_empty() {
        if batch.is_empty() || batch_equation(pvk, batch, chunk_for(batch.len()), engine)? {
            return Ok(BatchOutcome {
                invalid,
                batch_check_passed: true,
            });
        }
        invalid = find_invalid(pvk, batch, 0, engine)?;
    } else {
        let sub: Vec<ProofWithInputs> = formed.iter().map(|&i| batch[i].clone()).collect();
        if !sub.is_empty() && !batch_equation(pvk, &sub, chunk_for(sub.len()), engine)? {
            invalid.extend(
                find_invalid(pvk, &sub, 0, engine)?
                    .into_iter()
                    .map(|j| formed[j]),
            );
        }
    }
    invalid.sort_unstable();
    Ok(BatchOutcome {
        invalid,
        batch_check_passed: false,
    })
}

/// Distinct payloads that [`check_payloads_on`] times like a block's: encodings of
/// [`crate::PrivacyTransfer`]s with random points of the right groups (never the
/// identity) and random public inputs, from a fixed seed. They decode, but their proofs do
/// not verify (no one knows a witness), so they serve to measure, not to accept. At most
/// 64 distinct payloads; `n` beyond that repeats them (the cost of a check does not depend
/// on repeats).
pub fn calibration_payloads(n: usize) -> Vec<Vec<u8>> {
    use ark_ec::PrimeGroup;
    use ark_ff::Zero;
    use ark_std::UniformRand;
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x5eed_ca11);
    let distinct: Vec<Vec<u8>> = (0..n.min(64))
        .map(|_| {
            let mut nonzero = || loop {
                let x = Fr::rand(&mut rng);
                if !x.is_zero() {
                    return x;
                }
            };
            let (a, b, c) = (nonzero(), nonzero(), nonzero());
            let proof = Proof::<Bn254> {
                a: (G1Projective::generator() * a).into_affine(),
                b: (ark_bn254::G2Projective::generator() * b).into_affine(),
                c: (G1Projective::generator() * c).into_affine(),
            };
            let public = crate::TransferPublicInputs {
                root: nonzero(),
                nullifiers: [nonzero(), nonzero()],
                commitments: [nonzero(), nonzero()],
                fee: 1,
            };
            crate::PrivacyTransfer { proof, public }.encode()
        })
        .collect();
    (0..n)
        .map(|i| distinct[i % distinct.len()].clone())
        .collect()
}

/// What [`verify_payloads_on`] costs for a batch of payloads that all verify, on payloads
/// that need not: checked decoding of every payload in parallel, then the one batch
/// equation, and no search for bad proofs. Returns the equation's outcome (`false` for
/// [`calibration_payloads`]). For measuring a route (the node's start-up calibration);
/// never a verdict on transactions. `Err` when a payload does not decode or the engine
/// fails.
pub fn check_payloads_on(
    pvk: &PreparedVerifyingKey<Bn254>,
    payloads: &[&[u8]],
    engine: Option<&dyn MillerLoops>,
) -> std::result::Result<bool, String> {
    let batch: Vec<ProofWithInputs> = decode_payloads(payloads, engine)?
        .into_iter()
        .collect::<Result<_>>()
        .map_err(|e| e.to_string())?;
    if let Some(item) = batch.first() {
        check_inputs(pvk, &item.inputs).map_err(|e| e.to_string())?;
    }
    if batch.is_empty() {
        return Ok(true);
    }
    batch_equation(pvk, &batch, chunk_for(batch.len()), engine)
}

fn item(t: crate::PrivacyTransfer) -> ProofWithInputs {
    ProofWithInputs {
        proof: t.proof,
        inputs: t.public.to_field_elements(),
    }
}

/// Checked decoding of each payload, in parallel on the calling thread's pool. With an
/// engine that decompresses (a GPU), the CPU parses each payload (lengths, flags, canonical
/// coordinates and inputs), the engine computes the points' square roots and B's subgroup
/// test for the whole batch at once, and the CPU picks each root's sign as the encoding
/// says ([`CompressedTransfer`]); a payload whose points the engine finds invalid is
/// decoded again on the CPU, which decides. The result is checked decoding's, given the
/// engine's subgroup bit (its roots are checked where they are made). `Err` only when the
/// engine fails.
fn decode_payloads(
    payloads: &[&[u8]],
    engine: Engine<'_>,
) -> std::result::Result<Vec<Result<ProofWithInputs>>, String> {
    let on_cpu = |p: &&[u8]| crate::PrivacyTransfer::decode(p).map(item);
    let Some(engine) = engine.filter(|e| e.decompresses()) else {
        return Ok(payloads.par_iter().map(on_cpu).collect());
    };
    let parsed: Vec<Result<CompressedTransfer>> = payloads
        .par_iter()
        .map(|p| CompressedTransfer::parse(p))
        .collect();
    let live: Vec<&CompressedTransfer> = parsed.iter().filter_map(|t| t.as_ref().ok()).collect();
    let g1_x: Vec<Fq> = live.iter().flat_map(|t| [t.a.0, t.c.0]).collect();
    let g2_x: Vec<Fq2> = live.iter().map(|t| t.b.0).collect();
    let roots = engine.decompress(&g1_x, &g2_x)?;
    if roots.g1.len() != g1_x.len() || roots.g2.len() != g2_x.len() {
        return Err("the engine returned a wrong number of square roots".into());
    }
    // each parsed payload's index among the live ones
    let mut next = 0usize;
    let slots: Vec<Option<usize>> = parsed
        .iter()
        .map(|t| {
            t.as_ref().ok().map(|_| {
                next += 1;
                next - 1
            })
        })
        .collect();
    Ok(parsed
        .into_par_iter()
        .zip(slots)
        .zip(payloads)
        .map(|((t, slot), p)| {
            let t = t?;
            let k = slot.unwrap_or_default();
            match (roots.g1[2 * k], roots.g2[k], roots.g1[2 * k + 1]) {
                (
                    Some(a),
                    Some(G2Root {
                        y: b,
                        in_subgroup: true,
                    }),
                    Some(c),
                ) => Ok(item(t.finish(a, b, c))),
                _ => on_cpu(p),
            }
        })
        .collect())
}

/// `true` when `a` is the identity (such proofs never come out of checked decoding).
pub fn is_degenerate(proof: &Proof<Bn254>) -> bool {
    proof.a.is_zero() || proof.b.is_zero() || proof.c.is_zero()
}

/// Decodes (checked: canonical field elements, points on the curve, in the prime-order
/// subgroup, not the identity) and batch-verifies encoded
/// [`crate::PrivacyTransfer`] payloads: `true` for each payload that decodes and whose
/// proof verifies. Decoding runs in parallel on the calling thread's rayon pool (call it
/// inside `pool.install`), then [`batch_verify`] checks what decoded (finding bad proofs
/// by halving the batch down to single verifications when the check fails).
pub fn verify_payloads(pvk: &PreparedVerifyingKey<Bn254>, payloads: &[&[u8]]) -> Vec<bool> {
    match verify_payloads_on(pvk, payloads, None) {
        Ok(v) => v,
        // unreachable (only an engine can fail, and there is none); fail closed anyway
        Err(_) => vec![false; payloads.len()],
    }
}

/// [`verify_payloads`] with the batch's Miller loops on `engine` (`None`: the CPU), and its
/// points' square roots too when the engine decompresses (see `decode_payloads`). An
/// engine failure is returned as `Err` and decides nothing.
pub fn verify_payloads_on(
    pvk: &PreparedVerifyingKey<Bn254>,
    payloads: &[&[u8]],
    engine: Option<&dyn MillerLoops>,
) -> std::result::Result<Vec<bool>, String> {
    let t = std::time::Instant::now();
    let decoded: Vec<Option<ProofWithInputs>> = decode_payloads(payloads, engine)?
        .into_iter()
        .map(Result::ok)
        .collect();
    let decode_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut ok: Vec<bool> = decoded.iter().map(Option::is_some).collect();
    let (idx, batch): (Vec<usize>, Vec<ProofWithInputs>) = decoded
        .into_iter()
        .enumerate()
        .filter_map(|(i, d)| d.map(|d| (i, d)))
        .unzip();
    let t = std::time::Instant::now();
    for bad in batch_verify_on(pvk, &batch, engine)?.invalid {
        if let Some(&i) = idx.get(bad) {
            ok[i] = false;
        }
    }
    // Where a batch's time goes (`RUST_LOG=supervm::proofs=debug`): checked decoding, then
    // the batch check (weights, scaling, the Miller product, the final exponentiation).
    tracing::debug!(
        target: "supervm::proofs",
        proofs = payloads.len(),
        threads = rayon::current_num_threads(),
        decode_ms,
        check_ms = t.elapsed().as_secs_f64() * 1e3,
        "privacy proofs verified"
    );
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::{G2Affine, G2Projective};
    use ark_ec::PrimeGroup;
    use ark_std::UniformRand;

    fn g1s(n: usize) -> Vec<G1Affine> {
        let mut rng = ark_std::test_rng();
        (0..n)
            .map(|_| (G1Projective::generator() * Fr::rand(&mut rng)).into_affine())
            .collect()
    }

    #[test]
    fn glv_weights_scale_like_their_field_element() {
        let pts = g1s(9);
        let lambda = <G1Config as GLVConfig>::LAMBDA;
        let w: Vec<(u64, u64)> = [(1u64, 0u64), (3, 5), (u64::MAX, u64::MAX), (0x8000, 1)]
            .iter()
            .cycle()
            .take(pts.len())
            .copied()
            .collect();
        let got = scale_g1(&pts, &w);
        for ((p, &(k1, k2)), g) in pts.iter().zip(&w).zip(&got) {
            assert_eq!(
                *g,
                (*p * (Fr::from(k1) + lambda * Fr::from(k2))).into_affine()
            );
        }
        assert_eq!(scale_all_on_cpu(&pts, &w, 2), got);
    }

    #[test]
    fn msm_u64_matches_the_sum() {
        let pts = g1s(40);
        let s: Vec<u64> = (0..40u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 60))
            .collect();
        let want: G1Projective = pts.iter().zip(&s).map(|(p, s)| *p * Fr::from(*s)).sum();
        assert_eq!(msm_u64(&pts, &s), want);
        assert_eq!(msm_u64(&[], &[]), G1Projective::ZERO);
    }

    #[test]
    fn shared_miller_loop_matches_ark() {
        let mut rng = ark_std::test_rng();
        let a = g1s(5);
        let b: Vec<G2Affine> = (0..5)
            .map(|_| (G2Projective::generator() * Fr::rand(&mut rng)).into_affine())
            .collect();
        let pairs: Vec<_> = a
            .iter()
            .zip(&b)
            .map(|(a, b)| (*a, G2Prepared::from(*b)))
            .collect();
        let ours = miller_loop(&pairs).expect("well-formed");
        let ark = Bn254::multi_miller_loop(a, b);
        assert_eq!(
            Bn254::final_exponentiation(MillerLoopOutput(ours)),
            Bn254::final_exponentiation(ark)
        );
    }
}
