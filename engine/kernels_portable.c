/* kernels_portable: the reference variant of the CPU kernels in plain C (no instruction-set
 * flags). Every other variant is tested against it. Dot products keep 8 partial sums (lane l
 * sums the columns c with c % 8 == l, in order) so the compiler can vectorise them, and then
 * add the lanes in a fixed tree: an output's arithmetic depends only on the length. */
#include "kernels_isa.h"

#include <math.h>
#include <string.h>

static float hsum8(const float s[8])
{
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

static float dot_f32(const float *a, const float *b, int64_t n)
{
    float s[8] = {0};
    int64_t c = 0;
    for (; c + 8 <= n; c += 8)
        for (int l = 0; l < 8; l++)
            s[l] += a[c + l] * b[c + l];
    float t = hsum8(s);
    for (; c < n; c++)
        t += a[c] * b[c];
    return t;
}

static void row_to_f32(sm_dtype t, const uint8_t *src, int64_t cols, float *dst)
{
    /* the arguments were checked by sm_matmul, so this cannot fail */
    (void)sm_dequantize_row(t, src, cols, dst, NULL);
}

/* Integer dot product of one weight block (32 int8 values) with one activation block. */
static int32_t dot_i8_block(const int8_t *w, const int8_t *x)
{
    int32_t s = 0;
    for (int j = 0; j < SM_QBLOCK; j++)
        s += (int32_t)w[j] * (int32_t)x[j];
    return s;
}

static void unpack_block(sm_dtype t, const uint8_t *blk, int8_t q[SM_QBLOCK], float *d)
{
    uint16_t dh;
    memcpy(&dh, blk, 2);
    *d = sm_f16_to_f32(dh);
    if (t == SM_DTYPE_Q8_0) {
        memcpy(q, blk + 2, SM_QBLOCK);
    } else {
        for (int j = 0; j < SM_QBLOCK / 2; j++) {
            q[j] = (int8_t)((blk[2 + j] & 0x0f) - 8);
            q[j + SM_QBLOCK / 2] = (int8_t)((blk[2 + j] >> 4) - 8);
        }
    }
}

static void matmul_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task)
{
    if (j->dtype == SM_DTYPE_Q8_0 || j->dtype == SM_DTYPE_Q4_0) {
        int64_t nb = j->cols / SM_QBLOCK;
        size_t bsz = j->dtype == SM_DTYPE_Q8_0 ? 34 : 18;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = j->w + (size_t)r * j->row_bytes;
            for (int64_t b = 0; b < j->batch; b++) {
                const int8_t *xq = j->xq + b * j->cols;
                const float *xd = j->xd + b * nb;
                float acc = 0.0f;
                for (int64_t k = 0; k < nb; k++) {
                    int8_t q[SM_QBLOCK];
                    float dw;
                    unpack_block(j->dtype, row + k * bsz, q, &dw);
                    acc += (dw * xd[k]) * (float)dot_i8_block(q, xq + k * SM_QBLOCK);
                }
                float bias = j->bias ? j->bias[r] : 0.0f;
                j->y[b * j->ldy + r] = acc + bias;
            }
        }
        return;
    }
    float *wrow = j->scratch + (int64_t)task * j->scratch_floats;
    for (int64_t r = r0; r < r1; r++) {
        const float *wr;
        if (j->dtype == SM_DTYPE_F32) {
            wr = (const float *)(const void *)(j->w + (size_t)r * j->row_bytes);
        } else {
            row_to_f32(j->dtype, j->w + (size_t)r * j->row_bytes, j->cols, wrow);
            wr = wrow;
        }
        float bias = j->bias ? j->bias[r] : 0.0f;
        for (int64_t b = 0; b < j->batch; b++)
            j->y[b * j->ldy + r] = dot_f32(wr, j->x + b * j->ldx, j->cols) + bias;
    }
}

