//! SuperVM L4 node: the hybrid scheduler, the block pipeline, config and metrics.
//!
//! - [`config`]: the TOML configuration (`docs/CONFIG.md`).
//! - [`scheduler`]: [`scheduler::HybridScheduler`], routing batch kernels (signatures,
//!   hashing, Merkle roots, privacy proofs) between the CPU and a GPU by strategy and
//!   measured cost; [`calibration`] measures those costs at start-up (cached on disk).
//! - [`kernels`] (CPU reference backend) and [`gpu`] (GPU executor backend, opening devices
//!   per `[gpu]`).
//! - [`block`]: blocks and the block file format (`docs/BLOCK_FORMAT.md`).
//! - [`exec`]: the node's transaction executor (WASM VM + privacy-pool rules).
//! - [`pipeline`]: [`pipeline::Node`], the block pipeline (decode, tx root, signatures,
//!   proofs, Block-STM execution, state root, atomic commit, metrics).
//! - [`workload`]: the dev workload of `supervm run --dev` and `supervm generate`.
//! - [`metrics`]: the Prometheus endpoint.
pub mod bench;
pub mod block;
pub mod calibration;
pub mod config;
pub mod cputime;
pub mod error;
pub mod exec;
pub mod gpu;
pub mod kernels;
pub mod metrics;
pub mod pipeline;
pub mod scheduler;
pub mod watchdog;
pub mod workload;

pub use error::{NodeError, Result};
pub use gpu::{build_scheduler, open_backends};
pub use pipeline::Node;
pub use scheduler::HybridScheduler;

use std::sync::Arc;

/// Opens the backends, builds and calibrates the scheduler (`strategy`, or the config's),
/// and returns a node over `store`.
pub fn open_node(
    cfg: &config::NodeConfig,
    store: Arc<dyn vm_state::StateStore>,
    strategy: Option<config::Strategy>,
) -> Result<Node> {
    let backends = open_backends(cfg)?;
    open_node_with(cfg, store, strategy, &backends)
}

/// As [`open_node`], on backends opened before (benchmarks reuse one set).
pub fn open_node_with(
    cfg: &config::NodeConfig,
    store: Arc<dyn vm_state::StateStore>,
    strategy: Option<config::Strategy>,
    backends: &gpu::Backends,
) -> Result<Node> {
    let strategy = strategy.unwrap_or(cfg.scheduler.strategy);
    let vm = pipeline::build_vm(cfg)?;
    let sched = build_scheduler(cfg, backends, strategy);
    let wasm = vm_runtime::WasmEngine::new(vm.clone(), sched.speedups());
    let sched = sched.with_contract_engine(Arc::new(wasm));
    if cfg.scheduler.calibration && strategy != config::Strategy::CpuOnly {
        let cache = calibration_cache(cfg);
        calibration::calibrate(&sched, cache.as_deref());
        // Privacy proofs too when the keys are loaded already (a benchmark); otherwise the
        // node does it when it loads them (`Node::privacy_keys`).
        calibration::calibrate_proofs(&sched, cache.as_deref());
    }
    Node::new(
        cfg.clone(),
        store,
        Arc::new(sched),
        backends.pool.clone(),
        backends.privacy.clone(),
        vm,
    )
}

/// The calibration cache's path (`scheduler.calibration_cache` under `data_dir`), `None`
/// when caching is off.
pub fn calibration_cache(cfg: &config::NodeConfig) -> Option<std::path::PathBuf> {
    (!cfg.scheduler.calibration_cache.as_os_str().is_empty())
        .then(|| cfg.in_data_dir(&cfg.scheduler.calibration_cache))
}

/// Opens (creating if needed, with `node.state_shards` shards) the node's database
/// `state.redb` under `data_dir`.
pub fn open_store(cfg: &config::NodeConfig) -> Result<Arc<dyn vm_state::StateStore>> {
    let dir = &cfg.node.data_dir;
    std::fs::create_dir_all(dir).map_err(|e| NodeError::io(dir, e))?;
    let path = dir.join("state.redb");
    let store = vm_state::RedbStore::open_with_shards(&path, cfg.state_shards())
        .map_err(|e| NodeError::Store(format!("{}: {e}", path.display())))?;
    Ok(Arc::new(store))
}
