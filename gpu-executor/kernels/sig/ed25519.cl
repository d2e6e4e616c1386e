/* Ed25519 batch verification, one thread per signature, under the rules of ed25519-dalek
 * `verify_strict` (docs/SIGNATURES.md). Concatenated after sig_prelude.h, ed25519_consts.h,
 * field256.h and sha512.h.
 *
 * Per signature: S < L; A and R decoded as curve25519-dalek decodes them (y taken mod p, x
 * from the square root, the sign bit applied); R's encoding canonical; neither A nor R of
 * small order; k = SHA-512(R || A || M) mod L; P = [S]B - [k]A by Straus' method with
 * signed radix-16 digits (shared doublings, a table of [1..8]A per thread, a constant table
 * of [1..8]B); accept iff P == R, compared projectively (no inversion). */

typedef struct {
    fe X, Y, Z, T;
} ge_p3;

typedef struct {
    fe YpX, YmX, Z, T2d;
} ge_cached;

SIG_NOINLINE void fe_pow22523(fe *out, const fe *z) {
    fe t0, t1, t2;
    fe_sqr(&t0, z);
    fe_sqr_n(&t1, &t0, 2);
    fe_mul(&t1, z, &t1);
    fe_mul(&t0, &t0, &t1);
    fe_sqr(&t0, &t0);
    fe_mul(&t0, &t1, &t0);
    fe_sqr_n(&t1, &t0, 5);
    fe_mul(&t0, &t1, &t0);
    fe_sqr_n(&t1, &t0, 10);
    fe_mul(&t1, &t1, &t0);
    fe_sqr_n(&t2, &t1, 20);
    fe_mul(&t1, &t2, &t1);
    fe_sqr_n(&t1, &t1, 10);
    fe_mul(&t0, &t1, &t0);
    fe_sqr_n(&t1, &t0, 50);
    fe_mul(&t1, &t1, &t0);
    fe_sqr_n(&t2, &t1, 100);
    fe_mul(&t1, &t2, &t1);
    fe_sqr_n(&t1, &t1, 50);
    fe_mul(&t0, &t1, &t0);
    fe_sqr_n(&t0, &t0, 2);
    fe_mul(out, &t0, z);
}

/* Decode 32 bytes as curve25519-dalek's CompressedEdwardsY::decompress does. Returns 0 when
 * y does not belong to a curve point. *canonical is set when the bytes are the unique
 * encoding of the point (y < p, and not "x = 0 with the sign bit set"). */
SIG_NOINLINE int ge_decompress(ge_p3 *r, const sig_u8 *s, int *canonical) {
    fe y, y2, u, v, v3, x, t, vxx;
    fe one, d;
    fe_one(&one);
    fe dd = {{ED_D_LIMBS}};
    fe_copy(&d, &dd);
    fe_from_le(&y, s);
    int sign = s[31] >> 7;
    y.v[7] &= 0x7fffffffu;
    int y_canonical = fe_is_canonical(&y);
    fe_sqr(&y2, &y);
    fe_sub(&u, &y2, &one);
    fe_mul(&v, &d, &y2);
    fe_add(&v, &v, &one);
    fe_sqr(&v3, &v);
    fe_mul(&v3, &v3, &v);       /* v^3 */
    fe_sqr(&x, &v3);
    fe_mul(&x, &x, &v);
    fe_mul(&x, &x, &u);         /* u v^7 */
    fe_pow22523(&x, &x);        /* (u v^7)^((p-5)/8) */
    fe_mul(&x, &x, &v3);
    fe_mul(&x, &x, &u);         /* u v^3 (u v^7)^((p-5)/8) */
    fe_sqr(&t, &x);
    fe_mul(&vxx, &v, &t);
    if (!fe_equal(&vxx, &u)) {
        fe nu;
        fe_neg(&nu, &u);
        if (!fe_equal(&vxx, &nu)) return 0;
        fe sm = {{ED_SQRTM1_LIMBS}};
        fe_mul(&x, &x, &sm);
    }
    fe_canon(&x);
    if (fe_is_odd(&x) != sign) fe_neg(&x, &x);
    int x_zero = fe_is_zero(&x);
    *canonical = y_canonical && !(x_zero && sign);
    fe_copy(&r->X, &x);
    fe_copy(&r->Y, &y);
    fe_one(&r->Z);
    fe_mul(&r->T, &x, &y);
    return 1;
}

