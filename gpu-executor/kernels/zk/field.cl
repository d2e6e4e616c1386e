// Montgomery arithmetic modulo a prime below 2^254, in 8 little-endian 32-bit limbs
// (R = 2^256), matching arkworks' Montgomery representation limb for limb.
//
// This file is a template: the host concatenates it once per field after defining
//   ZK_FIELD         the name prefix (fr, fq): types and functions become fr_t, fr_mul, ...
//   ZK_FIELD_P0..P7  the modulus limbs, least significant first
//   ZK_FIELD_INV     -p^-1 mod 2^32
//   ZK_FIELD_ONE0..7 R mod p (one in Montgomery form)
// and #undefs them afterwards. Portable C carry code everywhere; under CUDA with ZK_PTX
// defined the multiplication uses PTX mad.lo.cc / madc.hi.cc carry chains.

#define ZF(x) ZK_CAT2(ZK_FIELD, x)
#define ZFT ZF(t)

typedef struct { zk_u32 v[8]; } ZFT;

ZK_INLINE ZFT ZF(zero)(void) {
    ZFT r;
    ZK_UNROLL for (int i = 0; i < 8; i++) r.v[i] = 0u;
    return r;
}

ZK_INLINE ZFT ZF(one)(void) {
    ZFT r;
    r.v[0] = ZK_FIELD_ONE0; r.v[1] = ZK_FIELD_ONE1; r.v[2] = ZK_FIELD_ONE2; r.v[3] = ZK_FIELD_ONE3;
    r.v[4] = ZK_FIELD_ONE4; r.v[5] = ZK_FIELD_ONE5; r.v[6] = ZK_FIELD_ONE6; r.v[7] = ZK_FIELD_ONE7;
    return r;
}

ZK_INLINE ZFT ZF(modulus)(void) {
    ZFT r;
    r.v[0] = ZK_FIELD_P0; r.v[1] = ZK_FIELD_P1; r.v[2] = ZK_FIELD_P2; r.v[3] = ZK_FIELD_P3;
    r.v[4] = ZK_FIELD_P4; r.v[5] = ZK_FIELD_P5; r.v[6] = ZK_FIELD_P6; r.v[7] = ZK_FIELD_P7;
    return r;
}

ZK_INLINE int ZF(is_zero)(ZFT a) {
    zk_u32 acc = 0u;
    ZK_UNROLL for (int i = 0; i < 8; i++) acc |= a.v[i];
    return acc == 0u;
}

ZK_INLINE int ZF(eq)(ZFT a, ZFT b) {
    zk_u32 acc = 0u;
    ZK_UNROLL for (int i = 0; i < 8; i++) acc |= a.v[i] ^ b.v[i];
    return acc == 0u;
}

// r = a - p if a >= p (a < 2^256), else a.
ZK_INLINE ZFT ZF(reduce_once)(ZFT a, zk_u32 hi_carry) {
    const ZFT p = ZF(modulus)();
    ZFT t;
    zk_u32 borrow = 0u;
    ZK_UNROLL for (int i = 0; i < 8; i++) {
        zk_u64 d = (zk_u64)a.v[i] - (zk_u64)p.v[i] - (zk_u64)borrow;
        t.v[i] = (zk_u32)d;
        borrow = (zk_u32)(d >> 63);
    }
    // keep t when a >= p, i.e. no borrow out, or when a had a carry beyond 2^256.
    return (borrow == 0u || hi_carry != 0u) ? t : a;
}

ZK_INLINE ZFT ZF(add)(ZFT a, ZFT b) {
    ZFT r;
    zk_u32 carry = 0u;
    ZK_UNROLL for (int i = 0; i < 8; i++) {
        zk_u64 s = (zk_u64)a.v[i] + (zk_u64)b.v[i] + (zk_u64)carry;
        r.v[i] = (zk_u32)s;
        carry = (zk_u32)(s >> 32);
    }
    return ZF(reduce_once)(r, carry);
}

