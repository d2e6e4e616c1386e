//! The host ABI: the functions a contract may import from module `"env"`, their gas costs,
//! and the per-instance host state they work on. `docs/CONTRACT_ABI.md` is the reference;
//! keep the two in step.
//!
//! Every host function charges gas (fuel) before doing its work. A host function that must
//! stop the contract (revert, out of gas, a bad pointer, a read that depends on an aborted
//! transaction) returns a [`HostAbort`] as the error of the wasm call; `instance.rs` turns it
//! back into an outcome (or, for a dependency, into `Err(ReadError)` for the scheduler).

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::Digest;
use vm_state::{Address, Log, ReadError, StateKey, StateValue};
use wasmtime::{Caller, Linker, Memory, ResourceLimiter};

use crate::config::VmConfig;
use crate::tx::AccessList;

/// The only module name a contract may import from.
pub const HOST_MODULE: &str = "env";

/// Every host function name, in ABI order.
pub const HOST_FUNCTIONS: &[&str] = &[
    "input_len",
    "input_copy",
    "caller",
    "address",
    "value",
    "block_number",
    "block_timestamp",
    "storage_read",
    "storage_write",
    "storage_delete",
    "set_return",
    "revert",
    "emit_event",
    "sha256",
    "keccak256",
    "ed25519_verify",
    "secp256k1_recover",
];

/// Why a host function stopped the contract.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostAbort {
    /// `revert` was called; the return data holds the reason.
    #[error("revert")]
    Revert,
    /// A host call could not pay its gas.
    #[error("out of gas")]
    OutOfGas,
    /// The state view could not read (a dependency on an aborted transaction, or a storage
    /// failure): returned from the transaction executor unchanged.
    #[error("state read aborted: {0}")]
    Read(ReadError),
    /// A deterministic trap raised by the host (bad pointer, limit exceeded, ...).
    #[error("{0}")]
    Trap(String),
}

fn trap(msg: &str) -> wasmtime::Error {
    wasmtime::Error::new(HostAbort::Trap(msg.to_string()))
}

/// The lifetime-erased pointer to the [`StateView`] of the call in progress.
///
/// wasmtime requires store data to be `'static`, while the view handed to a transaction
/// executor is borrowed for one execution. The slot holds the view's address for exactly the
/// duration of one wasm call: [`ViewSlot::set`] is called right before entering wasm and
/// [`ViewSlot::clear`] right after, and [`ViewSlot::get`] is only called from host functions,
/// which only run inside that call.
#[allow(unsafe_code)]
mod view_slot {
    use std::ptr::NonNull;

    use vm_state::StateView;

    #[derive(Default)]
    pub(crate) struct ViewSlot(Option<NonNull<dyn StateView>>);

    // SAFETY: the pointer is only set while the owning store is used by the thread that holds
    // the `&mut dyn StateView` it came from, and it is cleared before that borrow ends; the
    // store moving between threads while the slot is empty moves no borrow.
    unsafe impl Send for ViewSlot {}

    impl ViewSlot {
        /// Points the slot at `view`. The caller must call [`ViewSlot::clear`] before the
        /// borrow of `view` ends and must not call [`ViewSlot::get`] after that.
        pub(crate) fn set(&mut self, view: &mut dyn StateView) {
            let ptr: NonNull<dyn StateView + '_> = NonNull::from(view);
            // SAFETY: only the trait object's lifetime bound changes (same layout); the
            // pointer is dereferenced only while the borrow is live (see `get`).
            let ptr: NonNull<dyn StateView + 'static> = unsafe { std::mem::transmute(ptr) };
            self.0 = Some(ptr);
        }

        pub(crate) fn clear(&mut self) {
            self.0 = None;
        }

        /// The view of the call in progress, `None` outside a call.
        pub(crate) fn get(&mut self) -> Option<&mut dyn StateView> {
            // SAFETY: `set` stored a pointer from a live `&mut dyn StateView` whose borrow
            // outlives the wasm call we are inside of (`clear` runs after the call returns);
            // `&mut self` guarantees no other reference derived from the slot is alive.
            self.0.map(|mut p| unsafe { p.as_mut() })
        }
    }
}

pub(crate) use view_slot::ViewSlot;

