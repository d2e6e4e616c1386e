//! Contract behaviour: the shipped token and counter, and every edge case of the VM.

use std::sync::Arc;

use vm_runtime::contracts::{self, decode_u128, decode_u64};
use vm_runtime::{
    ReadError, StateKey, StateValue, StateView, TxExecutor, TxKind, TxStatus, Vm, VmConfig,
    VmError, VmExecutor,
};

use crate::common::*;

fn setup() -> (Chain, Account) {
    let mut chain = Chain::new();
    let owner = Account::new(1);
    chain.fund(&owner.addr, RICH);
    (chain, owner)
}

/// Deploys `src` (WAT) and calls it once; returns the receipt.
fn deploy_and_call(src: &str, gas: u64) -> (Chain, vm_runtime::Receipt, [u8; 20]) {
    let (mut chain, mut owner) = setup();
    let c = chain.deploy(&mut owner, wat(src));
    let tx = owner.call_with(c, vec![], gas);
    let r = chain.run_one(tx);
    (chain, r, c)
}

#[test]
fn token_transfer_mint_and_balance() {
    let (mut chain, mut owner) = setup();
    let mut alice = Account::new(2);
    let bob = Account::new(3);
    chain.fund(&alice.addr, RICH);
    let token = token_setup(&mut chain, &mut owner, &[alice.addr], 1_000);
    let r = chain.run_one(alice.call(token, contracts::token_transfer_input(&bob.addr, 300)));
    assert_eq!(r.status, TxStatus::Success);
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].address, token);
    let r = chain.run_one(alice.call(token, contracts::token_balance_of_input(&bob.addr)));
    assert_eq!(decode_u128(&r.return_data), Some(300));
    let r = chain.run_one(alice.call(token, contracts::token_balance_of_input(&alice.addr)));
    assert_eq!(decode_u128(&r.return_data), Some(700));
    // Overdraft reverts with a reason, and nothing moves.
    let r = chain.run_one(alice.call(token, contracts::token_transfer_input(&bob.addr, 701)));
    assert_eq!(r.status, TxStatus::Revert);
    assert_eq!(r.return_data, b"insufficient balance");
    assert!(r.fee > 0);
    let stored = chain
        .storage(&token, &contracts::token_balance_key(&alice.addr))
        .expect("alice has a balance");
    assert_eq!(decode_u128(&stored), Some(700));
    // Transfer to oneself keeps the balance.
    let r = chain.run_one(alice.call(token, contracts::token_transfer_input(&alice.addr, 700)));
    assert_eq!(r.status, TxStatus::Success);
    let r = chain.run_one(alice.call(token, contracts::token_balance_of_input(&alice.addr)));
    assert_eq!(decode_u128(&r.return_data), Some(700));
}

#[test]
fn token_mint_only_by_owner_and_no_overflow() {
    let (mut chain, mut owner) = setup();
    let mut mallory = Account::new(9);
    chain.fund(&mallory.addr, RICH);
    let token = token_setup(&mut chain, &mut owner, &[mallory.addr], u128::MAX);
    let r = chain.run_one(mallory.call(token, contracts::token_mint_input(&mallory.addr, 5)));
    assert_eq!(r.status, TxStatus::Revert);
    assert_eq!(r.return_data, b"not owner");
    let r = chain.run_one(owner.call(token, contracts::token_mint_input(&mallory.addr, 1)));
    assert_eq!(r.status, TxStatus::Revert);
    assert_eq!(r.return_data, b"overflow");
    let r = chain.run_one(owner.call(token, vec![0x42]));
    assert_eq!(r.status, TxStatus::Revert);
    assert_eq!(r.return_data, b"bad input");
}

