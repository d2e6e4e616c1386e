//! Where privacy-proof verification spends its time, per proof, on one thread: checked
//! decoding (decompression, subgroup checks), the 128-bit scaling of A, G2 line
//! preparation, Miller loop, final exponentiation; then whole batches (decode + batch
//! check) on all threads, beside the previous arkworks-only path (sequential checked
//! decoding with ark-bn254's G2 subgroup test, 128-bit weights, `multi_miller_loop`) kept
//! here as the baseline, timed alternately in the same process.
//!
//! `cargo run --release -p zk-privacy --example verify_profile [batch]` (default 500;
//! `ZK_BENCH_THREADS` = pool size, 0 = all cores; `ZK_BENCH_REPS` default 5).

use std::time::Instant;

use ark_bn254::{Bn254, Fr, G1Affine, G2Affine};
use ark_ec::pairing::{MillerLoopOutput, Pairing};
use ark_ec::{AffineRepr, CurveGroup};
use ark_groth16::Groth16;
use ark_serialize::{CanonicalDeserialize, Compress, Validate};
use rand::SeedableRng;
use rayon::prelude::*;
use zk_privacy::circuit::TransferCircuit;
use zk_privacy::setup::dev_setup;
use zk_privacy::transfer::PrivacyTransfer;
use zk_privacy::verify::{batch_verify, prepare, verify_payloads, ProofWithInputs};
use zk_privacy::{CpuProverBackend, Groth16Prover};

