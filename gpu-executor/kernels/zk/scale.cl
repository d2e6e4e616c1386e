// Scaling of BN254 G1 points by GLV weights, one point per thread: out[i] = k1 P + k2 phi(P)
// for P = points[i], (k1, k2) = ks[i] (two 64-bit integers), phi(x, y) = (beta x, y) the
// curve's endomorphism. This is the random scaling of each proof's A in a Groth16 batch
// check (rho = k1 + lambda k2). Needs field.cl for fq and curve.cl instantiated for G1
// (g1_*, XYZZ coordinates over fq).
//
// Joint double-and-add from the top bit of k1 | k2 (at most 64 doublings); the result stays
// in XYZZ coordinates (ZZ = 0: the identity) and the host makes it affine with one batch
// inversion and checks that every point is on the curve.
//
// points: n affine points, 16 limbs each (x, y; Montgomery form); (0, 0) is the identity.
// ks:     n weights, 4 limbs each (k1 low, k1 high, k2 low, k2 high).
// consts: beta (8 limbs, Montgomery form).
// out:    n XYZZ points, 32 limbs each.
ZK_KERNEL zk_g1_scale(const ZK_GLOBAL zk_u32 *points, const ZK_GLOBAL zk_u32 *ks,
                      const ZK_GLOBAL zk_u32 *consts, ZK_GLOBAL zk_u32 *out, zk_u32 n) {
    const zk_u64 i = ZK_GID;
    if (i >= (zk_u64)n) return;
    g1_affine_t p = g1_load_affine(points + ZK_AFF_N * i);
    g1_xyzz_t acc = g1_identity();
    if (!g1_affine_is_identity(p)) {
        const ZK_GLOBAL zk_u32 *k = ks + 4u * i;
        const zk_u64 k1 = ((zk_u64)k[1] << 32) | (zk_u64)k[0];
        const zk_u64 k2 = ((zk_u64)k[3] << 32) | (zk_u64)k[2];
        const fq_t phi_x = fq_mul(p.x, fq_load(consts));
        int top = 63;
        while (top >= 0 && (((k1 | k2) >> top) & 1u) == 0u) top--;
        for (int bit = top; bit >= 0; bit--) {
            acc = g1_dbl(acc);
            if ((k1 >> bit) & 1u) acc = g1_add_affine(acc, p.x, p.y);
            if ((k2 >> bit) & 1u) acc = g1_add_affine(acc, phi_x, p.y);
        }
    }
    g1_store_xyzz(out + ZK_XYZZ_N * i, acc);
}
