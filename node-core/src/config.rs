//! The node's TOML configuration.
//!
//! Small serde structs, one per section, each `#[serde(default, deny_unknown_fields)]`: a
//! missing key takes the default documented on its field (and in `docs/CONFIG.md`), an
//! unknown key or a bad value is an error that names it. [`DEFAULT_CONFIG_TOML`] is the
//! commented file `supervm config --default` prints; a test checks it parses to
//! [`NodeConfig::default`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{NodeError, Result};

/// The whole node configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    pub node: NodeSection,
    pub execution: ExecutionSection,
    pub scheduler: SchedulerSection,
    pub gpu: GpuSection,
    pub metrics: MetricsSection,
    pub privacy: PrivacySection,
    pub dev: DevSection,
}

/// `[node]`: identity and storage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// Directory of the node's database and caches. Default `.dev/supervm`.
    pub data_dir: PathBuf,
    /// Chain id; blocks and transactions of another chain are rejected. Default `1337`.
    pub chain_id: u64,
    /// Database files committed state is spread over when the database is created (see
    /// `vm_state::RedbStore::open_with_shards`); `0` = half the cores, 2 to 8. An existing
    /// database keeps its count. Default `0`.
    pub state_shards: usize,
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".dev/supervm"),
            chain_id: 1337,
            state_shards: 0,
        }
    }
}

/// `[execution]`: the parallel (Block-STM) executor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutionSection {
    /// Worker threads of the executor and of CPU kernels; `0` = one per core. Default `0`.
    pub threads: usize,
    /// Block-STM workers per block, out of `threads`; the other threads of the pool serve
    /// the next block's verification while a block executes. `0` = all. Default `0`.
    pub workers: usize,
    /// Block-STM runs on a pool of its own (`workers` threads, named `blockstm-N`) instead
    /// of the pool that also decodes blocks and prepares signature and proof batches, so
    /// that their jobs never hold a thread a worker is waiting for; the two pools then share
    /// the cores. Default `false` (not yet measured on the GPU host; see
    /// `docs/BENCHMARKS.md`).
    pub own_pool: bool,
    /// Blocks whose transactions all declare their keys run on the keys' dependency graph
    /// instead of Block-STM (`docs/ARCHITECTURE.md`). Default `true`; `false` runs every
    /// block with Block-STM (or sequentially), as before 2026-12-05.
    pub declared_graph: bool,
    /// Most gas all transactions of a block may use together. Default `10_000_000_000`.
    pub block_gas_limit: u64,
    /// Linear-memory limit of one WASM instance, in bytes. Default `16777216` (16 MiB).
    pub wasm_memory_limit: u64,
}

impl Default for ExecutionSection {
    fn default() -> Self {
        Self {
            threads: 0,
            workers: 0,
            own_pool: false,
            declared_graph: true,
            block_gas_limit: 10_000_000_000,
            wasm_memory_limit: 16 * 1024 * 1024,
        }
    }
}

/// How the hybrid scheduler routes batch work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Everything on the CPU.
    CpuOnly,
    /// Every batch kernel on the GPU (CPU when no GPU is present, or on a GPU error).
    GpuOnly,
    /// Per batch, the route with the lower measured cost for that kernel and batch size.
    Auto,
    /// Each batch split between CPU and GPU in proportion to measured throughput.
    LoadBalance,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Strategy::CpuOnly,
        Strategy::GpuOnly,
        Strategy::Auto,
        Strategy::LoadBalance,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Strategy::CpuOnly => "cpu_only",
            Strategy::GpuOnly => "gpu_only",
            Strategy::Auto => "auto",
            Strategy::LoadBalance => "load_balance",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Strategy::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                format!("unknown strategy `{s}`, expected cpu_only, gpu_only, auto or load_balance")
            })
    }
}

