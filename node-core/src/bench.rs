//! `supervm bench node`: the whole pipeline on blocks of signed transactions (80% native
//! transfers, 15% token-contract calls, 5% privacy transfers), end to end (decode, tx root,
//! signature checks, proof checks, Block-STM execution, state root, commit to redb), with
//! each strategy in one run on the same blocks. Every strategy must reach the same state
//! root; the suite fails otherwise.
//!
//! Privacy transfers are proved before timing (proving is the wallet's work) and cached
//! under `data_dir` so later runs skip it.

use std::io::{Read, Write};
use std::sync::atomic::AtomicBool;

use std::time::Instant;

use engine_api::BenchRecord;
use rand::SeedableRng;
use rayon::prelude::*;

use crate::config::{NodeConfig, Strategy};
use crate::error::{NodeError, Result};
use crate::pipeline::{load_privacy_keys, PRIVACY_RECENT_ROOTS};
use crate::workload::{DevWorkload, PrivacyProver};

/// Options of [`node_suite`].
#[derive(Clone, Debug)]
pub struct NodeBenchOptions {
    /// Blocks per strategy. Default 3.
    pub blocks: u64,
    /// Transactions per block. Default 10,000.
    pub txs: usize,
    /// Funded accounts. Default 10,000.
    pub accounts: usize,
    /// Percent of privacy transfers. Default 5 (token calls 15, the rest transfers).
    pub privacy_percent: u32,
    /// Strategies, in order. Default CpuOnly, Auto, LoadBalance.
    pub strategies: Vec<Strategy>,
}

impl Default for NodeBenchOptions {
    fn default() -> Self {
        Self {
            blocks: 3,
            txs: 10_000,
            accounts: 10_000,
            privacy_percent: 5,
            strategies: vec![Strategy::CpuOnly, Strategy::Auto, Strategy::LoadBalance],
        }
    }
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |e| NodeError::io(path, e)
}

/// Proves (or loads from the cache) `n` privacy payloads under the empty tree's root.
fn privacy_payloads(cfg: &NodeConfig, prover: &PrivacyProver, n: usize) -> Result<Vec<Vec<u8>>> {
    // Transfer i is proved with its own seed, so a cache of m >= n transfers serves any n
    // (its first n), and a shorter one is extended.
    let path = cfg.node.data_dir.join(format!(
        "bench-privacy-d{}-s{}.bin",
        prover.depth, cfg.privacy.dev_seed
    ));
    let mut out = Vec::with_capacity(n);
    if let Ok(mut f) = std::fs::File::open(&path) {
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(io(&path))?;
        let mut rest = &bytes[..];
        while rest.len() >= 4 && out.len() < n {
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if rest.len() < 4 + len {
                break;
            }
            out.push(rest[4..4 + len].to_vec());
            rest = &rest[4 + len..];
        }
        if out.len() == n {
            return Ok(out);
        }
    }
    let have = out.len();
    eprintln!(
        "bench node: proving {} privacy transfers ({have} cached; cached afterwards)...",
        n - have
    );
    let t = Instant::now();
    let root = zk_privacy::tree::empty_root(prover.depth);
    let fresh: Vec<Vec<u8>> = (have..n)
        .into_par_iter()
        .map(|i| {
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0xB0B0 + i as u64);
            prover.make_payload(root, &mut rng)
        })
        .collect::<Result<_>>()?;
    eprintln!(
        "bench node: proved {} transfers in {:.1}s",
        n - have,
        t.elapsed().as_secs_f64()
    );
    out.extend(fresh);
    std::fs::create_dir_all(&cfg.node.data_dir).map_err(io(&cfg.node.data_dir))?;
    let mut f = std::fs::File::create(&path).map_err(io(&path))?;
    for p in &out {
        f.write_all(&(p.len() as u32).to_le_bytes())
            .and_then(|_| f.write_all(p))
            .map_err(io(&path))?;
    }
    Ok(out)
}

/// The smallest note-tree depth (at least 4) that holds `transfers` transfers of two notes.
pub fn min_tree_depth(transfers: usize) -> usize {
    let notes = (2 * transfers as u64).max(16);
    notes.next_power_of_two().trailing_zeros() as usize
}

