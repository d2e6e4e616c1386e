use ark_bn254::Fr;
use ark_ec::{AffineRepr, CurveGroup};
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::fields::fp::FpVar;
use ark_relations::r1cs::{ConstraintSynthesizer, ConstraintSystem};
use gpu_executor::zk::{Decompressed, G2Root};
use rand::SeedableRng;
use zk_privacy::circuit::{alloc_u64_checked, TransferCircuit};
use zk_privacy::pool::{MemoryPrivacyState, PrivacyPool, Rejection};
use zk_privacy::transfer::{PrivacyTransfer, TRANSFER_BYTES};
use zk_privacy::verify::{
    batch_verify, batch_verify_on, calibration_payloads, check_payloads_on, prepare,
    verify_payloads_on, verify_proof, DeviceMillerLoops, MillerLoops, ProofWithInputs,
};
use zk_privacy::{CpuProverBackend, Groth16Prover, ZkError};

use crate::common::{scenario, transfer_circuit, transfer_key, TEST_DEPTH};

fn prove_transfer(circuit: TransferCircuit, seed: u64) -> zk_privacy::Result<PrivacyTransfer> {
    let public = circuit.public_inputs();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let proof = Groth16Prover::new(CpuProverBackend).prove(transfer_key(), circuit, &mut rng)?;
    Ok(PrivacyTransfer { proof, public })
}

/// Mirrors the pool's tree (the node only keeps the frontier) so wallets can build paths.
fn pool_with_scenario_leaves(
    pool: &PrivacyPool,
    state: &mut MemoryPrivacyState,
    s: &crate::common::Scenario,
) {
    // Feed the scenario's leaves into the pool two at a time as "outputs" of deposit-like
    // transfers; here we only need the roots to match, so apply them through the rules.
    let leaves: Vec<Fr> = (0..s.tree.len()).map(|i| s.tree.leaf(i).unwrap()).collect();
    assert_eq!(leaves.len() % 2, 1);
    let mut leaves = leaves;
    leaves.push(Fr::from(0u64));
    let mut tree = zk_privacy::tree::NoteTree::new(pool.depth()).unwrap();
    for (k, pair) in leaves.chunks(2).enumerate() {
        let public = zk_privacy::TransferPublicInputs {
            root: tree.root(),
            nullifiers: [
                Fr::from(1_000_000 + 2 * k as u64),
                Fr::from(1_000_001 + 2 * k as u64),
            ],
            commitments: [pair[0], pair[1]],
            fee: 0,
        };
        pool.apply_transfer(state, &public).unwrap().unwrap();
        tree.append(pair[0]).unwrap();
        tree.append(pair[1]).unwrap();
    }
}

