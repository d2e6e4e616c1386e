//! MemoryStore and RedbStore behave the same; roots follow docs/MERKLE.md.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use vm_state::{
    root, CommitInfo, CpuStateHasher, CrashPoint, MemoryStore, RedbStore, StateKey, StateReader,
    StateStore, StateValue, VmStateError, WriteSet, EMPTY_ROOT,
};

use crate::stress;

fn k(i: u8) -> StateKey {
    StateKey(vec![b's', i % 4, i])
}

fn write_set() -> impl Strategy<Value = WriteSet> {
    proptest::collection::btree_map(
        (0u8..40).prop_map(k),
        proptest::option::weighted(
            0.75,
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(Arc::<[u8]>::from),
        ),
        0..15,
    )
    .prop_map(|m| m.into_iter().collect())
}

fn model_root(model: &BTreeMap<StateKey, StateValue>) -> [u8; 32] {
    root::state_root_of(model.iter().map(|(k, v)| (k.as_bytes(), &v[..])))
}

fn assert_same_state(
    a: &dyn StateStore,
    b: &dyn StateStore,
    model: &BTreeMap<StateKey, StateValue>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.latest().expect("latest"), b.latest().expect("latest"));
    for i in 0..40u8 {
        let want = model.get(&k(i)).cloned();
        prop_assert_eq!(a.get(&k(i)).expect("get"), want.clone());
        prop_assert_eq!(b.get(&k(i)).expect("get"), want);
    }
    for p in 0..4u8 {
        let pa = a.scan_prefix(&[b's', p], 100).expect("scan");
        let pb = b.scan_prefix(&[b's', p], 100).expect("scan");
        let pm: Vec<(StateKey, StateValue)> = model
            .iter()
            .filter(|(key, _)| key.0[1] == p)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        prop_assert_eq!(&pa, &pm);
        prop_assert_eq!(&pb, &pm);
        prop_assert_eq!(
            a.scan_prefix(&[b's', p], 2).expect("scan").len(),
            pm.len().min(2)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24 * stress()))]
    #[test]
    fn memory_and_redb_stores_agree(
        blocks in proptest::collection::vec(write_set(), 1..8),
        shards in 1usize..5,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let redb = RedbStore::open_with_shards(dir.path().join("state.redb"), shards)
            .expect("open");
        prop_assert_eq!(redb.shard_count(), shards);
        let mem = MemoryStore::new();
        let hasher = CpuStateHasher::new();
        let mut model = BTreeMap::new();
        prop_assert_eq!(mem.next_height().expect("h"), 0);
        prop_assert_eq!(redb.next_height().expect("h"), 0);
        for (h, ws) in blocks.iter().enumerate() {
            let h = h as u64;
            let snap_mem = mem.snapshot().expect("snapshot");
            let snap_redb = redb.snapshot().expect("snapshot");
            let before = model.clone();
            let preview = mem.preview_root(ws, &hasher).expect("preview");
            prop_assert_eq!(redb.preview_root(ws, &hasher).expect("preview"), preview);
            let a = mem.commit_block(h, ws, &hasher).expect("commit");
            let b = redb.commit_block(h, ws, &hasher).expect("commit");
            for (key, v) in ws {
                match v {
                    Some(v) => { model.insert(key.clone(), v.clone()); }
                    None => { model.remove(key); }
                }
            }
            let want = CommitInfo { height: h, state_root: model_root(&model) };
            prop_assert_eq!(a, want);
            prop_assert_eq!(b, want);
            prop_assert_eq!(preview, want.state_root);
            assert_same_state(&mem, &redb, &model)?;
            // Snapshots taken before the commit still see the state before it.
            for i in 0..40u8 {
                prop_assert_eq!(snap_mem.get(&k(i)).expect("get"), before.get(&k(i)).cloned());
                prop_assert_eq!(snap_redb.get(&k(i)).expect("get"), before.get(&k(i)).cloned());
            }
        }
        // Reopen = restart (a store keeps the shard count it was created with).
        drop(redb);
        let redb = RedbStore::open(dir.path().join("state.redb")).expect("reopen");
        prop_assert_eq!(redb.shard_count(), shards);
        assert_same_state(&mem, &redb, &model)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16 * stress()))]
    /// Blocks committed in groups (`commit_blocks`: one redb transaction per group) give the
    /// same roots and state as one by one, also after a reopen.
    #[test]
    fn grouped_commits_match_single_commits(
        blocks in proptest::collection::vec(write_set(), 1..10),
        cuts in proptest::collection::vec(1usize..4, 1..10),
        shards in 1usize..4,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let redb = RedbStore::open_with_shards(dir.path().join("state.redb"), shards)
            .expect("open");
        let mem = MemoryStore::new();
        let hasher = CpuStateHasher::new();
        let mut model = BTreeMap::new();
        let mut h = 0usize;
        let mut cut = cuts.iter().cycle();
        while h < blocks.len() {
            let n = (*cut.next().expect("cycle")).min(blocks.len() - h);
            let group: Vec<(u64, &WriteSet)> =
                (h..h + n).map(|i| (i as u64, &blocks[i])).collect();
            let got = redb.commit_blocks(&group, &hasher).expect("group commit");
            let want: Vec<CommitInfo> = group
                .iter()
                .map(|&(height, ws)| mem.commit_block(height, ws, &hasher).expect("commit"))
                .collect();
            prop_assert_eq!(&got, &want);
            for ws in &blocks[h..h + n] {
                for (key, v) in ws.iter() {
                    match v {
                        Some(v) => { model.insert(key.clone(), v.clone()); }
                        None => { model.remove(key); }
                    }
                }
            }
            prop_assert_eq!(want.last().map(|c| c.state_root), Some(model_root(&model)));
            assert_same_state(&mem, &redb, &model)?;
            h += n;
        }
        // Not consecutive, or not at the next height: refused, nothing changes.
        let next = blocks.len() as u64;
        let ws = &blocks[0];
        prop_assert!(redb.commit_blocks(&[(next, ws), (next + 2, ws)], &hasher).is_err());
        prop_assert!(redb.commit_blocks(&[(next + 1, ws)], &hasher).is_err());
        drop(redb);
        let redb = RedbStore::open(dir.path().join("state.redb")).expect("reopen");
        assert_same_state(&mem, &redb, &model)?;
    }
}

