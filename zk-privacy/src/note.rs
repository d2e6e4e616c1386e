//! Notes, keys, commitments and nullifiers (native side; the circuit recomputes the same
//! values with the Poseidon gadget).
//!
//! - `public_key = H(TAG_PUBLIC_KEY, spending_key)`
//! - `commitment = H(TAG_COMMITMENT, value, public_key, rho)` (`rho` is the note's random
//!   blinding/uniqueness value)
//! - `nullifier = H(TAG_NULLIFIER, spending_key, commitment, position)` where `position` is
//!   the leaf index of the commitment in the note-commitment tree. Only the owner of the
//!   spending key can compute it, and a leaf has exactly one nullifier, so spending the
//!   same note twice reveals the same nullifier.

use ark_bn254::Fr;

use crate::poseidon::{hash, TAG_COMMITMENT, TAG_NULLIFIER, TAG_PUBLIC_KEY};

/// The public key (note owner address) of a spending key.
pub fn public_key(spending_key: Fr) -> Fr {
    hash(&[Fr::from(TAG_PUBLIC_KEY), spending_key])
}

/// A note: `value` units owned by `owner` (a public key), made unique by `rho`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note {
    pub value: u64,
    pub owner: Fr,
    pub rho: Fr,
}

impl Note {
    pub fn new(value: u64, owner: Fr, rho: Fr) -> Self {
        Self { value, owner, rho }
    }
    /// The note commitment that goes into the tree.
    pub fn commitment(&self) -> Fr {
        commitment(self.value, self.owner, self.rho)
    }
}

/// `H(TAG_COMMITMENT, value, owner, rho)`.
pub fn commitment(value: u64, owner: Fr, rho: Fr) -> Fr {
    hash(&[Fr::from(TAG_COMMITMENT), Fr::from(value), owner, rho])
}

/// `H(TAG_NULLIFIER, spending_key, commitment, position)`.
pub fn nullifier(spending_key: Fr, commitment: Fr, position: u64) -> Fr {
    hash(&[
        Fr::from(TAG_NULLIFIER),
        spending_key,
        commitment,
        Fr::from(position),
    ])
}
