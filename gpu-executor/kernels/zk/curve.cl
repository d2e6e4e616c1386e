// Short-Weierstrass point arithmetic with a = 0 (BN254 G1: y^2 = x^3 + 3 over Fq; G2: the
// twist y^2 = x^3 + 3/(9+u) over Fq2) in XYZZ coordinates (x = X/ZZ, y = Y/ZZZ,
// ZZ^3 = ZZZ^2; the identity has ZZ = 0). Formulas from the Explicit-Formulas Database:
// add-2008-s, madd-2008-s, dbl-2008-s-1, mdbl-2008-s-1 (they use a = 0 and never b, so one
// text serves both groups).
//
// This file is a template: the host defines, before including it,
//   ZK_CURVE  the name prefix (g1, g2): types and functions become g1_xyzz_t, g1_add, ...
//   ZK_CF     the coordinate field's prefix (fq, fq2), whose functions it calls
//   ZK_CF_N   32-bit limbs per coordinate (8u, 16u)
// and leaves them defined for msm.cl, which uses the CV()/CF() names and the strides
// ZK_AFF_N / ZK_XYZZ_N below.
// Affine points travel as 2 ZK_CF_N limbs (x then y, Montgomery form); (0, 0), which is on
// neither curve, encodes the identity.

#define CV(x) ZK_CAT2(ZK_CURVE, x)
#define CF(x) ZK_CAT2(ZK_CF, x)
#define ZK_AFF_N (2u * ZK_CF_N)
#define ZK_XYZZ_N (4u * ZK_CF_N)

typedef struct { CF(t) x; CF(t) y; } CV(affine_t);
typedef struct { CF(t) x; CF(t) y; CF(t) zz; CF(t) zzz; } CV(xyzz_t);

ZK_INLINE CV(xyzz_t) CV(identity)(void) {
    CV(xyzz_t) r;
    r.x = CF(one)(); r.y = CF(one)(); r.zz = CF(zero)(); r.zzz = CF(zero)();
    return r;
}

ZK_INLINE int CV(is_identity)(CV(xyzz_t) p) { return CF(is_zero)(p.zz); }

ZK_INLINE int CV(affine_is_identity)(CV(affine_t) p) {
    return CF(is_zero)(p.x) && CF(is_zero)(p.y);
}

ZK_INLINE CV(affine_t) CV(load_affine)(const ZK_GLOBAL zk_u32 *p) {
    CV(affine_t) r;
    r.x = CF(load)(p);
    r.y = CF(load)(p + ZK_CF_N);
    return r;
}

ZK_INLINE CV(xyzz_t) CV(load_xyzz)(const ZK_GLOBAL zk_u32 *p) {
    CV(xyzz_t) r;
    r.x = CF(load)(p);
    r.y = CF(load)(p + ZK_CF_N);
    r.zz = CF(load)(p + 2u * ZK_CF_N);
    r.zzz = CF(load)(p + 3u * ZK_CF_N);
    return r;
}

ZK_INLINE void CV(store_xyzz)(ZK_GLOBAL zk_u32 *p, CV(xyzz_t) a) {
    CF(store)(p, a.x);
    CF(store)(p + ZK_CF_N, a.y);
    CF(store)(p + 2u * ZK_CF_N, a.zz);
    CF(store)(p + 3u * ZK_CF_N, a.zzz);
}

// 2 * (x, y) for an affine point (mdbl-2008-s-1, a = 0).
ZK_NOINLINE CV(xyzz_t) CV(dbl_affine)(CF(t) x, CF(t) y) {
    CF(t) u = CF(dbl)(y);
    CF(t) v = CF(sqr)(u);
    CF(t) w = CF(mul)(u, v);
    CF(t) s = CF(mul)(x, v);
    CF(t) xx = CF(sqr)(x);
    CF(t) m = CF(add)(CF(dbl)(xx), xx);
    CV(xyzz_t) r;
    r.x = CF(sub)(CF(sqr)(m), CF(dbl)(s));
    r.y = CF(sub)(CF(mul)(m, CF(sub)(s, r.x)), CF(mul)(w, y));
    r.zz = v;
    r.zzz = w;
    return r;
}

