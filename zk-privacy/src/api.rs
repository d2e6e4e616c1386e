//! Entry points for the node's command-line tools: `supervm prove` (a built-in circuit with
//! inputs from a JSON file -> proof and public inputs, optional snarkjs export) and
//! `supervm verify-proof`.
//!
//! Built-in circuits and their JSON inputs (field elements as decimal strings, `u64`s as
//! numbers or decimal strings):
//!
//! - `square-chain`: `{"x": "3", "steps": 64}` (public inputs `[x, y]`).
//! - `transfer`:
//!   ```json
//!   {"depth": 20,
//!    "tree_leaves": ["<commitment>", ...],
//!    "inputs":  [{"spending_key": "..", "value": 70, "rho": "..", "position": 1}, ...],
//!    "outputs": [{"value": 100, "owner": "<public key>", "rho": ".."}, ...],
//!    "fee": 5}
//!   ```
//!   `tree_leaves` are the note commitments in the tree, in order; each input names the
//!   position of its note (its commitment must be there). An input with `value` 0 and no
//!   `position` is a dummy. Exactly 2 inputs and 2 outputs.
//!
//! Keys: [`ProveOptions::params`] loads a proving key file ([`crate::setup`] format),
//! otherwise deterministic dev parameters are derived from [`ProveOptions::seed`] (UNSAFE
//! for production).

use std::path::{Path, PathBuf};

use ark_bn254::{Bn254, Fr};
use ark_groth16::{Proof, ProvingKey, VerifyingKey};
use ark_std::UniformRand;
use serde_json::{json, Value};

use crate::backend::{CpuProverBackend, ProverBackend};
use crate::circuit::{InputNote, TransferCircuit, ARITY};
use crate::demo::SquareChainCircuit;
use crate::error::{Result, ZkError};
use crate::note::Note;
use crate::prover::{create_proof, synthesize};
use crate::setup::{dev_setup, load_proving_key};
use crate::snarkjs;
use crate::transfer::{decode_proof, encode_proof, PrivacyTransfer};
use crate::tree::{NoteTree, DEFAULT_DEPTH};
use crate::verify::{prepare, verify_proof as verify_prepared};

/// The default dev-setup seed of the tools.
pub const DEFAULT_SEED: &str = "supervm-dev";

/// Options of [`prove_file`].
#[derive(Clone, Debug, Default)]
pub struct ProveOptions {
    /// Dev-setup seed (default [`DEFAULT_SEED`]); ignored when `params` is set.
    pub seed: Option<String>,
    /// A proving key file to use instead of dev parameters.
    pub params: Option<PathBuf>,
    /// Where to write snarkjs `proof.json`, `public.json`, `verification_key.json`.
    pub snarkjs_dir: Option<PathBuf>,
}

/// A built-in circuit with its witness, parsed from JSON.
#[derive(Clone, Debug)]
pub enum BuiltinCircuit {
    SquareChain(SquareChainCircuit),
    Transfer(Box<TransferCircuit>),
}

/// What [`prove_file`] returns.
#[derive(Clone, Debug)]
pub struct ProveOutput {
    /// Circuit id including its shape (`square-chain-64`, `transfer-d20`).
    pub circuit_id: String,
    pub proof: Proof<Bn254>,
    pub public_inputs: Vec<Fr>,
    pub verifying_key: VerifyingKey<Bn254>,
    /// The privacy-transaction payload, for the `transfer` circuit.
    pub transfer: Option<PrivacyTransfer>,
}

impl ProveOutput {
    /// A JSON summary: circuit id, proof (128-byte hex), public inputs (decimal), and the
    /// encoded transfer (hex) where there is one.
    pub fn to_json(&self) -> Value {
        json!({
            "circuit": self.circuit_id,
            "proof": hex::encode(encode_proof(&self.proof)),
            "public_inputs": snarkjs::public_json(&self.public_inputs),
            "transfer": self.transfer.as_ref().map(|t| hex::encode(t.encode())),
        })
    }
}

fn get<'a>(v: &'a Value, name: &str) -> Result<&'a Value> {
    v.get(name)
        .ok_or_else(|| ZkError::Json(format!("missing field {name:?}")))
}

fn parse_u64(v: &Value, what: &str) -> Result<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| ZkError::Json(format!("{what}: not a u64: {n}"))),
        Value::String(s) => s
            .parse::<u64>()
            .map_err(|e| ZkError::Json(format!("{what}: {s:?}: {e}"))),
        _ => Err(ZkError::Json(format!("{what}: expected a number"))),
    }
}

fn parse_fr(v: &Value, what: &'static str) -> Result<Fr> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map(Fr::from)
            .ok_or_else(|| ZkError::Json(format!("{what}: not a non-negative integer"))),
        _ => snarkjs::parse_public(&Value::Array(vec![v.clone()]))
            .map(|mut x| x.remove(0))
            .map_err(|e| ZkError::Json(format!("{what}: {e}"))),
    }
}

