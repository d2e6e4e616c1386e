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
// Montgomery multiplication with PTX carry chains, sppark-style (supranational/sppark
// ff/mont_t.cuh): the partial product is kept as two arrays, `even` (limb k at position k)
// and `odd` (limb k at position k+1). Products a[j]*b_i with even j land on (j, j+1) and go
// to `even`; those with odd j go to `odd`; so each row is two independent carry chains of
// 8 mad.lo/mad.hi each (no zero-adds in between), and the divisions by 2^32 are free: the
// arrays swap roles every row and `odd` shifts down by two as it is re-accumulated. This
// needs p < 2^255: with a spare top bit no chain ever carries out of its top limb (the
// bound argument is in docs/ZK_KERNELS.md). Each chain is one asm block,
// so the carry flag is never live across compiler-generated code.

// E/O: the even/odd arrays in their current roles; a: the 8 limbs of a; bi: one limb of b.
#define ZK_PTX_FIRST(E, O, a, bi)                                                          \
    do {                                                                                   \
        ZK_UNROLL for (int j_ = 0; j_ < 8; j_ += 2) {                                      \
            O[j_] = a[j_ + 1] * (bi); O[j_ + 1] = __umulhi(a[j_ + 1], (bi));               \
            E[j_] = a[j_] * (bi); E[j_ + 1] = __umulhi(a[j_], (bi));                       \
        }                                                                                  \
    } while (0)

// E += a_even * bi (even[0] first absorbs odd[1], whose position it takes after the shift),
// O = (O >> 2 limbs) + a_odd * bi.
#define ZK_PTX_NEXT(E, O, a, bi)                                                           \
    do {                                                                                   \
        asm("add.cc.u32 %0, %0, %2;\n\t"                                                   \
            "madc.lo.cc.u32 %1, %9, %13, %3;\n\t"                                          \
            "madc.hi.cc.u32 %2, %9, %13, %4;\n\t"                                          \
            "madc.lo.cc.u32 %3, %10, %13, %5;\n\t"                                         \
            "madc.hi.cc.u32 %4, %10, %13, %6;\n\t"                                         \
            "madc.lo.cc.u32 %5, %11, %13, %7;\n\t"                                         \
            "madc.hi.cc.u32 %6, %11, %13, %8;\n\t"                                         \
            "madc.lo.cc.u32 %7, %12, %13, 0;\n\t"                                          \
            "madc.hi.u32 %8, %12, %13, 0;"                                                 \
            : "+r"(E[0]), "+r"(O[0]), "+r"(O[1]), "+r"(O[2]), "+r"(O[3]), "+r"(O[4]),      \
              "+r"(O[5]), "+r"(O[6]), "+r"(O[7])                                           \
            : "r"(a[1]), "r"(a[3]), "r"(a[5]), "r"(a[7]), "r"(bi));                        \
        asm("mad.lo.cc.u32 %0, %9, %13, %0;\n\t"                                           \
            "madc.hi.cc.u32 %1, %9, %13, %1;\n\t"                                          \
            "madc.lo.cc.u32 %2, %10, %13, %2;\n\t"                                         \
            "madc.hi.cc.u32 %3, %10, %13, %3;\n\t"                                         \
            "madc.lo.cc.u32 %4, %11, %13, %4;\n\t"                                         \
            "madc.hi.cc.u32 %5, %11, %13, %5;\n\t"                                         \
            "madc.lo.cc.u32 %6, %12, %13, %6;\n\t"                                         \
            "madc.hi.cc.u32 %7, %12, %13, %7;\n\t"                                         \
            "addc.u32 %8, %8, 0;"                                                          \
            : "+r"(E[0]), "+r"(E[1]), "+r"(E[2]), "+r"(E[3]), "+r"(E[4]), "+r"(E[5]),      \
              "+r"(E[6]), "+r"(E[7]), "+r"(O[7])                                           \
            : "r"(a[0]), "r"(a[2]), "r"(a[4]), "r"(a[6]), "r"(bi));                        \
    } while (0)

