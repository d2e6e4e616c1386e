//! Groth16 parameters: deterministic development set-up from a seed, and checked
//! loading / saving of keys from files.
//!
//! **[`dev_setup`] is UNSAFE for production.** The toxic waste (alpha, beta, gamma, delta,
//! tau) is derived from the seed, so anyone who knows the seed can forge proofs. It exists so
//! that tests, benchmarks and development networks get the same keys on every machine.
//! Production keys come from a multi-party ceremony and are loaded with
//! [`load_proving_key`] / [`load_verifying_key`].

use std::path::Path;

use ark_bn254::{Bn254, Fr};
use ark_groth16::{Groth16, ProvingKey, VerifyingKey};
use ark_relations::r1cs::ConstraintSynthesizer;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

use crate::error::{Result, ZkError};

const PK_MAGIC: &[u8; 8] = b"SVMG16PK";
const VK_MAGIC: &[u8; 8] = b"SVMG16VK";

/// The rng that [`dev_setup`] draws the toxic waste from: ChaCha20 keyed by
/// `SHA-256("supervm/zk-privacy/dev-setup/v1" || seed)`.
pub fn dev_rng(seed: &[u8]) -> ChaCha20Rng {
    let mut h = Sha256::new();
    h.update(b"supervm/zk-privacy/dev-setup/v1");
    h.update(seed);
    ChaCha20Rng::from_seed(h.finalize().into())
}

/// Deterministic Groth16 parameters for `circuit` from `seed`. **UNSAFE for production:**
/// the seed determines the toxic waste (see the module docs).
pub fn dev_setup<C: ConstraintSynthesizer<Fr>>(
    circuit: C,
    seed: &[u8],
) -> Result<ProvingKey<Bn254>> {
    let mut rng = dev_rng(seed);
    Ok(Groth16::<Bn254>::generate_random_parameters_with_reduction(
        circuit, &mut rng,
    )?)
}

fn write_with_magic<T: CanonicalSerialize>(path: &Path, magic: &[u8; 8], value: &T) -> Result<()> {
    let mut bytes = Vec::with_capacity(8 + value.compressed_size());
    bytes.extend_from_slice(magic);
    value
        .serialize_compressed(&mut bytes)
        .map_err(|e| ZkError::encoding("key", e))?;
    std::fs::write(path, bytes).map_err(|e| ZkError::io(path, e))
}

fn read_with_magic<T: CanonicalDeserialize>(
    path: &Path,
    magic: &[u8; 8],
    what: &'static str,
) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| ZkError::io(path, e))?;
    decode_with_magic(&bytes, magic, what)
}

fn decode_with_magic<T: CanonicalDeserialize>(
    bytes: &[u8],
    magic: &[u8; 8],
    what: &'static str,
) -> Result<T> {
    let body = bytes
        .strip_prefix(magic.as_slice())
        .ok_or_else(|| ZkError::encoding(what, "missing file magic"))?;
    let mut reader = body;
    // `deserialize_compressed` validates: points on the curve and in the prime-order subgroup.
    let value = T::deserialize_compressed(&mut reader).map_err(|e| ZkError::encoding(what, e))?;
    if !reader.is_empty() {
        return Err(ZkError::encoding(
            what,
            format!("{} trailing bytes", reader.len()),
        ));
    }
    Ok(value)
}

/// Saves a proving key (magic `SVMG16PK` + ark-serialize compressed).
pub fn save_proving_key(pk: &ProvingKey<Bn254>, path: &Path) -> Result<()> {
    write_with_magic(path, PK_MAGIC, pk)
}

/// Loads a proving key saved by [`save_proving_key`], checking every point.
pub fn load_proving_key(path: &Path) -> Result<ProvingKey<Bn254>> {
    read_with_magic(path, PK_MAGIC, "proving key")
}

/// Saves a verifying key (magic `SVMG16VK` + ark-serialize compressed).
pub fn save_verifying_key(vk: &VerifyingKey<Bn254>, path: &Path) -> Result<()> {
    write_with_magic(path, VK_MAGIC, vk)
}

/// Loads a verifying key saved by [`save_verifying_key`], checking every point.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey<Bn254>> {
    read_with_magic(path, VK_MAGIC, "verifying key")
}

/// Decodes a verifying key from bytes in the [`save_verifying_key`] format.
pub fn decode_verifying_key(bytes: &[u8]) -> Result<VerifyingKey<Bn254>> {
    decode_with_magic(bytes, VK_MAGIC, "verifying key")
}

/// Encodes a verifying key in the [`save_verifying_key`] format.
pub fn encode_verifying_key(vk: &VerifyingKey<Bn254>) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(8 + vk.compressed_size());
    bytes.extend_from_slice(VK_MAGIC);
    vk.serialize_compressed(&mut bytes)
        .map_err(|e| ZkError::encoding("verifying key", e))?;
    Ok(bytes)
}
