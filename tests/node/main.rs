//! Node-level integration tests: they drive the real `supervm` binary on TOML configs in
//! temporary directories (one test binary, wired as a `[[test]]` of `node-core`).
//!
//! Blocks are small so the suite stays quick in debug builds; `SUPERVM_TEST_TXS` and
//! `SUPERVM_TEST_BLOCKS` scale them up.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use node_core::block::{Block, BlockFileReader, BlockFileWriter, Genesis};
use node_core::exec::NodeExecutor;
use node_core::pipeline::{
    genesis_key, head_key, layout_key, tx_root_cpu, PRIVACY_RECENT_ROOTS, STATE_LAYOUT,
};
use vm_runtime::tx::Transaction;
use vm_state::{BlockEnv, CpuStateHasher, MemoryStore, StateKey, StateStore, StateValue, WriteSet};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_supervm")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A temp dir with a config file; `extra` is appended to the TOML.
struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new(extra: &str) -> Env {
        Env::with_execution("", extra)
    }
    /// `execution` is appended to the `[execution]` section.
    fn with_execution(execution: &str, extra: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("supervm.toml");
        let data = dir.path().join("data");
        let text = format!(
            "[node]\ndata_dir = {:?}\nchain_id = 1337\n\n[execution]\nthreads = 2\n{execution}\n\
             [dev]\nblock_interval_ms = 0\nblock_txs = 40\naccounts = 50\nprivacy_weight = 0\n\
             deploy_weight = 2\n{extra}\n",
            data.display().to_string()
        );
        std::fs::write(&config, text).expect("write config");
        Env { dir, config }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args).arg("--config").arg(&self.config);
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run supervm")
    }
    fn head(&self) -> (u64, String) {
        let out = self.run(&["state", "head"]);
        assert!(out.status.success(), "state head: {}", stderr(&out));
        let text = stdout(&out);
        let height = field(&text, "height").parse().expect("height");
        (height, field(&text, "state_root"))
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn field(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no `{name}` in {text}"))
        .trim()
        .to_string()
}

fn generate(env: &Env, file: &Path, blocks: usize, txs: usize) {
    let out = env.run(&[
        "generate",
        "-o",
        &file.display().to_string(),
        "--blocks",
        &blocks.to_string(),
        "--txs",
        &txs.to_string(),
    ]);
    assert!(out.status.success(), "generate: {}", stderr(&out));
}

fn import(env: &Env, file: &Path, strategy: Option<&str>) -> Output {
    let f = file.display().to_string();
    let mut args = vec!["import", f.as_str()];
    if let Some(s) = strategy {
        args.extend(["--strategy", s]);
    }
    env.run(&args)
}

fn read_file(file: &Path) -> (Genesis, Vec<Block>) {
    let f = std::fs::File::open(file).expect("open block file");
    let (mut r, g) = BlockFileReader::open(std::io::BufReader::new(f)).expect("genesis");
    let mut blocks = Vec::new();
    while let Some(b) = r.next_block().expect("block") {
        blocks.push(b);
    }
    (g, blocks)
}

/// The state root after `blocks`, computed in process with the *sequential* executor on a
/// memory store (the reference the node's parallel, routed pipeline must match).
fn reference_root(genesis: &Genesis, blocks: &[Block]) -> String {
    reference_root_depth(genesis, blocks, zk_privacy::tree::DEFAULT_DEPTH)
}

fn reference_root_depth(genesis: &Genesis, blocks: &[Block], depth: usize) -> String {
    let store = MemoryStore::new();
    let hasher = CpuStateHasher::new();
    let mut ws = WriteSet::new();
    for (k, v) in &genesis.entries {
        ws.insert(StateKey(k.clone()), Some(StateValue::from(v.as_slice())));
    }
    let gh = genesis.hash();
    ws.insert(genesis_key(), Some(StateValue::from(&gh[..])));
    ws.insert(layout_key(), Some(StateValue::from(&[STATE_LAYOUT][..])));
    let mut head = 0u64.to_le_bytes().to_vec();
    head.extend_from_slice(&gh);
    ws.insert(head_key(), Some(StateValue::from(head)));
    let mut info = store.commit_block(0, &ws, &hasher).expect("genesis");
    let vm = Arc::new(vm_runtime::Vm::new(vm_runtime::VmConfig::default()).expect("vm"));
    let pool = zk_privacy::pool::PrivacyPool::new(depth, PRIVACY_RECENT_ROOTS).expect("pool");
    let exec = NodeExecutor::new(vm, pool);
    for b in blocks {
        assert_eq!(tx_root_cpu(&b.txs), b.header.tx_root);
        let txs: Vec<Transaction> = b
            .txs
            .iter()
            .map(|t| Transaction::decode(t).expect("tx"))
            .collect();
        for t in &txs {
            t.verify_signature().expect("signature");
        }
        let env = BlockEnv {
            number: b.header.height,
            timestamp: b.header.timestamp,
            chain_id: b.header.chain_id,
        };
        let snap = store.snapshot().expect("snapshot");
        let out =
            vm_state::execute_block_sequential(&exec, &txs, &env, snap.as_ref()).expect("execute");
        let mut ws = out.write_set;
        exec.finalize_block(&txs, &out.receipts, snap.as_ref(), &mut ws)
            .expect("note tree");
        let mut head = b.header.height.to_le_bytes().to_vec();
        head.extend_from_slice(&b.header.hash());
        ws.insert(head_key(), Some(StateValue::from(head)));
        info = store
            .commit_block(b.header.height, &ws, &hasher)
            .expect("commit");
    }
    hex::encode(info.state_root)
}

#[test]
fn import_matches_sequential_reference() {
    let env = Env::new("");
    let file = env.path("blocks.svm");
    let (n_blocks, n_txs) = (
        env_usize("SUPERVM_TEST_BLOCKS", 3),
        env_usize("SUPERVM_TEST_TXS", 60),
    );
    generate(&env, &file, n_blocks, n_txs);
    let out = import(&env, &file, None);
    assert!(out.status.success(), "import: {}", stderr(&out));
    let (height, root) = env.head();
    assert_eq!(height, n_blocks as u64);
    let (g, blocks) = read_file(&file);
    assert_eq!(root, reference_root(&g, &blocks));
    // Importing the same file again is a no-op resume.
    let out = import(&env, &file, None);
    assert!(out.status.success(), "re-import: {}", stderr(&out));
    assert_eq!(env.head(), (height, root.clone()));
    // Block-STM on a pool of its own gives the same chain.
    let own = Env::with_execution("own_pool = true", "");
    let out = import(&own, &file, None);
    assert!(out.status.success(), "own pool: {}", stderr(&out));
    assert_eq!(own.head(), (height, root));
}

#[test]
fn every_strategy_gives_the_same_state_root() {
    let env = Env::new("");
    let file = env.path("blocks.svm");
    generate(&env, &file, 2, env_usize("SUPERVM_TEST_TXS", 40));
    let mut roots = Vec::new();
    // With the `opencl` feature the GPU routes run on an OpenCL device (PoCL's CPU device
    // in CI); `gpu.backend = "auto"` would skip a CPU-type OpenCL device.
    let gpu = if cfg!(feature = "opencl") {
        "[gpu]\nbackend = \"opencl\"\n"
    } else {
        eprintln!("GPU routes not exercised: built without the `opencl` feature");
        ""
    };
    for strategy in ["cpu_only", "gpu_only", "auto", "load_balance"] {
        let e = Env::new(&format!(
            "[scheduler]\nstrategy = \"{strategy}\"\ncalibration = {}\n{gpu}",
            strategy == "auto"
        ));
        let out = import(&e, &file, None);
        assert!(out.status.success(), "{strategy}: {}", stderr(&out));
        let err = stderr(&out);
        if strategy == "gpu_only" {
            if err.contains("gpu=[none]") {
                eprintln!("gpu_only ran on the CPU: no GPU device opened");
            } else {
                assert!(err.contains("HashCompute/gpu"), "{err}");
                assert!(err.contains("MerkleTreeBuild/gpu"), "{err}");
            }
        }
        roots.push((strategy, e.head()));
    }
    for (s, r) in &roots[1..] {
        assert_eq!(r, &roots[0].1, "{s} differs from cpu_only");
    }
}

#[test]
fn kill_during_import_then_restart_continues() {
    let env = Env::new("");
    let file = env.path("blocks.svm");
    let n_blocks = env_usize("SUPERVM_TEST_BLOCKS", 3) * 4;
    generate(&env, &file, n_blocks, 30);
    let mut child = env
        .cmd(&["import", &file.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn import");
    // Wait until the import has started, then let it run a moment and kill -9.
    let mut err = child.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let start = Instant::now();
    while !String::from_utf8_lossy(&seen).contains("importing")
        && start.elapsed() < Duration::from_secs(120)
    {
        match err.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    std::thread::sleep(Duration::from_millis(400));
    child.kill().expect("kill -9");
    let _ = child.wait();
    // The database opens, and is at some committed block (possibly genesis or the end).
    let (h, _) = env.head();
    assert!(h <= n_blocks as u64);
    let out = import(&env, &file, None);
    assert!(out.status.success(), "restart: {}", stderr(&out));
    let (height, root) = env.head();
    assert_eq!(height, n_blocks as u64);
    let (g, blocks) = read_file(&file);
    assert_eq!(root, reference_root(&g, &blocks));
}

#[test]
fn bad_config_is_rejected_naming_the_key() {
    let env = Env::new("[scheduler]\nstratgy = \"auto\"\n");
    let out = env.run(&["run", "--dev", "--blocks", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("stratgy"), "{}", stderr(&out));
    assert!(
        !env.path("data").exists(),
        "a bad config must not create the data dir"
    );
    let env = Env::new("[gpu]\nbackend = \"vulkan\"\n");
    let out = env.run(&["run", "--dev", "--blocks", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("vulkan"), "{}", stderr(&out));
}

#[test]
fn malformed_and_invalid_blocks_change_nothing() {
    let env = Env::new("");
    let file = env.path("blocks.svm");
    generate(&env, &file, 3, 20);
    let (g, blocks) = read_file(&file);
    // Import the first two blocks.
    let good = env.path("good.svm");
    write_file(&good, &g, &blocks[..2]);
    assert!(import(&env, &good, None).status.success());
    let before = env.head();
    assert_eq!(before.0, 2);
    // Block 3 with a corrupted signature (the tx root recomputed so only the signature is
    // wrong).
    let mut bad = blocks[2].clone();
    let last = bad.txs[0].len() - 1;
    bad.txs[0][last] ^= 0x01;
    bad.header.tx_root = tx_root_cpu(&bad.txs);
    let bad_file = env.path("bad-sig.svm");
    write_file(&bad_file, &g, &[blocks[0].clone(), blocks[1].clone(), bad]);
    let out = import(&env, &bad_file, None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid signature"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.head(), before);
    // A truncated, corrupted file.
    let mut bytes = std::fs::read(&file).expect("read");
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    let torn = env.path("torn.svm");
    std::fs::write(&torn, &bytes[..n - 3]).expect("write");
    let out = import(&env, &torn, None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("malformed"), "{}", stderr(&out));
    assert_eq!(env.head(), before);
    // A wrong parent hash.
    let mut orphan = blocks[2].clone();
    orphan.header.parent_hash = [9; 32];
    let orphan_file = env.path("orphan.svm");
    write_file(&orphan_file, &g, &[orphan]);
    let out = import(&env, &orphan_file, None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("parent hash"), "{}", stderr(&out));
    assert_eq!(env.head(), before);
    // The good remainder still imports.
    assert!(import(&env, &file, None).status.success());
    assert_eq!(env.head().0, 3);
}

#[test]
fn genesis_with_retired_or_malformed_account_keys_is_refused() {
    let env = Env::new("");
    let file = env.path("blocks.svm");
    generate(&env, &file, 1, 5);
    let (g, blocks) = read_file(&file);
    let cases: [(Vec<u8>, Vec<u8>, &str); 3] = [
        (
            [&[b'b'][..], &[7u8; 20]].concat(),
            vec![1; 16],
            "retired balance or nonce key",
        ),
        (
            [&[b'n'][..], &[7u8; 20]].concat(),
            vec![1; 8],
            "retired balance or nonce key",
        ),
        (
            [&[b'a'][..], &[7u8; 20]].concat(),
            vec![1; 16],
            "malformed account record",
        ),
    ];
    for (i, (key, value, why)) in cases.into_iter().enumerate() {
        let mut bad = g.clone();
        bad.entries.push((key, value));
        let bad_file = env.path(&format!("legacy-{i}.svm"));
        write_file(&bad_file, &bad, &blocks);
        let out = import(&env, &bad_file, None);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
    }
    // Nothing was committed: the well-formed file still imports from scratch.
    assert!(import(&env, &file, None).status.success());
    assert_eq!(env.head().0, 1);
}

fn write_file(path: &Path, g: &Genesis, blocks: &[Block]) {
    let f = std::fs::File::create(path).expect("create");
    let mut w = BlockFileWriter::new(std::io::BufWriter::new(f), g).expect("writer");
    for b in blocks {
        w.write_block(b).expect("write");
    }
    w.finish().expect("finish");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn scrape(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn dev_node_serves_metrics_and_stops_cleanly() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let env = Env::new(&format!("[metrics]\nenabled = true\nlisten = \"{addr}\"\n"));
    let child = env
        .cmd(&["run", "--dev"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dev node");
    let start = Instant::now();
    let mut text = String::new();
    while start.elapsed() < Duration::from_secs(180) {
        if let Some(t) = scrape(&addr) {
            // Wait for every metric asserted below: a scrape can land between the first
            // stages of the first block and its later ones.
            let wanted = [
                "supervm_height",
                "supervm_stage_latency_us_bucket",
                "supervm_txs_total",
                "supervm_route_total",
                "supervm_committed_bytes_total",
                "stage=\"execute\"",
                "stage=\"signatures\"",
                "stage=\"execute-idle\"",
            ];
            if wanted.iter().all(|w| t.contains(w)) {
                text = t;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Ctrl-C: the node stops after the current block and exits 0.
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let out = child.wait_with_output().expect("wait");
    assert!(
        text.contains("supervm_height"),
        "no metrics scraped; stderr: {}",
        stderr(&out)
    );
    for name in [
        "supervm_txs_total",
        "supervm_route_total",
        "supervm_committed_bytes_total",
        "stage=\"execute\"",
        "stage=\"signatures\"",
        // how long execution waited for the block (pipeline bottleneck diagnosis)
        "stage=\"execute-idle\"",
    ] {
        assert!(text.contains(name), "{name} missing in:\n{text}");
    }
    assert!(
        out.status.success(),
        "exit: {:?} {}",
        out.status,
        stderr(&out)
    );
    assert!(stdout(&out).contains("#1 txs=40"), "{}", stdout(&out));
    // Restart resumes at the last committed block.
    let (h, root) = env.head();
    assert!(h >= 1);
    let out = env.run(&["run", "--dev", "--blocks", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("#{} ", h + 1)),
        "{}",
        stdout(&out)
    );
    assert_ne!(env.head().1, root);
}

#[test]
fn config_default_prints_a_valid_config() {
    let out = Command::new(bin())
        .args(["config", "--default"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("strategy = \"auto\""));
    node_core::config::NodeConfig::from_toml_str(&text, "stdout").expect("parses");
}

/// A node environment (`extra` config) whose dev workload has 30% privacy transfers, and a
/// generated file of one 12-transaction block: (env, file, genesis, blocks).
fn privacy_block(extra: &str) -> (Env, PathBuf, Genesis, Vec<Block>) {
    let env = Env::new(extra);
    std::fs::write(
        &env.config,
        std::fs::read_to_string(&env.config)
            .expect("config")
            .replace("privacy_weight = 0", "privacy_weight = 30"),
    )
    .expect("config");
    let file = env.path("privacy.svm");
    generate(&env, &file, 1, 12);
    let (g, blocks) = read_file(&file);
    (env, file, g, blocks)
}

/// A privacy transfer proved with `cfg`'s dev parameters (depth 4) under the empty tree's
/// root, from RNG seed `seed`.
fn fresh_transfer(cfg: &node_core::config::NodeConfig, seed: u64) -> Vec<u8> {
    let keys = node_core::pipeline::load_privacy_keys(cfg, true).expect("keys");
    let prover = node_core::workload::PrivacyProver {
        pk: keys.pk.expect("proving key"),
        depth: 4,
    };
    let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(seed);
    prover
        .make_payload(zk_privacy::tree::empty_root(4), &mut rng)
        .expect("prove")
}

/// Privacy transfers (real Groth16 proofs on a depth-4 tree so debug builds stay quick):
/// a valid block imports and matches the reference; the same transfer twice in one block is
/// a deterministic double spend (second rejected, block valid); a corrupted proof rejects
/// the block.
#[test]
fn privacy_transfers_verify_execute_and_reject_double_spends() {
    let extra = "[privacy]\ntree_depth = 4\n";
    let (env, file, g, blocks) = privacy_block(extra);
    let privacy: Vec<usize> = blocks[0]
        .txs
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            matches!(
                Transaction::decode(t).expect("tx").kind,
                vm_runtime::tx::TxKind::Privacy(_)
            )
        })
        .map(|(i, _)| i)
        .collect();
    assert!(
        !privacy.is_empty(),
        "the generated block has no privacy transfer"
    );
    let out = import(&env, &file, None);
    assert!(out.status.success(), "import: {}", stderr(&out));
    let (h, root) = env.head();
    assert_eq!(h, 1);
    assert_eq!(root, reference_root_depth(&g, &blocks, 4));

    // The same block with the proofs' Miller loops on the GPU route (PoCL's OpenCL device in
    // CI; the dev parameters are deterministic, so this node derives the same keys).
    if cfg!(feature = "opencl") {
        let gpu = Env::new(&format!(
            "{extra}[scheduler]\nstrategy = \"gpu_only\"\ncalibration = false\n\
             [gpu]\nbackend = \"opencl\"\n"
        ));
        let out = import(&gpu, &file, None);
        let err = stderr(&out);
        assert!(out.status.success(), "gpu_only import: {err}");
        if err.contains("gpu=[none]") {
            eprintln!("privacy proofs ran on the CPU: no OpenCL device opened");
        } else {
            assert!(err.contains("PrivacyTransaction/gpu"), "{err}");
        }
        assert_eq!(gpu.head(), (1, root));
    }

    // Replay the first privacy payload from another account in block 2: same nullifiers.
    let key = node_core::workload::dev_key(7, 3);
    let addr = vm_runtime::tx::address_of(&key.verifying_key().to_bytes());
    let nonce = {
        let out = env.run(&["state", "balance", &hex::encode(addr)]);
        field(&stdout(&out), "nonce").parse::<u64>().expect("nonce")
    };
    let payload = match Transaction::decode(&blocks[0].txs[privacy[0]])
        .expect("tx")
        .kind
    {
        vm_runtime::tx::TxKind::Privacy(p) => p,
        _ => unreachable!("filtered above"),
    };
    // A fresh transfer, proved here with the cached dev parameters, under the empty root.
    let cfg = node_core::config::NodeConfig::load(&env.config).expect("config");
    let fresh = fresh_transfer(&cfg, 99);
    // Block 2: fresh (accepted), fresh again (double spend in the block: rejected), and the
    // block-1 transfer again (spent in block 1: rejected). Only the first bumps the nonce.
    let mut txs = Vec::new();
    for (n, p) in [(nonce, &fresh), (nonce + 1, &fresh), (nonce + 1, &payload)] {
        let mut tx = Transaction::new_unsigned(
            1337,
            [0; 32],
            n,
            100_000,
            1,
            vm_runtime::tx::TxKind::Privacy(p.clone()),
        );
        tx.sign(&key);
        txs.push(tx.encode());
    }
    let mut b2 = Block {
        header: node_core::block::BlockHeader {
            chain_id: 1337,
            height: 2,
            timestamp: 1_700_000_100,
            parent_hash: blocks[0].header.hash(),
            tx_root: tx_root_cpu(&txs),
        },
        txs,
    };
    let f2 = env.path("replay.svm");
    write_file(&f2, &g, &[blocks[0].clone(), b2.clone()]);
    let out = import(&env, &f2, None);
    assert!(out.status.success(), "double-spend block: {}", stderr(&out));
    let all = [blocks[0].clone(), b2.clone()];
    let (h2, root2) = env.head();
    assert_eq!(h2, 2);
    assert_eq!(root2, reference_root_depth(&g, &all, 4));
    let out = env.run(&["state", "balance", &hex::encode(addr)]);
    assert_eq!(
        field(&stdout(&out), "nonce").parse::<u64>().expect("nonce"),
        nonce + 1,
        "exactly one of the three privacy transfers is accepted"
    );

    // A corrupted proof: block 3 rejected, nothing changes.
    let mut tx = Transaction::decode(&b2.txs[0]).expect("tx");
    if let vm_runtime::tx::TxKind::Privacy(p) = &mut tx.kind {
        p[10] ^= 0x01;
    }
    tx.nonce = nonce + 2;
    tx.sign(&key);
    b2.txs = vec![tx.encode()];
    b2.header.height = 3;
    b2.header.parent_hash = all[1].header.hash();
    b2.header.tx_root = tx_root_cpu(&b2.txs);
    let f3 = env.path("badproof.svm");
    write_file(&f3, &g, &[all[0].clone(), all[1].clone(), b2]);
    let out = import(&env, &f3, None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid privacy proof"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.head(), (2, root2));
}

/// The import pipeline checks the proofs of blocks that queued up in one batch
/// (`Node::verify_proofs_group`): two valid blocks both pass with their own privacy counts;
/// a bad proof in the second block rejects only that block (naming its transaction), and a
/// bad proof in the first stops the group there.
#[test]
fn grouped_proof_checks_reject_only_the_bad_block() {
    let (env, _, g, blocks) =
        privacy_block("[privacy]\ntree_depth = 4\n[scheduler]\ncalibration = false\n");
    let cfg = node_core::config::NodeConfig::load(&env.config).expect("config");
    let node = node_core::open_node(&cfg, node_core::open_store(&cfg).expect("store"), None)
        .expect("node");
    let (_, ghash, _) = node.init_genesis(&g).expect("genesis");
    let b1_privacy = blocks[0]
        .txs
        .iter()
        .filter(|t| {
            matches!(
                Transaction::decode(t).expect("tx").kind,
                vm_runtime::tx::TxKind::Privacy(_)
            )
        })
        .count();
    assert!(
        b1_privacy > 0,
        "the generated block has no privacy transfer"
    );
    // Block 2: a fresh transfer (stages 1-4 do not look at nonces or balances), and the
    // same block with its proof corrupted.
    let fresh = fresh_transfer(&cfg, 7);
    let key = node_core::workload::dev_key(7, 3);
    let block_with = |payload: Vec<u8>, height: u64, parent: [u8; 32]| {
        let mut tx = Transaction::new_unsigned(
            1337,
            [0; 32],
            0,
            100_000,
            1,
            vm_runtime::tx::TxKind::Privacy(payload),
        );
        tx.sign(&key);
        let txs = vec![tx.encode()];
        Block {
            header: node_core::block::BlockHeader {
                chain_id: 1337,
                height,
                timestamp: 1_700_000_100,
                parent_hash: parent,
                tx_root: tx_root_cpu(&txs),
            },
            txs,
        }
    };
    let mut bad = fresh.clone();
    bad[10] ^= 0x01;
    let h1 = blocks[0].header.hash();
    let signed = |b: &Block, parent| node.verify_signed(b.clone(), parent).expect("stages 1-3");

    let good2 = block_with(fresh, 2, h1);
    let out = node.verify_proofs_group(vec![
        signed(&blocks[0], (0, ghash)),
        signed(&good2, (1, h1)),
    ]);
    let counts: Vec<usize> = out
        .iter()
        .map(|r| r.as_ref().expect("valid block").privacy_txs)
        .collect();
    assert_eq!(counts, vec![b1_privacy, 1]);

    let bad2 = block_with(bad.clone(), 2, h1);
    let out =
        node.verify_proofs_group(vec![signed(&blocks[0], (0, ghash)), signed(&bad2, (1, h1))]);
    assert_eq!(out.len(), 2);
    assert!(out[0].is_ok());
    let err = out[1].as_ref().err().expect("block 2 rejected").to_string();
    assert!(
        err.contains("transaction 0 has an invalid privacy proof"),
        "{err}"
    );

    let bad1 = block_with(bad, 1, ghash);
    let out = node.verify_proofs_group(vec![signed(&bad1, (0, ghash)), signed(&good2, (1, h1))]);
    assert_eq!(out.len(), 1, "nothing after the rejected block");
    assert!(out[0].is_err());
}
