//! Helpers: a chain over an in-memory `BTreeMap` state, executed with vm-state's sequential
//! executor, and deterministic accounts.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use vm_runtime::contracts;
use vm_runtime::vm_state::{execute_block_sequential, BlockOutput};
use vm_runtime::{
    address_of, contract_address, Address, BlockEnv, Receipt, StateKey, StateValue, Transaction,
    TxKind, TxStatus, Vm, VmConfig, VmExecutor,
};

pub const CHAIN_ID: u64 = 7;
pub const GAS_PRICE: u64 = 1;
pub const GAS_LIMIT: u64 = 1_000_000;
pub const RICH: u128 = 1_000_000_000_000;

pub fn signing_key(i: u64) -> SigningKey {
    let seed = vm_runtime::crypto::sha256(&i.to_le_bytes());
    SigningKey::from_bytes(&seed)
}

pub struct Account {
    pub key: SigningKey,
    pub addr: Address,
    pub nonce: u64,
}

impl Account {
    pub fn new(i: u64) -> Self {
        let key = signing_key(i);
        let addr = address_of(&key.verifying_key().to_bytes());
        Self {
            key,
            addr,
            nonce: 0,
        }
    }

    /// A signed transaction with the next nonce.
    pub fn tx(&mut self, kind: TxKind) -> Transaction {
        self.tx_with(kind, GAS_LIMIT)
    }

    pub fn tx_with(&mut self, kind: TxKind, gas_limit: u64) -> Transaction {
        let mut tx = Transaction::new_unsigned(
            CHAIN_ID,
            self.key.verifying_key().to_bytes(),
            self.nonce,
            gas_limit,
            GAS_PRICE,
            kind,
        );
        tx.sign(&self.key);
        self.nonce += 1;
        tx
    }

    pub fn call(&mut self, contract: Address, input: Vec<u8>) -> Transaction {
        self.call_with(contract, input, GAS_LIMIT)
    }

    /// A call without value or access list, with gas limit `gas_limit`.
    pub fn call_with(&mut self, contract: Address, input: Vec<u8>, gas_limit: u64) -> Transaction {
        self.tx_with(
            TxKind::Call {
                contract,
                input,
                value: 0,
                access: None,
            },
            gas_limit,
        )
    }
}

pub struct Chain {
    pub exec: VmExecutor,
    pub state: BTreeMap<StateKey, StateValue>,
    pub env: BlockEnv,
}

impl Chain {
    pub fn new() -> Self {
        Self::with_config(VmConfig::default())
    }

    pub fn with_config(cfg: VmConfig) -> Self {
        let vm = Arc::new(Vm::new(cfg).expect("engine"));
        Self {
            exec: VmExecutor::new(vm),
            state: BTreeMap::new(),
            env: BlockEnv {
                number: 1,
                timestamp: 1_700_000_000,
                chain_id: CHAIN_ID,
            },
        }
    }

    /// Sets the balance of `addr` (keeping its nonce).
    pub fn fund(&mut self, addr: &Address, amount: u128) {
        let mut acct = self.account(addr);
        acct.balance = amount;
        self.state.insert(StateKey::account(addr), acct.encode());
    }

    /// The account record of `addr` (nonce and balance).
    pub fn account(&self, addr: &Address) -> vm_runtime::Account {
        vm_runtime::Account::decode(self.state.get(&StateKey::account(addr)).map(|v| &v[..]))
            .expect("well-formed account record")
    }

    pub fn balance(&self, addr: &Address) -> u128 {
        self.account(addr).balance
    }

    pub fn nonce(&self, addr: &Address) -> u64 {
        self.account(addr).nonce
    }

    pub fn storage(&self, contract: &Address, key: &[u8]) -> Option<StateValue> {
        self.state.get(&StateKey::storage(contract, key)).cloned()
    }

    pub fn apply(&mut self, out: &BlockOutput) {
        for (k, v) in &out.write_set {
            match v {
                Some(v) => {
                    self.state.insert(k.clone(), v.clone());
                }
                None => {
                    self.state.remove(k);
                }
            }
        }
    }

    /// Executes a block sequentially and commits its writes.
    pub fn run(&mut self, txs: &[Transaction]) -> Vec<Receipt> {
        let out = execute_block_sequential(&self.exec, txs, &self.env, &self.state)
            .expect("block executes");
        self.apply(&out);
        out.receipts
    }

    pub fn run_one(&mut self, tx: Transaction) -> Receipt {
        self.run(std::slice::from_ref(&tx)).remove(0)
    }

    /// Deploys `code` from `who`; returns the contract address (asserts success).
    pub fn deploy(&mut self, who: &mut Account, code: Vec<u8>) -> Address {
        let nonce = who.nonce;
        let r = self.run_one(who.tx(TxKind::Deploy { code }));
        assert_eq!(r.status, TxStatus::Success, "deploy failed: {r:?}");
        let addr = contract_address(&who.addr, nonce);
        assert_eq!(r.return_data, addr.to_vec());
        addr
    }
}

/// Deploys the token from `owner` and mints `amount` to each of `holders`.
pub fn token_setup(
    chain: &mut Chain,
    owner: &mut Account,
    holders: &[Address],
    amount: u128,
) -> Address {
    let token = chain.deploy(owner, contracts::token_wasm());
    let txs: Vec<Transaction> = holders
        .iter()
        .map(|h| owner.call(token, contracts::token_mint_input(h, amount)))
        .collect();
    for r in chain.run(&txs) {
        assert_eq!(r.status, TxStatus::Success, "mint failed: {r:?}");
    }
    token
}

pub fn wat(src: &str) -> Vec<u8> {
    contracts::wat(src).expect("valid wat")
}