// One Montgomery reduction step: m = E[0] * (-p^-1), E/O += m * p (E[0] becomes 0).
#define ZK_PTX_REDC(E, O)                                                                  \
    do {                                                                                   \
        const zk_u32 m_ = E[0] * ZK_FIELD_INV;                                             \
        asm("mad.lo.cc.u32 %0, %8, %9, %0;\n\t"                                            \
            "madc.hi.cc.u32 %1, %8, %9, %1;\n\t"                                           \
            "madc.lo.cc.u32 %2, %8, %10, %2;\n\t"                                          \
            "madc.hi.cc.u32 %3, %8, %10, %3;\n\t"                                          \
            "madc.lo.cc.u32 %4, %8, %11, %4;\n\t"                                          \
            "madc.hi.cc.u32 %5, %8, %11, %5;\n\t"                                          \
            "madc.lo.cc.u32 %6, %8, %12, %6;\n\t"                                          \
            "madc.hi.u32 %7, %8, %12, %7;"                                                 \
            : "+r"(O[0]), "+r"(O[1]), "+r"(O[2]), "+r"(O[3]), "+r"(O[4]), "+r"(O[5]),      \
              "+r"(O[6]), "+r"(O[7])                                                       \
            : "r"(m_), "r"(ZK_FIELD_P1), "r"(ZK_FIELD_P3), "r"(ZK_FIELD_P5),               \
              "r"(ZK_FIELD_P7));                                                           \
        asm("mad.lo.cc.u32 %0, %9, %10, %0;\n\t"                                           \
            "madc.hi.cc.u32 %1, %9, %10, %1;\n\t"                                          \
            "madc.lo.cc.u32 %2, %9, %11, %2;\n\t"                                          \
            "madc.hi.cc.u32 %3, %9, %11, %3;\n\t"                                          \
            "madc.lo.cc.u32 %4, %9, %12, %4;\n\t"                                          \
            "madc.hi.cc.u32 %5, %9, %12, %5;\n\t"                                          \
            "madc.lo.cc.u32 %6, %9, %13, %6;\n\t"                                          \
            "madc.hi.cc.u32 %7, %9, %13, %7;\n\t"                                          \
            "addc.u32 %8, %8, 0;"                                                          \
            : "+r"(E[0]), "+r"(E[1]), "+r"(E[2]), "+r"(E[3]), "+r"(E[4]), "+r"(E[5]),      \
              "+r"(E[6]), "+r"(E[7]), "+r"(O[7])                                           \
            : "r"(m_), "r"(ZK_FIELD_P0), "r"(ZK_FIELD_P2), "r"(ZK_FIELD_P4),               \
              "r"(ZK_FIELD_P6));                                                           \
    } while (0)

ZK_INLINE ZFT ZF(mul)(ZFT a, ZFT b) {
    zk_u32 ev[8], od[8];
    ZK_PTX_FIRST(ev, od, a.v, b.v[0]);
    ZK_PTX_REDC(ev, od);
    ZK_PTX_NEXT(od, ev, a.v, b.v[1]);
    ZK_PTX_REDC(od, ev);
    ZK_UNROLL for (int i = 2; i < 8; i += 2) {
        ZK_PTX_NEXT(ev, od, a.v, b.v[i]);
        ZK_PTX_REDC(ev, od);
        ZK_PTX_NEXT(od, ev, a.v, b.v[i + 1]);
        ZK_PTX_REDC(od, ev);
    }
    // merge: the value is ev + (od >> 1 limb) (od[0] is the zero limb of the last step)
    ZFT r;
    asm("add.cc.u32 %0, %0, %8;\n\t"
        "addc.cc.u32 %1, %1, %9;\n\t"
        "addc.cc.u32 %2, %2, %10;\n\t"
        "addc.cc.u32 %3, %3, %11;\n\t"
        "addc.cc.u32 %4, %4, %12;\n\t"
        "addc.cc.u32 %5, %5, %13;\n\t"
        "addc.cc.u32 %6, %6, %14;\n\t"
        "addc.u32 %7, %7, 0;"
        : "+r"(ev[0]), "+r"(ev[1]), "+r"(ev[2]), "+r"(ev[3]), "+r"(ev[4]), "+r"(ev[5]),
          "+r"(ev[6]), "+r"(ev[7])
        : "r"(od[1]), "r"(od[2]), "r"(od[3]), "r"(od[4]), "r"(od[5]), "r"(od[6]), "r"(od[7]));
    ZK_UNROLL for (int i = 0; i < 8; i++) r.v[i] = ev[i];
    return ZF(reduce_once)(r, 0u);
}
#undef ZK_PTX_FIRST
#undef ZK_PTX_NEXT
#undef ZK_PTX_REDC
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