#[test]
fn counter_increments_keys() {
    let (mut chain, mut owner) = setup();
    let counter = chain.deploy(&mut owner, contracts::counter_wasm());
    for expect in 1..=3u64 {
        let r = chain.run_one(owner.call(counter, contracts::counter_increment_input(b"k1")));
        assert_eq!(r.status, TxStatus::Success);
        assert_eq!(decode_u64(&r.return_data), Some(expect));
    }
    let r = chain.run_one(owner.call(counter, contracts::counter_get_input(b"other")));
    assert_eq!(decode_u64(&r.return_data), Some(0));
    let stored = chain.storage(&counter, &contracts::counter_storage_key(b"k1"));
    assert_eq!(stored.as_deref().and_then(decode_u64), Some(3));
}

#[test]
fn infinite_loop_runs_out_of_gas() {
    let (chain, r, _) = deploy_and_call(
        r#"(module (memory (export "memory") 1)
             (func (export "call") (loop $l (br $l))))"#,
        50_000,
    );
    assert_eq!(r.status, TxStatus::OutOfGas);
    assert_eq!(r.gas_used, 50_000);
    assert_eq!(r.fee, 50_000 * u128::from(GAS_PRICE));
    drop(chain);
}

#[test]
fn unreachable_traps() {
    let (_, r, _) = deploy_and_call(
        r#"(module (memory (export "memory") 1) (func (export "call") unreachable))"#,
        GAS_LIMIT,
    );
    match r.status {
        TxStatus::Trap(msg) => assert!(msg.contains("unreachable"), "{msg}"),
        s => panic!("expected a trap, got {s:?}"),
    }
    assert!(r.gas_used > 0);
}

#[test]
fn stack_overflow_traps_deterministically() {
    let src = r#"(module (memory (export "memory") 1)
        (func $f (param i64) (call $f (i64.add (local.get 0) (i64.const 1))))
        (func (export "call") (call $f (i64.const 0))))"#;
    let (_, r1, _) = deploy_and_call(src, 100_000_000);
    let (_, r2, _) = deploy_and_call(src, 100_000_000);
    assert_eq!(r1.status, TxStatus::Trap("stack overflow".into()));
    assert_eq!(r1, r2);
}

#[test]
fn runaway_memory_grow_traps() {
    let (_, r, _) = deploy_and_call(
        r#"(module (memory (export "memory") 1)
             (func (export "call") (drop (memory.grow (i32.const 1000)))))"#,
        GAS_LIMIT,
    );
    assert_eq!(r.status, TxStatus::Trap("memory limit exceeded".into()));
    // Growth within the limit works, and the next call sees the initial memory size again.
    let src = r#"(module
        (import "env" "set_return" (func $ret (param i32 i32)))
        (memory (export "memory") 1)
        (func (export "call")
          (i32.store (i32.const 0) (memory.grow (i32.const 3)))
          (call $ret (i32.const 0) (i32.const 4))))"#;
    let (mut chain, mut owner) = setup();
    let c = chain.deploy(&mut owner, wat(src));
    let txs = vec![owner.call(c, vec![]), owner.call(c, vec![])];
    let rs = chain.run(&txs);
    for r in rs {
        assert_eq!(r.status, TxStatus::Success);
        assert_eq!(
            r.return_data,
            1u32.to_le_bytes(),
            "memory.grow returns the old size, 1 page"
        );
    }
}

#[test]
fn memory_and_globals_are_reset_between_calls() {
    // Returns memory[100] and the global, then bumps both: a reused instance must not leak.
    let src = r#"(module
        (import "env" "set_return" (func $ret (param i32 i32)))
        (memory (export "memory") 1)
        (global $g (export "g") (mut i32) (i32.const 5))
        (data (i32.const 100) "\07")
        (func (export "call")
          (i32.store8 (i32.const 0) (i32.load8_u (i32.const 100)))
          (i32.store8 (i32.const 1) (global.get $g))
          (i32.store8 (i32.const 100) (i32.add (i32.load8_u (i32.const 100)) (i32.const 1)))
          (global.set $g (i32.add (global.get $g) (i32.const 1)))
          (call $ret (i32.const 0) (i32.const 2))))"#;
    let (mut chain, mut owner) = setup();
    let c = chain.deploy(&mut owner, wat(src));
    let txs: Vec<_> = (0..4).map(|_| owner.call(c, vec![])).collect();
    for r in chain.run(&txs) {
        assert_eq!(r.status, TxStatus::Success);
        assert_eq!(r.return_data, vec![7, 5]);
    }
}

