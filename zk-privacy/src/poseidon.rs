//! Poseidon over BN254 Fr: the native hash and its R1CS gadget, built on
//! `ark-crypto-primitives`' sponge so that both sides run the same permutation.
//!
//! Parameters: width 3 (rate 2, capacity 1), S-box x^5, 8 full and 57 partial rounds (the
//! Poseidon paper's choice for a 254-bit field at width 3, 128-bit security), round constants
//! and MDS matrix from the Grain LFSR (`find_poseidon_ark_and_mds`). A hash of `n` field
//! elements absorbs them into the sponge and squeezes one element. These are *not* circomlib's
//! constants: hashes differ from circomlib's Poseidon.
//!
//! Domain separation: every hash other than a Merkle node starts with a tag
//! ([`TAG_PUBLIC_KEY`], [`TAG_COMMITMENT`], [`TAG_NULLIFIER`]).

use std::sync::OnceLock;

use ark_bn254::Fr;
use ark_crypto_primitives::sponge::constraints::CryptographicSpongeVar;
use ark_crypto_primitives::sponge::poseidon::constraints::PoseidonSpongeVar;
use ark_crypto_primitives::sponge::poseidon::{
    find_poseidon_ark_and_mds, PoseidonConfig, PoseidonSponge,
};
use ark_crypto_primitives::sponge::CryptographicSponge;
use ark_ff::PrimeField;
use ark_r1cs_std::fields::fp::FpVar;
use ark_relations::r1cs::{ConstraintSystemRef, SynthesisError};

/// Rate of the sponge (field elements absorbed per permutation).
pub const RATE: usize = 2;
/// Full rounds.
pub const FULL_ROUNDS: usize = 8;
/// Partial rounds.
pub const PARTIAL_ROUNDS: usize = 57;
/// S-box exponent.
pub const ALPHA: u64 = 5;

/// Domain tag of `public_key = H(TAG_PUBLIC_KEY, spending_key)`.
pub const TAG_PUBLIC_KEY: u64 = 1;
/// Domain tag of `commitment = H(TAG_COMMITMENT, value, public_key, rho)`.
pub const TAG_COMMITMENT: u64 = 2;
/// Domain tag of `nullifier = H(TAG_NULLIFIER, spending_key, commitment, position)`.
pub const TAG_NULLIFIER: u64 = 3;

/// The Poseidon parameters (computed once per process).
pub fn config() -> &'static PoseidonConfig<Fr> {
    static CONFIG: OnceLock<PoseidonConfig<Fr>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let (ark, mds) = find_poseidon_ark_and_mds::<Fr>(
            u64::from(Fr::MODULUS_BIT_SIZE),
            RATE,
            FULL_ROUNDS as u64,
            PARTIAL_ROUNDS as u64,
            0,
        );
        PoseidonConfig::new(FULL_ROUNDS, PARTIAL_ROUNDS, ALPHA, mds, ark, RATE, 1)
    })
}

/// Native Poseidon hash of `inputs`.
pub fn hash(inputs: &[Fr]) -> Fr {
    let mut sponge = PoseidonSponge::new(config());
    sponge.absorb(&inputs);
    sponge.squeeze_field_elements::<Fr>(1)[0]
}

/// Merkle node: `H(left, right)`.
pub fn hash_node(left: Fr, right: Fr) -> Fr {
    hash(&[left, right])
}

/// The gadget of [`hash`]: same output for the same inputs.
pub fn hash_var(
    cs: ConstraintSystemRef<Fr>,
    inputs: &[FpVar<Fr>],
) -> Result<FpVar<Fr>, SynthesisError> {
    let mut sponge = PoseidonSpongeVar::new(cs, config());
    sponge.absorb(&inputs.to_vec())?;
    let mut out = sponge.squeeze_field_elements(1)?;
    out.pop().ok_or(SynthesisError::Unsatisfiable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_r1cs_std::alloc::AllocVar;
    use ark_r1cs_std::R1CSVar;
    use ark_relations::r1cs::ConstraintSystem;

    #[test]
    fn gadget_equals_native_for_each_arity() {
        for n in 1..=4u64 {
            let inputs: Vec<Fr> = (0..n).map(|i| Fr::from(i * 7 + 3)).collect();
            let cs = ConstraintSystem::<Fr>::new_ref();
            let vars: Vec<FpVar<Fr>> = inputs
                .iter()
                .map(|x| FpVar::new_witness(cs.clone(), || Ok(*x)).unwrap())
                .collect();
            let out = hash_var(cs.clone(), &vars).unwrap();
            assert_eq!(out.value().unwrap(), hash(&inputs), "arity {n}");
            assert!(cs.is_satisfied().unwrap());
        }
        assert_ne!(
            hash(&[Fr::from(1u64), Fr::from(2u64)]),
            hash(&[Fr::from(2u64), Fr::from(1u64)])
        );
    }
}
