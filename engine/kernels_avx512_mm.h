/* kernels_avx512_mm: the 16-lane vector macros (f32 FMA, bf16/f16 conversion, horizontal sums,
 * VNNI 8-bit dot products) and the blocked weight-matrix product built from them
 * (kernels_mm_tmpl.h), shared by the two AVX-512 variants. Include once, from a file compiled
 * with the AVX-512 flags, after kernels_isa.h. */
#ifndef SM_KERNELS_AVX512_MM_H
#define SM_KERNELS_AVX512_MM_H
#include <immintrin.h>

#include "kernels_hsum.h"

static void cvt_bf16_16(float *dst, const uint16_t *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        _mm512_storeu_ps(dst + i,
                         _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
    }
    sm_avx2_cvt_bf16(dst + i, src + i, n - i);
}

static void cvt_f16_16(float *dst, const uint16_t *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(
            dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(src + i))));
    sm_avx2_cvt_f16(dst + i, src + i, n - i);
}

static inline __m256i qdot_vnni(__m256i aw, __m256i sx)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx);
}

#define MM_V __m512
#define MM_VL 16
#define MM_ZERO() _mm512_setzero_ps()
#define MM_LOADU(p) _mm512_loadu_ps(p)
#define MM_STOREU(p, v) _mm512_storeu_ps((p), (v))
#define MM_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define MM_HSUM(v) mm_hsum16(v)
#define MM_HSUMX(a) mm_hsum16x16(a)
#define MM_ADD(a, b) _mm512_add_ps((a), (b))
#define MM_CVT_BF16(dst, src, n) cvt_bf16_16((dst), (src), (n))
#define MM_CVT_F16(dst, src, n) cvt_f16_16((dst), (src), (n))
#define MM_LOAD_BF16(p)                    \
    _mm512_castsi512_ps(_mm512_slli_epi32( \
        _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p))), 16))
#define MM_LOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define MM_QDOT(aw, sx) qdot_vnni((aw), (sx))
/* 32 vector registers: micro tiles of 8 weight rows x 3 batch rows, each weight vector loaded
 * once for the 3 rows */
#define MM_NR 8
#define MM_IN_REG(v) __asm__("" : "+v"(v))
/* decode passes: 4 weight rows x up to 6 batch rows (24 accumulators, the 6 activation vectors
 * in registers): each converted weight vector serves 6 multiply-adds, and a batch of 16 takes
 * 3 passes over the rows instead of 6 */
#define MM_DNR 4
#define MM_DNB 6
/* q8_0/q4_0: two blocks per 512-bit vpdpbusd (see kernels_mm_tmpl.h) */
#define MM_Q_PAIRS 1
/* bf16 weights in pairs (see kernels_mm_tmpl.h): 32 values per load, the even ones by a shift,
 * the odd ones by a mask; one operation per 16 weights where the widening load takes two */
#define MM_BF16_PAIRS 1
#define MM_BF16_LOAD32(p) _mm512_loadu_si512((const void *)(p))
#define MM_BF16_EVEN(p) _mm512_castsi512_ps(_mm512_slli_epi32(MM_BF16_LOAD32(p), 16))
#define MM_BF16_ODD(p) \
    _mm512_castsi512_ps(_mm512_and_si512(MM_BF16_LOAD32(p), _mm512_set1_epi32((int)0xffff0000u)))
/* the 4 x 6 bf16-pair decode pass in assembly (bf16_pairs_4x6 below) */
#define MM_BF16_PAIRS_4X6(w, x, kn, pfs, a) bf16_pairs_4x6((w), (x), (kn), (pfs), (a))
struct mm_prefetch;
static int64_t bf16_pairs_4x6(const uint8_t *const *w, const float *const *x, int64_t kn,
                              struct mm_prefetch *pfs, __m512 a[4][6]);
#include "kernels_mm_tmpl.h"

/* The 4 x 6 bf16-pair decode pass (MM_BF16_PAIRS, MM_DNR x MM_DNB) over the whole groups of 32
 * of columns [0, kn); returns the columns done. Written by GCC it needs 33 vector registers
 * (24 accumulators, 6 activation vectors, the weight vector and the odd-value mask) and
 * spilled the converted weights to the stack; here the mask is k1 (a zero-masking load keeps
 * the odd 16-bit halves) and the even values are shifted straight from memory, so 24 + 6 + 1
 * registers do, in two statements of two weight rows each (an asm statement takes at most 30
 * operands), each loading the activations again from L1. The arithmetic is the template's:
 * the same products, added in the same order (per accumulator the even half of a group, then
 * the odd half). The 4 weight rows and the 6 activation rows must be equally spaced, as the
 * direct path makes them. */
