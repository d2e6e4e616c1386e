//! Proof kernels over BN254: G1 multi-scalar multiplication (Pippenger) and number-theoretic
//! transforms over Fr, on CUDA or OpenCL with the arkworks CPU implementation as reference
//! and fallback. See `docs/ZK_KERNELS.md`.
//!
//! - [`ZkExecutor`]: owns at most one [`GpuDevice`] (picked from a [`GpuConfig`]), a CPU
//!   thread pool and the device's scratch memory. [`ZkExecutor::msm_g1`] and
//!   [`ZkExecutor::ntt`] run on the device when there is one and the input is large enough;
//!   a device failure is logged, counted ([`ZkStats`]) and the call is redone on the CPU, so
//!   the result is always arkworks' result.
//! - [`cpu`]: the arkworks reference (`VariableBaseMSM`, `Radix2EvaluationDomain`).
//! - [`ZkExecutor::msm_g2`]: the same pipeline over G2 (Fq2 coordinates), same rules.
//! - Kernels: `kernels/zk/` (field template in 32-bit Montgomery limbs with a PTX fast
//!   path, Fq2 on top of it, XYZZ curve arithmetic instantiated for G1 and G2, MSM pipeline
//!   (one program per group), tiled NTT), assembled in `kernels.rs`.
//! - [`ZkExecutor::miller_loops`]: BN254 optimal-ate Miller loops, one pair per device
//!   thread, bit-identical to arkworks' `Bn254::multi_miller_loop` of each pair (the part of
//!   Groth16 batch verification that grows with the batch; `kernels/zk/pairing.cl`), and
//!   [`ZkExecutor::gpu_miller_product`]: their product with several device threads per
//!   pair (the lines first, then ranges of the loop's iterations; see `docs/ZK_KERNELS.md`).
//! - [`ZkExecutor::gpu_decompress`]: the square roots of compressed G1 and G2 points and
//!   the G2 subgroup test, one point per device thread (the costly part of decoding a
//!   Groth16 proof; `kernels/zk/decode.cl`), every root checked on the host.
//! - [`bench`]: `msm_suite` / `ntt_suite` for `supervm bench` and `examples/zk_bench.rs`.
//!
//! Field elements and points use arkworks' own Montgomery representation on the device, so
//! no conversion beyond a copy happens between arkworks and the kernels.

pub mod bench;
pub mod cpu;
mod gpu;
mod kernels;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ark_bn254::{Fq, Fq12, Fq2, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::short_weierstrass::SWCurveConfig;
use ark_ec::AffineRepr;
use ark_ff::Field;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::config::GpuConfig;
use crate::device::{BackendKind, GpuDevice};
use crate::error::{GpuError, Result};

use gpu::GpuZk;
pub use gpu::{DeviceG1Bases, DeviceG2Bases};

/// Direction of an NTT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NttDirection {
    /// Coefficients -> evaluations (arkworks `fft`).
    Forward,
    /// Evaluations -> coefficients, including the 1/n scaling (arkworks `ifft`).
    Inverse,
}

/// MSM settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MsmConfig {
    /// Pippenger window in bits; `None` picks it from the input size. Default: `None`.
    pub window_bits: Option<u32>,
    /// MSMs with fewer points run on the CPU. Default: 4096 (a device MSM costs about 6 ms
    /// whatever its size; arkworks on 16 cores takes 68 ms at 2^16).
    pub min_gpu_len: usize,
}

impl Default for MsmConfig {
    fn default() -> Self {
        Self {
            window_bits: None,
            min_gpu_len: 4096,
        }
    }
}

/// NTT settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NttConfig {
    /// Transforms with fewer points run on the CPU. Default: 1024 (on the H200 host the
    /// device, copies included, already wins at 2^10: 0.16 ms against 0.48 ms).
    pub min_gpu_len: usize,
}

impl Default for NttConfig {
    fn default() -> Self {
        Self { min_gpu_len: 1024 }
    }
}