#[test]
fn unexported_mutable_globals_are_reset_too() {
    // Like a compiler's shadow-stack pointer: a mutable global the module does not export.
    let src = r#"(module
        (import "env" "set_return" (func $ret (param i32 i32)))
        (memory (export "memory") 1)
        (global $sp (mut i32) (i32.const 1000))
        (global $k i32 (i32.const 3))
        (func (export "call")
          (global.set $sp (i32.sub (global.get $sp) (global.get $k)))
          (i32.store (i32.const 0) (global.get $sp))
          (call $ret (i32.const 0) (i32.const 4))))"#;
    let (mut chain, mut owner) = setup();
    let c = chain.deploy(&mut owner, wat(src));
    let txs: Vec<_> = (0..3).map(|_| owner.call(c, vec![])).collect();
    for r in chain.run(&txs) {
        assert_eq!(r.status, TxStatus::Success);
        assert_eq!(r.return_data, 997u32.to_le_bytes());
    }
}

#[test]
fn revert_rolls_back_writes_but_charges_gas() {
    let src = r#"(module
        (import "env" "storage_write" (func $w (param i32 i32 i32 i32)))
        (import "env" "revert" (func $revert (param i32 i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "keyvalue")
        (func (export "call")
          (call $w (i32.const 0) (i32.const 3) (i32.const 3) (i32.const 5))
          (call $revert (i32.const 3) (i32.const 5))))"#;
    let (mut chain, mut owner) = setup();
    let c = chain.deploy(&mut owner, wat(src));
    let before = chain.balance(&owner.addr);
    let nonce = chain.nonce(&owner.addr);
    let r = chain.run_one(owner.call(c, vec![]));
    assert_eq!(r.status, TxStatus::Revert);
    assert_eq!(r.return_data, b"value");
    assert!(chain.storage(&c, b"key").is_none());
    assert_eq!(chain.nonce(&owner.addr), nonce + 1);
    assert_eq!(chain.balance(&owner.addr), before - r.fee);
    assert_eq!(r.fee, u128::from(r.gas_used) * u128::from(GAS_PRICE));
}

#[test]
fn out_of_gas_in_host_call_rolls_back() {
    let src = r#"(module
        (import "env" "storage_write" (func $w (param i32 i32 i32 i32)))
        (memory (export "memory") 1)
        (func (export "call")
          (call $w (i32.const 0) (i32.const 3) (i32.const 3) (i32.const 5))
          (call $w (i32.const 8) (i32.const 3) (i32.const 3) (i32.const 5))))"#;
    let (mut chain, mut owner) = setup();
    let c = chain.deploy(&mut owner, wat(src));
    // Intrinsic 1000 + a bit: the first write fits, the second does not.
    let tx = owner.tx_with(
        TxKind::Call {
            contract: c,
            input: vec![],
            value: 0,
            access: None,
        },
        1_000 + 1_200,
    );
    let r = chain.run_one(tx);
    assert_eq!(r.status, TxStatus::OutOfGas);
    assert_eq!(r.gas_used, 2_200);
    assert!(chain.storage(&c, &[0, 0, 0]).is_none());
}

#[test]
fn bad_pointer_in_host_call_traps() {
    let (_, r, _) = deploy_and_call(
        r#"(module
            (import "env" "set_return" (func $ret (param i32 i32)))
            (memory (export "memory") 1)
            (func (export "call") (call $ret (i32.const 65530) (i32.const 100))))"#,
        GAS_LIMIT,
    );
    assert_eq!(
        r.status,
        TxStatus::Trap("host call: memory access out of bounds".into())
    );
}

