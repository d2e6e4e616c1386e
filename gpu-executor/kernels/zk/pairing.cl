// BN254 optimal-ate Miller loops, one (P, Q) pair per thread (needs field.cl for fq and
// fq2.cl). The output is exactly ark-bn254's `Bn254::multi_miller_loop([P], [Q])`: the same
// line functions from the same homogeneous-projective G2 steps (ark-ec's `G2Prepared`:
// doubling with 1/2 and the twist's b, mixed addition, then the two Frobenius lines with
// Q1 = pi(Q), Q2 = -pi^2(Q)), each line multiplied in as a sparse (0, 3, 4) element, D-type
// twist. Field elements are canonical, so equal mathematical values are equal bits and the
// host compares the result with arkworks bit for bit.
//
// Towers (arkworks' layout): Fq6 = Fq2[v] / (v^3 - xi), xi = 9 + u; Fq12 = Fq6[w] / (w^2 - v).
// An Fq12 element travels as 96 limbs: c0.c0 .. c0.c2, c1.c0 .. c1.c2, each an fq2.
//
// The host passes the constants it reads from arkworks in one buffer `consts` (Montgomery
// limbs): [0] 1/2 in Fq, [1..2] the twist's b (fq2), [3..4] TWIST_MUL_BY_Q_X, [5..6]
// TWIST_MUL_BY_Q_Y, 7 fq (56 limbs) in all; and the loop count 6x + 2 in signed binary as two
// masks over its ZK_ATE_DIGITS (65) digits, defined before this file: ZK_ATE_NONZERO_{LO,HI}
// (bit i set when digit i is nonzero) and ZK_ATE_NEG_{LO,HI} (digit i is -1).

typedef struct { fq2_t c0; fq2_t c1; fq2_t c2; } fq6_t;
typedef struct { fq6_t c0; fq6_t c1; } fq12_t;
typedef struct { fq2_t x; fq2_t y; fq2_t z; } zk_g2_hom_t;
// One line: (c0, c1, c2) as in ark-ec's EllCoeff.
typedef struct { fq2_t c0; fq2_t c1; fq2_t c2; } zk_line_t;

ZK_INLINE fq2_t fq2_mul_fq(fq2_t a, fq_t b) {
    fq2_t r;
    r.c0 = fq_mul(a.c0, b);
    r.c1 = fq_mul(a.c1, b);
    return r;
}

// a * (9 + u) = (9 a0 - a1) + (9 a1 + a0) u
ZK_INLINE fq2_t fq2_mul_xi(fq2_t a) {
    fq_t t0 = fq_dbl(fq_dbl(fq_dbl(a.c0)));
    fq_t t1 = fq_dbl(fq_dbl(fq_dbl(a.c1)));
    fq2_t r;
    r.c0 = fq_sub(fq_add(t0, a.c0), a.c1);
    r.c1 = fq_add(fq_add(t1, a.c1), a.c0);
    return r;
}

ZK_INLINE fq6_t fq6_add(fq6_t a, fq6_t b) {
    fq6_t r;
    r.c0 = fq2_add(a.c0, b.c0); r.c1 = fq2_add(a.c1, b.c1); r.c2 = fq2_add(a.c2, b.c2);
    return r;
}

ZK_INLINE fq6_t fq6_sub(fq6_t a, fq6_t b) {
    fq6_t r;
    r.c0 = fq2_sub(a.c0, b.c0); r.c1 = fq2_sub(a.c1, b.c1); r.c2 = fq2_sub(a.c2, b.c2);
    return r;
}

// a * v = (xi a2, a0, a1)
ZK_INLINE fq6_t fq6_mul_v(fq6_t a) {
    fq6_t r;
    r.c0 = fq2_mul_xi(a.c2); r.c1 = a.c0; r.c2 = a.c1;
    return r;
}

// Karatsuba over the cubic extension: 6 Fq2 products.
ZK_NOINLINE fq6_t fq6_mul(fq6_t a, fq6_t b) {
    fq2_t v0 = fq2_mul(a.c0, b.c0);
    fq2_t v1 = fq2_mul(a.c1, b.c1);
    fq2_t v2 = fq2_mul(a.c2, b.c2);
    fq2_t t0 = fq2_sub(fq2_sub(fq2_mul(fq2_add(a.c1, a.c2), fq2_add(b.c1, b.c2)), v1), v2);
    fq2_t t1 = fq2_sub(fq2_sub(fq2_mul(fq2_add(a.c0, a.c1), fq2_add(b.c0, b.c1)), v0), v1);
    fq2_t t2 = fq2_sub(fq2_sub(fq2_mul(fq2_add(a.c0, a.c2), fq2_add(b.c0, b.c2)), v0), v2);
    fq6_t r;
    r.c0 = fq2_add(fq2_mul_xi(t0), v0);
    r.c1 = fq2_add(t1, fq2_mul_xi(v2));
    r.c2 = fq2_add(t2, v1);
    return r;
}

