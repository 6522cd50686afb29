/* sm_cuda_forward: the CUDA backend's sequences (pages of the model's pool), the batched
 * forward pass (all rows of all sequences of a step through each weight matrix at once, in
 * chunks of SM_CUDA_CHUNK rows) and sampling on the GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_cuda_internal.h"

#define STREAM(m) ((sm_cu_stream *)(m)->stream)

/* ---- sequences ---- */

sm_code sm_cuda_seq_new(sm_cuda_model *m, int64_t max_ctx, sm_cuda_seq **out, sm_err *err)
{
    *out = NULL;
    if (max_ctx <= 0)
        max_ctx = m->cfg.max_pos;
    if (max_ctx > m->cfg.max_pos)
        return sm_err_set(err, SM_ELIMIT, "context %lld exceeds max_position_embeddings %lld",
                          (long long)max_ctx, (long long)m->cfg.max_pos);
    sm_cuda_seq *s = calloc(1, sizeof(*s));
    if (!s)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    s->m = m;
    s->max_ctx = max_ctx;
    *out = s;
    return SM_OK;
}

static void seq_release(sm_cuda_seq *s)
{
    for (int64_t i = 0; i < s->n_pages; i++)
        s->m->free_pages[s->m->n_free++] = s->pages[i];
    s->n_pages = 0;
}

void sm_cuda_seq_free(sm_cuda_seq **seq)
{
    if (!*seq)
        return;
    seq_release(*seq);
    free((*seq)->pages);
    free(*seq);
    *seq = NULL;
}

int64_t sm_cuda_seq_pos(const sm_cuda_seq *s)
{
    return s->pos;
}

sm_code sm_cuda_seq_reserve(sm_cuda_seq *s, int64_t n, sm_err *err)
{
    int64_t need = (n + SM_CUDA_PAGE - 1) / SM_CUDA_PAGE;
    if (need <= s->n_pages)
        return SM_OK;
    if (need - s->n_pages > s->m->n_free)
        return sm_err_set(err, SM_ELIMIT, "cuda: the KV cache is full (%lld positions free)",
                          (long long)sm_cuda_free_positions(s->m));
    if (need > s->cap_pages) {
        int32_t *p = realloc(s->pages, (size_t)need * sizeof(int32_t));
        if (!p)
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        s->pages = p;
        s->cap_pages = need;
    }
    while (s->n_pages < need)
        s->pages[s->n_pages++] = s->m->free_pages[--s->m->n_free];
    return SM_OK;
}

sm_code sm_cuda_seq_copy_prefix(sm_cuda_seq *dst, const sm_cuda_seq *src, int64_t n, sm_err *err)
{
    if (dst->m != src->m || dst == src || n < 0 || n > src->pos)
        return sm_err_set(err, SM_EINVAL,
                          "copy_prefix: another model, the same sequence, or "
                          "%lld positions outside [0, %lld]",
                          (long long)n, (long long)src->pos);
    if (n > dst->max_ctx)
        return sm_err_set(err, SM_ELIMIT, "copy_prefix: %lld positions exceed max_ctx %lld",
                          (long long)n, (long long)dst->max_ctx);
    sm_cuda_model *m = dst->m;
    seq_release(dst);
    dst->pos = 0;
    sm_code rc = sm_cuda_seq_reserve(dst, n, err);
    for (int64_t i = 0; rc == SM_OK && i < dst->n_pages; i++) {
        cudaError_t e = cudaMemcpyAsync((uint8_t *)m->pool + (size_t)dst->pages[i] * m->page_bytes,
                                        (uint8_t *)m->pool + (size_t)src->pages[i] * m->page_bytes,
                                        m->page_bytes, cudaMemcpyDeviceToDevice, m->stream);
        if (e != cudaSuccess)
            rc = sm_cuda_fail(err, e, "copying KV pages");
    }
    if (rc == SM_OK)
        dst->pos = n;
    return rc;
}