#[test]
fn env_and_crypto_host_functions() {
    // Returns sha256("abc") || keccak256("abc") || block_number (8) || caller (20).
    let src = r#"(module
        (import "env" "sha256" (func $sha (param i32 i32 i32)))
        (import "env" "keccak256" (func $kec (param i32 i32 i32)))
        (import "env" "block_number" (func $bn (result i64)))
        (import "env" "caller" (func $caller (param i32)))
        (import "env" "set_return" (func $ret (param i32 i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "abc")
        (func (export "call")
          (call $sha (i32.const 0) (i32.const 3) (i32.const 100))
          (call $kec (i32.const 0) (i32.const 3) (i32.const 132))
          (i64.store (i32.const 164) (call $bn))
          (call $caller (i32.const 172))
          (call $ret (i32.const 100) (i32.const 92))))"#;
    let (chain, r, _) = deploy_and_call(src, GAS_LIMIT);
    assert_eq!(r.status, TxStatus::Success);
    let mut expect = vm_runtime::crypto::sha256(b"abc").to_vec();
    expect.extend_from_slice(&vm_runtime::crypto::keccak256(b"abc"));
    expect.extend_from_slice(&chain.env.number.to_le_bytes());
    expect.extend_from_slice(&Account::new(1).addr);
    assert_eq!(r.return_data, expect);
}

#[test]
fn ed25519_and_secp256k1_host_functions() {
    use ed25519_dalek::Signer;
    // input = pk(32) || sig(64) || msg(3) ; hash(32) || sig(64) || recid(1)
    let src = r#"(module
        (import "env" "input_copy" (func $in (param i32)))
        (import "env" "ed25519_verify" (func $ed (param i32 i32 i32 i32) (result i32)))
        (import "env" "secp256k1_recover" (func $rec (param i32 i32 i32 i32) (result i32)))
        (import "env" "set_return" (func $ret (param i32 i32)))
        (memory (export "memory") 1)
        (func (export "call")
          (call $in (i32.const 0))
          (i32.store8 (i32.const 1000) (call $ed (i32.const 0) (i32.const 96) (i32.const 3) (i32.const 32)))
          (i32.store8 (i32.const 1001)
            (call $rec (i32.const 99) (i32.const 131) (i32.load8_u (i32.const 195)) (i32.const 1002)))
          (call $ret (i32.const 1000) (i32.const 66))))"#;
    let (mut chain, mut owner) = setup();
    let c = chain.deploy(&mut owner, wat(src));
    let ed = signing_key(77);
    let sig = ed.sign(b"msg");
    let sk = k256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("key");
    let hash = vm_runtime::crypto::keccak256(b"hello");
    let (ksig, recid) = sk.sign_prehash_recoverable(&hash).expect("sign");
    let mut input = ed.verifying_key().to_bytes().to_vec();
    input.extend_from_slice(&sig.to_bytes());
    input.extend_from_slice(b"msg");
    input.extend_from_slice(&hash);
    input.extend_from_slice(&ksig.to_bytes());
    input.push(recid.to_byte());
    let r = chain.run_one(owner.call(c, input.clone()));
    assert_eq!(r.status, TxStatus::Success);
    assert_eq!(r.return_data[0], 1, "ed25519 signature verifies");
    assert_eq!(r.return_data[1], 1, "secp256k1 key recovers");
    let point = sk.verifying_key().to_encoded_point(false);
    assert_eq!(&r.return_data[2..], &point.as_bytes()[1..]);
    // A flipped message bit fails verification (no trap).
    input[96] ^= 1;
    let r = chain.run_one(owner.call(c, input));
    assert_eq!(r.status, TxStatus::Success);
    assert_eq!(r.return_data[0], 0);
}

