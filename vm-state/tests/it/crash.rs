//! Crash safety of RedbStore: a commit interrupted before its commit point, a sharded
//! commit interrupted between its shards' commits, and a writer process killed with SIGKILL
//! while committing (single blocks and groups of blocks in one transaction, one file and
//! sharded), all reopen at the last committed block.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use vm_state::{
    root, CpuStateHasher, CrashPoint, RedbStore, StateKey, StateStore, StateValue, WriteSet,
};

const CHILD_ENV: &str = "SUPERVM_CRASH_CHILD_DB";
const CHILD_SHARDS_ENV: &str = "SUPERVM_CRASH_CHILD_SHARDS";

/// The deterministic write set of block `h`.
fn block(h: u64) -> WriteSet {
    (0..8u64)
        .map(|i| {
            let key = StateKey(format!("k{:03}", (h * 13 + i * 5) % 60).into_bytes());
            let value = if (h + i).is_multiple_of(7) {
                None
            } else {
                Some(Arc::<[u8]>::from(format!("v{h}.{i}").into_bytes()))
            };
            (key, value)
        })
        .collect()
}

fn model_at(height: Option<u64>) -> BTreeMap<StateKey, StateValue> {
    let mut m = BTreeMap::new();
    if let Some(h) = height {
        for b in 0..=h {
            for (k, v) in block(b) {
                match v {
                    Some(v) => {
                        m.insert(k, v);
                    }
                    None => {
                        m.remove(&k);
                    }
                }
            }
        }
    }
    m
}

fn check_consistent(store: &RedbStore) -> Option<u64> {
    let latest = store.latest().expect("latest");
    let height = latest.map(|c| c.height);
    let model = model_at(height);
    let all = store.scan_prefix(b"", usize::MAX).expect("scan");
    let all_map: BTreeMap<StateKey, StateValue> = all.into_iter().collect();
    assert_eq!(all_map, model, "state at height {height:?}");
    if let Some(c) = latest {
        assert_eq!(
            c.state_root,
            root::state_root_of(model.iter().map(|(k, v)| (k.as_bytes(), &v[..])))
        );
    }
    height
}

#[test]
fn interrupted_commit_leaves_previous_block() {
    for shards in [1, 4] {
        interrupted_commit_leaves_previous_block_with(shards);
    }
}

fn interrupted_commit_leaves_previous_block_with(shards: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.redb");
    let hasher = CpuStateHasher::new();
    {
        let store = RedbStore::open_with_shards(&path, shards).expect("open");
        for h in 0..3 {
            store.commit_block(h, &block(h), &hasher).expect("commit");
        }
        assert!(store
            .simulate_crash_before_commit(3, &block(3), &hasher)
            .is_err());
        assert_eq!(check_consistent(&store), Some(2));
        // The same store object goes on from block 2: its in-memory leaf index is
        // reloaded, not left with the dropped block's leaves.
        store.commit_block(3, &block(3), &hasher).expect("commit");
        assert_eq!(check_consistent(&store), Some(3));
        assert!(store
            .simulate_crash_before_commit(4, &block(4), &hasher)
            .is_err());
        assert_eq!(check_consistent(&store), Some(3));
    }
    let store = RedbStore::open(&path).expect("reopen");
    assert_eq!(check_consistent(&store), Some(3));
    // The same block commits fine after the restart.
    store.commit_block(4, &block(4), &hasher).expect("commit");
    assert_eq!(check_consistent(&store), Some(4));
}

/// A sharded commit that stops after some shards committed (a crash between the shards'
/// commits; single blocks and groups, genesis included) reopens at the block before it:
/// the shards that were ahead are rolled back with their undo records, and the same blocks
/// then commit with the same roots.
#[test]
fn crash_between_shard_commits_rolls_back() {
    let hasher = CpuStateHasher::new();
    let blocks: Vec<WriteSet> = (0..12).map(block).collect();
    let run = |from: u64, to: u64| -> Vec<(u64, &WriteSet)> {
        (from..to).map(|h| (h, &blocks[h as usize])).collect()
    };
    for shards in [2usize, 3, 5] {
        for stop_after in 1..shards {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("state.redb");
            let crash = CrashPoint::AfterShards(stop_after);
            {
                let store = RedbStore::open_with_shards(&path, shards).expect("open");
                assert!(store.simulate_crash(&run(0, 1), &hasher, crash).is_err());
            }
            let store = RedbStore::open(&path).expect("reopen");
            assert_eq!(check_consistent(&store), None, "genesis rolled back");
            store.commit_blocks(&run(0, 6), &hasher).expect("commit");
            assert_eq!(check_consistent(&store), Some(5));
            assert!(store.simulate_crash(&run(6, 7), &hasher, crash).is_err());
            drop(store);
            let store = RedbStore::open(&path).expect("reopen");
            assert_eq!(check_consistent(&store), Some(5));
            for h in 6..9 {
                store
                    .commit_block(h, &blocks[h as usize], &hasher)
                    .expect("commit");
            }
            // A group stopped between shard commits: back to the block before the group.
            assert!(store.simulate_crash(&run(9, 12), &hasher, crash).is_err());
            drop(store);
            let store = RedbStore::open(&path).expect("reopen");
            assert_eq!(check_consistent(&store), Some(8));
            store.commit_blocks(&run(9, 12), &hasher).expect("group");
            assert_eq!(check_consistent(&store), Some(11));
        }
    }
}

/// Child side of `killed_writer_restarts_at_last_committed_block` (runs only when spawned).
#[test]
#[ignore = "spawned by killed_writer_restarts_at_last_committed_block"]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let shards = std::env::var(CHILD_SHARDS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let store = RedbStore::open_with_shards(&path, shards).expect("open");
    let hasher = CpuStateHasher::new();
    let start = store.next_height().expect("height");
    let mut h = start;
    while h < start + 100_000 {
        // Groups of 1, 2 and 3 blocks (one transaction each), so a kill can hit either kind.
        let n = (h % 3 + 1) as usize;
        let blocks: Vec<WriteSet> = (h..h + n as u64).map(block).collect();
        let group: Vec<(u64, &WriteSet)> = (h..).zip(&blocks).collect();
        store.commit_blocks(&group, &hasher).expect("commit");
        for c in h..h + n as u64 {
            println!("committed {c}");
        }
        h += n as u64;
    }
}

#[test]
fn killed_writer_restarts_at_last_committed_block() {
    for shards in [1, 3] {
        killed_writer_restarts_with(shards);
    }
}

fn killed_writer_restarts_with(shards: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.redb");
    let exe = std::env::current_exe().expect("test binary");
    let mut last_seen = None;
    for round in 0..2u64 {
        let mut child = Command::new(&exe)
            .args([
                "crash::child_writer",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .env(CHILD_SHARDS_ENV, shards.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let target = 5 + round * 5;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            if let Some(h) = line
                .strip_prefix("committed ")
                .and_then(|h| h.parse::<u64>().ok())
            {
                last_seen = Some(h);
                if h >= target {
                    break;
                }
            }
        }
        child.kill().expect("kill");
        child.wait().expect("wait");
        let store = RedbStore::open(&path).expect("reopen after kill");
        let height = check_consistent(&store).expect("some block committed");
        // Everything the child reported committed survived; at most the block in flight is
        // beyond it.
        assert!(
            height >= last_seen.expect("child committed"),
            "{height} < {last_seen:?}"
        );
    }
}
