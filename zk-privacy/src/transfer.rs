//! The privacy transaction payload: a 128-byte Groth16 proof and the transfer's public
//! inputs, with a canonical byte encoding and checked decoding.
//!
//! Encoding (296 bytes, fixed):
//!
//! | bytes | field |
//! |---|---|
//! | 0..32 | proof A, G1 compressed (ark-serialize: x little-endian, flags in the top bits) |
//! | 32..96 | proof B, G2 compressed (x.c0 then x.c1, flags in the last byte) |
//! | 96..128 | proof C, G1 compressed |
//! | 128..160 | root, Fr little-endian, canonical (< r) |
//! | 160..224 | nullifier[0], nullifier[1] |
//! | 224..288 | commitment[0], commitment[1] |
//! | 288..296 | fee, u64 little-endian |

use ark_bn254::{Bn254, Fq, Fq2, Fr, G1Affine, G2Affine, G2Projective};
use ark_ec::short_weierstrass::SWFlags;
use ark_ec::{AdditiveGroup, AffineRepr};
use ark_ff::{Field, MontFp};
use ark_groth16::Proof;
use ark_serialize::{
    CanonicalDeserialize, CanonicalDeserializeWithFlags, CanonicalSerialize, Compress, Validate,
};

use crate::error::{Result, ZkError};

/// Size of a compressed proof.
pub const PROOF_BYTES: usize = 128;
/// Size of an encoded [`PrivacyTransfer`].
pub const TRANSFER_BYTES: usize = PROOF_BYTES + 5 * 32 + 8;

/// The public inputs of a confidential transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransferPublicInputs {
    /// A recent root of the note-commitment tree.
    pub root: Fr,
    /// Nullifiers of the two input notes.
    pub nullifiers: [Fr; 2],
    /// Commitments of the two output notes.
    pub commitments: [Fr; 2],
    /// Public fee, burned or paid to the block producer by the node.
    pub fee: u64,
}

impl TransferPublicInputs {
    /// The circuit's public input vector: `[root, nf0, nf1, cm0, cm1, fee]`.
    pub fn to_field_elements(&self) -> Vec<Fr> {
        vec![
            self.root,
            self.nullifiers[0],
            self.nullifiers[1],
            self.commitments[0],
            self.commitments[1],
            Fr::from(self.fee),
        ]
    }
}

/// A privacy transaction's payload.
#[derive(Clone, Debug, PartialEq)]
pub struct PrivacyTransfer {
    pub proof: Proof<Bn254>,
    pub public: TransferPublicInputs,
}

/// Encodes a field element as 32 bytes little-endian.
pub fn encode_fr(x: &Fr) -> [u8; 32] {
    let mut out = [0u8; 32];
    // Serialising an Fr into a 32-byte buffer cannot fail.
    let mut w = &mut out[..];
    let _ = x.serialize_compressed(&mut w);
    out
}

/// Decodes a canonical 32-byte little-endian field element (rejects values >= r).
pub fn decode_fr(bytes: &[u8], what: &'static str) -> Result<Fr> {
    if bytes.len() != 32 {
        return Err(ZkError::encoding(
            what,
            format!("expected 32 bytes, got {}", bytes.len()),
        ));
    }
    Fr::deserialize_compressed(bytes)
        .map_err(|_| ZkError::encoding(what, "not a canonical field element (>= r)"))
}

pub(crate) fn decode_g1(bytes: &[u8], what: &'static str) -> Result<G1Affine> {
    let p = G1Affine::deserialize_with_mode(bytes, Compress::Yes, Validate::No).map_err(|e| {
        ZkError::encoding(what, format!("not the x-coordinate of a curve point ({e})"))
    })?;
    check_g1(p, what)
}

pub(crate) fn decode_g2(bytes: &[u8], what: &'static str) -> Result<G2Affine> {
    let p = G2Affine::deserialize_with_mode(bytes, Compress::Yes, Validate::No).map_err(|e| {
        ZkError::encoding(what, format!("not the x-coordinate of a curve point ({e})"))
    })?;
    check_g2(p, what)
}

/// BN254's curve parameter `u` (`ark_bn254::Config::X`, 63 bits).
const BN_U: u64 = 4965661367192848881;

