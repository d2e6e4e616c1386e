// Pippenger multi-scalar multiplication over BN254 G1 or G2 (needs field.cl for fr and fq,
// fq2.cl for G2, and curve.cl instantiated for the group before it: the point type and
// functions are CV(...), the coordinate field's CF(...), the strides ZK_AFF_N / ZK_XYZZ_N).
// The host compiles one program per group; kernel names are the same in both.
//
// Pipeline (host: src/zk/gpu.rs):
//  1. msm_digits: scalar i (Montgomery form) -> canonical -> `windows` signed digits of
//     `c` bits each, in (-2^(c-1), 2^(c-1)]; digit (w, i) is written to digits[w*n + i] as
//     |d| | sign << 31 (0 = no contribution) and its bucket's counter is incremented.
//  2. msm_scan_groups / msm_scan_sums / msm_scan_add: exclusive prefix sum of the counters
//     -> bucket start offsets (and a second copy that the scatter advances).
//  3. msm_scatter: counting sort of (point index | sign) by bucket.
//  4. msm_accumulate: each thread sums a fixed-size chunk of the sorted entries (mixed XYZZ
//     additions), msm_join_heads / msm_accumulate_join add up runs spanning chunks.
//  5. msm_reduce_segments: bucket b of a window weighs b+1; each thread takes a segment of L
//     buckets: running sums give sum (k+1) B_k and the segment total.
//  6. msm_reduce_blocks: each thread combines a few segments (the totals weighted by their
//     position), work-groups add their threads' shares (tree in local memory).
//  7. msm_reduce_windows: one work-group per window adds its groups' partial sums.
// The host combines the window sums (Horner, c doublings per window).

#define ZK_SIGN_BIT 0x80000000u
#define ZK_SCAN_GROUP 256u
#define ZK_SCAN_PER_THREAD 4u
#define ZK_SCAN_CHUNK (ZK_SCAN_GROUP * ZK_SCAN_PER_THREAD)

// Scalars first .. first + count (the host launches it per uploaded piece).
ZK_KERNEL msm_digits(const ZK_GLOBAL zk_u32 *scalars, ZK_GLOBAL zk_u32 *digits,
                     ZK_GLOBAL zk_u32 *counts, zk_u32 n, zk_u32 c, zk_u32 windows,
                     zk_u32 first, zk_u32 count) {
    zk_u64 gid = ZK_GID;
    if (gid >= (zk_u64)count) return;
    zk_u32 i = first + (zk_u32)gid;
    fr_t s = fr_from_mont(fr_load(scalars + (zk_u64)i * 8u));
    const zk_u32 nbk = 1u << (c - 1u);
    const zk_u32 mask = (c >= 32u) ? 0xffffffffu : ((1u << c) - 1u);
    zk_u32 carry = 0u;
    for (zk_u32 w = 0; w < windows; w++) {
        zk_u32 bit = w * c;
        zk_u32 raw = 0u;
        if (bit < 256u) {
            zk_u32 limb = bit >> 5, sh = bit & 31u;
            zk_u64 lo = (zk_u64)s.v[limb];
            zk_u64 hi = (limb + 1u < 8u) ? (zk_u64)s.v[limb + 1u] : (zk_u64)0;
            raw = (zk_u32)(((lo | (hi << 32)) >> sh)) & mask;
        }
        raw += carry;
        zk_u32 out = 0u;
        if (raw > nbk) {
            // negative digit raw - 2^c, magnitude 2^c - raw in [1, 2^(c-1))
            carry = 1u;
            zk_u32 mag = (mask - raw) + 1u;
            out = mag | ZK_SIGN_BIT;
        } else {
            carry = 0u;
            out = raw;
        }
        digits[(zk_u64)w * n + i] = out;
        zk_u32 mag = out & ~ZK_SIGN_BIT;
        if (mag != 0u) ZK_ATOMIC_INC(&counts[(zk_u64)w * nbk + (mag - 1u)]);
    }
}

