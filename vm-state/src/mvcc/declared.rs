//! Declared-access execution: a block whose transactions all declare, before they run, the
//! keys they can touch ([`TxExecutor::declare_access`]) runs on the dependency graph those
//! declarations give, with no speculation, no read sets and no validation.
//!
//! # The graph
//!
//! For each key, its accesses in block order: a read depends on the last write before it; a
//! write depends on every read since the last write, or on the last write if there was no
//! read since. Transaction `j` depends on `i < j` when they share a key and one of them
//! writes it, through a chain of such edges (reads of a key between two writes run in any
//! order among themselves). A transaction runs once all transactions it depends on have
//! finished, so when it runs every key it declared holds exactly what sequential execution
//! would give it (every lower writer of the key has finished, no higher writer has started),
//! and its result is the sequential one. Keys that only reads touch (a contract's code hash)
//! add no edge at all.
//!
//! Building the graph is parallel: the declarations are collected in parallel chunks into
//! one vector of accesses; the keys are split into shards by hash, one per thread, each shard
//! scanning every access in block order to give its keys' slots and edges; the edges are then
//! sorted into per-transaction successor lists. Each key's last access is marked: the
//! transaction that makes it hands the key's final value to the block's write set.
//!
//! # Running it
//!
//! Workers take ready transactions (first the successor a finished transaction just made
//! ready, then others made ready meanwhile, then those ready from the start, in block order),
//! execute them over a [`DeclaredView`] of the slots, apply the writes to the slots, and count
//! down their successors' pending counts. Every write of the block is declared, so a key
//! that no transaction declares as written holds its committed value all block long: the
//! view answers reads of such keys from committed state whether declared or not (a
//! contract's code blob). An undeclared read of a key the block writes, an undeclared write,
//! or a write to a key declared read-only is a broken promise of the executor; the run then
//! stops with [`VmStateError::Invariant`] and `ParallelExecutor::execute_block` re-runs the
//! block sequentially, so a wrong declaration can cost time but never change a result.
//!
//! A graph with too little parallelism (its longest chain covers most of the block, e.g.
//! transfers among 2 accounts) is not run: the block runs sequentially instead. In a large
//! block the graph of the first [`SAMPLE`] transactions is built first, and if it is such a
//! chain the full graph is not built.

use std::hash::BuildHasher;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use crossbeam_deque::{Steal, Stealer, Worker};
use crossbeam_utils::{Backoff, CachePadded};
use hashbrown::hash_table::HashTable;
use hashbrown::DefaultHashBuilder;
use parking_lot::Mutex;
use rayon::prelude::*;

use crate::error::{Result, VmStateError};
use crate::mvcc::executor::{drop_later, panic_message, profiling, since, tick};
use crate::mvcc::memory::{sort_prefixed, KeyPrefix};
use crate::mvcc::{BlockOutput, ExecStats, WorkerProfile};
use crate::store::StateReader;
use crate::types::{
    Access, BlockEnv, ReadError, Receipt, StateKey, StateValue, StateView, TxExecutor, TxStatus,
};
use crate::write_set::WriteSet;

/// A graph whose longest chain is longer than this fraction (`CHAIN_NUM / CHAIN_DEN`) of the
/// block runs sequentially: at most 4/3 transactions could run at a time on average.
const CHAIN_NUM: usize = 3;
const CHAIN_DEN: usize = 4;

/// Wall time of named steps, recorded only when profiling.
pub(crate) struct Steps {
    at: Option<Instant>,
    pub(crate) list: Vec<(&'static str, u64)>,
}

impl Steps {
    pub(crate) fn new() -> Self {
        Self {
            at: profiling().then(Instant::now),
            list: Vec::new(),
        }
    }

