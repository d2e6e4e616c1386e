//! Crypto helpers shared by the host ABI and transactions.

use sha2::Digest;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// Keccak-256 of `data`.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    sha3::Keccak256::digest(data).into()
}

/// Verifies an Ed25519 signature (strict verification: no malleable signatures, no small-order
/// keys). Malformed keys or signatures verify as `false`.
pub fn ed25519_verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(pk) = <[u8; 32]>::try_from(public_key) else {
        return false;
    };
    let Ok(sig) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&pk) else {
        return false;
    };
    vk.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
        .is_ok()
}

/// Recovers the secp256k1 public key (64 bytes, `x || y` big-endian) that signed the 32-byte
/// prehash `hash` with signature `sig` (`r || s`, 64 bytes) and recovery id `recid` (0..=3).
/// `None` when anything is malformed or nothing recovers.
pub fn secp256k1_recover(hash: &[u8], sig: &[u8], recid: i32) -> Option<[u8; 64]> {
    use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
    let recid = RecoveryId::from_byte(u8::try_from(recid).ok()?)?;
    let sig = Signature::from_slice(sig).ok()?;
    let vk = VerifyingKey::recover_from_prehash(hash, &sig, recid).ok()?;
    let point = vk.to_encoded_point(false);
    let bytes = point.as_bytes();
    let mut out = [0u8; 64];
    out.copy_from_slice(bytes.get(1..65)?);
    Some(out)
}
