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

#endif
