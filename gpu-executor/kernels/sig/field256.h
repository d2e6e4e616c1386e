/* Arithmetic modulo p = 2^256 - c with a small c = FE_C_LO + FE_C_HI * 2^32, in eight 32-bit
 * limbs, little-endian, full radix. Values are kept "loosely reduced": any 256-bit integer,
 * congruent to the value mod p; fe_canon gives the unique representative in [0, p).
 * Before including, define FE_C_LO, FE_C_HI (0 or 1) and FE_HALF (1 when p = (2^256 - c) / 2).
 *   Ed25519:   p = 2^255 - 19:            2^256 = 38 (mod p)           -> C_LO 38,  C_HI 0, HALF
 *   secp256k1: p = 2^256 - 2^32 - 977:    2^256 = 2^32 + 977 (mod p)   -> C_LO 977, C_HI 1
 * Every carry is propagated explicitly with 64-bit intermediates, so OpenCL C, CUDA and C
 * give the same bits. */

typedef struct {
    sig_u32 v[8];
} fe;

SIG_FN void fe_zero(fe *r) {
    for (int i = 0; i < 8; i++) r->v[i] = 0;
}

SIG_FN void fe_one(fe *r) {
    fe_zero(r);
    r->v[0] = 1;
}

SIG_FN void fe_copy(fe *r, const fe *a) {
    for (int i = 0; i < 8; i++) r->v[i] = a->v[i];
}

/* r = r + top * c (mod p), top < 2^40. */
SIG_FN void fe_fold_top(fe *r, sig_u64 top) {
    sig_u64 x = (sig_u64)r->v[0] + top * (sig_u64)FE_C_LO;
    r->v[0] = (sig_u32)x;
    sig_u64 carry = x >> 32;
#if FE_C_HI
    carry += top;
#endif
    for (int i = 1; i < 8; i++) {
        x = (sig_u64)r->v[i] + carry;
        r->v[i] = (sig_u32)x;
        carry = x >> 32;
    }
    if (carry) {
        /* Wrapped past 2^256: r is now below top * c + c, so adding c once more cannot wrap. */
        x = (sig_u64)r->v[0] + (sig_u64)FE_C_LO;
        r->v[0] = (sig_u32)x;
        carry = (x >> 32) + (sig_u64)FE_C_HI;
        for (int i = 1; i < 8; i++) {
            x = (sig_u64)r->v[i] + carry;
            r->v[i] = (sig_u32)x;
            carry = x >> 32;
        }
    }
}

SIG_FN void fe_add(fe *r, const fe *a, const fe *b) {
    sig_u64 carry = 0;
    for (int i = 0; i < 8; i++) {
        sig_u64 x = (sig_u64)a->v[i] + b->v[i] + carry;
        r->v[i] = (sig_u32)x;
        carry = x >> 32;
    }
    fe_fold_top(r, carry);
}

/* r = r - c (mod 2^256); returns the borrow. */
SIG_FN sig_u32 fe_sub_c(fe *r) {
    sig_u64 x = (sig_u64)r->v[0] - (sig_u64)FE_C_LO;
    r->v[0] = (sig_u32)x;
    sig_u32 borrow = (sig_u32)(x >> 63);
    x = (sig_u64)r->v[1] - (sig_u64)FE_C_HI - borrow;
    r->v[1] = (sig_u32)x;
    borrow = (sig_u32)(x >> 63);
    for (int i = 2; i < 8; i++) {
        x = (sig_u64)r->v[i] - borrow;
        r->v[i] = (sig_u32)x;
        borrow = (sig_u32)(x >> 63);
    }
    return borrow;
}

SIG_FN void fe_sub(fe *r, const fe *a, const fe *b) {
    sig_u32 borrow = 0;
    for (int i = 0; i < 8; i++) {
        sig_u64 x = (sig_u64)a->v[i] - (sig_u64)b->v[i] - borrow;
        r->v[i] = (sig_u32)x;
        borrow = (sig_u32)(x >> 63);
    }
    /* a - b + 2^256 was computed; 2^256 = c (mod p), so take c off (twice at most). */
    if (borrow) {
        if (fe_sub_c(r)) fe_sub_c(r);
    }
}

SIG_FN void fe_neg(fe *r, const fe *a) {
    fe z;
    fe_zero(&z);
    fe_sub(r, &z, a);
}

