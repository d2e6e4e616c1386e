//! Signature verification: CPU reference == ed25519-dalek / k256, and every GPU backend ==
//! CPU reference, on RFC 8032 vectors, random valid signatures, random corruptions and
//! hand-built edge cases. OpenCL runs wherever a device is present (PoCL in CI); CUDA on the
//! GPU machine; each skips with a message on stderr when absent. `SIG_TEST_SCALE` (default 1)
//! multiplies the random batch sizes.

use std::sync::{Arc, OnceLock};

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer, SigningKey};
use gpu_executor::sig::{
    cpu, EcrecoverItem, Ed25519Item, Sec1PublicKey, Secp256k1Item, SigConfig, SigExecutor,
};
use gpu_executor::{list_devices, open_device, BackendKind, GpuDevice};
use k256::ecdsa::SigningKey as EcSigningKey;
use proptest::prelude::*;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha512};

const N: [u8; 32] = hex_lit("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
const L: [u8; 32] = hex_lit("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");

const fn hex_lit(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        let h = (b[2 * i] as char).to_digit(16);
        let l = (b[2 * i + 1] as char).to_digit(16);
        let (Some(h), Some(l)) = (h, l) else {
            panic!("bad hex")
        };
        out[i] = (h * 16 + l) as u8;
        i += 1;
    }
    out
}

fn scale() -> usize {
    std::env::var("SIG_TEST_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn pool() -> Arc<rayon::ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("thread pool"),
    )
}

fn cpu_exec(config: SigConfig) -> SigExecutor {
    SigExecutor::cpu(pool(), config)
}

/// The first device of each GPU backend present (GPU or not: PoCL counts), opened once per
/// test binary; an absent backend is reported on stderr.
fn devices() -> &'static [GpuDevice] {
    static DEVICES: OnceLock<Vec<GpuDevice>> = OnceLock::new();
    DEVICES.get_or_init(|| {
        let infos = list_devices();
        let mut out = Vec::new();
        for kind in [BackendKind::Cuda, BackendKind::Opencl] {
            let Some(info) = gpu_executor::preferred_device(&infos, kind) else {
                eprintln!("sig tests: no {kind} device present, skipping {kind}");
                continue;
            };
            match open_device(kind, info.index, 1) {
                Ok(dev) => {
                    eprintln!("sig tests: running on {}", dev.info());
                    out.push(dev);
                }
                Err(e) => eprintln!("sig tests: {kind} device failed to open, skipping: {e}"),
            }
        }
        out
    })
}

/// One executor per GPU backend present; on CUDA both field multiplications (PTX, portable).
fn gpu_execs(config: SigConfig) -> Vec<SigExecutor> {
    let mut out = Vec::new();
    for d in devices() {
        out.push(SigExecutor::with_devices(
            vec![d.clone()],
            pool(),
            config.clone(),
        ));
        if d.backend() == BackendKind::Cuda {
            let other = SigConfig {
                cuda_ptx: !config.cuda_ptx,
                ..config.clone()
            };
            out.push(SigExecutor::with_devices(vec![d.clone()], pool(), other));
        }
    }
    out
}

fn label(exec: &SigExecutor) -> String {
    format!("{} (ptx {})", exec.backend_name(), exec.config().cuda_ptx)
}

fn check_ed25519(items: &[Ed25519Item<'_>], expected: Option<&[bool]>) {
    let cpu = cpu_exec(SigConfig::default()).verify_ed25519(items);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(cpu[i], cpu::ed25519_verify_one(item), "cpu batch item {i}");
    }
    if let Some(exp) = expected {
        assert_eq!(cpu, exp, "CPU reference vs expected");
    }
    for exec in gpu_execs(SigConfig::always_gpu()) {
        let got = exec.try_gpu_ed25519(items).expect("GPU Ed25519 batch");
        for i in 0..items.len() {
            assert_eq!(
                got[i],
                cpu[i],
                "{} item {i}: pk {} sig {} msg len {}",
                label(&exec),
                hex::encode(items[i].public_key),
                hex::encode(items[i].signature),
                items[i].message.len()
            );
        }
    }
}