/* r = 2p (ref10's p2 doubling, a = -1). T is computed only when need_t. r may be p. */
SIG_NOINLINE void ge_dbl(ge_p3 *r, const ge_p3 *p, int need_t) {
    fe XX, YY, B, A, AA, Y3, Z3, X3, T3;
    fe_sqr(&XX, &p->X);
    fe_sqr(&YY, &p->Y);
    fe_sqr(&B, &p->Z);
    fe_add(&B, &B, &B);
    fe_add(&A, &p->X, &p->Y);
    fe_sqr(&AA, &A);
    fe_add(&Y3, &YY, &XX);
    fe_sub(&Z3, &YY, &XX);
    fe_sub(&X3, &AA, &Y3);
    fe_sub(&T3, &B, &Z3);
    fe_mul(&r->X, &X3, &T3);
    fe_mul(&r->Y, &Y3, &Z3);
    fe_mul(&r->Z, &Z3, &T3);
    if (need_t) fe_mul(&r->T, &X3, &Y3);
}

SIG_FN void ge_to_cached(ge_cached *c, const ge_p3 *p) {
    fe d2 = {{ED_D2_LIMBS}};
    fe_add(&c->YpX, &p->Y, &p->X);
    fe_sub(&c->YmX, &p->Y, &p->X);
    fe_copy(&c->Z, &p->Z);
    fe_mul(&c->T2d, &p->T, &d2);
}

/* r = p + q (neg = 0) or p - q (neg = 1); complete twisted Edwards formulas (HWCD, a = -1).
 * z2 is 2 Z_q for a projective q; affine_q says Z_q = 1 (then qz is ignored). r may be p. */
SIG_NOINLINE void ge_add_parts(ge_p3 *r, const ge_p3 *p, const fe *ypx, const fe *ymx, const fe *t2d,
                         const fe *qz, int affine_q, int neg) {
    fe A, B, C, D, E, F, G, H, t;
    fe_add(&t, &p->Y, &p->X);
    fe_mul(&A, &t, neg ? ymx : ypx);
    fe_sub(&t, &p->Y, &p->X);
    fe_mul(&B, &t, neg ? ypx : ymx);
    fe_mul(&C, t2d, &p->T);
    if (affine_q) {
        fe_copy(&D, &p->Z);
    } else {
        fe_mul(&D, &p->Z, qz);
    }
    fe_add(&D, &D, &D);
    fe_sub(&E, &A, &B);
    fe_add(&H, &A, &B);
    if (neg) {
        fe_sub(&G, &D, &C);
        fe_add(&F, &D, &C);
    } else {
        fe_add(&G, &D, &C);
        fe_sub(&F, &D, &C);
    }
    fe_mul(&r->X, &E, &F);
    fe_mul(&r->Y, &G, &H);
    fe_mul(&r->Z, &F, &G);
    fe_mul(&r->T, &E, &H);
}

SIG_FN void ge_add_cached(ge_p3 *r, const ge_p3 *p, const ge_cached *q, int neg) {
    ge_add_parts(r, p, &q->YpX, &q->YmX, &q->T2d, &q->Z, 0, neg);
}

SIG_FN void ge_identity(ge_p3 *r) {
    fe_zero(&r->X);
    fe_one(&r->Y);
    fe_one(&r->Z);
    fe_zero(&r->T);
}

/* [8]P == identity */
SIG_NOINLINE int ge_is_small_order(const ge_p3 *p) {
    ge_p3 t;
    ge_dbl(&t, p, 0);
    ge_dbl(&t, &t, 0);
    ge_dbl(&t, &t, 0);
    return fe_is_zero(&t.X) && fe_equal(&t.Y, &t.Z);
}

