//! A Groth16 prover over BN254 whose MSMs and NTTs go through a [`ProverBackend`].
//!
//! It follows `ark-groth16` 0.5 step for step (libsnark R1CS-to-QAP reduction, the same
//! query layout), so for the same randomness `(r, s)` it returns exactly the proof that
//! `Groth16::<Bn254>::create_proof_with_reduction` returns, and `ark-groth16` verifies it.
//!
//! 1. The witness is computed on the CPU by synthesising the circuit
//!    ([`synthesize`]); the constraint matrices are built once per circuit and reused.
//! 2. H(x) = (A(x) B(x) - C(x)) / Z(x) is computed with three inverse NTTs, three coset
//!    NTTs and one inverse coset NTT ([`witness_map`]).
//! 3. A, B (in G1 and G2) and C are five MSMs ([`create_proof`]).

use std::sync::Arc;

use ark_bn254::{Bn254, Fr, G1Projective};
use ark_ec::CurveGroup;
use ark_ff::{FftField, Field, One, Zero};
use ark_groth16::{Proof, ProvingKey};
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
use ark_relations::r1cs::{
    ConstraintMatrices, ConstraintSynthesizer, ConstraintSystem, OptimizationGoal, SynthesisMode,
};
use ark_std::rand::Rng;
use ark_std::UniformRand;
use rayon::prelude::*;

use crate::backend::ProverBackend;
use crate::error::{Result, ZkError};

/// A circuit's witness, ready for the QAP reduction.
#[derive(Clone, Debug)]
pub struct Synthesized {
    /// The constraint matrices (shared between all proofs of one circuit).
    pub matrices: Arc<ConstraintMatrices<Fr>>,
    /// Number of instance variables, the constant `1` included.
    pub num_inputs: usize,
    /// Number of constraints.
    pub num_constraints: usize,
    /// `[1, public inputs..., witness...]`.
    pub assignment: Vec<Fr>,
}

impl Synthesized {
    /// The public inputs (without the leading constant 1).
    pub fn public_inputs(&self) -> &[Fr] {
        &self.assignment[1..self.num_inputs]
    }
}

/// Synthesises `circuit` in proving mode. With `matrices` given (from an earlier synthesis
/// of the same circuit), the matrices are not rebuilt: only the assignment is computed.
pub fn synthesize<C: ConstraintSynthesizer<Fr>>(
    circuit: C,
    matrices: Option<Arc<ConstraintMatrices<Fr>>>,
) -> Result<Synthesized> {
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_optimization_goal(OptimizationGoal::Constraints);
    cs.set_mode(SynthesisMode::Prove {
        construct_matrices: matrices.is_none(),
    });
    circuit.generate_constraints(cs.clone())?;
    cs.finalize();
    let matrices = match matrices {
        Some(m) => m,
        None => {
            if !cs.is_satisfied()? {
                let which = cs
                    .which_is_unsatisfied()?
                    .unwrap_or_else(|| "unknown".to_string());
                return Err(ZkError::Unsatisfied(which));
            }
            Arc::new(cs.to_matrices().ok_or_else(|| {
                ZkError::Synthesis("constraint matrices were not constructed".into())
            })?)
        }
    };
    let num_inputs = cs.num_instance_variables();
    let num_constraints = cs.num_constraints();
    let cs = cs
        .into_inner()
        .ok_or_else(|| ZkError::Synthesis("constraint system still borrowed".into()))?;
    if num_inputs != matrices.num_instance_variables
        || num_constraints != matrices.num_constraints
        || cs.witness_assignment.len() != matrices.num_witness_variables
    {
        return Err(ZkError::Synthesis(format!(
            "circuit shape changed: {} inputs / {} witnesses, matrices have {} / {}",
            num_inputs,
            cs.witness_assignment.len(),
            matrices.num_instance_variables,
            matrices.num_witness_variables
        )));
    }
    let mut assignment = cs.instance_assignment;
    assignment.extend_from_slice(&cs.witness_assignment);
    Ok(Synthesized {
        matrices,
        num_inputs,
        num_constraints,
        assignment,
    })
}

