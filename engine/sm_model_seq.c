/* sm_model_seq: sequences and their KV caches. A sequence reserves (without committing) room
 * for max_ctx positions of every layer's keys and values, in the model's kv_dtype (f16 by
 * default, f32 for f32 weights or the portable kernels); pages are committed as positions are
 * filled. Sequences can be truncated and copied (whole, or a prefix into another), so that a
 * shared prompt prefix is computed once. */
#include <errno.h>
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
    return s->kv + ((size_t)(2 * l + which) * (size_t)s->max_ctx) * (size_t)kv_dim(s->model) *
                       sm_model_kv_value_bytes(s->model);
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
    int64_t kvd = c->n_kv_heads * c->head_dim;
    for (int64_t l = 0; l < c->n_layers; l++) {
        for (int which = 0; which < 2; which++) {
            memcpy(sm_seq_cache(s, l, which), sm_seq_cache(src, l, which),
                   (size_t)(n_pos * kvd) * sm_model_kv_value_bytes(m));
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
    int64_t kvd = c->n_kv_heads * c->head_dim;
    for (int64_t l = 0; l < c->n_layers; l++) {
        for (int w = 0; w < 2; w++) {
            memcpy(sm_seq_cache(dst, l, w), sm_seq_cache(src, l, w),
                   (size_t)n * (size_t)kvd * sm_model_kv_value_bytes(src->model));
        }
    }
    dst->pos = n;
    return SM_OK;
}

/* f16 values are rounded to nearest; magnitudes beyond f16's range are clamped to its largest
 * finite value rather than becoming infinite. */
void sm_seq_kv_store(sm_seq *s, int64_t l, int which, int64_t pos, const float *x)
{
    int64_t kvd = kv_dim(s->model);
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