static void quantize_x(const float *x, int64_t cols, int8_t *q, float *d)
{
    for (int64_t k = 0; k < cols / SM_QBLOCK; k++) {
        const float *xb = x + k * SM_QBLOCK;
        float amax = 0.0f;
        for (int i = 0; i < SM_QBLOCK; i++)
            amax = fmaxf(amax, fabsf(xb[i]));
        float dk = amax / 127.0f;
        float id = dk != 0.0f ? 1.0f / dk : 0.0f;
        d[k] = dk;
        for (int i = 0; i < SM_QBLOCK; i++) {
            float v = nearbyintf(xb[i] * id);
            v = fminf(fmaxf(v, -127.0f), 127.0f);
            q[k * SM_QBLOCK + i] = (int8_t)v;
        }
    }
}

static void rows_to_f32(const sm_mm_job *j, int64_t r0, int64_t r1, float *dst)
{
    for (int64_t r = r0; r < r1; r++)
        row_to_f32(j->dtype, j->w + (size_t)r * j->row_bytes, j->cols, dst + (r - r0) * j->cols);
}

static void rmsnorm(const float *x, const float *w, int64_t n, float eps, float *out)
{
    float ss = dot_f32(x, x, n);
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int64_t i = 0; i < n; i++)
        out[i] = w[i] * (x[i] * scale);
}

static void silu_mul(float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void rope(float *x, int n_heads, int head_dim, int i0, int n, const float *cs,
                 const float *sn)
{
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *xh = x + (int64_t)h * head_dim + i0;
        for (int i = 0; i < n; i++) {
            float a = xh[i], b = xh[i + half];
            xh[i] = a * cs[i] - b * sn[i];
            xh[i + half] = b * cs[i] + a * sn[i];
        }
    }
}

/* Value i of a KV cache row (f32, f16 or the 8-bit cache's int8, widened exactly). */
static float kv_at(const sm_attn_job *a, const void *row, int64_t i)
{
    if (a->kv_q8)
        return (float)((const int8_t *)row)[i];
    if (a->kv_f16) {
        uint16_t h;
        memcpy(&h, (const uint16_t *)row + i, 2);
        return sm_f16_to_f32(h);
    }
    return ((const float *)row)[i];
}

/* Start of kv head kvh's values at position p in the K (which 0) or V cache. */
static const void *kv_row(const sm_attn_job *a, int which, int64_t p, int kvh)
{
    size_t esz = a->kv_q8 ? 1 : a->kv_f16 ? 2 : 4;
    const char *base = which ? a->v : a->k;
    return base + ((size_t)p * (size_t)a->kv_stride + (size_t)kvh * (size_t)a->head_dim) * esz;
}

/* q . k over head_dim values, in dot_f32's order. */
static float kv_dot(const sm_attn_job *a, const float *q, const void *k)
{
    int64_t n = a->head_dim;
    if (!a->kv_f16 && !a->kv_q8)
        return dot_f32(q, k, n);
    float s[8] = {0};
    int64_t c = 0;
    for (; c + 8 <= n; c += 8)
        for (int l = 0; l < 8; l++)
            s[l] += q[c + l] * kv_at(a, k, c + l);
    float t = hsum8(s);
    for (; c < n; c++)
        t += q[c] * kv_at(a, k, c);
    return t;
}

/* The 8-bit cache's scale of kv head kvh at position p (K: which 0, V: 1); 1 for f32/f16. */
static float kv_scale(const sm_attn_job *a, int which, int64_t p, int kvh)
{
    if (!a->kv_q8)
        return 1.0f;
    const char *base = which ? a->v : a->k;
    float sc;
    memcpy(&sc,
           base + (size_t)p * (size_t)a->kv_stride + (size_t)a->n_kv_heads * (size_t)a->head_dim +
               4 * (size_t)kvh,
           sizeof sc);
    return sc;
}

/* Online softmax over chunks of SM_ATTN_CHUNK positions: scores of a chunk, then the running
 * maximum, sum and weighted value sum are rescaled and updated. The 8-bit cache's scales
 * multiply a key's score and a value's weight. */
