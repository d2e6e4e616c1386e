//! The crate's one error type.

use crate::types::TxIndex;

/// Everything that can go wrong in `vm-state`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VmStateError {
    /// The parallel executor found a broken invariant (inconsistent scheduler status, an
    /// impossible dependency reported by the transaction executor, a missing output). The
    /// block is re-run sequentially when this comes out of the parallel path.
    #[error("parallel executor invariant broken: {0}")]
    Invariant(String),
    /// The transaction executor panicked while executing transaction `tx`.
    #[error("transaction executor panicked on transaction {tx}: {message}")]
    ExecutorPanic { tx: TxIndex, message: String },
    /// The transaction executor returned `ReadError::Dependency` in sequential execution,
    /// where no read can ever depend on another transaction.
    #[error("transaction {tx} reported a dependency on {on} during sequential execution")]
    SequentialDependency { tx: TxIndex, on: TxIndex },
    /// Reading committed state failed.
    #[error("storage read failed: {0}")]
    Storage(String),
    /// The embedded database failed (open, transaction, commit).
    #[error("database error: {0}")]
    Database(String),
    /// The stored data does not have the expected shape.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// `commit_block` was called with a height that is not exactly the next one.
    #[error("cannot commit block at height {got}: the next height is {expected}")]
    WrongHeight { expected: u64, got: u64 },
    /// The worker thread pool could not be built.
    #[error("thread pool: {0}")]
    ThreadPool(String),
}

/// `Result` with [`VmStateError`].
pub type Result<T, E = VmStateError> = std::result::Result<T, E>;

impl VmStateError {
    /// Whether the parallel executor should fall back to sequential execution on this error
    /// (a broken invariant of the parallel algorithm) rather than give it to the caller.
    pub fn is_parallel_invariant(&self) -> bool {
        matches!(self, VmStateError::Invariant(_))
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for VmStateError {
            fn from(e: $t) -> Self {
                VmStateError::Database(e.to_string())
            }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