ZK_INLINE ZFT ZF(sub)(ZFT a, ZFT b) {
    const ZFT p = ZF(modulus)();
    ZFT r;
    zk_u32 borrow = 0u;
    ZK_UNROLL for (int i = 0; i < 8; i++) {
        zk_u64 d = (zk_u64)a.v[i] - (zk_u64)b.v[i] - (zk_u64)borrow;
        r.v[i] = (zk_u32)d;
        borrow = (zk_u32)(d >> 63);
    }
    if (borrow) {
        zk_u32 carry = 0u;
        ZK_UNROLL for (int i = 0; i < 8; i++) {
            zk_u64 s = (zk_u64)r.v[i] + (zk_u64)p.v[i] + (zk_u64)carry;
            r.v[i] = (zk_u32)s;
            carry = (zk_u32)(s >> 32);
        }
    }
    return r;
}

ZK_INLINE ZFT ZF(dbl)(ZFT a) { return ZF(add)(a, a); }

ZK_INLINE ZFT ZF(neg)(ZFT a) {
    if (ZF(is_zero)(a)) return a;
    return ZF(sub)(ZF(zero)(), a);
}

#if defined(ZK_CUDA) && defined(ZK_PTX)
// t[0..9] += x * y (x one limb, y eight limbs) with PTX carry chains: the low halves of the
// products go to limbs j, the high halves to limbs j+1; each chain is one asm block so the
// carry flag is never live across compiler-generated code.
#define ZK_PTX_ROW(t, x, y0, y1, y2, y3, y4, y5, y6, y7)                                  \
    asm("mad.lo.cc.u32 %0, %10, %11, %0;\n\t"                                            \
        "madc.lo.cc.u32 %1, %10, %12, %1;\n\t"                                           \
        "madc.lo.cc.u32 %2, %10, %13, %2;\n\t"                                           \
        "madc.lo.cc.u32 %3, %10, %14, %3;\n\t"                                           \
        "madc.lo.cc.u32 %4, %10, %15, %4;\n\t"                                           \
        "madc.lo.cc.u32 %5, %10, %16, %5;\n\t"                                           \
        "madc.lo.cc.u32 %6, %10, %17, %6;\n\t"                                           \
        "madc.lo.cc.u32 %7, %10, %18, %7;\n\t"                                           \
        "addc.cc.u32 %8, %8, 0;\n\t"                                                     \
        "addc.u32 %9, %9, 0;"                                                            \
        : "+r"(t[0]), "+r"(t[1]), "+r"(t[2]), "+r"(t[3]), "+r"(t[4]), "+r"(t[5]),          \
          "+r"(t[6]), "+r"(t[7]), "+r"(t[8]), "+r"(t[9])                                   \
        : "r"(x), "r"(y0), "r"(y1), "r"(y2), "r"(y3), "r"(y4), "r"(y5), "r"(y6), "r"(y7)); \
    asm("mad.hi.cc.u32 %0, %9, %10, %0;\n\t"                                             \
        "madc.hi.cc.u32 %1, %9, %11, %1;\n\t"                                            \
        "madc.hi.cc.u32 %2, %9, %12, %2;\n\t"                                            \
        "madc.hi.cc.u32 %3, %9, %13, %3;\n\t"                                            \
        "madc.hi.cc.u32 %4, %9, %14, %4;\n\t"                                            \
        "madc.hi.cc.u32 %5, %9, %15, %5;\n\t"                                            \
        "madc.hi.cc.u32 %6, %9, %16, %6;\n\t"                                            \
        "madc.hi.cc.u32 %7, %9, %17, %7;\n\t"                                            \
        "addc.u32 %8, %8, 0;"                                                            \
        : "+r"(t[1]), "+r"(t[2]), "+r"(t[3]), "+r"(t[4]), "+r"(t[5]), "+r"(t[6]),          \
          "+r"(t[7]), "+r"(t[8]), "+r"(t[9])                                               \
        : "r"(x), "r"(y0), "r"(y1), "r"(y2), "r"(y3), "r"(y4), "r"(y5), "r"(y6), "r"(y7))