sm_code sm_cuda_seq_fill_synthetic(sm_cuda_seq *s, int64_t n_pos, uint64_t seed, sm_err *err)
{
    if (n_pos > s->max_ctx)
        return sm_err_set(err, SM_ELIMIT, "%lld positions exceed max_ctx %lld", (long long)n_pos,
                          (long long)s->max_ctx);
    sm_code rc = sm_cuda_seq_reserve(s, n_pos, err);
    for (int64_t i = s->pos / SM_CUDA_PAGE; rc == SM_OK && i < s->n_pages; i++) {
        uint16_t *page =
            (uint16_t *)((uint8_t *)s->m->pool + (size_t)s->pages[i] * s->m->page_bytes);
        int e = sm_cu_fill_random_f16(STREAM(s->m), page, (int64_t)(s->m->page_bytes / 2),
                                      seed + (uint64_t)i);
        if (e)
            rc = sm_cuda_fail(err, e, "filling KV pages");
    }
    if (rc == SM_OK && n_pos > s->pos)
        s->pos = n_pos;
    return rc;
}

/* ---- scratch ---- */

#define GROW(field, count, what)                                                               \
    do {                                                                                       \
        cudaFree(s->field);                                                                    \
        s->field = NULL;                                                                       \
        if ((rc = sm_cuda_alloc((void **)&s->field, (size_t)(count) * sizeof(*s->field), what, \
                                err)))                                                         \
            return rc;                                                                         \
    } while (0)

static sm_code scratch_rows(sm_cuda_model *m, int64_t rows, sm_err *err)
{
    cu_scratch *s = &m->s;
    sm_code rc;
    if (rows <= s->rows)
        return SM_OK;
    const sm_model_config *c = &m->cfg;
    int64_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    int64_t wide = c->hidden > qd ? c->hidden : qd;
    wide = wide > c->intermediate ? wide : c->intermediate;
    s->rows = 0;
    GROW(x, rows * c->hidden, "activations");
    GROW(tmp, rows * c->hidden, "activations");
    GROW(q, rows * qd, "activations");
    GROW(k, rows * kvd, "activations");
    GROW(v, rows * kvd, "activations");
    GROW(gate, rows * c->intermediate, "activations");
    GROW(up, rows * c->intermediate, "activations");
    GROW(in, rows * wide, "activations");
    GROW(ids, rows, "token ids");
    GROW(meta, rows, "row positions");
    GROW(last_idx, rows, "row indices");
    s->rows = rows;
    return SM_OK;
}

static sm_code scratch_seqs(sm_cuda_model *m, int n, sm_err *err)
{
    cu_scratch *s = &m->s;
    sm_code rc;
    if (n <= s->seqs)
        return SM_OK;
    s->seqs = 0;
    GROW(last_in, (int64_t)n * m->cfg.hidden, "last rows");
    GROW(logits, (int64_t)n * m->cfg.vocab, "logits");
    GROW(tokens, n, "tokens");
    GROW(seeds, n, "seeds");
    GROW(counters, n, "counters");
    s->seqs = n;
    return SM_OK;
}

static sm_code scratch_n(sm_cuda_model *m, int64_t part_n, int64_t tables_n, sm_err *err)
{
    cu_scratch *s = &m->s;
    sm_code rc;
    if (part_n > s->part_n) {
        s->part_n = 0;
        GROW(part, part_n, "attention partials");
        s->part_n = part_n;
    }
    if (tables_n > s->tables_n) {
        s->tables_n = 0;
        GROW(tables, tables_n, "page tables");
        s->tables_n = tables_n;
    }
    return SM_OK;
}

/* ---- the forward pass ---- */

