//! [`VmExecutor`]: executes one transaction over a [`StateView`]; the Block-STM parallel
//! executor and the sequential executor of `vm-state` are generic over it.
//!
//! Rules (also in `docs/TRANSACTIONS.md`), in order:
//! 1. `chain_id` must equal the block's, the nonce must equal the sender's stored nonce, the
//!    gas limit must cover the intrinsic gas, and the sender's balance must cover
//!    `gas_limit * gas_price`; otherwise `Rejected` (nothing written, nothing charged).
//!    Privacy transactions are `Rejected` here: the node's privacy pipeline executes them.
//! 2. Otherwise the nonce is incremented and `fee = gas_used * gas_price` is burned from the
//!    sender, whatever the outcome.
//! 3. Transfer: fixed gas; the amount moves unless the balance left after the fee is short
//!    (`Revert`).
//! 4. Deploy: the module is validated and compiled (cached by hash); its address is
//!    `contract_address(sender, nonce)`; `init` runs if exported; on success the code hash is
//!    stored under `StateKey::code(addr)` and the module under `StateKey::code_blob(hash)`,
//!    and the return data is the 20-byte address.
//! 5. Call: `value` moves to the contract, then `call` runs with the gas left.
//!    Anything but success keeps only the nonce and fee writes.
//!
//! Signatures are not checked here (the node verifies them before execution, in batches).

use std::collections::BTreeMap;
use std::sync::Arc;

use vm_state::{
    Access, Account, Address, BlockEnv, ReadError, Receipt, StateKey, StateValue, StateView,
    TxExecutor, TxStatus,
};

use crate::host::CallContext;
use crate::instance::{CallOutcome, CallResult, Entry, VmWorker};
use crate::tx::{contract_address, AccessList, Transaction, TxKind, MAX_DECLARED_SLOTS};
use crate::vm::Vm;

/// Message of the `Rejected` status of privacy transactions.
pub const PRIVACY_REJECTED: &str = "privacy transactions are executed by the node pipeline";

/// Most idle workers an executor keeps between blocks (each holds a few instances, i.e.
/// slots of the pooling allocator).
const MAX_IDLE_WORKERS: usize = 64;

/// The WASM transaction executor. Clones share the VM and the idle workers.
#[derive(Clone, Debug)]
pub struct VmExecutor {
    vm: Arc<Vm>,
    /// Workers handed back after a block, with their instances warm: creating a store and an
    /// instance per worker per block (and dropping them, which resets their memory through
    /// the kernel) cost more than a block's worth of transfers at 16 threads.
    idle: Arc<parking_lot::Mutex<Vec<VmWorker>>>,
}

impl VmExecutor {
    pub fn new(vm: Arc<Vm>) -> Self {
        Self {
            vm,
            idle: Arc::default(),
        }
    }

    /// The VM (engine and module cache) behind this executor.
    pub fn vm(&self) -> &Arc<Vm> {
        &self.vm
    }

