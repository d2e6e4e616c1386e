//! The node's transaction executor: the WASM VM's [`VmExecutor`] for transfers, deploys and
//! contract calls, and the privacy pool's rules for privacy transactions (which the VM
//! rejects by design: `vm_runtime::executor::PRIVACY_REJECTED`).
//!
//! Privacy transaction rules (after the pipeline verified every proof of the block):
//! 1. `chain_id` must be the block's and the nonce the sender's stored nonce, else
//!    `Rejected` (nothing written).
//! 2. The payload's public inputs are decoded (length and canonical field elements checked;
//!    the proof itself was decoded with every check and verified by the pipeline, which
//!    rejects a block with any bad proof) and [`zk_privacy::pool::PrivacyPool::spend`]
//!    runs over the MVCC view (sub-keys under `StateKey::privacy`): the root must be one of
//!    the recent *block* roots, the nullifiers unspent. A failed rule is `Rejected` with its
//!    reason and writes nothing, so a double spend, in one block or across blocks, fails
//!    deterministically (block order decides which one wins).
//! 3. Accepted: the nullifiers plus the sender's nonce + 1. The public fee is burned
//!    from the shielded pool (no native balance changes); gas used is [`PRIVACY_GAS`].
//! 4. After the whole block executed, [`NodeExecutor::finalize_block`] appends the output
//!    commitments of the accepted transfers, in block order, to the note tree in one batch
//!    and records one new root for the block. Transfers of a block therefore share no
//!    state but nullifiers (Block-STM runs them in parallel), and the tree update costs
//!    about two Poseidon hashes per commitment, hashed level by level in parallel. A block
//!    whose accepted transfers do not fit in the tree is invalid (rejected, nothing
//!    committed); the dev workload never builds one.

use std::sync::Arc;

use vm_runtime::executor::VmExecutor;
use vm_runtime::tx::{Transaction, TxKind};
use vm_runtime::vm::Vm;
use vm_state::{
    Access, Account, BlockEnv, ReadError, Receipt, StateKey, StateReader, StateValue, StateView,
    TxExecutor, TxStatus, WriteSet,
};
use zk_privacy::pool::{AppendedNotes, Buffered, PrivacyPool, PrivacyState};

/// Gas recorded for an accepted privacy transaction.
pub const PRIVACY_GAS: u64 = 50_000;

/// Executes every transaction kind of a block.
#[derive(Clone)]
pub struct NodeExecutor {
    vm: VmExecutor,
    pool: Arc<PrivacyPool>,
}

impl std::fmt::Debug for NodeExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeExecutor").finish_non_exhaustive()
    }
}

impl NodeExecutor {
    pub fn new(vm: Arc<Vm>, pool: PrivacyPool) -> Self {
        Self {
            vm: VmExecutor::new(vm),
            pool: Arc::new(pool),
        }
    }
    pub fn vm(&self) -> &VmExecutor {
        &self.vm
    }
    pub fn privacy_pool(&self) -> &PrivacyPool {
        &self.pool
    }

    /// The end-of-block step (rule 4 above): appends the output commitments of the
    /// block's accepted privacy transfers (`receipts[i].status == Success`) to the note tree
    /// over `base` (committed state before the block; no transaction writes the tree) and
    /// adds the tree's writes to `write_set`. `Ok(None)`: no accepted privacy transfer.
    /// An error makes the block invalid.
    pub fn finalize_block(
        &self,
        txs: &[Transaction],
        receipts: &[Receipt],
        base: &dyn StateReader,
        write_set: &mut WriteSet,
    ) -> Result<Option<AppendedNotes>, String> {
        let notes = self.append_notes(
            txs,
            |i| {
                receipts
                    .get(i)
                    .is_some_and(|r| r.status == TxStatus::Success)
            },
            base,
        )?;
        Ok(notes.apply(write_set))
    }

    /// The note-tree append of rule 4 for the privacy transfers `accepted(i)` selects,
    /// computed over `base` without touching a write set (see [`NoteAppend::apply`]). The
    /// pipeline runs it with every privacy transfer selected while the block executes and
    /// keeps the result when execution accepted all of them (the usual case: their proofs
    /// were verified); the append reads only `base`, so the result is the same as after.
    pub fn append_notes(
        &self,
        txs: &[Transaction],
        accepted: impl Fn(usize) -> bool,
        base: &dyn StateReader,
    ) -> Result<NoteAppend, String> {
        let mut commitments = Vec::new();
        let mut included = Vec::new();
        for (i, tx) in txs.iter().enumerate() {
            if let TxKind::Privacy(payload) = &tx.kind {
                if !accepted(i) {
                    continue;
                }
                let public = zk_privacy::PrivacyTransfer::decode_public(payload)
                    .map_err(|e| format!("transaction {i}: accepted but undecodable: {e}"))?;
                commitments.extend_from_slice(&public.commitments);
                included.push(i);
            }
        }
        if commitments.is_empty() {
            return Ok(NoteAppend {
                included,
                appended: None,
                writes: Vec::new(),
            });
        }
        let mut committed = CommittedPrivacy(base);
        let mut state = Buffered::new(&mut committed);
        let appended = self
            .pool
            .append_commitments(&mut state, &commitments)
            .map_err(|e| format!("reading the note tree: {e}"))?
            .map_err(|r| {
                format!(
                    "the block's {} accepted privacy transfers: {r}",
                    commitments.len() / 2
                )
            })?;
        Ok(NoteAppend {
            included,
            appended,
            writes: state.into_writes(),
        })
    }
}

