//! `supervm`: the SuperVM node and its tools. `supervm --help` lists the commands.

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use node_core::block::{BlockFileReader, BlockFileWriter};
use node_core::config::{NodeConfig, Strategy, DEFAULT_CONFIG_TOML};
use node_core::workload::{DevWorkload, PrivacyProver};
use node_core::{open_node, open_store, Node};

/// mimalloc: Block-STM and the VM allocate small objects from many threads at once, and
/// malloc/free was 20-45% of instructions under the system allocator (callgrind).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "supervm",
    version,
    about = "SuperVM node: hybrid CPU/GPU blockchain execution"
)]
struct Cli {
    /// Node configuration (TOML, see docs/CONFIG.md); defaults apply without it.
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the node; `--dev` produces blocks from the built-in workload.
    Run {
        /// Produce blocks from the built-in dev workload.
        #[arg(long)]
        dev: bool,
        /// Stop after this many produced blocks (dev mode).
        #[arg(long)]
        blocks: Option<u64>,
        /// Override `scheduler.strategy`.
        #[arg(long)]
        strategy: Option<Strategy>,
    },
    /// Imports a block file (docs/BLOCK_FORMAT.md), resuming after the last committed block.
    Import {
        file: PathBuf,
        /// Override `scheduler.strategy`.
        #[arg(long)]
        strategy: Option<Strategy>,
    },
    /// Writes a block file from the dev workload (`[dev]` of the config).
    Generate {
        /// Output file.
        #[arg(long, short = 'o')]
        out: PathBuf,
        /// Blocks to write.
        #[arg(long, default_value_t = 10)]
        blocks: u64,
        /// Transactions per block (default `dev.block_txs`).
        #[arg(long)]
        txs: Option<usize>,
    },
    /// Queries committed state.
    State {
        #[command(subcommand)]
        what: StateCmd,
    },
    /// Lists GPU devices and backend status.
    Devices,
    /// Prints configuration.
    Config {
        /// Print the commented default configuration.
        #[arg(long)]
        default: bool,
    },
    /// Hashes hex messages (one per line on stdin), printing hex digests.
    Hash {
        #[arg(long, default_value = "sha256")]
        algo: String,
        #[arg(long, default_value = "auto")]
        backend: String,
    },
    /// Merkle root of hex 32-byte leaves (one per line on stdin).
    Merkle {
        #[arg(long, default_value = "sha256")]
        algo: String,
        #[arg(long, default_value = "auto")]
        backend: String,
    },
    /// Verifies signatures given as JSON lines on stdin.
    Verify {
        #[arg(long, default_value = "ed25519")]
        scheme: String,
        #[arg(long, default_value = "auto")]
        backend: String,
    },
    /// Proves a built-in circuit with inputs from a JSON file.
    Prove {
        /// `square-chain` or `transfer`.
        #[arg(long)]
        circuit: String,
        /// Inputs (JSON).
        #[arg(long)]
        inputs: PathBuf,
        /// Dev-setup seed.
        #[arg(long)]
        seed: Option<String>,
        /// Proving-key file instead of dev parameters.
        #[arg(long)]
        params: Option<PathBuf>,
        /// Also write snarkjs proof.json, public.json, verification_key.json here.
        #[arg(long)]
        snarkjs_dir: Option<PathBuf>,
    },
    /// Verifies a snarkjs proof directory (proof.json, public.json, verification_key.json).
    VerifyProof { dir: PathBuf },
    /// Runs a benchmark suite: hash, merkle, ed25519, secp256k1, msm, ntt, groth16,
    /// execution, node.
    Bench {
        suite: String,
        /// Write the records as JSON (one object per measurement).
        #[arg(long)]
        json: Option<PathBuf>,
        /// `node` suite: blocks per strategy.
        #[arg(long, default_value_t = 3)]
        blocks: u64,
        /// `node` suite: transactions per block.
        #[arg(long, default_value_t = 10_000)]
        txs: usize,
        /// `node` suite: percent of privacy transfers (token calls stay 15%).
        #[arg(long, default_value_t = 5)]
        privacy_percent: u32,
    },
}

#[derive(Subcommand)]
enum StateCmd {
    /// Native balance and nonce of an address (40 hex digits).
    Balance { address: String },
    /// A contract's storage value: address and key in hex.
    Storage { contract: String, key: String },
    /// Latest height, block hash and state root.
    Head,
}

