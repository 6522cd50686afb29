/* kernels_avx2_q4x: the AVX2 products of q4_0 weights packed 8 blocks per group (width 8,
 * kernels_q8x.c), built from the packed q8_0 products (kernels_q8x_tmpl.h). A 256-bit load
 * holds the 4-bit values of two of a group's eight vectors (low and high nibbles); each,
 * masked, is 32 unsigned values 0..15 that vpmaddubsw multiplies by the activations. Over a
 * group the 16-bit sums stay below 8 x 2 x 15 x 127 = 30480, so they are added as 16-bit
 * lanes (one vpaddw a product) and widened once per group (vpmaddwd by ones); the activation
 * group's corrections, -8 x (sum of each block's values), then take back the 8 that q4_0
 * adds to every value, so each block's lane holds its exact integer sum. */
#include <immintrin.h>
#include <stdbool.h>

#include "kernels_hsum.h"
#include "kernels_isa.h"

static inline __m256i q4x_load_wv(const uint8_t *p, int v)
{
    __m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32 * (v >> 1)));
    if (v & 1)
        w = _mm256_srli_epi16(w, 4);
    return _mm256_and_si256(w, _mm256_set1_epi8(0x0f));
}

/* i + the products of w and x, kept in a register as it is: without the empty asm GCC sums a
 * group's 8 products of each output as a tree and spills them all to the stack */
static inline __m256i q4x_dot(__m256i i, __m256i w, __m256i x)
{
    __m256i s = _mm256_add_epi16(i, _mm256_maddubs_epi16(w, x));
    __asm__("" : "+x"(s));
    return s;
}

static inline __m256i q4x_group_end(__m256i s, const uint8_t *xg)
{
    __m256i corr = _mm256_loadu_si256((const __m256i *)(const void *)(xg + SM_Q4X_XCORR));
    return _mm256_add_epi32(_mm256_madd_epi16(s, _mm256_set1_epi16(1)), corr);
}

#define Q8X_L 8
#define Q8X_GW (16 * Q8X_L)
#define Q8X_XG SM_Q4X_XGROUP
#define Q8X_IV __m256i
#define Q8X_FV __m256
#define Q8X_W __m256i
#define Q8X_LOAD_WV(p, v, rg) q4x_load_wv((p), (v))
#define Q8X_LOAD_X(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define Q8X_DOT(i, w, x) q4x_dot((i), (w), (x))
#define Q8X_GROUP_END(s, xg, rg) q4x_group_end((s), (xg))
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
/* 2 weight rows x 5 batch rows of 16-bit sums, 2 weight vectors, an activation, the mask
 * (on a Zen 3 faster than 2 x 4 and 2 x 6, which spills) */
#define Q8X_NR 2
#define Q8X_NB 5
#define Q8X_ROWS_FN sm_avx2_q4x_rows
#define Q8X_SCRATCH_FN sm_avx2_q4x_scratch_floats
#include "kernels_q8x_tmpl.h"
