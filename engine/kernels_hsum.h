/* kernels_hsum: the fixed lane-summation trees of the SIMD variants, shared so that every path
 * that sums an output's lanes (products, attention, packed q8_0) adds them in the same order.
 * Include from files compiled with AVX2 (or wider) flags. */
#ifndef SM_KERNELS_HSUM_H
#define SM_KERNELS_HSUM_H
#include <immintrin.h>

/* 8 lanes: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)), as the portable variant. */
static inline float mm_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* Lane j of the result is mm_hsum8(a[j]), bitwise: the same three steps (halves added, then
 * lanes 0+2 and 1+3, then those two) done for eight vectors at once with a transposition. */
static inline __m256 mm_hsum8x8(const __m256 a[8])
{
    __m256 t[4]; /* t[j]: a[j] in the low half, a[j + 4] in the high half */
    for (int j = 0; j < 4; j++)
        t[j] = _mm256_add_ps(_mm256_permute2f128_ps(a[j], a[j + 4], 0x20),
                             _mm256_permute2f128_ps(a[j], a[j + 4], 0x31));
    __m256 u01 = _mm256_add_ps(_mm256_shuffle_ps(t[0], t[1], _MM_SHUFFLE(1, 0, 1, 0)),
                               _mm256_shuffle_ps(t[0], t[1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 u23 = _mm256_add_ps(_mm256_shuffle_ps(t[2], t[3], _MM_SHUFFLE(1, 0, 1, 0)),
                               _mm256_shuffle_ps(t[2], t[3], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm256_add_ps(_mm256_shuffle_ps(u01, u23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm256_shuffle_ps(u01, u23, _MM_SHUFFLE(3, 1, 3, 1)));
}

#ifdef __AVX512F__
/* 16 lanes: lanes l and l+8 first, then the 8-lane tree */
static inline float mm_hsum16(__m512 v)
{
    return mm_hsum8(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

/* Lane j of the result is mm_hsum16(a[j]), bitwise: the same pairs (at distance 8, then the
 * 8-lane tree's 4, 2, 1) added for sixteen vectors at once. */
static inline __m512 mm_hsum16x16(const __m512 a[16])
{
    __m512 t[8], u[4], w[2];
    for (int k = 0; k < 8; k++) /* lanes 0-7: a[2k]'s l + l+8; lanes 8-15: a[2k+1]'s */
        t[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0xEE));
    for (int k = 0; k < 4; k++) /* quarter i: a[4k+i]'s 4 sums at distance 4 */
        u[k] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * k], t[2 * k + 1], 0x88),
                             _mm512_shuffle_f32x4(t[2 * k], t[2 * k + 1], 0xDD));
    for (int k = 0; k < 2; k++) {
        __m512d lo = _mm512_castps_pd(u[2 * k]), hi = _mm512_castps_pd(u[2 * k + 1]);
        /* quarter i: a[8k+i]'s two sums at distance 2, then a[8k+4+i]'s */
        w[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi)));
    }
    /* lane 4i + j: a[4j + i]'s sum, put back in order */
    __m512 r = _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
}
#endif

#endif
