//! A small but real transaction executor for tests and benchmarks of the block executors
//! (no WASM): accounts with `u64` balances, transfers with balance checks, transactions that
//! read `k` keys and write `m` keys derived from what they read, and conditional deletes.
//! Deterministic, like every [`TxExecutor`]: the same reads give the same writes and receipt.
//!
//! `work` adds that many SHA-256 rounds per transaction to stand in for VM cost in
//! benchmarks.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::types::{
    Access, BlockEnv, Log, ReadError, Receipt, StateKey, StateValue, StateView, TxExecutor,
    TxStatus,
};

/// A synthetic transaction over keys `0..universe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SynthTx {
    /// Moves `amount` from key `from` to key `to` (balances, `u64` LE; absent = 0). Reverts,
    /// writing nothing, if `from` cannot pay or `to` would overflow.
    Transfer { from: u32, to: u32, amount: u64 },
    /// Reads every key of `reads`, then writes to each key of `writes` a value derived from
    /// all values read, the salt and the key.
    Mix {
        reads: Vec<u32>,
        writes: Vec<u32>,
        salt: u64,
    },
    /// Deletes the key if its balance is even, else adds one to it.
    Toggle { key: u32 },
}

/// Executes [`SynthTx`]s.
#[derive(Clone, Debug, Default)]
pub struct SyntheticExecutor {
    /// Extra SHA-256 rounds per transaction (simulated VM cost).
    pub work: u32,
    /// Declare each transaction's keys ([`TxExecutor::declare_access`]), so that blocks run
    /// on the declared-access graph instead of Block-STM.
    pub declare: bool,
}

impl SyntheticExecutor {
    /// An executor that declares every transaction's keys (no extra work).
    pub fn declaring() -> Self {
        Self {
            work: 0,
            declare: true,
        }
    }
}

/// Per-worker scratch state.
#[derive(Debug, Default)]
pub struct SynthWorker {
    scratch: Vec<u8>,
}

/// The state key of synthetic key `i`.
pub fn key(i: u32) -> StateKey {
    StateKey::storage(&[0x5a; 20], &i.to_be_bytes())
}

fn balance_of(v: Option<StateValue>) -> u64 {
    match v {
        Some(b) if b.len() >= 8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[..8]);
            u64::from_le_bytes(a)
        }
        Some(b) => b.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64),
        None => 0,
    }
}

fn value(n: u64) -> StateValue {
    Arc::from(n.to_le_bytes().to_vec())
}

/// Committed state with keys `0..universe` holding `balance` each.
pub fn genesis(universe: u32, balance: u64) -> BTreeMap<StateKey, StateValue> {
    (0..universe).map(|i| (key(i), value(balance))).collect()
}

/// A deterministic pseudo-random stream (splitmix64) for tests.
pub fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed;
    move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A deterministic pseudo-random block: `transfer_pct` percent transfers, the rest split
/// between `Mix` (up to 4 reads, 3 writes) and `Toggle`.
pub fn generate_block(seed: u64, universe: u32, len: usize, transfer_pct: u32) -> Vec<SynthTx> {
    let mut next = rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    let u = universe.max(1) as u64;
    (0..len)
        .map(|_| {
            let r = (next() % 100) as u32;
            if r < transfer_pct {
                SynthTx::Transfer {
                    from: (next() % u) as u32,
                    to: (next() % u) as u32,
                    amount: next() % 1000,
                }
            } else if !r.is_multiple_of(4) {
                let reads = (0..next() % 5).map(|_| (next() % u) as u32).collect();
                let writes = (0..1 + next() % 3).map(|_| (next() % u) as u32).collect();
                SynthTx::Mix {
                    reads,
                    writes,
                    salt: next(),
                }
            } else {
                SynthTx::Toggle {
                    key: (next() % u) as u32,
                }
            }
        })
        .collect()
}

impl SyntheticExecutor {
    fn burn(&self, worker: &mut SynthWorker, seed: &[u8]) -> u64 {
        if self.work == 0 {
            return 0;
        }
        worker.scratch.clear();
        worker.scratch.extend_from_slice(seed);
        let mut h: [u8; 32] = Sha256::digest(&worker.scratch).into();
        for _ in 1..self.work {
            h = Sha256::digest(h).into();
        }
        h[0] as u64
    }
}

