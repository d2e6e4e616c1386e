/* SuperVM GPU kernels: the common header, prepended to every kernel source by the Rust side
 * (gpu_executor::device::COMMON_HEADER). One source compiles under NVRTC (CUDA, where
 * __CUDACC_RTC__ is defined) and under any OpenCL C 1.2+ compiler (NVIDIA, PoCL, ...).
 *
 * Write kernels as:
 *     KERNEL void my_kernel(GLOBAL const u32* in, GLOBAL u32* out, u32 n) {
 *         u64 i = GLOBAL_ID;
 *         if (i >= n) return;
 *         out[i] = ROTR32(in[i], 7);
 *     }
 * and helpers as `DEVICE_FN u32 f(u32 x) { ... }`.
 */
#ifndef SUPERVM_COMMON_H
#define SUPERVM_COMMON_H

#ifdef __CUDACC_RTC__
/* ------------------------------------------------------------------ CUDA (NVRTC) */
#define SUPERVM_CUDA 1
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;

#define KERNEL extern "C" __global__
#define DEVICE_FN static __device__ __forceinline__
#define GLOBAL
#define LOCAL __shared__
#define CONSTANT __constant__ const
#define PRIVATE
#define RESTRICT __restrict__

#define GLOBAL_ID ((u64)blockIdx.x * (u64)blockDim.x + (u64)threadIdx.x)
#define LOCAL_ID ((u32)threadIdx.x)
#define GROUP_ID ((u64)blockIdx.x)
#define GROUP_SIZE ((u32)blockDim.x)
#define GLOBAL_SIZE ((u64)gridDim.x * (u64)blockDim.x)
#define BARRIER_LOCAL() __syncthreads()
#define UNROLL _Pragma("unroll")

DEVICE_FN u32 ROTR32(u32 x, u32 n) { return __funnelshift_r(x, x, n); }
DEVICE_FN u32 ROTL32(u32 x, u32 n) { return __funnelshift_l(x, x, n); }
DEVICE_FN u64 ROTL64(u64 x, u32 n) { return (x << (n & 63)) | (x >> ((64 - n) & 63)); }
DEVICE_FN u32 MUL_HI32(u32 a, u32 b) { return __umulhi(a, b); }
DEVICE_FN u64 MUL_HI64(u64 a, u64 b) { return __umul64hi(a, b); }
DEVICE_FN u32 BSWAP32(u32 x) { return __byte_perm(x, 0, 0x0123); }
DEVICE_FN u32 CLZ32(u32 x) { return (u32)__clz(x); }
DEVICE_FN u32 POPCOUNT32(u32 x) { return (u32)__popc(x); }

/* a + b + carry_in (0/1); *carry_out = carry. PTX carry chain in one asm block (the
 * carry flag is not preserved between separate asm statements). For long multi-limb
 * chains write one asm block with add.cc / addc.cc / addc under #ifdef SUPERVM_CUDA. */
DEVICE_FN u64 ADD_CARRY64(u64 a, u64 b, u32 carry_in, u32* carry_out) {
    u64 r; u32 c;
    asm("{\n\t.reg .u32 t;\n\t"
        "add.cc.u32 t, %4, 0xffffffff;\n\t" /* CF = (carry_in != 0) */
        "addc.cc.u64 %0, %2, %3;\n\t"
        "addc.u32 %1, 0, 0;\n\t}"
        : "=l"(r), "=r"(c) : "l"(a), "l"(b), "r"(carry_in));
    *carry_out = c;
    return r;
}
/* a - b - borrow_in (0/1); *borrow_out = borrow. */
DEVICE_FN u64 SUB_BORROW64(u64 a, u64 b, u32 borrow_in, u32* borrow_out) {
    u64 r; u32 c;
    asm("{\n\t.reg .u32 t;\n\t"
        "sub.cc.u32 t, 0, %4;\n\t" /* CF (borrow) = (borrow_in != 0) */
        "subc.cc.u64 %0, %2, %3;\n\t"
        "subc.u32 t, 0, 0;\n\t"
        "and.b32 %1, t, 1;\n\t}"
        : "=l"(r), "=r"(c) : "l"(a), "l"(b), "r"(borrow_in));
    *borrow_out = c;
    return r;
}
/* Full 64x64 -> 128 product: returns low, *hi = high. */
DEVICE_FN u64 MUL_WIDE64(u64 a, u64 b, u64* hi) { *hi = __umul64hi(a, b); return a * b; }

#else
/* ------------------------------------------------------------------ OpenCL C */
#define SUPERVM_OPENCL 1
typedef uchar u8;
typedef ushort u16;
typedef uint u32;
typedef int i32;
typedef ulong u64;
typedef long i64;

#define KERNEL __kernel
#define DEVICE_FN static inline
#define GLOBAL __global
#define LOCAL __local
#define CONSTANT __constant
#define PRIVATE __private
#define RESTRICT restrict

#define GLOBAL_ID ((u64)get_global_id(0))
#define LOCAL_ID ((u32)get_local_id(0))
#define GROUP_ID ((u64)get_group_id(0))
#define GROUP_SIZE ((u32)get_local_size(0))
#define GLOBAL_SIZE ((u64)get_global_size(0))
#define BARRIER_LOCAL() barrier(CLK_LOCAL_MEM_FENCE)
#define UNROLL _Pragma("unroll")

DEVICE_FN u32 ROTR32(u32 x, u32 n) { return rotate(x, (u32)((32 - n) & 31)); }
DEVICE_FN u32 ROTL32(u32 x, u32 n) { return rotate(x, (u32)(n & 31)); }
DEVICE_FN u64 ROTL64(u64 x, u32 n) { return rotate(x, (u64)(n & 63)); }
DEVICE_FN u32 MUL_HI32(u32 a, u32 b) { return mul_hi(a, b); }
DEVICE_FN u64 MUL_HI64(u64 a, u64 b) { return mul_hi(a, b); }
DEVICE_FN u32 BSWAP32(u32 x) {
    return (x >> 24) | ((x >> 8) & 0x0000ff00u) | ((x << 8) & 0x00ff0000u) | (x << 24);
}
DEVICE_FN u32 CLZ32(u32 x) { return (u32)clz(x); }
DEVICE_FN u32 POPCOUNT32(u32 x) { return (u32)popcount(x); }

DEVICE_FN u64 ADD_CARRY64(u64 a, u64 b, u32 carry_in, PRIVATE u32* carry_out) {
    u64 s = a + b;
    u32 c1 = s < a;
    u64 r = s + (u64)carry_in;
    *carry_out = c1 | (r < s);
    return r;
}
DEVICE_FN u64 SUB_BORROW64(u64 a, u64 b, u32 borrow_in, PRIVATE u32* borrow_out) {
    u64 d = a - b;
    u32 b1 = a < b;
    u64 r = d - (u64)borrow_in;
    *borrow_out = b1 | (d < (u64)borrow_in);
    return r;
}
DEVICE_FN u64 MUL_WIDE64(u64 a, u64 b, PRIVATE u64* hi) { *hi = mul_hi(a, b); return a * b; }
#endif

/* Big-endian / little-endian loads from byte pointers (any alignment). */
DEVICE_FN u32 LOAD_BE32(GLOBAL const u8* p) {
    return ((u32)p[0] << 24) | ((u32)p[1] << 16) | ((u32)p[2] << 8) | (u32)p[3];
}
DEVICE_FN u64 LOAD_LE64(GLOBAL const u8* p) {
    u64 r = 0;
    for (int i = 7; i >= 0; --i) r = (r << 8) | (u64)p[i];
    return r;
}

#endif /* SUPERVM_COMMON_H */
