//! GPU MSM and NTT == arkworks, on every backend present (OpenCL on PoCL here and in CI,
//! CUDA on the GPU machine). Sizes scale with environment variables:
//! `ZK_TEST_MSM_MAX_LOG` (default 8), `ZK_TEST_MSM_G2_MAX_LOG` (default 8) and
//! `ZK_TEST_NTT_MAX_LOG` (default 11); on a GPU use e.g. 20, 18 and 22; `ZK_TEST_BACKENDS` (default `cuda,opencl`) picks the backends. A backend
//! that is not present is skipped with a message on stderr.

use std::sync::Arc;

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup};
use ark_ff::{Field, UniformRand, Zero};
use ark_std::rand::{rngs::StdRng, Rng, SeedableRng};
use gpu_executor::zk::{self, bench, cpu, NttDirection, ZkConfig, ZkExecutor};
use gpu_executor::{list_devices, open_device, BackendKind};

fn env_log(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pool() -> Arc<rayon::ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("thread pool"),
    )
}

/// One executor per backend present (CUDA with the PTX and the portable multiplication).
fn gpu_executors() -> Vec<(String, ZkExecutor)> {
    let mut out = Vec::new();
    let devices = list_devices();
    // ZK_TEST_BACKENDS=cuda,opencl (default) limits which backends run
    let wanted = std::env::var("ZK_TEST_BACKENDS").unwrap_or_else(|_| "cuda,opencl".into());
    for kind in [BackendKind::Cuda, BackendKind::Opencl] {
        if !wanted.split(',').any(|w| w.trim() == kind.as_str()) {
            eprintln!("zk tests: SKIPPING {kind}: not in ZK_TEST_BACKENDS={wanted}");
            continue;
        }
        // prefer a GPU; PoCL's CPU device otherwise
        let Some(info) = devices
            .iter()
            .filter(|d| d.backend == kind)
            .max_by_key(|d| d.is_gpu)
        else {
            eprintln!("zk tests: SKIPPING {kind}: no device (or feature not built)");
            continue;
        };
        // ZK_TEST_CUDA_PORTABLE=0 skips CUDA without PTX (its kernels compile slowly)
        let portable = std::env::var("ZK_TEST_CUDA_PORTABLE").map_or(true, |v| v != "0");
        let variants: &[bool] = if kind == BackendKind::Cuda && portable {
            &[true, false]
        } else if kind == BackendKind::Cuda {
            eprintln!("zk tests: SKIPPING cuda without PTX: ZK_TEST_CUDA_PORTABLE=0");
            &[true]
        } else {
            &[false]
        };
        for &ptx in variants {
            match open_device(kind, info.index, 1) {
                Ok(dev) => {
                    let cfg = ZkConfig {
                        cuda_ptx: ptx,
                        ..ZkConfig::always_gpu()
                    };
                    let e = ZkExecutor::with_device(Some(dev), pool(), cfg);
                    if e.backend_name() == "cpu" {
                        eprintln!(
                            "zk tests: SKIPPING {kind}: kernels unusable on {}",
                            info.name
                        );
                        continue;
                    }
                    let label = format!("{kind}{} ({})", if ptx { "+ptx" } else { "" }, info.name);
                    out.push((label, e));
                }
                Err(e) => eprintln!("zk tests: SKIPPING {kind}: {e}"),
            }
        }
    }
    out
}

fn assert_gpu_ok(label: &str, e: &ZkExecutor) {
    let s = e.stats();
    assert_eq!(
        s.gpu_failures,
        0,
        "{label}: device failed and fell back: {s:?}: {:?}",
        e.last_gpu_error()
    );
    assert_eq!(
        s.cpu_msm + s.cpu_ntt,
        0,
        "{label}: work ran on the CPU: {s:?}"
    );
}

fn check_msm(label: &str, e: &ZkExecutor, bases: &[G1Affine], scalars: &[Fr]) {
    let want = cpu::msm_g1(bases, scalars).expect("cpu msm");
    let got = e.msm_g1(bases, scalars).expect("gpu msm");
    assert_eq!(
        got.into_affine(),
        want.into_affine(),
        "{label}: MSM of {} points differs from arkworks",
        bases.len()
    );
}

