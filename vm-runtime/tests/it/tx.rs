//! Transaction encoding, signatures and batch verification.

use proptest::prelude::*;
use vm_runtime::{verify_batch, Transaction, TxKind, VmError};

use crate::common::*;

fn sample(kind: TxKind) -> Transaction {
    let mut a = Account::new(5);
    a.nonce = 42;
    a.tx(kind)
}

fn kinds() -> Vec<TxKind> {
    vec![
        TxKind::Transfer {
            to: [9; 20],
            amount: u128::MAX - 1,
        },
        TxKind::Deploy {
            code: vm_runtime::contracts::counter_wasm(),
        },
        TxKind::Call {
            contract: [3; 20],
            input: vec![1, 2, 3],
            value: 17,
            access: None,
        },
        TxKind::Call {
            contract: [4; 20],
            input: vec![9],
            value: 0,
            access: Some(vm_runtime::AccessList {
                write: vec![vec![1, 2, 3], Vec::new()],
                read: vec![vec![0xff; 21]],
            }),
        },
        TxKind::Call {
            contract: [4; 20],
            input: Vec::new(),
            value: 5,
            access: Some(vm_runtime::AccessList::default()),
        },
        TxKind::Privacy(vec![0xaa; 100]),
    ]
}

#[test]
fn roundtrip_every_kind_and_signature_verifies() {
    for kind in kinds() {
        let tx = sample(kind);
        let bytes = tx.encode();
        let back = Transaction::decode(&bytes).expect("decodes");
        assert_eq!(back, tx);
        assert_eq!(back.encode(), bytes, "canonical");
        back.verify_signature().expect("signature verifies");
    }
}

#[test]
fn tampering_breaks_the_signature() {
    let mut tx = sample(kinds().remove(0));
    tx.nonce += 1;
    assert!(matches!(tx.verify_signature(), Err(VmError::Signature(_))));
    let mut tx = sample(kinds().remove(0));
    tx.signature[10] ^= 1;
    assert!(tx.verify_signature().is_err());
}

#[test]
fn malformed_bytes_are_errors() {
    let bytes = sample(kinds().remove(2)).encode();
    for cut in 0..bytes.len() {
        assert!(Transaction::decode(&bytes[..cut]).is_err(), "prefix {cut}");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(Transaction::decode(&extra).is_err());
    let mut bad_version = bytes.clone();
    bad_version[0] = 9;
    assert!(Transaction::decode(&bad_version).is_err());
    let mut bad_kind = bytes.clone();
    bad_kind[1 + 8 + 32 + 24] = 7;
    assert!(Transaction::decode(&bad_kind).is_err());
    // A length prefix claiming 4 GiB must not allocate or panic.
    let mut huge = bytes[..1 + 8 + 32 + 24 + 1 + 20 + 16].to_vec();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(Transaction::decode(&huge).is_err());
}

#[test]
fn batch_verify_matches_single_verify() {
    let mut txs: Vec<Transaction> = (0..16)
        .map(|i| {
            let mut a = Account::new(100 + i);
            a.tx(TxKind::Transfer {
                to: [1; 20],
                amount: u128::from(i),
            })
        })
        .collect();
    assert_eq!(verify_batch(&txs), vec![true; 16]);
    txs[5].signature[0] ^= 0x40;
    txs[11].gas_limit += 1;
    let got = verify_batch(&txs);
    let single: Vec<bool> = txs.iter().map(|t| t.verify_signature().is_ok()).collect();
    assert_eq!(got, single);
    assert!(!got[5] && !got[11] && got[0]);
    assert!(verify_batch(&[]).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Transaction::decode(&bytes);
    }

    #[test]
    fn roundtrip_random(chain_id in any::<u64>(), nonce in any::<u64>(), gas in any::<u64>(),
                        price in any::<u64>(), amount in any::<u128>(),
                        input in proptest::collection::vec(any::<u8>(), 0..64), which in 0u8..4) {
        let kind = match which {
            0 => TxKind::Transfer { to: [7; 20], amount },
            1 => TxKind::Deploy { code: input },
            2 => TxKind::Call { contract: [8; 20], input, value: amount, access: None },
            _ => TxKind::Privacy(input),
        };
        let tx = Transaction::new_unsigned(chain_id, [4; 32], nonce, gas, price, kind);
        let back = Transaction::decode(&tx.encode()).expect("decodes");
        prop_assert_eq!(back, tx);
    }

    #[test]
    fn flipped_byte_never_panics(pos in 0usize..200, bit in 0u8..8) {
        let mut bytes = sample(TxKind::Call { contract: [3; 20], input: vec![1; 40], value: 1, access: None }).encode();
        let p = pos % bytes.len();
        bytes[p] ^= 1 << bit;
        if let Ok(tx) = Transaction::decode(&bytes) {
            // Either a different valid encoding (signature then fails) or the same bytes.
            prop_assert!(tx.verify_signature().is_err());
        }
    }
}

/// More declared slots than `MAX_DECLARED_SLOTS` do not decode, and the executor rejects a
/// call built with them in-process.
#[test]
fn too_many_declared_slots_are_refused() {
    let kind = TxKind::Call {
        contract: [4; 20],
        input: Vec::new(),
        value: 0,
        access: Some(vm_runtime::AccessList {
            write: vec![vec![1]; vm_runtime::MAX_DECLARED_SLOTS - 1],
            read: vec![vec![2]; 2],
        }),
    };
    let bytes = sample(kind).encode();
    let err = Transaction::decode(&bytes).expect_err("too many slots");
    assert!(err.to_string().contains("declared slots"), "{err}");
}

/// The sender's address follows `sender` when it changes after the transaction was made
/// (the address is cached at construction, decoding and signing).
#[test]
fn sender_address_follows_a_changed_sender() {
    let mut tx = sample(TxKind::Transfer {
        to: [1; 20],
        amount: 5,
    });
    assert_eq!(tx.sender_address(), vm_runtime::address_of(&tx.sender));
    tx.sender = [0x42; 32];
    assert_eq!(tx.sender_address(), vm_runtime::address_of(&[0x42; 32]));
    let decoded = Transaction::decode(&tx.encode()).expect("decodes");
    assert_eq!(decoded, tx);
    assert_eq!(
        decoded.sender_address(),
        vm_runtime::address_of(&[0x42; 32])
    );
    let key = crate::common::signing_key(3);
    tx.sign(&key);
    assert_eq!(
        tx.sender_address(),
        vm_runtime::address_of(&key.verifying_key().to_bytes())
    );
}
