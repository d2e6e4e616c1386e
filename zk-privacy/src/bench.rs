//! Benchmark suites for `supervm bench groth16` (same [`BenchRecord`] JSON as the other
//! suites): Groth16 proving on the CPU (arkworks backend, all threads) and on each GPU
//! backend present, and privacy-proof verification throughput (single and batched).
//!
//! Every GPU proof is verified; a GPU run whose executor fell back to the CPU is reported
//! on stderr and not recorded as a GPU figure.

use std::sync::Arc;
use std::time::Instant;

use ark_bn254::{Bn254, Fr};
use ark_groth16::{Groth16, ProvingKey};
use ark_relations::r1cs::ConstraintMatrices;
use engine_api::BenchRecord;
use gpu_executor::zk::{ZkConfig, ZkExecutor};
use gpu_executor::{BackendChoice, BackendKind, GpuConfig};
use rand::{Rng, SeedableRng};

use crate::backend::{CpuProverBackend, GpuProverBackend, ProverBackend};
use crate::circuit::{InputNote, TransferCircuit};
use crate::demo::SquareChainCircuit;
use crate::error::{Result, ZkError};
use crate::note::{public_key, Note};
use crate::prover::{create_proof, synthesize};
use crate::service::{ProvingService, ProvingServiceConfig};
use crate::setup::dev_setup;
use crate::tree::NoteTree;
use crate::verify::{
    batch_verify_on, prepare, verify_proof, DeviceMillerLoops, MillerLoops, ProofWithInputs,
};

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Depth of the confidential-transfer circuit. Default: 20.
    pub depth: usize,
    /// Sizes (log2 of the number of constraints) of the square-chain circuit to prove.
    /// Default: `[16]` (use `[20]` on the GPU machine for the 2^20-constraint target).
    pub square_chain_log_sizes: Vec<u32>,
    /// Timed repetitions per case (median reported) after one warm-up. Default: 3.
    pub reps: usize,
    /// CPU threads (0 = all). Default: 0.
    pub cpu_threads: usize,
    /// GPU backends to try (absent ones are skipped). Default: CUDA, OpenCL.
    pub backends: Vec<BackendKind>,
    /// Proofs per `prove_batch` throughput case. Default: 8.
    pub prove_batch: usize,
    /// Batch sizes of the verification suite. Default: `[1, 64, 1024, 8192]`.
    pub verify_batch_sizes: Vec<usize>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            depth: crate::tree::DEFAULT_DEPTH,
            square_chain_log_sizes: vec![16],
            reps: 3,
            cpu_threads: 0,
            backends: vec![BackendKind::Cuda, BackendKind::Opencl],
            prove_batch: 8,
            verify_batch_sizes: vec![1, 64, 1024, 8192],
        }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "cpu".into())
}

fn pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("zk-bench-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| ZkError::Config(format!("thread pool: {e}")))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time_reps(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut t = Vec::with_capacity(reps.max(1));
    for _ in 0..reps.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(t))
}

struct Backend {
    name: String,
    device: String,
    imp: Arc<dyn ProverBackend>,
    gpu: Option<GpuProverBackend>,
}

