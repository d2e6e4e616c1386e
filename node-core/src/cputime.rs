//! CPU time by thread group, for `supervm bench node` (`SUPERVM_BENCH_VERBOSE=1`): where
//! the host's cores went during a run, so a CPU-bound pipeline shows which part to make
//! cheaper.
//!
//! Linux only: a thread's time on the CPU is the first field of
//! `/proc/self/task/<tid>/schedstat` (nanoseconds) and its group is its name
//! (`/proc/self/task/<tid>/comm`) without a trailing number (`supervm-3` -> `supervm-`).
//! Threads that end during a run (the pipeline's stage threads, the GPU call threads) add
//! their time when they end ([`ExitGuard`]), once a first [`snapshot`] turned the
//! accounting on (a node that never measures reads nothing). Elsewhere every figure is
//! empty.

use std::collections::HashMap;

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// Time of threads that ended, by group, one entry per group (added by [`ExitGuard`]).
static ENDED: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
/// Set by the first [`snapshot`]: only then do ending threads read their time.
static ON: AtomicBool = AtomicBool::new(false);

fn group(comm: &str) -> String {
    comm.trim_end()
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .to_string()
}

fn read_task(dir: &std::path::Path) -> Option<(String, u64)> {
    let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
    let sched = std::fs::read_to_string(dir.join("schedstat")).ok()?;
    let ns = sched.split_whitespace().next()?.parse().ok()?;
    Some((group(&comm), ns))
}

/// CPU time of the process's live threads and of those that ended, at one moment.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    live: HashMap<u32, (String, u64)>,
    ended: HashMap<String, u64>,
}

/// Reads every live thread's CPU time.
pub fn snapshot() -> Snapshot {
    ON.store(true, Ordering::Relaxed);
    let mut live = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some(t) = read_task(&e.path()) {
                live.insert(tid, t);
            }
        }
    }
    let ended = ENDED.lock().iter().cloned().collect();
    Snapshot { live, ended }
}

/// CPU seconds by group between `before` and `after`, largest first.
pub fn delta(before: &Snapshot, after: &Snapshot) -> Vec<(String, f64)> {
    let mut by: HashMap<String, u64> = HashMap::new();
    for (tid, (g, ns)) in &after.live {
        let was = before.live.get(tid).map_or(0, |(_, b)| *b);
        *by.entry(g.clone()).or_insert(0) += ns.saturating_sub(was);
    }
    for (g, ns) in &after.ended {
        let was = before.ended.get(g).copied().unwrap_or(0);
        *by.entry(g.clone()).or_insert(0) += ns.saturating_sub(was);
    }
    let mut v: Vec<(String, f64)> = by
        .into_iter()
        .filter(|(_, ns)| *ns > 0)
        .map(|(g, ns)| (g, ns as f64 / 1e9))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// Adds the current thread's CPU time to the ended threads' totals when dropped: hold one
/// for the whole life of a thread that ends before a measurement does.
pub struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if !ON.load(Ordering::Relaxed) {
            return;
        }
        if let Some((group, ns)) = read_task(std::path::Path::new("/proc/thread-self")) {
            // One entry per group (a long-running node ends a GPU call thread per batch).
            let mut ended = ENDED.lock();
            match ended.iter_mut().find(|(g, _)| *g == group) {
                Some(e) => e.1 += ns,
                None => ended.push((group, ns)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_drop_the_thread_number() {
        assert_eq!(group("supervm-12\n"), "supervm-");
        assert_eq!(group("node-side-0"), "node-side-");
        assert_eq!(group("commit"), "commit");
    }

    #[test]
    fn an_ended_thread_is_counted() {
        let before = snapshot();
        std::thread::Builder::new()
            .name("cputime-probe".into())
            .spawn(|| {
                let _g = ExitGuard;
                // A fixed amount of work, not of wall time: on a busy machine a thread can
                // spend 30 ms of wall time with little CPU time.
                let mut x = 0u64;
                for i in 0..20_000_000u64 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
                std::hint::black_box(x);
            })
            .unwrap()
            .join()
            .unwrap();
        let d = delta(&before, &snapshot());
        if cfg!(target_os = "linux") {
            let probe = d.iter().find(|(g, _)| g == "cputime-probe").map(|x| x.1);
            assert!(probe.unwrap_or(0.0) > 0.01, "{d:?}");
        }
    }
}
