//! Host side of the GPU MSM and NTT: buffer management, launches and the final (tiny) CPU
//! steps, on top of the backend layer ([`GpuDevice`] / [`Queue`]). Works the same on CUDA
//! and OpenCL; nothing here names either API.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use ark_bn254::{Fq, Fq12, Fq2, Fq6, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::short_weierstrass::{Affine, SWCurveConfig};
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::{AdditiveGroup, BigInt, Field, PrimeField, Zero};
use rayon::prelude::*;

use super::kernels::{self, decode as dk, msm as mk, ntt as nk, pairing as pk, scale as sk, Group};
use super::NttDirection;
use crate::device::{
    DeviceBuffer, GpuDevice, HostStaging, KernelArg, KernelSource, LaunchDims, Queue,
};
use crate::error::{GpuError, Result};

/// Scalar bits of BN254 Fr (r < 2^254).
const SCALAR_BITS: u32 = 254;
/// Largest window the MSM uses (bucket memory grows as 2^c).
const MAX_WINDOW_BITS: u32 = 20;

/// Number of signed-digit windows for window size `c`: the top window absorbs the carry of
/// the signed recoding, so `floor(254 / c) + 1` windows always suffice for scalars < r.
pub(crate) fn msm_windows(c: u32) -> u32 {
    SCALAR_BITS / c + 1
}

/// The window size for `n` points: minimises (windows) * (n mixed additions + ~3 additions per
/// bucket in the reduction).
pub(crate) fn msm_window_bits(n: usize) -> u32 {
    (2..=MAX_WINDOW_BITS)
        .min_by_key(|&c| u64::from(msm_windows(c)) * (n as u64 + 3 * (1u64 << (c - 1))))
        .unwrap_or(8)
}

pub(crate) fn fr_limbs(f: &Fr) -> [u64; 4] {
    f.0 .0
}

fn limbs_below(l: &[u64; 4], m: &[u64; 4]) -> bool {
    for i in (0..4).rev() {
        if l[i] != m[i] {
            return l[i] < m[i];
        }
    }
    false
}

/// A field element from Montgomery limbs the device returned; a value that is not reduced
/// means the kernel misbehaved.
fn fr_from_device(l: [u64; 4]) -> Result<Fr> {
    if !limbs_below(&l, &Fr::MODULUS.0) {
        return Err(GpuError::Launch(
            "device returned an unreduced Fr element".into(),
        ));
    }
    Ok(Fr::new_unchecked(BigInt(l)))
}

fn fq_from_device(l: &[u64]) -> Result<Fq> {
    let a = [l[0], l[1], l[2], l[3]];
    if !limbs_below(&a, &Fq::MODULUS.0) {
        return Err(GpuError::Launch(
            "device returned an unreduced Fq element".into(),
        ));
    }
    Ok(Fq::new_unchecked(BigInt(a)))
}

fn fq2_from_device(l: &[u64]) -> Result<Fq2> {
    Ok(Fq2::new(
        fq_from_device(&l[0..4])?,
        fq_from_device(&l[4..8])?,
    ))
}

/// The Miller-loop kernels' points on the device: the G1 points and the G2 points (their
/// constants buffer is `GpuZk::pairing_consts`, uploaded once).
fn upload_pairs(
    dev: &GpuDevice,
    q: &Queue<'_>,
    g1: &[G1Affine],
    g2: &[G2Affine],
) -> Result<(DeviceBuffer, DeviceBuffer)> {
    let host_g1: Vec<u64> = g1.iter().flat_map(g1_limbs).collect();
    let host_g2: Vec<u64> = g2.iter().flat_map(g2_limbs).collect();
    let mut d_g1 = dev.alloc(host_g1.len() * 8)?;
    let mut d_g2 = dev.alloc(host_g2.len() * 8)?;
    q.upload(&mut d_g1, 0, &host_g1)?;
    q.upload(&mut d_g2, 0, &host_g2)?;
    Ok((d_g1, d_g2))
}

/// An Fq12 element from 48 limbs (c0.c0 .. c1.c2, each an Fq2 of 8 limbs).
fn fq12_from_device(l: &[u64]) -> Result<Fq12> {
    let fq6 = |l: &[u64]| -> Result<Fq6> {
        Ok(Fq6::new(
            fq2_from_device(&l[0..8])?,
            fq2_from_device(&l[8..16])?,
            fq2_from_device(&l[16..24])?,
        ))
    };
    Ok(Fq12::new(fq6(&l[0..24])?, fq6(&l[24..48])?))
}

/// Points in XYZZ coordinates (X, Y, ZZ, ZZZ, each `coord_u64` limbs; Fq2 with c0 before c1)
/// -> affine arkworks points, checking that each coordinate is reduced (`coord`) and each
/// point is on the curve. One field inversion for all of them (batch inversion).
fn batch_from_xyzz<P: SWCurveConfig>(
    flat: &[u64],
    coord_u64: usize,
    coord: fn(&[u64]) -> Result<P::BaseField>,
) -> Result<Vec<Affine<P>>> {
    let points = flat.chunks_exact(4 * coord_u64);
    let mut coords = Vec::with_capacity(points.len());
    let mut denoms = Vec::with_capacity(points.len() * 2);
    for l in points {
        let mut c = l.chunks_exact(coord_u64).map(coord);
        let (Some(x), Some(y), Some(zz), Some(zzz)) = (c.next(), c.next(), c.next(), c.next())
        else {
            return Err(GpuError::Launch(
                "device returned a short XYZZ point".into(),
            ));
        };
        let (x, y, zz, zzz) = (x?, y?, zz?, zzz?);
        if zz.is_zero() {
            coords.push(None);
            continue;
        }
        if zzz.is_zero() {
            return Err(GpuError::Launch(
                "device returned an inconsistent XYZZ point".into(),
            ));
        }
        coords.push(Some((x, y)));
        denoms.push(zz);
        denoms.push(zzz);
    }
    ark_ff::batch_inversion(&mut denoms);
    let mut inv = denoms.chunks_exact(2);
    let mut out = Vec::with_capacity(coords.len());
    for c in coords {
        let Some((x, y)) = c else {
            out.push(Affine::<P>::identity());
            continue;
        };
        let d = inv
            .next()
            .ok_or_else(|| GpuError::Launch("batch inversion lost a point".into()))?;
        let p = Affine::<P>::new_unchecked(x * d[0], y * d[1]);
        if !p.is_on_curve() {
            return Err(GpuError::Launch(
                "device returned a point off the curve".into(),
            ));
        }
        out.push(p);
    }
    Ok(out)
}

/// 32 limbs per G2 point: x.c0, x.c1, y.c0, y.c1 in Montgomery form; the identity (which
/// arkworks stores with its `infinity` flag) is all zeros, which is not on the curve.
pub(crate) fn g2_limbs(p: &G2Affine) -> [u64; 16] {
    let mut out = [0u64; 16];
    if let Some((x, y)) = p.xy() {
        for (k, f) in [x.c0, x.c1, y.c0, y.c1].iter().enumerate() {
            out[4 * k..4 * k + 4].copy_from_slice(&f.0 .0);
        }
    }
    out
}

/// G2 points -> 128 bytes each, in parallel.
fn write_g2(dst: &mut [u8], src: &[G2Affine]) {
    dst[..src.len() * 128]
        .par_chunks_mut(128 * CONVERT_CHUNK)
        .zip(src.par_chunks(CONVERT_CHUNK))
        .for_each(|(d, s)| {
            for (o, p) in d.chunks_exact_mut(128).zip(s) {
                for (k, l) in g2_limbs(p).iter().enumerate() {
                    o[8 * k..8 * k + 8].copy_from_slice(&l.to_le_bytes());
                }
            }
        });
}

