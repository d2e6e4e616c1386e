//! The zk kernel sources and their names. The `.cl` files are templates and fragments; this
//! module assembles the compiled texts: the zk prelude, the field template instantiated for
//! Fr and Fq with constants read from arkworks, then the curve, MSM or NTT kernels.

use std::sync::OnceLock;

use ark_bn254::{Fq, Fr};
use ark_ff::{Field, PrimeField};

use crate::device::KernelSource;

const PRELUDE: &str = include_str!("../../kernels/zk/prelude.h");
const FIELD: &str = include_str!("../../kernels/zk/field.cl");
const FQ2: &str = include_str!("../../kernels/zk/fq2.cl");
const CURVE: &str = include_str!("../../kernels/zk/curve.cl");
const MSM: &str = include_str!("../../kernels/zk/msm.cl");
const NTT: &str = include_str!("../../kernels/zk/ntt.cl");
const PAIRING: &str = include_str!("../../kernels/zk/pairing.cl");
const DECODE: &str = include_str!("../../kernels/zk/decode.cl");
const SCALE: &str = include_str!("../../kernels/zk/scale.cl");

/// Kernel names in `msm.cl`.
pub(crate) mod msm {
    pub const DIGITS: &str = "msm_digits";
    pub const SCAN_GROUPS: &str = "msm_scan_groups";
    pub const SCAN_SUMS: &str = "msm_scan_sums";
    pub const SCAN_ADD: &str = "msm_scan_add";
    pub const SCATTER: &str = "msm_scatter";
    pub const ACCUMULATE: &str = "msm_accumulate";
    pub const ACCUMULATE_JOIN: &str = "msm_accumulate_join";
    pub const JOIN_HEADS: &str = "msm_join_heads";
    pub const REDUCE_SEGMENTS: &str = "msm_reduce_segments";
    pub const REDUCE_BLOCKS: &str = "msm_reduce_blocks";
    pub const REDUCE_WINDOWS: &str = "msm_reduce_windows";
    pub const FILL_U32: &str = "zk_fill_u32";
    /// Must equal `ZK_SCAN_GROUP` / `ZK_SCAN_CHUNK` / `ZK_REDUCE_GROUP` / `ZK_BLOCK_GROUP`
    /// in msm.cl.
    pub const SCAN_GROUP: u32 = 256;
    pub const SCAN_CHUNK: u64 = 1024;
    pub const REDUCE_GROUP: u32 = 128;
    pub const BLOCK_GROUP: u32 = 64;
}

/// Kernel names in `ntt.cl`.
pub(crate) mod ntt {
    pub const TWIDDLES: &str = "ntt_twiddles";
    pub const PASS: &str = "ntt_pass";
    /// Must equal `ZK_NTT_TILE_LOG` in ntt.cl.
    pub const TILE_LOG: u32 = 10;
}

/// Kernel names in `pairing.cl`.
pub(crate) mod pairing {
    pub const MILLER_LOOP: &str = "zk_miller_loop";
    pub const MILLER_LINES: &str = "zk_miller_lines";
    pub const MILLER_SEGMENTS: &str = "zk_miller_segments";
    pub const FQ12_MUL_PAIRS: &str = "zk_fq12_mul_pairs";
    /// 32-bit limbs of one stored line (three Fq2).
    pub const LINE_LIMBS: usize = 48;
    /// 32-bit limbs of one Fq12.
    pub const FQ12_LIMBS: usize = 96;
    /// Work-group size of the Miller-loop kernel: one pair per thread, small groups so a
    /// few hundred pairs still spread over many multiprocessors.
    pub const GROUP: u32 = 32;
    /// Limbs of the constants buffer (see `pairing.cl`).
    pub const CONSTS_LIMBS: usize = 56;
}

/// Kernel names in `decode.cl`.
pub(crate) mod decode {
    pub const G1_ROOTS: &str = "zk_g1_roots";
    pub const G2_ROOTS: &str = "zk_g2_roots";
    /// Work-group size: one point per thread, small groups so a few hundred points spread
    /// over many multiprocessors.
    pub const GROUP: u32 = 32;
    /// 32-bit limbs of the constants buffer (`ZK_DEC_CONSTS` in decode.cl).
    pub const CONSTS_LIMBS: usize = 82;
}

/// Kernel names in `scale.cl`.
pub(crate) mod scale {
    pub const G1_SCALE: &str = "zk_g1_scale";
    /// Work-group size: one point per thread, as in `decode.cl`.
    pub const GROUP: u32 = 32;
}

