//! Hashing and Merkle trees: known answers, every length 0..300, random batches, property
//! tests and fault tests, on the CPU backend and on every GPU present (OpenCL on PoCL here
//! and in CI; CUDA on the GPU machine). Absent backends are reported on stderr.
//! `SUPERVM_TEST_SCALE` (default 1) multiplies the random/property test sizes.

/// Says on the real stderr (not captured by the test harness) that something was skipped.
macro_rules! skip {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

use std::sync::OnceLock;

use gpu_executor::device::{open_all, BackendKind};
use gpu_executor::hash::{inner_node, leaf_node, merkle_root_sequential};
use gpu_executor::{
    BackendChoice, CpuBackend, Digest, GpuConfig, GpuError, GpuExecutor, GpuHasher, HashAlgo,
    HashBackend, MessageBatch, Messages,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use sha2::Digest as _;

fn scale() -> usize {
    std::env::var("SUPERVM_TEST_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn cpu() -> &'static CpuBackend {
    static CPU: OnceLock<CpuBackend> = OnceLock::new();
    CPU.get_or_init(|| CpuBackend::with_threads(2).unwrap())
}

/// Every GPU hasher present, opened once per test binary.
fn gpus() -> &'static [GpuHasher] {
    static GPUS: OnceLock<Vec<GpuHasher>> = OnceLock::new();
    GPUS.get_or_init(|| {
        let mut v = Vec::new();
        for kind in [BackendKind::Cuda, BackendKind::Opencl] {
            match open_all(kind, 2) {
                Ok(devs) => {
                    for d in devs {
                        eprintln!("testing on {}", d.info());
                        v.push(GpuHasher::new(d, None).expect("hash kernels build"));
                    }
                }
                Err(e) => skip!("SKIP {kind} hash tests: {e}"),
            }
        }
        v
    })
}

/// The CPU backend and every GPU.
fn backends() -> Vec<&'static dyn HashBackend> {
    let mut v: Vec<&'static dyn HashBackend> = vec![cpu()];
    v.extend(gpus().iter().map(|g| g as &dyn HashBackend));
    v
}

fn crate_digest(algo: HashAlgo, m: &[u8]) -> Digest {
    match algo {
        HashAlgo::Sha256 => sha2::Sha256::digest(m).into(),
        HashAlgo::Keccak256 => sha3::Keccak256::digest(m).into(),
    }
}

fn hexd(s: &str) -> Digest {
    let v = hex::decode(s).unwrap();
    v.try_into().unwrap()
}

#[test]
fn nist_sha256_and_keccak_known_answers() {
    let million_a = vec![b'a'; 1_000_000];
    let cases: Vec<(HashAlgo, &[u8], &str)> = vec![
        (HashAlgo::Sha256, b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (HashAlgo::Sha256, b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            HashAlgo::Sha256,
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
        (
            HashAlgo::Sha256,
            b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
        ),
        (HashAlgo::Sha256, &million_a, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
        (HashAlgo::Keccak256, b"", "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"),
        (HashAlgo::Keccak256, b"abc", "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"),
        (
            HashAlgo::Keccak256,
            b"The quick brown fox jumps over the lazy dog",
            "4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15",
        ),
    ];
    for algo in HashAlgo::ALL {
        let sel: Vec<_> = cases.iter().filter(|c| c.0 == algo).collect();
        let batch = MessageBatch::from_messages(sel.iter().map(|c| c.1));
        for b in backends() {
            let got = b.hash_batch(algo, &batch.as_messages()).unwrap();
            for (c, g) in sel.iter().zip(&got) {
                assert_eq!(*g, hexd(c.2), "{} {algo} of {} bytes", b.kind(), c.1.len());
            }
        }
    }
}

#[test]
fn every_length_0_to_300() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let msgs: Vec<Vec<u8>> = (0..=300)
        .map(|len| (0..len).map(|_| rng.gen()).collect())
        .collect();
    let batch = MessageBatch::from_messages(&msgs);
    for algo in HashAlgo::ALL {
        let want: Vec<Digest> = msgs.iter().map(|m| crate_digest(algo, m)).collect();
        for b in backends() {
            let got = b.hash_batch(algo, &batch.as_messages()).unwrap();
            for (len, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g, w, "{} {algo} length {len}", b.kind());
            }
        }
    }
}

#[test]
fn fixed_32_and_64_byte_fast_paths() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    for len in [32usize, 64, 33, 1] {
        let n = 1000 * scale() + 3;
        let data: Vec<u8> = (0..n * len).map(|_| rng.gen()).collect();
        let msgs = Messages::fixed(&data, len).unwrap();
        for algo in HashAlgo::ALL {
            let want: Vec<Digest> = data.chunks(len).map(|m| crate_digest(algo, m)).collect();
            let mut buf = vec![[0u8; 32]; msgs.len()];
            cpu().hash_into(algo, &msgs, &mut buf).unwrap();
            assert_eq!(buf, want);
            for g in gpus() {
                buf.fill([0u8; 32]);
                g.hash_into(algo, &msgs, &mut buf).unwrap();
                assert_eq!(buf, want, "{} hash_into", g.kind());
                assert!(g.hash_into(algo, &msgs, &mut buf[1..]).is_err());
            }
            for b in backends() {
                assert_eq!(
                    b.hash_batch(algo, &msgs).unwrap(),
                    want,
                    "{} {algo} fixed {len}",
                    b.kind()
                );
            }
        }
    }
}

#[test]
fn random_mixed_batches_and_sub_slices() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for round in 0..3 {
        let n = rng.gen_range(0..2000 * scale());
        let msgs: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                let len = match rng.gen_range(0..4) {
                    0 => 32,
                    1 => 64,
                    2 => rng.gen_range(0..200),
                    _ => rng.gen_range(0..1200),
                };
                (0..len).map(|_| rng.gen()).collect()
            })
            .collect();
        let batch = MessageBatch::from_messages(&msgs);
        for algo in HashAlgo::ALL {
            let want: Vec<Digest> = msgs.iter().map(|m| crate_digest(algo, m)).collect();
            for b in backends() {
                assert_eq!(
                    b.hash_batch(algo, &batch.as_messages()).unwrap(),
                    want,
                    "{} round {round}",
                    b.kind()
                );
                // A sub-range whose offsets do not start at 0.
                if n > 10 {
                    let sub = batch.as_messages().slice(5..n - 3);
                    assert_eq!(
                        b.hash_batch(algo, &sub).unwrap(),
                        want[5..n - 3],
                        "{} sub-range",
                        b.kind()
                    );
                }
            }
        }
    }
}

