// cu_common: small device helpers shared by the CUDA backend's .cu files.
#ifndef SM_CU_COMMON_CUH
#define SM_CU_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "sm_cuda_kernels.h"

#define SM_CU_STREAM(s) (reinterpret_cast<cudaStream_t>(s))

static __device__ __forceinline__ float sm_bf2f(uint16_t v)
{
    return __uint_as_float(static_cast<uint32_t>(v) << 16);
}

static __device__ __forceinline__ uint16_t sm_f2bf(float f)
{
    return __bfloat16_as_ushort(__float2bfloat16(f));
}

static __device__ __forceinline__ float sm_h2f(uint16_t v)
{
    return __half2float(__ushort_as_half(v));
}

static __device__ __forceinline__ uint16_t sm_f2h(float f)
{
    return __half_as_ushort(__float2half(f));
}

// The sum over a warp, in a fixed order (the same in every lane).
static __device__ __forceinline__ float sm_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float sm_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// A 64-bit mixing hash (splitmix64's finaliser).
static __device__ __forceinline__ uint64_t sm_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// A uniform float in (0, 1) from a hash.
static __device__ __forceinline__ float sm_unit(uint64_t h)
{
    return (static_cast<float>(h >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

#endif