/// Miller-loop settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PairingConfig {
    /// Calls with fewer pairs run on the CPU. Default: 16.
    pub min_gpu_pairs: usize,
}

impl Default for PairingConfig {
    fn default() -> Self {
        Self { min_gpu_pairs: 16 }
    }
}

/// Settings of the zk kernels (`[gpu.zk]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZkConfig {
    pub msm: MsmConfig,
    pub ntt: NttConfig,
    pub pairing: PairingConfig,
    /// On CUDA, use the PTX carry-chain Montgomery multiplication (`mad.lo.cc` /
    /// `madc.hi.cc`) instead of the portable C one. Default: true.
    pub cuda_ptx: bool,
}

impl Default for ZkConfig {
    fn default() -> Self {
        Self {
            msm: MsmConfig::default(),
            ntt: NttConfig::default(),
            pairing: PairingConfig::default(),
            cuda_ptx: true,
        }
    }
}

impl ZkConfig {
    /// Every call on the device, whatever its size (for tests).
    pub fn always_gpu() -> Self {
        Self {
            msm: MsmConfig {
                min_gpu_len: 0,
                ..MsmConfig::default()
            },
            ntt: NttConfig { min_gpu_len: 0 },
            pairing: PairingConfig { min_gpu_pairs: 0 },
            ..Self::default()
        }
    }
}

/// The pairs the Miller-loop kernels take (neither point the identity: the others
/// contribute 1): their indices and points. Errors on different lengths.
fn live_pairs(
    g1: &[G1Affine],
    g2: &[G2Affine],
) -> Result<(Vec<usize>, Vec<G1Affine>, Vec<G2Affine>)> {
    cpu::check_pair_lengths(g1.len(), g2.len())?;
    let live: Vec<usize> = (0..g1.len())
        .filter(|&i| !g1[i].is_zero() && !g2[i].is_zero())
        .collect();
    let (a, b) = live.iter().map(|&i| (g1[i], g2[i])).unzip();
    Ok((live, a, b))
}

/// Device threads per pair for [`ZkExecutor::gpu_miller_product`] of `n` pairs: enough
/// to have about 8,192 threads in flight (a batch of 500 pairs: 16 segments of four
/// iterations each), at most 16, and 1 from 8,192 pairs on (the one-pair-per-thread
/// kernel, which stores no lines).
pub fn miller_segments_for(n: usize) -> u32 {
    const THREADS: usize = 8192;
    THREADS.div_ceil(n.max(1)).clamp(1, 16) as u32
}

/// [`ZkExecutor::gpu_decompress`]'s answer for one G2 `x`: a `y` on the twist (either
/// sign) and whether `(x, y)` is in G2 (the prime-order subgroup).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct G2Root {
    pub y: Fq2,
    pub in_subgroup: bool,
}

/// [`ZkExecutor::gpu_decompress`]'s answers, in the order of its inputs: `None` where the
/// device found no square root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decompressed {
    pub g1: Vec<Option<Fq>>,
    pub g2: Vec<Option<G2Root>>,
}

/// Counters of an executor: work done on the device, and device failures redone on the CPU.
#[derive(Debug, Default)]
pub struct ZkStats {
    gpu_msm: AtomicU64,
    gpu_ntt: AtomicU64,
    gpu_miller: AtomicU64,
    cpu_msm: AtomicU64,
    cpu_ntt: AtomicU64,
    cpu_miller: AtomicU64,
    gpu_failures: AtomicU64,
}

/// A copy of [`ZkStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZkStatsSnapshot {
    pub gpu_msm: u64,
    pub gpu_ntt: u64,
    /// Miller-loop calls (not pairs).
    pub gpu_miller: u64,
    pub cpu_msm: u64,
    pub cpu_ntt: u64,
    pub cpu_miller: u64,
    /// Device calls that failed and were redone on the CPU.
    pub gpu_failures: u64,
}

