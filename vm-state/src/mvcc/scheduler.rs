//! The collaborative scheduler of Block-STM: execution and validation tasks over the block's
//! preset order, handed out to whichever worker asks next.
//!
//! State (all lock-free counters except one small lock per transaction):
//! - `execution_idx`: the lowest transaction that may still need its first execution; workers
//!   claim execution tasks by `fetch_add` on it.
//! - `validation_idx`: the next transaction to validate; lowered ("a new validation wave")
//!   whenever a transaction is aborted or writes to a key its previous incarnation did not.
//! - per transaction: `(incarnation, status)` with status
//!   `ReadyToExecute -> Executing -> Executed -> Aborting -> ReadyToExecute(incarnation+1)`,
//!   and a list of transactions waiting for it (those that read one of its ESTIMATEs).
//! - `num_active_tasks` and `decrease_cnt` detect completion without a lock: the block is done
//!   when both indices passed the end, no task is in flight, and no index was lowered while we
//!   looked.
//!
//! Every status transition is checked; an impossible one is returned as
//! [`VmStateError::Invariant`] (the executor then re-runs the block sequentially).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::error::{Result, VmStateError};
use crate::types::{Incarnation, TxIndex};

/// An incarnation of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    pub txn: TxIndex,
    pub incarnation: Incarnation,
}

/// A unit of work for a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Execute(Version),
    Validate(Version),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    ReadyToExecute,
    Executing,
    Executed,
    Aborting,
}

#[derive(Debug)]
struct TxState {
    incarnation: Incarnation,
    status: Status,
}

#[derive(Debug)]
struct TxEntry {
    state: Mutex<TxState>,
    dependents: Mutex<Vec<TxIndex>>,
}

/// The Block-STM scheduler for one block.
#[derive(Debug)]
pub struct Scheduler {
    n: usize,
    execution_idx: CachePadded<AtomicUsize>,
    validation_idx: CachePadded<AtomicUsize>,
    decrease_cnt: CachePadded<AtomicUsize>,
    num_active_tasks: CachePadded<AtomicUsize>,
    done: CachePadded<AtomicBool>,
    txs: Box<[CachePadded<TxEntry>]>,
}

fn broken(msg: String) -> VmStateError {
    VmStateError::Invariant(msg)
}

impl Scheduler {
    pub fn new(n: usize) -> Self {
        Self {
            n,
            execution_idx: CachePadded::new(AtomicUsize::new(0)),
            validation_idx: CachePadded::new(AtomicUsize::new(0)),
            decrease_cnt: CachePadded::new(AtomicUsize::new(0)),
            num_active_tasks: CachePadded::new(AtomicUsize::new(0)),
            done: CachePadded::new(AtomicBool::new(n == 0)),
            txs: (0..n)
                .map(|_| {
                    CachePadded::new(TxEntry {
                        state: Mutex::new(TxState {
                            incarnation: 0,
                            status: Status::ReadyToExecute,
                        }),
                        dependents: Mutex::new(Vec::new()),
                    })
                })
                .collect(),
        }
    }

    /// How far first executions got: transactions below this were handed out at least once.
    pub fn execution_progress(&self) -> usize {
        self.execution_idx.load(SeqCst)
    }

    /// Whether every transaction is executed and validated.
    pub fn done(&self) -> bool {
        self.done.load(SeqCst)
    }

    fn tx(&self, txn: TxIndex) -> Result<&TxEntry> {
        self.txs
            .get(txn)
            .map(|e| &**e)
            .ok_or_else(|| broken(format!("transaction index {txn} out of range {}", self.n)))
    }

