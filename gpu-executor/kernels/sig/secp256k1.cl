/* secp256k1 ECDSA verification and Ethereum-style public key recovery, one thread per
 * signature, with k256's acceptance rules (docs/SIGNATURES.md). Concatenated after
 * sig_prelude.h, secp256k1_consts.h, field256.h and keccak256.h.
 *
 * Points in Jacobian coordinates (x = X/Z^2, y = Y/Z^3) with an explicit infinity flag;
 * u1 G + u2 Q by Straus' method with 4-bit windows (shared doublings, a per-thread table of
 * [1..15]Q, a constant affine table of [1..15]G); the verification compares x(R) with r
 * projectively (X == r Z^2, or (r + n) Z^2 when r + n < p) instead of inverting Z. */

typedef struct {
    fe X, Y, Z;
    int inf;
} kp;

/* ---- field: exponentiations by the libsecp256k1 addition chains ---- */

/* x2 = a^(2^2-1), x3 = a^(2^3-1), x22 = a^(2^22-1), x223 = a^(2^223-1) */
SIG_NOINLINE void kf_chain(fe *x2, fe *x22, fe *x223, const fe *a) {
    fe x3, x6, x9, x11, x44, x88, x176, x220, t;
    fe_sqr(x2, a);
    fe_mul(x2, x2, a);
    fe_sqr(&x3, x2);
    fe_mul(&x3, &x3, a);
    fe_sqr_n(&x6, &x3, 3);
    fe_mul(&x6, &x6, &x3);
    fe_sqr_n(&x9, &x6, 3);
    fe_mul(&x9, &x9, &x3);
    fe_sqr_n(&x11, &x9, 2);
    fe_mul(&x11, &x11, x2);
    fe_sqr_n(x22, &x11, 11);
    fe_mul(x22, x22, &x11);
    fe_sqr_n(&x44, x22, 22);
    fe_mul(&x44, &x44, x22);
    fe_sqr_n(&x88, &x44, 44);
    fe_mul(&x88, &x88, &x44);
    fe_sqr_n(&x176, &x88, 88);
    fe_mul(&x176, &x176, &x88);
    fe_sqr_n(&x220, &x176, 44);
    fe_mul(&x220, &x220, &x44);
    fe_sqr_n(&t, &x220, 3);
    fe_mul(x223, &t, &x3);
}

/* r = a^((p+1)/4); a square root when one exists (the caller checks). */
SIG_FN void kf_sqrt(fe *r, const fe *a) {
    fe x2, x22, x223, t;
    kf_chain(&x2, &x22, &x223, a);
    fe_sqr_n(&t, &x223, 23);
    fe_mul(&t, &t, &x22);
    fe_sqr_n(&t, &t, 6);
    fe_mul(&t, &t, &x2);
    fe_sqr_n(r, &t, 2);
}

/* r = a^(p-2) = 1/a */
SIG_FN void kf_inv(fe *r, const fe *a) {
    fe x2, x22, x223, t;
    kf_chain(&x2, &x22, &x223, a);
    fe_sqr_n(&t, &x223, 23);
    fe_mul(&t, &t, &x22);
    fe_sqr_n(&t, &t, 5);
    fe_mul(&t, &t, a);
    fe_sqr_n(&t, &t, 3);
    fe_mul(&t, &t, &x2);
    fe_sqr_n(&t, &t, 2);
    fe_mul(r, &t, a);
}

/* y^2 = x^3 + 7 */
SIG_FN void kf_rhs(fe *r, const fe *x) {
    fe seven;
    fe_zero(&seven);
    seven.v[0] = 7;
    fe_sqr(r, x);
    fe_mul(r, r, x);
    fe_add(r, r, &seven);
}

/* ---- scalars mod n ---- */

SIG_NOINLINE void sc_mul(sig_u32 *r, const sig_u32 *a, const sig_u32 *b) {
    sig_u32 n[9] = {K_N_LIMBS};
    sig_u32 mu[9] = {K_MU_N_LIMBS};
    mp_mulmod(r, a, b, n, mu);
}

