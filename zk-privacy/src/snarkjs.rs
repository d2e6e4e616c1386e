//! snarkjs-compatible JSON for BN254 Groth16 (`protocol: "groth16"`, `curve: "bn128"`).
//!
//! Field elements are decimal strings of the canonical integer. Points are projective
//! triples with `z = 1`: G1 `["x", "y", "1"]`; G2 `[["x.c0", "x.c1"], ["y.c0", "y.c1"],
//! ["1", "0"]]` (coordinate `c0 + c1 u`, c0 first). The point at infinity is
//! `["0", "1", "0"]` (G2: `[["0","0"],["1","0"],["0","0"]]`). `vk_alphabeta_12` is
//! `e(alpha, beta)` as computed by arkworks (informational; snarkjs' verifier does not read
//! it).

use std::path::Path;

use ark_bn254::{Bn254, Fq, Fq2, Fr, G1Affine, G2Affine};
use ark_ec::pairing::Pairing;
use ark_ec::AffineRepr;
use ark_ff::{PrimeField, Zero};
use ark_groth16::{Proof, VerifyingKey};
use serde_json::{json, Value};

use crate::error::{Result, ZkError};

fn dec<F: PrimeField>(x: &F) -> String {
    x.into_bigint().to_string()
}

fn fq2(x: &Fq2) -> Value {
    json!([dec(&x.c0), dec(&x.c1)])
}

fn g1(p: &G1Affine) -> Value {
    match p.xy() {
        Some((x, y)) => json!([dec(&x), dec(&y), "1"]),
        None => json!(["0", "1", "0"]),
    }
}

fn g2(p: &G2Affine) -> Value {
    match p.xy() {
        Some((x, y)) => json!([fq2(&x), fq2(&y), ["1", "0"]]),
        None => json!([["0", "0"], ["1", "0"], ["0", "0"]]),
    }
}

/// `proof.json`.
pub fn proof_json(proof: &Proof<Bn254>) -> Value {
    json!({
        "pi_a": g1(&proof.a),
        "pi_b": g2(&proof.b),
        "pi_c": g1(&proof.c),
        "protocol": "groth16",
        "curve": "bn128",
    })
}

/// `public.json`.
pub fn public_json(inputs: &[Fr]) -> Value {
    Value::Array(inputs.iter().map(|x| Value::String(dec(x))).collect())
}

/// `verification_key.json`.
pub fn verification_key_json(vk: &VerifyingKey<Bn254>) -> Value {
    let ab = Bn254::pairing(vk.alpha_g1, vk.beta_g2).0;
    let fq6 = |x: &ark_bn254::Fq6| json!([fq2(&x.c0), fq2(&x.c1), fq2(&x.c2)]);
    json!({
        "protocol": "groth16",
        "curve": "bn128",
        "nPublic": vk.gamma_abc_g1.len().saturating_sub(1),
        "vk_alpha_1": g1(&vk.alpha_g1),
        "vk_beta_2": g2(&vk.beta_g2),
        "vk_gamma_2": g2(&vk.gamma_g2),
        "vk_delta_2": g2(&vk.delta_g2),
        "vk_alphabeta_12": [fq6(&ab.c0), fq6(&ab.c1)],
        "IC": vk.gamma_abc_g1.iter().map(g1).collect::<Vec<_>>(),
    })
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| ZkError::Json(e.to_string()))?;
    std::fs::write(path, s).map_err(|e| ZkError::io(path, e))
}

/// Writes `proof.json`, `public.json` and `verification_key.json` into `dir` (created if
/// missing).
pub fn export_dir(
    dir: &Path,
    vk: &VerifyingKey<Bn254>,
    proof: &Proof<Bn254>,
    inputs: &[Fr],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ZkError::io(dir, e))?;
    write_json(&dir.join("proof.json"), &proof_json(proof))?;
    write_json(&dir.join("public.json"), &public_json(inputs))?;
    write_json(
        &dir.join("verification_key.json"),
        &verification_key_json(vk),
    )
}

// ---- import (checked) ----

fn parse_dec<F: PrimeField>(v: &Value, what: &'static str) -> Result<F> {
    let s = v
        .as_str()
        .ok_or_else(|| ZkError::encoding(what, "expected a decimal string"))?;
    if s.is_empty() || s.len() > 80 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ZkError::encoding(
            what,
            format!("not a decimal integer: {s:?}"),
        ));
    }
    // Accumulate in the field, then reject inputs that were reduced (>= the modulus).
    let ten = F::from(10u64);
    let x = s
        .bytes()
        .fold(F::zero(), |x, b| x * ten + F::from(u64::from(b - b'0')));
    let trimmed = s.trim_start_matches('0');
    let normal = if trimmed.is_empty() { "0" } else { trimmed };
    if dec(&x) != normal {
        return Err(ZkError::encoding(
            what,
            "integer is not below the field modulus",
        ));
    }
    Ok(x)
}

fn arr<'a>(v: &'a Value, n: usize, what: &'static str) -> Result<&'a Vec<Value>> {
    match v.as_array() {
        Some(a) if a.len() == n => Ok(a),
        _ => Err(ZkError::encoding(what, format!("expected an array of {n}"))),
    }
}