#[test]
fn msm_g1_matches_arkworks_random_sizes() {
    let execs = gpu_executors();
    if execs.is_empty() {
        eprintln!("zk tests: SKIPPING msm_g1_matches_arkworks_random_sizes: no GPU backend");
        return;
    }
    let max_log = env_log("ZK_TEST_MSM_MAX_LOG", 8);
    let mut rng = StdRng::seed_from_u64(7);
    let mut sizes = vec![1usize, 2, 3, 5, 31, 100];
    for k in 8..=max_log {
        sizes.push((1 << k) + rng.gen_range(0..(1usize << (k - 1))));
    }
    for (label, e) in &execs {
        for &n in &sizes {
            let bases = bench::random_g1_bases(n, n as u64);
            let scalars = bench::random_scalars(n, 1 + n as u64);
            check_msm(label, e, &bases, &scalars);
        }
        assert_gpu_ok(label, e);
        eprintln!("{label}: MSM sizes {sizes:?} ok");
    }
}

#[test]
fn msm_g1_edge_cases() {
    let execs = gpu_executors();
    if execs.is_empty() {
        eprintln!("zk tests: SKIPPING msm_g1_edge_cases: no GPU backend");
        return;
    }
    let mut rng = StdRng::seed_from_u64(11);
    let g = G1Affine::generator();
    let n = 64;
    let bases = bench::random_g1_bases(n, 5);
    let scalars = bench::random_scalars(n, 6);
    let minus_one = -Fr::ONE;
    let mut cases: Vec<(&str, Vec<G1Affine>, Vec<Fr>)> = vec![
        ("empty", vec![], vec![]),
        ("size 1", vec![g], vec![Fr::from(3u64)]),
        ("zero scalars", bases.clone(), vec![Fr::zero(); n]),
        (
            "identity points",
            vec![G1Affine::zero(); n],
            scalars.clone(),
        ),
        ("scalar r-1", vec![g, bases[1]], vec![minus_one, minus_one]),
        ("scalar one", bases.clone(), vec![Fr::ONE; n]),
        (
            "same point, same scalar (doublings)",
            vec![g; n],
            vec![Fr::from(5u64); n],
        ),
        (
            "P and -P cancel",
            vec![g, -g],
            vec![Fr::from(9u64), Fr::from(9u64)],
        ),
        (
            "small scalars",
            bases.clone(),
            (0..n).map(|i| Fr::from(i as u64)).collect(),
        ),
    ];
    // a mix of identities and zero scalars among random data
    let mut mixed_b = bases.clone();
    let mut mixed_s = scalars.clone();
    for i in 0..n {
        if rng.gen_bool(0.3) {
            mixed_b[i] = G1Affine::zero();
        }
        if rng.gen_bool(0.3) {
            mixed_s[i] = Fr::zero();
        }
    }
    cases.push(("mixed identities and zeros", mixed_b, mixed_s));
    // heavy buckets spanning many accumulation chunks (Groth16 witnesses are mostly 0/1)
    let big = bench::random_g1_bases(1500, 9);
    let heavy: Vec<Fr> = (0..1500)
        .map(|i| match i % 5 {
            0 | 1 => Fr::ONE,
            2 => Fr::zero(),
            3 => Fr::from(2u64),
            _ => -Fr::ONE,
        })
        .collect();
    cases.push(("heavy buckets", big, heavy));
    for (label, e) in &execs {
        for (name, b, s) in &cases {
            let want = cpu::msm_g1(b, s).expect("cpu");
            let got = e.msm_g1(b, s).expect("gpu");
            assert_eq!(
                got.into_affine(),
                want.into_affine(),
                "{label}: case `{name}`"
            );
        }
        // every window size on one input
        for c in [2u32, 3, 7, 13] {
            let cfg = ZkConfig {
                msm: zk::MsmConfig {
                    window_bits: Some(c),
                    min_gpu_len: 0,
                },
                ..e.config().clone()
            };
            let dev = e.device_name();
            let _ = dev;
            let e2 = reopen(e, cfg);
            if let Some(e2) = e2 {
                let want = cpu::msm_g1(&bases, &scalars).expect("cpu");
                let got = e2.msm_g1(&bases, &scalars).expect("gpu");
                assert_eq!(got, want, "{label}: window {c}");
                assert_gpu_ok(label, &e2);
            }
        }
        assert_gpu_ok(label, e);
        eprintln!("{label}: MSM edge cases ok");
    }
    // mismatched lengths are an input error on every backend
    let cpu_exec = ZkExecutor::cpu(pool());
    assert!(cpu_exec.msm_g1(&bases, &scalars[1..]).is_err());
    for (_, e) in &execs {
        assert!(e.msm_g1(&bases, &scalars[1..]).is_err());
    }
}

