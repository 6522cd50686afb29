/* sm_model_forward: the batched forward pass:
 *   x = embed[token]; per layer: x += o_proj(attn(rope(q), rope(k), v)) over rmsnorm(x),
 *   x += down(silu(gate(h)) * up(h)) with h = rmsnorm(x); logits = lm_head(rmsnorm(x)).
 * All rows of all sequences in a step go through each weight matrix in one sm_matmul; the
 * per-row work (norms, rotary embedding, attention against the row's own sequence) never mixes
 * rows, so with batch-invariant kernels a sequence's results do not depend on its companions.
 * The activations live in the model's sm_acts, sized here for the longest chunk of a step. */
#include <stdlib.h>
#include <string.h>

#include "sm_model_internal.h"
#include "sm_pool.h"

/* ---- activations ---- */

void sm_acts_free(sm_acts *a)
{
    for (int b = 0; b < SM_ACT_COUNT; b++) {
        free(a->buf[b]);
        a->buf[b] = NULL;
    }
    free(a->att_scratch);
    a->att_scratch = NULL;
    a->att_scratch_n = 0;
    a->rows = 0;
}

/* Row r of buffer b. */
static inline float *acts_row(const sm_acts *a, sm_act b, int64_t r)
{
    return a->buf[b] + r * a->width[b];
}

/* Task task's slice of the attention scratch (row-parallel attention). */
static inline float *acts_att_slice(const sm_acts *a, int task)
{
    return a->att_scratch + (int64_t)task * (a->att_scratch_n / a->att_tasks);
}

/* Makes room for rows rows of every buffer (a model's buffers only grow), and for attention
 * over max_pos positions: n_heads scores per position for one call over all heads, or one
 * slice per row-parallel attention task (4 per thread). */
static sm_code acts_ensure(sm_model *m, int64_t rows, int64_t max_pos, sm_err *err)
{
    const sm_model_config *c = &m->info.config;
    sm_acts *a = &m->acts;
    if (rows > a->rows) {
        int64_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
        int64_t width[SM_ACT_COUNT] = {[SM_ACT_X] = c->hidden,
                                       [SM_ACT_XN] = c->hidden,
                                       [SM_ACT_TMP] = c->hidden,
                                       [SM_ACT_Q] = qd,
                                       [SM_ACT_ATT] = qd,
                                       [SM_ACT_K] = kvd,
                                       [SM_ACT_V] = kvd,
                                       [SM_ACT_GATE] = c->intermediate,
                                       [SM_ACT_UP] = c->intermediate};
        bool ok = true;
        for (int b = 0; b < SM_ACT_COUNT; b++) {
            free(a->buf[b]);
            a->width[b] = width[b];
            a->buf[b] = malloc((size_t)rows * (size_t)width[b] * sizeof(float));
            ok = ok && a->buf[b] != NULL;
        }
        a->rows = ok ? rows : 0;
        if (!ok)
            return sm_err_set(err, SM_ENOMEM, "out of memory for %lld rows of activations",
                              (long long)rows);
    }
    int64_t threads = m->pool ? sm_pool_threads(m->pool) : 1;
    int64_t need = max_pos * (c->n_heads > 4 * threads ? c->n_heads : 4 * threads);
    a->att_tasks = 4 * threads;
    if (need > a->att_scratch_n) {
        float *p = realloc(a->att_scratch, (size_t)need * sizeof *p);
        if (p == NULL) {
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        }
        a->att_scratch = p;
        a->att_scratch_n = need;
    }
    return SM_OK;
}

/* ---- one chunk of rows through the layers ---- */

typedef struct row_info {
    sm_seq *seq;
    int64_t pos;
    int32_t token;
    int last; /* index of the sequence whose last new position this is, else -1 */
} row_info;

typedef struct attn_rows {
    const sm_model *m;
    const row_info *ri;
    int64_t n, l;
    sm_kctx k1; /* the model's kernel context without its pool: one row per task */
} attn_rows;

/* Attention of row r (queries in SM_ACT_Q) against its sequence's cache of layer l, into
 * SM_ACT_ATT, with the scores in scratch. */
static void attn_row(const sm_model *m, const sm_kctx *k, const row_info *ri, int64_t r, int64_t l,
                     float *scratch)
{
    const sm_model_config *c = &m->info.config;
    /* the row stride in values (in bytes for the 8-bit cache, whose rows end in scales) */
    int64_t stride = (int64_t)(sm_model_kv_row_bytes(m) / sm_model_kv_value_bytes(m));
    sm_attention(k, acts_row(&m->acts, SM_ACT_Q, r), (int)c->n_heads, (int)c->n_kv_heads,
                 (int)c->head_dim, sm_seq_cache(ri->seq, l, 0), sm_seq_cache(ri->seq, l, 1),
                 m->info.kv_dtype, stride, ri->pos + 1, acts_row(&m->acts, SM_ACT_ATT, r), scratch);
}