/* r = a^(n-2) = 1/a mod n, 4-bit fixed window. */
SIG_NOINLINE void sc_inv(sig_u32 *r, const sig_u32 *a) {
    sig_u32 tbl[16][8];
    for (int i = 0; i < 8; i++) tbl[0][i] = 0;
    tbl[0][0] = 1;
    for (int i = 0; i < 8; i++) tbl[1][i] = a[i];
    for (int j = 2; j < 16; j++) sc_mul(tbl[j], tbl[j - 1], a);
    sig_u32 e[8] = {K_N_MINUS_2_LIMBS};
    sig_u32 acc[8];
    for (int i = 0; i < 8; i++) acc[i] = tbl[0][i];
    for (int w = 63; w >= 0; w--) {
        if (w != 63) {
            sc_mul(acc, acc, acc);
            sc_mul(acc, acc, acc);
            sc_mul(acc, acc, acc);
            sc_mul(acc, acc, acc);
        }
        sig_u32 d = (e[w >> 3] >> (4 * (w & 7))) & 15u;
        if (d) sc_mul(acc, acc, tbl[d]);
    }
    for (int i = 0; i < 8; i++) r[i] = acc[i];
}

/* 32 big-endian bytes from global memory into 8 limbs. */
SIG_FN void be32_load(sig_u32 *r, SIG_GLOBAL const sig_u8 *b) {
    for (int i = 0; i < 8; i++) {
        SIG_GLOBAL const sig_u8 *w = b + 28 - 4 * i;
        r[i] = ((sig_u32)w[0] << 24) | ((sig_u32)w[1] << 16) | ((sig_u32)w[2] << 8) | (sig_u32)w[3];
    }
}

/* 1 <= a < n */
SIG_FN int sc_in_range(const sig_u32 *a) {
    sig_u32 n[9] = {K_N_LIMBS};
    sig_u32 t[9];
    for (int i = 0; i < 8; i++) t[i] = a[i];
    t[8] = 0;
    return !mp_is_zero(t, 8) && mp_cmp(t, n, 9) < 0;
}

SIG_FN int sc_is_high(const sig_u32 *s) {
    sig_u32 h[8] = {K_HALF_N_LIMBS};
    return mp_cmp(s, h, 8) > 0;
}

/* hash mod n (a 256-bit value is below 2n) */
SIG_FN void sc_reduce_hash(sig_u32 *z) {
    sig_u32 n[9] = {K_N_LIMBS};
    if (mp_cmp(z, n, 8) >= 0) mp_sub(z, n, 8);
}

/* ---- points ---- */

SIG_NOINLINE void kp_dbl(kp *r, const kp *p) {
    if (p->inf) {
        r->inf = 1;
        return;
    }
    fe A, B, C, D, E, F, t;
    fe_sqr(&A, &p->X);
    fe_sqr(&B, &p->Y);
    fe_sqr(&C, &B);
    fe_add(&t, &p->X, &B);
    fe_sqr(&t, &t);
    fe_sub(&t, &t, &A);
    fe_sub(&t, &t, &C);
    fe_add(&D, &t, &t);
    fe_add(&E, &A, &A);
    fe_add(&E, &E, &A);
    fe_sqr(&F, &E);
    fe_mul(&r->Z, &p->Y, &p->Z);
    fe_add(&r->Z, &r->Z, &r->Z);
    fe_sub(&r->X, &F, &D);
    fe_sub(&r->X, &r->X, &D);
    fe_sub(&t, &D, &r->X);
    fe_mul(&t, &E, &t);
    fe_add(&C, &C, &C);
    fe_add(&C, &C, &C);
    fe_add(&C, &C, &C);
    fe_sub(&r->Y, &t, &C);
    r->inf = 0;
}

/* r = p + q, q affine (x2, y2). r may be p. */
SIG_NOINLINE void kp_add_affine(kp *r, const kp *p, const fe *x2, const fe *y2) {
    if (p->inf) {
        fe_copy(&r->X, x2);
        fe_copy(&r->Y, y2);
        fe_one(&r->Z);
        r->inf = 0;
        return;
    }
    fe Z1Z1, U2, S2, H, HH, I, J, rr, V, t;
    fe_sqr(&Z1Z1, &p->Z);
    fe_mul(&U2, x2, &Z1Z1);
    fe_mul(&S2, y2, &p->Z);
    fe_mul(&S2, &S2, &Z1Z1);
    fe_sub(&H, &U2, &p->X);
    fe_sub(&rr, &S2, &p->Y);
    if (fe_is_zero(&H)) {
        if (fe_is_zero(&rr)) {
            kp_dbl(r, p);
        } else {
            r->inf = 1;
        }
        return;
    }
    fe_add(&rr, &rr, &rr);
    fe_sqr(&HH, &H);
    fe_add(&I, &HH, &HH);
    fe_add(&I, &I, &I);
    fe_mul(&J, &H, &I);
    fe_mul(&V, &p->X, &I);
    fe Y1;
    fe_copy(&Y1, &p->Y);
    /* Z3 = (Z1 + H)^2 - Z1Z1 - HH */
    fe_add(&t, &p->Z, &H);
    fe_sqr(&t, &t);
    fe_sub(&t, &t, &Z1Z1);
    fe_sub(&r->Z, &t, &HH);
    /* X3 = r^2 - J - 2V */
    fe_sqr(&t, &rr);
    fe_sub(&t, &t, &J);
    fe_sub(&t, &t, &V);
    fe_sub(&r->X, &t, &V);
    /* Y3 = r (V - X3) - 2 Y1 J */
    fe_sub(&t, &V, &r->X);
    fe_mul(&t, &rr, &t);
    fe_mul(&Y1, &Y1, &J);
    fe_add(&Y1, &Y1, &Y1);
    fe_sub(&r->Y, &t, &Y1);
    r->inf = 0;
}