// Work-group g scans counts[g*CHUNK .. (g+1)*CHUNK) into exclusive offsets (local to the
// chunk) and writes the chunk total to sums[g]. Group size must be ZK_SCAN_GROUP.
ZK_KERNEL msm_scan_groups(const ZK_GLOBAL zk_u32 *counts, ZK_GLOBAL zk_u32 *offsets,
                          ZK_GLOBAL zk_u32 *sums, zk_u32 m) {
    ZK_LOCAL zk_u32 part[ZK_SCAN_GROUP];
    zk_u32 lid = ZK_LID;
    zk_u64 base = ZK_GROUP_ID * (zk_u64)ZK_SCAN_CHUNK + (zk_u64)lid * ZK_SCAN_PER_THREAD;
    zk_u32 v[ZK_SCAN_PER_THREAD];
    zk_u32 total = 0u;
    for (zk_u32 k = 0; k < ZK_SCAN_PER_THREAD; k++) {
        zk_u64 idx = base + k;
        v[k] = idx < (zk_u64)m ? counts[idx] : 0u;
        total += v[k];
    }
    part[lid] = total;
    ZK_BARRIER();
    // Hillis-Steele inclusive scan of the per-thread totals.
    for (zk_u32 d = 1; d < ZK_SCAN_GROUP; d <<= 1) {
        zk_u32 add = (lid >= d) ? part[lid - d] : 0u;
        ZK_BARRIER();
        part[lid] += add;
        ZK_BARRIER();
    }
    zk_u32 run = part[lid] - total;  // exclusive prefix of this thread
    for (zk_u32 k = 0; k < ZK_SCAN_PER_THREAD; k++) {
        zk_u64 idx = base + k;
        if (idx < (zk_u64)m) offsets[idx] = run;
        run += v[k];
    }
    if (lid == ZK_SCAN_GROUP - 1u) sums[ZK_GROUP_ID] = part[lid];
}

// One work-group of ZK_SCAN_GROUP threads: exclusive scan of sums[0..groups) in place.
ZK_KERNEL msm_scan_sums(ZK_GLOBAL zk_u32 *sums, zk_u32 groups) {
    ZK_LOCAL zk_u32 part[ZK_SCAN_GROUP];
    zk_u32 lid = ZK_LID;
    zk_u32 per = (groups + ZK_SCAN_GROUP - 1u) / ZK_SCAN_GROUP;
    zk_u32 start = lid * per;
    zk_u32 total = 0u;
    for (zk_u32 k = 0; k < per; k++) {
        zk_u32 idx = start + k;
        if (idx < groups) total += sums[idx];
    }
    part[lid] = total;
    ZK_BARRIER();
    for (zk_u32 d = 1; d < ZK_SCAN_GROUP; d <<= 1) {
        zk_u32 add = (lid >= d) ? part[lid - d] : 0u;
        ZK_BARRIER();
        part[lid] += add;
        ZK_BARRIER();
    }
    zk_u32 run = part[lid] - total;
    for (zk_u32 k = 0; k < per; k++) {
        zk_u32 idx = start + k;
        if (idx < groups) {
            zk_u32 v = sums[idx];
            sums[idx] = run;
            run += v;
        }
    }
}

ZK_KERNEL msm_scan_add(ZK_GLOBAL zk_u32 *offsets, ZK_GLOBAL zk_u32 *cursor,
                       const ZK_GLOBAL zk_u32 *sums, zk_u32 m) {
    zk_u64 gid = ZK_GID;
    if (gid >= (zk_u64)m) return;
    zk_u32 o = offsets[gid] + sums[gid / ZK_SCAN_CHUNK];
    offsets[gid] = o;
    cursor[gid] = o;
}

ZK_KERNEL msm_scatter(const ZK_GLOBAL zk_u32 *digits, ZK_GLOBAL zk_u32 *cursor,
                      ZK_GLOBAL zk_u32 *sorted, ZK_GLOBAL zk_u32 *sorted_bucket, zk_u32 n,
                      zk_u32 c, zk_u32 windows) {
    zk_u64 gid = ZK_GID;
    if (gid >= (zk_u64)n * windows) return;
    zk_u32 d = digits[gid];
    zk_u32 mag = d & ~ZK_SIGN_BIT;
    if (mag == 0u) return;
    zk_u32 w = (zk_u32)(gid / n);
    zk_u32 i = (zk_u32)(gid - (zk_u64)w * n);
    zk_u32 nbk = 1u << (c - 1u);
    zk_u32 k = w * nbk + (mag - 1u);
    zk_u32 pos = ZK_ATOMIC_INC(&cursor[k]);
    sorted[pos] = i | (d & ZK_SIGN_BIT);
    sorted_bucket[pos] = k;
}