/* Attention of rows task, task + n_tasks, ... (interleaved: later prompt rows are longer). */
static void attn_rows_task(void *arg, int task, int n_tasks)
{
    const attn_rows *a = arg;
    for (int64_t r = task; r < a->n; r += n_tasks) {
        attn_row(a->m, &a->k1, &a->ri[r], r, a->l, acts_att_slice(&a->m->acts, task));
    }
}

/* x += o_proj(attention(rope(q), rope(k), v)) of layer l over rmsnorm(x), for rows [0, n);
 * the rows' new keys and values go into their sequences' caches. */
static sm_code attn_block(sm_model *m, const row_info *ri, int64_t n, int64_t l, sm_err *err)
{
    const sm_model_config *c = &m->info.config;
    const sm_kctx *k = &m->k;
    const sm_layer *L = &m->layers[l];
    sm_acts *A = &m->acts;
    int64_t h = c->hidden, hd = c->head_dim;
    int64_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    float *x = A->buf[SM_ACT_X], *xn = A->buf[SM_ACT_XN], *tmp = A->buf[SM_ACT_TMP];
    sm_code rc;
    for (int64_t r = 0; r < n; r++) {
        sm_rmsnorm(k, acts_row(A, SM_ACT_X, r), L->attn_norm, h, (float)c->rms_eps,
                   acts_row(A, SM_ACT_XN, r));
    }
    const sm_mm_part qkv[3] = {{&L->q, L->bq, A->buf[SM_ACT_Q], qd},
                               {&L->k, L->bk, A->buf[SM_ACT_K], kvd},
                               {&L->v, L->bv, A->buf[SM_ACT_V], kvd}};
    if ((rc = sm_matmul_group(k, qkv, 3, xn, h, n, err))) {
        return rc;
    }
    for (int64_t r = 0; r < n; r++) {
        float *kr = acts_row(A, SM_ACT_K, r);
        sm_rope(k, acts_row(A, SM_ACT_Q, r), (int)c->n_heads, (int)hd, ri[r].pos, c->rope_theta);
        sm_rope(k, kr, (int)c->n_kv_heads, (int)hd, ri[r].pos, c->rope_theta);
        sm_seq_kv_store(ri[r].seq, l, 0, ri[r].pos, kr);
        sm_seq_kv_store(ri[r].seq, l, 1, ri[r].pos, acts_row(A, SM_ACT_V, r));
    }
    int threads = m->pool ? sm_pool_threads(m->pool) : 1;
    if (n >= 2 * threads && threads > 1) {
        /* Several rows: one row per task, each on one thread (same results per row). */
        attn_rows a = {m, ri, n, l, *k};
        a.k1.pool = NULL;
        a.k1.bufs = NULL; /* the tasks run at once: none shares the model's buffers */
        sm_pool_run(m->pool, attn_rows_task, &a, (int)(n < A->att_tasks ? n : A->att_tasks));
    } else {
        for (int64_t r = 0; r < n; r++) {
            attn_row(m, k, &ri[r], r, l, A->att_scratch);
        }
    }
    if ((rc = sm_matmul(k, &L->o, NULL, A->buf[SM_ACT_ATT], qd, n, tmp, h, err))) {
        return rc;
    }
    for (int64_t i = 0; i < n * h; i++) {
        x[i] += tmp[i];
    }
    return SM_OK;
}

/* x += down(silu(gate(h)) * up(h)) of layer l with h = rmsnorm(x), for rows [0, n). */
static sm_code mlp_block(sm_model *m, int64_t n, int64_t l, sm_err *err)
{
    const sm_model_config *c = &m->info.config;
    const sm_kctx *k = &m->k;
    const sm_layer *L = &m->layers[l];
    sm_acts *A = &m->acts;
    int64_t h = c->hidden, in = c->intermediate;
    float *x = A->buf[SM_ACT_X], *xn = A->buf[SM_ACT_XN], *tmp = A->buf[SM_ACT_TMP];
    float *gate = A->buf[SM_ACT_GATE], *up = A->buf[SM_ACT_UP];
    sm_code rc;
    for (int64_t r = 0; r < n; r++) {
        sm_rmsnorm(k, acts_row(A, SM_ACT_X, r), L->mlp_norm, h, (float)c->rms_eps,
                   acts_row(A, SM_ACT_XN, r));
    }
    const sm_mm_part gate_up[2] = {{&L->gate, NULL, gate, in}, {&L->up, NULL, up, in}};
    if ((rc = sm_matmul_group(k, gate_up, 2, xn, h, n, err))) {
        return rc;
    }
    for (int64_t r = 0; r < n; r++) {
        sm_silu_mul(k, acts_row(A, SM_ACT_GATE, r), acts_row(A, SM_ACT_UP, r), in);
    }
    if ((rc = sm_matmul(k, &L->down, NULL, gate, in, n, tmp, h, err))) {
        return rc;
    }
    for (int64_t i = 0; i < n * h; i++) {
        x[i] += tmp[i];
    }
    return SM_OK;
}

