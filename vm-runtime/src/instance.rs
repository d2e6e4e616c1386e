//! Per-worker contract instances, reset between transactions.
//!
//! A fresh wasmtime `Store` and instance per transaction does not scale across threads (the
//! allocator and memory-reset path serialise; see `/work/shared/FINDINGS.md`). So each worker
//! thread keeps one store and instance per contract it has run ([`VmWorker`]) and, before
//! every call, puts back everything a previous call may have changed:
//! - linear memory: contents copied back from the image taken right after instantiation
//!   (data segments applied, nothing else run: modules have no start function), in the chunks
//!   the call wrote ([`crate::dirty`]). A call that grew memory cannot be shrunk back, so that
//!   instance is dropped and a new one made;
//! - mutable globals: set back to their initial values (deploy rules make them all
//!   exported);
//! - fuel: set to the call's gas;
//! - host state: caller, input, storage overlay, events and return data cleared.
//!
//! Deploy rules forbid every other kind of instance state change (`data.drop`, `table.set`,
//! ...), so a reused instance behaves exactly like a fresh one: the outcome of a call depends
//! only on the module, the call and the state it reads.

use std::collections::BTreeMap;

use hashbrown::HashMap;
use std::sync::Arc;

use vm_state::{Address, Log, ReadError, StateKey, StateValue, StateView, TxStatus};
use wasmtime::{Global, Memory, Store, TypedFunc, Val};

use crate::dirty::DIRTY_EXPORT;
use crate::host::{CallContext, HostAbort, HostState};
use crate::vm::{CompiledContract, Vm, CALL_EXPORT, INIT_EXPORT, MEMORY_EXPORT};

/// Most contract instances one worker keeps; past this its cache is emptied (each instance
/// holds a slot of the pooling allocator, `VmConfig::pool_slots` in all).
pub const MAX_INSTANCES_PER_WORKER: usize = 16;

/// Which export a call enters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Call,
    Init,
}

/// How a contract call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    Success,
    Revert,
    OutOfGas,
    Trap(String),
}

/// The result of one contract call. `writes` and `events` are empty unless it succeeded.
#[derive(Debug)]
pub(crate) struct CallResult {
    pub(crate) outcome: CallOutcome,
    /// Gas (fuel) the call used, host charges included; the whole limit on out-of-gas.
    pub(crate) gas_used: u64,
    pub(crate) return_data: Vec<u8>,
    pub(crate) events: Vec<Log>,
    pub(crate) writes: BTreeMap<StateKey, Option<StateValue>>,
}

impl CallOutcome {
    pub(crate) fn into_status(self) -> TxStatus {
        match self {
            CallOutcome::Success => TxStatus::Success,
            CallOutcome::Revert => TxStatus::Revert,
            CallOutcome::OutOfGas => TxStatus::OutOfGas,
            CallOutcome::Trap(m) => TxStatus::Trap(m),
        }
    }
}

/// One direct contract call (outside a transaction: no nonce, fee or value movement), for
/// the L1 engine, tools and benchmarks.
#[derive(Clone, Debug)]
pub struct CallRequest<'a> {
    pub caller: Address,
    /// The contract's own address (`address()` in the ABI; its storage namespace).
    pub contract: Address,
    /// What `value()` reports (no balance moves).
    pub value: u128,
    pub input: &'a [u8],
    pub gas_limit: u64,
    pub block_number: u64,
    pub timestamp: u64,
}

/// What a direct call did. `writes` and `events` are empty unless `status` is `Success`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallReport {
    pub status: TxStatus,
    pub gas_used: u64,
    pub return_data: Vec<u8>,
    pub events: Vec<Log>,
    pub writes: BTreeMap<StateKey, Option<StateValue>>,
}

struct CachedInstance {
    store: Store<HostState>,
    call: TypedFunc<(), ()>,
    init: Option<TypedFunc<(), ()>>,
    memory: Memory,
    image: Arc<MemoryImage>,
    globals: Vec<(Global, Val)>,
    /// The chunks the contract's own code wrote ([`crate::dirty`]).
    written: Global,
    /// Whether a call ran since the last reset.
    dirty: bool,
}