impl ZkStats {
    pub fn snapshot(&self) -> ZkStatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ZkStatsSnapshot {
            gpu_msm: l(&self.gpu_msm),
            gpu_ntt: l(&self.gpu_ntt),
            gpu_miller: l(&self.gpu_miller),
            cpu_msm: l(&self.cpu_msm),
            cpu_ntt: l(&self.cpu_ntt),
            cpu_miller: l(&self.cpu_miller),
            gpu_failures: l(&self.gpu_failures),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// MSM and NTT over BN254 on one device (or the CPU only). `Send + Sync`; calls on one
/// executor's device are serialised (they share its scratch memory).
pub struct ZkExecutor {
    gpu: Option<Mutex<gpu::GpuZk>>,
    backend: Option<BackendKind>,
    pool: Arc<rayon::ThreadPool>,
    config: ZkConfig,
    stats: ZkStats,
    last_error: Mutex<Option<String>>,
    /// Set when the decompression program failed to compile or its self-test (see
    /// `prepare_pairing`).
    decode_failed: std::sync::atomic::AtomicBool,
    /// The same for the G1 scaling program.
    scale_failed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for ZkExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ZkExecutor({})", self.backend_name())
    }
}

fn build_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("zk-cpu-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| GpuError::Config(format!("cannot start the CPU thread pool: {e}")))
}

impl ZkExecutor {
    /// Opens the first device `gpu` selects (none for backend `cpu`, or `auto` without a
    /// GPU) and a CPU pool of `gpu.cpu_threads` threads (0 = all cores). A GPU that is
    /// present but fails to set up is logged and the executor runs on the CPU.
    pub fn new(gpu: &GpuConfig, config: ZkConfig) -> Result<Self> {
        let pool = build_pool(gpu.cpu_threads)?;
        let device = crate::device::open_devices(gpu)?.into_iter().next();
        Ok(Self::with_device(device, pool, config))
    }

