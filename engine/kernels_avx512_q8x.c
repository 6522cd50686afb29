/* kernels_avx512_q8x: the AVX-512 VNNI products of q8_0 weights packed 16 blocks per group
 * (kernels_q8x.c, kernels_q8x_tmpl.h). A 512-bit vector holds 4 values of each of 16 blocks
 * (the weights stored plus 128, unsigned); one vpdpbusd adds their products into each block's
 * own lane, and the activations' corrections (-128 x their block sums) start the lanes. */
#include <immintrin.h>
#include <stdbool.h>

#include "kernels_hsum.h"
#include "kernels_isa.h"

#define Q8X_L 16
#define Q8X_IV __m512i
#define Q8X_FV __m512
#define Q8X_W __m512i
#define Q8X_LOAD_W(p) _mm512_loadu_si512((const void *)(p))
#define Q8X_LOAD_X(p) _mm512_loadu_si512((const void *)(p))
#define Q8X_DOT(i, w, x) _mm512_dpbusd_epi32((i), (w), (x))
#define Q8X_ZERO_I() _mm512_setzero_si512()
#define Q8X_LOAD_I(p) _mm512_loadu_si512((const void *)(p))
#define Q8X_CORR 1
#define Q8X_ZERO_F() _mm512_setzero_ps()
#define Q8X_LOAD_F(p) _mm512_loadu_ps(p)
#define Q8X_STORE_F(p, v) _mm512_storeu_ps((p), (v))
#define Q8X_MUL(a, b) _mm512_mul_ps((a), (b))
#define Q8X_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define Q8X_CVT(i) _mm512_cvtepi32_ps(i)
#define Q8X_LOAD_SCALES(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define Q8X_HSUM(v) mm_hsum16(v)
#define Q8X_HSUM_L(v) mm_hsum16x16(v)
#define Q8X_ADD(a, b) _mm512_add_ps((a), (b))
#define Q8X_IN_REG(v) __asm__("" : "+v"(v))
/* 32 registers: 4 weight rows x 6 batch rows of int32 lanes, each weight vector loaded once
 * for the 6 batch rows (4 x 3 ran a 1536 x 1536 x 512 prompt product at 27-33% of the
 * vpdpbusd peak on the Xeon, 4 x 6 at 37-41%) */
#define Q8X_NR 4
#define Q8X_NB 6
#define Q8X_ROWS_FN sm_avx512_q8x_rows
#define Q8X_SCRATCH_FN sm_avx512_q8x_scratch_floats
#include "kernels_q8x_tmpl.h"