#[test]
fn wrong_height_is_rejected_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redb = RedbStore::open(dir.path().join("s.redb")).expect("open");
    let mem = MemoryStore::new();
    let hasher = CpuStateHasher::new();
    let mut ws = WriteSet::new();
    ws.insert(k(1), Some(Arc::from(&b"one"[..])));
    for store in [&redb as &dyn StateStore, &mem] {
        assert_eq!(store.latest().expect("latest"), None);
        assert_eq!(
            store.commit_block(1, &ws, &hasher),
            Err(VmStateError::WrongHeight {
                expected: 0,
                got: 1
            })
        );
        assert_eq!(store.get(&k(1)).expect("get"), None);
        let c0 = store.commit_block(0, &ws, &hasher).expect("genesis");
        assert_ne!(c0.state_root, EMPTY_ROOT);
        for bad in [0u64, 2, 7] {
            assert_eq!(
                store.commit_block(bad, &WriteSet::new(), &hasher),
                Err(VmStateError::WrongHeight {
                    expected: 1,
                    got: bad
                })
            );
        }
        assert_eq!(store.latest().expect("latest"), Some(c0));
        // Deleting everything brings the root back to the empty root.
        let mut del = WriteSet::new();
        del.insert(k(1), None);
        assert_eq!(
            store
                .commit_block(1, &del, &hasher)
                .expect("commit")
                .state_root,
            EMPTY_ROOT
        );
    }
}

#[test]
fn pooled_hasher_gives_the_same_roots() {
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool"),
    );
    let pooled = CpuStateHasher::with_pool(pool);
    let plain = CpuStateHasher::new();
    let a = MemoryStore::new();
    let b = MemoryStore::new();
    let ws: WriteSet = (0..10_000u32)
        .map(|i| {
            (
                StateKey(i.to_be_bytes().to_vec()),
                Some(Arc::<[u8]>::from(i.to_le_bytes().to_vec())),
            )
        })
        .collect();
    assert_eq!(
        a.commit_block(0, &ws, &pooled).expect("a"),
        b.commit_block(0, &ws, &plain).expect("b")
    );
}

/// A data directory written by another state format (format 1: no `format` entry, a
/// height) is refused with an error naming the format, and left as it was.
#[test]
fn redb_refuses_another_state_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.redb");
    {
        let db = redb::Database::create(&path).expect("create");
        let wtx = db.begin_write().expect("write");
        {
            let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            let mut t = wtx.open_table(meta).expect("meta");
            t.insert("height", &7u64.to_le_bytes()[..]).expect("insert");
        }
        wtx.commit().expect("commit");
    }
    let err = RedbStore::open(&path).expect_err("format 1 must be refused");
    assert!(err.to_string().contains("state format 1"), "{err}");
    // A fresh directory opens, and opens again.
    let fresh = dir.path().join("fresh.redb");
    drop(RedbStore::open(&fresh).expect("open"));
    RedbStore::open(&fresh).expect("reopen");
}