// a * (b0 + b1 v): 5 Fq2 products.
ZK_NOINLINE fq6_t fq6_mul_by_01(fq6_t a, fq2_t b0, fq2_t b1) {
    fq2_t v0 = fq2_mul(a.c0, b0);
    fq2_t v1 = fq2_mul(a.c1, b1);
    fq6_t r;
    r.c0 = fq2_add(fq2_mul_xi(fq2_sub(fq2_mul(fq2_add(a.c1, a.c2), b1), v1)), v0);
    r.c1 = fq2_sub(fq2_sub(fq2_mul(fq2_add(a.c0, a.c1), fq2_add(b0, b1)), v0), v1);
    r.c2 = fq2_add(fq2_sub(fq2_mul(fq2_add(a.c0, a.c2), b0), v0), v1);
    return r;
}

// (c0 + c1 w)^2 = (c0^2 + v c1^2) + 2 c0 c1 w, as (c0 - c1)(c0 - v c1) + (1 + v) c0 c1.
ZK_NOINLINE fq12_t fq12_sqr(fq12_t a) {
    fq6_t ab = fq6_mul(a.c0, a.c1);
    fq6_t t = fq6_mul(fq6_sub(a.c0, a.c1), fq6_sub(a.c0, fq6_mul_v(a.c1)));
    fq12_t r;
    r.c0 = fq6_add(fq6_add(t, ab), fq6_mul_v(ab));
    r.c1 = fq6_add(ab, ab);
    return r;
}

// f * ((d0, 0, 0) + (d3, d4, 0) w): the sparse product of a D-twist line.
ZK_NOINLINE fq12_t fq12_mul_by_034(fq12_t f, fq2_t d0, fq2_t d3, fq2_t d4) {
    fq6_t a;
    a.c0 = fq2_mul(f.c0.c0, d0);
    a.c1 = fq2_mul(f.c0.c1, d0);
    a.c2 = fq2_mul(f.c0.c2, d0);
    fq6_t b = fq6_mul_by_01(f.c1, d3, d4);
    fq6_t e = fq6_mul_by_01(fq6_add(f.c0, f.c1), fq2_add(d0, d3), d4);
    fq12_t r;
    r.c1 = fq6_sub(e, fq6_add(a, b));
    r.c0 = fq6_add(fq6_mul_v(b), a);
    return r;
}

// Doubling step in homogeneous projective coordinates; returns the line (ark-ec's
// `G2HomProjective::double_in_place`, D twist: (-h, 3 x^2, e - y^2)).
ZK_NOINLINE zk_line_t zk_g2_double_step(zk_g2_hom_t *r, fq_t two_inv, fq2_t twist_b) {
    fq2_t a = fq2_mul_fq(fq2_mul(r->x, r->y), two_inv);
    fq2_t b = fq2_sqr(r->y);
    fq2_t c = fq2_sqr(r->z);
    fq2_t e = fq2_mul(twist_b, fq2_add(fq2_dbl(c), c));
    fq2_t f = fq2_add(fq2_dbl(e), e);
    fq2_t g = fq2_mul_fq(fq2_add(b, f), two_inv);
    fq2_t h = fq2_sub(fq2_sqr(fq2_add(r->y, r->z)), fq2_add(b, c));
    fq2_t i = fq2_sub(e, b);
    fq2_t j = fq2_sqr(r->x);
    fq2_t e2 = fq2_sqr(e);
    r->x = fq2_mul(a, fq2_sub(b, f));
    r->y = fq2_sub(fq2_sqr(g), fq2_add(fq2_dbl(e2), e2));
    r->z = fq2_mul(b, h);
    zk_line_t l;
    l.c0 = fq2_neg(h);
    l.c1 = fq2_add(fq2_dbl(j), j);
    l.c2 = i;
    return l;
}

