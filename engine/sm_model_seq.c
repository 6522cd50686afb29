/* sm_model_seq: sequences and their KV caches. A sequence reserves (without committing) room
 * for max_ctx positions of every layer's keys and values, in the model's kv_dtype (f16 by
 * default, f32 for f32 weights or the portable kernels, or q8_0: the 8-bit cache, each
 * position's row of int8 values followed by one f32 scale per kv head); pages are committed as
 * positions are filled. Sequences can be truncated and copied (whole, or a prefix into another), so that a
 * shared prompt prefix is computed once. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sm_log.h"
#include "sm_model_internal.h"

/* Values of one position of one layer's keys (or values). */
static int64_t kv_dim(const sm_model *m)
{
    return m->info.config.n_kv_heads * m->info.config.head_dim;
}

void *sm_seq_cache(const sm_seq *s, int64_t l, int which)
{
    return s->kv + ((size_t)(2 * l + which) * (size_t)s->max_ctx) * sm_model_kv_row_bytes(s->model);
}

sm_code sm_seq_new(sm_model *m, int64_t max_ctx, sm_seq **out, sm_err *err)
{
    *out = NULL;
    const sm_model_config *c = &m->info.config;
    if (max_ctx <= 0) {
        max_ctx = c->max_pos;
    }
    if (max_ctx > c->max_pos) {
        return sm_err_set(err, SM_ELIMIT, "context %lld exceeds the model's maximum %lld",
                          (long long)max_ctx, (long long)c->max_pos);
    }
    size_t per = m->info.kv_bytes_per_token;
    if ((uint64_t)max_ctx > SIZE_MAX / per) {
        return sm_err_set(err, SM_ELIMIT, "context %lld is too large", (long long)max_ctx);
    }
    size_t bytes = per * (size_t)max_ctx;
    sm_logf(SM_LOG_INFO, "kv cache: %lld positions x %zu bytes = %.1f MiB (committed as filled)",
            (long long)max_ctx, per, (double)bytes / 1048576.0);
    sm_seq *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        free(s);
        return sm_err_set(err, SM_ENOMEM, "cannot reserve %zu bytes of KV cache: %s", bytes,
                          strerror(errno));
    }
    s->model = m;
    s->max_ctx = max_ctx;
    s->kv = p;
    s->kv_bytes = bytes;
    *out = s;
    return SM_OK;
}

void sm_seq_free(sm_seq **ps)
{
    sm_seq *s = *ps;
    if (s == NULL) {
        return;
    }
    munmap(s->kv, s->kv_bytes);
    free(s);
    *ps = NULL;
}

int64_t sm_seq_pos(const sm_seq *s)
{
    return s->pos;
}

int64_t sm_seq_max_ctx(const sm_seq *s)
{
    return s->max_ctx;
}

sm_code sm_seq_truncate(sm_seq *s, int64_t pos, sm_err *err)
{
    if (pos < 0 || pos > s->pos) {
        return sm_err_set(err, SM_EINVAL, "cannot truncate a sequence of %lld positions to %lld",
                          (long long)s->pos, (long long)pos);
    }
    s->pos = pos;
    return SM_OK;
}

sm_code sm_seq_copy(const sm_seq *src, int64_t n_pos, int64_t max_ctx, sm_seq **out, sm_err *err)
{
    *out = NULL;
    if (n_pos < 0 || n_pos > src->pos) {
        return sm_err_set(err, SM_EINVAL, "cannot copy %lld positions of a sequence of %lld",
                          (long long)n_pos, (long long)src->pos);
    }
    sm_model *m = src->model;
    if (max_ctx <= 0) {
        max_ctx = m->info.config.max_pos;
    }
    if (max_ctx < n_pos) {
        return sm_err_set(err, SM_ELIMIT, "a context of %lld cannot hold %lld positions",
                          (long long)max_ctx, (long long)n_pos);
    }
    sm_seq *s;
    sm_code rc = sm_seq_new(m, max_ctx, &s, err);
    if (rc != SM_OK) {
        return rc;
    }
    const sm_model_config *c = &m->info.config;
    for (int64_t l = 0; l < c->n_layers; l++) {
        for (int which = 0; which < 2; which++) {
            memcpy(sm_seq_cache(s, l, which), sm_seq_cache(src, l, which),
                   (size_t)n_pos * sm_model_kv_row_bytes(m));
        }
    }
    s->pos = n_pos;
    *out = s;
    return SM_OK;
}