#[test]
fn malformed_batches_are_rejected() {
    assert!(matches!(
        Messages::packed(b"abc", &[0, 2, 1]),
        Err(GpuError::InvalidInput(_))
    ));
    assert!(matches!(
        Messages::packed(b"abc", &[0, 4]),
        Err(GpuError::InvalidInput(_))
    ));
    assert!(matches!(
        Messages::packed(b"abc", &[]),
        Err(GpuError::InvalidInput(_))
    ));
    assert!(matches!(
        Messages::fixed(b"abc", 2),
        Err(GpuError::InvalidInput(_))
    ));
    assert!(matches!(
        Messages::fixed(b"abc", 0),
        Err(GpuError::InvalidInput(_))
    ));
}

fn random_leaves(rng: &mut impl Rng, n: usize) -> Vec<Digest> {
    (0..n).map(|_| rng.gen()).collect()
}

#[test]
fn merkle_rule_matches_the_document() {
    for algo in HashAlgo::ALL {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let c = [3u8; 32];
        assert_eq!(cpu().merkle(algo, &[], false).unwrap().root, [0u8; 32]);
        assert_eq!(
            cpu().merkle(algo, &[a], false).unwrap().root,
            algo.digest_parts(&[&[0], &a])
        );
        let (la, lb, lc) = (
            leaf_node(algo, &a),
            leaf_node(algo, &b),
            leaf_node(algo, &c),
        );
        let ab = algo.digest_parts(&[&[1], &la, &lb]);
        assert_eq!(inner_node(algo, &la, &lb), ab);
        // Odd count: c's leaf node is carried up unchanged.
        assert_eq!(
            cpu().merkle(algo, &[a, b, c], false).unwrap().root,
            inner_node(algo, &ab, &lc)
        );
        // A node cannot pass for a leaf: the tree of [la, lb] differs from the tree of [a, b].
        assert_ne!(cpu().merkle(algo, &[la, lb], false).unwrap().root, ab);
    }
}

#[test]
fn merkle_counts_0_to_70_and_random_all_backends() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let mut sizes: Vec<usize> = (0..=70).collect();
    sizes.extend([
        127,
        128,
        129,
        255,
        1000,
        1023,
        1025,
        4097 * scale(),
        40_000 * scale() + 1,
    ]);
    for algo in HashAlgo::ALL {
        for &n in &sizes {
            let leaves = random_leaves(&mut rng, n);
            let want = merkle_root_sequential(algo, &leaves);
            let want_levels = cpu().merkle(algo, &leaves, true).unwrap();
            assert_eq!(want_levels.root, want);
            if n > 0 {
                assert_eq!(want_levels.levels[0].len(), n);
                assert_eq!(want_levels.levels.last().unwrap(), &vec![want]);
            }
            for b in backends() {
                assert_eq!(
                    b.merkle(algo, &leaves, false).unwrap().root,
                    want,
                    "{} {algo} n={n}",
                    b.kind()
                );
                if n <= 1025 {
                    assert_eq!(
                        b.merkle(algo, &leaves, true).unwrap(),
                        want_levels,
                        "{} {algo} levels n={n}",
                        b.kind()
                    );
                }
            }
        }
    }
}