/// What the MSM host code needs to know about a group: the program, the sizes of its
/// device points, and the conversions to and from arkworks.
pub(crate) trait MsmGroup {
    type Affine: Sync;
    type Proj: CurveGroup;
    const GROUP: Group;
    /// Bytes per affine point on the device.
    const AFFINE_BYTES: usize;
    /// 64-bit limbs per XYZZ point on the device.
    const XYZZ_U64: usize;
    fn write_points(dst: &mut [u8], src: &[Self::Affine]);
    fn from_xyzz(flat: &[u64]) -> Result<Vec<Self::Proj>>;
}

pub(crate) struct G1;
pub(crate) struct G2;

impl MsmGroup for G1 {
    type Affine = G1Affine;
    type Proj = G1Projective;
    const GROUP: Group = Group::G1;
    const AFFINE_BYTES: usize = 64;
    const XYZZ_U64: usize = 16;
    fn write_points(dst: &mut [u8], src: &[G1Affine]) {
        write_g1(dst, src)
    }
    fn from_xyzz(flat: &[u64]) -> Result<Vec<G1Projective>> {
        let points = batch_from_xyzz::<ark_bn254::g1::Config>(flat, 4, fq_from_device)?;
        Ok(points.into_iter().map(|p| p.into_group()).collect())
    }
}

impl MsmGroup for G2 {
    type Affine = G2Affine;
    type Proj = G2Projective;
    const GROUP: Group = Group::G2;
    const AFFINE_BYTES: usize = 128;
    const XYZZ_U64: usize = 32;
    fn write_points(dst: &mut [u8], src: &[G2Affine]) {
        write_g2(dst, src)
    }
    fn from_xyzz(flat: &[u64]) -> Result<Vec<G2Projective>> {
        let points = batch_from_xyzz::<ark_bn254::g2::Config>(flat, 8, fq2_from_device)?;
        Ok(points.into_iter().map(|p| p.into_group()).collect())
    }
}

/// 16 limbs per point: x then y in Montgomery form; the identity is all zeros.
pub(crate) fn g1_limbs(p: &G1Affine) -> [u64; 8] {
    match p.xy() {
        None => [0; 8],
        Some((x, y)) => {
            let (a, b) = (x.0 .0, y.0 .0);
            [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
        }
    }
}

fn alloc(dev: &GpuDevice, slot: &mut Option<DeviceBuffer>, bytes: u64) -> Result<()> {
    let bytes = usize::try_from(bytes)
        .map_err(|_| GpuError::InvalidInput(format!("{bytes} bytes does not fit in usize")))?;
    dev.ensure_capacity(slot, bytes.max(4))
}

fn buf(slot: &Option<DeviceBuffer>) -> Result<&DeviceBuffer> {
    slot.as_ref()
        .ok_or_else(|| GpuError::Launch("scratch buffer missing".into()))
}

/// A program's constants on the device, uploaded into `slot` at its first use (once per
/// device).
fn upload_once<'a, T: crate::pod::Pod>(
    dev: &GpuDevice,
    q: &Queue<'_>,
    slot: &'a mut Option<DeviceBuffer>,
    consts: fn() -> Vec<T>,
) -> Result<&'a DeviceBuffer> {
    if slot.is_none() {
        let consts = consts();
        let mut d = dev.alloc(std::mem::size_of_val(consts.as_slice()))?;
        q.upload(&mut d, 0, &consts)?;
        *slot = Some(d);
    }
    buf(slot)
}

/// Elements per rayon task when converting between arkworks values and staging bytes.
const CONVERT_CHUNK: usize = 1 << 12;

/// Makes sure `slot` holds at least `bytes` bytes of host staging memory (pinned on CUDA;
/// pinning is slow, so it is kept and only ever grown).
fn ensure_staging(dev: &GpuDevice, slot: &mut Option<HostStaging>, bytes: usize) -> Result<()> {
    if slot.as_ref().is_none_or(|s| s.len() < bytes) {
        *slot = None;
        *slot = Some(dev.alloc_staging(bytes.max(64))?);
    }
    Ok(())
}

/// Fr values -> Montgomery limbs (little-endian bytes, 32 per element), in parallel.
fn write_fr(dst: &mut [u8], src: &[Fr]) {
    dst[..src.len() * 32]
        .par_chunks_mut(32 * CONVERT_CHUNK)
        .zip(src.par_chunks(CONVERT_CHUNK))
        .for_each(|(d, s)| {
            for (o, f) in d.chunks_exact_mut(32).zip(s) {
                for (k, l) in fr_limbs(f).iter().enumerate() {
                    o[8 * k..8 * k + 8].copy_from_slice(&l.to_le_bytes());
                }
            }
        });
}

/// G1 points -> 64 bytes each (x, y; the identity as zeros), in parallel.
fn write_g1(dst: &mut [u8], src: &[G1Affine]) {
    dst[..src.len() * 64]
        .par_chunks_mut(64 * CONVERT_CHUNK)
        .zip(src.par_chunks(CONVERT_CHUNK))
        .for_each(|(d, s)| {
            for (o, p) in d.chunks_exact_mut(64).zip(s) {
                for (k, l) in g1_limbs(p).iter().enumerate() {
                    o[8 * k..8 * k + 8].copy_from_slice(&l.to_le_bytes());
                }
            }
        });
}

/// Montgomery limbs from the device -> Fr values, checking each is reduced.
fn read_fr(src: &[u8], dst: &mut [Fr]) -> Result<()> {
    let len = dst.len() * 32;
    dst.par_chunks_mut(CONVERT_CHUNK)
        .zip(src[..len].par_chunks(32 * CONVERT_CHUNK))
        .try_for_each(|(d, s)| {
            for (v, b) in d.iter_mut().zip(s.chunks_exact(32)) {
                let mut l = [0u64; 4];
                for (k, w) in l.iter_mut().enumerate() {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&b[8 * k..8 * k + 8]);
                    *w = u64::from_le_bytes(a);
                }
                *v = fr_from_device(l)?;
            }
            Ok(())
        })
}

/// Per-stage timing of one call, on stderr, when `ZK_PROFILE=1` (each stage then waits for
/// the device, so totals are slightly higher than without profiling).
struct Profile {
    on: bool,
    what: String,
    last: Instant,
    stages: Vec<(&'static str, f64)>,
}

impl Profile {
    fn new(what: impl FnOnce() -> String) -> Self {
        static ON: OnceLock<bool> = OnceLock::new();
        let on = *ON.get_or_init(|| std::env::var("ZK_PROFILE").is_ok_and(|v| v == "1"));
        Self {
            on,
            what: if on { what() } else { String::new() },
            last: Instant::now(),
            stages: Vec::new(),
        }
    }
    fn mark(&mut self, q: &Queue<'_>, stage: &'static str) -> Result<()> {
        if self.on {
            q.synchronize()?;
            let now = Instant::now();
            self.stages
                .push((stage, (now - self.last).as_secs_f64() * 1e3));
            self.last = now;
        }
        Ok(())
    }
    fn report(&self) {
        if self.on {
            let total: f64 = self.stages.iter().map(|s| s.1).sum();
            let parts: Vec<String> = self
                .stages
                .iter()
                .map(|(n, ms)| format!("{n} {ms:.3}"))
                .collect();
            eprintln!(
                "zk profile {}: total {total:.3} ms: {}",
                self.what,
                parts.join(", ")
            );
        }
    }
}

/// Reusable device memory of one MSM (grown as needed, kept between calls).
#[derive(Default)]
struct MsmScratch {
    points: Option<DeviceBuffer>,
    scalars: Option<DeviceBuffer>,
    digits: Option<DeviceBuffer>,
    sorted: Option<DeviceBuffer>,
    sorted_bucket: Option<DeviceBuffer>,
    heads: Option<DeviceBuffer>,
    tails: Option<DeviceBuffer>,
    counts: Option<DeviceBuffer>,
    offsets: Option<DeviceBuffer>,
    cursor: Option<DeviceBuffer>,
    sums: Option<DeviceBuffer>,
    buckets: Option<DeviceBuffer>,
    host_points: Option<HostStaging>,
    host_scalars: Option<HostStaging>,
    segs: Option<DeviceBuffer>,
    parts: Option<DeviceBuffer>,
    wins: Option<DeviceBuffer>,
}

#[derive(Default)]
struct NttScratch {
    host: Option<HostStaging>,
    input: Option<DeviceBuffer>,
    output: Option<DeviceBuffer>,
    pre_lo: Option<DeviceBuffer>,
    pre_hi: Option<DeviceBuffer>,
    post_lo: Option<DeviceBuffer>,
    post_hi: Option<DeviceBuffer>,
}

/// G1 points resident on one device (the fixed bases of an MSM, e.g. a proving key).
pub struct DeviceG1Bases {
    pub(crate) buffer: DeviceBuffer,
    pub(crate) len: usize,
}

/// G2 points resident on one device (e.g. a proving key's B-query bases).
pub struct DeviceG2Bases {
    pub(crate) buffer: DeviceBuffer,
    pub(crate) len: usize,
}

/// The zk kernels on one device, with scratch memory and twiddle tables cached between calls.
pub(crate) struct GpuZk {
    dev: GpuDevice,
    ptx: bool,
    dummy: DeviceBuffer,
    twiddles: HashMap<(u32, bool), DeviceBuffer>,
    msm: MsmScratch,
    ntt: NttScratch,
    /// `pairing.cl`'s constants, uploaded at the first Miller loop.
    pairing_consts: Option<DeviceBuffer>,
    /// `decode.cl`'s constants, uploaded at the first decompression.
    decode_consts: Option<DeviceBuffer>,
    /// `scale.cl`'s constants, uploaded at the first scaling.
    scale_consts: Option<DeviceBuffer>,
}

/// Which optional pairing-side programs compiled (see [`GpuZk::prepare_pairing`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PairingPrograms {
    pub(crate) decode: bool,
    pub(crate) scale: bool,
}