    /// Gas charged before any execution, or `None` for kinds this executor does not run.
    pub fn intrinsic_gas(&self, tx: &Transaction) -> Option<u64> {
        let g = &self.vm.config().gas;
        Some(match &tx.kind {
            TxKind::Transfer { .. } => g.transfer,
            TxKind::Deploy { code } => g
                .tx_base
                .saturating_add(g.deploy_per_byte.saturating_mul(code.len() as u64)),
            TxKind::Call { input, access, .. } => {
                // A declared slot costs its bytes and its 4-byte length, like input.
                let declared: usize = access
                    .iter()
                    .flat_map(|a| a.slots())
                    .map(|(s, _)| s.len() + 4)
                    .sum();
                g.tx_base.saturating_add(
                    g.input_per_byte
                        .saturating_mul(input.len().saturating_add(declared) as u64),
                )
            }
            TxKind::Privacy(_) => return None,
        })
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

/// The account records a transaction touches (sender, and a recipient or called contract),
/// each read through the view once and written once at the end, kept in a small vector: no
/// tree nodes to allocate on the per-transaction path.
struct Accounts {
    /// Address, its record as the transaction changed it, and its key (built once).
    entries: Vec<(Address, Account, StateKey)>,
}

impl Accounts {
    fn new() -> Self {
        Self {
            entries: Vec::with_capacity(2),
        }
    }
    fn entry(
        &mut self,
        view: &mut dyn StateView,
        a: &Address,
    ) -> Result<&mut (Address, Account, StateKey), ReadError> {
        let i = match self.entries.iter().position(|(k, _, _)| k == a) {
            Some(i) => i,
            None => {
                let key = StateKey::account(a);
                let v = view.read(&key)?;
                let acct = Account::decode(v.as_deref()).map_err(|e| {
                    ReadError::Storage(format!("{e} at key {}", hex::encode(&key.0)))
                })?;
                self.entries.push((*a, acct, key));
                self.entries.len() - 1
            }
        };
        Ok(&mut self.entries[i])
    }
    fn get(&mut self, view: &mut dyn StateView, a: &Address) -> Result<Account, ReadError> {
        Ok(self.entry(view, a)?.1)
    }
    fn set_balance(
        &mut self,
        view: &mut dyn StateView,
        a: &Address,
        balance: u128,
    ) -> Result<(), ReadError> {
        self.entry(view, a)?.1.balance = balance;
        Ok(())
    }
    /// Forgets every change but the sender's record, whose balance goes back to `balance`
    /// (a failed transaction keeps only its nonce and fee).
    fn roll_back_to(&mut self, sender: &Address, balance: u128) {
        self.entries.retain(|(a, _, _)| a == sender);
        for (_, acct, _) in &mut self.entries {
            acct.balance = balance;
        }
    }
    /// Writes every touched record, in address order.
    fn write(mut self, view: &mut dyn StateView) {
        self.entries.sort_unstable_by_key(|x| x.0);
        for (_, acct, key) in self.entries {
            view.write(key, Some(acct.encode()));
        }
    }
}

impl TxExecutor for VmExecutor {
    type Tx = Transaction;
    type Worker = VmWorker;

    fn new_worker(&self) -> VmWorker {
        self.idle.lock().pop().unwrap_or_default()
    }

    /// Native transfers declare their two account records; calls with an access list
    /// declare the sender's record, the contract's record if value moves, the contract's
    /// code hash (read) and the listed storage slots, writable or read-only (the host traps
    /// any other storage access, so the list holds in every mode; the code blob, never
    /// written outside a deploy, needs no declaration). Deploys, calls without a list and
    /// privacy transactions do not declare, so a block containing them runs with Block-STM.
    fn declare_access(&self, tx: &Transaction, out: &mut Vec<(StateKey, Access)>) -> bool {
        match &tx.kind {
            TxKind::Transfer { to, .. } => {
                out.push((StateKey::account(&tx.sender_address()), Access::Write));
                out.push((StateKey::account(to), Access::Write));
                true
            }
            TxKind::Call {
                contract,
                value,
                access: Some(list),
                ..
            } => {
                out.push((StateKey::account(&tx.sender_address()), Access::Write));
                if *value > 0 {
                    out.push((StateKey::account(contract), Access::Write));
                }
                out.push((StateKey::code(contract), Access::Read));
                out.extend(list.slots().map(|(s, writable)| {
                    let access = if writable {
                        Access::Write
                    } else {
                        Access::Read
                    };
                    (StateKey::storage(contract, s), access)
                }));
                true
            }
            TxKind::Deploy { .. } | TxKind::Call { access: None, .. } | TxKind::Privacy(_) => false,
        }
    }

    fn recycle_worker(&self, worker: VmWorker) {
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE_WORKERS {
            idle.push(worker);
        }
    }

    fn execute(
        &self,
        worker: &mut VmWorker,
        tx: &Transaction,
        env: &BlockEnv,
        view: &mut dyn StateView,
    ) -> Result<Receipt, ReadError> {
        let cfg = self.vm.config();
        if tx.chain_id != env.chain_id {
            return Ok(rejected(format!(
                "wrong chain id {} (block is {})",
                tx.chain_id, env.chain_id
            )));
        }
        let Some(intrinsic) = self.intrinsic_gas(tx) else {
            return Ok(rejected(PRIVACY_REJECTED.into()));
        };
        match &tx.kind {
            TxKind::Deploy { code } if code.len() > cfg.max_code_bytes => {
                return Ok(rejected(format!(
                    "code of {} bytes exceeds {}",
                    code.len(),
                    cfg.max_code_bytes
                )))
            }
            TxKind::Call {
                access: Some(list), ..
            } if list.len() > MAX_DECLARED_SLOTS => {
                return Ok(rejected(format!(
                    "{} declared slots exceed {MAX_DECLARED_SLOTS}",
                    list.len()
                )))
            }
            TxKind::Call { input, .. } if input.len() > cfg.max_input_bytes => {
                return Ok(rejected(format!(
                    "input of {} bytes exceeds {}",
                    input.len(),
                    cfg.max_input_bytes
                )))
            }
            _ => {}
        }
        let sender = tx.sender_address();
        let mut accounts = Accounts::new();
        let Account { nonce, balance } = accounts.get(view, &sender)?;
        if nonce != tx.nonce {
            return Ok(rejected(format!(
                "bad nonce: expected {nonce}, got {}",
                tx.nonce
            )));
        }
        if tx.gas_limit < intrinsic {
            return Ok(rejected(format!(
                "gas limit {} below intrinsic gas {intrinsic}",
                tx.gas_limit
            )));
        }
        let Some(new_nonce) = nonce.checked_add(1) else {
            return Ok(rejected("nonce exhausted".into()));
        };
        let max_fee = u128::from(tx.gas_limit) * u128::from(tx.gas_price);
        if balance < max_fee {
            return Ok(rejected(format!(
                "balance {balance} cannot pay the maximum fee {max_fee}"
            )));
        }

        // From here on the transaction is included: nonce and fee are always written.
        let (status, gas_used, return_data, events, writes) = match &tx.kind {
            TxKind::Transfer { to, amount } => {
                let gas_used = intrinsic;
                let fee = u128::from(gas_used) * u128::from(tx.gas_price);
                let after_fee = balance - fee;
                let status = if after_fee < *amount {
                    TxStatus::Revert
                } else {
                    accounts.set_balance(view, &sender, balance - amount)?;
                    let to_balance = accounts.get(view, to)?.balance;
                    match to_balance.checked_add(*amount) {
                        Some(v) => {
                            accounts.set_balance(view, to, v)?;
                            TxStatus::Success
                        }
                        None => TxStatus::Revert,
                    }
                };
                if status != TxStatus::Success {
                    accounts.roll_back_to(&sender, balance);
                }
                (status, gas_used, Vec::new(), Vec::new(), BTreeMap::new())
            }
            TxKind::Deploy { code } => {
                self.deploy(worker, tx, env, view, &sender, code, intrinsic)?
            }
            TxKind::Call {
                contract,
                input,
                value,
                access,
            } => self.call(
                worker,
                tx,
                env,
                view,
                &sender,
                contract,
                input,
                access.as_ref(),
                *value,
                intrinsic,
                balance,
                max_fee,
                &mut accounts,
            )?,
            TxKind::Privacy(_) => return Ok(rejected(PRIVACY_REJECTED.into())),
        };
        let gas_used = gas_used.min(tx.gas_limit);
        let fee = u128::from(gas_used) * u128::from(tx.gas_price);
        if status != TxStatus::Success {
            // Roll back every balance change; only the fee stays.
            accounts.roll_back_to(&sender, balance);
        }
        let sender_now = accounts.entry(view, &sender)?;
        // `balance >= fee` holds: the affordability check covers the maximum fee and value
        // transfers leave at least the maximum fee.
        sender_now.1.balance = sender_now.1.balance.saturating_sub(fee);
        sender_now.1.nonce = new_nonce;
        for (k, v) in writes {
            view.write(k, v);
        }
        accounts.write(view);
        Ok(Receipt {
            status,
            gas_used,
            fee,
            return_data,
            events,
        })
    }
}

type Executed = (
    TxStatus,
    u64,
    Vec<u8>,
    Vec<vm_state::Log>,
    BTreeMap<StateKey, Option<StateValue>>,
);

impl VmExecutor {
    #[allow(clippy::too_many_arguments)]
    fn deploy(
        &self,
        worker: &mut VmWorker,
        tx: &Transaction,
        env: &BlockEnv,
        view: &mut dyn StateView,
        sender: &Address,
        code: &[u8],
        intrinsic: u64,
    ) -> Result<Executed, ReadError> {
        let failed =
            |status: TxStatus, gas: u64| (status, gas, Vec::new(), Vec::new(), BTreeMap::new());
        let contract = match self.vm.compile(code) {
            Ok(c) => c,
            Err(e) => {
                return Ok(failed(
                    TxStatus::Trap(format!("invalid code: {e}")),
                    intrinsic,
                ))
            }
        };
        let addr = contract_address(sender, tx.nonce);
        if view.read(&StateKey::code(&addr))?.is_some() {
            return Ok(failed(
                TxStatus::Trap("contract address already in use".into()),
                intrinsic,
            ));
        }
        let ctx = CallContext {
            caller: *sender,
            this: addr,
            value: 0,
            block_number: env.number,
            timestamp: env.timestamp,
        };
        let r = worker.call(
            &self.vm,
            &contract,
            Entry::Init,
            ctx,
            &[],
            None,
            tx.gas_limit - intrinsic,
            view,
        )?;
        let gas_used = intrinsic.saturating_add(r.gas_used);
        let CallResult {
            outcome,
            return_data,
            events,
            mut writes,
            ..
        } = r;
        if outcome != CallOutcome::Success {
            return Ok((
                outcome.into_status(),
                gas_used,
                return_data,
                Vec::new(),
                BTreeMap::new(),
            ));
        }
        let hash = contract.code_hash();
        writes.insert(StateKey::code(&addr), Some(StateValue::from(&hash[..])));
        writes.insert(StateKey::code_blob(&hash), Some(StateValue::from(code)));
        Ok((TxStatus::Success, gas_used, addr.to_vec(), events, writes))
    }

    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        worker: &mut VmWorker,
        tx: &Transaction,
        env: &BlockEnv,
        view: &mut dyn StateView,
        sender: &Address,
        contract_addr: &Address,
        input: &[u8],
        access: Option<&AccessList>,
        value: u128,
        intrinsic: u64,
        balance: u128,
        max_fee: u128,
        accounts: &mut Accounts,
    ) -> Result<Executed, ReadError> {
        let failed =
            |status: TxStatus, gas: u64| (status, gas, Vec::new(), Vec::new(), BTreeMap::new());
        let Some(hash) = view.read(&StateKey::code(contract_addr))? else {
            return Ok(failed(
                TxStatus::Trap("no contract at address".into()),
                intrinsic,
            ));
        };
        let hash: [u8; 32] = <[u8; 32]>::try_from(&hash[..])
            .map_err(|_| ReadError::Storage("malformed code hash".into()))?;
        let contract = match worker
            .take_contract(&hash)
            .or_else(|| self.vm.cached(&hash))
        {
            Some(c) => c,
            None => {
                // Not compiled in this process yet (e.g. after a restart): load and compile.
                // The blob is immutable (content-addressed), so skipping this read when the
                // cache is warm cannot change the result.
                let code = view
                    .read(&StateKey::code_blob(&hash))?
                    .ok_or_else(|| ReadError::Storage("code blob missing".into()))?;
                self.vm.compile(&code).map_err(|e| {
                    ReadError::Storage(format!("stored contract does not compile: {e}"))
                })?
            }
        };
        if balance - max_fee < value {
            return Ok(failed(TxStatus::Revert, intrinsic));
        }
        if value > 0 {
            accounts.set_balance(view, sender, balance - value)?;
            let cb = accounts.get(view, contract_addr)?.balance;
            match cb.checked_add(value) {
                Some(v) => accounts.set_balance(view, contract_addr, v)?,
                None => return Ok(failed(TxStatus::Revert, intrinsic)),
            }
        }
        let ctx = CallContext {
            caller: *sender,
            this: *contract_addr,
            value,
            block_number: env.number,
            timestamp: env.timestamp,
        };
        let r = worker.call(
            &self.vm,
            &contract,
            Entry::Call,
            ctx,
            input,
            access,
            tx.gas_limit - intrinsic,
            view,
        );
        worker.keep_contract(contract);
        let r = r?;
        let gas_used = intrinsic.saturating_add(r.gas_used);
        Ok((
            r.outcome.into_status(),
            gas_used,
            r.return_data,
            r.events,
            r.writes,
        ))
    }
}
