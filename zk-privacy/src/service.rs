//! The proving service: registered circuits (one set-up each), batch proving with shared
//! constraint matrices, parallel proving of independent proofs on an explicit rayon pool,
//! and an LRU cache of proofs keyed by (circuit id, public inputs, witness hash).

use std::collections::HashMap;
use std::sync::Arc;

use ark_bn254::{Bn254, Fr};
use ark_groth16::{PreparedVerifyingKey, Proof, ProvingKey};
use ark_relations::r1cs::{ConstraintMatrices, ConstraintSynthesizer};
use ark_std::UniformRand;
use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::backend::ProverBackend;
use crate::error::{Result, ZkError};
use crate::prover::{create_proof, synthesize, Synthesized};
use crate::transfer::encode_fr;
use crate::verify::prepare;

/// Service configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvingServiceConfig {
    /// Proofs kept in the LRU cache (0 disables it). Default 1024.
    pub cache_capacity: usize,
}

impl Default for ProvingServiceConfig {
    fn default() -> Self {
        Self {
            cache_capacity: 1024,
        }
    }
}

/// The cache key: circuit id, public inputs, SHA-256 of the full witness.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProofCacheKey {
    pub circuit_id: String,
    pub public_inputs: Vec<[u8; 32]>,
    pub witness_hash: [u8; 32],
}

impl ProofCacheKey {
    fn of(circuit_id: &str, w: &Synthesized) -> Self {
        let mut h = Sha256::new();
        for x in &w.assignment[w.num_inputs..] {
            h.update(encode_fr(x));
        }
        Self {
            circuit_id: circuit_id.to_string(),
            public_inputs: w.public_inputs().iter().map(encode_fr).collect(),
            witness_hash: h.finalize().into(),
        }
    }
}

/// A least-recently-used map with O(log n) operations.
#[derive(Debug)]
struct Lru<K, V> {
    capacity: usize,
    tick: u64,
    map: HashMap<K, (u64, V)>,
    order: std::collections::BTreeMap<u64, K>,
}

impl<K: Clone + Eq + std::hash::Hash, V: Clone> Lru<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tick: 0,
            map: HashMap::new(),
            order: std::collections::BTreeMap::new(),
        }
    }
    fn get(&mut self, k: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        let (t, v) = self.map.get_mut(k)?;
        self.order.remove(t);
        *t = tick;
        self.order.insert(tick, k.clone());
        Some(v.clone())
    }
    fn put(&mut self, k: K, v: V) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        if let Some((t, _)) = self.map.remove(&k) {
            self.order.remove(&t);
        }
        while self.map.len() >= self.capacity {
            let Some((_, old)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&old);
        }
        self.order.insert(self.tick, k.clone());
        self.map.insert(k, (self.tick, v));
    }
    fn len(&self) -> usize {
        self.map.len()
    }
}

struct CircuitEntry {
    pk: Arc<ProvingKey<Bn254>>,
    pvk: Arc<PreparedVerifyingKey<Bn254>>,
    matrices: Mutex<Option<Arc<ConstraintMatrices<Fr>>>>,
}

/// One proof out of the service.
#[derive(Clone, Debug, PartialEq)]
pub struct ProofOutput {
    pub proof: Proof<Bn254>,
    pub public_inputs: Vec<Fr>,
    /// Whether the proof came from the cache.
    pub cached: bool,
}

/// Counters of the service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    pub proofs: u64,
    pub cache_hits: u64,
    pub cached_entries: usize,
}

/// The proving service.
pub struct ProvingService {
    pool: Arc<rayon::ThreadPool>,
    backend: Arc<dyn ProverBackend>,
    circuits: RwLock<HashMap<String, Arc<CircuitEntry>>>,
    cache: Mutex<Lru<ProofCacheKey, Proof<Bn254>>>,
    stats: Mutex<ServiceStats>,
}

impl ProvingService {
    /// A service proving on `pool` through `backend`.
    pub fn new(
        pool: Arc<rayon::ThreadPool>,
        backend: Arc<dyn ProverBackend>,
        config: ProvingServiceConfig,
    ) -> Self {
        Self {
            pool,
            backend,
            circuits: RwLock::new(HashMap::new()),
            cache: Mutex::new(Lru::new(config.cache_capacity)),
            stats: Mutex::new(ServiceStats::default()),
        }
    }

    /// Registers a circuit's proving key under `id` (replacing an earlier one) and lets the
    /// backend preload it (GPU: fixed bases resident on the device).
    pub fn register(&self, id: &str, pk: ProvingKey<Bn254>) -> Result<()> {
        let pvk = Arc::new(prepare(&pk.vk));
        let pk = Arc::new(pk);
        self.backend.preload_key(&pk)?;
        self.circuits.write().insert(
            id.to_string(),
            Arc::new(CircuitEntry {
                pk,
                pvk,
                matrices: Mutex::new(None),
            }),
        );
        Ok(())
    }

