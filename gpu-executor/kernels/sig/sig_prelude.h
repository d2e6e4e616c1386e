/* Portability prelude of the signature kernels (kernels/sig). The same source is compiled by
 * NVRTC (CUDA), by the OpenCL C compiler (NVIDIA, PoCL) and, for host-side debugging, by a C
 * compiler; this header maps the few things that differ. Only the signature kernels use it. */
#ifndef SIG_PRELUDE_H
#define SIG_PRELUDE_H

#if defined(__OPENCL_VERSION__)
typedef ulong sig_u64;
typedef uint sig_u32;
typedef uchar sig_u8;
typedef int sig_i32;
typedef char sig_i8;
#define SIG_FN static inline
#define SIG_NOINLINE static __attribute__((noinline))
#define SIG_KERNEL __kernel
#define SIG_GLOBAL __global
#define SIG_CONST __constant
#define SIG_GID() ((sig_u32)get_global_id(0))
#elif defined(__CUDACC_RTC__) || defined(__CUDACC__)
typedef unsigned long long sig_u64;
typedef unsigned int sig_u32;
typedef unsigned char sig_u8;
typedef int sig_i32;
typedef signed char sig_i8;
#define SIG_FN __device__ static inline
/* Point-level and exponentiation functions are real calls: with everything inlined the
 * kernels grow to ~10^5 instructions and NVRTC takes minutes (and overflows its stack). */
#define SIG_NOINLINE __device__ static __noinline__
#define SIG_KERNEL extern "C" __global__
#define SIG_GLOBAL
/* Tables read with thread-dependent indices: global memory (cached), not __constant__, which
 * serialises divergent reads. */
#define SIG_CONST __device__ const
#define SIG_GID() ((sig_u32)(blockIdx.x * blockDim.x + threadIdx.x))
#else
#include <stdint.h>
typedef uint64_t sig_u64;
typedef uint32_t sig_u32;
typedef uint8_t sig_u8;
typedef int32_t sig_i32;
typedef int8_t sig_i8;
#define SIG_FN static inline
#define SIG_NOINLINE static __attribute__((noinline))
#define SIG_KERNEL
#define SIG_GLOBAL
#define SIG_CONST static const
extern sig_u32 sig_host_gid;
#define SIG_GID() sig_host_gid
#endif

#endif