    /// An executor on `device` (or the CPU only), using `pool` for CPU work.
    pub fn with_device(
        device: Option<GpuDevice>,
        pool: Arc<rayon::ThreadPool>,
        config: ZkConfig,
    ) -> Self {
        let backend = device.as_ref().map(|d| d.backend());
        let gpu = device.and_then(|d| {
            let ptx = config.cuda_ptx && d.backend() == BackendKind::Cuda;
            match gpu::GpuZk::new(d, ptx) {
                Ok(g) => Some(Mutex::new(g)),
                Err(e) => {
                    tracing::warn!("zk kernels: device unusable, using the CPU: {e}");
                    None
                }
            }
        });
        let backend = if gpu.is_some() { backend } else { None };
        Self {
            gpu,
            backend,
            pool,
            config,
            stats: ZkStats::default(),
            last_error: Mutex::new(None),
            decode_failed: std::sync::atomic::AtomicBool::new(false),
            scale_failed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A CPU-only executor on `pool`.
    pub fn cpu(pool: Arc<rayon::ThreadPool>) -> Self {
        Self::with_device(None, pool, ZkConfig::default())
    }

    /// `cpu`, `cuda` or `opencl`.
    pub fn backend_name(&self) -> &'static str {
        self.backend.map_or("cpu", BackendKind::as_str)
    }

    /// Name of the device the kernels run on (`None` on the CPU).
    pub fn device_name(&self) -> Option<String> {
        self.gpu
            .as_ref()
            .map(|g| g.lock().device().info().name.clone())
    }

    pub fn config(&self) -> &ZkConfig {
        &self.config
    }

    pub fn pool(&self) -> &Arc<rayon::ThreadPool> {
        &self.pool
    }

    pub fn stats(&self) -> ZkStatsSnapshot {
        self.stats.snapshot()
    }

    /// Compiles the kernels now (otherwise the first call compiles them).
    pub fn prepare(&self) -> Result<()> {
        match &self.gpu {
            Some(g) => g.lock().prepare(),
            None => Ok(()),
        }
    }

    /// The most recent device failure that made a call fall back to the CPU.
    pub fn last_gpu_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    fn fallback(&self, what: &str, e: &GpuError) {
        bump(&self.stats.gpu_failures);
        *self.last_error.lock() = Some(format!("{what}: {e}"));
        tracing::warn!(
            "zk {what} on {} failed, redoing it on the CPU: {e}",
            self.backend_name()
        );
    }

    /// Runs one MSM on the route its size picks: mismatched lengths go to `cpu` (which
    /// reports them), an empty one is the identity, one of at least `msm.min_gpu_len`
    /// points goes to the device when `gpu` can run it (`None`: resident bases missing),
    /// and a device fault is counted and redone by `cpu` on this executor's pool.
    #[allow(clippy::type_complexity)]
    fn route_msm<P: Default + Send>(
        &self,
        what: &str,
        lens: (usize, usize),
        gpu: Option<&(dyn Fn(&mut GpuZk, Option<u32>) -> Result<P> + Sync)>,
        cpu: &(dyn Fn() -> Result<P> + Sync),
    ) -> Result<P> {
        let (bases, scalars) = lens;
        if bases != scalars {
            return cpu();
        }
        if scalars == 0 {
            return Ok(P::default());
        }
        if let (Some(g), Some(run)) = (&self.gpu, gpu) {
            if scalars >= self.config.msm.min_gpu_len {
                let r = self
                    .pool
                    .install(|| run(&mut g.lock(), self.config.msm.window_bits));
                match r {
                    Ok(p) => {
                        bump(&self.stats.gpu_msm);
                        return Ok(p);
                    }
                    Err(e) if e.is_device_fault() => self.fallback(what, &e),
                    Err(e) => return Err(e),
                }
            }
        }
        bump(&self.stats.cpu_msm);
        self.pool.install(cpu)
    }

    /// Checks that resident bases match the host bases they were uploaded from.
    fn check_resident(device_len: usize, host_len: usize) -> Result<()> {
        if device_len != host_len {
            return Err(GpuError::InvalidInput(format!(
                "device bases hold {device_len} points, host bases {host_len}"
            )));
        }
        Ok(())
    }

    /// Miller loops of pairs: `out[i]` is exactly arkworks' `Bn254::multi_miller_loop`
    /// of the one pair `(g1[i], g2[i])` (1 when either is the identity), so the product of
    /// the outputs is the multi-Miller loop of all pairs. At least
    /// `pairing.min_gpu_pairs` pairs run on the device when there is one; a device fault is
    /// counted and the call redone on the CPU. Errors only on different lengths.
    pub fn miller_loops(&self, g1: &[G1Affine], g2: &[G2Affine]) -> Result<Vec<Fq12>> {
        if self.gpu.is_some() && g1.len() >= self.config.pairing.min_gpu_pairs {
            match self.gpu_miller_loops(g1, g2) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_device_fault() => self.fallback("Miller loop", &e),
                Err(e) => return Err(e),
            }
        }
        bump(&self.stats.cpu_miller);
        self.pool.install(|| cpu::miller_loops(g1, g2))
    }

    /// [`Self::miller_loops`] on the device only, whatever the size: no CPU fallback
    /// (for a caller that does its own, like the node's scheduler). Errors with
    /// [`GpuError::Unavailable`] on a CPU-only executor.
    pub fn gpu_miller_loops(&self, g1: &[G1Affine], g2: &[G2Affine]) -> Result<Vec<Fq12>> {
        let Some(g) = &self.gpu else {
            return Err(GpuError::Unavailable(
                "no device for the Miller-loop kernel".into(),
            ));
        };
        let (live, a, b) = live_pairs(g1, g2)?;
        let mut out = vec![Fq12::ONE; g1.len()];
        if live.is_empty() {
            return Ok(out);
        }
        let res = self.pool.install(|| g.lock().miller_loops(&a, &b))?;
        bump(&self.stats.gpu_miller);
        for (&i, f) in live.iter().zip(res) {
            out[i] = f;
        }
        Ok(out)
    }