    /// Ends the step `name` (the time since the previous mark).
    pub(crate) fn mark(&mut self, name: &'static str) {
        if let Some(at) = &mut self.at {
            let now = Instant::now();
            self.list
                .push((name, now.duration_since(*at).as_nanos() as u64));
            *at = now;
        }
    }
}

/// One declared access.
#[derive(Default)]
struct Decl {
    hash: u64,
    key: StateKey,
    /// The declaring transaction.
    txn: u32,
    write: bool,
}

/// A key's state during the block.
struct Slot {
    /// Whether any transaction of the block declared a write here.
    writable: bool,
    /// The committed value of a read-only slot, once read (read without a lock; readers copy
    /// the bytes, so no reference count is shared between cores).
    base: OnceLock<Option<StateValue>>,
    /// The latest value written in this block (`None`: not written yet).
    cur: Mutex<Option<Option<StateValue>>>,
}

impl Slot {
    fn new() -> Self {
        Self {
            writable: false,
            base: OnceLock::new(),
            cur: Mutex::new(None),
        }
    }
}

/// Roots a worker claims at a time (fewer updates of the shared claim counter).
const ROOT_CLAIM: usize = 8;

/// No transaction / no access.
const NONE: u32 = u32::MAX;

/// Set in `Graph::slot_of` on the last access of each key in block order: the transaction
/// that makes it hands the key's final value to the block's write set. The other bits are
/// the slot.
const LAST: u32 = 1 << 31;

/// The graph is built in shards of keys (by key hash), one per thread of the pool: each
/// shard scans every access in block order and handles the keys of its own shard.
fn shard_of(hash: u64, shards: usize) -> usize {
    // hashbrown uses the low bits (bucket) and the top 7 bits (tag): shard on others.
    ((hash >> 32) as usize) % shards
}

/// One shard of the graph under construction, then of the running block: its slots, the
/// first access of each (its key), and the edges its keys gave.
struct Shard {
    /// Slots by key hash.
    table: HashTable<u32>,
    slots: Vec<Slot>,
    first: Vec<u32>,
    edges: Vec<(u32, u32)>,
}

/// The dependency graph of a block, ready to run.
pub(crate) struct Graph {
    /// Every access, transaction by transaction (`offsets[t]..offsets[t + 1]` are `t`'s).
    decls: Vec<Decl>,
    offsets: Vec<u32>,
    /// The slot of each access in its key's shard.
    slot_of: Vec<AtomicU32>,
    shards: Vec<Shard>,
    /// Successors of each transaction (`succ_start[t]..succ_start[t + 1]` in `succ`).
    succ: Vec<u32>,
    succ_start: Vec<u32>,
    /// Unfinished predecessors of each transaction.
    pending: Vec<AtomicU32>,
    /// Transactions with no predecessor, in block order.
    roots: Vec<u32>,
    hasher: DefaultHashBuilder,
    /// The number of transactions on the longest chain.
    pub(crate) depth: usize,
    /// How long each step of building it took (profiling only).
    pub(crate) steps: Vec<(&'static str, u64)>,
}

impl Graph {
    /// The slot of `key` (hash `h`), if some transaction of the block declared it.
    fn lookup(&self, h: u64, key: &StateKey) -> Option<&Slot> {
        let sh = &self.shards[shard_of(h, self.shards.len())];
        let l = *sh.table.find(h, |&l| {
            self.decls[sh.first[l as usize] as usize].key == *key
        })?;
        sh.slots.get(l as usize)
    }

    fn slot(&self, access: usize) -> &Slot {
        self.slot_at(access, self.slot_of[access].load(Ordering::Relaxed))
    }