/// `[scheduler.thresholds]`: manual GPU crossover batch sizes. A set value makes `auto` send
/// batches of at least that many items of that kernel to the GPU, instead of the measured
/// crossover.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Signature batches (Ed25519). Default unset (measured).
    pub signature_verify: Option<usize>,
    /// Hash batches (transaction hashes, state-root leaves). Default unset (measured).
    pub hash: Option<usize>,
    /// Merkle roots (leaf count). Default unset (measured).
    pub merkle: Option<usize>,
    /// Privacy-proof batch verification. Default unset (measured).
    pub privacy_proof: Option<usize>,
}

/// `[scheduler]`: the hybrid scheduler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerSection {
    /// `cpu_only`, `gpu_only`, `auto` or `load_balance`. Default `auto`.
    pub strategy: Strategy,
    /// Measure CPU and GPU throughput per kernel at start-up. Default `true`.
    pub calibration: bool,
    /// Calibration cache file, relative to `node.data_dir` unless absolute; reused when it
    /// matches the devices found. Empty = no cache. Default `calibration.json`.
    pub calibration_cache: PathBuf,
    /// Weight of a new observation in the moving averages of observed latencies (0 < a <= 1).
    /// Default `0.2`.
    pub ewma_alpha: f64,
    /// Manual crossovers; see [`Thresholds`].
    pub thresholds: Thresholds,
}

impl Default for SchedulerSection {
    fn default() -> Self {
        Self {
            strategy: Strategy::Auto,
            calibration: true,
            calibration_cache: PathBuf::from("calibration.json"),
            ewma_alpha: 0.2,
            thresholds: Thresholds::default(),
        }
    }
}

/// Which GPU backend to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuBackendChoice {
    /// CUDA, then an OpenCL GPU, then none (whatever the binary was built with).
    Auto,
    /// CUDA only (needs the `cuda` feature and libcuda/libnvrtc at run time).
    Cuda,
    /// OpenCL only (needs the `opencl` feature and libOpenCL).
    Opencl,
    /// No GPU: every route is the CPU.
    None,
}

/// `[gpu]`: the GPU executor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuSection {
    /// `auto`, `cuda`, `opencl` or `none`. Default `auto`.
    pub backend: GpuBackendChoice,
    /// Device ids to use (as listed by `supervm devices`); empty = the first device.
    /// Default `[]`.
    pub device_ids: Vec<u32>,
    /// Deadline of one GPU call in milliseconds; a call past it is abandoned and its batch
    /// redone on the CPU (`0` = wait forever). Default `10000`.
    pub timeout_ms: u64,
    /// Threads of the pool that does the CPU side of the GPU's privacy-proof batches
    /// (checked decoding, weights, the final exponentiation), apart from the main pool so
    /// that they do not queue behind a block's execution. `0` = half the node's threads, at
    /// most 8. Built only when a GPU opened. Default `0`.
    pub side_threads: usize,
}

impl Default for GpuSection {
    fn default() -> Self {
        Self {
            backend: GpuBackendChoice::Auto,
            device_ids: Vec::new(),
            timeout_ms: 10_000,
            side_threads: 0,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve Prometheus metrics. Default `false`.
    pub enabled: bool,
    /// Listen address of the endpoint (`GET /metrics`). Default `127.0.0.1:9615`.
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: "127.0.0.1:9615".into(),
        }
    }
}

/// `[privacy]`: Groth16 parameters of the confidential-transfer circuit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacySection {
    /// Proving-key file; empty = deterministic dev parameters from `dev_seed` (UNSAFE for
    /// production). Default empty.
    pub proving_key: PathBuf,
    /// Verifying-key file; empty = derived with the proving key. Default empty.
    pub verifying_key: PathBuf,
    /// Seed of the dev parameters. Default `42`.
    pub dev_seed: u64,
    /// Depth of the note-commitment tree (a chain parameter: circuit and pool). Default `20`.
    pub tree_depth: usize,
}

impl Default for PrivacySection {
    fn default() -> Self {
        Self {
            proving_key: PathBuf::new(),
            verifying_key: PathBuf::new(),
            dev_seed: 42,
            tree_depth: 20,
        }
    }
}

