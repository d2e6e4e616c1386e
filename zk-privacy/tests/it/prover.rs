use ark_bn254::{Bn254, Fr};
use ark_ec::{AffineRepr, CurveGroup};
use ark_groth16::Groth16;
use ark_std::UniformRand;
use rand::SeedableRng;
use zk_privacy::demo::SquareChainCircuit;
use zk_privacy::prover::{create_proof, synthesize};
use zk_privacy::verify::{prepare, verify_proof};
use zk_privacy::{CpuProverBackend, Groth16Prover, ZkError};

use crate::common::demo_key;

#[test]
fn prover_equals_arkworks_with_fixed_randomness_and_verifies() {
    let pk = demo_key();
    let pvk = prepare(&pk.vk);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let prover = Groth16Prover::new(CpuProverBackend);
    for (i, (r, s)) in [
        (Fr::rand(&mut rng), Fr::rand(&mut rng)),
        (Fr::from(0u64), Fr::from(0u64)),
        (Fr::from(0u64), Fr::from(3u64)),
    ]
    .into_iter()
    .enumerate()
    {
        let circuit = SquareChainCircuit::new(Fr::from(3u64 + i as u64), 64);
        let inputs = circuit.public_inputs();
        let ours = prover
            .prove_with_randomness(pk, circuit.clone(), r, s)
            .unwrap();
        let theirs =
            Groth16::<Bn254>::create_proof_with_reduction(circuit.clone(), pk, r, s).unwrap();
        assert_eq!(ours, theirs, "case {i}");
        assert!(verify_proof(&pvk, &ours, &inputs).unwrap());

        // Same with the matrices API of ark-groth16 and our shared-matrices path.
        let w = synthesize(circuit.clone(), None).unwrap();
        let theirs2 = Groth16::<Bn254>::create_proof_with_reduction_and_matrices(
            pk,
            r,
            s,
            &w.matrices,
            w.num_inputs,
            w.num_constraints,
            &w.assignment,
        )
        .unwrap();
        let w2 = synthesize(circuit, Some(w.matrices.clone())).unwrap();
        assert_eq!(w2.assignment, w.assignment);
        assert_eq!(
            create_proof(&CpuProverBackend, pk, r, s, &w2).unwrap(),
            theirs2
        );
    }
}

#[test]
fn tampered_proofs_and_wrong_inputs_fail() {
    let pk = demo_key();
    let pvk = prepare(&pk.vk);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
    let circuit = SquareChainCircuit::new(Fr::from(11u64), 64);
    let inputs = circuit.public_inputs();
    let proof = Groth16Prover::new(CpuProverBackend)
        .prove(pk, circuit, &mut rng)
        .unwrap();
    assert!(verify_proof(&pvk, &proof, &inputs).unwrap());
    let mut bad = proof.clone();
    bad.a = (bad.a + pk.vk.alpha_g1).into_affine();
    assert!(!verify_proof(&pvk, &bad, &inputs).unwrap());
    let mut bad = proof.clone();
    bad.c = (bad.c.into_group() + bad.c).into_affine();
    assert!(!verify_proof(&pvk, &bad, &inputs).unwrap());
    let mut bad = proof.clone();
    bad.b = pk.vk.gamma_g2;
    assert!(!verify_proof(&pvk, &bad, &inputs).unwrap());
    let mut wrong = inputs.clone();
    wrong[1] += Fr::from(1u64);
    assert!(!verify_proof(&pvk, &proof, &wrong).unwrap());
    assert!(matches!(
        verify_proof(&pvk, &proof, &inputs[..1]),
        Err(ZkError::PublicInputs(_))
    ));
    assert!(!proof.a.is_zero());
}

#[test]
fn unsatisfied_witness_and_mismatched_key_are_errors() {
    let pk = demo_key();
    // A circuit of another size does not fit the key.
    let err = Groth16Prover::new(CpuProverBackend)
        .prove_with_randomness(
            pk,
            SquareChainCircuit::new(Fr::from(1u64), 10),
            Fr::from(1u64),
            Fr::from(2u64),
        )
        .unwrap_err();
    assert!(matches!(err, ZkError::Synthesis(_)), "{err}");
}