/// A batch larger than the device memory budget is chunked (hash) or split into aligned
/// subtrees (Merkle), with identical results.
#[test]
fn batches_larger_than_device_memory_are_chunked() {
    let mut any = false;
    for kind in [BackendKind::Cuda, BackendKind::Opencl] {
        let devs = match open_all(kind, 2) {
            Ok(d) => d,
            Err(e) => {
                skip!("SKIP {kind} chunking test: {e}");
                continue;
            }
        };
        for d in devs {
            any = true;
            // 64 KiB for the whole batch, i.e. 32 KiB per queue.
            let small = GpuHasher::new(d.clone(), Some(64 << 10)).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
            let msgs: Vec<Vec<u8>> = (0..3000)
                .map(|_| (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect())
                .collect();
            let batch = MessageBatch::from_messages(&msgs);
            let fixed: Vec<u8> = (0..64 * 5000).map(|_| rng.gen()).collect();
            for algo in HashAlgo::ALL {
                let want: Vec<Digest> = msgs.iter().map(|m| crate_digest(algo, m)).collect();
                assert_eq!(small.hash(algo, &batch.as_messages()).unwrap(), want);
                let fm = Messages::fixed(&fixed, 64).unwrap();
                assert_eq!(
                    small.hash(algo, &fm).unwrap(),
                    cpu().hash_batch(algo, &fm).unwrap()
                );
                for n in [1000usize, 1500, 5000] {
                    let leaves = random_leaves(&mut rng, n);
                    assert_eq!(
                        small.merkle(algo, &leaves, false).unwrap().root,
                        merkle_root_sequential(algo, &leaves),
                        "n={n}"
                    );
                }
                // All levels do not fit: an out-of-memory error (the executor redoes it on the CPU).
                let leaves = random_leaves(&mut rng, 5000);
                assert!(matches!(
                    small.merkle(algo, &leaves, true),
                    Err(GpuError::OutOfMemory { .. })
                ));
            }
            // A single message larger than the budget: out of memory, not a crash.
            let big = vec![7u8; 100 << 10];
            let b = MessageBatch::from_messages([&big]);
            assert!(matches!(
                small.hash(HashAlgo::Sha256, &b.as_messages()),
                Err(GpuError::OutOfMemory { .. })
            ));
        }
    }
    if !any {
        skip!("SKIP chunking test: no GPU backend present");
    }
}

#[test]
fn executor_falls_back_to_cpu_and_counts() {
    // An explicitly requested backend that is missing: CPU with a reason, never a panic.
    #[cfg(not(feature = "cuda"))]
    {
        let ex = GpuExecutor::new(GpuConfig::with_backend(BackendChoice::Cuda)).unwrap();
        assert_eq!(ex.backend_name(), "cpu");
        assert!(ex.no_gpu_reason().is_some());
    }
    let ex = GpuExecutor::new(GpuConfig::with_backend(BackendChoice::Cpu)).unwrap();
    assert_eq!(ex.backend_name(), "cpu");
    let auto = GpuExecutor::new(GpuConfig::default()).unwrap();
    eprintln!(
        "auto picked {} ({:?})",
        auto.backend_name(),
        auto.no_gpu_reason()
    );

    // A device fault: a tiny memory budget and a message larger than it. The executor logs,
    // counts and redoes the batch on the CPU.
    for choice in [BackendChoice::Opencl, BackendChoice::Cuda] {
        let cfg = GpuConfig {
            backend: choice,
            memory_limit_mib: 1,
            default_min_batch: 1,
            ..GpuConfig::default()
        };
        let ex = GpuExecutor::new(cfg).unwrap();
        if ex.devices().is_empty() {
            skip!("SKIP {choice:?} fallback test: {:?}", ex.no_gpu_reason());
            continue;
        }
        let big = vec![1u8; 2 << 20];
        let msgs = MessageBatch::from_messages([&big[..], b"abc"]);
        let got = ex.hash(HashAlgo::Sha256, &msgs.as_messages()).unwrap();
        assert_eq!(got[0], crate_digest(HashAlgo::Sha256, &big));
        assert_eq!(ex.fallback_count(), 1);
        // Small batches below min_batch stay on the CPU; no fallback counted.
        let ok = ex
            .hash(
                HashAlgo::Keccak256,
                &MessageBatch::from_messages([b"abc"]).as_messages(),
            )
            .unwrap();
        assert_eq!(ok[0], crate_digest(HashAlgo::Keccak256, b"abc"));
        assert_eq!(ex.fallback_count(), 1);
        // Malformed input is not a device fault: an error, not a fallback.
        let leaves = vec![[0u8; 32]; 4];
        let _ = ex.merkle(HashAlgo::Sha256, &leaves, true).unwrap();
    }
}

#[test]
fn execution_engine_interface() {
    use engine_api::{EngineType, ExecutionContext, ExecutionEngine, TaskType};
    let ex = GpuExecutor::new(GpuConfig::with_backend(BackendChoice::Cpu)).unwrap();
    assert_eq!(ex.engine_type(), EngineType::Gpu);
    assert!(ex.supports_task(TaskType::HashCompute));
    assert!(ex.supports_task(TaskType::MerkleTreeBuild));
    assert!(!ex.supports_task(TaskType::Transaction));
    assert_eq!(ex.estimated_speedup(TaskType::HashCompute), None);
    ex.speedups()
        .record(EngineType::Gpu, TaskType::HashCompute, 6.0);
    assert_eq!(ex.estimated_speedup(TaskType::HashCompute), Some(6.0));
    let ctx = ExecutionContext::default();
    let input = gpu_executor::executor::encode_length_prefixed(&[&b""[..], b"abc"]);
    let r = ex.execute(b"keccak256", &input, &ctx).unwrap();
    assert_eq!(
        &r.return_data[..32],
        &hexd("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
    );
    assert_eq!(r.return_data.len(), 64);
    let leaves = [[9u8; 32], [8u8; 32]];
    let r = ex
        .execute(b"merkle-sha256", &leaves.concat(), &ctx)
        .unwrap();
    assert_eq!(
        r.return_data,
        merkle_root_sequential(HashAlgo::Sha256, &leaves).to_vec()
    );
    assert!(ex.execute(b"nope", b"", &ctx).is_err());
    assert!(ex.validate_code(b"nope").is_err());
    assert!(ex.execute(b"sha256", &[5, 0, 0, 0, 1], &ctx).is_err());
    // Other modules plug tasks in.
    ex.register_task(
        "echo",
        TaskType::BatchSignatureVerify,
        std::sync::Arc::new(|_, i| Ok(i.to_vec())),
    );
    assert!(ex.supports_task(TaskType::BatchSignatureVerify));
    assert_eq!(ex.execute(b"echo", b"xy", &ctx).unwrap().return_data, b"xy");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16 * scale() as u32))]
    #[test]
    fn prop_backends_equal_cpu_equal_crates(
        msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 0..64),
        keccak in any::<bool>(),
    ) {
        let algo = if keccak { HashAlgo::Keccak256 } else { HashAlgo::Sha256 };
        let batch = MessageBatch::from_messages(&msgs);
        let want: Vec<Digest> = msgs.iter().map(|m| crate_digest(algo, m)).collect();
        for b in backends() {
            prop_assert_eq!(b.hash_batch(algo, &batch.as_messages()).unwrap(), want.clone());
        }
    }

    #[test]
    fn prop_merkle_backends_equal_reference(
        leaves in proptest::collection::vec(any::<[u8; 32]>(), 0..300),
        keccak in any::<bool>(),
    ) {
        let algo = if keccak { HashAlgo::Keccak256 } else { HashAlgo::Sha256 };
        let want = merkle_root_sequential(algo, &leaves);
        for b in backends() {
            prop_assert_eq!(b.merkle(algo, &leaves, false).unwrap().root, want);
        }
    }
}

