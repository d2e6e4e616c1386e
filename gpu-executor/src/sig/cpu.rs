//! CPU reference for signature verification: `ed25519-dalek` `verify_strict` and `k256`,
//! one signature at a time, spread over an explicit rayon pool. Every GPU backend is tested
//! against these functions, and they are the fallback when a device fails.

use ed25519_dalek::{Signature as EdSignature, VerifyingKey as EdVerifyingKey};
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, Signature as EcSignature, VerifyingKey as EcVerifyingKey};
use rayon::prelude::*;
use rayon::ThreadPool;
use sha3::{Digest, Keccak256};

use super::{EcrecoverItem, Ed25519Item, RecoveredKey, Secp256k1Item};

/// Ed25519 under the rules of `ed25519-dalek` `verify_strict` (docs/SIGNATURES.md).
pub fn ed25519_verify_one(item: &Ed25519Item<'_>) -> bool {
    let Ok(key) = EdVerifyingKey::from_bytes(&item.public_key) else {
        return false;
    };
    let signature = EdSignature::from_bytes(&item.signature);
    key.verify_strict(item.message, &signature).is_ok()
}

/// secp256k1 ECDSA over a 32-byte prehash, as `k256` verifies it. With `require_low_s`
/// false, a high `s` is first replaced by `n - s` (the same signature, other sign of `R`).
pub fn secp256k1_verify_one(item: &Secp256k1Item, require_low_s: bool) -> bool {
    let Ok(key) = EcVerifyingKey::from_sec1_bytes(item.public_key.as_bytes()) else {
        return false;
    };
    let Ok(signature) = EcSignature::from_slice(&item.signature) else {
        return false;
    };
    let signature = if require_low_s {
        signature
    } else {
        signature.normalize_s().unwrap_or(signature)
    };
    key.verify_prehash(&item.hash, &signature).is_ok()
}

/// The recovery parity encoded by an Ethereum `v`: 27/28 (legacy) or 0/1 (typed
/// transactions). Anything else is rejected.
pub fn ecrecover_parity(v: u8) -> Option<bool> {
    match v {
        0 | 27 => Some(false),
        1 | 28 => Some(true),
        _ => None,
    }
}

/// Ethereum-style public key recovery through `k256` `recover_from_prehash`.
pub fn ecrecover_one(item: &EcrecoverItem, require_low_s: bool) -> Option<RecoveredKey> {
    let mut odd = ecrecover_parity(item.signature[64])?;
    let signature = EcSignature::from_slice(&item.signature[..64]).ok()?;
    let signature = if require_low_s {
        signature
    } else if let Some(normalized) = signature.normalize_s() {
        // (r, n - s) is a signature for -R: the recovered key is the same.
        odd = !odd;
        normalized
    } else {
        signature
    };
    let id = RecoveryId::new(odd, false);
    let key = EcVerifyingKey::recover_from_prehash(&item.hash, &signature, id).ok()?;
    let point = key.to_encoded_point(false);
    let mut public_key = [0u8; 64];
    public_key.copy_from_slice(&point.as_bytes()[1..65]);
    Some(RecoveredKey::from_public_key(public_key))
}

/// Keccak-256 of the 64-byte public key, last 20 bytes.
pub fn eth_address(public_key: &[u8; 64]) -> [u8; 20] {
    let digest = Keccak256::digest(public_key);
    let mut address = [0u8; 20];
    address.copy_from_slice(&digest[12..]);
    address
}

/// Ed25519 batch on `pool`, one result per signature.
pub fn ed25519_verify_batch(pool: &ThreadPool, items: &[Ed25519Item<'_>]) -> Vec<bool> {
    pool.install(|| items.par_iter().map(ed25519_verify_one).collect())
}

/// ECDSA batch on `pool`, one result per signature.
pub fn secp256k1_verify_batch(
    pool: &ThreadPool,
    items: &[Secp256k1Item],
    require_low_s: bool,
) -> Vec<bool> {
    pool.install(|| {
        items
            .par_iter()
            .map(|item| secp256k1_verify_one(item, require_low_s))
            .collect()
    })
}

/// Recovery batch on `pool`, one result per signature.
pub fn ecrecover_batch(
    pool: &ThreadPool,
    items: &[EcrecoverItem],
    require_low_s: bool,
) -> Vec<Option<RecoveredKey>> {
    pool.install(|| {
        items
            .par_iter()
            .map(|item| ecrecover_one(item, require_low_s))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sig::Sec1PublicKey;

    #[test]
    fn parity_of_v() {
        assert_eq!(ecrecover_parity(27), Some(false));
        assert_eq!(ecrecover_parity(28), Some(true));
        assert_eq!(ecrecover_parity(0), Some(false));
        assert_eq!(ecrecover_parity(1), Some(true));
        for v in [2u8, 3, 26, 29, 35, 36, 255] {
            assert_eq!(ecrecover_parity(v), None, "v = {v}");
        }
    }

    #[test]
    fn sec1_lengths() {
        assert!(matches!(
            Sec1PublicKey::from_slice(&[2u8; 33]),
            Some(Sec1PublicKey::Compressed(_))
        ));
        assert!(matches!(
            Sec1PublicKey::from_slice(&[4u8; 65]),
            Some(Sec1PublicKey::Uncompressed(_))
        ));
        for len in [0usize, 1, 32, 34, 64, 66] {
            assert!(Sec1PublicKey::from_slice(&vec![4u8; len]).is_none());
        }
    }

    #[test]
    fn address_of_a_known_key() {
        // private key 1: the generator; its address is well known
        let g = k256::ecdsa::SigningKey::from_bytes(&{
            let mut k = [0u8; 32];
            k[31] = 1;
            k.into()
        })
        .expect("key 1");
        let point = g.verifying_key().to_encoded_point(false);
        let mut pk = [0u8; 64];
        pk.copy_from_slice(&point.as_bytes()[1..]);
        assert_eq!(
            hex::encode(eth_address(&pk)),
            "7e5f4552091a69125d5dfcb7b8c2659029395bdf"
        );
    }
}
