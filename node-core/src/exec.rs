//! The node's transaction executor: the WASM VM's [`VmExecutor`] for transfers, deploys and
//! contract calls, and the privacy pool's rules for privacy transactions (which the VM
//! rejects by design: `vm_runtime::executor::PRIVACY_REJECTED`).
//!
//! Privacy transaction rules (after the pipeline verified every proof of the block):
//! 1. `chain_id` must be the block's and the nonce the sender's stored nonce, else
//!    `Rejected` (nothing written).
//! 2. The payload's public inputs are decoded (length and canonical field elements checked;
//!    the proof itself was decoded with every check and verified by the pipeline, which
//!    rejects a block with any bad proof) and [`zk_privacy::pool::PrivacyPool::apply_transfer`]
//!    runs over the MVCC view (sub-keys under `StateKey::privacy`): the root must be recent,
//!    the nullifiers unspent. A failed rule is `Rejected` with its reason and writes nothing,
//!    so a double spend, in one block or across blocks, fails deterministically (block order
//!    decides which one wins).
//! 3. Accepted: the pool's writes plus the sender's nonce + 1. The public fee is burned
//!    from the shielded pool (no native balance changes); gas used is [`PRIVACY_GAS`].

use std::sync::Arc;

use vm_runtime::executor::VmExecutor;
use vm_runtime::tx::{Transaction, TxKind};
use vm_runtime::vm::Vm;
use vm_state::{
    BlockEnv, ReadError, Receipt, StateKey, StateValue, StateView, TxExecutor, TxStatus,
};
use zk_privacy::pool::{PrivacyPool, PrivacyState};

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

/// The privacy sub-keyspace of an MVCC view, with the transaction's own writes buffered so
/// nothing reaches the view unless the transfer is accepted.
struct PoolView<'a> {
    view: &'a mut dyn StateView,
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl PrivacyState for PoolView<'_> {
    type Error = ReadError;
    fn read(&mut self, sub_key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        if let Some((_, v)) = self.writes.iter().rev().find(|(k, _)| k == sub_key) {
            return Ok(v.clone());
        }
        Ok(self
            .view
            .read(&StateKey::privacy(sub_key))?
            .map(|v| v.to_vec()))
    }
    fn write(&mut self, sub_key: Vec<u8>, value: Option<Vec<u8>>) {
        self.writes.push((sub_key, value));
    }
}

impl TxExecutor for NodeExecutor {
    type Tx = Transaction;
    type Worker = <VmExecutor as TxExecutor>::Worker;

    fn new_worker(&self) -> Self::Worker {
        self.vm.new_worker()
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
        let nonce_key = StateKey::nonce(&sender);
        let nonce = match view.read(&nonce_key)? {
            None => 0,
            Some(v) => <[u8; 8]>::try_from(&v[..])
                .map(u64::from_le_bytes)
                .map_err(|_| ReadError::Storage("malformed nonce".into()))?,
        };
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
        let mut pv = PoolView {
            view,
            writes: Vec::new(),
        };
        match self.pool.apply_transfer(&mut pv, &public)? {
            Err(rejection) => Ok(rejected(rejection.to_string())),
            Ok(_applied) => {
                let PoolView { view, writes } = pv;
                for (k, v) in writes {
                    view.write(StateKey::privacy(&k), v.map(StateValue::from));
                }
                view.write(
                    nonce_key,
                    Some(StateValue::from(&(nonce + 1).to_le_bytes()[..])),
                );
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