sm_code sm_seq_copy_prefix(sm_seq *dst, const sm_seq *src, int64_t n, sm_err *err)
{
    if (dst == src || dst->model != src->model || n < 0 || n > src->pos) {
        return sm_err_set(err, SM_EINVAL, "cannot copy %lld positions of a sequence of %lld",
                          (long long)n, (long long)src->pos);
    }
    if (n > dst->max_ctx) {
        return sm_err_set(err, SM_ELIMIT, "prefix of %lld positions exceeds the context %lld",
                          (long long)n, (long long)dst->max_ctx);
    }
    const sm_model_config *c = &src->model->info.config;
    for (int64_t l = 0; l < c->n_layers; l++) {
        for (int w = 0; w < 2; w++) {
            memcpy(sm_seq_cache(dst, l, w), sm_seq_cache(src, l, w),
                   (size_t)n * sm_model_kv_row_bytes(src->model));
        }
    }
    dst->pos = n;
    return SM_OK;
}

/* The 8-bit cache: each kv head's head_dim values become int8 (rounded to nearest) times one
 * f32 scale, max |x| / 127, stored after the row's values (a head of zeros gets scale 0). */
static void kv_store_q8(const sm_model *m, uint8_t *row, const float *x)
{
    const sm_model_config *c = &m->info.config;
    int64_t hd = c->head_dim, kvd = kv_dim(m);
    for (int64_t h = 0; h < c->n_kv_heads; h++) {
        const float *xh = x + h * hd;
        float amax = 0.0f;
        for (int64_t i = 0; i < hd; i++) {
            float a = fabsf(xh[i]);
            amax = a > amax ? a : amax;
        }
        float scale = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        int8_t *q = (int8_t *)row + h * hd;
        for (int64_t i = 0; i < hd; i++) {
            float v = nearbyintf(xh[i] * inv);
            q[i] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
        }
        memcpy(row + kvd + 4 * h, &scale, sizeof scale);
    }
}

/* f16 values are rounded to nearest; magnitudes beyond f16's range are clamped to its largest
 * finite value rather than becoming infinite. */
void sm_seq_kv_store(sm_seq *s, int64_t l, int which, int64_t pos, const float *x)
{
    int64_t kvd = kv_dim(s->model);
    if (s->model->info.kv_dtype == SM_DTYPE_Q8_0) {
        uint8_t *row =
            (uint8_t *)sm_seq_cache(s, l, which) + (size_t)pos * sm_model_kv_row_bytes(s->model);
        kv_store_q8(s->model, row, x);
        return;
    }
    if (s->model->info.kv_dtype == SM_DTYPE_F32) {
        memcpy((float *)sm_seq_cache(s, l, which) + pos * kvd, x, (size_t)kvd * sizeof *x);
        return;
    }
    uint16_t *dst = (uint16_t *)sm_seq_cache(s, l, which) + pos * kvd;
    for (int64_t i = 0; i < kvd; i++) {
        float v = x[i] > 65504.0f ? 65504.0f : x[i] < -65504.0f ? -65504.0f : x[i];
        dst[i] = sm_f32_to_f16(v);
    }
}

/* Positions made from random values by sm_seq_fill_synthetic; the rest are copies of them. */
#define SM_SYNTH_ROWS 61

sm_code sm_seq_fill_synthetic(sm_seq *s, int64_t n_pos, uint64_t seed, sm_err *err)
{
    if (n_pos < s->pos || n_pos > s->max_ctx) {
        return sm_err_set(err, SM_ELIMIT, "cannot fill %lld positions of a context of %lld",
                          (long long)n_pos, (long long)s->max_ctx);
    }
    const sm_model_config *c = &s->model->info.config;
    int64_t kvd = kv_dim(s->model), p0 = s->pos;
    size_t rb = sm_model_kv_row_bytes(s->model);
    float *x = malloc(sizeof(float) * (size_t)kvd);
    if (x == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    uint64_t st = seed | 1;
    for (int64_t l = 0; l < c->n_layers; l++) {
        for (int w = 0; w < 2; w++) {
            uint8_t *base = sm_seq_cache(s, l, w);
            for (int64_t p = p0; p < n_pos; p++) {
                if (p - p0 >= SM_SYNTH_ROWS) {
                    memcpy(base + (size_t)p * rb, base + (size_t)(p - SM_SYNTH_ROWS) * rb, rb);
                    continue;
                }
                for (int64_t i = 0; i < kvd; i++) {
                    st ^= st << 13;
                    st ^= st >> 7;
                    st ^= st << 17;
                    x[i] = (float)((double)(st >> 11) / 9007199254740992.0 * 2.0 - 1.0);
                }
                sm_seq_kv_store(s, l, w, p, x);
            }
        }
    }
    free(x);
    s->pos = n_pos;
    return SM_OK;
}
