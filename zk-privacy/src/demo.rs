//! A small built-in demo circuit with a size knob, for prover tests and benchmarks.

use ark_bn254::Fr;
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::eq::EqGadget;
use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::fields::FieldVar;
use ark_r1cs_std::R1CSVar;
use ark_relations::r1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};

/// `y = f^n(x)` with `f(t) = t^2 + t + 5`: public inputs `[x, y]`, `n` multiplication
/// constraints (plus one equality).
#[derive(Clone, Debug)]
pub struct SquareChainCircuit {
    pub x: Fr,
    pub steps: usize,
}

impl SquareChainCircuit {
    pub fn new(x: Fr, steps: usize) -> Self {
        Self { x, steps }
    }
    /// The output `y` for this `x` and number of steps.
    pub fn output(&self) -> Fr {
        (0..self.steps).fold(self.x, |t, _| t * t + t + Fr::from(5u64))
    }
    /// Public inputs `[x, y]`.
    pub fn public_inputs(&self) -> Vec<Fr> {
        vec![self.x, self.output()]
    }
}

impl ConstraintSynthesizer<Fr> for SquareChainCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let y_value = self.output();
        let x = FpVar::new_input(cs.clone(), || Ok(self.x))?;
        let y = FpVar::new_input(cs.clone(), || Ok(y_value))?;
        let mut t = x;
        let five = Fr::from(5u64);
        for _ in 0..self.steps {
            // t' = t*t + t + 5 as a fresh witness and one constraint t * t = t' - t - 5, so
            // linear combinations do not nest across steps.
            let next_value = t.value().map(|v| v * v + v + five);
            let next = FpVar::new_witness(cs.clone(), || next_value)?;
            t.mul_equals(&t, &(&next - &t - five))?;
            t = next;
        }
        t.enforce_equal(&y)
    }
}