    /// The product of the Miller loops of all pairs, exactly arkworks'
    /// `Bn254::multi_miller_loop(g1, g2)` (pairs with the identity contribute 1), on the
    /// device only (no CPU fallback, like [`Self::gpu_miller_loops`]), with
    /// [`miller_segments_for`] threads per pair. For a batch check, which needs only the
    /// product: a few hundred pairs take a fraction of the one-thread-per-pair latency.
    pub fn gpu_miller_product(&self, g1: &[G1Affine], g2: &[G2Affine]) -> Result<Fq12> {
        self.gpu_miller_product_segments(g1, g2, miller_segments_for(g1.len()))
    }

    /// [`Self::gpu_miller_product`] with `segs` threads per pair (clamped to 1 ..= the
    /// loop's 64 iterations; 1 = one thread runs a pair's whole loop). For tests and
    /// benchmarks.
    pub fn gpu_miller_product_segments(
        &self,
        g1: &[G1Affine],
        g2: &[G2Affine],
        segs: u32,
    ) -> Result<Fq12> {
        let Some(g) = &self.gpu else {
            return Err(GpuError::Unavailable(
                "no device for the Miller-loop kernel".into(),
            ));
        };
        let (_, a, b) = live_pairs(g1, g2)?;
        if a.is_empty() {
            return Ok(Fq12::ONE);
        }
        let res = self
            .pool
            .install(|| g.lock().miller_product(&a, &b, segs))?;
        bump(&self.stats.gpu_miller);
        Ok(res)
    }

    /// Square roots for compressed points, on the device only (no CPU fallback): for each
    /// G1 `x` a `y` with `y^2 = x^3 + 3`, for each G2 `x` a `y` with `y^2 = x^3 + b'` on the
    /// twist and whether `(x, y)` is in G2; `None` where the device found no root. Every
    /// root is checked here (a wrong one is an error, as from a failed kernel); a `None` and
    /// the subgroup bit are the device's word (the test is `decode.cl`'s, the same formula
    /// as the CPU's, tested against it). A caller that must be exact decodes the `None`s
    /// and the points outside G2 again on the CPU: they are rare (bad input only).
    pub fn gpu_decompress(&self, g1_x: &[Fq], g2_x: &[Fq2]) -> Result<Decompressed> {
        let Some(g) = &self.gpu else {
            return Err(GpuError::Unavailable(
                "no device for the decompression kernel".into(),
            ));
        };
        let d = self.pool.install(|| g.lock().decompress(g1_x, g2_x))?;
        if d.g1.len() != g1_x.len() || d.g2.len() != g2_x.len() {
            return Err(GpuError::Launch(
                "decompression returned a wrong count".into(),
            ));
        }
        let b1 = ark_bn254::g1::Config::COEFF_B;
        let b2 = ark_bn254::g2::Config::COEFF_B;
        use rayon::prelude::*;
        let (bad_g1, bad_g2) = self.pool.install(|| {
            rayon::join(
                || {
                    g1_x.par_iter()
                        .zip(&d.g1)
                        .any(|(x, y)| y.is_some_and(|y| y.square() != x.square() * x + b1))
                },
                || {
                    g2_x.par_iter()
                        .zip(&d.g2)
                        .any(|(x, r)| r.is_some_and(|r| r.y.square() != x.square() * x + b2))
                },
            )
        });
        if bad_g1 || bad_g2 {
            return Err(GpuError::Launch(
                "the decompression kernel returned a wrong square root".into(),
            ));
        }
        Ok(d)
    }

    /// Whether [`Self::gpu_decompress`] can run: a device whose decompression program
    /// compiled and passed its known-answer self-test (or was not prepared yet: see
    /// [`Self::prepare_pairing`]).
    pub fn has_decompression(&self) -> bool {
        self.gpu.is_some() && !self.decode_failed.load(Ordering::Relaxed)
    }