fn backends(opts: &BenchOptions, pool: &Arc<rayon::ThreadPool>) -> Vec<Backend> {
    let mut out = vec![Backend {
        name: "cpu".into(),
        device: cpu_model(),
        imp: Arc::new(CpuProverBackend),
        gpu: None,
    }];
    for &kind in &opts.backends {
        if let Some(why) = gpu_executor::device::backend_status(kind) {
            eprintln!("groth16 bench: skipping {kind}: {why}");
            continue;
        }
        let index = match gpu_executor::list_devices()
            .into_iter()
            .find(|d| d.backend == kind && d.is_gpu)
        {
            Some(d) => d.index,
            None => {
                eprintln!("groth16 bench: skipping {kind}: no GPU device");
                continue;
            }
        };
        let choice = match kind {
            BackendKind::Cuda => BackendChoice::Cuda,
            BackendKind::Opencl => BackendChoice::Opencl,
        };
        let cfg = GpuConfig {
            devices: vec![index],
            ..GpuConfig::with_backend(choice)
        };
        let dev = match gpu_executor::open_devices(&cfg) {
            Ok(d) => d.into_iter().next(),
            Err(e) => {
                eprintln!("groth16 bench: skipping {kind}: {e}");
                continue;
            }
        };
        let exec = Arc::new(ZkExecutor::with_device(
            dev,
            pool.clone(),
            ZkConfig::default(),
        ));
        if exec.backend_name() == "cpu" {
            eprintln!("groth16 bench: skipping {kind}: kernels unusable");
            continue;
        }
        if let Err(e) = exec.prepare() {
            eprintln!("groth16 bench: skipping {kind}: {e}");
            continue;
        }
        let gpu = GpuProverBackend::new(exec.clone());
        out.push(Backend {
            name: exec.backend_name().into(),
            device: exec.device_name().unwrap_or_default(),
            imp: Arc::new(gpu.clone()),
            gpu: Some(gpu),
        });
    }
    out
}

/// A depth-`depth` transfer spending two notes of a small tree.
pub fn sample_transfer(depth: usize) -> Result<TransferCircuit> {
    let sk = Fr::from(4242u64);
    let pk = public_key(sk);
    let mut tree = NoteTree::new(depth)?;
    let notes = [
        Note::new(70, pk, Fr::from(1u64)),
        Note::new(50, pk, Fr::from(2u64)),
    ];
    let mut inputs = Vec::new();
    for (i, n) in notes.iter().enumerate() {
        tree.append(Fr::from(1000 + i as u64))?;
        let pos = tree.append(n.commitment())?;
        inputs.push((n, pos));
    }
    let mut ins = Vec::new();
    for (n, pos) in inputs {
        ins.push(InputNote {
            spending_key: sk,
            value: n.value,
            rho: n.rho,
            path: tree.path(pos)?,
        });
    }
    let [a, b]: [InputNote; 2] = ins
        .try_into()
        .map_err(|_| ZkError::Witness("two inputs".into()))?;
    Ok(TransferCircuit {
        depth,
        root: tree.root(),
        inputs: [a, b],
        outputs: [
            Note::new(100, public_key(Fr::from(7u64)), Fr::from(3u64)),
            Note::new(15, pk, Fr::from(4u64)),
        ],
        fee: 5,
    })
}

fn record(case: String, b: &Backend, batch: u64, ms: f64, threads: usize) -> BenchRecord {
    BenchRecord {
        suite: "groth16".into(),
        case,
        backend: b.name.clone(),
        device: b.device.clone(),
        batch,
        items_per_sec: batch as f64 / (ms / 1e3),
        median_ms: ms,
        cpu_threads: threads,
    }
}