#[test]
fn valid_spend_double_spend_unknown_root_and_encoding() {
    let pool = PrivacyPool::new(TEST_DEPTH, 4).unwrap();
    let mut state = MemoryPrivacyState::default();
    let s = scenario(TEST_DEPTH);
    pool_with_scenario_leaves(&pool, &mut state, &s);

    let mut s2 = scenario(TEST_DEPTH);
    s2.tree.append(Fr::from(0u64)).unwrap();
    let circuit = transfer_circuit(&s2, [100, 15], 5);
    let tx = prove_transfer(circuit, 1).unwrap();
    let pvk = prepare(&transfer_key().vk);
    assert!(verify_proof(&pvk, &tx.proof, &tx.public.to_field_elements()).unwrap());

    // Canonical encoding round trip.
    let bytes = tx.encode();
    assert_eq!(bytes.len(), TRANSFER_BYTES);
    assert_eq!(PrivacyTransfer::decode(&bytes).unwrap(), tx);

    // Valid spend.
    let applied = pool
        .apply_transfer(&mut state, &tx.public)
        .unwrap()
        .unwrap();
    s2.tree.append(tx.public.commitments[0]).unwrap();
    s2.tree.append(tx.public.commitments[1]).unwrap();
    assert_eq!(applied.new_root, s2.tree.root());
    assert_eq!(
        pool.current_root(&mut state).unwrap().unwrap(),
        s2.tree.root()
    );

    // Double spend (same transaction again, e.g. later in the block or in a later block).
    assert!(matches!(
        pool.apply_transfer(&mut state, &tx.public).unwrap(),
        Err(Rejection::NullifierSpent(_))
    ));
    // A different transfer spending the same notes against the new root.
    let again = transfer_circuit(&s2_like(&s2), [110, 5], 5);
    let tx2 = prove_transfer(again, 2).unwrap();
    assert!(verify_proof(&pvk, &tx2.proof, &tx2.public.to_field_elements()).unwrap());
    assert_eq!(tx2.public.nullifiers, tx.public.nullifiers);
    let before = state.clone();
    assert!(matches!(
        pool.apply_transfer(&mut state, &tx2.public).unwrap(),
        Err(Rejection::NullifierSpent(_))
    ));
    assert_eq!(state, before, "a rejected transfer writes nothing");

    // Unknown root.
    let mut unknown = tx.public;
    unknown.root = Fr::from(42u64);
    unknown.nullifiers = [Fr::from(1u64), Fr::from(2u64)];
    assert_eq!(
        pool.apply_transfer(&mut state, &unknown).unwrap(),
        Err(Rejection::UnknownRoot(4))
    );
    // Duplicate nullifier inside one transfer.
    let mut dup = unknown;
    dup.root = s2.tree.root();
    dup.nullifiers = [Fr::from(9u64), Fr::from(9u64)];
    assert_eq!(
        pool.apply_transfer(&mut state, &dup).unwrap(),
        Err(Rejection::DuplicateNullifier)
    );
    // Roots age out after K newer roots.
    let old_root = tx.public.root;
    for k in 0..4u64 {
        let mut p = dup;
        p.root = pool.current_root(&mut state).unwrap().unwrap();
        p.nullifiers = [Fr::from(50 + 2 * k), Fr::from(51 + 2 * k)];
        pool.apply_transfer(&mut state, &p).unwrap().unwrap();
    }
    let mut stale = dup;
    stale.root = old_root;
    stale.nullifiers = [Fr::from(90u64), Fr::from(91u64)];
    assert_eq!(
        pool.apply_transfer(&mut state, &stale).unwrap(),
        Err(Rejection::UnknownRoot(4))
    );
}

fn s2_like(s: &crate::common::Scenario) -> crate::common::Scenario {
    crate::common::Scenario {
        tree: s.tree.clone(),
        sk: s.sk,
        notes: s.notes.clone(),
    }
}

/// Miller loops through `gpu_executor`'s CPU reference (arkworks, one pair at a time).
struct ArkPairs;

impl MillerLoops for ArkPairs {
    fn miller_product(
        &self,
        a: &[ark_bn254::G1Affine],
        b: &[ark_bn254::G2Affine],
    ) -> Result<ark_bn254::Fq12, String> {
        let f = gpu_executor::zk::cpu::miller_loops(a, b).map_err(|e| e.to_string())?;
        Ok(f.iter().product())
    }
}

/// Square roots from arkworks (the device's part of decoding, on the CPU): `all_invalid`
/// answers "no root" for everything instead, like a device that is wrong in the safe
/// direction (the CPU must then decode each payload itself, with the same verdicts).
fn ark_roots(g1_x: &[ark_bn254::Fq], g2_x: &[ark_bn254::Fq2], all_invalid: bool) -> Decompressed {
    use ark_ec::short_weierstrass::Affine;
    if all_invalid {
        return Decompressed {
            g1: vec![None; g1_x.len()],
            g2: vec![None; g2_x.len()],
        };
    }
    Decompressed {
        g1: g1_x
            .iter()
            .map(|&x| Affine::<ark_bn254::g1::Config>::get_ys_from_x_unchecked(x).map(|r| r.1))
            .collect(),
        g2: g2_x
            .iter()
            .map(|&x| {
                ark_bn254::G2Affine::get_point_from_x_unchecked(x, true).map(|p| G2Root {
                    y: p.y,
                    in_subgroup: p.is_in_correct_subgroup_assuming_on_curve(),
                })
            })
            .collect(),
    }
}

/// What [`ArkDecoding`] answers.
#[derive(Clone, Copy)]
enum Answers {
    /// arkworks' roots and subgroup test, scaling by `gpu_executor`'s CPU reference
    Ark,
    /// "no root" for every point (scaling right)
    NoneFound,
    /// an error for either, as from a device lost
    Fails,
    /// the right roots, and the points "scaled" by returning them as they are: every
    /// batch check on it fails, so verdicts come from the halving down to single CPU
    /// verifications
    Unscaled,
}

/// [`ArkPairs`] that also decompresses and scales.
struct ArkDecoding(Answers);