    /// The slot of `access`, whose `slot_of` entry (already loaded) is `bits`.
    fn slot_at(&self, access: usize, bits: u32) -> &Slot {
        let d = &self.decls[access];
        let shard = shard_of(d.hash, self.shards.len());
        &self.shards[shard].slots[(bits & !LAST) as usize]
    }
}

/// What the declarations allow.
pub(crate) enum Plan {
    /// Some transaction did not declare: use Block-STM.
    Undeclared,
    /// The graph is nearly a chain: run the block sequentially.
    Chain { depth: usize },
    /// Run the graph.
    Graph(Box<Graph>),
}

/// Transactions whose graph is built first in a large block: if they already form a chain
/// (transfers among 2 accounts), the block is taken for one and its full graph is not built.
const SAMPLE: usize = 256;

/// Collects the declarations of `txs` and builds their graph (on the current rayon pool).
pub(crate) fn plan<E: TxExecutor>(exec: &E, txs: &[E::Tx]) -> Result<Plan> {
    if txs.len() > 4 * SAMPLE {
        match build(exec, &txs[..SAMPLE])? {
            Plan::Graph(g) => drop_later(g),
            chain_or_undeclared => return Ok(chain_or_undeclared),
        }
    }
    build(exec, txs)
}

/// The graph of `txs`.
fn build<E: TxExecutor>(exec: &E, txs: &[E::Tx]) -> Result<Plan> {
    let n = txs.len();
    let Some(first) = txs.first() else {
        return Ok(Plan::Chain { depth: 0 });
    };
    // Executors that never declare answer the first transaction at once.
    if !exec.declare_access(first, &mut Vec::new()) || u32::try_from(n).is_err() {
        return Ok(Plan::Undeclared);
    }
    let mut steps = Steps::new();
    let threads = rayon::current_num_threads().max(1);
    let hasher = DefaultHashBuilder::default();
    let chunk = n.div_ceil(threads * 4).max(64);
    let chunks: Option<Vec<Vec<Decl>>> = txs
        .par_chunks(chunk)
        .enumerate()
        .map(|(c, part)| {
            let mut out: Vec<Decl> = Vec::with_capacity(part.len() * 4);
            let mut raw = Vec::new();
            for (i, tx) in part.iter().enumerate() {
                raw.clear();
                if !exec.declare_access(tx, &mut raw) {
                    return None;
                }
                let txn = (c * chunk + i) as u32;
                let from = out.len();
                // One entry per key; a key declared both ways is a write.
                for (key, access) in raw.drain(..) {
                    let hash = hasher.hash_one(&key);
                    let write = access == Access::Write;
                    match out[from..]
                        .iter_mut()
                        .find(|d| d.hash == hash && d.key == key)
                    {
                        Some(d) => d.write |= write,
                        None => out.push(Decl {
                            hash,
                            key,
                            txn,
                            write,
                        }),
                    }
                }
            }
            Some(out)
        })
        .collect();
    let Some(chunks) = chunks else {
        return Ok(Plan::Undeclared);
    };
    steps.mark("plan-declare");
    let total: usize = chunks.iter().map(Vec::len).sum();
    if total >= LAST as usize {
        return Ok(Plan::Undeclared);
    }
    // One vector of accesses, filled in parallel (each chunk moves into its own part), and
    // the offsets of each transaction's accesses.
    let mut decls: Vec<Decl> = (0..total)
        .into_par_iter()
        .map(|_| Decl::default())
        .collect();
    let mut offsets = vec![0u32; n + 1];
    {
        // (first access, its part of `decls`, its part of `offsets`, its accesses)
        type Part<'a> = (usize, &'a mut [Decl], &'a mut [u32], Vec<Decl>);
        let mut parts: Vec<Part> = Vec::with_capacity(chunks.len());
        let (mut rest, mut rest_off) = (&mut decls[..], &mut offsets[1..]);
        let mut start = 0usize;
        for c in chunks {
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(c.len());
            let txs_here = chunk.min(rest_off.len());
            let (off, off_tail) = std::mem::take(&mut rest_off).split_at_mut(txs_here);
            let len = part.len();
            parts.push((start, part, off, c));
            start += len;
            rest = tail;
            rest_off = off_tail;
        }
        let chunk_u32 = chunk as u32;
        parts
            .into_par_iter()
            .enumerate()
            .for_each(|(ci, (start, part, off, c))| {
                let first_tx = ci as u32 * chunk_u32;
                for (slot, d) in part.iter_mut().zip(c) {
                    off[(d.txn - first_tx) as usize] += 1;
                    *slot = d;
                }
                // Offsets: running count from the chunk's start.
                let mut acc = start as u32;
                for o in off.iter_mut() {
                    acc += *o;
                    *o = acc;
                }
            });
    }
    steps.mark("plan-concat");
    // Each shard: its keys' slots and edges. For each key, in block order: a read depends
    // on the last write; a write on the reads since the last write, or on the last write.
    let slot_of: Vec<AtomicU32> = (0..total)
        .into_par_iter()
        .map(|_| AtomicU32::new(0))
        .collect();
    let shard_count = threads;
    let shards: Vec<Shard> = (0..shard_count)
        .into_par_iter()
        .map(|me| {
            struct Building {
                last_write: u32,
                /// The reads since the last write, as a list through `read_next`.
                reads_head: u32,
                last_access: u32,
            }
            let mut table: HashTable<u32> = HashTable::with_capacity(total / shard_count + 16);
            let mut slots: Vec<Slot> = Vec::with_capacity(total / shard_count + 16);
            let mut first: Vec<u32> = Vec::with_capacity(total / shard_count + 16);
            let mut building: Vec<Building> = Vec::with_capacity(total / shard_count + 16);
            // Read-list nodes: (reading transaction, next node).
            let mut read_nodes: Vec<(u32, u32)> = Vec::new();
            let mut edges: Vec<(u32, u32)> = Vec::with_capacity(total / shard_count + 16);
            for (i, d) in decls.iter().enumerate() {
                if shard_of(d.hash, shard_count) != me {
                    continue;
                }
                let found = table
                    .find(d.hash, |&l| decls[first[l as usize] as usize].key == d.key)
                    .copied();
                let l = match found {
                    Some(l) => l,
                    None => {
                        let l = slots.len() as u32;
                        table.insert_unique(d.hash, l, |&x| decls[first[x as usize] as usize].hash);
                        slots.push(Slot::new());
                        first.push(i as u32);
                        building.push(Building {
                            last_write: NONE,
                            reads_head: NONE,
                            last_access: NONE,
                        });
                        l
                    }
                };
                slot_of[i].store(l, Ordering::Relaxed);
                let b = &mut building[l as usize];
                b.last_access = i as u32;
                let t = d.txn;
                if d.write {
                    slots[l as usize].writable = true;
                    if b.reads_head == NONE {
                        if b.last_write != NONE {
                            edges.push((b.last_write, t));
                        }
                    } else {
                        let mut r = b.reads_head;
                        while r != NONE {
                            let (reader, next) = read_nodes[r as usize];
                            if reader != t {
                                edges.push((reader, t));
                            }
                            r = next;
                        }
                        b.reads_head = NONE;
                    }
                    b.last_write = t;
                } else {
                    if b.last_write != NONE {
                        edges.push((b.last_write, t));
                    }
                    read_nodes.push((t, b.reads_head));
                    b.reads_head = (read_nodes.len() - 1) as u32;
                }
            }
            for b in &building {
                slot_of[b.last_access as usize].fetch_or(LAST, Ordering::Relaxed);
            }
            Shard {
                table,
                slots,
                first,
                edges,
            }
        })
        .collect();

    steps.mark("plan-shards");
    // Successor lists (a counting sort of the edges by their source).
    let mut succ_start = vec![0u32; n + 1];
    let mut indegree = vec![0u32; n];
    for sh in &shards {
        for &(from, to) in &sh.edges {
            succ_start[from as usize + 1] += 1;
            indegree[to as usize] += 1;
        }
    }
    for t in 0..n {
        succ_start[t + 1] += succ_start[t];
    }
    let mut fill: Vec<u32> = succ_start[..n].to_vec();
    let mut succ = vec![0u32; succ_start[n] as usize];
    for sh in &shards {
        for &(from, to) in &sh.edges {
            let f = &mut fill[from as usize];
            succ[*f as usize] = to;
            *f += 1;
        }
    }
    drop(fill);

    steps.mark("plan-succ");
    // The longest chain (edges go from lower to higher transactions).
    let mut level = vec![1u32; n];
    let mut depth = usize::from(n > 0);
    for t in 0..n {
        let l = level[t];
        depth = depth.max(l as usize);
        for &s in &succ[succ_start[t] as usize..succ_start[t + 1] as usize] {
            let s = s as usize;
            level[s] = level[s].max(l + 1);
        }
    }
    drop(level);
    if depth * CHAIN_DEN > n * CHAIN_NUM {
        drop_later(Box::new((decls, shards, succ)));
        return Ok(Plan::Chain { depth });
    }
    steps.mark("plan-depth");
    let roots: Vec<u32> = (0..n as u32)
        .filter(|&t| indegree[t as usize] == 0)
        .collect();
    let pending = indegree.into_iter().map(AtomicU32::new).collect();
    steps.mark("plan-roots");
    Ok(Plan::Graph(Box::new(Graph {
        decls,
        offsets,
        slot_of,
        shards,
        succ,
        succ_start,
        pending,
        roots,
        hasher,
        depth,
        steps: steps.list,
    })))
}

/// A running graph's shared state.
struct Run<'a, E: TxExecutor> {
    g: &'a Graph,
    exec: &'a E,
    txs: &'a [E::Tx],
    env: &'a BlockEnv,
    base: &'a dyn StateReader,
    /// Each transaction's receipt, set by the worker that ran it (no merge at the end).
    receipts: Vec<OnceLock<Receipt>>,
    /// Time spent inside the transaction executor, summed over workers (nanoseconds;
    /// measured only when profiling or asked for by `measure_busy`).
    busy_ns: AtomicU64,
    /// Each worker's time from its own start to its end, summed over workers (nanoseconds).
    active_ns: AtomicU64,
    measure_busy: bool,
    next_root: CachePadded<AtomicUsize>,
    /// The other workers' deques of ready transactions, to steal from.
    stealers: Vec<Stealer<u32>>,
    done: CachePadded<AtomicUsize>,
    halt: AtomicBool,
    error: Mutex<Option<VmStateError>>,
    /// Key-prefix bounds of the write set's buckets (bucket `b` holds the keys whose prefix
    /// has `b` splitters at or below it), so that the buckets sort in parallel and their
    /// concatenation is in key order.
    splitters: Vec<KeyPrefix>,
    /// Each worker's part of the block's write set, by bucket: the final values it took at
    /// the last access of their keys, unsorted.
    written: Mutex<Vec<Vec<Vec<Written>>>>,
}

/// Write-set buckets per worker (more buckets than workers, so that uneven buckets still
/// spread over the pool).
const BUCKETS_PER_WORKER: usize = 4;
/// Sampled keys per bucket when choosing the splitters.
const SAMPLES_PER_BUCKET: usize = 16;

/// Splitters for about `BUCKETS_PER_WORKER * workers` buckets of roughly equal size, from a
/// sample of the block's written keys (none for one worker or no writes: one bucket).
fn splitters(decls: &[Decl], workers: usize) -> Vec<KeyPrefix> {
    let buckets = (BUCKETS_PER_WORKER * workers).min(256);
    if workers <= 1 || decls.is_empty() {
        return Vec::new();
    }
    // Every `stride`-th write (not every `stride`-th access, which could fall on reads
    // only when the block's transactions share one pattern of accesses), parts of the
    // accesses in parallel.
    let stride = (decls.len() / (SAMPLES_PER_BUCKET * buckets)).max(1);
    let mut sample: Vec<KeyPrefix> = decls
        .par_chunks(stride * SAMPLES_PER_BUCKET)
        .flat_map_iter(|part| {
            part.iter()
                .filter(|d| d.write)
                .step_by(stride)
                .map(|d| KeyPrefix::of(&d.key))
        })
        .collect();
    sample.sort_unstable();
    sample.dedup();
    // Fewer buckets where few keys are written (at least two samples per bucket).
    let buckets = buckets.min(sample.len() / 2);
    if buckets < 2 {
        return Vec::new();
    }
    (1..buckets)
        .map(|b| sample[b * sample.len() / buckets])
        .collect()
}

/// The bucket of a key with prefix `p`.
fn bucket_of(splitters: &[KeyPrefix], p: &KeyPrefix) -> usize {
    splitters.partition_point(|s| s <= p)
}

/// A key's final value in the block, with the prefix it is sorted by.
type Written = (KeyPrefix, StateKey, Option<StateValue>);

/// `parts` in order as one vector, each part moved into its own range in parallel.
fn concat_parallel<T: Default + Send>(parts: Vec<Vec<T>>) -> Vec<T> {
    let total: usize = parts.iter().map(Vec::len).sum();
    let mut out: Vec<T> = (0..total).into_par_iter().map(|_| T::default()).collect();
    let mut ranges: Vec<(&mut [T], Vec<T>)> = Vec::with_capacity(parts.len());
    let mut rest = &mut out[..];
    for p in parts {
        let (here, tail) = std::mem::take(&mut rest).split_at_mut(p.len());
        ranges.push((here, p));
        rest = tail;
    }
    ranges.into_par_iter().for_each(|(here, p)| {
        for (dst, w) in here.iter_mut().zip(p) {
            *dst = w;
        }
    });
    out
}

/// Runs the graph with `workers` workers on `pool`; the result is the sequential one.
/// `measure_busy`: report the workers' summed time inside the executor
/// (`profile.execute_ns`) even when not profiling.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<E: TxExecutor>(
    pool: &rayon::ThreadPool,
    mut g: Box<Graph>,
    exec: &E,
    txs: &[E::Tx],
    env: &BlockEnv,
    base: &dyn StateReader,
    workers: usize,
    measure_busy: bool,
) -> Result<BlockOutput> {
    let n = txs.len();
    let started = Instant::now();
    let mut steps = Steps::new();
    steps.list = std::mem::take(&mut g.steps);
    let receipts = pool.install(|| (0..n).into_par_iter().map(|_| OnceLock::new()).collect());
    steps.mark("run-receipt-slots");
    let splitters = pool.install(|| splitters(&g.decls, workers));
    steps.mark("run-splitters");
    // Each worker's deque of transactions made ready by the ones it finished (last in,
    // first out: a successor runs where its predecessor's writes are in cache).
    let locals: Vec<Worker<u32>> = (0..workers).map(|_| Worker::new_lifo()).collect();
    let run = Run {
        g: &g,
        exec,
        txs,
        env,
        base,
        receipts,
        busy_ns: AtomicU64::new(0),
        active_ns: AtomicU64::new(0),
        measure_busy: measure_busy || profiling(),
        next_root: CachePadded::new(AtomicUsize::new(0)),
        stealers: locals.iter().map(Worker::stealer).collect(),
        done: CachePadded::new(AtomicUsize::new(0)),
        halt: AtomicBool::new(false),
        error: Mutex::new(None),
        splitters,
        written: Mutex::new(Vec::with_capacity(workers)),
    };
    pool.scope(|s| {
        let run = &run;
        for (me, local) in locals.into_iter().enumerate() {
            s.spawn(move |_| {
                let r = catch_unwind(AssertUnwindSafe(|| run.worker(me, &local)));
                let e = match r {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e,
                    Err(p) => VmStateError::Invariant(format!(
                        "declared-access worker panicked: {}",
                        panic_message(p)
                    )),
                };
                run.halt.store(true, Ordering::Relaxed);
                run.error.lock().get_or_insert(e);
            });
        }
    });
    let parallel_ns = started.elapsed().as_nanos() as u64;
    steps.mark("run-workers");
    let finishing = Instant::now();
    if let Some(e) = run.error.lock().take() {
        drop_later(Box::new(g));
        return Err(e);
    }
    if run.done.load(Ordering::Acquire) != n {
        drop_later(Box::new(g));
        return Err(VmStateError::Invariant(
            "declared-access workers stopped before the block was done".into(),
        ));
    }
    let slots = run.receipts;
    let busy_ns = run.busy_ns.into_inner();
    let effective_parallel_ns = run.active_ns.into_inner() / workers.max(1) as u64;
    let parts = run.written.into_inner();
    let ((write_set, gathered), (receipts, receipts_ns)) = pool.install(|| {
        rayon::join(
            || {
                // Each bucket: the workers' parts of it, sorted by key (buckets in
                // parallel); then the buckets, in order, moved into one vector in parallel.
                let buckets = parts.iter().map(Vec::len).max().unwrap_or(0);
                let mut by_bucket: Vec<Vec<Vec<Written>>> = (0..buckets)
                    .map(|_| Vec::with_capacity(parts.len()))
                    .collect();
                for worker_part in parts {
                    for (list, p) in by_bucket.iter_mut().zip(worker_part) {
                        list.push(p);
                    }
                }
                let sorted: Vec<Vec<(StateKey, Option<StateValue>)>> = by_bucket
                    .into_par_iter()
                    .map(|lists| {
                        let mut all: Vec<Written> =
                            Vec::with_capacity(lists.iter().map(Vec::len).sum());
                        for l in lists {
                            all.extend(l);
                        }
                        sort_prefixed(all, false)
                    })
                    .collect();
                let gathered = finishing.elapsed().as_nanos() as u64;
                (WriteSet::from_sorted(concat_parallel(sorted)), gathered)
            },
            || {
                // Indexed (each thread writes its part in place); a missing receipt is
                // flagged and the placeholder never returned.
                let missing = AtomicBool::new(false);
                let all: Vec<Receipt> = slots
                    .into_par_iter()
                    .map(|s| {
                        s.into_inner().unwrap_or_else(|| {
                            missing.store(true, Ordering::Relaxed);
                            Receipt {
                                status: TxStatus::Rejected(String::new()),
                                gas_used: 0,
                                fee: 0,
                                return_data: Vec::new(),
                                events: Vec::new(),
                            }
                        })
                    })
                    .collect();
                let r = if missing.into_inner() {
                    Err(VmStateError::Invariant(
                        "a transaction has no receipt".into(),
                    ))
                } else {
                    Ok(all)
                };
                (r, finishing.elapsed().as_nanos() as u64)
            },
        )
    });
    let receipts = receipts?;
    drop_later(g);
    steps.mark("finish");
    let mut steps: Vec<(String, u64)> = steps
        .list
        .into_iter()
        .map(|(name, ns)| (name.to_string(), ns))
        .collect();
    if profiling() {
        steps.push(("finish-write-set".into(), gathered));
        steps.push(("finish-receipts".into(), receipts_ns));
    }
    Ok(BlockOutput {
        receipts,
        write_set,
        stats: ExecStats {
            txs: n,
            workers,
            executions: n as u64,
            declared_runs: 1,
            steps,
            parallel_ns,
            effective_parallel_ns,
            finish_ns: finishing.elapsed().as_nanos() as u64,
            profile: WorkerProfile {
                execute_ns: busy_ns,
                ..WorkerProfile::default()
            },
            ..ExecStats::default()
        },
    })
}