/* t[0..16) = a * b. */
#if defined(SUPERVM_CUDA) && defined(SIG_PTX)
/* CUDA fast path: each row a_i * b is added with two PTX carry chains (low halves, then high
 * halves), 17 instructions per row. Before row i, t[i+8] is still 0 and the running sum is
 * below 2^(32(i+8)), so the low chain carries at most 1 into t[i+8] and the high chain never
 * carries out of it. */
#define SIG_PTX_ROW(i)                                                                       \
    asm("{\n\t"                                                                              \
        "mad.lo.cc.u32 %0, %9, %10, %0;\n\t" \
        "madc.lo.cc.u32 %1, %9, %11, %1;\n\t" \
        "madc.lo.cc.u32 %2, %9, %12, %2;\n\t" \
        "madc.lo.cc.u32 %3, %9, %13, %3;\n\t" \
        "madc.lo.cc.u32 %4, %9, %14, %4;\n\t" \
        "madc.lo.cc.u32 %5, %9, %15, %5;\n\t" \
        "madc.lo.cc.u32 %6, %9, %16, %6;\n\t" \
        "madc.lo.cc.u32 %7, %9, %17, %7;\n\t" \
        "addc.u32 %8, 0, 0;\n\t" \
        "mad.hi.cc.u32 %1, %9, %10, %1;\n\t" \
        "madc.hi.cc.u32 %2, %9, %11, %2;\n\t" \
        "madc.hi.cc.u32 %3, %9, %12, %3;\n\t" \
        "madc.hi.cc.u32 %4, %9, %13, %4;\n\t" \
        "madc.hi.cc.u32 %5, %9, %14, %5;\n\t" \
        "madc.hi.cc.u32 %6, %9, %15, %6;\n\t" \
        "madc.hi.cc.u32 %7, %9, %16, %7;\n\t" \
        "madc.hi.u32 %8, %9, %17, %8;"                                                                              \
        "\n\t}"                                                                               \
        : "+r"(t[i]), "+r"(t[i + 1]), "+r"(t[i + 2]), "+r"(t[i + 3]), "+r"(t[i + 4]),        \
          "+r"(t[i + 5]), "+r"(t[i + 6]), "+r"(t[i + 7]), "+r"(t[i + 8])                     \
        : "r"(a->v[i]), "r"(b->v[0]), "r"(b->v[1]), "r"(b->v[2]), "r"(b->v[3]), "r"(b->v[4]), \
          "r"(b->v[5]), "r"(b->v[6]), "r"(b->v[7]))
SIG_FN void fe_mul_wide(sig_u32 *t, const fe *a, const fe *b) {
    for (int i = 0; i < 16; i++) t[i] = 0;
    SIG_PTX_ROW(0);
    SIG_PTX_ROW(1);
    SIG_PTX_ROW(2);
    SIG_PTX_ROW(3);
    SIG_PTX_ROW(4);
    SIG_PTX_ROW(5);
    SIG_PTX_ROW(6);
    SIG_PTX_ROW(7);
}
#else
/* Portable: schoolbook product by rows, each step fits 64 bits. */
SIG_FN void fe_mul_wide(sig_u32 *t, const fe *a, const fe *b) {
    for (int i = 0; i < 16; i++) t[i] = 0;
    for (int i = 0; i < 8; i++) {
        sig_u64 carry = 0;
        sig_u64 ai = a->v[i];
        for (int j = 0; j < 8; j++) {
            sig_u64 x = ai * b->v[j] + t[i + j] + carry;
            t[i + j] = (sig_u32)x;
            carry = x >> 32;
        }
        t[i + 8] = (sig_u32)carry;
    }
}
#endif

/* r = t mod p for a 512-bit t: two folds with 2^256 = c. */
SIG_FN void fe_reduce_wide(fe *r, const sig_u32 *t) {
    sig_u64 carry = 0;
#if FE_C_HI
    sig_u64 prev = 0;
#endif
    for (int i = 0; i < 8; i++) {
        sig_u64 x = (sig_u64)t[i] + (sig_u64)t[8 + i] * (sig_u64)FE_C_LO + carry;
#if FE_C_HI
        x += prev;
        prev = t[8 + i];
#endif
        r->v[i] = (sig_u32)x;
        carry = x >> 32;
    }
#if FE_C_HI
    carry += prev;
#endif
    fe_fold_top(r, carry);
}

/* r = a * b (mod p). */
SIG_FN void fe_mul(fe *r, const fe *a, const fe *b) {
    sig_u32 t[16];
    fe_mul_wide(t, a, b);
    fe_reduce_wide(r, t);
}

