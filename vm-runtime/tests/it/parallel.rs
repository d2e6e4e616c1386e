//! Parallel (vm-state's Block-STM) == sequential on random blocks of WASM token transfers,
//! counter increments and native transfers, at 2, 10, 100 and 10,000 accounts and 1..=8
//! threads. `SUPERVM_PROPTEST_CASES` scales the number of blocks (default 6 per universe).

use std::collections::BTreeMap;

use proptest::prelude::*;
use vm_runtime::contracts;
use vm_runtime::vm_state::{execute_block_sequential, ParallelExecutor};
use vm_runtime::{address_of, AccessList, Address, StateKey, StateValue, Transaction, TxKind};

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
    /// A token transfer declaring its two balance slots; `lie`: only the sender's (the host
    /// then traps the call when it touches the receiver's); `value` moves native units to
    /// the token contract.
    TokenDeclared {
        from: usize,
        to: usize,
        amount: u128,
        value: u128,
        lie: bool,
    },
    /// A counter call declaring its slot: `get` read-only, `increment` writable; `lie`: an
    /// increment declaring its slot read-only (the host traps its write). Few keys, so reads
    /// and writes of one slot interleave (read-before-write edges of the graph).
    CountDeclared {
        from: usize,
        key: u8,
        get: bool,
        lie: bool,
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
                        access: None,
                    },
                    false,
                ),
                Op::Count { from, key } => (
                    *from,
                    TxKind::Call {
                        contract: w.counter,
                        input: contracts::counter_increment_input(&[key % 8]),
                        value: 0,
                        access: None,
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
                Op::TokenDeclared {
                    from,
                    to,
                    amount,
                    value,
                    lie,
                } => {
                    let mut access = vec![contracts::token_balance_key(&w.addrs[*from])];
                    if !lie {
                        access.push(contracts::token_balance_key(&w.addrs[*to]));
                    }
                    (
                        *from,
                        TxKind::Call {
                            contract: w.token,
                            input: contracts::token_transfer_input(&w.addrs[*to], *amount),
                            value: *value,
                            access: Some(AccessList::writes(access)),
                        },
                        false,
                    )
                }
                Op::CountDeclared {
                    from,
                    key,
                    get,
                    lie,
                } => {
                    let k = [key % 4];
                    let slot = vec![contracts::counter_storage_key(&k)];
                    let (input, access) = if *get {
                        let list = AccessList {
                            write: Vec::new(),
                            read: slot,
                        };
                        (contracts::counter_get_input(&k), list)
                    } else if *lie {
                        let list = AccessList {
                            write: Vec::new(),
                            read: slot,
                        };
                        (contracts::counter_increment_input(&k), list)
                    } else {
                        (
                            contracts::counter_increment_input(&k),
                            AccessList::writes(slot),
                        )
                    };
                    (
                        *from,
                        TxKind::Call {
                            contract: w.counter,
                            input,
                            value: 0,
                            access: Some(access),
                        },
                        false,
                    )
                }
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
    check_with(accounts, op(accounts), ops_len, false);
}

/// Random blocks from `ops` against the sequential oracle, on 1..=8 threads: through
/// Block-STM alone, or (`declared`) through the declared-access graph alone and then
/// through the node's entry point `execute_block`.
fn check_with(accounts: usize, ops: impl Strategy<Value = Op>, ops_len: usize, declared: bool) {
    let w = world(accounts);
    let executors: Vec<ParallelExecutor> = (1..=8)
        .map(|t| ParallelExecutor::new(t).expect("thread pool"))
        .collect();
    let (exec, env, state) = (&w.chain.exec, &w.chain.env, &w.chain.state);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases()));
    runner
        .run(&proptest::collection::vec(ops, 1..ops_len), |ops| {
            let txs = block(&w, &ops);
            let seq = execute_block_sequential(exec, &txs, env, state).expect("sequential");
            for par in &executors {
                let outs = if declared {
                    let graph = par
                        .execute_block_declared(exec, &txs, env, state)
                        .expect("declared")
                        .expect("every transaction declares");
                    let node = par.execute_block(exec, &txs, env, state).expect("adaptive");
                    prop_assert!(!node.stats.sequential_fallback);
                    vec![graph, node]
                } else {
                    vec![par
                        .execute_block_parallel(exec, &txs, env, state)
                        .expect("parallel")]
                };
                for out in outs {
                    prop_assert_eq!(&out.receipts, &seq.receipts, "threads {}", par.threads());
                    prop_assert_eq!(&out.write_set, &seq.write_set, "threads {}", par.threads());
                }
            }
            Ok(())
        })
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

