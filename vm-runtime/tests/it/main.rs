//! vm-runtime integration tests (one binary): contracts, transactions, executor rules and
//! parallel == sequential on WASM blocks.

mod common;
mod contracts;
mod executor;
mod l1;
mod parallel;
mod tx;