impl<E: TxExecutor> Run<'_, E> {
    /// The next ready transaction, if any now: from this worker's deque, else the next of
    /// its claimed roots, else a new claim of [`ROOT_CLAIM`] roots, else one stolen from
    /// another worker's deque.
    fn take_ready(
        &self,
        me: usize,
        local: &Worker<u32>,
        claimed: &mut std::ops::Range<usize>,
    ) -> Option<u32> {
        if let Some(t) = local.pop() {
            return Some(t);
        }
        let roots = &self.g.roots;
        if claimed.start >= claimed.end && self.next_root.load(Ordering::Relaxed) < roots.len() {
            let i = self.next_root.fetch_add(ROOT_CLAIM, Ordering::AcqRel);
            *claimed = i.min(roots.len())..(i + ROOT_CLAIM).min(roots.len());
        }
        if let Some(i) = claimed.next() {
            return Some(roots[i]);
        }
        let k = self.stealers.len();
        for j in 1..k {
            loop {
                match self.stealers[(me + j) % k].steal() {
                    Steal::Success(t) => return Some(t),
                    Steal::Retry => continue,
                    Steal::Empty => break,
                }
            }
        }
        None
    }

    fn worker(&self, me: usize, local: &Worker<u32>) -> Result<()> {
        let begun = Instant::now();
        let n = self.txs.len();
        let mut worker = self.exec.new_worker();
        let mut writes: Vec<Option<Option<StateValue>>> = Vec::new();
        let buckets = self.splitters.len() + 1;
        let per_bucket = self.g.shards.iter().map(|s| s.slots.len()).sum::<usize>()
            / (self.stealers.len().max(1) * buckets);
        let mut written: Vec<Vec<Written>> = (0..buckets)
            .map(|_| Vec::with_capacity(per_bucket))
            .collect();
        let backoff = Backoff::new();
        let mut next: Option<u32> = None;
        let mut claimed = 0..0;
        // Finished transactions not yet added to `done` (added when this worker runs out of
        // work: one shared counter update per idle spell, not per transaction).
        let mut finished = 0usize;
        let prof = self.measure_busy;
        let mut busy = 0u64;
        let result = loop {
            if self.halt.load(Ordering::Relaxed) {
                break Ok(());
            }
            let t = match next
                .take()
                .or_else(|| self.take_ready(me, local, &mut claimed))
            {
                Some(t) => t,
                None => {
                    if finished > 0 {
                        self.done
                            .fetch_add(std::mem::take(&mut finished), Ordering::AcqRel);
                    }
                    if self.done.load(Ordering::Acquire) >= n {
                        break Ok(());
                    }
                    backoff.snooze();
                    continue;
                }
            };
            backoff.reset();
            let started = tick(prof);
            let r = self.execute(&mut worker, t, &mut writes, &mut written);
            busy += since(started);
            match r {
                Ok(r) => {
                    let slot = self.receipts.get(t as usize);
                    if slot.is_none_or(|s| s.set(r).is_err()) {
                        break Err(VmStateError::Invariant(format!(
                            "transaction {t} ran twice or is out of range"
                        )));
                    }
                }
                Err(e) => break Err(e),
            }
            let g = self.g;
            let (a, b) = (g.succ_start[t as usize], g.succ_start[t as usize + 1]);
            for &s in &g.succ[a as usize..b as usize] {
                if g.pending[s as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                    if next.is_none() {
                        next = Some(s);
                    } else {
                        local.push(s);
                    }
                }
            }
            finished += 1;
        };
        self.busy_ns.fetch_add(busy, Ordering::Relaxed);
        self.active_ns
            .fetch_add(begun.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if finished > 0 {
            self.done.fetch_add(finished, Ordering::AcqRel);
        }
        self.exec.recycle_worker(worker);
        self.written.lock().push(written);
        result
    }

    fn execute(
        &self,
        worker: &mut E::Worker,
        t: u32,
        writes: &mut Vec<Option<Option<StateValue>>>,
        written: &mut [Vec<Written>],
    ) -> Result<Receipt> {
        let g = self.g;
        let txn = t as usize;
        let tx = self.txs.get(txn).ok_or_else(|| {
            VmStateError::Invariant(format!("ready transaction {txn} out of range"))
        })?;
        let (a, b) = (g.offsets[txn] as usize, g.offsets[txn + 1] as usize);
        writes.clear();
        writes.resize(b - a, None);
        let mut view = DeclaredView {
            g,
            first: a,
            decls: &g.decls[a..b],
            base: self.base,
            hasher: &g.hasher,
            writes,
            broken: None,
            storage_error: None,
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.exec.execute(worker, tx, self.env, &mut view)
        }))
        .map_err(|p| VmStateError::ExecutorPanic {
            tx: txn,
            message: panic_message(p),
        })?;
        if let Some(msg) = view.broken.take() {
            return Err(VmStateError::Invariant(format!(
                "transaction {txn} broke its declared access: {msg}"
            )));
        }
        if let Some(msg) = view.storage_error.take() {
            return Err(VmStateError::Storage(msg));
        }
        let receipt = match result {
            Ok(r) => r,
            Err(ReadError::Storage(msg)) => return Err(VmStateError::Storage(msg)),
            Err(ReadError::Dependency(d)) => {
                return Err(VmStateError::Invariant(format!(
                    "transaction {txn} returned a dependency on {d} in a declared-access run"
                )))
            }
        };
        for (i, w) in writes.iter_mut().enumerate() {
            let access = a + i;
            let bits = g.slot_of[access].load(Ordering::Relaxed);
            let slot = g.slot_at(access, bits);
            if bits & LAST == 0 {
                if let Some(v) = w.take() {
                    *slot.cur.lock() = Some(v);
                }
                continue;
            }
            // The key's last access in the block: its final value (this transaction's write,
            // else the last earlier one) goes to the write set. A last write runs after every
            // other access of the key, so it may take the value; a last read may run beside
            // other reads of the same write, so it copies it.
            if !slot.writable {
                continue;
            }
            let last = match w.take() {
                Some(v) => Some(v),
                None if g.decls[access].write => slot.cur.lock().take(),
                None => slot.cur.lock().clone(),
            };
            if let Some(v) = last {
                let key = g.decls[access].key.clone();
                let prefix = KeyPrefix::of(&key);
                let b = bucket_of(&self.splitters, &prefix);
                match written.get_mut(b) {
                    Some(bucket) => bucket.push((prefix, key, v)),
                    None => {
                        return Err(VmStateError::Invariant(format!(
                            "write-set bucket {b} out of range"
                        )))
                    }
                }
            }
        }
        Ok(receipt)
    }
}