#[test]
fn deploy_rejects_bad_modules() {
    let vm = Vm::new(VmConfig::default()).expect("engine");
    assert!(matches!(
        vm.validate(b"not wasm"),
        Err(VmError::InvalidModule(_))
    ));
    let unknown = wat(
        r#"(module (import "env" "steal" (func)) (memory (export "memory") 1)
        (func (export "call")))"#,
    );
    assert!(matches!(
        vm.validate(&unknown),
        Err(VmError::UnknownImport { ref name, .. }) if name == "steal"
    ));
    let other_module = wat(
        r#"(module (import "wasi" "fd_write" (func)) (memory (export "memory") 1)
        (func (export "call")))"#,
    );
    assert!(matches!(
        vm.validate(&other_module),
        Err(VmError::UnknownImport { .. })
    ));
    let wrong_sig = wat(r#"(module (import "env" "caller" (func (param i64)))
        (memory (export "memory") 1) (func (export "call")))"#);
    assert!(matches!(
        vm.validate(&wrong_sig),
        Err(VmError::InvalidModule(_))
    ));
    let no_call = wat(r#"(module (memory (export "memory") 1) (func (export "other")))"#);
    assert!(matches!(
        vm.validate(&no_call),
        Err(VmError::MissingExport(_))
    ));
    let no_memory = wat(r#"(module (func (export "call")))"#);
    assert!(vm.validate(&no_memory).is_err());
    let start = wat(r#"(module (memory (export "memory") 1) (func $s) (start $s)
        (func (export "call")))"#);
    assert!(matches!(
        vm.validate(&start),
        Err(VmError::InvalidModule(_))
    ));
    let reserved = wat(
        r#"(module (memory (export "memory") 1) (func (export "call"))
        (func (export "__supervm_x")))"#,
    );
    assert!(matches!(
        vm.validate(&reserved),
        Err(VmError::InvalidModule(_))
    ));
    let simd = wat(r#"(module (memory (export "memory") 1)
        (func (export "call") (drop (v128.const i64x2 0 0))))"#);
    assert!(vm.validate(&simd).is_err());
    let data_drop = wat(r#"(module (memory (export "memory") 1) (data "x")
        (func (export "call") (data.drop 0)))"#);
    assert!(matches!(
        vm.validate(&data_drop),
        Err(VmError::InvalidModule(_))
    ));
    let big_memory = wat(r#"(module (memory (export "memory") 1000) (func (export "call")))"#);
    assert!(matches!(
        vm.validate(&big_memory),
        Err(VmError::InvalidModule(_))
    ));
    let small = VmConfig {
        max_code_bytes: 10,
        ..VmConfig::default()
    };
    let vm_small = Vm::new(small).expect("engine");
    assert!(matches!(
        vm_small.validate(&contracts::counter_wasm()),
        Err(VmError::CodeTooLarge { .. })
    ));
    // Valid shipped contracts pass, and compile once.
    vm.validate(&contracts::token_wasm())
        .expect("token is valid");
    vm.validate(&contracts::token_wasm())
        .expect("token is valid");
    vm.validate(&contracts::counter_wasm())
        .expect("counter is valid");
    assert_eq!(vm.cached_count(), 2);
}

#[test]
fn deploy_tx_with_invalid_code_charges_and_stores_nothing() {
    let (mut chain, mut owner) = setup();
    let r = chain.run_one(owner.tx(TxKind::Deploy {
        code: b"\0asm garbage".to_vec(),
    }));
    match &r.status {
        TxStatus::Trap(m) => assert!(m.starts_with("invalid code"), "{m}"),
        s => panic!("{s:?}"),
    }
    assert!(r.fee > 0);
    assert!(!chain.state.keys().any(|k| k.0[0] == StateKey::TAG_CODE));
}

/// A view whose storage reads hit an ESTIMATE of transaction 3.
struct DependentView {
    inner: std::collections::BTreeMap<StateKey, StateValue>,
    writes: Vec<StateKey>,
}

impl StateView for DependentView {
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, ReadError> {
        if key.0[0] == StateKey::TAG_STORAGE {
            return Err(ReadError::Dependency(3));
        }
        Ok(self.inner.get(key).cloned())
    }
    fn write(&mut self, key: StateKey, _value: Option<StateValue>) {
        self.writes.push(key);
    }
}

#[test]
fn dependency_abort_propagates_unchanged() {
    let (mut chain, mut owner) = setup();
    let counter = chain.deploy(&mut owner, contracts::counter_wasm());
    let exec = VmExecutor::new(Arc::clone(chain.exec.vm()));
    let mut worker = exec.new_worker();
    let mut view = DependentView {
        inner: chain.state.clone(),
        writes: vec![],
    };
    let tx = owner.call(counter, contracts::counter_increment_input(b"x"));
    let r = exec.execute(&mut worker, &tx, &chain.env, &mut view);
    assert_eq!(r, Err(ReadError::Dependency(3)));
    assert!(
        view.writes.is_empty(),
        "an aborted execution writes nothing"
    );
    // The same worker (same cached instance) then runs the transaction normally.
    let env = chain.env.clone();
    let mut plain = PlainView(chain.state.clone(), vec![]);
    let r = exec
        .execute(&mut worker, &tx, &env, &mut plain)
        .expect("no dependency");
    assert_eq!(r.status, TxStatus::Success);
    assert_eq!(decode_u64(&r.return_data), Some(1));
}

struct PlainView(
    std::collections::BTreeMap<StateKey, StateValue>,
    Vec<(StateKey, Option<StateValue>)>,
);

impl StateView for PlainView {
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, ReadError> {
        Ok(self.0.get(key).cloned())
    }
    fn write(&mut self, key: StateKey, value: Option<StateValue>) {
        self.1.push((key, value));
    }
}

/// A contract that writes memory in every way wasm and the host can (`ops` input: records of
/// 12 bytes `op, _, _, _, addr: u32, value: u32`), or with empty input returns a checksum of
/// all of its memory. Between calls a reused instance must be back at its initial image.
fn scribbler(pages: u32) -> String {
    format!(
        r#"(module
        (import "env" "input_len" (func $ilen (result i32)))
        (import "env" "input_copy" (func $icopy (param i32)))
        (import "env" "set_return" (func $ret (param i32 i32)))
        (memory (export "memory") {pages})
        (data (i32.const 100) "the initial image: data segment bytes 0123456789")
        (data (i32.const 8190) "across a chunk boundary")
        (func (export "call") (local $n i32) (local $p i32) (local $end i32) (local $op i32)
            (local $a i32) (local $v i32) (local $acc i64) (local $i i32) (local $size i32)
          (local.set $n (call $ilen))
          (if (i32.eqz (local.get $n)) (then
            (local.set $size (i32.mul (memory.size) (i32.const 65536)))
            (block $out (loop $sum
              (br_if $out (i32.ge_u (local.get $i) (local.get $size)))
              (local.set $acc (i64.xor (i64.rotl (local.get $acc) (i64.const 7))
                                       (i64.load (local.get $i))))
              (local.set $i (i32.add (local.get $i) (i32.const 8)))
              (br $sum)))
            (i64.store (i32.const 0) (local.get $acc))
            (call $ret (i32.const 0) (i32.const 8))
            (return)))
          (call $icopy (i32.const 60000))
          (local.set $p (i32.const 60000))
          (local.set $end (i32.add (i32.const 60000) (local.get $n)))
          (block $done (loop $next
            (br_if $done (i32.gt_u (i32.add (local.get $p) (i32.const 12)) (local.get $end)))
            (local.set $op (i32.load8_u (local.get $p)))
            (local.set $a (i32.load offset=4 (local.get $p)))
            (local.set $v (i32.load offset=8 (local.get $p)))
            (block $op_done
              (br_if $op_done (i32.eq (local.get $op) (i32.const 0)))
              (if (i32.eq (local.get $op) (i32.const 1)) (then (i32.store8 (local.get $a) (local.get $v))))
              (if (i32.eq (local.get $op) (i32.const 2)) (then (i32.store16 (local.get $a) (local.get $v))))
              (if (i32.eq (local.get $op) (i32.const 3)) (then (i32.store (local.get $a) (local.get $v))))
              (if (i32.eq (local.get $op) (i32.const 4)) (then
                (i64.store (local.get $a) (i64.or (i64.extend_i32_u (local.get $v)) (i64.const 0x0101010101010101)))))
              (if (i32.eq (local.get $op) (i32.const 5)) (then (f32.store (local.get $a) (f32.convert_i32_u (local.get $v)))))
              (if (i32.eq (local.get $op) (i32.const 6)) (then (f64.store offset=3 (local.get $a) (f64.convert_i32_u (local.get $v)))))
              (if (i32.eq (local.get $op) (i32.const 7)) (then (i64.store32 offset=4093 (local.get $a) (i64.extend_i32_u (local.get $v)))))
              (if (i32.eq (local.get $op) (i32.const 8)) (then (memory.fill (local.get $a) (i32.const 0xab) (local.get $v))))
              (if (i32.eq (local.get $op) (i32.const 9)) (then (memory.copy (local.get $a) (i32.const 100) (local.get $v))))
              (if (i32.eq (local.get $op) (i32.const 10)) (then (call $icopy (local.get $a))))
              (if (i32.eq (local.get $op) (i32.const 11)) (then unreachable)))
            (local.set $p (i32.add (local.get $p) (i32.const 12)))
            (br $next))))
        )"#
    )
}

