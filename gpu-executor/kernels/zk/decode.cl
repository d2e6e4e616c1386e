// Decompression of BN254 points and the G2 subgroup test, one point per thread: the costly
// part of decoding a Groth16 proof (A and C in G1, B in G2). Needs field.cl for fq, fq2.cl
// and curve.cl instantiated for G2 (g2_*, XYZZ coordinates over fq2).
//
// For each x the kernels return a square root y of x^3 + b (either sign: the host picks the
// sign the encoding's flag asks for, exactly as arkworks does) and whether one exists; for
// G2 also whether (x, y) lies in the prime-order subgroup. The host re-checks every root
// (y^2 == x^3 + b) and decodes on the CPU whatever the device calls invalid, so a wrong root
// or a wrong "no root" cannot change a verdict; only the subgroup bit is taken on trust,
// like the Miller product.
//
// The host passes the constants it reads from arkworks in one buffer `consts` (32-bit
// limbs, field elements in Montgomery form, exponents as plain integers, least significant
// limb first):
#define ZK_DEC_B1 0u      // G1's b (fq)
#define ZK_DEC_B2 8u      // the twist's b (fq2)
#define ZK_DEC_PSI_X 24u  // (9 + u)^((p - 1) / 3) (fq2): psi's x factor
#define ZK_DEC_PSI_Y 40u  // (9 + u)^((p - 1) / 2) (fq2): psi's y factor
#define ZK_DEC_E_SQRT 56u // (p + 1) / 4
#define ZK_DEC_E_A1 64u   // (p - 3) / 4
#define ZK_DEC_E_HALF 72u // (p - 1) / 2
#define ZK_DEC_U 80u      // BN254's u (63 bits, two limbs)
#define ZK_DEC_CONSTS 82u

// a^e, e a 256-bit exponent (8 limbs), square-and-multiply from the top bit: zk_fq_pow and
// zk_fq2_pow.
#define ZK_DEC_POW(F)                                                                      \
    ZK_NOINLINE F##_t zk_##F##_pow(F##_t a, const ZK_GLOBAL zk_u32 *e) {                   \
        F##_t r = F##_one();                                                               \
        for (int i = 255; i >= 0; i--) {                                                   \
            r = F##_sqr(r);                                                                \
            if ((e[i >> 5] >> (i & 31)) & 1u) r = F##_mul(r, a);                           \
        }                                                                                  \
        return r;                                                                          \
    }
ZK_DEC_POW(fq)
ZK_DEC_POW(fq2)
#undef ZK_DEC_POW

// A square root of a in Fq2 when one exists (p = 3 mod 4; Adj and Rodriguez-Henriquez,
// "Square root computation over even extension fields", algorithm 9): a1 = a^((p-3)/4),
// alpha = a1^2 a, x0 = a1 a; x = u x0 if alpha = -1, else (1 + alpha)^((p-1)/2) x0. For a
// non-square the result is some value whose square is not a; the caller tests x^2 == a.
ZK_NOINLINE fq2_t zk_fq2_sqrt(fq2_t a, const ZK_GLOBAL zk_u32 *consts) {
    fq2_t a1 = zk_fq2_pow(a, consts + ZK_DEC_E_A1);
    fq2_t alpha = fq2_mul(fq2_sqr(a1), a);
    fq2_t x0 = fq2_mul(a1, a);
    fq2_t minus_one = fq2_neg(fq2_one());
    if (fq2_eq(alpha, minus_one)) {
        // u (c0 + c1 u) = -c1 + c0 u
        fq2_t r;
        r.c0 = fq_neg(x0.c1);
        r.c1 = x0.c0;
        return r;
    }
    fq2_t b = zk_fq2_pow(fq2_add(fq2_one(), alpha), consts + ZK_DEC_E_HALF);
    return fq2_mul(b, x0);
}

// psi, the untwist-Frobenius-twist endomorphism, on XYZZ coordinates (conjugation is a
// field automorphism, so it commutes with the ZZ and ZZZ scalings).
ZK_INLINE g2_xyzz_t zk_psi(g2_xyzz_t p, fq2_t fx, fq2_t fy) {
    g2_xyzz_t r;
    r.x = fq2_mul(fq2_conj(p.x), fx);
    r.y = fq2_mul(fq2_conj(p.y), fy);
    r.zz = fq2_conj(p.zz);
    r.zzz = fq2_conj(p.zzz);
    return r;
}