impl MillerLoops for ArkDecoding {
    fn miller_product(
        &self,
        a: &[ark_bn254::G1Affine],
        b: &[ark_bn254::G2Affine],
    ) -> Result<ark_bn254::Fq12, String> {
        ArkPairs.miller_product(a, b)
    }

    fn decompresses(&self) -> bool {
        true
    }

    fn decompress(
        &self,
        g1_x: &[ark_bn254::Fq],
        g2_x: &[ark_bn254::Fq2],
    ) -> Result<Decompressed, String> {
        match self.0 {
            Answers::Ark | Answers::Unscaled => Ok(ark_roots(g1_x, g2_x, false)),
            Answers::NoneFound => Ok(ark_roots(g1_x, g2_x, true)),
            Answers::Fails => Err("device lost while decompressing".into()),
        }
    }

    fn scales(&self) -> bool {
        true
    }

    fn scale_g1(
        &self,
        points: &[ark_bn254::G1Affine],
        weights: &[(u64, u64)],
    ) -> Result<Vec<ark_bn254::G1Affine>, String> {
        match self.0 {
            Answers::Fails => Err("device lost while scaling".into()),
            Answers::Unscaled => Ok(points.to_vec()),
            Answers::Ark | Answers::NoneFound => {
                gpu_executor::zk::cpu::scale_g1(points, weights).map_err(|e| e.to_string())
            }
        }
    }
}

/// Payloads that fail checked decoding in each way a point can, beside valid ones: B on
/// the twist but outside G2, A's x without a root, A at infinity, A's sign flag flipped
/// (a valid point, the wrong proof), an unflagged x with both flag bits set, too short.
fn mixed_payloads(tx: &PrivacyTransfer) -> Vec<Vec<u8>> {
    use ark_serialize::CanonicalSerialize;
    let good = tx.encode();
    let mut out = vec![good.clone()];
    let mut outside = good.clone();
    for i in 1..200u64 {
        let x = ark_bn254::Fq2::new(ark_bn254::Fq::from(i), ark_bn254::Fq::from(1u64));
        if let Some(p) = ark_bn254::G2Affine::get_point_from_x_unchecked(x, false) {
            if !p.is_in_correct_subgroup_assuming_on_curve() {
                let mut w = &mut outside[32..96];
                p.serialize_compressed(&mut w).expect("fits");
                break;
            }
        }
    }
    out.push(outside);
    let mut no_root = good.clone();
    for delta in 1..50u8 {
        no_root[0] = good[0].wrapping_add(delta);
        if PrivacyTransfer::decode(&no_root).is_err() {
            break;
        }
    }
    out.push(no_root);
    let mut inf = good.clone();
    inf[0..32].fill(0);
    inf[31] = 0x40;
    out.push(inf);
    let mut flipped = good.clone();
    flipped[31] ^= 0x80;
    out.push(flipped);
    let mut both = good.clone();
    both[127] |= 0xc0;
    out.push(both);
    out.push(good[..TRANSFER_BYTES - 1].to_vec());
    out.push(good);
    out
}

/// An engine whose device is gone.
struct Failing;

impl MillerLoops for Failing {
    fn miller_product(
        &self,
        _: &[ark_bn254::G1Affine],
        _: &[ark_bn254::G2Affine],
    ) -> Result<ark_bn254::Fq12, String> {
        Err("device lost".into())
    }
}

/// A zk executor on each backend present (a GPU preferred, PoCL's CPU device otherwise).
fn device_executors() -> Vec<(String, gpu_executor::zk::ZkExecutor)> {
    use gpu_executor::zk::{ZkConfig, ZkExecutor};
    use gpu_executor::BackendKind;
    let devices = gpu_executor::list_devices();
    let pool = std::sync::Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool"),
    );
    let mut out = Vec::new();
    for kind in [BackendKind::Cuda, BackendKind::Opencl] {
        let Some(info) = gpu_executor::preferred_device(&devices, kind) else {
            eprintln!("SKIPPING {kind} Miller loops: no device (or feature not built)");
            continue;
        };
        match gpu_executor::open_device(kind, info.index, 1) {
            Ok(dev) => {
                let e = ZkExecutor::with_device(Some(dev), pool.clone(), ZkConfig::always_gpu());
                if e.backend_name() != "cpu" {
                    out.push((format!("{kind} ({})", info.name), e));
                }
            }
            Err(e) => eprintln!("SKIPPING {kind} Miller loops: {e}"),
        }
    }
    out
}