/* r = p + q, both Jacobian. r may be p (not q). */
SIG_NOINLINE void kp_add(kp *r, const kp *p, const kp *q) {
    if (q->inf) {
        *r = *p;
        return;
    }
    if (p->inf) {
        *r = *q;
        return;
    }
    fe Z1Z1, Z2Z2, U1, U2, S1, S2, H, I, J, rr, V, t;
    fe_sqr(&Z1Z1, &p->Z);
    fe_sqr(&Z2Z2, &q->Z);
    fe_mul(&U1, &p->X, &Z2Z2);
    fe_mul(&U2, &q->X, &Z1Z1);
    fe_mul(&S1, &p->Y, &q->Z);
    fe_mul(&S1, &S1, &Z2Z2);
    fe_mul(&S2, &q->Y, &p->Z);
    fe_mul(&S2, &S2, &Z1Z1);
    fe_sub(&H, &U2, &U1);
    fe_sub(&rr, &S2, &S1);
    if (fe_is_zero(&H)) {
        if (fe_is_zero(&rr)) {
            kp_dbl(r, p);
        } else {
            r->inf = 1;
        }
        return;
    }
    fe_add(&rr, &rr, &rr);
    fe_add(&I, &H, &H);
    fe_sqr(&I, &I);
    fe_mul(&J, &H, &I);
    fe_mul(&V, &U1, &I);
    /* Z3 = ((Z1 + Z2)^2 - Z1Z1 - Z2Z2) H */
    fe_add(&t, &p->Z, &q->Z);
    fe_sqr(&t, &t);
    fe_sub(&t, &t, &Z1Z1);
    fe_sub(&t, &t, &Z2Z2);
    fe_mul(&r->Z, &t, &H);
    fe_sqr(&t, &rr);
    fe_sub(&t, &t, &J);
    fe_sub(&t, &t, &V);
    fe_sub(&r->X, &t, &V);
    fe_sub(&t, &V, &r->X);
    fe_mul(&t, &rr, &t);
    fe_mul(&S1, &S1, &J);
    fe_add(&S1, &S1, &S1);
    fe_sub(&r->Y, &t, &S1);
    r->inf = 0;
}

/* r = u1 G + u2 Q (Straus, 4-bit windows). */
SIG_NOINLINE void kp_double_mul(kp *r, const sig_u32 *u1, const sig_u32 *u2, const fe *qx, const fe *qy) {
    kp tbl[15];
    fe_copy(&tbl[0].X, qx);
    fe_copy(&tbl[0].Y, qy);
    fe_one(&tbl[0].Z);
    tbl[0].inf = 0;
    kp_dbl(&tbl[1], &tbl[0]);
    for (int i = 2; i < 15; i++) kp_add_affine(&tbl[i], &tbl[i - 1], qx, qy);
    kp acc;
    acc.inf = 1;
    for (int w = 63; w >= 0; w--) {
        if (!acc.inf) {
            kp_dbl(&acc, &acc);
            kp_dbl(&acc, &acc);
            kp_dbl(&acc, &acc);
            kp_dbl(&acc, &acc);
        }
        sig_u32 d2 = (u2[w >> 3] >> (4 * (w & 7))) & 15u;
        if (d2) kp_add(&acc, &acc, &tbl[d2 - 1]);
        sig_u32 d1 = (u1[w >> 3] >> (4 * (w & 7))) & 15u;
        if (d1) {
            fe gx, gy;
            for (int q = 0; q < 8; q++) {
                gx.v[q] = K_G_TABLE[16 * (d1 - 1) + q];
                gy.v[q] = K_G_TABLE[16 * (d1 - 1) + 8 + q];
            }
            kp_add_affine(&acc, &acc, &gx, &gy);
        }
    }
    *r = acc;
}

