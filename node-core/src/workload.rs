//! The built-in dev workload: a genesis with funded accounts and a token contract, and
//! blocks of signed transactions (native transfers, token `transfer` calls, counter-contract
//! deploys and privacy transfers) in a configurable mix. Same seed, same blocks.
//!
//! Privacy transfers spend two zero-value dummy notes (the circuit skips the membership
//! proof for value 0, as in Zcash) and create two zero-value notes, under the pool's
//! current root; each carries a real Groth16 proof from [`PrivacyProver`].

use std::collections::VecDeque;
use std::sync::Arc;

use ark_bn254::{Bn254, Fr};
use ark_ff::PrimeField;
use ark_groth16::ProvingKey;
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use vm_runtime::contracts;
use vm_runtime::tx::{address_of, Transaction, TxKind};
use vm_state::{Address, StateKey};

use crate::block::{Block, BlockHeader, Genesis};
use crate::config::DevSection;
use crate::error::{NodeError, Result};

/// Native balance of every dev account at genesis.
pub const DEV_BALANCE: u128 = 1_000_000_000_000_000_000_000_000;
/// Token balance of every dev account at genesis.
pub const DEV_TOKENS: u128 = 1_000_000_000_000;
/// Gas price of workload transactions.
pub const GAS_PRICE: u64 = 1;

/// The dev token's address: the first 20 bytes of `SHA-256("SUPERVM-DEV-TOKEN")`.
pub fn dev_token_address() -> Address {
    let h = Sha256::digest(b"SUPERVM-DEV-TOKEN");
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[..20]);
    a
}

/// The signing key of dev account `i` under `seed`.
pub fn dev_key(seed: u64, i: usize) -> SigningKey {
    let mut h = Sha256::new();
    h.update(b"SUPERVM-DEV-ACCOUNT");
    h.update(seed.to_le_bytes());
    h.update((i as u64).to_le_bytes());
    SigningKey::from_bytes(&h.finalize().into())
}

/// Proves privacy transfers (dummy inputs) for the workload.
pub struct PrivacyProver {
    pub pk: Arc<ProvingKey<Bn254>>,
    pub depth: usize,
}

impl PrivacyProver {
    /// An encoded `PrivacyTransfer` under `root`, randomness from `rng`.
    pub fn make_payload<R: Rng>(&self, root: Fr, rng: &mut R) -> Result<Vec<u8>> {
        use zk_privacy::circuit::{InputNote, TransferCircuit};
        use zk_privacy::note::Note;
        let fr = |rng: &mut R| {
            let b: [u8; 32] = rng.gen();
            Fr::from_le_bytes_mod_order(&b)
        };
        let inputs = [
            InputNote::dummy(
                self.depth,
                fr(rng),
                fr(rng),
                rng.gen_range(0..1u64 << self.depth.min(40)),
            ),
            InputNote::dummy(
                self.depth,
                fr(rng),
                fr(rng),
                rng.gen_range(0..1u64 << self.depth.min(40)),
            ),
        ];
        let outputs = [
            Note::new(0, fr(rng), fr(rng)),
            Note::new(0, fr(rng), fr(rng)),
        ];
        let circuit = TransferCircuit {
            depth: self.depth,
            root,
            inputs,
            outputs,
            fee: 0,
        };
        let public = circuit.public_inputs();
        let prover = zk_privacy::Groth16Prover::new(zk_privacy::CpuProverBackend);
        let proof = prover
            .prove(&self.pk, circuit, rng)
            .map_err(|e| NodeError::Execution(format!("proving a dev privacy transfer: {e}")))?;
        Ok(zk_privacy::PrivacyTransfer { proof, public }.encode())
    }
}

/// Generates dev blocks.
pub struct DevWorkload {
    chain_id: u64,
    cfg: DevSection,
    keys: Vec<SigningKey>,
    addrs: Vec<Address>,
    nonces: Vec<u64>,
    token: Address,
    rng: ChaCha20Rng,
    height: u64,
    parent: [u8; 32],
    /// Privacy payloads ready to be included (proved ahead of time).
    privacy_ready: VecDeque<Vec<u8>>,
    counter_code: Vec<u8>,
    deploys: u64,
}

impl DevWorkload {
    /// A workload at genesis.
    pub fn new(cfg: &DevSection, chain_id: u64) -> Self {
        let keys: Vec<SigningKey> = (0..cfg.accounts).map(|i| dev_key(cfg.seed, i)).collect();
        let addrs = keys
            .iter()
            .map(|k| address_of(&k.verifying_key().to_bytes()))
            .collect();
        let mut w = Self {
            chain_id,
            cfg: cfg.clone(),
            nonces: vec![0; keys.len()],
            keys,
            addrs,
            token: dev_token_address(),
            rng: ChaCha20Rng::seed_from_u64(cfg.seed),
            height: 0,
            parent: [0; 32],
            privacy_ready: VecDeque::new(),
            counter_code: contracts::counter_wasm(),
            deploys: 0,
        };
        w.parent = w.genesis().hash();
        w
    }

    pub fn addresses(&self) -> &[Address] {
        &self.addrs
    }
    pub fn token(&self) -> Address {
        self.token
    }