#[allow(clippy::too_many_arguments)]
fn prove_case<C: ark_relations::r1cs::ConstraintSynthesizer<Fr> + Clone + Send + Sync>(
    case: &str,
    circuit: &C,
    pk: &Arc<ProvingKey<Bn254>>,
    inputs: &[Fr],
    backs: &[Backend],
    pool: &Arc<rayon::ThreadPool>,
    reps: usize,
    out: &mut Vec<BenchRecord>,
) -> Result<()> {
    let pvk = prepare(&pk.vk);
    let threads = pool.current_num_threads();
    for b in backs {
        let failures_before = b.gpu.as_ref().map(|g| g.executor().stats().gpu_failures);
        // Timed proofs (witness synthesis + QAP + MSMs), with the key's fixed bases resident
        // on the device as a proving service keeps them; `matrices`: constraint matrices
        // built once and reused instead of rebuilt per proof. The last proof, to check.
        let timed = |matrices: Option<Arc<ConstraintMatrices<Fr>>>| -> Result<(f64, Option<_>)> {
            if let Some(g) = &b.gpu {
                g.preload(pk)?;
            }
            let mut last = None;
            let ms = pool.install(|| {
                time_reps(reps, || {
                    let w = synthesize(circuit.clone(), matrices.clone())?;
                    let mut rng = rand::thread_rng();
                    let (r, s) = (
                        ark_std::UniformRand::rand(&mut rng),
                        ark_std::UniformRand::rand(&mut rng),
                    );
                    last = Some(create_proof(b.imp.as_ref(), pk, r, s, &w)?);
                    Ok(())
                })
            })?;
            if let Some(g) = &b.gpu {
                g.clear_resident();
            }
            Ok((ms, last))
        };
        let (ms, last) = timed(None)?;
        let Some(proof) = last else { continue };
        if !verify_proof(&pvk, &proof, inputs)? {
            eprintln!(
                "groth16 bench: {case} on {}: proof does not verify, not recorded",
                b.name
            );
            continue;
        }
        if let (Some(g), Some(before)) = (&b.gpu, failures_before) {
            if g.executor().stats().gpu_failures != before {
                eprintln!(
                    "groth16 bench: {case} on {}: device fell back to the CPU, not recorded",
                    b.name
                );
                continue;
            }
        }
        out.push(record(format!("{case}-prove"), b, 1, ms, threads));
        // The proving-service path: constraint matrices built once per circuit and reused
        // (`ProvingService` does this), so a proof pays witness generation, the QAP and the
        // MSMs. arkworks' `Groth16::prove` rebuilds the matrices every time (the `-prove`
        // case above does the same).
        let shared = pool.install(|| synthesize(circuit.clone(), None))?.matrices;
        let (ms, last) = timed(Some(shared))?;
        match last {
            Some(p) if verify_proof(&pvk, &p, inputs)? => {
                out.push(record(format!("{case}-prove-cached-matrices"), b, 1, ms, threads));
            }
            _ => eprintln!(
                "groth16 bench: {case} on {} (cached matrices): proof does not verify, not recorded",
                b.name
            ),
        }
    }
    Ok(())
}

/// Groth16 proving: the confidential transfer at `opts.depth`, the square-chain circuit at
/// each size, and `prove_batch` throughput of the transfer on the CPU pool.
pub fn groth16_suite(opts: &BenchOptions) -> Result<Vec<BenchRecord>> {
    let pool = pool(opts.cpu_threads)?;
    let threads = pool.current_num_threads();
    let backs = backends(opts, &pool);
    let mut out = Vec::new();

    let transfer = sample_transfer(opts.depth)?;
    let case = format!("transfer-d{}", opts.depth);
    let pk = Arc::new(pool.install(|| dev_setup(TransferCircuit::blank(opts.depth), b"bench"))?);
    let inputs = transfer.public_inputs().to_field_elements();
    prove_case(
        &case, &transfer, &pk, &inputs, &backs, &pool, opts.reps, &mut out,
    )?;

    // prove_batch throughput (independent proofs in parallel, shared key and matrices).
    if opts.prove_batch > 0 {
        for b in &backs {
            let service = ProvingService::new(
                pool.clone(),
                b.imp.clone(),
                ProvingServiceConfig { cache_capacity: 0 },
            );
            service.register(&case, (*pk).clone())?;
            let batch: Vec<TransferCircuit> =
                (0..opts.prove_batch).map(|_| transfer.clone()).collect();
            let ms = time_reps(opts.reps.min(2), || {
                for r in service.prove_batch(&case, batch.clone())? {
                    r?;
                }
                Ok(())
            })?;
            out.push(record(
                format!("{case}-prove_batch"),
                b,
                opts.prove_batch as u64,
                ms,
                threads,
            ));
        }
    }

    for &log in &opts.square_chain_log_sizes {
        // steps + 1 constraints + 3 instance variables fill a domain of exactly 2^log.
        let steps = (1usize << log).saturating_sub(4).max(1);
        let circuit = SquareChainCircuit::new(Fr::from(3u64), steps);
        let pk = Arc::new(
            pool.install(|| dev_setup(SquareChainCircuit::new(Fr::from(0u64), steps), b"bench"))?,
        );
        let inputs = circuit.public_inputs();
        prove_case(
            &format!("square-chain-2^{log}"),
            &circuit,
            &pk,
            &inputs,
            &backs,
            &pool,
            opts.reps,
            &mut out,
        )?;
    }
    Ok(out)
}