impl CachedInstance {
    fn new(vm: &Vm, contract: &CompiledContract) -> wasmtime::Result<Self> {
        let mut store = Store::new(vm.engine(), HostState::new(vm.config_arc().clone()));
        store.limiter(|s| &mut s.limiter);
        store.set_fuel(0)?;
        let instance = contract.pre.instantiate(&mut store)?;
        let memory = instance
            .get_memory(&mut store, MEMORY_EXPORT)
            .ok_or_else(|| wasmtime::Error::msg("contract has no memory export"))?;
        store.data_mut().memory = Some(memory);
        let call = instance.get_typed_func::<(), ()>(&mut store, CALL_EXPORT)?;
        let init = if contract.has_init {
            Some(instance.get_typed_func::<(), ()>(&mut store, INIT_EXPORT)?)
        } else {
            None
        };
        let image = contract
            .image
            .get_or_init(|| Arc::new(MemoryImage::new(memory.data(&store))))
            .clone();
        let mut globals = Vec::with_capacity(contract.mutable_globals.len());
        for name in &contract.mutable_globals {
            let g = instance
                .get_global(&mut store, name)
                .ok_or_else(|| wasmtime::Error::msg(format!("global export {name} missing")))?;
            let v = g.get(&mut store);
            globals.push((g, v));
        }
        let written = instance
            .get_global(&mut store, DIRTY_EXPORT)
            .ok_or_else(|| wasmtime::Error::msg("dirty-chunk global missing"))?;
        Ok(Self {
            store,
            call,
            init,
            memory,
            image,
            globals,
            written,
            dirty: false,
        })
    }

    /// Puts memory and globals back to their initial values; `false` when memory grew and
    /// the instance must be replaced.
    fn reset(&mut self) -> wasmtime::Result<bool> {
        if !self.dirty {
            return Ok(true);
        }
        let by_code = self.written.get(&mut self.store).i64().unwrap_or(-1) as u64;
        let mask = by_code | std::mem::take(&mut self.store.data_mut().written);
        let data = self.memory.data_mut(&mut self.store);
        if data.len() != self.image.len() {
            return Ok(false);
        }
        self.image.restore(data, mask);
        debug_assert!(
            self.image.equals(self.memory.data(&self.store)),
            "a memory write escaped the dirty-chunk tracking"
        );
        self.written.set(&mut self.store, Val::I64(0))?;
        for (g, v) in &self.globals {
            g.set(&mut self.store, *v)?;
        }
        self.dirty = false;
        Ok(true)
    }
}

/// Per-thread VM state: cached contract instances. Created by
/// [`crate::VmExecutor`]'s `new_worker` once per worker thread; never shared.
#[derive(Default)]
pub struct VmWorker {
    instances: HashMap<[u8; 32], CachedInstance>,
    /// Compiled contracts this worker called, by code hash: a call takes its contract from
    /// here and puts it back, so the hot path touches neither the VM's shared cache lock nor
    /// the shared reference count of the contract (cache lines every core would fight over).
    contracts: HashMap<[u8; 32], Arc<CompiledContract>>,
}

impl std::fmt::Debug for VmWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmWorker")
            .field("instances", &self.instances.len())
            .finish()
    }
}

impl VmWorker {
    /// An empty worker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached instances.
    pub fn cached_instances(&self) -> usize {
        self.instances.len()
    }

    /// Takes this worker's copy of a compiled contract (give it back with
    /// [`Self::keep_contract`]).
    pub(crate) fn take_contract(&mut self, code_hash: &[u8; 32]) -> Option<Arc<CompiledContract>> {
        self.contracts.remove(code_hash)
    }

    /// Keeps a compiled contract for this worker's next calls.
    pub(crate) fn keep_contract(&mut self, contract: Arc<CompiledContract>) {
        if self.contracts.len() >= MAX_INSTANCES_PER_WORKER {
            self.contracts.clear();
        }
        self.contracts.insert(contract.code_hash, contract);
    }