fn ok(gas_used: u64, return_data: Vec<u8>, events: Vec<Log>) -> Receipt {
    Receipt {
        status: TxStatus::Success,
        gas_used,
        fee: 0,
        return_data,
        events,
    }
}

impl TxExecutor for SyntheticExecutor {
    type Tx = SynthTx;
    type Worker = SynthWorker;

    fn new_worker(&self) -> SynthWorker {
        SynthWorker::default()
    }

    fn declare_access(&self, tx: &SynthTx, out: &mut Vec<(StateKey, Access)>) -> bool {
        if !self.declare {
            return false;
        }
        match tx {
            SynthTx::Transfer { from, to, .. } => {
                out.push((key(*from), Access::Write));
                out.push((key(*to), Access::Write));
            }
            SynthTx::Mix { reads, writes, .. } => {
                out.extend(reads.iter().map(|r| (key(*r), Access::Read)));
                out.extend(writes.iter().map(|w| (key(*w), Access::Write)));
            }
            SynthTx::Toggle { key: k } => out.push((key(*k), Access::Write)),
        }
        true
    }

    fn execute(
        &self,
        worker: &mut SynthWorker,
        tx: &SynthTx,
        env: &BlockEnv,
        view: &mut dyn StateView,
    ) -> Result<Receipt, ReadError> {
        match tx {
            SynthTx::Transfer { from, to, amount } => {
                let fb = balance_of(view.read(&key(*from))?);
                let tb = balance_of(view.read(&key(*to))?);
                let burned = self.burn(worker, &fb.to_le_bytes());
                let Some(new_from) = fb.checked_sub(*amount) else {
                    return Ok(Receipt {
                        status: TxStatus::Revert,
                        gas_used: 2 + burned % 2,
                        fee: 0,
                        return_data: b"insufficient balance".to_vec(),
                        events: vec![],
                    });
                };
                if from == to {
                    return Ok(ok(2, fb.to_le_bytes().to_vec(), vec![]));
                }
                let Some(new_to) = tb.checked_add(*amount) else {
                    return Ok(Receipt {
                        status: TxStatus::Revert,
                        gas_used: 2,
                        fee: 0,
                        return_data: b"overflow".to_vec(),
                        events: vec![],
                    });
                };
                view.write(key(*from), Some(value(new_from)));
                view.write(key(*to), Some(value(new_to)));
                let log = Log {
                    address: [0x5a; 20],
                    topics: vec![[(*from % 256) as u8; 32]],
                    data: amount.to_le_bytes().to_vec(),
                };
                Ok(ok(4, new_from.to_le_bytes().to_vec(), vec![log]))
            }
            SynthTx::Mix {
                reads,
                writes,
                salt,
            } => {
                let mut h = Sha256::new();
                h.update(salt.to_le_bytes());
                h.update(env.number.to_le_bytes());
                for r in reads {
                    match view.read(&key(*r))? {
                        Some(v) => {
                            h.update([1]);
                            h.update(&v[..]);
                        }
                        None => h.update([0]),
                    }
                }
                let digest: [u8; 32] = h.finalize().into();
                self.burn(worker, &digest);
                for (i, w) in writes.iter().enumerate() {
                    // A value derived from the reads; small enough to keep transfers going.
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&digest[(i % 4) * 8..(i % 4) * 8 + 8]);
                    view.write(key(*w), Some(value(u64::from_le_bytes(b) % 1_000_000)));
                }
                Ok(ok(
                    (reads.len() + writes.len()) as u64,
                    digest.to_vec(),
                    vec![],
                ))
            }
            SynthTx::Toggle { key: k } => {
                let b = balance_of(view.read(&key(*k))?);
                if b.is_multiple_of(2) {
                    view.write(key(*k), None);
                } else {
                    view.write(key(*k), Some(value(b + 1)));
                }
                // Read back our own write (read-your-writes).
                let after = view.read(&key(*k))?;
                Ok(ok(2, after.map(|v| v.to_vec()).unwrap_or_default(), vec![]))
            }
        }
    }
}
