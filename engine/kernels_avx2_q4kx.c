/* kernels_avx2_q4kx: the AVX2 products of q4_k weights packed a super-block per group (width
 * 8, kernels_q8x.c), built from the packed q8_0 products (kernels_q8x_tmpl.h). The 4-bit
 * values are read and multiplied as packed q4_0's (kernels_avx2_q4x.c: 16-bit sums over the
 * group, widened once), so each sub-block's lane holds the exact sum of q x; then, lane by
 * lane, acc = fma(sum, (d x scale) x dx, acc) and acc = fma(-(dmin x min), xs, acc), with xs
 * the activation block's scale times the sum of its values. d x scale and dmin x min are
 * exact in f32 (11 by 6 bits). */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "kernels_hsum.h"
#include "kernels_isa.h"

static inline __m256i q4kx_load_wv(const uint8_t *p, int v)
{
    __m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32 * (v >> 1)));
    if (v & 1)
        w = _mm256_srli_epi16(w, 4);
    return _mm256_and_si256(w, _mm256_set1_epi8(0x0f));
}

/* i + the products of w and x, kept in a register as it is (see kernels_avx2_q4x.c) */
static inline __m256i q4kx_dot(__m256i i, __m256i w, __m256i x)
{
    __m256i s = _mm256_add_epi16(i, _mm256_maddubs_epi16(w, x));
    __asm__("" : "+x"(s));
    return s;
}

/* a weight row's group scales: d x scale and dmin x min per sub-block */
typedef struct q4kx_ws {
    __m256 dsc, dmn;
} q4kx_ws;

static inline __m256 q4kx_bytes_f32(const uint8_t *p)
{
    return _mm256_cvtepi32_ps(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)));
}

static inline q4kx_ws q4kx_load_ws(const uint8_t *p)
{
    int32_t dd;
    memcpy(&dd, p + 16, 4);
    __m128 d = _mm_cvtph_ps(_mm_cvtsi32_si128(dd)); /* d, dmin */
    return (q4kx_ws){
        _mm256_mul_ps(_mm256_broadcastss_ps(d), q4kx_bytes_f32(p)),
        _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(d)), q4kx_bytes_f32(p + 8))};
}

static inline __m256 q4kx_apply(__m256 av, __m256i s, q4kx_ws ws, const uint8_t *xg)
{
    __m256 dx = _mm256_loadu_ps((const float *)(const void *)(xg + 256));
    __m256 xs = _mm256_loadu_ps((const float *)(const void *)(xg + SM_Q4X_XCORR));
    av = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(ws.dsc, dx), av);
    return _mm256_fnmadd_ps(ws.dmn, xs, av);
}

#define Q8X_L 8
#define Q8X_GW (16 * Q8X_L)
#define Q8X_XG SM_Q4X_XGROUP
#define Q8X_SCB 20
#define Q8X_WS q4kx_ws
#define Q8X_LOAD_WS(p) q4kx_load_ws(p)
#define Q8X_APPLY(av, s, ws, xg) q4kx_apply((av), (s), (ws), (xg))
#define Q8X_IV __m256i
#define Q8X_FV __m256
#define Q8X_W __m256i
#define Q8X_LOAD_WV(p, v, rg) q4kx_load_wv((p), (v))
#define Q8X_LOAD_X(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define Q8X_DOT(i, w, x) q4kx_dot((i), (w), (x))
#define Q8X_GROUP_END(s, xg, rg) _mm256_madd_epi16((s), _mm256_set1_epi16(1))
#define Q8X_ZERO_I() _mm256_setzero_si256()
#define Q8X_ZERO_F() _mm256_setzero_ps()
#define Q8X_LOAD_F(p) _mm256_loadu_ps(p)
#define Q8X_STORE_F(p, v) _mm256_storeu_ps((p), (v))
#define Q8X_HSUM(v) mm_hsum8(v)
#define Q8X_HSUM_L(v) mm_hsum8x8(v)
#define Q8X_ADD(a, b) _mm256_add_ps((a), (b))
/* 2 weight rows x 5 batch rows of 16-bit sums, 2 weight vectors, an activation, the mask
 * (on a Zen 3 faster than 2 x 4 and 2 x 6, which spills) */
#define Q8X_NR 2
#define Q8X_NB 5
#define Q8X_ROWS_FN sm_avx2_q4kx_rows
#define Q8X_SCRATCH_FN sm_avx2_q4kx_scratch_floats
#include "kernels_q8x_tmpl.h"
