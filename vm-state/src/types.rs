//! Plain types shared by the Block-STM executor (this crate) and the transaction executors
//! that run on it (the WASM VM in `vm-runtime`, test executors in this crate's tests).
//!
//! The contract between the two sides:
//! - The parallel executor hands a transaction executor a [`StateView`] per execution. The
//!   view reads through multi-version memory and records the read set; writes are buffered
//!   by the view and become the incarnation's write set.
//! - A read may hit an ESTIMATE left by an aborted lower transaction: the view then returns
//!   [`ReadError::Dependency`], and the transaction executor must stop at once and return that
//!   error unchanged (the scheduler re-runs the transaction later). The WASM VM does this by
//!   trapping out of the instance and mapping the trap back to the error.
//! - A transaction executor keeps its own overlay for rollback: on revert/out-of-gas/trap it
//!   discards the contract's writes itself, and writes only what must persist (nonce, fee).
//!   The view never needs checkpoints.
//! - A transaction executor is deterministic: same transaction, same reads -> same writes and
//!   receipt, on any thread.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use engine_api::{Address, Log};

/// Position of a transaction in its block (the preset serial order).
pub type TxIndex = usize;
/// How many times a transaction has been (re-)executed in the current block.
pub type Incarnation = u32;

/// A state value. Shared so that multi-version reads never copy.
pub type StateValue = Arc<[u8]>;

/// A state key. The first byte is a tag that names the kind of entry; see the constructors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StateKey(pub Vec<u8>);

impl StateKey {
    /// An account record ([`Account`]).
    pub const TAG_ACCOUNT: u8 = b'a';
    /// Retired (balances before account records, 2026-12-04): refused in genesis files.
    pub const TAG_LEGACY_BALANCE: u8 = b'b';
    /// Retired (nonces before account records, 2026-12-04): refused in genesis files.
    pub const TAG_LEGACY_NONCE: u8 = b'n';
    pub const TAG_CODE: u8 = b'c';
    pub const TAG_STORAGE: u8 = b's';
    /// Reserved for privacy transactions (nullifiers, note commitments, roots).
    pub const TAG_PRIVACY: u8 = b'p';

    fn tagged(tag: u8, addr: &Address, rest: &[u8]) -> Self {
        let mut v = Vec::with_capacity(1 + 20 + rest.len());
        v.push(tag);
        v.extend_from_slice(addr);
        v.extend_from_slice(rest);
        StateKey(v)
    }
    /// The account record of an address: nonce and native balance in one value
    /// ([`Account::encode`]), so a transaction reads and writes its sender once.
    pub fn account(addr: &Address) -> Self {
        Self::tagged(Self::TAG_ACCOUNT, addr, &[])
    }
    /// Code of a contract: the 32-byte code hash (the module itself is stored under
    /// [`StateKey::code_blob`]).
    pub fn code(addr: &Address) -> Self {
        Self::tagged(Self::TAG_CODE, addr, &[])
    }
    /// A module's bytes, by code hash.
    pub fn code_blob(code_hash: &[u8; 32]) -> Self {
        let mut v = Vec::with_capacity(33);
        v.push(b'm');
        v.extend_from_slice(code_hash);
        StateKey(v)
    }
    /// A contract's storage slot (arbitrary key bytes).
    pub fn storage(addr: &Address, key: &[u8]) -> Self {
        Self::tagged(Self::TAG_STORAGE, addr, key)
    }
    /// Privacy-pool state (nullifier set, commitment tree), under a sub-key.
    pub fn privacy(sub: &[u8]) -> Self {
        let mut v = Vec::with_capacity(1 + sub.len());
        v.push(Self::TAG_PRIVACY);
        v.extend_from_slice(sub);
        StateKey(v)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// An account record: the value at [`StateKey::account`], `nonce` as `u64` little-endian
/// then `balance` as `u128` little-endian (24 bytes). An absent record is nonce 0, balance 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub nonce: u64,
    pub balance: u128,
}

impl Account {
    /// Encoded length.
    pub const BYTES: usize = 24;

    /// Decodes a stored record (`None`: absent, the zero account). `Err` names what is wrong.
    pub fn decode(value: Option<&[u8]>) -> Result<Self, String> {
        let Some(v) = value else {
            return Ok(Self::default());
        };
        let (Ok(nonce), Ok(balance)) = (
            <[u8; 8]>::try_from(v.get(..8).unwrap_or_default()),
            <[u8; 16]>::try_from(v.get(8..).unwrap_or_default()),
        ) else {
            return Err(format!(
                "malformed account record: {} bytes, expected {}",
                v.len(),
                Self::BYTES
            ));
        };
        Ok(Self {
            nonce: u64::from_le_bytes(nonce),
            balance: u128::from_le_bytes(balance),
        })
    }