/// Privacy-proof verification: one proof at a time, and batches (random linear
/// combination) of each size in `opts.verify_batch_sizes`, on the CPU pool, and the batch
/// checks again with their Miller loops on each GPU backend in `opts.backends`. The batch's
/// proofs are distinct (re-randomised copies of one transfer proof).
pub fn privacy_verify_suite(opts: &BenchOptions) -> Result<Vec<BenchRecord>> {
    let pool = pool(opts.cpu_threads)?;
    let threads = pool.current_num_threads();
    // The CPU first, then each GPU backend with its Miller-loop kernel built (the batch
    // checks below run on each).
    let backs = backends(opts, &pool);
    let cpu = &backs[0];
    let mut engines: Vec<(&Backend, Option<DeviceMillerLoops<'_>>)> = Vec::new();
    for b in &backs {
        let device = b.gpu.as_ref().map(|g| DeviceMillerLoops(g.executor()));
        if let Some(d) = &device {
            d.0.prepare_pairing()
                .map_err(|e| ZkError::Synthesis(format!("Miller-loop kernel: {e}")))?;
        }
        engines.push((b, device));
    }
    let transfer = sample_transfer(opts.depth)?;
    let pk = pool.install(|| dev_setup(TransferCircuit::blank(opts.depth), b"bench"))?;
    let pvk = prepare(&pk.vk);
    let inputs = transfer.public_inputs().to_field_elements();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let proof = pool.install(|| {
        crate::Groth16Prover::new(CpuProverBackend).prove(&pk, transfer.clone(), &mut rng)
    })?;
    let max = opts.verify_batch_sizes.iter().copied().max().unwrap_or(1);
    let all: Vec<ProofWithInputs> = (0..max)
        .map(|_| ProofWithInputs {
            proof: Groth16::<Bn254>::rerandomize_proof(&pk.vk, &proof, &mut rng),
            inputs: inputs.clone(),
        })
        .collect();
    let mut out = Vec::new();
    let case = format!("transfer-d{}", opts.depth);
    // Checked decoding of the 296-byte payloads (decompression, subgroup checks).
    let encoded: Vec<Vec<u8>> = all
        .iter()
        .map(|p| {
            crate::transfer::PrivacyTransfer {
                proof: p.proof.clone(),
                public: transfer.public_inputs(),
            }
            .encode()
        })
        .collect();
    let ms = pool.install(|| {
        time_reps(opts.reps, || {
            use rayon::prelude::*;
            encoded
                .par_iter()
                .try_for_each(|b| crate::transfer::PrivacyTransfer::decode(b).map(|_| ()))
        })
    })?;
    out.push(record(
        format!("{case}-decode"),
        cpu,
        encoded.len() as u64,
        ms,
        threads,
    ));
    // What the node runs per block: checked decoding in parallel, then the batch check, with
    // the Miller loops on the CPU and on each device (`DeviceMillerLoops`).
    let refs: Vec<&[u8]> = encoded.iter().map(|b| b.as_slice()).collect();
    for (b, device) in &engines {
        let engine = device.as_ref().map(|d| d as &dyn MillerLoops);
        let ms = pool.install(|| {
            time_reps(opts.reps, || {
                let ok = crate::verify::verify_payloads_on(&pvk, &refs, engine)
                    .map_err(ZkError::Synthesis)?;
                if ok.iter().all(|&ok| ok) {
                    Ok(())
                } else {
                    Err(ZkError::Synthesis("bench payloads failed".into()))
                }
            })
        })?;
        out.push(record(
            format!("{case}-verify-payloads"),
            b,
            refs.len() as u64,
            ms,
            threads,
        ));
    }
    // Individual verification of a batch of 64, in parallel.
    let n = all.len().min(64);
    let ms = pool.install(|| {
        time_reps(opts.reps, || {
            use rayon::prelude::*;
            let ok = all[..n]
                .par_iter()
                .all(|p| matches!(verify_proof(&pvk, &p.proof, &p.inputs), Ok(true)));
            if ok {
                Ok(())
            } else {
                Err(ZkError::Synthesis("bench proof failed".into()))
            }
        })
    })?;
    out.push(record(
        format!("{case}-verify-individual"),
        cpu,
        n as u64,
        ms,
        threads,
    ));
    // The device's Miller-loop product alone over the batch's (A, B) pairs: one thread per
    // pair against several (`gpu_miller_product`, the batch check's path).
    for (b, device) in &engines {
        let Some(d) = device else { continue };
        for &size in &opts.verify_batch_sizes {
            let batch = &all[..size.min(all.len())];
            let a: Vec<_> = batch.iter().map(|p| p.proof.a).collect();
            let bb: Vec<_> = batch.iter().map(|p| p.proof.b).collect();
            let segs = gpu_executor::zk::miller_segments_for(a.len());
            for (label, s) in [("1thread".to_string(), 1), (format!("{segs}threads"), segs)] {
                let ms = pool.install(|| {
                    time_reps(opts.reps, || {
                        d.0.gpu_miller_product_segments(&a, &bb, s)
                            .map(|_| ())
                            .map_err(|e| ZkError::Synthesis(e.to_string()))
                    })
                })?;
                out.push(record(
                    format!("{case}-miller-product-{label}"),
                    b,
                    a.len() as u64,
                    ms,
                    threads,
                ));
            }
        }
    }
    // Each proof's A scaled by its weight (the batch check's first step): the CPU's
    // joint GLV double-and-add on all threads, and the device's `scale.cl`.
    for &size in &opts.verify_batch_sizes {
        let a: Vec<_> = all[..size.min(all.len())]
            .iter()
            .map(|p| p.proof.a)
            .collect();
        let weights: Vec<(u64, u64)> = (0..a.len())
            .map(|_| (rng.gen::<u64>() | 1, rng.gen()))
            .collect();
        for (b, device) in &engines {
            let ms = pool.install(|| {
                let chunk = crate::verify::chunk_for(a.len());
                time_reps(opts.reps, || match device {
                    None => {
                        crate::verify::scale_all_on_cpu(&a, &weights, chunk);
                        Ok(())
                    }
                    Some(d) => {
                        d.0.gpu_scale_g1(&a, &weights)
                            .map(|_| ())
                            .map_err(|e| ZkError::Synthesis(e.to_string()))
                    }
                })
            })?;
            out.push(record(
                format!("{case}-scale-a"),
                b,
                a.len() as u64,
                ms,
                threads,
            ));
        }
    }
    for (b, device) in &engines {
        let engine = device.as_ref().map(|d| d as &dyn MillerLoops);
        for &size in &opts.verify_batch_sizes {
            let batch = &all[..size.min(all.len())];
            let ms = pool.install(|| {
                time_reps(opts.reps, || {
                    let o = batch_verify_on(&pvk, batch, engine).map_err(ZkError::Synthesis)?;
                    if o.all_valid() {
                        Ok(())
                    } else {
                        Err(ZkError::Synthesis("bench batch failed".into()))
                    }
                })
            })?;
            out.push(record(
                format!("{case}-verify-batch"),
                b,
                batch.len() as u64,
                ms,
                threads,
            ));
        }
    }
    Ok(out)
}
