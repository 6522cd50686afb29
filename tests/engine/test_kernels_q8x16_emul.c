/* test_kernels_q8x16_emul: the packed q8_0 products of kernels_q8x_tmpl.h built as the AVX-512
 * variants build them (16 blocks per group, weights plus 128, corrections, 4 x 3 micro tiles)
 * but with each 512-bit vector emulated by two AVX2 registers and vpdpbusd by exact 16-bit
 * products, so that the 16-wide logic is tested on CPUs without AVX-512 (test_kernels_q8x
 * calls q8x16_emul_rows; the AVX-512 instructions themselves are only tested on a CPU that has
 * them). Compiled with -mavx2 -mfma -mf16c; called only after a run-time AVX2 check. */
#include <immintrin.h>
#include <stdbool.h>

#include "kernels_hsum.h"
#include "kernels_isa.h"

void q8x16_emul_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task);
int64_t q8x16_emul_scratch_floats(int64_t batch);

typedef struct e16i {
    __m256i lo, hi;
} e16i;
typedef struct e16f {
    __m256 lo, hi;
} e16f;

static inline e16i e16_load_i(const void *p)
{
    return (e16i){_mm256_loadu_si256((const __m256i *)p),
                  _mm256_loadu_si256((const __m256i *)((const char *)p + 32))};
}

/* lane l of 8: sum over e < 4 of (unsigned) a[4l+e] * (signed) b[4l+e], exactly */
static inline __m256i dot8(__m256i a, __m256i b)
{
    __m256i lo = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(a)),
                                   _mm256_cvtepi8_epi16(_mm256_castsi256_si128(b)));
    __m256i hi = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(a, 1)),
                                   _mm256_cvtepi8_epi16(_mm256_extracti128_si256(b, 1)));
    /* [l0 l1 l4 l5 | l2 l3 l6 l7] -> lanes in order */
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xd8);
}

static inline e16i e16_dot(e16i i, e16i w, e16i x)
{
    return (e16i){_mm256_add_epi32(i.lo, dot8(w.lo, x.lo)),
                  _mm256_add_epi32(i.hi, dot8(w.hi, x.hi))};
}

static inline e16f e16_load_f(const float *p)
{
    return (e16f){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
}
static inline void e16_store_f(float *p, e16f v)
{
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
}
static inline e16f e16_mul(e16f a, e16f b)
{
    return (e16f){_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)};
}
static inline e16f e16_fma(e16f a, e16f b, e16f c)
{
    return (e16f){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
static inline e16f e16_cvt(e16i i)
{
    return (e16f){_mm256_cvtepi32_ps(i.lo), _mm256_cvtepi32_ps(i.hi)};
}
static inline e16f e16_scales(const uint8_t *p)
{
    return (e16f){_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p)),
                  _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)))};
}
/* the AVX-512 tree: lanes l and l + 8, then the 8-lane tree */
static inline float e16_hsum(e16f v)
{
    return mm_hsum8(_mm256_add_ps(v.lo, v.hi));
}

#define Q8X_L 16
#define Q8X_IV e16i
#define Q8X_FV e16f
#define Q8X_W e16i
#define Q8X_LOAD_W(p) e16_load_i(p)
#define Q8X_LOAD_X(p) e16_load_i(p)
#define Q8X_DOT(i, w, x) e16_dot((i), (w), (x))
#define Q8X_ZERO_I() ((e16i){_mm256_setzero_si256(), _mm256_setzero_si256()})
#define Q8X_LOAD_I(p) e16_load_i(p)
#define Q8X_CORR 1
#define Q8X_ZERO_F() ((e16f){_mm256_setzero_ps(), _mm256_setzero_ps()})
#define Q8X_LOAD_F(p) e16_load_f(p)
#define Q8X_STORE_F(p, v) e16_store_f((p), (v))
#define Q8X_MUL(a, b) e16_mul((a), (b))
#define Q8X_FMA(a, b, c) e16_fma((a), (b), (c))
#define Q8X_CVT(i) e16_cvt(i)
#define Q8X_LOAD_SCALES(p) e16_scales(p)
#define Q8X_HSUM(v) e16_hsum(v)
#define Q8X_NR 4
#define Q8X_NB 3
#define Q8X_ROWS_FN q8x16_emul_rows
#define Q8X_SCRATCH_FN q8x16_emul_scratch_floats
#include "kernels_q8x_tmpl.h"
