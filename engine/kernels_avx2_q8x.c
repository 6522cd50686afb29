/* kernels_avx2_q8x: the AVX2 products of q8_0 weights packed 8 blocks per group
 * (kernels_q8x.c, kernels_q8x_tmpl.h). A 256-bit vector holds 4 values of each of 8 blocks;
 * a product is vpsignb (the weights' signs onto the activations), vpmaddubsw (absolute weights
 * times those), vpmaddwd by ones and vpaddd, into each block's own lane. */

#include "kernels_avx2_packed.h"

typedef struct q8x_w8 {
    __m256i abs, sgn; /* |w| and w */
} q8x_w8;

static inline q8x_w8 q8x_load_w8(const uint8_t *p)
{
    __m256i w = _mm256_loadu_si256((const __m256i *)(const void *)p);
    return (q8x_w8){_mm256_abs_epi8(w), w};
}

/* i + the products of w and x, kept in a register as it is: without the empty asm GCC sums a
 * group's 8 products of each output as a tree and spills them to the stack */
static inline __m256i q8x_dot8(__m256i i, q8x_w8 w, __m256i x)
{
    __m256i p = _mm256_maddubs_epi16(w.abs, _mm256_sign_epi8(x, w.sgn));
    __m256i s = _mm256_add_epi32(i, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
    __asm__("" : "+x"(s));
    return s;
}

#define Q8X_W q8x_w8
#define Q8X_LOAD_W(p) q8x_load_w8(p)
#define Q8X_DOT(i, w, x) q8x_dot8((i), (w), (x))
/* 16 registers: 2 weight rows (absolute and signed) x 5 batch rows of int32 lanes, one
 * activation vector, the ones (on a Zen 3, against 2 x 4, prompts and batches of 16 sequences
 * 5-10% faster; 2 x 4 was faster than 2 x 3 and 1 x 6 before the sums were kept in order) */
#define Q8X_NR 2
#define Q8X_NB 5
#define Q8X_ROWS_FN sm_avx2_q8x_rows
#define Q8X_SCRATCH_FN sm_avx2_q8x_scratch_floats
#include "kernels_q8x_tmpl.h"
