use std::sync::Arc;

use ark_bn254::Fr;
use zk_privacy::api::{prove_file, verify_proof, verify_snarkjs_dir, ProveOptions};
use zk_privacy::backend::GpuProverBackend;
use zk_privacy::demo::SquareChainCircuit;
use zk_privacy::service::{ProvingService, ProvingServiceConfig};
use zk_privacy::snarkjs;
use zk_privacy::transfer::{encode_proof, PrivacyTransfer};
use zk_privacy::verify::verify_proof as verify_prepared;
use zk_privacy::{CpuProverBackend, Groth16Prover, ProverBackend, ZkError};

use crate::common::demo_key;

fn pool() -> Arc<rayon::ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap(),
    )
}

#[test]
fn prove_batch_parallel_and_cache() {
    let service = ProvingService::new(
        pool(),
        Arc::new(CpuProverBackend),
        ProvingServiceConfig { cache_capacity: 2 },
    );
    service.register("demo", demo_key().clone()).unwrap();
    let pvk = service.verifying_key("demo").unwrap();
    let circuits: Vec<_> = (0..5u64)
        .map(|i| SquareChainCircuit::new(Fr::from(i + 10), 64))
        .collect();
    let outs = service.prove_batch("demo", circuits.clone()).unwrap();
    assert_eq!(outs.len(), 5);
    for (o, c) in outs.iter().zip(&circuits) {
        let o = o.as_ref().unwrap();
        assert!(!o.cached);
        assert_eq!(o.public_inputs, c.public_inputs());
        assert!(verify_prepared(&pvk, &o.proof, &o.public_inputs).unwrap());
    }
    // The last two are in the cache (capacity 2); the first was evicted.
    let again = service.prove("demo", circuits[4].clone()).unwrap();
    assert!(again.cached);
    assert_eq!(again.proof, outs[4].as_ref().unwrap().proof);
    assert!(!service.prove("demo", circuits[0].clone()).unwrap().cached);
    // A bad instance fails alone; an unknown circuit is an error.
    let mut bad = vec![
        SquareChainCircuit::new(Fr::from(1u64), 64),
        SquareChainCircuit::new(Fr::from(1u64), 63),
    ];
    bad.swap(0, 1);
    let outs = service.prove_batch("demo", bad).unwrap();
    assert!(outs[0].is_err() && outs[1].is_ok());
    assert!(matches!(
        service.prove("nope", circuits[0].clone()),
        Err(ZkError::Config(_))
    ));
    let stats = service.stats();
    assert_eq!(stats.cache_hits, 1);
    assert_eq!(stats.cached_entries, 2);
}

#[test]
fn snarkjs_json_shape_and_round_trip() {
    let pk = demo_key();
    let c = SquareChainCircuit::new(Fr::from(5u64), 64);
    let mut rng = rand::thread_rng();
    let proof = Groth16Prover::new(CpuProverBackend)
        .prove(pk, c.clone(), &mut rng)
        .unwrap();
    let p = snarkjs::proof_json(&proof);
    assert_eq!(p["protocol"], "groth16");
    assert_eq!(p["curve"], "bn128");
    assert_eq!(p["pi_a"].as_array().unwrap().len(), 3);
    assert_eq!(p["pi_a"][2], "1");
    assert_eq!(p["pi_b"][2], serde_json::json!(["1", "0"]));
    assert_eq!(p["pi_b"][0].as_array().unwrap().len(), 2);
    assert_eq!(p["pi_c"][2], "1");
    // Decimal strings of canonical integers; G2 coordinate order c0, c1.
    use ark_ec::AffineRepr;
    let (bx, _) = proof.b.xy().unwrap();
    assert_eq!(p["pi_b"][0][0], bx.c0.to_string());
    assert_eq!(p["pi_b"][0][1], bx.c1.to_string());
    let (ax, ay) = proof.a.xy().unwrap();
    assert_eq!(p["pi_a"][0], ax.to_string());
    assert_eq!(p["pi_a"][1], ay.to_string());
    assert!(p["pi_a"][0]
        .as_str()
        .unwrap()
        .bytes()
        .all(|b| b.is_ascii_digit()));
    let vk = snarkjs::verification_key_json(&pk.vk);
    assert_eq!(vk["nPublic"], 2);
    assert_eq!(vk["IC"].as_array().unwrap().len(), 3);
    assert_eq!(vk["vk_alphabeta_12"].as_array().unwrap().len(), 2);
    assert_eq!(vk["vk_alphabeta_12"][0].as_array().unwrap().len(), 3);
    let public = snarkjs::public_json(&c.public_inputs());
    assert_eq!(public[0], "5");

    assert_eq!(snarkjs::parse_proof(&p).unwrap(), proof);
    assert_eq!(snarkjs::parse_verification_key(&vk).unwrap(), pk.vk);
    assert_eq!(snarkjs::parse_public(&public).unwrap(), c.public_inputs());
    // Checked import: modulus and off-curve values are rejected.
    let modulus = "21888242871839275222246405745257275088548364400416034343698204186575808495617";
    assert!(snarkjs::parse_public(&serde_json::json!([modulus])).is_err());
    let mut off = p.clone();
    off["pi_a"][1] = serde_json::json!("5");
    assert!(snarkjs::parse_proof(&off).is_err());

    let dir = tempfile::tempdir().unwrap();
    snarkjs::export_dir(dir.path(), &pk.vk, &proof, &c.public_inputs()).unwrap();
    assert!(verify_snarkjs_dir(dir.path()).unwrap());
    std::fs::write(dir.path().join("public.json"), "[\"5\", \"6\"]").unwrap();
    assert!(!verify_snarkjs_dir(dir.path()).unwrap());
}

