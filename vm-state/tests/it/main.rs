//! Integration tests of `vm-state` (one binary): parallel == sequential, stores, crash safety.
//!
//! `SUPERVM_STRESS=<n>` multiplies case counts and repetitions (default 1: CI size).

/// One proptest per key universe: random blocks of `parallel::block`, each checked by
/// `$check(universe, &txs, threads)` against the sequential oracle.
macro_rules! universe_prop {
    ($name:ident, $u:expr, $cases:expr, $check:path) => {
        proptest::proptest! {
            #![proptest_config(proptest::prelude::ProptestConfig::with_cases($cases * crate::stress()))]
            #[test]
            fn $name((txs, threads) in crate::parallel::block($u)) {
                $check($u, &txs, threads)?;
            }
        }
    };
}

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
