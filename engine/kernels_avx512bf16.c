/* kernels_avx512bf16: the AVX-512 variant plus AVX512_BF16 for bf16 weights. The activations
 * are rounded to bf16 once per product (kernels.c asks for it through bf16_x), and vdpbf16ps
 * multiplies 32 bf16 weights by 32 bf16 activations per instruction straight from the weight
 * rows, with f32 accumulation: lane l of an output's 16-lane accumulator adds the pairs of
 * columns 32k + 2l and 32k + 2l + 1 for k in order, then the fixed 16-lane tree, then the
 * remaining cols % 32 columns one by one in f32, then the bias. Rounding the activations to bf16
 * costs about 3 significant digits in each product (the bench and the reference tests decide
 * whether that is acceptable for a model; the plain avx512 variant keeps f32 activations).
 * Every other weight type uses the AVX-512 code (kernels_mm_tmpl.h with 16-lane vectors).
 * Opt-in (--isa avx512bf16): where vdpbf16ps is slower than f32 FMA per product, as measured on
 * the Xeon the project runs on, sm_isa_detect prefers the avx512 variant. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels_isa.h"
#include "kernels_avx512_mm.h"

/* Activations to bf16, round to nearest even (vcvtneps2bf16). */
static void x_to_bf16(const float *x, int64_t cols, uint16_t *out)
{
    int64_t i = 0;
    for (; i + 16 <= cols; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));
        _mm256_storeu_si256((__m256i *)(void *)(out + i), (__m256i)h);
    }
    for (; i < cols; i++)
        out[i] = sm_f32_to_bf16(x[i]);
}

#define DP_NR 4 /* weight rows per vdpbf16ps micro tile */