fn check_secp256k1(items: &[Secp256k1Item]) -> Vec<bool> {
    let mut first = Vec::new();
    for low_s in [true, false] {
        let config = SigConfig {
            require_low_s: low_s,
            ..SigConfig::always_gpu()
        };
        let cpu = cpu_exec(config.clone()).verify_secp256k1(items);
        for exec in gpu_execs(config) {
            let got = exec.try_gpu_secp256k1(items).expect("GPU secp256k1 batch");
            for i in 0..items.len() {
                assert_eq!(
                    got[i],
                    cpu[i],
                    "{} low_s {low_s} item {i}: pk {} hash {} sig {}",
                    label(&exec),
                    hex::encode(items[i].public_key.as_bytes()),
                    hex::encode(items[i].hash),
                    hex::encode(items[i].signature)
                );
            }
        }
        if low_s {
            first = cpu;
        }
    }
    first
}

fn check_ecrecover(items: &[EcrecoverItem]) -> Vec<Option<[u8; 20]>> {
    let mut first = Vec::new();
    for low_s in [true, false] {
        let config = SigConfig {
            require_low_s: low_s,
            ..SigConfig::always_gpu()
        };
        let cpu = cpu_exec(config.clone()).ecrecover(items);
        for exec in gpu_execs(config) {
            let got = exec.try_gpu_ecrecover(items).expect("GPU ecrecover batch");
            for i in 0..items.len() {
                assert_eq!(
                    got[i],
                    cpu[i],
                    "{} low_s {low_s} item {i}: hash {} sig {}",
                    label(&exec),
                    hex::encode(items[i].hash),
                    hex::encode(items[i].signature)
                );
            }
        }
        if low_s {
            first = cpu.iter().map(|r| r.map(|k| k.address)).collect();
        }
    }
    first
}

// ---------------------------------------------------------------- Ed25519

#[test]
fn ed25519_rfc8032_vectors() {
    let vectors = [
        (
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];
    let decoded: Vec<([u8; 32], Vec<u8>, [u8; 64])> = vectors
        .iter()
        .map(|(pk, m, s)| {
            (
                hex::decode(pk).unwrap().try_into().unwrap(),
                hex::decode(m).unwrap(),
                hex::decode(s).unwrap().try_into().unwrap(),
            )
        })
        .collect();
    let mut items: Vec<Ed25519Item<'_>> = decoded
        .iter()
        .map(|(pk, m, s)| Ed25519Item {
            public_key: *pk,
            message: m,
            signature: *s,
        })
        .collect();
    let mut expected = vec![true; items.len()];
    // each vector with the message of the next one: invalid
    for i in 0..decoded.len() {
        let mut item = items[i];
        item.message = &decoded[(i + 1) % decoded.len()].1;
        items.push(item);
        expected.push(false);
    }
    check_ed25519(&items, Some(&expected));
}

fn random_ed25519(
    rng: &mut ChaCha20Rng,
    n: usize,
    max_len: usize,
) -> Vec<([u8; 32], Vec<u8>, [u8; 64])> {
    (0..n)
        .map(|_| {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            let key = SigningKey::from_bytes(&seed);
            let len = if rng.gen_bool(0.3) {
                rng.gen_range(0..=max_len)
            } else {
                rng.gen_range(0..200)
            };
            let mut msg = vec![0u8; len];
            rng.fill_bytes(&mut msg);
            let sig = key.sign(&msg).to_bytes();
            (key.verifying_key().to_bytes(), msg, sig)
        })
        .collect()
}

#[test]
fn ed25519_random_valid_and_corrupted() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut data = random_ed25519(&mut rng, 24 * scale(), 4096);
    // corruptions: a flipped bit in the key, the signature or the message
    let valid = data.len();
    for i in 0..valid {
        let (mut pk, mut msg, mut sig) = data[i].clone();
        match i % 3 {
            0 => pk[rng.gen_range(0..32)] ^= 1 << rng.gen_range(0..8),
            1 => sig[rng.gen_range(0..64)] ^= 1 << rng.gen_range(0..8),
            _ => {
                if msg.is_empty() {
                    msg.push(0);
                } else {
                    let j = rng.gen_range(0..msg.len());
                    msg[j] ^= 1 << rng.gen_range(0..8);
                }
            }
        }
        data.push((pk, msg, sig));
    }
    let items: Vec<Ed25519Item<'_>> = data
        .iter()
        .map(|(pk, m, s)| Ed25519Item {
            public_key: *pk,
            message: m,
            signature: *s,
        })
        .collect();
    let expected: Vec<bool> = (0..items.len()).map(|i| i < valid).collect();
    check_ed25519(&items, Some(&expected));
}

