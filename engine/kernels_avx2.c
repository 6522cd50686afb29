/* kernels_avx2: the AVX2 + FMA + F16C variant of the CPU kernels. Weight-matrix products come
 * from the shared blocked template (kernels_mm_tmpl.h) with 8-lane vectors and the
 * maddubs/madd integer dot product for q8_0/q4_0 blocks; this file adds activation
 * quantization, conversions, RMSNorm, SiLU, RoPE and attention. The AVX-512 variants reuse the
 * vector functions of this file (exported as sm_avx2_*): they run only on CPUs that have AVX2. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels_exp.h"
#include "kernels_hsum.h"
#include "kernels_isa.h"

void sm_avx2_cvt_bf16(float *dst, const uint16_t *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        _mm256_storeu_ps(dst + i,
                         _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
    }
    for (; i < n; i++)
        dst[i] = sm_bf16_to_f32(src[i]);
}

void sm_avx2_cvt_f16(float *dst, const uint16_t *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(
            dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(src + i))));
    for (; i < n; i++)
        dst[i] = sm_f16_to_f32(src[i]);
}

static inline __m256i qdot_avx2(__m256i aw, __m256i sx)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1));
}

#define MM_V __m256
#define MM_VL 8
#define MM_ZERO() _mm256_setzero_ps()
#define MM_LOADU(p) _mm256_loadu_ps(p)
#define MM_STOREU(p, v) _mm256_storeu_ps((p), (v))
#define MM_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define MM_HSUM(v) mm_hsum8(v)
#define MM_HSUMX(a) mm_hsum8x8(a)
#define MM_ADD(a, b) _mm256_add_ps((a), (b))
#define MM_CVT_BF16(dst, src, n) sm_avx2_cvt_bf16((dst), (src), (n))
#define MM_CVT_F16(dst, src, n) sm_avx2_cvt_f16((dst), (src), (n))
#define MM_LOAD_BF16(p)                    \
    _mm256_castsi256_ps(_mm256_slli_epi32( \
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))), 16))
#define MM_LOAD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define MM_QDOT(aw, sx) qdot_avx2((aw), (sx))
#define MM_BF16_PAIRS 1
/* the 4 x 3 bf16-pair loop in assembly (bf16_pairs_4x3 below) */
#define MM_BF16_PAIRS_4X3(w, x, kn, pfs, a) bf16_pairs_4x3((w), (x), (kn), (pfs), (a))
struct mm_prefetch;
static int64_t bf16_pairs_4x3(const uint8_t *const *w, const float *const *x, int64_t kn,
                              struct mm_prefetch *pfs, __m256 a[4][3]);
/* 4 weight rows x 2 or 3 batch rows of q8_0 blocks in assembly, for decode (q_rows4 below) */
#define MM_Q_ROWS4(nb, w0, wstep, ws, x0, xs, dw, dws, xd, nblk, pfs, a)                    \
    ((nb) == 3 ? q_rows4_3 : q_rows4_2)((w0), (wstep), (ws), (x0), (xs), (dw), (dws), (xd), \
                                        (nblk), (pfs), (a))
static void q_rows4_3(const int8_t *w0, intptr_t wstep, intptr_t ws, const int8_t *x0, intptr_t xs,
                      const float *dw, intptr_t dws, const float *const *xd, int64_t nblk,
                      struct mm_prefetch *pfs, __m256 a[4][3]);
static void q_rows4_2(const int8_t *w0, intptr_t wstep, intptr_t ws, const int8_t *x0, intptr_t xs,
                      const float *dw, intptr_t dws, const float *const *xd, int64_t nblk,
                      struct mm_prefetch *pfs, __m256 a[4][3]);
#define MM_BF16_EVEN(p)  \
    _mm256_castsi256_ps( \
        _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p)), 16))
#define MM_BF16_ODD(p)                                                                           \
    _mm256_castsi256_ps(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(p)), \
                                         _mm256_set1_epi32((int)0xffff0000u)))
#include "kernels_mm_tmpl.h"

/* The 4 x 3 bf16-pair product (MM_BF16_PAIRS) over the whole groups of 16 of columns [0, kn)
 * in assembly; returns the columns done. Left to itself, GCC keeps the odd-value mask in a
 * register and folds 16 activation loads per group into the multiply-adds instead (26 loads
 * per 24 multiply-adds, more than the load ports give); here the 3 + 3 activation vectors of
 * a group are loaded once and the mask is a memory operand (18 loads). The arithmetic is the
 * template's: the same products, added in the same order. The 4 weight rows and the 3
 * activation rows must be equally spaced, as the direct path makes them. */
static const uint32_t bf16_odd_mask[8]
    __attribute__((aligned(32))) = {0xffff0000u, 0xffff0000u, 0xffff0000u, 0xffff0000u,
                                    0xffff0000u, 0xffff0000u, 0xffff0000u, 0xffff0000u};

