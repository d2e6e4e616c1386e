//! Parallel (vm-state's Block-STM) == sequential on random blocks of WASM token transfers,
//! counter increments and native transfers, at 2, 10, 100 and 10,000 accounts and 1..=8
//! threads. `SUPERVM_PROPTEST_CASES` scales the number of blocks (default 6 per universe).

use std::collections::BTreeMap;

use proptest::prelude::*;
use vm_runtime::contracts;
use vm_runtime::vm_state::{execute_block_sequential, ParallelExecutor};
use vm_runtime::{address_of, Address, StateKey, StateValue, Transaction, TxKind};

use crate::common::*;

struct World {
    chain: Chain,
    token: Address,
    counter: Address,
    pubkeys: Vec<[u8; 32]>,
    addrs: Vec<Address>,
}

fn pubkey(i: usize) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&(i as u64).to_le_bytes());
    k[31] = 0x5a;
    k
}

/// Genesis: `accounts` accounts with native and token balances (written directly).
fn world(accounts: usize) -> World {
    let mut chain = Chain::new();
    let mut owner = Account::new(1);
    chain.fund(&owner.addr, RICH);
    let token = chain.deploy(&mut owner, contracts::token_wasm());
    let counter = chain.deploy(&mut owner, contracts::counter_wasm());
    let pubkeys: Vec<[u8; 32]> = (0..accounts).map(pubkey).collect();
    let addrs: Vec<Address> = pubkeys.iter().map(address_of).collect();
    for a in &addrs {
        chain.fund(a, 10_000_000);
        chain.state.insert(
            StateKey::storage(&token, &contracts::token_balance_key(a)),
            StateValue::from(&1_000u128.to_le_bytes()[..]),
        );
    }
    World {
        chain,
        token,
        counter,
        pubkeys,
        addrs,
    }
}

#[derive(Clone, Debug)]
enum Op {
    Native {
        from: usize,
        to: usize,
        amount: u128,
    },
    Token {
        from: usize,
        to: usize,
        amount: u128,
    },
    Count {
        from: usize,
        key: u8,
    },
    BadNonce {
        from: usize,
    },
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..n, 0..n, 0u128..2_000).prop_map(|(from, to, amount)| Op::Native { from, to, amount }),
        5 => (0..n, 0..n, 0u128..600).prop_map(|(from, to, amount)| Op::Token { from, to, amount }),
        2 => (0..n, any::<u8>()).prop_map(|(from, key)| Op::Count { from, key }),
        1 => (0..n).prop_map(|from| Op::BadNonce { from }),
    ]
}

fn block(w: &World, ops: &[Op]) -> Vec<Transaction> {
    let mut nonces: BTreeMap<usize, u64> = BTreeMap::new();
    ops.iter()
        .map(|op| {
            let (from, kind, skip) = match op {
                Op::Native { from, to, amount } => (
                    *from,
                    TxKind::Transfer {
                        to: w.addrs[*to],
                        amount: *amount,
                    },
                    false,
                ),
                Op::Token { from, to, amount } => (
                    *from,
                    TxKind::Call {
                        contract: w.token,
                        input: contracts::token_transfer_input(&w.addrs[*to], *amount),
                        value: 0,
                    },
                    false,
                ),
                Op::Count { from, key } => (
                    *from,
                    TxKind::Call {
                        contract: w.counter,
                        input: contracts::counter_increment_input(&[key % 8]),
                        value: 0,
                    },
                    false,
                ),
                Op::BadNonce { from } => (
                    *from,
                    TxKind::Transfer {
                        to: w.addrs[0],
                        amount: 1,
                    },
                    true,
                ),
            };
            let n = nonces.entry(from).or_insert(0);
            let nonce = if skip { *n + 5 } else { *n };
            if !skip {
                *n += 1;
            }
            Transaction::new_unsigned(CHAIN_ID, w.pubkeys[from], nonce, 200_000, 1, kind)
        })
        .collect()
}

fn cases() -> u32 {
    std::env::var("SUPERVM_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

fn check(accounts: usize, ops_len: usize) {
    let w = world(accounts);
    let executors: Vec<ParallelExecutor> = (1..=8)
        .map(|t| ParallelExecutor::new(t).expect("thread pool"))
        .collect();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases()));
    runner
        .run(
            &proptest::collection::vec(op(accounts), 1..ops_len),
            |ops| {
                let txs = block(&w, &ops);
                let seq =
                    execute_block_sequential(&w.chain.exec, &txs, &w.chain.env, &w.chain.state)
                        .expect("sequential");
                for par in &executors {
                    let out = par
                        .execute_block_parallel(&w.chain.exec, &txs, &w.chain.env, &w.chain.state)
                        .expect("parallel");
                    prop_assert_eq!(&out.receipts, &seq.receipts, "threads {}", par.threads());
                    prop_assert_eq!(&out.write_set, &seq.write_set, "threads {}", par.threads());
                }
                Ok(())
            },
        )
        .expect("parallel == sequential");
}

#[test]
fn parallel_equals_sequential_2_accounts() {
    check(2, 60);
}

#[test]
fn parallel_equals_sequential_10_accounts() {
    check(10, 60);
}

#[test]
fn parallel_equals_sequential_100_accounts() {
    check(100, 120);
}

#[test]
fn parallel_equals_sequential_10000_accounts() {
    check(10_000, 200);
}
