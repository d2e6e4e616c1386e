//! Executor rules: nonces, fees, native transfers, value calls, privacy and chain id.

use vm_runtime::contracts;
use vm_runtime::{StateKey, Transaction, TxKind, TxStatus, PRIVACY_REJECTED};

use crate::common::*;

fn transfer(to: [u8; 20], amount: u128) -> TxKind {
    TxKind::Transfer { to, amount }
}

#[test]
fn native_transfer_moves_value_and_burns_the_fee() {
    let mut chain = Chain::new();
    let mut alice = Account::new(1);
    let bob = Account::new(2);
    chain.fund(&alice.addr, 1_000_000);
    let r = chain.run_one(alice.tx_with(transfer(bob.addr, 500), 10_000));
    assert_eq!(r.status, TxStatus::Success);
    let gas = chain.exec.vm().config().gas.transfer;
    assert_eq!(r.gas_used, gas);
    assert_eq!(r.fee, u128::from(gas) * u128::from(GAS_PRICE));
    assert_eq!(chain.balance(&bob.addr), 500);
    assert_eq!(chain.balance(&alice.addr), 1_000_000 - 500 - r.fee);
    assert_eq!(chain.nonce(&alice.addr), 1);
    // Self transfer only costs the fee.
    let r = chain.run_one(alice.tx_with(transfer(alice.addr, 100), 10_000));
    assert_eq!(r.status, TxStatus::Success);
    assert_eq!(chain.balance(&alice.addr), 1_000_000 - 500 - 2 * r.fee);
}

#[test]
fn transfer_beyond_balance_reverts_with_fee() {
    let mut chain = Chain::new();
    let mut alice = Account::new(1);
    chain.fund(&alice.addr, 20_000);
    let r = chain.run_one(alice.tx_with(transfer([5; 20], 19_000), 10_000));
    assert_eq!(r.status, TxStatus::Revert);
    assert_eq!(chain.balance(&alice.addr), 20_000 - r.fee);
    assert_eq!(chain.balance(&[5; 20]), 0);
    assert_eq!(chain.nonce(&alice.addr), 1);
}

#[test]
fn bad_nonce_is_rejected_and_changes_nothing() {
    let mut chain = Chain::new();
    let mut alice = Account::new(1);
    chain.fund(&alice.addr, RICH);
    alice.nonce = 3;
    let before = chain.state.clone();
    let r = chain.run_one(alice.tx(transfer([5; 20], 1)));
    assert!(
        matches!(r.status, TxStatus::Rejected(ref m) if m.contains("nonce")),
        "{r:?}"
    );
    assert_eq!((r.gas_used, r.fee), (0, 0));
    assert_eq!(chain.state, before);
    // Replaying an executed transaction is rejected too.
    alice.nonce = 0;
    let tx = alice.tx(transfer([5; 20], 1));
    assert_eq!(chain.run_one(tx.clone()).status, TxStatus::Success);
    assert!(matches!(chain.run_one(tx).status, TxStatus::Rejected(_)));
}

#[test]
fn unaffordable_fee_and_low_gas_are_rejected() {
    let mut chain = Chain::new();
    let mut poor = Account::new(1);
    chain.fund(&poor.addr, 9_999);
    let r = chain.run_one(poor.tx_with(transfer([5; 20], 1), 10_000));
    assert!(
        matches!(r.status, TxStatus::Rejected(ref m) if m.contains("fee")),
        "{r:?}"
    );
    poor.nonce = 0;
    chain.fund(&poor.addr, RICH);
    let r = chain.run_one(poor.tx_with(transfer([5; 20], 1), 10));
    assert!(
        matches!(r.status, TxStatus::Rejected(ref m) if m.contains("intrinsic")),
        "{r:?}"
    );
    assert_eq!(chain.nonce(&poor.addr), 0);
}

#[test]
fn wrong_chain_and_privacy_are_rejected() {
    let mut chain = Chain::new();
    let mut a = Account::new(1);
    chain.fund(&a.addr, RICH);
    let mut tx =
        Transaction::new_unsigned(CHAIN_ID + 1, [0; 32], 0, 10_000, 1, transfer([1; 20], 1));
    tx.sign(&a.key);
    assert!(matches!(chain.run_one(tx).status, TxStatus::Rejected(_)));
    let r = chain.run_one(a.tx(TxKind::Privacy(vec![1, 2, 3])));
    assert_eq!(r.status, TxStatus::Rejected(PRIVACY_REJECTED.into()));
}

#[test]
fn call_moves_value_only_on_success() {
    let mut chain = Chain::new();
    let mut a = Account::new(1);
    chain.fund(&a.addr, RICH);
    let counter = chain.deploy(&mut a, contracts::counter_wasm());
    let start = chain.balance(&a.addr);
    let r = chain.run_one(a.tx(TxKind::Call {
        contract: counter,
        input: contracts::counter_increment_input(b"v"),
        value: 1234,
        access: None,
    }));
    assert_eq!(r.status, TxStatus::Success);
    assert_eq!(chain.balance(&counter), 1234);
    assert_eq!(chain.balance(&a.addr), start - 1234 - r.fee);
    // A reverting call (bad selector) keeps the value with the caller.
    let start = chain.balance(&a.addr);
    let r = chain.run_one(a.tx(TxKind::Call {
        contract: counter,
        input: vec![9, 9],
        value: 1000,
        access: None,
    }));
    assert_eq!(r.status, TxStatus::Revert);
    assert_eq!(chain.balance(&counter), 1234);
    assert_eq!(chain.balance(&a.addr), start - r.fee);
}

#[test]
fn call_to_an_address_without_code_fails_with_fee() {
    let mut chain = Chain::new();
    let mut a = Account::new(1);
    chain.fund(&a.addr, RICH);
    let r = chain.run_one(a.call([0xee; 20], vec![1]));
    assert_eq!(r.status, TxStatus::Trap("no contract at address".into()));
    assert!(r.fee > 0);
}

#[test]
fn deploy_stores_code_and_cold_cache_gives_the_same_result() {
    let mut chain = Chain::new();
    let mut a = Account::new(1);
    chain.fund(&a.addr, RICH);
    let counter = chain.deploy(&mut a, contracts::counter_wasm());
    let hash = vm_runtime::crypto::sha256(&contracts::counter_wasm());
    assert_eq!(
        chain
            .state
            .get(&StateKey::code(&counter))
            .map(|v| v.to_vec()),
        Some(hash.to_vec())
    );
    assert!(chain.state.contains_key(&StateKey::code_blob(&hash)));
    let tx = a.call(counter, contracts::counter_increment_input(b"z"));
    // A fresh node (empty module cache) loads the code from state: same receipt.
    let mut cold = Chain::new();
    cold.state = chain.state.clone();
    let r_cold = cold.run_one(tx.clone());
    let r_warm = chain.run_one(tx);
    assert_eq!(r_cold, r_warm);
    assert_eq!(cold.state, chain.state);
}