#[test]
fn bad_proofs_fail_alone_and_in_batches() {
    let s = scenario(TEST_DEPTH);
    let tx = prove_transfer(transfer_circuit(&s, [100, 15], 5), 3).unwrap();
    let pvk = prepare(&transfer_key().vk);
    let inputs = tx.public.to_field_elements();

    // Wrong public inputs: fee changed, nullifier changed.
    let mut wrong = inputs.clone();
    wrong[5] = Fr::from(6u64);
    assert!(!verify_proof(&pvk, &tx.proof, &wrong).unwrap());
    let mut wrong_nf = inputs.clone();
    wrong_nf[1] += Fr::from(1u64);

    // Batch: rerandomised copies are distinct valid proofs.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
    let mut batch: Vec<ProofWithInputs> = (0..12)
        .map(|_| ProofWithInputs {
            proof: ark_groth16::Groth16::<ark_bn254::Bn254>::rerandomize_proof(
                &transfer_key().vk,
                &tx.proof,
                &mut rng,
            ),
            inputs: inputs.clone(),
        })
        .collect();
    let good = batch.clone();
    batch[3].inputs = wrong.clone();
    batch[7].proof.c = (batch[7].proof.c + transfer_key().vk.alpha_g1).into_affine();
    batch[9].inputs = wrong_nf.clone();
    batch[10].inputs.pop();
    let bad_every_7: Vec<usize> = (0..70).step_by(7).collect();
    let mut big: Vec<ProofWithInputs> = good.iter().cycle().take(70).cloned().collect();
    for (i, p) in big.iter_mut().enumerate() {
        p.proof = ark_groth16::Groth16::<ark_bn254::Bn254>::rerandomize_proof(
            &transfer_key().vk,
            &p.proof,
            &mut rng,
        );
        if i % 7 == 0 {
            p.proof.a = (p.proof.a + transfer_key().vk.alpha_g1).into_affine();
        }
    }
    let mut one_bad: Vec<ProofWithInputs> = good.iter().cycle().take(40).cloned().collect();
    one_bad[29].inputs = wrong.clone();
    let mut three_bad = one_bad.clone();
    three_bad[2].inputs = wrong_nf.clone();
    three_bad[17].inputs.push(Fr::from(1u64));

    // The same verdicts with the Miller loops on the CPU, on arkworks' per-pair loops
    // (the engine path without a device), and on every device present (PoCL in CI).
    let ark = ArkPairs;
    let (ark_dec, ark_lying) = (ArkDecoding(Answers::Ark), ArkDecoding(Answers::NoneFound));
    let devices = device_executors();
    let mut engines: Vec<(String, Option<&dyn MillerLoops>)> = vec![
        ("cpu".into(), None),
        ("arkworks pairs".into(), Some(&ark)),
        ("arkworks pairs and roots".into(), Some(&ark_dec)),
        ("arkworks pairs, no roots".into(), Some(&ark_lying)),
    ];
    let mixed = mixed_payloads(&tx);
    let mixed_refs: Vec<&[u8]> = mixed.iter().map(|p| p.as_slice()).collect();
    let mixed_want = verify_payloads_on(&pvk, &mixed_refs, None).expect("cpu");
    assert_eq!(
        mixed_want,
        vec![true, false, false, false, false, false, false, true]
    );
    let device_engines: Vec<(String, DeviceMillerLoops<'_>)> = devices
        .iter()
        .map(|(l, e)| (l.clone(), DeviceMillerLoops(e)))
        .collect();
    for (l, e) in &device_engines {
        engines.push((l.clone(), Some(e)));
    }
    for (label, engine) in engines {
        let run = |b: &[ProofWithInputs]| batch_verify_on(&pvk, b, engine).expect(&label);
        let ok = run(&good);
        assert!(ok.all_valid() && ok.batch_check_passed, "{label}");
        let out = run(&batch);
        assert_eq!(out.invalid, vec![3, 7, 9, 10], "{label}");
        assert!(!out.batch_check_passed, "{label}");
        // Larger batches (the bad ones are found by halving): one bad proof, a few spread
        // out, a malformed one beside them, and many.
        assert_eq!(run(&big).invalid, bad_every_7, "{label}");
        assert_eq!(run(&one_bad).invalid, vec![29], "{label}");
        assert_eq!(run(&three_bad).invalid, vec![2, 17, 29], "{label}");
        let payloads: Vec<Vec<u8>> = (0..3).map(|_| tx.encode()).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        assert_eq!(
            verify_payloads_on(&pvk, &refs, engine).expect(&label),
            vec![true; 3]
        );
        // The calibration check times a verifying batch and returns the equation's
        // outcome: true for real proofs, false for the calibration payloads (random
        // points, which decode but do not verify), an error for one that does not decode.
        assert_eq!(check_payloads_on(&pvk, &refs, engine), Ok(true), "{label}");
        let cal = calibration_payloads(70);
        assert_eq!(cal[3], cal[67]);
        let cal_refs: Vec<&[u8]> = cal.iter().map(|p| p.as_slice()).collect();
        assert_eq!(
            check_payloads_on(&pvk, &cal_refs, engine),
            Ok(false),
            "{label}"
        );
        assert_eq!(
            verify_payloads_on(&pvk, &cal_refs[..5], engine).expect(&label),
            vec![false; 5]
        );
        // Every way a point can fail decoding, beside valid payloads (on a device: the
        // roots and B's subgroup test on the device, the failures decided on the CPU).
        assert_eq!(
            verify_payloads_on(&pvk, &mixed_refs, engine).expect(&label),
            mixed_want,
            "{label}"
        );
        let short = [&refs[0][..TRANSFER_BYTES - 1]];
        assert!(check_payloads_on(&pvk, &short, engine).is_err(), "{label}");
        eprintln!("batch verification with Miller loops on {label}: ok");
    }
    assert_eq!(batch_verify(&pvk, &batch).invalid, vec![3, 7, 9, 10]);
    // A failing engine decides nothing: the error comes back.
    let err = batch_verify_on(&pvk, &good, Some(&Failing)).unwrap_err();
    assert!(err.contains("device lost"), "{err}");
    let err =
        verify_payloads_on(&pvk, &mixed_refs, Some(&ArkDecoding(Answers::Fails))).unwrap_err();
    assert!(err.contains("device lost"), "{err}");
    let err = batch_verify_on(&pvk, &good, Some(&ArkDecoding(Answers::Fails))).unwrap_err();
    assert!(err.contains("device lost while scaling"), "{err}");
    // A wrong scaling fails every batch check and decides nothing either: the halving
    // ends in single verifications on the CPU, with the right verdicts.
    let wrong_scale =
        batch_verify_on(&pvk, &batch, Some(&ArkDecoding(Answers::Unscaled))).expect("engine");
    assert_eq!(wrong_scale.invalid, vec![3, 7, 9, 10]);
    assert!(!wrong_scale.batch_check_passed);
    assert!(
        batch_verify_on(&pvk, &good, Some(&ArkDecoding(Answers::Unscaled)))
            .expect("engine")
            .all_valid()
    );
    for (label, e) in &devices {
        assert_eq!(e.stats().gpu_failures, 0, "{label}");
    }

    // Bad encodings: wrong length, point off the curve / not decompressible, field element
    // out of range.
    let bytes = tx.encode();
    assert!(matches!(
        PrivacyTransfer::decode(&bytes[..TRANSFER_BYTES - 1]),
        Err(ZkError::Encoding { .. })
    ));
    let mut off = bytes.clone();
    let mut found = false;
    for delta in 1..50u8 {
        off[0] = bytes[0].wrapping_add(delta);
        if let Err(ZkError::Encoding { what, reason }) = PrivacyTransfer::decode(&off) {
            assert_eq!(what, "proof.A");
            assert!(reason.contains("curve"), "{reason}");
            found = true;
            break;
        }
    }
    assert!(found);
    let mut big = bytes.clone();
    big[128..160].copy_from_slice(&[0xff; 32]);
    let err = PrivacyTransfer::decode(&big).unwrap_err();
    assert!(err.to_string().contains("root"), "{err}");
    let mut inf = bytes.clone();
    inf[32..96].copy_from_slice(&[0; 64]);
    inf[95] = 0x40; // ark-serialize infinity flag
    let err = PrivacyTransfer::decode(&inf).unwrap_err();
    assert!(err.to_string().contains("proof.B"), "{err}");
    assert!(!tx.proof.a.is_zero());
}

#[test]
fn value_imbalance_and_range_violation_are_unprovable() {
    let s = scenario(TEST_DEPTH);
    // 70 + 50 != 100 + 16 + 5
    let err = prove_transfer(transfer_circuit(&s, [100, 16], 5), 5).unwrap_err();
    assert!(matches!(err, ZkError::Unsatisfied(_)), "{err}");
    // Spending a note under a root that does not contain it.
    let mut c = transfer_circuit(&s, [100, 15], 5);
    c.root = Fr::from(1234u64);
    assert!(matches!(prove_transfer(c, 6), Err(ZkError::Unsatisfied(_))));
    // Wrong spending key: the commitment differs, so the path does not reach the root.
    let mut c = transfer_circuit(&s, [100, 15], 5);
    c.inputs[0].spending_key = Fr::from(1u64);
    assert!(matches!(prove_transfer(c, 7), Err(ZkError::Unsatisfied(_))));

    // Range check: a "negative" value (p - 1) or 2^64 cannot be allocated as a value.
    for bad in [-Fr::from(1u64), Fr::from(u64::MAX) + Fr::from(1u64)] {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let v = alloc_u64_checked(&cs, bad).unwrap();
        let _ = FpVar::new_witness(cs.clone(), || Ok(Fr::from(1u64))).unwrap();
        drop(v);
        assert!(!cs.is_satisfied().unwrap());
    }
    let cs = ConstraintSystem::<Fr>::new_ref();
    let _ = alloc_u64_checked(&cs, Fr::from(u64::MAX)).unwrap();
    assert!(cs.is_satisfied().unwrap());
    // Overflowing u64 sums do not wrap: u64::MAX + 1 in, 0 out, fee 0 is only possible if
    // the field wrapped at 2^64, which it does not.
    let cs = ConstraintSystem::<Fr>::new_ref();
    transfer_circuit(&s, [100, 15], 5)
        .generate_constraints(cs.clone())
        .unwrap();
    assert!(cs.is_satisfied().unwrap());
    eprintln!(
        "transfer circuit, depth {TEST_DEPTH}: {} constraints",
        cs.num_constraints()
    );
}

#[test]
fn default_depth_transfer_proves_verifies_and_applies() {
    // Full flow at the node's depth (20): dev set-up, proof, 296-byte payload, verification,
    // state rules.
    let depth = zk_privacy::tree::DEFAULT_DEPTH;
    let circuit = zk_privacy::bench::sample_transfer(depth).unwrap();
    let pk = zk_privacy::setup::dev_setup(TransferCircuit::blank(depth), b"depth-20").unwrap();
    let public = circuit.public_inputs();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(20);
    let proof = Groth16Prover::new(CpuProverBackend)
        .prove(&pk, circuit, &mut rng)
        .unwrap();
    let tx = PrivacyTransfer::decode(&PrivacyTransfer { proof, public }.encode()).unwrap();
    let pvk = prepare(&pk.vk);
    assert!(verify_proof(&pvk, &tx.proof, &tx.public.to_field_elements()).unwrap());
    // The pool accepts it once the root is known (sample_transfer's tree has 4 leaves).
    let pool = PrivacyPool::default();
    let mut state = MemoryPrivacyState::default();
    let mut tree = zk_privacy::tree::NoteTree::new(depth).unwrap();
    let sk = Fr::from(4242u64);
    let pk_owner = zk_privacy::note::public_key(sk);
    let leaves = [
        Fr::from(1000u64),
        zk_privacy::note::Note::new(70, pk_owner, Fr::from(1u64)).commitment(),
        Fr::from(1001u64),
        zk_privacy::note::Note::new(50, pk_owner, Fr::from(2u64)).commitment(),
    ];
    for (k, pair) in leaves.chunks(2).enumerate() {
        let deposit = zk_privacy::TransferPublicInputs {
            root: tree.root(),
            nullifiers: [Fr::from(10 + 2 * k as u64), Fr::from(11 + 2 * k as u64)],
            commitments: [pair[0], pair[1]],
            fee: 0,
        };
        pool.apply_transfer(&mut state, &deposit).unwrap().unwrap();
        tree.append(pair[0]).unwrap();
        tree.append(pair[1]).unwrap();
    }
    assert_eq!(tree.root(), tx.public.root);
    pool.apply_transfer(&mut state, &tx.public)
        .unwrap()
        .unwrap();
    assert!(matches!(
        pool.apply_transfer(&mut state, &tx.public).unwrap(),
        Err(Rejection::NullifierSpent(_))
    ));
}
