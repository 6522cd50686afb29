/* kernels_avx512: the AVX-512 (F, BW, VL, DQ, VNNI) variant of the CPU kernels. It mirrors
 * kernels_avx2.c: the same blocked weight-matrix product (kernels_mm_tmpl.h) with 16-lane f32
 * vectors for f32/f16/bf16 weights, and for q8_0/q4_0 blocks the 256-bit VNNI instruction
 * vpdpbusd in place of AVX2's vpmaddubsw + vpmaddwd (the same exact integer sums, so q8_0/q4_0
 * results equal the AVX2 variant's). Attention has its own 16-lane kernel
 * (kernels_avx512_attn.c); the other vector kernels (norms, RoPE, SiLU) are the AVX2 ones.
 * With 32 vector registers its micro tiles are 8 weight rows x 3 batch rows (MM_NR, MM_IN_REG
 * in kernels_avx512_mm.h) and bf16 weights are read in pairs like AVX2's (permute_x_pairs16
 * below). Chosen only when the CPU reports every one of these extensions;
 * it is the default on such CPUs (see sm_isa_detect). */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels_isa.h"
#include "kernels_avx512_mm.h"

double sm_avx512_peak(sm_dtype t, int64_t iters)
{
    if (t == SM_DTYPE_Q8_0 || t == SM_DTYPE_Q4_0) {
        __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-5);
        __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        __m512i c6 = c0, c7 = c0, c8 = c0, c9 = c0;
        for (int64_t it = 0; it < iters; it++) {
            c0 = _mm512_dpbusd_epi32(c0, a, b);
            c1 = _mm512_dpbusd_epi32(c1, a, b);
            c2 = _mm512_dpbusd_epi32(c2, a, b);
            c3 = _mm512_dpbusd_epi32(c3, a, b);
            c4 = _mm512_dpbusd_epi32(c4, a, b);
            c5 = _mm512_dpbusd_epi32(c5, a, b);
            c6 = _mm512_dpbusd_epi32(c6, a, b);
            c7 = _mm512_dpbusd_epi32(c7, a, b);
            c8 = _mm512_dpbusd_epi32(c8, a, b);
            c9 = _mm512_dpbusd_epi32(c9, a, b);
            __asm__ volatile(""
                             : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5), "+v"(c6),
                               "+v"(c7), "+v"(c8), "+v"(c9), "+v"(a), "+v"(b));
        }
        __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), c2),
                                     _mm512_add_epi32(_mm512_add_epi32(c3, c4), c5));
        s = _mm512_add_epi32(s,
                             _mm512_add_epi32(_mm512_add_epi32(c6, c7), _mm512_add_epi32(c8, c9)));
        /* one lane is enough to keep the loop (GCC's _mm512_reduce_add_epi32 adds in int and
         * overflows on these sums, which UBSan reports) */
        volatile int sink = _mm_cvtsi128_si32(_mm512_castsi512_si128(s));
        (void)sink;
        return (double)iters * 10 * 64 * 2;
    }
    __m512 m = _mm512_set1_ps(0.999999f), d = _mm512_set1_ps(1e-6f);
    __m512 c0 = _mm512_set1_ps(0.0f), c1 = _mm512_set1_ps(1.0f), c2 = _mm512_set1_ps(2.0f);
    __m512 c3 = _mm512_set1_ps(3.0f), c4 = _mm512_set1_ps(4.0f), c5 = _mm512_set1_ps(5.0f);
    __m512 c6 = _mm512_set1_ps(6.0f), c7 = _mm512_set1_ps(7.0f), c8 = _mm512_set1_ps(8.0f);
    __m512 c9 = _mm512_set1_ps(9.0f), c10 = _mm512_set1_ps(10.0f), c11 = _mm512_set1_ps(11.0f);
    for (int64_t it = 0; it < iters; it++) {
        c0 = _mm512_fmadd_ps(c0, m, d);
        c1 = _mm512_fmadd_ps(c1, m, d);
        c2 = _mm512_fmadd_ps(c2, m, d);
        c3 = _mm512_fmadd_ps(c3, m, d);
        c4 = _mm512_fmadd_ps(c4, m, d);
        c5 = _mm512_fmadd_ps(c5, m, d);
        c6 = _mm512_fmadd_ps(c6, m, d);
        c7 = _mm512_fmadd_ps(c7, m, d);
        c8 = _mm512_fmadd_ps(c8, m, d);
        c9 = _mm512_fmadd_ps(c9, m, d);
        c10 = _mm512_fmadd_ps(c10, m, d);
        c11 = _mm512_fmadd_ps(c11, m, d);
        __asm__ volatile(""
                         : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5), "+v"(c6),
                           "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11));
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return (double)iters * 12 * 16 * 2;
}

/* Activations for MM_BF16_PAIRS: each group of 32 as [x0 x2 .. x30, x1 x3 .. x31]. */
static void permute_x_pairs16(const float *x, int64_t cols, float *out)
{
    const __m512i even =
        _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    int64_t c = 0;
    for (; c + 32 <= cols; c += 32) {
        __m512 a = _mm512_loadu_ps(x + c), b = _mm512_loadu_ps(x + c + 16);
        _mm512_storeu_ps(out + c, _mm512_permutex2var_ps(a, even, b));
        _mm512_storeu_ps(out + c + 16, _mm512_permutex2var_ps(a, odd, b));
    }
    memcpy(out + c, x + c, (size_t)(cols - c) * sizeof *out);
}

static const sm_kvariant avx512 = {
    .isa = SM_ISA_AVX512,
    .scratch_floats = mm_scratch_floats,
    .matmul_rows = mm_rows,
    .quantize_x = sm_avx2_quantize_x,
    .permute_x = permute_x_pairs16,
    .rows_to_f32 = sm_avx2_rows_to_f32,
    .rmsnorm = sm_avx2_rmsnorm,
    .silu_mul = sm_avx2_silu_mul,
    .rope = sm_avx2_rope,
    .attention_kvs = sm_avx512_attention_kvs,
    .q8x_width = 16,
    .q8x_rows = sm_avx512_q8r_rows,
    .q8x_scratch_floats = NULL,
    .peak = sm_avx512_peak,
    .kq_rows = sm_avx2_kq_rows,
    .kqx = &sm_avx2_kqx, /* K-quants packed for the AVX2 products (no AVX-512 ones yet) */
};

const sm_kvariant *sm_kvariant_avx512(void)
{
    return &avx512;
}
