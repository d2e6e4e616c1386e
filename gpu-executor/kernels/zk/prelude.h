// SuperVM zk kernels: portability prelude shared by NVRTC (CUDA) and OpenCL C.
// Every name is prefixed ZK_/zk_ so this file never clashes with kernels/common.h,
// which the backend prepends to every source.
#ifndef ZK_PRELUDE_H
#define ZK_PRELUDE_H

#if defined(__CUDACC_RTC__) || defined(__CUDACC__) || defined(__CUDA_ARCH__)
#define ZK_CUDA 1
typedef unsigned int zk_u32;
typedef unsigned long long zk_u64;
#define ZK_KERNEL extern "C" __global__ void
#define ZK_GLOBAL
#define ZK_LOCAL __shared__
#define ZK_INLINE static __device__ __forceinline__
// Curve-level functions are called, not inlined, on CUDA: each one holds a dozen inlined
// field multiplications, and inlining them everywhere makes the PTX (and its JIT) huge.
#define ZK_NOINLINE static __device__ __noinline__
#define ZK_GID ((zk_u64)blockIdx.x * (zk_u64)blockDim.x + (zk_u64)threadIdx.x)
#define ZK_LID ((zk_u32)threadIdx.x)
#define ZK_GROUP_ID ((zk_u64)blockIdx.x)
#define ZK_GROUP_SIZE ((zk_u32)blockDim.x)
#define ZK_BARRIER() __syncthreads()
#define ZK_ATOMIC_INC(p) atomicAdd((p), 1u)
#define ZK_UNROLL _Pragma("unroll")
#else
typedef uint zk_u32;
typedef ulong zk_u64;
#define ZK_KERNEL __kernel void
#define ZK_GLOBAL __global
#define ZK_LOCAL __local
#define ZK_INLINE static inline
#define ZK_NOINLINE static __attribute__((noinline))
#define ZK_GID ((zk_u64)get_global_id(0))
#define ZK_LID ((zk_u32)get_local_id(0))
#define ZK_GROUP_ID ((zk_u64)get_group_id(0))
#define ZK_GROUP_SIZE ((zk_u32)get_local_size(0))
#define ZK_BARRIER() barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE)
#define ZK_ATOMIC_INC(p) atomic_inc(p)
#define ZK_UNROLL _Pragma("unroll")
#endif

#define ZK_CAT2_(a, b) a##_##b
#define ZK_CAT2(a, b) ZK_CAT2_(a, b)

// Reverses the low `bits` bits of x (bits in 1..=32).
ZK_INLINE zk_u32 zk_bitrev(zk_u32 x, zk_u32 bits) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0F0F0F0Fu) | ((x & 0x0F0F0F0Fu) << 4);
    x = ((x >> 8) & 0x00FF00FFu) | ((x & 0x00FF00FFu) << 8);
    x = (x >> 16) | (x << 16);
    return bits == 0 ? 0u : (x >> (32u - bits));
}

#endif // ZK_PRELUDE_H