/* Decode a SEC1 key as k256 does: 02/03/05 || x (33 bytes; 05 is "compact", even y) or
 * 04 || x || y (65 bytes); coordinates must be below p and the point on the curve. */
SIG_NOINLINE int kp_decode_sec1(fe *x, fe *y, SIG_GLOBAL const sig_u8 *key, sig_u32 len) {
    sig_u8 tag = key[0];
    sig_u8 xb[32];
    for (int i = 0; i < 32; i++) xb[i] = key[1 + i];
    fe_from_be(x, xb);
    if (!fe_is_canonical(x)) return 0;
    fe rhs;
    kf_rhs(&rhs, x);
    if (len == 33u && (tag == 2 || tag == 3 || tag == 5)) {
        kf_sqrt(y, &rhs);
        fe t;
        fe_sqr(&t, y);
        if (!fe_equal(&t, &rhs)) return 0;
        fe_canon(y);
        int odd = tag == 3;
        if (fe_is_odd(y) != odd) fe_neg(y, y);
        return 1;
    }
    if (len == 65u && tag == 4) {
        sig_u8 yb[32];
        for (int i = 0; i < 32; i++) yb[i] = key[33 + i];
        fe_from_be(y, yb);
        if (!fe_is_canonical(y)) return 0;
        fe t;
        fe_sqr(&t, y);
        return fe_equal(&t, &rhs);
    }
    return 0;
}

SIG_FN int secp256k1_verify_one(SIG_GLOBAL const sig_u8 *key, sig_u32 key_len,
                                SIG_GLOBAL const sig_u8 *hash, SIG_GLOBAL const sig_u8 *sig,
                                sig_u32 require_low_s) {
    sig_u32 r[8], s[8], z[8];
    be32_load(r, sig);
    be32_load(s, sig + 32);
    if (!sc_in_range(r) || !sc_in_range(s)) return 0;
    /* (r, s) and (r, n - s) verify alike, so without the low-S rule s is used as it is. */
    if (require_low_s && sc_is_high(s)) return 0;
    fe qx, qy;
    if (!kp_decode_sec1(&qx, &qy, key, key_len)) return 0;
    be32_load(z, hash);
    sc_reduce_hash(z);
    sig_u32 w[8], u1[8], u2[8];
    sc_inv(w, s);
    sc_mul(u1, z, w);
    sc_mul(u2, r, w);
    kp R;
    kp_double_mul(&R, u1, u2, &qx, &qy);
    if (R.inf) return 0;
    fe zz, t, rf;
    fe_sqr(&zz, &R.Z);
    for (int i = 0; i < 8; i++) rf.v[i] = r[i];
    fe_mul(&t, &rf, &zz);
    if (fe_equal(&t, &R.X)) return 1;
    /* x(R) in [n, p) reduces to r too when r + n < p. */
    sig_u32 pmn[8] = {K_P_MINUS_N_LIMBS};
    if (mp_cmp(r, pmn, 8) < 0) {
        sig_u32 n[9] = {K_N_LIMBS};
        fe rn, nf;
        for (int i = 0; i < 8; i++) nf.v[i] = n[i];
        fe_add(&rn, &rf, &nf);
        fe_mul(&t, &rn, &zz);
        if (fe_equal(&t, &R.X)) return 1;
    }
    return 0;
}