    /// `k1 * P + k2 * phi(P)` for each point and weight `(k1, k2)` (`phi(x, y) = (beta x,
    /// y)`, G1's endomorphism), affine: the scaling of each proof's `A` in a batch check,
    /// on the device only (no CPU fallback). Every point returned is checked to be on the
    /// curve (a point off it is an error, as from a failed kernel); which point of the
    /// curve is the device's word, as the Miller product is. Errors on different lengths.
    pub fn gpu_scale_g1(&self, points: &[G1Affine], ks: &[(u64, u64)]) -> Result<Vec<G1Affine>> {
        let Some(g) = &self.gpu else {
            return Err(GpuError::Unavailable(
                "no device for the G1 scaling kernel".into(),
            ));
        };
        self.pool.install(|| g.lock().scale_g1(points, ks))
    }

    /// Whether [`Self::gpu_scale_g1`] can run: a device whose scaling program compiled
    /// and passed its known-answer self-test (or was not prepared yet: see
    /// [`Self::prepare_pairing`]).
    pub fn has_scaling(&self) -> bool {
        self.gpu.is_some() && !self.scale_failed.load(Ordering::Relaxed)
    }

    /// Compiles the Miller-loop, decompression and G1-scaling kernels now (no-op on the
    /// CPU) and runs the last two's known-answer self-tests; one that fails to compile or
    /// to pass is logged and turns [`Self::has_decompression`] or [`Self::has_scaling`]
    /// off (the Miller loops stay usable).
    pub fn prepare_pairing(&self) -> Result<()> {
        let Some(g) = &self.gpu else {
            return Ok(());
        };
        let compiled = g.lock().prepare_pairing()?;
        let passes = |what: &str, test: Result<()>| match test {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("zk {what} kernel failed its self-test, running it on the CPU: {e}");
                false
            }
        };
        let decode_ok = compiled.decode && passes("decompression", self.decompression_self_test());
        let scale_ok = compiled.scale && passes("G1 scaling", self.scaling_self_test());
        self.decode_failed.store(!decode_ok, Ordering::Relaxed);
        self.scale_failed.store(!scale_ok, Ordering::Relaxed);
        Ok(())
    }

    /// Known answers for [`Self::gpu_scale_g1`], checked once when the kernel is prepared:
    /// G1's generator and a multiple, and the identity, with weights that exercise every
    /// bit pattern's branch (zero halves, all ones, single top bits), against arkworks.
    fn scaling_self_test(&self) -> Result<()> {
        use ark_ec::{CurveGroup, PrimeGroup};
        let g = G1Affine::generator();
        let g7 = (G1Projective::generator() * Fr::from(7u64)).into_affine();
        let cases = [
            (g, (1u64, 0u64)),
            (g, (0, 1)),
            (g7, (u64::MAX, u64::MAX)),
            (g7, (1 << 63, 1 << 62)),
            (g, (0x9E37_79B9_7F4A_7C15, 3)),
            (G1Affine::identity(), (5, 9)),
            (g7, (0, 0)),
        ];
        let points: Vec<G1Affine> = cases.iter().map(|c| c.0).collect();
        let ks: Vec<(u64, u64)> = cases.iter().map(|c| c.1).collect();
        let got = self.gpu_scale_g1(&points, &ks)?;
        let want: Vec<G1Affine> = cases
            .iter()
            .map(|&(p, (k1, k2))| cpu::scale_g1_one(&p, k1, k2))
            .collect();
        if got != want {
            return Err(GpuError::Launch("known answers differ".into()));
        }
        Ok(())
    }