#[test]
fn every_kind_of_memory_write_is_undone_before_the_next_call() {
    // 2 pages: every chunk has its own bit; 80 pages: chunks share bits modulo 64.
    for pages in [2u32, 80] {
        let (mut chain, mut owner) = setup();
        let c = chain.deploy(&mut owner, wat(&scribbler(pages)));
        let gas = 50_000_000;
        let check = |owner: &mut Account| owner.call_with(c, vec![], gas);
        let first = check(&mut owner);
        let baseline = chain.run_one(first);
        assert_eq!(baseline.status, TxStatus::Success);
        let size = u64::from(pages) * 65536;
        let mut next = vm_state::testing::rng(0x5eed_u64 + u64::from(pages));
        let mut txs = Vec::new();
        for _ in 0..60 {
            let mut input = Vec::new();
            for _ in 0..1 + next() % 8 {
                let op = 1 + next() % 11;
                // Addresses near chunk boundaries half of the time.
                let addr = if next().is_multiple_of(2) {
                    let chunk = next() % (size / 4096);
                    (chunk * 4096 + 4096 - 4 + next() % 8).min(size - 16)
                } else {
                    next() % (size - 16)
                };
                let value = match op {
                    8 | 9 => next() % 9000,
                    _ => next() | 1,
                };
                input.extend_from_slice(&[op as u8, 0, 0, 0]);
                input.extend_from_slice(&(addr as u32).to_le_bytes());
                input.extend_from_slice(&(value as u32).to_le_bytes());
            }
            txs.push(owner.tx_with(
                TxKind::Call {
                    contract: c,
                    input,
                    value: 0,
                    access: None,
                },
                gas,
            ));
            txs.push(check(&mut owner));
        }
        let receipts = chain.run(&txs);
        let mut failed = 0;
        for pair in receipts.chunks(2) {
            failed += usize::from(pair[0].status != TxStatus::Success);
            assert_eq!(pair[1].status, TxStatus::Success);
            assert_eq!(
                pair[1].return_data, baseline.return_data,
                "memory after {:?} differs from the initial image",
                pair[0].status
            );
        }
        // Some calls trap (op 11, or a copy running past the end) and must be undone too.
        assert!(failed > 0 && failed < 60, "{failed} of 60 calls failed");
    }
}

#[test]
fn a_store_costs_its_chunk_bookkeeping() {
    // The same call with one `i32.store` and with the store's operands dropped instead
    // (`drop` costs no fuel): the difference is the store and the 13 operators in front of it
    // (`docs/CONTRACT_ABI.md`, "Gas"); with an offset, 15.
    let body = |op: &str| {
        format!(
            r#"(module (memory (export "memory") 1)
            (func (export "call") (i32.const 64) (i32.const 7) {op}))"#
        )
    };
    let gas = |src: String| deploy_and_call(&src, 100_000).1.gas_used;
    let dropped = gas(body("drop drop"));
    assert_eq!(gas(body("i32.store")) - dropped, 14);
    assert_eq!(gas(body("i32.store offset=8")) - dropped, 16);
}
