//! Where a depth-20 transfer proof spends its time (synthesis, QAP, MSMs), on the CPU
//! backend: `cargo run --release -p zk-privacy --example prove_profile [depth]`.

use std::time::Instant;

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use zk_privacy::circuit::TransferCircuit;
use zk_privacy::prover::{create_proof, synthesize, witness_map};
use zk_privacy::{CpuProverBackend, ProverBackend};

/// Prints the duration of every backend call.
struct Timed;

macro_rules! timed {
    ($name:expr, $len:expr, $e:expr) => {{
        let t = Instant::now();
        let r = $e;
        println!("  {} ({}): {:?}", $name, $len, t.elapsed());
        r
    }};
}

impl ProverBackend for Timed {
    fn name(&self) -> &str {
        "timed-cpu"
    }
    fn msm_g1(&self, b: &[G1Affine], s: &[Fr]) -> zk_privacy::Result<G1Projective> {
        timed!("msm_g1", b.len(), CpuProverBackend.msm_g1(b, s))
    }
    fn msm_g2(&self, b: &[G2Affine], s: &[Fr]) -> zk_privacy::Result<G2Projective> {
        timed!("msm_g2", b.len(), CpuProverBackend.msm_g2(b, s))
    }
    fn ntt(&self, v: &mut Vec<Fr>) -> zk_privacy::Result<()> {
        timed!("ntt", v.len(), CpuProverBackend.ntt(v))
    }
    fn intt(&self, v: &mut Vec<Fr>) -> zk_privacy::Result<()> {
        timed!("intt", v.len(), CpuProverBackend.intt(v))
    }
    fn coset_ntt(&self, v: &mut Vec<Fr>, g: Fr) -> zk_privacy::Result<()> {
        timed!("coset_ntt", v.len(), CpuProverBackend.coset_ntt(v, g))
    }
    fn coset_intt(&self, v: &mut Vec<Fr>, g: Fr) -> zk_privacy::Result<()> {
        timed!("coset_intt", v.len(), CpuProverBackend.coset_intt(v, g))
    }
}

fn main() -> anyhow::Result<()> {
    let depth: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let circuit = zk_privacy::bench::sample_transfer(depth)?;
    let t = Instant::now();
    let pk = zk_privacy::setup::dev_setup(TransferCircuit::blank(depth), b"profile")?;
    println!("setup: {:?}", t.elapsed());
    let t = Instant::now();
    let w = synthesize(circuit.clone(), None)?;
    println!(
        "synthesize (with matrices): {:?}, {} constraints",
        t.elapsed(),
        w.num_constraints
    );
    let t = Instant::now();
    let w2 = synthesize(circuit, Some(w.matrices.clone()))?;
    println!("synthesize (shared matrices): {:?}", t.elapsed());
    let t = Instant::now();
    let h = witness_map(
        &CpuProverBackend,
        &w2.matrices,
        w2.num_inputs,
        &w2.assignment,
    )?;
    println!("witness map (7 NTTs of {}): {:?}", h.len(), t.elapsed());
    let t = Instant::now();
    let _ = create_proof(&Timed, &pk, Fr::from(1u64), Fr::from(2u64), &w2)?;
    println!("create_proof (QAP + 5 MSMs): {:?}", t.elapsed());
    Ok(())
}
