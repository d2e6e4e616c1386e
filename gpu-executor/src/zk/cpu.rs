//! The CPU reference: arkworks' own MSM (`VariableBaseMSM`, Pippenger on all threads of the
//! pool it runs in) and `Radix2EvaluationDomain` FFTs. Every GPU result is checked against
//! these in the tests, and they are the fallback when a device fails.

use ark_bn254::{Bn254, Fq12, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::pairing::Pairing;
use ark_ec::VariableBaseMSM;
use ark_ff::FftField;
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};

use super::NttDirection;
use crate::error::{GpuError, Result};

pub(crate) fn check_msm_lengths(points: usize, scalars: usize) -> Result<()> {
    if points != scalars {
        return Err(GpuError::InvalidInput(format!(
            "MSM needs as many scalars as points ({points} points, {scalars} scalars)"
        )));
    }
    Ok(())
}

/// `sum scalars[i] * bases[i]` over G1 with arkworks.
pub fn msm_g1(bases: &[G1Affine], scalars: &[Fr]) -> Result<G1Projective> {
    check_msm_lengths(bases.len(), scalars.len())?;
    Ok(G1Projective::msm_unchecked(bases, scalars))
}

/// `sum scalars[i] * bases[i]` over G2 with arkworks.
pub fn msm_g2(bases: &[G2Affine], scalars: &[Fr]) -> Result<G2Projective> {
    check_msm_lengths(bases.len(), scalars.len())?;
    Ok(G2Projective::msm_unchecked(bases, scalars))
}

/// `k1 * p + k2 * phi(p)` with arkworks (`phi` = G1's GLV endomorphism): the reference
/// of `scale.cl`.
pub fn scale_g1_one(p: &G1Affine, k1: u64, k2: u64) -> G1Affine {
    use ark_ec::scalar_mul::glv::GLVConfig;
    use ark_ec::CurveGroup;
    let phi = <ark_bn254::g1::Config as GLVConfig>::endomorphism_affine(p);
    (*p * Fr::from(k1) + phi * Fr::from(k2)).into_affine()
}

/// [`scale_g1_one`] for each point and weight.
pub fn scale_g1(points: &[G1Affine], ks: &[(u64, u64)]) -> Result<Vec<G1Affine>> {
    check_weight_lengths(points.len(), ks.len())?;
    Ok(points
        .iter()
        .zip(ks)
        .map(|(p, &(k1, k2))| scale_g1_one(p, k1, k2))
        .collect())
}

pub(crate) fn check_weight_lengths(points: usize, weights: usize) -> Result<()> {
    if points != weights {
        return Err(GpuError::InvalidInput(format!(
            "{points} points for {weights} weights"
        )));
    }
    Ok(())
}

/// Pairs need as many G2 points as G1 points.
pub(crate) fn check_pair_lengths(g1: usize, g2: usize) -> Result<()> {
    if g1 != g2 {
        return Err(GpuError::InvalidInput(format!(
            "{g1} G1 points for {g2} G2 points"
        )));
    }
    Ok(())
}

/// `out[i]` = arkworks' Miller loop of the one pair `(g1[i], g2[i])`
/// (`Bn254::multi_miller_loop`; 1 when either point is the identity), in parallel on the
/// calling thread's rayon pool.
pub fn miller_loops(g1: &[G1Affine], g2: &[G2Affine]) -> Result<Vec<Fq12>> {
    use rayon::prelude::*;
    check_pair_lengths(g1.len(), g2.len())?;
    Ok(g1
        .par_iter()
        .zip(g2)
        .map(|(p, q)| Bn254::multi_miller_loop([*p], [*q]).0)
        .collect())
}

/// Checks that `len` is a transform size Fr supports (a power of two, at most 2^28) and
/// returns its log2.
pub(crate) fn ntt_log_size(len: usize) -> Result<u32> {
    if len == 0 || !len.is_power_of_two() {
        return Err(GpuError::InvalidInput(format!(
            "NTT length {len} is not a power of two"
        )));
    }
    let log = len.trailing_zeros();
    if log > Fr::TWO_ADICITY {
        return Err(GpuError::InvalidInput(format!(
            "NTT length 2^{log} exceeds the 2^{} roots of unity of Fr",
            Fr::TWO_ADICITY
        )));
    }
    Ok(log)
}

/// The arkworks domain of `len` points, shifted by `coset` when given.
pub(crate) fn domain(len: usize, coset: Option<Fr>) -> Result<Radix2EvaluationDomain<Fr>> {
    ntt_log_size(len)?;
    let d = Radix2EvaluationDomain::<Fr>::new(len)
        .ok_or_else(|| GpuError::InvalidInput(format!("no radix-2 domain of size {len}")))?;
    match coset {
        None => Ok(d),
        Some(g) => d.get_coset(g).ok_or_else(|| {
            GpuError::InvalidInput("coset offset must be a non-zero field element".into())
        }),
    }
}

/// In-place NTT with arkworks: `Forward` evaluates the polynomial with coefficients
/// `values` on the domain (or the coset `g * domain`), `Inverse` interpolates.
pub fn ntt(values: &mut [Fr], direction: NttDirection, coset: Option<Fr>) -> Result<()> {
    let d = domain(values.len(), coset)?;
    // arkworks transforms a Vec in place (it may resize it); the length already equals the
    // domain size, so the Vec comes back with the same length.
    let mut v = values.to_vec();
    match direction {
        NttDirection::Forward => d.fft_in_place(&mut v),
        NttDirection::Inverse => d.ifft_in_place(&mut v),
    }
    values.copy_from_slice(&v);
    Ok(())
}
