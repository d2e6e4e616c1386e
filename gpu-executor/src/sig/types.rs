//! Plain data types of the signature API.

use super::cpu::eth_address;

/// One Ed25519 verification: 32-byte public key `A`, message of any length, 64-byte `R || S`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ed25519Item<'a> {
    pub public_key: [u8; 32],
    pub message: &'a [u8],
    pub signature: [u8; 64],
}

/// A secp256k1 public key in SEC1 encoding, as `k256` reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sec1PublicKey {
    /// `02|03 || x` (33 bytes).
    Compressed([u8; 33]),
    /// `04 || x || y` (65 bytes).
    Uncompressed([u8; 65]),
}

impl Sec1PublicKey {
    /// A 33- or 65-byte SEC1 encoding; `None` for any other length. The prefix byte and the
    /// coordinates are checked by verification, not here (a bad key verifies as `false`).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        match bytes.len() {
            33 => {
                let mut key = [0u8; 33];
                key.copy_from_slice(bytes);
                Some(Self::Compressed(key))
            }
            65 => {
                let mut key = [0u8; 65];
                key.copy_from_slice(bytes);
                Some(Self::Uncompressed(key))
            }
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Compressed(key) => key,
            Self::Uncompressed(key) => key,
        }
    }
}

/// One ECDSA verification: SEC1 public key, 32-byte message hash, 64-byte `r || s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secp256k1Item {
    pub public_key: Sec1PublicKey,
    pub hash: [u8; 32],
    pub signature: [u8; 64],
}

/// One Ethereum-style recovery: 32-byte message hash and 65-byte `r || s || v`, `v` in
/// {0, 1, 27, 28}.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcrecoverItem {
    pub hash: [u8; 32],
    pub signature: [u8; 65],
}

/// A recovered key: uncompressed `x || y` and its Ethereum address
/// (last 20 bytes of Keccak-256 of `x || y`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveredKey {
    pub public_key: [u8; 64],
    pub address: [u8; 20],
}

impl RecoveredKey {
    /// The key and its address computed on the CPU.
    pub fn from_public_key(public_key: [u8; 64]) -> Self {
        Self {
            public_key,
            address: eth_address(&public_key),
        }
    }
}