fn reopen(e: &ZkExecutor, cfg: ZkConfig) -> Option<ZkExecutor> {
    let name = e.device_name()?;
    let kind = match e.backend_name() {
        "cuda" => BackendKind::Cuda,
        _ => BackendKind::Opencl,
    };
    let info = list_devices()
        .into_iter()
        .find(|d| d.backend == kind && d.name == name)?;
    let dev = open_device(kind, info.index, 1).ok()?;
    Some(ZkExecutor::with_device(Some(dev), pool(), cfg))
}

#[test]
fn msm_g1_resident_bases() {
    let execs = gpu_executors();
    if execs.is_empty() {
        eprintln!("zk tests: SKIPPING msm_g1_resident_bases: no GPU backend");
        return;
    }
    let n = 300;
    let bases = bench::random_g1_bases(n, 21);
    for (label, e) in &execs {
        let db = e.upload_g1_bases(&bases).expect("upload");
        for seed in 0..3 {
            let scalars = bench::random_scalars(n, 100 + seed);
            let want = cpu::msm_g1(&bases, &scalars).expect("cpu");
            let got = e
                .msm_g1_resident(&bases, db.as_ref(), &scalars)
                .expect("gpu");
            assert_eq!(got, want, "{label}: resident bases, seed {seed}");
        }
        assert_gpu_ok(label, e);
    }
}

#[test]
fn msm_g2_resident_bases() {
    let execs = gpu_executors();
    if execs.is_empty() {
        eprintln!("zk tests: SKIPPING msm_g2_resident_bases: no GPU backend");
        return;
    }
    let n = 200;
    let bases = bench::random_g2_bases(n, 23);
    for (label, e) in &execs {
        let db = e.upload_g2_bases(&bases).expect("upload");
        for seed in 0..2 {
            let scalars = bench::random_scalars(n, 200 + seed);
            let want = cpu::msm_g2(&bases, &scalars).expect("cpu");
            let got = e
                .msm_g2_resident(&bases, db.as_ref(), &scalars)
                .expect("gpu");
            assert_eq!(got, want, "{label}: G2 resident bases, seed {seed}");
        }
        // host and device bases of different lengths are an input error
        let scalars = bench::random_scalars(n - 1, 7);
        assert!(e
            .msm_g2_resident(&bases[1..], db.as_ref(), &scalars)
            .is_err());
        assert_gpu_ok(label, e);
    }
}

fn check_ntt(label: &str, e: &ZkExecutor, input: &[Fr], dir: NttDirection, coset: Option<Fr>) {
    let mut want = input.to_vec();
    cpu::ntt(&mut want, dir, coset).expect("cpu ntt");
    let mut got = input.to_vec();
    e.ntt(&mut got, dir, coset).expect("gpu ntt");
    assert!(
        got == want,
        "{label}: NTT {dir:?} coset {:?} of {} points differs from arkworks",
        coset.is_some(),
        input.len()
    );
}

#[test]
fn ntt_matches_arkworks() {
    let execs = gpu_executors();
    if execs.is_empty() {
        eprintln!("zk tests: SKIPPING ntt_matches_arkworks: no GPU backend");
        return;
    }
    let max_log = env_log("ZK_TEST_NTT_MAX_LOG", 11);
    let mut rng = StdRng::seed_from_u64(3);
    let g = Fr::from(5u64);
    for (label, e) in &execs {
        let mut logs: Vec<u32> = vec![0, 1, 2, 3, 5, 9, 10];
        logs.extend(11..=max_log);
        for &k in &logs {
            let input: Vec<Fr> = (0..1usize << k).map(|_| Fr::rand(&mut rng)).collect();
            let h = Fr::rand(&mut rng);
            for (dir, coset) in [
                (NttDirection::Forward, None),
                (NttDirection::Inverse, None),
                (NttDirection::Forward, Some(g)),
                (NttDirection::Inverse, Some(g)),
                (NttDirection::Forward, Some(h)),
            ] {
                check_ntt(label, e, &input, dir, coset);
            }
            // round trip
            let mut v = input.clone();
            e.ntt(&mut v, NttDirection::Forward, Some(g)).expect("fwd");
            e.ntt(&mut v, NttDirection::Inverse, Some(g)).expect("inv");
            assert!(v == input, "{label}: coset round trip 2^{k}");
        }
        let s = e.stats();
        assert_eq!(
            s.gpu_failures,
            0,
            "{label}: {s:?}: {:?}",
            e.last_gpu_error()
        );
        eprintln!("{label}: NTT sizes 2^{logs:?} ok");
    }
}