/// Runs the node suite.
pub fn node_suite(cfg: &NodeConfig, opts: &NodeBenchOptions) -> Result<Vec<BenchRecord>> {
    let mut cfg = cfg.clone();
    cfg.dev.accounts = opts.accounts.max(2);
    cfg.dev.transfer_weight = 85u32.saturating_sub(opts.privacy_percent);
    cfg.dev.token_call_weight = 15;
    cfg.dev.deploy_weight = 0;
    cfg.dev.privacy_weight = opts.privacy_percent;
    cfg.metrics.enabled = false;
    let mut workload = DevWorkload::new(&cfg.dev, cfg.node.chain_id);
    let genesis = workload.genesis();
    let per_block = workload.privacy_share(opts.txs);
    // All transfers are proved under the empty tree's root, which stays recent while fewer
    // than PRIVACY_RECENT_ROOTS blocks have appended notes (one root per block).
    let privacy_blocks = (opts.blocks as usize).min(PRIVACY_RECENT_ROOTS - 1);
    let total_privacy = per_block * privacy_blocks;
    if privacy_blocks < opts.blocks as usize {
        eprintln!(
            "bench node: privacy transfers in the first {privacy_blocks} blocks only (all are \
             proved under the empty tree's root, recent for {PRIVACY_RECENT_ROOTS} roots)"
        );
    }
    // Every privacy transfer adds two notes: the tree must hold them all, or transfers
    // would be rejected (and their senders' later transactions fail on the nonce).
    let depth = min_tree_depth(total_privacy);
    if cfg.privacy.tree_depth < depth {
        eprintln!(
            "bench node: [privacy] tree_depth = {} holds only {} transfers; using depth \
             {depth} for {total_privacy} (verification cost does not depend on the depth)",
            cfg.privacy.tree_depth,
            (1u64 << cfg.privacy.tree_depth) / 2
        );
        cfg.privacy.tree_depth = depth;
    }
    workload.set_privacy_room(Some((1u64 << cfg.privacy.tree_depth) / 2));
    let backends = crate::open_backends(&cfg)?;
    if total_privacy > 0 {
        let keys = load_privacy_keys(&cfg, true)?;
        let pk = keys
            .pk
            .clone()
            .ok_or_else(|| NodeError::Execution("bench node needs a proving key".into()))?;
        let prover = PrivacyProver {
            pk,
            depth: cfg.privacy.tree_depth,
        };
        let payloads = backends
            .pool
            .install(|| privacy_payloads(&cfg, &prover, total_privacy))?;
        for p in payloads {
            workload.push_privacy(p);
        }
        let _ = backends.privacy.set(keys);
    }
    eprintln!(
        "bench node: signing {} blocks of {} transactions...",
        opts.blocks, opts.txs
    );
    let blocks: Vec<_> = (0..opts.blocks)
        .map(|i| workload.next_block(opts.txs, 1_700_000_000 + i))
        .collect();
    let threads = backends.pool.current_num_threads();
    let cpu_name = gpu_executor::hash::cpu_model_name();
    let mut records = Vec::new();
    let mut roots = Vec::new();
    for &strategy in &opts.strategies {
        let dir = cfg
            .node
            .data_dir
            .join(format!("bench-node-{}", strategy.name()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut scfg = cfg.clone();
        scfg.node.data_dir = dir.clone();
        // Calibration is cached in the main data dir, not the throwaway one.
        scfg.scheduler.calibration_cache = cfg.in_data_dir(&cfg.scheduler.calibration_cache);
        let store = crate::open_store(&scfg)?;
        let node = crate::open_node_with(&scfg, store, Some(strategy), &backends)?;
        node.init_genesis(&genesis)?;
        let device = node
            .scheduler()
            .gpu_name()
            .map(|g| format!("{cpu_name} + {g}"))
            .unwrap_or_else(|| cpu_name.clone());
        let stop = AtomicBool::new(false);
        let mut per_block = Vec::new();
        let mut stage_sums: Vec<(&'static str, f64, String)> = Vec::new();
        let mut kinds = crate::pipeline::KindCounts::default();
        let mut failed = crate::pipeline::KindCounts::default();
        let mut first_failure = None;
        // Blocks per execution mode (graph, bstm, seq), from the execute stage's route.
        let mut modes: Vec<(String, u64)> = Vec::new();
        let verbose = std::env::var_os("SUPERVM_BENCH_VERBOSE").is_some();
        let cpu_before = crate::cputime::snapshot();
        let t = Instant::now();
        // When each block's commit was reported: the first block's latency (the pipeline
        // filling) and the interval between commits after it (the slowest stage's pace).
        let mut done_at: Vec<f64> = Vec::new();
        node.import(blocks.iter().cloned().map(Ok), &stop, |rep| {
            done_at.push(t.elapsed().as_secs_f64());
            if verbose {
                eprintln!("bench node: {:<12} {}", strategy.name(), rep.line());
            }
            per_block.push(rep.total_ms);
            if let Some(e) = rep.stages.iter().find(|s| s.stage == "execute") {
                let mode = e.route.rsplit('/').next().unwrap_or("").to_string();
                match modes.iter_mut().find(|m| m.0 == mode) {
                    Some(m) => m.1 += 1,
                    None => modes.push((mode, 1)),
                }
            }
            for s in &rep.stages {
                match stage_sums.iter_mut().find(|x| x.0 == s.stage) {
                    Some(x) => {
                        x.1 += s.ms;
                        x.2 = s.route.clone();
                    }
                    None => stage_sums.push((s.stage, s.ms, s.route.clone())),
                }
            }
            kinds.add(&rep.txs_by_kind);
            failed.add(&rep.failed_by_kind);
            if first_failure.is_none() {
                first_failure = rep
                    .first_failure
                    .as_ref()
                    .map(|(i, s)| format!("block {} tx {i}: {s}", rep.height));
            }
        })?;
        let wall = t.elapsed().as_secs_f64();
        if verbose {
            let cpu = crate::cputime::delta(&cpu_before, &crate::cputime::snapshot());
            let total: f64 = cpu.iter().map(|x| x.1).sum();
            let groups: Vec<String> = cpu
                .iter()
                .filter(|x| x.1 >= 0.001)
                .map(|(g, s)| format!("{g} {s:.3}"))
                .collect();
            eprintln!(
                "bench node: {:<12} cpu {total:.2} core-s in {wall:.2} s ({:.1} cores busy): {}",
                strategy.name(),
                total / wall.max(1e-9),
                groups.join(", ")
            );
        }
        eprintln!(
            "bench node: {:<12} transactions: {kinds}; failed: {}{}",
            strategy.name(),
            if failed.total() == 0 {
                "none".to_string()
            } else {
                failed.to_string()
            },
            first_failure
                .map(|f| format!(" (first: {f})"))
                .unwrap_or_default()
        );
        let (_, _, root) = node
            .head()?
            .ok_or_else(|| NodeError::Store("no head after the bench".into()))?;
        roots.push((strategy, root));
        let total_txs = opts.txs as u64 * opts.blocks;
        per_block.sort_by(|a, b| a.total_cmp(b));
        let median = per_block.get(per_block.len() / 2).copied().unwrap_or(0.0);
        let stages: Vec<String> = stage_sums
            .iter()
            .map(|(s, ms, r)| format!("{s} {:.0}ms@{r}", ms / opts.blocks.max(1) as f64))
            .collect();
        let modes: Vec<String> = modes.iter().map(|(m, n)| format!("{m} {n}")).collect();
        let pace = match (done_at.first(), done_at.last()) {
            (Some(&first), Some(&last)) if done_at.len() > 1 => format!(
                "first block done at {:.0} ms, then {:.0} tx/s ({:.1} ms a block); ",
                first * 1e3,
                opts.txs as f64 * (done_at.len() - 1) as f64 / (last - first).max(1e-9),
                (last - first) * 1e3 / (done_at.len() - 1) as f64
            ),
            _ => String::new(),
        };
        eprintln!(
            "bench node: {:<12} {:>9.0} tx/s end to end ({} blocks in {:.2}s; {pace}blocks by execution mode: {}; per block: {})",
            strategy.name(),
            total_txs as f64 / wall,
            opts.blocks,
            wall,
            modes.join(", "),
            stages.join(", ")
        );
        records.push(BenchRecord {
            suite: "node".into(),
            case: format!(
                "mixed-{}tx-{}transfer-15token-{}privacy",
                opts.txs,
                85u32.saturating_sub(opts.privacy_percent),
                opts.privacy_percent
            ),
            backend: strategy.name().into(),
            device,
            batch: opts.txs as u64,
            items_per_sec: total_txs as f64 / wall,
            median_ms: median,
            cpu_threads: threads,
        });
        drop(node);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Some((s0, r0)) = roots.first() {
        for (s, r) in &roots[1..] {
            if r != r0 {
                return Err(NodeError::Execution(format!(
                    "state roots differ: {} gives {}, {} gives {}",
                    s0.name(),
                    hex::encode(r0),
                    s.name(),
                    hex::encode(r)
                )));
            }
        }
    }
    Ok(records)
}