/// `psi`'s x factor, `(u+9)^((p-1)/3)` (ark-bn254's `P_POWER_ENDOMORPHISM_COEFF_0`).
const PSI_X: Fq2 = Fq2::new(
    MontFp!("21575463638280843010398324269430826099269044274347216827212613867836435027261"),
    MontFp!("10307601595873709700152284273816112264069230130616436755625194854815875713954"),
);
/// `psi`'s y factor, `(u+9)^((p-1)/2)` (`P_POWER_ENDOMORPHISM_COEFF_1`).
const PSI_Y: Fq2 = Fq2::new(
    MontFp!("2821565182194536844548159561693502659359617185244120367078079554186484126554"),
    MontFp!("3505843767911556378687030309984248845540243509899259641013678093033130930403"),
);

/// The untwist-Frobenius-twist endomorphism `psi` of E'(Fq2), on Jacobian coordinates
/// (the Frobenius map is a field automorphism, so it commutes with the `Z` scaling).
fn psi(p: &G2Projective) -> G2Projective {
    let mut r = *p;
    r.x.frobenius_map_in_place(1);
    r.y.frobenius_map_in_place(1);
    r.z.frobenius_map_in_place(1);
    r.x *= PSI_X;
    r.y *= PSI_Y;
    r
}

/// `[u]P` by double-and-add over the 63 bits of `u` (mixed additions).
fn mul_by_u(p: &G2Affine) -> G2Projective {
    let mut acc = G2Projective::from(*p);
    for i in (0..62).rev() {
        acc.double_in_place();
        if (BN_U >> i) & 1 == 1 {
            acc += p;
        }
    }
    acc
}

/// Whether a point of E'(Fq2) is in the prime-order subgroup G2: `[u+1]P + psi([u]P) +
/// psi^2([u]P) == psi^3([2u]P)` (Dai, Lin, Zhao, Zhou, "Fast subgroup membership testings
/// for G1, G2 and GT on pairing-friendly curves", eprint 2022/348, section 5.1, as gnark
/// uses it). One 63-bit scalar multiplication instead of ark-bn254's 127-bit `[6u^2]P`;
/// the same answer on every point (tested against ark-bn254 on points in and out of G2).
pub fn g2_in_subgroup(p: &G2Affine) -> bool {
    let up = mul_by_u(p);
    let psi_up = psi(&up);
    let lhs = up + p + psi_up + psi(&psi_up);
    let rhs = psi(&psi(&psi(&up.double())));
    lhs == rhs
}

macro_rules! check_point_impl {
    ($name:ident, $ty:ty, $in_subgroup:expr) => {
        fn $name(p: $ty, what: &'static str) -> Result<$ty> {
            if p.is_zero() {
                return Err(ZkError::encoding(what, "point at infinity"));
            }
            if !p.is_on_curve() {
                return Err(ZkError::encoding(what, "point is not on the curve"));
            }
            if !$in_subgroup(&p) {
                return Err(ZkError::encoding(
                    what,
                    "point is not in the prime-order subgroup",
                ));
            }
            Ok(p)
        }
    };
}
// BN254's G1 has cofactor 1 (ark-bn254's check is `true`); G2's test is `g2_in_subgroup`.
check_point_impl!(
    check_g1,
    G1Affine,
    G1Affine::is_in_correct_subgroup_assuming_on_curve
);
check_point_impl!(check_g2, G2Affine, g2_in_subgroup);

/// A compressed point's x-coordinate and whether the encoding asks for the smaller of the
/// two square roots, parsed as arkworks' compressed deserialization parses it (flags in the
/// top bits of the last byte, x canonical); the point at infinity is an error, as it is in
/// checked decoding.
fn parse_x<F: CanonicalDeserializeWithFlags>(
    bytes: &[u8],
    what: &'static str,
) -> Result<(F, bool)> {
    let (x, flags): (F, SWFlags) = F::deserialize_with_flags(bytes).map_err(|e| {
        ZkError::encoding(what, format!("not the x-coordinate of a curve point ({e})"))
    })?;
    match flags.is_positive() {
        Some(smaller) => Ok((x, smaller)),
        None => Err(ZkError::encoding(what, "point at infinity")),
    }
}

/// Of `y` and `-y`, the smaller (`smaller`) or the larger, as arkworks orders them
/// (`get_ys_from_x_unchecked`).
fn pick_root<F: Field + Ord>(y: F, smaller: bool) -> F {
    let neg = -y;
    let (lo, hi) = if y < neg { (y, neg) } else { (neg, y) };
    if smaller {
        lo
    } else {
        hi
    }
}