/// Memory limiter: growth past the configured limit traps deterministically.
pub(crate) struct Limiter {
    pub(crate) memory_limit: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(trap("memory limit exceeded"));
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(trap("memory limit exceeded"))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Table growth is rejected at deploy; this only guards instantiation.
        Ok(desired <= 100_000)
    }
}

/// What a contract sees of its call: set before every call.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallContext {
    pub(crate) caller: Address,
    pub(crate) this: Address,
    pub(crate) value: u128,
    pub(crate) block_number: u64,
    pub(crate) timestamp: u64,
}

/// The data of a contract instance's store.
pub(crate) struct HostState {
    pub(crate) cfg: Arc<VmConfig>,
    pub(crate) view: ViewSlot,
    pub(crate) memory: Option<Memory>,
    pub(crate) limiter: Limiter,
    pub(crate) ctx: CallContext,
    pub(crate) input: Vec<u8>,
    /// The call's own storage writes (`None` deletes), applied to the view only on success.
    pub(crate) overlay: BTreeMap<StateKey, Option<StateValue>>,
    pub(crate) events: Vec<Log>,
    pub(crate) return_data: Vec<u8>,
    /// Chunks of linear memory host calls wrote since the last reset
    /// ([`crate::dirty::range_mask`]).
    pub(crate) written: u64,
    /// Whether the call declared its storage slots (`TxKind::Call::access`); they are
    /// `declared`, concatenated, each ending at the next offset of `declared_ends`, the
    /// first `declared_writable` of them writable (buffers reused from call to call).
    pub(crate) declared_on: bool,
    pub(crate) declared: Vec<u8>,
    pub(crate) declared_ends: Vec<usize>,
    pub(crate) declared_writable: usize,
}

impl HostState {
    /// Whether the call may read (`write`: write or delete) storage slot `slot`: `Err` with
    /// the trap message if not.
    fn may_touch(&self, slot: &[u8], write: bool) -> Result<(), &'static str> {
        if !self.declared_on {
            return Ok(());
        }
        let mut start = 0;
        let found = self.declared_ends.iter().position(|&end| {
            let hit = &self.declared[start..end] == slot;
            start = end;
            hit
        });
        match found {
            None => Err(NOT_DECLARED),
            Some(i) if write && i >= self.declared_writable => Err(DECLARED_READ_ONLY),
            Some(_) => Ok(()),
        }
    }
}

impl HostState {
    pub(crate) fn new(cfg: Arc<VmConfig>) -> Self {
        let memory_limit = cfg.memory_limit_bytes;
        Self {
            cfg,
            view: ViewSlot::default(),
            memory: None,
            limiter: Limiter { memory_limit },
            ctx: CallContext::default(),
            input: Vec::new(),
            overlay: BTreeMap::new(),
            events: Vec::new(),
            return_data: Vec::new(),
            written: 0,
            declared_writable: 0,
            declared_on: false,
            declared: Vec::new(),
            declared_ends: Vec::new(),
        }
    }

    /// Forgets everything a previous call left.
    pub(crate) fn reset_call(
        &mut self,
        ctx: CallContext,
        input: &[u8],
        access: Option<&AccessList>,
    ) {
        self.ctx = ctx;
        self.input.clear();
        self.input.extend_from_slice(input);
        self.declared.clear();
        self.declared_ends.clear();
        self.declared_on = access.is_some();
        self.declared_writable = access.map_or(0, |a| a.write.len());
        for (slot, _) in access.iter().flat_map(|a| a.slots()) {
            self.declared.extend_from_slice(slot);
            self.declared_ends.push(self.declared.len());
        }
        self.overlay.clear();
        self.events.clear();
        self.return_data.clear();
    }
}

type HostResult<T> = wasmtime::Result<T>;

/// Takes `amount` gas from the fuel left, or stops the contract with out-of-gas.
fn charge(caller: &mut Caller<'_, HostState>, amount: u64) -> HostResult<()> {
    let fuel = caller.get_fuel()?;
    if fuel < amount {
        caller.set_fuel(0)?;
        return Err(wasmtime::Error::new(HostAbort::OutOfGas));
    }
    caller.set_fuel(fuel - amount)
}

fn memory(caller: &Caller<'_, HostState>) -> HostResult<Memory> {
    caller
        .data()
        .memory
        .ok_or_else(|| trap("contract has no memory"))
}