/// `[dev]`: the built-in workload of `supervm run --dev`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevSection {
    /// Pause between produced blocks, in milliseconds (0 = as fast as possible). Default `1000`.
    pub block_interval_ms: u64,
    /// Transactions per block. Default `1000`.
    pub block_txs: usize,
    /// Funded accounts of the dev genesis. Default `1000`.
    pub accounts: usize,
    /// Workload mix, relative weights: native transfers. Default `80`.
    pub transfer_weight: u32,
    /// Token-contract calls. Default `14`.
    pub token_call_weight: u32,
    /// Contract deploys. Default `1`.
    pub deploy_weight: u32,
    /// Privacy (confidential) transfers. Default `5`.
    pub privacy_weight: u32,
    /// Seed of the workload's keys and choices. Default `7`.
    pub seed: u64,
}

impl Default for DevSection {
    fn default() -> Self {
        Self {
            block_interval_ms: 1000,
            block_txs: 1000,
            accounts: 1000,
            transfer_weight: 80,
            token_call_weight: 14,
            deploy_weight: 1,
            privacy_weight: 5,
            seed: 7,
        }
    }
}

/// The commented default configuration (`supervm config --default`).
pub const DEFAULT_CONFIG_TOML: &str = r#"# SuperVM node configuration. Every key is optional; the value shown is the default.
# An unknown key or a bad value is an error. See docs/CONFIG.md.

[node]
# Directory of the node's database (state.redb) and caches.
data_dir = ".dev/supervm"
# Chain id; blocks of another chain are rejected.
chain_id = 1337
# Files committed state is spread over (parallel commits), fixed when the database is
# created; 0 = half the cores, 2 to 8.
state_shards = 0

[execution]
# Worker threads of the parallel executor and CPU kernels; 0 = one per core.
threads = 0
# Block-STM workers per block, out of threads (the others verify the next block
# meanwhile); 0 = all.
workers = 0
# Block-STM on a pool of its own (workers threads) instead of the shared pool.
own_pool = false
# Blocks whose transactions all declare their keys run on the keys' dependency
# graph instead of Block-STM; false = Block-STM for every block.
declared_graph = true
# Most gas all transactions of a block may use together.
block_gas_limit = 10000000000
# Linear-memory limit of one WASM instance, in bytes (16 MiB).
wasm_memory_limit = 16777216

[scheduler]
# cpu_only | gpu_only | auto | load_balance
strategy = "auto"
# Measure CPU and GPU throughput per kernel at start-up (crossover batch sizes).
calibration = true
# Calibration cache, relative to data_dir unless absolute; "" = no cache.
calibration_cache = "calibration.json"
# Weight of a new observation in the moving averages of observed latencies.
ewma_alpha = 0.2

[scheduler.thresholds]
# Manual GPU crossover batch sizes for `auto` (unset = measured). For example:
# signature_verify = 4096
# hash = 65536
# merkle = 65536
# privacy_proof = 16

[gpu]
# auto | cuda | opencl | none
backend = "auto"
# Device ids (see `supervm devices`); empty = the first device.
device_ids = []
# Deadline of one GPU call (ms); past it the batch is redone on the CPU. 0 = no deadline.
timeout_ms = 10000
# Threads for the CPU side of the GPU's privacy-proof batches. 0 = half the threads, at most 8.
side_threads = 0

[metrics]
# Serve Prometheus metrics at http://<listen>/metrics.
enabled = false
listen = "127.0.0.1:9615"

[privacy]
# Groth16 parameter files of the confidential-transfer circuit; "" = deterministic dev
# parameters from dev_seed (UNSAFE for production).
proving_key = ""
verifying_key = ""
dev_seed = 42
# Depth of the note-commitment tree (a chain parameter).
tree_depth = 20

[dev]
# Built-in workload of `supervm run --dev`.
# Pause between blocks in milliseconds (0 = as fast as possible).
block_interval_ms = 1000
# Transactions per block and funded accounts.
block_txs = 1000
accounts = 1000
# Workload mix (relative weights).
transfer_weight = 80
token_call_weight = 14
deploy_weight = 1
privacy_weight = 5
# Seed of the workload's keys and choices.
seed = 7
"#;

