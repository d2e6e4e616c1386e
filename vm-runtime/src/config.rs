//! VM configuration: engine limits and the gas schedule. Small serde structs, every field with
//! its default; a config file may give any subset of the keys.

use serde::{Deserialize, Serialize};

/// Limits of the deterministic wasmtime engine. Every node of a network must use the same
/// values: they decide where a contract traps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VmConfig {
    /// Largest linear memory one contract instance may have, in bytes. A `memory.grow` past
    /// it traps (`Trap("memory limit exceeded")`). Default: 16 MiB.
    pub memory_limit_bytes: usize,
    /// Largest native stack a contract call may use, in bytes (wasmtime `max_wasm_stack`).
    /// Deeper recursion traps with `Trap("stack overflow")`. Default: 512 KiB.
    pub max_wasm_stack_bytes: usize,
    /// Largest module accepted at deploy, in bytes. Default: 512 KiB.
    pub max_code_bytes: usize,
    /// Largest call input, in bytes. Default: 64 KiB.
    pub max_input_bytes: usize,
    /// Largest return data (`set_return`, `revert`), in bytes. Default: 64 KiB.
    pub max_return_bytes: usize,
    /// Largest storage key a contract may use, in bytes. Default: 256.
    pub max_storage_key_bytes: usize,
    /// Largest storage value a contract may write, in bytes. Default: 16 KiB.
    pub max_storage_value_bytes: usize,
    /// Most events one transaction may emit. Default: 64.
    pub max_events: usize,
    /// Largest event data, in bytes. Default: 4 KiB.
    pub max_event_data_bytes: usize,
    /// Slots of the pooling instance allocator: instances (and memories) alive at once over
    /// all worker threads and contracts. Each slot reserves about 4 GiB of virtual address
    /// space (no memory), so a process can hold about 30,000 slots in total. Default: 512.
    pub pool_slots: u32,
    /// Gas costs.
    pub gas: GasSchedule,
}

impl Default for VmConfig {
    fn default() -> Self {
        Self {
            memory_limit_bytes: 16 << 20,
            max_wasm_stack_bytes: 512 << 10,
            max_code_bytes: 512 << 10,
            max_input_bytes: 64 << 10,
            max_return_bytes: 64 << 10,
            max_storage_key_bytes: 256,
            max_storage_value_bytes: 16 << 10,
            max_events: 64,
            max_event_data_bytes: 4 << 10,
            pool_slots: 512,
            gas: GasSchedule::default(),
        }
    }
}

/// Gas costs. Gas is wasmtime fuel: one unit per executed WebAssembly operator (wasmtime's
/// fixed per-operator cost), plus these charges for transactions and host calls. See
/// `docs/CONTRACT_ABI.md` for where each applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GasSchedule {
    /// Charged to every transaction that is not rejected. Default: 1,000.
    pub tx_base: u64,
    /// Total gas of a native transfer (includes `tx_base`). Default: 2,000.
    pub transfer: u64,
    /// Per byte of call input, charged up front. Default: 4.
    pub input_per_byte: u64,
    /// Per byte of deployed code, charged up front. Default: 20.
    pub deploy_per_byte: u64,
    /// Every host call, before its own cost. Default: 20.
    pub host_call: u64,
    /// Per byte copied between the host and linear memory. Default: 1.
    pub copy_per_byte: u64,
    /// `storage_read`. Default: 200.
    pub storage_read: u64,
    /// `storage_write`. Default: 1,000.
    pub storage_write: u64,
    /// Per byte of key and value written. Default: 4.
    pub storage_write_per_byte: u64,
    /// `storage_delete`. Default: 500.
    pub storage_delete: u64,
    /// `emit_event`. Default: 300.
    pub event: u64,
    /// Per event topic. Default: 100.
    pub event_per_topic: u64,
    /// `sha256` and `keccak256`. Default: 60.
    pub hash: u64,
    /// Per 32 bytes hashed. Default: 6.
    pub hash_per_word: u64,
    /// `ed25519_verify`. Default: 3,000.
    pub ed25519_verify: u64,
    /// `secp256k1_recover`. Default: 6,000.
    pub secp256k1_recover: u64,
}

impl Default for GasSchedule {
    fn default() -> Self {
        Self {
            tx_base: 1_000,
            transfer: 2_000,
            input_per_byte: 4,
            deploy_per_byte: 20,
            host_call: 20,
            copy_per_byte: 1,
            storage_read: 200,
            storage_write: 1_000,
            storage_write_per_byte: 4,
            storage_delete: 500,
            event: 300,
            event_per_topic: 100,
            hash: 60,
            hash_per_word: 6,
            ed25519_verify: 3_000,
            secp256k1_recover: 6_000,
        }
    }
}
