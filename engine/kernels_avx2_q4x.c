/* kernels_avx2_q4x: the AVX2 products of q4_0 weights packed 8 blocks per group (width 8,
 * kernels_q8x.c), built from the packed q8_0 products (kernels_q8x_tmpl.h). A 256-bit load
 * holds the 4-bit values of two of a group's eight vectors (low and high nibbles); each,
 * masked, is 32 unsigned values 0..15 that vpmaddubsw multiplies by the activations. Over a
 * group the 16-bit sums stay below 8 x 2 x 15 x 127 = 30480, so they are added as 16-bit
 * lanes (one vpaddw a product) and widened once per group (vpmaddwd by ones); the activation
 * group's corrections, -8 x (sum of each block's values), then take back the 8 that q4_0
 * adds to every value, so each block's lane holds its exact integer sum. */

#include "kernels_avx2_packed.h"

static inline __m256i q4x_group_end(__m256i s, const uint8_t *xg)
{
    __m256i corr = _mm256_loadu_si256((const __m256i *)(const void *)(xg + SM_Q4X_XCORR));
    return _mm256_add_epi32(_mm256_madd_epi16(s, _mm256_set1_epi16(1)), corr);
}

#define Q8X_GW (16 * Q8X_L)
#define Q8X_XG SM_Q4X_XGROUP
#define Q8X_W __m256i
#define Q8X_LOAD_WV(p, v, rg) sm_avx2_nibbles((p), (v))
#define Q8X_DOT(i, w, x) sm_avx2_dot16((i), (w), (x))
#define Q8X_GROUP_END(s, xg, rg) q4x_group_end((s), (xg))
/* 2 weight rows x 5 batch rows of 16-bit sums, 2 weight vectors, an activation, the mask
 * (on a Zen 3 faster than 2 x 4 and 2 x 6, which spills) */
#define Q8X_NR 2
#define Q8X_NB 5
#define Q8X_ROWS_FN sm_avx2_q4x_rows
#define Q8X_SCRATCH_FN sm_avx2_q4x_scratch_floats
#include "kernels_q8x_tmpl.h"
