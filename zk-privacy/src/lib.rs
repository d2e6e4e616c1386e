//! SuperVM privacy: a Groth16 proving service over BN254 and the confidential-transfer circuit.
//!
//! How the parts fit:
//! - [`backend`]: the [`ProverBackend`] trait (G1/G2 MSM, NTT, inverse and coset NTT) with the
//!   arkworks CPU implementation and `GpuProverBackend` over `gpu_executor::zk` (CUDA/OpenCL
//!   G1 MSM and NTTs, proving-key bases resident on the device).
//! - [`prover`]: a Groth16 prover (arkworks R1CS in, `ark-groth16` proof out) whose heavy
//!   steps go through a backend; bit-for-bit equal to `ark-groth16` for the same `(r, s)`.
//! - [`setup`]: deterministic dev parameters from a seed (UNSAFE for production) and checked
//!   loading / saving of keys.
//! - [`poseidon`], [`note`], [`tree`], [`circuit`]: the confidential-transfer circuit
//!   (2-in/2-out, Poseidon note-commitment tree, nullifiers, value conservation with a public
//!   fee, 64-bit range checks) and the identical native functions.
//! - [`transfer`]: the `PrivacyTransfer` payload (128-byte proof + public inputs) and its
//!   canonical, checked encoding.
//! - [`verify`]: single and batch verification (one random linear combination, one
//!   multi-pairing; bad proofs found individually).
//! - [`pool`]: the state rules the node applies (recent roots, nullifier set, commitment
//!   tree) over a small key-value trait.
//! - [`service`]: the proving service (`prove_batch`, parallel proving on an explicit pool,
//!   LRU proof cache).
//! - [`snarkjs`]: snarkjs-compatible JSON export / import.
//! - [`api`], [`bench`]: entry points for the node's `prove` / `verify-proof` commands and
//!   its `bench groth16` suite.
//!
//! See `docs/PRIVACY.md` for the circuit, encodings and rules.

pub mod api;
pub mod backend;
pub mod bench;
pub mod circuit;
pub mod demo;
pub mod error;
pub mod note;
pub mod pool;
pub mod poseidon;
pub mod prover;
pub mod service;
pub mod setup;
pub mod snarkjs;
pub mod transfer;
pub mod tree;
pub mod verify;

pub use backend::{CpuProverBackend, GpuProverBackend, ProverBackend};
pub use error::{Result, ZkError};
pub use pool::{AppendedNotes, Buffered, PrivacyPool, PrivacyState, Rejection};
pub use prover::Groth16Prover;
pub use transfer::{PrivacyTransfer, TransferPublicInputs};
pub use verify::{batch_verify, verify_proof, BatchOutcome, ProofWithInputs};