static int64_t bf16_pairs_4x3(const uint8_t *const *w, const float *const *x, int64_t kn,
                              struct mm_prefetch *pfs, __m256 a[4][3])
{
    __m256 a00 = a[0][0], a01 = a[0][1], a02 = a[0][2];
    __m256 a10 = a[1][0], a11 = a[1][1], a12 = a[1][2];
    __m256 a20 = a[2][0], a21 = a[2][1], a22 = a[2][2];
    __m256 a30 = a[3][0], a31 = a[3][1], a32 = a[3][2];
    intptr_t ws = w[1] - w[0];
    intptr_t xs = (const char *)(const void *)x[1] - (const char *)(const void *)x[0];
    int64_t c = 0;
    for (; c + 16 <= kn; c += 16) {
        mm_prefetch_step(pfs);
        mm_prefetch_step(pfs);
        const uint8_t *w0 = w[0] + 2 * c, *w2 = w[2] + 2 * c;
        const float *x0 = x[0] + c;
        __asm__("vmovups (%[x0]), %%ymm12\n\t"
                "vmovups (%[x0],%[xs]), %%ymm13\n\t"
                "vmovups (%[x0],%[xs],2), %%ymm14\n\t"
                "vmovdqu (%[w0]), %%ymm15\n\t"
                "vpslld $16, %%ymm15, %%ymm15\n\t"
                "vfmadd231ps %%ymm12, %%ymm15, %t[a00]\n\t"
                "vfmadd231ps %%ymm13, %%ymm15, %t[a01]\n\t"
                "vfmadd231ps %%ymm14, %%ymm15, %t[a02]\n\t"
                "vmovdqu (%[w0],%[ws]), %%ymm15\n\t"
                "vpslld $16, %%ymm15, %%ymm15\n\t"
                "vfmadd231ps %%ymm12, %%ymm15, %t[a10]\n\t"
                "vfmadd231ps %%ymm13, %%ymm15, %t[a11]\n\t"
                "vfmadd231ps %%ymm14, %%ymm15, %t[a12]\n\t"
                "vmovdqu (%[w2]), %%ymm15\n\t"
                "vpslld $16, %%ymm15, %%ymm15\n\t"
                "vfmadd231ps %%ymm12, %%ymm15, %t[a20]\n\t"
                "vfmadd231ps %%ymm13, %%ymm15, %t[a21]\n\t"
                "vfmadd231ps %%ymm14, %%ymm15, %t[a22]\n\t"
                "vmovdqu (%[w2],%[ws]), %%ymm15\n\t"
                "vpslld $16, %%ymm15, %%ymm15\n\t"
                "vfmadd231ps %%ymm12, %%ymm15, %t[a30]\n\t"
                "vfmadd231ps %%ymm13, %%ymm15, %t[a31]\n\t"
                "vfmadd231ps %%ymm14, %%ymm15, %t[a32]\n\t"
                "vmovups 32(%[x0]), %%ymm12\n\t"
                "vmovups 32(%[x0],%[xs]), %%ymm13\n\t"
                "vmovups 32(%[x0],%[xs],2), %%ymm14\n\t"
                "vmovdqu (%[w0]), %%ymm15\n\t"
                "vpand %[mask], %%ymm15, %%ymm15\n\t"
                "vfmadd231ps %%ymm12, %%ymm15, %t[a00]\n\t"
                "vfmadd231ps %%ymm13, %%ymm15, %t[a01]\n\t"
                "vfmadd231ps %%ymm14, %%ymm15, %t[a02]\n\t"
                "vmovdqu (%[w0],%[ws]), %%ymm15\n\t"
                "vpand %[mask], %%ymm15, %%ymm15\n\t"
                "vfmadd231ps %%ymm12, %%ymm15, %t[a10]\n\t"
                "vfmadd231ps %%ymm13, %%ymm15, %t[a11]\n\t"
                "vfmadd231ps %%ymm14, %%ymm15, %t[a12]\n\t"
                "vmovdqu (%[w2]), %%ymm15\n\t"
                "vpand %[mask], %%ymm15, %%ymm15\n\t"
                "vfmadd231ps %%ymm12, %%ymm15, %t[a20]\n\t"
                "vfmadd231ps %%ymm13, %%ymm15, %t[a21]\n\t"
                "vfmadd231ps %%ymm14, %%ymm15, %t[a22]\n\t"
                "vmovdqu (%[w2],%[ws]), %%ymm15\n\t"
                "vpand %[mask], %%ymm15, %%ymm15\n\t"
                "vfmadd231ps %%ymm12, %%ymm15, %t[a30]\n\t"
                "vfmadd231ps %%ymm13, %%ymm15, %t[a31]\n\t"
                "vfmadd231ps %%ymm14, %%ymm15, %t[a32]\n\t"
                : [a00] "+x"(a00), [a01] "+x"(a01), [a02] "+x"(a02), [a10] "+x"(a10),
                  [a11] "+x"(a11), [a12] "+x"(a12), [a20] "+x"(a20), [a21] "+x"(a21),
                  [a22] "+x"(a22), [a30] "+x"(a30), [a31] "+x"(a31), [a32] "+x"(a32)
                : [w0] "r"(w0), [w2] "r"(w2), [ws] "r"(ws), [x0] "r"(x0), [xs] "r"(xs),
                  [mask] "m"(*(const __m256i *)(const void *)bf16_odd_mask)
                : "xmm12", "xmm13", "xmm14", "xmm15");
    }
    a[0][0] = a00;
    a[0][1] = a01;
    a[0][2] = a02;
    a[1][0] = a10;
    a[1][1] = a11;
    a[1][2] = a12;
    a[2][0] = a20;
    a[2][1] = a21;
    a[2][2] = a22;
    a[3][0] = a30;
    a[3][1] = a31;
    a[3][2] = a32;
    return c;
}

/* ---- q8_0 decode: 4 weight rows x 2 or 3 batch rows in assembly (MM_Q_ROWS4) ----
 * Per block k and output (r, b), the template's arithmetic (mm_q_block_fma): the activation
 * block signed by the weights, multiplied with the weights' absolute values (vpmaddubsw,
 * vpmaddwd with ones: 8 exact integer lanes), converted, and added with one fused
 * multiply-add scaled by the f32 product dw[r][k] * dx[b][k]. Written by GCC, the 4 x 3 case
 * needs 19 vector registers and spills its accumulators every block; here the 12 (or 8)
 * accumulators stay in registers: the activations are reloaded for each weight row (loads are
 * cheaper than spills), the weights are memory operands, and the scale products are computed
 * beforehand, 8 blocks per vector multiply, into a table read by broadcasts. */