/* Runs rows [0, n) of ri through the model; writes the final-normed hidden state of rows that
 * end a sequence into last[seq index * hidden]. */
static sm_code forward_rows(sm_model *m, const row_info *ri, int64_t n, float *last, sm_err *err)
{
    const sm_model_config *c = &m->info.config;
    int64_t h = c->hidden;
    sm_code rc;
    for (int64_t r = 0; r < n; r++) {
        rc = sm_matrix_row_f32(&m->embed, ri[r].token, acts_row(&m->acts, SM_ACT_X, r), err);
        if (rc != SM_OK) {
            return rc;
        }
    }
    for (int64_t l = 0; l < c->n_layers; l++) {
        if ((rc = attn_block(m, ri, n, l, err)) || (rc = mlp_block(m, n, l, err))) {
            return rc;
        }
    }
    for (int64_t r = 0; r < n; r++) {
        if (ri[r].last >= 0) {
            sm_rmsnorm(&m->k, acts_row(&m->acts, SM_ACT_X, r), m->final_norm, h, (float)c->rms_eps,
                       last + (size_t)ri[r].last * h);
        }
    }
    return SM_OK;
}

/* ---- a step ---- */

/* Checks the step's arguments; *total: rows of the step, *max_pos: the longest sequence after
 * it. */
static sm_code check_step(const sm_model *m, sm_seq *const *seqs, const int32_t *const *tokens,
                          const int64_t *n_tokens, int n_seqs, int64_t *total, int64_t *max_pos,
                          sm_err *err)
{
    const sm_model_config *c = &m->info.config;
    if (n_seqs < 1) {
        return sm_err_set(err, SM_EINVAL, "no sequences");
    }
    *total = *max_pos = 0;
    for (int i = 0; i < n_seqs; i++) {
        sm_seq *s = seqs[i];
        if (s == NULL || s->model != m || tokens[i] == NULL || n_tokens[i] < 1) {
            return sm_err_set(err, SM_EINVAL, "sequence %d: bad sequence or no tokens", i);
        }
        for (int j = 0; j < i; j++) {
            if (seqs[j] == s) {
                return sm_err_set(err, SM_EINVAL, "sequence %d appears twice in one step", i);
            }
        }
        if (n_tokens[i] > s->max_ctx - s->pos) {
            return sm_err_set(err, SM_ELIMIT,
                              "sequence %d: %lld + %lld positions exceed its context of %lld", i,
                              (long long)s->pos, (long long)n_tokens[i], (long long)s->max_ctx);
        }
        for (int64_t t = 0; t < n_tokens[i]; t++) {
            if (tokens[i][t] < 0 || tokens[i][t] >= c->vocab) {
                return sm_err_set(err, SM_EINVAL, "sequence %d: token id %d outside [0, %lld)", i,
                                  tokens[i][t], (long long)c->vocab);
            }
        }
        *total += n_tokens[i];
        if (s->pos + n_tokens[i] > *max_pos) {
            *max_pos = s->pos + n_tokens[i];
        }
    }
    return SM_OK;
}

sm_code sm_model_forward(sm_model *m, sm_seq *const *seqs, const int32_t *const *tokens,
                         const int64_t *n_tokens, int n_seqs, float *logits, sm_err *err)
{
    const sm_model_config *c = &m->info.config;
    int64_t total = 0, max_pos = 0;
    sm_code rc = check_step(m, seqs, tokens, n_tokens, n_seqs, &total, &max_pos, err);
    if (rc != SM_OK) {
        return rc;
    }
    row_info *ri = malloc((size_t)total * sizeof *ri);
    float *last = malloc((size_t)n_seqs * (size_t)c->hidden * sizeof *last);
    if (ri == NULL || last == NULL) {
        rc = sm_err_set(err, SM_ENOMEM, "out of memory");
        goto done;
    }
    int64_t r = 0;
    for (int i = 0; i < n_seqs; i++) {
        for (int64_t t = 0; t < n_tokens[i]; t++, r++) {
            ri[r] =
                (row_info){seqs[i], seqs[i]->pos + t, tokens[i][t], t == n_tokens[i] - 1 ? i : -1};
        }
    }
    int64_t chunk = total < SM_MODEL_CHUNK ? total : SM_MODEL_CHUNK;
    if ((rc = acts_ensure(m, chunk, max_pos, err)) != SM_OK) {
        goto done;
    }
    for (int64_t r0 = 0; r0 < total && rc == SM_OK; r0 += chunk) {
        int64_t n = total - r0 < chunk ? total - r0 : chunk;
        rc = forward_rows(m, ri + r0, n, last, err);
    }
    if (rc == SM_OK && logits != NULL) {
        rc = sm_matmul(&m->k, &m->lm_head, NULL, last, c->hidden, n_seqs, logits, c->vocab, err);
    }
    if (rc == SM_OK) {
        for (int i = 0; i < n_seqs; i++) {
            seqs[i]->pos += n_tokens[i];
        }
    }
done:
    free(ri);
    free(last);
    return rc;
}
