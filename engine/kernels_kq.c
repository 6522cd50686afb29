/* kernels_kq: the products of K-quant weights (q4_k, q5_k, q6_k) in plain C, the reference for
 * the SIMD ones: a few weight rows are unpacked to scratch (kernels_kq_tmpl.h), then each batch
 * row's activations (8-bit blocks of 32, as for q8_0) go through them; integer sums per block
 * of 32, then f32 additions in block order. An output's arithmetic depends only on cols. */
#include "kernels_kq_tmpl.h"

/* rows unpacked together when the batch has at least this many rows (one otherwise) */
#define KQ_ROWS 4

size_t sm_kq_unpacked_bytes(int64_t cols)
{
    size_t b = (size_t)cols + 40 * (size_t)(cols / 32);
    return (b + 63) / 64 * 64;
}

int64_t sm_kq_scratch_floats(int64_t cols)
{
    return (int64_t)(KQ_ROWS * sm_kq_unpacked_bytes(cols) / sizeof(float));
}

void sm_kq_unpack_row(sm_dtype t, const uint8_t *src, int64_t cols, uint8_t *dst)
{
    kq_unpack_row(t, src, cols, dst);
}

void sm_kq_x_sums(const int8_t *q, const float *xd, int64_t nb, float *xs)
{
    for (int64_t k = 0; k < nb; k++) {
        int32_t s = 0;
        for (int i = 0; i < SM_QBLOCK; i++)
            s += q[32 * k + i];
        xs[k] = xd[k] * (float)s;
    }
}

static float kq_dot(const uint8_t *u, bool sgn, int64_t cols, const int8_t *xq, const float *xd,
                    const float *xs)
{
    const int16_t *sc = KQ_SC(u, cols);
    const float *d = KQ_D(u, cols), *mn = KQ_MN(u, cols);
    float acc = 0.0f, accm = 0.0f;
    for (int64_t j = 0; j < cols / 32; j++) {
        int32_t lo = 0, hi = 0;
        for (int i = 0; i < 16; i++) {
            int w0 = sgn ? (int8_t)u[32 * j + i] : u[32 * j + i];
            int w1 = sgn ? (int8_t)u[32 * j + 16 + i] : u[32 * j + 16 + i];
            lo += w0 * xq[32 * j + i];
            hi += w1 * xq[32 * j + 16 + i];
        }
        int32_t isum = sc[16 * j] * lo + sc[16 * j + 8] * hi;
        acc += (d[j] * xd[j]) * (float)isum;
        accm += mn[j] * xs[j];
    }
    return acc - accm;
}

void sm_kq_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task)
{
    uint8_t *scr = (uint8_t *)(j->scratch + (int64_t)task * j->scratch_floats);
    size_t ub = sm_kq_unpacked_bytes(j->cols);
    int64_t nb = j->cols / SM_QBLOCK;
    int group = j->batch >= KQ_ROWS ? KQ_ROWS : 1;
    bool sgn = j->dtype == SM_DTYPE_Q6_K;
    for (int64_t r = r0; r < r1; r += group) {
        int nr = r1 - r < group ? (int)(r1 - r) : group;
        for (int i = 0; i < nr; i++)
            kq_unpack_row(j->dtype, j->w + (size_t)(r + i) * j->row_bytes, j->cols,
                          scr + (size_t)i * ub);
        for (int64_t b = 0; b < j->batch; b++)
            for (int i = 0; i < nr; i++) {
                float v = kq_dot(scr + (size_t)i * ub, sgn, j->cols, j->xq + b * j->cols,
                                 j->xd + b * nb, j->xs + b * nb);
                j->y[b * j->ldy + r + i] = v + (j->bias ? j->bias[r + i] : 0.0f);
            }
    }
}
