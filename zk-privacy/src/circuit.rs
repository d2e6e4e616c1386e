//! The confidential-transfer circuit (2 inputs -> 2 outputs + public fee).
//!
//! Public inputs, in this order: `root`, `nullifier[0]`, `nullifier[1]`,
//! `commitment[0]`, `commitment[1]`, `fee`.
//!
//! For each input note `i` (witness: spending key `sk`, value `v`, `rho`, leaf `position`,
//! Merkle siblings):
//! - `pk = H(1, sk)`, `cm = H(2, v, pk, rho)`;
//! - the path from `cm` at `position` hashes to `root` (skipped when `v = 0`: a zero-value
//!   input is a dummy that need not exist in the tree, as in Zcash);
//! - `nullifier[i] = H(3, sk, cm, position)`.
//!
//! For each output note `j` (witness: value, owner public key, `rho`):
//! `commitment[j] = H(2, v, owner, rho)`.
//!
//! Every value and the fee are decomposed into 64 boolean bits (range check `< 2^64`), and
//! `v_in[0] + v_in[1] = v_out[0] + v_out[1] + fee` (no wrap-around: all terms are < 2^64 and
//! the field has 254 bits).

use ark_bn254::Fr;
use ark_ff::{PrimeField, Zero};
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::boolean::Boolean;
use ark_r1cs_std::eq::EqGadget;
use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::fields::FieldVar;
use ark_r1cs_std::select::CondSelectGadget;
use ark_relations::r1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};

use crate::error::{Result, ZkError};
use crate::note::{nullifier, public_key, Note};
use crate::poseidon::{hash_var, TAG_COMMITMENT, TAG_NULLIFIER, TAG_PUBLIC_KEY};
use crate::transfer::TransferPublicInputs;
use crate::tree::{check_depth, MerklePath};

/// Number of input and of output notes.
pub const ARITY: usize = 2;
/// Number of public inputs of the circuit.
pub const NUM_PUBLIC_INPUTS: usize = 1 + 2 * ARITY + 1;

/// The witness of one input note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputNote {
    pub spending_key: Fr,
    pub value: u64,
    pub rho: Fr,
    /// Leaf position and siblings; for a dummy (value 0) input any path of the right depth.
    pub path: MerklePath,
}

impl InputNote {
    pub fn note(&self) -> Note {
        Note::new(self.value, public_key(self.spending_key), self.rho)
    }
    pub fn nullifier(&self) -> Fr {
        nullifier(
            self.spending_key,
            self.note().commitment(),
            self.path.position,
        )
    }
    /// A zero-value dummy input (its path is not checked by the circuit).
    pub fn dummy(depth: usize, spending_key: Fr, rho: Fr, position: u64) -> Self {
        Self {
            spending_key,
            value: 0,
            rho,
            path: MerklePath {
                position,
                siblings: vec![Fr::zero(); depth],
            },
        }
    }
}

/// The confidential-transfer circuit with its witness.
#[derive(Clone, Debug)]
pub struct TransferCircuit {
    pub depth: usize,
    pub root: Fr,
    pub inputs: [InputNote; ARITY],
    pub outputs: [Note; ARITY],
    pub fee: u64,
}

impl TransferCircuit {
    /// A circuit of `depth` with an all-zero witness: for key generation only.
    pub fn blank(depth: usize) -> Self {
        let input = InputNote::dummy(depth, Fr::zero(), Fr::zero(), 0);
        let out = Note::new(0, Fr::zero(), Fr::zero());
        Self {
            depth,
            root: Fr::zero(),
            inputs: [input.clone(), input],
            outputs: [out, out],
            fee: 0,
        }
    }

    /// Checks the witness shape (depth, path lengths, positions).
    pub fn check_shape(&self) -> Result<()> {
        check_depth(self.depth)?;
        for (i, input) in self.inputs.iter().enumerate() {
            if input.path.siblings.len() != self.depth {
                return Err(ZkError::Witness(format!(
                    "input {i}: path of {} siblings for depth {}",
                    input.path.siblings.len(),
                    self.depth
                )));
            }
            if self.depth < 64 && input.path.position >> self.depth != 0 {
                return Err(ZkError::Witness(format!(
                    "input {i}: position {} outside a tree of depth {}",
                    input.path.position, self.depth
                )));
            }
        }
        Ok(())
    }

    /// The public inputs this witness proves.
    pub fn public_inputs(&self) -> TransferPublicInputs {
        TransferPublicInputs {
            root: self.root,
            nullifiers: [self.inputs[0].nullifier(), self.inputs[1].nullifier()],
            commitments: [self.outputs[0].commitment(), self.outputs[1].commitment()],
            fee: self.fee,
        }
    }
}