/// The view of one transaction in a declared-access run: reads and writes of its declared
/// keys, and reads of keys no transaction of the block declares as written.
struct DeclaredView<'a> {
    g: &'a Graph,
    /// The position of this transaction's first access in the graph.
    first: usize,
    decls: &'a [Decl],
    base: &'a dyn StateReader,
    hasher: &'a DefaultHashBuilder,
    /// The transaction's writes, by position in `decls`.
    writes: &'a mut Vec<Option<Option<StateValue>>>,
    /// The first broken promise (an undeclared write or read of a key the block writes, a
    /// write to a key declared read-only).
    broken: Option<String>,
    storage_error: Option<String>,
}

impl DeclaredView<'_> {
    /// The position among this transaction's declarations of `key`, whose hash is `h`.
    fn position(&self, h: u64, key: &StateKey) -> Option<usize> {
        self.decls.iter().position(|d| d.hash == h && d.key == *key)
    }

    fn storage_error(&mut self, e: VmStateError) -> ReadError {
        let msg = e.to_string();
        self.storage_error = Some(msg.clone());
        ReadError::Storage(msg)
    }
}

impl StateView for DeclaredView<'_> {
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, ReadError> {
        let h = self.hasher.hash_one(key);
        let slot = match self.position(h, key) {
            Some(i) => {
                if let Some(v) = &self.writes[i] {
                    return Ok(v.clone());
                }
                self.g.slot(self.first + i)
            }
            // Not declared by this transaction. Every write of the block is declared, so a
            // key no transaction declared as written holds its committed value for the whole
            // block, in any order: such reads need no declaration (a contract's code blob).
            None => match self.g.lookup(h, key) {
                Some(slot) if slot.writable => {
                    let msg = format!(
                        "read of undeclared key {}, which the block writes",
                        hex::encode(&key.0)
                    );
                    self.broken.get_or_insert(msg.clone());
                    return Err(ReadError::Storage(msg));
                }
                Some(slot) => slot,
                None => return self.base.get(key).map_err(|e| self.storage_error(e)),
            },
        };
        if !slot.writable {
            // Nobody writes it in this block: the committed value, read once and copied (no
            // reference count shared by every reader of a hot key).
            let v = match slot.base.get() {
                Some(v) => v,
                None => {
                    let v = self.base.get(key).map_err(|e| self.storage_error(e))?;
                    slot.base.get_or_init(|| v)
                }
            };
            return Ok(v.as_deref().map(StateValue::from));
        }
        let cur = slot.cur.lock().clone();
        match cur {
            Some(v) => Ok(v),
            // Not written yet in this block: committed state (a written key is usually read
            // from there once, by its first writer).
            None => self.base.get(key).map_err(|e| self.storage_error(e)),
        }
    }

    fn write(&mut self, key: StateKey, value: Option<StateValue>) {
        match self.position(self.hasher.hash_one(&key), &key) {
            Some(i) if self.decls[i].write => self.writes[i] = Some(value),
            Some(_) => {
                self.broken.get_or_insert_with(|| {
                    format!("write of read-only key {}", hex::encode(&key.0))
                });
            }
            None => {
                self.broken.get_or_insert_with(|| {
                    format!("write of undeclared key {}", hex::encode(&key.0))
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(i: u32, write: bool) -> Decl {
        let key = StateKey(vec![b'a', (i % 251) as u8, (i / 251) as u8, 7]);
        Decl {
            hash: u64::from(i),
            key,
            txn: i,
            write,
        }
    }

    /// Splitters rise strictly, their buckets follow key order, and blocks that write few
    /// keys get fewer buckets (or one).
    #[test]
    fn splitters_cut_the_written_keys_in_order() {
        let decls: Vec<Decl> = (0..20_000).map(|i| decl(i, i % 3 != 0)).collect();
        let s = splitters(&decls, 8);
        assert_eq!(s.len(), BUCKETS_PER_WORKER * 8 - 1);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        let mut keys: Vec<KeyPrefix> = decls.iter().map(|d| KeyPrefix::of(&d.key)).collect();
        keys.sort_unstable();
        let buckets: Vec<usize> = keys.iter().map(|k| bucket_of(&s, k)).collect();
        assert!(
            buckets.windows(2).all(|w| w[0] <= w[1]),
            "buckets follow key order"
        );
        assert_eq!(buckets.first(), Some(&0));
        assert_eq!(buckets.last(), Some(&s.len()));
        // One worker, no writes, or too few sampled writes: one bucket.
        assert!(splitters(&decls, 1).is_empty());
        let reads: Vec<Decl> = (0..20_000).map(|i| decl(i, false)).collect();
        assert!(splitters(&reads, 8).is_empty());
        let few: Vec<Decl> = (0..20_000).map(|i| decl(i, i % 100 == 0)).collect();
        let s = splitters(&few, 8);
        assert!(s.len() < BUCKETS_PER_WORKER * 8 - 1);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
    }
}