/// Shard counts out of range are refused; a sharded store with committed blocks whose shard
/// file is gone is refused, not opened as empty.
#[test]
fn redb_shard_count_and_missing_shard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    assert!(RedbStore::open_with_shards(&path, 0).is_err());
    assert!(RedbStore::open_with_shards(&path, vm_state::MAX_SHARDS + 1).is_err());
    let hasher = CpuStateHasher::new();
    {
        let store = RedbStore::open_with_shards(&path, 3).expect("open");
        let mut ws = WriteSet::new();
        for i in 0..30u8 {
            ws.insert(k(i), Some(Arc::from(&[i][..])));
        }
        store.commit_block(0, &ws, &hasher).expect("commit");
    }
    // The recorded count wins over the argument.
    assert_eq!(
        RedbStore::open_with_shards(&path, 2)
            .expect("reopen")
            .shard_count(),
        3
    );
    std::fs::remove_file(RedbStore::shard_path(&path, 2)).expect("remove shard");
    let err = RedbStore::open(&path).expect_err("a missing shard must be refused");
    assert!(err.to_string().contains("missing"), "{err}");
}

/// One step of `sharded_store_survives_crashes_anywhere`.
#[derive(Clone, Debug)]
enum Step {
    /// Commit the next `n` blocks (one transaction per shard for all of them).
    Commit(usize),
    /// Stop the next `n` blocks' commit after `k` shards committed, then reopen.
    CrashAfter(usize, usize),
    /// Stop the next block's commit before any shard committed, then go on in-process.
    CrashBefore,
    /// Reopen the store.
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1usize..4).prop_map(Step::Commit),
        2 => (1usize..3, 0usize..6).prop_map(|(n, k)| Step::CrashAfter(n, k)),
        1 => Just(Step::CrashBefore),
        1 => Just(Step::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16 * stress()))]
    /// A sharded store under random commits, groups, crashes between shard commits (any
    /// number of shards committed), crashes before the commit point and reopens always
    /// holds exactly the state and root of the last block every shard committed.
    #[test]
    fn sharded_store_survives_crashes_anywhere(
        shards in 2usize..6,
        steps in proptest::collection::vec(step(), 1..12),
        blocks in proptest::collection::vec(write_set(), 40),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.redb");
        let hasher = CpuStateHasher::new();
        let mut store = RedbStore::open_with_shards(&path, shards).expect("open");
        let mut model = BTreeMap::new();
        let mut next = 0usize;
        let apply = |model: &mut BTreeMap<StateKey, StateValue>, ws: &WriteSet| {
            for (key, v) in ws.iter() {
                match v {
                    Some(v) => { model.insert(key.clone(), v.clone()); }
                    None => { model.remove(key); }
                }
            }
        };
        let mem = MemoryStore::new();
        for s in steps {
            let group = |n: usize| -> Vec<(u64, &WriteSet)> {
                (next..(next + n).min(blocks.len())).map(|i| (i as u64, &blocks[i])).collect()
            };
            match s {
                Step::Commit(n) => {
                    let g = group(n);
                    if g.is_empty() { continue; }
                    let got = store.commit_blocks(&g, &hasher).expect("commit");
                    for (i, &(h, ws)) in g.iter().enumerate() {
                        let want = mem.commit_block(h, ws, &hasher).expect("model commit");
                        prop_assert_eq!(got[i], want);
                        apply(&mut model, ws);
                    }
                    next += g.len();
                }
                Step::CrashAfter(n, k) => {
                    let g = group(n);
                    if g.is_empty() { continue; }
                    prop_assert!(store.simulate_crash(&g, &hasher, CrashPoint::AfterShards(k)).is_err());
                    if k >= shards {
                        // Every shard committed: the blocks are durable.
                        for &(h, ws) in &g {
                            mem.commit_block(h, ws, &hasher).expect("model commit");
                            apply(&mut model, ws);
                        }
                        next += g.len();
                    }
                    drop(store);
                    store = RedbStore::open(&path).expect("reopen after a crash");
                }
                Step::CrashBefore => {
                    let g = group(1);
                    if g.is_empty() { continue; }
                    prop_assert!(store.simulate_crash(&g, &hasher, CrashPoint::BeforeCommit).is_err());
                }
                Step::Reopen => {
                    drop(store);
                    store = RedbStore::open(&path).expect("reopen");
                }
            }
            prop_assert_eq!(store.shard_count(), shards);
            prop_assert_eq!(store.next_height().expect("height"), next as u64);
            assert_same_state(&mem, &store, &model)?;
        }
    }
}
