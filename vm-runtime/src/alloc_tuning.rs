//! Allocator tuning for binaries that use mimalloc as their global allocator (the `supervm`
//! node and the execution benchmark).
//!
//! mimalloc (v3) hands memory that stayed free for 1 s back to the kernel ("purge"). A block
//! executor allocates and frees tens of megabytes per block, on several threads (the block's
//! multi-version memory is freed on a thread of its own), and with that default the workers
//! kept re-faulting purged pages, which the kernel zeroes (with transparent huge pages, 2 MiB
//! at a time): on the 2-core dev machine page zeroing was about a third of a Block-STM
//! worker's time (`docs/BENCHMARKS.md`). A purge delay of 10 s keeps the memory of recent
//! blocks mapped while blocks flow and still returns it after a quiet spell.

/// The purge delay set when the operator did not choose one (`MIMALLOC_PURGE_DELAY`), ms.
pub const PURGE_DELAY_MS: i64 = 10_000;

/// mimalloc's index of `mi_option_purge_delay` (v2 and v3; not exported by
/// `libmimalloc-sys`). Guarded: only changed when it holds mimalloc's default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc v3's default purge delay (v2's is 10 ms).
const DEFAULT_PURGE_DELAY: [i64; 2] = [1000, 10];

/// Sets mimalloc's purge delay to [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` is set.
/// Call first thing in `main`. Returns the delay in force afterwards.
#[allow(unsafe_code)]
#[allow(clippy::useless_conversion)] // `c_long` is 32 bits on some targets
pub fn tune_mimalloc() -> i64 {
    // SAFETY: `mi_option_get` and `mi_option_set` only read and write an integer in
    // mimalloc's option table (no pointers). The option is read back first and changed only
    // if it holds a default purge delay, so a different option layout leaves it alone.
    let now = i64::from(unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) });
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() || !DEFAULT_PURGE_DELAY.contains(&now) {
        return now;
    }
    // SAFETY: as above.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _);
        i64::from(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option index is mimalloc's purge delay: it held a default purge delay, so it was
    /// changed (were it another option, the guard would have left it and this fails).
    #[test]
    fn purge_delay_is_found_and_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(tune_mimalloc(), PURGE_DELAY_MS);
            // Idempotent: a second call leaves the chosen value.
            assert_eq!(tune_mimalloc(), PURGE_DELAY_MS);
        }
    }
}