fn per_item<T>(name: &str, n: usize, mut f: impl FnMut(usize) -> T) {
    let t = Instant::now();
    for i in 0..n {
        std::hint::black_box(f(i));
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("  {name:<34} {us:>9.1} us/proof");
}

/// The previous node path: payloads decoded one after the other (ark-bn254's subgroup
/// tests), then the batch equation with 128-bit weights and ark's `multi_miller_loop`.
mod baseline {
    use super::*;
    use ark_bn254::{G1Projective, G2Affine};
    use ark_ec::pairing::PairingOutput;
    use ark_ec::VariableBaseMSM;
    use ark_ff::One;
    use ark_groth16::PreparedVerifyingKey;
    use sha2::{Digest, Sha256};

    fn decode(bytes: &[u8]) -> Option<PrivacyTransfer> {
        let g1 = |b: &[u8]| {
            let p = G1Affine::deserialize_with_mode(b, Compress::Yes, Validate::No).ok()?;
            (!p.is_zero() && p.is_on_curve() && p.is_in_correct_subgroup_assuming_on_curve())
                .then_some(p)
        };
        let b =
            G2Affine::deserialize_with_mode(&bytes[32..96], Compress::Yes, Validate::No).ok()?;
        if b.is_zero() || !b.is_on_curve() || !b.is_in_correct_subgroup_assuming_on_curve() {
            return None;
        }
        let fr = |i: usize| Fr::deserialize_compressed(&bytes[128 + 32 * i..160 + 32 * i]).ok();
        Some(PrivacyTransfer {
            proof: ark_groth16::Proof {
                a: g1(&bytes[0..32])?,
                b,
                c: g1(&bytes[96..128])?,
            },
            public: zk_privacy::transfer::TransferPublicInputs {
                root: fr(0)?,
                nullifiers: [fr(1)?, fr(2)?],
                commitments: [fr(3)?, fr(4)?],
                fee: u64::from_le_bytes(bytes[288..296].try_into().ok()?),
            },
        })
    }

    fn batch_equation(pvk: &PreparedVerifyingKey<Bn254>, batch: &[ProofWithInputs]) -> bool {
        let chunk = batch
            .len()
            .div_ceil(rayon::current_num_threads() * 4)
            .max(8);
        let seed: [u8; 32] = Sha256::digest(b"baseline").into();
        let rho: Vec<Fr> = (0..batch.len())
            .map(|i| {
                let d: [u8; 32] = Sha256::new()
                    .chain_update(seed)
                    .chain_update((i as u64).to_le_bytes())
                    .finalize()
                    .into();
                Fr::from(u128::from_le_bytes(d[..16].try_into().unwrap_or([1; 16])) | 1)
            })
            .collect();
        let l = pvk.vk.gamma_abc_g1.len();
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
        let ic = G1Projective::msm_unchecked(&pvk.vk.gamma_abc_g1, &ic_scalars);
        let cs: Vec<G1Affine> = batch.iter().map(|i| i.proof.c).collect();
        let c_acc = G1Projective::msm_unchecked(&cs, &rho);
        let tail = Bn254::multi_miller_loop(
            [ic.into_affine(), c_acc.into_affine()],
            [pvk.gamma_g2_neg_pc.clone(), pvk.delta_g2_neg_pc.clone()],
        );
        let head = batch
            .par_chunks(chunk)
            .zip(rho.par_chunks(chunk))
            .map(|(items, rs)| {
                let a: Vec<G1Projective> = items
                    .iter()
                    .zip(rs)
                    .map(|(item, r)| item.proof.a * r)
                    .collect();
                let a = G1Projective::normalize_batch(&a);
                let b: Vec<G2Affine> = items.iter().map(|item| item.proof.b).collect();
                Bn254::multi_miller_loop(a, b).0
            })
            .reduce(<Bn254 as Pairing>::TargetField::one, |x, y| x * y);
        let Some(lhs) = Bn254::final_exponentiation(MillerLoopOutput(head * tail.0)) else {
            return false;
        };
        lhs == PairingOutput::<Bn254>(pvk.alpha_g1_beta_g2) * ic_scalars[0]
    }

    /// Sequential decoding, then the batch check (as `kernels.rs` did).
    pub fn verify_payloads(pvk: &PreparedVerifyingKey<Bn254>, payloads: &[&[u8]]) -> bool {
        let batch: Option<Vec<ProofWithInputs>> = payloads
            .iter()
            .map(|p| {
                decode(p).map(|t| ProofWithInputs {
                    proof: t.proof,
                    inputs: t.public.to_field_elements(),
                })
            })
            .collect();
        batch.is_some_and(|b| batch_equation(pvk, &b))
    }
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let threads: usize = std::env::var("ZK_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let reps: usize = std::env::var("ZK_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let depth = 8;
    let transfer = zk_privacy::bench::sample_transfer(depth)?;
    let pk = pool.install(|| dev_setup(TransferCircuit::blank(depth), b"profile"))?;
    let pvk = prepare(&pk.vk);
    let public = transfer.public_inputs();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let proof = pool
        .install(|| Groth16Prover::new(CpuProverBackend).prove(&pk, transfer.clone(), &mut rng))?;
    let payloads: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            PrivacyTransfer {
                proof: Groth16::<Bn254>::rerandomize_proof(&pk.vk, &proof, &mut rng),
                public,
            }
            .encode()
        })
        .collect();
    let decoded: Vec<PrivacyTransfer> = payloads
        .iter()
        .map(|p| PrivacyTransfer::decode(p))
        .collect::<Result<_, _>>()?;
    let m = n.min(100);
    println!("one thread, {m} proofs:");
    per_item("decode (checked, whole payload)", m, |i| {
        PrivacyTransfer::decode(&payloads[i])
    });
    per_item("  G2 B subgroup check (fast test)", m, |i| {
        zk_privacy::transfer::g2_in_subgroup(&decoded[i].proof.b)
    });
    per_item("  G1 A decompress (no checks)", m, |i| {
        G1Affine::deserialize_with_mode(&payloads[i][0..32], Compress::Yes, Validate::No)
    });
    per_item("  G2 B decompress (no checks)", m, |i| {
        G2Affine::deserialize_with_mode(&payloads[i][32..96], Compress::Yes, Validate::No)
    });
    per_item("  G2 B subgroup check (ark-bn254)", m, |i| {
        decoded[i]
            .proof
            .b
            .is_in_correct_subgroup_assuming_on_curve()
    });
    let rho = Fr::from(u128::MAX - 12345);
    per_item("rho * A (128-bit scalar)", m, |i| decoded[i].proof.a * rho);
    per_item("G2 prepare (line coefficients)", m, |i| {
        <Bn254 as Pairing>::G2Prepared::from(decoded[i].proof.b)
    });
    let prepared: Vec<_> = decoded
        .iter()
        .map(|d| <Bn254 as Pairing>::G2Prepared::from(d.proof.b))
        .collect();
    let a: Vec<G1Affine> = decoded.iter().map(|d| d.proof.a).collect();
    let t = Instant::now();
    let f = Bn254::multi_miller_loop(a[..m].to_vec(), prepared[..m].to_vec());
    println!(
        "  {:<34} {:>9.1} us/proof",
        "multi Miller loop (prepared)",
        t.elapsed().as_secs_f64() * 1e6 / m as f64
    );
    let t = Instant::now();
    let _ = std::hint::black_box(Bn254::final_exponentiation(MillerLoopOutput(f.0)));
    println!(
        "  {:<34} {:>9.1} us (once per batch)",
        "final exponentiation",
        t.elapsed().as_secs_f64() * 1e6
    );
    per_item("single verify_proof", m.min(20), |i| {
        zk_privacy::verify::verify_proof(
            &pvk,
            &decoded[i].proof,
            &decoded[i].public.to_field_elements(),
        )
    });

    let batch: Vec<ProofWithInputs> = decoded
        .iter()
        .map(|d| ProofWithInputs {
            proof: d.proof.clone(),
            inputs: d.public.to_field_elements(),
        })
        .collect();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    let time = |f: &dyn Fn() -> bool| {
        let mut v: Vec<f64> = (0..reps)
            .map(|_| {
                let t = Instant::now();
                assert!(f(), "a valid batch was rejected");
                t.elapsed().as_secs_f64()
            })
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let threads = pool.current_num_threads();
    println!("batch of {n}, {threads} threads, median of {reps}:");
    let s = pool.install(|| time(&|| batch_verify(&pvk, &batch).all_valid()));
    println!(
        "  {:<34} {:>9.2} ms  {:>9.0} proofs/s",
        "batch_verify (decoded)",
        s * 1e3,
        n as f64 / s
    );
    let s = pool.install(|| {
        time(&|| {
            payloads
                .par_iter()
                .all(|p| PrivacyTransfer::decode(p).is_ok())
        })
    });
    println!(
        "  {:<34} {:>9.2} ms  {:>9.0} proofs/s",
        "decode (checked, parallel)",
        s * 1e3,
        n as f64 / s
    );
    // Alternate old and new so that load from elsewhere hits both alike.
    let mut old = Vec::new();
    let mut new = Vec::new();
    for _ in 0..reps {
        old.push(pool.install(|| {
            let t = Instant::now();
            assert!(baseline::verify_payloads(&pvk, &refs));
            t.elapsed().as_secs_f64()
        }));
        new.push(pool.install(|| {
            let t = Instant::now();
            assert!(verify_payloads(&pvk, &refs).iter().all(|&ok| ok));
            t.elapsed().as_secs_f64()
        }));
    }
    for (name, mut v) in [
        ("before: sequential decode + ark", old),
        ("verify_payloads (decode + batch)", new),
    ] {
        v.sort_by(|a, b| a.total_cmp(b));
        let s = v[v.len() / 2];
        println!(
            "  {:<34} {:>9.2} ms  {:>9.0} proofs/s",
            name,
            s * 1e3,
            n as f64 / s
        );
    }
    // A bad proof in the batch: found individually.
    let mut bad = payloads.clone();
    bad[n / 2] = PrivacyTransfer {
        proof: ark_groth16::Proof {
            a: (decoded[0].proof.a + G1Affine::generator()).into_affine(),
            ..decoded[0].proof.clone()
        },
        public,
    }
    .encode();
    let bad_refs: Vec<&[u8]> = bad.iter().map(|p| p.as_slice()).collect();
    let t = Instant::now();
    let ok = pool.install(|| verify_payloads(&pvk, &bad_refs));
    println!(
        "  {:<34} {:>9.2} ms  (rejected: {:?})",
        "verify_payloads, one bad proof",
        t.elapsed().as_secs_f64() * 1e3,
        ok.iter()
            .enumerate()
            .filter(|(_, &v)| !v)
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    );
    Ok(())
}
