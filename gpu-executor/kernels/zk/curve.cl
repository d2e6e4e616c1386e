// BN254 G1 (y^2 = x^3 + 3 over Fq) point arithmetic in XYZZ coordinates
// (x = X/ZZ, y = Y/ZZZ, ZZ^3 = ZZZ^2; the identity has ZZ = 0). Formulas from the
// Explicit-Formulas Database: add-2008-s, madd-2008-s, dbl-2008-s-1, mdbl-2008-s-1.
// Affine points travel as 16 limbs (x then y, Montgomery form); (0, 0), which is not on
// the curve, encodes the identity.

typedef struct { fq_t x; fq_t y; } g1_affine_t;
typedef struct { fq_t x; fq_t y; fq_t zz; fq_t zzz; } g1_xyzz_t;

ZK_INLINE g1_xyzz_t g1_identity(void) {
    g1_xyzz_t r;
    r.x = fq_one(); r.y = fq_one(); r.zz = fq_zero(); r.zzz = fq_zero();
    return r;
}

ZK_INLINE int g1_is_identity(g1_xyzz_t p) { return fq_is_zero(p.zz); }

ZK_INLINE int g1_affine_is_identity(g1_affine_t p) { return fq_is_zero(p.x) && fq_is_zero(p.y); }

ZK_INLINE g1_affine_t g1_load_affine(const ZK_GLOBAL zk_u32 *p) {
    g1_affine_t r;
    r.x = fq_load(p);
    r.y = fq_load(p + 8);
    return r;
}

ZK_INLINE g1_xyzz_t g1_load_xyzz(const ZK_GLOBAL zk_u32 *p) {
    g1_xyzz_t r;
    r.x = fq_load(p); r.y = fq_load(p + 8); r.zz = fq_load(p + 16); r.zzz = fq_load(p + 24);
    return r;
}

ZK_INLINE void g1_store_xyzz(ZK_GLOBAL zk_u32 *p, g1_xyzz_t a) {
    fq_store(p, a.x); fq_store(p + 8, a.y); fq_store(p + 16, a.zz); fq_store(p + 24, a.zzz);
}

// 2 * (x, y) for an affine point (mdbl-2008-s-1, a = 0).
ZK_NOINLINE g1_xyzz_t g1_dbl_affine(fq_t x, fq_t y) {
    fq_t u = fq_dbl(y);
    fq_t v = fq_sqr(u);
    fq_t w = fq_mul(u, v);
    fq_t s = fq_mul(x, v);
    fq_t xx = fq_sqr(x);
    fq_t m = fq_add(fq_dbl(xx), xx);
    g1_xyzz_t r;
    r.x = fq_sub(fq_sqr(m), fq_dbl(s));
    r.y = fq_sub(fq_mul(m, fq_sub(s, r.x)), fq_mul(w, y));
    r.zz = v;
    r.zzz = w;
    return r;
}

// 2 * p (dbl-2008-s-1, a = 0).
ZK_NOINLINE g1_xyzz_t g1_dbl(g1_xyzz_t p) {
    if (g1_is_identity(p)) return p;
    fq_t u = fq_dbl(p.y);
    fq_t v = fq_sqr(u);
    fq_t w = fq_mul(u, v);
    fq_t s = fq_mul(p.x, v);
    fq_t xx = fq_sqr(p.x);
    fq_t m = fq_add(fq_dbl(xx), xx);
    g1_xyzz_t r;
    r.x = fq_sub(fq_sqr(m), fq_dbl(s));
    r.y = fq_sub(fq_mul(m, fq_sub(s, r.x)), fq_mul(w, p.y));
    r.zz = fq_mul(v, p.zz);
    r.zzz = fq_mul(w, p.zzz);
    return r;
}

// p + (x2, y2) with (x2, y2) affine and not the identity (madd-2008-s). Inlined: its one
// caller is the bucket accumulation loop.
ZK_INLINE g1_xyzz_t g1_add_affine(g1_xyzz_t p, fq_t x2, fq_t y2) {
    if (g1_is_identity(p)) {
        g1_xyzz_t r;
        r.x = x2; r.y = y2; r.zz = fq_one(); r.zzz = fq_one();
        return r;
    }
    fq_t u2 = fq_mul(x2, p.zz);
    fq_t s2 = fq_mul(y2, p.zzz);
    fq_t pp_ = fq_sub(u2, p.x);
    fq_t rr = fq_sub(s2, p.y);
    if (fq_is_zero(pp_)) {
        if (fq_is_zero(rr)) return g1_dbl_affine(x2, y2);
        return g1_identity();
    }
    fq_t pp = fq_sqr(pp_);
    fq_t ppp = fq_mul(pp_, pp);
    fq_t q = fq_mul(p.x, pp);
    g1_xyzz_t r;
    r.x = fq_sub(fq_sub(fq_sqr(rr), ppp), fq_dbl(q));
    r.y = fq_sub(fq_mul(rr, fq_sub(q, r.x)), fq_mul(p.y, ppp));
    r.zz = fq_mul(p.zz, pp);
    r.zzz = fq_mul(p.zzz, ppp);
    return r;
}

// p + q (add-2008-s).
ZK_NOINLINE g1_xyzz_t g1_add(g1_xyzz_t p, g1_xyzz_t q) {
    if (g1_is_identity(p)) return q;
    if (g1_is_identity(q)) return p;
    fq_t u1 = fq_mul(p.x, q.zz);
    fq_t u2 = fq_mul(q.x, p.zz);
    fq_t s1 = fq_mul(p.y, q.zzz);
    fq_t s2 = fq_mul(q.y, p.zzz);
    fq_t pp_ = fq_sub(u2, u1);
    fq_t rr = fq_sub(s2, s1);
    if (fq_is_zero(pp_)) {
        if (fq_is_zero(rr)) return g1_dbl(p);
        return g1_identity();
    }
    fq_t pp = fq_sqr(pp_);
    fq_t ppp = fq_mul(pp_, pp);
    fq_t qq = fq_mul(u1, pp);
    g1_xyzz_t r;
    r.x = fq_sub(fq_sub(fq_sqr(rr), ppp), fq_dbl(qq));
    r.y = fq_sub(fq_mul(rr, fq_sub(qq, r.x)), fq_mul(s1, ppp));
    r.zz = fq_mul(fq_mul(p.zz, q.zz), pp);
    r.zzz = fq_mul(fq_mul(p.zzz, q.zzz), ppp);
    return r;
}

// k * p for a small k (double-and-add from the top bit).
ZK_NOINLINE g1_xyzz_t g1_mul_small(g1_xyzz_t p, zk_u32 k) {
    if (k == 0u || g1_is_identity(p)) return g1_identity();
    int top = 31;
    while (((k >> top) & 1u) == 0u) top--;
    g1_xyzz_t r = p;
    for (int bit = top - 1; bit >= 0; bit--) {
        r = g1_dbl(r);
        if ((k >> bit) & 1u) r = g1_add(r, p);
    }
    return r;
}

// 2^k * p.
ZK_NOINLINE g1_xyzz_t g1_dbl_n(g1_xyzz_t p, zk_u32 k) {
    for (zk_u32 i = 0; i < k; i++) p = g1_dbl(p);
    return p;
}