/// Range-checked allocation: allocates `value` as a witness together with 64 boolean
/// witnesses (the low 64 bits of its integer) and enforces `value = sum bits * 2^i`. A
/// value of 2^64 or more (e.g. a "negative" field element) leaves the system unsatisfied.
pub fn alloc_u64_checked(
    cs: &ConstraintSystemRef<Fr>,
    value: Fr,
) -> Result<FpVar<Fr>, SynthesisError> {
    let low = value.into_bigint().0[0];
    let var = FpVar::new_witness(cs.clone(), || Ok(value))?;
    let mut terms = Vec::with_capacity(64);
    let mut weight = Fr::from(1u64);
    for i in 0..64 {
        let bit = Boolean::new_witness(cs.clone(), || Ok((low >> i) & 1 == 1))?;
        terms.push(FpVar::from(bit) * weight);
        weight = weight + weight;
    }
    terms.iter().sum::<FpVar<Fr>>().enforce_equal(&var)?;
    Ok(var)
}

fn alloc_u64(cs: &ConstraintSystemRef<Fr>, value: u64) -> Result<FpVar<Fr>, SynthesisError> {
    alloc_u64_checked(cs, Fr::from(value))
}

fn constant(x: u64) -> FpVar<Fr> {
    FpVar::constant(Fr::from(x))
}

impl ConstraintSynthesizer<Fr> for TransferCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        self.check_shape()
            .map_err(|_| SynthesisError::AssignmentMissing)?;
        let public = self.public_inputs();

        // Public inputs, in the documented order.
        let root = FpVar::new_input(cs.clone(), || Ok(public.root))?;
        let nf_pub = [
            FpVar::new_input(cs.clone(), || Ok(public.nullifiers[0]))?,
            FpVar::new_input(cs.clone(), || Ok(public.nullifiers[1]))?,
        ];
        let cm_pub = [
            FpVar::new_input(cs.clone(), || Ok(public.commitments[0]))?,
            FpVar::new_input(cs.clone(), || Ok(public.commitments[1]))?,
        ];
        let fee_pub = FpVar::new_input(cs.clone(), || Ok(Fr::from(public.fee)))?;
        // Range check of the fee.
        alloc_u64(&cs, self.fee)?.enforce_equal(&fee_pub)?;

        let mut value_in = Vec::with_capacity(ARITY);
        for (input, nf) in self.inputs.iter().zip(&nf_pub) {
            let sk = FpVar::new_witness(cs.clone(), || Ok(input.spending_key))?;
            let value = alloc_u64(&cs, input.value)?;
            let rho = FpVar::new_witness(cs.clone(), || Ok(input.rho))?;
            let pk = hash_var(cs.clone(), &[constant(TAG_PUBLIC_KEY), sk.clone()])?;
            let cm = hash_var(
                cs.clone(),
                &[constant(TAG_COMMITMENT), value.clone(), pk, rho],
            )?;
            // Merkle path; position = sum bits * 2^level.
            let mut cur = cm.clone();
            let mut position = FpVar::<Fr>::zero();
            let mut weight = Fr::from(1u64);
            for (level, sibling) in input.path.siblings.iter().enumerate() {
                let bit = Boolean::new_witness(cs.clone(), || {
                    Ok((input.path.position >> level) & 1 == 1)
                })?;
                let sib = FpVar::new_witness(cs.clone(), || Ok(*sibling))?;
                let left = FpVar::conditionally_select(&bit, &sib, &cur)?;
                let right = FpVar::conditionally_select(&bit, &cur, &sib)?;
                cur = hash_var(cs.clone(), &[left, right])?;
                position += FpVar::from(bit) * weight;
                weight = weight + weight;
            }
            let is_real = value.is_neq(&FpVar::zero())?;
            cur.conditional_enforce_equal(&root, &is_real)?;
            let computed_nf = hash_var(cs.clone(), &[constant(TAG_NULLIFIER), sk, cm, position])?;
            computed_nf.enforce_equal(nf)?;
            value_in.push(value);
        }

        let mut value_out = Vec::with_capacity(ARITY);
        for (output, cm) in self.outputs.iter().zip(&cm_pub) {
            let value = alloc_u64(&cs, output.value)?;
            let owner = FpVar::new_witness(cs.clone(), || Ok(output.owner))?;
            let rho = FpVar::new_witness(cs.clone(), || Ok(output.rho))?;
            let computed = hash_var(
                cs.clone(),
                &[constant(TAG_COMMITMENT), value.clone(), owner, rho],
            )?;
            computed.enforce_equal(cm)?;
            value_out.push(value);
        }

        // Value conservation: inputs = outputs + fee.
        let total_in = value_in.iter().sum::<FpVar<Fr>>();
        let total_out = value_out.iter().sum::<FpVar<Fr>>() + fee_pub;
        total_in.enforce_equal(&total_out)?;
        Ok(())
    }
}
