//! Pluggable MSM / NTT backends for the Groth16 prover.
//!
//! The prover spends its time in multi-scalar multiplications (the A, B, C and H terms) and
//! in the number-theoretic transforms that compute H(x). Both go through [`ProverBackend`]:
//! [`CpuProverBackend`] is arkworks (`ark-ec` Pippenger MSM, `ark-poly` radix-2 domains) and
//! is the reference and the fallback; a GPU backend overrides what it speeds up. Every
//! backend must return exactly what the CPU backend returns (group elements are compared
//! after normalisation, so any correct MSM gives the same proof bytes).

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::VariableBaseMSM;
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};

use crate::error::{Result, ZkError};

/// MSM and NTT over BN254, the two kernels of a Groth16 prover.
///
/// NTTs work in place on a vector whose length is a power of two (the evaluation domain of
/// that size); `coset_*` use the coset `offset * <w>`. Implementations must be deterministic
/// and equal to [`CpuProverBackend`].
pub trait ProverBackend: Send + Sync {
    /// Short name for logs and benchmark records (`cpu`, `cuda`, `opencl`).
    fn name(&self) -> &str;
    /// `sum_i scalars[i] * bases[i]` in G1; `bases` and `scalars` have equal lengths.
    fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> Result<G1Projective>;
    /// `sum_i scalars[i] * bases[i]` in G2; `bases` and `scalars` have equal lengths.
    fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> Result<G2Projective>;
    /// Coefficients -> evaluations over the subgroup of size `values.len()`.
    fn ntt(&self, values: &mut Vec<Fr>) -> Result<()>;
    /// Evaluations over the subgroup -> coefficients.
    fn intt(&self, values: &mut Vec<Fr>) -> Result<()>;
    /// Coefficients -> evaluations over the coset `offset * <w>`.
    fn coset_ntt(&self, values: &mut Vec<Fr>, offset: Fr) -> Result<()>;
    /// Evaluations over the coset `offset * <w>` -> coefficients.
    fn coset_intt(&self, values: &mut Vec<Fr>, offset: Fr) -> Result<()>;
    /// Called once per registered proving key: a device backend may keep the key's fixed
    /// bases resident. Default: nothing.
    fn preload_key(
        &self,
        _pk: &std::sync::Arc<ark_groth16::ProvingKey<ark_bn254::Bn254>>,
    ) -> Result<()> {
        Ok(())
    }
}

/// The arkworks backend: the reference every other backend is compared with.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuProverBackend;

pub(crate) fn check_lengths(backend: &str, bases: usize, scalars: usize) -> Result<()> {
    if bases != scalars {
        return Err(ZkError::Backend {
            backend: backend.to_string(),
            reason: format!("MSM with {bases} bases and {scalars} scalars"),
        });
    }
    Ok(())
}

pub(crate) fn domain(backend: &str, len: usize) -> Result<Radix2EvaluationDomain<Fr>> {
    if !len.is_power_of_two() {
        return Err(ZkError::Backend {
            backend: backend.to_string(),
            reason: format!("NTT length {len} is not a power of two"),
        });
    }
    Radix2EvaluationDomain::<Fr>::new(len).ok_or_else(|| ZkError::Backend {
        backend: backend.to_string(),
        reason: format!("no radix-2 domain of size {len} in BN254 Fr"),
    })
}

fn coset(backend: &str, len: usize, offset: Fr) -> Result<Radix2EvaluationDomain<Fr>> {
    domain(backend, len)?
        .get_coset(offset)
        .ok_or_else(|| ZkError::Backend {
            backend: backend.to_string(),
            reason: "coset offset is zero".to_string(),
        })
}