fn load_config(arg: &Option<PathBuf>) -> Result<NodeConfig> {
    match arg {
        Some(p) => Ok(NodeConfig::load(p)?),
        None => Ok(NodeConfig::default()),
    }
}

fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let res = ctrlc::set_handler(move || {
        if s.swap(true, Ordering::SeqCst) {
            eprintln!("second interrupt: exiting now");
            std::process::exit(130);
        }
        eprintln!("stopping after the current block (Ctrl-C again to exit at once)");
    });
    if let Err(e) = res {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
    stop
}

fn start_metrics(cfg: &NodeConfig) -> Result<()> {
    if cfg.metrics.enabled {
        node_core::metrics::install(&cfg.metrics.listen)?;
        eprintln!("metrics: http://{}/metrics", cfg.metrics.listen);
    }
    Ok(())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn describe(node: &Node) {
    let s = node.scheduler();
    eprintln!(
        "scheduler: strategy={} cpu=[{}] gpu=[{}]",
        s.strategy().name(),
        s.cpu_kernels().name(),
        s.gpu_name().unwrap_or_else(|| "none".into())
    );
}

fn run(cfg: NodeConfig, dev: bool, blocks: Option<u64>, strategy: Option<Strategy>) -> Result<()> {
    start_metrics(&cfg)?;
    let stop = stop_flag();
    let store = open_store(&cfg)?;
    let node = open_node(&cfg, store, strategy)?;
    describe(&node);
    let mut workload = DevWorkload::new(&cfg.dev, cfg.node.chain_id);
    // In dev mode the genesis is the workload's (checked against a non-empty database).
    let (height, hash, root) = match node.head()? {
        _ if dev => node.init_genesis(&workload.genesis())?,
        Some(h) => h,
        None => {
            eprintln!("no genesis committed: import a block file or use --dev");
            (0, [0; 32], [0; 32])
        }
    };
    eprintln!(
        "head: height {height} state root {} (data dir {})",
        hex::encode(root),
        cfg.node.data_dir.display()
    );
    if !dev {
        eprintln!("no block source without --dev; serving until Ctrl-C");
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
        return Ok(());
    }
    let nonces = node.nonces(workload.addresses())?;
    workload.resume(height, hash, nonces);
    workload.set_privacy_room(Some(node.privacy_transfers_left()?));
    // Privacy transfers are proved on a background thread (proving is the wallet's work,
    // not the node's) and included as they become ready.
    let want_privacy = workload.privacy_share(cfg.dev.block_txs);
    let (ptx, prx) = mpsc::sync_channel::<Vec<u8>>(want_privacy.max(1));
    let prover_stop = Arc::new(AtomicBool::new(false));
    let root_cell = Arc::new(parking_lot::Mutex::new(node.privacy_root()?));
    if want_privacy > 0 {
        {
            eprintln!(
                "preparing privacy parameters (created and cached in the data dir on first run)"
            );
            let pk = node.privacy_proving_key()?;
            let prover = PrivacyProver {
                pk,
                depth: cfg.privacy.tree_depth,
            };
            let ps = prover_stop.clone();
            let rc = root_cell.clone();
            let seed = cfg.dev.seed;
            std::thread::Builder::new()
                .name("dev-prover".into())
                .spawn(move || {
                    use rand::SeedableRng;
                    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed ^ now_secs());
                    while !ps.load(Ordering::Relaxed) {
                        let root = *rc.lock();
                        match prover.make_payload(root, &mut rng) {
                            Ok(p) => {
                                if ptx.send(p).is_err() {
                                    break;
                                }
                            }
                            Err(e) => {
                                tracing::warn!("dev prover: {e}");
                                break;
                            }
                        }
                    }
                })
                .context("starting the dev prover")?;
        }
    }
    let interval = Duration::from_millis(cfg.dev.block_interval_ms);
    let n_txs = cfg.dev.block_txs;
    let limit = blocks.unwrap_or(u64::MAX);
    let mut produced = 0u64;
    let stop_ref: &AtomicBool = &stop;
    let mut last = Instant::now() - interval;
    let source = std::iter::from_fn(move || {
        if produced >= limit {
            return None;
        }
        // Sleep out the block interval, waking for Ctrl-C.
        while last.elapsed() < interval {
            if stop_ref.load(Ordering::Relaxed) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20).min(interval - last.elapsed()));
        }
        last = Instant::now();
        while let Ok(p) = prx.try_recv() {
            workload.push_privacy(p);
        }
        produced += 1;
        Some(Ok(workload.next_block(n_txs, now_secs())))
    });
    println!("height txs privacy failed tps total_ms stages(ms@route) state_root");
    let node_ref = &node;
    let committed = node.import(source, &stop, |rep| {
        println!("{}", rep.line());
        if let Ok(r) = node_ref.privacy_root() {
            *root_cell.lock() = r;
        }
    })?;
    prover_stop.store(true, Ordering::Relaxed);
    let (h, _, root) = node.head()?.unwrap_or((0, [0; 32], [0; 32]));
    eprintln!(
        "stopped: {committed} blocks produced, head {h}, state root {}",
        hex::encode(root)
    );
    print_routes(&node);
    node.save_learned_costs();
    Ok(())
}