impl GpuZk {
    pub(crate) fn new(dev: GpuDevice, ptx: bool) -> Result<Self> {
        if dev.info().max_group_size < mk::SCAN_GROUP {
            return Err(GpuError::Unavailable(format!(
                "the zk kernels need work-groups of {} threads; {} allows {}",
                mk::SCAN_GROUP,
                dev.info().name,
                dev.info().max_group_size
            )));
        }
        let mut dummy = dev.alloc(64)?;
        dev.queue(0).upload(&mut dummy, 0, &[0u64; 8])?;
        Ok(Self {
            dev,
            ptx,
            dummy,
            twiddles: HashMap::new(),
            msm: MsmScratch::default(),
            ntt: NttScratch::default(),
            pairing_consts: None,
            decode_consts: None,
            scale_consts: None,
        })
    }

    pub(crate) fn device(&self) -> &GpuDevice {
        &self.dev
    }

    fn msm_src(&self, group: Group) -> KernelSource {
        kernels::msm_source(group, self.ptx)
    }

    fn ntt_src(&self) -> KernelSource {
        kernels::ntt_source(self.ptx)
    }

    /// Compiles the programs (G1 MSM, G2 MSM, NTT) now, so that the first call is not
    /// slowed by compilation.
    pub(crate) fn prepare(&self) -> Result<()> {
        self.dev.prepare(&self.msm_src(Group::G1))?;
        self.dev.prepare(&self.msm_src(Group::G2))?;
        self.dev.prepare(&self.ntt_src())
    }