impl ProverBackend for CpuProverBackend {
    fn name(&self) -> &str {
        "cpu"
    }
    fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> Result<G1Projective> {
        check_lengths("cpu", bases.len(), scalars.len())?;
        Ok(G1Projective::msm_unchecked(bases, scalars))
    }
    fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> Result<G2Projective> {
        check_lengths("cpu", bases.len(), scalars.len())?;
        Ok(G2Projective::msm_unchecked(bases, scalars))
    }
    fn ntt(&self, values: &mut Vec<Fr>) -> Result<()> {
        domain("cpu", values.len())?.fft_in_place(values);
        Ok(())
    }
    fn intt(&self, values: &mut Vec<Fr>) -> Result<()> {
        domain("cpu", values.len())?.ifft_in_place(values);
        Ok(())
    }
    fn coset_ntt(&self, values: &mut Vec<Fr>, offset: Fr) -> Result<()> {
        coset("cpu", values.len(), offset)?.fft_in_place(values);
        Ok(())
    }
    fn coset_intt(&self, values: &mut Vec<Fr>, offset: Fr) -> Result<()> {
        coset("cpu", values.len(), offset)?.ifft_in_place(values);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::{CurveGroup, PrimeGroup};
    use ark_ff::{Field, UniformRand};
    use rand::SeedableRng;

    #[test]
    fn cpu_ntt_roundtrips_and_matches_naive_evaluation() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let coeffs: Vec<Fr> = (0..16).map(|_| Fr::rand(&mut rng)).collect();
        let b = CpuProverBackend;
        let offset = Fr::from(7u64);
        let mut v = coeffs.clone();
        b.coset_ntt(&mut v, offset).unwrap();
        let d = domain("cpu", 16).unwrap();
        for (i, e) in v.iter().enumerate() {
            let x = offset * d.group_gen().pow([i as u64]);
            let naive = coeffs
                .iter()
                .rev()
                .fold(Fr::from(0u64), |acc, c| acc * x + c);
            assert_eq!(*e, naive);
        }
        b.coset_intt(&mut v, offset).unwrap();
        assert_eq!(v, coeffs);
        b.ntt(&mut v).unwrap();
        b.intt(&mut v).unwrap();
        assert_eq!(v, coeffs);
        assert!(b.ntt(&mut vec![Fr::from(1u64); 3]).is_err());
    }

    #[test]
    fn cpu_msm_matches_naive_sum_and_checks_lengths() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let bases: Vec<G1Affine> = (0..9)
            .map(|_| G1Projective::rand(&mut rng).into_affine())
            .collect();
        let scalars: Vec<Fr> = (0..9).map(|_| Fr::rand(&mut rng)).collect();
        let naive: G1Projective = bases.iter().zip(&scalars).map(|(b, s)| *b * s).sum();
        assert_eq!(CpuProverBackend.msm_g1(&bases, &scalars).unwrap(), naive);
        assert!(CpuProverBackend.msm_g1(&bases[1..], &scalars).is_err());
        let g2 = vec![G2Projective::generator().into_affine(); 3];
        let s = vec![Fr::from(2u64); 3];
        assert_eq!(
            CpuProverBackend.msm_g2(&g2, &s).unwrap(),
            G2Projective::generator() * Fr::from(6u64)
        );
    }
}

/// The GPU backend: `gpu_executor::zk` (CUDA / OpenCL Pippenger G1 and G2 MSMs and NTTs). The executor itself falls back to the CPU when no device is present, a
/// call is too small for the device, or the device fails, so results always equal
/// [`CpuProverBackend`]'s.
///
/// [`GpuProverBackend::preload`] copies a proving key's fixed G1 bases to the device once;
/// later MSMs over exactly those slices use the resident copy. The backend keeps the key
/// (`Arc`) alive, so a slice's address and length identify its bases for as long as the
/// resident copy exists.
#[derive(Clone)]
pub struct GpuProverBackend {
    exec: std::sync::Arc<gpu_executor::zk::ZkExecutor>,
    resident: std::sync::Arc<parking_lot::Mutex<Vec<ResidentBases>>>,
}

struct ResidentBases {
    _key: std::sync::Arc<ark_groth16::ProvingKey<ark_bn254::Bn254>>,
    addr: usize,
    len: usize,
    device: std::sync::Arc<gpu_executor::zk::DeviceG1Bases>,
}

impl std::fmt::Debug for GpuProverBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuProverBackend({})", self.exec.backend_name())
    }
}