fn parse_g1(v: &Value, what: &'static str) -> Result<G1Affine> {
    let a = arr(v, 3, what)?;
    let x: Fq = parse_dec(&a[0], what)?;
    let y: Fq = parse_dec(&a[1], what)?;
    let z: Fq = parse_dec(&a[2], what)?;
    if z.is_zero() {
        return Ok(G1Affine::zero());
    }
    if z != Fq::from(1u64) {
        return Err(ZkError::encoding(what, "z coordinate must be 1 or 0"));
    }
    let p = G1Affine::new_unchecked(x, y);
    if !p.is_on_curve() {
        return Err(ZkError::encoding(what, "point is not on the curve"));
    }
    Ok(p)
}

fn parse_fq2(v: &Value, what: &'static str) -> Result<Fq2> {
    let a = arr(v, 2, what)?;
    Ok(Fq2::new(parse_dec(&a[0], what)?, parse_dec(&a[1], what)?))
}

fn parse_g2(v: &Value, what: &'static str) -> Result<G2Affine> {
    let a = arr(v, 3, what)?;
    let x = parse_fq2(&a[0], what)?;
    let y = parse_fq2(&a[1], what)?;
    let z = parse_fq2(&a[2], what)?;
    if z.is_zero() {
        return Ok(G2Affine::zero());
    }
    if z != Fq2::new(Fq::from(1u64), Fq::zero()) {
        return Err(ZkError::encoding(what, "z coordinate must be 1 or 0"));
    }
    let p = G2Affine::new_unchecked(x, y);
    if !p.is_on_curve() {
        return Err(ZkError::encoding(what, "point is not on the curve"));
    }
    if !p.is_in_correct_subgroup_assuming_on_curve() {
        return Err(ZkError::encoding(
            what,
            "point is not in the prime-order subgroup",
        ));
    }
    Ok(p)
}

fn field<'a>(v: &'a Value, name: &'static str) -> Result<&'a Value> {
    v.get(name)
        .ok_or_else(|| ZkError::Json(format!("missing field {name:?}")))
}

fn check_protocol(v: &Value) -> Result<()> {
    if let Some(p) = v.get("protocol") {
        if p != "groth16" {
            return Err(ZkError::Json(format!("protocol {p} is not groth16")));
        }
    }
    if let Some(c) = v.get("curve") {
        if c != "bn128" && c != "bn254" {
            return Err(ZkError::Json(format!("curve {c} is not bn128")));
        }
    }
    Ok(())
}

/// Parses `proof.json`.
pub fn parse_proof(v: &Value) -> Result<Proof<Bn254>> {
    check_protocol(v)?;
    Ok(Proof {
        a: parse_g1(field(v, "pi_a")?, "pi_a")?,
        b: parse_g2(field(v, "pi_b")?, "pi_b")?,
        c: parse_g1(field(v, "pi_c")?, "pi_c")?,
    })
}

/// Parses `public.json`.
pub fn parse_public(v: &Value) -> Result<Vec<Fr>> {
    v.as_array()
        .ok_or_else(|| ZkError::Json("public inputs must be an array".into()))?
        .iter()
        .map(|x| parse_dec(x, "public input"))
        .collect()
}

/// Parses `verification_key.json`.
pub fn parse_verification_key(v: &Value) -> Result<VerifyingKey<Bn254>> {
    check_protocol(v)?;
    let ic = field(v, "IC")?
        .as_array()
        .ok_or_else(|| ZkError::Json("IC must be an array".into()))?
        .iter()
        .map(|p| parse_g1(p, "IC"))
        .collect::<Result<Vec<_>>>()?;
    if let Some(n) = v.get("nPublic").and_then(Value::as_u64) {
        if n as usize + 1 != ic.len() {
            return Err(ZkError::Json(format!(
                "nPublic {n} does not match {} IC points",
                ic.len()
            )));
        }
    }
    Ok(VerifyingKey {
        alpha_g1: parse_g1(field(v, "vk_alpha_1")?, "vk_alpha_1")?,
        beta_g2: parse_g2(field(v, "vk_beta_2")?, "vk_beta_2")?,
        gamma_g2: parse_g2(field(v, "vk_gamma_2")?, "vk_gamma_2")?,
        delta_g2: parse_g2(field(v, "vk_delta_2")?, "vk_delta_2")?,
        gamma_abc_g1: ic,
    })
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Result<Value> {
    let s = std::fs::read_to_string(path).map_err(|e| ZkError::io(path, e))?;
    serde_json::from_str(&s).map_err(|e| ZkError::Json(format!("{}: {e}", path.display())))
}

/// Reads `proof.json`, `public.json` and `verification_key.json` from `dir`.
pub fn import_dir(dir: &Path) -> Result<(VerifyingKey<Bn254>, Proof<Bn254>, Vec<Fr>)> {
    Ok((
        parse_verification_key(&read_json(&dir.join("verification_key.json"))?)?,
        parse_proof(&read_json(&dir.join("proof.json"))?)?,
        parse_public(&read_json(&dir.join("public.json"))?)?,
    ))
}