// Mixed addition step R += (qx, qy); returns the line (ark-ec's `add_in_place`, D twist:
// (lambda, -theta, j)).
ZK_NOINLINE zk_line_t zk_g2_add_step(zk_g2_hom_t *r, fq2_t qx, fq2_t qy) {
    fq2_t theta = fq2_sub(r->y, fq2_mul(qy, r->z));
    fq2_t lambda = fq2_sub(r->x, fq2_mul(qx, r->z));
    fq2_t c = fq2_sqr(theta);
    fq2_t d = fq2_sqr(lambda);
    fq2_t e = fq2_mul(lambda, d);
    fq2_t f = fq2_mul(r->z, c);
    fq2_t g = fq2_mul(r->x, d);
    fq2_t h = fq2_sub(fq2_add(e, f), fq2_dbl(g));
    r->x = fq2_mul(lambda, h);
    r->y = fq2_sub(fq2_mul(theta, fq2_sub(g, h)), fq2_mul(e, r->y));
    r->z = fq2_mul(r->z, e);
    zk_line_t l;
    l.c0 = lambda;
    l.c1 = fq2_neg(theta);
    l.c2 = fq2_sub(fq2_mul(theta, qx), fq2_mul(lambda, qy));
    return l;
}

// f * line(P): (c0 py, c1 px, c2) as the sparse (0, 3, 4) element.
ZK_INLINE fq12_t zk_ell(fq12_t f, zk_line_t l, fq_t px, fq_t py) {
    return fq12_mul_by_034(f, fq2_mul_fq(l.c0, py), fq2_mul_fq(l.c1, px), l.c2);
}

ZK_INLINE int zk_ate_digit(zk_u32 i, int *neg) {
    zk_u64 nz = ((zk_u64)ZK_ATE_NONZERO_HI << 32) | (zk_u64)ZK_ATE_NONZERO_LO;
    zk_u64 ng = ((zk_u64)ZK_ATE_NEG_HI << 32) | (zk_u64)ZK_ATE_NEG_LO;
    // the top digit is the loop's implicit start (R = Q); the loop reads digits below it
    *neg = (int)((ng >> i) & 1u);
    return (int)((nz >> i) & 1u);
}

// The loop's two last lines: additions of Q1 = pi(Q) and Q2 = -pi^2(Q) (BN254's x is
// positive: R keeps its sign), with the Frobenius twist factors from `consts`.
ZK_INLINE void zk_frobenius_lines(zk_g2_hom_t *r, fq2_t qx, fq2_t qy,
                                  const ZK_GLOBAL zk_u32 *consts, zk_line_t *l1,
                                  zk_line_t *l2) {
    fq2_t frob_x = fq2_load(consts + 24u);
    fq2_t frob_y = fq2_load(consts + 40u);
    fq2_t q1x = fq2_mul(fq2_conj(qx), frob_x);
    fq2_t q1y = fq2_mul(fq2_conj(qy), frob_y);
    fq2_t q2x = fq2_mul(fq2_conj(q1x), frob_x);
    fq2_t q2y = fq2_neg(fq2_mul(fq2_conj(q1y), frob_y));
    *l1 = zk_g2_add_step(r, q1x, q1y);
    *l2 = zk_g2_add_step(r, q2x, q2y);
}

ZK_INLINE fq12_t fq12_one(void) {
    fq12_t f;
    f.c0.c0 = fq2_one(); f.c0.c1 = fq2_zero(); f.c0.c2 = fq2_zero();
    f.c1.c0 = fq2_zero(); f.c1.c1 = fq2_zero(); f.c1.c2 = fq2_zero();
    return f;
}

ZK_INLINE void zk_fq12_store(ZK_GLOBAL zk_u32 *p, fq12_t f) {
    fq2_store(p, f.c0.c0);
    fq2_store(p + 16, f.c0.c1);
    fq2_store(p + 32, f.c0.c2);
    fq2_store(p + 48, f.c1.c0);
    fq2_store(p + 64, f.c1.c1);
    fq2_store(p + 80, f.c1.c2);
}

// out[i] = MillerLoop(g1[i], g2[i]); g1 points are 16 limbs (x, y), g2 points 32 limbs
// (x.c0, x.c1, y.c0, y.c1), affine, Montgomery form. The host never passes the identity.
ZK_KERNEL zk_miller_loop(const ZK_GLOBAL zk_u32 *g1, const ZK_GLOBAL zk_u32 *g2,
                         const ZK_GLOBAL zk_u32 *consts, ZK_GLOBAL zk_u32 *out, zk_u32 n) {
    zk_u64 gid = ZK_GID;
    if (gid >= (zk_u64)n) return;
    fq_t px = fq_load(g1 + gid * 16u);
    fq_t py = fq_load(g1 + gid * 16u + 8u);
    fq2_t qx = fq2_load(g2 + gid * 32u);
    fq2_t qy = fq2_load(g2 + gid * 32u + 16u);
    fq_t two_inv = fq_load(consts);
    fq2_t twist_b = fq2_load(consts + 8u);
    fq12_t f = fq12_one();
    zk_g2_hom_t r;
    r.x = qx; r.y = qy; r.z = fq2_one();
    fq2_t nqy = fq2_neg(qy);
    for (zk_u32 k = ZK_ATE_DIGITS - 1u; k >= 1u; k--) {
        if (k != ZK_ATE_DIGITS - 1u) f = fq12_sqr(f);
        f = zk_ell(f, zk_g2_double_step(&r, two_inv, twist_b), px, py);
        int neg;
        if (zk_ate_digit(k - 1u, &neg)) {
            f = zk_ell(f, zk_g2_add_step(&r, qx, neg ? nqy : qy), px, py);
        }
    }
    zk_line_t l1, l2;
    zk_frobenius_lines(&r, qx, qy, consts, &l1, &l2);
    f = zk_ell(f, l1, px, py);
    f = zk_ell(f, l2, px, py);
    zk_fq12_store(out + gid * 96u, f);
}