impl GpuProverBackend {
    /// Wraps an executor (share one per device).
    pub fn new(exec: std::sync::Arc<gpu_executor::zk::ZkExecutor>) -> Self {
        Self {
            exec,
            resident: Default::default(),
        }
    }
    /// Opens the device `gpu` selects with default kernel settings.
    pub fn open(gpu: &gpu_executor::GpuConfig) -> Result<Self> {
        let exec = gpu_executor::zk::ZkExecutor::new(gpu, gpu_executor::zk::ZkConfig::default())
            .map_err(|e| gpu_err(&e))?;
        Ok(Self::new(std::sync::Arc::new(exec)))
    }
    pub fn executor(&self) -> &gpu_executor::zk::ZkExecutor {
        &self.exec
    }
    /// Whether a device (not the CPU fallback) runs the kernels.
    pub fn has_device(&self) -> bool {
        self.exec.backend_name() != "cpu"
    }
    /// Uploads the G1 query vectors of `pk` that the prover multiplies (`a_query[1..]`,
    /// `b_g1_query[1..]`, `h_query`, `l_query`) to the device. No-op without a device.
    pub fn preload(
        &self,
        pk: &std::sync::Arc<ark_groth16::ProvingKey<ark_bn254::Bn254>>,
    ) -> Result<()> {
        let slices: [&[G1Affine]; 4] = [
            pk.a_query.get(1..).unwrap_or(&[]),
            pk.b_g1_query.get(1..).unwrap_or(&[]),
            &pk.h_query,
            &pk.l_query,
        ];
        for bases in slices {
            if bases.is_empty() {
                continue;
            }
            let Some(device) = self.exec.upload_g1_bases(bases).map_err(|e| gpu_err(&e))? else {
                return Ok(());
            };
            self.resident.lock().push(ResidentBases {
                _key: pk.clone(),
                addr: bases.as_ptr() as usize,
                len: bases.len(),
                device: std::sync::Arc::new(device),
            });
        }
        Ok(())
    }
    /// Drops all resident bases (and the keys they keep alive).
    pub fn clear_resident(&self) {
        self.resident.lock().clear();
    }
    fn resident_for(
        &self,
        bases: &[G1Affine],
    ) -> Option<std::sync::Arc<gpu_executor::zk::DeviceG1Bases>> {
        let addr = bases.as_ptr() as usize;
        self.resident
            .lock()
            .iter()
            .find(|r| r.addr == addr && r.len == bases.len())
            .map(|r| r.device.clone())
    }
}

fn gpu_err(e: &gpu_executor::GpuError) -> ZkError {
    ZkError::Backend {
        backend: "gpu".to_string(),
        reason: e.to_string(),
    }
}

impl ProverBackend for GpuProverBackend {
    fn name(&self) -> &str {
        self.exec.backend_name()
    }
    fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> Result<G1Projective> {
        check_lengths(self.name(), bases.len(), scalars.len())?;
        match self.resident_for(bases) {
            Some(device) => self
                .exec
                .msm_g1_resident(bases, Some(&device), scalars)
                .map_err(|e| gpu_err(&e)),
            None => gpu_executor::zk::msm_g1(&self.exec, bases, scalars).map_err(|e| gpu_err(&e)),
        }
    }
    fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> Result<G2Projective> {
        check_lengths(self.name(), bases.len(), scalars.len())?;
        gpu_executor::zk::msm_g2(&self.exec, bases, scalars).map_err(|e| gpu_err(&e))
    }
    fn ntt(&self, values: &mut Vec<Fr>) -> Result<()> {
        use gpu_executor::zk::NttDirection;
        gpu_executor::zk::ntt(&self.exec, values, NttDirection::Forward, None)
            .map_err(|e| gpu_err(&e))
    }
    fn intt(&self, values: &mut Vec<Fr>) -> Result<()> {
        use gpu_executor::zk::NttDirection;
        gpu_executor::zk::ntt(&self.exec, values, NttDirection::Inverse, None)
            .map_err(|e| gpu_err(&e))
    }
    fn coset_ntt(&self, values: &mut Vec<Fr>, offset: Fr) -> Result<()> {
        use gpu_executor::zk::NttDirection;
        gpu_executor::zk::ntt(&self.exec, values, NttDirection::Forward, Some(offset))
            .map_err(|e| gpu_err(&e))
    }
    fn coset_intt(&self, values: &mut Vec<Fr>, offset: Fr) -> Result<()> {
        use gpu_executor::zk::NttDirection;
        gpu_executor::zk::ntt(&self.exec, values, NttDirection::Inverse, Some(offset))
            .map_err(|e| gpu_err(&e))
    }
    fn preload_key(
        &self,
        pk: &std::sync::Arc<ark_groth16::ProvingKey<ark_bn254::Bn254>>,
    ) -> Result<()> {
        self.preload(pk)
    }
}