ZK_INLINE CV(xyzz_t) zk_add_entry(CV(xyzz_t) acc, const ZK_GLOBAL zk_u32 *points, zk_u32 e) {
    CV(affine_t) p = CV(load_affine)(points + (zk_u64)(e & ~ZK_SIGN_BIT) * ZK_AFF_N);
    if (CV(affine_is_identity)(p)) return acc;
    CF(t) y = (e & ZK_SIGN_BIT) ? CF(neg)(p.y) : p.y;
    return CV(add_affine)(acc, p.x, y);
}

// Bucket accumulation, load-balanced: thread t sums the `chunk` consecutive entries
// sorted[t*chunk ..] of the bucket-sorted array, run by run (a run = the entries of one
// bucket). After the scatter, offsets[k] / cursor[k] are the start / end of bucket k's
// entries and cursor[m-1] is the total. A run wholly inside the chunk is a finished bucket
// and is stored in buckets[]; a run that began in an earlier chunk goes to heads[t]; a run
// that begins here and goes on past the chunk goes to tails[t], and msm_accumulate_join
// later adds the heads of the following chunks to it. buckets[] must be the identity (0)
// beforehand, so empty buckets stay the identity.
ZK_KERNEL msm_accumulate(const ZK_GLOBAL zk_u32 *points, const ZK_GLOBAL zk_u32 *sorted,
                         const ZK_GLOBAL zk_u32 *sorted_bucket, const ZK_GLOBAL zk_u32 *offsets,
                         const ZK_GLOBAL zk_u32 *cursor, ZK_GLOBAL zk_u32 *buckets,
                         ZK_GLOBAL zk_u32 *heads, ZK_GLOBAL zk_u32 *tails, zk_u32 m,
                         zk_u32 chunk, zk_u32 chunks) {
    zk_u64 t = ZK_GID;
    if (t >= (zk_u64)chunks) return;
    zk_u32 total = cursor[m - 1u];
    zk_u64 start64 = t * (zk_u64)chunk;
    if (start64 >= (zk_u64)total) return;
    zk_u32 start = (zk_u32)start64;
    zk_u64 end64 = start64 + (zk_u64)chunk;
    zk_u32 end = end64 < (zk_u64)total ? (zk_u32)end64 : total;
    zk_u32 cur = sorted_bucket[start];
    CV(xyzz_t) acc = CV(identity)();
    for (zk_u32 pos = start; pos < end; pos++) {
        zk_u32 b = sorted_bucket[pos];
        if (b != cur) {
            // the run of `cur` ends here
            if (offsets[cur] < start) CV(store_xyzz)(heads + t * ZK_XYZZ_N, acc);
            else CV(store_xyzz)(buckets + (zk_u64)cur * ZK_XYZZ_N, acc);
            acc = CV(identity)();
            cur = b;
        }
        acc = zk_add_entry(acc, points, sorted[pos]);
    }
    if (offsets[cur] < start) CV(store_xyzz)(heads + t * ZK_XYZZ_N, acc);
    else if (cursor[cur] <= end) CV(store_xyzz)(buckets + (zk_u64)cur * ZK_XYZZ_N, acc);
    else CV(store_xyzz)(tails + t * ZK_XYZZ_N, acc);
}

#define ZK_JOIN_GROUP 16u

// Join, step 1 (parallel part of a heavy bucket's chain). A chunk u whose first run began
// in an earlier chunk holds that run's partial sum in heads[u]. The heads of one run are
// split at multiples of ZK_JOIN_GROUP: the first head of each piece (its "leader": u a
// multiple of the group, or the run began in chunk u - 1) adds the heads of its piece into
// heads[u]. A bucket spread over h chunks then costs ZK_JOIN_GROUP + h / ZK_JOIN_GROUP
// sequential additions instead of h.
ZK_KERNEL msm_join_heads(const ZK_GLOBAL zk_u32 *sorted_bucket, const ZK_GLOBAL zk_u32 *offsets,
                         const ZK_GLOBAL zk_u32 *cursor, ZK_GLOBAL zk_u32 *heads, zk_u32 m,
                         zk_u32 chunk, zk_u32 chunks) {
    zk_u64 u = ZK_GID;
    if (u >= (zk_u64)chunks) return;
    zk_u32 total = cursor[m - 1u];
    zk_u64 start64 = u * (zk_u64)chunk;
    if (start64 >= (zk_u64)total) return;
    zk_u32 start = (zk_u32)start64;
    zk_u32 b = sorted_bucket[start];
    zk_u32 first = offsets[b];
    if (first >= start) return;  // no head: chunk u begins with a new run
    if ((u % ZK_JOIN_GROUP) != 0u && first < start - chunk) return;  // not a leader
    zk_u32 bend = cursor[b];
    CV(xyzz_t) acc = CV(load_xyzz)(heads + u * ZK_XYZZ_N);
    int more = 0;
    for (zk_u64 x = u + 1u; (x % ZK_JOIN_GROUP) != 0u && x < (zk_u64)chunks &&
                            x * (zk_u64)chunk < (zk_u64)bend;
         x++) {
        acc = CV(add)(acc, CV(load_xyzz)(heads + x * ZK_XYZZ_N));
        more = 1;
    }
    if (more) CV(store_xyzz)(heads + u * ZK_XYZZ_N, acc);
}

