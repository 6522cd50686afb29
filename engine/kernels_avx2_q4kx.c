/* kernels_avx2_q4kx: the AVX2 products of q4_k weights packed a super-block per group (width
 * 8, kernels_q8x.c), built from the packed q8_0 products (kernels_q8x_tmpl.h). The 4-bit
 * values are read and multiplied as packed q4_0's (kernels_avx2_q4x.c: 16-bit sums over the
 * group, widened once), so each sub-block's lane holds the exact sum of q x; then, lane by
 * lane, acc = fma(sum, (d x scale) x dx, acc) and acc = fma(-(dmin x min), xs, acc), with xs
 * the activation block's scale times the sum of its values. d x scale and dmin x min are
 * exact in f32 (11 by 6 bits). */
#define SM_AVX2_KQ_SCALES
#include "kernels_avx2_packed.h"

#define Q8X_GW (16 * Q8X_L)
#define Q8X_W __m256i
#define Q8X_LOAD_WV(p, v, rg) sm_avx2_nibbles((p), (v))
#define Q8X_DOT(i, w, x) sm_avx2_dot16((i), (w), (x))
#define Q8X_GROUP_END(s, xg, rg) _mm256_madd_epi16((s), _mm256_set1_epi16(1))
/* 2 weight rows x 5 batch rows of 16-bit sums, 2 weight vectors, an activation, the mask
 * (on a Zen 3 faster than 2 x 4 and 2 x 6, which spills) */
#define Q8X_NR 2
#define Q8X_NB 5
#define Q8X_ROWS_FN sm_avx2_q4kx_rows
#define Q8X_SCRATCH_FN sm_avx2_q4kx_scratch_floats
#include "kernels_q8x_tmpl.h"
