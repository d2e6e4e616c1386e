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
use ark_ff::{Field, PrimeField};
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

/// Merkle node: `H(left, right)`. Equal to [`hash`] of the two elements (tested), computed
/// with a fixed-width permutation on arrays: the sponge allocates a fresh state per MDS
/// step, which made tree updates in block execution twice as slow.
pub fn hash_node(left: Fr, right: Fr) -> Fr {
    // A rate-2, capacity-1 sponge absorbing exactly two elements: state [0, l, r], one
    // permutation, output the first rate element.
    let mut state = [Fr::from(0u64), left, right];
    permute3(&mut state);
    state[1]
}

/// Round constants and MDS matrix of [`config`] as fixed-size arrays.
struct Tables {
    ark: Vec<[Fr; 3]>,
    mds: [[Fr; 3]; 3],
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let c = config();
        let row3 = |v: &Vec<Fr>| [v[0], v[1], v[2]];
        Tables {
            ark: c.ark.iter().map(row3).collect(),
            mds: [row3(&c.mds[0]), row3(&c.mds[1]), row3(&c.mds[2])],
        }
    })
}

/// `x^5` (the S-box, [`ALPHA`]).
fn sbox(x: Fr) -> Fr {
    let x2 = x.square();
    x2.square() * x
}

/// The Poseidon permutation of [`config`] (width 3): the same rounds as arkworks' sponge
/// (half the full rounds, the partial rounds, the other half), in place.
fn permute3(state: &mut [Fr; 3]) {
    let t = tables();
    let half = FULL_ROUNDS / 2;
    for (r, ark) in t.ark.iter().enumerate().take(FULL_ROUNDS + PARTIAL_ROUNDS) {
        for (s, c) in state.iter_mut().zip(ark) {
            *s += c;
        }
        if r < half || r >= half + PARTIAL_ROUNDS {
            for s in state.iter_mut() {
                *s = sbox(*s);
            }
        } else {
            state[0] = sbox(state[0]);
        }
        let v = *state;
        for (s, m) in state.iter_mut().zip(&t.mds) {
            // One lazily reduced dot product per row (ark-ff's `sum_of_products`).
            *s = Fr::sum_of_products(&v, m);
        }
    }
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
    fn fast_node_hash_equals_the_sponge() {
        use ark_std::UniformRand;
        let mut rng = ark_std::test_rng();
        for i in 0..200u64 {
            let (l, r) = if i < 4 {
                (Fr::from(i / 2), Fr::from(i % 2))
            } else {
                (Fr::rand(&mut rng), Fr::rand(&mut rng))
            };
            assert_eq!(hash_node(l, r), hash(&[l, r]), "inputs {i}");
        }
        assert_eq!(RATE + 1, 3, "hash_node assumes width 3");
        assert_eq!(ALPHA, 5, "sbox assumes x^5");
    }

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