#define Q_CHUNK 64 /* blocks per scale table */

/* sc[g][r * nb + b][j] = dw[r][k] * xd[b][k] for k = k0 + 8 g + j, k < k0 + n */
static void q_scale_table(int nb, const float *dw, intptr_t dws, const float *const *xd, int64_t k0,
                          int64_t n, float *sc)
{
    for (int64_t g = 0; g * 8 < n; g++) {
        int64_t left = n - g * 8;
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 8 ? left : 8)),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 dx[MM_NB];
        for (int b = 0; b < nb; b++)
            dx[b] = _mm256_maskload_ps(xd[b] + k0 + 8 * g, mask);
        for (int r = 0; r < 4; r++) {
            __m256 d = _mm256_maskload_ps(dw + r * dws + k0 + 8 * g, mask);
            for (int b = 0; b < nb; b++)
                _mm256_store_ps(sc + (g * 4 * nb + r * nb + b) * 8, _mm256_mul_ps(d, dx[b]));
        }
    }
}

#define Q_W2_SET "lea (%[w0],%[ws],2), %%r11\n\t"
#define Q_ABS(W) "vpabsb " W ", %%ymm13\n\t"
#define Q_RB(W, X, SC, ACC)                    \
    "vmovdqu " X ", %%ymm14\n\t"               \
    "vpsignb " W ", %%ymm14, %%ymm14\n\t"      \
    "vpmaddubsw %%ymm14, %%ymm13, %%ymm14\n\t" \
    "vpmaddwd %t[ones], %%ymm14, %%ymm14\n\t"  \
    "vcvtdq2ps %%ymm14, %%ymm14\n\t"           \
    "vbroadcastss " SC "(%[sc]), %%ymm15\n\t"  \
    "vfmadd231ps %%ymm15, %%ymm14, %t[" ACC "]\n\t"
#define Q_W0 "(%[w0])"
#define Q_W1 "(%[w0],%[ws])"
#define Q_W2 "(%%r11)"
#define Q_W3 "(%%r11,%[ws])"
#define Q_X0 "(%[x0])"
#define Q_X1 "(%[x0],%[xs])"
#define Q_X2 "(%[x0],%[xs],2)"

/* w0: row 0's values of block 0 (rows ws bytes apart, blocks wstep apart); x0: batch row 0's
 * activation blocks (rows xs apart); dw: row 0's block scales (rows dws floats apart). */
static inline __attribute__((always_inline)) void
q_rows4(int nb, const int8_t *w0, intptr_t wstep, intptr_t ws, const int8_t *x0, intptr_t xs,
        const float *dw, intptr_t dws, const float *const *xd, int64_t nblk,
        struct mm_prefetch *pfs, __m256 a[4][MM_NB])
{
    float sc[Q_CHUNK / 8 * 4 * MM_NB * 8] __attribute__((aligned(32)));
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256 z = _mm256_setzero_ps();
    __m256 a00 = a[0][0], a01 = a[0][1], a02 = nb == 3 ? a[0][2] : z;
    __m256 a10 = a[1][0], a11 = a[1][1], a12 = nb == 3 ? a[1][2] : z;
    __m256 a20 = a[2][0], a21 = a[2][1], a22 = nb == 3 ? a[2][2] : z;
    __m256 a30 = a[3][0], a31 = a[3][1], a32 = nb == 3 ? a[3][2] : z;
    for (int64_t k0 = 0; k0 < nblk; k0 += Q_CHUNK) {
        int64_t n = nblk - k0 < Q_CHUNK ? nblk - k0 : Q_CHUNK;
        q_scale_table(nb, dw, dws, xd, k0, n, sc);
        for (int64_t kk = 0; kk < n; kk++) {
            int64_t k = k0 + kk;
            mm_prefetch_step(pfs);
            const int8_t *wk = w0 + k * wstep, *xk = x0 + 32 * k;
            const float *s = sc + ((kk >> 3) * 4 * nb * 8 + (kk & 7));
            if (nb == 3) {
                __asm__(
                    Q_W2_SET Q_ABS(Q_W0) Q_RB(Q_W0, Q_X0, "0", "a00") Q_RB(Q_W0, Q_X1, "32", "a01")
                        Q_RB(Q_W0, Q_X2, "64", "a02") Q_ABS(Q_W1) Q_RB(Q_W1, Q_X0, "96", "a10")
                            Q_RB(Q_W1, Q_X1, "128", "a11") Q_RB(Q_W1, Q_X2, "160", "a12")
                                Q_ABS(Q_W2) Q_RB(Q_W2, Q_X0, "192", "a20")
                                    Q_RB(Q_W2, Q_X1, "224", "a21") Q_RB(Q_W2, Q_X2, "256", "a22")
                                        Q_ABS(Q_W3) Q_RB(Q_W3, Q_X0, "288", "a30")
                                            Q_RB(Q_W3, Q_X1, "320", "a31")
                                                Q_RB(Q_W3, Q_X2, "352", "a32")
                    : [a00] "+x"(a00), [a01] "+x"(a01), [a02] "+x"(a02), [a10] "+x"(a10),
                      [a11] "+x"(a11), [a12] "+x"(a12), [a20] "+x"(a20), [a21] "+x"(a21),
                      [a22] "+x"(a22), [a30] "+x"(a30), [a31] "+x"(a31), [a32] "+x"(a32)
                    : [w0] "r"(wk), [ws] "r"(ws), [x0] "r"(xk), [xs] "r"(xs), [sc] "r"(s),
                      [ones] "x"(ones)
                    : "r11", "xmm13", "xmm14", "xmm15", "memory");
            } else {
                __asm__(Q_W2_SET Q_ABS(Q_W0) Q_RB(Q_W0, Q_X0, "0", "a00")
                            Q_RB(Q_W0, Q_X1, "32", "a01") Q_ABS(Q_W1) Q_RB(Q_W1, Q_X0, "64", "a10")
                                Q_RB(Q_W1, Q_X1, "96", "a11") Q_ABS(Q_W2)
                                    Q_RB(Q_W2, Q_X0, "128", "a20") Q_RB(Q_W2, Q_X1, "160", "a21")
                                        Q_ABS(Q_W3) Q_RB(Q_W3, Q_X0, "192", "a30")
                                            Q_RB(Q_W3, Q_X1, "224", "a31")
                        : [a00] "+x"(a00), [a01] "+x"(a01), [a10] "+x"(a10), [a11] "+x"(a11),
                          [a20] "+x"(a20), [a21] "+x"(a21), [a30] "+x"(a30), [a31] "+x"(a31)
                        : [w0] "r"(wk), [ws] "r"(ws), [x0] "r"(xk), [xs] "r"(xs), [sc] "r"(s),
                          [ones] "x"(ones)
                        : "r11", "xmm13", "xmm14", "xmm15", "memory");
            }
        }
    }
    a[0][0] = a00;
    a[0][1] = a01;
    a[1][0] = a10;
    a[1][1] = a11;
    a[2][0] = a20;
    a[2][1] = a21;
    a[3][0] = a30;
    a[3][1] = a31;
    if (nb == 3) {
        a[0][2] = a02;
        a[1][2] = a12;
        a[2][2] = a22;
        a[3][2] = a32;
    }
}