    fn decrease_execution_idx(&self, target: TxIndex) {
        self.execution_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    fn decrease_validation_idx(&self, target: TxIndex) {
        self.validation_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    fn check_done(&self) {
        let observed = self.decrease_cnt.load(SeqCst);
        if self
            .execution_idx
            .load(SeqCst)
            .min(self.validation_idx.load(SeqCst))
            >= self.n
            && self.num_active_tasks.load(SeqCst) == 0
            && observed == self.decrease_cnt.load(SeqCst)
        {
            self.done.store(true, SeqCst);
        }
    }

    fn task_finished(&self) -> Result<()> {
        // A plain decrement (a compare-and-swap loop would retry under contention); an
        // underflow is undone and reported.
        if self.num_active_tasks.fetch_sub(1, SeqCst) == 0 {
            self.num_active_tasks.fetch_add(1, SeqCst);
            return Err(broken("active task count went below zero".into()));
        }
        Ok(())
    }

    /// Claims `txn` for execution if it is ready. Does not touch the active-task count.
    fn try_incarnate(&self, txn: TxIndex) -> Option<Version> {
        let entry = self.txs.get(txn)?;
        let mut st = entry.state.lock();
        if st.status == Status::ReadyToExecute {
            st.status = Status::Executing;
            Some(Version {
                txn,
                incarnation: st.incarnation,
            })
        } else {
            None
        }
    }

    fn next_version_to_execute(&self) -> Result<Option<Version>> {
        if self.execution_idx.load(SeqCst) >= self.n {
            self.check_done();
            return Ok(None);
        }
        self.num_active_tasks.fetch_add(1, SeqCst);
        let idx = self.execution_idx.fetch_add(1, SeqCst);
        match self.try_incarnate(idx) {
            Some(v) => Ok(Some(v)),
            None => self.task_finished().map(|_| None),
        }
    }

    fn next_version_to_validate(&self) -> Result<Option<Version>> {
        if self.validation_idx.load(SeqCst) >= self.n {
            self.check_done();
            return Ok(None);
        }
        self.num_active_tasks.fetch_add(1, SeqCst);
        let idx = self.validation_idx.fetch_add(1, SeqCst);
        if let Some(entry) = self.txs.get(idx) {
            let st = entry.state.lock();
            if st.status == Status::Executed {
                return Ok(Some(Version {
                    txn: idx,
                    incarnation: st.incarnation,
                }));
            }
        }
        self.task_finished().map(|_| None)
    }

    /// The next task for an idle worker, if any is available now.
    pub fn next_task(&self) -> Result<Option<Task>> {
        if self.validation_idx.load(SeqCst) < self.execution_idx.load(SeqCst) {
            Ok(self.next_version_to_validate()?.map(Task::Validate))
        } else {
            Ok(self.next_version_to_execute()?.map(Task::Execute))
        }
    }

    /// `txn` (being executed) read an ESTIMATE of `blocking`. Returns `false` if `blocking`
    /// finished executing meanwhile (re-execute at once); otherwise `txn` is parked until
    /// `blocking` finishes and its task ends.
    pub fn add_dependency(&self, txn: TxIndex, blocking: TxIndex) -> Result<bool> {
        if blocking >= txn {
            return Err(broken(format!(
                "transaction {txn} cannot depend on later transaction {blocking}"
            )));
        }
        let blocking_entry = self.tx(blocking)?;
        let entry = self.tx(txn)?;
        {
            let mut dependents = blocking_entry.dependents.lock();
            if blocking_entry.state.lock().status == Status::Executed {
                return Ok(false);
            }
            let mut st = entry.state.lock();
            if st.status != Status::Executing {
                return Err(broken(format!(
                    "dependency of transaction {txn} in status {:?}",
                    st.status
                )));
            }
            st.status = Status::Aborting;
            dependents.push(txn);
        }
        self.task_finished()?;
        Ok(true)
    }

    fn set_ready_status(&self, txn: TxIndex) -> Result<()> {
        let mut st = self.tx(txn)?.state.lock();
        if st.status != Status::Aborting {
            return Err(broken(format!(
                "transaction {txn} made ready from status {:?}",
                st.status
            )));
        }
        st.incarnation = st
            .incarnation
            .checked_add(1)
            .ok_or_else(|| broken(format!("incarnation overflow on transaction {txn}")))?;
        st.status = Status::ReadyToExecute;
        Ok(())
    }

    /// Execution of `version` ended and its output is recorded. May hand the same worker the
    /// validation of `version` as its next task.
    pub fn finish_execution(&self, version: Version, wrote_new_path: bool) -> Result<Option<Task>> {
        let entry = self.tx(version.txn)?;
        {
            let mut st = entry.state.lock();
            if st.status != Status::Executing || st.incarnation != version.incarnation {
                return Err(broken(format!(
                    "finished executing {version:?} but status is {:?} at incarnation {}",
                    st.status, st.incarnation
                )));
            }
            st.status = Status::Executed;
        }
        let dependents = std::mem::take(&mut *entry.dependents.lock());
        if let Some(&min) = dependents.iter().min() {
            for &d in &dependents {
                self.set_ready_status(d)?;
            }
            self.decrease_execution_idx(min);
        }
        if self.validation_idx.load(SeqCst) > version.txn {
            if wrote_new_path {
                self.decrease_validation_idx(version.txn);
            } else {
                return Ok(Some(Task::Validate(version)));
            }
        }
        self.task_finished()?;
        Ok(None)
    }

    /// Validation of `version` failed: abort it unless another validation already did, or a
    /// newer incarnation exists. Returns whether this call aborted it.
    pub fn try_validation_abort(&self, version: Version) -> Result<bool> {
        let mut st = self.tx(version.txn)?.state.lock();
        if st.incarnation == version.incarnation && st.status == Status::Executed {
            st.status = Status::Aborting;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Validation of `version` ended (`aborted`: this validation aborted it). May hand the
    /// worker the re-execution as its next task.
    pub fn finish_validation(&self, txn: TxIndex, aborted: bool) -> Result<Option<Task>> {
        if aborted {
            self.set_ready_status(txn)?;
            self.decrease_validation_idx(txn + 1);
            if self.execution_idx.load(SeqCst) > txn {
                if let Some(v) = self.try_incarnate(txn) {
                    return Ok(Some(Task::Execute(v)));
                }
            }
        }
        self.task_finished()?;
        Ok(None)
    }

    /// After `done()`: checks that transaction `txn` ended executed, and returns its final
    /// incarnation.
    pub fn final_incarnation(&self, txn: TxIndex) -> Result<Incarnation> {
        let st = self.tx(txn)?.state.lock();
        if st.status == Status::Executed {
            Ok(st.incarnation)
        } else {
            Err(broken(format!(
                "block done but transaction {txn} is {:?}",
                st.status
            )))
        }
    }

    /// After `done()`: checks that every transaction ended executed, and returns their final
    /// incarnations.
    pub fn final_incarnations(&self) -> Result<Vec<Incarnation>> {
        (0..self.n).map(|i| self.final_incarnation(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives the scheduler alone on one thread with "executions" that always validate.
    #[test]
    fn single_thread_runs_every_tx_once_and_finishes() {
        let s = Scheduler::new(5);
        let mut executed = vec![0; 5];
        let mut task = None;
        let mut steps = 0;
        while !s.done() {
            steps += 1;
            assert!(steps < 1000);
            task = match task {
                Some(Task::Execute(v)) => {
                    executed[v.txn] += 1;
                    s.finish_execution(v, true).unwrap()
                }
                Some(Task::Validate(v)) => s.finish_validation(v.txn, false).unwrap(),
                None => s.next_task().unwrap(),
            };
        }
        assert_eq!(executed, vec![1; 5]);
        assert_eq!(s.final_incarnations().unwrap(), vec![0; 5]);
    }

    #[test]
    fn impossible_transitions_are_errors() {
        let s = Scheduler::new(3);
        assert!(s.add_dependency(1, 2).is_err());
        assert!(s
            .finish_execution(
                Version {
                    txn: 0,
                    incarnation: 0
                },
                false
            )
            .is_err());
        assert!(s.finish_validation(1, true).is_err());
        assert!(s.tx(7).is_err());
    }

    #[test]
    fn dependency_parks_and_resumes() {
        let s = Scheduler::new(2);
        let next_exec = || {
            for _ in 0..10 {
                if let Some(Task::Execute(v)) = s.next_task().unwrap() {
                    return v;
                }
            }
            panic!("no execution task");
        };
        let v0 = next_exec();
        let v1 = next_exec();
        assert!(s.add_dependency(v1.txn, v0.txn).unwrap());
        assert_eq!(s.finish_execution(v0, true).unwrap(), None);
        // tx 1 is ready again at incarnation 1
        let mut seen = None;
        for _ in 0..10 {
            if let Some(Task::Execute(v)) = s.next_task().unwrap() {
                seen = Some(v);
                break;
            }
        }
        assert_eq!(
            seen,
            Some(Version {
                txn: 1,
                incarnation: 1
            })
        );
    }
}
