/* SHA-256 and Keccak-256 (Ethereum, 0x01 padding) over batches, and binary Merkle trees
 * (docs/MERKLE.md: leaf = H(0x00 || leaf), node = H(0x01 || left || right), odd last node
 * carried up). Compiled with kernels/common.h under NVRTC and OpenCL.
 *
 * Layouts (all buffers from gpu_executor::gpu_hash):
 *   variable-length input: data (bytes) + offsets (u64, n + 1 entries, message i is
 *   data[offsets[i] .. offsets[i+1]]), digests out: 32 bytes per message.
 *   fixed 32/64-byte input: n * 32 or n * 64 bytes, 4-byte aligned.
 */

CONSTANT u32 SHA256_K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u,
    0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u,
    0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu,
    0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u,
    0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u,
    0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u,
    0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u,
    0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u
};
/* W[i] + K[i] of the padding block that follows a 64-byte message (constant). */
CONSTANT u32 SHA256_PAD64_WK[64] = {
    0xc28a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u,
    0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u,
    0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf374u,
    0x649b69c1u, 0xf0fe4786u, 0x0fe1edc6u, 0x240cf254u,
    0x4fe9346fu, 0x6cc984beu, 0x61b9411eu, 0x16f988fau,
    0xf2c65152u, 0xa88e5a6du, 0xb019fc65u, 0xb9d99ec7u,
    0x9a1231c3u, 0xe70eeaa0u, 0xfdb1232bu, 0xc7353eb0u,
    0x3069bad5u, 0xcb976d5fu, 0x5a0f118fu, 0xdc1eeefdu,
    0x0a35b689u, 0xde0b7a04u, 0x58f4ca9du, 0xe15d5b16u,
    0x007f3e86u, 0x37088980u, 0xa507ea32u, 0x6fab9537u,
    0x17406110u, 0x0d8cd6f1u, 0xcdaa3b6du, 0xc0bbbe37u,
    0x83613bdau, 0xdb48a363u, 0x0b02e931u, 0x6fd15ca7u,
    0x521afacau, 0x31338431u, 0x6ed41a95u, 0x6d437890u,
    0xc39c91f2u, 0x9eccabbdu, 0xb5c9a0e6u, 0x532fb63cu,
    0xd2c741c6u, 0x07237ea3u, 0xa4954b68u, 0x4c191d76u
};
CONSTANT u64 KECCAK_RC[24] = {
    0x0000000000000001ul, 0x0000000000008082ul, 0x800000000000808aul, 0x8000000080008000ul,
    0x000000000000808bul, 0x0000000080000001ul, 0x8000000080008081ul, 0x8000000000008009ul,
    0x000000000000008aul, 0x0000000000000088ul, 0x0000000080008009ul, 0x000000008000000aul,
    0x000000008000808bul, 0x800000000000008bul, 0x8000000000008089ul, 0x8000000000008003ul,
    0x8000000000008002ul, 0x8000000000000080ul, 0x000000000000800aul, 0x800000008000000aul,
    0x8000000080008081ul, 0x8000000000008080ul, 0x0000000080000001ul, 0x8000000080008008ul
};
DEVICE_FN void keccak_f1600(u64* s) {
    for (int round = 0; round < 24; ++round) {
        u64 c0 = s[0] ^ s[5] ^ s[10] ^ s[15] ^ s[20];
        u64 c1 = s[1] ^ s[6] ^ s[11] ^ s[16] ^ s[21];
        u64 c2 = s[2] ^ s[7] ^ s[12] ^ s[17] ^ s[22];
        u64 c3 = s[3] ^ s[8] ^ s[13] ^ s[18] ^ s[23];
        u64 c4 = s[4] ^ s[9] ^ s[14] ^ s[19] ^ s[24];
        u64 d0 = c4 ^ ROTL64(c1, 1);
        u64 d1 = c0 ^ ROTL64(c2, 1);
        u64 d2 = c1 ^ ROTL64(c3, 1);
        u64 d3 = c2 ^ ROTL64(c4, 1);
        u64 d4 = c3 ^ ROTL64(c0, 1);
        u64 b0 = (s[0] ^ d0);
        u64 b1 = ROTL64((s[6] ^ d1), 44);
        u64 b2 = ROTL64((s[12] ^ d2), 43);
        u64 b3 = ROTL64((s[18] ^ d3), 21);
        u64 b4 = ROTL64((s[24] ^ d4), 14);
        u64 b5 = ROTL64((s[3] ^ d3), 28);
        u64 b6 = ROTL64((s[9] ^ d4), 20);
        u64 b7 = ROTL64((s[10] ^ d0), 3);
        u64 b8 = ROTL64((s[16] ^ d1), 45);
        u64 b9 = ROTL64((s[22] ^ d2), 61);
        u64 b10 = ROTL64((s[1] ^ d1), 1);
        u64 b11 = ROTL64((s[7] ^ d2), 6);
        u64 b12 = ROTL64((s[13] ^ d3), 25);
        u64 b13 = ROTL64((s[19] ^ d4), 8);
        u64 b14 = ROTL64((s[20] ^ d0), 18);
        u64 b15 = ROTL64((s[4] ^ d4), 27);
        u64 b16 = ROTL64((s[5] ^ d0), 36);
        u64 b17 = ROTL64((s[11] ^ d1), 10);
        u64 b18 = ROTL64((s[17] ^ d2), 15);
        u64 b19 = ROTL64((s[23] ^ d3), 56);
        u64 b20 = ROTL64((s[2] ^ d2), 62);
        u64 b21 = ROTL64((s[8] ^ d3), 55);
        u64 b22 = ROTL64((s[14] ^ d4), 39);
        u64 b23 = ROTL64((s[15] ^ d0), 41);
        u64 b24 = ROTL64((s[21] ^ d1), 2);
        s[0] = b0 ^ (~b1 & b2);
        s[1] = b1 ^ (~b2 & b3);
        s[2] = b2 ^ (~b3 & b4);
        s[3] = b3 ^ (~b4 & b0);
        s[4] = b4 ^ (~b0 & b1);
        s[5] = b5 ^ (~b6 & b7);
        s[6] = b6 ^ (~b7 & b8);
        s[7] = b7 ^ (~b8 & b9);
        s[8] = b8 ^ (~b9 & b5);
        s[9] = b9 ^ (~b5 & b6);
        s[10] = b10 ^ (~b11 & b12);
        s[11] = b11 ^ (~b12 & b13);
        s[12] = b12 ^ (~b13 & b14);
        s[13] = b13 ^ (~b14 & b10);
        s[14] = b14 ^ (~b10 & b11);
        s[15] = b15 ^ (~b16 & b17);
        s[16] = b16 ^ (~b17 & b18);
        s[17] = b17 ^ (~b18 & b19);
        s[18] = b18 ^ (~b19 & b15);
        s[19] = b19 ^ (~b15 & b16);
        s[20] = b20 ^ (~b21 & b22);
        s[21] = b21 ^ (~b22 & b23);
        s[22] = b22 ^ (~b23 & b24);
        s[23] = b23 ^ (~b24 & b20);
        s[24] = b24 ^ (~b20 & b21);
        s[0] ^= KECCAK_RC[round];
    }
}