// ---- The product of many Miller loops, with several threads per pair ----
//
// One pair per thread is a chain of ~9,000 dependent Fq products: a few hundred pairs leave
// the device nearly idle and the call takes its full latency. The product of the loops is
// split instead: `zk_miller_lines` runs each pair's G2 steps (about a quarter of the work)
// and stores its lines; then `segs` threads per pair each run a consecutive range of the
// loop's iterations from f = 1 over the stored lines (`zk_miller_segments`), and
// `zk_fq12_mul_pairs` multiplies each segment's results over the pairs. The host raises the
// segment products to the powers of two that the squarings of the later iterations would
// have applied and multiplies them: exactly the product of the pairs' Miller loops (field
// products are exact; the squarings are only regrouped).

// (a0 + a1 w)(b0 + b1 w) = (a0 b0 + v a1 b1) + ((a0 + a1)(b0 + b1) - a0 b0 - a1 b1) w
ZK_NOINLINE fq12_t fq12_mul(fq12_t a, fq12_t b) {
    fq6_t aa = fq6_mul(a.c0, b.c0);
    fq6_t bb = fq6_mul(a.c1, b.c1);
    fq6_t cc = fq6_mul(fq6_add(a.c0, a.c1), fq6_add(b.c0, b.c1));
    fq12_t r;
    r.c0 = fq6_add(aa, fq6_mul_v(bb));
    r.c1 = fq6_sub(cc, fq6_add(aa, bb));
    return r;
}

ZK_INLINE fq12_t zk_fq12_load(const ZK_GLOBAL zk_u32 *p) {
    fq12_t f;
    f.c0.c0 = fq2_load(p); f.c0.c1 = fq2_load(p + 16); f.c0.c2 = fq2_load(p + 32);
    f.c1.c0 = fq2_load(p + 48); f.c1.c1 = fq2_load(p + 64); f.c1.c2 = fq2_load(p + 80);
    return f;
}

// A line travels as 48 limbs: c0, c1, c2 (fq2 each).
ZK_INLINE void zk_line_store(ZK_GLOBAL zk_u32 *p, zk_line_t l) {
    fq2_store(p, l.c0);
    fq2_store(p + 16, l.c1);
    fq2_store(p + 32, l.c2);
}

ZK_INLINE zk_line_t zk_line_load(const ZK_GLOBAL zk_u32 *p) {
    zk_line_t l;
    l.c0 = fq2_load(p); l.c1 = fq2_load(p + 16); l.c2 = fq2_load(p + 32);
    return l;
}

// Line `l` of pair `i` of `n`: line-major, so neighbouring threads touch neighbouring lines.
#define ZK_LINE_AT(lines, l, i, n) ((lines) + ((zk_u64)(l) * (zk_u64)(n) + (zk_u64)(i)) * 48u)

