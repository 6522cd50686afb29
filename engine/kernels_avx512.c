/* kernels_avx512: the AVX-512 (F, BW, VL, DQ, VNNI) variant of the CPU kernels. It mirrors
 * kernels_avx2.c: the same blocked weight-matrix product (kernels_mm_tmpl.h) with 16-lane f32
 * vectors for f32/f16/bf16 weights, and for q8_0/q4_0 blocks the 256-bit VNNI instruction
 * vpdpbusd in place of AVX2's vpmaddubsw + vpmaddwd (the same exact integer sums, so q8_0/q4_0
 * results equal the AVX2 variant's). Vector kernels (norms, RoPE, SiLU, attention) are the
 * AVX2 ones. Chosen only when the CPU reports every one of these extensions. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels_isa.h"

/* 8-lane tree of the AVX2 variant (used by the q8_0/q4_0 path). */
static inline float mm_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* 16 lanes: lanes l and l+8 first, then the 8-lane tree. */
static inline float mm_hsum16(__m512 v)
{
    return mm_hsum8(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

static void cvt_bf16_16(float *dst, const uint16_t *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
    }
    sm_avx2_cvt_bf16(dst + i, src + i, n - i);
}

static void cvt_f16_16(float *dst, const uint16_t *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(src + i))));
    sm_avx2_cvt_f16(dst + i, src + i, n - i);
}

static inline __m256i qdot_vnni(__m256i aw, __m256i sx)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx);
}

#define MM_V __m512
#define MM_VL 16
#define MM_ZERO() _mm512_setzero_ps()
#define MM_LOADU(p) _mm512_loadu_ps(p)
#define MM_STOREU(p, v) _mm512_storeu_ps((p), (v))
#define MM_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define MM_HSUM(v) mm_hsum16(v)
#define MM_CVT_BF16(dst, src, n) cvt_bf16_16((dst), (src), (n))
#define MM_CVT_F16(dst, src, n) cvt_f16_16((dst), (src), (n))
#define MM_LOAD_BF16(p) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p))), 16))
#define MM_LOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define MM_QDOT(aw, sx) qdot_vnni((aw), (sx))
#include "kernels_mm_tmpl.h"

double sm_avx512_peak(sm_dtype t, int64_t iters)
{
    if (t == SM_DTYPE_Q8_0 || t == SM_DTYPE_Q4_0) {
        __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-5);
        __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        __m512i c6 = c0, c7 = c0, c8 = c0, c9 = c0;
        for (int64_t it = 0; it < iters; it++) {
            c0 = _mm512_dpbusd_epi32(c0, a, b);
            c1 = _mm512_dpbusd_epi32(c1, a, b);
            c2 = _mm512_dpbusd_epi32(c2, a, b);
            c3 = _mm512_dpbusd_epi32(c3, a, b);
            c4 = _mm512_dpbusd_epi32(c4, a, b);
            c5 = _mm512_dpbusd_epi32(c5, a, b);
            c6 = _mm512_dpbusd_epi32(c6, a, b);
            c7 = _mm512_dpbusd_epi32(c7, a, b);
            c8 = _mm512_dpbusd_epi32(c8, a, b);
            c9 = _mm512_dpbusd_epi32(c9, a, b);
            __asm__ volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5),
                             "+v"(c6), "+v"(c7), "+v"(c8), "+v"(c9), "+v"(a), "+v"(b));
        }
        __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), c2),
                                     _mm512_add_epi32(_mm512_add_epi32(c3, c4), c5));
        s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(c6, c7), _mm512_add_epi32(c8, c9)));
        volatile int sink = _mm512_reduce_add_epi32(s);
        (void)sink;
        return (double)iters * 10 * 64 * 2;
    }
    __m512 m = _mm512_set1_ps(0.999999f), d = _mm512_set1_ps(1e-6f);
    __m512 c0 = _mm512_set1_ps(0.0f), c1 = _mm512_set1_ps(1.0f), c2 = _mm512_set1_ps(2.0f);
    __m512 c3 = _mm512_set1_ps(3.0f), c4 = _mm512_set1_ps(4.0f), c5 = _mm512_set1_ps(5.0f);
    __m512 c6 = _mm512_set1_ps(6.0f), c7 = _mm512_set1_ps(7.0f), c8 = _mm512_set1_ps(8.0f);
    __m512 c9 = _mm512_set1_ps(9.0f), c10 = _mm512_set1_ps(10.0f), c11 = _mm512_set1_ps(11.0f);
    for (int64_t it = 0; it < iters; it++) {
        c0 = _mm512_fmadd_ps(c0, m, d);
        c1 = _mm512_fmadd_ps(c1, m, d);
        c2 = _mm512_fmadd_ps(c2, m, d);
        c3 = _mm512_fmadd_ps(c3, m, d);
        c4 = _mm512_fmadd_ps(c4, m, d);
        c5 = _mm512_fmadd_ps(c5, m, d);
        c6 = _mm512_fmadd_ps(c6, m, d);
        c7 = _mm512_fmadd_ps(c7, m, d);
        c8 = _mm512_fmadd_ps(c8, m, d);
        c9 = _mm512_fmadd_ps(c9, m, d);
        c10 = _mm512_fmadd_ps(c10, m, d);
        c11 = _mm512_fmadd_ps(c11, m, d);
        __asm__ volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5),
                         "+v"(c6), "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11));
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return (double)iters * 12 * 16 * 2;
}

static const sm_kvariant avx512 = {
    .isa = SM_ISA_AVX512,
    .scratch_floats = mm_scratch_floats,
    .matmul_rows = mm_rows,
    .quantize_x = sm_avx2_quantize_x,
    .rows_to_f32 = sm_avx2_rows_to_f32,
    .rmsnorm = sm_avx2_rmsnorm,
    .silu_mul = sm_avx2_silu_mul,
    .rope = sm_avx2_rope,
    .attention_kv = sm_avx2_attention_kv,
    .peak = sm_avx512_peak,
};

const sm_kvariant *sm_kvariant_avx512(void)
{
    return &avx512;
}