/* Signed radix-16 digits e[0..64) of a scalar below 2^255: s = sum e[i] 16^i, -8 <= e < 8
 * (the top digit may reach 8). */
SIG_NOINLINE void sc_recode16(sig_i8 *e, const sig_u32 *s) {
    for (int i = 0; i < 64; i++) e[i] = (sig_i8)((s[i >> 3] >> (4 * (i & 7))) & 15u);
    int carry = 0;
    for (int i = 0; i < 63; i++) {
        int d = e[i] + carry;
        carry = (d + 8) >> 4;
        e[i] = (sig_i8)(d - (carry << 4));
    }
    e[63] = (sig_i8)(e[63] + carry);
}

/* Byte `pos` of R || A || M followed by SHA-512 padding, for a stream of `total` bytes
 * (64 + |M|) padded to `padded` bytes. */
SIG_FN sig_u8 ed_stream_byte(const sig_u8 *ra, SIG_GLOBAL const sig_u8 *msg, sig_u32 total,
                             sig_u32 padded, sig_u32 pos) {
    if (pos < 64) return ra[pos];
    if (pos < total) return msg[pos - 64];
    if (pos == total) return 0x80;
    if (pos >= padded - 8) {
        sig_u64 bits = (sig_u64)total * 8u;
        sig_u32 shift = 8u * (padded - 1u - pos);
        return (sig_u8)(shift < 64u ? (bits >> shift) : 0u);
    }
    return 0;
}

/* k = SHA-512(R || A || M) mod L, as 8 limbs. */
SIG_NOINLINE void ed_challenge(sig_u32 *k, const sig_u8 *ra, SIG_GLOBAL const sig_u8 *msg, sig_u32 len) {
    sig_u64 h[8], w[16];
    sha512_init(h);
    sig_u32 total = 64u + len;
    sig_u32 nblocks = (total + 16u) / 128u + 1u;
    sig_u32 padded = nblocks * 128u;
    for (sig_u32 b = 0; b < nblocks; b++) {
        sig_u32 base = b * 128u;
        for (int j = 0; j < 16; j++) {
            sig_u32 pos = base + 8u * (sig_u32)j;
            sig_u64 word = 0;
            if (pos >= 64u && pos + 8u <= total) {
                SIG_GLOBAL const sig_u8 *m = msg + (pos - 64u);
                for (int q = 0; q < 8; q++) word = (word << 8) | m[q];
            } else {
                for (int q = 0; q < 8; q++)
                    word = (word << 8) | ed_stream_byte(ra, msg, total, padded, pos + (sig_u32)q);
            }
            w[j] = word;
        }
        sha512_block(h, w);
    }
    /* The digest, read as a little-endian 512-bit integer. */
    sig_u32 x[16];
    for (int i = 0; i < 8; i++) {
        sig_u64 v = h[i];
        sig_u32 b0 = (sig_u32)(v >> 56) & 0xffu, b1 = (sig_u32)(v >> 48) & 0xffu;
        sig_u32 b2 = (sig_u32)(v >> 40) & 0xffu, b3 = (sig_u32)(v >> 32) & 0xffu;
        sig_u32 b4 = (sig_u32)(v >> 24) & 0xffu, b5 = (sig_u32)(v >> 16) & 0xffu;
        sig_u32 b6 = (sig_u32)(v >> 8) & 0xffu, b7 = (sig_u32)v & 0xffu;
        x[2 * i] = b0 | (b1 << 8) | (b2 << 16) | (b3 << 24);
        x[2 * i + 1] = b4 | (b5 << 8) | (b6 << 16) | (b7 << 24);
    }
    sig_u32 l[9] = {ED_L_LIMBS, 0u};
    sig_u32 mu[9] = {ED_MU_L_LIMBS};
    mp_barrett(k, x, l, mu);
}