    /// The genesis: native balances, nonces 0, the token contract with every account's
    /// tokens and account 0 as owner.
    pub fn genesis(&self) -> Genesis {
        let token_code = contracts::token_wasm();
        let code_hash: [u8; 32] = Sha256::digest(&token_code).into();
        let mut entries = Vec::with_capacity(2 * self.addrs.len() + 3);
        for a in &self.addrs {
            entries.push((StateKey::balance(a).0, DEV_BALANCE.to_le_bytes().to_vec()));
            entries.push((
                StateKey::storage(&self.token, &contracts::token_balance_key(a)).0,
                DEV_TOKENS.to_le_bytes().to_vec(),
            ));
        }
        entries.push((StateKey::code(&self.token).0, code_hash.to_vec()));
        entries.push((StateKey::code_blob(&code_hash).0, token_code));
        entries.push((
            StateKey::storage(&self.token, b"o").0,
            self.addrs[0].to_vec(),
        ));
        Genesis {
            chain_id: self.chain_id,
            timestamp: 1_700_000_000,
            entries,
        }
    }

    /// Continues after a committed block: its height and hash, and each account's nonce.
    pub fn resume(&mut self, height: u64, hash: [u8; 32], nonces: Vec<u64>) {
        self.height = height;
        self.parent = hash;
        if nonces.len() == self.nonces.len() {
            self.nonces = nonces;
        }
        // Different choices after a restart than a straight run would make: reseed by height.
        self.rng = ChaCha20Rng::seed_from_u64(self.cfg.seed ^ height.rotate_left(17));
    }

    /// Adds a proved privacy payload to include in a coming block.
    pub fn push_privacy(&mut self, payload: Vec<u8>) {
        self.privacy_ready.push_back(payload);
    }
    pub fn privacy_pending(&self) -> usize {
        self.privacy_ready.len()
    }

    fn signed(&mut self, who: usize, gas_limit: u64, kind: TxKind) -> Vec<u8> {
        let mut tx = Transaction::new_unsigned(
            self.chain_id,
            [0; 32],
            self.nonces[who],
            gas_limit,
            GAS_PRICE,
            kind,
        );
        tx.sign(&self.keys[who]);
        self.nonces[who] += 1;
        tx.encode()
    }

    /// The next block of `n` transactions: up to [`DevWorkload::privacy_share`] privacy
    /// transfers (as many as are proved and ready; their share goes to the other kinds
    /// otherwise) at random positions, the rest drawn by the other weights.
    pub fn next_block(&mut self, n: usize, timestamp: u64) -> Block {
        let c = &self.cfg;
        let weights = [c.transfer_weight, c.token_call_weight, c.deploy_weight];
        let total: u32 = weights.iter().sum::<u32>();
        let accounts = self.addrs.len();
        let k = self.privacy_share(n).min(self.privacy_ready.len());
        let mut privacy_at = vec![false; n];
        let mut placed = 0;
        while placed < k {
            let i = self.rng.gen_range(0..n);
            if !privacy_at[i] {
                privacy_at[i] = true;
                placed += 1;
            }
        }
        let mut txs = Vec::with_capacity(n);
        for is_privacy in privacy_at {
            let from = self.rng.gen_range(0..accounts);
            let mut to = self.rng.gen_range(0..accounts - 1);
            if to >= from {
                to += 1;
            }
            let kind = if is_privacy {
                3
            } else if total == 0 {
                0
            } else {
                let mut pick = self.rng.gen_range(0..total);
                let mut kind = 0;
                for (i, w) in weights.iter().enumerate() {
                    if pick < *w {
                        kind = i;
                        break;
                    }
                    pick -= w;
                }
                kind
            };
            let tx = match kind {
                1 => {
                    let amount = self.rng.gen_range(1..100u128);
                    let input = contracts::token_transfer_input(&self.addrs[to], amount);
                    let token = self.token;
                    self.signed(
                        from,
                        1_000_000,
                        TxKind::Call {
                            contract: token,
                            input,
                            value: 0,
                        },
                    )
                }
                2 => {
                    self.deploys += 1;
                    let code = self.counter_code.clone();
                    self.signed(from, 20_000_000, TxKind::Deploy { code })
                }
                3 => {
                    let payload = self.privacy_ready.pop_front().unwrap_or_default();
                    self.signed(from, 100_000, TxKind::Privacy(payload))
                }
                _ => {
                    let amount = self.rng.gen_range(1..1_000u128);
                    let dest = self.addrs[to];
                    self.signed(from, 100_000, TxKind::Transfer { to: dest, amount })
                }
            };
            txs.push(tx);
        }
        self.height += 1;
        let tx_root = crate::pipeline::tx_root_cpu(&txs);
        let header = BlockHeader {
            chain_id: self.chain_id,
            height: self.height,
            timestamp,
            parent_hash: self.parent,
            tx_root,
        };
        self.parent = header.hash();
        Block { header, txs }
    }

    /// How many of the next block's `n` transactions would be privacy transfers at the
    /// configured weight (the number of proofs to prepare).
    pub fn privacy_share(&self, n: usize) -> usize {
        let c = &self.cfg;
        let total =
            (c.transfer_weight + c.token_call_weight + c.deploy_weight + c.privacy_weight).max(1);
        n * c.privacy_weight as usize / total as usize
    }
}