// 2 * p (dbl-2008-s-1, a = 0).
ZK_NOINLINE CV(xyzz_t) CV(dbl)(CV(xyzz_t) p) {
    if (CV(is_identity)(p)) return p;
    CF(t) u = CF(dbl)(p.y);
    CF(t) v = CF(sqr)(u);
    CF(t) w = CF(mul)(u, v);
    CF(t) s = CF(mul)(p.x, v);
    CF(t) xx = CF(sqr)(p.x);
    CF(t) m = CF(add)(CF(dbl)(xx), xx);
    CV(xyzz_t) r;
    r.x = CF(sub)(CF(sqr)(m), CF(dbl)(s));
    r.y = CF(sub)(CF(mul)(m, CF(sub)(s, r.x)), CF(mul)(w, p.y));
    r.zz = CF(mul)(v, p.zz);
    r.zzz = CF(mul)(w, p.zzz);
    return r;
}

// p + (x2, y2) with (x2, y2) affine and not the identity (madd-2008-s). Inlined: its one
// caller is the bucket accumulation loop.
ZK_INLINE CV(xyzz_t) CV(add_affine)(CV(xyzz_t) p, CF(t) x2, CF(t) y2) {
    if (CV(is_identity)(p)) {
        CV(xyzz_t) r;
        r.x = x2; r.y = y2; r.zz = CF(one)(); r.zzz = CF(one)();
        return r;
    }
    CF(t) u2 = CF(mul)(x2, p.zz);
    CF(t) s2 = CF(mul)(y2, p.zzz);
    CF(t) pp_ = CF(sub)(u2, p.x);
    CF(t) rr = CF(sub)(s2, p.y);
    if (CF(is_zero)(pp_)) {
        if (CF(is_zero)(rr)) return CV(dbl_affine)(x2, y2);
        return CV(identity)();
    }
    CF(t) pp = CF(sqr)(pp_);
    CF(t) ppp = CF(mul)(pp_, pp);
    CF(t) q = CF(mul)(p.x, pp);
    CV(xyzz_t) r;
    r.x = CF(sub)(CF(sub)(CF(sqr)(rr), ppp), CF(dbl)(q));
    r.y = CF(sub)(CF(mul)(rr, CF(sub)(q, r.x)), CF(mul)(p.y, ppp));
    r.zz = CF(mul)(p.zz, pp);
    r.zzz = CF(mul)(p.zzz, ppp);
    return r;
}

// p + q (add-2008-s).
ZK_NOINLINE CV(xyzz_t) CV(add)(CV(xyzz_t) p, CV(xyzz_t) q) {
    if (CV(is_identity)(p)) return q;
    if (CV(is_identity)(q)) return p;
    CF(t) u1 = CF(mul)(p.x, q.zz);
    CF(t) u2 = CF(mul)(q.x, p.zz);
    CF(t) s1 = CF(mul)(p.y, q.zzz);
    CF(t) s2 = CF(mul)(q.y, p.zzz);
    CF(t) pp_ = CF(sub)(u2, u1);
    CF(t) rr = CF(sub)(s2, s1);
    if (CF(is_zero)(pp_)) {
        if (CF(is_zero)(rr)) return CV(dbl)(p);
        return CV(identity)();
    }
    CF(t) pp = CF(sqr)(pp_);
    CF(t) ppp = CF(mul)(pp_, pp);
    CF(t) qq = CF(mul)(u1, pp);
    CV(xyzz_t) r;
    r.x = CF(sub)(CF(sub)(CF(sqr)(rr), ppp), CF(dbl)(qq));
    r.y = CF(sub)(CF(mul)(rr, CF(sub)(qq, r.x)), CF(mul)(s1, ppp));
    r.zz = CF(mul)(CF(mul)(p.zz, q.zz), pp);
    r.zzz = CF(mul)(CF(mul)(p.zzz, q.zzz), ppp);
    return r;
}

// k * p for a small k (double-and-add from the top bit).
ZK_NOINLINE CV(xyzz_t) CV(mul_small)(CV(xyzz_t) p, zk_u32 k) {
    if (k == 0u || CV(is_identity)(p)) return CV(identity)();
    int top = 31;
    while (((k >> top) & 1u) == 0u) top--;
    CV(xyzz_t) r = p;
    for (int bit = top - 1; bit >= 0; bit--) {
        r = CV(dbl)(r);
        if ((k >> bit) & 1u) r = CV(add)(r, p);
    }
    return r;
}

// 2^k * p.
ZK_NOINLINE CV(xyzz_t) CV(dbl_n)(CV(xyzz_t) p, zk_u32 k) {
    for (zk_u32 i = 0; i < k; i++) p = CV(dbl)(p);
    return p;
}
