/* kernels_avx2_packed: what the AVX2 products of packed weights (kernels_avx2_q8x.c, _q4x.c,
 * _q4kx.c, _q6kx.c) share: the 8-lane vector macros kernels_q8x_tmpl.h asks for, the 4-bit
 * values of a packed group, the 16-bit running sum of the 4-bit products, and the q4_k / q5_k
 * group scales. A file includes this, defines the macros that are its own, then includes
 * kernels_q8x_tmpl.h. */
#ifndef SM_KERNELS_AVX2_PACKED_H
#define SM_KERNELS_AVX2_PACKED_H

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernels_hsum.h"
#include "kernels_isa.h"

/* Vector v (0..7) of a group's 4-bit values at p: the low 4 bits of the 32 bytes at
 * p + 32 (v / 2) for even v, the high 4 bits for odd v, as unsigned bytes 0..15. */
static inline __m256i sm_avx2_nibbles(const uint8_t *p, int v)
{
    __m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32 * (v >> 1)));
    if (v & 1)
        w = _mm256_srli_epi16(w, 4);
    return _mm256_and_si256(w, _mm256_set1_epi8(0x0f));
}

/* i + the products of 4-bit values w and activations x in 16-bit lanes, kept in a register as
 * it is: without the empty asm GCC sums a group's 8 products of each output as a tree and
 * spills them all to the stack */
static inline __m256i sm_avx2_dot16(__m256i i, __m256i w, __m256i x)
{
    __m256i s = _mm256_add_epi16(i, _mm256_maddubs_epi16(w, x));
    __asm__("" : "+x"(s));
    return s;
}

/* q4_k / q5_k: a weight row's group scales (20 bytes: 8 scales, 8 mins, f16 d and dmin) as
 * d x scale and dmin x min per sub-block, and a group's lanes s added to the accumulators av:
 * av = fma(s, (d x scale) x dx, av), then av = fma(-(dmin x min), xs, av) with the activation
 * group's scales dx and sums xs */
typedef struct sm_avx2_kq_ws {
    __m256 dsc, dmn;
} sm_avx2_kq_ws;

static inline __m256 sm_avx2_bytes_f32(const uint8_t *p)
{
    return _mm256_cvtepi32_ps(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)));
}

static inline sm_avx2_kq_ws sm_avx2_kq_load_ws(const uint8_t *p)
{
    int32_t dd;
    memcpy(&dd, p + 16, 4);
    __m128 d = _mm_cvtph_ps(_mm_cvtsi32_si128(dd)); /* d, dmin */
    return (sm_avx2_kq_ws){
        _mm256_mul_ps(_mm256_broadcastss_ps(d), sm_avx2_bytes_f32(p)),
        _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(d)), sm_avx2_bytes_f32(p + 8))};
}

static inline __m256 sm_avx2_kq_apply(__m256 av, __m256i s, sm_avx2_kq_ws ws, const uint8_t *xg)
{
    __m256 dx = _mm256_loadu_ps((const float *)(const void *)(xg + 256));
    __m256 xs = _mm256_loadu_ps((const float *)(const void *)(xg + SM_Q4X_XCORR));
    av = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(ws.dsc, dx), av);
    return _mm256_fnmadd_ps(ws.dmn, xs, av);
}

/* q4_k and q5_k files define SM_AVX2_KQ_SCALES before including this: their groups' scales */
#ifdef SM_AVX2_KQ_SCALES
#define Q8X_XG SM_Q4X_XGROUP
#define Q8X_SCB 20
#define Q8X_WS sm_avx2_kq_ws
#define Q8X_LOAD_WS(p) sm_avx2_kq_load_ws(p)
#define Q8X_APPLY(av, s, ws, xg) sm_avx2_kq_apply((av), (s), (ws), (xg))
#endif

#define Q8X_L 8
#define Q8X_IV __m256i
#define Q8X_FV __m256
#define Q8X_LOAD_X(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define Q8X_ZERO_I() _mm256_setzero_si256()
#define Q8X_ZERO_F() _mm256_setzero_ps()
#define Q8X_LOAD_F(p) _mm256_loadu_ps(p)
#define Q8X_STORE_F(p, v) _mm256_storeu_ps((p), (v))
#define Q8X_MUL(a, b) _mm256_mul_ps((a), (b))
#define Q8X_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define Q8X_CVT(i) _mm256_cvtepi32_ps(i)
#define Q8X_LOAD_SCALES(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define Q8X_HSUM(v) mm_hsum8(v)
#define Q8X_HSUM_L(v) mm_hsum8x8(v)
#define Q8X_ADD(a, b) _mm256_add_ps((a), (b))
/* lanes 2 b and 2 b + 1 of v (rows 0 and 1 of batch row b < nb <= 4) at y + b ldy, plus
 * bias[0..1] */
#define Q8X_STORE_PAIRS(y, ldy, v, bias, nb) sm_avx2_store_pairs((y), (ldy), (v), (bias), (nb))
static inline void sm_avx2_store_pairs(float *y, int64_t ldy, __m256 v, const float *bias, int nb)
{
    if (bias) {
        double pair; /* bias[0], bias[1] in every pair of lanes */
        memcpy(&pair, bias, sizeof pair);
        v = _mm256_add_ps(v, _mm256_castpd_ps(_mm256_set1_pd(pair)));
    }
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    _mm_storel_pi((__m64 *)(void *)y, lo);
    if (nb > 1)
        _mm_storeh_pi((__m64 *)(void *)(y + ldy), lo);
    if (nb > 2)
        _mm_storel_pi((__m64 *)(void *)(y + 2 * ldy), hi);
    if (nb > 3)
        _mm_storeh_pi((__m64 *)(void *)(y + 3 * ldy), hi);
}

#endif