ZK_INLINE int zk_g2_eq(g2_xyzz_t a, g2_xyzz_t b) {
    int ia = g2_is_identity(a), ib = g2_is_identity(b);
    if (ia || ib) return ia && ib;
    return fq2_eq(fq2_mul(a.x, b.zz), fq2_mul(b.x, a.zz)) &&
           fq2_eq(fq2_mul(a.y, b.zzz), fq2_mul(b.y, a.zzz));
}

// Whether (x, y), a point of the twist, is in G2: [u+1]P + psi([u]P) + psi^2([u]P) ==
// psi^3([2u]P) (Dai, Lin, Zhao, Zhou, eprint 2022/348, section 5.1), the test
// zk_privacy::transfer::g2_in_subgroup runs on the CPU.
ZK_NOINLINE int zk_g2_in_subgroup(fq2_t x, fq2_t y, const ZK_GLOBAL zk_u32 *consts) {
    const zk_u32 u_lo = consts[ZK_DEC_U], u_hi = consts[ZK_DEC_U + 1u];
    fq2_t fx = fq2_load(consts + ZK_DEC_PSI_X), fy = fq2_load(consts + ZK_DEC_PSI_Y);
    int top = 63;
    while (top > 0 && (((top >= 32 ? u_hi >> (top - 32) : u_lo >> top) & 1u) == 0u)) top--;
    g2_xyzz_t up;
    up.x = x; up.y = y; up.zz = fq2_one(); up.zzz = fq2_one();
    for (int i = top - 1; i >= 0; i--) {
        up = g2_dbl(up);
        if (((i >= 32 ? u_hi >> (i - 32) : u_lo >> i) & 1u) != 0u) up = g2_add_affine(up, x, y);
    }
    g2_xyzz_t psi_up = zk_psi(up, fx, fy);
    g2_xyzz_t lhs = g2_add(g2_add(g2_add_affine(up, x, y), psi_up), zk_psi(psi_up, fx, fy));
    g2_xyzz_t rhs = zk_psi(zk_psi(zk_psi(g2_dbl(up), fx, fy), fx, fy), fx, fy);
    return zk_g2_eq(lhs, rhs);
}

// ys[i] = a square root of xs[i]^3 + b in Fq, found[i] = whether it is one.
ZK_KERNEL zk_g1_roots(const ZK_GLOBAL zk_u32 *xs, const ZK_GLOBAL zk_u32 *consts,
                      ZK_GLOBAL zk_u32 *ys, ZK_GLOBAL zk_u32 *found, zk_u32 n) {
    const zk_u64 i = ZK_GID;
    if (i >= (zk_u64)n) return;
    fq_t x = fq_load(xs + 8u * i);
    fq_t rhs = fq_add(fq_mul(fq_sqr(x), x), fq_load(consts + ZK_DEC_B1));
    fq_t y = zk_fq_pow(rhs, consts + ZK_DEC_E_SQRT);
    fq_store(ys + 8u * i, y);
    found[i] = fq_eq(fq_sqr(y), rhs) ? 1u : 0u;
}

// ys[i] = a square root of xs[i]^3 + b' in Fq2; flags[i] bit 0: it is one, bit 1: the point
// (xs[i], ys[i]) is in G2 (tested only when bit 0 is set).
ZK_KERNEL zk_g2_roots(const ZK_GLOBAL zk_u32 *xs, const ZK_GLOBAL zk_u32 *consts,
                      ZK_GLOBAL zk_u32 *ys, ZK_GLOBAL zk_u32 *flags, zk_u32 n) {
    const zk_u64 i = ZK_GID;
    if (i >= (zk_u64)n) return;
    fq2_t x = fq2_load(xs + 16u * i);
    fq2_t rhs = fq2_add(fq2_mul(fq2_sqr(x), x), fq2_load(consts + ZK_DEC_B2));
    fq2_t y = zk_fq2_sqrt(rhs, consts);
    fq2_store(ys + 16u * i, y);
    zk_u32 f = 0u;
    if (fq2_eq(fq2_sqr(y), rhs)) {
        f = 1u;
        if (zk_g2_in_subgroup(x, y, consts)) f |= 2u;
    }
    flags[i] = f;
}