/// `-m^-1 mod 2^32` for an odd `m0`.
fn neg_inv32(m0: u32) -> u32 {
    let mut inv: u32 = 1;
    for _ in 0..5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(m0.wrapping_mul(inv)));
    }
    inv.wrapping_neg()
}

fn limbs32(limbs: &[u64]) -> Vec<u32> {
    limbs
        .iter()
        .flat_map(|&l| [l as u32, (l >> 32) as u32])
        .collect()
}

/// The field template for a modulus, given as 64-bit limbs with R mod p (arkworks' `ONE`,
/// which is stored in Montgomery form).
fn field_instance(name: &str, modulus: &[u64], one_mont: &[u64]) -> String {
    let p = limbs32(modulus);
    let one = limbs32(one_mont);
    assert_eq!(p.len(), 8, "zk kernels need 256-bit fields");
    let mut s = String::new();
    s.push_str(&format!("#define ZK_FIELD {name}\n"));
    for i in 0..8 {
        s.push_str(&format!("#define ZK_FIELD_P{i} 0x{:08x}u\n", p[i]));
        s.push_str(&format!("#define ZK_FIELD_ONE{i} 0x{:08x}u\n", one[i]));
    }
    s.push_str(&format!(
        "#define ZK_FIELD_INV 0x{:08x}u\n",
        neg_inv32(p[0])
    ));
    s.push_str(FIELD);
    s.push_str("\n#undef ZK_FIELD\n#undef ZK_FIELD_INV\n");
    for i in 0..8 {
        s.push_str(&format!("#undef ZK_FIELD_P{i}\n#undef ZK_FIELD_ONE{i}\n"));
    }
    s
}

/// The group an MSM program is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    /// G1: points over Fq.
    G1,
    /// G2: points over Fq2.
    G2,
}

fn assemble(ptx: bool, group: Option<Group>, body: &str) -> String {
    let mut s = String::new();
    if ptx {
        s.push_str("#define ZK_PTX 1\n");
    }
    s.push_str(PRELUDE);
    s.push('\n');
    s.push_str(&field_instance("fr", &Fr::MODULUS.0, &Fr::ONE.0 .0));
    if let Some(group) = group {
        s.push_str(&field_instance("fq", &Fq::MODULUS.0, &Fq::ONE.0 .0));
        match group {
            Group::G1 => s.push_str("#define ZK_CURVE g1\n#define ZK_CF fq\n#define ZK_CF_N 8u\n"),
            Group::G2 => {
                s.push_str(FQ2);
                s.push_str("\n#define ZK_CURVE g2\n#define ZK_CF fq2\n#define ZK_CF_N 16u\n");
            }
        }
        s.push_str(CURVE);
        s.push('\n');
    }
    s.push_str(body);
    s
}

/// Program texts, built once: [G1, G1 PTX, G2, G2 PTX].
static MSM_TEXT: [OnceLock<String>; 4] = [
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
];
static NTT_PORTABLE: OnceLock<String> = OnceLock::new();
static PAIRING_TEXT: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
static NTT_PTX: OnceLock<String> = OnceLock::new();
static DECODE_TEXT: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
static SCALE_TEXT: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];

/// The MSM program for `group`; `ptx` selects the PTX carry-chain multiplication (CUDA
/// only; OpenCL ignores the define because ZK_CUDA is not set there). Both groups' programs
/// have the same kernel names.
pub(crate) fn msm_source(group: Group, ptx: bool) -> KernelSource {
    let (slot, name) = match (group, ptx) {
        (Group::G1, false) => (0, "zk-msm"),
        (Group::G1, true) => (1, "zk-msm-ptx"),
        (Group::G2, false) => (2, "zk-msm-g2"),
        (Group::G2, true) => (3, "zk-msm-g2-ptx"),
    };
    KernelSource::new(
        name,
        MSM_TEXT[slot]
            .get_or_init(|| assemble(ptx, Some(group), MSM))
            .as_str(),
    )
}

/// The NTT program.
pub(crate) fn ntt_source(ptx: bool) -> KernelSource {
    if ptx {
        KernelSource::new(
            "zk-ntt-ptx",
            NTT_PTX.get_or_init(|| assemble(true, None, NTT)).as_str(),
        )
    } else {
        KernelSource::new(
            "zk-ntt",
            NTT_PORTABLE
                .get_or_init(|| assemble(false, None, NTT))
                .as_str(),
        )
    }
}

/// The point-decompression program (`decode.cl`): Fq, Fq2 and the G2 curve formulas.
pub(crate) fn decode_source(ptx: bool) -> KernelSource {
    let text = DECODE_TEXT[usize::from(ptx)]
        .get_or_init(|| assemble(ptx, Some(Group::G2), DECODE))
        .as_str();
    KernelSource::new(if ptx { "zk-decode-ptx" } else { "zk-decode" }, text)
}

