//! GPU MSM and NTT == arkworks, on every backend present (OpenCL on PoCL here and in CI,
//! CUDA on the GPU machine). Sizes scale with environment variables:
//! `ZK_TEST_MSM_MAX_LOG` (default 8), `ZK_TEST_MSM_G2_MAX_LOG` (default 8) and
//! `ZK_TEST_NTT_MAX_LOG` (default 11); on a GPU use e.g. 20, 18 and 22; `ZK_TEST_BACKENDS` (default `cuda,opencl`) picks the backends. A backend
//! that is not present is skipped with a message on stderr.

use std::sync::Arc;

use ark_bn254::{Fq12, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
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
        let Some(info) = gpu_executor::preferred_device(&devices, kind) else {
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

/// What the MSM tests need of a group (G1 or G2), so one test body serves both.
trait MsmGroup {
    /// The group's affine points.
    type Affine: AffineRepr<ScalarField = Fr>;
    /// "G1" or "G2", for messages.
    const NAME: &'static str;
    /// Window sizes to try (each reopens the executor; G2 programs compile slowly).
    const WINDOWS: &'static [u32];
    /// Whether every non-empty MSM must run on the device (G2: no CPU cut-over).
    const ALL_ON_GPU: bool;
    fn random_bases(n: usize, seed: u64) -> Vec<Self::Affine>;
    /// Bases for the heavy-bucket case (1,500 points).
    fn heavy_bases() -> Vec<Self::Affine>;
    fn cpu_msm(bases: &[Self::Affine], scalars: &[Fr]) -> <Self::Affine as AffineRepr>::Group;
    fn gpu_msm(
        e: &ZkExecutor,
        bases: &[Self::Affine],
        scalars: &[Fr],
    ) -> gpu_executor::Result<<Self::Affine as AffineRepr>::Group>;
}

/// A named MSM input: bases and scalars.
type Case<A> = (&'static str, Vec<A>, Vec<Fr>);

/// Marker of G1 for [`MsmGroup`].
struct G1;
/// Marker of G2 for [`MsmGroup`].
struct G2;

impl MsmGroup for G1 {
    type Affine = G1Affine;
    const NAME: &'static str = "G1";
    const WINDOWS: &'static [u32] = &[2, 3, 7, 13];
    const ALL_ON_GPU: bool = false;
    fn random_bases(n: usize, seed: u64) -> Vec<G1Affine> {
        bench::random_g1_bases(n, seed)
    }
    fn heavy_bases() -> Vec<G1Affine> {
        bench::random_g1_bases(1500, 9)
    }
    fn cpu_msm(bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
        cpu::msm_g1(bases, scalars).expect("cpu msm")
    }
    fn gpu_msm(
        e: &ZkExecutor,
        bases: &[G1Affine],
        scalars: &[Fr],
    ) -> gpu_executor::Result<G1Projective> {
        e.msm_g1(bases, scalars)
    }
}

impl MsmGroup for G2 {
    type Affine = G2Affine;
    const NAME: &'static str = "G2";
    const WINDOWS: &'static [u32] = &[2, 7, 13];
    const ALL_ON_GPU: bool = true;
    fn random_bases(n: usize, seed: u64) -> Vec<G2Affine> {
        bench::random_g2_bases(n, seed)
    }
    fn heavy_bases() -> Vec<G2Affine> {
        // Repeated bases (random G2 points are slow to make in debug builds).
        let few = bench::random_g2_bases(7, 19);
        (0..1500).map(|i| few[i % 7]).collect()
    }
    fn cpu_msm(bases: &[G2Affine], scalars: &[Fr]) -> G2Projective {
        cpu::msm_g2(bases, scalars).expect("cpu msm")
    }
    fn gpu_msm(
        e: &ZkExecutor,
        bases: &[G2Affine],
        scalars: &[Fr],
    ) -> gpu_executor::Result<G2Projective> {
        e.msm_g2(bases, scalars)
    }
}

fn check_msm<G: MsmGroup>(label: &str, e: &ZkExecutor, bases: &[G::Affine], scalars: &[Fr]) {
    let want = G::cpu_msm(bases, scalars);
    let got = G::gpu_msm(e, bases, scalars).expect("gpu msm");
    assert_eq!(
        got.into_affine(),
        want.into_affine(),
        "{label}: {} MSM of {} points differs from arkworks",
        G::NAME,
        bases.len()
    );
}

/// GPU MSM equals arkworks at sizes 0..100 and one random size per power of two from 2^8 up
/// to 2^`max_log` (environment variable `env`).
fn msm_random_sizes<G: MsmGroup>(test: &str, env: &str, seed: u64) {
    let execs = gpu_executors();
    if execs.is_empty() {
        eprintln!("zk tests: SKIPPING {test}: no GPU backend");
        return;
    }
    let max_log = env_log(env, 8);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sizes = vec![0usize, 1, 2, 3, 5, 31, 100];
    for k in 8..=max_log {
        sizes.push((1 << k) + rng.gen_range(0..(1usize << (k - 1))));
    }
    for (label, e) in &execs {
        let start = std::time::Instant::now();
        for &n in &sizes {
            if n == 2 {
                // n = 1 compiled the program
                eprintln!(
                    "{label}: first {} MSMs (compilation) {:?}",
                    G::NAME,
                    start.elapsed()
                );
            }
            let bases = G::random_bases(n, 3 * n as u64 + seed);
            let scalars = bench::random_scalars(n, 2 + n as u64);
            check_msm::<G>(label, e, &bases, &scalars);
        }
        assert_gpu_ok(label, e);
        if G::ALL_ON_GPU {
            // every non-empty call ran on the device
            assert_eq!(e.stats().gpu_msm, sizes.len() as u64 - 1, "{label}");
        }
        eprintln!(
            "{label}: {} MSM sizes {sizes:?} ok in {:?}",
            G::NAME,
            start.elapsed()
        );
    }
}

/// GPU MSM equals arkworks on edge cases (empty, zero scalars, identities, r-1, doublings,
/// cancellation, heavy buckets), at every window size of `G::WINDOWS`; mismatched lengths
/// are an error on every backend.
fn msm_edge_cases<G: MsmGroup>(test: &str, seed: u64) {
    let execs = gpu_executors();
    if execs.is_empty() {
        eprintln!("zk tests: SKIPPING {test}: no GPU backend");
        return;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let g = G::Affine::generator();
    let n = 48;
    let bases = G::random_bases(n, seed + 2);
    let scalars = bench::random_scalars(n, seed + 3);
    let minus_one = -Fr::ONE;
    let mut cases: Vec<Case<G::Affine>> = vec![
        ("empty", vec![], vec![]),
        ("size 1", vec![g], vec![Fr::from(3u64)]),
        (
            "size 2",
            vec![g, bases[0]],
            vec![Fr::from(7u64), scalars[0]],
        ),
        ("zero scalars", bases.clone(), vec![Fr::zero(); n]),
        (
            "identity bases",
            vec![G::Affine::zero(); n],
            scalars.clone(),
        ),
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
            vec![g, (-g.into_group()).into_affine()],
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
            mixed_b[i] = G::Affine::zero();
        }
        if rng.gen_bool(0.3) {
            mixed_s[i] = Fr::zero();
        }
    }
    cases.push(("mixed identities and zeros", mixed_b, mixed_s));
    // heavy buckets spanning many accumulation chunks (Groth16 witnesses are mostly 0/1)
    let heavy: Vec<Fr> = (0..1500)
        .map(|i| match i % 5 {
            0 | 1 => Fr::ONE,
            2 => Fr::zero(),
            3 => Fr::from(2u64),
            _ => -Fr::ONE,
        })
        .collect();
    cases.push(("heavy buckets", G::heavy_bases(), heavy));
    for (label, e) in &execs {
        for (name, b, s) in &cases {
            let want = G::cpu_msm(b, s);
            let got = G::gpu_msm(e, b, s).expect("gpu");
            assert_eq!(
                got.into_affine(),
                want.into_affine(),
                "{label}: {} case `{name}`",
                G::NAME
            );
        }
        for &c in G::WINDOWS {
            let cfg = ZkConfig {
                msm: zk::MsmConfig {
                    window_bits: Some(c),
                    min_gpu_len: 0,
                },
                ..e.config().clone()
            };
            if let Some(e2) = reopen(e, cfg) {
                let want = G::cpu_msm(&bases, &scalars);
                let got = G::gpu_msm(&e2, &bases, &scalars).expect("gpu");
                assert_eq!(got, want, "{label}: {} window {c}", G::NAME);
                assert_gpu_ok(label, &e2);
            }
        }
        assert_gpu_ok(label, e);
        eprintln!("{label}: {} MSM edge cases ok", G::NAME);
    }
    let cpu_exec = ZkExecutor::cpu(pool());
    assert!(G::gpu_msm(&cpu_exec, &bases, &scalars[1..]).is_err());
    for (_, e) in &execs {
        assert!(G::gpu_msm(e, &bases, &scalars[1..]).is_err());
    }
}

#[test]
fn msm_g1_matches_arkworks_random_sizes() {
    msm_random_sizes::<G1>(
        "msm_g1_matches_arkworks_random_sizes",
        "ZK_TEST_MSM_MAX_LOG",
        7,
    );
}

#[test]
fn msm_g1_edge_cases() {
    msm_edge_cases::<G1>("msm_g1_edge_cases", 11);
}

#[test]
fn msm_g2_matches_arkworks_random_sizes() {
    msm_random_sizes::<G2>(
        "msm_g2_matches_arkworks_random_sizes",
        "ZK_TEST_MSM_G2_MAX_LOG",
        17,
    );
}

#[test]
fn msm_g2_edge_cases() {
    msm_edge_cases::<G2>("msm_g2_edge_cases", 13);
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

/// Random pairs plus the edge cases: the generators, a negated point, the identity in
/// either slot.
fn miller_pairs(n: usize, seed: u64) -> (Vec<G1Affine>, Vec<G2Affine>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut g1: Vec<G1Affine> = (0..n)
        .map(|_| (G1Projective::generator() * Fr::rand(&mut rng)).into_affine())
        .collect();
    let mut g2: Vec<G2Affine> = (0..n)
        .map(|_| (G2Projective::generator() * Fr::rand(&mut rng)).into_affine())
        .collect();
    let (p, q) = (g1[0], g2[0]);
    g1.extend([G1Affine::generator(), -p, G1Affine::zero(), p]);
    g2.extend([G2Affine::generator(), q, q, G2Affine::zero()]);
    (g1, g2)
}

#[test]
fn miller_loops_match_arkworks() {
    use ark_bn254::Bn254;
    use ark_ec::pairing::{MillerLoopOutput, Pairing};
    let n = env_log("ZK_TEST_MILLER_PAIRS", 24) as usize;
    let (g1, g2) = miller_pairs(n, 91);
    let want = cpu::miller_loops(&g1, &g2).expect("cpu Miller loops");
    // the per-pair loops multiply to the multi-pairing
    let product = want.iter().product();
    assert_eq!(
        Bn254::final_exponentiation(MillerLoopOutput(product)),
        Some(Bn254::multi_pairing(g1.iter().copied(), g2.iter().copied()))
    );
    assert!(cpu::miller_loops(&g1, &g2[1..]).is_err());
    for (label, e) in gpu_executors() {
        let got = e.gpu_miller_loops(&g1, &g2).unwrap_or_else(|err| {
            panic!("{label}: device Miller loops failed: {err}");
        });
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{label}: pair {i} differs from arkworks");
        }
        assert_eq!(e.miller_loops(&g1, &g2).expect("routed"), want, "{label}");
        assert!(e.miller_loops(&g1, &g2[1..]).is_err(), "{label}");
        // The product with several threads per pair is exactly the product of the loops:
        // every segment count (1: one thread per pair; more than the 64 iterations is
        // clamped), batches of one, two and an odd number of pairs, identities skipped.
        let mut calls = 2;
        for take in [1, 2, 5, g1.len()] {
            let (a, b) = (&g1[..take], &g2[..take]);
            let want: Fq12 = cpu::miller_loops(a, b).expect("cpu").iter().product();
            for segs in [1, 2, 3, 7, 16, 64, 100] {
                let got = e.gpu_miller_product_segments(a, b, segs);
                assert_eq!(
                    got.expect("device product"),
                    want,
                    "{label}: {take} pairs, {segs} segments"
                );
                calls += 1;
            }
        }
        let product: Fq12 = want.iter().product();
        assert_eq!(
            e.gpu_miller_product(&g1, &g2).expect("device product"),
            product,
            "{label}"
        );
        assert!(e.gpu_miller_product(&g1, &g2[1..]).is_err(), "{label}");
        assert_eq!(
            e.gpu_miller_product(&[], &[]).expect("empty"),
            Fq12::ONE,
            "{label}"
        );
        calls += 1;
        let s = e.stats();
        assert_eq!(s.gpu_failures, 0, "{label}: {:?}", e.last_gpu_error());
        assert_eq!((s.gpu_miller, s.cpu_miller), (calls, 0), "{label}: {s:?}");
        eprintln!("{label}: {} Miller loops match arkworks", g1.len());
    }
}

/// G1 and G2 x-coordinates for the decompression test: points of G1 and G2 (and their
/// negations), points of the twist outside G2, x-coordinates with no point, and zero.
fn decode_inputs(n: usize, seed: u64) -> (Vec<ark_bn254::Fq>, Vec<ark_bn254::Fq2>) {
    use ark_bn254::{Fq, Fq2};
    let mut rng = StdRng::seed_from_u64(seed);
    let mut g1 = vec![Fq::zero(), G1Affine::generator().x, -Fq::from(1u64)];
    let mut g2 = vec![
        Fq2::zero(),
        G2Affine::generator().x,
        Fq2::new(Fq::zero(), Fq::from(1u64)),
    ];
    for i in 0..n {
        let p = (G1Projective::generator() * Fr::rand(&mut rng)).into_affine();
        let q = (G2Projective::generator() * Fr::rand(&mut rng)).into_affine();
        g1.push(if i % 2 == 0 { p.x } else { (-p).x });
        g2.push(q.x);
        // random x: a point (of the twist, almost never in G2) about half the time
        g1.push(Fq::rand(&mut rng));
        g2.push(Fq2::rand(&mut rng));
    }
    (g1, g2)
}

#[test]
fn decompression_matches_arkworks() {
    use ark_ec::short_weierstrass::Affine;
    let n = env_log("ZK_TEST_DECODE_POINTS", 48) as usize;
    let (x1, x2) = decode_inputs(n, 17);
    // arkworks: the roots (smaller, larger) or None; G2 membership of the point
    let want1: Vec<_> = x1
        .iter()
        .map(|&x| Affine::<ark_bn254::g1::Config>::get_ys_from_x_unchecked(x))
        .collect();
    let want2: Vec<_> = x2
        .iter()
        .map(|&x| {
            G2Affine::get_point_from_x_unchecked(x, false)
                .map(|p| (p.y, p.is_in_correct_subgroup_assuming_on_curve()))
        })
        .collect();
    let (mut outside, mut inside) = (0, 0);
    for w in want2.iter().flatten() {
        if w.1 {
            inside += 1;
        } else {
            outside += 1;
        }
    }
    assert!(inside > n / 2 && outside > 0, "the inputs cover both cases");
    assert!(want1.iter().any(Option::is_none) && want2.iter().any(Option::is_none));
    let cpu = ZkExecutor::cpu(pool());
    assert!(cpu.gpu_decompress(&x1, &x2).is_err() && !cpu.has_decompression());
    for (label, e) in gpu_executors() {
        // compiles and passes the known-answer self-test
        e.prepare_pairing().expect("prepare");
        assert!(e.has_decompression(), "{label}: self-test failed");
        let got = e.gpu_decompress(&x1, &x2).unwrap_or_else(|err| {
            panic!("{label}: device decompression failed: {err}");
        });
        for (i, (g, w)) in got.g1.iter().zip(&want1).enumerate() {
            match (g, w) {
                (None, None) => {}
                (Some(y), Some((a, b))) => assert!(y == a || y == b, "{label}: G1 {i}"),
                _ => panic!("{label}: G1 x {i}: device {g:?}, arkworks {w:?}"),
            }
        }
        for (i, (g, w)) in got.g2.iter().zip(&want2).enumerate() {
            match (g, w) {
                (None, None) => {}
                (Some(r), Some((y, member))) => {
                    assert!(r.y == *y || r.y == -*y, "{label}: G2 {i}: root");
                    assert_eq!(r.in_subgroup, *member, "{label}: G2 {i}: subgroup");
                }
                _ => panic!("{label}: G2 x {i}: device {g:?}, arkworks {w:?}"),
            }
        }
        // one group alone, and nothing
        let only1 = e.gpu_decompress(&x1[..5], &[]).expect("g1 only");
        assert_eq!(
            (&only1.g1[..], only1.g2.len()),
            (&got.g1[..5], 0),
            "{label}"
        );
        let only2 = e.gpu_decompress(&[], &x2[..5]).expect("g2 only");
        assert_eq!(
            (only2.g1.len(), &only2.g2[..]),
            (0, &got.g2[..5]),
            "{label}"
        );
        let none = e.gpu_decompress(&[], &[]).expect("empty");
        assert!(none.g1.is_empty() && none.g2.is_empty(), "{label}");
        assert_eq!(e.stats().gpu_failures, 0, "{label}");
        eprintln!(
            "{label}: {} G1 and {} G2 decompressions match arkworks ({inside} in G2, {outside} outside)",
            x1.len(),
            x2.len()
        );
    }
}

#[test]
fn g1_scaling_matches_arkworks() {
    let n = env_log("ZK_TEST_SCALE_POINTS", 40) as usize;
    let mut rng = StdRng::seed_from_u64(29);
    // random points and weights, plus the edge cases: the identity, zero weights, one
    // half zero, every bit set, and (1, 1), whose first step adds phi(P) to P.
    let mut points = vec![
        G1Affine::identity(),
        G1Affine::generator(),
        -G1Affine::generator(),
    ];
    let mut ks = vec![(3u64, 5u64), (0, 0), (u64::MAX, u64::MAX)];
    for i in 0..n {
        points.push((G1Projective::generator() * Fr::rand(&mut rng)).into_affine());
        ks.push(match i % 5 {
            0 => (rng.gen::<u64>() | 1, 0),
            1 => (0, rng.gen()),
            2 => (1, 1),
            _ => (rng.gen::<u64>() | 1, rng.gen()),
        });
    }
    let want = cpu::scale_g1(&points, &ks).expect("reference");
    // the reference is k1 + lambda k2 times the point
    let lambda = <ark_bn254::g1::Config as ark_ec::scalar_mul::glv::GLVConfig>::LAMBDA;
    for ((p, &(k1, k2)), w) in points.iter().zip(&ks).zip(&want).skip(3).take(5) {
        assert_eq!(
            (*p * (Fr::from(k1) + lambda * Fr::from(k2))).into_affine(),
            *w
        );
    }
    assert!(cpu::scale_g1(&points, &ks[1..]).is_err());
    let cpu_only = ZkExecutor::cpu(pool());
    assert!(cpu_only.gpu_scale_g1(&points, &ks).is_err() && !cpu_only.has_scaling());
    for (label, e) in gpu_executors() {
        e.prepare_pairing().expect("prepare");
        assert!(e.has_scaling(), "{label}: self-test failed");
        let got = e.gpu_scale_g1(&points, &ks).unwrap_or_else(|err| {
            panic!("{label}: device scaling failed: {err}");
        });
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{label}: point {i} differs from arkworks");
        }
        assert_eq!(got.len(), want.len(), "{label}");
        assert!(e.gpu_scale_g1(&points, &ks[1..]).is_err(), "{label}");
        assert!(
            e.gpu_scale_g1(&[], &[]).expect("empty").is_empty(),
            "{label}"
        );
        assert_eq!(e.stats().gpu_failures, 0, "{label}");
        eprintln!("{label}: {} G1 scalings match arkworks", points.len());
    }
}