static void q_rows4_3(const int8_t *w0, intptr_t wstep, intptr_t ws, const int8_t *x0, intptr_t xs,
                      const float *dw, intptr_t dws, const float *const *xd, int64_t nblk,
                      struct mm_prefetch *pfs, __m256 a[4][MM_NB])
{
    q_rows4(3, w0, wstep, ws, x0, xs, dw, dws, xd, nblk, pfs, a);
}

static void q_rows4_2(const int8_t *w0, intptr_t wstep, intptr_t ws, const int8_t *x0, intptr_t xs,
                      const float *dw, intptr_t dws, const float *const *xd, int64_t nblk,
                      struct mm_prefetch *pfs, __m256 a[4][MM_NB])
{
    q_rows4(2, w0, wstep, ws, x0, xs, dw, dws, xd, nblk, pfs, a);
}

/* Activations for MM_BF16_PAIRS: each group of 16 as [x0 x2 .. x14, x1 x3 .. x15]. */
static void permute_x_pairs(const float *x, int64_t cols, float *out)
{
    int64_t c = 0;
    for (; c + 16 <= cols; c += 16) {
        __m256 a = _mm256_loadu_ps(x + c), b = _mm256_loadu_ps(x + c + 8);
        /* per 128-bit lane [a0 a2 b0 b2 | a4 a6 b4 b6], then 64-bit pieces 0 2 1 3 */
        __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        __m256 od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        _mm256_storeu_ps(out + c,
                         _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xd8)));
        _mm256_storeu_ps(out + c + 8,
                         _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), 0xd8)));
    }
    memcpy(out + c, x + c, (size_t)(cols - c) * sizeof *out);
}

/* Same float operations as the portable quantize_x, so every variant quantizes identically. */
void sm_avx2_quantize_x(const float *x, int64_t cols, int8_t *q, float *d)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t k = 0; k < cols / 32; k++) {
        const float *xb = x + 32 * k;
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(xb + 8 * i);
            m = _mm256_max_ps(m, _mm256_and_ps(v[i], absmask));
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
        float amax = _mm_cvtss_f32(h);
        float dk = amax / 127.0f;
        float id = dk != 0.0f ? 1.0f / dk : 0.0f;
        d[k] = dk;
        __m256 vid = _mm256_set1_ps(id);
        __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
        __m256i qi[4];
        for (int i = 0; i < 4; i++) {
            __m256 r = _mm256_round_ps(_mm256_mul_ps(v[i], vid),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
            qi[i] = _mm256_cvtps_epi32(r);
        }
        /* 32 int32 -> 32 int8 in order (packs work within 128-bit lanes: fix the order) */
        __m256i p01 = _mm256_packs_epi32(qi[0], qi[1]);
        __m256i p23 = _mm256_packs_epi32(qi[2], qi[3]);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(void *)(q + 32 * k), p);
    }
}

void sm_avx2_rows_to_f32(const sm_mm_job *j, int64_t r0, int64_t r1, float *dst)
{
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = j->w + (size_t)r * j->row_bytes;
        float *o = dst + (r - r0) * j->cols;
        if (j->dtype == SM_DTYPE_BF16)
            sm_avx2_cvt_bf16(o, (const uint16_t *)(const void *)row, j->cols);
        else if (j->dtype == SM_DTYPE_F16)
            sm_avx2_cvt_f16(o, (const uint16_t *)(const void *)row, j->cols);
        else
            (void)sm_dequantize_row(j->dtype, row, j->cols, o, NULL);
    }
}

/* KV cache values (attention below, f32 or f16 as kv_f16 says; f16 widened exactly) and the
 * 8-lane dot product that scores keys and sums squares for RMSNorm. */

/* The cache's value types (kv_f16 below): f32, f16, the 8-bit cache's int8. */
enum { KV_F32 = 0, KV_F16 = 1, KV_Q8 = 2 };