static void attention_kvs(const sm_attn_job *a, int kv0, int kv1)
{
    int group = a->n_heads / a->n_kv_heads;
    int hd = a->head_dim;
    for (int h = kv0 * group; h < kv1 * group; h++) {
        int kvh = h / group;
        const float *q = a->q + (int64_t)h * hd;
        float *o = a->out + (int64_t)h * hd;
        float m = -INFINITY, l = 0.0f;
        for (int i = 0; i < hd; i++)
            o[i] = 0.0f;
        for (int64_t p0 = 0; p0 < a->n_pos; p0 += SM_ATTN_CHUNK) {
            int64_t np = a->n_pos - p0 < SM_ATTN_CHUNK ? a->n_pos - p0 : SM_ATTN_CHUNK;
            float s[SM_ATTN_CHUNK];
            float cmax = -INFINITY;
            for (int64_t p = 0; p < np; p++) {
                s[p] = kv_dot(a, q, kv_row(a, 0, p0 + p, kvh)) * kv_scale(a, 0, p0 + p, kvh) *
                       a->scale;
                cmax = fmaxf(cmax, s[p]);
            }
            float mnew = fmaxf(m, cmax);
            float corr = expf(m - mnew); /* 0 on the first chunk */
            l *= corr;
            for (int i = 0; i < hd; i++)
                o[i] *= corr;
            for (int64_t p = 0; p < np; p++) {
                float e = expf(s[p] - mnew);
                l += e;
                const void *vp = kv_row(a, 1, p0 + p, kvh);
                if (a->kv_f16 || a->kv_q8) {
                    float ev = e * kv_scale(a, 1, p0 + p, kvh);
                    for (int i = 0; i < hd; i++)
                        o[i] += ev * kv_at(a, vp, i);
                } else {
                    const float *vf = vp;
                    for (int i = 0; i < hd; i++)
                        o[i] += e * vf[i];
                }
            }
            m = mnew;
        }
        float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int i = 0; i < hd; i++)
            o[i] *= inv;
    }
}

static int64_t scratch_floats(sm_dtype t, int64_t cols, int64_t batch)
{
    (void)batch;
    return t == SM_DTYPE_F16 || t == SM_DTYPE_BF16 ? cols : 0;
}

/* 16 independent multiply-add chains (the compiler vectorises them with the baseline ISA). */
static double peak(sm_dtype t, int64_t iters)
{
    if (t == SM_DTYPE_Q8_0 || t == SM_DTYPE_Q4_0) {
        int32_t acc[16] = {0};
        int8_t a[16], b[16];
        for (int i = 0; i < 16; i++) {
            a[i] = (int8_t)(i - 8);
            b[i] = (int8_t)(3 - i);
        }
        for (int64_t it = 0; it < iters; it++) {
            for (int i = 0; i < 16; i++)
                acc[i] += a[i] * b[i];
            __asm__ volatile("" : : "r"(acc) : "memory");
        }
        volatile int32_t sink = acc[0];
        (void)sink;
        return (double)iters * 16 * 2;
    }
    float acc[16], m = 0.999999f, add = 1e-6f;
    for (int i = 0; i < 16; i++)
        acc[i] = (float)i;
    for (int64_t it = 0; it < iters; it++) {
        for (int i = 0; i < 16; i++)
            acc[i] = acc[i] * m + add;
        __asm__ volatile("" : : "r"(acc) : "memory");
    }
    volatile float sink = acc[0];
    (void)sink;
    return (double)iters * 16 * 2;
}

static const sm_kvariant portable = {
    .isa = SM_ISA_PORTABLE,
    .scratch_floats = scratch_floats,
    .matmul_rows = matmul_rows,
    .quantize_x = quantize_x,
    .rows_to_f32 = rows_to_f32,
    .rmsnorm = rmsnorm,
    .silu_mul = silu_mul,
    .rope = rope,
    .attention_kvs = attention_kvs,
    .peak = peak,
};

const sm_kvariant *sm_kvariant_portable(void)
{
    return &portable;
}