#[test]
fn ed25519_message_lengths_around_block_boundaries() {
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let msgs: Vec<Vec<u8>> = [
        0usize, 1, 47, 48, 63, 64, 65, 111, 112, 127, 128, 129, 239, 240, 1000, 4096, 5000,
    ]
    .iter()
    .map(|&n| (0..n).map(|i| (i * 31 + 7) as u8).collect())
    .collect();
    let sigs: Vec<[u8; 64]> = msgs.iter().map(|m| key.sign(m).to_bytes()).collect();
    let items: Vec<Ed25519Item<'_>> = msgs
        .iter()
        .zip(&sigs)
        .map(|(m, s)| Ed25519Item {
            public_key: key.verifying_key().to_bytes(),
            message: m,
            signature: *s,
        })
        .collect();
    check_ed25519(&items, Some(&vec![true; items.len()]));
}

fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    out
}

fn challenge(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(m);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// Encodings of every small-order point, canonical and not, and of every y >= p.
fn odd_encodings() -> Vec<[u8; 32]> {
    let mut out: Vec<[u8; 32]> = EIGHT_TORSION
        .iter()
        .map(|p| p.compress().to_bytes())
        .collect();
    for t in EIGHT_TORSION.iter() {
        let mut b = t.compress().to_bytes();
        b[31] ^= 0x80; // the other sign (x = 0 with the sign bit set for y = +-1)
        out.push(b);
    }
    // y = p + k for k in 0..19 (non-canonical), both signs
    let p: [u8; 32] = hex_lit("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    for k in 0u8..19 {
        let mut kb = [0u8; 32];
        kb[0] = k;
        let y = add_le(&p, &kb);
        out.push(y);
        let mut neg = y;
        neg[31] |= 0x80;
        out.push(neg);
    }
    // 2^255 - 1 and all-ones
    out.push([0xff; 32]);
    let mut b = [0xff; 32];
    b[31] = 0x7f;
    out.push(b);
    out
}

#[test]
fn ed25519_edge_cases() {
    let key = SigningKey::from_bytes(&[3u8; 32]);
    let pk = key.verifying_key().to_bytes();
    let msg = b"edge cases".to_vec();
    let sig = key.sign(&msg).to_bytes();
    let mut cases: Vec<([u8; 32], Vec<u8>, [u8; 64])> = vec![(pk, msg.clone(), sig)];

    // S >= L: S + L (the same point equation, non-canonical scalar), S = L, S = 2^256 - 1
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig[32..]);
    for bad_s in [
        add_le(&s, &L),
        L,
        [0xff; 32],
        add_le(&L, &{
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }),
    ] {
        let mut bad = sig;
        bad[32..].copy_from_slice(&bad_s);
        cases.push((pk, msg.clone(), bad));
    }
    // S = L - 1 (canonical, wrong)
    let mut lm1 = L;
    lm1[0] -= 1;
    let mut bad = sig;
    bad[32..].copy_from_slice(&lm1);
    cases.push((pk, msg.clone(), bad));

    // small-order / non-canonical encodings as A, as R, and both
    for enc in odd_encodings() {
        cases.push((enc, msg.clone(), sig));
        let mut bad = sig;
        bad[..32].copy_from_slice(&enc);
        cases.push((pk, msg.clone(), bad));
        cases.push((enc, msg.clone(), bad));
        // R small order with S = 0 and A small order: the equation holds trivially
        let mut zero_s = [0u8; 64];
        zero_s[..32].copy_from_slice(&enc);
        cases.push((enc, msg.clone(), zero_s));
    }

    // Mixed-order public key A' = aB + T: valid under the cofactorless equation exactly when
    // [k]T = 0, i.e. k = 0 mod 8 for T of order 8. Search for both kinds.
    let a = Scalar::from_bytes_mod_order([5u8; 32]);
    let t = EIGHT_TORSION[1];
    let a_mixed = (ED25519_BASEPOINT_POINT * a + t).compress().to_bytes();
    let (mut found_valid, mut found_invalid) = (0, 0);
    for nonce in 0u64..200 {
        let r = Scalar::from_bytes_mod_order_wide(&{
            let mut w = [0u8; 64];
            w[..8].copy_from_slice(&nonce.to_le_bytes());
            w[8] = 1;
            w
        });
        let r_enc = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
        let k = challenge(&r_enc, &a_mixed, &msg);
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_enc);
        sig[32..].copy_from_slice(s.as_bytes());
        let k_mod8_zero = (k.as_bytes()[0] & 7) == 0;
        if k_mod8_zero && found_valid < 3 {
            found_valid += 1;
            cases.push((a_mixed, msg.clone(), sig));
        } else if !k_mod8_zero && found_invalid < 3 {
            found_invalid += 1;
            cases.push((a_mixed, msg.clone(), sig));
        }
        // mixed-order R: R' = rB + T with S = r + k' a for the honest key
        let r_mixed = (ED25519_BASEPOINT_POINT * r + t).compress().to_bytes();
        let k2 = challenge(&r_mixed, &pk, &msg);
        let s2 = r + k2 * Scalar::from_bytes_mod_order(key.to_scalar_bytes());
        let mut sig2 = [0u8; 64];
        sig2[..32].copy_from_slice(&r_mixed);
        sig2[32..].copy_from_slice(s2.as_bytes());
        if nonce < 3 {
            cases.push((pk, msg.clone(), sig2));
        }
        if found_valid >= 3 && found_invalid >= 3 && nonce >= 3 {
            break;
        }
    }
    assert!(found_valid > 0 && found_invalid > 0);

    let items: Vec<Ed25519Item<'_>> = cases
        .iter()
        .map(|(pk, m, s)| Ed25519Item {
            public_key: *pk,
            message: m,
            signature: *s,
        })
        .collect();
    let cpu = cpu_exec(SigConfig::default()).verify_ed25519(&items);
    assert!(cpu[0], "the honest signature verifies");
    assert!(!cpu[1..5].iter().any(|&v| v), "S >= L is rejected");
    // the mixed-order key with k = 0 mod 8 is accepted by verify_strict: make sure the test
    // really covers an accepted mixed-order case
    let mixed_ok = cases
        .iter()
        .zip(&cpu)
        .filter(|((pk, _, _), ok)| *pk == a_mixed && **ok)
        .count();
    assert!(
        mixed_ok > 0,
        "a mixed-order key case verifies (cofactorless equation)"
    );
    assert!(CompressedEdwardsY(a_mixed).decompress().is_some());
    check_ed25519(&items, None);
}