/// An encoded transfer parsed up to its proof points' square roots (and B's subgroup test):
/// the part of checked decoding that costs little. [`CompressedTransfer::finish`] completes
/// it with roots computed elsewhere (e.g. on a GPU, `gpu_executor`'s `gpu_decompress`).
/// Every error of [`CompressedTransfer::parse`] is one [`PrivacyTransfer::decode`] gives
/// too; a transfer that parses decodes exactly when A's and C's x have a root on G1's curve
/// and B's x a root on the twist with B in G2.
#[derive(Clone, Copy, Debug)]
pub struct CompressedTransfer {
    /// x-coordinates of A, B and C, with whether each takes the smaller root.
    pub a: (Fq, bool),
    pub b: (Fq2, bool),
    pub c: (Fq, bool),
    pub public: TransferPublicInputs,
}

impl CompressedTransfer {
    /// Parses an encoded transfer: length, the points' flags and canonical coordinates,
    /// the public inputs.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let public = PrivacyTransfer::decode_public(bytes)?;
        Ok(Self {
            a: parse_x(&bytes[0..32], "proof.A")?,
            b: parse_x(&bytes[32..96], "proof.B")?,
            c: parse_x(&bytes[96..128], "proof.C")?,
            public,
        })
    }

    /// The decoded transfer, given a square root of `x^3 + b` for each point (either sign;
    /// the encoding's flag picks). The caller guarantees the roots are roots and B is in
    /// G2: the points are then exactly those of checked decoding.
    pub fn finish(&self, a_y: Fq, b_y: Fq2, c_y: Fq) -> PrivacyTransfer {
        PrivacyTransfer {
            proof: Proof {
                a: G1Affine::new_unchecked(self.a.0, pick_root(a_y, self.a.1)),
                b: G2Affine::new_unchecked(self.b.0, pick_root(b_y, self.b.1)),
                c: G1Affine::new_unchecked(self.c.0, pick_root(c_y, self.c.1)),
            },
            public: self.public,
        }
    }
}

/// Encodes a proof as 128 bytes (A, B, C compressed).
pub fn encode_proof(proof: &Proof<Bn254>) -> [u8; PROOF_BYTES] {
    let mut out = [0u8; PROOF_BYTES];
    let mut w = &mut out[..];
    // A fixed-size compressed encoding into a buffer of exactly that size cannot fail.
    let _ = proof.a.serialize_compressed(&mut w);
    let _ = proof.b.serialize_compressed(&mut w);
    let _ = proof.c.serialize_compressed(&mut w);
    out
}

/// Decodes a 128-byte proof, checking each point is on the curve, in the prime-order
/// subgroup and not the identity.
pub fn decode_proof(bytes: &[u8]) -> Result<Proof<Bn254>> {
    if bytes.len() != PROOF_BYTES {
        return Err(ZkError::encoding(
            "proof",
            format!("expected {PROOF_BYTES} bytes, got {}", bytes.len()),
        ));
    }
    Ok(Proof {
        a: decode_g1(&bytes[0..32], "proof.A")?,
        b: decode_g2(&bytes[32..96], "proof.B")?,
        c: decode_g1(&bytes[96..128], "proof.C")?,
    })
}