/* y[rows][w->rows] = x[rows][w->cols] * w^T. */
static int matmul(sm_cuda_model *m, const cu_mat *w, const uint16_t *x, int rows, float *y)
{
    if (w->i8)
        return sm_cu_matmul_i8(STREAM(m), x, w->i8, w->scale, rows, w->rows, w->cols, y);
    if (!m->opts.fast)
        return sm_cu_matmul_det(STREAM(m), x, w->bf, rows, w->rows, w->cols, y);
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t st =
        cublasGemmEx(m->blas, CUBLAS_OP_T, CUBLAS_OP_N, w->rows, rows, w->cols, &one, w->bf,
                     CUDA_R_16BF, w->cols, x, CUDA_R_16BF, w->cols, &zero, y, CUDA_R_32F, w->rows,
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return st == CUBLAS_STATUS_SUCCESS ? 0 : (int)cudaErrorUnknown;
}

/* One layer over the chunk's rows (x holds the stream, tmp the previous layer's output). */
static int layer(sm_cuda_model *m, int l, int rows, int max_splits, sm_cu_kv kv)
{
    cu_scratch *s = &m->s;
    const cu_layer *L = &m->layers[l];
    const sm_cu_shape *sh = &m->sh;
    int inter = (int)m->cfg.intermediate;
    int e;
    if ((e = sm_cu_add_rmsnorm(STREAM(m), s->x, l ? s->tmp : NULL, L->attn_norm, rows, sh->hidden,
                               sh->rms_eps, s->in)) ||
        (e = matmul(m, &L->q, s->in, rows, s->q)) || (e = matmul(m, &L->k, s->in, rows, s->k)) ||
        (e = matmul(m, &L->v, s->in, rows, s->v)) ||
        (e = sm_cu_qkv_rope_store(STREAM(m), sh, l, s->q, s->k, s->v, L->bq, L->bk, L->bv, s->meta,
                                  rows, kv)) ||
        (e = sm_cu_attention(STREAM(m), sh, l, s->q, s->meta, rows, max_splits, kv, s->part,
                             s->in)) ||
        (e = matmul(m, &L->o, s->in, rows, s->tmp)) ||
        (e = sm_cu_add_rmsnorm(STREAM(m), s->x, s->tmp, L->mlp_norm, rows, sh->hidden, sh->rms_eps,
                               s->in)) ||
        (e = matmul(m, &L->gate, s->in, rows, s->gate)) ||
        (e = matmul(m, &L->up, s->in, rows, s->up)) ||
        (e = sm_cu_silu_mul(STREAM(m), s->gate, s->up, (int64_t)rows * inter, s->in)))
        return e;
    return matmul(m, &L->down, s->in, rows, s->tmp);
}

/* A step's plan on the host: rows in order, sequence by sequence. */
typedef struct plan {
    int64_t total;
    int32_t *ids;
    sm_cu_row *meta;
    int32_t *last; /* row of each sequence's last token */
} plan;

static sm_code plan_make(sm_cuda_model *m, sm_cuda_seq *const *seqs, const int32_t *const *tokens,
                         const int64_t *n_tokens, int n, plan *p, sm_err *err)
{
    memset(p, 0, sizeof(*p));
    for (int i = 0; i < n; i++) {
        if (n_tokens[i] < 1 || seqs[i]->m != m)
            return sm_err_set(err, SM_EINVAL,
                              "forward: sequence %d: %lld tokens or another "
                              "model",
                              i, (long long)n_tokens[i]);
        if (seqs[i]->pos + n_tokens[i] > seqs[i]->max_ctx)
            return sm_err_set(err, SM_ELIMIT, "forward: sequence %d passes its max_ctx %lld", i,
                              (long long)seqs[i]->max_ctx);
        for (int j = 0; j < i; j++)
            if (seqs[j] == seqs[i])
                return sm_err_set(err, SM_EINVAL, "forward: sequence %d given twice", i);
        for (int64_t t = 0; t < n_tokens[i]; t++)
            if (tokens[i][t] < 0 || tokens[i][t] >= m->cfg.vocab)
                return sm_err_set(err, SM_EINVAL, "forward: token id %d outside the vocabulary",
                                  tokens[i][t]);
        p->total += n_tokens[i];
    }
    p->ids = malloc((size_t)p->total * sizeof(int32_t));
    p->meta = malloc((size_t)p->total * sizeof(sm_cu_row));
    p->last = malloc((size_t)n * sizeof(int32_t));
    if (!p->ids || !p->meta || !p->last)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    int64_t r = 0;
    for (int i = 0; i < n; i++) {
        for (int64_t t = 0; t < n_tokens[i]; t++, r++) {
            p->ids[r] = tokens[i][t];
            p->meta[r] = (sm_cu_row){.seq = i, .pos = (int32_t)(seqs[i]->pos + t)};
        }
        p->last[i] = (int32_t)(r - 1);
    }
    return SM_OK;
}

static void plan_free(plan *p)
{
    free(p->ids);
    free(p->meta);
    free(p->last);
}

/* Page tables of the step's sequences (pages reserved for their new positions first). */
static sm_code upload_tables(sm_cuda_model *m, sm_cuda_seq *const *seqs, const int64_t *n_tokens,
                             int n, int *stride, sm_err *err)
{
    sm_code rc = SM_OK;
    int64_t st = 1;
    for (int i = 0; i < n && rc == SM_OK; i++) {
        rc = sm_cuda_seq_reserve(seqs[i], seqs[i]->pos + n_tokens[i], err);
        st = seqs[i]->n_pages > st ? seqs[i]->n_pages : st;
    }
    int32_t *t = rc ? NULL : calloc((size_t)(st * n), sizeof(int32_t));
    if (rc == SM_OK && !t)
        rc = sm_err_set(err, SM_ENOMEM, "out of memory");
    if (rc == SM_OK)
        rc = scratch_n(m, 0, st * n, err);
    for (int i = 0; rc == SM_OK && i < n; i++)
        memcpy(t + (int64_t)i * st, seqs[i]->pages, (size_t)seqs[i]->n_pages * sizeof(int32_t));
    cudaError_t e = cudaSuccess;
    if (rc == SM_OK && (e = cudaMemcpyAsync(m->s.tables, t, (size_t)(st * n) * sizeof(int32_t),
                                            cudaMemcpyHostToDevice, m->stream)) == cudaSuccess)
        e = cudaStreamSynchronize(m->stream); /* t is freed next */
    if (rc == SM_OK && e != cudaSuccess)
        rc = sm_cuda_fail(err, e, "uploading page tables");
    free(t);
    *stride = (int)st;
    return rc;
}

/* Rows [r0, r0 + rows) of the plan through every layer; the final normed rows of the
 * sequences whose last token is among them go to last_in. */
static sm_code run_chunk(sm_cuda_model *m, const plan *p, int n, int64_t r0, int rows, sm_cu_kv kv,
                         sm_err *err)
{
    cu_scratch *s = &m->s;
    int max_pos = 0;
    for (int r = 0; r < rows; r++)
        max_pos = p->meta[r0 + r].pos > max_pos ? p->meta[r0 + r].pos : max_pos;
    int max_splits = max_pos / SM_CUDA_SPLIT + 1;
    sm_code rc =
        scratch_n(m, (int64_t)rows * m->sh.n_heads * max_splits * (m->sh.head_dim + 2), 0, err);
    if (rc)
        return rc;
    int e;
    if ((e = (int)cudaMemcpyAsync(s->ids, p->ids + r0, (size_t)rows * sizeof(int32_t),
                                  cudaMemcpyHostToDevice, m->stream)) ||
        (e = (int)cudaMemcpyAsync(s->meta, p->meta + r0, (size_t)rows * sizeof(sm_cu_row),
                                  cudaMemcpyHostToDevice, m->stream)) ||
        (e = sm_cu_embed(STREAM(m), m->embed.bf, s->ids, rows, m->sh.hidden, s->x)))
        return sm_cuda_fail(err, e, "embedding");
    for (int l = 0; l < m->sh.n_layers; l++)
        if ((e = layer(m, l, rows, max_splits, kv)))
            return sm_cuda_fail(err, e, "a layer");
    if ((e = sm_cu_add_rmsnorm(STREAM(m), s->x, s->tmp, m->final_norm, rows, m->sh.hidden,
                               m->sh.rms_eps, s->in)))
        return sm_cuda_fail(err, e, "the final norm");
    /* the sequences whose last rows are here form a run [a, b) */
    int a = 0;
    while (a < n && p->last[a] < r0)
        a++;
    int b = a;
    int32_t idx[SM_CUDA_MAX_BATCH];
    while (b < n && p->last[b] < r0 + rows) {
        idx[b - a] = (int32_t)(p->last[b] - r0);
        b++;
    }
    if (b > a && ((e = (int)cudaMemcpyAsync(s->last_idx, idx, (size_t)(b - a) * sizeof(int32_t),
                                            cudaMemcpyHostToDevice, m->stream)) ||
                  (e = (int)cudaStreamSynchronize(m->stream)) ||
                  (e = sm_cu_gather_rows(STREAM(m), s->in, s->last_idx, b - a, m->sh.hidden,
                                         s->last_in + (int64_t)a * m->sh.hidden))))
        return sm_cuda_fail(err, e, "gathering last rows");
    return SM_OK;
}

sm_code sm_cuda_forward(sm_cuda_model *m, sm_cuda_seq *const *seqs, const int32_t *const *tokens,
                        const int64_t *n_tokens, int n_seqs, float *logits, sm_err *err)
{
    if (n_seqs < 1 || n_seqs > SM_CUDA_MAX_BATCH)
        return sm_err_set(err, n_seqs < 1 ? SM_EINVAL : SM_ELIMIT,
                          "forward: %d sequences (1 to %d)", n_seqs, SM_CUDA_MAX_BATCH);
    plan p;
    int stride = 0;
    sm_code rc = plan_make(m, seqs, tokens, n_tokens, n_seqs, &p, err);
    if (rc == SM_OK)
        rc = upload_tables(m, seqs, n_tokens, n_seqs, &stride, err);
    int64_t chunk = p.total < SM_CUDA_CHUNK ? p.total : SM_CUDA_CHUNK;
    if (rc == SM_OK && (rc = scratch_rows(m, chunk, err)) == SM_OK)
        rc = scratch_seqs(m, n_seqs, err);
    sm_cu_kv kv = {.pool = m->pool, .tables = m->s.tables, .table_stride = stride};
    for (int64_t r0 = 0; rc == SM_OK && r0 < p.total; r0 += chunk) {
        int rows = (int)(p.total - r0 < chunk ? p.total - r0 : chunk);
        rc = run_chunk(m, &p, n_seqs, r0, rows, kv, err);
    }
    int e = 0;
    if (rc == SM_OK && (e = matmul(m, &m->lm_head, m->s.last_in, n_seqs, m->s.logits)))
        rc = sm_cuda_fail(err, e, "the LM head");
    if (rc == SM_OK && logits &&
        (e = (int)cudaMemcpyAsync(logits, m->s.logits,
                                  (size_t)n_seqs * (size_t)m->cfg.vocab * sizeof(float),
                                  cudaMemcpyDeviceToHost, m->stream)))
        rc = sm_cuda_fail(err, e, "copying logits");
    if (rc == SM_OK)
        rc = sm_cuda_sync(m, err);
    if (rc == SM_OK) {
        for (int i = 0; i < n_seqs; i++)
            seqs[i]->pos += n_tokens[i];
        m->last_seqs = n_seqs;
    }
    plan_free(&p);
    return rc;
}

sm_code sm_cuda_sync(sm_cuda_model *m, sm_err *err)
{
    cudaError_t e = cudaStreamSynchronize(m->stream);
    return e == cudaSuccess ? SM_OK : sm_cuda_fail(err, e, "a kernel");
}

sm_code sm_cuda_sample(sm_cuda_model *m, int n_seqs, double temperature, const uint64_t *seeds,
                       const uint64_t *counters, int32_t *out, sm_err *err)
{
    if (n_seqs < 1 || n_seqs != m->last_seqs)
        return sm_err_set(err, SM_ESTATE, "sample: %d sequences, the last step had %d", n_seqs,
                          m->last_seqs);
    cu_scratch *s = &m->s;
    size_t b = (size_t)n_seqs * sizeof(uint64_t);
    static const uint64_t zeros[SM_CUDA_MAX_BATCH];
    int e;
    if ((e = (int)cudaMemcpyAsync(s->seeds, seeds ? seeds : zeros, b, cudaMemcpyHostToDevice,
                                  m->stream)) ||
        (e = (int)cudaMemcpyAsync(s->counters, counters ? counters : zeros, b,
                                  cudaMemcpyHostToDevice, m->stream)) ||
        (e = sm_cu_sample(STREAM(m), s->logits, n_seqs, (int)m->cfg.vocab, (float)temperature,
                          s->seeds, s->counters, s->tokens)) ||
        (e = (int)cudaMemcpyAsync(out, s->tokens, (size_t)n_seqs * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, m->stream)))
        return sm_cuda_fail(err, e, "sampling");
    return sm_cuda_sync(m, err);
}