    /// The stored form.
    pub fn encode(&self) -> StateValue {
        let mut b = [0u8; Self::BYTES];
        b[..8].copy_from_slice(&self.nonce.to_le_bytes());
        b[8..].copy_from_slice(&self.balance.to_le_bytes());
        StateValue::from(&b[..])
    }
}

/// Why a read through a [`StateView`] could not complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The value is an ESTIMATE of transaction `.0`, which is being re-executed: stop and
    /// return this error; the scheduler resumes the transaction once `.0` is done.
    #[error("read depends on transaction {0}")]
    Dependency(TxIndex),
    /// The committed-state backend failed.
    #[error("storage error: {0}")]
    Storage(String),
}

/// What a transaction executor sees of state during one execution.
pub trait StateView {
    /// Reads a key: the latest value written by a lower transaction of the block, or committed
    /// state. Recorded in the read set.
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, ReadError>;
    /// Buffers a write (`None` deletes). The last write to a key wins.
    fn write(&mut self, key: StateKey, value: Option<StateValue>);
}

/// The block-level environment every transaction of a block sees.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEnv {
    pub number: u64,
    pub timestamp: u64,
    pub chain_id: u64,
}

/// How a transaction ended. Anything but `Success` rolled back the transaction's own writes;
/// `Rejected` changed nothing at all (bad nonce, unaffordable fee) and charged nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxStatus {
    Success,
    Revert,
    OutOfGas,
    Trap(String),
    Rejected(String),
}

/// The receipt of one transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub status: TxStatus,
    pub gas_used: u64,
    /// Fee charged (burned), in native units.
    pub fee: u128,
    pub return_data: Vec<u8>,
    pub events: Vec<Log>,
}

/// Executes single transactions; the parallel and sequential block executors are generic
/// over it. `Worker` is per-thread state (e.g. cached WASM instances): a block's worker
/// thread takes one with `new_worker`, uses it alone, and hands it back with
/// `recycle_worker` when the block is done, so an executor can keep warm workers for the
/// next block. A worker's state must never change a transaction's result.
pub trait TxExecutor: Send + Sync {
    type Tx: Send + Sync;
    type Worker: Send;
    fn new_worker(&self) -> Self::Worker;
    /// Takes a worker back after a block (default: drops it).
    fn recycle_worker(&self, worker: Self::Worker) {
        drop(worker);
    }
    fn execute(
        &self,
        worker: &mut Self::Worker,
        tx: &Self::Tx,
        env: &BlockEnv,
        view: &mut dyn StateView,
    ) -> Result<Receipt, ReadError>;
    /// The keys `tx` can touch, if they are known before it runs: appends them to `out` and
    /// returns `true`, or returns `false` (the default: not known). The promise: executing
    /// `tx` over any state writes no key outside its [`Access::Write`] entries and reads no
    /// key outside `out`, except keys that no transaction of its block declares as written
    /// (those hold their committed value all block long, e.g. a contract's code). Declaring
    /// more than is touched is allowed. A block whose transactions all declare runs on a
    /// dependency graph instead of Block-STM (see `mvcc::declared`); a broken promise is
    /// caught there (the block is then re-run sequentially) and can never change a result.
    fn declare_access(&self, tx: &Self::Tx, out: &mut Vec<(StateKey, Access)>) -> bool {
        let _ = (tx, out);
        false
    }
}

/// How a transaction declares it uses a key ([`TxExecutor::declare_access`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Access {
    /// Read only.
    Read,
    /// Read, written or deleted.
    Write,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_records_round_trip_and_reject_other_lengths() {
        let a = Account {
            nonce: 7,
            balance: u128::MAX - 3,
        };
        let v = a.encode();
        assert_eq!(v.len(), Account::BYTES);
        assert_eq!(&v[..8], &7u64.to_le_bytes());
        assert_eq!(Account::decode(Some(&v)), Ok(a));
        assert_eq!(Account::decode(None), Ok(Account::default()));
        for n in [0, 8, 16, 23, 25] {
            assert!(Account::decode(Some(&vec![0; n])).is_err(), "{n} bytes");
        }
    }
}
