//! Integration tests of `vm-state` (one binary): parallel == sequential, stores, crash safety.
//!
//! `SUPERVM_STRESS=<n>` multiplies case counts and repetitions (default 1: CI size).

mod crash;
mod declared;
mod parallel;
mod stores;

/// The stress multiplier from `SUPERVM_STRESS` (at least 1).
pub fn stress() -> u32 {
    std::env::var("SUPERVM_STRESS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}