    /// Compiles the Miller-loop, point-decompression and G1-scaling programs now. The
    /// Miller loops must compile; the other two are optional (a failure is logged and
    /// reported as `false`: that work stays on the CPU).
    pub(crate) fn prepare_pairing(&self) -> Result<PairingPrograms> {
        self.dev.prepare(&kernels::pairing_source(self.ptx))?;
        let optional = |what: &str, src: KernelSource| match self.dev.prepare(&src) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("zk {what} kernel unavailable, running it on the CPU: {e}");
                false
            }
        };
        Ok(PairingPrograms {
            decode: optional("decompression", kernels::decode_source(self.ptx)),
            scale: optional("G1 scaling", kernels::scale_source(self.ptx)),
        })
    }

    /// `k1 * P + k2 * phi(P)` for each point `P` and weight `(k1, k2)` (`scale.cl`), made
    /// affine here (`batch_from_xyzz`: one batch inversion, every coordinate reduced and
    /// every point on the curve; G1 has cofactor 1, so on the curve is in G1); which point
    /// of the curve is the device's word, as the Miller product is.
    pub(crate) fn scale_g1(
        &mut self,
        points: &[G1Affine],
        ks: &[(u64, u64)],
    ) -> Result<Vec<G1Affine>> {
        super::cpu::check_weight_lengths(points.len(), ks.len())?;
        let n = points.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let n32 = u32::try_from(n)
            .map_err(|_| GpuError::InvalidInput(format!("{n} points in one call")))?;
        let dev = self.dev.clone();
        let q = dev.queue(0);
        let mut prof = Profile::new(|| format!("scale g1 n={n}"));
        let consts = upload_once(&dev, &q, &mut self.scale_consts, kernels::scale_constants)?;
        let flat: Vec<u64> = points.iter().flat_map(g1_limbs).collect();
        let weights: Vec<u64> = ks.iter().flat_map(|&(k1, k2)| [k1, k2]).collect();
        let mut d_p = dev.alloc(flat.len() * 8)?;
        q.upload(&mut d_p, 0, &flat)?;
        let mut d_k = dev.alloc(weights.len() * 8)?;
        q.upload(&mut d_k, 0, &weights)?;
        let d_out = dev.alloc(n * 16 * 8)?;
        use KernelArg::{Buffer as B, U32};
        q.launch_dims(
            &kernels::scale_source(self.ptx),
            sk::G1_SCALE,
            LaunchDims::with_group(n as u64, sk::GROUP),
            &[B(&d_p), B(&d_k), B(consts), B(&d_out), U32(n32)],
        )?;
        let mut out = vec![0u64; n * 16];
        q.download(&d_out, 0, &mut out)?;
        prof.mark(&q, "scale")?;
        prof.report();
        batch_from_xyzz::<ark_bn254::g1::Config>(&out, 4, fq_from_device)
    }

    /// Square roots for compressed points (`decode.cl`): for each G1 `x` a `y` with `y^2 =
    /// x^3 + 3` or `None`, for each G2 `x` a `y` on the twist and whether `(x, y)` is in G2,
    /// or `None`. The device's answers are unchecked here (see
    /// `ZkExecutor::gpu_decompress`), except that every element must be reduced.
    pub(crate) fn decompress(&mut self, g1_x: &[Fq], g2_x: &[Fq2]) -> Result<super::Decompressed> {
        if g1_x.is_empty() && g2_x.is_empty() {
            return Ok(super::Decompressed::default());
        }
        let dev = self.dev.clone();
        let q = dev.queue(0);
        let mut prof = Profile::new(|| format!("decompress g1={} g2={}", g1_x.len(), g2_x.len()));
        let consts = upload_once(&dev, &q, &mut self.decode_consts, kernels::decode_constants)?;
        let src = kernels::decode_source(self.ptx);
        // One group's kernel over `xs` (`limbs` u64 per coordinate): its roots and flags.
        let roots = |kernel: &str, xs: Vec<u64>, limbs: usize| -> Result<(Vec<u64>, Vec<u32>)> {
            let n = xs.len() / limbs;
            if n == 0 {
                return Ok((Vec::new(), Vec::new()));
            }
            let n32 = u32::try_from(n)
                .map_err(|_| GpuError::InvalidInput(format!("{n} points in one call")))?;
            let mut d_x = dev.alloc(xs.len() * 8)?;
            q.upload(&mut d_x, 0, &xs)?;
            let d_y = dev.alloc(xs.len() * 8)?;
            let d_f = dev.alloc(n * 4)?;
            use KernelArg::{Buffer as B, U32};
            q.launch_dims(
                &src,
                kernel,
                LaunchDims::with_group(n as u64, dk::GROUP),
                &[B(&d_x), B(consts), B(&d_y), B(&d_f), U32(n32)],
            )?;
            let (mut y, mut f) = (vec![0u64; xs.len()], vec![0u32; n]);
            q.download(&d_y, 0, &mut y)?;
            q.download(&d_f, 0, &mut f)?;
            Ok((y, f))
        };
        let (y2, f2) = roots(
            dk::G2_ROOTS,
            g2_x.iter()
                .flat_map(|x| [x.c0.0 .0, x.c1.0 .0])
                .flatten()
                .collect(),
            8,
        )?;
        let (y1, f1) = roots(dk::G1_ROOTS, g1_x.iter().flat_map(|x| x.0 .0).collect(), 4)?;
        prof.mark(&q, "decompress")?;
        prof.report();
        let out_of_range =
            |f: u32| GpuError::Launch(format!("decompression flag {f} out of range"));
        let g1 = y1
            .chunks_exact(4)
            .zip(&f1)
            .map(|(y, &f)| match f {
                0 => Ok(None),
                1 => fq_from_device(y).map(Some),
                _ => Err(out_of_range(f)),
            })
            .collect::<Result<_>>()?;
        let g2 = y2
            .chunks_exact(8)
            .zip(&f2)
            .map(|(y, &f)| match f {
                0 => Ok(None),
                1 | 3 => fq2_from_device(y).map(|y| {
                    Some(super::G2Root {
                        y,
                        in_subgroup: f == 3,
                    })
                }),
                _ => Err(out_of_range(f)),
            })
            .collect::<Result<_>>()?;
        Ok(super::Decompressed { g1, g2 })
    }

    /// `out[i]` = the Miller loop of `(g1[i], g2[i])`, both affine and not the identity
    /// (the caller filters those), one pair per device thread. The result is checked to be
    /// made of reduced field elements.
    pub(crate) fn miller_loops(&mut self, g1: &[G1Affine], g2: &[G2Affine]) -> Result<Vec<Fq12>> {
        super::cpu::check_pair_lengths(g1.len(), g2.len())?;
        let n = g1.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let n32 = u32::try_from(n)
            .map_err(|_| GpuError::InvalidInput(format!("{n} pairs in one call")))?;
        let dev = self.dev.clone();
        let q = dev.queue(0);
        let mut prof = Profile::new(|| format!("miller loops n={n}"));
        let (d_g1, d_g2) = upload_pairs(&dev, &q, g1, g2)?;
        let d_consts = upload_once(
            &dev,
            &q,
            &mut self.pairing_consts,
            kernels::pairing_constants,
        )?;
        let d_out = dev.alloc(n * 96 * 4)?;
        prof.mark(&q, "upload")?;
        use KernelArg::{Buffer as B, U32};
        q.launch_dims(
            &kernels::pairing_source(self.ptx),
            pk::MILLER_LOOP,
            LaunchDims::with_group(n as u64, pk::GROUP),
            &[B(&d_g1), B(&d_g2), B(d_consts), B(&d_out), U32(n32)],
        )?;
        prof.mark(&q, "kernel")?;
        let mut flat = vec![0u64; n * 48];
        q.download(&d_out, 0, &mut flat)?;
        prof.mark(&q, "download")?;
        let out = flat.chunks_exact(48).map(fq12_from_device).collect();
        prof.report();
        out
    }

    /// The product of the Miller loops of the pairs `(g1[i], g2[i])` (affine, not the
    /// identity), exactly `Bn254::multi_miller_loop`, with `segs` device threads per pair
    /// (see `pairing.cl`): the lines of every pair, then `segs` consecutive ranges of each
    /// loop's iterations in parallel, then the products over the pairs by halving, all on
    /// the device; the host joins the `segs` products with the squarings between them. With
    /// `segs` = 1, one thread runs each pair's whole loop (`zk_miller_loop`) and the device
    /// multiplies those. Every downloaded element is checked to be reduced.
    pub(crate) fn miller_product(
        &mut self,
        g1: &[G1Affine],
        g2: &[G2Affine],
        segs: u32,
    ) -> Result<Fq12> {
        super::cpu::check_pair_lengths(g1.len(), g2.len())?;
        let n = g1.len();
        if n == 0 {
            return Ok(Fq12::ONE);
        }
        let (iters, line_count) = kernels::miller_shape();
        let segs = segs.clamp(1, iters);
        let n32 = u32::try_from(n)
            .ok()
            .filter(|&n| u64::from(n) * u64::from(segs) <= u64::from(u32::MAX))
            .ok_or_else(|| GpuError::InvalidInput(format!("{n} pairs in one call")))?;
        let dev = self.dev.clone();
        let q = dev.queue(0);
        let mut prof = Profile::new(|| format!("miller product n={n} segs={segs}"));
        let (d_g1, d_g2) = upload_pairs(&dev, &q, g1, g2)?;
        let d_consts = upload_once(
            &dev,
            &q,
            &mut self.pairing_consts,
            kernels::pairing_constants,
        )?;
        prof.mark(&q, "upload")?;
        use KernelArg::{Buffer as B, U32};
        let src = kernels::pairing_source(self.ptx);
        let rows = n * segs as usize;
        let mut cur = dev.alloc(rows * pk::FQ12_LIMBS * 4)?;
        if segs == 1 {
            q.launch_dims(
                &src,
                pk::MILLER_LOOP,
                LaunchDims::with_group(n as u64, pk::GROUP),
                &[B(&d_g1), B(&d_g2), B(d_consts), B(&cur), U32(n32)],
            )?;
        } else {
            let lines = dev.alloc(n * line_count * pk::LINE_LIMBS * 4)?;
            q.launch_dims(
                &src,
                pk::MILLER_LINES,
                LaunchDims::with_group(n as u64, pk::GROUP),
                &[B(&d_g2), B(d_consts), B(&lines), U32(n32)],
            )?;
            prof.mark(&q, "lines")?;
            q.launch_dims(
                &src,
                pk::MILLER_SEGMENTS,
                LaunchDims::with_group(rows as u64, pk::GROUP),
                &[B(&d_g1), B(&lines), B(&cur), U32(n32), U32(segs)],
            )?;
        }
        prof.mark(&q, "loops")?;
        // Halve each segment's row of n values down to one.
        let mut m = n32;
        if m > 1 {
            let mut next = dev.alloc(segs as usize * n.div_ceil(2) * pk::FQ12_LIMBS * 4)?;
            while m > 1 {
                let h = m.div_ceil(2);
                q.launch_dims(
                    &src,
                    pk::FQ12_MUL_PAIRS,
                    LaunchDims::with_group(u64::from(h) * u64::from(segs), pk::GROUP),
                    &[B(&cur), B(&next), U32(m), U32(segs)],
                )?;
                std::mem::swap(&mut cur, &mut next);
                m = h;
            }
        }
        prof.mark(&q, "products")?;
        let mut flat = vec![0u64; segs as usize * pk::FQ12_LIMBS / 2];
        q.download(&cur, 0, &mut flat)?;
        prof.mark(&q, "download")?;
        let seg_products: Vec<Fq12> = flat
            .chunks_exact(pk::FQ12_LIMBS / 2)
            .map(fq12_from_device)
            .collect::<Result<_>>()?;
        prof.report();
        // Segment s's iterations are squared by every later iteration (Horner).
        let mut acc = Fq12::ONE;
        for (s, g) in (0..segs).zip(&seg_products) {
            let len = (s + 1) * iters / segs - s * iters / segs;
            if s > 0 {
                for _ in 0..len {
                    acc.square_in_place();
                }
            }
            acc *= g;
        }
        Ok(acc)
    }

    /// Copies G1 points to the device.
    pub(crate) fn upload_g1(&mut self, bases: &[G1Affine]) -> Result<DeviceG1Bases> {
        Ok(DeviceG1Bases {
            buffer: self.upload_points::<G1>(bases)?,
            len: bases.len(),
        })
    }

    /// Copies G2 points to the device.
    pub(crate) fn upload_g2(&mut self, bases: &[G2Affine]) -> Result<DeviceG2Bases> {
        Ok(DeviceG2Bases {
            buffer: self.upload_points::<G2>(bases)?,
            len: bases.len(),
        })
    }

    fn upload_points<C: MsmGroup>(&mut self, bases: &[C::Affine]) -> Result<DeviceBuffer> {
        let bytes = bases.len() * C::AFFINE_BYTES;
        let mut buffer = self.dev.alloc(bytes.max(64))?;
        let mut staging = self.msm.host_points.take();
        let r = (|| {
            ensure_staging(&self.dev, &mut staging, bytes)?;
            let st = staging.as_mut().ok_or_else(missing)?;
            C::write_points(st.as_mut_slice()?, bases);
            let q = self.dev.queue(0);
            q.upload_staged(&mut buffer, 0, st, 0..bytes)?;
            q.synchronize()
        })();
        self.msm.host_points = staging;
        r?;
        Ok(buffer)
    }

    /// G1 MSM with the points uploaded for this call only.
    pub(crate) fn msm_g1(
        &mut self,
        bases: &[G1Affine],
        scalars: &[Fr],
        window_bits: Option<u32>,
    ) -> Result<G1Projective> {
        self.msm_host::<G1>(bases, scalars, window_bits)
    }

    /// G2 MSM with the points uploaded for this call only.
    pub(crate) fn msm_g2(
        &mut self,
        bases: &[G2Affine],
        scalars: &[Fr],
        window_bits: Option<u32>,
    ) -> Result<G2Projective> {
        self.msm_host::<G2>(bases, scalars, window_bits)
    }

    fn msm_host<C: MsmGroup>(
        &mut self,
        bases: &[C::Affine],
        scalars: &[Fr],
        window_bits: Option<u32>,
    ) -> Result<C::Proj> {
        if bases.len() != scalars.len() {
            return Err(GpuError::InvalidInput(format!(
                "MSM needs as many scalars as points ({} points, {} scalars)",
                bases.len(),
                scalars.len()
            )));
        }
        if bases.is_empty() {
            return Ok(C::Proj::zero());
        }
        let bytes = bases.len() * C::AFFINE_BYTES;
        // The points buffers are taken out of the scratch so they can be borrowed next to
        // `&mut self`, and put back whatever happens.
        let mut points = self.msm.points.take();
        let mut staging = self.msm.host_points.take();
        let r = (|| {
            alloc(&self.dev, &mut points, bytes as u64)?;
            ensure_staging(&self.dev, &mut staging, bytes)?;
            let st = staging.as_mut().ok_or_else(missing)?;
            C::write_points(st.as_mut_slice()?, bases);
            let pb = points.as_mut().ok_or_else(missing)?;
            self.dev.queue(0).upload_staged(pb, 0, st, 0..bytes)?;
            self.msm_on::<C>(points.as_ref().ok_or_else(missing)?, scalars, window_bits)
        })();
        self.msm.points = points;
        self.msm.host_points = staging;
        r
    }

    /// MSM over points already on the device.
    pub(crate) fn msm_g1_resident(
        &mut self,
        bases: &DeviceG1Bases,
        scalars: &[Fr],
        window_bits: Option<u32>,
    ) -> Result<G1Projective> {
        super::cpu::check_msm_lengths(bases.len, scalars.len())?;
        self.msm_on::<G1>(&bases.buffer, scalars, window_bits)
    }

    /// G2 MSM over points already on the device.
    pub(crate) fn msm_g2_resident(
        &mut self,
        bases: &DeviceG2Bases,
        scalars: &[Fr],
        window_bits: Option<u32>,
    ) -> Result<G2Projective> {
        super::cpu::check_msm_lengths(bases.len, scalars.len())?;
        self.msm_on::<G2>(&bases.buffer, scalars, window_bits)
    }

    /// The MSM pipeline over `scalars.len()` points of group `C` already on the device.
    fn msm_on<C: MsmGroup>(
        &mut self,
        points: &DeviceBuffer,
        scalars: &[Fr],
        window_bits: Option<u32>,
    ) -> Result<C::Proj> {
        let n = scalars.len();
        if n == 0 {
            return Ok(C::Proj::zero());
        }
        let n32 = u32::try_from(n)
            .ok()
            .filter(|&v| v < (1 << 31))
            .ok_or_else(|| GpuError::InvalidInput(format!("MSM of {n} points is too large")))?;
        let c = window_bits.unwrap_or_else(|| msm_window_bits(n));
        if !(2..=24).contains(&c) {
            return Err(GpuError::Config(format!(
                "MSM window of {c} bits outside 2..=24"
            )));
        }
        let windows = msm_windows(c);
        let half = 1u64 << (c - 1);
        let m = u64::from(windows) * half;
        let m32 = u32::try_from(m)
            .map_err(|_| GpuError::Config(format!("{m} MSM buckets is too many")))?;
        let digits_len = n as u64 * u64::from(windows);
        if digits_len > u64::from(u32::MAX) {
            return Err(GpuError::Config(format!(
                "MSM of {n} points with {windows} windows exceeds 2^32 bucket entries"
            )));
        }
        let groups = m.div_ceil(mk::SCAN_CHUNK);
        if groups > u64::from(mk::SCAN_GROUP) * 4096 {
            return Err(GpuError::Config("too many MSM buckets for the scan".into()));
        }
        // Entries per accumulation thread: about 128 K threads in all, 8..=256 entries each.
        let chunk = (digits_len / (1 << 17)).clamp(8, 256);
        let chunks = digits_len.div_ceil(chunk);
        // Bucket reduction: segments of `seg_len` buckets, one thread each (~128 K threads in
        // all); then threads of `per` segments, work-groups of BLOCK_GROUP threads (`gpw` per
        // window); then one work-group per window adds its `gpw` partial sums.
        let seg_len = (m >> 17).next_power_of_two().clamp(1, half);
        let segs = half / seg_len;
        let per = segs.min(4);
        let gpw = (segs / per).div_ceil(u64::from(mk::BLOCK_GROUP));

        let dev = self.dev.clone();
        let s = &mut self.msm;
        alloc(&dev, &mut s.scalars, n as u64 * 32)?;
        alloc(&dev, &mut s.digits, digits_len * 4)?;
        alloc(&dev, &mut s.sorted, digits_len * 4)?;
        alloc(&dev, &mut s.sorted_bucket, digits_len * 4)?;
        // bytes per XYZZ point on the device
        let xb = C::XYZZ_U64 as u64 * 8;
        alloc(&dev, &mut s.heads, chunks * xb)?;
        alloc(&dev, &mut s.tails, chunks * xb)?;
        alloc(&dev, &mut s.counts, m * 4)?;
        alloc(&dev, &mut s.offsets, m * 4)?;
        alloc(&dev, &mut s.cursor, m * 4)?;
        alloc(&dev, &mut s.sums, groups * 4)?;
        alloc(&dev, &mut s.buckets, m * xb)?;
        alloc(&dev, &mut s.segs, u64::from(windows) * segs * 2 * xb)?;
        alloc(&dev, &mut s.parts, u64::from(windows) * gpw * xb)?;
        alloc(&dev, &mut s.wins, u64::from(windows) * xb)?;

        let q = dev.queue(0);
        let mut prof = Profile::new(|| {
            format!(
                "msm {:?} n={n} c={c} windows={windows} chunk={chunk}",
                C::GROUP
            )
        });
        prof.mark(&q, "setup")?;
        let src = kernels::msm_source(C::GROUP, self.ptx);
        use KernelArg::{Buffer as B, U32, U64};
        q.launch(&src, mk::FILL_U32, m, &[B(buf(&s.counts)?), U32(0), U64(m)])?;
        // Scalars: one conversion into pinned memory and one upload. (Converting and
        // uploading in pieces, overlapped, measured slower on the H200 host: the host memory
        // bandwidth is the limit, and the copy engine competes with the conversion for it.)
        ensure_staging(&dev, &mut s.host_scalars, n * 32)?;
        let st = s.host_scalars.as_mut().ok_or_else(missing)?;
        write_fr(st.as_mut_slice()?, scalars);
        prof.mark(&q, "convert")?;
        q.upload_staged(s.scalars.as_mut().ok_or_else(missing)?, 0, st, 0..n * 32)?;
        prof.mark(&q, "upload")?;
        q.launch(
            &src,
            mk::DIGITS,
            n as u64,
            &[
                B(buf(&s.scalars)?),
                B(buf(&s.digits)?),
                B(buf(&s.counts)?),
                U32(n32),
                U32(c),
                U32(windows),
                U32(0),
                U32(n32),
            ],
        )?;
        prof.mark(&q, "digits")?;
        let (digits, sorted) = (buf(&s.digits)?, buf(&s.sorted)?);
        let (counts, offsets, cursor) = (buf(&s.counts)?, buf(&s.offsets)?, buf(&s.cursor)?);
        let (sums, buckets) = (buf(&s.sums)?, buf(&s.buckets)?);
        let sorted_bucket = buf(&s.sorted_bucket)?;
        let (heads, tails) = (buf(&s.heads)?, buf(&s.tails)?);
        let (segbuf, wins, parts) = (buf(&s.segs)?, buf(&s.wins)?, buf(&s.parts)?);

        let sg = mk::SCAN_GROUP;
        q.launch_dims(
            &src,
            mk::SCAN_GROUPS,
            LaunchDims::with_group(groups * u64::from(sg), sg),
            &[B(counts), B(offsets), B(sums), U32(m32)],
        )?;
        q.launch_dims(
            &src,
            mk::SCAN_SUMS,
            LaunchDims::with_group(u64::from(sg), sg),
            &[B(sums), U32(groups as u32)],
        )?;
        q.launch(
            &src,
            mk::SCAN_ADD,
            m,
            &[B(offsets), B(cursor), B(sums), U32(m32)],
        )?;
        prof.mark(&q, "scan")?;
        q.launch(
            &src,
            mk::SCATTER,
            digits_len,
            &[
                B(digits),
                B(cursor),
                B(sorted),
                B(sorted_bucket),
                U32(n32),
                U32(c),
                U32(windows),
            ],
        )?;
        prof.mark(&q, "scatter")?;
        // empty buckets must read as the identity (ZZ = 0)
        let bucket_words = m * xb / 4;
        q.launch(
            &src,
            mk::FILL_U32,
            bucket_words,
            &[B(buckets), U32(0), U64(bucket_words)],
        )?;
        let (chunk32, chunks32) = (chunk as u32, chunks as u32);
        q.launch_dims(
            &src,
            mk::ACCUMULATE,
            LaunchDims::with_group(chunks, 128),
            &[
                B(points),
                B(sorted),
                B(sorted_bucket),
                B(offsets),
                B(cursor),
                B(buckets),
                B(heads),
                B(tails),
                U32(m32),
                U32(chunk32),
                U32(chunks32),
            ],
        )?;
        prof.mark(&q, "accumulate")?;
        q.launch_dims(
            &src,
            mk::JOIN_HEADS,
            LaunchDims::with_group(chunks, 128),
            &[
                B(sorted_bucket),
                B(offsets),
                B(cursor),
                B(heads),
                U32(m32),
                U32(chunk32),
                U32(chunks32),
            ],
        )?;
        q.launch_dims(
            &src,
            mk::ACCUMULATE_JOIN,
            LaunchDims::with_group(chunks, 128),
            &[
                B(sorted_bucket),
                B(offsets),
                B(cursor),
                B(buckets),
                B(heads),
                B(tails),
                U32(m32),
                U32(chunk32),
                U32(chunks32),
            ],
        )?;
        prof.mark(&q, "join")?;
        q.launch_dims(
            &src,
            mk::REDUCE_SEGMENTS,
            LaunchDims::with_group(u64::from(windows) * segs, 64),
            &[
                B(buckets),
                B(segbuf),
                U32(half as u32),
                U32(windows),
                U32(segs as u32),
            ],
        )?;
        prof.mark(&q, "reduce-segments")?;
        let bg = mk::BLOCK_GROUP;
        q.launch_dims(
            &src,
            mk::REDUCE_BLOCKS,
            LaunchDims::with_group(u64::from(windows) * gpw * u64::from(bg), bg),
            &[
                B(segbuf),
                B(parts),
                U32(segs as u32),
                U32(per as u32),
                U32(seg_len.trailing_zeros()),
                U32(gpw as u32),
            ],
        )?;
        prof.mark(&q, "reduce-blocks")?;
        let rg = mk::REDUCE_GROUP;
        q.launch_dims(
            &src,
            mk::REDUCE_WINDOWS,
            LaunchDims::with_group(u64::from(windows) * u64::from(rg), rg),
            &[B(parts), B(wins), U32(gpw as u32)],
        )?;
        prof.mark(&q, "reduce-windows")?;
        let mut out = vec![0u64; windows as usize * C::XYZZ_U64];
        q.download(wins, 0, &mut out)?;
        prof.mark(&q, "download")?;

        // Horner over the window sums: sum_w 2^(c w) S_w.
        let window_sums = C::from_xyzz(&out)?;
        let mut acc = C::Proj::zero();
        for sum in window_sums.iter().rev() {
            for _ in 0..c {
                acc.double_in_place();
            }
            acc += sum;
        }
        prof.mark(&q, "horner")?;
        prof.report();
        Ok(acc)
    }

    /// The twiddle table w^e, e < n/2, for 2^log_n points (w^-1 for the inverse), built on the
    /// device from two small tables and cached.
    fn twiddles(&mut self, log_n: u32, inverse: bool, w: Fr) -> Result<()> {
        if self.twiddles.contains_key(&(log_n, inverse)) {
            return Ok(());
        }
        // keep at most a few tables: drop the others of a different size
        if self.twiddles.len() >= 4 {
            self.twiddles.clear();
        }
        let count = 1u64 << (log_n - 1);
        let (lo, hi, bits) = split_powers(w, log_n - 1);
        let q = self.dev.queue(0);
        let mut lob = self.dev.alloc(lo.len() * 32)?;
        let mut hib = self.dev.alloc(hi.len() * 32)?;
        q.upload(&mut lob, 0, &lo)?;
        q.upload(&mut hib, 0, &hi)?;
        let tw = self.dev.alloc(count as usize * 32)?;
        q.launch(
            &self.ntt_src(),
            nk::TWIDDLES,
            count,
            &[
                KernelArg::Buffer(&tw),
                KernelArg::Buffer(&lob),
                KernelArg::Buffer(&hib),
                KernelArg::U32(bits),
                KernelArg::U32(count as u32),
            ],
        )?;
        // the small tables must outlive the kernel
        q.synchronize()?;
        self.twiddles.insert((log_n, inverse), tw);
        Ok(())
    }

    /// In-place NTT of host data.
    pub(crate) fn ntt(
        &mut self,
        values: &mut [Fr],
        direction: NttDirection,
        coset: Option<Fr>,
    ) -> Result<()> {
        let log_n = super::cpu::ntt_log_size(values.len())?;
        if log_n == 0 {
            // one point: the transform is the identity (a constant polynomial)
            return Ok(());
        }
        let n = values.len() as u64;
        let bytes = values.len() * 32;
        let dev = self.dev.clone();
        let q = dev.queue(0);
        let mut prof =
            Profile::new(|| format!("ntt 2^{log_n} {direction:?} coset {}", coset.is_some()));
        let mut input = self.ntt.input.take();
        let mut output = self.ntt.output.take();
        let mut staging = self.ntt.host.take();
        let r = (|| {
            alloc(&dev, &mut input, n * 32)?;
            alloc(&dev, &mut output, n * 32)?;
            ensure_staging(&dev, &mut staging, bytes)?;
            let st = staging.as_mut().ok_or_else(missing)?;
            prof.mark(&q, "setup")?;
            write_fr(st.as_mut_slice()?, values);
            prof.mark(&q, "convert")?;
            let ib = input.as_mut().ok_or_else(missing)?;
            q.upload_staged(ib, 0, st, 0..bytes)?;
            prof.mark(&q, "upload")?;
            let ob = output.as_mut().ok_or_else(missing)?;
            self.ntt_resident(
                input.as_ref().ok_or_else(missing)?,
                ob,
                log_n,
                direction,
                coset,
            )?;
            prof.mark(&q, "kernels")?;
            q.download_staged(ob, 0, st, 0..bytes)?;
            let host = st.as_slice()?;
            prof.mark(&q, "download")?;
            read_fr(host, values)?;
            prof.mark(&q, "convert-back")?;
            Ok(())
        })();
        self.ntt.input = input;
        self.ntt.output = output;
        self.ntt.host = staging;
        prof.report();
        r
    }

    /// NTT of 2^log_n elements (Montgomery limbs) from `input` into `output`, both on the
    /// device; `input` is left unchanged.
    pub(crate) fn ntt_resident(
        &mut self,
        input: &DeviceBuffer,
        output: &mut DeviceBuffer,
        log_n: u32,
        direction: NttDirection,
        coset: Option<Fr>,
    ) -> Result<()> {
        let n = 1u64 << log_n;
        if input.len() < (n * 32) as usize || output.len() < (n * 32) as usize {
            return Err(GpuError::InvalidInput("NTT buffers too small".into()));
        }
        if log_n == 0 {
            return Err(GpuError::InvalidInput(
                "device NTT needs at least 2 points".into(),
            ));
        }
        let domain = super::cpu::domain(n as usize, None)?;
        let inverse = direction == NttDirection::Inverse;
        let w = if inverse {
            domain.group_gen_inv
        } else {
            domain.group_gen
        };
        self.twiddles(log_n, inverse, w)?;
        if coset.is_some_and(|g| g.is_zero()) {
            return Err(GpuError::InvalidInput(
                "coset offset must be non-zero".into(),
            ));
        }

        // Scale tables: pre (forward coset) g^i; post (inverse) n^-1 or n^-1 g^-i.
        let dev = self.dev.clone();
        let q = dev.queue(0);
        let (mut pre_mode, mut pre_bits, mut post_mode, mut post_bits) = (0u32, 0u32, 0u32, 0u32);
        match (direction, coset) {
            (NttDirection::Forward, None) => {}
            (NttDirection::Forward, Some(g)) => {
                let (lo, hi, bits) = split_powers(g, log_n);
                upload_table(&dev, &mut self.ntt.pre_lo, &lo)?;
                upload_table(&dev, &mut self.ntt.pre_hi, &hi)?;
                pre_mode = 2;
                pre_bits = bits;
            }
            (NttDirection::Inverse, None) => {
                upload_table(&dev, &mut self.ntt.post_lo, &[fr_limbs(&domain.size_inv)])?;
                post_mode = 1;
            }
            (NttDirection::Inverse, Some(g)) => {
                let g_inv = g
                    .inverse()
                    .ok_or_else(|| GpuError::InvalidInput("coset offset is zero".into()))?;
                let (mut lo, hi, bits) = split_powers(g_inv, log_n);
                for l in lo.iter_mut() {
                    *l = fr_limbs(&(Fr::new_unchecked(BigInt(*l)) * domain.size_inv));
                }
                upload_table(&dev, &mut self.ntt.post_lo, &lo)?;
                upload_table(&dev, &mut self.ntt.post_hi, &hi)?;
                post_mode = 2;
                post_bits = bits;
            }
        }
        let dummy = &self.dummy;
        fn pick<'a>(
            b: &'a Option<DeviceBuffer>,
            mode: u32,
            dummy: &'a DeviceBuffer,
        ) -> &'a DeviceBuffer {
            match (mode, b) {
                (0, _) | (_, None) => dummy,
                (_, Some(b)) => b,
            }
        }
        let pre_lo = pick(&self.ntt.pre_lo, pre_mode, dummy);
        let pre_hi = pick(&self.ntt.pre_hi, if pre_mode == 2 { 2 } else { 0 }, dummy);
        let post_lo = pick(&self.ntt.post_lo, post_mode, dummy);
        let post_hi = pick(&self.ntt.post_hi, if post_mode == 2 { 2 } else { 0 }, dummy);
        let tw = self
            .twiddles
            .get(&(log_n, inverse))
            .ok_or_else(|| GpuError::Launch("twiddle table missing".into()))?;

        let tiles = ntt_passes(log_n);
        let passes = tiles.len() as u32;
        let src = kernels::ntt_source(self.ptx);
        let max_group = dev.info().max_group_size.min(256);
        let mut s0 = 0u32;
        for (p, &t) in (0u32..).zip(tiles.iter()) {
            let first = p == 0;
            let last = p + 1 == passes;
            // one work item per four elements (two stages per step in the kernel)
            let group = (1u32 << t.saturating_sub(2)).clamp(1, max_group);
            let dims = LaunchDims::with_group((n >> t) * u64::from(group), group);
            use KernelArg::{Buffer as B, U32};
            let from: &DeviceBuffer = if first { input } else { &*output };
            // the first pass reads `input` and writes `output`; later passes work in place
            // (each work-group reads and writes only its own tile).
            let args = [
                B(from),
                B(&*output),
                B(tw),
                U32(log_n),
                U32(s0),
                U32(t),
                U32(u32::from(first)),
                U32(if first { pre_mode } else { 0 }),
                B(pre_lo),
                B(pre_hi),
                U32(pre_bits),
                U32(if last { post_mode } else { 0 }),
                B(post_lo),
                B(post_hi),
                U32(post_bits),
            ];
            q.launch_dims(&src, nk::PASS, dims, &args)?;
            s0 += t;
        }
        q.synchronize()
    }
}