// ---------------------------------------------------------------- secp256k1

fn ec_key(i: u64) -> EcSigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i + 1).to_le_bytes());
    seed[31] = 1;
    EcSigningKey::from_bytes(&seed.into()).expect("valid scalar")
}

/// (verify item, recovery item, s was high before normalisation)
fn ec_signed(
    key: &EcSigningKey,
    hash: [u8; 32],
    compressed: bool,
    high_s: bool,
) -> (Secp256k1Item, EcrecoverItem) {
    let (sig, _) = key.sign_prehash_recoverable(&hash).expect("sign");
    let sig = sig.normalize_s().unwrap_or(sig); // low s
    let vk = key.verifying_key();
    let v = (0u8..2)
        .find(|&v| {
            k256::ecdsa::RecoveryId::from_byte(v).is_some_and(|id| {
                k256::ecdsa::VerifyingKey::recover_from_prehash(&hash, &sig, id)
                    .is_ok_and(|k| &k == vk)
            })
        })
        .expect("recovery id");
    let mut bytes = [0u8; 64];
    bytes.copy_from_slice(&sig.to_bytes());
    let mut v = v;
    if high_s {
        // s -> n - s, parity flips
        let mut s = [0u8; 32];
        s.copy_from_slice(&bytes[32..]);
        let ns = sub_be(&N, &s);
        bytes[32..].copy_from_slice(&ns);
        v ^= 1;
    }
    let pk = Sec1PublicKey::from_slice(vk.to_encoded_point(compressed).as_bytes()).expect("sec1");
    let mut rec = [0u8; 65];
    rec[..64].copy_from_slice(&bytes);
    rec[64] = 27 + v;
    (
        Secp256k1Item {
            public_key: pk,
            hash,
            signature: bytes,
        },
        EcrecoverItem {
            hash,
            signature: rec,
        },
    )
}