/// Blocks whose transactions all declare their keys: native transfers, token calls with
/// access lists (some moving value, some lying about their slots, which the host traps), and
/// bad nonces.
fn declared_op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..n, 0..n, 0u128..2_000).prop_map(|(from, to, amount)| Op::Native { from, to, amount }),
        6 => (0..n, 0..n, 0u128..600, prop_oneof![3 => Just(0u128), 1 => 1u128..50], proptest::bool::weighted(0.1))
            .prop_map(|(from, to, amount, value, lie)| Op::TokenDeclared { from, to, amount, value, lie }),
        1 => (0..n).prop_map(|from| Op::BadNonce { from }),
        4 => (0..n, any::<u8>(), proptest::bool::weighted(0.6), proptest::bool::weighted(0.1))
            .prop_map(|(from, key, get, lie)| Op::CountDeclared { from, key, get, lie }),
    ]
}

fn check_declared(accounts: usize, ops_len: usize) {
    check_with(accounts, declared_op(accounts), ops_len, true);
}

#[test]
fn declared_equals_sequential_2_accounts() {
    check_declared(2, 60);
}

#[test]
fn declared_equals_sequential_100_accounts() {
    check_declared(100, 120);
}

#[test]
fn declared_equals_sequential_10000_accounts() {
    check_declared(10_000, 300);
}

/// A call that touches a storage slot it did not declare traps, in sequential and in
/// graph execution alike: its writes are dropped, its nonce and fee stay.
#[test]
fn an_undeclared_slot_traps_the_call() {
    let w = world(4);
    let ops: Vec<Op> = (0..40)
        .map(|i| Op::TokenDeclared {
            from: i % 4,
            to: (i + 1) % 4,
            amount: 3,
            value: 0,
            lie: i % 5 == 0,
        })
        .collect();
    let txs = block(&w, &ops);
    let seq = execute_block_sequential(&w.chain.exec, &txs, &w.chain.env, &w.chain.state)
        .expect("sequential");
    for (i, r) in seq.receipts.iter().enumerate() {
        if i % 5 == 0 {
            assert_eq!(
                r.status,
                vm_runtime::TxStatus::Trap(vm_runtime::NOT_DECLARED.into()),
                "tx {i}"
            );
            assert!(r.fee > 0, "a trapped call still pays");
        } else {
            assert_eq!(r.status, vm_runtime::TxStatus::Success, "tx {i}");
        }
    }
    let par = ParallelExecutor::new(4).expect("pool");
    let out = par
        .execute_block_declared(&w.chain.exec, &txs, &w.chain.env, &w.chain.state)
        .expect("declared")
        .expect("declares");
    assert_eq!(out.receipts, seq.receipts);
    assert_eq!(out.write_set, seq.write_set);
}

/// Reads of a read-only slot succeed; a write to it traps the call; interleaved with
/// increments of the same slot, the graph orders them as sequential execution does.
#[test]
fn read_only_slots_are_enforced_and_ordered() {
    let w = world(64);
    let ops: Vec<Op> = (0..64)
        .map(|i| Op::CountDeclared {
            from: i,
            key: 1,
            get: i % 3 != 0,
            lie: i % 9 == 0,
        })
        .collect();
    let txs = block(&w, &ops);
    let seq = execute_block_sequential(&w.chain.exec, &txs, &w.chain.env, &w.chain.state)
        .expect("sequential");
    for (i, r) in seq.receipts.iter().enumerate() {
        let expect = if i % 3 == 0 && i % 9 == 0 {
            vm_runtime::TxStatus::Trap(vm_runtime::DECLARED_READ_ONLY.into())
        } else {
            vm_runtime::TxStatus::Success
        };
        assert_eq!(r.status, expect, "tx {i}");
    }
    let par = ParallelExecutor::new(4).expect("pool");
    for _ in 0..5 {
        let out = par
            .execute_block_declared(&w.chain.exec, &txs, &w.chain.env, &w.chain.state)
            .expect("declared")
            .expect("declares");
        assert_eq!(
            out.stats.declared_runs, 1,
            "not a chain: gets run side by side"
        );
        assert_eq!(out.receipts, seq.receipts);
        assert_eq!(out.write_set, seq.write_set);
    }
}