fn inner_product(terms: &[(Fr, usize)], assignment: &[Fr]) -> Fr {
    terms.iter().fold(Fr::zero(), |acc, (coeff, index)| {
        let v = assignment[*index];
        if coeff.is_one() {
            acc + v
        } else {
            acc + v * coeff
        }
    })
}

/// The QAP witness: the coefficients of H(x), computed through `backend`'s NTTs. Also checks
/// that the assignment satisfies every constraint.
pub fn witness_map<B: ProverBackend + ?Sized>(
    backend: &B,
    matrices: &ConstraintMatrices<Fr>,
    num_inputs: usize,
    assignment: &[Fr],
) -> Result<Vec<Fr>> {
    let num_constraints = matrices.num_constraints;
    let expected = matrices.num_instance_variables + matrices.num_witness_variables;
    if assignment.len() != expected || num_inputs != matrices.num_instance_variables {
        return Err(ZkError::Synthesis(format!(
            "assignment of {} values ({} inputs) for a circuit of {} ({} inputs)",
            assignment.len(),
            num_inputs,
            expected,
            matrices.num_instance_variables
        )));
    }
    let domain = Radix2EvaluationDomain::<Fr>::new(num_constraints + num_inputs)
        .ok_or_else(|| ZkError::Synthesis("circuit too large for BN254's NTT domain".into()))?;
    let n = domain.size();
    let mut a = vec![Fr::zero(); n];
    let mut b = vec![Fr::zero(); n];
    let mut c = vec![Fr::zero(); n];
    a[..num_constraints]
        .par_iter_mut()
        .zip(b[..num_constraints].par_iter_mut())
        .zip(c[..num_constraints].par_iter_mut())
        .enumerate()
        .for_each(|(i, ((a, b), c))| {
            *a = inner_product(&matrices.a[i], assignment);
            *b = inner_product(&matrices.b[i], assignment);
            *c = inner_product(&matrices.c[i], assignment);
        });
    if let Some(i) = (0..num_constraints)
        .into_par_iter()
        .find_first(|&i| a[i] * b[i] != c[i])
    {
        return Err(ZkError::Unsatisfied(format!("constraint #{i}")));
    }
    a[num_constraints..num_constraints + num_inputs].copy_from_slice(&assignment[..num_inputs]);

    let g = Fr::GENERATOR;
    for v in [&mut a, &mut b, &mut c] {
        backend.intt(v)?;
        backend.coset_ntt(v, g)?;
    }
    let vanishing_inv = domain
        .evaluate_vanishing_polynomial(g)
        .inverse()
        .ok_or_else(|| ZkError::Synthesis("vanishing polynomial is zero on the coset".into()))?;
    a.par_iter_mut()
        .zip(b.par_iter())
        .zip(c.par_iter())
        .for_each(|((a, b), c)| {
            *a = (*a * b - c) * vanishing_inv;
        });
    drop(b);
    drop(c);
    backend.coset_intt(&mut a, g)?;
    Ok(a)
}

fn key_mismatch(what: &str, key: usize, circuit: usize) -> ZkError {
    ZkError::Synthesis(format!(
        "proving key does not match the circuit: {what} has {key} entries, circuit needs {circuit}"
    ))
}