#if defined(SUPERVM_CUDA) && defined(SIG_PTX)
SIG_FN void fe_sqr(fe *r, const fe *a) {
    fe_mul(r, a, a);
}
#else
/* r = a^2 (mod p): the off-diagonal products once, doubled, plus the squares. */
SIG_FN void fe_sqr(fe *r, const fe *a) {
    sig_u32 t[16];
    for (int i = 0; i < 16; i++) t[i] = 0;
    for (int i = 0; i < 7; i++) {
        sig_u64 carry = 0;
        sig_u64 ai = a->v[i];
        for (int j = i + 1; j < 8; j++) {
            sig_u64 x = ai * a->v[j] + t[i + j] + carry;
            t[i + j] = (sig_u32)x;
            carry = x >> 32;
        }
        t[i + 8] = (sig_u32)carry;
    }
    /* double */
    sig_u32 hi = 0;
    for (int i = 0; i < 16; i++) {
        sig_u32 nhi = t[i] >> 31;
        t[i] = (t[i] << 1) | hi;
        hi = nhi;
    }
    /* add squares */
    sig_u64 carry = 0;
    for (int i = 0; i < 8; i++) {
        sig_u64 sq = (sig_u64)a->v[i] * a->v[i];
        sig_u64 x = (sig_u64)t[2 * i] + (sq & 0xffffffffu) + carry;
        t[2 * i] = (sig_u32)x;
        carry = x >> 32;
        x = (sig_u64)t[2 * i + 1] + (sq >> 32) + carry;
        t[2 * i + 1] = (sig_u32)x;
        carry = x >> 32;
    }
    fe_reduce_wide(r, t);
}
#endif

SIG_FN void fe_sqr_n(fe *r, const fe *a, int n) {
    fe_sqr(r, a);
    for (int i = 1; i < n; i++) fe_sqr(r, r);
}

/* Unique representative in [0, p). Folding works modulo M = 2^256 - c, which is p for
 * secp256k1 and 2p for Ed25519 (FE_HALF 1); a loosely reduced value is below 2^256 < 2M. */
SIG_FN void fe_canon(fe *r) {
    fe t;
    sig_u64 x = (sig_u64)r->v[0] + (sig_u64)FE_C_LO;
    t.v[0] = (sig_u32)x;
    sig_u64 carry = (x >> 32) + (sig_u64)FE_C_HI;
    for (int i = 1; i < 8; i++) {
        x = (sig_u64)r->v[i] + carry;
        t.v[i] = (sig_u32)x;
        carry = x >> 32;
    }
    /* r + c >= 2^256  <=>  r >= p; then r - p = r + c - 2^256 = t. */
    if (carry) fe_copy(r, &t);
#if FE_HALF
    /* Now r < 2p; r >= p = 2^255 - c/2  <=>  r + c/2 has bit 255 set. */
    x = (sig_u64)r->v[0] + (sig_u64)(FE_C_LO / 2u);
    t.v[0] = (sig_u32)x;
    carry = x >> 32;
    for (int i = 1; i < 8; i++) {
        x = (sig_u64)r->v[i] + carry;
        t.v[i] = (sig_u32)x;
        carry = x >> 32;
    }
    if (t.v[7] >> 31) {
        t.v[7] &= 0x7fffffffu;
        fe_copy(r, &t);
    }
#endif
}

SIG_FN int fe_is_zero(const fe *a) {
    fe t;
    fe_copy(&t, a);
    fe_canon(&t);
    sig_u32 acc = 0;
    for (int i = 0; i < 8; i++) acc |= t.v[i];
    return acc == 0;
}

SIG_FN int fe_equal(const fe *a, const fe *b) {
    fe t;
    fe_sub(&t, a, b);
    return fe_is_zero(&t);
}

/* Low bit of the canonical value. */
SIG_FN int fe_is_odd(const fe *a) {
    fe t;
    fe_copy(&t, a);
    fe_canon(&t);
    return (int)(t.v[0] & 1u);
}

/* 32 bytes, little-endian, taken as they are (no reduction, no check). */
SIG_FN void fe_from_le(fe *r, const sig_u8 *b) {
    for (int i = 0; i < 8; i++)
        r->v[i] = (sig_u32)b[4 * i] | ((sig_u32)b[4 * i + 1] << 8) | ((sig_u32)b[4 * i + 2] << 16) |
                  ((sig_u32)b[4 * i + 3] << 24);
}