fn sub_be(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        out[i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    out
}

fn add_be(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    out
}

#[test]
fn secp256k1_random_valid_and_corrupted() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let mut verify = Vec::new();
    let mut recover = Vec::new();
    let mut expected = Vec::new();
    for i in 0..(16 * scale()) as u64 {
        let mut hash = [0u8; 32];
        rng.fill_bytes(&mut hash);
        let key = ec_key(i);
        let (v, r) = ec_signed(&key, hash, i % 2 == 0, false);
        verify.push(v);
        recover.push(r);
        expected.push(true);
        // corrupted copies
        let mut v2 = v;
        let mut r2 = r;
        match i % 3 {
            0 => {
                v2.hash[rng.gen_range(0..32)] ^= 1 << rng.gen_range(0..8);
                r2.hash = v2.hash;
            }
            1 => {
                let j = rng.gen_range(0..64);
                let bit = 1 << rng.gen_range(0..8);
                v2.signature[j] ^= bit;
                r2.signature[j] ^= bit;
            }
            _ => {
                let mut k = v2.public_key.as_bytes().to_vec();
                let j = rng.gen_range(1..k.len());
                k[j] ^= 1 << rng.gen_range(0..8);
                v2.public_key = Sec1PublicKey::from_slice(&k).expect("same length");
                r2.signature[64] ^= 1; // the other parity: another key
            }
        }
        verify.push(v2);
        recover.push(r2);
        expected.push(false);
    }
    let got = check_secp256k1(&verify);
    assert_eq!(got, expected);
    let addrs = check_ecrecover(&recover);
    for (i, a) in addrs.iter().enumerate() {
        if expected[i] {
            let key = ec_key((i / 2) as u64);
            let point = key.verifying_key().to_encoded_point(false);
            let mut pk = [0u8; 64];
            pk.copy_from_slice(&point.as_bytes()[1..]);
            assert_eq!(*a, Some(cpu::eth_address(&pk)), "item {i}");
        } else if let Some(addr) = a {
            let key = ec_key((i / 2) as u64);
            let point = key.verifying_key().to_encoded_point(false);
            let mut pk = [0u8; 64];
            pk.copy_from_slice(&point.as_bytes()[1..]);
            assert_ne!(
                *addr,
                cpu::eth_address(&pk),
                "corrupted item {i} recovers the signer"
            );
        }
    }
}