/// The G1 scaling program (`scale.cl`): Fq and the G1 curve formulas.
pub(crate) fn scale_source(ptx: bool) -> KernelSource {
    let text = SCALE_TEXT[usize::from(ptx)]
        .get_or_init(|| assemble(ptx, Some(Group::G1), SCALE))
        .as_str();
    KernelSource::new(if ptx { "zk-scale-ptx" } else { "zk-scale" }, text)
}

/// `scale.cl`'s constants buffer: beta, the factor of G1's endomorphism `phi(x, y) = (beta
/// x, y)` (arkworks' `GLVConfig::ENDO_COEFFS[0]`), in Montgomery form.
pub(crate) fn scale_constants() -> Vec<u32> {
    use ark_ec::scalar_mul::glv::GLVConfig;
    limbs32(&<ark_bn254::g1::Config as GLVConfig>::ENDO_COEFFS[0].0 .0)
}

/// The constants `decode.cl` reads from its `consts` buffer, as 32-bit limbs: G1's and the
/// twist's b, psi's factors (Montgomery form), the exponents (p+1)/4, (p-3)/4 and (p-1)/2,
/// and BN254's u.
pub(crate) fn decode_constants() -> Vec<u32> {
    use ark_bn254::Fq2;
    use ark_ec::bn::BnConfig;
    use ark_ec::short_weierstrass::SWCurveConfig;
    use ark_ff::BigInteger;
    let mut out = Vec::with_capacity(decode::CONSTS_LIMBS);
    out.extend(limbs32(
        &<ark_bn254::g1::Config as SWCurveConfig>::COEFF_B.0 .0,
    ));
    let fq2 = |a: Fq2| [a.c0.0 .0, a.c1.0 .0];
    for v in [
        <ark_bn254::g2::Config as SWCurveConfig>::COEFF_B,
        <ark_bn254::Config as BnConfig>::TWIST_MUL_BY_Q_X,
        <ark_bn254::Config as BnConfig>::TWIST_MUL_BY_Q_Y,
    ] {
        for l in fq2(v) {
            out.extend(limbs32(&l));
        }
    }
    let p = Fq::MODULUS;
    // p = 3 mod 4: (p+1)/4 = (p >> 2) + 1, (p-3)/4 = p >> 2, (p-1)/2 = p >> 1
    let mut quarter = p;
    quarter.div2();
    quarter.div2();
    let mut sqrt_exp = quarter;
    sqrt_exp.add_with_carry(&ark_ff::BigInt::from(1u64));
    let mut half = p;
    half.div2();
    for e in [sqrt_exp, quarter, half] {
        out.extend(limbs32(&e.0));
    }
    let u = <ark_bn254::Config as BnConfig>::X;
    out.extend(limbs32(&[u[0]]));
    out
}

/// The Miller-loop program: Fq, Fq2, the loop count's signed digits as masks, pairing.cl.
pub(crate) fn pairing_source(ptx: bool) -> KernelSource {
    let text = PAIRING_TEXT[usize::from(ptx)].get_or_init(|| {
        let mut s = String::new();
        if ptx {
            s.push_str("#define ZK_PTX 1\n");
        }
        s.push_str(PRELUDE);
        s.push('\n');
        s.push_str(&field_instance("fq", &Fq::MODULUS.0, &Fq::ONE.0 .0));
        s.push_str(FQ2);
        s.push('\n');
        let ate = <ark_bn254::Config as ark_ec::bn::BnConfig>::ATE_LOOP_COUNT;
        assert!(
            ate.len() <= 64 + 1 && ate.last() == Some(&1),
            "BN254 loop count"
        );
        let (mut nonzero, mut neg) = (0u64, 0u64);
        // the top digit is the loop's start, never read as a step
        for (i, &d) in ate[..ate.len() - 1].iter().enumerate() {
            nonzero |= u64::from(d != 0) << i;
            neg |= u64::from(d < 0) << i;
        }
        s.push_str(&format!("#define ZK_ATE_DIGITS {}u\n", ate.len()));
        for (name, v) in [("NONZERO", nonzero), ("NEG", neg)] {
            s.push_str(&format!(
                "#define ZK_ATE_{name}_LO 0x{:08x}u\n#define ZK_ATE_{name}_HI 0x{:08x}u\n",
                v as u32,
                (v >> 32) as u32
            ));
        }
        s.push_str(PAIRING);
        s
    });
    KernelSource::new(if ptx { "zk-pairing-ptx" } else { "zk-pairing" }, text)
}

