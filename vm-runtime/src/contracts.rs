//! The shipped contracts (WAT sources in `vm-runtime/contracts/`) and helpers that build
//! their call inputs and read their results. ABIs: `docs/CONTRACT_ABI.md`, "Shipped contracts".

use vm_state::Address;

/// Source of the fungible token (transfer / balance_of / mint, owner = deployer).
pub const TOKEN_WAT: &str = include_str!("../contracts/token.wat");
/// Source of the counter map (increment / get of any key).
pub const COUNTER_WAT: &str = include_str!("../contracts/counter.wat");

/// Token selector: `transfer(to, amount)`.
pub const TOKEN_TRANSFER: u8 = 0x01;
/// Token selector: `balance_of(who) -> u128`.
pub const TOKEN_BALANCE_OF: u8 = 0x02;
/// Token selector: `mint(to, amount)` (owner only).
pub const TOKEN_MINT: u8 = 0x03;
/// Counter selector: `increment(key) -> u64`.
pub const COUNTER_INCREMENT: u8 = 0x01;
/// Counter selector: `get(key) -> u64`.
pub const COUNTER_GET: u8 = 0x02;

fn wat_to_wasm(src: &str) -> Vec<u8> {
    // The shipped sources are fixed and covered by tests; a parse failure is a build bug,
    // so fall back to bytes that fail deploy validation loudly instead of panicking.
    wat::parse_str(src).unwrap_or_default()
}

/// The token module's wasm bytes.
pub fn token_wasm() -> Vec<u8> {
    wat_to_wasm(TOKEN_WAT)
}

/// The counter module's wasm bytes.
pub fn counter_wasm() -> Vec<u8> {
    wat_to_wasm(COUNTER_WAT)
}

/// Compiles WebAssembly text to a module (for tests and tools).
pub fn wat(src: &str) -> Result<Vec<u8>, String> {
    wat::parse_str(src).map_err(|e| e.to_string())
}

fn addr_amount(selector: u8, who: &Address, amount: u128) -> Vec<u8> {
    let mut v = Vec::with_capacity(37);
    v.push(selector);
    v.extend_from_slice(who);
    v.extend_from_slice(&amount.to_le_bytes());
    v
}

/// Input of `transfer(to, amount)`.
pub fn token_transfer_input(to: &Address, amount: u128) -> Vec<u8> {
    addr_amount(TOKEN_TRANSFER, to, amount)
}

/// Input of `mint(to, amount)`.
pub fn token_mint_input(to: &Address, amount: u128) -> Vec<u8> {
    addr_amount(TOKEN_MINT, to, amount)
}

/// Input of `balance_of(who)`.
pub fn token_balance_of_input(who: &Address) -> Vec<u8> {
    let mut v = Vec::with_capacity(21);
    v.push(TOKEN_BALANCE_OF);
    v.extend_from_slice(who);
    v
}

/// The storage key (inside the token contract) of `who`'s balance: `"b" || who`.
pub fn token_balance_key(who: &Address) -> Vec<u8> {
    let mut v = Vec::with_capacity(21);
    v.push(b'b');
    v.extend_from_slice(who);
    v
}

/// Input of `increment(key)`; `key` is 1..=32 bytes.
pub fn counter_increment_input(key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + key.len());
    v.push(COUNTER_INCREMENT);
    v.extend_from_slice(key);
    v
}

/// Input of `get(key)`.
pub fn counter_get_input(key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + key.len());
    v.push(COUNTER_GET);
    v.extend_from_slice(key);
    v
}

/// The storage key (inside the counter contract) of `key`'s counter: `"k" || key`.
pub fn counter_storage_key(key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + key.len());
    v.push(b'k');
    v.extend_from_slice(key);
    v
}

/// Decodes a `u128` return value (16 bytes LE).
pub fn decode_u128(data: &[u8]) -> Option<u128> {
    <[u8; 16]>::try_from(data).ok().map(u128::from_le_bytes)
}

/// Decodes a `u64` return value (8 bytes LE).
pub fn decode_u64(data: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(data).ok().map(u64::from_le_bytes)
}
