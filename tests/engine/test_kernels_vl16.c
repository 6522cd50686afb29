/* test_kernels_vl16: the blocked weight-matrix template (engine/kernels_mm_tmpl.h) built with
 * 16-lane vectors, as the AVX-512 variants build it, but with each 16-lane vector emulated by
 * two AVX2 registers, so that its 16-lane logic (tile sizes, column tails, the 16-lane sum tree,
 * batch invariance) is tested on machines without AVX-512. The AVX-512 instructions themselves
 * are only tested on a CPU that has them (test_kernels). Compiled with -mavx2 -mfma -mf16c. */
#include <immintrin.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels_isa.h"

typedef struct v16 {
    __m256 lo, hi;
} v16;

static inline v16 v16_zero(void)
{
    return (v16){_mm256_setzero_ps(), _mm256_setzero_ps()};
}
static inline v16 v16_loadu(const float *p)
{
    return (v16){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
}
static inline void v16_storeu(float *p, v16 v)
{
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
}
static inline v16 v16_fma(v16 a, v16 b, v16 c)
{
    return (v16){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
static inline float mm_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
/* the tree of kernels_avx512.c: lanes l and l+8 first, then the 8-lane tree */
static inline float v16_hsum(v16 v)
{
    return mm_hsum8(_mm256_add_ps(v.lo, v.hi));
}
static inline v16 v16_load_bf16(const uint16_t *p)
{
    __m256 lo = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)), 16));
    __m256 hi = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p + 8))), 16));
    return (v16){lo, hi};
}
static inline v16 v16_load_f16(const uint16_t *p)
{
    return (v16){_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p)),
                 _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 8)))};
}
static inline __m256i qdot(__m256i aw, __m256i sx)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1));
}

#define MM_V v16
#define MM_VL 16
#define MM_ZERO() v16_zero()
#define MM_LOADU(p) v16_loadu(p)
#define MM_STOREU(p, v) v16_storeu((p), (v))
#define MM_FMA(a, b, c) v16_fma((a), (b), (c))
#define MM_HSUM(v) v16_hsum(v)
#define MM_CVT_BF16(dst, src, n) sm_avx2_cvt_bf16((dst), (src), (n))
#define MM_CVT_F16(dst, src, n) sm_avx2_cvt_f16((dst), (src), (n))
#define MM_LOAD_BF16(p) v16_load_bf16(p)
#define MM_LOAD_F16(p) v16_load_f16(p)
#define MM_QDOT(aw, sx) qdot((aw), (sx))
#include "kernels_mm_tmpl.h"

static uint64_t rng = 0x1234567887654321ull;
static float rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Y = W X through the template, prepared as kernels.c prepares a job (single task). */
static void run(sm_dtype t, const void *w, int64_t rows, int64_t cols, const float *x,
                int64_t batch, float *y)
{
    int64_t nb = cols / 32;
    int8_t *xq = malloc((size_t)(batch * cols) + 1);
    float *xd = malloc(sizeof(float) * (size_t)(batch * nb) + 4);
    if (t == SM_DTYPE_Q8_0 || t == SM_DTYPE_Q4_0)
        for (int64_t b = 0; b < batch; b++)
            sm_avx2_quantize_x(x + b * cols, cols, xq + b * cols, xd + b * nb);
    sm_mm_job j = {
        .dtype = t,
        .rows = rows,
        .cols = cols,
        .w = w,
        .row_bytes = sm_dtype_row_bytes(t, cols),
        .x = x,
        .ldx = cols,
        .batch = batch,
        .y = y,
        .ldy = rows,
        .xq = xq,
        .xd = xd,
        .scratch_floats = mm_scratch_floats(t, cols, batch),
    };
    j.scratch = malloc(sizeof(float) * (size_t)j.scratch_floats);
    assert_non_null(j.scratch);
    mm_rows(&j, 0, rows, 0);
    free(j.scratch);
    free(xq);
    free(xd);
}

static void test_vl16_template(void **state)
{
    (void)state;
    sm_err err;
    static const int64_t shapes[][2] = {{9, 64}, {13, 96}, {6, 2080}, {5, 40}, {7, 17}};
    for (int t = 0; t <= SM_DTYPE_Q4_0; t++) { /* K-quants do not use the template */
        for (int s = 0; s < 5; s++) {
            int64_t rows = shapes[s][0], cols = shapes[s][1];
            if (t >= SM_DTYPE_Q8_0 && cols % 32)
                continue;
            size_t rb = sm_dtype_row_bytes((sm_dtype)t, cols);
            uint8_t *w = malloc(rb * (size_t)rows);
            float *row = malloc(sizeof(float) * (size_t)cols);
            float *deq = malloc(sizeof(float) * (size_t)(rows * cols));
            for (int64_t r = 0; r < rows; r++) {
                for (int64_t c = 0; c < cols; c++)
                    row[c] = rnd() * 0.5f;
                assert_int_equal(sm_quantize_row((sm_dtype)t, row, cols, w + rb * r, &err), SM_OK);
                assert_int_equal(
                    sm_dequantize_row((sm_dtype)t, w + rb * r, cols, deq + r * cols, &err), SM_OK);
            }
            int64_t maxb = 70;
            float *x = malloc(sizeof(float) * (size_t)(cols * maxb));
            float *y = malloc(sizeof(float) * (size_t)(rows * maxb));
            float *y1 = malloc(sizeof(float) * (size_t)rows);
            for (int64_t i = 0; i < cols * maxb; i++)
                x[i] = rnd();
            static const int64_t batches[] = {1, 2, 4, 5, 16, 17, 70};
            for (int bi = 0; bi < 7; bi++) {
                int64_t batch = batches[bi];
                run((sm_dtype)t, w, rows, cols, x, batch, y);
                double num = 0, den = 0;
                for (int64_t b = 0; b < batch; b++) {
                    /* bitwise equal to the row alone */
                    run((sm_dtype)t, w, rows, cols, x + b * cols, 1, y1);
                    if (memcmp(y1, y + b * rows, sizeof(float) * (size_t)rows) != 0)
                        fail_msg("%s %lldx%lld batch %lld row %lld differs from alone",
                                 sm_dtype_name((sm_dtype)t), (long long)rows, (long long)cols,
                                 (long long)batch, (long long)b);
                    for (int64_t r = 0; r < rows; r++) {
                        double ref = 0;
                        for (int64_t c = 0; c < cols; c++)
                            ref += (double)deq[r * cols + c] * x[b * cols + c];
                        num += (ref - y[b * rows + r]) * (ref - y[b * rows + r]);
                        den += ref * ref;
                    }
                }
                double tol = t >= SM_DTYPE_Q8_0 ? 2e-2 : 1e-5;
                if (!(sqrt(num / den) < tol))
                    fail_msg("%s %lldx%lld batch %lld: rel err %g", sm_dtype_name((sm_dtype)t),
                             (long long)rows, (long long)cols, (long long)batch, sqrt(num / den));
            }
            free(w);
            free(row);
            free(deq);
            free(x);
            free(y);
            free(y1);
        }
    }
}

int main(void)
{
    if (!sm_isa_supported(SM_ISA_AVX2)) {
        print_message("[ SKIPPED  ] no AVX2 on this CPU\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_vl16_template)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