    fn entry(&self, id: &str) -> Result<Arc<CircuitEntry>> {
        self.circuits
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| ZkError::Config(format!("no circuit registered as {id:?}")))
    }

    /// The prepared verifying key of a registered circuit.
    pub fn verifying_key(&self, id: &str) -> Result<Arc<PreparedVerifyingKey<Bn254>>> {
        Ok(self.entry(id)?.pvk.clone())
    }

    /// The proving key of a registered circuit.
    pub fn proving_key(&self, id: &str) -> Result<Arc<ProvingKey<Bn254>>> {
        Ok(self.entry(id)?.pk.clone())
    }

    pub fn stats(&self) -> ServiceStats {
        let mut s = *self.stats.lock();
        s.cached_entries = self.cache.lock().len();
        s
    }

    fn synthesize_with_shared_matrices<C: ConstraintSynthesizer<Fr>>(
        entry: &CircuitEntry,
        circuit: C,
    ) -> Result<Synthesized> {
        let shared = entry.matrices.lock().clone();
        let w = synthesize(circuit, shared.clone())?;
        if shared.is_none() {
            *entry.matrices.lock() = Some(w.matrices.clone());
        }
        Ok(w)
    }

    /// Proves one instance (or finds it in the cache). A fresh proof comes back with the
    /// key to cache it under; the caller inserts it, so a batch proved in parallel fills the
    /// LRU cache in input order.
    fn prove_one<C: ConstraintSynthesizer<Fr>>(
        &self,
        id: &str,
        entry: &CircuitEntry,
        circuit: C,
    ) -> Result<(ProofOutput, Option<ProofCacheKey>)> {
        let w = Self::synthesize_with_shared_matrices(entry, circuit)?;
        let key = ProofCacheKey::of(id, &w);
        if let Some(proof) = self.cache.lock().get(&key) {
            self.stats.lock().cache_hits += 1;
            let out = ProofOutput {
                proof,
                public_inputs: w.public_inputs().to_vec(),
                cached: true,
            };
            return Ok((out, None));
        }
        let mut rng = rand::thread_rng();
        let r = Fr::rand(&mut rng);
        let s = Fr::rand(&mut rng);
        let proof = create_proof(self.backend.as_ref(), &entry.pk, r, s, &w)?;
        self.stats.lock().proofs += 1;
        let out = ProofOutput {
            proof,
            public_inputs: w.public_inputs().to_vec(),
            cached: false,
        };
        Ok((out, Some(key)))
    }

    /// Caches a fresh proof and hands the output on.
    fn cache_fresh(&self, r: Result<(ProofOutput, Option<ProofCacheKey>)>) -> Result<ProofOutput> {
        let (out, key) = r?;
        if let Some(key) = key {
            self.cache.lock().put(key, out.proof.clone());
        }
        Ok(out)
    }

    /// Proves one circuit instance of the registered circuit `id`.
    pub fn prove<C: ConstraintSynthesizer<Fr> + Send>(
        &self,
        id: &str,
        circuit: C,
    ) -> Result<ProofOutput> {
        let entry = self.entry(id)?;
        let r = self.pool.install(|| self.prove_one(id, &entry, circuit));
        self.cache_fresh(r)
    }

    /// Proves many instances of one registered circuit: one set-up, constraint matrices
    /// built once and shared, proofs computed in parallel on the service's pool. Results
    /// are in input order; one failing instance does not stop the others.
    pub fn prove_batch<C: ConstraintSynthesizer<Fr> + Send>(
        &self,
        id: &str,
        circuits: Vec<C>,
    ) -> Result<Vec<Result<ProofOutput>>> {
        let entry = self.entry(id)?;
        let mut circuits = circuits.into_iter();
        let mut out = Vec::with_capacity(circuits.len());
        // The first instance builds the shared matrices (if not yet built).
        if entry.matrices.lock().is_none() {
            if let Some(first) = circuits.next() {
                let r = self.pool.install(|| self.prove_one(id, &entry, first));
                out.push(self.cache_fresh(r));
            }
        }
        let rest: Vec<C> = circuits.collect();
        let proved: Vec<_> = self.pool.install(|| {
            rest.into_par_iter()
                .map(|c| self.prove_one(id, &entry, c))
                .collect()
        });
        out.extend(proved.into_iter().map(|r| self.cache_fresh(r)));
        Ok(out)
    }
}
