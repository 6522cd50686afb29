/* kernels_avx2_q6kx: the AVX2 products of q6_k weights packed a super-block per group (width
 * 8, kernels_q8x.c), built from the packed q8_0 products (kernels_q8x_tmpl.h). A weight vector
 * is its low 4 bits (as packed q4_0's) and its high 2 bits (a quarter of a 32-byte load),
 * values 0..63; vpmaddubsw multiplies them by the activations (16-bit pairs below 16002) and
 * vpmaddwd by the scale of the vector's half of each block (vectors 0-3: the first 16 values,
 * 4-7: the second) into each block's int32 lane. At the group's end the 32 the file adds to
 * every value is taken back with the activations' half sums: lane j less 32 x (scale_a x
 * sum_a + scale_b x sum_b), so the lane holds the exact sum of scale x (q - 32) x. Then acc =
 * fma((float)lane, d x dx, acc). The table of the packed K-quant products (sm_avx2_kqx) is
 * here too. */
#include <string.h>

#include "kernels_avx2_packed.h"

/* a weight vector: its values and the scales of its half, an int16 pair per block */
typedef struct q6kx_w {
    __m256i q, sc;
} q6kx_w;

/* a row's group: the scales of each block's first half (in both int16 of its lane) and of
 * its second half, from its 16 scales */
typedef struct q6kx_rg {
    __m256i first, second;
} q6kx_rg;

static inline q6kx_rg q6kx_load_rg(const uint8_t *p)
{
    __m256i pairs = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)p));
    return (q6kx_rg){_mm256_shufflehi_epi16(_mm256_shufflelo_epi16(pairs, 0xa0), 0xa0),
                     _mm256_shufflehi_epi16(_mm256_shufflelo_epi16(pairs, 0xf5), 0xf5)};
}

static inline q6kx_w q6kx_load_wv(const uint8_t *p, int v, q6kx_rg rg)
{
    __m256i lo = sm_avx2_nibbles(p, v);
    __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(p + 128 + 32 * (v >> 2)));
    switch (v & 3) { /* bits 2 (v % 4) .. to bits 4, 5 */
    case 0:
        hi = _mm256_slli_epi16(hi, 4);
        break;
    case 1:
        hi = _mm256_slli_epi16(hi, 2);
        break;
    case 3:
        hi = _mm256_srli_epi16(hi, 2);
        break;
    default:
        break;
    }
    hi = _mm256_and_si256(hi, _mm256_set1_epi8(0x30));
    return (q6kx_w){_mm256_or_si256(lo, hi), v < 4 ? rg.first : rg.second};
}

/* i + the products of w and x, kept in a register as it is (see kernels_avx2_q4x.c) */
static inline __m256i q6kx_dot(__m256i i, q6kx_w w, __m256i x)
{
    __m256i s = _mm256_add_epi32(i, _mm256_madd_epi16(_mm256_maddubs_epi16(w.q, x), w.sc));
    __asm__("" : "+x"(s));
    return s;
}

static inline __m256i q6kx_group_end(__m256i s, const uint8_t *xg, q6kx_rg rg)
{
    /* block j's two scales in lane j, against its two half sums */
    __m256i pairs = _mm256_blend_epi16(rg.first, rg.second, 0xaa);
    __m256i halves = _mm256_loadu_si256((const __m256i *)(const void *)(xg + SM_Q4X_XCORR));
    return _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_madd_epi16(pairs, halves), 5));
}

static inline __m256 q6kx_load_d(const uint8_t *p)
{
    uint16_t dh;
    memcpy(&dh, p + 16, 2);
    return _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(dh)));
}

#define Q8X_GW 192
#define Q8X_XG SM_Q4X_XGROUP
#define Q8X_SCB 18
#define Q8X_RG q6kx_rg
#define Q8X_LOAD_RG(p) q6kx_load_rg(p)
#define Q8X_WS __m256
#define Q8X_LOAD_WS(p) q6kx_load_d(p)
#define Q8X_APPLY(av, s, ws, xg) \
    _mm256_fmadd_ps(             \
        _mm256_cvtepi32_ps(s),   \
        _mm256_mul_ps((ws), _mm256_loadu_ps((const float *)(const void *)((xg) + 256))), (av))
#define Q8X_W q6kx_w
#define Q8X_LOAD_WV(p, v, rg) q6kx_load_wv((p), (v), (rg))
#define Q8X_DOT(i, w, x) q6kx_dot((i), (w), (x))
#define Q8X_GROUP_END(s, xg, rg) q6kx_group_end((s), (xg), (rg))
#define Q8X_NR 2
#define Q8X_NB 4
#define Q8X_ROWS_FN sm_avx2_q6kx_rows
#define Q8X_SCRATCH_FN sm_avx2_q6kx_scratch_floats
#include "kernels_q8x_tmpl.h"

const sm_kqx_fns sm_avx2_kqx = {
    .q4k = {sm_avx2_q4kx_rows, sm_avx2_q4kx_scratch_floats},
    .q5k = {sm_avx2_q5kx_rows, sm_avx2_q5kx_scratch_floats},
    .q6k = {sm_avx2_q6kx_rows, sm_avx2_q6kx_scratch_floats},
};