/// A Groth16 proof for an already-synthesised circuit with randomness `(r, s)`.
pub fn create_proof<B: ProverBackend + ?Sized>(
    backend: &B,
    pk: &ProvingKey<Bn254>,
    r: Fr,
    s: Fr,
    witness: &Synthesized,
) -> Result<Proof<Bn254>> {
    let num_inputs = witness.num_inputs;
    let full = &witness.assignment;
    if pk.a_query.len() != full.len() {
        return Err(key_mismatch("a_query", pk.a_query.len(), full.len()));
    }
    if pk.b_g1_query.len() != full.len() || pk.b_g2_query.len() != full.len() {
        return Err(key_mismatch("b_query", pk.b_g2_query.len(), full.len()));
    }
    if pk.l_query.len() != full.len() - num_inputs {
        return Err(key_mismatch(
            "l_query",
            pk.l_query.len(),
            full.len() - num_inputs,
        ));
    }
    if pk.vk.gamma_abc_g1.len() != num_inputs {
        return Err(key_mismatch(
            "gamma_abc_g1",
            pk.vk.gamma_abc_g1.len(),
            num_inputs,
        ));
    }
    let h = witness_map(backend, &witness.matrices, num_inputs, full)?;
    if h.len() < pk.h_query.len() {
        return Err(key_mismatch("h_query", pk.h_query.len(), h.len()));
    }
    let assignment = &full[1..];
    // B in G2 is independent of the G1 terms: on a GPU backend it runs on the CPU while the
    // G1 MSMs run on the device.
    let (g1_terms, g2_b) = rayon::join(
        || -> Result<(G1Projective, G1Projective, G1Projective)> {
            let h_acc = backend.msm_g1(&pk.h_query, &h[..pk.h_query.len()])?;
            let l_aux_acc = backend.msm_g1(&pk.l_query, &full[num_inputs..])?;
            // A = alpha + sum a_i(x) w_i + r delta
            let g_a = pk.delta_g1 * r
                + pk.a_query[0]
                + backend.msm_g1(&pk.a_query[1..], assignment)?
                + pk.vk.alpha_g1;
            // B in G1 (only needed for C when r != 0)
            let g1_b = if r.is_zero() {
                G1Projective::zero()
            } else {
                pk.delta_g1 * s
                    + pk.b_g1_query[0]
                    + backend.msm_g1(&pk.b_g1_query[1..], assignment)?
                    + pk.beta_g1
            };
            // C = s A + r B1 - r s delta + L + H
            let g_c = g_a * s + g1_b * r - pk.delta_g1 * (r * s) + l_aux_acc + h_acc;
            Ok((g_a, g1_b, g_c))
        },
        || -> Result<ark_bn254::G2Projective> {
            // B in G2
            Ok(pk.vk.delta_g2 * s
                + pk.b_g2_query[0]
                + backend.msm_g2(&pk.b_g2_query[1..], assignment)?
                + pk.vk.beta_g2)
        },
    );
    let (g_a, _g1_b, g_c) = g1_terms?;
    let g2_b = g2_b?;
    Ok(Proof {
        a: g_a.into_affine(),
        b: g2_b.into_affine(),
        c: g_c.into_affine(),
    })
}

/// Groth16 prover over a backend.
#[derive(Clone, Debug, Default)]
pub struct Groth16Prover<B> {
    backend: B,
}

impl<B: ProverBackend> Groth16Prover<B> {
    pub fn new(backend: B) -> Self {
        Self { backend }
    }
    pub fn backend(&self) -> &B {
        &self.backend
    }
    /// Proves `circuit` with fresh randomness from `rng` (zero-knowledge).
    pub fn prove<C: ConstraintSynthesizer<Fr>, R: Rng>(
        &self,
        pk: &ProvingKey<Bn254>,
        circuit: C,
        rng: &mut R,
    ) -> Result<Proof<Bn254>> {
        let r = Fr::rand(rng);
        let s = Fr::rand(rng);
        self.prove_with_randomness(pk, circuit, r, s)
    }
    /// Proves `circuit` with the given randomness (equal to arkworks' proof for the same
    /// `(r, s)`).
    pub fn prove_with_randomness<C: ConstraintSynthesizer<Fr>>(
        &self,
        pk: &ProvingKey<Bn254>,
        circuit: C,
        r: Fr,
        s: Fr,
    ) -> Result<Proof<Bn254>> {
        let w = synthesize(circuit, None)?;
        create_proof(&self.backend, pk, r, s, &w)
    }
}