#[test]
fn ntt_rejects_bad_input() {
    let e = ZkExecutor::cpu(pool());
    let mut v = vec![Fr::ONE; 3];
    assert!(e.ntt(&mut v, NttDirection::Forward, None).is_err());
    let mut v: Vec<Fr> = vec![];
    assert!(e.ntt(&mut v, NttDirection::Forward, None).is_err());
    let mut v = vec![Fr::ONE; 4];
    assert!(e
        .ntt(&mut v, NttDirection::Forward, Some(Fr::zero()))
        .is_err());
    for (_, g) in gpu_executors() {
        let mut v = vec![Fr::ONE; 6];
        assert!(g.ntt(&mut v, NttDirection::Inverse, None).is_err());
    }
}

fn check_msm_g2(label: &str, e: &ZkExecutor, bases: &[G2Affine], scalars: &[Fr]) {
    let want = cpu::msm_g2(bases, scalars).expect("cpu msm");
    let got = e.msm_g2(bases, scalars).expect("gpu msm");
    assert_eq!(
        got.into_affine(),
        want.into_affine(),
        "{label}: G2 MSM of {} points differs from arkworks",
        bases.len()
    );
}

#[test]
fn msm_g2_matches_arkworks_random_sizes() {
    let execs = gpu_executors();
    if execs.is_empty() {
        eprintln!("zk tests: SKIPPING msm_g2_matches_arkworks_random_sizes: no GPU backend");
        return;
    }
    let max_log = env_log("ZK_TEST_MSM_G2_MAX_LOG", 8);
    let mut rng = StdRng::seed_from_u64(17);
    let mut sizes = vec![0usize, 1, 2, 3, 5, 31, 100];
    for k in 8..=max_log {
        sizes.push((1 << k) + rng.gen_range(0..(1usize << (k - 1))));
    }
    for (label, e) in &execs {
        let start = std::time::Instant::now();
        for &n in &sizes {
            if n == 2 {
                // n = 1 compiled the G2 program
                eprintln!("{label}: first G2 MSMs (compilation) {:?}", start.elapsed());
            }
            let bases = bench::random_g2_bases(n, 3 * n as u64);
            let scalars = bench::random_scalars(n, 2 + n as u64);
            check_msm_g2(label, e, &bases, &scalars);
        }
        assert_gpu_ok(label, e);
        // every non-empty call ran on the device
        assert_eq!(e.stats().gpu_msm, sizes.len() as u64 - 1, "{label}");
        eprintln!(
            "{label}: G2 MSM sizes {sizes:?} ok in {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn msm_g2_edge_cases() {
    let execs = gpu_executors();
    if execs.is_empty() {
        eprintln!("zk tests: SKIPPING msm_g2_edge_cases: no GPU backend");
        return;
    }
    let mut rng = StdRng::seed_from_u64(13);
    let g = G2Affine::generator();
    let n = 48;
    let bases = bench::random_g2_bases(n, 15);
    let scalars = bench::random_scalars(n, 16);
    let minus_one = -Fr::ONE;
    let mut cases: Vec<(&str, Vec<G2Affine>, Vec<Fr>)> = vec![
        ("empty", vec![], vec![]),
        ("size 1", vec![g], vec![Fr::from(3u64)]),
        (
            "size 2",
            vec![g, bases[0]],
            vec![Fr::from(7u64), scalars[0]],
        ),
        ("zero scalars", bases.clone(), vec![Fr::zero(); n]),
        ("identity bases", vec![G2Affine::zero(); n], scalars.clone()),
        ("scalar r-1", vec![g, bases[1]], vec![minus_one, minus_one]),
        ("scalar one", bases.clone(), vec![Fr::ONE; n]),
        (
            "same base, same scalar (doublings)",
            vec![g; n],
            vec![Fr::from(5u64); n],
        ),
        (
            "repeated bases, random scalars",
            (0..n).map(|i| bases[i % 3]).collect(),
            scalars.clone(),
        ),
        (
            "P and -P cancel",
            vec![g, -g],
            vec![Fr::from(9u64), Fr::from(9u64)],
        ),
        (
            "small scalars",
            bases.clone(),
            (0..n).map(|i| Fr::from(i as u64)).collect(),
        ),
    ];
    let mut mixed_b = bases.clone();
    let mut mixed_s = scalars.clone();
    for i in 0..n {
        if rng.gen_bool(0.3) {
            mixed_b[i] = G2Affine::zero();
        }
        if rng.gen_bool(0.3) {
            mixed_s[i] = Fr::zero();
        }
    }
    cases.push(("mixed identities and zeros", mixed_b, mixed_s));
    // heavy buckets spanning many accumulation chunks, with repeated bases
    let few = bench::random_g2_bases(7, 19);
    let heavy_b: Vec<G2Affine> = (0..1500).map(|i| few[i % 7]).collect();
    let heavy: Vec<Fr> = (0..1500)
        .map(|i| match i % 5 {
            0 | 1 => Fr::ONE,
            2 => Fr::zero(),
            3 => Fr::from(2u64),
            _ => -Fr::ONE,
        })
        .collect();
    cases.push(("heavy buckets, repeated bases", heavy_b, heavy));
    for (label, e) in &execs {
        for (name, b, s) in &cases {
            let want = cpu::msm_g2(b, s).expect("cpu");
            let got = e.msm_g2(b, s).expect("gpu");
            assert_eq!(
                got.into_affine(),
                want.into_affine(),
                "{label}: G2 case `{name}`"
            );
        }
        for c in [2u32, 7, 13] {
            let cfg = ZkConfig {
                msm: zk::MsmConfig {
                    window_bits: Some(c),
                    min_gpu_len: 0,
                },
                ..e.config().clone()
            };
            if let Some(e2) = reopen(e, cfg) {
                let want = cpu::msm_g2(&bases, &scalars).expect("cpu");
                let got = e2.msm_g2(&bases, &scalars).expect("gpu");
                assert_eq!(got, want, "{label}: G2 window {c}");
                assert_gpu_ok(label, &e2);
            }
        }
        assert_gpu_ok(label, e);
        eprintln!("{label}: G2 MSM edge cases ok");
    }
    let cpu_exec = ZkExecutor::cpu(pool());
    assert!(cpu_exec.msm_g2(&bases, &scalars[1..]).is_err());
    for (_, e) in &execs {
        assert!(e.msm_g2(&bases, &scalars[1..]).is_err());
    }
}

#[test]
fn cpu_executor_matches_arkworks() {
    let e = ZkExecutor::cpu(pool());
    assert_eq!(e.backend_name(), "cpu");
    let bases = bench::random_g1_bases(50, 1);
    let scalars = bench::random_scalars(50, 2);
    let naive: G1Projective = bases
        .iter()
        .zip(&scalars)
        .map(|(b, s)| b.mul_bigint(ark_ff::PrimeField::into_bigint(*s)))
        .sum();
    assert_eq!(e.msm_g1(&bases, &scalars).expect("msm"), naive);
    let g2 = G2Projective::generator();
    let g2b: Vec<G2Affine> = (1..5u64)
        .map(|i| (g2 * Fr::from(i)).into_affine())
        .collect();
    let s: Vec<Fr> = (1..5u64).map(Fr::from).collect();
    let want = g2 * Fr::from(1 + 4 + 9 + 16u64);
    assert_eq!(zk::msm_g2(&e, &g2b, &s).expect("g2"), want);
    // on a CPU executor every MSM runs on the CPU
    assert_eq!(e.stats().gpu_msm, 0);
    assert_eq!(e.stats().cpu_msm, 2);
}