/// A block's note-tree append ([`NodeExecutor::append_notes`]), not yet in its write set.
#[derive(Debug)]
pub struct NoteAppend {
    /// Indices of the privacy transfers whose commitments were appended, ascending.
    pub included: Vec<usize>,
    appended: Option<AppendedNotes>,
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl NoteAppend {
    /// Whether this append covers exactly the privacy transfers `receipts` accepted.
    pub fn matches(&self, txs: &[Transaction], receipts: &[Receipt]) -> bool {
        let mut accepted = txs
            .iter()
            .zip(receipts)
            .enumerate()
            .filter(|(_, (tx, r))| {
                matches!(tx.kind, TxKind::Privacy(_)) && r.status == TxStatus::Success
            })
            .map(|(i, _)| i);
        self.included.iter().all(|&i| accepted.next() == Some(i)) && accepted.next().is_none()
    }

    /// Adds the tree's writes to `write_set` (a later write of a sub-key wins, as in the
    /// pool's view) and returns what was appended (`None`: nothing).
    pub fn apply(self, write_set: &mut WriteSet) -> Option<AppendedNotes> {
        write_set.extend(
            self.writes
                .into_iter()
                .map(|(k, v)| (StateKey::privacy(&k), v.map(StateValue::from))),
        );
        self.appended
    }
}

fn rejected(msg: String) -> Receipt {
    Receipt {
        status: TxStatus::Rejected(msg),
        gas_used: 0,
        fee: 0,
        return_data: Vec::new(),
        events: Vec::new(),
    }
}

/// The privacy sub-keyspace of a transaction's MVCC view.
struct ViewPrivacy<'a>(&'a mut dyn StateView);

impl PrivacyState for ViewPrivacy<'_> {
    type Error = ReadError;
    fn read(&mut self, sub_key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self
            .0
            .read(&StateKey::privacy(sub_key))?
            .map(|v| v.to_vec()))
    }
    fn write(&mut self, sub_key: Vec<u8>, value: Option<Vec<u8>>) {
        self.0
            .write(StateKey::privacy(&sub_key), value.map(StateValue::from));
    }
}

/// The privacy sub-keyspace of committed state, read only: writes are never applied to
/// it (callers that write go through [`Buffered`] and take its writes).
pub(crate) struct CommittedPrivacy<'a, R: StateReader + ?Sized>(pub(crate) &'a R);

impl<R: StateReader + ?Sized> PrivacyState for CommittedPrivacy<'_, R> {
    type Error = vm_state::VmStateError;
    fn read(&mut self, sub_key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.0.get(&StateKey::privacy(sub_key))?.map(|v| v.to_vec()))
    }
    fn write(&mut self, _sub_key: Vec<u8>, _value: Option<Vec<u8>>) {}
}

impl TxExecutor for NodeExecutor {
    type Tx = Transaction;
    type Worker = <VmExecutor as TxExecutor>::Worker;

    fn new_worker(&self) -> Self::Worker {
        self.vm.new_worker()
    }

    /// WASM-executed kinds as [`VmExecutor`] declares them; a privacy transaction declares
    /// its sender's record and its two nullifiers (written). The other keys it reads (the
    /// pool's metadata and root history) are written only by the end-of-block note append,
    /// after execution, so they need no declaration.
    fn declare_access(&self, tx: &Transaction, out: &mut Vec<(StateKey, Access)>) -> bool {
        let TxKind::Privacy(payload) = &tx.kind else {
            return self.vm.declare_access(tx, out);
        };
        out.push((StateKey::account(&tx.sender_address()), Access::Write));
        // A payload that does not decode is rejected after reading only the sender.
        if let Ok(public) = zk_privacy::PrivacyTransfer::decode_public(payload) {
            out.extend(public.nullifiers.iter().map(|nf| {
                (
                    StateKey::privacy(&zk_privacy::pool::nullifier_key(nf)),
                    Access::Write,
                )
            }));
        }
        true
    }

