/* kernels_kq_tmpl: the unpacking of K-quant weight rows (q4_k, q5_k, q6_k) to the form the
 * products read (see kernels_isa.h), as plain loops that the compiler vectorises with the
 * flags of the file that includes it (kernels_kq.c: the baseline; kernels_avx2_kq.c: AVX2).
 * Both give the same bytes. */
#ifndef SM_KERNELS_KQ_TMPL_H
#define SM_KERNELS_KQ_TMPL_H

#include <string.h>

#include "kernels_isa.h"

static inline float kq_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return sm_f16_to_f32(h);
}

/* Offsets inside an unpacked row of nb blocks: values, scales, d, mins. */
#define KQ_SC(u, cols) ((int16_t *)(void *)((u) + (cols)))
#define KQ_D(u, cols) ((float *)(void *)((u) + (cols) + 32 * ((cols) / 32)))
#define KQ_MN(u, cols) ((float *)(void *)((u) + (cols) + 36 * ((cols) / 32)))

/* One q4_k (qh NULL) / q5_k super-block: 256 values, 8 blocks. */
static inline void kq_unpack_q45(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, uint8_t *q,
                                 int16_t *sc, float *d, float *mn)
{
    float dd = kq_f16(b), dmin = kq_f16(b + 2);
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = qs[32 * c + l] & 0x0f;
            q[64 * c + 32 + l] = qs[32 * c + l] >> 4;
        }
        if (qh) {
            for (int l = 0; l < 32; l++) {
                q[64 * c + l] |= (uint8_t)(((qh[l] >> (2 * c)) & 1) << 4);
                q[64 * c + 32 + l] |= (uint8_t)(((qh[l] >> (2 * c + 1)) & 1) << 4);
            }
        }
    }
    for (int j = 0; j < 8; j++) {
        int s, m;
        sm_kq_scale_min(b + 4, j, &s, &m);
        for (int i = 0; i < 16; i++)
            sc[16 * j + i] = (int16_t)s;
        d[j] = dd;
        mn[j] = dmin * (float)m;
    }
}

/* One q6_k super-block: values q - 32, a scale per 16 values. */
static inline void kq_unpack_q6(const uint8_t *b, int8_t *q, int16_t *sc, float *d, float *mn)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *s = (const int8_t *)(b + 192);
    float dd = kq_f16(b + 208);
    for (int n = 0; n < 2; n++) {
        for (int l = 0; l < 32; l++) {
            int a = ql[64 * n + l], c = ql[64 * n + 32 + l], h = qh[32 * n + l];
            q[128 * n + l] = (int8_t)(((a & 0x0f) | ((h & 3) << 4)) - 32);
            q[128 * n + 32 + l] = (int8_t)(((c & 0x0f) | (((h >> 2) & 3) << 4)) - 32);
            q[128 * n + 64 + l] = (int8_t)(((a >> 4) | (((h >> 4) & 3) << 4)) - 32);
            q[128 * n + 96 + l] = (int8_t)(((c >> 4) | (((h >> 6) & 3) << 4)) - 32);
        }
    }
    for (int j = 0; j < 8; j++) {
        for (int i = 0; i < 16; i++)
            sc[16 * j + i] = s[2 * j + i / 8];
        d[j] = dd;
        mn[j] = 0.0f;
    }
}

static inline void kq_unpack_row(sm_dtype t, const uint8_t *src, int64_t cols, uint8_t *dst)
{
    size_t bsz = sm_dtype_row_bytes(t, SM_QK_BLOCK);
    int16_t *sc = KQ_SC(dst, cols);
    float *d = KQ_D(dst, cols), *mn = KQ_MN(dst, cols);
    for (int64_t s = 0; s < cols / SM_QK_BLOCK; s++) {
        const uint8_t *b = src + (size_t)s * bsz;
        uint8_t *q = dst + s * SM_QK_BLOCK;
        int16_t *ss = sc + s * SM_QK_BLOCK / 2;
        if (t == SM_DTYPE_Q6_K)
            kq_unpack_q6(b, (int8_t *)q, ss, d + 8 * s, mn + 8 * s);
        else
            kq_unpack_q45(b, t == SM_DTYPE_Q5_K ? b + 16 : NULL, b + (t == SM_DTYPE_Q5_K ? 48 : 16),
                          q, ss, d + 8 * s, mn + 8 * s);
    }
}

#endif