    fn instance(
        &mut self,
        vm: &Vm,
        contract: &CompiledContract,
    ) -> Result<&mut CachedInstance, ReadError> {
        let hash = contract.code_hash;
        let reusable = match self.instances.get_mut(&hash) {
            Some(inst) => inst.reset().map_err(node_error)?,
            None => false,
        };
        if !reusable {
            // Drop the old one first so that its pooling slot is free again.
            self.instances.remove(&hash);
            if self.instances.len() >= MAX_INSTANCES_PER_WORKER {
                self.instances.clear();
            }
            let inst = match CachedInstance::new(vm, contract) {
                Ok(i) => i,
                Err(_) if !self.instances.is_empty() => {
                    // The pool may be full: give this worker's slots back and try once more.
                    self.instances.clear();
                    CachedInstance::new(vm, contract).map_err(node_error)?
                }
                Err(e) => return Err(node_error(e)),
            };
            self.instances.insert(hash, inst);
        }
        self.instances
            .get_mut(&hash)
            .ok_or_else(|| ReadError::Storage("instance cache lost an entry".into()))
    }

    /// Runs `contract`'s `call` export directly, reading state through `view` (writes are
    /// returned, not written). `Err` only for a read the view could not complete or a
    /// node-side instantiation failure.
    pub fn run(
        &mut self,
        vm: &Vm,
        contract: &Arc<CompiledContract>,
        req: &CallRequest<'_>,
        view: &mut dyn StateView,
    ) -> Result<CallReport, ReadError> {
        let ctx = CallContext {
            caller: req.caller,
            this: req.contract,
            value: req.value,
            block_number: req.block_number,
            timestamp: req.timestamp,
        };
        let r = self.call(
            vm,
            contract,
            Entry::Call,
            ctx,
            req.input,
            None,
            req.gas_limit,
            view,
        )?;
        Ok(CallReport {
            status: r.outcome.into_status(),
            gas_used: r.gas_used,
            return_data: r.return_data,
            events: r.events,
            writes: r.writes,
        })
    }

    /// Runs one call of `contract` with `gas` fuel. `Err` only for a state read that could
    /// not complete (returned unchanged for the scheduler) or a node-side failure to
    /// instantiate (reported as `ReadError::Storage`; never a contract outcome).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn call(
        &mut self,
        vm: &Vm,
        contract: &Arc<CompiledContract>,
        entry: Entry,
        ctx: CallContext,
        input: &[u8],
        access: Option<&crate::tx::AccessList>,
        gas: u64,
        view: &mut dyn StateView,
    ) -> Result<CallResult, ReadError> {
        let inst = self.instance(vm, contract)?;
        // Borrow the function rather than clone it: a clone bumps a reference count of the
        // engine's type registry that every worker thread shares.
        let CachedInstance {
            store,
            call,
            init,
            dirty,
            ..
        } = inst;
        let func = match entry {
            Entry::Call => &*call,
            Entry::Init => match init {
                Some(f) => &*f,
                None => {
                    return Ok(CallResult {
                        outcome: CallOutcome::Success,
                        gas_used: 0,
                        return_data: Vec::new(),
                        events: Vec::new(),
                        writes: BTreeMap::new(),
                    })
                }
            },
        };
        store.data_mut().reset_call(ctx, input, access);
        store.set_fuel(gas).map_err(node_error)?;
        *dirty = true;
        store.data_mut().view.set(view);
        let result = func.call(&mut *store, ());
        store.data_mut().view.clear();
        let left = store.get_fuel().unwrap_or(0);
        let mut gas_used = gas.saturating_sub(left);
        let outcome = match result {
            Ok(()) => CallOutcome::Success,
            Err(e) => match classify(&e) {
                Classified::Outcome(o) => o,
                Classified::Read(r) => return Err(r),
            },
        };
        if outcome == CallOutcome::OutOfGas {
            gas_used = gas;
        }
        let st = store.data_mut();
        let return_data = match outcome {
            CallOutcome::Success | CallOutcome::Revert => std::mem::take(&mut st.return_data),
            _ => Vec::new(),
        };
        let (events, writes) = if outcome == CallOutcome::Success {
            (
                std::mem::take(&mut st.events),
                std::mem::take(&mut st.overlay),
            )
        } else {
            (Vec::new(), BTreeMap::new())
        };
        Ok(CallResult {
            outcome,
            gas_used,
            return_data,
            events,
            writes,
        })
    }
}

/// Granularity of the memory reset: the chunks [`crate::dirty`] tracks.
const RESET_CHUNK: usize = crate::dirty::CHUNK;

