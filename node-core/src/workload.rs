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
use vm_state::{Account, Address, StateKey};

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
    /// Privacy transfers the note tree can still take (`None`: no limit known). The
    /// workload never includes more: a transfer into a full tree is rejected, and a
    /// rejected transaction leaves its sender's nonce behind the workload's count, which
    /// would fail every later transaction of that sender.
    privacy_room: Option<u64>,
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
            privacy_room: None,
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
            let funded = Account {
                nonce: 0,
                balance: DEV_BALANCE,
            };
            entries.push((StateKey::account(a).0, funded.encode().to_vec()));
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

    /// Sets how many privacy transfers the note tree can still take (see
    /// [`zk_privacy::pool::PrivacyPool::transfers_left`]); `None` for no limit. Blocks
    /// include no more than that; the rest of the privacy share goes to the other kinds.
    pub fn set_privacy_room(&mut self, transfers: Option<u64>) {
        self.privacy_room = transfers;
    }
    /// Privacy transfers the note tree can still take, as far as the workload knows.
    pub fn privacy_room(&self) -> Option<u64> {
        self.privacy_room
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
    /// transfers (as many as are proved and ready and fit the note tree; their share goes
    /// to the other kinds otherwise) at random positions, the rest drawn by the other
    /// weights. Every transaction is valid against the state the workload's earlier blocks
    /// leave (nonces in sequence, funds to spare), so all succeed unless the caller mixes
    /// in other transactions.
    pub fn next_block(&mut self, n: usize, timestamp: u64) -> Block {
        let c = &self.cfg;
        let weights = [c.transfer_weight, c.token_call_weight, c.deploy_weight];
        let total: u32 = weights.iter().sum::<u32>();
        let accounts = self.addrs.len();
        let room = self
            .privacy_room
            .map_or(usize::MAX, |r| usize::try_from(r).unwrap_or(usize::MAX));
        let k = self
            .privacy_share(n)
            .min(self.privacy_ready.len())
            .min(room);
        if let Some(r) = &mut self.privacy_room {
            *r -= k as u64;
        }
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
                    // The two balance slots the transfer touches, declared: blocks of such
                    // calls, transfers and privacy transactions run on the dependency graph
                    // of their keys (`docs/ARCHITECTURE.md`).
                    let access = vec![
                        contracts::token_balance_key(&self.addrs[from]),
                        contracts::token_balance_key(&self.addrs[to]),
                    ];
                    self.signed(
                        from,
                        1_000_000,
                        TxKind::Call {
                            contract: token,
                            input,
                            value: 0,
                            access: Some(vm_runtime::AccessList::writes(access)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GpuBackendChoice, NodeConfig, Strategy};

    /// A node on the CPU only, 2 threads, no metrics or calibration, data in `dir`.
    fn test_config(dir: &std::path::Path) -> NodeConfig {
        let mut cfg = NodeConfig::default();
        cfg.node.data_dir = dir.to_path_buf();
        cfg.gpu.backend = GpuBackendChoice::None;
        cfg.execution.threads = 2;
        cfg.metrics.enabled = false;
        cfg.scheduler.calibration = false;
        cfg
    }

    /// A node with `strategy` on `cfg` over `store`, with `genesis` committed.
    fn node_on(
        cfg: &NodeConfig,
        store: Arc<dyn vm_state::StateStore>,
        strategy: Strategy,
        genesis: &Genesis,
    ) -> crate::Node {
        let backends = crate::open_backends(cfg).expect("backends");
        let node = crate::open_node_with(cfg, store, Some(strategy), &backends).expect("node");
        node.init_genesis(genesis).expect("genesis");
        node
    }

    /// A node with `strategy` on `cfg` (its own redb store) with the dev genesis committed,
    /// and the workload that made the genesis.
    fn node_at_genesis(cfg: &NodeConfig, strategy: Strategy) -> (crate::Node, DevWorkload) {
        let w = DevWorkload::new(&cfg.dev, cfg.node.chain_id);
        let store = crate::open_store(cfg).expect("store");
        (node_on(cfg, store, strategy, &w.genesis()), w)
    }

    /// A prover for `node`'s privacy key at tree depth `depth`, with `w` told how many
    /// privacy transfers the node's note tree still holds.
    fn privacy_prover(node: &crate::Node, w: &mut DevWorkload, depth: usize) -> PrivacyProver {
        w.set_privacy_room(Some(node.privacy_transfers_left().expect("room")));
        PrivacyProver {
            pk: node.privacy_proving_key().expect("proving key"),
            depth,
        }
    }

    /// The reference: a `cpu_only` node in memory at `w`'s genesis, for importing blocks
    /// one at a time.
    fn reference_node(cfg: &NodeConfig, w: &DevWorkload) -> crate::Node {
        let mem = Arc::new(vm_state::MemoryStore::new());
        node_on(cfg, mem, Strategy::CpuOnly, &w.genesis())
    }

    /// Dev blocks of every kind (transfers, token calls, deploys, privacy transfers), over
    /// several blocks, execute with every receipt `Success`; privacy transfers beyond the
    /// note tree's room are left out instead of failing (a depth-2 tree holds 2: proving
    /// is slow in debug builds). Blocks 2-4 go through the pipelined import and must give
    /// the state root of importing one block at a time.
    #[test]
    fn generated_blocks_execute_with_every_transaction_succeeding() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = test_config(dir.path());
        cfg.privacy.tree_depth = 2;
        cfg.dev.accounts = 16;
        cfg.dev.transfer_weight = 65;
        cfg.dev.token_call_weight = 20;
        cfg.dev.deploy_weight = 5;
        cfg.dev.privacy_weight = 10;
        let (node, mut w) = node_at_genesis(&cfg, Strategy::CpuOnly);
        let prover = privacy_prover(&node, &mut w, 2);
        assert_eq!(w.privacy_room(), Some(2));
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let root = zk_privacy::tree::empty_root(2);
        let n = 30;
        let mut blocks = Vec::new();
        for b in 0..4 {
            // The share (3) is more than the tree holds (2): the rest goes to other kinds.
            assert_eq!(w.privacy_share(n), 3);
            let room = w.privacy_room().map_or(usize::MAX, |r| r as usize);
            for _ in w.privacy_pending()..w.privacy_share(n).min(room) {
                w.push_privacy(prover.make_payload(root, &mut rng).expect("prove"));
            }
            blocks.push(w.next_block(n, 1_700_000_000 + b));
        }
        // The first block alone, the rest through the pipelined import (block N+1 is
        // verified while N executes and commits).
        let mut reports = vec![node.import_block(blocks[0].clone()).expect("import")];
        let stop = std::sync::atomic::AtomicBool::new(false);
        let imported = node
            .import(blocks[1..].iter().cloned().map(Ok), &stop, |r| {
                reports.push(r.clone())
            })
            .expect("import");
        assert_eq!(imported, 3);
        let mut privacy = Vec::new();
        let mut kinds = crate::pipeline::KindCounts::default();
        for rep in &reports {
            assert_eq!(
                rep.failed_txs, 0,
                "block {}: failed {} (first: {:?})",
                rep.height, rep.failed_by_kind, rep.first_failure
            );
            assert_eq!(rep.txs, n);
            kinds.add(&rep.txs_by_kind);
            privacy.push(rep.privacy_txs);
        }
        assert_eq!(privacy, vec![2, 0, 0, 0], "privacy transfers per block");
        // Same state root as one block at a time, on a second node (in memory).
        let node2 = reference_node(&cfg, &w);
        let mut root2 = [0u8; 32];
        for b in blocks {
            root2 = node2.import_block(b).expect("import").state_root;
        }
        assert_eq!(reports[3].state_root, root2);
        assert!(
            kinds.transfer > 0 && kinds.call > 0 && kinds.deploy > 0,
            "{kinds}"
        );
        assert_eq!(node.privacy_leaves().expect("leaves"), 4);
        assert_eq!(w.privacy_room(), Some(0));
        // The workload's nonces are the committed ones: nothing fell behind.
        assert_eq!(node.nonces(w.addresses()).expect("nonces"), w.nonces);
    }

    /// A redb store whose first commit is slow, recording how many blocks each commit got.
    struct SlowFirstCommit {
        inner: vm_state::RedbStore,
        groups: parking_lot::Mutex<Vec<usize>>,
    }

    impl vm_state::StateReader for SlowFirstCommit {
        fn get(&self, key: &vm_state::StateKey) -> vm_state::Result<Option<vm_state::StateValue>> {
            self.inner.get(key)
        }
    }

    impl vm_state::StateStore for SlowFirstCommit {
        fn latest(&self) -> vm_state::Result<Option<vm_state::CommitInfo>> {
            self.inner.latest()
        }
        fn snapshot(&self) -> vm_state::Result<std::sync::Arc<dyn vm_state::StateReader>> {
            self.inner.snapshot()
        }
        fn preview_root(
            &self,
            ws: &vm_state::WriteSet,
            hasher: &dyn vm_state::StateHasher,
        ) -> vm_state::Result<vm_state::Hash32> {
            self.inner.preview_root(ws, hasher)
        }
        fn commit_block(
            &self,
            height: u64,
            ws: &vm_state::WriteSet,
            hasher: &dyn vm_state::StateHasher,
        ) -> vm_state::Result<vm_state::CommitInfo> {
            self.groups.lock().push(1);
            self.inner.commit_block(height, ws, hasher)
        }
        fn commit_blocks(
            &self,
            blocks: &[(u64, &vm_state::WriteSet)],
            hasher: &dyn vm_state::StateHasher,
        ) -> vm_state::Result<Vec<vm_state::CommitInfo>> {
            let first = {
                let mut g = self.groups.lock();
                g.push(blocks.len());
                g.len() == 1
            };
            if first {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            self.inner.commit_blocks(blocks, hasher)
        }
        fn scan_prefix(
            &self,
            prefix: &[u8],
            limit: usize,
        ) -> vm_state::Result<Vec<(vm_state::StateKey, vm_state::StateValue)>> {
            self.inner.scan_prefix(prefix, limit)
        }
    }

    /// A block large enough to check its transaction root and make its plan beside the
    /// signature check is rejected for the same reason, in stage order, as a small one: a
    /// bad signature alone names the signature; a bad signature and a bad transaction root
    /// name the root. Neither changes the head; the good block then imports, with the same
    /// root on the CPU and (with the `opencl` feature; PoCL's CPU device in CI) with every
    /// batch on the GPU, where the root's hashing and the signatures run on the device at
    /// the same time.
    #[test]
    fn a_large_block_is_rejected_in_stage_order() {
        let mut roots = Vec::new();
        for (strategy, backend) in [
            (Strategy::CpuOnly, GpuBackendChoice::None),
            (Strategy::GpuOnly, GpuBackendChoice::Opencl),
        ] {
            if backend == GpuBackendChoice::Opencl && !cfg!(feature = "opencl") {
                continue;
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let mut cfg = test_config(dir.path());
            cfg.gpu.backend = backend;
            cfg.dev.accounts = 64;
            cfg.dev.privacy_weight = 0;
            cfg.dev.deploy_weight = 0;
            let (node, mut w) = node_at_genesis(&cfg, strategy);
            let n = crate::pipeline::FRONT_OVERLAP_MIN_TXS + 16;
            let good = w.next_block(n, 1_700_000_000);
            let before = node.head().expect("head");
            let mut bad_sig = good.clone();
            let i = n - 3;
            let last = bad_sig.txs[i].len() - 1;
            bad_sig.txs[i][last] ^= 0x01;
            bad_sig.header.tx_root = crate::pipeline::tx_root_cpu(&bad_sig.txs);
            let err = node
                .import_block(bad_sig.clone())
                .expect_err("bad signature");
            assert!(
                err.to_string()
                    .contains(&format!("transaction {i} has an invalid signature")),
                "{strategy:?}: {err}"
            );
            let mut bad_both = bad_sig;
            bad_both.header.tx_root[0] ^= 0x01;
            let err = node.import_block(bad_both).expect_err("bad root");
            assert!(
                err.to_string().contains("transaction root"),
                "{strategy:?}: {err}"
            );
            assert_eq!(node.head().expect("head"), before);
            let rep = node.import_block(good).expect("good block");
            assert_eq!((rep.height, rep.txs, rep.failed_txs), (1, n, 0));
            let route = |stage: &str| {
                rep.stages
                    .iter()
                    .find(|s| s.stage == stage)
                    .map(|s| s.route.clone())
            };
            eprintln!(
                "{strategy:?}: txroot on {:?}, signatures on {:?}",
                route("txroot"),
                route("signatures")
            );
            roots.push(rep.state_root);
        }
        assert!(roots.windows(2).all(|w| w[0] == w[1]), "{roots:?}");
    }

    /// In the pipelined import a block executes while its proofs are checked and commits
    /// only once they verified: with a corrupted proof in block 2 of 3, block 1 commits,
    /// the import stops at block 2 naming its proof, and nothing of blocks 2 and 3 is
    /// written; the intact blocks 2 and 3 then import on top, with the roots of importing
    /// them one at a time.
    #[test]
    fn a_bad_proof_stops_the_pipelined_import_before_its_block_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = test_config(dir.path());
        cfg.privacy.tree_depth = 2;
        cfg.dev.accounts = 16;
        cfg.dev.deploy_weight = 0;
        cfg.dev.privacy_weight = 10;
        let (node, mut w) = node_at_genesis(&cfg, Strategy::CpuOnly);
        let prover = privacy_prover(&node, &mut w, 2);
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let root = zk_privacy::tree::empty_root(2);
        // Block 1 without privacy transfers (none pending), block 2 with one, block 3 after.
        let b1 = w.next_block(30, 1_700_000_000);
        w.push_privacy(prover.make_payload(root, &mut rng).expect("prove"));
        let b2 = w.next_block(30, 1_700_000_001);
        let b3 = w.next_block(30, 1_700_000_002);
        let mut bad2 = b2.clone();
        let i = bad2
            .txs
            .iter()
            .position(|t| matches!(Transaction::decode(t).expect("tx").kind, TxKind::Privacy(_)))
            .expect("block 2 has a privacy transfer");
        let mut tx = Transaction::decode(&bad2.txs[i]).expect("tx");
        if let TxKind::Privacy(p) = &mut tx.kind {
            p[10] ^= 0x01;
        }
        let key = (0..cfg.dev.accounts)
            .map(|k| dev_key(cfg.dev.seed, k))
            .find(|k| k.verifying_key().to_bytes() == tx.sender)
            .expect("a dev account sent it");
        tx.sign(&key);
        bad2.txs[i] = tx.encode();
        bad2.header.tx_root = crate::pipeline::tx_root_cpu(&bad2.txs);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let mut reports = Vec::new();
        let err = node
            .import(
                [b1.clone(), bad2, b3.clone()].into_iter().map(Ok),
                &stop,
                |r| reports.push(r.clone()),
            )
            .expect_err("bad proof");
        assert!(
            err.to_string()
                .contains(&format!("transaction {i} has an invalid privacy proof")),
            "{err}"
        );
        assert_eq!(reports.len(), 1, "only block 1 commits");
        let head = node.head().expect("head").expect("a head");
        assert_eq!((head.0, head.2), (1, reports[0].state_root));
        // The intact blocks on top, against one block at a time on a second node.
        let imported = node
            .import([b2.clone(), b3.clone()].into_iter().map(Ok), &stop, |r| {
                reports.push(r.clone())
            })
            .expect("import");
        assert_eq!(imported, 2);
        let node2 = reference_node(&cfg, &w);
        for (b, rep) in [b1, b2, b3].into_iter().zip(&reports) {
            let r2 = node2.import_block(b).expect("import");
            assert_eq!((rep.height, rep.state_root), (r2.height, r2.state_root));
            assert_eq!(
                rep.failed_txs, 0,
                "block {}: {:?}",
                rep.height, rep.first_failure
            );
        }
        assert_eq!(reports[1].privacy_txs, 1);
    }

    /// Blocks that queue up behind a slow commit commit together (one store transaction)
    /// and give exactly the roots of importing one block at a time.
    #[test]
    fn blocks_queued_behind_a_slow_commit_commit_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = test_config(dir.path());
        cfg.dev.accounts = 12;
        cfg.dev.privacy_weight = 0;
        let store = std::sync::Arc::new(SlowFirstCommit {
            inner: vm_state::RedbStore::open(dir.path().join("state.redb")).expect("redb"),
            groups: parking_lot::Mutex::new(Vec::new()),
        });
        let backends = crate::open_backends(&cfg).expect("backends");
        let node = crate::open_node_with(&cfg, store.clone(), Some(Strategy::CpuOnly), &backends)
            .expect("node");
        let mut w = DevWorkload::new(&cfg.dev, cfg.node.chain_id);
        node.init_genesis(&w.genesis()).expect("genesis");
        store.groups.lock().clear();
        let blocks: Vec<Block> = (0..6)
            .map(|b| w.next_block(20, 1_700_000_000 + b))
            .collect();
        let mut reports = Vec::new();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let imported = node
            .import(blocks.iter().cloned().map(Ok), &stop, |r| {
                reports.push(r.clone())
            })
            .expect("import");
        assert_eq!(imported, 6);
        let groups = store.groups.lock().clone();
        assert_eq!(groups.iter().sum::<usize>(), 6, "{groups:?}");
        assert!(groups.iter().any(|&n| n > 1), "no group formed: {groups:?}");
        // The same blocks one at a time on a second node: every block's root agrees.
        let node2 = reference_node(&cfg, &w);
        for (b, rep) in blocks.into_iter().zip(&reports) {
            let r2 = node2.import_block(b).expect("import");
            assert_eq!((rep.height, rep.state_root), (r2.height, r2.state_root));
            assert_eq!(rep.failed_txs, 0);
        }
    }
}