/// The machine's available parallelism (1 if unknown).
fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl NodeConfig {
    /// Parses and validates a TOML document; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        let cfg: NodeConfig = toml::from_str(text).map_err(|e| NodeError::Config {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| NodeError::io(path, e))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Checks the values serde cannot (ranges, addresses).
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, message: String| {
            Err(NodeError::ConfigValue {
                key: key.to_string(),
                message,
            })
        };
        if self.node.data_dir.as_os_str().is_empty() {
            return bad("node.data_dir", "must not be empty".into());
        }
        if self.node.state_shards > vm_state::MAX_SHARDS {
            return bad(
                "node.state_shards",
                format!(
                    "{} is more than {}",
                    self.node.state_shards,
                    vm_state::MAX_SHARDS
                ),
            );
        }
        if self.execution.threads > 4096 {
            return bad(
                "execution.threads",
                format!("{} is more than 4096", self.execution.threads),
            );
        }
        if self.gpu.side_threads > 4096 {
            return bad(
                "gpu.side_threads",
                format!("{} is more than 4096", self.gpu.side_threads),
            );
        }
        if self.execution.block_gas_limit == 0 {
            return bad("execution.block_gas_limit", "must be positive".into());
        }
        if self.execution.wasm_memory_limit < 65536 {
            return bad(
                "execution.wasm_memory_limit",
                "must be at least one WASM page (65536)".into(),
            );
        }
        let a = self.scheduler.ewma_alpha;
        if !(a > 0.0 && a <= 1.0) {
            return bad("scheduler.ewma_alpha", format!("{a} is not in (0, 1]"));
        }
        let t = &self.scheduler.thresholds;
        for (k, v) in [
            ("signature_verify", t.signature_verify),
            ("hash", t.hash),
            ("merkle", t.merkle),
            ("privacy_proof", t.privacy_proof),
        ] {
            if v == Some(0) {
                return bad(
                    &format!("scheduler.thresholds.{k}"),
                    "must be at least 1".into(),
                );
            }
        }
        if self.metrics.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "metrics.listen",
                format!(
                    "`{}` is not an address like 127.0.0.1:9615",
                    self.metrics.listen
                ),
            );
        }
        if !(1..=32).contains(&self.privacy.tree_depth) {
            return bad(
                "privacy.tree_depth",
                format!("{} is not in 1..=32", self.privacy.tree_depth),
            );
        }
        let d = &self.dev;
        if d.block_txs == 0 {
            return bad("dev.block_txs", "must be at least 1".into());
        }
        if d.accounts < 2 {
            return bad("dev.accounts", "must be at least 2".into());
        }
        if d.transfer_weight + d.token_call_weight + d.deploy_weight + d.privacy_weight == 0 {
            return bad(
                "dev.transfer_weight",
                "all workload weights are zero".into(),
            );
        }
        Ok(())
    }

    /// The shard count of a new database (`node.state_shards`, 0 = half the cores, 2 to 8).
    pub fn state_shards(&self) -> usize {
        if self.node.state_shards == 0 {
            (cores() / 2).clamp(2, 8)
        } else {
            self.node.state_shards
        }
    }

    /// Block-STM workers per block (`execution.workers`, 0 = all threads; at most
    /// [`NodeConfig::threads`]).
    pub fn workers(&self) -> usize {
        let t = self.threads();
        match self.execution.workers {
            0 => t,
            w => w.min(t),
        }
    }

    /// Threads of the GPU side pool (`[gpu] side_threads`, `0` = half of [`Self::threads`],
    /// at most 8).
    pub fn gpu_side_threads(&self) -> usize {
        if self.gpu.side_threads == 0 {
            (self.threads() / 2).clamp(1, 8)
        } else {
            self.gpu.side_threads
        }
    }

    /// The number of worker threads (`execution.threads`, 0 = available parallelism).
    pub fn threads(&self) -> usize {
        if self.execution.threads == 0 {
            cores()
        } else {
            self.execution.threads
        }
    }

    /// `path` resolved against `node.data_dir` unless absolute.
    pub fn in_data_dir(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.node.data_dir.join(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_toml_is_the_default_config() {
        let cfg = NodeConfig::from_toml_str(DEFAULT_CONFIG_TOML, "default").unwrap();
        assert_eq!(cfg, NodeConfig::default());
    }

    #[test]
    fn empty_file_is_the_default_config() {
        assert_eq!(
            NodeConfig::from_toml_str("", "empty").unwrap(),
            NodeConfig::default()
        );
    }

    /// The error a config text is rejected with.
    fn rejected(text: &str) -> String {
        NodeConfig::from_toml_str(text, "x.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_key_is_named() {
        let e = rejected("[scheduler]\nstratgy = \"auto\"\n");
        assert!(e.contains("stratgy"), "{e}");
        let e = rejected("[nodes]\n");
        assert!(e.contains("nodes"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = rejected("[scheduler]\nstrategy = \"fastest\"\n");
        assert!(e.contains("fastest"), "{e}");
        let e = rejected("[gpu]\nbackend = \"vulkan\"\n");
        assert!(e.contains("vulkan"), "{e}");
        let e = rejected("[metrics]\nlisten = \"nowhere\"\n");
        assert!(e.contains("metrics.listen"), "{e}");
        let e = rejected("[scheduler]\newma_alpha = 2.0\n");
        assert!(e.contains("scheduler.ewma_alpha"), "{e}");
        let e = rejected("[execution]\nthreads = -1\n");
        assert!(e.contains("threads"), "{e}");
        let e = rejected("[node]\nstate_shards = 65\n");
        assert!(e.contains("node.state_shards"), "{e}");
    }

    #[test]
    fn workers_and_shards_resolve() {
        let cfg =
            NodeConfig::from_toml_str("[execution]\nthreads = 8\nworkers = 20\n", "x").unwrap();
        assert_eq!(cfg.workers(), 8, "at most the pool's threads");
        let cfg =
            NodeConfig::from_toml_str("[execution]\nthreads = 8\nworkers = 6\n", "x").unwrap();
        assert_eq!(cfg.workers(), 6);
        let cfg = NodeConfig::from_toml_str("[execution]\nthreads = 8\n", "x").unwrap();
        assert_eq!(cfg.workers(), 8, "0 = all");
        let auto = NodeConfig::default().state_shards();
        assert!((2..=8).contains(&auto), "{auto}");
        let one = NodeConfig::from_toml_str("[node]\nstate_shards = 1\n", "x").unwrap();
        assert_eq!(one.state_shards(), 1);
        let cfg = NodeConfig::from_toml_str("[execution]\nthreads = 16\n", "x").unwrap();
        assert_eq!(cfg.gpu_side_threads(), 8, "0 = half the threads, at most 8");
        let cfg = NodeConfig::from_toml_str("[execution]\nthreads = 1\n", "x").unwrap();
        assert_eq!(cfg.gpu_side_threads(), 1);
        let cfg = NodeConfig::from_toml_str("[gpu]\nside_threads = 12\n", "x").unwrap();
        assert_eq!(cfg.gpu_side_threads(), 12);
    }

    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../docs/CONFIG.md");
        let v: toml::Value = toml::from_str(DEFAULT_CONFIG_TOML).unwrap();
        let mut keys = vec![
            "signature_verify".to_string(),
            "hash".into(),
            "merkle".into(),
            "privacy_proof".into(),
        ];
        for (section, table) in v.as_table().unwrap() {
            assert!(doc.contains(&format!("[{section}]")), "section {section}");
            for (k, v) in table.as_table().unwrap() {
                if !v.is_table() {
                    keys.push(k.clone());
                }
            }
        }
        for k in keys {
            assert!(
                doc.contains(&format!("`{k}`")),
                "key {k} missing in docs/CONFIG.md"
            );
        }
    }
}