static int64_t bf16_pairs_4x6(const uint8_t *const *w, const float *const *x, int64_t kn,
                              struct mm_prefetch *pfs, __m512 a[4][6])
{
    __m512 a00 = a[0][0], a01 = a[0][1], a02 = a[0][2], a03 = a[0][3], a04 = a[0][4];
    __m512 a05 = a[0][5], a10 = a[1][0], a11 = a[1][1], a12 = a[1][2], a13 = a[1][3];
    __m512 a14 = a[1][4], a15 = a[1][5], a20 = a[2][0], a21 = a[2][1], a22 = a[2][2];
    __m512 a23 = a[2][3], a24 = a[2][4], a25 = a[2][5], a30 = a[3][0], a31 = a[3][1];
    __m512 a32 = a[3][2], a33 = a[3][3], a34 = a[3][4], a35 = a[3][5];
    intptr_t ws = w[1] - w[0];
    intptr_t xs = (const char *)(const void *)x[1] - (const char *)(const void *)x[0];
    int64_t c = 0;
    for (; c + 32 <= kn; c += 32) {
        mm_prefetch_step(pfs);
        mm_prefetch_step(pfs);
        const uint8_t *w0 = w[0] + 2 * c, *w2 = w[2] + 2 * c;
        const float *x0 = x[0] + c, *x3 = x[3] + c;
#define BP_ROW(addr, load, r)                                  \
    load(addr) "\n\t"                                          \
               "vfmadd231ps %%zmm24, %%zmm30, %g[" #r "0]\n\t" \
               "vfmadd231ps %%zmm25, %%zmm30, %g[" #r "1]\n\t" \
               "vfmadd231ps %%zmm26, %%zmm30, %g[" #r "2]\n\t" \
               "vfmadd231ps %%zmm27, %%zmm30, %g[" #r "3]\n\t" \
               "vfmadd231ps %%zmm28, %%zmm30, %g[" #r "4]\n\t" \
               "vfmadd231ps %%zmm29, %%zmm30, %g[" #r "5]\n\t"
#define BP_EVEN(addr) "vpslld $16, " addr ", %%zmm30"
#define BP_ODD(addr) "vmovdqu16 " addr ", %%zmm30%{%%k1%}%{z%}"
#define BP_X(off)                                 \
    "vmovups " off "(%[x0]), %%zmm24\n\t"         \
    "vmovups " off "(%[x0],%[xs]), %%zmm25\n\t"   \
    "vmovups " off "(%[x0],%[xs],2), %%zmm26\n\t" \
    "vmovups " off "(%[x3]), %%zmm27\n\t"         \
    "vmovups " off "(%[x3],%[xs]), %%zmm28\n\t"   \
    "vmovups " off "(%[x3],%[xs],2), %%zmm29\n\t"
/* two weight rows (at wp and wp + ws; accumulators ra and rb) x the 6 activation rows, over
 * one group of 32 columns: the even halves, then the odd halves */
#define BP_TWO_ROWS(wp, ra, rb)                                                           \
    __asm__("movl $0xaaaaaaaa, %%eax\n\t"                                                 \
            "kmovd %%eax, %%k1\n\t" BP_X("") BP_ROW("(%[w])", BP_EVEN, p)                 \
                BP_ROW("(%[w],%[ws])", BP_EVEN, q) BP_X("64") BP_ROW("(%[w])", BP_ODD, p) \
                    BP_ROW("(%[w],%[ws])", BP_ODD, q)                                     \
            : [p0] "+v"(ra##0), [p1] "+v"(ra##1), [p2] "+v"(ra##2), [p3] "+v"(ra##3),     \
              [p4] "+v"(ra##4), [p5] "+v"(ra##5), [q0] "+v"(rb##0), [q1] "+v"(rb##1),     \
              [q2] "+v"(rb##2), [q3] "+v"(rb##3), [q4] "+v"(rb##4), [q5] "+v"(rb##5)      \
            : [w] "r"(wp), [ws] "r"(ws), [x0] "r"(x0), [x3] "r"(x3), [xs] "r"(xs)         \
            : "eax", "k1", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", \
              "memory")
        BP_TWO_ROWS(w0, a0, a1);
        BP_TWO_ROWS(w2, a2, a3);
#undef BP_TWO_ROWS
#undef BP_X
#undef BP_ODD
#undef BP_EVEN
#undef BP_ROW
    }
    a[0][0] = a00;
    a[0][1] = a01;
    a[0][2] = a02;
    a[0][3] = a03;
    a[0][4] = a04;
    a[0][5] = a05;
    a[1][0] = a10;
    a[1][1] = a11;
    a[1][2] = a12;
    a[1][3] = a13;
    a[1][4] = a14;
    a[1][5] = a15;
    a[2][0] = a20;
    a[2][1] = a21;
    a[2][2] = a22;
    a[2][3] = a23;
    a[2][4] = a24;
    a[2][5] = a25;
    a[3][0] = a30;
    a[3][1] = a31;
    a[3][2] = a32;
    a[3][3] = a33;
    a[3][4] = a34;
    a[3][5] = a35;
    return c;
}
#endif