#[test]
fn secp256k1_edge_cases() {
    let key = ec_key(99);
    let hash = [0x42u8; 32];
    let (good, good_rec) = ec_signed(&key, hash, true, false);
    let (high, high_rec) = ec_signed(&key, hash, false, true);
    let mut verify = vec![good, high];
    let mut recover = vec![good_rec, high_rec];
    let zero = [0u8; 32];
    let mut one = [0u8; 32];
    one[31] = 1;
    let n_plus_1 = add_be(&N, &one);
    let n_minus_1 = sub_be(&N, &one);
    let half_n = {
        // n >> 1
        let mut h = [0u8; 32];
        let mut carry = 0u8;
        for i in 0..32 {
            h[i] = (N[i] >> 1) | (carry << 7);
            carry = N[i] & 1;
        }
        h
    };
    let half_n_plus_1 = add_be(&half_n, &one);
    let r_good: [u8; 32] = good.signature[..32].try_into().unwrap();
    let s_good: [u8; 32] = good.signature[32..].try_into().unwrap();
    let scalars = [
        zero,
        one,
        N,
        n_plus_1,
        n_minus_1,
        [0xff; 32],
        half_n,
        half_n_plus_1,
    ];
    for x in scalars {
        for (r, s) in [(x, s_good), (r_good, x)] {
            let mut v = good;
            v.signature[..32].copy_from_slice(&r);
            v.signature[32..].copy_from_slice(&s);
            verify.push(v);
            let mut rc = good_rec;
            rc.signature[..64].copy_from_slice(&v.signature);
            recover.push(rc);
        }
    }
    // every v byte of interest
    for v in [0u8, 1, 2, 3, 4, 26, 27, 28, 29, 30, 35, 36, 37, 38, 255] {
        let mut rc = good_rec;
        rc.signature[64] = v;
        recover.push(rc);
    }
    // r with no curve point of that x (x^3 + 7 not a square): search small values
    for x in 1u8..40 {
        let mut xb = [0u8; 33];
        xb[0] = 2;
        xb[32] = x;
        if k256::PublicKey::from_sec1_bytes(&xb).is_err() {
            let mut rc = good_rec;
            rc.signature[..32].copy_from_slice(&xb[1..]);
            recover.push(rc);
            // and as a compressed public key: x not on the curve
            let mut v = good;
            v.public_key = Sec1PublicKey::Compressed(xb);
            verify.push(v);
        }
    }
    // hash values: zero, n, 2^256 - 1 (reduced mod n)
    for h in [zero, N, [0xff; 32]] {
        let (v, r) = ec_signed(&key, h, false, false);
        verify.push(v);
        recover.push(r);
    }
    // public key encodings: uncompressed with a wrong y, x >= p, y >= p, the prefix bytes
    let unc = key.verifying_key().to_encoded_point(false);
    let unc: [u8; 65] = unc.as_bytes().try_into().unwrap();
    let comp = key.verifying_key().to_encoded_point(true);
    let comp: [u8; 33] = comp.as_bytes().try_into().unwrap();
    let p: [u8; 32] = hex_lit("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f");
    let mut keys: Vec<Sec1PublicKey> = Vec::new();
    let mut k = unc;
    k[64] ^= 1;
    keys.push(Sec1PublicKey::Uncompressed(k));
    for tag in [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 0xff] {
        let mut k = unc;
        k[0] = tag;
        keys.push(Sec1PublicKey::Uncompressed(k));
        let mut c = comp;
        c[0] = tag;
        keys.push(Sec1PublicKey::Compressed(c));
    }
    // x + p (>= p) and y + p style encodings (only where they fit in 256 bits)
    let mut big = unc;
    big[1..33].copy_from_slice(&p);
    keys.push(Sec1PublicKey::Uncompressed(big));
    let mut big = comp;
    big[1..33].copy_from_slice(&[0xff; 32]);
    keys.push(Sec1PublicKey::Compressed(big));
    let y: [u8; 32] = unc[33..].try_into().unwrap();
    let y_plus_p = add_be(&y, &p);
    if y_plus_p > y {
        let mut k = unc;
        k[33..].copy_from_slice(&y_plus_p);
        keys.push(Sec1PublicKey::Uncompressed(k));
    }
    for key in keys {
        let mut v = good;
        v.public_key = key;
        verify.push(v);
    }
    let cpu_v = check_secp256k1(&verify);
    assert!(cpu_v[0], "honest signature verifies");
    assert!(!cpu_v[1], "high s rejected under the low-S rule");
    let cpu_r = check_ecrecover(&recover);
    assert!(cpu_r[0].is_some());
    assert!(cpu_r[1].is_none(), "high s rejected under the low-S rule");
    let relaxed = cpu_exec(SigConfig {
        require_low_s: false,
        ..SigConfig::default()
    });
    assert!(relaxed.verify_secp256k1(&verify[1..2])[0]);
    assert_eq!(
        relaxed.ecrecover(&recover[1..2])[0].map(|k| k.address),
        cpu_r[0]
    );
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4 * scale() as u32))]

    /// Random keys, messages and mutations: GPU == CPU reference == ed25519-dalek.
    #[test]
    fn prop_ed25519_backends_agree(seed in any::<u64>(), flips in proptest::collection::vec((0usize..3, any::<u16>()), 8)) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut data = random_ed25519(&mut rng, 8, 600);
        for (i, (which, pos)) in flips.iter().enumerate() {
            let (pk, msg, sig) = &mut data[i];
            match which {
                0 => pk[*pos as usize % 32] ^= 1 << (pos % 8),
                1 => sig[*pos as usize % 64] ^= 1 << (pos % 8),
                _ => if !msg.is_empty() { let l = msg.len(); msg[*pos as usize % l] ^= 1 << (pos % 8) },
            }
        }
        let items: Vec<Ed25519Item<'_>> = data.iter().map(|(pk, m, s)| Ed25519Item { public_key: *pk, message: m, signature: *s }).collect();
        for item in &items {
            let direct = ed25519_dalek::VerifyingKey::from_bytes(&item.public_key)
                .is_ok_and(|k| k.verify_strict(item.message, &ed25519_dalek::Signature::from_bytes(&item.signature)).is_ok());
            prop_assert_eq!(direct, cpu::ed25519_verify_one(item));
        }
        check_ed25519(&items, None);
    }

    /// Random keys and hashes, random byte mutations: GPU == CPU reference == k256.
    #[test]
    fn prop_secp256k1_backends_agree(seed in any::<u64>(), muts in proptest::collection::vec((0usize..4, any::<u16>(), any::<u8>()), 8)) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut verify = Vec::new();
        let mut recover = Vec::new();
        for (i, (which, pos, val)) in muts.iter().enumerate() {
            let mut hash = [0u8; 32];
            rng.fill_bytes(&mut hash);
            let (mut v, mut r) = ec_signed(&ec_key(seed ^ i as u64), hash, rng.gen_bool(0.5), rng.gen_bool(0.3));
            match which {
                0 => { v.hash[*pos as usize % 32] = *val; r.hash = v.hash; }
                1 => { v.signature[*pos as usize % 64] = *val; r.signature[*pos as usize % 65] = *val; }
                2 => {
                    let mut k = v.public_key.as_bytes().to_vec();
                    let l = k.len();
                    k[*pos as usize % l] = *val;
                    v.public_key = Sec1PublicKey::from_slice(&k).expect("same length");
                }
                _ => {}
            }
            let direct = k256::ecdsa::VerifyingKey::from_sec1_bytes(v.public_key.as_bytes()).ok().zip(k256::ecdsa::Signature::from_slice(&v.signature).ok())
                .is_some_and(|(k, s)| {
                    use k256::ecdsa::signature::hazmat::PrehashVerifier;
                    k.verify_prehash(&v.hash, &s).is_ok()
                });
            prop_assert_eq!(direct, cpu::secp256k1_verify_one(&v, true));
            verify.push(v);
            recover.push(r);
        }
        check_secp256k1(&verify);
        check_ecrecover(&recover);
    }
}