fn print_routes(node: &Node) {
    let s = node.scheduler();
    for r in s.route_stats() {
        eprintln!(
            "route {:?}/{}: {} batches, {} items, {:.1} ms",
            r.task,
            r.route.name(),
            r.batches,
            r.items,
            r.total_ms
        );
    }
    eprintln!("gpu fallbacks: {}", s.fallbacks());
}

fn import(cfg: NodeConfig, file: &Path, strategy: Option<Strategy>) -> Result<()> {
    start_metrics(&cfg)?;
    let stop = stop_flag();
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let (mut reader, genesis) = BlockFileReader::open(BufReader::new(f))?;
    let store = open_store(&cfg)?;
    let node = open_node(&cfg, store, strategy)?;
    describe(&node);
    let (start, _, _) = node.init_genesis(&genesis)?;
    eprintln!("importing {} from height {}", file.display(), start + 1);
    // Skip what is committed already (a restart resumes here).
    let blocks = std::iter::from_fn(move || loop {
        match reader.next_block() {
            Ok(Some(b)) if b.header.height <= start => continue,
            Ok(Some(b)) => return Some(Ok(b)),
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        }
    });
    let t = Instant::now();
    let mut last_print = Instant::now();
    let mut txs = 0usize;
    let mut count = 0u64;
    let result = node.import(blocks, &stop, |rep| {
        txs += rep.txs;
        count += 1;
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            eprintln!(
                "imported {count} blocks, height {}, {txs} txs, {:.0} tx/s",
                rep.height,
                txs as f64 / t.elapsed().as_secs_f64()
            );
        }
    });
    let (h, hash, root) = node.head()?.unwrap_or((0, [0; 32], [0; 32]));
    println!(
        "imported {count} blocks ({txs} txs) in {:.2}s; head {h} hash {} state root {}",
        t.elapsed().as_secs_f64(),
        hex::encode(hash),
        hex::encode(root)
    );
    print_routes(&node);
    node.save_learned_costs();
    result?;
    Ok(())
}

fn generate(cfg: NodeConfig, out: &Path, blocks: u64, txs: Option<usize>) -> Result<()> {
    let n = txs.unwrap_or(cfg.dev.block_txs);
    let mut workload = DevWorkload::new(&cfg.dev, cfg.node.chain_id);
    // The note tree of a fresh chain holds 2^depth notes, two per transfer.
    workload.set_privacy_room(Some((1u64 << cfg.privacy.tree_depth.min(63)) / 2));
    let genesis = workload.genesis();
    let per_block = workload.privacy_share(n);
    let prover = if per_block > 0 {
        let keys = node_core::pipeline::load_privacy_keys(&cfg, true)?;
        keys.pk.map(|pk| PrivacyProver {
            pk,
            depth: cfg.privacy.tree_depth,
        })
    } else {
        None
    };
    let f = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = BlockFileWriter::new(BufWriter::new(f), &genesis)?;
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(cfg.dev.seed);
    // Privacy transfers reference the empty tree's root, recent until
    // PRIVACY_RECENT_ROOTS blocks have appended notes (one root per block).
    let empty_root = zk_privacy::tree::empty_root(cfg.privacy.tree_depth);
    for i in 0..blocks {
        if let Some(p) = &prover {
            if i + 1 < node_core::pipeline::PRIVACY_RECENT_ROOTS as u64 {
                for _ in 0..per_block {
                    workload.push_privacy(p.make_payload(empty_root, &mut rng)?);
                }
            }
        }
        let b = workload.next_block(n, 1_700_000_000 + i);
        w.write_block(&b)?;
    }
    w.finish()?;
    eprintln!(
        "wrote {blocks} blocks of {n} transactions to {}",
        out.display()
    );
    Ok(())
}