/* 8 cache values from element i of row p, as f32. */
MM_INLINE __m256 kv_load8(const char *p, int64_t i, int kv_f16)
{
    if (kv_f16 == KV_Q8)
        return _mm256_cvtepi32_ps(
            _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p + i))));
    if (kv_f16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i)));
    return _mm256_loadu_ps((const float *)(const void *)p + i);
}

MM_INLINE float kv_load1(const char *p, int64_t i, int kv_f16)
{
    if (kv_f16 == KV_Q8)
        return (float)(int8_t)p[i];
    if (kv_f16) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        return sm_f16_to_f32(h);
    }
    return ((const float *)(const void *)p)[i];
}

/* q . k over n values: one 8-lane accumulator, mm_hsum8's tree, then the ordered tail (the
 * result depends only on n). */
MM_INLINE float kv_dot(const float *q, const char *k, int64_t n, int kv_f16)
{
    __m256 acc = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 8 <= n; c += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), kv_load8(k, c, kv_f16), acc);
    float t = mm_hsum8(acc);
    for (; c < n; c++)
        t += q[c] * kv_load1(k, c, kv_f16);
    return t;
}

/* dot8 on f32 vectors. */
static float dot8(const float *a, const float *b, int64_t n)
{
    return kv_dot(a, (const char *)(const void *)b, n, KV_F32);
}

void sm_avx2_rmsnorm(const float *x, const float *w, int64_t n, float eps, float *out)
{
    float ss = dot8(x, x, n);
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    __m256 vs = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(w + i),
                                                _mm256_mul_ps(_mm256_loadu_ps(x + i), vs)));
    for (; i < n; i++)
        out[i] = w[i] * (x[i] * scale);
}

void sm_avx2_silu_mul(float *gate, const float *up, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = mm_exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void sm_avx2_rope(float *x, int n_heads, int head_dim, int i0, int n, const float *cs,
                  const float *sn)
{
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *a = x + (int64_t)h * head_dim + i0;
        float *b = a + half;
        int i = 0;
        for (; i + 8 <= n; i += 8) {
            __m256 va = _mm256_loadu_ps(a + i), vb = _mm256_loadu_ps(b + i);
            __m256 c = _mm256_loadu_ps(cs + i), s = _mm256_loadu_ps(sn + i);
            _mm256_storeu_ps(a + i, _mm256_sub_ps(_mm256_mul_ps(va, c), _mm256_mul_ps(vb, s)));
            _mm256_storeu_ps(b + i, _mm256_add_ps(_mm256_mul_ps(vb, c), _mm256_mul_ps(va, s)));
        }
        for (; i < n; i++) {
            float va = a[i], vb = b[i];
            a[i] = va * cs[i] - vb * sn[i];
            b[i] = vb * cs[i] + va * sn[i];
        }
    }
}

/* ---- attention ----
 * The KV cache holds f32, f16 or int8 values (kv_f16: KV_F32, KV_F16 or KV_Q8, a compile-time
 * constant in each instance of attn_heads); rows lie rs bytes apart. f16 and int8 values are
 * widened exactly, so every product and sum below is the same f32 arithmetic for all; the 8-bit
 * cache's per-head scales multiply the scores of keys and the weights of values. */

/* q dotted with the 8 rows k, k + rs, ..., k + 7 rs (n a multiple of 8), each exactly as
 * kv_dot does it: eight independent FMA chains and one transposing reduction for all eight. */
MM_INLINE void kv_dot_rows8(const float *q, const char *k, int64_t rs, int64_t n, int kv_f16,
                            float *out)
{
    __m256 a[8];
    for (int j = 0; j < 8; j++)
        a[j] = _mm256_setzero_ps();
    for (int64_t c = 0; c < n; c += 8) {
        __m256 qv = _mm256_loadu_ps(q + c);
        for (int j = 0; j < 8; j++)
            a[j] = _mm256_fmadd_ps(qv, kv_load8(k + j * rs, c, kv_f16), a[j]);
    }
    _mm256_storeu_ps(out, mm_hsum8x8(a));
}

/* Two query heads q0 and q1 dotted with the 4 rows k .. k + 3 rs (n a multiple of 8), each
 * score exactly as kv_dot makes it; each key vector is loaded once for both heads. out0 and
 * out1 get the 4 scores of each head. */
MM_INLINE void kv_dot_heads2_rows4(const float *q0, const float *q1, const char *k, int64_t rs,
                                   int64_t n, int kv_f16, float *out0, float *out1)
{
    __m256 a[8]; /* a[j]: head 0 and key j; a[4 + j]: head 1 and key j */
    for (int j = 0; j < 8; j++)
        a[j] = _mm256_setzero_ps();
    for (int64_t c = 0; c < n; c += 8) {
        __m256 qv0 = _mm256_loadu_ps(q0 + c), qv1 = _mm256_loadu_ps(q1 + c);
        for (int j = 0; j < 4; j++) {
            __m256 kv = kv_load8(k + j * rs, c, kv_f16);
            a[j] = _mm256_fmadd_ps(qv0, kv, a[j]);
            a[4 + j] = _mm256_fmadd_ps(qv1, kv, a[4 + j]);
        }
    }
    float r[8];
    _mm256_storeu_ps(r, mm_hsum8x8(a));
    memcpy(out0, r, 4 * sizeof(float));
    memcpy(out1, r + 4, 4 * sizeof(float));
}

/* o[i..i + 8 nv) = o * corr + sum_p e[p] * v_p, in order of p: nv independent FMA chains
 * (8 fill both FMA pipes at a latency of 4). */