/* 32 bytes, big-endian. */
SIG_FN void fe_from_be(fe *r, const sig_u8 *b) {
    for (int i = 0; i < 8; i++) {
        const sig_u8 *w = b + 28 - 4 * i;
        r->v[i] = ((sig_u32)w[0] << 24) | ((sig_u32)w[1] << 16) | ((sig_u32)w[2] << 8) | (sig_u32)w[3];
    }
}

/* Is the raw 256-bit value a below p (a canonical encoding)? */
SIG_FN int fe_is_canonical(const fe *a) {
    fe t;
    fe_copy(&t, a);
    fe_canon(&t);
    for (int i = 0; i < 8; i++)
        if (t.v[i] != a->v[i]) return 0;
    return 1;
}

/* ---- Multi-precision helpers on 32-bit limb arrays (scalars modulo a group order) ---- */

/* Little-endian compare of n limbs: -1, 0, 1. */
SIG_FN int mp_cmp(const sig_u32 *a, const sig_u32 *b, int n) {
    for (int i = n - 1; i >= 0; i--) {
        if (a[i] < b[i]) return -1;
        if (a[i] > b[i]) return 1;
    }
    return 0;
}

/* a -= b over n limbs; returns the borrow. */
SIG_FN sig_u32 mp_sub(sig_u32 *a, const sig_u32 *b, int n) {
    sig_u32 borrow = 0;
    for (int i = 0; i < n; i++) {
        sig_u64 x = (sig_u64)a[i] - (sig_u64)b[i] - borrow;
        a[i] = (sig_u32)x;
        borrow = (sig_u32)(x >> 63);
    }
    return borrow;
}

SIG_FN int mp_is_zero(const sig_u32 *a, int n) {
    sig_u32 acc = 0;
    for (int i = 0; i < n; i++) acc |= a[i];
    return acc == 0;
}

/* Barrett reduction (HAC 14.42, b = 2^32, k = 8): r = x mod m for a 512-bit x, where
 * m < 2^256 has its top limb non-zero... or not: it works for any m with mu = floor(2^512 / m)
 * of at most 9 limbs, i.e. m > 2^224. m and mu arrays have 9 limbs (m[8] = 0). */
SIG_NOINLINE void mp_barrett(sig_u32 *r, const sig_u32 *x, const sig_u32 *m, const sig_u32 *mu) {
    /* q1 = x >> 224 (9 limbs), q2 = q1 * mu (18 limbs), q3 = q2 >> 288 (9 limbs). */
    sig_u32 q2[18];
    for (int i = 0; i < 18; i++) q2[i] = 0;
    for (int i = 0; i < 9; i++) {
        sig_u64 carry = 0;
        sig_u64 qi = x[7 + i];
        for (int j = 0; j < 9; j++) {
            sig_u64 t = qi * mu[j] + q2[i + j] + carry;
            q2[i + j] = (sig_u32)t;
            carry = t >> 32;
        }
        q2[i + 9] = (sig_u32)carry;
    }
    /* r2 = (q3 * m) mod 2^288 */
    sig_u32 r2[9];
    for (int i = 0; i < 9; i++) r2[i] = 0;
    for (int i = 0; i < 9; i++) {
        sig_u64 carry = 0;
        sig_u64 qi = q2[9 + i];
        for (int j = 0; i + j < 9; j++) {
            sig_u64 t = qi * m[j] + r2[i + j] + carry;
            r2[i + j] = (sig_u32)t;
            carry = t >> 32;
        }
    }
    /* r = (x mod 2^288) - r2 (mod 2^288), then at most two subtractions of m. */
    sig_u32 t[9];
    for (int i = 0; i < 9; i++) t[i] = x[i];
    mp_sub(t, r2, 9);
    while (mp_cmp(t, m, 9) >= 0) mp_sub(t, m, 9);
    for (int i = 0; i < 8; i++) r[i] = t[i];
}

/* r = a * b mod m (a, b below 2^256). */
SIG_FN void mp_mulmod(sig_u32 *r, const sig_u32 *a, const sig_u32 *b, const sig_u32 *m, const sig_u32 *mu) {
    sig_u32 t[16];
    for (int i = 0; i < 16; i++) t[i] = 0;
    for (int i = 0; i < 8; i++) {
        sig_u64 carry = 0;
        sig_u64 ai = a[i];
        for (int j = 0; j < 8; j++) {
            sig_u64 x = ai * b[j] + t[i + j] + carry;
            t[i + j] = (sig_u32)x;
            carry = x >> 32;
        }
        t[i + 8] = (sig_u32)carry;
    }
    mp_barrett(r, t, m, mu);
}