fn parse_hex<const N: usize>(s: &str, what: &str) -> Result<[u8; N]> {
    let v =
        hex::decode(s.trim_start_matches("0x")).with_context(|| format!("{what} is not hex"))?;
    v.as_slice()
        .try_into()
        .map_err(|_| anyhow!("{what} must be {N} bytes, got {}", v.len()))
}

fn state(cfg: NodeConfig, what: StateCmd) -> Result<()> {
    use vm_state::{StateKey, StateReader, StateStore};
    let path = cfg.node.data_dir.join("state.redb");
    if !path.exists() {
        bail!("no database at {}", path.display());
    }
    let store = vm_state::RedbStore::open(&path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    node_core::pipeline::check_state_layout(&store)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    match what {
        StateCmd::Head => {
            let Some(info) = store.latest()? else {
                println!("height none (empty database)");
                return Ok(());
            };
            let head = store.get(&node_core::pipeline::head_key())?;
            println!("height {}", info.height);
            if let Some(h) = head.filter(|h| h.len() == 40) {
                println!("block_hash {}", hex::encode(&h[8..]));
            }
            println!("state_root {}", hex::encode(info.state_root));
        }
        StateCmd::Balance { address } => {
            let a: [u8; 20] = parse_hex(&address, "address")?;
            let acct = vm_state::Account::decode(store.get(&StateKey::account(&a))?.as_deref())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("balance {}", acct.balance);
            println!("nonce {}", acct.nonce);
        }
        StateCmd::Storage { contract, key } => {
            let a: [u8; 20] = parse_hex(&contract, "contract address")?;
            let k = hex::decode(key.trim_start_matches("0x")).context("key is not hex")?;
            match store.get(&StateKey::storage(&a, &k))? {
                Some(v) => println!("{}", hex::encode(&v[..])),
                None => println!("(absent)"),
            }
        }
    }
    Ok(())
}

fn devices() -> Result<()> {
    use gpu_executor::device::backend_status;
    use gpu_executor::{list_devices, BackendKind};
    for kind in [BackendKind::Cuda, BackendKind::Opencl] {
        match backend_status(kind) {
            Some(why) => println!("{kind}: unavailable ({why})"),
            None => println!("{kind}: available"),
        }
    }
    let devs = list_devices();
    if devs.is_empty() {
        println!("no GPU devices found; every route runs on the CPU");
    }
    for d in devs {
        println!("{d}");
    }
    println!(
        "cpu: {} ({} threads)",
        gpu_executor::hash::cpu_model_name(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    Ok(())
}

fn gpu_exec_for(backend: &str) -> Result<gpu_executor::GpuExecutor> {
    let choice: gpu_executor::BackendChoice = backend.parse()?;
    let cfg = gpu_executor::GpuConfig {
        default_min_batch: 1,
        ..gpu_executor::GpuConfig::with_backend(choice)
    };
    let ex = gpu_executor::GpuExecutor::new(cfg)?;
    if let Some(why) = ex.no_gpu_reason() {
        eprintln!("running on the CPU: {why}");
    }
    Ok(ex)
}

fn write_records(records: &[engine_api::BenchRecord], json: Option<&Path>) -> Result<()> {
    for r in records {
        println!(
            "{:<10} {:<34} {:<13} batch={:<9} {:>14.0} items/s  median {:>10.3} ms  [{}; {} threads]",
            r.suite, r.case, r.backend, r.batch, r.items_per_sec, r.median_ms, r.device, r.cpu_threads
        );
    }
    if let Some(p) = json {
        let text = serde_json::to_string_pretty(records)?;
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {} records to {}", records.len(), p.display());
    }
    Ok(())
}

fn bench(
    suite: &str,
    json: Option<&Path>,
    cfg: NodeConfig,
    blocks: u64,
    txs: usize,
    privacy_percent: u32,
) -> Result<()> {
    let records = match suite {
        "hash" => gpu_executor::bench::hash_suite(&Default::default())?,
        "merkle" => gpu_executor::bench::merkle_suite(&Default::default())?,
        "ed25519" => gpu_executor::sig::bench::ed25519_suite(&Default::default())?,
        "secp256k1" => gpu_executor::sig::bench::secp256k1_suite(&Default::default())?,
        "msm" => gpu_executor::zk::bench::msm_suite(&Default::default())?,
        "ntt" => gpu_executor::zk::bench::ntt_suite(&Default::default())?,
        "groth16" => {
            let o = Default::default();
            let mut r = zk_privacy::bench::groth16_suite(&o)?;
            r.extend(zk_privacy::bench::privacy_verify_suite(&o)?);
            r
        }
        "execution" => vm_runtime::bench::execution_suite(&Default::default())
            .map_err(|e| anyhow!("{e}"))?,
        "node" => node_core::bench::node_suite(
            &cfg,
            &node_core::bench::NodeBenchOptions {
                blocks,
                txs,
                privacy_percent,
                ..Default::default()
            },
        )?,
        other => bail!(
            "unknown suite `{other}` (hash, merkle, ed25519, secp256k1, msm, ntt, groth16, execution, node)"
        ),
    };
    write_records(&records, json)
}

fn main() {
    // Keep freed block memory mapped for a while (`vm_runtime::alloc_tuning`).
    vm_runtime::alloc_tuning::tune_mimalloc();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
                // arkworks' constraint-synthesis spans (target `r1cs`) record the whole
                // constraint system with `Debug`: at debug level a Groth16 set-up or proof
                // would format it on every gadget call, which never finishes in practice.
                .add_directive("r1cs=off".parse().expect("static directive")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(e) = real_main(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> Result<()> {
    let config = cli.config;
    match cli.cmd {
        Cmd::Run {
            dev,
            blocks,
            strategy,
        } => run(load_config(&config)?, dev, blocks, strategy),
        Cmd::Import { file, strategy } => import(load_config(&config)?, &file, strategy),
        Cmd::Generate { out, blocks, txs } => generate(load_config(&config)?, &out, blocks, txs),
        Cmd::State { what } => state(load_config(&config)?, what),
        Cmd::Devices => devices(),
        Cmd::Config { default } => {
            if default || config.is_none() {
                print!("{DEFAULT_CONFIG_TOML}");
            } else {
                let cfg = load_config(&config)?;
                print!("{}", toml::to_string_pretty(&cfg)?);
            }
            Ok(())
        }
        Cmd::Hash { algo, backend } => {
            let ex = gpu_exec_for(&backend)?;
            let algo: gpu_executor::HashAlgo = algo.parse()?;
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            gpu_executor::cli::hash_lines(&ex, algo, stdin.lock(), stdout.lock())?;
            Ok(())
        }
        Cmd::Merkle { algo, backend } => {
            let ex = gpu_exec_for(&backend)?;
            let algo: gpu_executor::HashAlgo = algo.parse()?;
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            gpu_executor::cli::merkle_lines(&ex, algo, stdin.lock(), stdout.lock())?;
            Ok(())
        }
        Cmd::Verify { scheme, backend } => {
            use gpu_executor::sig::cli::{verify_json_lines, Scheme, VerifyOptions};
            let scheme: Scheme = scheme.parse()?;
            let ex = gpu_exec_for(&backend)?;
            let sig = gpu_executor::sig::SigExecutor::from_gpu_executor(&ex, Default::default());
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            verify_json_lines(
                &sig,
                &VerifyOptions::new(scheme),
                stdin.lock(),
                stdout.lock(),
            )?;
            Ok(())
        }
        Cmd::Prove {
            circuit,
            inputs,
            seed,
            params,
            snarkjs_dir,
        } => {
            let opts = zk_privacy::api::ProveOptions {
                seed,
                params,
                snarkjs_dir,
            };
            let out = zk_privacy::api::prove_file(&circuit, &inputs, &opts)?;
            println!("{}", serde_json::to_string_pretty(&out.to_json())?);
            Ok(())
        }
        Cmd::VerifyProof { dir } => {
            let ok = zk_privacy::api::verify_snarkjs_dir(&dir)?;
            println!("{}", serde_json::json!({ "valid": ok }));
            if ok {
                Ok(())
            } else {
                bail!("proof does not verify")
            }
        }
        Cmd::Bench {
            suite,
            json,
            blocks,
            txs,
            privacy_percent,
        } => bench(
            &suite,
            json.as_deref(),
            load_config(&config)?,
            blocks,
            txs,
            privacy_percent,
        ),
    }
}
