//! A GPU call that never returns must not stall the node: [`TimedKernels`] wraps the GPU's
//! [`BatchKernels`] and gives every call a deadline (`[gpu] timeout_ms`).
//!
//! A GPU kernel cannot be cancelled from the host, so a call runs on its own thread with an
//! owned copy of its inputs, and the caller waits at most the deadline. Past it the call
//! returns an error, which the [`crate::HybridScheduler`] treats like any GPU failure: the
//! batch is redone on the CPU, logged and counted (`supervm_gpu_fallbacks_total`), and the
//! result is the CPU's. The abandoned call keeps the device busy, so until it returns every
//! further GPU call fails at once (to the CPU as well) instead of queueing behind it; when it
//! returns, its result is dropped and the GPU is used again.
//!
//! Copying the inputs costs a few hundred microseconds for a 10,000-signature batch, small
//! next to the GPU batch itself. A first call that compiles kernels (NVRTC) can exceed a short
//! deadline: that batch runs on the CPU while compilation finishes in the background.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::scheduler::{BatchKernels, Kernel, ProofItem, SigItem};

type Reply<R> = std::result::Result<R, String>;

/// A GPU backend whose calls time out (see the module documentation).
pub struct TimedKernels {
    inner: Arc<dyn BatchKernels>,
    timeout: Duration,
    /// Calls that timed out and have not returned yet.
    abandoned: Arc<AtomicUsize>,
}

impl std::fmt::Debug for TimedKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedKernels")
            .field("inner", &self.inner.name())
            .field("timeout", &self.timeout)
            .field("abandoned", &self.abandoned.load(Ordering::Relaxed))
            .finish()
    }
}

impl TimedKernels {
    /// Wraps `inner`; every call waits at most `timeout`.
    pub fn new(inner: Arc<dyn BatchKernels>, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            abandoned: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Calls that timed out and are still running on the device.
    pub fn abandoned_calls(&self) -> usize {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Runs `call` on the inner backend on its own thread and waits at most the deadline.
    fn run<R: Send + 'static>(
        &self,
        what: &str,
        call: impl FnOnce(&dyn BatchKernels) -> Reply<R> + Send + 'static,
    ) -> Reply<R> {
        let busy = self.abandoned.load(Ordering::Acquire);
        if busy > 0 {
            return Err(format!(
                "GPU still busy with {busy} call(s) that timed out; {what} not sent"
            ));
        }
        let (tx, rx) = mpsc::sync_channel::<Reply<R>>(1);
        let inner = Arc::clone(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("gpu-call".into())
            .spawn(move || {
                let _cpu = crate::cputime::ExitGuard;
                let r =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(inner.as_ref())))
                        .unwrap_or_else(|_| Err("GPU backend panicked".into()));
                // The receiver is gone only if the caller gave up (timeout).
                let _ = tx.send(r);
            });
        if let Err(e) = spawned {
            return Err(format!("cannot start the GPU call thread: {e}"));
        }
        match rx.recv_timeout(self.timeout) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.abandoned.fetch_add(1, Ordering::AcqRel);
                let abandoned = Arc::clone(&self.abandoned);
                // Wait for the abandoned call in the background, then open the GPU again.
                let _ = std::thread::Builder::new()
                    .name("gpu-abandoned".into())
                    .spawn(move || {
                        let _ = rx.recv();
                        abandoned.fetch_sub(1, Ordering::AcqRel);
                    });
                Err(format!(
                    "GPU {what} timed out after {} ms",
                    self.timeout.as_millis()
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(format!("GPU {what} thread ended without a result"))
            }
        }
    }
}

impl BatchKernels for TimedKernels {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn supports(&self, kernel: Kernel) -> bool {
        self.inner.supports(kernel)
    }