// The lines of Q = g2[i] in the order the Miller loop uses them: per iteration its doubling
// line, then its addition line where the loop count's digit is nonzero; then the two
// Frobenius lines. Exactly the G2 steps of zk_miller_loop.
ZK_KERNEL zk_miller_lines(const ZK_GLOBAL zk_u32 *g2, const ZK_GLOBAL zk_u32 *consts,
                          ZK_GLOBAL zk_u32 *lines, zk_u32 n) {
    zk_u64 gid = ZK_GID;
    if (gid >= (zk_u64)n) return;
    fq2_t qx = fq2_load(g2 + gid * 32u);
    fq2_t qy = fq2_load(g2 + gid * 32u + 16u);
    fq_t two_inv = fq_load(consts);
    fq2_t twist_b = fq2_load(consts + 8u);
    zk_g2_hom_t r;
    r.x = qx; r.y = qy; r.z = fq2_one();
    fq2_t nqy = fq2_neg(qy);
    zk_u32 l = 0u;
    for (zk_u32 k = ZK_ATE_DIGITS - 1u; k >= 1u; k--) {
        zk_line_store(ZK_LINE_AT(lines, l, gid, n), zk_g2_double_step(&r, two_inv, twist_b));
        l++;
        int neg;
        if (zk_ate_digit(k - 1u, &neg)) {
            zk_line_store(ZK_LINE_AT(lines, l, gid, n), zk_g2_add_step(&r, qx, neg ? nqy : qy));
            l++;
        }
    }
    zk_line_t l1, l2;
    zk_frobenius_lines(&r, qx, qy, consts, &l1, &l2);
    zk_line_store(ZK_LINE_AT(lines, l, gid, n), l1);
    zk_line_store(ZK_LINE_AT(lines, l + 1u, gid, n), l2);
}

// Thread s * n + i: segment s of `segs` of pair i's loop, the iterations t in
// [s * I / segs, (s + 1) * I / segs) (I = ZK_ATE_DIGITS - 1, t = 0 the first), from f = 1
// with no squaring before its first iteration; the last segment also takes the two
// Frobenius lines. out[s * n + i] = that segment's value.
ZK_KERNEL zk_miller_segments(const ZK_GLOBAL zk_u32 *g1, const ZK_GLOBAL zk_u32 *lines,
                             ZK_GLOBAL zk_u32 *out, zk_u32 n, zk_u32 segs) {
    zk_u64 gid = ZK_GID;
    if (gid >= (zk_u64)n * (zk_u64)segs) return;
    zk_u32 i = (zk_u32)(gid % (zk_u64)n);
    zk_u32 s = (zk_u32)(gid / (zk_u64)n);
    const zk_u32 iters = ZK_ATE_DIGITS - 1u;
    zk_u32 t0 = s * iters / segs;
    zk_u32 t1 = (s + 1u) * iters / segs;
    fq_t px = fq_load(g1 + (zk_u64)i * 16u);
    fq_t py = fq_load(g1 + (zk_u64)i * 16u + 8u);
    // The first line of iteration t0: one doubling line per earlier iteration, plus its
    // addition line where the digit is nonzero.
    zk_u32 l = 0u;
    int neg;
    for (zk_u32 t = 0u; t < t0; t++) {
        l += 1u + (zk_u32)zk_ate_digit(ZK_ATE_DIGITS - 2u - t, &neg);
    }
    fq12_t f = fq12_one();
    for (zk_u32 t = t0; t < t1; t++) {
        if (t != t0) f = fq12_sqr(f);
        f = zk_ell(f, zk_line_load(ZK_LINE_AT(lines, l, i, n)), px, py);
        l++;
        if (zk_ate_digit(ZK_ATE_DIGITS - 2u - t, &neg)) {
            f = zk_ell(f, zk_line_load(ZK_LINE_AT(lines, l, i, n)), px, py);
            l++;
        }
    }
    if (s == segs - 1u) {
        f = zk_ell(f, zk_line_load(ZK_LINE_AT(lines, l, i, n)), px, py);
        f = zk_ell(f, zk_line_load(ZK_LINE_AT(lines, l + 1u, i, n)), px, py);
    }
    zk_fq12_store(out + gid * 96u, f);
}

// One halving of `segs` rows of m Fq12 values each (row s at in + s * m * 96):
// out[s * h + j] = in[s * m + 2j] * in[s * m + 2j + 1], or in[s * m + 2j] when 2j + 1 = m,
// for h = ceil(m / 2).
ZK_KERNEL zk_fq12_mul_pairs(const ZK_GLOBAL zk_u32 *in, ZK_GLOBAL zk_u32 *out, zk_u32 m,
                            zk_u32 segs) {
    zk_u64 gid = ZK_GID;
    zk_u32 h = (m + 1u) / 2u;
    if (gid >= (zk_u64)h * (zk_u64)segs) return;
    zk_u32 j = (zk_u32)(gid % (zk_u64)h);
    zk_u32 s = (zk_u32)(gid / (zk_u64)h);
    const ZK_GLOBAL zk_u32 *row = in + (zk_u64)s * (zk_u64)m * 96u;
    fq12_t a = zk_fq12_load(row + (zk_u64)(2u * j) * 96u);
    if (2u * j + 1u < m) a = fq12_mul(a, zk_fq12_load(row + (zk_u64)(2u * j + 1u) * 96u));
    zk_fq12_store(out + gid * 96u, a);
}