#[test]
fn cli_hex_lines_and_errors_name_the_line() {
    use gpu_executor::cli::{hash_lines, merkle_lines, read_hex_leaves};
    let ex = GpuExecutor::new(GpuConfig::with_backend(BackendChoice::Cpu)).unwrap();
    let mut out = Vec::new();
    let n = hash_lines(&ex, HashAlgo::Keccak256, &b"\n0x616263\n"[..], &mut out).unwrap();
    assert_eq!(n, 2);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    );
    assert_eq!(
        lines[1],
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    );
    let err = hash_lines(&ex, HashAlgo::Sha256, &b"00\nzz\n"[..], Vec::new()).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    let leaf = hex::encode([5u8; 32]);
    let mut out = Vec::new();
    let root = merkle_lines(
        &ex,
        HashAlgo::Sha256,
        format!("{leaf}\n{leaf}\n").as_bytes(),
        &mut out,
    )
    .unwrap();
    assert_eq!(
        root,
        merkle_root_sequential(HashAlgo::Sha256, &[[5u8; 32], [5u8; 32]])
    );
    let err = read_hex_leaves(&b"00\n"[..]).unwrap_err();
    assert!(
        err.to_string().contains("line 1") && err.to_string().contains("32 bytes"),
        "{err}"
    );
}
