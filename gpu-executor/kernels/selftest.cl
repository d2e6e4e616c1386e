/* Self-test of kernels/common.h: every intrinsic on a few inputs, compared with Rust by
 * gpu_executor::device::self_test. in: pairs (a, b) of u64; out: 8 u64 per pair. */
KERNEL void selftest_intrinsics(GLOBAL const u64* in, GLOBAL u64* out, u32 n) {
    u64 i = GLOBAL_ID;
    if (i >= n) return;
    u64 a = in[2 * i], b = in[2 * i + 1];
    u32 c0, c1, b0, b1;
    u64 s0 = ADD_CARRY64(a, b, 0, &c0);
    u64 s1 = ADD_CARRY64(a, b, 1, &c1);
    u64 d0 = SUB_BORROW64(a, b, 0, &b0);
    u64 d1 = SUB_BORROW64(a, b, 1, &b1);
    u64 hi;
    u64 lo = MUL_WIDE64(a, b, &hi);
    u32 la = (u32)a, lb = (u32)b;
    GLOBAL u64* o = out + 8 * i;
    o[0] = s0; o[1] = s1 ^ ((u64)c0 | ((u64)c1 << 1)) ;
    o[2] = d0; o[3] = d1 ^ ((u64)b0 | ((u64)b1 << 1));
    o[4] = lo; o[5] = hi;
    o[6] = ((u64)ROTR32(la, (u32)(b & 31)) << 32) | (u64)MUL_HI32(la, lb);
    o[7] = ROTL64(a, (u32)(b & 63)) ^ (u64)BSWAP32(la);
}