fn range(ptr: i32, len: usize, mem_len: usize) -> HostResult<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    match start.checked_add(len) {
        Some(end) if end <= mem_len => Ok(start..end),
        _ => Err(trap("host call: memory access out of bounds")),
    }
}

fn len_arg(len: i32, limit: usize, what: &str) -> HostResult<usize> {
    let len = len as u32 as usize;
    if len > limit {
        return Err(trap(&format!("host call: {what} too large")));
    }
    Ok(len)
}

fn read_mem(caller: &mut Caller<'_, HostState>, ptr: i32, len: usize) -> HostResult<Vec<u8>> {
    let mem = memory(caller)?;
    let data = mem.data(&*caller);
    let r = range(ptr, len, data.len())?;
    Ok(data[r].to_vec())
}

/// Trap message of a storage access outside a call's declared slots.
pub const NOT_DECLARED: &str = "storage slot outside the transaction's declared access list";
/// Trap message of a write or delete of a slot the call declared read-only.
pub const DECLARED_READ_ONLY: &str = "storage slot declared read-only";

/// The storage key of this contract whose contract-side part is `len` bytes at `ptr`, built
/// straight from memory (no intermediate copy).
fn storage_key(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: usize,
    write: bool,
) -> HostResult<StateKey> {
    let mem = memory(caller)?;
    let (data, state) = mem.data_and_store_mut(&mut *caller);
    let r = range(ptr, len, data.len())?;
    state.may_touch(&data[r.clone()], write).map_err(trap)?;
    Ok(StateKey::storage(&state.ctx.this, &data[r]))
}

/// `len` bytes at `ptr` as a state value (one allocation).
fn read_value(caller: &mut Caller<'_, HostState>, ptr: i32, len: usize) -> HostResult<StateValue> {
    let mem = memory(caller)?;
    let data = mem.data(&*caller);
    let r = range(ptr, len, data.len())?;
    Ok(StateValue::from(&data[r]))
}

fn write_mem(caller: &mut Caller<'_, HostState>, ptr: i32, bytes: &[u8]) -> HostResult<()> {
    let mem = memory(caller)?;
    let data = mem.data_mut(&mut *caller);
    let r = range(ptr, bytes.len(), data.len())?;
    data[r.clone()].copy_from_slice(bytes);
    caller.data_mut().written |= crate::dirty::range_mask(r.start as u64, bytes.len() as u64);
    Ok(())
}

fn gas(caller: &Caller<'_, HostState>) -> crate::config::GasSchedule {
    caller.data().cfg.gas.clone()
}

fn per_word(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(32)
}

