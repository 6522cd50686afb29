/* kernels_avx512_mm: the 16-lane vector macros (f32 FMA, bf16/f16 conversion, horizontal sums,
 * VNNI 8-bit dot products) and the blocked weight-matrix product built from them
 * (kernels_mm_tmpl.h), shared by the two AVX-512 variants. Include once, from a file compiled
 * with the AVX-512 flags, after kernels_isa.h. */
#ifndef SM_KERNELS_AVX512_MM_H
#define SM_KERNELS_AVX512_MM_H
#include <immintrin.h>

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
/* 32 vector registers: micro tiles of 8 weight rows x 3 batch rows, each weight vector loaded
 * once for the 3 rows */
#define MM_NR 8
#define MM_IN_REG(v) __asm__("" : "+v"(v))
/* bf16 weights in pairs (see kernels_mm_tmpl.h): 32 values per load, the even ones by a shift,
 * the odd ones by a mask; one operation per 16 weights where the widening load takes two */
#define MM_BF16_PAIRS 1
#define MM_BF16_LOAD32(p) _mm512_loadu_si512((const void *)(p))
#define MM_BF16_EVEN(p) _mm512_castsi512_ps(_mm512_slli_epi32(MM_BF16_LOAD32(p), 16))
#define MM_BF16_ODD(p)                                                                             \
    _mm512_castsi512_ps(_mm512_and_si512(MM_BF16_LOAD32(p), _mm512_set1_epi32((int)0xffff0000u)))
#include "kernels_mm_tmpl.h"
#endif