    fn verify_ed25519(&self, items: &[SigItem<'_>]) -> Reply<Vec<bool>> {
        let owned: Vec<([u8; 32], [u8; 64], Vec<u8>)> = items
            .iter()
            .map(|i| (i.public_key, i.signature, i.message.to_vec()))
            .collect();
        self.run("signature batch", move |k| {
            let items: Vec<SigItem<'_>> = owned
                .iter()
                .map(|(public_key, signature, message)| SigItem {
                    public_key: *public_key,
                    signature: *signature,
                    message,
                })
                .collect();
            k.verify_ed25519(&items)
        })
    }

    fn sha256(&self, msgs: &[&[u8]]) -> Reply<Vec<[u8; 32]>> {
        let owned: Vec<Vec<u8>> = msgs.iter().map(|m| m.to_vec()).collect();
        self.run("hash batch", move |k| {
            let msgs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            k.sha256(&msgs)
        })
    }

    fn merkle_root(&self, leaves: &[[u8; 32]]) -> Reply<[u8; 32]> {
        let owned = leaves.to_vec();
        self.run("Merkle root", move |k| k.merkle_root(&owned))
    }

    fn verify_proofs(&self, proofs: &[ProofItem<'_>]) -> Reply<Vec<bool>> {
        self.run_proofs("proof batch", proofs, |k, p| k.verify_proofs(p))
    }

    fn time_proof_check(&self, proofs: &[ProofItem<'_>]) -> Reply<bool> {
        self.run_proofs("proof check", proofs, |k, p| k.time_proof_check(p))
    }
}

impl TimedKernels {
    /// [`TimedKernels::run`] of `call` over owned copies of the proofs' payloads.
    fn run_proofs<R: Send + 'static>(
        &self,
        what: &str,
        proofs: &[ProofItem<'_>],
        call: fn(&dyn BatchKernels, &[ProofItem<'_>]) -> Reply<R>,
    ) -> Reply<R> {
        let owned: Vec<Vec<u8>> = proofs.iter().map(|p| p.payload.to_vec()).collect();
        self.run(what, move |k| {
            let proofs: Vec<ProofItem<'_>> =
                owned.iter().map(|payload| ProofItem { payload }).collect();
            call(k, &proofs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    /// A stand-in GPU whose calls take `delay` (a hung kernel when long), then answer like
    /// the CPU would.
    struct SlowGpu {
        delay: Duration,
        calls: AtomicUsize,
        hang_first: AtomicBool,
    }

    impl BatchKernels for SlowGpu {
        fn name(&self) -> String {
            "slow-gpu".into()
        }
        fn supports(&self, _: Kernel) -> bool {
            true
        }
        fn verify_ed25519(&self, items: &[SigItem<'_>]) -> Reply<Vec<bool>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.hang_first.swap(false, Ordering::SeqCst) {
                std::thread::sleep(self.delay);
            }
            Ok(items.iter().map(|i| i.message.len() % 2 == 0).collect())
        }
        fn sha256(&self, msgs: &[&[u8]]) -> Reply<Vec<[u8; 32]>> {
            Ok(msgs.iter().map(|m| [m.len() as u8; 32]).collect())
        }
        fn merkle_root(&self, leaves: &[[u8; 32]]) -> Reply<[u8; 32]> {
            Ok([leaves.len() as u8; 32])
        }
        fn verify_proofs(&self, proofs: &[ProofItem<'_>]) -> Reply<Vec<bool>> {
            Ok(proofs.iter().map(|p| !p.payload.is_empty()).collect())
        }
    }

    #[test]
    fn fast_calls_pass_through_and_a_hung_call_times_out_then_recovers() {
        let gpu = Arc::new(SlowGpu {
            delay: Duration::from_millis(600),
            calls: AtomicUsize::new(0),
            hang_first: AtomicBool::new(true),
        });
        let timed = TimedKernels::new(gpu.clone(), Duration::from_millis(100));
        let msgs: Vec<Vec<u8>> = (0..5).map(|i| vec![0u8; i]).collect();
        let items: Vec<SigItem<'_>> = msgs
            .iter()
            .map(|m| SigItem {
                public_key: [1; 32],
                signature: [2; 64],
                message: m,
            })
            .collect();

        // The first call hangs past the deadline: an error, quickly.
        let t = Instant::now();
        let err = timed.verify_ed25519(&items).expect_err("timed out");
        assert!(err.contains("timed out"), "{err}");
        assert!(t.elapsed() < Duration::from_millis(500));
        assert_eq!(timed.abandoned_calls(), 1);

        // While it runs, further calls fail at once without reaching the device.
        let err = timed.sha256(&[b"x"]).expect_err("busy");
        assert!(err.contains("busy"), "{err}");
        assert_eq!(gpu.calls.load(Ordering::SeqCst), 1);

        // Once it returns, the GPU is used again and answers normally.
        let deadline = Instant::now() + Duration::from_secs(10);
        while timed.abandoned_calls() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(timed.abandoned_calls(), 0);
        let ok = timed.verify_ed25519(&items).expect("recovered");
        assert_eq!(ok, vec![true, false, true, false, true]);
        assert_eq!(timed.merkle_root(&[[0; 32]; 3]).expect("merkle"), [3; 32]);
        let p = [ProofItem { payload: b"p" }, ProofItem { payload: b"" }];
        assert_eq!(timed.verify_proofs(&p).expect("proofs"), vec![true, false]);
    }
}