// Join, step 2. Thread t: if chunk t's last run starts in it and goes on past it, add the
// leaders' heads (msm_join_heads) of the following chunks until the run ends, and store
// the bucket.
ZK_KERNEL msm_accumulate_join(const ZK_GLOBAL zk_u32 *sorted_bucket,
                              const ZK_GLOBAL zk_u32 *offsets, const ZK_GLOBAL zk_u32 *cursor,
                              ZK_GLOBAL zk_u32 *buckets, const ZK_GLOBAL zk_u32 *heads,
                              const ZK_GLOBAL zk_u32 *tails, zk_u32 m, zk_u32 chunk,
                              zk_u32 chunks) {
    zk_u64 t = ZK_GID;
    if (t >= (zk_u64)chunks) return;
    zk_u32 total = cursor[m - 1u];
    zk_u64 start64 = t * (zk_u64)chunk;
    zk_u64 end64 = start64 + (zk_u64)chunk;
    if (end64 >= (zk_u64)total) return;  // the last chunk has no run going on past it
    zk_u32 cur = sorted_bucket[(zk_u32)end64 - 1u];
    if (offsets[cur] < (zk_u32)start64 || cursor[cur] <= (zk_u32)end64) return;
    CV(xyzz_t) acc = CV(load_xyzz)(tails + t * ZK_XYZZ_N);
    zk_u32 bend = cursor[cur];
    for (zk_u64 u = t + 1u; u < (zk_u64)chunks && u * (zk_u64)chunk < (zk_u64)bend;
         u = (u / ZK_JOIN_GROUP + 1u) * ZK_JOIN_GROUP)
        acc = CV(add)(acc, CV(load_xyzz)(heads + u * ZK_XYZZ_N));
    CV(store_xyzz)(buckets + (zk_u64)cur * ZK_XYZZ_N, acc);
}

// Bucket reduction, step 1. Thread (w, j), j < segs: the len = nbk / segs buckets
// B_{j len + k} (k < len) of window w with running sums, giving
//   A_j = sum_k (k + 1) B_{j len + k}  and  T_j = sum_k B_{j len + k}
// at seg_out[2 (w segs + j)] and [.. + 1]. The window sum sum_b (b + 1) B_b is then
//   sum_j A_j + len * sum_j j T_j   (msm_reduce_blocks).
ZK_KERNEL msm_reduce_segments(const ZK_GLOBAL zk_u32 *buckets, ZK_GLOBAL zk_u32 *seg_out,
                              zk_u32 nbk, zk_u32 windows, zk_u32 segs) {
    zk_u64 gid = ZK_GID;
    if (gid >= (zk_u64)windows * segs) return;
    zk_u32 w = (zk_u32)(gid / segs);
    zk_u32 j = (zk_u32)(gid - (zk_u64)w * segs);
    zk_u32 len = nbk / segs;
    zk_u64 base = (zk_u64)w * nbk + (zk_u64)j * len;
    CV(xyzz_t) running = CV(identity)();
    CV(xyzz_t) acc = CV(identity)();
    for (zk_u32 k = len; k > 0; k--) {
        running = CV(add)(running, CV(load_xyzz)(buckets + (base + k - 1u) * ZK_XYZZ_N));
        acc = CV(add)(acc, running);
    }
    CV(store_xyzz)(seg_out + gid * 2u * ZK_XYZZ_N, acc);
    CV(store_xyzz)(seg_out + gid * 2u * ZK_XYZZ_N + ZK_XYZZ_N, running);
}