/// The iterations of the Miller loop (the loop count's digits below the top one) and the
/// lines it multiplies in: one doubling line per iteration, one addition line per nonzero
/// digit, and the two Frobenius lines.
pub(crate) fn miller_shape() -> (u32, usize) {
    let ate = <ark_bn254::Config as ark_ec::bn::BnConfig>::ATE_LOOP_COUNT;
    let steps = &ate[..ate.len().saturating_sub(1)];
    let adds = steps.iter().filter(|&&d| d != 0).count();
    (steps.len() as u32, steps.len() + adds + 2)
}

/// The constants `pairing.cl` reads from its `consts` buffer, as 64-bit Montgomery limbs:
/// 1/2, the twist's b, and the Frobenius twist factors for x and y.
pub(crate) fn pairing_constants() -> Vec<u64> {
    use ark_bn254::Fq2;
    use ark_ec::bn::BnConfig;
    use ark_ec::short_weierstrass::SWCurveConfig;
    // 2 is invertible mod p
    let two_inv = Fq::from(2u64).inverse().unwrap_or_default();
    let fq2 = |a: Fq2| [a.c0.0 .0, a.c1.0 .0];
    let mut out = Vec::with_capacity(pairing::CONSTS_LIMBS / 2);
    out.extend_from_slice(&two_inv.0 .0);
    for v in [
        <ark_bn254::g2::Config as SWCurveConfig>::COEFF_B,
        <ark_bn254::Config as BnConfig>::TWIST_MUL_BY_Q_X,
        <ark_bn254::Config as BnConfig>::TWIST_MUL_BY_Q_Y,
    ] {
        for l in fq2(v) {
            out.extend_from_slice(&l);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn montgomery_constants_match_arkworks() {
        let p = limbs32(&Fq::MODULUS.0);
        assert_eq!(p[0].wrapping_mul(neg_inv32(p[0])), u32::MAX);
        // arkworks' 64-bit INV agrees on the low 32 bits.
        let inv64 = <ark_bn254::FqConfig as ark_ff::MontConfig<4>>::INV;
        assert_eq!(inv64 as u32, neg_inv32(p[0]));
        let src = msm_source(Group::G1, false);
        assert!(src.source.contains("#define ZK_FIELD fq"));
        assert!(!src.source.contains("fq2_t"));
        let g2 = msm_source(Group::G2, true);
        assert!(g2.source.contains("#define ZK_CURVE g2") && g2.source.contains("fq2_mul"));
        assert!(ntt_source(true).source.starts_with("#define ZK_PTX"));
    }

    #[test]
    fn decode_constants_are_the_curve_s() {
        use ark_ff::BigInteger;
        let c = decode_constants();
        assert_eq!(c.len(), decode::CONSTS_LIMBS);
        assert_eq!(Fq::MODULUS.0[0] & 3, 3, "p = 3 mod 4");
        // (p + 1) / 4 * 4 == p + 1
        let limbs = |at: usize| -> ark_ff::BigInt<4> {
            let mut l = [0u64; 4];
            for (i, x) in l.iter_mut().enumerate() {
                *x = u64::from(c[at + 2 * i]) | (u64::from(c[at + 2 * i + 1]) << 32);
            }
            ark_ff::BigInt(l)
        };
        let mut e = limbs(56);
        e.mul2();
        e.mul2();
        let mut p1 = Fq::MODULUS;
        p1.add_with_carry(&ark_ff::BigInt::from(1u64));
        assert_eq!(e, p1);
        let mut h = limbs(72);
        h.mul2();
        h.add_with_carry(&ark_ff::BigInt::from(1u64));
        assert_eq!(h, Fq::MODULUS);
        assert_eq!(
            u64::from(c[80]) | (u64::from(c[81]) << 32),
            4965661367192848881
        );
        assert_eq!(c[0..8], limbs32(&Fq::from(3u64).0 .0)[..]);
        assert!(decode_source(false).source.contains("zk_g2_roots"));
    }

    #[test]
    fn scale_program_is_g1_s() {
        use ark_ec::scalar_mul::glv::GLVConfig;
        let beta = <ark_bn254::g1::Config as GLVConfig>::ENDO_COEFFS[0];
        // a primitive cube root of unity
        assert_ne!(beta, Fq::ONE);
        assert_eq!(beta * beta * beta, Fq::ONE);
        assert_eq!(scale_constants(), limbs32(&beta.0 .0));
        let src = scale_source(true);
        assert!(src.source.contains("#define ZK_CURVE g1") && src.source.contains("zk_g1_scale"));
        assert!(!src.source.contains("fq2_t"));
    }
}