// ---------------------------------------------------------------- API behaviour

#[test]
fn fallback_and_all_or_nothing() {
    let key = SigningKey::from_bytes(&[1u8; 32]);
    let msg = b"m".to_vec();
    let sig = key.sign(&msg).to_bytes();
    let good = Ed25519Item {
        public_key: key.verifying_key().to_bytes(),
        message: &msg,
        signature: sig,
    };
    let mut bad = good;
    bad.signature[0] ^= 1;
    let exec = cpu_exec(SigConfig::default());
    assert!(exec.verify_ed25519_all(&[good, good]));
    assert!(!exec.verify_ed25519_all(&[good, bad]));
    assert!(exec.verify_ed25519_all(&[]));
    assert_eq!(exec.verify_ed25519(&[good, bad]), vec![true, false]);
    // no device: the GPU-only entry point says so, the normal one runs on the CPU
    assert!(exec.try_gpu_ed25519(&[good]).is_err());
    assert_eq!(exec.stats().cpu_batches, 4);
    assert_eq!(exec.stats().gpu_failures, 0);
    // a chunked GPU run gives the same answers as one launch
    for g in gpu_execs(SigConfig {
        chunk_items: 3,
        ..SigConfig::always_gpu()
    }) {
        let items = [good, bad, good, good, bad, bad, good];
        assert_eq!(
            g.verify_ed25519(&items),
            vec![true, false, true, true, false, false, true]
        );
        assert_eq!(g.stats().gpu_batches, 1);
        assert!(g.verify_ed25519(&[]).is_empty());
    }
}