    fn execute(
        &self,
        worker: &mut Self::Worker,
        tx: &Transaction,
        env: &BlockEnv,
        view: &mut dyn StateView,
    ) -> Result<Receipt, ReadError> {
        let TxKind::Privacy(payload) = &tx.kind else {
            return self.vm.execute(worker, tx, env, view);
        };
        if tx.chain_id != env.chain_id {
            return Ok(rejected(format!(
                "wrong chain id {} (block is {})",
                tx.chain_id, env.chain_id
            )));
        }
        let sender = tx.sender_address();
        let account_key = StateKey::account(&sender);
        let mut account =
            Account::decode(view.read(&account_key)?.as_deref()).map_err(ReadError::Storage)?;
        let nonce = account.nonce;
        if tx.nonce != nonce {
            return Ok(rejected(format!(
                "bad nonce {} (expected {nonce})",
                tx.nonce
            )));
        }
        // The pipeline verified this proof (checked decoding included) before execution and
        // rejects a block with any bad one, so only the public inputs are needed here.
        let public = match zk_privacy::PrivacyTransfer::decode_public(payload) {
            Ok(p) => p,
            Err(e) => return Ok(rejected(format!("malformed privacy payload: {e}"))),
        };
        let mut privacy = ViewPrivacy(&mut *view);
        let mut pv = Buffered::new(&mut privacy);
        match self.pool.spend(&mut pv, &public)? {
            Err(rejection) => Ok(rejected(rejection.to_string())),
            Ok(()) => {
                pv.apply();
                account.nonce = nonce.saturating_add(1);
                view.write(account_key, Some(account.encode()));
                Ok(Receipt {
                    status: TxStatus::Success,
                    gas_used: PRIVACY_GAS,
                    fee: u128::from(public.fee),
                    return_data: Vec::new(),
                    events: Vec::new(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::Fr;
    use zk_privacy::transfer::{encode_fr, PROOF_BYTES, TRANSFER_BYTES};

    /// A privacy transaction whose payload carries these public inputs (the proof bytes are
    /// not read after the pipeline's verification, so zeros do here).
    fn privacy_tx(k: u64) -> Transaction {
        let mut p = vec![0u8; PROOF_BYTES];
        for x in [
            zk_privacy::tree::empty_root(2),
            Fr::from(100 + 2 * k),
            Fr::from(101 + 2 * k),
            Fr::from(200 + 2 * k),
            Fr::from(201 + 2 * k),
        ] {
            p.extend_from_slice(&encode_fr(&x));
        }
        p.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(p.len(), TRANSFER_BYTES);
        Transaction::new_unsigned(1, [0; 32], k, 100_000, 1, TxKind::Privacy(p))
    }

    fn receipt(status: TxStatus) -> Receipt {
        Receipt {
            status,
            gas_used: PRIVACY_GAS,
            fee: 0,
            return_data: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The end-of-block append takes the accepted transfers' commitments in block order,
    /// skips rejected ones, and fails (the block is invalid) when they do not fit the tree.
    #[test]
    fn finalize_appends_accepted_notes_and_rejects_an_overflow() {
        let vm = Arc::new(Vm::new(vm_runtime::VmConfig::default()).expect("vm"));
        let exec = NodeExecutor::new(vm, PrivacyPool::new(2, 8).expect("pool"));
        let txs: Vec<Transaction> = (0..3).map(privacy_tx).collect();
        let base = vm_state::EmptyState;

        // Three accepted transfers = six notes: a depth-2 tree holds four.
        let ok = vec![receipt(TxStatus::Success); 3];
        let mut ws = WriteSet::new();
        let err = exec
            .finalize_block(&txs, &ok, &base, &mut ws)
            .expect_err("overflow");
        assert!(err.contains("full"), "{err}");
        assert!(ws.is_empty(), "an invalid block writes nothing");

        // The middle one rejected: four notes fit, in block order (transfers 0 and 2).
        let mixed = vec![
            receipt(TxStatus::Success),
            receipt(TxStatus::Rejected("spent".into())),
            receipt(TxStatus::Success),
        ];
        let appended = exec
            .finalize_block(&txs, &mixed, &base, &mut ws)
            .expect("fits")
            .expect("notes appended");
        assert_eq!((appended.first_position, appended.count), (0, 4));
        let mut tree = zk_privacy::tree::NoteTree::new(2).expect("tree");
        for c in [200u64, 201, 204, 205] {
            tree.append(Fr::from(c)).expect("append");
        }
        assert_eq!(appended.new_root, tree.root());
        assert!(ws.contains_key(&StateKey::privacy(b"meta")));

        // No accepted privacy transfer: nothing to do.
        let none = vec![receipt(TxStatus::Rejected("x".into())); 3];
        let mut ws2 = WriteSet::new();
        assert_eq!(exec.finalize_block(&txs, &none, &base, &mut ws2), Ok(None));
        assert!(ws2.is_empty());
    }

    /// The append computed before execution (every privacy transfer taken as accepted) is
    /// the one `finalize_block` computes afterwards when execution accepted them all, and is
    /// recognised as stale when it rejected one.
    #[test]
    fn an_early_append_matches_only_the_same_accepted_set() {
        let vm = Arc::new(Vm::new(vm_runtime::VmConfig::default()).expect("vm"));
        let exec = NodeExecutor::new(vm, PrivacyPool::new(3, 8).expect("pool"));
        let mut txs: Vec<Transaction> = (0..3).map(privacy_tx).collect();
        txs.insert(
            1,
            Transaction::new_unsigned(
                1,
                [0; 32],
                9,
                100_000,
                1,
                TxKind::Transfer {
                    to: [1; 20],
                    amount: 5,
                },
            ),
        );
        let base = vm_state::EmptyState;
        let early = exec
            .append_notes(&txs, |i| matches!(txs[i].kind, TxKind::Privacy(_)), &base)
            .expect("early append");
        assert_eq!(early.included, vec![0, 2, 3]);

        let all = vec![receipt(TxStatus::Success); 4];
        assert!(early.matches(&txs, &all));
        let mut late = WriteSet::new();
        let late_notes = exec
            .finalize_block(&txs, &all, &base, &mut late)
            .expect("late");
        let mut ws = WriteSet::new();
        assert_eq!(early.apply(&mut ws), late_notes);
        assert_eq!(ws, late);

        let early = exec
            .append_notes(&txs, |i| matches!(txs[i].kind, TxKind::Privacy(_)), &base)
            .expect("early append");
        let mut one_rejected = all.clone();
        one_rejected[2] = receipt(TxStatus::Rejected("spent".into()));
        assert!(!early.matches(&txs, &one_rejected));
        // A failed plain transfer does not matter.
        let mut transfer_failed = all;
        transfer_failed[1] = receipt(TxStatus::Rejected("nonce".into()));
        assert!(early.matches(&txs, &transfer_failed));
    }

    /// Privacy transactions from distinct senders, some spending a nullifier an earlier one
    /// spent (the later one must be the one rejected), mixed with native transfers: every
    /// transaction declares, the block runs on the dependency graph, and the result is the
    /// sequential one.
    #[test]
    fn declared_privacy_blocks_equal_sequential() {
        let vm = Arc::new(Vm::new(vm_runtime::VmConfig::default()).expect("vm"));
        let exec = NodeExecutor::new(vm, PrivacyPool::new(2, 8).expect("pool"));
        let mut txs = Vec::new();
        for k in 0..300u64 {
            // Every seventh transfer reuses the nullifiers of the transfer five before it.
            let nf = if k % 7 == 6 { k - 5 } else { k };
            let mut tx = privacy_tx(nf);
            tx.sender = [0; 32];
            tx.sender[..8].copy_from_slice(&k.to_le_bytes());
            tx.nonce = 0;
            txs.push(tx);
            if k % 3 == 0 {
                let mut from = [0x77; 32];
                from[..8].copy_from_slice(&k.to_le_bytes());
                txs.push(Transaction::new_unsigned(
                    1,
                    from,
                    0,
                    100_000,
                    0,
                    TxKind::Transfer {
                        to: [9; 20],
                        amount: 0,
                    },
                ));
            }
        }
        let mut declared = Vec::new();
        assert!(exec.declare_access(&txs[0], &mut declared));
        assert_eq!(declared.len(), 3, "sender and two nullifiers");
        let env = BlockEnv {
            number: 1,
            timestamp: 1,
            chain_id: 1,
        };
        let base = vm_state::EmptyState;
        let seq = vm_state::execute_block_sequential(&exec, &txs, &env, &base).expect("seq");
        let spent = seq
            .receipts
            .iter()
            .filter(|r| matches!(&r.status, TxStatus::Rejected(m) if m.contains("spent")))
            .count();
        assert!(spent >= 40, "double spends are rejected ({spent})");
        for threads in [2, 4, 8] {
            let pe = vm_state::ParallelExecutor::new(threads).expect("pool");
            for _ in 0..3 {
                let out = pe
                    .execute_block_declared(&exec, &txs, &env, &base)
                    .expect("declared")
                    .expect("every transaction declares");
                assert_eq!(out.stats.declared_runs, 1);
                assert_eq!(out.receipts, seq.receipts);
                assert_eq!(out.write_set, seq.write_set);
            }
        }
    }
}