/// Defines every host function in `linker`.
pub(crate) fn define(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let m = HOST_MODULE;

    linker.func_wrap(
        m,
        "input_len",
        |mut c: Caller<'_, HostState>| -> HostResult<i32> {
            let g = c.data().cfg.gas.host_call;
            charge(&mut c, g)?;
            Ok(c.data().input.len() as i32)
        },
    )?;

    linker.func_wrap(
        m,
        "input_copy",
        |mut c: Caller<'_, HostState>, dst: i32| -> HostResult<()> {
            let g = gas(&c);
            let n = c.data().input.len();
            charge(&mut c, g.host_call + g.copy_per_byte * n as u64)?;
            let mem = memory(&c)?;
            let (data, state) = mem.data_and_store_mut(&mut c);
            let r = range(dst, state.input.len(), data.len())?;
            state.written |= crate::dirty::range_mask(r.start as u64, state.input.len() as u64);
            data[r].copy_from_slice(&state.input);
            Ok(())
        },
    )?;

    linker.func_wrap(m, "caller", |mut c: Caller<'_, HostState>, dst: i32| {
        let g = gas(&c);
        charge(&mut c, g.host_call + g.copy_per_byte * 20)?;
        let a = c.data().ctx.caller;
        write_mem(&mut c, dst, &a)
    })?;

    linker.func_wrap(m, "address", |mut c: Caller<'_, HostState>, dst: i32| {
        let g = gas(&c);
        charge(&mut c, g.host_call + g.copy_per_byte * 20)?;
        let a = c.data().ctx.this;
        write_mem(&mut c, dst, &a)
    })?;

    linker.func_wrap(m, "value", |mut c: Caller<'_, HostState>, dst: i32| {
        let g = gas(&c);
        charge(&mut c, g.host_call + g.copy_per_byte * 16)?;
        let v = c.data().ctx.value.to_le_bytes();
        write_mem(&mut c, dst, &v)
    })?;

    linker.func_wrap(m, "block_number", |mut c: Caller<'_, HostState>| {
        let g = c.data().cfg.gas.host_call;
        charge(&mut c, g)?;
        Ok(c.data().ctx.block_number as i64)
    })?;

    linker.func_wrap(m, "block_timestamp", |mut c: Caller<'_, HostState>| {
        let g = c.data().cfg.gas.host_call;
        charge(&mut c, g)?;
        Ok(c.data().ctx.timestamp as i64)
    })?;

    linker.func_wrap(
        m,
        "storage_read",
        |mut c: Caller<'_, HostState>,
         key_ptr: i32,
         key_len: i32,
         dst: i32,
         dst_cap: i32|
         -> HostResult<i32> {
            let g = gas(&c);
            let key_len = len_arg(key_len, c.data().cfg.max_storage_key_bytes, "storage key")?;
            charge(
                &mut c,
                g.host_call + g.storage_read + g.copy_per_byte * key_len as u64,
            )?;
            let skey = storage_key(&mut c, key_ptr, key_len, false)?;
            let value = {
                let st = c.data_mut();
                match st.overlay.get(&skey) {
                    Some(v) => v.clone(),
                    None => {
                        let view = st
                            .view
                            .get()
                            .ok_or_else(|| trap("storage is not available here"))?;
                        view.read(&skey)
                            .map_err(|e| wasmtime::Error::new(HostAbort::Read(e)))?
                    }
                }
            };
            let Some(value) = value else {
                return Ok(-1);
            };
            let cap = dst_cap as u32 as usize;
            let n = value.len().min(cap);
            charge(&mut c, g.copy_per_byte * n as u64)?;
            write_mem(&mut c, dst, &value[..n])?;
            Ok(value.len() as i32)
        },
    )?;

    linker.func_wrap(
        m,
        "storage_write",
        |mut c: Caller<'_, HostState>,
         key_ptr: i32,
         key_len: i32,
         val_ptr: i32,
         val_len: i32|
         -> HostResult<()> {
            let g = gas(&c);
            let key_len = len_arg(key_len, c.data().cfg.max_storage_key_bytes, "storage key")?;
            let val_len = len_arg(
                val_len,
                c.data().cfg.max_storage_value_bytes,
                "storage value",
            )?;
            charge(
                &mut c,
                g.host_call
                    + g.storage_write
                    + g.storage_write_per_byte * (key_len + val_len) as u64,
            )?;
            let skey = storage_key(&mut c, key_ptr, key_len, true)?;
            let val = read_value(&mut c, val_ptr, val_len)?;
            c.data_mut().overlay.insert(skey, Some(val));
            Ok(())
        },
    )?;

    linker.func_wrap(
        m,
        "storage_delete",
        |mut c: Caller<'_, HostState>, key_ptr: i32, key_len: i32| -> HostResult<()> {
            let g = gas(&c);
            let key_len = len_arg(key_len, c.data().cfg.max_storage_key_bytes, "storage key")?;
            charge(
                &mut c,
                g.host_call + g.storage_delete + g.copy_per_byte * key_len as u64,
            )?;
            let skey = storage_key(&mut c, key_ptr, key_len, true)?;
            c.data_mut().overlay.insert(skey, None);
            Ok(())
        },
    )?;

    linker.func_wrap(
        m,
        "set_return",
        |mut c: Caller<'_, HostState>, ptr: i32, len: i32| -> HostResult<()> {
            let g = gas(&c);
            let len = len_arg(len, c.data().cfg.max_return_bytes, "return data")?;
            charge(&mut c, g.host_call + g.copy_per_byte * len as u64)?;
            let bytes = read_mem(&mut c, ptr, len)?;
            c.data_mut().return_data = bytes;
            Ok(())
        },
    )?;

    linker.func_wrap(
        m,
        "revert",
        |mut c: Caller<'_, HostState>, ptr: i32, len: i32| -> HostResult<()> {
            let g = gas(&c);
            let len = len_arg(len, c.data().cfg.max_return_bytes, "revert data")?;
            charge(&mut c, g.host_call + g.copy_per_byte * len as u64)?;
            let bytes = read_mem(&mut c, ptr, len)?;
            c.data_mut().return_data = bytes;
            Err(wasmtime::Error::new(HostAbort::Revert))
        },
    )?;

    linker.func_wrap(
        m,
        "emit_event",
        |mut c: Caller<'_, HostState>,
         topics_ptr: i32,
         topic_count: i32,
         data_ptr: i32,
         data_len: i32|
         -> HostResult<()> {
            let g = gas(&c);
            let topic_count = len_arg(topic_count, 4, "topic count")?;
            let data_len = len_arg(data_len, c.data().cfg.max_event_data_bytes, "event data")?;
            charge(
                &mut c,
                g.host_call
                    + g.event
                    + g.event_per_topic * topic_count as u64
                    + g.copy_per_byte * (32 * topic_count + data_len) as u64,
            )?;
            if c.data().events.len() >= c.data().cfg.max_events {
                return Err(trap("too many events"));
            }
            let raw = read_mem(&mut c, topics_ptr, 32 * topic_count)?;
            let topics = raw
                .chunks_exact(32)
                .map(|t| {
                    let mut a = [0u8; 32];
                    a.copy_from_slice(t);
                    a
                })
                .collect();
            let data = read_mem(&mut c, data_ptr, data_len)?;
            let address = c.data().ctx.this;
            c.data_mut().events.push(Log {
                address,
                topics,
                data,
            });
            Ok(())
        },
    )?;

    linker.func_wrap(
        m,
        "sha256",
        |c: Caller<'_, HostState>, ptr: i32, len: i32, out: i32| {
            hash_call::<sha2::Sha256>(c, ptr, len, out)
        },
    )?;

    linker.func_wrap(
        m,
        "keccak256",
        |c: Caller<'_, HostState>, ptr: i32, len: i32, out: i32| {
            hash_call::<sha3::Keccak256>(c, ptr, len, out)
        },
    )?;

    linker.func_wrap(
        m,
        "ed25519_verify",
        |mut c: Caller<'_, HostState>,
         pk_ptr: i32,
         msg_ptr: i32,
         msg_len: i32,
         sig_ptr: i32|
         -> HostResult<i32> {
            let g = gas(&c);
            let msg_len = len_arg(msg_len, c.data().cfg.memory_limit_bytes, "message")?;
            charge(
                &mut c,
                g.host_call + g.ed25519_verify + g.hash_per_word * per_word(msg_len),
            )?;
            let pk = read_mem(&mut c, pk_ptr, 32)?;
            let sig = read_mem(&mut c, sig_ptr, 64)?;
            let msg = read_mem(&mut c, msg_ptr, msg_len)?;
            Ok(i32::from(crate::crypto::ed25519_verify(&pk, &msg, &sig)))
        },
    )?;

    linker.func_wrap(
        m,
        "secp256k1_recover",
        |mut c: Caller<'_, HostState>,
         hash_ptr: i32,
         sig_ptr: i32,
         recid: i32,
         out: i32|
         -> HostResult<i32> {
            let g = gas(&c);
            charge(&mut c, g.host_call + g.secp256k1_recover)?;
            let hash = read_mem(&mut c, hash_ptr, 32)?;
            let sig = read_mem(&mut c, sig_ptr, 64)?;
            match crate::crypto::secp256k1_recover(&hash, &sig, recid) {
                Some(pk) => {
                    write_mem(&mut c, out, &pk)?;
                    Ok(1)
                }
                None => Ok(0),
            }
        },
    )?;

    Ok(())
}

/// The `sha256` / `keccak256` host calls: charge per word, hash `len` bytes at `ptr`, write
/// the 32-byte digest at `out`.
fn hash_call<D: Digest>(
    mut c: Caller<'_, HostState>,
    ptr: i32,
    len: i32,
    out: i32,
) -> HostResult<()> {
    let g = gas(&c);
    let len = len_arg(len, c.data().cfg.memory_limit_bytes, "hash input")?;
    charge(
        &mut c,
        g.host_call + g.hash + g.hash_per_word * per_word(len),
    )?;
    let mem = memory(&c)?;
    let digest = {
        let data = mem.data(&c);
        D::digest(&data[range(ptr, len, data.len())?])
    };
    write_mem(&mut c, out, &digest)
}
