/* kernels_avx2_q5kx: the AVX2 products of q5_k weights packed a super-block per group (width
 * 8, kernels_q8x.c), built from the packed q8_0 products (kernels_q8x_tmpl.h). A weight vector
 * is its 4 low bits (as packed q4_0's) and its 5th bit (bit v of the group's bit vector),
 * values 0..31; pairs of products can reach 2 x 31 x 127, so each product is widened to 32 bits
 * at once (vpmaddwd by ones) and each sub-block's lane holds the exact sum of q x. The scales
 * and mins are then applied as for q4_k (sm_avx2_kq_apply). */
#define SM_AVX2_KQ_SCALES
#include "kernels_avx2_packed.h"

static inline __m256i q5kx_load_wv(const uint8_t *p, int v)
{
    __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(p + 128));
    if (v < 4) /* bit v to bit 4 */
        hi = _mm256_slli_epi16(hi, 4 - v);
    else if (v > 4)
        hi = _mm256_srli_epi16(hi, v - 4);
    hi = _mm256_and_si256(hi, _mm256_set1_epi8(0x10));
    return _mm256_or_si256(sm_avx2_nibbles(p, v), hi);
}

/* i + the products of w and x in 32-bit lanes, kept in a register as it is (see
 * sm_avx2_dot16) */
static inline __m256i q5kx_dot(__m256i i, __m256i w, __m256i x)
{
    __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
    __m256i s = _mm256_add_epi32(i, p);
    __asm__("" : "+x"(s));
    return s;
}

#define Q8X_GW 160
#define Q8X_W __m256i
#define Q8X_LOAD_WV(p, v, rg) q5kx_load_wv((p), (v))
#define Q8X_DOT(i, w, x) q5kx_dot((i), (w), (x))
#define Q8X_NR 2
#define Q8X_NB 4
#define Q8X_ROWS_FN sm_avx2_q5kx_rows
#define Q8X_SCRATCH_FN sm_avx2_q5kx_scratch_floats
#include "kernels_q8x_tmpl.h"