/// Several devices: the batch is split into chunks spread over them (here the same device
/// opened twice), and the results come back in order.
#[test]
fn several_devices_split_the_batch() {
    let Some(first) = devices().first() else {
        eprintln!("sig tests: no device present, skipping the several-devices test");
        return;
    };
    let info = first.info().clone();
    let second = match open_device(info.backend, info.index, 1) {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "sig tests: cannot open {} a second time, skipping: {e}",
                info.backend
            );
            return;
        }
    };
    let exec = SigExecutor::with_devices(
        vec![first.clone(), second],
        pool(),
        SigConfig {
            chunk_items: 5,
            ..SigConfig::always_gpu()
        },
    );
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut data = random_ed25519(&mut rng, 23, 300);
    for (i, d) in data.iter_mut().enumerate() {
        if i % 4 == 1 {
            d.2[40] ^= 4;
        }
    }
    let items: Vec<Ed25519Item<'_>> = data
        .iter()
        .map(|(pk, m, s)| Ed25519Item {
            public_key: *pk,
            message: m,
            signature: *s,
        })
        .collect();
    let expected: Vec<bool> = (0..items.len()).map(|i| i % 4 != 1).collect();
    assert_eq!(exec.try_gpu_ed25519(&items).expect("two devices"), expected);
    let mut verify = Vec::new();
    let mut recover = Vec::new();
    for i in 0..13u64 {
        let (v, r) = ec_signed(&ec_key(i), [i as u8; 32], i % 2 == 0, false);
        verify.push(v);
        recover.push(r);
    }
    assert_eq!(
        exec.try_gpu_secp256k1(&verify).expect("two devices"),
        vec![true; 13]
    );
    let cpu = cpu_exec(SigConfig::default()).ecrecover(&recover);
    assert_eq!(exec.try_gpu_ecrecover(&recover).expect("two devices"), cpu);
}