/* nr weight rows x nb activation rows over n32 chunks of 32 columns. */
MM_INLINE void dp_kernel(int nr, int nb, const uint16_t *const *w, const uint16_t *const *x,
                         int64_t n32, float out[DP_NR][MM_NB])
{
    __m512 a[DP_NR][MM_NB];
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            a[r][b] = _mm512_setzero_ps();
    for (int64_t c = 0; c < n32; c++) {
        __m512bh xv[MM_NB];
        for (int b = 0; b < nb; b++)
            xv[b] = (__m512bh)_mm512_loadu_si512((const void *)(x[b] + 32 * c));
        for (int r = 0; r < nr; r++) {
            __m512bh wv = (__m512bh)_mm512_loadu_si512((const void *)(w[r] + 32 * c));
            for (int b = 0; b < nb; b++)
                a[r][b] = _mm512_dpbf16_ps(a[r][b], wv, xv[b]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            out[r][b] = mm_hsum16(a[r][b]);
}

#define DP_CASE(NR_, NB_)                                                                   \
    static void dp_kernel_##NR_##_##NB_(const uint16_t *const *w, const uint16_t *const *x, \
                                        int64_t n32, float out[DP_NR][MM_NB])               \
    {                                                                                       \
        dp_kernel(NR_, NB_, w, x, n32, out);                                                \
    }
DP_CASE(4, 3)
DP_CASE(4, 2)
DP_CASE(4, 1)
DP_CASE(1, 3)
DP_CASE(1, 2)
DP_CASE(1, 1)

static void dp_rows(const sm_mm_job *j, int64_t r0, int64_t r1)
{
    int64_t n32 = j->cols / 32, c32 = n32 * 32;
    for (int64_t r = r0; r < r1; r += DP_NR) {
        int nr = (int)(r1 - r < DP_NR ? r1 - r : DP_NR);
        const uint16_t *w[DP_NR];
        for (int i = 0; i < nr; i++)
            w[i] = (const uint16_t *)(const void *)(j->w + (size_t)(r + i) * j->row_bytes);
        for (int64_t b = 0; b < j->batch; b += MM_NB) {
            int nb = (int)(j->batch - b < MM_NB ? j->batch - b : MM_NB);
            const uint16_t *x[MM_NB];
            for (int i = 0; i < nb; i++)
                x[i] = j->xb + (b + i) * j->cols;
            float out[DP_NR][MM_NB];
            if (nr == DP_NR) {
                if (nb == 3)
                    dp_kernel_4_3(w, x, n32, out);
                else if (nb == 2)
                    dp_kernel_4_2(w, x, n32, out);
                else
                    dp_kernel_4_1(w, x, n32, out);
            } else {
                for (int i = 0; i < nr; i++) {
                    float o1[DP_NR][MM_NB];
                    if (nb == 3)
                        dp_kernel_1_3(w + i, x, n32, o1);
                    else if (nb == 2)
                        dp_kernel_1_2(w + i, x, n32, o1);
                    else
                        dp_kernel_1_1(w + i, x, n32, o1);
                    for (int k = 0; k < nb; k++)
                        out[i][k] = o1[0][k];
                }
            }
            for (int i = 0; i < nr; i++) {
                float bias = j->bias ? j->bias[r + i] : 0.0f;
                for (int k = 0; k < nb; k++) {
                    const float *xf = j->x + (b + k) * j->ldx;
                    float t = out[i][k];
                    for (int64_t c = c32; c < j->cols; c++)
                        t += sm_bf16_to_f32(w[i][c]) * xf[c];
                    j->y[(b + k) * j->ldy + r + i] = t + bias;
                }
            }
        }
    }
}

/* bf16 weights: the vdpbf16ps loop (32 products and sums per instruction); else AVX-512. */
static double peak(sm_dtype t, int64_t iters)
{
    if (t != SM_DTYPE_BF16)
        return sm_avx512_peak(t, iters);
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3f00);
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    __m512 c6 = c0, c7 = c0, c8 = c0, c9 = c0;
    for (int64_t it = 0; it < iters; it++) {
        c0 = _mm512_dpbf16_ps(c0, a, b);
        c1 = _mm512_dpbf16_ps(c1, a, b);
        c2 = _mm512_dpbf16_ps(c2, a, b);
        c3 = _mm512_dpbf16_ps(c3, a, b);
        c4 = _mm512_dpbf16_ps(c4, a, b);
        c5 = _mm512_dpbf16_ps(c5, a, b);
        c6 = _mm512_dpbf16_ps(c6, a, b);
        c7 = _mm512_dpbf16_ps(c7, a, b);
        c8 = _mm512_dpbf16_ps(c8, a, b);
        c9 = _mm512_dpbf16_ps(c9, a, b);
        __asm__ volatile(""
                         : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5), "+v"(c6),
                           "+v"(c7), "+v"(c8), "+v"(c9), "+v"(a), "+v"(b));
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(c8, c9));
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return (double)iters * 10 * 32 * 2;
}

static void rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task)
{
    if (j->dtype == SM_DTYPE_BF16 && j->xb)
        dp_rows(j, r0, r1);
    else
        mm_rows(j, r0, r1, task);
}

static const sm_kvariant avx512bf16 = {
    .isa = SM_ISA_AVX512BF16,
    .scratch_floats = mm_scratch_floats,
    .matmul_rows = rows,
    .quantize_x = sm_avx2_quantize_x,
    .x_to_bf16 = x_to_bf16,
    .rows_to_f32 = sm_avx2_rows_to_f32,
    .rmsnorm = sm_avx2_rmsnorm,
    .silu_mul = sm_avx2_silu_mul,
    .rope = sm_avx2_rope,
    .attention_kvs = sm_avx512_attention_kvs,
    .q8x_width = 16,
    .q8x_rows = sm_avx512_q8r_rows,
    .q8x_scratch_floats = NULL,
    .peak = peak,
    .kq_rows = sm_avx2_kq_rows,
    .kqx = &sm_avx2_kqx, /* K-quants packed for the AVX2 products (no AVX-512 ones yet) */
};

const sm_kvariant *sm_kvariant_avx512bf16(void)
{
    return &avx512bf16;
}