#define ZK_BLOCK_GROUP 64u

// Bucket reduction, step 2. Thread (w, t) takes the `per` segments j = t per .. (t+1) per
// of window w (segs = tpw * per, tpw threads per window) and computes
//   sum_j A_j + len * (sum_j (j - t per) T_j + (t per) * sum_j T_j),
// i.e. its share of the window sum. Work-group g (ZK_BLOCK_GROUP threads) serves window
// g / gpw (gpw = groups per window, threads past tpw add nothing) and writes the sum of its
// threads' shares (tree in local memory) to part_out[g]. log_len = log2(len).
ZK_KERNEL msm_reduce_blocks(const ZK_GLOBAL zk_u32 *seg_in, ZK_GLOBAL zk_u32 *part_out,
                            zk_u32 segs, zk_u32 per, zk_u32 log_len, zk_u32 gpw) {
    ZK_LOCAL CV(xyzz_t) part[ZK_BLOCK_GROUP];
    zk_u32 lid = ZK_LID;
    zk_u64 g = ZK_GROUP_ID;
    zk_u32 w = (zk_u32)(g / gpw);
    zk_u32 t = (zk_u32)(g - (zk_u64)w * gpw) * ZK_BLOCK_GROUP + lid;
    CV(xyzz_t) share = CV(identity)();
    if (t < segs / per) {
        zk_u64 first = (zk_u64)w * segs + (zk_u64)t * per;
        CV(xyzz_t) sum_a = CV(identity)();
        CV(xyzz_t) running = CV(identity)();
        CV(xyzz_t) weighted = CV(identity)();
        for (zk_u32 k = per; k > 0; k--) {
            zk_u64 s = first + k - 1u;
            sum_a = CV(add)(sum_a, CV(load_xyzz)(seg_in + s * 2u * ZK_XYZZ_N));
            running = CV(add)(running, CV(load_xyzz)(seg_in + s * 2u * ZK_XYZZ_N + ZK_XYZZ_N));
            if (k > 1u) weighted = CV(add)(weighted, running);
        }
        // weighted = sum_k k T_{first + k}; running = sum_k T_{first + k}
        weighted = CV(add)(weighted, CV(mul_small)(running, t * per));
        share = CV(add)(sum_a, CV(dbl_n)(weighted, log_len));
    }
    part[lid] = share;
    ZK_BARRIER();
    for (zk_u32 d = ZK_BLOCK_GROUP / 2u; d > 0; d >>= 1) {
        if (lid < d) part[lid] = CV(add)(part[lid], part[lid + d]);
        ZK_BARRIER();
    }
    if (lid == 0u) CV(store_xyzz)(part_out + ZK_GROUP_ID * ZK_XYZZ_N, part[0]);
}

#define ZK_REDUCE_GROUP 128u

// Work-group w (ZK_REDUCE_GROUP threads) adds seg_in[w*segs .. (w+1)*segs) into win_out[w].
ZK_KERNEL msm_reduce_windows(const ZK_GLOBAL zk_u32 *seg_in, ZK_GLOBAL zk_u32 *win_out,
                             zk_u32 segs) {
    ZK_LOCAL CV(xyzz_t) part[ZK_REDUCE_GROUP];
    zk_u32 lid = ZK_LID;
    zk_u64 w = ZK_GROUP_ID;
    CV(xyzz_t) acc = CV(identity)();
    for (zk_u32 j = lid; j < segs; j += ZK_REDUCE_GROUP)
        acc = CV(add)(acc, CV(load_xyzz)(seg_in + (w * segs + j) * ZK_XYZZ_N));
    part[lid] = acc;
    ZK_BARRIER();
    for (zk_u32 d = ZK_REDUCE_GROUP / 2u; d > 0; d >>= 1) {
        if (lid < d) part[lid] = CV(add)(part[lid], part[lid + d]);
        ZK_BARRIER();
    }
    if (lid == 0u) CV(store_xyzz)(win_out + w * ZK_XYZZ_N, part[0]);
}

ZK_KERNEL zk_fill_u32(ZK_GLOBAL zk_u32 *buf, zk_u32 value, zk_u64 count) {
    zk_u64 gid = ZK_GID;
    if (gid < count) buf[gid] = value;
}