    /// Known answers for [`Self::gpu_decompress`], checked once when the kernel is
    /// prepared: G1's and G2's generators and a multiple (roots, in G2), the smallest
    /// `i + u` whose point is on the twist but outside G2, and the smallest x of each group
    /// without a root, against arkworks. A device that answers any of them wrong never
    /// decompresses for the node.
    fn decompression_self_test(&self) -> Result<()> {
        use ark_ec::short_weierstrass::Affine;
        use ark_ec::{CurveGroup, PrimeGroup};
        let no_root_g1 = (1u64..64)
            .map(Fq::from)
            .find(|&x| Affine::<ark_bn254::g1::Config>::get_ys_from_x_unchecked(x).is_none());
        let twist = |i: u64| Fq2::new(Fq::from(i), Fq::ONE);
        let outside = (1u64..256).map(twist).find(|&x| {
            G2Affine::get_point_from_x_unchecked(x, false)
                .is_some_and(|p| !p.is_in_correct_subgroup_assuming_on_curve())
        });
        let no_root_g2 = (1u64..256)
            .map(twist)
            .find(|&x| G2Affine::get_point_from_x_unchecked(x, false).is_none());
        let (Some(no_root_g1), Some(outside), Some(no_root_g2)) = (no_root_g1, outside, no_root_g2)
        else {
            return Err(GpuError::Launch("no self-test points found".into()));
        };
        let g1_x = [G1Affine::generator().x, no_root_g1];
        let g2_x = [
            G2Affine::generator().x,
            (G2Projective::generator() * Fr::from(5u64)).into_affine().x,
            outside,
            no_root_g2,
        ];
        let d = self.gpu_decompress(&g1_x, &g2_x)?;
        let got_g1: Vec<bool> = d.g1.iter().map(Option::is_some).collect();
        let got_g2: Vec<Option<bool>> = d.g2.iter().map(|r| r.map(|r| r.in_subgroup)).collect();
        if got_g1 != [true, false] || got_g2 != [Some(true), Some(true), Some(false), None] {
            return Err(GpuError::Launch(format!(
                "known answers differ: G1 {got_g1:?}, G2 {got_g2:?}"
            )));
        }
        Ok(())
    }

    /// `sum scalars[i] * bases[i]` over G1. Errors only on malformed input (different
    /// lengths); device failures fall back to the CPU.
    pub fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> Result<G1Projective> {
        self.route_msm(
            "G1 MSM",
            (bases.len(), scalars.len()),
            Some(&|g: &mut GpuZk, c| g.msm_g1(bases, scalars, c)),
            &|| cpu::msm_g1(bases, scalars),
        )
    }

    /// Copies G1 bases to the device once, for many [`ZkExecutor::msm_g1_resident`] calls
    /// (a proving key's fixed bases). `None` on a CPU-only executor.
    pub fn upload_g1_bases(&self, bases: &[G1Affine]) -> Result<Option<DeviceG1Bases>> {
        match &self.gpu {
            Some(g) => self.pool.install(|| g.lock().upload_g1(bases)).map(Some),
            None => Ok(None),
        }
    }

    /// MSM over bases already on the device (`device_bases`, uploaded from `bases`; `bases`
    /// is what the CPU fallback uses, and what runs when the MSM is shorter than
    /// `msm.min_gpu_len`).
    pub fn msm_g1_resident(
        &self,
        bases: &[G1Affine],
        device_bases: Option<&DeviceG1Bases>,
        scalars: &[Fr],
    ) -> Result<G1Projective> {
        let run = |g: &mut GpuZk, c| match device_bases {
            Some(db) => {
                Self::check_resident(db.len, bases.len())?;
                g.msm_g1_resident(db, scalars, c)
            }
            None => Err(GpuError::InvalidInput("no resident bases".into())),
        };
        self.route_msm(
            "G1 MSM",
            (bases.len(), scalars.len()),
            device_bases.map(|_| &run as &(dyn Fn(&mut GpuZk, Option<u32>) -> Result<_> + Sync)),
            &|| cpu::msm_g1(bases, scalars),
        )
    }

    /// `sum scalars[i] * bases[i]` over G2, on the device under the same rules as
    /// [`ZkExecutor::msm_g1`] (at least `msm.min_gpu_len` points; a device failure is
    /// counted and the call redone on the CPU), else arkworks on this executor's pool.
    pub fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> Result<G2Projective> {
        self.route_msm(
            "G2 MSM",
            (bases.len(), scalars.len()),
            Some(&|g: &mut GpuZk, c| g.msm_g2(bases, scalars, c)),
            &|| cpu::msm_g2(bases, scalars),
        )
    }

