// Fq2 = Fq[u] / (u^2 + 1), BN254's quadratic extension (the coordinate field of G2), on top
// of the fq_* functions of field.cl (so CUDA's PTX multiplication serves it too). An element
// is c0 + c1 u, stored as 16 limbs: c0 then c1, each in Montgomery form — arkworks' `Fq2`
// layout. Multiplication and squaring take 3 and 2 Fq multiplications (Karatsuba;
// complex squaring).

typedef struct { fq_t c0; fq_t c1; } fq2_t;

// With the PTX multiplication (short asm chains) the products are inlined. The portable
// CIOS product is much larger: inlined three times into each of the ~12 Fq2 products of a
// G2 formula it makes functions that the device compilers (ptxas, NVIDIA's OpenCL) take
// very long on, so portable builds call one Fq2 product instead.
#if defined(ZK_CUDA) && defined(ZK_PTX)
#define ZK_FQ2_MUL_FN ZK_INLINE
#else
#define ZK_FQ2_MUL_FN ZK_NOINLINE
#endif

ZK_INLINE fq2_t fq2_zero(void) {
    fq2_t r;
    r.c0 = fq_zero(); r.c1 = fq_zero();
    return r;
}

ZK_INLINE fq2_t fq2_one(void) {
    fq2_t r;
    r.c0 = fq_one(); r.c1 = fq_zero();
    return r;
}

ZK_INLINE int fq2_is_zero(fq2_t a) { return fq_is_zero(a.c0) && fq_is_zero(a.c1); }

ZK_INLINE fq2_t fq2_add(fq2_t a, fq2_t b) {
    fq2_t r;
    r.c0 = fq_add(a.c0, b.c0); r.c1 = fq_add(a.c1, b.c1);
    return r;
}

ZK_INLINE fq2_t fq2_sub(fq2_t a, fq2_t b) {
    fq2_t r;
    r.c0 = fq_sub(a.c0, b.c0); r.c1 = fq_sub(a.c1, b.c1);
    return r;
}

ZK_INLINE fq2_t fq2_dbl(fq2_t a) { return fq2_add(a, a); }

ZK_INLINE fq2_t fq2_neg(fq2_t a) {
    fq2_t r;
    r.c0 = fq_neg(a.c0); r.c1 = fq_neg(a.c1);
    return r;
}

// (a0 + a1 u)(b0 + b1 u) = (a0 b0 - a1 b1) + ((a0 + a1)(b0 + b1) - a0 b0 - a1 b1) u
ZK_FQ2_MUL_FN fq2_t fq2_mul(fq2_t a, fq2_t b) {
    fq_t t0 = fq_mul(a.c0, b.c0);
    fq_t t1 = fq_mul(a.c1, b.c1);
    fq_t t2 = fq_mul(fq_add(a.c0, a.c1), fq_add(b.c0, b.c1));
    fq2_t r;
    r.c0 = fq_sub(t0, t1);
    r.c1 = fq_sub(fq_sub(t2, t0), t1);
    return r;
}

// (a0 + a1 u)^2 = (a0 + a1)(a0 - a1) + 2 a0 a1 u
ZK_FQ2_MUL_FN fq2_t fq2_sqr(fq2_t a) {
    fq2_t r;
    r.c0 = fq_mul(fq_add(a.c0, a.c1), fq_sub(a.c0, a.c1));
    r.c1 = fq_dbl(fq_mul(a.c0, a.c1));
    return r;
}

// Frobenius on Fq2: conjugation.
ZK_INLINE fq2_t fq2_conj(fq2_t a) {
    a.c1 = fq_neg(a.c1);
    return a;
}

ZK_INLINE int fq2_eq(fq2_t a, fq2_t b) { return fq_eq(a.c0, b.c0) && fq_eq(a.c1, b.c1); }

ZK_INLINE fq2_t fq2_load(const ZK_GLOBAL zk_u32 *p) {
    fq2_t r;
    r.c0 = fq_load(p); r.c1 = fq_load(p + 8);
    return r;
}

ZK_INLINE void fq2_store(ZK_GLOBAL zk_u32 *p, fq2_t a) {
    fq_store(p, a.c0);
    fq_store(p + 8, a.c1);
}