MM_INLINE void attn_accumulate_block(float *o, int i, int nv, float corr, const float *e,
                                     const char *v, int64_t rs, int64_t np, int kv_f16)
{
    __m256 acc[8];
    __m256 vc = _mm256_set1_ps(corr);
    for (int j = 0; j < nv; j++)
        acc[j] = _mm256_mul_ps(_mm256_loadu_ps(o + i + 8 * j), vc);
    for (int64_t p = 0; p < np; p++) {
        const char *vp = v + p * rs;
        __m256 ep = _mm256_set1_ps(e[p]);
        for (int j = 0; j < nv; j++)
            acc[j] = _mm256_fmadd_ps(ep, kv_load8(vp, i + 8 * j, kv_f16), acc[j]);
    }
    for (int j = 0; j < nv; j++)
        _mm256_storeu_ps(o + i + 8 * j, acc[j]);
}

/* o[i0..hd) = o * corr + sum_p e[p] * v_p one lane at a time (the same arithmetic per lane as
 * attn_accumulate_block). */
MM_INLINE void attn_accumulate_tail(float *o, int i0, int hd, float corr, const float *e,
                                    const char *v, int64_t rs, int64_t np, int kv_f16)
{
    for (int i = i0; i < hd; i++) {
        float t = o[i] * corr;
        for (int64_t p = 0; p < np; p++)
            t = fmaf(e[p], kv_load1(v + p * rs, i, kv_f16), t);
        o[i] = t;
    }
}

/* o[0..hd) = o * corr + sum_p e[p] * v_p, in order of p (v_p at v + p * rs). */
MM_INLINE void attn_accumulate(float *o, int hd, float corr, const float *e, const char *v,
                               int64_t rs, int64_t np, int kv_f16)
{
    int i = 0;
    for (; i + 64 <= hd; i += 64)
        attn_accumulate_block(o, i, 8, corr, e, v, rs, np, kv_f16);
    for (; i + 32 <= hd; i += 32)
        attn_accumulate_block(o, i, 4, corr, e, v, rs, np, kv_f16);
    attn_accumulate_tail(o, i, hd, corr, e, v, rs, np, kv_f16);
}

/* attn_accumulate for two heads at once (o0 with e0 and corr0, o1 with e1 and corr1) over the
 * same values: each value vector is loaded once for both. Every lane's arithmetic is the one
 * attn_accumulate does. */
MM_INLINE void attn_accumulate2(float *o0, float *o1, int hd, float corr0, float corr1,
                                const float *e0, const float *e1, const char *v, int64_t rs,
                                int64_t np, int kv_f16)
{
    __m256 c0 = _mm256_set1_ps(corr0), c1 = _mm256_set1_ps(corr1);
    int i = 0;
    for (; i + 32 <= hd; i += 32) {
        __m256 a0[4], a1[4];
        for (int j = 0; j < 4; j++) {
            a0[j] = _mm256_mul_ps(_mm256_loadu_ps(o0 + i + 8 * j), c0);
            a1[j] = _mm256_mul_ps(_mm256_loadu_ps(o1 + i + 8 * j), c1);
        }
        for (int64_t p = 0; p < np; p++) {
            const char *vp = v + p * rs;
            __m256 ep0 = _mm256_set1_ps(e0[p]), ep1 = _mm256_set1_ps(e1[p]);
            for (int j = 0; j < 4; j++) {
                __m256 vv = kv_load8(vp, i + 8 * j, kv_f16);
                a0[j] = _mm256_fmadd_ps(ep0, vv, a0[j]);
                a1[j] = _mm256_fmadd_ps(ep1, vv, a1[j]);
            }
        }
        for (int j = 0; j < 4; j++) {
            _mm256_storeu_ps(o0 + i + 8 * j, a0[j]);
            _mm256_storeu_ps(o1 + i + 8 * j, a1[j]);
        }
    }
    if (i < hd) {
        attn_accumulate_tail(o0, i, hd, corr0, e0, v, rs, np, kv_f16);
        attn_accumulate_tail(o1, i, hd, corr1, e1, v, rs, np, kv_f16);
    }
}

/* s[0..n) *= scale; returns their maximum (-inf when n is 0). */
static float scale_and_max(float *s, int64_t n, float scale)
{
    __m256 vscale = _mm256_set1_ps(scale), vmax = _mm256_set1_ps(-INFINITY);
    int64_t p = 0;
    for (; p + 8 <= n; p += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(s + p), vscale);
        _mm256_storeu_ps(s + p, v);
        vmax = _mm256_max_ps(vmax, v);
    }
    float lanes[8], mx = -INFINITY;
    _mm256_storeu_ps(lanes, vmax);
    for (int i = 0; i < 8; i++)
        mx = fmaxf(mx, lanes[i]);
    for (; p < n; p++) {
        s[p] *= scale;
        mx = fmaxf(mx, s[p]);
    }
    return mx;
}

/* The scores s[0..np) of one chunk become exp(s * scale - new max); updates the head's running
 * max m and sum l, and returns the factor its earlier output must be scaled by. */
static float softmax_chunk(float *s, int64_t np, float scale, float *m, float *l)
{
    float cmax = scale_and_max(s, np, scale);
    float mnew = fmaxf(*m, cmax);
    float corr = expf(*m - mnew);
    __m256 vm = _mm256_set1_ps(mnew);
    int64_t p = 0;
    for (; p + 8 <= np; p += 8)
        _mm256_storeu_ps(s + p, mm_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + p), vm)));
    for (; p < np; p++)
        s[p] = expf(s[p] - mnew);
    float csum = 0.0f;
    for (p = 0; p < np; p++)
        csum += s[p];
    *l = *l * corr + csum;
    *m = mnew;
    return corr;
}

#define ATTN_HEADS 8 /* query heads that take turns on one chunk of keys and values */