/// Stages per NTT pass: at most TILE_LOG each, as even as possible, and an even number in
/// every pass but one when log_n is odd (the kernel does stages two at a time).
fn ntt_passes(log_n: u32) -> Vec<u32> {
    let passes = log_n.div_ceil(nk::TILE_LOG).max(1);
    let (pairs, odd) = (log_n / 2, log_n % 2);
    let mut t: Vec<u32> = (0..passes)
        .map(|p| 2 * (pairs / passes + u32::from(p < pairs % passes)))
        .collect();
    if odd == 1 {
        if let Some(min) = t.iter_mut().min_by_key(|v| **v) {
            *min += 1;
        }
    }
    t
}

fn missing() -> GpuError {
    GpuError::Launch("scratch buffer missing".into())
}

fn upload_table(dev: &GpuDevice, slot: &mut Option<DeviceBuffer>, t: &[[u64; 4]]) -> Result<()> {
    alloc(dev, slot, t.len() as u64 * 32)?;
    dev.queue(0)
        .upload(slot.as_mut().ok_or_else(missing)?, 0, t)?;
    // the host table is dropped after this call: wait for the copy
    dev.queue(0).synchronize()
}

/// Tables for x^i, i < 2^log_count: lo[j] = x^j (j < 2^bits), hi[h] = x^(h 2^bits), with
/// bits = ceil(log_count / 2), so x^i = lo[i mod 2^bits] * hi[i >> bits].
fn split_powers(x: Fr, log_count: u32) -> (Vec<[u64; 4]>, Vec<[u64; 4]>, u32) {
    let bits = log_count.div_ceil(2);
    let hi_len = 1usize << (log_count - bits);
    let mut lo = Vec::with_capacity(1 << bits);
    let mut cur = Fr::ONE;
    for _ in 0..(1usize << bits) {
        lo.push(fr_limbs(&cur));
        cur *= x;
    }
    // cur = x^(2^bits)
    let step = cur;
    let mut hi = Vec::with_capacity(hi_len);
    let mut cur = Fr::ONE;
    for _ in 0..hi_len {
        hi.push(fr_limbs(&cur));
        cur *= step;
    }
    (lo, hi, bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::PrimeGroup;

    #[test]
    fn window_choice_is_sane() {
        assert_eq!(msm_windows(16), 16);
        assert!(msm_window_bits(1) <= 4);
        let c20 = msm_window_bits(1 << 20);
        assert!((14..=17).contains(&c20), "{c20}");
        assert!(msm_window_bits(1 << 24) <= MAX_WINDOW_BITS);
        // signed recoding never overflows the top window for any c
        for c in 2..=24 {
            let top_bits = SCALAR_BITS - (msm_windows(c) - 1) * c;
            assert!(top_bits < c, "c = {c}");
        }
    }

    #[test]
    fn ntt_passes_cover_all_stages() {
        for log_n in 1..=28u32 {
            let t = ntt_passes(log_n);
            assert_eq!(t.iter().sum::<u32>(), log_n, "{log_n}");
            assert_eq!(t.len() as u32, log_n.div_ceil(nk::TILE_LOG), "{log_n}");
            assert!(
                t.iter().all(|&v| (1..=nk::TILE_LOG).contains(&v)),
                "{log_n}: {t:?}"
            );
            assert!(
                t.iter().filter(|&&v| v % 2 == 1).count() <= 1,
                "{log_n}: {t:?}"
            );
        }
        assert_eq!(ntt_passes(22), vec![8, 8, 6]);
        assert_eq!(ntt_passes(24), vec![8, 8, 8]);
    }

    #[test]
    fn split_powers_reconstructs() {
        let x = Fr::from(7u64);
        let (lo, hi, bits) = split_powers(x, 5);
        for i in 0..32u64 {
            let v = Fr::new_unchecked(BigInt(lo[(i & ((1 << bits) - 1)) as usize]))
                * Fr::new_unchecked(BigInt(hi[(i >> bits) as usize]));
            assert_eq!(v, x.pow([i]));
        }
    }

    /// Wide windows (several buckets per reduction segment, several work-groups per window
    /// in the block step) and a heavy bucket spread over many chunks, on every backend
    /// present; the integration tests in tests/zk.rs use narrower windows.
    #[test]
    fn wide_windows_match_arkworks() {
        use crate::{list_devices, open_device, BackendKind};
        use ark_ec::CurveGroup;
        let n = 200;
        let bases = super::super::bench::random_g1_bases(n, 5);
        let mut scalars = super::super::bench::random_scalars(n, 6);
        // a heavy bucket: many equal scalars
        for s in scalars.iter_mut().take(120) {
            *s = Fr::from(12_345u64);
        }
        let want = super::super::cpu::msm_g1(&bases, &scalars)
            .unwrap()
            .into_affine();
        let bases2 = super::super::bench::random_g2_bases(n, 7);
        let want2 = super::super::cpu::msm_g2(&bases2, &scalars)
            .unwrap()
            .into_affine();
        let devices = list_devices();
        let mut ran = false;
        for kind in [BackendKind::Cuda, BackendKind::Opencl] {
            let Some(info) = crate::preferred_device(&devices, kind) else {
                eprintln!("zk unit test: SKIPPING {kind}: no device (or feature not built)");
                continue;
            };
            let variants: &[bool] = if kind == BackendKind::Cuda {
                &[true, false]
            } else {
                &[false]
            };
            for &ptx in variants {
                let Ok(dev) = open_device(kind, info.index, 1) else {
                    eprintln!("zk unit test: SKIPPING {kind}: cannot open {}", info.name);
                    continue;
                };
                let mut zk = match GpuZk::new(dev, ptx) {
                    Ok(z) => z,
                    Err(e) => {
                        eprintln!("zk unit test: SKIPPING {kind}: {e}");
                        continue;
                    }
                };
                for c in [15u32, 16, 17] {
                    let got = zk.msm_g1(&bases, &scalars, Some(c)).unwrap();
                    assert_eq!(got.into_affine(), want, "{kind} ptx {ptx} window {c}");
                }
                // G2 through the same scratch buffers (grown, then G1 again)
                let got2 = zk.msm_g2(&bases2, &scalars, Some(16)).unwrap();
                assert_eq!(got2.into_affine(), want2, "{kind} ptx {ptx} G2 window 16");
                let got = zk.msm_g1(&bases, &scalars, Some(15)).unwrap();
                assert_eq!(got.into_affine(), want, "{kind} ptx {ptx} G1 after G2");
                ran = true;
            }
        }
        if !ran {
            eprintln!("zk unit test: SKIPPING wide_windows_match_arkworks: no GPU backend");
        }
    }

    #[test]
    fn g1_limbs_round_trip() {
        let g = G1Affine::generator();
        let l = g1_limbs(&g);
        let mut xyzz = [0u64; 16];
        xyzz[..8].copy_from_slice(&l);
        xyzz[8..12].copy_from_slice(&Fq::ONE.0 .0);
        xyzz[12..16].copy_from_slice(&Fq::ONE.0 .0);
        let mut ident = xyzz;
        ident[8..16].fill(0);
        let got = <G1 as MsmGroup>::from_xyzz(&[xyzz, ident, xyzz].concat()).unwrap();
        assert_eq!(
            got,
            vec![
                G1Projective::generator(),
                G1Projective::zero(),
                G1Projective::generator()
            ]
        );
        let mut off = xyzz;
        off[0] ^= 1;
        assert!(<G1 as MsmGroup>::from_xyzz(&off).is_err());
        assert_eq!(g1_limbs(&G1Affine::zero()), [0; 8]);
    }

    #[test]
    fn g2_limbs_round_trip() {
        let g = G2Affine::generator();
        let l = g2_limbs(&g);
        let (x, y) = g.xy().unwrap();
        assert_eq!(l[0..4], x.c0.0 .0);
        assert_eq!(l[4..8], x.c1.0 .0);
        assert_eq!(l[8..12], y.c0.0 .0);
        assert_eq!(l[12..16], y.c1.0 .0);
        assert_eq!(g2_limbs(&G2Affine::zero()), [0; 16]);
        // XYZZ with ZZ = ZZZ = 1, the identity (ZZ = 0), and a scaled representative
        let one = Fq2::ONE;
        let mut xyzz = [0u64; 32];
        xyzz[..16].copy_from_slice(&l);
        xyzz[16..20].copy_from_slice(&one.c0.0 .0);
        xyzz[24..28].copy_from_slice(&one.c0.0 .0);
        let mut ident = xyzz;
        ident[16..32].fill(0);
        // (X, Y, ZZ, ZZZ) = (x t^2, y t^3, t^2, t^3) for t = 3 + 5u
        let t = Fq2::new(Fq::from(3u64), Fq::from(5u64));
        let (t2, t3) = (t.square(), t.square() * t);
        let mut scaled = [0u64; 32];
        for (k, f) in [x * t2, y * t3, t2, t3].iter().enumerate() {
            scaled[8 * k..8 * k + 4].copy_from_slice(&f.c0.0 .0);
            scaled[8 * k + 4..8 * k + 8].copy_from_slice(&f.c1.0 .0);
        }
        let got = <G2 as MsmGroup>::from_xyzz(&[xyzz, ident, scaled].concat()).unwrap();
        let gen = G2Projective::generator();
        assert_eq!(got, vec![gen, G2Projective::zero(), gen]);
        // off the curve, unreduced, inconsistent ZZ/ZZZ: all rejected
        let mut off = xyzz;
        off[0] ^= 1;
        assert!(<G2 as MsmGroup>::from_xyzz(&off).is_err());
        let mut unreduced = xyzz;
        unreduced[4..8].copy_from_slice(&Fq::MODULUS.0);
        assert!(<G2 as MsmGroup>::from_xyzz(&unreduced).is_err());
        let mut bad = xyzz;
        bad[24..32].fill(0);
        assert!(<G2 as MsmGroup>::from_xyzz(&bad).is_err());
        // write_g2 lays the limbs out little-endian, 128 bytes per point
        let mut bytes = vec![0u8; 256];
        write_g2(&mut bytes, &[g, G2Affine::zero()]);
        assert_eq!(bytes[0..8], l[0].to_le_bytes());
        assert_eq!(bytes[120..128], l[15].to_le_bytes());
        assert!(bytes[128..].iter().all(|&b| b == 0));
    }
}