    /// Copies G2 bases to the device once, for many [`ZkExecutor::msm_g2_resident`] calls.
    /// `None` on a CPU-only executor.
    pub fn upload_g2_bases(&self, bases: &[G2Affine]) -> Result<Option<DeviceG2Bases>> {
        match &self.gpu {
            Some(g) => self.pool.install(|| g.lock().upload_g2(bases)).map(Some),
            None => Ok(None),
        }
    }

    /// G2 MSM over bases already on the device; the rules of
    /// [`ZkExecutor::msm_g1_resident`].
    pub fn msm_g2_resident(
        &self,
        bases: &[G2Affine],
        device_bases: Option<&DeviceG2Bases>,
        scalars: &[Fr],
    ) -> Result<G2Projective> {
        let run = |g: &mut GpuZk, c| match device_bases {
            Some(db) => {
                Self::check_resident(db.len, bases.len())?;
                g.msm_g2_resident(db, scalars, c)
            }
            None => Err(GpuError::InvalidInput("no resident bases".into())),
        };
        self.route_msm(
            "G2 MSM",
            (bases.len(), scalars.len()),
            device_bases.map(|_| &run as &(dyn Fn(&mut GpuZk, Option<u32>) -> Result<_> + Sync)),
            &|| cpu::msm_g2(bases, scalars),
        )
    }

    /// In-place NTT of `values` (length a power of two, at most 2^28), over the subgroup of
    /// that size or, with `coset = Some(g)`, over `g` times it; the same result as
    /// arkworks' `Radix2EvaluationDomain` (`fft_in_place` / `ifft_in_place`, on
    /// `get_coset(g)` for a coset).
    pub fn ntt(&self, values: &mut [Fr], direction: NttDirection, coset: Option<Fr>) -> Result<()> {
        cpu::ntt_log_size(values.len())?;
        if coset.is_some_and(|g| ark_ff::Zero::is_zero(&g)) {
            return Err(GpuError::InvalidInput(
                "coset offset must be a non-zero field element".into(),
            ));
        }
        if let Some(g) = &self.gpu {
            if values.len() >= self.config.ntt.min_gpu_len.max(2) {
                let r = self.pool.install(|| g.lock().ntt(values, direction, coset));
                match r {
                    Ok(()) => {
                        bump(&self.stats.gpu_ntt);
                        return Ok(());
                    }
                    Err(e) if e.is_device_fault() => self.fallback("NTT", &e),
                    Err(e) => return Err(e),
                }
            }
        }
        bump(&self.stats.cpu_ntt);
        self.pool.install(|| cpu::ntt(values, direction, coset))
    }

    /// Several independent NTTs of the same direction and coset (e.g. the A, B, C vectors
    /// of a Groth16 witness), in order.
    pub fn ntt_batch(
        &self,
        batch: &mut [Vec<Fr>],
        direction: NttDirection,
        coset: Option<Fr>,
    ) -> Result<()> {
        for v in batch.iter_mut() {
            self.ntt(v, direction, coset)?;
        }
        Ok(())
    }
}

/// [`ZkExecutor::msm_g1`].
pub fn msm_g1(exec: &ZkExecutor, bases: &[G1Affine], scalars: &[Fr]) -> Result<G1Projective> {
    exec.msm_g1(bases, scalars)
}

/// [`ZkExecutor::msm_g2`].
pub fn msm_g2(exec: &ZkExecutor, bases: &[G2Affine], scalars: &[Fr]) -> Result<G2Projective> {
    exec.msm_g2(bases, scalars)
}

/// [`ZkExecutor::ntt`].
pub fn ntt(
    exec: &ZkExecutor,
    values: &mut [Fr],
    direction: NttDirection,
    coset: Option<Fr>,
) -> Result<()> {
    exec.ntt(values, direction, coset)
}