#[test]
fn prove_file_entry_point_for_builtin_circuits() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in.json");
    std::fs::write(&inputs, r#"{"x": "3", "steps": 40}"#).unwrap();
    let out_dir = dir.path().join("snarkjs");
    let opts = ProveOptions {
        seed: Some("t".into()),
        snarkjs_dir: Some(out_dir.clone()),
        ..Default::default()
    };
    let out = prove_file("square-chain", &inputs, &opts).unwrap();
    assert_eq!(out.circuit_id, "square-chain-40");
    assert!(verify_proof(
        &out.verifying_key,
        &encode_proof(&out.proof),
        &out.public_inputs
    )
    .unwrap());
    assert!(verify_snarkjs_dir(&out_dir).unwrap());
    assert_eq!(out.to_json()["proof"].as_str().unwrap().len(), 256);
    // Bad inputs: unknown circuit, malformed JSON, wrong proof length.
    assert!(prove_file("nope", &inputs, &opts).is_err());
    std::fs::write(&inputs, r#"{"x": "abc", "steps": 4}"#).unwrap();
    assert!(prove_file("square-chain", &inputs, &opts).is_err());
    assert!(verify_proof(&out.verifying_key, &[0u8; 10], &out.public_inputs).is_err());

    // The transfer circuit from JSON (small depth keeps the test quick).
    let sk = Fr::from(99u64);
    let pk = zk_privacy::note::public_key(sk);
    let n1 = zk_privacy::note::Note::new(30, pk, Fr::from(1u64));
    let tjson = serde_json::json!({
        "depth": 4,
        "tree_leaves": ["7", n1.commitment().to_string()],
        "inputs": [
            {"spending_key": "99", "value": 30, "rho": "1", "position": 1},
            {"spending_key": "99", "value": 0, "rho": "2"}
        ],
        "outputs": [
            {"value": 20, "owner": pk.to_string(), "rho": "3"},
            {"value": "9", "owner": pk.to_string(), "rho": "4"}
        ],
        "fee": 1
    });
    std::fs::write(&inputs, tjson.to_string()).unwrap();
    let out = prove_file("transfer", &inputs, &ProveOptions::default()).unwrap();
    assert_eq!(out.circuit_id, "transfer-d4");
    // The node derives the same key as the tool.
    let node_key = zk_privacy::api::dev_transfer_key(4, zk_privacy::api::DEFAULT_SEED).unwrap();
    assert_eq!(node_key.vk, out.verifying_key);
    let t = out.transfer.clone().unwrap();
    assert_eq!(PrivacyTransfer::decode(&t.encode()).unwrap(), t);
    assert!(verify_proof(
        &out.verifying_key,
        &encode_proof(&t.proof),
        &t.public.to_field_elements()
    )
    .unwrap());
    // Imbalanced JSON is refused before proving.
    let mut bad = tjson.clone();
    bad["fee"] = serde_json::json!(2);
    std::fs::write(&inputs, bad.to_string()).unwrap();
    assert!(matches!(
        prove_file("transfer", &inputs, &ProveOptions::default()),
        Err(ZkError::Witness(_))
    ));
}

#[test]
fn gpu_backend_equals_cpu_or_skips() {
    // Every MSM / NTT on the device, whatever its size.
    let exec = gpu_executor::zk::ZkExecutor::new(
        &gpu_executor::GpuConfig::default(),
        gpu_executor::zk::ZkConfig::always_gpu(),
    );
    let backend = match exec {
        Ok(e) => GpuProverBackend::new(Arc::new(e)),
        Err(e) => {
            eprintln!("SKIP gpu_backend_equals_cpu: cannot open gpu_executor::zk: {e}");
            return;
        }
    };
    if !backend.has_device() {
        eprintln!("SKIP gpu_backend_equals_cpu: no GPU device (gpu_executor::zk runs on the CPU); checking the fallback path only");
    }
    let pk = demo_key();
    let c = SquareChainCircuit::new(Fr::from(8u64), 64);
    let (r, s) = (Fr::from(1234u64), Fr::from(5678u64));
    let gpu = Groth16Prover::new(backend.clone())
        .prove_with_randomness(pk, c.clone(), r, s)
        .unwrap();
    let cpu = Groth16Prover::new(CpuProverBackend)
        .prove_with_randomness(pk, c, r, s)
        .unwrap();
    assert_eq!(gpu, cpu, "backend {}", backend.name());
}