impl PrivacyTransfer {
    /// The canonical encoding ([`TRANSFER_BYTES`] bytes, see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TRANSFER_BYTES);
        out.extend_from_slice(&encode_proof(&self.proof));
        out.extend_from_slice(&encode_fr(&self.public.root));
        for x in self
            .public
            .nullifiers
            .iter()
            .chain(&self.public.commitments)
        {
            out.extend_from_slice(&encode_fr(x));
        }
        out.extend_from_slice(&self.public.fee.to_le_bytes());
        out
    }

    /// Checked decoding of [`PrivacyTransfer::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != TRANSFER_BYTES {
            return Err(ZkError::encoding(
                "privacy transfer",
                format!("expected {TRANSFER_BYTES} bytes, got {}", bytes.len()),
            ));
        }
        let proof = decode_proof(&bytes[..PROOF_BYTES])?;
        let public = Self::decode_public(bytes)?;
        Ok(Self { proof, public })
    }

    /// Decodes only the public inputs of an encoded transfer (length and canonical field
    /// elements checked; the proof's points are not decoded). For state transitions of
    /// transfers whose proof was already verified: checking the points (a G2 subgroup test
    /// among them) costs far more than applying the transfer, and Block-STM may execute a
    /// transaction more than once.
    pub fn decode_public(bytes: &[u8]) -> Result<TransferPublicInputs> {
        if bytes.len() != TRANSFER_BYTES {
            return Err(ZkError::encoding(
                "privacy transfer",
                format!("expected {TRANSFER_BYTES} bytes, got {}", bytes.len()),
            ));
        }
        let fr = |i: usize, what| {
            decode_fr(
                &bytes[PROOF_BYTES + 32 * i..PROOF_BYTES + 32 * (i + 1)],
                what,
            )
        };
        let mut fee = [0u8; 8];
        fee.copy_from_slice(&bytes[TRANSFER_BYTES - 8..]);
        Ok(TransferPublicInputs {
            root: fr(0, "root")?,
            nullifiers: [fr(1, "nullifier[0]")?, fr(2, "nullifier[1]")?],
            commitments: [fr(3, "commitment[0]")?, fr(4, "commitment[1]")?],
            fee: u64::from_le_bytes(fee),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::{Fq, G1Projective};
    use ark_ec::{CurveGroup, PrimeGroup};
    use ark_serialize::CanonicalSerializeWithFlags;
    use proptest::prelude::*;

    fn sample() -> PrivacyTransfer {
        PrivacyTransfer {
            proof: Proof {
                a: (G1Projective::generator() * Fr::from(3u64)).into_affine(),
                b: (G2Projective::generator() * Fr::from(5u64)).into_affine(),
                c: (G1Projective::generator() * Fr::from(7u64)).into_affine(),
            },
            public: TransferPublicInputs {
                root: Fr::from(1u64),
                nullifiers: [Fr::from(2u64), Fr::from(3u64)],
                commitments: [Fr::from(4u64), Fr::from(5u64)],
                fee: 6,
            },
        }
    }

    #[test]
    fn public_decoding_matches_full_decoding_and_ignores_the_proof_bytes() {
        let t = sample();
        let mut bytes = t.encode();
        assert_eq!(
            PrivacyTransfer::decode_public(&bytes).expect("public"),
            PrivacyTransfer::decode(&bytes).expect("full").public
        );
        // Proof bytes are not looked at (the pipeline verified the proof already).
        bytes[..PROOF_BYTES].fill(0xff);
        assert!(PrivacyTransfer::decode(&bytes).is_err());
        assert_eq!(
            PrivacyTransfer::decode_public(&bytes).expect("public"),
            t.public
        );
        // Length and non-canonical field elements are still refused.
        assert!(PrivacyTransfer::decode_public(&bytes[1..]).is_err());
        bytes[PROOF_BYTES..PROOF_BYTES + 32].fill(0xff);
        assert!(PrivacyTransfer::decode_public(&bytes).is_err());
    }

    #[test]
    fn round_trip_and_g2_outside_subgroup() {
        let t = sample();
        assert_eq!(PrivacyTransfer::decode(&t.encode()).unwrap(), t);
        // A G2 point on the curve but outside the prime-order subgroup: search x until one
        // decompresses without validation and fails the subgroup check.
        let mut found = false;
        for i in 1..200u64 {
            let x = ark_bn254::Fq2::new(ark_bn254::Fq::from(i), ark_bn254::Fq::from(1u64));
            if let Some(p) = G2Affine::get_point_from_x_unchecked(x, false) {
                if !p.is_in_correct_subgroup_assuming_on_curve() {
                    let mut bytes = t.encode();
                    let mut w = &mut bytes[32..96];
                    p.serialize_compressed(&mut w).unwrap();
                    let err = PrivacyTransfer::decode(&bytes).unwrap_err().to_string();
                    assert!(err.contains("proof.B") && err.contains("subgroup"), "{err}");
                    found = true;
                    break;
                }
            }
        }
        assert!(found);
    }

    /// The fast G2 subgroup test agrees with ark-bn254's on points in G2 and on curve
    /// points outside it (a random x usually gives one: the cofactor is large).
    #[test]
    fn g2_subgroup_test_matches_ark() {
        use ark_std::UniformRand;
        let mut rng = ark_std::test_rng();
        let (mut inside, mut outside) = (0, 0);
        for i in 0..400u64 {
            let p = if i % 4 == 0 {
                (G2Projective::generator() * Fr::rand(&mut rng)).into_affine()
            } else {
                let x = Fq2::new(Fq::rand(&mut rng), Fq::rand(&mut rng));
                match G2Affine::get_point_from_x_unchecked(x, i % 2 == 0) {
                    Some(p) => p,
                    None => continue,
                }
            };
            let want = p.is_in_correct_subgroup_assuming_on_curve();
            assert_eq!(g2_in_subgroup(&p), want, "point {i}");
            if want {
                inside += 1;
            } else {
                outside += 1;
            }
        }
        assert!(
            inside >= 100 && outside >= 100,
            "{inside} in, {outside} out"
        );
        // psi(P) = [p]P on G2, i.e. [6u^2]P: ties the constants to ark-bn254's.
        let g = G2Projective::generator() * Fr::from(12345u64);
        let six_u2 = Fr::from(6u64) * Fr::from(BN_U) * Fr::from(BN_U);
        assert_eq!(psi(&g), g * six_u2);
    }

    /// The GPU route's decoding (parse, roots from elsewhere, finish), with arkworks'
    /// roots: `Some` exactly where checked decoding succeeds. The roots passed are the
    /// "wrong" sign on purpose (finish must pick by the flag).
    fn split_decode(bytes: &[u8]) -> Option<PrivacyTransfer> {
        use ark_ec::short_weierstrass::Affine;
        let t = CompressedTransfer::parse(bytes).ok()?;
        let a = Affine::<ark_bn254::g1::Config>::get_ys_from_x_unchecked(t.a.0)?;
        let c = Affine::<ark_bn254::g1::Config>::get_ys_from_x_unchecked(t.c.0)?;
        let b = G2Affine::get_point_from_x_unchecked(t.b.0, true)?;
        if !b.is_in_correct_subgroup_assuming_on_curve() {
            return None;
        }
        Some(t.finish(
            if t.a.1 { a.1 } else { a.0 },
            -b.y,
            if t.c.1 { c.1 } else { c.0 },
        ))
    }

    #[test]
    fn split_decoding_agrees_on_every_flag() {
        let t = sample();
        assert_eq!(split_decode(&t.encode()), Some(t.clone()));
        // each point's two flag bits, all four combinations (infinity, both: invalid)
        for at in [31, 95, 127] {
            for flags in 0..4u8 {
                let mut bytes = t.encode();
                bytes[at] = (bytes[at] & 0x3f) | (flags << 6);
                assert_eq!(
                    split_decode(&bytes),
                    PrivacyTransfer::decode(&bytes).ok(),
                    "byte {at} flags {flags}"
                );
            }
        }
        // B outside G2, and a G2 x without a root
        let mut bytes = t.encode();
        for i in 1..200u64 {
            let x = Fq2::new(Fq::from(i), Fq::from(1u64));
            let mut w = &mut bytes[32..96];
            match G2Affine::get_point_from_x_unchecked(x, false) {
                Some(p) => p.serialize_compressed(&mut w).unwrap(),
                None => x
                    .serialize_with_flags(&mut w, SWFlags::YIsPositive)
                    .unwrap(),
            }
            assert_eq!(
                split_decode(&bytes),
                PrivacyTransfer::decode(&bytes).ok(),
                "x = {i} + u"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The split decoding accepts exactly what checked decoding accepts, with the
        /// same points.
        #[test]
        fn split_decoding_matches_checked_decoding(bytes in proptest::collection::vec(any::<u8>(), TRANSFER_BYTES..=TRANSFER_BYTES), flip in 0usize..TRANSFER_BYTES, bit in 0u8..8) {
            prop_assert_eq!(split_decode(&bytes), PrivacyTransfer::decode(&bytes).ok());
            let mut mutated = sample().encode();
            mutated[flip] ^= 1 << bit;
            prop_assert_eq!(split_decode(&mutated), PrivacyTransfer::decode(&mutated).ok());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Decoding arbitrary bytes never panics, and whatever decodes re-encodes to the same
        /// bytes (the encoding is canonical).
        #[test]
        fn decode_is_total_and_canonical(bytes in proptest::collection::vec(any::<u8>(), TRANSFER_BYTES..=TRANSFER_BYTES), flip in 0usize..TRANSFER_BYTES) {
            if let Ok(t) = PrivacyTransfer::decode(&bytes) {
                prop_assert_eq!(t.encode(), bytes);
            }
            let mut mutated = sample().encode();
            mutated[flip] ^= 0x01;
            if let Ok(t) = PrivacyTransfer::decode(&mutated) {
                prop_assert_eq!(t.encode(), mutated);
            }
        }
    }
}