/// Whether every byte is zero: a byte-wise OR over 64-byte blocks into a 64-byte
/// accumulator, which the compiler turns into full-width vector loads and ORs (reads only
/// `bytes`, writes nothing).
fn is_zero(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(64);
    let mut acc = [0u8; 64];
    for block in &mut blocks {
        if let Ok(block) = <&[u8; 64]>::try_from(block) {
            for (a, b) in acc.iter_mut().zip(block) {
                *a |= *b;
            }
        }
    }
    acc == [0u8; 64] && blocks.remainder().iter().all(|&b| b == 0)
}

/// A contract's initial linear memory, with which chunks are all zero.
#[derive(Debug)]
pub(crate) struct MemoryImage {
    bytes: Box<[u8]>,
    zero_chunks: Box<[bool]>,
}

impl MemoryImage {
    fn new(bytes: &[u8]) -> Self {
        let zero_chunks = bytes
            .chunks(RESET_CHUNK)
            .map(|c| c.iter().all(|&b| b == 0))
            .collect();
        Self {
            bytes: bytes.into(),
            zero_chunks,
        }
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Copies the image over `data` (same length) in the chunks that `written` (a mask of
    /// [`crate::dirty`]) says a call may have changed, writing only chunks that differ:
    /// checking (for the image's zero chunks, which most are, a read-only scan) moves less
    /// memory than a copy.
    fn restore(&self, data: &mut [u8], written: u64) {
        let look = crate::dirty::restore_mask(written);
        if look == 0 {
            return;
        }
        let chunks = data
            .chunks_mut(RESET_CHUNK)
            .zip(self.bytes.chunks(RESET_CHUNK))
            .zip(self.zero_chunks.iter())
            .enumerate();
        for (i, ((dst, src), &zero)) in chunks {
            if look & (1 << (i & 63)) == 0 {
                continue;
            }
            if zero {
                if !is_zero(dst) {
                    dst.fill(0);
                }
            } else if dst != src {
                dst.copy_from_slice(src);
            }
        }
    }

    /// Whether `data` is exactly the image (a check for debug builds).
    fn equals(&self, data: &[u8]) -> bool {
        *self.bytes == *data
    }
}

fn node_error(e: wasmtime::Error) -> ReadError {
    ReadError::Storage(format!("contract instantiation failed: {e:#}"))
}

enum Classified {
    Outcome(CallOutcome),
    Read(ReadError),
}

/// Maps the error of a wasm call to an outcome. Messages are fixed strings or wasmtime's
/// trap descriptions (no backtraces), so the same failure gives the same receipt anywhere.
fn classify(e: &wasmtime::Error) -> Classified {
    if let Some(h) = e.downcast_ref::<HostAbort>() {
        return Classified::Outcome(match h {
            HostAbort::Revert => CallOutcome::Revert,
            HostAbort::OutOfGas => CallOutcome::OutOfGas,
            HostAbort::Read(r) => return Classified::Read(r.clone()),
            HostAbort::Trap(msg) => CallOutcome::Trap(msg.clone()),
        });
    }
    if let Some(t) = e.downcast_ref::<wasmtime::Trap>() {
        return Classified::Outcome(match t {
            wasmtime::Trap::OutOfFuel => CallOutcome::OutOfGas,
            wasmtime::Trap::StackOverflow => CallOutcome::Trap("stack overflow".into()),
            other => CallOutcome::Trap(other.to_string()),
        });
    }
    Classified::Outcome(CallOutcome::Trap(format!("{}", e.root_cause())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_puts_every_byte_back() {
        let mut image = vec![0u8; 3 * RESET_CHUNK + 100];
        image[RESET_CHUNK + 5] = 9;
        image[3 * RESET_CHUNK + 99] = 1;
        let img = MemoryImage::new(&image);
        assert_eq!(img.len(), image.len());
        let mut mem = image.clone();
        mem[0] = 1;
        mem[RESET_CHUNK + 5] = 0;
        mem[2 * RESET_CHUNK + 7] = 3;
        mem[3 * RESET_CHUNK + 99] = 0;
        img.restore(&mut mem, u64::MAX);
        assert_eq!(mem, image);
    }
}