SIG_FN int ed25519_verify_one(SIG_GLOBAL const sig_u8 *key, SIG_GLOBAL const sig_u8 *sig,
                              SIG_GLOBAL const sig_u8 *msg, sig_u32 len) {
    sig_u8 ra[64];
    for (int i = 0; i < 32; i++) {
        ra[i] = sig[i];
        ra[32 + i] = key[i];
    }
    /* S < L */
    sig_u32 s[9];
    {
        sig_u8 sb[32];
        for (int i = 0; i < 32; i++) sb[i] = sig[32 + i];
        fe sf;
        fe_from_le(&sf, sb);
        for (int i = 0; i < 8; i++) s[i] = sf.v[i];
        s[8] = 0;
        sig_u32 l[9] = {ED_L_LIMBS, 0u};
        if (mp_cmp(s, l, 9) >= 0) return 0;
    }
    ge_p3 A, R;
    int a_canonical, r_canonical;
    if (!ge_decompress(&A, ra + 32, &a_canonical)) return 0;
    if (!ge_decompress(&R, ra, &r_canonical)) return 0;
    if (!r_canonical) return 0; /* dalek compares R's bytes with a canonical encoding */
    if (ge_is_small_order(&R) || ge_is_small_order(&A)) return 0;

    sig_u32 k[8];
    ed_challenge(k, ra, msg, len);

    sig_i8 ek[64], es[64];
    sc_recode16(ek, k);
    sc_recode16(es, s);

    /* [1..8]A, cached */
    ge_cached at[8];
    {
        ge_p3 p;
        ge_to_cached(&at[0], &A);
        ge_dbl(&p, &A, 1);
        ge_to_cached(&at[1], &p);
        for (int i = 2; i < 8; i++) {
            ge_add_cached(&p, &p, &at[0], 0);
            ge_to_cached(&at[i], &p);
        }
    }

    ge_p3 acc;
    ge_identity(&acc);
    for (int i = 63; i >= 0; i--) {
        if (i != 63) {
            ge_dbl(&acc, &acc, 0);
            ge_dbl(&acc, &acc, 0);
            ge_dbl(&acc, &acc, 0);
            ge_dbl(&acc, &acc, 1);
        }
        int dk = ek[i];
        if (dk > 0) ge_add_cached(&acc, &acc, &at[dk - 1], 1);
        else if (dk < 0) ge_add_cached(&acc, &acc, &at[-dk - 1], 0);
        int ds = es[i];
        if (ds != 0) {
            int j = (ds > 0 ? ds : -ds) - 1;
            fe ypx, ymx, t2d;
            for (int q = 0; q < 8; q++) {
                ypx.v[q] = ED_BASE_TABLE[24 * j + q];
                ymx.v[q] = ED_BASE_TABLE[24 * j + 8 + q];
                t2d.v[q] = ED_BASE_TABLE[24 * j + 16 + q];
            }
            ge_add_parts(&acc, &acc, &ypx, &ymx, &t2d, &t2d, 1, ds < 0);
        }
    }
    /* acc == R projectively: X == xR Z and Y == yR Z. */
    fe t;
    fe_mul(&t, &R.X, &acc.Z);
    if (!fe_equal(&t, &acc.X)) return 0;
    fe_mul(&t, &R.Y, &acc.Z);
    if (!fe_equal(&t, &acc.Y)) return 0;
    return 1;
}

/* out[i] = 1 when signature i verifies. Message i is msgs[offsets[i] .. offsets[i + 1]). */
SIG_KERNEL void sig_ed25519_verify(SIG_GLOBAL const sig_u8 *keys, SIG_GLOBAL const sig_u8 *sigs,
                                   SIG_GLOBAL const sig_u8 *msgs, SIG_GLOBAL const sig_u32 *offsets,
                                   SIG_GLOBAL sig_u8 *out, sig_u32 n) {
    sig_u32 i = SIG_GID();
    if (i >= n) return;
    sig_u32 start = offsets[i];
    sig_u32 len = offsets[i + 1] - start;
    out[i] = (sig_u8)ed25519_verify_one(keys + 32u * i, sigs + 64u * i, msgs + start, len);
}
