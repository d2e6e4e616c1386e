//! The signature kernel sources (`kernels/sig/`) and kernel names. Each program is one
//! string: the portability prelude, the generated constants, the shared field/hash code and
//! the kernels; the backend layer prepends `kernels/common.h`.

use crate::device::KernelSource;

/// Ed25519: `sig_ed25519_verify`.
pub const ED25519: KernelSource = KernelSource::new(
    "sig_ed25519",
    concat!(
        include_str!("../../kernels/sig/sig_prelude.h"),
        include_str!("../../kernels/sig/ed25519_consts.h"),
        include_str!("../../kernels/sig/field256.h"),
        include_str!("../../kernels/sig/sha512.h"),
        include_str!("../../kernels/sig/ed25519.cl"),
    ),
);

/// secp256k1: `sig_secp256k1_verify`, `sig_secp256k1_recover`.
pub const SECP256K1: KernelSource = KernelSource::new(
    "sig_secp256k1",
    concat!(
        include_str!("../../kernels/sig/sig_prelude.h"),
        include_str!("../../kernels/sig/secp256k1_consts.h"),
        include_str!("../../kernels/sig/field256.h"),
        include_str!("../../kernels/sig/keccak256.h"),
        include_str!("../../kernels/sig/secp256k1.cl"),
    ),
);

/// [`ED25519`] with the PTX carry-chain field multiplication (CUDA only).
pub const ED25519_PTX: KernelSource = KernelSource::new(
    "sig_ed25519_ptx",
    concat!(
        "#define SIG_PTX 1\n",
        include_str!("../../kernels/sig/sig_prelude.h"),
        include_str!("../../kernels/sig/ed25519_consts.h"),
        include_str!("../../kernels/sig/field256.h"),
        include_str!("../../kernels/sig/sha512.h"),
        include_str!("../../kernels/sig/ed25519.cl"),
    ),
);

/// [`SECP256K1`] with the PTX carry-chain field multiplication (CUDA only).
pub const SECP256K1_PTX: KernelSource = KernelSource::new(
    "sig_secp256k1_ptx",
    concat!(
        "#define SIG_PTX 1\n",
        include_str!("../../kernels/sig/sig_prelude.h"),
        include_str!("../../kernels/sig/secp256k1_consts.h"),
        include_str!("../../kernels/sig/field256.h"),
        include_str!("../../kernels/sig/keccak256.h"),
        include_str!("../../kernels/sig/secp256k1.cl"),
    ),
);

pub const ED25519_VERIFY: &str = "sig_ed25519_verify";
pub const SECP256K1_VERIFY: &str = "sig_secp256k1_verify";
pub const SECP256K1_RECOVER: &str = "sig_secp256k1_recover";

/// Bytes of one recovery result: ok flag, `x || y`, address.
pub const RECOVER_OUT_BYTES: usize = 1 + 64 + 20;
