//! Commit cost of the redb store alone: blocks of `W` balance writes (each a fresh value,
//! half of them new keys) over a store that grows from `E` entries, nothing else running.
//!
//! `cargo run --release -p vm-state --example commit_bench [W] [E] [BLOCKS] [OVERLAP] [GROUP]
//! [SHARDS]` (defaults 17000 30000 8 50 1 1): `OVERLAP` percent of a block's writes go to the
//! keys of the previous block (hot accounts), the others half to random existing keys and
//! half to new ones; `GROUP` blocks per commit; `SHARDS` database files
//! (`RedbStore::open_with_shards`). Prints each block's commit time, the median and the mean,
//! then the cost of one committed-state read: 200,000 reads of existing keys through one
//! snapshot against the same reads in a `HashMap` of the initial entries (one thread).

use std::sync::Arc;
use std::time::Instant;

use vm_state::{CpuStateHasher, RedbStore, StateKey, StateStore, WriteSet};

fn key(i: u64) -> StateKey {
    let mut a = [0u8; 20];
    a[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    StateKey::account(&a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, d: u64| -> u64 {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (writes, entries, blocks) = (arg(1, 17_000), arg(2, 30_000), arg(3, 8));
    let overlap = arg(4, 50).min(100);
    // GROUP > 1: blocks are committed GROUP at a time (`RedbStore::commit_blocks`).
    let group = arg(5, 1).max(1) as usize;
    let shards = arg(6, 1).max(1) as usize;
    let dir = tempfile::tempdir()?;
    let store = RedbStore::open_with_shards(dir.path().join("state.redb"), shards)?;
    let hasher = CpuStateHasher::new();
    let block = |h: u64, keys: &mut dyn Iterator<Item = u64>| -> WriteSet {
        keys.map(|i| {
            let v: Arc<[u8]> = Arc::from(&(i ^ h).to_le_bytes()[..]);
            (key(i), Some(v))
        })
        .collect()
    };
    store.commit_block(0, &block(0, &mut (0..entries)), &hasher)?;
    let mut times = Vec::new();
    let mut next = entries;
    let mut previous: Vec<u64> = Vec::new();
    let mut queued: Vec<(u64, WriteSet)> = Vec::new();
    let all = Instant::now();
    for h in 1..=blocks {
        let hot = (writes * overlap / 100).min(previous.len() as u64);
        let rest = writes - hot;
        let hot_keys: Vec<u64> = previous.iter().take(hot as usize).copied().collect();
        let n = next;
        let old = (0..rest / 2).map(|j| (j * 7919 + h * 13) % n);
        let new = n..n + (rest - rest / 2);
        let keys: Vec<u64> = hot_keys.into_iter().chain(old).chain(new).collect();
        next += rest - rest / 2;
        let ws = block(h, &mut keys.iter().copied());
        previous = keys;
        queued.push((h, ws));
        if queued.len() < group && h < blocks {
            continue;
        }
        let t = Instant::now();
        if group == 1 {
            let (h, ws) = &queued[0];
            store.commit_block(*h, ws, &hasher)?;
        } else {
            let refs: Vec<(u64, &WriteSet)> = queued.iter().map(|(h, ws)| (*h, ws)).collect();
            store.commit_blocks(&refs, &hasher)?;
        }
        let ms = t.elapsed().as_secs_f64() * 1e3;
        println!("blocks ..={h}: {} blocks, {ms:.1} ms", queued.len());
        for _ in 0..queued.len() {
            times.push(ms / queued.len() as f64);
        }
        queued.clear();
    }
    let total = all.elapsed().as_secs_f64() * 1e3;
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "median commit {:.1} ms, mean {:.1} ms, for {writes} writes \
         ({overlap}% to the previous block's keys) over {entries}+ entries, {shards} shards \
         ({} threads)",
        times[times.len() / 2],
        total / blocks as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let reads: Vec<StateKey> = (0..200_000u64)
        .map(|j| key((j * 7919) % entries.max(1)))
        .collect();
    let map: std::collections::HashMap<StateKey, u64> = (0..entries).map(|i| (key(i), i)).collect();
    let t = Instant::now();
    let snap = store.snapshot()?;
    let mut found = 0usize;
    for k in &reads {
        found += usize::from(snap.get(k)?.is_some());
    }
    let redb_ns = t.elapsed().as_nanos() as f64 / reads.len() as f64;
    let t = Instant::now();
    let mut in_map = 0usize;
    for k in &reads {
        in_map += usize::from(map.contains_key(k));
    }
    let map_ns = t.elapsed().as_nanos() as f64 / reads.len() as f64;
    println!(
        "read: {redb_ns:.0} ns through a snapshot, {map_ns:.0} ns in a hash map \
         ({found} and {in_map} of {} found)",
        reads.len()
    );
    Ok(())
}