/* ------------------------------------------------------------------------- SHA-256 */
#define SHA_S0(x) (ROTR32(x, 2) ^ ROTR32(x, 13) ^ ROTR32(x, 22))
#define SHA_S1(x) (ROTR32(x, 6) ^ ROTR32(x, 11) ^ ROTR32(x, 25))
#define SHA_s0(x) (ROTR32(x, 7) ^ ROTR32(x, 18) ^ ((x) >> 3))
#define SHA_s1(x) (ROTR32(x, 17) ^ ROTR32(x, 19) ^ ((x) >> 10))
#define SHA_CH(e, f, g) ((g) ^ ((e) & ((f) ^ (g))))
#define SHA_MAJ(a, b, c) (((a) & (b)) | ((c) & ((a) | (b))))

DEVICE_FN void sha256_init(u32* st) {
    st[0] = 0x6a09e667u; st[1] = 0xbb67ae85u; st[2] = 0x3c6ef372u; st[3] = 0xa54ff53au;
    st[4] = 0x510e527fu; st[5] = 0x9b05688cu; st[6] = 0x1f83d9abu; st[7] = 0x5be0cd19u;
}

/* One compression of the 16 big-endian words in w (w is clobbered). */
DEVICE_FN void sha256_compress(u32* st, u32* w) {
    u32 a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
    UNROLL
    for (int i = 0; i < 64; ++i) {
        u32 wi;
        if (i < 16) {
            wi = w[i];
        } else {
            wi = SHA_s1(w[(i - 2) & 15]) + w[(i - 7) & 15] + SHA_s0(w[(i - 15) & 15]) + w[i & 15];
            w[i & 15] = wi;
        }
        u32 t1 = h + SHA_S1(e) + SHA_CH(e, f, g) + SHA256_K[i] + wi;
        u32 t2 = SHA_S0(a) + SHA_MAJ(a, b, c);
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    st[0] += a; st[1] += b; st[2] += c; st[3] += d;
    st[4] += e; st[5] += f; st[6] += g; st[7] += h;
}

/* The compression of the constant padding block after exactly 64 message bytes. */
DEVICE_FN void sha256_compress_pad64(u32* st) {
    u32 a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
    UNROLL
    for (int i = 0; i < 64; ++i) {
        u32 t1 = h + SHA_S1(e) + SHA_CH(e, f, g) + SHA256_PAD64_WK[i];
        u32 t2 = SHA_S0(a) + SHA_MAJ(a, b, c);
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    st[0] += a; st[1] += b; st[2] += c; st[3] += d;
    st[4] += e; st[5] += f; st[6] += g; st[7] += h;
}

DEVICE_FN void sha256_store(GLOBAL u32* out, const u32* st) {
    UNROLL
    for (int k = 0; k < 8; ++k) out[k] = BSWAP32(st[k]);
}

/* Variable-length messages. */
KERNEL void sha256_var(GLOBAL const u8* data, GLOBAL const u64* offsets, GLOBAL u32* out,
                       u32 n) {
    u64 i = GLOBAL_ID;
    if (i >= n) return;
    u64 start = offsets[i];
    u64 len = offsets[i + 1] - start;
    GLOBAL const u8* p = data + start;
    u32 st[8];
    u32 w[16];
    sha256_init(st);
    u64 full = len / 64;
    for (u64 blk = 0; blk < full; ++blk) {
        UNROLL
        for (int k = 0; k < 16; ++k) w[k] = LOAD_BE32(p + blk * 64 + 4 * k);
        sha256_compress(st, w);
    }
    p += full * 64;
    u32 r = (u32)(len - full * 64); /* 0..63 tail bytes */
    u32 tail_blocks = r < 56 ? 1 : 2;
    u64 bits = len * 8;
    for (u32 blk = 0; blk < tail_blocks; ++blk) {
        UNROLL
        for (int k = 0; k < 16; ++k) {
            u32 word = 0;
            UNROLL
            for (int t = 0; t < 4; ++t) {
                u32 pos = blk * 64 + 4 * k + t;
                u32 byte = pos < r ? (u32)p[pos] : (pos == r ? 0x80u : 0u);
                word = (word << 8) | byte;
            }
            w[k] = word;
        }
        if (blk == tail_blocks - 1) {
            w[14] = (u32)(bits >> 32);
            w[15] = (u32)bits;
        }
        sha256_compress(st, w);
    }
    sha256_store(out + i * 8, st);
}

/* Fixed 32-byte messages: one block. */
KERNEL void sha256_32(GLOBAL const u32* in, GLOBAL u32* out, u32 n) {
    u64 i = GLOBAL_ID;
    if (i >= n) return;
    GLOBAL const u32* m = in + i * 8;
    u32 st[8];
    u32 w[16];
    sha256_init(st);
    UNROLL
    for (int k = 0; k < 8; ++k) w[k] = BSWAP32(m[k]);
    w[8] = 0x80000000u;
    UNROLL
    for (int k = 9; k < 15; ++k) w[k] = 0;
    w[15] = 256;
    sha256_compress(st, w);
    sha256_store(out + i * 8, st);
}

/* Fixed 64-byte messages: one block plus the constant padding block. */
KERNEL void sha256_64(GLOBAL const u32* in, GLOBAL u32* out, u32 n) {
    u64 i = GLOBAL_ID;
    if (i >= n) return;
    GLOBAL const u32* m = in + i * 16;
    u32 st[8];
    u32 w[16];
    sha256_init(st);
    UNROLL
    for (int k = 0; k < 16; ++k) w[k] = BSWAP32(m[k]);
    sha256_compress(st, w);
    sha256_compress_pad64(st);
    sha256_store(out + i * 8, st);
}

/* Merkle leaf nodes: H(0x00 || leaf), 33 bytes, one block. */
KERNEL void merkle_leaf_sha256(GLOBAL const u32* leaves, GLOBAL u32* out, u32 n) {
    u64 i = GLOBAL_ID;
    if (i >= n) return;
    GLOBAL const u32* m = leaves + i * 8;
    u32 x[8];
    UNROLL
    for (int k = 0; k < 8; ++k) x[k] = BSWAP32(m[k]);
    u32 st[8];
    u32 w[16];
    sha256_init(st);
    w[0] = x[0] >> 8;
    UNROLL
    for (int k = 1; k < 8; ++k) w[k] = (x[k - 1] << 24) | (x[k] >> 8);
    w[8] = (x[7] << 24) | 0x00800000u;
    UNROLL
    for (int k = 9; k < 15; ++k) w[k] = 0;
    w[15] = 33 * 8;
    sha256_compress(st, w);
    sha256_store(out + i * 8, st);
}

/* One Merkle level: out[j] = H(0x01 || in[2j] || in[2j+1]) (65 bytes, two blocks), or
 * in[2j] unchanged when it is the odd last node. n_in = nodes in the input level. */
KERNEL void merkle_node_sha256(GLOBAL const u32* in, GLOBAL u32* out, u32 n_in) {
    u64 j = GLOBAL_ID;
    u64 n_out = ((u64)n_in + 1) / 2;
    if (j >= n_out) return;
    GLOBAL const u32* m = in + j * 16;
    if (2 * j + 1 >= (u64)n_in) {
        UNROLL
        for (int k = 0; k < 8; ++k) out[j * 8 + k] = m[k];
        return;
    }
    u32 x[16];
    UNROLL
    for (int k = 0; k < 16; ++k) x[k] = BSWAP32(m[k]);
    u32 st[8];
    u32 w[16];
    sha256_init(st);
    w[0] = 0x01000000u | (x[0] >> 8);
    UNROLL
    for (int k = 1; k < 16; ++k) w[k] = (x[k - 1] << 24) | (x[k] >> 8);
    sha256_compress(st, w);
    w[0] = (x[15] << 24) | 0x00800000u;
    UNROLL
    for (int k = 1; k < 15; ++k) w[k] = 0;
    w[15] = 65 * 8;
    sha256_compress(st, w);
    sha256_store(out + j * 8, st);
}

/* ---------------------------------------------------------------------- Keccak-256 */
#define KECCAK_RATE 136

DEVICE_FN void keccak_store(GLOBAL u64* out, const u64* s) {
    out[0] = s[0]; out[1] = s[1]; out[2] = s[2]; out[3] = s[3];
}

DEVICE_FN void keccak_zero(u64* s) {
    UNROLL
    for (int k = 0; k < 25; ++k) s[k] = 0;
}

/* Variable-length messages (Ethereum Keccak-256: pad 0x01 ... 0x80). */
KERNEL void keccak256_var(GLOBAL const u8* data, GLOBAL const u64* offsets, GLOBAL u64* out,
                          u32 n) {
    u64 i = GLOBAL_ID;
    if (i >= n) return;
    u64 start = offsets[i];
    u64 len = offsets[i + 1] - start;
    GLOBAL const u8* p = data + start;
    u64 s[25];
    keccak_zero(s);
    u64 full = len / KECCAK_RATE;
    for (u64 blk = 0; blk < full; ++blk) {
        UNROLL
        for (int k = 0; k < 17; ++k) s[k] ^= LOAD_LE64(p + blk * KECCAK_RATE + 8 * k);
        keccak_f1600(s);
    }
    p += full * KECCAK_RATE;
    u32 r = (u32)(len - full * KECCAK_RATE); /* 0..135 */
    UNROLL
    for (int k = 0; k < 17; ++k) {
        u64 lane = 0;
        UNROLL
        for (int t = 7; t >= 0; --t) {
            u32 pos = 8 * k + t;
            u64 byte = pos < r ? (u64)p[pos] : (pos == r ? 0x01ul : 0ul);
            lane = (lane << 8) | byte;
        }
        s[k] ^= lane;
    }
    s[16] ^= 0x8000000000000000ul;
    keccak_f1600(s);
    keccak_store(out + i * 4, s);
}

KERNEL void keccak256_32(GLOBAL const u64* in, GLOBAL u64* out, u32 n) {
    u64 i = GLOBAL_ID;
    if (i >= n) return;
    GLOBAL const u64* m = in + i * 4;
    u64 s[25];
    keccak_zero(s);
    s[0] = m[0]; s[1] = m[1]; s[2] = m[2]; s[3] = m[3];
    s[4] = 0x01ul;
    s[16] = 0x8000000000000000ul;
    keccak_f1600(s);
    keccak_store(out + i * 4, s);
}

KERNEL void keccak256_64(GLOBAL const u64* in, GLOBAL u64* out, u32 n) {
    u64 i = GLOBAL_ID;
    if (i >= n) return;
    GLOBAL const u64* m = in + i * 8;
    u64 s[25];
    keccak_zero(s);
    UNROLL
    for (int k = 0; k < 8; ++k) s[k] = m[k];
    s[8] = 0x01ul;
    s[16] = 0x8000000000000000ul;
    keccak_f1600(s);
    keccak_store(out + i * 4, s);
}

/* Merkle leaf nodes with Keccak-256: H(0x00 || leaf). */
KERNEL void merkle_leaf_keccak256(GLOBAL const u64* leaves, GLOBAL u64* out, u32 n) {
    u64 i = GLOBAL_ID;
    if (i >= n) return;
    GLOBAL const u64* q = leaves + i * 4;
    u64 s[25];
    keccak_zero(s);
    s[0] = q[0] << 8;
    s[1] = (q[1] << 8) | (q[0] >> 56);
    s[2] = (q[2] << 8) | (q[1] >> 56);
    s[3] = (q[3] << 8) | (q[2] >> 56);
    s[4] = (q[3] >> 56) | (0x01ul << 8);
    s[16] = 0x8000000000000000ul;
    keccak_f1600(s);
    keccak_store(out + i * 4, s);
}

/* One Merkle level with Keccak-256 (see merkle_node_sha256). */
KERNEL void merkle_node_keccak256(GLOBAL const u64* in, GLOBAL u64* out, u32 n_in) {
    u64 j = GLOBAL_ID;
    u64 n_out = ((u64)n_in + 1) / 2;
    if (j >= n_out) return;
    GLOBAL const u64* x = in + j * 8;
    if (2 * j + 1 >= (u64)n_in) {
        out[j * 4] = x[0]; out[j * 4 + 1] = x[1]; out[j * 4 + 2] = x[2]; out[j * 4 + 3] = x[3];
        return;
    }
    u64 s[25];
    keccak_zero(s);
    s[0] = (x[0] << 8) | 0x01ul;
    UNROLL
    for (int k = 1; k < 8; ++k) s[k] = (x[k] << 8) | (x[k - 1] >> 56);
    s[8] = (x[7] >> 56) | (0x01ul << 8);
    s[16] = 0x8000000000000000ul;
    keccak_f1600(s);
    keccak_store(out + j * 4, s);
}
