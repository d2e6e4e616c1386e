// Radix-2 NTT over the BN254 scalar field (needs field.cl instantiated for fr).
//
// Decimation in time on bit-reversed input, natural-order output, the same transform as
// ark-poly's Radix2EvaluationDomain. Inside a tile, stages go two at a time (radix 4). The log_n stages are done in passes of up to
// ZK_NTT_TILE_LOG stages each: a work-group loads the 2^t elements that those stages mix
// (stride 2^s0) into local memory, runs the t stages there and writes them back, so a
// 2^24-point transform takes 3 passes over device memory.
//  - The first pass gathers its input in bit-reversed order from `src` (out of place) and
//    can multiply it by g^i first (forward coset NTT).
//  - The last pass can multiply its output by a constant (1/n, inverse NTT) or by
//    c * g^-i (inverse coset NTT).
// Scale tables: the factor for index i is lo[i & (2^bits - 1)] * hi[i >> bits]; mode 0 = none,
// 1 = lo[0] for every index, 2 = the table product.
// tw[e] = w^e for e < n/2, w the primitive n-th root of unity (its inverse for iNTT).

#define ZK_NTT_TILE_LOG 10u
#define ZK_NTT_TILE (1u << ZK_NTT_TILE_LOG)

ZK_INLINE fr_t zk_scale_factor(const ZK_GLOBAL zk_u32 *lo, const ZK_GLOBAL zk_u32 *hi,
                               zk_u32 bits, zk_u32 mode, zk_u32 i) {
    if (mode == 1u) return fr_load(lo);
    zk_u32 mask = (1u << bits) - 1u;
    return fr_mul(fr_load(lo + (zk_u64)(i & mask) * 8u), fr_load(hi + (zk_u64)(i >> bits) * 8u));
}

// tw[e] = lo[e & mask] * hi[e >> bits] for e < count.
ZK_KERNEL ntt_twiddles(ZK_GLOBAL zk_u32 *tw, const ZK_GLOBAL zk_u32 *lo,
                       const ZK_GLOBAL zk_u32 *hi, zk_u32 bits, zk_u32 count) {
    zk_u64 e = ZK_GID;
    if (e >= (zk_u64)count) return;
    fr_store(tw + e * 8u, zk_scale_factor(lo, hi, bits, 2u, (zk_u32)e));
}

ZK_KERNEL ntt_pass(const ZK_GLOBAL zk_u32 *src, ZK_GLOBAL zk_u32 *dst,
                   const ZK_GLOBAL zk_u32 *tw, zk_u32 log_n, zk_u32 s0, zk_u32 t,
                   zk_u32 gather, zk_u32 pre_mode, const ZK_GLOBAL zk_u32 *pre_lo,
                   const ZK_GLOBAL zk_u32 *pre_hi, zk_u32 pre_bits, zk_u32 post_mode,
                   const ZK_GLOBAL zk_u32 *post_lo, const ZK_GLOBAL zk_u32 *post_hi,
                   zk_u32 post_bits) {
    ZK_LOCAL fr_t x[ZK_NTT_TILE];
    const zk_u32 lid = ZK_LID;
    const zk_u32 lsize = ZK_GROUP_SIZE;
    const zk_u64 g = ZK_GROUP_ID;
    const zk_u32 size = 1u << t;
    const zk_u64 low = g & (((zk_u64)1 << s0) - 1u);
    const zk_u64 high = g >> s0;
    const zk_u64 base = (high << (s0 + t)) + low;

    for (zk_u32 i = lid; i < size; i += lsize) {
        zk_u64 idx = base + ((zk_u64)i << s0);
        fr_t v;
        if (gather) {
            zk_u32 from = zk_bitrev((zk_u32)idx, log_n);
            v = fr_load(src + (zk_u64)from * 8u);
            if (pre_mode != 0u) v = fr_mul(v, zk_scale_factor(pre_lo, pre_hi, pre_bits, pre_mode, from));
        } else {
            v = fr_load(src + idx * 8u);
        }
        x[i] = v;
    }
    ZK_BARRIER();

    // Two stages per step (radix-4 style): a thread loads the four elements i0 + {0, h, 2h,
    // 3h} (h = 2^u, bits u and u+1 of i0 clear) that stages u and u+1 mix, does both stages
    // in registers and stores them back: half the barriers and local-memory round trips, and
    // two independent multiplications at a time.
    zk_u32 u = 0;
    for (; u + 1u < t; u += 2u) {
        const zk_u32 s = s0 + u;
        const zk_u64 stride0 = (zk_u64)1 << (log_n - 1u - s);  // stage s: n / 2^(s+1)
        const zk_u64 stride1 = stride0 >> 1;                    // stage s + 1
        const zk_u32 h = 1u << u;
        for (zk_u32 b = lid; b < (size >> 2); b += lsize) {
            zk_u32 j = b & (h - 1u);
            zk_u32 i0 = ((b >> u) << (u + 2u)) + j;
            fr_t a0 = x[i0];
            fr_t a1 = x[i0 + h];
            fr_t a2 = x[i0 + 2u * h];
            fr_t a3 = x[i0 + 3u * h];
            zk_u64 k0 = ((zk_u64)j << s0) + low;
            zk_u64 k1 = ((zk_u64)(j + h) << s0) + low;
            zk_u64 e = k0 * stride0;
            if (e != 0u) {
                fr_t w = fr_load(tw + e * 8u);
                a1 = fr_mul(a1, w);
                a3 = fr_mul(a3, w);
            }
            fr_t b0 = fr_add(a0, a1), b1 = fr_sub(a0, a1);
            fr_t b2 = fr_add(a2, a3), b3 = fr_sub(a2, a3);
            zk_u64 e0 = k0 * stride1;
            if (e0 != 0u) b2 = fr_mul(b2, fr_load(tw + e0 * 8u));
            b3 = fr_mul(b3, fr_load(tw + k1 * stride1 * 8u));
            x[i0] = fr_add(b0, b2);
            x[i0 + 2u * h] = fr_sub(b0, b2);
            x[i0 + h] = fr_add(b1, b3);
            x[i0 + 3u * h] = fr_sub(b1, b3);
        }
        ZK_BARRIER();
    }
    for (; u < t; u++) {
        const zk_u32 s = s0 + u;
        const zk_u32 stride = (zk_u32)((zk_u32)1 << (log_n - 1u - s));  // n / 2^(s+1)
        for (zk_u32 b = lid; b < (size >> 1); b += lsize) {
            zk_u32 j = b & ((1u << u) - 1u);
            zk_u32 i0 = ((b >> u) << (u + 1u)) + j;
            zk_u32 i1 = i0 + (1u << u);
            zk_u64 e = (((zk_u64)j << s0) + low) * stride;
            fr_t a0 = x[i0];
            fr_t a1 = x[i1];
            if (e != 0u) a1 = fr_mul(a1, fr_load(tw + e * 8u));
            x[i0] = fr_add(a0, a1);
            x[i1] = fr_sub(a0, a1);
        }
        ZK_BARRIER();
    }

    for (zk_u32 i = lid; i < size; i += lsize) {
        zk_u64 idx = base + ((zk_u64)i << s0);
        fr_t v = x[i];
        if (post_mode != 0u) v = fr_mul(v, zk_scale_factor(post_lo, post_hi, post_bits, post_mode, (zk_u32)idx));
        fr_store(dst + idx * 8u, v);
    }
}