/* Online softmax over chunks of SM_ATTN_CHUNK positions for query heads h0 .. h0 + nh of kv
 * head kvh. The heads share each chunk: a chunk of keys and values is read from memory once
 * for all of them, and two heads at a time share each load of a key or value vector from the
 * cache; each head's arithmetic is the same as if it ran alone. */
MM_INLINE void attn_heads(const sm_attn_job *a, int kvh, int h0, int nh, int kv_f16)
{
    int hd = a->head_dim;
    int64_t esz = kv_f16 == KV_Q8 ? 1 : kv_f16 ? 2 : 4, rs = a->kv_stride * esz;
    const char *kbase = (const char *)a->k + (int64_t)kvh * hd * esz;
    const char *vbase = (const char *)a->v + (int64_t)kvh * hd * esz;
    /* the 8-bit cache: this head's scales, one per row after the row's values */
    int64_t sc_off = (int64_t)a->n_kv_heads * hd + 4 * (int64_t)kvh;
    float m[ATTN_HEADS], l[ATTN_HEADS];
    for (int j = 0; j < nh; j++) {
        m[j] = -INFINITY;
        l[j] = 0.0f;
        memset(a->out + (int64_t)(h0 + j) * hd, 0, sizeof(float) * (size_t)hd);
    }
    for (int64_t p0 = 0; p0 < a->n_pos; p0 += SM_ATTN_CHUNK) {
        int64_t np = a->n_pos - p0 < SM_ATTN_CHUNK ? a->n_pos - p0 : SM_ATTN_CHUNK;
        const char *kc = kbase + p0 * rs, *vc = vbase + p0 * rs;
        float s[ATTN_HEADS][SM_ATTN_CHUNK], corr[ATTN_HEADS];
        int j = 0;
        if (hd % 8 == 0) {
            int64_t p4 = np / 4 * 4;
            for (; j + 2 <= nh; j += 2) {
                const float *q0 = a->q + (int64_t)(h0 + j) * hd, *q1 = q0 + hd;
                for (int64_t p = 0; p < p4; p += 4)
                    kv_dot_heads2_rows4(q0, q1, kc + p * rs, rs, hd, kv_f16, s[j] + p,
                                        s[j + 1] + p);
                for (int64_t p = p4; p < np; p++) {
                    s[j][p] = kv_dot(q0, kc + p * rs, hd, kv_f16);
                    s[j + 1][p] = kv_dot(q1, kc + p * rs, hd, kv_f16);
                }
            }
        }
        for (; j < nh; j++) {
            const float *q = a->q + (int64_t)(h0 + j) * hd;
            int64_t p8 = hd % 8 == 0 ? np / 8 * 8 : 0;
            for (int64_t p = 0; p < p8; p += 8)
                kv_dot_rows8(q, kc + p * rs, rs, hd, kv_f16, s[j] + p);
            for (int64_t p = p8; p < np; p++)
                s[j][p] = kv_dot(q, kc + p * rs, hd, kv_f16);
        }
        float ks[SM_ATTN_CHUNK], vs[SM_ATTN_CHUNK];
        if (kv_f16 == KV_Q8) {
            for (int64_t p = 0; p < np; p++) {
                memcpy(&ks[p], kc - (int64_t)kvh * hd + p * rs + sc_off, sizeof(float));
                memcpy(&vs[p], vc - (int64_t)kvh * hd + p * rs + sc_off, sizeof(float));
            }
            for (j = 0; j < nh; j++)
                for (int64_t p = 0; p < np; p++)
                    s[j][p] *= ks[p];
        }
        for (j = 0; j < nh; j++)
            corr[j] = softmax_chunk(s[j], np, a->scale, &m[j], &l[j]);
        if (kv_f16 == KV_Q8) /* the weights now carry the values' scales (l has the sums) */
            for (j = 0; j < nh; j++)
                for (int64_t p = 0; p < np; p++)
                    s[j][p] *= vs[p];
        for (j = 0; j + 2 <= nh; j += 2) {
            float *o0 = a->out + (int64_t)(h0 + j) * hd;
            attn_accumulate2(o0, o0 + hd, hd, corr[j], corr[j + 1], s[j], s[j + 1], vc, rs, np,
                             kv_f16);
        }
        for (; j < nh; j++)
            attn_accumulate(a->out + (int64_t)(h0 + j) * hd, hd, corr[j], s[j], vc, rs, np, kv_f16);
    }
    for (int j = 0; j < nh; j++) {
        float *o = a->out + (int64_t)(h0 + j) * hd;
        float inv = l[j] > 0.0f ? 1.0f / l[j] : 0.0f;
        __m256 vi = _mm256_set1_ps(inv);
        int i = 0;
        for (; i + 8 <= hd; i += 8)
            _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(o + i), vi));
        for (; i < hd; i++)
            o[i] *= inv;
    }
}

static void attn_heads_f32(const sm_attn_job *a, int kvh, int h0, int nh)
{
    attn_heads(a, kvh, h0, nh, KV_F32);
}

static void attn_heads_f16(const sm_attn_job *a, int kvh, int h0, int nh)
{
    attn_heads(a, kvh, h0, nh, KV_F16);
}

static void attn_heads_q8(const sm_attn_job *a, int kvh, int h0, int nh)
{
    attn_heads(a, kvh, h0, nh, KV_Q8);
}