/* Recovery; on success writes x || y (64 bytes, big-endian) and the 20-byte address. */
SIG_FN int secp256k1_recover_one(SIG_GLOBAL const sig_u8 *hash, SIG_GLOBAL const sig_u8 *sig,
                                 sig_u32 require_low_s, sig_u8 *pub, sig_u8 *addr) {
    sig_u8 v = sig[64];
    int odd;
    if (v == 0 || v == 27) odd = 0;
    else if (v == 1 || v == 28) odd = 1;
    else return 0;
    sig_u32 r[8], s[8], z[8];
    be32_load(r, sig);
    be32_load(s, sig + 32);
    if (!sc_in_range(r) || !sc_in_range(s)) return 0;
    if (sc_is_high(s)) {
        if (require_low_s) return 0;
        /* (r, n - s) with the other parity recovers the same key */
        sig_u32 n[9] = {K_N_LIMBS};
        sig_u32 t[8];
        for (int i = 0; i < 8; i++) t[i] = n[i];
        mp_sub(t, s, 8);
        for (int i = 0; i < 8; i++) s[i] = t[i];
        odd = !odd;
    }
    /* R = (r, y) with the parity of v; r < n < p is a valid field element */
    fe rx, ry, rhs, t;
    for (int i = 0; i < 8; i++) rx.v[i] = r[i];
    kf_rhs(&rhs, &rx);
    kf_sqrt(&ry, &rhs);
    fe_sqr(&t, &ry);
    if (!fe_equal(&t, &rhs)) return 0;
    fe_canon(&ry);
    if (fe_is_odd(&ry) != odd) fe_neg(&ry, &ry);
    be32_load(z, hash);
    sc_reduce_hash(z);
    sig_u32 ri[8], u1[8], u2[8];
    sc_inv(ri, r);
    sc_mul(u1, z, ri);
    if (!mp_is_zero(u1, 8)) {
        sig_u32 n[9] = {K_N_LIMBS};
        sig_u32 m[8];
        for (int i = 0; i < 8; i++) m[i] = n[i];
        mp_sub(m, u1, 8);
        for (int i = 0; i < 8; i++) u1[i] = m[i];
    }
    sc_mul(u2, s, ri);
    kp Q;
    kp_double_mul(&Q, u1, u2, &rx, &ry);
    if (Q.inf) return 0;
    fe zi, zi2, x, y;
    kf_inv(&zi, &Q.Z);
    fe_sqr(&zi2, &zi);
    fe_mul(&x, &Q.X, &zi2);
    fe_mul(&zi2, &zi2, &zi);
    fe_mul(&y, &Q.Y, &zi2);
    fe_canon(&x);
    fe_canon(&y);
    for (int i = 0; i < 8; i++) {
        for (int q = 0; q < 4; q++) {
            pub[31 - 4 * i - q] = (sig_u8)(x.v[i] >> (8 * q));
            pub[63 - 4 * i - q] = (sig_u8)(y.v[i] >> (8 * q));
        }
    }
    sig_u8 digest[32];
    keccak256_small(digest, pub, 64);
    for (int i = 0; i < 20; i++) addr[i] = digest[12 + i];
    return 1;
}

/* keys: 65 bytes per item (a 33-byte key in the first 33), key_lens: 33 or 65 (anything else
 * fails), hashes: 32 bytes, sigs: 64 bytes r || s. out[i] = 1 when signature i verifies. */
SIG_KERNEL void sig_secp256k1_verify(SIG_GLOBAL const sig_u8 *keys, SIG_GLOBAL const sig_u8 *key_lens,
                                     SIG_GLOBAL const sig_u8 *hashes, SIG_GLOBAL const sig_u8 *sigs,
                                     SIG_GLOBAL sig_u8 *out, sig_u32 n, sig_u32 require_low_s) {
    sig_u32 i = SIG_GID();
    if (i >= n) return;
    out[i] = (sig_u8)secp256k1_verify_one(keys + 65u * i, key_lens[i], hashes + 32u * i, sigs + 64u * i,
                                          require_low_s);
}

/* hashes: 32 bytes, sigs: 65 bytes r || s || v. out: 85 bytes per item, ok || x || y || address
 * (all zero when recovery fails). */
SIG_KERNEL void sig_secp256k1_recover(SIG_GLOBAL const sig_u8 *hashes, SIG_GLOBAL const sig_u8 *sigs,
                                      SIG_GLOBAL sig_u8 *out, sig_u32 n, sig_u32 require_low_s) {
    sig_u32 i = SIG_GID();
    if (i >= n) return;
    sig_u8 pub[64], addr[20];
    for (int q = 0; q < 64; q++) pub[q] = 0;
    for (int q = 0; q < 20; q++) addr[q] = 0;
    int ok = secp256k1_recover_one(hashes + 32u * i, sigs + 65u * i, require_low_s, pub, addr);
    SIG_GLOBAL sig_u8 *o = out + 85u * i;
    o[0] = (sig_u8)ok;
    for (int q = 0; q < 64; q++) o[1 + q] = ok ? pub[q] : 0;
    for (int q = 0; q < 20; q++) o[65 + q] = ok ? addr[q] : 0;
}