ZK_INLINE ZFT ZF(mul)(ZFT a, ZFT b) {
    zk_u32 t[10];
    ZK_UNROLL for (int i = 0; i < 10; i++) t[i] = 0u;
    ZK_UNROLL for (int i = 0; i < 8; i++) {
        ZK_PTX_ROW(t, b.v[i], a.v[0], a.v[1], a.v[2], a.v[3], a.v[4], a.v[5], a.v[6], a.v[7]);
        zk_u32 m = t[0] * ZK_FIELD_INV;
        ZK_PTX_ROW(t, m, ZK_FIELD_P0, ZK_FIELD_P1, ZK_FIELD_P2, ZK_FIELD_P3, ZK_FIELD_P4,
                   ZK_FIELD_P5, ZK_FIELD_P6, ZK_FIELD_P7);
        // t[0] is now 0: shift down one limb.
        ZK_UNROLL for (int j = 0; j < 9; j++) t[j] = t[j + 1];
        t[9] = 0u;
    }
    ZFT r;
    ZK_UNROLL for (int i = 0; i < 8; i++) r.v[i] = t[i];
    return ZF(reduce_once)(r, t[8]);
}
#undef ZK_PTX_ROW
#else
// Coarsely integrated operand scanning (CIOS) Montgomery multiplication, portable C.
ZK_INLINE ZFT ZF(mul)(ZFT a, ZFT b) {
    const ZFT p = ZF(modulus)();
    zk_u32 t[10];
    ZK_UNROLL for (int i = 0; i < 10; i++) t[i] = 0u;
    ZK_UNROLL for (int i = 0; i < 8; i++) {
        zk_u32 carry = 0u;
        const zk_u32 bi = b.v[i];
        ZK_UNROLL for (int j = 0; j < 8; j++) {
            zk_u64 s = (zk_u64)a.v[j] * (zk_u64)bi + (zk_u64)t[j] + (zk_u64)carry;
            t[j] = (zk_u32)s;
            carry = (zk_u32)(s >> 32);
        }
        zk_u64 s8 = (zk_u64)t[8] + (zk_u64)carry;
        t[8] = (zk_u32)s8;
        t[9] = (zk_u32)(s8 >> 32);
        const zk_u32 m = t[0] * ZK_FIELD_INV;
        zk_u64 s = (zk_u64)m * (zk_u64)p.v[0] + (zk_u64)t[0];
        carry = (zk_u32)(s >> 32);
        ZK_UNROLL for (int j = 1; j < 8; j++) {
            s = (zk_u64)m * (zk_u64)p.v[j] + (zk_u64)t[j] + (zk_u64)carry;
            t[j - 1] = (zk_u32)s;
            carry = (zk_u32)(s >> 32);
        }
        s = (zk_u64)t[8] + (zk_u64)carry;
        t[7] = (zk_u32)s;
        t[8] = t[9] + (zk_u32)(s >> 32);
    }
    ZFT r;
    ZK_UNROLL for (int i = 0; i < 8; i++) r.v[i] = t[i];
    return ZF(reduce_once)(r, t[8]);
}
#endif

ZK_INLINE ZFT ZF(sqr)(ZFT a) { return ZF(mul)(a, a); }

// Montgomery form -> canonical integer (multiplies by R^-1).
ZK_INLINE ZFT ZF(from_mont)(ZFT a) {
    ZFT one_raw = ZF(zero)();
    one_raw.v[0] = 1u;
    return ZF(mul)(a, one_raw);
}

ZK_INLINE ZFT ZF(load)(const ZK_GLOBAL zk_u32 *p) {
    ZFT r;
    ZK_UNROLL for (int i = 0; i < 8; i++) r.v[i] = p[i];
    return r;
}

ZK_INLINE void ZF(store)(ZK_GLOBAL zk_u32 *p, ZFT a) {
    ZK_UNROLL for (int i = 0; i < 8; i++) p[i] = a.v[i];
}

#undef ZFT
#undef ZF