/* The query heads of kv heads [kv0, kv1), ATTN_HEADS of one kv head at a time. */
void sm_avx2_attention_kvs(const sm_attn_job *a, int kv0, int kv1)
{
    int group = a->n_heads / a->n_kv_heads;
    for (int kvh = kv0; kvh < kv1; kvh++) {
        for (int h0 = kvh * group; h0 < (kvh + 1) * group; h0 += ATTN_HEADS) {
            int nh = (kvh + 1) * group - h0 < ATTN_HEADS ? (kvh + 1) * group - h0 : ATTN_HEADS;
            if (a->kv_q8)
                attn_heads_q8(a, kvh, h0, nh);
            else if (a->kv_f16)
                attn_heads_f16(a, kvh, h0, nh);
            else
                attn_heads_f32(a, kvh, h0, nh);
        }
    }
}

/* 12 independent chains: enough to fill two FMA pipes with a latency of 4-5 cycles. The empty
 * asm keeps the compiler from folding the loop. */
double sm_avx2_peak(sm_dtype t, int64_t iters)
{
    if (t == SM_DTYPE_Q8_0 || t == SM_DTYPE_Q4_0) {
        /* six chains with six different operands: with one pair of operands GCC computed the
         * repeated vpmaddubsw/vpmaddwd once per round (4 of the 6 counted), which overstated
         * the peak by 1.5x */
        __m256i a0 = _mm256_set1_epi8(3), a1 = _mm256_set1_epi8(4), a2 = _mm256_set1_epi8(5);
        __m256i a3 = _mm256_set1_epi8(6), a4 = _mm256_set1_epi8(7), a5 = _mm256_set1_epi8(9);
        __m256i b0 = _mm256_set1_epi8(-5), one = _mm256_set1_epi16(1);
        __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        for (int64_t it = 0; it < iters; it++) {
            c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(_mm256_maddubs_epi16(a0, b0), one));
            c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(_mm256_maddubs_epi16(a1, b0), one));
            c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(_mm256_maddubs_epi16(a2, b0), one));
            c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(_mm256_maddubs_epi16(a3, b0), one));
            c4 = _mm256_add_epi32(c4, _mm256_madd_epi16(_mm256_maddubs_epi16(a4, b0), one));
            c5 = _mm256_add_epi32(c5, _mm256_madd_epi16(_mm256_maddubs_epi16(a5, b0), one));
            __asm__ volatile(""
                             : "+x"(c0), "+x"(c1), "+x"(c2), "+x"(c3), "+x"(c4), "+x"(c5), "+x"(a0),
                               "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(b0));
        }
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), c2),
                                     _mm256_add_epi32(_mm256_add_epi32(c3, c4), c5));
        volatile int sink = _mm256_extract_epi32(s, 0);
        (void)sink;
        return (double)iters * 6 * 32 * 2;
    }
    __m256 m = _mm256_set1_ps(0.999999f), d = _mm256_set1_ps(1e-6f);
    __m256 c0 = _mm256_set1_ps(0.0f), c1 = _mm256_set1_ps(1.0f), c2 = _mm256_set1_ps(2.0f);
    __m256 c3 = _mm256_set1_ps(3.0f), c4 = _mm256_set1_ps(4.0f), c5 = _mm256_set1_ps(5.0f);
    __m256 c6 = _mm256_set1_ps(6.0f), c7 = _mm256_set1_ps(7.0f), c8 = _mm256_set1_ps(8.0f);
    __m256 c9 = _mm256_set1_ps(9.0f), c10 = _mm256_set1_ps(10.0f), c11 = _mm256_set1_ps(11.0f);
    for (int64_t it = 0; it < iters; it++) {
        c0 = _mm256_fmadd_ps(c0, m, d);
        c1 = _mm256_fmadd_ps(c1, m, d);
        c2 = _mm256_fmadd_ps(c2, m, d);
        c3 = _mm256_fmadd_ps(c3, m, d);
        c4 = _mm256_fmadd_ps(c4, m, d);
        c5 = _mm256_fmadd_ps(c5, m, d);
        c6 = _mm256_fmadd_ps(c6, m, d);
        c7 = _mm256_fmadd_ps(c7, m, d);
        c8 = _mm256_fmadd_ps(c8, m, d);
        c9 = _mm256_fmadd_ps(c9, m, d);
        c10 = _mm256_fmadd_ps(c10, m, d);
        c11 = _mm256_fmadd_ps(c11, m, d);
        __asm__ volatile(""
                         : "+x"(c0), "+x"(c1), "+x"(c2), "+x"(c3), "+x"(c4), "+x"(c5), "+x"(c6),
                           "+x"(c7), "+x"(c8), "+x"(c9), "+x"(c10), "+x"(c11));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    volatile float sink = _mm256_cvtss_f32(s);
    (void)sink;
    return (double)iters * 12 * 8 * 2;
}

static const sm_kvariant avx2 = {
    .isa = SM_ISA_AVX2,
    .scratch_floats = mm_scratch_floats,
    .matmul_rows = mm_rows,
    .quantize_x = sm_avx2_quantize_x,
    .permute_x = permute_x_pairs,
    .rows_to_f32 = sm_avx2_rows_to_f32,
    .rmsnorm = sm_avx2_rmsnorm,
    .silu_mul = sm_avx2_silu_mul,
    .rope = sm_avx2_rope,
    .attention_kvs = sm_avx2_attention_kvs,
    .q8x_width = 8,
    .q8x_rows = sm_avx2_q8x_rows,
    .q8x_scratch_floats = sm_avx2_q8x_scratch_floats,
    .q4x_rows = sm_avx2_q4x_rows,
    .q4x_scratch_floats = sm_avx2_q4x_scratch_floats,
    .kqx = &sm_avx2_kqx,
    .peak = sm_avx2_peak,
    .kq_rows = sm_avx2_kq_rows,
};

const sm_kvariant *sm_kvariant_avx2(void)
{
    return &avx2;
}