impl BuiltinCircuit {
    /// Names accepted by [`BuiltinCircuit::from_json`].
    pub const NAMES: [&'static str; 2] = ["square-chain", "transfer"];

    /// Parses the inputs of built-in circuit `name`.
    pub fn from_json(name: &str, v: &Value) -> Result<Self> {
        match name {
            "square-chain" => Ok(Self::SquareChain(SquareChainCircuit::new(
                parse_fr(get(v, "x")?, "x")?,
                parse_u64(get(v, "steps")?, "steps")? as usize,
            ))),
            "transfer" => Ok(Self::Transfer(Box::new(parse_transfer(v)?))),
            other => Err(ZkError::Config(format!(
                "unknown circuit {other:?} (built-in: {:?})",
                Self::NAMES
            ))),
        }
    }

    /// Id including the shape (keys differ per shape).
    pub fn id(&self) -> String {
        match self {
            Self::SquareChain(c) => format!("square-chain-{}", c.steps),
            Self::Transfer(c) => format!("transfer-d{}", c.depth),
        }
    }

    /// The same circuit with a blank witness (for key generation).
    fn blank(&self) -> Self {
        match self {
            Self::SquareChain(c) => {
                Self::SquareChain(SquareChainCircuit::new(Fr::from(0u64), c.steps))
            }
            Self::Transfer(c) => Self::Transfer(Box::new(TransferCircuit::blank(c.depth))),
        }
    }

    /// Deterministic dev parameters (UNSAFE for production).
    pub fn dev_setup(&self, seed: &str) -> Result<ProvingKey<Bn254>> {
        let seed = format!("{seed}/{}", self.id());
        match self.blank() {
            Self::SquareChain(c) => dev_setup(c, seed.as_bytes()),
            Self::Transfer(c) => dev_setup(*c, seed.as_bytes()),
        }
    }

    /// Proves with `backend` and fresh randomness.
    pub fn prove<B: ProverBackend + ?Sized>(
        &self,
        backend: &B,
        pk: &ProvingKey<Bn254>,
    ) -> Result<(Proof<Bn254>, Vec<Fr>)> {
        let w = match self.clone() {
            Self::SquareChain(c) => synthesize(c, None)?,
            Self::Transfer(c) => {
                c.check_shape()?;
                synthesize(*c, None)?
            }
        };
        let mut rng = rand::thread_rng();
        let (r, s) = (Fr::rand(&mut rng), Fr::rand(&mut rng));
        let proof = create_proof(backend, pk, r, s, &w)?;
        Ok((proof, w.public_inputs().to_vec()))
    }
}

fn parse_transfer(v: &Value) -> Result<TransferCircuit> {
    let depth = match v.get("depth") {
        Some(d) => parse_u64(d, "depth")? as usize,
        None => DEFAULT_DEPTH,
    };
    let mut tree = NoteTree::new(depth)?;
    if let Some(leaves) = v.get("tree_leaves") {
        for leaf in leaves
            .as_array()
            .ok_or_else(|| ZkError::Json("tree_leaves must be an array".into()))?
        {
            tree.append(parse_fr(leaf, "tree leaf")?)?;
        }
    }
    let ins = get(v, "inputs")?
        .as_array()
        .filter(|a| a.len() == ARITY)
        .ok_or_else(|| ZkError::Json(format!("inputs must be an array of {ARITY}")))?;
    let outs = get(v, "outputs")?
        .as_array()
        .filter(|a| a.len() == ARITY)
        .ok_or_else(|| ZkError::Json(format!("outputs must be an array of {ARITY}")))?;
    let mut inputs = Vec::with_capacity(ARITY);
    for (i, inp) in ins.iter().enumerate() {
        let spending_key = parse_fr(get(inp, "spending_key")?, "spending_key")?;
        let value = parse_u64(get(inp, "value")?, "value")?;
        let rho = parse_fr(get(inp, "rho")?, "rho")?;
        let input = match inp.get("position") {
            Some(p) => {
                let position = parse_u64(p, "position")?;
                let path = tree.path(position)?;
                let note = InputNote {
                    spending_key,
                    value,
                    rho,
                    path,
                };
                if tree.leaf(position) != Some(note.note().commitment()) {
                    return Err(ZkError::Witness(format!(
                        "input {i}: the note's commitment is not the tree leaf at position {position}"
                    )));
                }
                note
            }
            None if value == 0 => InputNote::dummy(depth, spending_key, rho, i as u64),
            None => {
                return Err(ZkError::Json(format!(
                    "input {i}: a non-zero input needs a position"
                )))
            }
        };
        inputs.push(input);
    }
    let mut outputs = Vec::with_capacity(ARITY);
    for out in outs {
        outputs.push(Note::new(
            parse_u64(get(out, "value")?, "value")?,
            parse_fr(get(out, "owner")?, "owner")?,
            parse_fr(get(out, "rho")?, "rho")?,
        ));
    }
    let fee = match v.get("fee") {
        Some(f) => parse_u64(f, "fee")?,
        None => 0,
    };
    let (Ok(inputs), Ok(outputs)) = (
        <[InputNote; ARITY]>::try_from(inputs),
        <[Note; ARITY]>::try_from(outputs),
    ) else {
        return Err(ZkError::Json("expected 2 inputs and 2 outputs".into()));
    };
    let c = TransferCircuit {
        depth,
        root: tree.root(),
        inputs,
        outputs,
        fee,
    };
    let total_in: u128 = c.inputs.iter().map(|i| u128::from(i.value)).sum();
    let total_out: u128 =
        c.outputs.iter().map(|o| u128::from(o.value)).sum::<u128>() + u128::from(fee);
    if total_in != total_out {
        return Err(ZkError::Witness(format!(
            "values do not balance: inputs {total_in}, outputs + fee {total_out}"
        )));
    }
    Ok(c)
}

/// The dev proving key of the transfer circuit at `depth` exactly as `supervm prove
/// transfer` derives it from `seed` (so the node verifies the tool's proofs with
/// `prepare(&key.vk)`). UNSAFE for production (see [`crate::setup`]).
pub fn dev_transfer_key(depth: usize, seed: &str) -> Result<ProvingKey<Bn254>> {
    crate::tree::check_depth(depth)?;
    BuiltinCircuit::Transfer(Box::new(TransferCircuit::blank(depth))).dev_setup(seed)
}

/// `supervm prove`: reads the JSON inputs of built-in circuit `circuit` from `inputs`,
/// proves on `backend`, optionally exports snarkjs JSON.
pub fn prove_file_with_backend<B: ProverBackend + ?Sized>(
    circuit: &str,
    inputs: &Path,
    opts: &ProveOptions,
    backend: &B,
) -> Result<ProveOutput> {
    let v = snarkjs::read_json(inputs)?;
    let c = BuiltinCircuit::from_json(circuit, &v)?;
    let pk = match &opts.params {
        Some(p) => load_proving_key(p)?,
        None => c.dev_setup(opts.seed.as_deref().unwrap_or(DEFAULT_SEED))?,
    };
    let (proof, public_inputs) = c.prove(backend, &pk)?;
    let transfer = match &c {
        BuiltinCircuit::Transfer(t) => Some(PrivacyTransfer {
            proof: proof.clone(),
            public: t.public_inputs(),
        }),
        BuiltinCircuit::SquareChain(_) => None,
    };
    if let Some(dir) = &opts.snarkjs_dir {
        snarkjs::export_dir(dir, &pk.vk, &proof, &public_inputs)?;
    }
    Ok(ProveOutput {
        circuit_id: c.id(),
        proof,
        public_inputs,
        verifying_key: pk.vk,
        transfer,
    })
}

/// [`prove_file_with_backend`] on the CPU backend.
pub fn prove_file(circuit: &str, inputs: &Path, opts: &ProveOptions) -> Result<ProveOutput> {
    prove_file_with_backend(circuit, inputs, opts, &CpuProverBackend)
}

/// Verifies a 128-byte compressed proof (checked decoding) against a key and inputs.
pub fn verify_proof(vk: &VerifyingKey<Bn254>, proof: &[u8], inputs: &[Fr]) -> Result<bool> {
    let proof = decode_proof(proof)?;
    verify_prepared(&prepare(vk), &proof, inputs)
}

/// `supervm verify-proof`: verifies snarkjs JSON files (`verification_key.json`,
/// `proof.json`, `public.json`).
pub fn verify_snarkjs_files(vk: &Path, proof: &Path, public: &Path) -> Result<bool> {
    let vk = snarkjs::parse_verification_key(&snarkjs::read_json(vk)?)?;
    let proof = snarkjs::parse_proof(&snarkjs::read_json(proof)?)?;
    let inputs = snarkjs::parse_public(&snarkjs::read_json(public)?)?;
    if crate::verify::is_degenerate(&proof) {
        return Ok(false);
    }
    verify_prepared(&prepare(&vk), &proof, &inputs)
}

/// [`verify_snarkjs_files`] on a directory written by `prove --snarkjs-dir`.
pub fn verify_snarkjs_dir(dir: &Path) -> Result<bool> {
    verify_snarkjs_files(
        &dir.join("verification_key.json"),
        &dir.join("proof.json"),
        &dir.join("public.json"),
    )
}
